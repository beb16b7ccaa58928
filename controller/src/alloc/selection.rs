//! Which pools a Service may use and in which order they are tried, as MetalLB chooses them.
//! No I/O.

use std::cmp::Ordering;

use ferrolb_api::config::Pool;
use ferrolb_api::selector::{self, Labels};

/// The facts about a Service that pool restrictions look at.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// The Service's namespace.
    pub namespace: &'a str,
    /// Labels of that namespace.
    pub namespace_labels: &'a Labels,
    /// The Service's own labels.
    pub labels: &'a Labels,
}

/// Why a pool is closed to a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The pool lists namespaces (by name or selector) and this one is not among them.
    Namespace,
    /// The pool selects Services by label and this one does not match.
    ServiceSelector,
}

/// Whether `pool` may give `requester` an address at all.
///
/// Unlike MetalLB, a pool whose `namespaceSelectors` currently match no namespace stays closed to
/// every namespace instead of becoming open to all: a restriction that selects nothing must not
/// hand out addresses to anyone who asks.
pub fn check(pool: &Pool, requester: &Requester<'_>) -> Result<(), Refusal> {
    let Some(allocation) = &pool.allocation else {
        return Ok(());
    };
    let restricts_namespaces =
        !allocation.namespaces.is_empty() || !allocation.namespace_selectors.is_empty();
    if restricts_namespaces {
        let listed = allocation
            .namespaces
            .iter()
            .any(|n| n == requester.namespace);
        let selected = allocation
            .namespace_selectors
            .iter()
            .any(|s| selector::matches(s, requester.namespace_labels));
        if !listed && !selected {
            return Err(Refusal::Namespace);
        }
    }
    if !selector::matches_any(&allocation.service_selectors, requester.labels) {
        return Err(Refusal::ServiceSelector);
    }
    Ok(())
}

/// Pools to try for automatic allocation, best first: pools with a `serviceAllocation` that admits
/// the Service, by priority (positive ascending, then 0), then unrestricted pools. Only pools with
/// `autoAssign`. Ties go by name (MetalLB picks at random; a stable order makes a rebuild repeat
/// the same choices).
pub fn candidates<'p>(
    pools: impl Iterator<Item = &'p Pool>,
    requester: &Requester<'_>,
) -> Vec<&'p Pool> {
    let mut pinned = Vec::new();
    let mut open = Vec::new();
    for pool in pools.filter(|p| p.auto_assign) {
        match &pool.allocation {
            Some(_) if check(pool, requester).is_ok() => pinned.push(pool),
            Some(_) => {}
            None => open.push(pool),
        }
    }
    pinned.sort_by(|a, b| by_priority(a, b).then_with(|| a.name.cmp(&b.name)));
    open.sort_by(|a, b| a.name.cmp(&b.name));
    pinned.extend(open);
    pinned
}

fn by_priority(a: &Pool, b: &Pool) -> Ordering {
    let rank = |p: &Pool| {
        let priority = p.allocation.as_ref().map_or(0, |a| a.priority);
        (priority <= 0, priority)
    };
    rank(a).cmp(&rank(b))
}
