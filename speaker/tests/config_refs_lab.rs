//! The real `ferrolb-speaker` against kubesim and a real FRR router, when a working BGPPeer or
//! BGPAdvertisement is edited to name a BFDProfile, Secret or Community alias that does not
//! exist (no webhook in this lab, as when it is down or bypassed). As in MetalLB, the load fails
//! for that object: `ConfigurationState` Invalid naming object and field, a `ConfigurationError`
//! Event on the object, and the last valid version stays in force, so the session and the routes
//! with their communities are untouched until the reference resolves.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_api::types::{BGPAdvertisement, BGPPeer, ConfigurationState};
use ferrolb_netlab::{self as netlab, eventually, eventually_async};
use ferrolb_tests::cluster::{Binaries, ClusterLab, NAMESPACE};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const WEB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const PEER_BFD: &str = r#"BGPPeer/router: spec.bfdProfile: BFDProfile "fast" does not exist"#;
const PEER_SECRET: &str =
    r#"BGPPeer/router: spec.passwordSecret: Secret "router-md5" does not exist"#;
const AD_ALIAS: &str = r#"BGPAdvertisement/bgp: spec.communities[0]: "gold" is neither"#;

/// `(result, errorSummary)` of the speaker's `ConfigurationState`, once it has a status.
async fn config_state(lab: &ClusterLab) -> Option<(String, String)> {
    let api: Api<ConfigurationState> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let status = api.get_opt("speaker-node-1").await.ok()??.status?;
    let result = serde_json::to_value(status.result?).ok()?;
    Some((result.as_str()?.to_owned(), status.error_summary))
}

/// Waits for a state whose summary holds exactly the problems starting with `lines`.
async fn wait_for_state(lab: &ClusterLab, result: &str, lines: &[&str]) -> (String, String) {
    let matches = |(got, summary): &(String, String)| {
        got == result
            && summary.lines().count() == lines.len()
            && lines
                .iter()
                .all(|l| summary.lines().any(|s| s.starts_with(l)))
    };
    let state = eventually_async(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { config_state(lab).await.filter(matches) },
    )
    .await;
    match state {
        Some(state) => state,
        None => panic!(
            "speaker-node-1 ConfigurationState never became {result} with {lines:?}: {:?}\n{}",
            config_state(lab).await,
            lab.log("speaker-node-1")
        ),
    }
}

/// Notes of `ConfigurationError` Events about object `name` that contain `needle`.
async fn events_about(lab: &ClusterLab, name: &str, needle: &str) -> Vec<String> {
    let api: Api<Event> = Api::all(lab.sim.client());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some("ConfigurationError")
        })
        .filter_map(|e| e.note)
        .filter(|n| n.contains(needle))
        .collect()
}

async fn wait_for_event(lab: &ClusterLab, name: &str, needle: &str) {
    let found = eventually_async(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let notes = events_about(lab, name, needle).await;
            (!notes.is_empty()).then_some(notes)
        },
    )
    .await;
    assert!(
        found.is_some(),
        "no ConfigurationError Event on {name} containing {needle:?}\n{}",
        lab.log("speaker-node-1")
    );
}

/// `(state, connections dropped)` of the router's session to node-1.
fn session(lab: &ClusterLab) -> Option<(String, u64)> {
    let router = lab.router.as_ref()?;
    let node = lab.nodes[0].v4.to_string();
    let detail = router
        .json(&format!("show bgp neighbors {node} json"))
        .ok()?;
    let neighbor = detail.get(&node)?;
    Some((
        neighbor.get("bgpState")?.as_str()?.to_owned(),
        neighbor.get("connectionsDropped")?.as_u64()?,
    ))
}

/// The communities the router holds for the Service's /32.
fn communities(lab: &ClusterLab) -> String {
    lab.router
        .as_ref()
        .and_then(|r| r.json(&format!("show bgp ipv4 unicast {WEB}/32 json")).ok())
        .and_then(|path| {
            path.pointer("/paths/0/community/string")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

async fn patch<K>(api: &Api<K>, name: &str, spec: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec})),
    )
    .await
    .unwrap_or_else(|e| panic!("patch {name}: {e}"));
}

/// After the state has shown the edit, the speaker has applied that configuration: the session
/// must still be the same one and the route must still carry `community`.
async fn assert_untouched(lab: &ClusterLab, dropped_before: u64, community: &str) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        session(lab),
        Some(("Established".to_owned(), dropped_before)),
        "the session was not reset\n{}",
        lab.log("speaker-node-1")
    );
    assert_eq!(
        communities(lab),
        community,
        "the route keeps its communities"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_to_a_missing_object_is_reported_and_the_last_valid_version_keeps_working() {
    if !netlab::can_run(&[netlab::frr::BGPD]) {
        return;
    }
    let binaries = Binaries {
        speaker: PathBuf::from(env!("CARGO_BIN_EXE_ferrolb-speaker")),
        controller: None,
    };
    let mut lab = ClusterLab::start("spkref", 1, true, binaries)
        .await
        .expect("lab starts");
    lab.apply_standard_config().expect("configuration");
    lab.start_speakers().expect("speaker");
    lab.create_service("web", json!({}), false, &[0], &[WEB.into()])
        .await
        .expect("service");
    let announced = eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        (communities(&lab) == "64512:100").then_some(())
    })
    .await;
    assert!(
        announced.is_some(),
        "the router never got {WEB}/32 with 64512:100: {:?}\n{}",
        session(&lab),
        lab.log("speaker-node-1")
    );
    wait_for_state(&lab, "Valid", &[]).await;
    let (_, dropped) = session(&lab).expect("session details");
    let peers: Api<BGPPeer> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let ads: Api<BGPAdvertisement> = Api::namespaced(lab.sim.client(), NAMESPACE);

    patch(&peers, "router", json!({"bfdProfile": "fast"})).await;
    wait_for_state(&lab, "Invalid", &[PEER_BFD]).await;
    wait_for_event(&lab, "router", "spec.bfdProfile").await;
    assert_untouched(&lab, dropped, "64512:100").await;

    patch(&ads, "bgp", json!({"communities": ["gold"]})).await;
    wait_for_state(&lab, "Invalid", &[PEER_BFD, AD_ALIAS]).await;
    wait_for_event(&lab, "bgp", "spec.communities[0]").await;
    assert_untouched(&lab, dropped, "64512:100").await;

    // MetalLB treats a missing password Secret the same way (a TransientError at run time).
    patch(
        &peers,
        "router",
        json!({"bfdProfile": null, "passwordSecret": {"name": "router-md5"}}),
    )
    .await;
    wait_for_state(&lab, "Invalid", &[PEER_SECRET, AD_ALIAS]).await;
    wait_for_event(&lab, "router", "spec.passwordSecret").await;
    assert_untouched(&lab, dropped, "64512:100").await;

    // Once the references resolve (or go), the new versions take over.
    patch(&peers, "router", json!({"passwordSecret": null})).await;
    lab.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "Community",
        "metadata": {"name": "aliases", "namespace": NAMESPACE},
        "spec": {"communities": [{"name": "gold", "value": "64512:200"}]}
    }))
    .expect("community");
    wait_for_state(&lab, "Valid", &[]).await;
    let updated = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        (communities(&lab) == "64512:200").then_some(())
    })
    .await;
    assert!(
        updated.is_some(),
        "the alias's value reaches the router: {:?}",
        communities(&lab)
    );
    assert_eq!(
        session(&lab),
        Some(("Established".to_owned(), dropped)),
        "a community change needs no new session"
    );
}
