//! JUnit XML for CI services (quick-junit): one test case per case (its rounds of a
//! `--repeat` run together), at most one failure each, carrying the same text the terminal
//! shows. The one module that uses quick-junit.
//!
//! `classname` is the case file's directory relative to the working directory (or, for
//! files outside it, from the directory all the run's case files share), its parts joined
//! with dots: stable across machines and checkouts (`tcptwin` for files in the working
//! directory itself).

use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report;
use crate::run::{CaseResult, PairResult, PairVerdict, Verdict};

/// Why JUnit could not be written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("writing JUnit to {path}: {message}")]
    Write { path: String, message: String },
}

fn non_success(kind: NonSuccessKind, message: String, text: String) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_message(message).set_description(text);
    status
}

fn skipped(reason: String) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(reason);
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

/// The classnames of `paths`: each file's directory, relative, parts joined with dots
/// (a dot inside a part becomes `_`, so it cannot read as a separator).
pub fn classnames(paths: &[&Path]) -> Vec<String> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let dirs: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            let absolute = if p.is_absolute() {
                p.to_path_buf()
            } else {
                cwd.join(p)
            };
            absolute.parent().map(Path::to_path_buf).unwrap_or_default()
        })
        .collect();
    // Files outside the working directory are named from the parent of the directory
    // they all share, so that directory's own name stays in the classname.
    let outside = dirs.iter().any(|d| !d.starts_with(&cwd));
    let base = if outside {
        let mut shared = dirs.first().cloned().unwrap_or_default();
        while !dirs.iter().all(|d| d.starts_with(&shared)) {
            if !shared.pop() {
                break;
            }
        }
        shared.parent().map(Path::to_path_buf).unwrap_or(shared)
    } else {
        cwd
    };
    dirs.iter()
        .map(|d| {
            let parts: Vec<String> = d
                .strip_prefix(&base)
                .unwrap_or(d)
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(part) => {
                        Some(part.to_string_lossy().replace('.', "_"))
                    }
                    _ => None,
                })
                .collect();
            if parts.is_empty() {
                "tcptwin".to_string()
            } else {
                parts.join(".")
            }
        })
        .collect()
}

/// Writes pair results (`<reference>-vs-<other>` suite): one test case per case, its
/// rounds together, failing once when any round diverged.
pub fn write_pairs(path: &Path, results: &[PairResult]) -> Result<(), JunitError> {
    let name = results.first().map_or("tcptwin".into(), |r| {
        format!("{}-vs-{}", r.reference.dut, r.other.dut)
    });
    let mut suite = TestSuite::new(name);
    // Rounds of a --repeat run, grouped by case, in first-seen order.
    let mut cases: Vec<Vec<&PairResult>> = Vec::new();
    for r in results {
        match cases
            .iter_mut()
            .find(|c| c[0].name == r.name && c[0].path == r.path)
        {
            Some(rounds) => rounds.push(r),
            None => cases.push(vec![r]),
        }
    }
    let paths: Vec<&Path> = cases.iter().map(|c| c[0].path.as_path()).collect();
    for (rounds, classname) in cases.iter().zip(classnames(&paths)) {
        let first = rounds[0];
        let of_rounds = |n: usize| {
            if rounds.len() > 1 {
                format!(" (in {n} of {} rounds)", rounds.len())
            } else {
                String::new()
            }
        };
        let text = |v: PairVerdict| -> String {
            rounds
                .iter()
                .filter(|r| r.verdict == v)
                .map(|r| report::pair_text(r, false))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let count = |v: PairVerdict| rounds.iter().filter(|r| r.verdict == v).count();
        let diverged = count(PairVerdict::Diverged);
        let errored = count(PairVerdict::Error);
        let status = if diverged > 0 {
            let worst = rounds
                .iter()
                .find(|r| r.verdict == PairVerdict::Diverged)
                .expect("a diverged round");
            let found = report::findings(worst);
            let message = if found.is_empty() {
                "an expectation failed".to_string()
            } else {
                report::findings_line(&found)
            };
            non_success(
                NonSuccessKind::Failure,
                format!("{message}{}", of_rounds(diverged)),
                text(PairVerdict::Diverged),
            )
        } else if errored > 0 {
            let worst = rounds
                .iter()
                .find(|r| r.verdict == PairVerdict::Error)
                .expect("an errored round");
            let why = [&worst.reference, &worst.other]
                .iter()
                .find_map(|s| s.error.clone())
                .unwrap_or_else(|| "the harness could not run the case".into());
            non_success(
                NonSuccessKind::Error,
                format!("harness error: {why}{}", of_rounds(errored)),
                text(PairVerdict::Error),
            )
        } else if let Some(r) = rounds.iter().find(|r| {
            matches!(
                r.verdict,
                PairVerdict::Unsupported | PairVerdict::Interrupted
            )
        }) {
            let why = [&r.reference, &r.other]
                .iter()
                .find_map(|s| s.error.clone())
                .unwrap_or_else(|| r.verdict.name().to_string());
            let label = match r.verdict {
                PairVerdict::Interrupted => "interrupted",
                _ => "unsupported by the DUT",
            };
            skipped(format!("{label}: {why}"))
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(first.name.clone(), status);
        let seconds: f64 = rounds
            .iter()
            .map(|r| r.reference.wall_ms.max(r.other.wall_ms) / 1e3)
            .sum();
        case.set_classname(classname)
            .set_time(Duration::from_secs_f64(seconds));
        // Known divergences and unconfirmed ones pass, and say what they found.
        let noted: Vec<String> = [PairVerdict::Known, PairVerdict::Unconfirmed]
            .into_iter()
            .map(text)
            .filter(|t| !t.is_empty())
            .collect();
        if !noted.is_empty() {
            case.set_system_out(noted.join("\n"));
        }
        suite.add_test_case(case);
    }
    write(path, suite)
}

/// Writes single-DUT results (`<dut>` suite).
pub fn write_cases(path: &Path, results: &[CaseResult]) -> Result<(), JunitError> {
    let mut suite = TestSuite::new(results.first().map_or("tcptwin", |r| r.dut));
    let paths: Vec<&Path> = results.iter().map(|r| r.path.as_path()).collect();
    for (r, classname) in results.iter().zip(classnames(&paths)) {
        let text = report::case_text(r, false);
        let status = match r.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Fail => {
                let failed = r.failed_checks();
                let message = format!(
                    "{} expectation(s) failed: {}",
                    failed.len(),
                    failed.join(", ")
                );
                non_success(NonSuccessKind::Failure, message, text)
            }
            Verdict::Error => non_success(
                NonSuccessKind::Error,
                format!(
                    "harness error: {}",
                    r.error.as_deref().unwrap_or("the case could not run")
                ),
                text,
            ),
            Verdict::Unsupported => skipped(format!(
                "unsupported by the DUT: {}",
                r.error.as_deref().unwrap_or("a step it cannot express")
            )),
            Verdict::Interrupted => skipped(format!(
                "interrupted: {}",
                r.error.as_deref().unwrap_or("the run was stopped")
            )),
        };
        let mut case = TestCase::new(r.name.clone(), status);
        case.set_classname(classname)
            .set_time(Duration::from_secs_f64(r.wall_ms / 1e3));
        suite.add_test_case(case);
    }
    write(path, suite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classnames_are_relative_directories_joined_with_dots() {
        let cwd = std::env::current_dir().unwrap();
        let inside = cwd.join("cases/regressions/a.yaml");
        let names = classnames(&[Path::new("cases/b.yaml"), &inside]);
        assert_eq!(names, vec!["cases", "cases.regressions"]);
        let outside = [
            Path::new("/nonexistent-tcptwin/v1.2/suite/a.yaml"),
            Path::new("/nonexistent-tcptwin/v1.2/suite/deep/b.yaml"),
        ];
        assert_eq!(classnames(&outside), vec!["suite", "suite.deep"]);
        let dotted = [Path::new("/nonexistent-tcptwin/v1.2/a.yaml")];
        assert_eq!(classnames(&dotted), vec!["v1_2"]);
    }
}
