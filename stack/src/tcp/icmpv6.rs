//! ICMPv6 errors about a connection: the errno each one carries, that every one of them
//! aborts a connect, and Packet Too Big lowering the path MTU.
//!
//! Mirrors, in Linux 6.18: `icmpv6_err_convert` (net/ipv6/icmp.c), `tcp_v6_err` and
//! `tcp_v6_mtu_reduced` (net/ipv6/tcp_ipv6.c).

use super::{between, Tcb, TCP_HEADER_LEN};
use crate::errno::Errno;
use crate::wire::icmpv6::types;
use crate::wire::ipv6::MIN_MTU;

/// What an ICMPv6 error means to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Error {
    /// An error with its errno (`tcp_done_with_error` in SYN-SENT, else `sk_err_soft`).
    Errno(Errno),
    /// Packet Too Big with the next hop's MTU.
    PacketTooBig(u32),
}

/// Mirrors `icmpv6_err_convert` (net/ipv6/icmp.c) with `tab_unreach[]`, as `tcp_v6_err`
/// uses it: `None` for what TCP ignores (informational messages, redirects). Unknown
/// error types reach TCP too (`icmpv6_rcv` passes them up) and convert to EPROTO.
pub fn icmpv6_error(icmp_type: u8, code: u8, info: u32) -> Option<Icmpv6Error> {
    use crate::wire::icmpv6::unreach::*;
    if icmp_type & 0x80 != 0 || icmp_type == types::REDIRECT {
        return None; // ICMPV6_INFOMSG_MASK; NDISC_REDIRECT only updates the route
    }
    Some(Icmpv6Error::Errno(match icmp_type {
        types::DEST_UNREACH => match code {
            NOROUTE => Errno::ENETUNREACH,
            ADM_PROHIBITED | POLICY_FAIL | REJECT_ROUTE => Errno::EACCES,
            NOT_NEIGHBOUR | ADDR_UNREACH => Errno::EHOSTUNREACH,
            PORT_UNREACH => Errno::ECONNREFUSED,
            _ => Errno::EPROTO,
        },
        types::PKT_TOOBIG => return Some(Icmpv6Error::PacketTooBig(info)),
        types::PARAMPROB => Errno::EPROTO,
        types::TIME_EXCEED => Errno::EHOSTUNREACH,
        _ => Errno::EPROTO,
    }))
}

impl Tcb {
    /// Mirrors `tcp_v6_err` (net/ipv6/tcp_ipv6.c) once the socket is found: the quoted
    /// sequence number must lie in `[snd_una, snd_nxt]`; Packet Too Big goes to
    /// `tcp_v6_mtu_reduced`; any other error aborts a connection in SYN-SENT/SYN-RECV
    /// (whether `icmpv6_err_convert` calls it fatal or not: that only matters to
    /// request sockets), and later only sets `sk_err_soft` (no `IPV6_RECVERR`).
    pub fn icmpv6_error(&mut self, quoted_seq: u32, kind: Icmpv6Error) {
        // A timewait socket ignores ICMPv6; so does a closed one.
        if matches!(self.state, super::State::Closed | super::State::TimeWait) {
            return;
        }
        if !between(quoted_seq, self.snd_una, self.snd_nxt) {
            tracing::debug!(quoted_seq, "OUTOFWINDOWICMPS");
            return;
        }
        match kind {
            Icmpv6Error::PacketTooBig(mtu) => self.v6_mtu_reduced(mtu),
            Icmpv6Error::Errno(err) => {
                if self.state.is_connecting() {
                    self.done_with_error(err);
                } else {
                    self.sk_err_soft = Some(err);
                }
            }
        }
    }

    /// `tcp_v6_err` for `ICMPV6_PKT_TOOBIG` and `tcp_v6_mtu_reduced`: an MTU below
    /// `IPV6_MIN_MTU` is ignored, so is one that would not lower the MSS; otherwise the
    /// path MTU drops (`__ip6_rt_update_pmtu`) and `tcp_sync_mss` runs.
    /// `tcp_simple_retransmit` then resends only segments longer than the new MSS; a
    /// SYN has no payload, so nothing goes out at once.
    fn v6_mtu_reduced(&mut self, mtu: u32) {
        if mtu < MIN_MTU {
            return;
        }
        // tcp_mtu_to_mss(sk, mtu) >= mss_cache: both before `tcp_header_len` is taken off.
        let mss = mtu
            .saturating_sub(self.net_header_len + TCP_HEADER_LEN)
            .min(self.mss_clamp)
            .saturating_sub(self.ext_hdr_len)
            .max(48);
        if mss >= self.mss_cache || mtu >= self.pmtu {
            return;
        }
        self.pmtu = mtu;
        self.pmtu_reduced = true;
        self.sync_mss();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmpv6::unreach::*;

    #[test]
    fn icmpv6_err_convert_table() {
        let e = |t, c| icmpv6_error(t, c, 0);
        let errno = |x| Some(Icmpv6Error::Errno(x));
        assert_eq!(e(types::DEST_UNREACH, NOROUTE), errno(Errno::ENETUNREACH));
        assert_eq!(e(types::DEST_UNREACH, ADM_PROHIBITED), errno(Errno::EACCES));
        assert_eq!(
            e(types::DEST_UNREACH, NOT_NEIGHBOUR),
            errno(Errno::EHOSTUNREACH)
        );
        assert_eq!(
            e(types::DEST_UNREACH, ADDR_UNREACH),
            errno(Errno::EHOSTUNREACH)
        );
        assert_eq!(
            e(types::DEST_UNREACH, PORT_UNREACH),
            errno(Errno::ECONNREFUSED)
        );
        assert_eq!(e(types::DEST_UNREACH, POLICY_FAIL), errno(Errno::EACCES));
        assert_eq!(e(types::DEST_UNREACH, REJECT_ROUTE), errno(Errno::EACCES));
        assert_eq!(e(types::DEST_UNREACH, 7), errno(Errno::EPROTO));
        assert_eq!(
            icmpv6_error(types::PKT_TOOBIG, 0, 1400),
            Some(Icmpv6Error::PacketTooBig(1400))
        );
        assert_eq!(e(types::TIME_EXCEED, 0), errno(Errno::EHOSTUNREACH));
        assert_eq!(e(types::TIME_EXCEED, 1), errno(Errno::EHOSTUNREACH));
        assert_eq!(e(types::PARAMPROB, 1), errno(Errno::EPROTO));
        assert_eq!(
            e(100, 0),
            errno(Errno::EPROTO),
            "unknown error types reach TCP"
        );
        assert_eq!(e(types::ECHO_REQUEST, 0), None);
        assert_eq!(e(types::REDIRECT, 0), None);
    }
}
