//! One TCP connection of a peer task: dialling, the reader task (framing, with backpressure),
//! and the writer task behind a byte-capped queue.
//!
//! ```text
//!   socket ──read──▶ reader ──ConnEvent (bounded: a full channel stops the reading, and TCP
//!                                        flow control stops the peer)──▶ peer task
//!   peer task ──WriteQueue::push_*──▶ writer ──write (joined batches)──▶ socket
//!                 bytes counted; a batch over the limit is refused (the session then resets)
//! ```
//!
//! Closing: the peer task drops the [`Conn`]; its writer then has [`CLOSE_GRACE`] to hand what
//! is queued (a last NOTIFICATION) to a peer that reads, and otherwise closes with RST so that
//! a peer that stopped reading holds no buffers of ours.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::fsm::ConnId;
use super::super::md5;
use super::super::packet::{FrameError, split_frame};
use super::super::sockopt::{set_min_ttl, set_reset_on_close, set_ttl};
use super::config::PeerConfig;
use super::stats::PeerStats;
use crate::time::sleep_until;

/// Frames a reader may have handed over and the peer task not yet taken: at most this many
/// messages (64 KiB each at worst) wait in memory; then the reader stops reading.
pub(super) const READ_QUEUE: usize = 32;

/// How long a closed connection's writer may still take to deliver what was queued.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Most bytes one write takes from the queue: a table of UPDATEs leaves in a few large
/// writes, not one syscall per message (424 writes for 100k IPv6 routes doubled the time
/// BIRD took to hold them all).
pub(super) const WRITE_BATCH: usize = 256 * 1024;

/// What the per-connection and dial tasks report.
#[derive(Debug)]
pub(super) enum ConnEvent {
    Dialed(u64, std::io::Result<TcpStream>),
    Frame(ConnId, Bytes),
    BadFrame(ConnId, FrameError),
    Closed(ConnId),
}

/// Counts shared by a queue's two ends.
#[derive(Debug, Default)]
struct QueueCounts {
    /// Bytes pushed and not yet taken by the writer.
    bytes: AtomicUsize,
    /// Messages the writer has taken, ever.
    taken: AtomicU64,
}

/// A batch of UPDATEs did not fit under the queue's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Overflow {
    /// Bytes already queued.
    pub(super) queued: usize,
    /// The refused batch.
    pub(super) batch: usize,
}

/// The peer task's end of one connection's writer queue.
#[derive(Debug)]
pub(super) struct WriteQueue {
    tx: mpsc::UnboundedSender<Bytes>,
    counts: Arc<QueueCounts>,
    stats: Arc<PeerStats>,
    /// Messages pushed, ever; with `taken` it says whether a given message has left.
    pushed: u64,
    limit: usize,
}

impl WriteQueue {
    /// OPEN, KEEPALIVE, NOTIFICATION: small, at most one per second or per connection, so
    /// always admitted.
    pub(super) fn push_control(&mut self, message: Bytes) {
        self.push(message);
    }

    /// A batch of UPDATEs, all or nothing: refused when it would take the queue over its
    /// limit.
    pub(super) fn push_updates(&mut self, batch: Vec<Bytes>) -> Result<(), Overflow> {
        let len: usize = batch.iter().map(Bytes::len).sum();
        let queued = self.counts.bytes.load(Ordering::Relaxed);
        if queued.saturating_add(len) > self.limit {
            return Err(Overflow { queued, batch: len });
        }
        for message in batch {
            self.push(message);
        }
        Ok(())
    }

    fn push(&mut self, message: Bytes) {
        let len = message.len();
        // Counted before it can be taken, so that the writer never subtracts first.
        self.counts.bytes.fetch_add(len, Ordering::Relaxed);
        self.stats.queued(len);
        if self.tx.send(message).is_ok() {
            self.pushed += 1;
        } else {
            self.counts.bytes.fetch_sub(len, Ordering::Relaxed);
            self.stats.unqueued(len);
        }
    }

    /// Messages pushed so far: the sequence number the next message gets.
    pub(super) fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Whether the message with sequence number `seq` is still in the queue (not yet taken).
    pub(super) fn is_waiting(&self, seq: u64) -> bool {
        seq < self.pushed && self.counts.taken.load(Ordering::Relaxed) <= seq
    }
}

/// One live TCP connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) queue: WriteQueue,
    pub(super) reader: JoinHandle<()>,
    /// The same socket (a duplicate descriptor), for options set once the session negotiated.
    pub(super) socket: Option<socket2::Socket>,
    writer: Option<JoinHandle<()>>,
    /// Dropped with the `Conn`: tells the writer to finish within [`CLOSE_GRACE`].
    _closing: oneshot::Sender<()>,
}

impl Conn {
    /// Starts the reader and writer tasks of `stream`.
    pub(super) fn start(
        id: ConnId,
        stream: TcpStream,
        frame_limit: Arc<AtomicUsize>,
        events: mpsc::Sender<ConnEvent>,
        stats: Arc<PeerStats>,
        write_queue_limit: usize,
    ) -> Conn {
        let socket = stream
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(socket2::Socket::from);
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let (closing, closed) = oneshot::channel();
        let counts = Arc::new(QueueCounts::default());
        let writer = tokio::spawn(write_loop(
            write,
            rx,
            Arc::clone(&counts),
            Arc::clone(&stats),
            closed,
        ));
        let reader = tokio::spawn(read_loop(id, read, frame_limit, events));
        Conn {
            queue: WriteQueue {
                tx,
                counts,
                stats,
                pushed: 0,
                limit: write_queue_limit,
            },
            reader,
            socket,
            writer: Some(writer),
            _closing: closing,
        }
    }

    /// Closes the connection (the reader stops, the writer flushes within [`CLOSE_GRACE`]);
    /// returns the writer task to wait for.
    pub(super) fn into_writer(mut self) -> Option<JoinHandle<()>> {
        self.writer.take()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Dials the peer from the configured source address, VRF, TTL and minimum TTL.
pub(super) async fn connect(config: &PeerConfig) -> std::io::Result<TcpStream> {
    let socket = match config.peer_addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(vrf) = &config.vrf {
        socket.bind_device(Some(vrf.as_bytes()))?;
    }
    let is_v6 = config.peer_addr.is_ipv6();
    set_ttl(socket2::SockRef::from(&socket), is_v6, config.ttl())?;
    if let Some(min) = config.min_ttl() {
        // Before the SYN: a SYN-ACK from further away is dropped too.
        set_min_ttl(&socket, is_v6, min)?;
    }
    if let Some(ip) = config.local_addr {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    if let Some(key) = &config.md5_key {
        md5::set_key_on_socket(&socket, config.peer_addr.ip(), Some(key))?;
    }
    socket.connect(config.peer_addr).await
}

/// Reads, frames (length-checked before any body is buffered) and forwards whole messages.
/// Waits while the peer task is [`READ_QUEUE`] frames behind: nothing more is read then.
async fn read_loop(
    id: ConnId,
    mut read: OwnedReadHalf,
    limit: Arc<AtomicUsize>,
    tx: mpsc::Sender<ConnEvent>,
) {
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        loop {
            match split_frame(&mut buf, limit.load(Ordering::Relaxed)) {
                Ok(Some(frame)) => {
                    if tx.send(ConnEvent::Frame(id, frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    let _ = tx.send(ConnEvent::BadFrame(id, err)).await;
                    return;
                }
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(ConnEvent::Closed(id)).await;
                return;
            }
            Ok(_) => {}
        }
    }
}

/// Writes queued messages in order, joining what is already queued into one write. Once the
/// connection is closed it flushes for at most [`CLOSE_GRACE`], then shuts down (FIN), or
/// resets (RST) if the peer did not take it all in time.
async fn write_loop(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    counts: Arc<QueueCounts>,
    stats: Arc<PeerStats>,
    closed: oneshot::Receiver<()>,
) {
    tokio::pin!(closed);
    let mut deadline: Option<Instant> = None;
    let is_flushed = loop {
        let first = tokio::select! {
            m = queue.recv() => m,
            _ = &mut closed, if deadline.is_none() => {
                deadline = Some(Instant::now() + CLOSE_GRACE);
                continue;
            }
            () = sleep_until(deadline) => break false,
        };
        let Some(first) = first else { break true };
        let (batch, messages) = join_queued(first, &mut queue, WRITE_BATCH);
        counts.bytes.fetch_sub(batch.len(), Ordering::Relaxed);
        counts.taken.fetch_add(messages, Ordering::Relaxed);
        stats.unqueued(batch.len());
        let written = write.write_all(&batch);
        tokio::pin!(written);
        let result = loop {
            tokio::select! {
                r = &mut written => break Some(r),
                _ = &mut closed, if deadline.is_none() => {
                    deadline = Some(Instant::now() + CLOSE_GRACE);
                }
                () = sleep_until(deadline) => break None,
            }
        };
        match result {
            Some(Ok(())) => {}
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    queue.close();
    while let Ok(m) = queue.try_recv() {
        counts.bytes.fetch_sub(m.len(), Ordering::Relaxed);
        stats.unqueued(m.len());
    }
    if is_flushed {
        let _ = tokio::time::timeout(CLOSE_GRACE, write.shutdown()).await;
    } else {
        let _ = set_reset_on_close(socket2::SockRef::from(write.as_ref()));
    }
}

/// `first` followed by whatever the queue holds now, up to about `limit` bytes (one message
/// may cross it), and how many messages that is. A lone message is returned as is, without a
/// copy.
fn join_queued(
    first: Bytes,
    queue: &mut mpsc::UnboundedReceiver<Bytes>,
    limit: usize,
) -> (Bytes, u64) {
    let mut joined: Option<BytesMut> = None;
    let mut len = first.len();
    let mut messages = 1;
    while len < limit {
        let Ok(next) = queue.try_recv() else { break };
        len += next.len();
        messages += 1;
        joined
            .get_or_insert_with(|| BytesMut::from(&first[..]))
            .extend_from_slice(&next);
    }
    (joined.map_or(first, BytesMut::freeze), messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_of(messages: &[&'static [u8]]) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        for m in messages {
            tx.send(Bytes::from_static(m)).expect("receiver alive");
        }
        rx
    }

    #[test]
    fn queued_messages_are_joined_in_order_up_to_the_limit() {
        let mut queue = queue_of(&[b"bb", b"ccc", b"dddd", b"e"]);
        let (batch, n) = join_queued(Bytes::from_static(b"a"), &mut queue, 6);
        assert_eq!((&batch[..], n), (&b"abbccc"[..], 3));
        let (rest, n) = join_queued(queue.try_recv().expect("queued"), &mut queue, 100);
        assert_eq!((&rest[..], n), (&b"dddde"[..], 2));
    }

    #[test]
    fn a_lone_message_is_written_without_a_copy() {
        let first = Bytes::from_static(b"keepalive");
        let pointer = first.as_ptr();
        let (batch, _) = join_queued(first, &mut queue_of(&[]), WRITE_BATCH);
        assert_eq!(batch.as_ptr(), pointer);
    }

    fn write_queue(limit: usize) -> (WriteQueue, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = WriteQueue {
            tx,
            counts: Arc::default(),
            stats: Arc::default(),
            pushed: 0,
            limit,
        };
        (queue, rx)
    }

    #[test]
    fn a_batch_over_the_limit_is_refused_whole_and_control_messages_still_pass() {
        let (mut q, _rx) = write_queue(10);
        let six = || Bytes::from_static(b"123456");
        assert_eq!(q.push_updates(vec![six()]), Ok(()));
        assert_eq!(
            q.push_updates(vec![Bytes::from_static(b"12"), six()]),
            Err(Overflow {
                queued: 6,
                batch: 8
            })
        );
        assert_eq!(q.pushed(), 1, "nothing of the refused batch was queued");
        q.push_control(six());
        assert_eq!(q.pushed(), 2);
        assert_eq!(q.stats.snapshot().write_queue_bytes, 12);
    }

    #[test]
    fn a_message_is_waiting_until_the_writer_takes_it() {
        let (mut q, mut rx) = write_queue(100);
        let seq = q.pushed();
        assert!(!q.is_waiting(seq), "not pushed yet");
        q.push_control(Bytes::from_static(b"a"));
        q.push_control(Bytes::from_static(b"b"));
        assert!(q.is_waiting(seq));
        let (_, n) = join_queued(rx.try_recv().expect("queued"), &mut rx, 1);
        q.counts.taken.fetch_add(n, Ordering::Relaxed);
        assert!(!q.is_waiting(seq));
        assert!(q.is_waiting(seq + 1));
    }
}
