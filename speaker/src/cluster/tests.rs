//! Reading Services, EndpointSlices and Nodes as the plan needs them.

use serde_json::json;

use super::*;

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).expect("service")
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).expect("slice")
}

fn lb_service(ingress: serde_json::Value) -> Service {
    service(json!({
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                     "annotations": {"metallb.universe.tf/allow-shared-ip": " k "}},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
        "status": {"loadBalancer": {"ingress": ingress}}
    }))
}

#[test]
fn a_served_service_keeps_its_ips_in_order_and_drops_garbage() {
    let svc = lb_service(
        json!([{"ip": "2001:db8::5"}, {"hostname": "x"}, {"ip": "nope"}, {"ip": "192.0.2.5"}]),
    );
    let info = service_info(&svc, None).expect("served");
    assert_eq!(info.key, "shop/web");
    assert_eq!(
        info.ips,
        vec![
            "2001:db8::5".parse::<IpAddr>().expect("ip"),
            "192.0.2.5".parse().expect("ip")
        ]
    );
    assert!(info.is_shared, "the legacy sharing annotation counts");
    assert!(info.traffic_policy_local);
    assert_eq!(info.labels.get("app").map(String::as_str), Some("web"));
}

#[test]
fn services_without_ips_or_of_another_class_are_not_announced() {
    assert!(service_info(&lb_service(json!([])), None).is_none());
    let svc = lb_service(json!([{"ip": "192.0.2.5"}]));
    assert!(service_info(&svc, Some("other")).is_none());
    let mut cluster_ip = svc.clone();
    if let Some(spec) = cluster_ip.spec.as_mut() {
        spec.type_ = Some("ClusterIP".into());
    }
    assert!(service_info(&cluster_ip, None).is_none());
}

#[test]
fn endpoints_serve_as_metallb_reads_their_conditions() {
    let s = slice(json!({
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "nodeName": "a"},
            {"addresses": ["10.0.0.2"], "nodeName": "b", "conditions": {"ready": false}},
            {"addresses": ["10.0.0.3"], "nodeName": "c", "conditions": {"ready": false, "serving": true}},
            {"addresses": [], "nodeName": "d"}
        ]
    }));
    let (service, endpoints) = slice_endpoints(&s).expect("labelled");
    assert_eq!(service, "shop/web");
    let seen: Vec<(Option<&str>, bool)> = endpoints
        .iter()
        .map(|e| (e.node.as_deref(), e.serving))
        .collect();
    assert_eq!(
        seen,
        vec![(Some("a"), true), (Some("b"), false), (Some("c"), true)]
    );
    let orphan = slice(json!({
        "metadata": {"name": "x", "namespace": "shop"}, "addressType": "IPv4", "endpoints": []
    }));
    assert_eq!(slice_endpoints(&orphan), None);
}

#[test]
fn nodes_report_conditions_and_addresses() {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1", "labels": {"zone": "a"}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "NetworkUnavailable", "status": "True"}
            ],
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "ExternalIP", "address": "203.0.113.9"},
                {"type": "InternalIP", "address": "192.0.2.11"}
            ]
        }
    }))
    .expect("node");
    let info = node_info(&node);
    assert_eq!(info.name, "n1");
    assert!(info.network_unavailable);
    assert_eq!(is_ready(&node), Some(false));
    assert_eq!(
        node_addresses(&node),
        vec![
            "192.0.2.11".parse::<IpAddr>().expect("ip"),
            "203.0.113.9".parse().expect("ip")
        ]
    );
    let bare: Node = serde_json::from_value(json!({"metadata": {"name": "n2"}})).expect("node");
    assert_eq!(is_ready(&bare), None);
    assert!(!node_info(&bare).network_unavailable);
}

#[test]
fn liveness_reads_readiness_and_the_first_address_of_a_node() {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [
                {"type": "ExternalIP", "address": "203.0.113.9"},
                {"type": "InternalIP", "address": "192.0.2.11"}
            ]
        }
    }))
    .expect("node");
    let health = node_health(&node);
    assert_eq!(health.name, "n1");
    assert_eq!(health.ready, Some(true));
    assert_eq!(
        health.address,
        Some("192.0.2.11".parse().expect("ip")),
        "InternalIP first"
    );
    let configured = ["198.51.100.5".parse::<IpAddr>().expect("ip")];
    assert_eq!(
        own_addresses(&configured, Some(&node)),
        configured,
        "--node-address wins"
    );
    assert_eq!(
        own_addresses(&[], Some(&node)),
        node_addresses(&node),
        "else the Node's"
    );
    assert!(own_addresses(&[], None).is_empty());
}

#[test]
fn the_speaker_set_is_read_from_the_names_of_configuration_states() {
    let names = [
        speaker_state_name("node-a").as_str(),
        "speaker-node-b",
        "controller",
        "speaker-",
    ]
    .map(str::to_owned);
    assert_eq!(
        speaker_nodes(names.iter().map(String::as_str)),
        ["node-a", "node-b"].map(str::to_owned).into(),
        "only speaker-<node> names count"
    );
}
