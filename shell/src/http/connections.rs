//! The bounded table of open connections: one task each, the oldest closed when a new one
//! would exceed the bound.
//!
//! Why the oldest: a probe or a scrape sends its request the moment it connects and is done in
//! milliseconds, while a connection held open by a client that says nothing only gets older.
//! Closing the newest instead would let anyone who opens `max` idle connections first lock
//! every real client out until the header timeout.

use std::collections::VecDeque;
use std::future::Future;

use tokio::task::AbortHandle;

/// Connections served now, oldest first.
#[derive(Debug)]
pub(super) struct Connections {
    max: usize,
    /// Every connection task spawned and maybe still running; finished ones are dropped lazily.
    open: VecDeque<AbortHandle>,
}

impl Connections {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: VecDeque::new(),
        }
    }

    /// Serves a new connection, closing the oldest ones beyond the bound first.
    pub(super) fn spawn(&mut self, connection: impl Future<Output = ()> + Send + 'static) {
        self.forget_finished();
        while self.open.len() >= self.max {
            self.close_oldest();
        }
        self.open.push_back(tokio::spawn(connection).abort_handle());
    }

    /// Closes the oldest open connection (which frees its file descriptor); false when none is
    /// open.
    pub(super) fn close_oldest(&mut self) -> bool {
        self.forget_finished();
        match self.open.pop_front() {
            Some(oldest) => {
                tracing::debug!("closing the oldest connection: at the connection bound");
                oldest.abort();
                true
            }
            None => false,
        }
    }

    /// How many connection tasks are still running.
    #[cfg(test)]
    pub(super) fn running(&mut self) -> usize {
        self.forget_finished();
        self.open.len()
    }

    fn forget_finished(&mut self) {
        self.open.retain(|task| !task.is_finished());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;

    /// A connection task that counts how many of its kind are alive and ends when told.
    fn connection(
        alive: &Arc<AtomicUsize>,
        done: &Arc<Notify>,
    ) -> impl Future<Output = ()> + use<> {
        struct Alive(Arc<AtomicUsize>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        alive.fetch_add(1, Ordering::SeqCst);
        let guard = Alive(Arc::clone(alive));
        let done = Arc::clone(done);
        async move {
            let _guard = guard;
            done.notified().await;
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_connection_beyond_the_bound_closes_the_oldest() {
        let alive = Arc::new(AtomicUsize::new(0));
        let never = Arc::new(Notify::new());
        let first_done = Arc::new(Notify::new());
        let mut connections = Connections::new(2);
        connections.spawn(connection(&alive, &first_done));
        connections.spawn(connection(&alive, &never));
        connections.spawn(connection(&alive, &never));
        settle().await;
        assert_eq!(alive.load(Ordering::SeqCst), 2);
        assert_eq!(connections.running(), 2);
        // The first one was closed: telling it to finish reaches nobody.
        first_done.notify_waiters();
        settle().await;
        assert_eq!(alive.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn finished_connections_do_not_count_against_the_bound() {
        let alive = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let never = Arc::new(Notify::new());
        let mut connections = Connections::new(2);
        connections.spawn(connection(&alive, &never));
        connections.spawn(connection(&alive, &done));
        settle().await;
        done.notify_waiters();
        settle().await;
        assert_eq!(connections.running(), 1);
        // Room for one more without closing the long-lived first connection.
        connections.spawn(connection(&alive, &never));
        settle().await;
        assert_eq!(alive.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn closing_the_oldest_with_nothing_open_reports_it() {
        let mut connections = Connections::new(4);
        assert!(!connections.close_oldest());
    }
}
