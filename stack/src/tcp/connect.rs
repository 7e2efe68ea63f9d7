//! The active open: what `connect()` sets up before the SYN leaves, and what the
//! connection sets up once it is established.
//!
//! Mirrors, in Linux 6.18: `tcp_connect_init`, `tcp_connect` (net/ipv4/tcp_output.c)
//! and `tcp_finish_connect`/`tcp_init_transfer` (net/ipv4/tcp_input.c).

use super::ack::AckState;
use super::window::{full_space, select_initial_window};
use super::{
    ms, ConnectInit, Output, State, Tcb, TCP_DEFAULT_SCALING_RATIO, TCP_HEADER_LEN, TCP_INIT_CWND,
    TCP_TIMEOUT_INIT,
};
use crate::config::Config;
use crate::time::Instant;

impl Tcb {
    /// Mirrors `tcp_connect_init` + `tcp_connect` (net/ipv4/tcp_output.c):
    /// compute MSS, window and scale, then send the SYN and arm the
    /// retransmission timer with the initial RTO (1 s).
    pub fn connect(
        &mut self,
        now: Instant,
        cfg: &Config,
        init: &ConnectInit,
        out: &mut Vec<Output>,
    ) {
        self.local = init.local;
        self.remote = init.remote;
        self.pmtu = init.mtu;
        self.pmtu_reduced = false;
        self.ext_hdr_len = init.ext_hdr_len;
        self.net_header_len = init.net_header_len;
        self.ts_offset = init.ts_offset;
        if self.write_seq == 0 {
            self.write_seq = init.isn;
        }
        // tcp_v4_connect: mss_clamp = TCP_MSS_DEFAULT (tcp_v6_connect: IPV6_MIN_MTU − 60);
        // tcp_connect_init: user_mss wins.
        self.mss_clamp = if self.params.user_mss != 0 {
            self.params.user_mss
        } else {
            init.mss_clamp
        };
        self.syn_offer_ts = cfg.tcp_timestamps != 0;
        self.tcp_header_len = TCP_HEADER_LEN + if self.syn_offer_ts { 12 } else { 0 };
        self.syn_offer_sack = cfg.tcp_sack;
        self.syn_offer_ws = cfg.tcp_window_scaling;
        self.tstamp_ok = false;
        self.sack_ok = false;
        self.wscale_ok = cfg.tcp_window_scaling;
        self.ts_recent = 0;
        self.window_clamp = self.params.window_clamp;
        if self.window_clamp == 0 {
            self.window_clamp = init.route_window.unwrap_or(0);
        }
        let user = if self.params.user_mss != 0 {
            self.params.user_mss
        } else {
            u32::MAX
        };
        self.advmss = user.min(init.route_advmss);
        // tcp_init_sock: sk_sndbuf = tcp_wmem[1].
        self.sndbuf = cfg.tcp_wmem[1];
        self.wmem_max = cfg.tcp_wmem[2];
        let rcvbuf = self.params.rcvbuf_locked.unwrap_or(cfg.tcp_rmem[1]);
        let space = full_space(rcvbuf);
        if self.params.rcvbuf_locked.is_some()
            && (self.window_clamp == 0 || self.window_clamp > space)
        {
            self.window_clamp = space;
        }
        let w = select_initial_window(
            cfg,
            space,
            self.advmss,
            self.window_clamp,
            cfg.tcp_window_scaling,
            init.route_initrwnd.unwrap_or(0),
        );
        self.rcv_wnd = w.rcv_wnd;
        self.rcv_wscale = w.rcv_wscale;
        self.window_clamp = w.window_clamp;
        // tcp_connect_init: rcv_ssthresh = rcv_wnd, rcv_wup = rcv_nxt = 0.
        self.rcv_ssthresh = w.rcv_wnd;
        self.rcv_wup = 0;
        self.rcvbuf = rcvbuf;
        self.rmem_alloc = 0;
        self.scaling_ratio = TCP_DEFAULT_SCALING_RATIO;
        // A fresh socket's icsk_ack is zero and tcp_connect_init leaves it alone, so a
        // pingpong mode set before connect (TCP_QUICKACK 0) holds for the handshake.
        self.ack = AckState {
            pingpong: self.ack.pingpong,
            ..AckState::default()
        };
        self.delack_timer = None;
        self.app_win = cfg.tcp_app_win;
        self.mutation = cfg.mutation;
        self.fin_ignores_cwnd = cfg.profile == crate::config::Profile::V6_1;
        self.ratio_follows_skbs = cfg.profile != crate::config::Profile::V6_1;
        self.pingpong_thresh = cfg.tcp_pingpong_thresh;
        self.workaround_signed_windows = cfg.tcp_workaround_signed_windows;
        self.rmem2 = cfg.tcp_rmem[2];
        self.srtt = None;
        self.sync_mss();
        self.sk_err = None;
        self.shutdown = 0;
        self.iss = self.write_seq;
        self.snd_una = self.iss;
        self.snd_nxt = self.iss;
        self.rcv_nxt = 0;
        self.rto = TCP_TIMEOUT_INIT;
        self.retransmits = 0;
        self.total_rto = 0;
        self.total_retrans = 0;
        self.backoff = 0;
        self.cwnd = TCP_INIT_CWND;
        // tcp_ecn_send_syn: tcp_ecn == 1, or the route asks for it.
        self.ecn_requested = cfg.tcp_ecn == 1 || init.route_ecn;
        self.syn_ecn_flags = self.ecn_requested;
        self.ecn_ok = false;
        self.early_retrans = cfg.tcp_early_retrans;
        self.tfo_request = self.params.fastopen_connect && cfg.tcp_fastopen & 1 != 0;
        if self.tfo_request {
            // tcp_send_syn_data: "If MSS is not cached", mss_clamp = advmss (a new
            // namespace's TFO cache is empty), so a SYN-ACK without an MSS option leaves
            // the send MSS at advmss, not 536.
            self.mss_clamp = self.advmss;
        }
        self.set_state(State::SynSent);
        self.retrans_stamp_ms = ms(now);
        self.first_syn_at = now;
        let syn = self.build_syn(now, false);
        out.push(Output::Segment {
            repr: syn,
            ect: false,
        });
        self.write_seq = self.iss.wrapping_add(1);
        self.snd_nxt = self.write_seq;
        self.arm_rtx(now, self.rto);
    }

    /// What `tcp_finish_connect`/`tcp_init_transfer` set up once the
    /// connection is established, before the first ACK goes out.
    pub(super) fn finish_connect(&mut self, now: Instant) {
        // tcp_connect: pushed_seq = write_seq once the SYN is queued; snd_sml
        // (tcp_connect_init: snd_sml = write_seq) is not after snd_una.
        self.pushed_seq = self.snd_una;
        self.snd_sml = self.snd_una;
        self.rcv_wup = self.rcv_nxt;
        self.initialize_rcv_mss();
        self.ack.lrcvtime = now.jiffies();
        self.init_buffer_space();
    }
}
