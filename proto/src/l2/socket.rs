//! One AF_PACKET socket on one interface for one family, made async with tokio:
//! ARP requests (EtherType 0x0806) or neighbour solicitations (0x86dd), each behind a
//! kernel BPF filter. Never ETH_P_ALL, never promiscuous: ARP requests arrive because
//! they are broadcast, solicitations because we join their solicited-node MAC.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

use super::addr::MacAddr;
use super::counters::Family;
use super::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6};
use super::{filter, sys};

/// A bound, filtered packet socket.
#[derive(Debug)]
pub struct PacketSocket {
    /// The descriptor, registered with the tokio reactor.
    fd: AsyncFd<OwnedFd>,
    /// The interface it is bound to (needed for membership requests).
    ifindex: u32,
    /// What it receives.
    family: Family,
}

impl PacketSocket {
    /// Opens the socket for `family` on interface `ifindex`. Needs CAP_NET_RAW and a
    /// running tokio reactor.
    pub fn open(ifindex: u32, family: Family) -> io::Result<PacketSocket> {
        let (ethertype, program) = match family {
            Family::V4 => (ETHERTYPE_ARP, filter::arp_requests()),
            Family::V6 => (ETHERTYPE_IPV6, filter::neighbor_solicitations()),
        };
        let fd = sys::open_packet_socket(ethertype, ifindex, &program)?;
        Ok(PacketSocket {
            fd: sys::register(fd)?,
            ifindex,
            family,
        })
    }

    /// The family this socket serves.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Waits for the next frame received from the wire (frames this host sent are
    /// skipped) and returns its length in `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| sys::recv_frame(fd.get_ref(), buf)) {
                Ok(Ok((_, sys::PACKET_OUTGOING))) => continue,
                Ok(Ok((len, _))) => return Ok(len),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one whole Ethernet frame.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| sys::send_frame(fd.get_ref(), frame)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Accepts frames sent to multicast `mac` on this socket's interface (one join per
    /// call; match each with `leave`).
    pub fn join(&self, mac: MacAddr) -> io::Result<()> {
        sys::packet_membership(self.fd.get_ref(), self.ifindex, mac, true)
    }

    /// Undoes one `join` of `mac`.
    pub fn leave(&self, mac: MacAddr) -> io::Result<()> {
        sys::packet_membership(self.fd.get_ref(), self.ifindex, mac, false)
    }
}
