//! The BFD metrics, with MetalLB's names and labels (`peer`: the peer's address, `vrf`): the
//! ones MetalLB's `frr-metrics` sidecar exports from FRR's `show bfd peers [counters]`, so that
//! dashboards and alerts written for MetalLB's FRR mode keep working. Echo counters exist and
//! stay 0 (no echo function); `metallb_bfd_zebra_notifications` has no meaning without zebra
//! and is not exported. The `ferrolb_bfd_*` ones are what MetalLB lacks.

use ferrolb_proto::bfd::counters::SessionSnapshot;
use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;

/// The BFD sessions' metrics.
#[derive(Debug, Clone)]
pub struct BfdMetrics {
    /// `metallb_bfd_session_up{peer,vrf}`: 1 while the session is Up.
    pub session_up: IntGaugeVec,
    /// `metallb_bfd_control_packet_input{peer,vrf}`.
    pub control_in: IntCounterVec,
    /// `metallb_bfd_control_packet_output{peer,vrf}`.
    pub control_out: IntCounterVec,
    /// `metallb_bfd_echo_packet_input{peer,vrf}`: always 0.
    pub echo_in: IntCounterVec,
    /// `metallb_bfd_echo_packet_output{peer,vrf}`: always 0.
    pub echo_out: IntCounterVec,
    /// `metallb_bfd_session_up_events{peer,vrf}`.
    pub up_events: IntCounterVec,
    /// `metallb_bfd_session_down_events{peer,vrf}`.
    pub down_events: IntCounterVec,
    /// `ferrolb_bfd_control_packet_send_errors_total{peer,vrf}`: packets the kernel refused.
    pub send_errors: IntCounterVec,
    /// `ferrolb_bfd_dropped_total{reason}`: received packets discarded (RFC 5880 §6.8.6 and the
    /// TTL rules), over all sessions.
    pub dropped: IntCounterVec,
}

impl BfdMetrics {
    /// Creates and registers them.
    pub fn register(r: &Registrar<'_>) -> Result<Self, prometheus::Error> {
        let labels = ["peer", "vrf"];
        Ok(Self {
            session_up: r.gauge_vec(
                "metallb_bfd_session_up",
                "BFD session state (1 is up, 0 is down)",
                &labels,
            )?,
            control_in: r.counter_vec(
                "metallb_bfd_control_packet_input",
                "Number of received BFD control packets",
                &labels,
            )?,
            control_out: r.counter_vec(
                "metallb_bfd_control_packet_output",
                "Number of sent BFD control packets",
                &labels,
            )?,
            echo_in: r.counter_vec(
                "metallb_bfd_echo_packet_input",
                "Number of received BFD echo packets (FerroLB runs no echo function: 0)",
                &labels,
            )?,
            echo_out: r.counter_vec(
                "metallb_bfd_echo_packet_output",
                "Number of sent BFD echo packets (FerroLB runs no echo function: 0)",
                &labels,
            )?,
            up_events: r.counter_vec(
                "metallb_bfd_session_up_events",
                "Number of BFD session up events",
                &labels,
            )?,
            down_events: r.counter_vec(
                "metallb_bfd_session_down_events",
                "Number of BFD session down events",
                &labels,
            )?,
            send_errors: r.counter_vec(
                "ferrolb_bfd_control_packet_send_errors_total",
                "BFD control packets the kernel refused to send",
                &labels,
            )?,
            dropped: r.counter_vec(
                "ferrolb_bfd_dropped_total",
                "Received BFD packets discarded, by reason",
                &["reason"],
            )?,
        })
    }

    /// Adds what one session counted since `before`, and makes its series exist.
    pub fn add(&self, peer: &str, vrf: &str, before: &SessionSnapshot, now: &SessionSnapshot) {
        let labels = [peer, vrf];
        let add = |counter: &IntCounterVec, now: u64, before: u64| {
            counter
                .with_label_values(&labels)
                .inc_by(now.saturating_sub(before));
        };
        add(&self.control_in, now.control_in, before.control_in);
        add(&self.control_out, now.control_out, before.control_out);
        add(&self.up_events, now.up_events, before.up_events);
        add(&self.down_events, now.down_events, before.down_events);
        add(&self.send_errors, now.send_errors, before.send_errors);
        add(&self.echo_in, 0, 0);
        add(&self.echo_out, 0, 0);
    }
}
