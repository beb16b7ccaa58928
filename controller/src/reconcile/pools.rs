//! Pool status and pool metrics: what each pool has assigned and left, written only when it
//! changed.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferrolb_api::types::{IPAddressPool, IPAddressPoolStatus};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::Context;
use crate::alloc::Allocator;

/// Keeps every pool's counters current; writes only what changed, and only while we lead. Returns the pools whose
/// metrics are exported now; the series of pools in `exported` but not in the result are
/// dropped.
pub async fn write_pool_status(
    ctx: &Context,
    allocator: &Allocator,
    pools: &[Arc<IPAddressPool>],
    exported: &BTreeSet<String>,
) -> BTreeSet<String> {
    let api: Api<IPAddressPool> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    let mut now_exported = BTreeSet::new();
    for pool in pools {
        let Some(usage) = allocator.usage(&pool.name_any()) else {
            continue;
        };
        ctx.metrics.set_pool(&pool.name_any(), &usage);
        now_exported.insert(pool.name_any());
        let want = IPAddressPoolStatus {
            assigned_ipv4: clamp(usage.assigned_v4),
            assigned_ipv6: clamp(usage.assigned_v6),
            available_ipv4: clamp(usage.available_v4),
            available_ipv6: clamp(usage.available_v6),
        };
        if pool.status.as_ref() == Some(&want) || !ctx.leadership.is_leading() {
            continue;
        }
        // Written against the version read: a pool edited since is written on its next event.
        let patch = json!({
            "metadata": {"resourceVersion": pool.resource_version()},
            "status": want,
        });
        if let Err(error) = api
            .patch_status(
                &pool.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::debug!(pool = pool.name_any(), %error, "pool status not written");
        }
    }
    for gone in exported.difference(&now_exported) {
        ctx.metrics.remove_pool(gone);
    }
    now_exported
}
