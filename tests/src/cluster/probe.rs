//! A client that probes a Service every few milliseconds from inside a lab host and records who
//! answered, so a failover gap is measured the way a user feels it: requests that got no answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use ferrolb_netlab::netns::spawn_in;

/// One probe: when it was sent, and the node that answered (the HTTP body), if any did.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Send time.
    pub sent: Instant,
    /// The answering node's name.
    pub answered_by: Option<String>,
}

/// A running prober.
#[derive(Debug)]
pub struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<Vec<Probe>>>,
}

impl Prober {
    /// Starts probing `target` (HTTP GET) every `every` from namespace `ns`; a probe that gets no
    /// answer within `timeout` counts as lost.
    pub fn start(ns: &str, target: SocketAddr, every: Duration, timeout: Duration) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = spawn_in(ns, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(target, every, timeout, flag))
        });
        let thread = std::thread::spawn(move || {
            thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("prober panicked")))?
        });
        Prober { stop, thread }
    }

    /// Stops and returns every probe, in send order.
    pub fn finish(self) -> Vec<Probe> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

async fn run(
    target: SocketAddr,
    every: Duration,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<Probe>> {
    let mut tasks = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = Instant::now();
        tasks.push(tokio::spawn(async move {
            let answered_by = tokio::time::timeout(timeout, get(target))
                .await
                .ok()
                .flatten();
            Probe { sent, answered_by }
        }));
    }
    let mut probes = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(probe) = task.await {
            probes.push(probe);
        }
    }
    Ok(probes)
}

/// `GET /` over HTTP/1.0; the body's last line.
async fn get(target: SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(target).await.ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split("\r\n\r\n").nth(1)?;
    body.lines()
        .last()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// The gap after `failure`: from `failure` to the send time of the first probe answered by a
/// node other than `old_owner`. `None` when no probe after it was answered by another node.
pub fn gap(probes: &[Probe], failure: Instant, old_owner: &str) -> Option<Duration> {
    probes
        .iter()
        .filter(|p| p.sent >= failure)
        .find(|p| p.answered_by.as_deref().is_some_and(|n| n != old_owner))
        .map(|p| p.sent.duration_since(failure))
}

/// Probes sent after `from` that got no answer.
pub fn lost_after(probes: &[Probe], from: Instant) -> usize {
    probes
        .iter()
        .filter(|p| p.sent >= from && p.answered_by.is_none())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_ends_with_the_first_answer_from_another_node() {
        let t0 = Instant::now();
        let at = |ms: u64, who: Option<&str>| Probe {
            sent: t0 + Duration::from_millis(ms),
            answered_by: who.map(str::to_owned),
        };
        let probes = vec![
            at(0, Some("a")),
            at(10, None),
            at(20, Some("a")),
            at(30, None),
            at(40, Some("b")),
            at(50, Some("b")),
        ];
        let failure = t0 + Duration::from_millis(15);
        assert_eq!(gap(&probes, failure, "a"), Some(Duration::from_millis(25)));
        assert_eq!(lost_after(&probes, failure), 1);
        assert_eq!(
            gap(&probes[..4], failure, "a"),
            None,
            "answers from the old owner do not end the gap"
        );
    }
}
