//! `http`: what the controller reports on `/metrics`, `/healthz` and `/readyz`, served by
//! [`ferrolb_shell::http::probes`] (a bounded server: connection limit, header timeout).
//! Decides nothing about the cluster.

use std::sync::Arc;

use ferrolb_shell::http::Limits;
use ferrolb_shell::http::probes::{self, Probes};
use tokio::net::TcpListener;

use crate::metrics::{Health, Metrics};

/// The metrics and health the probe endpoints report.
struct Endpoints {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Probes for Endpoints {
    fn metrics(&self) -> Vec<u8> {
        self.metrics.render()
    }

    fn readiness(&self) -> Result<(), String> {
        if self.health.is_ready() {
            Ok(())
        } else {
            Err("watches not synced or allocator not rebuilt".into())
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve_probes(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    let endpoints = Arc::new(Endpoints { metrics, health });
    probes::serve_probes(listener, Limits::default(), endpoints).await;
}
