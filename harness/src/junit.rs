//! JUnit XML for CI services (quick-junit): one test case per case, failures carrying the
//! same text the terminal shows. The one module that uses quick-junit.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report;
use crate::runner::{CaseResult, PairResult, PairVerdict, Verdict};

/// Why JUnit could not be written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("writing JUnit to {path}: {message}")]
    Write { path: String, message: String },
}

fn status(failed: bool, errored: bool, text: String, summary: String) -> TestCaseStatus {
    if !failed && !errored {
        return TestCaseStatus::success();
    }
    let kind = if errored {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut status = TestCaseStatus::non_success(kind);
    status.set_message(summary).set_description(text);
    status
}

fn write(path: &Path, suite: TestSuite) -> Result<(), JunitError> {
    let mut report = Report::new("tcptwin");
    report.add_test_suite(suite);
    let fail = |message: String| JunitError::Write {
        path: path.display().to_string(),
        message,
    };
    let xml = report.to_string().map_err(|e| fail(e.to_string()))?;
    std::fs::write(path, xml).map_err(|e| fail(e.to_string()))
}

/// Writes pair results (`<reference>-vs-<other>` suite).
pub fn write_pairs(path: &Path, results: &[PairResult]) -> Result<(), JunitError> {
    let name = results.first().map_or("tcptwin".into(), |r| {
        format!("{}-vs-{}", r.reference.dut, r.other.dut)
    });
    let mut suite = TestSuite::new(name);
    for r in results {
        let unexpected = r.divergences.iter().filter(|d| d.known.is_none()).count();
        let summary = match r.verdict {
            PairVerdict::Error => "harness error".to_string(),
            _ => format!("{unexpected} unexpected divergence(s)"),
        };
        let failed = r.verdict == PairVerdict::Diverged;
        let errored = r.verdict == PairVerdict::Error;
        let mut case = TestCase::new(
            r.name.clone(),
            status(failed, errored, report::pair_text(r, false), summary),
        );
        case.set_classname(r.path.display().to_string())
            .set_time(Duration::from_secs_f64(
                r.reference.wall_ms.max(r.other.wall_ms) / 1e3,
            ));
        if r.verdict == PairVerdict::Known {
            case.set_system_out(report::pair_text(r, false));
        }
        suite.add_test_case(case);
    }
    write(path, suite)
}

/// Writes single-DUT results (`<dut>` suite).
pub fn write_cases(path: &Path, results: &[CaseResult]) -> Result<(), JunitError> {
    let mut suite = TestSuite::new(results.first().map_or("tcptwin", |r| r.dut));
    for r in results {
        let failed = r.verdict == Verdict::Fail;
        let errored = r.verdict == Verdict::Error;
        let summary = r
            .error
            .clone()
            .unwrap_or_else(|| "an expectation failed".into());
        let mut case = TestCase::new(
            r.name.clone(),
            status(failed, errored, report::case_text(r, false), summary),
        );
        case.set_classname(r.path.display().to_string())
            .set_time(Duration::from_secs_f64(r.wall_ms / 1e3));
        suite.add_test_case(case);
    }
    write(path, suite)
}
