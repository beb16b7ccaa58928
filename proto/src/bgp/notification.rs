//! NOTIFICATION codes and subcodes (RFC 4271 §4.5, §6; RFC 6608; RFC 4486) as plain values.
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

/// Subcodes of Cease (RFC 4486).
pub mod cease {
    /// Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
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
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "AdministrativeShutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "PeerDeconfigured",
            (code::CEASE, cease::CONNECTION_REJECTED) => "ConnectionRejected",
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "ConnectionCollisionResolution"
            }
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
