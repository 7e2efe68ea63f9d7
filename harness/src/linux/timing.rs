//! The kernel's timer granularity, from which every timing tolerance is derived.
//!
//! TCP timers go through the timer wheel (`sk_reset_timer` → `mod_timer`), which rounds each
//! expiry *up* to the granularity of the wheel level the delay falls in
//! (kernel/time/timer.c: `calc_index`, `LVL_START`, `LVL_GRAN`). A timer of delay `d` thus
//! fires in `[d, d + granularity(d))`, plus scheduling noise. Tolerances are that
//! granularity plus one jiffy, never a guess.
//!
//! tcptwin-stack models HZ and the wheel too (`stack/src/time.rs`), to fire its timers as
//! Linux does; the harness keeps this model apart on purpose, so that a wrong rounding in
//! the stack shows as a divergence instead of moving the tolerance with it.

/// The host kernel's `CONFIG_HZ` (this project's hosts run 250; see KERNEL-CONNECT.md §0).
pub const HZ: u64 = 250;
/// One jiffy in milliseconds.
pub const JIFFY_MS: f64 = 1000.0 / HZ as f64;

/// `LVL_CLK_SHIFT`: each wheel level is 8 times coarser than the one below.
const LVL_CLK_SHIFT: u32 = 3;
/// `LVL_SIZE`: 64 buckets a level.
const LVL_SIZE: u64 = 64;
/// Levels at HZ > 100.
const LVL_DEPTH: u32 = 9;

/// The granularity, in ms, with which a timer armed `delay_ms` ahead fires.
pub fn granularity_ms(delay_ms: f64) -> f64 {
    let delay_jiffies = (delay_ms / JIFFY_MS).ceil().max(0.0) as u64;
    // LVL_START(n) = (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT), for n >= 1.
    let mut level = 0;
    while level + 1 < LVL_DEPTH && delay_jiffies >= (LVL_SIZE - 1) << (level * LVL_CLK_SHIFT) {
        level += 1;
    }
    let gran_jiffies = 1u64 << (level * LVL_CLK_SHIFT);
    gran_jiffies as f64 * JIFFY_MS
}

/// The tolerance applied to a kernel timer interval of `delay_ms`: the timer may fire up to
/// one granularity late, and its arming and the capture each add up to a jiffy of noise.
pub fn tolerance_ms(delay_ms: f64) -> f64 {
    granularity_ms(delay_ms) + JIFFY_MS
}

/// The tolerance for the difference between two runs' measurements of the same interval
/// `delay_ms` (the diff's). Each run lies in the window [`tolerance_ms`] allows one run,
/// `[delay − 1 jiffy, delay + granularity + 1 jiffy]`: the timer is armed at a jiffy count
/// up to a jiffy behind the real time, and fires up to a granularity late, and each capture
/// adds noise. Two runs that each meet that window differ by up to its width.
pub fn pair_tolerance_ms(delay_ms: f64) -> f64 {
    tolerance_ms(delay_ms) + JIFFY_MS
}

/// The tolerance for the end of a chain of timers, each armed when the one before fired:
/// every one may be late by its granularity, so the lateness adds up (one jiffy of noise once).
pub fn chain_tolerance_ms(chain_ms: &[f64]) -> f64 {
    chain_ms.iter().map(|d| granularity_ms(*d)).sum::<f64>() + JIFFY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity_matches_the_hz250_wheel_levels() {
        // KERNEL-CONNECT.md §5.9: <~256 ms → 4 ms, <~2 s → 32 ms, <~16 s → 256 ms, then 2.048 s.
        assert_eq!(granularity_ms(8.0), 4.0);
        assert_eq!(granularity_ms(200.0), 4.0);
        assert_eq!(granularity_ms(1000.0), 32.0);
        assert_eq!(granularity_ms(2000.0), 32.0);
        assert_eq!(granularity_ms(4000.0), 256.0);
        assert_eq!(granularity_ms(8000.0), 256.0);
        assert_eq!(granularity_ms(32000.0), 2048.0);
        assert_eq!(granularity_ms(64000.0), 2048.0);
    }

    #[test]
    fn two_runs_may_differ_by_the_width_of_one_runs_window() {
        // A 408 ms RTO: one run 404 ms (armed a jiffy behind), the other 440 ms (a level-1
        // granularity late) both meet [404, 444]; 40 ms apart.
        assert_eq!(pair_tolerance_ms(408.0), 40.0);
        assert_eq!(pair_tolerance_ms(408.0), tolerance_ms(408.0) + JIFFY_MS);
        assert_eq!(pair_tolerance_ms(0.0), 12.0);
    }

    #[test]
    fn chained_timers_add_their_granularities() {
        // 1 s, 2 s, 4 s SYN timeouts: 32 + 32 + 256 ms, plus a jiffy.
        assert_eq!(chain_tolerance_ms(&[1000.0, 2000.0, 4000.0]), 324.0);
    }

    #[test]
    fn level_boundaries_follow_lvl_start() {
        // LVL_START(1) = 63 jiffies = 252 ms; LVL_START(2) = 504 jiffies = 2016 ms.
        assert_eq!(granularity_ms(248.0), 4.0);
        assert_eq!(granularity_ms(252.0), 32.0);
        assert_eq!(granularity_ms(2012.0), 32.0);
        assert_eq!(granularity_ms(2016.0), 256.0);
    }
}
