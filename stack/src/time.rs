//! Virtual time for the sans-IO core, and the Linux timer wheel rounding.
//!
//! The core never reads a clock: every entry point takes `now: Instant`, an
//! opaque count of nanoseconds since an epoch chosen by the caller (the driver
//! uses `CLOCK_MONOTONIC`; tests start at zero).

use core::fmt;
use core::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since an arbitrary epoch chosen by the caller.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

/// Nanoseconds per jiffy at the host's `CONFIG_HZ=250`.
pub const NANOS_PER_JIFFY: u64 = 4_000_000;
/// `HZ` of the kernel this stack mirrors (the host's `CONFIG_HZ`).
///
/// The harness keeps its own `HZ` and timer-wheel model (`harness/src/linux/timing.rs`) on
/// purpose: the judge must not share code with the implementation under test, or a bug
/// in the shared code would be invisible to it (both sides would agree on the wrong
/// thing).
pub const HZ: u64 = 250;

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }
    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms * 1_000_000)
    }
    /// From seconds since the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Instant(s * 1_000_000_000)
    }
    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Whole milliseconds since the epoch (the TCP timestamp clock, `tcp_clock_ms`).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
    /// Whole jiffies since the epoch (`jiffies` at HZ=250).
    ///
    /// With the driver's epoch (`CLOCK_MONOTONIC`) this is the kernel's tick
    /// count since boot, whose ticks are aligned to multiples of `TICK_NSEC`
    /// (`tick_init_jiffy_update`). The kernel's `jiffies` additionally starts
    /// at `INITIAL_JIFFIES` (2^32 − 300·HZ) and lags by a per-boot constant
    /// (measured via /proc/timer_list: `jiffies = INITIAL_JIFFIES +
    /// CLOCK_MONOTONIC/4 ms − 62` on one boot). That difference is
    /// [`crate::Config::jiffies_offset`], which [`timer_wheel_expiry`] adds
    /// to place timers on the kernel's bucket edges.
    pub const fn jiffies(self) -> u64 {
        self.0 / NANOS_PER_JIFFY
    }
    /// The instant at which jiffy `j` starts.
    pub const fn from_jiffies(j: u64) -> Self {
        Instant(j * NANOS_PER_JIFFY)
    }
    /// `self - earlier`, saturating at zero.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// `msecs_to_jiffies` (include/linux/jiffies.h): milliseconds to jiffies, rounded up.
pub const fn msecs_to_jiffies(ms: u64) -> u64 {
    ms.div_ceil(1000 / HZ)
}

/// `LVL_START(n)` of the timer wheel (kernel/time/timer.c) at HZ=250
/// (`LVL_CLK_SHIFT` 3, `LVL_BITS` 6): `(64 - 1) << ((n - 1) * 3)` jiffies.
const fn lvl_start(n: u32) -> u64 {
    63 << ((n - 1) * 3)
}

/// Granularity, in jiffies, of the timer-wheel level that a timer `delta`
/// jiffies ahead of the wheel clock lands in.
///
/// Mirrors the level choice of `calc_wheel_index` (kernel/time/timer.c): level
/// *n* covers deltas below `LVL_START(n+1)` with a granularity of `8^n` jiffies.
/// At HZ=250 that is: below 252 ms → 4 ms, below 2.016 s → 32 ms, below
/// 16.128 s → 256 ms, below 129.024 s → 2.048 s, and so on (§5.9 of
/// KERNEL-CONNECT.md rounds these bounds to 256 ms / 2.048 s / 16.384 s).
pub const fn wheel_granularity_jiffies(delta: u64) -> u64 {
    let mut lvl = 0u32;
    while lvl < 8 && delta >= lvl_start(lvl + 1) {
        lvl += 1;
    }
    1 << (3 * lvl)
}

/// When a kernel timer armed at `now` for `delay_jiffies` actually fires.
///
/// Mirrors `mod_timer` → `calc_wheel_index` → `calc_index` (kernel/time/timer.c):
/// the absolute expiry `jiffies + delay` is placed in a bucket of its level and
/// "rounded up with level granularity" to `((expires >> shift) + 1) << shift`,
/// so the timer fires strictly after its nominal expiry, up to one granularity
/// late (4 ms for timers below ~252 ms, 32 ms below ~2 s, 256 ms below ~16 s,
/// 2.048 s below ~129 s). The timer softirq runs at the start of that jiffy.
///
/// The buckets are aligned to the kernel's absolute `jiffies`, which is
/// `now.jiffies() + jiffies_offset` ([`crate::Config::jiffies_offset`]); with
/// the wrong offset a timer still fires within one granularity of its expiry,
/// but on other edges than the kernel's.
///
/// The harness derives its timing tolerances from a wheel model of its own
/// (`harness/src/linux/timing.rs`) on purpose: the judge must not share code with the
/// implementation under test, or a bug in the shared code would be invisible to it
/// (both sides would agree on the wrong thing).
pub fn timer_wheel_expiry(now: Instant, delay_jiffies: u64, jiffies_offset: u64) -> Instant {
    let clk = now.jiffies().wrapping_add(jiffies_offset);
    let expires = clk.wrapping_add(delay_jiffies);
    let gran = wheel_granularity_jiffies(delay_jiffies);
    let shift = gran.trailing_zeros();
    let bucket = ((expires >> shift).wrapping_add(1)) << shift;
    Instant::from_jiffies(bucket.wrapping_sub(jiffies_offset))
}

/// The nominal delay `d` rounded up to whole jiffies (the unit TCP timers use).
pub fn duration_to_jiffies(d: Duration) -> u64 {
    (d.as_nanos() as u64).div_ceil(NANOS_PER_JIFFY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_levels() {
        assert_eq!(wheel_granularity_jiffies(1), 1);
        assert_eq!(wheel_granularity_jiffies(62), 1);
        assert_eq!(wheel_granularity_jiffies(63), 8);
        assert_eq!(wheel_granularity_jiffies(250), 8);
        assert_eq!(wheel_granularity_jiffies(500), 8);
        assert_eq!(wheel_granularity_jiffies(1000), 64);
        assert_eq!(wheel_granularity_jiffies(16000), 512);
    }

    #[test]
    fn one_second_timer_fires_late_by_at_most_32ms() {
        // 1 s = 250 jiffies at jiffy 0 → bucket 256 → 1.024 s.
        assert_eq!(
            timer_wheel_expiry(Instant::ZERO, 250, 0),
            Instant::from_millis(1024)
        );
        // From 1.024 s: 506 → 512 → 2.048 s.
        assert_eq!(
            timer_wheel_expiry(Instant::from_millis(1024), 250, 0),
            Instant::from_millis(2048)
        );
        // TCP_TIMEOUT_MIN (2 jiffies) → +3 jiffies.
        assert_eq!(
            timer_wheel_expiry(Instant::ZERO, 2, 0),
            Instant::from_millis(12)
        );
    }

    #[test]
    fn buckets_sit_on_the_kernels_jiffies_edges() {
        // The kernel's jiffies are 2 ahead (this host's boot: −62 + INITIAL_JIFFIES, 2 mod 8):
        // kernel clk 2 + 250 = 252 → bucket 256, which is stack tick 254 → 1.016 s.
        assert_eq!(
            timer_wheel_expiry(Instant::ZERO, 250, 2),
            Instant::from_millis(1016)
        );
        // Only the offset modulo the granularity moves the edge.
        let offset = (1u64 << 32) - 75_000 - 62;
        assert_eq!(
            timer_wheel_expiry(Instant::from_millis(400), 250, offset),
            timer_wheel_expiry(Instant::from_millis(400), 250, offset % 4096)
        );
    }

    #[test]
    fn msecs_round_up() {
        assert_eq!(msecs_to_jiffies(1), 1);
        assert_eq!(msecs_to_jiffies(4), 1);
        assert_eq!(msecs_to_jiffies(5), 2);
        assert_eq!(msecs_to_jiffies(1000), 250);
    }
}
