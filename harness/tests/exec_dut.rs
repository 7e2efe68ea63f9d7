//! A program speaking the DUT protocol as a DUT, end to end in real namespaces (root and
//! python3 needed): the kernel-sockets reference adapter agrees with the kernel, and an
//! adapter that breaks the protocol gets an `error` verdict that says how, and leaves no
//! process behind.

use std::path::{Path, PathBuf};

use tcptwin::case::LoadedCase;
use tcptwin::dut::exec::SocketFamily;
use tcptwin::dut::{Dut, ExecDut, KernelDut};
use tcptwin::run::{self, PairVerdict, Verdict};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn loaded(name: &str) -> LoadedCase {
    LoadedCase::load(&repo().join("cases").join(format!("{name}.yaml"))).unwrap()
}

fn kernel_adapter() -> ExecDut {
    let script = repo().join("adapters/kernel/tcptwin_kernel_adapter.py");
    ExecDut::start(&format!("python3 {}", script.display())).expect("the reference adapter starts")
}

fn broken_command(mode: &str) -> String {
    let script = repo().join("harness/tests/fixtures/broken_adapter.py");
    format!("python3 {} {mode}", script.display())
}

/// The processes still running the broken adapter in `mode`.
fn leftover(mode: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains("broken_adapter.py") && text.trim_end().ends_with(mode) {
            found.push(text);
        }
    }
    found
}

#[test]
fn the_kernel_sockets_adapter_agrees_with_the_kernel() {
    let exec = kernel_adapter();
    assert_eq!(exec.hello().name, "kernel-sockets");
    for name in [
        "handshake-default",
        "rst-econnrefused",
        "nonblocking-refused-poll-so-error",
        "tcp-maxseg-87-einval",
        "connect-bad-addrlen-einval",
        "bind-port-5555",
        "peer-sends-data-and-fin",
    ] {
        let pair = run::run_pair(&loaded(name), &KernelDut, &exec, None);
        assert_eq!(
            pair.verdict,
            PairVerdict::Pass,
            "{name}:\n{}",
            tcptwin::report::pair_text(&pair, true)
        );
    }
}

#[test]
fn the_kernel_sockets_adapter_runs_inet6_and_v4_mapped_cases() {
    // It declares AF_INET6, so `socket` carries the family and the kernel's AF_INET6
    // socket gets the raw sockaddr_in6 (or v4-mapped) bytes the kernel DUT passes.
    let exec = kernel_adapter();
    assert!(exec.hello().families.contains(&SocketFamily::Inet6));
    for name in [
        "inet6/v6-handshake",
        "inet6/v6-rst-econnrefused",
        "inet6/v6-connect-sockaddr-errors",
        "inet6/v6-tclass",
        "inet6/v4mapped-handshake",
        "inet6/v4mapped-v6only-enetunreach",
    ] {
        let pair = run::run_pair(&loaded(name), &KernelDut, &exec, None);
        assert_eq!(
            pair.verdict,
            PairVerdict::Pass,
            "{name}:\n{}",
            tcptwin::report::pair_text(&pair, true)
        );
        let first = pair.other.trace.as_ref().and_then(|t| t.calls.first());
        assert!(
            first.is_some_and(|c| c.record.call == "socket"
                && c.record.args == "AF_INET6, SOCK_STREAM"
                && c.record.errno.is_none()),
            "{name}: {first:?}"
        );
    }
}

#[test]
fn an_adapter_declaring_no_families_is_unsupported_for_inet6_and_v4_mapped() {
    // The broken adapter's hello has no `families`: AF_INET only.
    let exec = ExecDut::start(&broken_command("wrong-errno")).unwrap();
    assert_eq!(
        exec.hello().families.iter().collect::<Vec<_>>(),
        [&SocketFamily::Inet]
    );
    for (name, family) in [
        ("inet6/v6-handshake", "inet6"),
        ("inet6/v4mapped-handshake", "v4-mapped"),
    ] {
        let result = run::run_case(&loaded(name), &exec, None);
        let why = result.error.unwrap_or_default();
        assert_eq!(result.verdict, Verdict::Unsupported, "{name}: {why}");
        assert_eq!(
            why,
            format!("family {family} needs AF_INET6 sockets; exec:broken makes AF_INET only")
        );
    }
    // An inet case still reaches it.
    let result = run::run_case(&loaded("handshake-default"), &exec, None);
    assert_ne!(result.verdict, Verdict::Unsupported);
}

#[test]
fn a_case_with_a_step_the_adapter_lacks_is_unsupported() {
    let exec = ExecDut::start(&broken_command("wrong-errno")).unwrap();
    // The broken adapter offers connect and close only.
    let result = run::run_case(&loaded("tcp-maxseg-536"), &exec, None);
    assert_eq!(
        result.verdict,
        Verdict::Unsupported,
        "{}",
        result.error.unwrap_or_default()
    );
}

#[test]
fn a_valid_but_wrong_errno_is_a_divergence_not_an_error() {
    let exec = ExecDut::start(&broken_command("wrong-errno")).unwrap();
    let pair = run::run_pair(&loaded("handshake-default"), &KernelDut, &exec, None);
    assert_eq!(pair.verdict, PairVerdict::Diverged);
    assert!(
        pair.divergences
            .iter()
            .any(|d| d.path.starts_with("call[") && d.other.contains("ENETUNREACH")),
        "{:?}",
        pair.divergences
    );
}

#[test]
fn an_adapter_breaking_the_protocol_gets_an_error_that_says_how() {
    for (mode, says) in [
        ("bad-errno", "names no Linux errno: \"ECONNREFUSD\""),
        ("crash", "exit status: 3"),
        ("garbage", "is not a reply"),
        ("no-ret", "neither ret nor errno"),
        ("hang", "time limit"),
    ] {
        let exec = ExecDut::start(&broken_command(mode)).unwrap();
        let text =
            format!("name: broken-{mode}\nsteps:\n  - connect: {{}}\n  - close\ntime_limit_s: 2\n");
        let case = LoadedCase::parse(Path::new("inline.yaml"), &text).unwrap();
        let result = run::run_case(&case, &exec, None);
        let error = result.error.clone().unwrap_or_default();
        assert_eq!(result.verdict, Verdict::Error, "{mode}: {error}");
        assert!(error.contains(says), "{mode}: {error}");
        if mode == "crash" {
            assert!(error.contains("adapter: giving up on connect"), "{error}");
        }
        assert_eq!(
            leftover(mode),
            Vec::<String>::new(),
            "{mode} left a process"
        );
    }
}

#[test]
fn a_hanging_adapter_against_a_kernel_that_returned_is_a_time_limit_divergence() {
    // From outside, an adapter that hangs in connect is a stack whose connect never
    // returns: where the kernel's returned, that is the divergence naming the call.
    let exec = ExecDut::start(&broken_command("hang")).unwrap();
    let text = "name: broken-hang-pair\nsteps:\n  - connect: {}\n  - close\n\
                peer:\n  syn:\n    - synack: {}\ntime_limit_s: 2\n";
    let case = LoadedCase::parse(Path::new("inline.yaml"), text).unwrap();
    let pair = run::run_pair(&case, &KernelDut, &exec, None);
    assert_eq!(
        pair.verdict,
        PairVerdict::Diverged,
        "{}\n{:?}\n{:?}",
        tcptwin::report::pair_text(&pair, true),
        pair.reference.error,
        pair.other.error
    );
    let first = &pair.divergences[0];
    assert_eq!(first.path, "time_limit");
    assert_eq!(
        first.other,
        "call[1] `connect` still blocked at the time limit"
    );
    assert_eq!(
        leftover("hang"),
        Vec::<String>::new(),
        "hang left a process"
    );
}

#[test]
fn a_bad_hello_is_refused_at_start() {
    let e = ExecDut::start(&broken_command("bad-hello"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a hello"), "{e}");
    let e = ExecDut::start(&broken_command("old-protocol"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("speaks protocol 2"), "{e}");
    let e = ExecDut::start("/nonexistent/adapter")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("closed its stdout") || e.contains("exited"),
        "{e}"
    );
    assert_eq!(leftover("bad-hello"), Vec::<String>::new());
}

#[test]
fn a_conformance_report_groups_an_adapters_divergences_into_classes() {
    let exec = ExecDut::start(&broken_command("wrong-errno")).unwrap();
    let results: Vec<_> = ["handshake-default", "rst-econnrefused", "tcp-maxseg-536"]
        .iter()
        .map(|name| run::run_pair(&loaded(name), &KernelDut, &exec, None))
        .collect();
    let about = [KernelDut.about(), exec.about()];
    let page = tcptwin::report::conformance::markdown("tcptwin run …", &about, &results);
    assert!(page.starts_with("# exec:broken against kernel"), "{page}");
    // What each side is: the adapter by its hello and command.
    assert!(page.contains("\n- Linux "), "{page}");
    assert!(
        page.contains("- broken, an adapter program speaking the DUT protocol 1"),
        "{page}"
    );
    assert!(page.contains("| diverged | 2 |"), "{page}");
    assert!(page.contains("| unsupported | 1 |"), "{page}");
    // Both diverged cases fail connect with ENETUNREACH: one class, two cases.
    assert!(
        page.contains("| `call[*].result` | 2 | handshake-default | 0 | ENETUNREACH |"),
        "{page}"
    );
    assert!(page.contains("| `frame[*] only in kernel` | 2 |"), "{page}");
    assert!(
        page.contains("| tcp-maxseg-536 | exec:broken has no `setsockopt` step |"),
        "{page}"
    );
    // The first class's example prints its traces; a later class of the same case says so.
    assert_eq!(
        page.matches("DIVERGED handshake-default").count(),
        1,
        "{page}"
    );
}
