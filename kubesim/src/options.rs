//! The tunables of a kubesim instance ([`Options`]): watch windows and timeouts, request
//! limits, webhook service addresses and whether authentication and RBAC are on. Values only.

use std::time::Duration;

use super::webhooks::ServiceAddresses;

/// Tunables of a kubesim instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many recent events watches can resume from; older RVs get 410 Gone.
    pub event_window: usize,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// The watch timeout when the client gives none.
    pub default_watch_timeout: Duration,
    /// How long a client may take to send a request's headers before the connection is closed
    /// (slowloris protection).
    pub header_read_timeout: Duration,
    /// The largest request body accepted; larger ones get 413 (the real server: 3 MiB).
    pub max_request_body_bytes: usize,
    /// Where admission webhooks given as `clientConfig.service` listen: `namespace/name` →
    /// address (there is no cluster network). The TLS name checked is `name.namespace.svc`.
    pub webhook_services: ServiceAddresses,
    /// Authentication and RBAC: every request needs a bearer token minted by the test
    /// (`KubeSim::client()` and the kubeconfig carry an admin one) and RBAC permission.
    pub rbac: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            event_window: 1000,
            bookmark_interval: Duration::from_secs(10),
            default_watch_timeout: Duration::from_secs(1800),
            header_read_timeout: Duration::from_secs(10),
            max_request_body_bytes: 3 * 1024 * 1024,
            webhook_services: ServiceAddresses::new(),
            rbac: false,
        }
    }
}
