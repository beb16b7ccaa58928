//! The lab itself in real namespaces (needs root and `ping`): hosts on the switch reach each
//! other, everything is gone after drop — also after a panic —, processes are known by PID,
//! forwarding and runtimes work inside namespaces, and the ARP asker sees every MAC that
//! answers. Without root each test prints why and passes,
//! unless CI=true.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use ferrolb_netlab::{LabError, Netlab, NsRuntime, can_run, netns};

/// The namespaces whose names start with `prefix`.
fn namespaces_of(prefix: &str) -> Vec<String> {
    let out = ferrolb_netlab::must(&["ip", "netns", "list"]).expect("ip netns list");
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn is_running(pid: u32) -> bool {
    // A zombie has no `State: Z` once reaped; a live process has a status file.
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

#[test]
fn hosts_on_the_switch_reach_each_other_and_nothing_is_left_after_drop() {
    if !can_run(&["ping"]) {
        return;
    }
    let mut lab = Netlab::new("t").expect("lab");
    lab.add_host("a", "eth0", &["192.0.2.1/24", "2001:db8::1/64"])
        .expect("host a");
    lab.add_host("b", "eth0", &["192.0.2.2/24", "2001:db8::2/64"])
        .expect("host b");
    lab.exec_ok("a", &["ping", "-c", "1", "-W", "2", "192.0.2.2"])
        .expect("IPv4 across the switch");
    lab.exec_ok("a", &["ping", "-6", "-c", "1", "-W", "2", "2001:db8::2"])
        .expect("IPv6 across the switch, no DAD wait");
    let mac = lab.mac("b", "eth0").expect("MAC");
    assert_eq!(
        ferrolb_netlab::l2::arp_owner(&lab.ns("a"), "eth0", "192.0.2.2".parse().expect("ip")),
        Some(mac)
    );
    let prefix = lab.prefix().to_owned();
    let dir = lab.dir().to_owned();
    assert_eq!(namespaces_of(&prefix).len(), 3, "switch, a and b");
    drop(lab);
    assert_eq!(namespaces_of(&prefix), Vec::<String>::new());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn a_cut_drops_one_source_on_one_interface_until_healed_and_leaves_arp_alone() {
    if !can_run(&["ping", "nft", "arping"]) {
        return;
    }
    let mut lab = Netlab::new("cut").expect("lab");
    lab.add_host("a", "eth0", &["192.0.2.1/24"])
        .expect("host a");
    lab.add_host("b", "eth0", &["192.0.2.2/24"])
        .expect("host b");
    let ping = |lab: &Netlab| lab.exec_ok("a", &["ping", "-c", "1", "-W", "1", "192.0.2.2"]);
    ping(&lab).expect("before the cut");
    lab.drop_from("b", "eth0", "192.0.2.1").expect("cut");
    assert!(ping(&lab).is_err(), "b must not hear a");
    lab.exec_ok(
        "a",
        &["arping", "-c", "1", "-w", "2", "-I", "eth0", "192.0.2.2"],
    )
    .expect("ARP is not IP: b still answers");
    lab.heal("b").expect("heal");
    ping(&lab).expect("after healing");
    lab.heal("b").expect("healing twice is harmless");
}

#[test]
fn a_panic_in_the_test_still_tears_the_lab_and_its_processes_down() {
    if !can_run(&["sleep"]) {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = std::thread::spawn(move || {
        let mut lab = Netlab::new("t").expect("lab");
        lab.add_host("a", "eth0", &[]).expect("host");
        let log = lab.path("sleep.log");
        let pid = lab
            .spawn("sleep", "a", &["sleep", "600"], &[], &log)
            .expect("sleep");
        tx.send((lab.prefix().to_owned(), pid)).expect("send");
        panic!("a failing assertion");
    })
    .join();
    assert!(panicked.is_err());
    let (prefix, pid) = rx.recv().expect("the lab was built");
    assert_eq!(namespaces_of(&prefix), Vec::<String>::new());
    assert!(!is_running(pid), "process {pid} survived its lab");
}

#[test]
fn a_process_is_stopped_by_its_pid_and_an_unexpected_exit_is_named_with_its_log() {
    if !can_run(&["sleep", "sh"]) {
        return;
    }
    let mut lab = Netlab::new("t").expect("lab");
    lab.add_host("a", "eth0", &[]).expect("host");
    let log = lab.path("sleep.log");
    let sleeper = lab
        .spawn("sleeper", "a", &["sleep", "600"], &[], &log)
        .expect("sleep");
    let log = lab.path("quitter.log");
    let script = "echo about to quit; exit 3";
    lab.spawn("quitter", "a", &["sh", "-c", script], &[], &log)
        .expect("sh");
    let exited = ferrolb_netlab::poll(
        "the quitter exits",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || match lab.processes().check_alive() {
            Err(e) => Ok(e),
            Ok(()) => Err("running".into()),
        },
    )
    .expect("quitter exits");
    assert!(
        matches!(&exited, LabError::Exited { name, tail, .. } if name == "quitter" && tail.contains("about to quit")),
        "{exited}"
    );
    assert_eq!(lab.processes().pid("sleeper"), Some(sleeper));
    lab.processes().stop(sleeper);
    assert!(!is_running(sleeper));
    let exits: Vec<String> = lab.exited().into_iter().map(|(n, _)| n).collect();
    assert_eq!(exits, ["sleeper", "quitter"]);
}

#[tokio::test]
async fn a_forward_carries_a_connection_from_a_namespace_to_the_callers_listener() {
    if !can_run(&[]) {
        return;
    }
    let mut lab = Netlab::new("t").expect("lab");
    lab.address_switch(&["192.0.2.1/24"])
        .expect("switch address");
    lab.add_host("a", "eth0", &["192.0.2.2/24"]).expect("host");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = listener.local_addr().expect("address");
    let listen: SocketAddr = "192.0.2.1:6443".parse().expect("address");
    lab.forward(Netlab::SWITCH, listen, target)
        .expect("forward");
    let ns = lab.ns("a");
    let client = netns::spawn_in(&ns, move || {
        let mut s = std::net::TcpStream::connect(listen)?;
        s.write_all(b"ping")?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok::<_, std::io::Error>(answer)
    });
    let (mut inbound, _) = listener.accept().await.expect("forwarded connection");
    let mut buf = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut inbound, &mut buf)
        .await
        .expect("read");
    assert_eq!(&buf, b"ping");
    tokio::io::AsyncWriteExt::write_all(&mut inbound, b"pong")
        .await
        .expect("write");
    drop(inbound);
    let answer = tokio::task::spawn_blocking(move || client.join())
        .await
        .expect("join task")
        .expect("client thread")
        .expect("setns")
        .expect("client I/O");
    assert_eq!(answer, "pong");
}

/// Whether the calling thread's namespace has a link called `name`.
fn sees_link(name: &str) -> bool {
    std::fs::read_to_string("/proc/thread-self/net/dev").is_ok_and(|t| {
        t.lines()
            .any(|l| l.trim_start().starts_with(&format!("{name}:")))
    })
}

#[test]
fn a_runtime_in_a_namespace_works_there_and_panics_come_back_to_the_caller() {
    if !can_run(&[]) {
        return;
    }
    let mut lab = Netlab::new("t").expect("lab");
    lab.add_host("a", "fltest0", &["192.0.2.2/24"])
        .expect("host");
    let runtime = NsRuntime::start(&lab.ns("a")).expect("runtime");
    assert!(runtime.block_on(async { sees_link("fltest0") }));
    assert!(
        !sees_link("fltest0"),
        "the test thread stays in its namespace"
    );
    let bound = runtime.block_on(async {
        tokio::net::TcpListener::bind("192.0.2.2:0")
            .await
            .map(|_| ())
    });
    assert!(bound.is_ok(), "{bound:?}");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async { panic!("inside") })
    }));
    assert!(caught.is_err());
    let in_thread = netns::block_in(&lab.ns("a"), || async { sees_link("fltest0") });
    assert!(in_thread.expect("thread"));
}

#[test]
fn the_arp_asker_sees_every_mac_that_answers_an_address() {
    if !can_run(&[]) {
        return;
    }
    let mut lab = Netlab::new("tarp").expect("lab");
    lab.add_host("client", "eth0", &["192.0.2.100/24"])
        .expect("client");
    // Two hosts holding one address: the kernel of each answers ARP for it.
    lab.add_host("a", "eth0", &["192.0.2.1/24", "192.0.2.50/32"])
        .expect("host a");
    lab.add_host("b", "eth0", &["192.0.2.2/24", "192.0.2.50/32"])
        .expect("host b");
    let asker = ferrolb_netlab::l2::ArpAsker {
        ns: lab.ns("client"),
        iface: "eth0".into(),
        mac: lab.mac("client", "eth0").expect("mac"),
        ip: "192.0.2.100".parse().expect("literal"),
    };
    let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().expect("literal");
    let ips = [ip("192.0.2.1"), ip("192.0.2.50"), ip("192.0.2.77")];
    let answers =
        ferrolb_netlab::l2::arp_answers(&asker, &ips, Duration::from_millis(300)).expect("asked");
    let macs = |role: &str| lab.mac(role, "eth0").expect("mac");
    let set = |macs: &[String]| {
        macs.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(answers[&ips[0]], set(&[macs("a")]));
    assert_eq!(
        answers[&ips[1]],
        set(&[macs("a"), macs("b")]),
        "both answers kept"
    );
    assert!(answers[&ips[2]].is_empty(), "nobody holds .77");
}
