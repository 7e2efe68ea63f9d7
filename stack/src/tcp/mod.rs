//! The TCP connection: one state enum with its transitions declared in one place, the
//! connection's state (`struct tcp_sock` as far as an active open needs it), and the
//! constants of include/net/tcp.h. What the connection does is split by concern into
//! the submodules below, each an `impl Tcb` block.
//!
//! | module | concern | mirrors (Linux 6.18) |
//! | --- | --- | --- |
//! | `connect` | the active open | `tcp_connect_init`, `tcp_connect`, `tcp_finish_connect` |
//! | `output` | building the SYN and other segments | `tcp_syn_options`, `__tcp_transmit_skb`, `tcp_v4_send_reset` |
//! | `mss` | send and advertised MSS | `tcp_sync_mss`, `tcp_advertise_mss`, `tcp_initialize_rcv_mss` |
//! | `window` | the receive window | `tcp_select_initial_window`, `__tcp_select_window`, `tcp_init_buffer_space` |
//! | `synsent` | SYN-SENT input | `tcp_rcv_synsent_state_process` |
//! | `input` | input past SYN-SENT | `tcp_rcv_state_process`, `tcp_ack`, `tcp_data_queue`, `tcp_fin` |
//! | `ack` | the delayed-ACK engine | `tcp_event_data_recv`, `__tcp_ack_snd_check`, `tcp_send_delayed_ack` |
//! | `recv` | the receive queue | `tcp_queue_rcv`, `tcp_recvmsg_locked` |
//! | `send` | the write queue | `tcp_sendmsg_locked`, `tcp_sndbuf_expand` |
//! | `xmit` | sending from the write queue | `tcp_write_xmit`, `tcp_grow_skb` |
//! | `pacing` | RTT samples, pacing, TSO sizing | `tcp_rtt_estimator`, BBR's pacing rate, `tcp_tso_autosize` |
//! | `timers` | RTO, SYN backoff, giving up | `tcp_retransmit_timer`, `tcp_write_timeout`, `retransmits_timed_out` |
//! | `loss_probe` | the tail loss probe | `tcp_schedule_loss_probe`, `tcp_send_loss_probe` |
//! | `time_wait` | TIME-WAIT | `tcp_time_wait`, `tcp_timewait_state_process` |
//! | `close` | close, abort, disconnect | `tcp_close`, `tcp_disconnect` |
//! | `icmp` | ICMP errors | `icmp_err_convert[]`, `tcp_v4_err` |
//! | `icmpv6` | ICMPv6 errors | `icmpv6_err_convert`, `tcp_v6_err`, `tcp_v6_mtu_reduced` |

mod ack;
mod close;
mod connect;
mod icmp;
mod icmpv6;
mod input;
mod loss_probe;
mod mss;
mod output;
mod pacing;
mod recv;
mod send;
mod synsent;
#[cfg(test)]
mod tests;
mod time_wait;
mod timers;
mod window;
mod xmit;

pub use ack::{ack_flags, AckState};
pub use icmp::icmp_error;
pub use icmpv6::{icmpv6_error, Icmpv6Error};
pub use input::auth_options_invalid;
pub use recv::{rx_truesize, SOCK_MIN_RCVBUF};
pub use timers::{jiffies_to_duration, model_timeout_ms};
pub use window::{full_space, select_initial_window, InitialWindow};

use crate::config::Mutation;
use crate::errno::Errno;
use crate::time::{Instant, HZ};
use crate::wire::TcpRepr;
use recv::RxSkb;
use send::TxSkb;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use timers::XmitTimer;

/// `sk_gso_max_size` of the veth (`GSO_LEGACY_MAX_SIZE`): `sk_setup_caps`
/// always enables GSO for TCP, whatever the device's offloads.
const GSO_MAX_SIZE: u32 = 65_536;
/// `sk_gso_max_size` (`sk_dst_gso_max_size`): the device's 64 KiB less
/// `MAX_TCP_HEADER + 1` (320 + 1 on x86-64).
const SK_GSO_MAX_SIZE: u32 = GSO_MAX_SIZE - 321;

/// `TCP_MSS_DEFAULT` (include/net/tcp.h): the send MSS ceiling until the SYN-ACK says otherwise.
pub const TCP_MSS_DEFAULT: u32 = 536;
/// `sizeof(struct tcphdr)`.
const TCP_HEADER_LEN: u32 = 20;
/// `TCP_TIMEOUT_INIT` = 1 s, in jiffies.
pub const TCP_TIMEOUT_INIT: u64 = HZ;
/// `TCP_TIMEOUT_MIN` = 2 jiffies (8 ms at HZ=250).
pub const TCP_TIMEOUT_MIN: u64 = 2;
/// `TCP_TIMEOUT_FALLBACK` = 3 s: first data RTO when the handshake gave no RTT sample.
pub const TCP_TIMEOUT_FALLBACK: u64 = 3 * HZ;
/// `TCP_MAX_WSCALE`.
pub const TCP_MAX_WSCALE: u8 = 14;
/// `TCP_TIMEWAIT_LEN` = 60 s.
pub const TCP_TIMEWAIT_LEN: u64 = 60 * HZ;
/// `TCP_FIN_TIMEOUT` (the `tcp_fin_timeout` default) = `TCP_TIMEWAIT_LEN`.
pub const TCP_FIN_TIMEOUT: u64 = TCP_TIMEWAIT_LEN;
/// `tcp_invalid_ratelimit` default: `HZ / 2` (500 ms).
pub const TCP_INVALID_RATELIMIT: u64 = HZ / 2;
/// `tcp_rto_min` = 200 ms.
pub const TCP_RTO_MIN: u64 = HZ / 5;
/// `tcp_retries2` default.
pub const TCP_RETRIES2: u32 = 15;
/// `TCP_INIT_CWND`.
pub const TCP_INIT_CWND: u32 = 10;
/// `TCP_DEFAULT_SCALING_RATIO` (1 << (TCP_RMEM_TO_WIN_SCALE - 1)): half of the buffer is window.
pub const TCP_DEFAULT_SCALING_RATIO: u32 = 128;
/// `TCP_RMEM_TO_WIN_SCALE` (include/net/tcp.h): `scaling_ratio` is in 1/256ths.
pub const TCP_RMEM_TO_WIN_SCALE: u32 = 8;
/// `TCP_ATO_MIN` = HZ/25 (40 ms): the initial and minimum delayed-ACK timeout.
pub const TCP_ATO_MIN: u64 = HZ / 25;
/// `TCP_DELACK_MIN` = HZ/25 (40 ms).
pub const TCP_DELACK_MIN: u64 = HZ / 25;
/// `TCP_DELACK_MAX` = HZ/5 (200 ms), the default `icsk_delack_max`.
pub const TCP_DELACK_MAX: u64 = HZ / 5;
/// `TCP_MAX_QUICKACKS`: at most this many ACKs in quickack mode.
pub const TCP_MAX_QUICKACKS: u32 = 16;
/// `TCP_MIN_MSS` (include/net/tcp.h).
pub const TCP_MIN_MSS: u32 = 88;

/// Connection states (`TCP_*` in include/net/tcp_states.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// `TCP_CLOSE`
    Closed,
    /// `TCP_SYN_SENT`
    SynSent,
    /// `TCP_SYN_RECV` (simultaneous open)
    SynRecv,
    /// `TCP_ESTABLISHED`
    Established,
    /// `TCP_FIN_WAIT1`
    FinWait1,
    /// `TCP_FIN_WAIT2`
    FinWait2,
    /// `TCP_CLOSE_WAIT`
    CloseWait,
    /// `TCP_CLOSING`
    Closing,
    /// `TCP_LAST_ACK`
    LastAck,
    /// `TCP_TIME_WAIT`
    TimeWait,
}

impl State {
    /// Every transition the stack makes, in one place. Anything else is a bug.
    pub fn can_transition(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (_, Closed)
                | (Closed, SynSent)
                | (SynSent, SynRecv | Established)
                | (SynRecv, Established)
                | (Established, FinWait1 | CloseWait)
                | (FinWait1, FinWait2 | Closing | TimeWait)
                | (FinWait2, TimeWait)
                | (CloseWait, LastAck)
                | (Closing, TimeWait)
        )
    }
    /// Whether a SYN has been sent and not yet answered (`TCPF_SYN_SENT | TCPF_SYN_RECV`).
    pub fn is_connecting(self) -> bool {
        matches!(self, State::SynSent | State::SynRecv)
    }
    /// Whether the connection is synchronized.
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent)
    }
}

/// `sk_shutdown` bits.
pub const RCV_SHUTDOWN: u8 = 1;
/// `sk_shutdown` bits.
pub const SEND_SHUTDOWN: u8 = 2;

/// Socket options that shape the connection (set by `setsockopt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpParams {
    /// `TCP_MAXSEG` (`rx_opt.user_mss`), 0 = unset.
    pub user_mss: u32,
    /// `TCP_SYNCNT` (`icsk_syn_retries`), 0 = use the sysctl.
    pub syn_retries: u32,
    /// `TCP_USER_TIMEOUT` in ms, 0 = unset.
    pub user_timeout_ms: u32,
    /// `icsk_rto_max` in ms (from `tcp_rto_max_ms` at socket creation, or `TCP_RTO_MAX_MS`).
    pub rto_max_ms: u32,
    /// `TCP_FASTOPEN_CONNECT`.
    pub fastopen_connect: bool,
    /// `sk_rcvbuf` if `SO_RCVBUF` locked it.
    pub rcvbuf_locked: Option<u32>,
    /// `TCP_WINDOW_CLAMP`, 0 = unset.
    pub window_clamp: u32,
    /// `TCP_NODELAY` (`nonagle & TCP_NAGLE_OFF`): Nagle's rule never holds data back.
    pub nodelay: bool,
    /// [`Config::jiffies_offset`](crate::config::Config::jiffies_offset), for placing this connection's timers on the wheel.
    pub jiffies_offset: u64,
}

/// What the connection puts on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A segment of this connection (its IP ID, TTL, TOS and options).
    Segment {
        /// The segment.
        repr: TcpRepr,
        /// ECT(0) in the IP header (data segments once ECN is negotiated).
        ect: bool,
    },
    /// An ACK from the control socket on behalf of a timewait socket
    /// (`tcp_v4_timewait_ack` → `tcp_v4_send_ack` → `ip_send_unicast_reply`):
    /// IP ID 0 (the control socket has no `inet_daddr`, so
    /// `ip_select_ident_segs` leaves DF packets at 0), DF, the route's or
    /// the default TTL, no IP options of the connection's own.
    ControlAck {
        /// The ACK.
        repr: TcpRepr,
        /// `TCP_TW_ACK_OOW`: the answer to an out-of-window segment, sent
        /// with the ECN bits of `tw_tos` cleared.
        oow: bool,
    },
    /// A RST from the control socket (`tcp_v4_send_reset`): IP ID 0, TTL default,
    /// TOS of the segment it answers without ECN bits.
    ControlReset {
        /// The RST.
        repr: TcpRepr,
        /// The TOS of the offending segment.
        tos: u8,
    },
}

/// What connect needs from the route and the stack's secrets.
#[derive(Debug, Clone, Copy)]
pub struct ConnectInit {
    /// Local address and port (IPv4 for an AF_INET6 socket connected to a v4-mapped address).
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// `secure_tcp_seq` for this 4-tuple and `now` (used only if no ISN is carried over).
    pub isn: u32,
    /// `secure_tcp_ts_off` (0 unless `tcp_timestamps == 1`).
    pub ts_offset: u32,
    /// Path MTU.
    pub mtu: u32,
    /// Route advmss (`dst_metric_advmss`).
    pub route_advmss: u32,
    /// Route `window` metric.
    pub route_window: Option<u32>,
    /// Route `initrwnd` metric.
    pub route_initrwnd: Option<u32>,
    /// Route `features ecn`.
    pub route_ecn: bool,
    /// IP options length (`icsk_ext_hdr_len`).
    pub ext_hdr_len: u32,
    /// `icsk_af_ops->net_header_len`: 20 (`ipv4_specific`, `ipv6_mapped`) or 40
    /// (`ipv6_specific`).
    pub net_header_len: u32,
    /// `rx_opt.mss_clamp` before the SYN-ACK: `TCP_MSS_DEFAULT` from `tcp_v4_connect`,
    /// `IPV6_MIN_MTU − 60` (1220) from `tcp_v6_connect`.
    pub mss_clamp: u32,
}

/// One TCP connection (`struct tcp_sock` as far as an active open needs it).
#[derive(Debug, Clone)]
pub struct Tcb {
    state: State,
    /// The deliberate bug the stack was given, if any ([`Mutation`]).
    mutation: Option<Mutation>,
    /// Whether a lone FIN may pass a full cwnd: Linux before 6.10 (the 6.1 profile); 6.10
    /// dropped that exception from `tcp_cwnd_test` ("tcp: remove dubious FIN exception").
    fin_ignores_cwnd: bool,
    /// Whether a received segment sets `scaling_ratio` (`tcp_measure_rcv_mss`, 6.7 and
    /// later); the 6.1 profile has no ratio to update.
    ratio_follows_skbs: bool,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Options from the socket.
    pub params: TcpParams,

    /// `write_seq`: the ISN source across disconnects (0 = draw a fresh one).
    pub write_seq: u32,
    /// Initial send sequence number.
    pub iss: u32,
    /// `snd_una`.
    pub snd_una: u32,
    /// `snd_nxt`.
    pub snd_nxt: u32,
    /// Peer window in bytes (scaled).
    pub snd_wnd: u32,
    /// `max_window`.
    pub max_window: u32,
    /// `rx_opt.snd_wscale`.
    pub snd_wscale: u8,
    /// Peer ISN.
    pub irs: u32,
    /// `rcv_nxt`.
    pub rcv_nxt: u32,
    /// `rcv_wnd` as offered on the SYN.
    pub rcv_wnd: u32,
    /// `rx_opt.rcv_wscale`.
    pub rcv_wscale: u8,
    /// `window_clamp`.
    pub window_clamp: u32,
    /// `rcv_wup`: `rcv_nxt` when the window was last advertised.
    pub rcv_wup: u32,
    /// `rcv_ssthresh`: the current ceiling of the advertised window.
    pub rcv_ssthresh: u32,
    /// `sk_rcvbuf`.
    pub rcvbuf: u32,
    /// `sk_rmem_alloc`: the truesize of the skbs in the receive queue.
    pub rmem_alloc: u32,
    /// `scaling_ratio`: window bytes per 256 bytes of `sk_rcvbuf`.
    pub scaling_ratio: u32,
    /// The delayed-ACK engine.
    pub ack: AckState,
    delack_timer: Option<Instant>,
    app_win: u8,
    pingpong_thresh: u8,
    workaround_signed_windows: bool,
    /// `tcp_rmem[2]`, for `__tcp_grow_window`.
    rmem2: u32,
    /// Smoothed RTT (the handshake sample), for `tcp_send_delayed_ack`.
    srtt: Option<Duration>,
    /// `tw_rcv_wnd`: `tcp_receive_window` when TIME_WAIT began.
    tw_rcv_wnd: u32,
    /// `tw_substate == TCP_FIN_WAIT2`: an orphan whose FIN was acked became a
    /// timewait socket still waiting for the peer's FIN (`tcp_time_wait(sk,
    /// TCP_FIN_WAIT2, tmo)`). Only meaningful in [`State::TimeWait`].
    tw_fin_wait2: bool,
    /// `tw_last_oow_ack_time` in jiffies (0: none yet).
    tw_last_oow_ack: u64,

    /// `advmss`.
    pub advmss: u32,
    /// `rx_opt.mss_clamp`.
    pub mss_clamp: u32,
    /// `mss_cache`: the send MSS (without TS).
    pub mss_cache: u32,
    /// `tcp_header_len`: 0 until `tcp_connect_init` sets it (20, or 32 with
    /// `tcp_timestamps`), then from the SYN-ACK in `tcp_rcv_synsent_state_process`.
    /// `tcp_mtu_to_mss` takes `tcp_header_len - 20` off the kernel's `mss_cache`, so
    /// before connect (0) a sync adds 20 to it ([`Tcb::mss_cache_reported`]).
    tcp_header_len: u32,
    /// Path MTU.
    pub pmtu: u32,
    /// The path MTU is locked: an ICMP asked for less than `route.min_pmtu`, so
    /// `__ip_rt_update_pmtu` set it to `min_pmtu` with `RTAX_MTU` locked; later updates are
    /// ignored and segments go without DF (`ip_dont_fragment` → `ip_mtu_locked`). The
    /// kernel keeps this in the route's next-hop exception; the stack keeps its path MTU
    /// per connection.
    pub pmtu_locked: bool,
    /// `icsk_ext_hdr_len` (IP options).
    pub ext_hdr_len: u32,
    /// `icsk_af_ops->net_header_len`: the IP header the MSS leaves room for (20 or 40).
    pub net_header_len: u32,
    /// `sk_txhash`: the flow hash of the connection's packets, from which an automatic
    /// IPv6 flow label is made (`ip6_make_flowlabel`). 0 until connect.
    pub txhash: u32,
    /// The state `sk_rethink_txhash` draws the next `sk_txhash` from.
    txhash_rng: u64,
    /// Timestamps in use (our SYN offers them; `tstamp_ok` after the SYN-ACK).
    pub tstamp_ok: bool,
    /// SACK in use.
    pub sack_ok: bool,
    /// Window scaling in use.
    pub wscale_ok: bool,
    /// `rx_opt.ts_recent`.
    pub ts_recent: u32,
    /// `tsoffset`.
    pub ts_offset: u32,
    /// The SYN asked for ECN (ECE|CWR on the first SYN).
    pub ecn_requested: bool,
    /// ECN negotiated.
    pub ecn_ok: bool,
    /// The SYN carries the TFO cookie request (first transmission only).
    pub tfo_request: bool,
    syn_offer_ts: bool,
    syn_offer_sack: bool,
    syn_offer_ws: bool,
    syn_ecn_flags: bool,
    pmtu_reduced: bool,

    /// `retrans_stamp` in ms (first SYN).
    pub retrans_stamp_ms: u32,
    first_syn_at: Instant,
    /// `icsk_rto` in jiffies.
    pub rto: u64,
    /// `icsk_retransmits`.
    pub retransmits: u32,
    /// `total_rto`.
    pub total_rto: u32,
    /// `total_retrans` (retransmissions that reached the wire).
    pub total_retrans: u32,
    /// `icsk_backoff`.
    pub backoff: u32,
    rtx_timer: Option<Instant>,
    /// What `rtx_timer` is (`icsk_pending`): the RTO, or a tail loss probe.
    rtx_kind: XmitTimer,
    /// `tlp_high_seq`: `snd_nxt` when the outstanding loss probe went out; one probe
    /// per tail loss episode.
    tlp_high_seq: Option<u32>,
    /// `high_seq` while in `TCP_CA_Loss` (from an RTO, `tcp_enter_loss`, until the ACK
    /// reaches it): no loss probe is scheduled meanwhile.
    loss_high_seq: Option<u32>,
    /// `net.ipv4.tcp_early_retrans` at connect: 3 or 4 enable the loss probe.
    early_retrans: u8,
    timewait_timer: Option<Instant>,
    /// `snd_cwnd` in segments.
    pub cwnd: u32,

    /// `sk_err`.
    pub sk_err: Option<Errno>,
    /// `sk_err_soft`.
    pub sk_err_soft: Option<Errno>,
    /// `sk_shutdown`.
    pub shutdown: u8,
    /// IP ID of the next packet (`inet_id`).
    pub ip_id: u16,

    send_buf: VecDeque<u8>,
    /// Payload bytes of each skb in the write and retransmit queues, oldest
    /// first (`tcp_sendmsg_locked` builds them; ACKs trim the head).
    tx_skbs: VecDeque<TxSkb>,
    /// `pushed_seq`: `write_seq` when PSH was last marked (`tcp_mark_push`).
    pushed_seq: u32,
    /// `snd_sml`: the end of the last skb sent whose last segment was short
    /// (`tcp_minshall_update`), for Nagle's rule.
    snd_sml: u32,
    /// `sk_pacing_rate` in bytes/s (`None`: `~0UL`, no RTT sample yet).
    pacing_rate: Option<u64>,
    /// `srtt_us` (unscaled) for `tcp_update_pacing_rate`.
    srtt_us: u64,
    /// `tcp_min_rtt` in µs (`None`: no sample yet, `~0U`).
    min_rtt_us: Option<u64>,
    /// End sequence, send time and PSH mark of each new-data segment in flight: the
    /// RTT samples `tcp_clean_rtx_queue` takes, `packets_out`, and the segment a loss
    /// probe sends again.
    tx_times: VecDeque<(u32, Instant, bool)>,
    /// `sk_wmem_queued`: the truesize of those skbs.
    wmem_queued: u32,
    /// `sk_sndbuf`.
    pub sndbuf: u32,
    /// `tcp_wmem[2]`, the ceiling of `tcp_sndbuf_expand`.
    wmem_max: u32,
    recv_buf: VecDeque<u8>,
    rx_skbs: VecDeque<RxSkb>,
    fin_queued: bool,
    /// `SOCK_DEAD`: `close()` orphaned the socket.
    dead: bool,
    fin_sent: bool,
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}
/// `between(seq1, seq2, seq3)`: seq2 <= seq1 <= seq3 modulo 2^32.
fn between(s1: u32, s2: u32, s3: u32) -> bool {
    s3.wrapping_sub(s2) >= s1.wrapping_sub(s2)
}

fn ms(now: Instant) -> u32 {
    now.as_millis() as u32
}

impl Tcb {
    /// A closed connection with the socket's options.
    pub fn new(params: TcpParams) -> Self {
        let any = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0));
        Tcb {
            state: State::Closed,
            local: any,
            remote: any,
            params,
            write_seq: 0,
            iss: 0,
            snd_una: 0,
            snd_nxt: 0,
            snd_wnd: 0,
            max_window: 0,
            snd_wscale: 0,
            mutation: None,
            fin_ignores_cwnd: false,
            ratio_follows_skbs: true,
            irs: 0,
            rcv_nxt: 0,
            rcv_wnd: 0,
            rcv_wscale: 0,
            window_clamp: 0,
            rcv_wup: 0,
            rcv_ssthresh: 0,
            rcvbuf: 0,
            rmem_alloc: 0,
            scaling_ratio: TCP_DEFAULT_SCALING_RATIO,
            ack: AckState::default(),
            delack_timer: None,
            app_win: 31,
            pingpong_thresh: 1,
            workaround_signed_windows: false,
            rmem2: 0,
            srtt: None,
            tw_rcv_wnd: 0,
            tw_fin_wait2: false,
            tw_last_oow_ack: 0,
            advmss: 0,
            mss_clamp: TCP_MSS_DEFAULT,
            mss_cache: TCP_MSS_DEFAULT,
            tcp_header_len: 0,
            pmtu_locked: false,
            pmtu: 0,
            ext_hdr_len: 0,
            net_header_len: 20,
            txhash: 0,
            txhash_rng: 0,
            tstamp_ok: false,
            sack_ok: false,
            wscale_ok: false,
            ts_recent: 0,
            ts_offset: 0,
            ecn_requested: false,
            ecn_ok: false,
            tfo_request: false,
            syn_offer_ts: false,
            syn_offer_sack: false,
            syn_offer_ws: false,
            syn_ecn_flags: false,
            pmtu_reduced: false,
            retrans_stamp_ms: 0,
            first_syn_at: Instant::ZERO,
            rto: TCP_TIMEOUT_INIT,
            retransmits: 0,
            total_rto: 0,
            total_retrans: 0,
            backoff: 0,
            rtx_timer: None,
            rtx_kind: XmitTimer::Retrans,
            tlp_high_seq: None,
            loss_high_seq: None,
            early_retrans: 3,
            timewait_timer: None,
            cwnd: TCP_INIT_CWND,
            sk_err: None,
            sk_err_soft: None,
            shutdown: 0,
            ip_id: 0,
            send_buf: VecDeque::new(),
            tx_skbs: VecDeque::new(),
            pushed_seq: 0,
            snd_sml: 0,
            pacing_rate: None,
            srtt_us: 0,
            min_rtt_us: None,
            tx_times: VecDeque::new(),
            wmem_queued: 0,
            sndbuf: 0,
            wmem_max: 0,
            recv_buf: VecDeque::new(),
            rx_skbs: VecDeque::new(),
            fin_queued: false,
            dead: false,
            fin_sent: false,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Mirrors `tcp_set_state`: the single place the state changes.
    pub fn set_state(&mut self, to: State) {
        debug_assert!(
            self.state.can_transition(to),
            "{:?} -> {:?}",
            self.state,
            to
        );
        tracing::trace!(from = ?self.state, ?to, "tcp state");
        self.state = to;
        if to == State::Closed {
            self.rtx_timer = None;
            self.timewait_timer = None;
            self.delack_timer = None;
        }
    }

    /// Mirrors `tcp_done`: CLOSE, both directions shut down, queues purged.
    fn done(&mut self) {
        self.set_state(State::Closed);
        self.shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN;
        self.send_buf.clear();
        self.tx_skbs.clear();
        self.wmem_queued = 0;
    }

    /// Mirrors `tcp_done_with_error`: record `err` and abort.
    pub fn done_with_error(&mut self, err: Errno) {
        self.sk_err = Some(err);
        self.done();
    }

    /// Readable bytes.
    pub fn recv_queue_len(&self) -> usize {
        self.recv_buf.len()
    }
    /// Unacked + unsent bytes.
    pub fn send_queue_len(&self) -> usize {
        self.send_buf.len()
    }

    /// The next timer of this connection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.rtx_timer, self.timewait_timer, self.delack_timer]
            .into_iter()
            .flatten()
            .min()
    }

    /// `sk_set_txhash`: a random non-zero flow hash, drawn from `seed` (and later
    /// redrawn from it by `rethink_txhash` after each retransmission timeout).
    pub fn set_txhash(&mut self, seed: u64) {
        self.txhash_rng = seed;
        self.txhash = self.next_txhash();
    }

    /// `sk_rethink_txhash` (include/net/sock.h), called by `tcp_write_timeout` after every
    /// retransmission timeout that does not give up: with `net.core.txrehash` the socket
    /// draws a new hash, so an automatic IPv6 flow label changes (the path may change).
    pub(super) fn rethink_txhash(&mut self, cfg: &crate::config::Config) {
        if self.txhash != 0 && cfg.core_txrehash {
            self.txhash = self.next_txhash();
        }
    }

    /// `net_tx_rndhash`: a random u32, never 0 (splitmix64 over the per-socket state).
    fn next_txhash(&mut self) -> u32 {
        loop {
            self.txhash_rng = self.txhash_rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.txhash_rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let h = (z ^ (z >> 31)) as u32;
            if h != 0 {
                return h;
            }
        }
    }

    /// Take the next IP ID (`ip_select_ident_segs`: `inet_id++`).
    pub fn next_ip_id(&mut self) -> u16 {
        let id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        id
    }
}
