//! FRR 8.4 (zebra + bgpd), configured by the test and read through bgpd's vty socket.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_proto::bgp::open::Families;
use serde_json::Value;

use super::super::{DEADLINE, Lab, ROUTER4, poll};
use super::{Neighbor, ROUTER_AS, RibPath, Router, family_of, sorted};

/// FRR 8.4 bgpd + zebra, read through bgpd's vty socket.
#[derive(Debug)]
pub(crate) struct Frr {
    dir: PathBuf,
}

impl Frr {
    pub(crate) const ZEBRA: &'static str = "/usr/lib/frr/zebra";
    pub(crate) const BGPD: &'static str = "/usr/lib/frr/bgpd";

    /// Starts zebra, then bgpd, in the lab's router namespace.
    pub(crate) fn start(lab: &mut Lab, neighbors: &[Neighbor]) -> Frr {
        let dir = lab.daemon_dir("frr", None);
        std::fs::write(dir.join("zebra.conf"), "hostname r\nlog stdout\n").expect("write");
        std::fs::write(dir.join("bgpd.conf"), frr_config(neighbors)).expect("write");
        lab.daemon_dir("frr", Some("frr:frr"));
        let ns = lab.router_ns();
        let d = dir.to_str().expect("utf-8 path").to_owned();
        let zserv = format!("{d}/zserv.api");
        let common = ["-z", &zserv, "--vty_socket", &d, "-P", "0"];
        let zebra_conf = format!("{d}/zebra.conf");
        let zebra_pid = format!("{d}/zebra.pid");
        let mut args = vec![Self::ZEBRA, "-f", &zebra_conf, "-i", &zebra_pid];
        args.extend_from_slice(&common);
        lab.start_daemon("zebra", &ns, &args, &dir.join("zebra.log"));
        wait_for_file(lab, &dir.join("zserv.api"));
        let bgpd_conf = format!("{d}/bgpd.conf");
        let bgpd_pid = format!("{d}/bgpd.pid");
        let mut args = vec![Self::BGPD, "-f", &bgpd_conf, "-i", &bgpd_pid];
        args.extend_from_slice(&common);
        lab.start_daemon("bgpd", &ns, &args, &dir.join("bgpd.log"));
        wait_for_file(lab, &dir.join("bgpd.vty"));
        let frr = Frr { dir };
        // bgpd has read its configuration once the neighbors show up.
        poll(
            "FRR bgpd answers on its vty",
            DEADLINE,
            Duration::from_millis(100),
            || frr.vty("show bgp summary json").map(|_| ()),
        );
        frr
    }

    /// One command on bgpd's vty socket: `command\0`, answer up to three NULs and a status byte.
    pub(crate) fn vty(&self, command: &str) -> Result<String, String> {
        vty(&self.dir.join("bgpd.vty"), &[command])
    }

    /// A command of the enable node (`clear ...`).
    pub(crate) fn vty_enable(&self, command: &str) -> Result<String, String> {
        vty(&self.dir.join("bgpd.vty"), &["enable", command])
    }

    /// A `... json` command's answer, parsed.
    pub(crate) fn json(&self, command: &str) -> Result<Value, String> {
        let text = self.vty(command)?;
        serde_json::from_str(&text).map_err(|e| format!("{command}: {e}: {text}"))
    }
}

pub(super) fn wait_for_file(lab: &mut Lab, path: &Path) {
    poll(
        &format!("{} appears", path.display()),
        DEADLINE,
        Duration::from_millis(50),
        || {
            lab.assert_daemons_alive();
            if path.exists() {
                Ok(())
            } else {
                Err("absent".into())
            }
        },
    );
}

/// Commands on one vty connection (it starts in the view node: `enable` first for `clear`);
/// returns the last one's answer.
fn vty(socket: &Path, commands: &[&str]) -> Result<String, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    for command in commands {
        s.write_all(command.as_bytes())
            .and_then(|()| s.write_all(&[0]))
            .map_err(|e| e.to_string())?;
        text = vty_answer(&mut s, command)?;
    }
    Ok(text)
}

/// One answer: text, then three NULs and a status byte (0 = success).
fn vty_answer(s: &mut UnixStream, command: &str) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("vty closed: {}", String::from_utf8_lossy(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let [.., 0, 0, 0, status] = buf[..] {
            let text = String::from_utf8_lossy(&buf[..buf.len() - 4]).into_owned();
            return if status == 0 {
                Ok(text)
            } else {
                Err(format!("{command}: status {status}: {text}"))
            };
        }
    }
}

fn frr_config(neighbors: &[Neighbor]) -> String {
    let mut c = String::from("hostname r\nlog stdout\n!\nbgp route-map delay-timer 0\n");
    c += &format!(
        "router bgp {ROUTER_AS}\n bgp router-id {ROUTER4}\n no bgp default ipv4-unicast\n"
    );
    for n in neighbors {
        c += &format!(" neighbor {} remote-as {}\n", n.addr, n.remote_as);
        if n.is_passive {
            c += &format!(" neighbor {} passive\n", n.addr);
        } else {
            c += &format!(" neighbor {} timers connect 1\n", n.addr);
        }
        if let Some(p) = &n.password {
            c += &format!(" neighbor {} password {p}\n", n.addr);
        }
        if let Some(h) = n.hold_time_secs {
            c += &format!(" neighbor {} timers {} {h}\n", n.addr, (h / 3).max(1));
        }
        if let Some(hops) = n.ebgp_multihop {
            c += &format!(" neighbor {} ebgp-multihop {hops}\n", n.addr);
        }
    }
    for family in ["ipv4", "ipv6"] {
        c += &format!(
            " address-family {family} unicast\n  maximum-paths 4\n  maximum-paths ibgp 4\n"
        );
        let wants = |f: Families| {
            if family == "ipv4" {
                f.ipv4_unicast
            } else {
                f.ipv6_unicast
            }
        };
        for n in neighbors.iter().filter(|n| wants(n.families)) {
            c += &format!(
                "  neighbor {0} activate\n  neighbor {0} route-map ALLOW in\n  neighbor {0} route-map DENY out\n",
                n.addr
            );
        }
        c += " exit-address-family\n";
    }
    c += "!\nroute-map ALLOW permit 10\n!\nroute-map DENY deny 10\n!\n";
    c
}

impl Router for Frr {
    fn name(&self) -> &'static str {
        "FRR"
    }

    fn accepted(&self, neighbor: IpAddr) -> Result<u64, String> {
        let mut total = 0;
        for family in ["ipv4", "ipv6"] {
            let v = self.json(&format!("show bgp {family} unicast summary json"))?;
            total += v["peers"][neighbor.to_string()]["pfxRcd"]
                .as_u64()
                .unwrap_or(0);
        }
        Ok(total)
    }

    fn session_state(&self, neighbor: IpAddr) -> Result<(), String> {
        let v = self.json(&format!("show bgp neighbors {neighbor} json"))?;
        match v[neighbor.to_string()]["bgpState"].as_str() {
            Some("Established") => Ok(()),
            other => Err(format!("bgpState {other:?}")),
        }
    }

    fn paths(&self, prefix: &str) -> Result<Vec<RibPath>, String> {
        let v = self.json(&format!(
            "show bgp {} unicast {prefix} json",
            family_of(prefix)
        ))?;
        let Some(paths) = v["paths"].as_array() else {
            return Ok(Vec::new());
        };
        paths
            .iter()
            .map(|p| frr_path(p).ok_or_else(|| format!("cannot read {p}")))
            .collect()
    }
}

fn frr_path(p: &Value) -> Option<RibPath> {
    let words = |v: &Value| -> Vec<String> {
        v.as_str()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // An empty AS_PATH reads "Local".
    let as_path = words(&p["aspath"]["string"])
        .iter()
        .filter(|a| *a != "Local")
        .map(|a| a.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    let next_hop = p["nexthops"].as_array()?.iter().find_map(|nh| {
        (nh["scope"].as_str() != Some("link-local"))
            .then(|| nh["ip"].as_str()?.parse().ok())
            .flatten()
    })?;
    Some(RibPath {
        next_hop,
        as_path,
        communities: sorted(words(&p["community"]["string"])),
        large_communities: sorted(words(&p["largeCommunity"]["string"])),
        local_pref: p["locPrf"].as_u64().and_then(|l| u32::try_from(l).ok()),
    })
}
