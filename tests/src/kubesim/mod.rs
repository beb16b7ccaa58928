//! `kubesim`: an in-process Kubernetes API server for tests. It speaks the real HTTP API (plain
//! HTTP/1.1 and JSON) so that the real kube-rs client, `kubectl` and Helm use it unmodified.
//! Where it and a real API server differ, the real one is right.
//!
//! Module map:
//! - [`server`]: HTTP shell — accept loop, routing to the modules below, response bodies.
//! - [`routing`]: which endpoint a path names; query parameters.
//! - [`api`]: the verbs on a resource (get/list/create/update/patch/delete/watch), status
//!   subresource rules, pagination, CRD registration.
//! - [`admission`]: checks, schema handling and defaults applied to an object before it is
//!   written; the status-subresource rule.
//! - [`storage`]: objects, the global resourceVersion, server-owned metadata, finalizers,
//!   namespace lifecycle, the event window.
//! - [`watch`]: watch event streams, bookmarks, selector transitions, timeouts.
//! - [`resources`]: the registry of served types (built-ins and CRD-defined).
//! - [`discovery`]: `/version`, `/api`, `/apis`, resource lists, OpenAPI v3.
//! - [`schema`]: CR structural schemas — prune, default, validate.
//! - [`tables`]: server-side `Table`s and printer columns.
//! - [`validation`]: metadata checks for every kind (name format, labels).
//! - [`builtin`]: write-time behaviour of built-in kinds (Service defaults, CRD status, ...).
//! - [`patch`]: merge, JSON, strategic merge and (approximate) apply patches.
//! - [`smp`]: strategic merge patch with a fixed table of merge keys.
//! - [`cel`]: a small evaluator for CRD `x-kubernetes-validations` rules.
//! - [`protobuf`]: decoding the protobuf bodies typed client-go clients send.
//! - [`selectors`]: label and field selectors.
//! - [`meta`]: metadata helpers, timestamps, uid generation.
//! - [`error`]: API errors as `metav1.Status`.
//! - [`kubeconfig`]: the kubeconfig file for clients.
//! - [`fixtures`]: manifests, direct object creation and raw requests for tests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = ferrolb_tests::kubesim::KubeSim::start().await?;
//! let client = sim.client();
//! // kubectl --kubeconfig sim.kubeconfig_path() get ns
//! # drop(client); Ok(()) }
//! ```

pub mod admission;
pub mod api;
pub mod builtin;
pub mod cel;
pub mod discovery;
pub mod error;
pub mod fixtures;
pub mod kubeconfig;
pub mod meta;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod routing;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod smp;
pub mod storage;
pub mod tables;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::ApiState;
pub use api::Options;
use tokio::net::TcpListener;
use tokio::sync::watch as shutdown_channel;

/// A running kubesim: the server task, its address and a kubeconfig file. Dropping it stops
/// the server and removes the kubeconfig.
#[derive(Debug)]
pub struct KubeSim {
    address: SocketAddr,
    state: Arc<ApiState>,
    /// Telling the accept loop and every connection to stop.
    shutdown: shutdown_channel::Sender<bool>,
    /// Holds the kubeconfig; removed on drop.
    dir: tempfile::TempDir,
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
        let state = Arc::new(ApiState::new(options, seed));
        state.bootstrap().map_err(std::io::Error::other)?;
        let (shutdown, rx) = shutdown_channel::channel(false);
        tokio::spawn(server::serve(listener, Arc::clone(&state), rx));
        let dir = tempfile::tempdir()?;
        let sim = Self {
            address,
            state,
            shutdown,
            dir,
        };
        kubeconfig::write(&sim.kubeconfig_path(), &sim.url())?;
        Ok(sim)
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
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        kubeconfig::write(path, &self.url())
    }

    /// A kube-rs client configuration for this server.
    pub fn client_config(&self) -> kube::Config {
        let uri: hyper::Uri = self
            .url()
            .parse()
            .expect("an http://IP:PORT URL is a valid URI");
        kube::Config::new(uri)
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
        let _ = self.shutdown.send(true);
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.stop();
    }
}
