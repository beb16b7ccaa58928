//! The BFD peers of the lab, started in the router namespace and read through their own control
//! sockets: FRR 8.4 (zebra + bfdd; bfdd needs zebra for the interfaces of single-hop peers) over
//! the vty socket, BIRD 2.0.12 over its control socket.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_netlab::routers::bfdd::{self, BfdPeer, BirdBfdSession};
use ferrolb_netlab::routers::frr::vty;

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

/// What `show bfd peers json` says about one peer (read by `ferrolb-netlab`).
pub(crate) type FrrPeerState = BfdPeer;

/// FRR 8.4 zebra + bfdd in the router namespace.
#[derive(Debug)]
pub(crate) struct Frr {
    dir: PathBuf,
}

impl Frr {
    pub(crate) const ZEBRA: &'static str = "/usr/lib/frr/zebra";
    pub(crate) const BFDD: &'static str = bfdd::BFDD;

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
        bfdd::parse_peer(&text, address(peer)?, multihop)
    }

    /// `session-down` of `show bfd peers counters json` for a peer: how often it left Up.
    pub(crate) fn down_events(&self, peer: &str, multihop: bool) -> Result<u64, String> {
        let text = self.vty(&["show bfd peers counters json"])?;
        bfdd::parse_down_events(&text, address(peer)?, multihop)
    }

    /// The bfdd log (state changes with millisecond timestamps).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bfdd.log")).unwrap_or_default()
    }
}

fn address(text: &str) -> Result<IpAddr, String> {
    text.parse().map_err(|e| format!("{text}: {e}"))
}

/// One row of `birdc show bfd sessions` (read by `ferrolb-netlab`).
pub(crate) type BirdSession = BirdBfdSession;

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
        bfdd::parse_bird_session(&self.cmd("show bfd sessions")?, address(ip)?)
    }
}
