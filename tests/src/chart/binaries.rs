//! The `ferrolb-controller` and `ferrolb-speaker` binaries for tests of this crate, which cannot
//! name other packages' binaries with `CARGO_BIN_EXE_*`. `cargo nextest run --workspace` (CI)
//! builds them before any test runs; when one is missing or older than a source file of the
//! daemons (e.g. after `-p ferrolb-tests`), it is built with `cargo build --workspace --bins`:
//! the workspace's feature set, as CI's, so the shared dependencies are not rebuilt for it.

use std::path::{Path, PathBuf};

use super::ChartError;

/// Paths of the two daemons.
#[derive(Debug, Clone)]
pub struct Daemons {
    pub controller: PathBuf,
    pub speaker: PathBuf,
}

/// The daemons in the target directory this test binary lives in, built first when missing or
/// stale, so a test never runs an old binary.
pub async fn daemons() -> Result<Daemons, ChartError> {
    let exe = std::env::current_exe().map_err(|source| ChartError::Spawn {
        command: "current_exe".into(),
        source,
    })?;
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| ChartError::Driver {
            status: "no target directory".into(),
            stderr: exe.display().to_string(),
        })?
        .to_path_buf();
    let profile = profile_dir
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".into());
    let target_dir = profile_dir.parent().unwrap_or(&profile_dir).to_path_buf();
    let daemons = Daemons {
        controller: profile_dir.join("ferrolb-controller"),
        speaker: profile_dir.join("ferrolb-speaker"),
    };
    if is_fresh(&daemons.controller) && is_fresh(&daemons.speaker) {
        return Ok(daemons);
    }
    let mut cargo = tokio::process::Command::new(env!("CARGO"));
    cargo
        .args(["build", "--locked", "--workspace", "--bins"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    if profile != "debug" {
        cargo.args(["--profile", &profile]);
    }
    let out = cargo.output().await.map_err(|source| ChartError::Spawn {
        command: "cargo build".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(ChartError::Driver {
            status: format!("cargo build: {}", out.status),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(daemons)
}

/// The crates a daemon is built from.
const SOURCES: [&str; 5] = ["crds", "proto", "shell", "controller", "speaker"];

/// True when `binary` exists and is newer than every source file of the daemons.
fn is_fresh(binary: &Path) -> bool {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stack: Vec<PathBuf> = SOURCES.iter().map(|c| root.join(c).join("src")).collect();
    stack.push(root.join("Cargo.lock"));
    while let Some(path) = stack.pop() {
        let Ok(meta) = path.metadata() else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        } else if meta.modified().is_ok_and(|m| m > built) {
            return false;
        }
    }
    true
}
