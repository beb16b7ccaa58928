//! The chart `charts/ferrolb` offline, through the real Helm v4 engine (`helm-python-sdk`):
//! strict lint, the values schema refusing bad values by key, the CRD copies kept identical to
//! the generated ones, and a render matrix (defaults, dual-stack, BGP-only, fast path off, no
//! Prometheus operator / with it) checked for what each workload needs to run. Skips when the
//! SDK is absent, except with `CI=true`.

use std::collections::BTreeSet;

use ferrolb_tests::chart::manifests::{args, container, env};
use ferrolb_tests::chart::{self, Helm, Manifests};
use serde_json::{Value, json};

/// The value sets of the render matrix, by name.
fn matrix() -> Vec<(&'static str, Value)> {
    vec![
        ("defaults", json!({})),
        (
            "dual-stack",
            json!({"controller": {"listenAddress": "::"},
                   "speaker": {"memberlist": {"mlBindAddrOverride": "2001:db8::10"}}}),
        ),
        (
            "bgp-only",
            json!({"speaker": {"memberlist": {"enabled": false}, "l2FastPath": {"enabled": false}}}),
        ),
        (
            "fast-path-off",
            json!({"speaker": {"l2FastPath": {"enabled": false}}}),
        ),
        (
            "prometheus-operator",
            json!({"prometheus": {"serviceMonitor": {"enabled": true},
                                  "prometheusRule": {"enabled": true, "l2FastPathOff": {"enabled": true}}},
                   "networkpolicies": {"enabled": true, "defaultDeny": true}}),
        ),
        (
            "pod-monitor",
            json!({"prometheus": {"podMonitor": {"enabled": true}}}),
        ),
    ]
}

async fn render(helm: &Helm, values: Value) -> Manifests {
    helm.render(values.clone())
        .await
        .unwrap_or_else(|e| panic!("render {values}: {e}"))
}

#[tokio::test]
async fn the_chart_lints_clean_in_strict_mode_with_every_value_set() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let requests: Vec<Value> = matrix()
        .into_iter()
        .map(|(_, values)| json!({"action": "lint", "values": values}))
        .collect();
    for ((name, _), report) in matrix()
        .iter()
        .zip(helm.batch(&requests).await.expect("lint"))
    {
        assert_eq!(report["errors"], json!([]), "{name}: {report}");
        let problems: Vec<&Value> = report["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["severity"].as_i64() > Some(1))
            .collect();
        assert!(problems.is_empty(), "{name}: lint warnings: {problems:?}");
    }
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    let files = |dir: std::path::PathBuf| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy().into();
                (name, std::fs::read_to_string(&p).expect("readable"))
            })
            .collect();
        out.sort();
        out
    };
    let generated = files(chart::generated_crds_dir());
    assert_eq!(generated.len(), 9, "the generated CRDs are where expected");
    if std::env::var("FERROLB_UPDATE_GOLDEN").as_deref() == Ok("1") {
        let dir = chart::chart_crds_dir();
        for (name, _) in files(dir.clone()) {
            std::fs::remove_file(dir.join(name)).expect("remove a stale copy");
        }
        for (name, text) in &generated {
            std::fs::write(dir.join(name), text).expect("write the copy");
        }
    }
    let copied = files(chart::chart_crds_dir());
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&copied),
        names(&generated),
        "charts/ferrolb/charts/crds/crds is stale: FERROLB_UPDATE_GOLDEN=1 cargo nextest run -p ferrolb-tests --test chart_render"
    );
    for ((name, copy), (_, original)) in copied.iter().zip(&generated) {
        assert!(
            copy == original,
            "{name} in the chart differs from crds/{name}: FERROLB_UPDATE_GOLDEN=1 cargo nextest run -p ferrolb-tests --test chart_render"
        );
    }
}

#[tokio::test]
async fn helm_installs_every_crd_from_the_crds_subchart() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let manifests = render(&helm, json!({})).await;
    let mut files = manifests.crd_files.clone();
    files.sort();
    assert_eq!(files.len(), 9, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("ferrolb/charts/crds/crds/metallb.io_")),
        "{files:?}"
    );
    assert!(
        manifests
            .of_kind("CustomResourceDefinition")
            .next()
            .is_none(),
        "CRDs are never templates (an uninstall would delete every pool)"
    );
}

/// Bad values and what the refusal must say: schema paths, or the templates' own messages.
fn bad_value_cases() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"speakr": {}}),
            "additional properties 'speakr' not allowed",
        ),
        (
            json!({"speaker": {"memberlist": {"mlBindPrt": 1}}}),
            "/speaker/memberlist",
        ),
        (
            json!({"controller": {"replicas": "two"}}),
            "/controller/replicas",
        ),
        (
            json!({"controller": {"webhookMode": "onlywebhook"}}),
            "/controller/webhookMode",
        ),
        (
            json!({"speaker": {"logLevel": "verbose"}}),
            "/speaker/logLevel",
        ),
        (
            json!({"controller": {"image": {"digest": "latest"}}}),
            "/controller/image/digest",
        ),
        (
            json!({"speaker": {"memberlist": {"mlBindPort": 70000}}}),
            "/speaker/memberlist/mlBindPort",
        ),
        (
            json!({"crds": {"validationFailurePolicy": "Warn"}}),
            "/crds/validationFailurePolicy",
        ),
        (
            json!({"speaker": {"frr": {"enabled": true}}}),
            "speaker.frr.enabled",
        ),
        (
            json!({"prometheus": {"podMonitor": {"enabled": true}, "serviceMonitor": {"enabled": true}}}),
            "prometheus.podMonitor.enabled and prometheus.serviceMonitor.enabled",
        ),
        (
            json!({"speaker": {"memberlist": {"enabled": false}, "nodeSelector": {"a": "b"}}}),
            "speaker.nodeSelector must be empty",
        ),
        (
            json!({"controller": {"leaderElection": {"enabled": false}}}),
            "controller.leaderElection.enabled=false needs controller.replicas=1",
        ),
        (
            json!({"speaker": {"excludeInterfaces": {"patterns": ["eth{1,2}"]}}}),
            "speaker.excludeInterfaces.patterns",
        ),
    ]
}

#[tokio::test]
async fn bad_values_are_refused_naming_the_key() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let cases = bad_value_cases();
    // One driver run: the schema check and a render of each case. Values the schema can
    // express are refused by both; combinations are refused by the templates (`fail`).
    let requests: Vec<Value> = cases
        .iter()
        .flat_map(|(values, _)| {
            [
                json!({"action": "schema", "values": values}),
                json!({"action": "render", "values": values}),
            ]
        })
        .collect();
    let answers = helm.batch(&requests).await.expect("driver runs");
    for ((values, expected), answer) in cases.iter().zip(answers.chunks(2)) {
        let render = answer[1]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{values} rendered"));
        assert!(
            render.contains(expected),
            "{values}: expected {expected:?} in: {render}"
        );
        if expected.starts_with('/') || expected.starts_with("additional") {
            let schema = answer[0]["error"].as_str().unwrap_or_default();
            assert!(
                schema.contains(expected),
                "{values}: schema says {schema:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_metallb_values_file_loads_and_its_ignored_keys_are_warned_about() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let metallb = json!({
        "loadBalancerClass": "metallb",
        "frrk8s": {"enabled": true, "external": false},
        "tls": {"minVersion": "VersionTLS13"},
        "controller": {"logLevel": "debug", "image": {"repository": "registry.example/controller", "tag": "v1"}},
        "speaker": {"tolerateMaster": false, "ignoreExcludeLB": true,
                    "memberlist": {"mlBindPort": 7947, "mlSecretKeyPath": "/etc/ml"},
                    "frr": {"enabled": false}},
        "crds": {"validationFailurePolicy": "Ignore"},
    });
    let manifests = render(&helm, metallb).await;
    assert!(
        manifests.notes.contains("frrk8s.enabled is ignored")
            && manifests.notes.contains("tls.* is ignored"),
        "{}",
        manifests.notes
    );
    let speaker = manifests
        .get("DaemonSet", "ferrolb-speaker")
        .expect("speaker");
    let c = container(speaker, "speaker").expect("container");
    assert!(args(c).contains(&"--ignore-exclude-lb".to_owned()));
    assert!(args(c).contains(&"--members-port=7947".to_owned()));
    assert_eq!(
        env(c, "FERROLB_MEMBERS_KEY_DIR").expect("key")["value"],
        "/etc/ml"
    );
    assert_eq!(
        env(c, "FERROLB_LB_CLASS").expect("class")["value"],
        "metallb"
    );
    assert!(speaker["spec"]["template"]["spec"]["tolerations"].is_null());
    let controller = manifests
        .get("Deployment", "ferrolb-controller")
        .expect("controller");
    let c = container(controller, "controller").expect("container");
    assert_eq!(c["image"], "registry.example/controller:v1");
    assert_eq!(env(c, "RUST_LOG").expect("log")["value"], "debug");
    let vwc = manifests
        .get(
            "ValidatingWebhookConfiguration",
            "ferrolb-webhook-configuration",
        )
        .expect("webhook");
    assert!(
        vwc["webhooks"]
            .as_array()
            .expect("webhooks")
            .iter()
            .all(|h| h["failurePolicy"] == "Ignore")
    );
}

/// Capabilities the speaker container adds, sorted.
fn added_capabilities(container: &Value) -> Vec<String> {
    let mut caps: Vec<String> = container["securityContext"]["capabilities"]["add"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    caps.sort();
    caps
}

/// `fieldPath` of the downward-API env entry `name`.
fn field_path<'a>(container: &'a Value, name: &str) -> &'a Value {
    &env(container, name).unwrap_or_else(|| panic!("env {name}"))["valueFrom"]["fieldRef"]["fieldPath"]
}

#[tokio::test]
async fn every_matrix_entry_renders_workloads_that_can_run() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    for (name, values) in matrix() {
        let manifests = render(&helm, values).await;
        check_speaker(name, &manifests);
        check_controller(name, &manifests);
        check_service_accounts(name, &manifests);
    }
}

fn check_speaker(name: &str, manifests: &Manifests) {
    let speaker = manifests
        .get("DaemonSet", "ferrolb-speaker")
        .unwrap_or_else(|| panic!("{name}: no speaker"));
    let pod = &speaker["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "{name}");
    assert!(
        pod["terminationGracePeriodSeconds"].as_i64() >= Some(2),
        "{name}: the speaker needs time to leave the gossip"
    );
    let tolerated: BTreeSet<&str> = pod["tolerations"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["key"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        tolerated.contains("node-role.kubernetes.io/control-plane"),
        "{name}"
    );
    let c = container(speaker, "speaker").expect("container");
    let security = &c["securityContext"];
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{name}");
    assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(
        security["runAsUser"], 0,
        "{name}: capabilities are granted to root only"
    );
    assert_eq!(field_path(c, "NODE_NAME"), "spec.nodeName", "{name}");
    assert_eq!(field_path(c, "HOST_IP"), "status.hostIP", "{name}");
    assert_eq!(field_path(c, "POD_NAME"), "metadata.name", "{name}");
    assert_eq!(field_path(c, "POD_UID"), "metadata.uid", "{name}");
    assert_eq!(
        field_path(c, "FERROLB_NAMESPACE"),
        "metadata.namespace",
        "{name}"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{name}");
        assert_eq!(
            get["host"], "127.0.0.1",
            "{name}: the speaker listens on loopback"
        );
        assert_eq!(get["port"], 7472, "{name}");
    }
    check_speaker_privileges_and_key(name, manifests, c, pod);
}

/// Capabilities by fast path, and the gossip key Secret, its mount and env by gossip.
fn check_speaker_privileges_and_key(name: &str, manifests: &Manifests, c: &Value, pod: &Value) {
    let fast = !matches!(name, "bgp-only" | "fast-path-off");
    let expected: Vec<&str> = if fast {
        vec!["BPF", "NET_ADMIN", "NET_RAW"]
    } else {
        vec!["NET_RAW"]
    };
    assert_eq!(added_capabilities(c), expected, "{name}");
    assert!(
        args(c).contains(&format!("--l2-fast-path={fast}")),
        "{name}: {:?}",
        args(c)
    );
    let gossip = name != "bgp-only";
    let secret = manifests.get("Secret", "ferrolb-memberlist");
    assert_eq!(secret.is_some(), gossip, "{name}");
    assert_eq!(
        env(c, "FERROLB_MEMBERS_KEY_DIR").is_some(),
        gossip,
        "{name}"
    );
    if let Some(secret) = secret {
        let key = secret["data"]["secretkey"].as_str().expect("a key");
        assert!(key.len() >= 16, "{name}: {key}");
        let mount = &c["volumeMounts"][0];
        assert_eq!(
            env(c, "FERROLB_MEMBERS_KEY_DIR").expect("key")["value"],
            mount["mountPath"]
        );
        assert_eq!(
            pod["volumes"][0]["secret"]["secretName"],
            "ferrolb-memberlist"
        );
    }
    if name == "dual-stack" {
        assert_eq!(
            env(c, "FERROLB_MEMBERS_BIND").expect("bind")["value"],
            "[2001:db8::10]:7946"
        );
    }
}

fn check_controller(name: &str, manifests: &Manifests) {
    let controller = manifests
        .get("Deployment", "ferrolb-controller")
        .unwrap_or_else(|| panic!("{name}: no controller"));
    let pod = &controller["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
    assert!(pod["hostNetwork"].is_null(), "{name}");
    assert!(
        pod["terminationGracePeriodSeconds"].as_i64() >= Some(1),
        "{name}: the leader releases its Lease on SIGTERM"
    );
    assert_eq!(controller["spec"]["replicas"], 2, "{name}");
    let c = container(controller, "controller").expect("container");
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert!(c["securityContext"]["capabilities"]["add"].is_null());
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let a = args(c);
    assert_eq!(a.first().map(String::as_str), Some("run"), "{name}");
    for expected in [
        "--metrics-addr=[::]:7472",
        "--webhook-addr=[::]:9443",
        "--webhook-service=ferrolb-webhook-service",
        "--webhook-configuration=ferrolb-webhook-configuration",
        "--leader-elect=true",
        "--lease-name=ferrolb-controller",
        "--webhook-ca-lifetime=7d",
    ] {
        assert!(
            a.contains(&expected.to_owned()),
            "{name}: {expected} in {a:?}"
        );
    }
    assert_eq!(field_path(c, "FERROLB_NAMESPACE"), "metadata.namespace");
    assert_eq!(field_path(c, "POD_NAME"), "metadata.name");
    let vwc = manifests
        .get(
            "ValidatingWebhookConfiguration",
            "ferrolb-webhook-configuration",
        )
        .expect("webhook configuration");
    let hooks = vwc["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 6, "{name}");
    for hook in hooks {
        assert!(
            hook["clientConfig"]["caBundle"].is_null(),
            "{name}: the controller owns caBundle"
        );
        assert_eq!(
            hook["clientConfig"]["service"]["name"],
            "ferrolb-webhook-service"
        );
        assert!(
            !hook["name"]
                .as_str()
                .unwrap_or_default()
                .ends_with("metallb.io"),
            "{name}: webhook names must not clash with MetalLB's"
        );
    }
    assert!(
        manifests
            .get("Service", "ferrolb-webhook-service")
            .is_some()
    );
    let pdb = manifests
        .get("PodDisruptionBudget", "ferrolb-controller")
        .expect("PDB");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
}

/// Each workload runs as the ServiceAccount the chart creates and binds.
fn check_service_accounts(name: &str, manifests: &Manifests) {
    for (kind, workload) in [
        ("DaemonSet", "ferrolb-speaker"),
        ("Deployment", "ferrolb-controller"),
    ] {
        let object = manifests.get(kind, workload).expect("workload");
        let account = object["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .expect("serviceAccountName");
        assert!(
            manifests.get("ServiceAccount", account).is_some(),
            "{name}: {account}"
        );
        let bound = manifests
            .of_kind("RoleBinding")
            .chain(manifests.of_kind("ClusterRoleBinding"))
            .filter(|b| b["subjects"][0]["name"] == account)
            .count();
        assert_eq!(bound, 2, "{name}: {account} has a Role and a ClusterRole");
    }
}

#[tokio::test]
async fn the_prometheus_operator_kinds_render_only_when_asked() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let plain = render(&helm, json!({})).await;
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "NetworkPolicy",
    ] {
        assert!(!plain.kinds().contains(kind), "{kind} rendered by default");
    }
    let with = render(&helm, matrix()[4].1.clone()).await;
    for (kind, count) in [
        ("ServiceMonitor", 2),
        ("PrometheusRule", 1),
        ("NetworkPolicy", 1),
    ] {
        assert_eq!(with.of_kind(kind).count(), count, "{kind}");
    }
    for service in ["ferrolb-controller-metrics", "ferrolb-speaker-metrics"] {
        let svc = with.get("Service", service).expect(service);
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    }
    let rule = with.of_kind("PrometheusRule").next().expect("rule");
    let rules = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules");
    let alerts: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        alerts,
        [
            "FerroLBStaleConfig",
            "FerroLBConfigNotLoaded",
            "FerroLBAddressPoolExhausted",
            "FerroLBAddressPoolUsage75Percent",
            "FerroLBAddressPoolUsage85Percent",
            "FerroLBAddressPoolUsage95Percent",
            "FerroLBBGPSessionDown",
            "FerroLBControllerNoLeader",
            "FerroLBSpeakerMembersMissing",
            "FerroLBL2FastPathOff",
        ]
    );
    for r in rules {
        let expr = r["expr"].as_str().expect("expr");
        assert!(
            !expr.contains("job"),
            "{expr}: no release-dependent job filter"
        );
    }
    let pods = render(&helm, matrix()[5].1.clone()).await;
    assert_eq!(pods.of_kind("PodMonitor").count(), 2);
    assert!(pods.get("Service", "ferrolb-speaker-metrics").is_none());
}

#[tokio::test]
async fn the_rbac_grants_no_wildcard_and_nothing_metallb_needs_but_ferrolb_does_not() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let manifests = render(&helm, json!({})).await;
    let rules: Vec<Value> = manifests
        .of_kind("Role")
        .chain(manifests.of_kind("ClusterRole"))
        .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(!rules.is_empty());
    for rule in &rules {
        let text = rule.to_string();
        assert!(!text.contains('*'), "wildcard in {text}");
        for resource in rule["resources"].as_array().expect("resources") {
            let resource = resource.as_str().expect("resource");
            assert!(
                ![
                    "pods",
                    "configmaps",
                    "customresourcedefinitions",
                    "deployments",
                    "tokenreviews"
                ]
                .contains(&resource),
                "{resource}: FerroLB never calls it"
            );
            if resource == "events" {
                assert_eq!(
                    rule["apiGroups"],
                    json!(["events.k8s.io"]),
                    "core events are unused"
                );
            }
        }
    }
    let controller = manifests
        .get("ClusterRole", "ferrolb:controller")
        .expect("controller role");
    let vwc_rule = controller["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["resources"] == json!(["validatingwebhookconfigurations"]))
        .expect("webhook configuration rule");
    assert_eq!(
        vwc_rule["resourceNames"],
        json!(["ferrolb-webhook-configuration"])
    );
    let secrets = manifests
        .of_kind("Role")
        .filter(|r| r["rules"].to_string().contains("\"secrets\""))
        .count();
    assert_eq!(secrets, 1, "only the speaker reads Secrets (BGP passwords)");

    let with_cert = render(
        &helm,
        json!({"controller": {"webhook": {"certSecret": "webhook-tls"}}}),
    )
    .await;
    let role = with_cert.get("Role", "ferrolb-controller").expect("role");
    let secret_rule = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["resources"] == json!(["secrets"]))
        .expect("a Secret rule with certSecret");
    assert_eq!(secret_rule["resourceNames"], json!(["webhook-tls"]));
    assert_eq!(secret_rule["verbs"], json!(["get", "list", "watch"]));
}

#[tokio::test]
async fn the_gossip_key_is_the_users_secret_or_one_made_once() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let key = |m: &Manifests| {
        m.get("Secret", "ferrolb-memberlist")
            .map(|s| s["data"]["secretkey"].clone())
    };
    // Offline, `lookup` finds nothing: each render makes a new key (why GitOps users must set
    // speaker.secretName). Online, the install test shows the key surviving upgrades.
    let (first, second) = (
        render(&helm, json!({})).await,
        render(&helm, json!({})).await,
    );
    assert_ne!(key(&first), key(&second));
    let own = render(&helm, json!({"speaker": {"secretName": "my-gossip-key"}})).await;
    assert_eq!(
        key(&own),
        None,
        "no Secret is made when the user brings one"
    );
    let speaker = own.get("DaemonSet", "ferrolb-speaker").expect("speaker");
    assert_eq!(
        speaker["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "my-gossip-key"
    );
}

#[tokio::test]
async fn ports_move_aside_for_a_metallb_speaker_on_the_same_nodes() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let manifests = render(
        &helm,
        json!({"speaker": {"metricsPort": 7572, "memberlist": {"mlBindPort": 7956}}}),
    )
    .await;
    let speaker = manifests
        .get("DaemonSet", "ferrolb-speaker")
        .expect("speaker");
    let c = container(speaker, "speaker").expect("container");
    let a = args(c);
    assert!(a.contains(&"--metrics-port=7572".to_owned()), "{a:?}");
    assert!(a.contains(&"--members-port=7956".to_owned()), "{a:?}");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 7572);
    let controller = manifests
        .get("Deployment", "ferrolb-controller")
        .expect("controller");
    let a = args(container(controller, "controller").expect("container"));
    assert!(a.contains(&"--metrics-addr=[::]:7472".to_owned()), "{a:?}");
}

#[tokio::test]
async fn the_speakers_bgp_values_reach_its_flags() {
    if !chart::sdk_available().await {
        return;
    }
    let helm = Helm::new().expect("driver");
    let speaker_args = |manifests: &Manifests| {
        let speaker = manifests
            .get("DaemonSet", "ferrolb-speaker")
            .expect("speaker");
        args(container(speaker, "speaker").expect("container"))
    };
    let defaults = speaker_args(&render(&helm, json!({})).await);
    assert!(defaults.contains(&"--bgp-stop-on-sigterm=auto".to_owned()));
    assert!(
        !defaults
            .iter()
            .any(|a| a.starts_with("--bgp-gtsm") || a.starts_with("--bgp-max-prefixes")),
        "{defaults:?}"
    );
    let values = json!({"speaker": {"bgp": {"stopOnSigterm": "withdraw", "gtsm": true, "maxPrefixes": 100000}}});
    let set = speaker_args(&render(&helm, values).await);
    for flag in [
        "--bgp-stop-on-sigterm=withdraw",
        "--bgp-gtsm",
        "--bgp-max-prefixes=100000",
    ] {
        assert!(set.contains(&flag.to_owned()), "{flag} missing: {set:?}");
    }
    let refused = helm
        .render(json!({"speaker": {"bgp": {"stopOnSigterm": "drain"}}}))
        .await
        .expect_err("an unknown stop policy");
    assert!(refused.to_string().contains("stopOnSigterm"), "{refused}");
}
