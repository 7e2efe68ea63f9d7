//! What a person reads: each case's trace, calls and checks, and the summary line.

use std::fmt::Write as _;

use crate::runner::{CaseResult, Verdict};

/// The block printed for one case.
pub fn case_text(result: &CaseResult, show_trace: bool) -> String {
    let mut out = String::new();
    let tag = match result.verdict {
        Verdict::Pass => "PASS ",
        Verdict::Fail => "FAIL ",
        Verdict::Error => "ERROR",
    };
    let _ = writeln!(
        out,
        "{tag} {} [{}] ({}, {:.0} ms)",
        result.name,
        result.dut,
        result.path.display(),
        result.wall_ms
    );
    let failing = result.verdict != Verdict::Pass;
    if let Some(trace) = &result.trace {
        if show_trace || failing {
            for line in trace.text().lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    for check in &result.checks {
        if check.ok && !(show_trace || failing) {
            continue;
        }
        let mark = if check.ok { "ok  " } else { "FAIL" };
        if check.ok {
            let _ = writeln!(out, "    {mark} {}: {}", check.what, check.actual);
        } else {
            let _ = writeln!(
                out,
                "    {mark} {}: expected {}, got {}",
                check.what, check.expected, check.actual
            );
        }
    }
    if let Some(error) = &result.error {
        let _ = writeln!(out, "    error: {error}");
    }
    if let Some(pcap) = &result.pcap {
        if show_trace || failing {
            let _ = writeln!(out, "    pcap: {}", pcap.display());
        }
    }
    out
}

/// Counts by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
}

pub fn tally(results: &[CaseResult]) -> Tally {
    let mut t = Tally::default();
    for r in results {
        match r.verdict {
            Verdict::Pass => t.passed += 1,
            Verdict::Fail => t.failed += 1,
            Verdict::Error => t.errors += 1,
        }
    }
    t
}

/// The closing line: `N passed, N failed` (harness errors count as failed and are named on
/// the line before).
pub fn summary(t: Tally) -> String {
    let mut out = String::new();
    if t.errors > 0 {
        let _ = writeln!(
            out,
            "{} case(s) could not run (harness errors, listed above)",
            t.errors
        );
    }
    let _ = write!(out, "{} passed, {} failed", t.passed, t.failed + t.errors);
    out
}
