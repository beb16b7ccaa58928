//! The chaos suite as a longer run: every fault `FERROLB_CHAOS_ROUNDS` times (default 5), each
//! round hitting the owner of another L2 IP, with the figures per fault and round and the worst
//! of each fault printed as a table. Exits 1 when an invariant broke. Needs root, nft, curl,
//! python3 and FRR.
//!
//! `cargo bench -p ferrolb-tests --bench chaos` (`FERROLB_CHAOS_ROUNDS=10` for more).

use std::path::PathBuf;
use std::process::ExitCode;

use ferrolb_netlab as netlab;
use ferrolb_tests::chaos::{self, Settings};
use ferrolb_tests::cluster::Binaries;

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    if !netlab::can_run(&["nft", "curl", "python3", netlab::frr::BGPD]) {
        return ExitCode::FAILURE;
    }
    let rounds = std::env::var("FERROLB_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let settings = Settings {
        binaries: Binaries {
            speaker: PathBuf::from(env!("CARGO_BIN_EXE_lab-speaker")),
            controller: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-controller"))),
        },
        rounds,
    };
    let report = match chaos::run(settings).await {
        Ok(report) => report,
        Err(aborted) => {
            eprintln!("{aborted}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.render());
    let failures = report.failures();
    if failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "{}\n\n{}",
        failures.join("\n"),
        report.logs.unwrap_or_default()
    );
    ExitCode::FAILURE
}
