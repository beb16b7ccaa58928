//! Solicited-node group membership for the IPv6 addresses announced on one interface.
//!
//! Two joins per group, because each one alone is not enough:
//! - packet membership (PACKET_ADD_MEMBERSHIP) on the NDP packet socket puts
//!   33:33:ff:XX:XX:XX in the interface's MAC filter even where IPv6 is disabled;
//! - IPV6_ADD_MEMBERSHIP on a UDP socket makes the kernel send MLD reports, without
//!   which a switch or bridge with MLD snooping never forwards the solicitations.
//!
//! Addresses with the same low 24 bits share a group, so joins are reference counted:
//! the kernel is asked to join on the first address and to leave after the last.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, UdpSocket};

use super::addr;
use super::socket::PacketSocket;

/// The groups joined on one interface.
#[derive(Debug)]
pub struct Memberships {
    /// Interface index, for IPV6_ADD_MEMBERSHIP.
    ifindex: u32,
    /// Holds the IPv6 memberships; `None` when IPv6 sockets cannot be opened (IPv6
    /// disabled), in which case only packet membership is used.
    mld: Option<UdpSocket>,
    /// Group → number of announced addresses that map to it.
    counts: HashMap<Ipv6Addr, usize>,
}

impl Memberships {
    /// No groups yet on `ifindex`.
    pub fn new(ifindex: u32) -> Memberships {
        let mld = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
            .inspect_err(|e| tracing::warn!(ifindex, error = %e, "no IPv6 socket; MLD reports will not be sent"))
            .ok();
        Memberships {
            ifindex,
            mld,
            counts: HashMap::new(),
        }
    }

    /// Joins the solicited-node group of `ip` (if no other address holds it yet).
    pub fn join(&mut self, socket: &PacketSocket, ip: Ipv6Addr) -> io::Result<()> {
        let group = addr::solicited_node(ip);
        let count = self.counts.entry(group).or_insert(0);
        *count += 1;
        if *count > 1 {
            return Ok(());
        }
        socket.join(addr::multicast_mac(group))?;
        if let Some(mld) = &self.mld {
            mld.join_multicast_v6(&group, self.ifindex)?;
        }
        Ok(())
    }

    /// Leaves the solicited-node group of `ip` once no announced address maps to it.
    pub fn leave(&mut self, socket: &PacketSocket, ip: Ipv6Addr) -> io::Result<()> {
        let group = addr::solicited_node(ip);
        let Some(count) = self.counts.get_mut(&group) else {
            return Ok(());
        };
        *count -= 1;
        if *count > 0 {
            return Ok(());
        }
        self.counts.remove(&group);
        let packet = socket.leave(addr::multicast_mac(group));
        if let Some(mld) = &self.mld {
            mld.leave_multicast_v6(&group, self.ifindex)?;
        }
        packet
    }

    /// The groups currently joined.
    pub fn groups(&self) -> impl Iterator<Item = &Ipv6Addr> {
        self.counts.keys()
    }
}
