//! A suite: every case file under some paths, loaded and checked together. The one loader
//! behind `run`, `check`, `bench`, the fuzzer's seeds and the tests, so they all refuse the
//! same inputs: a file that does not parse, and two cases of one name.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{discover, CaseError, LoadedCase};

/// The cases of a suite, in file order.
#[derive(Debug, Clone)]
pub struct Suite {
    pub cases: Vec<LoadedCase>,
}

/// Why a suite could not be loaded; each refused file is named with its line and field.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Discover(CaseError),
    #[error("no case files (*.yaml, *.yml) in {0}")]
    Empty(String),
    #[error("{} case file error(s):\n{}", .0.len(), .0.join("\n"))]
    Refused(Vec<String>),
    #[error("--filter '{0}' matched no case's name or tag")]
    NoMatch(String),
}

impl Suite {
    /// Loads every case file under `paths` (files, or directories searched for `*.yaml`):
    /// each must parse and check, and no two may share a name. Every refused file is
    /// reported, not just the first.
    pub fn load(paths: &[PathBuf]) -> Result<Suite, SuiteError> {
        let files = discover(paths).map_err(SuiteError::Discover)?;
        if files.is_empty() {
            let given: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(SuiteError::Empty(given.join(", ")));
        }
        let mut cases = Vec::new();
        let mut errors = Vec::new();
        for path in files {
            match LoadedCase::load(&path) {
                Ok(case) => cases.push(case),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(SuiteError::Refused(errors));
        }
        let mut names = HashMap::new();
        for l in &cases {
            if let Some(first) = names.insert(l.case.name.clone(), l.path.clone()) {
                errors.push(format!(
                    "{}: field `name`: case name '{}' is also used by {}",
                    l.path.display(),
                    l.case.name,
                    first.display()
                ));
            }
        }
        if !errors.is_empty() {
            return Err(SuiteError::Refused(errors));
        }
        Ok(Suite { cases })
    }

    /// Keeps the cases whose name or a tag contains `pattern`; none kept is an error.
    pub fn filter(&mut self, pattern: &str) -> Result<(), SuiteError> {
        self.cases.retain(|l| {
            l.case.name.contains(pattern) || l.case.tags.iter().any(|t| t.contains(pattern))
        });
        if self.cases.is_empty() {
            return Err(SuiteError::NoMatch(pattern.to_string()));
        }
        Ok(())
    }

    /// Replaces the suite's IPv4 cases with themselves run as `family`
    /// ([`super::translate::as_family`]); returns why each other case was left out.
    pub fn as_family(&mut self, family: super::IpFamily) -> Vec<super::translate::Untranslatable> {
        let mut left_out = Vec::new();
        self.cases = std::mem::take(&mut self.cases)
            .into_iter()
            .filter_map(|l| match super::translate::as_family(&l.case, family) {
                Ok(case) => Some(LoadedCase { case, path: l.path }),
                Err(why) => {
                    left_out.push(why);
                    None
                }
            })
            .collect();
        left_out
    }

    /// The case named `name`, if the suite has it.
    pub fn get(&self, name: &str) -> Option<&LoadedCase> {
        self.cases.iter().find(|l| l.case.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tcptwin-suite-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    const CASE: &str = "name: a\nsteps:\n  - close\n";

    #[test]
    fn two_cases_of_one_name_are_refused_naming_both_files() {
        let dir = dir_with(&[("a.yaml", CASE), ("b.yaml", CASE)]);
        let err = Suite::load(std::slice::from_ref(&dir))
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("b.yaml: field `name`: case name 'a'"), "{err}");
        assert!(err.contains("a.yaml"), "{err}");
    }

    #[test]
    fn every_bad_file_is_named_and_a_filter_that_matches_nothing_is_an_error() {
        let dir = dir_with(&[
            ("a.yaml", CASE),
            ("b.yaml", "name: b\nsteps:\n  - clos\n"),
            ("c.yaml", "name: c\nmss: 1\n"),
        ]);
        let err = Suite::load(std::slice::from_ref(&dir))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("2 case file error(s)"), "{err}");
        assert!(
            err.contains("b.yaml:3:") && err.contains("c.yaml:"),
            "{err}"
        );
        std::fs::write(dir.join("b.yaml"), "name: b\nsteps:\n  - close\n").unwrap();
        std::fs::remove_file(dir.join("c.yaml")).unwrap();
        let mut suite = Suite::load(std::slice::from_ref(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(suite.cases.len(), 2);
        assert!(matches!(suite.filter("zzz"), Err(SuiteError::NoMatch(_))));
    }
}
