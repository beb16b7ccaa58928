//! Validating admission webhooks: the stored `ValidatingWebhookConfiguration`s
//! (admissionregistration.k8s.io/v1) are matched against each write (operations, apiGroups,
//! apiVersions, resources with subresources, scope), and every matching webhook is sent an
//! `AdmissionReview` v1 over HTTPS — to `clientConfig.url`, or to `clientConfig.service` mapped
//! to an address by [`Options::webhook_services`] — verifying the server with its `caBundle`.
//! A denial becomes the error the real API server answers; warnings come back as `Warning:`
//! headers; `timeoutSeconds` and `failurePolicy` (Fail/Ignore) apply to calls that fail.
//!
//! The object a webhook sees is the result of the same request run with `dryRun=All` first, so
//! the write and the review can race with another writer (a test fixture accepts that).
//! Not done: namespaceSelector, objectSelector, matchConditions, mutating webhooks, deletecollection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::api::{ApiState, Options, Reply};
use super::auth::UserInfo;
use super::error::ApiError;
use super::meta::meta_str;
use super::request::ResourceRequest;

const GROUP: &str = "admissionregistration.k8s.io";

/// Why calling one webhook failed (its failurePolicy decides what the client sees).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook has no usable clientConfig: {0}")]
    BadClientConfig(String),
    #[error("no address configured for service {0} (Options::webhook_services)")]
    UnknownService(String),
    #[error("caBundle holds no certificate")]
    NoCaBundle,
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Connect(std::io::Error),
    #[error("context deadline exceeded")]
    Timeout,
    #[error("{0}")]
    Http(String),
    #[error("the server responded with status {0}")]
    Status(u16),
    #[error("the response is not an AdmissionReview: {0}")]
    BadResponse(String),
}

impl WebhookError {
    /// Stable CamelCase, for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadClientConfig(_) => "BadClientConfig",
            Self::UnknownService(_) => "UnknownService",
            Self::NoCaBundle => "NoCaBundle",
            Self::Tls(_) => "Tls",
            Self::Connect(_) => "Connect",
            Self::Timeout => "Timeout",
            Self::Http(_) => "Http",
            Self::Status(_) => "Status",
            Self::BadResponse(_) => "BadResponse",
        }
    }
}

/// One write as admission sees it.
#[derive(Debug)]
struct Attributes {
    operation: &'static str,
    group: String,
    version: String,
    kind: String,
    resource: String,
    subresource: String,
    namespaced: bool,
    namespace: String,
    name: String,
    object: Value,
    old_object: Value,
    dry_run: bool,
}

fn listed(list: Option<&Value>, want: &str) -> bool {
    list.and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|v| v == "*" || v == want))
}

fn resource_listed(rule: &Value, resource: &str, subresource: &str) -> bool {
    let Some(patterns) = rule.get("resources").and_then(Value::as_array) else {
        return false;
    };
    patterns.iter().filter_map(Value::as_str).any(|pattern| {
        let (res, sub) = pattern.split_once('/').unwrap_or((pattern, ""));
        (res == "*" || res == resource) && (sub == "*" || sub == subresource)
    })
}

fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !attrs.namespaced,
        "Namespaced" => attrs.namespaced,
        _ => true,
    };
    scope_ok
        && listed(rule.get("operations"), attrs.operation)
        && listed(rule.get("apiGroups"), &attrs.group)
        && listed(rule.get("apiVersions"), &attrs.version)
        && resource_listed(rule, &attrs.resource, &attrs.subresource)
}

/// The webhooks of the stored configurations whose rules match, in order.
fn matching(configs: &[Value], attrs: &Attributes) -> Vec<Value> {
    configs
        .iter()
        .filter_map(|c| c.get("webhooks").and_then(Value::as_array))
        .flatten()
        .filter(|hook| {
            hook.get("rules")
                .and_then(Value::as_array)
                .is_some_and(|rules| rules.iter().any(|r| rule_matches(r, attrs)))
        })
        .cloned()
        .collect()
}

/// Where to send a review: the TCP address, the TLS name, the HTTP path and Host header.
struct Endpoint {
    address: String,
    server_name: String,
    path: String,
    host: String,
}

fn endpoint(client_config: &Value, options: &Options) -> Result<Endpoint, WebhookError> {
    if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| WebhookError::BadClientConfig(format!("url {url:?}: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(WebhookError::BadClientConfig(format!(
                "url {url:?} is not https"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| WebhookError::BadClientConfig(format!("url {url:?} has no host")))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        return Ok(Endpoint {
            address: format!("{host}:{port}"),
            server_name: bare.to_owned(),
            path: uri
                .path_and_query()
                .map_or("/".to_owned(), |p| p.as_str().to_owned()),
            host: format!("{host}:{port}"),
        });
    }
    let service = client_config
        .get("service")
        .ok_or_else(|| WebhookError::BadClientConfig("neither url nor service".into()))?;
    let field = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or("");
    let (namespace, name) = (field("namespace"), field("name"));
    let key = format!("{namespace}/{name}");
    let address: SocketAddr = *options
        .webhook_services
        .get(&key)
        .ok_or(WebhookError::UnknownService(key))?;
    let path = match field("path") {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    let server_name = format!("{name}.{namespace}.svc");
    Ok(Endpoint {
        address: address.to_string(),
        host: server_name.clone(),
        server_name,
        path,
    })
}

fn tls_config(client_config: &Value) -> Result<rustls::ClientConfig, WebhookError> {
    let bundle = client_config
        .get("caBundle")
        .and_then(Value::as_str)
        .unwrap_or("");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .map_err(|e| WebhookError::Tls(format!("caBundle is not base64: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| WebhookError::Tls(format!("caBundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| WebhookError::Tls(format!("caBundle: {e}")))?;
    }
    if roots.is_empty() {
        return Err(WebhookError::NoCaBundle);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Sends one review and returns the webhook's `response`.
async fn call(hook: &Value, review: &Value, options: &Options) -> Result<Value, WebhookError> {
    let client_config = hook.get("clientConfig").cloned().unwrap_or(Value::Null);
    let endpoint = endpoint(&client_config, options)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&client_config)?));
    let server_name = ServerName::try_from(endpoint.server_name.clone())
        .map_err(|e| WebhookError::Tls(e.to_string()))?;
    let tcp = TcpStream::connect(&endpoint.address)
        .await
        .map_err(WebhookError::Connect)?;
    let stream = tls
        .connect(server_name, tcp)
        .await
        .map_err(|e| WebhookError::Tls(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    tokio::spawn(connection);
    let request = Request::post(&endpoint.path)
        .header(hyper::header::HOST, &endpoint.host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| WebhookError::Http(e.to_string()))?
        .to_bytes();
    if status != 200 {
        return Err(WebhookError::Status(status));
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|e| WebhookError::BadResponse(e.to_string()))?;
    answer
        .get("response")
        .filter(|r| r.get("allowed").is_some_and(Value::is_boolean))
        .cloned()
        .ok_or_else(|| WebhookError::BadResponse("no response.allowed".into()))
}

fn review(attrs: &Attributes, uid: &str, user: &UserInfo) -> Value {
    let mut request = json!({
        "uid": uid,
        "kind": {"group": attrs.group, "version": attrs.version, "kind": attrs.kind},
        "resource": {"group": attrs.group, "version": attrs.version, "resource": attrs.resource},
        "requestKind": {"group": attrs.group, "version": attrs.version, "kind": attrs.kind},
        "requestResource": {"group": attrs.group, "version": attrs.version, "resource": attrs.resource},
        "name": attrs.name,
        "operation": attrs.operation,
        "userInfo": {"username": user.username, "groups": user.groups},
        "object": attrs.object,
        "oldObject": attrs.old_object,
        "dryRun": attrs.dry_run,
    });
    if !attrs.namespace.is_empty() {
        request["namespace"] = json!(attrs.namespace);
    }
    if !attrs.subresource.is_empty() {
        request["subResource"] = json!(attrs.subresource);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// The error a denial becomes, worded as the real server's `webhookerrors.ToStatusErr`: the
/// webhook's code (400 when it gave none below 400), its reason, and
/// `admission webhook "NAME" denied the request: MESSAGE`.
fn denial(name: &str, response: &Value) -> ApiError {
    let status = response.get("status").cloned().unwrap_or(Value::Null);
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook {name:?} denied the request");
    let message = match (message, reason) {
        ("", "") => format!("{denied_by} without explanation"),
        ("", reason) => format!("{denied_by}: {reason}"),
        (message, _) => format!("{denied_by}: {message}"),
    };
    ApiError::Denied {
        code,
        reason: reason.to_owned(),
        message,
    }
}

/// Writes that admission sees: creates, updates, patches and deletes of one object, except of
/// the webhook configurations themselves (the real server never sends those to webhooks).
fn operation(req: &ResourceRequest<'_>) -> Option<&'static str> {
    if req.target.res.info.group == GROUP {
        return None;
    }
    match (req.method, req.target.name.is_some()) {
        ("POST", false) => Some("CREATE"),
        ("PUT" | "PATCH", true) => Some("UPDATE"),
        ("DELETE", true) => Some("DELETE"),
        _ => None,
    }
}

/// Runs the validating webhooks that match `req` from `user` (the admin when RBAC is off):
/// `Ok(warnings)` when the write may go on.
pub async fn admit(
    state: &ApiState,
    req: &ResourceRequest<'_>,
    user: Option<&UserInfo>,
) -> Result<Vec<String>, ApiError> {
    let Some(operation) = operation(req) else {
        return Ok(Vec::new());
    };
    let (_, configs) = state
        .store
        .list(GROUP, "validatingwebhookconfigurations", None);
    if configs.is_empty() {
        return Ok(Vec::new());
    }
    let Some(attrs) = attributes(state, req, operation)? else {
        return Ok(Vec::new());
    };
    let admin = UserInfo::admin();
    let user = user.unwrap_or(&admin);
    let mut warnings = Vec::new();
    for (n, hook) in matching(&configs, &attrs).iter().enumerate() {
        let uid = format!("kubesim-review-{}-{n}", state.store.resource_version());
        warnings.extend(ask(state, hook, &review(&attrs, &uid, user)).await?);
    }
    Ok(warnings)
}

/// What the webhooks are told about `req`: the object as it would be stored (from a dry run of
/// the request itself) and the stored one. `None` when there is nothing to review (a watch).
fn attributes(
    state: &ApiState,
    req: &ResourceRequest<'_>,
    mut operation: &'static str,
) -> Result<Option<Attributes>, ApiError> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let old_object = match &t.name {
        Some(name) => state
            .get(&t.res, t.namespace.as_deref(), name)
            .unwrap_or(Value::Null),
        None => Value::Null,
    };
    if operation == "UPDATE" && old_object.is_null() {
        operation = "CREATE"; // a server-side apply that creates
    }
    let mut query = req.query.clone();
    query.set("dryRun", "All");
    let dry = ResourceRequest {
        method: req.method,
        target: t.clone(),
        query,
        accept: "application/json",
        content_type: req.content_type,
        user_agent: req.user_agent,
        body: req.body.clone(),
    };
    let object = match state.handle(dry)? {
        _ if operation == "DELETE" => Value::Null,
        Reply::Json(_, object) => object,
        Reply::Stream(_) | Reply::StreamLine(_) => return Ok(None),
    };
    Ok(Some(Attributes {
        operation,
        group: t.res.info.group.clone(),
        version: t.res.version.clone(),
        kind: t.res.info.kind.clone(),
        resource: t.res.info.plural.clone(),
        subresource: t.subresource.clone().unwrap_or_default(),
        namespaced: t.res.info.namespaced,
        namespace: t.namespace.clone().unwrap_or_default(),
        name: if name.is_empty() {
            meta_str(&object, "name").to_owned()
        } else {
            name
        },
        object,
        old_object,
        dry_run: req.query.get("dryRun") == Some("All"),
    }))
}

/// Calls one webhook with `review`: its warnings when it allows the write, the denial when it
/// does not, or the failure when it cannot be called (unless its failurePolicy is Ignore).
async fn ask(state: &ApiState, hook: &Value, review: &Value) -> Result<Vec<String>, ApiError> {
    let hook_name = hook.get("name").and_then(Value::as_str).unwrap_or("");
    let timeout = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    let called = tokio::time::timeout(
        Duration::from_secs(timeout),
        call(hook, review, &state.options),
    )
    .await
    .unwrap_or(Err(WebhookError::Timeout));
    match called {
        Ok(response) => {
            if response.get("allowed") != Some(&Value::Bool(true)) {
                return Err(denial(hook_name, &response));
            }
            let warnings = response.get("warnings").and_then(Value::as_array);
            Ok(warnings
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect())
        }
        Err(_) if hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") => {
            Ok(Vec::new())
        }
        Err(e) => Err(ApiError::Internal(format!(
            "failed calling webhook {hook_name:?}: failed to call webhook: {e}"
        ))),
    }
}

/// Maps `namespace/name` of a webhook Service to the address its server listens on.
pub type ServiceAddresses = BTreeMap<String, SocketAddr>;
