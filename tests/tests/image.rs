//! The container images, offline: `images/assemble.sh` builds OCI images equivalent to
//! `images/Dockerfile`'s from the host's Debian packages (distroless cc-debian12's glibc and
//! libgcc_s) and the freshly built binaries, then runs each entrypoint's `--version` in a
//! read-only chroot as the image's user. No registry is reachable here, so the distroless base
//! itself cannot be pulled; this proves the binaries need nothing else. Needs root and umoci
//! (scripts/install-deps.sh); skips without them unless `CI=true`.

use std::path::Path;

use ferrolb_tests::chart::binaries;

fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Err("not root".into());
    }
    let umoci = std::process::Command::new("umoci")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !umoci {
        return Err("umoci not installed".into());
    }
    Ok(())
}

#[tokio::test]
async fn the_images_run_each_binary_as_their_user_on_a_glibc_only_base() {
    if let Err(missing) = prerequisites() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the image check needs root and umoci in CI: {missing}"
        );
        println!("skipping the image check: {missing}");
        return;
    }
    let daemons = binaries::daemons().await.expect("binaries build");
    let out = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/assemble.sh");
    let run = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(out.path())
        .arg(&daemons.controller)
        .arg(&daemons.speaker)
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "assemble.sh failed:\n{stdout}\n{stderr}"
    );
    let version = env!("CARGO_PKG_VERSION");
    for (tag, line) in [
        ("controller", format!("ferrolb-controller {version}")),
        ("speaker", format!("ferrolb-speaker {version}")),
    ] {
        let report = stdout
            .lines()
            .find(|l| l.starts_with(&format!("assemble: {tag}:")))
            .unwrap_or_else(|| panic!("no report for {tag}:\n{stdout}"));
        assert!(report.contains("user 65532:65532"), "{report}");
        assert!(report.ends_with(&line), "{report}");
    }
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("oci/index.json")).expect("index.json"),
    )
    .expect("JSON");
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    for tag in ["controller", "speaker"] {
        assert!(tags.contains(&tag), "{tags:?}");
    }
}
