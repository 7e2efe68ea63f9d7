//! The JSON report (`run --json`): one versioned object a CI job or a script can rely on,
//! described by `docs/report.schema.json` and `docs/json-report.md`.
//!
//! The object says what it is (`format`, `format_version`), what made it (`tool_version`,
//! the host `kernel`), how the run was asked for (`run`), what it found (`summary`), and
//! then every result. `format_version` changes when a field is removed or changes meaning;
//! fields may be added within a version.

use std::path::Path;

use serde::Serialize;

use crate::report::{PassedWithNotes, Tally};

/// The value of `format`.
pub const FORMAT: &str = "tcptwin-report";
/// The version of the report's layout.
pub const FORMAT_VERSION: u32 = 1;

/// How the run was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `pair` (two implementations diffed, results are pair results) or `single` (one
    /// implementation against the cases' expectations).
    pub mode: &'static str,
    /// The reference implementation (`--dut`).
    pub reference: String,
    /// The implementation compared with it (`--vs`), absent in a single run.
    pub other: Option<String>,
    /// The kernel version the stack follows (`--profile`).
    pub profile: String,
    /// The stack's deliberate bug (`--mutation`), if any.
    pub mutation: Option<String>,
    /// The case files and directories given.
    pub paths: Vec<String>,
    pub filter: Option<String>,
    /// `I/N` when only one shard ran.
    pub shard: Option<String>,
    /// How many times the suite ran (`--repeat`).
    pub repeat: usize,
    pub jobs: usize,
    /// When the run started, in ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long it took, in ms.
    pub wall_ms: f64,
    /// Whether a stopping signal (Ctrl-C, SIGTERM) cut it short.
    pub interrupted: bool,
    /// Why the measured threads ran without real-time priority (`SCHED_FIFO`), if they did.
    pub realtime_refused: Option<String>,
    /// Every widening of the timing tolerances this run applied (a VM's emulated clock, or
    /// measured threads without real-time priority), with how it was measured.
    pub timing_allowances: Vec<crate::record::TimingAllowance>,
}

/// The counts of a run: every planned case run lands in exactly one of passed, failed,
/// errors, unsupported, interrupted and not_run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Case runs planned (cases × repeat).
    pub planned: usize,
    pub passed: usize,
    /// Of the passed, those that passed with known divergences only.
    pub known: usize,
    /// Of the passed, those that diverged once and agreed on every rerun alone.
    pub unconfirmed: usize,
    pub failed: usize,
    pub errors: usize,
    pub unsupported: usize,
    pub interrupted: usize,
    pub not_run: usize,
    /// What the exit code says: `passed`, `diverged` or `harness_error` (a signal's code
    /// outweighs it; see `run.interrupted`).
    pub outcome: &'static str,
}

impl Summary {
    pub fn new(tally: Tally, notes: PassedWithNotes, planned: usize) -> Summary {
        Summary {
            planned,
            passed: tally.passed,
            known: notes.known,
            unconfirmed: notes.unconfirmed,
            failed: tally.failed,
            errors: tally.errors,
            unsupported: tally.unsupported,
            interrupted: tally.interrupted,
            not_run: tally.not_run,
            outcome: match tally.outcome() {
                crate::report::exit::Outcome::Passed => "passed",
                crate::report::exit::Outcome::Diverged => "diverged",
                crate::report::exit::Outcome::HarnessError
                | crate::report::exit::Outcome::Usage => "harness_error",
            },
        }
    }
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report<'a, R: Serialize> {
    pub format: &'static str,
    pub format_version: u32,
    pub tool_version: &'static str,
    /// The host kernel's release (`uname -r`).
    pub kernel: String,
    pub run: RunInfo,
    pub summary: Summary,
    pub results: &'a [R],
}

impl<'a, R: Serialize> Report<'a, R> {
    pub fn new(run: RunInfo, summary: Summary, results: &'a [R]) -> Report<'a, R> {
        Report {
            format: FORMAT,
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION"),
            kernel: crate::sys::host::kernel_release(),
            run,
            summary,
            results,
        }
    }

    /// Writes the report, pretty-printed, to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}

/// Now, in ms since the Unix epoch.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
