//! The chaos suite's cluster: the cluster lab with two controller replicas, three speakers,
//! FRR, a second ARP-asking host, the Services, and the observations the faults are judged
//! by — who answers ARP for the L2 IPs (waiting for one owner each), the Services' IPs, the
//! Lease holder, the router's routes.
//!
//! ```text
//!  switch ── node-1..3 (speaker; HTTP :8080)   ── router (FRR) ── outside (BGP prober)
//!         ── client  192.0.2.100 (L2 prober, asks ARP)
//!         ── probe   192.0.2.99  (asks ARP)
//!         ── 192.0.2.1: kubesim (forwarded) and controller-a, controller-b
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrolb_netlab::{LabError, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::figures::Figures;
use super::judge::{self, Round};
use crate::cluster::objects::Assignments;
use crate::cluster::{Binaries, CLIENT_V4, ClusterLab, ControllerSpec, NAMESPACE};

/// The hosts ARP is asked from at once (a node would not hear its own answers).
pub const ASK_FROM: [(&str, Ipv4Addr); 2] = [
    ("client", CLIENT_V4),
    ("probe", Ipv4Addr::new(192, 0, 2, 99)),
];
/// How long one round of ARP questions waits for answers.
const ASK_WAIT: Duration = Duration::from_millis(250);
/// How long the cluster may take to settle after a fault or a recovery.
pub const SETTLE: Duration = Duration::from_secs(20);
/// The L2 Services (`web-N`) and the BGP Services (`api-N`).
const L2_SERVICES: usize = 6;
const BGP_SERVICES: usize = 2;
/// The pool the bursts of Services take from: IPv6, announced by no advertisement.
const BULK_POOL: &str = "2001:db8:300::/116";
/// The controllers' Lease duration: short, so that a takeover fits in a CI run.
const LEASE: Duration = Duration::from_secs(4);

/// The chaos suite's cluster.
#[derive(Debug)]
pub struct ChaosLab {
    pub lab: ClusterLab,
    /// The two controller replicas.
    pub controllers: [ControllerSpec; 2],
    /// The L2 Services' IPs.
    pub l2_ips: Vec<Ipv4Addr>,
    /// The BGP Services' IPs.
    pub bgp_ips: Vec<IpAddr>,
    /// The node answering each L2 IP when every node runs (its first-ranked node).
    pub owners: BTreeMap<Ipv4Addr, String>,
}

impl ChaosLab {
    /// Builds the cluster and waits until every Service has its IP, every L2 IP one owner and
    /// the router an ECMP route over every node for each BGP IP.
    pub async fn start(binaries: Binaries) -> Result<ChaosLab, LabError> {
        let mut lab = ClusterLab::start("chaos", 3, true, binaries).await?;
        lab.net.add_host("probe", "eth0", &["192.0.2.99/24"])?;
        lab.apply_standard_config()?;
        lab.create(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "bulk", "namespace": NAMESPACE},
            "spec": {"addresses": [BULK_POOL], "autoAssign": false}
        }))?;
        let spec = |identity: &str, metrics_port| ControllerSpec {
            identity: identity.into(),
            lease: LEASE,
            metrics_port,
        };
        let controllers = [spec("controller-a", 7481), spec("controller-b", 7482)];
        for controller in &controllers {
            lab.start_controller_as(controller)?;
        }
        lab.start_speakers()?;
        let everywhere: Vec<usize> = (0..lab.nodes.len()).collect();
        let services = (0..L2_SERVICES)
            .map(|i| (format!("web-{i}"), "l2"))
            .chain((0..BGP_SERVICES).map(|i| (format!("api-{i}"), "bgp")));
        for (name, pool) in services {
            let annotations = json!({"metallb.io/address-pool": pool});
            lab.create_service(&name, annotations, false, &everywhere, &[])
                .await
                .map_err(api("creating a Service"))?;
        }
        let mut chaos = ChaosLab {
            lab,
            controllers,
            l2_ips: Vec::new(),
            bgp_ips: Vec::new(),
            owners: BTreeMap::new(),
        };
        let assigned = chaos.all_assigned(SETTLE).await?;
        for (service, ips) in &assigned {
            for ip in ips {
                match (service.starts_with("default/web-"), ip) {
                    (true, IpAddr::V4(v4)) => chaos.l2_ips.push(*v4),
                    (false, _) => chaos.bgp_ips.push(*ip),
                    _ => {}
                }
            }
        }
        let mut doubles = BTreeSet::new();
        chaos.owners = chaos.settle(&mut doubles, |_| true).await?;
        if !doubles.is_empty() {
            return Err(LabError::Missing {
                what: "one owner per L2 IP as the cluster starts".into(),
                detail: format!("answered by two MACs: {doubles:?}"),
            });
        }
        chaos.routes_over(3).await?;
        Ok(chaos)
    }

    /// One round of ARP questions for every L2 IP, from both asking hosts at once.
    pub fn ask(&self) -> Result<Round, LabError> {
        self.lab.arp_answers(&ASK_FROM, &self.l2_ips, ASK_WAIT)
    }

    /// MAC → node name in `owners` (a MAC of no node stays as it is).
    fn by_node(&self, owners: BTreeMap<Ipv4Addr, String>) -> BTreeMap<Ipv4Addr, String> {
        owners
            .into_iter()
            .map(|(ip, mac)| {
                let node = self.lab.node_with_mac(&mac).map_or(mac, |n| n.name.clone());
                (ip, node)
            })
            .collect()
    }

    /// Asks until every L2 IP has one owner (by node name) that `accept` takes; the owners
    /// then. Every IP answered twice meanwhile goes to `doubles`.
    pub async fn settle(
        &self,
        doubles: &mut BTreeSet<Ipv4Addr>,
        accept: impl Fn(&BTreeMap<Ipv4Addr, String>) -> bool,
    ) -> Result<BTreeMap<Ipv4Addr, String>, LabError> {
        let deadline = Instant::now() + SETTLE;
        let mut last = Round::new();
        while Instant::now() < deadline {
            last = self.ask()?;
            doubles.extend(judge::double_answered(&last));
            let owners = judge::single_owners(&last).map(|o| self.by_node(o));
            if let Some(owners) = owners.filter(|o| accept(o)) {
                return Ok(owners);
            }
        }
        Err(LabError::Timeout {
            what: "one accepted owner for every L2 IP".into(),
            within: SETTLE,
            last: format!("{last:?}"),
        })
    }

    /// Asks for `period`; every IP answered twice goes to `doubles`. Fails when the owners
    /// seen differ from `expected` (an IP unanswered, or moved).
    pub async fn hold(
        &self,
        doubles: &mut BTreeSet<Ipv4Addr>,
        period: Duration,
        expected: &BTreeMap<Ipv4Addr, String>,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + period;
        while Instant::now() < deadline {
            let round = self.ask()?;
            doubles.extend(judge::double_answered(&round));
            let owners = judge::single_owners(&round).map(|o| self.by_node(o));
            if owners.as_ref() != Some(expected) && judge::double_answered(&round).is_empty() {
                return Err(LabError::Missing {
                    what: format!("the owners {expected:?} held"),
                    detail: format!("asked: {round:?}"),
                });
            }
        }
        Ok(())
    }

    /// The recovery of an L2 fault: a recovered node takes its IPs back. For the moment between
    /// its claim and the interim owner's withdrawal (each acts on the same membership change) a
    /// request may get both answers: IPs seen so go to the figures' hand-back overlaps while
    /// the owners settle back to those of when every node ran. Then a few more rounds must
    /// show no IP answered twice.
    pub async fn settle_back(&self, figures: &mut Figures) -> Result<(), LabError> {
        let owners = self.owners.clone();
        let mut overlaps = BTreeSet::new();
        let settled = self.settle(&mut overlaps, |o| *o == owners).await;
        figures.handback_overlaps.extend(overlaps);
        settled?;
        self.hold(&mut figures.double_answered, 3 * ASK_WAIT, &owners)
            .await
    }

    /// The L2 owners after node `gone` stopped answering: every IP has one owner, none of them
    /// `gone`. IPs answered twice meanwhile go to the figures.
    pub async fn taken_over_from(
        &self,
        gone: &str,
        figures: &mut Figures,
    ) -> Result<BTreeMap<Ipv4Addr, String>, LabError> {
        self.settle(&mut figures.double_answered, |o| {
            o.values().all(|n| n != gone)
        })
        .await
    }

    /// Waits until the router routes every BGP IP over `nodes` next hops.
    pub async fn routes_over(&self, nodes: usize) -> Result<(), LabError> {
        let routed = eventually(SETTLE, Duration::from_millis(200), || {
            self.bgp_ips
                .iter()
                .all(|ip| {
                    self.lab
                        .router_route(&ip.to_string())
                        .matches("nexthop")
                        .count()
                        == nodes
                })
                .then_some(())
        })
        .await;
        routed.ok_or_else(|| LabError::Timeout {
            what: format!("the router routes every BGP IP over {nodes} nodes"),
            within: SETTLE,
            last: self
                .bgp_ips
                .iter()
                .map(|ip| self.lab.router_route(&ip.to_string()))
                .collect::<Vec<_>>()
                .join(" / "),
        })
    }

    /// The Services' IPs now.
    pub async fn assignments(&self) -> Result<Assignments, LabError> {
        self.lab
            .lb_assignments()
            .await
            .map_err(api("listing Services"))
    }

    /// Waits (up to `within`) until every LoadBalancer Service has an IP; the assignments then,
    /// or at the deadline.
    pub async fn all_assigned(&self, within: Duration) -> Result<Assignments, LabError> {
        let deadline = Instant::now() + within;
        loop {
            let now = self.assignments().await?;
            if judge::lost(&now).is_empty() || Instant::now() >= deadline {
                return Ok(now);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Judges the Services against `before`: double assignments, Services without an IP
    /// (after waiting for the controller to catch up) and moves go to the figures.
    pub async fn judge_services(
        &self,
        before: &Assignments,
        figures: &mut Figures,
    ) -> Result<Assignments, LabError> {
        let now = self.all_assigned(SETTLE).await?;
        figures
            .double_assigned
            .extend(judge::double_assigned(&now).into_keys());
        figures.lost.extend(judge::lost(&now));
        figures.moved.extend(judge::moved(before, &now));
        Ok(now)
    }

    /// The Lease holder, if any.
    pub async fn leader(&self) -> Result<Option<String>, LabError> {
        let leases: Api<Lease> = Api::namespaced(self.lab.sim.client(), NAMESPACE);
        let lease = leases
            .get_opt("ferrolb-controller")
            .await
            .map_err(api("reading the Lease"))?;
        Ok(lease
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty()))
    }

    /// Waits until one of the controllers named in `among` holds the Lease; which one.
    pub async fn leader_among(&self, among: &[&str], within: Duration) -> Result<String, LabError> {
        let deadline = Instant::now() + within;
        loop {
            let holder = self.leader().await?;
            if let Some(holder) = holder.as_ref().filter(|h| among.contains(&h.as_str())) {
                return Ok(holder.clone());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("one of {among:?} holds the Lease"),
                    within,
                    last: format!("holder {holder:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The spec of controller `identity`.
    pub fn controller(&self, identity: &str) -> Result<ControllerSpec, LabError> {
        self.controllers
            .iter()
            .find(|c| c.identity == identity)
            .cloned()
            .ok_or_else(|| LabError::Missing {
                what: format!("controller {identity}"),
                detail: "not one of the lab's".into(),
            })
    }

    /// The index of node `name`.
    pub fn index_of(&self, name: &str) -> Result<usize, LabError> {
        self.lab
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| LabError::Missing {
                what: format!("node {name}"),
                detail: "not in the lab".into(),
            })
    }

    /// Fails naming the process when one the lab did not stop ended.
    pub fn check_processes(&mut self) -> Result<(), LabError> {
        self.lab.net.processes().check_alive()
    }

    /// The end of every process log of the lab, for a failure report.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut paths: Vec<_> = std::fs::read_dir(self.lab.net.dir())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        for path in paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
        {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out += &format!("--- {} (last 40 lines)\n", path.display());
            for line in tail.iter().rev() {
                out += line;
                out.push('\n');
            }
        }
        out
    }
}

/// A LoadBalancer Service `default/NAME` in the bulk pool (IPv6, no node ports, no endpoints).
pub fn bulk_service(name: &str) -> Result<Service, LabError> {
    let value: Value = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {"metallb.io/address-pool": "bulk"}},
        "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack",
                 "allocateLoadBalancerNodePorts": false,
                 "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": name}}
    });
    serde_json::from_value(value).map_err(|e| LabError::Command {
        command: "building a bulk Service".into(),
        stderr: e.to_string(),
    })
}

/// Creates `names` as bulk Services from `tasks` concurrent tasks; returns once all are
/// created. `created` counts them as they are.
pub async fn create_bulk(
    client: kube::Client,
    names: Vec<String>,
    tasks: usize,
    created: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Result<(), LabError> {
    let mut slices: Vec<Vec<String>> = vec![Vec::new(); tasks.max(1)];
    for (i, name) in names.into_iter().enumerate() {
        slices[i % tasks.max(1)].push(name);
    }
    let mut handles = Vec::new();
    for slice in slices {
        let client = client.clone();
        let created = created.clone();
        handles.push(tokio::spawn(async move {
            let services: Api<Service> = Api::namespaced(client, "default");
            for name in slice {
                services
                    .create(&PostParams::default(), &bulk_service(&name)?)
                    .await
                    .map_err(api("creating a bulk Service"))?;
                created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok::<(), LabError>(())
        }));
    }
    for handle in handles {
        handle.await.map_err(|e| LabError::Command {
            command: "a Service creating task".into(),
            stderr: e.to_string(),
        })??;
    }
    Ok(())
}

/// Maps an API error to a [`LabError`] naming what was being done.
pub fn api(what: &'static str) -> impl Fn(kube::Error) -> LabError {
    move |e| LabError::Command {
        command: what.into(),
        stderr: e.to_string(),
    }
}
