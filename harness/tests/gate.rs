//! The gate as CI sees it, through the built binary: each documented exit code (0, 1, 2,
//! 3, 130, 143) from a real run; every bad input refused before anything runs, in one
//! clear message with file:line:column and field path; the JSON report valid against
//! docs/report.schema.json (and the schema refusing Rust enum shapes); JUnit with relative
//! classnames, skip reasons, and one grouped failure per case.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs that judge timing take turns: two at once on a small machine make them noisy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcptwin")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A fresh directory for one test.
fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcptwin-gate-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tcptwin(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("docs/report.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("docs/report.schema.json is a valid schema")
}

/// The report at `path`, checked against the schema.
fn valid_report(path: &Path) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let errors: Vec<String> = schema()
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    report
}

/// A usage error: exit code 2, nothing on stdout, exactly `lines` lines on stderr, the
/// last ending with a newline, no Rust Debug text and no library advice.
fn usage_error(out: &Output, lines: usize) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    assert!(out.stdout.is_empty(), "nothing runs: {}", text(out));
    assert!(stderr.ends_with('\n'), "{}", text(out));
    assert_eq!(stderr.lines().count(), lines, "{}", text(out));
    for debug in [
        "Some(",
        "None",
        "[\"",
        "For more information",
        "tip:",
        "Usage:",
    ] {
        assert!(!stderr.contains(debug), "{debug}: {}", text(out));
    }
    stderr
}

const HANDSHAKE: &str =
    "name: hs\nsteps:\n  - connect: {}\n  - close\npeer:\n  syn:\n    - synack: {}\n";

// ---- exit codes ----

#[test]
fn exit_0_when_every_case_passes_and_the_json_report_validates() {
    let _turn = turn();
    let dir = temp_dir("pass");
    let case = repo().join("cases/handshake-default.yaml");
    let out = tcptwin(
        &dir,
        &[
            "run",
            "--vs",
            "stack",
            "--json",
            "report.json",
            "--junit",
            "junit.xml",
            case.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = valid_report(&dir.join("report.json"));
    assert_eq!(report["format"], "tcptwin-report");
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["run"]["mode"], "pair");
    assert_eq!(report["summary"]["planned"], 1);
    assert_eq!(report["summary"]["passed"], 1);
    assert_eq!(report["summary"]["outcome"], "passed");
    let frame = &report["results"][0]["reference"]["trace"]["frames"][2];
    assert_eq!(frame["dir"], "out");
    assert_eq!(frame["norm"]["flags"], "S");
    assert_eq!(frame["norm"]["sport"], "ephemeral");
    assert_eq!(frame["norm"]["dport"], 80);
    assert_eq!(frame["norm"]["ip"]["id"], "+0");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    // The case file lies outside the working directory: named from the directory shared.
    assert!(junit.contains("classname=\"cases\""), "{junit}");
    assert!(!junit.contains(repo().to_str().unwrap()), "{junit}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_1_on_a_failed_expectation_and_the_single_run_report_validates() {
    let _turn = turn();
    let dir = temp_dir("fail");
    std::fs::write(
        dir.join("wrong.yaml"),
        format!("{HANDSHAKE}expect:\n  syn:\n    window: 1234\n"),
    )
    .unwrap();
    let out = tcptwin(
        &dir,
        &[
            "run",
            "--vs",
            "none",
            "--json",
            "r.json",
            "--junit",
            "j.xml",
            "wrong.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = valid_report(&dir.join("r.json"));
    assert_eq!(report["run"]["mode"], "single");
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["summary"]["outcome"], "diverged");
    assert_eq!(report["results"][0]["verdict"], "fail");
    let junit = std::fs::read_to_string(dir.join("j.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
    // The case file is in the working directory itself.
    assert!(junit.contains("classname=\"tcptwin\""), "{junit}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_3_on_a_harness_error_without_a_divergence() {
    let _turn = turn();
    let dir = temp_dir("harness");
    // A blocking connect whose SYNs are dropped runs past a one-second limit: the harness
    // cuts it off, which says nothing about the kernel.
    std::fs::write(
        dir.join("cut.yaml"),
        "name: cut\nsteps:\n  - connect: {}\ntime_limit_s: 1\n",
    )
    .unwrap();
    let out = tcptwin(
        &dir,
        &["run", "--vs", "none", "--json", "r.json", "cut.yaml"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 passed, 0 failed, 1 harness error(s)"),
        "{}",
        text(&out)
    );
    let report = valid_report(&dir.join("r.json"));
    assert_eq!(report["summary"]["errors"], 1);
    assert_eq!(report["summary"]["outcome"], "harness_error");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `pid` has a thread named `name` (the kernel DUT's thread exists only while a
/// case runs on it).
fn has_thread(pid: u32, name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
}

/// Starts a run of a long case and a short one, one at a time, sends `signal` while the
/// long one runs, and checks the exit code and what the reports say.
fn stopped_by(signal: libc::c_int, code: i32, label: &str) {
    let _turn = turn();
    let dir = temp_dir(label);
    // tcp_syn_retries 3 with every SYN dropped: a connect of 15 s.
    std::fs::write(
        dir.join("a-long.yaml"),
        "name: a-long\nsysctls:\n  net.ipv4.tcp_syn_retries: 3\nsteps:\n  - connect: {}\n",
    )
    .unwrap();
    std::fs::write(dir.join("b-short.yaml"), HANDSHAKE.replace("hs", "b-short")).unwrap();
    let child = Command::new(bin())
        .current_dir(&dir)
        .args([
            "run", "--vs", "none", "--jobs", "1", "--json", "r.json", "--junit", "j.xml", ".",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !has_thread(child.id(), "dut-kernel") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the long case did not start within 20 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("INTR  a-long"), "{}", text(&out));
    assert!(
        stdout.contains("1 interrupted, 1 not run"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("time limit"), "{}", text(&out));
    let report = valid_report(&dir.join("r.json"));
    assert_eq!(report["run"]["interrupted"], true);
    assert_eq!(report["summary"]["interrupted"], 1);
    assert_eq!(report["summary"]["not_run"], 1);
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["results"][0]["verdict"], "interrupted");
    let junit = std::fs::read_to_string(dir.join("j.xml")).unwrap();
    assert!(
        junit.contains("<skipped message=\"interrupted: "),
        "{junit}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_130_on_ctrl_c_with_the_cut_case_interrupted_and_the_rest_counted() {
    stopped_by(libc::SIGINT, 130, "sigint");
}

#[test]
fn exit_143_on_sigterm_with_the_cut_case_interrupted_and_the_rest_counted() {
    stopped_by(libc::SIGTERM, 143, "sigterm");
}

// ---- errors before the run (exit 2) ----

#[test]
fn sysctl_values_the_kernel_refuses_are_errors_at_their_keys_in_check_and_run() {
    let dir = temp_dir("sysctl-values");
    std::fs::write(
        dir.join("s.yaml"),
        "name: s\nsysctls:\n  net.ipv4.tcp_syn_retries: 1000\n  net.ipv4.ip_local_port_range: \"60000 1000\"\n  net.ipv4.tcp_sack: 0\nsteps:\n  - connect: {}\n",
    )
    .unwrap();
    for command in ["check", "run"] {
        let out = tcptwin(&dir, &[command, "s.yaml"]);
        let stderr = usage_error(&out, 3);
        assert!(
            stderr.contains("s.yaml:3:3: field `sysctls.net.ipv4.tcp_syn_retries`: this host's kernel refuses the value '1000'"),
            "{stderr}"
        );
        assert!(
            stderr.contains("s.yaml:4:3: field `sysctls.net.ipv4.ip_local_port_range`: this host's kernel refuses the value '60000 1000'"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("tcp_sack"),
            "a good value passes: {stderr}"
        );
    }
    assert!(!dir.join("artifacts").exists(), "nothing ran");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn waits_and_timer_chains_that_outlast_the_time_limit_are_refused() {
    let dir = temp_dir("limits");
    std::fs::write(
        dir.join("w.yaml"),
        "name: w\ntime_limit_s: 2\nsteps:\n  - wait_ms: 1500\n  - connect: {}\n  - wait_ms: 500\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("t.yaml"),
        "name: t\ntime_limit_s: 2\nsteps:\n  - connect: {}\nexpect:\n  calls:\n    - call: connect\n      result: ETIMEDOUT\n      timer_chain_ms: [1000, 1500]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ok.yaml"),
        "name: ok\ntime_limit_s: 2\nsteps:\n  - wait_ms: 1999\n  - connect: {}\n",
    )
    .unwrap();
    let out = tcptwin(&dir, &["check", "."]);
    let stderr = usage_error(&out, 3);
    assert!(
        stderr.contains("w.yaml:6:5: field `steps[2].wait_ms`: the steps wait 2000 ms by here"),
        "{stderr}"
    );
    assert!(
        stderr.contains("t.yaml:9:7: field `expect.calls[0].timer_chain_ms`: the timer chain adds up to 2500 ms"),
        "{stderr}"
    );
    assert!(!stderr.contains("ok.yaml"), "{stderr}");
    let out = tcptwin(&dir, &["check", "ok.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_and_artifact_paths_that_cannot_be_written_are_refused_before_the_run() {
    let dir = temp_dir("outputs");
    std::fs::write(dir.join("hs.yaml"), HANDSHAKE).unwrap();
    std::fs::write(dir.join("a-file"), "").unwrap();
    std::fs::create_dir(dir.join("a-dir")).unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--json", "missing/r.json"],
            "--json missing/r.json: the directory missing does not exist",
        ),
        (&["--junit", "a-dir"], "--junit a-dir: is a directory"),
        (&["--html", "a-file"], "--html a-file: is a file"),
        (
            &["--artifacts", "a-file/x"],
            "--artifacts a-file/x: cannot be made",
        ),
        (
            &["--json", "a-file/r.json"],
            "--json a-file/r.json: the directory a-file does not exist",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run"];
        if flags[0] != "--artifacts" {
            args.extend(["--artifacts", "art"]);
        }
        args.extend_from_slice(flags);
        args.push("hs.yaml");
        let out = tcptwin(&dir, &args);
        let stderr = usage_error(&out, 1);
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
    assert!(
        !dir.join("art/hs").exists(),
        "no case ran, so no capture was written"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zero_jobs_and_zero_repeats_are_usage_errors() {
    let dir = temp_dir("zero");
    std::fs::write(dir.join("hs.yaml"), HANDSHAKE).unwrap();
    let commands: [&[&str]; 3] = [
        &["run", "--jobs", "0", "hs.yaml"],
        &["run", "--repeat", "0", "hs.yaml"],
        &["fuzz", "--jobs", "0", "--cases", "1"],
    ];
    for args in commands {
        let out = tcptwin(&dir, args);
        let stderr = usage_error(&out, 1);
        assert!(stderr.contains("0 would run nothing"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_and_run_agree_on_an_empty_directory() {
    let dir = temp_dir("empty");
    std::fs::create_dir(dir.join("none")).unwrap();
    let check = usage_error(&tcptwin(&dir, &["check", "none"]), 1);
    let run = usage_error(&tcptwin(&dir, &["run", "none"]), 1);
    assert_eq!(check, run);
    assert_eq!(check, "tcptwin: no case files (*.yaml, *.yml) in none\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_symlink_loop_is_one_line() {
    let dir = temp_dir("loop");
    std::fs::create_dir(dir.join("cases")).unwrap();
    std::fs::write(dir.join("cases/hs.yaml"), HANDSHAKE).unwrap();
    std::os::unix::fs::symlink("..", dir.join("cases/up")).unwrap();
    for command in ["check", "run"] {
        let stderr = usage_error(&tcptwin(&dir, &[command, "cases"]), 1);
        assert!(
            stderr.contains("cases/up/cases: a symbolic link loop (it leads back to "),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn case_file_errors_carry_file_line_column_and_field_and_are_said_once() {
    let dir = temp_dir("messages");
    std::fs::write(
        dir.join("calls.yaml"),
        "name: calls\nsteps:\n  - close\nexpect:\n  calls:\n    - { call: connect, result: \"0\" }\n",
    )
    .unwrap();
    std::fs::write(dir.join("name.yaml"), "name: a b\nsteps:\n  - close\n").unwrap();
    let out = tcptwin(&dir, &["check", "."]);
    let stderr = usage_error(&out, 3);
    assert!(
        stderr.contains("calls.yaml:6:7: field `expect.calls[0]`: asks for connect call #1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("name.yaml:1:1: field `name`: 'a b': use letters"),
        "{stderr}"
    );
    let out = tcptwin(&dir, &["run", "--filter", "nothing-like-it", "."]);
    usage_error(&out, 3);
    std::fs::remove_file(dir.join("calls.yaml")).unwrap();
    std::fs::remove_file(dir.join("name.yaml")).unwrap();
    std::fs::write(dir.join("hs.yaml"), HANDSHAKE).unwrap();
    let out = tcptwin(&dir, &["run", "--filter", "nothing-like-it", "."]);
    let stderr = usage_error(&out, 1);
    assert_eq!(
        stderr,
        "tcptwin: --filter 'nothing-like-it' matched no case's name or tag\n"
    );
    let out = tcptwin(&dir, &["check", "missing.yaml"]);
    let stderr = usage_error(&out, 1);
    assert_eq!(
        stderr.matches("No such file").count(),
        1,
        "the cause is said once: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the report formats ----

#[test]
fn the_schema_refuses_rust_enum_shapes_and_missing_fields() {
    let _turn = turn();
    let dir = temp_dir("schema");
    std::fs::write(dir.join("hs.yaml"), HANDSHAKE).unwrap();
    let out = tcptwin(
        &dir,
        &["run", "--vs", "none", "--json", "r.json", "hs.yaml"],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let good = valid_report(&dir.join("r.json"));
    let validator = schema();
    let frame = "/results/0/trace/frames/2";
    let spoilt: [(&str, serde_json::Value); 6] = [
        ("/format_version", serde_json::json!(2)),
        (&format!("{frame}/dir"), serde_json::json!("Out")),
        (
            &format!("{frame}/norm/ip/id"),
            serde_json::json!({ "Delta": 0 }),
        ),
        (
            &format!("{frame}/norm/sport"),
            serde_json::json!("Ephemeral"),
        ),
        (&format!("{frame}/norm/flags"), serde_json::json!(2)),
        ("/summary/passed", serde_json::json!(-1)),
    ];
    for (pointer, value) in spoilt {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} is in the report")) = value.clone();
        assert!(
            !validator.is_valid(&bad),
            "{pointer} = {value} must be refused"
        );
    }
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("kernel");
    assert!(!validator.is_valid(&bad), "a missing field must be refused");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn junit_has_one_grouped_failure_per_case_across_rounds() {
    use tcptwin::case::LoadedCase;
    use tcptwin::judge::diff::Divergence;
    use tcptwin::run::{self, PairVerdict};
    let _turn = turn();
    let dir = temp_dir("junit");
    let loaded = LoadedCase::parse(&dir.join("hs.yaml"), HANDSHAKE).unwrap();
    let kernel = tcptwin::dut::KernelDut;
    let passed = run::run_pair(&loaded, &kernel, &kernel, None);
    // An extra frame on one side differs in each of its fields: one finding.
    let mut diverged = passed.clone();
    diverged.verdict = PairVerdict::Diverged;
    diverged.divergences = (0..24)
        .map(|i| Divergence {
            path: format!("frame[9].field{i}"),
            reference: "absent".into(),
            other: "x".into(),
            tolerance_ms: None,
            known: None,
        })
        .chain([Divergence {
            path: "call[1].result".into(),
            reference: "0".into(),
            other: "ECONNREFUSED".into(),
            tolerance_ms: None,
            known: None,
        }])
        .collect();
    let path = dir.join("j.xml");
    tcptwin::report::junit::write_pairs(&path, &[diverged, passed]).unwrap();
    let xml = std::fs::read_to_string(&path).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 1, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(
        xml.contains("message=\"2 findings: frame[9] (on one side only, 24 fields), call[1] (1 field) (in 1 of 2 rounds)\""),
        "{xml}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- fuzz output ----

#[test]
fn a_fuzz_survey_calls_nothing_minimal_and_replay_lines_quote_their_paths() {
    let _turn = turn();
    let dir = temp_dir("fuzz");
    // A save directory whose path a shell would split.
    let save = dir.join("saved cases");
    let out = tcptwin(
        &dir,
        &[
            "fuzz",
            "--cases",
            "23",
            "--seed",
            "133",
            "--max-timer",
            "0",
            "--jobs",
            "8",
            "--mutation",
            "no-min-snd-mss",
            "--no-shrink",
            "--all",
            "--save",
            save.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" as drawn ("), "{}", text(&out));
    assert!(!stdout.contains("minimal"), "{}", text(&out));
    let saved: Vec<PathBuf> = std::fs::read_dir(&save)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!saved.is_empty(), "{}", text(&out));
    for file in saved {
        let yaml = std::fs::read_to_string(&file).unwrap();
        let replay = format!(
            "# Replay: tcptwin run '{}' --mutation no-min-snd-mss",
            file.display()
        );
        assert!(yaml.contains(&replay), "{replay}\n{yaml}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
