//! The speaker's Prometheus metrics. Names are MetalLB's where the meaning is the same, so
//! existing dashboards and alerts keep working; `ferrolb_*` names are for what MetalLB lacks.

mod announced;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub use announced::{Announced, Series};

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
    /// `metallb_k8s_client_config_loaded_bool`: a configuration has been loaded.
    pub config_loaded: IntGauge,
    /// `metallb_k8s_client_config_stale_bool`: the latest configuration had errors (the last
    /// good version of the failing objects is in use).
    pub config_stale: IntGauge,
    /// `metallb_k8s_client_updates_total`: configuration updates processed.
    pub config_updates: IntCounterVec,
    /// `ferrolb_layer2_requests_received_total{interface,family}`.
    pub l2_requests: IntCounterVec,
    /// `ferrolb_layer2_responses_sent_total{interface,family}`.
    pub l2_responses: IntCounterVec,
    /// `ferrolb_layer2_gratuitous_sent_total{interface,family}`.
    pub l2_gratuitous: IntCounterVec,
    /// `ferrolb_layer2_dropped_total{interface,family}`: malformed or unexpected frames.
    pub l2_dropped: IntCounterVec,
    /// `ferrolb_layer2_in_kernel_answered_total{interface,family}`: the part of the responses
    /// the in-kernel fast path sent.
    pub l2_in_kernel: IntCounterVec,
    /// `ferrolb_layer2_answer_path{interface,path}`: 1 for the path answering on the interface
    /// (`InKernel` or `Sockets`).
    pub l2_answer_path: IntGaugeVec,
    /// `ferrolb_speaker_members_live`: speakers this one knows alive (itself included).
    pub members_live: IntGauge,
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
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let l2 = ["interface", "family"];
        let takeover_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ferrolb_speaker_takeover_seconds",
                "Time from learning that an IP's owner left to having announced it from this node",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        registry.register(Box::new(takeover_seconds.clone()))?;
        let announced = Announced::new()?;
        registry.register(Box::new(announced.clone()))?;
        Ok(Self {
            announced,
            bgp_session_up: gauge_vec(
                "metallb_bgp_session_up",
                "BGP session state (1 is up)",
                &["peer"],
            )?,
            bgp_announced_prefixes: gauge_vec(
                "metallb_bgp_announced_prefixes_total",
                "Prefixes handed to the BGP session",
                &["peer"],
            )?,
            bgp_updates: counter_vec(
                "metallb_bgp_updates_total",
                "BGP UPDATE messages sent",
                &["peer"],
            )?,
            config_loaded: gauge(
                "metallb_k8s_client_config_loaded_bool",
                "1 once a configuration has been loaded",
            )?,
            config_stale: gauge(
                "metallb_k8s_client_config_stale_bool",
                "1 while the latest configuration has errors and the last good objects are in use",
            )?,
            config_updates: counter_vec(
                "metallb_k8s_client_updates_total",
                "Configuration updates processed",
                &[],
            )?,
            l2_requests: counter_vec(
                "ferrolb_layer2_requests_received_total",
                "ARP requests and neighbour solicitations received for announced IPs",
                &l2,
            )?,
            l2_responses: counter_vec(
                "ferrolb_layer2_responses_sent_total",
                "ARP replies and neighbour advertisements sent",
                &l2,
            )?,
            l2_gratuitous: counter_vec(
                "ferrolb_layer2_gratuitous_sent_total",
                "Gratuitous ARP and unsolicited neighbour advertisements sent",
                &l2,
            )?,
            l2_dropped: counter_vec(
                "ferrolb_layer2_dropped_total",
                "Frames dropped as malformed or unexpected",
                &l2,
            )?,
            l2_in_kernel: counter_vec(
                "ferrolb_layer2_in_kernel_answered_total",
                "Responses sent by the in-kernel fast path (included in responses_sent)",
                &l2,
            )?,
            l2_answer_path: gauge_vec(
                "ferrolb_layer2_answer_path",
                "1 for the path answering ARP and NDP on the interface: InKernel or Sockets",
                &["interface", "path"],
            )?,
            members_live: gauge(
                "ferrolb_speaker_members_live",
                "Speakers known alive, this one included",
            )?,
            takeover_seconds,
            api_writes: counter_vec(
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
