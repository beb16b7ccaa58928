//! The few Linux syscalls the responder needs that no safe wrapper offers: AF_PACKET
//! sockets bound to one interface and one EtherType, a classic BPF filter, packet
//! multicast membership, batched send/receive of whole frames (sendmmsg/recvmmsg:
//! one syscall per batch, not per frame), poll(2), the socket's drop statistics, and
//! the reader thread's scheduling attributes.
//!
//! This is the only module of `l2` with `unsafe`; every block says why it is sound.
//! It decides nothing: callers pass the interface, EtherType, filter and group.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::addr::MacAddr;
use super::filter::Instruction;

// Linux ABI constants (include/uapi/linux/if_packet.h, asm-generic/socket.h); stable
// since long before any kernel we support, spelled out here to not depend on which of
// them a libc release exports.
const SO_ATTACH_FILTER: libc::c_int = 26;
const SO_RCVBUFFORCE: libc::c_int = 33;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_STATISTICS: libc::c_int = 6;
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

/// Opens an AF_PACKET/SOCK_RAW socket that receives only frames of `ethertype` on
/// `ifindex` that pass `filter`, with a receive buffer of about `rcvbuf` bytes. The
/// filter is attached before the socket is bound, so no unfiltered frame is ever
/// queued. Never promiscuous. The descriptor is blocking; receives and announcement
/// sends pass MSG_DONTWAIT, reply batches may block (backpressure).
pub(crate) fn open_packet_socket(
    ethertype: u16,
    ifindex: u32,
    filter: &[Instruction],
    rcvbuf: usize,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    // Protocol 0 means the socket receives nothing until bind names an EtherType.
    let raw =
        check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a descriptor socket(2) just returned; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    attach_filter(&fd, filter)?;
    // A burst of questions must wait in the queue while the reader thread is not
    // running; the FORCE form (CAP_NET_ADMIN) passes net.core.rmem_max.
    let bytes = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
    if set_int(&fd, libc::SOL_SOCKET, SO_RCVBUFFORCE, bytes).is_err() {
        set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)?;
    }
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

/// Most frames moved by one recvmmsg/sendmmsg call.
pub(crate) const MAX_BATCH: usize = 64;

/// Reads up to `lens.len()` (at most `MAX_BATCH`) queued frames without waiting, frame
/// `i` into `slots[i * slot_len..]`; sets `lens[i]` to its length (cut to `slot_len`),
/// or to 0 for a frame this host sent. Returns how many slots were filled;
/// `WouldBlock` when nothing is queued.
pub(crate) fn recv_frames(
    fd: &OwnedFd,
    slots: &mut [u8],
    slot_len: usize,
    lens: &mut [usize],
) -> io::Result<usize> {
    let n = lens.len().min(MAX_BATCH).min(slots.len() / slot_len.max(1));
    // SAFETY: an all-zero iovec (null base, zero length) is a valid value.
    let mut iov: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: an all-zero sockaddr_ll is a valid value of this plain C struct.
    let mut from: [libc::sockaddr_ll; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: an all-zero mmsghdr (null name, iov and control) is a valid value.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    for (i, slot) in slots.chunks_exact_mut(slot_len.max(1)).take(n).enumerate() {
        if let (Some(v), Some(f), Some(m)) = (iov.get_mut(i), from.get_mut(i), msgs.get_mut(i)) {
            v.iov_base = slot.as_mut_ptr().cast::<libc::c_void>();
            v.iov_len = slot.len();
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (&raw mut *f).cast::<libc::c_void>();
            m.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        }
    }
    // SAFETY: the first `n` headers each point at one iovec covering a distinct
    // `slot_len` chunk of `slots` and at one sockaddr_ll with its size; all of them
    // live on this frame or in `slots` until the call returns, and the kernel writes
    // at most those lengths. `n <= MAX_BATCH`, the arrays' length.
    let got = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    for ((len, m), f) in lens.iter_mut().zip(&msgs).zip(&from).take(got) {
        *len = if f.sll_pkttype == PACKET_OUTGOING {
            0
        } else {
            (m.msg_len as usize).min(slot_len)
        };
    }
    Ok(got)
}

/// Sends up to `MAX_BATCH` whole Ethernet frames with one sendmmsg (more calls only if
/// the kernel takes fewer); blocks while the socket's send buffer is full. Returns
/// how many were sent before the first failure, and that failure if any.
pub(crate) fn send_frames(fd: &OwnedFd, frames: &[Vec<u8>]) -> (usize, Option<io::Error>) {
    let frames = frames
        .get(..frames.len().min(MAX_BATCH))
        .unwrap_or_default();
    // SAFETY: an all-zero iovec (null base, zero length) is a valid value.
    let mut iov: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: an all-zero mmsghdr (null name, iov and control) is a valid value.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    for ((frame, v), m) in frames.iter().zip(&mut iov).zip(&mut msgs) {
        v.iov_base = frame.as_ptr() as *mut libc::c_void;
        v.iov_len = frame.len();
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut done = 0;
    while done < frames.len() {
        let Some(rest) = msgs.get_mut(done..frames.len()) else {
            break;
        };
        // SAFETY: each header in `rest` points at one iovec that points at a frame of
        // `frames`; all outlive the call and the kernel only reads them (it writes
        // `msg_len` inside the headers, which we own).
        let n = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                rest.as_mut_ptr(),
                rest.len() as libc::c_uint,
                0,
            )
        };
        match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return (done, Some(e));
            }
        }
    }
    (done, None)
}

/// Sends one whole Ethernet frame without waiting (`WouldBlock` when the send buffer
/// is full).
pub(crate) fn send_frame(fd: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: `frame` is readable for `frame.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr().cast::<libc::c_void>(),
            frame.len(),
            libc::MSG_DONTWAIT,
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

/// Waits until one of `fds` is readable, hung up or in error, or `timeout` passes
/// (`None`: forever); sets `ready[i]` for each such descriptor. Returns how many.
pub(crate) fn poll_readable<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
    ready: &mut [bool; N],
) -> io::Result<usize> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `pfds` is a live array of N pollfd and N is the count passed.
    let n = check(unsafe { libc::poll(pfds.as_mut_ptr(), N as libc::nfds_t, ms) })?;
    for (r, p) in ready.iter_mut().zip(&pfds) {
        *r = p.revents != 0;
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// `struct tpacket_stats` from linux/if_packet.h.
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: libc::c_uint,
    tp_drops: libc::c_uint,
}

/// Frames the kernel dropped because the socket's receive queue was full, since the
/// last call (reading PACKET_STATISTICS resets them).
pub(crate) fn take_queue_drops(fd: &OwnedFd) -> io::Result<u64> {
    let mut stats = TpacketStats::default();
    let mut len = mem::size_of::<TpacketStats>() as libc::socklen_t;
    // SAFETY: `stats` is a live tpacket_stats and `len` holds its size; the kernel
    // writes at most `len` octets into it.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            (&raw mut stats).cast::<libc::c_void>(),
            &raw mut len,
        )
    })?;
    Ok(u64::from(stats.tp_drops))
}

/// `struct sched_attr` (include/uapi/linux/sched/types.h), first version: 48 octets.
#[repr(C)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Puts the calling thread (only) in the fair class with nice `nice` and a custom
/// slice of `slice` (Linux 6.12+ lets a task with a shorter slice preempt the running
/// one on wakeup; older kernels ignore the slice). Lowering nice needs CAP_SYS_NICE.
pub(crate) fn set_thread_latency(nice: i32, slice: Duration) -> io::Result<()> {
    let attr = SchedAttr {
        size: mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX),
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: sched_setattr(2) on pid 0 (the calling thread) reads one `sched_attr`
    // whose `size` field says how many octets it has; `attr` lives across the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads in the fast path
/// program, so deadlines written from here compare with its reading.
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `now`, which lives across the call;
    // CLOCK_MONOTONIC always exists on Linux, so it cannot fail with valid arguments.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}
