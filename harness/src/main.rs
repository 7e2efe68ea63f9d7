//! The `tcptwin` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use tcptwin::case;
use tcptwin::dut::KernelDut;
use tcptwin::report;
use tcptwin::runner::{self, LoadedCase};

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
    /// Load case files and report errors, without running anything.
    Check {
        #[arg(default_value = "cases")]
        paths: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Case files or directories (searched for *.yaml).
    #[arg(default_value = "cases")]
    paths: Vec<PathBuf>,
    /// The implementation under test.
    #[arg(long, value_enum, default_value_t = DutChoice::Kernel)]
    dut: DutChoice,
    /// Where each run's .pcap goes (<DIR>/<case>/<dut>.pcap).
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Only cases whose name or a tag contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Cases run at once (they mostly wait on kernel timers).
    #[arg(long, short, default_value_t = 16)]
    jobs: usize,
    /// Write every result (trace, calls, checks) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the trace of passing cases too.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DutChoice {
    Kernel,
}

fn load_all(paths: &[PathBuf], filter: Option<&str>) -> anyhow::Result<Vec<LoadedCase>> {
    let files = case::discover(paths)?;
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match case::load(&path) {
            Ok(case) => loaded.push(LoadedCase { path, case }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "{} case file(s) refused:\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    let mut names = std::collections::HashMap::new();
    for l in &loaded {
        if let Some(first) = names.insert(l.case.name.clone(), l.path.clone()) {
            anyhow::bail!(
                "case name {:?} is used by both {} and {}",
                l.case.name,
                first.display(),
                l.path.display()
            );
        }
    }
    if let Some(f) = filter {
        loaded.retain(|l| l.case.name.contains(f) || l.case.tags.iter().any(|t| t.contains(f)));
    }
    Ok(loaded)
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cases = load_all(&args.paths, args.filter.as_deref())?;
    if cases.is_empty() {
        anyhow::bail!(
            "no case matched (paths: {:?}, filter: {:?})",
            args.paths,
            args.filter
        );
    }
    let dut = match args.dut {
        DutChoice::Kernel => KernelDut,
    };
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new(cases.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} cases  {elapsed_precise}  {msg}")
                .expect("a valid template"),
        );
        bar
    });
    let results = runner::run_all(
        &cases,
        &dut,
        Some(&args.artifacts),
        args.jobs,
        |_, result| {
            let text = report::case_text(result, args.verbose);
            match &bar {
                Some(bar) => {
                    bar.suspend(|| print!("{text}"));
                    bar.inc(1);
                }
                None => print!("{text}"),
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &args.json {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(file), &results)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let tally = report::tally(&results);
    println!("{}", report::summary(tally));
    Ok(if tally.failed + tally.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread exists: leave the starting namespace for a private one, so nothing
    // tcptwin does can reach it.
    if let Err(e) = tcptwin::netns::isolate_process() {
        eprintln!("tcptwin: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Command::Run(args) => run(args),
        Command::Check { paths } => load_all(&paths, None)
            .map(|cases| {
                println!("{} case file(s) are well-formed", cases.len());
                ExitCode::SUCCESS
            })
            .context("checking cases"),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tcptwin: {e:#}");
            ExitCode::from(2)
        }
    }
}
