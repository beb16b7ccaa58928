//! What the cluster lab reads back: who answers ARP/NDP for an IP, HTTP answers through a
//! Service, the speakers' metrics, CPU time and memory, the router's kernel routes, and which
//! speaker announces each layer-2 IP.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ferrolb_netlab::l2::{ArpAnswers, ArpAsker};
use ferrolb_netlab::{LabError, counters, l2};

use super::{ClusterLab, HTTP_PORT, LabNode};

impl ClusterLab {
    /// The MAC that answers ARP for `ip` from the client (`arping -c 1`), if any.
    pub fn arp_owner(&self, ip: Ipv4Addr) -> Option<String> {
        l2::arp_owner(&self.net.ns("client"), "eth0", ip)
    }

    /// The MAC that answers a neighbour solicitation for `ip` from the client (`ndisc6`).
    pub fn ndp_owner(&self, ip: Ipv6Addr) -> Option<String> {
        l2::ndp_owner(&self.net.ns("client"), "eth0", ip)
    }

    /// Asks ARP for every one of `ips` from each of `hosts` (role and its IPv4 address on
    /// `eth0`) at the same moment, one request each, and keeps every MAC that answered within
    /// `wait`: host role → answers.
    pub fn arp_answers(
        &self,
        hosts: &[(&str, Ipv4Addr)],
        ips: &[Ipv4Addr],
        wait: Duration,
    ) -> Result<BTreeMap<String, ArpAnswers>, LabError> {
        let mut askers = Vec::new();
        for (role, ip) in hosts {
            let asker = ArpAsker {
                ns: self.net.ns(role),
                iface: "eth0".into(),
                mac: self.net.mac(role, "eth0")?,
                ip: *ip,
            };
            askers.push(((*role).to_owned(), asker));
        }
        std::thread::scope(|scope| {
            let asks: Vec<_> = askers
                .iter()
                .map(|(role, asker)| (role, scope.spawn(move || l2::arp_answers(asker, ips, wait))))
                .collect();
            asks.into_iter()
                .map(|(role, ask)| {
                    let answers = ask
                        .join()
                        .map_err(|_| std::io::Error::other("ARP asker panicked"))
                        .and_then(|r| r)
                        .map_err(|e| LabError::Io {
                            what: format!("asking ARP from {role}"),
                            source: e,
                        })?;
                    Ok((role.clone(), answers))
                })
                .collect()
        })
    }

    /// The node whose `eth0` or `eth1` has `mac`.
    pub fn node_with_mac(&self, mac: &str) -> Option<&LabNode> {
        self.nodes.iter().find(|n| {
            n.mac.eq_ignore_ascii_case(mac)
                || n.mac2
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        })
    }

    /// An HTTP GET from host `role` to the Service at `ip`; the body is the serving node's name.
    pub fn http_get(&self, role: &str, ip: IpAddr) -> Option<String> {
        let url = match ip {
            IpAddr::V4(ip) => format!("http://{ip}:{HTTP_PORT}/"),
            IpAddr::V6(ip) => format!("http://[{ip}]:{HTTP_PORT}/"),
        };
        let out = self
            .net
            .exec(role, &["curl", "-s", "--max-time", "2", url.as_str()])
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Resident memory of node `index`'s speaker: (VmRSS, VmHWM) in KiB.
    pub fn speaker_memory_kib(&self, index: usize) -> Option<(u64, u64)> {
        counters::memory_kib(self.nodes.get(index)?.speaker?)
    }

    /// CPU time (user + system) the speaker of node `index` has used so far.
    pub fn speaker_cpu(&self, index: usize) -> Option<Duration> {
        counters::cpu_time(self.nodes.get(index)?.speaker?)
    }

    /// The value of one sample in the `/metrics` text of node `index`'s speaker: `series` is the
    /// metric name with its labels exactly as rendered (`name{a="x",b="y"}`).
    pub fn speaker_metric(&self, index: usize, series: &str) -> Option<f64> {
        sample(&self.speaker_metrics(index)?, series)
    }

    /// The `/metrics` text of node `index`'s speaker.
    pub fn speaker_metrics(&self, index: usize) -> Option<String> {
        let node = self.nodes.get(index)?;
        let url = format!("http://{}:7472/metrics", node.v4);
        let out = self
            .net
            .exec(&node.role, &["curl", "-s", "-m", "2", url.as_str()])
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The router's kernel route to `prefix` (`ip route show PREFIX`), empty when it has none.
    pub fn router_route(&self, prefix: &str) -> String {
        self.net.routes("router", prefix).unwrap_or_default()
    }

    /// Which running speakers announce each layer-2 IP (from their `/metrics`).
    pub fn layer2_announcers(&self) -> BTreeMap<IpAddr, Vec<String>> {
        let mut owners: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for (index, _) in self.running_speakers() {
            for (ip, node) in self
                .speaker_metrics(index)
                .as_deref()
                .map_or_else(Vec::new, layer2_announced)
            {
                owners.entry(ip).or_default().push(node);
            }
        }
        owners
    }

    /// When the membership has settled — every running speaker reports all running speakers
    /// alive, and each of `ips` and every other layer-2 IP has exactly one announcer — the owner
    /// of each layer-2 IP.
    pub(super) fn settled_owners(&self, ips: &[IpAddr]) -> Option<BTreeMap<IpAddr, String>> {
        let running = self.running_speakers();
        for (index, _) in &running {
            let live = self.speaker_metric(*index, "ferrolb_speaker_members_live")?;
            if live != running.len() as f64 {
                return None;
            }
        }
        let announcers = self.layer2_announcers();
        if ips.iter().any(|ip| !announcers.contains_key(ip)) {
            return None;
        }
        announcers
            .into_iter()
            .map(|(ip, nodes)| match &nodes[..] {
                [one] => Some((ip, one.clone())),
                _ => None,
            })
            .collect()
    }

    /// (index, node name) of each node whose speaker runs.
    fn running_speakers(&self) -> Vec<(usize, String)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.speaker.is_some())
            .map(|(i, n)| (i, n.name.clone()))
            .collect()
    }
}

/// The value of the sample `series` in a metrics text. Pure.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// (IP, node) of every `metallb_speaker_announced{...protocol="layer2"...} 1` sample. Pure.
fn layer2_announced(text: &str) -> Vec<(IpAddr, String)> {
    let label = |labels: &str, name: &str| -> Option<String> {
        let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
        let len = labels[start..].find('"')?;
        Some(labels[start..start + len].to_owned())
    };
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("metallb_speaker_announced{")?;
            let (labels, value) = rest.split_once('}')?;
            let is_on = value.trim() == "1";
            if !is_on || label(labels, "protocol")? != "layer2" {
                return None;
            }
            Some((label(labels, "ip")?.parse().ok()?, label(labels, "node")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer2_announcements_are_read_from_the_announced_metric() {
        let text = "# TYPE metallb_speaker_announced gauge\n\
            metallb_speaker_announced{ip=\"192.0.2.200\",node=\"node-1\",protocol=\"layer2\",service=\"default/web\"} 1\n\
            metallb_speaker_announced{ip=\"203.0.113.1\",node=\"node-1\",protocol=\"bgp\",service=\"default/b\"} 1\n\
            metallb_speaker_announced{ip=\"2001:db8::200\",node=\"node-1\",protocol=\"layer2\",service=\"default/web\"} 1\n\
            ferrolb_speaker_members_live 3\n";
        let got = layer2_announced(text);
        let ip = |s: &str| s.parse::<IpAddr>().expect("literal");
        assert_eq!(
            got,
            vec![
                (ip("192.0.2.200"), "node-1".to_owned()),
                (ip("2001:db8::200"), "node-1".to_owned())
            ]
        );
        assert_eq!(sample(text, "ferrolb_speaker_members_live"), Some(3.0));
        assert_eq!(sample(text, "ferrolb_speaker_members"), None);
    }
}
