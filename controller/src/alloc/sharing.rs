//! Which Services may share an IP (MetalLB's rules): the same `allow-shared-ip` key, the same
//! backends for `externalTrafficPolicy: Local`, and no port used by both. Pure.

use ferrolb_api::service::{LoadBalancerRequest, ServicePort};

/// How a Service takes part in sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sharing {
    /// The `allow-shared-ip` key; `None`: the IP is exclusive.
    pub(super) key: Option<String>,
    backend_key: String,
    ports: Vec<ServicePort>,
}

impl Sharing {
    pub(super) fn of(request: &LoadBalancerRequest) -> Self {
        Sharing {
            key: request.sharing_key.clone(),
            backend_key: request.backend_key.clone(),
            ports: request.ports.clone(),
        }
    }

    /// Why `self` may not share an IP with `other`, if it may not.
    pub(super) fn conflict(&self, other: &Sharing) -> Option<&'static str> {
        if self.key.is_none() || self.key != other.key {
            return Some("the services do not carry the same allow-shared-ip key");
        }
        if self.backend_key != other.backend_key {
            return Some(
                "services with externalTrafficPolicy Local must select the same pods, and cannot share with Cluster ones",
            );
        }
        if self.ports.iter().any(|p| other.ports.contains(p)) {
            return Some("both use the same port and protocol");
        }
        None
    }
}
