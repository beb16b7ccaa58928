//! `BGPPeer` (metallb.io/v1beta2, the storage version): one BGP neighbour and how to reach it.

// KubeSchema derives the schema from a private copy of each struct that, under
// `serde(remote = "Self")`, never reads its fields.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::EmptyStatus;

/// A BGP neighbour that speakers on the selected nodes hold a session with.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    namespaced,
    status = "EmptyStatus",
    derive = "PartialEq",
    doc = "BGPPeer is the Schema for the peers API.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "string",
        json_path = ".spec.ebgpMultiHop"
    )
)]
#[serde(rename_all = "camelCase")]
#[serde(remote = "Self")]
pub struct BGPPeerSpec {
    /// Our AS number on this session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 0, max = 4_294_967_295_u32))]
    pub my_asn: u32,

    /// The AS number the peer must present. Exactly one of this and `dynamicASN`.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4_294_967_295_u32))]
    pub peer_asn: Option<u32>,

    /// Accept the peer's AS as long as it is internal (= myASN) or external (≠ myASN).
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicAsnMode>,

    /// The AS number presented to the peer instead of myASN (local-as).
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4_294_967_295_u32))]
    pub local_asn: Option<u32>,

    /// The address to dial. Exactly one of this and `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,

    /// Unnumbered peering over this node interface (not checked: a wrong name only keeps the
    /// session down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,

    /// Local address the session is opened from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,

    /// TCP port to dial (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16384), default = "default_port")]
    pub peer_port: Option<u16>,

    /// Proposed hold time (Go duration, e.g. `90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,

    /// Keepalive interval (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,

    /// Wait between connection attempts (Go duration, whole seconds, 1 s to 65535 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535").message("connect time should be between 1 seconds to 65535"),
        validation = Rule::new("duration(self).getMilliseconds() % 1000 == 0").message("connect time should contain a whole number of seconds")
    )]
    pub connect_time: Option<String>,

    /// BGP identifier sent in OPEN.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,

    /// Nodes that open this session; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// TCP MD5 (RFC 2385) password. Exclusive with `passwordSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,

    /// A `kubernetes.io/basic-auth` Secret whose `password` key holds the TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = MapMerge::Atomic)]
    pub password_secret: Option<SecretReference>,

    /// Name of the BFDProfile guarding this session.
    #[serde(
        default,
        rename = "bfdProfile",
        skip_serializing_if = "Option::is_none"
    )]
    pub bfd_profile: Option<String>,

    /// Advertise graceful restart (RFC 4724). Fixed at creation: changing it resets the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("EnableGracefulRestart cannot be changed after creation"))]
    pub enable_graceful_restart: Option<bool>,

    /// The peer is more than one hop away (eBGP multihop).
    #[serde(
        default,
        rename = "ebgpMultiHop",
        skip_serializing_if = "Option::is_none"
    )]
    pub ebgp_multi_hop: Option<bool>,

    /// Host VRF whose interface reaches the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,

    /// Deprecated and without effect; kept so that existing manifests apply unchanged.
    #[serde(default, rename = "disableMP", skip_serializing_if = "Option::is_none")]
    #[schemars(default = "default_false")]
    pub disable_mp: Option<bool>,

    /// Exchange both address families on this session, whatever its transport family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(default = "default_false")]
    pub dual_stack_address_family: Option<bool>,
}

/// How the peer's AS is checked when `peerASN` is not given.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsnMode {
    /// The peer's AS must equal myASN.
    Internal,
    /// The peer's AS must differ from myASN.
    External,
}

/// The well-known BGP port.
pub const DEFAULT_PEER_PORT: u16 = 179;

fn default_port() -> Option<u16> {
    Some(DEFAULT_PEER_PORT)
}

fn default_false() -> Option<bool> {
    Some(false)
}

impl BGPPeerSpec {
    /// The port to dial with its default applied.
    pub fn port(&self) -> u16 {
        self.peer_port.unwrap_or(DEFAULT_PEER_PORT)
    }
}
