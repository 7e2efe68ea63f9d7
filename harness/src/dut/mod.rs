//! Devices under test: one trait, the same steps for every implementation.
//!
//! A DUT runs a case's steps inside the topology's `dut` namespace and logs each call with
//! its return value, errno by name and the times it started and returned (CLOCK_REALTIME,
//! the capture's clock). [`steps`] turns the steps into calls and log records once, for
//! every DUT that offers its calls as a [`steps::SocketApi`].

pub mod exec;
pub mod kernel;
#[cfg(feature = "smoltcp")]
pub mod smoltcp;
pub mod stack;
pub mod steps;

use serde::{Deserialize, Serialize};

use crate::case::{Case, SockOpt};
use crate::netns::NetnsError;
use crate::topology::Topology;

pub use exec::ExecDut;
pub use kernel::KernelDut;
#[cfg(feature = "smoltcp")]
pub use smoltcp::SmoltcpDut;
pub use stack::StackDut;

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

/// Why a DUT could not finish a case.
#[derive(Debug, thiserror::Error)]
pub enum DutError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{}; {} call(s) had returned", if crate::interrupt::requested() { "interrupted".to_string() } else { format!("time limit of {limit_s} s exceeded") }, calls.len())]
    TimeLimit {
        limit_s: f64,
        calls: Vec<CallRecord>,
    },
    #[error("the DUT thread panicked")]
    Panicked,
    #[error("setting the DUT up: {0}")]
    Setup(String),
    /// An adapter process (`exec:`) that crashed, hung at start, or broke the protocol;
    /// the text names how, with the end of its stderr.
    #[error("{0}")]
    Adapter(String),
    /// The case asks for something this implementation has no way to express (a socket
    /// option it lacks, a malformed `sockaddr` its typed API cannot take). Not a pass, not
    /// a failure: the runner reports it as its own verdict.
    #[error("unsupported by this DUT: {0}")]
    Unsupported(String),
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
    fn run(&self, topology: &Topology, case: &Case) -> Result<Running, DutError>;
    /// A DUT that runs whole cases somewhere else (a kernel in a VM builds its own
    /// namespaces, capture and peer) returns what the run left here; `None` (the default)
    /// means the runner builds the topology and calls [`Dut::run`].
    fn run_elsewhere(
        &self,
        _loaded: &crate::runner::LoadedCase,
    ) -> Option<Result<crate::runner::RawRun, String>> {
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

/// A measured widening of every timing tolerance, for a DUT whose timers are looser than
/// the host kernel's (a kernel under emulation). Printed with its basis in every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingAllowance {
    pub extra_ms: f64,
    /// How `extra_ms` was derived, for the report.
    pub basis: String,
}

/// Linux option numbers (include/uapi/linux/tcp.h, in.h, asm-generic/socket.h).
mod opt {
    pub const TCP_MAXSEG: i32 = 2;
    pub const TCP_NODELAY: i32 = 1;
    pub const TCP_SYNCNT: i32 = 7;
    pub const TCP_WINDOW_CLAMP: i32 = 10;
    pub const TCP_QUICKACK: i32 = 12;
    pub const TCP_USER_TIMEOUT: i32 = 18;
    pub const TCP_FASTOPEN_CONNECT: i32 = 30;
    pub const TCP_RTO_MAX_MS: i32 = 44;
    pub const IP_TOS: i32 = 1;
    pub const IP_TTL: i32 = 2;
    pub const IP_OPTIONS: i32 = 4;
    pub const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
}

/// A case's option as `setsockopt(level, name, bytes)` takes it, with its text for the log:
/// one encoding for every DUT, so they are given exactly the same bytes.
pub fn raw_sockopt(option: &SockOpt) -> (i32, i32, Vec<u8>, String) {
    use libc::{IPPROTO_IP, IPPROTO_TCP, SOL_SOCKET};
    let int = |level, name, v: i32, label: &str| {
        (
            level,
            name,
            v.to_ne_bytes().to_vec(),
            format!("{label}={v}"),
        )
    };
    match option {
        SockOpt::TcpMaxseg(v) => int(IPPROTO_TCP, opt::TCP_MAXSEG, *v, "TCP_MAXSEG"),
        SockOpt::TcpSyncnt(v) => int(IPPROTO_TCP, opt::TCP_SYNCNT, *v, "TCP_SYNCNT"),
        SockOpt::TcpUserTimeout(v) => {
            int(IPPROTO_TCP, opt::TCP_USER_TIMEOUT, *v, "TCP_USER_TIMEOUT")
        }
        SockOpt::TcpFastopenConnect(v) => int(
            IPPROTO_TCP,
            opt::TCP_FASTOPEN_CONNECT,
            *v,
            "TCP_FASTOPEN_CONNECT",
        ),
        SockOpt::TcpWindowClamp(v) => {
            int(IPPROTO_TCP, opt::TCP_WINDOW_CLAMP, *v, "TCP_WINDOW_CLAMP")
        }
        SockOpt::TcpNodelay(v) => int(IPPROTO_TCP, opt::TCP_NODELAY, *v, "TCP_NODELAY"),
        SockOpt::TcpQuickack(v) => int(IPPROTO_TCP, opt::TCP_QUICKACK, *v, "TCP_QUICKACK"),
        SockOpt::TcpRtoMaxMs(v) => int(IPPROTO_TCP, opt::TCP_RTO_MAX_MS, *v, "TCP_RTO_MAX_MS"),
        SockOpt::SoRcvbuf(v) => int(SOL_SOCKET, libc::SO_RCVBUF, *v, "SO_RCVBUF"),
        SockOpt::SoSndbuf(v) => int(SOL_SOCKET, libc::SO_SNDBUF, *v, "SO_SNDBUF"),
        SockOpt::IpTos(v) => int(IPPROTO_IP, opt::IP_TOS, *v, "IP_TOS"),
        SockOpt::IpTtl(v) => int(IPPROTO_IP, opt::IP_TTL, *v, "IP_TTL"),
        SockOpt::IpBindAddressNoPort(v) => int(
            IPPROTO_IP,
            opt::IP_BIND_ADDRESS_NO_PORT,
            *v,
            "IP_BIND_ADDRESS_NO_PORT",
        ),
        SockOpt::SoSndtimeoMs(ms) => {
            let mut bytes = i64::from(*ms / 1000).to_ne_bytes().to_vec();
            bytes.extend(i64::from(*ms % 1000 * 1000).to_ne_bytes());
            (
                SOL_SOCKET,
                libc::SO_SNDTIMEO,
                bytes,
                format!("SO_SNDTIMEO={ms}ms"),
            )
        }
        SockOpt::IpOptions(bytes) => {
            let hex: String = bytes.0.iter().map(|b| format!("{b:02x}")).collect();
            (
                IPPROTO_IP,
                opt::IP_OPTIONS,
                bytes.0.clone(),
                format!("IP_OPTIONS={hex}"),
            )
        }
    }
}

/// `getsockopt(level, name)` of a case's readable option, with its name.
pub fn raw_getopt(option: crate::case::GetOpt) -> (i32, i32, &'static str) {
    use crate::case::GetOpt;
    match option {
        GetOpt::SoError => (libc::SOL_SOCKET, libc::SO_ERROR, "SO_ERROR"),
        GetOpt::TcpMaxseg => (libc::IPPROTO_TCP, opt::TCP_MAXSEG, "TCP_MAXSEG"),
        GetOpt::SoRcvbuf => (libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF"),
    }
}

/// A connect step's `sockaddr` bytes as a C program would pass them: the family's natural
/// structure, cut or zero-padded to `addrlen` when the case sets one.
pub fn raw_sockaddr(
    step: &crate::case::ConnectStep,
    peer: std::net::Ipv4Addr,
) -> (Vec<u8>, String) {
    use crate::case::Family;
    let addr = step.addr.unwrap_or(peer);
    let (mut bytes, family_name) = match step.family {
        Family::Inet => {
            let mut b = vec![0u8; 16];
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&step.port.to_be_bytes());
            b[4..8].copy_from_slice(&addr.octets());
            (b, "")
        }
        Family::Inet6 => {
            let mut b = vec![0u8; 28];
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&step.port.to_be_bytes());
            (b, "AF_INET6 ")
        }
        Family::Unspec => {
            let mut b = vec![0u8; 16];
            b[..2].copy_from_slice(&(libc::AF_UNSPEC as u16).to_ne_bytes());
            (b, "AF_UNSPEC ")
        }
    };
    let mut text = format!("{family_name}{addr}:{}", step.port);
    if let Some(len) = step.addrlen {
        bytes.resize(len as usize, 0);
        text.push_str(&format!(", addrlen {len}"));
    }
    (bytes, text)
}

const POLL_NAMES: [(u32, &str); 11] = [
    (0x001, "POLLIN"),
    (0x002, "POLLPRI"),
    (0x004, "POLLOUT"),
    (0x008, "POLLERR"),
    (0x010, "POLLHUP"),
    (0x020, "POLLNVAL"),
    (0x040, "POLLRDNORM"),
    (0x080, "POLLRDBAND"),
    (0x100, "POLLWRNORM"),
    (0x200, "POLLWRBAND"),
    (0x2000, "POLLRDHUP"),
];

/// poll(2) event bits as `POLLIN|POLLOUT`, or `0`.
pub fn poll_names(bits: u32) -> String {
    let names: Vec<&str> = POLL_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

/// The poll bits a case's step asks for.
pub fn poll_events(flags: &[crate::case::PollFlag]) -> u32 {
    use crate::case::PollFlag;
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            PollFlag::In => 0x001,
            PollFlag::Out => 0x004,
            PollFlag::RdHup => 0x2000,
        }
    })
}

/// Ends a userspace DUT's run whose steps outlived the case's time limit: the call in
/// progress was cancelled (`cancel` made it return EINTR); gather the calls logged so far,
/// stop the DUT's thread and wait for it.
pub fn timed_out(
    calls_rx: &std::sync::mpsc::Receiver<Vec<CallRecord>>,
    stop: impl FnOnce(),
    handle: std::thread::JoinHandle<Result<(), String>>,
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
pub fn ended_early(handle: std::thread::JoinHandle<Result<(), String>>, who: &str) -> DutError {
    match handle.join() {
        Err(_) => DutError::Panicked,
        Ok(outcome) => DutError::Setup(
            outcome
                .err()
                .unwrap_or_else(|| format!("the {who} thread ended early")),
        ),
    }
}

/// The bytes a `send` step writes: the same pattern for every DUT.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'A' + (i % 26) as u8).collect()
}

/// The log record of a call, stamped with its return time now.
pub fn record(
    call: &str,
    args: String,
    ret: i64,
    errno: Option<String>,
    start_ns: i64,
    outcome: String,
) -> CallRecord {
    CallRecord {
        call: call.into(),
        args,
        ret,
        outcome: errno.clone().unwrap_or(outcome),
        errno,
        start_ns,
        end_ns: crate::capture::realtime_ns(),
    }
}
