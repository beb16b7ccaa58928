//! A whole FerroLB cluster on one machine: kubesim as the API server, node namespaces on a
//! switch running the real `ferrolb-speaker`, a client on the same segment, and optionally an
//! FRR router with a client behind it. The speaker's end-to-end tests and the `ferrolb-lab`
//! demo both build on it; the namespaces and processes come from `ferrolb-netlab`.
//!
//! ```text
//!   kubesim (127.0.0.1, in the test) ◄── forward ── 192.0.2.1:6443 on the switch
//!   switch br0 ── node-1..N  eth0 192.0.2.1N, 2001:db8::1N  (speaker, HTTP server on :8080)
//!              ── client     eth0 192.0.2.100, 2001:db8::100
//!              ── router     eth0 192.0.2.254 ── eth1 198.51.100.1 ── outside 198.51.100.2
//! ```
//! Nodes accept traffic for every pool address (AnyIP `local` routes on `lo`, as kube-proxy's
//! DNAT would), with `arp_ignore=1` so the kernel never answers ARP for them: FerroLB does.
//!
//! - this module: the lab, its processes (speakers, controllers), crash and recovery;
//! - [`topology`]: nodes, router, second NICs, cutting and restoring links;
//! - [`objects`]: the Kubernetes objects the lab creates (Nodes, Pods, configuration, Services);
//! - [`observe`]: what the lab reads back (ARP/NDP owners, HTTP, metrics, CPU, memory, routes);
//! - [`probe`]: a client probing a Service every few milliseconds.

pub mod objects;
pub mod observe;
pub mod probe;
pub mod topology;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_kubesim::KubeSim;
use ferrolb_netlab::routers::Frr;
use ferrolb_netlab::{LabError, Netlab, eventually, io_error};
use serde_json::json;

/// FerroLB's namespace in the lab.
pub const NAMESPACE: &str = "ferrolb-system";
/// Where speakers reach the API server.
pub const API: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 6443);
/// The L2 pool: addresses on the nodes' own segment.
pub const L2_POOL: [&str; 2] = ["192.0.2.200-192.0.2.219", "2001:db8::200-2001:db8::21f"];
/// The BGP pool: addresses reached through the router.
pub const BGP_POOL: [&str; 2] = ["203.0.113.0/28", "2001:db8:100::/124"];
/// The router's AS and the nodes' AS.
pub const ROUTER_AS: u32 = 64512;
/// See [`ROUTER_AS`].
pub const NODE_AS: u32 = 64513;
/// The router on the switch.
pub const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The client on the switch.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// Port of each node's HTTP server (answers with the node's name).
pub const HTTP_PORT: u16 = 8080;
/// How long a recovered node may take to get its IPs back.
const RECOVERY: Duration = Duration::from_secs(20);

/// How [`ClusterLab::start_with`] sets the API server up.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// kubesim's options (RBAC, webhook Service addresses).
    pub sim: ferrolb_kubesim::Options,
    /// Create neither FerroLB's CRDs nor its namespace (Helm does).
    pub without_ferrolb_objects: bool,
}

/// The binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `ferrolb-speaker`.
    pub speaker: PathBuf,
    /// `ferrolb-controller` (the speaker tests set Service statuses themselves).
    pub controller: Option<PathBuf>,
}

/// One node of the lab.
#[derive(Debug, Clone)]
pub struct LabNode {
    /// Node object name (`node-1`).
    pub name: String,
    /// Lab role (namespace suffix).
    pub role: String,
    /// Its IPv4 address.
    pub v4: Ipv4Addr,
    /// Its IPv6 address.
    pub v6: Ipv6Addr,
    /// MAC of its `eth0`.
    pub mac: String,
    /// MAC of its `eth1`, when [`ClusterLab::add_second_nics`] gave it one.
    pub mac2: Option<String>,
    /// PID of its running speaker.
    pub speaker: Option<u32>,
}

/// The lab.
#[derive(Debug)]
pub struct ClusterLab {
    /// The namespaces and processes.
    pub net: Netlab,
    /// The API server.
    pub sim: KubeSim,
    /// The nodes.
    pub nodes: Vec<LabNode>,
    /// The router, when started with one.
    pub router: Option<Frr>,
    binaries: Binaries,
    kubeconfig: PathBuf,
    members_key: PathBuf,
    /// Running controllers: identity → PID.
    controllers: BTreeMap<String, u32>,
    /// The number of the next node [`ClusterLab::add_node`] makes.
    next_node: u8,
}

/// How one controller replica runs in the lab.
#[derive(Debug, Clone)]
pub struct ControllerSpec {
    /// Its Lease holder identity. Also the bearer token of its own kubeconfig, by which kubesim
    /// tells its requests apart (`Faults::hold`, `RequestRecord::client`), and its log's name.
    pub identity: String,
    /// `--lease-duration`.
    pub lease: Duration,
    /// Port of its `/metrics` and probes, on 127.0.0.1 of the switch namespace.
    pub metrics_port: u16,
}

impl ClusterLab {
    /// Builds the lab with `node_count` nodes (at most 9), their Node objects, FerroLB's CRDs
    /// and namespace, and with `with_router` the FRR router and the outside client.
    pub async fn start(
        tag: &str,
        node_count: u8,
        with_router: bool,
        binaries: Binaries,
    ) -> Result<ClusterLab, LabError> {
        Self::start_with(tag, node_count, with_router, binaries, Setup::default()).await
    }

    /// [`ClusterLab::start`] with kubesim's options and without FerroLB's CRDs and namespace
    /// when `setup` says so (the chart tests install them with Helm).
    pub async fn start_with(
        tag: &str,
        node_count: u8,
        with_router: bool,
        binaries: Binaries,
        setup: Setup,
    ) -> Result<ClusterLab, LabError> {
        let mut net = Netlab::new(tag)?;
        net.address_switch(&["192.0.2.1/24"])?;
        let sim = KubeSim::start_with(setup.sim)
            .await
            .map_err(io_error("kubesim"))?;
        net.forward(Netlab::SWITCH, API, sim.address())?;
        if !setup.without_ferrolb_objects {
            let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
            sim.create_from(&crds).map_err(fixture("CRDs"))?;
            sim.create_object(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
            )
            .map_err(fixture("namespace"))?;
        }
        let kubeconfig = net.path("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_with_token(API, None))
            .map_err(io_error("kubeconfig"))?;
        let members_key = net.path("members-key");
        std::fs::write(&members_key, "ferrolb-lab-gossip-key").map_err(io_error("members key"))?;

        net.add_host("client", "eth0", &["192.0.2.100/24", "2001:db8::100/64"])?;
        let mut nodes = Vec::new();
        for i in 1..=node_count {
            nodes.push(topology::add_node(&mut net, &sim, i, with_router)?);
        }
        let router = if with_router {
            Some(topology::add_router(&mut net, &nodes)?)
        } else {
            None
        };
        Ok(ClusterLab {
            net,
            sim,
            nodes,
            router,
            binaries,
            kubeconfig,
            members_key,
            controllers: BTreeMap::new(),
            next_node: node_count + 1,
        })
    }

    /// Adds node `node-N` (the next number) to the running lab: its namespace on the switch,
    /// routes, web server and Node object (the router has no session configured for it).
    /// Returns its index.
    pub fn add_node(&mut self) -> Result<usize, LabError> {
        let i = self.next_node;
        if i > 80 {
            return Err(LabError::Missing {
                what: "a free node number".into(),
                detail: "node addresses 192.0.2.11-90 are used up".into(),
            });
        }
        self.next_node += 1;
        let node = topology::add_node(&mut self.net, &self.sim, i, self.router.is_some())?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// Starts (or restarts) the speaker of node `index` (0-based).
    pub fn start_speaker(&mut self, index: usize) -> Result<u32, LabError> {
        self.start_speaker_with(index, &[])
    }

    /// Starts (or restarts) the speaker of node `index` with `extra` flags after the lab's own.
    pub fn start_speaker_with(&mut self, index: usize, extra: &[&str]) -> Result<u32, LabError> {
        let key = self.members_key.clone();
        self.spawn_speaker(index, &key, extra)
    }

    /// Starts (or restarts) the speaker of node `index` with the gossip key in file `key`
    /// (`--members-key-file`), instead of the one every other speaker has.
    pub fn start_speaker_with_key(&mut self, index: usize, key: &Path) -> Result<u32, LabError> {
        self.spawn_speaker(index, key, &[])
    }

    fn spawn_speaker(&mut self, index: usize, key: &Path, extra: &[&str]) -> Result<u32, LabError> {
        let node = self.node(index)?.clone();
        let speaker = self.binaries.speaker.to_string_lossy().into_owned();
        let key = key.to_string_lossy().into_owned();
        let metrics = format!("{}:7472", node.v4);
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let name = format!("speaker-{}", node.name);
        let log = self.fresh_log(&name);
        let mut args = vec![
            speaker.as_str(),
            "--node-name",
            node.name.as_str(),
            "--namespace",
            NAMESPACE,
            "--members-key-file",
            key.as_str(),
            "--metrics-addr",
            metrics.as_str(),
        ];
        args.extend_from_slice(extra);
        let (pod_name, pod_uid) = self.speaker_pod(&node.name)?;
        let envs = [
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,kube=warn"),
            ("POD_NAME", pod_name.as_str()),
            ("POD_UID", pod_uid.as_str()),
        ];
        let pid = self.net.spawn(&name, &node.role, &args, &envs, &log)?;
        if let Some(n) = self.nodes.get_mut(index) {
            n.speaker = Some(pid);
        }
        Ok(pid)
    }

    /// The log file for a new run of process `name` (`NAME.log`); the previous run's log, if
    /// any, is kept as `NAME.K.log` (K = 1, 2, ...).
    fn fresh_log(&self, name: &str) -> PathBuf {
        let log = self.net.path(&format!("{name}.log"));
        if log.exists() {
            let kept = (1..)
                .map(|k| self.net.path(&format!("{name}.{k}.log")))
                .find(|p| !p.exists());
            if let Some(kept) = kept {
                let _ = std::fs::rename(&log, kept);
            }
        }
        log
    }

    /// Starts every node's speaker.
    pub fn start_speakers(&mut self) -> Result<(), LabError> {
        for index in 0..self.nodes.len() {
            self.start_speaker(index)?;
        }
        Ok(())
    }

    /// Stops node `index`'s speaker with `signal` ("KILL" or "TERM") and waits for it to end.
    pub fn stop_speaker(&mut self, index: usize, signal: &str) -> Result<(), LabError> {
        let Some(pid) = self.nodes.get_mut(index).and_then(|n| n.speaker.take()) else {
            return Ok(());
        };
        self.net.signal(pid, signal)?;
        self.net.reap(pid);
        Ok(())
    }

    /// Starts the controller (in the switch namespace, reaching the API like the speakers),
    /// with the default flags.
    pub fn start_controller(&mut self) -> Result<u32, LabError> {
        let args = ["run", "--namespace", NAMESPACE];
        let kubeconfig = self.kubeconfig.clone();
        self.spawn_controller("controller", &args, &kubeconfig)
    }

    /// Starts a controller replica as `spec` says: leader election on, its own identity,
    /// kubeconfig (token) and metrics port, the webhook off.
    pub fn start_controller_as(&mut self, spec: &ControllerSpec) -> Result<u32, LabError> {
        let kubeconfig = self.net.path(&format!("kubeconfig-{}", spec.identity));
        let text = kubeconfig_with_token(API, Some(&spec.identity));
        std::fs::write(&kubeconfig, text).map_err(io_error("kubeconfig"))?;
        let lease = format!("{}s", spec.lease.as_secs_f64());
        let metrics = format!("127.0.0.1:{}", spec.metrics_port);
        let args = [
            "run",
            "--namespace",
            NAMESPACE,
            "--instance",
            spec.identity.as_str(),
            "--lease-identity",
            spec.identity.as_str(),
            "--lease-duration",
            lease.as_str(),
            "--metrics-addr",
            metrics.as_str(),
            "--disable-webhook",
        ];
        self.spawn_controller(&spec.identity, &args, &kubeconfig)
    }

    fn spawn_controller(
        &mut self,
        name: &str,
        args: &[&str],
        kubeconfig: &Path,
    ) -> Result<u32, LabError> {
        let Some(controller) = self.binaries.controller.clone() else {
            return Err(LabError::Missing {
                what: "the controller binary".into(),
                detail: "Binaries::controller is None".into(),
            });
        };
        let controller = controller.to_string_lossy().into_owned();
        let kubeconfig = kubeconfig.to_string_lossy().into_owned();
        let log = self.fresh_log(name);
        let mut full = vec![controller.as_str()];
        full.extend_from_slice(args);
        let envs = [
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,kube=warn"),
        ];
        let pid = self.net.spawn(name, Netlab::SWITCH, &full, &envs, &log)?;
        self.controllers.insert(name.to_owned(), pid);
        Ok(pid)
    }

    /// The PID of the running controller `identity`.
    pub fn controller_pid(&self, identity: &str) -> Option<u32> {
        self.controllers.get(identity).copied()
    }

    /// Stops controller `identity` with `signal` ("KILL" or "TERM") and waits for it to end.
    pub fn stop_controller(&mut self, identity: &str, signal: &str) -> Result<(), LabError> {
        let Some(pid) = self.controllers.remove(identity) else {
            return Ok(());
        };
        self.net.signal(pid, signal)?;
        self.net.reap(pid);
        Ok(())
    }

    /// Node `index`'s speaker log and the router's view of its BGP neighbours, for a failed
    /// assertion's message.
    pub fn speaker_and_router_logs(&self, index: usize) -> String {
        let router = self
            .router
            .as_ref()
            .map(|r| r.vty("show bgp neighbors").unwrap_or_default())
            .unwrap_or_default();
        let name = self
            .nodes
            .get(index)
            .map(|n| n.name.as_str())
            .unwrap_or("?");
        format!(
            "--- speaker-{name}\n{}\n--- router\n{router}",
            self.log(&format!("speaker-{name}"))
        )
    }

    /// The log of a started process (`speaker-node-1`, `controller`, `frr-router/bgpd`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.net.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Crashes node `index` (link down, speaker SIGKILLed) while a client probes `target` every
    /// 10 ms for `watch` (a measurement window, not a wait for a condition). Returns the probes
    /// (see [`probe::gap`]) and when it crashed.
    pub async fn crash_while_probing(
        &mut self,
        index: usize,
        target: SocketAddr,
        watch: Duration,
    ) -> Result<(Vec<probe::Probe>, std::time::Instant), LabError> {
        let client = self.net.ns("client");
        let prober = probe::Prober::start(
            &client,
            target,
            Duration::from_millis(10),
            Duration::from_millis(200),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let failure = std::time::Instant::now();
        self.cut_node(index)?;
        self.stop_speaker(index, "KILL")?;
        tokio::time::sleep(watch).await;
        Ok((prober.finish(), failure))
    }

    /// Brings a crashed node back (link up, speaker restarted) and waits until the IPs it ranks
    /// first for have moved back: every running speaker sees all running speakers alive, and
    /// every layer-2 IP announced before is announced by exactly one speaker, the same in two
    /// reads in a row.
    pub async fn recover_node(&mut self, index: usize) -> Result<(), LabError> {
        let before: Vec<IpAddr> = self.layer2_announcers().into_keys().collect();
        self.restore_node(index)?;
        self.start_speaker(index)?;
        let mut last = None;
        let settled = eventually(RECOVERY, Duration::from_millis(200), || {
            let now = self.settled_owners(&before);
            let is_stable = now.is_some() && now == last;
            last = now;
            is_stable.then_some(())
        })
        .await;
        settled.ok_or_else(|| LabError::Timeout {
            what: format!("node {index}'s speaker rejoins and the layer-2 IPs settle"),
            within: RECOVERY,
            last: format!("owners {:?}", self.layer2_announcers()),
        })
    }

    /// Node `index`, or an error naming it.
    fn node(&self, index: usize) -> Result<&LabNode, LabError> {
        self.nodes.get(index).ok_or_else(|| LabError::Missing {
            what: format!("node {index}"),
            detail: format!("the lab has {} nodes", self.nodes.len()),
        })
    }
}

/// A kubeconfig for a plain-HTTP API server; with `token`, the client sends it as its bearer
/// token (kubesim without RBAC checks none, but tells clients apart by it).
pub fn kubeconfig_with_token(server: SocketAddr, token: Option<&str>) -> String {
    let user = token.map_or_else(|| "{}".to_owned(), |t| format!("{{token: {t}}}"));
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: http://{server}\nusers:\n- name: lab\n  user: {user}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\n    namespace: default\ncurrent-context: lab\n"
    )
}

/// Maps a kubesim fixture error to a [`LabError`] naming what was being created.
fn fixture<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> LabError {
    move |e| LabError::Command {
        command: format!("kubesim fixture: {what}"),
        stderr: e.to_string(),
    }
}
