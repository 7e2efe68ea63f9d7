//! `KernelDut`: each step is a real system call on a TCP socket in the dut namespace.
//!
//! Calls go through `libc` directly, not a safer wrapper, because the scenarios need exactly
//! what a C program can pass (an address length of 1, an `AF_INET6` address on an IPv4
//! socket) and the exact errno back. A watchdog interrupts a call that outlives the case's
//! time limit with a signal whose handler does nothing and is installed without
//! `SA_RESTART`, so the blocked call returns EINTR and the thread ends.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::capture::realtime_ns;
use crate::case::{Case, Family, GetOpt, PollFlag, SockOpt, Step};
use crate::dut::{CallRecord, Dut, DutError};
use crate::errno;
use crate::topology::Topology;

/// Linux option numbers (include/uapi/linux/tcp.h, in.h, socket.h) not all `libc` exports.
mod opt {
    pub const TCP_MAXSEG: i32 = 2;
    pub const TCP_NODELAY: i32 = 1;
    pub const TCP_SYNCNT: i32 = 7;
    pub const TCP_WINDOW_CLAMP: i32 = 10;
    pub const TCP_USER_TIMEOUT: i32 = 18;
    pub const TCP_FASTOPEN_CONNECT: i32 = 30;
    pub const IP_TOS: i32 = 1;
    pub const IP_TTL: i32 = 2;
    pub const IP_OPTIONS: i32 = 4;
    pub const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
}

/// The host kernel as the device under test.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelDut;

impl Dut for KernelDut {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run(&self, topology: &Topology, case: &Case) -> Result<Vec<CallRecord>, DutError> {
        install_interrupt_handler();
        let abort = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let steps = case.steps.clone();
        let peer_ip = topology.spec.peer_ip;
        let abort2 = abort.clone();
        let handle = topology.dut.spawn("dut-kernel", move || {
            crate::netns::realtime_priority();
            // SAFETY: pthread_self has no preconditions.
            let _ = tid_tx.send(unsafe { libc::pthread_self() });
            let mut log = Vec::new();
            run_steps(&steps, peer_ip, &abort2, &mut log, &done_tx);
            log
        })?;
        let tid = tid_rx.recv().map_err(|_| DutError::Panicked)?;
        let limit = Duration::from_secs_f64(case.time_limit_s.0);
        match done_rx.recv_timeout(limit) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                handle.join().map_err(|_| DutError::Panicked)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                abort.store(true, Ordering::Release);
                // Keep interrupting until the thread notices: a signal that lands between
                // two calls is lost, the next one is not.
                while !handle.is_finished() {
                    // SAFETY: tid names a thread that has not been joined yet.
                    unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
                    let _ = done_rx.recv_timeout(Duration::from_millis(20));
                }
                let calls = handle.join().map_err(|_| DutError::Panicked)?;
                Err(DutError::TimeLimit {
                    limit_s: case.time_limit_s.0,
                    calls,
                })
            }
        }
    }
}

extern "C" fn on_interrupt(_: libc::c_int) {}

fn install_interrupt_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data; the handler is async-signal-safe (it does nothing).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_interrupt as *const () as usize;
            action.sa_flags = 0; // no SA_RESTART: blocked calls return EINTR
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
        }
    });
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs every step on one socket, logging each call; stops early when aborted.
fn run_steps(
    steps: &[Step],
    peer_ip: Ipv4Addr,
    abort: &AtomicBool,
    log: &mut Vec<CallRecord>,
    done: &mpsc::Sender<()>,
) {
    let start = realtime_ns();
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let socket_errno = (fd < 0).then(last_errno);
    // The descriptor number differs from run to run; the outcome is just "fd".
    log.push(record(
        "socket",
        "AF_INET, SOCK_STREAM".into(),
        i64::from(fd),
        socket_errno,
        start,
        "fd".into(),
    ));
    let mut fd = fd;
    for step in steps {
        if abort.load(Ordering::Acquire) {
            break;
        }
        if let Step::WaitMs(ms) = step {
            pause(*ms, abort);
            continue;
        }
        let entry = call(fd, step, peer_ip);
        if matches!(step, Step::Close) && entry.errno.is_none() {
            fd = -1;
        }
        log.push(entry);
    }
    if fd >= 0 {
        // The case ended with the socket open: close it so the namespace can go.
        // SAFETY: fd is our socket.
        unsafe { libc::close(fd) };
    }
    let _ = done.send(());
}

/// Sleeps for `ms`, in slices, so an abort is noticed quickly.
fn pause(ms: u64, abort: &AtomicBool) {
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    while !abort.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}

fn record(
    call: &str,
    args: String,
    ret: i64,
    errno: Option<i32>,
    start_ns: i64,
    outcome: String,
) -> CallRecord {
    let errno = errno.map(errno::name);
    CallRecord {
        call: call.into(),
        args,
        ret,
        outcome: errno.clone().unwrap_or(outcome),
        errno,
        start_ns,
        end_ns: realtime_ns(),
    }
}

fn sockaddr_in(addr: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> (i64, Option<i32>) {
    // SAFETY: value is a live c_int of the size given.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&value as *const i32).cast(), 4) };
    (i64::from(rc), (rc < 0).then(last_errno))
}

fn sockopt_call(fd: i32, opt: &SockOpt) -> (String, i64, Option<i32>) {
    let int = |level, name, v: i32, label: &str| {
        let (rc, e) = setsockopt_int(fd, level, name, v);
        (format!("{label}={v}"), rc, e)
    };
    match opt {
        SockOpt::TcpMaxseg(v) => int(libc::IPPROTO_TCP, opt::TCP_MAXSEG, *v, "TCP_MAXSEG"),
        SockOpt::TcpSyncnt(v) => int(libc::IPPROTO_TCP, opt::TCP_SYNCNT, *v, "TCP_SYNCNT"),
        SockOpt::TcpUserTimeout(v) => int(
            libc::IPPROTO_TCP,
            opt::TCP_USER_TIMEOUT,
            *v,
            "TCP_USER_TIMEOUT",
        ),
        SockOpt::TcpFastopenConnect(v) => int(
            libc::IPPROTO_TCP,
            opt::TCP_FASTOPEN_CONNECT,
            *v,
            "TCP_FASTOPEN_CONNECT",
        ),
        SockOpt::TcpWindowClamp(v) => int(
            libc::IPPROTO_TCP,
            opt::TCP_WINDOW_CLAMP,
            *v,
            "TCP_WINDOW_CLAMP",
        ),
        SockOpt::TcpNodelay(v) => int(libc::IPPROTO_TCP, opt::TCP_NODELAY, *v, "TCP_NODELAY"),
        SockOpt::SoRcvbuf(v) => int(libc::SOL_SOCKET, libc::SO_RCVBUF, *v, "SO_RCVBUF"),
        SockOpt::SoSndbuf(v) => int(libc::SOL_SOCKET, libc::SO_SNDBUF, *v, "SO_SNDBUF"),
        SockOpt::IpTos(v) => int(libc::IPPROTO_IP, opt::IP_TOS, *v, "IP_TOS"),
        SockOpt::IpTtl(v) => int(libc::IPPROTO_IP, opt::IP_TTL, *v, "IP_TTL"),
        SockOpt::IpBindAddressNoPort(v) => int(
            libc::IPPROTO_IP,
            opt::IP_BIND_ADDRESS_NO_PORT,
            *v,
            "IP_BIND_ADDRESS_NO_PORT",
        ),
        SockOpt::SoSndtimeoMs(ms) => {
            let tv = libc::timeval {
                tv_sec: i64::from(*ms / 1000),
                tv_usec: i64::from(*ms % 1000) * 1000,
            };
            // SAFETY: tv is a live timeval of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_SNDTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            (
                format!("SO_SNDTIMEO={ms}ms"),
                i64::from(rc),
                (rc < 0).then(last_errno),
            )
        }
        SockOpt::IpOptions(bytes) => {
            // SAFETY: the option bytes are valid for their length.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    opt::IP_OPTIONS,
                    bytes.0.as_ptr().cast(),
                    bytes.0.len() as u32,
                )
            };
            let hex: String = bytes.0.iter().map(|b| format!("{b:02x}")).collect();
            (
                format!("IP_OPTIONS={hex}"),
                i64::from(rc),
                (rc < 0).then(last_errno),
            )
        }
    }
}

const POLL_NAMES: [(i16, &str); 11] = [
    (libc::POLLIN, "POLLIN"),
    (libc::POLLPRI, "POLLPRI"),
    (libc::POLLOUT, "POLLOUT"),
    (libc::POLLERR, "POLLERR"),
    (libc::POLLHUP, "POLLHUP"),
    (libc::POLLNVAL, "POLLNVAL"),
    (libc::POLLRDNORM, "POLLRDNORM"),
    (libc::POLLRDBAND, "POLLRDBAND"),
    (libc::POLLWRNORM, "POLLWRNORM"),
    (libc::POLLWRBAND, "POLLWRBAND"),
    (0x2000, "POLLRDHUP"),
];

/// poll(2) event bits as `POLLIN|POLLOUT`, or `0`.
pub fn poll_names(bits: i16) -> String {
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

/// Makes one call and logs it.
fn call(fd: i32, step: &Step, peer_ip: Ipv4Addr) -> CallRecord {
    let start = realtime_ns();
    let name = step.call_name();
    let plain = |rc: i64| (rc, (rc < 0).then(last_errno));
    match step {
        Step::Nonblocking(on) => {
            // SAFETY: fcntl on our descriptor.
            let rc = unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                if flags < 0 {
                    flags
                } else if *on {
                    libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
                } else {
                    libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK)
                }
            };
            let (ret, e) = plain(i64::from(rc));
            let arg = if *on {
                "O_NONBLOCK on"
            } else {
                "O_NONBLOCK off"
            };
            record(name, arg.into(), ret, e, start, ret.to_string())
        }
        Step::Setsockopt(opt) => {
            let (args, ret, e) = sockopt_call(fd, opt);
            record(name, args, ret, e, start, ret.to_string())
        }
        Step::Getsockopt(which) => {
            let (level, opt_name, label) = match which {
                GetOpt::SoError => (libc::SOL_SOCKET, libc::SO_ERROR, "SO_ERROR"),
                GetOpt::TcpMaxseg => (libc::IPPROTO_TCP, opt::TCP_MAXSEG, "TCP_MAXSEG"),
                GetOpt::SoRcvbuf => (libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF"),
            };
            let mut value: i32 = 0;
            let mut len: libc::socklen_t = 4;
            // SAFETY: value and len are live and sized for an int option.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    level,
                    opt_name,
                    (&mut value as *mut i32).cast(),
                    &mut len,
                )
            };
            let (ret, e) = plain(i64::from(rc));
            let outcome = match which {
                GetOpt::SoError if value != 0 => errno::name(value),
                _ => value.to_string(),
            };
            record(name, label.into(), ret, e, start, outcome)
        }
        Step::Bind(bind) => {
            let sa = sockaddr_in(bind.addr, bind.port);
            // SAFETY: sa is a valid sockaddr_in of the size given.
            let rc = unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            let (ret, e) = plain(i64::from(rc));
            record(
                name,
                format!("{}:{}", bind.addr, bind.port),
                ret,
                e,
                start,
                ret.to_string(),
            )
        }
        Step::Connect(c) => {
            let addr = c.addr.unwrap_or(peer_ip);
            // SAFETY: sockaddr_storage is plain data; zero is valid.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let (family_name, natural_len) = match c.family {
                Family::Inet => {
                    let sa = sockaddr_in(addr, c.port);
                    // SAFETY: storage is larger than sockaddr_in and suitably aligned.
                    unsafe {
                        std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sa)
                    };
                    ("", std::mem::size_of::<libc::sockaddr_in>())
                }
                Family::Inet6 => {
                    storage.ss_family = libc::AF_INET6 as u16;
                    ("AF_INET6 ", std::mem::size_of::<libc::sockaddr_in6>())
                }
                Family::Unspec => {
                    storage.ss_family = libc::AF_UNSPEC as u16;
                    ("AF_UNSPEC ", std::mem::size_of::<libc::sockaddr_in>())
                }
            };
            let len = c.addrlen.unwrap_or(natural_len as u32);
            // SAFETY: storage is 128 bytes; a larger addrlen is what the scenario tests, and
            // the kernel rejects it (move_addr_to_kernel) before reading past 128.
            let rc = unsafe {
                libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len)
            };
            let (ret, e) = plain(i64::from(rc));
            let mut args = format!("{family_name}{addr}:{}", c.port);
            if let Some(l) = c.addrlen {
                args.push_str(&format!(", addrlen {l}"));
            }
            record(name, args, ret, e, start, ret.to_string())
        }
        Step::Poll(p) => {
            let events = p.events.iter().fold(0i16, |acc, f| {
                acc | match f {
                    PollFlag::In => libc::POLLIN,
                    PollFlag::Out => libc::POLLOUT,
                    PollFlag::RdHup => 0x2000,
                }
            });
            let mut pfd = libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, p.timeout_ms) };
            let (ret, e) = plain(i64::from(rc));
            let outcome = if rc > 0 {
                poll_names(pfd.revents)
            } else {
                "0".into()
            };
            record(
                name,
                format!("{}, {} ms", poll_names(events), p.timeout_ms),
                ret,
                e,
                start,
                outcome,
            )
        }
        Step::Send(s) => {
            let payload: Vec<u8> = (0..s.bytes.0).map(|i| b'A' + (i % 26) as u8).collect();
            // SAFETY: payload is valid for its length.
            let rc = unsafe {
                libc::send(
                    fd,
                    payload.as_ptr().cast(),
                    payload.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            let (ret, e) = plain(rc as i64);
            record(
                name,
                format!("{} bytes", s.bytes.0),
                ret,
                e,
                start,
                ret.to_string(),
            )
        }
        Step::Recv(r) => {
            let mut buf = vec![0u8; r.max.0 as usize];
            // SAFETY: buf is valid for writes of its length.
            let rc = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            let (ret, e) = plain(rc as i64);
            record(
                name,
                format!("max {}", r.max.0),
                ret,
                e,
                start,
                ret.to_string(),
            )
        }
        Step::Close => {
            // SAFETY: closing our own descriptor.
            let rc = unsafe { libc::close(fd) };
            let (ret, e) = plain(i64::from(rc));
            record(name, String::new(), ret, e, start, ret.to_string())
        }
        Step::WaitMs(_) => unreachable!("pauses are handled by run_steps"),
    }
}
