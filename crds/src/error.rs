//! Configuration problems as typed values: which object, which field, what is wrong.
//!
//! They print as `IPAddressPool/lab: spec.addresses[1]: "10.0.0.5-10.0.0.1": range end before start`,
//! the form `ferrolb-controller validate`, the webhook and the ConfigurationState all show.

use std::fmt;

use crate::addr::RangeError;
use crate::community::CommunityError;
use crate::duration::DurationError;
use crate::selector::SelectorError;

/// A FerroLB configuration kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `IPAddressPool`.
    IPAddressPool,
    /// `L2Advertisement`.
    L2Advertisement,
    /// `BGPAdvertisement`.
    BGPAdvertisement,
    /// `BGPPeer`.
    BGPPeer,
    /// `BFDProfile`.
    BFDProfile,
    /// `Community`.
    Community,
}

impl Kind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IPAddressPool => "IPAddressPool",
            Kind::L2Advertisement => "L2Advertisement",
            Kind::BGPAdvertisement => "BGPAdvertisement",
            Kind::BGPPeer => "BGPPeer",
            Kind::BFDProfile => "BFDProfile",
            Kind::Community => "Community",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Kind of the faulty object.
    pub kind: Kind,
    /// `metadata.name` of the faulty object (empty if it has none).
    pub name: String,
    /// JSON path of the faulty field (`spec.addresses[1]`); empty for the object as a whole.
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

impl ConfigError {
    /// A problem at `field` of `kind/name`.
    pub fn new(kind: Kind, name: &str, field: impl Into<String>, problem: Problem) -> Self {
        ConfigError {
            kind,
            name: name.to_owned(),
            field: field.into(),
            problem,
        }
    }

    /// Stable CamelCase reason for metrics, Events and logs.
    pub fn reason(&self) -> &'static str {
        self.problem.reason()
    }

    /// Whether the problem is a reference to something that may still appear (a Secret, a
    /// BFDProfile, a Community alias). The webhook admits such an object with a warning, as
    /// MetalLB's does; a running component leaves the object out (keeping its last valid version)
    /// and reports the configuration Invalid until the reference resolves.
    pub fn is_transient(&self) -> bool {
        self.problem.is_transient()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        write!(f, "{}/{}: ", self.kind, name)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A mandatory field is absent or empty.
    #[error("required")]
    Required,
    /// A field of the wrong type or shape.
    #[error("{0}")]
    Malformed(String),
    /// The same object in two places.
    #[error("defined twice, in {0}")]
    DefinedTwice(String),
    /// A field the kind does not have (a typo, or a newer MetalLB field).
    #[error("unknown field")]
    UnknownField,
    /// A pool entry that is not an address range.
    #[error("{value:?}: {source}")]
    InvalidRange {
        /// The entry as written.
        value: String,
        /// Why it does not parse.
        source: RangeError,
    },
    /// Two pool entries share addresses.
    #[error("{value:?} overlaps with {other}")]
    Overlap {
        /// The entry as written.
        value: String,
        /// The other entry, as `Kind/name field "value"`.
        other: String,
    },
    /// A list holds the same value twice.
    #[error("duplicate value {0:?}")]
    Duplicate(String),
    /// A label selector that Kubernetes would refuse.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A community value or alias that does not resolve.
    #[error(transparent)]
    Community(#[from] CommunityError),
    /// A Community alias defined twice.
    #[error("alias {alias:?} is already defined by {other}")]
    DuplicateAlias {
        /// The alias.
        alias: String,
        /// Where it was defined first.
        other: String,
    },
    /// A number outside its allowed range.
    #[error("{value} is out of range ({min} to {max})")]
    OutOfRange {
        /// The value given.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// Text that must be an IP address.
    #[error("{0:?} is not an IP address")]
    InvalidIp(String),
    /// A BGP identifier must be 4 octets (RFC 6286), so an IPv4 address.
    #[error("{0:?} is not an IPv4 address (a BGP router ID is 32 bits)")]
    RouterIdNotIpv4(String),
    /// Two fields that exclude each other are both set.
    #[error("cannot be used together with {0}")]
    Exclusive(&'static str),
    /// Neither of two alternative fields is set.
    #[error("exactly one of {0} and {1} must be set")]
    OneOfRequired(&'static str, &'static str),
    /// A Go duration that does not parse.
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// A hold time of 1 or 2 seconds (RFC 4271 §4.2 allows 0 or ≥ 3).
    #[error("hold time {0:?} must be 0 or at least 3s")]
    HoldTimeTooShort(String),
    /// Keepalive longer than hold time.
    #[error("keepalive time {keepalive:?} must not exceed hold time {hold:?}")]
    KeepaliveExceedsHold {
        /// Keepalive as written or derived.
        keepalive: String,
        /// Hold time as written or derived.
        hold: String,
    },
    /// connectTime outside 1–65535 s or not whole seconds.
    #[error("connect time {0:?} must be a whole number of seconds from 1 to 65535")]
    InvalidConnectTime(String),
    /// ebgpMultiHop on an iBGP session.
    #[error("ebgpMultiHop cannot be set for an iBGP peer (peerASN equals myASN)")]
    MultihopWithIbgp,
    /// A reference to an object that does not exist (yet).
    #[error("{kind} {name:?} does not exist")]
    MissingReference {
        /// Kind of the referenced object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A reference to an object that exists but is invalid itself (its own problem says why).
    #[error("{kind} {name:?} is invalid")]
    InvalidReference {
        /// Kind of the referenced object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A password Secret of the wrong type.
    #[error("secret {name:?} has type {found:?}, expected \"kubernetes.io/basic-auth\"")]
    SecretWrongType {
        /// Secret name.
        name: String,
        /// Its type.
        found: String,
    },
    /// A password Secret without the `password` key.
    #[error("secret {0:?} has no \"password\" key")]
    SecretMissingPassword(String),
    /// An aggregation length past the address width.
    #[error("aggregation length {length} is longer than {max}")]
    AggregationTooLong {
        /// The length given.
        length: i32,
        /// The address width.
        max: u8,
    },
    /// An aggregation length shorter than a block of a pool it applies to.
    #[error(
        "aggregation length {length} is shorter than /{shortest} of {pool} entry {entry:?}: it would announce addresses outside the pool"
    )]
    AggregationTooShort {
        /// The length given.
        length: i32,
        /// The widest prefix of the entry.
        shortest: u8,
        /// The pool.
        pool: String,
        /// The entry as written.
        entry: String,
    },
    /// serviceSelectors together with aggregation.
    #[error(
        "serviceSelectors can only be used with aggregationLength 32 and aggregationLengthV6 128"
    )]
    ServiceSelectorsWithAggregation,
    /// Two advertisements of one pool that would announce the same prefix with different LOCAL_PREF.
    #[error(
        "localPref {ours} conflicts with localPref {theirs} of {other} for pool {pool:?}{hint}"
    )]
    LocalPrefConflict {
        /// Our localPref.
        ours: u32,
        /// Theirs.
        theirs: u32,
        /// The other advertisement.
        other: String,
        /// The pool both announce.
        pool: String,
        /// Why disjointness could not be shown.
        hint: &'static str,
    },
    /// A BFDProfile asking for echo mode: FerroLB's BFD runs no echo function (MetalLB has it
    /// only through FRR), so the profile cannot be run as written.
    #[error(
        "echo mode is not supported by FerroLB's BFD (asynchronous mode only); set it to false or leave it out"
    )]
    BfdEchoUnsupported,
    /// Two peers that would open the same session from one node.
    #[error("peers the same neighbour as {other} ({identifier}) on nodes they both select")]
    DuplicatePeer {
        /// The other peer.
        other: String,
        /// Address or interface, with the VRF.
        identifier: String,
    },
}

impl Problem {
    /// Stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::Required => "Required",
            Problem::Malformed(_) => "MalformedField",
            Problem::UnknownField => "UnknownField",
            Problem::DefinedTwice(_) => "DefinedTwice",
            Problem::InvalidRange { source, .. } => source.reason(),
            Problem::Overlap { .. } => "OverlappingAddresses",
            Problem::Duplicate(_) => "DuplicateValue",
            Problem::Selector(_) => "InvalidSelector",
            Problem::Community(e) => e.reason(),
            Problem::DuplicateAlias { .. } => "DuplicateCommunityAlias",
            Problem::OutOfRange { .. } => "OutOfRange",
            Problem::InvalidIp(_) => "InvalidIP",
            Problem::RouterIdNotIpv4(_) => "InvalidRouterID",
            Problem::Exclusive(_) => "MutuallyExclusive",
            Problem::OneOfRequired(..) => "OneOfRequired",
            Problem::Duration(_) => "InvalidDuration",
            Problem::HoldTimeTooShort(_) => "InvalidHoldTime",
            Problem::KeepaliveExceedsHold { .. } => "InvalidKeepaliveTime",
            Problem::InvalidConnectTime(_) => "InvalidConnectTime",
            Problem::MultihopWithIbgp => "MultihopWithIBGP",
            Problem::MissingReference { .. } => "MissingReference",
            Problem::InvalidReference { .. } => "InvalidReference",
            Problem::SecretWrongType { .. } => "InvalidSecretType",
            Problem::SecretMissingPassword(_) => "MissingSecretKey",
            Problem::AggregationTooLong { .. } | Problem::AggregationTooShort { .. } => {
                "InvalidAggregationLength"
            }
            Problem::ServiceSelectorsWithAggregation => "ServiceSelectorsWithAggregation",
            Problem::LocalPrefConflict { .. } => "LocalPrefConflict",
            Problem::BfdEchoUnsupported => "BFDEchoModeUnsupported",
            Problem::DuplicatePeer { .. } => "DuplicatePeer",
        }
    }

    /// References that may resolve later (MetalLB's `TransientError`): see
    /// [`ConfigError::is_transient`].
    pub fn is_transient(&self) -> bool {
        match self {
            Problem::MissingReference { .. } | Problem::InvalidReference { .. } => true,
            Problem::Community(e) => e.is_transient(),
            _ => false,
        }
    }
}
