//! Enough of ESTABLISHED for the scenarios: segmentation by MSS within an
//! initial window of 10, ACKs for received data, FIN on close, RST on abort.

mod common;
use common::*;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

fn established(opts: Vec<TcpOption>) -> (Sim, SocketHandle, TcpRepr) {
    established_with(&[], 0, 65535, opts)
}

/// A nonblocking connect under `sysctls`, answered by a SYN-ACK of `window` and `opts`
/// at `synack_ms` (the handshake RTT that TSO autosizing and pacing start from).
fn established_with(
    sysctls: &[(&str, &str)],
    synack_ms: u64,
    window: u16,
    opts: Vec<TcpOption>,
) -> (Sim, SocketHandle, TcpRepr) {
    let mut sim = Sim::new(sysctls);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    if synack_ms > 0 {
        sim.now = Instant::from_millis(synack_ms);
    }
    sim.deliver_tcp(&synack(&syn, 1000, window, opts), 0);
    sim.pump();
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Ok(()))
    );
    (sim, h, syn)
}

/// Which of `frames` carry PSH, in order.
fn psh_flags(frames: &[Frame]) -> Vec<bool> {
    frames
        .iter()
        .map(|f| f.tcp().flags.has(TcpFlags::PSH))
        .collect()
}

/// Each of `frames` as (payload length, PSH).
fn lengths_and_psh(frames: &[Frame]) -> Vec<(usize, bool)> {
    frames
        .iter()
        .map(|f| (f.tcp().payload.len(), f.tcp().flags.has(TcpFlags::PSH)))
        .collect()
}

fn peer_seg(syn: &TcpRepr, seq: u32, ack: u32, flags: u16, payload: &[u8]) -> TcpRepr {
    TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 65535,
        options: vec![],
        payload: payload.to_vec(),
        ..TcpRepr::default()
    }
}

#[test]
fn send_is_segmented_by_mss_within_initial_cwnd() {
    let (mut sim, h, syn) = established(linux_synack_options(1, 0));
    let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    assert_eq!(sim.stack.send(sim.now, h, &data), Ok(20_000));
    let flight = sim.pump();
    assert_eq!(flight.len(), 10, "initial cwnd 10");
    for f in &flight {
        assert_eq!(f.tcp().payload.len(), 1448, "1460 - 12 bytes of timestamps");
    }
    let isn = syn.seq;
    assert_eq!(flight[0].tcp().seq, isn.wrapping_add(1));
    // ACK everything so far: the rest follows.
    let acked = isn.wrapping_add(1 + 14_480);
    sim.deliver_tcp(&peer_seg(&syn, 1001, acked, TcpFlags::ACK, &[]), 0);
    let more = sim.pump();
    let total: usize = more.iter().map(|f| f.tcp().payload.len()).sum();
    assert_eq!(total, 20_000 - 14_480);
    assert!(more.last().unwrap().tcp().flags.has(TcpFlags::PSH));
    let mut got: Vec<u8> = flight
        .iter()
        .chain(more.iter())
        .flat_map(|f| f.tcp().payload.clone())
        .collect();
    got.truncate(20_000);
    assert_eq!(got, data);
}

#[test]
fn received_data_is_acked_and_read_then_fin_on_close() {
    let (mut sim, h, syn) = established(vec![TcpOption::Mss(1460)]);
    let isn1 = syn.seq.wrapping_add(1);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1, TcpFlags::ACK | TcpFlags::PSH, b"hello"),
        0,
    );
    let a = sim.pump();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].tcp().ack, a[0].tcp().flags),
        (1006, TcpFlags(TcpFlags::ACK))
    );
    let mut buf = [0u8; 16];
    assert_eq!(sim.stack.recv(sim.now, h, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(sim.stack.recv(sim.now, h, &mut buf), Err(Errno::EAGAIN));
    sim.stack.send(sim.now, h, b"ping").unwrap();
    let d = sim.pump();
    assert_eq!(d[0].tcp().payload, b"ping");
    sim.stack.close(sim.now, h).unwrap();
    let fin = sim.pump();
    assert_eq!(fin.len(), 1);
    assert!(fin[0].tcp().flags.fin());
    assert_eq!(fin[0].tcp().seq, isn1.wrapping_add(4));
    // Peer ACKs data+FIN and sends its own FIN: we ACK it and sit in TIME_WAIT.
    sim.deliver_tcp(
        &peer_seg(
            &syn,
            1006,
            isn1.wrapping_add(5),
            TcpFlags::ACK | TcpFlags::FIN,
            &[],
        ),
        0,
    );
    let last = sim.pump();
    assert_eq!(last[0].tcp().ack, 1007);
    sim.run_until(Instant::from_secs(70));
    assert!(
        sim.stack.poll_timeout().is_none(),
        "TIME_WAIT expired and the socket is gone"
    );
}

#[test]
fn peer_fin_then_close_sends_fin_from_close_wait() {
    let (mut sim, h, syn) = established(vec![]);
    let isn1 = syn.seq.wrapping_add(1);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1, TcpFlags::ACK | TcpFlags::FIN, &[]),
        0,
    );
    // tcp_fin in ESTABLISHED: CLOSE_WAIT in pingpong mode, the ACK is delayed.
    assert!(sim.pump().is_empty(), "the FIN is not ACKed at once");
    assert_eq!(sim.stack.tcp_state(h), Ok(State::CloseWait));
    let mut buf = [0u8; 4];
    assert_eq!(sim.stack.recv(sim.now, h, &mut buf), Ok(0), "EOF");
    sim.stack.close(sim.now, h).unwrap();
    // The FIN carries the owed ACK: one frame, and no delayed ACK later.
    let f = sim.pump();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].tcp().flags, f[0].tcp().ack),
        (TcpFlags(TcpFlags::FIN | TcpFlags::ACK), 1002)
    );
    sim.run_until(Instant::from_millis(500));
    assert!(
        sim.tcp_sent().last().unwrap().1.flags.fin(),
        "the delack timer was cleared by the FIN|ACK"
    );
}

#[test]
fn delayed_ack_of_a_fin_fires_after_ato() {
    // After data, ato = TCP_ATO_MIN (10 jiffies = 40 ms): tcp_send_delayed_ack
    // arms the delack timer that far ahead, on the timer wheel (level 0:
    // it fires one jiffy after its expiry).
    let (mut sim, h, syn) = established(vec![]);
    let isn1 = syn.seq.wrapping_add(1);
    sim.now = Instant::from_millis(100);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1, TcpFlags::ACK | TcpFlags::PSH, b"data"),
        0,
    );
    assert_eq!(
        sim.pump()[0].tcp().ack,
        1005,
        "quickack after the handshake"
    );
    sim.deliver_tcp(
        &peer_seg(&syn, 1005, isn1, TcpFlags::ACK | TcpFlags::FIN, &[]),
        0,
    );
    assert!(sim.pump().is_empty(), "pingpong: the FIN's ACK is delayed");
    sim.run_until(Instant::from_millis(143));
    assert_eq!(sim.tcp_sent().len(), 3, "SYN, final ACK, ACK of data");
    sim.run_until(Instant::from_millis(200));
    let (t, ack) = sim.tcp_sent().last().unwrap().clone();
    assert_eq!((ack.flags, ack.ack), (TcpFlags(TcpFlags::ACK), 1006));
    assert_eq!(t, Instant::from_millis(144));
    assert_eq!(sim.stack.tcp_state(h), Ok(State::CloseWait));
}

#[test]
fn delayed_ack_of_a_fin_before_any_data_waits_one_jiffy() {
    // No data yet: icsk_ack.ato is still 0, so the delack timer is armed for
    // `jiffies + 0` and fires at the next tick.
    let (mut sim, _h, syn) = established(vec![]);
    sim.now = Instant::from_millis(100);
    sim.deliver_tcp(
        &peer_seg(
            &syn,
            1001,
            syn.seq.wrapping_add(1),
            TcpFlags::ACK | TcpFlags::FIN,
            &[],
        ),
        0,
    );
    assert!(sim.pump().is_empty());
    sim.run_until(Instant::from_millis(200));
    let (t, ack) = sim.tcp_sent().last().unwrap().clone();
    assert_eq!((ack.ack, t), (1002, Instant::from_millis(104)));
}

#[test]
fn sixteen_quick_acks_after_the_handshake_then_delayed() {
    // tcp_event_data_recv: the first data starts quickack mode with
    // min(rcv_wnd / (2 * rcv_mss), 16) quick ACKs; each ACK of new data uses
    // one (tcp_dec_quickack_mode); then ACKs wait for the delack timer.
    let (mut sim, _h, syn) = established(linux_synack_options(1, 0));
    let isn1 = syn.seq.wrapping_add(1);
    let mut seq = 1001u32;
    for i in 0..16 {
        sim.deliver_tcp(
            &peer_seg(&syn, seq, isn1, TcpFlags::ACK | TcpFlags::PSH, &[7; 10]),
            0,
        );
        seq += 10;
        let a = sim.pump();
        assert_eq!(a.len(), 1, "quick ACK {i}");
        assert_eq!(a[0].tcp().ack, seq);
    }
    sim.deliver_tcp(
        &peer_seg(&syn, seq, isn1, TcpFlags::ACK | TcpFlags::PSH, &[7; 10]),
        0,
    );
    assert!(sim.pump().is_empty(), "17th segment: delayed ACK");
    let t0 = sim.now;
    sim.run_until(t0 + std::time::Duration::from_millis(100));
    let (t, ack) = sim.tcp_sent().last().unwrap().clone();
    assert_eq!(ack.ack, seq + 10);
    assert_eq!(t, Instant::from_millis(44));
}

#[test]
fn window_never_shrinks_unscaled_fin_consumes_one() {
    // tcp_init_buffer_space lowers window_clamp (and rcv_ssthresh) to
    // 65536 - advmss, so __tcp_select_window offers less than 64240 and
    // tcp_select_window keeps what is left of the last offer: the ACK of the
    // peer's FIN says 64239 (the FIN took one byte of the window).
    let (mut sim, h, syn) = established(vec![TcpOption::Mss(1460)]);
    let isn1 = syn.seq.wrapping_add(1);
    let final_ack = sim.tcp_sent().last().unwrap().1.clone();
    assert_eq!(final_ack.window, 64240);
    sim.stack.close(sim.now, h).unwrap();
    let fin = sim.pump();
    assert_eq!(fin[0].tcp().window, 64240);
    sim.deliver_tcp(
        &peer_seg(
            &syn,
            1001,
            isn1.wrapping_add(1),
            TcpFlags::ACK | TcpFlags::FIN,
            &[],
        ),
        0,
    );
    let a = sim.pump();
    assert_eq!((a[0].tcp().ack, a[0].tcp().window), (1002, 64239));
}

#[test]
fn window_never_shrinks_so_rcvbuf_4096() {
    // rcvbuf 8192, window 2920; window_clamp 2896 after tcp_init_buffer_space.
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![SockOpt::SoRcvBuf(4096)]);
    let syn = syn.tcp().clone();
    assert_eq!(syn.window, 2920);
    sim.deliver_tcp(&synack(&syn, 1000, 65535, linux_synack_options(1, 0)), 0);
    assert_eq!(sim.pump()[0].tcp().window, 2920);
    sim.stack.close(sim.now, h).unwrap();
    assert_eq!(sim.pump()[0].tcp().window, 2920);
    let isn1 = syn.seq.wrapping_add(1);
    sim.deliver_tcp(
        &peer_seg(
            &syn,
            1001,
            isn1.wrapping_add(1),
            TcpFlags::ACK | TcpFlags::FIN,
            &[],
        ),
        0,
    );
    assert_eq!(sim.pump()[0].tcp().window, 2919);
}

#[test]
fn scaled_window_is_aligned_up_after_data() {
    // wscale 10: 50 unread bytes leave 64462 of the offered 64512; the
    // never-shrink rule offers ALIGN(64462, 1024) = 63 << 10, not 62.
    let (mut sim, h, syn) = established(linux_synack_options(1, 0));
    assert_eq!(sim.tcp_sent().last().unwrap().1.window, 63);
    let isn1 = syn.seq.wrapping_add(1);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1, TcpFlags::ACK | TcpFlags::PSH, &[1; 50]),
        0,
    );
    let a = sim.pump();
    assert_eq!((a[0].tcp().ack, a[0].tcp().window), (1051, 63));
    let mut buf = [0u8; 100];
    assert_eq!(sim.stack.recv(sim.now, h, &mut buf), Ok(50));
    assert!(sim.pump().is_empty(), "no window update for 50 bytes");
}

#[test]
fn abort_and_close_with_unread_data_send_rst() {
    let (mut sim, h, syn) = established(vec![]);
    sim.stack.abort(sim.now, h).unwrap();
    let r = sim.pump();
    assert_eq!(r[0].tcp().flags, TcpFlags(TcpFlags::RST | TcpFlags::ACK));
    assert_eq!(r[0].tcp().seq, syn.seq.wrapping_add(1));

    let (mut sim, h, syn) = established(vec![]);
    sim.deliver_tcp(
        &peer_seg(
            &syn,
            1001,
            syn.seq.wrapping_add(1),
            TcpFlags::ACK,
            b"unread",
        ),
        0,
    );
    sim.pump();
    sim.stack.close(sim.now, h).unwrap();
    assert!(sim.pump()[0].tcp().flags.rst());
}

#[test]
fn peer_rst_gives_econnreset() {
    let (mut sim, h, syn) = established(vec![]);
    sim.deliver_tcp(&peer_seg(&syn, 1001, 0, TcpFlags::RST, &[]), 0);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Closed));
    assert_eq!(sim.stack.send(sim.now, h, b"x"), Err(Errno::ECONNRESET));
    assert_eq!(sim.stack.send(sim.now, h, b"x"), Err(Errno::EPIPE));
}

#[test]
fn cwnd_1_after_two_syn_retransmissions_without_ts() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    sim.run_until(Instant::from_millis(2100));
    sim.deliver_tcp(
        &synack(syn.tcp(), 1000, 65535, vec![TcpOption::Mss(1460)]),
        0,
    );
    sim.pump();
    sim.stack.send(sim.now, h, &[0u8; 5000]).unwrap();
    assert_eq!(sim.pump().len(), 1, "first flight is one segment");
}

#[test]
fn send_before_connected() {
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    assert_eq!(sim.stack.send(sim.now, h, b"x"), Err(Errno::EPIPE));
    let (h, _) = sim.connect_nb(vec![]);
    assert_eq!(sim.stack.send(sim.now, h, b"x"), Err(Errno::EAGAIN));
}

#[test]
fn fin_waits_for_window_room_after_a_zero_window_synack() {
    // tcp_snd_wnd_test: the FIN's end_seq must fit in snd_una + snd_wnd; a
    // SYN-ACK with window 0 (never scaled) leaves none, so close() sends nothing.
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    sim.deliver_tcp(&synack(&syn, 1000, 0, vec![TcpOption::Mss(1460)]), 0);
    assert_eq!(sim.pump().len(), 1, "the handshake ACK");
    sim.stack.close(sim.now, h).unwrap();
    assert!(sim.pump().is_empty(), "no FIN into a zero window");
    // The window opens: the FIN goes out with the window update's processing.
    let isn1 = syn.seq.wrapping_add(1);
    sim.deliver_tcp(&peer_seg(&syn, 1001, isn1, TcpFlags::ACK, &[]), 0);
    let f = sim.pump();
    assert_eq!(f.len(), 1);
    assert!(f[0].tcp().flags.fin());
    assert_eq!(f[0].tcp().seq, isn1);
}

#[test]
fn orphan_in_fin_wait_gets_data_beyond_rcv_nxt_and_resets() {
    // SYN-ACK with 1 byte of payload (discarded without TFO); the peer then
    // ACKs our FIN and sends its FIN at seq peer_isn+2, past rcv_nxt:
    // tcp_rcv_state_process (FIN_WAIT1, SOCK_DEAD) → tcp_done, return 1 →
    // tcp_v4_send_reset: `R seq=SEG.ACK`, no ACK flag.
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    let mut sa = synack(&syn, 1000, 65535, vec![TcpOption::Mss(1460)]);
    sa.payload = vec![0x55];
    sim.deliver_tcp(&sa, 0);
    let ack = sim.pump();
    assert_eq!(ack[0].tcp().ack, 1001, "the SYN-ACK's payload is not acked");
    sim.stack.close(sim.now, h).unwrap();
    let fin = sim.pump();
    assert!(fin[0].tcp().flags.fin());
    let isn1 = syn.seq.wrapping_add(1);
    sim.deliver_tcp(
        &peer_seg(
            &syn,
            1002,
            isn1.wrapping_add(1),
            TcpFlags::ACK | TcpFlags::FIN,
            &[],
        ),
        0,
    );
    let r = sim.pump();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].tcp().flags, TcpFlags(TcpFlags::RST));
    assert_eq!(r[0].tcp().seq, isn1.wrapping_add(1));
    assert!(sim.stack.poll_timeout().is_none(), "the socket is gone");
}

#[test]
fn segments_wait_for_a_window_they_fit_in_whole() {
    // SYN-ACK window 1 (never scaled): tcp_sync_mss bounds the payload to
    // max(max_window, 68 - tcp_header_len) = 36 with timestamps, and
    // tcp_snd_wnd_test sends no segment that does not fit whole: nothing.
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    sim.deliver_tcp(&synack(&syn, 1000, 1, linux_synack_options(1, 0)), 0);
    assert_eq!(sim.pump().len(), 1, "the handshake ACK");
    sim.stack.send(sim.now, h, &[7u8; 100]).unwrap();
    assert!(
        sim.pump().is_empty(),
        "no sliver of a segment into window 1"
    );
    // A window of 1 << 7 = 128 bytes raises max_window: the payload bound is
    // 128 (max_window <= 536 is not halved) and 100 bytes go in one segment.
    let isn1 = syn.seq.wrapping_add(1);
    let mut upd = peer_seg(&syn, 1001, isn1, TcpFlags::ACK, &[]);
    upd.window = 1;
    upd.options = vec![TcpOption::Timestamps { tsval: 2, tsecr: 0 }];
    sim.deliver_tcp(&upd, 0);
    let d = sim.pump();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].tcp().payload.len(), 100);
}

/// Close, let the peer ACK our FIN alone: `tcp_rcv_state_process` turns the
/// orphan into a FIN_WAIT2 timewait socket (`tcp_time_wait(sk,
/// TCP_FIN_WAIT2, tmo)`). Returns the sim, the SYN and our first sequence number.
fn orphan_in_fin_wait2(opts: Vec<TcpOption>) -> (Sim, TcpRepr, u32) {
    let (mut sim, h, syn) = established(opts);
    let isn1 = syn.seq.wrapping_add(1);
    sim.stack.close(sim.now, h).unwrap();
    let fin = sim.pump();
    assert!(fin[0].tcp().flags.fin());
    sim.now = Instant::from_millis(10);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1.wrapping_add(1), TcpFlags::ACK, &[]),
        0,
    );
    assert!(sim.pump().is_empty(), "the ACK of our FIN is consumed");
    (sim, syn, isn1)
}

#[test]
fn fin_wait2_timewait_acks_the_peer_fin_from_the_control_socket() {
    // tcp_timewait_state_process: the FIN makes it a true TIME_WAIT, answered
    // by tcp_v4_timewait_ack: IP ID 0 (the control socket), the window frozen
    // at tcp_time_wait (the FIN does not take its byte off tw_rcv_wnd, as it
    // would in tcp_select_window), TSecr the FIN's TSval.
    let (mut sim, syn, isn1) = orphan_in_fin_wait2(linux_synack_options(1, 0));
    sim.now = Instant::from_millis(20);
    let mut fin = peer_seg(
        &syn,
        1001,
        isn1.wrapping_add(1),
        TcpFlags::ACK | TcpFlags::FIN,
        &[],
    );
    fin.options = vec![
        TcpOption::Nop,
        TcpOption::Nop,
        TcpOption::Timestamps {
            tsval: 77,
            tsecr: 0,
        },
    ];
    sim.deliver_tcp(&fin, 0);
    let a = sim.pump();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].ip().ident, 0, "from the control socket");
    let t = a[0].tcp();
    assert_eq!(t.flags, TcpFlags(TcpFlags::ACK));
    assert_eq!((t.seq, t.ack), (isn1.wrapping_add(1), 1002));
    let our_fin = sim
        .tcp_sent()
        .into_iter()
        .find(|(_, t)| t.flags.fin())
        .unwrap()
        .1;
    assert_eq!(
        t.window, our_fin.window,
        "tw_rcv_wnd >> tw_rcv_wscale: what was left of the last offer"
    );
    assert_eq!(t.timestamps().map(|(_, ecr)| ecr), Some(77));
    // TIME_WAIT lasts TCP_TIMEWAIT_LEN from the FIN.
    sim.run_until(Instant::from_secs(59));
    assert!(sim.stack.poll_timeout().is_some());
    sim.run_until(Instant::from_secs(62));
    assert!(sim.stack.poll_timeout().is_none(), "TIME_WAIT is over");
}

#[test]
fn fin_wait2_timewait_resets_new_data() {
    // "New data or FIN. If new data arrive after half-duplex close, reset":
    // TCP_TW_RST → tcp_v4_send_reset (seq = SEG.ACK), and the timewait
    // socket dies.
    let (mut sim, syn, isn1) = orphan_in_fin_wait2(vec![TcpOption::Mss(1460)]);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1.wrapping_add(1), TcpFlags::ACK, b"late"),
        0,
    );
    let r = sim.pump();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].tcp().flags, TcpFlags(TcpFlags::RST));
    assert_eq!(r[0].tcp().seq, isn1.wrapping_add(1));
    assert_eq!(r[0].ip().ident, 0);
    assert!(
        sim.stack.poll_timeout().is_none(),
        "the timewait socket is gone"
    );
}

#[test]
fn time_wait_acks_out_of_window_segments_rate_limited() {
    // A retransmitted FIN (out of window: seq < rcv_nxt) is acked each time
    // (it carries sequence space, tcp_oow_rate_limited skips it); bare
    // out-of-window ACKs at most once per tcp_invalid_ratelimit (500 ms),
    // with the ECN bits of tw_tos cleared (TCP_TW_ACK_OOW).
    let (mut sim, syn, isn1) = orphan_in_fin_wait2(vec![TcpOption::Mss(1460)]);
    let fin = peer_seg(
        &syn,
        1001,
        isn1.wrapping_add(1),
        TcpFlags::ACK | TcpFlags::FIN,
        &[],
    );
    sim.deliver_tcp(&fin, 0);
    assert_eq!(sim.pump().len(), 1, "the FIN is acked");
    for _ in 0..2 {
        sim.deliver_tcp(&fin, 0);
        let a = sim.pump();
        assert_eq!(a.len(), 1, "a retransmitted FIN is always acked");
        assert_eq!((a[0].tcp().ack, a[0].ip().ident), (1002, 0));
    }
    let old_ack = peer_seg(&syn, 900, isn1.wrapping_add(1), TcpFlags::ACK, &[]);
    sim.deliver_tcp(&old_ack, 0);
    assert_eq!(
        sim.pump().len(),
        1,
        "the first out-of-window ACK is answered"
    );
    sim.now = Instant::from_millis(110);
    sim.deliver_tcp(&old_ack, 0);
    assert!(sim.pump().is_empty(), "rate-limited");
    sim.now = Instant::from_millis(610);
    sim.deliver_tcp(&old_ack, 0);
    assert_eq!(sim.pump().len(), 1, "500 ms later it is answered again");
    // An in-window bare ACK is silently absorbed.
    sim.deliver_tcp(
        &peer_seg(&syn, 1002, isn1.wrapping_add(1), TcpFlags::ACK, &[]),
        0,
    );
    assert!(sim.pump().is_empty());
}

#[test]
fn fin_riding_on_the_ack_of_our_fin_keeps_the_full_socket() {
    // tcp_rcv_state_process, FIN_WAIT1: `th->fin` → tcp_reset_keepalive_timer
    // and the full socket processes the FIN (tcp_fin: tcp_send_ack, then
    // TIME_WAIT): the ACK comes from the connection, its IP ID continues.
    let (mut sim, h, syn) = established(vec![TcpOption::Mss(1460)]);
    let isn1 = syn.seq.wrapping_add(1);
    sim.stack.close(sim.now, h).unwrap();
    let fin = sim.pump();
    let fin_id = fin[0].ip().ident;
    sim.deliver_tcp(
        &peer_seg(
            &syn,
            1001,
            isn1.wrapping_add(1),
            TcpFlags::ACK | TcpFlags::FIN,
            &[],
        ),
        0,
    );
    let a = sim.pump();
    assert_eq!(a[0].ip().ident, fin_id.wrapping_add(1));
}

#[test]
fn close_with_unread_data_resets_with_window_and_timestamps() {
    // tcp_close purges the receive queue, then tcp_send_active_reset goes
    // through __tcp_transmit_skb: the RST carries tcp_select_window's window
    // (no less than the last offer) and the timestamp option.
    let (mut sim, h, syn) = established(linux_synack_options(1, 0));
    let mut data = peer_seg(
        &syn,
        1001,
        syn.seq.wrapping_add(1),
        TcpFlags::ACK | TcpFlags::PSH,
        b"unread",
    );
    data.options = vec![
        TcpOption::Nop,
        TcpOption::Nop,
        TcpOption::Timestamps { tsval: 9, tsecr: 0 },
    ];
    sim.deliver_tcp(&data, 0);
    let ack = sim.pump();
    let last_window = ack.last().unwrap().tcp().window;
    sim.stack.close(sim.now, h).unwrap();
    let r = sim.pump();
    assert_eq!(r.len(), 1);
    let t = r[0].tcp();
    assert_eq!(t.flags, TcpFlags(TcpFlags::RST | TcpFlags::ACK));
    assert_eq!(t.window, last_window);
    assert_eq!(t.timestamps().map(|(_, ecr)| ecr), Some(9));
}

#[test]
fn small_window_skbs_push_marks_grow_and_window_sliver() {
    // fuzz-2-62: SYN-ACK window 1085 (no scaling, no timestamps): the MSS is
    // bounded to half of it (542), so is size_goal. tcp_sendmsg_locked sends
    // the first full skb alone (tcp_push_one, no PSH), marks the second
    // (forced_push: more than max_window/2 queued since pushed_seq) and
    // every other one after it; each push grows the send head by the skb
    // behind it (tcp_grow_skb, up to the cwnd quota). When the ACK opens
    // the window again, tcp_mss_split_point cuts it at the window's end:
    // 542, 542 and a 1-byte sliver that ends the TSO packet with PSH.
    let (mut sim, h, syn) = established_with(
        &[("net.ipv4.tcp_timestamps", "0"), ("net.ipv4.tcp_sack", "0")],
        0,
        1085,
        vec![TcpOption::Mss(1460)],
    );
    assert_eq!(sim.stack.send(sim.now, h, &[1u8; 5152]), Ok(5152));
    assert_eq!(
        lengths_and_psh(&sim.pump()),
        vec![(542, false), (542, true)]
    );
    let isn1 = syn.seq.wrapping_add(1);
    let mut ack = peer_seg(&syn, 1001, isn1.wrapping_add(1084), TcpFlags::ACK, &[]);
    ack.window = 1085;
    sim.deliver_tcp(&ack, 0);
    assert_eq!(
        lengths_and_psh(&sim.pump()),
        vec![(542, false), (542, false), (1, true)]
    );
}

#[test]
fn every_multi_segment_skb_ends_with_psh() {
    // fuzz-3-29: SYN-ACK window 10017 → size_goal 3 × 1448. The first skb
    // goes out alone when full (tcp_push_one) and the second on
    // forced_push; each is one TSO packet of three segments and the oracle
    // shows PSH on the last segment of each. The third waits for the window.
    let (mut sim, h, syn) = established_with(&[], 0, 10017, linux_synack_options(1, 0));
    let _ = syn;
    assert_eq!(sim.stack.send(sim.now, h, &[2u8; 13627]), Ok(13627));
    let psh = psh_flags(&sim.pump());
    assert_eq!(psh, vec![false, false, true, false, false, true]);
}

#[test]
fn slow_handshake_keeps_tso_packets_at_two_segments_until_a_fast_sample() {
    // fuzz-3-38: the SYN-ACK arrives 18 ms after the SYN. tcp_tso_autosize:
    // BBR's initial pacing rate (10 × 1460 B / 18 ms × 2.89 × 0.99) gives
    // ~2.3 kB per ms and tcp_min_rtt (18 ms) >> 9 is too large for the
    // sk_gso_max_size bonus, so TSO packets hold bbr_min_tso_segs = 2
    // segments, each ending in PSH.
    // A data ACK 100 µs later is a fast sample: packets grow to the cwnd.
    let (mut sim, h, syn) = established_with(
        &[("net.ipv4.tcp_timestamps", "0")],
        18,
        65535,
        vec![TcpOption::Mss(1460)],
    );
    sim.now = Instant::from_millis(40);
    assert_eq!(sim.stack.send(sim.now, h, &[3u8; 40_000]), Ok(40_000));
    let psh = psh_flags(&sim.pump());
    assert_eq!(psh, [false, true].repeat(5));
    let isn1 = syn.seq.wrapping_add(1);
    sim.now = Instant::from_nanos(40_100_000);
    let acked = isn1.wrapping_add(10 * 1460);
    sim.deliver_tcp(&peer_seg(&syn, 1001, acked, TcpFlags::ACK, &[]), 0);
    let more = sim.pump();
    let psh_at: Vec<usize> = more
        .iter()
        .enumerate()
        .filter(|(_, f)| f.tcp().flags.has(TcpFlags::PSH))
        .map(|(i, _)| i)
        .collect();
    // cwnd 20, half of it per TSO packet: 10 segments, then the rest of
    // the first skb grown by the last one (tcp_grow_skb): 8 segments.
    assert_eq!(psh_at, vec![9, 17]);
}

#[test]
fn timewait_ack_keeps_the_ect_bit_of_the_last_data_segment() {
    // fuzz-6-63: with ECN negotiated, a FIN riding on data leaves ECT(0) in
    // inet->tos (tcp_ecn_send → INET_ECN_xmit); tcp_time_wait copies it into
    // tw_tos and tcp_v4_timewait_ack sends the peer's FIN its ACK with it.
    // A zero window holds the data until close() has queued the FIN on it.
    let mut sim = Sim::new(&[("net.ipv4.tcp_ecn", "1")]);
    let (h, syn) = sim.connect_nb(vec![SockOpt::IpTos(0xc7)]);
    let syn = syn.tcp().clone();
    let mut sa = synack(&syn, 1000, 0, vec![TcpOption::Mss(1460)]);
    sa.flags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
    sim.deliver_tcp(&sa, 0);
    sim.pump();
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Ok(()))
    );
    sim.stack.send(sim.now, h, b"data").unwrap();
    sim.stack.close(sim.now, h).unwrap();
    assert!(sim.pump().is_empty(), "the window is closed");
    let isn1 = syn.seq.wrapping_add(1);
    let mut open = peer_seg(&syn, 1001, isn1, TcpFlags::ACK, &[]);
    open.window = 1000;
    sim.deliver_tcp(&open, 0);
    let sent = sim.pump();
    let last = sent.last().unwrap();
    assert!(last.tcp().flags.fin() && !last.tcp().payload.is_empty());
    assert_eq!(
        last.ip().tos,
        0xc6,
        "IP_TOS less its ECN bits, ECT(0) on data"
    );
    let fin_ack = isn1.wrapping_add(5);
    sim.deliver_tcp(&peer_seg(&syn, 1001, fin_ack, TcpFlags::ACK, &[]), 0);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, fin_ack, TcpFlags::ACK | TcpFlags::FIN, &[]),
        0,
    );
    let a = sim.pump();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].ip().ident, a[0].ip().tos), (0, 0xc6));
}

#[test]
fn fastopen_synack_with_fin_saves_the_handshake_ack() {
    // fuzz-6-20: TCP_FASTOPEN_CONNECT, and the SYN-ACK carries a FIN.
    // tcp_rcv_fastopen_synack → tcp_fastopen_add_skb → tcp_fin: CLOSE_WAIT
    // in pingpong mode, so tcp_rcv_synsent_state_process "saves one ACK":
    // nothing goes out at once, the data sent next carries the ACK, and the
    // delayed-ACK timer (TCP_DELACK_MAX) finds nothing left to send.
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![SockOpt::TcpFastopenConnect(1)]);
    let syn = syn.tcp().clone();
    let mut sa = synack(&syn, 1000, 65535, vec![TcpOption::Mss(1460)]);
    sa.flags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::FIN);
    sim.deliver_tcp(&sa, 0);
    assert!(sim.pump().is_empty(), "no ACK of the SYN-ACK yet");
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Ok(()))
    );
    sim.now = Instant::from_millis(40);
    sim.stack.send(sim.now, h, b"data").unwrap();
    let d = sim.pump();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].tcp().ack, d[0].tcp().payload.len()), (1002, 4));
    sim.run_until(Instant::from_millis(400));
    let pure_acks = sim
        .tcp_sent()
        .iter()
        .filter(|(_, t)| !t.flags.syn() && t.payload.is_empty())
        .count();
    assert_eq!(pure_acks, 0, "the delayed ACK rode on the data");
}

#[test]
fn a_one_segment_head_cut_from_the_marked_tail_has_no_psh() {
    // fuzz-5-57: an 8 ms handshake caps TSO packets at 3 segments; the first
    // skb (9 segments: half the 26674-byte window) goes out as three of
    // them, each ending in PSH. One segment of cwnd is left for the tail
    // skb that tcp_push marked: tso_fragment cuts that one segment off and
    // leaves the mark on the remainder, so it carries no PSH.
    let (mut sim, h, _) = established_with(
        &[("net.ipv4.tcp_timestamps", "0")],
        8,
        26674,
        vec![TcpOption::Mss(1460)],
    );
    sim.now = Instant::from_millis(40);
    assert_eq!(sim.stack.send(sim.now, h, &[4u8; 18149]), Ok(18149));
    let psh = psh_flags(&sim.pump());
    let mut want = [false, false, true].repeat(3);
    want.push(false);
    assert_eq!(psh, want);
}

/// `tcp_grow_skb` (net/ipv4/tcp_output.c), called from `tcp_write_xmit`
/// once per loop turn before `tcp_snd_wnd_test`: the send head takes bytes
/// from the one skb behind it, also on pushes the window then stops.
#[test]
fn tiny_window_skbs_grow_one_skb_per_push_before_the_window_test() {
    // fuzz-2-90: SYN-ACK window 1 (unscaled), wscale 7, timestamps:
    // max_window 1 bounds the MSS and size_goal to 68 - 32 = 36 bytes
    // (tcp_bound_to_half_wnd). Every full skb is forced_push'ed; each
    // push grows the head by the next skb, up to the cwnd quota (5 × 36),
    // and frees the eaten skb (tcp_eat_one_skb), so sendmsg stops at 84
    // skbs' worth of sk_wmem_queued. The peer's FIN opens 1 << 7 = 128
    // bytes (max_window 128: MSS 128); each push then sends what fits and
    // grows the rest by one 36-byte skb: 128, 128, then 104 and 108-byte
    // skbs, each marked PSH, and the tail (72 bytes) with the FIN.
    let mut opts = linux_synack_options(0, 0);
    opts.retain(|o| *o != TcpOption::SackPermitted);
    let (mut sim, h, syn) = established_with(&[("net.ipv4.tcp_sack", "0")], 0, 1, opts);
    sim.now = Instant::from_millis(40);
    assert_eq!(sim.stack.send(sim.now, h, &[5u8; 3083]), Ok(3024));
    sim.stack.close(sim.now, h).unwrap();
    assert!(sim.pump().is_empty(), "a 1-byte window holds 36-byte skbs");
    let isn1 = syn.seq.wrapping_add(1);
    let ts = |seg: &mut TcpRepr, v: u32| {
        seg.options = vec![
            TcpOption::Nop,
            TcpOption::Nop,
            TcpOption::Timestamps { tsval: v, tsecr: 0 },
        ]
    };
    sim.now = Instant::from_millis(101);
    let mut fin = peer_seg(&syn, 1001, isn1, TcpFlags::ACK | TcpFlags::FIN, &[]);
    fin.window = 1;
    ts(&mut fin, 101);
    sim.deliver_tcp(&fin, 0);
    let mut shape: Vec<(usize, bool, bool)> = Vec::new();
    let mut acked = isn1;
    for i in 0..40u32 {
        for f in sim.pump() {
            let t = f.tcp();
            if t.payload.is_empty() && !t.flags.fin() {
                continue;
            }
            acked = t.seq.wrapping_add(t.seq_len());
            shape.push((t.payload.len(), t.flags.has(TcpFlags::PSH), t.flags.fin()));
        }
        if shape.last().is_some_and(|s| s.2) {
            break;
        }
        sim.now = Instant::from_millis(103 + 2 * i as u64);
        let mut ack = peer_seg(&syn, 1002, acked, TcpFlags::ACK, &[]);
        ack.window = 1;
        ts(&mut ack, 103 + 2 * i);
        sim.deliver_tcp(&ack, 0);
    }
    let mut want = vec![(128, false, false), (128, false, false), (104, true, false)];
    want.extend([(108, true, false)].repeat(24));
    want.push((72, true, true));
    assert_eq!(shape, want);
}

/// The peer's segment with a window of `window`.
fn peer_seg_win(
    syn: &TcpRepr,
    seq: u32,
    ack: u32,
    flags: u16,
    window: u16,
    payload: &[u8],
) -> TcpRepr {
    TcpRepr {
        window,
        ..peer_seg(syn, seq, ack, flags, payload)
    }
}

/// tcp_rcv_state_process, step 7: once the peer's FIN is in (CLOSING here), a segment at
/// or past `rcv_nxt` carries nothing the socket takes, so Linux neither queues nor ACKs
/// it. The socket closed with its data held back by the peer's zero window, so its own
/// FIN is still unsent (FIN_WAIT1), and the peer's FIN made it CLOSING (an orphan: its
/// state shows only on the wire).
#[test]
fn data_after_the_peers_fin_while_closing_is_not_acked() {
    let (mut sim, h, syn) = established_with(&[], 0, 0, linux_synack_options(1, 0));
    let isn1 = syn.seq.wrapping_add(1);
    assert_eq!(sim.stack.send(sim.now, h, &[7u8; 14_000]), Ok(14_000));
    sim.stack.close(sim.now, h).unwrap();
    assert!(
        sim.pump().is_empty(),
        "a zero window holds data and FIN back"
    );
    sim.now = Instant::from_millis(100);
    sim.deliver_tcp(
        &peer_seg_win(&syn, 1001, isn1, TcpFlags::ACK | TcpFlags::FIN, 0, &[]),
        0,
    );
    let fin_ack = sim.pump();
    assert_eq!(fin_ack.len(), 1, "the peer's FIN is acked");
    assert_eq!(fin_ack[0].tcp().ack, 1002);
    sim.now = Instant::from_millis(120);
    sim.deliver_tcp(
        &peer_seg_win(&syn, 1002, isn1, TcpFlags::ACK, 0, &[1u8; 1448]),
        0,
    );
    sim.deliver_tcp(
        &peer_seg_win(
            &syn,
            1002 + 1448,
            isn1,
            TcpFlags::ACK | TcpFlags::PSH,
            0,
            &[2u8; 1074],
        ),
        0,
    );
    assert!(
        sim.pump().is_empty(),
        "data after the peer's FIN is neither queued nor acked"
    );
}

/// The same step in CLOSE_WAIT: data (or a second FIN) after the peer's FIN, once that
/// FIN is acked, is dropped silently, now and later.
#[test]
fn data_after_the_peers_fin_in_close_wait_is_not_acked() {
    let (mut sim, h, syn) = established(vec![]);
    let isn1 = syn.seq.wrapping_add(1);
    sim.now = Instant::from_millis(100);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1, TcpFlags::ACK | TcpFlags::FIN, &[]),
        0,
    );
    sim.run_until(Instant::from_millis(200));
    assert_eq!(sim.stack.tcp_state(h), Ok(State::CloseWait));
    let acked = sim.tcp_sent().len();
    assert_eq!(
        sim.tcp_sent().last().unwrap().1.ack,
        1002,
        "the FIN is acked"
    );
    sim.deliver_tcp(
        &peer_seg(&syn, 1002, isn1, TcpFlags::ACK | TcpFlags::PSH, b"late"),
        0,
    );
    sim.deliver_tcp(
        &peer_seg(&syn, 1006, isn1, TcpFlags::ACK | TcpFlags::FIN, &[]),
        0,
    );
    sim.run_until(Instant::from_millis(1000));
    let late: Vec<TcpRepr> = sim.tcp_sent()[acked..]
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    assert!(late.is_empty(), "nothing after the FIN is acked: {late:?}");
    let mut buf = [0u8; 8];
    assert_eq!(
        sim.stack.recv(sim.now, h, &mut buf),
        Ok(0),
        "EOF, no late data"
    );
    assert_eq!(sim.stack.tcp_state(h), Ok(State::CloseWait));
}

/// The FINs a closed connection sends with the peer silent, as (ms, flags), from `from`.
fn fins_until(sim: &mut Sim, from: usize, until_ms: u64) -> Vec<(u64, bool)> {
    sim.run_until(Instant::from_millis(until_ms));
    sim.tcp_sent()[from..]
        .iter()
        .map(|(t, seg)| (t.as_millis(), seg.flags.fin()))
        .collect()
}

/// With SACK, an unanswered FIN is first sent again as a tail loss probe when the RTO
/// would have come (`tcp_schedule_loss_probe`: two RTTs plus the minimum RTO, at most the
/// RTO; 51 jiffies here), then the RTO is rearmed in full (`tcp_send_loss_probe` →
/// `tcp_rearm_rto`) and backs off from there (`tcp_retransmit_timer`). Without SACK, or
/// with `tcp_early_retrans` 0, the RTO alone fires, backing off at once.
#[test]
fn an_unanswered_fin_gets_a_loss_probe_then_the_rto_with_sack_only() {
    let sack = vec![TcpOption::Mss(1460), TcpOption::SackPermitted];
    // The gaps between the FINs: probe, RTO in full, RTO doubled; or the RTO doubling.
    let probe_first = vec![204, 204, 408];
    let rto_only = vec![204, 408, 816];
    for (sysctls, opts, expected) in [
        (&[][..], sack.clone(), probe_first),
        (&[][..], vec![TcpOption::Mss(1460)], rto_only.clone()),
        (&[("net.ipv4.tcp_early_retrans", "0")][..], sack, rto_only),
    ] {
        let (mut sim, h, _) = established_with(sysctls, 0, 65535, opts.clone());
        let sent_before = sim.tcp_sent().len();
        sim.stack.close(sim.now, h).unwrap();
        let fins = fins_until(&mut sim, sent_before, 1500);
        assert!(fins.iter().all(|(_, fin)| *fin), "{fins:?}");
        let gaps: Vec<u64> = fins.windows(2).map(|w| w[1].0 - w[0].0).collect();
        let what = format!("{opts:?} {sysctls:?}: gaps {gaps:?}, expected {expected:?}");
        assert_eq!(gaps.len(), expected.len(), "{what}");
        // A timer fires on the wheel: from a jiffy early (armed between ticks) to one
        // granularity late.
        for (gap, nominal) in gaps.iter().zip(&expected) {
            let granularity = if *nominal > 252 { 32 } else { 4 };
            assert!(
                *gap + 4 >= *nominal && *gap <= *nominal + granularity,
                "{what}"
            );
        }
    }
}

/// The SYN-ACK options of the retransmission cases: timestamps, no SACK (so the RTO, not a
/// loss probe, sends first).
fn no_sack_options() -> Vec<TcpOption> {
    vec![
        TcpOption::Mss(1460),
        TcpOption::Timestamps { tsval: 1, tsecr: 0 },
        TcpOption::Nop,
        TcpOption::WindowScale(7),
    ]
}

/// Runs timers until the stack sends something; returns it.
fn next_sent(sim: &mut Sim) -> Vec<Frame> {
    loop {
        let before = sim.now;
        let Some(due) = sim.stack.poll_timeout() else {
            panic!("no timer left at {before:?}");
        };
        sim.now = sim.now.max(due);
        sim.stack.handle_timeout(sim.now);
        let sent = sim.pump();
        if !sent.is_empty() {
            return sent;
        }
    }
}

#[test]
fn the_rto_resends_one_mss_of_a_long_head_without_its_psh_or_fin() {
    // tcp_retransmit_skb cuts the 4000-byte head skb to one MSS (tcp_fragment): the
    // PSH and the FIN stay on the remainder.
    let (mut sim, h, syn) = established(no_sack_options());
    sim.stack.send(sim.now, h, &[7u8; 4000]).unwrap();
    sim.stack.close(sim.now, h).unwrap();
    let flight = sim.pump();
    assert_eq!(flight.len(), 4, "three data segments and the FIN");
    let rtx = next_sent(&mut sim);
    assert_eq!(rtx.len(), 1);
    let t = rtx[0].tcp();
    assert_eq!(t.seq, syn.seq.wrapping_add(1));
    assert_eq!(t.payload.len(), 1448);
    assert!(!t.flags.has(TcpFlags::PSH), "PSH stays on the remainder");
    assert!(!t.flags.fin(), "the FIN stays on the remainder");
}

#[test]
fn the_rto_collapses_a_short_head_with_the_skbs_and_fin_behind_it() {
    // 1000 bytes sent, then the FIN alone: the retransmission takes the FIN along
    // (tcp_retrans_try_collapse) and keeps the head's PSH.
    let (mut sim, h, syn) = established(no_sack_options());
    sim.stack.send(sim.now, h, &[7u8; 1000]).unwrap();
    sim.stack.close(sim.now, h).unwrap();
    let flight = sim.pump();
    assert_eq!(flight.len(), 2);
    assert!(flight[1].tcp().flags.fin() && flight[1].tcp().payload.is_empty());
    let rtx = next_sent(&mut sim);
    let t = rtx[0].tcp();
    assert_eq!(t.seq, syn.seq.wrapping_add(1));
    assert_eq!(t.payload.len(), 1000);
    assert!(t.flags.has(TcpFlags::PSH) && t.flags.fin());

    // Two short skbs (the second held by Nagle and given the FIN by close) go again as
    // one segment, flags ORed.
    let (mut sim, h, syn) = established(no_sack_options());
    sim.stack.send(sim.now, h, &[1u8; 300]).unwrap();
    sim.stack.send(sim.now, h, &[2u8; 400]).unwrap();
    sim.stack.close(sim.now, h).unwrap();
    let flight = sim.pump();
    assert_eq!(
        flight
            .iter()
            .map(|f| (f.tcp().payload.len(), f.tcp().flags.fin()))
            .collect::<Vec<_>>(),
        [(300, false), (400, true)]
    );
    let rtx = next_sent(&mut sim);
    let t = rtx[0].tcp();
    assert_eq!(t.seq, syn.seq.wrapping_add(1));
    assert_eq!(t.payload.len(), 700);
    assert!(t.flags.has(TcpFlags::PSH) && t.flags.fin());
}

#[test]
fn the_rto_does_not_collapse_skbs_that_do_not_fit_one_mss() {
    // Two 1000-byte writes, each its own skb and segment (TCP_NODELAY: Nagle does not
    // hold the second). Together they exceed one MSS, so the RTO sends the head alone,
    // with its own PSH.
    let (mut sim, h, syn) = established(no_sack_options());
    sim.stack
        .setsockopt(sim.now, h, SockOpt::TcpNoDelay(1))
        .unwrap();
    sim.stack.send(sim.now, h, &[1u8; 1000]).unwrap();
    sim.stack.send(sim.now, h, &[2u8; 1000]).unwrap();
    assert_eq!(sim.pump().len(), 2);
    let rtx = next_sent(&mut sim);
    let t = rtx[0].tcp();
    assert_eq!(t.seq, syn.seq.wrapping_add(1));
    assert_eq!(t.payload.len(), 1000);
    assert!(t.flags.has(TcpFlags::PSH));
}

#[test]
fn nagle_holds_a_short_tail_while_a_short_segment_is_unacked() {
    let (mut sim, h, syn) = established(linux_synack_options(1, 0));
    sim.stack.send(sim.now, h, &[1u8; 300]).unwrap();
    assert_eq!(sim.pump().len(), 1);
    sim.stack.send(sim.now, h, &[2u8; 400]).unwrap();
    assert!(sim.pump().is_empty(), "held by Nagle's rule");
    let isn1 = syn.seq.wrapping_add(1);
    sim.deliver_tcp(
        &peer_seg(&syn, 1001, isn1.wrapping_add(300), TcpFlags::ACK, &[]),
        0,
    );
    let sent = sim.pump();
    assert_eq!(sent.len(), 1, "the ACK lets it go");
    assert_eq!(sent[0].tcp().seq, isn1.wrapping_add(300));
    assert_eq!(sent[0].tcp().payload.len(), 400);
}

#[test]
fn tcp_nodelay_sends_a_short_tail_at_once_and_pushes_a_held_one() {
    let (mut sim, h, _) = established(linux_synack_options(1, 0));
    sim.stack
        .setsockopt(sim.now, h, SockOpt::TcpNoDelay(1))
        .unwrap();
    sim.stack.send(sim.now, h, &[1u8; 300]).unwrap();
    sim.stack.send(sim.now, h, &[2u8; 400]).unwrap();
    assert_eq!(sim.pump().len(), 2);

    let (mut sim, h, _) = established(linux_synack_options(1, 0));
    sim.stack.send(sim.now, h, &[1u8; 300]).unwrap();
    sim.stack.send(sim.now, h, &[2u8; 400]).unwrap();
    assert_eq!(sim.pump().len(), 1);
    sim.stack
        .setsockopt(sim.now, h, SockOpt::TcpNoDelay(1))
        .unwrap();
    let sent = sim.pump();
    assert_eq!(
        sent.len(),
        1,
        "turning TCP_NODELAY on pushes what Nagle held"
    );
    assert_eq!(sent[0].tcp().payload.len(), 400);
}

#[test]
fn quickack_zero_before_connect_delays_the_ack_of_the_synack_by_delack_max() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![SockOpt::TcpQuickAck(0)]);
    let syn = syn.tcp().clone();
    // Well after time zero, so that a deadline computed wrongly from `now` shows.
    sim.now = Instant::from_millis(500);
    sim.deliver_tcp(&synack(&syn, 1000, 65535, linux_synack_options(1, 0)), 0);
    assert!(sim.pump().is_empty(), "the ACK is saved");
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Ok(()))
    );
    let at = sim.now;
    let ack = next_sent(&mut sim);
    assert_eq!(ack[0].tcp().ack, 1001);
    let waited = sim.now.as_millis() - at.as_millis();
    assert!(
        (196..=212).contains(&waited),
        "TCP_DELACK_MAX is 200 ms: waited {waited} ms"
    );
}

#[test]
fn quickack_one_keeps_the_ack_of_the_synack_immediate() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![SockOpt::TcpQuickAck(1)]);
    let syn = syn.tcp().clone();
    sim.deliver_tcp(&synack(&syn, 1000, 65535, linux_synack_options(1, 0)), 0);
    let ack = sim.pump();
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].tcp().ack, 1001);
}

#[test]
fn a_small_window_allows_two_quick_acks_then_delays() {
    // SO_RCVBUF 4096: window 2920, rcv_mss guessed 536 (tcp_initialize_rcv_mss), so
    // rcv_wnd / (2 x 536) = 2 quick ACKs; the third 400-byte segment waits for the
    // delayed-ACK timer.
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![SockOpt::SoRcvBuf(4096)]);
    let syn = syn.tcp().clone();
    sim.deliver_tcp(&synack(&syn, 1000, 65535, linux_synack_options(1, 0)), 0);
    sim.pump();
    let mut seq = 1001u32;
    let mut immediate = Vec::new();
    for i in 0..3u64 {
        sim.run_until(Instant::from_millis(100 * (i + 1)));
        let mut seg = peer_seg(
            &syn,
            seq,
            syn.seq.wrapping_add(1),
            TcpFlags::ACK | TcpFlags::PSH,
            &[9u8; 400],
        );
        seg.options = vec![
            TcpOption::Nop,
            TcpOption::Nop,
            TcpOption::Timestamps { tsval: 2, tsecr: 1 },
        ];
        sim.deliver_tcp(&seg, 0);
        seq += 400;
        immediate.push(!sim.pump().is_empty());
    }
    assert_eq!(immediate, [true, true, false]);
}
