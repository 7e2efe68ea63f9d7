//! The thin I/O driver (not part of the sans-IO core): frames through a
//! [`PacketSocket`], tokio timers on [`Stack::poll_timeout`], blocking-style
//! wrappers for the socket calls, and [`read_config`] for a namespace's
//! `/proc/sys`.
//!
//! The [`Driver`] can run on any thread once its socket is open (see
//! [`PacketSocket::open`] for the namespace it must be opened in).

use crate::config::{Config, ConfigError, SYSCTL_NAMES};
use crate::errno::Errno;
use crate::packet_socket::{PacketSocket, BATCH};
use crate::socket::SockAddr;
use crate::stack::{Connect, SocketHandle, Stack};
use crate::time::Instant;
use std::io;
use std::path::Path;
use tokio::io::unix::AsyncFd;

/// `clock_gettime(CLOCK_MONOTONIC)` as an [`Instant`]: the clock the kernel's
/// TCP stamps come from (`tcp_clock_ns` → `ktime_get_ns`), so the stack's
/// TSval is the kernel's when `tcp_timestamps=2` (no `secure_tcp_ts_off`).
pub fn monotonic_now() -> Instant {
    // SAFETY: zeroed timespec is valid; clock_gettime only writes into it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and pointer. CLOCK_MONOTONIC cannot fail on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Instant::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The kernel's `jiffies` minus `CLOCK_MONOTONIC` in ticks ([`Config::jiffies_offset`]),
/// measured from `times(2)`, which any user may call: it returns
/// `jiffies_64_to_clock_t(jiffies_64)`, `jiffies · TICK_NSEC / (NSEC_PER_SEC / USER_HZ)`
/// rounded down (kernel/sys.c, kernel/time/time.c). Where its value steps from `c − 1` to
/// `c`, jiffies has just become the least `j` with `j · TICK_NSEC ≥ c · NSEC_PER_SEC /
/// USER_HZ`; ticks fall on multiples of `TICK_NSEC` of `CLOCK_MONOTONIC`
/// (`tick_init_jiffy_update`), so the monotonic clock read right there names the tick.
/// Spins for up to three steps of `times` (30 ms at `USER_HZ` 100) and returns the offset
/// that two steps agree on, or None.
pub fn kernel_jiffies_offset() -> Option<u64> {
    use crate::time::NANOS_PER_JIFFY;
    // SAFETY: sysconf has no preconditions.
    let user_hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if user_hz <= 0 {
        return None;
    }
    let ns_per_clock_tick = 1_000_000_000 / user_hz as u64;
    // SAFETY: times(2) accepts a null buffer on Linux and then only returns the count.
    let clock_ticks = || unsafe { libc::times(std::ptr::null_mut()) } as u64;
    let give_up = monotonic_now() + std::time::Duration::from_millis(100);
    let mut seen: Option<u64> = None;
    let mut before = clock_ticks();
    while monotonic_now() < give_up {
        let c = clock_ticks();
        let now = monotonic_now();
        if c == before {
            continue;
        }
        let stepped_by_one = c == before.wrapping_add(1);
        before = c;
        if !stepped_by_one {
            continue;
        }
        let jiffies = (c * ns_per_clock_tick).div_ceil(NANOS_PER_JIFFY);
        let offset = jiffies.wrapping_sub(now.jiffies());
        if seen == Some(offset) {
            return Some(offset);
        }
        seen = Some(offset);
    }
    None
}

/// Send everything `stack` has queued on `sock`, in order: one frame with `send`, more
/// with `sendmmsg` (one system call instead of one per frame).
fn flush(stack: &mut Stack, sock: &PacketSocket) -> io::Result<()> {
    let now = monotonic_now();
    let Some(first) = stack.poll_transmit(now) else {
        return Ok(());
    };
    let Some(second) = stack.poll_transmit(now) else {
        return match sock.send(&first) {
            // Larger than the device MTU (a route `mtu` metric above it):
            // the kernel's veth drops such a frame (`is_skb_forwardable`),
            // AF_PACKET refuses it. Either way it is lost, not an error.
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Ok(()),
            r => r,
        };
    };
    let mut frames = vec![first, second];
    frames.extend(std::iter::from_fn(|| stack.poll_transmit(now)));
    sock.send_batch(&frames)
}

/// A stack attached to a [`PacketSocket`], driven by tokio.
#[derive(Debug)]
pub struct Driver {
    stack: Stack,
    sock: AsyncFd<PacketSocket>,
}

impl Driver {
    /// Attach `stack` to `sock` (inside a tokio runtime). The stack's clock is
    /// `CLOCK_MONOTONIC` ([`monotonic_now`]): its epoch is the monotonic
    /// clock's zero (boot), as for the kernel's TCP timestamps.
    pub fn new(stack: Stack, sock: PacketSocket) -> io::Result<Self> {
        // SAFETY: `PacketSocket` owns its fd (an `OwnedFd` that is never
        // replaced), so it stays open and the same for the AsyncFd's lifetime.
        let sock = unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Driver { stack, sock })
    }

    /// The stack's current time: `CLOCK_MONOTONIC`.
    pub fn now(&self) -> Instant {
        monotonic_now()
    }

    /// The stack.
    pub fn stack(&mut self) -> &mut Stack {
        &mut self.stack
    }

    /// A stack deadline as a tokio instant (both clocks are `CLOCK_MONOTONIC`;
    /// `std::time::Instant` is opaque, so go through the distance from now).
    fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        let (mono, std_now) = (self.now(), tokio::time::Instant::now());
        std_now + t.saturating_duration_since(mono)
    }

    /// Send everything the stack has queued.
    pub fn flush(&mut self) -> io::Result<()> {
        flush(&mut self.stack, self.sock.get_ref())
    }

    /// Read and handle every frame waiting in the socket's ring, [`BATCH`] at a
    /// time, and send the answers of a batch together, in the order they were made. The kernel's
    /// softirq answers each segment before it sees the next (tcp_v4_rcv), but
    /// the frames of one batch were all queued before the first could be
    /// answered, so the wire shows the same order either way; what the
    /// batch saves is a system call per answer. Returns false if none was
    /// waiting. Frames that arrive meanwhile (answers to this batch's) may be
    /// left for the next call.
    fn drain(&mut self) -> io::Result<bool> {
        let mut any = false;
        loop {
            let stack = &mut self.stack;
            let n = self.sock.get_mut().read(BATCH, |frame| {
                stack.handle_frame(monotonic_now(), frame);
            });
            if n == 0 {
                return Ok(any);
            }
            flush(&mut self.stack, self.sock.get_ref())?;
            any = true;
            // A short batch emptied the ring.
            if n < BATCH {
                return Ok(any);
            }
        }
    }

    /// Wait for one event (a frame, a stack timer, or `deadline`) and process it.
    ///
    /// Frames are read before waiting: over a veth the answer to what was
    /// just sent is usually queued already (the peer ran in our send's
    /// softirq), and reading it saves an epoll round trip. Readiness is
    /// edge-triggered: a frame arriving after a read that emptied the ring
    /// raises a new edge (`tpacket_rcv` → `sk_data_ready`), so clearing
    /// readiness then loses nothing.
    pub async fn turn(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        self.flush()?;
        // A pending socket error (ENETDOWN once the veth is gone) is not
        // reported here: waiting for readiness never saw it either (tokio's
        // READABLE interest ignores EPOLLERR), only a read after a frame did.
        if !self.drain().unwrap_or(false) {
            let wake = match (self.stack.poll_timeout(), deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep_until = wake.map(|w| self.to_tokio(w));
            tokio::select! {
                r = self.sock.readable() => {
                    let mut guard = r?;
                    guard.clear_ready();
                    drop(guard);
                    self.drain()?;
                }
                _ = async { match sleep_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
            }
        }
        let now = self.now();
        if self.stack.poll_timeout().is_some_and(|t| t <= now) {
            self.stack.handle_timeout(now);
        }
        self.flush()
    }

    /// Drive the stack until `done` returns `Some` or `deadline` passes (None).
    pub async fn run_until<T>(
        &mut self,
        deadline: Option<Instant>,
        mut done: impl FnMut(&mut Stack, Instant) -> Option<T>,
    ) -> io::Result<Option<T>> {
        loop {
            let now = self.now();
            if let Some(v) = done(&mut self.stack, now) {
                self.flush()?;
                return Ok(Some(v));
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            self.turn(deadline).await?;
        }
    }

    /// Run for `d`, handling frames and timers.
    pub async fn settle(&mut self, d: std::time::Duration) -> io::Result<()> {
        let until = self.now() + d;
        self.run_until(Some(until), |_, _| None::<()>)
            .await
            .map(|_| ())
    }

    /// `connect()` with the kernel's blocking semantics for a blocking socket
    /// (waits for the outcome, or returns the preset EINPROGRESS/EALREADY when
    /// `SO_SNDTIMEO` runs out) and immediate ones for a nonblocking socket.
    pub async fn connect(
        &mut self,
        h: SocketHandle,
        addr: &SockAddr,
    ) -> io::Result<Result<(), Errno>> {
        let now = self.now();
        let r = self.stack.connect(now, h, addr);
        self.flush()?;
        match r {
            Connect::Done(r) => Ok(r),
            Connect::Wait {
                deadline,
                on_timeout,
            } => {
                let res = self
                    .run_until(deadline, |s, now| s.connect_wait(now, h))
                    .await?;
                Ok(res.unwrap_or(Err(on_timeout)))
            }
        }
    }

    /// Blocking `send()` of all of `data` (waits while connecting or while
    /// the send queue drains is not modelled: the stack buffers everything).
    pub async fn send(&mut self, h: SocketHandle, data: &[u8]) -> io::Result<Result<usize, Errno>> {
        let r = self
            .run_until(None, |s, now| match s.send(now, h, data) {
                Err(Errno::EAGAIN) => None,
                r => Some(r),
            })
            .await?;
        Ok(r.unwrap_or(Err(Errno::EAGAIN)))
    }

    /// Blocking `recv()`.
    pub async fn recv(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> io::Result<Result<usize, Errno>> {
        let mut out = vec![0u8; buf.len()];
        let r = self
            .run_until(None, |s, now| match s.recv(now, h, &mut out) {
                Err(Errno::EAGAIN) => None,
                r => Some(r),
            })
            .await?
            .unwrap_or(Err(Errno::EAGAIN));
        if let Ok(n) = r {
            buf[..n].copy_from_slice(&out[..n]);
        }
        Ok(r)
    }

    /// `close()`, then keep driving until the connection's FIN exchange is
    /// over or `linger` passes.
    pub async fn close(
        &mut self,
        h: SocketHandle,
        linger: std::time::Duration,
    ) -> io::Result<Result<(), Errno>> {
        let now = self.now();
        let r = self.stack.close(now, h);
        self.flush()?;
        let until = self.now() + linger;
        self.run_until(Some(until), |s, _| s.poll_timeout().is_none().then_some(()))
            .await?;
        Ok(r)
    }
}

/// Read every sysctl the stack knows from a `/proc/sys` directory (e.g.
/// `/proc/sys` as seen from a thread inside the namespace). Missing files
/// keep their defaults. `dev` selects the `neigh/<dev>` and `conf/<dev>`
/// directories (default `default`), for IPv4 and IPv6 alike.
pub fn read_config(proc_sys: &Path, dev: Option<&str>) -> Result<Config, ReadConfigError> {
    let mut c = Config::default();
    for name in SYSCTL_NAMES {
        let mut rel = name.replace('.', "/");
        if let Some(d) = dev {
            rel = rel.replace("neigh/default/", &format!("neigh/{d}/"));
            rel = rel.replace("conf/default/", &format!("conf/{d}/"));
        }
        let path = proc_sys.join(&rel);
        match std::fs::read_to_string(&path) {
            Ok(v) => c.set(name, v.trim()).map_err(ReadConfigError::Config)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ReadConfigError::Io(path.display().to_string(), e)),
        }
    }
    Ok(c)
}

/// Why [`read_config`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadConfigError {
    /// A file could not be read.
    #[error("reading {0}: {1}")]
    Io(String, #[source] io::Error),
    /// A value was not accepted.
    #[error(transparent)]
    Config(ConfigError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/timer_list` (root only) prints the kernel's `jiffies` and the monotonic clock
    /// together; the offset measured through `times(2)` must name the same tick.
    #[test]
    fn the_jiffies_offset_matches_the_timer_list() {
        let measured = kernel_jiffies_offset().expect("times(2) steps within 100 ms");
        let Ok(list) = std::fs::read_to_string("/proc/timer_list") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "/proc/timer_list is not readable, and CI is set (a CI machine runs every test)"
            );
            eprintln!("SKIPPED the cross-check: /proc/timer_list is not readable");
            return;
        };
        let field = |key: &str| -> u64 {
            let at = list.find(key).expect(key) + key.len();
            let digits: String = list[at..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().expect(key)
        };
        let now_ns = field("now at ");
        let jiffies = field("\njiffies: ");
        let listed = jiffies.wrapping_sub(now_ns / crate::time::NANOS_PER_JIFFY);
        // The list reads the clock and jiffies a moment apart: at most one tick between.
        assert!(
            measured == listed
                || measured == listed.wrapping_add(1)
                || measured == listed.wrapping_sub(1),
            "times(2) gives {measured}, /proc/timer_list {listed}"
        );
    }

    #[test]
    fn read_config_from_a_tree() {
        let dir = std::env::temp_dir().join(format!("tcptwin-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net/ipv4/neigh/veth0")).unwrap();
        std::fs::write(dir.join("net/ipv4/tcp_syn_retries"), "3\n").unwrap();
        std::fs::write(dir.join("net/ipv4/tcp_rmem"), "4096\t87380\t6291456\n").unwrap();
        std::fs::write(dir.join("net/ipv4/neigh/veth0/mcast_solicit"), "5\n").unwrap();
        std::fs::create_dir_all(dir.join("net/ipv6/neigh/veth0")).unwrap();
        std::fs::create_dir_all(dir.join("net/ipv6/conf/veth0")).unwrap();
        std::fs::write(dir.join("net/ipv6/neigh/veth0/retrans_time_ms"), "250\n").unwrap();
        std::fs::write(dir.join("net/ipv6/conf/veth0/hop_limit"), "33\n").unwrap();
        std::fs::write(dir.join("net/ipv6/auto_flowlabels"), "0\n").unwrap();
        let c = read_config(&dir, Some("veth0")).unwrap();
        assert_eq!(
            (
                c.ndisc_retrans_time_ms,
                c.ipv6_hop_limit,
                c.ipv6_auto_flowlabels
            ),
            (250, 33, 0)
        );
        assert_eq!(c.tcp_syn_retries, 3);
        assert_eq!(c.tcp_rmem, [4096, 87380, 6291456]);
        assert_eq!(c.neigh_mcast_solicit, 5);
        assert_eq!(c.tcp_ecn, 2, "missing files keep defaults");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_this_hosts_proc_sys() {
        // The namespace the tests run in: whatever it holds must parse.
        if Path::new("/proc/sys/net/ipv4/tcp_syn_retries").exists() {
            read_config(Path::new("/proc/sys"), None).unwrap();
        }
    }

    #[test]
    fn the_clock_is_clock_monotonic() {
        // /proc/uptime's first field is CLOCK_BOOTTIME in centiseconds; it is
        // never behind CLOCK_MONOTONIC (they differ only by time suspended).
        let before = monotonic_now();
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::MAX);
        let after = monotonic_now();
        assert!(before <= after);
        assert!(before.as_millis() as f64 <= uptime * 1000.0 + 10.0);
        assert!(before.as_nanos() > 0);
    }
}
