//! The `ServiceL2Status` / `ServiceBGPStatus` objects this node should have, and the writes
//! that get there from the ones it has. Pure. Writes happen only for differences, so a steady
//! cluster, or a restarted speaker that announces what it announced before, costs no API call.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::types::{InterfaceInfo, ServiceBGPStatusStatus, ServiceL2StatusStatus};

use crate::inputs::Input;
use crate::plan::{Announcements, Interfaces};

/// Labels MetalLB puts on status objects (so `kubectl get -l` finds them).
pub const NODE_LABEL: &str = "metallb.io/node";
/// See [`NODE_LABEL`].
pub const SERVICE_NAME_LABEL: &str = "metallb.io/service-name";
/// See [`NODE_LABEL`].
pub const SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";

/// The status each Service announced from `node` should have, by Service key.
pub fn wanted_l2(
    node: &str,
    announcements: &Announcements,
) -> BTreeMap<String, ServiceL2StatusStatus> {
    let mut out = BTreeMap::new();
    for announcement in announcements.l2.values() {
        for service in &announcement.services {
            let (namespace, name) = split_key(service);
            let interfaces = match &announcement.interfaces {
                Interfaces::All => Vec::new(),
                Interfaces::Only(names) => names
                    .iter()
                    .map(|n| InterfaceInfo { name: n.clone() })
                    .collect(),
            };
            out.entry(service.clone()).or_insert(ServiceL2StatusStatus {
                node: node.to_owned(),
                service_name: name.to_owned(),
                service_namespace: namespace.to_owned(),
                interfaces,
            });
        }
    }
    out
}

/// See [`wanted_l2`]; peers are sorted names.
pub fn wanted_bgp(
    node: &str,
    announcements: &Announcements,
) -> BTreeMap<String, ServiceBGPStatusStatus> {
    announcements
        .bgp_peers_by_service
        .iter()
        .filter(|(_, peers)| !peers.is_empty())
        .map(|(service, peers)| {
            let (namespace, name) = split_key(service);
            let status = ServiceBGPStatusStatus {
                node: node.to_owned(),
                service_name: name.to_owned(),
                service_namespace: namespace.to_owned(),
                peers: peers.clone(),
            };
            (service.clone(), status)
        })
        .collect()
}

/// `(namespace, name)` of a `namespace/name` key made by [`ferrolb_api::key`] (a key without a
/// slash is a name alone).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A status object as it exists: its name, the Service its labels name, its status.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing<S> {
    /// `metadata.name`.
    pub name: String,
    /// `namespace/name` from its labels.
    pub service: String,
    /// Its status, if written.
    pub status: Option<S>,
}

/// This node's status objects of one kind as the watch reports them, kept as [`Existing`]
/// (name, Service, status) rather than whole objects: at 10k Services the objects held 16 MB.
#[derive(Debug, Clone)]
pub struct StatusView<S> {
    objects: BTreeMap<String, Existing<S>>,
    /// Objects a re-list reported so far; replaces `objects` when it ends.
    relisting: Option<BTreeMap<String, Existing<S>>>,
}

impl<S> Default for StatusView<S> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            relisting: None,
        }
    }
}

impl<S: Clone> StatusView<S> {
    /// Takes one watch event (`Delete` carries the object's name).
    pub fn apply(&mut self, input: Input<Existing<S>>) {
        match input {
            Input::Relist => self.relisting = Some(BTreeMap::new()),
            Input::Apply(object) => {
                let target = self.relisting.as_mut().unwrap_or(&mut self.objects);
                target.insert(object.name.clone(), object);
            }
            Input::Delete(name) => {
                self.objects.remove(&name);
            }
            Input::Relisted => {
                if let Some(listed) = self.relisting.take() {
                    self.objects = listed;
                }
            }
        }
    }

    /// The objects, for [`writes`].
    pub fn existing(&self) -> Vec<Existing<S>> {
        self.objects.values().cloned().collect()
    }

    /// The Services that have an object.
    pub fn services(&self) -> BTreeSet<String> {
        self.objects.values().map(|o| o.service.clone()).collect()
    }

    /// Whether there is no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// One API write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<S> {
    /// A new object for this Service.
    Create {
        /// Service key.
        service: String,
        /// Its status.
        status: S,
    },
    /// Replace the status of an existing object.
    Update {
        /// Object name.
        name: String,
        /// Service key.
        service: String,
        /// Its new status.
        status: S,
    },
    /// The node no longer announces the Service (or the object is a duplicate).
    Delete {
        /// Object name.
        name: String,
    },
}

/// The writes from `existing` to `wanted`: one object per Service, extras deleted.
pub fn writes<S: Clone + PartialEq>(
    existing: &[Existing<S>],
    wanted: &BTreeMap<String, S>,
) -> Vec<Write<S>> {
    let mut out = Vec::new();
    let mut kept: BTreeMap<&str, &Existing<S>> = BTreeMap::new();
    for object in existing {
        let keep =
            wanted.contains_key(&object.service) && !kept.contains_key(object.service.as_str());
        if keep {
            kept.insert(&object.service, object);
        } else {
            out.push(Write::Delete {
                name: object.name.clone(),
            });
        }
    }
    for (service, status) in wanted {
        match kept.get(service.as_str()) {
            None => out.push(Write::Create {
                service: service.clone(),
                status: status.clone(),
            }),
            Some(object) if object.status.as_ref() != Some(status) => out.push(Write::Update {
                name: object.name.clone(),
                service: service.clone(),
                status: status.clone(),
            }),
            Some(_) => {}
        }
    }
    out
}

/// What this speaker wrote that its watch may not show yet: name → (Service, status), or
/// `None` for a deleted object. Without it, a plan made before the watch catches up would create
/// the same object twice or resurrect a deleted one.
#[derive(Debug, Clone)]
pub struct Written<S> {
    entries: BTreeMap<String, Option<(String, S)>>,
}

impl<S> Default for Written<S> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<S: Clone + PartialEq> Written<S> {
    /// Records a successful write.
    pub fn record(&mut self, name: &str, service_and_status: Option<(String, S)>) {
        self.entries.insert(name.to_owned(), service_and_status);
    }

    /// The objects as they are after our writes: the watch's view with ours laid over it. Entries
    /// the watch has caught up with are forgotten.
    pub fn overlay(&mut self, watched: Vec<Existing<S>>) -> Vec<Existing<S>> {
        let mut view: BTreeMap<String, Existing<S>> =
            watched.into_iter().map(|e| (e.name.clone(), e)).collect();
        self.entries
            .retain(|name, entry| match (entry.as_ref(), view.get(name)) {
                (None, None) => false,
                (Some((_, status)), Some(seen)) => seen.status.as_ref() != Some(status),
                _ => true,
            });
        for (name, entry) in &self.entries {
            match entry {
                None => {
                    view.remove(name);
                }
                Some((service, status)) => {
                    view.insert(
                        name.clone(),
                        Existing {
                            name: name.clone(),
                            service: service.clone(),
                            status: Some(status.clone()),
                        },
                    );
                }
            }
        }
        view.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::plan::L2Announcement;

    fn existing(name: &str, service: &str, status: Option<u32>) -> Existing<u32> {
        Existing {
            name: name.to_owned(),
            service: service.to_owned(),
            status,
        }
    }

    #[test]
    fn only_differences_are_written() {
        let wanted = BTreeMap::from([
            ("a/x".to_owned(), 1),
            ("a/y".to_owned(), 2),
            ("a/z".to_owned(), 3),
        ]);
        let have = vec![
            existing("l2-1", "a/x", Some(1)),
            existing("l2-2", "a/y", Some(9)),
            existing("l2-3", "a/gone", Some(1)),
            existing("l2-4", "a/x", Some(1)),
        ];
        let writes = writes(&have, &wanted);
        assert_eq!(
            writes,
            vec![
                Write::Delete {
                    name: "l2-3".into()
                },
                Write::Delete {
                    name: "l2-4".into()
                },
                Write::Update {
                    name: "l2-2".into(),
                    service: "a/y".into(),
                    status: 2
                },
                Write::Create {
                    service: "a/z".into(),
                    status: 3
                },
            ]
        );
        let settled = vec![
            existing("l2-1", "a/x", Some(1)),
            existing("l2-2", "a/y", Some(2)),
            existing("l2-9", "a/z", Some(3)),
        ];
        assert!(
            super::writes(&settled, &wanted).is_empty(),
            "steady state costs nothing"
        );
    }

    #[test]
    fn our_own_writes_count_before_the_watch_shows_them() {
        let mut written = Written::default();
        written.record("l2-new", Some(("a/x".to_owned(), 1)));
        written.record("l2-old", None);
        let watched = vec![existing("l2-old", "a/y", Some(2))];
        let view = written.overlay(watched);
        assert_eq!(view, vec![existing("l2-new", "a/x", Some(1))]);
        let wanted = BTreeMap::from([("a/x".to_owned(), 1)]);
        assert!(
            writes(&view, &wanted).is_empty(),
            "no second create, no second delete"
        );

        // Once the watch agrees, the record is dropped and the watch is the truth again.
        let caught_up = vec![existing("l2-new", "a/x", Some(1))];
        assert_eq!(written.overlay(caught_up.clone()), caught_up);
        assert!(written.entries.is_empty());
        let changed_elsewhere = vec![existing("l2-new", "a/x", Some(5))];
        assert_eq!(
            written.overlay(changed_elsewhere.clone()),
            changed_elsewhere
        );
    }

    #[test]
    fn l2_status_names_the_node_and_chosen_interfaces() {
        let mut announcements = Announcements::default();
        announcements.l2.insert(
            "192.0.2.1".parse().expect("ip"),
            L2Announcement {
                services: BTreeSet::from(["shop/web".to_owned(), "shop/api".to_owned()]),
                interfaces: Interfaces::Only(BTreeSet::from(["eth1".to_owned()])),
            },
        );
        announcements.l2.insert(
            "192.0.2.2".parse().expect("ip"),
            L2Announcement {
                services: BTreeSet::from(["db/pg".to_owned()]),
                interfaces: Interfaces::All,
            },
        );
        let wanted = wanted_l2("n1", &announcements);
        assert_eq!(wanted.len(), 3);
        let web = &wanted["shop/web"];
        assert_eq!(
            (
                web.node.as_str(),
                web.service_namespace.as_str(),
                web.service_name.as_str()
            ),
            ("n1", "shop", "web")
        );
        assert_eq!(
            web.interfaces,
            vec![InterfaceInfo {
                name: "eth1".into()
            }]
        );
        assert!(
            wanted["db/pg"].interfaces.is_empty(),
            "empty means every interface"
        );

        announcements
            .bgp_peers_by_service
            .insert("db/pg".into(), vec!["tor-a".to_owned(), "tor-b".to_owned()]);
        let bgp = wanted_bgp("n1", &announcements);
        assert_eq!(
            bgp["db/pg"].peers,
            vec!["tor-a".to_owned(), "tor-b".to_owned()]
        );
    }

    #[test]
    fn the_view_follows_applies_deletes_and_relists() {
        let object = |name: &str, service: &str| Existing {
            name: name.to_owned(),
            service: service.to_owned(),
            status: Some(1u8),
        };
        let mut view = StatusView::default();
        view.apply(Input::Apply(object("bgp-a", "shop/web")));
        view.apply(Input::Apply(object("bgp-b", "shop/api")));
        view.apply(Input::Delete("bgp-a".into()));
        assert_eq!(view.services(), BTreeSet::from(["shop/api".to_owned()]));
        view.apply(Input::Relist);
        view.apply(Input::Apply(object("bgp-c", "shop/db")));
        assert_eq!(
            view.services(),
            BTreeSet::from(["shop/api".to_owned()]),
            "the old view holds until the re-list ends"
        );
        view.apply(Input::Relisted);
        assert_eq!(view.existing(), vec![object("bgp-c", "shop/db")]);
        assert!(!view.is_empty());
    }
}
