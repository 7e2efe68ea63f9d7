//! `ExecDut`: any program that speaks the DUT protocol (docs/dut-protocol.md) is a device
//! under test, whatever its language: a stack written in C, Go or Python sits behind a small
//! adapter that turns each request into a call on the stack's socket API.
//!
//! The adapter is started per case inside the DUT namespace, in a process group of its own
//! that dies with tcptwin (`PR_SET_PDEATHSIG`), and spoken to over its stdin and stdout, one
//! JSON object per line; what it writes to stderr goes into the error a failed run reports.
//! Once at start a `hello` in an empty network namespace asks what it is and what it
//! supports, so a case it cannot express gets the `unsupported` verdict before any
//! namespace is built, and the topology knows whether the DUT kernel or the adapter owns
//! the address.
//!
//! The adapter never decides how a call is logged: [`steps::interpret`] does, as for every DUT.

pub use crate::dut::adapter_error::{AdapterError, ExchangeError, ExitNote, StderrTail};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::case::{Case, SockOpt, Step};
use crate::dut::api::{Dut, DutError, Running};
use crate::dut::encode::{raw_getopt, raw_sockopt};
use crate::dut::steps::{self, CallResult, Failure, OptValue, SocketApi};
use crate::net::topology::{Topology, DUT_IF, DUT_MAC};

/// The protocol version this side speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// How long `hello` and `setup` may take (an interpreter starting, a stack coming up).
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long an adapter has to exit after `finish` before it is killed.
const FINISH_GRACE: Duration = Duration::from_secs(1);
/// How much of the adapter's stderr an error quotes (its end).
const STDERR_TAIL: usize = 4000;

/// The adapter's answer to `hello`: what it is and what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// The protocol version it speaks; must be [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// A short name for reports (`lwip`, `pytcp`), `[a-z0-9-]`.
    pub name: String,
    /// The stack's version, for reports.
    #[serde(default)]
    pub version: String,
    /// `interface`: the adapter's stack owns the DUT's veth (AF_PACKET on `eth0`), and the
    /// namespace's kernel gets no address, so it stays silent. `kernel`: the adapter uses
    /// the namespace kernel's sockets (a reference or a test adapter).
    pub address: AddressOwner,
    /// The steps it implements, by their case-format names (`connect`, `setsockopt`, ...);
    /// a case with another step is `unsupported` on it.
    pub steps: BTreeSet<String>,
    /// The socket options it implements, by name (`TCP_NODELAY`); a case setting another
    /// is `unsupported` on it.
    #[serde(default)]
    pub sockopts: BTreeSet<String>,
    /// The socket domains its `socket` makes; absent: `AF_INET` only. A case whose socket
    /// is of another (`inet6` and `v4-mapped` cases need `AF_INET6`) is `unsupported` on it.
    #[serde(default = "inet_only")]
    pub families: BTreeSet<SocketFamily>,
}

/// What an adapter that declares no `families` makes: `AF_INET` sockets.
fn inet_only() -> BTreeSet<SocketFamily> {
    BTreeSet::from([SocketFamily::Inet])
}

/// A socket's domain, by its Linux name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum SocketFamily {
    /// `AF_INET`: IPv4.
    #[serde(rename = "AF_INET")]
    Inet,
    /// `AF_INET6`: IPv6, and IPv4 through v4-mapped addresses.
    #[serde(rename = "AF_INET6")]
    Inet6,
}

impl SocketFamily {
    /// Its Linux name.
    pub fn name(self) -> &'static str {
        match self {
            SocketFamily::Inet => "AF_INET",
            SocketFamily::Inet6 => "AF_INET6",
        }
    }

    /// The domain a case of `family` makes its socket in.
    pub fn of_case(family: crate::case::IpFamily) -> SocketFamily {
        if family.socket_is_inet6() {
            SocketFamily::Inet6
        } else {
            SocketFamily::Inet
        }
    }
}

impl From<steps::Domain> for SocketFamily {
    fn from(domain: steps::Domain) -> SocketFamily {
        match domain {
            steps::Domain::Inet => SocketFamily::Inet,
            steps::Domain::Inet6 => SocketFamily::Inet6,
        }
    }
}

impl Hello {
    /// `lwip 2.1.3`, or the name alone when it gave no version.
    pub fn name_and_version(&self) -> String {
        if self.version.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.version)
        }
    }
}

/// Who holds the DUT's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddressOwner {
    Interface,
    Kernel,
}

/// One reply line: the call's value, or its errno, or the adapter's own failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The call's return value (a descriptor, a byte count, poll's revents, 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// `getsockopt`'s value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// The call failed with this errno, by its Linux name (`ECONNREFUSED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The adapter itself failed (not the socket): logged as `EIO` with this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One request line, tagged by `op`. Byte strings (`value`, `addr`, `data`) are lowercase
/// hex, exactly the bytes the kernel DUT passes to the system call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Once, in an empty network namespace: answer with a [`Hello`].
    Hello { protocol: u32 },
    /// Per case, first: the interface to bring the stack up on (in `interface` mode), its
    /// MAC, MTU, address and prefix (no address: `dut: none`), and the peer's address.
    Setup {
        interface: String,
        mac: String,
        mtu: u32,
        address: Option<String>,
        prefix_len: u8,
        peer: String,
    },
    /// `socket(family, SOCK_STREAM, 0)`: `ret` is the descriptor. `family` is sent only
    /// when it is not `AF_INET` (absent: `AF_INET`), and only to an adapter whose hello
    /// lists it in `families`.
    Socket {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        family: Option<SocketFamily>,
    },
    /// `fcntl(F_SETFL)` with `O_NONBLOCK` on or off.
    Nonblocking { on: bool },
    /// `setsockopt(level, name, value, len(value))`.
    Setsockopt {
        level: i32,
        name: i32,
        value: String,
    },
    /// `getsockopt(level, name)` of an `int` option: `value` is the int.
    Getsockopt { level: i32, name: i32 },
    /// `bind(addr, len(addr))`, `addr` a raw `sockaddr`.
    Bind { addr: String },
    /// `connect(addr, len(addr))`, blocking unless nonblocking was set.
    Connect { addr: String },
    /// `poll` of the socket for `events`: `ret` is the revents, 0 on timeout.
    Poll { events: u32, timeout_ms: i32 },
    /// `send(data, MSG_NOSIGNAL)`: `ret` is the bytes taken.
    Send { data: String },
    /// `recv(max)`: `ret` is the bytes read.
    Recv { max: usize },
    /// `close` of the socket.
    Close,
    /// Keep the stack running for `ms` with no call, then reply.
    Wait { ms: u64 },
    /// The run settled: exit (no reply). The process is killed a second later.
    Finish,
}

impl Request {
    /// The `op` tag, for messages.
    fn op(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["op"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// An external program as the device under test (`--dut exec:CMD`).
#[derive(Debug, Clone)]
pub struct ExecDut {
    /// The shell command that starts the adapter.
    command: String,
    hello: Hello,
    /// `exec:NAME` for reports, leaked once: [`Dut::name`] returns a `&'static str`.
    label: &'static str,
}

impl ExecDut {
    /// Starts `command` once in an empty network namespace and asks it `hello`.
    pub fn start(command: &str) -> Result<ExecDut, AdapterError> {
        let mut adapter = Adapter::spawn(command, None)?;
        let deadline = Instant::now() + START_LIMIT;
        let line = adapter.exchange(
            &Request::Hello {
                protocol: PROTOCOL_VERSION,
            },
            deadline,
        );
        let hello = line.and_then(|line| {
            serde_json::from_str::<Hello>(&line)
                .map_err(|source| ExchangeError::NotHello { source, line })
        });
        let hello = match hello {
            Ok(hello) => {
                adapter.finish();
                hello
            }
            Err(source) => {
                return Err(AdapterError::Hello {
                    command: command.into(),
                    source,
                    stderr: adapter.kill_and_stderr(),
                })
            }
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(AdapterError::Version {
                command: command.into(),
                protocol: hello.protocol,
                ours: PROTOCOL_VERSION,
            });
        }
        if hello.name.is_empty()
            || !hello
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(AdapterError::Name {
                command: command.into(),
                name: hello.name,
            });
        }
        let label = Box::leak(format!("exec:{}", hello.name).into_boxed_str());
        Ok(ExecDut {
            command: command.to_string(),
            hello,
            label,
        })
    }

    /// What the adapter said of itself.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// One line for the start of a run: what the adapter is and what it owns.
    pub fn describe(&self) -> String {
        let hello = &self.hello;
        let owner = match hello.address {
            AddressOwner::Interface => "owns the interface (the namespace's kernel has no address)",
            AddressOwner::Kernel => "uses the namespace kernel's sockets",
        };
        let families: Vec<&str> = hello.families.iter().map(|f| f.name()).collect();
        format!(
            "{}: {}, protocol {}; {owner}; {} sockets",
            self.label,
            hello.name_and_version(),
            hello.protocol,
            families.join(" and ")
        )
    }
}

/// A step's name in the case format, as `hello.steps` lists it.
fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Setsockopt(_) => "setsockopt",
        Step::Getsockopt(_) => "getsockopt",
        Step::Nonblocking(_) => "nonblocking",
        Step::Bind(_) => "bind",
        Step::Connect(_) => "connect",
        Step::Poll(_) => "poll",
        Step::Send(_) => "send",
        Step::Recv(_) => "recv",
        Step::WaitMs(_) => "wait_ms",
        Step::Close => "close",
        Step::Socket => "socket",
    }
}

/// A socket option's name, as `hello.sockopts` lists it.
fn sockopt_name(option: &SockOpt) -> String {
    let (_, _, _, text) = raw_sockopt(option);
    text.split('=').next().unwrap_or_default().to_string()
}

impl Dut for ExecDut {
    fn about(&self) -> String {
        format!(
            "{}, an adapter program speaking the DUT protocol {} (`{}`)",
            self.hello.name_and_version(),
            self.hello.protocol,
            self.command
        )
    }

    fn name(&self) -> &'static str {
        self.label
    }

    fn kernel_owns_address(&self) -> bool {
        self.hello.address == AddressOwner::Kernel
    }

    fn unsupported(&self, case: &Case) -> Option<String> {
        let domain = SocketFamily::of_case(case.family);
        if !self.hello.families.contains(&domain) {
            let listed: Vec<&str> = self.hello.families.iter().map(|f| f.name()).collect();
            return Some(format!(
                "family {} needs {} sockets; {} makes {} only",
                case.family,
                domain.name(),
                self.label,
                listed.join(", ")
            ));
        }
        for step in &case.steps {
            let name = step_name(step);
            if !self.hello.steps.contains(name) {
                return Some(format!("{} has no `{name}` step", self.label));
            }
            let option = match step {
                Step::Setsockopt(option) => Some(sockopt_name(option)),
                Step::Getsockopt(option) => Some(raw_getopt(*option).2.to_string()),
                _ => None,
            };
            if let Some(missing) = option.filter(|o| !self.hello.sockopts.contains(o)) {
                return Some(format!("{} has no socket option {missing}", self.label));
            }
        }
        None
    }

    fn run_steps(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        let spec = &topology.spec;
        let limit = Duration::from_secs_f64(case.time_limit_s.0);
        let deadline = Instant::now() + limit;
        let mut adapter = Adapter::spawn(&self.command, Some(topology.dut.fd().as_raw_fd()))
            .map_err(DutError::Adapter)?;
        let mac: Vec<String> = DUT_MAC.iter().map(|b| format!("{b:02x}")).collect();
        let setup = Request::Setup {
            interface: DUT_IF.into(),
            mac: mac.join(":"),
            mtu: spec.mtu,
            address: spec.dut_ip.map(|a| a.to_string()),
            prefix_len: spec.prefix,
            peer: spec.peer_ip.to_string(),
        };
        let setup_deadline = deadline.min(Instant::now() + START_LIMIT);
        if let Err(e) = adapter.call(&setup, setup_deadline) {
            let why = match e {
                Failure::Errno(errno) => ExchangeError::SetupErrno { errno },
                Failure::Machinery(text) => ExchangeError::SetupFailed(text),
                Failure::Interrupted => ExchangeError::SetupTimeout,
            };
            let source = adapter.fatal.take().unwrap_or(why);
            let stderr = adapter.kill_and_stderr();
            return Err(DutError::Adapter(AdapterError::Run { source, stderr }));
        }
        adapter.deadline = deadline;
        let calls = steps::interpret(&mut adapter, &case.steps, steps::Target::of(spec));
        if let Some(source) = adapter.fatal.take() {
            let stderr = adapter.kill_and_stderr();
            return Err(DutError::Adapter(AdapterError::Run { source, stderr }));
        }
        if adapter.timed_out {
            adapter.kill();
            return Err(DutError::TimeLimit {
                limit_s: case.time_limit_s.0,
                calls,
            });
        }
        // The adapter's stack keeps answering the peer until the run settled.
        let stop = move || adapter.finish();
        Ok(Running {
            calls,
            stop: Some(Box::new(stop)),
        })
    }
}

/// A running adapter process and the protocol spoken with it.
struct Adapter {
    child: Child,
    stdin: Option<ChildStdin>,
    /// stdout's lines, read by a thread of their own so a wait can time out.
    lines: Receiver<std::io::Result<String>>,
    /// Everything it wrote to stderr so far.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The thread that fills `stderr`; it ends when the pipe closes.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    /// When the case's time limit ends; a call still waiting then is cancelled.
    deadline: Instant,
    /// Why the adapter can no longer be spoken to (it exited, wrote garbage): the run is an
    /// `error`, not a verdict on the stack.
    fatal: Option<ExchangeError>,
    /// A call outlived the case's time limit.
    timed_out: bool,
    /// Requests sent, to name the one a bad reply answered.
    sent: usize,
}

impl Adapter {
    /// Starts `sh -c 'exec COMMAND'` in the network namespace `netns` (an fd), or in a new
    /// empty one when `None`; in a process group of its own, killed if tcptwin dies.
    fn spawn(command: &str, netns: Option<i32>) -> Result<Adapter, AdapterError> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("exec {command}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let rc = match netns {
                    Some(fd) => libc::setns(fd, libc::CLONE_NEWNET),
                    None => libc::unshare(libc::CLONE_NEWNET),
                };
                if rc != 0 || libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| AdapterError::Spawn {
            command: command.into(),
            source,
        })?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr_pipe = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = sink.lock().expect("stderr buffer");
                kept.extend_from_slice(&buf[..n]);
                // Only the end is ever quoted: a chatty adapter does not grow tcptwin.
                if kept.len() > 16 * STDERR_TAIL {
                    let cut = kept.len() - 4 * STDERR_TAIL;
                    kept.drain(..cut);
                }
            }
        });
        Ok(Adapter {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
            deadline: Instant::now() + START_LIMIT,
            fatal: None,
            timed_out: false,
            sent: 0,
        })
    }

    /// Sends `request` and waits until `deadline` for one line back.
    fn exchange(&mut self, request: &Request, deadline: Instant) -> Result<String, ExchangeError> {
        let op = request.op();
        let stdin = self.stdin.as_mut().ok_or(ExchangeError::StdinClosed)?;
        let mut line = serde_json::to_string(request).expect("a request serializes");
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|source| ExchangeError::Write {
                op: op.clone(),
                source,
                exit: self.exit_note(),
            })?;
        self.sent += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(source)) => Err(ExchangeError::Read { op, source }),
            Err(RecvTimeoutError::Timeout) => {
                self.timed_out = true;
                Err(ExchangeError::NoReply { op })
            }
            Err(RecvTimeoutError::Disconnected) => Err(ExchangeError::StdoutClosed {
                op,
                exit: self.exit_note(),
            }),
        }
    }

    /// One call: its reply parsed, an errno as [`Failure::Errno`], the adapter's own failure
    /// as [`Failure::Machinery`]. A broken exchange sets `fatal` and ends the steps.
    fn call(&mut self, request: &Request, deadline: Instant) -> CallResult<Reply> {
        if self.fatal.is_some() || self.timed_out {
            return Err(Failure::Interrupted);
        }
        let line = match self.exchange(request, deadline) {
            Ok(line) => line,
            Err(_) if self.timed_out => return Err(Failure::Interrupted),
            Err(e) => {
                self.fatal = Some(e);
                return Err(Failure::Interrupted);
            }
        };
        let reply: Reply = match serde_json::from_str(&line) {
            Ok(reply) => reply,
            Err(source) => {
                self.fatal = Some(ExchangeError::NotReply {
                    n: self.sent,
                    op: request.op(),
                    source,
                    line: shorten(&line),
                });
                return Err(Failure::Interrupted);
            }
        };
        if let Some(errno) = &reply.errno {
            if !crate::linux::errno::is_name(errno) {
                self.fatal = Some(ExchangeError::UnknownErrno {
                    n: self.sent,
                    errno: errno.clone(),
                });
                return Err(Failure::Interrupted);
            }
            return Err(Failure::Errno(errno.clone()));
        }
        if let Some(error) = reply.error {
            return Err(Failure::Machinery(error));
        }
        Ok(reply)
    }

    /// A call whose reply must carry `ret`.
    fn call_ret(&mut self, request: Request) -> CallResult<i64> {
        let deadline = self.deadline;
        let op = request.op();
        let reply = self.call(&request, deadline)?;
        reply.ret.ok_or_else(|| {
            self.fatal = Some(ExchangeError::NoRet { op });
            Failure::Interrupted
        })
    }

    /// How it exited, once it closed its end: it is given [`FINISH_GRACE`] to finish dying.
    fn exit_note(&mut self) -> ExitNote {
        self.wait_exit(FINISH_GRACE);
        ExitNote(self.child.try_wait().ok().flatten())
    }

    /// Kills it and returns the end of what it wrote to stderr, for an error message
    /// (read to its end: the pipe closes once the group is dead).
    fn kill_and_stderr(&mut self) -> StderrTail {
        self.kill();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let text =
            String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).into_owned();
        let text = text.trim_end();
        if text.is_empty() {
            return StderrTail::default();
        }
        let start = text
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| text.len() - i <= STDERR_TAIL)
            .unwrap_or(0);
        StderrTail(text[start..].to_string())
    }

    /// Says `finish`, closes its stdin, and kills its group if it has not exited after
    /// [`FINISH_GRACE`].
    fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let line = serde_json::to_string(&Request::Finish).expect("a request serializes");
            let _ = stdin.write_all(format!("{line}\n").as_bytes());
        }
        self.wait_exit(FINISH_GRACE);
        self.kill();
    }

    /// Waits up to `grace` for the adapter to exit: its pidfd turns readable when it does
    /// (waitpid has no timeout).
    fn wait_exit(&mut self, grace: Duration) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
        if fd < 0 {
            return; // the caller kills it at once
        }
        let mut pollfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = grace.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd; the descriptor is ours and closed right after.
        unsafe {
            libc::poll(&mut pollfd, 1, ms);
            libc::close(fd);
        }
    }

    /// Kills its whole process group and reaps it.
    fn kill(&mut self) {
        self.stdin = None;
        let pid = self.child.id() as i32;
        // SAFETY: signalling the group we made for it.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// A line cut for an error message.
fn shorten(line: &str) -> String {
    let mut s: String = line.chars().take(200).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

/// Bytes as lowercase hex, as the protocol carries them.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SocketApi for Adapter {
    fn socket(&mut self, domain: steps::Domain) -> CallResult<i64> {
        // Only a domain the adapter declared reaches it (see `unsupported`); AF_INET goes
        // without the field, as before there was one.
        let family = Some(SocketFamily::from(domain)).filter(|f| *f != SocketFamily::Inet);
        self.call_ret(Request::Socket { family })
    }

    fn set_nonblocking(&mut self, on: bool) -> CallResult<()> {
        self.call_ret(Request::Nonblocking { on }).map(drop)
    }

    fn setsockopt(&mut self, level: i32, name: i32, value: &[u8]) -> CallResult<()> {
        let value = hex(value);
        self.call_ret(Request::Setsockopt { level, name, value })
            .map(drop)
    }

    fn getsockopt(&mut self, level: i32, name: i32) -> CallResult<OptValue> {
        let deadline = self.deadline;
        let reply = self.call(&Request::Getsockopt { level, name }, deadline)?;
        match reply.value.map(i32::try_from) {
            Some(Ok(v)) => Ok(OptValue::Int(v)),
            _ => {
                self.fatal = Some(ExchangeError::NoIntValue);
                Err(Failure::Interrupted)
            }
        }
    }

    fn bind(&mut self, addr: &[u8]) -> CallResult<()> {
        self.call_ret(Request::Bind { addr: hex(addr) }).map(drop)
    }

    fn connect(&mut self, addr: &[u8]) -> CallResult<()> {
        self.call_ret(Request::Connect { addr: hex(addr) })
            .map(drop)
    }

    fn poll(&mut self, events: u32, timeout_ms: i32) -> CallResult<u32> {
        self.call_ret(Request::Poll { events, timeout_ms })
            .map(|revents| revents as u32)
    }

    fn send(&mut self, data: &[u8]) -> CallResult<usize> {
        self.call_ret(Request::Send { data: hex(data) })
            .map(|n| n as usize)
    }

    fn recv(&mut self, max: usize) -> CallResult<usize> {
        self.call_ret(Request::Recv { max }).map(|n| n as usize)
    }

    fn close(&mut self) -> CallResult<()> {
        self.call_ret(Request::Close).map(drop)
    }

    fn wait(&mut self, ms: u64) -> CallResult<()> {
        self.call_ret(Request::Wait { ms }).map(drop)
    }

    fn stopped(&self) -> bool {
        self.fatal.is_some() || self.timed_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_carries_a_family_only_when_it_is_not_af_inet() {
        let line = |r: &Request| serde_json::to_string(r).unwrap();
        assert_eq!(
            line(&Request::Socket { family: None }),
            r#"{"op":"socket"}"#
        );
        assert_eq!(
            line(&Request::Socket {
                family: Some(SocketFamily::Inet6)
            }),
            r#"{"op":"socket","family":"AF_INET6"}"#
        );
        let back: Request = serde_json::from_str(r#"{"op":"socket"}"#).unwrap();
        assert_eq!(back, Request::Socket { family: None });
    }

    #[test]
    fn a_hello_without_families_makes_af_inet_sockets_only() {
        let old = r#"{"protocol":1,"name":"x","address":"interface","steps":["connect"]}"#;
        let hello: Hello = serde_json::from_str(old).unwrap();
        assert_eq!(hello.families, BTreeSet::from([SocketFamily::Inet]));
        let new = r#"{"protocol":1,"name":"x","address":"kernel","steps":[],
                      "families":["AF_INET6","AF_INET"]}"#;
        let hello: Hello = serde_json::from_str(new).unwrap();
        assert_eq!(
            hello.families,
            BTreeSet::from([SocketFamily::Inet, SocketFamily::Inet6])
        );
        let unknown = r#"{"protocol":1,"name":"x","address":"kernel","steps":[],
                          "families":["AF_UNIX"]}"#;
        assert!(serde_json::from_str::<Hello>(unknown).is_err());
    }

    #[test]
    fn an_adapter_error_ends_with_its_stderr() {
        let broke = AdapterError::Run {
            source: ExchangeError::NoRet {
                op: "connect".into(),
            },
            stderr: StderrTail("Traceback ...\nValueError".into()),
        };
        assert_eq!(
            broke.to_string(),
            "its reply to connect has neither ret nor errno; its stderr ends:\n\
             Traceback ...\nValueError"
        );
        let quiet = AdapterError::Hello {
            command: "./adapter".into(),
            source: ExchangeError::StdoutClosed {
                op: "hello".into(),
                exit: ExitNote(None),
            },
            stderr: StderrTail::default(),
        };
        assert_eq!(
            quiet.to_string(),
            "exec:./adapter: it closed its stdout instead of replying to hello \
             (it is still running)"
        );
    }
}
