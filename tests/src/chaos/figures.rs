//! The chaos suite's faults by name, the figures recorded per fault, and the table they are
//! printed as. Pure.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The faults, in the order the suite injects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The L2 owner's speaker is SIGKILLed, then started again.
    OwnerKill,
    /// The L2 owner's speaker is SIGSTOPped, then SIGCONTinued.
    OwnerFreeze,
    /// The L2 owner's node drops UDP 7946 in and out (nftables), then lets it through again.
    GossipPartition,
    /// A fourth node joins with a speaker whose gossip key nobody else has, then leaves.
    WrongKeySpeaker,
    /// The API server pauses; meanwhile the L2 owner's speaker crashes and restarts.
    ApiOutageWithCrash,
    /// The leading controller is SIGKILLed during a burst of 500 Service creates; it starts
    /// again as the standby.
    ControllerKillDuringBurst,
    /// The leader's Lease writes hang while Services are created: it believes it leads until
    /// its renew deadline, the standby takes over after the Lease expired.
    TwoLeaders,
    /// The L2 owner's link loses carrier for a moment.
    LinkFlap,
}

impl Fault {
    /// Every fault, in order.
    pub const ALL: [Fault; 8] = [
        Fault::OwnerKill,
        Fault::OwnerFreeze,
        Fault::GossipPartition,
        Fault::WrongKeySpeaker,
        Fault::ApiOutageWithCrash,
        Fault::ControllerKillDuringBurst,
        Fault::TwoLeaders,
        Fault::LinkFlap,
    ];

    /// A short name for the table.
    pub fn name(self) -> &'static str {
        match self {
            Fault::OwnerKill => "owner SIGKILL",
            Fault::OwnerFreeze => "owner SIGSTOP/SIGCONT",
            Fault::GossipPartition => "gossip partition",
            Fault::WrongKeySpeaker => "wrong-key speaker joins",
            Fault::ApiOutageWithCrash => "API outage + speaker crash",
            Fault::ControllerKillDuringBurst => "controller SIGKILL in 500 creates",
            Fault::TwoLeaders => "two leaders (Lease writes hung)",
            Fault::LinkFlap => "link flap",
        }
    }
}

/// What one fault (with its recovery) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Which round of the suite (1-based).
    pub round: usize,
    pub fault: Fault,
    /// The node the fault hit (or the controller), for the reader.
    pub target: String,
    /// The longest stretch the L2 client got no answer.
    pub l2_gap: Duration,
    /// The longest stretch the client behind the router got no answer.
    pub bgp_gap: Duration,
    /// Probes lost: (L2, BGP).
    pub lost_probes: (usize, usize),
    /// The nodes that answered the L2 client, in turn (`node-2 → node-3 → node-2`).
    pub l2_served_by: Vec<String>,
    /// L2 IPs two MACs answered while the fault held, or once recovered.
    pub double_answered: BTreeSet<Ipv4Addr>,
    /// IPs two Services held.
    pub double_assigned: BTreeSet<IpAddr>,
    /// Services left without an IP.
    pub lost: BTreeSet<String>,
    /// Services whose IPs changed.
    pub moved: BTreeSet<String>,
    /// Service writes of a deposed controller after its successor's first one.
    pub late_writes: usize,
    /// L2 IPs two MACs answered while an IP was being handed back to its recovered owner
    /// (both act on the same membership change; reported, not failed: see the suite's docs).
    pub handback_overlaps: BTreeSet<Ipv4Addr>,
    /// From the fault to the end of its recovery.
    pub took: Duration,
}

impl Figures {
    /// An empty record for `fault` in `round`.
    pub fn new(round: usize, fault: Fault) -> Figures {
        Figures {
            round,
            fault,
            target: String::new(),
            l2_gap: Duration::ZERO,
            bgp_gap: Duration::ZERO,
            lost_probes: (0, 0),
            l2_served_by: Vec::new(),
            double_answered: BTreeSet::new(),
            double_assigned: BTreeSet::new(),
            lost: BTreeSet::new(),
            moved: BTreeSet::new(),
            late_writes: 0,
            handback_overlaps: BTreeSet::new(),
            took: Duration::ZERO,
        }
    }

    /// What this fault broke, one line each; empty when it broke nothing.
    pub fn failures(&self) -> Vec<String> {
        let at = format!("round {} {}", self.round, self.fault.name());
        let mut out = Vec::new();
        if !self.double_answered.is_empty() {
            out.push(format!(
                "{at}: answered by two MACs: {:?}",
                self.double_answered
            ));
        }
        if !self.double_assigned.is_empty() {
            out.push(format!(
                "{at}: held by two Services: {:?}",
                self.double_assigned
            ));
        }
        if !self.lost.is_empty() {
            out.push(format!(
                "{at}: Services without an IP: {}",
                names(&self.lost)
            ));
        }
        if !self.moved.is_empty() {
            out.push(format!(
                "{at}: Services whose IPs changed: {}",
                names(&self.moved)
            ));
        }
        if self.late_writes > 0 {
            out.push(format!(
                "{at}: the deposed controller wrote {} Service(s) after its successor began",
                self.late_writes
            ));
        }
        out
    }
}

/// At most 10 names, then how many more.
fn names(set: &BTreeSet<String>) -> String {
    let shown: Vec<&str> = set.iter().take(10).map(String::as_str).collect();
    match set.len().saturating_sub(shown.len()) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

fn millis(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

/// The figures as a Markdown table, a row per fault and round, then the worst of each fault
/// over all rounds when there was more than one.
pub fn table(figures: &[Figures]) -> String {
    let mut out = String::from(
        "| round | fault | target | L2 gap ms | BGP gap ms | lost probes L2/BGP | L2 served by | double-answered IPs | double-assigned IPs | lost Services | moved Services | late writes | hand-back overlaps | took s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            f.round,
            f.fault.name(),
            f.target,
            millis(f.l2_gap),
            millis(f.bgp_gap),
            f.lost_probes.0,
            f.lost_probes.1,
            f.l2_served_by.join(" → "),
            f.double_answered.len(),
            f.double_assigned.len(),
            f.lost.len(),
            f.moved.len(),
            f.late_writes,
            f.handback_overlaps.len(),
            f.took.as_secs_f64()
        );
    }
    let rounds = figures.iter().map(|f| f.round).max().unwrap_or(0);
    if rounds > 1 {
        out += &worst(figures, rounds);
    }
    out
}

/// Per fault, the worst over `rounds` rounds.
fn worst(figures: &[Figures], rounds: usize) -> String {
    let mut out = format!(
        "\nworst of {rounds} rounds:\n\n| fault | max L2 gap ms | max BGP gap ms | double-answered | double-assigned | lost | moved | late writes | hand-back overlaps |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for fault in Fault::ALL {
        let of: Vec<&Figures> = figures.iter().filter(|f| f.fault == fault).collect();
        if of.is_empty() {
            continue;
        }
        let max = |g: fn(&Figures) -> usize| of.iter().map(|f| g(f)).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fault.name(),
            millis(of.iter().map(|f| f.l2_gap).max().unwrap_or_default()),
            millis(of.iter().map(|f| f.bgp_gap).max().unwrap_or_default()),
            max(|f| f.double_answered.len()),
            max(|f| f.double_assigned.len()),
            max(|f| f.lost.len()),
            max(|f| f.moved.len()),
            max(|f| f.late_writes),
            max(|f| f.handback_overlaps.len()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_fault_has_no_failures_and_each_broken_invariant_is_named() {
        let mut f = Figures::new(1, Fault::OwnerKill);
        f.handback_overlaps
            .insert("192.0.2.200".parse().expect("literal"));
        assert!(
            f.failures().is_empty(),
            "hand-back overlaps are reported only"
        );
        f.double_answered
            .insert("192.0.2.201".parse().expect("literal"));
        f.lost.insert("default/web-0".into());
        f.late_writes = 2;
        let failures = f.failures();
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[0].contains("192.0.2.201"));
        assert!(failures[1].contains("default/web-0"));
        assert!(failures[2].contains("wrote 2 Service(s)"));
    }

    #[test]
    fn the_table_has_a_row_per_fault_and_round_and_the_worst_per_fault() {
        let mut a = Figures::new(1, Fault::LinkFlap);
        a.l2_gap = Duration::from_millis(420);
        let mut b = Figures::new(2, Fault::LinkFlap);
        b.l2_gap = Duration::from_millis(380);
        b.lost_probes = (12, 3);
        b.l2_served_by = vec!["node-1".into(), "node-2".into()];
        let text = table(&[a.clone(), b]);
        assert!(
            text.contains("| 1 | link flap |  | 420 | 0 | 0/0 |  |"),
            "{text}"
        );
        assert!(
            text.contains("| 2 | link flap |  | 380 | 0 | 12/3 | node-1 → node-2 |"),
            "{text}"
        );
        assert!(text.contains("worst of 2 rounds"), "{text}");
        assert!(text.contains("| link flap | 420 | 0 |"), "{text}");
        assert!(!table(&[a]).contains("worst"), "one round: no summary");
    }
}
