//! `expect.frames`: the frames of a run against a list of labels and field patterns.
//!
//! Patterns are matched to frames by label (`exact`: position by position; `prefix`: the
//! first frames; `subsequence`: each pattern takes the first frame after the previous match
//! with its label), and each matched frame's fields are then checked one by one, so a
//! wrong value is reported under its own path (`frame[4] "> ." tcp.window`) rather than as
//! a frame that could not be found.
//!
//! Field values are the diff's: the same normalized text that `frame[N].<path>` shows in a
//! report ([`crate::judge::diff::frame_fields`]), plus `tcp.options` for the whole option list and
//! `tcp.options[N].ecr` for what a timestamp echo refers to.

use std::collections::BTreeMap;

use crate::case::{FieldPath, FieldValue, FrameLabel, FramePattern, FramesMatch};
use crate::linux::tcp_options::{self, TsStyle};
use crate::linux::timing;
use crate::observe::trace::{NormFrame, Trace, TraceFrame};

use super::{timed, Check};

/// Checks `patterns` against the trace's frames; `extra_ms` widens the gap tolerances.
pub fn check(
    patterns: &[FramePattern],
    how: FramesMatch,
    trace: &Trace,
    extra_ms: f64,
) -> Vec<Check> {
    let frames = &trace.frames;
    let matched = match how {
        FramesMatch::Exact | FramesMatch::Prefix => patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                frames
                    .get(i)
                    .filter(|f| label_matches(p.label(), f))
                    .map(|_| i)
            })
            .collect(),
        FramesMatch::Subsequence => subsequence(patterns, frames),
    };
    let mut out = vec![sequence_check(patterns, how, frames, &matched)];
    let echoes: BTreeMap<String, String> =
        crate::judge::diff::ts_echoes(trace).into_iter().collect();
    let mut previous_t = 0.0;
    for (pattern, found) in patterns.iter().zip(&matched) {
        let FramePattern::Fields(pattern) = pattern else {
            if let Some(i) = found {
                previous_t = frames[*i].t_ms;
            }
            continue;
        };
        let Some(i) = *found else {
            // The sequence check already fails; a field of a frame not found is not checked.
            continue;
        };
        let frame = &frames[i];
        let what = format!("frame[{i}] \"{}\"", pattern.frame.0);
        let actual = fields_of(i, frame, &echoes);
        for (path, expected) in &pattern.fields {
            let value = actual.get(&path.0).map(String::as_str);
            out.push(field_check(&what, path, expected, value));
        }
        if let Some(gap) = pattern.gap_ms {
            out.push(timed(
                format!("{what} gap from the frame before it in the pattern"),
                gap,
                timing::tolerance_ms(gap) + extra_ms,
                Some(frame.t_ms - previous_t),
            ));
        }
        previous_t = frame.t_ms;
    }
    out
}

/// Each pattern's frame: the first one after the previous pattern's with its label.
fn subsequence(patterns: &[FramePattern], frames: &[TraceFrame]) -> Vec<Option<usize>> {
    let mut next = 0;
    patterns
        .iter()
        .map(|p| {
            let found = (next..frames.len()).find(|&i| label_matches(p.label(), &frames[i]));
            if let Some(i) = found {
                next = i + 1;
            } else {
                next = frames.len();
            }
            found
        })
        .collect()
}

/// The one check on the labels: which frames were expected, which came.
fn sequence_check(
    patterns: &[FramePattern],
    how: FramesMatch,
    frames: &[TraceFrame],
    matched: &[Option<usize>],
) -> Check {
    let expected: Vec<&str> = patterns.iter().map(|p| p.label().0.as_str()).collect();
    let labels: Vec<String> = frames.iter().map(TraceFrame::label).collect();
    let all_found = matched.iter().all(Option::is_some);
    let (what, actual, ok) = match how {
        FramesMatch::Exact => (
            "frames",
            labels.join(", "),
            all_found && frames.len() == patterns.len(),
        ),
        FramesMatch::Prefix => {
            let shown = labels.len().min(patterns.len());
            let mut actual = labels[..shown].join(", ");
            if labels.len() > shown {
                actual.push_str(&format!(", … ({} more)", labels.len() - shown));
            }
            ("frames (prefix)", actual, all_found)
        }
        FramesMatch::Subsequence => {
            let found: Vec<String> = patterns
                .iter()
                .zip(matched)
                .map(|(p, m)| match m {
                    Some(i) => format!("{} at frame[{i}]", labels[*i]),
                    None => format!("no {} after that", p.label().0),
                })
                .collect();
            let actual = if all_found {
                found.join(", ")
            } else {
                format!("{} (the trace: {})", found.join(", "), labels.join(", "))
            };
            ("frames (subsequence)", actual, all_found)
        }
    };
    Check {
        what: what.into(),
        expected: expected.join(", "),
        actual,
        ok,
    }
}

/// Whether `frame` has the label: same direction, and the same kind. TCP flags compare as a
/// set of letters (`SEW` and `SWE` are one label), so a case need not know the order in
/// which traces print them.
pub fn label_matches(label: &FrameLabel, frame: &TraceFrame) -> bool {
    let actual = frame.label();
    if actual == label.0 {
        return true;
    }
    if !label.0.starts_with(frame.dir.arrow()) || !matches!(frame.norm, NormFrame::Tcp { .. }) {
        return false;
    }
    let split = |kind: &str| -> (Vec<char>, bool) {
        let (flags, data) = match kind.strip_suffix(" data") {
            Some(flags) => (flags, true),
            None => (kind, false),
        };
        let mut letters: Vec<char> = flags.chars().collect();
        letters.sort_unstable();
        (letters, data)
    };
    split(label.kind()) == split(&actual[2..])
}

/// Every field of frame `i` by its path below `frame[i].`, as the diff prints it, with the
/// whole option list as `tcp.options` and each timestamp echo as `tcp.options[N].ecr`.
fn fields_of(
    i: usize,
    frame: &TraceFrame,
    echoes: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let prefix = format!("frame[{i}].");
    let mut fields: BTreeMap<String, String> =
        crate::judge::diff::frame_fields(i, &frame.norm, frame.dir.arrow())
            .into_iter()
            .map(|(k, v)| (k[prefix.len()..].to_string(), v))
            .collect();
    if let NormFrame::Tcp { options, .. } = &frame.norm {
        fields.insert(
            "tcp.options".into(),
            tcp_options::format_list(options, TsStyle::Shape),
        );
    }
    for (path, echoed) in echoes {
        if let Some(rest) = path.strip_prefix(&prefix) {
            fields.insert(rest.to_string(), echoed.clone());
        }
    }
    fields
}

fn field_check(what: &str, path: &FieldPath, expected: &FieldValue, actual: Option<&str>) -> Check {
    let expected = expected.to_string();
    let (actual, ok) = match actual {
        Some(a) => (a.to_string(), value_matches(&path.0, &expected, a)),
        None => ("absent".to_string(), false),
    };
    Check {
        what: format!("{what} {}", path.0),
        expected,
        actual,
        ok,
    }
}

/// Whether a field's expected text matches its value. Option lists compare leniently
/// ([`options_match`]); flags as a set of letters; numbers by value, in decimal or hex
/// (`tos: 0x10` matches the trace's `0x10` and `16`); anything else as text.
pub fn value_matches(path: &str, expected: &str, actual: &str) -> bool {
    if path == "tcp.options" || (path.starts_with("tcp.options[") && !path.ends_with(".ecr")) {
        return options_match(expected, actual);
    }
    if path == "tcp.flags" {
        let set = |s: &str| {
            let mut c: Vec<char> = s.trim().chars().collect();
            c.sort_unstable();
            c
        };
        return set(expected) == set(actual);
    }
    match (number(expected), number(actual)) {
        (Some(e), Some(a)) => e == a,
        _ => expected.trim() == actual,
    }
}

/// An integer in decimal (with an optional sign) or `0x` hex.
fn number(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    t.parse().ok()
}

/// Option lists compare option by option, ignoring spaces around commas and the case of
/// the letters, with a timestamp written as `TS` or with values (`TS val 5 ecr 0`): its
/// values are clock readings and judged elsewhere. So `mss 1460, sackOK` matches the trace's
/// `mss 1460,sackOK`.
pub fn options_match(expected: &str, actual: &str) -> bool {
    fn normal(list: &str) -> Vec<String> {
        if list.trim().is_empty() {
            return Vec::new();
        }
        list.split(',')
            .map(|opt| {
                let words: Vec<String> = opt.split_whitespace().map(str::to_lowercase).collect();
                if words.first().is_some_and(|w| w == "ts") {
                    "ts".to_string()
                } else {
                    words.join(" ")
                }
            })
            .collect()
    }
    normal(expected) == normal(actual)
}
