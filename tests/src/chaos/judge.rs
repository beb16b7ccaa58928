//! What the chaos suite judges, from what it observed: which L2 IPs two MACs answered, which IPs
//! two Services hold, which Services have no IP, which moved; and the one owner per IP when
//! the answers agree. Pure: observations in, verdicts out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ferrolb_netlab::l2::ArpAnswers;

use crate::cluster::objects::Assignments;

/// One round of ARP asked from several hosts at the same moment: host → answers.
pub type Round = BTreeMap<String, ArpAnswers>;

/// The IPs that more than one MAC answered in `round`, counting every asking host together:
/// two hosts asking at the same moment and hearing different owners is two owners too.
pub fn double_answered(round: &Round) -> BTreeSet<Ipv4Addr> {
    let mut macs: BTreeMap<Ipv4Addr, BTreeSet<&str>> = BTreeMap::new();
    for answers in round.values() {
        for (ip, from) in answers {
            macs.entry(*ip)
                .or_default()
                .extend(from.iter().map(String::as_str));
        }
    }
    macs.into_iter()
        .filter(|(_, from)| from.len() > 1)
        .map(|(ip, _)| ip)
        .collect()
}

/// IP → its one MAC, when in `round` every asked IP got exactly one MAC, the same at every
/// host; `None` otherwise.
pub fn single_owners(round: &Round) -> Option<BTreeMap<Ipv4Addr, String>> {
    let mut owners: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for answers in round.values() {
        for (ip, from) in answers {
            let [mac] = from.iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            if owners.insert(*ip, mac.clone()).is_some_and(|m| m != *mac) {
                return None;
            }
        }
    }
    (!owners.is_empty()).then_some(owners)
}

/// Each IP held by more than one Service, with the Services holding it.
pub fn double_assigned(assignments: &Assignments) -> BTreeMap<IpAddr, Vec<String>> {
    let mut holders: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for (service, ips) in assignments {
        for ip in ips {
            holders.entry(*ip).or_default().push(service.clone());
        }
    }
    holders.retain(|_, services| services.len() > 1);
    holders
}

/// The Services without an IP.
pub fn lost(assignments: &Assignments) -> Vec<String> {
    assignments
        .iter()
        .filter(|(_, ips)| ips.is_empty())
        .map(|(service, _)| service.clone())
        .collect()
}

/// The Services that had IPs in `before` and now hold other ones (or none, or were deleted).
pub fn moved(before: &Assignments, now: &Assignments) -> Vec<String> {
    before
        .iter()
        .filter(|(_, ips)| !ips.is_empty())
        .filter(|(service, ips)| now.get(*service) != Some(*ips))
        .map(|(service, _)| service.clone())
        .collect()
}

/// In a request log (oldest first) as `(client, is a Service write that succeeded)`: how many
/// of `deposed`'s Service writes came after `successor`'s first one at or after `from`. A
/// leader that lost its Lease must have stopped writing before its successor started.
pub fn writes_after_takeover(
    log: &[(String, bool)],
    from: usize,
    deposed: &str,
    successor: &str,
) -> usize {
    let tail = log.get(from..).unwrap_or_default();
    let Some(first) = tail
        .iter()
        .position(|(client, is_write)| *is_write && client == successor)
    else {
        return 0;
    };
    tail[first..]
        .iter()
        .filter(|(client, is_write)| *is_write && client == deposed)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().expect("literal")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal")
    }

    fn answers(rows: &[(&str, &[&str])]) -> ArpAnswers {
        rows.iter()
            .map(|(ip, macs)| (ip4(ip), macs.iter().map(|m| (*m).to_owned()).collect()))
            .collect()
    }

    fn round(hosts: &[(&str, ArpAnswers)]) -> Round {
        hosts
            .iter()
            .map(|(h, a)| ((*h).to_owned(), a.clone()))
            .collect()
    }

    #[test]
    fn two_macs_for_one_ip_at_one_host_or_across_hosts_is_a_double_answer() {
        let one_host = round(&[
            (
                "client",
                answers(&[("192.0.2.200", &["a", "b"]), ("192.0.2.201", &["a"])]),
            ),
            (
                "probe",
                answers(&[("192.0.2.200", &["a"]), ("192.0.2.201", &["a"])]),
            ),
        ]);
        assert_eq!(
            double_answered(&one_host),
            BTreeSet::from([ip4("192.0.2.200")])
        );
        let across = round(&[
            ("client", answers(&[("192.0.2.200", &["a"])])),
            ("probe", answers(&[("192.0.2.200", &["b"])])),
        ]);
        assert_eq!(
            double_answered(&across),
            BTreeSet::from([ip4("192.0.2.200")])
        );
        assert_eq!(single_owners(&across), None, "the hosts disagree");
    }

    #[test]
    fn owners_exist_only_when_every_ip_has_one_mac_everywhere() {
        let agreed = round(&[
            (
                "client",
                answers(&[("192.0.2.200", &["a"]), ("192.0.2.201", &["b"])]),
            ),
            (
                "probe",
                answers(&[("192.0.2.200", &["a"]), ("192.0.2.201", &["b"])]),
            ),
        ]);
        assert!(double_answered(&agreed).is_empty());
        assert_eq!(
            single_owners(&agreed),
            Some(BTreeMap::from([
                (ip4("192.0.2.200"), "a".to_owned()),
                (ip4("192.0.2.201"), "b".to_owned())
            ]))
        );
        let silent = round(&[("client", answers(&[("192.0.2.200", &[])]))]);
        assert_eq!(
            single_owners(&silent),
            None,
            "an unanswered IP has no owner"
        );
        assert!(double_answered(&silent).is_empty());
    }

    #[test]
    fn an_ip_held_by_two_services_lost_services_and_moved_ones_are_named() {
        let before: Assignments = [
            ("default/a".to_owned(), vec![ip("192.0.2.200")]),
            ("default/b".to_owned(), vec![ip("192.0.2.201")]),
            ("default/c".to_owned(), vec![]),
        ]
        .into();
        let mut now = before.clone();
        assert!(double_assigned(&now).is_empty());
        assert_eq!(lost(&now), vec!["default/c"]);
        assert!(moved(&before, &now).is_empty());
        now.insert("default/b".into(), vec![ip("192.0.2.200")]);
        now.insert("default/c".into(), vec![ip("192.0.2.202")]);
        assert_eq!(
            double_assigned(&now),
            BTreeMap::from([(
                ip("192.0.2.200"),
                vec!["default/a".to_owned(), "default/b".to_owned()]
            )])
        );
        assert_eq!(
            moved(&before, &now),
            vec!["default/b"],
            "c had no IP before: getting one is no move"
        );
        now.remove("default/a");
        assert_eq!(moved(&before, &now), vec!["default/a", "default/b"]);
    }

    #[test]
    fn only_the_deposed_leaders_writes_after_its_successors_first_count() {
        let w = |client: &str, is_write: bool| (client.to_owned(), is_write);
        let log = vec![
            w("b", true),
            w("a", true),
            w("a", true),
            w("b", true),
            w("a", false),
            w("a", true),
        ];
        assert_eq!(writes_after_takeover(&log, 0, "a", "b"), 3);
        assert_eq!(
            writes_after_takeover(&log, 1, "a", "b"),
            1,
            "from index 1, b's first write is at 3"
        );
        assert_eq!(
            writes_after_takeover(&log[..3], 1, "a", "b"),
            0,
            "b never wrote"
        );
    }
}
