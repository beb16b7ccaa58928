//! OPEN contents, their validation (RFC 4271 §6.2, RFC 6793, RFC 6286) and capability negotiation
//! (RFC 5492) as pure functions.
//!
//! [`Open`] is the summary of an OPEN in either direction; the netgauze glue turns it into bytes
//! and back. [`negotiate`] checks a received OPEN against our configuration and returns either the
//! [`Negotiated`] session parameters or the NOTIFICATION to send. No I/O, no clock.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::notification::{Notification, code, open as open_sub};

/// AS_TRANS (RFC 6793): the 2-octet placeholder for a 4-octet AS number.
pub const AS_TRANS: u16 = 23456;

/// The only BGP version there is (RFC 4271 §4.2).
pub const BGP_VERSION: u8 = 4;

/// Largest message without RFC 8654 Extended Messages.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Largest message once both sides announced RFC 8654 Extended Messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// Address families FerroLB announces (AFI/SAFI unicast only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Families {
    /// IPv4 unicast (AFI 1, SAFI 1).
    pub ipv4_unicast: bool,
    /// IPv6 unicast (AFI 2, SAFI 1).
    pub ipv6_unicast: bool,
}

impl Families {
    /// Both IPv4 and IPv6 unicast.
    pub const DUAL: Families = Families {
        ipv4_unicast: true,
        ipv6_unicast: true,
    };

    /// Families present in both sets.
    pub fn intersection(self, other: Families) -> Families {
        Families {
            ipv4_unicast: self.ipv4_unicast && other.ipv4_unicast,
            ipv6_unicast: self.ipv6_unicast && other.ipv6_unicast,
        }
    }
}

/// Largest Restart Time the 12-bit field carries (RFC 4724 §3).
pub const MAX_RESTART_TIME_SECS: u64 = 4095;

/// The Graceful Restart capability (RFC 4724 §3, RFC 8538 §2), reduced to what we act on.
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits: R, N, 0, 0) | Restart Time in seconds (12 bits) |
/// +--------------------------------------------------+
/// | AFI (16 bits) | SAFI (8 bits) | Flags for Address Family (8 bits: F, 0...) | ...
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// Restart Time: how long the receiver keeps the sender's routes after the session drops.
    pub restart_time: Duration,
    /// The R bit: the sender has just restarted (its routes at the receiver are stale until
    /// its End-of-RIB).
    pub is_restarting: bool,
    /// The N bit (RFC 8538): the sender keeps the peer's routes across a NOTIFICATION too, not
    /// only across a TCP failure, unless it is a Cease / Hard Reset. FerroLB always sets it
    /// with GR, so that a NOTIFICATION we send (hold timer, a planned restart) keeps our
    /// routes at the peer.
    pub is_notification: bool,
    /// The AFI/SAFI tuples listed: families whose routes the receiver keeps across a restart.
    pub families: Families,
    /// Of those, the families with the F bit: forwarding was preserved across the restart.
    /// RFC 4724 §4.2: a receiver drops the stale routes of a family without it at once.
    pub forwarding: Families,
}

/// Capabilities (RFC 5492) of one OPEN that FerroLB understands; unknown ones are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities {
    /// Multiprotocol families (RFC 4760). An OPEN without any MP capability implies IPv4
    /// unicast only; the glue fills that in on decoding.
    pub families: Families,
    /// 4-octet AS capability (RFC 6793) with the sender's real AS number.
    pub four_octet_as: Option<u32>,
    /// Route Refresh (RFC 2918).
    pub route_refresh: bool,
    /// Graceful Restart (RFC 4724).
    pub graceful_restart: Option<GracefulRestart>,
    /// Extended Messages (RFC 8654).
    pub extended_message: bool,
}

/// Summary of one OPEN message (RFC 4271 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Open {
    /// Version field; 4 on everything we send.
    pub version: u8,
    /// "My Autonomous System", the 2-octet field (AS_TRANS when the real AS needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time_secs: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities understood by FerroLB.
    pub capabilities: Capabilities,
}

impl Open {
    /// The sender's AS number: the 4-octet capability when present, else the 2-octet field.
    pub fn peer_as(&self) -> u32 {
        self.capabilities
            .four_octet_as
            .unwrap_or(u32::from(self.my_as))
    }
}

/// Which AS the peer must have (MetalLB's `peerASN`, or the dynamic "internal"/"external").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAs {
    /// Exactly this AS.
    Fixed(u32),
    /// The same AS as ours (iBGP).
    Internal,
    /// Any AS other than ours (eBGP).
    External,
}

/// Our side of the session, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalSpeaker {
    /// Our AS number.
    pub local_as: u32,
    /// The AS we accept from the peer.
    pub peer_as: PeerAs,
    /// Our BGP identifier (non-zero).
    pub router_id: Ipv4Addr,
    /// Hold time we propose; 0 disables keepalives and the hold timer, else at least 3 s.
    pub hold_time: Duration,
    /// Families we want to announce.
    pub families: Families,
    /// Graceful Restart (RFC 4724) Restart Time we announce, at most 4095 s; `None` announces
    /// no GR capability, so peers drop our routes as soon as the session drops. Whether this
    /// process has just restarted is [`crate::bgp::fsm::Config::is_restarting`].
    pub graceful_restart: Option<Duration>,
    /// Announce RFC 8654 Extended Messages.
    pub extended_message: bool,
}

impl LocalSpeaker {
    /// The OPEN we send on a first start: GR (when configured) lists every family we announce,
    /// with the F bit set and the R bit clear. The session sets R and F per
    /// [`crate::bgp::fsm::Config`].
    pub fn open(&self) -> Open {
        let my_as = u16::try_from(self.local_as).unwrap_or(AS_TRANS);
        Open {
            version: BGP_VERSION,
            my_as,
            hold_time_secs: secs_u16(self.hold_time),
            bgp_id: self.router_id,
            capabilities: Capabilities {
                families: self.families,
                four_octet_as: Some(self.local_as),
                route_refresh: true,
                graceful_restart: self.graceful_restart.map(|restart_time| GracefulRestart {
                    restart_time,
                    is_restarting: false,
                    is_notification: true,
                    families: self.families,
                    forwarding: self.families,
                }),
                extended_message: self.extended_message,
            },
        }
    }
}

/// What both sides agreed on, passed explicitly to whoever encodes for this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Negotiated {
    /// The peer's AS number.
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// iBGP (same AS) or eBGP.
    pub is_ibgp: bool,
    /// min(ours, theirs); zero means no hold timer and no keepalives.
    pub hold_time: Duration,
    /// Time between our KEEPALIVEs: hold_time / 3 (zero when hold_time is zero); the session
    /// lowers it to its configured keepalive time ([`keepalive_interval`]).
    pub keepalive: Duration,
    /// Both sides sent the 4-octet AS capability: AS_PATH carries 4-octet numbers.
    pub four_octet_as: bool,
    /// Families both sides announced.
    pub families: Families,
    /// The peer can send ROUTE-REFRESH and expects us to answer it.
    pub route_refresh: bool,
    /// The peer's Graceful Restart capability, if it sent one and we sent ours.
    pub graceful_restart: Option<GracefulRestart>,
    /// Both sides announced Extended Messages.
    pub extended_message: bool,
}

impl Negotiated {
    /// Both sides set the Graceful Restart N bit (RFC 8538): a NOTIFICATION other than a Hard
    /// Reset leaves the routes at the receiver as stale, as a TCP failure does. Ours is set
    /// whenever we announce GR, and `graceful_restart` is only kept when we did.
    pub fn has_graceful_notification(&self) -> bool {
        self.graceful_restart.is_some_and(|gr| gr.is_notification)
    }

    /// Largest UPDATE we may send (RFC 8654).
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// Validates a received OPEN (RFC 4271 §6.2) and negotiates the session parameters.
///
/// Checks, in the order the RFC lists them: version, peer AS, hold time, BGP identifier.
pub fn negotiate(local: &LocalSpeaker, received: &Open) -> Result<Negotiated, Notification> {
    if received.version != BGP_VERSION {
        return Err(Notification::with_data(
            code::OPEN_MESSAGE,
            open_sub::UNSUPPORTED_VERSION,
            u16::from(BGP_VERSION).to_be_bytes(),
        ));
    }
    let bad_peer_as = || {
        Notification::with_data(
            code::OPEN_MESSAGE,
            open_sub::BAD_PEER_AS,
            received.my_as.to_be_bytes(),
        )
    };
    let peer_as = received.peer_as();
    // RFC 6793 §4.2.1: AS_TRANS is never a real AS; a 4-octet AS that fits 2 octets must match.
    if peer_as == u32::from(AS_TRANS)
        || (received.capabilities.four_octet_as.is_some()
            && received.my_as != AS_TRANS
            && u32::from(received.my_as) != peer_as)
    {
        return Err(bad_peer_as());
    }
    let is_ibgp = peer_as == local.local_as;
    let as_ok = match local.peer_as {
        PeerAs::Fixed(asn) => asn == peer_as,
        PeerAs::Internal => is_ibgp,
        PeerAs::External => !is_ibgp,
    };
    if !as_ok {
        return Err(bad_peer_as());
    }
    // RFC 4271 §6.2: "An implementation MUST reject Hold Time values of one or two seconds."
    if matches!(received.hold_time_secs, 1 | 2) {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            open_sub::UNACCEPTABLE_HOLD_TIME,
        ));
    }
    // RFC 6286: the identifier is a non-zero 4-octet value, unique within the AS.
    if received.bgp_id.is_unspecified() || (is_ibgp && received.bgp_id == local.router_id) {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            open_sub::BAD_BGP_IDENTIFIER,
        ));
    }
    let ours = secs_u16(local.hold_time);
    let hold_secs = ours.min(received.hold_time_secs);
    let hold_time = Duration::from_secs(u64::from(hold_secs));
    let caps = &received.capabilities;
    Ok(Negotiated {
        peer_as,
        peer_id: received.bgp_id,
        is_ibgp,
        hold_time,
        keepalive: keepalive_interval(hold_time, None),
        four_octet_as: caps.four_octet_as.is_some(),
        families: local.families.intersection(caps.families),
        route_refresh: caps.route_refresh,
        graceful_restart: caps
            .graceful_restart
            .filter(|_| local.graceful_restart.is_some()),
        extended_message: local.extended_message && caps.extended_message,
    })
}

/// The interval between our KEEPALIVEs for a negotiated hold time and the configured keepalive
/// time (MetalLB's `keepaliveTime`), in whole seconds.
///
/// RFC 4271 §4.4: "A reasonable maximum time between KEEPALIVE messages would be one third of
/// the Hold Time interval. KEEPALIVE messages MUST NOT be sent more frequently than one per
/// second." So: min(configured, hold / 3), at least 1 s; zero when the hold time is zero.
pub fn keepalive_interval(hold_time: Duration, configured: Option<Duration>) -> Duration {
    let hold_secs = hold_time.as_secs();
    if hold_secs == 0 {
        return Duration::ZERO;
    }
    let third = hold_secs / 3;
    let secs = configured.map_or(third, |k| k.as_secs().min(third));
    Duration::from_secs(secs.max(1))
}

/// A duration as whole seconds in a 2-octet field, saturating.
fn secs_u16(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}
