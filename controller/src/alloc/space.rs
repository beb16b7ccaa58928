//! Which addresses of one pool are taken, and the first free one in address order, in O(log n).
//!
//! Taken addresses are kept as merged intervals, so memory grows with the number of runs of taken
//! addresses, never with the size of the pool. For `avoidBuggyIPs` pools IPv4 addresses are
//! numbered without their .0 and .255 (254 per /24), so that the usable addresses of a pool are one
//! contiguous space and a search never steps over excluded addresses one by one. No I/O.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_api::addr::{Family, IpRange};

/// How addresses of one family map to search positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    /// Position = the address as a number.
    Plain,
    /// IPv4 without .0 and .255: position = 254 × (address / 256) + (address % 256 − 1).
    SkipBuggy,
}

impl Numbering {
    /// The position of a usable address; `None` for an excluded one.
    fn position(self, value: u128) -> Option<u128> {
        match self {
            Numbering::Plain => Some(value),
            Numbering::SkipBuggy => match value % 256 {
                0 | 255 => None,
                low => Some(value / 256 * 254 + low - 1),
            },
        }
    }

    fn value(self, position: u128) -> u128 {
        match self {
            Numbering::Plain => position,
            Numbering::SkipBuggy => position / 254 * 256 + position % 254 + 1,
        }
    }

    /// Positions of the usable addresses of `[start, end]`, or `None` if there are none.
    fn span(self, start: u128, end: u128) -> Option<(u128, u128)> {
        match self {
            Numbering::Plain => Some((start, end)),
            Numbering::SkipBuggy => {
                let first = (start..=end.min(start + 2)).find_map(|v| self.position(v))?;
                let last = (end.saturating_sub(2).max(start)..=end)
                    .rev()
                    .find_map(|v| self.position(v))?;
                (first <= last).then_some((first, last))
            }
        }
    }
}

fn to_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn to_ip(family: Family, value: u128) -> IpAddr {
    match family {
        // Positions come from IPv4 ranges, so the value fits.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Taken positions of one family of one pool, as merged `start → end` intervals.
#[derive(Debug, Clone, Default)]
struct Taken {
    runs: BTreeMap<u128, u128>,
}

impl Taken {
    /// The run holding `position`, if any.
    fn run_at(&self, position: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.runs.range(..=position).next_back()?;
        (end >= position).then_some((start, end))
    }

    fn insert(&mut self, position: u128) {
        if self.run_at(position).is_some() {
            return;
        }
        let mut start = position;
        let mut end = position;
        if let Some((s, e)) = position.checked_sub(1).and_then(|p| self.run_at(p)) {
            self.runs.remove(&s);
            start = s;
            end = end.max(e);
        }
        if let Some(next) = position.checked_add(1)
            && let Some(e) = self.runs.remove(&next)
        {
            end = e;
        }
        self.runs.insert(start, end);
    }

    fn remove(&mut self, position: u128) {
        let Some((start, end)) = self.run_at(position) else {
            return;
        };
        self.runs.remove(&start);
        if start < position {
            self.runs.insert(start, position - 1);
        }
        if position < end {
            self.runs.insert(position + 1, end);
        }
    }

    /// The first position in `[lo, hi]` not taken.
    fn first_free(&self, lo: u128, hi: u128) -> Option<u128> {
        let candidate = match self.run_at(lo) {
            Some((_, end)) => end.checked_add(1)?,
            None => lo,
        };
        // Runs are merged, so the position after a run is free.
        (candidate <= hi).then_some(candidate)
    }
}

/// The address space of one pool: its ranges and which of their addresses are taken.
#[derive(Debug, Clone)]
pub(crate) struct PoolSpace {
    /// Ranges in `spec.addresses` order, as position spans (empty ranges dropped).
    spans: Vec<(Family, u128, u128)>,
    numbering_v4: Numbering,
    taken_v4: Taken,
    taken_v6: Taken,
}

impl PoolSpace {
    /// An empty space over `ranges`.
    pub(crate) fn new(ranges: &[IpRange], avoid_buggy_ips: bool) -> Self {
        let numbering_v4 = if avoid_buggy_ips {
            Numbering::SkipBuggy
        } else {
            Numbering::Plain
        };
        let spans = ranges
            .iter()
            .filter_map(|r| {
                let numbering = if r.family() == Family::V4 {
                    numbering_v4
                } else {
                    Numbering::Plain
                };
                let (lo, hi) = numbering.span(to_value(r.start()), to_value(r.end()))?;
                Some((r.family(), lo, hi))
            })
            .collect();
        PoolSpace {
            spans,
            numbering_v4,
            taken_v4: Taken::default(),
            taken_v6: Taken::default(),
        }
    }

    fn numbering(&self, family: Family) -> Numbering {
        match family {
            Family::V4 => self.numbering_v4,
            Family::V6 => Numbering::Plain,
        }
    }

    fn taken(&self, family: Family) -> &Taken {
        match family {
            Family::V4 => &self.taken_v4,
            Family::V6 => &self.taken_v6,
        }
    }

    fn taken_mut(&mut self, family: Family) -> &mut Taken {
        match family {
            Family::V4 => &mut self.taken_v4,
            Family::V6 => &mut self.taken_v6,
        }
    }

    /// The search position of `ip` if the pool may hand it out (in a range, not excluded).
    fn position(&self, ip: IpAddr) -> Option<u128> {
        let family = Family::of(ip);
        let position = self.numbering(family).position(to_value(ip))?;
        self.spans
            .iter()
            .any(|&(f, lo, hi)| f == family && (lo..=hi).contains(&position))
            .then_some(position)
    }

    /// Whether the pool may hand `ip` out at all.
    pub(crate) fn is_usable(&self, ip: IpAddr) -> bool {
        self.position(ip).is_some()
    }

    /// Marks `ip` taken; ignored if the pool cannot hand it out.
    pub(crate) fn take(&mut self, ip: IpAddr) {
        if let Some(position) = self.position(ip) {
            self.taken_mut(Family::of(ip)).insert(position);
        }
    }

    /// Marks `ip` free again.
    pub(crate) fn free(&mut self, ip: IpAddr) {
        if let Some(position) = self.position(ip) {
            self.taken_mut(Family::of(ip)).remove(position);
        }
    }

    /// The first free address of `family`, ranges in `spec.addresses` order, each from its start.
    pub(crate) fn first_free(&self, family: Family) -> Option<IpAddr> {
        let numbering = self.numbering(family);
        let taken = self.taken(family);
        self.spans
            .iter()
            .filter(|(f, _, _)| *f == family)
            .find_map(|&(_, lo, hi)| taken.first_free(lo, hi))
            .map(|position| to_ip(family, numbering.value(position)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn space(entries: &[&str], avoid_buggy_ips: bool) -> PoolSpace {
        let ranges: Vec<IpRange> = entries.iter().map(|e| e.parse().expect("range")).collect();
        PoolSpace::new(&ranges, avoid_buggy_ips)
    }

    #[test]
    fn addresses_are_handed_out_in_order_and_reused_after_free() {
        let mut pool = space(&["192.0.2.0/30", "192.0.2.100-192.0.2.101"], false);
        let mut got = Vec::new();
        while let Some(next) = pool.first_free(Family::V4) {
            pool.take(next);
            got.push(next.to_string());
        }
        assert_eq!(
            got,
            [
                "192.0.2.0",
                "192.0.2.1",
                "192.0.2.2",
                "192.0.2.3",
                "192.0.2.100",
                "192.0.2.101"
            ]
        );
        pool.free(ip("192.0.2.2"));
        assert_eq!(pool.first_free(Family::V4), Some(ip("192.0.2.2")));
        assert_eq!(pool.first_free(Family::V6), None);
    }

    #[test]
    fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
        let mut pool = space(&["192.0.2.254-192.0.3.1"], true);
        assert!(!pool.is_usable(ip("192.0.2.255")));
        assert!(!pool.is_usable(ip("192.0.3.0")));
        assert_eq!(pool.first_free(Family::V4), Some(ip("192.0.2.254")));
        pool.take(ip("192.0.2.254"));
        assert_eq!(pool.first_free(Family::V4), Some(ip("192.0.3.1")));
        pool.take(ip("192.0.3.1"));
        assert_eq!(pool.first_free(Family::V4), None);
        assert!(
            space(&["192.0.2.255-192.0.3.0"], true)
                .first_free(Family::V4)
                .is_none()
        );
    }

    #[test]
    fn a_whole_ipv6_space_is_searchable_without_listing_it() {
        let mut pool = space(&["::/0"], false);
        pool.take(ip("::"));
        assert_eq!(pool.first_free(Family::V6), Some(ip("::1")));
        let mut top = space(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"], false);
        top.take(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
        top.take(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(top.first_free(Family::V6), None);
    }

    proptest! {
        /// Against a model that lists every address: the first free one is the smallest usable
        /// address not taken, whatever sequence of takes and frees came before.
        #[test]
        fn first_free_matches_an_enumerated_model(avoid in any::<bool>(), ops in proptest::collection::vec((any::<bool>(), 0u32..700), 0..300)) {
            let (lo, hi) = (0xc000_02f0u32, 0xc000_02f0u32 + 600);
            let entry = format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi));
            let mut pool = space(&[entry.as_str()], avoid);
            let usable: Vec<u32> = (lo..=hi).filter(|v| !avoid || !matches!(v % 256, 0 | 255)).collect();
            let mut taken = BTreeSet::new();
            for (is_take, offset) in ops {
                let address = IpAddr::V4(Ipv4Addr::from(lo + offset));
                if is_take {
                    pool.take(address);
                    if usable.contains(&(lo + offset)) { taken.insert(lo + offset); }
                } else {
                    pool.free(address);
                    taken.remove(&(lo + offset));
                }
                let want = usable.iter().find(|v| !taken.contains(v)).map(|v| IpAddr::V4(Ipv4Addr::from(*v)));
                prop_assert_eq!(pool.first_free(Family::V4), want);
            }
        }
    }
}
