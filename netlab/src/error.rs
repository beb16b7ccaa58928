//! The lab's one error type. Its `Debug` is its `Display`, so a test's `.expect()` prints the
//! failed command and what it said rather than a struct dump.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

/// What went wrong while building or driving a lab.
#[derive(thiserror::Error)]
pub enum LabError {
    /// A command exited unsuccessfully.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An OS call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A condition did not hold before its deadline.
    #[error("{what}: not within {within:?}; last seen: {last}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long it was given.
        within: Duration,
        /// The last observation while it did not hold.
        last: String,
    },
    /// A process the lab started ended when it should not have.
    #[error("{name} exited ({status}); log (last lines first):\n{tail}")]
    Exited {
        /// The name it was started under.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// The end of its log, newest line first.
        tail: String,
    },
    /// Something the lab looked for is not there (a node, a MAC address in `ip` output).
    #[error("{what}: {detail}")]
    Missing {
        /// What was looked for.
        what: String,
        /// Where, or what was found instead.
        detail: String,
    },
}

impl LabError {
    /// A stable name of the failure kind, for logs and messages.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Command { .. } => "CommandFailed",
            Self::Io { .. } => "Io",
            Self::Timeout { .. } => "Timeout",
            Self::Exited { .. } => "ProcessExited",
            Self::Missing { .. } => "Missing",
        }
    }
}

impl fmt::Debug for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Maps an OS error to [`LabError::Io`] saying what was being done.
pub fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_the_readable_message() {
        let e = LabError::Command {
            command: "ip netns add x".into(),
            stderr: "File exists".into(),
        };
        assert_eq!(format!("{e:?}"), "`ip netns add x` failed: File exists");
        assert_eq!(e.reason(), "CommandFailed");
    }
}
