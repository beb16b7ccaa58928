//! The built-in kinds a Helm chart installs besides the core ones: `apps/v1` Deployments and
//! DaemonSets (stored with a status subresource and `metadata.generation`, as the chart tests'
//! kubelet reads them; nothing runs Pods), `policy/v1` PodDisruptionBudgets and
//! `networking.k8s.io/v1` NetworkPolicies.

use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn pod_template(app: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": app}},
           "spec": {"containers": [{"name": app, "image": format!("example/{app}:1")}]}})
}

#[tokio::test]
async fn a_deployment_keeps_status_apart_and_counts_spec_changes_in_its_generation() {
    let sim = KubeSim::start().await.expect("kubesim");
    let api: Api<Deployment> = Api::namespaced(sim.client(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": pod_template("web")}
    }))
    .expect("Deployment");
    let created = api
        .create(&PostParams::default(), &deployment)
        .await
        .expect("created");
    assert_eq!(created.metadata.generation, Some(1));
    let status = json!({"status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2}});
    let with_status = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status written");
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status is not spec"
    );
    let ignored = json!({"spec": {"replicas": 9}, "status": {"readyReplicas": 0}});
    let through_status = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&ignored))
        .await
        .expect("patched");
    assert_eq!(
        through_status.spec.as_ref().and_then(|s| s.replicas),
        Some(2)
    );
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scaled");
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(
        scaled.status.and_then(|s| s.ready_replicas),
        Some(0),
        "the main resource leaves status alone"
    );
}

#[tokio::test]
async fn daemonsets_pdbs_and_network_policies_are_served() {
    let sim = KubeSim::start().await.expect("kubesim");
    let client = sim.client();
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "speaker"},
        "spec": {"selector": {"matchLabels": {"app": "speaker"}}, "template": pod_template("speaker")}
    }))
    .expect("DaemonSet");
    let created = Api::<DaemonSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &ds)
        .await
        .expect("DaemonSet stored");
    assert_eq!(created.metadata.generation, Some(1));
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "controller"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "controller"}}}
    }))
    .expect("PDB");
    Api::<PodDisruptionBudget>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pdb)
        .await
        .expect("PDB stored");
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "controller"},
        "spec": {"podSelector": {"matchLabels": {"app": "controller"}}, "policyTypes": ["Ingress"]}
    }))
    .expect("NetworkPolicy");
    Api::<NetworkPolicy>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &policy)
        .await
        .expect("NetworkPolicy stored");
    let discovery = kube::Discovery::new(client).run().await.expect("discovery");
    for (group, kind) in [
        ("apps", "DaemonSet"),
        ("apps", "Deployment"),
        ("policy", "PodDisruptionBudget"),
        ("networking.k8s.io", "NetworkPolicy"),
    ] {
        let served = discovery.get(group).is_some_and(|g| {
            g.recommended_resources()
                .iter()
                .any(|(r, _)| r.kind == kind)
        });
        assert!(served, "{group} {kind} is discoverable");
    }
}
