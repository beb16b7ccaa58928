//! BFD at the lab's routers: FRR 8.4's bfdd (started beside zebra, with its own vty socket
//! and `--bfdctl` inside the lab's directory) and BIRD 2.0.12's `protocol bfd`, and what each
//! says about a session, reduced to plain values.
//!
//! Facts that cost time to find: bfdd's `show bfd ...` commands are not in the view node a vty
//! connection starts in (`enable` first); bfdd needs zebra for the interfaces of single-hop
//! peers; bgpd's `neighbor X bfd` reaches bfdd through zebra, so bfdd may start after bgpd
//! (zebra replays the registrations); BIRD's multihop sessions send TTL 64, under MetalLB's
//! default `minimumTtl` of 254.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::DEADLINE;
use super::frr::{Frr, vty, wait_for_socket};
use crate::error::{LabError, io_error};
use crate::lab::Netlab;
use crate::poll::poll;

/// FRR's bfdd.
pub const BFDD: &str = "/usr/lib/frr/bfdd";

/// What bfdd's `show bfd peers json` says about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdPeer {
    /// `up`, `down`, `init`, `shutdown`.
    pub status: String,
    /// Seconds in the current state.
    pub uptime_secs: u64,
    /// The peer's discriminator.
    pub remote_id: u64,
    /// The peer's Required Min RX, ms.
    pub remote_receive_ms: u64,
    /// The peer's Desired Min TX, ms.
    pub remote_transmit_ms: u64,
    /// The peer's Detect Mult.
    pub remote_multiplier: u64,
    /// bfdd's local diagnostic (`control detection time expired`, ...).
    pub diagnostic: String,
}

/// The peer at `peer` (single hop or multihop) in `show bfd peers json` output. Pure.
pub fn parse_peer(text: &str, peer: IpAddr, multihop: bool) -> Result<BfdPeer, String> {
    let p = find(text, peer, multihop)?;
    let num = |k: &str| p[k].as_u64().unwrap_or(0);
    Ok(BfdPeer {
        status: p["status"].as_str().unwrap_or("").to_owned(),
        uptime_secs: num("uptime"),
        remote_id: num("remote-id"),
        remote_receive_ms: num("remote-receive-interval"),
        remote_transmit_ms: num("remote-transmit-interval"),
        remote_multiplier: num("remote-detect-multiplier"),
        diagnostic: p["diagnostic"].as_str().unwrap_or("").to_owned(),
    })
}

/// `session-down` of the peer in `show bfd peers counters json` output: how often it left Up.
pub fn parse_down_events(text: &str, peer: IpAddr, multihop: bool) -> Result<u64, String> {
    find(text, peer, multihop)?["session-down"]
        .as_u64()
        .ok_or_else(|| format!("no session-down for {peer} in {text}"))
}

fn find(text: &str, peer: IpAddr, multihop: bool) -> Result<Value, String> {
    let all: Value = serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))?;
    let peer = peer.to_string();
    all.as_array()
        .and_then(|list| {
            list.iter().find(|p| {
                p["peer"].as_str() == Some(peer.as_str())
                    && p["multihop"].as_bool() == Some(multihop)
            })
        })
        .cloned()
        .ok_or_else(|| format!("no peer {peer} (multihop {multihop}) in {text}"))
}

impl Frr {
    /// Starts bfdd beside this FRR's zebra (`bfdd.conf`: `conf`, log `bfdd.log` in its
    /// directory); returns once it answers. bgpd's `neighbor X bfd` sessions appear in it.
    pub fn start_bfdd(&mut self, lab: &mut Netlab, conf: &str) -> Result<u32, LabError> {
        let dir = self.dir().to_path_buf();
        std::fs::write(dir.join("bfdd.conf"), conf).map_err(io_error("bfdd.conf"))?;
        let d = dir.to_string_lossy().into_owned();
        crate::command::must(&["chown", "-R", "frr:frr", &d])?;
        let (zserv, conf, pid, ctl) = (
            format!("{d}/zserv.api"),
            format!("{d}/bfdd.conf"),
            format!("{d}/bfdd.pid"),
            format!("{d}/bfdd.sock"),
        );
        let args = [
            BFDD,
            "-f",
            &conf,
            "-i",
            &pid,
            "--bfdctl",
            &ctl,
            "-z",
            &zserv,
            "--vty_socket",
            &d,
            "-P",
            "0",
        ];
        let role = self.role().to_owned();
        let pid = lab.spawn("bfdd", &role, &args, &[], &dir.join("bfdd.log"))?;
        wait_for_socket(lab, &dir.join("bfdd.vty"))?;
        poll(
            "FRR bfdd answers on its vty",
            DEADLINE,
            Duration::from_millis(100),
            || self.bfdd_vty(&["show bfd peers json"]).map(|_| ()),
        )?;
        Ok(pid)
    }

    /// Commands on bfdd's vty, after `enable`; the last one's answer.
    pub fn bfdd_vty(&self, commands: &[&str]) -> Result<String, String> {
        let mut all = vec!["enable"];
        all.extend_from_slice(commands);
        vty(&self.dir().join("bfdd.vty"), &all)
    }

    /// bfdd's view of the peer at `peer`.
    pub fn bfd_peer(&self, peer: IpAddr, multihop: bool) -> Result<BfdPeer, String> {
        parse_peer(&self.bfdd_vty(&["show bfd peers json"])?, peer, multihop)
    }

    /// How often bfdd's session with `peer` left Up.
    pub fn bfd_down_events(&self, peer: IpAddr, multihop: bool) -> Result<u64, String> {
        let text = self.bfdd_vty(&["show bfd peers counters json"])?;
        parse_down_events(&text, peer, multihop)
    }
}

/// One row of BIRD's `show bfd sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdBfdSession {
    /// `Up`, `Down`, `Init`, `AdminDown`.
    pub state: String,
    /// When the state last changed (BIRD's clock, as printed). BIRD keeps it on its monotonic
    /// clock and converts it to wall time when printing, so two reads of an unchanged session
    /// may differ by a millisecond: compare with [`BirdBfdSession::since_ms`] and a tolerance.
    pub since: String,
    /// The transmit interval in use, in ms.
    pub interval_ms: u64,
    /// The Detection Time, in ms.
    pub timeout_ms: u64,
}

impl BirdBfdSession {
    /// `since` (`HH:MM:SS.mmm`, the default time format) in milliseconds of the day.
    pub fn since_ms(&self) -> Option<u64> {
        let (hms, ms) = self.since.split_once('.').unwrap_or((&self.since, "0"));
        let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<u64>().ok()?)
    }
}

/// The session with `ip` in `show bfd sessions` output (one line per session: address,
/// interface, state, since, interval, timeout). Pure.
pub fn parse_bird_session(text: &str, ip: IpAddr) -> Result<BirdBfdSession, String> {
    let ms = |s: &str| s.parse::<f64>().map(|v| (v * 1000.0).round() as u64).ok();
    let ip = ip.to_string();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [addr, _iface, state, since, interval, timeout] if addr == ip => {
                    Some(BirdBfdSession {
                        state: state.to_owned(),
                        since: since.to_owned(),
                        interval_ms: ms(interval)?,
                        timeout_ms: ms(timeout)?,
                    })
                }
                _ => None,
            }
        })
        .ok_or_else(|| format!("no session {ip} in {text}"))
}

impl super::Bird {
    /// BIRD's BFD session with `ip`.
    pub fn bfd_session(&self, ip: IpAddr) -> Result<BirdBfdSession, String> {
        let text = self.command("show bfd sessions")?.join("\n");
        parse_bird_session(&text, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEERS: &str = r#"[{"multihop":false,"peer":"192.0.2.11","local":"192.0.2.254","interface":"eth0","id":1,"remote-id":7,"passive-mode":false,"status":"up","uptime":12,"diagnostic":"ok","remote-diagnostic":"ok","receive-interval":300,"transmit-interval":300,"echo-receive-interval":50,"echo-transmit-interval":0,"detect-multiplier":3,"remote-receive-interval":300,"remote-transmit-interval":100,"remote-echo-receive-interval":0,"remote-detect-multiplier":5},
        {"multihop":true,"peer":"192.0.2.11","status":"down","diagnostic":"control detection time expired"}]"#;

    #[test]
    fn a_peer_is_read_from_bfdd_json_by_address_and_mode() {
        let ip: IpAddr = "192.0.2.11".parse().expect("literal");
        let single = parse_peer(PEERS, ip, false).expect("single hop");
        assert_eq!(single.status, "up");
        assert_eq!(single.remote_id, 7);
        assert_eq!(single.remote_transmit_ms, 100);
        assert_eq!(single.remote_multiplier, 5);
        let multi = parse_peer(PEERS, ip, true).expect("multihop");
        assert_eq!(multi.diagnostic, "control detection time expired");
        let other: IpAddr = "192.0.2.12".parse().expect("literal");
        assert!(parse_peer(PEERS, other, false).is_err());
    }

    #[test]
    fn down_events_are_read_from_the_counters() {
        let text = r#"[{"multihop":false,"peer":"192.0.2.11","session-up":2,"session-down":1}]"#;
        let ip: IpAddr = "192.0.2.11".parse().expect("literal");
        assert_eq!(parse_down_events(text, ip, false), Ok(1));
        assert!(parse_down_events(text, ip, true).is_err());
    }

    #[test]
    fn a_bird_session_row_is_read_with_its_intervals() {
        let text = "bfd1:\nIP address                Interface  State      Since         Interval  Timeout\n192.0.2.11                eth0       Up         10:00:01.123    0.300    0.900\n";
        let s = parse_bird_session(text, "192.0.2.11".parse().expect("literal")).expect("row");
        assert_eq!(s.state, "Up");
        assert_eq!((s.interval_ms, s.timeout_ms), (300, 900));
        assert_eq!(s.since_ms(), Some(36_001_123));
    }
}
