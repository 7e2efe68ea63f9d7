//! `SmoltcpDut`: [smoltcp](https://crates.io/crates/smoltcp), a TCP/IP stack nobody here
//! wrote, as the device under test.
//!
//! smoltcp is attached to the dut namespace's veth through its own raw-socket device
//! (`phy::RawSocket`, an AF_PACKET socket opened on a thread inside the namespace, whose
//! kernel holds no address there and so stays silent). Its whole poll loop runs on that
//! thread. smoltcp has no system calls and no errno: it offers a socket whose `state()` the
//! application watches. This module is the thin BSD-socket shim an application would write
//! on top of it: blocking calls wait on the socket's state, and what smoltcp reports (the
//! state reached, a reset, a timeout) is mapped to the nearest Linux result. README.md
//! ("smoltcp as a DUT") has the table; [`unsupported_step`] names what cannot be mapped.
//!
//! What smoltcp leaves to the application is done as Linux would, so that it measures
//! nothing of smoltcp's: the local port is a random even port in `ip_local_port_range`
//! (`__inet_hash_connect`), the buffers are `tcp_rmem[1]`/`tcp_wmem[1]` bytes, the
//! timestamp clock (when a case turns timestamps on) counts milliseconds.
//!
//! An `inet` case gives smoltcp an IPv4 interface, an `inet6` case an IPv6 one (its
//! neighbour discovery answers the peer's solicitations and resolves the peer); a
//! `v4-mapped` case cannot run, smoltcp having no `AF_INET6` socket that reaches IPv4.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration as StdDuration;

use smoltcp::iface::{Config, Interface, Route, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium, RawSocket};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::case::{Case, ConnectStep, Family, GetOpt, IpFamily, SockOpt, Step};
use crate::dut::api::{Dut, DutError, Running, SetupError};
use crate::dut::encode::raw_sockopt;
use crate::dut::steps::{self, CallResult, Failure, OptValue, SocketApi};
use crate::net::netlink::RouteKind;
use crate::net::topology::{Topology, TopologySpec, DUT_IF, DUT_MAC};
use crate::observe::capture::realtime_ns;
use crate::record::CallRecord;

/// smoltcp as the device under test.
#[derive(Debug, Default, Clone, Copy)]
pub struct SmoltcpDut;

/// poll(2) bits (include/uapi/asm-generic/poll.h).
mod bits {
    pub const POLLIN: u32 = 0x001;
    pub const POLLOUT: u32 = 0x004;
    pub const POLLERR: u32 = 0x008;
    pub const POLLHUP: u32 = 0x010;
    pub const POLLRDHUP: u32 = 0x2000;
}

/// The longest the loop sleeps without looking at its stop and cancel flags.
const FLAG_CHECK: StdDuration = StdDuration::from_millis(5);

/// An address of a case's topology as smoltcp types it.
fn smol_addr(addr: IpAddr) -> smoltcp::wire::IpAddress {
    match addr {
        IpAddr::V4(v4) => v4.into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

/// Why a case cannot run on smoltcp: the first step its API has no way to express.
pub fn unsupported_step(case: &Case) -> Option<String> {
    if case.family == IpFamily::V4Mapped {
        return Some(format!(
            "family {}: smoltcp has no v4-mapped sockets (an IPv6 socket reaches IPv6 only)",
            case.family
        ));
    }
    let mut connected = false;
    for (i, step) in case.steps.iter().enumerate() {
        let why = match step {
            Step::Setsockopt(option) => unsupported_option(option, connected, case.family),
            Step::Getsockopt(GetOpt::TcpMaxseg) => {
                Some("getsockopt TCP_MAXSEG: smoltcp does not expose the MSS it uses".into())
            }
            Step::Connect(c) => {
                connected = true;
                unsupported_connect(c, case.family)
            }
            Step::Socket => Some("the adapter drives one smoltcp socket per case".into()),
            Step::Bind(b) => b.addrlen.map(|len| {
                format!("addrlen {len}: smoltcp has no bind(); there is no length to get wrong")
            }),
            _ => None,
        };
        if let Some(why) = why {
            return Some(format!("steps[{i}] {}: {why}", step.call_name()));
        }
    }
    None
}

fn unsupported_option(option: &SockOpt, connected: bool, family: IpFamily) -> Option<String> {
    let (_, _, _, text) = raw_sockopt(option);
    let why = match option {
        SockOpt::TcpNodelay(_) => return None,
        SockOpt::TcpUserTimeout(v) if *v >= 0 => return None,
        SockOpt::TcpUserTimeout(_) => "a negative timeout has no smoltcp value",
        // On an AF_INET6 socket IP_TTL governs v4-mapped traffic only, which smoltcp has not.
        SockOpt::IpTtl(_) if family != IpFamily::Inet => {
            "on an AF_INET6 socket IP_TTL is for v4-mapped traffic; smoltcp has one hop limit"
        }
        SockOpt::IpTtl(v) if *v == -1 || (1..=255).contains(v) => return None,
        SockOpt::IpTtl(_) => "set_hop_limit takes 1..=255 (or the default)",
        SockOpt::SoRcvbuf(v) | SockOpt::SoSndbuf(v) if *v >= 1 && *v <= 1 << 30 && !connected => {
            return None
        }
        SockOpt::SoRcvbuf(_) | SockOpt::SoSndbuf(_) if connected => {
            "smoltcp's buffers are fixed when the socket is made, before connect"
        }
        SockOpt::SoRcvbuf(_) | SockOpt::SoSndbuf(_) => "a buffer of that size cannot be made",
        SockOpt::TcpMaxseg(_) => {
            "smoltcp takes the MSS from the interface MTU; no per-socket clamp"
        }
        SockOpt::TcpSyncnt(_) => "smoltcp has no SYN retry count (only set_timeout)",
        SockOpt::TcpFastopenConnect(_) => "smoltcp has no TCP Fast Open",
        SockOpt::TcpWindowClamp(_) => "smoltcp has no window clamp",
        SockOpt::TcpQuickack(_) => "smoltcp has one ACK delay, no pingpong mode",
        SockOpt::TcpRtoMaxMs(_) => "smoltcp's RTO cap is fixed, not set per socket",
        SockOpt::SoSndtimeoMs(_) => "smoltcp has no blocking calls, so no send timeout",
        SockOpt::IpTos(_) => "smoltcp's TCP socket sets no TOS/DSCP",
        SockOpt::IpOptions(_) => "smoltcp's TCP socket sends no IP options",
        SockOpt::IpBindAddressNoPort(_) => "smoltcp has no bind(); the application picks the port",
        SockOpt::Ipv6UnicastHops(v)
            if family == IpFamily::Inet6 && (*v == -1 || (1..=255).contains(v)) =>
        {
            return None
        }
        SockOpt::Ipv6UnicastHops(_) if family == IpFamily::Inet6 => {
            "set_hop_limit takes 1..=255 (or the default)"
        }
        SockOpt::Ipv6V6only(_) if family == IpFamily::Inet6 => {
            "smoltcp has no v4-mapped sockets, so nothing for IPV6_V6ONLY to turn off"
        }
        SockOpt::Ipv6Tclass(_) if family == IpFamily::Inet6 => {
            "smoltcp's TCP socket sets no traffic class"
        }
        SockOpt::Ipv6V6only(_) | SockOpt::Ipv6Tclass(_) | SockOpt::Ipv6UnicastHops(_) => {
            "an IPv6 option on an AF_INET socket: smoltcp has no setsockopt to refuse it"
        }
    };
    Some(format!("{text}: {why}"))
}

fn unsupported_connect(c: &ConnectStep, family: IpFamily) -> Option<String> {
    let own = family.sa_family();
    if let Some(f) = c.family.filter(|f| *f != own) {
        return Some(format!(
            "{f:?}: smoltcp's connect takes a typed {} endpoint, not a sockaddr",
            if own == Family::Inet6 { "IPv6" } else { "IPv4" }
        ));
    }
    if let Some(len) = c.addrlen {
        return Some(format!(
            "addrlen {len}: smoltcp's connect takes a typed endpoint, there is no length to get wrong"
        ));
    }
    if family == IpFamily::Inet6 {
        match c.addr {
            Some(a @ IpAddr::V4(_)) => {
                return Some(format!(
                    "{a}: an IPv4 address on an AF_INET6 socket is not passed"
                ))
            }
            // Linux connects `::` to the loopback; smoltcp has none.
            Some(IpAddr::V6(a)) if a.is_unspecified() || a.is_loopback() => {
                return Some(format!("{a}: smoltcp has no loopback interface"))
            }
            // A link-local destination needs its scope (interface), which smoltcp ignores.
            Some(IpAddr::V6(a)) if a.is_unicast_link_local() => {
                return Some(format!(
                    "{a}: smoltcp has no scope ids for link-local destinations"
                ))
            }
            _ => {}
        }
    }
    None
}

impl Dut for SmoltcpDut {
    fn name(&self) -> &'static str {
        "smoltcp"
    }

    fn about(&self) -> String {
        "smoltcp 0.14 (crates.io; std, medium-ethernet, proto-ipv4, proto-ipv6, socket-tcp, \
         phy-raw_socket) on a raw-socket device, behind tcptwin's socket layer \
         (docs/smoltcp.md)"
            .into()
    }

    fn kernel_owns_address(&self) -> bool {
        false
    }

    fn unsupported(&self, case: &Case) -> Option<String> {
        unsupported_step(case)
    }

    fn run_steps(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        if let Some(why) = unsupported_step(case) {
            return Err(DutError::Unsupported(why));
        }
        let (calls_tx, calls_rx) = mpsc::channel::<Vec<CallRecord>>();
        let stop = Arc::new(AtomicBool::new(false));
        let cancel = Arc::new(AtomicBool::new(false));
        let spec = topology.spec.clone();
        let case2 = case.clone();
        let (stop2, cancel2) = (stop.clone(), cancel.clone());
        let handle = topology
            .dut
            .spawn("dut-smoltcp", move || -> Result<(), SetupError> {
                let mut shim = Shim::open(&spec, &case2, cancel2)?;
                let calls = steps::interpret(&mut shim, &case2.steps, steps::Target::of(&spec));
                let _ = calls_tx.send(calls);
                // Keep answering the peer (FIN exchange, ACKs) as a kernel would by itself.
                while !stop2.load(Ordering::Acquire) {
                    shim.turn(None);
                }
                Ok(())
            })?;
        let stopper = {
            let stop = stop.clone();
            move || stop.store(true, Ordering::Release)
        };
        let limit = StdDuration::from_secs_f64(case.time_limit_s.0);
        match calls_rx.recv_timeout(limit) {
            Ok(calls) => Ok(Running {
                calls,
                stop: Some(Box::new(move || {
                    stopper();
                    let _ = handle.join();
                })),
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                cancel.store(true, Ordering::Release);
                Err(crate::dut::api::timed_out(
                    &calls_rx,
                    stopper,
                    handle,
                    case.time_limit_s.0,
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(crate::dut::api::ended_early(handle, "smoltcp"))
            }
        }
    }
}

/// smoltcp's `RawSocket`, watched: notes whether a frame smoltcp took in was a TCP RST, so
/// that a socket which closed can be told apart as reset (ECONNREFUSED, ECONNRESET) or
/// timed out (ETIMEDOUT). smoltcp itself does not say why a socket closed.
struct Watched {
    inner: RawSocket,
    rst_seen: Rc<Cell<bool>>,
}

struct WatchedRx {
    inner: <RawSocket as Device>::RxToken<'static>,
    rst_seen: Rc<Cell<bool>>,
}

impl phy::RxToken for WatchedRx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let rst_seen = self.rst_seen;
        self.inner.consume(|frame| {
            if is_tcp_rst(frame) {
                rst_seen.set(true);
            }
            f(frame)
        })
    }
}

/// An Ethernet IPv4 or IPv6 (no extension headers) TCP segment with RST set.
fn is_tcp_rst(frame: &[u8]) -> bool {
    let tcp = match frame.get(12..14) {
        Some([0x08, 0x00]) if frame.len() >= 34 && frame[23] == 6 => {
            14 + usize::from(frame[14] & 0x0f) * 4
        }
        Some([0x86, 0xdd]) if frame.len() >= 54 && frame[20] == 6 => 54,
        _ => return false,
    };
    frame.get(tcp + 13).is_some_and(|flags| flags & 0x04 != 0)
}

impl Device for Watched {
    type RxToken<'a>
        = WatchedRx
    where
        Self: 'a;
    type TxToken<'a>
        = <RawSocket as Device>::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(now)?;
        let rx = WatchedRx {
            inner: rx,
            rst_seen: self.rst_seen.clone(),
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

/// What a case sets on smoltcp's socket, kept so the socket can be remade with other
/// buffers (SO_RCVBUF/SO_SNDBUF before connect).
#[derive(Debug, Clone, Copy)]
struct Settings {
    rx: usize,
    tx: usize,
    nagle: bool,
    hop_limit: Option<u8>,
    timeout: Option<Duration>,
    timestamps: bool,
}

/// A millisecond clock for TSvals (smoltcp leaves the clock to the application).
fn tsval_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000) as u32
}

/// smoltcp's interface and one TCP socket, with the socket-call shim on top.
struct Shim {
    iface: Interface,
    device: Watched,
    sockets: SocketSet<'static>,
    h: SocketHandle,
    fd: i32,
    rst_seen: Rc<Cell<bool>>,
    settings: Settings,
    /// The error a failed connection leaves for `SO_ERROR` (Linux's `sk_err`).
    pending_error: Option<&'static str>,
    /// Whether the application closed the socket (so a later CLOSED is no error).
    closed_by_user: bool,
    ever_connected: bool,
    /// A nonblocking connect returned EINPROGRESS and no connect has since seen it end
    /// (Linux's `SS_CONNECTING`: the next connect reports the outcome once).
    connecting: bool,
    nonblocking: bool,
    /// The socket's family (`AF_INET` in an inet case, `AF_INET6` in an inet6 one).
    family: IpFamily,
    local: Option<(IpAddr, u16)>,
    port_range: (u16, u16),
    rng: u64,
    cancel: Arc<AtomicBool>,
}

/// A call interrupted by the case's time limit.
struct Interrupted;

fn sysctl_text(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/"))).ok()
}

fn sysctl_ints(name: &str) -> Vec<u64> {
    sysctl_text(name)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
    {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => realtime_ns() as u64,
    }
}

impl Shim {
    /// Opens the raw socket on the dut veth (this thread is in the dut namespace) and sets
    /// smoltcp up with the kernel DUT's MAC, address and routes.
    fn open(spec: &TopologySpec, case: &Case, cancel: Arc<AtomicBool>) -> Result<Shim, SetupError> {
        let raw =
            RawSocket::new(DUT_IF, Medium::Ethernet).map_err(|source| SetupError::RawSocket {
                ifname: DUT_IF,
                source,
            })?;
        let fd = raw.as_raw_fd();
        let rst_seen = Rc::new(Cell::new(false));
        let mut device = Watched {
            inner: raw,
            rst_seen: rst_seen.clone(),
        };
        let rng = seed();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(DUT_MAC)));
        config.random_seed = rng;
        let mut iface = Interface::new(config, &mut device, Instant::now());
        // `dut: none` leaves smoltcp without an address too: its connect then finds no
        // source address (Unaddressable, recorded as ENETUNREACH).
        if let Some(addr) = spec.dut_ip {
            let prefix = spec.prefix;
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(IpCidr::new(smol_addr(addr), prefix));
            });
        }
        // smoltcp routes are gateways only: a route with a type (unreachable, prohibit,
        // blackhole) or without `via` has no smoltcp form and is left out, so that
        // destination simply has no route.
        // A gateway of the other family (IPv4 via IPv6) has no smoltcp form either.
        for r in &spec.routes {
            if let (RouteKind::Unicast, Some(via)) = (r.kind, r.via) {
                if via.is_ipv4() != r.dst.is_ipv4() {
                    continue;
                }
                let route = Route {
                    cidr: IpCidr::new(smol_addr(r.dst), r.prefix),
                    via_router: smol_addr(via),
                    preferred_until: None,
                    expires_at: None,
                };
                iface.routes_mut().update(|routes| {
                    let _ = routes.push(route);
                });
            }
        }
        let range = sysctl_ints("net.ipv4.ip_local_port_range");
        let port_range = match range[..] {
            [lo, hi] if lo <= hi && hi <= 65535 => (lo as u16, hi as u16),
            _ => (32768, 60999),
        };
        let middle = |name: &str, default: usize| {
            sysctl_ints(name)
                .get(1)
                .map_or(default, |v| *v as usize)
                .clamp(1, 1 << 30)
        };
        // Only a case that names tcp_timestamps turns smoltcp's timestamps on or off;
        // otherwise smoltcp runs with its own default (off).
        let timestamps = case
            .sysctls
            .iter()
            .find(|(k, _)| k.0 == "net.ipv4.tcp_timestamps")
            .is_some_and(|(_, v)| v.to_string().trim() != "0");
        let settings = Settings {
            rx: middle("net.ipv4.tcp_rmem", 131072),
            tx: middle("net.ipv4.tcp_wmem", 16384),
            nagle: true,
            hop_limit: None,
            timeout: None,
            timestamps,
        };
        let mut sockets = SocketSet::new(Vec::new());
        let h = sockets.add(make_socket(&settings));
        Ok(Shim {
            iface,
            device,
            sockets,
            h,
            fd,
            rst_seen,
            settings,
            pending_error: None,
            closed_by_user: false,
            ever_connected: false,
            connecting: false,
            nonblocking: false,
            family: case.family,
            local: None,
            port_range,
            rng,
            cancel,
        })
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.h)
    }

    /// Remakes the socket with the current settings (only before connect).
    fn remake(&mut self) {
        self.sockets.remove(self.h);
        self.h = self.sockets.add(make_socket(&self.settings));
    }

    /// One pass of smoltcp's poll; notes why the socket closed if it did.
    fn poll_once(&mut self) {
        let before = self.socket().state();
        self.rst_seen.set(false);
        self.iface
            .poll(Instant::now(), &mut self.device, &mut self.sockets);
        let after = self.socket().state();
        if before != tcp::State::Closed && after == tcp::State::Closed && !self.closed_by_user {
            self.pending_error = Some(if self.rst_seen.get() {
                if before == tcp::State::SynSent {
                    "ECONNREFUSED"
                } else {
                    "ECONNRESET"
                }
            } else if self.settings.timeout.is_some() {
                "ETIMEDOUT"
            } else {
                "ECONNABORTED"
            });
        }
    }

    /// Polls, then sleeps until smoltcp's next timer, a frame, `deadline`, or the next look
    /// at the flags, whichever is first.
    fn turn(&mut self, deadline: Option<Instant>) {
        self.poll_once();
        let now = Instant::now();
        let mut wait = self
            .iface
            .poll_delay(now, &self.sockets)
            .map_or(FLAG_CHECK, |d| StdDuration::from_micros(d.total_micros()))
            .min(FLAG_CHECK);
        if let Some(deadline) = deadline {
            let left = if deadline > now {
                (deadline - now).total_micros()
            } else {
                0
            };
            wait = wait.min(StdDuration::from_micros(left));
        }
        if wait.is_zero() {
            return;
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timeout, no signal mask.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }

    /// Drives smoltcp until `cond` holds (Some), `deadline` passes (None), or the time limit
    /// interrupts.
    fn wait_for<T>(
        &mut self,
        deadline: Option<Instant>,
        mut cond: impl FnMut(&mut Shim) -> Option<T>,
    ) -> Result<Option<T>, Interrupted> {
        loop {
            self.poll_once();
            if let Some(v) = cond(self) {
                return Ok(Some(v));
            }
            if self.cancel.load(Ordering::Acquire) {
                return Err(Interrupted);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            self.turn(deadline);
        }
    }

    /// A random even port in `ip_local_port_range`, as Linux's connect picks.
    fn ephemeral_port(&mut self) -> u16 {
        // xorshift64*: enough for a port choice.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let (lo, hi) = self.port_range;
        let lo = lo + lo % 2;
        let evens = (u32::from(hi.max(lo)) - u32::from(lo)) / 2 + 1;
        lo + 2 * (r % u64::from(evens)) as u16
    }

    /// Poll bits from the socket's state, as Linux's `tcp_poll` would set them.
    fn revents(&mut self) -> u32 {
        use bits::*;
        let pending = self.pending_error.is_some();
        let ever = self.ever_connected;
        let s = self.socket();
        match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => 0,
            tcp::State::Closed if ever => {
                POLLIN | POLLOUT | POLLHUP | POLLRDHUP | if pending { POLLERR } else { 0 }
            }
            tcp::State::Closed => POLLOUT | POLLHUP,
            _ => {
                let mut m = 0;
                if s.can_send() {
                    m |= POLLOUT;
                }
                if s.can_recv() || !s.may_recv() {
                    m |= POLLIN;
                }
                if !s.may_recv() {
                    m |= POLLRDHUP;
                }
                m
            }
        }
    }

    /// The errno for a call on a socket that is not (or no longer) connected.
    fn not_connected(&mut self, fallback: &'static str) -> String {
        self.pending_error.take().unwrap_or(fallback).to_string()
    }

    fn connect(&mut self, remote: IpAddr, port: u16) -> Result<Result<i64, String>, Interrupted> {
        // __inet_stream_connect: the first connect after a nonblocking one finished reports
        // how it ended (0 or the error); after that, EISCONN.
        let connecting = std::mem::take(&mut self.connecting);
        match self.socket().state() {
            tcp::State::SynSent => {
                self.connecting = connecting;
                return Ok(Err("EALREADY".into()));
            }
            tcp::State::Closed if connecting => {
                if let Some(e) = self.pending_error.take() {
                    return Ok(Err(e.into()));
                }
            }
            tcp::State::Closed => {}
            _ if connecting => return Ok(Ok(0)),
            _ => return Ok(Err("EISCONN".into())),
        }
        let (addr, lport) = match self.local {
            Some((a, p)) => (a, p),
            None => (unspecified(self.family), self.ephemeral_port()),
        };
        let local = IpListenEndpoint {
            addr: (!addr.is_unspecified()).then(|| smol_addr(addr)),
            port: lport,
        };
        self.local = Some((addr, lport));
        let remote = IpEndpoint::new(smol_addr(remote), port);
        let h = self.h;
        let socket = self.sockets.get_mut::<tcp::Socket>(h);
        match socket.connect(self.iface.context(), remote, local) {
            Ok(()) => {}
            // No source address for that destination: Linux's ip_route_connect fails there.
            Err(tcp::ConnectError::Unaddressable) => return Ok(Err("ENETUNREACH".into())),
            Err(tcp::ConnectError::InvalidState) => return Ok(Err("EISCONN".into())),
        }
        self.ever_connected = true;
        self.closed_by_user = false;
        self.pending_error = None;
        // Linux sends the SYN (or starts ARP) inside connect(); so does one poll here.
        self.poll_once();
        if self.nonblocking {
            self.connecting = true;
            return Ok(Err("EINPROGRESS".into()));
        }
        let state = self
            .wait_for(None, |s| {
                Some(s.socket().state()).filter(|st| *st != tcp::State::SynSent)
            })?
            .expect("no deadline");
        Ok(match state {
            tcp::State::Closed => Err(self.not_connected("ECONNABORTED")),
            _ => Ok(0),
        })
    }

    fn send(&mut self, data: &[u8]) -> Result<Result<i64, String>, Interrupted> {
        let mut sent = 0;
        loop {
            let state = self.socket().state();
            if state == tcp::State::SynSent && !self.nonblocking {
                self.wait_for(None, |s| {
                    Some(()).filter(|_| s.socket().state() != tcp::State::SynSent)
                })?;
                continue;
            }
            if !self.socket().may_send() {
                return Ok(if sent > 0 {
                    Ok(sent as i64)
                } else if state == tcp::State::SynSent {
                    Err("EAGAIN".into())
                } else {
                    Err(self.not_connected("EPIPE"))
                });
            }
            let n = self.socket().send_slice(&data[sent..]).unwrap_or(0);
            sent += n;
            self.poll_once();
            if sent == data.len() {
                return Ok(Ok(sent as i64));
            }
            if self.nonblocking {
                return Ok(if sent > 0 {
                    Ok(sent as i64)
                } else {
                    Err("EAGAIN".into())
                });
            }
            self.wait_for(None, |s| {
                let sock = s.socket();
                Some(()).filter(|_| sock.can_send() || !sock.may_send())
            })?;
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Result<i64, String>, Interrupted> {
        let ready = |s: &mut Shim| {
            let sock = s.socket();
            Some(()).filter(|_| sock.can_recv() || !sock.may_recv())
        };
        if self.nonblocking {
            if ready(self).is_none() {
                return Ok(Err("EAGAIN".into()));
            }
        } else {
            self.wait_for(None, ready)?;
        }
        let r = self.socket().recv_slice(buf);
        self.poll_once();
        Ok(match r {
            Ok(n) => Ok(n as i64),
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(tcp::RecvError::InvalidState) => Err(self.not_connected("ENOTCONN")),
        })
    }
}

/// A call's result as the shim computes it, as the step interpreter takes it.
fn errno_result<T>(r: Result<Result<T, String>, Interrupted>) -> CallResult<T> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(errno)) => Err(Failure::Errno(errno)),
        Err(Interrupted) => Err(Failure::Interrupted),
    }
}

/// The unspecified address of a socket of `family`.
fn unspecified(family: IpFamily) -> IpAddr {
    if family.socket_is_inet6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// A `sockaddr_in` (on an `AF_INET` socket) or `sockaddr_in6` (on an `AF_INET6` one) as
/// the step interpreter passes it: the address and port, or why it is not one.
/// [`unsupported_step`] refused every other shape before the case ran. `sin6_flowinfo` and
/// `sin6_scope_id` are dropped, as Linux drops them for a global destination without
/// `IPV6_FLOWINFO_SEND`.
fn sockaddr(addr: &[u8], family: IpFamily) -> Result<(IpAddr, u16), String> {
    let sa_family = addr.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    if family.socket_is_inet6() {
        // SIN6_LEN_RFC2133: Linux's inet6 calls take a sockaddr_in6 without its scope id.
        if addr.len() < 24 {
            return Err(format!(
                "a sockaddr_in6 of {} bytes (at least 24)",
                addr.len()
            ));
        }
        if sa_family != Some(libc::AF_INET6 as u16) {
            return Err(format!(
                "family {} on an AF_INET6 socket (smoltcp takes IPv6 endpoints only)",
                sa_family.unwrap_or_default()
            ));
        }
        let port = u16::from_be_bytes([addr[2], addr[3]]);
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&addr[8..24]);
        Ok((IpAddr::V6(Ipv6Addr::from(octets)), port))
    } else {
        if addr.len() < 8 || sa_family != Some(libc::AF_INET as u16) {
            return Err("smoltcp takes IPv4 endpoints only on an AF_INET socket".into());
        }
        let port = u16::from_be_bytes([addr[2], addr[3]]);
        Ok((
            IpAddr::V4(Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7])),
            port,
        ))
    }
}

/// The BSD socket calls, on smoltcp: each waits on the socket's state as a blocking call
/// would, and maps what smoltcp reports to the nearest Linux result.
impl SocketApi for Shim {
    fn socket(&mut self, _domain: steps::Domain) -> CallResult<i64> {
        // The one smoltcp socket of the case was made with the interface; its family is
        // the case's (`unsupported_step` refused v4-mapped cases).
        Ok(3)
    }

    fn set_nonblocking(&mut self, on: bool) -> CallResult<()> {
        self.nonblocking = on;
        Ok(())
    }

    fn setsockopt(&mut self, level: i32, name: i32, value: &[u8]) -> CallResult<()> {
        let v = value
            .get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| Failure::Machinery("an int option shorter than an int".into()))?;
        match (level, name) {
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => {
                self.settings.nagle = v == 0;
                let nagle = self.settings.nagle;
                self.socket().set_nagle_enabled(nagle);
            }
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                self.settings.timeout = (v > 0).then(|| Duration::from_millis(v as u64));
                let t = self.settings.timeout;
                self.socket().set_timeout(t);
            }
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) => {
                self.settings.hop_limit = u8::try_from(v).ok();
                let hl = self.settings.hop_limit;
                self.socket().set_hop_limit(hl);
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                self.settings.rx = v as usize;
                self.remake();
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                self.settings.tx = v as usize;
                self.remake();
            }
            _ => {
                // unsupported_step refused the case before it ran.
                return Err(Failure::Machinery(format!(
                    "option {level}/{name} has no smoltcp form"
                )));
            }
        }
        Ok(())
    }

    fn getsockopt(&mut self, level: i32, name: i32) -> CallResult<OptValue> {
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => {
                let errno = self.pending_error.take();
                Ok(OptValue::Int(
                    errno.and_then(crate::linux::errno::code).unwrap_or(0),
                ))
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                Ok(OptValue::Int(self.socket().recv_capacity() as i32))
            }
            _ => Err(Failure::Machinery(format!(
                "option {level}/{name} has no smoltcp form"
            ))),
        }
    }

    fn bind(&mut self, addr: &[u8]) -> CallResult<()> {
        let (ip, port) = sockaddr(addr, self.family).map_err(Failure::Machinery)?;
        let port = if port == 0 {
            self.ephemeral_port()
        } else {
            port
        };
        self.local = Some((ip, port));
        Ok(())
    }

    fn connect(&mut self, addr: &[u8]) -> CallResult<()> {
        let (remote, port) = sockaddr(addr, self.family).map_err(Failure::Machinery)?;
        errno_result(Shim::connect(self, remote, port)).map(drop)
    }

    fn poll(&mut self, events: u32, timeout_ms: i32) -> CallResult<u32> {
        let wanted = events | bits::POLLERR | bits::POLLHUP;
        let deadline =
            (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let revents = self
            .wait_for(deadline, |s| Some(s.revents() & wanted).filter(|m| *m != 0))
            .map_err(|Interrupted| Failure::Interrupted)?;
        Ok(revents.unwrap_or(0))
    }

    fn send(&mut self, data: &[u8]) -> CallResult<usize> {
        errno_result(Shim::send(self, data)).map(|n| n as usize)
    }

    fn recv(&mut self, max: usize) -> CallResult<usize> {
        let mut buf = vec![0u8; max];
        errno_result(Shim::recv(self, &mut buf)).map(|n| n as usize)
    }

    fn close(&mut self) -> CallResult<()> {
        self.closed_by_user = true;
        self.socket().close();
        self.poll_once();
        Ok(())
    }

    fn wait(&mut self, ms: u64) -> CallResult<()> {
        let until = Instant::now() + Duration::from_millis(ms);
        self.wait_for(Some(until), |_| None::<()>)
            .map_err(|Interrupted| Failure::Interrupted)?;
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

fn make_socket(s: &Settings) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; s.rx]),
        tcp::SocketBuffer::new(vec![0u8; s.tx]),
    );
    socket.set_nagle_enabled(s.nagle);
    socket.set_hop_limit(s.hop_limit);
    socket.set_timeout(s.timeout);
    if s.timestamps {
        socket.set_tsval_generator(Some(tsval_ms));
    }
    socket
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockaddr_in6(addr: Ipv6Addr, port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&0x12345u32.to_be_bytes());
        b[8..24].copy_from_slice(&addr.octets());
        b[24..28].copy_from_slice(&7u32.to_ne_bytes());
        b
    }

    #[test]
    fn sockaddr_in6_gives_address_and_port() {
        let peer: Ipv6Addr = "2001:2::2".parse().unwrap();
        let b = sockaddr_in6(peer, 80);
        assert_eq!(sockaddr(&b, IpFamily::Inet6), Ok((IpAddr::V6(peer), 80)));
        // Without the scope id (SIN6_LEN_RFC2133) it is still one.
        assert_eq!(
            sockaddr(&b[..24], IpFamily::Inet6),
            Ok((IpAddr::V6(peer), 80))
        );
    }

    #[test]
    fn sockaddr_in6_refuses_short_or_other_family() {
        let b = sockaddr_in6("2001:2::2".parse().unwrap(), 80);
        let short = sockaddr(&b[..23], IpFamily::Inet6).unwrap_err();
        assert!(short.contains("23 bytes"), "{short}");
        let mut v4 = b.clone();
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        let other = sockaddr(&v4, IpFamily::Inet6).unwrap_err();
        assert!(other.contains("AF_INET6 socket"), "{other}");
        // A sockaddr_in6 on an AF_INET socket is not a sockaddr_in.
        assert!(sockaddr(&b, IpFamily::Inet).is_err());
    }

    #[test]
    fn sockaddr_in_unchanged() {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[4..8].copy_from_slice(&[198, 18, 0, 2]);
        assert_eq!(
            sockaddr(&b, IpFamily::Inet),
            Ok((IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 80))
        );
        assert!(sockaddr(&b[..7], IpFamily::Inet).is_err());
    }

    #[test]
    fn rst_is_seen_in_ipv4_and_ipv6() {
        let mut v4 = vec![0u8; 54];
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        v4[14] = 0x45;
        v4[23] = 6;
        v4[34 + 13] = 0x04;
        assert!(is_tcp_rst(&v4));
        let mut v6 = vec![0u8; 74];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[20] = 6;
        v6[54 + 13] = 0x14;
        assert!(is_tcp_rst(&v6));
        v6[54 + 13] = 0x12;
        assert!(!is_tcp_rst(&v6));
        v6[20] = 58;
        assert!(!is_tcp_rst(&v6));
    }

    #[test]
    fn v4_mapped_refused_and_v6_options_by_family() {
        let inet6 = IpFamily::Inet6;
        assert!(unsupported_option(&SockOpt::Ipv6UnicastHops(32), false, inet6).is_none());
        assert!(unsupported_option(&SockOpt::Ipv6UnicastHops(-1), false, inet6).is_none());
        assert!(unsupported_option(&SockOpt::Ipv6UnicastHops(0), false, inet6).is_some());
        assert!(unsupported_option(&SockOpt::Ipv6V6only(1), false, inet6).is_some());
        assert!(unsupported_option(&SockOpt::Ipv6Tclass(4), false, inet6).is_some());
        assert!(unsupported_option(&SockOpt::IpTtl(9), false, inet6).is_some());
        let inet = IpFamily::Inet;
        assert!(unsupported_option(&SockOpt::IpTtl(9), false, inet).is_none());
        assert!(unsupported_option(&SockOpt::Ipv6UnicastHops(32), false, inet).is_some());
    }
}
