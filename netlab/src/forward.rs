//! TCP forwarding from a listener inside a namespace to an address in the caller's namespace
//! (e.g. speakers in node namespaces reaching an API server the test runs on 127.0.0.1).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::accept::AcceptErrors;

/// Forwards every connection `listener` accepts to `target`, until the task is aborted. A
/// connection the target refuses is closed; the loop goes on.
pub(crate) fn spawn(listener: TcpListener, target: SocketAddr) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut errors = AcceptErrors::new("netlab forward");
        loop {
            let mut inbound = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    errors.pause_after(&error).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}
