//! The HTML report, rendered by headless Chromium: what the page shows after a browser
//! parsed it. Skipped, with a message, where Chromium is not installed (`ci/setup` installs
//! Debian's `chromium`). Needs no namespaces: the report is made from a synthetic run.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tcptwin::judge::diff::Divergence;
use tcptwin::linux::tcp_options::TcpOption;
use tcptwin::observe::decode;
use tcptwin::observe::trace::{
    Dir, IpId, NormFrame, NormIp, NormIpv4, Port, RawValues, Trace, TraceCall, TraceFrame,
};
use tcptwin::record::CallRecord;
use tcptwin::run::{CaseResult, PairResult, PairVerdict, Verdict};

const DUT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn tcp(
    dir: Dir,
    flags: u16,
    seq: u32,
    ack: u32,
    window: u16,
    options: Vec<TcpOption>,
) -> NormFrame {
    let (src, dst, sport, dport) = match dir {
        Dir::Out => (DUT, PEER, Port::Ephemeral(1), Port::Fixed(80)),
        Dir::In => (PEER, DUT, Port::Fixed(80), Port::Ephemeral(1)),
    };
    NormFrame::Tcp {
        ip: NormIp::V4(NormIpv4 {
            ihl: 5,
            tos: 0,
            ttl: 64,
            df: true,
            id: IpId::Delta(0),
            options: Vec::new(),
            src,
            dst,
            checksum_ok: true,
        }),
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        urg_ptr: 0,
        doff: 5,
        options,
        payload_len: 0,
        checksum_ok: true,
    }
}

fn frame(t_ms: f64, dir: Dir, norm: NormFrame) -> TraceFrame {
    TraceFrame {
        t_ms,
        dir,
        norm,
        raw: decode::decode(&[]),
    }
}

fn call(t_ms: f64, name: &str, args: &str, ret: i64, errno: Option<&str>) -> TraceCall {
    TraceCall {
        t_ms,
        took_ms: t_ms,
        record: CallRecord {
            call: name.into(),
            args: args.into(),
            ret,
            errno: errno.map(Into::into),
            outcome: errno.map_or(ret.to_string(), Into::into),
            start_ns: 0,
            end_ns: 0,
        },
    }
}

/// A connect that the kernel sees refused and the "stack" sees time out with another window.
fn trace(window: u16, refused: bool) -> Trace {
    use tcptwin::observe::decode::flags::{ACK, RST, SYN};
    let syn_opts = vec![
        TcpOption::Mss { value: 1460 },
        TcpOption::SackPerm,
        TcpOption::Nop,
        TcpOption::Wscale { shift: 10 },
    ];
    let mut frames = vec![
        frame(
            0.0,
            Dir::Out,
            NormFrame::Arp {
                op: 1,
                sender_ip: DUT,
                target_ip: PEER,
            },
        ),
        frame(
            0.02,
            Dir::In,
            NormFrame::Arp {
                op: 2,
                sender_ip: PEER,
                target_ip: DUT,
            },
        ),
        frame(0.05, Dir::Out, tcp(Dir::Out, SYN, 0, 0, window, syn_opts)),
    ];
    if refused {
        frames.push(frame(
            0.3,
            Dir::In,
            tcp(Dir::In, RST | ACK, 0, 1, 0, Vec::new()),
        ));
    }
    Trace {
        origin_ns: 0,
        frames,
        calls: vec![
            call(0.0, "socket", "AF_INET, SOCK_STREAM", 3, None),
            call(
                0.4,
                "connect",
                "198.18.0.2:80",
                -1,
                Some(if refused { "ECONNREFUSED" } else { "ETIMEDOUT" }),
            ),
        ],
        raw: RawValues::default(),
    }
}

fn side(dut: &'static str, trace: Trace, artifacts: &Path) -> CaseResult {
    CaseResult {
        path: PathBuf::from("cases/refused-or-not.yaml"),
        name: "refused-or-not".into(),
        dut,
        verdict: Verdict::Pass,
        error: None,
        failure: None,
        trace: Some(trace),
        checks: Vec::new(),
        pcap: Some(artifacts.join("refused-or-not").join(format!("{dut}.pcap"))),
        wall_ms: 400.0,
        phases: Default::default(),
        outlived_time_limit: false,
    }
}

fn divergence(path: &str, reference: &str, other: &str) -> Divergence {
    Divergence {
        path: path.into(),
        reference: reference.into(),
        other: other.into(),
        tolerance_ms: None,
        known: None,
    }
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TCPTWIN_CHROMIUM") {
        return Some(path.into());
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|p| p.is_file())
}

fn headless(browser: &Path, profile: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs")
}

#[test]
fn the_report_renders_in_chromium_with_ladders_and_highlights() {
    let Some(browser) = chromium() else {
        common::skip(
            "the HTML report test needs Chromium (apt-get install chromium, or run ci/setup)",
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("tcptwin-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = dir.join("report");
    let artifacts = dir.join("artifacts");
    let pair = PairResult {
        name: "refused-or-not".into(),
        path: PathBuf::from("cases/refused-or-not.yaml"),
        verdict: PairVerdict::Diverged,
        reference: side("kernel", trace(64240, true), &artifacts),
        other: side("stack", trace(65535, false), &artifacts),
        divergences: vec![
            divergence("frame[2].tcp.window", "64240", "65535"),
            divergence("frame[3].dir", "<", "absent"),
            divergence("call[1].result", "ECONNREFUSED", "ETIMEDOUT"),
        ],
        reruns: vec![PairVerdict::Diverged],
    };
    let index = tcptwin::report::html::write_pairs(&report, &[pair]).unwrap();

    let dom = headless(&browser, &dir.join("profile"), &["--dump-dom"], &index);
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The summary: one row, the verdict, the counts, links to both pcaps (relative).
    assert!(dom.contains("<table id=\"summary\">"), "{dom}");
    assert!(
        dom.contains("1 cases: 0 passed, 0 known, 1 diverged, 0 errors"),
        "{dom}"
    );
    assert!(dom.contains("href=\"#case-refused-or-not\""), "{dom}");
    assert!(
        dom.contains("href=\"../artifacts/refused-or-not/kernel.pcap\""),
        "{dom}"
    );
    assert!(
        dom.contains("href=\"../artifacts/refused-or-not/stack.pcap\""),
        "{dom}"
    );
    // Two ladders, the kernel's first, arrows labelled as tcpdump would.
    let kernel = dom
        .find("data-dut=\"kernel\"")
        .expect("the kernel's ladder");
    let stack = dom.find("data-dut=\"stack\"").expect("the stack's ladder");
    assert!(kernel < stack);
    assert_eq!(dom.matches("<svg").count(), 2);
    assert!(dom.contains("S 0:0(0) <tspan class=\"hl\""), "{dom}");
    assert!(
        dom.contains("&lt;mss 1460,sackOK,nop,wscale 10&gt;"),
        "{dom}"
    );
    assert!(dom.contains("R. 0:0(0) ack 1 win 0"), "{dom}");
    assert!(
        dom.contains("ARP who-has 198.18.0.2 tell 198.18.0.1"),
        "{dom}"
    );
    // Divergent fields are highlighted on both sides; the missing frame is named.
    assert!(dom.contains("font-weight=\"bold\" text-decoration=\"underline\">win 64240</tspan>"));
    assert!(dom.contains("font-weight=\"bold\" text-decoration=\"underline\">win 65535</tspan>"));
    assert_eq!(
        dom.matches("class=\"mark-diverged\"").count(),
        6,
        "3 rows × 2 sides"
    );
    assert!(dom.contains("(frame[3]: no such frame)"), "{dom}");
    assert!(dom.contains("connect(198.18.0.2:80) = -1 ECONNREFUSED"));
    assert!(dom.contains("connect(198.18.0.2:80) = -1 ETIMEDOUT"));
    assert!(
        dom.contains("<td>frame[2].tcp.window</td><td>64240</td><td>65535</td>"),
        "{dom}"
    );
    // Self-contained: nothing is fetched.
    let html = std::fs::read_to_string(&index).unwrap();
    for external in ["<link", "<script", "src=\"http", "@import", "url(http"] {
        assert!(!html.contains(external), "the report loads {external}");
    }

    // And it paints: a screenshot of the page is a real image.
    let png = dir.join("shot.png");
    let out = headless(
        &browser,
        &dir.join("profile"),
        &[&format!("--screenshot={}", png.display())],
        &index,
    );
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
