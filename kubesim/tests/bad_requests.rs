//! Bad requests get the codes a real API server gives them and never take kubesim down:
//! malformed JSON, unknown resources, malformed resourceVersions, oversized bodies and
//! slowloris clients. Each test ends by checking the server still answers.

use std::time::Duration;

use ferrolb_kubesim::{KubeSim, Options};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn still_serves(sim: &KubeSim) {
    let namespaces: Api<Namespace> = Api::all(sim.client());
    tokio::time::timeout(Duration::from_secs(5), namespaces.get("default"))
        .await
        .expect("answers in time")
        .expect("the server still serves");
}

/// Sends `head` and `body` on a fresh connection; returns the status code and the body text.
async fn exchange(sim: &KubeSim, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(sim.address()).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer and close before reading a body it refused.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

#[tokio::test]
async fn malformed_json_is_400_bad_request() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let body = b"{\"metadata\": {\"name\": ";
    let head = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (code, text) = exchange(&sim, &head, body).await;
    assert_eq!(code, 400, "{text}");
    let status: serde_json::Value = serde_json::from_str(text.trim()).expect("a Status body");
    assert_eq!(status["reason"], "BadRequest");
    still_serves(&sim).await;
}

#[tokio::test]
async fn unknown_groups_and_resources_are_404_not_found() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    for path in [
        "/apis/nothing.example.com/v1/widgets",
        "/api/v1/namespaces/default/widgets",
        "/api/v9/pods",
        "/apis/metallb.io/v1beta1/ipaddresspools",
    ] {
        let answer = sim.raw("GET", path, None, None, None).await.expect("raw");
        assert_eq!(answer.status, 404, "{path}: {}", answer.text());
        assert_eq!(answer.json()["reason"], "NotFound", "{path}");
    }
    let widget = json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}});
    let answer = sim
        .raw(
            "POST",
            "/api/v1/namespaces/default/widgets",
            Some("application/json"),
            None,
            Some(&widget),
        )
        .await
        .expect("raw");
    assert_eq!(answer.status, 404);
    still_serves(&sim).await;
}

#[tokio::test]
async fn a_non_numeric_resource_version_query_is_answered_as_the_real_server_does() {
    // The real server answers 500 with no reason here (kubernetes/kubernetes#139485).
    let sim = KubeSim::start().await.expect("kubesim starts");
    for query in ["resourceVersion=abc", "watch=1&resourceVersion=-1"] {
        let path = format!("/api/v1/namespaces/default/configmaps?{query}");
        let answer = sim.raw("GET", &path, None, None, None).await.expect("raw");
        assert_eq!(answer.status, 500, "{query}");
        let status = answer.json();
        assert!(status.get("reason").is_none(), "{status}");
        let message = status["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with("resourceVersion: Invalid value: "),
            "{message}"
        );
    }
    still_serves(&sim).await;
}

#[tokio::test]
async fn a_non_numeric_resource_version_in_an_update_is_an_internal_error() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"}});
    sim.create_object(cm.clone()).expect("create");
    let mut update = cm;
    update["metadata"]["resourceVersion"] = json!("not-a-number");
    let answer = sim
        .raw(
            "PUT",
            "/api/v1/namespaces/default/configmaps/c",
            Some("application/json"),
            None,
            Some(&update),
        )
        .await
        .expect("raw");
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(answer.json()["reason"], "InternalError");
    update["metadata"]["resourceVersion"] = json!("1");
    let stale = sim
        .raw(
            "PUT",
            "/api/v1/namespaces/default/configmaps/c",
            Some("application/json"),
            None,
            Some(&update),
        )
        .await
        .expect("raw");
    assert_eq!(stale.status, 409, "a numeric but stale RV is a conflict");
    still_serves(&sim).await;
}

#[tokio::test]
async fn a_10_mib_body_is_413_request_entity_too_large() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big"}, "data": {"k": "x".repeat(10 * 1024 * 1024)}});
    let answer = sim
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            None,
            Some(&big),
        )
        .await
        .expect("raw");
    assert_eq!(answer.status, 413);
    let status = answer.json();
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    assert_eq!(
        status["message"],
        "Request entity too large: limit is 3145728"
    );
    // Without a content-length the limit holds too (chunked body).
    let chunk = vec![b'x'; 4 * 1024 * 1024];
    let mut stream = TcpStream::connect(sim.address()).await.expect("connect");
    let head = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    let _ = stream
        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
        .await;
    let _ = stream.write_all(&chunk).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    still_serves(&sim).await;
}

#[tokio::test]
async fn slowloris_connections_are_closed_and_do_not_block_others() {
    let options = Options {
        header_read_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kubesim starts");
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(sim.address()).await.expect("connect");
        stream
            .write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("partial head");
        idle.push(stream);
    }
    still_serves(&sim).await;
    // Every idle connection is closed once the header timeout passes.
    for stream in &mut idle {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the server closes a slow connection");
        let n = read.unwrap_or(0);
        assert!(
            n == 0 || buf.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    still_serves(&sim).await;
}
