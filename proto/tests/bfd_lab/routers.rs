//! The BFD peers of the lab, started in the router namespace and read through their own control
//! sockets: FRR 8.4 (zebra + bfdd; bfdd needs zebra for the interfaces of single-hop peers) over
//! the vty socket, BIRD 2.0.12 over its control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{DEADLINE, Lab, poll};

/// One peer in FRR's `bfd` node.
#[derive(Debug, Clone)]
pub(crate) struct FrrPeer {
    pub(crate) peer: String,
    pub(crate) local: String,
    /// Single hop: the interface (`p1`); multihop: `None`.
    pub(crate) interface: Option<String>,
    pub(crate) multihop: bool,
    pub(crate) passive: bool,
    pub(crate) receive_ms: u32,
    pub(crate) transmit_ms: u32,
    pub(crate) multiplier: u8,
}

impl FrrPeer {
    /// A peer on one of the lab's paths with FRR's defaults (300 ms × 3).
    pub(crate) fn on(ours: &str, theirs: &str, multihop: bool) -> FrrPeer {
        FrrPeer {
            peer: ours.to_owned(),
            local: theirs.to_owned(),
            interface: (!multihop).then(|| "p1".to_owned()),
            multihop,
            passive: false,
            receive_ms: 300,
            transmit_ms: 300,
            multiplier: 3,
        }
    }

    /// The `peer ...` line that opens this peer's node.
    pub(crate) fn header(&self) -> String {
        let mut s = format!("peer {}", self.peer);
        if self.multihop {
            s += " multihop";
        }
        s += &format!(" local-address {}", self.local);
        if let Some(i) = &self.interface {
            s += &format!(" interface {i}");
        }
        s
    }
}

/// What `show bfd peers json` says about one peer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FrrPeerState {
    pub(crate) status: String,
    pub(crate) uptime_secs: u64,
    pub(crate) remote_id: u64,
    pub(crate) remote_receive_ms: u64,
    pub(crate) remote_transmit_ms: u64,
    pub(crate) remote_multiplier: u64,
    pub(crate) diagnostic: String,
}

/// FRR 8.4 zebra + bfdd in the router namespace.
#[derive(Debug)]
pub(crate) struct Frr {
    dir: PathBuf,
}

impl Frr {
    pub(crate) const ZEBRA: &'static str = "/usr/lib/frr/zebra";
    pub(crate) const BFDD: &'static str = "/usr/lib/frr/bfdd";

    /// Starts zebra, then bfdd with `peers`, and waits until bfdd answers on its vty.
    pub(crate) fn start(lab: &mut Lab, peers: &[FrrPeer]) -> Frr {
        let dir = lab.daemon_dir("frr", None);
        std::fs::write(dir.join("zebra.conf"), "hostname r\nlog stdout\n").expect("write");
        let mut conf = String::from("hostname r\nlog stdout\nlog timestamp precision 3\nbfd\n");
        for p in peers {
            conf += &format!(" {}\n", p.header());
            conf += &format!(
                "  receive-interval {}\n  transmit-interval {}\n  detect-multiplier {}\n",
                p.receive_ms, p.transmit_ms, p.multiplier
            );
            if p.passive {
                conf += "  passive-mode\n";
            }
            conf += " !\n";
        }
        conf += "!\n";
        std::fs::write(dir.join("bfdd.conf"), conf).expect("write");
        lab.daemon_dir("frr", Some("frr:frr"));
        let d = dir.to_str().expect("utf-8").to_owned();
        let zserv = format!("{d}/zserv.api");
        let common = ["-z", &zserv, "--vty_socket", &d, "-P", "0"];
        let (zebra_conf, zebra_pid) = (format!("{d}/zebra.conf"), format!("{d}/zebra.pid"));
        let mut args = vec![Self::ZEBRA, "-f", &zebra_conf, "-i", &zebra_pid];
        args.extend_from_slice(&common);
        lab.start_daemon("zebra", "r", &args, &dir.join("zebra.log"));
        lab.wait_for_file(&dir.join("zserv.api"));
        let (bfdd_conf, bfdd_pid, ctl) = (
            format!("{d}/bfdd.conf"),
            format!("{d}/bfdd.pid"),
            format!("{d}/bfdd.sock"),
        );
        let mut args = vec![
            Self::BFDD,
            "-f",
            &bfdd_conf,
            "-i",
            &bfdd_pid,
            "--bfdctl",
            &ctl,
        ];
        args.extend_from_slice(&common);
        lab.start_daemon("bfdd", "r", &args, &dir.join("bfdd.log"));
        lab.wait_for_file(&dir.join("bfdd.vty"));
        let frr = Frr { dir };
        poll("bfdd answers", DEADLINE, Duration::from_millis(100), || {
            frr.vty(&["show bfd peers json"]).map(|_| ())
        });
        frr
    }

    /// Commands on one vty connection, after `enable` (bfdd's `show bfd` commands are not in
    /// the view node a vty connection starts in); the last one's answer.
    pub(crate) fn vty(&self, commands: &[&str]) -> Result<String, String> {
        let mut all = vec!["enable"];
        all.extend_from_slice(commands);
        vty(&self.dir.join("bfdd.vty"), &all)
    }

    /// Changes a peer's timers at run time, as an operator would.
    pub(crate) fn set_timers(&self, peer: &FrrPeer) -> Result<(), String> {
        let header = peer.header();
        let rx = format!("receive-interval {}", peer.receive_ms);
        let tx = format!("transmit-interval {}", peer.transmit_ms);
        let mult = format!("detect-multiplier {}", peer.multiplier);
        self.vty(&["configure terminal", "bfd", &header, &rx, &tx, &mult])
            .map(|_| ())
    }

    /// FRR's view of the peer at `peer` (our address), single hop or multihop.
    pub(crate) fn peer(&self, peer: &str, multihop: bool) -> Result<FrrPeerState, String> {
        let text = self.vty(&["show bfd peers json"])?;
        let all: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        let p = all
            .as_array()
            .and_then(|list| {
                list.iter().find(|p| {
                    p["peer"].as_str() == Some(peer) && p["multihop"].as_bool() == Some(multihop)
                })
            })
            .ok_or_else(|| format!("no peer {peer} (multihop {multihop}) in {text}"))?;
        let num = |k: &str| p[k].as_u64().unwrap_or(0);
        Ok(FrrPeerState {
            status: p["status"].as_str().unwrap_or("").to_owned(),
            uptime_secs: num("uptime"),
            remote_id: num("remote-id"),
            remote_receive_ms: num("remote-receive-interval"),
            remote_transmit_ms: num("remote-transmit-interval"),
            remote_multiplier: num("remote-detect-multiplier"),
            diagnostic: p["diagnostic"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// `session-down` of `show bfd peers counters json` for a peer: how often it left Up.
    pub(crate) fn down_events(&self, peer: &str, multihop: bool) -> Result<u64, String> {
        let text = self.vty(&["show bfd peers counters json"])?;
        let all: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        all.as_array()
            .and_then(|list| {
                list.iter().find(|p| {
                    p["peer"].as_str() == Some(peer) && p["multihop"].as_bool() == Some(multihop)
                })
            })
            .and_then(|p| p["session-down"].as_u64())
            .ok_or_else(|| format!("no counters for {peer}: {text}"))
    }

    /// The bfdd log (state changes with millisecond timestamps).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bfdd.log")).unwrap_or_default()
    }
}

fn vty(socket: &Path, commands: &[&str]) -> Result<String, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    for command in commands {
        s.write_all(command.as_bytes())
            .and_then(|()| s.write_all(&[0]))
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("vty closed: {}", String::from_utf8_lossy(&buf)));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let [.., 0, 0, 0, status] = buf[..] {
                text = String::from_utf8_lossy(&buf[..buf.len() - 4]).into_owned();
                if status != 0 {
                    return Err(format!("{command}: status {status}: {text}"));
                }
                break;
            }
        }
    }
    Ok(text)
}

/// One row of `birdc show bfd sessions`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BirdSession {
    pub(crate) state: String,
    /// When the state last changed (BIRD's clock, as printed).
    pub(crate) since: String,
    /// The transmit interval in use, in ms.
    pub(crate) interval_ms: u64,
    /// The Detection Time, in ms.
    pub(crate) timeout_ms: u64,
}

/// BIRD 2.0.12 with a `protocol bfd` in the router namespace.
#[derive(Debug)]
pub(crate) struct Bird {
    ctl: PathBuf,
    conf: PathBuf,
}

impl Bird {
    /// Starts BIRD with `protocol bfd` holding `body`.
    pub(crate) fn start(lab: &mut Lab, body: &str) -> Bird {
        let dir = lab.daemon_dir("bird", None);
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, Self::config(body)).expect("write");
        let ctl = dir.join("bird.ctl");
        let pid = dir.join("bird.pid");
        let args = [
            "bird",
            "-f",
            "-c",
            conf.to_str().expect("utf-8"),
            "-s",
            ctl.to_str().expect("utf-8"),
            "-P",
            pid.to_str().expect("utf-8"),
        ];
        lab.start_daemon("bird", "r", &args, &dir.join("bird.log"));
        lab.wait_for_file(&ctl);
        Bird { ctl, conf }
    }

    fn config(body: &str) -> String {
        format!("router id 192.0.2.254;\nprotocol device {{}}\nprotocol bfd {{\n{body}}}\n")
    }

    /// Rewrites `protocol bfd` and reloads it (`configure`).
    pub(crate) fn reconfigure(&self, body: &str) -> Result<(), String> {
        std::fs::write(&self.conf, Self::config(body)).map_err(|e| e.to_string())?;
        let out = self.cmd("configure")?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// One command on the control socket; the reply's text.
    pub(crate) fn cmd(&self, command: &str) -> Result<String, String> {
        let s = UnixStream::connect(&self.ctl).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| e.to_string())?; // 0001 greeting
        w.write_all(format!("{command}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err(format!("control socket closed: {text}"));
            }
            let b = line.as_bytes();
            let is_coded = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
            text += if is_coded {
                &line[5..]
            } else {
                line.trim_start_matches(' ')
            };
            if is_coded && b[4] == b' ' {
                return Ok(text);
            }
        }
    }

    /// BIRD's session with `ip` (our address).
    pub(crate) fn session(&self, ip: &str) -> Result<BirdSession, String> {
        let text = self.cmd("show bfd sessions")?;
        let ms = |s: &str| s.parse::<f64>().map(|v| (v * 1000.0).round() as u64).ok();
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f[..] {
                    [addr, _iface, state, since, interval, timeout] if addr == ip => {
                        Some(BirdSession {
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
}
