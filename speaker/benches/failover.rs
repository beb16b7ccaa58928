//! Failover and footprint of the real speaker in the namespace lab:
//! - crash failover gap: the owner node vanishes (link down + SIGKILL); a client probing every
//!   10 ms measures the time until a request is answered by another node (≥ 20 trials);
//! - graceful-shutdown gap: SIGTERM the owner's speaker, cut its link once it exited, same probe;
//! - speaker RSS idle and with 10k Services (BGP-advertised), and API writes per minute at
//!   steady state.
//!
//! `cargo bench -p ferrolb-speaker --bench failover` (root; FERROLB_TRIALS=N and
//! FERROLB_GRACEFUL=N change the number of crash and graceful trials, FERROLB_SERVICES=N the
//! scale step, FERROLB_SPEAKER_BIN another speaker binary or a wrapper script).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_netlab::{self as netlab, eventually};
use ferrolb_tests::cluster::probe::{self, Prober};
use ferrolb_tests::cluster::{Binaries, ClusterLab, HTTP_PORT, NAMESPACE};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn speaker_binary() -> PathBuf {
    // Another build, or a wrapper such as a heap profiler around it.
    if let Some(path) = std::env::var_os("FERROLB_SPEAKER_BIN") {
        return PathBuf::from(path);
    }
    // Benches run from target/<profile>/deps; the binary sits one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("ferrolb-speaker")
}

async fn owner(lab: &ClusterLab, within: Duration) -> Option<(usize, String)> {
    eventually(within, Duration::from_millis(50), || {
        let mac = lab.arp_owner(VIP)?;
        let index = lab
            .nodes
            .iter()
            .position(|n| n.mac.eq_ignore_ascii_case(&mac))?;
        Some((index, lab.nodes[index].name.clone()))
    })
    .await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !netlab::can_run(&["arping", "curl", "python3"]) {
        return;
    }
    let speaker = speaker_binary();
    assert!(
        speaker.exists(),
        "build the speaker first: cargo build --release -p ferrolb-speaker ({})",
        speaker.display()
    );
    let binaries = Binaries {
        speaker,
        controller: None,
    };
    let mut lab = ClusterLab::start("bfail", 3, false, binaries)
        .await
        .expect("lab");
    lab.apply_standard_config().expect("config");
    lab.start_speakers().expect("speakers");
    lab.create_service("web", json!({}), false, &[0, 1, 2], &[VIP.into()])
        .await
        .expect("service");
    owner(&lab, Duration::from_secs(20))
        .await
        .expect("an owner answers");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle: Vec<(u64, u64)> = (0..3).filter_map(|i| lab.speaker_memory_kib(i)).collect();

    let target = SocketAddr::new(VIP.into(), HTTP_PORT);
    let client = lab.net.ns("client");
    let trials = env_number("FERROLB_TRIALS", 20);
    let mut gaps = Vec::new();
    let mut failed = 0;
    println!(
        "crash failover: {trials} trials (owner link down + SIGKILL; client probes every 10 ms)"
    );
    for trial in 0..trials {
        let Some((index, name)) = owner(&lab, Duration::from_secs(10)).await else {
            panic!("no owner before trial {trial}");
        };
        let (probes, failure) = lab
            .crash_while_probing(index, target, Duration::from_millis(2500))
            .await
            .expect("crash");
        match probe::gap(&probes, failure, &name) {
            Some(gap) => {
                println!(
                    "  trial {trial:2}: {name} died, gap {} ({} probes lost)",
                    ms(gap),
                    probe::lost_after(&probes, failure)
                );
                gaps.push(gap);
            }
            None => {
                failed += 1;
                println!("  trial {trial:2}: {name} died, NO takeover within 2.5 s");
            }
        }
        lab.recover_node(index).await.expect("recover");
    }
    gaps.sort();
    println!(
        "crash failover gap over {} trials: p50 {}  p90 {}  max {}  (no takeover: {failed})  targets: p50 < 500 ms, max < 1 s",
        gaps.len(),
        ms(percentile(&gaps, 0.5)),
        ms(percentile(&gaps, 0.9)),
        ms(gaps.last().copied().unwrap_or_default()),
    );

    let graceful_trials = env_number("FERROLB_GRACEFUL", 5);
    let mut graceful = Vec::new();
    for trial in 0..graceful_trials {
        let Some((index, name)) = owner(&lab, Duration::from_secs(10)).await else {
            panic!("no owner before graceful trial {trial}");
        };
        let prober = Prober::start(
            &client,
            target,
            Duration::from_millis(10),
            Duration::from_millis(200),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        lab.stop_speaker(index, "TERM").expect("stop");
        let exited = Instant::now();
        lab.cut_node(index).expect("cut");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let probes = prober.finish();
        let gap = probe::gap(&probes, exited, &name);
        println!(
            "  graceful {trial}: {name} stopped, gap after exit {} ({} probes lost)",
            gap.map_or("none: no takeover".into(), ms),
            probe::lost_after(&probes, exited)
        );
        graceful.extend(gap);
        lab.recover_node(index).await.expect("recover");
    }
    graceful.sort();
    println!(
        "graceful-shutdown gap over {} trials: p50 {}  max {}",
        graceful.len(),
        ms(percentile(&graceful, 0.5)),
        ms(graceful.last().copied().unwrap_or_default())
    );

    for (i, (rss, hwm)) in idle.iter().enumerate() {
        println!(
            "speaker node-{} idle: RSS {:.1} MiB (peak {:.1} MiB)  target < 20 MB",
            i + 1,
            *rss as f64 / 1024.0,
            *hwm as f64 / 1024.0
        );
    }
    scale(&mut lab).await;
}

/// One speaker with N Services advertised over BGP: its memory, and the writes at steady state.
async fn scale(lab: &mut ClusterLab) {
    let count = env_number("FERROLB_SERVICES", 10_000);
    lab.stop_speaker(1, "TERM").expect("stop node-2");
    lab.stop_speaker(2, "TERM").expect("stop node-3");
    lab.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "scale", "namespace": NAMESPACE},
        "spec": {"addresses": ["2001:db8:1000::/112"]}
    }))
    .expect("pool");
    lab.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": "scale", "namespace": NAMESPACE},
        "spec": {"ipAddressPools": ["scale"]}
    }))
    .expect("advertisement");
    let services: Api<Service> = Api::namespaced(lab.sim.client(), "default");
    let started = Instant::now();
    let shared: &ClusterLab = lab;
    futures::stream::iter(0..count)
        .map(|i| {
            let services = services.clone();
            async move {
                let name = format!("scale-{i}");
                let service: Service = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
                }))
                .expect("service");
                services
                    .create(&PostParams::default(), &service)
                    .await
                    .expect("create");
                let ip = IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0x1000,
                    0,
                    0,
                    0,
                    0,
                    i as u16 + 1,
                ));
                let status =
                    json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}});
                services
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .expect("status");
                // ETP Cluster: one serving endpoint anywhere makes the Service advertised.
                shared.set_endpoints(&name, &[0]).await.expect("endpoints");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!(
        "created {count} Services with IPs and endpoints in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let statuses: Api<ferrolb_api::types::ServiceBGPStatus> =
        Api::namespaced(lab.sim.client(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = statuses
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if n >= count || Instant::now() > deadline {
            println!(
                "node-1 wrote {n} ServiceBGPStatus objects after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = lab.sim.resource_version();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let writes = lab.sim.resource_version() - before;
    if let Some((rss, hwm)) = lab.speaker_memory_kib(0) {
        println!(
            "speaker node-1 with {count} Services: RSS {:.1} MiB (peak {:.1} MiB)  target < 64 MB",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    println!("API writes at steady state: {writes} per minute  target 0");
}
