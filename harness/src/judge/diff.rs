//! The diff engine: one run against another, field by field, with named paths.
//!
//! Each run is flattened into `(path, value)` pairs: every decoded field of every frame
//! (`frame[0].tcp.options[3]`), every socket call's name, arguments and result
//! (`call[2].result`). The two lists are compared path by path. Timing is compared apart,
//! interval by interval, with a tolerance derived from the kernel's timer granularity for
//! that interval ([`crate::linux::timing`]); the tolerance applied is part of each timing finding.
//! Random-by-design values are compared normalized; their raw values are checked by
//! property ([`properties`]). Nothing is skipped: a divergence the case lists as known is
//! still reported, marked with the case's reason.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::case::{EphemeralPorts, KnownDivergence};
use crate::linux::tcp_options::{self, TcpOption, TsStyle};
use crate::linux::timing;
use crate::observe::decode::flags;
use crate::observe::trace::{flags_text, IpId, NormFrame, NormIp, NormIpv6, Trace};

/// One difference between the reference run and the other.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// Where, e.g. `frame[0].tcp.options[3]` or `call[1].result`.
    pub path: String,
    /// The reference's value (`absent` when it has no such field).
    pub reference: String,
    /// The other run's value.
    pub other: String,
    /// For timing: the tolerance that was applied, in ms.
    pub tolerance_ms: Option<f64>,
    /// The case's reason, when the case lists this divergence as known.
    pub known: Option<String>,
}

fn ip_fields(prefix: &str, ip: &NormIp, out: &mut Vec<(String, String)>) {
    let ip = match ip {
        NormIp::V4(ip) => ip,
        NormIp::V6(ip) => return ip6_fields(prefix, ip, out),
    };
    let mut put = |k: &str, v: String| out.push((format!("{prefix}.ip.{k}"), v));
    put("ihl", ip.ihl.to_string());
    put("tos", format!("0x{:02x}", ip.tos));
    put("ttl", ip.ttl.to_string());
    put("df", ip.df.to_string());
    put(
        "id",
        match ip.id {
            IpId::Zero => "0".into(),
            IpId::Delta(d) => format!("{d:+}"),
        },
    );
    put(
        "options",
        ip.options.iter().map(|b| format!("{b:02x}")).collect(),
    );
    put("src", ip.src.to_string());
    put("dst", ip.dst.to_string());
    put("checksum_ok", ip.checksum_ok.to_string());
}

/// An IPv6 header's fields, under `ip6.` (they are not IPv4's: a hop limit, not a TTL; a
/// flow label; no ID, no DF, no options, no header checksum).
fn ip6_fields(prefix: &str, ip: &NormIpv6, out: &mut Vec<(String, String)>) {
    let mut put = |k: &str, v: String| out.push((format!("{prefix}.ip6.{k}"), v));
    put("tclass", format!("0x{:02x}", ip.tclass));
    put("flow_label", ip.flow_label.to_string());
    put("hop_limit", ip.hop_limit.to_string());
    put("payload_len", ip.payload_len.to_string());
    put("next_header", ip.next_header.to_string());
    put("src", ip.src.to_string());
    put("dst", ip.dst.to_string());
}

/// A TCP option as compared. Timestamps are clock readings: their presence and place are
/// compared here, what `ecr` echoes is compared as the frame it echoes ([`ts_echoes`]), and
/// TSval is checked against the wire clock ([`ts_clock`]).
fn option_text(opt: &TcpOption) -> String {
    match opt {
        TcpOption::Ts { .. } => "TS".into(),
        other => tcp_options::format_one(other, TsStyle::Values),
    }
}

/// What each timestamp echo refers to: `0`, or the frame (from the other side, the latest
/// before it) whose TSval it carries. Two runs compare equal when they echo the same frames.
pub fn ts_echoes(trace: &Trace) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, f) in trace.frames.iter().enumerate() {
        let Some((k, _, ecr)) = raw_ts(&f.raw) else {
            continue;
        };
        let echoed = if ecr == 0 {
            "0".to_string()
        } else {
            trace.frames[..i]
                .iter()
                .enumerate()
                .rev()
                .find(|(_, g)| {
                    g.dir != f.dir && raw_ts(&g.raw).is_some_and(|(_, val, _)| val == ecr)
                })
                .map_or_else(
                    || "no earlier TSval".into(),
                    |(j, _)| format!("TSval of frame[{j}]"),
                )
        };
        out.push((format!("frame[{i}].tcp.options[{k}].ecr"), echoed));
    }
    out
}

/// The index of the timestamp option and its raw values.
fn raw_ts(frame: &crate::observe::decode::Decoded) -> Option<(usize, u32, u32)> {
    frame
        .tcp()?
        .options
        .iter()
        .enumerate()
        .find_map(|(k, o)| match o {
            TcpOption::Ts { val, ecr } => Some((k, *val, *ecr)),
            _ => None,
        })
}

/// TSval is a millisecond clock (`tcp_time_stamp_ms`): between two consecutive timestamped
/// frames the DUT sent, it must advance as the wire time does, within a jiffy plus the
/// millisecond truncation. The values themselves are not compared between runs: a frame
/// answering the peer is stamped when the peer's frame arrived, which is the harness's
/// timing, not the DUT's. The first frame is the exception: `tcp_connect` stamps the SYN
/// before it waits for ARP, so from it the clock may run ahead of the wire by that wait,
/// never behind. A socket that connects again starts a clock of its own (a new offset, see
/// [`properties`]): each connection's TSvals are checked apart, its first frame like the
/// first.
fn ts_clock(trace: &Trace, extra_ms: f64, out: &mut Vec<Divergence>) {
    let tolerance = timing::JIFFY_MS + 1.0 + extra_ms;
    let connection_of = trace.connection_of();
    let stamped: Vec<(usize, usize, f64, u32)> = trace
        .frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.dir == crate::observe::trace::Dir::Out)
        .filter_map(|(i, f)| raw_ts(&f.raw).map(|(k, val, _)| (i, k, f.t_ms, val)))
        .collect();
    for (n, pair) in stamped.windows(2).enumerate() {
        let ((h, _, t0, v0), (i, k, t1, v1)) = (pair[0], pair[1]);
        if connection_of[h] != connection_of[i] {
            continue;
        }
        let opens_connection = n == 0 || connection_of[stamped[n - 1].0] != connection_of[h];
        let clock = f64::from(v1.wrapping_sub(v0));
        let wire = t1 - t0;
        let too_slow = clock < wire - tolerance;
        let too_fast = !opens_connection && clock > wire + tolerance;
        if too_slow || too_fast {
            out.push(Divergence {
                path: format!("frame[{i}].tcp.options[{k}].val"),
                reference: format!("advancing with the wire clock: +{wire:.0} ms"),
                other: format!("+{clock:.0} ms"),
                tolerance_ms: Some(tolerance),
                known: None,
            });
        }
    }
}

/// Every field of a frame as `(path, value)`, in a fixed order.
pub fn frame_fields(index: usize, frame: &NormFrame, dir: char) -> Vec<(String, String)> {
    let p = format!("frame[{index}]");
    let mut out = vec![(format!("{p}.dir"), dir.to_string())];
    match frame {
        NormFrame::Arp {
            op,
            sender_ip,
            target_ip,
        } => {
            out.push((format!("{p}.arp.op"), op.to_string()));
            out.push((format!("{p}.arp.sender_ip"), sender_ip.to_string()));
            out.push((format!("{p}.arp.target_ip"), target_ip.to_string()));
        }
        NormFrame::Tcp {
            ip,
            sport,
            dport,
            seq,
            ack,
            flags: bits,
            window,
            urg_ptr,
            doff,
            options,
            payload_len,
            checksum_ok,
        } => {
            ip_fields(&p, ip, &mut out);
            let t = |k: &str| format!("{p}.tcp.{k}");
            out.push((t("sport"), sport.to_string()));
            out.push((t("dport"), dport.to_string()));
            out.push((t("flags"), flags_text(*bits)));
            out.push((t("seq"), seq.to_string()));
            let ack_text = if bits & flags::ACK != 0 {
                ack.to_string()
            } else {
                format!("{ack} (no ACK flag)")
            };
            out.push((t("ack"), ack_text));
            out.push((t("window"), window.to_string()));
            out.push((t("urg_ptr"), urg_ptr.to_string()));
            out.push((t("doff"), doff.to_string()));
            for (i, opt) in options.iter().enumerate() {
                out.push((format!("{p}.tcp.options[{i}]"), option_text(opt)));
            }
            out.push((t("payload_len"), payload_len.to_string()));
            out.push((t("checksum_ok"), checksum_ok.to_string()));
        }
        NormFrame::Icmp {
            ip,
            icmp_type,
            code,
            rest,
            quoted_seq,
            checksum_ok,
        } => {
            ip_fields(&p, ip, &mut out);
            let i = |k: &str| format!("{p}.icmp.{k}");
            out.push((i("type"), icmp_type.to_string()));
            out.push((i("code"), code.to_string()));
            out.push((i("rest"), rest.iter().map(|b| format!("{b:02x}")).collect()));
            out.push((
                i("quoted_seq"),
                quoted_seq.map_or("none".into(), |s| s.to_string()),
            ));
            out.push((i("checksum_ok"), checksum_ok.to_string()));
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
            ip6_fields(&p, ip, &mut out);
            out.push((format!("{p}.eth.dst"), eth_dst.clone()));
            let i = |k: &str| format!("{p}.icmp6.{k}");
            out.push((i("type"), icmp_type.to_string()));
            out.push((i("code"), code.to_string()));
            out.push((i("rest"), rest.iter().map(|b| format!("{b:02x}")).collect()));
            out.push((i("target"), target.map_or("none".into(), |t| t.to_string())));
            out.push((i("lladdr"), lladdr.clone().unwrap_or_else(|| "none".into())));
            out.push((
                i("quoted_seq"),
                quoted_seq.map_or("none".into(), |s| s.to_string()),
            ));
            out.push((i("checksum_ok"), checksum_ok.to_string()));
        }
        NormFrame::Other { text } => out.push((format!("{p}.other"), text.clone())),
    }
    out
}

/// Every socket call as `(path, value)`.
fn call_fields(trace: &Trace) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, call) in trace.calls.iter().enumerate() {
        let r = &call.record;
        out.push((format!("call[{i}].call"), r.call.clone()));
        out.push((format!("call[{i}].args"), r.args.clone()));
        out.push((format!("call[{i}].result"), r.outcome.clone()));
    }
    out
}

/// Compares two ordered `(path, value)` lists: a path present on one side only, or with
/// different values, is a divergence.
fn compare_fields(
    reference: &[(String, String)],
    other: &[(String, String)],
    out: &mut Vec<Divergence>,
) {
    let theirs: BTreeMap<&str, &str> = other
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ours: BTreeMap<&str, &str> = reference
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let push = |out: &mut Vec<Divergence>, path: &str, r: &str, o: &str| {
        out.push(Divergence {
            path: path.into(),
            reference: r.into(),
            other: o.into(),
            tolerance_ms: None,
            known: None,
        })
    };
    for (path, value) in reference {
        match theirs.get(path.as_str()) {
            Some(v) if v == value => {}
            Some(v) => push(out, path, value, v),
            None => push(out, path, value, "absent"),
        }
    }
    for (path, value) in other {
        if !ours.contains_key(path.as_str()) {
            push(out, path, "absent", value);
        }
    }
}

/// Compares timing, judging only what the DUT controls:
/// - the gap before each frame *the DUT sent* (the peer's frames are scripted; their timing
///   is the harness's, scheduling noise included, not the DUT's), counted from what caused
///   it: the call that put it on the wire, where the reference shows one
///   ([`emitting_call`]), else the frame before it;
/// - for each call, what made it return, as the reference shows it: a call that returned
///   within a jiffy of the frame or call before it was woken by that event, so the time
///   since the event is compared; any other call ended on a timer of its own (a blocking
///   connect, `SO_SNDTIMEO`, a poll timeout), so its duration is compared.
///
/// The tolerance is [`timing::pair_tolerance_ms`] of the reference's interval, in both
/// directions: the timer-wheel granularity plus two jiffies, how far apart two runs can be
/// that each meet the window `expect` allows one run (a jiffy early to a granularity and a
/// jiffy late).
///
/// `extra_ms` widens every timing tolerance for a DUT whose clock is looser than the host
/// kernel's (an emulated one); it is measured, and part of each tolerance printed.
fn compare_timing(reference: &Trace, other: &Trace, extra_ms: f64, out: &mut Vec<Divergence>) {
    let mut check_from = |path: String, r_ms: f64, o_ms: f64, basis: &str| {
        let tolerance = timing::pair_tolerance_ms(r_ms.abs()) + extra_ms;
        if (r_ms - o_ms).abs() > tolerance {
            out.push(Divergence {
                path,
                reference: format!("{r_ms:.1} ms{basis}"),
                other: format!("{o_ms:.1} ms{basis}"),
                tolerance_ms: Some(tolerance),
                known: None,
            });
        }
    };
    let n = reference.frames.len().min(other.frames.len());
    for i in 1..n {
        if reference.frames[i].dir != crate::observe::trace::Dir::Out {
            continue;
        }
        let path = format!("frame[{i}].interval");
        match emitting_call(reference, i).filter(|c| *c < other.calls.len()) {
            Some(c) => {
                let r = reference.frames[i].t_ms - call_start_ms(reference, c);
                let o = other.frames[i].t_ms - call_start_ms(other, c);
                check_from(path, r, o, &format!(" after call[{c}] began"));
            }
            None => {
                let r = reference.frames[i].t_ms - reference.frames[i - 1].t_ms;
                let o = other.frames[i].t_ms - other.frames[i - 1].t_ms;
                check_from(path, r, o, "");
            }
        }
    }
    let mut check = |path: String, r_ms: f64, o_ms: f64| check_from(path, r_ms, o_ms, "");
    let n = reference.calls.len().min(other.calls.len());
    for i in 0..n {
        let woken = since_previous_event(reference, i);
        if woken <= timing::JIFFY_MS {
            check(
                format!("call[{i}].returned_after_event"),
                woken,
                since_previous_event(other, i),
            );
        } else {
            check(
                format!("call[{i}].duration"),
                reference.calls[i].took_ms,
                other.calls[i].took_ms,
            );
        }
    }
}

/// Calls that can put a segment on the wire themselves (a SYN, data, a window update, a FIN
/// or RST, a push on an option change); a poll, a getsockopt or a pause cannot.
const EMITTING_CALLS: [&str; 5] = ["connect", "send", "recv", "close", "setsockopt"];

/// When call `c` began, in ms since the origin.
fn call_start_ms(trace: &Trace, c: usize) -> f64 {
    trace.calls[c].t_ms - trace.calls[c].took_ms
}

/// The call that sent frame `i`, if the trace shows one: a call that can emit frames, begun
/// after the frame before (so nothing since then but the call can have caused it), and
/// still running, or returned at most a jiffy earlier, when the frame went out. A FIN then
/// counts from `close()`, not from an ACK whose time the peer's scheduling set.
fn emitting_call(trace: &Trace, i: usize) -> Option<usize> {
    let t = trace.frames[i].t_ms;
    let previous = trace.frames[i - 1].t_ms;
    (0..trace.calls.len()).rev().find(|&c| {
        let start = call_start_ms(trace, c);
        EMITTING_CALLS.contains(&trace.calls[c].record.call.as_str())
            && start > previous
            && start <= t
            && t <= trace.calls[c].t_ms + timing::JIFFY_MS
    })
}

/// The time from the latest event before call `i` returned (a frame, or an earlier call's
/// return) to that return; 0 for a call with nothing before it.
fn since_previous_event(trace: &Trace, i: usize) -> f64 {
    let t = trace.calls[i].t_ms;
    let frames = trace.frames.iter().map(|f| f.t_ms).filter(|ft| *ft <= t);
    let calls = trace.calls[..i].iter().map(|c| c.t_ms);
    frames
        .chain(calls)
        .fold(None, |acc: Option<f64>, x| {
            Some(acc.map_or(x, |a| a.max(x)))
        })
        .map_or(0.0, |prev| t - prev)
}

/// Checks the raw values normalization hid: the ephemeral port must be in the kernel's
/// range and of the parity the kernel's port had (`inet_hash_connect`). A port the case
/// bound is no ephemeral port: it must be the bound one, and range and parity do not apply.
/// (ISNs are checked over a whole run, by [`repeated_isns`]: two runs of the same kernel
/// started together can legitimately pick the same ISN, since its secret is global and its
/// clock term can coincide.)
///
/// TSval's base is checked too: Linux's is `CLOCK_MONOTONIC` in ms plus an offset keyed by
/// the addresses and ports (`secure_tcp_ts_off`) with `tcp_timestamps` 1, and the bare clock
/// with 2. The values differ run to run, but which of the two the DUT used does not; nor
/// whether a socket that connects again from another port gets a new offset.
pub fn properties(reference: &Trace, other: &Trace, ports: &EphemeralPorts) -> Vec<Divergence> {
    let mut out = Vec::new();
    let mut push = |path: &str, r: String, o: String| {
        out.push(Divergence {
            path: path.into(),
            reference: r,
            other: o,
            tolerance_ms: None,
            known: None,
        })
    };
    if let (Some(r), Some(o)) = (reference.raw.dut_ts_offset_ms, other.raw.dut_ts_offset_ms) {
        if ts_offset_kind(r) != ts_offset_kind(o) {
            push(
                "property.ts_offset",
                ts_offset_kind(r).into(),
                format!("{} ({o:+} ms from the clock)", ts_offset_kind(o)),
            );
        }
    }
    let rebases = reference.raw.dut_ts_rebase_ms.iter();
    for (k, pair) in rebases.zip(&other.raw.dut_ts_rebase_ms).enumerate() {
        // A connection without timestamps on one side shows as option fields.
        let (Some(r), Some(o)) = pair else {
            continue;
        };
        if ts_rebase_kind(*r) != ts_rebase_kind(*o) {
            push(
                &format!("property.ts_offset_connection[{}]", k + 2),
                ts_rebase_kind(*r).into(),
                format!("{} ({o:+} ms)", ts_rebase_kind(*o)),
            );
        }
    }
    let (Some(r), Some(o)) = (reference.raw.dut_port, other.raw.dut_port) else {
        return out;
    };
    match (reference.raw.bound_port, other.raw.bound_port) {
        (_, Some(bound)) => {
            if o != bound {
                push("property.port_bound", bound.to_string(), o.to_string());
            }
        }
        // The other's bind failed where the reference's did not: its call result differs.
        (Some(_), None) => {}
        (None, None) => {
            let (lo, hi) = ports.range;
            if !(lo..=hi).contains(&o) {
                push(
                    "property.port_in_range",
                    format!("{lo}..={hi}"),
                    o.to_string(),
                );
            }
            if ports.is_reserved(o) {
                push(
                    "property.port_not_reserved",
                    "not in ip_local_reserved_ports".into(),
                    format!("{o} (reserved)"),
                );
            }
            if r % 2 != o % 2 {
                let parity = |p: u16| if p.is_multiple_of(2) { "even" } else { "odd" };
                push(
                    "property.port_parity",
                    parity(r).into(),
                    format!("{} ({o})", parity(o)),
                );
            }
        }
    }
    out
}

/// Within this of the clock, a TSval has no offset: the SYN is stamped before the ARP wait
/// that delays it, and a random 32-bit offset lands this close with odds of about 1 in 400000.
const TS_UNKEYED_MS: i64 = 5000;

/// Which base a first TSval `offset_ms` from `CLOCK_MONOTONIC` has.
fn ts_offset_kind(offset_ms: i64) -> &'static str {
    if offset_ms.abs() <= TS_UNKEYED_MS {
        "the clock itself (tcp_timestamps 2)"
    } else {
        "the clock plus a keyed offset (secure_tcp_ts_off)"
    }
}

/// Whether a later connection's TSvals kept the first connection's base, given how far its
/// first TSval is from that base ([`crate::observe::trace::RawValues::dut_ts_rebase_ms`]).
fn ts_rebase_kind(rebase_ms: i64) -> &'static str {
    if rebase_ms.abs() <= TS_UNKEYED_MS {
        "the first connection's TSval offset"
    } else {
        "an offset of its own (secure_tcp_ts_off keyed by the ports)"
    }
}

/// ISNs that an implementation used in more than one case of a run, with the cases: a
/// stack whose ISN does not vary (a constant, a counter reset per socket) shows here; a
/// keyed, time-based ISN like `secure_tcp_seq`'s never repeats across different
/// connections.
pub fn repeated_isns<'a>(
    isns: impl IntoIterator<Item = (&'a str, Option<u32>)>,
) -> Vec<(u32, Vec<&'a str>)> {
    let mut by_isn: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (case, isn) in isns {
        if let Some(isn) = isn {
            by_isn.entry(isn).or_default().push(case);
        }
    }
    by_isn
        .into_iter()
        .filter(|(_, cases)| cases.len() > 1)
        .collect()
}

/// Whether `pattern` (a path where `*` stands for any index, or a prefix of whole
/// segments) covers `path`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.chars().peekable();
    let mut s = path.chars().peekable();
    loop {
        match (p.peek().copied(), s.peek().copied()) {
            (None, None) => return true,
            (None, Some('.')) | (None, Some('[')) => return true,
            (None, Some(_)) => return false,
            (Some(_), None) => return false,
            (Some('*'), Some(_)) => {
                p.next();
                while s.peek().is_some_and(|c| *c != ']') {
                    s.next();
                }
            }
            (Some(a), Some(b)) if a == b => {
                p.next();
                s.next();
            }
            _ => return false,
        }
    }
}

/// Diffs `other` against `reference` (the kernel's run): fields, timing, properties.
/// Divergences the case lists as known carry the case's reason.
pub fn diff(
    reference: &Trace,
    other: &Trace,
    known: &[KnownDivergence],
    ports: &EphemeralPorts,
) -> Vec<Divergence> {
    diff_with_allowance(reference, other, known, ports, 0.0)
}

/// [`diff`], with every timing tolerance widened by `extra_ms` (a DUT's measured
/// [`crate::record::TimingAllowance`]).
pub fn diff_with_allowance(
    reference: &Trace,
    other: &Trace,
    known: &[KnownDivergence],
    ports: &EphemeralPorts,
    extra_ms: f64,
) -> Vec<Divergence> {
    let flatten = |t: &Trace| {
        let mut fields = Vec::new();
        for (i, f) in t.frames.iter().enumerate() {
            fields.extend(frame_fields(i, &f.norm, f.dir.arrow()));
        }
        fields.extend(ts_echoes(t));
        fields.extend(call_fields(t));
        fields
    };
    let mut out = Vec::new();
    compare_fields(&flatten(reference), &flatten(other), &mut out);
    compare_timing(reference, other, extra_ms, &mut out);
    ts_clock(other, extra_ms, &mut out);
    out.extend(properties(reference, other, ports));
    for d in &mut out {
        d.known = known
            .iter()
            .find(|k| path_matches(&k.path, &d.path))
            .map(|k| k.reason.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::craft::{self, Segment};
    use crate::record::CallRecord;
    use crate::record::Captured;
    use std::net::Ipv4Addr;

    const DUT: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn syn(t_ms: i64, isn: u32, window: u16, options: Vec<u8>) -> Captured {
        syn_from(40000, t_ms, isn, window, options)
    }

    fn syn_from(sport: u16, t_ms: i64, isn: u32, window: u16, options: Vec<u8>) -> Captured {
        Captured {
            t_ns: 1_000_000_000 + t_ms * 1_000_000,
            bytes: craft::tcp(&Segment {
                src_mac: DUT,
                dst_mac: PEER,
                src_ip: Ipv4Addr::new(198, 18, 0, 1).into(),
                dst_ip: Ipv4Addr::new(198, 18, 0, 2).into(),
                ip_id: 100,
                sport,
                dport: 80,
                seq: isn,
                ack: 0,
                flags: flags::SYN,
                window,
                options,
                payload_len: 0,
            }),
        }
    }

    const LINUX: [u8; 20] = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 10,
    ];
    /// wscale before sackOK: the mistake the gate must catch.
    const SWAPPED: [u8; 20] = [
        2, 4, 5, 0xb4, 1, 3, 3, 10, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 4, 2,
    ];

    fn trace(frames: &[Captured]) -> Trace {
        crate::observe::trace::build(frames, &[], DUT)
    }

    #[test]
    fn every_frame_field_can_be_named_in_an_expect_pattern() {
        use crate::case::FieldPath;
        use crate::observe::trace::{IpId, NormFrame, NormIpv4, Port};
        let ip = NormIpv4 {
            ihl: 6,
            tos: 0,
            ttl: 64,
            df: true,
            id: IpId::Delta(1),
            options: vec![1, 1, 1, 0],
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            checksum_ok: true,
        };
        let frames = [
            NormFrame::Arp {
                op: 1,
                sender_ip: ip.src,
                target_ip: ip.dst,
            },
            NormFrame::Tcp {
                ip: NormIp::V4(ip.clone()),
                sport: Port::Ephemeral(1),
                dport: Port::Fixed(80),
                seq: 0,
                ack: 0,
                flags: flags::SYN,
                window: 1,
                urg_ptr: 0,
                doff: 10,
                options: tcp_options::parse(&LINUX),
                payload_len: 0,
                checksum_ok: true,
            },
            NormFrame::Icmp {
                ip: NormIp::V4(ip),
                icmp_type: 3,
                code: 4,
                rest: [0; 4],
                quoted_seq: Some(0),
                checksum_ok: true,
            },
            NormFrame::Other {
                text: "ipv6".into(),
            },
        ];
        let ip6 = crate::observe::trace::NormIpv6 {
            tclass: 0,
            flow_label: crate::observe::trace::FlowLabel::Nth(1),
            hop_limit: 64,
            payload_len: 40,
            next_header: 6,
            src: "2001:2::1".parse().unwrap(),
            dst: "2001:2::2".parse().unwrap(),
        };
        let mut frames = frames.to_vec();
        frames.push(NormFrame::Tcp {
            ip: NormIp::V6(ip6.clone()),
            sport: Port::Ephemeral(1),
            dport: Port::Fixed(80),
            seq: 0,
            ack: 0,
            flags: flags::SYN,
            window: 1,
            urg_ptr: 0,
            doff: 10,
            options: tcp_options::parse(&LINUX),
            payload_len: 0,
            checksum_ok: true,
        });
        frames.push(NormFrame::Icmpv6 {
            ip: ip6,
            eth_dst: "33:33:ff:00:00:02".into(),
            icmp_type: 135,
            code: 0,
            rest: [0; 4],
            target: Some("2001:2::2".parse().unwrap()),
            lladdr: Some("02:00:00:00:00:01".into()),
            quoted_seq: None,
            checksum_ok: true,
        });
        let mut paths: Vec<String> = frames
            .iter()
            .flat_map(|f| frame_fields(0, f, '>'))
            .map(|(path, _)| path)
            .collect();
        let echoes = ts_echoes(&trace(&[syn(0, 1, 1, LINUX.to_vec())]));
        assert_eq!(echoes.len(), 1);
        paths.extend(echoes.into_iter().map(|(path, _)| path));
        for path in paths {
            let below = path.strip_prefix("frame[0].").unwrap();
            assert!(
                FieldPath::known(below),
                "{below} cannot be named in expect.frames"
            );
        }
    }

    /// A SYN of the DUT's over IPv6 with this traffic class.
    fn syn6(isn: u32, tclass: u8) -> Captured {
        Captured {
            t_ns: 1_000_000_000,
            bytes: craft::tcp_with_tos(
                &Segment {
                    src_mac: DUT,
                    dst_mac: PEER,
                    src_ip: "2001:2::1".parse().unwrap(),
                    dst_ip: "2001:2::2".parse().unwrap(),
                    ip_id: 0,
                    sport: 40000,
                    dport: 80,
                    seq: isn,
                    ack: 0,
                    flags: flags::SYN,
                    window: 64800,
                    options: LINUX.to_vec(),
                    payload_len: 0,
                },
                tclass,
            ),
        }
    }

    #[test]
    fn ipv6_header_fields_are_compared_and_a_family_change_is_a_divergence() {
        let a = trace(&[syn6(1000, 0)]);
        assert_eq!(
            diff(&a, &trace(&[syn6(5, 0)]), &[], &EphemeralPorts::default()),
            vec![]
        );
        let found: Vec<(String, String, String)> = diff(
            &a,
            &trace(&[syn6(1000, 0x10)]),
            &[],
            &EphemeralPorts::default(),
        )
        .into_iter()
        .map(|d| (d.path, d.reference, d.other))
        .collect();
        assert_eq!(
            found,
            vec![("frame[0].ip6.tclass".into(), "0x00".into(), "0x10".into())]
        );
        // The same SYN over IPv4: every IPv6 field is absent, every IPv4 one new.
        let v4 = trace(&[syn(0, 1000, 64800, LINUX.to_vec())]);
        let paths: Vec<String> = diff(&a, &v4, &[], &EphemeralPorts::default())
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert!(
            paths.contains(&"frame[0].ip6.hop_limit".to_string()),
            "{paths:?}"
        );
        assert!(paths.contains(&"frame[0].ip.ttl".to_string()), "{paths:?}");
    }

    #[test]
    fn identical_behaviour_with_other_random_values_does_not_diverge() {
        let a = trace(&[syn(0, 1000, 64240, LINUX.to_vec())]);
        let b = trace(&[syn(0, 77777, 64240, LINUX.to_vec())]);
        assert_eq!(diff(&a, &b, &[], &EphemeralPorts::default()), vec![]);
    }

    #[test]
    fn option_order_and_window_differences_are_named_by_path() {
        let a = trace(&[syn(0, 1000, 64240, LINUX.to_vec())]);
        let b = trace(&[syn(0, 2000, 65535, SWAPPED.to_vec())]);
        let found: Vec<(String, String, String)> = diff(&a, &b, &[], &EphemeralPorts::default())
            .into_iter()
            .map(|d| (d.path, d.reference, d.other))
            .collect();
        assert!(
            found.contains(&("frame[0].tcp.window".into(), "64240".into(), "65535".into())),
            "{found:?}"
        );
        assert!(
            found.contains(&(
                "frame[0].tcp.options[1]".into(),
                "sackOK".into(),
                "nop".into()
            )),
            "{found:?}"
        );
        assert!(
            found.contains(&(
                "frame[0].tcp.options[2]".into(),
                "TS".into(),
                "wscale 10".into()
            )),
            "{found:?}"
        );
    }

    #[test]
    fn retransmission_timing_is_compared_with_the_wheel_tolerance() {
        let a = trace(&[syn(0, 1, 64240, vec![]), syn(1020, 1, 64240, vec![])]);
        let close = trace(&[syn(0, 9, 64240, vec![]), syn(1060, 9, 64240, vec![])]);
        let just_over = trace(&[syn(0, 9, 64240, vec![]), syn(1061, 9, 64240, vec![])]);
        let far = trace(&[syn(0, 9, 64240, vec![]), syn(1100, 9, 64240, vec![])]);
        // 1020 ms: a 32 ms granularity plus two jiffies.
        assert_eq!(diff(&a, &close, &[], &EphemeralPorts::default()), vec![]);
        for other in [&just_over, &far] {
            let d = diff(&a, other, &[], &EphemeralPorts::default());
            assert_eq!(d.len(), 1, "{d:?}");
            assert_eq!(d[0].path, "frame[1].interval");
            assert_eq!(d[0].tolerance_ms, Some(40.0));
        }
    }

    /// A data-less segment at `t_us` µs, from the DUT or from the peer.
    fn segment(t_us: i64, from_dut: bool, flags: u16) -> Captured {
        let (dut, peer) = (
            (Ipv4Addr::new(198, 18, 0, 1), 40000),
            (Ipv4Addr::new(198, 18, 0, 2), 80),
        );
        let ((src_ip, sport), (dst_ip, dport), src_mac, dst_mac) = if from_dut {
            (dut, peer, DUT, PEER)
        } else {
            (peer, dut, PEER, DUT)
        };
        Captured {
            t_ns: 1_000_000_000 + t_us * 1_000,
            bytes: craft::tcp(&Segment {
                src_mac,
                dst_mac,
                src_ip: src_ip.into(),
                dst_ip: dst_ip.into(),
                ip_id: 1,
                sport,
                dport,
                seq: 1,
                ack: 1,
                flags,
                window: 64240,
                options: vec![],
                payload_len: 0,
            }),
        }
    }

    fn call(name: &str, start_us: i64, end_us: i64) -> CallRecord {
        CallRecord {
            call: name.into(),
            args: String::new(),
            ret: 0,
            errno: None,
            outcome: "0".into(),
            start_ns: 1_000_000_000 + start_us * 1_000,
            end_ns: 1_000_000_000 + end_us * 1_000,
        }
    }

    /// A connect answered after `synack_ms` (the peer's own timing), then close() at 150 ms
    /// whose FIN leaves `fin_after_us` after the call began.
    fn connect_then_close(synack_ms: i64, fin_after_us: i64) -> Trace {
        let frames = [
            segment(0, true, flags::SYN),
            segment(synack_ms * 1000, false, flags::SYN | flags::ACK),
            segment(synack_ms * 1000 + 40, true, flags::ACK),
            segment(150_000 + fin_after_us, true, flags::FIN | flags::ACK),
        ];
        let calls = [
            call("connect", -10, 0),
            call("poll", 20, 25),
            call("close", 150_000, 150_000 + fin_after_us + 30),
        ];
        crate::observe::trace::build(&frames, &calls, DUT)
    }

    #[test]
    fn a_frame_a_call_sent_is_timed_from_the_call_not_from_a_late_peer() {
        // The peer's SYN-ACK came 12 ms late in the second run (its timer, not the DUT):
        // counted from the ACK before it, the FIN looked 12 ms early.
        let on_time = connect_then_close(50, 60);
        let peer_late = connect_then_close(62, 90);
        assert_eq!(
            diff(&on_time, &peer_late, &[], &EphemeralPorts::default()),
            vec![]
        );
        // A FIN that left 20 ms after close() began is the DUT's own lateness.
        let d = diff(
            &on_time,
            &connect_then_close(50, 20_000),
            &[],
            &EphemeralPorts::default(),
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, "frame[3].interval");
        assert_eq!(d[0].reference, "0.1 ms after call[2] began");
        assert_eq!(d[0].other, "20.0 ms after call[2] began");
    }

    #[test]
    fn a_frame_no_call_sent_is_timed_from_the_frame_before() {
        // The ACK answers the SYN-ACK: connect() began before the SYN-ACK, and poll()
        // cannot send, so both runs count from the SYN-ACK and agree.
        let a = connect_then_close(50, 60);
        let b = connect_then_close(70, 60);
        assert_eq!(emitting_call(&a, 2), None);
        assert_eq!(emitting_call(&a, 3), Some(2));
        assert_eq!(diff(&a, &b, &[], &EphemeralPorts::default()), vec![]);
    }

    #[test]
    fn a_missing_frame_is_reported() {
        let a = trace(&[syn(0, 5, 64240, vec![]), syn(1000, 5, 64240, vec![])]);
        let b = trace(&[syn(0, 5, 64240, vec![])]);
        let d = diff(&a, &b, &[], &EphemeralPorts::default());
        assert!(
            d.iter()
                .any(|d| d.path == "frame[1].dir" && d.other == "absent"),
            "{d:?}"
        );
    }

    /// A first SYN from `port`, in a run whose case binds `bound` first (`bind_errno`: how
    /// that `bind` call failed, if it did).
    fn syn_bound(port: u16, bound: Option<u16>, bind_errno: Option<&str>) -> Trace {
        let frame = syn_from(port, 0, 1000, 64240, LINUX.to_vec());
        let mut bind = call("bind", -20, -19);
        bind.errno = bind_errno.map(str::to_string);
        let ports: Vec<u16> = bound.into_iter().collect();
        crate::observe::trace::build_bound(&[frame], &[bind, call("connect", -10, 0)], DUT, &ports)
    }

    fn paths(found: &[Divergence]) -> Vec<(&str, &str, &str)> {
        found
            .iter()
            .map(|d| (d.path.as_str(), d.reference.as_str(), d.other.as_str()))
            .collect()
    }

    #[test]
    fn the_tsval_base_must_be_the_kernels() {
        let with_offset = |ms: Option<i64>| {
            let mut t = syn_bound(40000, None, None);
            t.raw.dut_ts_offset_ms = ms;
            t
        };
        let keyed = with_offset(Some(-1_234_567_890));
        let bare = with_offset(Some(-3));
        assert_eq!(
            paths(&diff(&keyed, &bare, &[], &EphemeralPorts::default())),
            [(
                "property.ts_offset",
                "the clock plus a keyed offset (secure_tcp_ts_off)",
                "the clock itself (tcp_timestamps 2) (-3 ms from the clock)"
            )]
        );
        assert_eq!(
            paths(&diff(&bare, &keyed, &[], &EphemeralPorts::default())).len(),
            1
        );
        // Two keyed offsets, or two bare clocks a few ms apart, agree.
        let other_keyed = with_offset(Some(987_654_321));
        assert_eq!(
            diff(&keyed, &other_keyed, &[], &EphemeralPorts::default()),
            vec![]
        );
        assert_eq!(
            diff(
                &bare,
                &with_offset(Some(0)),
                &[],
                &EphemeralPorts::default()
            ),
            vec![]
        );
        // Not known on one side (no timestamps, or a DUT on another clock): not compared.
        assert_eq!(
            diff(&keyed, &with_offset(None), &[], &EphemeralPorts::default()),
            vec![]
        );
    }

    #[test]
    fn a_reconnect_must_rebase_its_tsvals_as_the_kernel_does() {
        let with_rebase = |ms: Vec<i64>| {
            let mut t = syn_bound(40000, None, None);
            t.raw.dut_ts_rebase_ms = ms.into_iter().map(Some).collect();
            t
        };
        let kernel = with_rebase(vec![1_234_567]);
        assert_eq!(
            paths(&diff(
                &kernel,
                &with_rebase(vec![2]),
                &[],
                &EphemeralPorts::default()
            )),
            [(
                "property.ts_offset_connection[2]",
                "an offset of its own (secure_tcp_ts_off keyed by the ports)",
                "the first connection's TSval offset (+2 ms)"
            )]
        );
        assert_eq!(
            diff(
                &kernel,
                &with_rebase(vec![-99_999_999]),
                &[],
                &EphemeralPorts::default()
            ),
            vec![]
        );
        let kept = with_rebase(vec![0, 1]);
        assert_eq!(
            paths(&diff(
                &kept,
                &with_rebase(vec![0, -700_000]),
                &[],
                &EphemeralPorts::default()
            ))[0]
                .0,
            "property.ts_offset_connection[3]"
        );
        // A second connection without timestamps keeps the third's number.
        let untimed = |ms: i64| {
            let mut t = syn_bound(40000, None, None);
            t.raw.dut_ts_rebase_ms = vec![None, Some(ms)];
            t
        };
        let d = diff(
            &untimed(0),
            &untimed(-700_000),
            &[],
            &EphemeralPorts::default(),
        );
        assert_eq!(paths(&d)[0].0, "property.ts_offset_connection[3]");
        assert_eq!(
            diff(&untimed(0), &untimed(3), &[], &EphemeralPorts::default()),
            vec![]
        );
    }

    #[test]
    fn the_ephemeral_port_must_be_in_range_and_of_the_kernels_parity() {
        let kernel = syn_bound(40000, None, None);
        assert_eq!(
            diff(
                &kernel,
                &syn_bound(50002, None, None),
                &[],
                &EphemeralPorts::default()
            ),
            vec![]
        );
        let d = diff(
            &kernel,
            &syn_bound(1000, None, None),
            &[],
            &EphemeralPorts::default(),
        );
        assert_eq!(
            paths(&d),
            [("property.port_in_range", "32768..=60999", "1000")]
        );
        let d = diff(
            &kernel,
            &syn_bound(40001, None, None),
            &[],
            &EphemeralPorts::default(),
        );
        assert_eq!(paths(&d), [("property.port_parity", "even", "odd (40001)")]);
    }

    #[test]
    fn an_ephemeral_port_must_not_be_reserved() {
        let ports = EphemeralPorts {
            range: (40000, 40999),
            reserved: vec![(40000, 40998)],
        };
        let kernel = syn_bound(40999, None, None);
        assert_eq!(
            diff(&kernel, &syn_bound(40999, None, None), &[], &ports),
            vec![]
        );
        let d = diff(&kernel, &syn_bound(40501, None, None), &[], &ports);
        assert_eq!(
            paths(&d),
            [(
                "property.port_not_reserved",
                "not in ip_local_reserved_ports",
                "40501 (reserved)"
            )]
        );
        // A port the case bound by number is the case's choice, reserved or not.
        let bound = syn_bound(40500, Some(40500), None);
        assert_eq!(
            diff(&bound, &syn_bound(40500, Some(40500), None), &[], &ports),
            vec![]
        );
    }

    #[test]
    fn a_bound_port_is_compared_as_its_number_and_not_as_an_ephemeral_one() {
        // 5555 is outside the ephemeral range and odd: neither property applies to it.
        let kernel = syn_bound(5555, Some(5555), None);
        assert!(kernel.frames[0].norm.text().contains(":5555 > "));
        assert_eq!(
            diff(
                &kernel,
                &syn_bound(5555, Some(5555), None),
                &[],
                &EphemeralPorts::default()
            ),
            vec![]
        );
        // A stack that ignored bind() and picked a port of its own.
        let d = diff(
            &kernel,
            &syn_bound(40000, Some(5555), None),
            &[],
            &EphemeralPorts::default(),
        );
        assert_eq!(
            paths(&d),
            [
                ("frame[0].tcp.sport", "5555", "40000"),
                ("property.port_bound", "5555", "40000")
            ]
        );
    }

    #[test]
    fn a_failed_bind_leaves_the_port_ephemeral() {
        let a = syn_bound(40000, Some(80), Some("EADDRNOTAVAIL"));
        assert_eq!(a.raw.bound_port, None);
        assert!(a.frames[0].norm.text().contains(":$port > "));
        let d = diff(
            &a,
            &syn_bound(40002, Some(80), Some("EADDRNOTAVAIL")),
            &[],
            &EphemeralPorts::default(),
        );
        assert_eq!(d, vec![]);
    }

    #[test]
    fn the_first_bind_that_succeeds_decides_the_port() {
        let frame = syn_from(5555, 0, 1000, 64240, LINUX.to_vec());
        let mut refused = call("bind", -30, -29);
        refused.errno = Some("EINVAL".into());
        let bound = call("bind", -20, -19);
        let calls = [refused, bound, call("connect", -10, 0)];
        let t = crate::observe::trace::build_bound(
            std::slice::from_ref(&frame),
            &calls,
            DUT,
            &[5555, 5555],
        );
        assert_eq!(t.raw.bound_port, Some(5555));
        assert!(t.frames[0].norm.text().contains(":5555 > "));
        // The same calls, where the bind that succeeded asked for any port.
        let t = crate::observe::trace::build_bound(&[frame], &calls, DUT, &[5555, 0]);
        assert_eq!(t.raw.bound_port, None);
    }

    #[test]
    fn an_isn_used_in_two_cases_is_named_with_both() {
        let found = repeated_isns([("a", Some(1)), ("b", Some(2)), ("c", Some(1)), ("d", None)]);
        assert_eq!(found, vec![(1, vec!["a", "c"])]);
        assert!(repeated_isns([("a", Some(1)), ("b", Some(2))]).is_empty());
    }

    #[test]
    fn known_divergences_stay_reported_with_their_reason() {
        let a = trace(&[syn(0, 1000, 64240, LINUX.to_vec())]);
        let b = trace(&[syn(0, 2000, 65535, LINUX.to_vec())]);
        let known = [KnownDivergence {
            path: "frame[*].tcp.window".into(),
            reason: "issue 12".into(),
            family: None,
        }];
        let d = diff(&a, &b, &known, &EphemeralPorts::default());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].known.as_deref(), Some("issue 12"));
    }

    #[test]
    fn patterns_match_whole_segments_and_wildcard_indexes() {
        assert!(path_matches("frame[2].tcp.window", "frame[2].tcp.window"));
        assert!(path_matches("frame[2]", "frame[2].tcp.window"));
        assert!(path_matches("frame[*].ip.id", "frame[13].ip.id"));
        assert!(!path_matches("frame[2]", "frame[21].tcp.window"));
        assert!(!path_matches("frame[2].tcp.win", "frame[2].tcp.window"));
        assert!(!path_matches("call[*].result", "frame[1].tcp.seq"));
    }
}
