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

/// The memory API server with the pool `lab`.
fn sim_with_pool() -> MemSim {
    let sim = MemSim::start();
    sim.create(pool("lab", "192.0.2.0/28"));
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
    tap.fault(Some("PATCH"), "/services/web/status", Fault::Fail(500), Some(1));
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
        wait_for("web's IP after the retry", Duration::from_secs(5), 10 * MS, || {
            ip_of(&services, "web")
        })
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
