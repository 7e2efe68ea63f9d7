//! How late a thread's timers fire here, and the timing allowance that follows from it.
//!
//! Every timing tolerance assumes the measured threads wake when their timer fires: as root
//! they run at `SCHED_FIFO` ([`crate::sys::priority`]). Two kinds of run cannot promise that: a
//! kernel under emulation ([`crate::vm`], measured in the guest at boot) and a rootless run,
//! whose measured threads compete with everything else on the host at nice 0 (measured
//! here at the start of the run). Both widen every tolerance by what they measured, and
//! every report prints the widening with its basis.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::linux::timing;
use crate::record::TimingAllowance;

/// Timer lateness measured by `threads` threads that each sleep `samples` times for
/// `nominal_ms` (poll(2), an hrtimer, no timer-wheel rounding), so what exceeds the nominal
/// is the scheduler's delay (and an emulator's) alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    pub threads: usize,
    pub samples: usize,
    pub nominal_ms: f64,
    pub median_late_ms: f64,
    pub max_late_ms: f64,
}

impl Calibration {
    /// The extra tolerance for an interval between two events: each end can be late by the
    /// worst lateness measured, so twice it, rounded up to whole jiffies (at least one).
    /// `whose` says whose timers were measured and when, for the basis.
    pub fn allowance(&self, whose: &str) -> TimingAllowance {
        let jiffies = (2.0 * self.max_late_ms / timing::JIFFY_MS).ceil().max(1.0);
        let extra_ms = jiffies * timing::JIFFY_MS;
        TimingAllowance {
            extra_ms,
            basis: format!(
                "2 x the worst {whose} ({:.2} ms; median {:.2} ms; {} x {} sleeps of {} ms \
                 on {} threads), rounded up to a jiffy",
                self.max_late_ms,
                self.median_late_ms,
                self.threads,
                self.samples,
                self.nominal_ms,
                self.threads
            ),
        }
    }
}

/// The timing allowance of a run whose measured threads lack real-time priority, once
/// [`measure_scheduling_allowance`] measured it.
static SCHEDULING_ALLOWANCE: OnceLock<TimingAllowance> = OnceLock::new();

/// Where [`crate::sys::priority::setup`] found real-time priority refused: measures how late measured threads wake
/// on this host now (2 threads, 100 sleeps of 10 ms: a second) and keeps the allowance that
/// follows for [`scheduling_allowance`]. Call once before the cases start, so the
/// measurement sees the host's load and not the harness's own. `None` where real-time
/// priority was granted: those threads preempt the host's work and need no allowance.
pub fn measure_scheduling_allowance() -> Option<&'static TimingAllowance> {
    crate::sys::priority::realtime_refused()?;
    Some(SCHEDULING_ALLOWANCE.get_or_init(|| {
        calibrate(2, 100, Duration::from_millis(10)).allowance(
            "wake-up lateness of a measured thread without real-time priority, measured \
             before the cases started",
        )
    }))
}

/// The allowance [`measure_scheduling_allowance`] measured, if it ran and was needed.
pub fn scheduling_allowance() -> Option<&'static TimingAllowance> {
    SCHEDULING_ALLOWANCE.get()
}

/// Sleeps `nominal` `samples` times on each of `threads` measured threads at once (started
/// by [`crate::sys::priority::spawn_measured`], so at the priority the DUTs get) and records how
/// late each wake-up was.
pub fn calibrate(threads: usize, samples: usize, nominal: Duration) -> Calibration {
    let handles: Vec<_> = (0..threads)
        .filter_map(|_| {
            crate::sys::priority::spawn_measured("calibrate", move || {
                (0..samples)
                    .map(|_| {
                        let t0 = Instant::now();
                        // SAFETY: poll with no descriptors is a plain sleep.
                        unsafe { libc::poll(std::ptr::null_mut(), 0, nominal.as_millis() as i32) };
                        (t0.elapsed().as_secs_f64() - nominal.as_secs_f64()) * 1e3
                    })
                    .collect::<Vec<f64>>()
            })
            .ok()
        })
        .collect();
    let mut late: Vec<f64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect();
    late.sort_by(f64::total_cmp);
    Calibration {
        threads,
        samples,
        nominal_ms: nominal.as_secs_f64() * 1e3,
        median_late_ms: late.get(late.len() / 2).copied().unwrap_or(0.0).max(0.0),
        max_late_ms: late.last().copied().unwrap_or(0.0).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(max_late_ms: f64) -> Calibration {
        Calibration {
            threads: 2,
            samples: 10,
            nominal_ms: 10.0,
            median_late_ms: 0.1,
            max_late_ms,
        }
    }

    #[test]
    fn the_allowance_is_twice_the_worst_lateness_in_whole_jiffies() {
        assert_eq!(measured(0.2).allowance("x").extra_ms, 4.0);
        assert_eq!(measured(2.1).allowance("x").extra_ms, 8.0);
        assert_eq!(measured(4.5).allowance("x").extra_ms, 12.0);
        let basis = measured(4.5).allowance("wake-up lateness here").basis;
        assert!(basis.contains("wake-up lateness here (4.50 ms"), "{basis}");
    }

    #[test]
    fn calibration_sleeps_every_sample_before_it_reports() {
        let started = Instant::now();
        let c = calibrate(2, 3, Duration::from_millis(5));
        // Each thread slept 3 x 5 ms; the threads run at once.
        assert!(started.elapsed() >= Duration::from_millis(15), "{c:?}");
        assert_eq!((c.threads, c.samples, c.nominal_ms), (2, 3, 5.0));
        assert!(c.max_late_ms >= c.median_late_ms, "{c:?}");
    }
}
