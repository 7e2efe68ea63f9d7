//! What every DUT is: the trait the runner drives, its errors, and how a userspace DUT's
//! run ends.

use crate::case::{Case, LoadedCase};
use crate::net::netns::NetnsError;
use crate::net::topology::Topology;
use crate::record::{CallRecord, RecordError, RunRecord, TimingAllowance};

/// Why a DUT could not finish a case.
#[derive(Debug, thiserror::Error)]
pub enum DutError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{}; {} call(s) had returned", if crate::sys::interrupt::requested() { "interrupted".to_string() } else { format!("time limit of {limit_s} s exceeded") }, calls.len())]
    TimeLimit {
        limit_s: f64,
        calls: Vec<CallRecord>,
    },
    #[error("the DUT thread panicked")]
    Panicked,
    #[error("setting the DUT up: {0}")]
    Setup(String),
    /// A userspace DUT's thread could not bring its stack up in the dut namespace.
    #[error("setting the DUT up: {0}")]
    Thread(#[source] SetupError),
    /// An adapter process (`exec:`) that crashed, hung at start, or broke the protocol;
    /// the text names how, with the end of its stderr.
    #[error(transparent)]
    Adapter(crate::dut::adapter_error::AdapterError),
    /// The case asks for something this implementation has no way to express (a socket
    /// option it lacks, a malformed `sockaddr` its typed API cannot take). Not a pass, not
    /// a failure: the runner reports it as its own verdict.
    #[error("unsupported by this DUT: {0}")]
    Unsupported(String),
}

/// Why a userspace DUT's own thread (tcptwin-stack's, smoltcp's) could not bring its stack
/// up in the dut namespace, or keep it running: what [`ended_early`] reports.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("AF_PACKET on {ifname}: {source}")]
    PacketSocket {
        ifname: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading sysctls: {0}")]
    Sysctls(#[source] tcptwin_stack::driver::ReadConfigError),
    #[error("tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The stack's driver (its packet socket) failed: being made, or turning once the steps
    /// are done.
    #[error("driver: {0}")]
    Driver(#[source] std::io::Error),
    /// The DUT's interface has no `ifindex` in its namespace.
    #[error("if_nametoindex({ifname}): {source}")]
    Ifindex {
        ifname: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("smoltcp RawSocket on {ifname}: {source}")]
    RawSocket {
        ifname: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Why a connect-rate loop of the benchmark ([`crate::dut::kernel::connect_loop`],
/// [`crate::dut::stack::connect_loop`]) stopped before its last connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectLoopError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The stack could not come up in the dut namespace.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The kernel's `socket`, `setsockopt` or `connect` for connect number `index` failed.
    #[error("kernel connect #{index}: {source}")]
    Kernel {
        index: usize,
        #[source]
        source: std::io::Error,
    },
    /// The stack's connect number `index` failed with `errno`.
    #[error("stack connect #{index}: {}", errno.name())]
    Stack {
        index: usize,
        errno: tcptwin_stack::Errno,
    },
    /// The stack's driver (its packet socket) failed between connects.
    #[error("driver: {0}")]
    Driver(#[source] std::io::Error),
}

/// Stops what a DUT left running after its last call.
pub type Stopper = Box<dyn FnOnce() + Send>;

/// A DUT's run: the call log, and what keeps running after the last call.
pub struct Running {
    pub calls: Vec<CallRecord>,
    /// A userspace stack must keep answering the peer (the FIN exchange, ACKs) after its
    /// last call, as a kernel does on its own; the runner calls this once the run settled.
    pub stop: Option<Stopper>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// An implementation under test.
pub trait Dut: Send + Sync {
    /// A short name for reports (`kernel`, `stack`).
    fn name(&self) -> &'static str;
    /// What it is, for a report that is published: the stack and its version, and how
    /// tcptwin drives it. Empty (the default) when the name says it all.
    fn about(&self) -> String {
        String::new()
    }
    /// Whether the dut namespace's own kernel holds the address (false for a userspace stack
    /// that owns the veth through AF_PACKET).
    fn kernel_owns_address(&self) -> bool;
    /// Why this implementation cannot run `case` at all, if it cannot (checked before any
    /// namespace is built; the case then gets the `unsupported` verdict).
    fn unsupported(&self, _case: &Case) -> Option<String> {
        None
    }
    /// Runs the case's steps; returns the call log and what to stop once the run settled.
    fn run_steps(&self, topology: &Topology, case: &Case) -> Result<Running, DutError>;
    /// A DUT that runs whole cases somewhere else (a kernel in a VM builds its own
    /// namespaces, capture and peer) returns what the run left here; `None` (the default)
    /// means the runner builds the topology and calls [`Dut::run_steps`].
    fn run_elsewhere(&self, _loaded: &LoadedCase) -> Option<Result<RunRecord, RecordError>> {
        None
    }
    /// Whether the cases' `expect` blocks, written from the host kernel (Linux 6.18), judge
    /// this DUT. A DUT modelled on another kernel version is judged by the diff alone.
    fn expectations_apply(&self) -> bool {
        true
    }
    /// Extra timing tolerance for this DUT's runs, with how it was measured; `None` for a
    /// DUT on the host's own clock.
    fn timing_allowance(&self) -> Option<TimingAllowance> {
        None
    }
}

/// Ends a userspace DUT's run whose steps outlived the case's time limit: the call in
/// progress was cancelled (`cancel` made it return EINTR); gather the calls logged so far,
/// stop the DUT's thread and wait for it.
pub fn timed_out(
    calls_rx: &std::sync::mpsc::Receiver<Vec<CallRecord>>,
    stop: impl FnOnce(),
    handle: std::thread::JoinHandle<Result<(), SetupError>>,
    limit_s: f64,
) -> DutError {
    let calls = calls_rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap_or_default();
    stop();
    let _ = handle.join();
    DutError::TimeLimit { limit_s, calls }
}

/// A userspace DUT's thread that ended before its steps did: its own error, if it gave one.
pub fn ended_early(handle: std::thread::JoinHandle<Result<(), SetupError>>, who: &str) -> DutError {
    match handle.join() {
        Err(_) => DutError::Panicked,
        Ok(Err(e)) => DutError::Thread(e),
        Ok(Ok(())) => DutError::Setup(format!("the {who} thread ended early")),
    }
}

/// A DUT shared by reference counting (a booted VM named by both `--dut` and `--vs`) is
/// that DUT.
impl<D: Dut + ?Sized> Dut for std::sync::Arc<D> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn about(&self) -> String {
        (**self).about()
    }
    fn kernel_owns_address(&self) -> bool {
        (**self).kernel_owns_address()
    }
    fn unsupported(&self, case: &Case) -> Option<String> {
        (**self).unsupported(case)
    }
    fn run_steps(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        (**self).run_steps(topology, case)
    }
    fn run_elsewhere(&self, loaded: &LoadedCase) -> Option<Result<RunRecord, RecordError>> {
        (**self).run_elsewhere(loaded)
    }
    fn expectations_apply(&self) -> bool {
        (**self).expectations_apply()
    }
    fn timing_allowance(&self) -> Option<TimingAllowance> {
        (**self).timing_allowance()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_ended_early_says_why() {
        let failed = std::thread::spawn(|| {
            Err(SetupError::PacketSocket {
                ifname: "eth0",
                source: std::io::Error::from_raw_os_error(libc::EPERM),
            })
        });
        assert_eq!(
            ended_early(failed, "stack").to_string(),
            "setting the DUT up: AF_PACKET on eth0: Operation not permitted (os error 1)"
        );
        let quiet = std::thread::spawn(|| Ok(()));
        assert_eq!(
            ended_early(quiet, "smoltcp").to_string(),
            "setting the DUT up: the smoltcp thread ended early"
        );
        let panicked = std::thread::spawn(|| -> Result<(), SetupError> { panic!("on purpose") });
        assert!(matches!(ended_early(panicked, "stack"), DutError::Panicked));
    }
}
