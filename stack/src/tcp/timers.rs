//! The retransmission timer: SYN retransmission and its backoff (linear at first with
//! `tcp_syn_linear_timeouts`), when retransmitting gives up, the RTO clamped to
//! `TCP_USER_TIMEOUT`, and what a data retransmission sends again.
//!
//! Mirrors, in Linux 6.18: `tcp_retransmit_timer`, `tcp_write_timeout`,
//! `retransmits_timed_out`, `tcp_model_timeout`, `tcp_clamp_rto_to_user_timeout`,
//! `tcp_write_timer_handler` (net/ipv4/tcp_timer.c) and `tcp_retransmit_skb`
//! (net/ipv4/tcp_output.c).

use super::{ms, Output, State, Tcb, TCP_RETRIES2};
use crate::config::Config;
use crate::errno::Errno;
use crate::time::{msecs_to_jiffies, timer_wheel_expiry, Instant, NANOS_PER_JIFFY};
use crate::wire::TcpFlags;
use std::time::Duration;

/// The segment a retransmission timeout sends again: its payload length from `snd_una`,
/// and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RetransmitHead {
    len: u32,
    psh: bool,
    fin: bool,
}

/// Mirrors `tcp_model_timeout` (net/ipv4/tcp_timer.c), in ms: the time the
/// exponential schedule takes to reach `boundary` retransmissions.
pub fn model_timeout_ms(boundary: u32, rto_base_ms: u64, rto_max_ms: u64) -> u64 {
    let thresh = (rto_max_ms / rto_base_ms).max(1).ilog2();
    if boundary <= thresh {
        ((2u64 << boundary) - 1) * rto_base_ms
    } else {
        ((2u64 << thresh) - 1) * rto_base_ms + (boundary - thresh) as u64 * rto_max_ms
    }
}

/// `usecs_to_jiffies` (include/linux/jiffies.h): microseconds to jiffies, rounded up.
pub(super) fn usecs_to_jiffies(us: u64) -> u64 {
    (us * 1000).div_ceil(NANOS_PER_JIFFY)
}

/// Which transmit timer is pending (`icsk_pending`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum XmitTimer {
    /// `ICSK_TIME_RETRANS`: the RTO.
    #[default]
    Retrans,
    /// `ICSK_TIME_LOSS_PROBE`: a tail loss probe (`tcp_send_loss_probe`).
    LossProbe,
}

/// `Duration` of `j` jiffies.
pub fn jiffies_to_duration(j: u64) -> Duration {
    Duration::from_nanos(j * NANOS_PER_JIFFY)
}

impl Tcb {
    pub(super) fn arm_rtx(&mut self, now: Instant, jiffies: u64) {
        self.rtx_timer = Some(timer_wheel_expiry(
            now,
            jiffies.max(1),
            self.params.jiffies_offset,
        ));
    }

    /// Run the retransmission/TIME-WAIT timers if due. `still_queued` tells
    /// whether the last SYN still waits in an ARP queue
    /// (`skb_still_in_host_queue`).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        cfg: &Config,
        still_queued: bool,
        out: &mut Vec<Output>,
    ) {
        if self.timewait_timer.is_some_and(|t| t <= now) {
            self.timewait_timer = None;
            self.set_state(State::Closed);
            return;
        }
        if self.delack_timer.is_some_and(|t| t <= now) {
            self.delack_timer_handler(now, out);
        }
        if self.rtx_timer.is_some_and(|t| t <= now) {
            self.rtx_timer = None;
            // tcp_write_timer_handler: by icsk_pending.
            match std::mem::take(&mut self.rtx_kind) {
                XmitTimer::LossProbe => self.send_loss_probe(now, out),
                XmitTimer::Retrans => self.retransmit_timer(now, cfg, still_queued, out),
            }
        }
    }

    /// Mirrors `retransmits_timed_out` (net/ipv4/tcp_timer.c).
    fn retransmits_timed_out(&self, now: Instant, boundary: u32) -> bool {
        if self.retransmits == 0 {
            return false;
        }
        let timeout = if self.params.user_timeout_ms != 0 {
            self.params.user_timeout_ms as u64
        } else {
            model_timeout_ms(boundary, 1000, self.params.rto_max_ms as u64)
        };
        let elapsed = ms(now).wrapping_sub(self.retrans_stamp_ms) as i32 as i64;
        elapsed - timeout as i64 >= 0
    }

    /// Mirrors `tcp_clamp_rto_to_user_timeout` (net/ipv4/tcp_timer.c), in jiffies.
    fn clamp_rto_to_user_timeout(&self, now: Instant) -> u64 {
        if self.params.user_timeout_ms == 0 {
            return self.rto;
        }
        let elapsed = ms(now).wrapping_sub(self.retrans_stamp_ms) as i32 as i64;
        let remaining = self.params.user_timeout_ms as i64 - elapsed;
        if remaining <= 0 {
            return 1;
        }
        self.rto.min(msecs_to_jiffies(remaining as u64))
    }

    /// Mirrors `tcp_retransmit_timer` + `tcp_write_timeout` (net/ipv4/tcp_timer.c).
    fn retransmit_timer(
        &mut self,
        now: Instant,
        cfg: &Config,
        still_queued: bool,
        out: &mut Vec<Output>,
    ) {
        let rto_max = msecs_to_jiffies(self.params.rto_max_ms as u64);
        if self.state.is_connecting() {
            let retry_until = if self.params.syn_retries != 0 {
                self.params.syn_retries
            } else {
                cfg.tcp_syn_retries
            };
            let max = retry_until
                + if self.state == State::SynSent {
                    cfg.tcp_syn_linear_timeouts
                } else {
                    0
                };
            let expired = self.retransmits >= max || self.retransmits_timed_out(now, retry_until);
            if expired {
                // tcp_write_err: sk_err = sk_err_soft ?: ETIMEDOUT.
                let err = self.sk_err_soft.take().unwrap_or(Errno::ETIMEDOUT);
                tracing::trace!(?err, "SYN retransmissions exhausted");
                self.done_with_error(err);
                return;
            }
            self.rethink_txhash(cfg);
            self.retransmits += 1;
            self.total_rto += 1;
            if still_queued {
                tracing::trace!("SYN still in host queue: retransmission skipped");
            } else {
                // __tcp_retransmit_skb → tcp_ecn_clear_syn; retransmitted SYNs carry no TFO option.
                if cfg.tcp_ecn_fallback {
                    self.syn_ecn_flags = false;
                }
                self.tfo_request = false;
                let syn = self.build_syn(now, true);
                out.push(Output::Segment {
                    repr: syn,
                    ect: false,
                });
                self.total_retrans += 1;
            }
            if self.state == State::SynSent && self.total_rto <= cfg.tcp_syn_linear_timeouts {
                // Linear phase: RTO unchanged.
            } else {
                self.backoff += 1;
                self.rto = (self.rto * 2).min(rto_max);
            }
            let next = self.clamp_rto_to_user_timeout(now);
            self.arm_rtx(now, next);
            return;
        }
        if self.snd_una == self.snd_nxt {
            return;
        }
        // Established and later: tcp_retransmit_timer ends the loss probe's episode and
        // enters the loss state (tcp_enter_loss: high_seq = snd_nxt), retransmits the
        // head (tcp_retransmit_skb) and backs off.
        self.tlp_high_seq = None;
        let limit = TCP_RETRIES2;
        if self.retransmits >= limit
            || (self.params.user_timeout_ms != 0
                && self.retransmits > 0
                && self.retransmits_timed_out(now, limit))
        {
            let err = self.sk_err_soft.take().unwrap_or(Errno::ETIMEDOUT);
            self.done_with_error(err);
            return;
        }
        self.rethink_txhash(cfg);
        if self.retransmits == 0 {
            self.retrans_stamp_ms = ms(now);
        }
        self.retransmits += 1;
        self.total_retrans += 1;
        self.cwnd = 1;
        self.loss_high_seq = Some(self.snd_nxt);
        let head = self.retransmit_head(self.current_mss());
        let payload: Vec<u8> = self
            .send_buf
            .iter()
            .take(head.len as usize)
            .copied()
            .collect();
        let mut flags = TcpFlags::ACK;
        if head.psh && head.len > 0 {
            flags |= TcpFlags::PSH;
        }
        if head.fin {
            flags |= TcpFlags::FIN;
        }
        // tcp_ecn_send: only new data is ECT; a retransmitted segment is sent
        // without (INET_ECN_dontxmit, RFC 3168 6.1.5).
        out.push(Output::Segment {
            repr: self.segment(now, self.snd_una, flags, payload),
            ect: false,
        });
        self.backoff += 1;
        self.rto = (self.rto * 2).min(rto_max);
        let next = self.clamp_rto_to_user_timeout(now);
        self.arm_rtx(now, next);
    }

    /// Where the last segment in flight begins: the end of the one before it, or
    /// `snd_una` when it is the only one.
    pub(super) fn last_segment_start(&self) -> u32 {
        self.tx_times
            .iter()
            .rev()
            .nth(1)
            .map_or(self.snd_una, |&(end, _, _)| end)
    }

    /// What `tcp_retransmit_skb(sk, head, 1)` (net/ipv4/tcp_output.c) sends from the head
    /// of the retransmit queue. A head skb longer than one MSS is cut to it
    /// (`tcp_fragment`, which leaves PSH and FIN on the remainder). A shorter one takes
    /// with it the whole one-segment skbs behind it that still fit in one MSS and in the
    /// peer's window, ORing in their flags, a FIN sent alone included
    /// (`tcp_retrans_try_collapse`, `tcp_collapse_retrans`).
    fn retransmit_head(&self, mss: u32) -> RetransmitHead {
        let fin = u32::from(self.fin_sent);
        let sent = self.snd_nxt.wrapping_sub(self.snd_una) - fin;
        // A FIN sent in a segment of its own is an skb of its own (tcp_send_fin found
        // the tail already sent); one sent on data rides on the tail skb.
        let fin_alone = self.fin_sent && self.snd_nxt.wrapping_sub(self.last_segment_start()) == 1;
        // avail_wnd: what the peer's window leaves of one MSS (a whole MSS into a zero
        // window, the probe's case).
        let avail = if self.snd_wnd == 0 {
            mss
        } else {
            mss.min(self.snd_wnd)
        };
        let mut skbs = self.tx_skbs.iter().map(|t| (t.len, t.psh));
        let (mut len, mut psh) = match skbs.next() {
            Some((head_len, _)) if head_len.min(sent) > avail => {
                return RetransmitHead {
                    len: avail,
                    psh: false,
                    fin: false,
                };
            }
            Some((head_len, head_psh)) if sent > 0 => {
                (head_len.min(sent), head_psh && head_len <= sent)
            }
            _ => (0, false),
        };
        let may_collapse = len < avail;
        if may_collapse {
            for (skb_len, skb_psh) in skbs {
                if len == sent || skb_len > mss || skb_len > sent - len || len + skb_len > avail {
                    break;
                }
                len += skb_len;
                psh |= skb_psh;
            }
        }
        let fin = len == sent && self.fin_sent && (!fin_alone || may_collapse);
        RetransmitHead { len, psh, fin }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_timeout() {
        assert_eq!(model_timeout_ms(1, 1000, 120_000), 3000);
        assert_eq!(model_timeout_ms(2, 1000, 120_000), 7000);
        assert_eq!(model_timeout_ms(6, 1000, 120_000), 127_000);
        assert_eq!(model_timeout_ms(7, 1000, 120_000), 247_000);
        assert_eq!(model_timeout_ms(6, 1000, 1000), 7000);
    }
}
