//! How an adapter (an `exec:` DUT, [`super::exec`]) fails: at its start, or during a case.
//! Apart from the adapter itself so that [`super::api::DutError`] can carry it.

/// Why an adapter could not be started, or a case's run on it could not go on: the run is
/// an `error`, not a verdict on the stack. What the adapter wrote to stderr ends the text.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("exec:{command}: starting it: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// It gave no hello at start.
    #[error("exec:{command}: {source}{stderr}")]
    Hello {
        command: String,
        #[source]
        source: ExchangeError,
        stderr: StderrTail,
    },
    #[error("exec:{command}: it speaks protocol {protocol}, tcptwin speaks {ours}")]
    Version {
        command: String,
        protocol: u32,
        ours: u32,
    },
    #[error("exec:{command}: its name {name:?} is not [a-z0-9-]+")]
    Name { command: String, name: String },
    /// During a case: its setup failed, or it stopped speaking the protocol.
    #[error("{source}{stderr}")]
    Run {
        #[source]
        source: ExchangeError,
        stderr: StderrTail,
    },
}

/// Why a request got no usable answer: the adapter did not reply, replied with something
/// the protocol does not allow, or refused `setup`. Its own texts (an errno name, its
/// `error`) are quoted as it sent them.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("its stdin is closed")]
    StdinClosed,
    #[error("writing request {op}: {source}{exit}")]
    Write {
        op: String,
        #[source]
        source: std::io::Error,
        exit: ExitNote,
    },
    #[error("reading its reply to {op}: {source}")]
    Read {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no reply to {op} in time")]
    NoReply { op: String },
    #[error("it closed its stdout instead of replying to {op}{exit}")]
    StdoutClosed { op: String, exit: ExitNote },
    #[error("its reply to hello is not a hello ({source}): {line}")]
    NotHello {
        #[source]
        source: serde_json::Error,
        line: String,
    },
    /// Reply number `n`; `line` is cut to 200 characters.
    #[error("reply {n} (to {op}) is not a reply ({source}): {line}")]
    NotReply {
        n: usize,
        op: String,
        #[source]
        source: serde_json::Error,
        line: String,
    },
    #[error("reply {n} names no Linux errno: {errno:?}")]
    UnknownErrno { n: usize, errno: String },
    #[error("its reply to {op} has neither ret nor errno")]
    NoRet { op: String },
    #[error("its reply to getsockopt has no int value")]
    NoIntValue,
    #[error("setup failed with {errno}")]
    SetupErrno { errno: String },
    /// `setup`'s reply carried an `error`: the adapter's text.
    #[error("setup failed: {0}")]
    SetupFailed(String),
    #[error("setup did not answer in time")]
    SetupTimeout,
}

/// How an adapter that closed its end had exited (or that it had not), for an error.
#[derive(Debug, Clone, Copy)]
pub struct ExitNote(pub Option<std::process::ExitStatus>);

impl std::fmt::Display for ExitNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(status) => write!(f, " (it exited: {status})"),
            None => f.write_str(" (it is still running)"),
        }
    }
}

/// The end of what an adapter wrote to stderr (at most [`STDERR_TAIL`] bytes), quoted at
/// the end of an error; nothing when it wrote nothing.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(pub String);

impl std::fmt::Display for StderrTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        write!(f, "; its stderr ends:\n{}", self.0)
    }
}
