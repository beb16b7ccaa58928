//! The reader thread of one interface: answers ARP requests and neighbour
//! solicitations as they arrive, off the tokio runtime.
//!
//! ```text
//!   poll(ARP socket, NDP socket, stop pipe) ──► recvmmsg (≤ 64 frames, no wait)
//!        ▲                                        │ decide each (announced set, MAC)
//!        └──── queue drained ◄── sendmmsg replies ◄┘  count in InterfaceCounters
//! ```
//! A dedicated thread because a question's latency is then one wakeup of this
//! thread, not a reactor wakeup plus a task hop that waits behind whatever else the
//! runtime runs. It blocks in poll(2) between bursts, so it costs nothing while no
//! question passes the sockets' BPF filters. Dropping the `Reader` closes the stop
//! pipe and joins the thread. It decides nothing itself: `decide` does.
//!
//! Priority: the kernel answers its own addresses in softirq, ahead of every task; a
//! user-space thread at the default weight waits behind the runnable tasks of a busy
//! node, which put milliseconds into the reply tail. So the thread asks for nice
//! `READER_NICE` (the largest fair-share weight; needs CAP_SYS_NICE, else it keeps
//! the default and says so) and the shortest slice, `READER_SLICE`, which lets its
//! wakeup preempt a running task on Linux 6.12+ (EEVDF otherwise lets the running
//! task finish its slice). Measured with the bench under load, SCHED_FIFO did no
//! better. It stays in the fair class on purpose: under an ARP flood a real-time
//! thread could take a CPU from everything else on the node.

use std::collections::BTreeSet;
use std::io::{self, PipeReader, PipeWriter};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::addr::MacAddr;
use super::counters::InterfaceCounters;
use super::decide::decide;
use super::heartbeat::Heartbeat;
use super::socket::{PacketSocket, RecvBatch};
use super::sys;
use super::verdict::{DropReason, Verdict};

/// Nice value of the reader thread (-20: highest weight in the fair class).
const READER_NICE: i32 = -20;
/// Slice of the reader thread: the shortest Linux allows, so that its wakeups
/// preempt tasks running their default (3 ms) slices.
const READER_SLICE: Duration = Duration::from_micros(100);

/// Handle to a running reader thread.
#[derive(Debug)]
pub(crate) struct Reader {
    /// Dropped to stop the thread (its poll sees the pipe hang up).
    stop: Option<PipeWriter>,
    thread: Option<JoinHandle<()>>,
}

/// What the thread needs, moved into it.
struct Serve {
    interface: String,
    /// ARP socket, NDP socket.
    sockets: [Arc<PacketSocket>; 2],
    mac: MacAddr,
    /// The addresses answered on this interface, replaced by the driver.
    announced: watch::Receiver<Arc<BTreeSet<IpAddr>>>,
    counters: Arc<InterfaceCounters>,
    /// Questions are answered only while it is fresh.
    heartbeat: Heartbeat,
}

impl Reader {
    /// Starts answering on `arp` and `ndp` for the addresses in `announced`.
    pub(crate) fn spawn(
        interface: &str,
        arp: Arc<PacketSocket>,
        ndp: Arc<PacketSocket>,
        mac: MacAddr,
        announced: watch::Receiver<Arc<BTreeSet<IpAddr>>>,
        counters: Arc<InterfaceCounters>,
        heartbeat: Heartbeat,
    ) -> io::Result<Reader> {
        let (stop_rx, stop_tx) = io::pipe()?;
        let serve = Serve {
            interface: interface.to_owned(),
            sockets: [arp, ndp],
            mac,
            announced,
            counters,
            heartbeat,
        };
        let thread = std::thread::Builder::new()
            .name(format!("l2-{interface}"))
            .spawn(move || serve.run(&stop_rx))?;
        Ok(Reader {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Serve {
    fn run(self, stop: &PipeReader) {
        if let Err(e) = sys::set_thread_latency(READER_NICE, READER_SLICE) {
            // Without CAP_SYS_NICE keep the default weight but still ask for the slice.
            let fallback = sys::set_thread_latency(0, READER_SLICE);
            tracing::info!(interface = %self.interface, error = %e, short_slice = fallback.is_ok(),
                "l2 reader thread keeps the default weight (no CAP_SYS_NICE); replies may wait behind busy tasks");
        }
        let mut batch = RecvBatch::new();
        let mut replies = Vec::with_capacity(RecvBatch::CAPACITY);
        let [arp, ndp] = &self.sockets;
        let mut ready = [false; 3];
        loop {
            let fds = [arp.as_fd(), ndp.as_fd(), stop.as_fd()];
            if let Err(e) = sys::poll_readable(fds, None, &mut ready) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(interface = %self.interface, error = %e, "l2 poll failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            let [arp_ready, ndp_ready, stopped] = ready;
            if stopped {
                return;
            }
            for (socket, is_ready) in [(arp, arp_ready), (ndp, ndp_ready)] {
                if is_ready {
                    self.drain(socket, &mut batch, &mut replies);
                }
            }
        }
    }

    /// Answers what is queued on `socket`, a batch at a time, until a batch comes
    /// back short (the queue is then empty or nearly so; poll tells the rest).
    fn drain(&self, socket: &PacketSocket, batch: &mut RecvBatch, replies: &mut Vec<Vec<u8>>) {
        let family = socket.family();
        let c = self.counters.family(family);
        loop {
            let filled = match socket.recv_batch(batch) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The error is consumed by the read (a link going down reports
                    // ENETDOWN once); link events re-open the sockets if needed.
                    tracing::warn!(interface = %self.interface, %family, error = %e, "l2 receive failed");
                    return;
                }
            };
            let announced = Arc::clone(&self.announced.borrow());
            let is_fresh = self.heartbeat.is_fresh();
            let mut seen = 0;
            for frame in batch.frames() {
                seen += 1;
                if !is_fresh {
                    c.dropped(DropReason::SpeakerStalled);
                    continue;
                }
                match decide(frame, self.mac, &*announced) {
                    Verdict::Reply(reply) => replies.push(reply),
                    Verdict::Drop(reason) => c.dropped(reason),
                }
            }
            c.saw_requests(seen);
            if !replies.is_empty() {
                let (sent, error) = socket.send_batch(replies);
                c.sent_replies(sent as u64);
                if let Some(e) = error {
                    for _ in sent..replies.len() {
                        c.send_failed();
                    }
                    tracing::warn!(interface = %self.interface, %family, error = %e,
                        unsent = replies.len() - sent, "l2 replies not sent");
                }
                replies.clear();
            }
            if filled < RecvBatch::CAPACITY {
                return;
            }
        }
    }
}
