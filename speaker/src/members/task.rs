//! The members task: reads and sends the datagrams, fires foca's timers, beats the heart, and
//! publishes the live set. It reads both clocks: the monotonic one for timers and the pulse,
//! the wall clock for the send times under the tags (clocks in a cluster are NTP-synced; see
//! [`super::replay::WINDOW`]).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrolb_proto::time::sleep_until;
use foca::{Foca, Notification, PostcardCodec, Runtime, Timer};
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::auth::{AuthError, Keys};
use super::pulse::{Beat, Hearing, Lapse, Pulse};
use super::replay::Replay;
use super::timers::Timers;
use super::{Command, Counters, Heart, MAX_DATAGRAM, SpeakerId};

/// The same drop reason is logged at most this often (a wrong-key speaker sends many).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What foca asked for during one call, carried out by the task afterwards.
#[derive(Default)]
struct Effects {
    sends: Vec<(SpeakerId, Vec<u8>)>,
    timers: Vec<(Timer<SpeakerId>, Duration)>,
    membership_changed: bool,
    /// The others declared our identity dead (foca renewed it and rejoined).
    declared_dead: bool,
}

impl Runtime<SpeakerId> for Effects {
    fn notify(&mut self, notification: Notification<'_, SpeakerId>) {
        match notification {
            Notification::MemberUp(_) | Notification::MemberDown(_) | Notification::Rename(..) => {
                self.membership_changed = true
            }
            Notification::Rejoin(_) | Notification::Defunct => self.declared_dead = true,
            _ => {}
        }
    }

    fn send_to(&mut self, to: SpeakerId, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<SpeakerId>, after: Duration) {
        self.timers.push((event, after));
    }
}

/// What the task is made of.
pub(super) struct Parts {
    pub foca: Foca<SpeakerId, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    pub socket: UdpSocket,
    pub keys: Keys,
    pub heart: Option<Heart>,
    pub live: watch::Sender<BTreeSet<String>>,
    pub lapse: watch::Sender<Option<Lapse>>,
    pub counters: Arc<Counters>,
}

/// The task's state.
pub(super) struct Task {
    foca: Foca<SpeakerId, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    socket: UdpSocket,
    keys: Keys,
    /// Tags accepted lately, to refuse replays.
    replay: Replay,
    /// When to beat `heart`; also lapses when we are declared dead.
    pulse: Pulse,
    heart: Option<Heart>,
    /// When an authentic datagram last arrived (the pulse stops when nothing does).
    last_heard: Option<Instant>,
    /// Datagrams sealed so far: numbers each one, so no two are alike.
    seq: u32,
    /// Pending foca timers.
    timers: Timers<Timer<SpeakerId>>,
    live: watch::Sender<BTreeSet<String>>,
    lapse: watch::Sender<Option<Lapse>>,
    counters: Arc<Counters>,
    /// When each drop reason may be logged again.
    quiet_until: [Option<Instant>; AuthError::REASONS.len()],
}

/// The wall clock in unix milliseconds (0 before 1970: every datagram then looks stale).
fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The next pulse tick; never without a heart.
async fn tick(ticks: &mut Option<Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Task {
    pub(super) fn new(parts: Parts) -> Task {
        let timeout = parts.heart.as_ref().map_or(Duration::MAX, |h| h.timeout);
        Task {
            foca: parts.foca,
            socket: parts.socket,
            keys: parts.keys,
            replay: Replay::default(),
            pulse: Pulse::new(timeout),
            heart: parts.heart,
            last_heard: None,
            seq: 0,
            timers: Timers::default(),
            live: parts.live,
            lapse: parts.lapse,
            counters: parts.counters,
            quiet_until: Default::default(),
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; MAX_DATAGRAM + 64];
        let mut ticks = self.heart.as_ref().map(|_| {
            let mut ticks = tokio::time::interval(self.pulse.interval());
            ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
            ticks
        });
        loop {
            let next = self.timers.next_deadline();
            let mut effects = Effects::default();
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((len, from)) = received else { continue };
                    self.on_datagram(&buf[..len], from, &mut effects);
                }
                () = sleep_until(next) => {
                    for timer in self.timers.take_due(Instant::now()) {
                        if let Err(error) = self.foca.handle_timer(timer, &mut effects) {
                            tracing::debug!(%error, "gossip timer failed");
                        }
                    }
                }
                () = tick(&mut ticks) => self.on_tick(),
                command = commands.recv() => match command {
                    Some(Command::Join(seeds)) => self.join(seeds, &mut effects),
                    Some(Command::Leave(done)) => {
                        if let Err(error) = self.foca.leave_cluster(&mut effects) {
                            tracing::debug!(%error, "gossip leave failed");
                        }
                        // foca calls itself defunct once it has left: that is no lapse.
                        effects.declared_dead = false;
                        self.apply(effects).await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
            self.apply(effects).await;
        }
    }

    /// Opens one datagram and hands it to foca, or counts why not.
    fn on_datagram(&mut self, packet: &[u8], from: SocketAddr, effects: &mut Effects) {
        let opened = self.keys.open(packet).and_then(|opened| {
            self.replay
                .check(unix_ms_now(), opened.sent_unix_ms, opened.tag)
                .map(|()| opened)
        });
        match opened {
            Ok(opened) => {
                self.last_heard = Some(Instant::now());
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                if opened.is_secondary_key {
                    let secondary = &self.counters.received_secondary_key;
                    secondary.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(error) = self.foca.handle_data(opened.payload, effects) {
                    self.counters
                        .dropped_protocol
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, %from, "gossip datagram not understood");
                }
            }
            Err(error) => {
                self.counters.count_drop(error);
                self.log_drop(error, from);
            }
        }
    }

    /// Logs a dropped datagram, each reason at most once per [`WARN_EVERY`].
    fn log_drop(&mut self, error: AuthError, from: SocketAddr) {
        let now = Instant::now();
        let Some(i) = AuthError::REASONS.iter().position(|r| *r == error.reason()) else {
            return;
        };
        if self.quiet_until[i].is_some_and(|until| now < until) {
            return;
        }
        self.quiet_until[i] = Some(now + WARN_EVERY);
        let reason = error.reason();
        let window_ms = self.replay.window().as_millis();
        match error {
            AuthError::Truncated => tracing::debug!(%from, reason, "gossip datagram dropped"),
            AuthError::LegacyFormat | AuthError::UnsupportedVersion(_) => tracing::warn!(
                %from, reason, %error,
                "gossip datagram from a speaker of another FerroLB version dropped: the two cannot see each other until both run the same gossip format"
            ),
            AuthError::BadTag => tracing::warn!(
                %from, reason,
                "gossip datagram made with a key this speaker does not accept dropped: a speaker with another (or a rotated) key, or tampering"
            ),
            AuthError::Stale { age_ms } if u128::from(age_ms) > window_ms => tracing::warn!(
                %from, reason, age_ms, window_ms,
                "gossip datagram sent too long ago dropped: the sender's clock is behind ours by about this much (check NTP on both nodes), or this is a replay"
            ),
            AuthError::FromFuture { ahead_ms } => tracing::warn!(
                %from, reason, ahead_ms, window_ms,
                "gossip datagram sent in the future dropped: the sender's clock is ahead of ours by about this much (check NTP on both nodes)"
            ),
            AuthError::Stale { .. } | AuthError::Duplicate => tracing::warn!(
                %from, reason, %error,
                "gossip datagram dropped: a replay, or a duplicate made by the network"
            ),
        }
    }

    /// Beats the heart, unless the pulse says otherwise.
    fn on_tick(&mut self) {
        let hearing = Hearing {
            has_others: self.foca.num_members() > 0,
            last_heard: self.last_heard,
        };
        match self.pulse.on_tick(Instant::now(), hearing) {
            Beat::Now => {
                if let Some(heart) = &self.heart {
                    (heart.beat)();
                }
            }
            Beat::Lapsed(lapse) => self.report_lapse(lapse),
            Beat::Deaf | Beat::Silent => {}
        }
    }

    fn report_lapse(&mut self, lapse: Lapse) {
        match lapse {
            Lapse::Frozen(gap) => tracing::warn!(
                gap_ms = gap.as_millis(),
                reason = lapse.reason(),
                "this speaker did not run for longer than its heartbeat timeout; it stopped answering and must rejoin before answering again"
            ),
            Lapse::Deaf => tracing::warn!(
                reason = lapse.reason(),
                "this speaker heard no other speaker for longer than its heartbeat timeout (cut off from them?); it stopped answering and must rejoin before answering again"
            ),
            Lapse::DeclaredDead => tracing::warn!(
                reason = lapse.reason(),
                "the other speakers declared this one dead; it stops answering and rejoins"
            ),
        }
        self.lapse.send_replace(Some(lapse));
    }

    fn join(&mut self, seeds: Vec<SocketAddr>, effects: &mut Effects) {
        for addr in seeds {
            // The name is learnt from the reply; only the address is used to send.
            let seed = SpeakerId {
                node: String::new(),
                addr,
                generation: 0,
            };
            if let Err(error) = self.foca.announce(seed, &mut *effects) {
                tracing::debug!(%error, "gossip announce failed");
            }
        }
    }

    async fn apply(&mut self, mut effects: Effects) {
        if effects.declared_dead && self.pulse.on_declared_dead() {
            self.report_lapse(Lapse::DeclaredDead);
        }
        if effects.membership_changed {
            // Spread the news now rather than at the next periodic gossip.
            let mut more = Effects::default();
            if let Err(error) = self.foca.gossip(&mut more) {
                tracing::debug!(%error, "gossip failed");
            }
            effects.sends.append(&mut more.sends);
            effects.timers.append(&mut more.timers);
        }
        for (to, data) in effects.sends {
            self.seq = self.seq.wrapping_add(1);
            let packet = self.keys.seal(unix_ms_now(), self.seq, &data);
            if self.socket.send_to(&packet, to.addr).await.is_ok() {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        for (timer, after) in effects.timers {
            self.timers.arm(now, after, timer);
        }
        if effects.membership_changed {
            self.publish_live();
        }
    }

    fn publish_live(&mut self) {
        let mut live: BTreeSet<String> = self
            .foca
            .iter_members()
            .map(|m| m.id().node.clone())
            .filter(|n| !n.is_empty())
            .collect();
        live.insert(self.foca.identity().node.clone());
        self.live.send_if_modified(|current| {
            let changed = *current != live;
            *current = live;
            changed
        });
    }
}
