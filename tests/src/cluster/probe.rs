//! A client that probes a Service every few milliseconds from inside a lab host and records who
//! answered, so a failover gap is measured the way a user feels it: requests that got no answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Every probe answered or given up on so far, in the order they ended.
    done: Arc<Mutex<Vec<Probe>>>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Prober {
    /// Starts probing `target` (HTTP GET) every `every` from namespace `ns`; a probe that gets no
    /// answer within `timeout` counts as lost.
    pub fn start(ns: &str, target: SocketAddr, every: Duration, timeout: Duration) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (stop.clone(), done.clone());
        let thread = spawn_in(ns, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(target, every, timeout, flag, sink));
            Ok(())
        });
        let thread = std::thread::spawn(move || {
            thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("prober panicked")))?
        });
        Prober { stop, done, thread }
    }

    /// The probes that have ended so far (answered or timed out), in send order.
    pub fn so_far(&self) -> Vec<Probe> {
        sorted(self.done.lock().map(|d| d.clone()).unwrap_or_default())
    }

    /// Stops and returns every probe, in send order.
    pub fn finish(self) -> Vec<Probe> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let done = std::mem::take(&mut *self.done.lock().unwrap_or_else(|e| e.into_inner()));
        sorted(done)
    }
}

fn sorted(mut probes: Vec<Probe>) -> Vec<Probe> {
    probes.sort_by_key(|p| p.sent);
    probes
}

async fn run(
    target: SocketAddr,
    every: Duration,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<Probe>>>,
) {
    let mut tasks = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = Instant::now();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let answered_by = tokio::time::timeout(timeout, get(target))
                .await
                .ok()
                .flatten();
            let probe = Probe { sent, answered_by };
            done.lock().unwrap_or_else(|e| e.into_inner()).push(probe);
        }));
        tasks.retain(|t| !t.is_finished());
    }
    for task in tasks {
        let _ = task.await;
    }
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

/// The longest stretch, among the probes sent in `[from, to)`, during which no probe was
/// answered: from the send time of a lost probe to the send time of the next answered one (or
/// to `to`, when none was). Zero when none was lost. Pure.
pub fn longest_outage(probes: &[Probe], from: Instant, to: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    let mut lost_since: Option<Instant> = None;
    for probe in probes.iter().filter(|p| p.sent >= from && p.sent < to) {
        match (&probe.answered_by, lost_since) {
            (None, None) => lost_since = Some(probe.sent),
            (Some(_), Some(since)) => {
                longest = longest.max(probe.sent - since);
                lost_since = None;
            }
            _ => {}
        }
    }
    if let Some(since) = lost_since {
        longest = longest.max(to.saturating_duration_since(since));
    }
    longest
}

/// The nodes that answered the probes sent in `[from, to)`, in turn: each change of the
/// answering node starts a new entry. Pure.
pub fn served_by(probes: &[Probe], from: Instant, to: Instant) -> Vec<String> {
    let mut turns: Vec<String> = Vec::new();
    let answers = probes
        .iter()
        .filter(|p| p.sent >= from && p.sent < to)
        .filter_map(|p| p.answered_by.as_deref());
    for node in answers {
        if turns.last().map(String::as_str) != Some(node) {
            turns.push(node.to_owned());
        }
    }
    turns
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

    #[test]
    fn the_longest_outage_runs_from_a_lost_probe_to_the_next_answer_inside_the_window() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let at = |n: u64, answered: bool| Probe {
            sent: ms(n),
            answered_by: answered.then(|| "a".to_owned()),
        };
        let probes = vec![
            at(0, false),
            at(10, true),
            at(20, false),
            at(30, false),
            at(40, false),
            at(50, true),
            at(60, false),
            at(70, true),
        ];
        assert_eq!(
            longest_outage(&probes, ms(0), ms(100)),
            Duration::from_millis(30)
        );
        assert_eq!(
            longest_outage(&probes, ms(5), ms(100)),
            Duration::from_millis(30)
        );
        assert_eq!(
            longest_outage(&probes, ms(55), ms(65)),
            Duration::from_millis(5),
            "a loss not followed by an answer inside the window lasts until its end"
        );
        assert_eq!(
            longest_outage(&probes[..2], ms(10), ms(100)),
            Duration::ZERO
        );
    }

    #[test]
    fn the_answering_nodes_are_listed_in_turn() {
        let t0 = Instant::now();
        let at = |ms: u64, who: Option<&str>| Probe {
            sent: t0 + Duration::from_millis(ms),
            answered_by: who.map(str::to_owned),
        };
        let probes = vec![
            at(0, Some("a")),
            at(10, Some("a")),
            at(20, None),
            at(30, Some("b")),
            at(40, Some("a")),
            at(50, Some("c")),
        ];
        let to = t0 + Duration::from_millis(45);
        assert_eq!(served_by(&probes, t0, to), vec!["a", "b", "a"]);
    }
}
