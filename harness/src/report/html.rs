//! The HTML report: one self-contained `index.html` (inline CSS and SVG, nothing fetched).
//!
//! A summary table, then for each case a ladder (sequence) diagram per implementation, side
//! by side: the DUT's lifeline on the left, the peer's on the right, time running down, each
//! arrow labelled as the trace prints it ([`NormFrame::text`]). Rows are aligned by frame
//! and call index, which is how the diff pairs them, so a divergent frame sits level with
//! its counterpart; divergent rows are tinted and their fields named in red. Links go to
//! both runs' `.pcap` files, relative to the report so the directory can be moved along with
//! the artifacts.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::judge::diff::Divergence;
use crate::observe::trace::{Dir, NormFrame, Trace};
use crate::run::{CaseResult, PairResult, PairVerdict, Verdict};

/// Writes `DIR/index.html` for pair runs (reference vs other) and returns its path.
pub fn write_pairs(dir: &Path, pairs: &[PairResult]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let entries: Vec<Entry> = pairs.iter().map(Entry::from_pair).collect();
    write(dir, &entries)
}

/// Writes `DIR/index.html` for single runs (`--vs none`) and returns its path.
pub fn write_cases(dir: &Path, results: &[CaseResult]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let entries: Vec<Entry> = results.iter().map(Entry::from_case).collect();
    write(dir, &entries)
}

/// The report for pair runs as a string; pcap links are made relative to `dir`.
pub fn render_pairs(dir: &Path, pairs: &[PairResult]) -> String {
    let entries: Vec<Entry> = pairs.iter().map(Entry::from_pair).collect();
    render(dir, &entries)
}

fn write(dir: &Path, entries: &[Entry]) -> std::io::Result<PathBuf> {
    let index = dir.join("index.html");
    std::fs::write(&index, render(dir, entries))?;
    Ok(index)
}

/// One case as the report shows it, for one or two implementations.
struct Entry<'a> {
    name: &'a str,
    path: &'a Path,
    verdict: &'static str,
    class: &'static str,
    sides: Vec<&'a CaseResult>,
    divergences: &'a [Divergence],
}

impl<'a> Entry<'a> {
    fn from_pair(p: &'a PairResult) -> Entry<'a> {
        let (verdict, class) = match p.verdict {
            PairVerdict::Pass => ("pass", "pass"),
            PairVerdict::Known => ("known", "known"),
            PairVerdict::Diverged => ("diverged", "fail"),
            PairVerdict::Error => ("error", "error"),
            PairVerdict::Unsupported => ("unsupported", "known"),
            PairVerdict::Interrupted => ("interrupted", "known"),
            PairVerdict::Unconfirmed => ("unconfirmed", "known"),
        };
        Entry {
            name: &p.name,
            path: &p.path,
            verdict,
            class,
            sides: vec![&p.reference, &p.other],
            divergences: &p.divergences,
        }
    }

    fn from_case(r: &'a CaseResult) -> Entry<'a> {
        let (verdict, class) = match r.verdict {
            Verdict::Pass => ("pass", "pass"),
            Verdict::Fail => ("fail", "fail"),
            Verdict::Error => ("error", "error"),
            Verdict::Unsupported => ("unsupported", "known"),
            Verdict::Interrupted => ("interrupted", "known"),
        };
        Entry {
            name: &r.name,
            path: &r.path,
            verdict,
            class,
            sides: vec![r],
            divergences: &[],
        }
    }

    /// The label of side `i`: the DUT's name, numbered when both sides are the same DUT.
    fn side_label(&self, i: usize) -> String {
        let dut = self.sides[i].dut;
        if self.sides.len() == 2 && self.sides[0].dut == self.sides[1].dut {
            format!("{dut} #{}", i + 1)
        } else {
            dut.to_string()
        }
    }
}

const CSS: &str = r#"
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0; }
.sub { color: #666; margin-bottom: 16px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f3; }
td.num { text-align: right; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.pass { background: #2e7d32; } .badge.known { background: #8d6e00; }
.badge.fail { background: #c62828; } .badge.error { background: #6a1b9a; }
section.case { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 20px 0; padding: 12px 16px; }
section.case header { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.path { color: #666; font-size: 12px; }
.desc { color: #444; margin: 4px 0 8px; }
.ladders { display: flex; gap: 16px; flex-wrap: wrap; }
.ladder { border: 1px solid #e4e4e8; border-radius: 4px; padding: 6px; }
.ladder h3 { font-size: 14px; margin: 0 0 4px; display: flex; gap: 12px; align-items: baseline; }
.ladder h3 a { font-weight: normal; font-size: 12px; }
svg text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.divs { margin-top: 10px; font-size: 13px; }
.divs td { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
tr.unexpected td:first-child { border-left: 3px solid #c62828; }
tr.known td:first-child { border-left: 3px solid #8d6e00; }
.failcheck, .err { color: #c62828; font-size: 13px; margin: 4px 0; }
.legend { font-size: 12px; color: #555; margin: 6px 0 0; }
"#;

fn render(dir: &Path, entries: &[Entry]) -> String {
    let mut out = String::new();
    let count = |class: &str| entries.iter().filter(|e| e.class == class).count();
    let duts = entries
        .first()
        .map(|e| {
            (0..e.sides.len())
                .map(|i| e.side_label(i))
                .collect::<Vec<_>>()
                .join(" vs ")
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>tcptwin report</title><style>{CSS}</style></head><body>\n\
         <h1>tcptwin report</h1>\n<div class=\"sub\" id=\"totals\">{duts}: {} cases: \
         {} passed, {} known, {} diverged, {} errors</div>\n",
        entries.len(),
        count("pass"),
        count("known"),
        count("fail"),
        count("error"),
    );
    summary_table(&mut out, dir, entries);
    for entry in entries {
        case_section(&mut out, dir, entry);
    }
    out.push_str("</body></html>\n");
    out
}

fn summary_table(out: &mut String, dir: &Path, entries: &[Entry]) {
    let two = entries.iter().any(|e| e.sides.len() == 2);
    out.push_str("<table id=\"summary\"><thead><tr><th>case</th><th>verdict</th>");
    if two {
        out.push_str("<th>divergences</th><th>known</th>");
    }
    out.push_str("<th>failed checks</th><th>time</th><th>pcaps</th></tr></thead><tbody>\n");
    for e in entries {
        let unexpected = e.divergences.iter().filter(|d| d.known.is_none()).count();
        let known = e.divergences.len() - unexpected;
        let failed: usize = e
            .sides
            .iter()
            .map(|s| s.checks.iter().filter(|c| !c.ok).count())
            .sum();
        let wall = e.sides.iter().map(|s| s.wall_ms).fold(0.0, f64::max);
        let _ = write!(
            out,
            "<tr class=\"{}\"><td><a href=\"#case-{}\">{}</a></td>\
             <td><span class=\"badge {}\">{}</span></td>",
            e.class,
            esc(e.name),
            esc(e.name),
            e.class,
            e.verdict
        );
        if two {
            let _ = write!(
                out,
                "<td class=\"num\">{unexpected}</td><td class=\"num\">{known}</td>"
            );
        }
        let _ = writeln!(
            out,
            "<td class=\"num\">{failed}</td><td class=\"num\">{wall:.0} ms</td><td>{}</td></tr>",
            pcap_links(dir, e)
        );
    }
    out.push_str("</tbody></table>\n");
}

fn pcap_links(dir: &Path, e: &Entry) -> String {
    (0..e.sides.len())
        .filter_map(|i| {
            let pcap = e.sides[i].pcap.as_ref()?;
            Some(format!(
                "<a href=\"{}\">{}.pcap</a>",
                esc(&relative_to(dir, pcap)),
                esc(&e.side_label(i))
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn case_section(out: &mut String, dir: &Path, e: &Entry) {
    let _ = writeln!(
        out,
        "<section class=\"case {}\" id=\"case-{}\"><header><h2>{}</h2>\
         <span class=\"badge {}\">{}</span><span class=\"path\">{}</span></header>",
        e.class,
        esc(e.name),
        esc(e.name),
        e.class,
        e.verdict,
        esc(&e.path.display().to_string())
    );
    for side in &e.sides {
        if let Some(err) = &side.error {
            let _ = writeln!(
                out,
                "<div class=\"err\">error [{}]: {}</div>",
                side.dut,
                esc(err)
            );
        }
        for c in side.checks.iter().filter(|c| !c.ok) {
            let _ = writeln!(
                out,
                "<div class=\"failcheck\">FAIL [{}] {}: expected {}, got {}</div>",
                side.dut,
                esc(&c.what),
                esc(&c.expected),
                esc(&c.actual)
            );
        }
    }
    let marks = Marks::new(e.divergences);
    let traces: Vec<Option<&Trace>> = e.sides.iter().map(|s| s.trace.as_ref()).collect();
    let rows = align_rows(&traces);
    out.push_str("<div class=\"ladders\">\n");
    for (i, side) in e.sides.iter().enumerate() {
        let label = e.side_label(i);
        let _ = write!(
            out,
            "<div class=\"ladder\" data-dut=\"{}\"><h3>{}",
            esc(&label),
            esc(&label)
        );
        if let Some(pcap) = &side.pcap {
            let _ = write!(
                out,
                "<a class=\"pcap\" href=\"{}\">{}</a>",
                esc(&relative_to(dir, pcap)),
                esc(&pcap.file_name().unwrap_or_default().to_string_lossy())
            );
        }
        out.push_str("</h3>\n");
        match &side.trace {
            Some(trace) => ladder_svg(out, trace, &rows, &marks, e.sides.len() == 2),
            None => out.push_str("<div class=\"err\">no trace</div>"),
        }
        out.push_str("</div>\n");
    }
    out.push_str("</div>\n");
    if !e.divergences.is_empty() {
        divergence_table(out, e);
    }
    out.push_str("</section>\n");
}

fn divergence_table(out: &mut String, e: &Entry) {
    let (a, b) = (e.side_label(0), e.side_label(1.min(e.sides.len() - 1)));
    let _ = writeln!(
        out,
        "<details class=\"divs\" {}><summary>{} divergence(s)</summary>\
         <table><thead><tr><th>field</th><th>{}</th><th>{}</th><th>tolerance</th><th>known because</th></tr></thead><tbody>",
        if e.divergences.len() <= 40 { "open" } else { "" },
        e.divergences.len(),
        esc(&a),
        esc(&b)
    );
    for d in e.divergences {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if d.known.is_some() {
                "known"
            } else {
                "unexpected"
            },
            esc(&d.path),
            esc(&d.reference),
            esc(&d.other),
            d.tolerance_ms
                .map(|t| format!("±{t:.0} ms"))
                .unwrap_or_default(),
            esc(d.known.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table></details>\n");
}

/// The divergent fields of each frame and call, by index, and whether all are known.
struct Marks {
    frames: std::collections::BTreeMap<usize, Vec<(String, bool)>>,
    calls: std::collections::BTreeMap<usize, Vec<(String, bool)>>,
}

impl Marks {
    fn new(divergences: &[Divergence]) -> Marks {
        let mut marks = Marks {
            frames: Default::default(),
            calls: Default::default(),
        };
        for d in divergences {
            let Some((kind, rest)) = d.path.split_once('[') else {
                continue;
            };
            let Some((index, field)) = rest.split_once(']') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let map = match kind {
                "frame" => &mut marks.frames,
                "call" => &mut marks.calls,
                _ => continue,
            };
            map.entry(index)
                .or_default()
                .push((field.trim_start_matches('.').to_string(), d.known.is_some()));
        }
        marks
    }
}

/// A row of the ladders: the frame or call with this index on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Frame(usize),
    Call(usize),
}

/// Events of one trace in time order.
fn events(trace: &Trace) -> Vec<(f64, Row)> {
    let mut ev: Vec<(f64, Row)> = trace
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| (f.t_ms, Row::Frame(i)))
        .chain(
            trace
                .calls
                .iter()
                .enumerate()
                .map(|(i, c)| (c.t_ms, Row::Call(i))),
        )
        .collect();
    ev.sort_by(|a, b| a.0.total_cmp(&b.0));
    ev
}

/// One row order for all sides: the first side's events in time order, with each row only
/// another side has inserted after the row that precedes it there.
fn align_rows(traces: &[Option<&Trace>]) -> Vec<Row> {
    align(
        traces
            .iter()
            .flatten()
            .map(|t| events(t).into_iter().map(|(_, r)| r).collect()),
    )
}

fn align(sequences: impl Iterator<Item = Vec<Row>>) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for seq in sequences {
        let mut after: Option<usize> = None;
        for row in seq {
            match rows.iter().position(|r| *r == row) {
                Some(p) => after = Some(p),
                None => {
                    let at = after.map_or(0, |p| p + 1);
                    rows.insert(at, row);
                    after = Some(at);
                }
            }
        }
    }
    rows
}

const W: f64 = 620.0;
const DUT_X: f64 = 62.0;
const PEER_X: f64 = 612.0;
const TOP: f64 = 34.0;

fn row_height(row: Row, marks: &Marks) -> f64 {
    let annotated = match row {
        Row::Frame(i) => marks.frames.contains_key(&i),
        Row::Call(i) => marks.calls.contains_key(&i),
    };
    match (row, annotated) {
        (Row::Frame(_), false) => 38.0,
        (Row::Frame(_), true) => 50.0,
        (Row::Call(_), false) => 22.0,
        (Row::Call(_), true) => 34.0,
    }
}

fn ladder_svg(out: &mut String, trace: &Trace, rows: &[Row], marks: &Marks, paired: bool) {
    let height = TOP + rows.iter().map(|r| row_height(*r, marks)).sum::<f64>() + 10.0;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" role=\"img\">\n\
         <defs><marker id=\"ah\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"context-stroke\"/></marker></defs>\n\
         <text x=\"{DUT_X}\" y=\"14\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">DUT</text>\
         <text x=\"{PEER_X}\" y=\"14\" text-anchor=\"end\" font-size=\"12\" font-weight=\"bold\">peer</text>\
         <text x=\"2\" y=\"14\" font-size=\"10\" fill=\"#777\">t (s)</text>\n\
         <line x1=\"{DUT_X}\" y1=\"20\" x2=\"{DUT_X}\" y2=\"{height}\" stroke=\"#555\" stroke-width=\"2\"/>\
         <line x1=\"{PEER_X}\" y1=\"20\" x2=\"{PEER_X}\" y2=\"{height}\" stroke=\"#555\" stroke-width=\"2\"/>\n"
    );
    let mut y = TOP;
    for row in rows {
        let h = row_height(*row, marks);
        let fields = match row {
            Row::Frame(i) => marks.frames.get(i),
            Row::Call(i) => marks.calls.get(i),
        };
        if let Some(fields) = fields {
            let all_known = fields.iter().all(|(_, known)| *known);
            let _ =
                write!(
                out,
                "<rect class=\"{}\" x=\"0\" y=\"{}\" width=\"{W}\" height=\"{h}\" fill=\"{}\"/>",
                if all_known { "mark-known" } else { "mark-diverged" },
                y + 1.0,
                if all_known { "#fff4d6" } else { "#fde4e4" }
            );
        }
        match row {
            Row::Frame(i) => match trace.frames.get(*i) {
                Some(f) => frame_row(out, y, *i, f.t_ms, f.dir, &f.norm, fields, paired),
                None => absent_row(out, y, &format!("frame[{i}]: no such frame")),
            },
            Row::Call(i) => match trace.calls.get(*i) {
                Some(c) => {
                    let text = format!(
                        "{} = {}",
                        c.record.display_call(),
                        c.record.display_result()
                    );
                    let _ = write!(
                        out,
                        "<g class=\"call\" data-index=\"{i}\"><text x=\"2\" y=\"{ty}\" font-size=\"10\" fill=\"#777\">{t:.3}</text>\
                         <circle cx=\"{DUT_X}\" cy=\"{cy}\" r=\"4\" fill=\"#1565c0\"/>\
                         <text x=\"{tx}\" y=\"{ty}\" font-size=\"11\" fill=\"#1565c0\">{}</text>",
                        esc(&text),
                        ty = y + 15.0,
                        cy = y + 11.0,
                        tx = DUT_X + 10.0,
                        t = c.t_ms / 1e3
                    );
                    if let Some(fields) = fields {
                        annotation(out, y + 28.0, fields, paired);
                    }
                    out.push_str("</g>\n");
                }
                None => absent_row(out, y, &format!("call[{i}]: no such call")),
            },
        }
        y += h;
    }
    out.push_str("</svg>\n");
}

fn absent_row(out: &mut String, y: f64, text: &str) {
    let _ = writeln!(
        out,
        "<text class=\"absent\" x=\"{}\" y=\"{}\" font-size=\"11\" font-style=\"italic\" fill=\"#999\" text-anchor=\"middle\">({})</text>",
        (DUT_X + PEER_X) / 2.0,
        y + 20.0,
        esc(text)
    );
}

#[allow(clippy::too_many_arguments)]
fn frame_row(
    out: &mut String,
    y: f64,
    index: usize,
    t_ms: f64,
    dir: Dir,
    frame: &NormFrame,
    fields: Option<&Vec<(String, bool)>>,
    paired: bool,
) {
    let text = frame.text();
    let (label, suffix) = match text.split_once("  [") {
        Some((l, s)) => (l.to_string(), format!("[{s}")),
        None => (text.clone(), String::new()),
    };
    let color = match frame {
        NormFrame::Arp { .. } => "#757575",
        NormFrame::Icmp { .. } => "#6a1b9a",
        NormFrame::Icmpv6 {
            icmp_type: 135 | 136,
            ..
        } => "#757575",
        NormFrame::Icmpv6 { .. } => "#6a1b9a",
        NormFrame::Tcp { flags, .. } if flags & crate::observe::decode::flags::RST != 0 => {
            "#e65100"
        }
        NormFrame::Other { .. } => "#757575",
        NormFrame::Tcp { .. } => "#1d1d1f",
    };
    let stroke = if fields.is_some_and(|f| f.iter().any(|(_, known)| !known)) {
        "#c62828"
    } else {
        color
    };
    let (x1, x2) = match dir {
        Dir::Out => (DUT_X, PEER_X - 2.0),
        Dir::In => (PEER_X, DUT_X + 2.0),
    };
    let ay = y + 21.0;
    let mid = (DUT_X + PEER_X) / 2.0;
    let _ = write!(
        out,
        "<g class=\"frame\" data-index=\"{index}\" data-dir=\"{}\"><title>{}</title>\
         <text x=\"2\" y=\"{}\" font-size=\"10\" fill=\"#777\">{:.3}</text>\
         <line x1=\"{x1}\" y1=\"{ay}\" x2=\"{x2}\" y2=\"{ay}\" stroke=\"{stroke}\" stroke-width=\"1.6\" marker-end=\"url(#ah)\"/>\
         <text class=\"label\" x=\"{mid}\" y=\"{}\" font-size=\"10.5\" fill=\"{color}\" text-anchor=\"middle\">{}</text>\
         <text class=\"ip\" x=\"{mid}\" y=\"{}\" font-size=\"9\" fill=\"#888\" text-anchor=\"middle\">{}</text>",
        dir.arrow(),
        esc(&format!("frame[{index}] {} {text}", dir.arrow())),
        ay + 3.0,
        t_ms / 1e3,
        ay - 5.0,
        highlight(&label, fields),
        ay + 12.0,
        highlight(&suffix, fields),
    );
    if let Some(fields) = fields {
        annotation(out, y + 45.0, fields, paired);
    }
    out.push_str("</g>\n");
}

/// The divergent fields of a row, in red (amber when the case lists them as known).
fn annotation(out: &mut String, y: f64, fields: &[(String, bool)], paired: bool) {
    if !paired {
        return;
    }
    const SHOWN: usize = 4;
    let mut names: Vec<String> = fields.iter().take(SHOWN).map(|(f, _)| f.clone()).collect();
    if fields.len() > SHOWN {
        names.push(format!("+{} more", fields.len() - SHOWN));
    }
    let known = fields.iter().all(|(_, k)| *k);
    let _ = write!(
        out,
        "<text class=\"diverged\" x=\"{}\" y=\"{y}\" font-size=\"10\" fill=\"{}\" text-anchor=\"middle\">{} {}</text>",
        (DUT_X + PEER_X) / 2.0,
        if known { "#8d6e00" } else { "#c62828" },
        if known { "known:" } else { "differs:" },
        esc(&names.join(", "))
    );
}

/// Where a divergent field shows in a trace line: the words to underline and colour.
fn field_token(field: &str) -> Option<&'static str> {
    let leaf = field.rsplit('.').next().unwrap_or(field);
    Some(match leaf {
        "window" => "win ",
        "ack" => "ack ",
        "ttl" => "ttl ",
        "id" => "id ",
        "tos" => "tos ",
        "df" => "DF",
        "flags" => "",
        _ if field.starts_with("tcp.options") => "<",
        _ => return None,
    })
}

/// The label, escaped, with the tokens of divergent fields in a highlighted `tspan`.
fn highlight(label: &str, fields: Option<&Vec<(String, bool)>>) -> String {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (field, _) in fields.into_iter().flatten() {
        let Some(token) = field_token(field) else {
            continue;
        };
        let found = match token {
            // The flags are the first word.
            "" => Some((0, label.find(' ').unwrap_or(label.len()))),
            // The whole option list.
            "<" => label
                .find('<')
                .map(|s| (s, label[s..].find('>').map_or(label.len(), |e| s + e + 1))),
            t => label.find(t).map(|s| {
                let end = label[s + t.len()..]
                    .find([' ', ']'])
                    .map_or(label.len(), |e| s + t.len() + e);
                (s, end)
            }),
        };
        if let Some(span) = found {
            spans.push(span);
        }
    }
    spans.sort();
    spans.dedup();
    let mut out = String::new();
    let mut at = 0;
    for (s, e) in spans {
        if s < at {
            continue;
        }
        out.push_str(&esc(&label[at..s]));
        let _ = write!(
            out,
            "<tspan class=\"hl\" fill=\"#c62828\" font-weight=\"bold\" text-decoration=\"underline\">{}</tspan>",
            esc(&label[s..e])
        );
        at = e;
    }
    out.push_str(&esc(&label[at..]));
    out
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `target` as a relative URL from `dir` (both made absolute against the working directory),
/// with `/` separators.
fn relative_to(dir: &Path, target: &Path) -> String {
    let absolute = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        let mut clean = PathBuf::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        clean
    };
    let (d, t) = (absolute(dir), absolute(target));
    let dc: Vec<_> = d.components().collect();
    let tc: Vec<_> = t.components().collect();
    let common = dc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); dc.len() - common];
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_out_of_the_report_dir() {
        assert_eq!(
            relative_to(
                Path::new("/a/report"),
                Path::new("/a/artifacts/x/kernel.pcap")
            ),
            "../artifacts/x/kernel.pcap"
        );
        assert_eq!(
            relative_to(Path::new("/a"), Path::new("/a/x/stack.pcap")),
            "x/stack.pcap"
        );
    }

    #[test]
    fn highlight_marks_the_divergent_token_and_escapes() {
        let fields = vec![("tcp.window".to_string(), false)];
        let h = highlight("S 0:0(0) win 64240 <mss 1460>", Some(&fields));
        assert!(
            h.contains("<tspan class=\"hl\" fill=\"#c62828\" font-weight=\"bold\" text-decoration=\"underline\">win 64240</tspan>"),
            "{h}"
        );
        assert!(h.contains("&lt;mss 1460&gt;"), "{h}");
    }

    #[test]
    fn rows_align_by_index_and_keep_extras() {
        let rows = align(
            [
                vec![Row::Frame(0), Row::Call(0), Row::Frame(1)],
                vec![Row::Frame(0), Row::Frame(1), Row::Frame(2), Row::Call(0)],
            ]
            .into_iter(),
        );
        assert_eq!(
            rows,
            vec![Row::Frame(0), Row::Call(0), Row::Frame(1), Row::Frame(2)]
        );
    }
}
