//! `reconcile`: the controller's shell around [`crate::alloc`] and [`crate::plan`]. It decides
//! nothing: it feeds watch events in, carries plans out, and retries what the API server refused.
//!
//! ```text
//!  Services ─────────┐
//!  Namespaces ───────┼─ cache (views, stores) ─────► Reconciler ──► service::reconcile ──► status + annotation
//!  IPAddressPools ───┘                              owns Allocator,   (32 at once)     └─► EventQueue ─► Events
//!  Leadership ─────────────────────────────────────► last good pools ──► IPAddressPool status
//!  retry deadlines (per key, stored) ──────────────►                 ──► ConfigurationState
//! ```
//! Nothing is allocated until every store has finished its first list and the allocator has
//! been rebuilt from the IPs already in Service statuses, so a restart never moves an IP.
//! Only the replica holding the Lease writes ([`crate::lease`]); a standby keeps its stores warm,
//! and on taking over rebuilds its allocator from a fresh list before its first write.
//!
//! - `reconciler`: the task's state: stores, allocator, dirty keys, retries.
//! - [`service`]: one Service's writes (`reconcile`) and its retry (`error_policy`).
//! - `config`: pools, their fingerprint and the `ConfigurationState`.
//! - `pools`: pool status and metrics.

mod config;
mod pools;
mod reconciler;
pub mod service;

use std::future::Future;
use std::sync::Arc;

use kube::Client;
use tokio::time::Instant;

pub use config::CONFIGURATION_STATE_NAME;
use ferrolb_proto::time::sleep_until;
use reconciler::Reconciler;
pub use service::ReconcileError;

use crate::cache::{Caches, Changes};
use crate::events::EventQueue;
use crate::lease::Leadership;
use crate::metrics::{Health, Metrics};
use crate::task::AbortOnDrop;

/// What the reconciler serves.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Namespace FerroLB's configuration lives in.
    pub namespace: String,
    /// The `loadBalancerClass` served; `None` serves Services without one.
    pub lb_class: Option<String>,
    /// This replica's name, for Events.
    pub instance: String,
}

/// What the reconcile task shares with the rest of the process.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Flags behind `/readyz`.
    pub health: Arc<Health>,
    /// Whether this replica may write.
    pub leadership: Leadership,
}

/// Everything one reconcile needs besides the Service (controller-rs's `Context`).
pub struct Context {
    /// The API client.
    pub client: Client,
    /// What the reconciler serves.
    pub settings: ReconcileSettings,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Flags behind `/readyz`.
    pub health: Arc<Health>,
    /// Whether this replica may write.
    pub leadership: Leadership,
    /// Where Events go.
    pub events: EventQueue,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why the reconciler stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A watch stream ended, which kube-runtime's watchers never do on their own.
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

impl RunError {
    /// Stable CamelCase for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            RunError::WatchEnded(_) => "WatchEnded",
        }
    }
}

/// Runs the reconciler until `shutdown` completes or the elector is gone, on the caches
/// [`crate::cache::start`] fills and the `changes` it notes.
pub async fn run(
    client: Client,
    settings: ReconcileSettings,
    shared: Shared,
    (caches, changes): (Caches, Arc<Changes>),
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let (events, publisher) = EventQueue::new(
        client.clone(),
        settings.instance.clone(),
        shared.leadership.clone(),
        Arc::clone(&shared.metrics),
    );
    let _publisher = AbortOnDrop::spawn(publisher);
    let mut leadership = shared.leadership.clone();
    let ctx = Arc::new(Context {
        client,
        settings,
        metrics: shared.metrics,
        health: shared.health,
        leadership: shared.leadership,
        events,
    });
    let mut reconciler = Reconciler::new(ctx, caches);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            flipped = leadership.flipped() => {
                // The elector is gone (shutting down): stop writing.
                let Ok(leading) = flipped else { return Ok(()) };
                reconciler.leadership_changed(leading);
            }
            // Everything noted since the last pass at once, so a burst is one pass.
            noted = changes.next() => {
                let Some(noted) = noted else { return Err(RunError::WatchEnded("configuration")) };
                reconciler.note(noted);
            }
            () = sleep_until(reconciler.next_wake()) => reconciler.take_due(Instant::now()),
        }
        reconciler.work().await;
    }
}
