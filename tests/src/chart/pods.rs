//! What a kubelet makes of a workload's Pod template, as values: the command line (the image's
//! entrypoint, which is the binary, then `args`), the environment with the downward API filled
//! in, the Secret volumes to materialise and where their files end up. Pure: the Pod's
//! identity and the Secrets' data come in as values, the plan goes out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why a Pod cannot be started; each names the Pod and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    #[error("pod {pod}: {field}: {problem}")]
    Unsupported {
        pod: String,
        field: String,
        problem: String,
    },
    #[error("pod {pod}: secret {secret:?} (volume {volume}) not found")]
    MissingSecret {
        pod: String,
        volume: String,
        secret: String,
    },
    #[error("pod {pod}: key {key:?} not in secret {secret:?}")]
    MissingKey {
        pod: String,
        secret: String,
        key: String,
    },
}

impl PodError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsupported { .. } => "Unsupported",
            Self::MissingSecret { .. } => "MissingSecret",
            Self::MissingKey { .. } => "MissingKey",
        }
    }
}

/// The Pod's identity, as the downward API exposes it.
#[derive(Debug, Clone)]
pub struct PodIdentity {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub node_name: String,
    pub host_ip: String,
    pub pod_ip: String,
}

/// A file a Secret volume puts in the container: where the container sees it and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    pub mount_path: String,
    pub relative: String,
    pub content: Vec<u8>,
}

/// How to run the Pod's one container.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub container: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub files: Vec<SecretFile>,
    pub service_account: String,
    pub grace_seconds: u64,
}

/// The plan for the first container of `template` (a Pod template) as Pod `who`. `secrets`
/// maps a Secret's name to its decoded `data`.
pub fn plan(
    template: &Value,
    who: &PodIdentity,
    secrets: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Result<PodPlan, PodError> {
    let spec = &template["spec"];
    let unsupported = |field: &str, problem: &str| PodError::Unsupported {
        pod: who.name.clone(),
        field: field.to_owned(),
        problem: problem.to_owned(),
    };
    let container = spec["containers"]
        .as_array()
        .and_then(|c| c.first())
        .ok_or_else(|| unsupported("spec.containers", "no container"))?;
    if !container["command"].is_null() {
        return Err(unsupported(
            "spec.containers[0].command",
            "the image's entrypoint is the binary; a command would replace it",
        ));
    }
    let args = container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut env = Vec::new();
    for entry in container["env"].as_array().into_iter().flatten() {
        let name = entry["name"].as_str().unwrap_or_default().to_owned();
        let value = env_value(entry, who, secrets)
            .map_err(|problem| unsupported(&format!("spec.containers[0].env[{name}]"), &problem))?;
        env.push((name, value));
    }
    let files = secret_files(spec, container, who, secrets)?;
    Ok(PodPlan {
        container: container["name"].as_str().unwrap_or_default().to_owned(),
        args,
        env,
        files,
        service_account: spec["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_owned(),
        grace_seconds: spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30),
    })
}

/// One env entry's value: literal, downward API (`fieldRef`) or a Secret key.
fn env_value(
    entry: &Value,
    who: &PodIdentity,
    secrets: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Result<String, String> {
    if let Some(value) = entry["value"].as_str() {
        return Ok(value.to_owned());
    }
    let from = &entry["valueFrom"];
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return match path {
            "metadata.name" => Ok(who.name.clone()),
            "metadata.uid" => Ok(who.uid.clone()),
            "metadata.namespace" => Ok(who.namespace.clone()),
            "spec.nodeName" => Ok(who.node_name.clone()),
            "status.hostIP" => Ok(who.host_ip.clone()),
            "status.podIP" => Ok(who.pod_ip.clone()),
            other => Err(format!("fieldRef {other} is not filled in by this kubelet")),
        };
    }
    if let Some(secret) = from["secretKeyRef"]["name"].as_str() {
        let key = from["secretKeyRef"]["key"].as_str().unwrap_or_default();
        let bytes = secrets
            .get(secret)
            .and_then(|d| d.get(key))
            .ok_or_else(|| format!("secret {secret:?} key {key:?} not found"))?;
        return Ok(String::from_utf8_lossy(bytes).into_owned());
    }
    Err(format!("unsupported env source {from}"))
}

/// The files of the container's Secret volume mounts.
fn secret_files(
    spec: &Value,
    container: &Value,
    who: &PodIdentity,
    secrets: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Result<Vec<SecretFile>, PodError> {
    let mut files = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume_name = mount["name"].as_str().unwrap_or_default();
        let mount_path = mount["mountPath"].as_str().unwrap_or_default();
        let volume = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == volume_name)
            .ok_or_else(|| PodError::Unsupported {
                pod: who.name.clone(),
                field: format!("volumeMounts[{volume_name}]"),
                problem: "no such volume".into(),
            })?;
        let Some(secret) = volume["secret"]["secretName"].as_str() else {
            return Err(PodError::Unsupported {
                pod: who.name.clone(),
                field: format!("volumes[{volume_name}]"),
                problem: "only Secret volumes are mounted by this kubelet".into(),
            });
        };
        let data = secrets.get(secret).ok_or_else(|| PodError::MissingSecret {
            pod: who.name.clone(),
            volume: volume_name.to_owned(),
            secret: secret.to_owned(),
        })?;
        let items: Vec<(String, String)> = match volume["secret"]["items"].as_array() {
            Some(items) => items
                .iter()
                .map(|i| {
                    let key = i["key"].as_str().unwrap_or_default().to_owned();
                    let path = i["path"].as_str().unwrap_or(&key).to_owned();
                    (key, path)
                })
                .collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, relative) in items {
            let content = data.get(&key).ok_or_else(|| PodError::MissingKey {
                pod: who.name.clone(),
                secret: secret.to_owned(),
                key: key.clone(),
            })?;
            files.push(SecretFile {
                mount_path: mount_path.to_owned(),
                relative,
                content: content.clone(),
            });
        }
    }
    Ok(files)
}

/// Rewrites a path inside a mount to where the mount's files really are (`root/<n>`, one
/// directory per mount path, in `mounts` order): there is no mount namespace per container here.
pub fn rewrite_paths(text: &str, mounts: &[String], root: &Path) -> String {
    let mut out = text.to_owned();
    for (n, mount) in mounts.iter().enumerate() {
        if out.starts_with(mount.as_str()) {
            let rest = out[mount.len()..].trim_start_matches('/').to_owned();
            let dir: PathBuf = root.join(n.to_string());
            out = dir.join(rest).to_string_lossy().into_owned();
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who() -> PodIdentity {
        PodIdentity {
            name: "speaker-abc".into(),
            uid: "u-1".into(),
            namespace: "ferrolb-system".into(),
            node_name: "node-1".into(),
            host_ip: "192.0.2.11".into(),
            pod_ip: "192.0.2.11".into(),
        }
    }

    fn template() -> Value {
        json!({"spec": {
            "serviceAccountName": "ferrolb-speaker",
            "terminationGracePeriodSeconds": 10,
            "containers": [{"name": "speaker", "args": ["--metrics-port=7472"],
                "env": [
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                    {"name": "KEY", "value": "/etc/key/secretkey"}],
                "volumeMounts": [{"name": "key", "mountPath": "/etc/key"}]}],
            "volumes": [{"name": "key", "secret": {"secretName": "gossip", "items": [{"key": "secretkey", "path": "secretkey"}]}}]
        }})
    }

    #[test]
    fn the_downward_api_and_secret_files_are_filled_in() {
        let secrets = BTreeMap::from([(
            "gossip".to_owned(),
            BTreeMap::from([("secretkey".to_owned(), b"k3y".to_vec())]),
        )]);
        let plan = plan(&template(), &who(), &secrets).expect("plans");
        assert_eq!(plan.service_account, "ferrolb-speaker");
        assert_eq!(plan.grace_seconds, 10);
        assert_eq!(plan.args, vec!["--metrics-port=7472"]);
        assert_eq!(plan.env[0], ("NODE_NAME".into(), "node-1".into()));
        assert_eq!(plan.env[1], ("HOST_IP".into(), "192.0.2.11".into()));
        assert_eq!(
            plan.files,
            vec![SecretFile {
                mount_path: "/etc/key".into(),
                relative: "secretkey".into(),
                content: b"k3y".to_vec()
            }]
        );
        let mounts = vec!["/etc/key".to_owned()];
        assert_eq!(
            rewrite_paths("/etc/key/secretkey", &mounts, Path::new("/tmp/pod")),
            "/tmp/pod/0/secretkey"
        );
        assert_eq!(
            rewrite_paths("/etc/other", &mounts, Path::new("/tmp/pod")),
            "/etc/other"
        );
    }

    #[test]
    fn a_missing_secret_or_an_unknown_field_names_the_pod_and_field() {
        let missing = plan(&template(), &who(), &BTreeMap::new()).expect_err("no secret");
        assert_eq!(
            missing.to_string(),
            r#"pod speaker-abc: secret "gossip" (volume key) not found"#
        );
        let mut odd = template();
        odd["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] =
            json!("metadata.labels['x']");
        let error = plan(&odd, &who(), &BTreeMap::new()).expect_err("unsupported");
        assert!(error.to_string().contains("env[NODE_NAME]"), "{error}");
    }
}
