//! `alloc`: which Service holds which external IPs. Pure: values in, values out; no API server,
//! no clock, no randomness, so every rule is tested without a cluster and a rebuild from Service
//! statuses repeats exactly what was decided before a restart.
//!
//! - [`selection`]: which pools a Service may use, in which order.
//! - `space`: taken addresses of a pool and the first free one, in O(log n).
//! - `sharing`: which Services may share an IP.
//! - `types`: the request, the outcome and a pool's usage.
//! - [`error`]: why an allocation fails.
//!
//! Costs: every operation is O(log n) in the number of assigned IPs and pools, except that a
//! Service with a sharing key also looks at the IPs already carrying that key. Memory grows with
//! assignments, never with pool sizes.

pub mod error;
pub mod selection;
mod sharing;
mod space;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_api::addr::Family;
use ferrolb_api::config::Pool;
use ferrolb_api::service::{FamilyPolicy, LoadBalancerRequest};

pub use error::AllocError;
pub use selection::{Refusal, Requester};
use sharing::Sharing;
use space::PoolSpace;
pub use types::{Change, Outcome, PoolUsage, ServiceRequest};

/// One IP and the Services on it.
#[derive(Debug, Clone, Default)]
struct IpUse {
    /// Pool that holds the address now (`None` after a pool edit dropped it).
    pool: Option<String>,
    /// Services on the IP: usually one, so a vector (a map node would cost a kilobyte per IP).
    holders: Vec<(String, Sharing)>,
}

/// What one Service holds.
#[derive(Debug, Clone)]
struct Held {
    pool: String,
    ips: Vec<IpAddr>,
}

/// A pool with its address space and counters.
#[derive(Debug, Clone)]
struct PoolState {
    pool: Pool,
    space: PoolSpace,
    /// Position in the automatic search order of open pools (`None`: restricted or no autoAssign).
    open_rank: Option<usize>,
    capacity: [u128; 2],
    in_use: [u128; 2],
}

fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// The allocator: pools, and which Service holds which IPs.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: BTreeMap<String, PoolState>,
    /// `(family, first address) → (last address, pool)` over every range, to find an IP's pool.
    ranges: BTreeMap<(Family, IpAddr), (IpAddr, String)>,
    /// Pools with a `serviceAllocation`, tried first when they admit the Service.
    restricted: Vec<String>,
    /// Open (unrestricted, autoAssign) pools in search order.
    open_order: Vec<String>,
    /// Ranks in `open_order` of open pools with a free address: of IPv4, of IPv6, of both.
    open_with_free: [BTreeSet<usize>; 3],
    services: HashMap<String, Held>,
    ips: HashMap<IpAddr, IpUse>,
    /// `(pool, sharing key) → IPs carrying that key`, for sharing candidates.
    shared: HashMap<(String, String), BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator over `pools` holding nothing.
    pub fn new(pools: &BTreeMap<String, Pool>) -> Self {
        let mut allocator = Allocator::default();
        allocator.set_pools(pools);
        allocator
    }

    /// Replaces the pools. Assignments are kept as they are; an IP that left every pool, or whose
    /// pool no longer admits its Service, is replaced on that Service's next [`Allocator::assign`].
    pub fn set_pools(&mut self, pools: &BTreeMap<String, Pool>) {
        let mut open: Vec<&Pool> = pools
            .values()
            .filter(|p| p.auto_assign && p.allocation.is_none())
            .collect();
        open.sort_by(|a, b| a.name.cmp(&b.name));
        self.open_order = open.iter().map(|p| p.name.clone()).collect();
        self.restricted = pools
            .values()
            .filter(|p| p.allocation.is_some())
            .map(|p| p.name.clone())
            .collect();
        let rank: HashMap<&str, usize> = self
            .open_order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        self.pools = pools
            .values()
            .map(|pool| {
                let state = PoolState {
                    pool: pool.clone(),
                    space: PoolSpace::new(&pool.ranges, pool.avoid_buggy_ips),
                    open_rank: rank.get(pool.name.as_str()).copied(),
                    capacity: [pool.capacity(Family::V4), pool.capacity(Family::V6)],
                    in_use: [0, 0],
                };
                (pool.name.clone(), state)
            })
            .collect();
        self.ranges = pools
            .values()
            .flat_map(|p| {
                p.ranges
                    .iter()
                    .map(move |r| ((r.family(), r.start()), (r.end(), p.name.clone())))
            })
            .collect();
        self.shared.clear();
        let ips: Vec<IpAddr> = self.ips.keys().copied().collect();
        for ip in ips {
            let pool = self.pool_containing(ip).map(str::to_owned);
            if let Some(name) = &pool
                && let Some(state) = self.pools.get_mut(name)
            {
                state.space.take(ip);
                state.in_use[family_index(Family::of(ip))] += 1;
            }
            if let Some(use_) = self.ips.get_mut(&ip) {
                use_.pool.clone_from(&pool);
                let key = use_.holders.iter().find_map(|(_, s)| s.key.clone());
                if let (Some(pool), Some(key)) = (pool, key) {
                    self.shared.entry((pool, key)).or_default().insert(ip);
                }
            }
        }
        self.open_with_free = Default::default();
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in names {
            self.refresh_free(&name);
        }
    }

    /// The pool whose ranges contain `ip`, whether or not it may hand it out.
    fn pool_containing(&self, ip: IpAddr) -> Option<&str> {
        let (end, pool) = self
            .ranges
            .range(..=(Family::of(ip), ip))
            .next_back()
            .map(|(_, v)| v)?;
        (Family::of(*end) == Family::of(ip) && ip <= *end).then_some(pool.as_str())
    }

    fn refresh_free(&mut self, pool: &str) {
        let Some(state) = self.pools.get(pool) else {
            return;
        };
        let Some(rank) = state.open_rank else { return };
        let free = [0, 1].map(|i| state.in_use[i] < state.capacity[i]);
        for (set, has_free) in
            self.open_with_free
                .iter_mut()
                .zip([free[0], free[1], free[0] && free[1]])
        {
            if has_free {
                set.insert(rank);
            } else {
                set.remove(&rank);
            }
        }
    }

    /// The IPs `key` holds, primary family first.
    pub fn assigned(&self, key: &str) -> Option<(&str, &[IpAddr])> {
        self.services
            .get(key)
            .map(|h| (h.pool.as_str(), h.ips.as_slice()))
    }

    /// Number of Services holding IPs.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Services holding an address of `pool`, or an address no pool holds any more: those a
    /// change to `pool` may affect.
    pub fn services_in_pool(&self, pool: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .services
            .iter()
            .filter(|(_, held)| {
                held.pool == pool
                    || held
                        .ips
                        .iter()
                        .any(|ip| self.pool_containing(*ip) != Some(held.pool.as_str()))
            })
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Counters for a pool's status.
    pub fn usage(&self, pool: &str) -> Option<PoolUsage> {
        let state = self.pools.get(pool)?;
        Some(PoolUsage {
            assigned_v4: state.in_use[0],
            assigned_v6: state.in_use[1],
            available_v4: state.capacity[0].saturating_sub(state.in_use[0]),
            available_v6: state.capacity[1].saturating_sub(state.in_use[1]),
        })
    }

    /// Gives `service` addresses, keeping the ones it holds while they are still allowed.
    pub fn assign(&mut self, service: &ServiceRequest<'_>) -> Result<Outcome, AllocError> {
        let held = self.services.get(service.key).cloned();
        let mut cleared = None;
        if let Some(held) = held {
            match self.check_held(service, &held) {
                Ok(pool) => return Ok(self.keep(service, held, pool)),
                Err(why) => {
                    self.release(service.key);
                    cleared = Some((held.ips, why));
                }
            }
        }
        let (pool, ips, missing_family) = self.allocate(service)?;
        let change = match cleared {
            Some((cleared, why)) => Change::Replaced { cleared, why },
            None => Change::Allocated,
        };
        Ok(Outcome {
            pool,
            ips,
            change,
            missing_family,
        })
    }

    /// Takes exactly `ips` for `service` if they are allowed: how the allocator is rebuilt from
    /// Service statuses after a restart, before anything new is allocated.
    pub fn restore(
        &mut self,
        service: &ServiceRequest<'_>,
        ips: &[IpAddr],
    ) -> Result<String, AllocError> {
        self.release(service.key);
        let pool = self.check_ips(service, ips)?;
        self.hold(service, &pool, ips.to_vec());
        Ok(pool)
    }

    /// Frees whatever `key` holds.
    pub fn release(&mut self, key: &str) -> Option<Vec<IpAddr>> {
        let held = self.services.remove(key)?;
        for ip in &held.ips {
            self.drop_holder(*ip, key);
        }
        Some(held.ips)
    }

    fn drop_holder(&mut self, ip: IpAddr, key: &str) {
        let Some(use_) = self.ips.get_mut(&ip) else {
            return;
        };
        let Some(index) = use_.holders.iter().position(|(holder, _)| holder == key) else {
            return;
        };
        let (_, sharing) = use_.holders.swap_remove(index);
        if !use_.holders.is_empty() {
            return;
        }
        let pool = use_.pool.clone();
        self.ips.remove(&ip);
        let Some(pool) = pool else { return };
        if let Some(sharing_key) = sharing.key
            && let Some(set) = self.shared.get_mut(&(pool.clone(), sharing_key.clone()))
        {
            set.remove(&ip);
            if set.is_empty() {
                self.shared.remove(&(pool.clone(), sharing_key));
            }
        }
        if let Some(state) = self.pools.get_mut(&pool) {
            state.space.free(ip);
            state.in_use[family_index(Family::of(ip))] -= 1;
        }
        self.refresh_free(&pool);
    }

    fn hold(&mut self, service: &ServiceRequest<'_>, pool: &str, ips: Vec<IpAddr>) {
        let sharing = Sharing::of(service.request);
        for ip in &ips {
            let use_ = self.ips.entry(*ip).or_default();
            let first = use_.holders.is_empty();
            use_.pool = Some(pool.to_owned());
            use_.holders.retain(|(holder, _)| holder != service.key);
            use_.holders.push((service.key.to_owned(), sharing.clone()));
            if let Some(key) = &sharing.key {
                self.shared
                    .entry((pool.to_owned(), key.clone()))
                    .or_default()
                    .insert(*ip);
            }
            if first && let Some(state) = self.pools.get_mut(pool) {
                state.space.take(*ip);
                state.in_use[family_index(Family::of(*ip))] += 1;
            }
        }
        self.refresh_free(pool);
        self.services.insert(
            service.key.to_owned(),
            Held {
                pool: pool.to_owned(),
                ips,
            },
        );
    }

    fn keep(&mut self, service: &ServiceRequest<'_>, held: Held, pool: String) -> Outcome {
        // Re-register: the sharing key or ports may have changed in ways that remain allowed,
        // and an IP may have moved into another pool.
        self.release(service.key);
        self.hold(service, &pool, held.ips.clone());
        let wanted = wanted_families(service.request);
        let have: Vec<Family> = held.ips.iter().map(|ip| Family::of(*ip)).collect();
        let lacking = wanted.iter().copied().find(|f| !have.contains(f));
        if service.request.family_policy == FamilyPolicy::PreferDualStack
            && service.request.requested_ips.is_empty()
            && let Some(family) = lacking
            && let Some(ip) = self.candidate(&pool, family, service)
        {
            let mut ips = held.ips;
            ips.push(ip);
            ips.sort_by_key(|ip| wanted.iter().position(|f| *f == Family::of(*ip)));
            self.release(service.key);
            self.hold(service, &pool, ips.clone());
            return Outcome {
                pool,
                ips,
                change: Change::Extended,
                missing_family: None,
            };
        }
        Outcome {
            pool,
            ips: held.ips,
            change: Change::Kept,
            missing_family: lacking,
        }
    }

    /// Whether what `service` holds is still allowed; the pool that holds it now if so.
    fn check_held(&self, service: &ServiceRequest<'_>, held: &Held) -> Result<String, AllocError> {
        let request = service.request;
        if !request.requested_ips.is_empty() {
            let mut requested = request.requested_ips.clone();
            let mut have = held.ips.clone();
            requested.sort();
            have.sort();
            if requested != have {
                return Err(AllocError::RequestChanged(requested));
            }
        }
        let pool = self.check_ips(service, &held.ips)?;
        let wanted = wanted_families(request);
        let families: Vec<Family> = held.ips.iter().map(|ip| Family::of(*ip)).collect();
        let fits = families.iter().all(|f| wanted.contains(f))
            && match request.family_policy {
                FamilyPolicy::SingleStack => families.len() == 1,
                FamilyPolicy::RequireDualStack => families.len() == 2,
                // One family is enough to keep; `keep` then tries to add the other.
                FamilyPolicy::PreferDualStack => !families.is_empty(),
            };
        if !fits {
            return Err(AllocError::Exhausted(wanted));
        }
        Ok(pool)
    }

    /// Whether `service` may hold exactly `ips`; their pool if so.
    fn check_ips(
        &self,
        service: &ServiceRequest<'_>,
        ips: &[IpAddr],
    ) -> Result<String, AllocError> {
        let request = service.request;
        let mut pool_name: Option<&str> = None;
        for ip in ips {
            let found = self.pool_containing(*ip).filter(|p| {
                request
                    .address_pool
                    .as_deref()
                    .is_none_or(|want| want == *p)
            });
            let Some(found) = found else {
                if let Some(want) = &request.address_pool
                    && !self.pools.contains_key(want)
                {
                    return Err(AllocError::UnknownPool(want.clone()));
                }
                return Err(AllocError::NotInPool {
                    ip: *ip,
                    pool: request.address_pool.clone(),
                });
            };
            match pool_name {
                Some(first) if first != found => {
                    return Err(AllocError::DifferentPools(ips[0], *ip));
                }
                _ => pool_name = Some(found),
            }
        }
        let Some(name) = pool_name else {
            return Err(AllocError::Exhausted(wanted_families(request)));
        };
        let state = self
            .pools
            .get(name)
            .ok_or_else(|| AllocError::UnknownPool(name.to_owned()))?;
        selection::check(&state.pool, &service.requester).map_err(|refusal| {
            AllocError::PoolNotAllowed {
                pool: name.to_owned(),
                refusal,
            }
        })?;
        let sharing = Sharing::of(request);
        for ip in ips {
            if !state.space.is_usable(*ip) {
                return Err(AllocError::BuggyIp {
                    ip: *ip,
                    pool: name.to_owned(),
                });
            }
            if let Some((holder, why)) = self.sharing_conflict(*ip, service.key, &sharing) {
                return Err(AllocError::InUse {
                    ip: *ip,
                    holder,
                    why,
                });
            }
        }
        Ok(name.to_owned())
    }

    fn sharing_conflict(
        &self,
        ip: IpAddr,
        key: &str,
        sharing: &Sharing,
    ) -> Option<(String, &'static str)> {
        let use_ = self.ips.get(&ip)?;
        use_.holders
            .iter()
            .filter(|(holder, _)| holder.as_str() != key)
            .find_map(|(holder, theirs)| sharing.conflict(theirs).map(|why| (holder.clone(), why)))
    }

    /// The first address of `family` in `pool` that `service` may take: free, or shared with
    /// compatible Services, whichever comes first in the pool's order.
    fn candidate(
        &self,
        pool: &str,
        family: Family,
        service: &ServiceRequest<'_>,
    ) -> Option<IpAddr> {
        let state = self.pools.get(pool)?;
        let free = state.space.first_free(family);
        let Some(key) = &service.request.sharing_key else {
            return free;
        };
        let sharing = Sharing::of(service.request);
        let order = |ip: &IpAddr| (state.pool.ranges.iter().position(|r| r.contains(*ip)), *ip);
        let shared = self
            .shared
            .get(&(pool.to_owned(), key.clone()))
            .into_iter()
            .flatten()
            .filter(|ip| {
                // A shared IP the pool no longer hands out (after an edit) is not a candidate.
                Family::of(**ip) == family
                    && state.space.is_usable(**ip)
                    && self.sharing_conflict(**ip, service.key, &sharing).is_none()
            });
        shared.copied().chain(free).min_by_key(order)
    }

    /// Addresses for every family in `families` from `pool`, or `None`.
    fn take_from(
        &self,
        pool: &str,
        families: &[Family],
        service: &ServiceRequest<'_>,
    ) -> Option<Vec<IpAddr>> {
        families
            .iter()
            .map(|f| self.candidate(pool, *f, service))
            .collect()
    }

    fn allocate(
        &mut self,
        service: &ServiceRequest<'_>,
    ) -> Result<(String, Vec<IpAddr>, Option<Family>), AllocError> {
        let request = service.request;
        if !request.requested_ips.is_empty() {
            let pool = self.check_ips(service, &request.requested_ips)?;
            self.hold(service, &pool, request.requested_ips.clone());
            return Ok((pool, request.requested_ips.clone(), None));
        }
        let wanted = wanted_families(request);
        let mut attempts = vec![wanted.clone()];
        if request.family_policy == FamilyPolicy::PreferDualStack && wanted.len() == 2 {
            attempts.push(vec![wanted[0]]);
            attempts.push(vec![wanted[1]]);
        }
        let pools: Vec<String> = match &request.address_pool {
            Some(name) => {
                let state = self
                    .pools
                    .get(name)
                    .ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
                selection::check(&state.pool, &service.requester).map_err(|refusal| {
                    AllocError::PoolNotAllowed {
                        pool: name.clone(),
                        refusal,
                    }
                })?;
                vec![name.clone()]
            }
            None => Vec::new(),
        };
        for families in &attempts {
            let found = if pools.is_empty() {
                self.search_auto(families, service)
            } else {
                pools.iter().find_map(|p| {
                    self.take_from(p, families, service)
                        .map(|ips| (p.clone(), ips))
                })
            };
            if let Some((pool, ips)) = found {
                let missing = wanted.iter().copied().find(|f| !families.contains(f));
                self.hold(service, &pool, ips.clone());
                return Ok((pool, ips, missing));
            }
        }
        Err(AllocError::Exhausted(wanted))
    }

    /// The first pool in automatic order with addresses of `families` for `service`.
    fn search_auto(
        &self,
        families: &[Family],
        service: &ServiceRequest<'_>,
    ) -> Option<(String, Vec<IpAddr>)> {
        let restricted = self
            .restricted
            .iter()
            .filter_map(|name| self.pools.get(name))
            .map(|s| &s.pool);
        for pool in selection::candidates(restricted, &service.requester) {
            if let Some(ips) = self.take_from(&pool.name, families, service) {
                return Some((pool.name.clone(), ips));
            }
        }
        // Open pools: only those with free addresses of every wanted family can serve an
        // exclusive Service; a sharing one may also fit into a full pool.
        let ranks: Box<dyn Iterator<Item = usize>> =
            match (service.request.sharing_key.is_some(), families) {
                (true, _) => Box::new(0..self.open_order.len()),
                (false, [one]) => Box::new(self.open_with_free[family_index(*one)].iter().copied()),
                (false, _) => Box::new(self.open_with_free[2].iter().copied()),
            };
        ranks
            .filter_map(|rank| self.open_order.get(rank))
            .find_map(|name| {
                self.take_from(name, families, service)
                    .map(|ips| (name.clone(), ips))
            })
    }
}

/// Families a Service wants, primary first: SingleStack one, the dual-stack policies both.
fn wanted_families(request: &LoadBalancerRequest) -> Vec<Family> {
    let primary = request.families.first().copied().unwrap_or(Family::V4);
    let secondary = match primary {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    };
    match request.family_policy {
        FamilyPolicy::SingleStack => vec![primary],
        FamilyPolicy::PreferDualStack | FamilyPolicy::RequireDualStack => vec![primary, secondary],
    }
}

#[cfg(test)]
mod tests;
