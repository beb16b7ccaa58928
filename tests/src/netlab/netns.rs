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
    let bound = spawn_in(ns, move || {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join();
    bound.unwrap_or_else(|_| Err(std::io::Error::other("the setns thread panicked")))?
}

/// Runs `body` on a new thread inside namespace `ns` and returns its result; everything the
/// body creates (sockets, threads) lives in that namespace.
pub fn spawn_in<T, F>(ns: &str, body: F) -> std::thread::JoinHandle<std::io::Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path)?;
        // SAFETY: `file` is an open namespace file for the duration of the call; setns(2) only
        // changes the network namespace of this thread, which is ours alone.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(body())
    })
}
