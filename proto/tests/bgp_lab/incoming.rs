//! Handing accepted connections to a passive peer driver: the test listeners of the BGP tests.
//! Included by `bgp_lab` and, with `#[path]`, by the loopback tests that need no lab.

use ferrolb_netlab::AcceptErrors;
use ferrolb_proto::bgp::driver::Command;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Hands every connection `listener` accepts to the passive peer behind `to`, until that peer is
/// gone; an accept error pauses the loop (EMFILE and the like) instead of ending or spinning it.
pub(crate) async fn hand_over(listener: TcpListener, to: mpsc::Sender<Command>) {
    let mut errors = AcceptErrors::new("test listener");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if to.send(Command::Incoming(stream)).await.is_err() {
                    return;
                }
            }
            Err(error) => errors.pause_after(&error).await,
        }
    }
}
