//! A divergence is confirmed by rerunning its case alone: it counts as soon as one rerun
//! fails too, and is reported as unconfirmed (passed, with its findings) only where every
//! rerun agreed. Judged on the kernel against a kernel that sends TTL 5 on chosen runs.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tcptwin::case::{Case, SockOpt, Step};
use tcptwin::dut::{Dut, DutError, KernelDut, Running};
use tcptwin::report;
use tcptwin::runner::{self, LoadedCase, PairVerdict};
use tcptwin::topology::Topology;

fn case() -> LoadedCase {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/handshake-default.yaml");
    LoadedCase::load(&path).unwrap()
}

/// The kernel, with `IP_TTL 5` set before the case's steps on the runs (counted from 1)
/// listed in `odd_runs`.
struct OddOnRuns {
    odd_runs: &'static [usize],
    runs: AtomicUsize,
}

impl OddOnRuns {
    fn new(odd_runs: &'static [usize]) -> OddOnRuns {
        OddOnRuns {
            odd_runs,
            runs: AtomicUsize::new(0),
        }
    }
}

impl Dut for OddOnRuns {
    fn name(&self) -> &'static str {
        "kernel-odd-on-some-runs"
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let mut case = case.clone();
        if self.odd_runs.contains(&run) {
            case.steps.insert(0, Step::Setsockopt(SockOpt::IpTtl(5)));
        }
        KernelDut.run(topology, &case)
    }
}

/// Runs the case once and then confirms its divergence with up to 2 reruns.
fn judged(other: &OddOnRuns) -> runner::PairResult {
    let loaded = case();
    let mut result = runner::run_pair(&loaded, &KernelDut, other, None);
    assert_eq!(
        result.verdict,
        PairVerdict::Diverged,
        "{}",
        report::pair_text(&result, false)
    );
    assert!(
        result
            .divergences
            .iter()
            .any(|d| d.path.ends_with(".ip.ttl")),
        "{:?}",
        result.divergences
    );
    runner::confirm_pair(&mut result, &loaded, &KernelDut, other, 2, None);
    result
}

#[test]
fn a_divergence_every_rerun_agrees_with_is_unconfirmed_and_passes() {
    let result = judged(&OddOnRuns::new(&[1]));
    assert_eq!(result.reruns, [PairVerdict::Pass, PairVerdict::Pass]);
    assert_eq!(result.verdict, PairVerdict::Unconfirmed);
    // Reported with the findings of the run that diverged, and counted as passed.
    assert!(!result.divergences.is_empty());
    let (tally, notes) = report::pair_tally(std::slice::from_ref(&result), 1);
    assert_eq!((tally.passed, tally.failed, notes.unconfirmed), (1, 0, 1));
    let line = report::confirmation_line(&result);
    assert!(
        line.starts_with("UNCONF   handshake-default: every rerun agreed (pass, pass)"),
        "{line}"
    );
    assert!(report::pair_text(&result, false).starts_with("UNCONF "));
}

#[test]
fn a_divergence_one_rerun_repeats_is_confirmed_and_fails() {
    // The first rerun agrees, the second diverges again.
    let result = judged(&OddOnRuns::new(&[1, 3]));
    assert_eq!(result.reruns, [PairVerdict::Pass, PairVerdict::Diverged]);
    assert_eq!(result.verdict, PairVerdict::Diverged);
    let (tally, notes) = report::pair_tally(std::slice::from_ref(&result), 1);
    assert_eq!((tally.passed, tally.failed, notes.unconfirmed), (0, 1, 0));
    assert_eq!(
        report::confirmation_line(&result),
        "DIVERGED handshake-default: confirmed by rerun 2 (pass, diverged)"
    );
}

#[test]
fn a_divergence_the_first_rerun_repeats_runs_no_further() {
    let result = judged(&OddOnRuns::new(&[1, 2, 3]));
    assert_eq!(result.reruns, [PairVerdict::Diverged]);
    assert_eq!(result.verdict, PairVerdict::Diverged);
}
