//! The configuration side of the reconciler: the pools the allocator works with (keeping the
//! last good version of a pool an edit broke), when a pool or namespace change means every
//! Service is planned again, and the controller's `ConfigurationState`.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrolb_api::config::{self, Objects, Pool};
use ferrolb_api::config_state::{COMPONENT_LABEL, ConfigState, POOL_RECONCILER_CONDITION};
use ferrolb_api::selector::Labels;
use ferrolb_api::types::{ConfigurationState, IPAddressPool};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::Context;

/// Name of the controller's `ConfigurationState`, as MetalLB names it.
pub const CONFIGURATION_STATE_NAME: &str = "controller";

/// The parts of pools and namespaces that allocation reads, as one comparable text: pool
/// names, labels, creation times (older wins an overlap) and specs, and namespace labels.
pub fn config_input(
    pools: &[Arc<IPAddressPool>],
    namespace_labels: &BTreeMap<String, Labels>,
) -> String {
    let mut pools: Vec<_> = pools
        .iter()
        .map(|p| {
            json!([
                p.name_any(),
                p.metadata.labels,
                p.metadata.creation_timestamp,
                p.spec
            ])
        })
        .collect();
    pools.sort_by_key(|p| p[0].as_str().map(str::to_owned));
    json!([pools, namespace_labels]).to_string()
}

/// Builds the pools from the store, keeping the last good version of a broken pool, and
/// reports problems in logs, metrics and the returned `ConfigurationState`.
pub fn build_pools(
    pools: &[Arc<IPAddressPool>],
    last_good: &mut Objects,
    ctx: &Context,
) -> (BTreeMap<String, Pool>, ConfigState) {
    let objects = Objects {
        pools: pools.iter().map(|p| (**p).clone()).collect(),
        ..Objects::default()
    };
    let (built, kept) = config::build_keeping_last_good(&objects, last_good);
    for problem in &built.problems {
        tracing::warn!(reason = problem.reason(), "{problem}");
    }
    let state = ConfigState::from_problems(POOL_RECONCILER_CONDITION, &built.problems);
    let metrics = &ctx.metrics;
    metrics.config_updates.inc();
    if state.is_invalid() {
        metrics.config_update_errors.inc();
    }
    metrics.config_loaded.set(1);
    metrics.config_stale.set(i64::from(state.is_invalid()));
    *last_good = kept;
    (built.config.pools, state)
}

/// The `ConfigurationState` as last written or read: its status and resourceVersion.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    state: Option<ConfigState>,
    version: Option<String>,
}

impl Written {
    fn of(object: &ConfigurationState) -> Self {
        Written {
            state: object
                .status
                .as_ref()
                .map(|s| ConfigState::of(POOL_RECONCILER_CONDITION, s)),
            version: object.resource_version(),
        }
    }
}

/// Writes the `ConfigurationState` status when it differs from `written` (what was last
/// written or read; `None`: read it first, creating the object if needed), only while we lead
/// and against the version read. Returns what the object now holds (`None`: unknown).
pub async fn write_configuration_state(
    ctx: &Context,
    written: Option<Written>,
    state: ConfigState,
) -> Option<Written> {
    let api: Api<ConfigurationState> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let written = match written {
        Some(written) => written,
        None => match api.get_opt(CONFIGURATION_STATE_NAME).await {
            Ok(Some(existing)) => Written::of(&existing),
            Ok(None) => Written::of(&create_configuration_state(&api).await?),
            Err(error) => {
                tracing::debug!(%error, "ConfigurationState not read");
                return None;
            }
        },
    };
    if written.state.as_ref() == Some(&state) || !ctx.leadership.is_leading() {
        return Some(written);
    }
    // status_patch writes errorSummary: null when there are no errors, so a Valid status
    // clears the errors of an earlier Invalid one.
    let mut patch = state.status_patch(k8s_openapi::jiff::Timestamp::now());
    patch["metadata"] = json!({"resourceVersion": written.version});
    let result = api
        .patch_status(
            CONFIGURATION_STATE_NAME,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    ctx.metrics.count_write(result.is_ok());
    match result {
        Ok(object) => Some(Written::of(&object)),
        Err(error) => {
            // Read again next time (a 409 means someone else wrote it).
            tracing::debug!(%error, "ConfigurationState not written");
            None
        }
    }
}

async fn create_configuration_state(api: &Api<ConfigurationState>) -> Option<ConfigurationState> {
    let object = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {
            "name": CONFIGURATION_STATE_NAME,
            "labels": {COMPONENT_LABEL: "controller"},
        },
        "spec": {},
    });
    let object = match serde_json::from_value::<ConfigurationState>(object) {
        Ok(object) => object,
        Err(error) => {
            tracing::warn!(%error, "building the ConfigurationState failed");
            return None;
        }
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => Some(created),
        Err(error) => {
            tracing::debug!(%error, "ConfigurationState not created");
            None
        }
    }
}
