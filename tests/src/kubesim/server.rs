//! The HTTP shell: accepts connections (plain HTTP/1.1), routes each request to discovery,
//! OpenAPI or [`ApiState::handle`], and writes JSON bodies, error Status bodies and watch
//! streams. Decides nothing about the API itself.
//!
//! ```text
//!  TcpListener ──accept──▶ connection task ──request──▶ route ──▶ ApiState (store, registry)
//!                                ▲                                  │ watch: mpsc<Bytes>
//!                                └──────── response body ◀──────────┘
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api::{ApiState, Reply, RequestRecord, ResourceRequest};
use super::discovery;
use super::error::ApiError;
use super::routing::{self, Query, Route};

/// The response body type: a whole JSON document or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    json_response(error.code(), &error.to_status())
}

fn stream_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(http_body_util::BodyExt::boxed(StreamBody::new(Box::pin(
        stream,
    ))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn header(req: &hyper::http::request::Parts, name: hyper::header::HeaderName) -> &str {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Answers one request and records it.
async fn handle(
    state: Arc<ApiState>,
    address: Arc<str>,
    request: Request<Incoming>,
) -> Response<Body> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let (response, status) = answer(Arc::clone(&state), address, request).await;
    state.record(RequestRecord {
        method,
        path,
        query,
        status,
    });
    response
}

fn with_status(response: Response<Body>) -> (Response<Body>, u16) {
    let status = response.status().as_u16();
    (response, status)
}

/// Answers one request; also says which status to record.
async fn answer(
    state: Arc<ApiState>,
    address: Arc<str>,
    request: Request<Incoming>,
) -> (Response<Body>, u16) {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return with_status(error_response(&ApiError::BadRequest(format!(
                "reading the body: {e}"
            ))));
        }
    };
    let path = parts.uri.path();
    let query = Query::parse(parts.uri.query());
    let registry = state.registry();
    let found = |doc: Option<Value>| match doc {
        Some(doc) => json_response(200, &doc),
        None => error_response(&ApiError::NoSuchPath),
    };
    let response = match routing::route(path) {
        Route::Version => json_response(200, &discovery::version()),
        Route::Health => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Route::CoreVersions => json_response(200, &discovery::core_versions(&address)),
        Route::Groups => json_response(200, &discovery::group_list(&registry)),
        Route::Group(g) => found(discovery::group(&registry, &g)),
        Route::Resources { group, version } => {
            found(discovery::resource_list(&registry, &group, &version))
        }
        Route::OpenApiV3Root => json_response(200, &discovery::openapi_v3_root(&registry)),
        Route::OpenApiV3 { group, version } => {
            found(discovery::openapi_v3_document(&registry, &group, &version))
        }
        // The v2 document is protobuf-only for kubectl; without it kubectl uses v3.
        Route::OpenApiV2 | Route::Unknown => error_response(&ApiError::NoSuchPath),
        Route::Object {
            group,
            version,
            rest,
        } => {
            let target = match routing::resolve(&registry, &group, &version, &rest) {
                Ok(target) => target,
                Err(e) => return with_status(error_response(&e)),
            };
            let request = ResourceRequest {
                method: parts.method.as_str(),
                target,
                query,
                accept: header(&parts, ACCEPT),
                content_type: header(&parts, CONTENT_TYPE),
                body,
            };
            match state.handle(request) {
                Ok(Reply::Json(code, value)) => json_response(code, &value),
                Ok(Reply::Stream(rx)) => stream_response(rx),
                Ok(Reply::StreamLine(line)) => {
                    let mut response = Response::new(Full::new(line).boxed());
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    return (response, 410);
                }
                Err(e) => error_response(&e),
            }
        }
    };
    with_status(response)
}

/// Serves `listener` until `shutdown` turns true; open connections (watches included) are
/// closed then too.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let address: Arc<str> = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
        .into();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let state = Arc::clone(&state);
        let address = Arc::clone(&address);
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                let address = Arc::clone(&address);
                async move { Ok::<_, Infallible>(handle(state, address, request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = conn_shutdown.wait_for(|stop| *stop) => {}
            }
        });
    }
}
