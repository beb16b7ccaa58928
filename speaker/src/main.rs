//! The `ferrolb-speaker` binary: flag parsing, logging and exit codes only.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ferrolb_proto::l2::ResponderConfig;
use ferrolb_speaker::daemon::writer::PodRef;
use ferrolb_speaker::daemon::{self, MembersSettings, Settings};
use ferrolb_speaker::http::{self, Health};
use ferrolb_speaker::interfaces::{InterfaceFilter, METALLB_EXCLUDED};
use ferrolb_speaker::members::Key;
use ferrolb_speaker::memory;
use ferrolb_speaker::metrics::Metrics;

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
    /// Without it, gossip is off and every Node not NotReady counts as alive.
    #[arg(long, env = "FERROLB_MEMBERS_KEY_FILE")]
    members_key_file: Option<PathBuf>,
    /// Address to gossip on (default: the Node's first InternalIP and --members-port).
    #[arg(long, env = "FERROLB_MEMBERS_BIND")]
    members_bind: Option<SocketAddr>,
    /// Gossip port of every speaker.
    #[arg(long, default_value_t = 7946)]
    members_port: u16,
    /// This node's addresses for BGP next hops (default: the Node's InternalIP/ExternalIP).
    #[arg(long = "node-address")]
    node_addresses: Vec<IpAddr>,
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
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
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
    let members = match &cli.members_key_file {
        None => None,
        Some(path) => {
            let key = std::fs::read(path)
                .with_context(|| format!("reading the gossip key {}", path.display()))?;
            let key = key.trim_ascii().to_vec();
            anyhow::ensure!(
                !key.is_empty(),
                "the gossip key file {} is empty",
                path.display()
            );
            Some(MembersSettings {
                bind: cli.members_bind,
                port: cli.members_port,
                key: Key::new(key),
            })
        }
    };
    Ok(Settings {
        node: cli.node_name.clone(),
        namespace: cli.namespace.clone(),
        lb_class: cli.lb_class.clone(),
        ignore_exclude_lb: cli.ignore_exclude_lb,
        interface_filter,
        members,
        node_addresses: cli.node_addresses.clone(),
        responder: ResponderConfig {
            fast_path: cli.l2_fast_path,
            ..ResponderConfig::default()
        },
        pod: cli
            .pod_name
            .clone()
            .zip(cli.pod_uid.clone())
            .map(|(name, uid)| PodRef { name, uid }),
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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
        let served = http::start(cli.metrics_addr, health)
            .await
            .with_context(|| format!("serving metrics on {}", cli.metrics_addr))?;
        let client = kube::Client::try_default()
            .await
            .context("connecting to the API server")?;
        tracing::info!(node = settings.node, namespace = settings.namespace, metrics = %served, "speaker starting");
        daemon::run(client, settings, metrics, ready, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
