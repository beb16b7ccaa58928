//! L2: from the IPs announced now and the IPs wanted, the announce/withdraw calls to make.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// IP → the interfaces it is answered on.
pub type L2State = BTreeMap<IpAddr, BTreeSet<String>>;

/// The calls that turn one [`L2State`] into another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Changes {
    /// Start answering, or change where: IP → its full interface set.
    pub announce: L2State,
    /// Stop answering anywhere.
    pub withdraw: BTreeSet<IpAddr>,
}

impl L2Changes {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }
}

/// The changes from `current` to `wanted`. An IP wanted on no interface is withdrawn: it cannot
/// be answered here, and answering nowhere is what withdrawing means.
pub fn diff(current: &L2State, wanted: &L2State) -> L2Changes {
    let announce = wanted
        .iter()
        .filter(|(ip, interfaces)| !interfaces.is_empty() && current.get(*ip) != Some(*interfaces))
        .map(|(ip, interfaces)| (*ip, interfaces.clone()))
        .collect();
    let withdraw = current
        .keys()
        .filter(|ip| wanted.get(*ip).is_none_or(BTreeSet::is_empty))
        .copied()
        .collect();
    L2Changes { announce, withdraw }
}

/// `current` after `changes` were applied.
pub fn applied(current: &L2State, changes: &L2Changes) -> L2State {
    let mut next = current.clone();
    for ip in &changes.withdraw {
        next.remove(ip);
    }
    for (ip, interfaces) in &changes.announce {
        next.insert(*ip, interfaces.clone());
    }
    next
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn state(entries: &[(&str, &[&str])]) -> L2State {
        entries
            .iter()
            .map(|(ip, names)| {
                (
                    ip.parse().expect("ip"),
                    names.iter().map(|n| (*n).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn unchanged_ips_cost_nothing_and_moves_replace_the_interface_set() {
        let current = state(&[
            ("192.0.2.1", &["eth0"]),
            ("192.0.2.2", &["eth0"]),
            ("192.0.2.3", &["eth0"]),
        ]);
        let wanted = state(&[
            ("192.0.2.1", &["eth0"]),
            ("192.0.2.2", &["eth0", "eth1"]),
            ("192.0.2.3", &[]),
            ("2001:db8::1", &["eth1"]),
        ]);
        let changes = diff(&current, &wanted);
        assert_eq!(
            changes.announce,
            state(&[("192.0.2.2", &["eth0", "eth1"]), ("2001:db8::1", &["eth1"])])
        );
        assert_eq!(
            changes.withdraw,
            BTreeSet::from(["192.0.2.3".parse().expect("ip")])
        );
    }

    fn arb_state() -> impl Strategy<Value = L2State> {
        proptest::collection::btree_map(
            (0u8..8).prop_map(|i| IpAddr::from([192, 0, 2, i])),
            proptest::collection::btree_set(
                prop_oneof![Just("eth0".to_owned()), Just("eth1".to_owned())],
                0..3,
            ),
            0..8,
        )
    }

    proptest! {
        #[test]
        fn applying_the_diff_reaches_the_wanted_state(current in arb_state(), wanted in arb_state()) {
            let changes = diff(&current, &wanted);
            let reached = applied(&current, &changes);
            let expected: L2State = wanted.into_iter().filter(|(_, i)| !i.is_empty()).collect();
            prop_assert_eq!(&reached, &expected);
            prop_assert!(diff(&reached, &expected).is_empty(), "a second pass has nothing to do");
        }
    }
}
