//! Step 3 of kubesim: CustomResourceDefinitions — FerroLB's own CRD manifests served under
//! their group and versions, discovery, schema defaults, structural validation (422 with
//! causes), the status subresource, and printer columns as server-side Tables.

use std::path::PathBuf;

use ferrolb_kubesim::KubeSim;
use ferrolb_kubesim::fixtures::load_manifests;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::Discovery;
use serde_json::{Value, json};

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

fn resource(version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("metallb.io", version, kind), plural)
}

fn pools(sim: &KubeSim) -> Api<DynamicObject> {
    Api::namespaced_with(
        sim.client(),
        "ferrolb-system",
        &resource("v1beta1", "IPAddressPool", "ipaddresspools"),
    )
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a valid object")
}

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn sim_with_crds() -> KubeSim {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let count = sim.create_from(&crds_dir()).expect("CRDs install");
    assert!(count >= 9, "found {count} CRDs");
    sim.create_object(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ferrolb-system"}}),
    )
    .expect("namespace");
    sim
}

fn pool(name: &str, spec: Value) -> DynamicObject {
    object(json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "ferrolb-system"},
        "spec": spec,
    }))
}

#[tokio::test]
async fn crds_created_over_http_are_established_and_appear_in_discovery() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let crds: Api<CustomResourceDefinition> = Api::all(sim.client());
    for manifest in load_manifests(&crds_dir()).expect("CRD manifests") {
        let crd: CustomResourceDefinition = serde_json::from_value(manifest).expect("a CRD");
        let created = crds
            .create(&PostParams::default(), &crd)
            .await
            .expect("CRD created");
        let established = created
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established);
    }
    let discovery = Discovery::new(sim.client())
        .run()
        .await
        .expect("discovery runs");
    let group = discovery.get("metallb.io").expect("metallb.io discovered");
    assert_eq!(group.preferred_version_or_latest(), "v1beta2");
    let kinds: Vec<String> = group
        .versioned_resources("v1beta1")
        .into_iter()
        .map(|(r, _)| r.kind)
        .collect();
    for kind in [
        "IPAddressPool",
        "L2Advertisement",
        "BGPAdvertisement",
        "BFDProfile",
        "Community",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    let peers = group.versioned_resources("v1beta2");
    assert!(peers.iter().any(|(r, _)| r.kind == "BGPPeer"));
}

#[tokio::test]
async fn schema_defaults_are_applied_on_create_and_update() {
    let sim = sim_with_crds().await;
    let created = pools(&sim)
        .create(
            &PostParams::default(),
            &pool("a", json!({"addresses": ["192.0.2.0/28"]})),
        )
        .await
        .expect("pool created");
    assert_eq!(created.data["spec"]["autoAssign"], json!(true));
    assert_eq!(created.data["spec"]["avoidBuggyIPs"], json!(false));
    let patched = pools(&sim)
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoAssign": null}})),
        )
        .await
        .expect("patched");
    assert_eq!(
        patched.data["spec"]["autoAssign"],
        json!(true),
        "a removed field is defaulted again"
    );
}

#[tokio::test]
async fn schema_violations_are_422_invalid_with_causes_naming_the_field() {
    let sim = sim_with_crds().await;
    let err = api_error(
        pools(&sim)
            .create(
                &PostParams::default(),
                &pool(
                    "bad",
                    json!({"addresses": "192.0.2.0/28", "autoAssign": "yes"}),
                ),
            )
            .await
            .expect_err("wrong types"),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.map(|d| d.causes).unwrap_or_default();
    let fields: Vec<(String, String)> = causes
        .iter()
        .map(|c| (c.field.clone(), c.reason.clone()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "spec.addresses".to_owned(),
                "FieldValueTypeInvalid".to_owned()
            ),
            (
                "spec.autoAssign".to_owned(),
                "FieldValueTypeInvalid".to_owned()
            ),
        ]
    );
    let missing = api_error(
        pools(&sim)
            .create(&PostParams::default(), &pool("empty", json!({})))
            .await
            .expect_err("required"),
    );
    assert_eq!(
        missing.message,
        "IPAddressPool.metallb.io \"empty\" is invalid: spec.addresses: Required value"
    );
    let bfd: Api<DynamicObject> = Api::namespaced_with(
        sim.client(),
        "ferrolb-system",
        &resource("v1beta1", "BFDProfile", "bfdprofiles"),
    );
    let too_big = api_error(
        bfd.create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
                "metadata": {"name": "x"}, "spec": {"detectMultiplier": 300},
            })),
        )
        .await
        .expect_err("above maximum"),
    );
    assert!(
        too_big.message.ends_with("spec.detectMultiplier: Invalid value: 300: spec.detectMultiplier in body should be less than or equal to 255"),
        "{}",
        too_big.message
    );
    let peers: Api<DynamicObject> = Api::namespaced_with(
        sim.client(),
        "ferrolb-system",
        &resource("v1beta2", "BGPPeer", "bgppeers"),
    );
    let bad_enum = api_error(
        peers
            .create(
                &PostParams::default(),
                &object(json!({
                    "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "p"},
                    "spec": {"myASN": 64512, "peerAddress": "203.0.113.1", "dynamicASN": "sideways"},
                })),
            )
            .await
            .expect_err("not in the enum"),
    );
    let cause = bad_enum.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(
        cause.first().map(|c| (c.field.as_str(), c.reason.as_str())),
        Some(("spec.dynamicASN", "FieldValueNotSupported"))
    );
}

#[tokio::test]
async fn unknown_fields_are_pruned_and_rejected_under_strict_field_validation() {
    let sim = sim_with_crds().await;
    let body = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "p"}, "spec": {"addresses": ["192.0.2.0/28"], "bogus": 1},
    });
    let strict = sim
        .raw("POST", "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools?fieldValidation=Strict", Some("application/json"), None, Some(&body))
        .await
        .expect("request");
    assert_eq!(strict.status, 400);
    assert!(
        strict.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field \"spec.bogus\""))
    );
    let lax = sim
        .raw(
            "POST",
            "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools",
            Some("application/json"),
            None,
            Some(&body),
        )
        .await
        .expect("request");
    assert_eq!(lax.status, 201);
    assert_eq!(lax.json()["spec"].get("bogus"), None);
}

#[tokio::test]
async fn the_status_subresource_of_a_custom_resource_is_separate_from_its_spec() {
    let sim = sim_with_crds().await;
    let api = pools(&sim);
    let created = api
        .create(
            &PostParams::default(),
            &pool("a", json!({"addresses": ["192.0.2.0/28"]})),
        )
        .await
        .expect("pool created");
    assert_eq!(created.metadata.generation, Some(1));
    let counters =
        json!({"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 15, "availableIPv6": 0});
    let with_status = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": counters, "spec": {"autoAssign": false}})),
        )
        .await
        .expect("status patched");
    assert_eq!(with_status.data["status"]["assignedIPv4"], 1);
    assert_eq!(
        with_status.data["spec"]["autoAssign"], true,
        "spec untouched by /status"
    );
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "a status change keeps the generation"
    );
    let main = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"assignedIPv4": 9}})),
        )
        .await
        .expect("main patched");
    assert_eq!(
        main.data["status"]["assignedIPv4"], 1,
        "status untouched by the main endpoint"
    );
    let labelled = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "edge"}}})),
        )
        .await
        .expect("labels patched");
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "a label change keeps it"
    );
    let respecced = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoAssign": false}})),
        )
        .await
        .expect("spec patched");
    assert_eq!(
        respecced.metadata.generation,
        Some(2),
        "a spec change bumps it"
    );
    let invalid = api_error(
        api.patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"assignedIPv4": "many"}})),
        )
        .await
        .expect_err("status is validated too"),
    );
    assert_eq!(invalid.code, 422);
}

#[tokio::test]
async fn printer_columns_are_served_as_a_table() {
    let sim = sim_with_crds().await;
    pools(&sim)
        .create(
            &PostParams::default(),
            &pool(
                "public",
                json!({"addresses": ["203.0.113.0/26"], "avoidBuggyIPs": true}),
            ),
        )
        .await
        .expect("pool created");
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let table = sim
        .raw(
            "GET",
            "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools",
            None,
            Some(accept),
            None,
        )
        .await
        .expect("request")
        .json();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        ["Name", "Auto Assign", "Avoid Buggy IPs", "Addresses"]
    );
    assert_eq!(
        table["rows"][0]["cells"],
        json!(["public", true, true, "[\"203.0.113.0/26\"]"])
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn deleting_a_crd_stops_serving_its_resources() {
    let sim = sim_with_crds().await;
    pools(&sim)
        .create(
            &PostParams::default(),
            &pool("a", json!({"addresses": ["192.0.2.0/28"]})),
        )
        .await
        .expect("pool created");
    let crds: Api<CustomResourceDefinition> = Api::all(sim.client());
    crds.delete("ipaddresspools.metallb.io", &Default::default())
        .await
        .expect("CRD deleted");
    let gone = sim
        .raw(
            "GET",
            "/apis/metallb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools/a",
            None,
            None,
            None,
        )
        .await
        .expect("request");
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn cel_validation_rules_of_the_crds_are_enforced() {
    let sim = sim_with_crds().await;
    let peers: Api<DynamicObject> = Api::namespaced_with(
        sim.client(),
        "ferrolb-system",
        &resource("v1beta2", "BGPPeer", "bgppeers"),
    );
    let peer = |spec: Value| {
        object(json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "p"}, "spec": spec,
        }))
    };
    let too_short = api_error(
        peers
            .create(
                &PostParams::default(),
                &peer(
                    json!({"myASN": 64512, "peerAddress": "203.0.113.1", "connectTime": "500ms"}),
                ),
            )
            .await
            .expect_err("below one second"),
    );
    assert_eq!(too_short.code, 422);
    assert!(
        too_short.message.contains(
            "spec.connectTime: Invalid value: \"string\": connect time should be between 1 seconds to 65535"
        ),
        "{}",
        too_short.message
    );
    peers
        .create(
            &PostParams::default(),
            &peer(json!({"myASN": 64512, "peerAddress": "203.0.113.1", "enableGracefulRestart": true})),
        )
        .await
        .expect("valid peer");
    let changed = api_error(
        peers
            .patch(
                "p",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"enableGracefulRestart": false}})),
            )
            .await
            .expect_err("immutable field"),
    );
    assert!(
        changed
            .message
            .contains("EnableGracefulRestart cannot be changed after creation"),
        "{}",
        changed.message
    );
}
