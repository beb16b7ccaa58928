//! Server-side apply's field ownership through kube-rs: `managedFields` per manager, an apply
//! that conflicts with another manager's field answers 409 with `FieldManagerConflict` causes
//! unless forced, and plain updates take the fields they change (see `kubesim::managed` for
//! what is simplified).

use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

fn config(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": data})
}

/// `(manager, operation)` of each managedFields entry.
fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_apply_conflicting_with_another_manager_is_refused_unless_forced() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let ci = PatchParams::apply("ci");
    api.patch(
        "settings",
        &ci,
        &Patch::Apply(config(json!({"mode": "fast", "level": "1"}))),
    )
    .await
    .expect("ci applies");
    let edited = api
        .patch(
            "settings",
            &PatchParams {
                field_manager: Some("ops".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"data": {"level": "9"}})),
        )
        .await
        .expect("ops edits");
    assert_eq!(
        managers(&edited),
        vec![
            ("ci".to_owned(), "Apply".to_owned()),
            ("ops".to_owned(), "Update".to_owned())
        ]
    );

    let refused = sim
        .raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/settings?fieldManager=ci",
            Some("application/apply-patch+yaml"),
            None,
            Some(&config(json!({"mode": "fast", "level": "2"}))),
        )
        .await
        .expect("request");
    assert_eq!(refused.status, 409, "{}", refused.text());
    let status = refused.json();
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"ops\" using v1: .data.level"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"ops\" using v1", "field": ".data.level"}])
    );

    let forced = api
        .patch(
            "settings",
            &ci.clone().force(),
            &Patch::Apply(config(json!({"mode": "fast", "level": "2"}))),
        )
        .await
        .expect("a forced apply wins");
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("level"))
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        managers(&forced),
        vec![("ci".to_owned(), "Apply".to_owned())],
        "ops lost its only field"
    );
}

#[tokio::test]
async fn an_apply_keeps_fields_another_manager_set_and_drops_its_own() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let ci = PatchParams::apply("ci");
    api.patch(
        "settings",
        &ci,
        &Patch::Apply(config(json!({"mode": "fast", "old": "yes"}))),
    )
    .await
    .expect("ci applies");
    api.patch(
        "settings",
        &PatchParams::apply("ops"),
        &Patch::Apply(config(json!({"extra": "ops"}))),
    )
    .await
    .expect("ops applies its own field");
    let after = api
        .patch(
            "settings",
            &ci,
            &Patch::Apply(config(json!({"mode": "slow"}))),
        )
        .await
        .expect("ci applies again");
    let data = after.data.unwrap_or_default();
    assert_eq!(data.get("mode").map(String::as_str), Some("slow"));
    assert_eq!(data.get("extra").map(String::as_str), Some("ops"));
    assert!(!data.contains_key("old"), "{data:?}");
    let unchanged = api
        .patch(
            "settings",
            &ci,
            &Patch::Apply(config(json!({"mode": "slow"}))),
        )
        .await
        .expect("the same apply again");
    assert_eq!(
        unchanged.metadata.resource_version, after.metadata.resource_version,
        "an apply that changes nothing writes nothing"
    );
}
