//! What the controller wants one Service to look like: its ingress IPs, the pool annotation and
//! the Events that explain the change. Pure: the reconciler feeds in the Service and the
//! allocator, then patches status and records Events only where the plan differs from the object.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use ferrolb_api::selector::Labels;
use ferrolb_api::service::{self, IP_ALLOCATED_FROM_POOL, ServiceError};
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::alloc::{AllocError, Allocator, Change, Outcome, Requester, ServiceRequest};
use crate::view::{Served, ServiceView};

/// Severity of a Kubernetes Event, as `type` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something worked.
    Normal,
    /// Something the user should look at.
    Warning,
}

/// An Event to record on the Service, with MetalLB's reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// MetalLB's reason (`IPAllocated`, `AllocationFailed`...).
    pub reason: &'static str,
    /// What happened, for `kubectl describe`.
    pub message: String,
}

impl PlannedEvent {
    fn normal(reason: &'static str, message: String) -> Self {
        PlannedEvent {
            type_: EventType::Normal,
            reason,
            message,
        }
    }

    fn warning(reason: &'static str, message: String) -> Self {
        PlannedEvent {
            type_: EventType::Warning,
            reason,
            message,
        }
    }
}

/// The Service as the controller wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Not ours (another `loadBalancerClass`): never touched.
    Ignore,
    /// Ours: these ingress IPs (empty to clear) and this pool annotation.
    Set {
        /// `status.loadBalancer.ingress[*].ip`, in order.
        ips: Vec<IpAddr>,
        /// Value of `metallb.io/ip-allocated-from-pool`; `None` removes it.
        pool: Option<String>,
        /// Events to record.
        events: Vec<PlannedEvent>,
    },
}

/// `namespace/name`: how the allocator and the reconciler name a Service.
pub fn service_key(service: &Service) -> String {
    ferrolb_api::key::of(&service.metadata)
}

/// The IPs a Service's status shows now.
pub fn current_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ingress| {
            ingress
                .ip
                .as_deref()
                .and_then(|ip| IpAddr::from_str(ip).ok())
        })
        .collect()
}

/// The pool annotation a Service carries now.
pub fn current_pool(service: &Service) -> Option<String> {
    service
        .annotations()
        .get(&service::annotation_key(IP_ALLOCATED_FROM_POOL))
        .cloned()
}

fn ip_list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plans one Service, updating the allocator.
pub fn plan(view: &ServiceView, namespace_labels: &Labels, allocator: &mut Allocator) -> Plan {
    let key = &view.key;
    let (request, labels) = match &view.served {
        Served::OtherClass => return Plan::Ignore,
        Served::NotLoadBalancer => {
            allocator.release(key);
            return Plan::Set {
                ips: Vec::new(),
                pool: None,
                events: Vec::new(),
            };
        }
        Served::Ours { request, labels } => (request, labels),
    };
    let mut events = Vec::new();
    let request = match request {
        Ok(request) => request,
        Err(error) => return keep_after_bad_request(key, error, allocator),
    };
    if !request.legacy_annotations.is_empty() {
        events.push(PlannedEvent::warning(
            "deprecatedAnnotation",
            format!(
                "annotations under metallb.universe.tf/ are deprecated, use metallb.io/{}",
                request.legacy_annotations.join(", metallb.io/")
            ),
        ));
    }
    let (namespace, _) = view.namespace_and_name();
    let outcome = allocator.assign(&ServiceRequest {
        key,
        requester: Requester {
            namespace,
            namespace_labels,
            labels,
        },
        request,
    });
    match outcome {
        Ok(outcome) => allocated(outcome, events),
        Err(error) => refused(key, &error, allocator, events),
    }
}

fn assigned_event(outcome: &Outcome) -> PlannedEvent {
    PlannedEvent::normal(
        "IPAllocated",
        format!(
            "Assigned IP [{}] from pool {}",
            ip_list(&outcome.ips),
            outcome.pool
        ),
    )
}

/// The plan for a Service the allocator served, with the Events that explain any change.
fn allocated(outcome: Outcome, mut events: Vec<PlannedEvent>) -> Plan {
    match &outcome.change {
        Change::Kept => {}
        Change::Allocated | Change::Extended => events.push(assigned_event(&outcome)),
        Change::Replaced { cleared, why } => {
            events.push(PlannedEvent::normal(
                "ClearAssignment",
                format!("current IP [{}] not allowed: {why}", ip_list(cleared)),
            ));
            events.push(assigned_event(&outcome));
        }
    }
    if let Some(family) = outcome.missing_family
        && outcome.change != Change::Kept
    {
        events.push(PlannedEvent::normal(
            "AdditionalAssignFailed",
            format!(
                "no {family} address available in pool {}; the service has one family only",
                outcome.pool
            ),
        ));
    }
    Plan::Set {
        ips: outcome.ips,
        pool: Some(outcome.pool),
        events,
    }
}

/// The plan for a Service the allocator refused: it loses what it held, and the Events say why.
fn refused(
    key: &str,
    error: &AllocError,
    allocator: &mut Allocator,
    mut events: Vec<PlannedEvent>,
) -> Plan {
    let cleared = allocator.release(key).unwrap_or_default();
    if !cleared.is_empty() {
        events.push(PlannedEvent::normal(
            "ClearAssignment",
            format!("current IP [{}] not allowed: {error}", ip_list(&cleared)),
        ));
    }
    events.push(PlannedEvent::warning(
        "AllocationFailed",
        format!("Failed to allocate IP for \"{key}\": {error}"),
    ));
    Plan::Set {
        ips: Vec::new(),
        pool: None,
        events,
    }
}

/// A request that cannot be read keeps what the Service holds: a typo in an annotation must not
/// take a working IP away.
fn keep_after_bad_request(key: &str, error: &ServiceError, allocator: &Allocator) -> Plan {
    let event = PlannedEvent::warning(error.reason(), format!("{error}"));
    match allocator.assigned(key) {
        Some((pool, ips)) => Plan::Set {
            ips: ips.to_vec(),
            pool: Some(pool.to_owned()),
            events: vec![event],
        },
        None => Plan::Set {
            ips: Vec::new(),
            pool: None,
            events: vec![event],
        },
    }
}

/// Rebuilds the allocator from what Service statuses already show, before anything is
/// allocated: Services with the most IPs first (MetalLB's order), so that a restart never moves
/// an IP. Returns the keys of Services whose IPs could not be restored; they are planned normally.
pub fn rebuild<'a>(
    services: impl IntoIterator<Item = &'a ServiceView>,
    namespace_labels: &BTreeMap<String, Labels>,
    allocator: &mut Allocator,
) -> Vec<String> {
    let empty = Labels::new();
    let mut held: Vec<&ServiceView> = services
        .into_iter()
        .filter(|v| matches!(v.served, Served::Ours { .. }) && !v.ips.is_empty())
        .collect();
    held.sort_by_key(|v| (std::cmp::Reverse(v.ips.len()), v.namespace_and_name()));
    let mut failed = Vec::new();
    for view in held {
        let Served::Ours {
            request: Ok(request),
            labels,
        } = &view.served
        else {
            failed.push(view.key.clone());
            continue;
        };
        let (namespace, _) = view.namespace_and_name();
        let requester = Requester {
            namespace,
            namespace_labels: namespace_labels.get(namespace).unwrap_or(&empty),
            labels,
        };
        let service = ServiceRequest {
            key: &view.key,
            requester,
            request,
        };
        if allocator.restore(&service, &view.ips).is_err() {
            failed.push(view.key.clone());
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    use super::*;

    fn pools(entries: &[(&str, &str)]) -> BTreeMap<String, ferrolb_api::config::Pool> {
        entries
            .iter()
            .map(|(name, range)| {
                let pool = ferrolb_api::config::Pool {
                    name: (*name).to_owned(),
                    labels: Labels::new(),
                    ranges: vec![range.parse().expect("range")],
                    auto_assign: true,
                    avoid_buggy_ips: false,
                    allocation: None,
                };
                ((*name).to_owned(), pool)
            })
            .collect()
    }

    fn lb(name: &str, annotations: &[(&str, &str)], ingress: &[&str]) -> Service {
        let mut svc = Service::default();
        svc.metadata.name = Some(name.into());
        svc.metadata.namespace = Some("default".into());
        svc.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        );
        svc.spec = Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ip: Some("10.96.0.10".into()),
            cluster_ips: Some(vec!["10.96.0.10".into()]),
            ..Default::default()
        });
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ingress
                        .iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some((*ip).into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        svc
    }

    fn view(service: &Service) -> ServiceView {
        ServiceView::of(service, None)
    }

    fn ips(plan: &Plan) -> Vec<String> {
        match plan {
            Plan::Set { ips, .. } => ips.iter().map(ToString::to_string).collect(),
            Plan::Ignore => panic!("ignored"),
        }
    }

    fn reasons(plan: &Plan) -> Vec<&'static str> {
        match plan {
            Plan::Set { events, .. } => events.iter().map(|e| e.reason).collect(),
            Plan::Ignore => Vec::new(),
        }
    }

    #[test]
    fn a_new_service_gets_an_ip_with_an_ip_allocated_event() {
        let mut allocator = Allocator::new(&pools(&[("lab", "192.0.2.0/30")]));
        let plan = plan(&view(&lb("web", &[], &[])), &Labels::new(), &mut allocator);
        assert_eq!(ips(&plan), ["192.0.2.0"]);
        assert_eq!(reasons(&plan), ["IPAllocated"]);
        let Plan::Set { pool, events, .. } = plan else {
            panic!("set")
        };
        assert_eq!(pool.as_deref(), Some("lab"));
        assert_eq!(events[0].message, "Assigned IP [192.0.2.0] from pool lab");
    }

    #[test]
    fn services_of_another_class_are_never_touched() {
        let mut allocator = Allocator::new(&pools(&[("lab", "192.0.2.0/30")]));
        let mut svc = lb("other", &[], &["203.0.113.7"]);
        if let Some(spec) = svc.spec.as_mut() {
            spec.load_balancer_class = Some("vendor.example/lb".into());
        }
        assert_eq!(
            plan(&view(&svc), &Labels::new(), &mut allocator),
            Plan::Ignore
        );
    }

    #[test]
    fn a_service_that_stops_being_a_load_balancer_is_cleared() {
        let mut allocator = Allocator::new(&pools(&[("lab", "192.0.2.0/30")]));
        let mut svc = lb("web", &[], &[]);
        plan(&view(&svc), &Labels::new(), &mut allocator);
        if let Some(spec) = svc.spec.as_mut() {
            spec.type_ = Some("ClusterIP".into());
        }
        assert_eq!(
            plan(&view(&svc), &Labels::new(), &mut allocator),
            Plan::Set {
                ips: vec![],
                pool: None,
                events: vec![]
            }
        );
        assert_eq!(allocator.service_count(), 0);
    }

    #[test]
    fn exhaustion_is_a_warning_that_names_the_service() {
        let mut allocator = Allocator::new(&pools(&[("lab", "192.0.2.0/32")]));
        plan(&view(&lb("a", &[], &[])), &Labels::new(), &mut allocator);
        let plan = plan(&view(&lb("b", &[], &[])), &Labels::new(), &mut allocator);
        let Plan::Set { events, ips, .. } = plan else {
            panic!("set")
        };
        assert!(ips.is_empty());
        assert_eq!(
            (events[0].type_, events[0].reason),
            (EventType::Warning, "AllocationFailed")
        );
        assert_eq!(
            events[0].message,
            "Failed to allocate IP for \"default/b\": no available IPs for IPv4"
        );
    }

    #[test]
    fn a_bad_annotation_keeps_the_ip_the_service_holds() {
        let mut allocator = Allocator::new(&pools(&[("lab", "192.0.2.0/30")]));
        plan(&view(&lb("web", &[], &[])), &Labels::new(), &mut allocator);
        let broken = lb(
            "web",
            &[("metallb.io/loadBalancerIPs", "not-an-ip")],
            &["192.0.2.0"],
        );
        let plan = plan(&view(&broken), &Labels::new(), &mut allocator);
        assert_eq!(ips(&plan), ["192.0.2.0"]);
        assert_eq!(reasons(&plan), ["LoadBalancerFailed"]);
    }

    #[test]
    fn a_replaced_ip_is_explained_before_the_new_one_is_announced() {
        let mut allocator =
            Allocator::new(&pools(&[("a", "192.0.2.0/30"), ("b", "198.51.100.0/30")]));
        plan(
            &view(&lb("web", &[("metallb.io/address-pool", "a")], &[])),
            &Labels::new(),
            &mut allocator,
        );
        let moved = plan(
            &view(&lb(
                "web",
                &[("metallb.io/address-pool", "b")],
                &["192.0.2.0"],
            )),
            &Labels::new(),
            &mut allocator,
        );
        assert_eq!(ips(&moved), ["198.51.100.0"]);
        assert_eq!(reasons(&moved), ["ClearAssignment", "IPAllocated"]);
    }

    #[test]
    fn legacy_annotations_work_with_a_deprecation_warning() {
        let mut allocator =
            Allocator::new(&pools(&[("a", "192.0.2.0/30"), ("b", "198.51.100.0/30")]));
        let plan = plan(
            &view(&lb(
                "web",
                &[("metallb.universe.tf/address-pool", "b")],
                &[],
            )),
            &Labels::new(),
            &mut allocator,
        );
        assert_eq!(ips(&plan), ["198.51.100.0"]);
        assert_eq!(reasons(&plan), ["deprecatedAnnotation", "IPAllocated"]);
    }

    #[test]
    fn a_rebuild_keeps_every_ip_and_serves_the_most_ips_first() {
        let config = pools(&[("lab", "192.0.2.0/30")]);
        let mut allocator = Allocator::new(&config);
        let shared_a = lb("a", &[("metallb.io/allow-shared-ip", "k")], &["192.0.2.2"]);
        let plain = lb("b", &[], &["192.0.2.3"]);
        let outside = lb("c", &[], &["203.0.113.9"]);
        let views = [view(&shared_a), view(&plain), view(&outside)];
        let failed = rebuild(&views, &BTreeMap::new(), &mut allocator);
        assert_eq!(failed, ["default/c"]);
        assert_eq!(
            ips(&plan(&view(&plain), &Labels::new(), &mut allocator)),
            ["192.0.2.3"]
        );
        assert_eq!(
            reasons(&plan(&view(&shared_a), &Labels::new(), &mut allocator)),
            Vec::<&str>::new()
        );
        assert_eq!(
            ips(&plan(
                &view(&lb("d", &[], &[])),
                &Labels::new(),
                &mut allocator
            )),
            ["192.0.2.0"]
        );
    }
}
