//! Bounded fuzz runs through real namespaces.
//!
//! - Kernel against kernel over generated scenarios: the fuzzer's own false-alarm check
//!   (any divergence is the harness's fault).
//! - Kernel against smoltcp, which differs from Linux in its SYN options: the fuzzer must
//!   find a divergence, shrink it to a smaller case that still diverges, save it as YAML,
//!   and the saved case must replay under `tcptwin run` with the same divergence.

use std::path::PathBuf;

use std::sync::atomic::{AtomicBool, Ordering};

use tcptwin::case;
use tcptwin::dut::{Dut, DutError, KernelDut, Running};
use tcptwin::fuzz::{self, FuzzConfig};
use tcptwin::runner::{self, LoadedCase, PairVerdict};
use tcptwin::topology::Topology;

/// The two runs take turns: the kernel-against-kernel one judges timing, which another
/// fuzz run's load on the same two cores would blur.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(cases: u64, save_dir: Option<PathBuf>, stop_at_first: bool) -> FuzzConfig {
    FuzzConfig {
        cases: Some(cases),
        time: None,
        seed: 20261125,
        max_timer_s: 0.0,
        jobs: 8,
        save_dir,
        stop_at_first,
        shrink: true,
        dut_flags: String::new(),
    }
}

/// Ignored until the last known races are removed. The generated peer now answers on a
/// quiet line (`clock: quiet`), which removed the race of its per-segment ACKs against the
/// DUT's application (FIN riding on the last data or not, frames in another order). What
/// remains is rarer, about one scenario in 200, and happens inside the kernel: it chunks a
/// flight differently between two runs. PSH lands on another segment of the first flight,
/// before the peer has sent anything. A window-limited round is cut at another byte
/// (scenario #8 of this seed, `frame[62].tcp.payload_len` 116 against 100, in 2 to 5
/// replays of 10). This test failed 8 of 17 runs, 7 of them on #8. Run it with
/// `cargo test -- --ignored`.
#[test]
#[ignore = "known race: the kernel chunks a flight differently between two runs (PSH placement, where a window-limited round is cut; see the doc comment)"]
fn generated_scenarios_raise_no_false_alarm_kernel_against_kernel() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = fuzz::run(&config(60, None, false), &KernelDut, &KernelDut, |_, _| {});
    assert_eq!(outcome.scenarios, 60);
    let found: Vec<String> = outcome
        .found
        .iter()
        .map(|f| tcptwin::report::pair_text(&f.result, false))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert!(
        outcome.errors.is_empty(),
        "{:?}",
        outcome.errors.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
}

#[cfg(feature = "smoltcp")]
#[test]
fn a_divergence_is_found_shrunk_saved_and_replayed() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let other: &dyn Dut = &tcptwin::dut::SmoltcpDut;
    let dir = std::env::temp_dir().join(format!("tcptwin-fuzz-{}", std::process::id()));
    let outcome = fuzz::run(
        &config(40, Some(dir.clone()), true),
        &KernelDut,
        other,
        |_, _| {},
    );
    let found = outcome
        .found
        .iter()
        .find(|f| f.reproduced)
        .expect("smoltcp's SYN differs from Linux's: a divergence must be found");
    assert!(found.shrink_steps > 0, "the case was not shrunk");
    assert_eq!(found.result.verdict, PairVerdict::Diverged);
    // The minimal case is no bigger than any scenario: at most the generated steps.
    let saved = found.saved.clone().expect("the minimal case is saved");
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(
        text.starts_with("# Found by: tcptwin fuzz --seed 20261125"),
        "{text}"
    );
    let replay = LoadedCase::load(&saved).unwrap();
    assert_eq!(
        replay.case, found.minimal,
        "the saved YAML is the minimal case"
    );
    let again = runner::run_pair(&replay, &KernelDut, other, None);
    assert_eq!(
        again.verdict,
        PairVerdict::Diverged,
        "{}",
        tcptwin::report::pair_text(&again, true)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue #5's check. A stack given a bug the generated scenarios reach (a peer's MSS below
/// 48 taken as it is instead of floored, `tcp_mtu_to_mss`) is found from a fixed seed and
/// shrunk to what shows it: a SYN-ACK MSS below 48 and data to send. The same run on the
/// stack as it is reports nothing.
#[test]
fn a_deliberate_stack_bug_is_found_and_the_same_run_without_it_is_clean() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seeded = |save_dir| FuzzConfig {
        seed: 3,
        ..config(23, save_dir, true)
    };
    let mutated = tcptwin::dut::StackDut {
        mutation: Some(tcptwin_stack::Mutation::NoMinSndMss),
        ..tcptwin::dut::StackDut::default()
    };
    let dir = std::env::temp_dir().join(format!("tcptwin-mutation-{}", std::process::id()));
    let outcome = fuzz::run(&seeded(Some(dir.clone())), &KernelDut, &mutated, |_, _| {});
    // A scenario that diverged once and passed when run again (a late thread on a
    // loaded machine) is reported apart; the bug is the first that reproduces.
    let found = outcome
        .found
        .iter()
        .find(|f| f.reproduced)
        .unwrap_or_else(|| {
            panic!(
                "the mutated stack must be found ({} scenarios, harness errors: {:?})",
                outcome.scenarios,
                outcome
                    .errors
                    .iter()
                    .map(|e| tcptwin::report::pair_text(e, false))
                    .collect::<Vec<_>>()
            )
        });
    assert!(found.shrink_steps > 0, "the case was not shrunk");
    let minimal = &found.minimal;
    let tiny_mss = minimal.peer.syn.iter().any(|reaction| match reaction {
        case::SynReaction::Synack(spec) => spec
            .options
            .iter()
            .flatten()
            .any(|o| matches!(o, case::PeerOption::Mss(m) if *m < 48)),
        _ => false,
    });
    let yaml = case::to_yaml(minimal).unwrap_or_default();
    assert!(tiny_mss, "no SYN-ACK MSS below 48 in\n{yaml}");
    assert!(
        minimal
            .steps
            .iter()
            .any(|s| matches!(s, case::Step::Send(_))),
        "no send in\n{yaml}"
    );
    assert!(minimal.sysctls.is_empty(), "sysctls left in\n{yaml}");
    assert!(
        minimal
            .steps
            .iter()
            .all(|s| !matches!(s, case::Step::Setsockopt(_))),
        "socket options left in\n{yaml}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let clean = fuzz::run(
        &seeded(None),
        &KernelDut,
        &tcptwin::dut::StackDut::default(),
        |_, _| {},
    );
    assert_eq!(clean.scenarios, 23);
    let found: Vec<String> = clean
        .found
        .iter()
        .filter(|f| f.reproduced)
        .map(|f| tcptwin::report::pair_text(&f.result, false))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert!(clean.errors.is_empty());
}

/// A kernel DUT whose first run sends with another default TTL (`ip_default_ttl` 7), and
/// every later run as the kernel does: a divergence that is gone when the scenario runs
/// again.
struct DivergesOnce {
    ran: AtomicBool,
}

impl Dut for DivergesOnce {
    fn name(&self) -> &'static str {
        "kernel-ttl-7-once"
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run(&self, topology: &Topology, case: &case::Case) -> Result<Running, DutError> {
        if !self.ran.swap(true, Ordering::SeqCst) {
            topology
                .dut
                .run(|| tcptwin::sysctl::write("net.ipv4.ip_default_ttl", "7"))
                .expect("entering the DUT namespace")
                .expect("writing ip_default_ttl");
        }
        KernelDut.run(topology, case)
    }
}

/// A divergence that passes when its scenario runs again is reported as drawn, not shrunk,
/// and saved apart (`-unconfirmed.yaml`) with why; a run that stops at the first
/// divergence goes on past it.
#[test]
fn a_divergence_that_does_not_come_back_is_reported_unconfirmed_and_not_shrunk() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("tcptwin-unconfirmed-{}", std::process::id()));
    let once = DivergesOnce {
        ran: AtomicBool::new(false),
    };
    let outcome = fuzz::run(
        &FuzzConfig {
            jobs: 1,
            ..config(2, Some(dir.clone()), true)
        },
        &KernelDut,
        &once,
        |_, _| {},
    );
    assert_eq!(
        outcome.scenarios, 2,
        "an unconfirmed divergence must not end the run"
    );
    let [found] = &outcome.found[..] else {
        panic!("one divergence, the first run's: {:?}", outcome.found);
    };
    assert!(!found.reproduced);
    assert_eq!(found.shrink_steps, 0);
    assert!(
        found
            .result
            .divergences
            .iter()
            .any(|d| d.path.ends_with("ip.ttl")),
        "{}",
        tcptwin::report::pair_text(&found.result, false)
    );
    let saved = found.saved.clone().expect("saved");
    assert!(saved.ends_with(format!("{}-unconfirmed.yaml", found.minimal.name)));
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(
        text.contains("diverged once and passed when run again"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
