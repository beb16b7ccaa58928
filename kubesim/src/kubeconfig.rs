//! The kubeconfig file that points `kubectl`, Helm and kube-rs at a kubesim (plain HTTP; a
//! bearer token when RBAC is on). Writing the file is the only I/O here.

use std::path::Path;

/// The kubeconfig text for a server URL; context and cluster are both named `kubesim`.
pub fn render(server_url: &str, namespace: &str) -> String {
    render_with_token(server_url, namespace, None)
}

/// The kubeconfig text, with a bearer token for the user when given.
pub fn render_with_token(server_url: &str, namespace: &str, token: Option<&str>) -> String {
    render_cluster(&format!("server: {server_url}"), namespace, token)
}

/// The kubeconfig text for an HTTPS server whose certificate `ca_pem` signed.
pub fn render_tls(server_url: &str, namespace: &str, token: Option<&str>, ca_pem: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    render_cluster(
        &format!("server: {server_url}\n    certificate-authority-data: {ca}"),
        namespace,
        token,
    )
}

fn render_cluster(cluster: &str, namespace: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(token) => format!("{{token: {token:?}}}"),
        None => "{}".to_owned(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubesim
  cluster:
    {cluster}
users:
- name: kubesim
  user: {user}
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

/// Writes the kubeconfig with a bearer token (if any) to `path`.
pub fn write_with_token(path: &Path, server_url: &str, token: Option<&str>) -> std::io::Result<()> {
    std::fs::write(path, render_with_token(server_url, "default", token))
}
