//! `ferrolb-controller`: gives LoadBalancer Services their external IPs.
//!
//! - [`admission`]: what the validating webhook admits, judged against the cluster. Pure.
//! - [`alloc`]: the pure allocator: pools, sharing, families, restrictions.
//! - [`app`]: the wiring: [`run`] starts everything below on the caller's listeners.
//! - [`client`]: the API client's timeouts and the watch configuration.
//! - [`cache`]: the watches and what they keep, for the reconciler and the webhook.
//! - [`certs`]: the webhook's serving certificate (from a Secret, or self-made with its CA kept
//!   in the ValidatingWebhookConfiguration's caBundle).
//! - [`events`]: Kubernetes Events through a bounded queue.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`, and the hyper helpers the webhook shares.
//! - [`lease`]: leader election on a Lease, so that only one replica writes.
//! - [`metrics`]: the Prometheus metrics (MetalLB's names) and the readiness flags.
//! - [`plan`]: what one Service should look like (ingress IPs, pool annotation, Events), and the
//!   ConfigurationState status. Pure.
//! - [`reconcile`]: the watch-and-write shell around `alloc` and `plan`.
//! - [`retry`]: per-key exponential backoff with stored deadlines. Pure.
//! - [`task`]: spawned tasks that stop with their owner.
//! - [`view`]: the compact view of a Service the controller keeps. Pure.
//! - [`validate`]: the offline `validate` subcommand, checking manifests with the same code the
//!   webhook uses.
//! - [`webhook`]: the validating admission webhook's HTTPS shell around `admission`.

pub mod admission;
pub mod alloc;
pub mod app;
pub mod cache;
pub mod certs;
pub mod client;
pub mod events;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod retry;
pub mod task;
pub mod validate;
pub mod view;
pub mod webhook;

pub use app::{Listeners, RunError, Settings, WebhookSettings, run};
