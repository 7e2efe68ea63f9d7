//! Building segments: the SYN and its options, the header and option block of every
//! other segment, pure ACKs, and the RST the control socket answers with.
//!
//! Mirrors, in Linux 6.18: `tcp_syn_options`, `tcp_options_write`,
//! `__tcp_transmit_skb`, `tcp_send_ack` (net/ipv4/tcp_output.c) and
//! `tcp_v4_send_reset` (net/ipv4/tcp_ipv4.c).

use super::{ms, Output, State, Tcb};
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpOption, TcpRepr};

impl Tcb {
    /// The TSval for a segment sent at `now`.
    fn tsval(&self, now: Instant) -> u32 {
        ms(now).wrapping_add(self.ts_offset)
    }

    /// Mirrors `tcp_syn_options` + `tcp_options_write` (net/ipv4/tcp_output.c)
    /// for the SYN and the simultaneous-open SYN-ACK: MSS; SACK_PERM fused with
    /// TS, or NOP NOP TS, or NOP NOP SACK_PERM; NOP WS; TFO cookie request
    /// `22 02 01 01` on the first transmission only.
    pub fn syn_options(&self, now: Instant) -> Vec<TcpOption> {
        let mut o = vec![TcpOption::Mss(self.advertise_mss() as u16)];
        let ts = TcpOption::Timestamps {
            tsval: self.tsval(now),
            tsecr: self.ts_recent,
        };
        match (self.syn_offer_ts, self.syn_offer_sack) {
            (true, true) => o.extend([TcpOption::SackPermitted, ts]),
            (true, false) => o.extend([TcpOption::Nop, TcpOption::Nop, ts]),
            (false, true) => o.extend([TcpOption::Nop, TcpOption::Nop, TcpOption::SackPermitted]),
            (false, false) => {}
        }
        if self.syn_offer_ws {
            o.extend([TcpOption::Nop, TcpOption::WindowScale(self.rcv_wscale)]);
        }
        if self.tfo_request {
            o.extend([TcpOption::FastOpen(vec![]), TcpOption::Nop, TcpOption::Nop]);
        }
        o
    }

    /// The SYN (or, in SYN_RECV, the SYN-ACK) as sent at `now`.
    pub(super) fn build_syn(&self, now: Instant, _retransmit: bool) -> TcpRepr {
        let mut flags = TcpFlags::SYN;
        if self.state == State::SynRecv {
            flags |= TcpFlags::ACK;
            if self.ecn_ok {
                flags |= TcpFlags::ECE;
            }
        } else if self.syn_ecn_flags {
            flags |= TcpFlags::ECE | TcpFlags::CWR;
        }
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.iss,
            ack: if self.state == State::SynRecv {
                self.rcv_nxt
            } else {
                0
            },
            flags: TcpFlags(flags),
            window: self.rcv_wnd.min(65535) as u16,
            urgent: 0,
            options: self.syn_options(now),
            payload: vec![],
        }
    }

    fn ack_options(&self, now: Instant) -> Vec<TcpOption> {
        self.ts_block(now, self.tstamp_ok)
    }

    /// NOP, NOP, timestamps (our clock, echoing `ts_recent`) when `present`, else nothing:
    /// the option block of every non-SYN segment Linux builds.
    pub(super) fn ts_block(&self, now: Instant, present: bool) -> Vec<TcpOption> {
        if present {
            vec![
                TcpOption::Nop,
                TcpOption::Nop,
                TcpOption::Timestamps {
                    tsval: self.tsval(now),
                    tsecr: self.ts_recent,
                },
            ]
        } else {
            vec![]
        }
    }

    /// A non-SYN segment as `__tcp_transmit_skb` builds it: the window from
    /// `tcp_select_window`, then `tcp_event_ack_sent` if it carries an ACK
    /// (the owed ACK rides on it) and `tcp_event_data_sent` if it carries data.
    pub(super) fn segment(
        &mut self,
        now: Instant,
        seq: u32,
        flags: u16,
        payload: Vec<u8>,
    ) -> TcpRepr {
        let window = self.select_window();
        if flags & TcpFlags::ACK != 0 {
            self.event_ack_sent();
        }
        if !payload.is_empty() {
            self.event_data_sent(now);
        }
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: self.rcv_nxt,
            flags: TcpFlags(flags),
            window,
            urgent: 0,
            options: self.ack_options(now),
            payload,
        }
    }

    /// A pure ACK (`tcp_send_ack`).
    pub(super) fn send_ack(&mut self, now: Instant, out: &mut Vec<Output>) {
        let repr = self.segment(now, self.snd_nxt, TcpFlags::ACK, vec![]);
        out.push(Output::Segment { repr, ect: false });
    }

    /// A RST answering `seg` (`tcp_v4_send_reset`): `seq = SEG.ACK` if it has
    /// ACK, else RST|ACK acknowledging it. Never in reply to a RST.
    pub fn reset_for(seg: &TcpRepr, tos: u8) -> Option<Output> {
        if seg.flags.rst() {
            return None;
        }
        let repr = if seg.flags.ack() {
            TcpRepr {
                src_port: seg.dst_port,
                dst_port: seg.src_port,
                seq: seg.ack,
                flags: TcpFlags(TcpFlags::RST),
                ..TcpRepr::default()
            }
        } else {
            TcpRepr {
                src_port: seg.dst_port,
                dst_port: seg.src_port,
                seq: 0,
                ack: seg.seq.wrapping_add(seg.seq_len()),
                flags: TcpFlags(TcpFlags::RST | TcpFlags::ACK),
                ..TcpRepr::default()
            }
        };
        Some(Output::ControlReset {
            repr,
            tos: tos & !3,
        })
    }
}
