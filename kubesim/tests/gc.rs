//! Deletion propagation through `ownerReferences`, as Helm's and kubectl's deletes ask for it:
//! Background (the default) and Foreground delete the dependents, Orphan releases them, and a
//! dependent with another live owner only loses the dangling reference.

use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

async fn config_map(api: &Api<ConfigMap>, name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    let refs: Vec<_> = owners
        .iter()
        .map(|o| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(),
                   "uid": o.uid().unwrap_or_default()})
        })
        .collect();
    let cm = serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}}))
        .expect("a valid ConfigMap");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("created")
}

fn owner_names(cm: &ConfigMap) -> Vec<String> {
    cm.owner_references()
        .iter()
        .map(|r| r.name.clone())
        .collect()
}

#[tokio::test]
async fn background_deletes_dependents_but_keeps_those_with_another_live_owner() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let parent = config_map(&api, "parent", &[]).await;
    let other = config_map(&api, "other", &[]).await;
    let child = config_map(&api, "child", &[&parent]).await;
    config_map(&api, "grandchild", &[&child]).await;
    config_map(&api, "shared", &[&parent, &other]).await;

    api.delete("parent", &DeleteParams::default())
        .await
        .expect("deleted");
    for gone in ["parent", "child", "grandchild"] {
        assert!(api.get_opt(gone).await.expect("get").is_none(), "{gone}");
    }
    let shared = api.get("shared").await.expect("shared stays");
    assert_eq!(owner_names(&shared), vec!["other".to_owned()]);
}

#[tokio::test]
async fn orphan_releases_dependents_and_foreground_deletes_the_whole_tree() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let parent = config_map(&api, "parent", &[]).await;
    config_map(&api, "kept", &[&parent]).await;
    api.delete("parent", &DeleteParams::orphan())
        .await
        .expect("deleted");
    let kept = api.get("kept").await.expect("the dependent stays");
    assert!(owner_names(&kept).is_empty(), "{kept:?}");

    let root = config_map(&api, "root", &[]).await;
    let branch = config_map(&api, "branch", &[&root]).await;
    config_map(&api, "leaf", &[&branch]).await;
    api.delete("root", &DeleteParams::foreground())
        .await
        .expect("deleted");
    for gone in ["root", "branch", "leaf"] {
        assert!(api.get_opt(gone).await.expect("get").is_none(), "{gone}");
    }
    assert!(api.get_opt("kept").await.expect("get").is_some());
}

#[tokio::test]
async fn a_stale_precondition_deletes_nothing_even_in_the_foreground() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let parent = config_map(&api, "parent", &[]).await;
    config_map(&api, "child", &[&parent]).await;
    let mut params = DeleteParams::foreground();
    params.preconditions = Some(kube::api::Preconditions {
        uid: Some("not-the-uid".into()),
        resource_version: None,
    });
    let err = api
        .delete("parent", &params)
        .await
        .expect_err("the precondition fails");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    assert!(api.get_opt("child").await.expect("get").is_some());
}
