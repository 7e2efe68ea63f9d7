//! The step interpreter: a case's `steps` as socket calls on any [`SocketApi`], logged the
//! same way for every DUT.
//!
//! A DUT only says how to make each call (real syscalls, a userspace stack's API, a process
//! speaking a protocol); what a step means, the arguments' text, how a result becomes the
//! `outcome` the judge compares, and when the steps end are decided here once, so two DUTs
//! given the same case log calls that differ only where their behaviour does.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::case::{socket_address, ConnectStep, GetOpt, IpFamily, Step};
use crate::dut::encode::{payload, poll_events, poll_names, raw_getopt, raw_sockaddr, raw_sockopt};
use crate::linux::errno;
use crate::observe::capture::realtime_ns;
use crate::record::CallRecord;

/// Why a call on a [`SocketApi`] did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The call failed as a socket call does: `-1` and this errno name (`ECONNREFUSED`).
    Errno(String),
    /// The case's time limit cancelled the call before it returned; the steps end here.
    /// (A DUT whose calls return `EINTR` by themselves, as the kernel's do when signalled,
    /// reports that as [`Failure::Errno`] and ends the steps through
    /// [`SocketApi::stopped`].)
    Interrupted,
    /// The DUT's own machinery failed (its packet I/O, not the socket): logged as `EIO`
    /// with this reason in place of the arguments, and the steps go on.
    Machinery(String),
}

impl From<&str> for Failure {
    fn from(errno: &str) -> Self {
        Failure::Errno(errno.to_string())
    }
}

/// What a call returns, or why it did not.
pub type CallResult<T> = Result<T, Failure>;

/// The domain a socket is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// `AF_INET`.
    Inet,
    /// `AF_INET6`.
    Inet6,
}

impl Domain {
    /// `socket()`'s arguments as the log shows them.
    pub fn text(self) -> &'static str {
        match self {
            Domain::Inet => "AF_INET, SOCK_STREAM",
            Domain::Inet6 => "AF_INET6, SOCK_STREAM",
        }
    }
}

/// Where a case's steps reach: the family of their sockets and the peer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub family: IpFamily,
    /// Where a connect step without an address goes.
    pub peer: IpAddr,
}

impl Target {
    /// The steps' target on a topology.
    pub fn of(spec: &crate::net::topology::TopologySpec) -> Target {
        Target {
            family: spec.family,
            peer: spec.peer_ip,
        }
    }

    /// The domain every socket of the case is made in.
    pub fn domain(&self) -> Domain {
        if self.family.socket_is_inet6() {
            Domain::Inet6
        } else {
            Domain::Inet
        }
    }
}

/// An option's value as `getsockopt` read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptValue {
    /// An `int` option (`SO_ERROR` holds an errno number, `0` for none).
    Int(i32),
    /// A timeout option (`SO_SNDTIMEO`), logged in milliseconds.
    Duration(Duration),
}

/// The socket API a DUT offers the step interpreter: one TCP socket per case, made by
/// [`SocketApi::socket`] and used by every later call. Each method mirrors one Linux
/// system call on that socket and takes what a C program would pass it (raw option bytes,
/// raw `sockaddr` bytes with their length), so the DUT sees exactly what the kernel is
/// given, malformed input included; it returns the call's value or its errno by name.
///
/// A method blocks as the syscall would (a blocking `connect` returns once the handshake
/// ended) unless the DUT was put in nonblocking mode. It must return once the case's time
/// limit passed: either [`Failure::Interrupted`], or an errno while
/// [`SocketApi::stopped`] turns true.
pub trait SocketApi {
    /// `socket(domain, SOCK_STREAM, 0)` (`__sys_socket`): the descriptor number, which is
    /// logged but not compared.
    fn socket(&mut self, domain: Domain) -> CallResult<i64>;
    /// `fcntl(F_SETFL, flags | O_NONBLOCK)` or without it (`setfl`): later calls return
    /// `EAGAIN`/`EINPROGRESS` rather than wait.
    fn set_nonblocking(&mut self, on: bool) -> CallResult<()>;
    /// `setsockopt(level, name, value, len)` (`do_sock_setsockopt`), `value` as the
    /// kernel's uapi lays it out.
    fn setsockopt(&mut self, level: i32, name: i32, value: &[u8]) -> CallResult<()>;
    /// `getsockopt(level, name)` (`do_sock_getsockopt`) of an `int`-sized option.
    fn getsockopt(&mut self, level: i32, name: i32) -> CallResult<OptValue>;
    /// `bind(addr, addrlen)` (`__sys_bind`), `addrlen` = `addr.len()`.
    fn bind(&mut self, addr: &[u8]) -> CallResult<()>;
    /// `connect(addr, addrlen)` (`__sys_connect`), `addrlen` = `addr.len()` (which may be
    /// shorter or longer than the family's structure).
    fn connect(&mut self, addr: &[u8]) -> CallResult<()>;
    /// `poll` (`do_sys_poll`) of the socket for `events` (poll(2) bits), waiting up to
    /// `timeout_ms` (negative: no limit); the revents, `0` when it timed out.
    fn poll(&mut self, events: u32, timeout_ms: i32) -> CallResult<u32>;
    /// `send(data, MSG_NOSIGNAL)` (`__sys_sendto`): the bytes taken.
    fn send(&mut self, data: &[u8]) -> CallResult<usize>;
    /// `recv(buf, max, 0)` (`__sys_recvfrom`): the bytes read, `0` at end of stream.
    fn recv(&mut self, max: usize) -> CallResult<usize>;
    /// `close` (`__fput` → `tcp_close`) of the socket.
    fn close(&mut self) -> CallResult<()>;
    /// Lets `ms` pass with no call, as a program sleeping between calls; a userspace
    /// stack goes on handling packets and timers meanwhile. Not logged unless it fails.
    fn wait(&mut self, ms: u64) -> CallResult<()>;
    /// Whether the case's time limit has passed, so no further step is made.
    fn stopped(&self) -> bool {
        false
    }
    /// The time calls are logged at, in ns on the capture's clock (CLOCK_REALTIME); a DUT
    /// in virtual time gives its own.
    fn now_ns(&self) -> i64 {
        realtime_ns()
    }
}

/// Runs a case's steps on `api`: the socket, then each step in order, until they end, a
/// call is interrupted, or `api` is stopped; `target` gives the sockets' family and where a
/// connect step without an address goes. Returns the call log.
///
/// A socket still open after the last step is closed then, as the kernel closes a
/// process's descriptors when it exits (`do_exit` → `__fput` → `tcp_close`), so every DUT
/// ends a case the same way; that close is not logged, as no step made it.
pub fn interpret(api: &mut impl SocketApi, steps: &[Step], target: Target) -> Vec<CallRecord> {
    let start = api.now_ns();
    let socket = api.socket(target.domain());
    let mut open = socket.is_ok();
    let mut log = vec![logged(
        "socket",
        target.domain().text().into(),
        (start, api.now_ns()),
        socket.map(|fd| (fd, "fd".to_string())),
    )];
    for step in steps {
        if api.stopped() {
            break;
        }
        let start = api.now_ns();
        let outcome = call(api, step, target);
        let times = (start, api.now_ns());
        if matches!(step, Step::Close) && !matches!(outcome, Err(Failure::Interrupted)) {
            // close(2) releases the descriptor whatever it returns.
            open = false;
        }
        if matches!(step, Step::Socket) && matches!(outcome, Ok(Some((_, Ok(_))))) {
            open = true;
        }
        match outcome {
            Ok(None) => {}
            Ok(Some((args, result))) => log.push(logged(step.call_name(), args, times, result)),
            Err(Failure::Interrupted) => {
                log.push(logged(
                    step.call_name(),
                    "(interrupted)".into(),
                    times,
                    Err(Failure::Interrupted),
                ));
                return log;
            }
            Err(failure) => log.push(logged(step.call_name(), String::new(), times, Err(failure))),
        }
    }
    if open && !api.stopped() {
        let _ = api.close();
    }
    log
}

/// A result as the judge sees it: the return value and its outcome text.
type Returned = CallResult<(i64, String)>;

/// Makes one step's call: its arguments' text and what it returned; `None` for a pause
/// that went as planned. `Err` only when the step ends without arguments to log (a
/// cancelled call or a failed pause).
fn call(
    api: &mut impl SocketApi,
    step: &Step,
    target: Target,
) -> CallResult<Option<(String, Returned)>> {
    let unit = |r: CallResult<()>| r.map(|()| (0, "0".to_string()));
    let counted = |r: CallResult<usize>| r.map(|n| (n as i64, n.to_string()));
    let (args, result) = match step {
        Step::WaitMs(ms) => {
            api.wait(*ms)?;
            return Ok(None);
        }
        Step::Nonblocking(on) => {
            let args = if *on {
                "O_NONBLOCK on"
            } else {
                "O_NONBLOCK off"
            };
            (args.to_string(), unit(api.set_nonblocking(*on)))
        }
        Step::Setsockopt(option) => {
            let (level, name, bytes, text) = raw_sockopt(option);
            (text, unit(api.setsockopt(level, name, &bytes)))
        }
        Step::Getsockopt(which) => {
            let (level, name, label) = raw_getopt(*which);
            let result = api.getsockopt(level, name).map(|value| {
                let outcome = match (value, which) {
                    (OptValue::Int(v), GetOpt::SoError) if v != 0 => errno::name(v),
                    (OptValue::Int(v), _) => v.to_string(),
                    (OptValue::Duration(d), _) => format!("{}ms", d.as_millis()),
                };
                (0, outcome)
            });
            (label.to_string(), result)
        }
        Step::Bind(bind) => {
            let any = match target.domain() {
                Domain::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Domain::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            };
            let addr = bind.addr.map_or(any, |a| socket_address(target.family, a));
            let step = ConnectStep {
                addr: Some(addr),
                port: bind.port,
                family: None,
                flowinfo: 0,
                scope_id: 0,
                addrlen: bind.addrlen,
            };
            let (bytes, text) = raw_sockaddr(&step, addr, target.family);
            (text, unit(api.bind(&bytes)))
        }
        Step::Connect(c) => {
            let addr = socket_address(target.family, c.addr.unwrap_or(target.peer));
            let (bytes, text) = raw_sockaddr(c, addr, target.family);
            (text, unit(api.connect(&bytes)))
        }
        Step::Poll(p) => {
            let events = poll_events(&p.events);
            let result = api.poll(events, p.timeout_ms).map(|revents| {
                if revents != 0 {
                    (1, poll_names(revents))
                } else {
                    (0, "0".to_string())
                }
            });
            (
                format!("{}, {} ms", poll_names(events), p.timeout_ms),
                result,
            )
        }
        Step::Send(s) => {
            let data = payload(s.bytes.0 as usize);
            (format!("{} bytes", s.bytes.0), counted(api.send(&data)))
        }
        Step::Recv(r) => (
            format!("max {}", r.max.0),
            counted(api.recv(r.max.0 as usize)),
        ),
        Step::Close => (String::new(), unit(api.close())),
        Step::Socket => (
            target.domain().text().to_string(),
            api.socket(target.domain()).map(|fd| (fd, "fd".to_string())),
        ),
    };
    match result {
        Err(Failure::Interrupted) => Err(Failure::Interrupted),
        result => Ok(Some((args, result))),
    }
}

/// The log record of a call made over `(start_ns, end_ns)`.
fn logged(
    call: &str,
    args: String,
    (start_ns, end_ns): (i64, i64),
    result: Returned,
) -> CallRecord {
    let (args, ret, errno, outcome) = match result {
        Ok((ret, outcome)) => (args, ret, None, outcome),
        Err(Failure::Errno(name)) => (args, -1, Some(name), String::new()),
        Err(Failure::Interrupted) => (args, -1, Some("EINTR".to_string()), String::new()),
        Err(Failure::Machinery(reason)) => (
            format!("(driver: {reason})"),
            -1,
            Some("EIO".to_string()),
            String::new(),
        ),
    };
    CallRecord {
        call: call.into(),
        args,
        ret,
        outcome: errno.clone().unwrap_or(outcome),
        errno,
        start_ns,
        end_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DUT whose calls return what the test scripted, in order, and which records what
    /// it was given.
    #[derive(Default)]
    struct Scripted {
        replies: std::collections::VecDeque<CallResult<i64>>,
        given: Vec<String>,
        stop_after: Option<usize>,
    }

    impl Scripted {
        fn new(replies: Vec<CallResult<i64>>) -> Self {
            Scripted {
                replies: replies.into(),
                ..Default::default()
            }
        }
        fn next(&mut self, given: String) -> CallResult<i64> {
            self.given.push(given);
            self.replies.pop_front().expect("a scripted reply")
        }
    }

    impl SocketApi for Scripted {
        fn socket(&mut self, _domain: Domain) -> CallResult<i64> {
            self.next("socket".into())
        }
        fn set_nonblocking(&mut self, on: bool) -> CallResult<()> {
            self.next(format!("nonblocking {on}")).map(drop)
        }
        fn setsockopt(&mut self, level: i32, name: i32, value: &[u8]) -> CallResult<()> {
            self.next(format!("setsockopt {level} {name} {value:?}"))
                .map(drop)
        }
        fn getsockopt(&mut self, level: i32, name: i32) -> CallResult<OptValue> {
            self.next(format!("getsockopt {level} {name}"))
                .map(|v| OptValue::Int(v as i32))
        }
        fn bind(&mut self, addr: &[u8]) -> CallResult<()> {
            self.next(format!("bind {addr:?}")).map(drop)
        }
        fn connect(&mut self, addr: &[u8]) -> CallResult<()> {
            self.next(format!("connect {addr:?}")).map(drop)
        }
        fn poll(&mut self, events: u32, timeout_ms: i32) -> CallResult<u32> {
            self.next(format!("poll {events:#x} {timeout_ms}"))
                .map(|v| v as u32)
        }
        fn send(&mut self, data: &[u8]) -> CallResult<usize> {
            self.next(format!("send {}", String::from_utf8_lossy(data)))
                .map(|v| v as usize)
        }
        fn recv(&mut self, max: usize) -> CallResult<usize> {
            self.next(format!("recv {max}")).map(|v| v as usize)
        }
        fn close(&mut self) -> CallResult<()> {
            self.next("close".into()).map(drop)
        }
        fn wait(&mut self, ms: u64) -> CallResult<()> {
            self.next(format!("wait {ms}")).map(drop)
        }
        fn stopped(&self) -> bool {
            self.stop_after.is_some_and(|n| self.given.len() >= n)
        }
    }

    fn steps(json: &str) -> Vec<Step> {
        serde_json::from_str(json).expect("steps")
    }

    /// (call, args, ret, errno, outcome) of each record.
    fn inet_target(peer: Ipv4Addr) -> Target {
        Target {
            family: IpFamily::Inet,
            peer: peer.into(),
        }
    }

    fn logged(log: &[CallRecord]) -> Vec<(String, String, i64, Option<String>, String)> {
        log.iter()
            .map(|c| {
                (
                    c.call.clone(),
                    c.args.clone(),
                    c.ret,
                    c.errno.clone(),
                    c.outcome.clone(),
                )
            })
            .collect()
    }

    fn rec(
        call: &str,
        args: &str,
        ret: i64,
        errno: Option<&str>,
        outcome: &str,
    ) -> (String, String, i64, Option<String>, String) {
        (
            call.into(),
            args.into(),
            ret,
            errno.map(Into::into),
            outcome.into(),
        )
    }

    #[test]
    fn each_step_is_one_call_logged_with_its_outcome() {
        let mut api = Scripted::new(vec![
            Ok(7),
            Ok(0),
            Err("EINPROGRESS".into()),
            Ok(0),
            Ok(0x004 | 0x008),
            Ok(111),
            Ok(0),
            Ok(5),
            Ok(0),
            Ok(0),
        ]);
        let script = steps(
            r#"[{"nonblocking": true}, {"connect": {}}, {"wait_ms": 20},
                {"poll": {"events": ["POLLOUT"], "timeout_ms": 300}},
                {"getsockopt": "SO_ERROR"}, {"getsockopt": "TCP_MAXSEG"},
                {"send": {"bytes": 5}}, {"recv": {"max": 10}}, "close"]"#,
        );
        let log = interpret(&mut api, &script, inet_target(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(
            logged(&log),
            vec![
                rec("socket", "AF_INET, SOCK_STREAM", 7, None, "fd"),
                rec("fcntl", "O_NONBLOCK on", 0, None, "0"),
                rec(
                    "connect",
                    "198.18.0.2:80",
                    -1,
                    Some("EINPROGRESS"),
                    "EINPROGRESS"
                ),
                rec("poll", "POLLOUT, 300 ms", 1, None, "POLLOUT|POLLERR"),
                rec("getsockopt", "SO_ERROR", 0, None, "ECONNREFUSED"),
                rec("getsockopt", "TCP_MAXSEG", 0, None, "0"),
                rec("send", "5 bytes", 5, None, "5"),
                rec("recv", "max 10", 0, None, "0"),
                rec("close", "", 0, None, "0"),
            ]
        );
        // The DUT was given what a C program passes: the raw sockaddr and the payload.
        let port80 = u16::to_be_bytes(80);
        assert_eq!(
            api.given[2],
            format!(
                "connect {:?}",
                [
                    &(libc::AF_INET as u16).to_ne_bytes()[..],
                    &port80,
                    &[198, 18, 0, 2],
                    &[0; 8]
                ]
                .concat()
            )
        );
        assert_eq!(api.given[3], "wait 20");
        assert_eq!(api.given[4], "poll 0x4 300");
        assert_eq!(api.given[7], "send ABCDE");
    }

    #[test]
    fn a_timed_out_poll_returns_zero() {
        let mut api = Scripted::new(vec![Ok(3), Ok(0), Ok(0)]);
        let script = steps(r#"[{"poll": {"events": ["POLLIN"], "timeout_ms": 5}}]"#);
        let log = interpret(&mut api, &script, inet_target(Ipv4Addr::LOCALHOST));
        assert_eq!(logged(&log)[1], rec("poll", "POLLIN, 5 ms", 0, None, "0"));
    }

    #[test]
    fn a_socket_left_open_is_closed_unlogged_and_a_closed_one_is_not_closed_again() {
        let mut api = Scripted::new(vec![Ok(3), Ok(0), Ok(0)]);
        let log = interpret(
            &mut api,
            &steps(r#"[{"connect": {}}]"#),
            inet_target([1, 2, 3, 4].into()),
        );
        assert_eq!(api.given.last().map(String::as_str), Some("close"));
        assert_eq!(log.len(), 2, "the closing is not a step: {log:?}");

        let mut api = Scripted::new(vec![Ok(3), Ok(0), Err("EBADF".into())]);
        interpret(
            &mut api,
            &steps(r#"[{"connect": {}}, "close"]"#),
            inet_target([1, 2, 3, 4].into()),
        );
        assert_eq!(api.given.len(), 3, "closed twice: {:?}", api.given);

        let mut api = Scripted::new(vec![Err("EMFILE".into())]);
        interpret(&mut api, &steps("[]"), inet_target([1, 2, 3, 4].into()));
        assert_eq!(api.given, ["socket"], "a socket never made was closed");
    }

    /// A `socket` step after a `close` makes the next socket: logged like the first, and
    /// left open at the end it is closed like the first.
    #[test]
    fn a_socket_step_makes_the_next_socket() {
        let mut api = Scripted::new(vec![Ok(3), Ok(0), Ok(4), Ok(0), Ok(0)]);
        let log = interpret(
            &mut api,
            &steps(r#"["close", "socket", {"connect": {}}]"#),
            inet_target([1, 2, 3, 4].into()),
        );
        assert_eq!(api.given[..3], ["socket", "close", "socket"]);
        assert_eq!(api.given.last().map(String::as_str), Some("close"));
        assert_eq!(
            logged(&log)[2],
            rec("socket", "AF_INET, SOCK_STREAM", 4, None, "fd")
        );
        // A socket that could not be made is not closed.
        let mut api = Scripted::new(vec![
            Ok(3),
            Ok(0),
            Err("EMFILE".into()),
            Err("EBADF".into()),
        ]);
        interpret(
            &mut api,
            &steps(r#"["close", "socket", {"connect": {}}]"#),
            inet_target([1, 2, 3, 4].into()),
        );
        assert_eq!(api.given.len(), 4, "{:?}", api.given);
    }

    #[test]
    fn an_interrupted_call_is_logged_as_eintr_and_ends_the_steps() {
        let mut api = Scripted::new(vec![Ok(3), Err(Failure::Interrupted)]);
        let log = interpret(
            &mut api,
            &steps(r#"[{"connect": {}}, "close"]"#),
            inet_target([1, 2, 3, 4].into()),
        );
        assert_eq!(
            logged(&log)[1..],
            [rec("connect", "(interrupted)", -1, Some("EINTR"), "EINTR")]
        );
        assert_eq!(api.given.len(), 2, "close was not called");
    }

    #[test]
    fn a_stopped_dut_gets_no_further_call() {
        let mut api = Scripted::new(vec![Ok(3), Err("EINTR".into())]);
        api.stop_after = Some(2);
        let log = interpret(
            &mut api,
            &steps(r#"[{"connect": {}}, "close"]"#),
            inet_target([1, 2, 3, 4].into()),
        );
        assert_eq!(
            logged(&log)[1..],
            [rec("connect", "1.2.3.4:80", -1, Some("EINTR"), "EINTR")]
        );
    }

    #[test]
    fn a_machinery_failure_is_logged_as_eio_and_the_steps_go_on() {
        let mut api = Scripted::new(vec![
            Ok(3),
            Err(Failure::Machinery("socket gone".into())),
            Ok(0),
        ]);
        let log = interpret(
            &mut api,
            &steps(r#"[{"wait_ms": 1}, "close"]"#),
            inet_target([1, 2, 3, 4].into()),
        );
        assert_eq!(
            logged(&log)[1..],
            [
                rec("wait", "(driver: socket gone)", -1, Some("EIO"), "EIO"),
                rec("close", "", 0, None, "0"),
            ]
        );
    }
}
