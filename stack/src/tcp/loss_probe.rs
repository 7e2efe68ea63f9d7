//! The tail loss probe: when one is due instead of the RTO, what it sends, and how the
//! RTO is rearmed around it.
//!
//! Mirrors, in Linux 6.18: `tcp_schedule_loss_probe`, `tcp_send_loss_probe`
//! (net/ipv4/tcp_output.c), `tcp_rearm_rto` and `tcp_rto_delta_us`
//! (net/ipv4/tcp_input.c, include/net/tcp.h).

use super::timers::{jiffies_to_duration, usecs_to_jiffies, XmitTimer};
use super::{Output, Tcb, TCP_RTO_MIN, TCP_TIMEOUT_INIT, TCP_TIMEOUT_MIN};
use crate::time::{Instant, NANOS_PER_JIFFY};
use crate::wire::TcpFlags;

impl Tcb {
    /// `packets_out`: segments sent and not yet acknowledged.
    fn packets_out(&self) -> u32 {
        self.tx_times.len() as u32
    }

    /// `tcp_rto_delta_us`: how far ahead the RTO of the oldest segment in flight lies.
    fn rto_delta_us(&self, now: Instant) -> i64 {
        let Some(&(_, sent_at, _)) = self.tx_times.front() else {
            return 0;
        };
        let fires = sent_at + jiffies_to_duration(self.rto);
        if fires >= now {
            fires.saturating_duration_since(now).as_micros() as i64
        } else {
            -(now.saturating_duration_since(fires).as_micros() as i64)
        }
    }

    /// `tcp_rearm_rto` (net/ipv4/tcp_input.c): no timer once nothing is in flight, else
    /// the RTO; one that replaces a pending loss probe keeps the RTO of the oldest
    /// segment in flight rather than restarting it.
    pub(super) fn rearm_rto(&mut self, now: Instant) {
        if self.packets_out() == 0 && self.snd_una == self.snd_nxt {
            self.rtx_timer = None;
            self.rtx_kind = XmitTimer::Retrans;
            return;
        }
        let rto = if self.rtx_timer.is_some() && self.rtx_kind == XmitTimer::LossProbe {
            usecs_to_jiffies(self.rto_delta_us(now).max(1) as u64)
        } else {
            self.rto
        };
        self.rtx_kind = XmitTimer::Retrans;
        self.arm_rtx(now, rto);
    }

    /// `tcp_schedule_loss_probe` (net/ipv4/tcp_output.c): with SACK, outside loss
    /// recovery, a tail loss probe is due after two RTTs, plus the minimum RTO when one
    /// segment is in flight (the peer may be delaying its ACK) or 2 jiffies otherwise,
    /// unless the RTO comes first. Returns whether it was armed.
    pub(super) fn schedule_loss_probe(&mut self, now: Instant, advancing_rto: bool) -> bool {
        let packets_out = self.packets_out();
        if !(self.early_retrans == 3 || self.early_retrans == 4)
            || packets_out == 0
            || !self.sack_ok
            || self.loss_high_seq.is_some()
        {
            return false;
        }
        let mut timeout = if self.srtt_us != 0 {
            usecs_to_jiffies(2 * self.srtt_us)
                + if packets_out == 1 {
                    TCP_RTO_MIN
                } else {
                    TCP_TIMEOUT_MIN
                }
        } else {
            TCP_TIMEOUT_INIT
        };
        let rto_delta_us = if advancing_rto {
            (self.rto * NANOS_PER_JIFFY / 1000) as i64
        } else {
            self.rto_delta_us(now)
        };
        if rto_delta_us > 0 {
            timeout = timeout.min(usecs_to_jiffies(rto_delta_us as u64));
        }
        self.rtx_kind = XmitTimer::LossProbe;
        self.arm_rtx(now, timeout);
        true
    }

    /// `tcp_send_loss_probe` (net/ipv4/tcp_output.c): one probe per episode. New data
    /// goes first if the window takes it; else the last segment in flight is sent again
    /// (`__tcp_retransmit_skb`: neither a retransmission count nor `retrans_stamp`).
    /// Then the RTO is rearmed in full from now.
    pub(super) fn send_loss_probe(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.rtx_timer = None;
        if self.tlp_high_seq.is_none() {
            let before = self.snd_nxt;
            self.write_xmit_probe(now, out);
            if self.snd_nxt != before {
                self.tlp_high_seq = Some(self.snd_nxt);
            } else if let Some(&(end, _, psh)) = self.tx_times.back() {
                let start = self.last_segment_start();
                let fin = self.fin_sent && end == self.snd_nxt;
                let len = end.wrapping_sub(start) - u32::from(fin);
                let off = start.wrapping_sub(self.snd_una) as usize;
                let payload: Vec<u8> = self
                    .send_buf
                    .iter()
                    .skip(off)
                    .take(len as usize)
                    .copied()
                    .collect();
                let mut flags = TcpFlags::ACK;
                if psh && !payload.is_empty() {
                    flags |= TcpFlags::PSH;
                }
                if fin {
                    flags |= TcpFlags::FIN;
                }
                // Sent again, so not ECT (tcp_ecn_send).
                out.push(Output::Segment {
                    repr: self.segment(now, start, flags, payload),
                    ect: false,
                });
                self.tlp_high_seq = Some(self.snd_nxt);
            }
        }
        self.rearm_rto(now);
    }
}
