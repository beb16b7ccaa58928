//! One policy for accept loops that must not end or spin on an error: an error about one
//! connection (reset or aborted before it was accepted) is skipped at once; any other — EMFILE,
//! ENFILE, ENOBUFS, ENOMEM: the process or the system ran out of something — pauses the loop
//! briefly, since retrying at once would fail again and burn a core. The first such error is
//! reported once per loop.

use std::io::{Error, ErrorKind};
use std::time::Duration;

/// How long an accept loop waits after an error that is not about one connection.
pub const PAUSE: Duration = Duration::from_millis(100);

/// Whether `error` concerns only the connection being accepted (the next accept may succeed).
pub fn is_per_connection(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
    )
}

/// Whether `error` says the process or the system is out of descriptors or memory.
pub fn is_exhaustion(error: &Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The error state of one accept loop.
#[derive(Debug)]
pub struct AcceptErrors {
    /// The loop's name in the report.
    what: &'static str,
    /// Reported already: a loop under fd pressure would otherwise print ten lines a second.
    has_reported: bool,
}

impl AcceptErrors {
    /// The state of the accept loop called `what` (e.g. "kubesim").
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            has_reported: false,
        }
    }

    /// Call after `accept` failed with `error`, then `continue` the loop: returns at once for a
    /// per-connection error, after [`PAUSE`] for any other.
    pub async fn pause_after(&mut self, error: &Error) {
        if is_per_connection(error) {
            return;
        }
        if !self.has_reported {
            self.has_reported = true;
            let cause = if is_exhaustion(error) {
                " (out of descriptors or memory)"
            } else {
                ""
            };
            eprintln!(
                "{}: accept failed{cause}: {error}; pausing {PAUSE:?} after each such error (reported once)",
                self.what
            );
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_errors_are_told_apart_from_per_connection_ones() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let e = Error::from_raw_os_error(errno);
            assert!(is_exhaustion(&e) && !is_per_connection(&e), "{e}");
        }
        let reset = Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(is_per_connection(&reset) && !is_exhaustion(&reset));
    }

    #[tokio::test(start_paused = true)]
    async fn exhaustion_pauses_the_loop_and_a_reset_connection_does_not() {
        let mut errors = AcceptErrors::new("test");
        let start = tokio::time::Instant::now();
        errors
            .pause_after(&Error::from_raw_os_error(libc::ECONNABORTED))
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        errors
            .pause_after(&Error::from_raw_os_error(libc::EMFILE))
            .await;
        assert_eq!(start.elapsed(), PAUSE);
        assert!(errors.has_reported);
        errors
            .pause_after(&Error::from_raw_os_error(libc::ENFILE))
            .await;
        assert_eq!(start.elapsed(), PAUSE * 2);
    }
}
