//! The one rule for lab tests that need root and programs: run when everything is there;
//! otherwise skip with a message saying what is missing, unless `CI=true`, where a missing
//! prerequisite fails the test (CI never passes by skipping).

use std::path::Path;

use crate::sys;

/// What a lab test does on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything is there.
    Run,
    /// Something is missing and CI is not `true`: print this and pass.
    Skip(String),
    /// Something is missing under `CI=true`: fail with this.
    Fail(String),
}

/// The verdict for the prerequisites `missing` given the value of `CI`. Pure.
pub fn verdict(missing: &[String], ci: Option<&str>) -> Verdict {
    if missing.is_empty() {
        return Verdict::Run;
    }
    let message = format!(
        "SKIPPED: this test needs {} (`bash scripts/install-deps.sh` installs the programs)",
        missing.join(", ")
    );
    if ci == Some("true") {
        Verdict::Fail(format!("{message}; CI=true does not allow skipping"))
    } else {
        Verdict::Skip(message)
    }
}

/// What this machine lacks: root, `ip`, and each of `programs` (a name looked up in `PATH`, or
/// an absolute path).
pub fn missing(programs: &[&str]) -> Vec<String> {
    let mut missing = Vec::new();
    if !sys::is_root() {
        missing.push("root (network namespaces, raw sockets, port 179)".to_owned());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for program in std::iter::once(&"ip").chain(programs) {
        if !is_installed(program, &path) {
            missing.push(format!("`{program}`"));
        }
    }
    missing
}

/// Whether `program` exists: as given when it is a path, else in one of `path`'s folders.
fn is_installed(program: &str, path: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .any(|dir| Path::new(dir).join(program).is_file())
}

/// Whether a lab test needing root and `programs` can run here: true to run; false after
/// printing why it skips; panics under `CI=true` when something is missing.
pub fn can_run(programs: &[&str]) -> bool {
    apply(&missing(programs))
}

/// The same rule for prerequisites a test found missing itself (a program it needs without
/// root, a Python module): true when `missing` is empty; else prints why the test skips and
/// returns false, or panics under `CI=true`.
pub fn apply(missing: &[String]) -> bool {
    let ci = std::env::var("CI").ok();
    match verdict(missing, ci.as_deref()) {
        Verdict::Run => true,
        Verdict::Skip(message) => {
            println!("{message}");
            false
        }
        Verdict::Fail(message) => panic!("{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_with_everything_runs_whatever_ci_says() {
        assert_eq!(verdict(&[], None), Verdict::Run);
        assert_eq!(verdict(&[], Some("true")), Verdict::Run);
    }

    #[test]
    fn something_missing_skips_naming_it_outside_ci() {
        let missing = vec!["root (x)".to_owned(), "`bird`".to_owned()];
        for ci in [None, Some("false"), Some("1")] {
            let Verdict::Skip(message) = verdict(&missing, ci) else {
                panic!("CI={ci:?} must skip");
            };
            assert!(message.starts_with("SKIPPED: "), "{message}");
            assert!(message.contains("root (x), `bird`"), "{message}");
        }
    }

    #[test]
    fn something_missing_fails_under_ci_true() {
        let verdict = verdict(&["`bird`".to_owned()], Some("true"));
        assert!(
            matches!(&verdict, Verdict::Fail(m) if m.contains("`bird`") && m.contains("CI=true")),
            "{verdict:?}"
        );
    }

    #[test]
    fn programs_are_found_by_name_in_path_or_by_absolute_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("tool"), "").expect("write");
        let path = format!("/nonexistent:{}", dir.path().display());
        assert!(is_installed("tool", &path));
        assert!(!is_installed("other", &path));
        let absolute = dir.path().join("tool");
        assert!(is_installed(absolute.to_str().expect("utf-8"), ""));
        assert!(!is_installed("/nonexistent/tool", &path));
    }
}
