//! The controller, run in-process as `main` runs it, against kubesim: what a user sees with
//! kubectl.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrolb_controller::Settings;
use ferrolb_kubesim::KubeSim;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::{Running, ingress_ip};

/// The controller as `ferrolb-controller run --namespace ferrolb-system` runs it.
async fn start_controller(sim: &KubeSim) -> Running {
    Running::start(Settings::new(support::NS), sim.client(), true, None).await
}

/// kubesim with FerroLB's CRDs, its namespace and one pool, and the controller running on it.
struct Lab {
    sim: KubeSim,
    controller: Running,
}

impl Lab {
    async fn start(pool: &str) -> Lab {
        let sim = support::start_sim(Default::default(), pool).await;
        let controller = start_controller(&sim).await;
        Lab { sim, controller }
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.sim.client(), "shop")
    }

    async fn create_service(&self, name: &str, class: Option<&str>) {
        let mut spec = json!({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": name}});
        if let Some(class) = class {
            spec["loadBalancerClass"] = json!(class);
        }
        let service: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})).expect("service");
        self.services()
            .create(&PostParams::default(), &service)
            .await
            .expect("create service");
    }

    /// The ingress IP of each named Service once all have one (generous deadline: correctness).
    async fn wait_for_ips(&self, names: &[String]) -> BTreeMap<String, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut ips = BTreeMap::new();
            for name in names {
                let service = self.services().get(name).await.expect("get");
                if let Some(ip) = ingress_ip(&service) {
                    ips.insert(name.clone(), ip);
                }
            }
            if ips.len() == names.len() {
                return ips;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {} services got an IP",
                ips.len(),
                names.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_service_gets_an_ip_the_pool_annotation_and_an_event() {
    let lab = Lab::start("192.0.2.0/28").await;
    lab.create_service("web", None).await;
    let ips = lab.wait_for_ips(&["web".to_owned()]).await;
    assert_eq!(ips["web"], "192.0.2.0");
    let service = lab.services().get("web").await.expect("get");
    assert_eq!(
        service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("metallb.io/ip-allocated-from-pool"))
            .map(String::as_str),
        Some("lab")
    );

    let events: Api<Event> = Api::namespaced(lab.sim.client(), "shop");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = events.list(&ListParams::default()).await.expect("events");
        let found = listed
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("IPAllocated"));
        if let Some(event) = found {
            assert_eq!(
                event.note.as_deref(),
                Some("Assigned IP [192.0.2.0] from pool lab")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no IPAllocated event: {:?}",
            listed.items.iter().map(|e| &e.reason).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_of_another_class_are_left_alone() {
    let lab = Lab::start("192.0.2.0/28").await;
    lab.create_service("theirs", Some("vendor.example/lb"))
        .await;
    lab.create_service("ours", None).await;
    lab.wait_for_ips(&["ours".to_owned()]).await;
    let theirs = lab.services().get("theirs").await.expect("get");
    assert_eq!(ingress_ip(&theirs), None);
    assert!(
        !theirs
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("metallb.io/ip-allocated-from-pool")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_burst_moves_no_ip_and_leaves_no_service_without_one() {
    let mut lab = Lab::start("192.0.2.0/26").await;
    let first: Vec<String> = (0..15).map(|i| format!("svc-{i:02}")).collect();
    for name in &first {
        lab.create_service(name, None).await;
    }
    let before = lab.wait_for_ips(&first).await;
    let burst: Vec<String> = (15..40).map(|i| format!("svc-{i:02}")).collect();
    for (i, name) in burst.iter().enumerate() {
        lab.create_service(name, None).await;
        if i == 10 {
            lab.controller.kill().await;
        }
    }
    // Whatever IPs the burst got before the kill must also survive.
    let mut partial = BTreeMap::new();
    for name in &burst {
        if let Some(ip) = ingress_ip(&lab.services().get(name).await.expect("get")) {
            partial.insert(name.clone(), ip);
        }
    }
    lab.controller = start_controller(&lab.sim).await;
    let all: Vec<String> = first.iter().chain(&burst).cloned().collect();
    let after = lab.wait_for_ips(&all).await;
    for (name, ip) in before.iter().chain(&partial) {
        assert_eq!(&after[name], ip, "{name} moved after the restart");
    }
    let distinct: BTreeSet<&String> = after.values().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "an IP was handed out twice: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_status_counts_what_is_assigned() {
    let lab = Lab::start("192.0.2.0/28").await;
    lab.create_service("a", None).await;
    lab.create_service("b", None).await;
    lab.wait_for_ips(&["a".to_owned(), "b".to_owned()]).await;
    let pools: Api<ferrolb_api::types::IPAddressPool> =
        Api::namespaced(lab.sim.client(), "ferrolb-system");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = pools.get("lab").await.expect("pool").status;
        if status.as_ref().is_some_and(|s| s.assigned_ipv4 == 2) {
            let status = status.expect("status");
            assert_eq!(
                (
                    status.available_ipv4,
                    status.assigned_ipv6,
                    status.available_ipv6
                ),
                (14, 0, 0)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pool status never counted 2: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_recovers_from_a_paused_and_a_restarted_api_server_without_a_restart() {
    let lab = Lab::start("192.0.2.0/28").await;
    lab.create_service("before", None).await;
    lab.wait_for_ips(&["before".to_owned()]).await;

    lab.sim.faults().pause();
    tokio::time::sleep(Duration::from_secs(3)).await;
    lab.sim.faults().resume();
    lab.create_service("after-pause", None).await;
    lab.wait_for_ips(&["after-pause".to_owned()]).await;

    lab.sim.faults().drop_watches();
    lab.sim
        .restart(Duration::from_secs(1))
        .await
        .expect("restart kubesim");
    lab.create_service("after-restart", None).await;
    let ips = lab
        .wait_for_ips(&[
            "before".to_owned(),
            "after-pause".to_owned(),
            "after-restart".to_owned(),
        ])
        .await;
    assert_eq!(ips["before"], "192.0.2.0", "nothing moved");
    assert_eq!(ips.values().collect::<BTreeSet<_>>().len(), 3);
}
