//! HTTP/1.1 serving with bounds, so that a daemon on the host network survives clients that
//! connect and say nothing, connect by the thousand, or exhaust its file descriptors.
//!
//! Every connection gets a time limit for its TLS handshake (if any) and for each request's
//! headers (which also closes idle keep-alive connections). At most
//! [`Limits::max_connections`] are open at once: a new connection beyond that closes the
//! oldest one, so a flood of idle connections can delay, but never lock out, the kubelet's
//! probe or Prometheus. Accept errors back off instead of spinning (see `accept`).
//!
//! - `accept`: the accept loop's error policy. - `connections`: the bounded connection table.
//! - [`probes`]: `/metrics`, `/healthz`, `/readyz`.

mod accept;
mod connections;
pub mod probes;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::net::TcpStream;

use connections::Connections;

/// The bounds of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; one more closes the oldest.
    pub max_connections: usize,
    /// Time for a TLS handshake to complete.
    pub handshake_timeout: Duration,
    /// Time for a request's headers to arrive, counted from when the connection is ready for
    /// the next request: a connection idle this long is closed.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    /// Generous for Prometheus, the kubelet and the API server (a handful of connections each,
    /// requests sent at once), tight for anything that holds connections open doing nothing.
    fn default() -> Self {
        Self {
            max_connections: 256,
            handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Turns an accepted TCP stream into the stream HTTP is spoken on: nothing for plain HTTP, a
/// TLS handshake for the webhook.
pub trait Handshake: Send + Sync + 'static {
    /// The stream after the handshake.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Completes the handshake; [`serve`] bounds it with [`Limits::handshake_timeout`].
    fn handshake(&self, stream: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Plain HTTP: the TCP stream as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;

    async fn handshake(&self, stream: TcpStream) -> io::Result<TcpStream> {
        Ok(stream)
    }
}

/// A response with a body and a content type.
pub fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// Serves `handle` on every connection `listener` accepts, within `limits`, until the task is
/// dropped. One task per connection: a broken client only ends its own connection.
pub async fn serve<H, F, Fut>(listener: TcpListener, limits: Limits, handshake: H, handle: F)
where
    H: Handshake,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let handshake = Arc::new(handshake);
    let handle = Arc::new(handle);
    let mut connections = Connections::new(limits.max_connections);
    let mut backoff = accept::Backoff::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                backoff.on_error(&error, &mut connections).await;
                continue;
            }
        };
        backoff.on_success();
        let handshake = Arc::clone(&handshake);
        let handle = Arc::clone(&handle);
        connections.spawn(async move {
            serve_one(stream, peer, limits, &*handshake, handle).await;
        });
    }
}

async fn serve_one<H, F, Fut>(
    stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    handshake: &H,
    handle: Arc<F>,
) where
    H: Handshake,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let io = match tokio::time::timeout(limits.handshake_timeout, handshake.handshake(stream)).await
    {
        Ok(Ok(io)) => io,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |request| {
        let handle = Arc::clone(&handle);
        async move { Ok::<_, Infallible>(handle(request).await) }
    });
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests;
