//! `tcptwin mutants`: the gate's mutation score. Plants small bugs in the stack's connect
//! path, runs the gate on each, and counts what it catches.
//!
//! cargo-mutants generates and runs the mutants (its configuration, `.cargo/mutants.toml`,
//! names the connect path and makes `harness/tests/mutation_gate.rs` the only test: every case,
//! kernel vs stack, then a bounded fuzz run). This module drives it and reads its
//! `mutants.out/outcomes.json`, then sets apart the mutants a reviewed list calls
//! equivalent (`docs/mutants-equivalent.yaml`, each with the reason no test can tell it
//! from the stack as it is) and prints the kill rate and the survivors.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// Where the reviewed list of equivalent mutants lives, from the workspace root.
pub const EQUIVALENTS: &str = "docs/mutants-equivalent.yaml";
/// cargo-mutants' configuration, from the workspace root.
pub const CONFIG: &str = ".cargo/mutants.toml";

#[derive(Debug, thiserror::Error)]
pub enum MutantsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}, field {field}: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
    #[error("{0} not found: run tcptwin mutants from the workspace root")]
    NoConfig(PathBuf),
    #[error("could not start cargo mutants ({0}); install it with `cargo install cargo-mutants --locked`")]
    Spawn(std::io::Error),
    #[error("cargo mutants failed (exit status {0}); see its log above")]
    Failed(i32),
}

/// How cargo-mutants judged one mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// The gate failed: the mutant was seen.
    Caught,
    /// The gate passed with the bug in.
    Missed,
    /// The gate ran past the time limit; counted as caught (a stack that hangs is seen),
    /// and listed apart.
    Timeout,
    /// The mutant does not build; not counted.
    Unviable,
}

/// One mutant and its outcome, named as cargo-mutants names it
/// (`stack/src/tcp/mss.rs:14:9: replace Tcb::advertise_mss -> u32 with 0`).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub judged: Judged,
}

/// A mutant the review found equivalent: no observable behaviour differs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Equivalent {
    pub mutant: String,
    pub reason: String,
}

/// The score of one run.
#[derive(Debug, Default)]
pub struct Score {
    pub caught: usize,
    pub timeouts: Vec<String>,
    pub unviable: usize,
    /// Missed and not on the equivalent list.
    pub survivors: Vec<String>,
    /// Missed and on the list, with the reason.
    pub equivalent: Vec<Equivalent>,
    /// On the list but caught: the review was wrong, or the code moved under it.
    pub listed_but_caught: Vec<String>,
}

impl Score {
    pub fn total(&self) -> usize {
        self.caught
            + self.timeouts.len()
            + self.unviable
            + self.survivors.len()
            + self.equivalent.len()
    }

    /// Caught (timeouts included) over the viable, non-equivalent mutants.
    pub fn kill_rate(&self) -> Option<f64> {
        let killed = self.caught + self.timeouts.len();
        let counted = killed + self.survivors.len();
        (counted > 0).then(|| killed as f64 / counted as f64)
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "mutants: {} ({} caught, {} timed out, {} missed, {} equivalent, {} unviable)",
            self.total(),
            self.caught,
            self.timeouts.len(),
            self.survivors.len(),
            self.equivalent.len(),
            self.unviable
        )?;
        match self.kill_rate() {
            Some(rate) => writeln!(
                f,
                "kill rate: {:.1}% ({} of {} viable, non-equivalent mutants)",
                rate * 100.0,
                self.caught + self.timeouts.len(),
                self.caught + self.timeouts.len() + self.survivors.len()
            )?,
            None => writeln!(f, "kill rate: none yet (no viable mutant judged)")?,
        }
        if !self.survivors.is_empty() {
            writeln!(f, "survivors:")?;
            for s in &self.survivors {
                writeln!(f, "  {s}")?;
            }
        }
        if !self.timeouts.is_empty() {
            writeln!(f, "timed out (counted as caught):")?;
            for s in &self.timeouts {
                writeln!(f, "  {s}")?;
            }
        }
        if !self.equivalent.is_empty() {
            writeln!(f, "equivalent (not counted):")?;
            for e in &self.equivalent {
                writeln!(f, "  {}\n    because {}", e.mutant, e.reason)?;
            }
        }
        if !self.listed_but_caught.is_empty() {
            writeln!(f, "listed as equivalent in {EQUIVALENTS} but caught:")?;
            for s in &self.listed_but_caught {
                writeln!(f, "  {s}")?;
            }
        }
        Ok(())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct MutantsConfig {
    /// The workspace root (holds `.cargo/mutants.toml`).
    pub workspace: PathBuf,
    /// cargo-mutants writes `mutants.out/` here.
    pub output: PathBuf,
    pub jobs: usize,
    /// Per-mutant limit on the gate, seconds.
    pub timeout_s: u64,
    /// Only shard I of N (1-based, round-robin over the mutant list): a sample.
    pub shard: Option<(usize, usize)>,
}

/// Runs cargo-mutants over the connect path. It exits non-zero when mutants survive or
/// time out (2, 3); only other statuses are errors.
pub fn run_cargo_mutants(config: &MutantsConfig) -> Result<(), MutantsError> {
    let toml = config.workspace.join(CONFIG);
    if !toml.exists() {
        return Err(MutantsError::NoConfig(toml));
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&config.workspace)
        .args(["mutants", "--baseline", "skip", "--jobs"])
        .arg(config.jobs.to_string())
        .arg("--timeout")
        .arg(config.timeout_s.to_string())
        .arg("--output")
        .arg(&config.output);
    if let Some((i, n)) = config.shard {
        cmd.args(["--sharding", "round-robin", "--shard"])
            .arg(format!("{}/{n}", i - 1));
    }
    let status = cmd.status().map_err(MutantsError::Spawn)?;
    match status.code() {
        Some(0 | 2 | 3) => Ok(()),
        code => Err(MutantsError::Failed(code.unwrap_or(-1))),
    }
}

/// The outcomes cargo-mutants wrote under `output` (`mutants.out/outcomes.json`), one per
/// mutant judged so far; the baseline is skipped.
pub fn read_outcomes(output: &Path) -> Result<Vec<Outcome>, MutantsError> {
    let path = output.join("mutants.out/outcomes.json");
    let text = std::fs::read_to_string(&path).map_err(|source| MutantsError::Read {
        path: path.clone(),
        source,
    })?;
    parse_outcomes(&path, &text)
}

#[derive(Deserialize)]
struct OutcomesFile {
    outcomes: Vec<RawOutcome>,
}

#[derive(Deserialize)]
struct RawOutcome {
    scenario: serde_json::Value,
    summary: String,
}

/// Parses outcomes.json text; `path` names it in errors.
pub fn parse_outcomes(path: &Path, text: &str) -> Result<Vec<Outcome>, MutantsError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let file: OutcomesFile =
        serde_path_to_error::deserialize(&mut de).map_err(|e| MutantsError::Parse {
            path: path.to_path_buf(),
            line: e.inner().line() as u64,
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    let mut outcomes = Vec::new();
    for (i, raw) in file.outcomes.into_iter().enumerate() {
        let Some(mutant) = raw.scenario.get("Mutant") else {
            continue; // the baseline
        };
        let bad = |field: &str, message: String| MutantsError::Parse {
            path: path.to_path_buf(),
            line: 0,
            field: format!("outcomes[{i}].{field}"),
            message,
        };
        let name = mutant
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| bad("scenario.Mutant.name", "missing".into()))?
            .to_string();
        let judged = match raw.summary.as_str() {
            "CaughtMutant" => Judged::Caught,
            "MissedMutant" => Judged::Missed,
            "Timeout" => Judged::Timeout,
            "Unviable" => Judged::Unviable,
            other => return Err(bad("summary", format!("unknown outcome {other:?}"))),
        };
        outcomes.push(Outcome { name, judged });
    }
    Ok(outcomes)
}

/// Reads the reviewed list of equivalent mutants.
pub fn load_equivalents(path: &Path) -> Result<Vec<Equivalent>, MutantsError> {
    let text = std::fs::read_to_string(path).map_err(|source| MutantsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_equivalents(path, &text)
}

/// Parses the equivalent list's YAML; `path` names it in errors.
pub fn parse_equivalents(path: &Path, text: &str) -> Result<Vec<Equivalent>, MutantsError> {
    let mut field = String::from("(document)");
    let parsed: Result<Option<Vec<Equivalent>>, _> =
        serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                field = e.path().to_string();
                e.into_inner()
            })
        });
    let list = parsed.map_err(|e| MutantsError::Parse {
        path: path.to_path_buf(),
        line: e.location().map(|l| l.line()).unwrap_or(0),
        field: field.clone(),
        message: e.to_string(),
    })?;
    let list = list.unwrap_or_default();
    for (i, e) in list.iter().enumerate() {
        if e.reason.trim().is_empty() {
            return Err(MutantsError::Parse {
                path: path.to_path_buf(),
                line: 0,
                field: format!("[{i}].reason"),
                message: format!("{}: an equivalent mutant needs its reason", e.mutant),
            });
        }
        // Two entries for one mutant: one reason would be shown and the other never read.
        if let Some(first) = list[..i]
            .iter()
            .position(|earlier| earlier.mutant == e.mutant)
        {
            return Err(MutantsError::Parse {
                path: path.to_path_buf(),
                line: 0,
                field: format!("[{i}].mutant"),
                message: format!("{} is listed already, as [{first}]", e.mutant),
            });
        }
    }
    Ok(list)
}

/// Scores `outcomes`, setting apart the missed mutants `equivalents` explains.
pub fn score(outcomes: &[Outcome], equivalents: &[Equivalent]) -> Score {
    let listed = |name: &str| equivalents.iter().find(|e| e.mutant == name);
    let mut score = Score::default();
    for o in outcomes {
        match (o.judged, listed(&o.name)) {
            (Judged::Missed, Some(e)) => score.equivalent.push(e.clone()),
            (Judged::Missed, None) => score.survivors.push(o.name.clone()),
            (Judged::Caught, listed) => {
                score.caught += 1;
                if listed.is_some() {
                    score.listed_but_caught.push(o.name.clone());
                }
            }
            (Judged::Timeout, _) => score.timeouts.push(o.name.clone()),
            (Judged::Unviable, _) => score.unviable += 1,
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, summary: &str) -> String {
        format!(
            r#"{{"scenario": {{"Mutant": {{"name": "{name}", "file": "x"}}}}, "summary": "{summary}"}}"#
        )
    }

    fn outcomes_json(entries: &[String]) -> String {
        format!(
            r#"{{"outcomes": [{{"scenario": "Baseline", "summary": "Success"}}, {}], "total_mutants": 9}}"#,
            entries.join(", ")
        )
    }

    #[test]
    fn every_kind_of_outcome_is_counted_and_the_baseline_is_not() {
        let text = outcomes_json(&[
            outcome("a.rs:1:1: replace f with ()", "CaughtMutant"),
            outcome("a.rs:2:1: replace g with ()", "MissedMutant"),
            outcome("a.rs:3:1: replace h with ()", "MissedMutant"),
            outcome("a.rs:4:1: replace i with ()", "Timeout"),
            outcome("a.rs:5:1: replace j with ()", "Unviable"),
            outcome("a.rs:6:1: replace k with ()", "CaughtMutant"),
        ]);
        let outcomes = parse_outcomes(Path::new("o.json"), &text).unwrap();
        assert_eq!(outcomes.len(), 6);
        let equivalents = vec![
            Equivalent {
                mutant: "a.rs:3:1: replace h with ()".into(),
                reason: "h only logs".into(),
            },
            Equivalent {
                mutant: "a.rs:6:1: replace k with ()".into(),
                reason: "wrongly listed".into(),
            },
        ];
        let s = score(&outcomes, &equivalents);
        assert_eq!(s.caught, 2);
        assert_eq!(s.timeouts, vec!["a.rs:4:1: replace i with ()"]);
        assert_eq!(s.unviable, 1);
        assert_eq!(s.survivors, vec!["a.rs:2:1: replace g with ()"]);
        assert_eq!(s.equivalent.len(), 1);
        assert_eq!(s.listed_but_caught, vec!["a.rs:6:1: replace k with ()"]);
        assert_eq!(s.total(), 6);
        // 2 caught + 1 timeout of 4 counted (the unviable and the equivalent are not).
        assert_eq!(s.kill_rate(), Some(0.75));
        let text = s.to_string();
        assert!(text.contains("kill rate: 75.0% (3 of 4"), "{text}");
        assert!(
            text.contains("survivors:\n  a.rs:2:1: replace g with ()"),
            "{text}"
        );
        assert!(text.contains("because h only logs"), "{text}");
    }

    #[test]
    fn no_viable_mutant_has_no_rate() {
        let s = score(
            &[Outcome {
                name: "x".into(),
                judged: Judged::Unviable,
            }],
            &[],
        );
        assert_eq!(s.kill_rate(), None);
    }

    #[test]
    fn an_unknown_outcome_is_an_error_naming_the_field() {
        let text = outcomes_json(&[outcome("a.rs:1:1: m", "Exploded")]);
        let err = parse_outcomes(Path::new("o.json"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("o.json") && err.contains("outcomes[1].summary"),
            "{err}"
        );
    }

    #[test]
    fn bad_json_is_an_error_naming_file_and_line() {
        let err = parse_outcomes(Path::new("o.json"), "{\n\"outcomes\": 3}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("o.json: line 2, field outcomes"), "{err}");
    }

    #[test]
    fn the_committed_equivalent_list_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(EQUIVALENTS);
        let list = load_equivalents(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!list.is_empty());
    }

    #[test]
    fn an_equivalent_is_listed_once() {
        let twice =
            "- mutant: \"a.rs:1:1: m\"\n  reason: r\n- mutant: \"a.rs:1:1: m\"\n  reason: s\n";
        let err = parse_equivalents(Path::new("eq.yaml"), twice)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[1].mutant") && err.contains("as [0]"),
            "{err}"
        );
    }

    #[test]
    fn an_equivalent_needs_a_reason() {
        let err = parse_equivalents(
            Path::new("eq.yaml"),
            "- mutant: \"a.rs:1:1: m\"\n  reason: \"\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("eq.yaml") && err.contains("[0].reason"),
            "{err}"
        );
        let err = parse_equivalents(Path::new("eq.yaml"), "- mutant: x\n  why: y\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("eq.yaml: line"), "{err}");
        assert!(parse_equivalents(Path::new("eq.yaml"), "")
            .unwrap()
            .is_empty());
    }
}
