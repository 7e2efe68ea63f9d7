//! A divergence is confirmed by rerunning its case alone: it counts as soon as one rerun
//! fails too, and is reported as unconfirmed (passed, with its findings) only where every
//! rerun agreed. Judged on canned runs (a DUT that hands back the same frames every time,
//! and one that sends another window on chosen runs), so no host timing enters the verdict.
//! A side whose call the case's time limit cut off is judged on canned runs too.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tcptwin::case::Case;
use tcptwin::case::LoadedCase;
use tcptwin::dut::{Dut, DutError, Running};
use tcptwin::net::topology::{Topology, DUT_MAC, PEER_MAC};
use tcptwin::observe::craft::{self, Segment};
use tcptwin::record::Captured;
use tcptwin::record::{RecordError, RunFailure, RunRecord};
use tcptwin::report;
use tcptwin::run::{self, PairVerdict};

/// A case with nothing to expect: only the diff judges.
fn case() -> LoadedCase {
    let path = Path::new("canned.yaml");
    LoadedCase {
        case: tcptwin::case::parse(path, "name: canned\nsteps:\n  - connect: {}\n").unwrap(),
        path: path.to_path_buf(),
    }
}

/// A run that sent one SYN from `isn` with `window`, at the same instant every time.
fn canned_run(isn: u32, window: u16) -> RunRecord {
    let syn = craft::tcp(&Segment {
        src_mac: DUT_MAC,
        dst_mac: PEER_MAC,
        src_ip: Ipv4Addr::new(198, 18, 0, 1).into(),
        dst_ip: Ipv4Addr::new(198, 18, 0, 2).into(),
        ip_id: 1,
        sport: 40000,
        dport: 80,
        seq: isn,
        ack: 0,
        flags: 0x002,
        window,
        options: vec![],
        payload_len: 0,
    });
    RunRecord {
        frames: vec![Captured {
            t_ns: 1_000_000_000,
            bytes: syn,
        }],
        calls: Vec::new(),
        failure: None,
        phases: Default::default(),
        clock_shift: None,
    }
}

/// Hands back a canned run: window 64240, or 65535 on the runs (counted from 1) listed in
/// `odd_runs`.
struct Canned {
    isn: u32,
    odd_runs: &'static [usize],
    runs: AtomicUsize,
}

impl Canned {
    fn new(isn: u32, odd_runs: &'static [usize]) -> Canned {
        Canned {
            isn,
            odd_runs,
            runs: AtomicUsize::new(0),
        }
    }
}

impl Dut for Canned {
    fn name(&self) -> &'static str {
        "canned"
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run_steps(&self, _: &Topology, _: &Case) -> Result<Running, DutError> {
        unreachable!("a canned DUT runs elsewhere")
    }

    fn run_elsewhere(&self, _: &LoadedCase) -> Option<Result<RunRecord, RecordError>> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let window = if self.odd_runs.contains(&run) {
            65535
        } else {
            64240
        };
        Some(Ok(canned_run(self.isn, window)))
    }
}

/// Runs the case once against `other` and confirms its divergence with up to 2 reruns.
fn judged(other: &Canned) -> run::PairResult {
    let loaded = case();
    let reference = Canned::new(1000, &[]);
    let mut result = run::run_pair(&loaded, &reference, other, None);
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
            .any(|d| d.path == "frame[0].tcp.window"),
        "{:?}",
        result.divergences
    );
    run::confirm_pair(&mut result, &loaded, &reference, other, 2, None);
    result
}

#[test]
fn the_canned_runs_agree_where_the_window_is_the_same() {
    let loaded = case();
    let result = run::run_pair(
        &loaded,
        &Canned::new(1000, &[]),
        &Canned::new(2000, &[]),
        None,
    );
    assert_eq!(
        result.verdict,
        PairVerdict::Pass,
        "{}",
        report::pair_text(&result, false)
    );
}

#[test]
fn a_divergence_every_rerun_agrees_with_is_unconfirmed_and_passes() {
    let result = judged(&Canned::new(2000, &[1]));
    assert_eq!(result.reruns, [PairVerdict::Pass, PairVerdict::Pass]);
    assert_eq!(result.verdict, PairVerdict::Unconfirmed);
    // Reported with the findings of the run that diverged, and counted as passed.
    assert!(!result.divergences.is_empty());
    let (tally, notes) = report::pair_tally(std::slice::from_ref(&result), 1);
    assert_eq!((tally.passed, tally.failed, notes.unconfirmed), (1, 0, 1));
    let line = report::confirmation_line(&result);
    assert!(
        line.starts_with("UNCONF   canned: every rerun agreed (pass, pass)"),
        "{line}"
    );
    assert!(report::pair_text(&result, false).starts_with("UNCONF "));
}

#[test]
fn a_divergence_one_rerun_repeats_is_confirmed_and_fails() {
    // The first rerun agrees, the second diverges again.
    let result = judged(&Canned::new(2000, &[1, 3]));
    assert_eq!(result.reruns, [PairVerdict::Pass, PairVerdict::Diverged]);
    assert_eq!(result.verdict, PairVerdict::Diverged);
    let (tally, notes) = report::pair_tally(std::slice::from_ref(&result), 1);
    assert_eq!((tally.passed, tally.failed, notes.unconfirmed), (0, 1, 0));
    assert_eq!(
        report::confirmation_line(&result),
        "DIVERGED canned: confirmed by rerun 2 (pass, diverged)"
    );
}

#[test]
fn a_divergence_the_first_rerun_repeats_runs_no_further() {
    let result = judged(&Canned::new(2000, &[1, 2, 3]));
    assert_eq!(result.reruns, [PairVerdict::Diverged]);
    assert_eq!(result.verdict, PairVerdict::Diverged);
}

/// A canned DUT whose `connect` was still blocked when the case's time limit ended it
/// (`outlived`), or one whose connect returned ETIMEDOUT.
struct Blocking {
    outlived: bool,
}

impl Dut for Blocking {
    fn name(&self) -> &'static str {
        if self.outlived {
            "blocked"
        } else {
            "returned"
        }
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run_steps(&self, _: &Topology, _: &Case) -> Result<Running, DutError> {
        unreachable!("a canned DUT runs elsewhere")
    }

    fn run_elsewhere(&self, _: &LoadedCase) -> Option<Result<RunRecord, RecordError>> {
        let mut run = canned_run(1000, 64240);
        let (args, errno) = if self.outlived {
            ("(interrupted)", "EINTR")
        } else {
            ("198.18.0.2:80", "ETIMEDOUT")
        };
        run.calls = vec![tcptwin::record::CallRecord {
            call: "connect".into(),
            args: args.into(),
            ret: -1,
            errno: Some(errno.into()),
            outcome: errno.into(),
            start_ns: 1_000_000_000,
            end_ns: 4_000_000_000,
        }];
        if self.outlived {
            run.failure = Some(RunFailure::TimeLimit(
                "time limit of 3 s exceeded; 0 call(s) had returned".into(),
            ));
        }
        Some(Ok(run))
    }
}

#[test]
fn a_call_blocked_past_the_time_limit_alone_is_a_divergence_naming_it() {
    let loaded = case();
    let returned = Blocking { outlived: false };
    let blocked = Blocking { outlived: true };
    for (reference, other, want) in [
        (
            &returned,
            &blocked,
            (
                "every call returned",
                "call[0] `connect` still blocked at the time limit",
            ),
        ),
        (
            &blocked,
            &returned,
            (
                "call[0] `connect` still blocked at the time limit",
                "every call returned",
            ),
        ),
    ] {
        let result = run::run_pair(&loaded, reference, other, None);
        let text = report::pair_text(&result, false);
        assert_eq!(result.verdict, PairVerdict::Diverged, "{text}");
        let first = &result.divergences[0];
        assert_eq!(first.path, "time_limit", "{text}");
        assert_eq!((first.reference.as_str(), first.other.as_str()), want);
        assert!(text.contains("still blocked at the time limit"), "{text}");
    }
}

#[test]
fn both_sides_blocked_past_the_time_limit_is_an_error_not_a_verdict() {
    let loaded = case();
    let blocked = Blocking { outlived: true };
    let result = run::run_pair(&loaded, &blocked, &blocked, None);
    assert_eq!(result.verdict, PairVerdict::Error);
    assert!(result.divergences.iter().all(|d| d.path != "time_limit"));
}
