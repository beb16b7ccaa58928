//! Keeping Services and endpoints joined as events arrive in any order.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn info(key: &str, ip: &str) -> ServiceInfo {
    ServiceInfo {
        key: key.to_owned(),
        ips: vec![ip.parse::<IpAddr>().expect("ip")],
        labels: BTreeMap::new(),
        is_shared: false,
        traffic_policy_local: false,
        endpoints: Vec::new(),
    }
}

fn service(key: &str, ip: Option<&str>) -> ServiceFacts {
    ServiceFacts {
        key: key.to_owned(),
        info: ip.map(|ip| info(key, ip)),
        uid: Some(format!("uid-{key}")),
    }
}

fn on(node: &str) -> Endpoint {
    Endpoint {
        node: Some(node.to_owned()),
        serving: true,
    }
}

fn slice(key: &str, service: &str, nodes: &[&str]) -> SliceFacts {
    SliceFacts {
        key: key.to_owned(),
        endpoints: Some((service.to_owned(), nodes.iter().map(|n| on(n)).collect())),
    }
}

/// The view as (key, sorted endpoint nodes), sorted: order in the `Vec` does not matter.
fn view(inputs: &ServiceInputs) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = inputs
        .services()
        .iter()
        .map(|s| {
            let mut nodes: Vec<String> =
                s.endpoints.iter().filter_map(|e| e.node.clone()).collect();
            nodes.sort();
            (s.key.clone(), nodes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn endpoints_join_their_service_whichever_arrives_first() {
    let mut inputs = ServiceInputs::default();
    assert!(!inputs.apply_slice(slice("shop/web-1", "shop/web", &["a"])));
    assert!(inputs.apply_service(service("shop/web", Some("192.0.2.1"))));
    assert!(inputs.apply_slice(slice("shop/web-2", "shop/web", &["b"])));
    assert_eq!(
        view(&inputs),
        vec![("shop/web".into(), vec!["a".into(), "b".into()])]
    );
    assert_eq!(inputs.uid("shop/web"), Some("uid-shop/web"));
    assert!(inputs.delete_slice("shop/web-1"));
    assert_eq!(view(&inputs), vec![("shop/web".into(), vec!["b".into()])]);
}

#[test]
fn an_unchanged_event_changes_nothing() {
    let mut inputs = ServiceInputs::default();
    inputs.apply_service(service("shop/web", Some("192.0.2.1")));
    inputs.apply_slice(slice("shop/web-1", "shop/web", &["a"]));
    assert!(!inputs.apply_service(service("shop/web", Some("192.0.2.1"))));
    assert!(!inputs.apply_slice(slice("shop/web-1", "shop/web", &["a"])));
}

#[test]
fn a_service_that_loses_its_ip_leaves_the_plan_but_keeps_its_endpoints_for_later() {
    let mut inputs = ServiceInputs::default();
    inputs.apply_service(service("shop/web", Some("192.0.2.1")));
    inputs.apply_slice(slice("shop/web-1", "shop/web", &["a"]));
    assert!(inputs.apply_service(service("shop/web", None)));
    assert!(inputs.services().is_empty());
    assert!(inputs.apply_service(service("shop/web", Some("192.0.2.2"))));
    assert_eq!(view(&inputs), vec![("shop/web".into(), vec!["a".into()])]);
}

#[test]
fn a_slice_moving_to_another_service_leaves_the_first() {
    let mut inputs = ServiceInputs::default();
    inputs.apply_service(service("shop/web", Some("192.0.2.1")));
    inputs.apply_service(service("shop/api", Some("192.0.2.2")));
    inputs.apply_slice(slice("shop/s", "shop/web", &["a"]));
    assert!(inputs.apply_slice(slice("shop/s", "shop/api", &["a"])));
    assert_eq!(
        view(&inputs),
        vec![
            ("shop/api".into(), vec!["a".into()]),
            ("shop/web".into(), vec![])
        ]
    );
}

#[test]
fn a_relist_drops_what_it_no_longer_reports() {
    let mut inputs = ServiceInputs::default();
    inputs.apply_service(service("shop/web", Some("192.0.2.1")));
    inputs.apply_service(service("shop/api", Some("192.0.2.2")));
    inputs.apply_slice(slice("shop/web-1", "shop/web", &["a"]));
    inputs.apply_slice(slice("shop/api-1", "shop/api", &["b"]));
    assert!(!inputs.on_service(Input::Relist));
    assert!(!inputs.on_slice(Input::Relist));
    inputs.on_service(Input::Apply(service("shop/web", Some("192.0.2.1"))));
    inputs.on_slice(Input::Apply(slice("shop/api-1", "shop/api", &["b"])));
    assert!(inputs.on_service(Input::Relisted));
    assert!(inputs.on_slice(Input::Relisted));
    assert_eq!(view(&inputs), vec![("shop/web".into(), vec![])]);
    assert_eq!(inputs.uid("shop/api"), None);
    assert!(
        !inputs.on_service(Input::Relisted),
        "no re-list in progress"
    );
}

/// One watch event.
#[derive(Debug, Clone)]
enum Op {
    Service(usize, Option<u8>),
    DeleteService(usize),
    Slice(usize, usize, Vec<usize>),
    DeleteSlice(usize),
}

const SERVICES: usize = 4;
const SLICES: usize = 5;
const NODES: [&str; 3] = ["a", "b", "c"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..SERVICES, proptest::option::of(1u8..4)).prop_map(|(s, ip)| Op::Service(s, ip)),
        (0..SERVICES).prop_map(Op::DeleteService),
        (
            0..SLICES,
            0..SERVICES,
            proptest::collection::vec(0..NODES.len(), 0..3)
        )
            .prop_map(|(k, s, n)| Op::Slice(k, s, n)),
        (0..SLICES).prop_map(Op::DeleteSlice),
    ]
}

proptest! {
    /// Whatever the order of events, the view equals the join of the latest objects.
    #[test]
    fn the_view_is_the_join_of_the_latest_objects(ops in proptest::collection::vec(op(), 0..40)) {
        let mut inputs = ServiceInputs::default();
        let mut services: BTreeMap<usize, Option<u8>> = BTreeMap::new();
        let mut slices: BTreeMap<usize, (usize, Vec<usize>)> = BTreeMap::new();
        let name = |s: usize| format!("ns/svc-{s}");
        for op in ops {
            match op {
                Op::Service(s, ip) => {
                    let ip = ip.map(|i| format!("192.0.2.{i}"));
                    inputs.apply_service(service(&name(s), ip.as_deref()));
                    services.insert(s, ip.map(|_| 0));
                }
                Op::DeleteService(s) => {
                    inputs.delete_service(&name(s));
                    services.remove(&s);
                }
                Op::Slice(k, s, nodes) => {
                    let names: Vec<&str> = nodes.iter().map(|n| NODES[*n]).collect();
                    inputs.apply_slice(slice(&format!("ns/slice-{k}"), &name(s), &names));
                    slices.insert(k, (s, nodes));
                }
                Op::DeleteSlice(k) => {
                    inputs.delete_slice(&format!("ns/slice-{k}"));
                    slices.remove(&k);
                }
            }
        }
        let expected: Vec<(String, Vec<String>)> = services
            .iter()
            .filter(|(_, ip)| ip.is_some())
            .map(|(s, _)| {
                let mut nodes: Vec<String> = slices
                    .values()
                    .filter(|(owner, _)| owner == s)
                    .flat_map(|(_, nodes)| nodes.iter().map(|n| NODES[*n].to_owned()))
                    .collect();
                nodes.sort();
                (name(*s), nodes)
            })
            .collect();
        prop_assert_eq!(view(&inputs), expected);
    }
}
