//! Update rate to real routers: how long after Established each receiver (BIRD, FRR bgpd+zebra,
//! GoBGP) holds every route, for three senders in the same run:
//! - `ferrolb`: our peer driver, as its own process (so its CPU time and peak RSS are its own);
//! - `packed`: a minimal sender that writes pre-encoded, fully packed UPDATEs right after the
//!   handshake: the receiver's own limit;
//! - `gobgpd`: GoBGP 3.10 announcing the same set (fed by our driver before its session to the
//!   receiver is enabled).
//!
//! The clock starts when the sender's TCP connection to the receiver is ESTABLISHED (seen from
//! inside the sender's namespace, the same way for all three senders), so each figure includes
//! the OPEN/KEEPALIVE exchange; it stops when the receiver's control socket (BIRD, FRR) or CLI
//! (GoBGP, ~0.1 s resolution) counts every prefix. Ours and the packed sender alternate
//! `FBGP_BENCH_ROUNDS` times (default 5, GoBGP 3) and the median is printed; gobgpd runs once.
//! Everything runs at nice -20 (as root), like the other benches of the shared machine.
//!
//! Route sets: 100 000 IPv6 /128 from 2001:db8:100::/48, and the 768 IPv4 /32 of the lab's three
//! documentation /24s (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24): namespaces may use no
//! other IPv4 space. Needs root, FRR, BIRD and GoBGP; without them prints why and exits 0.
//!
//! ```text
//!   [n1] ferrolb process ──┐
//!   [n2] packed sender ────┼─ br0 [r] receiver (one of BIRD, FRR, GoBGP)
//!   [n3] gobgpd ◀─ feeder ─┘
//! ```
//! `cargo bench -p ferrolb-proto --bench bgp_update_rate` (`-- bird frr gobgp` to choose,
//! `FBGP_V6_ROUTES=N` to change the IPv6 count).

#[path = "../tests/bgp_lab/mod.rs"]
mod bgp_lab;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_lab::{
    Bird, Frr, Gobgp, Lab, Neighbor, ROUTER_AS, ROUTER4, ROUTER6, Router, can_run, dial, neighbor,
    poll, session,
};
use bytes::{Bytes, BytesMut};
use ferrolb_proto::bgp::driver::{Command, Event, spawn};
use ferrolb_proto::bgp::open::{Families, Negotiated, negotiate};
use ferrolb_proto::bgp::packet::{Received, decode, encode_keepalive, encode_open, split_frame};
use ferrolb_proto::bgp::packing::{NextHop, PeerEncoding, RouteAttrs, RouteSet, end_of_rib, pack};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const OUR_AS: u32 = 64512;
const FEEDER_AS: u32 = 64513;
const RUN_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

fn v6_count() -> u32 {
    std::env::var("FBGP_V6_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The route set of one family with next hop node `i`.
fn routes(family: Family, node: u8) -> RouteSet {
    let attrs = |next_hop| RouteAttrs {
        next_hop,
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    let mut set = RouteSet::new();
    match family {
        Family::V4 => {
            let a = attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, node)));
            for base in [[192, 0, 2, 0], [198, 51, 100, 0], [203, 0, 113, 0]] {
                for i in 0..=255u8 {
                    let ip = Ipv4Addr::new(base[0], base[1], base[2], i);
                    let net = Ipv4Net::new(ip, 32).expect("prefix");
                    set.insert(IpNet::V4(net), a.clone());
                }
            }
        }
        Family::V6 => {
            let a = attrs(NextHop::V6 {
                global: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(node)),
                link_local: None,
            });
            let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0));
            for i in 0..v6_count() {
                let net = Ipv6Net::new(Ipv6Addr::from(base + u128::from(i)), 128).expect("prefix");
                set.insert(IpNet::V6(net), a.clone());
            }
        }
    }
    set
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn family_of(name: &str) -> Family {
    if name == "v4" { Family::V4 } else { Family::V6 }
}

fn session_for(local: Ipv4Addr) -> ferrolb_proto::bgp::fsm::Config {
    let mut c = session(OUR_AS, ROUTER_AS, local);
    c.local.hold_time = Duration::from_secs(90);
    c
}

/// The FerroLB sender process (this bench run again with `FBGP_BENCH_SPEAK=v4|v6`, inside
/// node 1): dials the receiver, hands the driver the whole set before the session is up, prints
/// `FBGP up <extended 0|1> <4-octet 0|1>` when Established and runs until killed.
fn speaker_child(family: &str) {
    let local = Ipv4Addr::new(192, 0, 2, 1);
    let set = routes(family_of(family), 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = dial(session_for(local), IpAddr::V4(ROUTER4), IpAddr::V4(local));
    let (cmd, mut events, task) = {
        let _guard = rt.enter();
        spawn(config)
    };
    // Events are read on their own thread, off the runtime the driver's writes need.
    let reader = std::thread::spawn(move || {
        while let Some(ev) = events.blocking_recv() {
            if let Event::Up(n) = ev {
                println!(
                    "FBGP up {} {}",
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

/// When a sender's TCP connection to a receiver's port 179 reaches ESTABLISHED, seen by a thread
/// inside the sender's namespace reading `/proc/thread-self/net/tcp{,6}` every 0.2 ms. The same
/// start for every sender (a printed or polled BGP Established lags by scheduling on a loaded
/// machine); it precedes BGP Established by the OPEN/KEEPALIVE exchange, which every figure
/// therefore includes. Loopback connections (the gobgpd feeder) do not count.
fn watch_tcp_up(ns: String, is_v6: bool) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        ferrolb_netlab::netns::enter(&ns).expect("setns");
        let table = if is_v6 {
            "/proc/thread-self/net/tcp6"
        } else {
            "/proc/thread-self/net/tcp"
        };
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            let is_up = text.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // rem_address "ADDR:00B3" (port 179), not loopback, state 01 (ESTABLISHED).
                f.len() > 3
                    && f[2].ends_with(":00B3")
                    && !f[2].starts_with("0100007F")
                    && f[3] == "01"
            });
            if is_up {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "no connection to port 179 in {ns}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

/// utime + stime and VmHWM of a process.
fn cpu_and_peak_rss(pid: &str) -> (Duration, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0u64);
    (Duration::from_millis(ticks * 1000 / hz), hwm_kib)
}

/// One measured run.
struct Figure {
    sender: &'static str,
    family: Family,
    routes: usize,
    /// Established → receiver holds all.
    took: Duration,
    updates: usize,
    bytes: usize,
    /// Our process only: CPU and peak RSS (KiB).
    cpu_rss: Option<(Duration, u64)>,
}

/// Polls the receiver until it accepted `want` prefixes from `from`; returns when.
fn wait_count(router: &dyn Router, from: IpAddr, want: u64, interval: Duration) -> Instant {
    poll(
        &format!("{} accepts {want} from {from}", router.name()),
        RUN_DEADLINE,
        interval,
        || match router.accepted(from)? {
            n if n >= want => Ok(Instant::now()),
            n => Err(format!("{n}")),
        },
    )
}

fn wait_down(router: &dyn Router, from: IpAddr) {
    poll(
        &format!("{} session with {from} down", router.name()),
        RUN_DEADLINE,
        Duration::from_millis(50),
        || match router.session_state(from) {
            Ok(()) => Err("up".into()),
            Err(_) => Ok(()),
        },
    );
}

/// Waits until the receiver's kernel (FRR) or RIB no longer has a sample route of the last run,
/// so that withdrawals do not overlap the next measurement.
fn wait_flushed(lab: &Lab, router: &dyn Router, family: Family) {
    let sample = match family {
        Family::V4 => "198.51.100.7/32",
        Family::V6 => "2001:db8:100::7/128",
    };
    poll(
        &format!("{} flushed {sample}", router.name()),
        RUN_DEADLINE,
        Duration::from_millis(100),
        || {
            let has_kernel = lab.router_kernel_route(sample).contains("bgp");
            let has_rib = !router.paths(sample)?.is_empty();
            if has_kernel || has_rib {
                Err("still there".into())
            } else {
                Ok(())
            }
        },
    );
}

fn poll_interval(router: &dyn Router) -> Duration {
    // GoBGP's CLI costs ~160 ms of CPU per call: polling it fast would starve gobgpd on two
    // cores. The control sockets of BIRD and FRR are cheap.
    if router.name() == "GoBGP" {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(2)
    }
}

fn run_ferrolb(lab: &mut Lab, router: &dyn Router, family: Family, tag: &str) -> Figure {
    let node = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let set = routes(family, 1);
    let exe = std::env::current_exe().expect("bench binary");
    let env = format!("FBGP_BENCH_SPEAK={}", family_name(family));
    let log = lab.path(&format!("ferrolb-{tag}.log"));
    let name = format!("ferrolb-{tag}");
    let ns = lab.ns("n1");
    let args = ["env", &env, exe.to_str().expect("utf-8")];
    let watch = watch_tcp_up(ns.clone(), false);
    let pid = lab.start_daemon(&name, "n1", &args, &log).to_string();
    let done = wait_count(router, node, set.len() as u64, poll_interval(router));
    let up = watch.join().expect("watcher");
    let cpu_rss = cpu_and_peak_rss(&pid);
    let said = poll(
        "the speaker reports Established",
        RUN_DEADLINE,
        Duration::from_millis(10),
        || {
            let log = lab.daemon_log(&name);
            match log.lines().find_map(|l| l.strip_prefix("FBGP up ")) {
                Some(line) => Ok(line.to_owned()),
                None => Err(log),
            }
        },
    );
    let flags: Vec<&str> = said.split_whitespace().collect();
    let neg = Negotiated {
        extended_message: flags[0] == "1",
        four_octet_as: flags[1] == "1",
        ..fake_negotiated()
    };
    let enc = PeerEncoding::new(OUR_AS, &neg);
    let mut msgs = pack(&enc, &set, &RouteSet::new()).expect("packs").messages;
    msgs.extend(end_of_rib(&enc).expect("EoR"));
    lab.stop_daemon(&name);
    wait_down(router, node);
    wait_flushed(lab, router, family);
    Figure {
        sender: "ferrolb",
        family,
        routes: set.len(),
        took: done.saturating_duration_since(up),
        updates: msgs.len(),
        bytes: msgs.iter().map(Bytes::len).sum(),
        cpu_rss: Some(cpu_rss),
    }
}

fn fake_negotiated() -> Negotiated {
    Negotiated {
        peer_as: ROUTER_AS,
        peer_id: ROUTER4,
        is_ibgp: false,
        hold_time: Duration::from_secs(90),
        keepalive: Duration::from_secs(30),
        four_octet_as: true,
        families: Families::DUAL,
        route_refresh: true,
        graceful_restart: None,
        extended_message: false,
    }
}

/// The minimal sender: handshake, then every pre-encoded UPDATE in one write.
async fn packed_sender(
    set: RouteSet,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (Instant, usize, usize) {
    let local = Ipv4Addr::new(192, 0, 2, 2);
    let config = session_for(local);
    // Both encodings ready before connecting; the OPENs decide which one goes.
    let encode_all = |extended: bool| {
        let neg = Negotiated {
            extended_message: extended,
            ..fake_negotiated()
        };
        let enc = PeerEncoding::new(OUR_AS, &neg);
        let mut msgs = pack(&enc, &set, &RouteSet::new()).expect("packs").messages;
        msgs.extend(end_of_rib(&enc).expect("EoR"));
        let mut buf = BytesMut::new();
        for m in &msgs {
            buf.extend_from_slice(m);
        }
        (msgs.len(), buf.freeze())
    };
    let plain = encode_all(false);
    let extended = encode_all(true);
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(local), 0))
        .expect("bind");
    let stream = socket
        .connect(SocketAddr::new(IpAddr::V4(ROUTER4), 179))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(&encode_open(&config.local.open()).expect("OPEN"))
        .await
        .expect("write");
    let mut buf = BytesMut::with_capacity(65536);
    let mut negotiated = None;
    let established = 'handshake: loop {
        while let Some(frame) = split_frame(&mut buf, 65535).expect("frame") {
            match decode(&frame, true) {
                Ok(Received::Open(open)) => {
                    negotiated = Some(negotiate(&config.local, &open).expect("negotiates"));
                    wr.write_all(&encode_keepalive()).await.expect("write");
                }
                Ok(Received::KeepAlive) if negotiated.is_some() => break 'handshake Instant::now(),
                other => panic!("unexpected during the handshake: {other:?}"),
            }
        }
        if rd.read_buf(&mut buf).await.expect("read") == 0 {
            panic!("the receiver closed the handshake");
        }
    };
    let neg = negotiated.expect("OPEN");
    let (count, bytes) = if neg.extended_message {
        extended
    } else {
        plain
    };
    let len = bytes.len();
    wr.write_all(&bytes).await.expect("write UPDATEs");
    // Answer keepalives until stopped; then close.
    let keepalive = tokio::spawn(async move {
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
    keepalive.abort();
    (established, count, len)
}

fn run_packed(lab: &mut Lab, router: &dyn Router, family: Family) -> Figure {
    let node = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let set = routes(family, 2);
    let n = set.len();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (result_tx, result_rx) = std::sync::mpsc::channel();
    let watch = watch_tcp_up(lab.ns("n2"), false);
    lab.node(2).spawn(async move {
        let r = packed_sender(set, stop_rx).await;
        let _ = result_tx.send(r);
    });
    let done = wait_count(router, node, n as u64, poll_interval(router));
    // The connection stays up until the watcher has seen it, however late it was scheduled.
    let established = watch.join().expect("watcher");
    let _ = stop_tx.send(());
    let (_, updates, bytes) = result_rx
        .recv_timeout(RUN_DEADLINE)
        .expect("packed sender finished");
    wait_down(router, node);
    wait_flushed(lab, router, family);
    Figure {
        sender: "packed",
        family,
        routes: n,
        took: done.saturating_duration_since(established),
        updates,
        bytes,
        cpu_rss: None,
    }
}

/// gobgpd in node 3, fed the set by our driver over loopback (AS 64513), with its sessions to
/// the receiver (IPv4 for v4 routes, IPv6 for v6 routes, like GoBGP's next-hop-self wants)
/// administratively down until the set is loaded. Established is read from the receiver.
fn run_gobgpd(lab: &mut Lab, router: &dyn Router, family: Family, tag: &str) -> Figure {
    let set = routes(family, 3);
    let n = set.len();
    let (neighbor, afi) = match family {
        Family::V4 => (IpAddr::V4(ROUTER4), "ipv4-unicast"),
        Family::V6 => (IpAddr::V6(ROUTER6), "ipv6-unicast"),
    };
    let from = match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3)),
    };
    let dir = lab.path(&format!("gobgpd-{tag}"));
    std::fs::create_dir_all(&dir).expect("gobgpd directory");
    let port = "50061";
    let conf = format!(
        "[global.config]\n  as = {OUR_AS}\n  router-id = \"192.0.2.3\"\n  port = 179\n\
         [global.apply-policy.config]\n  default-import-policy = \"accept-route\"\n  \
         default-export-policy = \"accept-route\"\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"127.0.0.1\"\n    peer-as = {FEEDER_AS}\n\
           [neighbors.transport.config]\n    passive-mode = true\n\
           [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\
           [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{neighbor}\"\n    peer-as = {ROUTER_AS}\n    admin-down = true\n\
           [neighbors.timers.config]\n    connect-retry = 1\n\
           [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{afi}\"\n"
    );
    let conf_path = dir.join("gobgpd.toml");
    std::fs::write(&conf_path, conf).expect("write");
    let ns = lab.ns("n3");
    let api = format!("127.0.0.1:{port}");
    let name = format!("gobgpd-{tag}");
    let args = [
        "gobgpd",
        "-f",
        conf_path.to_str().expect("utf-8"),
        "-p",
        "--pprof-disable",
        "--api-hosts",
        &api,
    ];
    lab.start_daemon(&name, "n3", &args, &dir.join("gobgpd.log"));
    let cli = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", &ns, "gobgp", "-p", port];
        full.extend_from_slice(args);
        bgp_lab::run(&full)
    };
    poll(
        "gobgpd answers",
        RUN_DEADLINE,
        Duration::from_millis(200),
        || {
            lab.assert_daemons_alive();
            if cli(&["neighbor"]).status.success() {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    );
    // The feeder: our driver, from node 3's loopback.
    let mut feed = session(FEEDER_AS, OUR_AS, Ipv4Addr::new(192, 0, 2, 33));
    feed.local.hold_time = Duration::from_secs(90);
    let mut feeder = lab.node(3).peer(dial(
        feed,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    ));
    feeder.wait_up();
    feeder.set_routes(set);
    let rib_family = match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    poll(
        "gobgpd holds the whole set",
        RUN_DEADLINE,
        Duration::from_millis(500),
        || {
            let out = cli(&["global", "rib", "summary", "-a", rib_family]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let total = text
                .split_whitespace()
                .filter_map(|w| w.trim_end_matches(',').parse::<usize>().ok())
                .next()
                .unwrap_or(0);
            if total >= n { Ok(()) } else { Err(text) }
        },
    );
    let established = watch_tcp_up(ns.clone(), family == Family::V6);
    let enabled = cli(&["neighbor", &neighbor.to_string(), "enable"]);
    assert!(enabled.status.success(), "{enabled:?}");
    let established = established.join().expect("watcher");
    let done = wait_count(router, from, n as u64, poll_interval(router));
    lab.stop_daemon(&name);
    let _ = feeder.cmd.blocking_send(Command::Stop);
    wait_down(router, from);
    wait_flushed(lab, router, family);
    Figure {
        sender: "gobgpd",
        family,
        routes: n,
        took: done.saturating_duration_since(established),
        updates: 0,
        bytes: 0,
        cpu_rss: None,
    }
}

fn neighbors() -> Vec<Neighbor> {
    let mut v: Vec<Neighbor> = (1..=2u8)
        .map(|i| {
            neighbor(
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)),
                OUR_AS,
                Families::DUAL,
            )
        })
        .collect();
    v.push(neighbor(
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)),
        OUR_AS,
        Families {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
    ));
    v.push(neighbor(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3)),
        OUR_AS,
        Families {
            ipv4_unicast: false,
            ipv6_unicast: true,
        },
    ));
    v
}

fn bench_receiver(which: &str) -> Vec<Figure> {
    let mut lab = Lab::new(3);
    let router: Box<dyn Router> = match which {
        "bird" => Box::new(lab.bird(&neighbors())),
        "frr" => Box::new(lab.frr(&neighbors())),
        _ => Box::new(lab.gobgp(&neighbors())),
    };
    let mut figures = Vec::new();
    for family in [Family::V6, Family::V4] {
        // Alternating repetitions of ours and the packed sender (the machine is shared).
        let mut ours = Vec::new();
        let mut packed = Vec::new();
        for round in 0..repetitions(which) {
            let tag = format!("{which}-{}-{round}", family_name(family));
            ours.push(run_ferrolb(&mut lab, router.as_ref(), family, &tag));
            packed.push(run_packed(&mut lab, router.as_ref(), family));
        }
        for f in ours.iter().chain(&packed) {
            print_figure(&format!("{} sample", router.name()), f);
        }
        figures.push(median(ours));
        figures.push(median(packed));
        let tag = format!("{which}-{}", family_name(family));
        figures.push(run_gobgpd(&mut lab, router.as_ref(), family, &tag));
    }
    for f in &figures {
        print_figure(router.name(), f);
    }
    figures
}

/// Rounds of ours and the packed sender: `FBGP_BENCH_ROUNDS`, else 5 (3 for GoBGP, whose
/// receiving takes seconds per run).
fn repetitions(which: &str) -> usize {
    std::env::var("FBGP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if which == "gobgp" { 3 } else { 5 })
}

/// The run with the median time (CPU and RSS: the largest seen, to stay conservative).
fn median(mut runs: Vec<Figure>) -> Figure {
    let cpu = runs.iter().filter_map(|f| f.cpu_rss.map(|c| c.0)).max();
    let rss = runs.iter().filter_map(|f| f.cpu_rss.map(|c| c.1)).max();
    runs.sort_by_key(|f| f.took);
    let mut m = runs.swap_remove(runs.len() / 2);
    m.cpu_rss = cpu.zip(rss);
    m
}

fn print_figure(receiver: &str, f: &Figure) {
    let counts = if f.updates > 0 {
        format!("{:>6} UPDATEs {:>9} B", f.updates, f.bytes)
    } else {
        format!("{:>26}", "")
    };
    let ours = f
        .cpu_rss
        .map(|(cpu, kib)| {
            format!(
                "  cpu {:.2} s  peak RSS {:.1} MiB",
                cpu.as_secs_f64(),
                kib as f64 / 1024.0
            )
        })
        .unwrap_or_default();
    println!(
        "{receiver:<13} {:<2} {:>6} routes  {:<8} {:>8.3} s  {counts}{ours}",
        family_name(f.family),
        f.routes,
        f.sender,
        f.took.as_secs_f64(),
    );
}

fn main() {
    if let Ok(family) = std::env::var("FBGP_BENCH_SPEAK") {
        speaker_child(&family);
        return;
    }
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| ["bird", "frr", "gobgp"].contains(&a.as_str()))
        .collect();
    let wanted = if wanted.is_empty() {
        vec!["bird".to_owned(), "frr".to_owned(), "gobgp".to_owned()]
    } else {
        wanted
    };
    if !can_run(&[
        "ip",
        "env",
        Bird::BIRD,
        Frr::ZEBRA,
        Frr::BGPD,
        Gobgp::GOBGPD,
        "gobgp",
    ]) {
        return;
    }
    let mut all = Vec::new();
    for which in &wanted {
        let figures = bench_receiver(which);
        all.push((which.clone(), figures));
    }
    println!("\nratio ferrolb / packed (target <= 1.2), gobgpd / packed:");
    for (which, figures) in &all {
        for family in [Family::V6, Family::V4] {
            let took = |s: &str| {
                figures
                    .iter()
                    .find(|f| f.family == family && f.sender == s)
                    .map(|f| f.took.as_secs_f64())
            };
            if let (Some(ours), Some(packed), Some(gobgpd)) =
                (took("ferrolb"), took("packed"), took("gobgpd"))
            {
                // Below ~5 ms the start of the clock is noise (a thread's wake-up).
                let ratio = |x: f64| {
                    if packed < 0.005 {
                        "n/a (packed < 5 ms)".to_owned()
                    } else {
                        format!("{:.2}x", x / packed)
                    }
                };
                println!(
                    "{which:<6} {}  ferrolb {}  gobgpd {}",
                    family_name(family),
                    ratio(ours),
                    ratio(gobgpd)
                );
            }
        }
    }
}
