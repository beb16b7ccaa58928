//! An exhaustion attack on the daemons' HTTP servers: 10k TCP connections opened and left idle
//! against the speaker's `/metrics` port (host network in production) and the controller's
//! webhook port (TLS; the connections never start the handshake). The daemons run as in the
//! cluster lab (kubesim, a node namespace). Printed per target: the daemon's RSS and open file
//! descriptors before and while the connections are held, how many of them the daemon still
//! holds, and the latency of `/healthz` (a fresh connection each, p50/max) while they are held.
//! Exits 1 when `/healthz` fails or takes longer than 100 ms at its worst.
//!
//! `cargo bench -p ferrolb-tests --bench idle_connections` (`FERROLB_IDLE_CONNECTIONS=N`, default
//! 10000). Needs root.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferrolb_netlab::{self as netlab, Netlab, netns};
use ferrolb_tests::cluster::{Binaries, ClusterLab};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `/healthz` budget the issue sets while the flood is held.
const HEALTHZ_BUDGET: Duration = Duration::from_millis(100);
const HEALTHZ_SAMPLES: usize = 100;

/// One HTTP server under attack.
struct Target {
    name: &'static str,
    /// The namespace its daemon listens in.
    ns: String,
    /// Where the idle connections go.
    flooded: SocketAddr,
    /// Where `/healthz` is asked.
    health: SocketAddr,
    pid: u32,
}

/// What one attack measured.
struct Figures {
    opened: usize,
    still_held: usize,
    rss_before_kib: u64,
    rss_during_kib: u64,
    fds_before: usize,
    fds_during: usize,
    healthz: Vec<Duration>,
    healthz_failures: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    if !netlab::can_run(&[]) {
        return ExitCode::FAILURE;
    }
    let connections = std::env::var("FERROLB_IDLE_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    if let Err(e) = raise_open_files_limit(connections as u64 + 1024) {
        eprintln!("raising RLIMIT_NOFILE: {e}");
        return ExitCode::FAILURE;
    }
    match run(connections).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(connections: usize) -> Result<bool, Box<dyn std::error::Error>> {
    let binaries = Binaries {
        speaker: PathBuf::from(env!("CARGO_BIN_EXE_lab-speaker")),
        controller: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-controller"))),
    };
    let mut lab = ClusterLab::start("idle", 1, false, binaries).await?;
    let speaker = lab.start_speaker(0)?;
    let controller = lab.start_controller()?;
    let node = lab.nodes[0].clone();
    let metrics = SocketAddr::new(IpAddr::V4(node.v4), 7472);
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let targets = [
        Target {
            name: "speaker /metrics",
            ns: lab.net.ns(&node.role),
            flooded: metrics,
            health: metrics,
            pid: speaker,
        },
        Target {
            name: "controller webhook",
            ns: lab.net.ns(Netlab::SWITCH),
            flooded: SocketAddr::new(localhost, 9443),
            health: SocketAddr::new(localhost, 7472),
            pid: controller,
        },
    ];
    println!(
        "| target | idle connections opened | still held by the daemon | RSS before → during (MiB) | open fds before → during | /healthz p50 / max (ms) | /healthz failures |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut within_budget = true;
    for target in targets {
        let figures = attack(
            target.ns.clone(),
            target.flooded,
            target.health,
            target.pid,
            connections,
        )?;
        let worst = figures
            .healthz
            .iter()
            .max()
            .copied()
            .unwrap_or(Duration::MAX);
        within_budget &= figures.healthz_failures == 0 && worst <= HEALTHZ_BUDGET;
        println!(
            "| {} | {} | {} | {:.1} → {:.1} | {} → {} | {:.2} / {:.2} | {} |",
            target.name,
            figures.opened,
            figures.still_held,
            figures.rss_before_kib as f64 / 1024.0,
            figures.rss_during_kib as f64 / 1024.0,
            figures.fds_before,
            figures.fds_during,
            millis(percentile(&figures.healthz, 50)),
            millis(worst),
            figures.healthz_failures,
        );
    }
    drop(lab);
    if !within_budget {
        eprintln!("/healthz failed or took longer than {HEALTHZ_BUDGET:?} under the flood");
    }
    Ok(within_budget)
}

/// Waits for the daemon, opens `connections` idle connections from inside its namespace, and
/// measures while they are held.
fn attack(
    ns: String,
    flooded: SocketAddr,
    health: SocketAddr,
    pid: u32,
    connections: usize,
) -> std::io::Result<Figures> {
    netns::block_in(&ns, move || async move {
        let started = Instant::now();
        while healthz(health).await.is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(std::io::Error::other(format!(
                    "no /healthz at {health} within 60 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rss_before_kib = rss_kib(pid)?;
        let fds_before = open_fds(pid)?;
        let mut idle = Vec::with_capacity(connections);
        for _ in 0..connections {
            match TcpStream::connect(flooded).await {
                Ok(stream) => idle.push(stream),
                // The daemon's backlog may be full for a moment while it evicts: retry later.
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        let opened = idle.len();
        // Let the daemon accept what is queued before measuring it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_during_kib = rss_kib(pid)?;
        let fds_during = open_fds(pid)?;
        let mut latencies = Vec::with_capacity(HEALTHZ_SAMPLES);
        let mut healthz_failures = 0;
        for _ in 0..HEALTHZ_SAMPLES {
            match healthz(health).await {
                Ok(took) => latencies.push(took),
                Err(_) => healthz_failures += 1,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let still_held = still_open(&mut idle).await;
        Ok(Figures {
            opened,
            still_held,
            rss_before_kib,
            rss_during_kib,
            fds_before,
            fds_during,
            healthz: latencies,
            healthz_failures,
        })
    })?
}

/// One `GET /healthz` on a fresh connection: the time to the whole `200` answer.
async fn healthz(at: SocketAddr) -> std::io::Result<Duration> {
    let started = Instant::now();
    let exchange = async {
        let mut stream = TcpStream::connect(at).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        if answer.starts_with(b"HTTP/1.1 200") {
            Ok(started.elapsed())
        } else {
            Err(std::io::Error::other("/healthz did not answer 200"))
        }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("/healthz timed out")))
}

/// How many of the idle connections the daemon has not closed (a closed one reads EOF or an
/// error at once; an open one has nothing to read).
async fn still_open(idle: &mut [TcpStream]) -> usize {
    let mut open = 0;
    let mut byte = [0u8; 1];
    for stream in idle {
        let read = tokio::time::timeout(Duration::from_micros(200), stream.read(&mut byte)).await;
        if read.is_err() {
            open += 1;
        }
    }
    open
}

fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no VmRSS for PID {pid}")))
}

fn open_fds(pid: u32) -> std::io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn raise_open_files_limit(wanted: u64) -> nix::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted)
}

fn percentile(samples: &[Duration], pct: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted
        .get((sorted.len().saturating_sub(1)) * pct / 100)
        .copied()
        .unwrap_or(Duration::MAX)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
