//! The short chaos soak CI runs: a few hundred purchases across the three stores while every
//! kind of fault happens at least once, then every invariant (see `iap_chaos::checker`). The
//! long soak is `target/release/soak` (docs/benchmarks.md).

use std::path::PathBuf;
use std::time::Duration;

use iap_chaos::{Fault, SoakConfig};

/// The services' binaries beside this test's: `target/<profile>/deps/soak-…` →
/// `target/<profile>/`. `cargo nextest run --workspace` builds them (their own packages'
/// integration tests need them).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paid_purchases_are_granted_exactly_once_through_every_fault() {
    let report = iap_chaos::run(SoakConfig {
        bin_dir: bin_dir(),
        duration: Duration::from_secs(40),
        rate: 8.0,
        max_in_flight: 200,
        fault_every: Duration::from_millis(1000),
        min_fault_cycles: 1,
        settle_timeout: Duration::from_secs(240),
        seed: 20261128,
    })
    .await
    .expect("the soak harness runs");
    println!("{report}");

    assert!(report.passed(), "{report}");
    // The run did what it claims: every kind of fault, every role killed, hundreds of
    // purchases of every fate on every store, and refunds revoked in the game.
    for kind in Fault::all() {
        assert!(
            report.faults.get(&kind).is_some_and(|n| *n > 0),
            "{kind:?} never happened"
        );
    }
    assert!(
        report.purchases.len() >= 300,
        "{} purchases",
        report.purchases.len()
    );
    assert_eq!(report.fates().len(), 7, "every fate: {:?}", report.fates());
    let owed = report.purchases.iter().filter(|p| p.owed()).count();
    assert_eq!(
        report.findings.orders_by_state.get("CONFIRMED").copied(),
        Some(owed as i64)
    );
    assert!(
        report.findings.ledger_revokes > 0,
        "refunds were revoked in the game"
    );
}
