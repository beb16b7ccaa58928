//! Processes a lab started: each is known by its PID and a name, stopped by that PID only
//! (never by name matching), with its output in a log file of the lab.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::command::must;
use crate::error::{LabError, io_error};

/// How long a process may take to end after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One started process.
#[derive(Debug)]
struct Started {
    name: String,
    child: Child,
    log: PathBuf,
    /// Stopped on purpose: its end is no failure.
    is_stopped: bool,
}

/// The processes of one lab; every one still running is killed on drop.
#[derive(Debug, Default)]
pub struct Processes {
    started: Vec<Started>,
}

impl Processes {
    /// Starts `args` inside namespace `ns` with `ip netns exec` (which execs the program, so the
    /// PID returned is the program's own), `envs` added, stdout and stderr to `log`.
    pub(crate) fn start(
        &mut self,
        name: &str,
        ns: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<u32, LabError> {
        let out =
            std::fs::File::create(log).map_err(io_error(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io_error("log file"))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command
            .spawn()
            .map_err(io_error(format!("starting {name}")))?;
        let pid = child.id();
        self.started.push(Started {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            is_stopped: false,
        });
        Ok(pid)
    }

    /// The PID of the latest process started under `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.started
            .iter()
            .rev()
            .find(|p| p.name == name)
            .map(|p| p.child.id())
    }

    /// Sends `signal` ("TERM", "KILL", "STOP", "CONT", ...) to a process the lab started.
    pub fn signal(&self, pid: u32, signal: &str) -> Result<(), LabError> {
        if !self.started.iter().any(|p| p.child.id() == pid) {
            return Err(LabError::Missing {
                what: format!("process {pid}"),
                detail: "not started by this lab".into(),
            });
        }
        must(&["kill", &format!("-{signal}"), &pid.to_string()]).map(|_| ())
    }

    /// Stops the process with `pid`: SIGTERM (and SIGCONT, should the test have frozen it),
    /// then SIGKILL if it has not ended within a few seconds. Its log stays readable.
    pub fn stop(&mut self, pid: u32) {
        if let Some(p) = self.started.iter_mut().find(|p| p.child.id() == pid) {
            p.is_stopped = true;
            terminate(&mut p.child);
        }
    }

    /// Waits for the process with `pid` to end (after a signal) and forgets it.
    pub fn reap(&mut self, pid: u32) -> Option<ExitStatus> {
        let index = self.started.iter().position(|p| p.child.id() == pid)?;
        let mut started = self.started.remove(index);
        started.child.wait().ok()
    }

    /// Names of started processes that have ended, with their status.
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        self.started
            .iter_mut()
            .filter_map(|p| Some((p.name.clone(), p.child.try_wait().ok()??)))
            .collect()
    }

    /// Fails, naming the process and the end of its log, when one not stopped on purpose ended.
    pub fn check_alive(&mut self) -> Result<(), LabError> {
        for p in self.started.iter_mut().filter(|p| !p.is_stopped) {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                return Err(LabError::Exited {
                    name: p.name.clone(),
                    status,
                    tail: tail.join("\n"),
                });
            }
        }
        Ok(())
    }

    /// The log of the latest process started under `name` (empty when there is none).
    pub fn log(&self, name: &str) -> String {
        self.started
            .iter()
            .rev()
            .find(|p| p.name == name)
            .and_then(|p| std::fs::read_to_string(&p.log).ok())
            .unwrap_or_default()
    }

    /// Kills every process still running (SIGKILL to each PID) and waits for it.
    pub(crate) fn kill_all(&mut self) {
        for p in &mut self.started {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.started.clear();
    }
}

/// SIGTERM (+ SIGCONT), a grace period, then SIGKILL; to this child only.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").arg(&pid).status();
    // A process the test froze (SIGSTOP) acts on SIGTERM once continued.
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.kill_all();
    }
}
