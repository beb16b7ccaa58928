//! Real speakers in node namespaces under the faults that used to make two nodes answer one IP:
//! a speaker with the wrong gossip key, a node whose gossip is cut off (nftables drops UDP 7946
//! in its namespace), and an owner that is frozen (SIGSTOP) then resumed. Throughout, ARP is
//! asked from two places at once (the lab's client and a second host on the switch) for every
//! Service IP, and no IP may ever be answered by two MACs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_api::types::ConfigurationState;
use ferrolb_netlab::{self as netlab, eventually, eventually_async};
use ferrolb_speaker::schedule::MEMBERS_SETTLE;
use ferrolb_tests::cluster::{Binaries, CLIENT_V4, ClusterLab, NAMESPACE};
use kube::api::Api;
use serde_json::json;

mod arp_ask;

/// The Service IPs: enough that every node ranks first for some.
const IPS: [Ipv4Addr; 6] = [
    Ipv4Addr::new(192, 0, 2, 200),
    Ipv4Addr::new(192, 0, 2, 201),
    Ipv4Addr::new(192, 0, 2, 202),
    Ipv4Addr::new(192, 0, 2, 203),
    Ipv4Addr::new(192, 0, 2, 204),
    Ipv4Addr::new(192, 0, 2, 205),
];

/// Who answers ARP for each IP, as each asking host saw it: host → IP → MACs.
type Answers = BTreeMap<String, BTreeMap<Ipv4Addr, BTreeSet<String>>>;

async fn lab(tag: &str, nodes: u8) -> Option<ClusterLab> {
    if !netlab::can_run(&["arping", "nft", "curl", "python3"]) {
        return None;
    }
    let binaries = Binaries {
        speaker: PathBuf::from(env!("CARGO_BIN_EXE_ferrolb-speaker")),
        controller: None,
    };
    let mut lab = ClusterLab::start(tag, nodes, false, binaries)
        .await
        .expect("lab starts");
    lab.apply_standard_config().expect("configuration");
    // The second place ARP is asked from (a node would not hear its own answers), and the
    // host that times handovers on the wire (apart, so their requests do not mix).
    for (host, ip) in [(PROBE, PROBE_V4), (WATCH, WATCH_V4)] {
        lab.net
            .add_host(host, "eth0", &[&format!("{ip}/24")])
            .expect("lab host");
    }
    Some(lab)
}

/// The hosts ARP is asked from.
const FROM: [&str; 2] = ["client", PROBE];
const PROBE: &str = "probe";
const PROBE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
/// Where handovers are timed from (see [`ArpWatch`]).
const WATCH: &str = "watch";
const WATCH_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 98);

/// One Service per IP, with endpoints on every node.
async fn create_services(lab: &ClusterLab) {
    let everywhere: Vec<usize> = (0..lab.nodes.len()).collect();
    for (i, ip) in IPS.iter().enumerate() {
        lab.create_service(
            &format!("web-{i}"),
            json!({}),
            false,
            &everywhere,
            &[(*ip).into()],
        )
        .await
        .expect("service");
    }
}

/// Asks ARP for every IP from every host in `from`, all at once: one request each, every
/// answer within `wait` counted (gratuitous announcements are not answers, see [`arp_ask`]).
fn ask(lab: &ClusterLab, from: &[&str], wait: Duration) -> Answers {
    let askers: Vec<(String, arp_ask::Asker)> = from
        .iter()
        .map(|host| {
            let mac = lab.net.mac(host, "eth0").expect("mac");
            let asker = arp_ask::Asker {
                ns: lab.net.ns(host),
                iface: "eth0".into(),
                mac: mac.parse().expect("a MAC"),
                ip: host_ip(host),
            };
            ((*host).to_owned(), asker)
        })
        .collect();
    std::thread::scope(|scope| {
        let asks: Vec<_> = askers
            .iter()
            .map(|(host, asker)| (host, scope.spawn(move || arp_ask::ask(asker, &IPS, wait))))
            .collect();
        asks.into_iter()
            .map(|(host, asked)| {
                let answers = asked.join().expect("asker thread").expect("ARP asked");
                (host.clone(), answers)
            })
            .collect()
    })
}

/// The IPv4 address of an asking host.
fn host_ip(host: &str) -> Ipv4Addr {
    match host {
        PROBE => PROBE_V4,
        _ => CLIENT_V4,
    }
}

/// The node names behind `macs` (unknown MACs by themselves).
fn who(lab: &ClusterLab, macs: &BTreeSet<String>) -> BTreeSet<String> {
    macs.iter()
        .map(|m| {
            lab.node_with_mac(m)
                .map_or_else(|| m.clone(), |n| n.name.clone())
        })
        .collect()
}

/// Panics if any host saw two MACs answer one IP.
fn assert_single_answers(lab: &ClusterLab, answers: &Answers, when: &str) {
    for (host, by_ip) in answers {
        for (ip, macs) in by_ip {
            assert!(
                macs.len() <= 1,
                "{when}: {host} saw {ip} answered by {:?}\n{}",
                who(lab, macs),
                logs(lab)
            );
        }
    }
}

/// IP → the one node answering it, when every host saw exactly one and the same answer for
/// every IP.
fn owners(lab: &ClusterLab, answers: &Answers) -> Option<BTreeMap<Ipv4Addr, String>> {
    let mut owners = BTreeMap::new();
    for by_ip in answers.values() {
        for (ip, macs) in by_ip {
            let [mac] = macs.iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            let node = lab.node_with_mac(mac)?.name.clone();
            if owners.insert(*ip, node.clone()).is_some_and(|o| o != node) {
                return None;
            }
        }
    }
    (owners.len() == IPS.len()).then_some(owners)
}

/// What a phase of a test may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// After a fault: no IP is ever answered twice.
    Fault,
    /// A node rejoins and takes its IPs back: for the few milliseconds between its claim and
    /// the interim owner's withdrawal (each acts on the same membership change), a request may
    /// get both answers, the later one from the new owner. Only the end state is checked.
    Rejoin,
}

/// Asks from `from` until every IP has one owner that `accept` takes, checking at every round
/// of a [`Phase::Fault`] that no IP was answered twice; the owners then.
async fn settle_on(
    lab: &ClusterLab,
    from: &[&str],
    within: Duration,
    (when, phase): (&str, Phase),
    accept: impl Fn(&BTreeMap<Ipv4Addr, String>) -> bool,
) -> BTreeMap<Ipv4Addr, String> {
    let deadline = Instant::now() + within;
    let mut last = Answers::new();
    while Instant::now() < deadline {
        last = ask(lab, from, Duration::from_millis(300));
        if phase == Phase::Fault {
            assert_single_answers(lab, &last, when);
        }
        if let Some(owners) = owners(lab, &last).filter(|o| accept(o)) {
            return owners;
        }
    }
    panic!(
        "{when}: no single accepted owner per IP within {within:?}: {last:?}\n{}",
        logs(lab)
    );
}

/// Asks from `from` for `period`, checking at every round that no IP was answered twice and
/// that `check` holds.
async fn hold_for(
    lab: &ClusterLab,
    from: &[&str],
    period: Duration,
    when: &str,
    check: impl Fn(&Answers) -> Result<(), String>,
) {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let answers = ask(lab, from, Duration::from_millis(300));
        assert_single_answers(lab, &answers, when);
        if let Err(problem) = check(&answers) {
            panic!("{when}: {problem}\n{}", logs(lab));
        }
    }
}

/// ARP for one IP asked every 10 ms from one host, every request and reply captured there with
/// its time: when an owner fell silent and its successor spoke, measured on the wire.
struct ArpWatch {
    tcpdump: std::process::Child,
    arping: std::process::Child,
    capture: PathBuf,
    ip: Ipv4Addr,
}

impl Drop for ArpWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One ARP request and the MACs that answered it (before the next request).
#[derive(Debug)]
struct Asked {
    /// Unix time of the request, in seconds.
    at: f64,
    macs: BTreeSet<String>,
}

impl ArpWatch {
    fn start(lab: &ClusterLab, host: &str, ip: Ipv4Addr) -> ArpWatch {
        let ns = lab.net.ns(host);
        let capture = lab.net.path(&format!("arp-{host}-{ip}.txt"));
        let log = lab.net.path(&format!("tcpdump-{host}.log"));
        let file = |path: &PathBuf| std::fs::File::create(path).expect("capture file");
        let tcpdump = Command::new("ip")
            .args([
                "netns", "exec", &ns, "tcpdump", "-i", "eth0", "-n", "-e", "-tt", "-l", "arp",
            ])
            .stdout(file(&capture))
            .stderr(file(&log))
            .spawn()
            .expect("tcpdump");
        let listening = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening on"))
        });
        assert!(listening, "tcpdump started in {host}");
        let arping = Command::new("ip")
            .args([
                "netns", "exec", &ns, "arping", "-i", "eth0", "-q", "-c", "3000", "-W", "0.01",
            ])
            .arg(ip.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("arping");
        ArpWatch {
            tcpdump,
            arping,
            capture,
            ip,
        }
    }

    /// Stops both (SIGINT, so tcpdump flushes what it captured).
    fn stop(&mut self) {
        for child in [&mut self.arping, &mut self.tcpdump] {
            if matches!(child.try_wait(), Ok(None)) {
                let pid = child.id().to_string();
                let _ = Command::new("kill").args(["-INT", &pid]).status();
                let _ = child.wait();
            }
        }
    }

    /// Stops both; every request seen, in order, with the MACs that answered it.
    fn finish(mut self) -> Vec<Asked> {
        self.stop();
        let text = std::fs::read_to_string(&self.capture).unwrap_or_default();
        let ip = self.ip.to_string();
        let mut asked: Vec<Asked> = Vec::new();
        for line in text.lines() {
            let Some(at) = line.split_whitespace().next().and_then(|t| t.parse().ok()) else {
                continue;
            };
            if line.contains(&format!("Request who-has {ip} ")) {
                asked.push(Asked {
                    at,
                    macs: BTreeSet::new(),
                });
            } else if let Some(rest) = line.split(&format!("Reply {ip} is-at ")).nth(1)
                // A gratuitous announcement goes to everyone: it answers no request.
                && !line.contains("> ff:ff:ff:ff:ff:ff")
                && let (Some(mac), Some(last)) = (rest.split([',', ' ']).next(), asked.last_mut())
            {
                last.macs.insert(mac.to_lowercase());
            }
        }
        asked
    }
}

/// Unix time now, in seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// From the watch of a handover from `old` at unix time `at`: after how long `old` last
/// answered and anyone else first answered.
fn handover(asked: &[Asked], old: &str, at: f64) -> (Option<Duration>, Option<Duration>) {
    let since = |t: f64| Duration::from_secs_f64((t - at).max(0.0));
    let last_old = asked
        .iter()
        .rev()
        .find(|a| a.macs.contains(old))
        .map(|a| since(a.at));
    let first_new = asked
        .iter()
        .find(|a| a.at > at && a.macs.iter().any(|m| m != old))
        .map(|a| since(a.at));
    (last_old, first_new)
}

fn logs(lab: &ClusterLab) -> String {
    lab.nodes
        .iter()
        .map(|n| {
            format!(
                "--- speaker-{}\n{}",
                n.name,
                lab.log(&format!("speaker-{}", n.name))
            )
        })
        .collect()
}

fn index_of(lab: &ClusterLab, node: &str) -> usize {
    lab.nodes.iter().position(|n| n.name == node).expect("node")
}

/// Waits until every speaker in `indexes` sees `count` members.
async fn see_each_other(lab: &ClusterLab, indexes: &[usize], count: usize) {
    for index in indexes {
        let seen = eventually(Duration::from_secs(15), Duration::from_millis(100), || {
            let live = lab.speaker_metric(*index, "ferrolb_speaker_members_live")?;
            (live == count as f64).then_some(())
        })
        .await;
        assert!(
            seen.is_some(),
            "node-{} sees {count} speakers\n{}",
            index + 1,
            logs(lab)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_with_the_wrong_key_claims_nothing() {
    let Some(mut lab) = lab("qkey", 4).await else {
        return;
    };
    for index in 0..3 {
        lab.start_speaker(index).expect("speaker");
    }
    create_services(&lab).await;
    let from = ["client"];
    let before = settle_on(
        &lab,
        &from,
        Duration::from_secs(20),
        ("three speakers", Phase::Fault),
        |_| true,
    )
    .await;
    assert!(before.values().all(|n| n != "node-4"), "{before:?}");

    // node-4's speaker starts with another key (the lab's key file is read at start).
    std::fs::write(lab.net.path("members-key"), "a key nobody else has").expect("key");
    lab.start_speaker(3).expect("node-4's speaker");
    // Its first plan writes its ConfigurationState; new claims waited 2 s for the gossip to
    // settle before, so watch for 3 s after that.
    let states: Api<ConfigurationState> = Api::namespaced(lab.sim.client(), NAMESPACE);
    let started = eventually_async(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async { states.get_opt("speaker-node-4").await.ok().flatten() },
    )
    .await;
    assert!(started.is_some(), "node-4's speaker runs\n{}", logs(&lab));
    hold_for(
        &lab,
        &from,
        Duration::from_secs(3),
        "wrong-key speaker running",
        |answers| match owners(&lab, answers) {
            Some(owners) if owners == before => Ok(()),
            other => Err(format!("owners moved: {other:?}, before {before:?}")),
        },
    )
    .await;
    let isolated = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        let quorum = lab.speaker_metric(3, "ferrolb_speaker_members_quorum")?;
        let speakers = lab.speaker_metric(3, "ferrolb_speaker_members_speakers")?;
        let refused = lab.speaker_metric(
            0,
            r#"ferrolb_speaker_members_dropped_total{reason="BadTag"}"#,
        )?;
        (quorum == 0.0 && speakers == 4.0 && refused > 0.0).then_some(())
    })
    .await;
    assert!(
        isolated.is_some(),
        "node-4 reports no quorum among 4 speakers; node-1 counts its datagrams as BadTag\n{}",
        lab.speaker_metrics(3).unwrap_or_default()
    );
    // Honest speakers never look like replays or skewed clocks to each other.
    for index in 0..3 {
        for reason in ["Duplicate", "Stale", "FromFuture"] {
            let series = format!(r#"ferrolb_speaker_members_dropped_total{{reason="{reason}"}}"#);
            assert_eq!(
                lab.speaker_metric(index, &series),
                Some(0.0),
                "node-{} dropped datagrams as {reason}",
                index + 1
            );
        }
    }
}

/// Drops UDP 7946 in and out of node `index`'s namespace, in one nftables transaction.
fn cut_gossip(lab: &ClusterLab, index: usize) {
    let role = lab.nodes[index].role.clone();
    let rules = lab.net.path(&format!("gossipcut-{role}.nft"));
    std::fs::write(
        &rules,
        "table inet gossipcut {\n\
         \tchain in { type filter hook input priority 0; udp dport 7946 drop; }\n\
         \tchain out { type filter hook output priority 0; udp dport 7946 drop; }\n\
         }\n",
    )
    .expect("rules file");
    let rules = rules.to_string_lossy().into_owned();
    lab.net.exec_ok(&role, &["nft", "-f", &rules]).expect("nft");
}

fn heal_gossip(lab: &ClusterLab, index: usize) {
    let role = lab.nodes[index].role.clone();
    lab.net
        .exec_ok(&role, &["nft", "delete", "table", "inet", "gossipcut"])
        .expect("nft");
}

/// Waits until the speakers started at `started` are past their settle window: during its
/// first [`MEMBERS_SETTLE`] a speaker takes over only once its view shows every node, so a
/// fault then is taken over at the end of the window instead of when detected.
async fn past_settle(started: Instant) {
    let settled = started + MEMBERS_SETTLE + Duration::from_millis(500);
    tokio::time::sleep(settled.saturating_duration_since(Instant::now())).await;
}

fn mac_of(lab: &ClusterLab, node: &str) -> String {
    lab.nodes[index_of(lab, node)].mac.to_lowercase()
}

/// A handover of `IPS[0]` seen on the wire from the watch host.
#[derive(Debug)]
struct Handover<T> {
    /// What the test did meanwhile.
    result: T,
    /// Unix time of the fault.
    at: f64,
    /// After the fault, when the old owner last answered.
    last_old: Option<Duration>,
    /// After the fault, when another node first answered.
    first_new: Option<Duration>,
}

/// Watches ARP for `IPS[0]` from the watch host around `fault` and `after`: the handover from
/// node `old`. In a [`Phase::Fault`], no request was answered twice and `old` fell silent
/// before anyone else spoke.
async fn watch_handover<T>(
    lab: &ClusterLab,
    (old, phase): (&str, Phase),
    fault: impl FnOnce(&ClusterLab),
    after: impl AsyncFnOnce(&ClusterLab) -> T,
) -> Handover<T> {
    let watch = ArpWatch::start(lab, WATCH, IPS[0]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    fault(lab);
    // The fault is in place once its command returned.
    let at = unix_now();
    let result = after(lab).await;
    let asked = watch.finish();
    if phase == Phase::Fault {
        for request in &asked {
            assert!(
                request.macs.len() <= 1,
                "two MACs answered one request: {request:?}\n{}",
                logs(lab)
            );
        }
    }
    let (last_old, first_new) = handover(&asked, &mac_of(lab, old), at);
    if let (Phase::Fault, Some(last), Some(first)) = (phase, last_old, first_new) {
        assert!(
            last < first,
            "{old} answered {last:?} after the fault, after its successor did ({first:?})\n{}",
            logs(lab)
        );
    }
    Handover {
        result,
        at,
        last_old,
        first_new,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_gossip_withdraws_and_the_majority_takes_over() {
    let Some(mut lab) = lab("qpart", 3).await else {
        return;
    };
    let started = Instant::now();
    lab.start_speakers().expect("speakers");
    create_services(&lab).await;
    see_each_other(&lab, &[0, 1, 2], 3).await;
    past_settle(started).await;
    let initial = ("three speakers", Phase::Fault);
    let before = settle_on(&lab, &FROM, Duration::from_secs(20), initial, |_| true).await;
    let cut_name = before[&IPS[0]].clone();
    let cut = index_of(&lab, &cut_name);

    let partition = watch_handover(
        &lab,
        (&cut_name, Phase::Fault),
        |lab| cut_gossip(lab, cut),
        async |lab| {
            let when = ("partition", Phase::Fault);
            settle_on(lab, &FROM, Duration::from_secs(10), when, |owners| {
                owners.values().all(|n| *n != cut_name)
            })
            .await
        },
    )
    .await;
    let taken = partition.result;
    eprintln!(
        "figure: gossip of {cut_name} cut: it last answered {} {:?} after, {} first answered {:?} after",
        IPS[0], partition.last_old, taken[&IPS[0]], partition.first_new
    );
    assert!(
        partition
            .last_old
            .is_some_and(|s| s <= Duration::from_millis(250)),
        "{cut_name} falls silent within two heartbeat timeouts: {:?}",
        partition.last_old
    );
    // It stays silent: not even after its settle deadline does it claim anything.
    hold_for(
        &lab,
        &FROM,
        Duration::from_secs(3),
        "partition held",
        |answers| match owners(&lab, answers) {
            Some(owners) if owners == taken => Ok(()),
            other => Err(format!("owners moved: {other:?}, wanted {taken:?}")),
        },
    )
    .await;
    assert_eq!(
        lab.speaker_metric(cut, "ferrolb_speaker_members_quorum"),
        Some(0.0)
    );

    let interim = taken[&IPS[0]].clone();
    let heal = watch_handover(
        &lab,
        (&interim, Phase::Rejoin),
        |lab| heal_gossip(lab, cut),
        async |lab| {
            let when = ("healed", Phase::Rejoin);
            settle_on(lab, &FROM, Duration::from_secs(10), when, |owners| {
                *owners == before
            })
            .await
        },
    )
    .await;
    eprintln!(
        "figure: gossip of {cut_name} healed: it answers {} again {:?} after",
        IPS[0], heal.first_new
    );
    assert_eq!(
        heal.result, before,
        "the election gives each IP back to its first-ranked node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_owner_falls_silent_and_does_not_answer_again_on_its_own() {
    let Some(mut lab) = lab("qstop", 3).await else {
        return;
    };
    let started = Instant::now();
    lab.start_speakers().expect("speakers");
    create_services(&lab).await;
    see_each_other(&lab, &[0, 1, 2], 3).await;
    past_settle(started).await;
    let initial = ("three speakers", Phase::Fault);
    let before = settle_on(&lab, &FROM, Duration::from_secs(20), initial, |_| true).await;
    let frozen_name = before[&IPS[0]].clone();
    let pid = lab.nodes[index_of(&lab, &frozen_name)]
        .speaker
        .expect("running");

    let freeze = watch_handover(
        &lab,
        (&frozen_name, Phase::Fault),
        |lab| lab.net.signal(pid, "STOP").expect("SIGSTOP"),
        async |lab| {
            let when = ("frozen", Phase::Fault);
            settle_on(lab, &FROM, Duration::from_secs(10), when, |owners| {
                owners.values().all(|n| *n != frozen_name)
            })
            .await
        },
    )
    .await;
    let taken = freeze.result;
    eprintln!(
        "figure: {frozen_name} SIGSTOPped: its kernel last answered {} {:?} after, {} first answered {:?} after",
        IPS[0], freeze.last_old, taken[&IPS[0]], freeze.first_new
    );
    assert!(
        freeze
            .last_old
            .is_some_and(|s| s <= Duration::from_millis(150)),
        "the kernel stops answering for a frozen speaker within its 100 ms heartbeat timeout (+ one 10 ms request and scheduling): {:?}",
        freeze.last_old
    );

    // It rejoins as a new member and the election decides (it ranks first for IPS[0], so it
    // gets it back).
    let interim = taken[&IPS[0]].clone();
    let resume = watch_handover(
        &lab,
        (&interim, Phase::Rejoin),
        |lab| lab.net.signal(pid, "CONT").expect("SIGCONT"),
        async |lab| {
            let when = ("resumed", Phase::Rejoin);
            settle_on(lab, &FROM, Duration::from_secs(10), when, |owners| {
                *owners == before
            })
            .await
        },
    )
    .await;
    assert_eq!(resume.result, before);
    let log = lab.log(&format!("speaker-{frozen_name}"));
    let rejoined = log_time(&log, "rejoining the membership as a new member");
    let answered = resume.first_new.map(|d| resume.at + d.as_secs_f64());
    eprintln!(
        "figure: {frozen_name} SIGCONTinued: it answers {} again {:?} after, having rejoined {:?} after",
        IPS[0],
        resume.first_new,
        rejoined.map(|t| t - resume.at)
    );
    assert!(
        log.contains("did not run for longer than its heartbeat timeout"),
        "{frozen_name} knew it had been frozen\n{log}"
    );
    assert!(
        matches!((rejoined, answered), (Some(r), Some(a)) if r <= a),
        "{frozen_name} answers again only after it rejoined the membership (rejoined at {rejoined:?}, answered at {answered:?})\n{log}"
    );
}

/// The unix time of the first line of `log` containing `needle` (the log's RFC 3339 UTC
/// timestamp, as tracing writes it).
fn log_time(log: &str, needle: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let stamp: String = line.chars().take_while(|c| *c != 'Z').collect();
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let mut hms = time.split(':');
    let (h, min) = (
        hms.next()?.parse::<f64>().ok()?,
        hms.next()?.parse::<f64>().ok()?,
    );
    let sec = hms.next()?.parse::<f64>().ok()?;
    // Days from 1970-01-01 to y-m-d (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days as f64 * 86_400.0 + h * 3_600.0 + min * 60.0 + sec)
}

/// A two-node cluster through a rolling update: the speaker of node-1 (the lowest name, which
/// wins an exact tie) stops with SIGTERM. It deletes its ConfigurationState before leaving the
/// gossip, so node-2's speaker set shrinks to itself and it keeps quorum: it takes every IP
/// over, and no IP is answered twice. Without the deletion node-2 would see one of two
/// speakers, without the lowest name, and answer nothing until node-1's Pod was gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_two_node_cluster_a_speaker_leaving_on_purpose_hands_every_ip_over() {
    let Some(mut lab) = lab("qtwo", 2).await else {
        return;
    };
    lab.start_speakers().expect("speakers");
    create_services(&lab).await;
    let from = ["client"];
    let before = settle_on(
        &lab,
        &from,
        Duration::from_secs(20),
        ("two speakers", Phase::Fault),
        |owners| owners.values().collect::<BTreeSet<_>>().len() == 2,
    )
    .await;
    assert!(before.values().any(|n| n == "node-1"), "{before:?}");

    lab.stop_speaker(0, "TERM").expect("node-1's speaker stops");
    let states: Api<ConfigurationState> = Api::namespaced(lab.sim.client(), NAMESPACE);
    assert!(
        states
            .get_opt("speaker-node-1")
            .await
            .expect("read")
            .is_none(),
        "node-1's speaker left the speaker set before it exited"
    );
    let after = settle_on(
        &lab,
        &FROM,
        Duration::from_secs(10),
        ("node-1 left", Phase::Fault),
        |owners| owners.values().all(|n| n == "node-2"),
    )
    .await;
    assert_eq!(after.len(), IPS.len());
    let quorum = lab.speaker_metric(1, "ferrolb_speaker_members_quorum");
    assert_eq!(
        quorum,
        Some(1.0),
        "node-2 keeps quorum alone\n{}",
        logs(&lab)
    );
}
