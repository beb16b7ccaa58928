//! The L2 responder's lab (see `l2_netns.rs`), on `ferrolb-netlab`: a switch, a client host and
//! a speaker namespace with two ports, plus what the responder tests share — starting FerroLB's
//! responder inside the speaker namespace, fast announcement settings, client commands from
//! async code, counter lookups.
//!
//! ```text
//!   [cli] cli0 ──veth── p-cli  ┐
//!                              ├─ br0 [sw]
//!   [spk] spk0 ──veth── p-spk0 ┤
//!         spk1 ──veth── p-spk1 ┘
//! ```
// Shared by several test files; each uses a subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Output;
use std::time::Duration;

use ferrolb_netlab::{Netlab, netns};
use ferrolb_proto::l2::counters::{Family, FamilySnapshot};
use ferrolb_proto::l2::{MacAddr, Responder, ResponderConfig};

// Each test binary uses some of them.
#[allow(unused_imports)]
pub(crate) use ferrolb_netlab::command::args;
#[allow(unused_imports)]
pub(crate) use ferrolb_netlab::{can_run, text};

pub(crate) const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub(crate) const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

/// How long a condition of these tests may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// The responder's lab; torn down on drop.
pub(crate) struct Lab {
    pub(crate) net: Netlab,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        let mut net = Netlab::new("l2").expect("lab");
        net.add_host("cli", "cli0", &["192.0.2.1/24", "2001:db8::1/64"])
            .expect("client");
        net.add_namespace("spk").expect("speaker namespace");
        for (iface, port) in [("spk0", "p-spk0"), ("spk1", "p-spk1")] {
            net.plug("spk", iface, port, &[]).expect("speaker port");
        }
        Lab { net }
    }

    /// The lab's name prefix (`client_async` takes it).
    pub(crate) fn prefix(&self) -> String {
        self.net.prefix().to_owned()
    }

    /// The full name of a namespace of this lab (`cli`, `spk`).
    pub(crate) fn ns(&self, role: &str) -> String {
        self.net.ns(role)
    }

    /// The switch's namespace.
    pub(crate) fn switch(&self) -> String {
        self.net.switch_ns()
    }

    /// Runs a command in the client namespace.
    pub(crate) fn client(&self, args: &[&str]) -> Output {
        self.net.exec("cli", args).expect("client command")
    }

    /// The MAC of `dev` in the speaker namespace.
    pub(crate) fn speaker_mac(&self, dev: &str) -> MacAddr {
        let mac = self.net.mac("spk", dev).expect("speaker MAC");
        mac.parse()
            .unwrap_or_else(|_| panic!("{mac} is no MAC address"))
    }

    /// Runs `body` with a responder started inside the speaker namespace.
    pub(crate) fn with_responder<F, Fut>(&self, config: ResponderConfig, body: F)
    where
        F: FnOnce(Responder) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        self.in_speaker_ns(move || async move {
            let (responder, _task) = Responder::start(config).await.expect("responder starts");
            body(responder).await;
        });
    }

    /// Runs `body` on a tokio runtime in a thread that entered the speaker namespace.
    pub(crate) fn in_speaker_ns<F, Fut>(&self, body: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        netns::block_in(&self.ns("spk"), body).expect("speaker namespace thread");
    }
}

/// Runs a command and returns its output; panics only when it cannot be started.
pub(crate) fn run(args: &[&str]) -> Output {
    ferrolb_netlab::run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command that must succeed.
pub(crate) fn must(args: &[&str]) {
    ferrolb_netlab::must(args).unwrap_or_else(|e| panic!("{e}"));
}

/// Announcements 600 ms apart, three rounds.
pub(crate) fn fast() -> ResponderConfig {
    ResponderConfig {
        announce_repeats: 3,
        announce_interval: Duration::from_millis(600),
        ..ResponderConfig::default()
    }
}

/// Runs a command in namespace `ns` from async code without stalling the responder.
pub(crate) async fn run_in_async(ns: String, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ferrolb_netlab::command::run_in(&ns, &refs).expect("command runs")
    })
    .await
    .expect("command task")
}

/// Runs a client command from async code (`lab_prefix` is the lab's [`Netlab::prefix`]).
pub(crate) async fn client_async(lab_prefix: String, args: Vec<String>) -> Output {
    run_in_async(format!("{lab_prefix}cli"), args).await
}

/// Runs `ip ARGS` without blocking the runtime; panics when it fails.
pub(crate) async fn ip_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut full = vec!["ip"];
        full.extend(args.iter().map(String::as_str));
        let out = ferrolb_netlab::run(&full).expect("ip runs");
        assert!(out.status.success(), "{full:?}: {}", text(&out));
        out
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

pub(crate) fn counters_of(
    all: &BTreeMap<(String, Family), FamilySnapshot>,
    dev: &str,
    f: Family,
) -> FamilySnapshot {
    all.get(&(dev.to_owned(), f)).cloned().unwrap_or_default()
}

/// Waits until `dev`'s counters of family `f` satisfy `check`; returns them.
pub(crate) async fn wait_counters(
    r: &Responder,
    dev: &str,
    f: Family,
    what: &str,
    check: impl Fn(&FamilySnapshot) -> bool,
) -> FamilySnapshot {
    let check = &check;
    let snapshot =
        move || async move { counters_of(&r.counters().await.expect("counters"), dev, f) };
    let found = ferrolb_netlab::eventually_async(DEADLINE, Duration::from_millis(20), || async {
        let now = snapshot().await;
        check(&now).then_some(now)
    })
    .await;
    match found {
        Some(now) => now,
        None => panic!(
            "{what}: not within {DEADLINE:?}; last {:?}",
            snapshot().await
        ),
    }
}
