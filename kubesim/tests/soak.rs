//! Watch soak: 10 000 ConfigMaps, 100 concurrent watchers and about 1 000 writes a second for a
//! bounded time; every watcher must see every write exactly once and in resourceVersion order
//! (resuming from its last RV when a stream ends). No timing assertions: the figures are the job
//! of `cargo bench -p ferrolb-kubesim --bench watch`. `KUBESIM_SOAK_SECS` changes the write phase
//! (default 10 s).

use std::time::Duration;

use ferrolb_kubesim::load::{self, LoadConfig};
use ferrolb_kubesim::{KubeSim, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watcher_misses_or_reorders_an_event_under_load() {
    let secs: u64 = std::env::var("KUBESIM_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let options = Options {
        event_window: 100_000,
        ..Options::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kubesim starts");
    let config = LoadConfig {
        objects: 10_000,
        watchers: 100,
        writes_per_sec: 1_000,
        duration: Duration::from_secs(secs),
        concurrent_writes: 32,
        drain_limit: Duration::from_secs(300),
    };
    let report = load::run(&sim, &config).await.expect("the load runs");
    eprintln!(
        "soak: {} writes ({:.0}/s), {} resumes, fan-out p50 {:?} p99 {:?}",
        report.writes,
        report.writes_per_sec,
        report.resumes,
        report.latency_p50,
        report.latency_p99
    );
    assert_eq!(report.write_errors, 0);
    assert!(report.writes > 0);
    assert_eq!(report.missed.len(), config.watchers);
    assert!(
        report.is_exact(),
        "missed {:?}\nreordered {:?}\nunexpected {:?}",
        report.missed,
        report.reordered,
        report.unexpected
    );
}
