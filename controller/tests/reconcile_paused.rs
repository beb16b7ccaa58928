//! The whole controller in-process against kubesim's API in memory, on paused tokio time: retry
//! schedules and leadership hand-overs are checked at the instants they happen, with each
//! controller's own requests (and faults) on its client's [`Tap`].

mod support;

use std::time::Duration;

use ferrolb_controller::Settings;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::memsim::MemSim;
use support::tap::{Fault, Tap};
use support::{NS, Running, ingress_ip, lb_service, pool, wait_for};

const MS: Duration = Duration::from_millis(1);

/// The memory API server with the pool `lab` (64 addresses).
fn sim_with_pool() -> MemSim {
    let sim = MemSim::start();
    sim.create(pool("lab", "192.0.2.0/26"));
    sim
}

async fn ip_of(services: &Api<Service>, name: &str) -> Option<String> {
    ingress_ip(&services.get(name).await.expect("get"))
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_retried_on_schedule_while_other_services_keep_changing() {
    let sim = sim_with_pool();
    let tap = Tap::default();
    let _controller = Running::start(Settings::new(NS), sim.client(&tap), false, None).await;
    let services: Api<Service> = Api::namespaced(sim.client(&Tap::default()), "shop");
    sim.create(lb_service("shop", "busy"));
    wait_for("busy's IP", Duration::from_secs(5), 10 * MS, || {
        ip_of(&services, "busy")
    })
    .await;

    // The first status write of `web` fails; meanwhile `busy` changes every 300 ms, so the
    // controller never goes a second without a watch event.
    tap.fault(
        Some("PATCH"),
        "/services/web/status",
        Fault::Fail(500),
        Some(1),
    );
    sim.create(lb_service("shop", "web"));
    let churn = {
        let services = services.clone();
        async move {
            for i in 0.. {
                let patch = json!({"metadata": {"labels": {"churn": i.to_string()}}});
                services
                    .patch("busy", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("patch");
                tokio::time::sleep(300 * MS).await;
            }
        }
    };
    let got_ip = async {
        wait_for(
            "web's IP after the retry",
            Duration::from_secs(5),
            10 * MS,
            || ip_of(&services, "web"),
        )
        .await
    };
    let ip = tokio::select! {
        ip = got_ip => ip,
        () = churn => unreachable!("the churn never ends"),
    };
    assert_eq!(ip, "192.0.2.1");
    let writes: Vec<_> = tap
        .log()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.touches("/services/web/status"))
        .collect();
    assert_eq!(writes.len(), 2, "one failure, one retry: {writes:?}");
    let waited = writes[1].issued - writes[0].issued;
    assert!(
        waited >= 500 * MS && waited < 600 * MS,
        "retried after {waited:?}; the first retry waits 500 ms"
    );
}

/// A controller with leader election on a 3 s Lease.
fn elected(identity: &str) -> Settings {
    Settings::new(NS).with_election("ferrolb-controller", identity, Duration::from_secs(3))
}

/// Every Service in `shop` and its IP, once each has one.
async fn all_ips(services: &Api<Service>, names: &[String]) -> Vec<(String, String)> {
    wait_for(
        "every Service's IP",
        Duration::from_secs(20),
        10 * MS,
        || async {
            let mut ips = Vec::new();
            for name in names {
                ips.push((name.clone(), ip_of(services, name).await?));
            }
            Some(ips)
        },
    )
    .await
}

/// Fails if two Services show the same IP now.
async fn assert_no_ip_twice(services: &Api<Service>) {
    let listed = services.list(&Default::default()).await.expect("list");
    let mut seen = std::collections::BTreeMap::new();
    for service in &listed.items {
        if let Some(ip) = ingress_ip(service) {
            let name = service.metadata.name.clone().unwrap_or_default();
            if let Some(other) = seen.insert(ip.clone(), name.clone()) {
                panic!("{ip} is assigned to both {other} and {name}");
            }
        }
    }
}

/// Writes to Services, pools, Events and the ConfigurationState (not the Lease, not reads).
fn object_writes(tap: &Tap) -> Vec<support::tap::Record> {
    tap.log()
        .into_iter()
        .filter(|r| r.is_write() && !r.touches("/leases"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_writes_hang_stops_writing_before_the_standby_takes_over() {
    let sim = sim_with_pool();
    let (tap_a, tap_b) = (Tap::default(), Tap::default());
    let a = Running::start(elected("a"), sim.client(&tap_a), false, None).await;
    let services: Api<Service> = Api::namespaced(sim.client(&Tap::default()), "shop");
    let mut names: Vec<String> = (0..3).map(|i| format!("before-{i}")).collect();
    for name in &names {
        sim.create(lb_service("shop", name));
    }
    all_ips(&services, &names).await;
    let b = Running::start(elected("b"), sim.client(&tap_b), false, None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // a's Lease writes now hang: a cannot renew, and b takes over once the Lease runs out.
    tap_a.fault(Some("PUT"), "/leases/", Fault::Hang, None);
    let lease_sends = |tap: &Tap| -> Vec<tokio::time::Instant> {
        tap.log()
            .iter()
            .filter(|r| r.is_write() && r.touches("/leases") && r.status.is_some_and(|s| s < 300))
            .map(|r| r.issued)
            .collect()
    };
    let a_last_renewal = *lease_sends(&tap_a).last().expect("a renewed");
    // Services keep coming for 10 s across the hand-over; no IP is held twice at any moment.
    for i in 0..20 {
        let name = format!("during-{i:02}");
        sim.create(lb_service("shop", &name));
        names.push(name);
        tokio::time::sleep(500 * MS).await;
        assert_no_ip_twice(&services).await;
    }
    let ips = all_ips(&services, &names).await;

    let timing = ferrolb_controller::lease::Timing::for_duration(Duration::from_secs(3));
    let a_valid_until = a_last_renewal + timing.renew_deadline;
    let late: Vec<_> = object_writes(&tap_a)
        .into_iter()
        .filter(|r| r.issued >= a_valid_until)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        late.is_empty(),
        "a wrote {} times after its lead ran out (renew deadline after its last renewal), first: {:?}",
        late.len(),
        &late[..late.len().min(4)]
    );
    let b_first = lease_sends(&tap_b)
        .first()
        .copied()
        .expect("b took the Lease");
    assert!(
        b_first >= a_valid_until,
        "b took over while a could still write"
    );
    assert!(
        object_writes(&tap_b).iter().all(|r| r.issued >= b_first),
        "the standby wrote before it led"
    );
    assert_eq!(ips.len(), names.len());
    assert_no_ip_twice(&services).await;
    drop((a, b));
}

#[tokio::test(start_paused = true)]
async fn a_status_write_planned_from_an_older_version_is_refused_and_planned_again() {
    let sim = sim_with_pool();
    let tap = Tap::default();
    let _controller = Running::start(Settings::new(NS), sim.client(&tap), false, None).await;
    let services: Api<Service> = Api::namespaced(sim.client(&Tap::default()), "shop");
    // The controller's first status write of `web` is held while someone else changes `web`.
    tap.fault(Some("PATCH"), "/services/web/status", Fault::Hang, Some(1));
    sim.create(lb_service("shop", "web"));
    wait_for("the held write", Duration::from_secs(5), MS, || {
        let held = tap.log().iter().any(|r| r.touches("/services/web/status"));
        async move { held.then_some(()) }
    })
    .await;
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
    services
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("another writer's status");
    tap.release();

    let ip = wait_for(
        "web's IP from the controller",
        Duration::from_secs(5),
        10 * MS,
        || {
            let services = services.clone();
            async move {
                ip_of(&services, "web")
                    .await
                    .filter(|ip| ip != "203.0.113.9")
            }
        },
    )
    .await;
    assert_eq!(ip, "192.0.2.0");
    let writes: Vec<Option<u16>> = tap
        .log()
        .iter()
        .filter(|r| r.method == "PATCH" && r.touches("/services/web/status"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        writes,
        [Some(409), Some(200)],
        "the stale write must be refused by its resourceVersion, then planned again"
    );
}
