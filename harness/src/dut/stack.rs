//! `StackDut`: tcptwin-stack as the device under test, attached through AF_PACKET to the
//! veth of its own dut namespace (whose kernel holds no address there, so it stays silent).
//!
//! The stack gets the same MAC, address, MTU and routes the kernel would have had, and the
//! sysctls as the dut namespace's `/proc/sys` shows them after the case wrote its own, so
//! both implementations start from the same configuration. Its driver runs on a thread in
//! the dut namespace under a single-threaded tokio runtime, and keeps running after the last
//! step (a stack has to keep answering the peer, as a kernel does by itself) until the
//! runner stops it.

use std::net::SocketAddrV4;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tcptwin_stack::driver::{read_config, Driver};
use tcptwin_stack::packet_socket::{PacketSocket, Receiver};
use tcptwin_stack::socket::poll as pollbits;
use tcptwin_stack::{
    Config, Errno, EthernetAddress, Interface, Route, RouteKind, SockAddr, SockOpt, SockOptName,
    SockOptValue, Stack,
};

use crate::capture::realtime_ns;
use tcptwin_stack::config::{Mutation, Profile};

use crate::case::{Case, GetOpt, Step};
use crate::dut::{
    payload, poll_events, poll_names, raw_getopt, raw_sockaddr, raw_sockopt, record, CallRecord,
    Dut, DutError, Running,
};
use crate::errno;
use crate::netlink;
use crate::topology::{Topology, TopologySpec, DUT_IF, DUT_MAC};

/// tcptwin's own stack as the device under test.
#[derive(Debug, Default, Clone, Copy)]
pub struct StackDut {
    /// The kernel version whose behaviour the stack follows where versions differ
    /// (`tcptwin run --profile`); 6.18, the host's, by default.
    pub profile: Profile,
    /// A deliberate bug to give the stack (`--mutation`), to show that tcptwin catches it.
    pub mutation: Option<Mutation>,
}

/// What a stack in the DUT namespace starts from (call it there): a packet socket on the
/// veth (its receiver made ahead with the blank, if there is one, else made now), the
/// namespace's sysctls as `adjust` leaves them, and a runtime to drive it on.
fn stack_parts(
    receiver: Option<Receiver>,
    adjust: impl FnOnce(&mut Config),
) -> Result<(PacketSocket, Config, tokio::runtime::Runtime), String> {
    let sock = match receiver {
        Some(receiver) => PacketSocket::bind(DUT_IF, receiver),
        None => PacketSocket::open(DUT_IF),
    }
    .map_err(|e| format!("AF_PACKET on {DUT_IF}: {e}"))?;
    let mut config = read_config(Path::new("/proc/sys"), Some(DUT_IF))
        .map_err(|e| format!("reading sysctls: {e}"))?;
    config.jiffies_offset = jiffies_offset();
    adjust(&mut config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    Ok((sock, config, runtime))
}

/// The stack on the topology's address and routes, and its driver (inside the runtime).
fn driver_on(spec: &TopologySpec, config: Config, sock: PacketSocket) -> Result<Driver, String> {
    let stack = Stack::new(config, interface(spec), routes(spec), seed());
    Driver::new(stack, sock).map_err(|e| format!("driver: {e}"))
}

/// Steps run until this fires (the case's time limit); the call in progress returns EINTR,
/// as the kernel DUT's watchdog signal makes it.
type Cancel = Arc<tokio::sync::Notify>;

impl Dut for StackDut {
    fn name(&self) -> &'static str {
        // A mutated stack says so in every report line.
        match self.mutation {
            None => "stack",
            Some(Mutation::UnclampedWscale) => "stack[unclamped-wscale]",
            Some(Mutation::NoMinSndMss) => "stack[no-min-snd-mss]",
        }
    }

    fn kernel_owns_address(&self) -> bool {
        false
    }

    fn expectations_apply(&self) -> bool {
        // The cases' expectations were measured on Linux 6.18.
        self.profile == Profile::V6_18
    }

    fn run(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        let (calls_tx, calls_rx) = mpsc::channel::<Vec<CallRecord>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let cancel: Cancel = Arc::new(tokio::sync::Notify::new());
        let spec = topology.spec.clone();
        let steps = case.steps.clone();
        let cancel2 = cancel.clone();
        let (profile, mutation) = (self.profile, self.mutation);
        let receiver = topology.dut_receiver.take();
        let handle = topology
            .dut
            .spawn("dut-stack", move || -> Result<(), String> {
                let (sock, config, runtime) = stack_parts(receiver, |config| {
                    *config = std::mem::take(config).with_profile(profile);
                    config.mutation = mutation;
                })?;
                runtime.block_on(async move {
                let mut driver = driver_on(&spec, config, sock)?;
                let calls = run_steps(&mut driver, &steps, &spec, &cancel2).await;
                let _ = calls_tx.send(calls);
                let mut stop_rx = stop_rx;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return Ok(()),
                        turned = driver.turn(None) => turned.map_err(|e| format!("driver: {e}"))?,
                    }
                }
            })
            })?;
        let stop = move || {
            let _ = stop_tx.send(());
        };
        let limit = Duration::from_secs_f64(case.time_limit_s.0);
        match crate::interrupt::recv_timeout(&calls_rx, limit) {
            Ok(calls) => {
                // The stack's thread ends by itself once stopped; its packet socket's close
                // waits for a grace period, so it is not joined here (see reaper).
                let stopper = move || {
                    stop();
                    crate::reaper::dispose(handle);
                };
                Ok(Running {
                    calls,
                    stop: Some(Box::new(stopper)),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                cancel.notify_one();
                Err(crate::dut::timed_out(
                    &calls_rx,
                    stop,
                    handle,
                    case.time_limit_s.0,
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(crate::dut::ended_early(handle, "stack"))
            }
        }
    }
}

/// The stack's interface: the kernel DUT's MAC, address and MTU.
fn interface(spec: &TopologySpec) -> Interface {
    Interface {
        mac: EthernetAddress(DUT_MAC),
        addr: spec.dut_ip,
        prefix_len: spec.prefix,
        mtu: spec.mtu,
    }
}

/// The case's extra routes (the connected one comes with the interface).
fn routes(spec: &TopologySpec) -> Vec<Route> {
    spec.routes
        .iter()
        .map(|r| {
            let mut route = Route::new(r.dst, r.prefix, r.via);
            route.kind = match r.kind {
                netlink::RouteKind::Unicast => RouteKind::Unicast,
                netlink::RouteKind::Unreachable => RouteKind::Unreachable,
                netlink::RouteKind::Prohibit => RouteKind::Prohibit,
                netlink::RouteKind::Blackhole => RouteKind::Blackhole,
            };
            route.mtu = r.mtu;
            route.advmss = r.advmss;
            route.src = r.src;
            route
        })
        .collect()
}

/// The kernel's jiffies against the stack's ticks, measured once per process (a per-boot
/// constant): without it the stack's timers fire within a wheel granularity of the
/// kernel's, but on other bucket edges (up to 32 ms apart for a 1 s RTO). Call it before
/// the runs start, so the first run does not spend the measurement's ≤30 ms.
pub fn jiffies_offset() -> u64 {
    static OFFSET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        tcptwin_stack::driver::kernel_jiffies_offset().unwrap_or_else(|| {
            tracing::warn!("could not measure the kernel's jiffies; stack timers use offset 0");
            0
        })
    })
}

/// A fresh secret for each run, as a booted kernel has its own (ISNs must differ).
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        return realtime_ns() as u64;
    }
    u64::from_ne_bytes(bytes)
}

fn failed<T>(r: &Result<T, Errno>) -> Option<String> {
    r.as_ref().err().map(|e| e.name().to_string())
}

/// Runs every step; a cancelled call is logged as EINTR and ends the steps.
async fn run_steps(
    driver: &mut Driver,
    steps: &[Step],
    spec: &TopologySpec,
    cancel: &Cancel,
) -> Vec<CallRecord> {
    let start = realtime_ns();
    let h = driver.stack().socket();
    let mut log = vec![record(
        "socket",
        "AF_INET, SOCK_STREAM".into(),
        3,
        None,
        start,
        "fd".into(),
    )];
    let mut nonblocking = false;
    for step in steps {
        let start = realtime_ns();
        let entry = tokio::select! {
            entry = call(driver, h, step, spec, &mut nonblocking, start) => entry,
            _ = cancel.notified() => {
                log.push(record(step.call_name(), "(interrupted)".into(), -1, Some("EINTR".into()), start, String::new()));
                break;
            }
        };
        if let Some(entry) = entry {
            log.push(entry);
        }
    }
    log
}

/// Makes one call on the stack; `None` for a pause.
async fn call(
    driver: &mut Driver,
    h: tcptwin_stack::SocketHandle,
    step: &Step,
    spec: &TopologySpec,
    nonblocking: &mut bool,
    start: i64,
) -> Option<CallRecord> {
    let name = step.call_name();
    let unit = |args: String, r: Result<(), Errno>| {
        let ret = if r.is_ok() { 0 } else { -1 };
        record(name, args, ret, failed(&r), start, ret.to_string())
    };
    let io_failed = |e: std::io::Error| {
        record(
            name,
            format!("(driver: {e})"),
            -1,
            Some("EIO".into()),
            start,
            String::new(),
        )
    };
    // send and recv: a byte count, or the errno, or a driver failure.
    let counted = |args: String, r: std::io::Result<Result<usize, Errno>>| match r {
        Ok(r) => {
            let ret = r.as_ref().map_or(-1, |n| *n as i64);
            record(name, args, ret, failed(&r), start, ret.to_string())
        }
        Err(e) => io_failed(e),
    };
    Some(match step {
        Step::WaitMs(ms) => {
            if let Err(e) = driver.settle(Duration::from_millis(*ms)).await {
                return Some(io_failed(e));
            }
            return None;
        }
        Step::Nonblocking(on) => {
            let r = driver.stack().setsockopt(h, SockOpt::NonBlocking(*on));
            if r.is_ok() {
                *nonblocking = *on;
            }
            unit(
                if *on {
                    "O_NONBLOCK on"
                } else {
                    "O_NONBLOCK off"
                }
                .into(),
                r,
            )
        }
        Step::Setsockopt(option) => {
            let (level, opt_name, bytes, text) = raw_sockopt(option);
            let r = SockOpt::from_raw(level, opt_name, &bytes)
                .and_then(|o| driver.stack().setsockopt(h, o));
            unit(text, r)
        }
        Step::Getsockopt(which) => {
            let (_, _, label) = raw_getopt(*which);
            let opt = match which {
                GetOpt::SoError => SockOptName::SoError,
                GetOpt::TcpMaxseg => SockOptName::TcpMaxSeg,
                GetOpt::SoRcvbuf => SockOptName::SoRcvBuf,
            };
            let r = driver.stack().getsockopt(h, opt);
            let outcome = match (&r, which) {
                (Ok(SockOptValue::Int(v)), GetOpt::SoError) if *v != 0 => errno::name(*v),
                (Ok(SockOptValue::Int(v)), _) => v.to_string(),
                (Ok(SockOptValue::Duration(d)), _) => format!("{}ms", d.as_millis()),
                (Err(_), _) => String::new(),
            };
            let ret = if r.is_ok() { 0 } else { -1 };
            record(name, label.into(), ret, failed(&r), start, outcome)
        }
        Step::Bind(bind) => {
            let sa = SockAddr::inet(SocketAddrV4::new(bind.addr, bind.port));
            unit(
                format!("{}:{}", bind.addr, bind.port),
                driver.stack().bind(h, &sa),
            )
        }
        Step::Connect(c) => {
            let (bytes, text) = raw_sockaddr(c, spec.peer_ip);
            match driver.connect(h, &SockAddr::from_bytes(&bytes)).await {
                Ok(r) => unit(text, r),
                Err(e) => io_failed(e),
            }
        }
        Step::Poll(p) => {
            let events = poll_events(&p.events);
            let wanted = events | pollbits::POLLERR | pollbits::POLLHUP;
            let deadline = (p.timeout_ms >= 0)
                .then(|| driver.now() + Duration::from_millis(p.timeout_ms as u64));
            let woke = driver
                .run_until(deadline, |s, _| s.poll(h).ok().filter(|m| m & wanted != 0))
                .await;
            let revents = match woke {
                Ok(Some(mask)) => mask & wanted,
                Ok(None) => 0,
                Err(e) => return Some(io_failed(e)),
            };
            let ret = i64::from(revents != 0);
            let outcome = if revents != 0 {
                poll_names(revents)
            } else {
                "0".into()
            };
            record(
                name,
                format!("{}, {} ms", poll_names(events), p.timeout_ms),
                ret,
                None,
                start,
                outcome,
            )
        }
        Step::Send(s) => {
            let data = payload(s.bytes.0 as usize);
            let r = if *nonblocking {
                let now = driver.now();
                let r = driver.stack().send(now, h, &data);
                driver.flush().map(|_| r)
            } else {
                driver.send(h, &data).await
            };
            counted(format!("{} bytes", s.bytes.0), r)
        }
        Step::Recv(rv) => {
            let mut buf = vec![0u8; rv.max.0 as usize];
            let r = if *nonblocking {
                let now = driver.now();
                Ok(driver.stack().recv(now, h, &mut buf))
            } else {
                driver.recv(h, &mut buf).await
            };
            counted(format!("max {}", rv.max.0), r)
        }
        Step::Close => {
            let now = driver.now();
            let r = driver.stack().close(now, h);
            if let Err(e) = driver.flush() {
                return Some(io_failed(e));
            }
            unit(String::new(), r)
        }
    })
}

/// Connects `count` times, one after another, from tcptwin-stack in the dut namespace to
/// `peer` (a real listener), closing each at once; returns the time it took. For the
/// connect-rate benchmark.
pub fn connect_loop(
    topology: &Topology,
    peer: SocketAddrV4,
    count: usize,
) -> Result<Duration, String> {
    let spec = topology.spec.clone();
    let receiver = topology.dut_receiver.take();
    topology
        .dut
        .run(move || -> Result<Duration, String> {
            crate::priority::realtime_priority();
            let (sock, config, runtime) = stack_parts(receiver, |_| {})?;
            runtime.block_on(async move {
                let mut driver = driver_on(&spec, config, sock)?;
                let started = std::time::Instant::now();
                for i in 0..count {
                    let h = driver.stack().socket();
                    driver
                        .connect(h, &SockAddr::inet(peer))
                        .await
                        .map_err(|e| format!("driver: {e}"))?
                        .map_err(|e| format!("stack connect #{i}: {}", e.name()))?;
                    let now = driver.now();
                    let _ = driver.stack().close(now, h);
                    driver.flush().map_err(|e| format!("driver: {e}"))?;
                }
                let elapsed = started.elapsed();
                crate::reaper::dispose(driver);
                Ok(elapsed)
            })
        })
        .map_err(|e| e.to_string())?
}
