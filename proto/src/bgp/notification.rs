//! NOTIFICATION codes and subcodes (RFC 4271 §4.5, §6; RFC 6608; RFC 4486; RFC 8538's Hard Reset)
//! as plain values.
//!
//! The state machine speaks in [`Notification`] values; the netgauze glue turns them into wire
//! messages and back. No I/O here.

use std::fmt;

/// RFC 4271 §4.5 error codes.
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Subcodes of Message Header Error (RFC 4271 §6.1).
pub mod header {
    /// Connection Not Synchronized (the marker is not all ones).
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length; data is the 2-octet length field.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type; data is the type octet.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// Subcodes of OPEN Message Error (RFC 4271 §6.2, RFC 5492).
pub mod open {
    /// Unsupported Version Number; data is the largest version we support (2 octets).
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Subcodes of Finite State Machine Error (RFC 6608).
pub mod fsm {
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Subcodes of Cease (RFC 4486, RFC 8538).
pub mod cease {
    /// Maximum Number of Prefixes Reached; data is AFI (2), SAFI (1), the limit (4).
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard Reset (RFC 8538 §3): data is the NOTIFICATION it stands for (code, subcode, data).
    pub const HARD_RESET: u8 = 9;
}

/// One NOTIFICATION as (code, subcode, data), the form RFC 4271 §4.5 puts on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code, see [`code`].
    pub code: u8,
    /// Error subcode; 0 means unspecific.
    pub subcode: u8,
    /// Diagnostic data whose meaning depends on (code, subcode).
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with no data.
    pub fn new(code: u8, subcode: u8) -> Self {
        Self {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A NOTIFICATION carrying diagnostic data.
    pub fn with_data(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Self {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// Hold Timer Expired (4/0).
    pub fn hold_timer_expired() -> Self {
        Self::new(code::HOLD_TIMER_EXPIRED, 0)
    }

    /// Cease / Administrative Shutdown (6/2), sent on a clean stop.
    pub fn administrative_shutdown() -> Self {
        Self::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)
    }

    /// Cease / Connection Collision Resolution (6/7), sent on the connection that loses §6.8.
    pub fn collision_resolution() -> Self {
        Self::new(code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION)
    }

    /// Cease / Administrative Reset (6/4): the session goes down and comes back (a planned
    /// restart). Never sent as a Hard Reset, so with RFC 8538 the peer keeps our routes.
    pub fn administrative_reset() -> Self {
        Self::new(code::CEASE, cease::ADMINISTRATIVE_RESET)
    }

    /// Cease / Out of Resources (6/8): the peer does not read what we must send.
    pub fn out_of_resources() -> Self {
        Self::new(code::CEASE, cease::OUT_OF_RESOURCES)
    }

    /// Cease / Maximum Number of Prefixes Reached (6/1) for one AFI/SAFI and its limit
    /// (RFC 4486 §4).
    pub fn max_prefixes(afi: u16, safi: u8, limit: u32) -> Self {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&afi.to_be_bytes());
        data.push(safi);
        data.extend_from_slice(&limit.to_be_bytes());
        Self::with_data(code::CEASE, cease::MAX_PREFIXES, data)
    }

    /// Whether RFC 8538 §5.1 asks for this NOTIFICATION to go out as a Hard Reset once the N
    /// bit is negotiated: the Cease subcodes that mean "drop my routes now" (maximum prefixes,
    /// administrative shutdown, peer de-configured). Every other NOTIFICATION then lets the
    /// peer keep our routes as stale, as a TCP failure would.
    pub fn needs_hard_reset(&self) -> bool {
        self.code == code::CEASE
            && matches!(
                self.subcode,
                cease::MAX_PREFIXES | cease::ADMINISTRATIVE_SHUTDOWN | cease::PEER_DECONFIGURED
            )
    }

    /// This NOTIFICATION wrapped in a Cease / Hard Reset (6/9): the data carries its code,
    /// subcode and data (RFC 8538 §3). Data beyond what a 4096-octet message holds is cut when
    /// encoded.
    pub fn into_hard_reset(self) -> Self {
        let mut data = Vec::with_capacity(2 + self.data.len());
        data.extend_from_slice(&[self.code, self.subcode]);
        data.extend_from_slice(&self.data);
        Self::with_data(code::CEASE, cease::HARD_RESET, data)
    }

    /// The NOTIFICATION a Hard Reset stands for; `None` for anything else or a Hard Reset
    /// without the two octets.
    pub fn hard_reset_inner(&self) -> Option<Notification> {
        if (self.code, self.subcode) != (code::CEASE, cease::HARD_RESET) {
            return None;
        }
        match self.data.as_slice() {
            [c, s, data @ ..] => Some(Self::with_data(*c, *s, data)),
            _ => None,
        }
    }

    /// A stable CamelCase name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "ConnectionNotSynchronized"
            }
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH) => "BadMessageLength",
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE) => "BadMessageType",
            (code::MESSAGE_HEADER, _) => "MessageHeaderError",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_VERSION) => "UnsupportedVersionNumber",
            (code::OPEN_MESSAGE, open::BAD_PEER_AS) => "BadPeerAs",
            (code::OPEN_MESSAGE, open::BAD_BGP_IDENTIFIER) => "BadBgpIdentifier",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "UnsupportedOptionalParameter"
            }
            (code::OPEN_MESSAGE, open::UNACCEPTABLE_HOLD_TIME) => "UnacceptableHoldTime",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_CAPABILITY) => "UnsupportedCapability",
            (code::OPEN_MESSAGE, _) => "OpenMessageError",
            (code::UPDATE_MESSAGE, _) => "UpdateMessageError",
            (code::HOLD_TIMER_EXPIRED, _) => "HoldTimerExpired",
            (code::FSM, _) => "FiniteStateMachineError",
            (code::CEASE, cease::MAX_PREFIXES) => "MaximumPrefixesReached",
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "AdministrativeShutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "PeerDeconfigured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "AdministrativeReset",
            (code::CEASE, cease::CONNECTION_REJECTED) => "ConnectionRejected",
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "ConnectionCollisionResolution"
            }
            (code::CEASE, cease::OUT_OF_RESOURCES) => "OutOfResources",
            (code::CEASE, cease::HARD_RESET) => "HardReset",
            (code::CEASE, _) => "Cease",
            (code::ROUTE_REFRESH, _) => "RouteRefreshError",
            _ => "UnknownNotification",
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.reason(), self.code, self.subcode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_reset_carries_the_notification_it_stands_for() {
        let max = Notification::max_prefixes(2, 1, 100);
        let hard = max.clone().into_hard_reset();
        assert_eq!((hard.code, hard.subcode), (6, 9));
        assert_eq!(hard.data, vec![6, 1, 0, 2, 1, 0, 0, 0, 100]);
        assert_eq!(hard.hard_reset_inner(), Some(max));
        assert_eq!(hard.reason(), "HardReset");
        assert_eq!(Notification::new(6, 9).hard_reset_inner(), None);
        assert_eq!(Notification::new(6, 2).hard_reset_inner(), None);
    }

    #[test]
    fn only_the_ceases_that_mean_drop_my_routes_need_a_hard_reset() {
        let needs: Vec<u8> = (0..=10)
            .filter(|s| Notification::new(code::CEASE, *s).needs_hard_reset())
            .collect();
        assert_eq!(needs, vec![1, 2, 3]);
        assert!(!Notification::hold_timer_expired().needs_hard_reset());
        assert!(!Notification::new(code::UPDATE_MESSAGE, 1).needs_hard_reset());
    }
}
