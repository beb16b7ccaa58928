//! The real `ferrolb-controller run` binary against kubesim, for what operators rely on: two
//! replicas with leader election, the validating webhook through the API server, `/metrics`
//! and the probes, and the ConfigurationState. The controllers run in-process as `main` runs
//! them, except where a test needs a process (SIGTERM).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrolb_controller::{Settings, certs};
use ferrolb_kubesim::{KubeSim, Options};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

const NS: &str = "ferrolb-system";

async fn start_sim(options: Options) -> KubeSim {
    let sim = KubeSim::start_with(options).await.expect("kubesim");
    sim.create_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds"))
        .expect("CRDs");
    for namespace in [NS, "shop"] {
        sim.create_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )
        .expect("namespace");
    }
    sim.create_object(pool("lab", "192.0.2.0/28"))
        .expect("pool");
    sim
}

fn pool(name: &str, addresses: &str) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": [addresses]}
    })
}

/// The settings `ferrolb-controller run --lease-identity IDENTITY` starts with (election on,
/// 15 s lease), with another lease duration.
fn settings(identity: &str, lease: Duration) -> Settings {
    Settings::new(NS).with_election("ferrolb-controller", identity, lease)
}

/// One controller: in-process (as `main` runs it), or the binary where a test needs a real
/// process (signals). Stopped on drop.
struct Replica {
    running: Option<Running>,
    child: Option<Child>,
    metrics: SocketAddr,
}

impl Replica {
    async fn start(sim: &KubeSim, settings: Settings, webhook: Option<TcpListener>) -> Replica {
        let running = Running::start(settings, sim.client(), true, webhook).await;
        let metrics = running.metrics.expect("metrics served");
        Replica {
            running: Some(running),
            child: None,
            metrics,
        }
    }

    /// The real binary, for what only a process has: SIGTERM handling.
    fn spawn_binary(sim: &KubeSim, identity: &str, extra: &[&str]) -> Replica {
        // A port nobody listens on now (the binary binds it right after).
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
            .args(["run", "--namespace", NS, "--lease-identity", identity])
            .args(["--metrics-addr", &metrics.to_string()])
            .args(extra)
            .env("KUBECONFIG", sim.kubeconfig_path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn controller");
        Replica {
            running: None,
            child: Some(child),
            metrics,
        }
    }

    /// GET `path` on the metrics address: (status code, body). Retries while the process starts.
    async fn get(&self, path: &str) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match http_get(self.metrics, path).await {
                Ok(answer) => return answer,
                Err(error) => {
                    assert!(Instant::now() < deadline, "GET {path}: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Stops it as SIGKILL would.
    async fn kill(&mut self) {
        if let Some(running) = self.running.as_mut() {
            running.kill().await;
        }
        if let Some(child) = self.child.as_mut() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a process");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn http_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// The value of a metric line that starts with `series`.
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn holder(sim: &KubeSim) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(sim.client(), NS);
    leases
        .get_opt("ferrolb-controller")
        .await
        .expect("get lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// Waits until the Lease names `who`; returns how long that took.
async fn wait_for_holder(sim: &KubeSim, who: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if holder(sim).await.as_deref() == Some(who) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{who} did not take the Lease within {limit:?} (holder: {:?})",
            holder(sim).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Lease's `spec.renewTime`, in seconds.
async fn renew_time(sim: &KubeSim) -> Seconds {
    lease_time(sim, |spec| spec.renew_time.map(|t| t.0)).await
}

/// The Lease's `spec.acquireTime`, in seconds.
async fn acquire_time(sim: &KubeSim) -> Seconds {
    lease_time(sim, |spec| spec.acquire_time.map(|t| t.0)).await
}

/// A time in seconds since the epoch (microsecond precision, as a Lease records it).
#[derive(Debug, Clone, Copy)]
struct Seconds(f64);

impl Seconds {
    fn duration_since(self, earlier: Seconds) -> f64 {
        self.0 - earlier.0
    }
}

async fn lease_time(
    sim: &KubeSim,
    field: impl Fn(
        k8s_openapi::api::coordination::v1::LeaseSpec,
    ) -> Option<k8s_openapi::jiff::Timestamp>,
) -> Seconds {
    let leases: Api<Lease> = Api::namespaced(sim.client(), NS);
    let lease = leases.get("ferrolb-controller").await.expect("lease");
    let time = lease.spec.and_then(field).expect("a time in the Lease");
    Seconds(time.as_microsecond() as f64 / 1e6)
}

async fn create_service(sim: &KubeSim, name: &str) {
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": name}}
    }))
    .expect("service");
    Api::<Service>::namespaced(sim.client(), "shop")
        .create(&PostParams::default(), &service)
        .await
        .expect("create service");
}

fn ingress_ip(service: &Service) -> Option<String> {
    service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .clone()
}

async fn wait_for_ips(sim: &KubeSim, names: &[&str]) -> BTreeMap<String, String> {
    let services: Api<Service> = Api::namespaced(sim.client(), "shop");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut ips = BTreeMap::new();
        for name in names {
            if let Some(ip) = ingress_ip(&services.get(name).await.expect("get")) {
                ips.insert((*name).to_owned(), ip);
            }
        }
        if ips.len() == names.len() {
            return ips;
        }
        assert!(Instant::now() < deadline, "only {ips:?} got IPs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_within_the_lease_duration_after_a_sigkill_and_moves_no_ip() {
    let sim = start_sim(Options::default()).await;
    let lease = Duration::from_secs(3);
    let mut a = Replica::start(&sim, settings("a", lease), None).await;
    wait_for_holder(&sim, "a", Duration::from_secs(10)).await;
    let b = Replica::start(&sim, settings("b", lease), None).await;
    create_service(&sim, "one").await;
    create_service(&sim, "two").await;
    let before = wait_for_ips(&sim, &["one", "two"]).await;

    // The standby is ready (it serves the webhook) but writes nothing.
    assert_eq!(b.get("/readyz").await.0, 200);
    let standby = b.get("/metrics").await.1;
    assert_eq!(
        metric(&standby, "ferrolb_controller_leader_bool"),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &standby,
            "ferrolb_controller_api_writes_total{result=\"ok\"}"
        ),
        None,
        "the standby wrote: {standby}"
    );

    a.kill().await;
    let last_renewal = renew_time(&sim).await;
    // The exact bound (takeover one duration after the last renewal seen) is checked on paused
    // time in lease_paused.rs; here: b waits for a's Lease to run out, then takes it.
    wait_for_holder(&sim, "b", Duration::from_secs(10)).await;
    let acquired = acquire_time(&sim).await;
    assert!(
        acquired.duration_since(last_renewal) >= lease.as_secs_f64(),
        "b took over {:.2} s after a's last renewal, before the {lease:?} lease ran out",
        acquired.duration_since(last_renewal)
    );

    create_service(&sim, "three").await;
    let after = wait_for_ips(&sim, &["one", "two", "three"]).await;
    assert_eq!(after["one"], before["one"], "an IP moved");
    assert_eq!(after["two"], before["two"], "an IP moved");
    assert_eq!(
        after.values().collect::<BTreeSet<_>>().len(),
        3,
        "{after:?}"
    );
    let leader = b.get("/metrics").await.1;
    assert_eq!(metric(&leader, "ferrolb_controller_leader_bool"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_sigterm_hands_the_lease_over_at_once() {
    let sim = start_sim(Options::default()).await;
    // A long duration: only the release can make the takeover fast. `a` is the binary, so this
    // also checks that SIGTERM reaches the shutdown path.
    let a = Replica::spawn_binary(&sim, "a", &["--lease-duration", "20s", "--disable-webhook"]);
    wait_for_holder(&sim, "a", Duration::from_secs(10)).await;
    let b = Replica::start(&sim, settings("b", Duration::from_secs(20)), None).await;
    assert_eq!(b.get("/healthz").await.0, 200);
    a.signal("-TERM");
    // Well inside the 20 s a lapse would take.
    let took = wait_for_holder(&sim, "b", Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(10), "takeover took {took:?}");
    create_service(&sim, "web").await;
    wait_for_ips(&sim, &["web"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_answer_over_http_with_metallb_names() {
    let sim = start_sim(Options::default()).await;
    let replica = Replica::start(&sim, settings("a", Duration::from_secs(15)), None).await;
    create_service(&sim, "web").await;
    wait_for_ips(&sim, &["web"]).await;
    assert_eq!(replica.get("/healthz").await, (200, "ok\n".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = replica.get("/metrics").await;
        assert_eq!(code, 200);
        if metric(
            &body,
            "metallb_allocator_addresses_in_use_total{pool=\"lab\"}",
        ) == Some(1.0)
        {
            assert_eq!(
                metric(&body, "metallb_allocator_addresses_total{pool=\"lab\"}"),
                Some(16.0)
            );
            assert_eq!(
                metric(&body, "metallb_k8s_client_config_loaded_bool"),
                Some(1.0)
            );
            assert_eq!(
                metric(&body, "metallb_k8s_client_config_stale_bool"),
                Some(0.0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "no in-use count: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(replica.get("/readyz").await.0, 200);
    assert_eq!(replica.get("/nothing").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_state_reports_errors_and_recovers() {
    let sim = start_sim(Options::default()).await;
    let _replica = Replica::start(&sim, settings("a", Duration::from_secs(15)), None).await;
    let states: Api<ferrolb_api::types::ConfigurationState> = Api::namespaced(sim.client(), NS);
    let wait_for = |want: &'static str, summary: &'static str| {
        let states = states.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let state = states.get_opt("controller").await.expect("get");
                let status = state.as_ref().and_then(|s| s.status.as_ref());
                let json = serde_json::to_value(status).expect("json");
                if json["result"] == want
                    && json["errorSummary"]
                        .as_str()
                        .unwrap_or("")
                        .contains(summary)
                {
                    return json;
                }
                assert!(Instant::now() < deadline, "never {want}: {json}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let valid = wait_for("Valid", "").await;
    assert_eq!(valid["conditions"][0]["type"], "poolReconcilerValid");
    assert_eq!(valid["conditions"][0]["status"], "True");
    // No webhook here: an overlapping pool gets in, and the controller must say so.
    sim.create_object(pool("overlap", "192.0.2.8/29"))
        .expect("pool");
    let invalid = wait_for("Invalid", "IPAddressPool/overlap").await;
    assert_eq!(invalid["conditions"][0]["reason"], "ConfigurationError");
    let pools: Api<ferrolb_api::types::IPAddressPool> = Api::namespaced(sim.client(), NS);
    pools
        .delete("overlap", &Default::default())
        .await
        .expect("delete");
    wait_for("Valid", "").await;
}

/// kubesim with the controller's webhook registered as MetalLB registers it. With
/// `certificate`, the webhook's certificate comes from a Secret and the caBundle is given.
async fn webhook_lab(certificate: Option<certs::Serving>) -> (KubeSim, Replica) {
    webhook_lab_with(certificate, certs::DEFAULT_CA_LIFETIME).await
}

/// [`webhook_lab`] with a self-made CA that lives `ca_lifetime`.
async fn webhook_lab_with(
    certificate: Option<certs::Serving>,
    ca_lifetime: Duration,
) -> (KubeSim, Replica) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let webhook = listener.local_addr().expect("address");
    let mut options = Options::default();
    options
        .webhook_services
        .insert(format!("{NS}/ferrolb-webhook-service"), webhook);
    let sim = start_sim(options).await;
    let mut ca_bundle = Value::Null;
    let mut settings = settings("a", Duration::from_secs(15));
    settings.webhook.ca_lifetime = ca_lifetime;
    if let Some(certificate) = certificate {
        sim.create_object(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "webhook-cert", "namespace": NS},
            "stringData": {"tls.crt": certificate.cert_pem, "tls.key": certificate.key_pem}
        }))
        .expect("secret");
        let ca = certificate.ca_pem.expect("a CA");
        ca_bundle = serde_json::to_value(k8s_openapi::ByteString(ca.into_bytes())).expect("b64");
        settings.webhook.cert_secret = Some("webhook-cert".to_owned());
    }
    let replica = Replica::start(&sim, settings, Some(listener)).await;
    let rule = |resource: &str, version: &str| {
        json!({"apiGroups": ["metallb.io"], "apiVersions": [version],
               "operations": ["CREATE", "UPDATE"], "resources": [resource]})
    };
    let hook = |name: &str, resource: &str, version: &str| {
        json!({
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail",
            "clientConfig": {"service": {"name": "ferrolb-webhook-service", "namespace": NS,
                                         "path": format!("/validate-metallb-io-{version}-{resource}")},
                             "caBundle": ca_bundle},
            "rules": [rule(resource, version)]
        })
    };
    sim.create_object(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "ferrolb-webhook-configuration"},
        "webhooks": [
            hook("ipaddresspoolvalidationwebhook.metallb.io", "ipaddresspools", "v1beta1"),
            hook("l2advertisementvalidationwebhook.metallb.io", "l2advertisements", "v1beta1"),
        ]
    }))
    .expect("webhook configuration");
    // The controller puts its CA into the caBundle of every webhook.
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(sim.client());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let vwc = configs
            .get("ferrolb-webhook-configuration")
            .await
            .expect("get");
        let bundled = vwc.webhooks.unwrap_or_default().iter().all(|h| {
            h.client_config
                .ca_bundle
                .as_ref()
                .is_some_and(|b| String::from_utf8_lossy(&b.0).contains("BEGIN CERTIFICATE"))
        });
        if bundled {
            break;
        }
        assert!(Instant::now() < deadline, "caBundle never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // With a certificate from a Secret the caBundle is there from the start: wait for the
    // webhook itself to listen before the API server calls it.
    while tokio::net::TcpStream::connect(webhook).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the webhook never listened on {webhook}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A kubelet sends the webhook Service's traffic only to a ready Pod: one whose caches have
    // finished their first list (before that the webhook answers 503 rather than guess).
    while replica.get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the replica never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (sim, replica)
}

/// Creates through the API server; the denial message when refused.
async fn try_create(sim: &KubeSim, object: Value) -> Result<(), String> {
    let api_resource = kube::discovery::ApiResource {
        group: "metallb.io".into(),
        version: "v1beta1".into(),
        api_version: "metallb.io/v1beta1".into(),
        kind: object["kind"].as_str().expect("kind").into(),
        plural: format!("{}s", object["kind"].as_str().expect("kind").to_lowercase()),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        sim.client(),
        object["metadata"]["namespace"].as_str().unwrap_or(NS),
        &api_resource,
    );
    let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(other) => Err(other.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_rejects_invalid_objects_naming_the_field_and_admits_valid_ones() {
    let (sim, _replica) = webhook_lab(None).await;

    let reversed = try_create(&sim, pool("reversed", "10.0.0.5-10.0.0.1"))
        .await
        .expect_err("a reversed range is refused");
    assert!(
        reversed.contains(r#"IPAddressPool/reversed: spec.addresses[0]: "10.0.0.5-10.0.0.1": range end before start"#),
        "{reversed}"
    );
    assert!(reversed.contains("denied the request"), "{reversed}");

    let overlap = try_create(&sim, pool("overlap", "192.0.2.8/29"))
        .await
        .expect_err("an overlap with the existing pool is refused");
    assert!(
        overlap.contains("IPAddressPool/overlap: spec.addresses[0]"),
        "{overlap}"
    );

    let mut elsewhere = pool("elsewhere", "198.51.100.0/28");
    elsewhere["metadata"]["namespace"] = json!("shop");
    let outside = try_create(&sim, elsewhere)
        .await
        .expect_err("outside our namespace");
    assert!(outside.contains("IPAddressPool/elsewhere"), "{outside}");

    let duplicate = try_create(
        &sim,
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
               "metadata": {"name": "twice", "namespace": NS},
               "spec": {"ipAddressPools": ["lab", "lab"]}}),
    )
    .await
    .expect_err("a duplicate pool name is refused");
    assert!(
        duplicate.contains("L2Advertisement/twice: spec.ipAddressPools"),
        "{duplicate}"
    );

    try_create(&sim, pool("second", "198.51.100.0/28"))
        .await
        .expect("a valid pool is admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_a_pool_edit_that_would_take_back_an_ip_in_use() {
    let (sim, _replica) = webhook_lab(None).await;
    create_service(&sim, "web").await;
    let ips = wait_for_ips(&sim, &["web"]).await;
    // The annotation naming the pool is written with the IP; wait for both.
    let services: Api<Service> = Api::namespaced(sim.client(), "shop");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !services
        .get("web")
        .await
        .expect("get")
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key("metallb.io/ip-allocated-from-pool")
    {
        assert!(Instant::now() < deadline, "no pool annotation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pools: Api<ferrolb_api::types::IPAddressPool> = Api::namespaced(sim.client(), NS);
    let moved = json!({"spec": {"addresses": ["198.51.100.0/28"]}});
    let refused = pools
        .patch("lab", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect_err("stranding an IP in use is refused");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("{} (shop/web)", ips["web"])),
        "{message}"
    );
    let grown = json!({"spec": {"addresses": ["192.0.2.0/27"]}});
    pools
        .patch("lab", &PatchParams::default(), &Patch::Merge(&grown))
        .await
        .expect("growing the pool is admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_serves_the_certificate_from_a_secret_and_leaves_the_ca_bundle_alone() {
    let certificate =
        certs::generate(webhook_names(), certs::DEFAULT_CA_LIFETIME).expect("certificate");
    let given = certificate.ca_pem.clone().expect("CA");
    let (sim, _replica) = webhook_lab(Some(certificate)).await;
    // The API server trusts only the Secret's CA: a denial proves the webhook served that cert.
    let reversed = try_create(&sim, pool("reversed", "10.0.0.5-10.0.0.1"))
        .await
        .expect_err("refused");
    assert!(
        reversed.contains("IPAddressPool/reversed: spec.addresses[0]"),
        "{reversed}"
    );
    try_create(&sim, pool("second", "198.51.100.0/28"))
        .await
        .expect("admitted");
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(sim.client());
    let vwc = configs
        .get("ferrolb-webhook-configuration")
        .await
        .expect("get");
    for hook in vwc.webhooks.unwrap_or_default() {
        let bundle = hook.client_config.ca_bundle.expect("bundle").0;
        assert_eq!(
            String::from_utf8_lossy(&bundle),
            given,
            "caBundle rewritten"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_judges_from_the_caches_without_one_api_request() {
    let (sim, _replica) = webhook_lab(None).await;
    create_service(&sim, "web").await;
    let ips = wait_for_ips(&sim, &["web"]).await;
    // Settled: the pool's status counts the Service (the controller's last write for it).
    let pools: Api<ferrolb_api::types::IPAddressPool> = Api::namespaced(sim.client(), NS);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pools
        .get("lab")
        .await
        .expect("pool")
        .status
        .is_none_or(|s| s.assigned_ipv4 != 1)
    {
        assert!(Instant::now() < deadline, "pool status never counted web");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = sim.requests().len();

    let reversed = try_create(&sim, pool("reversed", "10.0.0.5-10.0.0.1")).await;
    assert!(reversed.is_err(), "a reversed range is refused");
    let advertisement = json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                               "metadata": {"name": "all", "namespace": NS}});
    try_create(&sim, advertisement).await.expect("admitted");
    let moved = json!({"spec": {"addresses": ["198.51.100.0/28"]}});
    let refused = pools
        .patch("lab", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect_err("stranding web's IP is refused");
    assert!(
        refused
            .to_string()
            .contains(&format!("{} (shop/web)", ips["web"])),
        "{refused}"
    );

    let reads: Vec<String> = sim.requests()[before..]
        .iter()
        .filter(|r| r.method == "GET" && !r.query.contains("watch"))
        .map(|r| format!("GET {}?{}", r.path, r.query))
        .collect();
    assert!(
        reads.is_empty(),
        "three reviews made {} API reads: {reads:?}",
        reads.len()
    );
}

fn webhook_names() -> Vec<String> {
    certs::service_names("ferrolb-webhook-service", NS)
}

/// The caBundle of every webhook of FerroLB's configuration.
async fn ca_bundles(sim: &KubeSim) -> Vec<String> {
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(sim.client());
    let vwc = configs
        .get("ferrolb-webhook-configuration")
        .await
        .expect("get");
    vwc.webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            String::from_utf8_lossy(&h.client_config.ca_bundle.unwrap_or_default().0).into_owned()
        })
        .collect()
}

/// Whether a review reaches the webhook and comes back with its denial (the API server then
/// trusted the certificate the webhook served).
async fn webhook_trusted(sim: &KubeSim) -> Result<(), String> {
    match try_create(sim, pool("reversed", "10.0.0.5-10.0.0.1")).await {
        Err(message) if message.contains("range end before start") => Ok(()),
        Err(message) => Err(message),
        Ok(()) => Err("a reversed range was admitted".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_serves_a_renewed_certificate_once_its_secret_changes() {
    let first = certs::generate(webhook_names(), certs::DEFAULT_CA_LIFETIME).expect("first");
    let (sim, _replica) = webhook_lab(Some(first)).await;
    webhook_trusted(&sim)
        .await
        .expect("the first certificate is served");

    // cert-manager renews: a new certificate from a new CA in the Secret, and (its cainjector)
    // the new CA alone in the caBundle.
    let renewed = certs::generate(webhook_names(), certs::DEFAULT_CA_LIFETIME).expect("renewed");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(sim.client(), NS);
    let patch = json!({"stringData": {"tls.crt": renewed.cert_pem, "tls.key": renewed.key_pem}});
    secrets
        .patch(
            "webhook-cert",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("renew the Secret");
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(sim.client());
    let ca = k8s_openapi::ByteString(renewed.ca_pem.expect("a CA").into_bytes());
    let mut vwc = configs
        .get("ferrolb-webhook-configuration")
        .await
        .expect("get");
    for hook in vwc.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = Some(ca.clone());
    }
    configs
        .replace(
            "ferrolb-webhook-configuration",
            &PostParams::default(),
            &vwc,
        )
        .await
        .expect("new caBundle");

    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(error) = webhook_trusted(&sim).await {
        assert!(
            Instant::now() < deadline,
            "the webhook still serves the old certificate: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_made_ca_is_rotated_before_it_expires_and_the_webhook_stays_trusted() {
    // A 6 s life: the pair is replaced at 4 s and the first one expires at 6 s.
    let lifetime = Duration::from_secs(6);
    let (sim, _replica) = webhook_lab_with(None, lifetime).await;
    let start = Instant::now();
    let first_bundle = ca_bundles(&sim).await;
    // Reviews keep coming past the first certificate's expiry; every one must be trusted.
    while start.elapsed() < lifetime + Duration::from_secs(1) {
        if let Err(error) = webhook_trusted(&sim).await {
            panic!(
                "after {:?} the API server did not trust the webhook: {error}",
                start.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bundles = ca_bundles(&sim).await;
    for (bundle, first) in bundles.iter().zip(&first_bundle) {
        let count = bundle.matches("BEGIN CERTIFICATE").count();
        assert!(count >= 2, "the bundle holds {count} CA(s): not rotated");
        assert!(
            bundle.starts_with(first.as_str()),
            "the old CA stays next to the new one"
        );
    }
}
