//! The exit codes a CI job branches on, and how an error is told to the user.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | every case passed (known divergences allowed) |
//! | 1    | a divergence or a failed expectation |
//! | 2    | a usage or case-file error: nothing ran |
//! | 3    | a harness error and no divergence |
//! | 130  | interrupted (SIGINT, Ctrl-C) |
//! | 143  | stopped by SIGTERM |
//!
//! docs/exit-codes.md documents the same table for users.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Diverged,
    /// Bad arguments or a bad case file, found before anything ran.
    Usage,
    /// The harness could not do its job (a namespace, a capture, a report file), and no
    /// divergence was found.
    HarnessError,
}

impl Outcome {
    /// The process's exit code; a stopping signal outweighs every outcome.
    pub fn code(self) -> u8 {
        if let Some(code) = crate::sys::interrupt::exit_code() {
            return code;
        }
        match self {
            Outcome::Passed => 0,
            Outcome::Diverged => 1,
            Outcome::Usage => 2,
            Outcome::HarnessError => 3,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// An error in what the user gave (arguments, case files, output paths): exit code 2.
/// Anything else that ends a command early is a harness error (3).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error with `message`, as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The error's message and its causes, each said once: a cause whose text the message
/// already holds (a `thiserror` message that prints its source) is left out.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(part.trim_end()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(part.trim_end());
    }
    text
}

/// Which outcome an error that ended a command early stands for.
pub fn outcome_of(error: &anyhow::Error) -> Outcome {
    if error.chain().any(|c| c.is::<UsageError>()) {
        Outcome::Usage
    } else {
        Outcome::HarnessError
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        #[derive(Debug, thiserror::Error)]
        #[error("a.yaml: cannot read: {source}")]
        struct Read {
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Read { source: io }).context("checking cases");
        assert_eq!(
            error_text(&e),
            "checking cases: a.yaml: cannot read: no such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }

    #[test]
    fn usage_errors_are_told_apart_from_harness_errors() {
        assert_eq!(
            outcome_of(&usage("bad").context("checking")),
            Outcome::Usage
        );
        assert_eq!(
            outcome_of(&anyhow::anyhow!("no namespace")),
            Outcome::HarnessError
        );
    }
}
