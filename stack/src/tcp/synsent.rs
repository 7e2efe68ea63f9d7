//! A segment arriving in SYN-SENT: the SYN-ACK's acceptability, its options, the
//! first RTT sample and RTO, then ESTABLISHED and the final ACK; or a simultaneous open.
//!
//! Mirrors, in Linux 6.18: `tcp_rcv_synsent_state_process`, `tcp_parse_options`
//! (estab = 0), `tcp_reset` and `tcp_ecn_rcv_synack` (net/ipv4/tcp_input.c).

use super::ack::ack_flags;
use super::{
    between, ms, seq_lt, Output, State, Tcb, RCV_SHUTDOWN, TCP_DELACK_MAX, TCP_HEADER_LEN,
    TCP_INIT_CWND, TCP_MAX_QUICKACKS, TCP_MAX_WSCALE, TCP_RTO_MIN, TCP_TIMEOUT_FALLBACK,
    TCP_TIMEOUT_INIT, TCP_TIMEOUT_MIN,
};
use crate::config::{Config, Mutation};
use crate::errno::Errno;
use crate::time::{timer_wheel_expiry, Instant, NANOS_PER_JIFFY};
use crate::wire::{TcpFlags, TcpOption, TcpRepr};

#[derive(Debug, Default, Clone, Copy)]
struct HandshakeOptions {
    mss: Option<u32>,
    wscale: Option<u8>,
    sack: bool,
    ts: Option<(u32, u32)>,
}

impl Tcb {
    /// The options `tcp_parse_options(estab=0)` takes from a handshake segment.
    fn parse_handshake_options(&self, cfg: &Config, seg: &TcpRepr) -> HandshakeOptions {
        let mut h = HandshakeOptions::default();
        for o in &seg.options {
            match o {
                TcpOption::Mss(m) if seg.flags.syn() && *m != 0 => {
                    let mut m = *m as u32;
                    if self.params.user_mss != 0 && self.params.user_mss < m {
                        m = self.params.user_mss;
                    }
                    h.mss = Some(m);
                }
                TcpOption::WindowScale(w) if seg.flags.syn() && cfg.tcp_window_scaling => {
                    if *w > TCP_MAX_WSCALE {
                        tracing::debug!(wscale = *w, "Illegal window scaling value > 14 received");
                    }
                    h.wscale = Some(if cfg.mutation == Some(Mutation::UnclampedWscale) {
                        *w
                    } else {
                        (*w).min(TCP_MAX_WSCALE)
                    });
                }
                TcpOption::SackPermitted if seg.flags.syn() && cfg.tcp_sack => h.sack = true,
                TcpOption::Timestamps { tsval, tsecr } if cfg.tcp_timestamps != 0 => {
                    h.ts = Some((*tsval, *tsecr));
                }
                _ => {}
            }
        }
        h
    }

    /// Apply the peer's handshake options (the SYN-ACK branch of
    /// `tcp_rcv_synsent_state_process`, and the simultaneous-open SYN).
    fn apply_handshake_options(&mut self, h: &HandshakeOptions, seg: &TcpRepr) {
        if let Some(m) = h.mss {
            self.mss_clamp = m;
        }
        match h.wscale {
            Some(w) if self.wscale_ok => self.snd_wscale = w,
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.wscale_ok = false;
                self.window_clamp = self.window_clamp.min(65535);
            }
        }
        self.tcp_header_len = TCP_HEADER_LEN + if h.ts.is_some() { 12 } else { 0 };
        if let Some((tsval, _)) = h.ts {
            self.tstamp_ok = true;
            self.ts_recent = tsval;
            self.advmss = self.advmss.saturating_sub(12);
        } else {
            self.tstamp_ok = false;
        }
        self.sack_ok = h.sack;
        self.snd_wnd = seg.window as u32;
        self.max_window = self.snd_wnd;
        self.sync_mss();
    }

    /// Mirrors `tcp_rcv_synsent_state_process` (net/ipv4/tcp_input.c).
    pub(super) fn synsent_input(
        &mut self,
        now: Instant,
        cfg: &Config,
        seg: &TcpRepr,
        tos: u8,
        out: &mut Vec<Output>,
    ) {
        let h = self.parse_handshake_options(cfg, seg);
        if seg.flags.ack() {
            // 1. Unacceptable ACK: ack <= ISN or ack > snd_nxt.
            if !seq_lt(self.snd_una, seg.ack) || seq_lt(self.snd_nxt, seg.ack) {
                if self.retransmits == 0 {
                    self.arm_rtx(now, TCP_TIMEOUT_MIN);
                }
                out.extend(Self::reset_for(seg, tos));
                return;
            }
            // 2. PAWS for the active side.
            if let Some((_, tsecr)) = h.ts {
                if tsecr != 0
                    && !between(
                        tsecr.wrapping_sub(self.ts_offset),
                        self.retrans_stamp_ms,
                        ms(now),
                    )
                {
                    tracing::debug!(tsecr, "PAWSACTIVEREJECTED");
                    out.extend(Self::reset_for(seg, tos));
                    return;
                }
            }
            // 3. RST with an acceptable ACK: tcp_reset → ECONNREFUSED.
            if seg.flags.rst() {
                self.done_with_error(Errno::ECONNREFUSED);
                return;
            }
            // 4. No SYN: drop.
            if !seg.flags.syn() {
                return;
            }
            // 5. SYN-ACK accepted.
            if self.ecn_requested {
                let ace = (seg.flags.0 & (TcpFlags::AE | TcpFlags::CWR | TcpFlags::ECE)) >> 6;
                // tcp_ecn_rcv_synack: ECE alone enables RFC 3168 ECN; 0/7 disable it.
                // The AccECN outcomes (2,3,4,5,6) are not modelled: ECN stays off.
                self.ecn_ok = ace == 0b001;
            }
            self.snd_una = seg.ack;
            self.irs = seg.seq;
            self.rcv_nxt = seg.seq.wrapping_add(1);
            self.apply_handshake_options(&h, seg);
            // tcp_init_transfer: cwnd 1 after >1 SYN retransmission unless the
            // SYN-ACK echoes the first SYN (tcp_try_undo_spurious_syn).
            let spurious = h.ts.is_some_and(|(_, e)| {
                e != 0 && e.wrapping_sub(self.ts_offset) == self.retrans_stamp_ms
            });
            self.cwnd = if self.total_retrans > 1 && !spurious {
                1
            } else {
                TCP_INIT_CWND
            };
            // RTT sample → first RTO (tcp_rtt_estimator): srtt + max(2·rtt, rto_min).
            self.srtt = None;
            self.rto = if self.total_retrans == 0 {
                self.srtt = Some(now.saturating_duration_since(self.first_syn_at));
                let us = now.saturating_duration_since(self.first_syn_at).as_micros() as u64;
                self.rtt_sample(us.max(1), us.max(1));
                let rtt = now.saturating_duration_since(self.first_syn_at).as_nanos() as u64
                    / NANOS_PER_JIFFY;
                rtt + (2 * rtt).max(TCP_RTO_MIN)
            } else if h.ts.is_some() {
                TCP_TIMEOUT_INIT
            } else {
                TCP_TIMEOUT_FALLBACK
            };
            self.retransmits = 0;
            self.backoff = 0;
            self.rtx_timer = None;
            self.set_state(State::Established);
            self.finish_connect(now);
            // tcp_init_transfer → tcp_init_congestion_control → bbr_init:
            // the pacing rate from the handshake's RTT and the MSS the
            // SYN-ACK settled (fuzz-1-10: after a 4 ms handshake a 5-segment
            // TSO packet goes out).
            self.update_pacing_rate(self.current_mss(), self.cwnd, 1);
            if self.params.fastopen_connect && (!seg.payload.is_empty() || seg.flags.fin()) {
                // tcp_rcv_fastopen_synack → tcp_fastopen_add_skb: keep payload and FIN.
                let frame_len =
                    14 + self.net_header_len + seg.header_len() as u32 + seg.payload.len() as u32;
                self.queue_rcv(&seg.payload, seg.flags.fin(), frame_len);
                self.rcv_nxt = self.rcv_nxt.wrapping_add(seg.payload.len() as u32);
                if seg.flags.fin() {
                    // tcp_fin: CLOSE_WAIT, and pingpong mode.
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                    self.shutdown |= RCV_SHUTDOWN;
                    self.set_state(State::CloseWait);
                    self.ack.pingpong = self.pingpong_thresh;
                }
            }
            // Non-TFO SYN-ACK payload and FIN are discarded.
            if self.in_pingpong_mode() {
                // tcp_rcv_synsent_state_process: "Save one ACK": schedule
                // it, quickack mode, and the delayed-ACK timer at
                // TCP_DELACK_MAX; data sent meanwhile carries it.
                self.schedule_ack();
                self.enter_quickack_mode(TCP_MAX_QUICKACKS);
                let now_j = now.jiffies();
                self.ack.pending |= ack_flags::TIMER;
                self.ack.timeout = now_j + TCP_DELACK_MAX;
                self.delack_timer = Some(timer_wheel_expiry(
                    now,
                    TCP_DELACK_MAX,
                    self.params.jiffies_offset,
                ));
            } else {
                self.send_ack(now, out);
            }
            self.push(now, out);
            return;
        }
        if seg.flags.rst() {
            return; // RST without ACK: discard.
        }
        if seg.flags.syn() {
            // Simultaneous open: SYN_RECV and a SYN-ACK with our ISN.
            self.irs = seg.seq;
            self.rcv_nxt = seg.seq.wrapping_add(1);
            self.apply_handshake_options(&h, seg);
            if self.ecn_requested {
                self.ecn_ok = seg.flags.has(TcpFlags::ECE | TcpFlags::CWR);
            }
            self.set_state(State::SynRecv);
            let synack = self.build_syn(now, false);
            out.push(Output::Segment {
                repr: synack,
                ect: false,
            });
        }
    }
}
