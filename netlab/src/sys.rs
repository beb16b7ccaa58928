//! The crate's only unsafe code: three libc calls that have no safe wrapper among our
//! dependencies (setns(2), geteuid(2), sysconf(3)).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

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
