//! FRR 8.4 (zebra + bgpd) inside a lab namespace, read through bgpd's vty socket (`command\0`
//! in; text, three NULs and a status byte out), far cheaper than spawning `vtysh`. With zebra,
//! received routes reach the namespace's kernel table, where ECMP shows as several next hops.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{DEADLINE, Families, Local, Neighbor, RibPath, Router, family_of, sorted};
use crate::command::must;
use crate::error::{LabError, io_error};
use crate::lab::Netlab;
use crate::poll::poll;

/// FRR's zebra.
pub const ZEBRA: &str = "/usr/lib/frr/zebra";
/// FRR's bgpd.
pub const BGPD: &str = "/usr/lib/frr/bgpd";

/// A running FRR (zebra and bgpd, and bfdd when [`Frr::start_bfdd`] started it), stopped with
/// the lab.
#[derive(Debug)]
pub struct Frr {
    dir: PathBuf,
    /// The lab role (namespace) it runs in.
    role: String,
    /// PIDs of zebra and bgpd.
    pub pids: [u32; 2],
}

impl Frr {
    /// See [`ZEBRA`].
    pub const ZEBRA: &'static str = ZEBRA;
    /// See [`BGPD`].
    pub const BGPD: &'static str = BGPD;
    /// FRR's bfdd (see [`Frr::start_bfdd`]).
    pub const BFDD: &'static str = super::bfdd::BFDD;

    /// Starts zebra, then bgpd with the configuration [`config`] makes, inside `role`; and
    /// bfdd when a neighbor asks for BFD.
    pub fn start_with(
        lab: &mut Netlab,
        role: &str,
        local: &Local,
        neighbors: &[Neighbor],
    ) -> Result<Frr, LabError> {
        let mut frr = Self::start(lab, role, &config(local, neighbors))?;
        if neighbors.iter().any(|n| n.bfd) {
            frr.start_bfdd(lab, "hostname r\nlog stdout\nlog timestamp precision 3\n")?;
        }
        Ok(frr)
    }

    /// Starts zebra, then bgpd with `bgpd_conf`, inside `role`; returns once bgpd answers on
    /// its vty. FRR refuses to run as root, so its directory (`frr-<role>` in the lab's
    /// directory, with the logs `zebra.log` and `bgpd.log`) belongs to the `frr` user.
    pub fn start(lab: &mut Netlab, role: &str, bgpd_conf: &str) -> Result<Frr, LabError> {
        let dir = lab.path(&format!("frr-{role}"));
        std::fs::create_dir_all(&dir).map_err(io_error("frr directory"))?;
        std::fs::write(dir.join("zebra.conf"), "hostname r\nlog stdout\n")
            .map_err(io_error("zebra.conf"))?;
        std::fs::write(dir.join("bgpd.conf"), bgpd_conf).map_err(io_error("bgpd.conf"))?;
        let d = dir.to_string_lossy().into_owned();
        must(&["chown", "-R", "frr:frr", &d])?;
        let zserv = format!("{d}/zserv.api");
        let common = ["-z", zserv.as_str(), "--vty_socket", d.as_str(), "-P", "0"];
        let mut pids = [0; 2];
        for (i, (daemon, name, socket)) in
            [(ZEBRA, "zebra", "zserv.api"), (BGPD, "bgpd", "bgpd.vty")]
                .into_iter()
                .enumerate()
        {
            let conf = format!("{d}/{name}.conf");
            let pid_file = format!("{d}/{name}.pid");
            let mut args = vec![daemon, "-f", conf.as_str(), "-i", pid_file.as_str()];
            args.extend_from_slice(&common);
            pids[i] = lab.spawn(name, role, &args, &[], &dir.join(format!("{name}.log")))?;
            wait_for_socket(lab, &dir.join(socket))?;
        }
        let frr = Frr {
            dir,
            role: role.to_owned(),
            pids,
        };
        // bgpd has read its configuration once it answers.
        poll(
            "FRR bgpd answers on its vty",
            DEADLINE,
            Duration::from_millis(100),
            || frr.vty("show bgp summary json").map(|_| ()),
        )?;
        Ok(frr)
    }

    /// One command on bgpd's vty; its answer.
    pub fn vty(&self, command: &str) -> Result<String, String> {
        vty(&self.dir.join("bgpd.vty"), &[command])
    }

    /// A command of the enable node (`clear ...`).
    pub fn vty_enable(&self, command: &str) -> Result<String, String> {
        vty(&self.dir.join("bgpd.vty"), &["enable", command])
    }

    /// Changes bgpd's running configuration as an operator would: `lines` in the configure
    /// node (`router bgp 64512`, `neighbor 192.0.2.11 bfd`, ...).
    pub fn configure(&self, lines: &[&str]) -> Result<(), String> {
        let mut all = vec!["enable", "configure terminal"];
        all.extend_from_slice(lines);
        vty(&self.dir.join("bgpd.vty"), &all).map(|_| ())
    }

    /// Its directory: configurations, logs (`zebra.log`, `bgpd.log`, `bfdd.log`), sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab role it runs in.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// A `... json` command's answer, parsed.
    pub fn json(&self, command: &str) -> Result<Value, String> {
        let text = self.vty(command)?;
        serde_json::from_str(&text).map_err(|e| format!("{command}: {e}: {text}"))
    }
}

/// Waits for a daemon's socket file, failing early (with its log) when a daemon died.
pub(crate) fn wait_for_socket(lab: &mut Netlab, path: &Path) -> Result<(), LabError> {
    let mut died = None;
    let waited = poll(
        &format!("{} appears", path.display()),
        DEADLINE,
        Duration::from_millis(50),
        || {
            if let Err(e) = lab.processes().check_alive() {
                died = Some(e);
                return Ok(());
            }
            if path.exists() {
                Ok(())
            } else {
                Err("absent".into())
            }
        },
    );
    died.map_or(waited, Err)
}

/// Commands on one vty connection of any FRR daemon (it starts in the view node: `enable`
/// first for `clear`); returns the last one's answer.
pub fn vty(socket: &Path, commands: &[&str]) -> Result<String, String> {
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

/// bgpd's configuration for `neighbors`: inbound permit-all and outbound deny-all route-maps (FRR
/// 8.4 requires a policy for eBGP), `maximum-paths 4` for ECMP, no route-refresh delay. Pure.
pub fn config(local: &Local, neighbors: &[Neighbor]) -> String {
    let mut c = String::from("hostname r\nlog stdout\n!\nbgp route-map delay-timer 0\n");
    c += &format!(
        "router bgp {}\n bgp router-id {}\n no bgp default ipv4-unicast\n",
        local.asn, local.v4
    );
    for n in neighbors {
        c += &neighbor_lines(n);
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

fn neighbor_lines(n: &Neighbor) -> String {
    let mut c = format!(" neighbor {} remote-as {}\n", n.addr, n.remote_as);
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
    if n.bfd {
        // FRR's defaults: 300 ms × 3, the same as MetalLB's BFDProfile defaults.
        c += &format!(" neighbor {} bfd\n", n.addr);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_configuration_accepts_in_denies_out_and_sets_each_neighbor_option() {
        let local = Local {
            asn: 64600,
            v4: "192.0.2.254".parse().expect("literal"),
            v6: "2001:db8:1::fe".parse().expect("literal"),
        };
        let mut dialing =
            Neighbor::new("192.0.2.1".parse().expect("literal"), 64512, Families::DUAL);
        dialing.is_passive = false;
        dialing.password = Some("s3cret".into());
        dialing.hold_time_secs = Some(9);
        dialing.bfd = true;
        let v6_only = Neighbor::new(
            "2001:db8:1::1".parse().expect("literal"),
            64512,
            Families {
                ipv4_unicast: false,
                ipv6_unicast: true,
            },
        );
        let c = config(&local, &[dialing, v6_only]);
        for line in [
            "router bgp 64600",
            " bgp router-id 192.0.2.254",
            " neighbor 192.0.2.1 timers connect 1",
            " neighbor 192.0.2.1 password s3cret",
            " neighbor 192.0.2.1 timers 3 9",
            " neighbor 192.0.2.1 bfd",
            " neighbor 2001:db8:1::1 passive",
            "  neighbor 192.0.2.1 route-map ALLOW in",
            "  neighbor 2001:db8:1::1 route-map DENY out",
        ] {
            assert!(c.lines().any(|l| l == line), "{line:?} missing in\n{c}");
        }
        let v4_part = &c[c.find("address-family ipv4").expect("v4")
            ..c.find("address-family ipv6").expect("v6")];
        assert!(!v4_part.contains("2001:db8:1::1"), "{v4_part}");
    }

    #[test]
    fn a_path_is_read_from_frr_json() {
        let p = json!({
            "aspath": {"string": "64512"}, "locPrf": 100,
            "nexthops": [{"ip": "fe80::1", "scope": "link-local"}, {"ip": "2001:db8:1::1", "scope": "global"}],
            "community": {"string": "64512:200 64512:100"},
            "largeCommunity": {"string": "64512:1:2"}
        });
        let path = frr_path(&p).expect("a path");
        assert_eq!(
            path.next_hop,
            "2001:db8:1::1".parse::<IpAddr>().expect("literal")
        );
        assert_eq!(path.as_path, vec![64512]);
        assert_eq!(path.communities, vec!["64512:100", "64512:200"]);
        assert_eq!(path.local_pref, Some(100));
        let local = json!({"aspath": {"string": "Local"}, "nexthops": [{"ip": "192.0.2.1"}]});
        assert_eq!(frr_path(&local).expect("a path").as_path, Vec::<u32>::new());
    }
}
