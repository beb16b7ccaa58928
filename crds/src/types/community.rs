//! `Community` (metallb.io/v1beta1): names for BGP community values, usable in BGPAdvertisements.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::EmptyStatus;

/// A set of community aliases.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    namespaced,
    status = "EmptyStatus",
    derive = "PartialEq",
    doc = "Community is a collection of aliases for communities. Users can define named aliases to be used in the BGPAdvertisement."
)]
#[serde(remote = "Self")]
pub struct CommunitySpec {
    /// The aliases this object defines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAlias>,
}

/// One alias: `name` stands for `value` wherever an advertisement lists it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CommunityAlias {
    /// The alias, unique across all Community objects.
    #[serde(default)]
    pub name: String,
    /// `A:B` (16-bit halves) or `large:A:B:C` (32-bit parts).
    #[serde(default)]
    pub value: String,
}
