//! Property tests over IPv6: arbitrary IPv6, ICMPv6 and neighbour discovery input never
//! panics, and what the stack sends in answer still parses (the peer decodes every frame).

mod common;
use common::v6::*;
use proptest::prelude::*;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

fn connecting_sim() -> (Sim6, TcpRepr) {
    let mut sim = Sim6::new(&[]);
    let (_, syn) = sim.connect_nb(vec![]);
    (sim, syn.tcp().clone())
}

fn ipv6_header(next_header: u8, hop_limit: u8) -> Ipv6Repr {
    Ipv6Repr {
        src_addr: PEER6,
        dst_addr: LOCAL6,
        next_header: next_header.into(),
        traffic_class: 0,
        flow_label: 0,
        hop_limit,
        payload_len: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_ipv6_packet_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..120),
        next_header in prop_oneof![Just(6u8), Just(58u8), any::<u8>()],
        claimed_len in any::<u16>(),
    ) {
        let (mut sim, _) = connecting_sim();
        let mut p = ipv6_header(next_header, 64).build(&tail);
        p[4..6].copy_from_slice(&claimed_len.to_be_bytes());
        sim.deliver_ip6(&ipv6_header(next_header, 64), &p[40..]);
        let eth = EthernetRepr {
            src_addr: common::PEER_MAC,
            dst_addr: common::LOCAL_MAC,
            ethertype: EtherType::Ipv6,
        };
        sim.stack.handle_frame(sim.now, &ethernet::build_frame(&eth, &p));
        sim.pump();
    }

    #[test]
    fn any_icmpv6_message_never_panics(
        msg_type in prop_oneof![1u8..=4, 135u8..=137, any::<u8>()],
        code in prop_oneof![Just(0u8), any::<u8>()],
        rest in any::<u32>(),
        data in proptest::collection::vec(any::<u8>(), 0..96),
        quote_the_syn in any::<bool>(),
        hop_limit in prop_oneof![Just(255u8), any::<u8>()],
    ) {
        let (mut sim, syn) = connecting_sim();
        let mut body = data;
        if quote_the_syn {
            // The SYN's own header first, so that the error finds the socket.
            let tcp = syn.to_bytes(LOCAL6, PEER6);
            let mut q = Ipv6Repr {
                src_addr: LOCAL6,
                dst_addr: PEER6,
                ..ipv6_header(6, 64)
            }
            .build(&tcp);
            q.truncate(48);
            q.extend(body);
            body = q;
        }
        let icmp = Icmpv6Repr { msg_type, code, rest, data: body };
        let b = icmp.to_bytes(PEER6, LOCAL6);
        sim.deliver_ip6(&ipv6_header(58, hop_limit), &b);
        sim.pump();
        sim.run_until(Instant::from_secs(3));
    }

    #[test]
    fn any_segment_to_a_connecting_v6_socket_never_panics(
        seq in any::<u32>(),
        ack in any::<u32>(),
        flags in 0u16..0x200,
        window in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        hit_port in any::<bool>(),
    ) {
        let (mut sim, syn) = connecting_sim();
        let seg = TcpRepr {
            src_port: if hit_port { PEER_PORT } else { 1 },
            dst_port: if hit_port { syn.src_port } else { 2 },
            seq,
            ack,
            flags: TcpFlags(flags),
            window,
            urgent: 0,
            options: vec![],
            payload,
        };
        sim.deliver_tcp(&seg, 0);
        sim.pump();
        sim.run_until(Instant::from_secs(3));
    }

    #[test]
    fn ipv6_repr_roundtrips(
        tc in any::<u8>(),
        flow in 0u32..0x10_0000,
        hops in any::<u8>(),
        nh in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let r = Ipv6Repr {
            traffic_class: tc,
            flow_label: flow,
            hop_limit: hops,
            payload_len: payload.len(),
            ..ipv6_header(nh, 0)
        };
        let b = r.build(&payload);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload(), &payload[..]);
    }
}
