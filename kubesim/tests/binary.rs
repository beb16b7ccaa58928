//! The `kubesim` binary: starts on the requested address and writes a kubeconfig that kube-rs
//! (and so kubectl and Helm) can use.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Stops the child process when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_and_writes_a_kubeconfig_that_kube_rs_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("bound").port()
    };
    let _child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("kubesim starts"),
    );
    let mut waited = 0;
    while !kubeconfig.exists() {
        assert!(waited < 200, "no kubeconfig written");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let parsed = Kubeconfig::read_from(&kubeconfig).expect("a valid kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .expect("usable by kube-rs");
    assert_eq!(
        config.cluster_url.to_string(),
        format!("http://127.0.0.1:{port}/")
    );
    let client = kube::Client::try_from(config).expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    let list = namespaces
        .list(&ListParams::default())
        .await
        .expect("list namespaces");
    let names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_owned()), "{names:?}");
}
