//! `IPAddressPool` (metallb.io/v1beta1): the addresses FerroLB may hand out, and to whom.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pool of IP addresses that can be allocated to LoadBalancer Services.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    doc = "IPAddressPool represents a pool of IP addresses that can be allocated to LoadBalancer services.",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses")
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// IP ranges the pool owns: CIDRs (`192.0.2.0/28`, host bits ignored) or `start-end` ranges,
    /// IPv4 or IPv6, in any mix.
    pub addresses: Vec<String>,

    /// When false the pool is never picked automatically; Services can still request it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(default = "default_true")]
    pub auto_assign: Option<bool>,

    /// Never hand out IPv4 addresses ending in .0 or .255 (some old clients drop them).
    #[serde(
        default,
        rename = "avoidBuggyIPs",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(default = "default_false")]
    pub avoid_buggy_ips: Option<bool>,

    /// Restricts the pool to namespaces and/or Services, with a priority among restricted pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

fn default_true() -> Option<bool> {
    Some(true)
}

fn default_false() -> Option<bool> {
    Some(false)
}

impl IPAddressPoolSpec {
    /// Whether the pool takes part in automatic allocation (default true).
    pub fn is_auto_assign(&self) -> bool {
        self.auto_assign.unwrap_or(true)
    }

    /// Whether .0 and .255 IPv4 addresses are excluded (default false).
    pub fn is_avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips.unwrap_or(false)
    }
}

/// Which namespaces and Services may take addresses from a pool (Go field `AllocateTo`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower positive values are tried first; 0 (unset) pools come after all prioritised ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Namespaces allowed to use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces allowed to use the pool, by their labels (unioned with `namespaces`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services allowed to use the pool, by their labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Counters the controller keeps up to date.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses assigned to Services.
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// IPv6 addresses assigned to Services.
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// IPv4 addresses still free.
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// IPv6 addresses still free (saturates at i64::MAX for very large blocks).
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: i64,
}
