//! CPU of the responder's threads, and the iperf3 run that loads the interface it
//! listens on with unrelated traffic.
//!
//! Per-thread CPU comes from /proc/self/task/TID/schedstat (nanoseconds on CPU and
//! number of times scheduled in), which is exact where utime/stime tick at 10 ms.
//! The fast path runs in softirq, outside any of our threads: its cost is the
//! kernel's own accounting of the program (run_time_ns / run_cnt in the fdinfo of the
//! program, with kernel.bpf_stats_enabled on). /proc/stat's softirq ticks are too
//! coarse on this VM to tell one program's share apart (0% and 33% for the same load).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// CPU nanoseconds and times scheduled in, summed over every thread of this process
/// except `exclude` (the bench's own threads).
pub fn responder_cpu(exclude: &BTreeSet<i32>) -> (u64, u64) {
    let mut ns = 0;
    let mut runs = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        if exclude.contains(&tid) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let f: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        ns += f.first().copied().unwrap_or(0);
        runs += f.get(2).copied().unwrap_or(0);
    }
    (ns, runs)
}

/// One iperf3 load: what it was, the rate it reached, and the responder's CPU.
pub struct Load {
    pub name: &'static str,
    pub mbit_per_s: f64,
    pub cpu_percent: f64,
    pub wakeups: u64,
    /// Runs of the fast path programs during the load, and their total nanoseconds.
    pub program_runs: u64,
    pub program_ns: u64,
    pub seconds: f64,
}

/// Runs an iperf3 client in `cli` against a one-shot server in `spk` for `secs`
/// seconds with `client_args`, measuring the responder meanwhile.
pub fn iperf3(
    name: &'static str,
    cli: &str,
    spk: &str,
    server_addr: &str,
    client_args: &[&str],
    secs: u32,
    exclude: &BTreeSet<i32>,
) -> Option<Load> {
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            spk,
            "iperf3",
            "-s",
            "-1",
            "-p",
            "5201",
            "-B",
            server_addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let (cpu0, runs0) = responder_cpu(exclude);
    let (prog_ns0, prog_runs0) = program_runs();
    let start = Instant::now();
    let t = secs.to_string();
    let mut args = vec![
        "netns",
        "exec",
        cli,
        "iperf3",
        "-c",
        server_addr,
        "-p",
        "5201",
        "-t",
        &t,
        "-f",
        "m",
    ];
    args.extend_from_slice(client_args);
    let out = Command::new("ip").args(&args).output().ok();
    let seconds = start.elapsed().as_secs_f64();
    let (cpu1, runs1) = responder_cpu(exclude);
    let (prog_ns1, prog_runs1) = program_runs();
    // `ip netns exec` execs iperf3, so this PID is the server's; it exits after one
    // client, and is stopped by its PID if it did not.
    if server.try_wait().ok().flatten().is_none() {
        let _ = Command::new("kill").arg(server.id().to_string()).status();
    }
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out?.stdout).into_owned();
    let mbit_per_s = text
        .lines()
        .filter(|l| l.contains("receiver"))
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "Mbits/sec")?;
            words.get(at.checked_sub(1)?)?.parse().ok()
        })
        .unwrap_or(f64::NAN);
    Some(Load {
        name,
        mbit_per_s,
        cpu_percent: 100.0 * (cpu1 - cpu0) as f64 / (seconds * 1e9),
        wakeups: runs1 - runs0,
        program_runs: prog_runs1 - prog_runs0,
        program_ns: prog_ns1 - prog_ns0,
        seconds,
    })
}

/// Turns kernel.bpf_stats_enabled on while alive (restoring the old value on drop),
/// so the kernel times every run of a BPF program (two clock reads per run).
pub struct BpfStats {
    old: Option<String>,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn enable() -> BpfStats {
        let old = std::fs::read_to_string(BPF_STATS).ok();
        let _ = std::fs::write(BPF_STATS, "1");
        BpfStats { old }
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write(BPF_STATS, old.trim());
        }
    }
}

/// (nanoseconds, runs) of every BPF program this process holds open (the fast path
/// programs), from /proc/self/fdinfo; zero while bpf_stats is off.
pub fn program_runs() -> (u64, u64) {
    let mut ns = 0;
    let mut runs = 0;
    let Ok(fds) = std::fs::read_dir("/proc/self/fdinfo") else {
        return (0, 0);
    };
    for fd in fds.flatten() {
        let Ok(text) = std::fs::read_to_string(fd.path()) else {
            continue;
        };
        if !text.contains("prog_tag:") {
            continue;
        }
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        ns += field("run_time_ns:");
        runs += field("run_cnt:");
    }
    (ns, runs)
}
