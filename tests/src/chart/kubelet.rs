//! The chart "kubelet": runs what `helm install` stored in kubesim. It reads the Deployments and
//! DaemonSets of FerroLB's namespace and, for each Pod they call for, creates the Pod object
//! (owned by its workload, so an uninstall deletes it and, through it, what the binaries own)
//! and starts the real binary with exactly the rendered args and env: downward API filled in,
//! Secret volumes materialised (paths into them rewritten, there being no mount namespace per
//! container), and the ServiceAccount's identity (a kubesim token for it, RBAC enforced).
//! Speakers run in the lab's node namespaces (host network), controller replicas each in a Pod
//! namespace of their own on the switch; the webhook Service reaches them through
//! [`ServiceProxy`]. [`Kubelet::sync`] is called after each Helm action: it starts missing
//! Pods, replaces Pods whose workload changed (rolling: start the new one, then stop the old
//! one, one Pod at a time) and stops Pods whose workload is gone (SIGTERM, grace period, SIGKILL).
//!
//! ```text
//!   kubesim ── webhook Service ──► ServiceProxy ──► ctl-<g>-<i> netns :9443 (controller)
//!      ▲ 192.0.2.1:6443 (switch)   node-1..N netns: speaker (host network of the node)
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_netlab::LabError;
use serde_json::{Value, json};

use super::binaries::Daemons;
use super::pods::{self, PodIdentity, PodPlan};
use super::service_proxy::{Endpoint, ServiceProxy};
use crate::cluster::{API, ClusterLab};

/// What went wrong running a workload.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error(transparent)]
    Pod(#[from] pods::PodError),
    #[error("pod {pod}: serviceaccount {namespace}/{name} not found")]
    MissingServiceAccount {
        pod: String,
        namespace: String,
        name: String,
    },
    #[error("{what}: {detail}")]
    Api { what: String, detail: String },
    #[error(transparent)]
    Lab(#[from] LabError),
}

impl KubeletError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Pod(e) => e.reason(),
            Self::MissingServiceAccount { .. } => "MissingServiceAccount",
            Self::Api { .. } => "Api",
            Self::Lab(_) => "Lab",
        }
    }
}

fn api<E: std::fmt::Display>(what: impl Into<String>) -> impl FnOnce(E) -> KubeletError {
    let what = what.into();
    move |e| KubeletError::Api {
        what,
        detail: e.to_string(),
    }
}

/// A Pod this kubelet runs.
#[derive(Debug, Clone)]
pub struct RunningPod {
    pub name: String,
    pub uid: String,
    /// `Deployment/NAME` or `DaemonSet/NAME`.
    pub owner: String,
    pub generation: i64,
    /// The lab role (network namespace) it runs in.
    pub role: String,
    pub node: String,
    pub pid: u32,
    pub grace: Duration,
    /// The container's port numbers by name.
    pub ports: BTreeMap<String, u16>,
}

/// The kubelet of one lab and namespace.
#[derive(Debug)]
pub struct Kubelet {
    namespace: String,
    daemons: Daemons,
    webhook: ServiceProxy,
    pods: Vec<RunningPod>,
    /// Pod namespaces made so far (the next one's address and name come from it).
    pod_hosts: u8,
    dir: PathBuf,
}

impl Kubelet {
    /// A kubelet for `namespace` serving the webhook Service through `webhook`. Registers the
    /// lab's Nodes as a kubelet does (the `kubernetes.io/os` and `arch` labels the chart's
    /// nodeSelector asks for).
    pub async fn new(
        lab: &ClusterLab,
        namespace: &str,
        daemons: Daemons,
        webhook: ServiceProxy,
    ) -> Result<Self, KubeletError> {
        let labels = json!({"metadata": {"labels": {
            "kubernetes.io/os": "linux", "kubernetes.io/arch": std::env::consts::ARCH}}});
        for node in &lab.nodes {
            let path = format!("/api/v1/nodes/{}", node.name);
            let reply = lab
                .sim
                .raw(
                    "PATCH",
                    &path,
                    Some("application/merge-patch+json"),
                    None,
                    Some(&labels),
                )
                .await
                .map_err(api("labelling a Node"))?;
            if reply.status != 200 {
                return Err(KubeletError::Api {
                    what: format!("labelling Node {}", node.name),
                    detail: reply.text(),
                });
            }
        }
        let dir = lab.net.path("kubelet");
        std::fs::create_dir_all(&dir).map_err(api("kubelet directory"))?;
        Ok(Self {
            namespace: namespace.to_owned(),
            daemons,
            webhook,
            pods: Vec::new(),
            pod_hosts: 0,
            dir,
        })
    }

    /// The Pods running now.
    pub fn pods(&self) -> &[RunningPod] {
        &self.pods
    }

    /// The speaker Pod on `node`, if one runs.
    pub fn speaker_on(&self, node: &str) -> Option<&RunningPod> {
        self.pods
            .iter()
            .find(|p| p.owner.starts_with("DaemonSet/") && p.node == node)
    }

    /// Makes the running Pods match the stored workloads (see the module doc).
    pub async fn sync(&mut self, lab: &mut ClusterLab) -> Result<(), KubeletError> {
        let workloads = self.workloads(lab).await?;
        // Stop Pods whose workload is gone.
        let gone: Vec<RunningPod> = self
            .pods
            .iter()
            .filter(|p| !workloads.iter().any(|w| owner_of(w) == p.owner))
            .cloned()
            .collect();
        for pod in gone {
            self.stop(lab, &pod.name).await?;
        }
        for workload in &workloads {
            self.sync_workload(lab, workload).await?;
        }
        self.publish_endpoints(lab);
        Ok(())
    }

    /// The Deployments and DaemonSets of the namespace.
    async fn workloads(&self, lab: &ClusterLab) -> Result<Vec<Value>, KubeletError> {
        let mut out = Vec::new();
        for plural in ["deployments", "daemonsets"] {
            let path = format!("/apis/apps/v1/namespaces/{}/{plural}", self.namespace);
            let reply = lab
                .sim
                .raw("GET", &path, None, None, None)
                .await
                .map_err(api(format!("listing {plural}")))?;
            if reply.status == 404 {
                continue;
            }
            let list = reply.json();
            for mut item in list["items"].as_array().cloned().unwrap_or_default() {
                item["kind"] = json!(if plural == "deployments" {
                    "Deployment"
                } else {
                    "DaemonSet"
                });
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Starts or replaces the Pods of one workload.
    async fn sync_workload(
        &mut self,
        lab: &mut ClusterLab,
        workload: &Value,
    ) -> Result<(), KubeletError> {
        let owner = owner_of(workload);
        let generation = workload["metadata"]["generation"].as_i64().unwrap_or(1);
        let slots: Vec<(String, String)> = if workload["kind"] == "DaemonSet" {
            let selector = &workload["spec"]["template"]["spec"]["nodeSelector"];
            lab.nodes
                .iter()
                .filter(|n| node_matches(lab, &n.name, selector))
                .map(|n| (n.name.clone(), n.role.clone()))
                .collect()
        } else {
            let replicas = workload["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
            (0..replicas)
                .map(|i| (format!("replica-{i}"), String::new()))
                .collect()
        };
        for (slot, role) in slots {
            let current = self
                .pods
                .iter()
                .find(|p| p.owner == owner && p.node == slot)
                .cloned();
            if current.as_ref().is_some_and(|p| p.generation == generation) {
                continue;
            }
            // Rolling: a Deployment's new Pod starts before the old one stops (surge); a
            // DaemonSet's Pod is replaced on its node (the old one stops first).
            if let Some(old) = &current
                && workload["kind"] == "DaemonSet"
            {
                self.stop(lab, &old.name).await?;
            }
            let role = if role.is_empty() {
                self.new_pod_host(lab)?
            } else {
                role
            };
            let pod = self.start(lab, workload, &slot, &role).await?;
            self.pods.push(pod);
            if let Some(old) = current
                && workload["kind"] == "Deployment"
            {
                self.stop(lab, &old.name).await?;
            }
        }
        Ok(())
    }

    /// A Pod network namespace on the switch for a controller replica.
    fn new_pod_host(&mut self, lab: &mut ClusterLab) -> Result<String, KubeletError> {
        self.pod_hosts += 1;
        let n = self.pod_hosts;
        let role = format!("pod{n}");
        let v4 = format!("192.0.2.{}/24", 50 + u16::from(n));
        lab.net.add_host(&role, "eth0", &[&v4])?;
        Ok(role)
    }

    /// Creates the Pod object and starts its binary.
    async fn start(
        &mut self,
        lab: &mut ClusterLab,
        workload: &Value,
        slot: &str,
        role: &str,
    ) -> Result<RunningPod, KubeletError> {
        let template = &workload["spec"]["template"];
        let workload_name = workload["metadata"]["name"].as_str().unwrap_or_default();
        let generation = workload["metadata"]["generation"].as_i64().unwrap_or(1);
        let is_daemon = workload["kind"] == "DaemonSet";
        let node = if is_daemon {
            slot.to_owned()
        } else {
            lab.nodes
                .first()
                .map(|n| n.name.clone())
                .unwrap_or_default()
        };
        let host_ip = lab
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.v4.to_string())
            .unwrap_or_default();
        let pod_ip = if is_daemon {
            host_ip.clone()
        } else {
            let n = role.trim_start_matches("pod").parse::<u16>().unwrap_or(0);
            format!("192.0.2.{}", 50 + n)
        };
        let name = format!(
            "{workload_name}-g{generation}-{}",
            slot.trim_start_matches("replica-")
        );
        let secrets = self.secrets(lab).await?;
        let pod_object = self.create_pod(lab, workload, &name, &node, &host_ip, &pod_ip)?;
        let who = PodIdentity {
            name: name.clone(),
            uid: pod_object["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            namespace: self.namespace.clone(),
            node_name: node.clone(),
            host_ip,
            pod_ip,
        };
        let plan = pods::plan(template, &who, &secrets)?;
        let kubeconfig = self.kubeconfig(lab, &name, &plan.service_account)?;
        let pid = self.spawn(lab, &plan, &name, role, is_daemon, &kubeconfig)?;
        let ports = template["spec"]["containers"][0]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["name"].as_str()?.to_owned(),
                    u16::try_from(p["containerPort"].as_u64()?).ok()?,
                ))
            })
            .collect();
        Ok(RunningPod {
            name,
            uid: who.uid,
            owner: owner_of(workload),
            generation,
            role: role.to_owned(),
            node: slot.to_owned(),
            pid,
            grace: Duration::from_secs(plan.grace_seconds),
            ports,
        })
    }

    /// Every Secret of the namespace, decoded.
    async fn secrets(
        &self,
        lab: &ClusterLab,
    ) -> Result<BTreeMap<String, BTreeMap<String, Vec<u8>>>, KubeletError> {
        use base64::Engine as _;
        let mut out = BTreeMap::new();
        let path = format!("/api/v1/namespaces/{}/secrets", self.namespace);
        let list = lab
            .sim
            .raw("GET", &path, None, None, None)
            .await
            .map_err(api("listing Secrets"))?
            .json();
        for secret in list["items"].as_array().cloned().unwrap_or_default() {
            let name = secret["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let data = secret["data"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str()?)
                        .ok()?;
                    Some((k.clone(), bytes))
                })
                .collect();
            out.insert(name, data);
        }
        Ok(out)
    }

    /// The Pod object, owned by its workload, as the workload controller would create it.
    fn create_pod(
        &self,
        lab: &ClusterLab,
        workload: &Value,
        name: &str,
        node: &str,
        host_ip: &str,
        pod_ip: &str,
    ) -> Result<Value, KubeletError> {
        let template = &workload["spec"]["template"];
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!(node);
        lab.sim
            .create_object(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": name, "namespace": self.namespace,
                    "labels": template["metadata"]["labels"],
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": workload["kind"],
                        "name": workload["metadata"]["name"], "uid": workload["metadata"]["uid"],
                        "controller": true, "blockOwnerDeletion": true
                    }]
                },
                "spec": spec,
                "status": {"phase": "Running", "hostIP": host_ip, "podIP": pod_ip}
            }))
            .map_err(api(format!("creating Pod {name}")))
    }

    /// A kubeconfig acting as the Pod's ServiceAccount (which must exist, as the real admission
    /// plugin requires), reaching the API on the switch over HTTPS.
    fn kubeconfig(
        &self,
        lab: &ClusterLab,
        pod: &str,
        account: &str,
    ) -> Result<PathBuf, KubeletError> {
        use base64::Engine as _;
        let exists = lab
            .sim
            .get_object("v1", "ServiceAccount", Some(&self.namespace), account)
            .map_err(api("reading a ServiceAccount"))?
            .is_some();
        if !exists {
            return Err(KubeletError::MissingServiceAccount {
                pod: pod.to_owned(),
                namespace: self.namespace.clone(),
                name: account.to_owned(),
            });
        }
        let token = lab
            .sim
            .service_account_token(&self.namespace, account)
            .map_err(api("minting a token"))?;
        let ca = lab.sim.ca_pem().ok_or_else(|| KubeletError::Api {
            what: "kubesim".into(),
            detail: "RBAC (and so HTTPS) is off: the chart kubelet needs it on".into(),
        })?;
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: https://{API}\n    certificate-authority-data: {ca}\n    tls-server-name: localhost\nusers:\n- name: {account}\n  user:\n    token: {token:?}\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: {account}, namespace: {}}}\ncurrent-context: lab\n",
            self.namespace
        );
        let path = self.dir.join(format!("{pod}.kubeconfig"));
        std::fs::write(&path, text).map_err(api("writing a kubeconfig"))?;
        Ok(path)
    }

    /// Materialises the Secret files and starts the binary in `role`.
    fn spawn(
        &self,
        lab: &mut ClusterLab,
        plan: &PodPlan,
        pod: &str,
        role: &str,
        is_speaker: bool,
        kubeconfig: &std::path::Path,
    ) -> Result<u32, KubeletError> {
        let root = self.dir.join(pod);
        let mut mounts: Vec<String> = Vec::new();
        for file in &plan.files {
            if !mounts.contains(&file.mount_path) {
                mounts.push(file.mount_path.clone());
            }
            let n = mounts
                .iter()
                .position(|m| *m == file.mount_path)
                .unwrap_or(0);
            let path = root.join(n.to_string()).join(&file.relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(api("volume directory"))?;
            }
            std::fs::write(&path, &file.content).map_err(api("volume file"))?;
        }
        let binary = if is_speaker {
            &self.daemons.speaker
        } else {
            &self.daemons.controller
        };
        let mut args = vec![binary.to_string_lossy().into_owned()];
        args.extend(
            plan.args
                .iter()
                .map(|a| pods::rewrite_paths(a, &mounts, &root)),
        );
        let mut env: Vec<(String, String)> = plan
            .env
            .iter()
            .map(|(k, v)| (k.clone(), pods::rewrite_paths(v, &mounts, &root)))
            .collect();
        env.push((
            "KUBECONFIG".into(),
            kubeconfig.to_string_lossy().into_owned(),
        ));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let log = lab.net.path(&format!("{pod}.log"));
        Ok(lab.net.spawn(pod, role, &args, &env, &log)?)
    }

    /// Stops a Pod as a kubelet does (SIGTERM, the grace period, then SIGKILL) and deletes its
    /// object (the binary's own objects go with it through their ownerReferences).
    pub async fn stop(&mut self, lab: &mut ClusterLab, name: &str) -> Result<(), KubeletError> {
        let Some(index) = self.pods.iter().position(|p| p.name == name) else {
            return Ok(());
        };
        let pod = self.pods.remove(index);
        let _ = lab.net.signal(pod.pid, "TERM");
        let deadline = Instant::now() + pod.grace;
        while Instant::now() < deadline && is_alive(pod.pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if is_alive(pod.pid) {
            let _ = lab.net.signal(pod.pid, "KILL");
        }
        lab.net.reap(pod.pid);
        let path = format!("/api/v1/namespaces/{}/pods/{name}", self.namespace);
        lab.sim
            .raw("DELETE", &path, None, None, None)
            .await
            .map_err(api(format!("deleting Pod {name}")))?;
        self.publish_endpoints(lab);
        Ok(())
    }

    /// SIGKILLs a Pod's process at once (a crashed node) and deletes its object, as the node
    /// controller evicts the Pods of a lost node; the next sync makes a new one.
    pub async fn crash(&mut self, lab: &mut ClusterLab, name: &str) -> Result<(), KubeletError> {
        if let Some(pod) = self.pods.iter_mut().find(|p| p.name == name) {
            pod.grace = Duration::ZERO;
            lab.net.signal(pod.pid, "KILL")?;
        }
        self.stop(lab, name).await
    }

    /// The webhook Service's endpoints: every controller Pod's `webhook` port.
    fn publish_endpoints(&self, lab: &ClusterLab) {
        let endpoints = self
            .pods
            .iter()
            .filter(|p| p.owner.starts_with("Deployment/"))
            .filter_map(|p| {
                Some(Endpoint {
                    netns: lab.net.ns(&p.role),
                    port: *p.ports.get("webhook")?,
                })
            })
            .collect();
        self.webhook.set(endpoints);
    }

    /// Where a Pod's HTTP port `port_name` is, for checks from the test (its namespace).
    pub fn pod_port(
        &self,
        lab: &ClusterLab,
        pod: &str,
        port_name: &str,
    ) -> Option<(String, SocketAddr)> {
        let p = self.pods.iter().find(|p| p.name == pod)?;
        let port = *p.ports.get(port_name)?;
        let ip = if p.owner.starts_with("DaemonSet/") {
            lab.nodes.iter().find(|n| n.name == p.node)?.v4.to_string()
        } else {
            "127.0.0.1".to_owned()
        };
        Some((lab.net.ns(&p.role), SocketAddr::new(ip.parse().ok()?, port)))
    }
}

/// `Kind/name` of a workload.
fn owner_of(workload: &Value) -> String {
    format!(
        "{}/{}",
        workload["kind"].as_str().unwrap_or_default(),
        workload["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Whether Node `name`'s labels satisfy a Pod's `nodeSelector`.
fn node_matches(lab: &ClusterLab, name: &str, selector: &Value) -> bool {
    let Some(wanted) = selector.as_object() else {
        return true;
    };
    let Ok(Some(node)) = lab.sim.get_object("v1", "Node", None, name) else {
        return false;
    };
    wanted
        .iter()
        .all(|(k, v)| node["metadata"]["labels"][k] == *v)
}

fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}
