//! The run record: what running one case on one implementation left behind, the seam
//! between running and judging.
//!
//! Every way of running a case produces one: system calls in namespaces here, our stack on
//! a packet ring, a kernel in a VM over virtio-serial (which sends it back as JSON), an
//! adapter process over a pipe. Judging ([`crate::judge`]) is a pure function of the case
//! and records; it never needs to know how a record was made.

use serde::{Deserialize, Serialize};

/// The most frames one run keeps for its trace. A connect case makes a few dozen; a
/// runaway peer or DUT (a flood of 10^5 RSTs) would otherwise make decoding, diffing and
/// the report take minutes. A run that captured more is an error.
pub const MAX_FRAMES: usize = 1000;

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
    #[serde(default)]
    /// Frames captured before the case's network was configured (the capture starts with
    /// the blank network): the DUT kernel's own start-up traffic, such as the MLD reports
    /// of a new IPv6 address, which belongs to no case and is left out of the record.
    pub setup_frames: usize,
}

/// What one case's run left: the captured frames, the call log, where the time went, and
/// why the run did not end as a case should, if it did not. A DUT that runs whole cases
/// elsewhere (a kernel in a VM) sends exactly this back; everything after it (pcap, trace,
/// checks) happens here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub frames: Vec<Captured>,
    pub calls: Vec<CallRecord>,
    pub failure: Option<RunFailure>,
    #[serde(default)]
    pub phases: Phases,
    /// How the capture's clock (CLOCK_REALTIME) stood against the DUT's timer and TSval
    /// clock (CLOCK_MONOTONIC) over the run, when the DUT's clock is this host's; `None` for
    /// a DUT with a clock of its own (a VM).
    #[serde(default)]
    pub clock_shift: Option<ClockShift>,
}

/// CLOCK_REALTIME less CLOCK_MONOTONIC, sampled as a run began and as it ended. A host
/// whose realtime clock is being slewed (NTP, a hypervisor's time sync) runs it faster or
/// slower than the monotonic clock its kernel's timers and TCP timestamps follow, by up to
/// 0.5% as measured on these machines: 5 ms a second, enough to push a timestamp or an
/// interval off by more than a jiffy. The judge takes the run's times back to the
/// monotonic rate with it ([`ClockShift::monotonic_rate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockShift {
    /// CLOCK_REALTIME (ns) of the first sample, and the shift then.
    pub start_at_ns: i64,
    pub start_ns: i64,
    /// CLOCK_REALTIME (ns) of the second sample, and the shift then.
    pub end_at_ns: i64,
    pub end_ns: i64,
}

impl ClockShift {
    /// One shift for the whole run (a clock that is not slewed, or a virtual one).
    pub fn constant(shift_ns: i64) -> ClockShift {
        ClockShift {
            start_at_ns: 0,
            start_ns: shift_ns,
            end_at_ns: 0,
            end_ns: shift_ns,
        }
    }

    /// The shift at realtime `t_ns`, interpolated between the two samples.
    pub fn at(&self, t_ns: i64) -> i64 {
        let span = self.end_at_ns - self.start_at_ns;
        if span <= 0 {
            return self.start_ns;
        }
        let drift = (self.end_ns - self.start_ns) as i128;
        let into = (t_ns - self.start_at_ns) as i128;
        self.start_ns + (drift * into / span as i128) as i64
    }

    /// Realtime `t_ns` moved to run at the monotonic clock's rate from the first sample on:
    /// intervals between such times are the DUT's own intervals.
    pub fn monotonic_rate(&self, t_ns: i64) -> i64 {
        t_ns - (self.at(t_ns) - self.start_ns)
    }
}

/// Why no record could be made of a run: the harness failed before the case could run, or
/// the implementation that runs whole cases elsewhere could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Building the network (namespaces, veth, addresses, routes, sysctls) failed.
    #[error("building the topology: {0}")]
    Topology(String),
    /// The scripted peer's socket or thread could not start.
    #[error("the scripted peer could not start: {0}")]
    Peer(String),
    /// The capture could not start or stop.
    #[error("capture: {0}")]
    Capture(String),
    /// The pcap of the run could not be written.
    #[error("writing the pcap: {0}")]
    Pcap(String),
    /// A DUT that runs whole cases elsewhere (a VM, memory) could not make the record.
    #[error("{0}")]
    Elsewhere(String),
}

/// Why a run did not end as a case should: the judge's verdict on it depends on which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum RunFailure {
    /// The DUT cannot express a step of the case: no verdict on it.
    #[error("{0}")]
    Unsupported(String),
    /// The scripted peer failed (and so the DUT was left waiting).
    #[error("the scripted peer failed: {0}")]
    Peer(String),
    /// The DUT failed (its setup, its thread, its adapter); the text names the DUT.
    #[error("{0}")]
    Dut(String),
    /// A call of the DUT's was still blocked when the case's time limit ended it: against
    /// a reference whose calls all returned, the implementation's behaviour.
    #[error("{0}")]
    TimeLimit(String),
    /// A stopping signal (Ctrl-C, SIGTERM) cut the run short.
    #[error("interrupted")]
    Interrupted,
    /// Frames kept coming until the case's time limit.
    #[error(
        "the run never went quiet: still busy at the time limit of {limit_s} s ({frames} \
         frames captured)"
    )]
    NeverQuiet { limit_s: f64, frames: usize },
    /// More frames than a case may make (a flooding peer or DUT): a behaviour of the
    /// implementation, not a fault of the harness.
    #[error(
        "runaway: {frames} frames captured, more than the {max} a case may make (the trace \
         shows the first {max}; the pcap has them all)"
    )]
    Runaway { frames: usize, max: usize },
}
