//! The UDP sockets of BFD: one listener per family and port that reports, with each datagram,
//! its TTL (hop limit), destination address and interface; and one sender per session, bound to
//! the session's own source port, that sends with TTL 255 (RFC 5881 §5, RFC 5883 §5).
//!
//! I/O only; what to do with a datagram is decided by `packet`, `demux` and `fsm`.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::demux::RxMeta;

/// The TTL (hop limit) of every packet we send.
pub const SEND_TTL: u32 = 255;

/// Room for the control messages a listener asks for (TTL, packet info), with slack.
const CMSG_SPACE: usize = 128;

/// Receive buffer of a listener. Every session's packets share it, and peers that keep time on
/// a grid (as we do) send in bursts: with the default (about 200 KiB, some 50 packets of a
/// veth's buffer size) a burst from 4000 sessions overflowed it. Needs CAP_NET_ADMIN to exceed
/// `net.core.rmem_max`; without it the kernel's cap applies.
const RECV_BUFFER: usize = 4 << 20;

/// A listening socket on one port and family.
#[derive(Debug)]
pub struct Listener {
    socket: UdpSocket,
    is_multihop: bool,
}

impl Listener {
    /// Binds the wildcard address of the family on `port`, asking the kernel for the TTL
    /// (hop limit), destination and interface of each datagram. Needs a tokio runtime.
    pub fn open(is_v6: bool, port: u16, is_multihop: bool) -> io::Result<Listener> {
        let domain = if is_v6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_nonblocking(true)?;
        if setsockopt(&socket, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
            socket.set_recv_buffer_size(RECV_BUFFER)?;
        }
        let ip: IpAddr = if is_v6 {
            socket.set_only_v6(true)?;
            setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)?;
            setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?;
            setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
            Ipv4Addr::UNSPECIFIED.into()
        };
        socket.bind(&SocketAddr::new(ip, port).into())?;
        Ok(Listener {
            socket: UdpSocket::from_std(socket.into())?,
            is_multihop,
        })
    }

    /// A buffer for the control messages [`Listener::try_recv`] reads.
    pub fn cmsg_buffer() -> Vec<u8> {
        vec![0; CMSG_SPACE]
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Ready when a datagram may be waiting (or the socket failed).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_recv_ready(cx)
    }

    /// Reads one waiting datagram into `buf` without blocking: its length and what the kernel
    /// said about it. `WouldBlock` once the queue is empty (which re-arms readiness).
    pub fn try_recv(&self, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        let fd = self.socket.as_raw_fd();
        let is_multihop = self.is_multihop;
        self.socket.try_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::empty())
                .map_err(io::Error::from)?;
            let source = msg
                .address
                .as_ref()
                .and_then(source_ip)
                .ok_or_else(|| io::Error::other("datagram without a source address"))?;
            let mut meta = RxMeta {
                source,
                dest: None,
                ifindex: None,
                ttl: None,
                is_multihop_port: is_multihop,
            };
            for c in msg.cmsgs().map_err(io::Error::from)? {
                match c {
                    ControlMessageOwned::Ipv4Ttl(ttl) | ControlMessageOwned::Ipv6HopLimit(ttl) => {
                        meta.ttl = u8::try_from(ttl).ok();
                    }
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        meta.dest = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)).into());
                        meta.ifindex = u32::try_from(info.ipi_ifindex).ok();
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        meta.dest = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr).into());
                        meta.ifindex = Some(info.ipi6_ifindex);
                    }
                    _ => {}
                }
            }
            Ok((msg.bytes, meta))
        })
    }
}

fn source_ip(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(v4.ip().into());
    }
    addr.as_sockaddr_in6().map(|v6| v6.ip().into())
}

/// The sending socket of one session, and whether it is connected to the peer.
#[derive(Debug)]
pub struct Sender {
    socket: StdUdpSocket,
    dest: SocketAddr,
    is_connected: bool,
}

impl Sender {
    /// Sends one datagram to the peer without blocking.
    pub fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        if self.is_connected {
            self.socket.send(bytes)
        } else {
            self.socket.send_to(bytes, self.dest)
        }
    }
}

/// Opens the sending socket of one session: bound to `local` (or the wildcard) and `port`,
/// TTL (hop limit) 255, for a single-hop session with an interface bound to that device so that
/// packets leave through it, and connected to `dest` so that the kernel keeps the route instead
/// of looking it up for every packet (an ICMP unreachable from a peer that runs no BFD then
/// fails the next send, which is counted). With no route to `dest` yet it stays unconnected and
/// sends with a lookup each time. `scope_id` is the interface index for link-local addresses.
pub fn open_sender(
    local: Option<IpAddr>,
    port: u16,
    device: Option<&str>,
    scope_id: u32,
    dest: SocketAddr,
) -> io::Result<Sender> {
    let is_v6 = dest.is_ipv6();
    let domain = if is_v6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    set_ttl(SockRef::from(&socket), is_v6)?;
    // The local address may not be configured yet (or any more): the session then stays Down
    // and its sends fail and are counted, instead of the session being refused.
    if is_v6 {
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    if let Some(device) = device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    let ip = local.unwrap_or(if is_v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    });
    socket.bind(&with_scope(SocketAddr::new(ip, port), scope_id).into())?;
    let is_connected = socket.connect(&dest.into()).is_ok();
    Ok(Sender {
        socket: socket.into(),
        dest,
        is_connected,
    })
}

fn set_ttl(socket: SockRef<'_>, is_v6: bool) -> io::Result<()> {
    if is_v6 {
        socket.set_unicast_hops_v6(SEND_TTL)
    } else {
        socket.set_ttl_v4(SEND_TTL)
    }
}

/// `addr` with the interface as scope when it is an IPv6 link-local address.
pub fn with_scope(addr: SocketAddr, scope_id: u32) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => {
            SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, scope_id))
        }
        other => other,
    }
}

/// The index of a network interface by name.
pub fn interface_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}
