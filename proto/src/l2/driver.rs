//! The `Responder`: a tokio task that answers ARP and neighbour solicitations for the
//! announced addresses on the chosen interfaces, and announces them when they arrive.
//!
//! ```text
//!   Responder handle ── Command (mpsc) ──┐        LinkWatcher (rtnetlink)
//!   announce / withdraw / counters       │              │ LinkEvent
//!                                        ▼              ▼
//!                      ┌─────────────── driver task ────────────────┐
//!                      │ wanted: ip → interface names                │
//!                      │ links:  index → LinkInfo                    │
//!                      │ active: name → sockets, announced set,      │
//!                      │         solicited-node memberships          │
//!                      └──┬───────────────┬──────────────────┬──────┘
//!             watch<set>  │               │ spawn            │ spawn
//!                         ▼               ▼                  ▼
//!               reader thread (per interface)      announcer task (per interface, ip)
//!               poll both sockets → recvmmsg →     gratuitous ARP / unsolicited NA,
//!               decide → sendmmsg; count           `repeats` times, `interval` apart
//!
//!   fast path (per interface, optional): TCX ingress program + address map entries;
//!   answers the common questions in the kernel, passes the rest to the sockets
//! ```
//! Questions are answered on a plain thread (`reader`), not a tokio task, so a busy
//! runtime never delays a reply; the driver and the announcers stay async.
//! The driver decides nothing about frames (`decide` does) and nothing about which
//! addresses to announce where (the caller does); it keeps sockets in step with both. What one
//! interface needs is opened and updated in `served`.
//!
//! With `ResponderConfig::fast_path` (the default) each served interface also gets the
//! in-kernel fast path (`fast_path`): an address enters its map after the sockets
//! serve it and leaves it before they stop. When the program cannot be loaded or
//! attached, one warning names the interface and the errno and the sockets answer
//! alone; `Responder::answer_paths` says which path each interface uses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::counters::{Family, FamilySnapshot, InterfaceCounters};
use super::error::L2Error;
use super::fast_path::AddressMap;
use super::heartbeat::Heartbeat;
use super::link::{LinkEvent, LinkInfo, LinkWatcher};
use super::plan;
use super::served::{Active, Announcing, open, update};

/// How the responder announces a newly owned address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Rounds of gratuitous ARP (both forms) or unsolicited NA per address and interface.
    pub announce_repeats: u32,
    /// Pause between rounds.
    pub announce_interval: Duration,
    /// Answer the common questions in the kernel (a TCX ingress program) as well as on
    /// the sockets. Falls back to the sockets alone where the program cannot run.
    pub fast_path: bool,
    /// Answer only while `Responder::heartbeat` beats at least this often (see
    /// `heartbeat`); `None`: answer whether or not anyone beats.
    pub heartbeat_timeout: Option<Duration>,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            announce_repeats: 3,
            announce_interval: Duration::from_millis(500),
            fast_path: true,
            heartbeat_timeout: None,
        }
    }
}

/// Which path answers the questions of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnswerPath {
    /// The TCX ingress program answers the common questions; the sockets the rest.
    InKernel,
    /// The sockets answer everything (fast path off, or it could not be attached).
    Sockets,
}

impl AnswerPath {
    /// Stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            AnswerPath::InKernel => "InKernel",
            AnswerPath::Sockets => "Sockets",
        }
    }
}

/// Requests from a `Responder` handle to the driver task.
#[derive(Debug)]
enum Command {
    Announce {
        ip: IpAddr,
        interfaces: BTreeSet<String>,
        done: oneshot::Sender<Result<(), L2Error>>,
    },
    Withdraw {
        ip: IpAddr,
        done: oneshot::Sender<Result<(), L2Error>>,
    },
    Counters {
        done: oneshot::Sender<BTreeMap<(String, Family), FamilySnapshot>>,
    },
    Paths {
        done: oneshot::Sender<BTreeMap<String, AnswerPath>>,
    },
}

/// Handle to the responder task; cheap to clone. The task stops when every handle is
/// dropped, closing its sockets (which leaves every multicast group).
#[derive(Debug, Clone)]
pub struct Responder {
    commands: mpsc::Sender<Command>,
    heartbeat: Heartbeat,
}

impl Responder {
    /// Subscribes to link changes in the caller's network namespace, waits for the
    /// initial list of links, and starts the driver task. Needs CAP_NET_RAW.
    pub async fn start(config: ResponderConfig) -> Result<(Responder, JoinHandle<()>), L2Error> {
        let mut links = LinkWatcher::open()?;
        let addresses = if config.fast_path {
            match AddressMap::create() {
                Ok(map) => Some(map),
                Err(e) => {
                    tracing::warn!(error = %e, errno = e.errno(), reason = e.reason(),
                        "l2 fast path off on every interface; the sockets answer alone");
                    None
                }
            }
        } else {
            None
        };
        let heartbeat = Heartbeat::new(config.heartbeat_timeout, addresses.clone());
        let mut driver = Driver {
            config,
            heartbeat: heartbeat.clone(),
            addresses,
            links: HashMap::new(),
            wanted: BTreeMap::new(),
            active: HashMap::new(),
            counters: HashMap::new(),
        };
        loop {
            match links.next().await? {
                LinkEvent::Synced => break,
                event => driver.on_link(event),
            }
        }
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(driver.run(rx, links));
        Ok((
            Responder {
                commands: tx,
                heartbeat,
            },
            task,
        ))
    }

    /// Answers for `ip` on exactly `interfaces` (replacing any earlier set), joining its
    /// solicited-node group for IPv6 and announcing it. An interface that does not exist
    /// yet is served once it appears.
    pub async fn announce(
        &self,
        ip: IpAddr,
        interfaces: impl IntoIterator<Item = String>,
    ) -> Result<(), L2Error> {
        let (done, result) = oneshot::channel();
        let interfaces = interfaces.into_iter().collect();
        self.send(Command::Announce {
            ip,
            interfaces,
            done,
        })
        .await?;
        result.await.map_err(|_| L2Error::Stopped)?
    }

    /// Stops answering for `ip` everywhere and leaves its solicited-node group.
    pub async fn withdraw(&self, ip: IpAddr) -> Result<(), L2Error> {
        let (done, result) = oneshot::channel();
        self.send(Command::Withdraw { ip, done }).await?;
        result.await.map_err(|_| L2Error::Stopped)?
    }

    /// The heartbeat that keeps this responder answering (see `heartbeat`).
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// Counters of every interface served so far, by interface name and family.
    pub async fn counters(&self) -> Result<BTreeMap<(String, Family), FamilySnapshot>, L2Error> {
        let (done, result) = oneshot::channel();
        self.send(Command::Counters { done }).await?;
        result.await.map_err(|_| L2Error::Stopped)
    }

    /// Which path answers on each interface served now.
    pub async fn answer_paths(&self) -> Result<BTreeMap<String, AnswerPath>, L2Error> {
        let (done, result) = oneshot::channel();
        self.send(Command::Paths { done }).await?;
        result.await.map_err(|_| L2Error::Stopped)
    }

    async fn send(&self, command: Command) -> Result<(), L2Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| L2Error::Stopped)
    }
}

/// The driver task's state.
struct Driver {
    config: ResponderConfig,
    /// Handed to every reader thread.
    heartbeat: Heartbeat,
    /// The fast path's (interface, address) → MAC map; `None` when it is off.
    addresses: Option<Arc<AddressMap>>,
    /// Every link of the namespace, from rtnetlink.
    links: HashMap<u32, LinkInfo>,
    /// What the caller asked for: address → interface names.
    wanted: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Interfaces with open sockets, by name.
    active: HashMap<String, Active>,
    /// Counters by interface name; kept across socket re-creation.
    counters: HashMap<String, Arc<InterfaceCounters>>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut links: LinkWatcher) {
        let mut watching = true;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = links.next(), if watching => match event {
                    Ok(event) => {
                        self.on_link(event);
                        if let Err(e) = self.reconcile() {
                            tracing::warn!(error = %e, reason = e.reason(), "l2 reconcile after link change");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "l2 link watch stopped; interface changes are no longer followed");
                        watching = false;
                    }
                },
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Announce {
                ip,
                interfaces,
                done,
            } => {
                self.wanted.insert(ip, interfaces);
                let _ = done.send(self.reconcile());
            }
            Command::Withdraw { ip, done } => {
                self.wanted.remove(&ip);
                let _ = done.send(self.reconcile());
            }
            Command::Counters { done } => {
                // Queue drops live in the sockets until read; collect them now.
                for (name, a) in &mut self.active {
                    if let Some(fast) = &mut a.fast
                        && let Err(e) = fast.sync()
                    {
                        tracing::warn!(interface = %name, error = %e, "l2 fast path counters not read");
                    }
                    if let Some(c) = self.counters.get(name) {
                        for socket in [&a.arp, &a.ndp] {
                            if let Ok(n) = socket.take_queue_drops() {
                                c.family(socket.family()).overflowed(n);
                            }
                        }
                    }
                }
                let mut out = BTreeMap::new();
                for (name, c) in &self.counters {
                    for family in [Family::V4, Family::V6] {
                        out.insert((name.clone(), family), c.family(family).snapshot());
                    }
                }
                let _ = done.send(out);
            }
            Command::Paths { done } => {
                let paths = self
                    .active
                    .iter()
                    .map(|(name, a)| {
                        let path = if a.fast.is_some() {
                            AnswerPath::InKernel
                        } else {
                            AnswerPath::Sockets
                        };
                        (name.clone(), path)
                    })
                    .collect();
                let _ = done.send(paths);
            }
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Changed(info) => {
                self.links.insert(info.index, info);
            }
            LinkEvent::Removed { index, .. } => {
                self.links.remove(&index);
            }
            LinkEvent::Synced => {}
        }
    }

    /// Brings sockets, memberships and announced sets in step with `wanted` and
    /// `links`. Returns the first error; the other interfaces are still handled.
    fn reconcile(&mut self) -> Result<(), L2Error> {
        let desired = plan::by_interface(&self.wanted);
        let by_name: HashMap<&str, &LinkInfo> =
            self.links.values().map(|l| (l.name.as_str(), l)).collect();

        // Close interfaces no longer wanted, gone, or re-created with another index/MAC.
        self.active.retain(|name, a| {
            desired.contains_key(name)
                && by_name
                    .get(name.as_str())
                    .is_some_and(|l| l.index == a.ifindex && l.mac == Some(a.mac))
        });

        let mut first_error = None;
        for (name, ips) in desired {
            let Some(link) = by_name.get(name.as_str()) else {
                continue;
            };
            let Some(mac) = link.mac else {
                continue;
            };
            let can_send = link.is_up && link.has_carrier;
            let counters = self.counters.entry(name.clone()).or_default().clone();
            if !self.active.contains_key(&name) {
                match open(
                    &name,
                    link.index,
                    mac,
                    counters.clone(),
                    self.addresses.as_ref(),
                    &self.heartbeat,
                ) {
                    Ok(a) => {
                        self.active.insert(name.clone(), a);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            let Some(a) = self.active.get_mut(&name) else {
                continue;
            };
            let announcing = Announcing {
                config: &self.config,
                counters: &counters,
                heartbeat: &self.heartbeat,
            };
            if let Err(e) = update(a, &name, ips, can_send, &announcing) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
