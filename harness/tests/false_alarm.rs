//! The false-alarm check: the kernel against itself over every case, twice, must report no
//! divergence, judged as the gate judges one (`run --confirm 2`): a case that diverges runs
//! again alone, and counts as soon as a rerun diverges too. One no rerun repeats is the
//! host's timing noise under load, printed and not counted. Alone in its test binary so its
//! timing is not disturbed by other tests.

use std::path::Path;

use tcptwin::case::Suite;
use tcptwin::dut::KernelDut;
use tcptwin::run::{self, PairVerdict};

#[test]
fn the_kernel_against_itself_never_diverges() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let cases = Suite::load(&[dir]).unwrap().cases;
    for round in 0..2 {
        let mut results = run::run_each(
            &cases,
            run::DEFAULT_JOBS,
            |c| run::run_pair(c, &KernelDut, &KernelDut, None),
            |_, _| {},
        );
        for (result, case) in results.iter_mut().zip(&cases) {
            if result.verdict == PairVerdict::Diverged {
                run::confirm_pair(result, case, &KernelDut, &KernelDut, 2, None);
                eprintln!("{}", tcptwin::report::confirmation_line(result));
            }
        }
        let bad: Vec<String> = results
            .iter()
            .filter(|r| !matches!(r.verdict, PairVerdict::Pass | PairVerdict::Unconfirmed))
            .map(|r| tcptwin::report::pair_text(r, false))
            .collect();
        assert!(bad.is_empty(), "round {round}:\n{}", bad.join("\n"));
    }
}
