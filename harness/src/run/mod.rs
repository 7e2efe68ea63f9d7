//! Runs cases end to end: build the topology, start capture and peer, run the DUT, settle,
//! stop, normalize, check. Several cases run at once (they mostly wait on kernel timers);
//! results come back in input order.

pub mod prewarm;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::case::LoadedCase;
use crate::dut::{Dut, DutError};
use crate::judge::{self, Judging};
use crate::net::topology::TopologySpec;
use crate::observe::capture::{self, realtime_ns, Capture};
use crate::peer::{Peer, PeerAddrs};
use crate::record::{ClockShift, Phases, RecordError, RunFailure, RunRecord};

pub use crate::judge::{CaseResult, PairResult, PairVerdict, Verdict, MAX_FRAMES};

/// Cases a suite runs at once by default: they mostly wait on kernel timers, and eight end
/// the suite about when its longest case ends, on 2 cores, as sixteen do. More only crowd
/// the host, where a late timer or peer reads as a divergence (docs/performance.md has the
/// measurements behind the choice).
pub const DEFAULT_JOBS: usize = 8;

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
    let _case = tracing::info_span!("case", case = %loaded.case.name, dut = label).entered();
    let mut result = match dut.unsupported(&loaded.case) {
        Some(reason) => CaseResult::not_run(loaded, dut.name(), Verdict::Unsupported, reason),
        None => record_and_judge(loaded, dut, artifacts, label).unwrap_or_else(|e| {
            CaseResult::not_run(loaded, dut.name(), Verdict::Error, e.to_string())
        }),
    };
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

/// Records one run of the case (here, or where the DUT runs whole cases), keeps its pcap,
/// and judges it.
fn record_and_judge(
    loaded: &LoadedCase,
    dut: &dyn Dut,
    artifacts: Option<&Path>,
    label: &str,
) -> Result<CaseResult, RecordError> {
    let record = match dut.run_elsewhere(loaded) {
        Some(record) => record?,
        None => run_raw(loaded, dut)?,
    };
    let judging = Instant::now();
    let pcap = match artifacts {
        Some(dir) => {
            let path = dir.join(&loaded.case.name).join(format!("{label}.pcap"));
            capture::write_pcap(&path, &record.frames)
                .map_err(|e| RecordError::Pcap(e.to_string()))?;
            Some(path)
        }
        None => None,
    };
    if let Some(failure) = &record.failure {
        tracing::debug!(%failure, "the run did not end as a case should");
    }
    let mut result = judge::judge_run(
        loaded,
        dut.name(),
        &record,
        &Judging {
            expectations_apply: dut.expectations_apply(),
            allowance_ms: scheduling_allowance_ms(),
        },
    );
    result.pcap = pcap;
    result.phases.teardown_ms += judging.elapsed().as_secs_f64() * 1e3;
    Ok(result)
}

/// Runs one case on `dut` here: topology, capture, peer, the DUT's steps, settle, stop.
pub fn run_raw(loaded: &LoadedCase, dut: &dyn Dut) -> Result<RunRecord, RecordError> {
    let case = &loaded.case;
    let _dut = tracing::info_span!("dut", dut = dut.name()).entered();
    let mut phases = Phases::default();
    let mut clock = Instant::now();
    let mut lap = || {
        let now = Instant::now();
        let ms = (now - clock).as_secs_f64() * 1e3;
        clock = now;
        ms
    };
    let spec = TopologySpec::for_case(case, dut.kernel_owns_address());
    let (start_at_ns, start_ns) = (realtime_ns(), capture::realtime_less_monotonic_ns());
    // The network and its capture were most likely built while an earlier case ran.
    let prewarm::Prepared {
        topology,
        peer_socket,
        capture,
        provenance,
    } = prewarm::take(&spec)?;
    phases.prewarmed = provenance.prewarmed;
    phases.blank_ms = provenance.blank_ms;
    // What was captured so far came from configuring the network, not from the case.
    let configured_ns = realtime_ns();
    let peer = Peer::spawn(peer_socket, case.peer.clone(), PeerAddrs::on(&spec));
    let peer = match peer {
        Ok(peer) => peer,
        Err(e) => {
            let _ = capture.stop();
            return Err(RecordError::Peer(e.to_string()));
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(case.time_limit_s.0);
    phases.setup_ms = lap();
    tracing::trace!(
        setup_ms = phases.setup_ms,
        "network, capture and peer ready"
    );
    let run = dut.run_steps(&topology, case);
    phases.run_ms = lap();
    tracing::trace!(run_ms = phases.run_ms, "the steps returned");
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
    tracing::trace!(settled, settle_ms = phases.settle_ms, "settled");
    // A userspace stack kept answering the peer until now; stop it.
    let run = run.map(|running| {
        if let Some(stop) = running.stop {
            stop();
        }
    });
    let peer_error = peer.stop().err().map(|e| e.to_string());
    let (setup, frames): (Vec<_>, Vec<_>) = capture
        .stop()
        .map_err(|e| RecordError::Capture(e.to_string()))?
        .into_iter()
        .partition(|frame| frame.t_ns < configured_ns);
    phases.setup_frames = setup.len();
    if !setup.is_empty() {
        tracing::debug!(
            frames = setup.len(),
            "left out the frames captured while the network was configured"
        );
    }
    drop(topology);
    phases.teardown_ms = lap();
    let interrupted = crate::sys::interrupt::requested();
    let failure = match run {
        Err(DutError::Unsupported(reason)) => Some(RunFailure::Unsupported(reason)),
        _ if peer_error.is_some() => peer_error.map(RunFailure::Peer),
        Err(e @ DutError::TimeLimit { .. }) if !interrupted => {
            Some(RunFailure::TimeLimit(format!("{} DUT: {e}", dut.name())))
        }
        Err(e) => Some(RunFailure::Dut(format!("{} DUT: {e}", dut.name()))),
        Ok(()) if interrupted => Some(RunFailure::Interrupted),
        Ok(()) if !settled => Some(RunFailure::NeverQuiet {
            limit_s: case.time_limit_s.0,
            frames: frames.len(),
        }),
        Ok(()) if frames.len() > MAX_FRAMES => Some(RunFailure::Runaway {
            frames: frames.len(),
            max: MAX_FRAMES,
        }),
        Ok(()) => None,
    };
    Ok(RunRecord {
        frames,
        calls,
        failure,
        phases,
        clock_shift: Some(ClockShift {
            start_at_ns,
            start_ns,
            end_at_ns: realtime_ns(),
            end_ns: capture::realtime_less_monotonic_ns(),
        }),
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
    judge::judge_pair(loaded, r, o, timing_allowance_ms(reference, other))
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
