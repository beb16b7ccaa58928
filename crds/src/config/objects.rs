//! [`Objects`]: every object a configuration is built from, and the questions asked of them as a
//! whole (which object has this name, which nodes a selector list picks). No I/O.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use crate::error::Kind;
use crate::manifest::Object;
use crate::selector::{self, Labels};
use crate::types;

/// Every object the configuration is built from. `secrets` and `nodes` are `None` when unknown
/// (offline validation): references to Secrets are then not checked, and node selectors are taken
/// to possibly select the same nodes.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// `IPAddressPool`s.
    pub pools: Vec<types::IPAddressPool>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Vec<types::L2Advertisement>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Vec<types::BGPAdvertisement>,
    /// `BGPPeer`s (v1beta1 ones converted up).
    pub bgp_peers: Vec<types::BGPPeer>,
    /// `BFDProfile`s.
    pub bfd_profiles: Vec<types::BFDProfile>,
    /// `Community` alias sets.
    pub communities: Vec<types::Community>,
    /// Secrets in FerroLB's namespace, for peer passwords.
    pub secrets: Option<Vec<Secret>>,
    /// The cluster's nodes, for rules about which nodes objects select.
    pub nodes: Option<Vec<Node>>,
}

impl Objects {
    /// Adds one object to the list of its kind.
    pub fn add(&mut self, object: Object) {
        match object {
            Object::Pool(o) => self.pools.push(o),
            Object::L2Advertisement(o) => self.l2_advertisements.push(o),
            Object::BgpAdvertisement(o) => self.bgp_advertisements.push(o),
            Object::BgpPeer(o) => self.bgp_peers.push(o),
            Object::BfdProfile(o) => self.bfd_profiles.push(o),
            Object::Community(o) => self.communities.push(o),
            Object::Secret(s) => self.secrets.get_or_insert_with(Vec::new).push(s),
            Object::Node(n) => self.nodes.get_or_insert_with(Vec::new).push(*n),
        }
    }

    /// The FerroLB object `kind/name`, if present.
    pub fn get(&self, kind: Kind, name: &str) -> Option<Object> {
        fn find<T: ResourceExt + Clone>(list: &[T], name: &str) -> Option<T> {
            list.iter().find(|o| o.name_any() == name).cloned()
        }
        match kind {
            Kind::IPAddressPool => find(&self.pools, name).map(Object::Pool),
            Kind::L2Advertisement => {
                find(&self.l2_advertisements, name).map(Object::L2Advertisement)
            }
            Kind::BGPAdvertisement => {
                find(&self.bgp_advertisements, name).map(Object::BgpAdvertisement)
            }
            Kind::BGPPeer => find(&self.bgp_peers, name).map(Object::BgpPeer),
            Kind::BFDProfile => find(&self.bfd_profiles, name).map(Object::BfdProfile),
            Kind::Community => find(&self.communities, name).map(Object::Community),
        }
    }

    /// Removes the FerroLB object `kind/name`, if present.
    pub fn remove(&mut self, kind: Kind, name: &str) {
        fn keep_others<T: ResourceExt>(list: &mut Vec<T>, name: &str) {
            list.retain(|o| o.name_any() != name);
        }
        match kind {
            Kind::IPAddressPool => keep_others(&mut self.pools, name),
            Kind::L2Advertisement => keep_others(&mut self.l2_advertisements, name),
            Kind::BGPAdvertisement => keep_others(&mut self.bgp_advertisements, name),
            Kind::BGPPeer => keep_others(&mut self.bgp_peers, name),
            Kind::BFDProfile => keep_others(&mut self.bfd_profiles, name),
            Kind::Community => keep_others(&mut self.communities, name),
        }
    }

    /// Nodes selected by a selector list, or `None` when nodes are unknown.
    fn selected_nodes(&self, selectors: &[LabelSelector]) -> Option<BTreeSet<String>> {
        let nodes = self.nodes.as_ref()?;
        let empty = Labels::new();
        Some(
            nodes
                .iter()
                .filter(|n| {
                    selector::matches_any(selectors, n.metadata.labels.as_ref().unwrap_or(&empty))
                })
                .map(ResourceExt::name_any)
                .collect(),
        )
    }

    /// Whether two selector lists may pick a common node (always, when nodes are unknown).
    pub(super) fn may_share_a_node(&self, a: &[LabelSelector], b: &[LabelSelector]) -> bool {
        match (self.selected_nodes(a), self.selected_nodes(b)) {
            (Some(a), Some(b)) => !a.is_disjoint(&b),
            _ => true,
        }
    }
}
