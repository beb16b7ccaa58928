//! The namespace lab of the L2 tests: a bridge, a client and a speaker namespace
//! (see `l2_netns.rs`), client commands, skip rules, and teardown on drop.
// Entering a namespace needs setns(2), which has no safe wrapper in our dependencies.
#![allow(unsafe_code)]
// Shared by several test files; each uses a subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrolb_proto::l2::counters::{Family, FamilySnapshot};
use ferrolb_proto::l2::{MacAddr, Responder, ResponderConfig};

pub(crate) const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub(crate) const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Whether the test can run here; prints the reason and returns false when it cannot
/// (panics instead when CI=true, so CI never passes by skipping).
pub(crate) fn can_run(tools: &[&str]) -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut missing: Vec<String> = Vec::new();
    if !is_root {
        missing.push("root (CAP_NET_ADMIN, CAP_NET_RAW)".into());
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            missing.push(format!("the `{tool}` command"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIPPED: this test needs {} (apt-get install -y arping ndisc6 iputils-ping iproute2)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}; CI=true does not allow skipping");
    }
    println!("{message}");
    false
}

pub(crate) fn run(args: &[&str]) -> Output {
    let (program, rest) = args.split_first().expect("a command");
    Command::new(program)
        .args(rest)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

pub(crate) fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge namespace, a client namespace and a speaker namespace with two ports.
pub(crate) struct Lab {
    pub(crate) prefix: String,
    /// Namespaces created so far, deleted on drop.
    namespaces: Vec<String>,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let mut lab = Lab {
            prefix: format!("fl2-{}-{n}-", std::process::id()),
            namespaces: Vec::new(),
        };
        for role in ["br", "cli", "spk"] {
            let name = lab.ns(role);
            must(&["ip", "netns", "add", &name]);
            lab.namespaces.push(name);
        }
        let (br, cli, spk) = (lab.ns("br"), lab.ns("cli"), lab.ns("spk"));
        must(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"]);
        for (ns, inner, port) in [
            (&cli, "cli0", "p-cli"),
            (&spk, "spk0", "p-spk0"),
            (&spk, "spk1", "p-spk1"),
        ] {
            must(&[
                "ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", port,
                "netns", &br,
            ]);
            must(&["ip", "-n", &br, "link", "set", port, "master", "br0", "up"]);
            // No DAD and no router solicitations: the lab is ready at once.
            for sysctl in ["accept_dad=0", "accept_ra=0", "router_solicitations=0"] {
                must(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{inner}.{sysctl}"),
                ]);
            }
            must(&["ip", "-n", ns, "link", "set", inner, "up"]);
        }
        must(&["ip", "-n", &br, "link", "set", "br0", "up"]);
        must(&[
            "ip",
            "-n",
            &cli,
            "addr",
            "add",
            "192.0.2.1/24",
            "dev",
            "cli0",
        ]);
        must(&[
            "ip",
            "-n",
            &cli,
            "addr",
            "add",
            "2001:db8::1/64",
            "dev",
            "cli0",
            "nodad",
        ]);
        lab
    }

    pub(crate) fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// Runs a command in the client namespace.
    pub(crate) fn client(&self, args: &[&str]) -> Output {
        let cli = self.ns("cli");
        let mut full = vec!["ip", "netns", "exec", cli.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// The MAC of `dev` in the speaker namespace.
    pub(crate) fn speaker_mac(&self, dev: &str) -> MacAddr {
        let out = run(&["ip", "-n", &self.ns("spk"), "-br", "link", "show", dev]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.parse::<MacAddr>().ok())
            .unwrap_or_else(|| panic!("no MAC for {dev} in {text:?}"))
    }

    /// Runs `body` with a responder started inside the speaker namespace.
    pub(crate) fn with_responder<F, Fut>(&self, config: ResponderConfig, body: F)
    where
        F: FnOnce(Responder) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
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
        Fut: std::future::Future<Output = ()>,
    {
        let path = format!("/run/netns/{}", self.ns("spk"));
        let joined = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: `ns` is an open namespace file for the duration of the call;
            // setns(2) changes only this thread's network namespace, and this thread
            // is ours alone (it ends with the test body).
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(body());
        })
        .join();
        if let Err(panic) = joined {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `body` on a new thread that entered namespace `ns` (a full name); for
/// blocking client work that needs its own sockets there.
pub(crate) fn spawn_in_ns<T: Send + 'static>(
    ns: String,
    body: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let path = format!("/run/netns/{ns}");
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: as in `in_speaker_ns`: an open namespace file, and setns(2) moves
        // only this new thread, which is ours alone.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        body()
    })
}

pub(crate) fn fast() -> ResponderConfig {
    ResponderConfig {
        announce_repeats: 3,
        announce_interval: Duration::from_millis(600),
        ..ResponderConfig::default()
    }
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a blocking client command from async code without stalling the responder.
pub(crate) async fn client_async(lab_prefix: String, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let ns = format!("{lab_prefix}cli");
        let mut full = vec!["ip".to_owned(), "netns".into(), "exec".into(), ns];
        full.extend(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        run(&refs)
    })
    .await
    .expect("client command task")
}

pub(crate) fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

pub(crate) fn counters_of(
    all: &BTreeMap<(String, Family), FamilySnapshot>,
    dev: &str,
    f: Family,
) -> FamilySnapshot {
    all.get(&(dev.to_owned(), f)).cloned().unwrap_or_default()
}

/// Runs `ip ARGS` without blocking the runtime; panics when it fails.
pub(crate) async fn ip_async(args: Vec<String>) -> Output {
    let out = tokio::task::spawn_blocking(move || {
        let mut full = vec!["ip"];
        full.extend(args.iter().map(String::as_str));
        let out = run(&full);
        assert!(out.status.success(), "{full:?}: {}", text(&out));
        out
    })
    .await;
    match out {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
