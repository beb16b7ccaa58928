//! BIRD 2.0.12 inside a lab namespace, read through its control socket (line protocol:
//! `NNNN-text` lines, ` text` continuations, a last `NNNN text` line).

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::frr::wait_for_socket;
use super::{DEADLINE, Local, Neighbor, RibPath, Router, sorted};
use crate::error::{LabError, io_error};
use crate::lab::Netlab;
use crate::poll::poll;

/// BIRD's daemon.
pub const BIRD: &str = "bird";

/// A running BIRD, stopped with the lab.
#[derive(Debug)]
pub struct Bird {
    ctl: PathBuf,
    /// Protocol name per neighbor address.
    protocols: Vec<(IpAddr, String)>,
    /// The daemon's PID.
    pub pid: u32,
}

impl Bird {
    /// See [`BIRD`].
    pub const BIRD: &'static str = BIRD;

    /// Starts BIRD inside `role` (directory `bird-<role>` in the lab's, log `bird.log`) with
    /// one passive protocol per neighbor; returns once it answers on its control socket.
    pub fn start(
        lab: &mut Netlab,
        role: &str,
        local: &Local,
        neighbors: &[Neighbor],
    ) -> Result<Bird, LabError> {
        let dir = lab.path(&format!("bird-{role}"));
        std::fs::create_dir_all(&dir).map_err(io_error("bird directory"))?;
        let protocols: Vec<(IpAddr, String)> = neighbors
            .iter()
            .enumerate()
            .map(|(i, n)| (n.addr, format!("peer{i}")))
            .collect();
        let conf_path = dir.join("bird.conf");
        std::fs::write(&conf_path, config(local, neighbors)).map_err(io_error("bird.conf"))?;
        let ctl = dir.join("bird.ctl");
        let pid_file = dir.join("bird.pid");
        let (conf, ctl_path, pid_path) = (
            conf_path.to_string_lossy().into_owned(),
            ctl.to_string_lossy().into_owned(),
            pid_file.to_string_lossy().into_owned(),
        );
        let args = [BIRD, "-f", "-c", &conf, "-s", &ctl_path, "-P", &pid_path];
        let pid = lab.spawn("bird", role, &args, &[], &dir.join("bird.log"))?;
        wait_for_socket(lab, &ctl)?;
        let bird = Bird {
            ctl,
            protocols,
            pid,
        };
        poll(
            "BIRD answers on its control socket",
            DEADLINE,
            Duration::from_millis(100),
            || bird.command("show status").map(|_| ()),
        )?;
        Ok(bird)
    }

    /// One command on the control socket; the reply's text lines without their codes.
    pub fn command(&self, command: &str) -> Result<Vec<String>, String> {
        let s = UnixStream::connect(&self.ctl).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).map_err(|e| e.to_string())?;
        (&s).write_all(format!("{command}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err(format!("control socket closed after {lines:?}"));
            }
            match reply_line(line.trim_end_matches('\n')) {
                Line::More(text) => lines.push(text),
                Line::Last { code, text } => {
                    lines.push(text.clone());
                    return if code.starts_with('8') || code.starts_with('9') {
                        Err(format!("{command}: {code} {text}"))
                    } else {
                        Ok(lines)
                    };
                }
            }
        }
    }

    fn protocol(&self, neighbor: IpAddr) -> Result<&str, String> {
        self.protocols
            .iter()
            .find(|(a, _)| *a == neighbor)
            .map(|(_, n)| n.as_str())
            .ok_or_else(|| format!("{neighbor} is no configured neighbor"))
    }
}

/// One line of a control-socket reply.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `NNNN-text` or ` text`: more lines follow.
    More(String),
    /// `NNNN text`: the reply's last line.
    Last { code: String, text: String },
}

fn reply_line(line: &str) -> Line {
    let b = line.as_bytes();
    let has_code = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
    match (has_code, b.get(4)) {
        (true, Some(b' ')) => Line::Last {
            code: line[..4].to_owned(),
            text: line[5..].to_owned(),
        },
        (true, _) => Line::More(line[5..].to_owned()),
        (false, _) => Line::More(line.trim_start().to_owned()),
    }
}

/// BIRD's configuration: one passive BGP protocol per neighbor, importing everything and
/// exporting nothing, next hops resolved on the shared link, BFD where asked. Pure.
pub fn config(local: &Local, neighbors: &[Neighbor]) -> String {
    let mut conf = format!("router id {};\nprotocol device {{}}\n", local.v4);
    if neighbors.iter().any(|n| n.bfd) {
        // BIRD's defaults: 100 ms out (slowed to the peer's Required Min RX), 10 ms in, × 5.
        conf += "protocol bfd {}\n";
    }
    for (i, n) in neighbors.iter().enumerate() {
        let source: IpAddr = if n.addr.is_ipv4() {
            local.v4.into()
        } else {
            local.v6.into()
        };
        conf += &format!(
            "protocol bgp peer{i} {{\n  local {source} as {};\n  neighbor {} as {};\n  passive on;\n",
            local.asn, n.addr, n.remote_as
        );
        if n.remote_as == local.asn {
            // iBGP is multihop by default in BIRD; the lab's peers share a link.
            conf += "  direct;\n";
        }
        if let Some(p) = &n.password {
            conf += &format!("  password \"{p}\";\n");
        }
        if let Some(h) = n.hold_time_secs {
            conf += &format!("  hold time {h};\n");
        }
        if n.bfd {
            conf += "  bfd on;\n";
        }
        for (family, on) in [
            ("ipv4", n.families.ipv4_unicast),
            ("ipv6", n.families.ipv6_unicast),
        ] {
            if on {
                conf += &format!("  {family} {{ import all; export none; gateway direct; }};\n");
            }
        }
        conf += "}\n";
    }
    conf
}

impl Router for Bird {
    fn name(&self) -> &'static str {
        "BIRD"
    }

    /// Sums "Routes: N imported, ..." over the protocol's channels.
    fn accepted(&self, neighbor: IpAddr) -> Result<u64, String> {
        let lines = self.command(&format!("show protocols all {}", self.protocol(neighbor)?))?;
        Ok(lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("Routes:"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    fn session_state(&self, neighbor: IpAddr) -> Result<(), String> {
        let lines = self.command(&format!("show protocols all {}", self.protocol(neighbor)?))?;
        let state = lines
            .iter()
            .find(|l| l.trim_start().starts_with("BGP state:"));
        match state {
            Some(l) if l.contains("Established") => Ok(()),
            _ => Err(format!("{state:?}")),
        }
    }

    fn paths(&self, prefix: &str) -> Result<Vec<RibPath>, String> {
        let lines = match self.command(&format!("show route {prefix} all")) {
            Ok(lines) => lines,
            Err(e) if e.contains("Network not found") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // Each path starts with a line naming its protocol ("... unicast [peer0 ...]").
        let mut paths = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for line in &lines {
            if line.contains(" unicast [") || line.starts_with("unicast [") {
                paths.extend(current.take());
                current = Some(Vec::new());
            } else if let Some(attrs) = current.as_mut() {
                attrs.push(line.trim());
            }
        }
        paths.extend(current);
        paths
            .iter()
            .map(|attrs| bird_path(attrs).ok_or_else(|| format!("cannot read {lines:?}")))
            .collect()
    }
}

fn bird_path(attrs: &[&str]) -> Option<RibPath> {
    let get = |key: &str| {
        attrs
            .iter()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
            .unwrap_or_default()
    };
    // "(64512,100) (64512,200)" and "(64512, 1, 2)" into "64512:100" and "64512:1:2".
    let tuples = |text: &str| -> Vec<String> {
        text.split(')')
            .filter_map(|t| t.trim().strip_prefix('('))
            .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>().join(":"))
            .collect()
    };
    let as_path = get("BGP.as_path:")
        .split_whitespace()
        .map(|a| a.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    Some(RibPath {
        next_hop: get("BGP.next_hop:")
            .split_whitespace()
            .next()?
            .parse()
            .ok()?,
        communities: sorted(tuples(get("BGP.community:"))),
        large_communities: sorted(tuples(get("BGP.large_community:"))),
        // BIRD gives eBGP routes its default LOCAL_PREF on import; only an iBGP path (empty
        // AS_PATH in this lab) shows the one we sent.
        local_pref: get("BGP.local_pref:")
            .parse()
            .ok()
            .filter(|_| as_path.is_empty()),
        as_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_are_told_apart_by_code_and_separator() {
        assert_eq!(reply_line("1002-peer0 BGP"), Line::More("peer0 BGP".into()));
        assert_eq!(
            reply_line("  Routes: 3 imported"),
            Line::More("Routes: 3 imported".into())
        );
        assert_eq!(
            reply_line("0000 "),
            Line::Last {
                code: "0000".into(),
                text: String::new()
            }
        );
        assert_eq!(
            reply_line("8001 Network not found"),
            Line::Last {
                code: "8001".into(),
                text: "Network not found".into()
            }
        );
    }

    #[test]
    fn a_path_is_read_from_bird_attributes() {
        let attrs = [
            "BGP.origin: IGP",
            "BGP.as_path: ",
            "BGP.next_hop: 192.0.2.11",
            "BGP.local_pref: 250",
            "BGP.community: (64600,7)",
            "BGP.large_community: (64600, 9, 9)",
        ];
        let path = bird_path(&attrs).expect("a path");
        assert_eq!(path.as_path, Vec::<u32>::new());
        assert_eq!(path.local_pref, Some(250));
        assert_eq!(path.communities, vec!["64600:7"]);
        assert_eq!(path.large_communities, vec!["64600:9:9"]);
    }
}
