//! The BSD-like socket layer: addresses, options, poll bits, and the
//! per-socket state of `struct socket` (`SS_*`). The calls themselves are
//! methods of [`crate::Stack`], since they need routes, ports and the clock.

use crate::config::Config;
use crate::errno::Errno;
use crate::tcp::{Tcb, TcpParams, SOCK_MIN_RCVBUF};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

/// `AF_UNSPEC`.
pub const AF_UNSPEC: u16 = 0;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `sizeof(struct sockaddr_in)`.
pub const SOCKADDR_IN_LEN: usize = 16;
/// `SIN6_LEN_RFC2133`: a `sockaddr_in6` without `sin6_scope_id`, the shortest
/// `inet6_bind` and `tcp_v6_connect` accept.
pub const SIN6_LEN_RFC2133: usize = 24;
/// `sizeof(struct sockaddr_in6)`.
pub const SOCKADDR_IN6_LEN: usize = 28;

/// The address family a socket was made with (`socket(domain, SOCK_STREAM, 0)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Domain {
    /// `AF_INET`
    #[default]
    Inet,
    /// `AF_INET6`: connects to IPv6 addresses, and to IPv4 ones written as
    /// `::ffff:a.b.c.d` unless `IPV6_V6ONLY` is set.
    Inet6,
}
/// `sizeof(struct sockaddr_storage)`.
pub const SOCKADDR_STORAGE_LEN: usize = 128;

/// A socket address as the kernel receives it: raw `struct sockaddr` bytes
/// (family in host byte order, then port and address in network order), so
/// that short lengths and foreign families take the kernel's error paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockAddr {
    bytes: Vec<u8>,
}

impl SockAddr {
    /// A `sockaddr_in` (16 bytes).
    pub fn inet(a: SocketAddrV4) -> Self {
        let mut b = vec![0u8; SOCKADDR_IN_LEN];
        b[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        b[2..4].copy_from_slice(&a.port().to_be_bytes());
        b[4..8].copy_from_slice(&a.ip().octets());
        SockAddr { bytes: b }
    }
    /// A `sockaddr_in6` (28 bytes): family, port, `sin6_flowinfo`, address, `sin6_scope_id`.
    pub fn inet6(a: SocketAddrV6) -> Self {
        let mut b = vec![0u8; SOCKADDR_IN6_LEN];
        b[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[2..4].copy_from_slice(&a.port().to_be_bytes());
        b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
        b[8..24].copy_from_slice(&a.ip().octets());
        b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
        SockAddr { bytes: b }
    }
    /// A `sockaddr` with family `AF_UNSPEC` (16 bytes), for disconnect.
    pub fn unspec() -> Self {
        SockAddr {
            bytes: vec![0u8; SOCKADDR_IN_LEN],
        }
    }
    /// Arbitrary bytes, `addrlen` = `bytes.len()`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        SockAddr {
            bytes: bytes.to_vec(),
        }
    }
    /// `family` followed by zeros up to `len` bytes (e.g. AF_INET6 with 28).
    pub fn with_family(family: u16, len: usize) -> Self {
        let mut b = vec![0u8; len];
        let n = len.min(2);
        b[..n].copy_from_slice(&family.to_ne_bytes()[..n]);
        SockAddr { bytes: b }
    }
    /// `addrlen`.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Whether `addrlen` is 0.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// `sa_family`, if at least 2 bytes.
    pub fn family(&self) -> Option<u16> {
        (self.bytes.len() >= 2).then(|| u16::from_ne_bytes([self.bytes[0], self.bytes[1]]))
    }
    /// The IPv4 address and port, if at least 8 bytes (family not checked).
    pub fn inet_addr(&self) -> Option<SocketAddrV4> {
        if self.bytes.len() < 8 {
            return None;
        }
        let port = u16::from_be_bytes([self.bytes[2], self.bytes[3]]);
        let ip = Ipv4Addr::new(self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]);
        Some(SocketAddrV4::new(ip, port))
    }
    /// The IPv6 address, port, flow info and scope id, if at least
    /// `SIN6_LEN_RFC2133` bytes (family not checked); the scope id is 0 unless all
    /// 28 bytes are there, as `tcp_v6_connect` reads it.
    pub fn inet6_addr(&self) -> Option<SocketAddrV6> {
        let b = self.bytes.get(..SIN6_LEN_RFC2133)?;
        let port = u16::from_be_bytes([b[2], b[3]]);
        let flowinfo = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).ok()?);
        let scope = match self.bytes.get(24..28) {
            Some(s) => u32::from_ne_bytes([s[0], s[1], s[2], s[3]]),
            None => 0,
        };
        Some(SocketAddrV6::new(ip, port, flowinfo, scope))
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<SocketAddrV4> for SockAddr {
    fn from(a: SocketAddrV4) -> Self {
        SockAddr::inet(a)
    }
}

impl From<SocketAddrV6> for SockAddr {
    fn from(a: SocketAddrV6) -> Self {
        SockAddr::inet6(a)
    }
}

/// A socket option with its value, as `setsockopt` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockOpt {
    /// `TCP_MAXSEG`: 0 or 88..=32767.
    TcpMaxSeg(i32),
    /// `TCP_SYNCNT`: 1..=127.
    TcpSynCnt(i32),
    /// `TCP_USER_TIMEOUT` in ms: ≥ 0.
    TcpUserTimeout(i32),
    /// `TCP_FASTOPEN_CONNECT`: 0 or 1.
    TcpFastopenConnect(i32),
    /// `TCP_RTO_MAX_MS`: 1000..=120000.
    TcpRtoMaxMs(i32),
    /// `TCP_WINDOW_CLAMP`.
    TcpWindowClamp(i32),
    /// `TCP_QUICKACK`: 0 enters pingpong mode, other values leave it.
    TcpQuickAck(i32),
    /// `TCP_NODELAY`: non-zero turns Nagle's rule off.
    TcpNoDelay(i32),
    /// `SO_RCVBUF`.
    SoRcvBuf(i32),
    /// `SO_SNDTIMEO` (zero = no timeout).
    SoSndTimeo(Duration),
    /// `IP_TOS` (ECN bits ignored for TCP).
    IpTos(i32),
    /// `IP_TTL`: 1..=255, or -1 for the default.
    IpTtl(i32),
    /// `IP_OPTIONS`: raw option bytes, at most 40.
    IpOptions(Vec<u8>),
    /// `IP_BIND_ADDRESS_NO_PORT`.
    IpBindAddressNoPort(bool),
    /// `IPV6_V6ONLY` (AF_INET6 only): no IPv4 through v4-mapped addresses.
    Ipv6V6Only(bool),
    /// `IPV6_TCLASS` (AF_INET6 only): -1..=255, -1 for the default 0; ECN bits ignored for TCP.
    Ipv6Tclass(i32),
    /// `IPV6_UNICAST_HOPS` (AF_INET6 only): -1..=255, -1 for the route's or the device's.
    Ipv6UnicastHops(i32),
    /// `O_NONBLOCK` (fcntl, not a socket option, but set the same way here).
    NonBlocking(bool),
}

/// Option names for `getsockopt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOptName {
    /// `SO_ERROR` (reads and clears).
    SoError,
    /// `TCP_MAXSEG`.
    TcpMaxSeg,
    /// `TCP_SYNCNT`.
    TcpSynCnt,
    /// `TCP_USER_TIMEOUT`.
    TcpUserTimeout,
    /// `TCP_FASTOPEN_CONNECT`.
    TcpFastopenConnect,
    /// `SO_RCVBUF`.
    SoRcvBuf,
    /// `SO_SNDTIMEO`.
    SoSndTimeo,
    /// `IP_TOS`.
    IpTos,
    /// `IP_TTL`.
    IpTtl,
    /// `IP_BIND_ADDRESS_NO_PORT`.
    IpBindAddressNoPort,
    /// `IPV6_V6ONLY`.
    Ipv6V6Only,
    /// `IPV6_TCLASS`.
    Ipv6Tclass,
    /// `IPV6_UNICAST_HOPS`.
    Ipv6UnicastHops,
}

/// A `getsockopt` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockOptValue {
    /// An `int`.
    Int(i32),
    /// A timeout (`struct timeval`); zero = none.
    Duration(Duration),
}

impl SockOptValue {
    /// The `int`, if this is one.
    pub fn as_int(&self) -> Option<i32> {
        match self {
            SockOptValue::Int(v) => Some(*v),
            SockOptValue::Duration(_) => None,
        }
    }
}

impl SockOpt {
    /// Decode a raw `setsockopt(level, name, value)` as Linux numbers it
    /// (`SOL_SOCKET`/`IPPROTO_IP`/`IPPROTO_IPV6`/`IPPROTO_TCP`); unknown → ENOPROTOOPT,
    /// short `int` → EINVAL.
    pub fn from_raw(level: i32, name: i32, value: &[u8]) -> Result<SockOpt, Errno> {
        let int = || -> Result<i32, Errno> {
            if value.len() < 4 {
                return Err(Errno::EINVAL);
            }
            Ok(i32::from_ne_bytes([value[0], value[1], value[2], value[3]]))
        };
        use uapi::*;
        Ok(match (level, name) {
            (IPPROTO_TCP, TCP_MAXSEG) => SockOpt::TcpMaxSeg(int()?),
            (IPPROTO_TCP, TCP_SYNCNT) => SockOpt::TcpSynCnt(int()?),
            (IPPROTO_TCP, TCP_USER_TIMEOUT) => SockOpt::TcpUserTimeout(int()?),
            (IPPROTO_TCP, TCP_FASTOPEN_CONNECT) => SockOpt::TcpFastopenConnect(int()?),
            (IPPROTO_TCP, TCP_RTO_MAX_MS) => SockOpt::TcpRtoMaxMs(int()?),
            (IPPROTO_TCP, TCP_WINDOW_CLAMP) => SockOpt::TcpWindowClamp(int()?),
            (IPPROTO_TCP, TCP_QUICKACK) => SockOpt::TcpQuickAck(int()?),
            (IPPROTO_TCP, TCP_NODELAY) => SockOpt::TcpNoDelay(int()?),
            (SOL_SOCKET, SO_RCVBUF) => SockOpt::SoRcvBuf(int()?),
            (SOL_SOCKET, SO_SNDTIMEO) => {
                if value.len() < 16 {
                    return Err(Errno::EINVAL);
                }
                let sec = i64::from_ne_bytes(value[..8].try_into().map_err(|_| Errno::EINVAL)?);
                let usec = i64::from_ne_bytes(value[8..16].try_into().map_err(|_| Errno::EINVAL)?);
                // sock_set_timeout: tv_usec out of range → EDOM. (A negative
                // tv_sec means "zero" in the kernel; not modelled: EINVAL.)
                if !(0..1_000_000).contains(&usec) {
                    return Err(Errno::EDOM);
                }
                if sec < 0 {
                    return Err(Errno::EINVAL);
                }
                SockOpt::SoSndTimeo(
                    Duration::from_secs(sec as u64) + Duration::from_micros(usec as u64),
                )
            }
            (IPPROTO_IP, IP_TOS) => SockOpt::IpTos(int()?),
            (IPPROTO_IP, IP_TTL) => SockOpt::IpTtl(int()?),
            (IPPROTO_IP, IP_OPTIONS) => SockOpt::IpOptions(value.to_vec()),
            (IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT) => SockOpt::IpBindAddressNoPort(int()? != 0),
            (IPPROTO_IPV6, IPV6_V6ONLY) => SockOpt::Ipv6V6Only(int()? != 0),
            (IPPROTO_IPV6, IPV6_TCLASS) => SockOpt::Ipv6Tclass(int()?),
            (IPPROTO_IPV6, IPV6_UNICAST_HOPS) => SockOpt::Ipv6UnicastHops(int()?),
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }
}

/// The `setsockopt` level and option numbers [`SockOpt::from_raw`] decodes, as Linux
/// numbers them on x86-64. Written out rather than taken from libc so that the sans-IO
/// core has no system-library dependency; a unit test checks them against libc.
mod uapi {
    /// `IPPROTO_IP` (include/uapi/linux/in.h).
    pub const IPPROTO_IP: i32 = 0;
    /// `IPPROTO_TCP` (include/uapi/linux/in.h).
    pub const IPPROTO_TCP: i32 = 6;
    /// `SOL_SOCKET` (include/uapi/asm-generic/socket.h).
    pub const SOL_SOCKET: i32 = 1;
    /// `TCP_NODELAY` (include/uapi/linux/tcp.h).
    pub const TCP_NODELAY: i32 = 1;
    /// `TCP_MAXSEG` (include/uapi/linux/tcp.h).
    pub const TCP_MAXSEG: i32 = 2;
    /// `TCP_SYNCNT` (include/uapi/linux/tcp.h).
    pub const TCP_SYNCNT: i32 = 7;
    /// `TCP_WINDOW_CLAMP` (include/uapi/linux/tcp.h).
    pub const TCP_WINDOW_CLAMP: i32 = 10;
    /// `TCP_QUICKACK` (include/uapi/linux/tcp.h).
    pub const TCP_QUICKACK: i32 = 12;
    /// `TCP_USER_TIMEOUT` (include/uapi/linux/tcp.h).
    pub const TCP_USER_TIMEOUT: i32 = 18;
    /// `TCP_FASTOPEN_CONNECT` (include/uapi/linux/tcp.h).
    pub const TCP_FASTOPEN_CONNECT: i32 = 30;
    /// `TCP_RTO_MAX_MS` (include/uapi/linux/tcp.h, Linux 6.15 and later).
    pub const TCP_RTO_MAX_MS: i32 = 44;
    /// `SO_RCVBUF` (include/uapi/asm-generic/socket.h).
    pub const SO_RCVBUF: i32 = 8;
    /// `SO_SNDTIMEO` (include/uapi/asm-generic/socket.h): `SO_SNDTIMEO_OLD` on 64-bit,
    /// whose value is a 16-byte `struct timeval`.
    pub const SO_SNDTIMEO: i32 = 21;
    /// `IP_TOS` (include/uapi/linux/in.h).
    pub const IP_TOS: i32 = 1;
    /// `IP_TTL` (include/uapi/linux/in.h).
    pub const IP_TTL: i32 = 2;
    /// `IP_OPTIONS` (include/uapi/linux/in.h).
    pub const IP_OPTIONS: i32 = 4;
    /// `IP_BIND_ADDRESS_NO_PORT` (include/uapi/linux/in.h).
    pub const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
    /// `IPPROTO_IPV6` (include/uapi/linux/in.h).
    pub const IPPROTO_IPV6: i32 = 41;
    /// `IPV6_UNICAST_HOPS` (include/uapi/linux/in6.h).
    pub const IPV6_UNICAST_HOPS: i32 = 16;
    /// `IPV6_V6ONLY` (include/uapi/linux/in6.h).
    pub const IPV6_V6ONLY: i32 = 26;
    /// `IPV6_TCLASS` (include/uapi/linux/in6.h).
    pub const IPV6_TCLASS: i32 = 67;
}

/// Poll bits (`include/uapi/asm-generic/poll.h`).
pub mod poll {
    /// `POLLIN`
    pub const POLLIN: u32 = 0x0001;
    /// `POLLPRI`
    pub const POLLPRI: u32 = 0x0002;
    /// `POLLOUT`
    pub const POLLOUT: u32 = 0x0004;
    /// `POLLERR`
    pub const POLLERR: u32 = 0x0008;
    /// `POLLHUP`
    pub const POLLHUP: u32 = 0x0010;
    /// `POLLRDNORM`
    pub const POLLRDNORM: u32 = 0x0040;
    /// `POLLWRNORM`
    pub const POLLWRNORM: u32 = 0x0100;
    /// `POLLRDHUP`
    pub const POLLRDHUP: u32 = 0x2000;
}

/// `socket->state` (`SS_*`, include/uapi/linux/net.h): the BSD socket's view of the
/// connection, which `__inet_stream_connect` (net/ipv4/af_inet.c) moves and reads to
/// answer `connect()` (EALREADY, EISCONN, EINVAL) before TCP is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockState {
    /// `SS_UNCONNECTED`
    Unconnected,
    /// `SS_CONNECTING`
    Connecting,
    /// `SS_CONNECTED`
    Connected,
    /// `SS_DISCONNECTING`: where `__inet_stream_connect` leaves a socket whose
    /// `disconnect` failed. `tcp_disconnect` never fails, so the stack never enters it.
    Disconnecting,
}

impl SockState {
    /// Every transition the socket layer makes, in one place, as `__inet_stream_connect`
    /// makes them. Anything else is a bug.
    pub fn can_transition(self, to: SockState) -> bool {
        use SockState::*;
        matches!(
            (self, to),
            // AF_UNSPEC disconnects from any state; a connect that failed (the
            // `sock_error` exit) goes back too, also when the failure is reported again.
            (_, Unconnected)
                // The SYN is out (`tcp_v4_connect` succeeded).
                | (Unconnected, Connecting)
                // The handshake completed; a blocking connect's wait asked again after
                // that (`Stack::connect_wait`) finds it so again.
                | (Connecting | Connected, Connected)
        )
    }
}

/// `IP_OPTIONS` after `ip_options_get`/`ip_options_compile` (net/ipv4/ip_options.c).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpOptions {
    /// The option bytes, END-padded to a multiple of 4.
    pub bytes: Vec<u8>,
    /// Offset of a loose/strict source route option.
    pub srr: Option<usize>,
    /// The first hop of the source route (`opt.faddr`).
    pub faddr: Option<Ipv4Addr>,
    /// Offset of a record-route option that wants our address (`rr_needaddr`).
    pub rr: Option<usize>,
}

impl IpOptions {
    /// Compile user-supplied options as `ip_options_compile(skb = NULL)` does
    /// for the cases a connect uses: END/NOP, record route (pointer advanced,
    /// our address filled in at build time), LSRR/SSRR (first address becomes
    /// the next hop, the rest shift left, the final destination goes last at
    /// build time); other options are copied as they are.
    pub fn compile(raw: &[u8]) -> Result<IpOptions, Errno> {
        if raw.len() > 40 {
            return Err(Errno::EINVAL);
        }
        let mut b = raw.to_vec();
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        let mut o = IpOptions::default();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                0 => {
                    b[i..].fill(0);
                    break;
                }
                1 => i += 1,
                kind => {
                    if i + 1 >= b.len() {
                        return Err(Errno::EINVAL);
                    }
                    let len = b[i + 1] as usize;
                    if len < 2 || i + len > b.len() {
                        return Err(Errno::EINVAL);
                    }
                    match kind {
                        131 | 137 => {
                            if len < 3
                                || b[i + 2] != 4
                                || len < 7
                                || (len - 3) & 3 != 0
                                || o.srr.is_some()
                            {
                                return Err(Errno::EINVAL);
                            }
                            o.faddr = Some(Ipv4Addr::new(b[i + 3], b[i + 4], b[i + 5], b[i + 6]));
                            b.copy_within(i + 7..i + len, i + 3);
                            o.srr = Some(i);
                        }
                        7 => {
                            if len < 3 {
                                return Err(Errno::EINVAL);
                            }
                            let ptr = b[i + 2] as usize;
                            if ptr < 4 {
                                return Err(Errno::EINVAL);
                            }
                            if ptr <= len {
                                if ptr + 3 > len {
                                    return Err(Errno::EINVAL);
                                }
                                b[i + 2] += 4;
                                o.rr = Some(i);
                            }
                        }
                        _ => {}
                    }
                    i += len;
                }
            }
        }
        o.bytes = b;
        Ok(o)
    }

    /// The bytes for a packet from `src` to `daddr` (`ip_options_build`).
    pub fn build(&self, src: Ipv4Addr, daddr: Ipv4Addr) -> Vec<u8> {
        let mut b = self.bytes.clone();
        if let Some(s) = self.srr {
            let at = s + b[s + 1] as usize - 4;
            b[at..at + 4].copy_from_slice(&daddr.octets());
        }
        if let Some(r) = self.rr {
            let at = r + b[r + 2] as usize - 5;
            if at + 4 <= b.len() {
                b[at..at + 4].copy_from_slice(&src.octets());
            }
        }
        b
    }
}

/// One socket: options, BSD state, bindings and its TCP connection.
#[derive(Debug, Clone)]
pub struct Socket {
    /// `O_NONBLOCK`.
    pub nonblocking: bool,
    /// `SO_SNDTIMEO` (None = `MAX_SCHEDULE_TIMEOUT`).
    pub sndtimeo: Option<Duration>,
    /// `SO_RCVBUF` as `getsockopt` reports it (`sk_rcvbuf`).
    pub rcvbuf: u32,
    /// `inet->tos`.
    pub tos: u8,
    /// The ECT(0) bit `tcp_ecn_send` leaves in `inet->tos`: set by a new
    /// data segment (`INET_ECN_xmit`), cleared by anything else
    /// (`INET_ECN_dontxmit`); a timewait socket copies it into `tw_tos`.
    pub tos_ect: bool,
    /// `IP_TTL` (None = route hoplimit or `ip_default_ttl`).
    pub ttl: Option<u8>,
    /// `IP_OPTIONS`.
    pub ip_options: IpOptions,
    /// `IP_BIND_ADDRESS_NO_PORT`.
    pub bind_address_no_port: bool,
    /// The family of `socket()`.
    pub domain: Domain,
    /// `sk_ipv6only` (`IPV6_V6ONLY`, or a bind to a specific IPv6 address).
    pub v6only: bool,
    /// `np->tclass` (`IPV6_TCLASS`).
    pub tclass: u8,
    /// `np->hop_limit` (`IPV6_UNICAST_HOPS`; None = -1, the route's or the device's).
    pub unicast_hops: Option<u8>,
    /// `sk_bound_dev_if` from a link-local destination's `sin6_scope_id` (0: none).
    pub bound_dev_if: u32,
    /// `sock->state`; changed only by [`Socket::set_state`].
    state: SockState,
    /// `inet_saddr` / `inet_rcv_saddr` (`sk_v6_rcv_saddr`) from bind
    /// (`SOCK_BINDADDR_LOCK` when set): IPv4 also for an AF_INET6 socket bound to a
    /// v4-mapped address.
    pub bound_addr: Option<IpAddr>,
    /// A port held since bind (`SOCK_BINDPORT_LOCK` if explicit).
    pub bound_port: Option<u16>,
    /// The port was given explicitly to bind (`SOCK_BINDPORT_LOCK`).
    pub bindport_lock: bool,
    /// The local port in use (bound or chosen by connect).
    pub local_port: Option<u16>,
    /// The source address in use.
    pub local_addr: Option<IpAddr>,
    /// Next hop of the connection (None = `lo`).
    pub next_hop: Option<IpAddr>,
    /// Route hoplimit.
    pub route_ttl: Option<u8>,
    /// `sk_disconnects`.
    pub disconnects: u32,
    /// The user closed the handle; the connection may linger (FIN handshake).
    pub orphan: bool,
    /// The TCP connection.
    pub tcb: Tcb,
}

impl Socket {
    /// A fresh `socket(AF_INET, SOCK_STREAM, 0)` (`tcp_init_sock`).
    pub fn new(cfg: &Config) -> Self {
        Socket::new_in(cfg, Domain::Inet)
    }

    /// A fresh `socket(domain, SOCK_STREAM, 0)`: an AF_INET6 socket starts with
    /// `ipv6_specific` (a 40-byte network header) and `sk_ipv6only` from
    /// `net.ipv6.bindv6only` (0).
    pub fn new_in(cfg: &Config, domain: Domain) -> Self {
        let params = TcpParams {
            user_mss: 0,
            syn_retries: 0,
            user_timeout_ms: 0,
            rto_max_ms: cfg.tcp_rto_max_ms,
            fastopen_connect: false,
            rcvbuf_locked: None,
            window_clamp: 0,
            nodelay: false,
            jiffies_offset: cfg.jiffies_offset,
        };
        let mut tcb = Tcb::new(params);
        if domain == Domain::Inet6 {
            tcb.net_header_len = 40;
        }
        Socket {
            domain,
            v6only: false,
            tclass: 0,
            unicast_hops: None,
            bound_dev_if: 0,
            nonblocking: false,
            sndtimeo: None,
            rcvbuf: cfg.tcp_rmem[1],
            tos: 0,
            tos_ect: false,
            ttl: None,
            ip_options: IpOptions::default(),
            bind_address_no_port: false,
            state: SockState::Unconnected,
            bound_addr: None,
            bound_port: None,
            bindport_lock: false,
            local_port: None,
            local_addr: None,
            next_hop: None,
            route_ttl: None,
            disconnects: 0,
            orphan: false,
            tcb,
        }
    }

    /// `sock->state`.
    pub fn state(&self) -> SockState {
        self.state
    }

    /// `sock->state = to`: the single place the socket state changes.
    pub fn set_state(&mut self, to: SockState) {
        debug_assert!(
            self.state.can_transition(to),
            "{:?} -> {:?}",
            self.state,
            to
        );
        self.state = to;
    }

    /// Apply an option: `sock_setsockopt`, `do_ip_setsockopt`, `do_tcp_setsockopt`.
    /// Options of level `IPPROTO_IPV6` on an AF_INET socket get ENOPROTOOPT
    /// (`ip_setsockopt` knows only `SOL_IP`); `IPPROTO_IP` ones work on both families
    /// (`ipv6_setsockopt` hands `SOL_IP` to `ip_setsockopt`).
    pub fn setsockopt(&mut self, cfg: &Config, opt: SockOpt) -> Result<(), Errno> {
        let closed = self.tcb.state() == crate::tcp::State::Closed;
        let ipv6_level = matches!(
            opt,
            SockOpt::Ipv6V6Only(_) | SockOpt::Ipv6Tclass(_) | SockOpt::Ipv6UnicastHops(_)
        );
        if ipv6_level && self.domain != Domain::Inet6 {
            return Err(Errno::ENOPROTOOPT);
        }
        let p = &mut self.tcb.params;
        match opt {
            SockOpt::TcpMaxSeg(v) => {
                // tcp_sock_set_maxseg: 0, or TCP_MIN_MSS (88) ..= MAX_TCP_WINDOW (32767).
                if v != 0 && !(88..=32767).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                p.user_mss = v as u32;
            }
            SockOpt::TcpSynCnt(v) => {
                if !(1..=127).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                p.syn_retries = v as u32;
            }
            SockOpt::TcpUserTimeout(v) => {
                if v < 0 {
                    return Err(Errno::EINVAL);
                }
                p.user_timeout_ms = v as u32;
            }
            SockOpt::TcpFastopenConnect(v) => {
                if !(0..=1).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                if cfg.tcp_fastopen & 1 == 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                if !closed {
                    return Err(Errno::EINVAL);
                }
                p.fastopen_connect = v == 1;
            }
            SockOpt::TcpRtoMaxMs(v) => {
                if !(1000..=120_000).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                p.rto_max_ms = v as u32;
            }
            SockOpt::TcpWindowClamp(v) => {
                // tcp_set_window_clamp.
                if v == 0 {
                    if !closed {
                        return Err(Errno::EINVAL);
                    }
                    p.window_clamp = 0;
                } else {
                    p.window_clamp = (v.max(0) as u32).max(SOCK_MIN_RCVBUF / 2);
                }
            }
            SockOpt::TcpQuickAck(v) => self.tcb.set_quickack_mode(v),
            // __tcp_sock_set_nodelay; the push that turning it on makes is the caller's.
            SockOpt::TcpNoDelay(v) => p.nodelay = v != 0,
            SockOpt::SoRcvBuf(v) => {
                // __sock_set_rcvbuf: min(val, rmem_max), doubled, floored; locks the buffer.
                let v = (v.max(0) as u32).min(cfg.rmem_max).min(i32::MAX as u32 / 2);
                let rcvbuf = (v * 2).max(SOCK_MIN_RCVBUF);
                self.rcvbuf = rcvbuf;
                p.rcvbuf_locked = Some(rcvbuf);
            }
            SockOpt::SoSndTimeo(d) => self.sndtimeo = if d.is_zero() { None } else { Some(d) },
            SockOpt::IpTos(v) => {
                // do_ip_setsockopt: for SOCK_STREAM keep the socket's ECN bits.
                let v = v as u8;
                self.tos = (v & !3) | (self.tos & 3);
            }
            SockOpt::IpTtl(v) => {
                if v == -1 {
                    self.ttl = None;
                } else if (1..=255).contains(&v) {
                    self.ttl = Some(v as u8);
                } else {
                    return Err(Errno::EINVAL);
                }
            }
            SockOpt::IpOptions(raw) => {
                self.ip_options = IpOptions::compile(&raw)?;
                // do_ip_setsockopt: an AF_INET6 socket in CLOSE keeps its header length and
                // MSS; tcp_v4_connect counts the options when it connects v4-mapped.
                let closed = self.tcb.state() == crate::tcp::State::Closed;
                if self.domain == Domain::Inet || !closed {
                    self.tcb.set_ext_hdr_len(self.ip_options.bytes.len() as u32);
                }
            }
            SockOpt::IpBindAddressNoPort(b) => self.bind_address_no_port = b,
            // do_ipv6_setsockopt: not once the socket has a port (`inet_num`).
            SockOpt::Ipv6V6Only(b) => {
                if self.local_port.is_some() {
                    return Err(Errno::EINVAL);
                }
                self.v6only = b;
            }
            // do_ipv6_setsockopt: -1 is the default 0; a stream socket keeps its ECN bits.
            SockOpt::Ipv6Tclass(v) => {
                if !(-1..=255).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                let v = v.max(0) as u8;
                self.tclass = (v & !3) | (self.tclass & 3);
            }
            SockOpt::Ipv6UnicastHops(v) => {
                if !(-1..=255).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                self.unicast_hops = (v >= 0).then_some(v as u8);
            }
            SockOpt::NonBlocking(b) => self.nonblocking = b,
        }
        Ok(())
    }

    /// Read an option. `SO_ERROR` returns and clears `sk_err`, else `sk_err_soft`.
    /// `IPV6_UNICAST_HOPS` unset reads as `default_hops` (`ip6_dst_hoplimit`).
    pub fn getsockopt(
        &mut self,
        name: SockOptName,
        default_hops: u8,
    ) -> Result<SockOptValue, Errno> {
        let ipv6_level = matches!(
            name,
            SockOptName::Ipv6V6Only | SockOptName::Ipv6Tclass | SockOptName::Ipv6UnicastHops
        );
        if ipv6_level && self.domain != Domain::Inet6 {
            return Err(Errno::ENOPROTOOPT);
        }
        let p = &self.tcb.params;
        let int = SockOptValue::Int;
        Ok(match name {
            SockOptName::SoError => {
                let e = self
                    .tcb
                    .sk_err
                    .take()
                    .or_else(|| self.tcb.sk_err_soft.take());
                int(e.map_or(0, Errno::code))
            }
            SockOptName::TcpMaxSeg => {
                let closed = self.tcb.state() == crate::tcp::State::Closed;
                int(if p.user_mss != 0 && closed {
                    p.user_mss
                } else {
                    self.tcb.mss_cache_reported()
                } as i32)
            }
            SockOptName::TcpSynCnt => int(p.syn_retries as i32),
            SockOptName::TcpUserTimeout => int(p.user_timeout_ms as i32),
            SockOptName::TcpFastopenConnect => int(p.fastopen_connect as i32),
            SockOptName::SoRcvBuf => int(self.rcvbuf as i32),
            SockOptName::SoSndTimeo => SockOptValue::Duration(self.sndtimeo.unwrap_or_default()),
            SockOptName::IpTos => int(self.tos as i32),
            SockOptName::IpTtl => int(self.ttl.map_or(-1, i32::from)),
            SockOptName::IpBindAddressNoPort => int(self.bind_address_no_port as i32),
            SockOptName::Ipv6V6Only => int(self.v6only as i32),
            SockOptName::Ipv6Tclass => int(self.tclass as i32),
            SockOptName::Ipv6UnicastHops => int(self.unicast_hops.unwrap_or(default_hops) as i32),
        })
    }

    /// Mirrors `tcp_poll` (net/ipv4/tcp.c).
    pub fn poll(&self) -> u32 {
        use crate::tcp::{State, RCV_SHUTDOWN, SEND_SHUTDOWN};
        use poll::*;
        let st = self.tcb.state();
        let sh = self.tcb.shutdown;
        let mut mask = 0;
        if sh == RCV_SHUTDOWN | SEND_SHUTDOWN || st == State::Closed {
            mask |= POLLHUP;
        }
        if sh & RCV_SHUTDOWN != 0 {
            mask |= POLLIN | POLLRDNORM | POLLRDHUP;
        }
        if st != State::SynSent && st != State::SynRecv {
            if self.tcb.recv_queue_len() > 0 {
                mask |= POLLIN | POLLRDNORM;
            }
            mask |= POLLOUT | POLLWRNORM;
        }
        if self.tcb.sk_err.is_some() {
            mask |= POLLERR;
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_layout() {
        let a = SockAddr::inet(SocketAddrV4::new(Ipv4Addr::new(10, 199, 0, 2), 8080));
        assert_eq!(a.len(), 16);
        assert_eq!(a.family(), Some(AF_INET));
        assert_eq!(a.inet_addr().unwrap().port(), 8080);
        assert_eq!(SockAddr::from_bytes(&[2]).family(), None);
    }

    #[test]
    fn option_ranges() {
        let cfg = Config::default();
        let mut s = Socket::new(&cfg);
        assert_eq!(
            s.setsockopt(&cfg, SockOpt::TcpMaxSeg(87)),
            Err(Errno::EINVAL)
        );
        assert_eq!(s.setsockopt(&cfg, SockOpt::TcpMaxSeg(536)), Ok(()));
        assert_eq!(
            s.setsockopt(&cfg, SockOpt::TcpSynCnt(0)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.setsockopt(&cfg, SockOpt::TcpSynCnt(128)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.setsockopt(&cfg, SockOpt::TcpFastopenConnect(2)),
            Err(Errno::EINVAL)
        );
        assert_eq!(s.setsockopt(&cfg, SockOpt::IpTtl(0)), Err(Errno::EINVAL));
        s.setsockopt(&cfg, SockOpt::IpTos(0x13)).unwrap();
        assert_eq!(s.tos, 0x10);
        s.setsockopt(&cfg, SockOpt::SoRcvBuf(4096)).unwrap();
        assert_eq!(
            s.getsockopt(SockOptName::SoRcvBuf, 64),
            Ok(SockOptValue::Int(8192))
        );
        s.setsockopt(&cfg, SockOpt::SoRcvBuf(1 << 30)).unwrap();
        assert_eq!(s.rcvbuf, 2 * 4_194_304);
        let nofo = Config::from_pairs([("net.ipv4.tcp_fastopen", "0")]).unwrap();
        assert_eq!(
            s.setsockopt(&nofo, SockOpt::TcpFastopenConnect(1)),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            SockOpt::from_raw(libc::IPPROTO_TCP, libc::TCP_MAXSEG, &536i32.to_ne_bytes()),
            Ok(SockOpt::TcpMaxSeg(536))
        );
        assert_eq!(
            SockOpt::from_raw(libc::IPPROTO_TCP, 9999, &[0; 4]),
            Err(Errno::ENOPROTOOPT)
        );
    }

    #[test]
    fn option_numbers_match_libc() {
        use uapi::*;
        assert_eq!(IPPROTO_IP, libc::IPPROTO_IP);
        assert_eq!(IPPROTO_TCP, libc::IPPROTO_TCP);
        assert_eq!(SOL_SOCKET, libc::SOL_SOCKET);
        assert_eq!(TCP_NODELAY, libc::TCP_NODELAY);
        assert_eq!(TCP_MAXSEG, libc::TCP_MAXSEG);
        assert_eq!(TCP_SYNCNT, libc::TCP_SYNCNT);
        assert_eq!(TCP_WINDOW_CLAMP, libc::TCP_WINDOW_CLAMP);
        assert_eq!(TCP_QUICKACK, libc::TCP_QUICKACK);
        assert_eq!(TCP_USER_TIMEOUT, libc::TCP_USER_TIMEOUT);
        assert_eq!(TCP_FASTOPEN_CONNECT, libc::TCP_FASTOPEN_CONNECT);
        assert_eq!(SO_RCVBUF, libc::SO_RCVBUF);
        assert_eq!(SO_SNDTIMEO, libc::SO_SNDTIMEO);
        assert_eq!(IP_TOS, libc::IP_TOS);
        assert_eq!(IP_TTL, libc::IP_TTL);
        assert_eq!(IP_OPTIONS, libc::IP_OPTIONS);
        assert_eq!(IP_BIND_ADDRESS_NO_PORT, libc::IP_BIND_ADDRESS_NO_PORT);
        assert_eq!(IPPROTO_IPV6, libc::IPPROTO_IPV6);
        assert_eq!(IPV6_V6ONLY, libc::IPV6_V6ONLY);
        assert_eq!(IPV6_TCLASS, libc::IPV6_TCLASS);
        assert_eq!(IPV6_UNICAST_HOPS, libc::IPV6_UNICAST_HOPS);
        assert_eq!(AF_INET6 as i32, libc::AF_INET6);
        assert_eq!(SOCKADDR_IN6_LEN, std::mem::size_of::<libc::sockaddr_in6>());
    }

    #[test]
    fn sockaddr_in6_layout() {
        let ip: Ipv6Addr = "fe80::2".parse().unwrap();
        let a = SockAddr::inet6(SocketAddrV6::new(ip, 8080, 0x12345, 3));
        assert_eq!((a.len(), a.family()), (28, Some(AF_INET6)));
        assert_eq!(&a.as_bytes()[2..4], &[0x1f, 0x90]);
        assert_eq!(
            a.inet6_addr(),
            Some(SocketAddrV6::new(ip, 8080, 0x12345, 3))
        );
        // 24 bytes (RFC 2133): no scope id; 23: none at all.
        let short = SockAddr::from_bytes(&a.as_bytes()[..24]);
        assert_eq!(
            short.inet6_addr(),
            Some(SocketAddrV6::new(ip, 8080, 0x12345, 0))
        );
        assert_eq!(SockAddr::from_bytes(&a.as_bytes()[..23]).inet6_addr(), None);
    }

    #[test]
    fn ipv6_options_need_an_inet6_socket() {
        let cfg = Config::default();
        let mut v4 = Socket::new(&cfg);
        assert_eq!(
            v4.setsockopt(&cfg, SockOpt::Ipv6V6Only(true)),
            Err(Errno::ENOPROTOOPT)
        );
        assert_eq!(
            v4.getsockopt(SockOptName::Ipv6Tclass, 64),
            Err(Errno::ENOPROTOOPT)
        );
        let mut v6 = Socket::new_in(&cfg, Domain::Inet6);
        assert_eq!(v6.tcb.net_header_len, 40);
        v6.setsockopt(&cfg, SockOpt::Ipv6Tclass(0xbb)).unwrap();
        assert_eq!(v6.tclass, 0xb8, "a stream socket keeps its ECN bits");
        assert_eq!(
            v6.setsockopt(&cfg, SockOpt::Ipv6Tclass(256)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            v6.getsockopt(SockOptName::Ipv6UnicastHops, 64),
            Ok(SockOptValue::Int(64))
        );
        v6.setsockopt(&cfg, SockOpt::Ipv6UnicastHops(7)).unwrap();
        assert_eq!(
            v6.getsockopt(SockOptName::Ipv6UnicastHops, 64),
            Ok(SockOptValue::Int(7))
        );
        v6.setsockopt(&cfg, SockOpt::Ipv6V6Only(true)).unwrap();
        v6.local_port = Some(40000);
        assert_eq!(
            v6.setsockopt(&cfg, SockOpt::Ipv6V6Only(false)),
            Err(Errno::EINVAL)
        );
        // IP-level options work on AF_INET6 sockets (for v4-mapped connections).
        v6.setsockopt(&cfg, SockOpt::IpTos(0x20)).unwrap();
        assert_eq!(
            SockOpt::from_raw(41, 26, &1i32.to_ne_bytes()),
            Ok(SockOpt::Ipv6V6Only(true))
        );
    }

    /// The socket states `__inet_stream_connect` moves between, pinned pair by pair.
    #[test]
    fn socket_transitions_are_declared() {
        use SockState::*;
        let all = [Unconnected, Connecting, Connected, Disconnecting];
        let allowed = [
            (Unconnected, Unconnected),
            (Connecting, Unconnected),
            (Connected, Unconnected),
            (Disconnecting, Unconnected),
            (Unconnected, Connecting),
            (Connecting, Connected),
            (Connected, Connected),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_transition(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
        // A connect() never skips SYN-SENT, and nothing leads to SS_DISCONNECTING.
        assert!(!Unconnected.can_transition(Connected));
        assert!(!Connected.can_transition(Disconnecting));
    }

    /// [`Socket::set_state`] refuses a transition the table does not declare.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "Unconnected -> Connected")]
    fn an_undeclared_socket_transition_is_refused() {
        let mut s = Socket::new(&Config::default());
        s.set_state(SockState::Connected);
    }

    #[test]
    fn ip_options_compile_and_build() {
        // Record route with one slot.
        let o = IpOptions::compile(&[7, 7, 4, 0, 0, 0, 0]).unwrap();
        assert_eq!(o.bytes.len(), 8);
        let b = o.build(Ipv4Addr::new(10, 199, 0, 1), Ipv4Addr::new(10, 199, 0, 2));
        assert_eq!(b, [7, 7, 8, 10, 199, 0, 1, 0]);
        // LSRR via 10.199.0.254 to the final destination.
        let o = IpOptions::compile(&[1, 131, 7, 4, 10, 199, 0, 254]).unwrap();
        assert_eq!(o.faddr, Some(Ipv4Addr::new(10, 199, 0, 254)));
        let b = o.build(Ipv4Addr::new(10, 199, 0, 1), Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(b, [1, 131, 7, 4, 192, 0, 2, 9]);
        assert_eq!(IpOptions::compile(&[0; 41]), Err(Errno::EINVAL));
        assert_eq!(IpOptions::compile(&[7, 1]), Err(Errno::EINVAL));
    }
}
