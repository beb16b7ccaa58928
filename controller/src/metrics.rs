//! `metrics`: the controller's Prometheus metrics, under MetalLB's names where the meaning is the
//! same (so its dashboards and alerts keep working), and the health flags behind `/readyz`.
//! One [`Metrics`] per process, made in `main` and passed down; no statics.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::alloc::PoolUsage;

/// Every metric the controller exports, registered in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `metallb_allocator_addresses_total{pool}` and the per-family ones: pool capacity.
    addresses_total: [IntGaugeVec; 3],
    /// `metallb_allocator_addresses_in_use_total{pool}` and per family: distinct IPs held.
    addresses_in_use: [IntGaugeVec; 3],
    /// `metallb_k8s_client_updates_total`: configuration (re)loads.
    pub config_updates: IntCounter,
    /// `metallb_k8s_client_update_errors_total`: loads that found errors.
    pub config_update_errors: IntCounter,
    /// `metallb_k8s_client_config_loaded_bool`: 1 once a configuration was loaded.
    pub config_loaded: IntGauge,
    /// `metallb_k8s_client_config_stale_bool`: 1 while the latest configuration has errors.
    pub config_stale: IntGauge,
    /// `ferrolb_controller_leader_bool`: 1 while this replica holds the Lease.
    pub leader: IntGauge,
    /// `ferrolb_controller_api_writes_total{result}`: Service/pool writes, `ok` or `error`.
    pub api_writes: IntCounterVec,
    /// `ferrolb_controller_reconcile_duration_seconds`: planning and writing one Service.
    pub reconcile_duration: Histogram,
    /// `ferrolb_controller_reconcile_errors_total{reason}`: failed Service reconciles, by the
    /// error's `reason()`.
    pub reconcile_errors: IntCounterVec,
    /// `ferrolb_controller_events_dropped_total`: Events dropped because the queue was full.
    pub events_dropped: IntCounter,
}

/// A metric's definition was rejected by the registry (a programming error, reported at start).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl MetricsError {
    /// Stable CamelCase for logs.
    pub fn reason(&self) -> &'static str {
        "MetricsRegistration"
    }
}

/// Registers metrics in one registry.
struct Registrar(Registry);

impl Registrar {
    fn add<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> Result<M, MetricsError> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        self.add(IntCounter::new(name, help)?)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        self.add(IntGauge::new(name, help)?)
    }

    fn labelled(&self, name: &str, help: &str, label: &str) -> Result<IntCounterVec, MetricsError> {
        self.add(IntCounterVec::new(Opts::new(name, help), &[label])?)
    }

    /// MetalLB's per-pool gauges for all families, IPv4 and IPv6; `help` names the family
    /// with `{}`.
    fn pool_gauges(&self, what: &str, help: &str) -> Result<[IntGaugeVec; 3], MetricsError> {
        let gauge = |prefix: &str, family: &str| {
            let name = format!("metallb_allocator_{prefix}addresses_{what}");
            let help = help.replace("{}", family);
            self.add(IntGaugeVec::new(Opts::new(name, help), &["pool"])?)
        };
        Ok([
            gauge("", "IP")?,
            gauge("ipv4_", "IPv4")?,
            gauge("ipv6_", "IPv6")?,
        ])
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, MetricsError> {
        let r = Registrar(Registry::new());
        let reconcile_duration = r.add(Histogram::with_opts(
            HistogramOpts::new(
                "ferrolb_controller_reconcile_duration_seconds",
                "Time to plan and write one Service",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
        )?)?;
        Ok(Metrics {
            addresses_total: r.pool_gauges("total", "Number of usable {} addresses, per pool")?,
            addresses_in_use: r
                .pool_gauges("in_use_total", "Number of {} addresses in use, per pool")?,
            config_updates: r.counter(
                "metallb_k8s_client_updates_total",
                "Number of configuration updates processed",
            )?,
            config_update_errors: r.counter(
                "metallb_k8s_client_update_errors_total",
                "Number of configuration updates that failed",
            )?,
            config_loaded: r.gauge(
                "metallb_k8s_client_config_loaded_bool",
                "1 if the configuration was loaded at least once",
            )?,
            config_stale: r.gauge(
                "metallb_k8s_client_config_stale_bool",
                "1 if running on a stale configuration, because the latest one failed to load",
            )?,
            leader: r.gauge(
                "ferrolb_controller_leader_bool",
                "1 while this replica holds the leader Lease",
            )?,
            api_writes: r.labelled(
                "ferrolb_controller_api_writes_total",
                "Writes to the API server by result",
                "result",
            )?,
            reconcile_duration,
            reconcile_errors: r.labelled(
                "ferrolb_controller_reconcile_errors_total",
                "Service reconciles that failed, by reason",
                "reason",
            )?,
            events_dropped: r.counter(
                "ferrolb_controller_events_dropped_total",
                "Events dropped because the Event queue was full",
            )?,
            registry: r.0,
        })
    }

    /// Starts timing one reconcile; the time is recorded when the guard is dropped, however the
    /// reconcile ends.
    pub fn reconcile_timer(&self) -> ReconcileTimer {
        ReconcileTimer {
            histogram: self.reconcile_duration.clone(),
            start: std::time::Instant::now(),
        }
    }

    /// Counts a failed reconcile under the error's `reason()`.
    pub fn count_reconcile_error(&self, reason: &str) {
        self.reconcile_errors.with_label_values(&[reason]).inc();
    }

    /// Sets a pool's capacity and use.
    pub fn set_pool(&self, pool: &str, usage: &PoolUsage) {
        let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
        let total_v4 = usage.assigned_v4 + usage.available_v4;
        let total_v6 = usage.assigned_v6.saturating_add(usage.available_v6);
        let totals = [total_v4.saturating_add(total_v6), total_v4, total_v6];
        let in_use = [
            usage.assigned_v4 + usage.assigned_v6,
            usage.assigned_v4,
            usage.assigned_v6,
        ];
        for (gauge, value) in self.addresses_total.iter().zip(totals) {
            gauge.with_label_values(&[pool]).set(clamp(value));
        }
        for (gauge, value) in self.addresses_in_use.iter().zip(in_use) {
            gauge.with_label_values(&[pool]).set(clamp(value));
        }
    }

    /// Forgets a pool that is gone.
    pub fn remove_pool(&self, pool: &str) {
        for gauge in self.addresses_total.iter().chain(&self.addresses_in_use) {
            let _ = gauge.remove_label_values(&[pool]);
        }
    }

    /// Counts one API write.
    pub fn count_write(&self, ok: bool) {
        self.api_writes
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(error) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out)
        {
            tracing::warn!(%error, "encoding metrics failed");
        }
        out
    }
}

/// Times one reconcile; records into the histogram on Drop.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: Histogram,
    start: std::time::Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// What `/readyz` reports, set by the reconcile task and the elector.
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicBool,
    leading: AtomicBool,
    rebuilt: AtomicBool,
}

impl Health {
    /// Every watch store finished its first list.
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Relaxed);
    }

    /// This replica leads.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    /// The allocator has been rebuilt from Service statuses since we started leading.
    pub fn set_rebuilt(&self, rebuilt: bool) {
        self.rebuilt.store(rebuilt, Ordering::Relaxed);
    }

    /// Every watch store finished its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Ready: the stores are synced and, when leading, the allocator is rebuilt. A standby is
    /// ready too, so that it serves the webhook.
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
            && (!self.leading.load(Ordering::Relaxed) || self.rebuilt.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_gauges_use_metallb_names_and_labels() {
        let metrics = Metrics::new().expect("metrics");
        metrics.set_pool(
            "lab",
            &PoolUsage {
                assigned_v4: 2,
                available_v4: 14,
                assigned_v6: 0,
                available_v6: 0,
            },
        );
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        assert!(text.contains("metallb_allocator_addresses_in_use_total{pool=\"lab\"} 2"));
        assert!(text.contains("metallb_allocator_addresses_total{pool=\"lab\"} 16"));
        assert!(text.contains("metallb_allocator_ipv6_addresses_total{pool=\"lab\"} 0"));
        metrics.remove_pool("lab");
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        assert!(!text.contains("pool=\"lab\""));
    }

    #[test]
    fn a_reconcile_is_timed_when_its_guard_drops_and_errors_count_by_reason() {
        let metrics = Metrics::new().expect("metrics");
        {
            let _timer = metrics.reconcile_timer();
            assert_eq!(metrics.reconcile_duration.get_sample_count(), 0);
        }
        assert_eq!(metrics.reconcile_duration.get_sample_count(), 1);
        metrics.count_reconcile_error("Conflict");
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        assert!(text.contains("ferrolb_controller_reconcile_errors_total{reason=\"Conflict\"} 1"));
        assert!(text.contains("ferrolb_controller_reconcile_duration_seconds_count 1"));
    }

    #[test]
    fn a_leader_is_ready_only_after_its_rebuild_and_a_standby_once_synced() {
        let health = Health::default();
        assert!(!health.is_ready());
        health.set_synced(true);
        assert!(health.is_ready(), "a synced standby is ready");
        health.set_leading(true);
        assert!(!health.is_ready());
        health.set_rebuilt(true);
        assert!(health.is_ready());
    }
}
