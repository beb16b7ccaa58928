//! `ferrolb-controller validate` as a user runs it: the real binary on files and directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn validate(paths: &[&Path]) -> Output {
    validate_with(&[], paths)
}

fn validate_with(flags: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .arg("validate")
        .args(flags)
        .args(paths)
        .output()
        .expect("run ferrolb-controller")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write fixture");
    path
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn the_shipped_examples_are_valid() {
    let output = validate(&[&examples_dir()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let files = std::fs::read_dir(examples_dir()).expect("examples").count();
    assert!(files >= 6, "expected the example set, found {files} files");
    assert!(text.contains(&format!("{files} file(s)")), "{text}");
    assert!(text.trim_end().ends_with("valid"), "{text}");
}

#[test]
fn an_invalid_object_exits_1_with_one_line_per_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "pools.yaml",
        b"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lab}\nspec:\n  addresses: [10.0.0.0/30, 10.0.0.5-10.0.0.1]\n",
    );
    let output = validate(&[&file]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l == r#"IPAddressPool/lab: spec.addresses[1]: "10.0.0.5-10.0.0.1": range end before start"#),
        "{text}"
    );
}

#[test]
fn objects_of_other_kinds_are_reported_as_skipped_and_do_not_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "mixed.yaml",
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/24]}\n",
    );
    write(dir.path(), "notes.txt", b"not a manifest, and not read");
    let output = validate(&[dir.path()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("skipped: Deployment/web (apps/v1)"), "{text}");
    assert!(
        text.contains("1 file(s), 1 FerroLB object(s): valid"),
        "{text}"
    );
}

#[test]
fn problems_across_files_are_found_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", b"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, creationTimestamp: \"2026-01-01T00:00:00Z\"}\nspec: {addresses: [192.0.2.0/24]}\n");
    write(dir.path(), "b.yaml", b"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: b}\nspec: {addresses: [192.0.2.128/25]}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [198.51.100.0/24]}\n");
    let output = validate(&[dir.path()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(r#"IPAddressPool/b: spec.addresses[0]: "192.0.2.128/25" overlaps with IPAddressPool/a spec.addresses[0] "192.0.2.0/24""#), "{text}");
    assert!(
        text.contains("IPAddressPool/a: metadata.name: defined twice, in"),
        "{text}"
    );
}

#[test]
fn garbage_input_exits_2_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let binary = write(dir.path(), "junk.yaml", &junk);
    let bad_yaml = write(
        dir.path(),
        "broken.yaml",
        b"kind: IPAddressPool\nmetadata: {name: [unclosed\n",
    );
    for (path, needle) in [(&binary, "not UTF-8"), (&bad_yaml, "invalid YAML")] {
        let output = validate(&[path]);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert!(text.contains(needle), "{text}");
    }
    let missing = validate(&[&dir.path().join("absent.yaml")]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stdout(&missing).contains("cannot read"));
}

#[test]
fn a_50_mb_file_is_refused_without_being_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: filler}\ndata: {k: v}\n";
    let big: Vec<u8> = doc.iter().copied().cycle().take(50 * 1024 * 1024).collect();
    let file = write(dir.path(), "big.yaml", &big);
    let output = validate(&[&file]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("larger than the 16777216-byte limit"),
        "{text}"
    );
}

#[test]
fn yaml_bombs_hit_the_parser_budget_instead_of_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..12 {
        let refs = vec![format!("*a{}", level - 1); 9].join(", ");
        laughs.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    let bomb = write(dir.path(), "bomb.yaml", laughs.as_bytes());
    let deep = write(
        dir.path(),
        "deep.yaml",
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes(),
    );
    for path in [&bomb, &deep] {
        let output = validate(&[path]);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert!(text.contains("invalid YAML"), "{text}");
        assert_eq!(
            text.lines().count(),
            2,
            "one line for the file, one summary: {text}"
        );
    }
}

/// Every name that can dangle, once each: a BFD profile and a Secret of kinds the input lacks, a
/// misspelt alias of a Community that is there, and pool and peer names that match nothing.
const DANGLING: &[u8] = br#"apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: public}
spec: {addresses: [203.0.113.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases}
spec: {communities: [{name: silver, value: "64512:2"}]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor-a}
spec: {myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: fast}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor-b}
spec: {myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.2, passwordSecret: {name: tor-md5}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: public}
spec: {ipAddressPools: [public, privat], peers: [tor-a, tor-c], communities: [gold]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec: {ipAddressPools: [lan]}
"#;

const DANGLING_LINES: [&str; 6] = [
    r#"BGPPeer/tor-a: spec.bfdProfile: BFDProfile "fast" does not exist (no BFDProfile in the input at all)"#,
    r#"BGPPeer/tor-b: spec.passwordSecret: Secret "tor-md5" does not exist (no Secret in the input at all)"#,
    r#"BGPAdvertisement/public: spec.communities[0]: "gold" is neither a community value (A:B, large:A:B:C) nor a known Community alias"#,
    r#"L2Advertisement/l2: spec.ipAddressPools[0]: IPAddressPool "lan" does not exist"#,
    r#"BGPAdvertisement/public: spec.ipAddressPools[1]: IPAddressPool "privat" does not exist"#,
    r#"BGPAdvertisement/public: spec.peers[1]: BGPPeer "tor-c" does not exist"#,
];

#[test]
fn strict_mode_fails_on_every_reference_that_points_nowhere_and_says_which_kinds_are_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "config.yaml", DANGLING);
    let output = validate_with(&["--strict"], &[&file]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for line in DANGLING_LINES {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    assert_eq!(
        text.lines().count(),
        DANGLING_LINES.len() + 1,
        "one line per reference and the summary:\n{text}"
    );
    assert!(text.trim_end().ends_with("INVALID"), "{text}");
}

#[test]
fn without_strict_references_that_point_nowhere_are_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "config.yaml", DANGLING);
    let output = validate(&[&file]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.lines().any(|l| l == r#"warning: BGPPeer/tor-a: spec.bfdProfile: BFDProfile "fast" does not exist (no BFDProfile in the input at all; it may be created later)"#),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == r#"warning: BGPAdvertisement/public: spec.peers[1]: BGPPeer "tor-c" does not exist (it may be created later)"#),
        "{text}"
    );
    assert!(
        !text.contains("tor-md5"),
        "without --strict and without Secrets in the input, Secrets are not checked: {text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("warning: ")).count(),
        DANGLING_LINES.len() - 1,
        "{text}"
    );
}

#[test]
fn strict_mode_passes_when_every_reference_resolves() {
    let output = validate_with(&["--strict"], &[&examples_dir()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains("warning"), "{text}");
    assert!(text.trim_end().ends_with("valid"), "{text}");
}

#[test]
fn a_large_community_with_two_parts_is_an_error_naming_object_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "ad.yaml",
        b"apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: ad}\nspec: {communities: [\"large:1:2\"]}\n",
    );
    let output = validate(&[&file]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with(
            r#"BGPAdvertisement/ad: spec.communities[0]: invalid large community value "large:1:2""#
        )),
        "{text}"
    );
    assert!(
        !text.contains("warning"),
        "never taken for an alias: {text}"
    );
}
