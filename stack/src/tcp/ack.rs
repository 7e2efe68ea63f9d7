//! The delayed-ACK engine (`struct inet_connection_sock::icsk_ack`): when an ACK is
//! owed, whether it goes out at once (quickack mode, more than one full segment
//! unacknowledged, `ICSK_ACK_NOW`) or waits for the delayed-ACK timer, and the
//! estimate of the peer's MSS it is measured against.
//!
//! Mirrors, in Linux 6.18: `tcp_event_data_recv`, `tcp_measure_rcv_mss`,
//! `__tcp_ack_snd_check`, `tcp_incr_quickack`/`tcp_enter_quickack_mode`
//! (net/ipv4/tcp_input.c), `tcp_send_delayed_ack`, `tcp_event_ack_sent`
//! (net/ipv4/tcp_output.c), `tcp_delack_timer_handler` (net/ipv4/tcp_timer.c),
//! `__tcp_cleanup_rbuf` and `__tcp_sock_set_quickack` (net/ipv4/tcp.c).

use super::{
    Output, State, Tcb, RCV_SHUTDOWN, TCP_ATO_MIN, TCP_DELACK_MAX, TCP_DELACK_MIN,
    TCP_MAX_QUICKACKS, TCP_MIN_MSS, TCP_MSS_DEFAULT, TCP_RMEM_TO_WIN_SCALE,
};
use crate::time::{timer_wheel_expiry, Instant, HZ};
use crate::wire::{TcpFlags, TcpRepr};

/// `icsk_ack.pending` bits (`enum inet_csk_ack_state_t`, include/net/inet_connection_sock.h).
pub mod ack_flags {
    /// `ICSK_ACK_SCHED`: an ACK is owed.
    pub const SCHED: u8 = 1;
    /// `ICSK_ACK_TIMER`: the delayed-ACK timer is armed.
    pub const TIMER: u8 = 2;
    /// `ICSK_ACK_PUSHED`: a small (pushed) segment arrived.
    pub const PUSHED: u8 = 4;
    /// `ICSK_ACK_PUSHED2`: two of them.
    pub const PUSHED2: u8 = 8;
    /// `ICSK_ACK_NOW`: send the next ACK immediately.
    pub const NOW: u8 = 16;
}

/// The delayed-ACK engine (`struct inet_connection_sock::icsk_ack`). Times in jiffies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckState {
    /// `pending`: [`ack_flags`] bits.
    pub pending: u8,
    /// `quick`: ACKs still to send in quickack mode.
    pub quick: u32,
    /// `pingpong`: interactive-session count (`inet_csk_in_pingpong_mode`).
    pub pingpong: u8,
    /// `ato`: the delayed-ACK timeout, 0 until the first data arrives.
    pub ato: u64,
    /// `timeout`: when the armed delayed-ACK timer is due.
    pub timeout: u64,
    /// `lrcvtime`: when data last arrived.
    pub lrcvtime: u64,
    /// `rcv_mss`: our estimate of the peer's MSS.
    pub rcv_mss: u32,
    /// `last_seg_size`.
    pub last_seg_size: u32,
}

impl Tcb {
    /// `inet_csk_schedule_ack`.
    pub(super) fn schedule_ack(&mut self) {
        self.ack.pending |= ack_flags::SCHED;
    }

    /// `inet_csk_ack_scheduled`.
    pub fn ack_scheduled(&self) -> bool {
        self.ack.pending & ack_flags::SCHED != 0
    }

    /// `inet_csk_in_pingpong_mode`: `pingpong >= tcp_pingpong_thresh`.
    pub fn in_pingpong_mode(&self) -> bool {
        self.ack.pingpong >= self.pingpong_thresh
    }

    /// The mode half of `__tcp_sock_set_quickack` (net/ipv4/tcp.c), for `TCP_QUICKACK`:
    /// 0 enters pingpong mode (`inet_csk_enter_pingpong_mode`), so the next ACK waits for
    /// the delayed-ACK timer (the SYN-ACK's among them: `connect` keeps the mode); any
    /// other value leaves it.
    pub fn set_quickack_mode(&mut self, val: i32) {
        self.ack.pingpong = if val == 0 { self.pingpong_thresh } else { 0 };
    }

    /// The rest of `__tcp_sock_set_quickack` for a non-zero `val`: an ACK owed on an
    /// established connection is marked PUSHED and goes out if `tcp_cleanup_rbuf` finds
    /// it due; an even `val` then re-enters pingpong mode.
    pub fn quickack_owed_ack(&mut self, now: Instant, val: i32, out: &mut Vec<Output>) {
        if val == 0
            || !matches!(self.state, State::Established | State::CloseWait)
            || !self.ack_scheduled()
        {
            return;
        }
        self.ack.pending |= ack_flags::PUSHED;
        self.cleanup_rbuf(now, 1, out);
        if val & 1 == 0 {
            self.ack.pingpong = self.pingpong_thresh;
        }
    }

    /// `tcp_in_quickack_mode` (no route `quickack` metric here).
    pub fn in_quickack_mode(&self) -> bool {
        self.ack.quick != 0 && !self.in_pingpong_mode()
    }

    /// `tcp_incr_quickack`: allow up to `rcv_wnd / (2 * rcv_mss)` quick ACKs
    /// (at least 2), at most `max`.
    fn incr_quickack(&mut self, max: u32) {
        let mut quickacks = self.rcv_wnd / (2 * self.ack.rcv_mss.max(1));
        if quickacks == 0 {
            quickacks = 2;
        }
        quickacks = quickacks.min(max);
        if quickacks > self.ack.quick {
            self.ack.quick = quickacks;
        }
    }

    /// `tcp_enter_quickack_mode`: quick ACKs, pingpong off, `ato` back to the minimum.
    pub(super) fn enter_quickack_mode(&mut self, max: u32) {
        self.incr_quickack(max);
        self.ack.pingpong = 0;
        self.ack.ato = TCP_ATO_MIN;
    }

    /// `tcp_event_ack_sent` → `tcp_dec_quickack_mode` (an ACK of new data
    /// uses up one quick ACK; the last one deflates `ato`) and
    /// `inet_csk_clear_xmit_timer(ICSK_TIME_DACK)` (nothing owed any more).
    pub(super) fn event_ack_sent(&mut self) {
        if self.ack.quick != 0 {
            let pkts = u32::from(self.ack_scheduled());
            if pkts >= self.ack.quick {
                self.ack.quick = 0;
                self.ack.ato = TCP_ATO_MIN;
            } else {
                self.ack.quick -= pkts;
            }
        }
        self.ack.pending = 0;
        self.delack_timer = None;
    }

    /// `tcp_event_data_sent`: data sent within `ato` of the last data
    /// received is a reply, which counts towards pingpong (interactive) mode.
    pub(super) fn event_data_sent(&mut self, now: Instant) {
        if now.jiffies().wrapping_sub(self.ack.lrcvtime) < self.ack.ato
            && self.ack.pingpong < u8::MAX
        {
            self.ack.pingpong += 1;
        }
    }

    /// Mirrors `tcp_measure_rcv_mss` (net/ipv4/tcp_input.c): a segment of at
    /// least `rcv_mss` raises the estimate (up to `advmss`); a smaller one
    /// marks the ACK as PUSHED (twice: PUSHED2). A segment whose length is
    /// not the estimate also sets `scaling_ratio` to its `len / truesize`
    /// (in 1/256ths, at least 1); when that changes the ratio, the window
    /// clamp becomes the whole buffer at the new ratio (`tcp_set_window_clamp`),
    /// which drops what `tcp_init_buffer_space` reserved by `tcp_app_win`.
    /// A segment shorter than the estimate (536 at first) leaves both alone.
    pub(super) fn measure_rcv_mss(&mut self, seg: &TcpRepr, truesize: u32) {
        let lss = self.ack.last_seg_size;
        self.ack.last_seg_size = 0;
        let mut len = seg.payload.len() as u32;
        if len >= self.ack.rcv_mss {
            if len != self.ack.rcv_mss && self.ratio_follows_skbs {
                let old_ratio = self.scaling_ratio;
                self.scaling_ratio = ((len << TCP_RMEM_TO_WIN_SCALE) / truesize.max(1)).max(1);
                if self.scaling_ratio != old_ratio {
                    let full = self.tcp_full_space().max(0) as u32;
                    self.grow_or_shrink_window_clamp(full);
                }
            }
            self.ack.rcv_mss = len.min(self.advmss);
            return;
        }
        len += seg.header_len() as u32;
        let remnant = TcpFlags::FIN | TcpFlags::URG | TcpFlags::SYN | TcpFlags::PSH;
        if len >= TCP_MSS_DEFAULT + 20 || (len >= TCP_MIN_MSS + 20 && seg.flags.0 & remnant == 0) {
            len -= if self.tstamp_ok { 32 } else { 20 };
            self.ack.last_seg_size = len;
            if len == lss {
                self.ack.rcv_mss = len;
                return;
            }
        }
        if self.ack.pending & ack_flags::PUSHED != 0 {
            self.ack.pending |= ack_flags::PUSHED2;
        }
        self.ack.pending |= ack_flags::PUSHED;
    }

    /// Mirrors `tcp_event_data_recv` (net/ipv4/tcp_input.c): an ACK is owed;
    /// the first data starts the delayed-ACK engine in quickack mode
    /// (`ato = TCP_ATO_MIN`); later, `ato` follows the inter-arrival time.
    pub(super) fn event_data_recv(&mut self, now: Instant, seg: &TcpRepr, truesize: u32) {
        self.schedule_ack();
        self.measure_rcv_mss(seg, truesize);
        let now_j = now.jiffies();
        if self.ack.ato == 0 {
            self.incr_quickack(TCP_MAX_QUICKACKS);
            self.ack.ato = TCP_ATO_MIN;
        } else {
            let m = now_j.wrapping_sub(self.ack.lrcvtime);
            if m <= TCP_ATO_MIN / 2 {
                self.ack.ato = (self.ack.ato >> 1) + TCP_ATO_MIN / 2;
            } else if m < self.ack.ato {
                self.ack.ato = ((self.ack.ato >> 1) + m).min(self.rto);
            } else if m > self.rto {
                self.incr_quickack(TCP_MAX_QUICKACKS);
            }
        }
        self.ack.lrcvtime = now_j;
        if seg.payload.len() >= 128 {
            self.grow_window(seg.payload.len() as u32, truesize);
        }
    }

    /// Mirrors `tcp_ack_snd_check` → `__tcp_ack_snd_check` (net/ipv4/tcp_input.c):
    /// if an ACK is owed, send it now when more than one full segment
    /// arrived since the last window update (and the window can advance, or
    /// everything was read), in quickack mode, or when `ICSK_ACK_NOW`;
    /// otherwise delay it (`tcp_send_delayed_ack`).
    pub(super) fn ack_snd_check(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.ack_scheduled() {
            return;
        }
        let more_than_one_mss = self.rcv_nxt.wrapping_sub(self.rcv_wup) > self.ack.rcv_mss
            && (self.unread_seq() < 1 || self.raw_select_window() >= self.rcv_wnd);
        if more_than_one_mss || self.in_quickack_mode() || self.ack.pending & ack_flags::NOW != 0 {
            self.send_ack(now, out);
        } else {
            self.send_delayed_ack(now, out);
        }
    }

    /// Mirrors `tcp_send_delayed_ack` (net/ipv4/tcp_output.c): arm the
    /// delayed-ACK timer `ato` ahead (bounded by the RTT, 200 ms in pingpong
    /// mode or after a PUSHED segment, 500 ms otherwise, and
    /// `icsk_delack_max`), keeping an earlier deadline; send at once if that
    /// deadline is within `ato / 4`.
    fn send_delayed_ack(&mut self, now: Instant, out: &mut Vec<Output>) {
        let mut ato = self.ack.ato;
        if ato > TCP_DELACK_MIN {
            let mut max_ato = HZ / 2;
            if self.in_pingpong_mode() || self.ack.pending & ack_flags::PUSHED != 0 {
                max_ato = TCP_DELACK_MAX;
            }
            if let Some(srtt) = self.srtt {
                let rtt = crate::time::duration_to_jiffies(srtt).max(TCP_DELACK_MIN);
                max_ato = max_ato.min(rtt);
            }
            ato = ato.min(max_ato);
        }
        ato = ato.min(TCP_DELACK_MAX);
        let now_j = now.jiffies();
        let mut timeout = now_j + ato;
        if self.ack.pending & ack_flags::TIMER != 0 {
            if self.ack.timeout <= now_j + (ato >> 2) {
                self.send_ack(now, out);
                return;
            }
            timeout = timeout.min(self.ack.timeout);
        }
        self.ack.pending |= ack_flags::SCHED | ack_flags::TIMER;
        self.ack.timeout = timeout;
        self.delack_timer = Some(timer_wheel_expiry(
            now,
            timeout - now_j,
            self.params.jiffies_offset,
        ));
    }

    /// Mirrors `tcp_delack_timer_handler` (net/ipv4/tcp_timer.c): send the
    /// owed ACK; a missed delayed ACK inflates `ato` (up to the RTO), or, in
    /// pingpong mode, leaves pingpong mode and deflates `ato`.
    pub(super) fn delack_timer_handler(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.delack_timer = None;
        if self.state == State::Closed || self.ack.pending & ack_flags::TIMER == 0 {
            return;
        }
        let now_j = now.jiffies();
        if self.ack.timeout > now_j {
            self.delack_timer = Some(timer_wheel_expiry(
                now,
                self.ack.timeout - now_j,
                self.params.jiffies_offset,
            ));
            return;
        }
        self.ack.pending &= !ack_flags::TIMER;
        if self.ack_scheduled() {
            if !self.in_pingpong_mode() {
                self.ack.ato = (self.ack.ato << 1).min(self.rto);
            } else {
                self.ack.pingpong = 0;
                self.ack.ato = TCP_ATO_MIN;
            }
            self.send_ack(now, out);
        }
    }

    /// Mirrors `__tcp_cleanup_rbuf` (net/ipv4/tcp.c) after a read of
    /// `copied` bytes: send the owed ACK if more than a segment is unacked,
    /// or the read emptied the queue after PUSHED segments (not in pingpong
    /// mode); or a window update if the read at least doubled the window.
    pub(super) fn cleanup_rbuf(&mut self, now: Instant, copied: usize, out: &mut Vec<Output>) {
        let mut time_to_ack = false;
        if self.ack_scheduled() {
            let pushed = self.ack.pending & ack_flags::PUSHED2 != 0
                || (self.ack.pending & ack_flags::PUSHED != 0 && !self.in_pingpong_mode());
            if self.rcv_nxt.wrapping_sub(self.rcv_wup) > self.ack.rcv_mss
                || (copied > 0 && pushed && self.rmem_alloc == 0)
            {
                time_to_ack = true;
            }
        }
        if copied > 0 && !time_to_ack && self.shutdown & RCV_SHUTDOWN == 0 {
            let rcv_window_now = self.receive_window() as u64;
            if 2 * rcv_window_now <= self.window_clamp as u64 {
                let new_window = self.raw_select_window() as u64;
                if new_window != 0 && new_window >= 2 * rcv_window_now {
                    time_to_ack = true;
                }
            }
        }
        if time_to_ack {
            self.send_ack(now, out);
        }
    }
}
