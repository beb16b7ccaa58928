//! Which of this node's interfaces an L2 announcement uses. Pure: links in, names out.
//!
//! An advertisement without `interfaces` means "every usable interface": up, with carrier, with
//! an Ethernet address, and not matching the exclusion patterns. MetalLB's Helm chart ships the
//! patterns in [`InterfaceFilter::metallb_defaults`] so that bridges, veths and tunnels of the
//! container network never answer ARP for a Service. Names an advertisement lists explicitly are
//! used when they exist and have carrier, whatever the patterns say: the operator chose them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_proto::l2::link::LinkInfo;
use regex::Regex;

use crate::apply::l2::L2State;
use crate::plan::{Interfaces, L2Announcement};

/// MetalLB's default `announcedInterfacesToExclude`.
pub const METALLB_EXCLUDED: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

/// Interface names never announced on unless named explicitly.
#[derive(Debug, Clone)]
pub struct InterfaceFilter {
    excluded: Vec<Regex>,
}

impl InterfaceFilter {
    /// A filter from regular expressions (matched anywhere in the name unless anchored).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, regex::Error> {
        let excluded = patterns
            .iter()
            .map(|p| Regex::new(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { excluded })
    }

    /// The patterns MetalLB excludes by default.
    pub fn metallb_defaults() -> Self {
        Self {
            excluded: METALLB_EXCLUDED
                .iter()
                .filter_map(|p| Regex::new(p).ok())
                .collect(),
        }
    }

    fn is_excluded(&self, name: &str) -> bool {
        self.excluded.iter().any(|r| r.is_match(name))
    }
}

/// Frames can flow and the link has a real Ethernet address (loopback's is all zeros).
fn can_answer(link: &LinkInfo) -> bool {
    link.is_up && link.has_carrier && link.mac.is_some_and(|m| m.0 != [0; 6])
}

/// The interfaces to answer on, given every link of the node by name. Empty means the IP
/// cannot be announced here now (named interfaces missing, or no carrier).
pub fn resolve(
    wanted: &Interfaces,
    links: &BTreeMap<String, LinkInfo>,
    filter: &InterfaceFilter,
) -> BTreeSet<String> {
    match wanted {
        Interfaces::All => links
            .values()
            .filter(|l| can_answer(l) && !filter.is_excluded(&l.name))
            .map(|l| l.name.clone())
            .collect(),
        Interfaces::Only(names) => names
            .iter()
            .filter(|n| links.get(*n).is_some_and(can_answer))
            .cloned()
            .collect(),
    }
}

/// The interfaces of every IP of a plan (see [`resolve`]): what the responder should answer.
pub fn resolve_plan(
    planned: &BTreeMap<IpAddr, L2Announcement>,
    links: &BTreeMap<String, LinkInfo>,
    filter: &InterfaceFilter,
) -> L2State {
    planned
        .iter()
        .map(|(ip, a)| (*ip, resolve(&a.interfaces, links, filter)))
        .collect()
}

/// The interfaces that lost carrier when they leave `wanted` with nothing to answer on: the
/// node must hand the IP to another node (an interface that is missing or administratively down
/// is a configuration matter, not a reason to step down).
pub fn lost_carrier(
    wanted: &Interfaces,
    links: &BTreeMap<String, LinkInfo>,
    filter: &InterfaceFilter,
) -> BTreeSet<String> {
    if !resolve(wanted, links, filter).is_empty() {
        return BTreeSet::new();
    }
    let without_carrier =
        |l: &&LinkInfo| l.is_up && !l.has_carrier && l.mac.is_some_and(|m| m.0 != [0; 6]);
    match wanted {
        Interfaces::All => links
            .values()
            .filter(without_carrier)
            .filter(|l| !filter.is_excluded(&l.name))
            .map(|l| l.name.clone())
            .collect(),
        Interfaces::Only(names) => names
            .iter()
            .filter_map(|n| links.get(n))
            .filter(without_carrier)
            .map(|l| l.name.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use ferrolb_proto::l2::addr::MacAddr;

    use super::*;

    fn link(index: u32, name: &str, up: bool, carrier: bool) -> LinkInfo {
        LinkInfo {
            index,
            name: name.to_owned(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            is_up: up,
            has_carrier: carrier,
        }
    }

    fn links(list: Vec<LinkInfo>) -> BTreeMap<String, LinkInfo> {
        list.into_iter().map(|l| (l.name.clone(), l)).collect()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn all_means_usable_interfaces_outside_the_default_exclusions() {
        let mut lo = link(1, "lo", true, true);
        lo.mac = Some(MacAddr([0; 6]));
        let node = links(vec![
            lo,
            link(2, "eth0", true, true),
            link(3, "eth1", true, false),
            link(4, "eth2", false, false),
            link(5, "veth12ab", true, true),
            link(6, "cali9", true, true),
            link(7, "bond0", true, true),
        ]);
        let filter = InterfaceFilter::metallb_defaults();
        assert_eq!(
            resolve(&Interfaces::All, &node, &filter),
            names(&["bond0", "eth0"])
        );
        let nothing_excluded = InterfaceFilter::new::<&str>(&[]).expect("no patterns");
        assert_eq!(
            resolve(&Interfaces::All, &node, &nothing_excluded),
            names(&["bond0", "cali9", "eth0", "veth12ab"]),
            "loopback never answers ARP, whatever the patterns"
        );
    }

    #[test]
    fn named_interfaces_are_used_when_present_with_carrier() {
        let node = links(vec![
            link(2, "eth0", true, true),
            link(3, "eth1", true, false),
            link(5, "veth0", true, true),
        ]);
        let wanted = Interfaces::Only(names(&["eth0", "eth1", "veth0", "eth9"]));
        assert_eq!(
            resolve(&wanted, &node, &InterfaceFilter::metallb_defaults()),
            names(&["eth0", "veth0"])
        );
    }

    #[test]
    fn losing_the_last_carrier_is_a_reason_to_step_down() {
        let filter = InterfaceFilter::metallb_defaults();
        let wanted = Interfaces::Only(names(&["eth1", "eth2"]));
        let node = links(vec![
            link(2, "eth1", true, false),
            link(3, "eth2", false, false),
        ]);
        assert_eq!(lost_carrier(&wanted, &node, &filter), names(&["eth1"]));
        let one_left = links(vec![
            link(2, "eth1", true, false),
            link(3, "eth2", true, true),
        ]);
        assert!(
            lost_carrier(&wanted, &one_left, &filter).is_empty(),
            "another interface still answers"
        );
        let admin_down = links(vec![link(2, "eth1", false, false)]);
        assert!(
            lost_carrier(&wanted, &admin_down, &filter).is_empty(),
            "down by choice: no handover"
        );
        let all = links(vec![
            link(2, "eth0", true, false),
            link(5, "veth1", true, false),
        ]);
        assert_eq!(
            lost_carrier(&Interfaces::All, &all, &filter),
            names(&["eth0"])
        );
    }

    #[test]
    fn a_plan_resolves_ip_by_ip_and_keeps_ips_with_nowhere_to_answer() {
        let node = links(vec![
            link(2, "eth0", true, true),
            link(3, "eth1", true, false),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let planned: BTreeMap<IpAddr, L2Announcement> = [
            (
                ip("192.0.2.1"),
                L2Announcement {
                    services: names(&["ns/a"]),
                    interfaces: Interfaces::All,
                },
            ),
            (
                ip("192.0.2.2"),
                L2Announcement {
                    services: names(&["ns/b"]),
                    interfaces: Interfaces::Only(names(&["eth1"])),
                },
            ),
        ]
        .into();
        let resolved = resolve_plan(&planned, &node, &InterfaceFilter::metallb_defaults());
        assert_eq!(
            resolved,
            L2State::from([
                (ip("192.0.2.1"), names(&["eth0"])),
                (ip("192.0.2.2"), BTreeSet::new()),
            ])
        );
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        assert!(InterfaceFilter::new(&["^(eth"]).is_err());
    }
}
