//! Entering a network namespace from one thread: setns(2) has no safe wrapper in our
//! dependencies, so this is the lab's only unsafe code.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

/// Moves the calling thread (only it) into the named namespace under /run/netns.
pub(crate) fn enter(ns: &str) -> std::io::Result<()> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: `file` is an open namespace file that outlives the call; setns(2) with
    // CLONE_NEWNET changes only the calling thread's network namespace and touches no memory.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether the process runs as root (needed for namespaces and the routers).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
