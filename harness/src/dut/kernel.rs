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
use crate::case::{Case, GetOpt, Step};
use crate::dut::{
    poll_events, poll_names, raw_getopt, raw_sockaddr, raw_sockopt, record, CallRecord, Dut,
    DutError, Running,
};
use crate::errno;
use crate::topology::Topology;

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

    fn run(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        install_interrupt_handler();
        let abort = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let steps = case.steps.clone();
        let peer_ip = topology.spec.peer_ip;
        let abort2 = abort.clone();
        let handle = topology.dut.spawn("dut-kernel", move || {
            // SAFETY: pthread_self has no preconditions.
            let _ = tid_tx.send(unsafe { libc::pthread_self() });
            let mut log = Vec::new();
            run_steps(&steps, peer_ip, &abort2, &mut log, &done_tx);
            log
        })?;
        let tid = tid_rx.recv().map_err(|_| DutError::Panicked)?;
        let limit = Duration::from_secs_f64(case.time_limit_s.0);
        match crate::interrupt::recv_timeout(&done_rx, limit) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let calls = handle.join().map_err(|_| DutError::Panicked)?;
                // The kernel goes on by itself after the last call: nothing to stop.
                Ok(Running { calls, stop: None })
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

/// The errno name after a failed call.
fn failed(rc: i64) -> Option<String> {
    (rc < 0).then(|| errno::name(last_errno()))
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
    // The descriptor number differs from run to run; the outcome is just "fd".
    let errno = failed(i64::from(fd));
    log.push(record(
        "socket",
        "AF_INET, SOCK_STREAM".into(),
        i64::from(fd),
        errno,
        start,
        "fd".into(),
    ));
    let mut fd = fd;
    for step in steps {
        if abort.load(Ordering::Acquire) {
            break;
        }
        let entry = match step {
            Step::WaitMs(ms) => {
                pause(*ms, abort);
                continue;
            }
            step => call(fd, step, peer_ip),
        };
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

/// Makes one call (any step but a pause) and logs it.
fn call(fd: i32, step: &Step, peer_ip: Ipv4Addr) -> CallRecord {
    let start = realtime_ns();
    let name = step.call_name();
    let done =
        |args: String, rc: i64, outcome: String| record(name, args, rc, failed(rc), start, outcome);
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
            let arg = if *on {
                "O_NONBLOCK on"
            } else {
                "O_NONBLOCK off"
            };
            done(arg.into(), i64::from(rc), rc.to_string())
        }
        Step::Setsockopt(option) => {
            let (level, opt_name, bytes, text) = raw_sockopt(option);
            // SAFETY: bytes is valid for its length.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    opt_name,
                    bytes.as_ptr().cast(),
                    bytes.len() as u32,
                )
            };
            done(text, i64::from(rc), rc.to_string())
        }
        Step::Getsockopt(which) => {
            let (level, opt_name, label) = raw_getopt(*which);
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
            let outcome = match which {
                GetOpt::SoError if value != 0 => errno::name(value),
                _ => value.to_string(),
            };
            done(label.into(), i64::from(rc), outcome)
        }
        Step::Bind(bind) => {
            let step = crate::case::ConnectStep {
                addr: Some(bind.addr),
                port: bind.port,
                family: Default::default(),
                addrlen: None,
            };
            let (bytes, text) = raw_sockaddr(&step, bind.addr);
            // SAFETY: bytes holds a sockaddr_in of the length given.
            let rc = unsafe { libc::bind(fd, bytes.as_ptr().cast(), bytes.len() as u32) };
            done(text, i64::from(rc), rc.to_string())
        }
        Step::Connect(c) => {
            let (mut bytes, text) = raw_sockaddr(c, peer_ip);
            let len = bytes.len() as u32;
            // At least a sockaddr_storage behind the pointer, so an addrlen the kernel
            // accepts never reads past our buffer.
            bytes.resize(bytes.len().max(128), 0);
            // SAFETY: bytes is valid for at least `len` bytes.
            let rc = unsafe { libc::connect(fd, bytes.as_ptr().cast(), len) };
            done(text, i64::from(rc), rc.to_string())
        }
        Step::Poll(p) => {
            let events = poll_events(&p.events);
            let mut pfd = libc::pollfd {
                fd,
                events: events as i16,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, p.timeout_ms) };
            let outcome = if rc > 0 {
                poll_names(pfd.revents as u16 as u32)
            } else {
                "0".into()
            };
            done(
                format!("{}, {} ms", poll_names(events), p.timeout_ms),
                i64::from(rc),
                outcome,
            )
        }
        Step::Send(s) => {
            let payload = crate::dut::payload(s.bytes.0 as usize);
            // SAFETY: payload is valid for its length.
            let rc = unsafe {
                libc::send(
                    fd,
                    payload.as_ptr().cast(),
                    payload.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            done(format!("{} bytes", s.bytes.0), rc as i64, rc.to_string())
        }
        Step::Recv(r) => {
            let mut buf = vec![0u8; r.max.0 as usize];
            // SAFETY: buf is valid for writes of its length.
            let rc = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            done(format!("max {}", r.max.0), rc as i64, rc.to_string())
        }
        Step::Close => {
            // SAFETY: closing our own descriptor.
            let rc = unsafe { libc::close(fd) };
            done(String::new(), i64::from(rc), rc.to_string())
        }
        Step::WaitMs(ms) => done(format!("{ms} ms"), 0, "0".into()),
    }
}

/// Connects `count` times, one after another, from the dut namespace's kernel to `peer`
/// (a real listener), closing each at once; returns the time it took. For the
/// connect-rate benchmark.
///
/// Each connection is the leanest a blocking client makes: `socket`, `setsockopt`
/// (`SO_SNDTIMEO`, so a lost listener ends the loop in 5 s rather than after the SYN
/// retries), `connect`, `close`. (`TcpStream::connect_timeout` makes seven calls: it
/// connects nonblocking and waits in `poll`.)
pub fn connect_loop(
    topology: &Topology,
    peer: std::net::SocketAddrV4,
    count: usize,
) -> Result<Duration, String> {
    use socket2::{Domain, Socket, Type};
    topology
        .dut
        .run(move || -> Result<Duration, String> {
            crate::priority::realtime_priority();
            let peer = peer.into();
            let started = std::time::Instant::now();
            for i in 0..count {
                let failed = |e: std::io::Error| format!("kernel connect #{i}: {e}");
                let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(failed)?;
                socket
                    .set_write_timeout(Some(Duration::from_secs(5)))
                    .map_err(failed)?;
                socket.connect(&peer).map_err(failed)?;
            }
            Ok(started.elapsed())
        })
        .map_err(|e| e.to_string())?
}
