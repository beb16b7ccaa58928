//! Step 5 of kubesim: conformance with the real `kubectl` — apply FerroLB's CRDs and examples,
//! get with printer columns, merge and JSON patches, server-side field validation, delete, and
//! `describe svc` showing Events written through events.k8s.io/v1 and core/v1.
//! Skips (with a message) when kubectl is absent, but fails when `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Output;

use ferrolb_kubesim::KubeSim;

fn find_kubectl() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(explicit));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

fn repo_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

/// kubectl pointed at one kubesim, with its own HOME and discovery cache.
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .env("KUBECACHEDIR", self.home.path().join("cache"))
            .output()
            .await
            .expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout; fails the test with stderr when it fails.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// Runs kubectl expecting failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.status.success(), "kubectl {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

async fn kubectl_against(sim: &KubeSim) -> Option<Kubectl> {
    let Some(binary) = find_kubectl() else {
        ferrolb_netlab::prereq::apply(&["`kubectl` on PATH".into()]);
        return None;
    };
    Some(Kubectl {
        binary,
        kubeconfig: sim.kubeconfig_path(),
        home: tempfile::tempdir().expect("a temporary HOME"),
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("manifest written");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_patches_and_deletes_ferrolb_resources() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let Some(kubectl) = kubectl_against(&sim).await else {
        return;
    };
    let crds = repo_dir("crds").display().to_string();
    let examples = repo_dir("examples").display().to_string();
    let scratch = tempfile::tempdir().expect("scratch dir");

    let applied = kubectl.ok(&["apply", "-f", &crds]).await;
    assert!(
        applied.contains(
            "customresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io created"
        ),
        "{applied}"
    );
    // Typed client-go writes (kubectl create ...) send protobuf bodies.
    kubectl.ok(&["create", "namespace", "ferrolb-system"]).await;
    kubectl
        .ok(&[
            "create",
            "secret",
            "generic",
            "extra",
            "-n",
            "ferrolb-system",
            "--from-literal=password=abc",
        ])
        .await;
    let password = kubectl
        .ok(&[
            "get",
            "secret",
            "extra",
            "-n",
            "ferrolb-system",
            "-o",
            "jsonpath={.data.password}",
        ])
        .await;
    assert_eq!(password, "YWJj");

    let applied = kubectl.ok(&["apply", "-f", &examples]).await;
    assert!(
        applied.contains("ipaddresspool.metallb.io/public created"),
        "{applied}"
    );
    assert!(applied.contains("secret/tor-md5 created"), "{applied}");
    let again = kubectl.ok(&["apply", "-f", &examples]).await;
    assert!(
        again.contains("ipaddresspool.metallb.io/public unchanged"),
        "{again}"
    );

    let table = kubectl
        .ok(&["get", "ipaddresspools", "-n", "ferrolb-system"])
        .await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["NAME", "AUTO ASSIGN", "AVOID BUGGY IPS", "ADDRESSES"],
        "{table}"
    );
    let public: Vec<&str> = lines
        .find(|l| l.starts_with("public "))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        public,
        ["public", "true", "true", "[\"203.0.113.0/26\"]"],
        "{table}"
    );

    let field = |name: &'static str, path: &'static str| {
        let args = [
            "get",
            "ipaddresspool",
            name,
            "-n",
            "ferrolb-system",
            "-o",
            path,
        ];
        let kubectl = &kubectl;
        async move { kubectl.ok(&args).await }
    };
    let merged = kubectl
        .ok(&[
            "patch",
            "ipaddresspool",
            "public",
            "-n",
            "ferrolb-system",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"autoAssign":false}}"#,
        ])
        .await;
    assert!(merged.contains("patched"), "{merged}");
    assert_eq!(
        field("public", "jsonpath={.spec.autoAssign}").await,
        "false"
    );
    kubectl
        .ok(&[
            "patch",
            "ipaddresspool",
            "public",
            "-n",
            "ferrolb-system",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/avoidBuggyIPs","value":false}]"#,
        ])
        .await;
    assert_eq!(
        field("public", "jsonpath={.spec.avoidBuggyIPs}").await,
        "false"
    );

    let invalid = kubectl
        .fails(&[
            "patch",
            "ipaddresspool",
            "public",
            "-n",
            "ferrolb-system",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"autoAssign":"yes"}}"#,
        ])
        .await;
    assert!(
        invalid.contains("spec.autoAssign: Invalid value"),
        "{invalid}"
    );
    let unknown = write(
        scratch.path(),
        "unknown.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: typo\n  namespace: ferrolb-system\nspec:\n  addresses: [192.0.2.0/28]\n  autoAsign: false\n",
    );
    let strict = kubectl.fails(&["apply", "-f", &unknown]).await;
    assert!(
        strict.contains("unknown field \"spec.autoAsign\""),
        "{strict}"
    );

    let described = kubectl
        .ok(&["describe", "ipaddresspool", "lan", "-n", "ferrolb-system"])
        .await;
    assert!(described.contains("192.0.2.16/28"), "{described}");
    let crd_list = kubectl.ok(&["get", "crds"]).await;
    assert!(crd_list.contains("bgppeers.metallb.io"), "{crd_list}");
    let peers = kubectl
        .ok(&["get", "bgppeers", "-n", "ferrolb-system"])
        .await;
    assert!(
        peers.lines().next().unwrap_or("").contains("ADDRESS"),
        "{peers}"
    );

    // The user's view of a LoadBalancer Service: EXTERNAL-IP appears once status is written.
    let svc = write(
        scratch.path(),
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports:\n  - port: 80\n",
    );
    kubectl.ok(&["apply", "-f", &svc]).await;
    let pending = kubectl.ok(&["get", "svc", "web"]).await;
    assert!(pending.contains("<pending>"), "{pending}");
    kubectl
        .ok(&[
            "patch",
            "svc",
            "web",
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.5"}]}}}"#,
        ])
        .await;
    let assigned = kubectl.ok(&["get", "svc", "web"]).await;
    assert!(assigned.contains("203.0.113.5"), "{assigned}");
    let ssa = kubectl.ok(&["apply", "--server-side", "-f", &svc]).await;
    assert!(ssa.contains("serverside-applied"), "{ssa}");

    let deleted = kubectl
        .ok(&["delete", "ipaddresspool", "public", "-n", "ferrolb-system"])
        .await;
    assert!(deleted.contains("\"public\" deleted"), "{deleted}");
    let gone = kubectl
        .fails(&["get", "ipaddresspool", "public", "-n", "ferrolb-system"])
        .await;
    assert!(gone.contains("NotFound"), "{gone}");
    kubectl
        .ok(&["delete", "-f", &examples, "--ignore-not-found"])
        .await;
    let empty = kubectl
        .run(&["get", "ipaddresspools", "-n", "ferrolb-system"])
        .await;
    assert!(String::from_utf8_lossy(&empty.stderr).contains("No resources found"));
}

/// `kubectl describe` reads core/v1 Events selected on `involvedObject`; kube-rs's Recorder
/// writes events.k8s.io/v1 ones. Both must show under the Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_svc_shows_events_from_both_event_apis() {
    use k8s_openapi::api::core::v1::{Event as CoreEvent, Service};
    use kube::api::{Api, PostParams};
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let sim = KubeSim::start().await.expect("kubesim starts");
    let Some(kubectl) = kubectl_against(&sim).await else {
        return;
    };
    let client = sim.client();
    // Typed client-go creates send protobuf: kubectl create service must be decoded.
    let created = kubectl
        .ok(&["create", "service", "loadbalancer", "web", "--tcp=80:8080"])
        .await;
    assert!(created.contains("service/web created"), "{created}");
    let svc = Api::<Service>::default_namespaced(client.clone())
        .get("web")
        .await
        .expect("the Service exists");
    let spec = svc.spec.clone().unwrap_or_default();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let port = spec.ports.unwrap_or_default().into_iter().next();
    assert_eq!(
        port.map(|p| (p.port, p.target_port)),
        Some((
            80,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
        ))
    );
    let reference = kube::Resource::object_ref(&svc, &());
    Recorder::new(client.clone(), Reporter::from("ferrolb-controller"))
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "IPAllocated".into(),
                note: Some("Assigned IP 192.0.2.10 from pool lan".into()),
                action: "Allocate".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .expect("the Recorder publishes");
    let legacy: CoreEvent = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web.legacy"},
        "involvedObject": reference,
        "reason": "NodeAnnounce",
        "message": "announcing from node n1",
        "type": "Normal",
        "source": {"component": "ferrolb-speaker"},
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }))
    .expect("a valid core Event");
    Api::<CoreEvent>::default_namespaced(client)
        .create(&PostParams::default(), &legacy)
        .await
        .expect("the core Event is created");

    let described = kubectl.ok(&["describe", "svc", "web"]).await;
    let events = described
        .split_once("Events:")
        .map(|(_, events)| events)
        .unwrap_or_else(|| panic!("no Events section: {described}"));
    for expected in [
        "IPAllocated",
        "Assigned IP 192.0.2.10 from pool lan",
        "ferrolb-controller",
        "NodeAnnounce",
        "announcing from node n1",
        "ferrolb-speaker",
    ] {
        assert!(
            events.contains(expected),
            "{expected:?} missing: {described}"
        );
    }
}

/// kubectl discovers through aggregated discovery (`/api` and `/apis` only), and client-side
/// apply, which asks for `/openapi/v2` when v3 declares no strategic merge patch for a built-in,
/// gets a valid document: at `-v=6` no request fails but the expected first-GET 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_uses_aggregated_discovery_and_openapi_without_failed_requests() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let Some(kubectl) = kubectl_against(&sim).await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch dir");
    let manifest = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{k: {value}}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n"
        )
    };
    let first = write(scratch.path(), "a.yaml", &manifest("one"));
    let second = write(scratch.path(), "b.yaml", &manifest("two"));
    let mut logs = String::new();
    for args in [
        vec!["get", "svc,cm", "-v=6"],
        vec!["apply", "-f", &first, "-v=6"],
        vec!["apply", "-f", &second, "-v=6"],
    ] {
        let out = kubectl.run(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "kubectl {args:?}: {stderr}");
        logs.push_str(&stderr);
    }
    let value = kubectl
        .ok(&["get", "cm", "settings", "-o", "jsonpath={.data.k}"])
        .await;
    assert_eq!(value, "two");
    // `get all` expands the `all` category that Pods and Services are in.
    let all = kubectl.ok(&["get", "all"]).await;
    assert!(all.contains("service/web"), "{all}");

    let requests = sim.requests();
    let per_group_version: Vec<&str> = requests
        .iter()
        .map(|r| r.path.as_str())
        .filter(|p| *p == "/api/v1" || (p.starts_with("/apis/") && p.matches('/').count() == 3))
        .collect();
    assert!(
        per_group_version.is_empty(),
        "legacy discovery used: {per_group_version:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/openapi/v2" && r.status == 200),
        "client-side apply asked for /openapi/v2"
    );
    let failed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("status=\"") && !l.contains("status=\"2"))
        .filter(|l| {
            !(l.contains("status=\"404")
                && l.contains("verb=\"GET\"")
                && l.contains("/namespaces/default/"))
        })
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    assert!(
        !logs.contains("falling back") && !logs.contains("memcache") && !logs.contains("E1"),
        "{logs}"
    );
}
