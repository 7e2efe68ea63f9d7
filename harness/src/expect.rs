//! Checks a case's `expect` section against a run's trace.
//!
//! Every timing check derives its tolerance from the kernel's timer granularity
//! ([`crate::timing`]) unless the case names its own, and the tolerance applied is part of
//! the check's text, so a report shows what was allowed.

use serde::Serialize;

use crate::case::{CallExpect, Expect, SynExpect};
use crate::tcp_options::{self, TsStyle};
use crate::timing;
use crate::trace::{flags_text, NormFrame, Trace};

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
        let gaps: Vec<f64> = syns.windows(2).map(|w| w[1].t_ms - w[0].t_ms).collect();
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

    #[test]
    fn timing_accepts_late_within_granularity_and_rejects_early() {
        let tol = timing::tolerance_ms(1000.0);
        assert!(timed("t".into(), 1000.0, tol, Some(1030.0)).ok);
        assert!(!timed("t".into(), 1000.0, tol, Some(1040.0)).ok);
        assert!(!timed("t".into(), 1000.0, tol, Some(990.0)).ok);
        assert!(!timed("t".into(), 1000.0, tol, None).ok);
    }
}
