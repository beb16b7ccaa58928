//! Allocator scale: 100k Services over 1k pools (IPv4, IPv6 and dual-stack), then a rebuild of
//! the same assignments as after a controller restart. Prints figures; run with
//! `cargo bench -p ferrolb-controller --bench alloc`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use ferrolb_api::addr::{Family, IpRange};
use ferrolb_api::config::Pool;
use ferrolb_api::selector::Labels;
use ferrolb_api::service::{FamilyPolicy, LoadBalancerRequest, Protocol, ServicePort};
use ferrolb_controller::alloc::{Allocator, Requester, ServiceRequest};

const SERVICES: usize = 100_000;

fn pools() -> BTreeMap<String, Pool> {
    let mut pools = BTreeMap::new();
    for i in 0..1000u32 {
        let (a, b) = (10 + i / 256, i % 256);
        let entries: Vec<String> = match i % 5 {
            0..=2 => vec![format!("{a}.{b}.0.0/24")],
            3 => vec![format!("2001:db8:{i:x}::/64")],
            _ => vec![format!("{a}.{b}.0.0/25"), format!("2001:db8:{i:x}::/64")],
        };
        let name = format!("pool-{i:04}");
        pools.insert(
            name.clone(),
            Pool {
                name,
                labels: Labels::new(),
                ranges: entries
                    .iter()
                    .map(|e| e.parse::<IpRange>().expect("range"))
                    .collect(),
                auto_assign: true,
                avoid_buggy_ips: i % 7 == 0,
                allocation: None,
            },
        );
    }
    pools
}

fn request(i: usize) -> LoadBalancerRequest {
    let (families, family_policy) = match i % 5 {
        0..=2 => (vec![Family::V4], FamilyPolicy::SingleStack),
        3 => (vec![Family::V6], FamilyPolicy::SingleStack),
        _ => (vec![Family::V4, Family::V6], FamilyPolicy::RequireDualStack),
    };
    LoadBalancerRequest {
        requested_ips: Vec::new(),
        address_pool: None,
        sharing_key: None,
        families,
        family_policy,
        ports: vec![ServicePort {
            protocol: Protocol::Tcp,
            port: 443,
        }],
        backend_key: String::new(),
        traffic_policy_local: false,
        legacy_annotations: Vec::new(),
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let pools = pools();
    let labels = Labels::new();
    let keys: Vec<String> = (0..SERVICES)
        .map(|i| format!("ns-{}/svc-{i}", i % 100))
        .collect();
    let namespaces: Vec<String> = (0..100).map(|n| format!("ns-{n}")).collect();
    let requests: Vec<LoadBalancerRequest> = (0..SERVICES).map(request).collect();
    let service = |i: usize| ServiceRequest {
        key: &keys[i],
        requester: Requester {
            namespace: &namespaces[i % 100],
            namespace_labels: &labels,
            labels: &labels,
        },
        request: &requests[i],
    };

    let rss_inputs = status_kib("VmRSS:");
    let mut allocator = Allocator::new(&pools);
    let started = Instant::now();
    let mut failed = 0;
    for i in 0..SERVICES {
        if allocator.assign(&service(i)).is_err() {
            failed += 1;
        }
    }
    let allocate = started.elapsed();
    assert_eq!(failed, 0, "every Service must get its addresses");
    let rss_one = status_kib("VmRSS:");

    let mut held: Vec<(usize, Vec<IpAddr>)> = (0..SERVICES)
        .map(|i| (i, allocator.assigned(&keys[i]).expect("held").1.to_vec()))
        .collect();
    held.sort_by_key(|(i, ips)| (std::cmp::Reverse(ips.len()), *i));
    let started = Instant::now();
    let mut rebuilt = Allocator::new(&pools);
    for (i, ips) in &held {
        rebuilt.restore(&service(*i), ips).expect("restore");
    }
    let rebuild = started.elapsed();
    let assigned: usize = held.iter().map(|(_, ips)| ips.len()).sum();
    black_box(&rebuilt);

    println!(
        "alloc: {SERVICES} services over {} pools ({assigned} IPs, 60% v4 / 20% v6 / 20% dual)",
        pools.len()
    );
    println!(
        "alloc: allocate   {:>8.3} s  ({:.2} µs/service, target < 1 s)",
        allocate.as_secs_f64(),
        allocate.as_secs_f64() * 1e6 / SERVICES as f64
    );
    println!(
        "alloc: rebuild    {:>8.3} s  ({:.2} µs/service, target < 0.5 s)",
        rebuild.as_secs_f64(),
        rebuild.as_secs_f64() * 1e6 / SERVICES as f64
    );
    println!(
        "alloc: memory     {:>8} KiB for one allocator holding {SERVICES} services (RSS {rss_inputs} KiB before, {rss_one} KiB after; peak {} KiB with two live)",
        rss_one.saturating_sub(rss_inputs),
        status_kib("VmHWM:")
    );
}
