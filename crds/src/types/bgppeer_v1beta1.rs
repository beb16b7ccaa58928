//! `BGPPeer` in metallb.io/v1beta1: deprecated but still served by MetalLB, so old manifests still
//! apply. It converts losslessly up to [`super::BGPPeerSpec`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::EmptyStatus;

/// The v1beta1 shape of a BGP neighbour.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    namespaced,
    status = "EmptyStatus",
    derive = "PartialEq",
    deprecated = "v1beta1 is deprecated, please use v1beta2",
    doc = "BGPPeer is the Schema for the peers API."
)]
#[serde(rename_all = "camelCase")]
#[serde(remote = "Self")]
pub struct BGPPeerSpec {
    /// Our AS number on this session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 0, max = 4_294_967_295_u32))]
    pub my_asn: u32,
    /// The AS number the peer must present.
    #[serde(rename = "peerASN")]
    #[schemars(range(min = 0, max = 4_294_967_295_u32))]
    pub peer_asn: u32,
    /// The address to dial.
    pub peer_address: String,
    /// Local address the session is opened from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// TCP port to dial (0 means the default, 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16384))]
    pub peer_port: Option<u16>,
    /// Proposed hold time (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Keepalive interval (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// BGP identifier sent in OPEN.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Nodes that open this session, in the legacy selector shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LegacyNodeSelector>,
    /// TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of the BFDProfile guarding this session.
    #[serde(
        default,
        rename = "bfdProfile",
        skip_serializing_if = "Option::is_none"
    )]
    pub bfd_profile: Option<String>,
    /// The peer is more than one hop away.
    #[serde(
        default,
        rename = "ebgpMultiHop",
        skip_serializing_if = "Option::is_none"
    )]
    pub ebgp_multi_hop: Option<bool>,
}

/// v1beta1's own node selector: a label selector whose expressions need at least one value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyNodeSelector {
    /// Labels that must all be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LegacyMatchExpression>,
}

/// One requirement of a [`LegacyNodeSelector`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LegacyMatchExpression {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values the operator applies to.
    #[schemars(length(min = 1))]
    pub values: Vec<String>,
}

impl From<LegacyNodeSelector> for LabelSelector {
    fn from(legacy: LegacyNodeSelector) -> Self {
        LabelSelector {
            match_labels: (!legacy.match_labels.is_empty()).then_some(legacy.match_labels),
            match_expressions: (!legacy.match_expressions.is_empty()).then(|| {
                legacy
                    .match_expressions
                    .into_iter()
                    .map(|e| LabelSelectorRequirement {
                        key: e.key,
                        operator: e.operator,
                        values: Some(e.values),
                    })
                    .collect()
            }),
        }
    }
}

impl From<BGPPeerSpec> for super::BGPPeerSpec {
    /// Up-conversion: every v1beta1 field has a v1beta2 twin; port 0 meant "default".
    fn from(old: BGPPeerSpec) -> Self {
        super::BGPPeerSpec {
            my_asn: old.my_asn,
            peer_asn: Some(old.peer_asn),
            peer_address: Some(old.peer_address),
            source_address: old.source_address,
            peer_port: old.peer_port.filter(|port| *port != 0),
            hold_time: old.hold_time,
            keepalive_time: old.keepalive_time,
            router_id: old.router_id,
            node_selectors: old
                .node_selectors
                .into_iter()
                .map(LabelSelector::from)
                .collect(),
            password: old.password,
            bfd_profile: old.bfd_profile,
            ebgp_multi_hop: old.ebgp_multi_hop,
            ..Default::default()
        }
    }
}
