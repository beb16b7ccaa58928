//! Numbers the kernel keeps about a namespace or a process: `/proc/net/snmp` and
//! `/proc/net/netstat` counters, and a process's CPU time and resident memory (the way LAB.md
//! measures them: these VMs have no hardware counters).

use std::time::Duration;

use crate::command::must_in;
use crate::error::LabError;
use crate::sys;

/// A counter of `/proc/net/<file>` (`snmp` or `netstat`) as seen inside namespace `ns`, e.g.
/// (`snmp`, `Ip`, `InHdrErrors`) or (`netstat`, `TcpExt`, `TCPMD5Failure`).
pub fn net_counter(ns: &str, file: &str, group: &str, name: &str) -> Result<u64, LabError> {
    let text = must_in(ns, &["cat", &format!("/proc/net/{file}")])?;
    parse_counter(&text, group, name).ok_or_else(|| LabError::Missing {
        what: format!("{group} {name} in /proc/net/{file}"),
        detail: text,
    })
}

/// Reads one counter from the two-line (names, values) layout of `/proc/net/snmp`. Pure.
pub fn parse_counter(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let [names, values] = &rows[..] else {
        return None;
    };
    let i = names.iter().position(|n| *n == name)?;
    values.get(i)?.parse().ok()
}

/// (received, transmitted) packets of link `dev` inside namespace `ns`.
pub fn link_packets(ns: &str, dev: &str) -> Result<(u64, u64), LabError> {
    let text = must_in(ns, &["cat", "/proc/net/dev"])?;
    parse_link_packets(&text, dev).ok_or_else(|| LabError::Missing {
        what: format!("{dev} in /proc/net/dev of {ns}"),
        detail: text,
    })
}

/// (received, transmitted) packets of `dev` in a `/proc/net/dev` text (fields 2 and 10). Pure;
/// also for a thread's own `/proc/thread-self/net/dev`.
pub fn parse_link_packets(text: &str, dev: &str) -> Option<(u64, u64)> {
    text.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        if name.trim() != dev {
            return None;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        Some((*f.get(1)?, *f.get(9)?))
    })
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    Some(Duration::from_millis(
        ticks * 1000 / sys::clock_ticks()?.max(1),
    ))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command
/// name before them may contain spaces and parentheses, so fields count from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory of process `pid`: (VmRSS, VmHWM) in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_read_from_its_group_by_name() {
        let text = "Ip: Forwarding InHdrErrors\nIp: 1 7\nIcmp: InMsgs OutTimeExcds\nIcmp: 3 4\n";
        assert_eq!(parse_counter(text, "Ip", "InHdrErrors"), Some(7));
        assert_eq!(parse_counter(text, "Icmp", "OutTimeExcds"), Some(4));
        assert_eq!(parse_counter(text, "Icmp", "Nope"), None);
        assert_eq!(parse_counter(text, "Tcp", "InSegs"), None);
    }

    #[test]
    fn link_packets_are_read_from_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
            spk0:    4200      70    0    0    0     0          0         0     8400     140    0    0    0     0       0          0\n";
        assert_eq!(parse_link_packets(text, "spk0"), Some((70, 140)));
        assert_eq!(parse_link_packets(text, "lo"), Some((0, 0)));
        assert_eq!(parse_link_packets(text, "eth9"), None);
    }

    #[test]
    fn cpu_ticks_count_from_the_end_of_the_command_name() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 30 12 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let (rss, hwm) = memory_kib(std::process::id()).expect("own status");
        assert!(rss > 0 && hwm >= rss, "{rss} {hwm}");
        assert!(cpu_time(std::process::id()).is_some());
    }
}
