//! The `tcptwin` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use tcptwin::case::LoadedCase;
use tcptwin::case::Suite;
use tcptwin::dut::{Dut, KernelDut, StackDut};
use tcptwin::record::TimingAllowance;
use tcptwin::report;
use tcptwin::report::exit::{self, Outcome};
use tcptwin::report::progress::Progress;
use tcptwin::run;
use tcptwin::tools::registry::{
    parse_dut, parse_exec, parse_mutation, parse_profile, parse_vs, DutChoice, Duts, VsChoice,
};
use tcptwin_stack::config::{Mutation, Profile};

/// Cases a suite runs at once by default ([`run::DEFAULT_JOBS`]).
const RUN_JOBS: usize = run::DEFAULT_JOBS;
/// Fuzz scenarios run at once by default: they are short and timer-free, so more of them
/// overlap their setup and settle time.
const FUZZ_JOBS: usize = 16;

#[derive(Parser, Debug)]
#[command(
    name = "tcptwin",
    version,
    about = "Differential TCP connect-path conformance: a stack against the Linux kernel, packet by packet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run case files (or directories of them) and check each against its expectations.
    Run(RunArgs),
    /// Generate connect scenarios, run each on the kernel and the stack, and shrink every
    /// divergence to a minimal case saved under cases/regressions/.
    Fuzz(FuzzArgs),
    /// Measure the harness and the stack: per-case overhead, suite wall time over its
    /// longest case, retransmission timing error, connect rate, peak memory.
    Bench {
        #[arg(long, default_value = "cases")]
        cases: PathBuf,
        /// Runs of the overhead case per DUT.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Connections per implementation and round for the connect rate.
        #[arg(long, default_value_t = 2000)]
        connects: usize,
        /// Cases run at once in the suite's wall time, as `run --jobs`.
        #[arg(long, short, default_value_t = RUN_JOBS, value_parser = parse_jobs)]
        jobs: usize,
        /// Scenarios run at once for the fuzz throughput, as `fuzz --jobs`.
        #[arg(long, default_value_t = FUZZ_JOBS, value_parser = parse_jobs)]
        fuzz_jobs: usize,
        /// Timer-free fuzz scenarios for the fuzz throughput.
        #[arg(long, default_value_t = 300)]
        fuzz_scenarios: u64,
        /// Run only these measurements (comma-separated; all by default).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<tcptwin::tools::bench::Part>,
        /// Also measure the per-case overhead of this DUT adapter (`exec:COMMAND`, as
        /// `run --vs` takes it), against the in-process stack's.
        #[arg(long, value_parser = parse_exec)]
        exec: Option<String>,
    },
    /// Load case files and report errors, without running anything.
    Check {
        #[arg(default_value = "cases")]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the case format (cases/case.schema.json is this output).
    Schema {
        /// Print the DUT protocol's schema instead (docs/dut-protocol.schema.json).
        #[arg(long)]
        dut_protocol: bool,
    },
    /// Translate a packetdrill script's connect path into a case (YAML on stdout).
    Import {
        /// The packetdrill script (.pkt).
        file: PathBuf,
        /// Write the case here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The gate's mutation score: plant bugs in the stack's connect path with cargo-mutants
    /// (.cargo/mutants.toml), run the gate (every case, kernel vs stack, and a bounded fuzz
    /// run: harness/tests/mutation_gate.rs) on each, and print the kill rate and the survivors.
    /// Mutants listed in docs/mutants-equivalent.yaml are set apart with their reason.
    Mutants(MutantsArgs),
    /// Inside a VM DUT's guest: serve cases to the host over virtio-serial.
    #[command(hide = true)]
    Agent,
}

#[derive(clap::Args, Debug)]
struct MutantsArgs {
    /// cargo-mutants writes mutants.out/ here.
    #[arg(long, default_value = "target/mutation")]
    output: PathBuf,
    /// Only score what a run already wrote to --output (complete or still going).
    #[arg(long)]
    report_only: bool,
    /// Mutants built and judged at once.
    #[arg(long, short, default_value_t = 2)]
    jobs: usize,
    /// Per-mutant time limit on the gate, seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Only shard I of N (1-based, `--shard 1/14`): every Nth mutant of the connect path, a
    /// sample when the whole set would take too long.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Case files or directories (searched for *.yaml).
    #[arg(default_value = "cases")]
    paths: Vec<PathBuf>,
    /// The reference implementation (the oracle): `kernel` (the host's), `stack`, or
    /// `vm:VERSION` (Linux VERSION under qemu, e.g. `vm:6.1`; see ci/setup-vm).
    #[arg(long, default_value = "kernel", value_parser = parse_dut)]
    dut: DutChoice,
    /// The implementation compared with --dut (`kernel`, `stack`, `vm:VERSION` or `none`), run
    /// at the same time on a topology of its own; every difference is reported. `none`
    /// checks --dut against the cases' expectations only; `--dut kernel --vs kernel` is the
    /// false-alarm check.
    #[arg(long, default_value = "stack", value_parser = parse_vs)]
    vs: VsChoice,
    /// The kernel version whose behaviour the stack follows where versions differ
    /// (`6.1`, `6.18`). The cases' expectations describe 6.18; a stack on another profile is
    /// judged by the diff alone.
    #[arg(long, default_value = "6.18", value_parser = parse_profile)]
    profile: Profile,
    /// Give the stack a deliberate bug, to see that tcptwin catches it: `unclamped-wscale`
    /// (a peer's window scale above 14 is not clamped) or `no-min-snd-mss` (a peer's MSS
    /// below 48 is not floored).
    #[arg(long, value_parser = parse_mutation)]
    mutation: Option<Mutation>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Run only shard I of N (1-based, `--shard 2/4`): case k (in path order) belongs to
    /// shard k mod N + 1, so shards partition the suite the same way on every machine.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Run the whole suite this many times (a pair run reports any case whose verdict changed);
    /// each round's pcaps go to <artifacts>/round-<n>/.
    #[arg(long, default_value_t = 1, value_parser = parse_repeat)]
    repeat: usize,
    /// A case that diverged runs again alone, up to this many times; the divergence counts
    /// once one rerun fails too, and where every rerun agrees it is reported as unconfirmed
    /// and does not fail the run. 0 counts every divergence. Not with --repeat.
    #[arg(long, default_value_t = 2)]
    confirm: usize,
    /// Where each run's .pcap goes (<DIR>/<case>/<dut>.pcap).
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Only cases whose name or a tag contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Run the IPv4 cases as IPv6 (inet6) or through v4-mapped addresses on an AF_INET6
    /// socket (v4-mapped), judged by the diff alone; the cases that cannot be are listed.
    #[arg(long, value_parser = parse_family)]
    as_family: Option<tcptwin::case::IpFamily>,
    /// Cases run at once (they mostly wait on kernel timers). Eight end the suite with its
    /// longest case on 2 cores; more only crowd the measured threads, which matters where
    /// they cannot have real-time priority (rootless runs).
    #[arg(long, short, default_value_t = RUN_JOBS, value_parser = parse_jobs)]
    jobs: usize,
    /// Write an HTML report (index.html with ladder diagrams) into this directory.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Write every result (trace, calls, checks) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a conformance report of --vs against --dut to this Markdown file: the
    /// verdicts, the divergences grouped into classes, an example trace of each.
    #[arg(long)]
    conformance: Option<PathBuf>,
    /// Print the trace of passing cases too.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(clap::Args, Debug)]
struct FuzzArgs {
    /// Stop after this many scenarios (default 100 when --time is not given either).
    #[arg(long)]
    cases: Option<u64>,
    /// Stop after this long: 90s, 10m, 1h.
    #[arg(long, value_parser = parse_duration)]
    time: Option<std::time::Duration>,
    /// The seed: the same seed draws the same scenarios.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The families scenarios are drawn in (repeat the flag): inet, inet6, v4-mapped.
    /// All three by default.
    #[arg(long = "family", value_parser = parse_any_family)]
    families: Vec<tcptwin::case::IpFamily>,
    /// How long kernel timers may run in a scenario: SYNs are dropped, and a blocking
    /// connect and send wait up to an SO_SNDTIMEO of at most this. 0 keeps scenarios
    /// timer-free, so each takes milliseconds.
    #[arg(long, default_value_t = tcptwin::tools::fuzz::DEFAULT_MAX_TIMER_S)]
    max_timer: f64,
    /// Scenarios run at once.
    #[arg(long, short, default_value_t = FUZZ_JOBS, value_parser = parse_jobs)]
    jobs: usize,
    /// Where diverging cases are written (shrunk, or as drawn when not shrunk).
    #[arg(long, default_value = "cases/regressions")]
    save: PathBuf,
    /// Keep going after the first divergence.
    #[arg(long)]
    all: bool,
    /// Do not shrink (a survey: every diverging scenario is listed as drawn, and the run
    /// does not stop at the first).
    #[arg(long)]
    no_shrink: bool,
    /// Give the stack a deliberate bug (see `run --mutation`): the fuzzer should find it.
    #[arg(long, value_parser = parse_mutation)]
    mutation: Option<Mutation>,
    /// The implementation fuzzed against the host kernel: `stack`, `smoltcp`, `vm:VERSION`,
    /// or `kernel` (the fuzzer's own false-alarm check).
    #[arg(long, default_value = "stack", value_parser = parse_dut)]
    vs: DutChoice,
}

/// The flags of a fuzz run that choose the implementations, as `run` takes them too.
fn fuzz_dut_flags(args: &FuzzArgs) -> String {
    let mut flags = String::new();
    match &args.vs {
        DutChoice::Stack => {}
        DutChoice::Exec(command) => flags.push_str(&format!(" --vs 'exec:{command}'")),
        other => flags.push_str(&format!(" --vs {}", other.label())),
    }
    if let Some(m) = args.mutation {
        flags.push_str(&format!(" --mutation {}", m.name()));
    }
    flags
}

/// `fuzz --family`: any of the three.
fn parse_any_family(text: &str) -> Result<tcptwin::case::IpFamily, String> {
    match text {
        "inet" => Ok(tcptwin::case::IpFamily::Inet),
        other => parse_family(other)
            .map_err(|_| format!("'{other}' is not a family: inet, inet6 or v4-mapped")),
    }
}

fn parse_family(text: &str) -> Result<tcptwin::case::IpFamily, String> {
    match text {
        "inet6" => Ok(tcptwin::case::IpFamily::Inet6),
        "v4-mapped" => Ok(tcptwin::case::IpFamily::V4Mapped),
        other => Err(format!(
            "'{other}' is not a family to run as: inet6 or v4-mapped"
        )),
    }
}

/// `--jobs`: at least one case (or scenario) must run at a time.
fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 would run nothing; give 1 or more".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

/// `--repeat`: the suite runs at least once.
fn parse_repeat(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 would run nothing; give 1 or more".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let n: f64 = number
        .parse()
        .map_err(|_| format!("'{text}': use e.g. 90s, 10m, 1h"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (s, m, h)")),
    };
    Ok(std::time::Duration::from_secs_f64(seconds))
}

fn fuzz(args: FuzzArgs) -> anyhow::Result<Outcome> {
    let config = tcptwin::tools::fuzz::FuzzConfig {
        cases: args.cases,
        time: args.time,
        seed: args.seed,
        max_timer_s: args.max_timer,
        jobs: args.jobs,
        save_dir: Some(args.save.clone()),
        stop_at_first: !args.all,
        shrink: !args.no_shrink,
        dut_flags: fuzz_dut_flags(&args),
        families: if args.families.is_empty() {
            tcptwin::case::IpFamily::ALL.to_vec()
        } else {
            args.families.clone()
        },
    };
    println!(
        "fuzz: seed {}, {}, {} at once, kernel timers up to {} s: the scenarios end within \
         {:.0} s (each is cut at {} s); confirming and shrinking a divergence come on top",
        config.seed,
        match (config.cases, config.time) {
            (Some(n), _) => format!("{n} scenarios"),
            (None, Some(t)) => format!("scenarios for {:.0} s", t.as_secs_f64()),
            (None, None) => "100 scenarios".to_string(),
        },
        config.jobs,
        config.max_timer_s,
        tcptwin::tools::fuzz::scenario_wall_bound(&config).as_secs_f64(),
        tcptwin::tools::fuzz::time_limit_s(config.max_timer_s),
    );
    let bar = Progress::scenarios(config.cases.unwrap_or(0));
    let stack = StackDut {
        mutation: args.mutation,
        ..StackDut::default()
    };
    let duts = Duts::new(&[&args.vs], stack)?;
    let other = duts.get(&args.vs);
    let outcome = tcptwin::tools::fuzz::run(&config, &KernelDut, other.as_ref(), |done, found| {
        bar.set(done, format!("{} divergence(s)", found.len()));
    });
    bar.finish();
    for found in &outcome.found {
        println!("{}", report::pair_text(&found.result, true));
        let what = found.headline();
        println!(
            "{what}{}:\n{}",
            found
                .saved
                .as_ref()
                .map(|p| format!(", saved to {}", p.display()))
                .unwrap_or_default(),
            tcptwin::case::to_yaml(&found.minimal).unwrap_or_default()
        );
    }
    for error in &outcome.errors {
        print!("{}", report::pair_text(error, false));
    }
    let rate = outcome.scenarios as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
    let unconfirmed = outcome.found.iter().filter(|f| !f.reproduced).count();
    println!(
        "fuzz: seed {}, {} scenarios in {:.1} s ({rate:.1}/s), {} divergence(s){}, {} harness error(s)",
        config.seed,
        outcome.scenarios,
        outcome.elapsed.as_secs_f64(),
        outcome.found.len(),
        if unconfirmed > 0 {
            format!(" ({unconfirmed} of them passed when run again)")
        } else {
            String::new()
        },
        outcome.errors.len()
    );
    Ok(if !outcome.found.is_empty() {
        Outcome::Diverged
    } else if !outcome.errors.is_empty() {
        Outcome::HarnessError
    } else {
        Outcome::Passed
    })
}

/// Says which implementations the cases' expectations do not judge, so no check is
/// skipped silently.
fn note_expectations(duts: &[&dyn Dut]) {
    for d in duts {
        if !d.expectations_apply() {
            println!(
                "note: the cases' expect blocks describe Linux 6.18; {} is judged by the diff alone",
                d.name()
            );
        }
    }
}

/// Measures the run's own timing allowance where the measured threads lack real-time
/// priority, and prints every widening of the timing tolerances that applies to a run of
/// `duts` (a VM's, the run's own), each with its basis, before the first result.
fn timing_allowances(duts: &[&dyn Dut]) -> Vec<TimingAllowance> {
    let own = tcptwin::sys::lateness::measure_scheduling_allowance().cloned();
    let all: Vec<TimingAllowance> = duts
        .iter()
        .filter_map(|d| d.timing_allowance())
        .chain(own)
        .collect();
    for a in &all {
        println!(
            "timing tolerances below include +{:.0} ms: {}",
            a.extra_ms, a.basis
        );
    }
    all
}

/// Says when the measured threads ran without real-time priority, so a timing divergence
/// is read with the host's scheduling noise in mind.
fn note_priority() {
    if let Some(why) = tcptwin::sys::priority::realtime_refused() {
        println!(
            "note: the DUTs, peer and capture ran without real-time priority (SCHED_FIFO: {why}); \
             their timing carries this host's scheduling delays (run as root to avoid them)"
        );
    }
}

/// Loads every case under `paths` and checks what can be checked before a run: each file
/// parses, names are unique, and every sysctl exists and takes its value in a namespace
/// built like the DUT's. `check` and `run` share it, so they agree on every input.
fn load_all(paths: &[PathBuf], filter: Option<&str>) -> anyhow::Result<Vec<LoadedCase>> {
    let mut suite = Suite::load(paths).map_err(|e| exit::usage(e.to_string()))?;
    // A sysctl this host lacks, or a value its kernel refuses, is a load error too, found
    // before any case runs.
    let refused = tcptwin::tools::preflight::refused_sysctls(&suite.cases)
        .context("building a probe namespace to check the cases' sysctls")?;
    refuse(refused.iter().map(|e| e.to_string()).collect())?;
    if let Some(f) = filter {
        suite.filter(f).map_err(|e| exit::usage(e.to_string()))?;
    }
    Ok(suite.cases)
}

/// A usage error listing every refused case file, one a line; Ok when there is none.
fn refuse(errors: Vec<String>) -> anyhow::Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(exit::usage(format!(
        "{} case file error(s):\n{}",
        errors.len(),
        errors.join("\n")
    )))
}

/// Checks, before anything runs, that every report and artifact can be written: a run of
/// minutes must not end in "cannot create" with nothing to show.
fn check_outputs(args: &RunArgs) -> anyhow::Result<()> {
    if args.conformance.is_some() && args.vs == VsChoice::None {
        return Err(exit::usage(
            "--conformance compares --vs with --dut; it needs a --vs other than none",
        ));
    }
    for (flag, file) in [
        ("--json", &args.json),
        ("--junit", &args.junit),
        ("--conformance", &args.conformance),
    ] {
        if let Some(path) = file {
            writable_file(flag, path)?;
        }
    }
    writable_dir("--artifacts", &args.artifacts)?;
    if let Some(dir) = &args.html {
        writable_dir("--html", dir)?;
    }
    Ok(())
}

/// `path` can be created or overwritten as a file.
fn writable_file(flag: &str, path: &std::path::Path) -> anyhow::Result<()> {
    let shown = path.display();
    if path.is_dir() {
        return Err(exit::usage(format!(
            "{flag} {shown}: is a directory; give a file name"
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(exit::usage(format!(
            "{flag} {shown}: the directory {} does not exist",
            parent.display()
        )));
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| exit::usage(format!("{flag} {shown}: cannot be written: {e}")))?;
        return Ok(());
    }
    probe_write(flag, &shown.to_string(), parent)
}

/// `dir` exists as a writable directory, or can be made.
fn writable_dir(flag: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let shown = dir.display().to_string();
    if dir.exists() && !dir.is_dir() {
        return Err(exit::usage(format!(
            "{flag} {shown}: is a file; give a directory"
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| exit::usage(format!("{flag} {shown}: cannot be made: {e}")))?;
    probe_write(flag, &shown, dir)
}

/// Creates and removes a file in `dir`: the one test of writing that holds for root, a
/// read-only mount and a user namespace alike.
fn probe_write(flag: &str, shown: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let probe = dir.join(format!(".tcptwin-write-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| exit::usage(format!("{flag} {shown}: cannot be written: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// What the JSON report says about how the run was asked for.
fn run_info(
    args: &RunArgs,
    mode: &'static str,
    started: std::time::Instant,
    timing_allowances: Vec<TimingAllowance>,
) -> tcptwin::report::json::RunInfo {
    let name = DutChoice::label;
    tcptwin::report::json::RunInfo {
        mode,
        reference: name(&args.dut),
        other: match &args.vs {
            VsChoice::None => None,
            VsChoice::Dut(d) => Some(name(d)),
        },
        profile: args.profile.as_str().to_string(),
        mutation: args.mutation.map(|m| m.name().to_string()),
        paths: args.paths.iter().map(|p| p.display().to_string()).collect(),
        filter: args.filter.clone(),
        shard: args.shard.map(|(i, n)| format!("{i}/{n}")),
        repeat: args.repeat,
        jobs: args.jobs,
        started_unix_ms: tcptwin::report::json::unix_ms_now()
            .saturating_sub(started.elapsed().as_millis() as u64),
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
        interrupted: tcptwin::sys::interrupt::requested(),
        realtime_refused: tcptwin::sys::priority::realtime_refused().map(str::to_string),
        timing_allowances,
    }
}

/// Writes a report file after the run; a failure then is the harness's (the paths were
/// checked before the run).
fn write_report(
    what: &str,
    path: &std::path::Path,
    result: std::io::Result<()>,
) -> anyhow::Result<()> {
    result.with_context(|| format!("writing the {what} report to {}", path.display()))
}

fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let started = std::time::Instant::now();
    let mut cases = load_all(&args.paths, args.filter.as_deref())?;
    if let Some(family) = args.as_family {
        let mut suite = tcptwin::case::Suite { cases };
        let left_out = suite.as_family(family);
        eprintln!(
            "running {} case(s) as {family}: their expect blocks were measured in their own \
             family and are not judged, the diff is; {} left out:",
            suite.cases.len(),
            left_out.len()
        );
        for why in &left_out {
            eprintln!("  {why}");
        }
        cases = suite.cases;
        if cases.is_empty() {
            return Err(exit::usage(format!("no case can run as {family}")));
        }
    }
    if let Some((i, n)) = args.shard {
        cases = cases
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, c)| c)
            .collect();
    }
    if cases.is_empty() {
        return Err(exit::usage(format!(
            "--shard {}/{} holds no case: the suite has fewer cases than shards",
            args.shard.map_or(1, |s| s.0),
            args.shard.map_or(1, |s| s.1)
        )));
    }
    check_outputs(&args)?;
    let mut named = vec![&args.dut];
    if let VsChoice::Dut(vs) = &args.vs {
        named.push(vs);
    }
    // VMs boot here, on the main thread: qemu's death signal follows the thread that
    // started it.
    let stack = StackDut {
        profile: args.profile,
        mutation: args.mutation,
    };
    let duts = Duts::new(&named, stack)?;
    let dut = duts.get(&args.dut);
    if let VsChoice::Dut(vs) = &args.vs {
        let other = duts.get(vs);
        note_expectations(&[dut.as_ref(), other.as_ref()]);
        let allowances = timing_allowances(&[dut.as_ref(), other.as_ref()]);
        return run_pairs(
            &args,
            &cases,
            dut.as_ref(),
            other.as_ref(),
            started,
            allowances,
        );
    }
    note_expectations(&[dut.as_ref()]);
    // Only the run's own allowance applies to a single run's expectations: a DUT's
    // (a VM's) is for the diff, and a VM is judged by the diff alone.
    let allowances = timing_allowances(&[]);
    let bar = Progress::cases(cases.len());
    let results = run::run_all(
        &cases,
        dut.as_ref(),
        Some(&args.artifacts),
        args.jobs,
        |_, result| bar.emit(report::case_text(result, args.verbose)),
    );
    bar.finish();
    let tally = report::tally(&results, cases.len());
    if let Some(path) = &args.json {
        let summary = tcptwin::report::json::Summary::new(tally, Default::default(), cases.len());
        let info = run_info(&args, "single", started, allowances);
        let report = tcptwin::report::json::Report::new(info, summary, &results);
        write_report("JSON", path, report.write(path))?;
    }
    if let Some(path) = &args.junit {
        tcptwin::report::junit::write_cases(path, &results)?;
    }
    if let Some(dir) = &args.html {
        let index = tcptwin::report::html::write_cases(dir, &results)?;
        println!("HTML report: {}", index.display());
    }
    if tcptwin::sys::interrupt::requested() {
        println!("interrupted: the cases above finished; the rest did not run");
    }
    note_priority();
    println!("{}", report::summary(tally));
    Ok(tally.outcome())
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (i, n) = text.split_once('/').ok_or("use I/N, e.g. 2/4")?;
    let (i, n): (usize, usize) = (
        i.parse().map_err(|_| format!("'{i}' is not a number"))?,
        n.parse().map_err(|_| format!("'{n}' is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("shard {i}/{n}: need 1 <= I <= N"));
    }
    Ok((i, n))
}

/// Runs every case of a single round that diverged again, alone, up to `--confirm` times
/// ([`run::confirm_pair`]), and prints each outcome.
fn confirm_divergences(
    args: &RunArgs,
    cases: &[LoadedCase],
    results: &mut [run::PairResult],
    reference: &dyn Dut,
    other: &dyn Dut,
) {
    let diverged: Vec<usize> = (0..results.len())
        .filter(|i| results[*i].verdict == run::PairVerdict::Diverged)
        .collect();
    if args.confirm == 0 || diverged.is_empty() || tcptwin::sys::interrupt::requested() {
        return;
    }
    println!(
        "== confirming {} divergence(s): each case runs again alone, up to {} time(s)",
        diverged.len(),
        args.confirm
    );
    for i in diverged {
        let (result, loaded) = (&mut results[i], &cases[i]);
        let artifacts = Some(args.artifacts.as_path());
        run::confirm_pair(result, loaded, reference, other, args.confirm, artifacts);
        println!("{}", report::confirmation_line(result));
    }
}

fn run_pairs(
    args: &RunArgs,
    cases: &[LoadedCase],
    reference: &dyn Dut,
    other: &dyn Dut,
    started: std::time::Instant,
    allowances: Vec<TimingAllowance>,
) -> anyhow::Result<Outcome> {
    let mut all = Vec::new();
    let mut verdicts: Vec<Vec<run::PairVerdict>> = vec![Vec::new(); cases.len()];
    for round in 0..args.repeat {
        if tcptwin::sys::interrupt::requested() {
            break;
        }
        if args.repeat > 1 {
            println!("== round {} of {}", round + 1, args.repeat);
        }
        // Each round keeps its own pcaps, so a verdict that changed can be looked into.
        let artifacts = if args.repeat > 1 {
            args.artifacts.join(format!("round-{}", round + 1))
        } else {
            args.artifacts.clone()
        };
        let bar = Progress::cases(cases.len());
        let results = run::run_each(
            cases,
            args.jobs,
            |c| run::run_pair(c, reference, other, Some(&artifacts)),
            |i, r| {
                verdicts[i].push(r.verdict);
                bar.emit(report::pair_text(r, args.verbose));
            },
        );
        bar.finish();
        all.extend(results);
    }
    // Repeated rounds measure stability: there a verdict that changes fails the run, and
    // nothing is rerun.
    if args.repeat == 1 {
        confirm_divergences(args, cases, &mut all, reference, other);
    }
    let planned = cases.len() * args.repeat;
    let (tally, notes) = report::pair_tally(&all, planned);
    if let Some(path) = &args.json {
        let summary = tcptwin::report::json::Summary::new(tally, notes, planned);
        let info = run_info(args, "pair", started, allowances);
        let report = tcptwin::report::json::Report::new(info, summary, &all);
        write_report("JSON", path, report.write(path))?;
    }
    if let Some(path) = &args.junit {
        tcptwin::report::junit::write_pairs(path, &all)?;
    }
    if let Some(dir) = &args.html {
        let index = tcptwin::report::html::write_pairs(dir, &all)?;
        println!("HTML report: {}", index.display());
    }
    if let Some(path) = &args.conformance {
        let command: Vec<String> = std::env::args()
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
            .collect();
        let about = [reference.about(), other.about()];
        let page = tcptwin::report::conformance::markdown(&command.join(" "), &about, &all);
        std::fs::write(path, page)
            .with_context(|| format!("writing the conformance report {}", path.display()))?;
        println!("conformance report: {}", path.display());
    }
    let flaky: Vec<String> =
        tcptwin::judge::changed_verdicts(cases.iter().map(|c| c.case.name.as_str()), &verdicts)
            .into_iter()
            .map(|(name, seen)| {
                let seen: Vec<&str> = seen.iter().map(|v| v.name()).collect();
                format!("  {name}: {}", seen.join(", "))
            })
            .collect();
    if !flaky.is_empty() {
        println!("verdict changed between repeats:\n{}", flaky.join("\n"));
    }
    let repeated = tcptwin::judge::diff::repeated_isns(all.iter().map(|r| {
        (
            r.name.as_str(),
            r.other.trace.as_ref().and_then(|t| t.raw.dut_isn),
        )
    }));
    for (isn, names) in &repeated {
        println!(
            "property isn_varies: {} used ISN {isn:#010x} in {}",
            other.name(),
            names.join(", ")
        );
    }
    if notes.known > 0 {
        println!(
            "{} case run(s) passed with known divergences (listed above)",
            notes.known
        );
    }
    if notes.unconfirmed > 0 {
        println!(
            "{} case run(s) diverged once and agreed on every rerun alone: unconfirmed, \
             not counted as failed (listed above; --confirm 0 counts them)",
            notes.unconfirmed
        );
    }
    if tcptwin::sys::interrupt::requested() {
        println!("interrupted: the cases above finished; the rest did not run");
    }
    if tally.unsupported > 0 {
        println!(
            "{} case run(s) not compared: a step the DUT cannot express (listed above)",
            tally.unsupported
        );
    }
    note_priority();
    println!("{}", report::summary(tally));
    // A verdict that changed between rounds, or an ISN used twice, is a divergence too.
    if !flaky.is_empty() || !repeated.is_empty() {
        return Ok(Outcome::Diverged);
    }
    Ok(tally.outcome())
}

/// Parses the command line; a usage error is one line on stderr and exit code 2 (clap's
/// own rendering adds a usage block and advice that a CI log does not need).
fn parse_cli() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            let _ = e.print();
            Err(ExitCode::from(if e.use_stderr() { 2 } else { 0 }))
        }
        Err(e) => {
            // The first paragraph says what is wrong (and, for a value, the possible ones);
            // the rest is clap's usage block and tips.
            let rendered = e.render().to_string();
            let said: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = said.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("tcptwin: {message} (tcptwin help lists the options)");
            Err(ExitCode::from(Outcome::Usage.code()))
        }
    }
}

/// `tcptwin mutants`: runs cargo-mutants (unless --report-only), then scores its outcomes.
/// Exits 0 when no mutant survives, 1 when some do, 2 on an error.
fn mutants(args: MutantsArgs) -> ExitCode {
    use tcptwin::tools::mutants;
    let workspace = PathBuf::from(".");
    let outcome = (|| {
        if !args.report_only {
            mutants::run_cargo_mutants(&mutants::MutantsConfig {
                workspace: workspace.clone(),
                output: args.output.clone(),
                jobs: args.jobs,
                timeout_s: args.timeout,
                shard: args.shard,
            })?;
        }
        let outcomes = mutants::read_outcomes(&args.output)?;
        let equivalents = mutants::load_equivalents(&workspace.join(mutants::EQUIVALENTS))?;
        Ok::<_, mutants::MutantsError>(mutants::score(&outcomes, &equivalents))
    })();
    match outcome {
        Ok(score) => {
            print!("{score}");
            if score.survivors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("tcptwin: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Commands that only read and write files need no namespace.
    match cli.command {
        Command::Schema { dut_protocol } => {
            if dut_protocol {
                print!("{}", tcptwin::tools::schema::dut_protocol_schema_text());
            } else {
                print!("{}", tcptwin::tools::schema::case_schema_text());
            }
            return ExitCode::SUCCESS;
        }
        Command::Import { file, output } => return import(&file, output.as_deref()),
        // cargo and the gate's tests run from the starting namespace, as under ci/test.
        Command::Mutants(args) => return mutants(args),
        _ => {}
    }
    // Before any thread exists: leave the starting namespace for a private one, so nothing
    // tcptwin does can reach it.
    if let Err(e) = tcptwin::net::netns::isolate_process() {
        eprintln!("tcptwin: {e}");
        return Outcome::HarnessError.exit_code();
    }
    // Measured threads get a core first: SCHED_FIFO, or else the rest of tcptwin at nice 19.
    tcptwin::sys::priority::setup();
    tcptwin::sys::interrupt::install();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Command::Agent => tcptwin::vm::agent::serve().map(|()| Outcome::Passed),
        Command::Run(args) => run(args),
        Command::Fuzz(args) => fuzz(args),
        Command::Bench {
            cases,
            runs,
            connects,
            jobs,
            fuzz_jobs,
            fuzz_scenarios,
            only,
            exec,
        } => {
            let config = tcptwin::tools::bench::BenchConfig {
                cases_dir: cases,
                overhead_case: "handshake-default".into(),
                overhead_runs: runs,
                connects,
                jobs,
                fuzz_jobs,
                fuzz_scenarios,
                only,
                exec,
            };
            tcptwin::tools::bench::run(&config)
                .map(|report| {
                    print!("{report}");
                    Outcome::Passed
                })
                .map_err(anyhow::Error::from)
        }
        Command::Check { paths } => load_all(&paths, None).map(|cases| {
            println!("{} case file(s) are well-formed", cases.len());
            Outcome::Passed
        }),
        Command::Schema { .. } | Command::Import { .. } | Command::Mutants(_) => {
            unreachable!("handled before isolation")
        }
    };
    match outcome {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("tcptwin: {}", exit::error_text(&e));
            exit::outcome_of(&e).exit_code()
        }
    }
}

fn import(file: &std::path::Path, output: Option<&std::path::Path>) -> ExitCode {
    let outcome = std::fs::read_to_string(file)
        .map_err(|e| exit::usage(format!("reading {}: {e}", file.display())))
        .and_then(|text| {
            tcptwin::tools::import::translate(file, &text).map_err(|e| exit::usage(e.to_string()))
        })
        .and_then(|yaml| match output {
            Some(path) => std::fs::write(path, &yaml)
                .map_err(|e| exit::usage(format!("writing {}: {e}", path.display()))),
            None => {
                print!("{yaml}");
                Ok(())
            }
        });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcptwin: {}", exit::error_text(&e));
            ExitCode::from(Outcome::Usage.code())
        }
    }
}
