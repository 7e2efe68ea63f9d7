//! Checks a case's `expect` section against a run's trace.
//!
//! Every timing check derives its tolerance from the kernel's timer granularity
//! ([`crate::timing`]) unless the case names its own, and the tolerance applied is part of
//! the check's text, so a report shows what was allowed.

use serde::Serialize;

use crate::case::{CallExpect, Expect, SynExpect};
use crate::decode::flags;
use crate::tcp_options::{self, TsStyle};
use crate::timing;
use crate::trace::{flags_text, Dir, NormFrame, Trace};

/// One assertion and how it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub what: String,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
}

impl Check {
    fn new(
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
        ok: bool,
    ) -> Check {
        Check {
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
            ok,
        }
    }

    fn eq(what: impl Into<String>, expected: impl ToString, actual: impl ToString) -> Check {
        let (e, a) = (expected.to_string(), actual.to_string());
        let ok = e == a;
        Check::new(what, e, a, ok)
    }
}

/// A time check: `actual` must lie in `[nominal − 1 jiffy, nominal + tolerance]`, since
/// kernel timers fire late, never early.
fn timed(what: String, nominal_ms: f64, tolerance_ms: f64, actual_ms: Option<f64>) -> Check {
    let expected = format!(
        "{nominal_ms:.0} ms (-{:.0}/+{tolerance_ms:.0} ms)",
        timing::JIFFY_MS
    );
    match actual_ms {
        None => Check::new(what, expected, "absent", false),
        Some(a) => {
            let ok = a >= nominal_ms - timing::JIFFY_MS && a <= nominal_ms + tolerance_ms;
            Check::new(what, expected, format!("{a:.1} ms"), ok)
        }
    }
}

/// Runs every check of `expect` against `trace`.
pub fn check(expect: &Expect, trace: &Trace) -> Vec<Check> {
    let mut checks = Vec::new();
    for call in &expect.calls {
        checks.extend(check_call(call, trace));
    }
    if let Some(syn) = &expect.syn {
        checks.extend(check_syn(syn, trace));
    }
    if let Some(frames) = &expect.frames {
        let actual: Vec<String> = trace.frames.iter().map(|f| f.label()).collect();
        checks.push(Check::eq("frames", frames.join(", "), actual.join(", ")));
    }
    checks
}

fn check_call(expect: &CallExpect, trace: &Trace) -> Vec<Check> {
    let what = format!("{} #{}", expect.call, expect.nth);
    let found = trace
        .calls
        .iter()
        .filter(|c| c.record.call == expect.call)
        .nth(expect.nth - 1);
    let Some(call) = found else {
        return vec![Check::new(what, &expect.result, "never made", false)];
    };
    let mut out = vec![Check::eq(
        format!("{what} result"),
        &expect.result,
        &call.record.outcome,
    )];
    if let Some(at) = expect.at_ms {
        let tolerance = expect
            .tolerance_ms
            .unwrap_or_else(|| timing::tolerance_ms(at));
        out.push(timed(
            format!("{what} returned at"),
            at,
            tolerance,
            Some(call.t_ms),
        ));
    }
    out
}

fn check_syn(expect: &SynExpect, trace: &Trace) -> Vec<Check> {
    let syns = trace.dut_syns();
    let mut out = Vec::new();
    let first = syns.first().map(|f| &f.norm);
    let field = |what: &str, expected: Option<String>, actual: Option<String>| {
        expected.map(|e| {
            Check::eq(
                what.to_string(),
                e,
                actual.unwrap_or_else(|| "no SYN".into()),
            )
        })
    };
    if let Some(NormFrame::Tcp {
        options,
        window,
        flags,
        ip,
        ..
    }) = first
    {
        out.extend(field(
            "SYN options",
            expect.options.clone(),
            Some(tcp_options::format_list(options, TsStyle::Shape)),
        ));
        out.extend(field(
            "SYN window",
            expect.window.map(|w| w.to_string()),
            Some(window.to_string()),
        ));
        out.extend(field(
            "SYN flags",
            expect.flags.clone(),
            Some(flags_text(*flags)),
        ));
        out.extend(field(
            "SYN ttl",
            expect.ttl.map(|t| t.to_string()),
            Some(ip.ttl.to_string()),
        ));
        out.extend(field(
            "SYN tos",
            expect.tos.map(|t| format!("0x{t:02x}")),
            Some(format!("0x{:02x}", ip.tos)),
        ));
    } else {
        for (what, wanted) in [
            ("SYN options", expect.options.is_some()),
            ("SYN window", expect.window.is_some()),
            ("SYN flags", expect.flags.is_some()),
            ("SYN ttl", expect.ttl.is_some()),
            ("SYN tos", expect.tos.is_some()),
        ] {
            if wanted {
                out.push(Check::new(what, "a SYN", "no SYN was sent", false));
            }
        }
    }
    if let Some(count) = expect.count {
        out.push(Check::eq("SYN count", count, syns.len()));
    }
    if let Some(intervals) = &expect.intervals_ms {
        // tcp_connect arms the retransmission timer when it queues the first SYN; if that SYN
        // then waited for ARP, the timer started with the ARP request it triggered, not
        // when the SYN reached the wire (a slow ARP reply would shorten the first gap).
        //
        // A segment with an unacceptable ACK in SYN-SENT (a bad SYN-ACK, an RST/ACK) re-arms
        // the timer to TCP_TIMEOUT_MIN from its arrival while nothing was retransmitted yet
        // (tcp_rcv_synsent_state_process, "Previous FIN/ACK or RST/ACK might be ignored").
        let armed = |i: usize| -> f64 {
            let t = syns[i].t_ms;
            if i > 0 {
                return t;
            }
            let next = syns.get(1).map_or(f64::INFINITY, |s| s.t_ms);
            let rearmed = trace
                .frames
                .iter()
                .rev()
                .filter(|f| f.dir == Dir::In && f.t_ms >= t && f.t_ms <= next)
                .find(|f| matches!(&f.norm, NormFrame::Tcp { flags: b, .. } if b & flags::ACK != 0))
                .map(|f| f.t_ms);
            if let Some(at) = rearmed {
                return at;
            }
            // The first request of the ARP exchange just before the SYN (retries included).
            trace
                .frames
                .iter()
                .filter(|f| f.t_ms <= t)
                .rev()
                .skip_while(|f| !matches!(f.norm, NormFrame::Arp { .. }))
                .take_while(|f| matches!(f.norm, NormFrame::Arp { .. }))
                .filter(|f| f.dir == Dir::Out && matches!(f.norm, NormFrame::Arp { op: 1, .. }))
                .map(|f| f.t_ms)
                .last()
                .unwrap_or(t)
        };
        let gaps: Vec<f64> = (1..syns.len())
            .map(|i| syns[i].t_ms - armed(i - 1))
            .collect();
        for (i, nominal) in intervals.iter().enumerate() {
            out.push(timed(
                format!("SYN interval {}→{}", i, i + 1),
                *nominal,
                timing::tolerance_ms(*nominal),
                gaps.get(i).copied(),
            ));
        }
        if gaps.len() > intervals.len() {
            out.push(Check::new(
                "SYN intervals",
                format!("{} intervals", intervals.len()),
                format!("{} intervals", gaps.len()),
                false,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request from the DUT (198.18.0.1 asking for .2).
    fn arp_request(t_ms: i64) -> crate::capture::Captured {
        let mut f = vec![0xff; 6];
        f.extend([
            2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1,
        ]);
        f.extend([198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2]);
        crate::capture::Captured {
            t_ns: t_ms * 1_000_000,
            bytes: f,
        }
    }

    /// A TCP segment at `t_ms`, from the DUT (198.18.0.1:40000) or to it.
    fn segment(t_ms: i64, from_dut: bool, bits: u16, ack: u32) -> crate::capture::Captured {
        let (dut, peer) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let (dut_ip, peer_ip) = (
            std::net::Ipv4Addr::new(198, 18, 0, 1),
            std::net::Ipv4Addr::new(198, 18, 0, 2),
        );
        let seg = crate::frame::Segment {
            src_mac: if from_dut { dut } else { peer },
            dst_mac: if from_dut { peer } else { dut },
            src_ip: if from_dut { dut_ip } else { peer_ip },
            dst_ip: if from_dut { peer_ip } else { dut_ip },
            ip_id: 1,
            sport: if from_dut { 40000 } else { 80 },
            dport: if from_dut { 80 } else { 40000 },
            seq: 1,
            ack,
            flags: bits,
            window: 64240,
            options: vec![],
            payload_len: 0,
        };
        crate::capture::Captured {
            t_ns: t_ms * 1_000_000,
            bytes: crate::frame::tcp(&seg),
        }
    }

    fn syn(t_ms: i64) -> crate::capture::Captured {
        segment(t_ms, true, flags::SYN, 0)
    }

    #[test]
    fn the_first_syn_interval_counts_from_the_arp_request_its_syn_waited_on() {
        // The SYN waited 30 ms for ARP; the RTO armed at the ARP request fired 1010 ms later.
        let frames = [arp_request(0), syn(30), syn(1010)];
        let trace = crate::trace::build(&frames, &[], [2, 0, 0, 0, 0, 1]);
        let expect = SynExpect {
            intervals_ms: Some(vec![1000.0]),
            ..SynExpect::default()
        };
        let checks = check_syn(&expect, &trace);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        // Without the ARP exchange the same gap from the wire SYN is too short.
        let trace = crate::trace::build(&[syn(30), syn(1010)], &[], [2, 0, 0, 0, 0, 1]);
        assert!(!check_syn(&expect, &trace)[0].ok);
    }

    /// A SYN-ACK from the peer acknowledging the wrong sequence number.
    fn bad_synack(t_ms: i64) -> crate::capture::Captured {
        segment(t_ms, false, flags::SYN | flags::ACK, 3)
    }

    #[test]
    fn a_bad_ack_in_syn_sent_rearms_the_first_interval_from_its_arrival() {
        // The SYN-ACK came 5 ms after the SYN; TCP_TIMEOUT_MIN (8 ms) from it is 13 ms.
        let expect = SynExpect {
            intervals_ms: Some(vec![8.0]),
            ..SynExpect::default()
        };
        let frames = [syn(0), bad_synack(5), syn(19)];
        let trace = crate::trace::build(&frames, &[], [2, 0, 0, 0, 0, 1]);
        assert!(check_syn(&expect, &trace)[0].ok, "14 ms after the SYN-ACK");
        // Counted from the first SYN the same retransmission would be 19 ms: too late.
        let trace = crate::trace::build(&[syn(0), syn(19)], &[], [2, 0, 0, 0, 0, 1]);
        assert!(!check_syn(&expect, &trace)[0].ok);
    }

    #[test]
    fn timing_accepts_late_within_granularity_and_rejects_early() {
        let tol = timing::tolerance_ms(1000.0);
        assert!(timed("t".into(), 1000.0, tol, Some(1030.0)).ok);
        assert!(!timed("t".into(), 1000.0, tol, Some(1040.0)).ok);
        assert!(!timed("t".into(), 1000.0, tol, Some(990.0)).ok);
        assert!(!timed("t".into(), 1000.0, tol, None).ok);
    }
}
