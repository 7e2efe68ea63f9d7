//! The VM DUT end to end: Linux 6.1 booted under qemu, one case through its agent, and the
//! SYN schedule that tells 6.1 from 6.18. Skipped, with the reason, where qemu or the
//! kernel image is not in tcptwin's cache (ci/setup-vm puts them there).

mod common;

use std::path::{Path, PathBuf};

use tcptwin::case::LoadedCase;
use tcptwin::dut::{KernelDut, StackDut};
use tcptwin::run::{self, PairVerdict, Verdict};
use tcptwin::vm::{VmError, VmKernelDut};
use tcptwin_stack::config::Profile;

fn loaded(name: &str) -> LoadedCase {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cases")
        .join(format!("{name}.yaml"));
    LoadedCase::load(&path).unwrap()
}

#[test]
fn linux_6_1_boots_runs_a_case_and_backs_off_exponentially() {
    let vm = match VmKernelDut::boot("6.1", Path::new(env!("CARGO_BIN_EXE_tcptwin"))) {
        Ok(vm) => vm,
        Err(VmError::Assets(why)) => {
            common::skip(&format!("the VM DUT is not available here: {why}"));
            return;
        }
        Err(e) => panic!("the VM did not boot: {e}"),
    };
    eprintln!("{}", vm.describe());
    assert!(vm.boot.hello.kernel_release.starts_with("6.1."));

    // One case through the agent: the guest's own namespaces, capture, peer and kernel.
    let result = run::run_case(&loaded("handshake-default"), &vm, None);
    let text = tcptwin::report::case_text(&result, true);
    assert_eq!(result.verdict, Verdict::Pass, "{text}");
    let trace = result.trace.as_ref().unwrap();
    let labels: Vec<String> = trace.frames.iter().map(|f| f.label()).collect();
    assert_eq!(
        labels[..4],
        ["> ARP who-has", "< ARP reply", "> S", "< S."],
        "{text}"
    );
    assert!(trace
        .calls
        .iter()
        .any(|c| c.record.call == "connect" && c.record.outcome == "0"));

    // tcp_syn_retries=2: 6.18 retransmits linearly (and more often), 6.1 at 1 s then 2 s.
    let syn = loaded("syn-retries-2");
    let (vs_kernel, vs_stack) = std::thread::scope(|s| {
        let k = s.spawn(|| run::run_pair(&syn, &vm, &KernelDut, None));
        let st = run::run_pair(
            &syn,
            &vm,
            &StackDut {
                profile: Profile::V6_1,
                ..StackDut::default()
            },
            None,
        );
        (k.join().unwrap(), st)
    });
    assert_eq!(vs_kernel.verdict, PairVerdict::Diverged);
    assert!(
        vs_kernel
            .divergences
            .iter()
            .any(|d| d.path.ends_with(".interval")
                || d.other == "absent"
                || d.reference == "absent"),
        "{:?}",
        vs_kernel.divergences
    );
    assert_eq!(
        vs_stack.verdict,
        PairVerdict::Pass,
        "{}",
        tcptwin::report::pair_text(&vs_stack, true)
    );
}
