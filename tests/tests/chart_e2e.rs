//! `helm install` of charts/ferrolb into kubesim (RBAC on) with the real Helm v4 engine, the
//! chart kubelet running exactly what Helm stored (controllers in Pod namespaces, a speaker in
//! each node namespace of the network lab), then: the examples and the lab's configuration go
//! through the chart's webhook, LoadBalancer Services get IPs that the lab's client reaches in L2
//! and BGP mode, the owner node crashes (failover gap), `helm upgrade` changes the controller
//! (no IP moves, no BGP session flaps, same gossip key), `helm uninstall` leaves only the CRDs
//! and the user's own objects. Least privilege: no request of the chart's ServiceAccounts was
//! refused, and every verb the chart grants was used. Needs root, FRR, arping, curl, kubectl
//! and helm-python-sdk; skips without them unless `CI=true`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use ferrolb_netlab::{self as netlab, eventually, eventually_async};
use ferrolb_tests::chart::binaries;
use ferrolb_tests::chart::lab::ChartLab;
use ferrolb_tests::chart::rbac::{Access, access, grants, uses};
use ferrolb_tests::cluster::{HTTP_PORT, NAMESPACE, probe};
use serde_json::{Value, json};

async fn prerequisites() -> bool {
    let sdk = tokio::process::Command::new("python3")
        .args(["-c", "import helm_python"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    let mut missing = netlab::prereq::missing(&["arping", "curl", "kubectl", netlab::frr::BGPD]);
    if !sdk {
        missing.push("python3 module helm_python (helm-python-sdk)".into());
    }
    netlab::prereq::apply(&missing)
}

const SA_PREFIX: &str = "system:serviceaccount:ferrolb-system:";

/// The ingress IP of `default/name`, once it has one.
async fn ingress_ip(chart: &ChartLab, name: &str, within: Duration) -> Option<IpAddr> {
    eventually_async(within, Duration::from_millis(50), || async {
        let path = format!("/api/v1/namespaces/default/services/{name}");
        let reply = chart
            .lab
            .sim
            .raw("GET", &path, None, None, None)
            .await
            .ok()?;
        reply.json()["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()?
            .parse()
            .ok()
    })
    .await
}

/// Every `default` LoadBalancer Service's first ingress IP.
async fn service_ips(chart: &ChartLab) -> BTreeMap<String, String> {
    let reply = chart
        .lab
        .sim
        .raw(
            "GET",
            "/api/v1/namespaces/default/services",
            None,
            None,
            None,
        )
        .await
        .expect("services");
    reply.json()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some((
                s["metadata"]["name"].as_str()?.to_owned(),
                s["status"]["loadBalancer"]["ingress"][0]["ip"]
                    .as_str()?
                    .to_owned(),
            ))
        })
        .collect()
}

/// `connectionsEstablished` of each of the router's BGP neighbours.
fn sessions_established(chart: &ChartLab) -> BTreeMap<String, i64> {
    let router = chart.lab.router.as_ref().expect("router");
    let neighbors = router.json("show bgp neighbors json").unwrap_or_default();
    neighbors
        .as_object()
        .into_iter()
        .flatten()
        .map(|(peer, n)| {
            (
                peer.clone(),
                n["connectionsEstablished"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn gossip_key(chart: &ChartLab) -> Value {
    chart
        .lab
        .sim
        .get_object("v1", "Secret", Some(NAMESPACE), "ferrolb-memberlist")
        .expect("read")
        .map(|s| s["data"]["secretkey"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_install_serves_traffic_upgrades_in_place_and_uninstalls_clean() {
    if !prerequisites().await {
        return;
    }
    let daemons = binaries::daemons().await.expect("binaries");
    let mut chart = ChartLab::start("chart", 3, true, daemons)
        .await
        .expect("lab");
    let started = Instant::now();
    let release = chart.install(json!({})).await.expect("helm install");
    assert_eq!(release["status"], "deployed", "{release}");
    assert_eq!(
        chart.kubelet.pods().len(),
        5,
        "2 controllers and 3 speakers"
    );

    let examples = Instant::now();
    examples_pass_the_webhook(&chart).await;
    let examples = examples.elapsed();
    let l2 = services_are_reachable(&chart).await;
    // The examples' detour (apply, allocate, delete) is not part of an install.
    println!(
        "figure: helm install to first reachable IP (L2, {l2}): {:.2} s ({:.2} s with the examples' detour)",
        started.elapsed().saturating_sub(examples).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let gap = failover(&mut chart, l2).await;
    println!(
        "figure: failover gap through the chart's speakers: {:.0} ms",
        gap.as_secs_f64() * 1000.0
    );
    upgrade_moves_nothing(&mut chart, l2).await;
    speakers_roll_without_losing_an_ip(&mut chart, l2).await;
    // Before the uninstall: Helm deletes the RBAC with everything else, so the binaries'
    // last requests while they stop are refused there, as on a real cluster.
    let roles = live_roles(&chart).await;
    check_least_privilege(&chart, &roles);

    chart.uninstall().await.expect("helm uninstall");
    assert!(chart.kubelet.pods().is_empty());
    check_nothing_left(&chart).await;
}

/// Every example is admitted by the chart's webhook and a Service gets an IP from an example
/// pool; a bad pool is refused. The examples are then deleted (their interfaces and routers are
/// not the lab's).
async fn examples_pass_the_webhook(chart: &ChartLab) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    chart
        .apply_dir(&examples, Duration::from_secs(30))
        .await
        .expect("the examples are admitted");
    let pool = json!({"metallb.io/address-pool": "lan"});
    chart
        .lab
        .create_service("from-examples", pool, false, &[0], &[])
        .await
        .expect("service");
    let ip = ingress_ip(chart, "from-examples", Duration::from_secs(10)).await;
    assert!(
        ip.is_some_and(|ip| ip.to_string().starts_with("192.0.2.")),
        "an IP from the example pool lan: {ip:?}\n{}",
        logs(chart)
    );
    let bad = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bad, namespace: ferrolb-system}\nspec: {addresses: [10.0.0.5-10.0.0.1]}\n";
    let refused = chart
        .apply(&["apply", "-f", "-"], bad, Duration::from_secs(10))
        .await
        .expect_err("the webhook refuses a reversed range");
    assert!(
        refused.to_string().contains("range end before start"),
        "{refused}"
    );
    // Peers first: the webhook refuses to delete a BFD profile a peer still uses.
    chart
        .kubectl(&["delete", "bgppeers", "--all", "-n", NAMESPACE], "")
        .await
        .expect("peers deleted");
    let dir = examples.to_string_lossy().into_owned();
    chart
        .kubectl(&["delete", "--ignore-not-found", "-f", &dir], "")
        .await
        .expect("examples deleted");
}

/// The lab's configuration through the webhook; Services in L2 and BGP mode reachable from the
/// client on the segment and from the host behind the router. Returns the L2 IP.
async fn services_are_reachable(chart: &ChartLab) -> IpAddr {
    chart
        .apply_lab_config(Duration::from_secs(10))
        .await
        .expect("lab configuration admitted");
    let all = [0, 1, 2];
    for (name, pool) in [("web-l2", "l2"), ("web-bgp", "bgp")] {
        let annotations = json!({"metallb.io/address-pool": pool});
        chart
            .lab
            .create_service(name, annotations, false, &all, &[])
            .await
            .expect("service");
    }
    let l2 = ingress_ip(chart, "web-l2", Duration::from_secs(10))
        .await
        .expect("web-l2 gets an IP");
    let reached = eventually(Duration::from_secs(20), Duration::from_millis(20), || {
        chart.lab.http_get("client", l2)
    })
    .await;
    assert!(
        reached.is_some(),
        "{l2} unreachable in L2 mode\n{}",
        logs(chart)
    );
    let bgp = ingress_ip(chart, "web-bgp", Duration::from_secs(10))
        .await
        .expect("web-bgp gets an IP");
    let via_router = eventually(Duration::from_secs(30), Duration::from_millis(100), || {
        chart.lab.http_get("outside", bgp)
    })
    .await;
    assert!(
        via_router.is_some(),
        "{bgp} unreachable through the router\n{}",
        logs(chart)
    );
    l2
}

/// The owner of `l2` vanishes (link down, its speaker killed and its Pod evicted) while the
/// client probes every 10 ms; then the node and its speaker come back. Returns the gap.
async fn failover(chart: &mut ChartLab, l2: IpAddr) -> Duration {
    let IpAddr::V4(v4) = l2 else {
        panic!("the L2 IP is IPv4")
    };
    let owner = eventually(Duration::from_secs(5), Duration::from_millis(50), || {
        let mac = chart.lab.arp_owner(v4)?;
        chart
            .lab
            .nodes
            .iter()
            .position(|n| n.mac.eq_ignore_ascii_case(&mac))
    })
    .await
    .expect("an owner answers ARP");
    let owner_name = chart.lab.nodes[owner].name.clone();
    let owner_ip = chart.lab.nodes[owner].v4.to_string();
    wait_for_sessions(chart, 3).await;
    let before_crash = sessions_established(chart);
    let target = SocketAddr::new(l2, HTTP_PORT);
    let (probes, failure) = chart
        .lab
        .crash_while_probing(owner, target, Duration::from_secs(2))
        .await
        .expect("crash");
    let pod = chart
        .kubelet
        .speaker_on(&owner_name)
        .expect("speaker")
        .name
        .clone();
    chart
        .kubelet
        .crash(&mut chart.lab, &pod)
        .await
        .expect("speaker killed");
    let gap = probe::gap(&probes, failure, &owner_name);
    assert!(
        gap.is_some_and(|g| g < Duration::from_secs(2)),
        "no takeover\n{}",
        logs(chart)
    );
    chart.lab.restore_node(owner).expect("link back");
    chart
        .kubelet
        .sync(&mut chart.lab)
        .await
        .expect("the DaemonSet's Pod comes back");
    // The router keeps the crashed node's old session until its hold time ends; wait for the
    // new speaker's own session.
    let renewed = eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let now = sessions_established(chart);
        (now.get(&owner_ip) > before_crash.get(&owner_ip)).then_some(())
    })
    .await;
    assert!(
        renewed.is_some(),
        "the restarted speaker's session\n{}",
        logs(chart)
    );
    wait_for_sessions(chart, 3).await;
    gap.unwrap_or_default()
}

/// `helm upgrade` changing the controller only: the speakers keep running, no IP moves, no BGP
/// session flaps, the gossip key stays, the new controllers allocate.
async fn upgrade_moves_nothing(chart: &mut ChartLab, l2: IpAddr) {
    // A rotation in progress: a second key added by hand must survive the upgrade.
    let next = json!({"data": {"next": "bmV4dC1rZXk="}});
    let path = format!("/api/v1/namespaces/{NAMESPACE}/secrets/ferrolb-memberlist");
    let patched = chart
        .lab
        .sim
        .raw(
            "PATCH",
            &path,
            Some("application/merge-patch+json"),
            None,
            Some(&next),
        )
        .await
        .expect("patch");
    assert_eq!(patched.status, 200, "{}", patched.text());
    let ips = service_ips(chart).await;
    let key = gossip_key(chart);
    let sessions = sessions_established(chart);
    let speakers: BTreeSet<u32> = speaker_pids(chart);
    let upgraded = chart
        .upgrade(json!({"controller": {"logLevel": "debug"}}))
        .await
        .expect("helm upgrade");
    assert_eq!(upgraded["revision"], 2);
    assert_eq!(
        speaker_pids(chart),
        speakers,
        "the speakers were not restarted"
    );
    let annotations = json!({"metallb.io/address-pool": "l2"});
    chart
        .lab
        .create_service("after-upgrade", annotations, false, &[0, 1, 2], &[])
        .await
        .expect("service");
    assert!(
        ingress_ip(chart, "after-upgrade", Duration::from_secs(30))
            .await
            .is_some(),
        "the upgraded controllers allocate\n{}",
        logs(chart)
    );
    let mut after = service_ips(chart).await;
    after.remove("after-upgrade");
    assert_eq!(after, ips, "no IP moved");
    assert_eq!(gossip_key(chart), key, "the gossip key is kept");
    let secret = chart
        .lab
        .sim
        .get_object("v1", "Secret", Some(NAMESPACE), "ferrolb-memberlist")
        .expect("read")
        .expect("the Secret");
    assert_eq!(
        secret["data"]["next"], "bmV4dC1rZXk=",
        "a key added for a rotation is kept"
    );
    assert_eq!(
        sessions_established(chart),
        sessions,
        "no BGP session flapped"
    );
    assert!(chart.lab.http_get("client", l2).is_some());
}

/// `helm upgrade` changing the speakers: the DaemonSet rolls one node at a time (each speaker
/// stops cleanly: it leaves the speaker set and the gossip before it stops answering), every IP
/// stays where the Services have it and answers again from its owner.
async fn speakers_roll_without_losing_an_ip(chart: &mut ChartLab, l2: IpAddr) {
    let ips = service_ips(chart).await;
    let before = speaker_pids(chart);
    let values = json!({"controller": {"logLevel": "debug"}, "speaker": {"logLevel": "debug"}});
    let upgraded = chart.upgrade(values).await.expect("helm upgrade");
    assert_eq!(upgraded["revision"], 3);
    let after = speaker_pids(chart);
    assert_eq!(after.len(), 3);
    assert!(after.is_disjoint(&before), "every speaker was replaced");
    assert_eq!(service_ips(chart).await, ips, "no IP moved");
    let reached = eventually(Duration::from_secs(10), Duration::from_millis(50), || {
        chart.lab.http_get("client", l2)
    })
    .await;
    assert!(
        reached.is_some(),
        "{l2} answers after the rollout\n{}",
        logs(chart)
    );
    wait_for_sessions(chart, 3).await;
}

/// Waits until the router has `count` Established sessions.
async fn wait_for_sessions(chart: &ChartLab, count: usize) {
    let router = chart.lab.router.as_ref().expect("router");
    let up = eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let summary = router.json("show bgp neighbors json").ok()?;
        let established = summary
            .as_object()?
            .values()
            .filter(|n| n["bgpState"] == "Established")
            .count();
        (established == count).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "{count} sessions Established\n{}",
        logs(chart)
    );
}

fn speaker_pids(chart: &ChartLab) -> BTreeSet<u32> {
    chart
        .kubelet
        .pods()
        .iter()
        .filter(|p| p.owner.starts_with("DaemonSet/"))
        .map(|p| p.pid)
        .collect()
}

/// Every Pod's log, for failure messages.
fn logs(chart: &ChartLab) -> String {
    chart
        .kubelet
        .pods()
        .iter()
        .map(|p| format!("--- {}\n{}", p.name, chart.lab.log(&p.name)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Grants for paths an e2e run may not take, each with the code path that needs it.
const RARE: &[(&str, &str, &str)] = &[
    // controller/src/lease/driver.rs `reread`: only after a Lease write lost a race.
    ("controller", "get", "leases"),
    // speaker/src/daemon/writer.rs: a ServiceBGPStatus goes when its node stops advertising.
    ("speaker", "delete", "servicebgpstatuses"),
];

/// No request of the chart's ServiceAccounts was refused, and every (verb, resource) the chart's
/// rules grant each of them was used at least once (but for [`RARE`] paths).
fn check_least_privilege(chart: &ChartLab, roles: &[Value]) {
    let requests = chart.lab.sim.requests();
    let ours: Vec<_> = requests
        .iter()
        .filter(|r| r.user.starts_with(SA_PREFIX))
        .collect();
    assert!(
        !ours.is_empty(),
        "the binaries talked to the API as their ServiceAccounts"
    );
    let refused: Vec<String> = ours
        .iter()
        .filter(|r| r.status == 403)
        .map(|r| format!("{} {} {}?{}", r.user, r.method, r.path, r.query))
        .collect();
    assert!(
        refused.is_empty(),
        "403 with the chart's RBAC: {refused:#?}"
    );
    let used: Vec<Access> = ours
        .iter()
        .filter_map(|r| access(&r.method, &r.path, &r.query, &r.user))
        .collect();
    let mut unused = Vec::new();
    let mut rare_granted = BTreeSet::new();
    for role in roles {
        let component = role["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let user = format!("{SA_PREFIX}ferrolb-{component}");
        for rule in role["rules"].as_array().into_iter().flatten() {
            for grant in grants(rule) {
                let (verb, group, resource, name) = &grant;
                if RARE.contains(&(component.as_str(), verb.as_str(), resource.as_str())) {
                    rare_granted.insert((component.clone(), verb.clone(), resource.clone()));
                } else if !used.iter().any(|a| uses(a, &user, &grant)) {
                    unused.push(format!("{user}: {verb} {group}/{resource} {name}"));
                }
            }
        }
    }
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");
    assert_eq!(
        rare_granted.len(),
        RARE.len(),
        "every RARE entry is still granted: {rare_granted:?}"
    );
}

/// The chart's Roles and ClusterRoles as stored.
async fn live_roles(chart: &ChartLab) -> Vec<Value> {
    let mut roles = Vec::new();
    for path in [
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles"),
        "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_owned(),
    ] {
        let reply = chart
            .lab
            .sim
            .raw("GET", &path, None, None, None)
            .await
            .expect("roles");
        roles.extend(
            reply.json()["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["metadata"]["labels"]["app.kubernetes.io/name"] == "ferrolb")
                .cloned(),
        );
    }
    assert!(roles.len() >= 4, "{roles:?}");
    roles
}

/// After the uninstall: no object Helm or the binaries made is left, the CRDs are.
async fn check_nothing_left(chart: &ChartLab) {
    let count = |path: String| async move {
        let reply = chart
            .lab
            .sim
            .raw("GET", &path, None, None, None)
            .await
            .expect("list");
        let names: Vec<String> = reply.json()["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        names
    };
    let ns = NAMESPACE;
    for path in [
        format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        format!("/apis/apps/v1/namespaces/{ns}/daemonsets"),
        format!("/api/v1/namespaces/{ns}/pods"),
        format!("/api/v1/namespaces/{ns}/services"),
        format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
        format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
        format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
        format!("/apis/metallb.io/v1beta1/namespaces/{ns}/configurationstates"),
        format!("/apis/metallb.io/v1beta1/namespaces/{ns}/servicel2statuses"),
        format!("/apis/metallb.io/v1beta1/namespaces/{ns}/servicebgpstatuses"),
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations".to_owned(),
    ] {
        let left = count(path.clone()).await;
        assert!(
            left.is_empty(),
            "{path}: {left:?} left after helm uninstall"
        );
    }
    let secrets = count(format!("/api/v1/namespaces/{ns}/secrets")).await;
    assert!(secrets.is_empty(), "secrets left: {secrets:?}");
    let cluster_roles = count("/apis/rbac.authorization.k8s.io/v1/clusterroles".to_owned()).await;
    assert!(
        !cluster_roles.iter().any(|r| r.starts_with("ferrolb")),
        "{cluster_roles:?}"
    );
    let crds = count("/apis/apiextensions.k8s.io/v1/customresourcedefinitions".to_owned()).await;
    assert_eq!(crds.len(), 9, "Helm keeps the CRDs: {crds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_a_missing_crd_and_a_wrong_service_account_fail_with_a_clear_message() {
    if !prerequisites().await {
        return;
    }
    let daemons = binaries::daemons().await.expect("binaries");
    let mut chart = ChartLab::start("chartbad", 1, false, daemons)
        .await
        .expect("lab");
    let deployments = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments");

    // First, in the empty cluster: Helm installs the CRDs of a release even when that release
    // fails later (a typo in values included), so this case cannot come after another install.
    let no_crd = chart
        .install(json!({"crds": {"enabled": false}}))
        .await
        .expect_err("without the CRDs the install fails");
    assert!(
        no_crd.to_string().contains("ConfigurationState")
            && no_crd
                .to_string()
                .contains("ensure CRDs are installed first"),
        "{no_crd}"
    );

    let typo = chart
        .install(json!({"speaker": {"memberlist": {"mlBindPrt": 7947}}}))
        .await
        .expect_err("a typo is refused");
    assert!(
        typo.to_string().contains("/speaker/memberlist")
            && typo.to_string().contains("'mlBindPrt' not allowed"),
        "{typo}"
    );
    let stored = chart
        .lab
        .sim
        .raw("GET", &deployments, None, None, None)
        .await
        .expect("list");
    assert_eq!(stored.json()["items"], json!([]), "nothing was installed");

    let wrong_account = chart
        .install(json!({"controller": {"serviceAccount": {"create": false, "name": "nobody"}}}))
        .await
        .expect_err("the controller Pods cannot be made");
    assert!(
        wrong_account
            .to_string()
            .contains("serviceaccount ferrolb-system/nobody not found"),
        "{wrong_account}"
    );
}
