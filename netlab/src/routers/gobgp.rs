//! GoBGP 3.10 inside a lab namespace. Its gRPC API listens on the namespace's own loopback, so
//! its CLI (with JSON output) runs inside the namespace too.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::{DEADLINE, Local, Neighbor, RibPath, Router, family_of};
use crate::command::run_in;
use crate::error::{LabError, io_error};
use crate::lab::Netlab;
use crate::poll::poll;

/// GoBGP's daemon.
pub const GOBGPD: &str = "gobgpd";
/// GoBGP's CLI.
pub const GOBGP: &str = "gobgp";
/// The API port on the namespace's loopback.
const API_PORT: &str = "50051";

/// A running GoBGP, stopped with the lab.
#[derive(Debug)]
pub struct Gobgp {
    ns: String,
    /// The daemon's PID.
    pub pid: u32,
}

impl Gobgp {
    /// See [`GOBGPD`].
    pub const GOBGPD: &'static str = GOBGPD;

    /// Starts gobgpd inside `role` (directory `gobgp-<role>` in the lab's, log `gobgpd.log`)
    /// with passive neighbors; returns once its API answers.
    pub fn start(
        lab: &mut Netlab,
        role: &str,
        local: &Local,
        neighbors: &[Neighbor],
    ) -> Result<Gobgp, LabError> {
        let dir = lab.path(&format!("gobgp-{role}"));
        std::fs::create_dir_all(&dir).map_err(io_error("gobgp directory"))?;
        let conf_path = dir.join("gobgpd.toml");
        std::fs::write(&conf_path, config(local, neighbors)).map_err(io_error("gobgpd.toml"))?;
        let conf = conf_path.to_string_lossy().into_owned();
        let api = format!("127.0.0.1:{API_PORT}");
        let args = [
            GOBGPD,
            "-f",
            &conf,
            "-p",
            "--pprof-disable",
            "--api-hosts",
            &api,
        ];
        let pid = lab.spawn("gobgpd", role, &args, &[], &dir.join("gobgpd.log"))?;
        let gobgp = Gobgp {
            ns: lab.ns(role),
            pid,
        };
        let mut died = None;
        let answered = poll(
            "GoBGP answers on its API",
            DEADLINE,
            Duration::from_millis(200),
            || {
                if let Err(e) = lab.processes().check_alive() {
                    died = Some(e);
                    return Ok(());
                }
                gobgp.json(&["neighbor"]).map(|_| ())
            },
        );
        died.map_or(answered, Err)?;
        Ok(gobgp)
    }

    /// `gobgp ARGS -j` inside the namespace, parsed (`Null` for empty output).
    pub fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut full = vec![GOBGP, "-p", API_PORT];
        full.extend_from_slice(args);
        full.push("-j");
        let out = run_in(&self.ns, &full).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{args:?}: {}{text}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("{args:?}: {e}: {text}"))
    }
}

/// gobgpd's configuration: accept everything in, reject everything out (it re-advertises all
/// otherwise), passive neighbors. Pure.
pub fn config(local: &Local, neighbors: &[Neighbor]) -> String {
    let mut conf = format!(
        "[global.config]\n  as = {}\n  router-id = \"{}\"\n\
         [global.apply-policy.config]\n  default-import-policy = \"accept-route\"\n  \
         default-export-policy = \"reject-route\"\n",
        local.asn, local.v4
    );
    for n in neighbors {
        conf += &format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
            n.addr, n.remote_as
        );
        if let Some(p) = &n.password {
            conf += &format!("    auth-password = \"{p}\"\n");
        }
        if let Some(h) = n.hold_time_secs {
            conf += &format!(
                "  [neighbors.timers.config]\n    hold-time = {h}\n    keepalive-interval = {}\n",
                (h / 3).max(1)
            );
        }
        conf += "  [neighbors.transport.config]\n    passive-mode = true\n";
        for (family, on) in [
            ("ipv4-unicast", n.families.ipv4_unicast),
            ("ipv6-unicast", n.families.ipv6_unicast),
        ] {
            if on {
                conf += &format!(
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
                );
            }
        }
    }
    conf
}

impl Router for Gobgp {
    fn name(&self) -> &'static str {
        "GoBGP"
    }

    /// Sums `afi_safis[].state.accepted` of the neighbor.
    fn accepted(&self, neighbor: IpAddr) -> Result<u64, String> {
        let v = self.json(&["neighbor", &neighbor.to_string()])?;
        let families = v["afi_safis"]
            .as_array()
            .ok_or_else(|| format!("no afi_safis in {v}"))?;
        Ok(families
            .iter()
            .filter_map(|f| f["state"]["accepted"].as_u64())
            .sum())
    }

    fn session_state(&self, neighbor: IpAddr) -> Result<(), String> {
        let v = self.json(&["neighbor", &neighbor.to_string()])?;
        let state = &v["state"]["session_state"];
        let up = state
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("established"))
            || state.as_u64() == Some(6);
        if up {
            Ok(())
        } else {
            Err(format!("session_state {state}"))
        }
    }

    fn paths(&self, prefix: &str) -> Result<Vec<RibPath>, String> {
        let v = match self.json(&["global", "rib", "-a", family_of(prefix), prefix]) {
            Ok(v) => v,
            Err(e) if e.contains("not found") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let Some(paths) = v[prefix].as_array() else {
            return Ok(Vec::new());
        };
        paths
            .iter()
            .map(|p| gobgp_path(p).ok_or_else(|| format!("cannot read {p}")))
            .collect()
    }
}

fn gobgp_path(p: &Value) -> Option<RibPath> {
    let mut path = RibPath {
        next_hop: IpAddr::from([0, 0, 0, 0]),
        as_path: Vec::new(),
        communities: Vec::new(),
        large_communities: Vec::new(),
        local_pref: None,
    };
    for attr in p["attrs"].as_array()? {
        match attr["type"].as_u64()? {
            2 => {
                for seg in attr["as_paths"].as_array().into_iter().flatten() {
                    for asn in seg["asns"].as_array()? {
                        path.as_path.push(u32::try_from(asn.as_u64()?).ok()?);
                    }
                }
            }
            3 | 14 => path.next_hop = attr["nexthop"].as_str()?.parse().ok()?,
            5 => path.local_pref = u32::try_from(attr["value"].as_u64()?).ok(),
            8 => {
                for c in attr["communities"].as_array()? {
                    let c = c.as_u64()?;
                    path.communities.push(format!("{}:{}", c >> 16, c & 0xffff));
                }
            }
            32 => {
                for l in attr["value"].as_array()? {
                    path.large_communities.push(format!(
                        "{}:{}:{}",
                        l["ASN"].as_u64()?,
                        l["LocalData1"].as_u64()?,
                        l["LocalData2"].as_u64()?
                    ));
                }
            }
            _ => {}
        }
    }
    path.communities.sort();
    path.large_communities.sort();
    Some(path)
}
