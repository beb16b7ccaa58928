//! Agreement, stability and advertisement rules of the plan.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::config::{
    BgpAdvertisement, L2Advertisement, Peer, PeerAsn, PeerEndpoint, PeerPassword, Pool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn select(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(&[(key, value)])),
        match_expressions: None,
    }
}

fn node(name: &str, pairs: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        labels: labels(pairs),
        network_unavailable: false,
    }
}

fn pool(name: &str, entries: &[&str]) -> Pool {
    Pool {
        name: name.to_owned(),
        labels: Labels::new(),
        ranges: entries.iter().map(|e| e.parse().expect("range")).collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

fn l2(name: &str, pools: &[&str]) -> L2Advertisement {
    L2Advertisement {
        name: name.to_owned(),
        pools: pools.iter().map(|p| (*p).to_owned()).collect(),
        node_selectors: Vec::new(),
        interfaces: Vec::new(),
        service_selectors: Vec::new(),
        preferred_node_selectors: Vec::new(),
    }
}

fn bgp(name: &str, pools: &[&str]) -> BgpAdvertisement {
    BgpAdvertisement {
        name: name.to_owned(),
        pools: pools.iter().map(|p| (*p).to_owned()).collect(),
        aggregation_length_v4: 32,
        aggregation_length_v6: 128,
        local_pref: None,
        communities: Vec::new(),
        node_selectors: Vec::new(),
        peers: Vec::new(),
        service_selectors: Vec::new(),
    }
}

/// A BGPPeer at 198.51.100.1 with defaults elsewhere (also used by `apply::bgp`'s tests).
pub(crate) fn peer(name: &str, my_asn: u32, peer_asn: u32) -> Peer {
    Peer {
        name: name.to_owned(),
        my_asn,
        peer_asn: PeerAsn::Fixed(peer_asn),
        local_asn: None,
        endpoint: PeerEndpoint::Address("198.51.100.1".parse().expect("ip")),
        source_address: None,
        port: 179,
        timers: Default::default(),
        router_id: None,
        node_selectors: Vec::new(),
        password: PeerPassword::None,
        bfd_profile: None,
        graceful_restart: false,
        ebgp_multihop: false,
        vrf: None,
        dual_stack_address_family: false,
    }
}

fn service(key: &str, ips: &[&str], endpoint_nodes: &[&str]) -> ServiceInfo {
    ServiceInfo {
        key: key.to_owned(),
        ips: ips.iter().map(|i| i.parse().expect("ip")).collect(),
        labels: Labels::new(),
        is_shared: false,
        traffic_policy_local: false,
        endpoints: endpoint_nodes
            .iter()
            .map(|n| Endpoint {
                node: Some((*n).to_owned()),
                serving: true,
            })
            .collect(),
    }
}

fn config(
    pools: Vec<Pool>,
    l2_ads: Vec<L2Advertisement>,
    bgp_ads: Vec<BgpAdvertisement>,
    peers: Vec<Peer>,
) -> Config {
    Config {
        pools: pools.into_iter().map(|p| (p.name.clone(), p)).collect(),
        l2_advertisements: l2_ads,
        bgp_advertisements: bgp_ads,
        peers: peers.into_iter().map(|p| (p.name.clone(), p)).collect(),
        ..Default::default()
    }
}

fn all(nodes: &[NodeInfo]) -> BTreeSet<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

fn owners(
    config: &Config,
    nodes: &[NodeInfo],
    services: &[ServiceInfo],
    live: &BTreeSet<String>,
) -> BTreeMap<IpAddr, Vec<String>> {
    let state = ClusterState {
        config,
        nodes,
        services,
        ignore_exclude_lb: false,
    };
    let mut owners: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for n in nodes {
        for ip in plan(&n.name, &state, live).l2.keys() {
            owners.entry(*ip).or_default().push(n.name.clone());
        }
    }
    owners
}

#[test]
fn the_owner_is_the_node_metallb_would_pick() {
    // Known answers from an independent SHA-256 (Python hashlib) over node + "#" + IP.
    let nodes: Vec<NodeInfo> = ["node-a", "node-b", "node-c", "worker-1", "worker-2"]
        .iter()
        .map(|n| node(n, &[]))
        .collect();
    let cfg = config(
        vec![pool(
            "p",
            &["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/64"],
        )],
        vec![l2("l2", &["p"])],
        vec![],
        vec![],
    );
    let services = [
        service("ns/a", &["192.0.2.1"], &["node-a"]),
        service("ns/b", &["2001:db8::1"], &["node-a"]),
        service("ns/c", &["198.51.100.7", "2001:db8::7"], &["node-a"]),
    ];
    let got = owners(&cfg, &nodes, &services, &all(&nodes));
    let want = |ip: &str, n: &str| (ip.parse::<IpAddr>().expect("ip"), vec![n.to_owned()]);
    assert_eq!(
        got,
        BTreeMap::from([
            want("192.0.2.1", "node-c"),
            want("2001:db8::1", "node-b"),
            want("198.51.100.7", "node-a"),
            want("2001:db8::7", "node-a"),
        ])
    );
}

#[test]
fn when_the_owner_dies_the_next_node_in_its_order_takes_over() {
    let nodes: Vec<NodeInfo> = ["node-a", "node-b", "node-c", "worker-1", "worker-2"]
        .iter()
        .map(|n| node(n, &[]))
        .collect();
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![l2("l2", &["p"])],
        vec![],
        vec![],
    );
    let services = [service("ns/a", &["192.0.2.1"], &["node-a"])];
    let mut live = all(&nodes);
    live.remove("node-c");
    let got = owners(&cfg, &nodes, &services, &live);
    assert_eq!(got.values().next(), Some(&vec!["worker-1".to_owned()]));
}

#[test]
fn preferred_node_selectors_outweigh_the_hash() {
    let nodes = vec![node("node-c", &[]), node("node-a", &[("rack", "r2")])];
    let mut ad = l2("l2", &["p"]);
    ad.preferred_node_selectors = vec![(50, select("rack", "r2"))];
    let cfg = config(vec![pool("p", &["192.0.2.0/24"])], vec![ad], vec![], vec![]);
    let services = [service("ns/a", &["192.0.2.1"], &["node-a"])];
    assert_eq!(
        owners(&cfg, &nodes, &services, &all(&nodes))
            .values()
            .next(),
        Some(&vec!["node-a".to_owned()])
    );
}

#[test]
fn local_traffic_policy_elects_only_nodes_with_a_serving_endpoint() {
    let nodes: Vec<NodeInfo> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| node(n, &[]))
        .collect();
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![l2("l2", &["p"])],
        vec![],
        vec![],
    );
    let mut local = service("ns/a", &["192.0.2.1"], &["node-b"]);
    local.traffic_policy_local = true;
    assert_eq!(
        owners(&cfg, &nodes, &[local.clone()], &all(&nodes))
            .values()
            .next(),
        Some(&vec!["node-b".to_owned()])
    );
    local.endpoints[0].serving = false;
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: std::slice::from_ref(&local),
        ignore_exclude_lb: false,
    };
    let announced = plan("node-b", &state, &all(&nodes));
    assert!(announced.l2.is_empty());
    assert_eq!(announced.l2_skipped["ns/a"], Skip::NoServingEndpoint);
}

#[test]
fn excluded_and_unselected_nodes_never_announce() {
    let nodes = vec![
        node("node-c", &[(EXCLUDE_LB_LABEL, "")]),
        NodeInfo {
            network_unavailable: true,
            ..node("worker-1", &[("role", "edge")])
        },
        node("node-a", &[("role", "edge")]),
        node("node-b", &[]),
    ];
    let mut ad = l2("l2", &["p"]);
    ad.node_selectors = vec![select("role", "edge")];
    let cfg = config(vec![pool("p", &["192.0.2.0/24"])], vec![ad], vec![], vec![]);
    let services = [service("ns/a", &["192.0.2.1"], &["node-b"])];
    assert_eq!(
        owners(&cfg, &nodes, &services, &all(&nodes))
            .values()
            .next(),
        Some(&vec!["node-a".to_owned()])
    );
}

#[test]
fn interfaces_are_the_union_unless_one_advertisement_allows_all() {
    let nodes = vec![node("node-a", &[])];
    let mut first = l2("first", &["p"]);
    first.interfaces = vec!["eth1".into()];
    let mut second = l2("second", &["p"]);
    second.interfaces = vec!["bond0".into()];
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![first.clone(), second],
        vec![],
        vec![],
    );
    let services = [service("ns/a", &["192.0.2.1"], &["node-a"])];
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: &services,
        ignore_exclude_lb: false,
    };
    let announced = plan("node-a", &state, &all(&nodes));
    assert_eq!(
        announced.l2.values().next().map(|a| &a.interfaces),
        Some(&Interfaces::Only(
            ["bond0".to_owned(), "eth1".to_owned()].into()
        ))
    );
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![first, l2("any", &["p"])],
        vec![],
        vec![],
    );
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: &services,
        ignore_exclude_lb: false,
    };
    assert_eq!(
        plan("node-a", &state, &all(&nodes))
            .l2
            .values()
            .next()
            .map(|a| &a.interfaces),
        Some(&Interfaces::All)
    );
}

#[test]
fn a_shared_ip_with_service_selectors_is_not_announced() {
    let nodes = vec![node("node-a", &[])];
    let mut ad = l2("l2", &["p"]);
    ad.service_selectors = vec![LabelSelector::default()];
    let cfg = config(vec![pool("p", &["192.0.2.0/24"])], vec![ad], vec![], vec![]);
    let mut shared = service("ns/a", &["192.0.2.1"], &["node-a"]);
    shared.is_shared = true;
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: std::slice::from_ref(&shared),
        ignore_exclude_lb: false,
    };
    assert_eq!(
        plan("node-a", &state, &all(&nodes)).l2_skipped["ns/a"],
        Skip::SharedIpWithServiceSelector
    );
}

#[test]
fn bgp_routes_follow_aggregation_peers_communities_and_local_pref() {
    let nodes = vec![node("node-a", &[]), node("node-b", &[])];
    let mut ibgp = peer("ibgp", 64512, 64512);
    ibgp.node_selectors = vec![];
    let ebgp = peer("ebgp", 64512, 64600);
    let mut aggregate = bgp("agg", &["p"]);
    aggregate.aggregation_length_v4 = 24;
    aggregate.local_pref = Some(150);
    aggregate.communities = vec![BgpCommunity::Standard(64512, 1)];
    let mut host = bgp("host", &["p"]);
    host.peers = vec!["ebgp".into()];
    host.communities = vec![BgpCommunity::Large(64512, 2, 3)];
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![],
        vec![aggregate, host],
        vec![ibgp, ebgp],
    );
    let services = [service("ns/a", &["192.0.2.77"], &["node-b"])];
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: &services,
        ignore_exclude_lb: false,
    };
    let announced = plan("node-a", &state, &all(&nodes));
    let net = |s: &str| s.parse::<IpNetwork>().expect("net");
    let to_ibgp = &announced.bgp["ibgp"];
    assert_eq!(to_ibgp.keys().collect::<Vec<_>>(), [&net("192.0.2.0/24")]);
    assert_eq!(to_ibgp[&net("192.0.2.0/24")].local_pref, Some(150));
    let to_ebgp = &announced.bgp["ebgp"];
    assert_eq!(
        to_ebgp.keys().collect::<Vec<_>>(),
        [&net("192.0.2.0/24"), &net("192.0.2.77/32")]
    );
    assert_eq!(
        to_ebgp[&net("192.0.2.77/32")].communities,
        [BgpCommunity::Large(64512, 2, 3)].into()
    );
    assert_eq!(
        to_ebgp[&net("192.0.2.0/24")].local_pref,
        None,
        "no LOCAL_PREF to eBGP peers"
    );
}

#[test]
fn local_traffic_policy_advertises_only_from_nodes_with_endpoints() {
    let nodes = vec![node("node-a", &[]), node("node-b", &[])];
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![],
        vec![bgp("all", &["p"])],
        vec![peer("tor", 64512, 64600)],
    );
    let mut local = service("ns/a", &["192.0.2.1"], &["node-b"]);
    local.traffic_policy_local = true;
    let services = [local];
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: &services,
        ignore_exclude_lb: false,
    };
    assert!(plan("node-a", &state, &all(&nodes)).bgp.is_empty());
    assert_eq!(plan("node-b", &state, &all(&nodes)).bgp["tor"].len(), 1);
}

#[test]
fn every_peer_selecting_the_node_gets_a_session_even_with_nothing_to_advertise() {
    let nodes = vec![node("node-a", &[("rack", "1")]), node("node-b", &[])];
    let mut rack1 = peer("rack1", 64512, 64600);
    rack1.node_selectors = vec![select("rack", "1")];
    let everyone = peer("everyone", 64512, 64601);
    let mut excluded_rack = peer("rack2", 64512, 64602);
    excluded_rack.node_selectors = vec![select("rack", "2")];
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![],
        vec![],
        vec![rack1, everyone, excluded_rack],
    );
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: &[],
        ignore_exclude_lb: false,
    };
    let on_a = plan("node-a", &state, &all(&nodes));
    assert_eq!(
        on_a.bgp_peers,
        BTreeSet::from(["everyone".to_owned(), "rack1".to_owned()])
    );
    assert!(on_a.bgp.is_empty(), "no Service: sessions without routes");
    assert_eq!(
        plan("node-b", &state, &all(&nodes)).bgp_peers,
        BTreeSet::from(["everyone".to_owned()])
    );
    assert!(
        plan("node-z", &state, &all(&nodes)).bgp_peers.is_empty(),
        "a node without a Node object has no sessions"
    );
}

#[test]
fn ips_outside_every_pool_are_not_announced() {
    let nodes = vec![node("node-a", &[])];
    let cfg = config(
        vec![pool("p", &["192.0.2.0/24"])],
        vec![l2("l2", &["p"])],
        vec![],
        vec![],
    );
    let services = [service("ns/a", &["203.0.113.1"], &["node-a"])];
    let state = ClusterState {
        config: &cfg,
        nodes: &nodes,
        services: &services,
        ignore_exclude_lb: false,
    };
    assert_eq!(
        plan("node-a", &state, &all(&nodes)).l2_skipped["ns/a"],
        Skip::NotInOnePool
    );
}

/// Random clusters: node labels, liveness, ETP policy and endpoints.
fn cluster() -> impl Strategy<Value = (Vec<NodeInfo>, BTreeSet<String>, Vec<ServiceInfo>)> {
    let nodes = proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 1..8);
    let services = proptest::collection::vec(
        (
            0u8..255,
            any::<bool>(),
            proptest::collection::vec(0usize..8, 0..4),
        ),
        1..10,
    );
    (nodes, services).prop_map(|(flags, services)| {
        let nodes: Vec<NodeInfo> = flags
            .iter()
            .enumerate()
            .map(|(i, (edge, excluded, _dead))| {
                let mut pairs = vec![];
                if *edge {
                    pairs.push(("role", "edge"));
                }
                if *excluded {
                    pairs.push((EXCLUDE_LB_LABEL, ""));
                }
                node(&format!("node-{i}"), &pairs)
            })
            .collect();
        let live: BTreeSet<String> = nodes
            .iter()
            .zip(&flags)
            .filter(|(_, (_, _, dead))| !dead)
            .map(|(n, _)| n.name.clone())
            .collect();
        let services = services
            .into_iter()
            .enumerate()
            .map(|(i, (octet, local, eps))| {
                let endpoint_nodes: Vec<String> = eps
                    .iter()
                    .map(|e| format!("node-{}", e % nodes.len()))
                    .collect();
                let refs: Vec<&str> = endpoint_nodes.iter().map(String::as_str).collect();
                let mut s = service(&format!("ns/s{i}"), &[&format!("192.0.2.{octet}")], &refs);
                s.traffic_policy_local = local;
                s
            })
            .collect();
        (nodes, live, services)
    })
}

proptest! {
    /// Every speaker runs the plan on the same inputs: each IP has exactly one owner among the
    /// eligible live nodes when there is one, none otherwise; the owner hosts an endpoint under
    /// ETP Local.
    #[test]
    fn all_speakers_agree_on_exactly_one_eligible_owner((nodes, live, services) in cluster()) {
        let mut ad = l2("l2", &["p"]);
        ad.node_selectors = vec![select("role", "edge")];
        let cfg = config(vec![pool("p", &["192.0.2.0/24"])], vec![ad], vec![], vec![]);
        let got = owners(&cfg, &nodes, &services, &live);
        for s in &services {
            let ip = s.ips[0];
            let eligible: Vec<&NodeInfo> = nodes.iter().filter(|n| {
                live.contains(&n.name) && n.labels.get("role").map(String::as_str) == Some("edge")
                    && !n.labels.contains_key(EXCLUDE_LB_LABEL)
                    && (!s.traffic_policy_local || s.serves_on(&n.name))
            }).collect();
            let same_ip: Vec<&ServiceInfo> = services.iter().filter(|o| o.ips[0] == ip).collect();
            if same_ip.len() > 1 {
                continue; // two unrelated Services on one IP is not a state the controller produces
            }
            match got.get(&ip) {
                Some(owners) => {
                    prop_assert_eq!(owners.len(), 1, "{} owned by {:?}", ip, owners);
                    prop_assert!(eligible.iter().any(|n| n.name == owners[0]));
                }
                None => prop_assert!(eligible.is_empty() || !s.has_serving_endpoint(), "{} has no owner", ip),
            }
        }
    }

    /// Minimal disruption: a node leaving moves only the IPs it owned.
    #[test]
    fn a_leaving_node_moves_only_its_own_ips((nodes, live, services) in cluster(), leaver in 0usize..8) {
        let cfg = config(vec![pool("p", &["192.0.2.0/24"])], vec![l2("l2", &["p"])], vec![], vec![]);
        let before = owners(&cfg, &nodes, &services, &live);
        let gone = format!("node-{}", leaver % nodes.len());
        let mut fewer = live.clone();
        fewer.remove(&gone);
        let after = owners(&cfg, &nodes, &services, &fewer);
        // Two unrelated Services on one IP (each with its own owner) is not a state the
        // controller produces; the generator can make it, so such IPs are left out.
        let mut seen = BTreeSet::new();
        let shared: BTreeSet<_> = services.iter().map(|s| s.ips[0]).filter(|ip| !seen.insert(*ip)).collect();
        for (ip, owner) in &before {
            if owner[0] != gone && !shared.contains(ip) {
                prop_assert_eq!(after.get(ip), Some(owner), "{} moved although {} did not own it", ip, gone);
            }
        }
    }
}
