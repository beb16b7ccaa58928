//! `ferrolb-kubesim`: an in-process Kubernetes API server for tests. It speaks the real HTTP API (plain
//! HTTP/1.1 and JSON) so that the real kube-rs client, `kubectl` and Helm use it unmodified.
//! Where it and a real API server differ, the real one is right.
//!
//! Module map:
//! - [`server`]: HTTP shell — accept loop, routing to the modules below, response bodies.
//! - [`routing`]: which endpoint a path names; query parameters.
//! - [`request`]: a parsed resource request, its body, field manager and `continue` tokens.
//! - [`api`]: the verbs on a resource (get/list/create/update/patch/delete/watch), status
//!   subresource rules, pagination, CRD registration.
//! - [`accounts`]: tokens, clients and kubeconfigs for ServiceAccounts and users (RBAC tests).
//! - [`admission`]: checks, schema handling and defaults applied to an object before it is
//!   written; the status-subresource rule.
//! - [`auth`]: bearer tokens, RBAC authorisation, SelfSubjectAccessReviews (with `Options::rbac`).
//! - [`storage`]: objects, the global resourceVersion, server-owned metadata, finalizers,
//!   namespace lifecycle, the event window.
//! - [`gc`]: deletion propagation to dependents (ownerReferences), synchronously.
//! - [`watch`]: watch event streams, bookmarks, selector transitions, timeouts.
//! - [`webhooks`]: validating admission webhooks called over HTTPS.
//! - [`resources`]: the registry of served types (built-ins and CRD-defined).
//! - [`aggregated`]: aggregated discovery (`APIGroupDiscoveryList`) for `/api` and `/apis`.
//! - [`discovery`]: `/version`, `/api`, `/apis`, resource lists, OpenAPI v3.
//! - [`openapi_v2`]: `/openapi/v2`, valid and empty (kinds are described in v3 only).
//! - [`schema`]: CR structural schemas — prune, default, validate.
//! - [`tls`]: the serving certificate for HTTPS when RBAC is on.
//! - [`tables`]: server-side `Table`s and printer columns.
//! - [`validation`]: metadata checks for every kind (name format, labels).
//! - [`builtin`]: write-time behaviour of built-in kinds (Service defaults, CRD status, ...).
//! - [`patch`]: merge, JSON and strategic merge patches.
//! - [`keyed`]: the lists server-side apply merges by a key (webhooks by name).
//! - [`managed`]: server-side apply's field ownership (`managedFields`, conflicts), simplified.
//! - [`smp`]: strategic merge patch with a fixed table of merge keys.
//! - [`cel`]: a small evaluator for CRD `x-kubernetes-validations` rules; refuses what it cannot
//!   evaluate.
//! - [`rules`]: a schema's CEL rules — compiled when a CRD is written, evaluated on each write.
//! - [`protobuf`]: decoding the protobuf bodies typed client-go clients send.
//! - [`selectors`]: label and field selectors.
//! - [`options`]: the tunables ([`Options`]).
//! - [`meta`]: metadata helpers, timestamps, uid generation.
//! - [`error`]: API errors as `metav1.Status`.
//! - [`event_views`]: core/v1 and events.k8s.io/v1 Events as two views of one stored object.
//! - [`faults`]: injected faults for tests (pause, error answers, dropped watches, one
//!   client's requests held).
//! - [`load`]: the watch load run shared by the soak test and the watch bench.
//! - [`kubeconfig`]: the kubeconfig file for clients.
//! - [`fixtures`]: manifests, direct object creation and raw requests for tests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = ferrolb_kubesim::KubeSim::start().await?;
//! let client = sim.client();
//! // kubectl --kubeconfig sim.kubeconfig_path() get ns
//! # drop(client); Ok(()) }
//! ```

pub mod accounts;
pub mod admission;
pub mod aggregated;
pub mod api;
pub mod auth;
pub mod builtin;
pub mod cel;
pub mod discovery;
pub mod error;
pub mod event_views;
pub mod faults;
pub mod fixtures;
pub mod gc;
pub mod keyed;
pub mod kubeconfig;
pub mod load;
pub mod managed;
pub mod meta;
pub mod openapi_v2;
pub mod options;
pub mod patch;
pub mod protobuf;
pub mod request;
pub mod resources;
pub mod routing;
pub mod rules;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod smp;
pub mod storage;
pub mod tables;
pub mod tls;
pub mod validation;
pub mod watch;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::ApiState;
pub use api::Options;
pub use faults::{FaultStatus, Faults, Hold};
use tokio::net::TcpListener;
use tokio::sync::watch as shutdown_channel;

/// A running kubesim: the server task, its address and a kubeconfig file. Dropping it stops
/// the server and removes the kubeconfig.
#[derive(Debug)]
pub struct KubeSim {
    address: SocketAddr,
    state: Arc<ApiState>,
    /// Telling the accept loop and every connection to stop; replaced by each restart.
    shutdown: Mutex<shutdown_channel::Sender<bool>>,
    /// Holds the kubeconfig; removed on drop.
    dir: tempfile::TempDir,
    /// The bearer token of the admin user behind `client()` and the kubeconfig (sent only
    /// when RBAC is on).
    admin_token: String,
}

impl KubeSim {
    /// Starts a kubesim on 127.0.0.1 with a free port and default options.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// Starts a kubesim on 127.0.0.1 with a free port.
    pub async fn start_with(options: Options) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve_on(listener, options).await
    }

    /// Serves on a listener the caller bound.
    pub async fn serve_on(listener: TcpListener, options: Options) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(address.port());
        let rbac = options.rbac;
        let mut state = ApiState::new(options, seed);
        if rbac {
            state.tls = Some(tls::serving().map_err(std::io::Error::other)?);
        }
        let state = Arc::new(state);
        let admin_token = format!("kubesim-admin-{seed:016x}");
        state
            .tokens
            .insert(admin_token.clone(), auth::UserInfo::admin());
        state.bootstrap().map_err(std::io::Error::other)?;
        let (shutdown, rx) = shutdown_channel::channel(false);
        tokio::spawn(server::serve(listener, Arc::clone(&state), rx));
        let dir = tempfile::tempdir()?;
        let sim = Self {
            address,
            state,
            shutdown: Mutex::new(shutdown),
            dir,
            admin_token,
        };
        sim.write_kubeconfig(&sim.kubeconfig_path())?;
        Ok(sim)
    }

    /// The CA (PEM) of the HTTPS serving certificate, when RBAC is on: clients reaching the
    /// server through another address (a forward in a lab namespace) verify with it and the TLS
    /// name `localhost`.
    pub fn ca_pem(&self) -> Option<String> {
        self.state.tls.as_ref().map(|tls| tls.ca_pem.clone())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A kubeconfig file for kubectl and Helm (context `kubesim`, namespace `default`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Writes a kubeconfig for this server to another path.
    /// With RBAC on, the file uses HTTPS (kubectl sends tokens only over TLS) and the admin token.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.render_kubeconfig("default", self.admin_token()))
    }

    /// A kubeconfig's text for this server: HTTPS with the CA when it serves TLS.
    fn render_kubeconfig(&self, namespace: &str, token: Option<&str>) -> String {
        match &self.state.tls {
            Some(tls) => kubeconfig::render_tls(
                &format!("https://{}", self.address),
                namespace,
                token,
                &tls.ca_pem,
            ),
            None => kubeconfig::render_with_token(&self.url(), namespace, token),
        }
    }

    /// The admin token when RBAC is on (None otherwise: no credentials are needed).
    fn admin_token(&self) -> Option<&str> {
        self.state.options.rbac.then_some(self.admin_token.as_str())
    }

    /// A kube-rs client configuration for this server.
    pub fn client_config(&self) -> kube::Config {
        let uri: hyper::Uri = self
            .url()
            .parse()
            .expect("an http://IP:PORT URL is a valid URI");
        let mut config = kube::Config::new(uri);
        config.auth_info.token = self.admin_token().map(|t| t.to_owned().into());
        config
    }

    /// A kube-rs client for this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.client_config())
            .expect("a plain-HTTP client needs no TLS setup")
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.store.resource_version()
    }

    /// The requests answered so far, oldest first (the last 10 000).
    pub fn requests(&self) -> Vec<api::RequestRecord> {
        self.state.requests()
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&self) {
        let _ = self
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(true);
    }

    /// The fault switches: pause/resume, error answers, dropping every open watch.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Restarts the server with the same state: closes the listener and every connection
    /// (watches included), stays down for `down_for`, then serves again on the same address with
    /// every object and the resourceVersion counter intact, so clients reconnect. Returns once
    /// the server accepts connections again.
    pub async fn restart(&self, down_for: Duration) -> std::io::Result<()> {
        self.stop();
        tokio::time::sleep(down_for).await;
        // The old accept loop drops its listener as soon as it runs; retry the bind until then.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (shutdown, rx) = shutdown_channel::channel(false);
        *self.shutdown.lock().unwrap_or_else(|e| e.into_inner()) = shutdown;
        tokio::spawn(server::serve(listener, Arc::clone(&self.state), rx));
        Ok(())
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.stop();
    }
}
