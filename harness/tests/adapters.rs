//! The adapters of stacks nobody here wrote, each run as an `exec:` DUT against the kernel
//! in real namespaces (root needed; `ci/setup` builds lwIP's adapter and PyTCP's venv):
//! each reaches a verdict on its own stack's behaviour, and a step it cannot express is
//! `unsupported`. What each asserts is a trait of that stack measured on the wire, so an
//! adapter that fell back to the kernel's sockets, or dropped frames, fails here.

use std::path::{Path, PathBuf};

use tcptwin::case::LoadedCase;
use tcptwin::dut::{ExecDut, KernelDut};
use tcptwin::judge::diff::Divergence;
use tcptwin::run::{self, PairResult, PairVerdict};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn loaded(name: &str) -> LoadedCase {
    LoadedCase::load(&repo().join("cases").join(format!("{name}.yaml"))).unwrap()
}

/// The adapter at `relative`, which `ci/setup` builds: missing is a failure that says so.
fn adapter(relative: &str) -> ExecDut {
    let program = repo().join(relative);
    assert!(
        program.exists(),
        "{} is missing: run ci/setup (it builds the adapters)",
        program.display()
    );
    ExecDut::start(&program.display().to_string()).expect("the adapter starts")
}

fn run(exec: &ExecDut, case: &str) -> PairResult {
    run::run_pair(&loaded(case), &KernelDut, exec, None)
}

/// The divergence at `path`, which the pair must have.
fn divergence<'a>(pair: &'a PairResult, path: &str) -> &'a Divergence {
    pair.divergences
        .iter()
        .find(|d| d.path == path)
        .unwrap_or_else(|| panic!("no {path}:\n{}", tcptwin::report::pair_text(pair, true)))
}

#[test]
fn lwip_connects_with_its_own_syn_and_errnos() {
    let exec = adapter("adapters/lwip/build/tcptwin-lwip-adapter");
    assert_eq!(exec.hello().name, "lwip");
    assert_eq!(exec.hello().version, "2.1.3");

    let pair = run(&exec, "handshake-default");
    assert_eq!(pair.verdict, PairVerdict::Diverged);
    // Frames 0 and 1 are the ARP exchange, 2 the SYN. lwIP's IP_DEFAULT_TTL is 255, and
    // its SYN asks for no SACK or timestamps.
    let ttl = divergence(&pair, "frame[2].ip.ttl");
    assert_eq!((ttl.reference.as_str(), ttl.other.as_str()), ("64", "255"));
    assert_eq!(divergence(&pair, "frame[2].tcp.options[1]").other, "nop");
    // Every call returned as the kernel's did: connect succeeded, close too.
    assert!(
        pair.divergences
            .iter()
            .all(|d| !d.path.starts_with("call[")),
        "{:?}",
        pair.divergences
    );

    // A refusing RST: lwIP's connect fails ECONNRESET where Linux says ECONNREFUSED.
    let pair = run(&exec, "rst-econnrefused");
    let result = pair
        .divergences
        .iter()
        .find(|d| d.path.starts_with("call[") && d.path.ends_with(".result"))
        .expect("connect's result differs");
    assert_eq!(
        (result.reference.as_str(), result.other.as_str()),
        ("ECONNREFUSED", "ECONNRESET")
    );

    // TCP_MAXSEG is not among the options lwIP implements.
    assert_eq!(
        run(&exec, "tcp-maxseg-536").verdict,
        PairVerdict::Unsupported
    );

    // IPv6: lwIP's own AF_INET6 socket and neighbour discovery; its hop limit is 255 too.
    let pair = run(&exec, "inet6/v6-handshake");
    assert_eq!(pair.verdict, PairVerdict::Diverged);
    assert_quiet_ipv6_start(&pair);
    let hops = divergence(&pair, "frame[2].ip6.hop_limit");
    assert_eq!(
        (hops.reference.as_str(), hops.other.as_str()),
        ("64", "255")
    );
    assert_eq!(divergence(&pair, "frame[2].tcp.options[1]").other, "nop");
}

/// An IPv6 pair whose first two frames, the DUT's neighbour solicitation for the peer
/// and the advertisement answering it, are the kernel's: the adapter brought its stack
/// up without a frame of its own (DAD, router solicitation, MLD report), and every call
/// returned as the kernel's did.
fn assert_quiet_ipv6_start(pair: &PairResult) {
    assert!(
        pair.divergences
            .iter()
            .all(|d| !d.path.starts_with("frame[0].")
                && !d.path.starts_with("frame[1].")
                && !d.path.starts_with("call[")),
        "{}",
        tcptwin::report::pair_text(pair, true)
    );
}

#[test]
fn pytcp_connects_with_its_own_syn() {
    let exec = adapter("adapters/pytcp/run");
    assert_eq!(exec.hello().name, "pytcp");

    let pair = run(&exec, "handshake-default");
    assert_eq!(pair.verdict, PairVerdict::Diverged);
    // Frames 0 and 1 are the ARP exchange, 2 the SYN. PyTCP's SYN carries its MSS alone,
    // in an unscaled 65535 window, without DF.
    let window = divergence(&pair, "frame[2].tcp.window");
    assert_eq!(
        (window.reference.as_str(), window.other.as_str()),
        ("64240", "65535")
    );
    assert_eq!(divergence(&pair, "frame[2].ip.df").other, "false");
    assert_eq!(divergence(&pair, "frame[2].tcp.doff").other, "6");

    // PyTCP has no nonblocking mode.
    assert_eq!(
        run(&exec, "nonblocking-connect-success").verdict,
        PairVerdict::Unsupported
    );

    // IPv6: PyTCP's own AF_INET6 socket and neighbour discovery. Its MSS is the MTU less
    // 40 whatever the family, so 1460 where IPv6's header leaves the kernel 1440.
    let pair = run(&exec, "inet6/v6-handshake");
    assert_eq!(pair.verdict, PairVerdict::Diverged);
    assert_quiet_ipv6_start(&pair);
    let mss = divergence(&pair, "frame[2].tcp.options[0]");
    assert_eq!(
        (mss.reference.as_str(), mss.other.as_str()),
        ("mss 1440", "mss 1460")
    );
}
