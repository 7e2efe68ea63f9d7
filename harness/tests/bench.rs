//! `tcptwin bench` end to end: the figures it prints, and `--only` to run one of them.

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String, String) {
    let cases = concat!(env!("CARGO_MANIFEST_DIR"), "/../cases");
    let out = Command::new(env!("CARGO_BIN_EXE_tcptwin"))
        .args(["bench", "--cases", cases])
        .args(args)
        .output()
        .expect("running tcptwin bench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn only_connect_rate_measures_both_implementations_and_nothing_else() {
    let (ok, stdout, stderr) = bench(&["--only", "connect-rate", "--connects", "40"]);
    assert!(ok, "{stdout}\n{stderr}");
    for wanted in [
        "connect rate over veth",
        "kernel 40 connects × 5 rounds",
        "stack  40 connects × 5 rounds",
        "connect rate, stack / kernel, per round: median ",
        "peak memory: ",
    ] {
        assert!(stdout.contains(wanted), "missing {wanted:?}:\n{stdout}");
    }
    for unwanted in [
        "per-case overhead",
        "suite:",
        "retransmission-interval",
        "fuzz:",
    ] {
        assert!(
            !stdout.contains(unwanted),
            "{unwanted:?} was measured too:\n{stdout}"
        );
    }
}

#[test]
fn an_unknown_part_is_refused_with_the_ones_there_are() {
    let (ok, _, stderr) = bench(&["--only", "throughput"]);
    assert!(!ok);
    assert!(
        stderr.contains("throughput") && stderr.contains("connect-rate"),
        "{stderr}"
    );
}

#[test]
fn an_adapters_overhead_is_measured_against_the_stacks() {
    let adapter = concat!(
        "exec:python3 ",
        env!("CARGO_MANIFEST_DIR"),
        "/../adapters/kernel/tcptwin_kernel_adapter.py"
    );
    let (ok, stdout, stderr) = bench(&["--only", "overhead", "--runs", "3", "--exec", adapter]);
    assert!(ok, "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("exec:kernel-sockets per case"))
        .unwrap_or_else(|| panic!("no exec line:\n{stdout}"));
    let ratio: f64 = line
        .rsplit(": ")
        .next()
        .and_then(|r| r.strip_suffix('x'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {line:?}"));
    assert!(ratio.is_finite() && ratio > 0.0, "{line}");
    let (ok, _, stderr) = bench(&["--only", "overhead", "--exec", "stack"]);
    assert!(!ok && stderr.contains("not an exec:COMMAND"), "{stderr}");
}
