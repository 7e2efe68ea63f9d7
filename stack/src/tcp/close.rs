//! Ending a connection from the socket: an orderly close, an abort with a RST, and the
//! disconnect that readies the socket for another `connect()`.
//!
//! Mirrors, in Linux 6.18: `tcp_close`, `tcp_send_active_reset` and `tcp_disconnect`
//! (net/ipv4/tcp.c, net/ipv4/tcp_output.c).

use super::{Output, State, Tcb, TcpParams, RCV_SHUTDOWN, SEND_SHUTDOWN};
use crate::errno::Errno;
use crate::time::Instant;
use crate::wire::TcpFlags;

impl Tcb {
    /// `tcp_close` for a synchronized connection: FIN (via `tcp_send_fin`),
    /// or a RST if unread data is pending (`tcp_send_active_reset`).
    pub fn close(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN;
        self.dead = true;
        match self.state {
            State::SynSent => self.set_state(State::Closed),
            State::Closed => {}
            State::SynRecv | State::Established | State::CloseWait if !self.recv_buf.is_empty() => {
                self.abort(now, out);
            }
            State::SynRecv | State::Established => {
                if self.state == State::SynRecv {
                    self.set_state(State::Established);
                }
                self.set_state(State::FinWait1);
                self.fin_queued = true;
                self.push(now, out);
            }
            State::CloseWait => {
                self.set_state(State::LastAck);
                self.fin_queued = true;
                self.push(now, out);
            }
            _ => {}
        }
    }

    /// Abort (`tcp_close` with unread data, or `SO_LINGER` 0): the receive
    /// queue is purged first, then `tcp_send_active_reset` sends RST|ACK
    /// with `seq = snd_nxt` if synchronized. It goes through
    /// `__tcp_transmit_skb` like any segment, so it carries the window of
    /// `tcp_select_window` (over the emptied buffer) and the timestamp
    /// option ("No TCP options attached" refers to the skb, not to
    /// `tcp_established_options`). Then CLOSE.
    pub fn abort(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.recv_buf.clear();
        self.rx_skbs.clear();
        self.rmem_alloc = 0;
        if self.state.is_synchronized() && self.state != State::TimeWait {
            let r = self.segment(now, self.snd_nxt, TcpFlags::RST | TcpFlags::ACK, vec![]);
            out.push(Output::Segment {
                repr: r,
                ect: false,
            });
        }
        self.done();
    }

    /// Mirrors `tcp_disconnect` (net/ipv4/tcp.c) after a failed or abandoned
    /// connect: no RST from SYN_SENT (but ECONNRESET left pending), a RST from
    /// synchronized states, `write_seq += max_window + 2`, and `user_mss`,
    /// `window_clamp` and RTO state wiped.
    pub fn disconnect(&mut self, now: Instant, out: &mut Vec<Output>) {
        let old = self.state;
        if matches!(
            old,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::FinWait2
                | State::SynRecv
        ) {
            let mut r = self.segment(now, self.snd_nxt, TcpFlags::RST | TcpFlags::ACK, vec![]);
            r.window = 0;
            r.options.clear();
            out.push(Output::Segment {
                repr: r,
                ect: false,
            });
            self.sk_err = Some(Errno::ECONNRESET);
        } else if old == State::SynSent {
            self.sk_err = Some(Errno::ECONNRESET);
        }
        if old != State::Closed {
            self.set_state(State::Closed);
        }
        let mut seq = self.write_seq.wrapping_add(self.max_window).wrapping_add(2);
        if seq == 0 {
            seq = 1;
        }
        let params = TcpParams {
            user_mss: 0,
            window_clamp: 0,
            ..self.params.clone()
        };
        let sk_err = self.sk_err;
        let ip_id = self.ip_id;
        let (mss_cache, tcp_header_len) = (self.mss_cache, self.tcp_header_len);
        *self = Tcb::new(params);
        self.write_seq = seq;
        self.sk_err = sk_err;
        self.ip_id = ip_id;
        // tcp_disconnect leaves mss_cache and tcp_header_len as the connect set them.
        self.mss_cache = mss_cache;
        self.tcp_header_len = tcp_header_len;
    }
}
