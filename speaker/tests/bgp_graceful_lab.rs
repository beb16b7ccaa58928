//! A planned restart of the real `ferrolb-speaker` (SIGTERM, then a new process, as a rolling
//! update does) under BGP graceful restart with FRR, while a client behind the router requests
//! the Service every 10 ms: no request may be lost.
//!
//! One node advertises the Service alone, so the router has no other path: if the stopping
//! speaker made FRR drop its route (a CEASE without RFC 8538, or any NOTIFICATION without GR),
//! the Service would be unreachable until the new process had advertised again. With the quiet
//! stop FRR keeps the route, marked stale, forwards to the node throughout, and clears the mark
//! when the new speaker's End-of-RIB arrives.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_netlab::{self as netlab, eventually};
use ferrolb_tests::cluster::probe::{Prober, lost_after};
use ferrolb_tests::cluster::{Binaries, ClusterLab, HTTP_PORT};
use serde_json::json;

const BGP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// FRR's view of node-1's path to `BGP4`: `Some(is_stale)` while it has one.
fn frr_path(lab: &ClusterLab) -> Option<bool> {
    let router = lab.router.as_ref()?;
    let v = router
        .json(&format!("show bgp ipv4 unicast {BGP4}/32 json"))
        .ok()?;
    let paths = v["paths"].as_array()?;
    let path = paths.first()?;
    Some(path["stale"].as_bool().unwrap_or(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_restart_under_graceful_restart_loses_no_request_through_the_router() {
    if !netlab::can_run(&["curl", "python3", netlab::frr::BGPD]) {
        return;
    }
    let binaries = Binaries {
        speaker: PathBuf::from(env!("CARGO_BIN_EXE_ferrolb-speaker")),
        controller: None,
    };
    let mut lab = ClusterLab::start("spkgr", 1, true, binaries)
        .await
        .expect("lab starts");
    lab.apply_standard_config().expect("configuration");
    lab.start_speakers().expect("speaker");
    lab.create_service("web", json!({}), false, &[0], &[BGP4.into()])
        .await
        .expect("service");
    let up = eventually(Duration::from_secs(30), Duration::from_millis(100), || {
        frr_path(&lab).filter(|stale| !stale)
    })
    .await;
    assert!(
        up.is_some(),
        "FRR never had the route\n{}",
        lab.speaker_and_router_logs(0)
    );
    // The router's kernel has the route a moment after its RIB (zebra installs it).
    let served = eventually(Duration::from_secs(15), Duration::from_millis(100), || {
        lab.http_get("outside", BGP4.into())
    })
    .await;
    assert_eq!(
        served.as_deref(),
        Some("node-1"),
        "a request through the router reaches node-1: route {:?}\n{}",
        lab.router_route(&BGP4.to_string()),
        lab.speaker_and_router_logs(0)
    );
    let node = lab.nodes[0].v4.to_string();
    let neighbor = lab
        .router
        .as_ref()
        .and_then(|r| r.json(&format!("show bgp neighbors {node} json")).ok())
        .expect("FRR's neighbor");
    let gr = neighbor[&node]["gracefulRestartInfo"].to_string();
    println!("FRR's graceful restart view of node-1 before the restart: {gr}");

    let outside = lab.net.ns("outside");
    let target = SocketAddr::new(IpAddr::V4(BGP4), HTTP_PORT);
    let prober = Prober::start(
        &outside,
        target,
        Duration::from_millis(10),
        Duration::from_millis(500),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restart = Instant::now();
    lab.stop_speaker(0, "TERM")
        .expect("SIGTERM node-1's speaker");
    let stopped_after = restart.elapsed();
    // The new process writes the same log: keep what the old one said about its sessions.
    let old_log = lab.log("speaker-node-1");
    let said: Vec<String> = old_log
        .lines()
        .filter(|l| l.contains("NOTIFICATION") || l.contains("session down"))
        .map(str::to_owned)
        .collect();
    lab.start_speaker(0).expect("the new speaker");
    // FRR's path over the restart and a few seconds after: present all along, stale while the
    // speaker is away; when it changed, in ms after SIGTERM.
    let mut samples = Vec::new();
    let mut changes: Vec<(u128, Option<bool>, String)> = Vec::new();
    let mut back = None;
    while restart.elapsed() < Duration::from_secs(6) {
        let path = frr_path(&lab);
        let kernel = lab.router_route(&BGP4.to_string());
        let now = restart.elapsed();
        if changes
            .last()
            .is_none_or(|(_, p, k)| *p != path || *k != kernel)
        {
            changes.push((now.as_millis(), path, kernel));
        }
        if back.is_none() && path == Some(false) && samples.contains(&Some(true)) {
            back = Some(now);
        }
        samples.push(path);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("FRR's path (stale?) and kernel route over time: {changes:?}");
    let probes = prober.finish();
    let after = lab
        .router
        .as_ref()
        .and_then(|r| r.json(&format!("show bgp neighbors {node} json")).ok())
        .expect("FRR's neighbor");
    let n = &after[&node];
    println!(
        "FRR after the restart: lastResetDueTo {}, lastNotificationReason {}, connectionsDropped {}",
        n["lastResetDueTo"], n["lastNotificationReason"], n["connectionsDropped"]
    );
    let lost = lost_after(&probes, restart);
    let lost_at: Vec<u128> = probes
        .iter()
        .filter(|p| p.sent >= restart && p.answered_by.is_none())
        .map(|p| p.sent.duration_since(restart).as_millis())
        .collect();
    let sent = probes.iter().filter(|p| p.sent >= restart).count();
    println!("the old speaker on its way out:\n{}", said.join("\n"));
    assert!(
        said.iter().any(|l| l.contains("PlannedRestart")),
        "the old speaker stopped its session for a restart: {said:?}"
    );
    println!(
        "planned restart: old speaker gone after {stopped_after:?}, stale mark cleared after \
         {back:?}; {sent} requests through the router, {lost} lost"
    );
    assert!(
        samples.iter().all(Option::is_some),
        "FRR dropped node-1's route during the restart: {samples:?}\n{}",
        lab.speaker_and_router_logs(0)
    );
    assert!(
        back.is_some(),
        "FRR never marked the route stale and cleared it again: {samples:?}\n{}",
        lab.speaker_and_router_logs(0)
    );
    assert!(sent > 100, "too few probes: {sent}");
    assert_eq!(
        lost,
        0,
        "requests lost in the restart, sent at these ms after SIGTERM: {lost_at:?}\n{}",
        lab.speaker_and_router_logs(0)
    );
}
