//! FerroLB's Helm chart (`charts/ferrolb`) as tests see it: the Helm v4 engine driven through
//! `tests/helm/chart.py` (PyPI `helm-python-sdk`: lint, schema validation, offline render,
//! install/upgrade/uninstall into kubesim), and the rendered objects as JSON values.
//!
//! - [`manifests`]: the rendered objects, looked up by kind and name (pure, no I/O).
//! - [`binaries`]: the controller and speaker binaries, built fresh for this crate's tests.
//! - [`pods`]: a Pod template as a command line, environment and Secret files (pure).
//! - [`kubelet`]: the chart "kubelet" running the installed workloads in the network lab.
//! - [`service_proxy`]: a Service's endpoints in Pod namespaces, for kubesim's webhook calls.
//! - [`lab`]: the cluster lab with FerroLB installed by Helm and run by the kubelet.
//! - [`rbac`]: requests and Role rules as RBAC attributes, for the least-privilege check (pure).

pub mod binaries;
pub mod kubelet;
pub mod lab;
pub mod manifests;
pub mod pods;
pub mod rbac;
pub mod service_proxy;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub use manifests::Manifests;

/// The chart's directory in this checkout.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb")
}

/// The folder of the generated CRD manifests (the `ferrolb-api` crate's).
pub fn generated_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

/// Where the chart keeps its copy of the CRDs (the `crds` subchart's `crds/` folder).
pub fn chart_crds_dir() -> PathBuf {
    chart_dir().join("charts/crds/crds")
}

/// Running the Helm driver failed (not a Helm error: those are answers).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("the Helm driver failed ({status}): {stderr}")]
    Driver { status: String, stderr: String },
    #[error("the Helm driver's answer is not JSON: {error}: {stdout}")]
    Answer { error: String, stdout: String },
    #[error("{action}: Helm says: {message}")]
    Helm { action: String, message: String },
    #[error("rendered manifest {template}: {error}")]
    Yaml { template: String, error: String },
}

impl ChartError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Spawn { .. } => "Spawn",
            Self::Driver { .. } => "Driver",
            Self::Answer { .. } => "Answer",
            Self::Helm { .. } => "Helm",
            Self::Yaml { .. } => "Yaml",
        }
    }
}

/// True when python3 can import the Helm SDK. Without it a test skips with a message, except
/// under `CI=true`, where it panics (scripts/install-deps.sh installs the SDK).
pub async fn sdk_available() -> bool {
    let found = tokio::process::Command::new("python3")
        .args(["-c", "import helm_python"])
        .output()
        .await
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "helm-python-sdk is required in CI: run scripts/install-deps.sh"
        );
        println!("python3 with helm-python-sdk not found: skipping the chart test");
    }
    found
}

/// The Helm engine pointed at the chart, with its own HOME so Helm's caches stay in the test.
#[derive(Debug)]
pub struct Helm {
    chart: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// The driver for `charts/ferrolb`.
    pub fn new() -> Result<Self, ChartError> {
        Self::for_chart(chart_dir())
    }

    /// The driver for another chart directory.
    pub fn for_chart(chart: PathBuf) -> Result<Self, ChartError> {
        let home = tempfile::tempdir().map_err(|source| ChartError::Spawn {
            command: "tempdir".into(),
            source,
        })?;
        // The driver runs in the temporary HOME: Helm needs the chart's absolute path.
        let chart = chart.canonicalize().unwrap_or(chart);
        Ok(Self { chart, home })
    }

    /// Runs `requests` (see tests/helm/chart.py) in one driver process; one answer each, in
    /// order. A Helm error is an answer (`{"error", "type"}`), not an `Err`.
    pub async fn batch(&self, requests: &[Value]) -> Result<Vec<Value>, ChartError> {
        use tokio::io::AsyncWriteExt as _;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/chart.py");
        let home = self.home.path();
        let mut child = tokio::process::Command::new("python3")
            .arg(&script)
            .arg(&self.chart)
            .env("HOME", home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .current_dir(home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ChartError::Spawn {
                command: format!("python3 {}", script.display()),
                source,
            })?;
        let input = Value::from(requests.to_vec()).to_string();
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(|source| ChartError::Spawn {
                    command: "writing the requests".into(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| ChartError::Spawn {
                command: "python3".into(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(ChartError::Driver {
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let answers: Vec<Value> =
            serde_json::from_str(&stdout).map_err(|e| ChartError::Answer {
                error: e.to_string(),
                stdout: stdout.chars().take(2000).collect(),
            })?;
        Ok(answers)
    }

    /// Runs one request; a Helm error becomes [`ChartError::Helm`].
    pub async fn one(&self, request: Value) -> Result<Value, ChartError> {
        let action = request["action"].as_str().unwrap_or("?").to_owned();
        let answer = self
            .batch(&[request])
            .await?
            .pop()
            .ok_or_else(|| ChartError::Answer {
                error: "no answer".into(),
                stdout: String::new(),
            })?;
        match answer.get("error").and_then(Value::as_str) {
            Some(message) => Err(ChartError::Helm {
                action,
                message: message.to_owned(),
            }),
            None => Ok(answer),
        }
    }

    /// Renders the chart offline with `values` as release `ferrolb` in `ferrolb-system`.
    pub async fn render(&self, values: Value) -> Result<Manifests, ChartError> {
        let answer = self
            .one(json!({"action": "render", "values": values}))
            .await?;
        Manifests::from_render(&answer)
    }
}

/// An install/upgrade/uninstall request for release `ferrolb` in `namespace` of the cluster in
/// `kubeconfig`.
pub fn release_request(action: &str, kubeconfig: &Path, namespace: &str, values: Value) -> Value {
    json!({"action": action, "kubeconfig": kubeconfig, "namespace": namespace,
           "name": "ferrolb", "values": values})
}
