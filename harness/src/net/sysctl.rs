//! Sysctls by their Linux names, written under `/proc/sys` from inside a namespace.
//!
//! `/proc/sys/net` shows the network namespace of the thread that opens it, so these
//! functions must run on a thread that has entered the namespace (see [`crate::net::netns`]).

use std::path::PathBuf;

/// Why a sysctl could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl {name}: not present in this kernel's network namespace ({path})")]
    Missing { name: String, path: String },
    #[error("sysctl {name} = {value}: the kernel refused it: {source}")]
    Refused {
        name: String,
        value: String,
        source: std::io::Error,
    },
}

/// The `/proc/sys` path of a dotted sysctl name (`net.ipv4.tcp_sack` → `/proc/sys/net/ipv4/tcp_sack`).
/// Interface names may contain dots in Linux, but tcptwin names its interfaces without them.
pub fn path_of(name: &str) -> PathBuf {
    let mut path = PathBuf::from("/proc/sys");
    for part in name.split('.') {
        path.push(part);
    }
    path
}

/// Writes one sysctl in the calling thread's network namespace.
pub fn write(name: &str, value: &str) -> Result<(), SysctlError> {
    let path = path_of(name);
    if !path.exists() {
        return Err(SysctlError::Missing {
            name: name.into(),
            path: path.display().to_string(),
        });
    }
    std::fs::write(&path, format!("{value}\n")).map_err(|source| SysctlError::Refused {
        name: name.into(),
        value: value.into(),
        source,
    })
}

/// Reads one sysctl in the calling thread's network namespace, whitespace-normalized.
pub fn read(name: &str) -> std::io::Result<String> {
    let raw = std::fs::read_to_string(path_of(name))?;
    Ok(raw.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Disables IPv6 for every interface made from now on in this namespace, so no ND/MLD or
/// link-local address appears on the wire. Kernels built without IPv6 have nothing to do.
pub fn disable_ipv6() -> Result<(), SysctlError> {
    for name in [
        "net.ipv6.conf.default.disable_ipv6",
        "net.ipv6.conf.all.disable_ipv6",
    ] {
        match write(name, "1") {
            Ok(()) | Err(SysctlError::Missing { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_map_to_proc_paths() {
        assert_eq!(
            path_of("net.ipv4.neigh.eth0.retrans_time_ms"),
            PathBuf::from("/proc/sys/net/ipv4/neigh/eth0/retrans_time_ms")
        );
    }

    #[test]
    fn a_missing_sysctl_is_named() {
        let err = write("net.ipv4.no_such_knob", "1").unwrap_err();
        assert!(err.to_string().contains("net.ipv4.no_such_knob"), "{err}");
    }
}
