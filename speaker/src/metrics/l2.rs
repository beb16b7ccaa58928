//! The `ferrolb_layer2_*` metrics, and the responder's counters as their increments: the
//! responder reports totals, Prometheus counters only go up by what happened since the last
//! copy ([`increments`] is pure).

use ferrolb_proto::l2::counters::FamilySnapshot;
use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;

/// The L2 responder's metrics, by interface and family.
#[derive(Debug, Clone)]
pub struct L2Metrics {
    /// `ferrolb_layer2_requests_received_total{interface,family}`.
    pub requests: IntCounterVec,
    /// `ferrolb_layer2_responses_sent_total{interface,family}`.
    pub responses: IntCounterVec,
    /// `ferrolb_layer2_gratuitous_sent_total{interface,family}`.
    pub gratuitous: IntCounterVec,
    /// `ferrolb_layer2_dropped_total{interface,family}`: malformed or unexpected frames.
    pub dropped: IntCounterVec,
    /// `ferrolb_layer2_in_kernel_answered_total{interface,family}`: the part of the responses
    /// the in-kernel fast path sent.
    pub in_kernel: IntCounterVec,
    /// `ferrolb_layer2_answer_path{interface,path}`: 1 for the path answering on the interface
    /// (`InKernel` or `Sockets`).
    pub answer_path: IntGaugeVec,
}

impl L2Metrics {
    /// Creates and registers them.
    pub fn register(r: &Registrar<'_>) -> Result<Self, prometheus::Error> {
        let l2 = ["interface", "family"];
        Ok(Self {
            requests: r.counter_vec(
                "ferrolb_layer2_requests_received_total",
                "ARP requests and neighbour solicitations received for announced IPs",
                &l2,
            )?,
            responses: r.counter_vec(
                "ferrolb_layer2_responses_sent_total",
                "ARP replies and neighbour advertisements sent",
                &l2,
            )?,
            gratuitous: r.counter_vec(
                "ferrolb_layer2_gratuitous_sent_total",
                "Gratuitous ARP and unsolicited neighbour advertisements sent",
                &l2,
            )?,
            dropped: r.counter_vec(
                "ferrolb_layer2_dropped_total",
                "Frames dropped as malformed or unexpected",
                &l2,
            )?,
            in_kernel: r.counter_vec(
                "ferrolb_layer2_in_kernel_answered_total",
                "Responses sent by the in-kernel fast path (included in responses_sent)",
                &l2,
            )?,
            answer_path: r.gauge_vec(
                "ferrolb_layer2_answer_path",
                "1 for the path answering ARP and NDP on the interface: InKernel or Sockets",
                &["interface", "path"],
            )?,
        })
    }

    /// Adds the increments of one interface and family.
    pub fn add(&self, interface: &str, family: &str, increments: &Increments) {
        let labels = [interface, family];
        let add = |counter: &IntCounterVec, by: u64| counter.with_label_values(&labels).inc_by(by);
        add(&self.requests, increments.requests);
        add(&self.responses, increments.responses);
        add(&self.gratuitous, increments.gratuitous);
        add(&self.dropped, increments.dropped);
        add(&self.in_kernel, increments.in_kernel);
    }
}

/// What happened on one interface and family since the last copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Increments {
    /// Requests seen.
    pub requests: u64,
    /// Replies sent, by either path.
    pub responses: u64,
    /// Gratuitous ARP / unsolicited NA sent.
    pub gratuitous: u64,
    /// Frames dropped, for every reason.
    pub dropped: u64,
    /// Replies the in-kernel fast path sent.
    pub in_kernel: u64,
}

/// From the totals `before` (none: the interface is new) to `now`. A total that went down (the
/// responder restarted its counters) adds nothing rather than wrapping.
pub fn increments(before: Option<&FamilySnapshot>, now: &FamilySnapshot) -> Increments {
    let delta = |f: fn(&FamilySnapshot) -> u64| f(now).saturating_sub(before.map_or(0, f));
    Increments {
        requests: delta(|s| s.requests_seen),
        responses: delta(|s| s.replies_sent),
        gratuitous: delta(|s| s.announcements_sent),
        dropped: delta(|s| s.dropped.values().sum()),
        in_kernel: delta(|s| s.fast_path_replies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(requests: u64, dropped: &[(&'static str, u64)]) -> FamilySnapshot {
        FamilySnapshot {
            requests_seen: requests,
            replies_sent: requests / 2,
            announcements_sent: 3,
            dropped: dropped.iter().copied().collect(),
            fast_path_replies: requests / 4,
            ..FamilySnapshot::default()
        }
    }

    #[test]
    fn a_new_interface_adds_its_totals_and_later_copies_add_the_difference() {
        let first = totals(8, &[("NotForUs", 1)]);
        assert_eq!(
            increments(None, &first),
            Increments {
                requests: 8,
                responses: 4,
                gratuitous: 3,
                dropped: 1,
                in_kernel: 2
            }
        );
        let second = totals(12, &[("NotForUs", 1), ("Malformed", 2)]);
        assert_eq!(
            increments(Some(&first), &second),
            Increments {
                requests: 4,
                responses: 2,
                gratuitous: 0,
                dropped: 2,
                in_kernel: 1
            }
        );
    }

    #[test]
    fn totals_that_went_down_add_nothing() {
        let before = totals(100, &[("NotForUs", 5)]);
        assert_eq!(
            increments(Some(&before), &totals(10, &[])),
            Increments::default()
        );
    }
}
