//! `metrics`: the controller's Prometheus metrics, under MetalLB's names where the meaning is the
//! same (so its dashboards and alerts keep working), and the health flags behind `/readyz`.
//! One [`Metrics`] per process, made in `main` and passed down; no statics.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

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

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let pool_gauge = |name: &str, help: &str| -> Result<IntGaugeVec, MetricsError> {
            let gauge = IntGaugeVec::new(Opts::new(name, help), &["pool"])?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let addresses_total = [
            pool_gauge(
                "metallb_allocator_addresses_total",
                "Number of usable IP addresses, per pool",
            )?,
            pool_gauge(
                "metallb_allocator_ipv4_addresses_total",
                "Number of usable IPv4 addresses, per pool",
            )?,
            pool_gauge(
                "metallb_allocator_ipv6_addresses_total",
                "Number of usable IPv6 addresses, per pool",
            )?,
        ];
        let addresses_in_use = [
            pool_gauge(
                "metallb_allocator_addresses_in_use_total",
                "Number of IP addresses in use, per pool",
            )?,
            pool_gauge(
                "metallb_allocator_ipv4_addresses_in_use_total",
                "Number of IPv4 addresses in use, per pool",
            )?,
            pool_gauge(
                "metallb_allocator_ipv6_addresses_in_use_total",
                "Number of IPv6 addresses in use, per pool",
            )?,
        ];
        let counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let config_updates = counter(
            "metallb_k8s_client_updates_total",
            "Number of configuration updates processed",
        )?;
        let config_update_errors = counter(
            "metallb_k8s_client_update_errors_total",
            "Number of configuration updates that failed",
        )?;
        let config_loaded = gauge(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the configuration was loaded at least once",
        )?;
        let config_stale = gauge(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest one failed to load",
        )?;
        let leader = gauge(
            "ferrolb_controller_leader_bool",
            "1 while this replica holds the leader Lease",
        )?;
        let api_writes = IntCounterVec::new(
            Opts::new(
                "ferrolb_controller_api_writes_total",
                "Writes to the API server by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(api_writes.clone()))?;
        Ok(Metrics {
            registry,
            addresses_total,
            addresses_in_use,
            config_updates,
            config_update_errors,
            config_loaded,
            config_stale,
            leader,
            api_writes,
        })
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
