//! Running commands (`ip`, `sysctl`, clients) from the host or inside a namespace.

use std::process::{Command, Output};

use crate::error::{LabError, io_error};

/// Runs a command and returns its output; an exit status other than success is no error here.
pub fn run(args: &[&str]) -> Result<Output, LabError> {
    let (program, rest) = args.split_first().ok_or_else(|| LabError::Missing {
        what: "a command".into(),
        detail: "empty argument list".into(),
    })?;
    Command::new(program)
        .args(rest)
        .output()
        .map_err(io_error(format!("running {args:?}")))
}

/// Runs a command that must succeed; returns its stdout.
pub fn must(args: &[&str]) -> Result<String, LabError> {
    let out = run(args)?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside namespace `ns` (a full name) through `ip netns exec`.
pub fn run_in(ns: &str, args: &[&str]) -> Result<Output, LabError> {
    run(&in_ns(ns, args))
}

/// Runs a command inside namespace `ns` that must succeed; returns its stdout.
pub fn must_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    must(&in_ns(ns, args))
}

/// `ip netns exec NS ARGS...`
fn in_ns<'a>(ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    full
}

/// A command's stdout followed by its stderr, for assertions and messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Splits a command line written as one string on whitespace (no quoting).
pub fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}
