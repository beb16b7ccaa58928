//! How a session ends on our side: ManualStop (event 2), the same before a planned restart, and
//! AutomaticStop (event 8), with the NOTIFICATION each sends under RFC 4724 and RFC 8538.
//!
//! | stop | GR negotiated, N bit too | GR only | no GR |
//! |---|---|---|---|
//! | ManualStop | Hard Reset (Administrative Shutdown) | Administrative Shutdown | Administrative Shutdown |
//! | ManualStopForRestart | Administrative Reset | no NOTIFICATION, TCP close | Administrative Shutdown |
//! | AutomaticStop(n) | n, as a Hard Reset when RFC 8538 §5.1 asks | n | n |
//!
//! With GR a peer keeps our routes, marked stale, when TCP fails (RFC 4724 §4.2), and with the N
//! bit also when any NOTIFICATION but a Hard Reset arrives (RFC 8538 §3). Before a restart we want
//! exactly that; for a real stop (peer removed from the configuration, the speaker uninstalled)
//! we want the opposite, hence the Hard Reset. No I/O here.

use std::time::Instant;

use super::super::notification::Notification;
use super::{DownReason, Output, Session, State, TimerKind};

impl Session {
    /// ManualStop, or with `for_restart` the stop before a planned restart of this process.
    pub(super) fn on_manual_stop(&mut self, for_restart: bool, out: &mut Vec<Output>) {
        if self.state == State::Connect {
            out.push(Output::CancelConnect);
        }
        let was_established = self.state == State::Established;
        let negotiated = self.negotiated;
        let keeps_routes = for_restart
            && was_established
            && negotiated.is_some_and(|n| n.graceful_restart.is_some());
        let main = self.main.take();
        for conn in [main, self.other.take()].into_iter().flatten() {
            let is_main = main == Some(conn);
            if is_main && keeps_routes {
                // Without the N bit any NOTIFICATION makes the peer drop our routes at once;
                // a bare TCP close is what RFC 4724 §4.2 treats as a restart.
                if negotiated.is_some_and(|n| n.has_graceful_notification()) {
                    out.push(Output::SendNotification(
                        conn.id,
                        Notification::administrative_reset(),
                    ));
                }
            } else {
                let n = Notification::administrative_shutdown();
                let n = if is_main { self.to_peer(n) } else { n };
                out.push(Output::SendNotification(conn.id, n));
            }
            out.push(Output::CloseConnection(conn.id));
        }
        if was_established {
            let reason = if keeps_routes {
                DownReason::PlannedRestart
            } else {
                DownReason::AdminStop
            };
            out.push(Output::SessionDown(reason));
        }
        self.cancel(TimerKind::ConnectRetry, out);
        self.cancel(TimerKind::Hold, out);
        self.cancel(TimerKind::Keepalive, out);
        self.is_started = false;
        self.negotiated = None;
        self.failures = 0;
        self.state = State::Idle;
    }

    /// AutomaticStop (RFC 4271 §8.1.2, event 8): the driver ends the session for a reason of
    /// its own (the peer sent too many prefixes, or does not read what we must send). Like any
    /// error: NOTIFICATION, close, Idle, and the restart delay grows (§8.2.2).
    pub(super) fn on_automatic_stop(
        &mut self,
        now: Instant,
        n: Notification,
        out: &mut Vec<Output>,
    ) {
        let is_open = matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        );
        let Some(main) = self.main.filter(|_| is_open) else {
            return;
        };
        let sent = self.to_peer(n.clone());
        self.fail_main(
            now,
            main.id,
            Some(sent),
            Some(DownReason::LocalNotification(n)),
            out,
        );
    }

    /// `n` as the peer of the main connection must receive it: wrapped in a Hard Reset when
    /// both sides set the N bit and RFC 8538 §5.1 lists it.
    pub(super) fn to_peer(&self, n: Notification) -> Notification {
        let has_n_bit = self
            .negotiated
            .is_some_and(|neg| neg.has_graceful_notification());
        if has_n_bit && n.needs_hard_reset() {
            n.into_hard_reset()
        } else {
            n
        }
    }
}
