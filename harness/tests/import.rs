//! `tcptwin import` on packetdrill scripts written for these tests (tests/fixtures/packetdrill).

use std::path::{Path, PathBuf};

use tcptwin::case::{self, Step, SynReaction};
use tcptwin::tools::import;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/packetdrill")
        .join(name)
}

fn translate(name: &str) -> Result<String, import::ImportError> {
    let path = fixture(name);
    import::translate(&path, &std::fs::read_to_string(&path).unwrap())
}

fn case_of(name: &str) -> case::Case {
    let yaml = translate(name).unwrap_or_else(|e| panic!("{e}"));
    assert!(yaml.starts_with("# yaml-language-server: $schema=case.schema.json\n"));
    case::parse(Path::new(name), &yaml).unwrap()
}

#[test]
fn a_blocking_handshake_becomes_steps_a_synack_and_expectations() {
    let c = case_of("handshake.pkt");
    assert_eq!(c.name, "pd-handshake");
    assert!(
        c.description
            .starts_with("A blocking connect answered at once"),
        "{}",
        c.description
    );
    assert!(c.tags.contains(&"packetdrill".to_string()));
    let names: Vec<&str> = c.steps.iter().map(|s| s.call_name()).collect();
    assert_eq!(
        names,
        ["setsockopt", "connect", "getsockopt", "wait", "close"]
    );
    let SynReaction::Synack(synack) = &c.peer.syn[0] else {
        panic!("{:?}", c.peer.syn)
    };
    assert_eq!(synack.window, 5000);
    assert_eq!(synack.delay_ms, 50);
    assert_eq!(synack.options.as_ref().map(Vec::len), Some(6));
    assert_eq!(c.peer.on_fin, case::FinReply::AckFin);
    let results: Vec<(&str, &str)> = c
        .expect
        .calls
        .iter()
        .map(|e| (e.call.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(
        results,
        [("connect", "0"), ("getsockopt", "1200"), ("close", "0")]
    );
    assert_eq!(c.expect.syn.as_ref().unwrap().count, Some(1));
}

#[test]
fn a_refused_nonblocking_connect_keeps_poll_and_so_error() {
    let yaml = translate("refused-nonblocking.pkt").unwrap();
    let c = case::parse(Path::new("x.yaml"), &yaml).unwrap();
    assert_eq!(c.steps[0], Step::Nonblocking(true));
    // The first SYN goes unanswered, the second is refused 20 ms after it left.
    assert_eq!(c.peer.syn[0], SynReaction::Drop);
    let SynReaction::Rst(rst) = &c.peer.syn[1] else {
        panic!("{:?}", c.peer.syn)
    };
    assert_eq!((rst.no_ack, rst.delay_ms), (false, 20));
    let syn = c.expect.syn.as_ref().unwrap();
    assert_eq!(syn.count, Some(2));
    assert_eq!(syn.intervals_ms, Some(vec![1000.0]));
    let results: Vec<&str> = c.expect.calls.iter().map(|e| e.result.as_str()).collect();
    assert_eq!(
        results,
        ["EINPROGRESS", "POLLOUT|POLLERR|POLLHUP", "ECONNREFUSED"]
    );
    assert!(
        yaml.contains("Not carried over: F_GETFL (line 3)"),
        "{yaml}"
    );
}

#[test]
fn sysctls_and_an_icmp_answer_translate() {
    let c = case_of("icmp-sysctl.pkt");
    let sysctls: Vec<(String, String)> = c
        .sysctls
        .iter()
        .map(|(k, v)| (k.0.clone(), v.to_string()))
        .collect();
    assert_eq!(
        sysctls,
        [
            ("net.ipv4.tcp_syn_retries".to_string(), "2".to_string()),
            ("net.ipv4.tcp_timestamps".to_string(), "0".to_string())
        ]
    );
    assert_eq!(c.steps[0], Step::Nonblocking(true));
    assert_eq!(c.peer.syn.len(), 3);
    let SynReaction::Icmp(icmp) = &c.peer.syn[2] else {
        panic!("{:?}", c.peer.syn)
    };
    assert_eq!((icmp.icmp_type, icmp.code, icmp.delay_ms), (3, 1, 10));
    assert_eq!(
        c.expect.syn.as_ref().unwrap().intervals_ms,
        Some(vec![1000.0, 2000.0])
    );
}

#[test]
fn untranslatable_lines_are_refused_with_their_line_number_and_reason() {
    let e = translate("listen-refused.pkt").unwrap_err().to_string();
    assert!(e.contains("listen-refused.pkt:3:"), "{e}");
    assert!(e.contains("setsockopt SOL_SOCKET/SO_REUSEADDR"), "{e}");
    let e = translate("tcpinfo-refused.pkt").unwrap_err().to_string();
    assert!(e.contains("tcpinfo-refused.pkt:6:"), "{e}");
    assert!(e.contains("tcp_info"), "{e}");
}

#[test]
fn a_script_without_connect_is_refused() {
    let e = import::translate(
        Path::new("x.pkt"),
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no connect()"), "{e}");
}
