//! The Services and endpoints the plan reads, kept as the plan's compact view and updated one
//! watch event at a time. Pure.
//!
//! The speaker keeps no copy of Service or EndpointSlice objects: at 10k Services the full
//! objects were tens of MB, and turning them into plan inputs on every plan cost more than the
//! plan. Each event is read once (see [`crate::cluster`]) and only what the plan needs is kept.
//! Services are held in a `Vec` the plan borrows as it is, in no particular order (the plan
//! does not depend on it); an index by key makes every update O(1).

use std::collections::{HashMap, HashSet};

use crate::plan::{Endpoint, ServiceInfo};

/// A Service as the watch reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceFacts {
    /// `namespace/name`.
    pub key: String,
    /// The plan's view (endpoints empty); `None` when it is not ours to announce.
    pub info: Option<ServiceInfo>,
    /// `metadata.uid`, for Events.
    pub uid: Option<String>,
}

/// An EndpointSlice as the watch reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceFacts {
    /// `namespace/name` of the slice.
    pub key: String,
    /// `namespace/name` of its Service and its endpoints; `None` for a slice of no Service.
    pub endpoints: Option<(String, Vec<Endpoint>)>,
}

/// One watch event about a kind the speaker keeps no objects of.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<T> {
    /// A (re)list begins: what it does not report is gone when it ends.
    Relist,
    /// An object was listed, added or changed.
    Apply(T),
    /// The object with this `namespace/name` was deleted.
    Delete(String),
    /// The (re)list ended.
    Relisted,
}

/// Services and endpoints, joined.
#[derive(Debug, Default)]
pub struct ServiceInputs {
    /// The Services the plan reads, with their endpoints.
    infos: Vec<ServiceInfo>,
    /// Key → position in `infos`.
    position: HashMap<String, usize>,
    /// UID of every known Service, ours or not.
    uids: HashMap<String, String>,
    /// Slice key → (Service key, endpoints).
    slices: HashMap<String, (String, Vec<Endpoint>)>,
    /// Service key → its slices (also for Services that are not, or not yet, ours). A `Vec`:
    /// most Services have one slice, and a one-element `BTreeSet` allocates a whole node.
    slices_of: HashMap<String, Vec<String>>,
    /// Keys seen since a re-list began, per kind; `None` outside a re-list.
    relisting_services: Option<HashSet<String>>,
    relisting_slices: Option<HashSet<String>>,
}

impl ServiceInputs {
    /// The Services the plan reads.
    pub fn services(&self) -> &[ServiceInfo] {
        &self.infos
    }

    /// The UID of a Service, if it exists.
    pub fn uid(&self, key: &str) -> Option<&str> {
        self.uids.get(key).map(String::as_str)
    }

    /// Takes a Services watch event. Returns whether the plan's view changed.
    pub fn on_service(&mut self, input: Input<ServiceFacts>) -> bool {
        match input {
            Input::Relist => {
                self.relisting_services = Some(HashSet::new());
                false
            }
            Input::Apply(facts) => self.apply_service(facts),
            Input::Delete(key) => self.delete_service(&key),
            Input::Relisted => self.end_service_relist(),
        }
    }

    /// Takes an EndpointSlices watch event. Returns whether the plan's view changed.
    pub fn on_slice(&mut self, input: Input<SliceFacts>) -> bool {
        match input {
            Input::Relist => {
                self.relisting_slices = Some(HashSet::new());
                false
            }
            Input::Apply(facts) => self.apply_slice(facts),
            Input::Delete(key) => self.delete_slice(&key),
            Input::Relisted => self.end_slice_relist(),
        }
    }

    fn apply_service(&mut self, facts: ServiceFacts) -> bool {
        if let Some(seen) = &mut self.relisting_services {
            seen.insert(facts.key.clone());
        }
        match facts.uid {
            Some(uid) => self.uids.insert(facts.key.clone(), uid),
            None => self.uids.remove(&facts.key),
        };
        match facts.info {
            Some(mut info) => {
                info.endpoints = self.endpoints_of(&info.key);
                self.upsert(info)
            }
            None => self.remove(&facts.key),
        }
    }

    fn delete_service(&mut self, key: &str) -> bool {
        self.uids.remove(key);
        self.remove(key)
    }

    fn apply_slice(&mut self, facts: SliceFacts) -> bool {
        if let Some(seen) = &mut self.relisting_slices {
            seen.insert(facts.key.clone());
        }
        let old_service = self.detach_slice(&facts.key);
        let new_service = facts.endpoints.as_ref().map(|(s, _)| s.clone());
        if let Some((service, endpoints)) = facts.endpoints {
            let slices = self.slices_of.entry(service.clone()).or_default();
            // Sorted, so the joined endpoints keep their order when a slice is re-applied.
            if let Err(at) = slices.binary_search(&facts.key) {
                slices.insert(at, facts.key.clone());
            }
            self.slices.insert(facts.key, (service, endpoints));
        }
        let mut changed = false;
        for service in old_service.into_iter().chain(new_service) {
            changed |= self.refresh_endpoints(&service);
        }
        changed
    }

    fn delete_slice(&mut self, key: &str) -> bool {
        match self.detach_slice(key) {
            Some(service) => self.refresh_endpoints(&service),
            None => false,
        }
    }

    fn end_service_relist(&mut self) -> bool {
        let Some(seen) = self.relisting_services.take() else {
            return false;
        };
        let gone: HashSet<String> = self
            .uids
            .keys()
            .chain(self.position.keys())
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        let mut changed = false;
        for key in gone {
            changed |= self.delete_service(&key);
        }
        changed
    }

    fn end_slice_relist(&mut self) -> bool {
        let Some(seen) = self.relisting_slices.take() else {
            return false;
        };
        let gone: Vec<String> = self
            .slices
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        let mut changed = false;
        for key in gone {
            changed |= self.delete_slice(&key);
        }
        changed
    }

    fn endpoints_of(&self, service: &str) -> Vec<Endpoint> {
        self.slices_of
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|slice| self.slices.get(slice))
            .flat_map(|(_, endpoints)| endpoints.iter().cloned())
            .collect()
    }

    /// Removes a slice from the indexes; returns the Service it belonged to.
    fn detach_slice(&mut self, key: &str) -> Option<String> {
        let (service, _) = self.slices.remove(key)?;
        if let Some(slices) = self.slices_of.get_mut(&service) {
            slices.retain(|slice| slice != key);
            if slices.is_empty() {
                self.slices_of.remove(&service);
            }
        }
        Some(service)
    }

    fn refresh_endpoints(&mut self, service: &str) -> bool {
        let Some(&at) = self.position.get(service) else {
            return false;
        };
        let endpoints = self.endpoints_of(service);
        let info = &mut self.infos[at];
        if info.endpoints == endpoints {
            return false;
        }
        info.endpoints = endpoints;
        true
    }

    fn upsert(&mut self, info: ServiceInfo) -> bool {
        match self.position.get(&info.key) {
            Some(&at) if self.infos[at] == info => false,
            Some(&at) => {
                self.infos[at] = info;
                true
            }
            None => {
                self.position.insert(info.key.clone(), self.infos.len());
                self.infos.push(info);
                true
            }
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        let Some(at) = self.position.remove(key) else {
            return false;
        };
        self.infos.swap_remove(at);
        if let Some(moved) = self.infos.get(at) {
            self.position.insert(moved.key.clone(), at);
        }
        true
    }
}

#[cfg(test)]
mod tests;
