//! Interface add/remove/carrier tracking over rtnetlink, as a stream of `LinkEvent`s.
//!
//! Subscribes to RTMGRP_LINK first, then asks for a dump of every link, so no change
//! between the two is missed (a link may be reported twice; consumers are idempotent).
//! `events_in` is pure (bytes → events); `LinkWatcher` owns the socket.

use std::collections::VecDeque;

use futures_util::Stream;
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols};

use super::addr::MacAddr;
use super::error::L2Error;

/// RTMGRP_LINK: link state change notifications.
const RTMGRP_LINK: u32 = 1;

/// What is known of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Kernel interface index (stable while the interface exists).
    pub index: u32,
    /// Interface name (`eth0`).
    pub name: String,
    /// Hardware address, when the link has a 6-octet one.
    pub mac: Option<MacAddr>,
    /// Administratively up (IFF_UP).
    pub is_up: bool,
    /// The lower layer is up (IFF_LOWER_UP): frames can be sent and received.
    pub has_carrier: bool,
}

/// A change of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The interface exists with this state (new, or changed, or re-reported).
    Changed(LinkInfo),
    /// Every link that existed at subscription time has been reported once.
    Synced,
    /// The interface is gone.
    Removed {
        /// Its former index.
        index: u32,
        /// Its former name, when the kernel said.
        name: Option<String>,
    },
}

fn link_info(msg: &LinkMessage) -> Option<LinkInfo> {
    let mut name = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(a) => {
                mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(MacAddr);
            }
            _ => {}
        }
    }
    Some(LinkInfo {
        index: msg.header.index,
        name: name?,
        mac,
        is_up: msg.header.flags.contains(LinkFlags::Up),
        has_carrier: msg.header.flags.contains(LinkFlags::LowerUp),
    })
}

/// The event a route-netlink message carries, if it is about a link.
pub fn link_event(msg: &RouteNetlinkMessage) -> Option<LinkEvent> {
    match msg {
        RouteNetlinkMessage::NewLink(link) => link_info(link).map(LinkEvent::Changed),
        RouteNetlinkMessage::DelLink(link) => Some(LinkEvent::Removed {
            index: link.header.index,
            name: link_info(link).map(|i| i.name),
        }),
        _ => None,
    }
}

/// Every link event in one datagram read from a route-netlink socket (a datagram holds
/// one or more messages, each 4-octet aligned). Undecodable messages are skipped.
pub fn events_in(datagram: &[u8]) -> Vec<LinkEvent> {
    let mut events = Vec::new();
    let mut at = 0usize;
    while let Some(len_bytes) = datagram.get(at..at + 4) {
        let len = len_bytes
            .try_into()
            .map(u32::from_ne_bytes)
            .map_or(0, |l| usize::try_from(l).unwrap_or(0));
        if len < 16 {
            break;
        }
        let Some(one) = datagram.get(at..at + len) else {
            break;
        };
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(one).map(|m| m.payload) {
            Ok(NetlinkPayload::InnerMessage(inner)) => events.extend(link_event(&inner)),
            Ok(NetlinkPayload::Done(_)) => events.push(LinkEvent::Synced),
            _ => {}
        }
        at += len.next_multiple_of(4);
    }
    events
}

/// A route-netlink socket subscribed to link changes.
pub struct LinkWatcher {
    /// Subscribed to RTMGRP_LINK; also receives the answer to the initial dump.
    socket: TokioSocket,
    /// Events read but not yet handed out.
    pending: VecDeque<LinkEvent>,
}

impl std::fmt::Debug for LinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatcher")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

fn netlink_err(source: std::io::Error) -> L2Error {
    L2Error::Netlink { source }
}

impl LinkWatcher {
    /// Subscribes, then requests a dump of all links (reported as `Changed` events,
    /// then one `Synced`).
    /// Needs a running tokio reactor; watches the network namespace of the caller.
    pub fn open() -> Result<LinkWatcher, L2Error> {
        let mut socket = TokioSocket::new(protocols::NETLINK_ROUTE).map_err(netlink_err)?;
        socket
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(netlink_err)?;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = 1;
        let mut request = NetlinkMessage::new(
            header,
            NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())),
        );
        request.finalize();
        let mut buf = vec![0u8; request.buffer_len()];
        request.serialize(&mut buf);
        socket.socket_ref().send(&buf, 0).map_err(netlink_err)?;
        Ok(LinkWatcher {
            socket,
            pending: VecDeque::new(),
        })
    }

    /// The next link event.
    pub async fn next(&mut self) -> Result<LinkEvent, L2Error> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let (datagram, _) = self.socket.recv_from_full().await.map_err(netlink_err)?;
            self.pending.extend(events_in(&datagram));
        }
    }

    /// The events as a `Stream`; it ends after the first socket error.
    pub fn into_stream(self) -> impl Stream<Item = Result<LinkEvent, L2Error>> {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut watcher = state?;
            match watcher.next().await {
                Ok(event) => Some((Ok(event), Some(watcher))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(messages: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(m));
            nl.finalize();
            let mut buf = vec![0u8; nl.buffer_len()];
            nl.serialize(&mut buf);
            out.extend_from_slice(&buf);
            out.resize(out.len().next_multiple_of(4), 0);
        }
        out
    }

    fn link(index: u32, name: &str, flags: LinkFlags) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = flags;
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, 7]));
        msg
    }

    #[test]
    fn new_link_with_carrier_is_reported_up_with_its_mac() {
        let bytes = datagram(vec![RouteNetlinkMessage::NewLink(link(
            3,
            "eth0",
            LinkFlags::Up | LinkFlags::LowerUp,
        ))]);
        assert_eq!(
            events_in(&bytes),
            vec![LinkEvent::Changed(LinkInfo {
                index: 3,
                name: "eth0".into(),
                mac: Some(MacAddr([2, 0, 0, 0, 0, 7])),
                is_up: true,
                has_carrier: true,
            })]
        );
    }

    #[test]
    fn link_without_lower_up_has_no_carrier() {
        let bytes = datagram(vec![RouteNetlinkMessage::NewLink(link(
            3,
            "eth0",
            LinkFlags::Up,
        ))]);
        let events: [LinkEvent; 1] = events_in(&bytes).try_into().expect("one event");
        let [LinkEvent::Changed(info)] = events else {
            panic!("expected Changed");
        };
        assert!(info.is_up && !info.has_carrier);
    }

    #[test]
    fn several_messages_in_one_datagram_are_all_read() {
        let bytes = datagram(vec![
            RouteNetlinkMessage::NewLink(link(3, "eth0", LinkFlags::Up)),
            RouteNetlinkMessage::DelLink(link(4, "eth1", LinkFlags::empty())),
        ]);
        let events = events_in(&bytes);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1],
            LinkEvent::Removed {
                index: 4,
                name: Some("eth1".into())
            }
        );
    }

    #[test]
    fn garbage_and_truncated_datagrams_yield_no_events() {
        assert!(events_in(&[]).is_empty());
        assert!(events_in(&[0xff; 3]).is_empty());
        assert!(events_in(&[0xff; 64]).is_empty());
        let bytes = datagram(vec![RouteNetlinkMessage::NewLink(link(
            3,
            "eth0",
            LinkFlags::Up,
        ))]);
        for len in 0..bytes.len() {
            assert!(events_in(&bytes[..len]).is_empty(), "len {len}");
        }
    }

    #[test]
    fn message_type_of_a_link_dump_request_is_getlink() {
        let m = RouteNetlinkMessage::GetLink(LinkMessage::default());
        assert_eq!(m.message_type(), 18);
    }
}
