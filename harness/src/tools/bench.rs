//! `tcptwin bench`: the figures the suite's speed and the stack's quality are judged by,
//! each measured in one run on this machine, printed as ratios and distributions (shared,
//! noisy machines make absolute times a poor yardstick; ratios within one run are fair).
//!
//! - per-case overhead: the harness's own time per case and DUT (namespaces, veth,
//!   capture, peer, teardown), for a timer-free case run alone;
//! - suite wall time over the intrinsic time of its longest case;
//! - the stack's retransmission-interval error against the kernel on the same cases;
//! - the stack's connect rate against the kernel's, both connecting over a veth to the
//!   same kind of kernel listener in the peer namespace;
//! - peak memory.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::case::suite::SuiteError;
use crate::case::{CaseError, LoadedCase, Suite};
use crate::dut::api::ConnectLoopError;
use crate::dut::exec::AdapterError;
use crate::dut::{kernel, stack, Dut, ExecDut, KernelDut, MemoryDut, StackDut};
use crate::net::netns::NetnsError;
use crate::net::topology::{Topology, TopologyError, TopologySpec};
use crate::observe::decode::flags;
use crate::observe::trace::{Dir, NormFrame, Trace};
use crate::run::{self, PairResult};

/// What to measure, and how much.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub cases_dir: PathBuf,
    /// The timer-free case whose runs give the overhead.
    pub overhead_case: String,
    pub overhead_runs: usize,
    pub connects: usize,
    /// Cases at once in the suite.
    pub jobs: usize,
    /// Scenarios at once in the fuzz run.
    pub fuzz_jobs: usize,
    pub fuzz_scenarios: u64,
    /// The measurements to run; all when empty.
    pub only: Vec<Part>,
    /// A DUT adapter's command (`exec:COMMAND`) whose per-case overhead is measured too.
    pub exec: Option<String>,
}

/// Why `tcptwin bench` stopped before its report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The connect-rate case is not an IPv4 one, which its connect loops need.
    #[error("the connect-rate benchmark's case must be an IPv4 (family inet) case")]
    NotIpv4,
    /// The cases could not be loaded.
    #[error(transparent)]
    Load(#[from] SuiteError),
    /// A case's sysctl does not exist here, or this kernel refuses its value.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Sysctls(Vec<CaseError>),
    /// The namespace that probes the cases' sysctls could not be built.
    #[error("building a probe namespace to check the cases' sysctls: {0}")]
    Probe(#[source] TopologyError),
    /// The overhead case (which the connect rate builds its network from) is not among them.
    #[error("no case named {0}")]
    NoCase(String),
    /// The `--exec` adapter did not start.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// A run of the overhead case ended in error: it measures nothing.
    #[error("{case} on {dut}: the run ended in error: {error}")]
    RunFailed {
        case: String,
        dut: &'static str,
        error: String,
    },
    #[error("building the topology for the connect rate: {0}")]
    Topology(#[source] TopologyError),
    #[error("adding the peer's address for the connect rate: {0}")]
    PeerAddress(#[source] TopologyError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The kernel listener in the peer namespace could not be made.
    #[error("the peer's listener: {step}: {source}")]
    Listener {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("listener panicked")]
    ListenerPanicked,
    #[error(transparent)]
    ConnectLoop(#[from] ConnectLoopError),
    #[error("{dut}: the listener accepted {accepted} of {count} connects")]
    Accepted {
        dut: &'static str,
        accepted: usize,
        count: usize,
    },
}

/// Median, 90th percentile and maximum.
fn spread(values: &mut [f64]) -> String {
    if values.is_empty() {
        return "n/a".into();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.1}  p90 {:.1}  max {:.1}",
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

/// The suite, checked as `tcptwin run` checks it: every file, unique names, and every
/// sysctl taken by this kernel.
fn load(config: &BenchConfig) -> Result<Vec<LoadedCase>, BenchError> {
    let cases = Suite::load(std::slice::from_ref(&config.cases_dir))?.cases;
    let refused = crate::tools::preflight::refused_sysctls(&cases).map_err(BenchError::Probe)?;
    if !refused.is_empty() {
        return Err(BenchError::Sysctls(refused));
    }
    Ok(cases)
}

/// The overhead case, which the connect rate also builds its network from.
fn overhead_case<'a>(
    config: &BenchConfig,
    cases: &'a [LoadedCase],
) -> Result<&'a LoadedCase, BenchError> {
    cases
        .iter()
        .find(|c| c.case.name == config.overhead_case)
        .ok_or_else(|| BenchError::NoCase(config.overhead_case.clone()))
}

fn overhead(
    config: &BenchConfig,
    cases: &[LoadedCase],
    out: &mut String,
) -> Result<(), BenchError> {
    let case = overhead_case(config, cases)?;
    let _ = writeln!(
        out,
        "per-case overhead, ms ({} runs of {} per DUT, one at a time):",
        config.overhead_runs, case.case.name
    );
    let exec = match &config.exec {
        Some(command) => Some(ExecDut::start(command)?),
        None => None,
    };
    let stack = StackDut::default();
    let mut duts: Vec<&dyn Dut> = vec![&KernelDut, &stack];
    if let Some(exec) = &exec {
        duts.push(exec);
    }
    // A case's whole time as a user waits for it, per DUT: its median.
    let mut totals: Vec<(&'static str, f64)> = Vec::new();
    for dut in duts {
        let runs: Vec<_> = (0..config.overhead_runs)
            .map(|_| run::run_case(case, dut, None))
            .collect();
        // A run that could not finish measures nothing (a stack that differs from Linux
        // still does).
        if let Some(failed) = runs.iter().find(|r| r.verdict == run::Verdict::Error) {
            return Err(BenchError::RunFailed {
                case: case.case.name.clone(),
                dut: dut.name(),
                error: failed.error.clone().unwrap_or_default(),
            });
        }
        let mut whole: Vec<f64> = runs
            .iter()
            .map(|r| {
                r.phases.setup_ms + r.phases.run_ms + r.phases.settle_ms + r.phases.teardown_ms
            })
            .collect();
        whole.sort_by(f64::total_cmp);
        totals.push((dut.name(), whole[whole.len() / 2]));
        let pick = |f: fn(&crate::record::Phases) -> f64| {
            runs.iter().map(|r| f(&r.phases)).collect::<Vec<f64>>()
        };
        let _ = writeln!(
            out,
            "  {:6} setup+teardown {}",
            dut.name(),
            spread(&mut pick(|p| p.setup_ms + p.teardown_ms))
        );
        let _ = writeln!(
            out,
            "  {:6}   setup        {}",
            "",
            spread(&mut pick(|p| p.setup_ms))
        );
        let _ = writeln!(
            out,
            "  {:6}   teardown     {}",
            "",
            spread(&mut pick(|p| p.teardown_ms))
        );
        let prewarmed = runs.iter().filter(|r| r.phases.prewarmed).count();
        let _ = writeln!(
            out,
            "  {:6}   (network and capture built ahead for {prewarmed} of {} runs; building \
             one took {})",
            "",
            runs.len(),
            spread(&mut pick(|p| p.blank_ms))
        );
        let _ = writeln!(
            out,
            "  {:6}   (the case's own time: run {}; settle {})",
            "",
            spread(&mut pick(|p| p.run_ms)),
            spread(&mut pick(|p| p.settle_ms))
        );
    }
    let median = |name: &str| totals.iter().find(|(n, _)| *n == name).map(|(_, ms)| *ms);
    if let (Some(exec), Some(stack_ms)) = (&exec, median(stack.name())) {
        let exec_ms = median(exec.name()).unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "  {} per case (setup, run, settle, teardown; medians): {exec_ms:.1} ms against \
             the in-process stack's {stack_ms:.1} ms: {:.2}x",
            exec.name(),
            exec_ms / stack_ms
        );
    }
    Ok(())
}

/// Gaps between consecutive SYNs the DUT sent.
fn syn_gaps(trace: &Trace) -> Vec<f64> {
    let syns: Vec<f64> = trace
        .frames
        .iter()
        .filter(|f| f.dir == Dir::Out && matches!(&f.norm, NormFrame::Tcp { flags: b, .. } if b & flags::SYN != 0 && b & flags::ACK == 0))
        .map(|f| f.t_ms)
        .collect();
    syns.windows(2).map(|w| w[1] - w[0]).collect()
}

/// The in-memory tier's speed: every case, one after another on one thread, against the
/// stack in memory, with the virtual time its runs covered against the wall time they took.
fn memory_tier(cases: &[LoadedCase], out: &mut String) {
    let started = Instant::now();
    let results: Vec<_> = cases
        .iter()
        .map(|c| run::run_case(c, &MemoryDut::default(), None))
        .collect();
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let virtual_ms: f64 = results
        .iter()
        .filter_map(|r| r.trace.as_ref()?.frames.last().map(|f| f.t_ms))
        .sum();
    let passed = results
        .iter()
        .filter(|r| r.verdict == run::Verdict::Pass)
        .count();
    let _ = writeln!(
        out,
        "in-memory tier: {} cases against the stack, one thread: wall {wall_ms:.0} ms for \
         {:.1} s of virtual time ({:.0}x); {passed} passed",
        results.len(),
        virtual_ms / 1e3,
        virtual_ms / wall_ms.max(1e-3),
    );
}

fn suite(config: &BenchConfig, cases: &[LoadedCase], out: &mut String) -> Vec<PairResult> {
    let started = Instant::now();
    let results = run::run_each(
        cases,
        config.jobs,
        |c| run::run_pair(c, &KernelDut, &StackDut::default(), None),
        |_, _| {},
    );
    let wall = started.elapsed().as_secs_f64() * 1e3;
    let (longest, name) = results
        .iter()
        .map(|r| (r.reference.phases.run_ms, r.name.as_str()))
        .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
    let passed = results
        .iter()
        .filter(|r| r.verdict == run::PairVerdict::Pass)
        .count();
    let _ = writeln!(
        out,
        "suite: {} cases kernel vs stack, -j {}: wall {:.0} ms; longest case {name} runs {:.0} ms on the kernel; ratio {:.2} ({passed} passed)",
        results.len(),
        config.jobs,
        wall,
        longest,
        wall / longest.max(1.0)
    );
    let mut errors: Vec<f64> = Vec::new();
    for r in &results {
        if let (Some(k), Some(s)) = (&r.reference.trace, &r.other.trace) {
            errors.extend(
                syn_gaps(k)
                    .iter()
                    .zip(syn_gaps(s))
                    .map(|(a, b)| (a - b).abs()),
            );
        }
    }
    let _ = writeln!(
        out,
        "retransmission-interval error, stack vs kernel, |Δ| ms over {} SYN intervals: {}",
        errors.len(),
        spread(&mut errors)
    );
    results
}

/// Rounds of the connect rate, each the kernel then the stack: the host's load drifts, so
/// a ratio is taken within each round and the median ratio reported.
const CONNECT_ROUNDS: usize = 5;

fn connect_rate(
    config: &BenchConfig,
    cases: &[LoadedCase],
    out: &mut String,
) -> Result<(), BenchError> {
    let base = overhead_case(config, cases)?;
    let mut ratios = Vec::new();
    let mut per_dut: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..CONNECT_ROUNDS {
        let kernel = connects_per_second(config.connects, base, &KernelDut)?;
        let stack = connects_per_second(config.connects, base, &StackDut::default())?;
        ratios.push(stack / kernel);
        per_dut[0].push(kernel);
        per_dut[1].push(stack);
    }
    for (name, rates) in ["kernel", "stack"].iter().zip(per_dut.iter_mut()) {
        let _ = writeln!(
            out,
            "  {name:6} {} connects × {CONNECT_ROUNDS} rounds, connects/s: {}",
            config.connects,
            spread(rates)
        );
    }
    ratios.sort_by(f64::total_cmp);
    let _ = writeln!(
        out,
        "connect rate, stack / kernel, per round: median {:.2}  min {:.2}  max {:.2}",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
    Ok(())
}

/// `count` connects of `dut` to a kernel listener in the peer namespace, per second.
fn connects_per_second(count: usize, base: &LoadedCase, dut: &dyn Dut) -> Result<f64, BenchError> {
    let topology = Topology::build(&TopologySpec::for_case(
        &base.case,
        dut.kernel_owns_address(),
    ))
    .map_err(BenchError::Topology)?;
    topology
        .add_peer_address()
        .map_err(BenchError::PeerAddress)?;
    // The bench's cases are IPv4 ones (`connect-rate` is an AF_INET case).
    let std::net::IpAddr::V4(peer_ip) = topology.spec.peer_ip else {
        return Err(BenchError::NotIpv4);
    };
    let peer = std::net::SocketAddrV4::new(peer_ip, 80);
    // The socket listens before the client starts: it is made on a thread inside the peer
    // namespace and handed back listening, and only then does a thread start accepting, so
    // no connect can reach the namespace before the port is open.
    let listening =
        topology
            .peer
            .run(move || -> Result<std::net::TcpListener, BenchError> {
                let failed = |step| move |source| BenchError::Listener { step, source };
                // A backlog as deep as the run: with std's default (128), a client that got
                // 129 connects ahead of the accepting thread had a SYN dropped and waited out a
                // 1 s retransmission, so the rates measured stalls, not connects.
                let socket =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .map_err(failed("socket"))?;
                socket
                    .set_reuse_address(true)
                    .map_err(failed("SO_REUSEADDR"))?;
                let any: std::net::SocketAddr = ([0, 0, 0, 0], 80).into();
                socket
                    .bind(&any.into())
                    .map_err(failed("bind to port 80"))?;
                socket
                    .listen(i32::try_from(count).unwrap_or(i32::MAX))
                    .map_err(failed("listen"))?;
                socket
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(failed("SO_RCVTIMEO"))?;
                Ok(socket.into())
            })??;
    let listener = topology.peer.spawn("listener", move || {
        let mut accepted = 0;
        while accepted < count {
            match listening.accept() {
                Ok(_) => accepted += 1,
                Err(_) => break,
            }
        }
        accepted
    })?;
    let elapsed = match dut.name() {
        "kernel" => kernel::connect_loop(&topology, peer, count)?,
        _ => stack::connect_loop(&topology, peer, count)?,
    };
    let accepted = listener.join().map_err(|_| BenchError::ListenerPanicked)?;
    if accepted != count {
        return Err(BenchError::Accepted {
            dut: dut.name(),
            accepted,
            count,
        });
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Timer-free fuzz scenarios per second, kernel vs stack, without shrinking.
fn fuzz_rate(config: &BenchConfig, out: &mut String) {
    let fuzz = crate::tools::fuzz::FuzzConfig {
        cases: Some(config.fuzz_scenarios),
        time: None,
        seed: 1,
        max_timer_s: 0.0,
        jobs: config.fuzz_jobs,
        save_dir: None,
        stop_at_first: false,
        shrink: false,
        dut_flags: String::new(),
        families: vec![crate::case::IpFamily::Inet],
    };
    let outcome = crate::tools::fuzz::run(&fuzz, &KernelDut, &StackDut::default(), |_, _| {});
    let rate = outcome.scenarios as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        out,
        "fuzz: {} timer-free scenarios (seed 1, -j {}) in {:.1} s: {rate:.1} scenarios/s ({} diverged, {} harness errors)",
        outcome.scenarios,
        config.fuzz_jobs,
        outcome.elapsed.as_secs_f64(),
                outcome.found.len(),
        outcome.errors.len()
    );
    let mut walls = outcome.walls_ms.clone();
    let _ = writeln!(out, "  scenario wall time, ms: {}", spread(&mut walls));
}

/// Peak resident memory of this process, in MiB.
fn peak_memory_mib() -> f64 {
    // SAFETY: getrusage fills a zeroed rusage for the calling process.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    usage.ru_maxrss as f64 / 1024.0
}

/// One of the measurements, to run alone (`tcptwin bench --only`), e.g. under a profiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Overhead,
    Suite,
    ConnectRate,
    Fuzz,
    /// The in-memory tier: every case against the stack in memory, in virtual time.
    Memory,
}

/// Runs the measurements in `config.only` (all when empty) and returns the report; peak
/// memory comes last, always.
pub fn run(config: &BenchConfig) -> Result<String, BenchError> {
    let cases = load(config)?;
    let wanted = |part: Part| config.only.is_empty() || config.only.contains(&part);
    let mut out = String::new();
    if wanted(Part::Overhead) {
        overhead(config, &cases, &mut out)?;
    }
    if wanted(Part::Suite) {
        suite(config, &cases, &mut out);
    }
    if wanted(Part::ConnectRate) {
        let _ = writeln!(
            out,
            "connect rate over veth to a kernel listener in the peer namespace:"
        );
        connect_rate(config, &cases, &mut out)?;
    }
    if wanted(Part::Fuzz) {
        fuzz_rate(config, &mut out);
    }
    if wanted(Part::Memory) {
        memory_tier(&cases, &mut out);
    }
    let _ = writeln!(out, "peak memory: {:.0} MiB", peak_memory_mib());
    Ok(out)
}
