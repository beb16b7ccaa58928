//! A whole FerroLB cluster on one machine: kubesim as the API server, node namespaces on a
//! switch running the real `ferrolb-speaker`, a client on the same segment, and optionally an
//! FRR router with a client behind it. The speaker's end-to-end tests and the `ferrolb-lab`
//! demo both build on it.
//!
//! ```text
//!   kubesim (127.0.0.1, in the test) ◄── forward ── 192.0.2.1:6443 on the switch
//!   switch br0 ── node-1..N  eth0 192.0.2.1N, 2001:db8::1N  (speaker, HTTP server on :8080)
//!              ── client     eth0 192.0.2.100, 2001:db8::100
//!              ── router     eth0 192.0.2.254 ── eth1 198.51.100.1 ── outside 198.51.100.2
//! ```
//! Nodes accept traffic for every pool address (AnyIP `local` routes on `lo`, as kube-proxy's
//! DNAT would), with `arp_ignore=1` so the kernel never answers ARP for them: FerroLB does.

pub mod probe;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::kubesim::KubeSim;
use crate::netlab::frr::Frr;
use crate::netlab::{LabError, Netlab, io_error};

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
    /// The namespaces and processes (dropped last: after the API server).
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
    controller: Option<u32>,
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
        let mut net = Netlab::new(tag)?;
        net.address_switch(&["192.0.2.1/24"])?;
        let sim = KubeSim::start().await.map_err(io_error("kubesim"))?;
        net.forward(Netlab::SWITCH, API, sim.address())?;
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        sim.create_from(&crds).map_err(fixture("CRDs"))?;
        sim.create_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        )
        .map_err(fixture("namespace"))?;
        let kubeconfig = net.path("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(API)).map_err(io_error("kubeconfig"))?;
        let members_key = net.path("members-key");
        std::fs::write(&members_key, "ferrolb-lab-gossip-key").map_err(io_error("members key"))?;

        net.add_host("client", "eth0", &["192.0.2.100/24", "2001:db8::100/64"])?;
        let mut nodes = Vec::new();
        for i in 1..=node_count {
            let node = add_node(&mut net, &sim, i, with_router)?;
            nodes.push(node);
        }
        let router = if with_router {
            Some(add_router(&mut net, &nodes)?)
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
            controller: None,
        })
    }

    /// Starts (or restarts) the speaker of node `index` (0-based).
    pub fn start_speaker(&mut self, index: usize) -> Result<u32, LabError> {
        let node = self
            .nodes
            .get(index)
            .cloned()
            .ok_or_else(|| LabError::Command {
                command: "start_speaker".into(),
                stderr: format!("no node {index}"),
            })?;
        let speaker = self.binaries.speaker.to_string_lossy().into_owned();
        let key = self.members_key.to_string_lossy().into_owned();
        let metrics = format!("{}:7472", node.v4);
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let log = self.net.path(&format!("speaker-{}.log", node.name));
        let args = [
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
        let (pod_name, pod_uid) = self.speaker_pod(&node.name)?;
        let envs = [
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,kube=warn"),
            ("POD_NAME", pod_name.as_str()),
            ("POD_UID", pod_uid.as_str()),
        ];
        let pid = self.net.spawn(
            &format!("speaker-{}", node.name),
            &node.role,
            &args,
            &envs,
            &log,
        )?;
        if let Some(n) = self.nodes.get_mut(index) {
            n.speaker = Some(pid);
        }
        Ok(pid)
    }

    /// The Pod object node `node`'s speaker runs "in" (created once, kept across restarts like a
    /// container restart): its name and UID, which the speaker puts in its objects' ownerRefs.
    pub fn speaker_pod(&self, node: &str) -> Result<(String, String), LabError> {
        let name = format!("ferrolb-speaker-{node}");
        let existing = self
            .sim
            .get_object("v1", "Pod", Some(NAMESPACE), &name)
            .ok()
            .flatten();
        let pod = match existing {
            Some(pod) => pod,
            None => self
                .sim
                .create_object(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"nodeName": node, "containers": [{"name": "speaker", "image": "ferrolb-speaker"}]}
                }))
                .map_err(fixture("speaker Pod"))?,
        };
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((name, uid))
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

    /// Starts the controller (in the switch namespace, reaching the API like the speakers).
    pub fn start_controller(&mut self) -> Result<u32, LabError> {
        let Some(controller) = self.binaries.controller.clone() else {
            return Err(LabError::Command {
                command: "start_controller".into(),
                stderr: "no controller binary given".into(),
            });
        };
        let controller = controller.to_string_lossy().into_owned();
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let log = self.net.path("controller.log");
        let args = [controller.as_str(), "run", "--namespace", NAMESPACE];
        let envs = [
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,kube=warn"),
        ];
        let pid = self
            .net
            .spawn("controller", Netlab::SWITCH, &args, &envs, &log)?;
        self.controller = Some(pid);
        Ok(pid)
    }

    /// The log of a started process (`speaker-node-1`, `controller`, `frr-router/bgpd`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.net.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Creates an object through kubesim's fixture path.
    pub fn create(&self, object: Value) -> Result<(), LabError> {
        self.sim
            .create_object(object)
            .map(|_| ())
            .map_err(fixture("object"))
    }

    /// The IP pool, L2 and BGP configuration of the lab: pool `l2` with an L2Advertisement
    /// naming `eth0` (MetalLB skips veth-like names by default; ours are called eth0 anyway),
    /// and pool `bgp` with a BGPPeer to the router and a BGPAdvertisement.
    pub fn apply_standard_config(&self) -> Result<(), LabError> {
        let object = |kind: &str, name: &str, spec: Value| {
            let version = if kind == "BGPPeer" {
                "metallb.io/v1beta2"
            } else {
                "metallb.io/v1beta1"
            };
            json!({"apiVersion": version, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
        };
        self.create(object("IPAddressPool", "l2", json!({"addresses": L2_POOL})))?;
        self.create(object(
            "L2Advertisement",
            "l2",
            json!({"ipAddressPools": ["l2"], "interfaces": ["eth0"]}),
        ))?;
        self.create(object(
            "IPAddressPool",
            "bgp",
            json!({"addresses": BGP_POOL}),
        ))?;
        self.create(object(
            "BGPPeer",
            "router",
            json!({"myASN": NODE_AS, "peerASN": ROUTER_AS, "peerAddress": ROUTER_V4.to_string(), "holdTime": "9s",
                    "dualStackAddressFamily": true, "enableGracefulRestart": true}),
        ))?;
        self.create(object(
            "BGPAdvertisement",
            "bgp",
            json!({"ipAddressPools": ["bgp"], "communities": ["64512:100"]}),
        ))?;
        Ok(())
    }

    /// Creates a LoadBalancer Service `default/NAME` with endpoints on `endpoint_nodes`; with
    /// `ips`, also writes its status as the controller would.
    pub async fn create_service(
        &self,
        name: &str,
        annotations: Value,
        local: bool,
        endpoint_nodes: &[usize],
        ips: &[IpAddr],
    ) -> Result<(), kube::Error> {
        let client = self.sim.client();
        let policy = if local { "Local" } else { "Cluster" };
        let service: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                     "ports": [{"port": HTTP_PORT, "protocol": "TCP"}], "selector": {"app": name}}
        }))
        .map_err(kube::Error::SerdeError)?;
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        services.create(&PostParams::default(), &service).await?;
        self.set_endpoints(name, endpoint_nodes).await?;
        if !ips.is_empty() {
            self.set_ingress(name, ips).await?;
        }
        Ok(())
    }

    /// Writes `status.loadBalancer.ingress` of `default/NAME`.
    pub async fn set_ingress(&self, name: &str, ips: &[IpAddr]) -> Result<(), kube::Error> {
        let services: Api<Service> = Api::namespaced(self.sim.client(), "default");
        let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        services
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    /// Replaces the EndpointSlice of `default/NAME`: one ready endpoint on each given node.
    pub async fn set_endpoints(&self, name: &str, nodes: &[usize]) -> Result<(), kube::Error> {
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        let endpoints: Vec<Value> = nodes
            .iter()
            .filter_map(|i| self.nodes.get(*i))
            .enumerate()
            .map(|(k, n)| json!({"addresses": [format!("10.244.{}.{}", k + 1, k + 10)], "nodeName": n.name, "conditions": {"ready": true}}))
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-lab"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]
        }))
        .map_err(kube::Error::SerdeError)?;
        let api: Api<EndpointSlice> = Api::namespaced(self.sim.client(), "default");
        let params = PatchParams::apply("ferrolb-lab").force();
        api.patch(&format!("{name}-lab"), &params, &Patch::Apply(&slice))
            .await
            .map(|_| ())
    }

    /// The MAC that answers ARP for `ip` from the client (`arping -c 1`), if any.
    pub fn arp_owner(&self, ip: Ipv4Addr) -> Option<String> {
        let ip = ip.to_string();
        let out = self
            .net
            .exec(
                "client",
                &["arping", "-c", "1", "-w", "1", "-I", "eth0", ip.as_str()],
            )
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        text.lines()
            .filter(|l| l.contains("from"))
            .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '[' || c == ']'))
            .find(|w| w.len() == 17 && w.matches(':').count() == 5)
            .map(str::to_owned)
    }

    /// The MAC that answers a neighbour solicitation for `ip` from the client (`ndisc6`).
    pub fn ndp_owner(&self, ip: Ipv6Addr) -> Option<String> {
        let ip = ip.to_string();
        let out = self
            .net
            .exec(
                "client",
                &["ndisc6", "-1", "-r", "1", "-w", "500", ip.as_str(), "eth0"],
            )
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        text.split_whitespace()
            .find(|w| w.len() == 17 && w.matches(':').count() == 5)
            .map(str::to_owned)
    }

    /// The node whose `eth0` or `eth1` has `mac`.
    pub fn node_with_mac(&self, mac: &str) -> Option<&LabNode> {
        self.nodes.iter().find(|n| {
            n.mac.eq_ignore_ascii_case(mac)
                || n.mac2
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        })
    }

    /// Plugs a second interface `eth1` (no address) of every node into the switch, for
    /// announcements apart from the interface the node gossips and talks to the API on. Call
    /// before starting the speakers.
    pub fn add_second_nics(&mut self) -> Result<(), LabError> {
        let sw = self.net.ns(Netlab::SWITCH);
        for node in &mut self.nodes {
            let ns = self.net.ns(&node.role);
            let port = format!("q-{}", node.role);
            crate::netlab::must(&[
                "ip", "link", "add", "eth1", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ])?;
            crate::netlab::must(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            crate::netlab::must(&["ip", "-n", &ns, "link", "set", "eth1", "up"])?;
            node.mac2 = Some(self.net.mac(&node.role, "eth1")?);
        }
        Ok(())
    }

    /// Takes carrier away from (or gives it back to) node `index`'s `eth1`, by setting its
    /// switch port down (or up): the node sees NO-CARRIER, as with a pulled cable.
    pub fn set_second_nic_carrier(&self, index: usize, carrier: bool) -> Result<(), LabError> {
        let role = self.node_role(index)?;
        let state = if carrier { "up" } else { "down" };
        crate::netlab::must(&[
            "ip",
            "-n",
            &self.net.ns(Netlab::SWITCH),
            "link",
            "set",
            &format!("q-{role}"),
            state,
        ])
        .map(|_| ())
    }

    /// An HTTP GET from host `role` to the Service at `ip`; the body is the serving node's name.
    pub fn http_get(&self, role: &str, ip: IpAddr) -> Option<String> {
        let url = match ip {
            IpAddr::V4(ip) => format!("http://{ip}:{HTTP_PORT}/"),
            IpAddr::V6(ip) => format!("http://[{ip}]:{HTTP_PORT}/"),
        };
        let out = self
            .net
            .exec(role, &["curl", "-s", "--max-time", "2", url.as_str()])
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Makes node `index` vanish from the network, as a crashed machine would: its link goes
    /// down (its speaker, if still running, can neither gossip nor answer).
    pub fn cut_node(&self, index: usize) -> Result<(), LabError> {
        let role = self.node_role(index)?;
        self.net
            .exec_ok(&role, &["ip", "link", "set", "eth0", "down"])
            .map(|_| ())
    }

    /// Crashes node `index` (link down, speaker SIGKILLed) while a client probes `target` every
    /// 10 ms, and watches for `watch`. Returns the probes (see [`probe::gap`]) and when it
    /// crashed.
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

    /// Brings a crashed node back (link up, speaker restarted) and lets the IPs it ranks first
    /// for move back to it.
    pub async fn recover_node(&mut self, index: usize) -> Result<(), LabError> {
        self.restore_node(index)?;
        self.start_speaker(index)?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        Ok(())
    }

    /// Brings node `index`'s link back.
    pub fn restore_node(&self, index: usize) -> Result<(), LabError> {
        let role = self.node_role(index)?;
        self.net
            .exec_ok(&role, &["ip", "link", "set", "eth0", "up"])
            .map(|_| ())
    }

    fn node_role(&self, index: usize) -> Result<String, LabError> {
        self.nodes
            .get(index)
            .map(|n| n.role.clone())
            .ok_or_else(|| LabError::Command {
                command: "node".into(),
                stderr: format!("no node {index}"),
            })
    }

    /// Resident memory of node `index`'s speaker: (VmRSS, VmHWM) in KiB.
    pub fn speaker_memory_kib(&self, index: usize) -> Option<(u64, u64)> {
        let pid = self.nodes.get(index)?.speaker?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// The value of one sample in the `/metrics` text of node `index`'s speaker: `series` is the
    /// metric name with its labels exactly as rendered (`name{a="x",b="y"}`).
    pub fn speaker_metric(&self, index: usize, series: &str) -> Option<f64> {
        self.speaker_metrics(index)?
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    /// The `/metrics` text of node `index`'s speaker.
    pub fn speaker_metrics(&self, index: usize) -> Option<String> {
        let node = self.nodes.get(index)?;
        let url = format!("http://{}:7472/metrics", node.v4);
        let out = self
            .net
            .exec(&node.role, &["curl", "-s", "-m", "2", url.as_str()])
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// CPU time (user + system) the speaker of node `index` has used so far.
    pub fn speaker_cpu(&self, index: usize) -> Option<Duration> {
        let pid = self.nodes.get(index)?.speaker?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // utime and stime are fields 14 and 15; the command before them may contain spaces.
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 2..)?
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions and only reads a constant.
        #[allow(unsafe_code)]
        let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
        Some(Duration::from_millis(ticks * 1000 / per_second.max(1)))
    }

    /// The router's kernel route to `prefix` (`ip route show PREFIX`), empty when it has none.
    pub fn router_route(&self, prefix: &str) -> String {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        self.net
            .exec("router", &["ip", family, "route", "show", prefix])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }
}

fn add_node(
    net: &mut Netlab,
    sim: &KubeSim,
    i: u8,
    with_router: bool,
) -> Result<LabNode, LabError> {
    let role = format!("node-{i}");
    let v4 = Ipv4Addr::new(192, 0, 2, 10 + i);
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 + u16::from(i));
    net.add_host(&role, "eth0", &[&format!("{v4}/24"), &format!("{v6}/64")])?;
    for sysctl in [
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.all.arp_announce=2",
    ] {
        net.exec_ok(&role, &["sysctl", "-qw", sysctl])?;
    }
    for pool in ["192.0.2.192/27", "203.0.113.0/28"] {
        net.exec_ok(
            &role,
            &[
                "ip", "route", "add", "local", pool, "dev", "lo", "table", "local",
            ],
        )?;
    }
    for pool in ["2001:db8::200/119", "2001:db8:100::/124"] {
        net.exec_ok(
            &role,
            &[
                "ip", "-6", "route", "add", "local", pool, "dev", "lo", "table", "local",
            ],
        )?;
    }
    if with_router {
        net.exec_ok(
            &role,
            &[
                "ip",
                "route",
                "add",
                "198.51.100.0/24",
                "via",
                &ROUTER_V4.to_string(),
            ],
        )?;
        net.exec_ok(
            &role,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:ff::/64",
                "via",
                "2001:db8::254",
            ],
        )?;
    }
    let www = net.path(&format!("www-{role}"));
    std::fs::create_dir_all(&www).map_err(io_error("www"))?;
    std::fs::write(www.join("index.html"), format!("node-{i}\n"))
        .map_err(io_error("index.html"))?;
    let www = www.to_string_lossy().into_owned();
    let log = net.path(&format!("http-{role}.log"));
    net.spawn(
        &format!("http-{role}"),
        &role,
        &[
            "python3",
            "-m",
            "http.server",
            "--bind",
            "::",
            "--directory",
            www.as_str(),
            &HTTP_PORT.to_string(),
        ],
        &[],
        &log,
    )?;
    let name = format!("node-{i}");
    sim.create_object(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": v4.to_string()},
                          {"type": "InternalIP", "address": v6.to_string()},
                          {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .map_err(fixture("node"))?;
    let mac = net.mac(&role, "eth0")?;
    Ok(LabNode {
        name,
        role,
        v4,
        v6,
        mac,
        mac2: None,
        speaker: None,
    })
}

fn add_router(net: &mut Netlab, nodes: &[LabNode]) -> Result<Frr, LabError> {
    net.add_host("router", "eth0", &["192.0.2.254/24", "2001:db8::254/64"])?;
    net.add_isolated_host("outside")?;
    net.link(
        ("router", "eth1", &["198.51.100.1/24", "2001:db8:ff::1/64"]),
        ("outside", "eth0", &["198.51.100.2/24", "2001:db8:ff::2/64"]),
    )?;
    net.exec_ok(
        "outside",
        &["ip", "route", "add", "default", "via", "198.51.100.1"],
    )?;
    net.exec_ok(
        "outside",
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:ff::1",
        ],
    )?;
    for sysctl in [
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.fib_multipath_hash_policy=1",
    ] {
        net.exec_ok("router", &["sysctl", "-qw", sysctl])?;
    }
    let mut conf = String::from("hostname router\nlog stdout\n!\nbgp route-map delay-timer 0\n");
    conf += "route-map ACCEPT permit 10\n!\n";
    conf += &format!(
        "router bgp {ROUTER_AS}\n bgp router-id {ROUTER_V4}\n no bgp default ipv4-unicast\n bgp graceful-restart\n"
    );
    for node in nodes {
        conf += &format!(
            " neighbor {} remote-as {NODE_AS}\n neighbor {} timers connect 1\n",
            node.v4, node.v4
        );
    }
    // IPv4 and IPv6 routes over the IPv4 sessions (BGPPeer dualStackAddressFamily).
    for family in ["ipv4", "ipv6"] {
        conf += &format!(" address-family {family} unicast\n  maximum-paths 8\n");
        for node in nodes {
            conf += &format!(
                "  neighbor {} activate\n  neighbor {} route-map ACCEPT in\n",
                node.v4, node.v4
            );
        }
        conf += " exit-address-family\n";
    }
    conf += "!\n";
    Frr::start(net, "router", &conf)
}

/// A kubeconfig for a plain-HTTP API server without credentials.
pub fn kubeconfig_text(server: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: http://{server}\nusers:\n- name: lab\n  user: {{}}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\n    namespace: default\ncurrent-context: lab\n"
    )
}

fn fixture<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> LabError {
    move |e| LabError::Command {
        command: format!("kubesim fixture: {what}"),
        stderr: e.to_string(),
    }
}

/// Waits up to `within` for `check` to return `Some`, polling every `every`.
pub async fn eventually<T>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// [`eventually`] with an async check.
pub async fn eventually_async<T, F, Fut>(
    within: Duration,
    every: Duration,
    mut check: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}
