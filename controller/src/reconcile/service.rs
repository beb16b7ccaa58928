//! One Service's reconcile in controller-rs's shape: [`reconcile`] carries out what the plan
//! decided (status, pool annotation, Events) and [`error_policy`] says when a failure is tried
//! again. The allocator decided everything before; this only writes.

use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::service::{self, IP_ALLOCATED_FROM_POOL};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use super::Context;
use crate::metrics::ReconcileTimer;
use crate::plan::PlannedEvent;
use crate::retry::Retries;
use crate::view::ServiceView;

/// What one planned Service needs written. The allocator decided it in order; carrying it out
/// touches one object only, so several run at once.
#[derive(Debug)]
pub struct Pending {
    /// `namespace/name`.
    pub key: String,
    /// The Service as planned.
    pub view: Arc<ServiceView>,
    /// `status.loadBalancer.ingress` to write.
    pub ips: Vec<IpAddr>,
    /// The pool annotation to write (`None` removes it).
    pub pool: Option<String>,
    /// Events explaining the change.
    pub events: Vec<PlannedEvent>,
    /// Times the reconcile from planning to the last write.
    pub timer: ReconcileTimer,
}

/// Why one Service could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// This replica's lead ran out before the write: it is not retried (a new leader plans
    /// every Service afresh).
    #[error("Service {service}: not written, this replica no longer leads")]
    NotLeading {
        /// `namespace/name`.
        service: String,
    },
    /// The API server refused or failed a write.
    #[error("Service {service}: writing its {what}: {source}")]
    Write {
        /// `namespace/name`.
        service: String,
        /// `status` or `annotation`.
        what: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl ReconcileError {
    /// Stable CamelCase for the metric label and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::NotLeading { .. } => "NotLeading",
            ReconcileError::Write { source, .. } => match source {
                kube::Error::Api(status) => match status.code {
                    409 => "Conflict",
                    404 => "NotFound",
                    422 => "Invalid",
                    429 => "TooManyRequests",
                    _ => "ApiError",
                },
                _ => "ApiUnreachable",
            },
        }
    }
}

/// Patches the status and the annotation where they differ from the plan, then queues the
/// Events. Each write first checks that we still lead, and carries the resourceVersion the plan
/// was made from: a Service that changed since is refused (409) and planned again.
pub async fn reconcile(pending: Pending, ctx: &Context) -> Result<(), ReconcileError> {
    let view = &pending.view;
    let (namespace, name) = view.namespace_and_name();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let fail = |what| {
        let service = pending.key.clone();
        move |source| ReconcileError::Write {
            service,
            what,
            source,
        }
    };
    let must_lead = || match ctx.leadership.is_leading() {
        true => Ok(()),
        false => Err(ReconcileError::NotLeading {
            service: pending.key.clone(),
        }),
    };
    let mut version = view.resource_version.clone();
    if view.ips != pending.ips {
        let ingress: Vec<_> = pending
            .ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        let patch = json!({
            "metadata": {"resourceVersion": version},
            "status": {"loadBalancer": {"ingress": ingress}},
        });
        must_lead()?;
        let written = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(fail("status"))?;
        version = written.resource_version();
    }
    if view.pool != pending.pool {
        let annotation = service::annotation_key(IP_ALLOCATED_FROM_POOL);
        let patch = json!({
            "metadata": {"resourceVersion": version, "annotations": {annotation: pending.pool}},
        });
        must_lead()?;
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(fail("annotation"))?;
    }
    // Events explain a change already written; they go through the queue so that the next
    // Services' EXTERNAL-IPs do not wait on them.
    let reference = view.object_ref();
    for planned in pending.events {
        ctx.events.record(reference.clone(), planned);
    }
    Ok(())
}

/// A failed reconcile: logged and counted under its reason, and tried again after the key's
/// backoff (returned), unless we no longer lead.
pub fn error_policy(
    key: &str,
    error: &ReconcileError,
    ctx: &Context,
    retries: &mut Retries,
    now: Instant,
) -> Option<Instant> {
    let reason = error.reason();
    ctx.metrics.count_reconcile_error(reason);
    if let ReconcileError::NotLeading { .. } = error {
        tracing::debug!(service = key, reason, "not written: no longer leading");
        retries.succeeded(key);
        return None;
    }
    let at = retries.failed(key, now);
    tracing::warn!(
        service = key,
        reason,
        failures = retries.failures(key),
        retry_in_ms = u64::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
        %error,
        "writing the Service failed; retrying"
    );
    Some(at)
}
