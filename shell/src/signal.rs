//! The shutdown signal: the kubelet sends SIGTERM at the start of the grace period; Ctrl-C
//! (SIGINT) stops a daemon started by hand.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves at the first SIGTERM or SIGINT. If a handler cannot be installed (which only fails
/// when the process is out of resources), that signal is simply not awaited.
pub async fn shutdown() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
