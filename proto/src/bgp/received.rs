//! What a peer sends us, counted but not kept: prefixes announced and withdrawn per unicast
//! family, and the maximum-prefix guard (RFC 4486, Cease subcode 1).
//!
//! FerroLB only advertises; it has no RIB and never uses a received route. The counters exist
//! so that an operator can see what a peer sends, and the guard so that a misconfigured router
//! (a full table towards an advertise-only speaker) is told, not silently processed forever.
//!
//! The guard is exact and bounded: while it is on it holds the distinct prefixes a family has,
//! never more than the limit plus one per family (a re-announcement replaces, a withdrawal
//! removes), and nothing at all while it is off. Without a set, "announced minus withdrawn"
//! would count every attribute change of the same prefix again and trip after long uptimes.
//! Families other than IPv4 and IPv6 unicast are not counted (we never negotiate them).
//! No I/O, no clock.

use std::collections::HashSet;

use netgauze_bgp_pkt::nlri::{Ipv4UnicastAddress, Ipv6UnicastAddress};
use netgauze_bgp_pkt::path_attribute::{MpReach, MpUnreach, PathAttributeValue};
use netgauze_bgp_pkt::update::BgpUpdateMessage;

use super::notification::Notification;

/// A unicast family we count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// AFI 1, SAFI 1.
    Ipv4,
    /// AFI 2, SAFI 1.
    Ipv6,
}

impl Family {
    /// Both families, in index order.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// Position in per-family arrays.
    pub fn index(self) -> usize {
        match self {
            Family::Ipv4 => 0,
            Family::Ipv6 => 1,
        }
    }

    /// The IANA AFI number.
    pub fn afi(self) -> u16 {
        match self {
            Family::Ipv4 => 1,
            Family::Ipv6 => 2,
        }
    }

    /// A stable lowercase label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// Prefixes in one UPDATE, per family (indexed by [`Family::index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateCounts {
    /// NLRI announced (RFC 4271 NLRI field and MP_REACH_NLRI).
    pub announced: [u64; 2],
    /// Prefixes withdrawn (Withdrawn Routes field and MP_UNREACH_NLRI).
    pub withdrawn: [u64; 2],
}

/// Counts the unicast prefixes of one UPDATE.
pub fn count(update: &BgpUpdateMessage) -> UpdateCounts {
    let mut counts = UpdateCounts::default();
    visit(update, |family, _, is_announced| {
        let side = if is_announced {
            &mut counts.announced
        } else {
            &mut counts.withdrawn
        };
        side[family.index()] += 1;
    });
    counts
}

/// A prefix as a compact exact key: address bits and length.
type Key = (u128, u8);

fn key_v4(a: &Ipv4UnicastAddress) -> Key {
    let net = a.network().address();
    (u128::from(u32::from(net.network())), net.prefix_len())
}

fn key_v6(a: &Ipv6UnicastAddress) -> Key {
    let net = a.network().address();
    (u128::from(net.network()), net.prefix_len())
}

/// Calls `f(family, key, is_announced)` for every unicast prefix of the UPDATE, withdrawals
/// first (RFC 4271 §9: an UPDATE's withdrawals are processed before its announcements).
fn visit(update: &BgpUpdateMessage, mut f: impl FnMut(Family, Key, bool)) {
    for a in update.withdraw_routes() {
        f(Family::Ipv4, key_v4(a), false);
    }
    for attr in update.path_attributes() {
        match attr.value() {
            PathAttributeValue::MpUnreach(MpUnreach::Ipv4Unicast { nlri }) => {
                nlri.iter().for_each(|a| f(Family::Ipv4, key_v4(a), false));
            }
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => {
                nlri.iter().for_each(|a| f(Family::Ipv6, key_v6(a), false));
            }
            _ => {}
        }
    }
    for attr in update.path_attributes() {
        match attr.value() {
            PathAttributeValue::MpReach(MpReach::Ipv4Unicast { nlri, .. }) => {
                nlri.iter().for_each(|a| f(Family::Ipv4, key_v4(a), true));
            }
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast { nlri, .. }) => {
                nlri.iter().for_each(|a| f(Family::Ipv6, key_v6(a), true));
            }
            _ => {}
        }
    }
    for a in update.nlri() {
        f(Family::Ipv4, key_v4(a), true);
    }
}

/// A family went over the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// Which family.
    pub family: Family,
    /// The configured maximum.
    pub limit: u32,
}

impl Exceeded {
    /// The Cease the session ends with (RFC 4486 §4: AFI, SAFI, the limit).
    pub fn notification(&self) -> Notification {
        Notification::max_prefixes(self.family.afi(), 1, self.limit)
    }
}

/// The maximum-prefix guard of one session: the distinct prefixes each family holds now.
#[derive(Debug, Clone, Default)]
pub struct PrefixGuard {
    /// `None`: off, nothing is held.
    limit: Option<u32>,
    held: [HashSet<Key>; 2],
}

impl PrefixGuard {
    /// A guard allowing at most `limit` prefixes per family; `None` turns it off.
    pub fn new(limit: Option<u32>) -> Self {
        Self {
            limit,
            held: Default::default(),
        }
    }

    /// Applies one UPDATE; `Err` once a family would hold more than the limit. After an
    /// `Err` the session ends and the guard must be [`cleared`](Self::clear).
    pub fn apply(&mut self, update: &BgpUpdateMessage) -> Result<(), Exceeded> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let max = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut exceeded = None;
        visit(update, |family, key, is_announced| {
            let held = &mut self.held[family.index()];
            if !is_announced {
                held.remove(&key);
            } else if exceeded.is_none() && (held.len() < max || held.contains(&key)) {
                held.insert(key);
            } else {
                exceeded.get_or_insert(Exceeded { family, limit });
            }
        });
        exceeded.map_or(Ok(()), Err)
    }

    /// Distinct prefixes of `family` held now (0 while the guard is off).
    pub fn held(&self, family: Family) -> usize {
        self.held[family.index()].len()
    }

    /// Forgets everything: a new session starts from nothing.
    pub fn clear(&mut self) {
        self.held = Default::default();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use ipnet::{Ipv4Net, Ipv6Net};
    use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv6Unicast};
    use netgauze_bgp_pkt::path_attribute::{PathAttribute, PathAttributeValue};

    use super::*;

    fn v4(i: u32) -> Ipv4UnicastAddress {
        let net = Ipv4Net::new(Ipv4Addr::from(0xc633_6400 + i), 32).expect("prefix");
        Ipv4UnicastAddress::new_no_path_id(Ipv4Unicast::from_net(net).expect("unicast"))
    }

    fn v6(i: u32) -> Ipv6UnicastAddress {
        let addr = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i));
        let net = Ipv6Net::new(addr, 128).expect("prefix");
        Ipv6UnicastAddress::new(None, Ipv6Unicast::from_net(net).expect("unicast"))
    }

    fn update(withdrawn: &[u32], announced: &[u32], v6_announced: &[u32]) -> BgpUpdateMessage {
        let mut attrs = Vec::new();
        if !v6_announced.is_empty() {
            let reach = MpReach::Ipv6Unicast {
                next_hop_global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                next_hop_local: None,
                nlri: v6_announced.iter().map(|i| v6(*i)).collect(),
            };
            attrs.push(
                PathAttribute::from(
                    true,
                    false,
                    false,
                    false,
                    PathAttributeValue::MpReach(reach),
                )
                .expect("attribute"),
            );
        }
        BgpUpdateMessage::new(
            withdrawn.iter().map(|i| v4(*i)).collect::<Vec<_>>(),
            attrs,
            announced.iter().map(|i| v4(*i)).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn prefixes_are_counted_per_family_and_direction() {
        let counts = count(&update(&[9], &[1, 2, 3], &[1, 2]));
        assert_eq!(counts.announced, [3, 2]);
        assert_eq!(counts.withdrawn, [1, 0]);
    }

    #[test]
    fn an_off_guard_holds_nothing_and_never_trips() {
        let mut guard = PrefixGuard::new(None);
        let many: Vec<u32> = (0..1000).collect();
        assert_eq!(guard.apply(&update(&[], &many, &many)), Ok(()));
        assert_eq!(guard.held(Family::Ipv4), 0);
        assert_eq!(guard.held(Family::Ipv6), 0);
    }

    #[test]
    fn re_announcing_the_same_prefixes_never_trips_the_guard() {
        let mut guard = PrefixGuard::new(Some(3));
        for _ in 0..100 {
            assert_eq!(guard.apply(&update(&[], &[1, 2, 3], &[])), Ok(()));
        }
        assert_eq!(guard.held(Family::Ipv4), 3);
    }

    #[test]
    fn one_prefix_over_the_limit_trips_the_guard_for_that_family() {
        let mut guard = PrefixGuard::new(Some(3));
        assert_eq!(guard.apply(&update(&[], &[1, 2, 3], &[1, 2, 3])), Ok(()));
        let exceeded = guard
            .apply(&update(&[], &[4], &[]))
            .expect_err("fourth v4 prefix");
        assert_eq!(
            exceeded,
            Exceeded {
                family: Family::Ipv4,
                limit: 3
            }
        );
        assert_eq!(
            exceeded.notification().data,
            vec![0, 1, 1, 0, 0, 0, 3],
            "AFI 1, SAFI 1, limit 3"
        );
        assert!(
            guard.held(Family::Ipv4) <= 3,
            "never more than the limit held"
        );
    }

    #[test]
    fn withdrawals_in_the_same_update_make_room_first() {
        let mut guard = PrefixGuard::new(Some(2));
        assert_eq!(guard.apply(&update(&[], &[1, 2], &[])), Ok(()));
        assert_eq!(guard.apply(&update(&[1], &[3], &[])), Ok(()));
        assert_eq!(guard.held(Family::Ipv4), 2);
        guard.clear();
        assert_eq!(guard.held(Family::Ipv4), 0);
    }
}
