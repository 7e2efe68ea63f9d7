//! connect() over IPv6 (`tcp_v6_connect`): neighbour discovery, the SYN's IPv6 header and
//! MSS, the handshake and what follows it, RST and ICMPv6 errors, v4-mapped
//! destinations, and the `sockaddr_in6` checks, in virtual time against a simulated peer.

mod common;
use common::v6::*;
use common::{linux_synack_options, synack, LOCAL_MAC, PEER_MAC};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use tcptwin_stack::socket::poll::*;
use tcptwin_stack::wire::icmpv6::unreach;
use tcptwin_stack::wire::ndisc::solicited_node;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

fn established(sim: &mut Sim6, opts: Vec<SockOpt>) -> (SocketHandle, TcpRepr) {
    let (h, syn) = sim.connect_nb(opts);
    let syn = syn.tcp().clone();
    let sa = synack(&syn, 5000, 65535, linux_synack_options(777, 0));
    sim.deliver_tcp(&sa, 0);
    sim.pump();
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Established));
    (h, syn)
}

/// The quoted start of the SYN (IPv6 header + 8 bytes of TCP), as a router quotes it.
fn quoted_syn(syn: &TcpRepr) -> Vec<u8> {
    let tcp = syn.to_bytes(LOCAL6, PEER6);
    let ip = Ipv6Repr {
        src_addr: LOCAL6,
        dst_addr: PEER6,
        next_header: IpProtocol::Tcp,
        traffic_class: 0,
        flow_label: 0,
        hop_limit: 64,
        payload_len: tcp.len(),
    };
    ip.build(&tcp)[..48].to_vec()
}

#[test]
fn solicitation_then_advertisement_then_syn() {
    let mut sim = Sim6::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    // The solicitation came first, then (once the peer answered) the SYN.
    let ns = &sim.sent[0].1;
    let Frame6::Ndisc { eth_dst, ip, msg } = ns else {
        panic!("first frame is not a solicitation: {ns:?}");
    };
    assert_eq!(*eth_dst, EthernetAddress([0x33, 0x33, 0xff, 0, 0, 2]));
    assert_eq!(ip.dst_addr, "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
    assert_eq!((ip.src_addr, ip.hop_limit), (LOCAL6, 255));
    assert_eq!(
        *msg,
        NdiscRepr::Solicit {
            target: PEER6,
            lladdr: Some(LOCAL_MAC)
        }
    );
    let Frame6::Tcp { eth_dst, ip, tcp } = &syn else {
        panic!("not a v6 SYN: {syn:?}");
    };
    assert_eq!(*eth_dst, PEER_MAC);
    assert_eq!((ip.src_addr, ip.dst_addr), (LOCAL6, PEER6));
    assert_eq!(ip.hop_limit, 64, "net.ipv6.conf.*.hop_limit");
    assert_eq!(ip.traffic_class, 0);
    assert_ne!(ip.flow_label, 0, "auto_flowlabels=1 labels the flow");
    assert_eq!(tcp.mss(), Some(1440), "MTU 1500 − 40 − 20");
    // tcp_select_initial_window rounds the 64 KiB window down to whole 1440-byte segments.
    assert_eq!(tcp.window, 64800);
    assert_eq!(tcp.flags, TcpFlags(TcpFlags::SYN));
    assert_eq!(tcp.dst_port, PEER_PORT);
    // getsockname reports the IPv6 source and the chosen port.
    let SocketAddr::V6(me) = sim.stack.getsockname_addr(h).unwrap() else {
        panic!("AF_INET6 socket reports IPv4");
    };
    assert_eq!((*me.ip(), me.port()), (LOCAL6, tcp.src_port));
    assert_eq!(sim.stack.getsockname(h), Err(Errno::EAFNOSUPPORT));
    assert_eq!(sim.stack.getpeername_addr(h), Err(Errno::ENOTCONN));
    // tcp_v6_connect clamps to IPV6_MIN_MTU − 60 until the SYN-ACK's MSS (as
    // tcp_v4_connect clamps to 536): 1220 less the timestamp option.
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::TcpMaxSeg),
        Ok(SockOptValue::Int(1208))
    );
}

#[test]
fn flow_label_follows_auto_flowlabels_and_txrehash() {
    let mut sim = Sim6::new(&[("net.ipv6.auto_flowlabels", "0")]);
    let (_, syn) = sim.connect_nb(vec![]);
    assert_eq!(syn.ip6().flow_label, 0);

    // tcp_write_timeout → sk_rethink_txhash: each retransmitted SYN has a new label.
    let mut sim = Sim6::new(&[]);
    sim.resolve = true;
    sim.connect_nb(vec![]);
    sim.run_until(Instant::from_millis(2100));
    let labels: Vec<u32> = sim
        .tcp_sent()
        .iter()
        .map(|(_, f)| f.ip6().flow_label)
        .collect();
    assert_eq!(labels.len(), 3);
    assert!(labels.iter().all(|&l| l != 0 && l <= 0xfffff));
    assert_ne!(labels[0], labels[1]);
    assert_ne!(labels[1], labels[2]);

    // net.core.txrehash = 0: the label stays.
    let mut sim = Sim6::new(&[("net.core.txrehash", "0")]);
    sim.connect_nb(vec![]);
    sim.run_until(Instant::from_millis(2100));
    let labels: Vec<u32> = sim
        .tcp_sent()
        .iter()
        .map(|(_, f)| f.ip6().flow_label)
        .collect();
    assert_eq!(labels.len(), 3);
    assert!(labels.iter().all(|&l| l == labels[0] && l != 0));
}

#[test]
fn hop_limit_and_traffic_class_from_sysctl_and_options() {
    let mut sim = Sim6::new(&[("net.ipv6.conf.veth0.hop_limit", "100")]);
    let (_, syn) = sim.connect_nb(vec![]);
    assert_eq!(syn.ip6().hop_limit, 100);
    let (_, syn) = sim.connect_nb(vec![SockOpt::Ipv6UnicastHops(7), SockOpt::Ipv6Tclass(0x29)]);
    assert_eq!((syn.ip6().hop_limit, syn.ip6().traffic_class), (7, 0x28));
}

#[test]
fn tcp_options_work_on_an_inet6_socket() {
    let mut sim = Sim6::new(&[]);
    let (h, syn) = sim.connect_nb(vec![SockOpt::TcpMaxSeg(1000), SockOpt::TcpSynCnt(1)]);
    assert_eq!(syn.tcp().mss(), Some(1000));
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::TcpSynCnt),
        Ok(SockOptValue::Int(1))
    );
    // TCP_SYNCNT 1: SYNs at 0, 1, 2 s and ETIMEDOUT at 3 s (retransmits_timed_out), as
    // over IPv4.
    sim.run_until(Instant::from_secs(10));
    let times: Vec<u64> = sim.tcp_sent().iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, vec![0, 1024, 2048]);
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(Errno::ETIMEDOUT.code()))
    );
}

#[test]
fn synack_establishes_and_data_flows_over_ipv6() {
    let mut sim = Sim6::new(&[]);
    let (h, syn) = established(&mut sim, vec![]);
    let ack = sim.tcp_sent().last().unwrap().1.clone();
    let Frame6::Tcp { ip, tcp, .. } = &ack else {
        panic!("not v6: {ack:?}");
    };
    assert_eq!(tcp.flags, TcpFlags(TcpFlags::ACK));
    assert_eq!(tcp.ack, 5001);
    assert_eq!(
        ip.flow_label,
        sim.tcp_sent()[0].1.ip6().flow_label,
        "one flow, one label"
    );
    assert_eq!(
        sim.stack.getpeername_addr(h),
        Ok(SocketAddr::V6(SocketAddrV6::new(PEER6, PEER_PORT, 0, 0)))
    );
    // Data out: one segment of at most the peer's MSS (1460 − 12 for timestamps).
    assert_eq!(sim.stack.send(sim.now, h, &[7u8; 3000]), Ok(3000));
    let data = sim.pump();
    assert!(!data.is_empty());
    assert!(data.iter().all(|f| f.tcp().payload.len() <= 1448));
    assert_eq!(data[0].tcp().seq, syn.seq.wrapping_add(1));
    // Data in, then FIN: read, EOF.
    let seg = TcpRepr {
        src_port: PEER_PORT,
        dst_port: syn.src_port,
        seq: 5001,
        ack: syn.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN),
        window: 65535,
        payload: b"hello".to_vec(),
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&seg, 0);
    sim.pump();
    let mut buf = [0u8; 16];
    assert_eq!(sim.stack.recv(sim.now, h, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(sim.stack.recv(sim.now, h, &mut buf), Ok(0));
    assert_eq!(sim.stack.tcp_state(h), Ok(State::CloseWait));
}

#[test]
fn rst_gives_econnrefused() {
    let mut sim = Sim6::new(&[]);
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
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(Errno::ECONNREFUSED.code()))
    );
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Closed));
}

#[test]
fn a_segment_for_no_socket_gets_a_v6_reset() {
    let mut sim = Sim6::new(&[]);
    sim.connect_nb(vec![]); // resolves the peer
    let stray = TcpRepr {
        src_port: 9,
        dst_port: 4444,
        seq: 100,
        flags: TcpFlags(TcpFlags::SYN),
        window: 1000,
        ..TcpRepr::default()
    };
    sim.deliver_tcp(&stray, 0x22);
    let out = sim.pump();
    assert_eq!(out.len(), 1);
    let Frame6::Tcp { ip, tcp, .. } = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(tcp.flags, TcpFlags(TcpFlags::RST | TcpFlags::ACK));
    assert_eq!((tcp.ack, tcp.dst_port), (101, 9));
    assert_eq!(
        ip.traffic_class, 0x20,
        "the segment's class without ECN bits"
    );
    assert_eq!(ip.hop_limit, 64);
}

#[test]
fn neighbour_discovery_failure_is_ehostunreach_after_three_solicitations() {
    let mut sim = Sim6::new(&[]);
    sim.resolve = false;
    let h = sim.stack.socket_in(Domain::Inet6);
    let r = sim.stack.connect(sim.now, h, &peer6());
    assert!(matches!(r, Connect::Wait { .. }), "{r:?}");
    sim.pump();
    let res = loop {
        if let Some(res) = sim.stack.connect_wait(sim.now, h) {
            break res;
        }
        assert!(sim.step(), "a timer must be pending");
        assert!(sim.now < Instant::from_secs(10));
    };
    assert_eq!(res, Err(Errno::EHOSTUNREACH));
    let times: Vec<u64> = sim.ns_sent().iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(
        times,
        vec![0, 1024, 2048],
        "mcast_solicit = 3, retrans_time_ms = 1000"
    );
    assert_eq!(sim.now, Instant::from_millis(3072));
    assert!(
        sim.tcp_sent().is_empty(),
        "the SYN never left the neighbour queue"
    );
    // mcast_solicit = 1: one solicitation, failure one retransmission time later.
    let mut sim = Sim6::new(&[("net.ipv6.neigh.veth0.mcast_solicit", "1")]);
    sim.resolve = false;
    let (h, r, _) = sim.connect6(vec![], &peer6());
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
    sim.run_until(Instant::from_secs(5));
    assert_eq!(sim.ns_sent().len(), 1);
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(Errno::EHOSTUNREACH.code()))
    );
}

#[test]
fn icmpv6_errors_in_syn_sent() {
    let cases = [
        (1, unreach::NOROUTE, Errno::ENETUNREACH),
        (1, unreach::ADM_PROHIBITED, Errno::EACCES),
        (1, unreach::NOT_NEIGHBOUR, Errno::EHOSTUNREACH),
        (1, unreach::ADDR_UNREACH, Errno::EHOSTUNREACH),
        (1, unreach::PORT_UNREACH, Errno::ECONNREFUSED),
        (1, unreach::POLICY_FAIL, Errno::EACCES),
        (1, unreach::REJECT_ROUTE, Errno::EACCES),
        (1, 9, Errno::EPROTO),
        // tcp_v6_err aborts a connect on every error, also the "soft" time exceeded.
        (3, 0, Errno::EHOSTUNREACH),
        (4, 0, Errno::EPROTO),
    ];
    for (t, code, want) in cases {
        let mut sim = Sim6::new(&[]);
        let (h, syn) = sim.connect_nb(vec![]);
        let icmp = Icmpv6Repr {
            msg_type: t,
            code,
            rest: 0,
            data: quoted_syn(syn.tcp()),
        };
        sim.deliver_icmpv6(&icmp);
        assert_eq!(
            sim.stack.tcp_state(h),
            Ok(State::Closed),
            "type {t} code {code}"
        );
        assert_eq!(
            sim.stack.getsockopt(h, SockOptName::SoError),
            Ok(SockOptValue::Int(want.code())),
            "type {t} code {code}"
        );
    }
}

#[test]
fn icmpv6_quoting_another_sequence_or_socket_is_ignored() {
    let mut sim = Sim6::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let mut data = quoted_syn(syn.tcp());
    data[44..48].copy_from_slice(&syn.tcp().seq.wrapping_add(10).to_be_bytes());
    sim.deliver_icmpv6(&Icmpv6Repr::dest_unreachable(unreach::PORT_UNREACH, &data));
    let mut other = quoted_syn(syn.tcp());
    other[40..42].copy_from_slice(&1u16.to_be_bytes());
    sim.deliver_icmpv6(&Icmpv6Repr::dest_unreachable(unreach::PORT_UNREACH, &other));
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    // Established: an error is only soft.
    let mut sim = Sim6::new(&[]);
    let (h, syn) = established(&mut sim, vec![]);
    let mut q = quoted_syn(&syn);
    q[44..48].copy_from_slice(&syn.seq.wrapping_add(1).to_be_bytes());
    sim.deliver_icmpv6(&Icmpv6Repr::dest_unreachable(unreach::NOROUTE, &q));
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Established));
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::SoError),
        Ok(SockOptValue::Int(Errno::ENETUNREACH.code()))
    );
}

#[test]
fn packet_too_big_in_syn_sent_is_dropped_by_the_mss_clamp() {
    // tcp_v6_mtu_reduced drops a PTB whose MSS would not be below mss_cache; in SYN-SENT
    // mss_cache is clamped to 1220 (IPV6_MIN_MTU − 60), which no valid PTB goes below.
    let mut sim = Sim6::new(&[]);
    let (h, syn) = sim.connect_nb(vec![]);
    let q = quoted_syn(syn.tcp());
    sim.deliver_icmpv6(&Icmpv6Repr::packet_too_big(1280, &q));
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
    assert_eq!(sim.stack.tcb(h).unwrap().pmtu, 1500);
    assert!(sim.pump().is_empty());
    sim.run_until(Instant::from_millis(1100));
    let sent = sim.tcp_sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].1.tcp().mss(), Some(1440));
}

#[test]
fn packet_too_big_lowers_the_mss_but_not_below_1280() {
    let mut sim = Sim6::new(&[]);
    let (h, syn) = established(&mut sim, vec![]);
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::TcpMaxSeg),
        Ok(SockOptValue::Int(1428))
    );
    let mut q = quoted_syn(&syn);
    q[44..48].copy_from_slice(&syn.seq.wrapping_add(1).to_be_bytes());
    // Below IPV6_MIN_MTU: ignored.
    sim.deliver_icmpv6(&Icmpv6Repr::packet_too_big(1000, &q));
    assert_eq!(sim.stack.tcb(h).unwrap().pmtu, 1500);
    sim.deliver_icmpv6(&Icmpv6Repr::packet_too_big(1400, &q));
    assert_eq!(sim.stack.tcb(h).unwrap().pmtu, 1400);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::Established));
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::TcpMaxSeg),
        Ok(SockOptValue::Int(1400 - 60 - 12))
    );
    // A larger MTU later does not raise it.
    sim.deliver_icmpv6(&Icmpv6Repr::packet_too_big(1450, &q));
    assert_eq!(sim.stack.tcb(h).unwrap().pmtu, 1400);
    assert_eq!(sim.stack.send(sim.now, h, &[1u8; 4000]), Ok(4000));
    let out = sim.pump();
    assert!(!out.is_empty());
    assert!(out.iter().all(|f| f.tcp().payload.len() <= 1328), "{out:?}");
}

#[test]
fn v4_mapped_destination_sends_an_ipv4_syn() {
    let mut sim = Sim6::new(&[]);
    let mapped = Ipv4Addr::new(10, 199, 0, 2).to_ipv6_mapped();
    let to = SockAddr::inet6(SocketAddrV6::new(mapped, PEER_PORT, 0, 0));
    let (h, r, f) = sim.connect6(vec![], &to);
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
    assert_eq!(f.len(), 1);
    let Frame6::Tcp4 { ip, tcp } = &f[0] else {
        panic!("not an IPv4 SYN: {f:?}");
    };
    assert_eq!(ip.dst_addr, Ipv4Addr::new(10, 199, 0, 2));
    assert_eq!(ip.ttl, 64);
    assert_eq!(tcp.mss(), Some(1460), "the IPv4 path's MSS");
    assert!(matches!(sim.sent[0].1, Frame6::Arp(_)), "ARP, not ND");
    let me = sim.stack.getsockname_addr(h).unwrap();
    assert_eq!(
        me,
        SocketAddr::V6(SocketAddrV6::new(
            Ipv4Addr::new(10, 199, 0, 1).to_ipv6_mapped(),
            tcp.src_port,
            0,
            0
        ))
    );
    assert_eq!(
        sim.stack.getsockname(h),
        Ok(SocketAddrV4::new(
            Ipv4Addr::new(10, 199, 0, 1),
            tcp.src_port
        ))
    );
    // The SYN-ACK over IPv4 establishes the AF_INET6 socket.
    let sa = synack(tcp, 9, 65535, linux_synack_options(1, 0));
    let mut sim4 = sim;
    let seg = sa.to_bytes(Ipv4Addr::new(10, 199, 0, 2), Ipv4Addr::new(10, 199, 0, 1));
    let ip4 = Ipv4Repr {
        src_addr: Ipv4Addr::new(10, 199, 0, 2),
        dst_addr: Ipv4Addr::new(10, 199, 0, 1),
        protocol: IpProtocol::Tcp,
        tos: 0,
        ident: 1,
        dont_frag: true,
        ttl: 64,
        options: vec![],
        payload_len: seg.len(),
    };
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: LOCAL_MAC,
        ethertype: EtherType::Ipv4,
    };
    let frame = tcptwin_stack::wire::ethernet::build_frame(&eth, &ip4.build(&seg));
    sim4.stack.handle_frame(sim4.now, &frame);
    assert_eq!(sim4.stack.tcp_state(h), Ok(State::Established));
    assert_eq!(sim4.stack.poll(h).unwrap() & POLLOUT, POLLOUT);
}

#[test]
fn v4_mapped_destination_on_a_v6only_socket_is_enetunreach() {
    let mut sim = Sim6::new(&[]);
    let mapped = Ipv4Addr::new(10, 199, 0, 2).to_ipv6_mapped();
    let to = SockAddr::inet6(SocketAddrV6::new(mapped, PEER_PORT, 0, 0));
    let (h, r, f) = sim.connect6(vec![SockOpt::Ipv6V6Only(true)], &to);
    assert_eq!(r, Connect::Done(Err(Errno::ENETUNREACH)));
    assert!(f.is_empty() && sim.sent.is_empty());
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::Ipv6V6Only),
        Ok(SockOptValue::Int(1))
    );
}

#[test]
fn sockaddr_in6_errors_in_linux_order() {
    let mut sim = Sim6::new(&[]);
    let full = peer6();
    let cases: Vec<(SockAddr, Errno)> = vec![
        // addr_len < SIN6_LEN_RFC2133 comes before the family.
        (SockAddr::from_bytes(&full.as_bytes()[..23]), Errno::EINVAL),
        (
            SockAddr::inet(SocketAddrV4::new(Ipv4Addr::new(10, 199, 0, 2), 80)),
            Errno::EINVAL,
        ),
        (SockAddr::with_family(2, 28), Errno::EAFNOSUPPORT),
        (
            SockAddr::inet6(SocketAddrV6::new("ff02::1".parse().unwrap(), 80, 0, 0)),
            Errno::ENETUNREACH,
        ),
        (
            SockAddr::inet6(SocketAddrV6::new("fe80::2".parse().unwrap(), 80, 0, 0)),
            Errno::EINVAL,
        ),
        // A link-local scope id in the last 4 bytes, but only 24 bytes given: no scope.
        (
            SockAddr::from_bytes(
                &SockAddr::inet6(SocketAddrV6::new("fe80::2".parse().unwrap(), 80, 0, 2))
                    .as_bytes()[..24],
            ),
            Errno::EINVAL,
        ),
        (
            SockAddr::inet6(SocketAddrV6::new("2001:9::1".parse().unwrap(), 80, 0, 0)),
            Errno::ENETUNREACH,
        ),
    ];
    for (addr, want) in cases {
        let h = sim.stack.socket_in(Domain::Inet6);
        sim.stack
            .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
            .unwrap();
        assert_eq!(
            sim.stack.connect(sim.now, h, &addr),
            Connect::Done(Err(want)),
            "{:?}",
            addr.as_bytes()
        );
    }
    assert!(sim.sent.is_empty());
    // A sockaddr_in6 given to an AF_INET socket: EAFNOSUPPORT, as before.
    let h = sim.stack.socket();
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    assert_eq!(
        sim.stack.connect(sim.now, h, &full),
        Connect::Done(Err(Errno::EAFNOSUPPORT))
    );
}

#[test]
fn link_local_with_scope_id_solicits_from_the_link_local_address() {
    let mut sim = Sim6::new(&[]);
    sim.resolve = false;
    let dst: Ipv6Addr = "fe80::2".parse().unwrap();
    let (h, r, _) = sim.connect6(vec![], &SockAddr::inet6(SocketAddrV6::new(dst, 80, 0, 2)));
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
    let Frame6::Ndisc { ip, msg, .. } = &sim.sent[0].1 else {
        panic!("{:?}", sim.sent);
    };
    let ll: Ipv6Addr = "fe80::ff:fe00:1".parse().unwrap();
    assert_eq!((ip.src_addr, ip.dst_addr), (ll, solicited_node(dst)));
    assert!(matches!(msg, NdiscRepr::Solicit { target, .. } if *target == dst));
    let SocketAddr::V6(me) = sim.stack.getsockname_addr(h).unwrap() else {
        panic!();
    };
    assert_eq!((*me.ip(), me.scope_id()), (ll, 2));
}

#[test]
fn a_scope_id_not_ours_binds_the_socket_to_no_device() {
    // tcp_v6_connect sets sk_bound_dev_if from sin6_scope_id before the route lookup;
    // a strict lookup on a device that does not exist ends at the null entry, and the
    // binding stays for the next connect, to a global address too.
    let mut sim = Sim6::new(&[]);
    let ll = SockAddr::inet6(SocketAddrV6::new("fe80::2".parse().unwrap(), 80, 0, 99));
    let (h, r, f) = sim.connect6(vec![], &ll);
    assert_eq!(r, Connect::Done(Err(Errno::ENETUNREACH)));
    assert!(f.is_empty() && sim.sent.is_empty(), "nothing sent");
    assert_eq!(
        sim.stack.connect(sim.now, h, &peer6()),
        Connect::Done(Err(Errno::ENETUNREACH))
    );
    sim.pump();
    assert!(sim.sent.is_empty(), "nothing sent");
}

#[test]
fn addr_gen_mode_none_leaves_no_link_local_address() {
    // addrconf_addr_gen in IN6_ADDR_GEN_MODE_NONE adds neither fe80::/64 nor an address:
    // a link-local destination on our own interface has no route.
    let mut sim = Sim6::new(&[("net.ipv6.conf.eth0.addr_gen_mode", "1")]);
    sim.resolve = false;
    let ll = SockAddr::inet6(SocketAddrV6::new("fe80::2".parse().unwrap(), 80, 0, 2));
    let (_, r, _) = sim.connect6(vec![], &ll);
    assert_eq!(r, Connect::Done(Err(Errno::ENETUNREACH)));
    assert!(sim.sent.is_empty(), "no solicitation: {:?}", sim.sent);
    // The global address still works.
    let (_, r, _) = sim.connect6(vec![], &peer6());
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
}

#[test]
fn any_address_connects_to_loopback_and_is_refused() {
    let mut sim = Sim6::new(&[]);
    let h = sim.stack.socket_in(Domain::Inet6);
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    let any = SockAddr::inet6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 4321, 0, 0));
    // The SYN goes through lo, the control socket answers with a RST.
    assert_eq!(
        sim.stack.connect(sim.now, h, &any),
        Connect::Done(Err(Errno::EINPROGRESS))
    );
    sim.pump();
    assert!(sim.sent.is_empty(), "nothing on the wire");
    assert_eq!(
        sim.stack.connect(sim.now, h, &any),
        Connect::Done(Err(Errno::ECONNREFUSED))
    );
    assert_eq!(sim.stack.stats().tx_frames, 0);
}

#[test]
fn a_solicitation_for_our_address_is_answered() {
    let mut sim = Sim6::new(&[]);
    sim.deliver_ns(LOCAL6, solicited_node(LOCAL6), 255);
    sim.pump();
    assert_eq!(sim.sent.len(), 1);
    let Frame6::Ndisc { eth_dst, ip, msg } = &sim.sent[0].1 else {
        panic!("{:?}", sim.sent);
    };
    assert_eq!(*eth_dst, PEER_MAC);
    assert_eq!(
        (ip.src_addr, ip.dst_addr, ip.hop_limit),
        (LOCAL6, PEER6, 255)
    );
    assert_eq!(
        *msg,
        NdiscRepr::Advert {
            router: false,
            solicited: true,
            overrides: true,
            target: LOCAL6,
            lladdr: Some(LOCAL_MAC)
        }
    );
    // The peer is now known: a connect sends its SYN without soliciting.
    sim.resolve = false;
    sim.sent.clear();
    let (_, syn) = sim.connect_nb(vec![]);
    assert!(matches!(syn, Frame6::Tcp { .. }));
    assert!(sim.ns_sent().is_empty());
    // A unicast solicitation is answered without override or our address; one with a
    // hop limit other than 255, or for an address not ours, is not answered.
    sim.sent.clear();
    sim.deliver_ns(LOCAL6, LOCAL6, 255);
    sim.deliver_ns(LOCAL6, solicited_node(LOCAL6), 64);
    sim.deliver_ns(
        "2001:2::9".parse().unwrap(),
        solicited_node("2001:2::9".parse().unwrap()),
        255,
    );
    sim.pump();
    assert_eq!(sim.sent.len(), 1);
    assert!(matches!(
        sim.sent[0].1,
        Frame6::Ndisc {
            msg: NdiscRepr::Advert {
                solicited: true,
                overrides: false,
                lladdr: None,
                ..
            },
            ..
        }
    ));
}

#[test]
fn an_advertisement_without_the_link_layer_address_resolves_nothing() {
    let mut sim = Sim6::new(&[]);
    sim.resolve = false;
    let (h, r, _) = sim.connect6(vec![], &peer6());
    assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
    sim.deliver_na(PEER6, true, false);
    assert!(sim.pump().is_empty());
    sim.deliver_na(PEER6, true, true);
    let syn = sim.pump();
    assert_eq!(syn.len(), 1);
    assert_eq!(sim.stack.tcp_state(h), Ok(State::SynSent));
}

#[test]
fn bind_checks_and_reports() {
    let mut sim = Sim6::new(&[]);
    let h = sim.stack.socket_in(Domain::Inet6);
    let short = SockAddr::from_bytes(&peer6().as_bytes()[..20]);
    assert_eq!(sim.stack.bind(h, &short), Err(Errno::EINVAL));
    assert_eq!(
        sim.stack.bind(h, &SockAddr::with_family(2, 28)),
        Err(Errno::EAFNOSUPPORT)
    );
    let not_ours = SockAddr::inet6(SocketAddrV6::new("2001:2::9".parse().unwrap(), 0, 0, 0));
    assert_eq!(sim.stack.bind(h, &not_ours), Err(Errno::EADDRNOTAVAIL));
    let mcast = SockAddr::inet6(SocketAddrV6::new("ff02::1".parse().unwrap(), 0, 0, 0));
    assert_eq!(sim.stack.bind(h, &mcast), Err(Errno::EINVAL));
    let me = SockAddr::inet6(SocketAddrV6::new(LOCAL6, 40000, 0, 0));
    assert_eq!(sim.stack.bind(h, &me), Ok(()));
    assert_eq!(
        sim.stack.getsockname_addr(h),
        Ok(SocketAddr::V6(SocketAddrV6::new(LOCAL6, 40000, 0, 0)))
    );
    // A specific IPv6 address makes the socket v6-only; a second bind is EINVAL.
    assert_eq!(
        sim.stack.getsockopt(h, SockOptName::Ipv6V6Only),
        Ok(SockOptValue::Int(1))
    );
    assert_eq!(sim.stack.bind(h, &me), Err(Errno::EINVAL));
    // The SYN leaves from the bound port.
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    sim.stack.connect(sim.now, h, &peer6());
    let f = sim.pump();
    assert_eq!(f[0].tcp().src_port, 40000);
    // v4-mapped bind on a v6-only socket: EINVAL.
    let h = sim.stack.socket_in(Domain::Inet6);
    sim.stack
        .setsockopt(sim.now, h, SockOpt::Ipv6V6Only(true))
        .unwrap();
    let mapped = SockAddr::inet6(SocketAddrV6::new(
        Ipv4Addr::new(10, 199, 0, 1).to_ipv6_mapped(),
        0,
        0,
        0,
    ));
    assert_eq!(sim.stack.bind(h, &mapped), Err(Errno::EINVAL));
    // Bound to a v4-mapped address, a socket reaches IPv4 only: an IPv6 destination
    // gets EAFNOSUPPORT (ip6_dst_lookup_tail), after the route lookup's own errors.
    let h = sim.stack.socket_in(Domain::Inet6);
    assert_eq!(sim.stack.bind(h, &mapped), Ok(()));
    assert_eq!(
        sim.stack.getsockname_addr(h),
        Ok(SocketAddr::V6(SocketAddrV6::new(
            Ipv4Addr::new(10, 199, 0, 1).to_ipv6_mapped(),
            sim.stack.getsockname(h).unwrap().port(),
            0,
            0
        )))
    );
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    let nowhere = SockAddr::inet6(SocketAddrV6::new("2001:9::1".parse().unwrap(), 80, 0, 0));
    assert_eq!(
        sim.stack.connect(sim.now, h, &nowhere),
        Connect::Done(Err(Errno::ENETUNREACH))
    );
    assert_eq!(
        sim.stack.connect(sim.now, h, &peer6()),
        Connect::Done(Err(Errno::EAFNOSUPPORT))
    );
}

#[test]
fn malformed_ipv6_frames_are_counted_and_dropped() {
    let mut sim = Sim6::new(&[]);
    let before = sim.stack.stats();
    // A header cut short, a payload length beyond the frame, a TCP checksum that fails.
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: LOCAL_MAC,
        ethertype: EtherType::Ipv6,
    };
    let f = tcptwin_stack::wire::ethernet::build_frame(&eth, &[0x60, 0, 0, 0, 0, 8]);
    sim.stack.handle_frame(sim.now, &f);
    let ip = Ipv6Repr {
        src_addr: PEER6,
        dst_addr: LOCAL6,
        next_header: IpProtocol::Tcp,
        traffic_class: 0,
        flow_label: 0,
        hop_limit: 64,
        payload_len: 0,
    };
    let mut long = ip.build(&[0; 20]);
    long[5] = 200;
    sim.stack.handle_frame(
        sim.now,
        &tcptwin_stack::wire::ethernet::build_frame(&eth, &long),
    );
    let seg = TcpRepr {
        src_port: 1,
        dst_port: 2,
        flags: TcpFlags(TcpFlags::SYN),
        ..TcpRepr::default()
    };
    let mut bad = seg.to_bytes(PEER6, LOCAL6);
    bad[16] ^= 0xff;
    sim.deliver_ip6(&ip, &bad);
    let after = sim.stack.stats();
    assert_eq!(after.rx_malformed - before.rx_malformed, 3);
    assert!(
        sim.pump().is_empty(),
        "no RST to a segment that fails its checksum"
    );
    // A frame for another host's multicast group is not ours.
    let other = EthernetRepr {
        dst_addr: EthernetAddress([0x33, 0x33, 0xff, 0, 0, 9]),
        ..eth
    };
    sim.stack.handle_frame(
        sim.now,
        &tcptwin_stack::wire::ethernet::build_frame(&other, &ip.build(&[])),
    );
    assert_eq!(sim.stack.stats().rx_ignored, after.rx_ignored + 1);
}

#[test]
fn an_interface_without_ipv6_has_no_route() {
    let mut sim = common::Sim::new(&[]);
    let h = sim.stack.socket_in(Domain::Inet6);
    sim.stack
        .setsockopt(sim.now, h, SockOpt::NonBlocking(true))
        .unwrap();
    assert_eq!(
        sim.stack.connect(sim.now, h, &peer6()),
        Connect::Done(Err(Errno::ENETUNREACH))
    );
}
