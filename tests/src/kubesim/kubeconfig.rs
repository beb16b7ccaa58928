//! The kubeconfig file that points `kubectl`, Helm and kube-rs at a kubesim (plain HTTP, no
//! credentials). Writing the file is the only I/O here.

use std::path::Path;

/// The kubeconfig text for a server URL; context and cluster are both named `kubesim`.
pub fn render(server_url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubesim
  cluster:
    server: {server_url}
users:
- name: kubesim
  user: {{}}
contexts:
- name: kubesim
  context:
    cluster: kubesim
    user: kubesim
    namespace: {namespace}
current-context: kubesim
preferences: {{}}
"
    )
}

/// Writes the kubeconfig to `path`.
pub fn write(path: &Path, server_url: &str) -> std::io::Result<()> {
    std::fs::write(path, render(server_url, "default"))
}
