//! BIRD 2.0.12, configured by the test and read through its control socket.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::super::{DEADLINE, Lab, ROUTER4, ROUTER6, poll};
use super::{Neighbor, ROUTER_AS, RibPath, Router, sorted};

use super::frr::wait_for_file;

/// BIRD 2.0.12, read through its control socket.
#[derive(Debug)]
pub(crate) struct Bird {
    ctl: PathBuf,
    /// Protocol name per neighbor address.
    protocols: Vec<(IpAddr, String)>,
}

impl Bird {
    pub(crate) const BIRD: &'static str = "bird";

    pub(crate) fn start(lab: &mut Lab, neighbors: &[Neighbor]) -> Bird {
        let dir = lab.daemon_dir("bird", None);
        let protocols: Vec<(IpAddr, String)> = neighbors
            .iter()
            .enumerate()
            .map(|(i, n)| (n.addr, format!("peer{i}")))
            .collect();
        let mut conf = format!("router id {ROUTER4};\nprotocol device {{}}\n");
        for (n, (_, name)) in neighbors.iter().zip(&protocols) {
            let local: IpAddr = if n.addr.is_ipv4() {
                ROUTER4.into()
            } else {
                ROUTER6.into()
            };
            conf += &format!(
                "protocol bgp {name} {{\n  local {local} as {ROUTER_AS};\n  neighbor {} as {};\n  passive on;\n",
                n.addr, n.remote_as
            );
            if n.remote_as == ROUTER_AS {
                // iBGP is multihop by default in BIRD; the lab's peers share a link.
                conf += "  direct;\n";
            }
            if let Some(p) = &n.password {
                conf += &format!("  password \"{p}\";\n");
            }
            if let Some(h) = n.hold_time_secs {
                conf += &format!("  hold time {h};\n");
            }
            for (family, on) in [
                ("ipv4", n.families.ipv4_unicast),
                ("ipv6", n.families.ipv6_unicast),
            ] {
                if on {
                    conf +=
                        &format!("  {family} {{ import all; export none; gateway direct; }};\n");
                }
            }
            conf += "}\n";
        }
        let conf_path = dir.join("bird.conf");
        std::fs::write(&conf_path, conf).expect("write");
        let ctl = dir.join("bird.ctl");
        let ns = lab.router_ns();
        let pid = dir.join("bird.pid");
        let args = [
            Self::BIRD,
            "-f",
            "-c",
            conf_path.to_str().expect("utf-8"),
            "-s",
            ctl.to_str().expect("utf-8"),
            "-P",
            pid.to_str().expect("utf-8"),
        ];
        lab.start_daemon("bird", &ns, &args, &dir.join("bird.log"));
        wait_for_file(lab, &ctl);
        let bird = Bird { ctl, protocols };
        poll(
            "BIRD answers on its control socket",
            DEADLINE,
            Duration::from_millis(100),
            || bird.command("show status").map(|_| ()),
        );
        bird
    }

    /// One command on the control socket; the reply's text lines without their codes.
    /// Lines are `NNNN-text` (more follow), ` text` (continuation) or `NNNN text` (last).
    pub(crate) fn command(&self, command: &str) -> Result<Vec<String>, String> {
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
            let line = line.trim_end_matches('\n');
            let b = line.as_bytes();
            let has_code = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
            if has_code && b[4] == b' ' {
                let code = &line[..4];
                lines.push(line[5..].to_owned());
                return if code.starts_with('8') || code.starts_with('9') {
                    Err(format!("{command}: {line}"))
                } else {
                    Ok(lines)
                };
            }
            lines.push(
                if has_code {
                    &line[5..]
                } else {
                    line.trim_start()
                }
                .to_owned(),
            );
        }
    }

    fn protocol(&self, neighbor: IpAddr) -> &str {
        self.protocols
            .iter()
            .find(|(a, _)| *a == neighbor)
            .map(|(_, n)| n.as_str())
            .expect("a configured neighbor")
    }
}

impl Router for Bird {
    fn name(&self) -> &'static str {
        "BIRD"
    }

    /// Sums "Routes: N imported, ..." over the protocol's channels.
    fn accepted(&self, neighbor: IpAddr) -> Result<u64, String> {
        let lines = self.command(&format!("show protocols all {}", self.protocol(neighbor)))?;
        Ok(lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("Routes:"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    fn session_state(&self, neighbor: IpAddr) -> Result<(), String> {
        let lines = self.command(&format!("show protocols all {}", self.protocol(neighbor)))?;
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
