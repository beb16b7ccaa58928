//! A fake BGP peer the tests write byte by byte, to be everything a router should not be: it
//! floods, sends what does not parse, stops reading. Plus the driver configurations and route
//! tables the hostile-peer tests share.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use ferrolb_proto::bgp::driver::{Event, PeerConfig};
use ferrolb_proto::bgp::fsm::Config;
use ferrolb_proto::bgp::open::{Capabilities, Families, LocalSpeaker, Open, PeerAs};
use ferrolb_proto::bgp::packet::{Received, decode, encode_keepalive, encode_open, split_frame};
use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};
use ipnet::{IpNet, Ipv4Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long any one step may take on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);
pub const OUR_AS: u32 = 64512;
pub const PEER_AS: u32 = 64513;
/// Our hold time: the good peers keep the session with KEEPALIVEs every 3 s.
pub const HOLD_SECS: u16 = 9;
/// IPv6 /128 NLRI that fit one 4096-octet UPDATE beside ORIGIN, AS_PATH and the MP_REACH
/// header: (4096 - 61) / 17.
pub const V6_PER_UPDATE: usize = 237;
/// The fake peer's prefixes: 2001:db8:f000::/36 (documentation space, never installed).
const V6_BASE: u128 = 0x2001_0db8_f000_0000_0000_0000_0000_0000;

/// Our side: eBGP to the fake peer at `addr`, hold 9 s, both families, fast retries.
pub fn our_config(addr: SocketAddr) -> PeerConfig {
    let mut session = Config::new(LocalSpeaker {
        local_as: OUR_AS,
        peer_as: PeerAs::Fixed(PEER_AS),
        router_id: Ipv4Addr::new(192, 0, 2, 10),
        hold_time: Duration::from_secs(u64::from(HOLD_SECS)),
        families: Families::DUAL,
        graceful_restart: None,
        extended_message: false,
    });
    session.connect_retry_initial = Duration::from_millis(100);
    session.connect_retry_max = Duration::from_secs(1);
    PeerConfig::new(session, addr)
}

/// `n` IPv4 /32 routes from 198.18.0.0/15 (RFC 2544 space; on loopback only, never in a
/// kernel table), starting at offset `from`, next hop 192.0.2.10.
pub fn table_v4(from: u32, n: u32) -> RouteSet {
    (from..from + n)
        .map(|i| {
            let net = Ipv4Net::new(Ipv4Addr::from(0xc612_0000 + i), 32).expect("prefix");
            let attrs = RouteAttrs {
                next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 10)),
                communities: BTreeSet::new(),
                large_communities: BTreeSet::new(),
                local_pref: None,
            };
            (IpNet::V4(net), attrs)
        })
        .collect()
}

/// A message: marker, length, type, body.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    let len = u16::try_from(19 + body.len()).expect("message fits");
    m.extend_from_slice(&len.to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// ROUTE-REFRESH for IPv4 unicast (RFC 2918).
pub fn route_refresh() -> Vec<u8> {
    message(5, &[0, 1, 0, 1])
}

/// ORIGIN IGP and AS_PATH (one 4-octet AS, the peer's).
fn origin_and_as_path() -> Vec<u8> {
    let mut attrs = vec![0x40, 1, 1, 0, 0x40, 2, 6, 2, 1];
    attrs.extend_from_slice(&PEER_AS.to_be_bytes());
    attrs
}

/// An UPDATE with `body` after the attributes: the caller's NLRI bytes, valid or not, with a
/// NEXT_HOP for IPv4.
pub fn update_v4(nlri: &[u8]) -> Vec<u8> {
    let mut attrs = origin_and_as_path();
    attrs.extend_from_slice(&[0x40, 3, 4, 192, 0, 2, 200]);
    let mut body = vec![0, 0];
    body.extend_from_slice(&u16::try_from(attrs.len()).expect("short").to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(nlri);
    message(2, &body)
}

/// An UPDATE announcing IPv6 /128s number `first..first + count` of the fake peer's range in
/// MP_REACH_NLRI; `prefix_len` lets a test send an impossible length.
pub fn update_v6_with_len(first: u64, count: usize, prefix_len: u8) -> Vec<u8> {
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200).octets());
    mp.push(0);
    for i in 0..count as u64 {
        mp.push(prefix_len);
        mp.extend_from_slice(&(V6_BASE + u128::from(first + i)).to_be_bytes());
    }
    let mut attrs = origin_and_as_path();
    attrs.extend_from_slice(&[0x90, 14]);
    attrs.extend_from_slice(&u16::try_from(mp.len()).expect("fits").to_be_bytes());
    attrs.extend_from_slice(&mp);
    let mut body = vec![0, 0];
    body.extend_from_slice(&u16::try_from(attrs.len()).expect("fits").to_be_bytes());
    body.extend_from_slice(&attrs);
    message(2, &body)
}

/// A valid UPDATE announcing IPv6 /128s `first..first + count`.
pub fn update_v6(first: u64, count: usize) -> Vec<u8> {
    update_v6_with_len(first, count, 128)
}

/// The fake peer's OPEN: AS 64513, both families, route refresh, 4-octet AS.
pub fn peer_open(hold_secs: u16) -> Vec<u8> {
    let open = Open {
        version: 4,
        my_as: 64513,
        hold_time_secs: hold_secs,
        bgp_id: Ipv4Addr::new(192, 0, 2, 200),
        capabilities: Capabilities {
            families: Families::DUAL,
            four_octet_as: Some(PEER_AS),
            route_refresh: true,
            graceful_restart: None,
            extended_message: false,
        },
    };
    encode_open(&open).expect("OPEN encodes").to_vec()
}

/// One accepted connection from our driver, seen from the fake peer.
#[derive(Debug)]
pub struct Fake {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Fake {
    /// Accepts our driver's dial and completes OPEN and KEEPALIVE both ways.
    pub async fn accept(listener: &TcpListener, hold_secs: u16) -> Fake {
        let (stream, _) = timeout(WAIT, listener.accept())
            .await
            .expect("our driver dials in time")
            .expect("accept");
        let mut fake = Fake {
            stream,
            buf: BytesMut::new(),
        };
        let first = fake.recv().await;
        assert!(matches!(first, Some(Received::Open(_))), "{first:?}");
        fake.send(&peer_open(hold_secs)).await;
        fake.send(&encode_keepalive()).await;
        while fake.recv().await != Some(Received::KeepAlive) {}
        fake
    }

    /// The next message from our driver; `None` once it closed the connection.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            if let Some(frame) = split_frame(&mut self.buf, 4096).expect("our framing is valid") {
                return Some(decode(&frame, true).expect("our messages decode"));
            }
            let n = timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a message in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Everything our driver sends within `window`, and whether it closed the connection.
    pub async fn recv_for(&mut self, window: Duration) -> (Vec<Received>, bool) {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(Some(m)) => got.push(m),
                Ok(None) => return (got, true),
                Err(_) => return (got, false),
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }
}

/// Events so far, without waiting.
pub fn drain(events: &mut mpsc::Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

/// Waits for the next event matching `pick`, skipping others.
pub async fn wait_event<T>(
    events: &mut mpsc::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = timeout(WAIT, async {
        while let Some(ev) = events.recv().await {
            if let Some(v) = pick(&ev) {
                return Some(v);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(v)) => v,
        Ok(None) => panic!("{what}: the peer task ended"),
        Err(_) => panic!("{what}: not within {WAIT:?}"),
    }
}

/// Polls `check` every 20 ms until it holds; panics with `what` after [`WAIT`].
pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This process's resident set and its peak since the last [`reset_peak_rss`], in KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Makes the kernel's peak RSS (VmHWM) start again from the current RSS.
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
}
