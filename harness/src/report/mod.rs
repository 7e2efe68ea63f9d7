//! What a person reads: each case's trace, calls and checks, and the summary line.

pub mod conformance;
pub mod exit;
pub mod html;
pub mod json;
pub mod junit;
pub mod progress;

use std::fmt::Write as _;

use crate::observe::trace::Trace;
use crate::run::{CaseResult, PairResult, PairVerdict, Verdict};

/// The block printed for one case.
pub fn case_text(result: &CaseResult, show_trace: bool) -> String {
    let mut out = String::new();
    let tag = match result.verdict {
        Verdict::Pass => "PASS ",
        Verdict::Fail => "FAIL ",
        Verdict::Error => "ERROR",
        Verdict::Unsupported => "UNSUP",
        Verdict::Interrupted => "INTR ",
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
        let label = match result.verdict {
            Verdict::Unsupported => "unsupported by this DUT",
            Verdict::Interrupted => "interrupted",
            _ => "error",
        };
        let _ = writeln!(out, "    {label}: {error}");
    }
    if let Some(pcap) = &result.pcap {
        if show_trace || failing {
            let _ = writeln!(out, "    pcap: {}", pcap.display());
        }
    }
    out
}

/// Counts by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub passed: usize,
    /// Divergences and failed expectations.
    pub failed: usize,
    /// Harness errors: the case could not be judged.
    pub errors: usize,
    /// Cases the DUT could not express; neither passed nor failed.
    pub unsupported: usize,
    /// Cases a stopping signal cut short.
    pub interrupted: usize,
    /// Cases that never started because the run was stopped first.
    pub not_run: usize,
}

impl Tally {
    /// The outcome a CI job branches on: a divergence outweighs a harness error, which
    /// outweighs a pass.
    pub fn outcome(&self) -> crate::report::exit::Outcome {
        if self.failed > 0 {
            crate::report::exit::Outcome::Diverged
        } else if self.errors > 0 {
            crate::report::exit::Outcome::HarnessError
        } else {
            crate::report::exit::Outcome::Passed
        }
    }
}

/// Counts `results` of a run of `planned` case runs; those without a result never ran.
pub fn tally(results: &[CaseResult], planned: usize) -> Tally {
    let mut t = Tally::default();
    for r in results {
        match r.verdict {
            Verdict::Pass => t.passed += 1,
            Verdict::Fail => t.failed += 1,
            Verdict::Error => t.errors += 1,
            Verdict::Unsupported => t.unsupported += 1,
            Verdict::Interrupted => t.interrupted += 1,
        }
    }
    t.not_run = planned.saturating_sub(results.len());
    t
}

/// The closing line: `N passed, N failed`, then harness errors, unsupported, interrupted
/// and never-run cases when there are any (harness errors are also named on the line
/// before, as they are listed above).
pub fn summary(t: Tally) -> String {
    let mut out = String::new();
    if t.errors > 0 {
        let _ = writeln!(
            out,
            "{} case(s) could not run (harness errors, listed above)",
            t.errors
        );
    }
    let _ = write!(out, "{} passed, {} failed", t.passed, t.failed);
    if t.errors > 0 {
        let _ = write!(out, ", {} harness error(s)", t.errors);
    }
    if t.unsupported > 0 {
        let _ = write!(out, ", {} unsupported by the DUT", t.unsupported);
    }
    if t.interrupted > 0 {
        let _ = write!(out, ", {} interrupted", t.interrupted);
    }
    if t.not_run > 0 {
        let _ = write!(out, ", {} not run", t.not_run);
    }
    out
}

/// At most this many frames of an aligned diff are printed: a runaway case captures up
/// to a thousand, and its first screens say what happened.
const MAX_FRAME_ROWS: usize = 60;

/// At most this many unexpected divergences are listed (known ones always are): a stack
/// that sends a thousand segments where Linux sent ten differs in every field of each.
const MAX_DIVERGENCE_LINES: usize = 40;

/// A line of the aligned frame diff.
#[derive(Debug, PartialEq)]
enum Row {
    Frame(usize),
    /// A run of this many agreeing frames, left out.
    Skipped(usize),
}

/// Which of `frames` aligned frames to print: all of them when asked for the whole trace,
/// else every differing frame with two agreeing ones on each side for context, longer
/// stretches of agreement being cut to a count.
fn frame_rows(frames: usize, marked: &std::collections::BTreeSet<usize>, whole: bool) -> Vec<Row> {
    const CONTEXT: usize = 2;
    let near = |i: usize| {
        whole
            || i < CONTEXT
            || marked
                .range(i.saturating_sub(CONTEXT)..=i + CONTEXT)
                .next()
                .is_some()
    };
    let mut rows = Vec::new();
    let mut skipped = 0;
    // A cut of one frame saves nothing: that frame is printed instead.
    let flush = |rows: &mut Vec<Row>, skipped: &mut usize, at: usize| {
        match *skipped {
            0 => {}
            1 => rows.push(Row::Frame(at - 1)),
            n => rows.push(Row::Skipped(n)),
        }
        *skipped = 0;
    };
    for i in 0..frames {
        if near(i) {
            flush(&mut rows, &mut skipped, i);
            rows.push(Row::Frame(i));
        } else {
            skipped += 1;
        }
    }
    flush(&mut rows, &mut skipped, frames);
    rows
}

/// The block printed for a case run on two implementations: one line when they agree;
/// otherwise both traces aligned frame by frame (`=` same, `!` differing) and every
/// divergence with its path and both values. Known divergences are always listed.
pub fn pair_text(pair: &PairResult, show_trace: bool) -> String {
    let (r, o) = (&pair.reference, &pair.other);
    let (rn, on) = pair_names(pair);
    let mut out = String::new();
    let tag = match pair.verdict {
        PairVerdict::Pass => "PASS    ",
        PairVerdict::Known => "KNOWN   ",
        PairVerdict::Diverged => "DIVERGED",
        PairVerdict::Error => "ERROR   ",
        PairVerdict::Unsupported => "UNSUPP  ",
        PairVerdict::Interrupted => "INTR    ",
        PairVerdict::Unconfirmed => "UNCONF  ",
    };
    let _ = writeln!(
        out,
        "{tag} {} [{rn} vs {on}] ({}, {:.0} ms)",
        pair.name,
        pair.path.display(),
        r.wall_ms.max(o.wall_ms)
    );
    let unexpected = pair.verdict == PairVerdict::Diverged || pair.verdict == PairVerdict::Error;
    if let (Some(rt), Some(ot)) = (&r.trace, &o.trace) {
        if unexpected || show_trace {
            let width = rn.len().max(on.len());
            let marked: std::collections::BTreeSet<usize> = pair
                .divergences
                .iter()
                .filter_map(|d| {
                    d.path
                        .strip_prefix("frame[")?
                        .split(']')
                        .next()?
                        .parse()
                        .ok()
                })
                .collect();
            let frames = rt.frames.len().max(ot.frames.len());
            let mut shown = 0;
            for row in frame_rows(frames, &marked, show_trace) {
                let i = match row {
                    Row::Frame(i) => i,
                    Row::Skipped(n) => {
                        let _ = writeln!(out, "  … {n} identical frames");
                        continue;
                    }
                };
                if shown == MAX_FRAME_ROWS {
                    let _ = writeln!(
                        out,
                        "  … frames {i} to {} not shown (the pcaps have them all)",
                        frames - 1
                    );
                    break;
                }
                shown += 1;
                let line = |t: &Trace| {
                    t.frames.get(i).map_or("(no frame)".to_string(), |f| {
                        format!("{:>9.3} {} {}", f.t_ms / 1e3, f.dir.arrow(), f.norm.text())
                    })
                };
                let (a, b) = (line(rt), line(ot));
                if !marked.contains(&i) {
                    let _ = writeln!(out, "  = {i:>3} {:width$} {a}", "");
                } else {
                    let _ = writeln!(out, "  ! {i:>3} {rn:width$} {a}");
                    let _ = writeln!(out, "        {on:width$} {b}");
                }
            }
            for i in 0..rt.calls.len().max(ot.calls.len()) {
                let call = |t: &Trace| {
                    t.calls.get(i).map_or("(no call)".to_string(), |c| {
                        format!(
                            "{:>9.3}   {} = {}",
                            c.t_ms / 1e3,
                            c.record.display_call(),
                            c.record.display_result()
                        )
                    })
                };
                let prefix = format!("call[{i}]");
                let differs = pair.divergences.iter().any(|d| d.path.starts_with(&prefix));
                let mark = if differs { '!' } else { '=' };
                let _ = writeln!(out, "  {mark} {prefix:>7} {rn:width$} {}", call(rt));
                if differs {
                    let _ = writeln!(out, "          {on:width$} {}", call(ot));
                }
            }
        }
    }
    for side in [r, o] {
        for check in side.checks.iter().filter(|c| !c.ok) {
            let _ = writeln!(
                out,
                "    FAIL [{}] {}: expected {}, got {}",
                side.dut, check.what, check.expected, check.actual
            );
        }
        if let Some(e) = &side.error {
            let label = match side.verdict {
                Verdict::Unsupported => "unsupported by this DUT",
                Verdict::Interrupted => "interrupted",
                _ => "error",
            };
            let _ = writeln!(out, "    {label} [{}]: {e}", side.dut);
        }
    }
    let mut unlisted = 0;
    let mut listed = 0;
    for d in &pair.divergences {
        let tolerance = d
            .tolerance_ms
            .map(|t| format!(" (tolerance ±{t:.0} ms)"))
            .unwrap_or_default();
        match &d.known {
            None if listed == MAX_DIVERGENCE_LINES => unlisted += 1,
            None => {
                listed += 1;
                let _ = writeln!(
                    out,
                    "    {}: {rn} {}, {on} {}{tolerance}",
                    d.path, d.reference, d.other
                );
            }
            Some(reason) => {
                let _ = writeln!(
                    out,
                    "    known {}: {rn} {}, {on} {}{tolerance} — {reason}",
                    d.path, d.reference, d.other
                );
            }
        }
    }
    if unlisted > 0 {
        let _ = writeln!(
            out,
            "    … {unlisted} more differences (--json lists every one)"
        );
    }
    if unexpected || show_trace {
        for pcap in [&r.pcap, &o.pcap].into_iter().flatten() {
            let _ = writeln!(out, "    pcap: {}", pcap.display());
        }
    }
    out
}

/// A group of divergences under one frame or call (`frame[5]`, `call[1]`), or one
/// divergence elsewhere: what a person counts as one finding. An extra frame differs in
/// every field of it, yet is one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `frame[5]`, `call[1]`, or the divergence's whole path.
    pub at: String,
    /// How many fields differ under it.
    pub fields: usize,
    /// Whether the reference or the other side has no such frame or call at all.
    pub missing_on_one_side: bool,
}

/// The unexpected divergences of `pair`, grouped into findings, in trace order.
pub fn findings(pair: &PairResult) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for d in pair.divergences.iter().filter(|d| d.known.is_none()) {
        let at = match d.path.find(']') {
            Some(end) if d.path.starts_with("frame[") || d.path.starts_with("call[") => {
                &d.path[..=end]
            }
            _ => d.path.as_str(),
        };
        let absent = d.reference == "absent" || d.other == "absent";
        match out.iter_mut().find(|f| f.at == at) {
            Some(f) => {
                f.fields += 1;
                f.missing_on_one_side |= absent;
            }
            None => out.push(Finding {
                at: at.to_string(),
                fields: 1,
                missing_on_one_side: absent,
            }),
        }
    }
    out
}

/// One line naming the findings: `2 findings: frame[5] (extra or missing, 24 fields),
/// call[1] (1 field)`.
pub fn findings_line(findings: &[Finding]) -> String {
    let parts: Vec<String> = findings
        .iter()
        .map(|f| {
            let fields = if f.fields == 1 {
                "1 field".to_string()
            } else {
                format!("{} fields", f.fields)
            };
            if f.missing_on_one_side {
                format!("{} (on one side only, {fields})", f.at)
            } else {
                format!("{} ({fields})", f.at)
            }
        })
        .collect();
    let noun = if findings.len() == 1 {
        "finding"
    } else {
        "findings"
    };
    format!("{} {noun}: {}", findings.len(), parts.join(", "))
}

fn pair_names(pair: &PairResult) -> (String, String) {
    let (r, o) = (pair.reference.dut, pair.other.dut);
    if r == o {
        (format!("{r}#1"), format!("{o}#2"))
    } else {
        (r.to_string(), o.to_string())
    }
}

/// How many passed pair results passed with something to say: known divergences only, or
/// a divergence no rerun confirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassedWithNotes {
    pub known: usize,
    pub unconfirmed: usize,
}

/// What the reruns of a divergence found ([`crate::run::confirm_pair`]), in one line.
pub fn confirmation_line(pair: &PairResult) -> String {
    let seen: Vec<&str> = pair.reruns.iter().map(|v| v.name()).collect();
    let reruns = seen.join(", ");
    match pair.verdict {
        PairVerdict::Unconfirmed => format!(
            "UNCONF   {}: every rerun agreed ({reruns}); the divergence above is not counted",
            pair.name
        ),
        _ if pair.reruns.is_empty() => {
            format!("DIVERGED {}: not rerun (the run was stopped)", pair.name)
        }
        _ => format!(
            "DIVERGED {}: confirmed by rerun {} ({reruns})",
            pair.name,
            pair.reruns.len()
        ),
    }
}

/// Counts pair results of a run of `planned` case runs: known and unconfirmed divergences
/// pass (and are counted apart), divergences fail, harness errors are counted apart, and
/// runs without a result never ran.
pub fn pair_tally(results: &[PairResult], planned: usize) -> (Tally, PassedWithNotes) {
    let mut t = Tally::default();
    let mut notes = PassedWithNotes::default();
    for r in results {
        match r.verdict {
            PairVerdict::Pass => t.passed += 1,
            PairVerdict::Known => {
                t.passed += 1;
                notes.known += 1;
            }
            PairVerdict::Unconfirmed => {
                t.passed += 1;
                notes.unconfirmed += 1;
            }
            PairVerdict::Diverged => t.failed += 1,
            PairVerdict::Error => t.errors += 1,
            PairVerdict::Unsupported => t.unsupported += 1,
            PairVerdict::Interrupted => t.interrupted += 1,
        }
    }
    t.not_run = planned.saturating_sub(results.len());
    (t, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreeing_stretches_are_cut_around_the_differing_frames() {
        let marked = [10].into_iter().collect();
        let rows = frame_rows(20, &marked, false);
        assert_eq!(
            rows,
            vec![
                Row::Frame(0),
                Row::Frame(1),
                Row::Skipped(6),
                Row::Frame(8),
                Row::Frame(9),
                Row::Frame(10),
                Row::Frame(11),
                Row::Frame(12),
                Row::Skipped(7),
            ]
        );
        // A one-frame gap is printed, not cut; the whole trace is printed when asked for.
        let marked = [5].into_iter().collect();
        assert!(!frame_rows(8, &marked, false).contains(&Row::Skipped(1)));
        assert_eq!(frame_rows(8, &marked, false).len(), 8);
        assert_eq!(frame_rows(30, &marked, true).len(), 30);
    }
}
