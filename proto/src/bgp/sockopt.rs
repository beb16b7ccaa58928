//! Socket options of a BGP session besides MD5: the IP TTL / IPv6 hop limit (eBGP multihop) and
//! the device name a socket is bound to (a VRF, SO_BINDTODEVICE). Values and setters only.

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
