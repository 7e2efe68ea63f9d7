//! Ctrl-C: the first one stops the run cleanly (no new case starts, running ones are cut
//! short and reported as interrupted, finished ones are still reported); a second one
//! ends the process at once. Either way the kernel frees every namespace the run made,
//! since they are held by descriptors only.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::AcqRel) {
        // Second Ctrl-C: leave now (async-signal-safe).
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Installs the SIGINT and SIGTERM handlers (call once, early in `main`).
pub fn install() {
    // SAFETY: sigaction with a handler that only touches an atomic and calls _exit.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

/// Whether the user asked the run to stop.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::Acquire)
}

/// Waits on `rx` up to `limit`, in short slices so an interrupt is noticed.
pub fn recv_timeout<T>(
    rx: &std::sync::mpsc::Receiver<T>,
    limit: std::time::Duration,
) -> Result<T, std::sync::mpsc::RecvTimeoutError> {
    let until = std::time::Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || requested() {
            return Err(std::sync::mpsc::RecvTimeoutError::Timeout);
        }
        match rx.recv_timeout(left.min(std::time::Duration::from_millis(50))) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            other => return other,
        }
    }
}
