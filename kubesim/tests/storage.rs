//! Step 1 of kubesim: storage semantics through the real kube-rs client and raw HTTP —
//! resourceVersions, uid/generation, 404/409/422 Status bodies, selectors, pagination,
//! optimistic concurrency, finalizers, patches and the status subresource.

use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    }))
    .expect("a valid ConfigMap")
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
    }))
    .expect("a valid Service")
}

#[tokio::test]
async fn created_objects_get_uid_timestamp_generation_and_increasing_resource_versions() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let a = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create a");
    let b = cms
        .create(&PostParams::default(), &config_map("b", json!({})))
        .await
        .expect("create b");
    let rv = |cm: &ConfigMap| -> u64 {
        cm.metadata
            .resource_version
            .as_deref()
            .expect("has an RV")
            .parse()
            .expect("numeric RV")
    };
    assert!(rv(&b) > rv(&a));
    assert!(a.metadata.uid.is_some() && a.metadata.uid != b.metadata.uid);
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, None, "ConfigMaps have no generation");
    assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
}

#[tokio::test]
async fn creating_an_existing_name_is_409_already_exists_and_a_missing_one_is_404() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("a", json!({})))
            .await
            .expect_err("duplicate"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "configmaps \"a\" already exists");
    let err = api_error(cms.get("missing").await.expect_err("missing"));
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"missing\" not found");
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let mut cm = config_map("", json!({}));
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let one = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("first");
    let two = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("second");
    let name = one.metadata.name.expect("named");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_ne!(Some(name), two.metadata.name);
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_404_for_the_namespace() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), "nowhere");
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("a", json!({})))
            .await
            .expect_err("no ns"),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_is_409_conflict() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let created = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let mut first = created.clone();
    first.data = Some([("k".to_owned(), "1".to_owned())].into());
    cms.replace("a", &PostParams::default(), &first)
        .await
        .expect("first writer wins");
    let mut second = created;
    second.data = Some([("k".to_owned(), "2".to_owned())].into());
    let err = api_error(
        cms.replace("a", &PostParams::default(), &second)
            .await
            .expect_err("stale"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn list_filters_by_label_and_field_selectors() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    for (name, labels) in [
        ("a", json!({"app": "web"})),
        ("b", json!({"app": "db"})),
        ("c", json!({})),
    ] {
        cms.create(&PostParams::default(), &config_map(name, labels))
            .await
            .expect("create");
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app=web"))
                .await
                .expect("list")
        ),
        ["a"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app"))
                .await
                .expect("list")
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app notin (web)"))
                .await
                .expect("list")
        ),
        ["b", "c"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=c"))
                .await
                .expect("list")
        ),
        ["c"]
    );
    let all: Api<ConfigMap> = Api::all(sim.client());
    let in_default = all
        .list(&ListParams::default().fields("metadata.namespace=default"))
        .await
        .expect("list");
    assert_eq!(in_default.items.len(), 3);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    for i in 0..5 {
        cms.create(
            &PostParams::default(),
            &config_map(&format!("cm{i}"), json!({})),
        )
        .await
        .expect("create");
    }
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = cms.list(&params).await.expect("page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen, ["cm0", "cm1", "cm2", "cm3", "cm4"]);
}

#[tokio::test]
async fn deleting_an_object_with_finalizers_marks_it_until_they_are_removed() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let mut cm = config_map("held", json!({}));
    cm.metadata.finalizers = Some(vec!["ferrolb.io/test".into()]);
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let marked = cms.get("held").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("finalizers removed");
    let err = api_error(cms.get("held").await.expect_err("gone"));
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn merge_patch_and_json_patch_change_the_object() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let merged = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "1", "k": null}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(merged.data, Some([("x".to_owned(), "1".to_owned())].into()));
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/data/y", "value": "2"},
        {"op": "remove", "path": "/data/x"},
    ]))
    .expect("valid JSON patch");
    let patched = cms
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .expect("json patch");
    assert_eq!(
        patched.data,
        Some([("y".to_owned(), "2".to_owned())].into())
    );
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/data/nothing"}]))
            .expect("valid JSON patch");
    let err = api_error(
        cms.patch("a", &PatchParams::default(), &Patch::<()>::Json(bad))
            .await
            .expect_err("bad path"),
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn the_status_subresource_changes_only_status_and_the_main_endpoint_ignores_status() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let svcs: Api<Service> = Api::default_namespaced(sim.client());
    let created = svcs
        .create(&PostParams::default(), &service("web"))
        .await
        .expect("create");
    let ingress = |s: &Service| {
        s.status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
    };
    assert_eq!(ingress(&created), None, "status is dropped on create");
    let status_patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}, "spec": {"type": "ClusterIP"}});
    let after_status = svcs
        .patch_status("web", &PatchParams::default(), &Patch::Merge(status_patch))
        .await
        .expect("status patch");
    assert_eq!(ingress(&after_status).map(|i| i.len()), Some(1));
    assert_eq!(
        after_status.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
    let main_patch = json!({"status": {"loadBalancer": {}}, "metadata": {"labels": {"a": "b"}}});
    let after_main = svcs
        .patch("web", &PatchParams::default(), &Patch::Merge(main_patch))
        .await
        .expect("main patch");
    assert_eq!(
        ingress(&after_main).map(|i| i.len()),
        Some(1),
        "status unchanged"
    );
    let spec_patch = json!({"spec": {"ports": [{"port": 443}]}});
    let after_spec = svcs
        .patch("web", &PatchParams::default(), &Patch::Merge(spec_patch))
        .await
        .expect("spec patch");
    assert_eq!(
        after_spec.spec.and_then(|s| s.ports).map(|p| p[0].port),
        Some(443)
    );
    assert_eq!(after_spec.metadata.generation, None, "Services have none");
}

#[tokio::test]
async fn a_no_op_update_keeps_the_resource_version() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let created = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let same = cms
        .replace("a", &PostParams::default(), &created)
        .await
        .expect("replace");
    assert_eq!(
        created.metadata.resource_version,
        same.metadata.resource_version
    );
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let namespaces: Api<Namespace> = Api::all(sim.client());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "gone"}})).expect("valid ns");
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), "gone");
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create cm");
    namespaces
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete ns");
    assert_eq!(
        api_error(cms.get("a").await.expect_err("content gone")).code,
        404
    );
    assert_eq!(
        api_error(namespaces.get("gone").await.expect_err("ns gone")).code,
        404
    );
}

#[tokio::test]
async fn errors_are_status_bodies_with_the_real_reason_and_code() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let missing = sim
        .raw(
            "GET",
            "/api/v1/namespaces/default/configmaps/nope",
            None,
            None,
            None,
        )
        .await
        .expect("request");
    assert_eq!(missing.status, 404);
    let body = missing.json();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["status"], "Failure");
    assert_eq!(
        body["details"],
        json!({"name": "nope", "group": "", "kind": "configmaps"})
    );
    let no_path = sim
        .raw("GET", "/apis/nothing.example/v1/things", None, None, None)
        .await
        .expect("request");
    assert_eq!(no_path.status, 404);
    let bad = sim
        .raw(
            "PATCH",
            "/api/v1/namespaces/default",
            Some("text/plain"),
            None,
            None,
        )
        .await
        .expect("request");
    assert_eq!(bad.status, 415);
}

#[tokio::test]
async fn a_dry_run_write_is_answered_but_changes_nothing() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    cms.create(&dry, &config_map("a", json!({})))
        .await
        .expect("dry create");
    assert_eq!(
        api_error(cms.get("a").await.expect_err("not stored")).code,
        404
    );
    let created = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let patched = cms
        .patch(
            "a",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"data": {"k": "dry"}})),
        )
        .await
        .expect("dry patch");
    assert_eq!(
        patched.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("dry")
    );
    let stored = cms.get("a").await.expect("get");
    assert_eq!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );
    cms.delete(
        "a",
        &DeleteParams {
            dry_run: true,
            ..DeleteParams::default()
        },
    )
    .await
    .expect("dry delete");
    cms.get("a").await.expect("still there");
}

#[tokio::test]
async fn a_malformed_name_or_label_is_422_invalid() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("Bad_Name", json!({})))
            .await
            .expect_err("bad name"),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", err.message);
    let err = api_error(
        cms.create(
            &PostParams::default(),
            &config_map("ok", json!({"k": "no spaces"})),
        )
        .await
        .expect_err("bad label"),
    );
    assert_eq!(err.code, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_write_loops_lose_no_update() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let mut counter = config_map("counter", json!({}));
    counter.data = Some([("n".to_owned(), "0".to_owned())].into());
    cms.create(&PostParams::default(), &counter)
        .await
        .expect("create");
    let writers = (0..4).map(|_| {
        let cms = cms.clone();
        tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..10 {
                loop {
                    let mut current = cms.get("counter").await.expect("get");
                    let n: u32 = current
                        .data
                        .as_ref()
                        .and_then(|d| d.get("n"))
                        .and_then(|n| n.parse().ok())
                        .expect("a number");
                    current.data = Some([("n".to_owned(), (n + 1).to_string())].into());
                    match cms
                        .replace("counter", &PostParams::default(), &current)
                        .await
                    {
                        Ok(_) => break,
                        Err(kube::Error::Api(status)) if status.code == 409 => conflicts += 1,
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
            }
            conflicts
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.expect("writer finished");
    }
    let last = cms.get("counter").await.expect("get");
    assert_eq!(
        last.data.and_then(|d| d.get("n").cloned()).as_deref(),
        Some("40")
    );
}

#[tokio::test]
async fn an_apply_patch_creates_then_replaces_its_fields_and_needs_a_field_manager() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}});
    let params = PatchParams::apply("kubesim-test").force();
    let created = cms
        .patch("a", &params, &Patch::Apply(&applied))
        .await
        .expect("apply creates");
    assert_eq!(
        created.data,
        Some([("x".to_owned(), "1".to_owned())].into())
    );
    let again = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"y": "2"}});
    let merged = cms
        .patch("a", &params, &Patch::Apply(&again))
        .await
        .expect("apply updates");
    // The manager no longer applies `x`, so server-side apply removes it.
    assert_eq!(merged.data, Some([("y".to_owned(), "2".to_owned())].into()));
    let no_manager = sim
        .raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/a",
            Some("application/apply-patch+yaml"),
            None,
            Some(&again),
        )
        .await
        .expect("request");
    assert_eq!(no_manager.status, 400);
}

#[tokio::test]
async fn a_strategic_merge_patch_merges_service_ports_by_port() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let svcs: Api<Service> = Api::default_namespaced(sim.client());
    let mut web = service("web");
    web.spec = serde_json::from_value(json!({
        "type": "LoadBalancer",
        "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
    }))
    .expect("valid spec");
    let created = svcs
        .create(&PostParams::default(), &web)
        .await
        .expect("create");
    let node_port = |s: &Service, i: usize| {
        s.spec
            .as_ref()
            .and_then(|sp| sp.ports.as_ref())
            .and_then(|p| p.get(i))
            .and_then(|p| p.node_port)
    };
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
        "ports": [{"port": 443, "targetPort": 8443}],
    }});
    let patched = svcs
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("strategic merge patch");
    let ports = patched
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let summary: Vec<(Option<String>, i32)> =
        ports.iter().map(|p| (p.name.clone(), p.port)).collect();
    assert_eq!(
        summary,
        [
            (Some("http".to_owned()), 80),
            (Some("https".to_owned()), 443)
        ]
    );
    assert_eq!(
        node_port(&patched, 0),
        node_port(&created, 0),
        "node ports are kept"
    );
    assert_eq!(
        ports[1].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8443))
    );
}
