//! Entering a network namespace from a thread. setns(2) has no safe wrapper among our
//! dependencies; it is the only unsafe code of the crate.
#![allow(unsafe_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

/// Binds a TCP listener inside namespace `ns` (a name under /run/netns). The socket stays in that
/// namespace for its whole life, whichever thread uses it; the returned listener is
/// non-blocking, ready for `tokio::net::TcpListener::from_std`.
pub fn bind_tcp_in(ns: &str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    let path = format!("/run/netns/{ns}");
    let joined = std::thread::spawn(move || {
        let file = File::open(&path)?;
        // SAFETY: `file` is an open namespace file for the duration of the call; setns(2) only
        // changes the network namespace of this short-lived thread, which ends right after.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join();
    joined.unwrap_or_else(|_| Err(std::io::Error::other("the setns thread panicked")))
}
