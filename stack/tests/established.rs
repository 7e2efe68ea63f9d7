//! Enough of ESTABLISHED for the scenarios: segmentation by MSS within an
//! initial window of 10, ACKs for received data, FIN on close, RST on abort.

mod common;
use common::*;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

fn established(opts: Vec<TcpOption>) -> (Sim, SocketHandle, TcpRepr) {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    sim.deliver_tcp(&synack(&syn, 1000, 65535, opts), 0);
    sim.pump();
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Ok(()))
    );
    (sim, h, syn)
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
    assert_eq!(sim.pump()[0].tcp().ack, 1002);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::CloseWait));
    let mut buf = [0u8; 4];
    assert_eq!(sim.stack.recv(sim.now, h, &mut buf), Ok(0), "EOF");
    sim.stack.close(sim.now, h).unwrap();
    assert!(sim.pump()[0].tcp().flags.fin());
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
