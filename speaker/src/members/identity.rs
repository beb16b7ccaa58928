//! Who a speaker is in the gossip: its node name, where it listens, and a generation that grows
//! on every restart so that a restarted speaker wins over the memory of its dead predecessor.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A speaker's gossip identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpeakerId {
    /// The node name: what the plan's live set holds.
    pub node: String,
    /// The UDP address it gossips on.
    pub addr: SocketAddr,
    /// Start time or counter chosen at start; larger wins over an older identity of the node.
    pub generation: u64,
}

/// The gossip address is what makes two identities "the same speaker": seeds are known by
/// address only (their names arrive with their replies), and a speaker restarted on its node
/// keeps its address and wins with a higher generation.
impl foca::Identity for SpeakerId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(SpeakerId {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}
