//! The crate's only unsafe code: libc calls that have no safe wrapper among our dependencies
//! (setns(2), geteuid(2), sysconf(3), and an AF_PACKET socket for asking ARP).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Moves the calling thread (only it) into the network namespace of `file`.
pub(crate) fn setns_net(file: &File) -> std::io::Result<()> {
    // SAFETY: `file` is an open file that outlives the call; setns(2) with CLONE_NEWNET changes
    // only the calling thread's network namespace and touches no memory of ours.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether the process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Clock ticks per second, the unit of utime/stime in `/proc/PID/stat`.
pub(crate) fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf(3) has no preconditions and only reads a constant.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()
}

/// An AF_PACKET socket bound to one interface of the calling thread's namespace, receiving one
/// EtherType: whole Ethernet frames in and out.
#[derive(Debug)]
pub(crate) struct PacketSocket(OwnedFd);

impl PacketSocket {
    /// Opens it on `iface` for frames of `ethertype`.
    pub(crate) fn open(iface: &str, ethertype: u16) -> std::io::Result<PacketSocket> {
        let name = std::ffi::CString::new(iface).map_err(std::io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let protocol = ethertype.to_be();
        // SAFETY: socket(2) with constant arguments; the descriptor is owned right below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let socket = PacketSocket(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value before it is filled.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = i32::try_from(ifindex).map_err(std::io::Error::other)?;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(socket)
    }

    /// Sends one whole frame.
    pub(crate) fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        // SAFETY: `frame` is a valid buffer of `frame.len()` bytes for the duration of the call.
        let sent = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// One frame into `buf`, or `None` when nothing arrives within `wait`.
    pub(crate) fn recv(&self, buf: &mut [u8], wait: Duration) -> std::io::Result<Option<usize>> {
        let mut poll = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: `poll` is one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&raw mut poll, 1, millis) };
        if ready < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if ready == 0 {
            return Ok(None);
        }
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
        let len = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        usize::try_from(len)
            .map(Some)
            .map_err(|_| std::io::Error::last_os_error())
    }
}
