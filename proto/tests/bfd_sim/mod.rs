//! Two pure BFD sessions joined by a simulated link, driven in virtual time: every timer and
//! delivery is an event; the earliest one runs next. Each direction of the link can be cut, and
//! every output is logged with its time, so tests read what happened and when.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferrolb_proto::bfd::fsm::{Input, Jitter, Output, Params, Session, TimerKind};
use ferrolb_proto::bfd::packet::{ControlPacket, State};

/// Which end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    A,
    B,
}

impl End {
    fn other(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }
}

/// One end: its session, armed timers and what it did.
#[derive(Debug)]
pub struct Node {
    pub session: Session,
    pub timers: HashMap<TimerKind, Instant>,
    pub log: Vec<(Instant, Output)>,
}

/// The two ends and the link.
#[derive(Debug)]
pub struct Link {
    pub a: Node,
    pub b: Node,
    pub now: Instant,
    pub t0: Instant,
    /// Whether packets from A reach B, and from B reach A.
    pub a_to_b: bool,
    pub b_to_a: bool,
    /// One-way delay.
    pub delay: Duration,
    /// Jitter values handed out, in turn (a single 0 keeps whole intervals).
    pub jitters: Vec<u16>,
    next_jitter: usize,
    in_flight: Vec<(Instant, End, ControlPacket)>,
}

pub fn params(tx_ms: u64, rx_ms: u64, mult: u8) -> Params {
    Params {
        desired_min_tx: Duration::from_millis(tx_ms),
        required_min_rx: Duration::from_millis(rx_ms),
        detect_mult: mult,
        is_passive: false,
    }
}

impl Link {
    /// Sessions with discriminators 1 (A) and 2 (B), not started.
    pub fn new(a: Params, b: Params) -> Link {
        let t0 = Instant::now();
        let node = |discr, p| Node {
            session: Session::new(discr, p),
            timers: HashMap::new(),
            log: Vec::new(),
        };
        Link {
            a: node(1, a),
            b: node(2, b),
            now: t0,
            t0,
            a_to_b: true,
            b_to_a: true,
            delay: Duration::from_millis(1),
            jitters: vec![0],
            next_jitter: 0,
            in_flight: Vec::new(),
        }
    }

    pub fn node(&self, end: End) -> &Node {
        match end {
            End::A => &self.a,
            End::B => &self.b,
        }
    }

    fn node_mut(&mut self, end: End) -> &mut Node {
        match end {
            End::A => &mut self.a,
            End::B => &mut self.b,
        }
    }

    pub fn jitter(&mut self) -> Jitter {
        let j = self.jitters[self.next_jitter % self.jitters.len()];
        self.next_jitter += 1;
        Jitter(j)
    }

    /// Starts both ends.
    pub fn start(&mut self) {
        let j = self.jitter();
        self.feed(End::A, Input::Start(j));
        let j = self.jitter();
        self.feed(End::B, Input::Start(j));
    }

    /// Steps one end now and carries out its outputs.
    pub fn feed(&mut self, end: End, input: Input) -> Vec<Output> {
        let now = self.now;
        let is_up = match end {
            End::A => self.a_to_b,
            End::B => self.b_to_a,
        };
        let delay = self.delay;
        let node = self.node_mut(end);
        let outputs = node.session.step(now, input);
        let mut sent = Vec::new();
        for o in &outputs {
            node.log.push((now, *o));
            match *o {
                Output::Send(p) => sent.push(p),
                Output::ArmTimer(kind, at) => {
                    node.timers.insert(kind, at);
                }
                Output::CancelTimer(kind) => {
                    node.timers.remove(&kind);
                }
                Output::StateChanged { .. } | Output::Retired => {}
            }
        }
        if is_up {
            for p in sent {
                self.in_flight.push((now + delay, end.other(), p));
            }
        }
        outputs
    }

    /// Runs every event up to and including `until`, in time order.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let timer = [End::A, End::B]
                .into_iter()
                .flat_map(|e| {
                    self.node(e)
                        .timers
                        .iter()
                        .map(move |(k, at)| (*at, e, Some(*k)))
                })
                .min_by_key(|(at, _, _)| *at);
            let delivery = self
                .in_flight
                .iter()
                .enumerate()
                .min_by_key(|(_, (at, _, _))| *at)
                .map(|(i, (at, _, _))| (i, *at));
            let next = match (timer, delivery) {
                (Some(t), Some((_, d))) => t.0.min(d),
                (Some(t), None) => t.0,
                (None, Some((_, d))) => d,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if let Some((i, at)) = delivery
                && at == next
            {
                let (_, to, p) = self.in_flight.remove(i);
                self.feed(to, Input::Received(p));
                continue;
            }
            let Some((_, end, Some(kind))) = timer else {
                break;
            };
            self.node_mut(end).timers.remove(&kind);
            let input = match kind {
                TimerKind::Transmit => Input::TransmitTimerExpired(self.jitter()),
                TimerKind::Detect => Input::DetectTimerExpired,
                TimerKind::Retire => Input::RetireTimerExpired,
            };
            self.feed(end, input);
        }
        self.now = until.max(self.now);
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until both ends are Up (panics after 30 virtual seconds).
    pub fn run_until_up(&mut self) {
        let deadline = self.now + Duration::from_secs(30);
        while !(self.a.session.state() == State::Up && self.b.session.state() == State::Up) {
            assert!(self.now < deadline, "not Up within 30 s: {:?}", self.a.log);
            self.run_for(Duration::from_millis(10));
        }
    }

    /// State changes of one end since `since`, as (from, to).
    pub fn changes(&self, end: End, since: Instant) -> Vec<(State, State)> {
        self.node(end)
            .log
            .iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(_, o)| match o {
                Output::StateChanged { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    /// Packets one end sent since `since`, with their times.
    pub fn sent(&self, end: End, since: Instant) -> Vec<(Instant, ControlPacket)> {
        self.node(end)
            .log
            .iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(t, o)| match o {
                Output::Send(p) => Some((*t, *p)),
                _ => None,
            })
            .collect()
    }
}
