//! `ferrolb-shell`: the I/O shell both daemons (controller and speaker) share, so that each
//! concern exists once. Nothing here knows about Kubernetes or FerroLB's objects.
//!
//! - [`logging`]: the `--log-format` flag and the tracing subscriber (`RUST_LOG`).
//! - [`signal`]: the shutdown signal (SIGTERM from the kubelet, Ctrl-C by hand).
//! - [`http`]: HTTP/1.1 serving with a connection bound and timeouts, so neither a scraper nor an
//!   attacker can exhaust a daemon: [`http::serve`] for any handler (the webhook runs TLS in
//!   front of it), [`http::probes`] for `/metrics`, `/healthz` and `/readyz`.

pub mod http;
pub mod logging;
pub mod signal;
