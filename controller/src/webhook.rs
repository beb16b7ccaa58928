//! `webhook`: the validating admission webhook's HTTPS shell. It reads an `admission.k8s.io/v1`
//! AdmissionReview, fetches the cluster state the decision needs, asks the pure
//! [`crate::admission::review`] (the same rules as `validate`) and answers. The serving
//! certificate comes from [`crate::certs`].
//!
//! ```text
//!  API server ─HTTPS─► accept + TLS ─► parse_request ─► cluster_state (lists) ─► admission::review ─► response
//! ```

use std::sync::Arc;

use bytes::Bytes;
use ferrolb_api::config::Objects;
use ferrolb_api::manifest::{self, Document, Object};
use ferrolb_api::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission::{self, InUse, Operation, Verdict};
use crate::http::{reply, serve_connection};
use crate::plan;

/// The largest review accepted (the API server's own request limit is 3 MiB).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why a request could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not an AdmissionReview with a request.
    #[error("not an admission.k8s.io/v1 AdmissionReview: {0}")]
    BadReview(String),
    /// Reading the cluster state failed.
    #[error("reading the cluster state: {0}")]
    ClusterState(#[from] kube::Error),
}

impl WebhookError {
    /// Stable CamelCase for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WebhookError::BadReview(_) => "BadReview",
            WebhookError::ClusterState(_) => "ClusterState",
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
#[derive(Clone)]
pub struct Context {
    /// API client for the cluster-state lists.
    pub client: Client,
    /// FerroLB's namespace.
    pub namespace: String,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// FerroLB's objects in its namespace, and the Nodes when the kind's rules look at them.
async fn cluster_state(ctx: &Context, object: &Object) -> Result<Objects, WebhookError> {
    async fn list<K>(client: &Client, namespace: &str) -> Result<Vec<K>, kube::Error>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + k8s_openapi::serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        Ok(api.list(&ListParams::default()).await?.items)
    }
    let (c, ns) = (&ctx.client, ctx.namespace.as_str());
    let nodes = match object {
        Object::BgpAdvertisement(_) | Object::BgpPeer(_) => Some(
            Api::<Node>::all(c.clone())
                .list(&ListParams::default())
                .await?
                .items,
        ),
        _ => None,
    };
    Ok(Objects {
        pools: list::<IPAddressPool>(c, ns).await?,
        l2_advertisements: list::<L2Advertisement>(c, ns).await?,
        bgp_advertisements: list::<BGPAdvertisement>(c, ns).await?,
        bgp_peers: list::<BGPPeer>(c, ns).await?,
        bfd_profiles: list::<BFDProfile>(c, ns).await?,
        communities: list::<Community>(c, ns).await?,
        secrets: None,
        nodes,
    })
}

/// Addresses Services hold, from their statuses and pool annotations.
async fn addresses_in_use(ctx: &Context) -> Result<Vec<InUse>, WebhookError> {
    let services = Api::<Service>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let mut in_use = Vec::new();
    for service in &services.items {
        let Some(pool) = plan::current_pool(service) else {
            continue;
        };
        for ip in plan::current_ips(service) {
            in_use.push(InUse {
                service: plan::service_key(service),
                ip,
                pool: pool.clone(),
            });
        }
    }
    Ok(in_use)
}

/// Judges one review body: the AdmissionReview to send back.
pub async fn judge(ctx: &Context, body: &[u8]) -> Result<Value, WebhookError> {
    let review = parse_request(body)?;
    let mut verdict = match &review.object {
        Ok(None) => Verdict::default(),
        Err(denial) => Verdict {
            denied: Some(denial.clone()),
            warnings: Vec::new(),
        },
        Ok(Some(object)) => {
            let existing = cluster_state(ctx, object).await?;
            let in_use = match (review.operation, object) {
                (Operation::Update, Object::Pool(_)) => addresses_in_use(ctx).await?,
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
    match judge(&ctx, &body).await {
        Ok(answer) => reply(StatusCode::OK, "application/json", answer.to_string()),
        Err(error) => {
            tracing::warn!(reason = error.reason(), %error, "admission request not judged");
            let status = match error {
                WebhookError::BadReview(_) => StatusCode::BAD_REQUEST,
                WebhookError::ClusterState(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            reply(status, "text/plain", format!("{error}\n"))
        }
    }
}

/// Serves the webhook over HTTPS on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, ctx: Context) {
    let ctx = Arc::new(ctx);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a webhook connection failed");
                continue;
            }
        };
        let tls = tls.clone();
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let stream = match tls.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "webhook TLS handshake failed");
                    return;
                }
            };
            serve_connection(stream, move |request| handle(Arc::clone(&ctx), request)).await;
        });
    }
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
