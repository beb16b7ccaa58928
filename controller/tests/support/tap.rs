//! [`Tap`]: a tower layer on one client's requests, so a test knows what *that* client sent
//! and when (kubesim's own log does not say who asked), and can hang or fail the requests it
//! names — a Lease write that never returns, a Service write refused once.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::http::{self, Request, Response};
use kube::client::Body;
use tokio::sync::watch;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body a tapped client sees.
pub type TapBody = UnsyncBoxBody<Bytes, BoxError>;

/// One request as the client sent it.
#[derive(Debug, Clone)]
pub struct Record {
    pub method: String,
    pub path: String,
    pub query: String,
    /// When the client asked.
    pub issued: Instant,
    /// When it went to the server (later than `issued` while hung); `None`: never (failed or
    /// still hung).
    pub sent: Option<Instant>,
    /// The answer's HTTP status, once answered (an injected failure included).
    pub status: Option<u16>,
}

impl Record {
    /// A write (anything but GET), watches excluded.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// Whether `path` contains `part`.
    pub fn touches(&self, part: &str) -> bool {
        self.path.contains(part)
    }
}

/// What to do with matching requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Hold them until [`Tap::release`].
    Hang,
    /// Answer with this status (a `metav1.Status` body), without sending them.
    Fail(u16),
}

/// Which requests a fault applies to: method (or any) and a part of the path.
#[derive(Debug, Clone)]
struct Rule {
    method: Option<&'static str>,
    path_part: String,
    fault: Fault,
    /// How many more requests it applies to (`None`: all).
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct Inner {
    log: Vec<Record>,
    rules: Vec<Rule>,
}

/// The request log and fault switches of one client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tap {
    inner: Arc<Mutex<Inner>>,
    /// Bumped to let hung requests go.
    released: watch::Sender<u64>,
}

impl Default for Tap {
    fn default() -> Self {
        Tap {
            inner: Arc::default(),
            released: watch::channel(0).0,
        }
    }
}

impl Tap {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `fault` to requests with `method` (or any method) whose path contains
    /// `path_part`, for the next `count` of them (or all).
    pub fn fault(
        &self,
        method: Option<&'static str>,
        path_part: &str,
        fault: Fault,
        count: Option<u32>,
    ) {
        self.lock().rules.push(Rule {
            method,
            path_part: path_part.to_owned(),
            fault,
            remaining: count,
        });
    }

    /// Removes every fault and lets hung requests go on.
    pub fn release(&self) {
        self.lock().rules.clear();
        self.released.send_modify(|g| *g += 1);
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Record> {
        self.lock().log.clone()
    }

    /// Records a request and says which fault applies to it.
    fn admit(&self, method: &str, path: &str, query: &str) -> (usize, Option<Fault>) {
        let mut inner = self.lock();
        let index = inner.log.len();
        inner.log.push(Record {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            issued: Instant::now(),
            sent: None,
            status: None,
        });
        let mut fault = None;
        for rule in &mut inner.rules {
            let applies = rule.method.is_none_or(|m| m == method)
                && path.contains(&rule.path_part)
                && rule.remaining != Some(0);
            if applies {
                if let Some(n) = &mut rule.remaining {
                    *n -= 1;
                }
                fault = Some(rule.fault);
                break;
            }
        }
        (index, fault)
    }

    fn mark_sent(&self, index: usize) {
        if let Some(record) = self.lock().log.get_mut(index) {
            record.sent = Some(Instant::now());
        }
    }

    fn mark_answered(&self, index: usize, status: u16) {
        if let Some(record) = self.lock().log.get_mut(index) {
            record.status = Some(status);
        }
    }
}

impl<S> tower::Layer<S> for Tap {
    type Service = Tapped<S>;

    fn layer(&self, inner: S) -> Tapped<S> {
        Tapped {
            inner,
            tap: self.clone(),
        }
    }
}

/// A client stack behind a [`Tap`].
#[derive(Debug, Clone)]
pub struct Tapped<S> {
    inner: S,
    tap: Tap,
}

impl<S, B> tower::Service<Request<Body>> for Tapped<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<TapBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<TapBody>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        let (index, fault) = self.tap.admit(&method, &path, &query);
        let tap = self.tap.clone();
        if let Some(Fault::Fail(code)) = fault {
            tap.mark_answered(index, code);
            return Box::pin(async move { Ok(status_response(code)) });
        }
        // The inner future sends nothing until polled.
        let answer = self.inner.call(request);
        Box::pin(async move {
            if fault == Some(Fault::Hang) {
                let mut released = tap.released.subscribe();
                let _ = released.changed().await;
            }
            tap.mark_sent(index);
            let response = answer.await.map_err(Into::into)?;
            tap.mark_answered(index, response.status().as_u16());
            Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
        })
    }
}

/// An error answer as the API server words it.
fn status_response(code: u16) -> Response<TapBody> {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the test ({code})"), "reason": "InternalError",
        "code": code,
    });
    let body = Full::new(Bytes::from(status.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A client of `config` whose requests go through `tap`.
pub fn client(config: kube::Config, tap: &Tap) -> kube::Client {
    kube::client::ClientBuilder::try_from(config)
        .expect("client")
        .with_layer(tap)
        .build()
}
