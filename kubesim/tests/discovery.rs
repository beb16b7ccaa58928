//! Step 2 of kubesim: built-in kinds and discovery, checked with kube-rs's own discovery client
//! and raw requests for the documents kubectl reads.

use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Node, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

#[tokio::test]
async fn kube_discovery_finds_every_built_in_kind_with_its_scope() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let discovery = Discovery::new(sim.client())
        .run()
        .await
        .expect("discovery runs");
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            found.push((
                resource.group.clone(),
                resource.plural.clone(),
                caps.scope == Scope::Namespaced,
            ));
        }
    }
    for expected in [
        ("", "namespaces", false),
        ("", "nodes", false),
        ("", "services", true),
        ("", "endpoints", true),
        ("", "pods", true),
        ("", "secrets", true),
        ("", "configmaps", true),
        ("", "events", true),
        ("", "serviceaccounts", true),
        ("discovery.k8s.io", "endpointslices", true),
        ("events.k8s.io", "events", true),
        ("coordination.k8s.io", "leases", true),
        ("apiextensions.k8s.io", "customresourcedefinitions", false),
    ] {
        let expected = (expected.0.to_owned(), expected.1.to_owned(), expected.2);
        assert!(
            found.contains(&expected),
            "missing {expected:?} in {found:?}"
        );
    }
}

/// What kubectl and client-go send to `/api` and `/apis`.
const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

#[tokio::test]
async fn kube_aggregated_discovery_finds_the_kinds_and_a_new_crd() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    sim.create_object(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.test"},
        "spec": {
            "group": "example.test",
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .expect("the CRD is created");
    let discovery = Discovery::new(sim.client())
        .run_aggregated()
        .await
        .expect("aggregated discovery runs");
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            found.push((
                resource.group.clone(),
                resource.plural.clone(),
                caps.scope == Scope::Namespaced,
                caps.subresources.iter().any(|(s, _)| s.plural == "status"),
            ));
        }
    }
    for expected in [
        ("", "services", true, true),
        ("", "configmaps", true, false),
        ("events.k8s.io", "events", true, false),
        ("example.test", "widgets", false, true),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2,
            expected.3,
        );
        assert!(
            found.contains(&expected),
            "missing {expected:?} in {found:?}"
        );
    }
    let requested: Vec<String> = sim.requests().into_iter().map(|r| r.path).collect();
    assert!(
        !requested
            .iter()
            .any(|p| p == "/api/v1" || p.starts_with("/apis/")),
        "no per-group-version request: {requested:?}"
    );
}

#[tokio::test]
async fn api_and_apis_answer_the_aggregated_form_when_asked_first() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    for (path, named) in [("/api", false), ("/apis", true)] {
        let reply = sim
            .raw("GET", path, None, Some(AGGREGATED_ACCEPT), None)
            .await
            .expect("request");
        assert_eq!(
            reply.content_type,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        let doc = reply.json();
        assert_eq!(
            (&doc["kind"], &doc["apiVersion"]),
            (
                &json!("APIGroupDiscoveryList"),
                &json!("apidiscovery.k8s.io/v2")
            )
        );
        let items = doc["items"].as_array().expect("items");
        assert!(
            items
                .iter()
                .all(|g| g["metadata"].get("name").is_some() == named),
            "{doc}"
        );
    }
    let beta = sim
        .raw(
            "GET",
            "/apis",
            None,
            Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            None,
        )
        .await
        .expect("request");
    assert_eq!(beta.json()["apiVersion"], "apidiscovery.k8s.io/v2beta1");
}

#[tokio::test]
async fn version_api_and_apis_documents_have_the_legacy_shape() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let version = sim
        .raw("GET", "/version", None, None, None)
        .await
        .expect("request")
        .json();
    assert_eq!(version["major"], "1");
    let api = sim
        .raw("GET", "/api", None, None, None)
        .await
        .expect("request")
        .json();
    assert_eq!(
        (api["kind"].clone(), api["versions"].clone()),
        (json!("APIVersions"), json!(["v1"]))
    );
    // A client that asks for plain JSON first gets the legacy form.
    let legacy_accept =
        "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let apis = sim
        .raw("GET", "/apis", None, Some(legacy_accept), None)
        .await
        .expect("request");
    assert_eq!(apis.content_type, "application/json");
    let apis = apis.json();
    assert_eq!(apis["kind"], "APIGroupList");
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(groups.contains(&"coordination.k8s.io"), "{groups:?}");
    let core = sim
        .raw("GET", "/api/v1", None, None, None)
        .await
        .expect("request")
        .json();
    let services = core["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "services")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(services["shortNames"], json!(["svc"]));
    assert!(
        core["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == "services/status")
    );
}

#[tokio::test]
async fn openapi_v3_lists_each_group_version_with_patch_operations_that_take_field_validation() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let root = sim
        .raw("GET", "/openapi/v3", None, None, None)
        .await
        .expect("request")
        .json();
    let url = root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .expect("api/v1 listed")
        .to_owned();
    let doc = sim
        .raw("GET", &url, None, None, None)
        .await
        .expect("request")
        .json();
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Secret");
    assert!(
        patch["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "fieldValidation")
    );
}

#[tokio::test]
async fn built_in_kinds_round_trip_through_their_typed_clients() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let client = sim.client();
    let pp = PostParams::default();
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "rack-a"}}}))
        .expect("valid node");
    Api::<Node>::all(client.clone())
        .create(&pp, &node)
        .await
        .expect("node");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "md5"}, "stringData": {"password": "abc"}}),
    )
    .expect("valid secret");
    let stored = Api::<Secret>::default_namespaced(client.clone())
        .create(&pp, &secret)
        .await
        .expect("secret");
    assert_eq!(
        stored
            .data
            .and_then(|d| d.get("password").map(|b| b.0.clone())),
        Some(b"abc".to_vec())
    );
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.10"], "conditions": {"ready": true}, "nodeName": "node-a"}],
    }))
    .expect("valid slice");
    Api::<EndpointSlice>::default_namespaced(client.clone())
        .create(&pp, &slice)
        .await
        .expect("slice");
    let endpoints: Endpoints =
        serde_json::from_value(json!({"metadata": {"name": "web"}})).expect("valid endpoints");
    Api::<Endpoints>::default_namespaced(client.clone())
        .create(&pp, &endpoints)
        .await
        .expect("endpoints");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "ferrolb-controller"}, "spec": {"holderIdentity": "a"}}),
    )
    .expect("valid lease");
    let lease = Api::<Lease>::default_namespaced(client.clone())
        .create(&pp, &lease)
        .await
        .expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("a")
    );
}

#[tokio::test]
async fn services_get_cluster_ips_node_ports_and_defaults() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let svc = sim
        .create_object(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }))
        .expect("service created");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    assert!(
        svc["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .is_some_and(|p| (30000..32768).contains(&p))
    );
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));
}
