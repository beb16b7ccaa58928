//! The faults, each injected into the running cluster and recovered from, with what it did
//! written into its [`Figures`]. Each starts from the cluster at rest — every node running,
//! each L2 IP answered by its first-ranked node, one controller leading — and leaves it so.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrolb_kubesim::Hold;
use ferrolb_netlab::LabError;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};

use super::figures::{Fault, Figures};
use super::judge;
use super::lab::{ChaosLab, SETTLE, api, bulk_service, create_bulk};
use crate::cluster::NAMESPACE;

/// How long a fault's state is watched once the others took over.
const HOLD: Duration = Duration::from_secs(1);
/// The burst the leading controller is killed in, and when (Services created by then).
const BURST: usize = 500;
const KILL_AFTER: usize = 150;
/// Services created one by one while the leader's Lease writes hang, and their pace.
const WHILE_HUNG: usize = 40;
const WHILE_HUNG_EVERY: Duration = Duration::from_millis(150);

/// Injects `fault` on `target` (the node answering the watched L2 IP) and recovers.
pub async fn inject(
    cx: &mut ChaosLab,
    fault: Fault,
    target: &str,
    f: &mut Figures,
) -> Result<(), LabError> {
    match fault {
        Fault::OwnerKill => owner_kill(cx, target, f).await,
        Fault::OwnerFreeze => owner_freeze(cx, target, f).await,
        Fault::GossipPartition => gossip_partition(cx, target, f).await,
        Fault::WrongKeySpeaker => wrong_key_speaker(cx, f).await,
        Fault::ApiOutageWithCrash => api_outage_with_crash(cx, target, f).await,
        Fault::ControllerKillDuringBurst => controller_kill_during_burst(cx, f).await,
        Fault::TwoLeaders => two_leaders(cx, f).await,
        Fault::LinkFlap => link_flap(cx, target, f).await,
    }
}

async fn owner_kill(cx: &mut ChaosLab, target: &str, f: &mut Figures) -> Result<(), LabError> {
    let index = cx.index_of(target)?;
    cx.lab.stop_speaker(index, "KILL")?;
    cx.taken_over_from(target, f).await?;
    cx.lab.start_speaker(index)?;
    cx.settle_back(f).await
}

async fn owner_freeze(cx: &mut ChaosLab, target: &str, f: &mut Figures) -> Result<(), LabError> {
    let index = cx.index_of(target)?;
    let pid = cx.lab.nodes[index]
        .speaker
        .ok_or_else(|| LabError::Missing {
            what: format!("{target}'s speaker"),
            detail: "not running".into(),
        })?;
    cx.lab.net.signal(pid, "STOP")?;
    let frozen = async {
        let taken = cx.taken_over_from(target, f).await?;
        cx.hold(&mut f.double_answered, HOLD, &taken).await
    }
    .await;
    cx.lab.net.signal(pid, "CONT")?;
    frozen?;
    cx.settle_back(f).await
}

async fn gossip_partition(
    cx: &mut ChaosLab,
    target: &str,
    f: &mut Figures,
) -> Result<(), LabError> {
    let index = cx.index_of(target)?;
    cx.lab.cut_gossip(index)?;
    let cut = async {
        let taken = cx.taken_over_from(target, f).await?;
        cx.hold(&mut f.double_answered, HOLD, &taken).await
    }
    .await;
    cx.lab.heal_gossip(index)?;
    cut?;
    cx.settle_back(f).await
}

/// A new node whose speaker has a key nobody else has: it counts in the speaker set (its
/// ConfigurationState) but sees nobody, so it has no quorum and answers nothing; nothing moves.
async fn wrong_key_speaker(cx: &mut ChaosLab, f: &mut Figures) -> Result<(), LabError> {
    let index = cx.lab.add_node()?;
    let name = cx.lab.nodes[index].name.clone();
    f.target = name.clone();
    let key = cx.lab.net.path(&format!("wrong-key-{name}"));
    std::fs::write(&key, format!("a key only {name} has"))
        .map_err(ferrolb_netlab::io_error("key file"))?;
    cx.lab.start_speaker_with_key(index, &key)?;
    let joined = async {
        cx.wait_for_configuration_state(&name).await?;
        let owners = cx.owners.clone();
        cx.hold(&mut f.double_answered, 3 * HOLD, &owners).await?;
        match cx
            .lab
            .speaker_metric(index, "ferrolb_speaker_members_quorum")
        {
            Some(0.0) => Ok(()),
            other => Err(LabError::Missing {
                what: format!("{name}'s speaker without quorum"),
                detail: format!("ferrolb_speaker_members_quorum = {other:?}"),
            }),
        }
    }
    .await;
    cx.lab.retire_last_node().await?;
    joined?;
    let owners = cx.owners.clone();
    cx.hold(&mut f.double_answered, HOLD, &owners).await
}

/// The API server pauses; the owner's speaker crashes and is restarted at once (as the kubelet
/// would) while it is down, so it cannot learn anything: the others take over its IPs, and it
/// takes them back once the API answers again.
async fn api_outage_with_crash(
    cx: &mut ChaosLab,
    target: &str,
    f: &mut Figures,
) -> Result<(), LabError> {
    let index = cx.index_of(target)?;
    cx.lab.sim.faults().pause();
    let outage = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cx.lab.stop_speaker(index, "KILL")?;
        cx.lab.start_speaker(index)?;
        let taken = cx.taken_over_from(target, f).await?;
        cx.hold(&mut f.double_answered, HOLD, &taken).await
    }
    .await;
    cx.lab.sim.faults().resume();
    outage?;
    cx.settle_back(f).await
}

/// The other controller replica.
fn other(cx: &ChaosLab, identity: &str) -> String {
    cx.controllers
        .iter()
        .map(|c| c.identity.clone())
        .find(|c| c != identity)
        .unwrap_or_default()
}

/// Both controllers' identities.
fn identities(cx: &ChaosLab) -> Vec<String> {
    cx.controllers.iter().map(|c| c.identity.clone()).collect()
}

/// The leader is SIGKILLed a third of the way into 500 creates; the standby takes over and
/// gives every Service an IP without moving any. Then both restart in turn (the new leader
/// rebuilds its allocator from the statuses), and still nothing moves.
async fn controller_kill_during_burst(cx: &mut ChaosLab, f: &mut Figures) -> Result<(), LabError> {
    let ids = identities(cx);
    let among: Vec<&str> = ids.iter().map(String::as_str).collect();
    let leader = cx.leader_among(&among, SETTLE).await?;
    let successor = other(cx, &leader);
    f.target = leader.clone();
    let names: Vec<String> = (0..BURST)
        .map(|i| format!("bulk-{}-{i}", f.round))
        .collect();
    let created = Arc::new(AtomicUsize::new(0));
    let burst = tokio::spawn(create_bulk(cx.lab.sim.client(), names, 8, created.clone()));
    let deadline = Instant::now() + SETTLE;
    while created.load(Ordering::Relaxed) < KILL_AFTER && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cx.lab.stop_controller(&leader, "KILL")?;
    let at_kill = cx.assignments().await?;
    burst.await.map_err(|e| LabError::Command {
        command: "the burst of creates".into(),
        stderr: e.to_string(),
    })??;
    cx.leader_among(&[&successor], SETTLE).await?;
    let after = cx.judge_services(&at_kill, f).await?;

    cx.lab.start_controller_as(&cx.controller(&leader)?)?;
    cx.lab.stop_controller(&successor, "TERM")?;
    cx.leader_among(&[&leader], SETTLE).await?;
    cx.api_quiet(Duration::from_secs(1), Duration::from_secs(10))
        .await;
    cx.lab.start_controller_as(&cx.controller(&successor)?)?;
    cx.judge_services(&after, f).await.map(|_| ())
}

/// Whether a logged request is a Service write that succeeded.
fn is_service_write(r: &ferrolb_kubesim::api::RequestRecord) -> bool {
    r.method != "GET" && r.path.contains("/services/") && (200..300).contains(&r.status)
}

/// The leader's Lease writes hang (kubesim holds them by its token) while Services are
/// created one by one: it leads until its renew deadline, then stops writing; the standby
/// takes over once the Lease expired. The deposed leader must write no Service after its
/// successor's first write.
async fn two_leaders(cx: &mut ChaosLab, f: &mut Figures) -> Result<(), LabError> {
    let ids = identities(cx);
    let among: Vec<&str> = ids.iter().map(String::as_str).collect();
    let leader = cx.leader_among(&among, SETTLE).await?;
    let standby = other(cx, &leader);
    f.target = leader.clone();
    let before = cx.assignments().await?;
    // A request nobody else makes marks where this fault starts in the request log.
    let marker = format!("chaos-mark-{}", f.round);
    let services: Api<Service> = Api::namespaced(cx.lab.sim.client(), "default");
    services
        .get_opt(&marker)
        .await
        .map_err(api("marking the log"))?;
    let faults = cx.lab.sim.faults();
    let held_before = faults.held_total();
    for method in ["PUT", "POST"] {
        faults.hold(Hold {
            token: leader.clone(),
            method: Some(method.into()),
            path_part: "/leases/".into(),
        });
    }
    let round = f.round;
    let pace = tokio::spawn(async move {
        for i in 0..WHILE_HUNG {
            let service = bulk_service(&format!("lead-{round}-{i}"))?;
            services
                .create(&PostParams::default(), &service)
                .await
                .map_err(api("creating a Service"))?;
            tokio::time::sleep(WHILE_HUNG_EVERY).await;
        }
        Ok::<(), LabError>(())
    });
    let took_over = cx.leader_among(&[&standby], SETTLE).await;
    let created = pace.await.map_err(|e| LabError::Command {
        command: "creating Services while the Lease hangs".into(),
        stderr: e.to_string(),
    });
    let held = faults.held_total() - held_before;
    faults.release_held();
    took_over?;
    created??;
    if held == 0 {
        return Err(LabError::Missing {
            what: format!("a Lease write of {leader} held"),
            detail: "it never renewed while its Lease writes hung".into(),
        });
    }
    cx.judge_services(&before, f).await?;
    let log = cx.lab.sim.requests();
    let from = log
        .iter()
        .position(|r| r.path.ends_with(&format!("/services/{marker}")))
        .ok_or_else(|| LabError::Missing {
            what: "the marker in kubesim's request log".into(),
            detail: "the log dropped it".into(),
        })?;
    let entries: Vec<(String, bool)> = log
        .iter()
        .map(|r| (r.client.clone(), is_service_write(r)))
        .collect();
    f.late_writes = judge::writes_after_takeover(&entries, from, &leader, &standby);
    Ok(())
}

/// The owner's link loses carrier until the others took over, then gets it back.
async fn link_flap(cx: &mut ChaosLab, target: &str, f: &mut Figures) -> Result<(), LabError> {
    let index = cx.index_of(target)?;
    cx.lab.set_carrier(index, false)?;
    let down = cx.taken_over_from(target, f).await;
    cx.lab.set_carrier(index, true)?;
    down?;
    cx.settle_back(f).await
}

impl ChaosLab {
    /// Waits until speaker `node`'s ConfigurationState exists: it runs, has planned, and counts
    /// in every speaker's speaker set.
    async fn wait_for_configuration_state(&self, node: &str) -> Result<(), LabError> {
        let name = format!("speaker-{node}");
        let found = ferrolb_netlab::eventually(SETTLE, Duration::from_millis(100), || {
            let state = self.lab.sim.get_object(
                "metallb.io/v1beta1",
                "ConfigurationState",
                Some(NAMESPACE),
                &name,
            );
            state.ok().flatten().map(|_| ())
        })
        .await;
        found.ok_or_else(|| LabError::Timeout {
            what: format!("ConfigurationState {name}"),
            within: SETTLE,
            last: "absent".into(),
        })
    }

    /// Waits (up to `within`) until the API server's resourceVersion has not moved for
    /// `quiet`: whatever a new leader had to write has landed. Not a failure when it never
    /// gets quiet: the checks that follow judge what was written.
    async fn api_quiet(&self, quiet: Duration, within: Duration) {
        let deadline = Instant::now() + within;
        let mut version = self.lab.sim.resource_version();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.lab.sim.resource_version();
            if now != version {
                (version, since) = (now, Instant::now());
            } else if since.elapsed() >= quiet {
                return;
            }
        }
    }
}
