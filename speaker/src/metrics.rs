//! The speaker's Prometheus metrics. Names are MetalLB's where the meaning is the same, so
//! existing dashboards and alerts keep working; `ferrolb_*` names are for what MetalLB lacks.

mod announced;
pub mod bfd;
pub mod bgp;
pub mod l2;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub use announced::{Announced, Series, series};
pub use bfd::BfdMetrics;
pub use bgp::BgpStatsMetrics;
pub use l2::L2Metrics;

/// Every metric the speaker exports, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// `metallb_speaker_announced{service,protocol,node,ip}`: 1 while announced from this node.
    pub announced: Announced,
    /// `metallb_bgp_session_up{peer}`.
    pub bgp_session_up: IntGaugeVec,
    /// `metallb_bgp_announced_prefixes_total{peer}`: prefixes handed to the session.
    pub bgp_announced_prefixes: IntGaugeVec,
    /// `metallb_bgp_updates_total{peer}`: UPDATE messages sent.
    pub bgp_updates: IntCounterVec,
    /// What BGP peers send us and what waits for them.
    pub bgp_stats: BgpStatsMetrics,
    /// The BFD sessions (MetalLB's `metallb_bfd_*`).
    pub bfd: BfdMetrics,
    /// `metallb_k8s_client_config_loaded_bool`: a configuration has been loaded.
    pub config_loaded: IntGauge,
    /// `metallb_k8s_client_config_stale_bool`: the latest configuration had errors (the last
    /// good version of the failing objects is in use).
    pub config_stale: IntGauge,
    /// `metallb_k8s_client_updates_total`: configuration updates processed.
    pub config_updates: IntCounterVec,
    /// The `ferrolb_layer2_*` metrics.
    pub l2: L2Metrics,
    /// `ferrolb_speaker_members_live`: speakers this one knows alive (itself included).
    pub members_live: IntGauge,
    /// `ferrolb_speaker_gossip_enabled`: 1 with gossip (a key), 0 without: then no failover
    /// until a Node turns NotReady, and no protection against a network partition.
    pub gossip_enabled: IntGauge,
    /// `ferrolb_speaker_members_quorum`: 1 while this speaker may answer L2 (its gossip view
    /// holds a majority of the speaker set, or gossip is off), 0 while it answers nothing.
    pub members_quorum: IntGauge,
    /// `ferrolb_speaker_members_speakers`: the speaker set the quorum is counted in.
    pub members_speakers: IntGauge,
    /// `ferrolb_speaker_members_dropped_total{reason}`: gossip datagrams dropped before the
    /// membership saw them (wrong key, replay, clock skew, another format).
    pub members_dropped: IntCounterVec,
    /// `ferrolb_speaker_members_lapses_total{reason}`: times this speaker stopped answering and
    /// rejoined because it was frozen or declared dead.
    pub members_lapses: IntCounterVec,
    /// `ferrolb_speaker_takeover_seconds`: from learning that the owner of an IP left to having
    /// announced it from here (the part of the failover gap this node controls).
    pub takeover_seconds: Histogram,
    /// `ferrolb_speaker_api_writes_total{kind}`: writes to the API server (0/min when settled).
    pub api_writes: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let takeover_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ferrolb_speaker_takeover_seconds",
                "Time from learning that an IP's owner left to having announced it from this node",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        Ok(Self {
            announced: r.register(Announced::new()?)?,
            bgp_session_up: r.gauge_vec(
                "metallb_bgp_session_up",
                "BGP session state (1 is up)",
                &["peer"],
            )?,
            bgp_announced_prefixes: r.gauge_vec(
                "metallb_bgp_announced_prefixes_total",
                "Prefixes handed to the BGP session",
                &["peer"],
            )?,
            bgp_updates: r.counter_vec(
                "metallb_bgp_updates_total",
                "BGP UPDATE messages sent",
                &["peer"],
            )?,
            bgp_stats: BgpStatsMetrics::register(&r)?,
            bfd: BfdMetrics::register(&r)?,
            config_loaded: r.gauge(
                "metallb_k8s_client_config_loaded_bool",
                "1 once a configuration has been loaded",
            )?,
            config_stale: r.gauge(
                "metallb_k8s_client_config_stale_bool",
                "1 while the latest configuration has errors and the last good objects are in use",
            )?,
            config_updates: r.counter_vec(
                "metallb_k8s_client_updates_total",
                "Configuration updates processed",
                &[],
            )?,
            l2: L2Metrics::register(&r)?,
            members_live: r.gauge(
                "ferrolb_speaker_members_live",
                "Speakers known alive, this one included",
            )?,
            gossip_enabled: r.gauge(
                "ferrolb_speaker_gossip_enabled",
                "1 when the speakers gossip (failover in under a second, quorum against partitions), 0 when not",
            )?,
            members_quorum: r.gauge(
                "ferrolb_speaker_members_quorum",
                "1 while this speaker's gossip view holds a majority of the speakers (or gossip is off), 0 while it answers no L2 IP",
            )?,
            members_speakers: r.gauge(
                "ferrolb_speaker_members_speakers",
                "Speakers the quorum is counted in: Ready nodes that run a speaker",
            )?,
            members_dropped: r.counter_vec(
                "ferrolb_speaker_members_dropped_total",
                "Gossip datagrams dropped before the membership saw them",
                &["reason"],
            )?,
            members_lapses: r.counter_vec(
                "ferrolb_speaker_members_lapses_total",
                "Times this speaker stopped answering and rejoined the membership",
                &["reason"],
            )?,
            takeover_seconds: r.register(takeover_seconds)?,
            api_writes: r.counter_vec(
                "ferrolb_speaker_api_writes_total",
                "Writes to the API server",
                &["kind"],
            )?,
            registry,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }
}

/// Creates metrics in one registry.
#[derive(Debug, Clone, Copy)]
pub struct Registrar<'r>(&'r Registry);

impl Registrar<'_> {
    /// Registers `metric` and hands it back.
    pub fn register<M: Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> Result<M, prometheus::Error> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    /// A registered gauge with labels.
    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A registered counter with labels.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    /// A registered gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.register(IntGauge::new(name, help)?)
    }
}
