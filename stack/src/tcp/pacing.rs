//! RTT samples and what they size: the pacing rate of BBR in STARTUP, and from it how
//! many segments one TSO packet carries.
//!
//! Mirrors, in Linux 6.18: `tcp_rtt_estimator`, `tcp_update_rtt_min`
//! (net/ipv4/tcp_input.c), `bbr_init_pacing_rate_from_rtt`/`bbr_bw_to_pacing_rate`
//! (net/ipv4/tcp_bbr.c) and `tcp_tso_autosize` (net/ipv4/tcp_output.c).

use super::{Tcb, SK_GSO_MAX_SIZE};

impl Tcb {
    /// An RTT sample: `tcp_rtt_estimator` (srtt ← 7/8 srtt + 1/8 m) with
    /// `seq_rtt`, `tcp_update_rtt_min` with `ca_rtt` (a plain minimum here;
    /// the kernel's is windowed over `tcp_min_rtt_wlen`, 300 s).
    pub(super) fn rtt_sample(&mut self, seq_rtt_us: u64, ca_rtt_us: u64) {
        self.srtt_us = if self.srtt_us == 0 {
            seq_rtt_us
        } else {
            (7 * self.srtt_us + seq_rtt_us) / 8
        };
        self.min_rtt_us = Some(self.min_rtt_us.map_or(ca_rtt_us, |m| m.min(ca_rtt_us)));
    }

    /// The pacing rate of BBR (the host's `tcp_congestion_control`) in
    /// STARTUP: `bbr_init_pacing_rate_from_rtt` / `bbr_bw_to_pacing_rate`,
    /// `cwnd × mss_cache / rtt` (1 ms without an RTT sample) times
    /// `bbr_high_gain` (739/256) less `bbr_pacing_margin_percent` (1 %). It
    /// only grows until the bandwidth plateau is found (`bbr_set_pacing_rate`).
    pub(super) fn update_pacing_rate(&mut self, mss: u32, cwnd: u32, packets_out: u32) {
        const BW_SCALE: u32 = 24;
        const BBR_HIGH_GAIN: u64 = 739;
        let rtt_us = if self.srtt_us > 0 { self.srtt_us } else { 1000 };
        let bw = ((cwnd.max(packets_out) as u64) << BW_SCALE) / rtt_us;
        let rate = (((bw * mss as u64 * BBR_HIGH_GAIN) >> 8) * (1_000_000 / 100 * 99)) >> BW_SCALE;
        self.pacing_rate = Some(self.pacing_rate.map_or(rate, |r| r.max(rate)));
    }

    /// Mirrors `tcp_tso_autosize` (net/ipv4/tcp_output.c) for
    /// `tcp_tso_segs`: about 1 ms of the pacing rate (`sk_pacing_shift` 10),
    /// plus `sk_gso_max_size >> (tcp_min_rtt / 2^tcp_tso_rtt_log(9))`, at
    /// most `sk_gso_max_size`, in segments, at least `tcp_min_tso_segs` (2).
    /// After a slow handshake (no fast sample yet) TSO packets stay small.
    pub(super) fn tso_autosize(&self, mss: u32) -> u32 {
        let gso = SK_GSO_MAX_SIZE as u64;
        let mut bytes = self.pacing_rate.map_or(u64::MAX, |r| r >> 10);
        if let Some(r) = self.min_rtt_us.map(|m| m >> 9) {
            if r < 32 {
                bytes = bytes.saturating_add(gso >> r);
            }
        }
        ((bytes.min(gso) / mss.max(1) as u64) as u32).max(2)
    }
}
