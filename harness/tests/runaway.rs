//! Runaway cases: a peer that floods the DUT, or a DUT that never gets an answer, is cut off
//! at the case's time limit with an error verdict, and the cases after it still run. And a
//! case naming a sysctl the host lacks never starts.

use std::path::Path;
use std::time::{Duration, Instant};

use tcptwin::case;
use tcptwin::case::LoadedCase;
use tcptwin::dut::{KernelDut, StackDut};
use tcptwin::run::{self, PairVerdict, Verdict};

fn inline(text: &str) -> LoadedCase {
    LoadedCase::parse(Path::new("inline.yaml"), text).unwrap()
}

fn flood(kind: &str) -> LoadedCase {
    inline(&format!(
        "name: flood-{kind}\nsteps:\n  - connect: {{}}\n  - close\npeer:\n  syn:\n    - flood: {{ kind: {kind}, count: 100000 }}\ntime_limit_s: 1\n"
    ))
}

fn handshake() -> LoadedCase {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/handshake-default.yaml");
    LoadedCase::load(&path).unwrap()
}

#[test]
fn a_flood_of_a_hundred_thousand_frames_is_an_error_within_its_time_limit() {
    for kind in ["rst", "synack"] {
        let case = flood(kind);
        for result in [
            run::run_case(&case, &KernelDut, None),
            run::run_case(&case, &StackDut::default(), None),
        ] {
            let report = tcptwin::report::case_text(&result, false);
            assert_eq!(result.verdict, Verdict::Error, "{report}");
            let error = result.error.as_deref().unwrap();
            assert!(
                error.contains("time limit") || error.contains("runaway"),
                "{report}"
            );
            // Setup, the 1 s limit, and a teardown that does not decode 10^5 frames.
            assert!(
                result.wall_ms < 5000.0,
                "{kind}: took {} ms",
                result.wall_ms
            );
            let frames = result.trace.as_ref().unwrap().frames.len();
            assert!(frames <= run::MAX_FRAMES, "{frames} frames kept");
        }
    }
}

#[test]
fn a_stack_that_never_gets_an_answer_is_an_error_at_its_time_limit() {
    // Every SYN dropped; without the limit, connect would block through all its retries.
    let case = inline(
        "name: silent\nsteps:\n  - connect: {}\npeer:\n  syn: [drop]\n  then: drop\ntime_limit_s: 0.5\n",
    );
    let started = Instant::now();
    let result = run::run_case(&case, &StackDut::default(), None);
    assert_eq!(result.verdict, Verdict::Error);
    assert!(
        result.error.as_deref().unwrap().contains("time limit"),
        "{:?}",
        result.error
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the stack's blocked connect was not cut off: {:?}",
        started.elapsed()
    );
}

#[test]
fn the_suite_goes_on_after_runaway_cases() {
    let cases = vec![
        flood("rst"),
        flood("synack"),
        inline(
            "name: silent-pair\nsteps:\n  - connect: {}\npeer:\n  arp: silent\ntime_limit_s: 0.5\n",
        ),
        handshake(),
    ];
    let started = Instant::now();
    let results = run::run_each(
        &cases,
        2,
        |c| run::run_pair(c, &KernelDut, &StackDut::default(), None),
        |_, _| {},
    );
    let verdicts: Vec<PairVerdict> = results.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [
            PairVerdict::Error,
            PairVerdict::Error,
            PairVerdict::Error,
            PairVerdict::Pass
        ],
        "{}",
        results
            .iter()
            .map(|r| tcptwin::report::pair_text(r, false))
            .collect::<String>()
            .lines()
            .filter(|l| !l.starts_with("  "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_flood_count_out_of_range_is_refused_at_load_time() {
    let err = case::parse(
        Path::new("x.yaml"),
        "name: x\nsteps:\n  - connect: {}\npeer:\n  syn:\n    - flood: { kind: rst, count: 2000000 }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("x.yaml:6:"), "{err}");
    assert!(err.contains("flood count 2000000"), "{err}");
}

/// A sysctl the host lacks is refused when the cases load, before any case runs, with file,
/// line, column and field; a per-device name for the DUT's eth0 that exists is accepted.
#[test]
fn a_sysctl_the_host_lacks_is_refused_before_anything_runs() {
    let dir = std::env::temp_dir().join(format!("tcptwin-sysctl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.yaml"),
        "name: a\nsysctls:\n  net.ipv4.neigh.eth0.retrans_time_ms: 100\n  net.ipv4.conf.eth0.rp_filter: 0\nsteps:\n  - close\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        "name: b\nsysctls:\n  net.ipv4.tcp_sack: 1\n  net.ipv4.neigh.eth0.gc_thresh1: 3\n  net.ipv4.no_such_knob: 1\nsteps:\n  - close\n",
    )
    .unwrap();
    let artifacts = dir.join("artifacts");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tcptwin"))
        .args(["run", "--vs", "stack", "--artifacts"])
        .arg(&artifacts)
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let b = dir.join("b.yaml").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{b}:4:3: field `sysctls.net.ipv4.neigh.eth0.gc_thresh1`: sysctl net.ipv4.neigh.eth0.gc_thresh1 does not exist"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{b}:5:3: field `sysctls.net.ipv4.no_such_knob`")),
        "{stderr}"
    );
    assert!(!stderr.contains("a.yaml"), "a.yaml is fine: {stderr}");
    assert!(!artifacts.exists(), "nothing ran");
    let _ = std::fs::remove_dir_all(&dir);
}
