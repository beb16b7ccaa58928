//! Asking ARP from inside a lab host and counting only real answers: replies sent to the asker
//! (unicast to its MAC, about its own IP). `arping` also prints a gratuitous ARP reply (a
//! broadcast announcement) that arrives while it waits, which would look like a second owner
//! during every handover.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ferrolb_proto::l2::MacAddr;
use ferrolb_proto::l2::arp::{ArpFrame, ArpOp};
use ferrolb_proto::l2::ethernet::EthernetHeader;

const ETH_P_ARP: u16 = 0x0806;

/// The asking host: its namespace, interface, MAC and IPv4 address.
#[derive(Debug, Clone)]
pub struct Asker {
    pub ns: String,
    pub iface: String,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

/// Sends one ARP request for each of `ips` from `asker` and collects, for `wait`, the MACs that
/// answered each.
pub fn ask(
    asker: &Asker,
    ips: &[Ipv4Addr],
    wait: Duration,
) -> io::Result<BTreeMap<Ipv4Addr, BTreeSet<String>>> {
    let asker = asker.clone();
    let ips = ips.to_vec();
    let ns = asker.ns.clone();
    ferrolb_netlab::netns::spawn_in(&ns, move || ask_here(&asker, &ips, wait))
        .join()
        .map_err(|_| io::Error::other("ARP asker panicked"))??
}

/// [`ask`], in the current thread's namespace.
fn ask_here(
    asker: &Asker,
    ips: &[Ipv4Addr],
    wait: Duration,
) -> io::Result<BTreeMap<Ipv4Addr, BTreeSet<String>>> {
    let socket = RawSocket::open(&asker.iface)?;
    for ip in ips {
        let request = ArpFrame {
            eth: EthernetHeader {
                dst: MacAddr::BROADCAST,
                src: asker.mac,
                ethertype: ETH_P_ARP,
            },
            op: ArpOp::Request,
            sender_mac: asker.mac,
            sender_ip: asker.ip,
            target_mac: MacAddr::ZERO,
            target_ip: *ip,
        };
        socket.send(&request.to_bytes())?;
    }
    let mut answers: BTreeMap<Ipv4Addr, BTreeSet<String>> =
        ips.iter().map(|ip| (*ip, BTreeSet::new())).collect();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1600];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(len) = socket.recv(&mut buf, left)? else {
            break;
        };
        let Ok(frame) = ArpFrame::parse(&buf[..len]) else {
            continue;
        };
        let is_answer =
            frame.op == ArpOp::Reply && frame.eth.dst == asker.mac && frame.target_ip == asker.ip;
        if let (true, Some(macs)) = (is_answer, answers.get_mut(&frame.sender_ip)) {
            macs.insert(frame.sender_mac.to_string());
        }
    }
    Ok(answers)
}

/// An AF_PACKET socket for ARP bound to one interface.
struct RawSocket(i32);

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this value owns, once.
        #[allow(unsafe_code)]
        unsafe {
            libc::close(self.0);
        }
    }
}

impl RawSocket {
    #[allow(unsafe_code)]
    fn open(iface: &str) -> io::Result<RawSocket> {
        let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let protocol = ETH_P_ARP.to_be();
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = RawSocket(fd);
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value before we fill it.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    #[allow(unsafe_code)]
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a valid buffer of `frame.len()` bytes for the duration of the call.
        let sent = unsafe { libc::send(self.0, frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One frame into `buf`, or `None` when nothing arrives within `wait`.
    #[allow(unsafe_code)]
    fn recv(&self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
        let mut poll = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: `poll` is one valid pollfd.
        let ready = unsafe { libc::poll(&raw mut poll, 1, millis) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        if ready == 0 {
            return Ok(None);
        }
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
        let len = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(len as usize))
    }
}
