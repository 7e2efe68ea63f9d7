//! End-to-end tests in real namespaces: they need root (CAP_SYS_ADMIN and CAP_NET_ADMIN),
//! as the harness itself does.

use std::path::{Path, PathBuf};

use tcptwin::case::Case;
use tcptwin::case::LoadedCase;
use tcptwin::dut::KernelDut;
use tcptwin::net::topology::{Topology, TopologySpec, DUT_IF, DUT_MAC, KERNEL_SIDE_MAC, PEER_IF};
use tcptwin::net::{ethtool, sysctl};
use tcptwin::run::{self, Verdict};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

fn loaded(name: &str) -> LoadedCase {
    LoadedCase::load(&cases_dir().join(format!("{name}.yaml"))).unwrap()
}

fn inline(text: &str) -> LoadedCase {
    LoadedCase::parse(Path::new("inline.yaml"), text).unwrap()
}

#[test]
fn the_handshake_trace_shows_the_default_linux_syn() {
    let result = run::run_case(&loaded("handshake-default"), &KernelDut, None);
    assert_eq!(
        result.verdict,
        Verdict::Pass,
        "{}",
        tcptwin::report::case_text(&result, true)
    );
    let trace = result.trace.unwrap();
    let text = trace.text();
    assert!(
        text.contains("> S 0:0(0) win 64240 <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 10>"),
        "{text}"
    );
    let port = trace.raw.dut_port.expect("the SYN's source port is kept");
    assert!(
        (32768..61000).contains(&port) && port.is_multiple_of(2),
        "connect() port {port}: even, in range"
    );
    assert!(trace
        .calls
        .iter()
        .any(|c| c.record.call == "connect" && c.record.outcome == "0"));
}

#[test]
fn a_wrong_expectation_fails_the_case_and_says_what_differed() {
    let case = inline(
        "name: wrong\nsteps:\n  - connect: {}\n  - close\npeer:\n  syn:\n    - synack: {}\nexpect:\n  syn:\n    window: 1234\n    options: \"mss 1460,wscale 10\"\n",
    );
    let result = run::run_case(&case, &KernelDut, None);
    assert_eq!(result.verdict, Verdict::Fail);
    let failed: Vec<_> = result.checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(
        (failed[0].what.as_str(), failed[0].actual.as_str()),
        ("SYN options", "mss 1460,sackOK,TS,nop,wscale 10")
    );
    assert_eq!(
        (failed[1].what.as_str(), failed[1].actual.as_str()),
        ("SYN window", "64240")
    );
}

#[test]
fn a_case_over_its_time_limit_is_an_error_and_the_blocked_call_is_interrupted() {
    // ARP never answered: connect would block about 3 s; the limit is 0.5 s.
    let case =
        inline("name: slow\nsteps:\n  - connect: {}\npeer:\n  arp: silent\ntime_limit_s: 0.5\n");
    let started = std::time::Instant::now();
    let result = run::run_case(&case, &KernelDut, None);
    assert_eq!(result.verdict, Verdict::Error);
    assert!(
        result.error.as_deref().unwrap().contains("time limit"),
        "{:?}",
        result.error
    );
    assert!(
        started.elapsed().as_secs_f64() < 2.5,
        "the blocked connect was not interrupted"
    );
    let trace = result.trace.expect("the partial run is still reported");
    let connect = trace
        .calls
        .iter()
        .find(|c| c.record.call == "connect")
        .unwrap();
    assert_eq!(connect.record.outcome, "EINTR");
}

#[test]
fn a_harness_fault_is_an_error_not_a_failure() {
    let case = inline("name: badsysctl\nsysctls:\n  net.ipv4.no_such_knob: 1\nsteps:\n  - close\n");
    let result = run::run_case(&case, &KernelDut, None);
    assert_eq!(result.verdict, Verdict::Error);
    assert!(result.error.unwrap().contains("net.ipv4.no_such_knob"));
}

#[test]
fn topology_has_offloads_and_ipv6_off_on_both_ends() {
    let c: Case = loaded("handshake-default").case;
    let topology = Topology::build(&TopologySpec::for_case(&c, true)).unwrap();
    for (ns, ifname) in [(&topology.dut, DUT_IF), (&topology.peer, PEER_IF)] {
        let on = ns
            .run(|| ethtool::enabled_offloads(ifname).unwrap())
            .unwrap();
        assert!(on.is_empty(), "{ifname}: offloads still on: {on:?}");
        let v6 = ns
            .run(|| sysctl::read("net.ipv6.conf.all.disable_ipv6"))
            .unwrap();
        if let Ok(v6) = v6 {
            assert_eq!(v6, "1");
        }
    }
    let sack = topology
        .dut
        .run(|| sysctl::read("net.ipv4.tcp_sack").unwrap())
        .unwrap();
    assert_eq!(sack, "1");
}

/// The DUT veth's own MAC, as `ip` in the DUT namespace reports it.
fn dut_veth_mac(topology: &Topology) -> String {
    topology
        .dut
        .run(|| {
            let out = std::process::Command::new("ip")
                .args(["-br", "link", "show", "dev", DUT_IF])
                .output()
                .expect("running ip");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_string()
        })
        .unwrap()
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

#[test]
fn a_stack_network_comes_with_a_receiver_and_a_veth_mac_other_than_the_stacks() {
    let c: Case = loaded("handshake-default").case;
    let stack = Topology::build(&TopologySpec::for_case(&c, false)).unwrap();
    assert_eq!(dut_veth_mac(&stack), mac_text(KERNEL_SIDE_MAC));
    assert!(stack.dut_receiver.take().is_some(), "made with the blank");
    assert!(stack.dut_receiver.take().is_none(), "taken once");
    let kernel = Topology::build(&TopologySpec::for_case(&c, true)).unwrap();
    assert_eq!(dut_veth_mac(&kernel), mac_text(DUT_MAC));
}

#[test]
fn sysctls_of_a_case_are_set_inside_the_dut_namespace_only() {
    let before = sysctl::read("net.ipv4.tcp_syn_retries").unwrap();
    let c = inline("name: s\nsysctls:\n  net.ipv4.tcp_syn_retries: 3\nsteps:\n  - close\n");
    let topology = Topology::build(&TopologySpec::for_case(&c.case, true)).unwrap();
    let inside = topology
        .dut
        .run(|| sysctl::read("net.ipv4.tcp_syn_retries").unwrap())
        .unwrap();
    assert_eq!(inside, "3");
    assert_eq!(sysctl::read("net.ipv4.tcp_syn_retries").unwrap(), before);
}

#[test]
fn artifacts_hold_a_pcap_that_reads_back_frame_for_frame() {
    let dir = std::env::temp_dir().join(format!("tcptwin-test-{}", std::process::id()));
    let result = run::run_case(&loaded("rst-econnrefused"), &KernelDut, Some(&dir));
    let pcap = result.pcap.clone().expect("a pcap was written");
    let frames = tcptwin::observe::capture::read_pcap(&pcap).unwrap();
    let trace = result.trace.unwrap();
    assert_eq!(frames.len(), trace.frames.len());
    let reread = tcptwin::observe::trace::build(&frames, &[], tcptwin::net::topology::DUT_MAC);
    let labels =
        |t: &tcptwin::observe::trace::Trace| t.frames.iter().map(|f| f.label()).collect::<Vec<_>>();
    assert_eq!(labels(&reread), labels(&trace));
    assert_eq!(
        labels(&trace),
        ["> ARP who-has", "< ARP reply", "> S", "< R."]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
