//! One interface the responder serves: its two packet sockets, the reader thread answering on
//! them, the fast path when attached, its solicited-node memberships and the announcement
//! rounds of newly answered addresses. The driver (`driver`) decides which interfaces and
//! addresses; this opens, updates and closes what one interface needs.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::addr::MacAddr;
use super::arp;
use super::counters::{Family, InterfaceCounters};
use super::driver::{AnswerPath, ResponderConfig};
use super::error::L2Error;
use super::fast_path::{AddressMap, FastPath};
use super::heartbeat::Heartbeat;
use super::membership::Memberships;
use super::ndp;
use super::plan;
use super::reader::Reader;
use super::socket::PacketSocket;

/// One served interface. Dropping it stops its tasks and closes its sockets.
pub(super) struct Active {
    /// The in-kernel fast path, when attached. First, so it is dropped (its entries
    /// removed, its program detached) before the sockets close.
    pub(super) fast: Option<FastPath>,
    /// Kernel index the sockets are bound to.
    pub(super) ifindex: u32,
    /// Our MAC on this interface (in replies and announcements).
    pub(super) mac: MacAddr,
    /// Whether announcements could be sent at the last reconcile.
    pub(super) could_send: bool,
    pub(super) arp: Arc<PacketSocket>,
    pub(super) ndp: Arc<PacketSocket>,
    /// Addresses answered here; the reader thread reads it for every batch.
    pub(super) announced: watch::Sender<Arc<BTreeSet<IpAddr>>>,
    /// The thread answering on both sockets; dropping it stops and joins it.
    #[expect(dead_code, reason = "held for its Drop, which stops the thread")]
    pub(super) reader: Reader,
    /// Running announcement rounds, by address.
    pub(super) announcers: HashMap<IpAddr, AbortHandle>,
    /// Solicited-node groups joined for the IPv6 addresses.
    pub(super) groups: Memberships,
}

impl Drop for Active {
    fn drop(&mut self) {
        for task in self.announcers.values() {
            task.abort();
        }
    }
}

/// Opens both sockets on an interface, starts its reader thread, and attaches the
/// fast path when `addresses` is given (warning once and going on without it when it
/// cannot be attached).
pub(super) fn open(
    name: &str,
    ifindex: u32,
    mac: MacAddr,
    counters: Arc<InterfaceCounters>,
    addresses: Option<&Arc<AddressMap>>,
    heartbeat: &Heartbeat,
) -> Result<Active, L2Error> {
    let open_one = |family: Family| {
        PacketSocket::open(ifindex, family)
            .map(Arc::new)
            .map_err(|source| L2Error::OpenSocket {
                interface: name.to_owned(),
                ifindex,
                family: family.protocol(),
                source,
            })
    };
    let arp = open_one(Family::V4)?;
    let ndp = open_one(Family::V6)?;
    let (announced, watched) = watch::channel(Arc::new(BTreeSet::new()));
    let reader = Reader::spawn(
        name,
        arp.clone(),
        ndp.clone(),
        mac,
        watched,
        counters.clone(),
        heartbeat.clone(),
    )
    .map_err(|source| L2Error::OpenSocket {
        interface: name.to_owned(),
        ifindex,
        family: "reader thread for ARP and NDP",
        source,
    })?;
    let fast = addresses.and_then(|map| {
        match FastPath::attach(name, ifindex, mac, map.clone(), counters) {
            Ok(fast) => Some(fast),
            Err(e) => {
                tracing::warn!(interface = name, ifindex, errno = e.errno(), reason = e.reason(), error = %e,
                    "l2 fast path not attached; the sockets answer alone on this interface");
                None
            }
        }
    });
    let path = if fast.is_some() {
        AnswerPath::InKernel
    } else {
        AnswerPath::Sockets
    };
    tracing::info!(interface = name, ifindex, %mac, path = path.label(), "l2 responder serving interface");
    Ok(Active {
        fast,
        ifindex,
        mac,
        could_send: false,
        arp,
        ndp,
        announced,
        reader,
        announcers: HashMap::new(),
        groups: Memberships::new(ifindex),
    })
}

/// What announcement rounds are sent with.
pub(super) struct Announcing<'a> {
    pub(super) config: &'a ResponderConfig,
    pub(super) counters: &'a Arc<InterfaceCounters>,
    /// Rounds stop once it goes stale.
    pub(super) heartbeat: &'a Heartbeat,
}

/// Applies the new address set of one interface: memberships, the set the readers
/// consult, and announcements for new addresses (or all, when the carrier came back).
pub(super) fn update(
    a: &mut Active,
    name: &str,
    ips: BTreeSet<IpAddr>,
    can_send: bool,
    announcing: &Announcing<'_>,
) -> Result<(), L2Error> {
    let current: BTreeSet<IpAddr> = (**a.announced.borrow()).clone();
    let change = plan::interface_change(&current, &ips, a.could_send, can_send);
    a.could_send = can_send;
    let mut first_error = None;
    for ip in &change.removed {
        if let Some(task) = a.announcers.remove(ip) {
            task.abort();
        }
        // Out of the kernel first: nothing is answered once withdraw returns.
        if let Some(fast) = &mut a.fast
            && let Err(e) = fast.withdraw(*ip)
        {
            tracing::warn!(interface = name, %ip, error = %e,
                "l2 fast path entry not removed; detaching the fast path of this interface");
            a.fast = None;
        }
        if let IpAddr::V6(v6) = ip
            && let Err(source) = a.groups.leave(&a.ndp, *v6)
        {
            first_error.get_or_insert(L2Error::Membership {
                action: "leaving",
                ip: *ip,
                interface: name.to_owned(),
                source,
            });
        }
    }
    for ip in &change.added {
        if let IpAddr::V6(v6) = ip
            && let Err(source) = a.groups.join(&a.ndp, *v6)
        {
            first_error.get_or_insert(L2Error::Membership {
                action: "joining",
                ip: *ip,
                interface: name.to_owned(),
                source,
            });
        }
    }
    for ip in &change.announce {
        let task = tokio::spawn(announce(
            a.arp.clone(),
            a.ndp.clone(),
            *ip,
            a.mac,
            announcing.config.clone(),
            announcing.counters.clone(),
            announcing.heartbeat.clone(),
        ))
        .abort_handle();
        if let Some(old) = a.announcers.insert(*ip, task) {
            old.abort();
        }
    }
    a.announced.send_replace(Arc::new(ips));
    // Into the kernel last: the sockets already serve the address (group joined).
    if let Some(fast) = &mut a.fast {
        for ip in &change.added {
            if let Err(e) = fast.announce(*ip) {
                tracing::warn!(interface = name, %ip, error = %e,
                    "l2 fast path entry not added; the sockets answer for this address");
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Sends gratuitous ARP (request and reply forms) or an unsolicited NA for `ip`,
/// `config.announce_repeats` times, while `heartbeat` is fresh: a speaker frozen between two
/// rounds (SIGSTOP) would otherwise send the next one as it resumes, after another node took
/// the address over, and point the neighbours back at itself.
async fn announce(
    arp_socket: Arc<PacketSocket>,
    ndp_socket: Arc<PacketSocket>,
    ip: IpAddr,
    mac: MacAddr,
    config: ResponderConfig,
    counters: Arc<InterfaceCounters>,
    heartbeat: Heartbeat,
) {
    let (socket, frames) = match ip {
        IpAddr::V4(v4) => (
            arp_socket,
            vec![
                arp::gratuitous_request(v4, mac).to_bytes(),
                arp::gratuitous_reply(v4, mac).to_bytes(),
            ],
        ),
        IpAddr::V6(v6) => (
            ndp_socket,
            vec![ndp::unsolicited_advertisement(v6, mac).to_bytes()],
        ),
    };
    let c = counters.family(socket.family());
    for round in 0..config.announce_repeats {
        if round > 0 {
            tokio::time::sleep(config.announce_interval).await;
        }
        if !heartbeat.is_fresh() {
            tracing::debug!(%ip, round, "l2 announcements stopped: the speaker's heartbeat is stale");
            return;
        }
        for frame in &frames {
            // Never waits: a frame the full send buffer refuses is counted, and the
            // next round repeats it.
            match socket.send(frame) {
                Ok(()) => c.sent_announcement(),
                Err(e) => {
                    c.send_failed();
                    tracing::warn!(%ip, error = %e, "l2 announcement not sent");
                }
            }
        }
    }
}
