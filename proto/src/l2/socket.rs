//! One AF_PACKET socket on one interface for one family: ARP requests (EtherType
//! 0x0806) or neighbour solicitations (0x86dd), each behind a kernel BPF filter. Never
//! ETH_P_ALL, never promiscuous: ARP requests arrive because they are broadcast,
//! solicitations because we join their solicited-node MAC.
//!
//! Not registered with tokio: the responder reads it from a dedicated thread in
//! batches (`recv_batch`/`send_batch`, one syscall per batch); announcements are
//! single non-blocking sends from any thread.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::addr::MacAddr;
use super::counters::Family;
use super::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6};
use super::{filter, sys};

/// Receive buffer asked for (the kernel doubles it for bookkeeping). Questions are
/// small (a 42-octet ARP request costs about 1 KiB of buffer with its skb), so this
/// holds a few thousand: tens of milliseconds at 100k/s while the reader thread waits
/// for a CPU. Memory is used only while frames are queued.
pub const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// Octets read per frame: a whole 1500-octet MTU frame with its header fits.
const SLOT_LEN: usize = 2048;

/// A bound, filtered packet socket.
#[derive(Debug)]
pub struct PacketSocket {
    /// The descriptor.
    fd: OwnedFd,
    /// The interface it is bound to (needed for membership requests).
    ifindex: u32,
    /// What it receives.
    family: Family,
}

impl PacketSocket {
    /// Opens the socket for `family` on interface `ifindex`. Needs CAP_NET_RAW.
    pub fn open(ifindex: u32, family: Family) -> io::Result<PacketSocket> {
        let (ethertype, program) = match family {
            Family::V4 => (ETHERTYPE_ARP, filter::arp_requests()),
            Family::V6 => (ETHERTYPE_IPV6, filter::neighbor_solicitations()),
        };
        let fd = sys::open_packet_socket(ethertype, ifindex, &program, RECEIVE_BUFFER_BYTES)?;
        Ok(PacketSocket {
            fd,
            ifindex,
            family,
        })
    }

    /// The family this socket serves.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Reads the frames queued now (up to `batch`'s capacity) into `batch` without
    /// waiting; frames this host sent are skipped. Returns the number of slots used
    /// (compare with `RecvBatch::CAPACITY` to know whether more may be queued);
    /// `WouldBlock` when nothing is queued.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.count = 0;
        let n = sys::recv_frames(&self.fd, &mut batch.data, SLOT_LEN, &mut batch.lens)?;
        batch.count = n;
        Ok(n)
    }

    /// Sends whole Ethernet frames (at most `RecvBatch::CAPACITY` per call), waiting
    /// while the send buffer is full. Returns how many were sent and the error that
    /// stopped the rest, if any.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> (usize, Option<io::Error>) {
        sys::send_frames(&self.fd, frames)
    }

    /// Sends one whole Ethernet frame without waiting.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        sys::send_frame(&self.fd, frame)
    }

    /// Questions the kernel dropped since the last call because the receive queue
    /// was full (the reader fell behind).
    pub fn take_queue_drops(&self) -> io::Result<u64> {
        sys::take_queue_drops(&self.fd)
    }

    /// Accepts frames sent to multicast `mac` on this socket's interface (one join per
    /// call; match each with `leave`).
    pub fn join(&self, mac: MacAddr) -> io::Result<()> {
        sys::packet_membership(&self.fd, self.ifindex, mac, true)
    }

    /// Undoes one `join` of `mac`.
    pub fn leave(&self, mac: MacAddr) -> io::Result<()> {
        sys::packet_membership(&self.fd, self.ifindex, mac, false)
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Reusable buffers for one `recv_batch`: allocated once per reader, so the receive
/// path allocates nothing per frame.
#[derive(Debug)]
pub struct RecvBatch {
    /// `CAPACITY` slots of `SLOT_LEN` octets.
    data: Vec<u8>,
    /// Length of the frame in each slot; 0 for a skipped frame.
    lens: Vec<usize>,
    /// Slots filled by the last receive.
    count: usize,
}

impl RecvBatch {
    /// Frames per batch.
    pub const CAPACITY: usize = sys::MAX_BATCH;

    /// Empty buffers for `CAPACITY` frames.
    pub fn new() -> RecvBatch {
        RecvBatch {
            data: vec![0; Self::CAPACITY * SLOT_LEN],
            lens: vec![0; Self::CAPACITY],
            count: 0,
        }
    }

    /// The frames of the last receive, in arrival order.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.data
            .chunks_exact(SLOT_LEN)
            .zip(&self.lens)
            .take(self.count)
            .filter(|(_, len)| **len > 0)
            .filter_map(|(slot, len)| slot.get(..*len))
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}
