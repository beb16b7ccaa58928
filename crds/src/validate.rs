//! Rules that one object must satisfy on its own, kind by kind, as MetalLB's parser and CRD schemas
//! enforce them. Rules that need the other objects (overlaps across pools, references, conflicts)
//! live in [`crate::config`]. No I/O.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use crate::addr::{IpRange, find_overlaps};
use crate::community::{BgpCommunity, CommunityError, is_large_literal};
use crate::duration::parse_go_duration;
use crate::error::{ConfigError, Kind, Problem};
use crate::selector;
use crate::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, BGPPeerSpec, Community, IPAddressPool, L2Advertisement,
};

/// Collects the problems of one object.
struct Report<'a> {
    kind: Kind,
    name: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Report<'a> {
    fn new(kind: Kind, name: &'a str) -> Self {
        let mut report = Report {
            kind,
            name,
            errors: Vec::new(),
        };
        if name.is_empty() {
            report.push("metadata.name", Problem::Required);
        }
        report
    }

    fn push(&mut self, field: impl Into<String>, problem: Problem) {
        self.errors
            .push(ConfigError::new(self.kind, self.name, field, problem));
    }

    /// Each value at most once.
    fn unique<'v>(&mut self, field: &str, values: impl IntoIterator<Item = &'v String>) {
        let mut seen = BTreeSet::new();
        for (i, value) in values.into_iter().enumerate() {
            if !seen.insert(value) {
                self.push(format!("{field}[{i}]"), Problem::Duplicate(value.clone()));
            }
        }
    }

    /// Every selector valid, and no two alike.
    fn selectors(&mut self, field: &str, selectors: &[LabelSelector]) {
        let mut seen = BTreeSet::new();
        for (i, s) in selectors.iter().enumerate() {
            if let Err(e) = selector::validate(s) {
                self.push(format!("{field}[{i}]"), e.into());
            } else if !seen.insert(selector::canonical(s)) {
                self.push(
                    format!("{field}[{i}]"),
                    Problem::Duplicate(selector::canonical(s)),
                );
            }
        }
    }

    fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if !(min..=max).contains(&value) {
            self.push(field, Problem::OutOfRange { value, min, max });
        }
    }

    fn finish(self) -> Result<(), Vec<ConfigError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// The address ranges of a valid pool, in `spec.addresses` order.
pub fn pool(pool: &IPAddressPool) -> Result<Vec<IpRange>, Vec<ConfigError>> {
    let name = pool.name_any();
    let mut report = Report::new(Kind::IPAddressPool, &name);
    let spec = &pool.spec;
    if spec.addresses.is_empty() {
        report.push("spec.addresses", Problem::Required);
    }
    let mut ranges = Vec::new();
    let mut indices = Vec::new();
    for (i, entry) in spec.addresses.iter().enumerate() {
        match IpRange::from_str(entry) {
            Ok(range) => {
                ranges.push(range);
                indices.push(i);
            }
            Err(source) => {
                report.push(
                    format!("spec.addresses[{i}]"),
                    Problem::InvalidRange {
                        value: entry.clone(),
                        source,
                    },
                );
            }
        }
    }
    for overlap in find_overlaps(&ranges) {
        let (first, second) = (indices[overlap.first], indices[overlap.second]);
        let (first, second) = (first.min(second), first.max(second));
        report.push(
            format!("spec.addresses[{second}]"),
            Problem::Overlap {
                value: spec.addresses[second].clone(),
                other: format!("spec.addresses[{first}] {:?}", spec.addresses[first]),
            },
        );
    }
    if let Some(allocation) = &spec.service_allocation {
        report.unique("spec.serviceAllocation.namespaces", &allocation.namespaces);
        report.selectors(
            "spec.serviceAllocation.namespaceSelectors",
            &allocation.namespace_selectors,
        );
        report.selectors(
            "spec.serviceAllocation.serviceSelectors",
            &allocation.service_selectors,
        );
    }
    report.finish().map(|()| ranges)
}

/// Checks an L2Advertisement.
pub fn l2_advertisement(ad: &L2Advertisement) -> Result<(), Vec<ConfigError>> {
    let name = ad.name_any();
    let mut report = Report::new(Kind::L2Advertisement, &name);
    let spec = &ad.spec;
    report.unique("spec.ipAddressPools", &spec.ip_address_pools);
    report.selectors(
        "spec.ipAddressPoolSelectors",
        &spec.ip_address_pool_selectors,
    );
    report.selectors("spec.nodeSelectors", &spec.node_selectors);
    report.selectors("spec.serviceSelectors", &spec.service_selectors);
    report.unique("spec.interfaces", &spec.interfaces);
    for (i, preferred) in spec.preferred_node_selectors.iter().enumerate() {
        report.range(
            &format!("spec.preferredNodeSelectors[{i}].weight"),
            preferred.weight.into(),
            1,
            100,
        );
        if let Err(e) = selector::validate(&preferred.preference) {
            report.push(
                format!("spec.preferredNodeSelectors[{i}].preference"),
                e.into(),
            );
        }
    }
    report.finish()
}

/// Checks a BGPAdvertisement. Community strings shaped like aliases are resolved later, against the
/// Community objects.
pub fn bgp_advertisement(ad: &BGPAdvertisement) -> Result<(), Vec<ConfigError>> {
    let name = ad.name_any();
    let mut report = Report::new(Kind::BGPAdvertisement, &name);
    let spec = &ad.spec;
    let v4 = spec.aggregation_length_v4();
    if v4 > 32 {
        report.push(
            "spec.aggregationLength",
            Problem::AggregationTooLong {
                length: v4,
                max: 32,
            },
        );
    } else {
        report.range("spec.aggregationLength", v4.into(), 1, 32);
    }
    let v6 = spec.aggregation_length_v6();
    if v6 > 128 {
        report.push(
            "spec.aggregationLengthV6",
            Problem::AggregationTooLong {
                length: v6,
                max: 128,
            },
        );
    } else {
        report.range("spec.aggregationLengthV6", v6.into(), 0, 128);
    }
    if !spec.service_selectors.is_empty() && (v4 != 32 || v6 != 128) {
        report.push(
            "spec.serviceSelectors",
            Problem::ServiceSelectorsWithAggregation,
        );
    }
    report.unique("spec.ipAddressPools", &spec.ip_address_pools);
    report.unique("spec.peers", &spec.peers);
    report.unique("spec.communities", &spec.communities);
    for (i, community) in spec.communities.iter().enumerate() {
        if let Err(e) = BgpCommunity::parse(community)
            && !e.is_transient()
        {
            report.push(format!("spec.communities[{i}]"), e.into());
        }
    }
    report.selectors(
        "spec.ipAddressPoolSelectors",
        &spec.ip_address_pool_selectors,
    );
    report.selectors("spec.nodeSelectors", &spec.node_selectors);
    report.selectors("spec.serviceSelectors", &spec.service_selectors);
    report.finish()
}

/// Hold, keepalive and connect times of a peer after MetalLB's defaulting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerTimers {
    /// Proposed hold time; `None` leaves the session default (90 s).
    pub hold_time: Option<Duration>,
    /// Keepalive interval; `None` means a third of the negotiated hold time.
    pub keepalive_time: Option<Duration>,
    /// Wait between connection attempts; `None` means the session default.
    pub connect_time: Option<Duration>,
}

/// Checks a BGPPeer and returns its timers.
pub fn bgp_peer(peer: &BGPPeer) -> Result<PeerTimers, Vec<ConfigError>> {
    let name = peer.name_any();
    let mut report = Report::new(Kind::BGPPeer, &name);
    let spec = &peer.spec;
    if spec.my_asn == 0 {
        report.push(
            "spec.myASN",
            Problem::OutOfRange {
                value: 0,
                min: 1,
                max: u32::MAX.into(),
            },
        );
    }
    let peer_asn = spec.peer_asn.filter(|asn| *asn != 0);
    match (peer_asn, spec.dynamic_asn) {
        (Some(_), Some(_)) => report.push("spec.dynamicASN", Problem::Exclusive("spec.peerASN")),
        (None, None) => report.push(
            "spec",
            Problem::OneOfRequired("spec.peerASN", "spec.dynamicASN"),
        ),
        _ => {}
    }
    if let Some(local) = spec.local_asn {
        report.range("spec.localASN", local.into(), 1, u32::MAX.into());
    }
    peer_addresses(&mut report, spec);
    if let Some(port) = spec.peer_port {
        report.range("spec.peerPort", port.into(), 1, 16384);
    }
    let is_ibgp = peer_asn == Some(spec.my_asn)
        || spec.dynamic_asn == Some(crate::types::DynamicAsnMode::Internal);
    if is_ibgp && spec.ebgp_multi_hop == Some(true) {
        report.push("spec.ebgpMultiHop", Problem::MultihopWithIbgp);
    }
    if spec.password.as_deref().is_some_and(|p| !p.is_empty()) && spec.password_secret.is_some() {
        report.push("spec.passwordSecret", Problem::Exclusive("spec.password"));
    }
    if let Some(secret) = &spec.password_secret
        && secret.name.as_deref().unwrap_or_default().is_empty()
    {
        report.push("spec.passwordSecret.name", Problem::Required);
    }
    report.selectors("spec.nodeSelectors", &spec.node_selectors);
    let timers = peer_timers(
        &mut report,
        spec.hold_time.as_deref(),
        spec.keepalive_time.as_deref(),
        spec.connect_time.as_deref(),
    );
    report.finish().map(|()| timers)
}

/// Exactly one of address and interface; every address an IP, the router ID an IPv4 one.
fn peer_addresses(report: &mut Report<'_>, spec: &BGPPeerSpec) {
    let address = spec.peer_address.as_deref().filter(|a| !a.is_empty());
    let interface = spec.interface.as_deref().filter(|i| !i.is_empty());
    match (address, interface) {
        (Some(_), Some(_)) => report.push("spec.interface", Problem::Exclusive("spec.peerAddress")),
        (None, None) => report.push(
            "spec",
            Problem::OneOfRequired("spec.peerAddress", "spec.interface"),
        ),
        _ => {}
    }
    for (field, value) in [
        ("spec.peerAddress", address),
        ("spec.sourceAddress", spec.source_address.as_deref()),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty())
            && IpAddr::from_str(value).is_err()
        {
            report.push(field, Problem::InvalidIp(value.to_owned()));
        }
    }
    if let Some(router_id) = spec.router_id.as_deref().filter(|r| !r.is_empty()) {
        match IpAddr::from_str(router_id) {
            Ok(IpAddr::V4(_)) => {}
            Ok(IpAddr::V6(_)) => report.push(
                "spec.routerID",
                Problem::RouterIdNotIpv4(router_id.to_owned()),
            ),
            Err(_) => report.push("spec.routerID", Problem::InvalidIp(router_id.to_owned())),
        }
    }
}

fn peer_timers(
    report: &mut Report<'_>,
    hold: Option<&str>,
    keepalive: Option<&str>,
    connect: Option<&str>,
) -> PeerTimers {
    let mut parse = |field: &str, text: Option<&str>| match text.map(parse_go_duration) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            report.push(field, e.into());
            None
        }
        None => None,
    };
    let hold_given = parse("spec.holdTime", hold);
    let keepalive_given = parse("spec.keepaliveTime", keepalive);
    let connect_time = parse("spec.connectTime", connect);
    let (hold_time, keepalive_time) = match (hold_given, keepalive_given) {
        (Some(h), None) => (Some(h), Some(h / 3)),
        (None, Some(k)) => (Some(k * 3), Some(k)),
        other => other,
    };
    if let Some(h) = hold_time
        && (1..3).contains(&h.as_secs())
    {
        report.push("spec.holdTime", Problem::HoldTimeTooShort(format!("{h:?}")));
    }
    if let (Some(h), Some(k)) = (hold_time, keepalive_time)
        && k > h
    {
        report.push(
            "spec.keepaliveTime",
            Problem::KeepaliveExceedsHold {
                keepalive: format!("{k:?}"),
                hold: format!("{h:?}"),
            },
        );
    }
    if let Some(c) = connect_time
        && (c.subsec_nanos() != 0 || !(1..=65535).contains(&c.as_secs()))
    {
        report.push(
            "spec.connectTime",
            Problem::InvalidConnectTime(format!("{c:?}")),
        );
    }
    PeerTimers {
        hold_time,
        keepalive_time,
        connect_time,
    }
}

/// Checks a BFDProfile's ranges (the CRD schema's, repeated because `validate` runs without it)
/// and refuses echo mode, which FerroLB's BFD does not run.
pub fn bfd_profile(profile: &BFDProfile) -> Result<(), Vec<ConfigError>> {
    let name = profile.name_any();
    let mut report = Report::new(Kind::BFDProfile, &name);
    let spec = &profile.spec;
    let checks = [
        ("spec.receiveInterval", spec.receive_interval, 10, 60000),
        ("spec.transmitInterval", spec.transmit_interval, 10, 60000),
        ("spec.detectMultiplier", spec.detect_multiplier, 2, 255),
        ("spec.echoInterval", spec.echo_interval, 10, 60000),
        ("spec.minimumTtl", spec.minimum_ttl, 1, 254),
    ];
    for (field, value, min, max) in checks {
        if let Some(value) = value {
            report.range(field, value.into(), min, max);
        }
    }
    if spec.echo_mode == Some(true) {
        report.push("spec.echoMode", Problem::BfdEchoUnsupported);
    }
    report.finish()
}

/// Checks a Community object: names present and unique, values literal communities.
pub fn community(object: &Community) -> Result<Vec<(String, BgpCommunity)>, Vec<ConfigError>> {
    let name = object.name_any();
    let mut report = Report::new(Kind::Community, &name);
    let mut aliases = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, alias) in object.spec.communities.iter().enumerate() {
        if alias.name.is_empty() {
            report.push(format!("spec.communities[{i}].name"), Problem::Required);
        } else if is_large_literal(&alias.name) {
            report.push(
                format!("spec.communities[{i}].name"),
                CommunityError::LargePrefixedAlias(alias.name.clone()).into(),
            );
        } else if !seen.insert(alias.name.as_str()) {
            report.push(
                format!("spec.communities[{i}].name"),
                Problem::Duplicate(alias.name.clone()),
            );
        }
        match BgpCommunity::parse(&alias.value) {
            Ok(value) => aliases.push((alias.name.clone(), value)),
            Err(CommunityError::UnknownAlias(value)) => {
                report.push(
                    format!("spec.communities[{i}].value"),
                    CommunityError::NotAValue(value).into(),
                );
            }
            Err(e) => report.push(format!("spec.communities[{i}].value"), e.into()),
        }
    }
    report.finish().map(|()| aliases)
}
