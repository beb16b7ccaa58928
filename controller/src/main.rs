//! The `ferrolb-controller` binary: flag parsing, logging and exit codes only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ferrolb_controller::reconcile::{self, Settings};

/// FerroLB controller: allocates external IPs to LoadBalancer Services.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check FerroLB/MetalLB manifests offline. Exit 0: valid; 1: invalid; 2: unreadable input.
    Validate {
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
    },
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
        Command::Validate { paths } => {
            let verdict = ferrolb_controller::validate::run(&paths, &mut std::io::stdout().lock())?;
            Ok(ExitCode::from(verdict as u8))
        }
        Command::Run {
            namespace,
            lb_class,
            instance,
            log_format,
        } => {
            init_logging(log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = kube::Client::try_default().await.context("connecting to the API server")?;
                let settings = Settings { namespace, lb_class, instance };
                tracing::info!(namespace = settings.namespace, lb_class = ?settings.lb_class, "controller starting");
                reconcile::run(client, settings, shutdown_signal()).await?;
                tracing::info!("controller stopped");
                anyhow::Ok(ExitCode::SUCCESS)
            })
        }
    }
}
