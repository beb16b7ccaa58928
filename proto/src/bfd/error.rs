//! What can go wrong: [`DropReason`] for a received packet we do not act on (counted, never an
//! error), [`ProfileError`] for timers we refuse, and [`BfdError`] for requests the speaker
//! makes to the BFD task.

use std::io;
use std::net::IpAddr;

/// Why a received packet was discarded (RFC 5880 §6.8.6, RFC 5881 §5, RFC 5883 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Fewer than the 4 bytes that hold version, flags, multiplier and length.
    Truncated,
    /// §6.8.6: the version is not 1.
    BadVersion,
    /// §6.8.6: Length under 24 (A clear) or 26 (A set).
    LengthBelowMinimum,
    /// §6.8.6: Length larger than the UDP payload.
    LengthOverPayload,
    /// §6.8.6: Detect Mult is 0.
    ZeroDetectMult,
    /// §6.8.6: the Multipoint bit is set.
    Multipoint,
    /// §6.8.6: My Discriminator is 0.
    ZeroMyDiscriminator,
    /// §6.8.6: Your Discriminator is 0 while the state is neither Down nor AdminDown.
    ZeroYourDiscriminator,
    /// §6.8.6: the A bit is set and we run no authentication.
    AuthenticationNotInUse,
    /// §6.8.6: Your Discriminator names no session of ours.
    UnknownDiscriminator,
    /// §6.8.6: Your Discriminator is 0 and no session matches the addresses.
    NoSessionForAddress,
    /// The session of that discriminator is for another peer address, interface or local
    /// address than the packet's.
    AddressMismatch,
    /// A single-hop session's packet arrived on the multihop port, or the reverse.
    WrongPort,
    /// RFC 5881 §5: a single-hop packet with a TTL (hop limit) other than 255.
    TtlNot255,
    /// RFC 5883 §5: a multihop packet with a TTL under the session's minimum.
    TtlBelowMinimum,
    /// The kernel gave no TTL (hop limit) for the packet, so the TTL rules cannot be checked.
    NoTtl,
}

impl DropReason {
    /// Every reason, in declaration order (for metric initialisation and dense counters).
    pub const ALL: [DropReason; 16] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::LengthBelowMinimum,
        DropReason::LengthOverPayload,
        DropReason::ZeroDetectMult,
        DropReason::Multipoint,
        DropReason::ZeroMyDiscriminator,
        DropReason::ZeroYourDiscriminator,
        DropReason::AuthenticationNotInUse,
        DropReason::UnknownDiscriminator,
        DropReason::NoSessionForAddress,
        DropReason::AddressMismatch,
        DropReason::WrongPort,
        DropReason::TtlNot255,
        DropReason::TtlBelowMinimum,
        DropReason::NoTtl,
    ];

    /// Stable CamelCase label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DropReason::Truncated => "Truncated",
            DropReason::BadVersion => "BadVersion",
            DropReason::LengthBelowMinimum => "LengthBelowMinimum",
            DropReason::LengthOverPayload => "LengthOverPayload",
            DropReason::ZeroDetectMult => "ZeroDetectMult",
            DropReason::Multipoint => "Multipoint",
            DropReason::ZeroMyDiscriminator => "ZeroMyDiscriminator",
            DropReason::ZeroYourDiscriminator => "ZeroYourDiscriminator",
            DropReason::AuthenticationNotInUse => "AuthenticationNotInUse",
            DropReason::UnknownDiscriminator => "UnknownDiscriminator",
            DropReason::NoSessionForAddress => "NoSessionForAddress",
            DropReason::AddressMismatch => "AddressMismatch",
            DropReason::WrongPort => "WrongPort",
            DropReason::TtlNot255 => "TtlNot255",
            DropReason::TtlBelowMinimum => "TtlBelowMinimum",
            DropReason::NoTtl => "NoTtl",
        }
    }

    /// Position in [`DropReason::ALL`], for dense per-reason counters.
    pub fn index(&self) -> usize {
        *self as usize
    }
}

/// A BFD profile value FerroLB cannot run. `field` is the `BFDProfile` spec field, so the
/// speaker can name the object and the field in its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Echo mode is not implemented.
    #[error("{field}: echo mode is not supported by FerroLB's BFD; set it to false")]
    EchoModeUnsupported {
        /// Always `echoMode`.
        field: &'static str,
    },
    /// A value outside what the protocol can carry or MetalLB allows.
    #[error("{field}: {value} is outside {min}..={max}")]
    OutOfRange {
        /// `receiveInterval`, `transmitInterval`, `detectMultiplier` or `minimumTtl`.
        field: &'static str,
        /// The value given (milliseconds for intervals).
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
}

impl ProfileError {
    /// Stable CamelCase label for metrics, Events and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ProfileError::EchoModeUnsupported { .. } => "BFDEchoModeUnsupported",
            ProfileError::OutOfRange { .. } => "BFDProfileOutOfRange",
        }
    }
}

/// A request to the BFD task that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    /// The profile cannot be run.
    #[error("BFD profile: {0}")]
    Profile(#[from] ProfileError),
    /// A session with the same peer, local address, hop mode and interface exists.
    #[error("a BFD session to {peer} with the same local address, mode and interface exists")]
    Duplicate {
        /// The peer address.
        peer: IpAddr,
    },
    /// No session has that key.
    #[error("no BFD session to {peer} with that local address, mode and interface")]
    UnknownSession {
        /// The peer address.
        peer: IpAddr,
    },
    /// Peer and local address are of different families, or an IPv6 link-local peer has no
    /// interface to reach it through.
    #[error("BFD session to {peer}: {problem}")]
    BadAddress {
        /// The peer address.
        peer: IpAddr,
        /// What is wrong.
        problem: &'static str,
    },
    /// Opening, binding or configuring a socket failed.
    #[error("BFD {what}: {source}")]
    Socket {
        /// Which socket and step, e.g. "bind source port for 192.0.2.1".
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// Every source port of the range is taken.
    #[error("no free BFD source port for the session to {peer}")]
    NoSourcePort {
        /// The peer address.
        peer: IpAddr,
    },
    /// The BFD task has stopped.
    #[error("the BFD task has stopped")]
    Stopped,
}

impl BfdError {
    /// Stable CamelCase label for metrics, Events and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            BfdError::Profile(e) => e.reason(),
            BfdError::Duplicate { .. } => "BFDDuplicateSession",
            BfdError::UnknownSession { .. } => "BFDUnknownSession",
            BfdError::BadAddress { .. } => "BFDBadAddress",
            BfdError::Socket { .. } => "BFDSocket",
            BfdError::NoSourcePort { .. } => "BFDNoSourcePort",
            BfdError::Stopped => "BFDStopped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_at_its_index() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{}", r.reason());
        }
    }
}
