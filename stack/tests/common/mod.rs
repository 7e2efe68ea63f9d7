//! A simulated peer on a virtual wire for in-memory tests of the core.
#![allow(dead_code)]

pub mod v6;

use std::net::{Ipv4Addr, SocketAddrV4};
use tcptwin_stack::wire::ethernet::build_frame;
use tcptwin_stack::wire::*;
use tcptwin_stack::*;

pub const LOCAL_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 2);
pub const PEER_PORT: u16 = 8080;
pub const PEER: SocketAddrV4 = SocketAddrV4::new(PEER_IP, PEER_PORT);

/// A frame the stack sent, decoded.
#[derive(Debug, Clone)]
pub enum Frame {
    Arp(ArpRepr),
    Tcp { ip: Ipv4Repr, tcp: TcpRepr },
    Other(Vec<u8>),
}

impl Frame {
    pub fn tcp(&self) -> &TcpRepr {
        match self {
            Frame::Tcp { tcp, .. } => tcp,
            f => panic!("not TCP: {f:?}"),
        }
    }
    pub fn ip(&self) -> &Ipv4Repr {
        match self {
            Frame::Tcp { ip, .. } => ip,
            f => panic!("not TCP: {f:?}"),
        }
    }
}

/// Decode a frame the stack emitted; panics if it does not parse (checksums included).
pub fn decode(bytes: &[u8]) -> Frame {
    let eth = EthernetFrame::new_checked(bytes).expect("ethernet");
    let r = EthernetRepr::parse(&eth).unwrap();
    assert_eq!(r.src_addr, LOCAL_MAC);
    match r.ethertype {
        EtherType::Arp => {
            Frame::Arp(ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap())
        }
        EtherType::Ipv4 => {
            let p = Ipv4Packet::new_checked(eth.payload()).expect("ipv4 lengths");
            let ip = Ipv4Repr::parse(&p).expect("ipv4 header + checksum");
            assert_eq!(ip.protocol, IpProtocol::Tcp);
            let t = TcpPacket::new_checked(p.payload()).unwrap();
            // The pseudo-header uses the final destination.
            let tcp = TcpRepr::parse(&t, ip.src_addr, PEER_IP).expect("tcp checksum");
            Frame::Tcp { ip, tcp }
        }
        _ => Frame::Other(bytes.to_vec()),
    }
}

pub fn iface(mtu: u32) -> Interface {
    Interface {
        mac: LOCAL_MAC,
        addr: Some(LOCAL_IP),
        prefix_len: 24,
        mtu,
    }
}

/// The stack plus a virtual clock and a record of everything it sent.
pub struct Sim {
    pub stack: Stack,
    pub now: Instant,
    pub sent: Vec<(Instant, Frame)>,
    /// Answer ARP requests for PEER_IP.
    pub arp_reply: bool,
}

impl Sim {
    pub fn new(pairs: &[(&str, &str)]) -> Sim {
        Sim::with(pairs, 1500, vec![])
    }

    pub fn with(pairs: &[(&str, &str)], mtu: u32, routes: Vec<Route>) -> Sim {
        let cfg = Config::from_pairs(pairs.iter().copied()).unwrap();
        Sim {
            stack: Stack::new(cfg, iface(mtu), routes, 42),
            now: Instant::ZERO,
            sent: Vec::new(),
            arp_reply: true,
        }
    }

    /// Collect what the stack sends now; answer ARP if enabled. Returns the new TCP frames.
    pub fn pump(&mut self) -> Vec<Frame> {
        let mut new = Vec::new();
        while let Some(b) = self.stack.poll_transmit(self.now) {
            let f = decode(&b);
            if let Frame::Arp(a) = &f {
                if self.arp_reply
                    && a.operation == ArpOperation::Request
                    && a.target_protocol_addr == PEER_IP
                {
                    self.deliver_arp_reply();
                }
            }
            if matches!(f, Frame::Tcp { .. }) {
                new.push(f.clone());
            }
            self.sent.push((self.now, f));
        }
        new
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
        let f = build_frame(&eth, &arp.to_bytes());
        self.stack.handle_frame(self.now, &f);
    }

    /// Run timers until `t` (inclusive), collecting frames with their times.
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

    pub fn tcp_sent(&self) -> Vec<(Instant, TcpRepr)> {
        self.sent
            .iter()
            .filter_map(|(t, f)| match f {
                Frame::Tcp { tcp, .. } => Some((*t, tcp.clone())),
                _ => None,
            })
            .collect()
    }

    /// Deliver a TCP segment from the peer (with `tos`).
    pub fn deliver_tcp(&mut self, seg: &TcpRepr, tos: u8) {
        let tcp = seg.to_bytes(PEER_IP, LOCAL_IP);
        let ip = Ipv4Repr {
            src_addr: PEER_IP,
            dst_addr: LOCAL_IP,
            protocol: IpProtocol::Tcp,
            tos,
            ident: 0x4242,
            dont_frag: true,
            ttl: 64,
            options: vec![],
            payload_len: tcp.len(),
        };
        self.deliver_ip(&ip.build(&tcp));
    }

    pub fn deliver_ip(&mut self, packet: &[u8]) {
        let eth = EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: LOCAL_MAC,
            ethertype: EtherType::Ipv4,
        };
        let f = build_frame(&eth, packet);
        self.stack.handle_frame(self.now, &f);
    }

    /// Deliver an ICMP error from `from` quoting `quoted` (the IP header + 8 bytes of TCP).
    pub fn deliver_icmp(&mut self, icmp_type: u8, code: u8, rest: [u8; 4], quoted: &[u8]) {
        let icmp = IcmpRepr {
            msg_type: icmp_type,
            code,
            rest,
            data: quoted.to_vec(),
        };
        let body = icmp.to_bytes();
        let ip = Ipv4Repr {
            src_addr: PEER_IP,
            dst_addr: LOCAL_IP,
            protocol: IpProtocol::Icmp,
            tos: 0xc0,
            ident: 1,
            dont_frag: false,
            ttl: 64,
            options: vec![],
            payload_len: body.len(),
        };
        self.deliver_ip(&ip.build(&body));
    }

    /// A nonblocking socket with `opts`, connected to PEER; returns the handle and the SYN.
    pub fn connect_nb(&mut self, opts: Vec<SockOpt>) -> (SocketHandle, Frame) {
        let h = self.stack.socket();
        self.stack
            .setsockopt(self.now, h, SockOpt::NonBlocking(true))
            .unwrap();
        for o in opts {
            self.stack.setsockopt(self.now, h, o).unwrap();
        }
        let r = self.stack.connect(self.now, h, &SockAddr::inet(PEER));
        assert_eq!(r, Connect::Done(Err(Errno::EINPROGRESS)));
        let f = self.pump();
        assert_eq!(f.len(), 1, "one SYN");
        (h, f[0].clone())
    }
}

/// The peer's SYN-ACK for `syn` with `options` and `window`.
pub fn synack(syn: &TcpRepr, peer_isn: u32, window: u16, options: Vec<TcpOption>) -> TcpRepr {
    TcpRepr {
        src_port: syn.dst_port,
        dst_port: syn.src_port,
        seq: peer_isn,
        ack: syn.seq.wrapping_add(1),
        flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
        window,
        urgent: 0,
        options,
        payload: vec![],
    }
}

/// Linux's default SYN-ACK options (mss 1460, sackOK, TS, wscale 7).
pub fn linux_synack_options(tsval: u32, tsecr: u32) -> Vec<TcpOption> {
    vec![
        TcpOption::Mss(1460),
        TcpOption::SackPermitted,
        TcpOption::Timestamps { tsval, tsecr },
        TcpOption::Nop,
        TcpOption::WindowScale(7),
    ]
}

/// The option bytes of a segment as emitted.
pub fn option_bytes(t: &TcpRepr) -> Vec<u8> {
    let b = t.to_bytes(LOCAL_IP, PEER_IP);
    b[20..t.header_len()].to_vec()
}

/// Says why a test cannot run on this host, for it to return; where `CI` is set, fails
/// instead: a CI machine is set up to run every test, and a test that skipped there would
/// pass while checking nothing.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot run here, and CI is set (a CI machine runs every test): {why}"
    );
    eprintln!("SKIPPED: {why}");
}
