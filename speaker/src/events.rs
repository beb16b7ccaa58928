//! The Kubernetes Events the speaker publishes: which ones, about what, and their text, decided
//! from values. Pure; the daemon queues them on the writer.
//!
//! - `nodeAssigned` (Normal) on a Service this node starts announcing: in L2 when it takes an IP
//!   over (naming the previous owner and why it lost it, and how long after the membership
//!   change), over BGP when it starts advertising it. A Service this node already has a status
//!   object for was announced by a previous run of this speaker: no Event, so a restart is
//!   silent.
//! - `announceFailed` (Warning) once per IP this node should answer for but has no usable
//!   interface for, until it has one again.
//! - `ConfigurationError` (Warning) once per configuration problem, on the faulty object.
//!
//! Must not: publish anything, or read the clock (durations come in as values).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_api::error::{ConfigError, Kind};
use k8s_openapi::api::core::v1::ObjectReference;

use crate::apply::l2::L2State;
use crate::plan::L2Announcement;
use crate::status::split_key;

/// Reason of the Event saying which node announces a Service (MetalLB's).
pub const NODE_ASSIGNED: &str = "nodeAssigned";
/// Reason of the Event saying an IP cannot be announced from this node.
pub const ANNOUNCE_FAILED: &str = "announceFailed";
/// Reason of the Event on a configuration object the speaker ignores.
pub const CONFIGURATION_ERROR: &str = "ConfigurationError";

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regarding {
    /// A Service, by `namespace/name`.
    Service(String),
    /// A configuration object in FerroLB's namespace.
    Config {
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: String,
    },
}

impl Regarding {
    /// The reference the Event carries. `namespace`: FerroLB's, where configuration objects
    /// live; `uid`: the Service's, when known.
    pub fn reference(&self, namespace: &str, uid: Option<String>) -> ObjectReference {
        match self {
            Regarding::Service(key) => {
                let (namespace, name) = split_key(key);
                ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Service".into()),
                    name: Some(name.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    uid,
                    ..ObjectReference::default()
                }
            }
            Regarding::Config { kind, name } => ObjectReference {
                api_version: Some("metallb.io/v1beta1".into()),
                kind: Some(kind.to_string()),
                name: Some(name.clone()),
                namespace: Some(namespace.to_owned()),
                ..ObjectReference::default()
            },
        }
    }
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// About what.
    pub regarding: Regarding,
    /// Warning rather than Normal.
    pub is_warning: bool,
    /// One of the reasons above.
    pub reason: &'static str,
    /// The text.
    pub note: String,
}

/// Events about what is newly wrong, and the next set of what has been reported (so each
/// problem is reported once while it lasts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reports<K> {
    /// To publish.
    pub events: Vec<Event>,
    /// Everything wrong now: the `reported` of the next call.
    pub reported: BTreeSet<K>,
}

/// `announceFailed` for each IP in `resolved` (the interfaces found for the plan's IPs) with no
/// interface, unless `reported` already has it: one per Service on the IP.
pub fn announce_failed(
    node: &str,
    planned: &BTreeMap<IpAddr, L2Announcement>,
    resolved: &L2State,
    reported: &BTreeSet<IpAddr>,
) -> Reports<IpAddr> {
    let failing: BTreeSet<IpAddr> = resolved
        .iter()
        .filter(|(_, interfaces)| interfaces.is_empty())
        .map(|(ip, _)| *ip)
        .collect();
    let mut events = Vec::new();
    for ip in failing.difference(reported) {
        let services = planned.get(ip).map(|a| &a.services).into_iter().flatten();
        for service in services {
            events.push(Event {
                regarding: Regarding::Service(service.clone()),
                is_warning: true,
                reason: ANNOUNCE_FAILED,
                note: format!("node {node} has no usable interface to announce {ip} on"),
            });
        }
    }
    Reports {
        events,
        reported: failing,
    }
}

/// `ConfigurationError` on each object of `problems` whose problem `reported` does not have
/// (problems are compared by their text).
pub fn config_problems(
    node: &str,
    problems: &[ConfigError],
    reported: &BTreeSet<String>,
) -> Reports<String> {
    let mut events = Vec::new();
    for problem in problems {
        let text = problem.to_string();
        if reported.contains(&text) {
            continue;
        }
        events.push(Event {
            regarding: Regarding::Config {
                kind: problem.kind,
                name: problem.name.clone(),
            },
            is_warning: true,
            reason: CONFIGURATION_ERROR,
            note: format!("ignored by the speaker on {node}: {text}"),
        });
    }
    Reports {
        events,
        reported: problems.iter().map(ToString::to_string).collect(),
    }
}

/// The Services on `ips`, as `planned` places them.
pub fn services_on<'a>(
    planned: &BTreeMap<IpAddr, L2Announcement>,
    ips: impl IntoIterator<Item = &'a IpAddr>,
) -> BTreeSet<String> {
    ips.into_iter()
        .filter_map(|ip| planned.get(ip))
        .flat_map(|a| a.services.iter().cloned())
        .collect()
}

/// What one plan's L2 announcements tell.
#[derive(Debug, Clone, Copy)]
pub struct L2Taken<'a> {
    /// This node's name.
    pub node: &'a str,
    /// Services on the IPs this node started answering for in this plan.
    pub services: &'a BTreeSet<String>,
    /// Service → L2 owner, as the previous plan had it.
    pub previous_owners: &'a BTreeMap<String, String>,
    /// Services this node has a `ServiceL2Status` for (announced by an earlier run).
    pub with_status: &'a BTreeSet<String>,
    /// The gossip's live set, if gossip is on.
    pub gossip: Option<&'a BTreeSet<String>>,
    /// Time from the membership change this plan follows to having announced, if it follows
    /// one.
    pub since_change: Option<Duration>,
}

/// The `nodeAssigned` Events of an L2 plan, and the takeover times to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Assigned {
    /// To publish.
    pub events: Vec<Event>,
    /// One per Service taken over from another node after a membership change.
    pub takeover_times: Vec<Duration>,
}

/// `nodeAssigned` for each Service this node newly answers for, unless it owned it already or
/// (with no owner before) a previous run of this speaker announced it.
pub fn l2_assigned(taken: &L2Taken<'_>) -> L2Assigned {
    let mut out = L2Assigned {
        events: Vec::new(),
        takeover_times: Vec::new(),
    };
    for service in taken.services {
        let previous = taken.previous_owners.get(service);
        let is_restart = previous.is_none() && taken.with_status.contains(service);
        if previous.map(String::as_str) == Some(taken.node) || is_restart {
            continue;
        }
        let mut note = format!(
            "announcing from node \"{}\" with protocol \"layer2\"",
            taken.node
        );
        if let Some(previous) = previous {
            let why = if taken.gossip.is_some_and(|g| g.contains(previous)) {
                "is no longer eligible"
            } else {
                "left the speaker membership"
            };
            note.push_str(&format!(": previous node \"{previous}\" {why}"));
            if let Some(took) = taken.since_change {
                out.takeover_times.push(took);
                note.push_str(&format!(
                    "; announced {} ms after the membership change",
                    took.as_millis()
                ));
            }
        }
        out.events.push(Event {
            regarding: Regarding::Service(service.clone()),
            is_warning: false,
            reason: NODE_ASSIGNED,
            note,
        });
    }
    out
}

/// Services in `now` (Service → peers) that `before` did not have.
pub fn newly_advertised(
    before: &BTreeMap<String, Vec<String>>,
    now: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    now.keys()
        .filter(|s| !before.contains_key(*s))
        .cloned()
        .collect()
}

/// `nodeAssigned` for each Service `newly` advertised over BGP that this node has no
/// `ServiceBGPStatus` for.
pub fn bgp_assigned(node: &str, newly: &[String], with_status: &BTreeSet<String>) -> Vec<Event> {
    newly
        .iter()
        .filter(|s| !with_status.contains(*s))
        .map(|service| Event {
            regarding: Regarding::Service(service.clone()),
            is_warning: false,
            reason: NODE_ASSIGNED,
            note: format!("announcing from node \"{node}\" with protocol \"bgp\""),
        })
        .collect()
}

#[cfg(test)]
mod tests;
