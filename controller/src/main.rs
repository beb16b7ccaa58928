//! The `ferrolb-controller` binary: flag parsing, logging and exit codes only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use ferrolb_controller::lease::{self, LeaseSettings};
use ferrolb_controller::metrics::{Health, Metrics};
use ferrolb_controller::reconcile::{self, Settings, Shared};
use ferrolb_controller::{certs, http, webhook};
use tokio::net::TcpListener;
use tokio::sync::watch;

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
            init_logging(log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(
                Settings {
                    namespace,
                    lb_class,
                    instance,
                },
                election,
                serving,
            ))
        }
    }
}

/// Starts the endpoints and the elector, runs the reconciler until SIGTERM/SIGINT, then
/// releases the Lease once nothing writes any more.
async fn run(settings: Settings, election: Election, serving: Serving) -> anyhow::Result<ExitCode> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the API server")?;
    tracing::info!(namespace = settings.namespace, lb_class = ?settings.lb_class, "controller starting");
    let metrics = Arc::new(Metrics::new()?);
    let health = Arc::new(Health::default());

    let probes = TcpListener::bind(serving.metrics_addr)
        .await
        .with_context(|| format!("binding {}", serving.metrics_addr))?;
    tracing::info!(address = %probes.local_addr()?, "serving /metrics, /healthz, /readyz");
    tokio::spawn(http::serve_probes(
        probes,
        Arc::clone(&metrics),
        Arc::clone(&health),
    ));

    if !serving.disable_webhook {
        let certificate = match &serving.webhook_cert_secret {
            Some(secret) => certs::from_secret(client.clone(), &settings.namespace, secret).await?,
            None => {
                let mut names = certs::service_names(&serving.webhook_service, &settings.namespace);
                names.extend(serving.webhook_host.iter().cloned());
                certs::generate(names)?
            }
        };
        let acceptor = certs::acceptor(&certificate)?;
        let listener = TcpListener::bind(serving.webhook_addr)
            .await
            .with_context(|| format!("binding {}", serving.webhook_addr))?;
        tracing::info!(address = %listener.local_addr()?, "serving the admission webhook");
        let context = webhook::Context {
            client: client.clone(),
            namespace: settings.namespace.clone(),
        };
        tokio::spawn(webhook::serve(listener, acceptor, context));
        if let Some(ca) = certificate.ca_pem {
            tokio::spawn(certs::keep_ca_bundle(
                client.clone(),
                serving.webhook_configuration.clone(),
                ca,
            ));
        }
    }

    let (leading_tx, leading) = watch::channel(!election.leader_elect);
    health.set_leading(!election.leader_elect);
    metrics.leader.set(i64::from(!election.leader_elect));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut elector = None;
    let mut always_leading = None;
    if election.leader_elect {
        let lease_settings = LeaseSettings {
            name: election.lease_name,
            namespace: election
                .lease_namespace
                .unwrap_or_else(|| settings.namespace.clone()),
            identity: election
                .lease_identity
                .unwrap_or_else(lease::default_identity),
            duration: election.lease_duration,
        };
        tracing::info!(
            identity = lease_settings.identity,
            lease = lease_settings.name,
            "leader election on"
        );
        let api = kube::Api::namespaced(client.clone(), &lease_settings.namespace);
        let stop = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        elector = Some(tokio::spawn(lease::run(
            api,
            lease_settings,
            leading_tx,
            stop,
        )));
    } else {
        // Kept open: a closed channel tells the reconciler to stop.
        always_leading = Some(leading_tx);
    }

    let shared = Shared {
        metrics,
        health,
        leading,
    };
    reconcile::run(client, settings, shared, shutdown_signal()).await?;
    // Nothing writes any more: the Lease can go to the standby.
    let _ = stop_tx.send(true);
    if let Some(elector) = elector {
        elector.await??;
    }
    drop(always_leading);
    tracing::info!("controller stopped");
    Ok(ExitCode::SUCCESS)
}
