//! [`MemSim`]: kubesim's API (its store, watches, optimistic concurrency) served to kube clients
//! through memory instead of TCP. Without sockets nothing waits on the kernel, so a whole
//! scenario — elections, renewals, takeovers — runs on paused tokio time, exactly and fast.
//! No admission webhooks and no RBAC: tests that need those use kubesim over TCP.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use ferrolb_kubesim::Options;
use ferrolb_kubesim::api::{ApiState, Reply};
use ferrolb_kubesim::error::ApiError;
use ferrolb_kubesim::fixtures::load_manifests;
use ferrolb_kubesim::request::ResourceRequest;
use ferrolb_kubesim::routing::{self, Query, Route};
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::Value;

use super::tap::Tap;

type MemBody = UnsyncBoxBody<Bytes, Infallible>;

/// An in-memory API server. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub struct MemSim {
    state: Arc<ApiState>,
}

impl MemSim {
    /// An empty cluster with its default namespaces, FerroLB's CRDs and namespaces `NS` and
    /// `shop`.
    pub fn start() -> MemSim {
        let state = Arc::new(ApiState::new(Options::default(), 7));
        state.bootstrap().expect("bootstrap");
        let sim = MemSim { state };
        for crd in load_manifests(&super::crds()).expect("CRDs") {
            sim.create(crd);
        }
        for namespace in [super::NS, "shop"] {
            sim.create(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}));
        }
        sim
    }

    /// Creates an object straight in the store.
    pub fn create(&self, object: Value) -> Value {
        let text = |k: &str| {
            object
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let res = self
            .state
            .registry()
            .resolve_kind(&text("apiVersion"), &text("kind"))
            .expect("a served kind");
        let namespace = res.info.namespaced.then(|| {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned()
        });
        self.state
            .create(&res, namespace.as_deref(), object, &Query::default())
            .expect("created")
    }

    /// A client whose requests go through `tap` to this server.
    pub fn client(&self, tap: &Tap) -> kube::Client {
        kube::client::ClientBuilder::new(self.clone(), "default")
            .with_layer(tap)
            .build()
    }
}

impl tower::Service<Request<Body>> for MemSim {
    type Response = Response<MemBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<MemBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move { Ok(answer(&state, request).await) })
    }
}

async fn answer(state: &ApiState, request: Request<Body>) -> Response<MemBody> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return error(&ApiError::BadRequest(e.to_string())),
    };
    let Route::Object {
        group,
        version,
        rest,
    } = routing::route(parts.uri.path())
    else {
        return error(&ApiError::NoSuchPath);
    };
    let target = match routing::resolve(&state.registry(), &group, &version, &rest) {
        Ok(target) => target,
        Err(e) => return error(&e),
    };
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let request = ResourceRequest {
        method: parts.method.as_str(),
        target,
        query: Query::parse(parts.uri.query()),
        accept: header(hyper::header::ACCEPT),
        content_type: header(hyper::header::CONTENT_TYPE),
        user_agent: header(hyper::header::USER_AGENT),
        body,
    };
    match state.handle(request) {
        Ok(Reply::Json(code, value)) => json(code, &value),
        Ok(Reply::Stream(rx)) => {
            let frames = tokio_stream_of(rx).map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
            let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Ok(Reply::StreamLine(line)) => {
            let mut response = Response::new(Full::new(line).boxed_unsync());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => error(&e),
    }
}

/// The lines of a watch as a stream.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> + Send + Unpin {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (bytes, rx))
    }))
}

fn json(code: u16, value: &Value) -> Response<MemBody> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(e: &ApiError) -> Response<MemBody> {
    json(e.code(), &e.to_status())
}

/// Reads `path` (a manifest file) for tests that load more objects.
pub fn manifests(path: &Path) -> Vec<Value> {
    load_manifests(path).expect("manifests")
}
