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
use ferrolb_netlab::AcceptErrors;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT,
    WARNING,
};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api::{ApiState, Reply, RequestRecord};
use super::auth;
use super::error::ApiError;
use super::faults::FaultStatus;
use super::request::{self, ResourceRequest};
use super::routing::{self, Query, Route};
use super::selectors::FieldSelector;
use super::webhooks;
use super::{aggregated, discovery, openapi_v2};

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

/// `response` with another `Content-Type` (a media type with parameters, for discovery).
fn with_content_type(mut response: Response<Body>, content_type: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    json_response(error.code(), &error.to_status())
}

/// A watch stream's body: goes silent while the server is paused and ends when a test drops
/// every watch.
fn stream_response(state: Arc<ApiState>, rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut drops = state.faults.watch_drops();
    drops.mark_unchanged();
    let stream = futures::stream::unfold(
        (rx, drops, state),
        |(mut rx, mut drops, state)| async move {
            let bytes = tokio::select! {
                received = rx.recv() => received?,
                _ = drops.changed() => return None,
            };
            state.faults.wait_unpaused().await;
            if drops.has_changed().unwrap_or(true) {
                return None;
            }
            Some((Ok::<_, Infallible>(Frame::data(bytes)), (rx, drops, state)))
        },
    );
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
    let client = bearer_token(request.headers()).to_owned();
    state.faults.wait_unpaused().await;
    state.faults.wait_unless_held(&client, &method, &path).await;
    let (response, status, user) = match state.faults.take_failure() {
        Some(fault) => {
            let (response, status) = with_status(fault_response(fault));
            (response, status, String::new())
        }
        None => answer(Arc::clone(&state), address, request).await,
    };
    state.record(RequestRecord {
        method,
        path,
        query,
        status,
        user,
        client,
    });
    response
}

/// The bearer token of a request (empty without one): who sent it, for holds and the log.
fn bearer_token(headers: &hyper::HeaderMap) -> &str {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or("", str::trim)
}

/// The answer to a request that an injected fault fails.
fn fault_response(fault: FaultStatus) -> Response<Body> {
    let mut response = json_response(fault.code(), &fault.to_status());
    if let Some(secs) = fault.retry_after_secs() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Reads a request body of at most `limit` bytes; a larger one is 413, as on the real server.
async fn read_body(
    parts: &hyper::http::request::Parts,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::RequestEntityTooLarge { limit };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large),
        Err(e) => Err(ApiError::BadRequest(format!("reading the body: {e}"))),
    }
}

/// `Warning: 299 - "text"` headers (RFC 7234 §5.5), as the real server relays webhook warnings.
fn add_warnings(response: &mut Response<Body>, warnings: &[String]) {
    for text in warnings {
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append(WARNING, value);
        }
    }
}

fn with_status(response: Response<Body>) -> (Response<Body>, u16) {
    let status = response.status().as_u16();
    (response, status)
}

/// Answers one request; also says which status and user (empty: unknown, or RBAC off) to
/// record.
async fn answer(
    state: Arc<ApiState>,
    address: Arc<str>,
    request: Request<Incoming>,
) -> (Response<Body>, u16, String) {
    let (parts, body) = request.into_parts();
    let user = match authenticate(&state, &parts) {
        Ok(user) => user,
        Err(e) => {
            let (response, status) = with_status(error_response(&e));
            return (response, status, String::new());
        }
    };
    let name = user
        .as_ref()
        .map(|u| u.username.clone())
        .unwrap_or_default();
    let (response, status) = answer_as(&state, &address, parts, body, user).await;
    (response, status, name)
}

/// Answers one authenticated request.
async fn answer_as(
    state: &Arc<ApiState>,
    address: &str,
    parts: Parts,
    body: Incoming,
    user: Option<auth::UserInfo>,
) -> (Response<Body>, u16) {
    let body = match read_body(&parts, body, state.options.max_request_body_bytes).await {
        Ok(body) => body,
        Err(e) => return with_status(error_response(&e)),
    };
    match routing::route(parts.uri.path()) {
        Route::Object {
            group,
            version,
            rest,
        } => {
            let path = ObjectPath {
                group: &group,
                version: &version,
                rest: &rest,
            };
            resource(state, &parts, user.as_ref(), path, body).await
        }
        route => with_status(non_resource(state, address, &parts, route)),
    }
}

/// Who sent the request. With RBAC on, every request needs a known token; discovery and
/// health paths are then open to any authenticated user, and resource requests are authorised
/// later. Anonymous requests are allowed only on the public-info paths, as with the real
/// server's anonymous authenticator limited to those endpoints (kubectl asks /version untokened).
fn authenticate(state: &ApiState, parts: &Parts) -> Result<Option<auth::UserInfo>, ApiError> {
    if !state.options.rbac {
        return Ok(None);
    }
    match state.tokens.authenticate(header(parts, AUTHORIZATION)) {
        Ok(user) => Ok(Some(user)),
        Err(_) if auth::is_public_info_path(parts.uri.path()) => {
            Ok(Some(auth::UserInfo::anonymous()))
        }
        Err(e) => Err(e),
    }
}

/// Discovery, OpenAPI, version and health answers.
fn non_resource(state: &ApiState, address: &str, parts: &Parts, route: Route) -> Response<Body> {
    let registry = state.registry();
    let found = |doc: Option<Value>| match doc {
        Some(doc) => json_response(200, &doc),
        None => error_response(&ApiError::NoSuchPath),
    };
    match route {
        Route::Version => json_response(200, &discovery::version()),
        Route::Health => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Route::CoreVersions | Route::Groups
            if let Some(version) = aggregated::negotiate(header(parts, ACCEPT)) =>
        {
            let core = matches!(route, Route::CoreVersions);
            let doc = aggregated::document(&registry, core, version);
            with_content_type(json_response(200, &doc), &aggregated::content_type(version))
        }
        Route::CoreVersions => json_response(200, &discovery::core_versions(address)),
        Route::Groups => json_response(200, &discovery::group_list(&registry)),
        Route::Group(g) => found(discovery::group(&registry, &g)),
        Route::Resources { group, version } => {
            found(discovery::resource_list(&registry, &group, &version))
        }
        Route::OpenApiV3Root => json_response(200, &discovery::openapi_v3_root(&registry)),
        Route::OpenApiV3 { group, version } => {
            found(discovery::openapi_v3_document(&registry, &group, &version))
        }
        Route::OpenApiV2 if openapi_v2::wants_protobuf(header(parts, ACCEPT)) => {
            let body = Full::new(Bytes::from(openapi_v2::protobuf_document())).boxed();
            with_content_type(Response::new(body), openapi_v2::PROTOBUF_CONTENT_TYPE)
        }
        Route::OpenApiV2 => json_response(200, &openapi_v2::json_document()),
        Route::Unknown | Route::Object { .. } => error_response(&ApiError::NoSuchPath),
    }
}

/// The parts of a resource path (`/api/v1/...` or `/apis/GROUP/VERSION/...`).
#[derive(Debug, Clone, Copy)]
struct ObjectPath<'a> {
    group: &'a str,
    version: &'a str,
    rest: &'a [String],
}

/// A request on a resource: resolved, authorised, passed through the admission webhooks, then
/// handled by the API.
async fn resource(
    state: &Arc<ApiState>,
    parts: &Parts,
    user: Option<&auth::UserInfo>,
    path: ObjectPath<'_>,
    body: Bytes,
) -> (Response<Body>, u16) {
    let registry = state.registry();
    let target = match routing::resolve(&registry, path.group, path.version, path.rest) {
        Ok(target) => target,
        Err(e) => return with_status(error_response(&e)),
    };
    let request = ResourceRequest {
        method: parts.method.as_str(),
        target,
        query: Query::parse(parts.uri.query()),
        accept: header(parts, ACCEPT),
        content_type: header(parts, CONTENT_TYPE),
        user_agent: header(parts, USER_AGENT),
        body,
    };
    match access(state, user, &request) {
        Ok(None) => {}
        Ok(Some(answer)) => return with_status(json_response(201, &answer)),
        Err(e) => return with_status(error_response(&e)),
    }
    let warnings = match webhooks::admit(state, &request, user).await {
        Ok(warnings) => warnings,
        Err(e) => return with_status(error_response(&e)),
    };
    let response = match state.handle(request) {
        Ok(Reply::Json(code, value)) => {
            let mut response = json_response(code, &value);
            add_warnings(&mut response, &warnings);
            response
        }
        Ok(Reply::Stream(rx)) => stream_response(Arc::clone(state), rx),
        Ok(Reply::StreamLine(line)) => {
            let mut response = Response::new(Full::new(line).boxed());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return (response, 410);
        }
        Err(e) => error_response(&e),
    };
    with_status(response)
}

/// RBAC for one resource request: `Err` when forbidden, `Ok(Some(answer))` for a
/// SelfSubjectAccessReview (answered here, never stored), `Ok(None)` to go on.
fn access(
    state: &ApiState,
    user: Option<&auth::UserInfo>,
    request: &ResourceRequest<'_>,
) -> Result<Option<Value>, ApiError> {
    let t = &request.target;
    let is_review = t.res.info.group == "authorization.k8s.io"
        && t.res.info.plural == "selfsubjectaccessreviews";
    if let Some(user) = user {
        let verb = auth::verb(
            request.method,
            t.name.is_some(),
            request.query.flag("watch"),
        );
        let attrs = auth::ResourceAttributes {
            verb: verb.into(),
            group: t.res.info.group.clone(),
            resource: t.res.info.plural.clone(),
            subresource: t.subresource.clone().unwrap_or_default(),
            namespace: t.namespace.clone().unwrap_or_default(),
            name: t
                .name
                .clone()
                .or_else(|| name_from_field_selector(verb, &request.query))
                .unwrap_or_default(),
        };
        if !auth::allows(&state.store, user, &attrs) {
            return Err(attrs.forbidden(user));
        }
    }
    if !is_review {
        return Ok(None);
    }
    if request.method != "POST" || t.name.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    // kubectl sends protobuf first; the 415 for a kind the decoder lacks makes it resend JSON.
    let review = request::parse_body(request.content_type, &request.body)?;
    let admin = auth::UserInfo::admin();
    Ok(Some(auth::self_subject_access_review(
        &state.store,
        user.unwrap_or(&admin),
        review,
    )))
}

/// The name a list or watch is pinned to with a `metadata.name=` field selector: the real
/// server authorises it as a request for that name, so `resourceNames` rules allow it.
fn name_from_field_selector(verb: &str, query: &Query) -> Option<String> {
    if !matches!(verb, "list" | "watch") {
        return None;
    }
    let selector = FieldSelector::parse(query.get("fieldSelector")?).ok()?;
    selector.pinned_name().map(str::to_owned)
}

/// Serves HTTP/1.1 on one connection (plain or TLS) until it closes or the server stops.
async fn connection<I>(
    io: I,
    state: Arc<ApiState>,
    address: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = state.options.header_read_timeout;
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        let address = Arc::clone(&address);
        async move { Ok::<_, Infallible>(handle(state, address, request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = connection => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
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
    let header_read_timeout = state.options.header_read_timeout;
    let mut errors = AcceptErrors::new("kubesim");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                errors.pause_after(&error).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        let address = Arc::clone(&address);
        let conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            // With a serving certificate, a connection whose first byte starts a TLS handshake
            // (0x16) is HTTPS; anything else is plain HTTP on the same port.
            let Some(tls) = state.tls.clone() else {
                return connection(stream, state, address, conn_shutdown).await;
            };
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(header_read_timeout, stream.peek(&mut first)).await;
            if !matches!(peeked, Ok(Ok(1))) {
                return;
            }
            if first[0] != 0x16 {
                return connection(stream, state, address, conn_shutdown).await;
            }
            let handshake = tokio::time::timeout(header_read_timeout, tls.acceptor.accept(stream));
            if let Ok(Ok(stream)) = handshake.await {
                connection(stream, state, address, conn_shutdown).await;
            }
        });
    }
}
