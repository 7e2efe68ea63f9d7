//! Frames the scripted peer sends, built with etherparse (which fills in lengths and
//! checksums).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header,
    Ipv6Extensions, Ipv6FlowLabel, Ipv6Header, PacketBuilder, TcpHeader,
};

use crate::observe::decode::{flags, ArpFields};

/// The peer's IP TTL and IPv6 hop limit: Linux's default, so the peer looks like a Linux host.
pub const PEER_TTL: u8 = 64;
/// The hop limit of neighbour discovery messages, which a receiver checks (RFC 4861 §7.1).
const ND_HOP_LIMIT: u8 = 255;

/// An ARP reply to `request`, saying `ip` is at `mac`.
pub fn arp_reply(mac: [u8; 6], ip: Ipv4Addr, request: &ArpFields) -> Vec<u8> {
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REPLY,
        sender_mac: mac,
        sender_ipv4: ip.octets(),
        target_mac: request.sender_mac,
        target_ipv4: request.sender_ip.octets(),
    };
    let mut out = Vec::with_capacity(42);
    PacketBuilder::ethernet2(mac, request.sender_mac)
        .arp(arp.into())
        .write(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// A TCP segment from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// The IPv4 ID (an IPv6 packet has none).
    pub ip_id: u16,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u16,
    pub window: u16,
    /// Option bytes; padded with EOL to a multiple of 4.
    pub options: Vec<u8>,
    pub payload_len: usize,
}

/// Builds a segment (at most 40 option bytes; longer lists are cut, since a case's raw
/// options are checked against that limit when it is loaded).
pub fn tcp(seg: &Segment) -> Vec<u8> {
    tcp_with_tos(seg, 0)
}

/// [`tcp`] with this IP TOS byte or IPv6 traffic class (DSCP in the upper six bits, ECN in
/// the lower two): a segment whose TOS Linux reflects, as a RST answering it does
/// (`ip_send_unicast_reply`).
pub fn tcp_with_tos(seg: &Segment, tos: u8) -> Vec<u8> {
    let mut tcp = TcpHeader::new(seg.sport, seg.dport, seg.seq, seg.window);
    tcp.acknowledgment_number = seg.ack;
    tcp.fin = seg.flags & flags::FIN != 0;
    tcp.syn = seg.flags & flags::SYN != 0;
    tcp.rst = seg.flags & flags::RST != 0;
    tcp.psh = seg.flags & flags::PSH != 0;
    tcp.ack = seg.flags & flags::ACK != 0;
    tcp.ece = seg.flags & flags::ECE != 0;
    tcp.cwr = seg.flags & flags::CWR != 0;
    let mut options = seg.options.clone();
    options.truncate(40);
    while !options.len().is_multiple_of(4) {
        options.push(0);
    }
    tcp.set_options_raw(&options)
        .expect("at most 40 option bytes, a multiple of 4");
    let payload: Vec<u8> = (0..seg.payload_len)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let ip = ip_headers(
        seg.src_ip,
        seg.dst_ip,
        seg.ip_id,
        IpNumber::TCP,
        PEER_TTL,
        tos,
    );
    let mut out = Vec::with_capacity(14 + 40 + 60 + payload.len());
    PacketBuilder::ethernet2(seg.src_mac, seg.dst_mac)
        .ip(ip)
        .tcp_header(tcp)
        .write(&mut out, &payload)
        .expect("writing to a Vec cannot fail");
    out
}

/// An ICMP (IPv4) or ICMPv6 (IPv6) error of any type and code that quotes `quoted` (an IP
/// packet as sent by the DUT).
#[allow(clippy::too_many_arguments)]
pub fn icmp_error(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: IpAddr,
    dst_ip: IpAddr,
    ip_id: u16,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + 48 + quoted.len());
    let builder = PacketBuilder::ethernet2(src_mac, dst_mac);
    if src_ip.is_ipv4() {
        // icmp_send() quotes as much as fits in 576 bytes; a SYN always fits.
        let quoted = &quoted[..quoted.len().min(576 - 28)];
        let ip = ip_headers(src_ip, dst_ip, ip_id, IpNumber::ICMP, PEER_TTL, 0);
        builder
            .ip(ip)
            .icmpv4_raw(icmp_type, code, rest)
            .write(&mut out, quoted)
    } else {
        // icmp6_send() quotes as much as fits in the minimum MTU (IPV6_MIN_MTU, 1280).
        let quoted = &quoted[..quoted.len().min(1280 - 48)];
        let ip = ip_headers(src_ip, dst_ip, 0, IpNumber::IPV6_ICMP, PEER_TTL, 0);
        builder
            .ip(ip)
            .icmpv6_raw(icmp_type, code, rest)
            .write(&mut out, quoted)
    }
    .expect("writing to a Vec cannot fail");
    out
}

/// A neighbour advertisement answering a solicitation (RFC 4861 §7.2.4, as `ndisc_send_na`
/// sends it): solicited and override set, the target's link-layer address in an option,
/// to the soliciting node at `dst_ip`/`dst_mac`, hop limit 255.
pub fn neighbour_advertisement(
    mac: [u8; 6],
    target: Ipv6Addr,
    dst_mac: [u8; 6],
    dst_ip: Ipv6Addr,
) -> Vec<u8> {
    const SOLICITED_OVERRIDE: [u8; 4] = [0x60, 0, 0, 0];
    const TARGET_LLADDR: u8 = 2;
    let mut body = target.octets().to_vec();
    body.extend([TARGET_LLADDR, 1]);
    body.extend(mac);
    let ip = ip_headers(
        IpAddr::V6(target),
        IpAddr::V6(dst_ip),
        0,
        IpNumber::IPV6_ICMP,
        ND_HOP_LIMIT,
        0,
    );
    let mut out = Vec::with_capacity(14 + 40 + 32);
    PacketBuilder::ethernet2(mac, dst_mac)
        .ip(ip)
        .icmpv6_raw(
            crate::observe::decode::icmpv6::NEIGHBOUR_ADVERTISEMENT,
            0,
            SOLICITED_OVERRIDE,
        )
        .write(&mut out, &body)
        .expect("writing to a Vec cannot fail");
    out
}

/// A neighbour solicitation from `mac`/`src` for `target`, to the target's solicited-node
/// group, as a DUT sends one (`ndisc_send_ns`): for tests of what hears it.
#[cfg(test)]
pub fn neighbour_solicitation(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let ip = ip_headers(
        IpAddr::V6(src),
        IpAddr::V6(group),
        0,
        IpNumber::IPV6_ICMP,
        ND_HOP_LIMIT,
        0,
    );
    let mut body = t.to_vec();
    body.extend([1, 1]);
    body.extend(mac);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(mac, [0x33, 0x33, 0xff, t[13], t[14], t[15]])
        .ip(ip)
        .icmpv6_raw(
            crate::observe::decode::icmpv6::NEIGHBOUR_SOLICITATION,
            0,
            [0; 4],
        )
        .write(&mut out, &body)
        .expect("writing to a Vec cannot fail");
    out
}

/// The peer's IP header: IPv4 with DF and this ID, or IPv6 with flow label 0 (the peer
/// sets none); `tos` is the TOS byte or the traffic class.
fn ip_headers(
    src: IpAddr,
    dst: IpAddr,
    id: u16,
    protocol: IpNumber,
    hop_limit: u8,
    tos: u8,
) -> IpHeaders {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let mut ip = Ipv4Header::new(0, hop_limit, protocol, src.octets(), dst.octets())
                .expect("a zero payload length fits");
            ip.identification = id;
            ip.dont_fragment = true;
            ip.dscp = etherparse::IpDscp::try_new(tos >> 2).expect("six bits");
            ip.ecn = etherparse::IpEcn::try_new(tos & 3).expect("two bits");
            IpHeaders::Ipv4(ip, Ipv4Extensions::default())
        }
        (src, dst) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            };
            IpHeaders::Ipv6(
                Ipv6Header {
                    traffic_class: tos,
                    flow_label: Ipv6FlowLabel::ZERO,
                    payload_length: 0,
                    next_header: protocol,
                    hop_limit,
                    source: v6(src).octets(),
                    destination: v6(dst).octets(),
                },
                Ipv6Extensions::default(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::tcp_options::TcpOption;
    use crate::observe::decode::{decode, Body, L4};

    fn synack() -> Segment {
        Segment {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_ip: Ipv4Addr::new(198, 18, 0, 2).into(),
            dst_ip: Ipv4Addr::new(198, 18, 0, 1).into(),
            ip_id: 7,
            sport: 80,
            dport: 40000,
            seq: 5000,
            ack: 1001,
            flags: flags::SYN | flags::ACK | flags::ECE,
            window: 65535,
            options: vec![2, 4, 5, 0xb4, 3, 3, 7],
            payload_len: 3,
        }
    }

    #[test]
    fn a_built_segment_decodes_to_what_was_meant() {
        let frame = decode(&tcp(&synack()));
        let Body::Ipv4(ip) = frame.body else {
            panic!("{frame:?}")
        };
        assert!(ip.checksum_ok && ip.df);
        assert_eq!((ip.id, ip.ttl), (7, PEER_TTL));
        let L4::Tcp(t) = ip.l4 else { panic!() };
        assert!(t.checksum_ok);
        assert_eq!(
            (t.seq, t.ack, t.window, t.payload_len),
            (5000, 1001, 65535, 3)
        );
        assert_eq!(t.flags, flags::SYN | flags::ACK | flags::ECE);
        assert_eq!(
            t.options,
            vec![
                TcpOption::Mss { value: 1460 },
                TcpOption::Wscale { shift: 7 },
                TcpOption::Eol
            ]
        );
    }

    #[test]
    fn a_segment_carries_the_tos_byte_it_was_given() {
        for tos in [0x00, 0x29, 0xff] {
            let frame = decode(&tcp_with_tos(&synack(), tos));
            let Body::Ipv4(ip) = frame.body else {
                panic!("{frame:?}")
            };
            assert_eq!(ip.tos, tos);
            assert!(ip.checksum_ok);
        }
        let Body::Ipv4(ip) = decode(&tcp(&synack())).body else {
            panic!()
        };
        assert_eq!(ip.tos, 0);
    }

    #[test]
    fn an_icmp_error_quotes_the_segment() {
        let syn = tcp(&synack());
        let icmp = icmp_error(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(198, 18, 0, 2).into(),
            Ipv4Addr::new(198, 18, 0, 1).into(),
            1,
            3,
            3,
            [0; 4],
            &syn[14..],
        );
        let Body::Ipv4(ip) = decode(&icmp).body else {
            panic!()
        };
        let L4::Icmp(i) = ip.l4 else { panic!() };
        assert!(i.checksum_ok);
        assert_eq!((i.icmp_type, i.code), (3, 3));
        assert_eq!(i.quoted.unwrap().seq, 5000);
    }

    #[test]
    fn an_arp_reply_answers_the_request() {
        let request = ArpFields {
            op: 1,
            sender_mac: [2, 0, 0, 0, 0, 1],
            sender_ip: Ipv4Addr::new(198, 18, 0, 1),
            target_mac: [0; 6],
            target_ip: Ipv4Addr::new(198, 18, 0, 2),
        };
        let reply = decode(&arp_reply(
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(198, 18, 0, 2),
            &request,
        ));
        let Body::Arp(a) = reply.body else { panic!() };
        assert_eq!(
            (a.op, a.sender_ip, a.target_mac),
            (2, request.target_ip, request.sender_mac)
        );
    }
}
