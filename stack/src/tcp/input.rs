//! Segment arrival once the connection is past SYN-SENT: acceptability, RST and SYN
//! handling, ACK processing, data and FIN, and the authentication-option check that
//! drops a segment before any of it.
//!
//! Mirrors, in Linux 6.18: `tcp_rcv_state_process`, `tcp_rcv_established`,
//! `tcp_ack`, `tcp_data_queue`, `tcp_fin`, `tcp_do_parse_auth_options`
//! (net/ipv4/tcp_input.c), simplified to what the scenarios need.

use super::recv::rx_truesize;
use super::timers::XmitTimer;
use super::{
    between, seq_le, seq_lt, Output, State, Tcb, RCV_SHUTDOWN, TCP_MAX_QUICKACKS, TCP_TIMEWAIT_LEN,
};
use crate::config::Config;
use crate::errno::Errno;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpOption, TcpRepr};

/// `TCPOLEN_MD5SIG`: the shortest option `tcp_do_parse_auth_options` looks
/// for when the kernel has `CONFIG_TCP_MD5SIG` but not `CONFIG_TCP_AO` (as
/// the 6.18 oracle host does; with TCP-AO it would be 5).
const TCPOLEN_MD5SIG: usize = 18;

/// Mirrors `tcp_do_parse_auth_options` (net/ipv4/tcp_input.c) as
/// `tcp_inbound_hash` and `tcp_v4_send_reset` use it: scanning the options
/// while at least `TCPOLEN_MD5SIG` bytes remain, a "silly" option length
/// (< 2), one running past the header, or a malformed MD5 option makes the
/// segment invalid. A full socket then drops it
/// (`SKB_DROP_REASON_TCP_AUTH_HDR`), and no RST answers it.
pub fn auth_options_invalid(options: &[u8]) -> bool {
    const TCPOPT_EOL: u8 = 0;
    const TCPOPT_NOP: u8 = 1;
    const TCPOPT_MD5SIG: u8 = 19;
    let mut i = 0usize;
    let mut length = options.len();
    let mut md5_seen = false;
    while length >= TCPOLEN_MD5SIG {
        let opcode = options[i];
        i += 1;
        match opcode {
            TCPOPT_EOL => return false,
            TCPOPT_NOP => {
                length -= 1;
                continue;
            }
            _ => {
                let opsize = options[i] as usize;
                i += 1;
                if opsize < 2 || opsize > length {
                    return true;
                }
                if opcode == TCPOPT_MD5SIG {
                    if opsize != TCPOLEN_MD5SIG || md5_seen {
                        return true;
                    }
                    md5_seen = true;
                }
                i += opsize - 2;
                length -= opsize;
            }
        }
    }
    false
}

impl Tcb {
    /// Handle a segment for this connection. Returns what to send.
    pub fn input(
        &mut self,
        now: Instant,
        cfg: &Config,
        seg: &TcpRepr,
        tos: u8,
        out: &mut Vec<Output>,
    ) {
        match self.state {
            State::Closed => {}
            State::SynSent => self.synsent_input(now, cfg, seg, tos, out),
            State::TimeWait => self.timewait_input(now, seg, tos, out),
            _ => self.established_input(now, seg, tos, out),
        }
    }

    /// A simplified `tcp_rcv_state_process`/`tcp_rcv_established` for
    /// SYN_RECV (simultaneous open) and the synchronized states.
    fn established_input(&mut self, now: Instant, seg: &TcpRepr, tos: u8, out: &mut Vec<Output>) {
        let wnd = self.rcv_wnd.max(1);
        let in_window = between(seg.seq, self.rcv_nxt, self.rcv_nxt.wrapping_add(wnd))
            || (seg.seq_len() > 0
                && between(
                    seg.seq.wrapping_add(seg.seq_len() - 1),
                    self.rcv_nxt,
                    self.rcv_nxt.wrapping_add(wnd),
                ));
        if seg.flags.rst() {
            if seg.seq == self.rcv_nxt {
                // tcp_reset: the errno depends on the state.
                let err = match self.state {
                    State::CloseWait => Errno::EPIPE,
                    _ => Errno::ECONNRESET,
                };
                self.done_with_error(err);
            } else if in_window {
                self.send_ack(now, out); // RFC 5961 challenge ACK
            }
            return;
        }
        if self.state == State::SynRecv {
            if seg.flags.syn()
                && seg.flags.ack()
                && seg.seq.wrapping_add(1) == self.rcv_nxt
                && seg.ack == self.snd_nxt
            {
                // The peer's SYN-ACK: established, ACK with a D-SACK for the duplicate SYN.
                self.snd_una = seg.ack;
                self.snd_wnd = seg.window as u32;
                self.set_state(State::Established);
                self.finish_connect(now);
                self.rtx_timer = None;
                self.retransmits = 0;
                let mut ack = self.segment(now, self.snd_nxt, TcpFlags::ACK, vec![]);
                if self.sack_ok {
                    ack.options.extend([
                        TcpOption::Nop,
                        TcpOption::Nop,
                        TcpOption::Sack(vec![(seg.seq, seg.seq.wrapping_add(1))]),
                    ]);
                }
                out.push(Output::Segment {
                    repr: ack,
                    ect: false,
                });
                return;
            }
            if seg.flags.ack() && !seg.flags.syn() && seg.ack == self.snd_nxt {
                self.snd_una = seg.ack;
                self.snd_wnd = (seg.window as u32).wrapping_shl(self.snd_wscale.into());
                self.set_state(State::Established);
                self.finish_connect(now);
                self.rtx_timer = None;
                self.retransmits = 0;
            } else {
                return;
            }
        }
        if seg.flags.syn() {
            self.send_ack(now, out); // challenge ACK
            return;
        }
        if !in_window && seg.seq_len() > 0 {
            // tcp_send_dupack: an old segment (a retransmission) also enters quickack mode.
            if seq_lt(seg.seq, self.rcv_nxt) {
                self.enter_quickack_mode(TCP_MAX_QUICKACKS);
            }
            self.send_ack(now, out);
            return;
        }
        // tcp_replace_ts_recent: only a segment that starts at or before the
        // last window offered (`rcv_wup`, the `rcv_nxt` of the last ACK sent)
        // updates the TSval echoed; while an ACK is owed for segments that
        // came before, it keeps echoing the earliest of them (RFC 7323 §4.3).
        if let Some((tsval, _)) = seg.timestamps() {
            if self.tstamp_ok && seq_le(seg.seq, self.rcv_wup) {
                self.ts_recent = tsval;
            }
        }
        // New data beyond rcv_nxt (a FIN alone does not count).
        let new_data = seg.seq_len() > 0
            && seq_lt(
                self.rcv_nxt,
                seg.seq
                    .wrapping_add(seg.seq_len())
                    .wrapping_sub(u32::from(seg.flags.fin())),
            );
        if seg.flags.ack() {
            let before = self.state;
            self.process_ack(now, seg);
            if self.state == State::Closed {
                return;
            }
            // tcp_rcv_state_process, step 5, TCP_FIN_WAIT1: once our FIN is
            // acked an orphan that receives new data ("out of order FIN after
            // close()") is done, and the caller answers with a RST
            // (TCPABORTONDATA, tcp_v4_do_rcv → tcp_v4_send_reset).
            if before == State::FinWait1 && self.state == State::FinWait2 && self.dead && new_data {
                self.done();
                out.extend(Self::reset_for(seg, tos));
                return;
            }
            // The same step for an orphan without new data: unless a FIN rides
            // on the ACK (kept as a full socket, `tcp_reset_keepalive_timer`),
            // it becomes a FIN_WAIT2 timewait socket and the segment is
            // consumed (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`).
            if before == State::FinWait1 && self.state == State::FinWait2 && self.dead {
                let tmo = self.fin_time();
                if tmo <= TCP_TIMEWAIT_LEN && !seg.flags.fin() {
                    self.time_wait(now, true, tmo);
                    return;
                }
            }
        }
        // tcp_rcv_state_process, step 7, FIN_WAIT1/2 after shutdown(RCV):
        // "RFC 1122 says we MUST send a reset" (tcp_reset, then the reply RST).
        if matches!(self.state, State::FinWait1 | State::FinWait2)
            && self.shutdown & RCV_SHUTDOWN != 0
            && new_data
        {
            self.done_with_error(Errno::ECONNRESET);
            out.extend(Self::reset_for(seg, tos));
            return;
        }
        // tcp_rcv_state_process, step 7, CLOSE_WAIT/CLOSING/LAST_ACK: the peer's FIN is
        // in, so a segment at or past rcv_nxt carries nothing the socket takes (text or a
        // FIN after the FIN). It skips tcp_data_queue: nothing is queued, and no ACK is
        // scheduled for it, so only what was already owed goes out.
        if matches!(
            self.state,
            State::CloseWait | State::Closing | State::LastAck
        ) && !seq_lt(seg.seq, self.rcv_nxt)
        {
            self.push(now, out);
            self.ack_snd_check(now, out);
            return;
        }
        // tcp_data_queue.
        let len = seg.payload.len() as u32;
        let frame_len = 14 + self.net_header_len + seg.header_len() as u32 + len;
        let truesize = rx_truesize(frame_len);
        let mut ack_now = false;
        let mut queued = false;
        if len > 0 {
            if seg.seq == self.rcv_nxt && self.shutdown & RCV_SHUTDOWN == 0 {
                self.queue_rcv(&seg.payload, false, frame_len);
                self.rcv_nxt = self.rcv_nxt.wrapping_add(len);
                queued = true;
                self.event_data_recv(now, seg, truesize);
            } else if seq_le(seg.seq.wrapping_add(len), self.rcv_nxt) {
                // A retransmission: force an immediate ACK (quickack mode).
                self.enter_quickack_mode(TCP_MAX_QUICKACKS);
                self.schedule_ack();
            } else {
                // Out of order (no out-of-order queue here) or after shutdown: ACK now.
                ack_now = true;
            }
        }
        if seg.flags.fin() && seg.seq.wrapping_add(len) == self.rcv_nxt {
            // The FIN stays queued (and charged) until a read reaches it.
            match self.rx_skbs.back_mut() {
                Some(last) if queued => last.fin = true,
                _ => self.queue_rcv(&[], true, frame_len),
            }
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            self.fin(now, out);
        }
        if matches!(self.state, State::Closed | State::TimeWait) {
            return;
        }
        // tcp_data_snd_check, then tcp_ack_snd_check.
        self.push(now, out);
        if ack_now {
            self.send_ack(now, out);
        } else {
            self.ack_snd_check(now, out);
        }
    }

    fn process_ack(&mut self, now: Instant, seg: &TcpRepr) {
        if seq_lt(self.snd_una, seg.ack) && seq_le(seg.ack, self.snd_nxt) {
            let acked = seg.ack.wrapping_sub(self.snd_una);
            let fin_acked = self.fin_sent && seg.ack == self.snd_nxt;
            let data_acked = (acked as usize - usize::from(fin_acked)).min(self.send_buf.len());
            self.send_buf.drain(..data_acked);
            self.uncharge_acked(data_acked as u32);
            self.snd_una = seg.ack;
            self.retransmits = 0;
            self.backoff = 0;
            // Slow start: one segment per MSS acknowledged.
            self.cwnd = (self.cwnd + (acked / self.current_mss()).max(1)).min(1 << 16);
            // tcp_clean_rtx_queue: seq_rtt from the oldest newly acked
            // segment, ca_rtt (for tcp_min_rtt) from the newest; then
            // tcp_update_pacing_rate.
            let mut first = None;
            let mut last = None;
            while let Some(&(end, t, _)) = self.tx_times.front() {
                if !seq_le(end, seg.ack) {
                    break;
                }
                first.get_or_insert(t);
                last = Some(t);
                self.tx_times.pop_front();
            }
            if let (Some(f), Some(l)) = (first, last) {
                let seq_rtt = now.saturating_duration_since(f).as_micros() as u64;
                let ca_rtt = now.saturating_duration_since(l).as_micros() as u64;
                self.rtt_sample(seq_rtt.max(1), ca_rtt.max(1));
                let packets_out = self
                    .snd_nxt
                    .wrapping_sub(self.snd_una)
                    .div_ceil(self.mss_cache.max(1));
                self.update_pacing_rate(self.current_mss(), self.cwnd, packets_out);
            }
            // tcp_process_tlp_ack: an ACK at or past the probe ends its episode; one that
            // takes snd_una to the RTO's high_seq ends the loss state (tcp_process_loss).
            if self.tlp_high_seq.is_some_and(|h| seq_le(h, seg.ack)) {
                self.tlp_high_seq = None;
            }
            if self.loss_high_seq.is_some_and(|h| seq_le(h, seg.ack)) {
                self.loss_high_seq = None;
            }
            // tcp_set_xmit_timer: a loss probe if one is due, else the RTO (none once
            // nothing is in flight).
            if !self.schedule_loss_probe(now, true) {
                self.rtx_kind = XmitTimer::Retrans;
                if self.snd_una == self.snd_nxt {
                    self.rtx_timer = None;
                } else {
                    self.arm_rtx(now, self.rto);
                }
            }
            if fin_acked {
                match self.state {
                    State::FinWait1 => self.set_state(State::FinWait2),
                    State::Closing => self.enter_timewait(now),
                    State::LastAck => self.set_state(State::Closed),
                    _ => {}
                }
            }
        }
        self.snd_wnd = (seg.window as u32).wrapping_shl(self.snd_wscale.into());
        // tcp_ack_update_window: a larger window than ever seen re-runs
        // tcp_sync_mss (tcp_bound_to_half_wnd depends on max_window).
        if self.snd_wnd > self.max_window {
            self.max_window = self.snd_wnd;
            self.sync_mss();
        }
    }

    /// Mirrors `tcp_fin` (net/ipv4/tcp_input.c): an ACK is owed and reading
    /// is shut down. ESTABLISHED → CLOSE_WAIT in pingpong mode (the ACK is
    /// delayed, hoping to ride on our FIN); FIN_WAIT1 → ACK now, CLOSING;
    /// FIN_WAIT2 → ACK now, TIME_WAIT.
    fn fin(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.schedule_ack();
        self.shutdown |= RCV_SHUTDOWN;
        match self.state {
            State::Established => {
                self.set_state(State::CloseWait);
                self.ack.pingpong = self.pingpong_thresh;
            }
            State::FinWait1 => {
                self.send_ack(now, out);
                self.set_state(State::Closing);
            }
            State::FinWait2 => {
                self.send_ack(now, out);
                self.enter_timewait(now);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_options_scan_like_tcp_do_parse_auth_options() {
        // fuzz-1-20's SYN-ACK: sackOK, then a kind-4 option of length 0
        // with 18 bytes still to scan: invalid, the kernel drops it.
        let silly = [
            4, 2, 4, 0, 2, 4, 2, 0x18, 3, 3, 2, 3, 3, 13, 1, 2, 4, 0, 0x4a, 0,
        ];
        assert!(auth_options_invalid(&silly));
        // The same option once fewer than TCPOLEN_MD5SIG bytes remain is
        // never looked at.
        assert!(!auth_options_invalid(&[2, 4, 5, 0xb4, 4, 0, 1, 1]));
        // Linux's own SYN-ACK options are fine.
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        assert!(!auth_options_invalid(&linux));
        // An option running past the header, and EOL ending the scan.
        let mut overrun = [1u8; 20];
        overrun[0] = 30;
        overrun[1] = 40;
        assert!(auth_options_invalid(&overrun));
        let mut eol = [0u8; 20];
        eol[1] = 0;
        assert!(!auth_options_invalid(&eol));
    }
}
