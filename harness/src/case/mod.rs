//! The case file format and its loader: the one place YAML is read.
//!
//! Cases are typed structs with `deny_unknown_fields`, read with serde-saphyr, which reports
//! line and column, rejects duplicate keys (a silently doubled `mss:` in a conformance case
//! is a real bug), and bounds what a huge or hostile file may cost. Values the type system
//! cannot rule out (an MTU of 10, a prefix of 40) are refused by the field's own type while
//! parsing, so the error still points at the file, line and column.

pub mod suite;
pub mod translate;

pub use suite::{Suite, SuiteError};

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A case file could not be used; says which file, where, and why.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: field `{field}`: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        column: u64,
        /// The field's path in the case, like `steps[2].connect.port`.
        field: String,
        message: String,
    },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Whether a value is its type's default (used to leave defaults out of written cases).
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn is_default_time_limit(v: &TimeLimit) -> bool {
    *v == default_time_limit()
}
fn is_default_settle(v: &u64) -> bool {
    *v == default_settle()
}
fn is_default_mtu(v: &Mtu) -> bool {
    *v == default_mtu()
}
fn is_default_port(v: &u16) -> bool {
    *v == default_port()
}
fn is_default_peer_isn(v: &u32) -> bool {
    *v == default_peer_isn()
}
fn is_default_fin_delay(v: &u64) -> bool {
    *v == default_fin_delay()
}
fn is_default_window(v: &u16) -> bool {
    *v == default_window()
}
fn is_one(v: &usize) -> bool {
    *v == one()
}

/// The largest case file accepted; a case is a page of YAML, not a data set.
pub const MAX_CASE_BYTES: u64 = 256 * 1024;

/// One connect scenario: the network, the socket calls, the peer's script, what to expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// A short unique name; also names the artifacts.
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub description: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tags: Vec<String>,
    /// The address family: of the socket the steps use and of the network between the DUT
    /// and the peer.
    #[serde(default, skip_serializing_if = "is_default")]
    pub family: IpFamily,
    #[serde(default, skip_serializing_if = "is_default")]
    pub topology: TopologyCase,
    /// Sysctls for the DUT's namespace, by their Linux names (`net.ipv4.tcp_sack: 0`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub sysctls: BTreeMap<SysctlName, SysctlValue>,
    /// The socket calls, in order, on one TCP socket made before the first step.
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub peer: PeerScript,
    #[serde(default, skip_serializing_if = "is_default")]
    pub expect: Expect,
    /// The case is stopped and reported as an error after this long.
    #[serde(
        default = "default_time_limit",
        skip_serializing_if = "is_default_time_limit"
    )]
    pub time_limit_s: TimeLimit,
    /// After the last step, the run ends once nothing was captured for this long.
    #[serde(default = "default_settle", skip_serializing_if = "is_default_settle")]
    pub settle_ms: u64,
    /// Differences from the kernel that are understood and accepted for now, each with its
    /// reason. They are still shown in every report; they only do not fail the case.
    #[serde(default, skip_serializing_if = "is_default")]
    pub known_divergences: Vec<KnownDivergence>,
}

impl Case {
    /// The known divergences that hold in the family the case runs in: those without a
    /// family, and those of its own.
    pub fn known_in_own_family(&self) -> Vec<KnownDivergence> {
        self.known_divergences
            .iter()
            .filter(|k| k.family.is_none_or(|f| f == self.family))
            .cloned()
            .collect()
    }
}

/// A divergence the case accepts: a field path (`*` for any index; a prefix covers the
/// fields below it) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownDivergence {
    pub path: String,
    pub reason: String,
    /// Only when the case runs as this family (`tcptwin run --as-family`): a difference
    /// the case shows in that family alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<IpFamily>,
}

/// A case's address family, as packetdrill runs a script: IPv4, IPv6, or an `AF_INET6`
/// socket reaching an IPv4 network through v4-mapped addresses (`::ffff:a.b.c.d`, which
/// `tcp_v6_connect` hands to `tcp_v4_connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum IpFamily {
    /// `AF_INET` socket, IPv4 network (198.18.0.0/24).
    #[default]
    #[serde(rename = "inet")]
    Inet,
    /// `AF_INET6` socket, IPv6 network (2001:2::/64, in the benchmarking block of RFC 5180).
    #[serde(rename = "inet6")]
    Inet6,
    /// `AF_INET6` socket, IPv4 network; addresses in the steps are v4-mapped.
    #[serde(rename = "v4-mapped")]
    V4Mapped,
}

impl IpFamily {
    /// The three, in the order reports list them.
    pub const ALL: [IpFamily; 3] = [IpFamily::Inet, IpFamily::Inet6, IpFamily::V4Mapped];

    /// Its name in case files and reports.
    pub fn name(self) -> &'static str {
        match self {
            IpFamily::Inet => "inet",
            IpFamily::Inet6 => "inet6",
            IpFamily::V4Mapped => "v4-mapped",
        }
    }

    /// Whether the socket is `AF_INET6`.
    pub fn socket_is_inet6(self) -> bool {
        self != IpFamily::Inet
    }

    /// Whether the network between the DUT and the peer is IPv6.
    pub fn network_is_inet6(self) -> bool {
        self == IpFamily::Inet6
    }

    /// The `sa_family` a `bind` or `connect` passes unless the step says otherwise.
    pub fn sa_family(self) -> Family {
        if self.socket_is_inet6() {
            Family::Inet6
        } else {
            Family::Inet
        }
    }

    /// The DUT interface's address when the case names none.
    pub fn default_dut(self) -> IpCidr {
        if self.network_is_inet6() {
            IpCidr {
                addr: IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)),
                prefix: 64,
            }
        } else {
            // 198.18.0.0/15 is set aside for network device benchmarking (RFC 2544).
            IpCidr {
                addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
                prefix: 24,
            }
        }
    }

    /// The peer's address when the case names none.
    pub fn default_peer(self) -> IpAddr {
        if self.network_is_inet6() {
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))
        }
    }

    /// Whether `addr` belongs on this family's network.
    pub fn holds(self, addr: IpAddr) -> bool {
        addr.is_ipv6() == self.network_is_inet6()
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An address as a socket of `family` is given it: v4-mapped (`::ffff:a.b.c.d`) when a
/// v4-mapped case names an IPv4 address (`0.0.0.0` is `::`, the any address a dual-stack
/// program binds), as it is otherwise.
pub fn socket_address(family: IpFamily, addr: IpAddr) -> IpAddr {
    match (family, addr) {
        (IpFamily::V4Mapped, IpAddr::V4(v4)) if v4.is_unspecified() => {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        }
        (IpFamily::V4Mapped, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => addr,
    }
}

fn default_time_limit() -> TimeLimit {
    TimeLimit(30.0)
}
fn default_settle() -> u64 {
    100
}

/// A time limit in seconds, 0 < t ≤ 600.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("exclusiveMinimum" = 0, "maximum" = 600))]
#[serde(try_from = "f64", into = "f64")]
pub struct TimeLimit(pub f64);
impl TryFrom<f64> for TimeLimit {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v > 0.0 && v <= 600.0 {
            Ok(TimeLimit(v))
        } else {
            Err(format!("time_limit_s {v} is outside (0, 600]"))
        }
    }
}
impl From<TimeLimit> for f64 {
    fn from(v: TimeLimit) -> f64 {
        v.0
    }
}

/// A sysctl name under `net.` made of `[a-z0-9_]` parts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = r"^net(\.[a-z0-9_]+)+$"))]
#[serde(try_from = "String", into = "String")]
pub struct SysctlName(pub String);
impl TryFrom<String> for SysctlName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let well_formed = name.starts_with("net.")
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        if well_formed {
            Ok(SysctlName(name))
        } else {
            Err(format!(
                "sysctl name '{name}' is not a dotted name under net. (like net.ipv4.tcp_sack)"
            ))
        }
    }
}
impl From<SysctlName> for String {
    fn from(v: SysctlName) -> String {
        v.0
    }
}

/// A sysctl value: a number or a string such as `"4096 131072 6291456"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    Int(i64),
    Text(String),
}
/// The ports Linux may choose for a socket that did not name one: those of
/// `ip_local_port_range` that `ip_local_reserved_ports` leaves (`inet_is_local_reserved_port`).
/// The judge's own reading of the two sysctls, kept apart from the stack's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralPorts {
    /// `ip_local_port_range`, both ends included.
    pub range: (u16, u16),
    /// `ip_local_reserved_ports`, as ranges with both ends included.
    pub reserved: Vec<(u16, u16)>,
}

impl Default for EphemeralPorts {
    /// A new namespace's: 32768-60999, nothing reserved.
    fn default() -> Self {
        EphemeralPorts {
            range: (32768, 60999),
            reserved: Vec::new(),
        }
    }
}

impl EphemeralPorts {
    /// Whether `port` is listed in `ip_local_reserved_ports`.
    pub fn is_reserved(&self, port: u16) -> bool {
        self.reserved
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&port))
    }
}

/// `ip_local_reserved_ports` text (`"40000-40998,41000"`, `proc_do_large_bitmap`) as ranges.
/// A malformed item is left out: preflight refuses a value the kernel does not take.
fn parse_port_list(text: &str) -> Vec<(u16, u16)> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .filter_map(|item| match item.split_once('-') {
            Some((lo, hi)) => Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)),
            None => item.parse().ok().map(|p| (p, p)),
        })
        .collect()
}

impl fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysctlValue::Int(v) => write!(f, "{v}"),
            SysctlValue::Text(v) => f.write_str(v),
        }
    }
}

/// The network between the DUT and the peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopologyCase {
    /// The veth MTU on both ends.
    #[serde(default = "default_mtu", skip_serializing_if = "is_default_mtu")]
    pub mtu: Mtu,
    /// The DUT's address and prefix length, or `none` for an interface with no address;
    /// the family's default (198.18.0.1/24, 2001:2::1/64) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dut: Option<DutAddress>,
    /// The peer's address (the scripted peer answers ARP or neighbour solicitations for
    /// it); the family's default (198.18.0.2, 2001:2::2) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    /// Extra routes (the connected route of `dut` is always there).
    #[serde(default, skip_serializing_if = "is_default")]
    pub routes: Vec<RouteCase>,
}
impl Default for TopologyCase {
    fn default() -> Self {
        TopologyCase {
            mtu: default_mtu(),
            dut: None,
            peer: None,
            routes: Vec::new(),
        }
    }
}
impl TopologyCase {
    /// The DUT interface's address in a case of `family`: its own, or the family's default.
    pub fn dut_for(&self, family: IpFamily) -> Option<IpCidr> {
        match self.dut {
            Some(DutAddress(cidr)) => cidr,
            None => Some(family.default_dut()),
        }
    }
    /// The peer's address in a case of `family`: its own, or the family's default.
    pub fn peer_for(&self, family: IpFamily) -> IpAddr {
        self.peer.unwrap_or_else(|| family.default_peer())
    }
}
fn default_mtu() -> Mtu {
    Mtu(1500)
}

/// The DUT interface's address and prefix length (`198.18.0.1/24`, `2001:2::1/64`), or
/// `none`: the interface is up with no address, so there is no connected route and no
/// source address, and a connect that needs a route fails with ENETUNREACH
/// (`ip_route_output_key_hash_rcu`, `ip6_route_output` find none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = r"^(none|[0-9a-fA-F:.]+/[0-9]{1,3})$"))]
#[serde(try_from = "String", into = "String")]
pub struct DutAddress(pub Option<IpCidr>);
impl TryFrom<String> for DutAddress {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "none" {
            return Ok(DutAddress(None));
        }
        if !text.contains('/') {
            return Err(format!(
                "{text:?} is neither an address/prefix like 198.18.0.1/24 or 2001:2::1/64 nor none"
            ));
        }
        IpCidr::try_from(text).map(|cidr| DutAddress(Some(cidr)))
    }
}
impl From<DutAddress> for String {
    fn from(v: DutAddress) -> String {
        v.0.map_or_else(|| "none".into(), String::from)
    }
}

/// An interface MTU: 68 (the IPv4 minimum) up to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minimum" = 68, "maximum" = 65535))]
#[serde(try_from = "u32", into = "u32")]
pub struct Mtu(pub u32);
impl TryFrom<u32> for Mtu {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if (68..=65535).contains(&v) {
            Ok(Mtu(v))
        } else {
            Err(format!("MTU {v} is outside 68..=65535"))
        }
    }
}
impl From<Mtu> for u32 {
    fn from(v: Mtu) -> u32 {
        v.0
    }
}

/// `a.b.c.d/n` or `x:y::z/n`; `default` is `0.0.0.0/0` (read as `::/0` in an IPv6 case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = r"^(default|[0-9a-fA-F:.]+/[0-9]{1,3})$"))]
#[serde(try_from = "String", into = "String")]
pub struct IpCidr {
    pub addr: IpAddr,
    pub prefix: u8,
}
impl IpCidr {
    /// Whether this is the `default` route's destination of either family.
    pub fn is_default_route(&self) -> bool {
        self.prefix == 0 && self.addr.is_unspecified()
    }
    /// This prefix in `family`'s network: `default` becomes `::/0` in an IPv6 case.
    pub fn in_family(self, family: IpFamily) -> IpCidr {
        if self.is_default_route() && family.network_is_inet6() {
            IpCidr {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                prefix: 0,
            }
        } else {
            self
        }
    }
}
impl TryFrom<String> for IpCidr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let text = if text == "default" {
            "0.0.0.0/0".to_string()
        } else {
            text
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(|| {
            format!("'{text}' is not an address/prefix like 198.18.0.1/24 or 2001:2::1/64")
        })?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 or IPv6 address"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("prefix length '{prefix}' is not 0..={bits}"))?;
        Ok(IpCidr { addr, prefix })
    }
}
impl From<IpCidr> for String {
    fn from(v: IpCidr) -> String {
        format!("{}/{}", v.addr, v.prefix)
    }
}

/// A route: `to` a prefix (or `default`), optionally `via` a gateway, of a `type`, with the
/// metrics TCP reads at connect time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCase {
    pub to: IpCidr,
    #[serde(default, skip_serializing_if = "is_default")]
    pub via: Option<IpAddr>,
    #[serde(default, rename = "type", skip_serializing_if = "is_default")]
    pub kind: RouteType,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mtu: Option<Mtu>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub advmss: Option<u32>,
    /// The `initrwnd` metric: the initial receive window in segments, which caps the SYN's
    /// window (`tcp_select_initial_window`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub initrwnd: Option<InitRwnd>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub src: Option<IpAddr>,
}

/// An `initrwnd` route metric, 1 ≤ segments ≤ 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minimum" = 1, "maximum" = 1024))]
#[serde(try_from = "u32", into = "u32")]
pub struct InitRwnd(pub u32);
impl TryFrom<u32> for InitRwnd {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if (1..=1024).contains(&v) {
            Ok(InitRwnd(v))
        } else {
            Err(format!("initrwnd {v} is outside 1..=1024 segments"))
        }
    }
}
impl From<InitRwnd> for u32 {
    fn from(v: InitRwnd) -> u32 {
        v.0
    }
}

/// Route types as `ip route` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteType {
    #[default]
    Unicast,
    Unreachable,
    Prohibit,
    Blackhole,
}

/// One socket call (or a pause) in a case's script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// `fcntl(O_NONBLOCK)` on or off.
    Nonblocking(bool),
    Setsockopt(SockOpt),
    Getsockopt(GetOpt),
    Bind(BindStep),
    Connect(ConnectStep),
    Poll(PollStep),
    Send(SendStep),
    Recv(RecvStep),
    Close,
    /// `socket(AF_INET, SOCK_STREAM, 0)` again: a new socket for the steps after it, once
    /// a `close` step closed the one before (every case starts with one socket made).
    Socket,
    /// Does nothing for this long (a scenario's pause, e.g. before a second connect).
    WaitMs(u64),
}

impl Step {
    /// The call's name as the log and `expect.calls` use it.
    pub fn call_name(&self) -> &'static str {
        match self {
            Step::Nonblocking(_) => "fcntl",
            Step::Setsockopt(_) => "setsockopt",
            Step::Getsockopt(_) => "getsockopt",
            Step::Bind(_) => "bind",
            Step::Connect(_) => "connect",
            Step::Poll(_) => "poll",
            Step::Send(_) => "send",
            Step::Recv(_) => "recv",
            Step::Close => "close",
            Step::Socket => "socket",
            Step::WaitMs(_) => "wait",
        }
    }
}

/// The options a case may set, by their Linux names, with the value passed as is (an
/// out-of-range value is a scenario — the kernel's EINVAL is the result to compare).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum SockOpt {
    #[serde(rename = "TCP_MAXSEG")]
    TcpMaxseg(i32),
    #[serde(rename = "TCP_SYNCNT")]
    TcpSyncnt(i32),
    #[serde(rename = "TCP_USER_TIMEOUT")]
    TcpUserTimeout(i32),
    #[serde(rename = "TCP_FASTOPEN_CONNECT")]
    TcpFastopenConnect(i32),
    #[serde(rename = "TCP_WINDOW_CLAMP")]
    TcpWindowClamp(i32),
    #[serde(rename = "TCP_NODELAY")]
    TcpNodelay(i32),
    /// `TCP_QUICKACK`: 0 enters pingpong (interactive) mode, so the ACK of the SYN-ACK
    /// waits for the delayed-ACK timer; non-zero leaves it.
    #[serde(rename = "TCP_QUICKACK")]
    TcpQuickack(i32),
    /// `TCP_RTO_MAX_MS` (Linux 6.15 and later): the cap on this socket's RTO, 1000 to
    /// 120000 ms; it also shortens the time `tcp_model_timeout` allows the SYNs.
    #[serde(rename = "TCP_RTO_MAX_MS")]
    TcpRtoMaxMs(i32),
    #[serde(rename = "SO_RCVBUF")]
    SoRcvbuf(i32),
    #[serde(rename = "SO_SNDBUF")]
    SoSndbuf(i32),
    /// `SO_SNDTIMEO`, given in milliseconds.
    #[serde(rename = "SO_SNDTIMEO_MS")]
    SoSndtimeoMs(u32),
    #[serde(rename = "IP_TOS")]
    IpTos(i32),
    #[serde(rename = "IP_TTL")]
    IpTtl(i32),
    /// Raw IP option bytes in hex, e.g. `"07 07 04 00 00 00 00 00"` (record route).
    #[serde(rename = "IP_OPTIONS")]
    IpOptions(HexBytes),
    #[serde(rename = "IP_BIND_ADDRESS_NO_PORT")]
    IpBindAddressNoPort(i32),
    /// `IPV6_V6ONLY`: an `AF_INET6` socket that may not reach v4-mapped destinations.
    #[serde(rename = "IPV6_V6ONLY")]
    Ipv6V6only(i32),
    /// `IPV6_TCLASS`: the traffic class of the socket's IPv6 packets (-1: the default).
    #[serde(rename = "IPV6_TCLASS")]
    Ipv6Tclass(i32),
    /// `IPV6_UNICAST_HOPS`: the hop limit of the socket's IPv6 packets (-1: the route's).
    #[serde(rename = "IPV6_UNICAST_HOPS")]
    Ipv6UnicastHops(i32),
}

/// Options a case may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GetOpt {
    #[serde(rename = "SO_ERROR")]
    SoError,
    #[serde(rename = "TCP_MAXSEG")]
    TcpMaxseg,
    #[serde(rename = "SO_RCVBUF")]
    SoRcvbuf,
}

/// Bytes written as hex pairs, spaces allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = r"^\s*([0-9A-Fa-f]\s*[0-9A-Fa-f]\s*)*$"))]
#[serde(try_from = "String", into = "String")]
pub struct HexBytes(pub Vec<u8>);
impl TryFrom<String> for HexBytes {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("'{text}' is not hex bytes like \"01 03 03 07\""));
        }
        let bytes = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("checked hex"))
            .collect::<Vec<u8>>();
        if bytes.len() > 40 {
            return Err(format!(
                "{} option bytes: at most 40 fit in a header",
                bytes.len()
            ));
        }
        Ok(HexBytes(bytes))
    }
}
impl From<HexBytes> for String {
    fn from(v: HexBytes) -> String {
        v.0.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindStep {
    /// The address; the family's unspecified address (`0.0.0.0`, `::`) when absent.
    #[serde(default, skip_serializing_if = "is_default")]
    pub addr: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u16,
    /// Overrides the address length passed to the kernel (for the EINVAL scenarios).
    #[serde(default, skip_serializing_if = "is_default")]
    pub addrlen: Option<u32>,
}

/// `connect()`; by default to the peer's address, port 80, as a plain `sockaddr_in` (or
/// `sockaddr_in6` on an `AF_INET6` socket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectStep {
    /// The destination; the peer's address when absent. An IPv4 address in a `v4-mapped`
    /// case is passed v4-mapped.
    #[serde(default, skip_serializing_if = "is_default")]
    pub addr: Option<IpAddr>,
    #[serde(default = "default_port", skip_serializing_if = "is_default_port")]
    pub port: u16,
    /// The `sa_family` passed; the socket's own when absent.
    #[serde(default, skip_serializing_if = "is_default")]
    pub family: Option<Family>,
    /// `sin6_flowinfo` (an `AF_INET6` sockaddr only).
    #[serde(default, skip_serializing_if = "is_default")]
    pub flowinfo: u32,
    /// `sin6_scope_id` (an `AF_INET6` sockaddr only).
    #[serde(default, skip_serializing_if = "is_default")]
    pub scope_id: u32,
    /// Overrides the address length passed to the kernel (for the EINVAL scenarios).
    #[serde(default, skip_serializing_if = "is_default")]
    pub addrlen: Option<u32>,
}
fn default_port() -> u16 {
    80
}

/// The `sa_family` a connect passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Family {
    #[default]
    #[serde(rename = "AF_INET")]
    Inet,
    #[serde(rename = "AF_INET6")]
    Inet6,
    #[serde(rename = "AF_UNSPEC")]
    Unspec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollStep {
    pub events: Vec<PollFlag>,
    pub timeout_ms: i32,
}

/// Poll event bits by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PollFlag {
    #[serde(rename = "POLLIN")]
    In,
    #[serde(rename = "POLLOUT")]
    Out,
    #[serde(rename = "POLLRDHUP")]
    RdHup,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendStep {
    pub bytes: ByteCount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecvStep {
    pub max: ByteCount,
}

/// A payload size, at most 1 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("maximum" = 1048576))]
#[serde(try_from = "u32", into = "u32")]
pub struct ByteCount(pub u32);
impl TryFrom<u32> for ByteCount {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if v <= 1 << 20 {
            Ok(ByteCount(v))
        } else {
            Err(format!("{v} bytes is more than the 1 MiB a case may move"))
        }
    }
}
impl From<ByteCount> for u32 {
    fn from(v: ByteCount) -> u32 {
        v.0
    }
}

/// The scripted remote end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerScript {
    #[serde(default, skip_serializing_if = "is_default")]
    pub arp: ArpMode,
    /// Reactions to the first, second, … SYN.
    #[serde(default, skip_serializing_if = "is_default")]
    pub syn: Vec<SynReaction>,
    /// The reaction to every SYN beyond the list.
    #[serde(default, skip_serializing_if = "is_default")]
    pub then: SynReaction,
    /// The peer's initial sequence number.
    #[serde(
        default = "default_peer_isn",
        skip_serializing_if = "is_default_peer_isn"
    )]
    pub isn: u32,
    /// What the peer does once the handshake is complete, in order.
    #[serde(default, skip_serializing_if = "is_default")]
    pub established: Vec<PeerAction>,
    /// How the peer answers the DUT's FIN.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_fin: FinReply,
    /// How the peer takes the DUT's data.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_data: DataReply,
    /// How long the peer waits before answering the DUT's FIN. Not zero by default: the
    /// kernel's last ACK then depends on whether `close()` had returned when the answer
    /// arrived (the full socket sends it with the next IP ID, a TIME-WAIT socket through the
    /// control socket with ID 0), and a scripted peer must not race the DUT.
    #[serde(
        default = "default_fin_delay",
        skip_serializing_if = "is_default_fin_delay"
    )]
    pub fin_delay_ms: u64,
    /// What times the peer's segments once a SYN-ACK has opened the connection.
    #[serde(default, skip_serializing_if = "is_default")]
    pub clock: PeerClock,
}
fn default_fin_delay() -> u64 {
    10
}
impl Default for PeerScript {
    fn default() -> Self {
        PeerScript {
            arp: ArpMode::default(),
            syn: Vec::new(),
            then: SynReaction::default(),
            isn: default_peer_isn(),
            established: Vec::new(),
            on_fin: FinReply::default(),
            on_data: DataReply::default(),
            fin_delay_ms: default_fin_delay(),
            clock: PeerClock::default(),
        }
    }
}

/// What times the peer's segments on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerClock {
    /// React to each segment as it comes: ACK each data segment, answer a FIN after
    /// `fin_delay_ms`, and play the `established` actions at their scripted times. What a
    /// hand-written exchange wants, but when the DUT sends more than one flight, those ACKs
    /// clock its sending while its application is still making calls, and where the peer's
    /// scripted segments land among its segments is then a matter of timing.
    #[default]
    EachSegment,
    /// Act only on a quiet line (see [`QuietClock`]). Each round of the DUT's sending ends
    /// before the peer's next segment, whatever the timing, so generated scenarios use it.
    Quiet(QuietClock),
}

/// A peer that acts only once the DUT has sent nothing for a while (nor the peer itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietClock {
    /// After this much silence, one cumulative ACK (or the answer to the DUT's FIN, as
    /// `on_fin` says) for all the DUT sent since the last answer. Short, so that it comes
    /// before the DUT's own timers would (the loss probe, at least a jiffy); `fin_delay_ms`
    /// does not apply.
    pub answer_ms: QuietMs,
    /// After this much silence, with nothing left to answer, the next `established` action
    /// (no earlier than its `wait_ms` allow). Long, so that the DUT's reaction to the
    /// previous segment (the next flight, an ACK, a RST) is complete before it.
    pub action_ms: QuietMs,
}

/// A quiet period, 1 ≤ ms ≤ 10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minimum" = 1, "maximum" = 10000))]
#[serde(try_from = "u64", into = "u64")]
pub struct QuietMs(pub u64);
impl TryFrom<u64> for QuietMs {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if (1..=10_000).contains(&v) {
            Ok(QuietMs(v))
        } else {
            Err(format!("quiet period {v} ms is outside 1..=10000"))
        }
    }
}
impl From<QuietMs> for u64 {
    fn from(v: QuietMs) -> u64 {
        v.0
    }
}
fn default_peer_isn() -> u32 {
    0x5eed_0000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
/// Whether the peer resolves its address for the DUT: answers ARP requests (IPv4) or
/// neighbour solicitations (IPv6), or stays silent.
pub enum ArpMode {
    #[default]
    Reply,
    Silent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinReply {
    /// ACK the FIN and send a FIN of our own.
    #[default]
    AckFin,
    /// ACK the FIN only.
    Ack,
    /// Say nothing.
    Ignore,
}

/// How the peer takes a segment of the DUT's that carries data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataReply {
    /// Take it and acknowledge it (at once, or when the line is quiet).
    #[default]
    Ack,
    /// Drop it unacknowledged, as a receiver with no room would: the DUT's data stays in
    /// flight and its retransmission timer decides what it sends again. A FIN behind the
    /// data is out of order, so it is dropped too.
    Ignore,
}

/// What the peer does with one SYN.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SynReaction {
    #[default]
    Drop,
    Rst(RstSpec),
    Synack(SynAckSpec),
    Icmp(IcmpSpec),
    /// A runaway peer: answers with `count` copies of a RST or SYN-ACK, back to back.
    Flood(FloodSpec),
}

/// What a flooding peer sends, and how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FloodSpec {
    pub kind: FloodKind,
    pub count: FloodCount,
}

/// The segment a flood repeats: a RST (acceptable ACK) or Linux's default SYN-ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FloodKind {
    Rst,
    Synack,
}

/// How many frames a flood sends, 1 ≤ n ≤ 10^6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minimum" = 1, "maximum" = 1000000))]
#[serde(try_from = "u32", into = "u32")]
pub struct FloodCount(pub u32);
impl TryFrom<u32> for FloodCount {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if (1..=1_000_000).contains(&v) {
            Ok(FloodCount(v))
        } else {
            Err(format!("flood count {v} is outside 1..=1000000"))
        }
    }
}
impl From<FloodCount> for u32 {
    fn from(v: FloodCount) -> u32 {
        v.0
    }
}

/// A RST answering a SYN.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RstSpec {
    /// Send without the ACK flag (and ack field 0).
    #[serde(default, skip_serializing_if = "is_default")]
    pub no_ack: bool,
    /// Added to the SYN's seq + 1 to make the ack field (0: acceptable).
    #[serde(default, skip_serializing_if = "is_default")]
    pub ack_delta: i64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub delay_ms: u64,
}

/// A SYN-ACK answering a SYN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynAckSpec {
    /// Options in order; Linux's own SYN-ACK set when absent.
    #[serde(default, skip_serializing_if = "is_default")]
    pub options: Option<Vec<PeerOption>>,
    #[serde(default = "default_window", skip_serializing_if = "is_default_window")]
    pub window: u16,
    /// Added to the SYN's seq + 1 to make the ack field (0: acceptable).
    #[serde(default, skip_serializing_if = "is_default")]
    pub ack_delta: i64,
    /// Set ECE (and `cwr`) on the SYN-ACK.
    #[serde(default, skip_serializing_if = "is_default")]
    pub ece: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cwr: bool,
    /// Payload bytes carried on the SYN-ACK.
    #[serde(default, skip_serializing_if = "is_default")]
    pub payload: u16,
    #[serde(default, skip_serializing_if = "is_default")]
    pub fin: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub delay_ms: u64,
    /// The SYN-ACK's IP TOS byte (DSCP and ECN bits); a RST answering it carries it back
    /// with the ECN bits cleared (`tcp_v4_send_reset`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tos: u8,
}
impl Default for SynAckSpec {
    fn default() -> Self {
        SynAckSpec {
            options: None,
            window: default_window(),
            ack_delta: 0,
            ece: false,
            cwr: false,
            payload: 0,
            fin: false,
            delay_ms: 0,
            tos: 0,
        }
    }
}
fn default_window() -> u16 {
    65535
}

/// A TCP option the peer puts on its SYN-ACK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerOption {
    Mss(u16),
    SackPerm,
    /// Timestamps with the peer's clock value and the SYN's TSval echoed.
    TsEcho,
    /// Timestamps with explicit values.
    Ts {
        val: u32,
        ecr: u32,
    },
    Nop,
    Eol,
    Wscale(u8),
    /// Bytes as they are, e.g. `"03 04 07"` (a bad length), for malformed options.
    Raw(HexBytes),
}

/// An ICMP error quoting the SYN, sent from the peer's address (or `from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IcmpSpec {
    #[serde(rename = "type")]
    pub icmp_type: u8,
    pub code: u8,
    /// Next-hop MTU for "fragmentation needed" (type 3 code 4).
    #[serde(default, skip_serializing_if = "is_default")]
    pub mtu: Option<u16>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub from: Option<IpAddr>,
    /// Added to the quoted sequence number (non-zero puts it out of the window).
    #[serde(default, skip_serializing_if = "is_default")]
    pub seq_delta: i64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub delay_ms: u64,
    /// Quote only this many bytes of the SYN's IP packet (default: all of it, as
    /// `icmp_send` does). Fewer than its IP header and 8 bytes of TCP is a malformed
    /// quote, which Linux drops (`icmp_socket_deliver`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub quote_bytes: Option<usize>,
    /// Write this into the quoted IP header's protocol field: the error then goes to
    /// that protocol's handler (17: `udp_err`), not to TCP's.
    #[serde(default, skip_serializing_if = "is_default")]
    pub quote_protocol: Option<u8>,
}

/// An action of the peer after the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerAction {
    /// Send this many bytes of data.
    Send(ByteCount),
    Fin,
    Rst,
    WaitMs(u64),
}

/// Absolute assertions on the kernel's behaviour, checked for every DUT.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default, skip_serializing_if = "is_default")]
    pub calls: Vec<CallExpect>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub syn: Option<SynExpect>,
    /// The frames on the wire, in order: each a label (`"> S"`, `"< S."`,
    /// `"> ARP who-has"`) or a pattern with field matchers. `frames: []` asserts that
    /// nothing was sent; a bare `frames:` (YAML null) is refused, since it would read as
    /// "not checked".
    #[serde(
        default,
        deserialize_with = "frames_not_null",
        skip_serializing_if = "is_default"
    )]
    pub frames: Option<Vec<FramePattern>>,
    /// How `frames` is matched against the trace: `exact` (every frame, the default),
    /// `prefix` (the trace starts with them) or `subsequence` (they appear in this order,
    /// other frames may come between).
    #[serde(default, skip_serializing_if = "is_default")]
    pub frames_match: FramesMatch,
    /// How far each connection's ephemeral port lies above the one before, counted around
    /// `ip_local_port_range`: `[low, high]`, both included. After a connect Linux moves the
    /// next search for the same destination 2 to 16 ports on (`__inet_hash_connect`'s
    /// `table_perturb` step), so a second connect to the peer is `[2, 16]` above the first.
    #[serde(default, skip_serializing_if = "is_default")]
    pub port_step: Option<PortStep>,
}

/// `expect.port_step`: `[low, high]` with `1 <= low <= high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "[u16; 2]", into = "[u16; 2]")]
pub struct PortStep {
    pub low: u16,
    pub high: u16,
}
impl TryFrom<[u16; 2]> for PortStep {
    type Error = String;
    fn try_from([low, high]: [u16; 2]) -> Result<Self, String> {
        if low == 0 || low > high {
            return Err(format!(
                "port_step [{low}, {high}] is not a range of steps: it needs 1 <= low <= high"
            ));
        }
        Ok(PortStep { low, high })
    }
}
impl From<PortStep> for [u16; 2] {
    fn from(v: PortStep) -> [u16; 2] {
        [v.low, v.high]
    }
}

/// `frames:` with no value is YAML null; a case that wrote it meant "no frame" or forgot
/// the list, and neither may silently turn the check off.
fn frames_not_null<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<Vec<FramePattern>>, D::Error> {
    match Option::<Vec<FramePattern>>::deserialize(de)? {
        Some(list) => Ok(Some(list)),
        None => Err(serde::de::Error::custom(
            "`frames:` has no value (YAML null); write `frames: []` to assert that no frame \
             is sent, or list the frames",
        )),
    }
}

/// How an `expect.frames` list is matched against a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FramesMatch {
    /// Every frame of the trace, in order, and no other.
    #[default]
    Exact,
    /// The first frames of the trace; later ones are not checked.
    Prefix,
    /// Each pattern matches the first frame after the previous match with its label; frames
    /// between are not checked.
    Subsequence,
}

/// One entry of `expect.frames`: a frame's label alone, or a label with field matchers.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FramePattern {
    /// `"> S"`: direction and kind, as a trace's label prints them.
    Label(FrameLabel),
    Fields(FrameFields),
}

impl FramePattern {
    pub fn label(&self) -> &FrameLabel {
        match self {
            FramePattern::Label(label) => label,
            FramePattern::Fields(f) => &f.frame,
        }
    }
}

/// Read by hand rather than `untagged`, so that an unknown key or a bad value inside a
/// pattern is reported with its own field path instead of "matches no variant".
impl<'de> Deserialize<'de> for FramePattern {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FramePattern;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a frame label like \"> S\" or { frame: \"> S\", fields: {...} }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FramePattern, E> {
                FrameLabel::try_from(v.to_string())
                    .map(FramePattern::Label)
                    .map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<FramePattern, A::Error> {
                FrameFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(FramePattern::Fields)
            }
        }
        de.deserialize_any(Visitor)
    }
}

/// A frame's direction and kind as a trace labels it: `>` (from the DUT) or `<`, then
/// `ARP who-has`, `ARP reply`, TCP flags in tcpdump's letters (`S`, `S.`, `F.`, `R.`, `SEW`
/// for SYN|ECE|CWR; compared as a set, so `SWE` is the same), with ` data` when the
/// segment carries payload, or `ICMP type/code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = r"^[<>] \S.*$"))]
#[serde(try_from = "String", into = "String")]
pub struct FrameLabel(pub String);
impl TryFrom<String> for FrameLabel {
    type Error = String;
    fn try_from(label: String) -> Result<Self, String> {
        let mut parts = label.splitn(2, ' ');
        let dir = parts.next().unwrap_or("");
        let kind = parts.next().unwrap_or("").trim();
        if (dir == ">" || dir == "<") && !kind.is_empty() {
            Ok(FrameLabel(format!("{dir} {kind}")))
        } else {
            Err(format!(
                "frame label {label:?} is not a direction (`>` from the DUT, `<` to it), a \
                 space and a kind (like \"> S\", \"< S.\", \"> ARP who-has\")"
            ))
        }
    }
}
impl From<FrameLabel> for String {
    fn from(v: FrameLabel) -> String {
        v.0
    }
}
impl FrameLabel {
    /// The kind after the direction, e.g. `S.` or `ARP who-has`.
    pub fn kind(&self) -> &str {
        &self.0[2..]
    }
}

/// A frame pattern with field matchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrameFields {
    /// The frame's label, as in the plain form.
    pub frame: FrameLabel,
    /// Field values, keyed by the field's path below `frame[N].` as reports print it:
    /// `ip.ttl`, `ip.tos`, `ip.options`, `tcp.window`, `tcp.sport`, `tcp.options` (the
    /// whole list, like `nop,nop,TS`), `tcp.options[2]`, `arp.target_ip`, `icmp.type`, ...
    /// Values are compared as the trace normalizes them (seq/ack relative to the ISN, the IP
    /// ID as a delta, the ephemeral port as `$port`); numbers also match in hex (`0x10`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub fields: BTreeMap<FieldPath, FieldValue>,
    /// Milliseconds from the frame the previous pattern matched (or from the trace's origin,
    /// for the first pattern) to this one, judged like a kernel timer of that length: within
    /// `[gap - 1 jiffy, gap + its wheel granularity + 1 jiffy]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub gap_ms: Option<f64>,
}

/// A frame field's path below `frame[N].`, one that the diff produces for some frame.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct FieldPath(pub String);
impl TryFrom<String> for FieldPath {
    type Error = String;
    fn try_from(path: String) -> Result<Self, String> {
        if FieldPath::known(&path) {
            Ok(FieldPath(path))
        } else {
            Err(format!(
                "{path:?} is not a frame field; fields are named as reports print them below \
                 `frame[N].`: dir, other, arp.{{op,sender_ip,target_ip}}, \
                 ip.{{{ip}}}, tcp.{{{tcp}}}, tcp.options[N], icmp.{{{icmp}}}",
                ip = FieldPath::IP.join(","),
                tcp = FieldPath::TCP.join(","),
                icmp = FieldPath::ICMP.join(","),
            ))
        }
    }
}
impl From<FieldPath> for String {
    fn from(v: FieldPath) -> String {
        v.0
    }
}
impl FieldPath {
    const IP: [&'static str; 9] = [
        "ihl",
        "tos",
        "ttl",
        "df",
        "id",
        "options",
        "src",
        "dst",
        "checksum_ok",
    ];
    const TCP: [&'static str; 12] = [
        "sport",
        "dport",
        "flags",
        "seq",
        "ack",
        "window",
        "urg_ptr",
        "doff",
        "options",
        "payload_len",
        "checksum_ok",
        "options[N].ecr",
    ];
    const ICMP: [&'static str; 5] = ["type", "code", "rest", "quoted_seq", "checksum_ok"];
    const ARP: [&'static str; 3] = ["op", "sender_ip", "target_ip"];
    const IP6: [&'static str; 7] = [
        "tclass",
        "flow_label",
        "hop_limit",
        "payload_len",
        "next_header",
        "src",
        "dst",
    ];
    const ICMP6: [&'static str; 7] = [
        "type",
        "code",
        "rest",
        "target",
        "lladdr",
        "quoted_seq",
        "checksum_ok",
    ];

    /// Whether `path` names a field the trace has for some frame (`tcp.options[3]` for any
    /// index). `diff::frame_fields` produces these; a test there keeps the two in step.
    pub fn known(path: &str) -> bool {
        if path == "dir" || path == "other" {
            return true;
        }
        let Some((layer, field)) = path.split_once('.') else {
            return false;
        };
        fn indexed(f: &str) -> Option<&str> {
            f.strip_prefix("options[")
                .and_then(|rest| rest.split_once(']'))
                .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .map(|(_, tail)| tail)
        }
        match layer {
            "ip" => FieldPath::IP.contains(&field),
            "arp" => FieldPath::ARP.contains(&field),
            "icmp" => FieldPath::ICMP.contains(&field),
            "ip6" => FieldPath::IP6.contains(&field),
            "icmp6" => FieldPath::ICMP6.contains(&field),
            "eth" => field == "dst",
            "tcp" => match indexed(field) {
                Some("") | Some(".ecr") => true,
                Some(_) => false,
                None => FieldPath::TCP.contains(&field) && !field.contains('['),
            },
            _ => false,
        }
    }
}

/// A field's expected value: any YAML scalar, compared as text (numbers also by value).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

/// Read by hand so that a list or a map where a value belongs gets a plain message.
impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a field value: a number, true/false or text (quote a key with [ ] in a \
                     flow mapping: { \"tcp.options[0]\": nop })",
                )
            }
            fn visit_i64<E>(self, v: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FieldValue, E> {
                i64::try_from(v)
                    .map(FieldValue::Int)
                    .map_err(|_| E::custom(format!("{v} is larger than any field")))
            }
            fn visit_bool<E>(self, v: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::Bool(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(v.to_string()))
            }
        }
        de.deserialize_any(Visitor)
    }
}
impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Int(v) => write!(f, "{v}"),
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::Text(v) => f.write_str(v),
        }
    }
}

/// The result of the `nth` call named `call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallExpect {
    pub call: String,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub nth: usize,
    /// `0`, an errno name, poll flags joined by `|`, or a getsockopt value.
    pub result: String,
    /// When the call returned, in ms since the DUT's first frame.
    #[serde(default, skip_serializing_if = "is_default")]
    pub at_ms: Option<f64>,
    /// The kernel timers, in order, whose expiries end the call (e.g. `[1000, 2000, 4000]`
    /// for three SYN timeouts). Each fires up to one wheel granularity late and the next is
    /// armed from the late firing, so lateness adds up: the nominal time is their sum (unless
    /// `at_ms` says otherwise) and the tolerance the sum of their granularities plus a jiffy.
    #[serde(default, skip_serializing_if = "is_default")]
    pub timer_chain_ms: Option<Vec<f64>>,
    /// Allowed lateness, overriding the derived one; say why in the case's description.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tolerance_ms: Option<f64>,
}
fn one() -> usize {
    1
}

/// Assertions on the SYNs the DUT sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynExpect {
    /// The first SYN's options as printed in traces, e.g. `mss 1460,sackOK,TS,nop,wscale 10`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub options: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub window: Option<u16>,
    /// The first SYN's TCP flags, e.g. `SEW` for SYN|ECE|CWR.
    #[serde(default, skip_serializing_if = "is_default")]
    pub flags: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub ttl: Option<u8>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tos: Option<u8>,
    /// How many SYNs in all.
    #[serde(default, skip_serializing_if = "is_default")]
    pub count: Option<usize>,
    /// Gaps between consecutive SYNs in ms.
    #[serde(default, skip_serializing_if = "is_default")]
    pub intervals_ms: Option<Vec<f64>>,
}

impl Case {
    /// How long the case's own timers should take, in ms, from its expectations (timer
    /// chains, return times, SYN intervals) and the peer's delays: used to start the
    /// longest cases first. 0 when the case says nothing about time.
    pub fn expected_ms(&self) -> f64 {
        let calls = self.expect.calls.iter().map(|c| {
            c.at_ms
                .or_else(|| c.timer_chain_ms.as_ref().map(|t| t.iter().sum()))
                .unwrap_or(0.0)
        });
        let syn = self
            .expect
            .syn
            .as_ref()
            .and_then(|s| s.intervals_ms.as_ref())
            .map_or(0.0, |i| i.iter().sum());
        let waits: u64 = self
            .steps
            .iter()
            .map(|s| if let Step::WaitMs(ms) = s { *ms } else { 0 })
            .sum();
        calls.fold(syn.max(waits as f64), f64::max)
    }

    /// The ports `connect()` and `bind(0)` may pick: the case's `ip_local_port_range` (or
    /// the kernel's default for a new namespace, af_inet.c) less its
    /// `ip_local_reserved_ports`.
    pub fn ephemeral_ports(&self) -> EphemeralPorts {
        let sysctl = |name: &str| {
            self.sysctls
                .get(&SysctlName(name.into()))
                .map(|v| v.to_string())
        };
        let range = sysctl("net.ipv4.ip_local_port_range")
            .and_then(|text| {
                let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
                Some((parts.next()??, parts.next()??))
            })
            .unwrap_or(EphemeralPorts::default().range);
        let reserved = sysctl("net.ipv4.ip_local_reserved_ports")
            .map(|text| parse_port_list(&text))
            .unwrap_or_default();
        EphemeralPorts { range, reserved }
    }

    /// The port each `bind` step asks for, in step order (0: any). A named port is the
    /// case's choice, not the kernel's: once a bind of it succeeds it is compared as a
    /// number, and the ephemeral-port properties (range, parity; `inet_hash_connect`) do
    /// not apply to it ([`crate::observe::trace::build_bound`]).
    pub fn bind_ports(&self) -> Vec<u16> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Bind(b) => Some(b.port),
                _ => None,
            })
            .collect()
    }
}

/// A case file and what it holds.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    pub path: PathBuf,
    pub case: Case,
}

impl LoadedCase {
    /// Reads and checks the case file at `path`.
    pub fn load(path: &Path) -> Result<LoadedCase, CaseError> {
        Ok(LoadedCase {
            case: load(path)?,
            path: path.to_path_buf(),
        })
    }

    /// A case from YAML `text`, its errors and reports naming `path`.
    pub fn parse(path: &Path, text: &str) -> Result<LoadedCase, CaseError> {
        Ok(LoadedCase {
            case: parse(path, text)?,
            path: path.to_path_buf(),
        })
    }
}

/// Reads and checks one case file.
pub fn load(path: &Path) -> Result<Case, CaseError> {
    let read_err = |source| CaseError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_CASE_BYTES {
        return Err(CaseError::Invalid {
            path: path.to_path_buf(),
            field: "(file)".into(),
            message: format!("{size} bytes is larger than the {MAX_CASE_BYTES} a case may be"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse(path, &text)
}

/// Parses and checks case text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Case, CaseError> {
    let mut field = String::from("(document)");
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            field = e.path().to_string();
            e.into_inner()
        })
    });
    let case: Case = parsed.map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        CaseError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            field: field.clone(),
            message: tidy_message(&e.to_string(), line, column, path),
        }
    })?;
    check(path, &case).map_err(|e| with_location(e, text))?;
    Ok(case)
}

/// A cross-field error given the line and column of its field, when the text has it.
fn with_location(error: CaseError, text: &str) -> CaseError {
    match error {
        CaseError::Invalid {
            path,
            field,
            message,
        } => match locate(text, &field) {
            Some((line, column)) => CaseError::Parse {
                path,
                line,
                column,
                field,
                message,
            },
            None => CaseError::Invalid {
                path,
                field,
                message,
            },
        },
        other => other,
    }
}

/// Line and column (1-based) of the field at `field` (`steps[2].wait_ms`,
/// `expect.calls[0]`) in YAML `text`: its key for a mapping entry, else the node; the
/// nearest enclosing field that is written out when the field itself is not (a default).
pub fn locate(text: &str, field: &str) -> Option<(u64, u64)> {
    use serde_saphyr::granit_parser::{Event, Parser};
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.ok()?;
        events.push((
            event,
            (span.start.line() as u64, span.start.col() as u64 + 1),
        ));
    }
    let mut places: Vec<(String, (u64, u64))> = Vec::new();
    // Each node's path and where it starts; a mapping key's position stands for its entry.
    fn node(
        events: &[(Event<'_>, (u64, u64))],
        at: usize,
        path: &str,
        places: &mut Vec<(String, (u64, u64))>,
    ) -> usize {
        let Some((event, place)) = events.get(at) else {
            return at;
        };
        if !places.iter().any(|(p, _)| p == path) {
            places.push((path.to_string(), *place));
        }
        match event {
            Event::SequenceStart(..) => {
                let mut next = at + 1;
                let mut index = 0;
                while next < events.len() && !matches!(events[next].0, Event::SequenceEnd) {
                    next = node(events, next, &format!("{path}[{index}]"), places);
                    index += 1;
                }
                next + 1
            }
            Event::MappingStart(..) => {
                let mut next = at + 1;
                while next < events.len() && !matches!(events[next].0, Event::MappingEnd) {
                    let child = match &events[next].0 {
                        Event::Scalar(key, ..) if path.is_empty() => key.to_string(),
                        Event::Scalar(key, ..) => format!("{path}.{key}"),
                        _ => format!("{path}.?"),
                    };
                    if !places.iter().any(|(p, _)| *p == child) {
                        places.push((child.clone(), events[next].1));
                    }
                    next = node(events, next, &format!("{child}#key"), places);
                    next = node(events, next, &child, places);
                }
                next + 1
            }
            _ => at + 1,
        }
    }
    let start = events
        .iter()
        .position(|(e, _)| matches!(e, Event::MappingStart(..) | Event::SequenceStart(..)))?;
    node(&events, start, "", &mut places);
    let mut wanted = field;
    loop {
        if let Some((_, place)) = places.iter().find(|(p, _)| p == wanted) {
            return Some(*place);
        }
        let cut = wanted.rfind(['.', '['])?;
        wanted = &wanted[..cut];
    }
}

/// serde-saphyr's message repeats the location we already print, and calls the file
/// `<input>` in its snippet; name the file instead.
fn tidy_message(message: &str, line: u64, column: u64, path: &Path) -> String {
    let prefix = format!("error: line {line} column {column}: ");
    message
        .strip_prefix(&prefix)
        .unwrap_or(message)
        .replace("<input>", &path.display().to_string())
}

/// Every address of the network (the DUT's, the peer's, routes', the ICMP sender's) in the
/// case's family, and an IPv6 network's MTU at least IPv6's minimum (1280,
/// `IPV6_MIN_MTU`: below it the kernel turns IPv6 off on the link). Steps may name
/// either family: a wrong one is a scenario (`EAFNOSUPPORT`, a v4-mapped destination).
fn check_family(case: &Case) -> Result<(), (String, String)> {
    let family = case.family;
    let want = if family.network_is_inet6() {
        "an IPv6"
    } else {
        "an IPv4"
    };
    let wrong = |field: String, addr: IpAddr| {
        Err((
            field,
            format!("{addr} is not {want} address, as the case's family {family} needs"),
        ))
    };
    if let Some(DutAddress(Some(cidr))) = case.topology.dut {
        if !family.holds(cidr.addr) {
            return wrong("topology.dut".into(), cidr.addr);
        }
    }
    if let Some(peer) = case.topology.peer {
        if !family.holds(peer) {
            return wrong("topology.peer".into(), peer);
        }
    }
    for (i, route) in case.topology.routes.iter().enumerate() {
        let to = route.to.in_family(family);
        for (name, addr) in [
            ("to", Some(to.addr)),
            ("via", route.via),
            ("src", route.src),
        ] {
            match addr {
                Some(addr) if !family.holds(addr) => {
                    return wrong(format!("topology.routes[{i}].{name}"), addr)
                }
                _ => {}
            }
        }
    }
    let reactions = case.peer.syn.iter().enumerate();
    for (field, reaction) in reactions
        .map(|(i, r)| (format!("peer.syn[{i}].icmp.from"), r))
        .chain(std::iter::once((
            "peer.then.icmp.from".to_string(),
            &case.peer.then,
        )))
    {
        if let SynReaction::Icmp(icmp) = reaction {
            if let Some(from) = icmp.from.filter(|from| !family.holds(*from)) {
                return wrong(field, from);
            }
        }
    }
    if family.network_is_inet6() && case.topology.mtu.0 < 1280 {
        return Err((
            "topology.mtu".into(),
            format!(
                "MTU {} is below IPv6's minimum of 1280 (IPV6_MIN_MTU)",
                case.topology.mtu.0
            ),
        ));
    }
    Ok(())
}

/// Rules that span fields (each field's own range is checked by its type while parsing).
fn check(path: &Path, case: &Case) -> Result<(), CaseError> {
    let invalid = |field: &str, message: String| CaseError::Invalid {
        path: path.to_path_buf(),
        field: field.into(),
        message,
    };
    if case.name.is_empty()
        || !case
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "name",
            format!(
                "'{}': use letters, digits, - and _ (it names files)",
                case.name
            ),
        ));
    }
    for (i, known) in case.known_divergences.iter().enumerate() {
        if known.reason.trim().is_empty() {
            return Err(invalid(
                &format!("known_divergences[{i}].reason"),
                "a known divergence needs its reason".into(),
            ));
        }
    }
    if case.steps.is_empty() {
        return Err(invalid("steps", "a case needs at least one step".into()));
    }
    check_family(case).map_err(|(field, message)| invalid(&field, message))?;
    let topo = &case.topology;
    let peer = topo.peer_for(case.family);
    match topo.dut_for(case.family) {
        Some(dut) => {
            let most = if dut.addr.is_ipv4() { 30 } else { 126 };
            if dut.prefix == 0 || dut.prefix > most {
                return Err(invalid(
                    "topology.dut",
                    format!("prefix /{} leaves no room for a peer", dut.prefix),
                ));
            }
            if peer == dut.addr {
                return Err(invalid(
                    "topology.peer",
                    "the peer cannot share the DUT's address".into(),
                ));
            }
        }
        None => {
            // Linux refuses a gateway it cannot reach ("Nexthop has invalid gateway"), and
            // an on-link route with no address sends from 0.0.0.0, which nothing here models.
            if let Some(i) = topo
                .routes
                .iter()
                .position(|r| r.kind == RouteType::Unicast)
            {
                return Err(invalid(
                    &format!("topology.routes[{i}]"),
                    "with `dut: none` a route can only be unreachable, prohibit or blackhole: \
                     a unicast route needs the DUT's address"
                        .into(),
                ));
            }
        }
    }
    // A run that cannot end within its time limit would only be cut off by it.
    let limit_ms = case.time_limit_s.0 * 1e3;
    let limit = format!("time_limit_s {} ({limit_ms:.0} ms)", case.time_limit_s.0);
    // One socket at a time: a new one only once the one before was closed.
    let mut open = true;
    for (i, step) in case.steps.iter().enumerate() {
        match step {
            Step::Close => open = false,
            Step::Socket if open => {
                return Err(invalid(
                    &format!("steps[{i}]"),
                    "`socket` makes the next socket once the current one is closed: \
                     put a `close` step before it"
                        .into(),
                ));
            }
            Step::Socket => open = true,
            _ => {}
        }
    }
    let mut waited = 0;
    for (i, step) in case.steps.iter().enumerate() {
        if let Step::WaitMs(ms) = step {
            waited += ms;
            if waited as f64 >= limit_ms {
                return Err(invalid(
                    &format!("steps[{i}].wait_ms"),
                    format!(
                        "the steps wait {waited} ms by here, so the case cannot end within \
                         its {limit}; raise time_limit_s or wait less"
                    ),
                ));
            }
        }
    }
    for (i, expect) in case.expect.calls.iter().enumerate() {
        let chain: f64 = expect.timer_chain_ms.iter().flatten().sum();
        if chain >= limit_ms {
            return Err(invalid(
                &format!("expect.calls[{i}].timer_chain_ms"),
                format!(
                    "the timer chain adds up to {chain} ms, so the call cannot return within \
                     the case's {limit}; raise time_limit_s"
                ),
            ));
        }
        if let Some(at) = expect.at_ms.filter(|at| *at >= limit_ms) {
            return Err(invalid(
                &format!("expect.calls[{i}].at_ms"),
                format!(
                    "the call is expected at {at} ms, which the case's {limit} cuts off; \
                     raise time_limit_s"
                ),
            ));
        }
    }
    for (i, expect) in case.expect.calls.iter().enumerate() {
        let count = case
            .steps
            .iter()
            .filter(|s| s.call_name() == expect.call)
            .count()
            + usize::from(expect.call == "socket");
        if expect.nth == 0 || expect.nth > count {
            return Err(invalid(
                &format!("expect.calls[{i}]"),
                format!(
                    "asks for {} call #{} but the steps make {count}",
                    expect.call, expect.nth
                ),
            ));
        }
    }
    Ok(())
}

/// The case as YAML, defaults left out; [`parse`] reads it back to the same case.
pub fn to_yaml(case: &Case) -> Result<String, String> {
    serde_saphyr::to_string(case).map_err(|e| e.to_string())
}

/// Finds the case files under each path (a file, or a directory searched recursively for
/// `*.yaml`), sorted so runs are in a stable order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CaseError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| CaseError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut here = Vec::new();
            walk(path, &mut here).map_err(|source| CaseError::Read {
                path: path.clone(),
                source,
            })?;
            here.sort();
            found.extend(here);
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}

/// Collects the case files under `dir`. A directory reached again through a symbolic
/// link below itself is a loop: an error naming the link, not an endless descent nor a
/// silent stop.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut above = vec![std::fs::canonicalize(dir)?];
    walk_below(dir, &mut above, out)
}

fn walk_below(dir: &Path, above: &mut Vec<PathBuf>, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        let loop_error = |target: &Path| {
            std::io::Error::other(format!(
                "{}: a symbolic link loop (it leads back to {})",
                path.display(),
                target.display()
            ))
        };
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(loop_error(&path));
            }
            // A dangling link holds no case.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            let real = std::fs::canonicalize(&path)?;
            if let Some(target) = above.iter().find(|a| **a == real) {
                return Err(loop_error(target));
            }
            above.push(real);
            walk_below(&path, above, out)?;
            above.pop();
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("cases/x.yaml"), text)
            .unwrap_err()
            .to_string()
    }

    const MINIMAL: &str = "name: x\nsteps:\n  - connect: {}\n";

    #[test]
    fn a_minimal_case_gets_the_documented_defaults() {
        let case = parse(Path::new("x.yaml"), MINIMAL).unwrap();
        assert_eq!(case.topology.mtu, Mtu(1500));
        assert_eq!(
            case.topology.peer_for(case.family),
            Ipv4Addr::new(198, 18, 0, 2)
        );
        assert_eq!(case.peer.then, SynReaction::Drop);
        assert_eq!(
            case.steps,
            vec![Step::Connect(ConnectStep {
                addr: None,
                port: 80,
                family: None,
                flowinfo: 0,
                scope_id: 0,
                addrlen: None
            })]
        );
    }

    #[test]
    fn an_unknown_key_names_file_line_column_and_field() {
        let e =
            err("name: x\nsteps:\n  - connect: {}\npeer:\n  syn:\n    - synack: { windw: 5 }\n");
        assert!(
            e.starts_with("cases/x.yaml:6:17: field `peer.syn[0].synack.windw`"),
            "{e}"
        );
        assert!(e.contains("unknown field `windw`"), "{e}");
        assert!(
            e.contains("--> cases/x.yaml:6:17"),
            "the snippet names the file: {e}"
        );
    }

    #[test]
    fn an_impossible_value_is_refused_where_it_stands() {
        let e = err("name: x\ntopology:\n  mtu: 10\nsteps:\n  - close\n");
        assert!(
            e.starts_with("cases/x.yaml:3:8: field `topology.mtu`"),
            "{e}"
        );
        assert!(e.contains("MTU 10 is outside 68..=65535"), "{e}");
        let e = err("name: x\nsteps:\n  - connect: { port: 70000 }\n");
        assert!(
            e.starts_with("cases/x.yaml:3:22: field `steps[0].connect.port`"),
            "{e}"
        );
    }

    #[test]
    fn a_socket_step_needs_the_socket_before_closed() {
        let e = err("name: x\nsteps:\n  - connect: {}\n  - socket\n");
        assert!(e.contains("steps[1]"), "{e}");
        assert!(e.contains("put a `close` step before it"), "{e}");
        let e = err("name: x\nsteps:\n  - close\n  - socket\n  - socket\n");
        assert!(e.contains("steps[2]"), "{e}");
    }

    #[test]
    fn a_duplicate_key_is_an_error_not_a_silent_override() {
        let e = err("name: x\nname: y\nsteps:\n  - close\n");
        assert!(
            e.contains(":2:1:") && e.contains("duplicate mapping key"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_and_bad_syntax_are_located() {
        let e = err("name: x\nsteps:\n  - setsockopt: { TCP_MAXSEG: abc }\n");
        assert!(
            e.starts_with("cases/x.yaml:3:31: field `steps[0].setsockopt.TCP_MAXSEG`"),
            "{e}"
        );
        let e = err("name: x\nsteps: [\n");
        assert!(e.starts_with("cases/x.yaml:2:8:"), "{e}");
    }

    #[test]
    fn ephemeral_ports_come_from_the_range_less_the_reserved_ports() {
        let case = |sysctls: &str| {
            parse(
                Path::new("cases/x.yaml"),
                &format!("name: x\nsysctls:\n{sysctls}steps:\n  - close\n"),
            )
            .expect("parses")
            .ephemeral_ports()
        };
        assert_eq!(case("  {}\n"), EphemeralPorts::default());
        let ports = case(
            "  net.ipv4.ip_local_port_range: 40000 40999\n  net.ipv4.ip_local_reserved_ports: \"40000-40998, 41000\"\n",
        );
        assert_eq!(ports.range, (40000, 40999));
        assert_eq!(ports.reserved, [(40000, 40998), (41000, 41000)]);
        assert!(ports.is_reserved(40000) && ports.is_reserved(40998) && ports.is_reserved(41000));
        assert!(!ports.is_reserved(40999) && !ports.is_reserved(41001));
    }

    #[test]
    fn cross_field_rules_are_checked() {
        assert!(err("name: a b\nsteps:\n  - close\n").contains("name"));
        assert!(err("name: x\nsteps: []\n").contains("at least one step"));
        let e = err("name: x\nsteps:\n  - close\nexpect:\n  calls:\n    - { call: connect, result: \"0\" }\n");
        assert!(e.contains("expect.calls[0]"), "{e}");
        assert!(
            err("name: x\nsysctls:\n  kernel.panic: 1\nsteps:\n  - close\n")
                .contains("not a dotted name under net.")
        );
    }

    #[test]
    fn a_dut_without_an_address_is_spelled_none() {
        let text = "name: x\ntopology:\n  dut: none\nsteps:\n  - connect: {}\n";
        let case = parse(Path::new("x.yaml"), text).unwrap();
        assert_eq!(case.topology.dut, Some(DutAddress(None)));
        assert_eq!(case.topology.dut_for(case.family), None);
        let yaml = to_yaml(&case).unwrap();
        assert!(yaml.contains("dut: none"), "{yaml}");
        let case = parse(Path::new("x.yaml"), MINIMAL).unwrap();
        assert_eq!(
            case.topology.dut_for(case.family).map(|cidr| cidr.addr),
            Some(Ipv4Addr::new(198, 18, 0, 1).into())
        );
        let e = err("name: x\ntopology:\n  dut: nothing\nsteps:\n  - close\n");
        assert!(
            e.starts_with("cases/x.yaml:3:8: field `topology.dut`"),
            "{e}"
        );
        assert!(e.contains("nor none"), "{e}");
    }

    #[test]
    fn a_dut_without_an_address_takes_only_typed_routes() {
        let with_route = |route: &str| {
            format!(
                "name: x\ntopology:\n  dut: none\n  routes:\n    - {route}\nsteps:\n  - close\n"
            )
        };
        let typed = with_route("{ to: 192.0.2.0/24, type: unreachable }");
        assert!(parse(Path::new("x.yaml"), &typed).is_ok());
        for route in [
            "{ to: 203.0.113.0/24, via: 198.18.0.2 }",
            "{ to: 198.18.0.0/24 }",
        ] {
            let e = err(&with_route(route));
            assert!(e.contains("topology.routes[0]"), "{e}");
            assert!(e.contains("needs the DUT's address"), "{e}");
        }
    }

    #[test]
    fn every_committed_case_writes_back_to_itself() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
        for file in discover(&[dir]).unwrap() {
            let case = load(&file).unwrap();
            let yaml = to_yaml(&case).unwrap();
            let again = parse(&file, &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            assert_eq!(again, case, "{}", file.display());
        }
    }

    #[test]
    fn defaults_are_left_out_of_written_cases() {
        let case = parse(Path::new("x.yaml"), MINIMAL).unwrap();
        let yaml = to_yaml(&case).unwrap();
        assert_eq!(yaml.trim(), "name: x\nsteps:\n- connect: {}", "{yaml}");
    }

    #[test]
    fn every_committed_case_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
        let files = discover(&[dir]).unwrap();
        assert!(files.len() >= 25, "only {} cases", files.len());
        for file in files {
            load(&file).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_refused_or_accepted_without_panic(text in "\\PC{0,200}") {
            let _ = parse(Path::new("fuzz.yaml"), &text);
        }
    }
}
