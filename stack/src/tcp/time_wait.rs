//! TIME-WAIT and the FIN-WAIT-2 timewait socket: what replaces the connection once it
//! is done, how long it lives, and what it answers from the control socket.
//!
//! Mirrors, in Linux 6.18: `tcp_time_wait`, `tcp_timewait_state_process`
//! (net/ipv4/tcp_minisocks.c), `tcp_fin_time` (include/net/tcp.h) and
//! `tcp_v4_timewait_ack` (net/ipv4/tcp_ipv4.c).

use super::{seq_lt, Output, State, Tcb, TCP_FIN_TIMEOUT, TCP_INVALID_RATELIMIT, TCP_TIMEWAIT_LEN};
use crate::time::{timer_wheel_expiry, Instant};
use crate::wire::{TcpFlags, TcpRepr};

impl Tcb {
    /// `tcp_time_wait(sk, TCP_TIME_WAIT, 0)`: see [`Self::time_wait`].
    pub(super) fn enter_timewait(&mut self, now: Instant) {
        self.time_wait(now, false, 0);
    }

    /// Mirrors `tcp_fin_time` (include/net/tcp.h): how long an orphan may
    /// sit in FIN_WAIT2, `tcp_fin_timeout` (60 s, `TCP_FIN_TIMEOUT`) but at
    /// least 3.5 RTO.
    pub(super) fn fin_time(&self) -> u64 {
        let rto = (self.rto << 2) - (self.rto >> 1);
        TCP_FIN_TIMEOUT.max(rto)
    }

    /// Mirrors `tcp_time_wait` (net/ipv4/tcp_minisocks.c): the connection is
    /// replaced by a timewait socket that keeps only `rcv_nxt`, `snd_nxt`,
    /// `tw_rcv_wnd = tcp_receive_window()` (frozen: a later FIN does not
    /// shrink it), `ts_recent` and the scale, and answers from the control
    /// socket (`tcp_v4_timewait_ack`). `fin_wait2` is the substate of an
    /// orphan whose FIN was acked before the peer's FIN arrived; it lives
    /// `max(timeo, 3.5 RTO)`, a TIME_WAIT `TCP_TIMEWAIT_LEN`. The full
    /// socket is done (`tcp_done`): its timers and queues are gone.
    pub(super) fn time_wait(&mut self, now: Instant, fin_wait2: bool, timeo: u64) {
        let rto = (self.rto << 2) - (self.rto >> 1);
        let timeo = if fin_wait2 {
            timeo.max(rto)
        } else {
            TCP_TIMEWAIT_LEN
        };
        self.tw_rcv_wnd = self.receive_window();
        self.tw_fin_wait2 = fin_wait2;
        self.tw_last_oow_ack = 0;
        self.set_state(State::TimeWait);
        self.rtx_timer = None;
        self.delack_timer = None;
        self.ack.pending = 0;
        self.send_buf.clear();
        self.tx_skbs.clear();
        self.wmem_queued = 0;
        self.timewait_timer = Some(timer_wheel_expiry(now, timeo, self.params.jiffies_offset));
    }

    /// `inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)`.
    fn tw_reschedule(&mut self, now: Instant) {
        self.timewait_timer = Some(timer_wheel_expiry(
            now,
            TCP_TIMEWAIT_LEN,
            self.params.jiffies_offset,
        ));
    }

    /// Mirrors `tcp_timewait_state_process` (net/ipv4/tcp_minisocks.c) and
    /// what `tcp_v4_rcv` does with its verdict (there is no listener, so
    /// `TCP_TW_SYN` falls through to an ACK). In the FIN_WAIT2 substate the
    /// peer's FIN (and nothing else new) turns it into a true TIME_WAIT and
    /// is acked; new data, or a SYN at or past `rcv_nxt`, is answered with a
    /// RST and kills it. In TIME_WAIT an in-window bare ACK only restarts
    /// the timer and a RST kills it (`tcp_rfc1337` = 0). Anything out of
    /// window is acked, at most once per `tcp_invalid_ratelimit`
    /// (`tcp_timewait_check_oow_rate_limit`).
    pub(super) fn timewait_input(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        tos: u8,
        out: &mut Vec<Output>,
    ) {
        let rcv_nxt = self.rcv_nxt;
        let seq = seg.seq;
        let end_seq = seg.seq.wrapping_add(seg.seq_len());
        let (rst, syn, ack, fin) = (
            seg.flags.rst(),
            seg.flags.syn(),
            seg.flags.ack(),
            seg.flags.fin(),
        );
        // tw_ts_recent_stamp is set once timestamps were in use.
        let tsval = seg.timestamps().filter(|_| self.tstamp_ok).map(|(v, _)| v);
        // tcp_paws_reject: an older TSval than ts_recent (0 never rejects).
        let paws_reject = tsval
            .is_some_and(|v| self.ts_recent != 0 && (self.ts_recent.wrapping_sub(v) as i32) > 0);
        if self.tw_fin_wait2 {
            let in_window = seq == rcv_nxt
                || (seq_lt(rcv_nxt, end_seq) && seq_lt(seq, rcv_nxt.wrapping_add(self.tw_rcv_wnd)))
                || (seq == rcv_nxt.wrapping_add(self.tw_rcv_wnd) && seq == end_seq);
            if paws_reject || !in_window {
                self.tw_oow_ack(now, seg, out);
                return;
            }
            if rst {
                self.set_state(State::Closed);
                return;
            }
            if syn && !seq_lt(seq, rcv_nxt) {
                self.tw_reset(seg, tos, out);
                return;
            }
            if !ack || !seq_lt(rcv_nxt, end_seq) || end_seq == seq {
                return; // a duplicate ACK
            }
            if !fin || end_seq != rcv_nxt.wrapping_add(1) {
                self.tw_reset(seg, tos, out); // new data after the half-duplex close
                return;
            }
            self.tw_fin_wait2 = false;
            self.rcv_nxt = end_seq;
            if let Some(v) = tsval {
                self.ts_recent = v;
            }
            self.tw_reschedule(now);
            self.timewait_ack(now, false, out);
            return;
        }
        if !paws_reject && seq == rcv_nxt && (seq == end_seq || rst) {
            if rst {
                self.set_state(State::Closed);
                return;
            }
            self.tw_reschedule(now);
            if let Some(v) = tsval {
                self.ts_recent = v;
            }
            return;
        }
        if syn
            && !rst
            && !ack
            && !paws_reject
            && (seq_lt(rcv_nxt, seq)
                || tsval.is_some_and(|v| (self.ts_recent.wrapping_sub(v) as i32) < 0))
        {
            // TCP_TW_SYN without a listener: "to ACK".
            self.timewait_ack(now, false, out);
            return;
        }
        if !rst {
            if paws_reject || ack {
                self.tw_reschedule(now);
            }
            self.tw_oow_ack(now, seg, out);
        }
    }

    /// `tcp_timewait_check_oow_rate_limit` → `tcp_oow_rate_limited`: data
    /// (without SYN) is always answered; anything else at most once per
    /// `tcp_invalid_ratelimit` (500 ms).
    fn tw_oow_ack(&mut self, now: Instant, seg: &TcpRepr, out: &mut Vec<Output>) {
        if seg.seq_len() == 0 || seg.flags.syn() {
            let now_j = now.jiffies();
            if self.tw_last_oow_ack != 0 {
                let elapsed = now_j.wrapping_sub(self.tw_last_oow_ack) as i64;
                if (0..TCP_INVALID_RATELIMIT as i64).contains(&elapsed) {
                    return;
                }
            }
            self.tw_last_oow_ack = now_j;
        }
        self.timewait_ack(now, true, out);
    }

    /// `TCP_TW_RST`: `tcp_v4_send_reset` for the timewait socket, which dies.
    fn tw_reset(&mut self, seg: &TcpRepr, tos: u8, out: &mut Vec<Output>) {
        out.extend(Self::reset_for(seg, tos));
        self.set_state(State::Closed);
    }

    /// Mirrors `tcp_v4_timewait_ack`: `seq = tw_snd_nxt`, `ack = tw_rcv_nxt`,
    /// window `tw_rcv_wnd >> tw_rcv_wscale`, and a timestamp option only if
    /// `tw_ts_recent` is non-zero (`tcp_v4_send_ack`: `if (tsecr)`).
    fn timewait_ack(&mut self, now: Instant, oow: bool, out: &mut Vec<Output>) {
        let options = self.ts_block(now, self.ts_recent != 0);
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: TcpFlags(TcpFlags::ACK),
            window: (self.tw_rcv_wnd >> self.rcv_wscale) as u16,
            urgent: 0,
            options,
            payload: vec![],
        };
        out.push(Output::ControlAck { repr, oow });
    }
}
