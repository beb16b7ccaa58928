//! FerroLB installed with Helm into the cluster lab: kubesim with RBAC on and the webhook
//! Service mapped to the chart kubelet's proxy, `helm install/upgrade/uninstall` through the
//! Helm v4 engine, the [`Kubelet`] running what Helm stored, and `kubectl` as the user. The
//! chart e2e test and the `ferrolb-lab --chart` demo both use it.

use std::path::Path;
use std::time::{Duration, Instant};

use ferrolb_kubesim::Options;
use ferrolb_netlab::LabError;
use serde_json::Value;

use super::binaries::Daemons;
use super::kubelet::{Kubelet, KubeletError};
use super::service_proxy::ServiceProxy;
use super::{ChartError, Helm, release_request};
use crate::cluster::{
    BGP_POOL, Binaries, ClusterLab, L2_POOL, NAMESPACE, NODE_AS, ROUTER_AS, ROUTER_V4, Setup,
};

/// The Service the chart's webhook configuration names.
pub const WEBHOOK_SERVICE: &str = "ferrolb-webhook-service";

/// Anything the chart lab can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ChartLabError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(transparent)]
    Kubelet(#[from] KubeletError),
    #[error("kubectl {args}: {stderr}")]
    Kubectl { args: String, stderr: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ChartLabError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Lab(_) => "Lab",
            Self::Chart(e) => e.reason(),
            Self::Kubelet(e) => e.reason(),
            Self::Kubectl { .. } => "Kubectl",
            Self::Io(_) => "Io",
        }
    }
}

/// The lab with Helm and the kubelet.
#[derive(Debug)]
pub struct ChartLab {
    pub lab: ClusterLab,
    pub kubelet: Kubelet,
    pub helm: Helm,
}

impl ChartLab {
    /// Builds the lab (`node_count` nodes, the router with `with_router`) with an empty API
    /// server: no CRDs, no namespace, RBAC on. Nothing is installed yet.
    pub async fn start(
        tag: &str,
        node_count: u8,
        with_router: bool,
        daemons: Daemons,
    ) -> Result<Self, ChartLabError> {
        let (listener, proxy_address) = ServiceProxy::bind().await?;
        let mut sim = Options {
            rbac: true,
            ..Options::default()
        };
        sim.webhook_services
            .insert(format!("{NAMESPACE}/{WEBHOOK_SERVICE}"), proxy_address);
        let binaries = Binaries {
            speaker: daemons.speaker.clone(),
            controller: Some(daemons.controller.clone()),
        };
        let setup = Setup {
            sim,
            without_ferrolb_objects: true,
        };
        let lab = ClusterLab::start_with(tag, node_count, with_router, binaries, setup).await?;
        let proxy = ServiceProxy::serve(listener)?;
        let kubelet = Kubelet::new(&lab, NAMESPACE, daemons, proxy).await?;
        Ok(Self {
            lab,
            kubelet,
            helm: Helm::new()?,
        })
    }

    /// Runs a Helm release action with `values`; the answer (a Helm error is an `Err`).
    pub async fn helm(&self, action: &str, values: Value) -> Result<Value, ChartError> {
        let kubeconfig = self.lab.sim.kubeconfig_path();
        self.helm
            .one(release_request(action, &kubeconfig, NAMESPACE, values))
            .await
    }

    /// `helm install` then the kubelet starts what it stored.
    pub async fn install(&mut self, values: Value) -> Result<Value, ChartLabError> {
        let release = self.helm("install", values).await?;
        self.kubelet.sync(&mut self.lab).await?;
        Ok(release)
    }

    /// `helm upgrade` then the kubelet rolls what changed.
    pub async fn upgrade(&mut self, values: Value) -> Result<Value, ChartLabError> {
        let release = self.helm("upgrade", values).await?;
        self.kubelet.sync(&mut self.lab).await?;
        Ok(release)
    }

    /// `helm uninstall` then the kubelet stops what is gone.
    pub async fn uninstall(&mut self) -> Result<Value, ChartLabError> {
        let release = self.helm("uninstall", Value::Null).await?;
        self.kubelet.sync(&mut self.lab).await?;
        Ok(release)
    }

    /// Runs `kubectl` as the cluster admin with `stdin`; its stdout.
    pub async fn kubectl(&self, args: &[&str], stdin: &str) -> Result<String, ChartLabError> {
        use tokio::io::AsyncWriteExt as _;
        let home = self.lab.net.path("kubectl-home");
        let mut child = tokio::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.lab.sim.kubeconfig_path())
            .env("HOME", &home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            return Err(ChartLabError::Kubectl {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply` of `yaml` (or of the files `-f` names with an empty `yaml`), retried
    /// while the webhook is not serving yet (the controllers are starting); the last refusal
    /// after `within`.
    pub async fn apply(
        &self,
        args: &[&str],
        yaml: &str,
        within: Duration,
    ) -> Result<String, ChartLabError> {
        let deadline = Instant::now() + within;
        loop {
            match self.kubectl(args, yaml).await {
                Ok(out) => return Ok(out),
                Err(ChartLabError::Kubectl { stderr, .. })
                    if is_webhook_unavailable(&stderr) && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The lab's IP pools and advertisements (as `ClusterLab::apply_standard_config`), through
    /// the API and so through the chart's webhook.
    pub async fn apply_lab_config(&self, within: Duration) -> Result<String, ChartLabError> {
        self.apply(&["apply", "-f", "-"], &lab_config(), within)
            .await
    }

    /// Applies the files of `dir` (e.g. `examples/`).
    pub async fn apply_dir(&self, dir: &Path, within: Duration) -> Result<String, ChartLabError> {
        let dir = dir.to_string_lossy().into_owned();
        self.apply(&["apply", "-f", &dir], "", within).await
    }
}

/// True when kubectl's error says the webhook could not be called (not that it refused).
fn is_webhook_unavailable(stderr: &str) -> bool {
    stderr.contains("failed calling webhook")
}

/// The lab's configuration as YAML: pool `l2` announced on `eth0`, pool `bgp` to the router.
pub fn lab_config() -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: l2, namespace: {NAMESPACE}}}
spec: {{addresses: [{l2}]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: {NAMESPACE}}}
spec: {{ipAddressPools: [l2], interfaces: [eth0]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp, namespace: {NAMESPACE}}}
spec: {{addresses: [{bgp}]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router, namespace: {NAMESPACE}}}
spec: {{myASN: {NODE_AS}, peerASN: {ROUTER_AS}, peerAddress: \"{ROUTER_V4}\", holdTime: 9s,
        dualStackAddressFamily: true, enableGracefulRestart: true}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {NAMESPACE}}}
spec: {{ipAddressPools: [bgp], communities: [\"64512:100\"]}}
",
        l2 = list(&L2_POOL),
        bgp = list(&BGP_POOL),
    )
}
