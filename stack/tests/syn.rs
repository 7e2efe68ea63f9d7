//! The SYN and the final ACK: options (§4.4), MSS/window/scale (§4.3),
//! ECN (§4.5), TFO (§4.7), IP header fields (§4.6), final ACK (§6.1).

mod common;
use common::*;
use std::net::Ipv4Addr;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

fn syn_with(pairs: &[(&str, &str)]) -> TcpRepr {
    let mut sim = Sim::new(pairs);
    let (_, syn) = sim.connect_nb(vec![]);
    syn.tcp().clone()
}

#[test]
fn syn_option_bytes_for_all_eight_sysctl_combinations() {
    // (timestamps, sack, window_scaling) → expected bytes with TS = TSval/TSecr placeholders.
    let ts = |t: &TcpRepr| {
        let (v, e) = t.timestamps().unwrap();
        let mut b = v.to_be_bytes().to_vec();
        b.extend(e.to_be_bytes());
        b
    };
    for tsv in [1, 0] {
        for sack in [1, 0] {
            for ws in [1, 0] {
                let syn = syn_with(&[
                    ("net.ipv4.tcp_timestamps", &tsv.to_string()),
                    ("net.ipv4.tcp_sack", &sack.to_string()),
                    ("net.ipv4.tcp_window_scaling", &ws.to_string()),
                ]);
                let mut want = vec![0x02, 0x04, 0x05, 0xb4];
                match (tsv, sack) {
                    (1, 1) => {
                        want.extend([0x04, 0x02, 0x08, 0x0a]);
                        want.extend(ts(&syn));
                    }
                    (1, 0) => {
                        want.extend([0x01, 0x01, 0x08, 0x0a]);
                        want.extend(ts(&syn));
                    }
                    (0, 1) => want.extend([0x01, 0x01, 0x04, 0x02]),
                    _ => {}
                }
                if ws == 1 {
                    want.extend([0x01, 0x03, 0x03, 0x0a]);
                }
                assert_eq!(option_bytes(&syn), want, "ts={tsv} sack={sack} ws={ws}");
                let doff = 5 + want.len() / 4;
                assert_eq!(syn.header_len(), doff * 4);
                if tsv == 1 {
                    assert_eq!(syn.timestamps().unwrap().1, 0, "TSecr 0");
                }
            }
        }
    }
}

#[test]
fn default_syn_header() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![]);
    let (ip, t) = (syn.ip(), syn.tcp());
    assert_eq!(t.flags, TcpFlags(TcpFlags::SYN));
    assert_eq!((t.ack, t.window, t.urgent), (0, 64240, 0));
    assert_eq!(t.window_scale(), Some(10));
    assert_eq!((ip.ttl, ip.tos, ip.dont_frag), (64, 0, true));
    assert_eq!(t.dst_port, PEER_PORT);
    assert!(t.src_port % 2 == 0 && (32768..=60999).contains(&t.src_port));
    // The ARP request went out first, broadcast with a zero target MAC.
    match &sim.sent[0].1 {
        Frame::Arp(a) => {
            assert_eq!(a.operation, ArpOperation::Request);
            assert_eq!(a.target_hardware_addr, EthernetAddress([0; 6]));
            assert_eq!(a.target_protocol_addr, PEER_IP);
            assert_eq!(a.source_protocol_addr, LOCAL_IP);
        }
        f => panic!("{f:?}"),
    }
}

/// (setup, expected SYN MSS, SYN window, wscale, final ACK window)
fn check_window(
    pairs: &[(&str, &str)],
    mtu: u32,
    opts: Vec<SockOpt>,
    mss: u16,
    win: u16,
    ws: u8,
    final_win: u16,
) {
    let mut sim = Sim::with(pairs, mtu, vec![]);
    let (h, syn) = sim.connect_nb(opts);
    let t = syn.tcp().clone();
    assert_eq!(t.mss(), Some(mss), "mss");
    assert_eq!(t.window, win, "SYN window");
    assert_eq!(t.window_scale(), Some(ws), "wscale");
    sim.deliver_tcp(&synack(&t, 5000, 65535, linux_synack_options(777, 0)), 0);
    let out = sim.pump();
    assert_eq!(out.len(), 1);
    let ack = out[0].tcp();
    assert_eq!(ack.window, final_win, "final ACK window");
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Established));
}

#[test]
fn mss_window_wscale_table() {
    check_window(&[], 1500, vec![], 1460, 64240, 10, 63);
    check_window(&[], 1280, vec![], 1240, 64480, 10, 63);
    check_window(&[], 9000, vec![], 8960, 62720, 10, 62);
    check_window(&[], 1500, vec![SockOpt::TcpMaxSeg(536)], 536, 65392, 10, 64);
    check_window(&[], 1500, vec![SockOpt::TcpMaxSeg(100)], 100, 65500, 10, 64);
    check_window(
        &[],
        1500,
        vec![SockOpt::SoRcvBuf(4096)],
        1460,
        2920,
        0,
        2920,
    );
    check_window(
        &[],
        1500,
        vec![SockOpt::SoRcvBuf(1 << 20)],
        1460,
        65535,
        5,
        32759,
    );
    check_window(
        &[],
        1500,
        vec![SockOpt::TcpWindowClamp(10000)],
        1460,
        8760,
        0,
        8760,
    );
}

#[test]
fn route_advmss_and_mtu() {
    let mut r = Route::new(std::net::Ipv4Addr::new(10, 199, 0, 0), 24, None);
    r.advmss = Some(1000);
    let mut sim = Sim::with(&[], 1500, vec![r]);
    let (_, syn) = sim.connect_nb(vec![]);
    assert_eq!(syn.tcp().mss(), Some(1000));
    assert_eq!(syn.tcp().window, 65000);
}

#[test]
fn final_ack_echoes_synack_tsval() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    let id0 = syn.ip().ident;
    sim.deliver_tcp(
        &synack(
            &t,
            5000,
            65160,
            linux_synack_options(0xabcdef, t.timestamps().unwrap().0),
        ),
        0,
    );
    let f = sim.pump();
    let ack = f[0].tcp();
    assert_eq!(ack.flags, TcpFlags(TcpFlags::ACK));
    assert_eq!((ack.seq, ack.ack), (t.seq.wrapping_add(1), 5001));
    assert_eq!(option_bytes(ack)[..4], [1, 1, 8, 10]);
    assert_eq!(ack.timestamps().unwrap().1, 0xabcdef);
    assert_eq!(f[0].ip().ident, id0.wrapping_add(1));
}

#[test]
fn synack_without_options() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    sim.deliver_tcp(&synack(&t, 5000, 65535, vec![]), 0);
    let ack = sim.pump()[0].tcp().clone();
    assert_eq!(ack.window, 64240, "our scaling is abandoned");
    assert!(ack.options.is_empty());
    let tcb = sim.stack.tcb(h).unwrap();
    assert_eq!(
        (tcb.mss_cache, tcb.tstamp_ok, tcb.sack_ok),
        (536, false, false)
    );
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::TcpMaxSeg).unwrap(),
        SockOptValue::Int(536)
    );
}

#[test]
fn wscale_above_14_is_clamped() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    let mut o = linux_synack_options(1, 0);
    o[4] = TcpOption::WindowScale(20);
    sim.deliver_tcp(&synack(&t, 5000, 100, o), 0);
    sim.pump();
    let tcb = sim.stack.tcb(h).unwrap();
    assert_eq!(tcb.snd_wscale, 14);
    assert_eq!(tcb.snd_wnd, 100, "SYN-ACK window is never scaled");
}

#[test]
fn the_unclamped_wscale_mutation_takes_the_peers_scale_as_it_is() {
    let mut sim = Sim::new(&[]);
    sim.stack.config_mut().mutation = Some(tcptwin_stack::Mutation::UnclampedWscale);
    let (h, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    let mut o = linux_synack_options(1, 0);
    o[4] = TcpOption::WindowScale(15);
    sim.deliver_tcp(&synack(&t, 5000, 100, o), 0);
    sim.pump();
    assert_eq!(sim.stack.tcb(h).unwrap().snd_wscale, 15);
}

#[test]
fn malformed_mss_option_is_ignored() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    // MSS value 0 is ignored; then a silly-length option stops parsing (WS after it unseen).
    let o = vec![
        TcpOption::Mss(0),
        TcpOption::Unknown {
            kind: 30,
            data: vec![],
        },
    ];
    sim.deliver_tcp(&synack(&t, 5000, 65535, o), 0);
    sim.pump();
    assert_eq!(sim.stack.tcb(h).unwrap().mss_cache, 536);
}

#[test]
fn ecn_on_first_syn_only() {
    let mut sim = Sim::new(&[("net.ipv4.tcp_ecn", "1")]);
    let (_, syn) = sim.connect_nb(vec![]);
    assert_eq!(
        syn.tcp().flags.0,
        TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR
    );
    assert_eq!(syn.ip().tos & 3, 0, "Not-ECT");
    sim.run_until(Instant::from_millis(1100));
    let all = sim.tcp_sent();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].1.flags, TcpFlags(TcpFlags::SYN));
    // Without fallback, retransmissions keep ECE|CWR.
    let mut sim = Sim::new(&[
        ("net.ipv4.tcp_ecn", "1"),
        ("net.ipv4.tcp_ecn_fallback", "0"),
    ]);
    sim.connect_nb(vec![]);
    sim.run_until(Instant::from_millis(1100));
    assert_eq!(
        sim.tcp_sent()[1].1.flags.0,
        TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR
    );
    // Default tcp_ecn=2: no ECN on the SYN.
    assert_eq!(syn_with(&[]).flags, TcpFlags(TcpFlags::SYN));
}

#[test]
fn ecn_negotiated_by_ece_only() {
    let mut sim = Sim::new(&[("net.ipv4.tcp_ecn", "1")]);
    let (h, syn) = sim.connect_nb(vec![]);
    let mut sa = synack(syn.tcp(), 1, 65535, linux_synack_options(1, 0));
    sa.flags.0 |= TcpFlags::ECE;
    sim.deliver_tcp(&sa, 0);
    let ack = sim.pump()[0].tcp().clone();
    assert_eq!(ack.flags, TcpFlags(TcpFlags::ACK));
    assert!(sim.stack.tcb(h).unwrap().ecn_ok);
    sim.stack.send(sim.now, h, b"hello").unwrap();
    let d = sim.pump();
    assert_eq!(d[0].ip().tos & 3, 2, "data is ECT(0)");
}

#[test]
fn tfo_cookie_request_on_first_syn_only() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![SockOpt::TcpFastopenConnect(1)]);
    let b = option_bytes(syn.tcp());
    assert_eq!(
        &b[b.len() - 8..],
        &[0x01, 0x03, 0x03, 0x0a, 0x22, 0x02, 0x01, 0x01]
    );
    sim.run_until(Instant::from_millis(1100));
    let re = &sim.tcp_sent()[1].1;
    assert!(!re.options.contains(&TcpOption::FastOpen(vec![])));
}

#[test]
fn ip_tos_and_ttl() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![SockOpt::IpTos(0x13), SockOpt::IpTtl(7)]);
    assert_eq!((syn.ip().tos, syn.ip().ttl), (0x10, 7));
    sim.deliver_tcp(&synack(syn.tcp(), 1, 65535, vec![]), 0);
    let ack = sim.pump();
    assert_eq!((ack[0].ip().tos, ack[0].ip().ttl), (0x10, 7));
}

#[test]
fn ip_options_record_route() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![SockOpt::IpOptions(vec![7, 7, 4, 0, 0, 0, 0])]);
    assert_eq!(syn.ip().options, vec![7, 7, 8, 10, 199, 0, 1, 0]);
    assert_eq!(
        syn.tcp().mss(),
        Some(1460),
        "IP options do not lower the advertised MSS"
    );
}

/// A nonblocking connect to 192.0.2.9 with a loose source route through the peer
/// (10.199.0.2 in the option, the peer as first hop): the sim, the socket and the SYN's
/// frame once ARP is answered.
fn source_routed_syn() -> (Sim, SocketHandle, Vec<u8>) {
    let last = std::net::SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 80);
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    sim.stack
        .setsockopt(
            sim.now,
            h,
            SockOpt::IpOptions(vec![1, 131, 7, 4, 10, 199, 0, 2]),
        )
        .unwrap();
    let r = sim.stack.connect(sim.now, h, &SockAddr::inet(last));
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
    assert!(
        sim.stack.poll_transmit(sim.now).is_some(),
        "the ARP request"
    );
    sim.deliver_arp_reply();
    let frame = sim.stack.poll_transmit(sim.now).expect("the SYN");
    (sim, h, frame.to_vec())
}

#[test]
fn ip_options_loose_source_route() {
    // tcp_v4_connect routes to the route's first hop (opt.faddr, here the peer);
    // ip_options_build puts the final destination in the option's last slot, and
    // tcp_v4_send_check sums the TCP checksum over the final destination.
    let (_, _, frame) = source_routed_syn();
    let last = std::net::SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 80);
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.dst_addr(), PEER_IP, "the first hop");
    assert_eq!(ip.options(), [1, 131, 7, 4, 192, 0, 2, 9]);
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    let syn = TcpRepr::parse(&tcp, LOCAL_IP, *last.ip()).expect("summed over 192.0.2.9");
    assert_eq!(syn.flags, TcpFlags(TcpFlags::SYN));
    assert!(
        TcpRepr::parse(&tcp, LOCAL_IP, PEER_IP).is_err(),
        "not over the header's destination"
    );
}

#[test]
fn an_icmp_error_for_a_source_routed_syn_finds_no_socket() {
    // The quoted SYN's header names the first hop; the socket is hashed under the final
    // destination, so tcp_v4_err's __inet_lookup_established finds nothing.
    let (mut sim, h, frame) = source_routed_syn();
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let quoted = eth.payload()[..ip.header_len() as usize + 8].to_vec();
    sim.deliver_icmp(3, 1, [0; 4], &quoted);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(0)),
        "no soft error either"
    );
}

#[test]
fn timestamps_offset_modes() {
    // tcp_timestamps=2: TSval is the ms clock itself.
    let mut sim = Sim::new(&[("net.ipv4.tcp_timestamps", "2")]);
    sim.now = Instant::from_millis(123_456);
    let (_, syn) = sim.connect_nb(vec![]);
    assert_eq!(syn.tcp().timestamps(), Some((123_456, 0)));
    // tcp_timestamps=1: an offset keyed by the addresses and the ports, so two sockets
    // connecting at the same instant from two ports start from two bases.
    let mut sim = Sim::new(&[]);
    let (_, a) = sim.connect_nb(vec![]);
    let (_, b) = sim.connect_nb(vec![]);
    assert_ne!(a.tcp().src_port, b.tcp().src_port);
    assert_ne!(
        a.tcp().timestamps().unwrap().0,
        b.tcp().timestamps().unwrap().0
    );
    assert_ne!(a.ip().ident, b.ip().ident);
}

fn maxseg(sim: &mut Sim, h: SocketHandle) -> SockOptValue {
    sim.stack.getsockopt(h, SockOptName::TcpMaxSeg).unwrap()
}

/// `TCP_MAXSEG` reads `tp->mss_cache`, which Linux keeps without the timestamp option's 12
/// bytes once `tcp_header_len` counts it: from connect when `tcp_timestamps` offers it
/// (`tcp_connect_init`), then as the SYN-ACK settles it. A fresh socket reads 536.
#[test]
fn tcp_maxseg_reads_the_mss_without_the_timestamp_option() {
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    assert_eq!(
        maxseg(&mut sim, h),
        SockOptValue::Int(536),
        "TCP_MSS_DEFAULT"
    );
    let (h, syn) = sim.connect_nb(vec![]);
    assert_eq!(
        maxseg(&mut sim, h),
        SockOptValue::Int(524),
        "SYN_SENT: mss_clamp 536 less the timestamps it offers"
    );
    let t = syn.tcp().clone();
    sim.deliver_tcp(&synack(&t, 5000, 65535, linux_synack_options(1, 0)), 0);
    sim.pump();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(1448));

    let mut sim = Sim::new(&[("net.ipv4.tcp_timestamps", "0")]);
    let (h, syn) = sim.connect_nb(vec![]);
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(536));
    let t = syn.tcp().clone();
    sim.deliver_tcp(&synack(&t, 5000, 65535, vec![TcpOption::Mss(1460)]), 0);
    sim.pump();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(1460));
}

/// The floor of 48 (`tcp_min_snd_mss`) applies before the timestamp option comes off.
#[test]
fn tcp_maxseg_of_a_tiny_peer_mss_with_timestamps_is_36() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    let mut opts = linux_synack_options(1, 0);
    opts[0] = TcpOption::Mss(1);
    sim.deliver_tcp(&synack(&t, 5000, 65535, opts), 0);
    sim.pump();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(36));
}

/// A connect that failed leaves `mss_cache` and `tcp_header_len` as they were:
/// `tcp_disconnect` clears `rx_opt` but neither of them, so `TCP_MAXSEG` still reads the
/// SYN_SENT value (524 with timestamps), not a fresh socket's 536.
#[test]
fn tcp_maxseg_after_a_refused_connect_keeps_the_syn_sent_value() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    let rst = TcpRepr {
        src_port: t.dst_port,
        dst_port: t.src_port,
        seq: 0,
        ack: t.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::RST | TcpFlags::ACK),
        window: 0,
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&rst, 0);
    sim.pump();
    assert_eq!(
        sim.stack.connect_wait(sim.now, h),
        Some(Err(Errno::ECONNREFUSED)),
        "the blocking connect's end, which disconnects the socket"
    );
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(524));
}

/// `IP_OPTIONS` runs `tcp_sync_mss` at the path MTU last seen (`do_ip_setsockopt`), 0 on a
/// socket not yet connected: the MSS hits its floor of 48, and `tcp_mtu_to_mss` adds the 20
/// of a `tcp_header_len` still 0, so `TCP_MAXSEG` reads 68 until connect sets it again.
#[test]
fn tcp_maxseg_after_ip_options_on_an_unconnected_socket_is_68() {
    let mut sim = Sim::new(&[("net.ipv4.tcp_timestamps", "0")]);
    let h = sim.stack.socket();
    let record_route = SockOpt::IpOptions(vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    sim.stack.setsockopt(sim.now, h, record_route).unwrap();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(68));
    // Clearing them syncs again, at the same floor.
    sim.stack
        .setsockopt(sim.now, h, SockOpt::IpOptions(vec![]))
        .unwrap();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(68));
}

/// An `AF_INET6` socket not yet connected keeps its MSS when given `IP_OPTIONS`
/// (`do_ip_setsockopt` syncs only an `AF_INET` one or a connected one): `TCP_MAXSEG` still
/// reads 536, where an `AF_INET` socket reads 68.
#[test]
fn ip_options_leave_an_unconnected_inet6_socket_at_536() {
    let mut sim = Sim::new(&[("net.ipv4.tcp_timestamps", "0")]);
    let h = sim.stack.socket_in(tcptwin_stack::Domain::Inet6);
    let record_route = SockOpt::IpOptions(vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    sim.stack.setsockopt(sim.now, h, record_route).unwrap();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(536));
}

/// Once connected, `IP_OPTIONS` takes its length off the MSS at the path MTU the connect
/// found (1500): 1460 less 12 bytes of options, without timestamps.
#[test]
fn ip_options_set_after_the_handshake_lower_the_send_mss() {
    let mut sim = Sim::new(&[("net.ipv4.tcp_timestamps", "0")]);
    let (h, syn) = sim.connect_nb(vec![]);
    let t = syn.tcp().clone();
    sim.deliver_tcp(&synack(&t, 5000, 65535, vec![TcpOption::Mss(1460)]), 0);
    sim.pump();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(1460));
    let record_route = SockOpt::IpOptions(vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    sim.stack.setsockopt(sim.now, h, record_route).unwrap();
    assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(1448));
}

/// A TFO SYN (`tcp_send_syn_data`) sets `mss_clamp` to advmss when no MSS is cached, so a
/// SYN-ACK without an MSS option leaves the send MSS at 1460, where a plain SYN's 536 stays.
#[test]
fn a_tfo_synack_without_mss_leaves_the_send_mss_at_advmss() {
    for (tfo, expected) in [(true, 1460), (false, 536)] {
        let mut sim = Sim::new(&[("net.ipv4.tcp_timestamps", "0")]);
        let opts = if tfo {
            vec![SockOpt::TcpFastopenConnect(1)]
        } else {
            vec![]
        };
        let (h, syn) = sim.connect_nb(opts);
        assert_eq!(maxseg(&mut sim, h), SockOptValue::Int(536), "SYN_SENT");
        let t = syn.tcp().clone();
        sim.deliver_tcp(&synack(&t, 5000, 65535, vec![TcpOption::SackPermitted]), 0);
        sim.pump();
        assert_eq!(
            maxseg(&mut sim, h),
            SockOptValue::Int(expected),
            "tfo {tfo}"
        );
    }
}
