//! The client side of the bench: a raw AF_PACKET socket (no filter, it is ours), the
//! questions it asks, a latency prober and a paced flooder.
//!
//! Latency is the kernel's receive timestamp of the answer (SIOCGSTAMPNS: taken when
//! the answer reaches cli0, before this thread wakes) minus CLOCK_REALTIME read just
//! before `send`, so the prober's own wakeup counts for neither responder.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ferrolb_proto::l2::arp::{self, ArpFrame, ArpOp};
use ferrolb_proto::l2::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader};
use ferrolb_proto::l2::ndp::{NeighborAdvertisement, NeighborSolicitation};
use ferrolb_proto::l2::{MacAddr, addr};

const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A raw packet socket on one interface for one EtherType.
pub struct Raw {
    fd: OwnedFd,
}

impl Raw {
    pub fn open(ifindex: u32, ethertype: u16) -> Raw {
        // SAFETY: socket(2) with constant arguments, checked below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(raw >= 0, "socket: {}", io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: a live c_int of the size passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                (&raw const one).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // SAFETY: an all-zero sockaddr_ll is valid.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ethertype.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind: {}", io::Error::last_os_error());
        let raw = Raw { fd };
        raw.stamp(); // turns receive timestamps on
        raw
    }

    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: `frame` is readable for its length during the call.
        unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) > 0 }
    }

    /// Sends `n` copies of `frame` with one sendmmsg; returns how many went out.
    pub fn send_copies(&self, frame: &[u8], n: usize) -> usize {
        let mut iov = libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        };
        // SAFETY: an all-zero mmsghdr is valid (null name and control).
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { mem::zeroed() }).collect();
        for m in &mut msgs {
            m.msg_hdr.msg_iov = &raw mut iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds `n` headers each pointing at `iov`, which points at
        // `frame`; all outlive the call and the kernel only reads them.
        let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        usize::try_from(rc).unwrap_or(0)
    }

    /// The next frame within `timeout`, into `buf`.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Option<usize> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let rc = unsafe { libc::poll(&raw mut pfd, 1, timeout.as_millis() as i32) };
        if rc <= 0 {
            return None;
        }
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).ok()
    }

    /// Receive time of the last frame read, CLOCK_REALTIME nanoseconds.
    pub fn stamp(&self) -> i128 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: SIOCGSTAMPNS writes one timespec into `ts`.
        unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCGSTAMPNS, &raw mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    }
}

pub fn realtime_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// The question for `target` from the client (host 1 of the target's lab subnet, at
/// `mac`) and the EtherType to send it with.
pub fn question(target: IpAddr, mac: MacAddr) -> (u16, Vec<u8>) {
    match target {
        IpAddr::V4(v4) => {
            let mut req = arp::gratuitous_request(v4, mac);
            let [a, b, c, _] = v4.octets();
            req.sender_ip = Ipv4Addr::new(a, b, c, 1);
            (ETHERTYPE_ARP, req.to_bytes())
        }
        IpAddr::V6(v6) => {
            let ns = NeighborSolicitation {
                eth: EthernetHeader {
                    dst: addr::solicited_node_mac(v6),
                    src: mac,
                    ethertype: ETHERTYPE_IPV6,
                },
                src: {
                    let mut s = v6.segments();
                    s[4..].copy_from_slice(&[0, 0, 0, 1]);
                    s.into()
                },
                dst: addr::solicited_node(v6),
                target: v6,
                source_lla: Some(mac),
            };
            (ETHERTYPE_IPV6, ns.to_bytes())
        }
    }
}

/// Whether `frame` answers the question about `target`.
fn is_answer(frame: &[u8], target: IpAddr) -> bool {
    match target {
        IpAddr::V4(v4) => {
            ArpFrame::parse(frame).is_ok_and(|a| a.op == ArpOp::Reply && a.sender_ip == v4)
        }
        IpAddr::V6(v6) => NeighborAdvertisement::parse(frame).is_some_and(|na| na.target == v6),
    }
}

/// Latency sample: RTTs in µs and the number of questions never answered.
#[derive(Default)]
pub struct Rtts {
    pub us: Vec<f64>,
    pub lost: usize,
}

impl Rtts {
    /// Percentile `p` (0..=1) of the RTTs.
    pub fn pct(&self, p: f64) -> f64 {
        let mut sorted = self.us.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return f64::NAN;
        }
        let i = ((n as f64 - 1.0) * p).round() as usize;
        sorted.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// Asks `count` times, one question at a time, `gap` apart; adds to `into`.
pub fn probe(
    ifindex: u32,
    mac: MacAddr,
    target: IpAddr,
    count: usize,
    gap: Duration,
    into: &mut Rtts,
) {
    let (ethertype, frame) = question(target, mac);
    let socket = Raw::open(ifindex, ethertype);
    let mut buf = [0u8; 2048];
    let Rtts { us: rtts, lost } = into;
    for _ in 0..count {
        let sent_at = realtime_ns();
        if !socket.send(&frame) {
            *lost += 1;
            continue;
        }
        let deadline = Instant::now() + Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match socket.recv(&mut buf, left) {
                Some(n) if is_answer(buf.get(..n).unwrap_or_default(), target) => {
                    rtts.push((socket.stamp() - sent_at) as f64 / 1e3);
                    break;
                }
                Some(_) => continue,
                None => {
                    *lost += 1;
                    break;
                }
            }
        }
        std::thread::sleep(gap);
    }
}

/// Sends questions about `target` for `duration`: at `rate` per second (paced in
/// bursts of at most 64 frames), or as fast as one socket can when `rate` is `None`.
/// Returns the number sent.
pub fn flood(
    ifindex: u32,
    mac: MacAddr,
    target: IpAddr,
    rate: Option<u64>,
    duration: Duration,
) -> u64 {
    let (ethertype, frame) = question(target, mac);
    let socket = Raw::open(ifindex, ethertype);
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return sent;
        }
        let due = match rate {
            Some(rate) => ((rate as f64 * elapsed.as_secs_f64()) as u64).saturating_sub(sent),
            None => 64,
        };
        if due == 0 {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        sent += socket.send_copies(&frame, due.min(64) as usize) as u64;
    }
}
