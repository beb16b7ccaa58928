//! The `ferrolb-controller` binary: flag parsing and exit codes only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { paths } => {
            let verdict = ferrolb_controller::validate::run(&paths, &mut std::io::stdout().lock())?;
            Ok(ExitCode::from(verdict as u8))
        }
    }
}
