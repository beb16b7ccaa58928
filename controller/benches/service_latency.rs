//! The real controller binary against kubesim: Service create → EXTERNAL-IP visible in status
//! at a steady create rate (p50/p99/max), then the controller's peak RSS (VmHWM of its process)
//! once it holds 10k and 100k Services. Prints figures; run with
//! `cargo bench -p ferrolb-controller --bench service_latency`.
//! Knobs: `FERROLB_BENCH_RATE` (creates/s, 500), `FERROLB_BENCH_CREATES` (2000),
//! `FERROLB_BENCH_SCALE` (comma-separated totals, `10000,100000`).
//!
//! The addresses are bookkeeping only (nothing is announced), so the pool is a private /14,
//! large enough for 100k Services.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_kubesim::{KubeSim, Options};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::time::Instant;

const NS: &str = "bench";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn service(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": name}}
    })
}

/// A field of /proc/PID/status, e.g. `VmHWM` → `123456 kB`.
fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// When each Service was first seen with an ingress IP, fed by a watch.
#[derive(Default)]
struct Seen {
    at: HashMap<String, Instant>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn wait_for_count(seen: &Mutex<Seen>, want: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let have = seen.lock().map(|s| s.at.len()).unwrap_or(0);
        if have >= want {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("only {have} of {want} Services got an IP within {limit:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let rate: u64 = env_or("FERROLB_BENCH_RATE", 500);
    let creates: usize = env_or("FERROLB_BENCH_CREATES", 2000);
    let scale: Vec<usize> = std::env::var("FERROLB_BENCH_SCALE")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sim = KubeSim::start_with(Options {
            event_window: 400_000,
            ..Options::default()
        })
        .await?;
        sim.create_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds"))?;
        for namespace in ["ferrolb-system", NS] {
            sim.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))?;
        }
        sim.create_object(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "bench", "namespace": "ferrolb-system"},
            "spec": {"addresses": ["10.0.0.0/14"]}
        }))?;
        let controller = Controller(
            Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
                .args(["run", "--namespace", "ferrolb-system", "--disable-webhook"])
                .args(["--metrics-addr", "127.0.0.1:0"])
                .env("KUBECONFIG", sim.kubeconfig_path())
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()?,
        );
        let pid = controller.0.id();

        let seen = Arc::new(Mutex::new(Seen::default()));
        let services: Api<Service> = Api::namespaced(sim.client(), NS);
        let watch_seen = Arc::clone(&seen);
        tokio::spawn(
            watcher(services.clone(), watcher::Config::default())
                .applied_objects()
                .for_each(move |service| {
                    if let Ok(service) = service {
                        let has_ip = service
                            .status
                            .as_ref()
                            .and_then(|s| s.load_balancer.as_ref())
                            .and_then(|lb| lb.ingress.as_ref())
                            .is_some_and(|i| !i.is_empty());
                        if has_ip && let Ok(mut seen) = watch_seen.lock() {
                            let now = Instant::now();
                            seen.at
                                .entry(service.metadata.name.unwrap_or_default())
                                .or_insert(now);
                        }
                    }
                    futures::future::ready(())
                }),
        );

        // Warm up: the controller has synced and leads once one Service has its IP.
        let warm: Service = serde_json::from_value(service("warm-up"))?;
        services.create(&PostParams::default(), &warm).await?;
        if !wait_for_count(&seen, 1, Duration::from_secs(30)).await {
            anyhow::bail!("the controller never allocated");
        }

        // Latency at a steady rate: one create every 1/rate s, each on its own task so a slow
        // answer does not slow the schedule.
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(creates);
        for i in 0..creates {
            ticker.tick().await;
            let name = format!("lat-{i:05}");
            let services = services.clone();
            let sent = Arc::clone(&sent);
            let object: Service = serde_json::from_value(service(&name))?;
            tasks.push(tokio::spawn(async move {
                if let Ok(mut sent) = sent.lock() {
                    sent.insert(name, Instant::now());
                }
                services.create(&PostParams::default(), &object).await.map(|_| ())
            }));
        }
        let offered = creates as f64 / started.elapsed().as_secs_f64();
        for task in tasks {
            task.await??;
        }
        wait_for_count(&seen, creates + 1, Duration::from_secs(60)).await;
        let mut latencies: Vec<Duration> = {
            let sent = sent.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            sent.iter()
                .filter_map(|(name, at)| seen.at.get(name).map(|s| s.duration_since(*at)))
                .collect()
        };
        latencies.sort();
        println!(
            "create → EXTERNAL-IP: {} Services at {offered:.0} creates/s offered ({rate} asked): \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} without an IP)",
            latencies.len(),
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            creates - latencies.len(),
        );
        println!(
            "controller after {} Services: VmHWM {}, VmRSS {}",
            creates + 1,
            proc_status(pid, "VmHWM"),
            proc_status(pid, "VmRSS")
        );

        // Scale: Services created straight in kubesim's store (no HTTP on the bench's side),
        // then the controller's peak RSS once every one has an IP.
        let mut total = creates + 1;
        let mut n = 0;
        for target in scale {
            let start = Instant::now();
            while total < target {
                sim.create_object(service(&format!("scale-{n:06}")))?;
                total += 1;
                n += 1;
                if n % 500 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            let limit = Duration::from_secs(600);
            let done = wait_for_count(&seen, total, limit).await;
            println!(
                "controller holding {total} Services{}: VmHWM {}, VmRSS {} ({:.1} s to allocate all)",
                if done { "" } else { " (NOT all allocated)" },
                proc_status(pid, "VmHWM"),
                proc_status(pid, "VmRSS"),
                start.elapsed().as_secs_f64()
            );
        }
        drop(controller);
        anyhow::Ok(())
    })
}
