//! Authentication and RBAC (kubesim started with `Options { rbac: true }`): 401 without a known
//! token, Roles/ClusterRoles through their bindings deciding verbs, resources, subresources,
//! resourceNames and apiGroups, 403 worded as the real server words it, discovery open to
//! authenticated users, and `kubectl auth can-i` through SelfSubjectAccessReviews.

use ferrolb_kubesim::{KubeSim, Options};
use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::{Value, json};

async fn rbac_sim() -> KubeSim {
    let options = Options {
        rbac: true,
        ..Options::default()
    };
    KubeSim::start_with(options).await.expect("kubesim starts")
}

fn namespace(sim: &KubeSim, name: &str) {
    add(
        sim,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    );
}

fn add(sim: &KubeSim, object: Value) {
    sim.create_object(object).expect("stored");
}

fn role(sim: &KubeSim, kind: &str, namespace: &str, name: &str, rules: Value) {
    let mut object = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name}, "rules": rules});
    if !namespace.is_empty() {
        object["metadata"]["namespace"] = json!(namespace);
    }
    add(sim, object);
}

fn bind(sim: &KubeSim, namespace: &str, role_kind: &str, role: &str, subject: Value) {
    let kind = if namespace.is_empty() {
        "ClusterRoleBinding"
    } else {
        "RoleBinding"
    };
    let mut object = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": format!("{role}-binding")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [subject]});
    if !namespace.is_empty() {
        object["metadata"]["namespace"] = json!(namespace);
    }
    add(sim, object);
}

fn sa(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("ConfigMap")
}

#[tokio::test]
async fn no_token_or_an_unknown_token_is_401_unauthorized() {
    let sim = rbac_sim().await;
    let answer = sim
        .raw("GET", "/api/v1/namespaces", None, None, None)
        .await
        .expect("raw");
    assert_eq!(answer.status, 200, "the admin client carries a token");
    for client in [
        kube::Client::try_from(kube::Config::new(sim.url().parse().expect("uri"))).expect("client"),
        sim.client_with_token("not-a-token"),
    ] {
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let status = api_error(cms.list(&ListParams::default()).await);
        assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(status.message, "Unauthorized");
    }
}

#[tokio::test]
async fn a_role_grants_its_verbs_in_its_namespace_only() {
    let sim = rbac_sim().await;
    role(
        &sim,
        "Role",
        "default",
        "reader",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]),
    );
    bind(&sim, "default", "Role", "reader", sa("default", "reader"));
    sim.create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "one", "namespace": "default"}}))
        .expect("cm");
    let client = sim
        .service_account_client("default", "reader")
        .expect("client");
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    assert_eq!(
        cms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    cms.get("one").await.expect("get");
    let mut events = Box::pin(
        cms.watch(&WatchParams::default().timeout(1), "0")
            .await
            .expect("watch allowed"),
    );
    assert!(events.next().await.is_some(), "the watch streams");
    let status = api_error(cms.create(&PostParams::default(), &cm("two")).await);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "configmaps is forbidden: User \"system:serviceaccount:default:reader\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let status = api_error(
        cms.patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "b"}})),
        )
        .await,
    );
    assert!(
        status.message.contains("cannot patch resource"),
        "{}",
        status.message
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let status = api_error(elsewhere.list(&ListParams::default()).await);
    assert_eq!(status.code, 403);
    let nodes: Api<Node> = Api::all(client);
    let status = api_error(nodes.list(&ListParams::default()).await);
    assert!(
        status.message.ends_with("at the cluster scope"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn resource_names_limit_a_role_to_the_named_objects() {
    let sim = rbac_sim().await;
    for name in ["one", "two"] {
        sim.create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}}))
            .expect("cm");
    }
    role(
        &sim,
        "Role",
        "default",
        "only-one",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"],
            "verbs": ["get"]}]),
    );
    bind(&sim, "default", "Role", "only-one", sa("default", "narrow"));
    let cms: Api<ConfigMap> = Api::default_namespaced(
        sim.service_account_client("default", "narrow")
            .expect("client"),
    );
    cms.get("one").await.expect("named");
    let status = api_error(cms.get("two").await);
    assert_eq!(
        status.message,
        "configmaps \"two\" is forbidden: User \"system:serviceaccount:default:narrow\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
}

#[tokio::test]
async fn a_cluster_role_can_grant_a_status_subresource_without_the_object() {
    let sim = rbac_sim().await;
    sim.create_object(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))
        .expect("service");
    role(
        &sim,
        "ClusterRole",
        "",
        "status-writer",
        json!([
            {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch", "update"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
        ]),
    );
    namespace(&sim, "ferrolb-system");
    // A RoleBinding of a ClusterRole grants it in that namespace only.
    bind(
        &sim,
        "default",
        "ClusterRole",
        "status-writer",
        sa("ferrolb-system", "controller"),
    );
    let client = sim
        .service_account_client("ferrolb-system", "controller")
        .expect("client");
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let status_patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
    services
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .expect("status patch allowed");
    let status = api_error(
        services
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
            )
            .await,
    );
    assert!(
        status
            .message
            .contains("cannot patch resource \"services\" in API group \"\"")
    );
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    leases
        .list(&ListParams::default())
        .await
        .expect("leases in default");
    let other: Api<Lease> = Api::namespaced(client, "kube-system");
    let status = api_error(other.list(&ListParams::default()).await);
    assert!(
        status
            .message
            .starts_with("leases.coordination.k8s.io is forbidden"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn group_subjects_and_cluster_role_bindings_grant_everywhere() {
    let sim = rbac_sim().await;
    role(
        &sim,
        "ClusterRole",
        "",
        "cm-reader",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]),
    );
    bind(
        &sim,
        "",
        "ClusterRole",
        "cm-reader",
        json!({"kind": "Group", "name": "system:serviceaccounts:apps", "apiGroup": "rbac.authorization.k8s.io"}),
    );
    namespace(&sim, "apps");
    namespace(&sim, "other");
    let client = sim
        .service_account_client("apps", "anyone")
        .expect("client");
    let all: Api<ConfigMap> = Api::all(client.clone());
    all.list(&ListParams::default())
        .await
        .expect("all namespaces");
    let stranger = sim.service_account_client("other", "x").expect("client");
    let status = api_error(
        Api::<ConfigMap>::all(stranger)
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(status.code, 403);
}

#[tokio::test]
async fn discovery_is_open_to_any_authenticated_user() {
    let sim = rbac_sim().await;
    let client = sim
        .service_account_client("default", "nobody")
        .expect("client");
    let discovery = kube::Discovery::new(client)
        .run()
        .await
        .expect("discovery allowed");
    assert!(discovery.has_group("rbac.authorization.k8s.io"));
}

#[tokio::test]
async fn a_self_subject_access_review_says_what_the_caller_may_do() {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    let sim = rbac_sim().await;
    role(
        &sim,
        "Role",
        "default",
        "reader",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]),
    );
    bind(&sim, "default", "Role", "reader", sa("default", "reader"));
    let reviews: Api<SelfSubjectAccessReview> = Api::all(
        sim.service_account_client("default", "reader")
            .expect("client"),
    );
    for (verb, expected) in [("list", true), ("create", false)] {
        let review: SelfSubjectAccessReview = serde_json::from_value(json!({
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": "configmaps"}}
        }))
        .expect("review");
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("anyone may ask");
        assert_eq!(answer.status.map(|s| s.allowed), Some(expected), "{verb}");
    }
}

fn kubectl() -> Option<std::path::PathBuf> {
    if let Some(explicit) = std::env::var_os("KUBECTL") {
        return Some(explicit.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

#[tokio::test]
async fn kubectl_auth_can_i_and_forbidden_errors_work_for_a_service_account() {
    let Some(kubectl) = kubectl() else {
        ferrolb_netlab::prereq::apply(&["`kubectl` on PATH".into()]);
        return;
    };
    let sim = rbac_sim().await;
    role(
        &sim,
        "Role",
        "default",
        "reader",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]),
    );
    bind(&sim, "default", "Role", "reader", sa("default", "reader"));
    // kubectl sends tokens only over TLS: with RBAC on, kubeconfigs point at kubesim's HTTPS.
    let kubeconfig = sim
        .service_account_kubeconfig("default", "reader")
        .expect("kubeconfig");
    let home = tempfile::tempdir().expect("home");
    let run = |config: std::path::PathBuf, args: Vec<&'static str>| {
        tokio::process::Command::new(&kubectl)
            .args(args)
            .env("KUBECONFIG", config)
            .env("HOME", home.path())
            .output()
    };
    let yes = run(
        kubeconfig.clone(),
        vec!["auth", "can-i", "list", "configmaps"],
    )
    .await
    .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&yes.stdout).trim(),
        "yes",
        "{yes:?}"
    );
    assert!(yes.status.success());
    let no = run(
        kubeconfig.clone(),
        vec!["auth", "can-i", "create", "configmaps"],
    )
    .await
    .expect("runs");
    assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no", "{no:?}");
    assert!(!no.status.success());
    let listed = run(kubeconfig.clone(), vec!["get", "configmaps"])
        .await
        .expect("runs");
    assert!(listed.status.success(), "{listed:?}");
    let denied = run(kubeconfig, vec!["create", "configmap", "x"])
        .await
        .expect("runs");
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("configmaps is forbidden: User \"system:serviceaccount:default:reader\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        "{stderr}"
    );
    let admin = run(sim.kubeconfig_path(), vec!["create", "configmap", "x"])
        .await
        .expect("runs");
    assert!(
        admin.status.success(),
        "the admin kubeconfig may: {admin:?}"
    );
}
