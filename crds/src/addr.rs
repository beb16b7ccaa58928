//! Address arithmetic: the one place that knows how pool entries (`CIDR` or `start-end`) map to sets
//! of addresses, how large they are, and whether two of them overlap.
//!
//! Addresses are held as `u128` so that IPv4 and IPv6 share one code path and an IPv6 /64 is a pair of
//! numbers, never a list. No I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnetwork::IpNetwork;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    fn addr(self, value: u128) -> IpAddr {
        match self {
            // Values of a V4 range never exceed u32::MAX: they come from Ipv4Addr or are clamped.
            Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The low `host_bits` bits set (all 128 for a full-width block).
fn host_mask(host_bits: u32) -> u128 {
    u128::MAX.checked_shr(128 - host_bits).unwrap_or(0)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Why a pool entry is not an address range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Neither a CIDR nor a `start-end` range.
    #[error(
        "not a CIDR (192.0.2.0/24) or a range (192.0.2.1-192.0.2.9); write one address as /32 or /128"
    )]
    Malformed,
    /// A CIDR whose address or prefix length does not parse.
    #[error("invalid CIDR: {0}")]
    InvalidCidr(String),
    /// One side of `start-end` is not an IP address.
    #[error("invalid IP address {0:?} in range")]
    InvalidAddress(String),
    /// `start-end` with an IPv4 and an IPv6 side.
    #[error("range mixes IPv4 and IPv6")]
    MixedFamilies,
    /// `start-end` with start > end.
    #[error("range end before start")]
    EndBeforeStart,
}

impl RangeError {
    /// Stable CamelCase name for metrics, Events and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            RangeError::Malformed => "MalformedRange",
            RangeError::InvalidCidr(_) => "InvalidCIDR",
            RangeError::InvalidAddress(_) => "InvalidAddress",
            RangeError::MixedFamilies => "MixedFamilyRange",
            RangeError::EndBeforeStart => "RangeEndBeforeStart",
        }
    }
}

/// An inclusive range of addresses of one family: what a pool entry denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    family: Family,
    start: u128,
    end: u128,
}

impl IpRange {
    /// The range from `start` to `end` inclusive.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, RangeError> {
        let family = Family::of(start);
        if family != Family::of(end) {
            return Err(RangeError::MixedFamilies);
        }
        let (start, end) = (to_u128(start), to_u128(end));
        if start > end {
            return Err(RangeError::EndBeforeStart);
        }
        Ok(IpRange { family, start, end })
    }

    /// The addresses of a CIDR; host bits are ignored as MetalLB ignores them.
    pub fn from_network(net: IpNetwork) -> Self {
        let family = Family::of(net.ip());
        let host = host_mask(u32::from(family.bits() - net.prefix()));
        let start = to_u128(net.ip()) & !host & family.max();
        IpRange {
            family,
            start,
            end: start | host,
        }
    }

    /// A single address.
    pub fn single(ip: IpAddr) -> Self {
        let value = to_u128(ip);
        IpRange {
            family: Family::of(ip),
            start: value,
            end: value,
        }
    }

    /// The family of every address in the range.
    pub fn family(&self) -> Family {
        self.family
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.family.addr(self.start)
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        self.family.addr(self.end)
    }

    /// Number of addresses. A full IPv6 space (2^128) saturates at `u128::MAX`.
    pub fn size(&self) -> u128 {
        (self.end - self.start).saturating_add(1)
    }

    /// Number of addresses that are usable when `.0` and `.255` IPv4 addresses are avoided.
    /// IPv6 ranges are unaffected.
    pub fn usable_size(&self, avoid_buggy_ips: bool) -> u128 {
        if !avoid_buggy_ips || self.family == Family::V6 {
            return self.size();
        }
        self.size() - self.buggy_count()
    }

    /// How many addresses ending in .0 or .255 the (IPv4) range holds.
    fn buggy_count(&self) -> u128 {
        // Addresses ≤ x ending in .0: floor(x/256)+1; ending in .255: floor((x+1)/256).
        let zeros_upto = |x: u128| x / 256 + 1;
        let ones_upto = |x: u128| (x + 1) / 256;
        let zeros = zeros_upto(self.end)
            - if self.start == 0 {
                0
            } else {
                zeros_upto(self.start - 1)
            };
        let ones = ones_upto(self.end)
            - if self.start == 0 {
                0
            } else {
                ones_upto(self.start - 1)
            };
        zeros + ones
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family && (self.start..=self.end).contains(&to_u128(ip))
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family == other.family && self.start <= other.end && other.start <= self.end
    }

    /// The smallest set of CIDRs that covers exactly this range, in address order.
    /// At most 2 × the address width of them, so never large.
    pub fn cidrs(&self) -> Cidrs {
        Cidrs {
            family: self.family,
            next: Some(self.start),
            end: self.end,
        }
    }

    /// The shortest prefix length among [`IpRange::cidrs`]: the widest block the range contains.
    pub fn shortest_prefix(&self) -> u8 {
        self.cidrs()
            .map(|net| net.prefix())
            .min()
            .unwrap_or(self.family.bits())
    }

    /// The `n`-th address of the range (0-based), if there is one.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let value = self.start.checked_add(n)?;
        (value <= self.end).then(|| self.family.addr(value))
    }
}

/// Whether an address ends in .0 or .255: such IPv4 addresses are skipped by `avoidBuggyIPs` pools.
pub fn is_buggy_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// Iterator over the CIDRs of an [`IpRange`].
#[derive(Debug, Clone)]
pub struct Cidrs {
    family: Family,
    next: Option<u128>,
    end: u128,
}

impl Iterator for Cidrs {
    type Item = IpNetwork;

    fn next(&mut self) -> Option<IpNetwork> {
        let start = self.next?;
        let bits = u32::from(self.family.bits());
        // The largest block aligned at `start` that does not run past `end`.
        let mut host_bits = start.trailing_zeros().min(bits);
        while host_bits > 0 && start | host_mask(host_bits) > self.end {
            host_bits -= 1;
        }
        let last = start | host_mask(host_bits);
        self.next = if last >= self.end {
            None
        } else {
            Some(last + 1)
        };
        let prefix = u8::try_from(bits - host_bits).unwrap_or(0);
        IpNetwork::new(self.family.addr(start), prefix).ok()
    }
}

impl FromStr for IpRange {
    type Err = RangeError;

    /// Parses a pool entry: `192.0.2.0/24`, `2001:db8::/64`, or `192.0.2.10 - 192.0.2.20`.
    fn from_str(entry: &str) -> Result<Self, RangeError> {
        let entry = entry.trim();
        if entry.contains('/') {
            return IpNetwork::from_str(entry)
                .map(IpRange::from_network)
                .map_err(|e| RangeError::InvalidCidr(e.to_string()));
        }
        let Some((start, end)) = entry.split_once('-') else {
            return Err(RangeError::Malformed);
        };
        let parse = |side: &str| {
            let side = side.trim();
            IpAddr::from_str(side).map_err(|_| RangeError::InvalidAddress(side.to_owned()))
        };
        IpRange::new(parse(start)?, parse(end)?)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start(), self.end())
    }
}

/// A pair of entries that share addresses, by their positions in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// Index of the entry that starts first.
    pub first: usize,
    /// Index of the entry that overlaps it.
    pub second: usize,
}

/// Every entry that overlaps an earlier-starting one, in O(n log n).
///
/// Each overlapping entry is reported once, against the entry reaching furthest before it, which is
/// enough to name a culprit for every bad entry without listing every pair.
pub fn find_overlaps(ranges: &[IpRange]) -> Vec<Overlap> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].family, ranges[i].start, i));
    let mut overlaps = Vec::new();
    let mut reach: Option<usize> = None;
    for &i in &order {
        if let Some(r) = reach {
            if ranges[r].overlaps(&ranges[i]) {
                overlaps.push(Overlap {
                    first: r,
                    second: i,
                });
            }
            if ranges[r].family != ranges[i].family || ranges[i].end > ranges[r].end {
                reach = Some(i);
            }
        } else {
            reach = Some(i);
        }
    }
    overlaps
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn range(text: &str) -> IpRange {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn cidr_host_bits_are_ignored_like_metallb() {
        assert_eq!(range("192.0.2.77/24"), range("192.0.2.0-192.0.2.255"));
        assert_eq!(range("2001:db8::1/64").size(), 1 << 64);
    }

    #[test]
    fn ranges_trim_spaces_and_reject_bad_shapes() {
        assert_eq!(range(" 192.0.2.1 - 192.0.2.9 ").size(), 9);
        assert_eq!(
            "192.0.2.9-192.0.2.1".parse::<IpRange>(),
            Err(RangeError::EndBeforeStart)
        );
        assert_eq!(
            "192.0.2.1-2001:db8::1".parse::<IpRange>(),
            Err(RangeError::MixedFamilies)
        );
        assert_eq!("192.0.2.1".parse::<IpRange>(), Err(RangeError::Malformed));
        assert!(matches!(
            "192.0.2.0/33".parse::<IpRange>(),
            Err(RangeError::InvalidCidr(_))
        ));
        assert!(matches!(
            "192.0.2.x-192.0.2.9".parse::<IpRange>(),
            Err(RangeError::InvalidAddress(_))
        ));
    }

    #[test]
    fn whole_address_spaces_have_exact_or_saturated_sizes() {
        assert_eq!(range("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(range("::/0").size(), u128::MAX);
        assert_eq!(
            range("::/0").cidrs().collect::<Vec<_>>(),
            vec![IpNetwork::new("::".parse().expect("ip"), 0).expect("net")]
        );
        assert_eq!(range("0.0.0.0/0").shortest_prefix(), 0);
    }

    #[test]
    fn avoid_buggy_ips_removes_dot_zero_and_dot_255() {
        assert_eq!(range("192.0.2.0/24").usable_size(true), 254);
        assert_eq!(range("192.0.2.0/23").usable_size(true), 508);
        assert_eq!(range("192.0.2.1-192.0.2.254").usable_size(true), 254);
        assert_eq!(range("192.0.2.255-192.0.3.0").usable_size(true), 0);
        assert_eq!(range("2001:db8::/120").usable_size(true), 256);
        assert!(is_buggy_ip("192.0.2.255".parse().expect("ip")));
        assert!(!is_buggy_ip("2001:db8::ff".parse().expect("ip")));
    }

    #[test]
    fn a_range_is_summarised_into_aligned_blocks() {
        let blocks: Vec<String> = range("192.0.2.1-192.0.2.10")
            .cidrs()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            blocks,
            [
                "192.0.2.1/32",
                "192.0.2.2/31",
                "192.0.2.4/30",
                "192.0.2.8/31",
                "192.0.2.10/32"
            ]
        );
        assert_eq!(range("192.0.2.1-192.0.2.10").shortest_prefix(), 30);
    }

    #[test]
    fn overlaps_are_found_across_entries_once_each() {
        let ranges = [
            range("192.0.2.0/24"),
            range("2001:db8::/64"),
            range("192.0.2.10-192.0.2.20"),
            range("192.0.3.0/24"),
        ];
        assert_eq!(
            find_overlaps(&ranges),
            vec![Overlap {
                first: 0,
                second: 2
            }]
        );
    }

    /// A family and a window small enough to enumerate: IPv4 near a /16 boundary or IPv6 near the
    /// top of a /64, so that carries across octets and words are exercised.
    fn small_range() -> impl Strategy<Value = IpRange> {
        (any::<bool>(), 0u128..600, 0u128..600).prop_map(|(v6, a, b)| {
            let base: u128 = if v6 {
                0x2001_0db8_0000_0000_ffff_ffff_ffff_fe00
            } else {
                0xc000_01f0
            };
            let family = if v6 { Family::V6 } else { Family::V4 };
            let (lo, hi) = (a.min(b), a.max(b));
            IpRange::new(family.addr(base + lo), family.addr(base + hi)).expect("ordered")
        })
    }

    fn members(r: &IpRange) -> BTreeSet<(Family, u128)> {
        (r.start..=r.end).map(|v| (r.family, v)).collect()
    }

    proptest! {
        #[test]
        fn arithmetic_agrees_with_an_enumerated_model(a in small_range(), b in small_range(), probe in 0u128..700) {
            let (ma, mb) = (members(&a), members(&b));
            prop_assert_eq!(a.size(), ma.len() as u128);
            prop_assert_eq!(a.overlaps(&b), !ma.is_disjoint(&mb));
            let buggy = ma.iter().filter(|(f, v)| *f == Family::V4 && matches!(v % 256, 0 | 255)).count() as u128;
            prop_assert_eq!(a.usable_size(true), a.size() - buggy);
            let ip = a.family.addr(a.start.saturating_sub(50) + probe);
            prop_assert_eq!(a.contains(ip), ma.contains(&(a.family, to_u128(ip))));
            prop_assert_eq!(a.nth(probe).is_some(), probe < a.size());
        }

        #[test]
        fn cidrs_cover_the_range_exactly_with_aligned_disjoint_blocks(a in small_range()) {
            let mut covered = BTreeSet::new();
            for net in a.cidrs() {
                let block = IpRange::from_network(net);
                prop_assert_eq!(to_u128(net.ip()), block.start, "{} is not aligned", net);
                prop_assert!(members(&block).is_disjoint(&covered));
                covered.extend(members(&block));
            }
            prop_assert_eq!(covered, members(&a));
            prop_assert!(a.cidrs().count() <= 2 * usize::from(a.family.bits()));
        }

        #[test]
        fn text_form_parses_back(a in small_range()) {
            prop_assert_eq!(a.to_string().parse::<IpRange>(), Ok(a));
        }

        #[test]
        fn every_overlapping_entry_is_reported(ranges in proptest::collection::vec(small_range(), 0..12)) {
            let reported: BTreeSet<usize> = find_overlaps(&ranges).iter().map(|o| o.second).collect();
            let mut order: Vec<usize> = (0..ranges.len()).collect();
            order.sort_by_key(|&i| (ranges[i].family, ranges[i].start, i));
            for (pos, &j) in order.iter().enumerate() {
                let clashes_with_earlier = order[..pos].iter().any(|&i| ranges[i].overlaps(&ranges[j]));
                prop_assert_eq!(reported.contains(&j), clashes_with_earlier, "entry {}", j);
            }
        }
    }
}
