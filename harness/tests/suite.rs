//! The whole case suite against the kernel, alone in its own test binary so that no other
//! test holds namespaces while this one checks that the run left none behind. A case that
//! fails counts once a rerun alone fails too, as the gate confirms a divergence.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tcptwin::case::Suite;
use tcptwin::dut::KernelDut;
use tcptwin::net::netlink::Netlink;
use tcptwin::run::{self, Verdict};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

/// The links of the namespace this test runs in, read over netlink.
fn links_here() -> BTreeSet<String> {
    Netlink::open()
        .unwrap()
        .link_names()
        .unwrap()
        .into_iter()
        .collect()
}

/// Network namespaces this process holds descriptors to.
fn netns_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("net:["))
        .count()
}

#[test]
fn every_case_passes_against_the_kernel_and_leaves_nothing_behind() {
    let links_before = links_here();
    let fds_before = netns_fds();
    let cases = Suite::load(&[cases_dir()]).unwrap().cases;
    assert!(cases.len() >= 25);
    let results = run::run_all(&cases, &KernelDut, None, run::DEFAULT_JOBS, |_, _| {});
    // Judged as the gate judges a divergence: a case that failed runs again alone, and
    // fails the test only if a rerun fails too (a kernel timer a fraction of a millisecond
    // past its window on a loaded host does not come back twice in a row).
    let failures: Vec<String> = results
        .iter()
        .zip(&cases)
        .filter(|(r, _)| r.verdict != Verdict::Pass)
        .filter(|(r, case)| {
            eprintln!("rerunning alone:\n{}", tcptwin::report::case_text(r, false));
            (0..2).any(|_| run::run_case(case, &KernelDut, None).verdict != Verdict::Pass)
        })
        .map(|(r, _)| tcptwin::report::case_text(r, true))
        .collect();
    // The reruns ran outside run_all, which drains the spare networks it made; theirs too
    // must go before the descriptors are counted.
    tcptwin::run::prewarm::drain();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Results come back in input order.
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let expected: Vec<&str> = cases.iter().map(|c| c.case.name.as_str()).collect();
    assert_eq!(names, expected);
    assert_eq!(
        links_here(),
        links_before,
        "the starting namespace's links changed"
    );
    assert_eq!(
        netns_fds(),
        fds_before,
        "a namespace descriptor was left open"
    );
}
