//! The maximum segment sizes: the send MSS from the path MTU, the peer's MSS clamp and
//! the IP options; the MSS our SYN advertises; the first guess at the peer's.
//!
//! Mirrors, in Linux 6.18: `tcp_sync_mss`, `__tcp_mtu_to_mss`, `tcp_current_mss`,
//! `tcp_advertise_mss` (net/ipv4/tcp_output.c), `tcp_bound_to_half_wnd`
//! (include/net/tcp.h) and `tcp_initialize_rcv_mss` (net/ipv4/tcp_input.c).

use super::{Tcb, TCP_HEADER_LEN, TCP_MIN_MSS, TCP_MSS_DEFAULT};
use crate::config::Mutation;

impl Tcb {
    /// `tcp_advertise_mss`: advmss, lowered if the path MTU dropped since.
    pub(super) fn advertise_mss(&self) -> u32 {
        if self.pmtu_reduced {
            let route_advmss = if self.net_header_len == 40 {
                crate::route6::default_advmss6(self.pmtu)
            } else {
                crate::route::default_advmss(self.pmtu)
            };
            self.advmss.min(route_advmss)
        } else {
            self.advmss
        }
    }

    /// Mirrors `tcp_sync_mss` → `__tcp_mtu_to_mss` and `tcp_bound_to_half_wnd`:
    /// the send MSS from the path MTU less the IP (`net_header_len`) and TCP headers
    /// and `mss_clamp`, minus IP options, floored
    /// at `tcp_min_snd_mss` (48).
    pub(super) fn sync_mss(&mut self) {
        let mut mss = self
            .pmtu
            .saturating_sub(self.net_header_len + TCP_HEADER_LEN)
            .min(self.mss_clamp);
        mss = mss.saturating_sub(self.ext_hdr_len);
        if self.mutation != Some(Mutation::NoMinSndMss) {
            mss = mss.max(48);
        }
        // tcp_mtu_to_mss takes the timestamp option off before
        // tcp_bound_to_half_wnd bounds the payload, whose floor is
        // `68 - tcp_header_len`.
        let ts = if self.tstamp_ok { 12 } else { 0 };
        let cutoff = if self.max_window > TCP_MSS_DEFAULT {
            self.max_window / 2
        } else {
            self.max_window
        };
        if cutoff != 0 && mss.saturating_sub(ts) > cutoff {
            mss = cutoff.max(68 - 20 - ts) + ts;
        }
        // tcp_mtu_to_mss subtracts tcp_header_len - 20, which adds 20 before connect.
        if self.tcp_header_len == 0 {
            mss += TCP_HEADER_LEN;
        }
        self.mss_cache = mss;
    }

    /// The kernel's `mss_cache` as `TCP_MAXSEG` reads it: `tcp_mtu_to_mss` takes the
    /// timestamp option off when `tcp_header_len` counts it, from `connect()` on (so 524,
    /// not 536, while the SYN is out or after it failed) and after a SYN-ACK with TS (1448).
    /// Before connect `tcp_header_len` is 0 and `mss_cache` is what the last sync left
    /// ([`Tcb::sync_mss`]), or `TCP_MSS_DEFAULT`.
    pub fn mss_cache_reported(&self) -> u32 {
        self.mss_cache
            .saturating_sub(self.tcp_header_len.saturating_sub(TCP_HEADER_LEN))
    }

    /// `IP_OPTIONS` set on the socket (`do_ip_setsockopt`): `icsk_ext_hdr_len` becomes the
    /// new options' length and `tcp_sync_mss` runs at the path MTU it last saw, which is 0
    /// before connect (`TCP_MAXSEG` then reads 68 with 12 bytes of options: the floor of
    /// 48, plus the 20 of a `tcp_header_len` still 0).
    pub fn set_ext_hdr_len(&mut self, ext_hdr_len: u32) {
        self.ext_hdr_len = ext_hdr_len;
        self.sync_mss();
    }

    /// `tcp_current_mss`: payload bytes per segment (minus 12 with timestamps).
    pub fn current_mss(&self) -> u32 {
        self.mss_cache
            .saturating_sub(if self.tstamp_ok { 12 } else { 0 })
            .max(1)
    }

    /// Mirrors `tcp_initialize_rcv_mss` (net/ipv4/tcp_input.c): a low first
    /// guess at the peer's MSS, `min(advmss, mss_cache, rcv_wnd / 2, 536)`,
    /// at least `TCP_MIN_MSS`.
    pub(super) fn initialize_rcv_mss(&mut self) {
        let hint = self
            .advmss
            .min(self.mss_cache)
            .min(self.rcv_wnd / 2)
            .clamp(TCP_MIN_MSS, TCP_MSS_DEFAULT);
        self.ack.rcv_mss = hint;
    }
}
