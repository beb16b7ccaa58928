//! Graceful Restart (RFC 4724) against FRR (bgpd + zebra) in network namespaces (needs root and
//! FRR; see `bgp_lab`). Our speaker runs as a real process (this test binary run again with
//! `FBGP_GR_SPEAK`), so that it can be SIGKILLed and started again:
//! - with GR: FRR keeps our routes, marked stale, in its RIB and in the kernel table while we
//!   are dead; after the restart (OPEN with the R and F bits) it takes the same routes back and
//!   clears the stale flag, and the kernel route is never missing in between;
//! - without GR: a new session without the capability flushes the stale routes, and when that
//!   process is killed FRR drops our routes at once.

mod bgp_lab;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bgp_lab::{
    DEADLINE, Frr, Lab, ROUTER_AS, ROUTER4, Router, can_run, dial, must, neighbor, poll, session,
};
use ferrolb_proto::bgp::driver::{Command, Event, spawn};
use ferrolb_proto::bgp::open::Families;
use ferrolb_proto::bgp::packing::{NextHop, RouteAttrs, RouteSet};
use serde_json::Value;

const OUR_AS: u32 = 64512;
const RESTART_SECS: u64 = 120;
const PREFIX4: &str = "203.0.113.50/32";
const PREFIX6: &str = "2001:db8:50::1/128";
const TEST: &str = "frr_keeps_our_routes_across_a_graceful_restart_and_drops_them_without_it";

/// Both routes, next hop node 1.
fn announced() -> RouteSet {
    let attrs = |next_hop| RouteAttrs {
        next_hop,
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        local_pref: None,
    };
    [
        (
            PREFIX4.parse().expect("prefix"),
            attrs(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        ),
        (
            PREFIX6.parse().expect("prefix"),
            attrs(NextHop::V6 {
                global: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
                link_local: None,
            }),
        ),
    ]
    .into()
}

/// The speaker process: `FBGP_GR_SPEAK=<restart secs or none>,<restarting 0|1>`. It dials FRR
/// from 192.0.2.1, announces [`announced`] and prints one `FBGP <event>` line per driver event
/// until it is killed.
fn speaker_child(spec: &str) {
    let (restart, restarting) = spec
        .split_once(',')
        .expect("FBGP_GR_SPEAK=restart,restarting");
    let local = Ipv4Addr::new(192, 0, 2, 1);
    let mut config = session(OUR_AS, ROUTER_AS, local);
    config.local.graceful_restart = restart.parse().ok().map(Duration::from_secs);
    config.is_restarting = restarting == "1";
    config.validate().expect("valid session config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (cmd, mut events, _task) = spawn(dial(config, IpAddr::V4(ROUTER4), IpAddr::V4(local)));
        cmd.send(Command::SetRoutes(announced()))
            .await
            .expect("peer task alive");
        while let Some(ev) = events.recv().await {
            let line = match ev {
                Event::Up(n) => format!("up gr={:?}", n.graceful_restart.is_some()),
                Event::Down(reason) => format!("down {}", reason.reason()),
                Event::RoutesSent { updates, .. } => format!("sent {updates}"),
            };
            println!("FBGP {line}");
        }
    });
}

/// Starts the speaker process in node 1's namespace; returns its PID.
fn start_speaker(lab: &mut Lab, name: &str, spec: &str) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let exe = exe.to_str().expect("utf-8 path");
    let log = lab.path(&format!("{name}.log"));
    let env = format!("FBGP_GR_SPEAK={spec}");
    let args = [
        "env",
        &env,
        exe,
        "--exact",
        TEST,
        "--nocapture",
        "--test-threads",
        "1",
    ];
    lab.start_daemon(name, "n1", &args, &log).to_string()
}

/// FRR's view of our path for `prefix`: `Ok(is_stale)`, or `Err` when it has none.
fn frr_path_is_stale(frr: &Frr, prefix: &str) -> Result<bool, String> {
    let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v = frr.json(&format!("show bgp {family} unicast {prefix} json"))?;
    match v["paths"].as_array().map(Vec::as_slice) {
        Some([path]) => Ok(path["stale"].as_bool().unwrap_or(false)),
        other => Err(format!("paths {other:?}")),
    }
}

fn wait_stale(frr: &Frr, want: bool) {
    for prefix in [PREFIX4, PREFIX6] {
        poll(
            &format!("FRR holds {prefix} with stale={want}"),
            DEADLINE,
            Duration::from_millis(50),
            || match frr_path_is_stale(frr, prefix)? {
                s if s == want => Ok(()),
                s => Err(format!("stale={s}")),
            },
        );
    }
}

/// Whether the router namespace's kernel table has both our routes from zebra.
fn kernel_has_routes(lab: &Lab) -> bool {
    [PREFIX4, PREFIX6]
        .iter()
        .all(|p| lab.router_kernel_route(p).contains("proto bgp"))
}

fn wait_kernel(lab: &Lab, want: bool) {
    poll(
        &format!("kernel table of the router has our routes: {want}"),
        DEADLINE,
        Duration::from_millis(50),
        || {
            if kernel_has_routes(lab) == want {
                Ok(())
            } else {
                Err(format!(
                    "{}{}",
                    lab.router_kernel_route(PREFIX4),
                    lab.router_kernel_route(PREFIX6)
                ))
            }
        },
    );
}

fn wait_session_down(frr: &Frr, node: IpAddr) {
    poll(
        "FRR sees the session down",
        DEADLINE,
        Duration::from_millis(50),
        || match frr.session_state(node) {
            Ok(()) => Err("still Established".into()),
            Err(_) => Ok(()),
        },
    );
}

/// The graceful-restart part of FRR's neighbor JSON.
fn frr_gr_info(frr: &Frr, node: IpAddr) -> Value {
    let v = frr
        .json(&format!("show bgp neighbors {node} json"))
        .expect("neighbor JSON");
    v[node.to_string()]["gracefulRestartInfo"].clone()
}

/// (remote GR mode, R bit, IPv4 F bit, IPv6 F bit, restart time received) as FRR shows them.
type GrFlags<'a> = (
    Option<&'a str>,
    Option<bool>,
    Option<bool>,
    Option<bool>,
    Option<u64>,
);

fn gr_flags(gr: &Value) -> GrFlags<'_> {
    (
        gr["remoteGrMode"].as_str(),
        gr["rBit"].as_bool(),
        gr["ipv4Unicast"]["fBit"].as_bool(),
        gr["ipv6Unicast"]["fBit"].as_bool(),
        gr["timers"]["receivedRestartTimer"].as_u64(),
    )
}

#[test]
fn frr_keeps_our_routes_across_a_graceful_restart_and_drops_them_without_it() {
    if let Ok(spec) = std::env::var("FBGP_GR_SPEAK") {
        speaker_child(&spec);
        return;
    }
    if !can_run(&["ip", "kill", "env", Frr::ZEBRA, Frr::BGPD]) {
        return;
    }
    let mut lab = Lab::new(1);
    let node = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let frr = lab.frr(&[neighbor(node, OUR_AS, Families::DUAL)]);
    let restart = format!("{RESTART_SECS}");

    // First start: GR announced, not restarting.
    let pid = start_speaker(&mut lab, "speaker1", &format!("{restart},0"));
    frr.wait_established(node)
        .expect("router session Established");
    wait_stale(&frr, false);
    wait_kernel(&lab, true);
    assert_eq!(
        gr_flags(&frr_gr_info(&frr, node)),
        (
            Some("Restart"),
            Some(false),
            Some(true),
            Some(true),
            Some(120)
        ),
        "FRR's view of our first OPEN: GR with both families' F bits, no R bit"
    );

    // SIGKILL: no NOTIFICATION, the kernel closes the connection. FRR keeps the routes, stale.
    must(&["kill", "-KILL", &pid]);
    let killed_at = Instant::now();
    wait_session_down(&frr, node);
    wait_stale(&frr, true);
    assert!(
        kernel_has_routes(&lab),
        "the kernel route stays while we are dead"
    );

    // Watch the kernel table from now until the restarted speaker has refreshed the routes.
    let is_watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let is_watching = Arc::clone(&is_watching);
        let ns = lab.router_ns();
        std::thread::spawn(move || {
            let mut missing = 0u32;
            let mut looks = 0u32;
            while is_watching.load(Ordering::Relaxed) {
                for prefix in [PREFIX4, PREFIX6] {
                    let family = if prefix.contains(':') { "-6" } else { "-4" };
                    let out = bgp_lab::run(&["ip", family, "-n", &ns, "route", "show", prefix]);
                    looks += 1;
                    if !String::from_utf8_lossy(&out.stdout).contains("proto bgp") {
                        missing += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (looks, missing)
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // Restart: R bit (and F bits) in the OPEN; FRR takes the same routes and clears stale.
    start_speaker(&mut lab, "speaker2", &format!("{restart},1"));
    frr.wait_established(node)
        .expect("router session Established");
    wait_stale(&frr, false);
    let gr = frr_gr_info(&frr, node);
    assert_eq!(
        gr_flags(&gr),
        (
            Some("Restart"),
            Some(true),
            Some(true),
            Some(true),
            Some(120)
        ),
        "FRR's view of our OPEN after the restart: R bit set"
    );
    for family in ["ipv4Unicast", "ipv6Unicast"] {
        assert_eq!(gr["endOfRibRecv"][family].as_bool(), Some(true), "{gr}");
    }
    let refreshed_after = killed_at.elapsed();
    is_watching.store(false, Ordering::Relaxed);
    let (looks, missing) = watcher.join().expect("watcher");
    assert!(looks > 10, "the watcher looked {looks} times");
    assert_eq!(
        missing, 0,
        "the kernel route went missing {missing} of {looks} looks during the restart"
    );
    println!(
        "GR: routes stale while dead, refreshed {refreshed_after:.2?} after SIGKILL; kernel route present in all {looks} looks"
    );

    // A session without GR replaces the stale routes (RFC 4724 §4.2: family not listed).
    lab.stop_daemon("speaker2");
    wait_session_down(&frr, node);
    wait_stale(&frr, true);
    let pid = start_speaker(&mut lab, "speaker3", "none,0");
    frr.wait_established(node)
        .expect("router session Established");
    wait_stale(&frr, false);
    wait_kernel(&lab, true);

    // Killed without GR: FRR drops the routes at once, not after a restart time.
    must(&["kill", "-KILL", &pid]);
    let killed_at = Instant::now();
    frr.wait_paths(PREFIX4, Vec::new())
        .expect("router RIB as expected");
    frr.wait_paths(PREFIX6, Vec::new())
        .expect("router RIB as expected");
    wait_kernel(&lab, false);
    let gone_after = killed_at.elapsed();
    assert!(
        gone_after < Duration::from_secs(10),
        "routes gone {gone_after:?} after SIGKILL without GR (restart time would be {RESTART_SECS} s)"
    );
    println!("without GR: routes gone {gone_after:.2?} after SIGKILL");
}
