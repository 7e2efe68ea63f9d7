//! The false-alarm check: the kernel against itself over every case, twice, must report no
//! divergence at all. Alone in its test binary so its timing is not disturbed by other tests.

use std::path::Path;

use tcptwin::case;
use tcptwin::dut::KernelDut;
use tcptwin::runner::{self, LoadedCase, PairVerdict};

#[test]
fn the_kernel_against_itself_never_diverges() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let cases: Vec<LoadedCase> = case::discover(&[dir])
        .unwrap()
        .into_iter()
        .map(|path| LoadedCase::load(&path).unwrap())
        .collect();
    for round in 0..2 {
        let results = runner::run_each(
            &cases,
            runner::DEFAULT_JOBS,
            |c| runner::run_pair(c, &KernelDut, &KernelDut, None),
            |_, _| {},
        );
        let bad: Vec<String> = results
            .iter()
            .filter(|r| r.verdict != PairVerdict::Pass)
            .map(|r| tcptwin::report::pair_text(r, false))
            .collect();
        assert!(bad.is_empty(), "round {round}:\n{}", bad.join("\n"));
    }
}
