//! `kubesim --listen 127.0.0.1:PORT --kubeconfig-out FILE`: runs the test API server until
//! interrupted, after writing a kubeconfig that points at it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ferrolb_kubesim::{KubeSim, Options};

#[derive(Debug, Parser)]
#[command(about = "An in-process Kubernetes API server for tests (plain HTTP)")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// How many recent events watches can resume from.
    #[arg(long, default_value_t = 1000)]
    event_window: usize,
    /// Require bearer tokens and enforce RBAC (also serves HTTPS on the same port; the
    /// kubeconfig written then uses HTTPS and an admin token).
    #[arg(long)]
    rbac: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let options = Options {
        event_window: args.event_window,
        rbac: args.rbac,
        ..Options::default()
    };
    let sim = KubeSim::serve_on(listener, options).await?;
    if let Some(path) = &args.kubeconfig_out {
        sim.write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("kubesim listening on {}", sim.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
