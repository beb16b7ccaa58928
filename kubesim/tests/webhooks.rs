//! Validating admission webhooks: kubesim sends an AdmissionReview v1 over HTTPS (verified with
//! the configuration's caBundle) to a tiny webhook server run by the test, for writes matching
//! the rules; denials reach the client as the real server words them, warnings as `Warning:`
//! headers, and timeoutSeconds/failurePolicy decide what a failed call does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use ferrolb_kubesim::{KubeSim, Options};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A CA and a webhook server certificate for 127.0.0.1 and `hook.webhooks.svc`.
struct Pki {
    ca_pem: String,
    server: rustls::ServerConfig,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubesim test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "hook.webhooks.svc".to_owned()])
            .expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server TLS config");
    Pki {
        ca_pem: ca.pem(),
        server,
    }
}

/// Answers a review by path: `/validate` denies objects labelled `deny`, warns always;
/// `/slow` answers after 3 s; anything else is a 500.
async fn decide(path: &str, review: Value) -> (u16, Value) {
    let uid = review["request"]["uid"].clone();
    match path {
        "/validate" => {
            let denied = review["request"]["object"]["metadata"]["labels"]
                .get("deny")
                .is_some();
            let mut response = json!({"uid": uid, "allowed": !denied,
                "warnings": ["checked by the test hook"]});
            if denied {
                response["status"] = json!({"code": 403, "reason": "Forbidden", "message": "deny labels are not allowed"});
            }
            (
                200,
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
            )
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (
                200,
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": true}}),
            )
        }
        _ => (500, json!({})),
    }
}

/// Starts the test's HTTPS webhook server; returns its address and the count of reviews.
async fn webhook_server(server: rustls::ServerConfig) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let counter = Arc::clone(&counter);
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let path = request.uri().path().to_owned();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let (code, answer) = decide(&path, review).await;
                        let mut response =
                            hyper::Response::new(Full::new(Bytes::from(answer.to_string())));
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(code).unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (address, calls)
}

fn configuration(client_config: Value, failure_policy: &str, timeout_secs: u32) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "test-hooks"},
        "webhooks": [{
            "name": "configmaps.test.ferrolb.io",
            "clientConfig": client_config,
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "Namespaced"}],
            "failurePolicy": failure_policy,
            "timeoutSeconds": timeout_secs,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    })
}

fn ca_bundle(pki: &Pki) -> String {
    base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem)
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
        .expect("a ConfigMap")
}

#[tokio::test]
async fn a_denial_reaches_the_client_with_the_webhooks_message() {
    let pki = pki();
    let bundle = ca_bundle(&pki);
    let (address, calls) = webhook_server(pki.server).await;
    let sim = KubeSim::start().await.expect("kubesim starts");
    sim.create_object(configuration(
        json!({"url": format!("https://{address}/validate"), "caBundle": bundle}),
        "Fail",
        5,
    ))
    .expect("webhook configuration stored");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let error = cms
        .create(&PostParams::default(), &cm("bad", json!({"deny": "yes"})))
        .await
        .expect_err("denied");
    let kube::Error::Api(status) = error else {
        panic!("{error:?}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "admission webhook \"configmaps.test.ferrolb.io\" denied the request: deny labels are not allowed"
    );
    assert!(
        cms.get_opt("bad").await.expect("get").is_none(),
        "nothing written"
    );
    cms.create(&PostParams::default(), &cm("good", json!({})))
        .await
        .expect("allowed");
    let error = cms
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"deny": "now"}}})),
        )
        .await
        .expect_err("an update is reviewed too");
    assert!(matches!(error, kube::Error::Api(s) if s.code == 403));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}});
    let created = sim
        .raw(
            "POST",
            "/api/v1/namespaces/default/secrets",
            Some("application/json"),
            None,
            Some(&secret),
        )
        .await
        .expect("raw");
    assert_eq!(created.status, 201);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "no rule matches secrets");
}

#[tokio::test]
async fn warnings_come_back_as_warning_headers() {
    let pki = pki();
    let bundle = ca_bundle(&pki);
    let (address, _) = webhook_server(pki.server).await;
    let sim = KubeSim::start().await.expect("kubesim starts");
    sim.create_object(configuration(
        json!({"url": format!("https://{address}/validate"), "caBundle": bundle}),
        "Fail",
        5,
    ))
    .expect("stored");
    let body = json!({"metadata": {"name": "w"}}).to_string();
    let request = hyper::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body.into_bytes()))
        .expect("request");
    let response = sim.client().send(request).await.expect("answer");
    assert_eq!(response.status().as_u16(), 201);
    let warning = response
        .headers()
        .get("warning")
        .and_then(|v| v.to_str().ok());
    assert_eq!(warning, Some("299 - \"checked by the test hook\""));
}

#[tokio::test]
async fn a_service_reference_is_reached_through_the_configured_address() {
    let pki = pki();
    let bundle = ca_bundle(&pki);
    let (address, calls) = webhook_server(pki.server).await;
    let mut options = Options::default();
    options
        .webhook_services
        .insert("webhooks/hook".to_owned(), address);
    let sim = KubeSim::start_with(options).await.expect("kubesim starts");
    sim.create_object(configuration(
        json!({"service": {"namespace": "webhooks", "name": "hook", "path": "/validate", "port": 443},
            "caBundle": bundle}),
        "Fail",
        5,
    ))
    .expect("stored");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let error = cms
        .create(&PostParams::default(), &cm("bad", json!({"deny": "1"})))
        .await
        .expect_err("denied through the service");
    assert!(matches!(error, kube::Error::Api(s) if s.code == 403));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_webhook_slower_than_its_timeout_fails_the_write_under_fail_and_not_under_ignore() {
    let pki = pki();
    let bundle = ca_bundle(&pki);
    let (address, _) = webhook_server(pki.server).await;
    let sim = KubeSim::start().await.expect("kubesim starts");
    let client_config = json!({"url": format!("https://{address}/slow"), "caBundle": bundle});
    sim.create_object(configuration(client_config.clone(), "Fail", 1))
        .expect("stored");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let error = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect_err("the call timed out");
    let kube::Error::Api(status) = error else {
        panic!("{error:?}")
    };
    assert_eq!(status.code, 500);
    assert!(
        status
            .message
            .contains("failed calling webhook \"configmaps.test.ferrolb.io\""),
        "{}",
        status.message
    );
    let ignore = configuration(client_config, "Ignore", 1);
    cms.create(&PostParams::default(), &cm("before-ignore", json!({})))
        .await
        .expect_err("still Fail");
    let configs: Api<kube::api::DynamicObject> = Api::all_with(
        sim.client(),
        &kube::api::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: "ValidatingWebhookConfiguration".into(),
            plural: "validatingwebhookconfigurations".into(),
        },
    );
    configs
        .patch(
            "test-hooks",
            &PatchParams::default(),
            &Patch::Merge(json!({"webhooks": ignore["webhooks"]})),
        )
        .await
        .expect("switch to Ignore");
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("Ignore lets the write through");
}

#[tokio::test]
async fn a_server_certificate_not_signed_by_the_ca_bundle_fails_the_call() {
    let pki = pki();
    let other = self::pki();
    let (address, calls) = webhook_server(pki.server).await;
    let sim = KubeSim::start().await.expect("kubesim starts");
    sim.create_object(configuration(
        json!({"url": format!("https://{address}/validate"), "caBundle": ca_bundle(&other)}),
        "Fail",
        5,
    ))
    .expect("stored");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let error = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect_err("TLS verification fails");
    assert!(matches!(error, kube::Error::Api(s) if s.code == 500));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn kubectl_prints_the_denial_and_the_warnings() {
    let Some(kubectl) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    }) else {
        ferrolb_netlab::prereq::apply(&["`kubectl` on PATH".into()]);
        return;
    };
    let pki = pki();
    let bundle = ca_bundle(&pki);
    let (address, _) = webhook_server(pki.server).await;
    let sim = KubeSim::start().await.expect("kubesim starts");
    sim.create_object(configuration(
        json!({"url": format!("https://{address}/validate"), "caBundle": bundle}),
        "Fail",
        5,
    ))
    .expect("stored");
    let home = tempfile::tempdir().expect("home");
    let run = |args: &'static [&'static str]| {
        tokio::process::Command::new(&kubectl)
            .args(args)
            .env("KUBECONFIG", sim.kubeconfig_path())
            .env("HOME", home.path())
            .output()
    };
    let denied = run(&["create", "configmap", "x", "--from-literal=a=b"])
        .await
        .expect("kubectl runs");
    assert!(denied.status.success(), "allowed: {denied:?}");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("Warning: checked by the test hook"),
        "{stderr}"
    );
    let denied = run(&["label", "configmap", "x", "deny=yes"])
        .await
        .expect("kubectl runs");
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains(
            "admission webhook \"configmaps.test.ferrolb.io\" denied the request: deny labels are not allowed"
        ),
        "{stderr}"
    );
}
