//! The `ferrolb-controller` binary: flag parsing, logging and exit codes only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args, Parser, Subcommand};
use ferrolb_controller::lease::{self, LeaseSettings};
use ferrolb_controller::{Listeners, Settings, WebhookSettings};
use ferrolb_shell::logging::{self, LogFormat};
use ferrolb_shell::signal;
use tokio::net::TcpListener;

/// FerroLB controller: allocates external IPs to LoadBalancer Services.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the `run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Check FerroLB/MetalLB manifests offline. Exit 0: valid; 1: invalid; 2: unreadable input.
    Validate {
        /// The input is the whole configuration: a BFD profile, Secret, community alias, pool or
        /// peer it names but does not hold is an error (by default a warning, as it may be
        /// created later).
        #[arg(long)]
        strict: bool,
        /// Manifest files or directories (multi-document YAML or JSON).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the controller against the cluster of $KUBECONFIG (or the in-cluster service account).
    Run {
        /// Namespace holding FerroLB's configuration.
        #[arg(long, env = "FERROLB_NAMESPACE", default_value = "ferrolb-system")]
        namespace: String,
        /// Serve only Services with this loadBalancerClass (default: Services without a class).
        #[arg(long, env = "FERROLB_LB_CLASS")]
        lb_class: Option<String>,
        /// This replica's name, shown in Events.
        #[arg(long, env = "POD_NAME", default_value = "ferrolb-controller")]
        instance: String,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        #[command(flatten)]
        election: Election,
        #[command(flatten)]
        serving: Serving,
    },
}

/// Leader election flags.
#[derive(Debug, Args)]
struct Election {
    /// Elect a leader on a Lease so that only one replica writes (false: always lead).
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "ferrolb-controller")]
    lease_name: String,
    /// Namespace of the Lease (default: --namespace).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Lease duration: a standby takes over this long after the leader's last renewal
    /// (seconds, e.g. `15` or `1.5s`).
    #[arg(long, default_value = "15s", value_parser = parse_seconds)]
    lease_duration: Duration,
    /// This replica's holder identity (default: $POD_NAME, else the host name).
    #[arg(long)]
    lease_identity: Option<String>,
}

/// Endpoint flags: metrics/probes and the admission webhook.
#[derive(Debug, Args)]
struct Serving {
    /// Where `/metrics`, `/healthz` and `/readyz` are served (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
    /// Where the validating admission webhook is served (HTTPS).
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    /// Do not serve the admission webhook.
    #[arg(long)]
    disable_webhook: bool,
    /// A `kubernetes.io/tls` Secret in --namespace holding the webhook's tls.crt and tls.key.
    /// Without it a certificate is made at start and its CA written into the caBundle of
    /// --webhook-configuration.
    #[arg(long)]
    webhook_cert_secret: Option<String>,
    /// The Service in front of the webhook: the self-made certificate is valid for its DNS names.
    #[arg(long, default_value = "ferrolb-webhook-service")]
    webhook_service: String,
    /// Extra DNS names or IP addresses for the self-made certificate.
    #[arg(long)]
    webhook_host: Vec<String>,
    /// The ValidatingWebhookConfiguration whose caBundle gets the self-made CA.
    #[arg(long, default_value = "ferrolb-webhook-configuration")]
    webhook_configuration: String,
    /// How long the self-made CA and certificate live (`s`, `m`, `h` or `d`, e.g. `7d`); a new
    /// pair replaces them after two thirds of it.
    #[arg(long, default_value = "7d", value_parser = parse_lifetime)]
    webhook_ca_lifetime: Duration,
}

/// A lifetime with a unit: `90s`, `30m`, `12h`, `7d`.
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: give a unit, s, m, h or d (e.g. 7d)")),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number with a unit"))?;
    let seconds = number.saturating_mul(seconds_per);
    if seconds < 60 {
        return Err(format!("{text:?}: at least 1 minute"));
    }
    Ok(Duration::from_secs(seconds))
}

/// Seconds, with an optional `s` suffix.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let number = text.trim().trim_end_matches('s');
    let seconds: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds >= 1.0) {
        return Err(format!("{text:?}: at least 1 second"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { strict, paths } => {
            let options = ferrolb_controller::validate::Options { strict };
            let verdict =
                ferrolb_controller::validate::run(&paths, options, &mut std::io::stdout().lock())?;
            Ok(ExitCode::from(verdict as u8))
        }
        Command::Run {
            namespace,
            lb_class,
            instance,
            log_format,
            election,
            serving,
        } => {
            logging::init(log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let settings = settings(namespace, lb_class, instance, election, &serving);
            runtime.block_on(start(settings, serving))
        }
    }
}

/// The library's settings from the flags.
fn settings(
    namespace: String,
    lb_class: Option<String>,
    instance: String,
    election: Election,
    serving: &Serving,
) -> Settings {
    let lease = election.leader_elect.then(|| LeaseSettings {
        name: election.lease_name,
        namespace: election
            .lease_namespace
            .unwrap_or_else(|| namespace.clone()),
        identity: election
            .lease_identity
            .unwrap_or_else(lease::default_identity),
        duration: election.lease_duration,
    });
    Settings {
        namespace,
        lb_class,
        instance,
        election: lease,
        webhook: WebhookSettings {
            cert_secret: serving.webhook_cert_secret.clone(),
            service: serving.webhook_service.clone(),
            hosts: serving.webhook_host.clone(),
            configuration: serving.webhook_configuration.clone(),
            ca_lifetime: serving.webhook_ca_lifetime,
        },
    }
}

/// Connects, binds the listeners and runs the controller until SIGTERM/SIGINT.
async fn start(settings: Settings, serving: Serving) -> anyhow::Result<ExitCode> {
    let config = kube::Config::infer()
        .await
        .context("finding the API server (KUBECONFIG or in-cluster)")?;
    let client = kube::Client::try_from(ferrolb_controller::client::with_timeouts(config))
        .context("connecting to the API server")?;
    let metrics = TcpListener::bind(serving.metrics_addr)
        .await
        .with_context(|| format!("binding {}", serving.metrics_addr))?;
    let webhook = match serving.disable_webhook {
        true => None,
        false => Some(
            TcpListener::bind(serving.webhook_addr)
                .await
                .with_context(|| format!("binding {}", serving.webhook_addr))?,
        ),
    };
    let listeners = Listeners {
        metrics: Some(metrics),
        webhook,
    };
    ferrolb_controller::run(settings, client, listeners, signal::shutdown()).await?;
    Ok(ExitCode::SUCCESS)
}
