//! connect(): errnos, SYN retransmission and timeouts (§5), SYN-SENT input
//! (§6), ICMP (§7), ARP failure (§7.5), routes and ports — all in virtual
//! time against a simulated peer.

mod common;
use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use tcptwin_stack::socket::poll::*;
use tcptwin_stack::time::wheel_granularity_jiffies;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

/// Run a silent peer; return (SYN send times, time connect failed, errno).
fn silent_schedule(pairs: &[(&str, &str)], opts: Vec<SockOpt>) -> (Vec<Instant>, Instant, Errno) {
    let mut sim = Sim::new(pairs);
    let h = sim.stack.socket();
    for o in opts {
        sim.stack.setsockopt(sim.now, h, o).unwrap();
    }
    let r = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
    assert!(
        matches!(
            r,
            Connect::Wait {
                deadline: None,
                on_timeout: Errno::EINPROGRESS
            }
        ),
        "{r:?}"
    );
    sim.pump();
    loop {
        if let Some(res) = sim.stack.connect_wait(sim.now, h) {
            let times = sim.tcp_sent().iter().map(|(t, _)| *t).collect();
            return (times, sim.now, res.unwrap_err());
        }
        assert!(sim.step(), "a timer must be pending");
        assert!(sim.now < Instant::from_secs(1000));
    }
}

/// Each interval lies in (nominal, nominal + wheel granularity].
fn assert_intervals(times: &[Instant], fail: Instant, syn_nominal_s: &[u64], fail_nominal_s: u64) {
    assert_eq!(times.len(), syn_nominal_s.len() + 1, "SYN count: {times:?}");
    let mut events = times.to_vec();
    events.push(fail);
    let mut nominal = syn_nominal_s.to_vec();
    nominal.push(fail_nominal_s);
    for (i, w) in events.windows(2).enumerate() {
        let d = (w[1] - w[0]).as_millis() as u64;
        let n = nominal[i] * 1000;
        let gran = wheel_granularity_jiffies(n / 4) * 4;
        assert!(
            d > n && d <= n + gran,
            "interval {i}: {d} ms, nominal {n} ms (+{gran}); all: {events:?}"
        );
    }
}

#[test]
fn default_schedule_11_syns_then_etimedout_at_about_131s() {
    let (t, fail, e) = silent_schedule(&[], vec![]);
    assert_eq!(e, Errno::ETIMEDOUT);
    assert_intervals(&t, fail, &[1, 1, 1, 1, 1, 2, 4, 8, 16, 32], 64);
    let s = fail.as_millis();
    assert!(
        (131_000..=136_000).contains(&s),
        "{s} ms (host observed ≈134 s)"
    );
}

#[test]
fn syn_retries_1_and_syncnt_1_fail_at_3s() {
    for (pairs, opts) in [
        (vec![("net.ipv4.tcp_syn_retries", "1")], vec![]),
        (vec![], vec![SockOpt::TcpSynCnt(1)]),
    ] {
        let (t, fail, e) = silent_schedule(&pairs, opts);
        assert_eq!(e, Errno::ETIMEDOUT);
        let ms: Vec<u64> = t.iter().map(|i| i.as_millis()).collect();
        assert_eq!(ms, vec![0, 1024, 2048]);
        assert_eq!(fail, Instant::from_millis(3072));
    }
}

#[test]
fn syn_retries_2_3_and_linear_0() {
    let (t, fail, _) = silent_schedule(&[("net.ipv4.tcp_syn_retries", "2")], vec![]);
    assert_intervals(&t, fail, &[1, 1, 1, 1, 1], 2);
    let (t, fail, _) = silent_schedule(&[("net.ipv4.tcp_syn_retries", "3")], vec![]);
    assert_intervals(&t, fail, &[1, 1, 1, 1, 1, 2, 4], 8);
    let (t, fail, _) = silent_schedule(
        &[
            ("net.ipv4.tcp_syn_retries", "2"),
            ("net.ipv4.tcp_syn_linear_timeouts", "0"),
        ],
        vec![],
    );
    assert_intervals(&t, fail, &[1, 2], 4);
    let (t, fail, _) = silent_schedule(&[("net.ipv4.tcp_syn_linear_timeouts", "0")], vec![]);
    assert_intervals(&t, fail, &[1, 2, 4, 8, 16, 32], 64);
    let (t, fail, _) = silent_schedule(&[("net.ipv4.tcp_syn_retries", "7")], vec![]);
    assert_intervals(&t, fail, &[1, 1, 1, 1, 1, 2, 4, 8, 16, 32, 64], 120);
}

#[test]
fn user_timeout_and_rto_max() {
    let (t, fail, e) = silent_schedule(&[], vec![SockOpt::TcpUserTimeout(2500)]);
    assert_eq!(e, Errno::ETIMEDOUT);
    assert_eq!(t.len(), 3);
    assert_eq!(
        fail,
        Instant::from_millis(2528),
        "clamped to the remaining 452 ms"
    );
    let (t, fail, _) = silent_schedule(&[], vec![SockOpt::TcpUserTimeout(500)]);
    assert_eq!(t.len(), 2, "at least one retransmission");
    assert_eq!(fail, Instant::from_millis(1032), "rearmed 1 jiffy later");
    let (t, fail, _) = silent_schedule(&[], vec![SockOpt::TcpRtoMaxMs(1000)]);
    assert_intervals(&t, fail, &[1, 1, 1, 1, 1, 1], 1);
}

#[test]
fn retransmitted_syns_keep_isn_and_bump_id_and_tsval() {
    let mut sim = Sim::new(&[]);
    sim.connect_nb(vec![]);
    sim.run_until(Instant::from_millis(2100));
    let f: Vec<_> = sim
        .sent
        .iter()
        .filter(|(_, f)| matches!(f, Frame::Tcp { .. }))
        .collect();
    assert_eq!(f.len(), 3);
    for w in f.windows(2) {
        let (a, b) = (w[0].1.tcp(), w[1].1.tcp());
        assert_eq!(a.seq, b.seq);
        assert_eq!(w[1].1.ip().ident, w[0].1.ip().ident.wrapping_add(1));
        let dt = (w[1].0 - w[0].0).as_millis() as u32;
        assert_eq!(
            b.timestamps()
                .unwrap()
                .0
                .wrapping_sub(a.timestamps().unwrap().0),
            dt
        );
        assert_eq!(a.options.len(), b.options.len());
    }
}

#[test]
fn so_sndtimeo_gives_a_deadline() {
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    sim.stack
        .setsockopt(
            sim.now,
            h,
            SockOpt::SoSndTimeo(std::time::Duration::from_millis(1500)),
        )
        .unwrap();
    let r = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
    assert_eq!(
        r,
        Connect::Wait {
            deadline: Some(Instant::from_millis(1500)),
            on_timeout: Errno::EINPROGRESS
        }
    );
    // A later blocking call waits again with EALREADY preset.
    let r = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
    assert!(matches!(
        r,
        Connect::Wait {
            on_timeout: Errno::EALREADY,
            ..
        }
    ));
}

#[test]
fn rst_gives_econnrefused_blocking() {
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    assert!(matches!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Wait { .. }
    ));
    let syn = sim.pump()[0].tcp().clone();
    assert_eq!(sim.stack.connect_wait(sim.now, h), None);
    let rst = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        ack: syn.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::RST | TcpFlags::ACK),
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&rst, 0);
    assert_eq!(
        sim.stack.connect_wait(sim.now, h),
        Some(Err(Errno::ECONNREFUSED))
    );
    assert!(sim.pump().is_empty(), "nothing after the SYN");
    sim.run_until(Instant::from_secs(5));
    assert_eq!(sim.tcp_sent().len(), 1);
}

#[test]
fn rst_nonblocking_poll_so_error_and_retry() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![SockOpt::TcpMaxSeg(536)]);
    let syn = syn.tcp().clone();
    assert_eq!(sim.stack.poll(h), Ok(0), "SYN_SENT polls as nothing");
    let rst = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        ack: syn.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::RST | TcpFlags::ACK),
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&rst, 0);
    assert_eq!(
        sim.stack.poll(h),
        Ok(POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLWRNORM | POLLHUP | POLLERR)
    );
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(111))
    );
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(0))
    );
    let a = SockAddr::inet(PEER);
    assert_eq!(
        sim.stack.connect(sim.now, h, &a),
        Connect::Done(Err(Errno::ECONNABORTED))
    );
    assert_eq!(
        sim.stack.connect(sim.now, h, &a),
        Connect::Done(Err(Errno::EINPROGRESS))
    );
    let syn2 = sim.pump()[0].tcp().clone();
    assert_eq!(
        syn2.seq,
        syn.seq.wrapping_add(3),
        "ISN_old + 1 + max_window(0) + 2"
    );
    assert_eq!(syn2.src_port % 2, 0);
    assert_eq!(syn2.mss(), Some(1460), "TCP_MAXSEG wiped by tcp_disconnect");
}

#[test]
fn stored_error_returned_by_next_connect_once() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    let rst = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        ack: syn.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::RST | TcpFlags::ACK),
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&rst, 0);
    let a = SockAddr::inet(PEER);
    assert_eq!(
        sim.stack.connect(sim.now, h, &a),
        Connect::Done(Err(Errno::ECONNREFUSED))
    );
    assert_eq!(
        sim.stack.connect(sim.now, h, &a),
        Connect::Done(Err(Errno::EINPROGRESS))
    );
}

#[test]
fn nonblocking_einprogress_ealready_then_0_then_eisconn() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let a = SockAddr::inet(PEER);
    assert_eq!(
        sim.stack.connect(sim.now, h, &a),
        Connect::Done(Err(Errno::EALREADY))
    );
    assert!(sim.pump().is_empty(), "no extra packet");
    sim.deliver_tcp(&synack(syn.tcp(), 9, 65535, linux_synack_options(5, 0)), 0);
    sim.pump();
    assert_eq!(sim.stack.poll(h), Ok(POLLOUT | POLLWRNORM));
    assert_eq!(sim.stack.connect(sim.now, h, &a), Connect::Done(Ok(())));
    assert_eq!(
        sim.stack.connect(sim.now, h, &a),
        Connect::Done(Err(Errno::EISCONN))
    );
    assert_eq!(sim.stack.getpeername(h), Ok(PEER));
    assert_eq!(*sim.stack.getsockname(h).unwrap().ip(), LOCAL_IP);
}

#[test]
fn address_argument_errors() {
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    let c = |sim: &mut Sim, a: SockAddr| sim.stack.connect(Instant::ZERO, h, &a);
    assert_eq!(
        c(&mut sim, SockAddr::from_bytes(&[2])),
        Connect::Done(Err(Errno::EINVAL))
    );
    assert_eq!(
        c(&mut sim, SockAddr::with_family(2, 8)),
        Connect::Done(Err(Errno::EINVAL))
    );
    assert_eq!(
        c(&mut sim, SockAddr::with_family(10, 28)),
        Connect::Done(Err(Errno::EAFNOSUPPORT))
    );
    assert_eq!(
        c(&mut sim, SockAddr::with_family(2, 129)),
        Connect::Done(Err(Errno::EINVAL))
    );
    assert_eq!(c(&mut sim, SockAddr::unspec()), Connect::Done(Ok(())));
    assert!(sim.pump().is_empty());
}

#[test]
fn no_route_broadcast_multicast_are_enetunreach() {
    let mut unreach = Route::new(Ipv4Addr::new(203, 0, 113, 0), 24, None);
    unreach.kind = RouteKind::Unreachable;
    let mut prohibit = Route::new(Ipv4Addr::new(203, 0, 114, 0), 24, None);
    prohibit.kind = RouteKind::Prohibit;
    let mut sim = Sim::with(&[], 1500, vec![unreach, prohibit]);
    for (ip, e) in [
        (Ipv4Addr::new(8, 8, 8, 8), Errno::ENETUNREACH),
        (Ipv4Addr::new(224, 0, 0, 1), Errno::ENETUNREACH),
        (Ipv4Addr::BROADCAST, Errno::ENETUNREACH),
        (Ipv4Addr::new(10, 199, 0, 255), Errno::ENETUNREACH),
        (Ipv4Addr::new(203, 0, 113, 9), Errno::EHOSTUNREACH),
        (Ipv4Addr::new(203, 0, 114, 9), Errno::EACCES),
    ] {
        let h = sim.stack.socket();
        let r = sim
            .stack
            .connect(sim.now, h, &SockAddr::inet(SocketAddrV4::new(ip, 80)));
        assert_eq!(r, Connect::Done(Err(e)), "{ip}");
        assert_eq!(sim.stack.tcp_state(h), Ok(State::Closed));
    }
    assert!(
        sim.pump().is_empty() && sim.sent.is_empty(),
        "nothing on the wire"
    );
}

#[test]
fn zero_address_is_loopback_and_refused() {
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    let r = sim.stack.connect(
        sim.now,
        h,
        &SockAddr::inet(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9)),
    );
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(111))
    );
    let h = sim.stack.socket();
    let r = sim.stack.connect(
        sim.now,
        h,
        &SockAddr::inet(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9)),
    );
    assert!(matches!(r, Connect::Wait { .. }));
    assert_eq!(
        sim.stack.connect_wait(sim.now, h),
        Some(Err(Errno::ECONNREFUSED))
    );
    assert!(sim.pump().is_empty());
}

#[test]
fn arp_failure_gives_ehostunreach_at_about_3s() {
    let mut sim = Sim::new(&[]);
    sim.arp_reply = false;
    let h = sim.stack.socket();
    assert!(matches!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Wait { .. }
    ));
    let res = loop {
        sim.pump();
        if let Some(r) = sim.stack.connect_wait(sim.now, h) {
            break r;
        }
        assert!(sim.step());
    };
    assert_eq!(res, Err(Errno::EHOSTUNREACH));
    assert_eq!(sim.now, Instant::from_millis(3072));
    let arps: Vec<u64> = sim
        .sent
        .iter()
        .filter(|(_, f)| matches!(f, Frame::Arp(_)))
        .map(|(t, _)| t.as_millis())
        .collect();
    assert_eq!(arps, vec![0, 1024, 2048]);
    assert!(sim.tcp_sent().is_empty(), "no SYN reaches the wire");
    // mcast_solicit=5 → ≈5 s.
    let mut sim = Sim::new(&[("net.ipv4.neigh.default.mcast_solicit", "5")]);
    sim.arp_reply = false;
    let h = sim.stack.socket();
    let _ = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
    while sim.stack.connect_wait(sim.now, h).is_none() {
        assert!(sim.step());
    }
    assert_eq!(sim.now, Instant::from_millis(5120));
}

#[test]
fn late_arp_resolution_sends_the_queued_syn() {
    let mut sim = Sim::new(&[]);
    sim.arp_reply = false;
    let (h, _) = {
        let h = sim.stack.socket();
        sim.stack
            .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
            .unwrap();
        let _ = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
        (h, ())
    };
    sim.run_until(Instant::from_millis(1500));
    assert!(
        sim.tcp_sent().is_empty(),
        "the 1 s retransmission was suppressed"
    );
    sim.deliver_arp_reply();
    let f = sim.pump();
    assert_eq!(f.len(), 1, "the original SYN goes out");
    assert_eq!(
        sim.stack.tcb(h).unwrap().retransmits,
        1,
        "but the retransmission still counted"
    );
}

fn quote(f: &Frame) -> Vec<u8> {
    let (ip, tcp) = (f.ip(), f.tcp());
    let bytes = ip.build(&tcp.to_bytes(LOCAL_IP, PEER_IP));
    bytes[..ip.buffer_len() + 8].to_vec()
}

#[test]
fn icmp_errors_map_to_errnos() {
    use tcptwin_stack::wire::icmp::types::*;
    let cases: &[(u8, u8, Option<Errno>)] = &[
        (DEST_UNREACH, 0, Some(Errno::ENETUNREACH)),
        (DEST_UNREACH, 1, Some(Errno::EHOSTUNREACH)),
        (DEST_UNREACH, 2, Some(Errno::ENOPROTOOPT)),
        (DEST_UNREACH, 3, Some(Errno::ECONNREFUSED)),
        (DEST_UNREACH, 5, Some(Errno::EOPNOTSUPP)),
        (DEST_UNREACH, 7, Some(Errno::EHOSTDOWN)),
        (DEST_UNREACH, 8, Some(Errno::ENONET)),
        (DEST_UNREACH, 13, Some(Errno::EHOSTUNREACH)),
        (DEST_UNREACH, 16, None),
        (TIME_EXCEEDED, 0, Some(Errno::EHOSTUNREACH)),
        (TIME_EXCEEDED, 1, None),
        (PARAMETER_PROB, 0, Some(Errno::EPROTO)),
        (SOURCE_QUENCH, 0, None),
    ];
    for &(t, c, want) in cases {
        let mut sim = Sim::new(&[]);
        let (h, syn) = sim.connect_nb(vec![]);
        sim.deliver_icmp(t, c, [0; 4], &quote(&syn));
        match want {
            Some(e) => {
                assert_eq!(sim.stack.tcp_state(h), Ok(State::Closed), "{t}/{c}");
                assert_eq!(
                    sim.stack.getsockopt(h, SockOptName::SoError),
                    Ok(SockOptValue::Int(e.code())),
                    "{t}/{c}"
                );
            }
            None => assert_eq!(
                sim.stack.tcp_state(h),
                Ok(State::SynSent),
                "{t}/{c} ignored"
            ),
        }
    }
}

#[test]
fn icmp_with_wrong_quoted_seq_is_ignored() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let mut q = quote(&syn);
    let ihl = (q[0] & 0xf) as usize * 4;
    q[ihl + 4] ^= 0x80; // seq ∉ {ISN, ISN+1}
    sim.deliver_icmp(3, 3, [0; 4], &q);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    sim.run_until(Instant::from_millis(1100));
    assert_eq!(sim.tcp_sent().len(), 2, "retransmission continues");
}

#[test]
fn frag_needed_lowers_next_syn_mss() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    sim.deliver_icmp(3, 4, [0, 0, 0x03, 0xe8], &quote(&syn));
    assert!(sim.pump().is_empty(), "nothing sent immediately");
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    sim.run_until(Instant::from_millis(1100));
    assert_eq!(sim.tcp_sent()[1].1.mss(), Some(960));
}

#[test]
fn frag_needed_below_min_pmtu_locks_the_mtu_at_min_pmtu_and_clears_df() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![]);
    assert!(syn.ip().dont_frag);
    // MTU 300 < route.min_pmtu 552: __ip_rt_update_pmtu raises it to 552 and locks it.
    sim.deliver_icmp(3, 4, [0, 0, 0x01, 0x2c], &quote(&syn));
    assert!(sim.pump().is_empty(), "nothing sent immediately");
    sim.run_until(Instant::from_millis(1100));
    let (_, retransmit) = sim.sent.last().expect("the timer re-sent the SYN");
    assert_eq!(retransmit.tcp().mss(), Some(512), "552 - 40, not 260");
    assert!(!retransmit.ip().dont_frag, "a locked MTU sends without DF");
}

#[test]
fn frag_needed_above_min_pmtu_keeps_df() {
    let mut sim = Sim::new(&[]);
    let (_, syn) = sim.connect_nb(vec![]);
    sim.deliver_icmp(3, 4, [0, 0, 0x03, 0xe8], &quote(&syn));
    sim.run_until(Instant::from_millis(1100));
    let (_, retransmit) = sim.sent.last().expect("the timer re-sent the SYN");
    assert_eq!(retransmit.tcp().mss(), Some(960));
    assert!(retransmit.ip().dont_frag);
}

#[test]
fn unacceptable_ack_gets_rst_and_quick_syn_retransmit() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    let mut bad = synack(&syn, 77, 65535, linux_synack_options(1, 0));
    bad.ack = syn.seq; // ack = ISN
    sim.deliver_tcp(&bad, 0x11);
    let f = sim.pump();
    assert_eq!(f.len(), 1);
    let rst = f[0].tcp();
    assert_eq!(rst.flags, TcpFlags(TcpFlags::RST));
    assert_eq!((rst.seq, rst.window), (syn.seq, 0));
    assert!(rst.options.is_empty());
    assert_eq!(
        (f[0].ip().ident, f[0].ip().dont_frag, f[0].ip().tos),
        (0, true, 0x10)
    );
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    sim.run_until(Instant::from_millis(100));
    let all = sim.tcp_sent();
    assert_eq!(all.len(), 3);
    let t = all[2].0.as_millis();
    assert!(
        (8..=12).contains(&t),
        "SYN re-sent after TCP_TIMEOUT_MIN: {t} ms"
    );
    assert_eq!(all[2].1.flags, TcpFlags(TcpFlags::SYN));
}

#[test]
fn rst_with_bad_ack_only_resets_timer() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    let rst = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        ack: syn.seq.wrapping_add(5),
        flags: TcpFlags(TcpFlags::RST | TcpFlags::ACK),
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&rst, 0);
    assert!(sim.pump().is_empty(), "never a RST for a RST");
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    sim.run_until(Instant::from_millis(50));
    assert_eq!(sim.tcp_sent().len(), 2);
}

#[test]
fn rst_without_ack_and_pure_ack_are_dropped() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    let rst = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        seq: 1,
        flags: TcpFlags(TcpFlags::RST),
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&rst, 0);
    let ack = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        seq: 1,
        ack: syn.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::ACK),
        window: 1000,
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&ack, 0);
    assert!(sim.pump().is_empty());
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    sim.run_until(Instant::from_millis(1100));
    assert_eq!(sim.tcp_sent().len(), 2, "retransmissions continue");
}

#[test]
fn paws_rejects_bad_tsecr_then_good_synack_establishes() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    let tsval = syn.timestamps().unwrap().0;
    sim.now = Instant::from_millis(30);
    sim.deliver_tcp(
        &synack(
            &syn,
            77,
            65535,
            linux_synack_options(1, tsval.wrapping_add(100_000)),
        ),
        0,
    );
    let f = sim.pump();
    assert_eq!(f[0].tcp().flags, TcpFlags(TcpFlags::RST));
    assert_eq!(f[0].tcp().seq, syn.seq.wrapping_add(1));
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    sim.deliver_tcp(&synack(&syn, 77, 65535, linux_synack_options(2, tsval)), 0);
    sim.pump();
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Established));
}

#[test]
fn synack_with_data_and_fin_discards_them_without_tfo() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let mut sa = synack(syn.tcp(), 1000, 65535, linux_synack_options(1, 0));
    sa.payload = vec![7; 100];
    sa.flags.0 |= TcpFlags::FIN;
    sim.deliver_tcp(&sa, 0);
    let ack = sim.pump()[0].tcp().clone();
    assert_eq!(ack.ack, 1001);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Established));
}

#[test]
fn simultaneous_open() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let syn = syn.tcp().clone();
    let peer_syn = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        seq: 5000,
        flags: TcpFlags(TcpFlags::SYN),
        window: 65535,
        options: linux_synack_options(999, 0),
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&peer_syn, 0);
    let f = sim.pump();
    let sa = f[0].tcp();
    assert_eq!(sa.flags, TcpFlags(TcpFlags::SYN | TcpFlags::ACK));
    assert_eq!((sa.seq, sa.ack), (syn.seq, 5001));
    assert_eq!(sa.timestamps().unwrap().1, 999);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynRecv));
    let mut peer_sa = peer_syn.clone();
    peer_sa.flags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
    peer_sa.ack = syn.seq.wrapping_add(1);
    sim.deliver_tcp(&peer_sa, 0);
    let ack = sim.pump()[0].tcp().clone();
    assert_eq!(ack.flags, TcpFlags(TcpFlags::ACK));
    assert!(
        ack.options.contains(&TcpOption::Sack(vec![(5000, 5001)])),
        "D-SACK: {:?}",
        ack.options
    );
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Ok(()))
    );
}

#[test]
fn disconnect_during_syn_sent_and_close_in_syn_sent() {
    let mut sim = Sim::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::unspec()),
        Connect::Done(Ok(()))
    );
    assert!(sim.pump().is_empty(), "no RST from SYN_SENT");
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(104))
    );
    // The peer's late SYN-ACK meets no socket: RST seq = its ACK.
    sim.deliver_tcp(&synack(syn.tcp(), 1, 65535, vec![]), 0);
    let r = sim.pump();
    assert_eq!(r[0].tcp().flags, TcpFlags(TcpFlags::RST));
    assert_eq!(r[0].tcp().seq, syn.tcp().seq.wrapping_add(1));

    let (h, syn) = sim.connect_nb(vec![]);
    sim.stack.close(sim.now, h).unwrap();
    assert!(sim.pump().is_empty(), "no RST, no FIN");
    assert_eq!(sim.stack.poll(h), Err(Errno::EBADF));
    sim.deliver_tcp(&synack(syn.tcp(), 1, 65535, vec![]), 0);
    assert_eq!(sim.pump()[0].tcp().flags, TcpFlags(TcpFlags::RST));
    sim.run_until(Instant::from_secs(3));
    assert_eq!(
        sim.tcp_sent().iter().filter(|(_, t)| t.flags.syn()).count(),
        2,
        "no retransmission after close"
    );
}

#[test]
fn ports_parity_range_and_exhaustion() {
    let mut sim = Sim::new(&[("net.ipv4.ip_local_port_range", "40000 40001")]);
    let (_, a) = sim.connect_nb(vec![]);
    let (_, b) = sim.connect_nb(vec![]);
    let mut ports = [a.tcp().src_port, b.tcp().src_port];
    ports.sort();
    assert_eq!(ports, [40000, 40001]);
    let h = sim.stack.socket();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Err(Errno::EADDRNOTAVAIL))
    );
    assert!(sim.pump().is_empty());
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Closed));
}

#[test]
fn bind_variants() {
    let mut sim = Sim::new(&[]);
    // Explicit port.
    let h = sim.stack.socket();
    sim.stack
        .bind(h, &SockAddr::inet(SocketAddrV4::new(LOCAL_IP, 45678)))
        .unwrap();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    let _ = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
    assert_eq!(sim.pump()[0].tcp().src_port, 45678);
    // bind(0) picks an odd port at bind time.
    let h = sim.stack.socket();
    sim.stack
        .bind(
            h,
            &SockAddr::inet(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        )
        .unwrap();
    assert_eq!(sim.stack.getsockname(h).unwrap().port() % 2, 1);
    assert_eq!(
        sim.stack
            .bind(h, &SockAddr::inet(SocketAddrV4::new(LOCAL_IP, 0))),
        Err(Errno::EINVAL)
    );
    // IP_BIND_ADDRESS_NO_PORT defers the port to connect (even).
    let h = sim.stack.socket();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::IpBindAddressNoPort(true))
        .unwrap();
    sim.stack
        .bind(h, &SockAddr::inet(SocketAddrV4::new(LOCAL_IP, 0)))
        .unwrap();
    assert_eq!(sim.stack.getsockname(h).unwrap().port(), 0);
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    let _ = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
    assert_eq!(sim.pump()[0].tcp().src_port % 2, 0);
    // Non-local address.
    let h = sim.stack.socket();
    assert_eq!(
        sim.stack.bind(
            h,
            &SockAddr::inet(SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 0))
        ),
        Err(Errno::EADDRNOTAVAIL)
    );
    // Explicit port in use.
    let h2 = sim.stack.socket();
    assert_eq!(
        sim.stack
            .bind(h2, &SockAddr::inet(SocketAddrV4::new(LOCAL_IP, 45678))),
        Err(Errno::EADDRINUSE)
    );
}

/// A socket bound to 127.0.0.1 cannot leave by the veth (`__mkroute_output`: a loopback
/// source only goes out through `lo`): connect fails with EINVAL and sends nothing. The
/// same socket still connects over `lo`.
#[test]
fn a_loopback_source_cannot_connect_out_of_the_interface() {
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    sim.stack
        .bind(
            h,
            &SockAddr::inet(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5555)),
        )
        .unwrap();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    assert_eq!(
        sim.stack.connect(sim.now, h, &SockAddr::inet(PEER)),
        Connect::Done(Err(Errno::EINVAL))
    );
    assert!(sim.pump().is_empty(), "no SYN");
    assert_eq!(
        sim.stack.connect(
            sim.now,
            h,
            &SockAddr::inet(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80))
        ),
        Connect::Done(Err(Errno::EINPROGRESS)),
        "over lo the connect goes ahead"
    );
}

#[test]
fn fastopen_connect_rejected_after_connect() {
    let mut sim = Sim::new(&[]);
    let (h, _) = sim.connect_nb(vec![]);
    assert_eq!(
        sim.stack
            .setsockopt(sim.now, h, SockOpt::TcpFastopenConnect(1)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn a_syn_queued_for_arp_goes_out_after_close_and_is_not_sent_again() {
    // tcp_close in SYN-SENT: CLOSE at once, no RST. The SYN already waits in the
    // neighbour's arp_queue, which holds the socket, so it still goes out once ARP
    // resolves; the connection being gone, nothing re-sends it.
    let mut sim = Sim::new(&[]);
    let h = sim.stack.socket();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    let r = sim.stack.connect(sim.now, h, &SockAddr::inet(PEER));
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
    sim.stack.poll_transmit(sim.now).expect("the ARP request");
    sim.stack.close(sim.now, h).unwrap();
    sim.deliver_arp_reply();
    let sent = sim.pump();
    assert_eq!(sent.len(), 1, "the queued SYN");
    assert_eq!(sent[0].tcp().flags, TcpFlags(TcpFlags::SYN));
    sim.run_until(Instant::from_millis(3000));
    assert_eq!(
        sim.tcp_sent().len(),
        1,
        "the SYN, and no SYN again: {:?}",
        sim.tcp_sent()
    );
}
