//! The write queue: how `send()` cuts data into skbs, charges them to the send buffer
//! and marks PSH, and how acknowledged bytes leave it.
//!
//! Mirrors, in Linux 6.18: `tcp_sendmsg_locked`, `forced_push`, `tcp_mark_push`,
//! `tcp_xmit_size_goal` (net/ipv4/tcp.c), `tcp_sndbuf_expand` (net/ipv4/tcp_input.c)
//! and `tcp_trim_head`/`tcp_clean_rtx_queue`'s freeing of acked skbs.

use super::{seq_lt, Output, Tcb, GSO_MAX_SIZE, TCP_INIT_CWND, TCP_MSS_DEFAULT};
use crate::time::Instant;

/// `ca_ops->sndbuf_expand` of the oracle's congestion control: the host
/// default is BBR (`bbr_sndbuf_expand` returns 3; Reno/CUBIC would be 2).
const BBR_SNDBUF_EXPAND: u32 = 3;
/// `MAX_TCP_HEADER + SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` in
/// `tcp_sndbuf_expand` on the oracle kernel. Measured, not derived: the
/// kernel's send() counts with `TCP_MAXSEG` 60..1460 and a 1-byte window
/// put it in (488, 588].
const SNDBUF_HEAD_OVERHEAD: u32 = 576;
/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` as `tcp_sndbuf_expand` adds it:
/// 256 on x86-64. (384 was fitted while the model missed the skbs that
/// `tcp_grow_skb` eats, and frees, during sendmsg with a 1-byte window.)
const SNDBUF_SKB_SIZE: u32 = 256;
/// Truesize of an skb from `tcp_stream_alloc_skb` before payload
/// (`SKB_TRUESIZE(skb_end_offset(skb))`); each payload byte adds one.
/// Measured with the above: the kernel's send() counts with a 1-byte
/// window and MSS 60..1460 (36-byte skbs, 49 or 84 of them, 4 eaten) fit
/// 827..=833.
pub(super) const TX_SKB_TRUESIZE: u32 = 830;

/// One skb of the write/retransmit queues: its payload bytes not yet acked
/// and whether `tcp_mark_push` set PSH on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TxSkb {
    pub(super) len: u32,
    pub(super) psh: bool,
}

impl Tcb {
    /// Mirrors `tcp_sndbuf_expand` (net/ipv4/tcp_input.c): room for
    /// `sndbuf_expand` (BBR: 3) × `max(TCP_INIT_CWND, cwnd, reordering + 1)`
    /// worst-case skbs of `max(mss_clamp, mss_cache)` bytes each, capped at
    /// `tcp_wmem[2]`.
    pub(super) fn sndbuf_expand(&mut self) {
        let mss_cache = self
            .mss_cache
            .saturating_sub(if self.tstamp_ok { 12 } else { 0 });
        let per_mss = (self.mss_clamp.max(mss_cache) + SNDBUF_HEAD_OVERHEAD).next_power_of_two()
            + SNDBUF_SKB_SIZE;
        let nr_segs = TCP_INIT_CWND.max(self.cwnd).max(4);
        let sndmem = BBR_SNDBUF_EXPAND * nr_segs * per_mss;
        if self.sndbuf < sndmem {
            self.sndbuf = sndmem.min(self.wmem_max);
        }
    }

    /// Queue data (`tcp_sendmsg_locked`); the caller checked the state.
    /// Data fills the tail skb while it is unsent and shorter than
    /// `size_goal`; a new skb is started only while `sk_stream_memory_free`
    /// (`sk_wmem_queued < sk_sndbuf`), each charged its truesize. Each skb
    /// filled to `size_goal` with more data to come is pushed at once: with
    /// PSH and everything queued if `forced_push`, else alone if it is the
    /// send head (`tcp_push_one`). At the end `tcp_push` marks PSH on the
    /// tail skb and pushes. Returns the bytes accepted (0: the caller
    /// reports EAGAIN).
    pub fn send(&mut self, now: Instant, data: &[u8], out: &mut Vec<Output>) -> usize {
        let size_goal = self.size_goal();
        let mut copied = 0usize;
        while copied < data.len() {
            let sent =
                (self.snd_nxt.wrapping_sub(self.snd_una) - u32::from(self.fin_sent)) as usize;
            let unsent = self.send_buf.len().saturating_sub(sent) as u32;
            let left = (data.len() - copied) as u32;
            let tail_room = match self.tx_skbs.back() {
                Some(t) if t.len <= unsent && t.len < size_goal => size_goal - t.len,
                _ => 0,
            };
            let copy = if tail_room > 0 {
                let copy = tail_room.min(left);
                self.tx_skbs.back_mut().expect("tail").len += copy;
                copy
            } else {
                if self.wmem_queued >= self.sndbuf {
                    break;
                }
                let copy = size_goal.min(left);
                self.tx_skbs.push_back(TxSkb {
                    len: copy,
                    psh: false,
                });
                self.wmem_queued += TX_SKB_TRUESIZE;
                copy
            };
            self.wmem_queued += copy;
            self.send_buf.extend(&data[copied..copied + copy as usize]);
            copied += copy as usize;
            if copied == data.len() {
                break;
            }
            let tail_len = self.tx_skbs.back().map_or(0, |t| t.len);
            if tail_len < size_goal {
                continue;
            }
            if self.forced_push() {
                self.mark_push();
                self.push_all(now, out);
            } else if unsent + copy == tail_len {
                // The full skb is the send head: tcp_push_one.
                self.write_xmit(now, true, out);
            }
        }
        if copied > 0 {
            // tcp_push without MSG_MORE.
            self.mark_push();
        }
        self.push(now, out);
        copied
    }

    /// `write_seq`: the end of the data queued so far.
    fn write_seq_now(&self) -> u32 {
        self.snd_una
            .wrapping_add(self.send_buf.len() as u32)
            .wrapping_add(u32::from(self.fin_queued))
    }

    /// `forced_push` (net/ipv4/tcp.c): more than half the peer's largest
    /// window was queued since PSH was last marked.
    fn forced_push(&self) -> bool {
        seq_lt(
            self.pushed_seq.wrapping_add(self.max_window >> 1),
            self.write_seq_now(),
        )
    }

    /// `tcp_mark_push`: PSH on the tail skb, `pushed_seq = write_seq`.
    fn mark_push(&mut self) {
        if let Some(t) = self.tx_skbs.back_mut() {
            t.psh = true;
        }
        self.pushed_seq = self.write_seq_now();
    }

    /// The send head (`tcp_send_head`) after `sent` bytes went out: the
    /// unsent bytes of the first skb not sent whole (what `tso_fragment`
    /// left of it), its PSH mark, and whether it is the write queue's tail.
    pub(super) fn send_head(&self, sent: u32) -> (u32, bool, bool) {
        let mut acc = 0u32;
        let n = self.tx_skbs.len();
        for (i, t) in self.tx_skbs.iter().enumerate() {
            if acc + t.len > sent {
                return (acc + t.len - sent, t.psh, i + 1 == n);
            }
            acc += t.len;
        }
        (0, false, true)
    }

    /// Mirrors `tcp_send_mss` → `tcp_xmit_size_goal` (net/ipv4/tcp.c): TCP
    /// always builds GSO skbs, so the goal is the GSO maximum bounded to
    /// half the peer's largest window (`tcp_bound_to_half_wnd`), in whole
    /// MSS, at least one MSS.
    fn size_goal(&self) -> u32 {
        let mss = self.current_mss();
        let hdr = if self.tstamp_ok { 32 } else { 20 };
        let cutoff = if self.max_window > TCP_MSS_DEFAULT {
            self.max_window / 2
        } else {
            self.max_window
        };
        let mut goal = GSO_MAX_SIZE;
        if cutoff != 0 && goal > cutoff {
            goal = cutoff.max(68 - hdr);
        }
        (goal / mss * mss).max(mss)
    }

    /// `tcp_clean_rtx_queue` / `tcp_trim_head`: acked bytes leave the
    /// skbs at the head; a skb acked whole is freed with its truesize.
    pub(super) fn uncharge_acked(&mut self, mut acked: u32) {
        while acked > 0 {
            let Some(head) = self.tx_skbs.front_mut() else {
                break;
            };
            let n = acked.min(head.len);
            head.len -= n;
            acked -= n;
            self.wmem_queued = self.wmem_queued.saturating_sub(n);
            if head.len == 0 {
                self.tx_skbs.pop_front();
                self.wmem_queued = self.wmem_queued.saturating_sub(TX_SKB_TRUESIZE);
            }
        }
    }
}
