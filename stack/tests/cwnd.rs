//! The congestion window against a FIN: since Linux 6.10 `tcp_cwnd_test` holds a lone FIN
//! behind a full cwnd like any segment; before, it let it pass.

mod common;
use common::*;
use tcptwin_stack::config::Profile;
use tcptwin_stack::wire::*;

/// Sends exactly one initial window (10 segments of 1448 bytes), then closes.
fn full_window_then_close(profile: Profile) -> (Sim, TcpRepr, Vec<TcpRepr>) {
    let mut sim = Sim::new(&[]);
    *sim.stack.config_mut() = sim.stack.config().clone().with_profile(profile);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    sim.deliver_tcp(&synack(&syn, 1000, 65535, linux_synack_options(1, 0)), 0);
    sim.pump();
    assert_eq!(sim.stack.send(sim.now, h, &[7u8; 14_480]), Ok(14_480));
    let _ = sim.stack.close(sim.now, h);
    let sent: Vec<TcpRepr> = sim.pump().iter().map(|f| f.tcp().clone()).collect();
    (sim, syn, sent)
}

#[test]
fn on_6_18_the_fin_waits_for_an_ack_when_the_cwnd_is_full() {
    let (mut sim, syn, sent) = full_window_then_close(Profile::V6_18);
    assert_eq!(sent.len(), 10);
    assert!(sent.iter().all(|s| !s.flags.has(TcpFlags::FIN)));
    // The peer's ACK of the window frees the cwnd: the FIN leaves.
    let ack = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        seq: 1001,
        ack: syn.seq.wrapping_add(1 + 14_480),
        flags: TcpFlags(TcpFlags::ACK),
        window: 65535,
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&ack, 0);
    let after: Vec<TcpRepr> = sim.pump().iter().map(|f| f.tcp().clone()).collect();
    assert_eq!(after.len(), 1);
    assert!(after[0].flags.has(TcpFlags::FIN));
    assert!(after[0].payload.is_empty());
}

#[test]
fn on_6_1_a_lone_fin_passes_a_full_cwnd() {
    let (_, _, sent) = full_window_then_close(Profile::V6_1);
    assert_eq!(sent.len(), 11);
    assert!(sent[10].flags.has(TcpFlags::FIN));
}
