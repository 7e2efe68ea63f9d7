//! smoltcp as a DUT, end to end in real namespaces (root needed, as for the harness).
#![cfg(feature = "smoltcp")]

use std::path::{Path, PathBuf};

use tcptwin::case::LoadedCase;
use tcptwin::dut::{KernelDut, SmoltcpDut};
use tcptwin::run::{self, PairVerdict, Verdict};

fn loaded(name: &str) -> LoadedCase {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cases")
        .join(format!("{name}.yaml"));
    LoadedCase::load(&path).unwrap()
}

/// The plain handshake to a SYN-ACK, with what smoltcp is known to get right: connect
/// returns 0, one SYN (flags, TTL, TOS), the same frame sequence as Linux's, FIN exchange.
#[test]
fn a_smoltcp_handshake_passes_the_plain_handshake_expectations() {
    let path = PathBuf::from("inline.yaml");
    let text = r#"
name: smoltcp-handshake
steps:
  - connect: {}
  - close
peer:
  syn:
    - synack: {}
expect:
  calls:
    - { call: connect, nth: 1, result: "0" }
    - { call: close, nth: 1, result: "0" }
  syn: { flags: "S", ttl: 64, tos: 0, count: 1 }
  frames: ["> ARP who-has", "< ARP reply", "> S", "< S.", "> .", "> F.", "< F.", "> ."]
"#;
    let case = LoadedCase::parse(&path, text).unwrap();
    let result = run::run_case(&case, &SmoltcpDut, None);
    assert_eq!(
        result.verdict,
        Verdict::Pass,
        "{}",
        tcptwin::report::case_text(&result, true)
    );
}

/// The harness reports smoltcp's known differences from Linux on the default handshake:
/// its SYN offers no timestamps, puts wscale before sackOK (scale 2 for a 128 KiB buffer),
/// pads with EOLs, and advertises 65535 where Linux says 64240.
#[test]
fn the_harness_reports_smoltcps_syn_differences_from_linux() {
    let pair = run::run_pair(&loaded("handshake-default"), &KernelDut, &SmoltcpDut, None);
    assert_eq!(pair.verdict, PairVerdict::Diverged);
    let found = |path: &str| {
        pair.divergences
            .iter()
            .find(|d| d.path == path)
            .map(|d| (d.reference.as_str(), d.other.as_str()))
            .unwrap_or_else(|| {
                panic!(
                    "no divergence at {path}:\n{}",
                    tcptwin::report::pair_text(&pair, true)
                )
            })
    };
    assert_eq!(found("frame[2].tcp.window"), ("64240", "65535"));
    assert_eq!(found("frame[2].tcp.options[1]"), ("sackOK", "wscale 2"));
    assert_eq!(found("frame[2].tcp.options[2]"), ("TS", "sackOK"));
    assert_eq!(found("frame[2].tcp.options[4]"), ("wscale 10", "eol"));
    // What both do the same is not reported: the MSS, and connect()'s result.
    assert!(pair
        .divergences
        .iter()
        .all(|d| d.path != "frame[2].tcp.options[0]" && !d.path.starts_with("call[")));
    let syn_options = pair
        .other
        .checks
        .iter()
        .find(|c| c.what == "SYN options")
        .expect("the case checks the SYN's options");
    assert_eq!(syn_options.actual, "mss 1460,wscale 2,sackOK,eol,eol,eol");
}

/// A step smoltcp has no way to express is its own verdict: not a pass, not a failure.
#[test]
fn a_step_smoltcp_cannot_express_is_unsupported() {
    let pair = run::run_pair(&loaded("tcp-maxseg-536"), &KernelDut, &SmoltcpDut, None);
    assert_eq!(pair.verdict, PairVerdict::Unsupported);
    assert_eq!(pair.other.verdict, Verdict::Unsupported);
    let why = pair.other.error.as_deref().unwrap_or_default();
    assert!(why.contains("TCP_MAXSEG"), "{why}");
    assert!(pair.divergences.is_empty());
    let (tally, _) = tcptwin::report::pair_tally(std::slice::from_ref(&pair), 1);
    assert_eq!((tally.passed, tally.failed, tally.unsupported), (0, 0, 1));
}

/// A reset answering the SYN ends a nonblocking connect as Linux's does: poll says
/// POLLOUT|POLLERR|POLLHUP and SO_ERROR is ECONNREFUSED once, then 0.
#[test]
fn a_reset_maps_to_econnrefused_through_poll_and_so_error() {
    let result = run::run_case(
        &loaded("nonblocking-refused-poll-so-error"),
        &SmoltcpDut,
        None,
    );
    let trace = result.trace.expect("a trace");
    let outcomes: Vec<(&str, &str)> = trace
        .calls
        .iter()
        .map(|c| (c.record.call.as_str(), c.record.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("socket", "fd"),
            ("fcntl", "0"),
            ("connect", "EINPROGRESS"),
            ("poll", "POLLOUT|POLLERR|POLLHUP"),
            ("getsockopt", "ECONNREFUSED"),
            ("getsockopt", "0"),
            ("close", "0"),
        ]
    );
}
