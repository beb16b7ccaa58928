//! Running code inside a network namespace: a thread enters it (setns moves only that thread),
//! and whatever the thread creates there — sockets, a tokio runtime — stays in it.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use crate::sys;

/// The file `ip netns` keeps for namespace `ns`.
pub fn path(ns: &str) -> String {
    format!("/run/netns/{ns}")
}

/// Moves the calling thread (only it) into namespace `ns` (a name under /run/netns).
pub fn enter(ns: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(path(ns))?;
    sys::setns_net(&file)
}

/// Runs `body` on a new thread inside namespace `ns`; the join gives its result, or the error of
/// entering the namespace.
pub fn spawn_in<T, F>(ns: &str, body: F) -> JoinHandle<std::io::Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns)?;
        Ok(body())
    })
}

/// Runs the future `body()` makes on a current-thread tokio runtime, on a thread inside namespace
/// `ns`, and waits for it. A panic in the body is raised again in the caller (so a test's
/// assertion inside the namespace fails the test).
pub fn block_in<T, F, Fut>(ns: &str, body: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let joined = spawn_in(ns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(body()))
    })
    .join();
    match joined {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Binds a TCP listener inside namespace `ns`. The socket stays in that namespace for its whole
/// life, whichever thread uses it; it is non-blocking, ready for
/// `tokio::net::TcpListener::from_std`.
pub fn bind_tcp_in(ns: &str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    let bound = spawn_in(ns, move || {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join();
    bound.unwrap_or_else(|_| Err(std::io::Error::other("the setns thread panicked")))?
}
