//! A run on a network built ahead behaves exactly like one on a network built for it.
//!
//! Its own test binary: the pool of blank networks is per process, and tests running
//! alongside could take or evict the blank this test waits for.

use std::path::Path;
use std::time::Duration;

use tcptwin::case::LoadedCase;
use tcptwin::dut::KernelDut;
use tcptwin::run::{self, Verdict};

/// An MTU no other run in this process uses, so the first run finds no blank of it.
const MTU: u32 = 1432;

#[test]
fn a_prewarmed_network_gives_the_same_trace_as_a_fresh_one() {
    let loaded = LoadedCase::parse(
        Path::new("prewarm.yaml"),
        &format!(
            "name: prewarm\nsteps:\n  - connect: {{}}\n  - close\ntopology:\n  mtu: {MTU}\n\
             peer:\n  syn:\n    - synack: {{}}\n"
        ),
    )
    .unwrap();
    let fresh = run::run_case(&loaded, &KernelDut, None);
    assert!(!fresh.phases.prewarmed, "no blank of MTU {MTU} existed yet");
    assert!(
        tcptwin::run::prewarm::wait_for_spare(MTU, Duration::from_secs(10)),
        "taking a blank starts building the next one of its MTU"
    );
    let prewarmed = run::run_case(&loaded, &KernelDut, None);
    assert!(prewarmed.phases.prewarmed);
    for run in [&fresh, &prewarmed] {
        assert_eq!(
            run.verdict,
            Verdict::Pass,
            "{}",
            tcptwin::report::case_text(run, true)
        );
    }
    let (a, b) = (fresh.trace.unwrap(), prewarmed.trace.unwrap());
    // The capture ran long before the case but holds only the case's frames, from the
    // first ARP request on; the SYN's MSS follows the blank's MTU.
    assert!(
        matches!(
            b.frames.first().map(|f| &f.norm),
            Some(tcptwin::observe::trace::NormFrame::Arp { op: 1, .. })
        ),
        "{}",
        b.text()
    );
    assert!(
        b.text().contains(&format!("<mss {}", MTU - 40)),
        "{}",
        b.text()
    );
    let divergences = tcptwin::judge::diff::diff(&a, &b, &[], &Default::default());
    assert!(divergences.is_empty(), "{divergences:?}");
}
