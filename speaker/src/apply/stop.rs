//! How the BGP sessions end when the speaker gets SIGTERM. Pure: the policy and this node's
//! Node object in, the stop mode out; the daemon carries it out.
//!
//! A DaemonSet rollout restarts the speaker on a node that stays: stopping "for restart"
//! (graceful restart, RFC 4724) lets the routers keep our routes, stale, until the new process
//! is back, so no request is lost. A node going away (drained, shut down, deleted, scaled down)
//! is the opposite case: kept routes would blackhole its traffic for the whole restart time, so
//! the sessions are closed with a Cease (a Hard Reset under RFC 8538) and the routers withdraw
//! our routes at once. `auto` tells the two apart from the Node object.

use k8s_openapi::api::core::v1::Node;

use crate::cluster;

/// `--bgp-stop-on-sigterm`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StopPolicy {
    /// Withdraw when the Node shows it is going away, else stop for restart.
    #[default]
    Auto,
    /// Always stop for restart (routers keep our routes for the graceful restart time).
    Restart,
    /// Always withdraw (routers drop our routes at once).
    Withdraw,
}

/// What SIGTERM does to the BGP sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Close as before a restart: routers that negotiated graceful restart keep our routes.
    Restart,
    /// Close for good: routers drop our routes.
    Withdraw,
}

/// Taints that announce a node's removal without a cordon: the cluster autoscaler's scale-down
/// and Karpenter's disruption.
pub const LEAVING_TAINTS: [&str; 2] = ["ToBeDeletedByClusterAutoscaler", "karpenter.sh/disrupted"];

/// The mode for `policy` on a node whose Node object is `node` (`None`: it is gone — the
/// daemon only runs sessions once it has seen its Node); with the reason when `auto` chose to
/// withdraw. `ignore_exclude_lb`: the exclusion label does not count (`--ignore-exclude-lb`;
/// kubeadm puts it on every control-plane node for good, so it then says nothing).
pub fn stop_mode(
    policy: StopPolicy,
    node: Option<&Node>,
    ignore_exclude_lb: bool,
) -> (StopMode, Option<&'static str>) {
    match policy {
        StopPolicy::Restart => (StopMode::Restart, None),
        StopPolicy::Withdraw => (StopMode::Withdraw, None),
        StopPolicy::Auto => match node.map_or(Some("NodeDeleted"), |n| {
            leaving_reason(n, ignore_exclude_lb)
        }) {
            Some(reason) => (StopMode::Withdraw, Some(reason)),
            None => (StopMode::Restart, None),
        },
    }
}

/// Why `node` looks like it is going away, if it does.
fn leaving_reason(node: &Node, ignore_exclude_lb: bool) -> Option<&'static str> {
    if node.metadata.deletion_timestamp.is_some() {
        return Some("NodeDeleting");
    }
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable) == Some(true) {
        return Some("NodeUnschedulable");
    }
    let is_tainted = spec.and_then(|s| s.taints.as_ref()).is_some_and(|taints| {
        taints
            .iter()
            .any(|t| LEAVING_TAINTS.contains(&t.key.as_str()))
    });
    if is_tainted {
        return Some("NodeTaintedForRemoval");
    }
    if cluster::is_ready(node) != Some(true) {
        return Some("NodeNotReady");
    }
    let is_excluded = node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(crate::plan::EXCLUDE_LB_LABEL));
    if is_excluded && !ignore_exclude_lb {
        return Some("NodeExcludedFromLoadBalancers");
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(extra: serde_json::Value) -> Node {
        let mut n = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        merge(&mut n, extra);
        serde_json::from_value(n).expect("node")
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn auto_stops_for_restart_on_a_node_that_stays() {
        let n = node(json!({}));
        assert_eq!(
            stop_mode(StopPolicy::Auto, Some(&n), false),
            (StopMode::Restart, None)
        );
    }

    #[test]
    fn auto_withdraws_from_a_node_that_is_going_away() {
        let rows = [
            (
                "cordoned",
                json!({"spec": {"unschedulable": true}}),
                "NodeUnschedulable",
            ),
            (
                "being deleted",
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z", "finalizers": ["x"]}}),
                "NodeDeleting",
            ),
            (
                "NotReady (kubelet shutting down)",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                "NodeNotReady",
            ),
            (
                "Ready unknown (kubelet gone)",
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
                "NodeNotReady",
            ),
            (
                "excluded from load balancers",
                json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}}}),
                "NodeExcludedFromLoadBalancers",
            ),
            (
                "scaled down by the cluster autoscaler",
                json!({"spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}}),
                "NodeTaintedForRemoval",
            ),
        ];
        for (case, extra, reason) in rows {
            let n = node(extra);
            assert_eq!(
                stop_mode(StopPolicy::Auto, Some(&n), false),
                (StopMode::Withdraw, Some(reason)),
                "{case}"
            );
        }
        assert_eq!(
            stop_mode(StopPolicy::Auto, None, false),
            (StopMode::Withdraw, Some("NodeDeleted")),
            "the Node object is gone"
        );
    }

    #[test]
    fn the_exclusion_label_does_not_count_when_the_speaker_ignores_it() {
        let n = node(json!({"metadata": {"labels": {
            "node.kubernetes.io/exclude-from-external-load-balancers": "true"}}}));
        assert_eq!(
            stop_mode(StopPolicy::Auto, Some(&n), true),
            (StopMode::Restart, None)
        );
    }

    #[test]
    fn other_taints_do_not_make_a_node_leave() {
        let n = node(json!({"spec": {"taints": [
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}));
        assert_eq!(
            stop_mode(StopPolicy::Auto, Some(&n), false),
            (StopMode::Restart, None)
        );
    }

    #[test]
    fn fixed_policies_ignore_the_node() {
        let cordoned = node(json!({"spec": {"unschedulable": true}}));
        let fine = node(json!({}));
        for n in [Some(&cordoned), Some(&fine), None] {
            assert_eq!(
                stop_mode(StopPolicy::Restart, n, false),
                (StopMode::Restart, None)
            );
            assert_eq!(
                stop_mode(StopPolicy::Withdraw, n, false),
                (StopMode::Withdraw, None)
            );
        }
    }
}
