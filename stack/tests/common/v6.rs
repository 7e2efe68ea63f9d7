//! An IPv6 peer on the virtual wire: it answers neighbour solicitations for its
//! address, and sends TCP segments and ICMPv6 errors, at the simulation's virtual time.

use super::{LOCAL_IP, LOCAL_MAC, PEER_IP, PEER_MAC};
use std::net::{Ipv6Addr, SocketAddrV6};
use tcptwin_stack::wire::ethernet::build_frame;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

pub const LOCAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
pub const PEER_PORT: u16 = 8080;

pub fn peer6() -> SockAddr {
    SockAddr::inet6(SocketAddrV6::new(PEER6, PEER_PORT, 0, 0))
}

/// A frame the stack sent, decoded (checksums verified).
#[derive(Debug, Clone)]
pub enum Frame6 {
    /// A neighbour discovery message, with its Ethernet destination.
    Ndisc {
        eth_dst: EthernetAddress,
        ip: Ipv6Repr,
        msg: NdiscRepr,
    },
    /// TCP over IPv6, with its Ethernet destination.
    Tcp {
        eth_dst: EthernetAddress,
        ip: Ipv6Repr,
        tcp: TcpRepr,
    },
    /// TCP over IPv4 (a v4-mapped connection).
    Tcp4 {
        ip: Ipv4Repr,
        tcp: TcpRepr,
    },
    Arp(ArpRepr),
}

impl Frame6 {
    pub fn tcp(&self) -> &TcpRepr {
        match self {
            Frame6::Tcp { tcp, .. } | Frame6::Tcp4 { tcp, .. } => tcp,
            f => panic!("not TCP: {f:?}"),
        }
    }
    pub fn ip6(&self) -> &Ipv6Repr {
        match self {
            Frame6::Tcp { ip, .. } | Frame6::Ndisc { ip, .. } => ip,
            f => panic!("not IPv6: {f:?}"),
        }
    }
}

pub fn decode6(bytes: &[u8]) -> Frame6 {
    let eth = EthernetFrame::new_checked(bytes).expect("ethernet");
    let r = EthernetRepr::parse(&eth).unwrap();
    assert_eq!(r.src_addr, LOCAL_MAC);
    match r.ethertype {
        EtherType::Ipv6 => {
            let p = Ipv6Packet::new_checked(eth.payload()).expect("ipv6 lengths");
            let ip = Ipv6Repr::parse(&p).expect("ipv6 header");
            match ip.next_header {
                IpProtocol::Tcp => {
                    let t = TcpPacket::new_checked(p.payload()).unwrap();
                    let tcp = TcpRepr::parse(&t, ip.src_addr, ip.dst_addr).expect("tcp checksum");
                    Frame6::Tcp {
                        eth_dst: r.dst_addr,
                        ip,
                        tcp,
                    }
                }
                IpProtocol::Icmpv6 => {
                    let i = Icmpv6Packet::new_checked(p.payload()).unwrap();
                    let icmp =
                        Icmpv6Repr::parse(&i, ip.src_addr, ip.dst_addr).expect("icmpv6 checksum");
                    let msg = NdiscRepr::parse(&icmp).expect("ndisc");
                    Frame6::Ndisc {
                        eth_dst: r.dst_addr,
                        ip,
                        msg,
                    }
                }
                other => panic!("unexpected next header {other:?}"),
            }
        }
        EtherType::Ipv4 => {
            let p = Ipv4Packet::new_checked(eth.payload()).unwrap();
            let ip = Ipv4Repr::parse(&p).unwrap();
            let t = TcpPacket::new_checked(p.payload()).unwrap();
            let tcp = TcpRepr::parse(&t, ip.src_addr, ip.dst_addr).expect("tcp checksum");
            Frame6::Tcp4 { ip, tcp }
        }
        EtherType::Arp => {
            Frame6::Arp(ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap())
        }
        other => panic!("unexpected ethertype {other:?}"),
    }
}

/// The stack on a dual-stack interface, a virtual clock, and what it sent.
pub struct Sim6 {
    pub stack: Stack,
    pub now: Instant,
    pub sent: Vec<(Instant, Frame6)>,
    /// Answer solicitations for PEER6 (and ARP requests for PEER_IP).
    pub resolve: bool,
}

impl Sim6 {
    pub fn new(pairs: &[(&str, &str)]) -> Sim6 {
        let cfg = Config::from_pairs(pairs.iter().copied()).unwrap();
        Sim6 {
            // 10.199.0.1/24 and 2001:2::1/64.
            stack: Stack::new(cfg, super::iface(1500), vec![], 42).with_ipv6(LOCAL6, 64),
            now: Instant::ZERO,
            sent: Vec::new(),
            resolve: true,
        }
    }

    /// Collect what the stack sends now, answering solicitations; returns the TCP frames.
    pub fn pump(&mut self) -> Vec<Frame6> {
        let mut new = Vec::new();
        while let Some(b) = self.stack.poll_transmit(self.now) {
            let f = decode6(&b);
            match &f {
                Frame6::Ndisc {
                    msg: NdiscRepr::Solicit { target, .. },
                    ..
                } if self.resolve && *target == PEER6 => self.deliver_na(PEER6, true, true),
                Frame6::Arp(a)
                    if self.resolve
                        && a.operation == ArpOperation::Request
                        && a.target_protocol_addr == PEER_IP =>
                {
                    self.deliver_arp_reply()
                }
                _ => {}
            }
            if matches!(f, Frame6::Tcp { .. } | Frame6::Tcp4 { .. }) {
                new.push(f.clone());
            }
            self.sent.push((self.now, f));
        }
        new
    }

    /// An IPv6 packet from the peer's MAC.
    pub fn deliver_ip6(&mut self, ip: &Ipv6Repr, payload: &[u8]) {
        let eth = EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: LOCAL_MAC,
            ethertype: EtherType::Ipv6,
        };
        let f = build_frame(&eth, &ip.build(payload));
        self.stack.handle_frame(self.now, &f);
    }

    fn header(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProtocol, hop_limit: u8) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            traffic_class: 0,
            flow_label: 0,
            hop_limit,
            payload_len: 0,
        }
    }

    /// A neighbour advertisement for `target` from the peer, unicast to us.
    pub fn deliver_na(&mut self, target: Ipv6Addr, solicited: bool, with_lladdr: bool) {
        let na = NdiscRepr::Advert {
            router: false,
            solicited,
            overrides: true,
            target,
            lladdr: with_lladdr.then_some(PEER_MAC),
        };
        let icmp = na.to_icmpv6().to_bytes(PEER6, LOCAL6);
        let ip = Self::header(PEER6, LOCAL6, IpProtocol::Icmpv6, 255);
        self.deliver_ip6(&ip, &icmp);
    }

    /// A neighbour solicitation from the peer for `target`, to `dst`, with `hop_limit`.
    pub fn deliver_ns(&mut self, target: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) {
        let ns = NdiscRepr::Solicit {
            target,
            lladdr: Some(PEER_MAC),
        };
        let icmp = ns.to_icmpv6().to_bytes(PEER6, dst);
        let ip = Self::header(PEER6, dst, IpProtocol::Icmpv6, hop_limit);
        let eth = EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: if dst.is_multicast() {
                EthernetAddress::from_ipv6_multicast(dst)
            } else {
                LOCAL_MAC
            },
            ethertype: EtherType::Ipv6,
        };
        let f = build_frame(&eth, &ip.build(&icmp));
        self.stack.handle_frame(self.now, &f);
    }

    pub fn deliver_arp_reply(&mut self) {
        let arp = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: PEER_MAC,
            source_protocol_addr: PEER_IP,
            target_hardware_addr: LOCAL_MAC,
            target_protocol_addr: LOCAL_IP,
        };
        let eth = EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: LOCAL_MAC,
            ethertype: EtherType::Arp,
        };
        self.stack
            .handle_frame(self.now, &build_frame(&eth, &arp.to_bytes()));
    }

    /// A TCP segment from the peer over IPv6 (traffic class `tclass`).
    pub fn deliver_tcp(&mut self, seg: &TcpRepr, tclass: u8) {
        let tcp = seg.to_bytes(PEER6, LOCAL6);
        let ip = Ipv6Repr {
            traffic_class: tclass,
            ..Self::header(PEER6, LOCAL6, IpProtocol::Tcp, 64)
        };
        self.deliver_ip6(&ip, &tcp);
    }

    /// An ICMPv6 error from the peer (a router on the path) about `quoted`.
    pub fn deliver_icmpv6(&mut self, icmp: &Icmpv6Repr) {
        let b = icmp.to_bytes(PEER6, LOCAL6);
        let ip = Self::header(PEER6, LOCAL6, IpProtocol::Icmpv6, 64);
        self.deliver_ip6(&ip, &b);
    }

    /// Advance to the next timer and run it.
    pub fn step(&mut self) -> bool {
        match self.stack.poll_timeout() {
            Some(d) => {
                self.now = self.now.max(d);
                self.stack.handle_timeout(self.now);
                self.pump();
                true
            }
            None => false,
        }
    }

    /// Run timers until `t` (inclusive).
    pub fn run_until(&mut self, t: Instant) {
        self.pump();
        while let Some(d) = self.stack.poll_timeout() {
            if d > t {
                break;
            }
            self.now = self.now.max(d);
            self.stack.handle_timeout(self.now);
            self.pump();
        }
        self.now = self.now.max(t);
    }

    /// A nonblocking AF_INET6 socket with `opts`, connecting to `to`: the result of
    /// connect() and the TCP frames sent at once.
    pub fn connect6(
        &mut self,
        opts: Vec<SockOpt>,
        to: &SockAddr,
    ) -> (SocketHandle, Connect, Vec<Frame6>) {
        let h = self.stack.socket_in(Domain::Inet6);
        self.stack
            .setsockopt(self.now, h, SockOpt::NonBlocking(true))
            .unwrap();
        for o in opts {
            self.stack.setsockopt(self.now, h, o).unwrap();
        }
        let r = self.stack.connect(self.now, h, to);
        let f = self.pump();
        (h, r, f)
    }

    /// As [`Sim6::connect6`] to PEER6, expecting EINPROGRESS and one SYN.
    pub fn connect_nb(&mut self, opts: Vec<SockOpt>) -> (SocketHandle, Frame6) {
        let (h, r, f) = self.connect6(opts, &peer6());
        assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
        assert_eq!(f.len(), 1, "one SYN: {f:?}");
        (h, f[0].clone())
    }

    /// The IPv6 TCP frames sent so far, with their times.
    pub fn tcp_sent(&self) -> Vec<(Instant, Frame6)> {
        self.sent
            .iter()
            .filter(|(_, f)| matches!(f, Frame6::Tcp { .. } | Frame6::Tcp4 { .. }))
            .cloned()
            .collect()
    }

    /// The neighbour solicitations sent so far, with their times.
    pub fn ns_sent(&self) -> Vec<(Instant, Frame6)> {
        self.sent
            .iter()
            .filter(|(_, f)| {
                matches!(
                    f,
                    Frame6::Ndisc {
                        msg: NdiscRepr::Solicit { .. },
                        ..
                    }
                )
            })
            .cloned()
            .collect()
    }
}
