//! Sending what the write queue holds: skb by skb from the send head, as far as the
//! congestion window, the peer's window and Nagle's rule allow, in TSO-sized chunks.
//!
//! Mirrors, in Linux 6.18: `tcp_write_xmit`, `__tcp_push_pending_frames`,
//! `tcp_grow_skb`, `tcp_cwnd_test`, `tcp_snd_wnd_test`, `tcp_mss_split_point`,
//! `tcp_nagle_check`/`tcp_minshall_check` (net/ipv4/tcp_output.c).

use super::send::TX_SKB_TRUESIZE;
use super::timers::XmitTimer;
use super::{seq_le, seq_lt, Output, State, Tcb};
use crate::time::Instant;
use crate::wire::TcpFlags;

impl Tcb {
    /// Mirrors `tcp_grow_skb` (net/ipv4/tcp_output.c, "try to send bigger
    /// TSO packets"): up to `amount` bytes move into the send head from the
    /// one skb right behind it (`skb_shift` from `skb->next`, once per
    /// `tcp_write_xmit` iteration, never from further skbs); if that skb is
    /// emptied it is freed and its PSH joins the head (`tcp_eat_one_skb`).
    fn grow_head(&mut self, sent: u32, amount: u32) {
        let mut acc = 0u32;
        let Some(i) = self.tx_skbs.iter().position(|t| {
            acc += t.len;
            acc > sent
        }) else {
            return;
        };
        let Some(&next) = self.tx_skbs.get(i + 1) else {
            return;
        };
        let n = amount.min(next.len);
        if n == 0 {
            return;
        }
        self.tx_skbs[i].len += n;
        self.tx_skbs[i + 1].len -= n;
        if self.tx_skbs[i + 1].len == 0 {
            self.tx_skbs[i].psh |= next.psh;
            self.tx_skbs.remove(i + 1);
            self.wmem_queued = self.wmem_queued.saturating_sub(TX_SKB_TRUESIZE);
        }
    }

    /// Send what the window and cwnd allow (`__tcp_push_pending_frames` with
    /// `tp->nonagle`): Nagle's rule may hold back a short tail.
    pub fn push(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.write_xmit_as(now, false, false, !self.params.nodelay, out);
    }

    /// `__tcp_push_pending_frames(sk, mss, TCP_NAGLE_PUSH)`: everything the
    /// window and cwnd allow, Nagle's rule aside.
    pub(super) fn push_all(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.write_xmit_as(now, false, false, false, out);
    }

    /// `tcp_nagle_check` with `tcp_minshall_check` (include/net/tcp.h,
    /// net/ipv4/tcp_output.c): a short segment waits while a short segment
    /// sent earlier is still unacknowledged.
    fn nagle_holds(&self, skb_len: u32, mss: u32) -> bool {
        let packets_out = self.snd_nxt != self.snd_una;
        skb_len < mss
            && packets_out
            && seq_lt(self.snd_una, self.snd_sml)
            && seq_le(self.snd_sml, self.snd_nxt)
    }

    /// Mirrors `tcp_write_xmit` (net/ipv4/tcp_output.c): skb by skb from
    /// the send head, each cut by `tso_fragment` to what `tcp_cwnd_test`
    /// allows (at most half the cwnd: "at least 2 GSO packets in flight")
    /// and to the whole segments that fit the peer's window
    /// (`tcp_snd_wnd_test`, `tcp_mss_split_point`), segmented by the
    /// current MSS; a queued FIN rides on the tail skb's last segment.
    /// `push_one` (`tcp_push_one`) stops after one skb. PSH goes on the
    /// last segment of a sent skb that was marked (`tcp_mark_push`, also
    /// inherited by `tcp_grow_skb`; `tso_fragment` leaves the mark on the
    /// remainder, so a head it cuts off has none), and on the last segment
    /// of every skb sent as more than one segment: that is what the 6.18
    /// oracle puts on the wire, whichever function sets it there.
    pub(super) fn write_xmit(&mut self, now: Instant, push_one: bool, out: &mut Vec<Output>) {
        self.write_xmit_as(now, push_one, false, false, out);
    }

    /// `tcp_write_xmit(push_one = 2)` for a loss probe: one skb of new data, and no new
    /// probe scheduled for it.
    pub(super) fn write_xmit_probe(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.write_xmit_as(now, true, true, false, out);
    }

    /// `nagle`: the call passes `tp->nonagle` without `TCP_NAGLE_OFF`, so
    /// `tcp_nagle_test` may hold back the tail skb (every other skb is sent
    /// with `TCP_NAGLE_PUSH`, and a skb carrying the FIN never waits).
    fn write_xmit_as(
        &mut self,
        now: Instant,
        push_one: bool,
        probe: bool,
        nagle: bool,
        out: &mut Vec<Output>,
    ) {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::LastAck
                | State::Closing
        ) {
            return;
        }
        let mss = self.current_mss();
        let max_segs = self.tso_autosize(mss);
        let mut segments_sent = 0u32;
        loop {
            let in_flight = self.snd_nxt.wrapping_sub(self.snd_una) - u32::from(self.fin_sent);
            let unsent = (self.send_buf.len() as u32).saturating_sub(in_flight);
            let fin_pending = self.fin_queued && !self.fin_sent;
            if unsent == 0 && !fin_pending {
                break;
            }
            let (mut skb_len, mut skb_psh, mut is_tail) = self.send_head(in_flight);
            // tcp_cwnd_test; before 6.10 a lone FIN was let past the cwnd.
            let in_flight_segs = in_flight.div_ceil(mss);
            let half = (self.cwnd >> 1).max(1);
            let cwnd_quota = if in_flight_segs >= self.cwnd {
                0
            } else {
                half.min(self.cwnd - in_flight_segs)
            };
            if cwnd_quota == 0 && !(self.fin_ignores_cwnd && fin_pending && unsent == 0) {
                break;
            }
            let quota_bytes = mss * cwnd_quota.clamp(1, max_segs);
            // tcp_grow_skb: the send head takes bytes from the skb behind
            // it whenever the cwnd allows a send, before tcp_snd_wnd_test:
            // so also on every push that the window then stops.
            if skb_len > 0 && skb_len < quota_bytes && !is_tail {
                self.grow_head(in_flight, quota_bytes - skb_len);
                (skb_len, skb_psh, is_tail) = self.send_head(in_flight);
            }
            let chunk_max = skb_len.min(quota_bytes);
            let carries_fin = fin_pending && is_tail;
            // tcp_nagle_test, for a one-segment skb (tso_segs == 1).
            if nagle && is_tail && !carries_fin && skb_len <= mss && self.nagle_holds(skb_len, mss)
            {
                break;
            }
            let mut lens: Vec<u32> = Vec::new();
            let mut off = 0u32;
            while off < chunk_max {
                let mut len = (chunk_max - off).min(mss);
                let end = in_flight + off + len;
                let fin_here = carries_fin && off + len == skb_len;
                if end > self.cwnd * mss {
                    break;
                }
                if end + u32::from(fin_here) > self.snd_wnd {
                    // tcp_snd_wnd_test: the first segment must fit whole;
                    // tcp_mss_split_point cuts the rest at the window's end.
                    let room = self.snd_wnd.saturating_sub(in_flight + off);
                    if off == 0 || room == 0 {
                        break;
                    }
                    len = room.min(len);
                }
                lens.push(len);
                off += len;
            }
            if carries_fin && skb_len == 0 {
                if in_flight + 1 > self.snd_wnd {
                    break;
                }
                lens.push(0);
            }
            if lens.is_empty() {
                break;
            }
            let split = off < skb_len;
            let n = lens.len();
            let chunk_len: u32 = lens.iter().sum();
            // tso_fragment leaves the mark on the remainder.
            let psh = (skb_psh && !split) || n > 1;
            for (i, len) in lens.into_iter().enumerate() {
                let last = i + 1 == n;
                let sent = self.snd_nxt.wrapping_sub(self.snd_una) - u32::from(self.fin_sent);
                let payload: Vec<u8> = self
                    .send_buf
                    .iter()
                    .skip(sent as usize)
                    .take(len as usize)
                    .copied()
                    .collect();
                let mut flags = TcpFlags::ACK;
                if last && psh && len > 0 {
                    flags |= TcpFlags::PSH;
                }
                if last && carries_fin && !split {
                    flags |= TcpFlags::FIN;
                    self.fin_sent = true;
                }
                let seq = self.snd_nxt;
                let repr = self.segment(now, seq, flags, payload);
                self.snd_nxt = seq.wrapping_add(repr.seq_len());
                self.tx_times
                    .push_back((self.snd_nxt, now, flags & TcpFlags::PSH != 0));
                segments_sent += 1;
                out.push(Output::Segment {
                    repr,
                    ect: self.ecn_ok && len > 0,
                });
                // tcp_event_new_data_sent: the first segment in flight arms the RTO, and
                // one sent while a loss probe is pending turns it back into the RTO.
                if self.rtx_timer.is_none() {
                    self.retransmits = 0;
                    self.arm_rtx(now, self.rto);
                } else if self.rtx_kind == XmitTimer::LossProbe {
                    self.rearm_rto(now);
                }
            }
            // tcp_minshall_update: the skb sent ends in a short segment.
            if chunk_len < n as u32 * mss {
                self.snd_sml = self.snd_nxt;
            }
            if push_one || self.fin_sent {
                break;
            }
        }
        // tcp_write_xmit: "Send one loss probe per tail loss episode" (not after the
        // probe's own new data, push_one == 2).
        if segments_sent > 0 && !probe {
            self.schedule_loss_probe(now, false);
        }
    }
}
