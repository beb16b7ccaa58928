//! Carrier step-down: when an IP this node announces has nothing left to be answered on because
//! its interfaces lost carrier, the node leaves the gossip membership so that another node is
//! elected for it; it rejoins once every one of those interfaces has carrier again (or is
//! gone). Without gossip there is nobody to hand over to, so nothing is decided.
//!
//! Pure: the plan, the links, the interface filter and the stepped-down set in, a [`Decision`]
//! out. Must not: leave or join the membership (the daemon does), or read links itself.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_proto::l2::link::LinkInfo;

use crate::interfaces::{self, InterfaceFilter};
use crate::plan::L2Announcement;

/// What to do about the membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave the membership: these interfaces lost carrier and left an IP with nowhere to be
    /// answered. They become the stepped-down set.
    StepDown {
        /// The interfaces without carrier.
        interfaces: BTreeSet<String>,
    },
    /// Every interface of the stepped-down set has carrier again (or is gone): rejoin and clear
    /// the set.
    Rejoin,
    /// Nothing changes.
    Nothing,
}

/// Everything the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The speaker gossips (`--members-key-file`).
    pub has_gossip: bool,
    /// Interfaces whose loss of carrier made this node step down; empty when it has not.
    pub stepped_down: &'a BTreeSet<String>,
    /// The L2 part of this node's plan.
    pub planned: &'a BTreeMap<IpAddr, L2Announcement>,
    /// This node's links by name.
    pub links: &'a BTreeMap<String, LinkInfo>,
    /// Interfaces never used unless named.
    pub filter: &'a InterfaceFilter,
}

/// Whether to step down, rejoin, or do nothing.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    if !inputs.has_gossip {
        return Decision::Nothing;
    }
    if inputs.stepped_down.is_empty() {
        let lost: BTreeSet<String> = inputs
            .planned
            .values()
            .flat_map(|a| interfaces::lost_carrier(&a.interfaces, inputs.links, inputs.filter))
            .collect();
        if lost.is_empty() {
            return Decision::Nothing;
        }
        return Decision::StepDown { interfaces: lost };
    }
    let is_back = inputs
        .stepped_down
        .iter()
        .all(|name| inputs.links.get(name).is_none_or(|l| l.has_carrier));
    if is_back {
        Decision::Rejoin
    } else {
        Decision::Nothing
    }
}

#[cfg(test)]
mod tests {
    use ferrolb_proto::l2::addr::MacAddr;
    use proptest::prelude::*;

    use super::*;
    use crate::plan::Interfaces;

    fn link(index: u8, name: &str, carrier: bool) -> LinkInfo {
        LinkInfo {
            index: u32::from(index),
            name: name.to_owned(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, index])),
            is_up: true,
            has_carrier: carrier,
        }
    }

    fn links(list: Vec<LinkInfo>) -> BTreeMap<String, LinkInfo> {
        list.into_iter().map(|l| (l.name.clone(), l)).collect()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    /// One IP answered only on `eth1`.
    fn on_eth1() -> BTreeMap<IpAddr, L2Announcement> {
        [(
            "192.0.2.220".parse().expect("ip"),
            L2Announcement {
                services: names(&["ns/nic"]),
                interfaces: Interfaces::Only(names(&["eth1"])),
            },
        )]
        .into()
    }

    fn decide_with(
        has_gossip: bool,
        stepped_down: &BTreeSet<String>,
        planned: &BTreeMap<IpAddr, L2Announcement>,
        links: &BTreeMap<String, LinkInfo>,
    ) -> Decision {
        decide(&Inputs {
            has_gossip,
            stepped_down,
            planned,
            links,
            filter: &InterfaceFilter::metallb_defaults(),
        })
    }

    #[test]
    fn an_ip_left_without_carrier_makes_the_node_step_down() {
        let node = links(vec![link(2, "eth0", true), link(3, "eth1", false)]);
        assert_eq!(
            decide_with(true, &BTreeSet::new(), &on_eth1(), &node),
            Decision::StepDown {
                interfaces: names(&["eth1"])
            }
        );
    }

    #[test]
    fn without_gossip_there_is_nobody_to_hand_over_to() {
        let node = links(vec![link(3, "eth1", false)]);
        assert_eq!(
            decide_with(false, &BTreeSet::new(), &on_eth1(), &node),
            Decision::Nothing
        );
    }

    #[test]
    fn carrier_on_an_interface_the_plan_does_not_use_changes_nothing() {
        let node = links(vec![link(2, "eth0", false), link(3, "eth1", true)]);
        assert_eq!(
            decide_with(true, &BTreeSet::new(), &on_eth1(), &node),
            Decision::Nothing
        );
    }

    #[test]
    fn a_stepped_down_node_rejoins_only_when_every_lost_interface_is_back() {
        let stepped = names(&["eth1", "eth2"]);
        let half = links(vec![link(3, "eth1", true), link(4, "eth2", false)]);
        assert_eq!(
            decide_with(true, &stepped, &BTreeMap::new(), &half),
            Decision::Nothing
        );
        let back = links(vec![link(3, "eth1", true), link(4, "eth2", true)]);
        assert_eq!(
            decide_with(true, &stepped, &BTreeMap::new(), &back),
            Decision::Rejoin
        );
    }

    #[test]
    fn an_interface_that_vanished_does_not_keep_the_node_out() {
        let stepped = names(&["eth1"]);
        assert_eq!(
            decide_with(true, &stepped, &on_eth1(), &BTreeMap::new()),
            Decision::Rejoin
        );
    }

    #[test]
    fn a_stepped_down_node_does_not_step_down_again() {
        let stepped = names(&["eth1"]);
        let node = links(vec![link(3, "eth1", false), link(4, "eth2", false)]);
        assert_eq!(
            decide_with(true, &stepped, &on_eth1(), &node),
            Decision::Nothing
        );
    }

    proptest! {
        /// Stepping down then getting every carrier back always leads to a rejoin, and a node
        /// never steps down over interfaces that have carrier.
        #[test]
        fn a_step_down_names_only_carrierless_interfaces_and_their_return_rejoins(
            carriers in proptest::collection::vec(any::<bool>(), 1..5),
        ) {
            let node = links(
                carriers
                    .iter()
                    .enumerate()
                    .map(|(i, c)| link(i as u8 + 1, &format!("eth{i}"), *c))
                    .collect(),
            );
            let planned: BTreeMap<IpAddr, L2Announcement> = [(
                "192.0.2.1".parse().expect("ip"),
                L2Announcement { services: names(&["ns/a"]), interfaces: Interfaces::All },
            )]
            .into();
            match decide_with(true, &BTreeSet::new(), &planned, &node) {
                Decision::StepDown { interfaces } => {
                    prop_assert!(carriers.iter().all(|c| !c), "another interface still answers");
                    prop_assert!(interfaces.iter().all(|n| !node[n].has_carrier));
                    let mut healed = node.clone();
                    for l in healed.values_mut() {
                        l.has_carrier = true;
                    }
                    prop_assert_eq!(
                        decide_with(true, &interfaces, &planned, &healed),
                        Decision::Rejoin
                    );
                }
                Decision::Nothing => prop_assert!(carriers.iter().any(|c| *c)),
                Decision::Rejoin => prop_assert!(false, "not stepped down: nothing to rejoin"),
            }
        }
    }
}
