//! The chaos suite in CI: one round of every fault on the real cluster (two controllers,
//! three speakers, FRR, clients probing every 10 ms). `FERROLB_CHAOS_ROUNDS=N` runs N rounds;
//! the longer run with figures per round is `cargo bench -p ferrolb-tests --bench chaos`.

use std::path::PathBuf;

use ferrolb_netlab as netlab;
use ferrolb_tests::chaos::{self, Settings};
use ferrolb_tests::cluster::Binaries;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_fault_makes_two_macs_answer_an_ip_two_services_hold_one_or_a_service_lose_its_ip() {
    if !netlab::can_run(&["nft", "curl", "python3", netlab::frr::BGPD]) {
        return;
    }
    let rounds = std::env::var("FERROLB_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let settings = Settings {
        binaries: Binaries {
            speaker: PathBuf::from(env!("CARGO_BIN_EXE_lab-speaker")),
            controller: Some(PathBuf::from(env!("CARGO_BIN_EXE_lab-controller"))),
        },
        rounds,
    };
    let report = match chaos::run(settings).await {
        Ok(report) => report,
        Err(aborted) => panic!("{aborted}"),
    };
    println!("{}", report.render());
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{}\n\n{}\n{}",
        failures.join("\n"),
        report.render(),
        report.logs.unwrap_or_default()
    );
}
