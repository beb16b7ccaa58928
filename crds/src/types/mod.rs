//! The `metallb.io` custom resources, field for field as MetalLB serves them.
//!
//! Only shapes live here: JSON names, defaults, schema bounds, CEL rules and printer columns that end
//! up in the generated CRDs. What a value *means* and whether a set of objects is consistent is decided
//! in [`crate::validate`] and [`crate::config`].

// `printcolumn(name = .., type_ = ..)` repeats keys by design; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod bfdprofile;
pub mod bgpadvertisement;
pub mod bgppeer;
pub mod bgppeer_v1beta1;
pub mod community;
pub mod ipaddresspool;
pub mod l2advertisement;
pub mod status;

pub use bfdprofile::{BFDProfile, BFDProfileSpec};
pub use bgpadvertisement::{BGPAdvertisement, BGPAdvertisementSpec};
pub use bgppeer::{BGPPeer, BGPPeerSpec, DynamicAsnMode};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use ipaddresspool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use l2advertisement::{L2Advertisement, L2AdvertisementSpec, PreferredNodeSelector};
pub use status::{
    ConfigurationState, ConfigurationStateResult, ConfigurationStateSpec, ConfigurationStateStatus,
    InterfaceInfo, ServiceBGPStatus, ServiceBGPStatusSpec, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusSpec, ServiceL2StatusStatus,
};

/// API group of every kind, as MetalLB registers it.
pub const GROUP: &str = "metallb.io";

/// An empty status: MetalLB gives most kinds a status subresource that carries nothing.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema,
)]
pub struct EmptyStatus {}
