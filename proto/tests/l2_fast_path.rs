//! The in-kernel fast path of the L2 responder against real clients (needs root).
//!
//! Same lab as `l2_netns.rs` (bridge, client and speaker namespaces, documentation
//! addresses only, namespaces deleted on drop). Shows that with the fast path on the
//! answers come from the TCX program (its counters), that withdraw stops them, that
//! the sockets still answer with it off, and that a speaker killed with SIGKILL stops
//! answering because the kernel detaches the program with the process's bpf_link.

mod l2_lab;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrolb_proto::l2::counters::Family;
use ferrolb_proto::l2::{AnswerPath, Responder, ResponderConfig};

use ferrolb_netlab::netns;
use l2_lab::{Lab, VIP4, VIP6, args, can_run, client_async, counters_of, fast, text};

#[test]
fn arping_and_ndisc6_are_answered_by_the_kernel_program_until_withdraw() {
    if !can_run(&["ip", "arping", "ndisc6"]) {
        return;
    }
    let lab = Lab::new();
    let mac = lab.speaker_mac("spk0").to_string();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
            r.announce(ip, ["spk0".to_owned()]).await.expect("announce");
        }
        let paths = r.answer_paths().await.expect("paths");
        assert_eq!(paths.get("spk0"), Some(&AnswerPath::InKernel), "{paths:?}");

        let out = client_async(prefix.clone(), args("arping -c 3 -w 3 -I cli0 192.0.2.10")).await;
        let said = text(&out).to_lowercase();
        assert!(
            out.status.success() && said.contains(&mac),
            "arping: {said}"
        );
        let out = client_async(
            prefix.clone(),
            args("ndisc6 -1 -r 3 -w 500 2001:db8::10 cli0"),
        )
        .await;
        let said = text(&out).to_lowercase();
        assert!(
            out.status.success() && said.contains(&mac),
            "ndisc6: {said}"
        );

        let c = r.counters().await.expect("counters");
        let v4 = counters_of(&c, "spk0", Family::V4);
        let v6 = counters_of(&c, "spk0", Family::V6);
        assert!(
            v4.fast_path_replies >= 3,
            "ARP answered in the kernel: {v4:?}"
        );
        assert!(
            v6.fast_path_replies >= 1,
            "NS answered in the kernel: {v6:?}"
        );
        for s in [&v4, &v6] {
            assert!(s.replies_sent >= s.fast_path_replies, "{s:?}");
            assert!(s.requests_seen >= s.fast_path_replies, "{s:?}");
        }

        for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
            r.withdraw(ip).await.expect("withdraw");
        }
        let out = client_async(prefix.clone(), args("arping -c 2 -w 2 -I cli0 192.0.2.10")).await;
        assert!(
            !out.status.success(),
            "ARP answered after withdraw: {}",
            text(&out)
        );
        let out = client_async(prefix, args("ndisc6 -1 -r 2 -w 300 2001:db8::10 cli0")).await;
        assert!(
            !out.status.success(),
            "NS answered after withdraw: {}",
            text(&out)
        );
        let after = r.counters().await.expect("counters");
        assert_eq!(
            counters_of(&after, "spk0", Family::V4).fast_path_replies,
            v4.fast_path_replies,
            "no kernel answer after withdraw"
        );
    });
}

#[test]
fn with_the_fast_path_off_the_sockets_still_answer() {
    if !can_run(&["ip", "arping", "ndisc6"]) {
        return;
    }
    let lab = Lab::new();
    let mac = lab.speaker_mac("spk0").to_string();
    let prefix = lab.prefix();
    let config = ResponderConfig {
        fast_path: false,
        ..fast()
    };
    lab.with_responder(config, move |r| async move {
        for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
            r.announce(ip, ["spk0".to_owned()]).await.expect("announce");
        }
        let paths = r.answer_paths().await.expect("paths");
        assert_eq!(paths.get("spk0"), Some(&AnswerPath::Sockets), "{paths:?}");
        let out = client_async(prefix.clone(), args("arping -c 2 -w 3 -I cli0 192.0.2.10")).await;
        let said = text(&out).to_lowercase();
        assert!(
            out.status.success() && said.contains(&mac),
            "arping: {said}"
        );
        let out = client_async(prefix, args("ndisc6 -1 -r 3 -w 500 2001:db8::10 cli0")).await;
        let said = text(&out).to_lowercase();
        assert!(
            out.status.success() && said.contains(&mac),
            "ndisc6: {said}"
        );
        let c = r.counters().await.expect("counters");
        let v4 = counters_of(&c, "spk0", Family::V4);
        assert!(v4.replies_sent >= 2 && v4.fast_path_replies == 0, "{v4:?}");
    });
}

/// Env var naming the speaker namespace the child responder runs in.
const CHILD_NS: &str = "FERROLB_FAST_PATH_CHILD_NS";
/// What the child prints once its fast path answers.
const CHILD_READY: &str = "fast-path-child-ready";

/// Not a test on its own: the body of the child process of
/// `a_speaker_killed_with_sigkill_stops_answering`, which runs this binary with only
/// this test selected and `CHILD_NS` set. Without it, it returns at once.
#[test]
fn fast_path_child_holds_a_responder_until_killed() {
    let Ok(ns) = std::env::var(CHILD_NS) else {
        return;
    };
    netns::block_in(&ns, || async {
        let (r, _task) = Responder::start(fast()).await.expect("responder starts");
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce");
        let paths = r.answer_paths().await.expect("paths");
        assert_eq!(paths.get("spk0"), Some(&AnswerPath::InKernel), "{paths:?}");
        println!("{CHILD_READY}");
        std::future::pending::<()>().await;
    })
    .expect("child namespace");
}

/// Kills the child on drop, so a failing test leaves no responder behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_speaker_killed_with_sigkill_stops_answering() {
    if !can_run(&["ip", "arping"]) {
        return;
    }
    let lab = Lab::new();
    let mac = lab.speaker_mac("spk0").to_string();
    let exe = std::env::current_exe().expect("test binary");
    let mut child = KillOnDrop(
        Command::new(exe)
            .args([
                "fast_path_child_holds_a_responder_until_killed",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_NS, lab.ns("spk"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child starts"),
    );
    let stdout = child.0.stdout.take().expect("child stdout");
    let mut ready = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains(CHILD_READY) {
            ready = true;
            break;
        }
    }
    assert!(ready, "the child never reported its fast path attached");

    let out = lab.client(&["arping", "-c", "2", "-w", "3", "-I", "cli0", "192.0.2.10"]);
    let said = text(&out).to_lowercase();
    assert!(
        out.status.success() && said.contains(&mac),
        "before the kill: {said}"
    );

    // SIGKILL: no destructor runs; only the kernel closing the bpf_link detaches.
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    std::thread::sleep(Duration::from_millis(100));
    let out = lab.client(&["arping", "-c", "2", "-w", "2", "-I", "cli0", "192.0.2.10"]);
    assert!(
        !out.status.success(),
        "still answered after the speaker was killed: {}",
        text(&out)
    );
}
