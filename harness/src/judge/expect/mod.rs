//! Checks a case's `expect` section against a run's trace.
//!
//! Every timing check derives its tolerance from the kernel's timer granularity
//! ([`crate::linux::timing`]) unless the case names its own, and the tolerance applied is part of
//! the check's text, so a report shows what was allowed.

use serde::Serialize;

use crate::case::{CallExpect, EphemeralPorts, Expect, PortStep, SynExpect};
use crate::linux::tcp_options::{self, TsStyle};
use crate::linux::timing;
use crate::observe::decode::flags;
use crate::observe::trace::{flags_text, Dir, NormFrame, Trace};

mod frames;
pub use frames::{label_matches, options_match, value_matches};

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

/// Runs every check of `expect` against `trace`, with every timing tolerance widened by
/// `extra_ms` (the run's measured allowance, [`crate::run::scheduling_allowance_ms`]).
pub fn check(expect: &Expect, trace: &Trace, ports: &EphemeralPorts, extra_ms: f64) -> Vec<Check> {
    let mut checks = Vec::new();
    for call in &expect.calls {
        checks.extend(check_call(call, trace, extra_ms));
    }
    if let Some(syn) = &expect.syn {
        checks.extend(check_syn(syn, trace, extra_ms));
    }
    if let Some(patterns) = &expect.frames {
        checks.extend(frames::check(
            patterns,
            expect.frames_match,
            trace,
            extra_ms,
        ));
    }
    if let Some(step) = expect.port_step {
        checks.extend(check_port_step(step, trace, ports));
    }
    checks
}

/// `expect.port_step`: each connection's port less the one before, counted around the
/// range as `__inet_hash_connect` wraps its search (by the range's size rounded down to
/// even).
fn check_port_step(step: PortStep, trace: &Trace, ports: &EphemeralPorts) -> Vec<Check> {
    let wanted = format!("{} to {} ports on", step.low, step.high);
    let seen = &trace.raw.dut_connection_ports;
    if seen.len() < 2 {
        let actual = format!("{} connection(s)", seen.len());
        return vec![Check::new("port step", wanted, actual, false)];
    }
    let (low, high) = ports.range;
    let mut size = i64::from(high) - i64::from(low) + 1;
    if size > 1 {
        size &= !1;
    }
    seen.windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let moved = (i64::from(pair[1]) - i64::from(pair[0])).rem_euclid(size);
            let ok = (i64::from(step.low)..=i64::from(step.high)).contains(&moved);
            let actual = format!("{moved} ({} after {})", pair[1], pair[0]);
            Check::new(
                format!("port step to connection {}", i + 2),
                &wanted,
                actual,
                ok,
            )
        })
        .collect()
}

fn check_call(expect: &CallExpect, trace: &Trace, extra_ms: f64) -> Vec<Check> {
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
    let chain = expect.timer_chain_ms.as_deref();
    if let Some(at) = expect.at_ms {
        let tolerance = expect.tolerance_ms.unwrap_or_else(|| match chain {
            Some(chain) => timing::chain_tolerance_ms(chain),
            None => timing::tolerance_ms(at),
        });
        out.push(timed(
            format!("{what} returned at"),
            at,
            tolerance + extra_ms,
            Some(call.t_ms),
        ));
    } else if let Some(chain) = chain {
        // The call armed the first timer when it began (tcp_connect arms the SYN's RTO
        // before ARP has resolved; neigh_event_send arms the first probe), so the chain runs
        // from the call's start: its duration is judged.
        let tolerance = expect
            .tolerance_ms
            .unwrap_or_else(|| timing::chain_tolerance_ms(chain));
        let sum: Vec<String> = chain.iter().map(|t| format!("{t}")).collect();
        out.push(timed(
            format!("{what} took (timer chain {} ms)", sum.join(" + ")),
            chain.iter().sum(),
            tolerance + extra_ms,
            Some(call.took_ms),
        ));
    }
    out
}

fn check_syn(expect: &SynExpect, trace: &Trace, extra_ms: f64) -> Vec<Check> {
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
        if let Some(expected) = &expect.options {
            let actual = tcp_options::format_list(options, TsStyle::Shape);
            let ok = options_match(expected, &actual);
            out.push(Check::new("SYN options", expected, actual, ok));
        }
        out.extend(field(
            "SYN window",
            expect.window.map(|w| w.to_string()),
            Some(window.to_string()),
        ));
        if let Some(expected) = &expect.flags {
            let actual = flags_text(*flags);
            let ok = value_matches("tcp.flags", expected, &actual);
            out.push(Check::new("SYN flags", expected, actual, ok));
        }
        out.extend(field(
            "SYN ttl",
            expect.ttl.map(|t| t.to_string()),
            Some(ip.hops().to_string()),
        ));
        out.extend(field(
            "SYN tos",
            expect.tos.map(|t| format!("0x{t:02x}")),
            Some(format!("0x{:02x}", ip.tos())),
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
                .filter(|f| f.dir == Dir::In && f.t_ms >= t && f.t_ms < next)
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
                .skip_while(|f| !f.norm.is_resolution())
                .take_while(|f| f.norm.is_resolution())
                .filter(|f| f.dir == Dir::Out && f.norm.is_resolution_request())
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
                timing::tolerance_ms(*nominal) + extra_ms,
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
    fn arp_request(t_ms: i64) -> crate::record::Captured {
        let mut f = vec![0xff; 6];
        f.extend([
            2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1,
        ]);
        f.extend([198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2]);
        crate::record::Captured {
            t_ns: t_ms * 1_000_000,
            bytes: f,
        }
    }

    /// A TCP segment at `t_ms`, from the DUT (198.18.0.1:40000) or to it.
    fn segment(t_ms: i64, from_dut: bool, bits: u16, ack: u32) -> crate::record::Captured {
        segment_on(t_ms, from_dut, bits, ack, 40000, 1)
    }

    /// [`segment`] on the DUT's port `port`, with the DUT's sequence number `seq`.
    fn segment_on(
        t_ms: i64,
        from_dut: bool,
        bits: u16,
        ack: u32,
        port: u16,
        seq: u32,
    ) -> crate::record::Captured {
        let (dut, peer) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let (dut_ip, peer_ip) = (
            std::net::Ipv4Addr::new(198, 18, 0, 1),
            std::net::Ipv4Addr::new(198, 18, 0, 2),
        );
        let seg = crate::observe::craft::Segment {
            src_mac: if from_dut { dut } else { peer },
            dst_mac: if from_dut { peer } else { dut },
            src_ip: if from_dut { dut_ip } else { peer_ip }.into(),
            dst_ip: if from_dut { peer_ip } else { dut_ip }.into(),
            ip_id: 1,
            sport: if from_dut { port } else { 80 },
            dport: if from_dut { 80 } else { port },
            seq,
            ack,
            flags: bits,
            window: 64240,
            options: vec![],
            payload_len: 0,
        };
        crate::record::Captured {
            t_ns: t_ms * 1_000_000,
            bytes: crate::observe::craft::tcp(&seg),
        }
    }

    const DUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn syn(t_ms: i64) -> crate::record::Captured {
        segment(t_ms, true, flags::SYN, 0)
    }

    #[test]
    fn the_first_syn_interval_counts_from_the_arp_request_its_syn_waited_on() {
        // The SYN waited 30 ms for ARP; the RTO armed at the ARP request fired 1010 ms later.
        let frames = [arp_request(0), syn(30), syn(1010)];
        let trace = crate::observe::trace::build(&frames, &[], [2, 0, 0, 0, 0, 1]);
        let expect = SynExpect {
            intervals_ms: Some(vec![1000.0]),
            ..SynExpect::default()
        };
        let checks = check_syn(&expect, &trace, 0.0);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        // Without the ARP exchange the same gap from the wire SYN is too short.
        let trace = crate::observe::trace::build(&[syn(30), syn(1010)], &[], [2, 0, 0, 0, 0, 1]);
        assert!(!check_syn(&expect, &trace, 0.0)[0].ok);
    }

    /// A SYN-ACK from the peer acknowledging the wrong sequence number.
    fn bad_synack(t_ms: i64) -> crate::record::Captured {
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
        let trace = crate::observe::trace::build(&frames, &[], [2, 0, 0, 0, 0, 1]);
        assert!(
            check_syn(&expect, &trace, 0.0)[0].ok,
            "14 ms after the SYN-ACK"
        );
        // Counted from the first SYN the same retransmission would be 19 ms: too late.
        let trace = crate::observe::trace::build(&[syn(0), syn(19)], &[], [2, 0, 0, 0, 0, 1]);
        assert!(!check_syn(&expect, &trace, 0.0)[0].ok);
        // A SYN-ACK seen at the very instant of the retransmission came after it was sent
        // (it answers it): it re-armed nothing, and the 1 s interval is judged as such.
        let expect = SynExpect {
            intervals_ms: Some(vec![1000.0]),
            ..SynExpect::default()
        };
        let frames = [syn(0), syn(1000), bad_synack(1000)];
        let trace = crate::observe::trace::build(&frames, &[], [2, 0, 0, 0, 0, 1]);
        assert!(check_syn(&expect, &trace, 0.0)[0].ok, "1000 ms, not 0");
    }

    /// A connect that began at `start_ms` and returned `result` at `end_ms`.
    fn connect(start_ms: i64, end_ms: i64, result: &str) -> crate::record::CallRecord {
        crate::record::CallRecord {
            call: "connect".into(),
            args: "198.18.0.2:80".into(),
            ret: -1,
            errno: Some(result.into()),
            outcome: result.into(),
            start_ns: start_ms * 1_000_000,
            end_ns: end_ms * 1_000_000,
        }
    }

    fn chain_expect(chain: &[f64]) -> Expect {
        Expect {
            calls: vec![CallExpect {
                call: "connect".into(),
                nth: 1,
                result: "ETIMEDOUT".into(),
                at_ms: None,
                timer_chain_ms: Some(chain.to_vec()),
                tolerance_ms: None,
            }],
            ..Expect::default()
        }
    }

    /// A SYN from the DUT's `port` with `seq`, at `t_ms`.
    fn syn_from(t_ms: i64, port: u16, seq: u32) -> crate::record::Captured {
        segment_on(t_ms, true, flags::SYN, 0, port, seq)
    }

    #[test]
    fn a_port_step_is_judged_around_the_range_and_fails_outside_it() {
        let expect = Expect {
            port_step: Some(PortStep { low: 2, high: 16 }),
            ..Expect::default()
        };
        let ports = EphemeralPorts::default(); // 32768-60999: 28232 ports
        let judged = |frames: &[crate::record::Captured]| -> Vec<(bool, String)> {
            let trace = crate::observe::trace::build(frames, &[], DUT_MAC);
            check(&expect, &trace, &ports, 0.0)
                .into_iter()
                .map(|c| (c.ok, c.actual))
                .collect()
        };
        // A re-sent SYN is the same connection; the next one is 6 ports on.
        let up = [
            syn_from(0, 40000, 1),
            syn_from(1000, 40000, 1),
            syn_from(1100, 40006, 9),
        ];
        assert_eq!(judged(&up), [(true, "6 (40006 after 40000)".to_string())]);
        // 10 ports down is 28222 ports on, around the range.
        let down = [syn_from(0, 40000, 1), syn_from(100, 39990, 9)];
        assert_eq!(
            judged(&down),
            [(false, "28222 (39990 after 40000)".to_string())]
        );
        // Past the top the search goes on from the bottom: 60998 to 32772 is 6 on.
        let wrapped = [syn_from(0, 60998, 1), syn_from(100, 32772, 9)];
        assert_eq!(
            judged(&wrapped),
            [(true, "6 (32772 after 60998)".to_string())]
        );
        // Too far, and the same port again, fail too.
        let far = [syn_from(0, 40000, 1), syn_from(100, 40018, 9)];
        assert!(!judged(&far)[0].0);
        let same = [syn_from(0, 40000, 1), syn_from(100, 40000, 9)];
        assert!(!judged(&same)[0].0);
        // One connection has no step to judge: the expectation fails, not passes.
        assert_eq!(
            judged(&[syn_from(0, 40000, 1)]),
            [(false, "1 connection(s)".to_string())]
        );
    }

    #[test]
    fn a_port_step_must_be_a_range_of_steps() {
        assert!(PortStep::try_from([2, 16]).is_ok());
        assert!(PortStep::try_from([0, 16]).is_err());
        assert!(PortStep::try_from([17, 16]).is_err());
    }

    #[test]
    fn a_timer_chain_judges_how_long_the_call_took() {
        let trace = |took: i64| {
            crate::observe::trace::build(&[syn(0)], &[connect(0, took, "ETIMEDOUT")], DUT_MAC)
        };
        let expect = chain_expect(&[5000.0, 5000.0]);
        let verdicts = |took| -> Vec<bool> {
            check(&expect, &trace(took), &EphemeralPorts::default(), 0.0)
                .iter()
                .map(|c| c.ok)
                .collect()
        };
        // 10 s nominal; each 5 s timer may fire up to 256 ms late, plus a jiffy.
        assert_eq!(verdicts(10_000), [true, true]);
        assert_eq!(verdicts(10_500), [true, true]);
        assert_eq!(
            verdicts(326),
            [true, false],
            "a connect that returned at once"
        );
        assert_eq!(
            verdicts(10_600),
            [true, false],
            "later than the chain allows"
        );
        assert_eq!(
            verdicts(9_990),
            [true, false],
            "a kernel timer never fires early"
        );
    }

    #[test]
    fn a_measured_allowance_widens_the_tolerance_by_exactly_itself() {
        let expect = chain_expect(&[5000.0, 5000.0]);
        let trace =
            crate::observe::trace::build(&[syn(0)], &[connect(0, 10_600, "ETIMEDOUT")], DUT_MAC);
        // 10 s + 516 ms allowed; 10.6 s is 84 ms over.
        assert!(!check(&expect, &trace, &EphemeralPorts::default(), 80.0)[1].ok);
        assert!(check(&expect, &trace, &EphemeralPorts::default(), 84.0)[1].ok);
        let early =
            crate::observe::trace::build(&[syn(0)], &[connect(0, 9_990, "ETIMEDOUT")], DUT_MAC);
        assert!(
            !check(&expect, &early, &EphemeralPorts::default(), 84.0)[1].ok,
            "an allowance never lets a timer fire early"
        );
    }

    #[test]
    fn at_ms_with_a_timer_chain_takes_the_chain_tolerance() {
        let mut expect = chain_expect(&[1000.0, 2000.0, 4000.0]);
        expect.calls[0].at_ms = Some(7000.0);
        // 32 + 32 + 256 + 4 ms: 7300 ms passes, where 7000's own granularity (256 + 4) fails it.
        let trace =
            crate::observe::trace::build(&[syn(0)], &[connect(0, 7300, "ETIMEDOUT")], DUT_MAC);
        assert!(check(&expect, &trace, &EphemeralPorts::default(), 0.0)
            .iter()
            .all(|c| c.ok));
        let trace =
            crate::observe::trace::build(&[syn(0)], &[connect(0, 7400, "ETIMEDOUT")], DUT_MAC);
        assert!(!check(&expect, &trace, &EphemeralPorts::default(), 0.0)[1].ok);
    }

    #[test]
    fn syn_options_and_flags_match_leniently_but_not_loosely() {
        let seg = |bits, options: Vec<u8>| {
            let mut c = segment(0, true, bits, 0);
            // Rebuild with options: the MSS and SACK-permitted options, then a timestamp.
            let mut s = crate::observe::craft::Segment {
                src_mac: DUT_MAC,
                dst_mac: [2, 0, 0, 0, 0, 2],
                src_ip: std::net::Ipv4Addr::new(198, 18, 0, 1).into(),
                dst_ip: std::net::Ipv4Addr::new(198, 18, 0, 2).into(),
                ip_id: 1,
                sport: 40000,
                dport: 80,
                seq: 1,
                ack: 0,
                flags: bits,
                window: 64240,
                options: vec![],
                payload_len: 0,
            };
            s.options = options;
            c.bytes = crate::observe::craft::tcp(&s);
            c
        };
        let opts = vec![2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 5, 0, 0, 0, 0];
        let trace = crate::observe::trace::build(
            &[seg(flags::SYN | flags::ECE | flags::CWR, opts)],
            &[],
            DUT_MAC,
        );
        let verdict = |options: &str, flags: &str| {
            let expect = SynExpect {
                options: Some(options.into()),
                flags: Some(flags.into()),
                ..SynExpect::default()
            };
            check_syn(&expect, &trace, 0.0)
                .iter()
                .map(|c| c.ok)
                .collect::<Vec<_>>()
        };
        assert_eq!(verdict("mss 1460,sackOK,TS", "SEW"), [true, true]);
        assert_eq!(
            verdict("mss 1460, sackOK, TS val 5 ecr 0", "SWE"),
            [true, true]
        );
        assert_eq!(verdict("MSS 1460 , sackok,ts", "S E W"), [true, false]);
        assert_eq!(verdict("mss 1460,sackOK", "S"), [false, false]);
        assert_eq!(verdict("mss 1400,sackOK,TS", "SE"), [false, false]);
        assert_eq!(verdict("sackOK,mss 1460,TS", "SEWF"), [false, false]);
    }

    /// The `expect` of a case whose expect section is `expect_yaml`.
    fn expect_of(expect_yaml: &str) -> Result<Expect, String> {
        let text = format!("name: t\nsteps: [connect: {{}}]\nexpect:\n{expect_yaml}");
        crate::case::parse(std::path::Path::new("t.yaml"), &text)
            .map(|c| c.expect)
            .map_err(|e| e.to_string())
    }

    /// ARP, SYN, SYN-ACK, the ACK, FIN, FIN-ACK, last ACK: a handshake and a close.
    fn handshake() -> Trace {
        let (syn_, ack_, fin) = (flags::SYN, flags::ACK, flags::FIN);
        let frames = [
            arp_request(0),
            syn(1),
            segment(2, false, syn_ | ack_, 1),
            segment(3, true, ack_, 1),
            segment(200, true, fin | ack_, 1),
            segment(210, false, fin | ack_, 2),
            segment(211, true, ack_, 2),
        ];
        crate::observe::trace::build(&frames, &[], DUT_MAC)
    }

    fn verdicts(expect_yaml: &str, trace: &Trace) -> Vec<(String, bool)> {
        let expect = expect_of(expect_yaml).unwrap();
        check(&expect, trace, &EphemeralPorts::default(), 0.0)
            .into_iter()
            .map(|c| (c.what, c.ok))
            .collect()
    }

    fn all_ok(expect_yaml: &str, trace: &Trace) -> bool {
        let v = verdicts(expect_yaml, trace);
        assert!(!v.is_empty());
        v.iter().all(|(_, ok)| *ok)
    }

    #[test]
    fn a_bare_frames_key_is_refused_with_its_line_and_an_empty_list_means_silence() {
        let err = expect_of("  frames:\n").unwrap_err();
        assert!(err.starts_with("t.yaml:4:"), "{err}");
        assert!(
            err.contains("`expect.frames`") && err.contains("frames: []"),
            "{err}"
        );
        let silent = crate::observe::trace::build(&[], &[], DUT_MAC);
        assert!(all_ok("  frames: []\n", &silent));
        assert!(!all_ok("  frames: []\n", &handshake()));
    }

    #[test]
    fn exact_frames_need_every_frame_and_no_other() {
        let all = r#"  frames: ["> ARP who-has", "> S", "< S.", "> .", "> F.", "< F.", "> ."]
"#;
        assert!(all_ok(all, &handshake()));
        let short = r#"  frames: ["> ARP who-has", "> S", "< S.", "> ."]
"#;
        assert!(!all_ok(short, &handshake()));
        let wrong = r#"  frames: ["> ARP who-has", "> S", "< S.", "> R.", "> F.", "< F.", "> ."]
"#;
        assert!(!all_ok(wrong, &handshake()));
    }

    #[test]
    fn a_prefix_checks_the_first_frames_only() {
        let head = "  frames_match: prefix\n  frames: [\"> ARP who-has\", \"> S\", \"< S.\"]\n";
        assert!(all_ok(head, &handshake()));
        let off = "  frames_match: prefix\n  frames: [\"> S\", \"< S.\"]\n";
        assert!(!all_ok(off, &handshake()));
        let long = "  frames_match: prefix\n  frames: [\"> ARP who-has\", \"> S\", \"< S.\", \"> .\", \"> F.\", \"< F.\", \"> .\", \"> .\"]\n";
        assert!(!all_ok(long, &handshake()));
    }

    #[test]
    fn a_subsequence_skips_frames_between_but_keeps_order() {
        let some = "  frames_match: subsequence\n  frames: [\"> S\", \"> F.\", \"> .\"]\n";
        assert!(all_ok(some, &handshake()));
        let reordered = "  frames_match: subsequence\n  frames: [\"> F.\", \"> S\"]\n";
        assert!(!all_ok(reordered, &handshake()));
        let missing = "  frames_match: subsequence\n  frames: [\"> S\", \"> R.\"]\n";
        assert!(!all_ok(missing, &handshake()));
    }

    /// A frame of the DUT's (2001:2::1, port 40000) over IPv6 with this flow label.
    fn v6_from_dut(t_ms: i64, bits: u16, seq: u32, flow: u32) -> crate::record::Captured {
        use etherparse::{IpHeaders, IpNumber, Ipv6Extensions, Ipv6FlowLabel, Ipv6Header};
        let ip = Ipv6Header {
            traffic_class: 0,
            flow_label: Ipv6FlowLabel::try_new(flow).expect("20 bits"),
            payload_length: 0,
            next_header: IpNumber::TCP,
            hop_limit: 64,
            source: "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            destination: "2001:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        };
        let mut tcp = etherparse::TcpHeader::new(40000, 80, seq, 64800);
        tcp.syn = bits & flags::SYN != 0;
        tcp.ack = bits & flags::ACK != 0;
        let mut bytes = Vec::new();
        etherparse::PacketBuilder::ethernet2(DUT_MAC, [2, 0, 0, 0, 0, 2])
            .ip(IpHeaders::Ipv6(ip, Ipv6Extensions::default()))
            .tcp_header(tcp)
            .write(&mut bytes, &[])
            .unwrap();
        crate::record::Captured {
            t_ns: t_ms * 1_000_000,
            bytes,
        }
    }

    /// The DUT's neighbour solicitation for 2001:2::2, to its solicited-node group.
    fn v6_solicitation(t_ms: i64) -> crate::record::Captured {
        crate::record::Captured {
            t_ns: t_ms * 1_000_000,
            bytes: crate::observe::craft::neighbour_solicitation(
                DUT_MAC,
                "2001:2::1".parse().unwrap(),
                "2001:2::2".parse().unwrap(),
            ),
        }
    }

    /// NS, NA, a SYN, the same SYN again with another flow label, the peer's RST.
    fn v6_trace(second_flow: u32) -> Trace {
        let na = crate::observe::craft::neighbour_advertisement(
            [2, 0, 0, 0, 0, 2],
            "2001:2::2".parse().unwrap(),
            DUT_MAC,
            "2001:2::1".parse().unwrap(),
        );
        let rst = crate::observe::craft::tcp(&crate::observe::craft::Segment {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: DUT_MAC,
            src_ip: "2001:2::2".parse().unwrap(),
            dst_ip: "2001:2::1".parse().unwrap(),
            ip_id: 0,
            sport: 80,
            dport: 40000,
            seq: 0,
            ack: 8,
            flags: flags::RST | flags::ACK,
            window: 0,
            options: vec![],
            payload_len: 0,
        });
        let frames = [
            v6_solicitation(0),
            crate::record::Captured {
                t_ns: 1_000_000,
                bytes: na,
            },
            v6_from_dut(2, flags::SYN, 7, 0x5_1234),
            v6_from_dut(1002, flags::SYN, 7, second_flow),
            crate::record::Captured {
                t_ns: 1_003_000_000,
                bytes: rst,
            },
        ];
        crate::observe::trace::build(&frames, &[], DUT_MAC)
    }

    #[test]
    fn ipv6_frames_are_judged_by_their_own_fields_and_fail_on_a_wrong_value() {
        let rehashed = v6_trace(0x2_abcd);
        let labels = "  frames: [\"> NS\", \"< NA\", \"> S\", \"> S\", \"< R.\"]\n";
        assert!(
            all_ok(labels, &rehashed),
            "{:?}",
            verdicts(labels, &rehashed)
        );
        let arp = "  frames: [\"> ARP who-has\", \"< NA\", \"> S\", \"> S\", \"< R.\"]\n";
        assert!(!all_ok(arp, &rehashed));
        let at = |index: usize, label: &str, fields: &str| {
            let mut text = String::from("  frames:\n");
            for (i, l) in ["> NS", "< NA", "> S", "> S", "< R."].iter().enumerate() {
                if i == index {
                    text.push_str(&format!(
                        "    - {{ frame: \"{label}\", fields: {{ {fields} }} }}\n"
                    ));
                } else {
                    text.push_str(&format!("    - \"{l}\"\n"));
                }
            }
            text
        };
        for (index, label, good) in [
            (
                0,
                "> NS",
                "eth.dst: \"33:33:ff:00:00:02\", icmp6.target: 2001:2::2",
            ),
            (
                0,
                "> NS",
                "icmp6.lladdr: \"02:00:00:00:00:01\", ip6.hop_limit: 255",
            ),
            (
                0,
                "> NS",
                "ip6.dst: ff02::1:ff00:2, icmp6.type: 135, ip6.flow_label: 0",
            ),
            (
                1,
                "< NA",
                "icmp6.type: 136, icmp6.lladdr: \"02:00:00:00:00:02\"",
            ),
            (
                2,
                "> S",
                "ip6.hop_limit: 64, ip6.tclass: 0x00, ip6.flow_label: $flow1",
            ),
            (3, "> S", "ip6.flow_label: $flow2, ip6.src: 2001:2::1"),
        ] {
            let yaml = at(index, label, good);
            assert!(
                all_ok(&yaml, &rehashed),
                "{good}: {:?}",
                verdicts(&yaml, &rehashed)
            );
        }
        for (index, label, bad) in [
            (0, "> NS", "eth.dst: \"ff:ff:ff:ff:ff:ff\""),
            (0, "> NS", "icmp6.target: 2001:2::3"),
            (0, "> NS", "ip6.hop_limit: 64"),
            (2, "> S", "ip6.hop_limit: 63"),
            (2, "> S", "ip6.tclass: 0x10"),
            (2, "> S", "ip6.flow_label: 0"),
            (3, "> S", "ip6.flow_label: $flow1"),
        ] {
            let v = verdicts(&at(index, label, bad), &rehashed);
            assert_eq!(v.iter().filter(|(_, ok)| !ok).count(), 1, "{bad}: {v:?}");
        }
        // A DUT that keeps its flow label on the retransmission shows $flow1 twice.
        let kept = v6_trace(0x5_1234);
        assert!(!all_ok(&at(3, "> S", "ip6.flow_label: $flow2"), &kept));
        // expect.syn reads the hop limit and traffic class of an IPv6 SYN.
        assert!(all_ok("  syn: { ttl: 64, tos: 0, count: 2 }\n", &rehashed));
        assert!(!all_ok("  syn: { ttl: 63 }\n", &rehashed));
        assert!(!all_ok("  syn: { tos: 16 }\n", &rehashed));
    }

    #[test]
    fn field_matchers_check_any_field_of_the_matched_frame() {
        let pattern = |fields: &str| {
            format!(
                "  frames_match: subsequence\n  frames:\n    - {{ frame: \"< S.\" }}\n    - {{ frame: \"> .\", fields: {{ {fields} }} }}\n"
            )
        };
        // The ACK of the SYN-ACK, as the fixture builds it.
        for good in [
            "tcp.window: 64240",
            "ip.ttl: 64, ip.tos: 0x00, ip.df: true",
            "ip.tos: 0",
            "tcp.sport: $port, tcp.dport: 80",
            "tcp.flags: \".\", tcp.ack: 0, tcp.options: \"\"",
            "ip.dst: 198.18.0.2, ip.ihl: 5",
        ] {
            assert!(
                all_ok(&pattern(good), &handshake()),
                "{good}: {:?}",
                verdicts(&pattern(good), &handshake())
            );
        }
        for bad in [
            "tcp.window: 502",
            "ip.ttl: 3",
            "ip.tos: 0x10",
            "tcp.sport: 5555",
            "tcp.options: \"nop,nop,TS\"",
            "ip.dst: 198.18.0.3",
            "\"tcp.options[0]\": nop",
        ] {
            let v = verdicts(&pattern(bad), &handshake());
            let failed: Vec<&String> = v.iter().filter(|(_, ok)| !ok).map(|(w, _)| w).collect();
            assert_eq!(failed.len(), 1, "{bad}: {v:?}");
            assert!(
                failed[0].starts_with("frame[3] \"> .\" "),
                "{bad}: {failed:?}"
            );
        }
    }

    #[test]
    fn an_unknown_field_or_a_bad_label_is_refused_at_load_naming_it() {
        let err = expect_of("  frames:\n    - { frame: \"> S\", fields: { tcp.windw: 5 } }\n")
            .unwrap_err();
        assert!(
            err.contains("tcp.windw") && err.contains("t.yaml:5:"),
            "{err}"
        );
        let err = expect_of("  frames:\n    - { frame: \"> S\", ttl: 5 }\n").unwrap_err();
        assert!(err.contains("ttl"), "{err}");
        let err =
            expect_of("  frames:\n    - { frame: \"> S\", fields: { tcp.options[0]: nop } }\n")
                .unwrap_err();
        assert!(err.contains("quote a key"), "{err}");
        let err = expect_of("  frames: [\"S\"]\n").unwrap_err();
        assert!(err.contains("direction"), "{err}");
        for known in [
            "tcp.options[3]",
            "tcp.options[0].ecr",
            "arp.target_ip",
            "icmp.quoted_seq",
            "dir",
        ] {
            assert!(crate::case::FieldPath::known(known), "{known}");
        }
        for unknown in [
            "tcp.options[]",
            "tcp.options[x]",
            "tcp.options[1].val",
            "tcp",
            "ip.window",
        ] {
            assert!(!crate::case::FieldPath::known(unknown), "{unknown}");
        }
    }

    #[test]
    fn a_gap_is_judged_like_a_timer_of_that_length() {
        // The FIN left 197 ms after the ACK: 200 ms nominal allows 196..208 ms.
        let gap = |ms: u32| {
            format!("  frames_match: subsequence\n  frames:\n    - \"> .\"\n    - {{ frame: \"> F.\", gap_ms: {ms} }}\n")
        };
        assert!(all_ok(&gap(197), &handshake()));
        assert!(!all_ok(&gap(100), &handshake()));
        assert!(!all_ok(&gap(210), &handshake()));
        // The first pattern's gap runs from the trace's origin.
        let first =
            "  frames_match: subsequence\n  frames:\n    - { frame: \"> F.\", gap_ms: 200 }\n";
        assert!(all_ok(first, &handshake()));
    }

    #[test]
    fn every_syn_and_call_field_fails_on_a_wrong_value() {
        // The fixture's SYN: no options, window 64240, TTL 64 (craft::tcp), TOS 0.
        let mut trace = handshake();
        trace.calls = crate::observe::trace::build(&[syn(0)], &[connect(0, 3, "0")], DUT_MAC).calls;
        let ok = |yaml: &str| all_ok(yaml, &trace);
        let right = [
            "  syn: { options: \"\" }\n",
            "  syn: { window: 64240 }\n",
            "  syn: { flags: S }\n",
            "  syn: { ttl: 64 }\n",
            "  syn: { tos: 0 }\n",
            "  syn: { count: 1 }\n",
            "  calls: [{ call: connect, result: \"0\" }]\n",
            "  calls: [{ call: connect, result: \"0\", at_ms: 3 }]\n",
            "  calls: [{ call: connect, result: \"0\", at_ms: 3, tolerance_ms: 1 }]\n",
        ];
        let wrong = [
            "  syn: { options: \"mss 1460\" }\n",
            "  syn: { window: 64239 }\n",
            "  syn: { flags: SE }\n",
            "  syn: { ttl: 63 }\n",
            "  syn: { tos: 16 }\n",
            "  syn: { count: 2 }\n",
            "  syn: { intervals_ms: [1000] }\n",
            "  calls: [{ call: connect, result: ECONNREFUSED }]\n",
            "  calls: [{ call: connect, result: \"0\", at_ms: 200 }]\n",
            "  calls: [{ call: connect, result: \"0\", at_ms: 10, tolerance_ms: 1 }]\n",
        ];
        for yaml in right {
            assert!(ok(yaml), "{yaml}");
        }
        for yaml in wrong {
            assert!(!ok(yaml), "{yaml}");
        }
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
