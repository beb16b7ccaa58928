//! `webhook`: the validating admission webhook's HTTPS shell. It reads an `admission.k8s.io/v1`
//! AdmissionReview, takes the cluster state the decision needs from the controller's caches
//! ([`crate::cache`]: no API request per review), asks the pure [`crate::admission::review`]
//! (the same rules as `validate`) and answers. The serving certificate comes from
//! [`crate::certs`].
//!
//! ```text
//!  API server ─HTTPS─► accept + TLS ─► parse_request ─► caches ─► admission::review ─► response
//! ```

use std::sync::Arc;

use bytes::Bytes;
use ferrolb_api::config::Objects;
use ferrolb_api::manifest::{self, Document, Object};
use ferrolb_shell::http::{Handshake, Limits, reply};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::admission::{self, Operation, Verdict};
use crate::cache::Caches;
use crate::metrics::Health;

/// The largest review accepted (the API server's own request limit is 3 MiB).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why a request could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not an AdmissionReview with a request.
    #[error("not an admission.k8s.io/v1 AdmissionReview: {0}")]
    BadReview(String),
    /// The caches have not finished their first list: a verdict now could be wrong.
    #[error("the controller's caches are not synced yet; try again")]
    NotSynced,
}

impl WebhookError {
    /// Stable CamelCase for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WebhookError::BadReview(_) => "BadReview",
            WebhookError::NotSynced => "NotSynced",
        }
    }
}

/// One admission request, as far as FerroLB cares.
#[derive(Debug)]
pub struct Review {
    /// Echoed back in the response.
    pub uid: String,
    /// CREATE, UPDATE or DELETE.
    pub operation: Operation,
    /// The object (the old one for DELETE), parsed with the `validate` code; `Err` holds the
    /// denial for an object whose shape is wrong, `Ok(None)` a kind that is not ours.
    pub object: Result<Option<Object>, String>,
    /// Warnings from parsing (a deprecated version).
    pub warnings: Vec<String>,
}

/// Parses an AdmissionReview body. Pure.
pub fn parse_request(body: &[u8]) -> Result<Review, WebhookError> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::BadReview(e.to_string()))?;
    let request = review
        .get("request")
        .ok_or_else(|| WebhookError::BadReview("no request".into()))?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .ok_or_else(|| WebhookError::BadReview("no request.uid".into()))?
        .to_owned();
    let operation = match request.get("operation").and_then(Value::as_str) {
        Some("CREATE") => Operation::Create,
        Some("UPDATE") => Operation::Update,
        Some("DELETE") => Operation::Delete,
        other => {
            return Err(WebhookError::BadReview(format!(
                "unsupported operation {other:?}"
            )));
        }
    };
    let field = if operation == Operation::Delete {
        "oldObject"
    } else {
        "object"
    };
    let raw = request.get(field).filter(|v| v.is_object());
    let mut warnings = Vec::new();
    let object = match raw {
        None => Ok(None),
        Some(raw) => {
            let bytes =
                serde_json::to_vec(raw).map_err(|e| WebhookError::BadReview(e.to_string()))?;
            match manifest::parse(&bytes) {
                Err(e) => Err(e.to_string()),
                Ok(mut documents) if documents.len() == 1 => match documents.remove(0) {
                    Document::Object { object, .. } => Ok(Some(*object)),
                    Document::Deprecated { object, warning } => {
                        warnings.push(warning);
                        Ok(Some(*object))
                    }
                    Document::Invalid(error) => Err(error.to_string()),
                    Document::Skipped(_) => Ok(None),
                },
                Ok(_) => Ok(None),
            }
        }
    };
    Ok(Review {
        uid,
        operation,
        object,
        warnings,
    })
}

/// The AdmissionReview answering `uid`. Pure.
pub fn response(uid: &str, verdict: &Verdict) -> Value {
    let mut response = json!({"uid": uid, "allowed": verdict.denied.is_none()});
    if let Some(message) = &verdict.denied {
        response["status"] = json!({"code": 403, "reason": "Forbidden", "message": message});
    }
    if !verdict.warnings.is_empty() {
        response["warnings"] = json!(verdict.warnings);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// What the webhook needs to judge requests.
#[derive(Debug, Clone)]
pub struct Context {
    /// The controller's caches of FerroLB's objects, Nodes and Services.
    pub caches: Caches,
    /// Says whether the caches have finished their first list.
    pub health: Arc<Health>,
    /// FerroLB's namespace.
    pub namespace: String,
}

/// FerroLB's objects, and the Nodes when the kind's rules look at them.
fn cluster_state(ctx: &Context, object: &Object) -> Objects {
    let with_nodes = matches!(object, Object::BgpAdvertisement(_) | Object::BgpPeer(_));
    ctx.caches.objects(with_nodes)
}

/// Judges one review body: the AdmissionReview to send back.
pub fn judge(ctx: &Context, body: &[u8]) -> Result<Value, WebhookError> {
    let review = parse_request(body)?;
    let mut verdict = match &review.object {
        Ok(None) => Verdict::default(),
        Err(denial) => Verdict {
            denied: Some(denial.clone()),
            warnings: Vec::new(),
        },
        Ok(Some(object)) => {
            if !ctx.health.is_synced() {
                return Err(WebhookError::NotSynced);
            }
            let existing = cluster_state(ctx, object);
            let in_use = match (review.operation, object) {
                (Operation::Update, Object::Pool(_)) => ctx.caches.services.in_use(),
                _ => Vec::new(),
            };
            admission::review(review.operation, object, &existing, &in_use, &ctx.namespace)
        }
    };
    verdict.warnings.extend(review.warnings);
    Ok(response(&review.uid, &verdict))
}

async fn handle(ctx: Arc<Context>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "POST an AdmissionReview\n",
        );
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return reply(StatusCode::BAD_REQUEST, "text/plain", format!("{error}\n"));
        }
    };
    match judge(&ctx, &body) {
        Ok(answer) => reply(StatusCode::OK, "application/json", answer.to_string()),
        Err(error) => {
            tracing::warn!(reason = error.reason(), %error, "admission request not judged");
            let status = match error {
                WebhookError::BadReview(_) => StatusCode::BAD_REQUEST,
                WebhookError::NotSynced => StatusCode::SERVICE_UNAVAILABLE,
            };
            reply(status, "text/plain", format!("{error}\n"))
        }
    }
}

/// The TLS handshake in front of the webhook's HTTP (bounded by [`Limits::handshake_timeout`]).
struct Tls(TlsAcceptor);

impl Handshake for Tls {
    type Io = TlsStream<TcpStream>;

    async fn handshake(&self, stream: TcpStream) -> std::io::Result<Self::Io> {
        self.0.accept(stream).await
    }
}

/// Serves the webhook over HTTPS on `listener` until the task is dropped, within the shared
/// server's bounds: the API server keeps a few connections open; anything holding more, or
/// stalling a handshake, is cut off before it exhausts the controller.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, ctx: Context) {
    let ctx = Arc::new(ctx);
    ferrolb_shell::http::serve(listener, Limits::default(), Tls(tls), move |request| {
        handle(Arc::clone(&ctx), request)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(operation: &str, object: Value) -> Vec<u8> {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": operation, "object": object, "oldObject": null}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_pool_in_a_review_is_parsed_with_the_validate_code() {
        let parsed = parse_request(&review(
            "CREATE",
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                   "metadata": {"name": "a", "namespace": "ferrolb-system"},
                   "spec": {"addresses": ["192.0.2.0/24"]}}),
        ))
        .expect("parsed");
        assert_eq!(parsed.uid, "u-1");
        assert_eq!(parsed.operation, Operation::Create);
        assert!(matches!(parsed.object, Ok(Some(Object::Pool(_)))));
    }

    fn empty_caches() -> Caches {
        use kube::runtime::reflector::store;
        Caches {
            services: Default::default(),
            pools: store().0,
            namespaces: store().0,
            l2_advertisements: store().0,
            bgp_advertisements: store().0,
            bgp_peers: store().0,
            bfd_profiles: store().0,
            communities: store().0,
            nodes: store().0,
        }
    }

    #[test]
    fn a_review_before_the_caches_are_synced_is_not_judged() {
        let ctx = Context {
            caches: empty_caches(),
            health: Arc::default(),
            namespace: "ferrolb-system".into(),
        };
        let body = review(
            "CREATE",
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                   "metadata": {"name": "a", "namespace": "ferrolb-system"},
                   "spec": {"addresses": ["192.0.2.0/24"]}}),
        );
        // An empty cache would admit an overlap it cannot see.
        assert!(matches!(judge(&ctx, &body), Err(WebhookError::NotSynced)));
        ctx.health.set_synced(true);
        let answer = judge(&ctx, &body).expect("judged");
        assert_eq!(answer["response"]["allowed"], true);
    }

    #[test]
    fn a_review_without_a_uid_is_refused() {
        let body = json!({"request": {"operation": "CREATE"}}).to_string();
        assert!(matches!(
            parse_request(body.as_bytes()),
            Err(WebhookError::BadReview(_))
        ));
    }

    #[test]
    fn a_denial_carries_the_message_and_uid() {
        let answer = response(
            "u-1",
            &Verdict {
                denied: Some("IPAddressPool/a: spec.addresses[0]: bad".into()),
                warnings: vec!["w".into()],
            },
        );
        assert_eq!(answer["response"]["uid"], "u-1");
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 403);
        assert_eq!(
            answer["response"]["status"]["message"],
            "IPAddressPool/a: spec.addresses[0]: bad"
        );
        assert_eq!(answer["response"]["warnings"][0], "w");
    }
}
