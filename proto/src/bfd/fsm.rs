//! One BFD session of RFC 5880 in asynchronous mode, as a pure value.
//!
//! [`Session::step`] takes what happened ([`Input`]) and returns what the driver must do
//! ([`Output`]), in order. No I/O, no clock, no randomness: time enters as `now`, timers leave as
//! deadlines, the per-packet jitter (§6.8.7) enters with the inputs that start a transmit interval
//! and the local discriminator enters with the configuration.
//!
//! What it does: the three-way handshake (Down → Init → Up), the Detection Time (§6.8.4), slow
//! transmission at 1 s while not Up (§6.8.3), Poll/Final sequences when our advertised intervals
//! change (§6.5, §6.8.3; a profile change renegotiates without leaving Up), the negotiated
//! transmit interval (§6.8.7), passive mode (§6.1), administrative down (§6.8.16) and the
//! diagnostic codes. Echo and Demand mode are not run: we never set D and advertise a Required
//! Min Echo RX Interval of 0; a peer that runs Demand mode is honoured (§6.8.7).
//!
//! Deviations, on purpose (FRR's bfdd and BIRD do the same, as captured in the lab):
//! - Reaching Up, leaving Init or Up for Down, and going AdminDown send one packet at once
//!   instead of waiting for the next periodic one. Down and AdminDown otherwise go out at the
//!   slow 1 s rate, after the peer's own Detection Time: for AdminDown that keeps our removal
//!   from looking like a failure (RFC 5882 §3.2); for Down it tells the peer of a one-way
//!   failure at once. Up (with the Poll bit of the poll it starts) completes the handshake
//!   without waiting up to a second.
//! - Timer expiries that arrive after their timer was re-armed or cancelled are ignored.

use std::time::{Duration, Instant};

use super::packet::{ControlPacket, Diag, State};

/// §6.8.3: the least Desired Min TX Interval we advertise while the session is not Up.
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// §6.8.1: bfd.RemoteMinRxInterval starts at 1 µs.
const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// The timers and role a profile sets; they may change while the session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// bfd.DesiredMinTxInterval once Up (MetalLB's `transmitInterval`).
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval (MetalLB's `receiveInterval`).
    pub required_min_rx: Duration,
    /// bfd.DetectMult (MetalLB's `detectMultiplier`); never 0.
    pub detect_mult: u8,
    /// §6.1 Passive role: send nothing until the peer's discriminator is known.
    pub is_passive: bool,
}

/// A uniformly drawn random value that sets how much one transmit interval is shortened
/// (§6.8.7): 0 keeps the whole interval, `u16::MAX` cuts the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter(pub u16);

/// The timers of a session; the driver keeps at most one deadline per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Next periodic Control packet.
    Transmit,
    /// The Detection Time since the last packet received.
    Detect,
    /// End of the AdminDown announcements of a session being removed.
    Retire,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The session was created (§6.8.1, state Down); the jitter is for the first interval.
    Start(Jitter),
    /// A packet that the decoder and the demultiplexer accepted for this session.
    Received(ControlPacket),
    /// The Transmit timer fired; the jitter is for the interval that starts now.
    TransmitTimerExpired(Jitter),
    /// The Detect timer fired.
    DetectTimerExpired,
    /// The profile changed.
    Reconfigure(Params),
    /// §6.8.16: hold the session down.
    AdminDown,
    /// §6.8.16: release it.
    AdminUp,
    /// The session is being removed: AdminDown, announced for a Detection Time, then
    /// [`Output::Retired`].
    Retire,
    /// The Retire timer fired.
    RetireTimerExpired,
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send this packet now.
    Send(ControlPacket),
    /// (Re)arm a timer at a deadline.
    ArmTimer(TimerKind, Instant),
    /// Disarm a timer.
    CancelTimer(TimerKind),
    /// The session changed state; `diag` is why.
    StateChanged {
        /// State before.
        from: State,
        /// State now.
        to: State,
        /// bfd.LocalDiag after the change.
        diag: Diag,
    },
    /// A retired session has announced AdminDown long enough: forget it.
    Retired,
}

/// The Desired Min TX and Required Min RX intervals our packets carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Advertised {
    tx: Duration,
    rx: Duration,
}

/// What we last heard from the peer (§6.8.1 bfd.Remote*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Remote {
    discr: u32,
    state: State,
    diag: Diag,
    min_rx: Duration,
    desired_min_tx: Duration,
    /// 0 until a packet is heard: no Detection Time yet.
    detect_mult: u8,
    demand: bool,
}

impl Remote {
    const INITIAL: Remote = Remote {
        discr: 0,
        state: State::Down,
        diag: Diag::None,
        min_rx: INITIAL_REMOTE_MIN_RX,
        desired_min_tx: Duration::ZERO,
        detect_mult: 0,
        demand: false,
    };
}

/// What the speaker and the metrics see of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// bfd.SessionState.
    pub state: State,
    /// bfd.LocalDiag.
    pub diag: Diag,
    /// The state the peer last announced.
    pub remote_state: State,
    /// The diagnostic the peer last announced.
    pub remote_diag: Diag,
    /// The peer's discriminator, 0 while unknown.
    pub remote_discr: u32,
    /// The interval between our periodic packets before jitter; `None` while we send none.
    pub tx_interval: Option<Duration>,
    /// How long without a packet before the session fails; `None` before the first packet.
    pub detection_time: Option<Duration>,
    /// A Poll Sequence of ours waits for the peer's Final.
    pub is_polling: bool,
}

/// One BFD session.
#[derive(Debug, Clone)]
pub struct Session {
    /// bfd.LocalDiscr, chosen by the driver (unique, nonzero).
    local_discr: u32,
    params: Params,
    state: State,
    diag: Diag,
    remote: Remote,
    /// What our packets say now.
    adv: Advertised,
    /// §6.5: a Poll Sequence is running; the values advertised before it, which still bound
    /// what we rely on (§6.8.3) until the Final.
    poll: Option<Advertised>,
    /// §6.8.3 option 3: a Poll just ended; the next one waits for a packet with F clear.
    is_poll_blocked: bool,
    /// Jitter of the current transmit interval.
    jitter: Jitter,
    /// When the last periodic packet left: the next one is due an interval after it.
    last_tx: Option<Instant>,
    is_started: bool,
    tx_at: Option<Instant>,
    detect_at: Option<Instant>,
    retire_at: Option<Instant>,
}

impl Session {
    /// A session in Down that has not started; `local_discr` must be nonzero and unique.
    pub fn new(local_discr: u32, params: Params) -> Self {
        let mut s = Self {
            local_discr,
            params,
            state: State::Down,
            diag: Diag::None,
            remote: Remote::INITIAL,
            adv: Advertised {
                tx: Duration::ZERO,
                rx: Duration::ZERO,
            },
            poll: None,
            is_poll_blocked: false,
            jitter: Jitter(0),
            last_tx: None,
            is_started: false,
            tx_at: None,
            detect_at: None,
            retire_at: None,
        };
        s.adv = s.target();
        s
    }

    /// bfd.LocalDiscr.
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// The profile in force.
    pub fn params(&self) -> Params {
        self.params
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// The session as the speaker and the metrics see it.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            diag: self.diag,
            remote_state: self.remote.state,
            remote_diag: self.remote.diag,
            remote_discr: self.remote.discr,
            tx_interval: self.can_transmit().then(|| self.tx_interval()),
            detection_time: self.detection_time(),
            is_polling: self.poll.is_some(),
        }
    }

    /// Feeds one input; returns what the driver must do, in order.
    pub fn step(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start(jitter) => self.on_start(now, jitter, &mut out),
            Input::Received(packet) if self.is_started => self.on_received(now, &packet, &mut out),
            Input::Received(_) => {}
            Input::TransmitTimerExpired(jitter) => {
                if is_due(self.tx_at, now) {
                    self.tx_at = None;
                    self.jitter = jitter;
                    self.send_periodic(now, &mut out);
                }
            }
            Input::DetectTimerExpired => {
                if is_due(self.detect_at, now) {
                    self.detect_at = None;
                    self.on_detect_expired(now, &mut out);
                }
            }
            Input::Reconfigure(params) => self.on_reconfigure(now, params, &mut out),
            Input::AdminDown => self.on_admin_down(now, &mut out),
            Input::AdminUp => self.on_admin_up(now, &mut out),
            Input::Retire => self.on_retire(now, &mut out),
            Input::RetireTimerExpired => {
                if is_due(self.retire_at, now) {
                    self.retire_at = None;
                    out.push(Output::Retired);
                }
            }
        }
        out
    }

    fn on_start(&mut self, now: Instant, jitter: Jitter, out: &mut Vec<Output>) {
        if self.is_started {
            return;
        }
        self.is_started = true;
        self.jitter = jitter;
        self.reschedule_tx(now, out);
    }

    /// §6.8.6 from "Set bfd.RemoteDiscr" on: the checks before it are the decoder's and the
    /// demultiplexer's.
    fn on_received(&mut self, now: Instant, p: &ControlPacket, out: &mut Vec<Output>) {
        self.remote = Remote {
            discr: p.my_discr,
            state: p.state,
            diag: p.diag,
            min_rx: Duration::from_micros(p.required_min_rx_us.into()),
            desired_min_tx: Duration::from_micros(p.desired_min_tx_us.into()),
            detect_mult: p.detect_mult,
            demand: p.demand,
        };
        // "If a Poll Sequence is being transmitted by the local system and the Final (F) bit
        // in the received packet is set, the Poll Sequence MUST be terminated."
        if p.is_final {
            if self.poll.take().is_some() {
                self.is_poll_blocked = true;
            }
        } else {
            self.is_poll_blocked = false;
        }
        if self.state == State::AdminDown {
            self.reschedule_tx(now, out);
            return;
        }
        self.arm_detect(now, out);
        let was_up = matches!(self.state, State::Init | State::Up);
        match (self.state, p.state) {
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) | (State::Up, State::Down) => {
                self.go_down(Diag::NeighborSignaledSessionDown, out)
            }
            (State::Down, State::Down) => self.change_state(State::Init, Diag::None, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.change_state(State::Up, Diag::None, out)
            }
            _ => {}
        }
        self.update_advertised();
        let went_down = was_up && self.state == State::Down;
        let went_up = self.state == State::Up && out_has_up(out);
        if p.poll {
            // "the receiving system MUST transmit a BFD Control packet with the Poll (P) bit
            // clear and the Final (F) bit set as soon as practicable"
            out.push(Output::Send(self.packet(false, true)));
        }
        if went_down || went_up {
            // A Final already carried a Down; an Up also carries the Poll bit, a Final cannot.
            self.announce(now, went_up || !p.poll, out);
        }
        self.reschedule_tx(now, out);
    }

    /// §6.8.4: nothing heard for a Detection Time.
    fn on_detect_expired(&mut self, now: Instant, out: &mut Vec<Output>) {
        let went_down = matches!(self.state, State::Init | State::Up);
        if went_down {
            self.go_down(Diag::ControlDetectionTimeExpired, out);
        }
        // §6.8.1: bfd.RemoteDiscr MUST be set to zero; the rest of what we heard goes with it.
        self.remote = Remote::INITIAL;
        self.update_advertised();
        if went_down {
            self.announce(now, true, out);
        }
        self.reschedule_tx(now, out);
    }

    fn on_reconfigure(&mut self, now: Instant, params: Params, out: &mut Vec<Output>) {
        if params == self.params {
            return;
        }
        // A new Detect Mult goes out in the next packet; it needs no Poll Sequence.
        self.params = params;
        self.update_advertised();
        self.reschedule_tx(now, out);
    }

    fn on_admin_down(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state == State::AdminDown {
            return;
        }
        self.change_state(State::AdminDown, Diag::AdministrativelyDown, out);
        self.clear_poll();
        if self.detect_at.take().is_some() {
            out.push(Output::CancelTimer(TimerKind::Detect));
        }
        self.update_advertised();
        self.announce(now, true, out);
        self.reschedule_tx(now, out);
    }

    fn on_admin_up(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state != State::AdminDown || self.retire_at.is_some() {
            return;
        }
        self.change_state(State::Down, Diag::None, out);
        self.update_advertised();
        self.reschedule_tx(now, out);
    }

    /// §6.8.16: keep announcing AdminDown for at least the Detection Time the peer applies
    /// to us, then let the driver forget the session.
    fn on_retire(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.retire_at.is_some() {
            return;
        }
        self.on_admin_down(now, out);
        if self.remote.discr == 0 || !self.can_transmit() {
            out.push(Output::Retired);
            return;
        }
        let linger = self.tx_interval() * u32::from(self.params.detect_mult.max(1));
        self.retire_at = Some(now + linger);
        out.push(Output::ArmTimer(TimerKind::Retire, now + linger));
    }

    /// Deviation (module doc): a state change the peer must hear before its Detection Time
    /// expires goes out now, unless a Final carrying it just did; periodic packets follow on
    /// from it.
    fn announce(&mut self, now: Instant, is_needed: bool, out: &mut Vec<Output>) {
        if is_needed && self.is_started && self.can_transmit() {
            out.push(Output::Send(self.packet(self.poll.is_some(), false)));
        }
        if self.is_started && self.can_transmit() {
            self.last_tx = Some(now);
        }
    }

    fn change_state(&mut self, to: State, diag: Diag, out: &mut Vec<Output>) {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        out.push(Output::StateChanged { from, to, diag });
    }

    fn go_down(&mut self, diag: Diag, out: &mut Vec<Output>) {
        self.change_state(State::Down, diag, out);
        self.clear_poll();
    }

    fn clear_poll(&mut self) {
        self.poll = None;
        self.is_poll_blocked = false;
    }

    /// What our packets should say: the profile, with at least [`SLOW_TX`] while not Up.
    fn target(&self) -> Advertised {
        let tx = if self.state == State::Up {
            self.params.desired_min_tx
        } else {
            self.params.desired_min_tx.max(SLOW_TX)
        };
        Advertised {
            tx,
            rx: self.params.required_min_rx,
        }
    }

    /// §6.8.3: "If either bfd.DesiredMinTxInterval is changed or bfd.RequiredMinRxInterval is
    /// changed, a Poll Sequence MUST be initiated". While the session is Init or Up the new
    /// values wait until no Poll runs, then go out in one (§6.8.3: several changes share one
    /// Poll or wait for it to end). While Down or AdminDown nothing relies on them: they go
    /// out at once.
    fn update_advertised(&mut self) {
        let target = self.target();
        if target == self.adv {
            return;
        }
        if matches!(self.state, State::Init | State::Up) {
            if self.poll.is_none() && !self.is_poll_blocked {
                self.poll = Some(self.adv);
                self.adv = target;
            }
        } else {
            self.adv = target;
        }
    }

    /// The Desired Min TX our own pace follows: during a Poll the smaller of old and new, since
    /// §6.8.3 lets an increase take effect only once the Poll ends.
    fn effective_tx(&self) -> Duration {
        match self.poll {
            Some(old) => old.tx.min(self.adv.tx),
            None => self.adv.tx,
        }
    }

    /// The Required Min RX our Detection Time uses: during a Poll the larger of old and new,
    /// since a reduction may be relied on only once the Poll ends (§6.8.3).
    fn effective_rx(&self) -> Duration {
        match self.poll {
            Some(old) => old.rx.max(self.adv.rx),
            None => self.adv.rx,
        }
    }

    /// §6.8.7: the greater of bfd.DesiredMinTxInterval and bfd.RemoteMinRxInterval.
    fn tx_interval(&self) -> Duration {
        self.effective_tx().max(self.remote.min_rx)
    }

    /// §6.8.4 (asynchronous mode): the remote Detect Mult times the greater of our Required
    /// Min RX and the remote Desired Min TX.
    fn detection_time(&self) -> Option<Duration> {
        (self.remote.detect_mult > 0).then(|| {
            self.effective_rx().max(self.remote.desired_min_tx) * u32::from(self.remote.detect_mult)
        })
    }

    /// §6.8.7: whether periodic packets go out.
    fn can_transmit(&self) -> bool {
        let is_remote_demand = self.remote.demand
            && self.state == State::Up
            && self.remote.state == State::Up
            && self.poll.is_none();
        let is_silent_passive = self.params.is_passive && self.remote.discr == 0;
        !is_silent_passive && !self.remote.min_rx.is_zero() && !is_remote_demand
    }

    /// One interval shortened by the jitter: by 0–25 %, or 10–25 % when Detect Mult is 1
    /// (§6.8.7: "no more than 90% ... no less than 75%").
    fn jittered(&self, interval: Duration) -> Duration {
        let (least, most) = if self.params.detect_mult == 1 {
            (100_000u128, 250_000u128)
        } else {
            (0, 250_000)
        };
        let cut_ppm = least + (most - least) * u128::from(self.jitter.0) / u128::from(u16::MAX);
        let nanos = interval.as_nanos();
        let kept = nanos - nanos * cut_ppm / 1_000_000;
        Duration::from_nanos(u64::try_from(kept).unwrap_or(u64::MAX))
    }

    fn send_periodic(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.can_transmit() {
            return;
        }
        out.push(Output::Send(self.packet(self.poll.is_some(), false)));
        self.last_tx = Some(now);
        let at = now + self.jittered(self.tx_interval());
        self.tx_at = Some(at);
        out.push(Output::ArmTimer(TimerKind::Transmit, at));
    }

    /// Puts the next periodic packet one (jittered) interval after the last one, so that a
    /// changed interval applies at once (§6.8.3: a reduced Required Min RX of the peer MUST be
    /// honoured immediately); a session that has sent nothing yet sends now.
    fn reschedule_tx(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.is_started {
            return;
        }
        if !self.can_transmit() {
            if self.tx_at.take().is_some() {
                out.push(Output::CancelTimer(TimerKind::Transmit));
            }
            return;
        }
        let Some(last) = self.last_tx else {
            self.send_periodic(now, out);
            return;
        };
        let at = (last + self.jittered(self.tx_interval())).max(now);
        if self.tx_at != Some(at) {
            self.tx_at = Some(at);
            out.push(Output::ArmTimer(TimerKind::Transmit, at));
        }
    }

    fn arm_detect(&mut self, now: Instant, out: &mut Vec<Output>) {
        if let Some(time) = self.detection_time() {
            let at = now + time;
            self.detect_at = Some(at);
            out.push(Output::ArmTimer(TimerKind::Detect, at));
        }
    }

    /// §6.8.7: the contents of our Control packets.
    fn packet(&self, poll: bool, is_final: bool) -> ControlPacket {
        ControlPacket {
            diag: self.diag,
            state: self.state,
            poll,
            is_final,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.params.detect_mult,
            my_discr: self.local_discr,
            your_discr: self.remote.discr,
            desired_min_tx_us: micros(self.adv.tx),
            required_min_rx_us: micros(self.adv.rx),
            required_min_echo_rx_us: 0,
        }
    }
}

/// Whether this step's outputs include reaching Up.
fn out_has_up(out: &[Output]) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::StateChanged { to: State::Up, .. }))
}

/// A duration in whole microseconds for the wire, saturating.
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Whether an expiry at `now` matches a deadline still armed.
fn is_due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|at| now >= at)
}
