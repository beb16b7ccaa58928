//! The real `ferrolb-speaker` on node namespaces against kubesim: who answers ARP/NDP, failover
//! when the owner dies, BGP ECMP at a real FRR, ETP Local, API outages and restarts that cost no
//! writes, and bad configuration that is reported and not applied.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_api::types::{ConfigurationState, ServiceBGPStatus, ServiceL2Status};
use ferrolb_netlab::{self as netlab, eventually, eventually_async};
use ferrolb_tests::cluster::{Binaries, ClusterLab, NAMESPACE};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

const WEB4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const WEB6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);
const BGP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const LOCAL4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const BGP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);

fn binaries() -> Binaries {
    Binaries {
        speaker: PathBuf::from(env!("CARGO_BIN_EXE_ferrolb-speaker")),
        controller: None,
    }
}

async fn lab(tag: &str, nodes: u8, with_router: bool) -> Option<ClusterLab> {
    let mut tools = vec!["arping", "ndisc6", "curl", "python3"];
    if with_router {
        tools.push(netlab::frr::BGPD);
    }
    if !netlab::can_run(&tools) {
        return None;
    }
    let lab = ClusterLab::start(tag, nodes, with_router, binaries())
        .await
        .expect("lab starts");
    lab.apply_standard_config().expect("configuration");
    Some(lab)
}

/// The node answering ARP for `ip`, once one does.
async fn arp_owner(lab: &ClusterLab, ip: Ipv4Addr, within: Duration) -> Option<String> {
    eventually(within, Duration::from_millis(100), || {
        let mac = lab.arp_owner(ip)?;
        lab.node_with_mac(&mac).map(|n| n.name.clone())
    })
    .await
}

/// Starts the speakers and a Service `web` on [`WEB4`] with endpoints on the first two nodes;
/// returns the node that answers ARP for it.
async fn serve_web(lab: &mut ClusterLab) -> String {
    lab.start_speakers().expect("speakers");
    lab.create_service("web", json!({}), false, &[0, 1], &[WEB4.into()])
        .await
        .expect("service");
    match arp_owner(lab, WEB4, Duration::from_secs(20)).await {
        Some(owner) => owner,
        None => panic!("nobody answers ARP for {WEB4}\n{}", show_logs(lab)),
    }
}

async fn l2_statuses(lab: &ClusterLab, service: &str) -> Vec<String> {
    let api: Api<ServiceL2Status> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list statuses");
    list.items
        .into_iter()
        .filter_map(|s| s.status)
        .filter(|s| s.service_name == service)
        .map(|s| s.node)
        .collect()
}

/// `(result, errorSummary)` of node `node`'s `ConfigurationState`, once it has a status.
async fn config_state(lab: &ClusterLab, node: &str) -> Option<(String, String)> {
    let api: Api<ConfigurationState> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let status = api
        .get_opt(&format!("speaker-{node}"))
        .await
        .ok()??
        .status?;
    let result = serde_json::to_value(status.result?).ok()?;
    Some((result.as_str()?.to_owned(), status.error_summary))
}

async fn events_about(lab: &ClusterLab, name: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::all(lab.sim.client());
    let list = api.list(&ListParams::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .filter_map(|e| e.note)
        .collect()
}

/// Waits up to `within` until the API server's resource version has not moved for `quiet`:
/// every write the speakers had queued has landed. Returns the version then.
async fn api_quiet(lab: &ClusterLab, quiet: Duration, within: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut version = lab.sim.resource_version();
    let mut since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = lab.sim.resource_version();
        if now != version {
            version = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return Some(version);
        }
    }
    None
}

/// Waits up to `within` until node `index`'s speaker has planned with `count` speakers alive:
/// its gossip shows them all, so it claims what it will claim.
async fn sees_members(lab: &ClusterLab, index: usize, count: usize, within: Duration) -> bool {
    eventually(within, Duration::from_millis(100), || {
        let live = lab.speaker_metric(index, "ferrolb_speaker_members_live")?;
        (live == count as f64).then_some(())
    })
    .await
    .is_some()
}

/// The BGP sessions node `index`'s speaker reports established.
fn sessions_up(lab: &ClusterLab, index: usize) -> usize {
    lab.speaker_metrics(index)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("metallb_bgp_session_up{") && l.ends_with(" 1"))
        .count()
}

fn show_logs(lab: &ClusterLab) -> String {
    lab.nodes
        .iter()
        .map(|n| {
            format!(
                "--- speaker-{}\n{}",
                n.name,
                lab.log(&format!("speaker-{}", n.name))
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_answers_arp_and_ndp_and_another_takes_over_when_it_dies() {
    let Some(mut lab) = lab("spkl2", 3, false).await else {
        return;
    };
    lab.start_speakers().expect("speakers");
    lab.create_service(
        "web",
        json!({}),
        false,
        &[0, 1, 2],
        &[WEB4.into(), WEB6.into()],
    )
    .await
    .expect("service");

    let owner = arp_owner(&lab, WEB4, Duration::from_secs(20)).await;
    let Some(owner) = owner else {
        panic!("nobody answers ARP for {WEB4}\n{}", show_logs(&lab));
    };
    let v6_mac = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        lab.ndp_owner(WEB6)
    })
    .await
    .unwrap_or_else(|| panic!("somebody answers NDP\n{}", show_logs(&lab)));
    assert_eq!(
        lab.node_with_mac(&v6_mac).map(|n| n.name.as_str()),
        Some(owner.as_str()),
        "one node announces every IP of a Service"
    );
    assert_eq!(
        lab.http_get("client", WEB4.into()).as_deref(),
        Some(owner.as_str()),
        "{}",
        show_logs(&lab)
    );
    assert_eq!(
        lab.http_get("client", WEB6.into()).as_deref(),
        Some(owner.as_str()),
        "{}",
        show_logs(&lab)
    );
    let statuses = eventually_async(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let statuses = l2_statuses(&lab, "web").await;
            (statuses == vec![owner.clone()]).then_some(statuses)
        },
    )
    .await;
    assert!(
        statuses.is_some(),
        "exactly one ServiceL2Status, naming {owner}"
    );
    let api: Api<ServiceL2Status> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let owners: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list statuses")
        .items
        .iter()
        .flat_map(|s| s.metadata.owner_references.iter().flatten())
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    assert_eq!(
        owners,
        vec![format!("Pod/ferrolb-speaker-{owner}")],
        "the status object is owned by its speaker's Pod"
    );
    for node in ["node-1", "node-2", "node-3"] {
        let state = eventually_async(
            Duration::from_secs(5),
            Duration::from_millis(100),
            || async { config_state(&lab, node).await },
        )
        .await;
        assert_eq!(
            state,
            Some(("Valid".to_owned(), String::new())),
            "speaker-{node} ConfigurationState"
        );
    }
    for _ in 0..5 {
        assert_eq!(
            lab.arp_owner(WEB4)
                .and_then(|m| lab.node_with_mac(&m).map(|n| n.name.clone())),
            Some(owner.clone()),
            "a single owner, stable"
        );
    }

    let index = lab
        .nodes
        .iter()
        .position(|n| n.name == owner)
        .expect("owner node");
    // The owner answers in the kernel (the TCX fast path), and its metrics say so.
    let in_kernel = eventually(Duration::from_secs(8), Duration::from_millis(250), || {
        let path = lab.speaker_metric(
            index,
            r#"ferrolb_layer2_answer_path{interface="eth0",path="InKernel"}"#,
        )?;
        let answered = lab.speaker_metric(
            index,
            r#"ferrolb_layer2_in_kernel_answered_total{family="ARP",interface="eth0"}"#,
        )?;
        (path == 1.0 && answered >= 5.0).then_some(answered)
    })
    .await;
    assert!(
        in_kernel.is_some(),
        "{owner} reports answering ARP in the kernel\n{}",
        lab.speaker_metrics(index).unwrap_or_default()
    );
    assert_eq!(
        lab.speaker_metric(
            index,
            &format!(
                r#"metallb_speaker_announced{{ip="{WEB4}",node="{owner}",protocol="layer2",service="default/web"}}"#
            )
        ),
        Some(1.0)
    );
    lab.stop_speaker(index, "KILL")
        .expect("kill the owner's speaker");
    let next = eventually(Duration::from_secs(3), Duration::from_millis(50), || {
        let mac = lab.arp_owner(WEB4)?;
        let node = lab.node_with_mac(&mac)?;
        (node.name != owner).then(|| node.name.clone())
    })
    .await;
    let Some(next) = next else {
        panic!(
            "no other node took {WEB4} over within 3 s\n{}",
            show_logs(&lab)
        );
    };
    let v6_next = eventually(Duration::from_secs(3), Duration::from_millis(50), || {
        let mac = lab.ndp_owner(WEB6)?;
        lab.node_with_mac(&mac)
            .map(|n| n.name.clone())
            .filter(|n| *n == next)
    })
    .await;
    assert_eq!(
        v6_next.as_deref(),
        Some(next.as_str()),
        "the IPv6 address moved with the IPv4 one"
    );
    assert_eq!(
        lab.http_get("client", WEB4.into()).as_deref(),
        Some(next.as_str()),
        "the client's own neighbour cache moved"
    );

    let notes = eventually_async(
        Duration::from_secs(5),
        Duration::from_millis(200),
        || async {
            let notes = events_about(&lab, "web", "nodeAssigned").await;
            notes
                .iter()
                .any(|n| n.contains(&next) && n.contains(&owner))
                .then_some(notes)
        },
    )
    .await;
    assert!(
        notes.is_some(),
        "an Event says {next} took over from {owner}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_outage_withdraws_nothing_and_a_restart_writes_nothing() {
    // Three nodes: with two, stopping the speaker with the lower name leaves the other without
    // gossip quorum (an even split goes to the lower name), so it would withdraw (and write).
    let Some(mut lab) = lab("spkapi", 3, false).await else {
        return;
    };
    let owner = serve_web(&mut lab).await;
    // Once the speakers see each other and their status writes and Events have landed,
    // nothing may be written at steady state.
    for index in 0..3 {
        assert!(
            sees_members(&lab, index, 3, Duration::from_secs(10)).await,
            "node-{} sees every speaker\n{}",
            index + 1,
            show_logs(&lab)
        );
    }
    let settled = api_quiet(&lab, Duration::from_secs(1), Duration::from_secs(15))
        .await
        .expect("the speakers' writes settle");
    let cpu_before: Vec<Duration> = (0..3).filter_map(|i| lab.speaker_cpu(i)).collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        lab.sim.resource_version(),
        settled,
        "no API writes at steady state"
    );
    // An idle speaker sleeps: a loop that kept planning with nothing changed burned a core.
    for (i, before) in cpu_before.iter().enumerate() {
        let used = lab.speaker_cpu(i).expect("speaker running") - *before;
        assert!(
            used < Duration::from_millis(500),
            "node-{} used {used:?} of CPU in 5 s of steady state",
            i + 1
        );
    }

    lab.sim.faults().pause();
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let answering = lab
            .arp_owner(WEB4)
            .and_then(|m| lab.node_with_mac(&m).map(|n| n.name.clone()));
        assert_eq!(
            answering.as_deref(),
            Some(owner.as_str()),
            "the IP stays reachable while the API server is paused"
        );
    }
    lab.sim.faults().resume();
    // The requests held during the pause are answered; whatever they cause has landed once
    // the API is quiet again.
    api_quiet(&lab, Duration::from_secs(1), Duration::from_secs(15))
        .await
        .expect("the API settles after the outage");
    assert_eq!(
        arp_owner(&lab, WEB4, Duration::from_secs(1))
            .await
            .as_deref(),
        Some(owner.as_str())
    );

    // Restarting the speaker that does not own the IP changes nothing, so it writes nothing
    // but its speaker-set record: leaving on purpose it deletes its ConfigurationState (so the
    // others' quorum counts it out at once), and the new process writes it again.
    let other = lab
        .nodes
        .iter()
        .position(|n| n.name != owner)
        .expect("another node");
    let other_state = format!("configurationstates/speaker-{}", lab.nodes[other].name);
    let writes_before = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .count();
    lab.stop_speaker(other, "TERM").expect("stop");
    lab.start_speaker(other).expect("restart");
    // The restarted speaker has planned with both speakers alive: whatever it would write,
    // it has queued; the API going quiet means it has landed.
    assert!(
        sees_members(&lab, other, 3, Duration::from_secs(15)).await,
        "the restarted speaker sees every speaker\n{}",
        show_logs(&lab)
    );
    api_quiet(&lab, Duration::from_secs(1), Duration::from_secs(15))
        .await
        .expect("the API settles after the restart");
    assert_eq!(
        arp_owner(&lab, WEB4, Duration::from_secs(1))
            .await
            .as_deref(),
        Some(owner.as_str())
    );
    let writes: Vec<_> = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .skip(writes_before)
        .collect();
    let record_only = writes.len() == 3
        && writes
            .iter()
            .all(|w| w.path.contains(&other_state) || w.path.ends_with("/configurationstates"));
    assert!(
        record_only,
        "a restarted speaker with nothing new to say writes only its ConfigurationState \
         (delete, create, status); writes seen: {writes:?}\n{}",
        show_logs(&lab)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_advertises_over_bgp_and_frr_routes_with_ecmp() {
    let Some(mut lab) = lab("spkbgp", 3, true).await else {
        return;
    };
    lab.start_speakers().expect("speakers");
    lab.create_service("web", json!({}), false, &[0], &[BGP4.into(), BGP6.into()])
        .await
        .expect("service");
    let route = eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let route = lab.router_route(&format!("{BGP4}"));
        (route.matches("nexthop via").count() == 3).then_some(route)
    })
    .await;
    let Some(route) = route else {
        panic!(
            "no 3-way ECMP route at the router: {:?}\n{}\n{}",
            lab.router_route(&BGP4.to_string()),
            lab.router
                .as_ref()
                .map(|r| r.vty("show bgp summary").unwrap_or_default())
                .unwrap_or_default(),
            show_logs(&lab)
        );
    };
    for node in &lab.nodes {
        assert!(route.contains(&format!("via {}", node.v4)), "{route}");
    }
    let served = lab
        .http_get("outside", BGP4.into())
        .expect("a request through the router");
    assert!(lab.nodes.iter().any(|n| n.name == served), "{served}");
    let router = lab.router.as_ref().expect("router");
    let path = router
        .json(&format!("show bgp ipv4 unicast {BGP4}/32 json"))
        .expect("route detail");
    assert!(
        path.to_string().contains("64512:100"),
        "the advertisement's community reaches the router: {path}"
    );

    let api: Api<ServiceBGPStatus> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let nodes: BTreeSet<String> = eventually_async(
        Duration::from_secs(5),
        Duration::from_millis(200),
        || async {
            let list = api.list(&ListParams::default()).await.ok()?;
            let nodes: BTreeSet<String> = list
                .items
                .into_iter()
                .filter_map(|s| s.status)
                .map(|s| s.node)
                .collect();
            (nodes.len() == 3).then_some(nodes)
        },
    )
    .await
    .expect("one ServiceBGPStatus per node");
    assert_eq!(nodes.len(), 3);

    // externalTrafficPolicy: Local → only the node with the endpoint advertises, and follows it.
    lab.create_service("local", json!({}), true, &[0], &[LOCAL4.into()])
        .await
        .expect("local service");
    let only = |node: usize| {
        let want = format!("via {}", lab.nodes[node].v4);
        move |route: String| (route.contains(&want) && !route.contains("nexthop")).then_some(route)
    };
    let first = eventually(Duration::from_secs(15), Duration::from_millis(200), || {
        only(0)(lab.router_route(&LOCAL4.to_string()))
    })
    .await;
    assert!(
        first.is_some(),
        "only node-1 advertises: {:?}",
        lab.router_route(&LOCAL4.to_string())
    );
    lab.set_endpoints("local", &[1])
        .await
        .expect("move the endpoint");
    let moved = eventually(Duration::from_secs(15), Duration::from_millis(200), || {
        only(1)(lab.router_route(&LOCAL4.to_string()))
    })
    .await;
    assert!(
        moved.is_some(),
        "the route follows the endpoint: {:?}",
        lab.router_route(&LOCAL4.to_string())
    );

    // Graceful restart: node-1's speaker is killed and restarted; it finds its own status
    // objects, reconnects with the Restart State bit, and FRR keeps its routes all along.
    let web_route = |lab: &ClusterLab| {
        lab.router_route(&BGP4.to_string())
            .matches("nexthop via")
            .count()
    };
    assert_eq!(web_route(&lab), 3);
    lab.stop_speaker(0, "KILL").expect("kill node-1's speaker");
    lab.start_speaker(0).expect("restart it");
    let route_detail = |lab: &ClusterLab| {
        lab.router
            .as_ref()
            .map(|r| {
                r.vty("show bgp ipv4 unicast 203.0.113.1/32")
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    // Sample the router's route until the restarted speaker has its session back and FRR holds
    // all three paths without a stale mark (End-of-RIB received, routes sent again): the whole
    // restart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut samples = Vec::new();
    let mut is_back = false;
    while !is_back && tokio::time::Instant::now() < deadline {
        samples.push(web_route(&lab));
        let detail = route_detail(&lab);
        is_back = sessions_up(&lab, 0) == 1
            && detail.contains("Paths: (3 available")
            && !detail.contains("stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        samples.iter().all(|n| *n == 3),
        "FRR kept node-1's route through the restart: next hops seen {samples:?}\n{}",
        show_logs(&lab)
    );
    assert!(
        is_back,
        "the session is back with its route and the stale mark cleared: {}\n{}",
        route_detail(&lab),
        lab.log("speaker-node-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_pool_is_reported_and_ignored_while_the_good_one_keeps_working() {
    let Some(mut lab) = lab("spkbad", 2, false).await else {
        return;
    };
    let owner = serve_web(&mut lab).await;
    lab.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "clash", "namespace": NAMESPACE},
        "spec": {"addresses": ["192.0.2.192/27"]}
    }))
    .expect("the API server takes it (no webhook in this lab)");
    let reported = eventually_async(
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async {
            let notes = events_about(&lab, "clash", "ConfigurationError").await;
            (!notes.is_empty()).then_some(notes)
        },
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "no ConfigurationError Event about IPAddressPool/clash\n{}",
            show_logs(&lab)
        )
    });
    assert!(
        reported.iter().any(|n| n.contains("spec.addresses")),
        "{reported:?}"
    );
    let state = eventually_async(
        Duration::from_secs(5),
        Duration::from_millis(200),
        || async {
            config_state(&lab, "node-1")
                .await
                .filter(|(result, _)| result == "Invalid")
        },
    )
    .await;
    assert!(
        state.as_ref().is_some_and(
            |(_, summary)| summary.contains("clash") && summary.contains("spec.addresses")
        ),
        "speaker-node-1 ConfigurationState is Invalid and names the pool and field: {state:?}"
    );
    // Both speakers have planned with the bad pool (the stale flag is set by the same plan
    // that announces), so a withdrawal would have happened by now.
    for index in 0..2 {
        let stale = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
            let stale = lab.speaker_metric(index, "metallb_k8s_client_config_stale_bool")?;
            (stale == 1.0).then_some(())
        })
        .await;
        assert!(
            stale.is_some(),
            "node-{} planned with the bad pool",
            index + 1
        );
    }
    assert_eq!(
        arp_owner(&lab, WEB4, Duration::from_secs(1))
            .await
            .as_deref(),
        Some(owner.as_str()),
        "the valid pool is still announced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_carrier_on_the_announcing_interface_hands_the_ip_over() {
    const NIC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 220);
    let Some(mut lab) = lab("spkcar", 3, false).await else {
        return;
    };
    lab.add_second_nics().expect("second interfaces");
    lab.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "nic", "namespace": NAMESPACE},
        "spec": {"addresses": ["192.0.2.220-192.0.2.223"]}
    }))
    .expect("pool");
    lab.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "nic", "namespace": NAMESPACE},
        "spec": {"ipAddressPools": ["nic"], "interfaces": ["eth1"]}
    }))
    .expect("advertisement");
    lab.start_speakers().expect("speakers");
    lab.create_service("nic", json!({}), false, &[0, 1, 2], &[NIC.into()])
        .await
        .expect("service");
    let answer = |lab: &ClusterLab| {
        let mac = lab.arp_owner(NIC)?;
        let node = lab.node_with_mac(&mac)?;
        Some((
            node.name.clone(),
            node.mac2
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(&mac)),
        ))
    };
    let first = eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        answer(&lab)
    })
    .await;
    let Some((owner, on_eth1)) = first else {
        panic!("nobody answers ARP for {NIC}\n{}", show_logs(&lab));
    };
    assert!(on_eth1, "only the named interface answers");
    let index = lab
        .nodes
        .iter()
        .position(|n| n.name == owner)
        .expect("owner");

    lab.set_second_nic_carrier(index, false)
        .expect("pull the cable");
    let next = eventually(Duration::from_secs(3), Duration::from_millis(50), || {
        answer(&lab).filter(|(name, on_eth1)| *name != owner && *on_eth1)
    })
    .await;
    let Some((next, _)) = next else {
        panic!(
            "nobody took {NIC} over after {owner} lost carrier\n{}",
            show_logs(&lab)
        );
    };
    assert!(
        lab.log(&format!("speaker-{owner}"))
            .contains("carrier lost"),
        "{owner} stepped down for carrier loss"
    );
    let _ = next;

    lab.set_second_nic_carrier(index, true)
        .expect("plug it back");
    let rejoined = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        lab.log(&format!("speaker-{owner}"))
            .contains("carrier back")
            .then_some(())
    })
    .await;
    assert!(
        rejoined.is_some(),
        "{owner} rejoins once carrier is back\n{}",
        show_logs(&lab)
    );
    let after = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        answer(&lab)
    })
    .await;
    assert_eq!(
        after.map(|(name, _)| name).as_deref(),
        Some(owner.as_str()),
        "the preferred owner takes its IP back"
    );
}
