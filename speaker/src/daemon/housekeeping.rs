//! Periodic chores off the plan path: copying the responder's, the gossip's, the BGP sessions'
//! and the BFD sessions' counters into the metrics, and handing free memory back after large plans.

use super::Daemon;
use crate::members::AuthError;
use crate::metrics::l2;

impl Daemon {
    /// Copies the L2 counters, then trims memory if a large plan ran since the last trim.
    pub(super) async fn housekeeping(&mut self) {
        self.copy_l2_counters().await;
        self.copy_members_counters();
        self.sessions.copy_stats();
        self.bfd.copy_counters();
        if std::mem::take(&mut self.busy_since_trim) {
            crate::memory::trim();
        }
    }

    /// Copies the gossip's drop counters into the metrics (as increments since the last copy).
    fn copy_members_counters(&mut self) {
        for reason in AuthError::REASONS {
            let now = self.members_counters.dropped(reason);
            let before = self.members_dropped.insert(reason, now).unwrap_or(0);
            self.metrics
                .members_dropped
                .with_label_values(&[reason])
                .inc_by(now.saturating_sub(before));
        }
    }

    /// Copies the responder's counters into the metrics (as increments since the last copy),
    /// and which path answers on each interface.
    async fn copy_l2_counters(&mut self) {
        let Ok(now) = self.responder.counters().await else {
            return;
        };
        for ((interface, family), snapshot) in &now {
            let before = self.l2_counters.get(&(interface.clone(), *family));
            let increments = l2::increments(before, snapshot);
            self.metrics
                .l2
                .add(interface, family.protocol(), &increments);
        }
        self.l2_counters = now;
        if let Ok(paths) = self.responder.answer_paths().await {
            self.metrics.l2.answer_path.reset();
            for (interface, path) in &paths {
                self.metrics
                    .l2
                    .answer_path
                    .with_label_values(&[interface.as_str(), path.label()])
                    .set(1);
            }
        }
    }
}
