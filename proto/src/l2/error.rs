//! Errors of the L2 socket layer and responder (not of the codecs: a frame we do not
//! answer is a `DropReason`, not an error).

use std::io;
use std::net::IpAddr;

/// A failure of the responder's I/O or of a request made to it.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// Opening or configuring a packet socket, or starting the thread that reads
    /// them, failed.
    #[error("opening {family} socket on interface {interface} (index {ifindex}): {source}")]
    OpenSocket {
        /// Interface name.
        interface: String,
        /// Interface index.
        ifindex: u32,
        /// "ARP", "NDP", or the reader thread.
        family: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Joining or leaving a solicited-node group failed.
    #[error("{action} solicited-node group of {ip} on interface {interface}: {source}")]
    Membership {
        /// "joining" or "leaving".
        action: &'static str,
        /// The announced address.
        ip: IpAddr,
        /// Interface name.
        interface: String,
        /// The OS error.
        source: io::Error,
    },
    /// The netlink socket for link events failed.
    #[error("netlink link watch: {source}")]
    Netlink {
        /// The OS error.
        source: io::Error,
    },
    /// The responder task has stopped, so the request could not be carried out.
    #[error("the L2 responder task has stopped")]
    Stopped,
}

impl L2Error {
    /// Stable CamelCase label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            L2Error::OpenSocket { .. } => "OpenSocket",
            L2Error::Membership { .. } => "Membership",
            L2Error::Netlink { .. } => "Netlink",
            L2Error::Stopped => "Stopped",
        }
    }
}
