//! Which Events a plan produces, and their text.

use ferrolb_api::error::Problem;

use super::*;
use crate::plan::Interfaces;

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn owners(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(s, n)| ((*s).to_owned(), (*n).to_owned()))
        .collect()
}

fn taken<'a>(
    services: &'a BTreeSet<String>,
    previous_owners: &'a BTreeMap<String, String>,
    with_status: &'a BTreeSet<String>,
    gossip: Option<&'a BTreeSet<String>>,
) -> L2Taken<'a> {
    L2Taken {
        node: "node-b",
        services,
        previous_owners,
        with_status,
        gossip,
        since_change: Some(Duration::from_millis(42)),
    }
}

#[test]
fn taking_over_from_a_node_that_left_says_so_with_the_time_it_took() {
    let services = names(&["default/web"]);
    let before = owners(&[("default/web", "node-a")]);
    let gossip = names(&["node-b", "node-c"]);
    let assigned = l2_assigned(&taken(&services, &before, &BTreeSet::new(), Some(&gossip)));
    assert_eq!(
        assigned.events,
        vec![Event {
            regarding: Regarding::Service("default/web".into()),
            is_warning: false,
            reason: NODE_ASSIGNED,
            note: "announcing from node \"node-b\" with protocol \"layer2\": previous node \
                   \"node-a\" left the speaker membership; announced 42 ms after the \
                   membership change"
                .into(),
        }]
    );
    assert_eq!(assigned.takeover_times, vec![Duration::from_millis(42)]);
}

#[test]
fn taking_over_from_a_live_node_says_it_is_no_longer_eligible() {
    let services = names(&["default/web"]);
    let before = owners(&[("default/web", "node-a")]);
    let gossip = names(&["node-a", "node-b"]);
    let no_status = BTreeSet::new();
    let mut input = taken(&services, &before, &no_status, Some(&gossip));
    input.since_change = None;
    let assigned = l2_assigned(&input);
    assert_eq!(assigned.events.len(), 1);
    assert_eq!(
        assigned.events[0].note,
        "announcing from node \"node-b\" with protocol \"layer2\": previous node \"node-a\" \
         is no longer eligible"
    );
    assert!(
        assigned.takeover_times.is_empty(),
        "no membership change to measure from"
    );
}

#[test]
fn a_first_owner_gets_a_plain_assignment_and_no_takeover_time() {
    let services = names(&["default/web"]);
    let assigned = l2_assigned(&taken(&services, &BTreeMap::new(), &BTreeSet::new(), None));
    assert_eq!(
        assigned
            .events
            .iter()
            .map(|e| e.note.as_str())
            .collect::<Vec<_>>(),
        ["announcing from node \"node-b\" with protocol \"layer2\""]
    );
    assert!(assigned.takeover_times.is_empty());
}

#[test]
fn a_restart_or_an_interface_change_of_our_own_ip_is_silent() {
    let services = names(&["default/mine", "default/restarted"]);
    let before = owners(&[("default/mine", "node-b")]);
    let with_status = names(&["default/restarted"]);
    let assigned = l2_assigned(&taken(&services, &before, &with_status, None));
    assert!(assigned.events.is_empty(), "{:?}", assigned.events);
}

#[test]
fn a_status_left_behind_does_not_hide_a_real_takeover() {
    let services = names(&["default/web"]);
    let before = owners(&[("default/web", "node-a")]);
    let with_status = names(&["default/web"]);
    let assigned = l2_assigned(&taken(&services, &before, &with_status, None));
    assert_eq!(assigned.events.len(), 1);
}

#[test]
fn bgp_assignments_name_only_services_new_to_this_node_without_a_status() {
    let peers = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    let before: BTreeMap<String, Vec<String>> = [("default/old".into(), peers(&["tor"]))].into();
    let now: BTreeMap<String, Vec<String>> = [
        ("default/old".into(), peers(&["tor", "tor2"])),
        ("default/new".into(), peers(&["tor"])),
        ("default/restarted".into(), peers(&["tor"])),
    ]
    .into();
    let newly = newly_advertised(&before, &now);
    assert_eq!(newly, ["default/new", "default/restarted"]);
    let events = bgp_assigned("node-a", &newly, &names(&["default/restarted"]));
    assert_eq!(
        events,
        vec![Event {
            regarding: Regarding::Service("default/new".into()),
            is_warning: false,
            reason: NODE_ASSIGNED,
            note: "announcing from node \"node-a\" with protocol \"bgp\"".into(),
        }]
    );
}

#[test]
fn an_ip_without_a_usable_interface_is_reported_once_per_service_while_it_lasts() {
    let planned: BTreeMap<IpAddr, L2Announcement> = [
        (
            ip("192.0.2.1"),
            L2Announcement {
                services: names(&["ns/a", "ns/b"]),
                interfaces: Interfaces::Only(names(&["eth9"])),
            },
        ),
        (
            ip("192.0.2.2"),
            L2Announcement {
                services: names(&["ns/c"]),
                interfaces: Interfaces::All,
            },
        ),
    ]
    .into();
    let resolved: L2State = [
        (ip("192.0.2.1"), BTreeSet::new()),
        (ip("192.0.2.2"), names(&["eth0"])),
    ]
    .into();
    let first = announce_failed("node-a", &planned, &resolved, &BTreeSet::new());
    assert_eq!(
        first
            .events
            .iter()
            .map(|e| (&e.regarding, e.is_warning, e.reason, e.note.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                &Regarding::Service("ns/a".into()),
                true,
                ANNOUNCE_FAILED,
                "node node-a has no usable interface to announce 192.0.2.1 on"
            ),
            (
                &Regarding::Service("ns/b".into()),
                true,
                ANNOUNCE_FAILED,
                "node node-a has no usable interface to announce 192.0.2.1 on"
            ),
        ]
    );
    assert_eq!(first.reported, BTreeSet::from([ip("192.0.2.1")]));
    let again = announce_failed("node-a", &planned, &resolved, &first.reported);
    assert!(again.events.is_empty(), "reported once");
    let fixed: L2State = [(ip("192.0.2.1"), names(&["eth9"]))].into();
    let after = announce_failed("node-a", &planned, &fixed, &first.reported);
    assert!(
        after.reported.is_empty(),
        "a fixed IP is reported again if it breaks again"
    );
}

#[test]
fn each_configuration_problem_is_reported_once_on_its_object() {
    let problem = ConfigError::new(
        Kind::IPAddressPool,
        "clash",
        "spec.addresses",
        Problem::Required,
    );
    let first = config_problems("node-a", std::slice::from_ref(&problem), &BTreeSet::new());
    assert_eq!(
        first.events,
        vec![Event {
            regarding: Regarding::Config {
                kind: Kind::IPAddressPool,
                name: "clash".into()
            },
            is_warning: true,
            reason: CONFIGURATION_ERROR,
            note: format!("ignored by the speaker on node-a: {problem}"),
        }]
    );
    assert!(first.events[0].note.contains("spec.addresses"));
    let again = config_problems("node-a", std::slice::from_ref(&problem), &first.reported);
    assert!(again.events.is_empty());
    assert!(
        config_problems("node-a", &[], &first.reported)
            .reported
            .is_empty()
    );
}

#[test]
fn references_name_the_service_with_its_uid_or_the_object_in_our_namespace() {
    let service =
        Regarding::Service("shop/web".into()).reference("ferrolb-system", Some("u-1".into()));
    assert_eq!(
        (
            service.api_version.as_deref(),
            service.kind.as_deref(),
            service.namespace.as_deref(),
            service.name.as_deref(),
            service.uid.as_deref()
        ),
        (
            Some("v1"),
            Some("Service"),
            Some("shop"),
            Some("web"),
            Some("u-1")
        )
    );
    let pool = Regarding::Config {
        kind: Kind::IPAddressPool,
        name: "lab".into(),
    }
    .reference("ferrolb-system", None);
    assert_eq!(
        (
            pool.api_version.as_deref(),
            pool.kind.as_deref(),
            pool.namespace.as_deref(),
            pool.name.as_deref()
        ),
        (
            Some("metallb.io/v1beta1"),
            Some("IPAddressPool"),
            Some("ferrolb-system"),
            Some("lab")
        )
    );
}

#[test]
fn services_on_ips_are_gathered_from_the_plan() {
    let planned: BTreeMap<IpAddr, L2Announcement> = [
        (
            ip("192.0.2.1"),
            L2Announcement {
                services: names(&["ns/a", "ns/b"]),
                interfaces: Interfaces::All,
            },
        ),
        (
            ip("192.0.2.2"),
            L2Announcement {
                services: names(&["ns/c"]),
                interfaces: Interfaces::All,
            },
        ),
    ]
    .into();
    assert_eq!(
        services_on(&planned, [&ip("192.0.2.1"), &ip("203.0.113.9")]),
        names(&["ns/a", "ns/b"])
    );
}

proptest::proptest! {
    /// Across any sequence of plans, an IP is reported once each time it starts failing, and
    /// never while it keeps failing or works.
    #[test]
    fn an_ip_is_reported_once_each_time_it_starts_failing(
        rounds in proptest::collection::vec(proptest::collection::vec(proptest::bool::ANY, 3), 1..12),
    ) {
        let ips: Vec<IpAddr> = (1..=3).map(|i| IpAddr::from([192, 0, 2, i])).collect();
        let planned: BTreeMap<IpAddr, L2Announcement> = ips
            .iter()
            .map(|ip| {
                let announcement = L2Announcement {
                    services: names(&[&format!("ns/{ip}")]),
                    interfaces: Interfaces::All,
                };
                (*ip, announcement)
            })
            .collect();
        let mut reported = BTreeSet::new();
        let mut was_failing = [false; 3];
        for failing in rounds {
            let resolved: L2State = ips
                .iter()
                .zip(&failing)
                .map(|(ip, fails)| (*ip, if *fails { BTreeSet::new() } else { names(&["eth0"]) }))
                .collect();
            let reports = announce_failed("node-a", &planned, &resolved, &reported);
            for (i, ip) in ips.iter().enumerate() {
                let events = reports
                    .events
                    .iter()
                    .filter(|e| e.regarding == Regarding::Service(format!("ns/{ip}")))
                    .count();
                let starts = failing[i] && !was_failing[i];
                proptest::prop_assert_eq!(events, usize::from(starts));
            }
            was_failing.copy_from_slice(&failing);
            reported = reports.reported;
        }
    }
}
