//! From API objects to what [`crate::plan`] and [`crate::liveness`] read. Pure: objects in,
//! plan inputs out.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_api::service;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::liveness::NodeHealth;
use crate::plan::{Endpoint, NodeInfo, ServiceInfo};

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Each speaker's `ConfigurationState` is named this followed by its node name (MetalLB's
/// naming).
pub const SPEAKER_STATE_PREFIX: &str = "speaker-";

/// Name of node `node`'s speaker's `ConfigurationState`.
pub fn speaker_state_name(node: &str) -> String {
    format!("{SPEAKER_STATE_PREFIX}{node}")
}

/// The nodes whose speaker keeps one of the `ConfigurationState`s `names`: the quorum's
/// speaker set before readiness (see [`crate::liveness`]).
pub fn speaker_nodes<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names
        .into_iter()
        .filter_map(|name| name.strip_prefix(SPEAKER_STATE_PREFIX))
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The plan's view of a Node.
pub fn node_info(node: &Node) -> NodeInfo {
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        network_unavailable: condition(node, "NetworkUnavailable") == Some(true),
    }
}

/// Liveness's view of a Node.
pub fn node_health(node: &Node) -> NodeHealth {
    NodeHealth {
        name: node.metadata.name.clone().unwrap_or_default(),
        ready: is_ready(node),
        address: node_addresses(node).first().copied(),
    }
}

/// This node's own addresses (BGP next hops, router ID, gossip): the `configured` ones
/// (`--node-address`), else its Node's.
pub fn own_addresses(configured: &[IpAddr], node: Option<&Node>) -> Vec<IpAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    node.map(node_addresses).unwrap_or_default()
}

/// The Node's `Ready` condition: `Some(false)` only when the kubelet said so.
pub fn is_ready(node: &Node) -> Option<bool> {
    condition(node, "Ready")
}

fn condition(node: &Node, kind: &str) -> Option<bool> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    let found = conditions.iter().find(|c| c.type_ == kind)?;
    match found.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

/// The Node's addresses of type `InternalIP`, then `ExternalIP`, as the node reports them.
pub fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let Some(addresses) = node.status.as_ref().and_then(|s| s.addresses.as_ref()) else {
        return Vec::new();
    };
    ["InternalIP", "ExternalIP"]
        .iter()
        .flat_map(|kind| addresses.iter().filter(move |a| a.type_ == *kind))
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// The Service an EndpointSlice belongs to (`namespace/name`, from its label) and its endpoints;
/// `None` for a slice without that label.
pub fn slice_endpoints(slice: &EndpointSlice) -> Option<(String, Vec<Endpoint>)> {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))?;
    Some((
        ferrolb_api::key::of_parts(slice.metadata.namespace.as_deref(), Some(service)),
        endpoints(slice),
    ))
}

/// The plan's view of a Service, without its endpoints (they come from EndpointSlices, see
/// [`crate::inputs`]); `None` when it is not ours to announce (another class, not a
/// LoadBalancer, or no ingress IP yet). Unparsable ingress entries are left out.
pub fn service_info(service: &Service, our_class: Option<&str>) -> Option<ServiceInfo> {
    if !service::is_served(service, our_class) {
        return None;
    }
    let ips: Vec<IpAddr> = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    if ips.is_empty() {
        return None;
    }
    let traffic_policy_local = service
        .spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local");
    Some(ServiceInfo {
        key: ferrolb_api::key::of_parts(
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ),
        ips,
        labels: service.metadata.labels.clone().unwrap_or_default(),
        is_shared: service::sharing_key(service).is_some(),
        traffic_policy_local,
        endpoints: Vec::new(),
    })
}

/// Endpoints with at least one address. MetalLB's reading of the conditions: an endpoint can
/// serve when `ready` is unset or true, or when `serving` is true (terminating but serving).
fn endpoints(slice: &EndpointSlice) -> Vec<Endpoint> {
    slice
        .endpoints
        .iter()
        .filter(|e| !e.addresses.is_empty())
        .map(|e| {
            let conditions = e.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready);
            let serving = conditions.and_then(|c| c.serving);
            Endpoint {
                node: e.node_name.clone(),
                serving: ready != Some(false) || serving == Some(true),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
