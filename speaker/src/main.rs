//! The `ferrolb-speaker` binary: flag parsing, logging and exit codes only.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferrolb_proto::bfd::DriverConfig;
use ferrolb_proto::l2::ResponderConfig;
use ferrolb_shell::http::Limits;
use ferrolb_shell::http::probes::serve_probes;
use ferrolb_shell::logging::{self, LogFormat};
use ferrolb_shell::signal;
use ferrolb_speaker::apply::stop::StopPolicy;
use ferrolb_speaker::daemon::writer::PodRef;
use ferrolb_speaker::daemon::{self, BgpSettings, MembersSettings, Settings};
use ferrolb_speaker::http::Health;
use ferrolb_speaker::interfaces::{InterfaceFilter, METALLB_EXCLUDED};
use ferrolb_speaker::liveness::QuorumRule;
use ferrolb_speaker::members::{Keys, keys};
use ferrolb_speaker::memory;
use ferrolb_speaker::metrics::Metrics;
use tokio::net::TcpListener;

/// FerroLB speaker: answers ARP/NDP and holds BGP sessions for Service IPs on this node.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// This node's name (the Node object's name).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Namespace holding FerroLB's configuration and status objects.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = "ferrolb-system")]
    namespace: String,
    /// Serve only Services with this loadBalancerClass (default: Services without a class).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers too.
    #[arg(long)]
    ignore_exclude_lb: bool,
    /// Regular expressions of interface names never announced on unless an L2Advertisement
    /// names them (default: MetalLB's list; pass an empty string for none).
    #[arg(long, value_delimiter = ',')]
    exclude_interfaces: Option<Vec<String>>,
    /// File holding the gossip key shared by every speaker (MetalLB's memberlist `secretkey`).
    /// Without it (or --members-key-dir), gossip is off: every Node not NotReady counts as
    /// alive, so a failed node's IPs move only once its Node turns NotReady (about 40 s), and
    /// nothing guards against a network partition (two nodes may answer one IP).
    #[arg(
        long,
        env = "FERROLB_MEMBERS_KEY_FILE",
        conflicts_with = "members_key_dir"
    )]
    members_key_file: Option<PathBuf>,
    /// Directory of gossip keys (the memberlist Secret mounted as a volume): `secretkey` is the
    /// primary key, which signs; every other file is a key also accepted. Rotate a key in three
    /// steps, each rolled out to every speaker before the next: add the new key as another
    /// file; make it `secretkey` and keep the old one as another file; remove the old one.
    #[arg(long, env = "FERROLB_MEMBERS_KEY_DIR")]
    members_key_dir: Option<PathBuf>,
    /// Address to gossip on (default: the Node's first InternalIP and --members-port).
    #[arg(long, env = "FERROLB_MEMBERS_BIND")]
    members_bind: Option<SocketAddr>,
    /// Gossip port of every speaker.
    #[arg(long, default_value_t = 7946)]
    members_port: u16,
    /// `majority`: a speaker whose gossip shows no majority of the speakers answers for no L2
    /// IP, so a partition never makes two nodes answer for one. `off`: availability first
    /// (for two-node clusters, where losing the node with the lowest name otherwise stops L2
    /// until its speaker restarts or its Node turns NotReady); a partition can then split.
    #[arg(long, value_enum, default_value_t = QuorumRule::Majority)]
    members_quorum: QuorumRule,
    /// This node's addresses for BGP next hops (default: the Node's InternalIP/ExternalIP).
    #[arg(long = "node-address")]
    node_addresses: Vec<IpAddr>,
    /// The L2 responder (in the kernel and on the sockets) stops answering this long after the
    /// gossip task last showed the speaker alive (it runs and hears the others), so a frozen or
    /// cut-off speaker falls silent before the others take its IPs over (they declare it dead
    /// after 350–550 ms, never under ~250 ms). At most 120: a cut-off speaker is silent after
    /// twice this. 0: never.
    #[arg(long, env = "FERROLB_L2_HEARTBEAT_TIMEOUT_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=120))]
    l2_heartbeat_timeout_ms: u64,
    /// Answer ARP and NDP in the kernel's receive path (a TCX program; needs Linux 6.6+,
    /// CAP_BPF and CAP_NET_ADMIN, else the raw sockets answer alone, with a warning).
    #[arg(long, env = "FERROLB_L2_FAST_PATH", default_value_t = true, action = clap::ArgAction::Set)]
    l2_fast_path: bool,
    /// The speaker's Pod name (downward API), owner of the status objects it writes.
    #[arg(long, env = "POD_NAME", requires = "pod_uid")]
    pod_name: Option<String>,
    /// The speaker's Pod UID (downward API), see --pod-name.
    #[arg(long, env = "POD_UID", requires = "pod_name")]
    pod_uid: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (repeat for several addresses).
    /// Default: this node's IP (--host-ip) and 127.0.0.1, on --metrics-port: the speaker runs
    /// on the host network, where every other address may face networks nobody should scrape
    /// from.
    #[arg(long)]
    metrics_addr: Vec<SocketAddr>,
    /// Port of the default --metrics-addr.
    #[arg(long, default_value_t = 7472)]
    metrics_port: u16,
    /// This node's IP (downward API `status.hostIP`), where metrics are served by default.
    #[arg(long, env = "HOST_IP")]
    host_ip: Option<IpAddr>,
    /// GTSM (RFC 5082) on every directly connected eBGP session: we send with TTL 255 and
    /// accept nothing below 255, so a spoofed packet from farther away cannot reach the
    /// session. The routers must do the same (FRR: `neighbor X ttl-security hops 1`; BIRD:
    /// `ttl security on`), or those sessions never come up. Multihop and iBGP sessions are
    /// left alone.
    #[arg(long, env = "FERROLB_BGP_GTSM")]
    bgp_gtsm: bool,
    /// The most prefixes per family a BGP peer may send us before the session is closed with
    /// Cease / Maximum Number of Prefixes Reached (RFC 4486). Default: no limit — the speaker
    /// only advertises, counts what it receives and stores none of it.
    #[arg(long, env = "FERROLB_BGP_MAX_PREFIXES",
          value_parser = clap::value_parser!(u32).range(1..))]
    bgp_max_prefixes: Option<u32>,
    /// What SIGTERM does to the BGP sessions. `restart`: close them as before a restart, so
    /// routers with graceful restart keep our routes (stale) until the next speaker is up — no
    /// lost traffic over a DaemonSet rollout, but a blackhole for up to the restart time (120 s)
    /// if the node is going away. `withdraw`: close them for good, routers drop our routes at
    /// once. `auto`: withdraw when this node's Node is cordoned (unschedulable), NotReady,
    /// being deleted or gone, labelled node.kubernetes.io/exclude-from-external-load-balancers,
    /// or tainted for removal by the cluster autoscaler or Karpenter; restart otherwise.
    #[arg(long, env = "FERROLB_BGP_STOP_ON_SIGTERM", value_enum, default_value_t = StopPolicy::Auto)]
    bgp_stop_on_sigterm: StopPolicy,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Where the probe endpoints listen: the flags' addresses, else this node's IP and loopback.
fn metrics_addresses(cli: &Cli) -> Vec<SocketAddr> {
    if !cli.metrics_addr.is_empty() {
        return cli.metrics_addr.clone();
    }
    let port = cli.metrics_port;
    match cli.host_ip {
        Some(ip) if !ip.is_loopback() => vec![
            SocketAddr::new(ip, port),
            SocketAddr::from(([127, 0, 0, 1], port)),
        ],
        _ => {
            tracing::warn!(
                "no --host-ip (HOST_IP): serving metrics on every address of the host network"
            );
            vec![SocketAddr::from(([0, 0, 0, 0], port))]
        }
    }
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let interface_filter = match &cli.exclude_interfaces {
        None => InterfaceFilter::metallb_defaults(),
        Some(patterns) => {
            let patterns: Vec<&String> = patterns.iter().filter(|p| !p.is_empty()).collect();
            InterfaceFilter::new(&patterns).context("--exclude-interfaces")?
        }
    };
    let keys = match (&cli.members_key_file, &cli.members_key_dir) {
        (Some(file), _) => Some(Keys::from(keys::read_key_file(file)?)),
        (None, Some(dir)) => Some(keys::read_key_dir(dir)?),
        (None, None) => None,
    };
    let members = keys.map(|keys| MembersSettings {
        bind: cli.members_bind,
        port: cli.members_port,
        keys,
    });
    let heartbeat_timeout = (cli.l2_heartbeat_timeout_ms > 0)
        .then(|| Duration::from_millis(cli.l2_heartbeat_timeout_ms));
    Ok(Settings {
        node: cli.node_name.clone(),
        namespace: cli.namespace.clone(),
        lb_class: cli.lb_class.clone(),
        ignore_exclude_lb: cli.ignore_exclude_lb,
        interface_filter,
        members,
        quorum_rule: cli.members_quorum,
        node_addresses: cli.node_addresses.clone(),
        responder: ResponderConfig {
            fast_path: cli.l2_fast_path,
            heartbeat_timeout,
            ..ResponderConfig::default()
        },
        pod: cli
            .pod_name
            .clone()
            .zip(cli.pod_uid.clone())
            .map(|(name, uid)| PodRef { name, uid }),
        bgp: BgpSettings {
            gtsm: cli.bgp_gtsm,
            max_prefixes: cli.bgp_max_prefixes,
            stop_policy: cli.bgp_stop_on_sigterm,
        },
        bfd: DriverConfig::default(),
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let settings = settings(&cli)?;
    tracing::debug!(default_exclusions = ?METALLB_EXCLUDED, "interface exclusions");
    memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let metrics = Metrics::new().context("registering metrics")?;
        let ready = Arc::new(AtomicBool::new(false));
        let health = Health {
            ready: ready.clone(),
            metrics: metrics.clone(),
        };
        let health: Arc<Health> = Arc::new(health);
        let mut served = Vec::new();
        for addr in metrics_addresses(&cli) {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("serving metrics on {addr}"))?;
            served.push(listener.local_addr()?);
            tokio::spawn(serve_probes(listener, Limits::default(), health.clone()));
        }
        let client = kube::Client::try_default()
            .await
            .context("connecting to the API server")?;
        tracing::info!(node = settings.node, namespace = settings.namespace, metrics = ?served, "speaker starting");
        daemon::run(client, settings, metrics, ready, signal::shutdown()).await?;
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec!["ferrolb-speaker", "--node-name", "n"];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args)
    }

    #[test]
    fn bgp_flags_default_to_off_and_auto() {
        let cli = parse(&[]).expect("flags");
        let bgp = settings(&cli).expect("settings").bgp;
        assert!(!bgp.gtsm);
        assert_eq!(bgp.max_prefixes, None);
        assert_eq!(bgp.stop_policy, StopPolicy::Auto);
    }

    #[test]
    fn bgp_flags_reach_the_settings() {
        let cli = parse(&[
            "--bgp-gtsm",
            "--bgp-max-prefixes",
            "1000",
            "--bgp-stop-on-sigterm=withdraw",
        ])
        .expect("flags");
        let bgp = settings(&cli).expect("settings").bgp;
        assert!(bgp.gtsm);
        assert_eq!(bgp.max_prefixes, Some(1000));
        assert_eq!(bgp.stop_policy, StopPolicy::Withdraw);
    }

    #[test]
    fn a_zero_prefix_limit_and_an_unknown_stop_policy_are_refused() {
        assert!(parse(&["--bgp-max-prefixes", "0"]).is_err());
        let error = parse(&["--bgp-stop-on-sigterm", "drain"]).expect_err("refused");
        assert!(error.to_string().contains("restart"), "{error}");
    }
}
