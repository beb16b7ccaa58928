//! What FerroLB reads from a `Service`: the one place that knows the annotation names (`metallb.io/`
//! and the legacy `metallb.universe.tf/`), `spec.loadBalancerIP`, `loadBalancerClass`, IP families,
//! ports and the sharing rules' backend key. No I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use crate::addr::Family;

/// Prefix of FerroLB's (and MetalLB's) annotations.
pub const ANNOTATION_PREFIX: &str = "metallb.io/";
/// Prefix MetalLB used before 0.13; still honoured, with a deprecation warning.
pub const LEGACY_ANNOTATION_PREFIX: &str = "metallb.universe.tf/";

/// Requested IPs, comma separated: one, or one per family.
pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
/// Name of the pool to allocate from.
pub const ADDRESS_POOL: &str = "address-pool";
/// Sharing key: Services with the same key may share an IP.
pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";
/// Written by the controller: the pool the IPs came from.
pub const IP_ALLOCATED_FROM_POOL: &str = "ip-allocated-from-pool";

/// The full `metallb.io/` name of an annotation.
pub fn annotation_key(name: &str) -> String {
    format!("{ANNOTATION_PREFIX}{name}")
}

/// Looks an annotation up under both prefixes; `metallb.io/` wins. The flag says the legacy name
/// was the one used, so callers can warn.
fn annotation<'a>(
    annotations: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<(&'a str, bool)> {
    if let Some(value) = annotations.get(&annotation_key(name)) {
        return Some((value, false));
    }
    annotations
        .get(&format!("{LEGACY_ANNOTATION_PREFIX}{name}"))
        .map(|v| (v.as_str(), true))
}

/// The Service's `allow-shared-ip` key, when it has a non-empty one.
pub fn sharing_key(service: &Service) -> Option<&str> {
    let annotations = service.metadata.annotations.as_ref()?;
    annotation(annotations, ALLOW_SHARED_IP)
        .map(|(value, _)| value.trim())
        .filter(|value| !value.is_empty())
}

/// How many families a Service wants addresses for (`spec.ipFamilyPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyPolicy {
    /// One address, of the primary family.
    SingleStack,
    /// Both families if a pool has both, else the primary one.
    PreferDualStack,
    /// Both families from one pool, or nothing.
    RequireDualStack,
}

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One `(protocol, port)` of `spec.ports`: two Services sharing an IP must not both use one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: i32,
}

/// Everything the allocator and speaker need from a LoadBalancer Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerRequest {
    /// Addresses asked for (annotation or `spec.loadBalancerIP`); empty means any.
    pub requested_ips: Vec<IpAddr>,
    /// Pool asked for by name.
    pub address_pool: Option<String>,
    /// Sharing key; `None` means the IP is exclusive.
    pub sharing_key: Option<String>,
    /// Families in preference order (`spec.ipFamilies`, else from `spec.clusterIPs`).
    pub families: Vec<Family>,
    /// How many of `families` to fill.
    pub family_policy: FamilyPolicy,
    /// Ports, for the sharing check.
    pub ports: Vec<ServicePort>,
    /// Equal for Services whose traffic may land on the same backends: the sorted selector for
    /// `externalTrafficPolicy: Local`, empty for `Cluster`.
    pub backend_key: String,
    /// `externalTrafficPolicy: Local`: only nodes with a ready endpoint may announce.
    pub traffic_policy_local: bool,
    /// Legacy annotation names that were used (for a `deprecatedAnnotation` warning).
    pub legacy_annotations: Vec<&'static str>,
}

/// Why a Service's request cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A requested IP that does not parse.
    #[error("{field}: {value:?} is not an IP address")]
    InvalidIp {
        /// The annotation or spec field.
        field: String,
        /// The offending text.
        value: String,
    },
    /// Both the annotation and `spec.loadBalancerIP`.
    #[error("metallb.io/loadBalancerIPs and spec.loadBalancerIP cannot be used together")]
    ConflictingRequests,
    /// More than two requested IPs, or two of one family.
    #[error("{field}: at most one IP per family can be requested, got {value:?}")]
    TooManyIps {
        /// The annotation or spec field.
        field: String,
        /// The offending text.
        value: String,
    },
    /// A requested IP of a family the Service has no cluster IP of.
    #[error("requested IP {ip} is {family} but the service's clusterIPs have no {family} address")]
    FamilyMismatch {
        /// The requested address.
        ip: IpAddr,
        /// Its family.
        family: Family,
    },
    /// `RequireDualStack` with fewer than two cluster IPs.
    #[error("ipFamilyPolicy RequireDualStack needs two clusterIPs")]
    NotEnoughClusterIps,
}

impl ServiceError {
    /// Stable CamelCase reason, also used as the Kubernetes Event reason where MetalLB has one.
    pub fn reason(&self) -> &'static str {
        match self {
            ServiceError::InvalidIp { .. }
            | ServiceError::ConflictingRequests
            | ServiceError::TooManyIps { .. } => "LoadBalancerFailed",
            ServiceError::FamilyMismatch { .. } => "nolbIPsIPFamily",
            ServiceError::NotEnoughClusterIps => "not enough clusterips",
        }
    }
}

/// Whether a Service is a LoadBalancer that this FerroLB instance serves: type LoadBalancer and a
/// `loadBalancerClass` equal to `our_class` (both absent counts as equal).
pub fn is_served(service: &Service, our_class: Option<&str>) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.load_balancer_class.as_deref() == our_class
}

/// Reads the request of a LoadBalancer Service.
pub fn parse(service: &Service) -> Result<LoadBalancerRequest, ServiceError> {
    let empty = BTreeMap::new();
    let annotations = service.metadata.annotations.as_ref().unwrap_or(&empty);
    let spec = service.spec.clone().unwrap_or_default();
    let mut legacy_annotations = Vec::new();
    let mut lookup = |name: &'static str| {
        annotation(annotations, name).map(|(value, legacy)| {
            if legacy {
                legacy_annotations.push(name);
            }
            value.trim().to_owned()
        })
    };
    let ips_annotation = lookup(LOAD_BALANCER_IPS).filter(|v| !v.is_empty());
    let address_pool = lookup(ADDRESS_POOL).filter(|v| !v.is_empty());
    let sharing_key = lookup(ALLOW_SHARED_IP).filter(|v| !v.is_empty());

    let cluster_families = cluster_ip_families(&spec);
    let family_policy = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        _ => FamilyPolicy::SingleStack,
    };
    if family_policy == FamilyPolicy::RequireDualStack && cluster_families.len() < 2 {
        return Err(ServiceError::NotEnoughClusterIps);
    }
    let requested_ips = requested_ips(ips_annotation, &spec, &cluster_families)?;
    let traffic_policy_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let backend_key = if traffic_policy_local {
        spec.selector
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    Ok(LoadBalancerRequest {
        requested_ips,
        address_pool,
        sharing_key,
        families: declared_families(&spec).unwrap_or(cluster_families),
        family_policy,
        ports: ports(&spec),
        backend_key,
        traffic_policy_local,
        legacy_annotations,
    })
}

/// `spec.ipFamilies`, when set.
fn declared_families(spec: &ServiceSpec) -> Option<Vec<Family>> {
    let declared = spec.ip_families.as_deref().filter(|d| !d.is_empty())?;
    Some(
        declared
            .iter()
            .filter_map(|f| match f.as_str() {
                "IPv4" => Some(Family::V4),
                "IPv6" => Some(Family::V6),
                _ => None,
            })
            .collect(),
    )
}

/// The IPs asked for by annotation or `spec.loadBalancerIP` (not both), each of a family the
/// Service has a cluster IP of.
fn requested_ips(
    ips_annotation: Option<String>,
    spec: &ServiceSpec,
    cluster_families: &[Family],
) -> Result<Vec<IpAddr>, ServiceError> {
    let spec_ip = spec
        .load_balancer_ip
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let requested_ips = match (ips_annotation, spec_ip) {
        (Some(_), Some(_)) => return Err(ServiceError::ConflictingRequests),
        (Some(list), None) => parse_ip_list(&annotation_key(LOAD_BALANCER_IPS), &list)?,
        (None, Some(ip)) => parse_ip_list("spec.loadBalancerIP", ip)?,
        (None, None) => Vec::new(),
    };
    for ip in &requested_ips {
        let family = Family::of(*ip);
        if !cluster_families.is_empty() && !cluster_families.contains(&family) {
            return Err(ServiceError::FamilyMismatch { ip: *ip, family });
        }
    }
    Ok(requested_ips)
}

fn ports(spec: &ServiceSpec) -> Vec<ServicePort> {
    spec.ports
        .iter()
        .flatten()
        .map(|p| ServicePort {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            },
            port: p.port,
        })
        .collect()
}

fn cluster_ip_families(spec: &ServiceSpec) -> Vec<Family> {
    let ips = spec
        .cluster_ips
        .clone()
        .unwrap_or_else(|| spec.cluster_ip.iter().cloned().collect());
    ips.iter()
        .filter_map(|ip| IpAddr::from_str(ip).ok())
        .map(Family::of)
        .collect()
}

/// `a`, or `a,b` with one address per family; whitespace around entries is ignored.
fn parse_ip_list(field: &str, list: &str) -> Result<Vec<IpAddr>, ServiceError> {
    let ips = list
        .split(',')
        .map(str::trim)
        .map(|value| {
            IpAddr::from_str(value).map_err(|_| ServiceError::InvalidIp {
                field: field.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let too_many = ips.len() > 2 || (ips.len() == 2 && Family::of(ips[0]) == Family::of(ips[1]));
    if too_many {
        return Err(ServiceError::TooManyIps {
            field: field.to_owned(),
            value: list.to_owned(),
        });
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort as K8sPort, ServiceSpec};

    fn service(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
        let mut svc = Service::default();
        svc.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        svc.spec = Some(spec);
        svc
    }

    fn lb_spec(cluster_ips: &[&str]) -> ServiceSpec {
        ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ips: Some(cluster_ips.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn new_annotation_wins_over_the_legacy_one() {
        let svc = service(
            &[
                ("metallb.io/address-pool", "new"),
                ("metallb.universe.tf/address-pool", "old"),
            ],
            lb_spec(&["10.96.0.1"]),
        );
        let req = parse(&svc).expect("valid");
        assert_eq!(req.address_pool.as_deref(), Some("new"));
        assert!(req.legacy_annotations.is_empty());
    }

    #[test]
    fn legacy_annotations_still_work_and_are_flagged() {
        let svc = service(
            &[
                ("metallb.universe.tf/allow-shared-ip", "k"),
                ("metallb.universe.tf/loadBalancerIPs", "192.0.2.5"),
            ],
            lb_spec(&["10.96.0.1"]),
        );
        let req = parse(&svc).expect("valid");
        assert_eq!(req.sharing_key.as_deref(), Some("k"));
        assert_eq!(
            req.requested_ips,
            vec!["192.0.2.5".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(
            req.legacy_annotations,
            vec![LOAD_BALANCER_IPS, ALLOW_SHARED_IP]
        );
    }

    #[test]
    fn dual_stack_request_takes_one_ip_per_family_with_spaces_trimmed() {
        let svc = service(
            &[("metallb.io/loadBalancerIPs", " 192.0.2.5 , 2001:db8::5 ")],
            ServiceSpec {
                ip_family_policy: Some("RequireDualStack".into()),
                ..lb_spec(&["10.96.0.1", "fd00::1"])
            },
        );
        let req = parse(&svc).expect("valid");
        assert_eq!(req.requested_ips.len(), 2);
        assert_eq!(req.families, vec![Family::V4, Family::V6]);
        assert_eq!(req.family_policy, FamilyPolicy::RequireDualStack);
    }

    #[test]
    fn bad_requests_are_refused_with_their_reason() {
        let both = service(
            &[("metallb.io/loadBalancerIPs", "192.0.2.5")],
            ServiceSpec {
                load_balancer_ip: Some("192.0.2.6".into()),
                ..lb_spec(&["10.96.0.1"])
            },
        );
        assert_eq!(parse(&both), Err(ServiceError::ConflictingRequests));
        let two_v4 = service(
            &[("metallb.io/loadBalancerIPs", "192.0.2.5,192.0.2.6")],
            lb_spec(&["10.96.0.1"]),
        );
        assert!(matches!(
            parse(&two_v4),
            Err(ServiceError::TooManyIps { .. })
        ));
        let garbage = service(
            &[("metallb.io/loadBalancerIPs", "not-an-ip")],
            lb_spec(&["10.96.0.1"]),
        );
        assert!(matches!(
            parse(&garbage),
            Err(ServiceError::InvalidIp { .. })
        ));
        let wrong_family = service(
            &[("metallb.io/loadBalancerIPs", "2001:db8::1")],
            lb_spec(&["10.96.0.1"]),
        );
        assert!(matches!(
            parse(&wrong_family),
            Err(ServiceError::FamilyMismatch { .. })
        ));
        let single = service(
            &[],
            ServiceSpec {
                ip_family_policy: Some("RequireDualStack".into()),
                ..lb_spec(&["10.96.0.1"])
            },
        );
        assert_eq!(parse(&single), Err(ServiceError::NotEnoughClusterIps));
    }

    #[test]
    fn backend_key_is_the_sorted_selector_only_for_local_traffic_policy() {
        let selector: BTreeMap<String, String> = [
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]
        .into();
        let local = service(
            &[],
            ServiceSpec {
                external_traffic_policy: Some("Local".into()),
                selector: Some(selector.clone()),
                ports: Some(vec![K8sPort {
                    port: 53,
                    protocol: Some("UDP".into()),
                    ..Default::default()
                }]),
                ..lb_spec(&["10.96.0.1"])
            },
        );
        let req = parse(&local).expect("valid");
        assert_eq!(req.backend_key, "a=1,b=2");
        assert_eq!(
            req.ports,
            vec![ServicePort {
                protocol: Protocol::Udp,
                port: 53
            }]
        );
        let cluster = service(
            &[],
            ServiceSpec {
                selector: Some(selector),
                ..lb_spec(&["10.96.0.1"])
            },
        );
        assert_eq!(parse(&cluster).expect("valid").backend_key, "");
    }

    #[test]
    fn only_load_balancers_of_our_class_are_served() {
        let plain = service(&[], lb_spec(&["10.96.0.1"]));
        assert!(is_served(&plain, None));
        assert!(!is_served(&plain, Some("ferrolb")));
        let classed = service(
            &[],
            ServiceSpec {
                load_balancer_class: Some("ferrolb".into()),
                ..lb_spec(&["10.96.0.1"])
            },
        );
        assert!(is_served(&classed, Some("ferrolb")));
        assert!(!is_served(&classed, None));
        let cluster_ip = service(
            &[],
            ServiceSpec {
                type_: Some("ClusterIP".into()),
                ..Default::default()
            },
        );
        assert!(!is_served(&cluster_ip, None));
    }
}
