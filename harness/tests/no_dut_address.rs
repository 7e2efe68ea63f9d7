//! `topology.dut: none`: the DUT's interface holds no address. The kernel then fails a
//! connect to the peer with ENETUNREACH and sends nothing; the case's expectations, written
//! from that, fail a wrong value and a DUT that was given the address anyway.

use std::path::{Path, PathBuf};

use tcptwin::case::LoadedCase;
use tcptwin::dut::{KernelDut, StackDut};
use tcptwin::run::{self, PairVerdict, Verdict};

fn case_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/no-dut-address-enetunreach.yaml")
}

/// The committed case with `from` replaced by `to` (which must occur in it).
fn edited(from: &str, to: &str) -> LoadedCase {
    let text = std::fs::read_to_string(case_path()).unwrap();
    assert!(text.contains(from), "{from:?} is not in the case");
    LoadedCase::parse(&case_path(), &text.replace(from, to)).unwrap()
}

fn failed_checks(result: &run::CaseResult) -> Vec<String> {
    result
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: expected {}, got {}", c.what, c.expected, c.actual))
        .collect()
}

#[test]
fn the_kernel_and_the_stack_without_an_address_fail_with_enetunreach() {
    let loaded = LoadedCase::load(&case_path()).unwrap();
    assert_eq!(loaded.case.topology.dut_for(loaded.case.family), None);
    let result = run::run_pair(&loaded, &KernelDut, &StackDut::default(), None);
    assert_eq!(
        result.verdict,
        PairVerdict::Pass,
        "{}",
        tcptwin::report::pair_text(&result, false)
    );
    let trace = result.reference.trace.as_ref().unwrap();
    assert!(trace.frames.is_empty(), "{}", trace.text());
}

#[test]
fn a_wrong_expected_errno_fails() {
    let loaded = edited(
        "{ call: connect, nth: 1, result: \"ENETUNREACH\" }",
        "{ call: connect, nth: 1, result: \"EHOSTUNREACH\" }",
    );
    let result = run::run_case(&loaded, &KernelDut, None);
    assert_eq!(result.verdict, Verdict::Fail);
    let failed = failed_checks(&result);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("got ENETUNREACH"), "{failed:?}");
}

#[test]
fn a_dut_given_the_address_anyway_fails_the_case() {
    // The same network with the default address: the peer answers, connect succeeds.
    let loaded = edited("  dut: none\n", "  dut: 198.18.0.1/24\n");
    let result = run::run_case(&loaded, &KernelDut, None);
    assert_eq!(result.verdict, Verdict::Fail);
    let failed = failed_checks(&result).join("\n");
    assert!(failed.contains("expected ENETUNREACH, got 0"), "{failed}");
}
