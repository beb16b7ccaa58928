//! `--bgp-stop-on-sigterm` with the real `ferrolb-speaker` and FRR (graceful restart on):
//! what the router does with the node's route when the speaker gets SIGTERM.
//!
//! - `restart` on a cordoned Node: FRR keeps the route, stale, after the speaker is gone.
//! - `auto` on the same cordoned Node: the node is going away, so FRR drops the route at once
//!   (a Cease, not a restart), instead of blackholing its traffic for the restart time.
//! - `withdraw` on a schedulable Node: dropped at once too.
//!
//! About 20 s on 2 cores.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_netlab::{self as netlab, eventually};
use ferrolb_tests::cluster::{Binaries, ClusterLab};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const WEB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// How long a kept route must stay: far past any withdrawal, far below FRR's restart time.
const KEPT: Duration = Duration::from_secs(3);
/// A withdrawal "at once": the router acts on the NOTIFICATION as it arrives.
const AT_ONCE: Duration = Duration::from_millis(500);

/// FRR's view of node-1's path to `WEB`: `Some(is_stale)` while it has one.
fn frr_path(lab: &ClusterLab) -> Option<bool> {
    let v = lab
        .router
        .as_ref()?
        .json(&format!("show bgp ipv4 unicast {WEB}/32 json"))
        .ok()?;
    let path = v["paths"].as_array()?.first()?.clone();
    Some(path["stale"].as_bool().unwrap_or(false))
}

/// Starts node-1's speaker with `flags` and waits until FRR has a fresh (not stale) path.
async fn start(lab: &mut ClusterLab, flags: &[&str]) {
    lab.start_speaker_with(0, flags).expect("speaker");
    let fresh = eventually(Duration::from_secs(30), Duration::from_millis(50), || {
        (frr_path(lab) == Some(false)).then_some(())
    })
    .await;
    assert!(
        fresh.is_some(),
        "FRR never had a fresh route\n{}",
        lab.speaker_and_router_logs(0)
    );
}

/// What happened to FRR's path after SIGTERM.
enum Fate {
    /// Gone this long after SIGTERM, and this long after the process ended.
    Withdrawn {
        after_sigterm: Duration,
        after_exit: Duration,
    },
    /// Still there, stale, `KEPT` after the process ended.
    KeptStale,
    /// Marked stale first, then dropped this long after.
    DroppedStale(Duration),
}

/// SIGTERMs node-1's speaker; returns what it logged on its way out and the route's fate.
async fn sigterm(lab: &mut ClusterLab) -> (String, Fate) {
    let sent = Instant::now();
    lab.stop_speaker(0, "TERM")
        .expect("SIGTERM node-1's speaker");
    let exited = Instant::now();
    // The last such line: this process's (the log may hold its predecessors' too).
    let said = lab
        .log("speaker-node-1")
        .lines()
        .rfind(|l| l.contains("closing the BGP sessions"))
        .map(str::to_owned)
        .unwrap_or_default();
    // FRR marks the path stale or drops it once it has processed the session's end.
    let first = eventually(KEPT, Duration::from_millis(5), || match frr_path(lab) {
        None => Some(None),
        Some(true) => Some(Some(Instant::now())),
        Some(false) => None,
    })
    .await;
    let fate = match first {
        Some(None) => {
            let at = Instant::now();
            Fate::Withdrawn {
                after_sigterm: at - sent,
                after_exit: at - exited,
            }
        }
        Some(Some(stale)) => {
            let dropped = eventually(KEPT, Duration::from_millis(20), || {
                frr_path(lab).is_none().then(|| stale.elapsed())
            })
            .await;
            match dropped {
                None => Fate::KeptStale,
                Some(after) => Fate::DroppedStale(after),
            }
        }
        None => panic!(
            "FRR's path still fresh {KEPT:?} after SIGTERM\n{}",
            lab.speaker_and_router_logs(0)
        ),
    };
    (said, fate)
}

fn withdrawn_at_once(what: &str, said: &str, fate: Fate, lab: &ClusterLab) {
    match fate {
        Fate::Withdrawn {
            after_sigterm,
            after_exit,
        } => {
            println!(
                "{what}: FRR dropped the route {:.0} ms after SIGTERM ({:.0} ms after the \
                 speaker exited)",
                after_sigterm.as_secs_f64() * 1000.0,
                after_exit.as_secs_f64() * 1000.0
            );
            assert!(
                after_exit <= AT_ONCE,
                "{what}: route gone only {after_exit:?} after the speaker exited"
            );
        }
        Fate::KeptStale | Fate::DroppedStale(_) => panic!(
            "{what}: FRR marked the route stale instead of dropping it: {said}\n{}",
            lab.speaker_and_router_logs(0)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_withdraws_at_once_when_the_node_is_leaving_or_told_to_and_restart_keeps_routes_stale()
 {
    if !netlab::can_run(&["curl", "python3", netlab::frr::BGPD]) {
        return;
    }
    let binaries = Binaries {
        speaker: PathBuf::from(env!("CARGO_BIN_EXE_ferrolb-speaker")),
        controller: None,
    };
    let mut lab = ClusterLab::start("spkstop", 1, true, binaries)
        .await
        .expect("lab starts");
    lab.apply_standard_config().expect("configuration");
    let node = lab.nodes[0].name.clone();
    let nodes: Api<Node> = Api::all(lab.sim.client());
    let cordon = |on: bool| {
        let nodes = nodes.clone();
        let node = node.clone();
        async move {
            nodes
                .patch(
                    &node,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"unschedulable": on}})),
                )
                .await
                .expect("cordon")
        }
    };
    // Cordoned before the speaker starts, so it has seen it when SIGTERM comes.
    cordon(true).await;
    lab.start_speaker_with(0, &["--bgp-stop-on-sigterm=restart"])
        .expect("speaker");
    lab.create_service("web", json!({}), false, &[0], &[WEB.into()])
        .await
        .expect("service");
    let fresh = eventually(Duration::from_secs(30), Duration::from_millis(50), || {
        (frr_path(&lab) == Some(false)).then_some(())
    })
    .await;
    assert!(
        fresh.is_some(),
        "FRR never had the route\n{}",
        lab.speaker_and_router_logs(0)
    );

    let (said, fate) = sigterm(&mut lab).await;
    assert!(said.contains("mode=Restart"), "{said}");
    match fate {
        Fate::KeptStale => {}
        Fate::DroppedStale(after) => panic!(
            "restart on a cordoned Node: FRR dropped the stale route after {after:?}\n{}",
            lab.speaker_and_router_logs(0)
        ),
        Fate::Withdrawn { .. } => panic!(
            "restart on a cordoned Node: FRR dropped the route: {said}\n{}",
            lab.speaker_and_router_logs(0)
        ),
    }
    println!("restart, cordoned Node: FRR kept the route stale for {KEPT:?} after the exit");

    // The new speaker's End-of-RIB clears the stale mark.
    start(&mut lab, &[]).await;
    let (said, fate) = sigterm(&mut lab).await;
    assert!(
        said.contains("mode=Withdraw") && said.contains("NodeUnschedulable"),
        "{said}"
    );
    withdrawn_at_once("auto, cordoned Node", &said, fate, &lab);

    cordon(false).await;
    start(&mut lab, &["--bgp-stop-on-sigterm=withdraw"]).await;
    let (said, fate) = sigterm(&mut lab).await;
    assert!(said.contains("mode=Withdraw"), "{said}");
    withdrawn_at_once("withdraw, schedulable Node", &said, fate, &lab);
}
