//! ICMP errors about a connection: which ones abort a connect and with which errno,
//! which ones only leave a soft error, and FRAG_NEEDED lowering the path MTU.
//!
//! Mirrors, in Linux 6.18: `icmp_err_convert[]`, `icmp_unreach` (net/ipv4/icmp.c),
//! `tcp_v4_err` (net/ipv4/tcp_ipv4.c) and `__ip_rt_update_pmtu` (net/ipv4/route.c).

use super::{between, Tcb};
use crate::config::Config;
use crate::errno::Errno;

/// Mirrors `icmp_err_convert[]` (net/ipv4/icmp.c) plus the filtering in
/// `icmp_unreach`/`tcp_v4_err` for a socket in SYN-SENT: `Some(Ok(errno))`
/// aborts, `Some(Err(mtu))` is FRAG_NEEDED, `None` is ignored.
pub fn icmp_error(icmp_type: u8, code: u8, mtu: u16) -> Option<Result<Errno, u16>> {
    use crate::wire::icmp::types::*;
    match icmp_type {
        DEST_UNREACH => Some(Ok(match code {
            0 | 6 | 9 | 11 => Errno::ENETUNREACH,
            1 | 10 | 12 | 13 | 14 | 15 => Errno::EHOSTUNREACH,
            2 => Errno::ENOPROTOOPT,
            3 => Errno::ECONNREFUSED,
            4 => return Some(Err(mtu)),
            5 => Errno::EOPNOTSUPP,
            7 => Errno::EHOSTDOWN,
            8 => Errno::ENONET,
            _ => return None, // > NR_ICMP_UNREACH
        })),
        // icmp_unreach drops only ICMP_EXC_FRAGTIME (code 1); tcp_v4_err maps
        // every other time-exceeded code to EHOSTUNREACH (kernel: code 2 and
        // 11 abort the connect with EHOSTUNREACH).
        TIME_EXCEEDED if code != 1 => Some(Ok(Errno::EHOSTUNREACH)),
        PARAMETER_PROB => Some(Ok(Errno::EPROTO)),
        _ => None, // source quench, redirect, time exceeded code 1, others
    }
}

impl Tcb {
    /// Mirrors `tcp_v4_err` (net/ipv4/tcp_ipv4.c) once the socket is found:
    /// the quoted sequence number must lie in `[snd_una, snd_nxt]`; in
    /// SYN_SENT/SYN_RECV an error aborts the connection, later it only sets
    /// `sk_err_soft`. FRAG_NEEDED updates the path MTU (`tcp_v4_mtu_reduced`).
    pub fn icmp_error(&mut self, cfg: &Config, quoted_seq: u32, kind: Result<Errno, u16>) {
        if !between(quoted_seq, self.snd_una, self.snd_nxt) {
            tracing::debug!(quoted_seq, "OUTOFWINDOWICMPS");
            return;
        }
        match kind {
            Err(mtu) => {
                if cfg.ip_no_pmtu_disc == 2 {
                    return;
                }
                // __ip_rt_update_pmtu: a locked MTU is kept; one below min_pmtu is raised
                // to it and locked.
                if self.pmtu_locked {
                    return;
                }
                let mut mtu = mtu as u32;
                if mtu < cfg.route_min_pmtu {
                    self.pmtu_locked = true;
                    mtu = self.pmtu.min(cfg.route_min_pmtu);
                }
                if mtu < self.pmtu {
                    self.pmtu = mtu;
                    self.pmtu_reduced = true;
                    self.sync_mss();
                }
            }
            Ok(err) => {
                if self.state.is_connecting() {
                    self.done_with_error(err);
                } else {
                    self.sk_err_soft = Some(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_table_7_2() {
        use crate::wire::icmp::types::*;
        let e = |t, c| icmp_error(t, c, 0);
        assert_eq!(e(DEST_UNREACH, 0), Some(Ok(Errno::ENETUNREACH)));
        assert_eq!(e(DEST_UNREACH, 1), Some(Ok(Errno::EHOSTUNREACH)));
        assert_eq!(e(DEST_UNREACH, 2), Some(Ok(Errno::ENOPROTOOPT)));
        assert_eq!(e(DEST_UNREACH, 3), Some(Ok(Errno::ECONNREFUSED)));
        assert_eq!(icmp_error(DEST_UNREACH, 4, 1000), Some(Err(1000)));
        assert_eq!(e(DEST_UNREACH, 5), Some(Ok(Errno::EOPNOTSUPP)));
        assert_eq!(e(DEST_UNREACH, 6), Some(Ok(Errno::ENETUNREACH)));
        assert_eq!(e(DEST_UNREACH, 7), Some(Ok(Errno::EHOSTDOWN)));
        assert_eq!(e(DEST_UNREACH, 8), Some(Ok(Errno::ENONET)));
        assert_eq!(e(DEST_UNREACH, 9), Some(Ok(Errno::ENETUNREACH)));
        for c in [10, 12, 13, 14, 15] {
            assert_eq!(e(DEST_UNREACH, c), Some(Ok(Errno::EHOSTUNREACH)));
        }
        assert_eq!(e(DEST_UNREACH, 11), Some(Ok(Errno::ENETUNREACH)));
        assert_eq!(e(DEST_UNREACH, 16), None);
        assert_eq!(e(TIME_EXCEEDED, 0), Some(Ok(Errno::EHOSTUNREACH)));
        assert_eq!(e(TIME_EXCEEDED, 1), None);
        assert_eq!(e(TIME_EXCEEDED, 2), Some(Ok(Errno::EHOSTUNREACH)));
        assert_eq!(e(TIME_EXCEEDED, 11), Some(Ok(Errno::EHOSTUNREACH)));
        assert_eq!(e(PARAMETER_PROB, 0), Some(Ok(Errno::EPROTO)));
        assert_eq!(e(SOURCE_QUENCH, 0), None);
        assert_eq!(e(REDIRECT, 1), None);
    }
}
