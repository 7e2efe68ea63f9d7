//! The run record: what running one case on one implementation left behind, the seam
//! between running and judging.
//!
//! Every way of running a case produces one: system calls in namespaces here, our stack on
//! a packet ring, a kernel in a VM over virtio-serial (which sends it back as JSON), an
//! adapter process over a pipe. Judging ([`crate::judge`]) is a pure function of the case
//! and records; it never needs to know how a record was made.

use serde::{Deserialize, Serialize};

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    /// CLOCK_REALTIME in nanoseconds.
    pub t_ns: i64,
    pub bytes: Vec<u8>,
}

/// One socket call as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A measured widening of every timing tolerance, for a DUT whose timers are looser than
/// the host kernel's (a kernel under emulation). Printed with its basis in every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingAllowance {
    pub extra_ms: f64,
    /// How `extra_ms` was derived, for the report.
    pub basis: String,
}

/// The parts of one run, in ms: the harness's overhead is `setup + teardown`; `run` and
/// `settle` are the case's own time (the DUT's calls, then waiting for quiet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Namespaces, veth, addresses, sysctls, capture and peer started.
    pub setup_ms: f64,
    /// The DUT's steps.
    pub run_ms: f64,
    /// Until nothing was captured for `settle_ms`.
    pub settle_ms: f64,
    /// Stopping, writing the pcap, normalizing, checking, dropping the namespaces.
    pub teardown_ms: f64,
    #[serde(default)]
    /// Whether the network and capture were built ahead, off this run's critical path
    /// ([`crate::run::prewarm`]); when not, building them is part of `setup_ms`.
    pub prewarmed: bool,
    #[serde(default)]
    /// How long building the network and starting its capture took, wherever it happened.
    pub blank_ms: f64,
}

/// What one case's run left: the captured frames, the call log, where the time went, and
/// why the DUT or the peer failed, if one did. A DUT that runs whole cases elsewhere (a
/// kernel in a VM) sends exactly this back; everything after it (pcap, trace, checks)
/// happens here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub frames: Vec<Captured>,
    pub calls: Vec<CallRecord>,
    pub dut_error: Option<String>,
    pub peer_error: Option<String>,
    /// The DUT cannot express a step of the case (no verdict on it).
    #[serde(default)]
    pub unsupported: Option<String>,
    #[serde(default)]
    pub phases: Phases,
    /// `dut_error` is the case's time limit ending a call still blocked.
    #[serde(default)]
    pub outlived_time_limit: bool,
}
