//! `view`: what the controller keeps of a Service: its key, what it asks for (already parsed),
//! what it holds now, and the version and uid its writes and Events need. Nothing else.
//!
//! The reflector used to keep every whole Service (managedFields, annotations, spec, status):
//! at 100k Services the controller's peak RSS was 783 MB. Each watch event is now read once
//! into a [`ServiceView`] (a few hundred bytes) and the object dropped, as the speaker's
//! `inputs` does. [`ServiceViews`] is the shared store the reconciler plans from and the
//! webhook reads addresses in use from. No I/O.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use ferrolb_api::selector::Labels;
use ferrolb_api::service::{self, LoadBalancerRequest, ServiceError};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::admission::InUse;
use crate::plan;

/// How the controller treats a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// A LoadBalancer of another `loadBalancerClass`: never touched.
    OtherClass,
    /// Not a LoadBalancer, or one without a cluster IP: it must hold nothing.
    NotLoadBalancer,
    /// Ours to allocate for.
    Ours {
        /// What it asks for, or why that cannot be read.
        request: Result<LoadBalancerRequest, ServiceError>,
        /// Its labels, for pools' `serviceSelectors`.
        labels: Labels,
    },
}

/// A Service as the controller keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// `namespace/name`.
    pub key: String,
    /// `metadata.uid`, for Events.
    pub uid: Option<String>,
    /// `metadata.resourceVersion`: writes planned from this view carry it as a precondition.
    pub resource_version: Option<String>,
    /// Whether and what to allocate.
    pub served: Served,
    /// The IPs `status.loadBalancer.ingress` shows now.
    pub ips: Vec<IpAddr>,
    /// The `ip-allocated-from-pool` annotation now.
    pub pool: Option<String>,
}

impl ServiceView {
    /// Reads what the controller needs of `service`; `our_class` is the `loadBalancerClass`
    /// served (`None`: Services without one).
    pub fn of(service: &Service, our_class: Option<&str>) -> Self {
        let spec = service.spec.as_ref();
        let is_load_balancer = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        let has_cluster_ip = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty() && ip != "None");
        let served = if is_load_balancer
            && spec.and_then(|s| s.load_balancer_class.as_deref()) != our_class
        {
            Served::OtherClass
        } else if !is_load_balancer || !has_cluster_ip {
            Served::NotLoadBalancer
        } else {
            Served::Ours {
                request: service::parse(service),
                labels: service.labels().clone(),
            }
        };
        ServiceView {
            key: plan::service_key(service),
            uid: service.metadata.uid.clone(),
            resource_version: service.resource_version(),
            served,
            ips: plan::current_ips(service),
            pool: plan::current_pool(service),
        }
    }

    /// `(namespace, name)`.
    pub fn namespace_and_name(&self) -> (&str, &str) {
        self.key.split_once('/').unwrap_or(("", &self.key))
    }

    /// The Service, as Events name it.
    pub fn object_ref(&self) -> ObjectReference {
        let (namespace, name) = self.namespace_and_name();
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            uid: self.uid.clone(),
            ..ObjectReference::default()
        }
    }
}

/// Every Service's view, shared by the reconciler (which applies watch events) and the
/// webhook (which reads). A re-list is applied as kube's reflector does: the old contents stay
/// readable until the list ends, then are replaced at once.
#[derive(Debug, Clone, Default)]
pub struct ServiceViews {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    views: HashMap<String, Arc<ServiceView>>,
    /// Views of a re-list in progress.
    relisting: Option<HashMap<String, Arc<ServiceView>>>,
}

/// What one watch event did to the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Keys whose view changed, appeared or went away.
    pub keys: Vec<String>,
    /// A (re)list ended.
    pub synced: bool,
}

impl ServiceViews {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one watch event; the Service is read into its view and dropped.
    pub fn apply(&self, event: watcher::Event<Service>, our_class: Option<&str>) -> Applied {
        let mut inner = self.write();
        match event {
            watcher::Event::Init => {
                inner.relisting = Some(HashMap::new());
                Applied::default()
            }
            watcher::Event::InitApply(service) => {
                let view = ServiceView::of(&service, our_class);
                let key = view.key.clone();
                inner
                    .relisting
                    .get_or_insert_default()
                    .insert(key.clone(), Arc::new(view));
                Applied {
                    keys: vec![key],
                    synced: false,
                }
            }
            watcher::Event::InitDone => {
                let listed = inner.relisting.take().unwrap_or_default();
                // Services deleted while the watch was down are gone now: say so, so that their
                // addresses are released.
                let mut keys: Vec<String> = inner
                    .views
                    .keys()
                    .filter(|k| !listed.contains_key(*k))
                    .cloned()
                    .collect();
                keys.sort();
                inner.views = listed;
                Applied { keys, synced: true }
            }
            watcher::Event::Apply(service) => {
                let view = ServiceView::of(&service, our_class);
                let key = view.key.clone();
                inner.views.insert(key.clone(), Arc::new(view));
                Applied {
                    keys: vec![key],
                    synced: false,
                }
            }
            watcher::Event::Delete(service) => {
                let key = plan::service_key(&service);
                inner.views.remove(&key);
                Applied {
                    keys: vec![key],
                    synced: false,
                }
            }
        }
    }

    /// The view of `key`.
    pub fn get(&self, key: &str) -> Option<Arc<ServiceView>> {
        self.read().views.get(key).cloned()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        self.read().views.keys().cloned().collect()
    }

    /// How many Services there are.
    pub fn len(&self) -> usize {
        self.read().views.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses Services hold, from their statuses and pool annotations.
    pub fn in_use(&self) -> Vec<InUse> {
        let inner = self.read();
        let mut in_use = Vec::new();
        for view in inner.views.values() {
            let Some(pool) = &view.pool else {
                continue;
            };
            for ip in &view.ips {
                in_use.push(InUse {
                    service: view.key.clone(),
                    ip: *ip,
                    pool: pool.clone(),
                });
            }
        }
        in_use
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    use super::*;

    fn service(name: &str, type_: &str, class: Option<&str>, ip: Option<&str>) -> Service {
        let mut svc = Service::default();
        svc.metadata.name = Some(name.into());
        svc.metadata.namespace = Some("shop".into());
        svc.metadata.uid = Some(format!("uid-{name}"));
        svc.metadata.resource_version = Some("7".into());
        svc.metadata.annotations = Some(
            [(
                "metallb.io/ip-allocated-from-pool".to_owned(),
                "lab".to_owned(),
            )]
            .into(),
        );
        svc.spec = Some(ServiceSpec {
            type_: Some(type_.into()),
            cluster_ip: Some("10.96.0.10".into()),
            load_balancer_class: class.map(Into::into),
            ..Default::default()
        });
        svc.status = ip.map(|ip| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        });
        svc
    }

    #[test]
    fn a_view_keeps_what_planning_and_writing_need() {
        let view = ServiceView::of(
            &service("web", "LoadBalancer", None, Some("192.0.2.4")),
            None,
        );
        assert_eq!(view.key, "shop/web");
        assert_eq!(view.resource_version.as_deref(), Some("7"));
        assert_eq!(view.ips, ["192.0.2.4".parse::<IpAddr>().expect("ip")]);
        assert_eq!(view.pool.as_deref(), Some("lab"));
        assert!(matches!(view.served, Served::Ours { request: Ok(_), .. }));
        let reference = view.object_ref();
        assert_eq!(
            (reference.name.as_deref(), reference.uid.as_deref()),
            (Some("web"), Some("uid-web"))
        );
    }

    #[test]
    fn other_classes_and_other_types_are_told_apart() {
        let theirs = service("a", "LoadBalancer", Some("vendor.example/lb"), None);
        assert_eq!(ServiceView::of(&theirs, None).served, Served::OtherClass);
        let plain = service("b", "ClusterIP", Some("vendor.example/lb"), None);
        assert_eq!(
            ServiceView::of(&plain, None).served,
            Served::NotLoadBalancer
        );
        assert!(matches!(
            ServiceView::of(&theirs, Some("vendor.example/lb")).served,
            Served::Ours { .. }
        ));
    }

    #[test]
    fn a_relist_replaces_the_store_at_its_end_and_names_what_went_away() {
        let views = ServiceViews::default();
        let lb = |name| service(name, "LoadBalancer", None, Some("192.0.2.1"));
        views.apply(watcher::Event::Apply(lb("old")), None);
        views.apply(watcher::Event::Apply(lb("kept")), None);
        views.apply(watcher::Event::Init, None);
        let applied = views.apply(watcher::Event::InitApply(lb("kept")), None);
        assert_eq!(applied.keys, ["shop/kept"]);
        assert!(
            views.get("shop/old").is_some(),
            "readable until the list ends"
        );
        let done = views.apply(watcher::Event::InitDone, None);
        assert_eq!(
            done,
            Applied {
                keys: vec!["shop/old".into()],
                synced: true
            }
        );
        assert!(views.get("shop/old").is_none());
        assert_eq!(views.keys(), ["shop/kept"]);
        let deleted = views.apply(watcher::Event::Delete(lb("kept")), None);
        assert_eq!(deleted.keys, ["shop/kept"]);
        assert!(views.is_empty());
    }

    #[test]
    fn addresses_in_use_come_from_statuses_with_a_pool_annotation() {
        let views = ServiceViews::default();
        views.apply(
            watcher::Event::Apply(service("web", "LoadBalancer", None, Some("192.0.2.4"))),
            None,
        );
        let mut bare = service("bare", "LoadBalancer", None, Some("192.0.2.5"));
        bare.metadata.annotations = None;
        views.apply(watcher::Event::Apply(bare), None);
        let in_use = views.in_use();
        assert_eq!(in_use.len(), 1);
        assert_eq!(
            (in_use[0].service.as_str(), in_use[0].pool.as_str()),
            ("shop/web", "lab")
        );
    }
}
