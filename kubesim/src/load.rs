//! A watch load run against a kubesim, shared by the soak test and the `watch` bench:
//! N ConfigMaps, W watchers (kube-rs watch streams that resume from their last RV when a stream
//! ends, as real clients do) and a writer patching objects at a target rate for a while. Reports
//! what every watcher saw against what was written (missed, reordered or unexpected events) and
//! the fan-out latency from a write's start to each watcher's receipt.
//!
//! The checks are exact; nothing here asserts on time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use super::KubeSim;
use super::fixtures::FixtureError;

/// The size of a run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub objects: usize,
    pub watchers: usize,
    pub writes_per_sec: u32,
    pub duration: Duration,
    /// How many writes may be in flight at once.
    pub concurrent_writes: usize,
    /// How long watchers may take to catch up after the last write.
    pub drain_limit: Duration,
}

/// What a run did and saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub writes: usize,
    pub write_errors: usize,
    /// Achieved writes per second over the write phase.
    pub writes_per_sec: f64,
    /// Per watcher: events expected but never seen.
    pub missed: Vec<usize>,
    /// Per watcher: events seen out of RV order.
    pub reordered: Vec<usize>,
    /// Per watcher: events seen that no write produced.
    pub unexpected: Vec<usize>,
    /// How many times watch streams ended and were resumed, over all watchers.
    pub resumes: usize,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
}

impl LoadReport {
    /// True when every watcher saw exactly the writes, in order.
    pub fn is_exact(&self) -> bool {
        self.missed
            .iter()
            .chain(&self.reordered)
            .chain(&self.unexpected)
            .all(|n| *n == 0)
    }
}

/// A log-scale latency histogram: bucket `i` holds latencies near `e^(i/100)` µs (1% wide).
#[derive(Debug, Clone)]
struct Histogram(Vec<u64>);

impl Histogram {
    const BUCKETS: usize = 2400;

    fn new() -> Self {
        Self(vec![0; Self::BUCKETS])
    }

    fn record(&mut self, latency: Duration) {
        let micros = latency.as_micros() as f64 + 1.0;
        let index = (micros.ln() * 100.0) as usize;
        if let Some(bucket) = self.0.get_mut(index.min(Self::BUCKETS - 1)) {
            *bucket += 1;
        }
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        let total: u64 = self.0.iter().sum();
        let wanted = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.0.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                let micros = ((index as f64 + 1.0) / 100.0).exp() - 1.0;
                return Duration::from_micros(micros as u64);
            }
        }
        Duration::ZERO
    }
}

/// When write number `i` (the value it writes to `data.v`) started, for latency at receipt.
type Starts = Arc<Vec<OnceLock<Instant>>>;

/// The resourceVersion of each completed write, mapped to its write number.
type Written = Arc<Mutex<HashMap<u64, usize>>>;

/// What one watcher saw: the RVs in arrival order (8 bytes an event, so long runs stay small)
/// and its latency histogram.
#[derive(Debug, Default)]
struct Seen {
    rvs: Vec<u64>,
    latencies: Option<Histogram>,
}

async fn watcher(
    api: Api<ConfigMap>,
    start_rv: u64,
    starts: Starts,
    mut until: watch::Receiver<u64>,
) -> (Seen, usize) {
    let mut last_rv = start_rv;
    let mut seen = Seen {
        rvs: Vec::new(),
        latencies: Some(Histogram::new()),
    };
    let mut resumes = 0;
    loop {
        let target = *until.borrow();
        if target != 0 && last_rv >= target {
            return (seen, resumes);
        }
        let params = WatchParams::default().timeout(290).disable_bookmarks();
        let stream = match api.watch(&params, &last_rv.to_string()).await {
            Ok(stream) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut stream = Box::pin(stream);
        loop {
            let next = tokio::select! {
                next = stream.try_next() => next,
                _ = until.changed() => {
                    let target = *until.borrow();
                    if last_rv >= target { return (seen, resumes); }
                    continue;
                }
            };
            match next {
                Ok(Some(WatchEvent::Modified(cm) | WatchEvent::Added(cm))) => {
                    let rv = cm
                        .metadata
                        .resource_version
                        .as_deref()
                        .and_then(|rv| rv.parse().ok())
                        .unwrap_or(0);
                    last_rv = last_rv.max(rv);
                    seen.rvs.push(rv);
                    let started = cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get("v"))
                        .and_then(|v| v.parse::<usize>().ok())
                        .and_then(|i| starts.get(i))
                        .and_then(OnceLock::get);
                    if let (Some(started), Some(histogram)) = (started, seen.latencies.as_mut()) {
                        histogram.record(started.elapsed());
                    }
                    let target = *until.borrow();
                    if target != 0 && last_rv >= target {
                        return (seen, resumes);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        resumes += 1;
    }
}

/// Runs the load on `sim` (which should have an event window larger than the writes, so that
/// resumed watches never need a re-list).
pub async fn run(sim: &KubeSim, config: &LoadConfig) -> Result<LoadReport, FixtureError> {
    for i in 0..config.objects {
        sim.create_object(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:05}"), "namespace": "default"},
            "data": {"v": "0"},
        }))?;
    }
    let start_rv = sim.resource_version();
    let planned =
        (f64::from(config.writes_per_sec) * config.duration.as_secs_f64() * 1.5) as usize + 16;
    let starts: Starts = Arc::new((0..planned).map(|_| OnceLock::new()).collect());
    let (until_tx, until_rx) = watch::channel(0u64);
    let watchers: Vec<_> = (0..config.watchers)
        .map(|_| {
            let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
            tokio::spawn(watcher(
                api,
                start_rv,
                Arc::clone(&starts),
                until_rx.clone(),
            ))
        })
        .collect();
    // Let every watch open before writing, so latency measures fan-out, not connection setup.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = write(sim, config, planned, &starts).await;
    let _ = until_tx.send(sim.resource_version());
    let mut report = LoadReport {
        writes: writes.written.len(),
        write_errors: writes.errors,
        writes_per_sec: writes.written.len() as f64 / writes.secs,
        ..LoadReport::default()
    };
    let deadline = tokio::time::Instant::now() + config.drain_limit;
    collect(&mut report, watchers, &writes.written, deadline).await;
    Ok(report)
}

/// What the write phase did.
struct Writes {
    /// resourceVersion -> write number, of every write that succeeded.
    written: HashMap<u64, usize>,
    errors: usize,
    secs: f64,
}

/// Patches the ConfigMaps round-robin at the configured rate for the configured time.
async fn write(sim: &KubeSim, config: &LoadConfig, planned: usize, starts: &Starts) -> Writes {
    let written: Written = Arc::default();
    let errors = Arc::new(Mutex::new(0usize));
    let permits = Arc::new(Semaphore::new(config.concurrent_writes.max(1)));
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.writes_per_sec.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    let mut issued = 0usize;
    let mut tasks = Vec::new();
    while began.elapsed() < config.duration && issued + 1 < planned {
        ticker.tick().await;
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let name = format!("cm-{:05}", issued % config.objects.max(1));
        issued += 1;
        let number = issued;
        let (api, written, errors) = (api.clone(), Arc::clone(&written), Arc::clone(&errors));
        let starts = Arc::clone(starts);
        tasks.push(tokio::spawn(async move {
            if let Some(slot) = starts.get(number) {
                let _ = slot.set(Instant::now());
            }
            let patch = Patch::Merge(json!({"data": {"v": number.to_string()}}));
            match api.patch(&name, &PatchParams::default(), &patch).await {
                Ok(cm) => {
                    let rv = cm
                        .metadata
                        .resource_version
                        .as_deref()
                        .and_then(|rv| rv.parse().ok())
                        .unwrap_or(0);
                    written
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(rv, number);
                }
                Err(_) => *errors.lock().unwrap_or_else(|e| e.into_inner()) += 1,
            }
            drop(permit);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let secs = began.elapsed().as_secs_f64();
    let written = std::mem::take(&mut *written.lock().unwrap_or_else(|e| e.into_inner()));
    let errors = *errors.lock().unwrap_or_else(|e| e.into_inner());
    Writes {
        written,
        errors,
        secs,
    }
}

/// Waits (until `deadline`) for each watcher and adds what it saw to the report: events missed,
/// reordered or unexpected, resumes, latencies.
async fn collect(
    report: &mut LoadReport,
    watchers: Vec<tokio::task::JoinHandle<(Seen, usize)>>,
    written: &HashMap<u64, usize>,
    deadline: tokio::time::Instant,
) {
    let mut expected: Vec<u64> = written.keys().copied().collect();
    expected.sort_unstable();
    let mut histogram = Histogram::new();
    for mut task in watchers {
        let (seen, resumes) = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(result)) => result,
            _ => {
                task.abort();
                (Seen::default(), 0)
            }
        };
        report.resumes += resumes;
        let (mut reordered, mut unexpected, mut last) = (0, 0, 0);
        for rv in &seen.rvs {
            if *rv <= last {
                reordered += 1;
            }
            last = last.max(*rv);
            if !written.contains_key(rv) {
                unexpected += 1;
            }
        }
        let mut seen_rvs = seen.rvs;
        seen_rvs.sort_unstable();
        seen_rvs.dedup();
        let missed = expected
            .iter()
            .filter(|rv| seen_rvs.binary_search(rv).is_err())
            .count();
        report.missed.push(missed);
        report.reordered.push(reordered);
        report.unexpected.push(unexpected);
        if let Some(own) = &seen.latencies {
            histogram.merge(own);
        }
    }
    report.latency_p50 = histogram.quantile(0.50);
    report.latency_p99 = histogram.quantile(0.99);
    report.latency_max = histogram.quantile(1.0);
}
