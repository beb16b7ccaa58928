//! Socket options of a BGP session besides MD5: the IP TTL / IPv6 hop limit (eBGP multihop), the
//! minimum TTL of what we accept (GTSM, RFC 5082), TCP keepalive and user timeout (a dead peer
//! noticed without a hold timer), reset-on-close, and the device name a socket is bound to (a
//! VRF, SO_BINDTODEVICE). Values and setters only.
//!
//! `IP_MINTTL` / `IPV6_MINHOPCOUNT` have no wrapper in socket2 or tokio: [`set_min_ttl`] is the
//! one `setsockopt` call here, with the same shape as md5's.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// Sets the TTL (IPv4) or unicast hop limit (IPv6) on a socket, before its SYN leaves. An IPv6
/// socket may carry IPv4-mapped traffic, so it gets IP_TTL as well where the kernel allows it.
pub(crate) fn set_ttl(socket: socket2::SockRef<'_>, is_v6: bool, ttl: u8) -> std::io::Result<()> {
    if is_v6 {
        let _ = socket.set_ttl_v4(u32::from(ttl));
        socket.set_unicast_hops_v6(u32::from(ttl))
    } else {
        socket.set_ttl_v4(u32::from(ttl))
    }
}

/// GTSM (RFC 5082 §3): the kernel drops every segment of this connection that arrives with a
/// TTL (IPv6 hop limit) below `min`, so that only a sender `256 - min` hops away or closer can
/// inject anything; 255 means directly connected. An IPv6 socket may carry IPv4-mapped traffic,
/// so it gets IP_MINTTL as well where the kernel allows it. On a listening socket it applies to
/// the connections it accepts (from the handshake's last ACK on).
pub fn set_min_ttl(socket: &impl AsFd, is_v6: bool, min: u8) -> std::io::Result<()> {
    let fd = socket.as_fd().as_raw_fd();
    if is_v6 {
        let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MINTTL, min.into());
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min.into())
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MINTTL, min.into())
    }
}

#[allow(unsafe_code)]
fn setsockopt_int(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: `fd` is borrowed from a live socket for the duration of the call; the option
    // value is a local `c_int` and the length passed is exactly its size, so the kernel reads
    // only it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// TCP keepalive timings that notice a silent peer within about `bound`: the first probe after
/// a third of it, then probes a ninth of it apart (at least 1 s each) until `bound` is used up.
/// Returns (idle, interval, probes).
pub fn keepalive_timings(bound: Duration) -> (Duration, Duration, u32) {
    let secs = bound.as_secs().max(3);
    let idle = (secs / 3).max(1);
    let interval = (secs / 9).max(1);
    let probes = u32::try_from((secs - idle) / interval)
        .unwrap_or(u32::MAX)
        .max(1);
    (
        Duration::from_secs(idle),
        Duration::from_secs(interval),
        probes,
    )
}

/// Makes the kernel end a connection whose peer went silent within about `bound`: TCP
/// keepalive probes while nothing is in flight ([`keepalive_timings`]) and `TCP_USER_TIMEOUT`
/// while data waits for an acknowledgement. For sessions that negotiated hold time 0, where no
/// BGP timer would ever notice (RFC 4271 §4.2).
pub(crate) fn set_dead_peer_timeout(
    socket: socket2::SockRef<'_>,
    bound: Duration,
) -> std::io::Result<()> {
    let (idle, interval, probes) = keepalive_timings(bound);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(interval)
        .with_retries(probes);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(bound))
}

/// Closing this socket sends RST and frees its buffers at once, instead of the kernel trying
/// to deliver what is still unsent to a peer that does not read.
pub(crate) fn set_reset_on_close(socket: socket2::SockRef<'_>) -> std::io::Result<()> {
    socket.set_linger(Some(Duration::ZERO))
}

/// A network device name (IFNAMSIZ: at most 15 bytes), kept inline so
/// [`PeerConfig`](super::driver::PeerConfig) stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceName {
    bytes: [u8; 15],
    len: u8,
}

/// A device name the kernel cannot have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid device name {name:?}: 1 to 15 bytes, no '/', ':', NUL or whitespace")]
pub struct DeviceNameError {
    /// The name given.
    pub name: String,
}

impl DeviceName {
    /// Checks the kernel's rules for an interface name (dev_valid_name).
    pub fn new(name: &str) -> Result<Self, DeviceNameError> {
        let is_valid = (1..=15).contains(&name.len())
            && name != "."
            && name != ".."
            && !name
                .bytes()
                .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
        if !is_valid {
            return Err(DeviceNameError {
                name: name.to_owned(),
            });
        }
        let mut bytes = [0u8; 15];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self {
            bytes,
            len: name.len() as u8,
        })
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_probes_use_up_the_bound_and_no_more() {
        for secs in [3u64, 6, 9, 10, 30, 90, 300] {
            let (idle, interval, probes) = keepalive_timings(Duration::from_secs(secs));
            let total = idle + interval * probes;
            assert!(total <= Duration::from_secs(secs), "{secs}: {total:?}");
            assert!(
                total + interval > Duration::from_secs(secs),
                "{secs}: one more probe would fit ({total:?})"
            );
            assert!(interval >= Duration::from_secs(1) && probes >= 1);
        }
    }
}
