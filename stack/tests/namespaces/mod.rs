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

/// Waits until `dev` is operationally up: the kernel attaches a veth's queueing
/// discipline (linkwatch → `dev_activate`) only then, and drops what is sent before.
pub fn wait_until_up(dev: &str) -> Result<(), String> {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = Command::new("ip")
            .args(["-br", "link", "show", "dev", dev])
            .output()
            .map_err(|e| format!("ip: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.split_whitespace().nth(1) == Some("UP") {
            return Ok(());
        }
        if std::time::Instant::now() > give_up {
            return Err(format!("{dev} is not up after 5 s: {text}"));
        }
        // Polling the state, not waiting for it to have changed: a pause between looks.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
