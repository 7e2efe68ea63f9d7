//! The in-memory tier: every case in `cases/` against tcptwin-stack and the scripted peer
//! joined in memory, in virtual time (`tcptwin::dut::MemoryDut`): no root, no namespaces,
//! no sleeping, so a contributor's plain `cargo test` runs the whole suite in seconds. Each
//! run is judged by the case's expectations (written from the host kernel), as the
//! namespace tier judges the stack.

use std::path::Path;

use tcptwin::case::{LoadedCase, Suite};
use tcptwin::dut::MemoryDut;
use tcptwin::run::{self, Verdict};

fn suite() -> Vec<LoadedCase> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    Suite::load(&[dir])
        .expect("every case in cases/ loads")
        .cases
}

#[test]
fn every_case_passes_against_the_stack_in_memory() {
    let cases = suite();
    assert!(cases.len() > 100, "only {} cases", cases.len());
    let mut failed = Vec::new();
    for loaded in &cases {
        let r = run::run_case(loaded, &MemoryDut::default(), None);
        if r.verdict != Verdict::Pass {
            let checks: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{c:?}"))
                .collect();
            failed.push(format!(
                "{} {:?} {:?} {checks:?}",
                r.name, r.verdict, r.error
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// The tier can fail: a case whose expectation is off by one (the SYN's window) fails in
/// memory, on exactly that check, where the case as written passes.
#[test]
fn a_wrong_expectation_fails_in_memory() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/rst-bad-ack-resends-syn.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("window: 64240"));
    let right = LoadedCase::parse(&path, &text).unwrap();
    let wrong = LoadedCase::parse(&path, &text.replace("window: 64240", "window: 64241")).unwrap();
    assert_eq!(
        run::run_case(&right, &MemoryDut::default(), None).verdict,
        Verdict::Pass
    );
    let r = run::run_case(&wrong, &MemoryDut::default(), None);
    assert_eq!(r.verdict, Verdict::Fail);
    let failed = r.failed_checks();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("window"), "{failed:?}");
}

/// Same case, same record: the tier is deterministic (the stack's secret comes from the
/// case's name, time is virtual), so a failure it shows can be replayed exactly.
#[test]
fn the_same_case_makes_the_same_record_twice() {
    let cases = suite();
    let loaded = cases
        .iter()
        .find(|c| c.case.name == "rst-bad-ack-resends-syn")
        .expect("the case exists");
    let a = MemoryDut::default().record(&loaded.case).unwrap();
    let b = MemoryDut::default().record(&loaded.case).unwrap();
    assert_eq!(a.frames, b.frames);
    assert_eq!(a.calls, b.calls);
    assert!(a.frames.len() >= 8, "{} frames", a.frames.len());
}
