//! The receive queue: the skbs received segments land in (their truesize feeds the
//! window), and what `recv()` reads from them.
//!
//! Mirrors, in Linux 6.18: `tcp_queue_rcv`, `tcp_try_coalesce` (net/ipv4/tcp_input.c),
//! `tcp_recvmsg_locked` (net/ipv4/tcp.c) and the skb layout of `__alloc_skb`
//! (net/core/skbuff.c) for the frames the peer sends.

use super::{Output, State, Tcb};
use crate::time::Instant;

/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` on x86-64.
const SKB_HEAD_OVERHEAD: u32 = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64.
const SKB_SHINFO_SIZE: u32 = 320;
/// `SOCK_MIN_RCVBUF` (`TCP_SKB_MIN_TRUESIZE`: 2048 + aligned `sizeof(struct sk_buff)`).
pub const SOCK_MIN_RCVBUF: u32 = 2048 + SKB_HEAD_OVERHEAD;
/// The headroom `packet_snd` reserves on a veth (`LL_RESERVED_SPACE`: the
/// 14-byte Ethernet header rounded down to 16, plus 16).
const RX_HEADROOM: u32 = 16;

/// One skb in the receive queue: its unread bytes, its `truesize` (charged
/// to `sk_rmem_alloc` until it is eaten), the room left behind its data
/// (where `tcp_try_coalesce` copies the next segment) and whether it carries
/// the FIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RxSkb {
    pub(super) len: u32,
    truesize: u32,
    pub(super) tailroom: u32,
    pub(super) fin: bool,
}

/// How the skb of a received segment whose Ethernet frame is `frame_len`
/// bytes long is laid out, for the frames the harness's peer sends: a
/// linear skb that `packet_snd` allocated on the far end of the veth
/// (`__alloc_skb`: a kmalloc'ed head of `SKB_DATA_ALIGN(headroom + frame) +
/// shinfo`, rounded up to its kmalloc bucket). Returns its `truesize`
/// (`SKB_TRUESIZE` of the usable head) and its tailroom. An estimate of what
/// another sender or driver would allocate; measured on the host through the
/// windows Linux offers (a 600-byte segment is copied into the 638 bytes
/// behind a 1000-byte SYN-ACK's data, a 580-byte one is charged 1280).
pub(super) fn rx_skb_layout(frame_len: u32) -> (u32, u32) {
    // Every head here is above 256 bytes, where the kmalloc buckets are powers of two.
    let head = (RX_HEADROOM + frame_len).div_ceil(64) * 64 + SKB_SHINFO_SIZE;
    let usable = head.next_power_of_two() - SKB_SHINFO_SIZE;
    (
        usable + SKB_HEAD_OVERHEAD + SKB_SHINFO_SIZE,
        usable - RX_HEADROOM - frame_len,
    )
}

/// The `truesize` of a received segment whose Ethernet frame is `frame_len`
/// bytes long ([`rx_skb_layout`]). It feeds `tcp_space` and `scaling_ratio`.
pub fn rx_truesize(frame_len: u32) -> u32 {
    rx_skb_layout(frame_len).0
}

impl Tcb {
    /// `tcp_queue_rcv`: append an in-order segment, whose Ethernet frame was
    /// `frame_len` bytes, to the receive queue: into the tail skb when it fits
    /// there (`tcp_try_coalesce`), else as an skb of its own, charged its
    /// truesize in `sk_rmem_alloc` (`skb_set_owner_r`).
    pub(super) fn queue_rcv(&mut self, payload: &[u8], fin: bool, frame_len: u32) {
        self.recv_buf.extend(payload);
        let len = payload.len() as u32;
        if let Some(tail) = self.rx_skbs.back_mut() {
            // tcp_try_coalesce → skb_try_coalesce: a segment that fits behind
            // the tail skb's data is copied there, and costs no truesize.
            if len <= tail.tailroom && !tail.fin {
                tail.len += len;
                tail.tailroom -= len;
                tail.fin = fin;
                return;
            }
        }
        let (truesize, tailroom) = rx_skb_layout(frame_len);
        self.rx_skbs.push_back(RxSkb {
            len,
            truesize,
            tailroom,
            fin,
        });
        self.rmem_alloc += truesize;
    }

    /// Sequence space received but not yet read (`rcv_nxt - copied_seq`).
    pub(super) fn unread_seq(&self) -> u32 {
        self.rx_skbs.iter().map(|s| s.len + u32::from(s.fin)).sum()
    }

    /// Read queued data (`tcp_recvmsg_locked`): copy from the receive queue,
    /// eating (and uncharging) each skb read to its end; a read that reaches
    /// the FIN eats it and stops there. Then `tcp_cleanup_rbuf`, which may
    /// send an ACK or a window update.
    pub fn recv(&mut self, now: Instant, buf: &mut [u8], out: &mut Vec<Output>) -> usize {
        let mut copied = 0usize;
        while copied < buf.len() {
            let Some(skb) = self.rx_skbs.front_mut() else {
                break;
            };
            if skb.len > 0 {
                let n = (buf.len() - copied).min(skb.len as usize);
                for (d, s) in buf[copied..copied + n]
                    .iter_mut()
                    .zip(self.recv_buf.drain(..n))
                {
                    *d = s;
                }
                copied += n;
                skb.len -= n as u32;
                if skb.len > 0 {
                    break;
                }
            }
            let fin = skb.fin;
            self.rmem_alloc -= skb.truesize;
            self.rx_skbs.pop_front();
            if fin {
                break;
            }
        }
        if self.state.is_synchronized() && self.state != State::TimeWait {
            self.cleanup_rbuf(now, copied, out);
        }
        copied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_truesize_buckets() {
        // 66-byte frame: head 64 + 128 + 320 = 512 → SKB_TRUESIZE = 512 + 256.
        assert_eq!(rx_truesize(66), 768);
        // 1514-byte frame: 64 + 1536 + 320 → 2048-byte bucket.
        assert_eq!(rx_truesize(1514), 2048 + 256);
    }
}
