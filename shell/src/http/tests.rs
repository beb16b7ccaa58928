//! The server's bounds on real sockets: idle clients, floods, stuck handshakes and running out
//! of file descriptors. Every wait has a deadline; none of these tests sleeps and then counts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A server answering every request with "hello", and its address.
async fn hello_server(limits: Limits, handshake: impl Handshake) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(serve(listener, limits, handshake, |_request| async {
        reply(StatusCode::OK, "text/plain", "hello")
    }));
    addr
}

/// Sends one request on a fresh connection; the response's first line.
async fn get(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    request_on(&mut stream).await
}

async fn request_on(stream: &mut TcpStream) -> io::Result<String> {
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Resolves when the server closed `stream` (EOF or reset), with how long it took.
async fn closed_by_server(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buffer = [0_u8; 64];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"))
}

#[tokio::test]
async fn a_client_that_says_nothing_is_closed_after_the_header_timeout() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let addr = hello_server(limits, Plain).await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let took = within(
        Duration::from_secs(5),
        "idle close",
        closed_by_server(&mut idle),
    )
    .await;
    assert!(
        took >= Duration::from_millis(150),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_too() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let addr = hello_server(limits, Plain).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0_u8; 12];
    stream.read_exact(&mut first).await.expect("a response");
    assert_eq!(&first, b"HTTP/1.1 200");
    within(
        Duration::from_secs(5),
        "keep-alive close",
        closed_by_server(&mut stream),
    )
    .await;
}

#[tokio::test]
async fn a_flood_of_idle_connections_never_locks_out_a_real_client() {
    let limits = Limits {
        max_connections: 8,
        ..Limits::default()
    };
    let addr = hello_server(limits, Plain).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let start = Instant::now();
    let status = within(Duration::from_secs(5), "request", get(addr))
        .await
        .expect("answered");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // The oldest idle connection was closed to make room.
    within(
        Duration::from_secs(5),
        "oldest closed",
        closed_by_server(&mut idle[0]),
    )
    .await;
}

/// A TLS-like handshake that never completes.
struct Stuck;

impl Handshake for Stuck {
    type Io = TcpStream;

    async fn handshake(&self, _stream: TcpStream) -> io::Result<TcpStream> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_handshake_that_never_completes_is_given_up() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let addr = hello_server(limits, Stuck).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    within(
        Duration::from_secs(5),
        "handshake give-up",
        closed_by_server(&mut stream),
    )
    .await;
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Lowers this process's descriptor limit to `extra` above what is open now. nextest runs each
/// test in its own process, so the limit ends with the test.
fn leave_descriptors(extra: u64) {
    let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count() as u64);
    let limit = libc::rlimit {
        rlim_cur: open + extra,
        rlim_max: open + extra,
    };
    // SAFETY: setrlimit reads the struct we pass.
    #[allow(unsafe_code)]
    let result = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(result, 0, "setrlimit: {}", io::Error::last_os_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_backs_off_instead_of_spinning() {
    if std::env::var_os("NEXTEST").is_none() {
        eprintln!("skipped: lowers the process's descriptor limit, so it runs only under nextest");
        return;
    }
    let addr = hello_server(Limits::default(), Plain).await;
    leave_descriptors(40);
    // Fill the table: our client sockets plus the server's accepted ones.
    let mut clients = Vec::new();
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => clients.push(stream),
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error}");
                break;
            }
        }
    }
    // A connection or two waits in the backlog while accept keeps failing with EMFILE.
    let before = cpu_time();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spent = cpu_time() - before;
    assert!(
        spent < Duration::from_millis(50),
        "the accept loop burnt {spent:?} of CPU in 500 ms"
    );
    // Descriptors come back: the server serves again.
    clients.truncate(clients.len() / 2);
    let status = within(Duration::from_secs(5), "request after EMFILE", get(addr))
        .await
        .expect("answered");
    assert_eq!(status, "HTTP/1.1 200 OK");
}
