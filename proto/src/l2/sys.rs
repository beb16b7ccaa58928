//! The few Linux syscalls the responder needs that no safe wrapper offers: AF_PACKET
//! sockets bound to one interface and one EtherType, a classic BPF filter, packet
//! multicast membership, and send/receive of whole frames.
//!
//! This is the only module of `l2` with `unsafe`; every block says why it is sound.
//! It decides nothing: callers pass the interface, EtherType, filter and group.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::addr::MacAddr;
use super::filter::Instruction;

// Linux ABI constants (include/uapi/linux/if_packet.h, asm-generic/socket.h); stable
// since long before any kernel we support, spelled out here to not depend on which of
// them a libc release exports.
const SO_ATTACH_FILTER: libc::c_int = 26;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
/// `sll_pkttype` of a frame this host sent (looped back to packet sockets).
pub(crate) const PACKET_OUTGOING: u8 = 4;

/// `struct packet_mreq` from linux/if_packet.h.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [libc::c_uchar; 8],
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn ifindex_c(ifindex: u32) -> io::Result<libc::c_int> {
    libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Opens a non-blocking AF_PACKET/SOCK_RAW socket that receives only frames of
/// `ethertype` on `ifindex` that pass `filter`. The filter is attached before the
/// socket is bound, so no unfiltered frame is ever queued. Never promiscuous.
pub(crate) fn open_packet_socket(
    ethertype: u16,
    ifindex: u32,
    filter: &[Instruction],
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    // Protocol 0 means the socket receives nothing until bind names an EtherType.
    let raw = check(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `raw` is a descriptor socket(2) just returned; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    attach_filter(&fd, filter)?;
    // Kernels before 4.20 lack the option; `decide` drops our own frames anyway.
    let _ = set_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    let addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: ethertype.to_be(),
        sll_ifindex: ifindex_c(ifindex)?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_ll that outlives the call, and the length
    // passed is its size.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast::<libc::c_void>(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn attach_filter(fd: &OwnedFd, filter: &[Instruction]) -> io::Result<()> {
    let mut program: Vec<libc::sock_filter> = filter
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let prog = libc::sock_fprog {
        len: libc::c_ushort::try_from(program.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `program`, which lives until after the call; the kernel
    // copies the program during setsockopt and keeps no pointer to it.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_FILTER,
            (&raw const prog).cast::<libc::c_void>(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Adds (or drops) `mac` to the multicast addresses the interface accepts for this
/// socket (PACKET_MR_MULTICAST). The kernel counts joins per socket, so each join must
/// be matched by one leave; closing the socket leaves all of them.
pub(crate) fn packet_membership(
    fd: &OwnedFd,
    ifindex: u32,
    mac: MacAddr,
    join: bool,
) -> io::Result<()> {
    let mut address = [0u8; 8];
    if let Some(head) = address.get_mut(..6) {
        head.copy_from_slice(&mac.0);
    }
    let mreq = PacketMreq {
        mr_ifindex: ifindex_c(ifindex)?,
        mr_type: PACKET_MR_MULTICAST,
        mr_alen: 6,
        mr_address: address,
    };
    let name = if join {
        PACKET_ADD_MEMBERSHIP
    } else {
        PACKET_DROP_MEMBERSHIP
    };
    // SAFETY: `mreq` is a live packet_mreq with the kernel's layout (#[repr(C)]) and the
    // length passed is its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (&raw const mreq).cast::<libc::c_void>(),
            mem::size_of::<PacketMreq>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Reads one frame into `buf`; returns its length (cut to `buf.len()`) and its
/// `sll_pkttype`. Non-blocking: `WouldBlock` when nothing is queued.
pub(crate) fn recv_frame(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    // SAFETY: an all-zero sockaddr_ll is a valid value of this plain C struct.
    let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` is writable for `buf.len()` bytes; `from`/`from_len` are live and
    // describe a buffer of the size given.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
            0,
            (&raw mut from).cast::<libc::sockaddr>(),
            &raw mut from_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n.unsigned_abs(), from.sll_pkttype))
}

/// Sends one whole Ethernet frame on the interface the socket is bound to.
pub(crate) fn send_frame(fd: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: `frame` is readable for `frame.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr().cast::<libc::c_void>(),
            frame.len(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n.unsigned_abs() != frame.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short send of a frame",
        ));
    }
    Ok(())
}

/// Registers `fd` with the current tokio reactor. Panics outside a tokio runtime.
pub(crate) fn register(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is an open descriptor that it alone closes, on drop; its
    // `as_raw_fd` always returns that same descriptor, and the `AsyncFd` owns it.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(
            fd,
            tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
        )
    }
    .map_err(io::Error::from)
}
