//! The task that keeps this node's status objects in step with the latest plan. The daemon only
//! publishes what it wants (a watch channel keeps just the newest wish); this task computes the
//! writes against the watched objects plus its own recent writes, and retries after failures.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_api::types::{
    ServiceBGPStatus, ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use tokio::sync::watch;

use super::watch::{StatusStore, read_statuses};
use super::writer::Writer;
use crate::status::{self, StatusView, Written};

/// Wait before retrying after a failed write.
const RETRY: Duration = Duration::from_secs(2);
/// A batch of at least this many writes is followed by handing free memory back.
const BURST: usize = 100;

/// The statuses this node should have, by Service key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    /// `ServiceL2Status`es.
    pub l2: BTreeMap<String, ServiceL2StatusStatus>,
    /// `ServiceBGPStatus`es.
    pub bgp: BTreeMap<String, ServiceBGPStatusStatus>,
}

/// Hands a writer task a new wish; an unchanged one does not wake it.
pub fn publish_wish<T: PartialEq>(tx: &watch::Sender<Option<T>>, wanted: T) {
    tx.send_if_modified(|current| {
        let changed = current.as_ref() != Some(&wanted);
        if changed {
            *current = Some(wanted);
        }
        changed
    });
}

/// The newest wish of a writer task: when it changes, or after `retry` (the last attempt
/// failed) even if it did not. `None` when the daemon is gone.
pub async fn next_wish<T: Clone>(
    rx: &mut watch::Receiver<Option<T>>,
    retry: Option<Duration>,
) -> Option<T> {
    loop {
        match retry {
            Some(pause) => tokio::select! {
                changed = rx.changed() => changed.ok()?,
                () = tokio::time::sleep(pause) => {}
            },
            None => rx.changed().await.ok()?,
        }
        if let Some(wanted) = rx.borrow_and_update().clone() {
            return Some(wanted);
        }
    }
}

/// Starts the task; send `Some(wanted)` to have it written.
pub fn spawn(
    writer: Writer,
    l2_store: StatusStore<ServiceL2StatusStatus>,
    bgp_store: StatusStore<ServiceBGPStatusStatus>,
) -> watch::Sender<Option<Wanted>> {
    let (tx, mut rx) = watch::channel(None::<Wanted>);
    tokio::spawn(async move {
        let mut l2_written = Written::default();
        let mut bgp_written = Written::default();
        let mut failed = false;
        while let Some(wanted) = next_wish(&mut rx, failed.then_some(RETRY)).await {
            let l2_now = read_statuses(&l2_store, StatusView::existing);
            let bgp_now = read_statuses(&bgp_store, StatusView::existing);
            let l2 = status::writes(&l2_written.overlay(l2_now), &wanted.l2);
            let bgp = status::writes(&bgp_written.overlay(bgp_now), &wanted.bgp);
            let is_burst = l2.len() + bgp.len() >= BURST;
            let result = match writer
                .statuses::<ServiceL2Status>(l2, &mut l2_written)
                .await
            {
                Ok(()) => {
                    writer
                        .statuses::<ServiceBGPStatus>(bgp, &mut bgp_written)
                        .await
                }
                Err(e) => Err(e),
            };
            if is_burst {
                // Thousands of requests and responses were just freed.
                crate::memory::trim();
            }
            failed = match result {
                Ok(()) => false,
                Err(error) => {
                    tracing::warn!(%error, "status write failed; retrying");
                    true
                }
            };
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_writer_wakes_for_a_new_wish_and_not_for_the_same_one_again() {
        let (tx, mut rx) = watch::channel(None::<u32>);
        publish_wish(&tx, 1);
        assert_eq!(next_wish(&mut rx, None).await, Some(1));
        publish_wish(&tx, 1);
        let unchanged = tokio::time::timeout(Duration::from_secs(3600), next_wish(&mut rx, None));
        assert!(unchanged.await.is_err(), "the same wish again wakes nobody");
        publish_wish(&tx, 2);
        assert_eq!(next_wish(&mut rx, None).await, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failure_the_same_wish_comes_back_after_the_pause() {
        let (tx, mut rx) = watch::channel(None::<u32>);
        publish_wish(&tx, 7);
        assert_eq!(next_wish(&mut rx, None).await, Some(7));
        let failed_at = Instant::now();
        assert_eq!(next_wish(&mut rx, Some(RETRY)).await, Some(7));
        assert_eq!(
            failed_at.elapsed(),
            RETRY,
            "retried after the pause, not before"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_wish_during_the_pause_is_taken_at_once() {
        let (tx, mut rx) = watch::channel(None::<u32>);
        publish_wish(&tx, 7);
        assert_eq!(next_wish(&mut rx, None).await, Some(7));
        let failed_at = Instant::now();
        let newer = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            publish_wish(&tx, 8);
        };
        let (wish, ()) = tokio::join!(next_wish(&mut rx, Some(RETRY)), newer);
        assert_eq!(wish, Some(8));
        assert_eq!(failed_at.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_stops_when_the_daemon_is_gone() {
        let (tx, mut rx) = watch::channel(None::<u32>);
        drop(tx);
        assert_eq!(next_wish(&mut rx, None).await, None);
    }
}
