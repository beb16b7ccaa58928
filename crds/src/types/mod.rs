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

/// MetalLB's Go types mark `spec` omitempty on every kind but IPAddressPool, so an object without
/// one is valid and means "all defaults" (`kind: L2Advertisement` with only metadata is MetalLB's
/// most common example). kube's generated root requires the field; a spec type given
/// `#[serde(remote = "Self")]` and this macro reads a missing or null spec as its `Default`.
macro_rules! spec_defaults_when_absent {
    ($($spec:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $spec {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Present($spec);
                impl<'de> serde::Deserialize<'de> for Present {
                    fn deserialize<E: serde::Deserializer<'de>>(inner: E) -> Result<Self, E::Error> {
                        // The inherent function serde derives under `remote = "Self"`.
                        <$spec>::deserialize(inner).map(Present)
                    }
                }
                // A missing field reaches us as `deserialize_option` → none.
                let present = Option::<Present>::deserialize(deserializer)?;
                Ok(present.map_or_else(Default::default, |p| p.0))
            }
        }

        impl serde::Serialize for $spec {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$spec>::serialize(self, serializer)
            }
        }
    )+};
}

spec_defaults_when_absent!(
    BFDProfileSpec,
    BGPAdvertisementSpec,
    BGPPeerSpec,
    bgppeer_v1beta1::BGPPeerSpec,
    CommunitySpec,
    ConfigurationStateSpec,
    L2AdvertisementSpec,
    ServiceBGPStatusSpec,
    ServiceL2StatusSpec,
);

/// API group of every kind, as MetalLB registers it.
pub const GROUP: &str = "metallb.io";

/// An empty status: MetalLB gives most kinds a status subresource that carries nothing.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema,
)]
pub struct EmptyStatus {}
