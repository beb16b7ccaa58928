//! What the controller's integration tests share: the controller run in-process ([`Running`]),
//! a per-client request log with fault switches ([`Tap`]), and kubesim's API served in memory
//! ([`MemSim`]) so that whole scenarios run on paused tokio time.

#![allow(dead_code)] // each test file uses a part

pub mod memsim;
pub mod tap;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ferrolb_controller::{Listeners, RunError, Settings};
use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const NS: &str = "ferrolb-system";

/// The CRD manifests.
pub fn crds() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

/// An IPAddressPool in FerroLB's namespace.
pub fn pool(name: &str, addresses: &str) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": [addresses]}
    })
}

/// A LoadBalancer Service in `namespace`.
pub fn lb_service(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": name}}
    })
}

/// The first ingress IP of a Service.
pub fn ingress_ip(service: &Service) -> Option<String> {
    service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .clone()
}

/// kubesim with FerroLB's CRDs, its namespace, `shop` and one pool `lab`.
pub async fn start_sim(options: ferrolb_kubesim::Options, addresses: &str) -> KubeSim {
    let sim = KubeSim::start_with(options).await.expect("kubesim");
    sim.create_from(&crds()).expect("CRDs");
    for namespace in [NS, "shop"] {
        sim.create_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )
        .expect("namespace");
    }
    sim.create_object(pool("lab", addresses)).expect("pool");
    sim
}

/// A controller running in-process, as `main` would run it. Dropping it stops it at once.
pub struct Running {
    task: Option<JoinHandle<Result<(), RunError>>>,
    stop: Option<oneshot::Sender<()>>,
    /// Where `/metrics` is served, when it is.
    pub metrics: Option<SocketAddr>,
}

impl Running {
    /// Starts a controller with `settings` on `client`; serves `/metrics` on a port of its own
    /// when `metrics` is set, and the webhook on `webhook` when given.
    pub async fn start(
        settings: Settings,
        client: Client,
        metrics: bool,
        webhook: Option<TcpListener>,
    ) -> Running {
        let metrics_listener = match metrics {
            true => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")),
            false => None,
        };
        let metrics = metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel();
        let listeners = Listeners {
            metrics: metrics_listener,
            webhook,
        };
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(ferrolb_controller::run(
            settings, client, listeners, shutdown,
        ));
        Running {
            task: Some(task),
            stop: Some(stop),
            metrics,
        }
    }

    /// Stops it the way SIGKILL would: nothing more runs, the Lease is not released.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops it the way SIGTERM does: stop writing, release the Lease, return.
    pub async fn stop(&mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("controller task"),
            None => Ok(()),
        }
    }

    /// Whether it stopped by itself.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Polls `check` every `every` until it returns `Some`, failing with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(every).await;
    }
}
