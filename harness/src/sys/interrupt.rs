//! Ctrl-C (SIGINT) and SIGTERM: the first one stops the run cleanly (no new case starts,
//! running ones are cut short and reported as interrupted, finished ones are still
//! reported) and the process exits with 128 + the signal's number (130, 143); a second
//! one ends the process at once with that code. Either way the kernel frees every
//! namespace the run made, since they are held by descriptors only.

use std::sync::atomic::{AtomicI32, Ordering};

/// The first stopping signal received, 0 before any.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    let first = SIGNAL
        .compare_exchange(0, signal, Ordering::AcqRel, Ordering::Acquire)
        .unwrap_or_else(|earlier| earlier);
    if first != 0 {
        // The second signal: leave now, with the first one's code (async-signal-safe).
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + first) };
    }
}

/// Installs the SIGINT and SIGTERM handlers (call once, early in `main`).
pub fn install() {
    // SAFETY: sigaction with a handler that only touches an atomic and calls _exit.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

/// Whether the user asked the run to stop.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::Acquire) != 0
}

/// The exit code an interrupted process ends with (128 + the signal: 130 for SIGINT, 143
/// for SIGTERM), or None when no signal came.
pub fn exit_code() -> Option<u8> {
    match SIGNAL.load(Ordering::Acquire) {
        0 => None,
        signal => u8::try_from(128 + signal).ok(),
    }
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
