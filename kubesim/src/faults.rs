//! Faults a test injects into a running kubesim through [`Faults`] (see `KubeSim::faults`):
//! pausing every request and watch stream, answering with 500/503/429 for a while or for the
//! next N requests, dropping every open watch, and holding the requests of one client (told
//! apart by its bearer token) that match a method and path until released. The restart fault (stop serving, serve again
//! on the same address with the store intact) is `KubeSim::restart`, since it owns the listener.
//!
//! Holds only the switches; the HTTP shell ([`super::server`]) consults them. No clock is read
//! except to check the end of a timed error window.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

/// An error status the server answers with instead of serving a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultStatus {
    /// 500 InternalError.
    InternalError,
    /// 503 ServiceUnavailable.
    ServiceUnavailable,
    /// 429 TooManyRequests with `Retry-After` (whole seconds, as the real server sends).
    TooManyRequests { retry_after_secs: u32 },
}

impl FaultStatus {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Self::InternalError => 500,
            Self::ServiceUnavailable => 503,
            Self::TooManyRequests { .. } => 429,
        }
    }

    /// The `Retry-After` header value, if this status carries one.
    pub fn retry_after_secs(self) -> Option<u32> {
        match self {
            Self::TooManyRequests { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        }
    }

    /// The `metav1.Status` body, worded as the real API server words these answers.
    pub fn to_status(self) -> Value {
        let (reason, message) = match self {
            Self::InternalError => (
                "InternalError",
                "Internal error occurred: injected by kubesim",
            ),
            Self::ServiceUnavailable => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            Self::TooManyRequests { .. } => (
                "TooManyRequests",
                "too many requests, please try again later",
            ),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": self.code(),
        });
        if let Some(secs) = self.retry_after_secs() {
            status["details"] = json!({"retryAfterSeconds": secs});
        }
        status
    }
}

/// How long an injected error lasts.
#[derive(Debug, Clone, Copy)]
enum Window {
    /// The next `n` requests.
    Requests(u32),
    /// Every request until this instant.
    Until(Instant),
}

/// Requests of one client that a test holds until [`Faults::release_held`]: a Lease write that
/// never returns for one replica while its other requests, and every other client's, go on.
/// Clients are told apart by their bearer token (each process under test gets a kubeconfig of
/// its own; without RBAC the token is not checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The bearer token the client sends.
    pub token: String,
    /// The HTTP method (`PUT`), or `None` for any.
    pub method: Option<String>,
    /// A part of the path (`/leases/`).
    pub path_part: String,
}

impl Hold {
    /// Whether a request with this token, method and path is held. Pure.
    pub fn matches(&self, token: &str, method: &str, path: &str) -> bool {
        self.token == token
            && self.method.as_deref().is_none_or(|m| m == method)
            && path.contains(&self.path_part)
    }
}

/// The fault switches of one kubesim. Shared by the server tasks; cheap to consult.
#[derive(Debug)]
pub struct Faults {
    /// `true` while paused: requests wait and watch streams send nothing.
    paused: watch::Sender<bool>,
    /// Bumped to end every open watch stream.
    watch_generation: watch::Sender<u64>,
    /// The error being injected, if any.
    failing: Mutex<Option<(FaultStatus, Window)>>,
    /// Requests to hold, by client.
    holds: Mutex<Vec<Hold>>,
    /// Bumped to let held requests go.
    released: watch::Sender<u64>,
    /// Requests held so far (a test checks that its fault was met).
    held_total: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            paused: watch::channel(false).0,
            watch_generation: watch::channel(0).0,
            failing: Mutex::new(None),
            holds: Mutex::new(Vec::new()),
            released: watch::channel(0).0,
            held_total: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// Every request (and every open watch stream) hangs from now until [`Faults::resume`].
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Ends a pause: waiting requests are answered and watch streams go on.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Waits while the server is paused.
    pub async fn wait_unpaused(&self) {
        let mut rx = self.paused.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we are borrowed.
        let _ = rx.wait_for(|paused| !*paused).await;
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: u32, status: FaultStatus) {
        *self.lock_failing() = Some((status, Window::Requests(n)));
    }

    /// Answers every request with `status` for `duration` from now.
    pub fn fail_for(&self, duration: Duration, status: FaultStatus) {
        *self.lock_failing() = Some((status, Window::Until(Instant::now() + duration)));
    }

    /// Stops injecting errors.
    pub fn stop_failing(&self) {
        *self.lock_failing() = None;
    }

    /// Whether this request must fail, and how; counts it against a `fail_next` window.
    pub fn take_failure(&self) -> Option<FaultStatus> {
        let mut failing = self.lock_failing();
        let (status, window) = (*failing)?;
        match window {
            Window::Requests(0) => {
                *failing = None;
                None
            }
            Window::Requests(n) => {
                *failing = (n > 1).then_some((status, Window::Requests(n - 1)));
                Some(status)
            }
            Window::Until(end) if Instant::now() < end => Some(status),
            Window::Until(_) => {
                *failing = None;
                None
            }
        }
    }

    /// Ends every watch stream open now (the connections stay up; clients re-watch).
    pub fn drop_watches(&self) {
        self.watch_generation.send_modify(|g| *g += 1);
    }

    /// A receiver that changes when open watches must end.
    pub fn watch_drops(&self) -> watch::Receiver<u64> {
        self.watch_generation.subscribe()
    }

    /// Holds the requests `hold` names from now until [`Faults::release_held`].
    pub fn hold(&self, hold: Hold) {
        self.lock_holds().push(hold);
    }

    /// Removes every hold and lets held requests go on (each is then served as usual).
    pub fn release_held(&self) {
        self.lock_holds().clear();
        self.released.send_modify(|g| *g += 1);
    }

    /// How many requests have been held so far.
    pub fn held_total(&self) -> u64 {
        self.held_total.load(Ordering::Relaxed)
    }

    /// Waits until released when a hold names this request; at once otherwise.
    pub async fn wait_unless_held(&self, token: &str, method: &str, path: &str) {
        // Subscribed before the check, so a release right after it is not missed.
        let mut released = self.released.subscribe();
        let is_held = self
            .lock_holds()
            .iter()
            .any(|h| h.matches(token, method, path));
        if is_held {
            self.held_total.fetch_add(1, Ordering::Relaxed);
            // The sender lives as long as `self`.
            let _ = released.changed().await;
        }
    }

    fn lock_holds(&self) -> std::sync::MutexGuard<'_, Vec<Hold>> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_failing(&self) -> std::sync::MutexGuard<'_, Option<(FaultStatus, Window)>> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_fails_exactly_n_requests() {
        let faults = Faults::default();
        faults.fail_next(2, FaultStatus::ServiceUnavailable);
        assert_eq!(faults.take_failure(), Some(FaultStatus::ServiceUnavailable));
        assert_eq!(faults.take_failure(), Some(FaultStatus::ServiceUnavailable));
        assert_eq!(faults.take_failure(), None);
    }

    #[test]
    fn a_hold_names_one_client_a_method_and_a_path_part() {
        let hold = Hold {
            token: "controller-a".into(),
            method: Some("PUT".into()),
            path_part: "/leases/".into(),
        };
        let lease = "/apis/coordination.k8s.io/v1/namespaces/x/leases/ferrolb-controller";
        assert!(hold.matches("controller-a", "PUT", lease));
        assert!(
            !hold.matches("controller-b", "PUT", lease),
            "another client"
        );
        assert!(
            !hold.matches("controller-a", "GET", lease),
            "another method"
        );
        assert!(!hold.matches("controller-a", "PUT", "/api/v1/services"));
        let any_method = Hold {
            method: None,
            ..hold
        };
        assert!(any_method.matches("controller-a", "GET", lease));
    }

    #[test]
    fn a_429_status_carries_retry_after_seconds() {
        let status = FaultStatus::TooManyRequests {
            retry_after_secs: 1,
        }
        .to_status();
        assert_eq!(status["code"], 429);
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["details"]["retryAfterSeconds"], 1);
    }
}
