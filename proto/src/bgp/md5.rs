//! TCP MD5 signatures for BGP sessions (RFC 2385), set with Linux's `TCP_MD5SIG` socket option.
//!
//! A key is bound to one peer address on one socket: on a dialling socket before `connect`, on a
//! listening socket before the peer connects (accepted sockets inherit it). The kernel then signs
//! every segment to that address and silently drops unsigned or wrongly signed segments from it,
//! so a wrong password looks like a peer that never answers.
//!
//! The one `setsockopt` call has no safe wrapper in our dependencies (libc has the constant but
//! not the `struct tcp_md5sig`, and neither socket2 nor tokio expose the option); it is isolated
//! here. (The BGP half's only other unsafe code is `sockopt`'s integer `setsockopt` for GTSM.)
#![allow(unsafe_code)]

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

/// `TCP_MD5SIG_MAXKEYLEN` of `<linux/tcp.h>`.
pub const MAX_KEY_LEN: usize = 80;

/// A TCP MD5 key (the BGP password), 1 to 80 bytes. `Copy` so that peer configurations stay
/// plain values; `Debug` never shows the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Md5Key {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

/// A password the kernel cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Md5KeyError {
    /// Empty passwords mean "no MD5"; say so with `None` instead.
    #[error("an empty TCP MD5 password")]
    Empty,
    /// Longer than `TCP_MD5SIG_MAXKEYLEN`.
    #[error("a TCP MD5 password of {len} bytes exceeds the kernel's limit of 80")]
    TooLong {
        /// The password's length in bytes.
        len: usize,
    },
}

impl Md5KeyError {
    /// A stable CamelCase name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Md5KeyError::Empty => "Md5KeyEmpty",
            Md5KeyError::TooLong { .. } => "Md5KeyTooLong",
        }
    }
}

impl Md5Key {
    /// The key for a password (MetalLB's `BGPPeer.spec.password`, used as raw bytes).
    pub fn new(password: &[u8]) -> Result<Md5Key, Md5KeyError> {
        if password.is_empty() {
            return Err(Md5KeyError::Empty);
        }
        if password.len() > MAX_KEY_LEN {
            return Err(Md5KeyError::TooLong {
                len: password.len(),
            });
        }
        let mut bytes = [0u8; MAX_KEY_LEN];
        bytes[..password.len()].copy_from_slice(password);
        Ok(Md5Key {
            bytes,
            len: password.len() as u8,
        })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5Key(<{} bytes>)", self.len)
    }
}

/// `struct sockaddr_storage`: 128 bytes, 8-aligned.
#[repr(C, align(8))]
struct SockaddrStorage([u8; 128]);

/// `struct tcp_md5sig` of `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: SockaddrStorage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: i32,
    key: [u8; MAX_KEY_LEN],
}

const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

/// The peer's address as the socket's family sees it: an IPv4 peer of an IPv6 socket is
/// IPv4-mapped (`::ffff:a.b.c.d`), as the kernel reports it on a dual-stack listener.
fn sockaddr(peer: IpAddr, socket_is_ipv6: bool) -> SockaddrStorage {
    let mut s = [0u8; 128];
    let v6 = match (peer, socket_is_ipv6) {
        (IpAddr::V4(a), false) => {
            s[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            s[4..8].copy_from_slice(&a.octets());
            return SockaddrStorage(s);
        }
        (IpAddr::V4(a), true) => a.to_ipv6_mapped(),
        (IpAddr::V6(a), _) => a,
    };
    s[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    s[8..24].copy_from_slice(&v6.octets());
    SockaddrStorage(s)
}

/// Sets (or with `None` removes) the MD5 key for `peer` on a TCP socket. `socket_is_ipv6` is the
/// socket's own family (see [`set_key_on_socket`] and [`set_key_on_listener`]).
pub fn set_key(
    socket: &impl AsFd,
    socket_is_ipv6: bool,
    peer: IpAddr,
    key: Option<&Md5Key>,
) -> std::io::Result<()> {
    let mut sig = TcpMd5Sig {
        addr: sockaddr(peer, socket_is_ipv6),
        flags: 0,
        prefix_len: 0,
        key_len: 0,
        ifindex: 0,
        key: [0u8; MAX_KEY_LEN],
    };
    if let Some(key) = key {
        sig.key_len = u16::from(key.len);
        sig.key = key.bytes;
    }
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is borrowed from a live socket for the duration of the call; `sig` is a
    // fully initialised `#[repr(C)]` value laid out as the kernel's `struct tcp_md5sig` (size
    // checked above), and the length passed is its exact size, so the kernel reads only it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// [`set_key`] on a socket about to dial; its family is read from the socket.
pub fn set_key_on_socket(
    socket: &tokio::net::TcpSocket,
    peer: IpAddr,
    key: Option<&Md5Key>,
) -> std::io::Result<()> {
    let is_ipv6 = socket.local_addr()?.is_ipv6();
    set_key(socket, is_ipv6, peer, key)
}

/// [`set_key`] on a listening socket: connections from `peer` must then be signed with `key`.
pub fn set_key_on_listener(
    listener: &tokio::net::TcpListener,
    peer: IpAddr,
    key: Option<&Md5Key>,
) -> std::io::Result<()> {
    let is_ipv6 = listener.local_addr()?.is_ipv6();
    set_key(listener, is_ipv6, peer, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_eighty_bytes_and_never_printed() {
        assert_eq!(Md5Key::new(b""), Err(Md5KeyError::Empty));
        assert_eq!(
            Md5Key::new(&[b'x'; 81]),
            Err(Md5KeyError::TooLong { len: 81 })
        );
        let key = Md5Key::new(b"s3cret").expect("valid");
        assert_eq!(key.as_bytes(), b"s3cret");
        assert_eq!(format!("{key:?}"), "Md5Key(<6 bytes>)");
        assert_eq!(
            Md5Key::new(&[b'x'; 80]).expect("valid").as_bytes().len(),
            80
        );
    }

    #[test]
    fn an_ipv4_peer_of_an_ipv6_socket_is_ipv4_mapped() {
        let peer: IpAddr = "192.0.2.1".parse().expect("address");
        let s = sockaddr(peer, true).0;
        assert_eq!(u16::from_ne_bytes([s[0], s[1]]), libc::AF_INET6 as u16);
        assert_eq!(
            &s[8..24],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]
        );
        let s = sockaddr(peer, false).0;
        assert_eq!(u16::from_ne_bytes([s[0], s[1]]), libc::AF_INET as u16);
        assert_eq!(&s[4..8], &[192, 0, 2, 1]);
    }

    #[tokio::test]
    async fn the_kernel_takes_and_removes_a_key() {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        let peer: IpAddr = "192.0.2.1".parse().expect("address");
        let key = Md5Key::new(b"s3cret").expect("valid");
        set_key_on_socket(&socket, peer, Some(&key)).expect("set");
        set_key_on_socket(&socket, peer, None).expect("remove");
        let socket6 = tokio::net::TcpSocket::new_v6().expect("socket");
        set_key_on_socket(&socket6, peer, Some(&key)).expect("set IPv4-mapped");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        set_key_on_listener(&listener, peer, Some(&key)).expect("set on listener");
    }
}
