//! Glue between FerroLB's BGP values and the `netgauze-bgp-pkt` wire codec.
//!
//! Owns: the length-checked framer (RFC 4271 §4.1, §6.1), decoding one frame into a [`Received`]
//! message or the NOTIFICATION that answers it, and encoding OPEN, KEEPALIVE and NOTIFICATION.
//! Pure: bytes in, values out; no I/O.
//!
//! NOTIFICATION is read and written here directly (code, subcode, data): netgauze models it as an
//! enum of known subcodes and rejects the others, while a peer may send any subcode.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::wire::serializer::BgpMessageWritingError;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

use super::notification::{Notification, code, header};
use super::open::{
    Capabilities, Families, GracefulRestart, MAX_MESSAGE_LEN, MAX_RESTART_TIME_SECS, Open,
};

/// Length of the fixed header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;

/// Message type codes (RFC 4271 §4.1, RFC 2918), the octet after the length.
pub mod msg_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH.
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Failure to encode a message we built.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the limit negotiated for the session.
    #[error("encoded message of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Encoded length.
        len: usize,
        /// The limit (4096, or 65535 with RFC 8654).
        limit: usize,
    },
    /// netgauze refused to write the message.
    #[error("netgauze could not write the message: {0}")]
    Codec(#[from] BgpMessageWritingError),
}

impl EncodeError {
    /// A stable CamelCase name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            EncodeError::TooLong { .. } => "MessageTooLong",
            EncodeError::Codec(_) => "CodecWriteError",
        }
    }
}

/// One decoded message, reduced to what the session needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// OPEN, summarised.
    Open(Open),
    /// UPDATE (FerroLB announces only; the contents are not used beyond validation).
    Update(Box<BgpUpdateMessage>),
    /// NOTIFICATION as (code, subcode, data).
    Notification(Notification),
    /// KEEPALIVE.
    KeepAlive,
    /// ROUTE-REFRESH.
    RouteRefresh,
}

/// Why a frame was refused; the NOTIFICATION to send and which RFC 4271 event it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Event 21 (BGPHeaderErr).
    Header(Notification),
    /// Event 22 (BGPOpenMsgErr).
    Open(Notification),
    /// Event 28 (UpdateMsgErr), also used for malformed ROUTE-REFRESH.
    Update(Notification),
}

impl FrameError {
    /// The NOTIFICATION that answers the bad frame.
    pub fn notification(&self) -> &Notification {
        match self {
            FrameError::Header(n) | FrameError::Open(n) | FrameError::Update(n) => n,
        }
    }
}

/// Splits one whole message off the front of `buf`, checking the header first (RFC 4271 §6.1).
///
/// Returns `Ok(None)` until a whole message is buffered. `max_len` is 4096, or 65535 once
/// Extended Messages were negotiated; OPEN and KEEPALIVE are always limited to 4096.
pub fn split_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16].iter().any(|b| *b != 0xff) {
        return Err(FrameError::Header(Notification::new(
            code::MESSAGE_HEADER,
            header::CONNECTION_NOT_SYNCHRONIZED,
        )));
    }
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    let kind = buf[18];
    let type_max = match kind {
        msg_type::OPEN | msg_type::KEEPALIVE => MAX_MESSAGE_LEN,
        _ => max_len,
    };
    let min = match kind {
        msg_type::OPEN => HEADER_LEN + 10,
        msg_type::UPDATE => HEADER_LEN + 4,
        msg_type::NOTIFICATION => HEADER_LEN + 2,
        msg_type::ROUTE_REFRESH => HEADER_LEN + 4,
        _ => HEADER_LEN,
    };
    let is_bad_len =
        len < min || len > type_max || (kind == msg_type::KEEPALIVE && len != HEADER_LEN);
    if !(msg_type::OPEN..=msg_type::ROUTE_REFRESH).contains(&kind) {
        return Err(FrameError::Header(Notification::with_data(
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_TYPE,
            [kind],
        )));
    }
    if is_bad_len {
        return Err(FrameError::Header(Notification::with_data(
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            (len as u16).to_be_bytes(),
        )));
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(buf.split_to(len).freeze()))
}

/// Decodes one frame produced by [`split_frame`].
///
/// `four_octet_as` is the negotiated AS number width (false before OPEN is exchanged).
pub fn decode(frame: &[u8], four_octet_as: bool) -> Result<Received, FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::Header(Notification::new(
            code::MESSAGE_HEADER,
            0,
        )));
    }
    if frame[18] == msg_type::NOTIFICATION {
        let body = &frame[HEADER_LEN..];
        return match body {
            [c, s, data @ ..] => Ok(Received::Notification(Notification::with_data(
                *c, *s, data,
            ))),
            _ => Err(FrameError::Header(Notification::new(
                code::MESSAGE_HEADER,
                0,
            ))),
        };
    }
    // FerroLB only originates routes; what peers send is validated for framing, not used. So
    // attribute and capability problems netgauze can tolerate are tolerated (RFC 7606 spirit)
    // instead of resetting the session.
    let mut ctx = BgpParsingContext::new(
        four_octet_as,
        HashMap::new(),
        HashMap::new(),
        false,
        false,
        false,
        false,
    );
    let mut reader = SliceReader::new(frame);
    let kind = frame[18];
    match BgpMessage::parse(&mut reader, &mut ctx) {
        Ok(BgpMessage::Open(open)) => Ok(Received::Open(open_from_wire(&open))),
        Ok(BgpMessage::Update(update)) => Ok(Received::Update(Box::new(update))),
        Ok(BgpMessage::KeepAlive) => Ok(Received::KeepAlive),
        Ok(BgpMessage::RouteRefresh(_)) => Ok(Received::RouteRefresh),
        Ok(BgpMessage::Notification(n)) => Ok(Received::Notification(notification_from_wire(n))),
        Err(err) => {
            let n = notification_from_wire(err.into());
            Err(match kind {
                msg_type::OPEN if n.code == code::OPEN_MESSAGE => FrameError::Open(n),
                msg_type::OPEN => FrameError::Open(Notification::new(code::OPEN_MESSAGE, 0)),
                _ if n.code == code::MESSAGE_HEADER => FrameError::Header(n),
                _ => FrameError::Update(n),
            })
        }
    }
}

/// (code, subcode, data) of a netgauze NOTIFICATION, read back from its own encoding.
fn notification_from_wire(n: BgpNotificationMessage) -> Notification {
    let mut buf = Vec::new();
    match BgpMessage::Notification(n).write(&mut buf) {
        Ok(()) => match buf.get(HEADER_LEN..) {
            Some([c, s, data @ ..]) => Notification::with_data(*c, *s, data),
            _ => Notification::new(code::MESSAGE_HEADER, 0),
        },
        Err(_) => Notification::new(code::MESSAGE_HEADER, 0),
    }
}

/// The summary of a netgauze OPEN. Without any MP capability the peer speaks IPv4 unicast only
/// (RFC 4760 §1).
pub fn open_from_wire(open: &BgpOpenMessage) -> Open {
    let mut caps = Capabilities::default();
    let mut has_mp = false;
    for cap in open.capabilities() {
        match cap {
            BgpCapability::MultiProtocolExtensions(mp) => {
                has_mp = true;
                match mp.address_type() {
                    AddressType::Ipv4Unicast => caps.families.ipv4_unicast = true,
                    AddressType::Ipv6Unicast => caps.families.ipv6_unicast = true,
                    _ => {}
                }
            }
            BgpCapability::FourOctetAs(asn) => caps.four_octet_as = Some(asn.asn4()),
            BgpCapability::RouteRefresh | BgpCapability::EnhancedRouteRefresh => {
                caps.route_refresh = true
            }
            BgpCapability::GracefulRestartCapability(gr) => {
                let mut families = Families::default();
                let mut forwarding = Families::default();
                for af in gr.address_families() {
                    let (listed, preserved) = match af.address_type() {
                        AddressType::Ipv4Unicast => {
                            (&mut families.ipv4_unicast, &mut forwarding.ipv4_unicast)
                        }
                        AddressType::Ipv6Unicast => {
                            (&mut families.ipv6_unicast, &mut forwarding.ipv6_unicast)
                        }
                        _ => continue,
                    };
                    *listed = true;
                    *preserved |= af.forwarding_state();
                }
                caps.graceful_restart = Some(GracefulRestart {
                    restart_time: Duration::from_secs(u64::from(gr.time())),
                    is_restarting: gr.restart(),
                    is_notification: gr.graceful_notification(),
                    families,
                    forwarding,
                })
            }
            BgpCapability::ExtendedMessage => caps.extended_message = true,
            _ => {}
        }
    }
    if !has_mp {
        caps.families = Families {
            ipv4_unicast: true,
            ipv6_unicast: false,
        };
    }
    Open {
        version: open.version(),
        my_as: open.my_as(),
        hold_time_secs: open.hold_time(),
        bgp_id: open.bgp_id(),
        capabilities: caps,
    }
}

/// The netgauze OPEN for our summary.
pub fn open_to_wire(open: &Open) -> BgpOpenMessage {
    let c = &open.capabilities;
    let mut caps = Vec::new();
    if c.families.ipv4_unicast {
        caps.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(AddressType::Ipv4Unicast),
        ));
    }
    if c.families.ipv6_unicast {
        caps.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(AddressType::Ipv6Unicast),
        ));
    }
    if c.route_refresh {
        caps.push(BgpCapability::RouteRefresh);
    }
    if let Some(asn) = c.four_octet_as {
        caps.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(asn)));
    }
    if let Some(gr) = c.graceful_restart {
        let secs =
            u16::try_from(gr.restart_time.as_secs().min(MAX_RESTART_TIME_SECS)).unwrap_or(u16::MAX);
        let mut afs = Vec::new();
        if gr.families.ipv4_unicast {
            afs.push(GracefulRestartAddressFamily::new(
                gr.forwarding.ipv4_unicast,
                AddressType::Ipv4Unicast,
            ));
        }
        if gr.families.ipv6_unicast {
            afs.push(GracefulRestartAddressFamily::new(
                gr.forwarding.ipv6_unicast,
                AddressType::Ipv6Unicast,
            ));
        }
        caps.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(gr.is_restarting, gr.is_notification, secs, afs),
        ));
    }
    if c.extended_message {
        caps.push(BgpCapability::ExtendedMessage);
    }
    BgpOpenMessage::new(
        open.my_as,
        open.hold_time_secs,
        open.bgp_id,
        vec![BgpOpenMessageParameter::new_capabilities(caps)],
    )
}

/// Encodes a netgauze message, refusing anything longer than `limit`.
pub fn encode(msg: &BgpMessage, limit: usize) -> Result<Bytes, EncodeError> {
    let len = msg.len();
    if len > limit {
        return Err(EncodeError::TooLong { len, limit });
    }
    let mut buf = Vec::with_capacity(len);
    msg.write(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// Offset of the OPEN's Version octet, right after the header (RFC 4271 §4.2).
const OPEN_VERSION_OFFSET: usize = HEADER_LEN;

/// Encodes an OPEN with the version it carries (4 on everything FerroLB sends; tests send
/// others). netgauze always writes 4, so the octet is set after encoding.
pub fn encode_open(open: &Open) -> Result<Bytes, EncodeError> {
    let bytes = encode(&BgpMessage::Open(open_to_wire(open)), MAX_MESSAGE_LEN)?;
    if bytes.get(OPEN_VERSION_OFFSET) == Some(&open.version) {
        return Ok(bytes);
    }
    let mut buf = BytesMut::from(&bytes[..]);
    if let Some(v) = buf.get_mut(OPEN_VERSION_OFFSET) {
        *v = open.version;
    }
    Ok(buf.freeze())
}

/// Encodes a KEEPALIVE (a bare header).
pub fn encode_keepalive() -> Bytes {
    let mut buf = vec![0xff; 16];
    buf.extend_from_slice(&(HEADER_LEN as u16).to_be_bytes());
    buf.push(msg_type::KEEPALIVE);
    Bytes::from(buf)
}

/// Encodes a NOTIFICATION (RFC 4271 §4.5); data beyond what fits in 4096 bytes is cut.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  marker (16 octets of 0xff) … | length (2)    | type = 3      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | error code    | error subcode |   data (length - 21 octets) … |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
pub fn encode_notification(n: &Notification) -> Bytes {
    let data_len = n.data.len().min(MAX_MESSAGE_LEN - HEADER_LEN - 2);
    let len = HEADER_LEN + 2 + data_len;
    let mut buf = vec![0xff; 16];
    buf.extend_from_slice(&(len as u16).to_be_bytes());
    buf.extend_from_slice(&[msg_type::NOTIFICATION, n.code, n.subcode]);
    buf.extend_from_slice(&n.data[..data_len]);
    Bytes::from(buf)
}
