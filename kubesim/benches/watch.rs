//! Watch fan-out benchmark: 10 000 ConfigMaps, 100 watchers, a writer aiming at 1 000 patches a
//! second for 60 s (`KUBESIM_BENCH_SECS` to change). Prints achieved writes/s, fan-out latency
//! (write start → watcher receipt) p50/p99/max, and peak RSS (VmHWM). Run with
//! `cargo bench -p ferrolb-kubesim --bench watch`.

use std::time::Duration;

use ferrolb_kubesim::load::{self, LoadConfig};
use ferrolb_kubesim::{KubeSim, Options};

/// Peak resident set size from /proc/self/status, as written there (e.g. `123456 kB`).
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("KUBESIM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = Options {
            event_window: 200_000,
            ..Options::default()
        };
        let sim = KubeSim::start_with(options).await?;
        let config = LoadConfig {
            objects: 10_000,
            watchers: 100,
            writes_per_sec: 1_000,
            duration: Duration::from_secs(secs),
            concurrent_writes: 32,
            drain_limit: Duration::from_secs(600),
        };
        let report = load::run(&sim, &config).await?;
        println!(
            "kubesim watch bench: {} objects, {} watchers, {secs} s of writes",
            config.objects, config.watchers
        );
        println!(
            "writes: {} ({:.0}/s achieved, target {}/s), errors {}",
            report.writes, report.writes_per_sec, config.writes_per_sec, report.write_errors
        );
        println!(
            "fan-out latency: p50 {:?}, p99 {:?}, max {:?}",
            report.latency_p50, report.latency_p99, report.latency_max
        );
        println!(
            "watch resumes: {}; exact delivery: {}",
            report.resumes,
            report.is_exact()
        );
        println!("peak RSS (VmHWM): {}", peak_rss());
        anyhow::Ok(())
    })
}
