//! The L2 responder against real clients in network namespaces (needs root).
//!
//! Topology, one per test (`l2_lab`, on `ferrolb-netlab`), all names prefixed
//! `fl-l2-<pid>-<n>-`:
//! ```text
//!   [cli ns] cli0 ──veth── p-cli ┐
//!                                ├─ br0 [sw ns]
//!   [spk ns] spk0 ──veth── p-spk0┤
//!            spk1 ──veth── p-spk1┘
//! ```
//! The responder runs in the `spk` namespace (a thread that entered it); `arping`,
//! `ndisc6`, `ping` and `ip neigh` run in `cli`. Addresses: 192.0.2.0/24 and
//! 2001:db8::/64 only. Namespaces are deleted in `Drop`, also when a test panics.
//! Without root or a client tool, each test prints why and passes, unless CI=true.

mod l2_lab;

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_netlab::eventually_async;
use ferrolb_proto::l2::MacAddr;
use ferrolb_proto::l2::counters::{Family, FamilySnapshot};
use ferrolb_proto::l2::link::{LinkEvent, LinkWatcher};

use l2_lab::{
    DEADLINE, Lab, VIP4, VIP6, args, can_run, client_async, counters_of, fast, ip_async, must, run,
    text, wait_counters,
};

#[test]
fn arping_gets_our_mac_for_an_announced_ipv4_and_nothing_after_withdraw() {
    if !can_run(&["ip", "arping"]) {
        return;
    }
    let lab = Lab::new();
    let mac = lab.speaker_mac("spk0").to_string();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce");
        let out = client_async(prefix.clone(), args("arping -c 2 -w 3 -I cli0 192.0.2.10")).await;
        let said = text(&out).to_lowercase();
        assert!(out.status.success(), "arping got no answer: {said}");
        assert!(
            said.contains(&mac),
            "arping answer is not from {mac}: {said}"
        );

        let c = r.counters().await.expect("counters");
        let v4 = counters_of(&c, "spk0", Family::V4);
        assert!(v4.replies_sent >= 2, "{v4:?}");
        assert!(v4.announcements_sent >= 2, "{v4:?}");

        r.withdraw(IpAddr::V4(VIP4)).await.expect("withdraw");
        let out = client_async(prefix, args("arping -c 2 -w 2 -I cli0 192.0.2.10")).await;
        assert!(
            !out.status.success(),
            "answered after withdraw: {}",
            text(&out)
        );
    });
}

#[test]
fn a_withdrawn_ip_is_dropped_as_unknown_while_a_neighbour_ip_is_still_answered() {
    if !can_run(&["ip", "arping"]) {
        return;
    }
    let lab = Lab::new();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 11));
        for ip in [IpAddr::V4(VIP4), other] {
            r.announce(ip, ["spk0".to_owned()]).await.expect("announce");
        }
        r.withdraw(IpAddr::V4(VIP4)).await.expect("withdraw");
        let out = client_async(prefix.clone(), args("arping -c 2 -w 2 -I cli0 192.0.2.10")).await;
        assert!(
            !out.status.success(),
            "answered after withdraw: {}",
            text(&out)
        );
        let out = client_async(prefix, args("arping -c 1 -w 2 -I cli0 192.0.2.11")).await;
        assert!(
            out.status.success(),
            "the other IP lost its answer: {}",
            text(&out)
        );
        let c = r.counters().await.expect("counters");
        let v4 = counters_of(&c, "spk0", Family::V4);
        assert!(
            v4.dropped.get("UnknownTarget").is_some_and(|n| *n >= 2),
            "requests for the withdrawn IP are counted as UnknownTarget: {v4:?}"
        );
    });
}

#[test]
fn ndisc6_gets_our_mac_for_an_announced_ipv6_and_nothing_after_withdraw() {
    if !can_run(&["ip", "ndisc6"]) {
        return;
    }
    let lab = Lab::new();
    let mac = lab.speaker_mac("spk0").to_string();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V6(VIP6), ["spk0".to_owned()])
            .await
            .expect("announce");
        let out = client_async(
            prefix.clone(),
            args("ndisc6 -1 -r 3 -w 500 2001:db8::10 cli0"),
        )
        .await;
        let said = text(&out).to_lowercase();
        assert!(out.status.success(), "ndisc6 got no answer: {said}");
        assert!(said.contains(&mac), "ndisc6 answer is not {mac}: {said}");

        let c = r.counters().await.expect("counters");
        let v6 = counters_of(&c, "spk0", Family::V6);
        assert!(v6.replies_sent >= 1, "{v6:?}");

        r.withdraw(IpAddr::V6(VIP6)).await.expect("withdraw");
        let out = client_async(prefix, args("ndisc6 -1 -r 2 -w 300 2001:db8::10 cli0")).await;
        assert!(
            !out.status.success(),
            "answered after withdraw: {}",
            text(&out)
        );
    });
}

#[test]
fn client_kernel_resolves_both_vips_through_ping() {
    if !can_run(&["ip", "ping"]) {
        return;
    }
    let lab = Lab::new();
    let mac = lab.speaker_mac("spk0").to_string();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce v4");
        r.announce(IpAddr::V6(VIP6), ["spk0".to_owned()])
            .await
            .expect("announce v6");
        // Nothing answers the echo itself (the VIP is on no interface); the kernel must
        // still resolve the neighbour through our replies.
        let _ = client_async(prefix.clone(), args("ping -c 1 -W 1 192.0.2.10")).await;
        let _ = client_async(prefix.clone(), args("ping -6 -c 1 -W 1 2001:db8::10")).await;
        for vip in ["192.0.2.10", "2001:db8::10"] {
            let out = client_async(
                prefix.clone(),
                args(&format!("ip neigh show {vip} dev cli0")),
            )
            .await;
            let said = text(&out).to_lowercase();
            assert!(said.contains(&format!("lladdr {mac}")), "{vip}: {said}");
        }
    });
}

#[test]
fn gratuitous_announcements_replace_a_stale_client_entry() {
    if !can_run(&["ip"]) {
        return;
    }
    let lab = Lab::new();
    let mac = lab.speaker_mac("spk0").to_string();
    for vip in ["192.0.2.10", "2001:db8::10"] {
        let out = lab.client(&[
            "ip",
            "neigh",
            "replace",
            vip,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "cli0",
            "nud",
            "stale",
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce v4");
        r.announce(IpAddr::V6(VIP6), ["spk0".to_owned()])
            .await
            .expect("announce v6");
        // Three rounds 600 ms apart: the later ones fall outside the 1 s locktime.
        for vip in ["192.0.2.10", "2001:db8::10"] {
            let updated = eventually_async(DEADLINE, Duration::from_millis(100), || async {
                let out = client_async(
                    prefix.clone(),
                    args(&format!("ip neigh show {vip} dev cli0")),
                )
                .await;
                let said = text(&out).to_lowercase();
                said.contains(&format!("lladdr {mac}")).then_some(())
            })
            .await;
            assert!(updated.is_some(), "{vip} not updated within {DEADLINE:?}");
        }
    });
}

#[test]
fn only_the_chosen_interface_answers() {
    if !can_run(&["ip", "arping"]) {
        return;
    }
    let lab = Lab::new();
    let chosen = lab.speaker_mac("spk0").to_string();
    let other = lab.speaker_mac("spk1").to_string();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce");
        let out = client_async(prefix.clone(), args("arping -c 3 -w 3 -I cli0 192.0.2.10")).await;
        let said = text(&out).to_lowercase();
        assert!(said.contains(&chosen), "{said}");
        assert!(
            !said.contains(&other),
            "the other interface answered: {said}"
        );
        let c = r.counters().await.expect("counters");
        assert_eq!(counters_of(&c, "spk1", Family::V4).replies_sent, 0);
    });
}

#[test]
fn promiscuous_mode_stays_off_while_serving_both_families() {
    if !can_run(&["ip", "ndisc6"]) {
        return;
    }
    let lab = Lab::new();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce v4");
        r.announce(IpAddr::V6(VIP6), ["spk0".to_owned()])
            .await
            .expect("announce v6");
        let out = client_async(
            prefix.clone(),
            args("ndisc6 -1 -r 3 -w 500 2001:db8::10 cli0"),
        )
        .await;
        assert!(out.status.success(), "{}", text(&out));
        let spk = format!("{prefix}spk");
        let out = tokio::task::spawn_blocking(move || {
            run(&["ip", "-n", &spk, "-d", "link", "show", "spk0"])
        })
        .await
        .expect("ip task");
        let details = text(&out);
        assert!(details.contains("promiscuity 0"), "{details}");
        assert!(!details.contains("PROMISC"), "{details}");
    });
}

#[test]
fn a_client_claiming_an_announced_ipv6_fails_duplicate_address_detection() {
    if !can_run(&["ip"]) {
        return;
    }
    let lab = Lab::new();
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V6(VIP6), ["spk0".to_owned()])
            .await
            .expect("announce");
        // Let the unsolicited NAs pass, so only our answer to the probe counts.
        wait_counters(&r, "spk0", Family::V6, "the three announcements", |c| {
            c.announcements_sent + c.send_errors >= 3
        })
        .await;
        let _ = client_async(
            prefix.clone(),
            args("sysctl -qw net.ipv6.conf.cli0.accept_dad=1"),
        )
        .await;
        let _ = client_async(
            prefix.clone(),
            args("sysctl -qw net.ipv6.conf.cli0.dad_transmits=1"),
        )
        .await;
        let out = client_async(prefix.clone(), args("ip addr add 2001:db8::10/64 dev cli0")).await;
        assert!(out.status.success(), "{}", text(&out));
        // DAD is over once the address is no longer tentative, or has failed.
        let said = eventually_async(DEADLINE, Duration::from_millis(100), || async {
            let out = client_async(prefix.clone(), args("ip -6 addr show dev cli0")).await;
            let said = text(&out);
            let line = said.lines().find(|l| l.contains("2001:db8::10/64"))?;
            (line.contains("dadfailed") || !line.contains("tentative")).then_some(said)
        })
        .await
        .expect("duplicate address detection finishes");
        assert!(said.contains("dadfailed"), "{said}");
        let c = r.counters().await.expect("counters");
        assert!(counters_of(&c, "spk0", Family::V6).replies_sent >= 1);
    });
}

#[test]
fn announcing_an_ipv6_registers_its_solicited_node_group_with_a_snooping_bridge() {
    if !can_run(&["ip", "bridge", "ndisc6"]) {
        return;
    }
    let lab = Lab::new();
    let br = lab.switch();
    // Snooping with the bridge as MLD querier: unregistered groups are no longer flooded.
    must(&[
        "ip",
        "-n",
        &br,
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "1",
        "mcast_querier",
        "1",
    ]);
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V6(VIP6), ["spk0".to_owned()])
            .await
            .expect("announce");
        let mut mdb = String::new();
        for _ in 0..20 {
            let br = br.clone();
            let out =
                tokio::task::spawn_blocking(move || run(&["bridge", "-n", &br, "mdb", "show"]))
                    .await
                    .expect("bridge task");
            mdb = text(&out);
            if mdb.contains("p-spk0") && mdb.contains("ff02::1:ff00:10") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            mdb.lines()
                .any(|l| l.contains("p-spk0") && l.contains("ff02::1:ff00:10")),
            "no MDB entry for our solicited-node group: {mdb}"
        );
        let out = client_async(prefix, args("ndisc6 -1 -r 3 -w 500 2001:db8::10 cli0")).await;
        assert!(out.status.success(), "{}", text(&out));
    });
}

#[test]
fn link_watcher_reports_existing_links_then_additions_carrier_and_removals() {
    if !can_run(&["ip"]) {
        return;
    }
    let lab = Lab::new();
    let spk = lab.ns("spk");
    lab.in_speaker_ns(move || async move {
        let mut w = LinkWatcher::open().expect("watcher");
        let mut initial = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
                Ok(Ok(LinkEvent::Synced)) => break,
                Ok(Ok(LinkEvent::Changed(info))) => initial.push(info.name),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(initial.contains(&"spk0".to_owned()), "{initial:?}");
        assert!(initial.contains(&"lo".to_owned()), "{initial:?}");

        // A veth pair (the dummy driver is not on every kernel); both ends up = carrier.
        for cmd in [
            format!("-n {spk} link add fl2x type veth peer name fl2y"),
            format!("-n {spk} link set fl2y up"),
            format!("-n {spk} link set fl2x up"),
            format!("-n {spk} link del fl2x"),
        ] {
            ip_async(args(&cmd)).await;
        }
        let (mut added, mut up, mut removed) = (false, false, false);
        while !(added && up && removed) {
            let event = tokio::time::timeout(Duration::from_secs(5), w.next())
                .await
                .expect("an event within 5 s")
                .expect("watcher works");
            match event {
                LinkEvent::Changed(info) if info.name == "fl2x" => {
                    added = true;
                    up |= info.is_up && info.has_carrier;
                }
                LinkEvent::Removed { name, .. } if name.as_deref() == Some("fl2x") => {
                    removed = true;
                }
                _ => {}
            }
        }
    });
}

#[test]
fn carrier_coming_back_repeats_the_announcements() {
    if !can_run(&["ip"]) {
        return;
    }
    let lab = Lab::new();
    let (br, spk) = (lab.switch(), lab.ns("spk"));
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce");
        let sent = |c: &FamilySnapshot| c.announcements_sent + c.send_errors;
        let before = wait_counters(&r, "spk0", Family::V4, "3 rounds", |c| sent(c) >= 6).await;
        assert_eq!(
            before.announcements_sent, 6,
            "3 rounds of 2 forms: {before:?}"
        );
        // Taking the peer end down drops spk0's carrier; bringing it up restores it.
        ip_async(args(&format!("-n {br} link set p-spk0 down"))).await;
        let no_carrier = eventually_async(DEADLINE, Duration::from_millis(20), || async {
            let out = ip_async(args(&format!("-n {spk} link show spk0"))).await;
            text(&out).contains("NO-CARRIER").then_some(())
        })
        .await;
        assert!(no_carrier.is_some(), "spk0 kept its carrier");
        ip_async(args(&format!("-n {br} link set p-spk0 up"))).await;
        let after = wait_counters(&r, "spk0", Family::V4, "3 more rounds", |c| sent(c) >= 12).await;
        assert_eq!(after.announcements_sent, 12, "{after:?}");
    });
}

#[test]
fn a_recreated_interface_is_served_again() {
    if !can_run(&["ip", "arping"]) {
        return;
    }
    let lab = Lab::new();
    let (br, spk) = (lab.switch(), lab.ns("spk"));
    let prefix = lab.prefix();
    lab.with_responder(fast(), move |r| async move {
        r.announce(IpAddr::V4(VIP4), ["spk0".to_owned()])
            .await
            .expect("announce");
        ip_async(args(&format!("-n {spk} link del spk0"))).await;
        ip_async(args(&format!(
            "link add spk0 netns {spk} type veth peer name p-spk0 netns {br}"
        )))
        .await;
        ip_async(args(&format!("-n {br} link set p-spk0 master br0 up"))).await;
        ip_async(args(&format!("-n {spk} link set spk0 up"))).await;
        let mac = {
            let out = ip_async(args(&format!("-n {spk} -br link show spk0"))).await;
            text(&out)
                .split_whitespace()
                .find_map(|w| w.parse::<MacAddr>().ok())
                .expect("new MAC")
                .to_string()
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = client_async(prefix, args("arping -c 2 -w 3 -I cli0 192.0.2.10")).await;
        let said = text(&out).to_lowercase();
        assert!(out.status.success(), "{said}");
        assert!(
            said.contains(&mac),
            "not answered with the new MAC {mac}: {said}"
        );
    });
}

#[test]
fn solicited_node_groups_are_joined_on_announce_and_left_on_withdraw() {
    if !can_run(&["ip"]) {
        return;
    }
    let lab = Lab::new();
    let spk = lab.ns("spk");
    lab.with_responder(fast(), move |r| async move {
        // Reads the speaker namespace's IPv6 groups (MLD) and link-layer multicast list.
        let groups = |spk: String| async move {
            let out = tokio::task::spawn_blocking(move || {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    &spk,
                    "cat",
                    "/proc/net/igmp6",
                    "/proc/net/dev_mcast",
                ])
            })
            .await
            .expect("cat task");
            text(&out)
        };
        let kept = IpAddr::V6("2001:db8::11".parse().expect("literal"));
        r.announce(IpAddr::V6(VIP6), ["spk0".to_owned()])
            .await
            .expect("announce");
        r.announce(kept, ["spk0".to_owned()])
            .await
            .expect("announce");
        let joined = groups(spk.clone()).await;
        assert!(
            joined.contains("ff0200000000000000000001ff000010"),
            "MLD group missing: {joined}"
        );
        assert!(
            joined.contains("3333ff000010"),
            "multicast MAC missing: {joined}"
        );

        r.withdraw(IpAddr::V6(VIP6)).await.expect("withdraw");
        let left = groups(spk).await;
        assert!(
            !left.contains("ff0200000000000000000001ff000010"),
            "MLD group kept: {left}"
        );
        assert!(!left.contains("3333ff000010"), "multicast MAC kept: {left}");
        assert!(
            left.contains("ff0200000000000000000001ff000011"),
            "the kept address lost its group: {left}"
        );
    });
}

#[test]
fn two_addresses_sharing_a_solicited_node_group_keep_it_until_both_are_withdrawn() {
    if !can_run(&["ip"]) {
        return;
    }
    let lab = Lab::new();
    let spk = lab.ns("spk");
    lab.with_responder(fast(), move |r| async move {
        let igmp6 = |spk: String| async move {
            let out = tokio::task::spawn_blocking(move || {
                run(&["ip", "netns", "exec", &spk, "cat", "/proc/net/igmp6"])
            })
            .await
            .expect("cat task");
            text(&out)
        };
        // Same low 24 bits as VIP6 (2001:db8::10): same group ff02::1:ff00:10.
        let twin = IpAddr::V6("2001:db8:1::10".parse().expect("literal"));
        let keeper = IpAddr::V6("2001:db8::99".parse().expect("literal"));
        for ip in [IpAddr::V6(VIP6), twin, keeper] {
            r.announce(ip, ["spk0".to_owned()]).await.expect("announce");
        }
        r.withdraw(IpAddr::V6(VIP6)).await.expect("withdraw");
        let after_one = igmp6(spk.clone()).await;
        assert!(
            after_one.contains("ff0200000000000000000001ff000010"),
            "left too early: {after_one}"
        );
        r.withdraw(twin).await.expect("withdraw");
        let after_both = igmp6(spk).await;
        assert!(
            !after_both.contains("ff0200000000000000000001ff000010"),
            "not left: {after_both}"
        );
    });
}
