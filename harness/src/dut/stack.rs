//! `StackDut`: tcptwin-stack as the device under test, attached through AF_PACKET to the
//! veth of its own dut namespace (whose kernel holds no address there, so it stays silent).
//!
//! The stack gets the same MAC, address, MTU and routes the kernel would have had, and the
//! sysctls as the dut namespace's `/proc/sys` shows them after the case wrote its own, so
//! both implementations start from the same configuration. Its driver runs on a thread in
//! the dut namespace under a single-threaded tokio runtime, and keeps running after the last
//! step (a stack has to keep answering the peer, as a kernel does by itself) until the
//! runner stops it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tcptwin_stack::driver::{read_config, Driver};
use tcptwin_stack::packet_socket::{PacketSocket, Receiver};
use tcptwin_stack::socket::poll as pollbits;
use tcptwin_stack::{
    Config, Errno, EthernetAddress, Interface, Route, Route6, RouteKind, SockAddr, SockOpt,
    SockOptName, SockOptValue, Stack,
};

use crate::observe::capture::realtime_ns;
use tcptwin_stack::config::{Mutation, Profile, SYSCTL_NAMES};

use crate::case::Case;
use crate::dut::api::{ConnectLoopError, Dut, DutError, Running, SetupError};
use crate::dut::steps::{self, CallResult, Failure, OptValue, SocketApi};
use crate::net::netlink;
use crate::net::topology::{Topology, TopologySpec, DUT_IF, DUT_MAC, IPV6_ON};
use crate::record::CallRecord;

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
) -> Result<(PacketSocket, Config, tokio::runtime::Runtime), SetupError> {
    let sock = match receiver {
        Some(receiver) => PacketSocket::bind(DUT_IF, receiver),
        None => PacketSocket::open(DUT_IF),
    }
    .map_err(|source| SetupError::PacketSocket {
        ifname: DUT_IF,
        source,
    })?;
    let mut config =
        read_config(Path::new("/proc/sys"), Some(DUT_IF)).map_err(SetupError::Sysctls)?;
    config.jiffies_offset = jiffies_offset();
    adjust(&mut config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)?;
    Ok((sock, config, runtime))
}

/// The stack on the topology's address and routes, and its driver (inside the runtime).
fn driver_on(
    spec: &TopologySpec,
    config: Config,
    sock: PacketSocket,
) -> Result<Driver, SetupError> {
    let ifindex = dut_ifindex()?;
    Driver::new(stack_on(spec, config, seed(), ifindex), sock).map_err(SetupError::Driver)
}

/// The `ifindex` of the DUT's interface in this namespace (call it there): the number a
/// `sin6_scope_id` names it by. The kernel DUT's namespace is built the same way, so its
/// eth0 has the same one.
fn dut_ifindex() -> Result<u32, SetupError> {
    let name = std::ffi::CString::new(DUT_IF).expect("no NUL in an interface name");
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(SetupError::Ifindex {
            ifname: DUT_IF,
            source: std::io::Error::last_os_error(),
        }),
        index => Ok(index),
    }
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

    fn run_steps(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
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
            .spawn("dut-stack", move || -> Result<(), SetupError> {
                let (sock, config, runtime) = stack_parts(receiver, |config| {
                    *config = std::mem::take(config).with_profile(profile);
                    config.mutation = mutation;
                })?;
                let mut driver = runtime.block_on(async { driver_on(&spec, config, sock) })?;
                let calls = steps::interpret(
                    &mut StackSocket {
                        runtime: &runtime,
                        driver: &mut driver,
                        cancel: cancel2,
                        handle: None,
                        nonblocking: false,
                    },
                    &steps,
                    steps::Target::of(&spec),
                );
                let _ = calls_tx.send(calls);
                runtime.block_on(async move {
                    let mut stop_rx = stop_rx;
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => return Ok(()),
                            turned = driver.turn(None) => turned.map_err(SetupError::Driver)?,
                        }
                    }
                })
            })?;
        let stop = move || {
            let _ = stop_tx.send(());
        };
        let limit = Duration::from_secs_f64(case.time_limit_s.0);
        match crate::sys::interrupt::recv_timeout(&calls_rx, limit) {
            Ok(calls) => {
                // The stack's thread ends by itself once stopped; its packet socket's close
                // waits for a grace period, so it is not joined here (see reaper).
                let stopper = move || {
                    stop();
                    crate::sys::reaper::dispose(handle);
                };
                Ok(Running {
                    calls,
                    stop: Some(Box::new(stopper)),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                cancel.notify_one();
                Err(crate::dut::api::timed_out(
                    &calls_rx,
                    stop,
                    handle,
                    case.time_limit_s.0,
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(crate::dut::api::ended_early(handle, "stack"))
            }
        }
    }
}

/// tcptwin-stack on a topology: its interface (known by `ifindex`) with the IPv4 address,
/// or the IPv6 one (`Stack::with_ipv6`), and the case's routes of that family. On an IPv6
/// network the stack's configuration gets what [`IPV6_ON`] gives the kernel DUT's eth0.
pub(super) fn stack_on(spec: &TopologySpec, mut config: Config, seed: u64, ifindex: u32) -> Stack {
    if spec.family.network_is_inet6() {
        ipv6_on(&mut config);
    }
    let mut stack = Stack::new(config, interface(spec), routes(spec), seed).with_ifindex(ifindex);
    if let Some(IpAddr::V6(addr)) = spec.dut_ip {
        stack = stack.with_ipv6(addr, spec.prefix);
    }
    for route in routes6(spec) {
        stack.add_route6(route);
    }
    stack
}

/// The settings of [`IPV6_ON`] the stack models (the names [`SYSCTL_NAMES`] lists, with
/// `default` for the device), set in `config` as the topology writes them on eth0.
fn ipv6_on(config: &mut Config) {
    for (name, value) in IPV6_ON {
        let generic = name.replace(&format!(".{DUT_IF}."), ".default.");
        if SYSCTL_NAMES.contains(&generic.as_str()) {
            config
                .set(name, value)
                .expect("IPV6_ON's values are ones the stack takes");
        }
    }
}

/// An IPv4 address of the topology (the IPv4 half of the stack's configuration).
fn v4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

/// An IPv6 address of the topology (the IPv6 half of the stack's configuration).
fn v6(addr: IpAddr) -> Option<Ipv6Addr> {
    match addr {
        IpAddr::V6(v6) => Some(v6),
        IpAddr::V4(_) => None,
    }
}

fn route_kind(kind: netlink::RouteKind) -> RouteKind {
    match kind {
        netlink::RouteKind::Unicast => RouteKind::Unicast,
        netlink::RouteKind::Unreachable => RouteKind::Unreachable,
        netlink::RouteKind::Prohibit => RouteKind::Prohibit,
        netlink::RouteKind::Blackhole => RouteKind::Blackhole,
    }
}

/// The case's IPv6 routes (the connected one comes with the address).
fn routes6(spec: &TopologySpec) -> Vec<Route6> {
    spec.routes
        .iter()
        .filter_map(|r| {
            let mut route = Route6::new(v6(r.dst)?, r.prefix, r.via.and_then(v6));
            route.kind = route_kind(r.kind);
            route.mtu = r.mtu;
            route.advmss = r.advmss;
            route.src = r.src.and_then(v6);
            Some(route)
        })
        .collect()
}

/// The stack's socket domain for the interpreter's.
pub(super) fn stack_domain(domain: steps::Domain) -> tcptwin_stack::Domain {
    match domain {
        steps::Domain::Inet => tcptwin_stack::Domain::Inet,
        steps::Domain::Inet6 => tcptwin_stack::Domain::Inet6,
    }
}

/// The stack's interface: the kernel DUT's MAC, address and MTU.
pub(super) fn interface(spec: &TopologySpec) -> Interface {
    Interface {
        mac: EthernetAddress(DUT_MAC),
        addr: spec.dut_ip.and_then(v4),
        prefix_len: spec.prefix,
        mtu: spec.mtu,
    }
}

/// The case's extra routes (the connected one comes with the interface).
pub(super) fn routes(spec: &TopologySpec) -> Vec<Route> {
    spec.routes
        .iter()
        .filter_map(|r| {
            let mut route = Route::new(v4(r.dst)?, r.prefix, r.via.and_then(v4));
            route.kind = route_kind(r.kind);
            route.mtu = r.mtu;
            route.advmss = r.advmss;
            route.initrwnd = r.initrwnd;
            route.src = r.src.and_then(v4);
            Some(route)
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

/// A stack's errno as the log names it.
fn errno(e: Errno) -> Failure {
    Failure::Errno(e.name().to_string())
}

/// The driver failed (its packet socket), not the call.
fn machinery(e: std::io::Error) -> Failure {
    Failure::Machinery(e.to_string())
}

/// Runs one call on the runtime until it returns or `cancel` fires (the case's time
/// limit), which makes it [`Failure::Interrupted`], as the kernel DUT's watchdog signal
/// makes a blocked syscall return EINTR.
fn cancellable<T>(
    runtime: &tokio::runtime::Runtime,
    cancel: &Cancel,
    call: impl std::future::Future<Output = CallResult<T>>,
) -> CallResult<T> {
    runtime.block_on(async {
        tokio::select! {
            result = call => result,
            _ = cancel.notified() => Err(Failure::Interrupted),
        }
    })
}

/// The stack's socket API on one socket, driven on the DUT thread's runtime: a blocking
/// call turns the driver (frames and timers) until the stack answers, as the kernel's
/// syscall sleeps on the socket's wait queue.
struct StackSocket<'a> {
    runtime: &'a tokio::runtime::Runtime,
    driver: &'a mut Driver,
    cancel: Cancel,
    /// `None` until `socket`.
    handle: Option<tcptwin_stack::SocketHandle>,
    /// Whether `O_NONBLOCK` is set: send and recv then return at once.
    nonblocking: bool,
}

impl StackSocket<'_> {
    fn handle(&self) -> CallResult<tcptwin_stack::SocketHandle> {
        self.handle.ok_or(Failure::Errno("EBADF".into()))
    }

    /// Runs `call` on the driver and the socket, cancellable.
    fn with<T>(
        &mut self,
        call: impl AsyncFnOnce(&mut Driver, tcptwin_stack::SocketHandle) -> CallResult<T>,
    ) -> CallResult<T> {
        let h = self.handle()?;
        let driver = &mut *self.driver;
        cancellable(self.runtime, &self.cancel, call(driver, h))
    }
}

impl SocketApi for StackSocket<'_> {
    fn socket(&mut self, domain: steps::Domain) -> CallResult<i64> {
        self.handle = Some(self.driver.stack().socket_in(stack_domain(domain)));
        // The kernel's first free descriptor in a fresh thread; logged, not compared.
        Ok(3)
    }

    fn set_nonblocking(&mut self, on: bool) -> CallResult<()> {
        self.with(async |driver, h| {
            let now = driver.now();
            driver
                .stack()
                .setsockopt(now, h, SockOpt::NonBlocking(on))
                .map_err(errno)
        })?;
        self.nonblocking = on;
        Ok(())
    }

    fn setsockopt(&mut self, level: i32, name: i32, value: &[u8]) -> CallResult<()> {
        self.with(async |driver, h| {
            SockOpt::from_raw(level, name, value)
                .and_then(|o| {
                    let now = driver.now();
                    driver.stack().setsockopt(now, h, o)
                })
                .map_err(errno)
        })
    }

    fn getsockopt(&mut self, level: i32, name: i32) -> CallResult<OptValue> {
        let opt = match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => SockOptName::SoError,
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => SockOptName::TcpMaxSeg,
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOptName::SoRcvBuf,
            _ => return Err(Failure::Errno("ENOPROTOOPT".into())),
        };
        self.with(async |driver, h| match driver.stack().getsockopt(h, opt) {
            Ok(SockOptValue::Int(v)) => Ok(OptValue::Int(v)),
            Ok(SockOptValue::Duration(d)) => Ok(OptValue::Duration(d)),
            Err(e) => Err(errno(e)),
        })
    }

    fn bind(&mut self, addr: &[u8]) -> CallResult<()> {
        self.with(async |driver, h| {
            driver
                .stack()
                .bind(h, &SockAddr::from_bytes(addr))
                .map_err(errno)
        })
    }

    fn connect(&mut self, addr: &[u8]) -> CallResult<()> {
        self.with(async |driver, h| {
            driver
                .connect(h, &SockAddr::from_bytes(addr))
                .await
                .map_err(machinery)?
                .map_err(errno)
        })
    }

    fn poll(&mut self, events: u32, timeout_ms: i32) -> CallResult<u32> {
        // POLLERR and POLLHUP are reported whether asked for or not, as poll(2) does.
        let wanted = events | pollbits::POLLERR | pollbits::POLLHUP;
        self.with(async |driver, h| {
            let deadline =
                (timeout_ms >= 0).then(|| driver.now() + Duration::from_millis(timeout_ms as u64));
            let woke = driver
                .run_until(deadline, |s, _| s.poll(h).ok().filter(|m| m & wanted != 0))
                .await
                .map_err(machinery)?;
            Ok(woke.map_or(0, |mask| mask & wanted))
        })
    }

    fn send(&mut self, data: &[u8]) -> CallResult<usize> {
        let nonblocking = self.nonblocking;
        self.with(async |driver, h| {
            let r = if nonblocking {
                let now = driver.now();
                let r = driver.stack().send(now, h, data);
                driver.flush().map(|_| r)
            } else {
                driver.send(h, data).await
            };
            r.map_err(machinery)?.map_err(errno)
        })
    }

    fn recv(&mut self, max: usize) -> CallResult<usize> {
        let nonblocking = self.nonblocking;
        self.with(async |driver, h| {
            let mut buf = vec![0u8; max];
            let r = if nonblocking {
                let now = driver.now();
                Ok(driver.stack().recv(now, h, &mut buf))
            } else {
                driver.recv(h, &mut buf).await
            };
            r.map_err(machinery)?.map_err(errno)
        })
    }

    fn close(&mut self) -> CallResult<()> {
        self.with(async |driver, h| {
            let now = driver.now();
            let r = driver.stack().close(now, h);
            driver.flush().map_err(machinery)?;
            r.map_err(errno)
        })
    }

    fn wait(&mut self, ms: u64) -> CallResult<()> {
        self.with(async |driver, _| {
            driver
                .settle(Duration::from_millis(ms))
                .await
                .map_err(machinery)
        })
    }
}

/// Connects `count` times, one after another, from tcptwin-stack in the dut namespace to
/// `peer` (a real listener), closing each at once; returns the time it took. For the
/// connect-rate benchmark.
pub fn connect_loop(
    topology: &Topology,
    peer: SocketAddrV4,
    count: usize,
) -> Result<Duration, ConnectLoopError> {
    let spec = topology.spec.clone();
    let receiver = topology.dut_receiver.take();
    topology
        .dut
        .run(move || -> Result<Duration, ConnectLoopError> {
            crate::sys::priority::realtime_priority();
            let (sock, config, runtime) = stack_parts(receiver, |_| {})?;
            runtime.block_on(async move {
                let mut driver = driver_on(&spec, config, sock)?;
                let started = std::time::Instant::now();
                for i in 0..count {
                    let h = driver.stack().socket();
                    driver
                        .connect(h, &SockAddr::inet(peer))
                        .await
                        .map_err(ConnectLoopError::Driver)?
                        .map_err(|errno| ConnectLoopError::Stack { index: i, errno })?;
                    let now = driver.now();
                    let _ = driver.stack().close(now, h);
                    driver.flush().map_err(ConnectLoopError::Driver)?;
                }
                let elapsed = started.elapsed();
                crate::sys::reaper::dispose(driver);
                Ok(elapsed)
            })
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack takes from the kernel DUT's IPv6 settings the one it models: no
    /// link-local address (`addr_gen_mode` 1).
    #[test]
    fn ipv6_on_reaches_the_stack_config() {
        let mut config = Config::default();
        assert_eq!(config.ipv6_addr_gen_mode, 0);
        ipv6_on(&mut config);
        assert_eq!(config.ipv6_addr_gen_mode, 1);
    }
}
