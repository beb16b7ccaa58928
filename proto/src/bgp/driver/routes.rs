//! The peer task's outgoing routes: the table the speaker wants, what the peer has from us,
//! End-of-RIB, tables encoded ahead of a session, and which ROUTE-REFRESH can be merged into a
//! re-advertisement still waiting in the writer queue. No I/O: the caller hands in the queue.

use std::sync::Arc;

use ipnet::IpNet;

use super::super::fsm::ConnId;
use super::super::open::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use super::super::packing::{Packed, PeerEncoding, RouteSet, end_of_rib, pack};
use super::config::PeerConfig;
use super::conn::{Overflow, WriteQueue};

/// Why UPDATEs are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Send {
    /// The session just came up: the whole table, then End-of-RIB.
    Initial,
    /// The desired table changed: the difference (and End-of-RIB if it is still owed).
    Changes,
    /// The peer asked (ROUTE-REFRESH, RFC 2918): the whole table again.
    Refresh,
}

/// Outgoing routes of one peer.
#[derive(Debug)]
pub(super) struct Routes {
    /// What [`Routes::prepack`] guesses the next session will negotiate.
    guesses: Vec<PeerEncoding>,
    /// The connection UPDATEs go to and its encoding, while Established.
    established: Option<(ConnId, PeerEncoding)>,
    /// Shared with `advertised` once sent: a 100k-route table is then held once, and marking it
    /// advertised costs nothing (a deep copy took 15 ms, during which the writer stalled).
    desired: Arc<RouteSet>,
    /// A `SetRoutes` arrived: `desired` is the speaker's table, not a placeholder.
    has_desired: bool,
    advertised: Arc<RouteSet>,
    /// End-of-RIB went out on the current Established session.
    is_eor_sent: bool,
    /// The whole desired table encoded ahead, while no session is up, for each encoding the
    /// next session is likely to negotiate: the initial UPDATEs then leave the moment it is
    /// Established instead of after packing (tens of ms for 100k routes).
    prepacked: Vec<(PeerEncoding, Packed)>,
    /// The encoding of the last Established session: the best guess for the next one.
    last_encoding: Option<PeerEncoding>,
    /// Queue sequence number of the first message of the last re-advertisement: while the
    /// writer has not taken it, a new ROUTE-REFRESH is answered by it.
    refresh_seq: Option<u64>,
    /// Prefixes the last send left out (the peer cannot take them): not advertised.
    skipped: Vec<IpNet>,
}

impl Routes {
    /// No routes yet; guesses for the first session from our own OPEN.
    pub(super) fn new(config: &PeerConfig) -> Self {
        let local = &config.session.local;
        let guess = |max_message_len| PeerEncoding {
            local_as: local.local_as,
            is_ibgp: !config.is_ebgp(),
            four_octet_as: true,
            max_message_len,
            families: local.families,
        };
        let mut guesses = vec![guess(MAX_MESSAGE_LEN)];
        if local.extended_message {
            guesses.push(guess(MAX_EXTENDED_MESSAGE_LEN));
        }
        Self {
            guesses,
            established: None,
            desired: Arc::default(),
            has_desired: false,
            advertised: Arc::default(),
            is_eor_sent: false,
            prepacked: Vec::new(),
            last_encoding: None,
            refresh_seq: None,
            skipped: Vec::new(),
        }
    }

    pub(super) fn set_desired(&mut self, routes: RouteSet) {
        self.desired = Arc::new(routes);
        self.has_desired = true;
    }

    pub(super) fn has_desired(&self) -> bool {
        self.has_desired
    }

    pub(super) fn established(&self) -> Option<(ConnId, PeerEncoding)> {
        self.established
    }

    pub(super) fn on_session_up(&mut self, id: ConnId, encoding: PeerEncoding) {
        self.established = Some((id, encoding));
        self.last_encoding = Some(encoding);
        self.advertised = Arc::default();
        self.is_eor_sent = false;
        self.refresh_seq = None;
    }

    pub(super) fn on_session_down(&mut self) {
        self.established = None;
        self.advertised = Arc::default();
        self.refresh_seq = None;
    }

    pub(super) fn on_close(&mut self, id: ConnId) {
        if self.established.is_some_and(|(c, _)| c == id) {
            self.on_session_down();
        }
    }

    /// Whether a re-advertisement waits in `queue` with none of it taken by the writer yet:
    /// a ROUTE-REFRESH now is answered by it (RFC 2918 asks for the table after the request;
    /// nothing of that one has left yet). One that has started is not merged into, so a
    /// flood costs at most one table being written plus one waiting.
    pub(super) fn is_refresh_waiting(&self, queue: &WriteQueue) -> bool {
        self.refresh_seq.is_some_and(|seq| queue.is_waiting(seq))
    }

    /// Packs and queues the UPDATEs `kind` needs on the Established session; `None` when
    /// there is no session or packing failed (logged), else (messages, routes left out) or
    /// the batch the queue refused.
    pub(super) fn send(
        &mut self,
        kind: Send,
        queue: &mut WriteQueue,
    ) -> Option<Result<(usize, usize), Overflow>> {
        let (_, enc) = self.established?;
        if kind == Send::Refresh {
            self.advertised = Arc::default();
        }
        let is_initial = match kind {
            Send::Initial => true,
            Send::Changes => !self.is_eor_sent,
            Send::Refresh => false,
        };
        let ready = match self.prepacked.iter().position(|(e, _)| *e == enc) {
            Some(i) if self.advertised.is_empty() => Some(self.prepacked.swap_remove(i).1),
            _ => None,
        };
        self.prepacked.clear();
        let packed = match ready.map_or_else(|| pack(&enc, &self.desired, &self.advertised), Ok) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(reason = e.reason(), error = %e, "cannot pack UPDATEs");
                return None;
            }
        };
        let mut batch = packed.messages;
        if is_initial {
            match end_of_rib(&enc) {
                Ok(markers) => batch.extend(markers),
                Err(e) => {
                    tracing::error!(reason = e.reason(), error = %e, "cannot encode End-of-RIB")
                }
            }
        }
        let first_seq = queue.pushed();
        let updates = batch.len();
        if let Err(overflow) = queue.push_updates(batch) {
            return Some(Err(overflow));
        }
        if is_initial {
            self.is_eor_sent = true;
        }
        if kind == Send::Refresh && updates > 0 {
            self.refresh_seq = Some(first_seq);
        }
        self.skipped = packed.skipped.into_iter().map(|(p, _)| p).collect();
        Some(Ok((updates, self.skipped.len())))
    }

    /// After a send: the peer has the desired table, less what was left out.
    pub(super) fn mark_sent(&mut self) {
        self.advertised = Arc::clone(&self.desired);
        if !self.skipped.is_empty() {
            let advertised = Arc::make_mut(&mut self.advertised);
            for prefix in self.skipped.drain(..) {
                advertised.remove(&prefix);
            }
        }
    }

    /// Encodes the desired table ahead for the encodings the next session may negotiate: the
    /// last session's, or before any session the one our OPEN asks for, with and without
    /// Extended Messages. Only while no session is up.
    pub(super) fn prepack(&mut self) {
        self.prepacked.clear();
        if self.established.is_some() || self.desired.is_empty() {
            return;
        }
        let expected = match self.last_encoding {
            Some(enc) => vec![enc],
            None => self.guesses.clone(),
        };
        for enc in expected {
            match pack(&enc, &self.desired, &RouteSet::new()) {
                Ok(p) => self.prepacked.push((enc, p)),
                Err(e) => tracing::error!(reason = e.reason(), error = %e, "cannot pack UPDATEs"),
            }
        }
    }
}
