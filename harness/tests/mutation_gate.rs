//! The gate as one test: every case in `cases/` on the kernel and the stack, diffed, then a
//! bounded fuzz run of the stack against the kernel. This is what `tcptwin mutants` runs
//! on each mutant of `stack/` (through cargo-mutants): a mutant is caught when this test
//! fails, so the kill rate measures the gate's power, not the stack's own unit tests.
//!
//! A divergence counts only when it comes back: a case or scenario that diverges is run
//! again, twice, and fails the gate only if it diverges every time. The first that does
//! fails the test. On two cores shared
//! with other work a DUT call now and then returns a few ms late; counted at once, such a
//! one-off would "catch" a mutant the gate cannot see.

use std::path::{Path, PathBuf};

use tcptwin::case::LoadedCase;
use tcptwin::case::Suite;
use tcptwin::dut::{KernelDut, StackDut};
use tcptwin::run::{self, PairResult, PairVerdict};
use tcptwin::tools::fuzz::{self, FuzzConfig};

/// Runs after the first divergence; every one of them must diverge too.
const RERUNS: usize = 2;

/// The bounded fuzz runs: (seed, scenarios, longest kernel timer in s). Timer-free
/// scenarios reach option, window and close handling in milliseconds each; the timer runs
/// add dropped SYNs, ICMP errors after a retransmission and blocking connects bounded by
/// `SO_SNDTIMEO`, which the SYN retransmission schedule needs.
/// The seeds are ones on which the stack as it is shows no confirmed divergence
/// (`tcptwin fuzz --cases N --seed S --max-timer T --no-shrink`); a generator change that
/// draws other scenarios needs them chosen again.
const FUZZ_RUNS: &[(u64, u64, f64)] = &[(12, 120, 0.0), (14, 120, 0.0), (13, 30, 3.0)];

/// Fuzz scenarios the stack as it is diverges on every time, each with the reason. The
/// gate is about divergences a stack change brings, so these are not counted; each is
/// also a known divergence of the stack that a fix removes from here.
const KNOWN_FUZZ_DIVERGENCES: &[(u64, u64, &str)] = &[];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

fn diverged(result: &PairResult) -> bool {
    !matches!(result.verdict, PairVerdict::Pass | PairVerdict::Known)
}

/// Runs `loaded` again up to [`RERUNS`] times; true when it diverged every time.
fn diverges_again(loaded: &LoadedCase) -> bool {
    (0..RERUNS).all(|_| {
        diverged(&run::run_pair(
            loaded,
            &KernelDut,
            &StackDut::default(),
            None,
        ))
    })
}

#[test]
fn the_stack_passes_every_case_and_a_bounded_fuzz_run() {
    // Top-level cases only: cases/regressions/ holds what the fuzzer saved, not the suite.
    let mut cases = Suite::load(&[cases_dir()]).unwrap().cases;
    cases.retain(|l| l.path.parent() == Some(cases_dir().as_path()));
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let results = run::run_each(
        &cases,
        run::DEFAULT_JOBS,
        |c| run::run_pair(c, &KernelDut, &StackDut::default(), None),
        |_, _| {},
    );
    // One confirmed divergence fails the gate; confirming more would only cost time (a
    // mutant that breaks every case would rerun each of them).
    if let Some(result) = cases
        .iter()
        .zip(&results)
        .find(|(loaded, result)| diverged(result) && diverges_again(loaded))
        .map(|(_, result)| result)
    {
        panic!("{}", tcptwin::report::pair_text(result, true));
    }
    // As `tcptwin run` does over a suite: a stack whose ISN does not vary (a constant, or
    // a hash without its clock term) shows only across cases, since every trace's
    // sequence numbers are printed relative to its ISN.
    let repeated = tcptwin::judge::diff::repeated_isns(results.iter().map(|r| {
        (
            r.name.as_str(),
            r.other.trace.as_ref().and_then(|t| t.raw.dut_isn),
        )
    }));
    assert!(
        repeated.is_empty(),
        "property isn_varies: the stack repeated ISNs: {repeated:?}"
    );

    for &(seed, scenarios, max_timer_s) in FUZZ_RUNS {
        let config = FuzzConfig {
            cases: Some(scenarios),
            time: None,
            seed,
            max_timer_s,
            jobs: 8,
            save_dir: None,
            stop_at_first: false,
            shrink: false,
            dut_flags: String::new(),
            families: vec![tcptwin::case::IpFamily::Inet],
        };
        let outcome = fuzz::run(&config, &KernelDut, &StackDut::default(), |_, _| {});
        for found in &outcome.found {
            if KNOWN_FUZZ_DIVERGENCES
                .iter()
                .any(|&(s, i, _)| s == seed && i == found.index)
            {
                continue;
            }
            let loaded = LoadedCase {
                path: PathBuf::from(format!("fuzz-{seed}-{}", found.index)),
                case: found.minimal.clone(),
            };
            if diverges_again(&loaded) {
                panic!(
                    "fuzz seed {seed} #{} (--max-timer {max_timer_s}):\n{}",
                    found.index,
                    tcptwin::report::pair_text(&found.result, true)
                );
            }
        }
    }
}
