//! What the responder must change on its interfaces when the wanted addresses, the
//! links or a carrier change: the pure half of the driver's reconcile.
//!
//! No I/O: takes sets, returns sets. The driver carries the result out (sockets,
//! memberships, announcement tasks).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Inverts "address → interface names" into "interface name → addresses".
pub fn by_interface(
    wanted: &BTreeMap<IpAddr, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut out: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for (ip, names) in wanted {
        for name in names {
            out.entry(name.clone()).or_default().insert(*ip);
        }
    }
    out
}

/// The changes on one interface going from `current` to `next` addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceChange {
    /// No longer answered: stop their announcements, leave their groups.
    pub removed: BTreeSet<IpAddr>,
    /// Newly answered: join their groups.
    pub added: BTreeSet<IpAddr>,
    /// To announce now (gratuitous ARP / unsolicited NA): the added ones, or every
    /// address when the interface has just become able to send. Empty while it cannot.
    pub announce: BTreeSet<IpAddr>,
}

/// Compares the address sets of one interface. `could_send` and `can_send` say
/// whether the interface was, and is, up with carrier.
pub fn interface_change(
    current: &BTreeSet<IpAddr>,
    next: &BTreeSet<IpAddr>,
    could_send: bool,
    can_send: bool,
) -> InterfaceChange {
    let removed: BTreeSet<IpAddr> = current.difference(next).copied().collect();
    let added: BTreeSet<IpAddr> = next.difference(current).copied().collect();
    let announce = match (could_send, can_send) {
        (_, false) => BTreeSet::new(),
        (false, true) => next.clone(),
        (true, true) => added.clone(),
    };
    InterfaceChange {
        removed,
        added,
        announce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ips: &[&str]) -> BTreeSet<IpAddr> {
        ips.iter().map(|s| s.parse().expect("literal")).collect()
    }

    #[test]
    fn an_address_on_two_interfaces_is_listed_under_both() {
        let mut wanted = BTreeMap::new();
        wanted.insert(
            "192.0.2.10".parse().expect("literal"),
            ["eth0".to_owned(), "eth1".to_owned()].into_iter().collect(),
        );
        wanted.insert(
            "2001:db8::10".parse().expect("literal"),
            ["eth1".to_owned()].into_iter().collect(),
        );
        let got = by_interface(&wanted);
        assert_eq!(got.get("eth0"), Some(&set(&["192.0.2.10"])));
        assert_eq!(got.get("eth1"), Some(&set(&["192.0.2.10", "2001:db8::10"])));
    }

    #[test]
    fn a_new_address_on_a_live_interface_is_joined_and_announced() {
        let c = interface_change(
            &set(&["192.0.2.1"]),
            &set(&["192.0.2.1", "2001:db8::1"]),
            true,
            true,
        );
        assert_eq!(c.added, set(&["2001:db8::1"]));
        assert_eq!(c.announce, set(&["2001:db8::1"]));
        assert!(c.removed.is_empty());
    }

    #[test]
    fn a_withdrawn_address_is_removed_and_not_announced() {
        let c = interface_change(
            &set(&["192.0.2.1", "192.0.2.2"]),
            &set(&["192.0.2.2"]),
            true,
            true,
        );
        assert_eq!(c.removed, set(&["192.0.2.1"]));
        assert!(c.added.is_empty() && c.announce.is_empty());
    }

    #[test]
    fn nothing_is_announced_without_carrier_but_groups_are_still_joined() {
        let c = interface_change(&set(&[]), &set(&["2001:db8::1"]), false, false);
        assert_eq!(c.added, set(&["2001:db8::1"]));
        assert!(c.announce.is_empty());
    }

    #[test]
    fn carrier_coming_back_announces_every_address_again() {
        let all = set(&["192.0.2.1", "2001:db8::1"]);
        let c = interface_change(&all, &all, false, true);
        assert_eq!(c.announce, all);
        assert!(c.added.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn an_unchanged_live_interface_needs_nothing() {
        let all = set(&["192.0.2.1"]);
        assert_eq!(
            interface_change(&all, &all, true, true),
            InterfaceChange::default()
        );
    }
}
