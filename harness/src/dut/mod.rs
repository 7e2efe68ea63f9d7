//! Devices under test: one trait, the same steps for every implementation.
//!
//! A DUT runs a case's steps inside the topology's `dut` namespace and logs each call with
//! its return value, errno by name and the times it started and returned (CLOCK_REALTIME,
//! the capture's clock).

pub mod kernel;

use serde::Serialize;

use crate::case::Case;
use crate::netns::NetnsError;
use crate::topology::Topology;

pub use kernel::KernelDut;

/// One socket call as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// `connect`, `setsockopt`, …
    pub call: String,
    /// The arguments as text (`198.18.0.2:80`, `TCP_MAXSEG=536`).
    pub args: String,
    pub ret: i64,
    /// The errno name when the call failed.
    pub errno: Option<String>,
    /// What `expect.calls[].result` and the diff compare: the errno name on failure,
    /// otherwise `0`, `fd` (socket), a byte count, poll's revents (`POLLOUT|POLLWRNORM`), or
    /// getsockopt's value.
    pub outcome: String,
    pub start_ns: i64,
    pub end_ns: i64,
}

impl CallRecord {
    pub fn display_call(&self) -> String {
        format!("{}({})", self.call, self.args)
    }

    pub fn display_result(&self) -> String {
        match &self.errno {
            Some(errno) => format!("-1 {errno}"),
            None if self.outcome == self.ret.to_string() => self.outcome.clone(),
            None => format!("{} ({})", self.ret, self.outcome),
        }
    }
}

/// Why a DUT could not finish a case.
#[derive(Debug, thiserror::Error)]
pub enum DutError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("time limit of {limit_s} s exceeded; {} call(s) had returned", calls.len())]
    TimeLimit {
        limit_s: f64,
        calls: Vec<CallRecord>,
    },
    #[error("the DUT thread panicked")]
    Panicked,
}

/// An implementation under test.
pub trait Dut: Send + Sync {
    /// A short name for reports (`kernel`, `stack`).
    fn name(&self) -> &'static str;
    /// Whether the dut namespace's own kernel holds the address (false for a userspace stack
    /// that owns the veth through AF_PACKET).
    fn kernel_owns_address(&self) -> bool;
    /// Runs the case's steps; returns the call log.
    fn run(&self, topology: &Topology, case: &Case) -> Result<Vec<CallRecord>, DutError>;
}
