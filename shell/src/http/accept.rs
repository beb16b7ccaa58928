//! What the accept loop does when `accept` fails.
//!
//! Most errors concern one connection that died before we took it (ECONNABORTED, a reset):
//! take the next one at once. Running out of file descriptors or kernel memory is different:
//! the error comes back at once on every call, so retrying at once spins a core at 100 %
//! while nothing improves. Then close our oldest connection (which frees a descriptor) and
//! wait, doubling the wait up to a second while the condition lasts.

use std::io;
use std::time::Duration;

use super::connections::Connections;

const FIRST_WAIT: Duration = Duration::from_millis(10);
const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// True for the errors that say the process or the machine is out of a resource.
pub(super) fn is_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The wait after resource exhaustion, doubled while it lasts and reset by a good accept.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The wait after this error: `None` to accept again at once.
    pub(super) fn wait_after(&mut self, error: &io::Error) -> Option<Duration> {
        if !is_exhaustion(error) {
            return None;
        }
        let wait = self.next.unwrap_or(FIRST_WAIT);
        self.next = Some((wait * 2).min(LONGEST_WAIT));
        Some(wait)
    }

    pub(super) fn on_success(&mut self) {
        self.next = None;
    }

    /// Carries out the policy: logs, frees a descriptor and waits when exhausted.
    pub(super) async fn on_error(&mut self, error: &io::Error, connections: &mut Connections) {
        match self.wait_after(error) {
            None => tracing::debug!(%error, "accept failed"),
            Some(wait) => {
                // Logged once per episode, not once per retry.
                if wait == FIRST_WAIT {
                    tracing::warn!(%error, "out of resources accepting connections; backing off");
                }
                connections.close_oldest();
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn a_connection_that_died_before_accept_is_skipped_at_once() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.wait_after(&os(libc::ECONNABORTED)), None);
        assert_eq!(backoff.wait_after(&os(libc::EPROTO)), None);
    }

    #[test]
    fn running_out_of_descriptors_waits_longer_each_time_up_to_a_second() {
        let mut backoff = Backoff::default();
        let waits: Vec<_> = (0..10)
            .map(|_| backoff.wait_after(&os(libc::EMFILE)))
            .collect();
        assert_eq!(waits[0], Some(Duration::from_millis(10)));
        assert_eq!(waits[1], Some(Duration::from_millis(20)));
        assert_eq!(waits[9], Some(Duration::from_secs(1)));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_good_accept_resets_the_wait() {
        let mut backoff = Backoff::default();
        backoff.wait_after(&os(libc::ENFILE));
        backoff.wait_after(&os(libc::ENFILE));
        backoff.on_success();
        assert_eq!(
            backoff.wait_after(&os(libc::ENOBUFS)),
            Some(Duration::from_millis(10))
        );
    }
}
