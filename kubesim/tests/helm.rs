//! Helm against kubesim: the Helm v4 engine from PyPI's `helm-python-sdk` (Go's Helm SDK in a
//! shared library, driven by `kubesim/tests/helm/driver.py`) lints, renders, installs, upgrades and
//! uninstalls the sample chart in `kubesim/tests/helm/sample` (a CRD in `crds/`, a ConfigMap, a Service,
//! a ServiceAccount the upgrade turns off, and a custom resource of the CRD). Skips (with a
//! message) when python3 or the SDK is absent, but fails when `CI=true`
//! (`scripts/install-deps.sh` installs it).

use std::path::PathBuf;

use ferrolb_kubesim::{KubeSim, Options};
use serde_json::{Value, json};

fn helm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/helm")
}

/// True when python3 can import the SDK; otherwise skips (or fails in CI).
async fn sdk_available() -> bool {
    let found = tokio::process::Command::new("python3")
        .args(["-c", "import helm_python"])
        .output()
        .await
        .is_ok_and(|out| out.status.success());
    found || ferrolb_netlab::prereq::apply(&["python3 with helm-python-sdk".into()])
}

/// The driver pointed at one kubesim, with its own HOME so Helm's caches stay in the test.
struct Helm {
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// Runs one driver action: whether it succeeded, its JSON answer (Helm's error on failure)
    /// and Helm's log.
    async fn run(&self, action: &str, values: Value) -> (bool, Value, String) {
        let helm = helm_dir();
        let out = tokio::process::Command::new("python3")
            .arg(helm.join("driver.py"))
            .arg(&self.kubeconfig)
            .arg(helm.join("sample"))
            .args(["default", action, &values.to_string()])
            .env("HOME", self.home.path())
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_DATA_HOME", self.home.path().join("data"))
            .current_dir(self.home.path())
            .output()
            .await
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let answer = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("helm {action}: {e}: {stdout}\n{stderr}"));
        (out.status.success(), answer, stderr)
    }

    /// Runs one driver action and returns its JSON answer; fails the test with Helm's message
    /// and log when the action fails.
    async fn ok(&self, action: &str, values: Value) -> Value {
        let (ok, answer, log) = self.run(action, values).await;
        assert!(ok, "helm {action} failed:\n{answer}\n{log}");
        answer
    }
}

/// The object at `path`, or None on 404.
async fn get(sim: &KubeSim, path: &str) -> Option<Value> {
    let reply = sim.raw("GET", path, None, None, None).await.expect("GET");
    match reply.status {
        200 => Some(reply.json()),
        404 => None,
        other => panic!("GET {path}: {other} {}", reply.text()),
    }
}

const CONFIG_MAP: &str = "/api/v1/namespaces/default/configmaps/demo-settings";
const SERVICE: &str = "/api/v1/namespaces/default/services/demo-web";
const SERVICE_ACCOUNT: &str = "/api/v1/namespaces/default/serviceaccounts/demo-runner";
const WIDGET: &str = "/apis/sample.ferrolb.test/v1/namespaces/default/widgets/demo-widget";
const CRD: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.sample.ferrolb.test";

/// Helm's release records: (name, status label) of each `owner=helm` Secret, sorted.
async fn releases(sim: &KubeSim) -> Vec<(String, String)> {
    let list = get(
        sim,
        "/api/v1/namespaces/default/secrets?labelSelector=owner%3Dhelm%2Cname%3Ddemo",
    )
    .await
    .expect("secrets list");
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| {
            assert_eq!(s["type"], "helm.sh/release.v1", "{s}");
            (
                s["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                s["metadata"]["labels"]["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn release(name: &str, status: &str) -> (String, String) {
    (format!("sh.helm.release.v1.demo.{name}"), status.to_owned())
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_a_chart_with_a_crd() {
    if !sdk_available().await {
        return;
    }
    let sim = KubeSim::start().await.expect("kubesim starts");
    let helm = Helm {
        kubeconfig: sim.kubeconfig_path(),
        home: tempfile::tempdir().expect("a temporary HOME"),
    };

    let lint = helm.ok("lint", json!({})).await;
    assert_eq!(lint["errors"], json!([]), "{lint}");
    let problems: Vec<&Value> = lint["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["severity"].as_i64() > Some(1))
        .collect();
    assert!(problems.is_empty(), "lint warnings or errors: {problems:?}");

    let rendered = helm.ok("template", json!({"greeting": "hi"})).await;
    assert_eq!(
        rendered["crds"][0]["name"], "crds/widgets.yaml",
        "{rendered}"
    );
    let config_map = rendered["manifests"]["sample/templates/configmap.yaml"]
        .as_str()
        .expect("the ConfigMap is rendered");
    assert!(
        config_map.contains("name: demo-settings") && config_map.contains("greeting: \"hi\""),
        "{config_map}"
    );

    let installed = helm.ok("install", json!({})).await;
    assert_eq!(
        (&installed["status"], &installed["revision"]),
        (&json!("deployed"), &json!(1)),
        "{installed}"
    );
    assert!(get(&sim, CRD).await.is_some(), "the CRD from crds/ exists");
    let config_map = get(&sim, CONFIG_MAP).await.expect("the ConfigMap exists");
    assert_eq!(config_map["data"]["greeting"], "hello");
    assert_eq!(
        config_map["metadata"]["annotations"]["meta.helm.sh/release-name"],
        "demo"
    );
    let widget = get(&sim, WIDGET).await.expect("the Widget exists");
    assert_eq!(
        widget["spec"],
        json!({"size": 3, "greeting": "hello", "colour": "blue"}),
        "the CRD's default is applied to Helm's object"
    );
    assert!(get(&sim, SERVICE).await.is_some());
    assert!(get(&sim, SERVICE_ACCOUNT).await.is_some());
    assert_eq!(releases(&sim).await, vec![release("v1", "deployed")]);

    let upgraded = helm
        .ok(
            "upgrade",
            json!({"greeting": "bonjour", "size": 5, "runner": {"enabled": false}}),
        )
        .await;
    assert_eq!(upgraded["revision"], 2, "{upgraded}");
    let config_map = get(&sim, CONFIG_MAP).await.expect("the ConfigMap stays");
    assert_eq!(config_map["data"]["greeting"], "bonjour");
    let widget = get(&sim, WIDGET).await.expect("the Widget stays");
    assert_eq!(
        widget["spec"],
        json!({"size": 5, "greeting": "bonjour", "colour": "blue"})
    );
    assert_eq!(
        widget["metadata"]["generation"], 2,
        "a spec change bumps it"
    );
    assert_eq!(
        get(&sim, SERVICE_ACCOUNT).await,
        None,
        "the object the new revision no longer renders is deleted"
    );
    assert_eq!(
        releases(&sim).await,
        vec![release("v1", "superseded"), release("v2", "deployed")]
    );
    let status = helm.ok("status", json!({})).await;
    assert_eq!(status["status"]["revision"], 2, "{status}");
    assert_eq!(status["history"].as_array().map(Vec::len), Some(2));

    let uninstalled = helm.ok("uninstall", json!({})).await;
    assert_eq!(
        uninstalled["release"]["status"], "uninstalled",
        "{uninstalled}"
    );
    for path in [CONFIG_MAP, SERVICE, WIDGET] {
        assert_eq!(get(&sim, path).await, None, "{path} is deleted");
    }
    assert_eq!(
        releases(&sim).await,
        vec![],
        "the release records are purged"
    );
    assert!(get(&sim, CRD).await.is_some(), "Helm keeps CRDs");

    let failures: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.status >= 400 && r.status != 404)
        .map(|r| format!("{} {} {}?{}", r.status, r.method, r.path, r.query))
        .collect();
    assert!(failures.is_empty(), "requests Helm saw fail: {failures:#?}");
}

/// With RBAC on (HTTPS and tokens), a ServiceAccount that may write only in its namespace cannot
/// install a chart with a CRD: Helm fails with the API server's Forbidden message, as in a
/// cluster. Granting the CRD permission is enough for the install to succeed.
#[tokio::test]
async fn helm_as_a_namespaced_deployer_is_refused_the_crd_until_granted() {
    if !sdk_available().await {
        return;
    }
    let options = Options {
        rbac: true,
        ..Options::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kubesim starts");
    let rbac = |kind: &str, name: &str, namespace: Option<&str>, rest: Value| {
        let mut object = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}});
        if let Some(ns) = namespace {
            object["metadata"]["namespace"] = json!(ns);
        }
        if let (Some(map), Some(rest)) = (object.as_object_mut(), rest.as_object()) {
            map.extend(rest.clone());
        }
        sim.create_object(object).expect("RBAC object stored");
    };
    let subject = json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": "default"}]);
    rbac(
        "Role",
        "deployer",
        Some("default"),
        json!({"rules": [
            {"apiGroups": [""], "resources": ["configmaps", "services", "serviceaccounts", "secrets"], "verbs": ["*"]},
            {"apiGroups": ["sample.ferrolb.test"], "resources": ["widgets"], "verbs": ["*"]},
        ]}),
    );
    rbac(
        "RoleBinding",
        "deployer",
        Some("default"),
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
               "subjects": subject}),
    );
    let helm = Helm {
        kubeconfig: sim
            .service_account_kubeconfig("default", "deployer")
            .expect("a kubeconfig for the deployer"),
        home: tempfile::tempdir().expect("a temporary HOME"),
    };

    let (ok, refused, _) = helm.run("install", json!({})).await;
    assert!(!ok, "the install must fail: {refused}");
    let message = refused["error"].as_str().unwrap_or("");
    assert!(
        message.contains("customresourcedefinitions")
            && message.contains("forbidden")
            && message.contains("system:serviceaccount:default:deployer"),
        "{refused}"
    );
    assert_eq!(get(&sim, CONFIG_MAP).await, None, "nothing was installed");

    rbac(
        "ClusterRole",
        "crd-installer",
        None,
        json!({"rules": [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["*"]}]}),
    );
    rbac(
        "ClusterRoleBinding",
        "crd-installer",
        None,
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "crd-installer"},
               "subjects": subject}),
    );
    let installed = helm.ok("install", json!({})).await;
    assert_eq!(installed["status"], "deployed", "{installed}");
    assert!(get(&sim, WIDGET).await.is_some());
}
