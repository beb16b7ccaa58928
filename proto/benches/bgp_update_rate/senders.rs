//! The senders of the update-rate bench: FerroLB's driver as its own process, the packed
//! pre-encoded sender (the receiver's own limit), and optionally gobgpd. Each reports when its
//! session reached Established, from inside itself, as wall-clock time (the FerroLB process is
//! another process, so `Instant`s would not compare).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use ferrolb_proto::bgp::driver::{Command, Event, PeerConfig, spawn};
use ferrolb_proto::bgp::fsm::Config;
use ferrolb_proto::bgp::open::{Families, LocalSpeaker, Negotiated, PeerAs, negotiate};
use ferrolb_proto::bgp::packet::{Received, decode, encode_keepalive, encode_open, split_frame};
use ferrolb_proto::bgp::packing::{NextHop, PeerEncoding, RouteAttrs, RouteSet, end_of_rib, pack};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub const OUR_AS: u32 = 64512;
pub const ROUTER_AS: u32 = 64513;
pub const ROUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe);
/// IPv4 routes come from 198.18.0.0/15 (RFC 2544's benchmarking range): they live only in the
/// receiver's RIB, never in a kernel table (the bench checks).
pub const V4_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const V6_BASE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }

    pub fn parse(name: &str) -> Family {
        if name == "v4" { Family::V4 } else { Family::V6 }
    }
}

/// Routes per family: `FBGP_ROUTES`, else 100 000 (at most 131 072, the size of 198.18/15).
pub fn route_count() -> u32 {
    std::env::var("FBGP_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
        .min(1 << 17)
}

/// The route set of one family with next hop node `node` (192.0.2.N / 2001:db8:1::N).
pub fn routes(family: Family, node: u8) -> RouteSet {
    let attrs = |next_hop| RouteAttrs {
        next_hop,
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    let n = route_count();
    match family {
        Family::V4 => {
            let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, node)));
            (0..n)
                .map(|i| {
                    let ip = Ipv4Addr::from(u32::from(V4_BASE) + i);
                    let net = Ipv4Net::new(ip, 32).expect("prefix");
                    (IpNet::V4(net), a.clone())
                })
                .collect()
        }
        Family::V6 => {
            let a = attrs(NextHop::V6 {
                global: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(node)),
                link_local: None,
            });
            (0..n)
                .map(|i| {
                    let ip = Ipv6Addr::from(u128::from(V6_BASE) + u128::from(i));
                    let net = Ipv6Net::new(ip, 128).expect("prefix");
                    (IpNet::V6(net), a.clone())
                })
                .collect()
        }
    }
}

/// Our session towards the receiver from `local`.
pub fn session(local: Ipv4Addr, local_as: u32, peer_as: u32) -> Config {
    let mut c = Config::new(LocalSpeaker {
        local_as,
        peer_as: PeerAs::Fixed(peer_as),
        router_id: local,
        hold_time: Duration::from_secs(90),
        families: Families::DUAL,
        graceful_restart: None,
        extended_message: true,
    });
    c.connect_retry_initial = Duration::from_millis(200);
    c.connect_retry_max = Duration::from_secs(2);
    c
}

pub fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

pub fn from_unix_nanos(nanos: u128) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The FerroLB sender process (the bench run again with `FBGP_BENCH_SPEAK=v4|v6` inside node
/// 1): dials the receiver with the whole set handed over before the session is up, and prints
/// `FBGP up <extended 0|1> <4-octet 0|1> <unix nanos>` when its driver reports Established. It
/// runs until killed.
pub fn speaker_child(family: &str) {
    let local = Ipv4Addr::new(192, 0, 2, 1);
    let set = routes(Family::parse(family), 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = PeerConfig {
        local_addr: Some(IpAddr::V4(local)),
        ..PeerConfig::new(
            session(local, OUR_AS, ROUTER_AS),
            SocketAddr::new(IpAddr::V4(ROUTER4), 179),
        )
    };
    let (cmd, mut events, task) = {
        let _guard = rt.enter();
        spawn(config)
    };
    // Events are read on their own thread, off the runtime the driver's writes need. The Up
    // event leaves the driver before it queues the table, so the clock starts no later than
    // our first UPDATE.
    let reader = std::thread::spawn(move || {
        while let Some(ev) = events.blocking_recv() {
            if let Event::Up(n) = ev {
                let at = unix_nanos(SystemTime::now());
                println!(
                    "FBGP up {} {} {at}",
                    u8::from(n.extended_message),
                    u8::from(n.four_octet_as)
                );
            }
        }
    });
    rt.block_on(async move {
        cmd.send(Command::SetRoutes(set)).await.expect("alive");
        let _ = task.await;
    });
    let _ = reader.join();
}

/// What the receiver and we agreed on, for encoding the same UPDATEs the driver sent.
pub fn negotiated(extended: bool, four_octet_as: bool) -> Negotiated {
    Negotiated {
        peer_as: ROUTER_AS,
        peer_id: ROUTER4,
        is_ibgp: false,
        hold_time: Duration::from_secs(90),
        keepalive: Duration::from_secs(30),
        four_octet_as,
        families: Families::DUAL,
        route_refresh: true,
        graceful_restart: None,
        extended_message: extended,
    }
}

/// The UPDATEs (and End-of-RIB) of `set` for an encoding: (messages, bytes, all of them joined).
pub fn encoded(set: &RouteSet, neg: &Negotiated) -> (usize, bytes::Bytes) {
    let enc = PeerEncoding::new(OUR_AS, neg);
    let mut msgs = pack(&enc, set, &RouteSet::new()).expect("packs").messages;
    msgs.extend(end_of_rib(&enc).expect("EoR"));
    let mut buf = BytesMut::new();
    for m in &msgs {
        buf.extend_from_slice(m);
    }
    (msgs.len(), buf.freeze())
}

/// What the packed sender reports: when it was Established, UPDATEs and bytes written.
#[derive(Debug)]
pub struct PackedRun {
    pub established: SystemTime,
    pub updates: usize,
    pub bytes: usize,
}

/// Dials the receiver and completes OPEN and KEEPALIVE; returns the halves and when the
/// session was Established, or why not.
async fn handshake(
    local: Ipv4Addr,
    config: &Config,
) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, Negotiated, SystemTime)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(local), 0))?;
    let stream = socket
        .connect(SocketAddr::new(IpAddr::V4(ROUTER4), 179))
        .await?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(&encode_open(&config.local.open()).expect("OPEN"))
        .await?;
    let mut buf = BytesMut::with_capacity(65536);
    let mut agreed = None;
    loop {
        while let Some(frame) = split_frame(&mut buf, 65535).expect("frame") {
            match decode(&frame, true) {
                Ok(Received::Open(open)) => {
                    agreed = Some(negotiate(&config.local, &open).expect("negotiates"));
                    wr.write_all(&encode_keepalive()).await?;
                }
                Ok(Received::KeepAlive) => {
                    if let Some(n) = agreed {
                        return Ok((rd, wr, n, SystemTime::now()));
                    }
                }
                other => panic!("unexpected during the handshake: {other:?}"),
            }
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::ConnectionReset.into());
        }
    }
}

/// The minimal sender (inside node 2): handshake, then every pre-encoded UPDATE in one write;
/// then it answers nothing but keeps the session until `stop`.
///
/// Like any BGP speaker it dials again when the receiver closes the connection before the
/// session is up: gobgpd closes every connection from a neighbor whose FSM is still Idle (for
/// about 5 s after each session, its log says "Closed an accepted connection"), and a sender that
/// gave up there made the bench wait for routes that never came. The clock starts at
/// Established, so the retries are not measured.
pub async fn packed_sender(
    set: RouteSet,
    stop: tokio::sync::oneshot::Receiver<()>,
    report: std::sync::mpsc::Sender<PackedRun>,
) {
    let local = Ipv4Addr::new(192, 0, 2, 2);
    let config = session(local, OUR_AS, ROUTER_AS);
    // Both encodings ready before connecting; the OPENs decide which one goes.
    let plain = encoded(&set, &negotiated(false, true));
    let extended = encoded(&set, &negotiated(true, true));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut rd, mut wr, agreed, established) = loop {
        match handshake(local, &config).await {
            Ok(up) => break up,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no session with the receiver within 60 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let is_extended = agreed.extended_message;
    let (updates, bytes) = if is_extended { extended } else { plain };
    wr.write_all(&bytes).await.expect("write UPDATEs");
    let _ = report.send(PackedRun {
        established,
        updates,
        bytes: bytes.len(),
    });
    // Keep the session (read what comes, KEEPALIVE now and then) until stopped; then close.
    let keep = tokio::spawn(async move {
        let mut scratch = vec![0u8; 65536];
        let mut tick = tokio::time::interval(Duration::from_secs(20));
        loop {
            tokio::select! {
                n = rd.read(&mut scratch) => if matches!(n, Ok(0) | Err(_)) { return },
                _ = tick.tick() => if wr.write_all(&encode_keepalive()).await.is_err() { return },
            }
        }
    });
    let _ = stop.await;
    keep.abort();
}
