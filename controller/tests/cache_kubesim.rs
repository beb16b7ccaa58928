//! The caches the webhook judges from hold what LISTs would return, so its verdicts are the
//! ones it gave when it listed per request.

mod support;

use std::time::Duration;

use ferrolb_api::config::Objects;
use ferrolb_controller::cache::{self, SOURCES};
use ferrolb_controller::task::AbortOnDrop;
use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::core::v1::Node;
use kube::Resource;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use support::NS;

/// Each object as JSON without `managedFields` (the caches drop them), sorted by name.
fn comparable<K: Resource + k8s_openapi::serde::Serialize>(objects: &[K]) -> Vec<Value> {
    objects
        .iter()
        .map(|o| {
            let mut value = serde_json::to_value(o).expect("json");
            if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            value
        })
        .collect()
}

async fn listed(sim: &KubeSim) -> Objects {
    async fn list<K>(sim: &KubeSim) -> Vec<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + k8s_openapi::serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(sim.client(), NS);
        api.list(&ListParams::default()).await.expect("list").items
    }
    let nodes = Api::<Node>::all(sim.client())
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items;
    Objects {
        pools: list(sim).await,
        l2_advertisements: list(sim).await,
        bgp_advertisements: list(sim).await,
        bgp_peers: list(sim).await,
        bfd_profiles: list(sim).await,
        communities: list(sim).await,
        secrets: None,
        nodes: Some(nodes),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caches_hold_what_lists_return() {
    let sim = support::start_sim(Default::default(), "192.0.2.0/28").await;
    let objects = [
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "b-pool", "namespace": NS, "labels": {"tier": "gold"}},
               "spec": {"addresses": ["198.51.100.0/28"], "autoAssign": false}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
               "metadata": {"name": "l2", "namespace": NS},
               "spec": {"ipAddressPools": ["lab"], "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
               "metadata": {"name": "bgp", "namespace": NS},
               "spec": {"ipAddressPools": ["b-pool"], "communities": ["edge"]}}),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "router", "namespace": NS},
               "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.254", "bfdProfile": "fast"}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
               "metadata": {"name": "fast", "namespace": NS}, "spec": {"receiveInterval": 100}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "Community",
               "metadata": {"name": "aliases", "namespace": NS},
               "spec": {"communities": [{"name": "edge", "value": "64512:100"}]}}),
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "node-1", "labels": {"rack": "a"}, "annotations": {"big": "x"}}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"}}),
    ];
    for object in objects {
        sim.create_object(object).expect("object");
    }
    let (caches, changes, watches) = cache::start(&sim.client(), NS, None);
    let _watches = AbortOnDrop::spawn(watches);
    let mut synced = [false; SOURCES];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !synced.iter().all(|s| *s) {
        let noted = tokio::time::timeout_at(deadline, changes.next())
            .await
            .expect("every watch lists within 10 s")
            .expect("watching");
        for (synced, now) in synced.iter_mut().zip(noted.synced) {
            *synced |= now;
        }
    }

    let (cached, want) = (caches.objects(true), listed(&sim).await);
    assert_eq!(comparable(&cached.pools), comparable(&want.pools));
    assert_eq!(cached.pools.len(), 2);
    assert_eq!(
        comparable(&cached.l2_advertisements),
        comparable(&want.l2_advertisements)
    );
    assert_eq!(
        comparable(&cached.bgp_advertisements),
        comparable(&want.bgp_advertisements)
    );
    assert_eq!(comparable(&cached.bgp_peers), comparable(&want.bgp_peers));
    assert_eq!(
        comparable(&cached.bfd_profiles),
        comparable(&want.bfd_profiles)
    );
    assert_eq!(
        comparable(&cached.communities),
        comparable(&want.communities)
    );
    let names_and_labels = |nodes: &Option<Vec<Node>>| -> Vec<(Option<String>, Value)> {
        let mut out: Vec<_> = nodes
            .iter()
            .flatten()
            .map(|n| (n.metadata.name.clone(), json!(n.metadata.labels)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    assert_eq!(
        names_and_labels(&cached.nodes),
        names_and_labels(&want.nodes)
    );
    assert_eq!(cached.nodes.as_ref().map(Vec::len), Some(2));
    assert!(
        caches.objects(false).nodes.is_none(),
        "Nodes only when asked"
    );
    // The same inputs give the same configuration, problems included.
    assert_eq!(
        format!("{:?}", ferrolb_api::config::build(&cached).problems),
        format!("{:?}", ferrolb_api::config::build(&want).problems)
    );
}
