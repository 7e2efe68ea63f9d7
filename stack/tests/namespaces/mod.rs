//! Helpers shared by the tests that run in real network namespaces (netns.rs, rx_ring.rs).

use std::process::Command;

/// Runs `ip` with `args` in the calling thread's network namespace; its stderr on failure.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
