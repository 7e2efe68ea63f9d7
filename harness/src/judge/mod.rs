//! Judging a run: a pure function of the case and the run records, whoever made them.
//! [`judge_run`] checks one record against the case's expectations ([`expect`]);
//! [`judge_pair`] compares two judged runs field by field ([`diff`]).

pub mod diff;
pub mod expect;

use std::path::PathBuf;

use serde::Serialize;

use crate::case::LoadedCase;
use crate::net::topology::DUT_MAC;
use crate::observe::trace::{self, Trace};
pub use crate::record::MAX_FRAMES;
use crate::record::{CallRecord, Captured, Phases, RunFailure, RunRecord};

use diff::Divergence;
use expect::Check;

/// What the judge is told beside the case and the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judging {
    /// Whether the case's `expect` blocks, written from the host kernel (Linux 6.18), judge
    /// this DUT; a DUT modelled on another kernel version is judged by the diff alone.
    pub expectations_apply: bool,
    /// Extra timing tolerance for this run, in ms, with its basis reported elsewhere.
    pub allowance_ms: f64,
}

/// Judges one run of `loaded` on the DUT named `dut`: the trace normalized from the
/// record, the case's expectations checked against it, and the verdict. `pcap` and
/// `wall_ms` are left for the runner to fill in.
pub fn judge_run(
    loaded: &LoadedCase,
    dut: &'static str,
    record: &RunRecord,
    judging: &Judging,
) -> CaseResult {
    let case = &loaded.case;
    let mut result = CaseResult::new(loaded, dut);
    result.phases = record.phases;
    result.failure = record.failure.clone();
    result.outlived_time_limit = matches!(record.failure, Some(RunFailure::TimeLimit(_)));
    if let Some(RunFailure::Unsupported(reason)) = &record.failure {
        result.verdict = Verdict::Unsupported;
        result.error = Some(reason.clone());
        return result;
    }
    // A runaway run (a flooding peer or DUT) keeps only its first MAX_FRAMES for the trace;
    // the pcap has them all. Their times go to the rate of the clock the DUT's timers and
    // TSvals follow.
    let shown = record.frames.len().min(MAX_FRAMES);
    let (frames, calls) = at_monotonic_rate(record, shown);
    let mut trace = trace::build_bound(&frames, &calls, DUT_MAC, &case.bind_ports());
    if let Some(shift) = record.clock_shift {
        trace.raw.dut_ts_offset_ms = trace.first_dut_tsval().map(|(val, at_ns)| {
            let mono_ms = ((at_ns - shift.start_ns) / 1_000_000) as u32;
            i64::from(val.wrapping_sub(mono_ms) as i32)
        });
    }
    if judging.expectations_apply {
        result.checks = expect::check(
            &case.expect,
            &trace,
            &case.ephemeral_ports(),
            judging.allowance_ms,
        );
    }
    result.trace = Some(trace);
    match &record.failure {
        Some(failure) => {
            result.verdict = Verdict::Error;
            result.error = Some(failure.to_string());
        }
        None if result.checks.iter().all(|c| c.ok) => result.verdict = Verdict::Pass,
        None => result.verdict = Verdict::Fail,
    }
    result
}

/// The record's first `shown` frames, and its calls, with their times taken to the monotonic
/// clock's rate ([`crate::record::ClockShift`]): where the capture's realtime clock was
/// slewed during the run, an interval on the wire is measured as the DUT's timers measured
/// it.
fn at_monotonic_rate(record: &RunRecord, shown: usize) -> (Vec<Captured>, Vec<CallRecord>) {
    let frames = &record.frames[..shown];
    let Some(shift) = record.clock_shift else {
        return (frames.to_vec(), record.calls.clone());
    };
    let frames = frames
        .iter()
        .map(|f| Captured {
            t_ns: shift.monotonic_rate(f.t_ns),
            bytes: f.bytes.clone(),
        })
        .collect();
    let calls = record
        .calls
        .iter()
        .map(|c| CallRecord {
            start_ns: shift.monotonic_rate(c.start_ns),
            end_ns: shift.monotonic_rate(c.end_ns),
            ..c.clone()
        })
        .collect();
    (frames, calls)
}

/// Judges one case run on a reference implementation and on another: their differences
/// (none hidden; those the case lists as known are marked so) and the pair's verdict.
pub fn judge_pair(
    loaded: &LoadedCase,
    reference: CaseResult,
    other: CaseResult,
    allowance_ms: f64,
) -> PairResult {
    let (r, o) = (reference, other);
    let mut divergences = match (&r.trace, &o.trace) {
        (Some(rt), Some(ot)) => diff::diff_with_allowance(
            rt,
            ot,
            &loaded.case.known_in_own_family(),
            &loaded.case.ephemeral_ports(),
            allowance_ms,
        ),
        _ => Vec::new(),
    };
    let outlived = outlived_alone(&r, &o);
    if let Some(divergence) = &outlived {
        divergences.insert(0, divergence.clone());
    }
    let verdict = if r.verdict == Verdict::Interrupted || o.verdict == Verdict::Interrupted {
        PairVerdict::Interrupted
    } else if outlived.is_some() {
        PairVerdict::Diverged
    } else if r.verdict == Verdict::Error || o.verdict == Verdict::Error {
        PairVerdict::Error
    } else if r.verdict == Verdict::Unsupported || o.verdict == Verdict::Unsupported {
        PairVerdict::Unsupported
    } else if r.verdict == Verdict::Fail
        || o.verdict == Verdict::Fail
        || divergences.iter().any(|d| d.known.is_none())
    {
        PairVerdict::Diverged
    } else if divergences.is_empty() {
        PairVerdict::Pass
    } else {
        PairVerdict::Known
    };
    PairResult {
        name: loaded.case.name.clone(),
        path: loaded.path.clone(),
        verdict,
        reference: r,
        other: o,
        divergences,
        reruns: Vec::new(),
    }
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// An expectation failed.
    Fail,
    /// The harness could not run the case (kept apart from failures).
    Error,
    /// The DUT cannot express one of the case's steps (`error` says which); nothing ran.
    Unsupported,
    /// A stopping signal (Ctrl-C, SIGTERM) cut the run short: it says nothing about the DUT.
    Interrupted,
}

/// One case's run on one DUT.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub path: PathBuf,
    pub name: String,
    pub dut: &'static str,
    pub verdict: Verdict,
    pub error: Option<String>,
    /// What `error` says, typed, where the run left a record.
    #[serde(skip)]
    pub failure: Option<RunFailure>,
    pub trace: Option<Trace>,
    pub checks: Vec<Check>,
    pub pcap: Option<PathBuf>,
    pub wall_ms: f64,
    /// Where the wall time went.
    pub phases: Phases,
    /// A call of the DUT's was still blocked when the case's time limit ended it: the
    /// verdict is `Error`, but against a reference whose calls all returned it is the
    /// implementation's behaviour, judged as a divergence ([`judge_pair`]).
    pub outlived_time_limit: bool,
}

impl CaseResult {
    /// A result with no verdict yet, for `loaded` on the DUT named `dut`.
    pub fn new(loaded: &LoadedCase, dut: &'static str) -> CaseResult {
        CaseResult {
            path: loaded.path.clone(),
            name: loaded.case.name.clone(),
            dut,
            verdict: Verdict::Error,
            error: None,
            failure: None,
            trace: None,
            checks: Vec::new(),
            pcap: None,
            wall_ms: 0.0,
            phases: Phases::default(),
            outlived_time_limit: false,
        }
    }

    /// A case that did not run, and why.
    pub fn not_run(
        loaded: &LoadedCase,
        dut: &'static str,
        verdict: Verdict,
        why: String,
    ) -> CaseResult {
        CaseResult {
            verdict,
            error: Some(why),
            ..CaseResult::new(loaded, dut)
        }
    }

    /// What the checks that failed checked, in order.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect()
    }

    /// Whether this run was cut off for flooding the wire (more than `MAX_FRAMES`): a
    /// behaviour of the implementation, not a fault of the harness.
    pub fn ran_away(&self) -> bool {
        matches!(self.failure, Some(RunFailure::Runaway { .. }))
    }
}

/// How a case ended when two implementations ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairVerdict {
    /// Same behaviour, every expectation held.
    Pass,
    /// Only divergences the case lists as known (each still reported).
    Known,
    /// An unexpected divergence, or a failed expectation on either side.
    Diverged,
    /// The harness could not run the case on one side.
    Error,
    /// One side cannot express the case's steps; nothing was compared.
    Unsupported,
    /// A stopping signal cut one side short; nothing was judged.
    Interrupted,
    /// Diverged, and then agreed on every rerun alone ([`crate::run::confirm_pair`]): counted as
    /// passed, and reported with the findings of the run that diverged.
    Unconfirmed,
}

impl PairVerdict {
    /// The verdict as reports and the JSON report spell it.
    pub fn name(self) -> &'static str {
        match self {
            PairVerdict::Pass => "pass",
            PairVerdict::Known => "known",
            PairVerdict::Diverged => "diverged",
            PairVerdict::Error => "error",
            PairVerdict::Unsupported => "unsupported",
            PairVerdict::Interrupted => "interrupted",
            PairVerdict::Unconfirmed => "unconfirmed",
        }
    }
}

/// One case run on a reference implementation and on another, and their differences.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub name: String,
    pub path: PathBuf,
    pub verdict: PairVerdict,
    pub reference: CaseResult,
    pub other: CaseResult,
    pub divergences: Vec<Divergence>,
    /// The verdicts of the reruns that confirmed a divergence or did not ([`crate::run::confirm_pair`]),
    /// in order; empty where none ran.
    pub reruns: Vec<PairVerdict>,
}

/// The divergence of a pair where one side's call was still blocked at the case's time
/// limit while every call of the other side returned: the blocked side behaves differently
/// (a connect that retries longer, ignores an ICMP error or a RST), which is the
/// implementation's doing, not the harness's. Both sides blocked, or the other side failing
/// for any reason, stays an error.
fn outlived_alone(r: &CaseResult, o: &CaseResult) -> Option<Divergence> {
    let finished = |side: &CaseResult| matches!(side.verdict, Verdict::Pass | Verdict::Fail);
    let blocked_call = |side: &CaseResult| {
        let calls = side
            .trace
            .as_ref()
            .map(|t| t.calls.as_slice())
            .unwrap_or(&[]);
        // The call the limit cut off: `(interrupted)` in the steps interpreter's log, or a
        // kernel call the limit's signal made return EINTR.
        let cut_off = |c: &&crate::observe::trace::TraceCall| {
            c.record.args == "(interrupted)" || c.record.errno.as_deref() == Some("EINTR")
        };
        match calls.iter().rposition(|c| cut_off(&c)) {
            Some(i) => format!(
                "call[{i}] `{}` still blocked at the time limit",
                calls[i].record.call
            ),
            None => "a call still blocked at the time limit".to_string(),
        }
    };
    let returned = "every call returned".to_string();
    let (reference, other) = if o.outlived_time_limit && finished(r) {
        (returned, blocked_call(o))
    } else if r.outlived_time_limit && finished(o) {
        (blocked_call(r), returned)
    } else {
        return None;
    };
    Some(Divergence {
        path: "time_limit".into(),
        reference,
        other,
        tolerance_ms: None,
        known: None,
    })
}

/// The cases whose verdict changed between repeated rounds of a suite (`--repeat`), each
/// with its verdicts in order: a behaviour that is not the same twice is a divergence of
/// its own.
pub fn changed_verdicts<'a>(
    names: impl IntoIterator<Item = &'a str>,
    verdicts: &[Vec<PairVerdict>],
) -> Vec<(&'a str, Vec<PairVerdict>)> {
    names
        .into_iter()
        .zip(verdicts)
        .filter(|(_, v)| v.windows(2).any(|w| w[0] != w[1]))
        .map(|(name, v)| (name, v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ClockShift;

    /// A SYN from the DUT with TSval `tsval`, seen on the wire at realtime `t_ns`.
    fn syn(t_ns: i64, tsval: u32) -> Captured {
        let mut options = vec![2, 4, 5, 0xb4, 1, 1, 8, 10];
        options.extend(tsval.to_be_bytes());
        options.extend(0u32.to_be_bytes());
        Captured {
            t_ns,
            bytes: crate::observe::craft::tcp(&crate::observe::craft::Segment {
                src_mac: DUT_MAC,
                dst_mac: crate::net::topology::PEER_MAC,
                src_ip: [198, 18, 0, 1].into(),
                dst_ip: [198, 18, 0, 2].into(),
                ip_id: 1,
                sport: 40000,
                dport: 80,
                seq: 7,
                ack: 0,
                flags: crate::observe::decode::flags::SYN,
                window: 64240,
                options,
                payload_len: 0,
            }),
        }
    }

    #[test]
    fn a_slewed_realtime_clock_is_taken_back_to_the_dut_s_rate() {
        // The DUT's clock: SYNs 1000 ms apart, TSval 1000 apart. The capture's realtime
        // clock ran 0.5% fast meanwhile (its shift against monotonic grew by 5 ms a second),
        // so the wire shows 1005 ms.
        let start = 1_700_000_000_000_000_000;
        let shift = 1_699_000_000_000_000_000;
        let record = RunRecord {
            frames: vec![syn(start, 500), syn(start + 1_005_000_000, 1500)],
            calls: Vec::new(),
            failure: None,
            phases: Phases::default(),
            clock_shift: Some(ClockShift {
                start_at_ns: start,
                start_ns: shift,
                end_at_ns: start + 1_005_000_000,
                end_ns: shift + 5_000_000,
            }),
        };
        let loaded = LoadedCase::parse(
            std::path::Path::new("x.yaml"),
            "name: x\nsteps:\n  - connect: {}\nexpect:\n  syn: { intervals_ms: [1000] }\n",
        )
        .unwrap();
        let judging = Judging {
            expectations_apply: true,
            allowance_ms: 0.0,
        };
        let r = judge_run(&loaded, "stack", &record, &judging);
        let frames = &r.trace.as_ref().unwrap().frames;
        assert!((frames[1].t_ms - frames[0].t_ms - 1000.0).abs() < 0.01);
        assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.checks);
        // Without the shift's second sample the wire's 1005 ms stand.
        let mut unslewed = record.clone();
        unslewed.clock_shift = Some(ClockShift::constant(shift));
        let r = judge_run(&loaded, "stack", &unslewed, &judging);
        let frames = &r.trace.as_ref().unwrap().frames;
        assert!((frames[1].t_ms - frames[0].t_ms - 1005.0).abs() < 0.01);
    }

    #[test]
    fn the_shift_is_interpolated_between_its_samples() {
        let shift = ClockShift {
            start_at_ns: 1_000,
            start_ns: 100,
            end_at_ns: 2_000,
            end_ns: 110,
        };
        assert_eq!(shift.at(1_000), 100);
        assert_eq!(shift.at(1_500), 105);
        assert_eq!(shift.at(2_000), 110);
        assert_eq!(shift.monotonic_rate(1_500), 1_495);
        assert_eq!(ClockShift::constant(7).at(123), 7);
    }

    #[test]
    fn a_verdict_that_changed_between_rounds_is_named_and_a_steady_one_is_not() {
        use PairVerdict::{Diverged, Known, Pass};
        let verdicts = vec![
            vec![Pass, Pass, Pass],
            vec![Pass, Diverged, Pass],
            vec![Known, Known],
        ];
        let changed = changed_verdicts(["steady", "flaky", "known"], &verdicts);
        assert_eq!(changed, vec![("flaky", vec![Pass, Diverged, Pass])]);
        assert!(changed_verdicts(["one"], &[vec![Diverged]]).is_empty());
    }
}
