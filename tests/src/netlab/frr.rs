//! An FRR router (zebra + bgpd) inside a lab host: routes it learns land in that namespace's
//! kernel table, where ECMP shows as several next hops. Read through bgpd's vty socket
//! (`command\0` in; text, three NULs and a status byte out), which is far cheaper than `vtysh`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{LabError, Netlab, io_error, must, poll};

/// FRR's daemons.
pub const ZEBRA: &str = "/usr/lib/frr/zebra";
/// See [`ZEBRA`].
pub const BGPD: &str = "/usr/lib/frr/bgpd";

/// A running FRR.
#[derive(Debug)]
pub struct Frr {
    dir: PathBuf,
    /// PIDs of zebra and bgpd.
    pub pids: [u32; 2],
}

impl Frr {
    /// Starts zebra, then bgpd with `bgpd_conf`, in host `role`. FRR refuses to run as root, so
    /// its directory belongs to the `frr` user.
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
        for (i, (daemon, conf, socket)) in
            [(ZEBRA, "zebra", "zserv.api"), (BGPD, "bgpd", "bgpd.vty")]
                .into_iter()
                .enumerate()
        {
            let conf_path = format!("{d}/{conf}.conf");
            let pid_path = format!("{d}/{conf}.pid");
            let mut args = vec![daemon, "-f", conf_path.as_str(), "-i", pid_path.as_str()];
            args.extend_from_slice(&common);
            pids[i] = lab.spawn(conf, role, &args, &[], &dir.join(format!("{conf}.log")))?;
            let path = dir.join(socket);
            poll(
                &format!("{} appears", path.display()),
                Duration::from_secs(20),
                Duration::from_millis(50),
                || {
                    if path.exists() {
                        Ok(())
                    } else {
                        Err("absent".into())
                    }
                },
            )
            .map_err(|stderr| LabError::Command {
                command: daemon.into(),
                stderr,
            })?;
        }
        let frr = Frr { dir, pids };
        poll(
            "bgpd answers on its vty",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || frr.vty("show bgp summary json").map(|_| ()),
        )
        .map_err(|stderr| LabError::Command {
            command: "bgpd vty".into(),
            stderr,
        })?;
        Ok(frr)
    }

    /// One command's answer.
    pub fn vty(&self, command: &str) -> Result<String, String> {
        vty(&self.dir.join("bgpd.vty"), command)
    }

    /// One `... json` command's answer, parsed.
    pub fn json(&self, command: &str) -> Result<serde_json::Value, String> {
        let text = self.vty(command)?;
        serde_json::from_str(&text).map_err(|e| format!("{command}: {e}: {text}"))
    }
}

fn vty(socket: &Path, command: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
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
            let text = String::from_utf8_lossy(&buf[..buf.len() - 4]).into_owned();
            return if status == 0 {
                Ok(text)
            } else {
                Err(format!("{command}: status {status}: {text}"))
            };
        }
    }
}
