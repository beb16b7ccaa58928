//! A Service's ClusterIP as kube-proxy would give it, for one caller: kubesim (in the test's own
//! network namespace) calls the webhook Service at a loopback address fixed before it starts;
//! each connection goes to the next ready endpoint, a Pod's port inside that Pod's network
//! namespace. Endpoints change as the chart kubelet starts and stops Pods.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One endpoint: a network namespace and a port on its loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub netns: String,
    pub port: u16,
}

/// The proxy; stops when dropped.
#[derive(Debug)]
pub struct ServiceProxy {
    address: SocketAddr,
    endpoints: Arc<Mutex<Vec<Endpoint>>>,
    task: JoinHandle<()>,
}

impl ServiceProxy {
    /// Listens on a free loopback port (tell kubesim this address before it starts).
    pub async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        Ok((listener, address))
    }

    /// Serves `listener`, spreading connections over the endpoints set with [`Self::set`].
    pub fn serve(listener: TcpListener) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        let endpoints: Arc<Mutex<Vec<Endpoint>>> = Arc::default();
        let shared = Arc::clone(&endpoints);
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let candidates = shared.lock().map(|e| e.clone()).unwrap_or_default();
                next = next.wrapping_add(1);
                tokio::spawn(relay(inbound, candidates, next));
            }
        });
        Ok(Self {
            address,
            endpoints,
            task,
        })
    }

    /// Where callers connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Replaces the endpoints (the ready Pods behind the Service).
    pub fn set(&self, endpoints: Vec<Endpoint>) {
        if let Ok(mut current) = self.endpoints.lock() {
            *current = endpoints;
        }
    }
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to the first endpoint that accepts, starting at `start`, and copies both ways.
async fn relay(mut inbound: TcpStream, endpoints: Vec<Endpoint>, start: usize) {
    for k in 0..endpoints.len() {
        let endpoint = endpoints[(start + k) % endpoints.len()].clone();
        let connected = tokio::task::spawn_blocking(move || {
            ferrolb_netlab::netns::spawn_in(&endpoint.netns, move || {
                std::net::TcpStream::connect(("127.0.0.1", endpoint.port))
            })
            .join()
        })
        .await;
        let Ok(Ok(Ok(Ok(stream)))) = connected else {
            continue;
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        if let Ok(mut outbound) = TcpStream::from_std(stream) {
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            return;
        }
    }
}
