//! Runs cases end to end: build the topology, start capture and peer, run the DUT, settle,
//! stop, normalize, check. Several cases run at once (they mostly wait on kernel timers);
//! results come back in input order.

pub mod prewarm;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::case::LoadedCase;
use crate::dut::{Dut, DutError};
use crate::judge::diff::{self, Divergence};
use crate::judge::expect::{self, Check};
use crate::net::topology::{TopologySpec, DUT_MAC, PEER_IF, PEER_MAC};
use crate::observe::capture::{self, realtime_ns, Capture};
use crate::observe::trace::{self, Trace};
use crate::peer::{Peer, PeerAddrs};
use crate::record::{Phases, RunRecord};

/// Cases a suite runs at once by default: they mostly wait on kernel timers, and eight end
/// this suite with its longest case on 2 cores (7.5 s, as with sixteen). More only crowd
/// the host, and a late timer or peer then reads as a divergence. Measured on debug
/// builds: the kernel against itself failed a timing in 2 of 12 runs of the false-alarm
/// check with sixteen, 0 of 12 with eight; rootless suites in 5 of 14 runs with sixteen,
/// 1 of 29 with eight, and 0 of 23 with eight once the rest of tcptwin ran at nice 19
/// (`priority`).
pub const DEFAULT_JOBS: usize = 8;

/// The most frames one run keeps for its trace. A connect case makes a few dozen; a
/// runaway peer or DUT (a flood of 10^5 RSTs) would otherwise make decoding, diffing and
/// the report take minutes. A run that captured more is an error.
pub const MAX_FRAMES: usize = 1000;

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

/// How the error of a run that captured too many frames begins ([`CaseResult::ran_away`]).
const RUNAWAY: &str = "runaway:";

/// One case's run on one DUT.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub path: PathBuf,
    pub name: String,
    pub dut: &'static str,
    pub verdict: Verdict,
    pub error: Option<String>,
    pub trace: Option<Trace>,
    pub checks: Vec<Check>,
    pub pcap: Option<PathBuf>,
    pub wall_ms: f64,
    /// Where the wall time went.
    pub phases: Phases,
    /// A call of the DUT's was still blocked when the case's time limit ended it: the
    /// verdict is `Error`, but against a reference whose calls all returned it is the
    /// implementation's behaviour, judged as a divergence ([`run_pair`]).
    pub outlived_time_limit: bool,
}

impl CaseResult {
    /// Whether this run was cut off for flooding the wire (more than `MAX_FRAMES`): a
    /// behaviour of the implementation, not a fault of the harness.
    pub fn ran_away(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|e| e.starts_with(RUNAWAY))
    }
}

/// Runs one case on one DUT; `artifacts` receives `<name>/<dut>.pcap`.
pub fn run_case(loaded: &LoadedCase, dut: &dyn Dut, artifacts: Option<&Path>) -> CaseResult {
    run_case_as(loaded, dut, artifacts, dut.name())
}

/// Runs one case on one DUT, naming its capture `<name>/<label>.pcap`.
pub fn run_case_as(
    loaded: &LoadedCase,
    dut: &dyn Dut,
    artifacts: Option<&Path>,
    label: &str,
) -> CaseResult {
    let started = Instant::now();
    let mut result = CaseResult {
        path: loaded.path.clone(),
        name: loaded.case.name.clone(),
        dut: dut.name(),
        verdict: Verdict::Error,
        error: None,
        trace: None,
        checks: Vec::new(),
        pcap: None,
        wall_ms: 0.0,
        phases: Phases::default(),
        outlived_time_limit: false,
    };
    if let Some(reason) = dut.unsupported(&loaded.case) {
        result.verdict = Verdict::Unsupported;
        result.error = Some(reason);
    } else if let Err(e) = run_into(&mut result, loaded, dut, artifacts, label) {
        result.verdict = Verdict::Error;
        result.error = Some(e);
    }
    // A run a stopping signal cut short failed because it was stopped: its checks and
    // errors are not the DUT's.
    let cut_short = matches!(result.verdict, Verdict::Fail | Verdict::Error);
    if cut_short && crate::sys::interrupt::requested() {
        result.verdict = Verdict::Interrupted;
        result.error = Some("interrupted before it finished (the run was stopped)".into());
    }
    result.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    result
}

fn run_into(
    result: &mut CaseResult,
    loaded: &LoadedCase,
    dut: &dyn Dut,
    artifacts: Option<&Path>,
    label: &str,
) -> Result<(), String> {
    let case = &loaded.case;
    let elsewhere = dut.run_elsewhere(loaded);
    let on_this_host = elsewhere.is_none();
    let raw = match elsewhere {
        Some(raw) => raw?,
        None => run_raw(loaded, dut)?,
    };
    let judging = Instant::now();
    result.phases = raw.phases;
    result.outlived_time_limit = raw.outlived_time_limit && raw.dut_error.is_some();
    if let Some(dir) = artifacts {
        let path = dir.join(&case.name).join(format!("{label}.pcap"));
        capture::write_pcap(&path, &raw.frames).map_err(|e| e.to_string())?;
        result.pcap = Some(path);
    }
    if let Some(reason) = raw.unsupported {
        result.verdict = Verdict::Unsupported;
        result.error = Some(reason);
        return Ok(());
    }
    // A runaway run (a flooding peer or DUT) keeps only its first MAX_FRAMES for the trace;
    // the pcap has them all.
    let shown = raw.frames.len().min(MAX_FRAMES);
    let mut trace = trace::build_bound(
        &raw.frames[..shown],
        &raw.calls,
        DUT_MAC,
        &case.bind_ports(),
    );
    // A DUT run elsewhere (a VM) stamps from a clock of its own.
    if on_this_host {
        let shift_ns = capture::realtime_less_monotonic_ns();
        trace.raw.dut_ts_offset_ms = trace.first_dut_tsval().map(|(val, at_ns)| {
            let mono_ms = ((at_ns - shift_ns) / 1_000_000) as u32;
            i64::from(val.wrapping_sub(mono_ms) as i32)
        });
    }
    // A case's `expect` block describes the host kernel (6.18); a DUT modelled on another
    // version is judged by the diff against its own oracle alone.
    if dut.expectations_apply() {
        result.checks = expect::check(
            &case.expect,
            &trace,
            &case.ephemeral_ports(),
            scheduling_allowance_ms(),
        );
    }
    result.trace = Some(trace);
    result.phases.teardown_ms += judging.elapsed().as_secs_f64() * 1e3;
    // The peer's failure first: a peer that died also leaves the DUT waiting.
    if let Some(e) = raw.peer_error {
        return Err(format!("the scripted peer failed: {e}"));
    }
    if let Some(e) = raw.dut_error {
        return Err(e);
    }
    result.verdict = if result.checks.iter().all(|c| c.ok) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    Ok(())
}

/// Runs one case on `dut` here: topology, capture, peer, the DUT's steps, settle, stop.
pub fn run_raw(loaded: &LoadedCase, dut: &dyn Dut) -> Result<RunRecord, String> {
    let case = &loaded.case;
    let mut phases = Phases::default();
    let mut clock = Instant::now();
    let mut lap = || {
        let now = Instant::now();
        let ms = (now - clock).as_secs_f64() * 1e3;
        clock = now;
        ms
    };
    let spec = TopologySpec::for_case(case, dut.kernel_owns_address());
    // The network and its capture were most likely built while an earlier case ran.
    let prewarm::Prepared {
        topology,
        peer_socket,
        capture,
        provenance,
    } = prewarm::take(&spec)?;
    phases.prewarmed = provenance.prewarmed;
    phases.blank_ms = provenance.blank_ms;
    let peer = Peer::spawn(
        peer_socket,
        case.peer.clone(),
        PeerAddrs {
            ifname: PEER_IF.into(),
            mac: PEER_MAC,
            ip: spec.peer_ip,
            mss: (spec.mtu.saturating_sub(40)).min(65535) as u16,
        },
    );
    let peer = match peer {
        Ok(peer) => peer,
        Err(e) => {
            let _ = capture.stop();
            return Err(e.to_string());
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(case.time_limit_s.0);
    phases.setup_ms = lap();
    let run = dut.run(&topology, case);
    phases.run_ms = lap();
    let calls = match &run {
        Ok(running) => running.calls.clone(),
        Err(DutError::TimeLimit { calls, .. }) => calls.clone(),
        Err(_) => Vec::new(),
    };
    let settled = settle(
        &capture,
        &peer,
        Duration::from_millis(case.settle_ms),
        deadline,
    );
    phases.settle_ms = lap();
    // A userspace stack kept answering the peer until now; stop it.
    let run = run.map(|running| {
        if let Some(stop) = running.stop {
            stop();
        }
    });
    let peer_result = peer.stop();
    let frames = capture.stop().map_err(|e| e.to_string())?;
    drop(topology);
    phases.teardown_ms = lap();
    let unsupported = match &run {
        Err(DutError::Unsupported(reason)) => Some(reason.clone()),
        _ => None,
    };
    let outlived_time_limit =
        matches!(run, Err(DutError::TimeLimit { .. })) && !crate::sys::interrupt::requested();
    let dut_error = match run {
        Err(DutError::Unsupported(_)) => None,
        Err(e) => Some(format!("{} DUT: {e}", dut.name())),
        Ok(()) if crate::sys::interrupt::requested() => Some("interrupted".into()),
        Ok(()) if !settled => Some(format!(
            "the run never went quiet: still busy at the time limit of {} s ({} frames captured)",
            case.time_limit_s.0,
            frames.len()
        )),
        Ok(()) if frames.len() > MAX_FRAMES => Some(format!(
            "{RUNAWAY} {} frames captured, more than the {MAX_FRAMES} a case may make (the \
             trace shows the first {MAX_FRAMES}; the pcap has them all)",
            frames.len()
        )),
        Ok(()) => None,
    };
    Ok(RunRecord {
        frames,
        calls,
        dut_error,
        peer_error: peer_result.err().map(|e| e.to_string()),
        unsupported,
        phases,
        outlived_time_limit,
    })
}

/// Waits until nothing was captured for `quiet` and the peer has nothing scheduled; false
/// when the case's deadline (or an interrupt) came first. The DUT has returned from its last
/// call by now; this lets the frames that call triggered (the final ACK, a FIN exchange)
/// reach the capture.
fn settle(capture: &Capture, peer: &Peer, quiet: Duration, deadline: Instant) -> bool {
    let quiet_ns = quiet.as_nanos() as i64;
    let since = realtime_ns();
    loop {
        let busy = peer.busy();
        let last = capture.last_frame_ns().max(peer.last_sent_ns()).max(since);
        let idle_ns = realtime_ns() - last;
        if idle_ns >= quiet_ns && !busy {
            return true;
        }
        if Instant::now() >= deadline || crate::sys::interrupt::requested() {
            return false;
        }
        let wait_ns = (quiet_ns - idle_ns).clamp(1_000_000, 10_000_000);
        std::thread::sleep(Duration::from_nanos(wait_ns as u64));
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
    /// Diverged, and then agreed on every rerun alone ([`confirm_pair`]): counted as
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
    /// The verdicts of the reruns that confirmed a divergence or did not ([`confirm_pair`]),
    /// in order; empty where none ran.
    pub reruns: Vec<PairVerdict>,
}

/// Runs one case on `reference` and `other` at once (separate topologies) and diffs them.
pub fn run_pair(
    loaded: &LoadedCase,
    reference: &dyn Dut,
    other: &dyn Dut,
    artifacts: Option<&Path>,
) -> PairResult {
    let (ref_label, other_label) = if reference.name() == other.name() {
        (
            format!("{}-a", reference.name()),
            format!("{}-b", other.name()),
        )
    } else {
        (reference.name().to_string(), other.name().to_string())
    };
    let (r, o) = std::thread::scope(|scope| {
        let o = scope.spawn(|| run_case_as(loaded, other, artifacts, &other_label));
        let r = run_case_as(loaded, reference, artifacts, &ref_label);
        (r, o.join().expect("a case run does not panic"))
    });
    let mut divergences = match (&r.trace, &o.trace) {
        (Some(rt), Some(ot)) => diff::diff_with_allowance(
            rt,
            ot,
            &loaded.case.known_divergences,
            &loaded.case.ephemeral_ports(),
            timing_allowance_ms(reference, other),
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

/// Runs a case that diverged again, alone, up to `times` times, and records the reruns'
/// verdicts in `result`. The divergence is confirmed as soon as one rerun fails too (a
/// divergence, an error); only when every rerun agreed does it become
/// [`PairVerdict::Unconfirmed`]. A stack bug that shows in one run of three is confirmed
/// in five of the nine runs where it shows; the host's timing noise, which a case meets in a
/// small fraction of runs under load (a kernel timer a fraction of a millisecond past its
/// window), almost never twice more in a row. Each rerun's pcaps go to
/// `<artifacts>/rerun-<k>/<case>/`.
pub fn confirm_pair(
    result: &mut PairResult,
    loaded: &LoadedCase,
    reference: &dyn Dut,
    other: &dyn Dut,
    times: usize,
    artifacts: Option<&Path>,
) {
    for k in 1..=times {
        if crate::sys::interrupt::requested() {
            return;
        }
        let dir = artifacts.map(|a| a.join(format!("rerun-{k}")));
        let rerun = run_pair(loaded, reference, other, dir.as_deref());
        result.reruns.push(rerun.verdict);
        if !matches!(rerun.verdict, PairVerdict::Pass | PairVerdict::Known) {
            return;
        }
    }
    // Every rerun ran and agreed (an interrupt or a failing rerun returned above).
    if times > 0 {
        result.verdict = PairVerdict::Unconfirmed;
    }
}

/// The extra timing tolerance for a pair: the largest of the two DUTs' measured allowances
/// and the run's own, where its measured threads lack real-time priority.
pub fn timing_allowance_ms(reference: &dyn Dut, other: &dyn Dut) -> f64 {
    [reference, other]
        .iter()
        .filter_map(|d| d.timing_allowance())
        .map(|a| a.extra_ms)
        .fold(scheduling_allowance_ms(), f64::max)
}

/// The run's own timing allowance: what measured threads without real-time priority were
/// measured to need ([`crate::sys::lateness::measure_scheduling_allowance`]), else 0.
pub fn scheduling_allowance_ms() -> f64 {
    crate::sys::lateness::scheduling_allowance().map_or(0.0, |a| a.extra_ms)
}

/// Runs `run(case)` over `cases`, `jobs` at a time, calling `on_result(index, result)` in
/// input order as soon as each result and all before it are in.
pub fn run_each<R: Send>(
    cases: &[LoadedCase],
    jobs: usize,
    run: impl Fn(&LoadedCase) -> R + Sync,
    mut on_result: impl FnMut(usize, &R),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    // Longest first: the suite then ends about when its longest case does.
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by(|a, b| {
        cases[*b]
            .case
            .expected_ms()
            .total_cmp(&cases[*a].case.expected_ms())
    });
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    let mut slots: Vec<Option<R>> = (0..cases.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(cases.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            let run = &run;
            let order = &order;
            scope.spawn(move || loop {
                if crate::sys::interrupt::requested() {
                    break;
                }
                let Some(&i) = order.get(next.fetch_add(1, Ordering::AcqRel)) else {
                    break;
                };
                let loaded = &cases[i];
                if tx.send((i, run(loaded))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut printed = 0;
        for (i, result) in rx {
            slots[i] = Some(result);
            while let Some(Some(r)) = slots.get(printed) {
                on_result(printed, r);
                printed += 1;
            }
        }
        // Interrupted: report what finished after the first case that never ran.
        for (i, slot) in slots.iter().enumerate().skip(printed) {
            if let Some(r) = slot {
                on_result(i, r);
            }
        }
    });
    prewarm::drain();
    slots.into_iter().flatten().collect()
}

/// Runs `cases` on one DUT, checking each against its expectations.
pub fn run_all(
    cases: &[LoadedCase],
    dut: &dyn Dut,
    artifacts: Option<&Path>,
    jobs: usize,
    on_result: impl FnMut(usize, &CaseResult),
) -> Vec<CaseResult> {
    run_each(cases, jobs, |c| run_case(c, dut, artifacts), on_result)
}
