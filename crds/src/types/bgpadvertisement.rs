//! `BGPAdvertisement` (metallb.io/v1beta1): how the IPs of the selected pools are announced over BGP.

// KubeSchema derives the schema from a private copy of each struct that, under
// `serde(remote = "Self")`, never reads its fields.
#![allow(dead_code)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::EmptyStatus;

/// Announces the IPs of the selected pools to BGP peers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    namespaced,
    status = "EmptyStatus",
    derive = "PartialEq",
    doc = "BGPAdvertisement allows to advertise the IPs coming from the selected IPAddressPools via BGP, setting the parameters of the BGP Advertisement.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = "10"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))"
).message("serviceSelectors can only be used with aggregationLength 32 and aggregationLengthV6 128"))]
#[serde(rename_all = "camelCase")]
#[serde(remote = "Self")]
pub struct BGPAdvertisementSpec {
    /// Prefix length IPv4 Service IPs are rolled up to (default 32, no aggregation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), default = "default_aggregation_v4")]
    pub aggregation_length: Option<i32>,
    /// Prefix length IPv6 Service IPs are rolled up to (default 128, no aggregation).
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(default = "default_aggregation_v6")]
    pub aggregation_length_v6: Option<i32>,
    /// LOCAL_PREF sent to iBGP peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Communities (`65000:1`, `large:1:2:3`) or names of Community aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Pools announced by name. Together with the selectors: both empty means every pool.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pools: Vec<String>,
    /// Pools announced by their labels.
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may be next hops; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// BGPPeer names to announce to; empty means every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Services this advertisement applies to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// No aggregation for IPv4: every Service IP is its own /32.
pub const DEFAULT_AGGREGATION_V4: i32 = 32;
/// No aggregation for IPv6: every Service IP is its own /128.
pub const DEFAULT_AGGREGATION_V6: i32 = 128;

fn default_aggregation_v4() -> Option<i32> {
    Some(DEFAULT_AGGREGATION_V4)
}

fn default_aggregation_v6() -> Option<i32> {
    Some(DEFAULT_AGGREGATION_V6)
}

impl BGPAdvertisementSpec {
    /// The IPv4 aggregation length with its default applied.
    pub fn aggregation_length_v4(&self) -> i32 {
        self.aggregation_length.unwrap_or(DEFAULT_AGGREGATION_V4)
    }

    /// The IPv6 aggregation length with its default applied.
    pub fn aggregation_length_v6(&self) -> i32 {
        self.aggregation_length_v6.unwrap_or(DEFAULT_AGGREGATION_V6)
    }
}
