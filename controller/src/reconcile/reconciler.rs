//! The reconcile task's state and its one pass of work: note watch events, rebuild the pools or
//! the allocator when needed, plan every dirty Service in order, write the plans concurrently,
//! and schedule retries of what failed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrolb_api::config::{Objects, Pool};
use ferrolb_api::selector::Labels;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use super::Context;
use super::config::{Written, build_pools, config_input, write_configuration_state};
use super::pools::write_pool_status;
use super::service::{Pending, ReconcileError, error_policy, reconcile};
use crate::alloc::Allocator;
use crate::cache::{Caches, Noted, SOURCES};
use crate::plan::{self, Plan};
use crate::retry::{Backoff, Retries};
use crate::view::ServiceView;

/// How many Services are written at once: enough to hide API round trips under a burst.
const WRITE_CONCURRENCY: usize = 32;

/// Services planned before their writes start: enough to keep [`WRITE_CONCURRENCY`] writes
/// busy, few enough that a burst holds little.
const PLAN_CHUNK: usize = 8 * WRITE_CONCURRENCY;

/// Services per page of the rebuild's list (client-go's reflectors page by 500 too).
const LIST_PAGE: u32 = 500;

/// The reconcile task's state.
pub struct Reconciler {
    ctx: Arc<Context>,
    caches: Caches,
    /// Each source finished its first list.
    synced: [bool; SOURCES],
    /// Built once every store has synced, rebuilt from Service statuses.
    allocator: Option<Allocator>,
    /// The last valid version of every pool, kept when an edit breaks one.
    last_good: Objects,
    /// Services to plan.
    dirty: BTreeSet<String>,
    /// Pools or namespaces changed.
    config_dirty: bool,
    /// Services whose writes failed, with their stored retry deadlines.
    retries: Retries,
    /// Failed rebuilds in a row, and when to try again.
    rebuild_failures: u32,
    rebuild_at: Option<Instant>,
    /// The ConfigurationState status last written or read, to write only changes.
    written_state: Option<Written>,
    /// Pools whose metrics are exported, to drop the series of a deleted or broken pool.
    exported_pools: BTreeSet<String>,
    /// What the current configuration was built from (see [`config_input`]).
    config_input: Option<String>,
}

impl Reconciler {
    pub fn new(ctx: Arc<Context>, caches: Caches) -> Self {
        Reconciler {
            ctx,
            caches,
            synced: [false; SOURCES],
            allocator: None,
            last_good: Objects::default(),
            dirty: BTreeSet::new(),
            config_dirty: true,
            retries: Retries::new(Backoff::DEFAULT),
            rebuild_failures: 0,
            rebuild_at: None,
            written_state: None,
            exported_pools: BTreeSet::new(),
            config_input: None,
        }
    }

    fn is_leading(&self) -> bool {
        self.ctx.leadership.is_leading()
    }

    /// A new leader starts from scratch: its allocator is rebuilt from a fresh list of Services
    /// before it writes, and a replica that stops leading forgets its allocator.
    pub fn leadership_changed(&mut self, leading: bool) {
        tracing::info!(leading, "leadership changed");
        let ctx = &self.ctx;
        ctx.health.set_leading(leading);
        ctx.health.set_rebuilt(false);
        ctx.metrics.leader.set(i64::from(leading));
        self.allocator = None;
        self.written_state = None;
        self.config_dirty = true;
        self.retries.clear();
    }

    /// Takes what the watches noted (their caches are already updated).
    pub fn note(&mut self, noted: Noted) {
        for (synced, now) in self.synced.iter_mut().zip(noted.synced) {
            *synced |= now;
        }
        self.dirty.extend(noted.services);
        self.config_dirty |= noted.config;
    }

    /// When a retry (of a Service or of the rebuild) is due next.
    pub fn next_wake(&self) -> Option<Instant> {
        match (self.retries.next_deadline(), self.rebuild_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Marks the Services whose retry is due as dirty; a due rebuild happens in the next pass.
    pub fn take_due(&mut self, now: Instant) {
        self.dirty.extend(self.retries.take_due(now));
        if self.rebuild_at.is_some_and(|at| at <= now) {
            self.rebuild_at = None;
        }
    }

    fn namespace_labels(&self) -> BTreeMap<String, Labels> {
        self.caches
            .namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect()
    }

    /// One pass: everything noted so far is planned and written.
    pub async fn work(&mut self) {
        if !self.synced.iter().all(|s| *s) {
            return;
        }
        self.ctx.health.set_synced(true);
        if !self.is_leading() {
            // A standby only keeps its stores; the leader plans everything once it takes over.
            self.dirty.clear();
            self.retries.clear();
            return;
        }
        let namespace_labels = self.namespace_labels();
        if !self.refresh_config(&namespace_labels).await {
            return;
        }
        // Planned and written a chunk at a time: a burst of 100k Services never holds 100k
        // plans, and the first EXTERNAL-IPs do not wait for the last plan.
        let dirty: Vec<String> = std::mem::take(&mut self.dirty).into_iter().collect();
        for chunk in dirty.chunks(PLAN_CHUNK) {
            if !self.is_leading() {
                return; // the next leader plans everything afresh
            }
            let mut pending = Vec::with_capacity(chunk.len());
            for key in chunk {
                match self.plan_one(key, &namespace_labels) {
                    Some(planned) => pending.push(planned),
                    None => self.retries.succeeded(key),
                }
            }
            self.write(pending).await;
        }
        if let Some(allocator) = &self.allocator {
            let pools = self.caches.pools.state();
            self.exported_pools =
                write_pool_status(&self.ctx, allocator, &pools, &self.exported_pools).await;
        }
    }

    /// Carries out the plans concurrently; failures get a retry deadline.
    async fn write(&mut self, pending: Vec<Pending>) {
        let ctx = &self.ctx;
        let results: Vec<_> =
            futures::stream::iter(pending.into_iter().map(|pending| async move {
                let key = pending.key.clone();
                (key, reconcile(pending, ctx).await)
            }))
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        for (key, result) in results {
            match result {
                Ok(()) => {
                    self.ctx.metrics.count_write(true);
                    self.retries.succeeded(&key);
                }
                Err(error) => {
                    if !matches!(error, ReconcileError::NotLeading { .. }) {
                        self.ctx.metrics.count_write(false);
                    }
                    error_policy(&key, &error, &self.ctx, &mut self.retries, Instant::now());
                }
            }
        }
    }

    /// Rebuilds the pools when pools or namespaces changed, and the allocator when there is
    /// none; every Service is then dirty. `false` when there is no allocator to plan with.
    async fn refresh_config(&mut self, namespace_labels: &BTreeMap<String, Labels>) -> bool {
        if self.allocator.is_none() && self.rebuild_at.is_some() {
            return false; // the rebuild waits for its retry
        }
        let mut input = None;
        if self.config_dirty && self.allocator.is_some() {
            // Our own pool status writes come back as pool events; only a change to what
            // selection reads (specs, labels, ages, namespace labels) re-plans every Service.
            let fingerprint = config_input(&self.caches.pools.state(), namespace_labels);
            if self.config_input.as_ref() == Some(&fingerprint) {
                self.config_dirty = false;
            }
            input = Some(fingerprint);
        }
        if !self.config_dirty && self.allocator.is_some() {
            return true;
        }
        let pools = self.caches.pools.state();
        self.config_input = Some(input.unwrap_or_else(|| config_input(&pools, namespace_labels)));
        let (built, state) = build_pools(&pools, &mut self.last_good, &self.ctx);
        self.written_state =
            write_configuration_state(&self.ctx, self.written_state.take(), state).await;
        match &mut self.allocator {
            Some(allocator) => allocator.set_pools(&built),
            None => {
                let Some(allocator) = self.rebuild(&built, namespace_labels).await else {
                    return false;
                };
                self.allocator = Some(allocator);
                self.ctx.health.set_rebuilt(true);
            }
        }
        self.config_dirty = false;
        self.dirty.extend(self.caches.services.keys());
        true
    }

    /// An allocator holding what Service statuses show, read with a fresh list rather than from
    /// the cache: after a takeover the cache may not yet show the old leader's last writes.
    async fn rebuild(
        &mut self,
        pools: &BTreeMap<String, Pool>,
        namespace_labels: &BTreeMap<String, Labels>,
    ) -> Option<Allocator> {
        let views = match self.list_views().await {
            Ok(views) => views,
            Err(error) => {
                self.rebuild_failures = self.rebuild_failures.saturating_add(1);
                let wait = Backoff::DEFAULT.delay(self.rebuild_failures);
                let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(%error, retry_in_ms, "listing Services for the rebuild failed; retrying");
                self.rebuild_at = Some(Instant::now() + wait);
                return None;
            }
        };
        self.rebuild_failures = 0;
        let mut allocator = Allocator::new(pools);
        let failed = plan::rebuild(&views, namespace_labels, &mut allocator);
        tracing::info!(
            restored = allocator.service_count(),
            not_restored = failed.len(),
            "allocator rebuilt from Service statuses"
        );
        Some(allocator)
    }

    /// Every Service's view, listed a page at a time so that only one page of whole objects
    /// is ever held.
    async fn list_views(&self) -> Result<Vec<ServiceView>, kube::Error> {
        let api: Api<Service> = Api::all(self.ctx.client.clone());
        let our_class = self.ctx.settings.lb_class.as_deref();
        let mut views = Vec::new();
        let mut params = ListParams::default().limit(LIST_PAGE);
        loop {
            let page = api.list(&params).await?;
            views.extend(page.items.iter().map(|s| ServiceView::of(s, our_class)));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(views),
            }
        }
    }

    /// Plans one Service, updating the allocator; the writes it needs, if any.
    fn plan_one(
        &mut self,
        key: &str,
        namespace_labels: &BTreeMap<String, Labels>,
    ) -> Option<Pending> {
        let timer = self.ctx.metrics.reconcile_timer();
        let allocator = self.allocator.as_mut()?;
        let Some(view) = self.caches.services.get(key) else {
            allocator.release(key);
            return None;
        };
        let (namespace, _) = view.namespace_and_name();
        let empty = Labels::new();
        let plan = plan::plan(
            &view,
            namespace_labels.get(namespace).unwrap_or(&empty),
            allocator,
        );
        let Plan::Set { ips, pool, events } = plan else {
            return None;
        };
        let unchanged = view.ips == ips && view.pool == pool && events.is_empty();
        (!unchanged).then(|| Pending {
            key: key.to_owned(),
            view,
            ips,
            pool,
            events,
            timer,
        })
    }
}
