//! Which nodes count as alive for the L2 election, and whether this speaker may claim L2 IPs it
//! does not answer for yet. Pure: the gossip view, the Nodes' readiness and the time come in as
//! values.
//!
//! Rules:
//! - A node is alive when the gossip shows it (every Node counts when gossip is off, as MetalLB
//!   without memberlist) and its kubelet does not report it NotReady. This node is not alive
//!   while it has stepped down for carrier loss (see [`crate::carrier`]).
//! - Quorum (gossip on): the speaker set is the Nodes not NotReady that run a speaker (each
//!   speaker keeps a `ConfigurationState` named `speaker-<node>`, owned by its Pod), plus this
//!   node. This speaker answers L2 only while its gossip view holds a majority of that set
//!   (`seen × 2 > n`; on an exact tie the half holding the set's lowest node name wins, so
//!   exactly one side of a split keeps quorum). Without it, it answers for nothing: a speaker
//!   cut off from the others (UDP 7946 blocked, a wrong or rotated key) would otherwise see
//!   itself alone and claim every IP. With gossip off nothing can tell a partition from deaths,
//!   so there is no quorum rule; the operator can also turn it off ([`QuorumRule::Off`]) where
//!   availability matters more than a split (a two-node cluster, where a crash of the node
//!   holding the lowest name otherwise leaves the other answering nothing until the crashed
//!   speaker restarts or its Node turns NotReady).
//! - New L2 claims wait while the gossip view is settling: until it shows every Node not
//!   NotReady, or until the settle deadline (nodes without a running speaker never show up).
//!   IPs already answered for are kept meanwhile. Each reason to hold claims is a [`Hold`]
//!   variant, judged in [`claims`] and carried out by [`restrain`].
//! - Speakers of Nodes missing from the gossip view are asked to let us in.
//!
//! Must not: read the clock, touch the membership, or choose owners (that is [`crate::plan`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use crate::apply::l2::L2State;
use crate::plan::L2Announcement;

/// A Node as liveness reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealth {
    /// `metadata.name`.
    pub name: String,
    /// The `Ready` condition: `Some(false)` only when the kubelet said so.
    pub ready: Option<bool>,
    /// Its first InternalIP (else ExternalIP): where its speaker gossips.
    pub address: Option<IpAddr>,
}

impl NodeHealth {
    fn is_not_ready(&self) -> bool {
        self.ready == Some(false)
    }
}

/// Everything liveness is judged from.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// This node's name.
    pub me: &'a str,
    /// The gossip's live set; `None` when gossip is off.
    pub gossip: Option<&'a BTreeSet<String>>,
    /// Every Node.
    pub nodes: &'a [NodeHealth],
    /// The nodes whose speaker keeps a `ConfigurationState` (`speaker-<node>`).
    pub speakers: &'a BTreeSet<String>,
    /// Whether gossip must show a majority of the speaker set.
    pub quorum_rule: QuorumRule,
    /// This node left the membership because an announcing interface lost carrier.
    pub is_stepped_down: bool,
    /// When new claims stop waiting for the gossip view to settle; `None` when gossip never
    /// started (nothing to wait for).
    pub settles_at: Option<Instant>,
    /// The time of judgement.
    pub now: Instant,
}

/// Whether a speaker needs a majority of the speaker set in its gossip view to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum QuorumRule {
    /// No split brain: a speaker cut off from the majority answers for nothing.
    #[default]
    Majority,
    /// Availability first: every speaker elects from what its gossip shows, so a partition can
    /// make two nodes answer for one IP.
    Off,
}

/// Why L2 claims are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The gossip view does not show every Ready node yet, and its settle deadline is ahead:
    /// nothing new is claimed, what is answered is kept.
    Settling,
    /// The gossip view holds no majority of the speaker set: nothing is answered at all.
    NoQuorum,
}

impl Hold {
    /// Stable reason for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Hold::Settling => "membershipSettling",
            Hold::NoQuorum => "noQuorum",
        }
    }

    /// Whether IPs answered for already are kept while held.
    pub fn keeps_answered(self) -> bool {
        match self {
            Hold::Settling => true,
            Hold::NoQuorum => false,
        }
    }
}

/// Whether this node may start answering for IPs it does not answer for yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claims {
    /// It may.
    Allowed,
    /// It claims nothing new, and keeps what it answers for only as [`Hold::keeps_answered`]
    /// says.
    Held(Hold),
}

/// How much of the speaker set the gossip shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// Members of the speaker set in the gossip view (this node included).
    pub seen: usize,
    /// Size of the speaker set.
    pub speakers: usize,
    /// `seen` is a majority, or exactly half holding the set's lowest node name.
    pub has_majority: bool,
}

/// The judgement: who is alive, and whether new claims may be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Node names taken as alive.
    pub live: BTreeSet<String>,
    /// Whether new L2 claims may be made.
    pub claims: Claims,
    /// The quorum; `None` with gossip off (no quorum rule).
    pub quorum: Option<Quorum>,
}

/// Judges `view`.
pub fn judge(view: &View<'_>) -> Verdict {
    let live = live_nodes(view);
    let quorum = quorum(view);
    let claims = claims(view, &live, quorum);
    Verdict {
        live,
        claims,
        quorum,
    }
}

/// The nodes that run a speaker and count for the quorum: those with a `ConfigurationState`
/// whose Node is known and not NotReady, plus this node.
pub fn speaker_set(view: &View<'_>) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = view
        .nodes
        .iter()
        .filter(|n| !n.is_not_ready() && view.speakers.contains(&n.name))
        .map(|n| n.name.clone())
        .collect();
    set.insert(view.me.to_owned());
    set
}

/// How much of the speaker set the gossip view shows; `None` with gossip off or the rule off.
pub fn quorum(view: &View<'_>) -> Option<Quorum> {
    if view.quorum_rule == QuorumRule::Off {
        return None;
    }
    let gossip = view.gossip?;
    let set = speaker_set(view);
    let seen = set.iter().filter(|n| gossip.contains(*n)).count();
    let is_half_with_lowest =
        seen * 2 == set.len() && set.first().is_some_and(|lowest| gossip.contains(lowest));
    Some(Quorum {
        seen,
        speakers: set.len(),
        has_majority: seen * 2 > set.len() || is_half_with_lowest,
    })
}

/// The nodes taken as alive: the gossip's view (or every Node without gossip), minus Nodes the
/// kubelet reports NotReady, minus this node while it has stepped down.
pub fn live_nodes(view: &View<'_>) -> BTreeSet<String> {
    let mut live: BTreeSet<String> = match view.gossip {
        Some(gossip) => gossip.clone(),
        None => view.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    for node in view.nodes.iter().filter(|n| n.is_not_ready()) {
        live.remove(&node.name);
    }
    if view.is_stepped_down {
        live.remove(view.me);
    }
    live
}

/// Whether new claims may be made, given the `live` set and the `quorum` judged from `view`.
/// Without quorum nothing is answered, settled or not.
pub fn claims(view: &View<'_>, live: &BTreeSet<String>, quorum: Option<Quorum>) -> Claims {
    if quorum.is_some_and(|q| !q.has_majority) {
        return Claims::Held(Hold::NoQuorum);
    }
    if !is_settled(view, live) {
        return Claims::Held(Hold::Settling);
    }
    Claims::Allowed
}

/// The gossip view has had time to show who is alive: it shows every Node not NotReady, or the
/// settle deadline passed.
fn is_settled(view: &View<'_>, live: &BTreeSet<String>) -> bool {
    let Some(settles_at) = view.settles_at else {
        return true;
    };
    let shows_everyone = view
        .nodes
        .iter()
        .filter(|n| !n.is_not_ready())
        .all(|n| live.contains(&n.name));
    shows_everyone || view.now >= settles_at
}

/// `planned` as far as `claims` allow: while held, only IPs in `answered` are kept, and
/// nothing at all without quorum.
pub fn restrain(
    claims: Claims,
    planned: &mut BTreeMap<IpAddr, L2Announcement>,
    answered: &L2State,
) {
    if let Claims::Held(hold) = claims {
        planned.retain(|ip, _| hold.keeps_answered() && answered.contains_key(ip));
    }
}

/// Where to ask the speakers of Nodes missing from the gossip view (`gossip`, this node aside)
/// to let us in: each one's first address at the gossip `port`.
pub fn join_seeds(
    me: &str,
    gossip: &BTreeSet<String>,
    nodes: &[NodeHealth],
    port: u16,
) -> Vec<SocketAddr> {
    nodes
        .iter()
        .filter(|n| n.name != me && !gossip.contains(&n.name))
        .filter_map(|n| n.address)
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// Where this speaker gossips: `bind` when given, else its first address at `port`.
pub fn gossip_address(
    bind: Option<SocketAddr>,
    port: u16,
    own_addresses: &[IpAddr],
) -> Option<SocketAddr> {
    bind.or_else(|| own_addresses.first().map(|ip| SocketAddr::new(*ip, port)))
}

#[cfg(test)]
mod tests;
