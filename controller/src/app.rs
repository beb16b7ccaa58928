//! `app`: the controller's wiring, as a library function so that tests run the whole controller
//! in-process. [`run`] starts the endpoints on the listeners it is given, the webhook's
//! certificate upkeep, the elector and the reconciler, and stops them all when `shutdown`
//! completes (or when its future is dropped: every task it starts is owned by it).
//!
//! ```text
//!  main (flags, logging, signals) ──► run(settings, client, listeners, shutdown)
//!     metrics listener ──► http::serve_probes
//!     webhook listener ──► webhook::serve ◄── certs (Secret or self-made CA + caBundle)
//!     lease::run ──leadership──► reconcile::run ──► Service status, Events, pool status
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::lease::{self, LeadPublisher, Leadership, LeaseSettings};
use crate::metrics::{Health, Metrics, MetricsError};
use crate::reconcile::{self, ReconcileSettings, Shared};
use crate::task::AbortOnDrop;
use crate::{cache, certs, http, webhook};

/// How the controller is set up (from flags in `main`, from fixtures in tests).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespace FerroLB's configuration lives in.
    pub namespace: String,
    /// The `loadBalancerClass` served; `None` serves Services without one.
    pub lb_class: Option<String>,
    /// This replica's name, for Events.
    pub instance: String,
    /// Leader election; `None` always leads (a single replica).
    pub election: Option<LeaseSettings>,
    /// Where the webhook's certificate comes from.
    pub webhook: WebhookSettings,
}

/// The webhook's certificate: from a Secret, or self-made for the webhook Service's names.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// A `kubernetes.io/tls` Secret in the namespace holding `tls.crt` and `tls.key`.
    pub cert_secret: Option<String>,
    /// The Service in front of the webhook: the self-made certificate is valid for its names.
    pub service: String,
    /// Extra DNS names or IP addresses for the self-made certificate.
    pub hosts: Vec<String>,
    /// The ValidatingWebhookConfiguration whose caBundle gets the self-made CA.
    pub configuration: String,
    /// How long a self-made CA and certificate live; they are replaced after two thirds.
    pub ca_lifetime: Duration,
}

impl Settings {
    /// Settings for `namespace` with MetalLB's defaults: no class, no election, a self-made
    /// certificate for `ferrolb-webhook-service`.
    pub fn new(namespace: &str) -> Self {
        Settings {
            namespace: namespace.to_owned(),
            lb_class: None,
            instance: "ferrolb-controller".to_owned(),
            election: None,
            webhook: WebhookSettings {
                cert_secret: None,
                service: "ferrolb-webhook-service".to_owned(),
                hosts: Vec::new(),
                configuration: "ferrolb-webhook-configuration".to_owned(),
                ca_lifetime: certs::DEFAULT_CA_LIFETIME,
            },
        }
    }

    /// Elects a leader on the Lease `name` in the configuration namespace, as `identity`.
    pub fn with_election(mut self, name: &str, identity: &str, duration: Duration) -> Self {
        self.election = Some(LeaseSettings {
            name: name.to_owned(),
            namespace: self.namespace.clone(),
            identity: identity.to_owned(),
            duration,
        });
        self
    }
}

/// Sockets the controller serves on, bound by the caller (port 0 in tests).
#[derive(Debug, Default)]
pub struct Listeners {
    /// `/metrics`, `/healthz`, `/readyz` (plain HTTP); `None` serves none.
    pub metrics: Option<TcpListener>,
    /// The validating admission webhook (HTTPS); `None` serves none.
    pub webhook: Option<TcpListener>,
}

/// Why the controller stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// No usable webhook certificate.
    #[error(transparent)]
    Certificate(#[from] certs::CertError),
    /// The reconciler stopped on its own.
    #[error(transparent)]
    Reconcile(#[from] reconcile::RunError),
    /// The elector stopped on its own.
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    /// A task the controller started panicked or was cancelled.
    #[error("a controller task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl RunError {
    /// Stable CamelCase for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            RunError::Metrics(e) => e.reason(),
            RunError::Certificate(e) => e.reason(),
            RunError::Reconcile(e) => e.reason(),
            RunError::Lease(e) => e.reason(),
            RunError::Task(_) => "TaskFailed",
        }
    }
}

/// Runs the controller until `shutdown` completes, then releases the Lease once nothing writes
/// any more. Dropping the returned future stops every task at once (as a SIGKILL would, the
/// Lease is then not released).
pub async fn run(
    settings: Settings,
    client: Client,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    tracing::info!(namespace = settings.namespace, lb_class = ?settings.lb_class, "controller starting");
    let metrics = Arc::new(Metrics::new()?);
    let health = Arc::new(Health::default());
    // Dropping the set aborts every task in it.
    let mut tasks = JoinSet::new();

    if let Some(probes) = listeners.metrics {
        if let Ok(address) = probes.local_addr() {
            tracing::info!(%address, "serving /metrics, /healthz, /readyz");
        }
        tasks.spawn(http::serve_probes(
            probes,
            Arc::clone(&metrics),
            Arc::clone(&health),
        ));
    }
    let (caches, changes, watches) =
        cache::start(&client, &settings.namespace, settings.lb_class.clone());
    tasks.spawn(watches);
    if let Some(listener) = listeners.webhook {
        let context = webhook::Context {
            caches: caches.clone(),
            health: Arc::clone(&health),
            namespace: settings.namespace.clone(),
        };
        start_webhook(&settings, &client, listener, context, &mut tasks).await?;
    }

    let (leadership, publisher) = Leadership::channel(settings.election.is_none());
    health.set_leading(settings.election.is_none());
    metrics.leader.set(i64::from(settings.election.is_none()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut election = start_election(&settings, &client, publisher, stop_rx);

    let shared = Shared {
        metrics,
        health,
        leadership,
    };
    let controller = ReconcileSettings {
        namespace: settings.namespace.clone(),
        lb_class: settings.lb_class.clone(),
        instance: settings.instance.clone(),
    };
    reconcile::run(client, controller, shared, (caches, changes), shutdown).await?;
    // Nothing writes any more: the Lease can go to the standby.
    let _ = stop_tx.send(true);
    if let Some(elector) = election.elector.as_mut() {
        (&mut elector.0).await??;
    }
    drop(election);
    tracing::info!("controller stopped");
    Ok(())
}

/// The elector's task, or (without election) the publisher kept open: a closed channel tells
/// the reconciler to stop.
struct Election {
    elector: Option<AbortOnDrop<Result<(), lease::LeaseError>>>,
    _always_leading: Option<LeadPublisher>,
}

/// Starts the elector when election is on; it releases the Lease once `stop` turns true.
fn start_election(
    settings: &Settings,
    client: &Client,
    publisher: LeadPublisher,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Election {
    let Some(lease_settings) = settings.election.clone() else {
        return Election {
            elector: None,
            _always_leading: Some(publisher),
        };
    };
    tracing::info!(
        identity = lease_settings.identity,
        lease = lease_settings.name,
        "leader election on"
    );
    let api = kube::Api::namespaced(client.clone(), &lease_settings.namespace);
    let stop = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    Election {
        elector: Some(AbortOnDrop::spawn(lease::run(
            api,
            lease_settings,
            publisher,
            stop,
        ))),
        _always_leading: None,
    }
}

/// The webhook's certificate with its upkeep (reload from the Secret, or rotation of the
/// self-made CA and the caBundle), and its server.
async fn start_webhook(
    settings: &Settings,
    client: &Client,
    listener: TcpListener,
    context: webhook::Context,
    tasks: &mut JoinSet<()>,
) -> Result<(), RunError> {
    let webhook_settings = &settings.webhook;
    let resolver = match &webhook_settings.cert_secret {
        Some(secret) => {
            let serving = certs::from_secret(client.clone(), &settings.namespace, secret).await?;
            let resolver = Arc::new(certs::CertResolver::new(&serving)?);
            tasks.spawn(certs::secret::reload_from_secret(
                client.clone(),
                settings.namespace.clone(),
                secret.clone(),
                Arc::clone(&resolver),
                serving,
            ));
            resolver
        }
        None => {
            let mut names = certs::service_names(&webhook_settings.service, &settings.namespace);
            names.extend(webhook_settings.hosts.iter().cloned());
            let lifetime = webhook_settings.ca_lifetime;
            let serving = certs::generate(names.clone(), lifetime)?;
            let resolver = Arc::new(certs::CertResolver::new(&serving)?);
            let (ca, ca_rx) = watch::channel(serving.ca_pem.clone().unwrap_or_default());
            let (in_bundles, in_bundles_rx) = watch::channel(String::new());
            tasks.spawn(certs::keep_ca_bundle(
                client.clone(),
                webhook_settings.configuration.clone(),
                ca_rx,
                in_bundles,
            ));
            tasks.spawn(certs::rotate::rotate(
                names,
                lifetime,
                Arc::clone(&resolver),
                ca,
                in_bundles_rx,
            ));
            resolver
        }
    };
    let acceptor = certs::acceptor(resolver)?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving the admission webhook");
    }
    tasks.spawn(webhook::serve(listener, acceptor, context));
    Ok(())
}
