//! Checks made once, after the case files parsed and before any case runs, that need the
//! host: every sysctl a case names must exist in a namespace built like the DUT's, and its
//! kernel must take the case's value.
//!
//! The parser can only check a sysctl's shape (`net.` and `[a-z0-9_]` parts); whether this
//! kernel has it depends on its version, its config, and the namespace (per-device names
//! such as `net.ipv4.neigh.eth0.retrans_time_ms` exist only once `eth0` does; `net.core.*`
//! is hidden in a namespace owned by an unprivileged user namespace). So a probe topology
//! is built exactly as a run builds one, with the DUT's `eth0`, and each name is looked up
//! under its `/proc/sys` inside the DUT namespace. A missing one is a load error naming the
//! file, line, column and field, as a parse error does.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::case::CaseError;
use crate::case::LoadedCase;
use crate::net::sysctl;
use crate::net::topology::{Topology, TopologyError, TopologySpec};

/// The sysctls among `cases`' that this host's DUT namespace lacks or whose value its
/// kernel refuses (`tcp_syn_retries: 1000`, `ip_local_port_range: "60000 1000"`), each as a
/// load error pointing at the key in its file. Builds no namespace when no case sets a
/// sysctl.
///
/// A value is tried by writing it in the probe's DUT namespace (as a run's topology does,
/// `crate::net::sysctl::write`, i.e. the kernel's own `proc_handler` judges it) and putting the
/// previous value back, so each value is judged alone, on a namespace's defaults.
pub fn refused_sysctls(cases: &[LoadedCase]) -> Result<Vec<CaseError>, TopologyError> {
    let names: std::collections::BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.case.sysctls.keys().map(|k| k.0.as_str()))
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let values: std::collections::BTreeSet<(String, String)> = cases
        .iter()
        .flat_map(|c| {
            c.case
                .sysctls
                .iter()
                .map(|(k, v)| (k.0.clone(), v.to_string()))
        })
        .collect();
    let probe = Topology::build(&TopologySpec {
        family: crate::case::IpFamily::Inet,
        mtu: 1500,
        dut_ip: Some(Ipv4Addr::new(198, 18, 0, 1).into()),
        prefix: 24,
        peer_ip: Ipv4Addr::new(198, 18, 0, 2).into(),
        routes: Vec::new(),
        sysctls: Vec::new(),
        dut_kernel_address: true,
    })?;
    let (missing, refused) = probe.dut.run(|| {
        let missing: std::collections::BTreeSet<String> = names
            .iter()
            .filter(|name| !sysctl::path_of(name).is_file())
            .map(|name| name.to_string())
            .collect();
        let refused: std::collections::BTreeMap<(String, String), String> = values
            .iter()
            .filter(|(name, _)| !missing.contains(name))
            .filter_map(|(name, value)| {
                let before = sysctl::read(name).ok()?;
                match sysctl::write(name, value) {
                    Ok(()) => {
                        let _ = sysctl::write(name, &before);
                        None
                    }
                    Err(sysctl::SysctlError::Refused { source, .. }) => {
                        Some(((name.clone(), value.clone()), refusal_text(&source)))
                    }
                    Err(e) => Some(((name.clone(), value.clone()), e.to_string())),
                }
            })
            .collect();
        (missing, refused)
    })?;
    let mut errors = Vec::new();
    for loaded in cases {
        let mut here: Vec<CaseError> = loaded
            .case
            .sysctls
            .iter()
            .filter_map(|(name, value)| {
                if missing.contains(&name.0) {
                    return Some(missing_error(&loaded.path, &name.0));
                }
                let why = refused.get(&(name.0.clone(), value.to_string()))?;
                Some(refused_error(
                    &loaded.path,
                    &name.0,
                    &value.to_string(),
                    why,
                ))
            })
            .collect();
        here.sort_by_key(|e| match e {
            CaseError::Parse { line, column, .. } => (*line, *column),
            _ => (0, 0),
        });
        errors.extend(here);
    }
    Ok(errors)
}

/// An error about sysctl `name`, located at its key in the case file.
fn sysctl_error(path: &Path, name: &str, message: String) -> CaseError {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (line, column) = locate_key(&text, name).unwrap_or((0, 0));
    CaseError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        field: format!("sysctls.{name}"),
        message,
    }
}

fn missing_error(path: &Path, name: &str) -> CaseError {
    let message = format!(
        "sysctl {name} does not exist on this host ({} is missing in a namespace built like \
         the DUT's, with its interface eth0)",
        sysctl::path_of(name).display()
    );
    sysctl_error(path, name, message)
}

/// Why the kernel refused a value, in words (the errno's text without Rust's `(os error
/// N)` suffix).
fn refusal_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn refused_error(path: &Path, name: &str, value: &str, why: &str) -> CaseError {
    let message = format!(
        "this host's kernel refuses the value '{value}' for sysctl {name} ({why}); see its \
         range in the kernel's Documentation/networking/ip-sysctl.rst"
    );
    sysctl_error(path, name, message)
}

/// Line and column (1-based) of `key` used as a mapping key after the top-level `sysctls:`,
/// bare or quoted, in block or flow style.
pub fn locate_key(text: &str, key: &str) -> Option<(u64, u64)> {
    let mut in_sysctls = false;
    for (index, line) in text.lines().enumerate() {
        if !line.starts_with([' ', '\t', '#', '-']) && !line.is_empty() {
            in_sysctls = line.starts_with("sysctls:") || line.starts_with("\"sysctls\":");
        }
        if !in_sysctls {
            continue;
        }
        let mut from = 0;
        while let Some(found) = line[from..].find(key) {
            let at = from + found;
            let rest = line[at + key.len()..].trim_start_matches(['"', '\'']);
            let before = line[..at].chars().last();
            let starts_token = before.is_none_or(|c| " \t{,\"'".contains(c));
            if starts_token && rest.trim_start().starts_with(':') {
                let column = line[..at].chars().count() as u64 + 1;
                let column = if matches!(before, Some('"' | '\'')) {
                    column - 1
                } else {
                    column
                };
                return Some((index as u64 + 1, column));
            }
            from = at + key.len();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_block_flow_and_quoted_style() {
        let text = "name: x\nsysctls:\n  net.ipv4.tcp_sack: 0\n  net.ipv4.tcp_sack_x: 1\n";
        assert_eq!(locate_key(text, "net.ipv4.tcp_sack"), Some((3, 3)));
        assert_eq!(locate_key(text, "net.ipv4.tcp_sack_x"), Some((4, 3)));
        let flow = "name: x\nsysctls: { net.a.b: 1, \"net.a.c\": 2 }\n";
        assert_eq!(locate_key(flow, "net.a.b"), Some((2, 12)));
        assert_eq!(locate_key(flow, "net.a.c"), Some((2, 24)));
        let elsewhere = "description: net.a.b: is mentioned\nsysctls:\n  net.a.b: 1\n";
        assert_eq!(locate_key(elsewhere, "net.a.b"), Some((3, 3)));
    }
}
