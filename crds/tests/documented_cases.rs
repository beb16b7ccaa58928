//! The cases MetalLB's documentation shows, written as our own equivalents: every valid one parses,
//! validates and round-trips; every invalid one is refused with a line naming kind, object and field.

use ferrolb_api::config::{self, Built};
use ferrolb_api::manifest::{self, Document};
use serde_json::Value;

/// Errors and warnings of a manifest, as `validate` prints them, plus the built configuration.
struct Outcome {
    built: Built,
    errors: Vec<String>,
    warnings: Vec<String>,
}

fn check(yaml: &str) -> Outcome {
    let documents = manifest::parse(yaml.as_bytes()).expect("readable YAML");
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut objects = Vec::new();
    for document in documents {
        match document {
            Document::Object {
                object,
                unknown_fields,
            } => {
                errors.extend(unknown_fields.iter().map(ToString::to_string));
                objects.push(*object);
            }
            Document::Deprecated { object, warning } => {
                warnings.push(warning);
                objects.push(*object);
            }
            Document::Invalid(error) => errors.push(error.to_string()),
            Document::Skipped(what) => panic!("unexpected skip of {what}"),
        }
    }
    let built = config::build(&manifest::collect(&objects));
    for problem in &built.problems {
        if problem.is_transient() {
            warnings.push(problem.to_string())
        } else {
            errors.push(problem.to_string())
        }
    }
    Outcome {
        built,
        errors,
        warnings,
    }
}

/// Every non-null value of `original` appears unchanged in `round_trip`.
fn assert_kept(original: &Value, round_trip: &Value, path: &str) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a.iter().filter(|(_, v)| !v.is_null()) {
                let kept = b
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} lost in the round trip"));
                assert_kept(value, kept, &format!("{path}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path} changed length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_kept(x, y, &format!("{path}[{i}]"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path} changed"),
    }
}

/// YAML → types → YAML keeps every field, for every document.
fn assert_round_trips(yaml: &str) {
    let originals: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("YAML");
    for original in originals {
        let kind = original["kind"].as_str().unwrap_or_default().to_owned();
        let typed: Value = match (original["apiVersion"].as_str(), kind.as_str()) {
            (_, "IPAddressPool") => rt::<ferrolb_api::types::IPAddressPool>(&original),
            (_, "L2Advertisement") => rt::<ferrolb_api::types::L2Advertisement>(&original),
            (_, "BGPAdvertisement") => rt::<ferrolb_api::types::BGPAdvertisement>(&original),
            (Some("metallb.io/v1beta1"), "BGPPeer") => {
                rt::<ferrolb_api::types::bgppeer_v1beta1::BGPPeer>(&original)
            }
            (_, "BGPPeer") => rt::<ferrolb_api::types::BGPPeer>(&original),
            (_, "BFDProfile") => rt::<ferrolb_api::types::BFDProfile>(&original),
            (_, "Community") => rt::<ferrolb_api::types::Community>(&original),
            _ => continue,
        };
        assert_kept(&original, &typed, &kind);
    }
}

/// Through the typed value and back out as YAML text, then read again.
fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Value {
    let typed: T = serde_json::from_value(value.clone()).expect("typed");
    let yaml = serde_saphyr::to_string(&typed).expect("serialise");
    serde_saphyr::from_str(&yaml).expect("reparse")
}

const VALID: &[(&str, &str)] = &[
    (
        "layer 2 with a bare L2Advertisement announcing every pool",
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first-pool, namespace: metallb-system}
spec:
  addresses:
  - 192.168.10.0/24
  - 192.168.9.1-192.168.9.5
  - fc00:f853:0ccd:e799::/124
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: example, namespace: metallb-system}
"#,
    ),
    (
        "layer 2 limited to pools, nodes and interfaces",
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first-pool, labels: {zone: east}}
spec: {addresses: [192.168.1.240-192.168.1.250]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: example}
spec:
  ipAddressPools: [first-pool]
  ipAddressPoolSelectors:
  - matchExpressions:
    - {key: zone, operator: In, values: [east]}
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: NodeA}
  - matchLabels: {kubernetes.io/hostname: NodeB}
  interfaces: [eth0, eth1]
  preferredNodeSelectors:
  - weight: 50
    preference: {matchLabels: {rack: r1}}
"#,
    ),
    (
        "bgp with a peer, an empty advertisement and timers",
        r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: sample}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 90s, keepaliveTime: 30s}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first-pool}
spec: {addresses: [192.168.1.240-192.168.1.250]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: example}
"#,
    ),
    (
        "the same pool announced twice with different lengths and localPref",
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp-pool}
spec: {addresses: [198.51.100.10/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: local}
spec:
  ipAddressPools: [bgp-pool]
  aggregationLength: 32
  localPref: 100
  communities: [65535:65282]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: external}
spec:
  ipAddressPools: [bgp-pool]
  aggregationLength: 24
"#,
    ),
    (
        "peers per node set and advertisements limited to peers and nodes",
        r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: peer-a}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 172.30.0.3
  peerPort: 180
  sourceAddress: 172.30.0.2
  routerID: 10.10.10.10
  ebgpMultiHop: true
  nodeSelectors:
  - matchExpressions:
    - {key: kubernetes.io/hostname, operator: In, values: [hostA, hostB]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: peer-b}
spec: {myASN: 64512, peerASN: 64514, peerAddress: 172.30.0.4}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.168.1.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: only-a}
spec:
  ipAddressPools: [pool]
  peers: [peer-a]
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: hostA}
"#,
    ),
    (
        "bfd profile referenced by a peer",
        r#"
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: testbfdprofile}
spec: {receiveInterval: 380, transmitInterval: 270, detectMultiplier: 3, echoInterval: 50, echoMode: false, passiveMode: true, minimumTtl: 254}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: peersample}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 172.30.0.3, bfdProfile: testbfdprofile}
"#,
    ),
    (
        "community aliases, standard and large communities",
        r#"
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities}
spec:
  communities:
  - {name: NO_ADVERTISE, value: "65535:65282"}
  - {name: BIG, value: "large:4200000000:1:2"}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.168.1.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: ad}
spec: {communities: [NO_ADVERTISE, BIG, "large:1:2:3", "64512:1"]}
"#,
    ),
    (
        "pools restricted by namespace, selectors and priority, without auto-assign, avoiding buggy IPs",
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: ns-pool}
spec:
  addresses: [192.168.20.0/24]
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [namespace-a, namespace-b]
    namespaceSelectors:
    - matchLabels: {foo: bar}
    serviceSelectors:
    - matchExpressions:
      - {key: app, operator: In, values: [bar]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: expensive}
spec: {addresses: [42.176.25.64/30], autoAssign: false}
"#,
    ),
    (
        "peers with a dynamic ASN, unnumbered interface, VRF, password secret and graceful restart",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: bgp-password}
type: kubernetes.io/basic-auth
stringData: {password: s3cret}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: dynamic}
spec: {myASN: 64512, dynamicASN: external, peerAddress: 172.30.0.5, passwordSecret: {name: bgp-password, namespace: metallb-system}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: unnumbered}
spec: {myASN: 64512, peerASN: 64600, interface: eth1, vrf: red, enableGracefulRestart: true, connectTime: 10s, localASN: 64999}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: plain-password}
spec: {myASN: 64512, peerASN: 64601, peerAddress: 172.30.0.6, password: hunter2, dualStackAddressFamily: true, disableMP: false}
"#,
    ),
    (
        "an advertisement selecting services",
        r#"
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: per-service}
spec:
  serviceSelectors:
  - matchLabels: {exposed: "true"}
"#,
    ),
];

#[test]
fn documented_valid_configurations_are_accepted_and_round_trip() {
    for (case, yaml) in VALID {
        let outcome = check(yaml);
        assert!(outcome.errors.is_empty(), "{case}: {:?}", outcome.errors);
        assert!(
            outcome.warnings.is_empty(),
            "{case}: {:?}",
            outcome.warnings
        );
        assert_round_trips(yaml);
    }
}

#[test]
fn the_shipped_examples_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).expect("examples folder") {
        let path = entry.expect("entry").path();
        assert_round_trips(&std::fs::read_to_string(&path).expect("example"));
        read += 1;
    }
    assert!(
        read >= 6,
        "expected the example set in {}, found {read} files",
        dir.display()
    );
}

#[test]
fn valid_configurations_resolve_to_the_expected_config() {
    let config = check(VALID[0].1).built.config;
    let pool = &config.pools["first-pool"];
    assert_eq!(pool.ranges.len(), 3);
    assert!(pool.auto_assign && !pool.avoid_buggy_ips);
    assert_eq!(
        config.l2_advertisements[0].pools.iter().collect::<Vec<_>>(),
        ["first-pool"]
    );

    let communities = check(VALID[6].1).built.config;
    let rendered: Vec<String> = communities.bgp_advertisements[0]
        .communities
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        rendered,
        [
            "64512:1",
            "65535:65282",
            "large:1:2:3",
            "large:4200000000:1:2"
        ]
    );

    let peers = check(VALID[8].1).built.config.peers;
    assert_eq!(
        peers["dynamic"].password,
        config::PeerPassword::Known("s3cret".into())
    );
    assert_eq!(
        peers["unnumbered"].endpoint,
        config::PeerEndpoint::Interface("eth1".into())
    );
    assert_eq!(peers["dynamic"].peer_asn, config::PeerAsn::External);

    let timers = check(VALID[2].1).built.config.peers["sample"].timers;
    assert_eq!(timers.hold_time, Some(std::time::Duration::from_secs(90)));
    assert_eq!(
        timers.keepalive_time,
        Some(std::time::Duration::from_secs(30))
    );
}

#[test]
fn a_v1beta1_peer_converts_up_with_a_deprecation_warning() {
    let outcome = check(
        r#"
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: old}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 10.0.0.1
  peerPort: 0
  nodeSelectors:
  - matchExpressions:
    - {key: rack, operator: In, values: [a]}
"#,
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        outcome.warnings,
        ["metallb.io/v1beta1 BGPPeer is deprecated, please use v1beta2"]
    );
    let peer = &outcome.built.config.peers["old"];
    assert_eq!(peer.port, 179);
    assert_eq!(peer.node_selectors.len(), 1);
}

/// (what MetalLB documents as invalid, manifest, the line we must print).
const INVALID: &[(&str, &str, &str)] = &[
    (
        "range end before start",
        "kind: IPAddressPool\nmetadata: {name: lab}\nspec: {addresses: [10.0.0.0/30, 10.0.0.5-10.0.0.1]}",
        r#"IPAddressPool/lab: spec.addresses[1]: "10.0.0.5-10.0.0.1": range end before start"#,
    ),
    (
        "unparseable CIDR",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/33]}",
        r#"IPAddressPool/p: spec.addresses[0]: "10.0.0.0/33": invalid CIDR: "#,
    ),
    (
        "a single address without a prefix",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.1]}",
        r#"IPAddressPool/p: spec.addresses[0]: "10.0.0.1": not a CIDR"#,
    ),
    (
        "no addresses",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: []}",
        "IPAddressPool/p: spec.addresses: required",
    ),
    (
        "overlap inside one pool",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24, 10.0.0.128/25]}",
        r#"IPAddressPool/p: spec.addresses[1]: "10.0.0.128/25" overlaps with spec.addresses[0] "10.0.0.0/24""#,
    ),
    (
        "overlap between pools: the younger one is refused",
        "kind: IPAddressPool\nmetadata: {name: b}\nspec: {addresses: [10.0.0.10-10.0.0.20]}\n---\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [10.0.0.0/28]}",
        r#"IPAddressPool/b: spec.addresses[0]: "10.0.0.10-10.0.0.20" overlaps with IPAddressPool/a spec.addresses[0] "10.0.0.0/28""#,
    ),
    (
        "duplicate namespaces",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24], serviceAllocation: {namespaces: [a, a]}}",
        r#"IPAddressPool/p: spec.serviceAllocation.namespaces[1]: duplicate value "a""#,
    ),
    (
        "bad selector operator",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24], serviceAllocation: {serviceSelectors: [{matchExpressions: [{key: a, operator: Near, values: [b]}]}]}}",
        r#"IPAddressPool/p: spec.serviceAllocation.serviceSelectors[0]: matchExpressions[0]: operator "Near" is not one of In, NotIn, Exists, DoesNotExist"#,
    ),
    (
        "duplicate selectors",
        "kind: L2Advertisement\nmetadata: {name: l2}\nspec: {nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}",
        r#"L2Advertisement/l2: spec.nodeSelectors[1]: duplicate value "a=b""#,
    ),
    (
        "duplicate pool names",
        "kind: L2Advertisement\nmetadata: {name: l2}\nspec: {ipAddressPools: [p, p]}",
        r#"L2Advertisement/l2: spec.ipAddressPools[1]: duplicate value "p""#,
    ),
    (
        "preference weight out of range",
        "kind: L2Advertisement\nmetadata: {name: l2}\nspec: {preferredNodeSelectors: [{weight: 101, preference: {}}]}",
        "L2Advertisement/l2: spec.preferredNodeSelectors[0].weight: 101 is out of range (1 to 100)",
    ),
    (
        "aggregation length above 32",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {aggregationLength: 33}",
        "BGPAdvertisement/ad: spec.aggregationLength: aggregation length 33 is longer than 32",
    ),
    (
        "aggregation length V6 above 128",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {aggregationLengthV6: 129}",
        "BGPAdvertisement/ad: spec.aggregationLengthV6: aggregation length 129 is longer than 128",
    ),
    (
        "aggregation shorter than the pool's block",
        "kind: IPAddressPool\nmetadata: {name: small}\nspec: {addresses: [10.0.0.0/28]}\n---\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {aggregationLength: 26}",
        r#"BGPAdvertisement/ad: spec.aggregationLength: aggregation length 26 is shorter than /28 of small entry "10.0.0.0/28""#,
    ),
    (
        "aggregation shorter than a range's widest block",
        "kind: IPAddressPool\nmetadata: {name: r}\nspec: {addresses: [10.0.0.1-10.0.0.10]}\n---\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {ipAddressPools: [r], aggregationLength: 29}",
        r#"BGPAdvertisement/ad: spec.aggregationLength: aggregation length 29 is shorter than /30 of r entry "10.0.0.1-10.0.0.10""#,
    ),
    (
        "serviceSelectors with aggregation",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {aggregationLength: 24, serviceSelectors: [{matchLabels: {a: b}}]}",
        "BGPAdvertisement/ad: spec.serviceSelectors: serviceSelectors can only be used with aggregationLength 32 and aggregationLengthV6 128",
    ),
    (
        "localPref differing on the same prefixes",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24]}\n---\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {localPref: 100}\n---\nkind: BGPAdvertisement\nmetadata: {name: b}\nspec: {localPref: 200}",
        r#"BGPAdvertisement/b: spec.localPref: localPref 200 conflicts with localPref 100 of BGPAdvertisement/a for pool "p" (no Nodes given"#,
    ),
    (
        "community part above 16 bits",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [\"65536:1\"]}",
        r#"BGPAdvertisement/ad: spec.communities[0]: invalid community value "65536:1""#,
    ),
    (
        "four-part community without large:",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [\"1:2:3:4\"]}",
        r#"BGPAdvertisement/ad: spec.communities[0]: invalid community value "1:2:3:4": a 4-part community must start with "large:""#,
    ),
    (
        "bad large community",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [\"large:1:2:x\"]}",
        r#"BGPAdvertisement/ad: spec.communities[0]: invalid large community value "large:1:2:x""#,
    ),
    (
        "large community with two parts",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [\"large:1:2\"]}",
        r#"BGPAdvertisement/ad: spec.communities[0]: invalid large community value "large:1:2": a large community is large:A:B:C"#,
    ),
    (
        "large community with two parts, even with an alias of that name",
        "kind: Community\nmetadata: {name: c}\nspec: {communities: [{name: x, value: \"1:1\"}]}\n---\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [x, \"large:1:2\"]}",
        r#"BGPAdvertisement/ad: spec.communities[1]: invalid large community value "large:1:2""#,
    ),
    (
        "alias named like a large community",
        "kind: Community\nmetadata: {name: a}\nspec: {communities: [{name: \"large:1:2\", value: \"1:1\"}]}",
        r#"Community/a: spec.communities[0].name: alias name "large:1:2" starts with "large:""#,
    ),
    (
        "community part with a sign",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [\"+1:2\"]}",
        r#"BGPAdvertisement/ad: spec.communities[0]: invalid community value "+1:2""#,
    ),
    (
        "duplicate communities",
        "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [\"1:1\", \"1:1\"]}",
        r#"BGPAdvertisement/ad: spec.communities[1]: duplicate value "1:1""#,
    ),
    (
        "alias defined twice",
        "kind: Community\nmetadata: {name: a}\nspec: {communities: [{name: x, value: \"1:1\"}]}\n---\nkind: Community\nmetadata: {name: b}\nspec: {communities: [{name: x, value: \"1:2\"}]}",
        r#"Community/b: spec.communities[0].name: alias "x" is already defined by Community/a"#,
    ),
    (
        "alias with a bad value",
        "kind: Community\nmetadata: {name: a}\nspec: {communities: [{name: x, value: nope}]}",
        r#"Community/a: spec.communities[0].value: "nope" is not a community value (A:B or large:A:B:C)"#,
    ),
    (
        "myASN zero",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 0, peerASN: 1, peerAddress: 10.0.0.1}",
        "BGPPeer/p: spec.myASN: 0 is out of range (1 to 4294967295)",
    ),
    (
        "peerASN and dynamicASN",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, dynamicASN: external, peerAddress: 10.0.0.1}",
        "BGPPeer/p: spec.dynamicASN: cannot be used together with spec.peerASN",
    ),
    (
        "neither peerASN nor dynamicASN",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerAddress: 10.0.0.1}",
        "BGPPeer/p: spec: exactly one of spec.peerASN and spec.dynamicASN must be set",
    ),
    (
        "address and interface",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, interface: eth0}",
        "BGPPeer/p: spec.interface: cannot be used together with spec.peerAddress",
    ),
    (
        "neither address nor interface",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2}",
        "BGPPeer/p: spec: exactly one of spec.peerAddress and spec.interface must be set",
    ),
    (
        "bad peer address",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0}",
        r#"BGPPeer/p: spec.peerAddress: "10.0.0" is not an IP address"#,
    ),
    (
        "bad source address",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, sourceAddress: nowhere}",
        r#"BGPPeer/p: spec.sourceAddress: "nowhere" is not an IP address"#,
    ),
    (
        "IPv6 router ID",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, routerID: \"2001:db8::1\"}",
        r#"BGPPeer/p: spec.routerID: "2001:db8::1" is not an IPv4 address"#,
    ),
    (
        "multihop on iBGP",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 1, peerAddress: 10.0.0.1, ebgpMultiHop: true}",
        "BGPPeer/p: spec.ebgpMultiHop: ebgpMultiHop cannot be set for an iBGP peer (peerASN equals myASN)",
    ),
    (
        "password and passwordSecret",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, password: x, passwordSecret: {name: s}}",
        "BGPPeer/p: spec.passwordSecret: cannot be used together with spec.password",
    ),
    (
        "secret of the wrong type",
        "kind: Secret\napiVersion: v1\nmetadata: {name: s}\ntype: Opaque\nstringData: {password: x}\n---\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, passwordSecret: {name: s}}",
        r#"BGPPeer/p: spec.passwordSecret: secret "s" has type "Opaque", expected "kubernetes.io/basic-auth""#,
    ),
    (
        "secret without a password key",
        "kind: Secret\napiVersion: v1\nmetadata: {name: s}\ntype: kubernetes.io/basic-auth\nstringData: {username: x}\n---\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, passwordSecret: {name: s}}",
        r#"BGPPeer/p: spec.passwordSecret: secret "s" has no "password" key"#,
    ),
    (
        "hold time of 2s",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 2s}",
        r#"BGPPeer/p: spec.holdTime: hold time "2s" must be 0 or at least 3s"#,
    ),
    (
        "keepalive above hold",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 30s, keepaliveTime: 40s}",
        r#"BGPPeer/p: spec.keepaliveTime: keepalive time "40s" must not exceed hold time "30s""#,
    ),
    (
        "derived hold time too short",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, keepaliveTime: 500ms}",
        r#"BGPPeer/p: spec.holdTime: hold time "1.5s" must be 0 or at least 3s"#,
    ),
    (
        "unparseable duration",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: ninety}",
        r#"BGPPeer/p: spec.holdTime: invalid duration "ninety""#,
    ),
    (
        "connect time not whole seconds",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, connectTime: 1500ms}",
        r#"BGPPeer/p: spec.connectTime: connect time "1.5s" must be a whole number of seconds from 1 to 65535"#,
    ),
    (
        "connect time too long",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, connectTime: 20h}",
        r#"BGPPeer/p: spec.connectTime: connect time "72000s" must be a whole number of seconds from 1 to 65535"#,
    ),
    (
        "port out of range",
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, peerPort: 20000}",
        "BGPPeer/p: spec.peerPort: 20000 is out of range (1 to 16384)",
    ),
    (
        "same neighbour twice",
        "kind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1}\n---\nkind: BGPPeer\nmetadata: {name: b}\nspec: {myASN: 1, peerASN: 3, peerAddress: 10.0.0.1}",
        "BGPPeer/b: spec.peerAddress: peers the same neighbour as BGPPeer/a (10.0.0.1) on nodes they both select",
    ),
    (
        "BFD intervals out of range",
        "kind: BFDProfile\nmetadata: {name: b}\nspec: {receiveInterval: 5}",
        "BFDProfile/b: spec.receiveInterval: 5 is out of range (10 to 60000)",
    ),
    (
        "BFD multiplier out of range",
        "kind: BFDProfile\nmetadata: {name: b}\nspec: {detectMultiplier: 1}",
        "BFDProfile/b: spec.detectMultiplier: 1 is out of range (2 to 255)",
    ),
    (
        "BFD minimum TTL out of range",
        "kind: BFDProfile\nmetadata: {name: b}\nspec: {minimumTtl: 255}",
        "BFDProfile/b: spec.minimumTtl: 255 is out of range (1 to 254)",
    ),
    (
        "BFD echo mode (FerroLB runs no echo function; MetalLB's FRR mode has one)",
        "kind: BFDProfile\nmetadata: {name: echo}\nspec: {echoMode: true}",
        "BFDProfile/echo: spec.echoMode: echo mode is not supported by FerroLB's BFD",
    ),
    (
        "a field of the wrong type",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: 5}",
        "IPAddressPool/p: spec.addresses: invalid type: integer `5`, expected a sequence",
    ),
    (
        "a misspelt field",
        "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24], autoassign: false}",
        "IPAddressPool/p: spec.autoassign: unknown field",
    ),
    (
        "no name",
        "kind: IPAddressPool\nmetadata: {}\nspec: {addresses: [10.0.0.0/24]}",
        "IPAddressPool/<unnamed>: metadata.name: required",
    ),
];

/// MetalLB's CRDs all live in metallb.io; the tables above leave apiVersion out for brevity.
fn with_api_versions(yaml: &str) -> String {
    yaml.split("---\n")
        .map(|doc| {
            if doc.contains("apiVersion:") {
                doc.to_owned()
            } else if doc.contains("kind: BGPPeer") {
                format!("apiVersion: metallb.io/v1beta2\n{doc}")
            } else {
                format!("apiVersion: metallb.io/v1beta1\n{doc}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn documented_invalid_cases_are_refused_naming_kind_object_and_field() {
    for (case, yaml, expected) in INVALID {
        let outcome = check(&with_api_versions(yaml));
        assert!(
            outcome.errors.iter().any(|line| line.starts_with(expected)),
            "{case}: expected a line starting with\n  {expected}\ngot\n  {:#?}",
            outcome.errors
        );
    }
}

#[test]
fn references_that_may_appear_later_are_warnings_not_errors() {
    let cases = [
        (
            "kind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, bfdProfile: later}",
            r#"BGPPeer/p: spec.bfdProfile: BFDProfile "later" does not exist"#,
        ),
        (
            "kind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [my-alias]}",
            r#"BGPAdvertisement/ad: spec.communities[0]: "my-alias" is neither a community value"#,
        ),
        (
            "kind: Secret\napiVersion: v1\nmetadata: {name: other}\ntype: kubernetes.io/basic-auth\n---\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, passwordSecret: {name: s}}",
            r#"BGPPeer/p: spec.passwordSecret: Secret "s" does not exist"#,
        ),
    ];
    for (yaml, expected) in cases {
        let outcome = check(&with_api_versions(yaml));
        assert!(
            outcome.errors.is_empty(),
            "{expected}: {:?}",
            outcome.errors
        );
        assert!(
            outcome.warnings.iter().any(|w| w.starts_with(expected)),
            "{expected}: {:?}",
            outcome.warnings
        );
    }
}

#[test]
fn a_bad_object_is_left_out_without_taking_good_ones_with_it() {
    let outcome = check(&with_api_versions(
        "kind: IPAddressPool\nmetadata: {name: good, creationTimestamp: \"2026-01-01T00:00:00Z\"}\nspec: {addresses: [10.0.0.0/24]}\n---\nkind: IPAddressPool\nmetadata: {name: bad}\nspec: {addresses: [10.0.1.5-10.0.1.1]}\n---\nkind: IPAddressPool\nmetadata: {name: clash, creationTimestamp: \"2026-02-01T00:00:00Z\"}\nspec: {addresses: [10.0.0.128/25]}\n---\nkind: L2Advertisement\nmetadata: {name: all}",
    ));
    let config = outcome.built.config;
    assert_eq!(config.pools.keys().collect::<Vec<_>>(), ["good"]);
    assert_eq!(
        config.l2_advertisements[0].pools.iter().collect::<Vec<_>>(),
        ["good"]
    );
    assert_eq!(outcome.errors.len(), 2, "{:?}", outcome.errors);
}

#[test]
fn in_an_overlap_the_older_pool_wins_whatever_the_names() {
    let pool = |name: &str, created: &str, addresses: &str| {
        format!(
            "kind: IPAddressPool\nmetadata: {{name: {name}, creationTimestamp: \"{created}\"}}\nspec: {{addresses: [{addresses}]}}"
        )
    };
    let yaml = with_api_versions(
        &[
            pool("zzz-old", "2026-01-01T00:00:00Z", "10.0.0.0/24"),
            pool("aaa-new", "2026-06-01T00:00:00Z", "10.0.0.0/25"),
        ]
        .join("\n---\n"),
    );
    let outcome = check(&yaml);
    assert_eq!(
        outcome.built.config.pools.keys().collect::<Vec<_>>(),
        ["zzz-old"]
    );
    assert!(
        outcome.errors[0].starts_with("IPAddressPool/aaa-new:"),
        "{:?}",
        outcome.errors
    );
}

#[test]
fn local_pref_may_differ_when_nodes_show_the_advertisements_never_meet() {
    let base = "kind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24]}\n---\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {localPref: 100, nodeSelectors: [{matchLabels: {rack: a}}]}\n---\nkind: BGPAdvertisement\nmetadata: {name: b}\nspec: {localPref: 200, nodeSelectors: [{matchLabels: {rack: b}}]}";
    let node = |name: &str, rack: &str| {
        format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{rack: {rack}}}}}")
    };
    let disjoint = with_api_versions(&format!(
        "{base}\n---\n{}\n---\n{}",
        node("n1", "a"),
        node("n2", "b")
    ));
    assert!(
        check(&disjoint).errors.is_empty(),
        "{:?}",
        check(&disjoint).errors
    );
    let without_nodes = with_api_versions(base);
    assert_eq!(check(&without_nodes).errors.len(), 1);
    let disjoint_peers = with_api_versions(
        &base
            .replace(
                "nodeSelectors: [{matchLabels: {rack: a}}]",
                "peers: [peer-x]",
            )
            .replace(
                "nodeSelectors: [{matchLabels: {rack: b}}]",
                "peers: [peer-y]",
            ),
    );
    assert!(check(&disjoint_peers).errors.is_empty());
}

#[test]
fn the_same_neighbour_from_disjoint_node_sets_is_allowed() {
    let yaml = "kind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, nodeSelectors: [{matchLabels: {rack: a}}]}\n---\nkind: BGPPeer\nmetadata: {name: b}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, nodeSelectors: [{matchLabels: {rack: b}}]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: a}}";
    let outcome = check(&with_api_versions(yaml));
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.built.config.peers.len(), 2);
}

/// The FerroLB objects of a manifest table entry.
fn objects(yaml: &str) -> config::Objects {
    let parsed: Vec<manifest::Object> = manifest::parse(with_api_versions(yaml).as_bytes())
        .expect("yaml")
        .into_iter()
        .filter_map(|d| match d {
            Document::Object { object, .. } => Some(*object),
            _ => None,
        })
        .collect();
    manifest::collect(&parsed)
}

#[test]
fn a_bad_edit_keeps_the_last_valid_version_of_the_object() {
    let good = objects(
        "kind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.0/24]}\n---\nkind: L2Advertisement\nmetadata: {name: l2}",
    );
    let (built, last_good) = config::build_keeping_last_good(&good, &config::Objects::default());
    assert!(built.problems.is_empty());
    assert_eq!(last_good.pools.len(), 1);

    let broken = objects(
        "kind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.9-192.0.2.1]}\n---\nkind: L2Advertisement\nmetadata: {name: l2}",
    );
    let (built, still_good) = config::build_keeping_last_good(&broken, &last_good);
    assert_eq!(
        built.config.pools["a"].ranges[0].to_string(),
        "192.0.2.0-192.0.2.255",
        "the old range stays"
    );
    assert_eq!(
        built.kept_last_good,
        [(ferrolb_api::error::Kind::IPAddressPool, "a".to_owned())]
    );
    assert!(
        built.problems[0]
            .to_string()
            .contains("range end before start"),
        "{:?}",
        built.problems
    );
    assert_eq!(still_good.pools[0].spec.addresses, ["192.0.2.0/24"]);

    let never_valid =
        objects("kind: IPAddressPool\nmetadata: {name: new}\nspec: {addresses: [nonsense]}");
    let (built, _) = config::build_keeping_last_good(&never_valid, &last_good);
    assert!(
        built.config.pools.is_empty(),
        "an object that never was valid has nothing to keep"
    );
}

#[test]
fn a_kept_version_that_clashes_with_the_others_is_left_out_too() {
    let (_, last_good) = config::build_keeping_last_good(
        &objects(
            "kind: IPAddressPool\nmetadata: {name: a, creationTimestamp: \"2026-02-01T00:00:00Z\"}\nspec: {addresses: [192.0.2.0/24]}",
        ),
        &config::Objects::default(),
    );
    // `a` breaks while an older pool now holds its old range: nothing valid is left for `a`.
    let now = objects(
        "kind: IPAddressPool\nmetadata: {name: a, creationTimestamp: \"2026-02-01T00:00:00Z\"}\nspec: {addresses: [bad]}\n---\nkind: IPAddressPool\nmetadata: {name: b, creationTimestamp: \"2026-01-01T00:00:00Z\"}\nspec: {addresses: [192.0.2.0/25]}",
    );
    let (built, next) = config::build_keeping_last_good(&now, &last_good);
    assert_eq!(built.config.pools.keys().collect::<Vec<_>>(), ["b"]);
    assert!(built.kept_last_good.is_empty());
    assert_eq!(next.pools.len(), 1);
}

#[test]
fn a_new_pool_created_in_the_same_second_as_an_accepted_one_is_the_one_refused() {
    // creationTimestamp has one-second resolution: an accepted pool `l2` and a clashing
    // `clash` created within the same second tie on age, and `clash` sorts first by name.
    let accepted = "kind: IPAddressPool\nmetadata: {name: l2, creationTimestamp: \"2026-02-01T00:00:00Z\"}\nspec: {addresses: [192.0.2.192/26]}";
    let (_, last_good) =
        config::build_keeping_last_good(&objects(accepted), &config::Objects::default());
    let both = format!(
        "{accepted}\n---\nkind: IPAddressPool\nmetadata: {{name: clash, creationTimestamp: \"2026-02-01T00:00:00Z\"}}\nspec: {{addresses: [192.0.2.192/27]}}"
    );
    let (built, still_good) = config::build_keeping_last_good(&objects(&both), &last_good);
    assert!(
        built.config.pools.contains_key("l2"),
        "the accepted pool keeps its addresses: {:?}",
        built.problems
    );
    assert!(!built.config.pools.contains_key("clash"));
    assert!(
        built.problems.iter().all(|p| p.name == "clash"),
        "only the new pool is blamed: {:?}",
        built.problems
    );
    assert_eq!(still_good.pools.len(), 1);
    assert_eq!(still_good.pools[0].metadata.name.as_deref(), Some("l2"));
}
