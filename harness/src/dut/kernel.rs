//! `KernelDut`: each step is a real system call on a TCP socket in the dut namespace.
//!
//! Calls go through `libc` directly, not a safer wrapper, because the scenarios need exactly
//! what a C program can pass (an address length of 1, an `AF_INET6` address on an IPv4
//! socket) and the exact errno back. A watchdog interrupts a call that outlives the case's
//! time limit with a signal whose handler does nothing and is installed without
//! `SA_RESTART`, so the blocked call returns EINTR and the thread ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::case::Case;
use crate::dut::api::{ConnectLoopError, Dut, DutError, Running};
use crate::dut::steps::{self, CallResult, Failure, OptValue, SocketApi};
use crate::linux::errno;
use crate::net::topology::Topology;

/// The host kernel as the device under test.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelDut;

impl Dut for KernelDut {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn about(&self) -> String {
        format!(
            "Linux {}, the host's kernel, through its own sockets",
            crate::sys::host::kernel_release()
        )
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run_steps(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        install_interrupt_handler();
        let abort = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let steps = case.steps.clone();
        let target = steps::Target::of(&topology.spec);
        let abort2 = abort.clone();
        let handle = topology.dut.spawn("dut-kernel", move || {
            // SAFETY: pthread_self has no preconditions.
            let _ = tid_tx.send(unsafe { libc::pthread_self() });
            let mut socket = KernelSocket {
                fd: -1,
                abort: &abort2,
            };
            let log = steps::interpret(&mut socket, &steps, target);
            drop(socket);
            let _ = done_tx.send(());
            log
        })?;
        let tid = tid_rx.recv().map_err(|_| DutError::Panicked)?;
        let limit = Duration::from_secs_f64(case.time_limit_s.0);
        match crate::sys::interrupt::recv_timeout(&done_rx, limit) {
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

/// The errno name after a failed call.
fn last_errno() -> Failure {
    let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    Failure::Errno(errno::name(code))
}

/// A sockaddr's bytes with at least a `sockaddr_storage` (128 bytes) behind the pointer,
/// so an addrlen the kernel accepts never makes it read past our buffer.
fn padded(addr: &[u8]) -> Vec<u8> {
    let mut bytes = addr.to_vec();
    bytes.resize(bytes.len().max(128), 0);
    bytes
}

/// A syscall's return value, or its errno when it is negative.
fn checked<T: Into<i64> + Copy>(rc: T) -> CallResult<T> {
    if rc.into() < 0 {
        Err(last_errno())
    } else {
        Ok(rc)
    }
}

/// The kernel's socket API on one descriptor: each method is the system call itself.
struct KernelSocket<'a> {
    /// `-1` before `socket` and after a successful `close`.
    fd: i32,
    /// Set once the case's time limit passed; the watchdog's signal makes the call in
    /// progress return EINTR.
    abort: &'a AtomicBool,
}

impl SocketApi for KernelSocket<'_> {
    fn socket(&mut self, domain: steps::Domain) -> CallResult<i64> {
        let domain = match domain {
            steps::Domain::Inet => libc::AF_INET,
            steps::Domain::Inet6 => libc::AF_INET6,
        };
        // SAFETY: plain socket(2).
        self.fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        checked(self.fd).map(i64::from)
    }

    fn set_nonblocking(&mut self, on: bool) -> CallResult<()> {
        let fd = self.fd;
        // SAFETY: fcntl on our descriptor.
        let rc = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                flags
            } else if on {
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
            } else {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK)
            }
        };
        checked(rc).map(drop)
    }

    fn setsockopt(&mut self, level: i32, name: i32, value: &[u8]) -> CallResult<()> {
        // SAFETY: value is valid for its length.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                level,
                name,
                value.as_ptr().cast(),
                value.len() as u32,
            )
        };
        checked(rc).map(drop)
    }

    fn getsockopt(&mut self, level: i32, name: i32) -> CallResult<OptValue> {
        let mut value: i32 = 0;
        let mut len: libc::socklen_t = 4;
        // SAFETY: value and len are live and sized for an int option.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                level,
                name,
                (&mut value as *mut i32).cast(),
                &mut len,
            )
        };
        checked(rc).map(|_| OptValue::Int(value))
    }

    fn bind(&mut self, addr: &[u8]) -> CallResult<()> {
        let bytes = padded(addr);
        // SAFETY: bytes is valid for at least `addr.len()` bytes.
        let rc = unsafe { libc::bind(self.fd, bytes.as_ptr().cast(), addr.len() as u32) };
        checked(rc).map(drop)
    }

    fn connect(&mut self, addr: &[u8]) -> CallResult<()> {
        let bytes = padded(addr);
        // SAFETY: bytes is valid for at least `addr.len()` bytes.
        let rc = unsafe { libc::connect(self.fd, bytes.as_ptr().cast(), addr.len() as u32) };
        checked(rc).map(drop)
    }

    fn poll(&mut self, events: u32, timeout_ms: i32) -> CallResult<u32> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: events as i16,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        checked(rc).map(|rc| if rc > 0 { pfd.revents as u16 as u32 } else { 0 })
    }

    fn send(&mut self, data: &[u8]) -> CallResult<usize> {
        // SAFETY: data is valid for its length.
        let rc = unsafe {
            libc::send(
                self.fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        checked(rc as i64).map(|n| n as usize)
    }

    fn recv(&mut self, max: usize) -> CallResult<usize> {
        let mut buf = vec![0u8; max];
        // SAFETY: buf is valid for writes of its length.
        let rc = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        checked(rc as i64).map(|n| n as usize)
    }

    fn close(&mut self) -> CallResult<()> {
        // SAFETY: closing our own descriptor.
        let rc = unsafe { libc::close(self.fd) };
        checked(rc)?;
        self.fd = -1;
        Ok(())
    }

    /// Sleeps for `ms`, in slices, so an abort is noticed quickly.
    fn wait(&mut self, ms: u64) -> CallResult<()> {
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        while !self.abort.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
}

impl Drop for KernelSocket<'_> {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // The case ended with the socket open: close it so the namespace can go.
            // SAFETY: fd is our socket.
            unsafe { libc::close(self.fd) };
        }
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
) -> Result<Duration, ConnectLoopError> {
    use socket2::{Domain, Socket, Type};
    topology
        .dut
        .run(move || -> Result<Duration, ConnectLoopError> {
            crate::sys::priority::realtime_priority();
            let peer = peer.into();
            let started = std::time::Instant::now();
            for i in 0..count {
                let failed = |source| ConnectLoopError::Kernel { index: i, source };
                let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(failed)?;
                socket
                    .set_write_timeout(Some(Duration::from_secs(5)))
                    .map_err(failed)?;
                socket.connect(&peer).map_err(failed)?;
            }
            Ok(started.elapsed())
        })?
}
