//! What BGP peers send us and what waits for them, per session (label `peer`: `address:port`,
//! as the other BGP metrics). MetalLB's name where it has one (`metallb_bgp_updates_total_received`
//! from its FRR mode); `ferrolb_bgp_*` for what only a hardened advertise-only speaker counts.

use ferrolb_proto::bgp::driver::StatsSnapshot;
use ferrolb_proto::bgp::received::Family;
use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;

/// The BGP session counters.
#[derive(Debug, Clone)]
pub struct BgpStatsMetrics {
    /// `metallb_bgp_updates_total_received{peer}`: UPDATEs received.
    pub updates_received: IntCounterVec,
    /// `ferrolb_bgp_updates_unreadable_total{peer}`: UPDATEs we could not parse and ignored,
    /// keeping the session (RFC 7606's spirit; we keep no RIB).
    pub updates_unreadable: IntCounterVec,
    /// `ferrolb_bgp_route_refreshes_received_total{peer}`.
    pub refreshes_received: IntCounterVec,
    /// `ferrolb_bgp_route_refreshes_merged_total{peer}`: refreshes answered by a
    /// re-advertisement already queued (a flood of them costs nothing more).
    pub refreshes_merged: IntCounterVec,
    /// `ferrolb_bgp_received_prefixes_total{peer,family}`: prefixes the peer announced to us
    /// (counted, never stored).
    pub prefixes_received: IntCounterVec,
    /// `ferrolb_bgp_received_withdrawals_total{peer,family}`: prefixes it withdrew.
    pub withdrawals_received: IntCounterVec,
    /// `ferrolb_bgp_write_queue_bytes{peer}`: bytes queued for the peer, not yet sent.
    pub write_queue_bytes: IntGaugeVec,
    /// `ferrolb_bgp_write_queue_overflows_total{peer}`: sessions reset because the peer did
    /// not read and the queue would have passed its cap.
    pub write_queue_overflows: IntCounterVec,
}

impl BgpStatsMetrics {
    /// Creates and registers them.
    pub fn register(r: &Registrar<'_>) -> Result<Self, prometheus::Error> {
        let peer = ["peer"];
        let by_family = ["peer", "family"];
        Ok(Self {
            updates_received: r.counter_vec(
                "metallb_bgp_updates_total_received",
                "Number of BGP UPDATE messages received",
                &peer,
            )?,
            updates_unreadable: r.counter_vec(
                "ferrolb_bgp_updates_unreadable_total",
                "BGP UPDATE messages received that could not be parsed and were ignored",
                &peer,
            )?,
            refreshes_received: r.counter_vec(
                "ferrolb_bgp_route_refreshes_received_total",
                "ROUTE-REFRESH messages received",
                &peer,
            )?,
            refreshes_merged: r.counter_vec(
                "ferrolb_bgp_route_refreshes_merged_total",
                "ROUTE-REFRESH messages answered by a re-advertisement already queued",
                &peer,
            )?,
            prefixes_received: r.counter_vec(
                "ferrolb_bgp_received_prefixes_total",
                "Prefixes the peer announced to us (counted, not stored)",
                &by_family,
            )?,
            withdrawals_received: r.counter_vec(
                "ferrolb_bgp_received_withdrawals_total",
                "Prefixes the peer withdrew towards us",
                &by_family,
            )?,
            write_queue_bytes: r.gauge_vec(
                "ferrolb_bgp_write_queue_bytes",
                "Bytes queued for the peer and not yet handed to the socket",
                &peer,
            )?,
            write_queue_overflows: r.counter_vec(
                "ferrolb_bgp_write_queue_overflows_total",
                "BGP sessions reset because the peer did not read and the write queue hit its cap",
                &peer,
            )?,
        })
    }

    /// Adds what one session counted since `before` and sets its queue gauge.
    pub fn add(&self, peer: &str, before: &StatsSnapshot, now: &StatsSnapshot) {
        let add = |counter: &IntCounterVec, labels: &[&str], now: u64, before: u64| {
            counter
                .with_label_values(labels)
                .inc_by(now.saturating_sub(before));
        };
        let labels = [peer];
        add(
            &self.updates_received,
            &labels,
            now.updates_received,
            before.updates_received,
        );
        add(
            &self.updates_unreadable,
            &labels,
            now.updates_unreadable,
            before.updates_unreadable,
        );
        add(
            &self.refreshes_received,
            &labels,
            now.route_refreshes_received,
            before.route_refreshes_received,
        );
        add(
            &self.refreshes_merged,
            &labels,
            now.route_refreshes_merged,
            before.route_refreshes_merged,
        );
        add(
            &self.write_queue_overflows,
            &labels,
            now.write_queue_overflows,
            before.write_queue_overflows,
        );
        for family in Family::ALL {
            let i = family.index();
            let labels = [peer, family_label(family)];
            add(
                &self.prefixes_received,
                &labels,
                now.prefixes_announced[i],
                before.prefixes_announced[i],
            );
            add(
                &self.withdrawals_received,
                &labels,
                now.prefixes_withdrawn[i],
                before.prefixes_withdrawn[i],
            );
        }
        self.write_queue_bytes
            .with_label_values(&labels)
            .set(i64::try_from(now.write_queue_bytes).unwrap_or(i64::MAX));
    }
}

fn family_label(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}
