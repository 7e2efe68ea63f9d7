//! The normalized trace of one run: frames and socket calls on one time line.
//!
//! Values random by design are made comparable: time runs from the DUT's first frame,
//! sequence numbers are relative to each side's ISN, TSvals to each side's first, the IP ID is
//! a delta from the DUT's first, and the DUT's ephemeral port prints as `$port`. A port the
//! case bound is no random value and prints as its number. The raw values are kept in
//! [`RawValues`] for property checks (port range and parity, the bound port, ISN spread).
//!
//! A socket that connects again after a failed connect starts a connection of its own
//! (`tcp_v4_connect` draws a new IP ID, a new port unless one is bound, and a new TSval
//! offset): from its first SYN on, the DUT's IP IDs and TSvals count from that SYN's, and a
//! second ephemeral port prints as `$port2`. Sequence numbers stay relative to the first
//! ISN, since the next one follows from it (`tcp_disconnect`: `write_seq + max_window + 2`).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::linux::tcp_options::{self, TcpOption, TsStyle};
use crate::observe::decode::{self, flags, Body, Decoded, Ipv4Fields, Ipv6Fields, L4};
use crate::record::CallRecord;
use crate::record::Captured;

/// Which way a frame went (`"out"`, `"in"` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// From the DUT (printed `>`).
    Out,
    /// To the DUT (printed `<`).
    In,
}

impl Dir {
    pub fn arrow(self) -> char {
        match self {
            Dir::Out => '>',
            Dir::In => '<',
        }
    }
}

/// The IP ID as compared: 0 stays 0 (Linux's control-socket RSTs carry 0), anything else is
/// the delta from the first ID the same side sent. A 0 where a socket's 16-bit counter
/// wraps (after 65535, or before 1) is a counter value like any other ([`counter_zeros`]).
/// JSON has the text reports show: `"0"`, or the signed delta (`"+0"`, `"+3"`, `"-1"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpId {
    Zero,
    Delta(i32),
}

impl std::fmt::Display for IpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpId::Zero => f.write_str("0"),
            IpId::Delta(d) => write!(f, "{d:+}"),
        }
    }
}

impl Serialize for IpId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A frame's IP header fields, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NormIp {
    V4(NormIpv4),
    V6(NormIpv6),
}

impl NormIp {
    /// The TTL or hop limit.
    pub fn hops(&self) -> u8 {
        match self {
            NormIp::V4(ip) => ip.ttl,
            NormIp::V6(ip) => ip.hop_limit,
        }
    }
    /// The TOS byte or traffic class.
    pub fn tos(&self) -> u8 {
        match self {
            NormIp::V4(ip) => ip.tos,
            NormIp::V6(ip) => ip.tclass,
        }
    }
    /// The source and destination addresses.
    pub fn addrs(&self) -> (IpAddr, IpAddr) {
        match self {
            NormIp::V4(ip) => (ip.src.into(), ip.dst.into()),
            NormIp::V6(ip) => (ip.src.into(), ip.dst.into()),
        }
    }
}

/// A flow label as compared: 0 stays 0; any other is the n-th distinct label (from 1) its
/// sender used in the run, since Linux draws it from the socket's random hash
/// (`ip6_make_flowlabel` over `sk_txhash`) and draws anew when it rethinks the path
/// (`sk_rethink_txhash`). JSON and text show `0` or `$flowN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowLabel {
    Zero,
    Nth(u8),
}

impl std::fmt::Display for FlowLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowLabel::Zero => f.write_str("0"),
            FlowLabel::Nth(n) => write!(f, "$flow{n}"),
        }
    }
}

impl Serialize for FlowLabel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// IPv6 header fields, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NormIpv6 {
    pub tclass: u8,
    pub flow_label: FlowLabel,
    pub hop_limit: u8,
    pub payload_len: u16,
    pub next_header: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

/// IPv4 header fields, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NormIpv4 {
    pub ihl: u8,
    pub tos: u8,
    pub ttl: u8,
    pub df: bool,
    pub id: IpId,
    pub options: Vec<u8>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub checksum_ok: bool,
}

/// A port as compared: the DUT's nth ephemeral port (from 1) is a placeholder; a bound one
/// is `Fixed`. JSON has the number, or `"ephemeral"` (`"ephemeral2"`, ... for later ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Ephemeral(u8),
    Fixed(u16),
}

impl Serialize for Port {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Ephemeral(1) => serializer.serialize_str("ephemeral"),
            Port::Ephemeral(n) => serializer.collect_str(&format_args!("ephemeral{n}")),
            Port::Fixed(p) => serializer.serialize_u16(*p),
        }
    }
}

/// TCP flags in JSON as the letters reports show (`S.` for SYN+ACK; see [`flags_text`]).
fn serialize_flags<S: serde::Serializer>(bits: &u16, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&flags_text(*bits))
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Ephemeral(1) => f.write_str("$port"),
            Port::Ephemeral(n) => write!(f, "$port{n}"),
            Port::Fixed(p) => write!(f, "{p}"),
        }
    }
}

/// A frame with its random-by-design values normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NormFrame {
    Arp {
        op: u16,
        sender_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    },
    Tcp {
        ip: NormIp,
        sport: Port,
        dport: Port,
        seq: u32,
        ack: u32,
        #[serde(serialize_with = "serialize_flags")]
        flags: u16,
        window: u16,
        urg_ptr: u16,
        doff: u8,
        options: Vec<TcpOption>,
        payload_len: usize,
        checksum_ok: bool,
    },
    Icmp {
        ip: NormIp,
        icmp_type: u8,
        code: u8,
        rest: [u8; 4],
        quoted_seq: Option<u32>,
        checksum_ok: bool,
    },
    /// An ICMPv6 message: neighbour discovery (its target and link-layer address option,
    /// and the Ethernet destination, which an NS must send to the solicited-node group's
    /// MAC) or an error quoting a segment.
    Icmpv6 {
        ip: NormIpv6,
        eth_dst: String,
        icmp_type: u8,
        code: u8,
        rest: [u8; 4],
        target: Option<Ipv6Addr>,
        lladdr: Option<String>,
        quoted_seq: Option<u32>,
        checksum_ok: bool,
    },
    Other {
        text: String,
    },
}

/// One frame of the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceFrame {
    /// Milliseconds since the origin.
    pub t_ms: f64,
    pub dir: Dir,
    pub norm: NormFrame,
    #[serde(skip)]
    pub raw: Decoded,
}

/// One socket call on the trace's time line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceCall {
    /// When the call returned, in ms since the origin.
    pub t_ms: f64,
    /// How long it took, in ms.
    pub took_ms: f64,
    pub record: CallRecord,
}

/// The raw values normalization hid, for property checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RawValues {
    pub dut_isn: Option<u32>,
    pub peer_isn: Option<u32>,
    pub dut_port: Option<u16>,
    pub dut_first_tsval: Option<u32>,
    pub dut_first_ip_id: Option<u16>,
    /// The port a successful `bind()` gave the socket: the DUT's port is then the case's
    /// choice, compared as a number and checked against this value.
    pub bound_port: Option<u16>,
    /// The DUT's first TSval less the host's `CLOCK_MONOTONIC` in ms when that frame was
    /// captured (wrapping, signed): Linux's TSval is that clock plus `secure_tcp_ts_off`,
    /// an offset keyed by the addresses and ports with `tcp_timestamps` 1 and none with 2. Set by the
    /// run, and only for a DUT on this host's clock ([`Trace::first_dut_tsval`]).
    pub dut_ts_offset_ms: Option<i64>,
    /// For each connection of the DUT's after its first ([`connections`]): how far its first
    /// TSval is from where the first connection's clock had got to by then, in ms (signed,
    /// wrapping). About 0 when the DUT kept the TSval offset; Linux 6.18 keys it by the
    /// ports too, so a new port gives a new offset.
    pub dut_ts_rebase_ms: Vec<Option<i64>>,
    /// The DUT's source port for each of its connections ([`connections`]), in order.
    pub dut_connection_ports: Vec<u16>,
}

/// A whole run, normalized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// Realtime ns of the origin: the DUT's first frame, or its first call when it sent none.
    pub origin_ns: i64,
    pub frames: Vec<TraceFrame>,
    pub calls: Vec<TraceCall>,
    pub raw: RawValues,
}

impl Trace {
    /// The DUT's connection each frame belongs to, from 0: a socket that connects again
    /// starts the next one with its SYN.
    pub fn connection_of(&self) -> Vec<usize> {
        connections(self.frames.iter().map(|f| (f.dir, &f.raw)))
    }

    /// The DUT's first TSval and the realtime ns at which its frame was captured.
    pub fn first_dut_tsval(&self) -> Option<(u32, i64)> {
        self.frames
            .iter()
            .filter(|f| f.dir == Dir::Out)
            .find_map(|f| {
                let (_, tcp) = tcp_of(&f.raw)?;
                let (val, _) = ts_of(&tcp.options)?;
                Some((val, self.origin_ns + (f.t_ms * 1e6) as i64))
            })
    }
}

/// Builds the trace of a run whose socket binds no port (so its port is ephemeral) from
/// the capture and the call log. `dut_mac` tells directions apart.
pub fn build(captured: &[Captured], calls: &[CallRecord], dut_mac: [u8; 6]) -> Trace {
    build_bound(captured, calls, dut_mac, &[])
}

/// Builds the trace of a run whose case's `bind` steps ask for `bind_ports`, in order
/// ([`crate::case::Case::bind_ports`]). The first `bind` call that succeeded decides the
/// DUT's port: a port it named is the case's choice and prints as its number; port 0, or
/// no successful bind, leaves the kernel to pick an ephemeral port (at bind or connect).
pub fn build_bound(
    captured: &[Captured],
    calls: &[CallRecord],
    dut_mac: [u8; 6],
    bind_ports: &[u16],
) -> Trace {
    let decoded: Vec<(i64, Dir, Decoded)> = captured
        .iter()
        .map(|c| {
            let frame = decode::decode(&c.bytes);
            let dir = if frame.src_mac == dut_mac {
                Dir::Out
            } else {
                Dir::In
            };
            (c.t_ns, dir, frame)
        })
        .collect();
    let origin_ns = decoded
        .iter()
        .find(|(_, dir, _)| *dir == Dir::Out)
        .map(|(t, _, _)| *t)
        .or_else(|| calls.first().map(|c| c.start_ns))
        .or_else(|| decoded.first().map(|(t, _, _)| *t))
        .unwrap_or(0);
    let counter_zeros = counter_zeros(&decoded);
    let bound_port = calls
        .iter()
        .filter(|c| c.call == "bind")
        .zip(bind_ports)
        .find(|(c, _)| c.errno.is_none())
        .map(|(_, port)| *port)
        .filter(|port| *port != 0);
    let raw = RawValues {
        bound_port,
        ..raw_values(&decoded, &counter_zeros)
    };
    let norm = Normalizer::new(&raw, &decoded, calls, counter_zeros);
    let raw = RawValues {
        dut_ts_rebase_ms: norm.ts_rebase_ms(),
        dut_connection_ports: connection_ports(decoded.iter().map(|(_, d, f)| (*d, f))),
        ..raw
    };
    let ms = |t: i64| (t - origin_ns) as f64 / 1e6;
    Trace {
        origin_ns,
        frames: decoded
            .iter()
            .enumerate()
            .map(|(i, (t, dir, frame))| TraceFrame {
                t_ms: ms(*t),
                dir: *dir,
                norm: norm.frame(i, *dir, frame),
                raw: frame.clone(),
            })
            .collect(),
        calls: calls
            .iter()
            .map(|c| TraceCall {
                t_ms: ms(c.end_ns),
                took_ms: (c.end_ns - c.start_ns) as f64 / 1e6,
                record: c.clone(),
            })
            .collect(),
        raw,
    }
}

/// A frame's TCP segment with its IPv4 ID (`None` over IPv6, which has none).
fn tcp_of(frame: &Decoded) -> Option<(Option<u16>, &decode::TcpFields)> {
    frame.tcp().map(|tcp| (frame.ipv4_id(), tcp))
}

/// The indices of frames whose IP ID 0 is a step of their sender's 16-bit counter rather
/// than a fixed 0: the same side's previous IPv4 frame carried 65535, or its next one 1.
/// Linux counts a connected socket's IDs from a random start (`ip_select_ident_segs`), so
/// about one run in 65536/n wraps through 0 within its n frames.
fn counter_zeros(frames: &[(i64, Dir, Decoded)]) -> std::collections::HashSet<usize> {
    let mut zeros = std::collections::HashSet::new();
    for side in [Dir::Out, Dir::In] {
        let ids: Vec<(usize, u16)> = frames
            .iter()
            .enumerate()
            .filter(|(_, (_, dir, _))| *dir == side)
            .filter_map(|(i, (_, _, frame))| frame.ipv4_id().map(|id| (i, id)))
            .collect();
        for (k, &(i, id)) in ids.iter().enumerate() {
            let after_max = k > 0 && ids[k - 1].1 == u16::MAX;
            let before_one = ids.get(k + 1).is_some_and(|next| next.1 == 1);
            if id == 0 && (after_max || before_one) {
                zeros.insert(i);
            }
        }
    }
    zeros
}

fn raw_values(
    frames: &[(i64, Dir, Decoded)],
    counter_zeros: &std::collections::HashSet<usize>,
) -> RawValues {
    let mut raw = RawValues::default();
    for (i, (_, dir, frame)) in frames.iter().enumerate() {
        let Some((ip_id, tcp)) = tcp_of(frame) else {
            continue;
        };
        let syn = tcp.has(flags::SYN);
        match dir {
            Dir::Out => {
                if syn && raw.dut_isn.is_none() {
                    raw.dut_isn = Some(tcp.seq);
                    raw.dut_port = Some(tcp.sport);
                }
                let counted = ip_id.filter(|id| *id != 0 || counter_zeros.contains(&i));
                if raw.dut_first_ip_id.is_none() && counted.is_some() {
                    raw.dut_first_ip_id = counted;
                }
                if raw.dut_first_tsval.is_none() {
                    raw.dut_first_tsval = ts_of(&tcp.options).map(|(v, _)| v);
                }
            }
            Dir::In => {
                if syn && raw.peer_isn.is_none() {
                    raw.peer_isn = Some(tcp.seq);
                }
            }
        }
    }
    raw
}

fn ts_of(options: &[TcpOption]) -> Option<(u32, u32)> {
    options.iter().find_map(|o| match o {
        TcpOption::Ts { val, ecr } => Some((*val, *ecr)),
        _ => None,
    })
}

struct Normalizer {
    raw: RawValues,
    peer_first_tsval: Option<u32>,
    peer_first_ip_id: Option<u16>,
    counter_zeros: std::collections::HashSet<usize>,
    /// The DUT's connection each frame belongs to: 0 up to its second connection's SYN.
    connection_of: Vec<usize>,
    /// Where each connection's values count from (the first one's are `raw`'s).
    bases: Vec<ConnectionBase>,
    /// The DUT's ephemeral ports in the order they appear.
    ephemeral_ports: Vec<u16>,
    /// The distinct non-zero flow labels each side sent, in the order they appear
    /// (the DUT's first, then the peer's).
    flow_labels: [Vec<u32>; 2],
}

/// Where a connection's sequence numbers, IP IDs and TSvals count from.
#[derive(Debug, Clone, Copy, Default)]
struct ConnectionBase {
    /// The first connection's ISN, or a later connection's own when a new socket made it
    /// (a `socket` call came after the connection before began). A socket that connects
    /// again keeps the first ISN as its base, since its ISN follows from it.
    isn: Option<u32>,
    first_ip_id: Option<u16>,
    first_tsval: Option<u32>,
    /// When the frame with that TSval was captured (realtime ns).
    first_tsval_at_ns: i64,
}

/// Splits the frames into the DUT's connections: a SYN of the DUT's (without ACK) whose
/// port or sequence number differs from the current connection's SYN starts the next one;
/// a retransmitted SYN does not.
/// The source port of each of the DUT's connections, as [`connections`] counts them.
fn connection_ports<'a>(frames: impl Iterator<Item = (Dir, &'a Decoded)>) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut current: Option<(u16, u32)> = None;
    for (dir, frame) in frames {
        if let (Dir::Out, Some((_, tcp))) = (dir, tcp_of(frame)) {
            let syn = (tcp.sport, tcp.seq);
            if tcp.has(flags::SYN) && !tcp.has(flags::ACK) && current != Some(syn) {
                current = Some(syn);
                ports.push(tcp.sport);
            }
        }
    }
    ports
}

fn connections<'a>(frames: impl Iterator<Item = (Dir, &'a Decoded)>) -> Vec<usize> {
    let mut current: Option<(u16, u32)> = None;
    let mut index = 0;
    frames
        .map(|(dir, frame)| {
            if let (Dir::Out, Some((_, tcp))) = (dir, tcp_of(frame)) {
                if tcp.has(flags::SYN) && !tcp.has(flags::ACK) {
                    let syn = (tcp.sport, tcp.seq);
                    match current {
                        Some(c) if c != syn => {
                            index += 1;
                            current = Some(syn);
                        }
                        None => current = Some(syn),
                        Some(_) => {}
                    }
                }
            }
            index
        })
        .collect()
}

impl Normalizer {
    fn new(
        raw: &RawValues,
        frames: &[(i64, Dir, Decoded)],
        calls: &[CallRecord],
        counter_zeros: std::collections::HashSet<usize>,
    ) -> Normalizer {
        let mut peer_first_tsval = None;
        let mut peer_first_ip_id = None;
        for (i, (_, dir, frame)) in frames.iter().enumerate() {
            if *dir != Dir::In {
                continue;
            }
            if let Some(id) = frame.ipv4_id() {
                if peer_first_ip_id.is_none() && (id != 0 || counter_zeros.contains(&i)) {
                    peer_first_ip_id = Some(id);
                }
            }
            if let Some((_, tcp)) = tcp_of(frame) {
                if peer_first_tsval.is_none() {
                    peer_first_tsval = ts_of(&tcp.options).map(|(v, _)| v);
                }
            }
        }
        let connection_of = connections(frames.iter().map(|(_, dir, frame)| (*dir, frame)));
        let count = connection_of.last().map_or(1, |last| last + 1);
        let mut bases = vec![
            ConnectionBase {
                isn: raw.dut_isn,
                ..ConnectionBase::default()
            };
            count
        ];
        // The first connection's IP ID base counts every IPv4 frame ([`raw_values`]).
        bases[0].first_ip_id = raw.dut_first_ip_id;
        let mut ephemeral_ports = Vec::new();
        for (i, (t, dir, frame)) in frames.iter().enumerate() {
            let (Dir::Out, Some((ip_id, tcp))) = (dir, tcp_of(frame)) else {
                continue;
            };
            if raw.bound_port.is_none() && !ephemeral_ports.contains(&tcp.sport) {
                ephemeral_ports.push(tcp.sport);
            }
            let base = &mut bases[connection_of[i]];
            let counted = ip_id.filter(|id| *id != 0 || counter_zeros.contains(&i));
            if base.first_ip_id.is_none() && counted.is_some() {
                base.first_ip_id = counted;
            }
            if base.first_tsval.is_none() {
                base.first_tsval = ts_of(&tcp.options).map(|(v, _)| v);
                base.first_tsval_at_ns = *t;
            }
        }
        // Each later connection opens with its SYN: a new socket's if a `socket` call came
        // since the connection before began.
        let starts: Vec<usize> = (0..count)
            .filter_map(|k| connection_of.iter().position(|c| *c == k))
            .collect();
        for (k, pair) in starts.windows(2).enumerate() {
            let (previous, syn) = (frames[pair[0]].0, frames[pair[1]].0);
            let new_socket = calls
                .iter()
                .any(|c| c.call == "socket" && c.start_ns > previous && c.start_ns < syn);
            if new_socket {
                bases[k + 1].isn = tcp_of(&frames[pair[1]].2).map(|(_, tcp)| tcp.seq);
            }
        }
        let mut flow_labels = [Vec::new(), Vec::new()];
        for (_, dir, frame) in frames {
            if let Body::Ipv6(ip) = &frame.body {
                let seen = &mut flow_labels[usize::from(*dir == Dir::In)];
                if ip.flow_label != 0 && !seen.contains(&ip.flow_label) {
                    seen.push(ip.flow_label);
                }
            }
        }
        Normalizer {
            raw: raw.clone(),
            peer_first_tsval,
            peer_first_ip_id,
            counter_zeros,
            connection_of,
            bases,
            ephemeral_ports,
            flow_labels,
        }
    }

    /// [`RawValues::dut_ts_rebase_ms`]: each later connection's first TSval against the
    /// first connection's first one advanced by the time between them; `None` for a
    /// connection without timestamps, and no entries when the first had none.
    fn ts_rebase_ms(&self) -> Vec<Option<i64>> {
        let first = &self.bases[0];
        let Some(val0) = first.first_tsval else {
            return Vec::new();
        };
        self.bases[1..]
            .iter()
            .map(|base| {
                let val = base.first_tsval?;
                let elapsed_ms =
                    ((base.first_tsval_at_ns - first.first_tsval_at_ns) / 1_000_000) as u32;
                Some(i64::from(
                    val.wrapping_sub(val0).wrapping_sub(elapsed_ms) as i32
                ))
            })
            .collect()
    }

    /// Where the values of frame `index`'s connection count from.
    fn base(&self, index: usize) -> &ConnectionBase {
        &self.bases[self.connection_of[index]]
    }

    fn ip6(&self, dir: Dir, ip: &Ipv6Fields) -> NormIpv6 {
        let seen = &self.flow_labels[usize::from(dir == Dir::In)];
        NormIpv6 {
            tclass: ip.tclass,
            flow_label: match seen.iter().position(|l| *l == ip.flow_label) {
                Some(k) => FlowLabel::Nth(u8::try_from(k + 1).unwrap_or(u8::MAX)),
                None => FlowLabel::Zero,
            },
            hop_limit: ip.hop_limit,
            payload_len: ip.payload_len,
            next_header: ip.next_header,
            src: ip.src,
            dst: ip.dst,
        }
    }

    fn ip(&self, index: usize, dir: Dir, ip: &Ipv4Fields) -> NormIpv4 {
        let first = match dir {
            Dir::Out => self.base(index).first_ip_id,
            Dir::In => self.peer_first_ip_id,
        };
        NormIpv4 {
            ihl: ip.ihl,
            tos: ip.tos,
            ttl: ip.ttl,
            df: ip.df,
            id: match (ip.id, first) {
                (0, _) if !self.counter_zeros.contains(&index) => IpId::Zero,
                (id, Some(first)) => IpId::Delta(i32::from(id.wrapping_sub(first) as i16)),
                (_, None) => IpId::Delta(0),
            },
            options: ip.options.clone(),
            src: ip.src,
            dst: ip.dst,
            checksum_ok: ip.checksum_ok,
        }
    }

    fn port(&self, port: u16) -> Port {
        match self.ephemeral_ports.iter().position(|p| *p == port) {
            Some(k) => Port::Ephemeral(u8::try_from(k + 1).unwrap_or(u8::MAX)),
            None => Port::Fixed(port),
        }
    }

    fn frame(&self, index: usize, dir: Dir, frame: &Decoded) -> NormFrame {
        let rel = |v: u32, base: Option<u32>| base.map_or(v, |b| v.wrapping_sub(b));
        let quoted_seq =
            |q: &Option<decode::Quoted>| q.as_ref().map(|q| rel(q.seq, self.base(index).isn));
        match &frame.body {
            Body::Arp(a) => NormFrame::Arp {
                op: a.op,
                sender_ip: a.sender_ip,
                target_ip: a.target_ip,
            },
            Body::Ipv4(ip) => match &ip.l4 {
                L4::Tcp(tcp) => self.tcp(index, dir, NormIp::V4(self.ip(index, dir, ip)), tcp),
                L4::Icmp(icmp) => NormFrame::Icmp {
                    ip: NormIp::V4(self.ip(index, dir, ip)),
                    icmp_type: icmp.icmp_type,
                    code: icmp.code,
                    rest: icmp.rest,
                    quoted_seq: quoted_seq(&icmp.quoted),
                    checksum_ok: icmp.checksum_ok,
                },
                L4::Other { payload_len } => NormFrame::Other {
                    text: format!(
                        "IPv4 proto {} {} > {} len {payload_len}",
                        ip.protocol, ip.src, ip.dst
                    ),
                },
                L4::Icmpv6(_) => NormFrame::Other {
                    text: format!("IPv4 proto 58 (ICMPv6) {} > {}", ip.src, ip.dst),
                },
                L4::Malformed { reason } => NormFrame::Other {
                    text: format!("IPv4 {} > {} malformed: {reason}", ip.src, ip.dst),
                },
            },
            Body::Ipv6(ip) => match &ip.l4 {
                L4::Tcp(tcp) => self.tcp(index, dir, NormIp::V6(self.ip6(dir, ip)), tcp),
                L4::Icmpv6(icmp) => NormFrame::Icmpv6 {
                    ip: self.ip6(dir, ip),
                    eth_dst: mac_text(frame.dst_mac),
                    icmp_type: icmp.icmp_type,
                    code: icmp.code,
                    rest: icmp.rest,
                    target: icmp.target,
                    lladdr: icmp.lladdr.map(mac_text),
                    quoted_seq: quoted_seq(&icmp.quoted),
                    checksum_ok: icmp.checksum_ok,
                },
                L4::Icmp(_) | L4::Other { .. } => NormFrame::Other {
                    text: format!(
                        "IPv6 next header {} {} > {} len {}",
                        ip.next_header, ip.src, ip.dst, ip.payload_len
                    ),
                },
                L4::Malformed { reason } => NormFrame::Other {
                    text: format!("IPv6 {} > {} malformed: {reason}", ip.src, ip.dst),
                },
            },
            Body::Other { ethertype } => NormFrame::Other {
                text: format!("ethertype 0x{ethertype:04x} len {}", frame.len),
            },
            Body::Malformed { reason } => NormFrame::Other {
                text: format!("malformed frame ({} bytes): {reason}", frame.len),
            },
        }
    }

    /// A TCP segment with its sequence numbers, TSvals and ports normalized.
    fn tcp(&self, index: usize, dir: Dir, ip: NormIp, tcp: &decode::TcpFields) -> NormFrame {
        let rel = |v: u32, base: Option<u32>| base.map_or(v, |b| v.wrapping_sub(b));
        let ConnectionBase {
            isn: dut_isn,
            first_tsval: dut_ts,
            ..
        } = *self.base(index);
        let (own_isn, other_isn, own_ts, other_ts) = match dir {
            Dir::Out => (dut_isn, self.raw.peer_isn, dut_ts, self.peer_first_tsval),
            Dir::In => (self.raw.peer_isn, dut_isn, self.peer_first_tsval, dut_ts),
        };
        let options = tcp
            .options
            .iter()
            .map(|o| match o {
                TcpOption::Ts { val, ecr } => TcpOption::Ts {
                    val: rel(*val, own_ts),
                    ecr: if *ecr == 0 { 0 } else { rel(*ecr, other_ts) },
                },
                other => other.clone(),
            })
            .collect();
        NormFrame::Tcp {
            ip,
            sport: self.port(tcp.sport),
            dport: self.port(tcp.dport),
            seq: rel(tcp.seq, own_isn),
            ack: if tcp.has(flags::ACK) {
                rel(tcp.ack, other_isn)
            } else {
                tcp.ack
            },
            flags: tcp.flags,
            window: tcp.window,
            urg_ptr: tcp.urg_ptr,
            doff: tcp.doff,
            options,
            payload_len: tcp.payload_len,
            checksum_ok: tcp.checksum_ok,
        }
    }
}

/// A MAC address as `33:33:ff:00:00:02`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// TCP flags as tcpdump prints them (FIN S RST PSH . URG ECE CWR AE, in that order).
pub fn flags_text(bits: u16) -> String {
    let table = [
        (flags::FIN, 'F'),
        (flags::SYN, 'S'),
        (flags::RST, 'R'),
        (flags::PSH, 'P'),
        (flags::ACK, '.'),
        (flags::URG, 'U'),
        (flags::ECE, 'E'),
        (flags::CWR, 'W'),
        (flags::AE, 'e'),
    ];
    let text: String = table
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect();
    if text.is_empty() {
        "none".into()
    } else {
        text
    }
}

fn icmp_name(icmp_type: u8, code: u8) -> String {
    const UNREACH: [&str; 16] = [
        "net",
        "host",
        "protocol",
        "port",
        "frag-needed",
        "srcroute-failed",
        "net-unknown",
        "host-unknown",
        "host-isolated",
        "net-prohibited",
        "host-prohibited",
        "net-tos",
        "host-tos",
        "admin-prohibited",
        "precedence-violation",
        "precedence-cutoff",
    ];
    match icmp_type {
        3 => format!(
            "unreachable {}",
            UNREACH.get(usize::from(code)).copied().unwrap_or("code?")
        ),
        4 => "source-quench".into(),
        5 => "redirect".into(),
        11 => "time-exceeded".into(),
        12 => "parameter-problem".into(),
        _ => "type?".into(),
    }
}

fn ip_suffix(ip: &NormIp) -> String {
    let ip = match ip {
        NormIp::V4(ip) => ip,
        NormIp::V6(ip) => return ip6_suffix(ip),
    };
    let mut s = format!("ttl {}", ip.ttl);
    match ip.id {
        IpId::Zero => s.push_str(" id 0"),
        IpId::Delta(d) => {
            let _ = write!(s, " id {d:+}");
        }
    }
    if ip.df {
        s.push_str(" DF");
    }
    if ip.tos != 0 {
        let _ = write!(s, " tos 0x{:02x}", ip.tos);
    }
    if !ip.options.is_empty() {
        let _ = write!(s, " ipopts {}", hex(&ip.options));
    }
    if !ip.checksum_ok {
        s.push_str(" BAD-IP-CSUM");
    }
    s
}

fn ip6_suffix(ip: &NormIpv6) -> String {
    let mut s = format!("hlim {} flow {}", ip.hop_limit, ip.flow_label);
    if ip.tclass != 0 {
        let _ = write!(s, " class 0x{:02x}", ip.tclass);
    }
    s
}

/// ICMPv6 message names (RFC 4443, RFC 4861) as tcpdump prints them.
fn icmpv6_name(icmp_type: u8, code: u8) -> String {
    const UNREACH: [&str; 9] = [
        "no-route",
        "admin-prohibited",
        "beyond-scope",
        "address",
        "port",
        "source-policy",
        "reject-route",
        "source-routing-header",
        "headers-too-long",
    ];
    match icmp_type {
        1 => format!(
            "unreachable {}",
            UNREACH.get(usize::from(code)).copied().unwrap_or("code?")
        ),
        2 => "packet-too-big".into(),
        3 => "time-exceeded".into(),
        4 => "parameter-problem".into(),
        133 => "router-solicitation".into(),
        134 => "router-advertisement".into(),
        135 => "neighbor-solicitation".into(),
        136 => "neighbor-advertisement".into(),
        143 => "mldv2-report".into(),
        _ => "type?".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl NormFrame {
    /// The frame as one line of text, packetdrill/tcpdump style.
    pub fn text(&self) -> String {
        match self {
            NormFrame::Arp {
                op,
                sender_ip,
                target_ip,
            } => match op {
                1 => format!("ARP who-has {target_ip} tell {sender_ip}"),
                2 => format!("ARP reply {sender_ip} is-at (peer)"),
                op => format!("ARP op {op} {sender_ip} -> {target_ip}"),
            },
            NormFrame::Tcp {
                ip,
                sport,
                dport,
                seq,
                ack,
                flags: bits,
                window,
                options,
                payload_len,
                checksum_ok,
                ..
            } => {
                let mut s = format!(
                    "{} {}:{}({})",
                    flags_text(*bits),
                    seq,
                    seq.wrapping_add(*payload_len as u32),
                    payload_len
                );
                if bits & flags::ACK != 0 {
                    let _ = write!(s, " ack {ack}");
                }
                let _ = write!(s, " win {window}");
                if !options.is_empty() {
                    let _ = write!(
                        s,
                        " <{}>",
                        tcp_options::format_list(options, TsStyle::Values)
                    );
                }
                if !checksum_ok {
                    s.push_str(" BAD-TCP-CSUM");
                }
                let (src, dst) = ip.addrs();
                let _ = match ip {
                    NormIp::V4(_) => {
                        write!(s, "  [{src}:{sport} > {dst}:{dport} {}]", ip_suffix(ip))
                    }
                    NormIp::V6(_) => {
                        write!(s, "  [[{src}]:{sport} > [{dst}]:{dport} {}]", ip_suffix(ip))
                    }
                };
                s
            }
            NormFrame::Icmp {
                ip,
                icmp_type,
                code,
                rest,
                quoted_seq,
                checksum_ok,
            } => {
                let mut s = format!("ICMP {} ({icmp_type}/{code})", icmp_name(*icmp_type, *code));
                if *icmp_type == 3 && *code == 4 {
                    let _ = write!(s, " mtu {}", u16::from_be_bytes([rest[2], rest[3]]));
                }
                if let Some(q) = quoted_seq {
                    let _ = write!(s, " quoting seq {q}");
                }
                if !checksum_ok {
                    s.push_str(" BAD-ICMP-CSUM");
                }
                let (src, dst) = ip.addrs();
                let _ = write!(s, "  [{src} > {dst} {}]", ip_suffix(ip));
                s
            }
            NormFrame::Icmpv6 {
                ip,
                eth_dst,
                icmp_type,
                code,
                rest,
                target,
                lladdr,
                quoted_seq,
                checksum_ok,
            } => {
                let mut s = match (*icmp_type, target) {
                    (135, Some(target)) => format!("NS who-has {target}"),
                    (136, Some(target)) => {
                        format!(
                            "NA {target} is-at {}",
                            lladdr.as_deref().unwrap_or("(none)")
                        )
                    }
                    _ => format!(
                        "ICMP6 {} ({icmp_type}/{code})",
                        icmpv6_name(*icmp_type, *code)
                    ),
                };
                if *icmp_type == 135 {
                    if let Some(mac) = lladdr {
                        let _ = write!(s, " tell {mac}");
                    }
                }
                if *icmp_type == 136 {
                    let _ = write!(s, " flags 0x{:02x}", rest[0]);
                }
                if *icmp_type == 2 {
                    let _ = write!(s, " mtu {}", u32::from_be_bytes(*rest));
                }
                if let Some(q) = quoted_seq {
                    let _ = write!(s, " quoting seq {q}");
                }
                if !checksum_ok {
                    s.push_str(" BAD-ICMP6-CSUM");
                }
                let _ = write!(
                    s,
                    "  [{} > {} (eth {eth_dst}) {}]",
                    ip.src,
                    ip.dst,
                    ip6_suffix(ip)
                );
                s
            }
            NormFrame::Other { text } => text.clone(),
        }
    }

    /// Whether the frame resolves an address on the link: ARP, or an IPv6 neighbour
    /// solicitation or advertisement.
    pub fn is_resolution(&self) -> bool {
        matches!(
            self,
            NormFrame::Arp { .. }
                | NormFrame::Icmpv6 {
                    icmp_type: 135 | 136,
                    ..
                }
        )
    }

    /// Whether the frame asks for an address: an ARP request or a neighbour solicitation.
    pub fn is_resolution_request(&self) -> bool {
        matches!(
            self,
            NormFrame::Arp { op: 1, .. } | NormFrame::Icmpv6 { icmp_type: 135, .. }
        )
    }

    /// A short label of the frame's kind, as `expect.frames` lists them.
    pub fn label(&self) -> String {
        match self {
            NormFrame::Arp { op: 1, .. } => "ARP who-has".into(),
            NormFrame::Arp { op: 2, .. } => "ARP reply".into(),
            NormFrame::Arp { op, .. } => format!("ARP op {op}"),
            NormFrame::Tcp {
                flags: bits,
                payload_len,
                ..
            } if *payload_len > 0 => {
                format!("{} data", flags_text(*bits))
            }
            NormFrame::Tcp { flags: bits, .. } => flags_text(*bits),
            NormFrame::Icmp {
                icmp_type, code, ..
            } => format!("ICMP {icmp_type}/{code}"),
            NormFrame::Icmpv6 { icmp_type: 135, .. } => "NS".into(),
            NormFrame::Icmpv6 { icmp_type: 136, .. } => "NA".into(),
            NormFrame::Icmpv6 {
                icmp_type, code, ..
            } => format!("ICMP6 {icmp_type}/{code}"),
            NormFrame::Other { .. } => "other".into(),
        }
    }
}

impl TraceFrame {
    /// `"> S"`, `"< S."`: direction and kind.
    pub fn label(&self) -> String {
        format!("{} {}", self.dir.arrow(), self.norm.label())
    }
}

impl Trace {
    /// The trace as text: frames and calls merged in time order.
    pub fn text(&self) -> String {
        let mut lines: Vec<(f64, u8, String)> = Vec::new();
        for f in &self.frames {
            lines.push((
                f.t_ms,
                0,
                format!("{:>9.3} {} {}", f.t_ms / 1e3, f.dir.arrow(), f.norm.text()),
            ));
        }
        for c in &self.calls {
            lines.push((
                c.t_ms,
                1,
                format!(
                    "{:>9.3}   {} = {}",
                    c.t_ms / 1e3,
                    c.record.display_call(),
                    c.record.display_result()
                ),
            ));
        }
        lines.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out = String::new();
        for (_, _, line) in lines {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// The SYNs the DUT sent (SYN without ACK).
    pub fn dut_syns(&self) -> Vec<&TraceFrame> {
        self.frames
            .iter()
            .filter(|f| {
                f.dir == Dir::Out
                    && matches!(&f.norm, NormFrame::Tcp { flags: b, .. } if b & flags::SYN != 0 && b & flags::ACK == 0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::craft::{self, Segment};

    const DUT: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn seg(from_dut: bool, seq: u32, ack: u32, bits: u16, id: u16, options: Vec<u8>) -> Vec<u8> {
        seg_on(40002, from_dut, seq, ack, bits, id, options)
    }

    /// A segment of the connection whose DUT port is `port`.
    fn seg_on(
        port: u16,
        from_dut: bool,
        seq: u32,
        ack: u32,
        bits: u16,
        id: u16,
        options: Vec<u8>,
    ) -> Vec<u8> {
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        craft::tcp(&Segment {
            src_mac: if from_dut { DUT } else { PEER },
            dst_mac: if from_dut { PEER } else { DUT },
            src_ip: if from_dut { a } else { b }.into(),
            dst_ip: if from_dut { b } else { a }.into(),
            ip_id: id,
            sport: if from_dut { port } else { 80 },
            dport: if from_dut { 80 } else { port },
            seq,
            ack,
            flags: bits,
            window: 64240,
            options,
            payload_len: 0,
        })
    }

    fn ts(val: u32, ecr: u32) -> Vec<u8> {
        let mut o = vec![1, 1, 8, 10];
        o.extend(val.to_be_bytes());
        o.extend(ecr.to_be_bytes());
        o
    }

    fn ids_of(ids: &[(bool, u16)]) -> Vec<IpId> {
        let captured: Vec<Captured> = ids
            .iter()
            .enumerate()
            .map(|(k, &(from_dut, id))| Captured {
                t_ns: 1_000_000 * k as i64,
                bytes: seg(from_dut, 1, 1, flags::ACK, id, vec![]),
            })
            .collect();
        build(&captured, &[], DUT)
            .frames
            .iter()
            .map(|f| match &f.norm {
                NormFrame::Tcp {
                    ip: NormIp::V4(ip), ..
                } => ip.id,
                other => panic!("not TCP: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_id_counter_wrapping_through_zero_stays_a_counter() {
        // The kernel's FIN once carried ID 0 because its socket's counter had started at
        // 65534; the stack's counter did not wrap. Both are +2.
        let d = IpId::Delta;
        assert_eq!(
            ids_of(&[
                (true, 65534),
                (false, 9),
                (true, 65535),
                (true, 0),
                (true, 1)
            ]),
            vec![d(0), d(0), d(1), d(2), d(3)]
        );
        // A first ID of 0 that the next one continues anchors the count.
        assert_eq!(ids_of(&[(true, 0), (true, 1)]), vec![d(0), d(1)]);
        // A lone 0 between other IDs is Linux's fixed 0 (a control socket's RST).
        assert_eq!(
            ids_of(&[(true, 500), (true, 0), (true, 501), (false, 0)]),
            vec![d(0), IpId::Zero, d(1), IpId::Zero]
        );
    }

    /// A second connect on the same socket (after a RST) is a connection of its own: a
    /// new port prints as `$port2`, and its IP IDs and TSvals count from its SYN's; its
    /// sequence numbers stay relative to the first ISN, which decides the second.
    #[test]
    fn a_reconnect_counts_ids_and_tsvals_from_its_own_syn() {
        let at = |ms: i64| 1_000_000_000 + ms * 1_000_000;
        let captured = vec![
            Captured {
                t_ns: at(0),
                bytes: seg_on(40002, true, 7777, 0, flags::SYN, 300, ts(900, 0)),
            },
            Captured {
                t_ns: at(1),
                bytes: seg_on(40002, false, 0, 7778, flags::RST | flags::ACK, 1, vec![]),
            },
            // The retransmission of a SYN is no new connection; this one is.
            Captured {
                t_ns: at(10),
                bytes: seg_on(40100, true, 7780, 0, flags::SYN, 5000, ts(123_456, 0)),
            },
            Captured {
                t_ns: at(1010),
                bytes: seg_on(40100, true, 7780, 0, flags::SYN, 5001, ts(124_456, 0)),
            },
            Captured {
                t_ns: at(1011),
                bytes: seg_on(
                    40100,
                    false,
                    50,
                    7781,
                    flags::SYN | flags::ACK,
                    2,
                    ts(7, 124_456),
                ),
            },
            Captured {
                t_ns: at(1012),
                bytes: seg_on(40100, true, 7781, 51, flags::ACK, 5002, ts(124_458, 7)),
            },
        ];
        let trace = build(&captured, &[], DUT);
        assert_eq!(trace.connection_of(), [0, 0, 1, 1, 1, 1]);
        let lines: Vec<String> = trace.frames.iter().map(|f| f.norm.text()).collect();
        assert!(lines[0].contains(":$port > "), "{}", lines[0]);
        assert!(
            lines[2].starts_with("S 3:3(0) win 64240 <nop,nop,TS val 0 ecr 0>"),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].contains(":$port2 > 198.18.0.2:80 ttl 64 id +0 "),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("TS val 1000 ecr 0"), "{}", lines[3]);
        assert!(lines[3].contains("id +1 "), "{}", lines[3]);
        assert!(lines[4].contains("TS val 0 ecr 1000"), "{}", lines[4]);
        assert!(lines[4].contains(" > 198.18.0.1:$port2 "), "{}", lines[4]);
        assert!(lines[5].starts_with(". 4:4(0) ack 1 "), "{}", lines[5]);
        assert!(lines[5].contains("TS val 1002 ecr 0"), "{}", lines[5]);
        assert!(lines[5].contains("id +2 "), "{}", lines[5]);
        // 123456 - 900 less the 10 ms between the two SYNs.
        assert_eq!(trace.raw.dut_ts_rebase_ms, [Some(122_546)]);
        assert_eq!(trace.raw.dut_port, Some(40002));
    }

    /// A new socket's connection counts its sequence numbers from its own ISN; the same
    /// frames without the `socket` call are a reconnect, counted from the first ISN.
    #[test]
    fn a_new_socket_counts_from_its_own_isn() {
        let at = |ms: i64| 1_000_000_000 + ms * 1_000_000;
        let captured = vec![
            Captured {
                t_ns: at(0),
                bytes: seg(true, 7777, 0, flags::SYN, 300, ts(900, 0)),
            },
            Captured {
                t_ns: at(1),
                bytes: seg(false, 0, 7778, flags::RST | flags::ACK, 1, vec![]),
            },
            Captured {
                t_ns: at(10),
                bytes: seg(true, 99_000, 0, flags::SYN, 5000, ts(910, 0)),
            },
        ];
        let socket = CallRecord {
            call: "socket".into(),
            args: String::new(),
            ret: 3,
            errno: None,
            outcome: "fd".into(),
            start_ns: at(5),
            end_ns: at(5),
        };
        let trace = build(&captured, &[socket], DUT);
        assert!(trace.frames[2].norm.text().starts_with("S 0:0(0) "));
        let trace = build(&captured, &[], DUT);
        let reconnect = trace.frames[2].norm.text();
        assert!(
            reconnect.starts_with(&format!("S {}:", 99_000 - 7777)),
            "{reconnect}"
        );
    }

    #[test]
    fn handshake_is_normalized_relative_to_isns_tsvals_and_ids() {
        let captured = vec![
            Captured {
                t_ns: 5_000_000_000,
                bytes: seg(true, 7777, 0, flags::SYN, 300, ts(900, 0)),
            },
            Captured {
                t_ns: 5_001_000_000,
                bytes: seg(false, 1000, 7778, flags::SYN | flags::ACK, 1, ts(50, 900)),
            },
            Captured {
                t_ns: 5_001_500_000,
                bytes: seg(true, 7778, 1001, flags::ACK, 301, ts(901, 50)),
            },
            Captured {
                t_ns: 5_002_000_000,
                bytes: seg(true, 7778, 0, flags::RST, 0, vec![]),
            },
        ];
        let trace = build(&captured, &[], DUT);
        assert_eq!(trace.origin_ns, 5_000_000_000);
        assert_eq!(trace.raw.dut_isn, Some(7777));
        assert_eq!(trace.raw.dut_port, Some(40002));
        let lines: Vec<String> = trace.frames.iter().map(|f| f.norm.text()).collect();
        assert!(
            lines[0].starts_with("S 0:0(0) win 64240 <nop,nop,TS val 0 ecr 0>"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains(":$port > 198.18.0.2:80 ttl 64 id +0 DF"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("S. 0:0(0) ack 1 win 64240 <nop,nop,TS val 0 ecr 0>"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with(". 1:1(0) ack 1 win 64240 <nop,nop,TS val 1 ecr 0>"),
            "{}",
            lines[2]
        );
        assert!(lines[2].contains("id +1"), "{}", lines[2]);
        assert!(
            lines[3].contains("id 0"),
            "a zero IP ID stays absolute: {}",
            lines[3]
        );
        assert_eq!(trace.frames[1].t_ms, 1.0);
        let labels: Vec<String> = trace.frames.iter().map(|f| f.label()).collect();
        assert_eq!(labels, ["> S", "< S.", "> .", "> R"]);
        assert_eq!(trace.dut_syns().len(), 1);
    }

    #[test]
    fn flags_print_in_tcpdump_order() {
        assert_eq!(flags_text(flags::SYN | flags::ECE | flags::CWR), "SEW");
        assert_eq!(flags_text(flags::SYN | flags::ACK), "S.");
        assert_eq!(flags_text(flags::FIN | flags::ACK | flags::PSH), "FP.");
    }
}
