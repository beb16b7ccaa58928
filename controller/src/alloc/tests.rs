//! Story tests: one allocator, steps in order, each with the outcome it must have.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::addr::{Family, IpRange};
use ferrolb_api::config::{Allocation, Pool};
use ferrolb_api::selector::Labels;
use ferrolb_api::service::{FamilyPolicy, LoadBalancerRequest, Protocol, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn pool(name: &str, entries: &[&str]) -> Pool {
    Pool {
        name: name.to_owned(),
        labels: Labels::new(),
        ranges: entries
            .iter()
            .map(|e| e.parse::<IpRange>().expect("range"))
            .collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

fn pools(list: Vec<Pool>) -> BTreeMap<String, Pool> {
    list.into_iter().map(|p| (p.name.clone(), p)).collect()
}

/// A Service under construction: `svc("a").sharing("k").tcp(80)`.
#[derive(Clone)]
struct Svc {
    key: String,
    namespace: String,
    namespace_labels: Labels,
    labels: Labels,
    request: LoadBalancerRequest,
}

fn svc(name: &str) -> Svc {
    Svc {
        key: format!("default/{name}"),
        namespace: "default".into(),
        namespace_labels: Labels::new(),
        labels: Labels::new(),
        request: LoadBalancerRequest {
            requested_ips: Vec::new(),
            address_pool: None,
            sharing_key: None,
            families: vec![Family::V4],
            family_policy: FamilyPolicy::SingleStack,
            ports: Vec::new(),
            backend_key: String::new(),
            traffic_policy_local: false,
            legacy_annotations: Vec::new(),
        },
    }
}

impl Svc {
    fn requesting(mut self, ips: &[&str]) -> Self {
        self.request.requested_ips = ips.iter().map(|i| ip(i)).collect();
        self
    }
    fn asking_pool(mut self, pool: &str) -> Self {
        self.request.address_pool = Some(pool.into());
        self
    }
    fn sharing(mut self, key: &str) -> Self {
        self.request.sharing_key = Some(key.into());
        self
    }
    fn tcp(mut self, port: i32) -> Self {
        self.request.ports.push(ServicePort {
            protocol: Protocol::Tcp,
            port,
        });
        self
    }
    fn udp(mut self, port: i32) -> Self {
        self.request.ports.push(ServicePort {
            protocol: Protocol::Udp,
            port,
        });
        self
    }
    fn local(mut self, selector: &str) -> Self {
        self.request.traffic_policy_local = true;
        self.request.backend_key = selector.into();
        self
    }
    fn in_namespace(mut self, namespace: &str, labels: &[(&str, &str)]) -> Self {
        self.key = format!(
            "{namespace}/{}",
            self.key.rsplit('/').next().unwrap_or_default()
        );
        self.namespace = namespace.into();
        self.namespace_labels = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        self
    }
    fn dual(mut self, policy: FamilyPolicy) -> Self {
        self.request.families = vec![Family::V4, Family::V6];
        self.request.family_policy = policy;
        self
    }
    fn request(&self) -> ServiceRequest<'_> {
        ServiceRequest {
            key: &self.key,
            requester: Requester {
                namespace: &self.namespace,
                namespace_labels: &self.namespace_labels,
                labels: &self.labels,
            },
            request: &self.request,
        }
    }
}

fn assign(alloc: &mut Allocator, s: &Svc) -> Result<Outcome, AllocError> {
    alloc.assign(&s.request())
}

fn ips_of(outcome: &Outcome) -> Vec<String> {
    outcome.ips.iter().map(ToString::to_string).collect()
}

#[test]
fn services_get_the_first_free_addresses_in_pool_order() {
    let mut alloc = Allocator::new(&pools(vec![pool(
        "a",
        &["192.0.2.10-192.0.2.11", "192.0.2.0/31"],
    )]));
    let got: Vec<String> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|n| ips_of(&assign(&mut alloc, &svc(n)).expect("allocated"))[0].clone())
        .collect();
    assert_eq!(got, ["192.0.2.10", "192.0.2.11", "192.0.2.0", "192.0.2.1"]);
    assert_eq!(
        assign(&mut alloc, &svc("s5")),
        Err(AllocError::Exhausted(vec![Family::V4]))
    );
    assert_eq!(alloc.release("default/s2"), Some(vec![ip("192.0.2.11")]));
    assert_eq!(
        ips_of(&assign(&mut alloc, &svc("s5")).expect("reused")),
        ["192.0.2.11"]
    );
}

#[test]
fn a_service_keeps_its_ip_on_every_reconcile() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    let first = assign(&mut alloc, &svc("s")).expect("allocated");
    assert_eq!(first.change, Change::Allocated);
    let again = assign(&mut alloc, &svc("s")).expect("kept");
    assert_eq!((again.ips, again.change), (first.ips, Change::Kept));
}

#[test]
fn second_service_cannot_take_an_ip_in_use() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    assign(&mut alloc, &svc("first").requesting(&["192.0.2.1"])).expect("first");
    let err = assign(&mut alloc, &svc("second").requesting(&["192.0.2.1"])).expect_err("in use");
    assert!(
        matches!(&err, AllocError::InUse { holder, .. } if holder == "default/first"),
        "{err}"
    );
}

#[test]
fn services_with_one_key_share_an_ip_on_distinct_ports_only() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    let dns_tcp = assign(&mut alloc, &svc("dns-tcp").sharing("dns").tcp(53)).expect("tcp");
    let dns_udp = assign(&mut alloc, &svc("dns-udp").sharing("dns").udp(53)).expect("udp");
    assert_eq!(
        dns_tcp.ips, dns_udp.ips,
        "same key, different protocol: shared"
    );
    let clash =
        assign(&mut alloc, &svc("dns-tcp2").sharing("dns").tcp(53)).expect("gets another IP");
    assert_ne!(clash.ips, dns_tcp.ips, "same port and protocol: not shared");
    let other_key = assign(&mut alloc, &svc("web").sharing("web").tcp(80)).expect("other key");
    assert!(![&dns_tcp.ips, &clash.ips].contains(&&other_key.ips));
    let requested = assign(
        &mut alloc,
        &svc("web2")
            .sharing("other")
            .tcp(81)
            .requesting(&["192.0.2.0"]),
    );
    assert!(matches!(requested, Err(AllocError::InUse { .. })));
    assert_eq!(
        alloc.usage("a").expect("pool").assigned_v4,
        3,
        "shared IPs count once"
    );
}

#[test]
fn local_traffic_policy_services_share_only_with_identical_selectors() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    let a = assign(&mut alloc, &svc("a").sharing("k").tcp(80).local("app=web")).expect("a");
    let b = assign(&mut alloc, &svc("b").sharing("k").tcp(81).local("app=web")).expect("b");
    let c = assign(&mut alloc, &svc("c").sharing("k").tcp(82).local("app=api")).expect("c");
    let d = assign(&mut alloc, &svc("d").sharing("k").tcp(83)).expect("d");
    assert_eq!(a.ips, b.ips);
    assert_ne!(a.ips, c.ips);
    assert_ne!(a.ips, d.ips);
}

#[test]
fn a_sole_holder_may_change_its_sharing_key() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    let before = assign(&mut alloc, &svc("s").sharing("old")).expect("first");
    let after = assign(&mut alloc, &svc("s").sharing("new")).expect("kept");
    assert_eq!((before.ips, Change::Kept), (after.ips, after.change));
}

#[test]
fn requested_ips_must_lie_in_a_pool_and_in_the_named_pool() {
    let mut alloc = Allocator::new(&pools(vec![
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["198.51.100.0/30"]),
    ]));
    assert!(matches!(
        assign(&mut alloc, &svc("x").requesting(&["203.0.113.1"])),
        Err(AllocError::NotInPool { pool: None, .. })
    ));
    assert!(matches!(
        assign(
            &mut alloc,
            &svc("x").requesting(&["192.0.2.1"]).asking_pool("b")
        ),
        Err(AllocError::NotInPool { pool: Some(_), .. })
    ));
    assert!(matches!(
        assign(
            &mut alloc,
            &svc("x")
                .requesting(&["192.0.2.1", "198.51.100.1"])
                .dual(FamilyPolicy::RequireDualStack)
        ),
        Err(AllocError::DifferentPools(..))
    ));
    assert_eq!(
        assign(&mut alloc, &svc("x").asking_pool("nope")),
        Err(AllocError::UnknownPool("nope".into()))
    );
    assert_eq!(
        ips_of(&assign(&mut alloc, &svc("x").requesting(&["198.51.100.2"])).expect("in b")),
        ["198.51.100.2"]
    );
}

#[test]
fn auto_assign_off_pools_serve_only_explicit_requests() {
    let mut manual = pool("manual", &["192.0.2.0/30"]);
    manual.auto_assign = false;
    let mut alloc = Allocator::new(&pools(vec![manual]));
    assert!(matches!(
        assign(&mut alloc, &svc("auto")),
        Err(AllocError::Exhausted(_))
    ));
    assert_eq!(
        assign(&mut alloc, &svc("named").asking_pool("manual"))
            .expect("named")
            .pool,
        "manual"
    );
    assert_eq!(
        ips_of(&assign(&mut alloc, &svc("ip").requesting(&["192.0.2.3"])).expect("ip")),
        ["192.0.2.3"]
    );
}

fn restricted(
    name: &str,
    entries: &[&str],
    priority: i64,
    namespaces: &[&str],
    selector: Option<(&str, &str)>,
) -> Pool {
    let mut p = pool(name, entries);
    p.allocation = Some(Allocation {
        priority,
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        namespace_selectors: selector
            .map(|(k, v)| LabelSelector {
                match_labels: Some([(k.to_owned(), v.to_owned())].into()),
                match_expressions: None,
            })
            .into_iter()
            .collect(),
        service_selectors: Vec::new(),
    });
    p
}

#[test]
fn a_namespace_never_gets_an_ip_from_a_pool_it_may_not_use() {
    let mut alloc = Allocator::new(&pools(vec![
        restricted("team", &["192.0.2.0/30"], 0, &["payments"], None),
        pool("general", &["198.51.100.0/30"]),
    ]));
    let outsider = svc("web").in_namespace("shop", &[]);
    assert_eq!(
        assign(&mut alloc, &outsider).expect("general").pool,
        "general"
    );
    let err = assign(
        &mut alloc,
        &svc("steal")
            .in_namespace("shop", &[])
            .requesting(&["192.0.2.1"]),
    )
    .expect_err("refused");
    assert_eq!(
        err,
        AllocError::PoolNotAllowed {
            pool: "team".into(),
            refusal: Refusal::Namespace
        }
    );
    assert!(matches!(
        assign(
            &mut alloc,
            &svc("named").in_namespace("shop", &[]).asking_pool("team")
        ),
        Err(AllocError::PoolNotAllowed { .. })
    ));
    assert_eq!(
        assign(&mut alloc, &svc("pay").in_namespace("payments", &[]))
            .expect("own pool")
            .pool,
        "team"
    );
}

#[test]
fn restricted_pools_are_tried_by_priority_before_open_ones() {
    let mut alloc = Allocator::new(&pools(vec![
        pool("aaa-open", &["203.0.113.0/30"]),
        restricted("low", &["192.0.2.0/32"], 20, &[], Some(("team", "a"))),
        restricted("high", &["192.0.2.8/32"], 10, &[], Some(("team", "a"))),
        restricted(
            "unprioritised",
            &["192.0.2.16/32"],
            0,
            &[],
            Some(("team", "a")),
        ),
    ]));
    let member = |n: &str| svc(n).in_namespace("ns-a", &[("team", "a")]);
    let order: Vec<String> = ["1", "2", "3", "4"]
        .iter()
        .map(|n| assign(&mut alloc, &member(n)).expect("ip").pool)
        .collect();
    assert_eq!(order, ["high", "low", "unprioritised", "aaa-open"]);
    assert_eq!(
        assign(
            &mut alloc,
            &svc("other").in_namespace("ns-b", &[("team", "b")])
        )
        .expect("ip")
        .pool,
        "aaa-open"
    );
}

#[test]
fn a_namespace_selector_matching_nothing_keeps_the_pool_closed() {
    let mut alloc = Allocator::new(&pools(vec![restricted(
        "team",
        &["192.0.2.0/30"],
        0,
        &[],
        Some(("team", "ghost")),
    )]));
    assert!(matches!(
        assign(&mut alloc, &svc("x").requesting(&["192.0.2.1"])),
        Err(AllocError::PoolNotAllowed { .. })
    ));
}

#[test]
fn avoid_buggy_ips_pools_never_hand_out_dot_zero_or_dot_255() {
    let mut p = pool("a", &["192.0.2.255-192.0.3.1"]);
    p.avoid_buggy_ips = true;
    let mut alloc = Allocator::new(&pools(vec![p]));
    assert_eq!(
        ips_of(&assign(&mut alloc, &svc("s")).expect("ip")),
        ["192.0.3.1"]
    );
    assert!(matches!(
        assign(&mut alloc, &svc("t").requesting(&["192.0.3.0"])),
        Err(AllocError::BuggyIp { .. })
    ));
    assert_eq!(alloc.usage("a").expect("pool").available_v4, 0);
}

#[test]
fn dual_stack_takes_one_address_per_family_from_one_pool() {
    let mut alloc = Allocator::new(&pools(vec![
        pool("v4only", &["192.0.2.0/30"]),
        pool("zz-dual", &["198.51.100.0/30", "2001:db8::/64"]),
    ]));
    let both = assign(&mut alloc, &svc("d").dual(FamilyPolicy::RequireDualStack)).expect("dual");
    assert_eq!(
        (both.pool.as_str(), ips_of(&both)),
        (
            "zz-dual",
            vec!["198.51.100.0".to_owned(), "2001:db8::".to_owned()]
        )
    );
    let mut v6_first = svc("v6").dual(FamilyPolicy::RequireDualStack);
    v6_first.request.families = vec![Family::V6, Family::V4];
    assert_eq!(
        ips_of(&assign(&mut alloc, &v6_first).expect("dual")),
        ["2001:db8::1", "198.51.100.1"]
    );
}

#[test]
fn prefer_dual_stack_falls_back_to_one_family_and_gains_the_other_later() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    let single =
        assign(&mut alloc, &svc("p").dual(FamilyPolicy::PreferDualStack)).expect("v4 only");
    assert_eq!(
        (ips_of(&single), single.missing_family),
        (vec!["192.0.2.0".to_owned()], Some(Family::V6))
    );
    assert!(matches!(
        assign(&mut alloc, &svc("r").dual(FamilyPolicy::RequireDualStack)),
        Err(AllocError::Exhausted(_))
    ));
    alloc.set_pools(&pools(vec![pool("a", &["192.0.2.0/30", "2001:db8::/120"])]));
    let extended = assign(&mut alloc, &svc("p").dual(FamilyPolicy::PreferDualStack)).expect("both");
    assert_eq!(
        (ips_of(&extended), extended.change),
        (
            vec!["192.0.2.0".to_owned(), "2001:db8::".to_owned()],
            Change::Extended
        )
    );
}

#[test]
fn an_ip_that_left_its_pool_is_replaced_with_the_reason() {
    let mut alloc = Allocator::new(&pools(vec![
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["198.51.100.0/30"]),
    ]));
    assert_eq!(
        assign(&mut alloc, &svc("s").asking_pool("a"))
            .expect("a")
            .ips,
        vec![ip("192.0.2.0")]
    );
    alloc.set_pools(&pools(vec![pool("b", &["198.51.100.0/30"])]));
    assert_eq!(alloc.services_in_pool("a"), ["default/s"]);
    let moved = assign(&mut alloc, &svc("s")).expect("moved to b");
    assert_eq!(moved.ips, vec![ip("198.51.100.0")]);
    assert!(
        matches!(moved.change, Change::Replaced { ref cleared, why: AllocError::NotInPool { .. } } if cleared == &[ip("192.0.2.0")])
    );
}

#[test]
fn turning_avoid_buggy_ips_on_replaces_a_dot_zero_address() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    assert_eq!(
        assign(&mut alloc, &svc("s")).expect("ip").ips,
        vec![ip("192.0.2.0")]
    );
    let mut edited = pool("a", &["192.0.2.0/30"]);
    edited.avoid_buggy_ips = true;
    alloc.set_pools(&pools(vec![edited]));
    let moved = assign(&mut alloc, &svc("s")).expect("replaced");
    assert_eq!(moved.ips, vec![ip("192.0.2.1")]);
    assert!(matches!(
        moved.change,
        Change::Replaced {
            why: AllocError::BuggyIp { .. },
            ..
        }
    ));
}

#[test]
fn an_ip_that_moved_into_another_pool_is_rehomed_not_replaced() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    assign(&mut alloc, &svc("s")).expect("ip");
    alloc.set_pools(&pools(vec![pool("b", &["192.0.2.0/29"])]));
    let kept = assign(&mut alloc, &svc("s")).expect("kept");
    assert_eq!((kept.pool.as_str(), kept.change), ("b", Change::Kept));
    assert_eq!(alloc.usage("b").expect("b").assigned_v4, 1);
}

#[test]
fn changing_the_requested_ip_moves_the_service() {
    let mut alloc = Allocator::new(&pools(vec![pool("a", &["192.0.2.0/30"])]));
    assign(&mut alloc, &svc("s").requesting(&["192.0.2.1"])).expect("first");
    let moved = assign(&mut alloc, &svc("s").requesting(&["192.0.2.2"])).expect("moved");
    assert_eq!(moved.ips, vec![ip("192.0.2.2")]);
    assert!(matches!(
        moved.change,
        Change::Replaced {
            why: AllocError::RequestChanged(_),
            ..
        }
    ));
    assert_eq!(alloc.usage("a").expect("a").assigned_v4, 1);
}

#[test]
fn a_v6_slash_64_pool_allocates_without_listing_addresses() {
    let mut alloc = Allocator::new(&pools(vec![pool("v6", &["2001:db8::/64"])]));
    let mut s = svc("x");
    s.request.families = vec![Family::V6];
    assert_eq!(ips_of(&assign(&mut alloc, &s).expect("ip")), ["2001:db8::"]);
    assert_eq!(
        alloc.usage("v6").expect("v6").available_v6,
        (1u128 << 64) - 1
    );
}

#[test]
fn restore_after_a_restart_keeps_every_ip() {
    let config = pools(vec![pool("a", &["192.0.2.0/29"])]);
    let mut before = Allocator::new(&config);
    let services: Vec<Svc> = (0..5).map(|i| svc(&format!("s{i}"))).collect();
    for s in &services {
        assign(&mut before, s).expect("ip");
    }
    before.release("default/s1");
    let mut after = Allocator::new(&config);
    for s in services.iter().filter(|s| s.key != "default/s1") {
        let (_, ips) = before.assigned(&s.key).expect("held");
        after.restore(&s.request(), ips).expect("restored");
    }
    for s in services.iter().filter(|s| s.key != "default/s1") {
        assert_eq!(after.assigned(&s.key), before.assigned(&s.key));
    }
    assert_eq!(
        ips_of(&assign(&mut after, &svc("new")).expect("free")),
        ["192.0.2.1"]
    );
}

/// One step of a random story.
#[derive(Debug, Clone)]
enum Step {
    Create {
        service: usize,
        key: Option<u8>,
        port: i32,
        request: Option<u8>,
    },
    Delete {
        service: usize,
    },
    EditPool {
        avoid_buggy: bool,
        shrink: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..12, proptest::option::of(0u8..2), 80i32..83, proptest::option::of(0u8..12))
            .prop_map(|(service, key, port, request)| Step::Create { service, key, port, request }),
        2 => (0usize..12).prop_map(|service| Step::Delete { service }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(avoid_buggy, shrink)| Step::EditPool { avoid_buggy, shrink }),
    ]
}

fn story_pools(avoid_buggy: bool, shrink: bool) -> BTreeMap<String, Pool> {
    let mut a = pool(
        "a",
        if shrink {
            &["192.0.2.254-192.0.3.2"]
        } else {
            &["192.0.2.254-192.0.3.5"]
        },
    );
    a.avoid_buggy_ips = avoid_buggy;
    let team = restricted("team", &["198.51.100.0/30"], 1, &["team"], None);
    pools(vec![a, team])
}

fn service_for(index: usize, key: Option<u8>, port: i32, request: Option<u8>) -> Svc {
    let mut s = svc(&format!("s{index}"));
    if index.is_multiple_of(3) {
        s = s.in_namespace("team", &[]);
    }
    if let Some(key) = key {
        s = s.sharing(&format!("k{key}"));
    }
    s = s.tcp(port);
    if let Some(r) = request {
        let candidates = [
            "192.0.2.254",
            "192.0.2.255",
            "192.0.3.0",
            "192.0.3.1",
            "192.0.3.4",
            "198.51.100.1",
            "198.51.100.2",
            "203.0.113.1",
        ];
        s = s.requesting(&[candidates[usize::from(r) % candidates.len()]]);
    }
    s
}

fn assert_invariants(
    alloc: &Allocator,
    services: &BTreeMap<usize, Svc>,
    config: &BTreeMap<String, Pool>,
) -> Result<(), TestCaseError> {
    let mut holders: BTreeMap<IpAddr, Vec<&Svc>> = BTreeMap::new();
    for s in services.values() {
        let Some((pool_name, ips)) = alloc.assigned(&s.key) else {
            continue;
        };
        let pool = &config[pool_name];
        prop_assert!(
            selection::check(pool, &s.request().requester).is_ok(),
            "{} holds an IP of {} it may not use",
            s.key,
            pool_name
        );
        for ip in ips {
            prop_assert!(
                pool.range_of(*ip).is_some(),
                "{} holds {} outside {}",
                s.key,
                ip,
                pool_name
            );
            prop_assert!(
                !(pool.avoid_buggy_ips && ferrolb_api::addr::is_buggy_ip(*ip)),
                "{} holds buggy {}",
                s.key,
                ip
            );
            holders.entry(*ip).or_default().push(s);
        }
    }
    for (ip, on) in holders {
        for (i, a) in on.iter().enumerate() {
            for b in &on[i + 1..] {
                prop_assert!(
                    Sharing::of(&a.request)
                        .conflict(&Sharing::of(&b.request))
                        .is_none(),
                    "{} and {} may not share {}",
                    a.key,
                    b.key,
                    ip
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No IP is held by two Services unless they may share it, nobody holds an IP outside its
    /// allowed pools, and rebuilding from what Services hold (most IPs first, as after a restart)
    /// reproduces the same assignment.
    #[test]
    fn random_stories_keep_every_invariant(steps in proptest::collection::vec(step(), 1..60)) {
        let (mut avoid, mut shrink) = (false, false);
        let mut config = story_pools(avoid, shrink);
        let mut alloc = Allocator::new(&config);
        let mut services: BTreeMap<usize, Svc> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Create { service, key, port, request } => {
                    let s = service_for(service, key, port, request);
                    if assign(&mut alloc, &s).is_err() {
                        alloc.release(&s.key);
                    }
                    services.insert(service, s);
                }
                Step::Delete { service } => {
                    if let Some(s) = services.remove(&service) {
                        alloc.release(&s.key);
                    }
                }
                Step::EditPool { avoid_buggy, shrink: smaller } => {
                    (avoid, shrink) = (avoid_buggy, smaller);
                    config = story_pools(avoid, shrink);
                    alloc.set_pools(&config);
                    for s in services.values() {
                        if assign(&mut alloc, s).is_err() {
                            alloc.release(&s.key);
                        }
                    }
                }
            }
            assert_invariants(&alloc, &services, &config)?;
        }
        let mut held: Vec<(&Svc, Vec<IpAddr>)> = services.values().filter_map(|s| alloc.assigned(&s.key).map(|(_, ips)| (s, ips.to_vec()))).collect();
        held.sort_by_key(|(s, ips)| (std::cmp::Reverse(ips.len()), s.key.clone()));
        let mut rebuilt = Allocator::new(&config);
        for (s, ips) in &held {
            prop_assert!(rebuilt.restore(&s.request(), ips).is_ok(), "{} could not restore {:?}", s.key, ips);
        }
        for s in services.values() {
            prop_assert_eq!(rebuilt.assigned(&s.key), alloc.assigned(&s.key));
        }
        for name in config.keys() {
            prop_assert_eq!(rebuilt.usage(name), alloc.usage(name));
        }
    }
}
