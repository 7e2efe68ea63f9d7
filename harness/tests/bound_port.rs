//! A port the case binds is judged as a fixed value: the kernel against itself passes on a
//! case binding 5555 (outside the ephemeral range, and odd), and a DUT that ignores bind()
//! and picks a port of its own diverges.

use std::path::Path;

use tcptwin::case::LoadedCase;
use tcptwin::case::{Case, Step};
use tcptwin::dut::{Dut, DutError, KernelDut, Running};
use tcptwin::net::topology::Topology;
use tcptwin::run::{self, PairVerdict};

fn bind_case() -> LoadedCase {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/bind-port-5555.yaml");
    let loaded = LoadedCase::load(&path).unwrap();
    assert_eq!(loaded.case.bind_ports(), [5555]);
    loaded
}

#[test]
fn the_kernel_against_itself_passes_a_case_binding_an_explicit_port() {
    let result = run::run_pair(&bind_case(), &KernelDut, &KernelDut, None);
    assert_eq!(
        result.verdict,
        PairVerdict::Pass,
        "{}",
        tcptwin::report::pair_text(&result, false)
    );
    let trace = result.reference.trace.as_ref().unwrap();
    assert_eq!(trace.raw.dut_port, Some(5555));
    assert!(trace.text().contains("198.18.0.1:5555 > 198.18.0.2:80"));
}

/// The kernel, with every `bind` step's port turned into 0: its bind() succeeds, and
/// connect() picks an ephemeral port.
struct IgnoresBindPort;

impl Dut for IgnoresBindPort {
    fn name(&self) -> &'static str {
        "kernel-ignoring-bind-port"
    }

    fn kernel_owns_address(&self) -> bool {
        true
    }

    fn run_steps(&self, topology: &Topology, case: &Case) -> Result<Running, DutError> {
        let mut ignored = case.clone();
        for step in &mut ignored.steps {
            if let Step::Bind(bind) = step {
                bind.port = 0;
            }
        }
        KernelDut.run_steps(topology, &ignored)
    }
}

#[test]
fn a_dut_leaving_from_another_port_than_the_bound_one_diverges() {
    let result = run::run_pair(&bind_case(), &KernelDut, &IgnoresBindPort, None);
    assert_eq!(result.verdict, PairVerdict::Diverged);
    let port = result.other.trace.as_ref().unwrap().raw.dut_port.unwrap();
    let found: Vec<(&str, &str, &str)> = result
        .divergences
        .iter()
        .map(|d| (d.path.as_str(), d.reference.as_str(), d.other.as_str()))
        .collect();
    let port = port.to_string();
    assert!(
        found.contains(&("property.port_bound", "5555", port.as_str())),
        "{found:?}"
    );
    assert!(
        found.contains(&("frame[2].tcp.sport", "5555", port.as_str())),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(path, ..)| path.starts_with("property.port_in")),
        "{found:?}"
    );
}
