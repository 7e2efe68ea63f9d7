//! Unit tests of the state machine, and of a whole [`Tcb`] built by hand: the window,
//! the receive queue and the MSS estimate working together on one connection.

use super::recv::rx_skb_layout;
use super::*;
use crate::config::Config;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpRepr};

/// The parameters of a socket no option was set on.
fn default_params() -> TcpParams {
    TcpParams {
        user_mss: 0,
        syn_retries: 0,
        user_timeout_ms: 0,
        rto_max_ms: 120_000,
        fastopen_connect: false,
        rcvbuf_locked: None,
        window_clamp: 0,
        nodelay: false,
        jiffies_offset: 0,
    }
}

/// A connection at MSS 1460 just established (`tcp_finish_connect`) with this
/// `tcp_app_win`, receive buffer, initial window and window clamp.
fn established(app_win: u8, rcvbuf: u32, rcv_wnd: u32, window_clamp: u32) -> Tcb {
    let mut t = Tcb::new(default_params());
    t.app_win = app_win;
    t.rcvbuf = rcvbuf;
    t.advmss = 1460;
    t.mss_cache = 1460;
    t.rcv_wnd = rcv_wnd;
    t.rcv_ssthresh = rcv_wnd;
    t.window_clamp = window_clamp;
    t.rcv_nxt = 1;
    t.finish_connect(Instant::ZERO);
    t
}

/// `tcp_measure_rcv_mss` resets the clamp that `tcp_app_win` reserved
/// once a segment longer than the MSS guess changes `scaling_ratio`.
#[test]
fn scaling_ratio_change_resets_the_app_win_clamp() {
    let mut t = established(1, 32768, 16060, 16384);
    // tcp_init_buffer_space: max(16384 - 16384 / 2, 4 * 1460).
    assert_eq!(
        (t.window_clamp, t.rcv_ssthresh, t.ack.rcv_mss),
        (8192, 8192, 536)
    );
    let seg = |len: usize| TcpRepr {
        src_port: 80,
        dst_port: 40000,
        seq: 1,
        ack: 1,
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
        window: 65535,
        urgent: 0,
        options: vec![],
        payload: vec![0; len],
    };
    // Shorter than the guess: ratio and clamp stay.
    t.measure_rcv_mss(&seg(400), rx_truesize(14 + 20 + 20 + 400));
    assert_eq!(
        (t.scaling_ratio, t.window_clamp),
        (TCP_DEFAULT_SCALING_RATIO, 8192)
    );
    // 1000 bytes in a 2304-byte skb: ratio 111, clamp 32768 * 111 / 256.
    t.measure_rcv_mss(&seg(1000), 2304);
    assert_eq!(
        (t.scaling_ratio, t.window_clamp, t.rcv_ssthresh),
        (111, 14208, 14208)
    );
    assert_eq!(t.ack.rcv_mss, 1000);
    // The same length again: no division, nothing moves.
    t.measure_rcv_mss(&seg(1000), 4096);
    assert_eq!((t.scaling_ratio, t.window_clamp), (111, 14208));
}

/// `tcp_try_coalesce`: a segment that fits behind the tail skb's data is
/// copied there at no truesize; one that does not gets an skb of its own;
/// a FIN alone joins the tail.
#[test]
fn the_receive_queue_coalesces_into_the_tail_skb() {
    let mut t = Tcb::new(default_params());
    // A 1000-byte SYN-ACK payload: frame 1074, head 16 + 1074 in a 2048-byte bucket.
    assert_eq!(rx_skb_layout(1074), (2304, 638));
    t.queue_rcv(&[1; 1000], false, 1074);
    t.queue_rcv(&[2; 600], false, 666);
    assert_eq!((t.rx_skbs.len(), t.rmem_alloc), (1, 2304));
    assert_eq!((t.rx_skbs[0].len, t.rx_skbs[0].tailroom), (1600, 38));
    t.queue_rcv(&[3; 100], false, 166);
    assert_eq!((t.rx_skbs.len(), t.rmem_alloc), (2, 2304 + 768));
    t.queue_rcv(&[], true, 66);
    assert_eq!((t.rx_skbs.len(), t.rmem_alloc), (2, 2304 + 768));
    assert!(t.rx_skbs[1].fin);
    assert_eq!(t.unread_seq(), 1701);
}

#[test]
fn select_window_never_shrinks() {
    let mut t = established(31, Config::default().tcp_rmem[1], 64240, 65535);
    assert_eq!(
        (t.window_clamp, t.rcv_ssthresh, t.ack.rcv_mss),
        (64076, 64076, 536)
    );
    // __tcp_select_window: rounddown(64076, 536) = 63784 < 64240.
    assert_eq!(t.raw_select_window(), 63784);
    assert_eq!(t.select_window(), 64240);
    t.rcv_nxt = 2; // a FIN
    assert_eq!(t.select_window(), 64239);
    assert_eq!((t.rcv_wnd, t.rcv_wup), (64239, 2));
    // With wscale 10 the remainder is aligned up to the scale unit.
    t.rcv_wscale = 10;
    t.rcv_nxt = 52;
    assert_eq!(t.receive_window(), 64189);
    assert_eq!(t.select_window(), 63);
    assert_eq!(t.rcv_wnd, 64512);
}

#[test]
fn transitions_are_declared() {
    assert!(State::Closed.can_transition(State::SynSent));
    assert!(State::SynSent.can_transition(State::Established));
    assert!(!State::Closed.can_transition(State::Established));
    assert!(!State::SynSent.can_transition(State::FinWait1));
}
