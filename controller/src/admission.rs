//! Admission decisions for FerroLB's kinds, as the validating webhook will serve them: the same
//! rules as `validate`, judged against the objects already in the cluster. Pure: the webhook's
//! HTTPS shell hands in the request and the cluster state, and sends back the [`Verdict`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_api::config::{self, Objects};
use ferrolb_api::error::{ConfigError, Kind};
use ferrolb_api::manifest::Object;
use kube::ResourceExt;

/// What the API server asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A changed object.
    Update,
    /// An object going away.
    Delete,
}

/// An address a Service holds, as the controller's allocator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    /// `namespace/name` of the Service.
    pub service: String,
    /// The address.
    pub ip: IpAddr,
    /// The pool it came from.
    pub pool: String,
}

/// The answer to the API server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Denial message, one problem per line; `None` admits.
    pub denied: Option<String>,
    /// Shown by kubectl, never blocking.
    pub warnings: Vec<String>,
}

impl Verdict {
    fn deny(message: impl Into<String>) -> Self {
        Verdict {
            denied: Some(message.into()),
            warnings: Vec::new(),
        }
    }
}

/// Decides on one request.
///
/// - Objects are created only in FerroLB's own namespace, the only one it reads.
/// - A change is refused if the object itself is invalid, or if it makes any other object
///   invalid that was valid before (an older pool's range, an alias, a localPref...).
/// - References that may appear later (BFD profiles, Secrets, aliases) are warnings, as MetalLB's
///   webhook lets them through.
/// - A pool update may not strand addresses Services hold; a BFDProfile a BGPPeer uses may not be
///   deleted.
pub fn review(
    operation: Operation,
    object: &Object,
    existing: &Objects,
    in_use: &[InUse],
    our_namespace: &str,
) -> Verdict {
    let Some((kind, name)) = object.identity() else {
        return Verdict::default();
    };
    if operation == Operation::Create && object.namespace().as_deref() != Some(our_namespace) {
        return Verdict::deny(format!(
            "{kind}/{name}: FerroLB reads its configuration only from namespace {our_namespace:?}; create it there"
        ));
    }
    if operation == Operation::Delete {
        return review_delete(kind, &name, existing);
    }
    let before = config::build(existing);
    let mut changed = existing.clone();
    changed.remove(kind, &name);
    changed.add(object.clone());
    let after = config::build(&changed);
    let known: BTreeSet<String> = before.problems.iter().map(ToString::to_string).collect();
    let is_ours = |p: &ConfigError| p.kind == kind && p.name == name;
    let (warnings, errors): (Vec<&ConfigError>, Vec<&ConfigError>) = after
        .problems
        .iter()
        .filter(|p| is_ours(p) || !known.contains(&p.to_string()))
        .partition(|p| p.is_transient());
    let mut verdict = Verdict {
        denied: None,
        warnings: warnings.iter().map(ToString::to_string).collect(),
    };
    let mut lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if let (Operation::Update, Object::Pool(_)) = (operation, object) {
        lines.extend(stranded(&name, &after.config, in_use));
    }
    if !lines.is_empty() {
        verdict.denied = Some(lines.join("\n"));
    }
    verdict
}

fn review_delete(kind: Kind, name: &str, existing: &Objects) -> Verdict {
    if kind != Kind::BFDProfile {
        return Verdict::default();
    }
    let users: Vec<String> = existing
        .bgp_peers
        .iter()
        .filter(|p| p.spec.bfd_profile.as_deref() == Some(name))
        .map(|p| format!("BGPPeer/{}", p.name_any()))
        .collect();
    if users.is_empty() {
        Verdict::default()
    } else {
        Verdict::deny(format!(
            "BFDProfile/{name}: still used by {}",
            users.join(", ")
        ))
    }
}

/// Lines for addresses of `pool` that Services hold and the edited pool would no longer hand out.
fn stranded(pool: &str, after: &config::Config, in_use: &[InUse]) -> Vec<String> {
    const SHOWN: usize = 5;
    let edited = after.pools.get(pool);
    let lost: Vec<&InUse> = in_use
        .iter()
        .filter(|u| u.pool == pool)
        .filter(|u| match edited {
            Some(p) => {
                p.range_of(u.ip).is_none()
                    || (p.avoid_buggy_ips && ferrolb_api::addr::is_buggy_ip(u.ip))
            }
            None => false,
        })
        .collect();
    if lost.is_empty() {
        return Vec::new();
    }
    let shown: Vec<String> = lost
        .iter()
        .take(SHOWN)
        .map(|u| format!("{} ({})", u.ip, u.service))
        .collect();
    let more = lost.len().saturating_sub(SHOWN);
    vec![format!(
        "IPAddressPool/{pool}: spec: the change would take back {} address(es) in use: {}{}; move those Services first",
        lost.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )]
}

#[cfg(test)]
mod tests {
    use ferrolb_api::manifest::{self, Document};

    use super::*;

    fn object(yaml: &str) -> Object {
        let mut documents = manifest::parse(yaml.as_bytes()).expect("yaml");
        match documents.remove(0) {
            Document::Object { object, .. } | Document::Deprecated { object, .. } => *object,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn pool(name: &str, addresses: &str, extra: &str) -> Object {
        object(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: ferrolb-system{extra}}}\nspec: {{addresses: [{addresses}]}}"
        ))
    }

    fn existing(objects: &[Object]) -> Objects {
        manifest::collect(objects)
    }

    const NS: &str = "ferrolb-system";

    #[test]
    fn a_valid_pool_is_admitted() {
        let verdict = review(
            Operation::Create,
            &pool("a", "192.0.2.0/24", ""),
            &Objects::default(),
            &[],
            NS,
        );
        assert_eq!(verdict, Verdict::default());
    }

    #[test]
    fn objects_outside_our_namespace_are_refused_on_create() {
        let other = object(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: default}\nspec: {addresses: [192.0.2.0/24]}",
        );
        let verdict = review(Operation::Create, &other, &Objects::default(), &[], NS);
        assert!(
            verdict
                .denied
                .expect("denied")
                .contains("only from namespace \"ferrolb-system\"")
        );
    }

    #[test]
    fn an_invalid_object_is_refused_naming_the_field() {
        let verdict = review(
            Operation::Create,
            &pool("a", "10.0.0.5-10.0.0.1", ""),
            &Objects::default(),
            &[],
            NS,
        );
        assert_eq!(
            verdict.denied.as_deref(),
            Some(
                r#"IPAddressPool/a: spec.addresses[0]: "10.0.0.5-10.0.0.1": range end before start"#
            )
        );
    }

    #[test]
    fn a_new_pool_overlapping_an_existing_one_is_refused() {
        let old = pool(
            "old",
            "192.0.2.0/24",
            ", creationTimestamp: \"2026-01-01T00:00:00Z\"",
        );
        let verdict = review(
            Operation::Create,
            &pool("new", "192.0.2.128/25", ""),
            &existing(&[old]),
            &[],
            NS,
        );
        assert!(
            verdict
                .denied
                .expect("denied")
                .starts_with("IPAddressPool/new: spec.addresses[0]")
        );
    }

    #[test]
    fn an_update_that_breaks_another_object_is_refused() {
        let old = pool(
            "old",
            "192.0.2.0/25",
            ", creationTimestamp: \"2026-01-01T00:00:00Z\"",
        );
        let young = pool(
            "young",
            "192.0.2.128/25",
            ", creationTimestamp: \"2026-02-01T00:00:00Z\"",
        );
        let widened = pool(
            "old",
            "192.0.2.0/24",
            ", creationTimestamp: \"2026-01-01T00:00:00Z\"",
        );
        let verdict = review(
            Operation::Update,
            &widened,
            &existing(&[old, young]),
            &[],
            NS,
        );
        assert!(
            verdict
                .denied
                .expect("denied")
                .starts_with("IPAddressPool/young:"),
            "the older pool's edit would break the younger one"
        );
    }

    #[test]
    fn a_pool_edit_that_strands_ips_in_use_is_refused() {
        let before = pool("a", "192.0.2.0/24", "");
        let in_use = [InUse {
            service: "shop/web".into(),
            ip: "192.0.2.200".parse().expect("ip"),
            pool: "a".into(),
        }];
        let shrunk = pool("a", "192.0.2.0/25", "");
        let denied = review(
            Operation::Update,
            &shrunk,
            &existing(std::slice::from_ref(&before)),
            &in_use,
            NS,
        )
        .denied
        .expect("denied");
        assert!(denied.contains("192.0.2.200 (shop/web)"), "{denied}");
        let grown = pool("a", "192.0.2.0/23", "");
        assert_eq!(
            review(Operation::Update, &grown, &existing(&[before]), &in_use, NS),
            Verdict::default()
        );
    }

    #[test]
    fn turning_on_avoid_buggy_ips_strands_a_dot_zero_address() {
        let before = pool("a", "192.0.2.0/24", "");
        let in_use = [InUse {
            service: "shop/web".into(),
            ip: "192.0.2.0".parse().expect("ip"),
            pool: "a".into(),
        }];
        let edited = object(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: ferrolb-system}\nspec: {addresses: [192.0.2.0/24], avoidBuggyIPs: true}",
        );
        assert!(
            review(
                Operation::Update,
                &edited,
                &existing(&[before]),
                &in_use,
                NS
            )
            .denied
            .is_some()
        );
    }

    #[test]
    fn missing_references_are_warnings_not_denials() {
        let peer = object(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, bfdProfile: later}",
        );
        let verdict = review(Operation::Create, &peer, &Objects::default(), &[], NS);
        assert_eq!(verdict.denied, None);
        assert_eq!(
            verdict.warnings,
            [r#"BGPPeer/p: spec.bfdProfile: BFDProfile "later" does not exist"#]
        );
    }

    #[test]
    fn a_bfd_profile_in_use_cannot_be_deleted() {
        let profile = object(
            "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast, namespace: ferrolb-system}",
        );
        let peer = object(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, bfdProfile: fast}",
        );
        let cluster = existing(&[profile.clone(), peer]);
        assert_eq!(
            review(Operation::Delete, &profile, &cluster, &[], NS)
                .denied
                .as_deref(),
            Some("BFDProfile/fast: still used by BGPPeer/p")
        );
        let unused = existing(std::slice::from_ref(&profile));
        assert_eq!(
            review(Operation::Delete, &profile, &unused, &[], NS),
            Verdict::default()
        );
    }

    #[test]
    fn an_object_that_was_already_invalid_is_still_refused_on_update() {
        let bad = pool("a", "10.0.0.5-10.0.0.1", "");
        let still_bad = pool("a", "10.0.0.9-10.0.0.1", "");
        assert!(
            review(Operation::Update, &still_bad, &existing(&[bad]), &[], NS)
                .denied
                .is_some()
        );
    }
}
