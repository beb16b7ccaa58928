//! `/metrics` for Prometheus, `/healthz` (the process answers) and `/readyz` (the daemon has
//! what it needs to do its job) for the kubelet, over plain HTTP. Only GET (and HEAD) is served.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use tokio::net::TcpListener;

use super::{Limits, Plain, reply, serve};

/// What a daemon reports on its probe endpoints.
pub trait Probes: Send + Sync + 'static {
    /// The metrics in Prometheus' text exposition format (version 0.0.4).
    fn metrics(&self) -> Vec<u8>;
    /// `Err(why)` while the daemon is not ready, said in the `/readyz` body.
    fn readiness(&self) -> Result<(), String>;
}

/// Serves the probe endpoints on `listener` until the task is dropped.
pub async fn serve_probes(listener: TcpListener, limits: Limits, probes: Arc<dyn Probes>) {
    serve(listener, limits, Plain, move |request| {
        let response = answer(request.method(), request.uri().path(), &*probes);
        async move { response }
    })
    .await;
}

/// The response to one probe request.
pub fn answer(method: &Method, path: &str, probes: &dyn Probes) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
    }
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            probes.metrics(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => match probes.readiness() {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ok\n"),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    #[derive(Default)]
    struct Fake {
        ready: AtomicBool,
    }

    impl Probes for Fake {
        fn metrics(&self) -> Vec<u8> {
            b"up 1\n".to_vec()
        }
        fn readiness(&self) -> Result<(), String> {
            if self.ready.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("watches not synced".into())
            }
        }
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
        String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
    }

    #[tokio::test]
    async fn readyz_says_why_until_the_daemon_is_ready() {
        let fake = Fake::default();
        let response = answer(&Method::GET, "/readyz", &fake);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(response).await, "not ready: watches not synced\n");
        fake.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            answer(&Method::GET, "/readyz", &fake).status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn metrics_come_in_the_text_format_and_healthz_always_answers() {
        let fake = Fake::default();
        let metrics = answer(&Method::GET, "/metrics", &fake);
        assert_eq!(
            metrics.headers()[hyper::header::CONTENT_TYPE],
            "text/plain; version=0.0.4"
        );
        assert_eq!(body(metrics).await, "up 1\n");
        assert_eq!(
            answer(&Method::GET, "/healthz", &fake).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn other_methods_and_paths_are_refused() {
        let fake = Fake::default();
        assert_eq!(
            answer(&Method::POST, "/metrics", &fake).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            answer(&Method::GET, "/admin", &fake).status(),
            StatusCode::NOT_FOUND
        );
    }
}
