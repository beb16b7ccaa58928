//! What the speaker reports on `/metrics`, `/healthz` and `/readyz` (served by
//! [`ferrolb_shell::http::probes`] on the node's address: the kubelet probes it and Prometheus
//! scrapes it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrolb_shell::http::probes::Probes;

use crate::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug, Clone)]
pub struct Health {
    /// Every watch has listed once and the first plan was applied.
    pub ready: Arc<AtomicBool>,
    /// The metrics to render.
    pub metrics: Metrics,
}

impl Probes for Health {
    fn metrics(&self) -> Vec<u8> {
        self.metrics.render().into_bytes()
    }

    fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("watches not synced or first plan not applied yet".into())
        }
    }
}
