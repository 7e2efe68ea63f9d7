//! Captured Ethernet frames decoded into typed fields (etherparse underneath).
//!
//! Decoding never fails: what cannot be read is kept as `Malformed` with the reason, so a
//! broken frame shows up in the trace instead of vanishing. Checksums are verified here
//! (offloads are off, so every frame on the veth carries a real one).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use serde::Serialize;

use crate::linux::tcp_options::{self, TcpOption};

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub len: usize,
    pub body: Body,
}

impl Decoded {
    /// The TCP segment the frame carries, over IPv4 or IPv6.
    pub fn tcp(&self) -> Option<&TcpFields> {
        match &self.body {
            Body::Ipv4(Ipv4Fields {
                l4: L4::Tcp(tcp), ..
            })
            | Body::Ipv6(Ipv6Fields {
                l4: L4::Tcp(tcp), ..
            }) => Some(tcp),
            _ => None,
        }
    }

    /// The IPv4 header's ID (an IPv6 packet has none).
    pub fn ipv4_id(&self) -> Option<u16> {
        match &self.body {
            Body::Ipv4(ip) => Some(ip.id),
            _ => None,
        }
    }
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    Arp(ArpFields),
    Ipv4(Ipv4Fields),
    Ipv6(Ipv6Fields),
    Other { ethertype: u16 },
    Malformed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArpFields {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ipv4Fields {
    pub ihl: u8,
    pub tos: u8,
    pub total_len: u16,
    pub id: u16,
    pub df: bool,
    pub ttl: u8,
    pub protocol: u8,
    pub checksum_ok: bool,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub options: Vec<u8>,
    pub l4: L4,
}

/// An IPv6 header (extension headers are not followed: a packet with one shows its
/// `next_header` and `L4::Other`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ipv6Fields {
    pub tclass: u8,
    /// The 20-bit flow label.
    pub flow_label: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub l4: L4,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "proto", rename_all = "snake_case")]
pub enum L4 {
    Tcp(TcpFields),
    Icmp(IcmpFields),
    Icmpv6(Icmpv6Fields),
    Other { payload_len: usize },
    Malformed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpFields {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// The 9 flag bits (NS..FIN) as on the wire.
    pub flags: u16,
    pub window: u16,
    pub urg_ptr: u16,
    pub doff: u8,
    pub options: Vec<TcpOption>,
    pub payload_len: usize,
    pub checksum_ok: bool,
}

/// TCP flag bits (RFC 9293, RFC 3168).
pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const AE: u16 = 0x100;
}

impl TcpFields {
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IcmpFields {
    pub icmp_type: u8,
    pub code: u8,
    /// Bytes 4..8 of the ICMP header (next-hop MTU for frag-needed).
    pub rest: [u8; 4],
    pub checksum_ok: bool,
    /// The quoted segment, when it is IPv4 + at least 8 bytes of TCP.
    pub quoted: Option<Quoted>,
}

/// An ICMPv6 message: an error quoting a packet, or neighbour discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Icmpv6Fields {
    pub icmp_type: u8,
    pub code: u8,
    /// Bytes 4..8 of the header (the MTU of a Packet Too Big, an NA's flags).
    pub rest: [u8; 4],
    /// Verified over the IPv6 pseudo-header.
    pub checksum_ok: bool,
    /// A neighbour solicitation's or advertisement's target address.
    pub target: Option<Ipv6Addr>,
    /// The link-layer address option of an NS (source) or NA (target), RFC 4861 §4.6.1.
    pub lladdr: Option<[u8; 6]>,
    /// An error's quoted segment, when it is IPv6 + at least 8 bytes of TCP.
    pub quoted: Option<Quoted>,
}

/// ICMPv6 message types (RFC 4443, RFC 4861).
pub mod icmpv6 {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const NEIGHBOUR_SOLICITATION: u8 = 135;
    pub const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
}

/// Decodes one Ethernet frame.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mac = |range: std::ops::Range<usize>| -> [u8; 6] {
        bytes
            .get(range)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 6])
    };
    let body = match SlicedPacket::from_ethernet(bytes) {
        Err(e) => Body::Malformed {
            reason: e.to_string(),
        },
        Ok(packet) => match packet.net {
            Some(NetSlice::Arp(arp)) => match arp.to_packet().try_eth_ipv4() {
                Ok(a) => Body::Arp(ArpFields {
                    op: a.operation.0,
                    sender_mac: a.sender_mac,
                    sender_ip: Ipv4Addr::from(a.sender_ipv4),
                    target_mac: a.target_mac,
                    target_ip: Ipv4Addr::from(a.target_ipv4),
                }),
                Err(e) => Body::Malformed {
                    reason: format!("ARP: {e}"),
                },
            },
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                let header = h.to_header();
                let l4 = match packet.transport {
                    Some(TransportSlice::Tcp(tcp)) => {
                        let destination =
                            pseudo_header_destination(h.options(), h.destination_addr());
                        let checksum_ok = tcp
                            .to_header()
                            .calc_checksum_ipv4_raw(
                                header.source,
                                destination.octets(),
                                tcp.payload(),
                            )
                            .is_ok_and(|c| same_checksum(c, tcp.checksum()));
                        L4::Tcp(tcp_fields(&tcp, checksum_ok))
                    }
                    Some(TransportSlice::Icmpv4(icmp)) => {
                        let raw = icmp.slice();
                        L4::Icmp(IcmpFields {
                            icmp_type: raw[0],
                            code: raw[1],
                            rest: [raw[4], raw[5], raw[6], raw[7]],
                            checksum_ok: internet_checksum(raw) == 0,
                            quoted: quoted(icmp.payload()),
                        })
                    }
                    Some(_) => L4::Other {
                        payload_len: ip.payload().payload.len(),
                    },
                    None => L4::Malformed {
                        reason: "transport header cut short".into(),
                    },
                };
                Body::Ipv4(Ipv4Fields {
                    ihl: h.ihl(),
                    tos: bytes.get(15).copied().unwrap_or(0),
                    total_len: h.total_len(),
                    id: h.identification(),
                    df: h.dont_fragment(),
                    ttl: h.ttl(),
                    protocol: h.protocol().0,
                    checksum_ok: header.calc_header_checksum() == h.header_checksum(),
                    src: h.source_addr(),
                    dst: h.destination_addr(),
                    options: h.options().to_vec(),
                    l4,
                })
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                let (src, dst) = (h.source_addr(), h.destination_addr());
                let l4 = match packet.transport {
                    Some(TransportSlice::Tcp(tcp)) => {
                        let checksum_ok = tcp
                            .to_header()
                            .calc_checksum_ipv6_raw(src.octets(), dst.octets(), tcp.payload())
                            .is_ok_and(|c| same_checksum(c, tcp.checksum()));
                        L4::Tcp(tcp_fields(&tcp, checksum_ok))
                    }
                    Some(TransportSlice::Icmpv6(icmp)) => {
                        L4::Icmpv6(icmpv6_fields(icmp.slice(), src, dst))
                    }
                    Some(_) => L4::Other {
                        payload_len: ip.payload().payload.len(),
                    },
                    None => L4::Malformed {
                        reason: "transport header cut short".into(),
                    },
                };
                Body::Ipv6(Ipv6Fields {
                    tclass: h.traffic_class(),
                    flow_label: h.flow_label().value(),
                    payload_len: h.payload_length(),
                    next_header: h.next_header().0,
                    hop_limit: h.hop_limit(),
                    src,
                    dst,
                    l4,
                })
            }
            _ => Body::Other {
                ethertype: packet
                    .link
                    .as_ref()
                    .and_then(|l| l.to_header())
                    .and_then(|l| l.ethernet2().map(|e| e.ether_type.0))
                    .unwrap_or(EtherType(0).0),
            },
        },
    };
    Decoded {
        dst_mac: mac(0..6),
        src_mac: mac(6..12),
        len: bytes.len(),
        body,
    }
}

/// Whether a checksum field holds the computed sum: 0x0000 and 0xffff are the same one's
/// complement zero, and a sum computed as 0 may be written either way (Linux's
/// `csum_fold` after `skb_checksum_help` writes 0xffff, `CSUM_MANGLED_0`).
fn same_checksum(computed: u16, field: u16) -> bool {
    computed == field || (computed == 0 && field == 0xffff) || (computed == 0xffff && field == 0)
}

fn tcp_fields(tcp: &etherparse::TcpSlice<'_>, checksum_ok: bool) -> TcpFields {
    TcpFields {
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: u16::from_be_bytes([tcp.slice()[12], tcp.slice()[13]]) & 0x1ff,
        window: tcp.window_size(),
        urg_ptr: tcp.urgent_pointer(),
        doff: tcp.data_offset(),
        options: tcp_options::parse(tcp.options()),
        payload_len: tcp.payload().len(),
        checksum_ok,
    }
}

/// An ICMPv6 message's fields; `raw` is the whole message (at least its 8-byte header).
fn icmpv6_fields(raw: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Icmpv6Fields {
    let icmp_type = raw[0];
    let body = &raw[8..];
    let neighbour = matches!(
        icmp_type,
        icmpv6::NEIGHBOUR_SOLICITATION | icmpv6::NEIGHBOUR_ADVERTISEMENT
    );
    let target = body
        .get(..16)
        .filter(|_| neighbour)
        .map(|t| Ipv6Addr::from(<[u8; 16]>::try_from(t).expect("16 bytes")));
    // Options follow the target, 8-byte units; kind 1 is the source, 2 the target
    // link-layer address, each 8 bytes long on Ethernet.
    let mut lladdr = None;
    let mut options = body.get(16..).filter(|_| neighbour).unwrap_or(&[]);
    while options.len() >= 8 && options[1] != 0 {
        let len = usize::from(options[1]) * 8;
        if matches!(options[0], 1 | 2) && len == 8 {
            lladdr = Some(<[u8; 6]>::try_from(&options[2..8]).expect("6 bytes"));
        }
        options = options.get(len..).unwrap_or(&[]);
    }
    Icmpv6Fields {
        icmp_type,
        code: raw[1],
        rest: [raw[4], raw[5], raw[6], raw[7]],
        checksum_ok: ipv6_checksum(src, dst, 58, raw) == 0,
        target,
        lladdr,
        quoted: if neighbour { None } else { quoted(body) },
    }
}

/// The RFC 1071 sum of an upper-layer message over the IPv6 pseudo-header (RFC 8200
/// §8.1): 0 when the message's checksum is right.
pub fn ipv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, message: &[u8]) -> u16 {
    let mut all = Vec::with_capacity(40 + message.len());
    all.extend(src.octets());
    all.extend(dst.octets());
    all.extend((message.len() as u32).to_be_bytes());
    all.extend([0, 0, 0, next_header]);
    all.extend(message);
    internet_checksum(&all)
}

/// The destination a TCP checksum's pseudo-header holds: the final one. A source-routed
/// packet (LSRR 131, SSRR 137) is addressed to its next hop while the route still has
/// hops to go (the option's pointer within its length), and its final destination is the
/// route's last address: Linux's `ip_options_build` writes `daddr` there, and
/// `tcp_v4_send_check` sums over `inet_daddr`, the address `connect()` was given (RFC 9293
/// §3.1: the pseudo-header carries the final destination). Otherwise, and for options too
/// short or malformed to hold a route, it is the header's destination.
fn pseudo_header_destination(options: &[u8], header_dst: Ipv4Addr) -> Ipv4Addr {
    const END: u8 = 0;
    const NOP: u8 = 1;
    const LSRR: u8 = 131;
    const SSRR: u8 = 137;
    let mut rest = options;
    while let Some(&kind) = rest.first() {
        match kind {
            END => break,
            NOP => rest = &rest[1..],
            _ => {
                let Some(len) = rest.get(1).map(|l| usize::from(*l)) else {
                    break;
                };
                if len < 2 || len > rest.len() {
                    break;
                }
                let option = &rest[..len];
                if (kind == LSRR || kind == SSRR) && len >= 7 {
                    let pointer = usize::from(option[2]);
                    if pointer <= len {
                        let last = &option[len - 4..];
                        return Ipv4Addr::new(last[0], last[1], last[2], last[3]);
                    }
                }
                rest = &rest[len..];
            }
        }
    }
    header_dst
}

/// The segment an ICMP error quotes: an IPv4 or IPv6 header and the first 8 bytes of TCP.
fn quoted(payload: &[u8]) -> Option<Quoted> {
    let at = |i: usize| [payload[i], payload[i + 1], payload[i + 2], payload[i + 3]];
    let (src, dst, tcp_at) = match payload.first()? >> 4 {
        4 => {
            let ihl = usize::from(payload[0] & 0x0f) * 4;
            if ihl < 20 || payload.len() < ihl + 8 || payload[9] != 6 {
                return None;
            }
            (
                IpAddr::V4(Ipv4Addr::from(at(12))),
                IpAddr::V4(Ipv4Addr::from(at(16))),
                ihl,
            )
        }
        6 => {
            if payload.len() < 48 || payload[6] != 6 {
                return None;
            }
            let addr = |i: usize| {
                IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(&payload[i..i + 16]).expect("16 bytes"),
                ))
            };
            (addr(8), addr(24), 40)
        }
        _ => return None,
    };
    Some(Quoted {
        src,
        dst,
        sport: u16::from_be_bytes([payload[tcp_at], payload[tcp_at + 1]]),
        dport: u16::from_be_bytes([payload[tcp_at + 2], payload[tcp_at + 3]]),
        seq: u32::from_be_bytes(at(tcp_at + 4)),
    })
}

/// The RFC 1071 one's-complement sum, folded and inverted (0 over a message whose checksum
/// field is right).
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_sum_may_be_written_either_way_and_nothing_else_is_taken() {
        assert!(same_checksum(0, 0xffff) && same_checksum(0xffff, 0));
        assert!(same_checksum(0x1234, 0x1234));
        assert!(!same_checksum(0x1234, 0x1235) && !same_checksum(0, 1));
    }

    #[test]
    fn an_ipv6_segment_is_decoded_and_a_bit_flip_fails_its_checksum() {
        let mut bytes = crate::observe::craft::tcp(&crate::observe::craft::Segment {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_ip: "2001:2::2".parse().unwrap(),
            dst_ip: "2001:2::1".parse().unwrap(),
            ip_id: 0,
            sport: 80,
            dport: 40000,
            seq: 5,
            ack: 6,
            flags: flags::ACK,
            window: 100,
            options: vec![],
            payload_len: 3,
        });
        let Body::Ipv6(ip) = decode(&bytes).body else {
            panic!("IPv6")
        };
        assert_eq!((ip.hop_limit, ip.next_header, ip.payload_len), (64, 6, 23));
        assert_eq!(
            decode(&bytes).tcp().map(|t| (t.seq, t.checksum_ok)),
            Some((5, true))
        );
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(decode(&bytes).tcp().map(|t| t.checksum_ok), Some(false));
    }

    /// A Linux 6.18 SYN as captured on the host: 198.18.0.1:33506 → 198.18.0.2:80.
    fn linux_syn() -> Vec<u8> {
        let mut f = vec![
            0x02, 0x74, 0x77, 0, 0, 2, 0x02, 0x74, 0x77, 0, 0, 1, 0x08, 0x00, // ethernet
            0x45, 0x00, 0x00, 0x3c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // ip
            198, 18, 0, 1, 198, 18, 0, 2, //
            0x82, 0xe2, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0, 0, 0, 0, // tcp
            0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, //
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03,
            0x03, 0x0a,
        ];
        let ip_sum = internet_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        let mut pseudo = vec![198, 18, 0, 1, 198, 18, 0, 2, 0, 6, 0, 40];
        pseudo.extend_from_slice(&f[34..]);
        let tcp_sum = internet_checksum(&pseudo);
        f[50..52].copy_from_slice(&tcp_sum.to_be_bytes());
        f
    }

    #[test]
    fn decodes_a_linux_syn_field_by_field() {
        let frame = decode(&linux_syn());
        assert_eq!(frame.src_mac, [0x02, 0x74, 0x77, 0, 0, 1]);
        let Body::Ipv4(ip) = frame.body else {
            panic!("not IPv4: {frame:?}")
        };
        assert!(ip.checksum_ok && ip.df);
        assert_eq!((ip.ttl, ip.tos, ip.id, ip.ihl), (64, 0, 0x1234, 5));
        let L4::Tcp(tcp) = ip.l4 else {
            panic!("not TCP")
        };
        assert!(tcp.checksum_ok, "checksum");
        assert_eq!(
            (tcp.sport, tcp.dport, tcp.seq, tcp.window),
            (33506, 80, 1000, 64240)
        );
        assert_eq!(tcp.flags, flags::SYN);
        assert_eq!(tcp.options[0], TcpOption::Mss { value: 1460 });
        assert_eq!(tcp.options.len(), 5);
    }

    #[test]
    fn a_corrupted_checksum_is_reported() {
        let mut f = linux_syn();
        f[60] ^= 0xff;
        let Body::Ipv4(ip) = decode(&f).body else {
            panic!()
        };
        let L4::Tcp(tcp) = ip.l4 else { panic!() };
        assert!(!tcp.checksum_ok);
    }

    /// A Linux 6.18 SYN as captured on the host with `IP_OPTIONS` "01 83 07 04 c6 12 00 02"
    /// (a loose source route through 198.18.0.2) and `connect(192.0.2.9:80)`: the IP header
    /// goes to the first hop, the option's last slot holds the final destination, and the
    /// TCP checksum is summed over the final destination.
    const LINUX_LSRR_SYN: &str = "0274770000020274770000010800470000441a0540004006c7f6\
        c6120001c612000201830704c0000209d7a0005052d524f200000000a002faf0edbc0000020405b4\
        0402080a6e5b191f000000000103030a";

    fn bytes_of(hex: &str) -> Vec<u8> {
        let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn tcp_checksum_ok(frame: &[u8]) -> bool {
        let Body::Ipv4(ip) = decode(frame).body else {
            panic!("not IPv4")
        };
        let L4::Tcp(tcp) = ip.l4 else {
            panic!("not TCP")
        };
        tcp.checksum_ok
    }

    #[test]
    fn a_source_routed_syn_is_checked_against_its_final_destination() {
        let f = bytes_of(LINUX_LSRR_SYN);
        let Body::Ipv4(ip) = decode(&f).body else {
            panic!("not IPv4")
        };
        assert_eq!(ip.dst, Ipv4Addr::new(198, 18, 0, 2), "the first hop");
        assert_eq!(ip.options, [0x01, 0x83, 0x07, 0x04, 192, 0, 2, 9]);
        assert!(ip.checksum_ok);
        assert!(tcp_checksum_ok(&f), "Linux's checksum over 192.0.2.9");
        // The same SYN with its checksum summed over the header's destination (what a stack
        // that ignored the route would send) is flagged.
        let mut wrong = f.clone();
        let tcp_start = 14 + 28;
        wrong[tcp_start + 16..tcp_start + 18].fill(0);
        let mut pseudo = vec![198, 18, 0, 1, 198, 18, 0, 2, 0, 6, 0, 40];
        pseudo.extend_from_slice(&wrong[tcp_start..]);
        let sum = internet_checksum(&pseudo);
        wrong[tcp_start + 16..tcp_start + 18].copy_from_slice(&sum.to_be_bytes());
        assert!(!tcp_checksum_ok(&wrong));
        // Strict source routing (137) names its final destination the same way.
        let mut strict = f.clone();
        strict[35] = 0x89;
        let ip_sum = {
            strict[24..26].fill(0);
            internet_checksum(&strict[14..42])
        };
        strict[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        assert!(tcp_checksum_ok(&strict));
    }

    #[test]
    fn only_a_route_with_hops_to_go_moves_the_pseudo_header_destination() {
        let hop = Ipv4Addr::new(198, 18, 0, 2);
        let last = Ipv4Addr::new(192, 0, 2, 9);
        let route = |kind: u8, pointer: u8| [1, kind, 7, pointer, 192, 0, 2, 9];
        assert_eq!(pseudo_header_destination(&route(131, 4), hop), last);
        assert_eq!(pseudo_header_destination(&route(137, 4), hop), last);
        // Past its last slot the route is done: the header holds the final destination.
        assert_eq!(pseudo_header_destination(&route(131, 8), hop), hop);
        // Record route (7) holds addresses too, but routes nothing.
        assert_eq!(pseudo_header_destination(&route(7, 4), hop), hop);
        // Cut short, too short, or after END: no route.
        assert_eq!(pseudo_header_destination(&[131, 7, 4, 192, 0], hop), hop);
        assert_eq!(pseudo_header_destination(&[131, 3, 4, 0], hop), hop);
        assert_eq!(
            pseudo_header_destination(&[0, 131, 7, 4, 192, 0, 2, 9], hop),
            hop
        );
        assert_eq!(pseudo_header_destination(&[], hop), hop);
    }

    #[test]
    fn truncated_frames_are_kept_as_malformed() {
        let f = linux_syn();
        for cut in [0, 5, 13, 20, 40] {
            let frame = decode(&f[..cut]);
            let ok = matches!(frame.body, Body::Malformed { .. })
                || matches!(&frame.body, Body::Ipv4(ip) if matches!(ip.l4, L4::Malformed { .. }));
            assert!(ok, "cut at {cut}: {frame:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
