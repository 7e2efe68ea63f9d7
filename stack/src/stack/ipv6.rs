//! The IPv6 side of the stack: `inet6_bind`, `tcp_v6_connect`, IPv6 output of a
//! connection's segments and of the control socket's, IPv6 input, and ICMPv6 errors
//! (`tcp_v6_err`). Everything TCP does past these is the family-blind `tcp` module.

use super::{ConnectRoute, Stack};
use crate::errno::Errno;
use crate::flowlabel::make_flowlabel;
use crate::neigh::Pending;
use crate::rand::siphash;
use crate::route6::is_link_local;
use crate::socket::{
    Domain, SockAddr, Socket, AF_INET6, SIN6_LEN_RFC2133, SOCKADDR_IN6_LEN, SOCKADDR_STORAGE_LEN,
};
use crate::tcp::{icmpv6_error, State};
use crate::time::Instant;
use crate::wire::icmpv6::{types, unreach};
use crate::wire::ipv6::MIN_MTU;
use crate::wire::ndisc::{solicited_node, ALL_NODES};
use crate::wire::{
    EthernetAddress, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, TcpRepr,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `rx_opt.mss_clamp` as `tcp_v6_connect` sets it: `IPV6_MIN_MTU − 20 − 40`.
const V6_MSS_CLAMP: u32 = MIN_MTU - 20 - 40;

/// An address of socket `s` as `getsockname`/`getpeername` write it: as is for an
/// AF_INET socket; for an AF_INET6 one in IPv6 form (`::ffff:a.b.c.d` for IPv4), with
/// the bound interface as the scope id of a link-local address (`inet6_getname`).
pub(super) fn in_domain(s: &Socket, ip: IpAddr, port: u16) -> SocketAddr {
    match (s.domain, ip) {
        (Domain::Inet, _) => SocketAddr::new(ip, port),
        (Domain::Inet6, IpAddr::V4(a)) => {
            SocketAddr::V6(SocketAddrV6::new(a.to_ipv6_mapped(), port, 0, 0))
        }
        (Domain::Inet6, IpAddr::V6(a)) => {
            let scope = if is_link_local(a) { s.bound_dev_if } else { 0 };
            SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope))
        }
    }
}

impl Stack {
    /// Mirrors `inet6_bind_sk` → `__inet6_bind` (net/ipv6/af_inet6.c): length and family
    /// first, then a multicast address (EINVAL), a socket already bound or not closed
    /// (EINVAL), a v4-mapped address on a v6-only socket (EINVAL), a link-local address
    /// without an interface (EINVAL), an address not ours (EADDRNOTAVAIL). A specific
    /// IPv6 address makes the socket v6-only.
    pub(super) fn inet6_bind(&mut self, idx: usize, addr: &SockAddr) -> Result<(), Errno> {
        if addr.len() > SOCKADDR_STORAGE_LEN || addr.len() < SIN6_LEN_RFC2133 {
            return Err(Errno::EINVAL);
        }
        if addr.family() != Some(AF_INET6) {
            return Err(Errno::EAFNOSUPPORT);
        }
        let a = addr.inet6_addr().ok_or(Errno::EINVAL)?;
        let ip = *a.ip();
        if ip.is_multicast() {
            return Err(Errno::EINVAL);
        }
        let s = self.sk(idx);
        if s.tcb.state() != State::Closed || s.local_port.is_some() {
            return Err(Errno::EINVAL);
        }
        let bound: Option<IpAddr> = match ip.to_ipv4_mapped() {
            Some(v4) => {
                if s.v6only {
                    return Err(Errno::EINVAL);
                }
                if !v4.is_unspecified() && !self.routes.is_local(v4) {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                (!v4.is_unspecified()).then_some(IpAddr::V4(v4))
            }
            None if ip.is_unspecified() => None,
            None => {
                if is_link_local(ip) {
                    if addr.len() >= SOCKADDR_IN6_LEN && a.scope_id() != 0 {
                        s.bound_dev_if = a.scope_id();
                    }
                    if s.bound_dev_if == 0 {
                        return Err(Errno::EINVAL);
                    }
                }
                if !self.routes.is_local6(ip) {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                Some(IpAddr::V6(ip))
            }
        };
        let no_port = self.sk(idx).bind_address_no_port;
        let table_addr = bound.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let port = self
            .ports
            .bind(&self.cfg, &mut self.rng, idx, table_addr, a.port(), no_port)?;
        let s = self.sk(idx);
        if matches!(bound, Some(IpAddr::V6(_))) {
            s.v6only = true;
        }
        s.bound_addr = bound;
        s.local_addr = bound;
        s.bound_port = port;
        s.local_port = port;
        s.bindport_lock = a.port() != 0;
        Ok(())
    }

    /// Mirrors `tcp_v6_connect` (net/ipv6/tcp_ipv6.c) in its order: a `sockaddr_in6`
    /// shorter than `SIN6_LEN_RFC2133` → EINVAL, another family → EAFNOSUPPORT;
    /// `sin6_flowinfo` is ignored (no `IPV6_FLOWINFO_SEND`); `::` means loopback (`::1`,
    /// or 127.0.0.1 for a socket bound to a v4-mapped address); multicast → ENETUNREACH;
    /// link-local without a scope id or bound interface → EINVAL; v4-mapped →
    /// ENETUNREACH on a v6-only socket, else `tcp_v4_connect` (an IPv4 SYN, the socket
    /// stays AF_INET6). Otherwise the route (`ip6_dst_lookup_flow`; a socket bound to a
    /// v4-mapped address then gets EAFNOSUPPORT), `mss_clamp` 1220, and
    /// what IPv4 shares: the port, ISN, timestamp offset, `sk_set_txhash`, `tcp_connect`.
    pub(super) fn tcp_v6_connect(
        &mut self,
        now: Instant,
        idx: usize,
        addr: &SockAddr,
    ) -> Result<(), Errno> {
        if addr.len() < SIN6_LEN_RFC2133 {
            return Err(Errno::EINVAL);
        }
        if addr.family() != Some(AF_INET6) {
            return Err(Errno::EAFNOSUPPORT);
        }
        let a = addr.inet6_addr().ok_or(Errno::EINVAL)?;
        let s = self.sk(idx);
        let mut daddr = *a.ip();
        if daddr.is_unspecified() {
            daddr = match s.bound_addr {
                Some(IpAddr::V4(_)) => Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
                _ => Ipv6Addr::LOCALHOST,
            };
        }
        if daddr.is_multicast() {
            return Err(Errno::ENETUNREACH);
        }
        if is_link_local(daddr) {
            if addr.len() >= SOCKADDR_IN6_LEN && a.scope_id() != 0 {
                // sk_dev_equal_l3scope: a socket bound to an interface keeps it.
                if s.bound_dev_if != 0 && s.bound_dev_if != a.scope_id() {
                    return Err(Errno::EINVAL);
                }
                s.bound_dev_if = a.scope_id();
            }
            if s.bound_dev_if == 0 {
                return Err(Errno::EINVAL);
            }
        }
        if let Some(v4) = daddr.to_ipv4_mapped() {
            if s.v6only {
                return Err(Errno::ENETUNREACH);
            }
            let sin = SockAddr::inet(SocketAddrV4::new(v4, a.port()));
            return self.tcp_v4_connect(now, idx, &sin);
        }
        let oif = s.bound_dev_if;
        let (bound, mapped_source) = match s.bound_addr {
            Some(IpAddr::V6(b)) => (Some(b), false),
            Some(IpAddr::V4(_)) => (None, true),
            None => (None, false),
        };
        let rt = self.routes.lookup6(daddr, bound, oif)?;
        // ip6_dst_lookup_tail: a v4-mapped source towards a real IPv6 destination.
        if mapped_source {
            return Err(Errno::EAFNOSUPPORT);
        }
        self.finish_connect_setup(
            now,
            idx,
            ConnectRoute {
                saddr: IpAddr::V6(rt.src),
                daddr: IpAddr::V6(daddr),
                dport: a.port(),
                mtu: rt.mtu,
                advmss: rt.advmss,
                next_hop: rt.next_hop.map(IpAddr::V6),
                hoplimit: rt.hoplimit,
                window: None,
                initrwnd: None,
                ecn: false,
                ext_hdr_len: 0,
                net_header_len: 40,
                mss_clamp: V6_MSS_CLAMP,
            },
        )
    }

    /// `inet6_csk_xmit` → `ip6_xmit` for a connection's segment: traffic class from
    /// `IPV6_TCLASS` (with ECT(0) on new data once ECN is on), hop limit from
    /// `IPV6_UNICAST_HOPS`, the route's metric or `hop_limit`, and the flow label
    /// `ip6_make_flowlabel` makes from `sk_txhash`.
    pub(super) fn emit_segment_v6(&mut self, now: Instant, idx: usize, repr: &TcpRepr, ect: bool) {
        let cfg_hops = self.cfg.ipv6_hop_limit;
        let s = self.sk(idx);
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (s.tcb.local.ip(), s.tcb.remote.ip()) else {
            return;
        };
        s.tos_ect = ect;
        let (txhash, next_hop) = (s.tcb.txhash, s.next_hop);
        let tcp = repr.to_bytes(src, dst);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            traffic_class: s.tclass | if ect { 0b10 } else { 0 },
            flow_label: 0,
            hop_limit: s.unicast_hops.or(s.route_ttl).unwrap_or(cfg_hops),
            payload_len: tcp.len(),
        };
        let ip = Ipv6Repr {
            flow_label: make_flowlabel(&self.cfg, txhash),
            ..ip
        };
        self.ip_output(now, next_hop, ip.build(&tcp), Some(idx));
    }

    /// `tcp_v6_send_response` from the per-netns control socket: the hop limit of the
    /// route or `hop_limit`, and the flow label from the answered socket's `sk_txhash`,
    /// or from the flow's hash when no socket answers (`skb_get_hash_flowi6`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit_control_v6(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        repr: &TcpRepr,
        tclass: u8,
        hops: Option<u8>,
        txhash: Option<u32>,
    ) {
        let Ok(rt) = self.routes.lookup6(dst, Some(src), 0) else {
            return;
        };
        let hash = txhash.unwrap_or_else(|| {
            let d = super::four_tuple_bytes(src.into(), dst.into(), repr.src_port, repr.dst_port);
            siphash(self.flow_key, &d) as u32
        });
        let tcp = repr.to_bytes(src, dst);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            traffic_class: tclass,
            flow_label: make_flowlabel(&self.cfg, hash),
            hop_limit: hops.or(rt.hoplimit).unwrap_or(self.cfg.ipv6_hop_limit),
            payload_len: tcp.len(),
        };
        self.ip_output(now, rt.next_hop.map(IpAddr::V6), ip.build(&tcp), None);
    }

    /// Whether `mac` is a multicast group the interface listens to: all-nodes and the
    /// solicited-node groups of its addresses (`ipv6_dev_mc_inc` in `addrconf`).
    pub(super) fn joined_multicast_mac(&self, mac: EthernetAddress) -> bool {
        self.joined_groups()
            .into_iter()
            .any(|g| EthernetAddress::from_ipv6_multicast(g) == mac)
    }

    /// The multicast groups the interface joined: none without IPv6.
    fn joined_groups(&self) -> Vec<Ipv6Addr> {
        match self.routes.ipv6() {
            Some(cidr) => [Some(cidr.addr), self.routes.ipv6_link_local()]
                .into_iter()
                .flatten()
                .map(solicited_node)
                .chain([ALL_NODES])
                .collect(),
            None => Vec::new(),
        }
    }

    /// `ipv6_rcv` → `ip6_input`: TCP to our unicast addresses (`::1` only from `lo`),
    /// ICMPv6 to those and to the groups we joined; extension headers and other protocols
    /// are ignored. Malformed packets are counted and dropped.
    pub(super) fn ipv6_input(
        &mut self,
        now: Instant,
        eth_src: EthernetAddress,
        payload: &[u8],
        from_lo: bool,
    ) {
        let Ok(p) = Ipv6Packet::new_checked(payload) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let Ok(ip) = Ipv6Repr::parse(&p) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let (src, dst) = (ip.src_addr, ip.dst_addr);
        let unicast = self.routes.is_own6(dst) || (from_lo && self.routes.is_local6(dst));
        match ip.next_header {
            IpProtocol::Tcp if unicast => {
                self.tcp_segment_input(now, src.into(), dst.into(), ip.traffic_class, p.payload())
            }
            IpProtocol::Icmpv6 if unicast || self.joined_groups().contains(&dst) => {
                let Ok(icmp) = Icmpv6Packet::new_checked(p.payload())
                    .and_then(|i| Icmpv6Repr::parse(&i, src, dst))
                else {
                    self.stats.rx_malformed += 1;
                    return;
                };
                match icmp.msg_type {
                    types::NEIGHBOUR_SOLICITATION | types::NEIGHBOUR_ADVERTISEMENT => {
                        self.ndisc_input(eth_src, &ip, &icmp)
                    }
                    t if t & 0x80 == 0 => self.icmpv6_err_input(&icmp),
                    _ => self.stats.rx_ignored += 1,
                }
            }
            _ => self.stats.rx_ignored += 1,
        }
    }

    /// `icmpv6_notify` → `tcp_v6_err`: the quoted IPv6 header (its next header must be
    /// TCP: extension headers are not walked) and 8 bytes of TCP select the socket by
    /// `__inet6_lookup_established` and the sequence number to check.
    pub(super) fn icmpv6_err_input(&mut self, icmp: &Icmpv6Repr) {
        let d = &icmp.data;
        if d.len() < 48 || d[6] != 6 {
            self.stats.rx_ignored += 1;
            return;
        }
        let addr = |r: std::ops::Range<usize>| {
            <[u8; 16]>::try_from(&d[r]).map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from)
        };
        let (qsrc, qdst) = (addr(8..24), addr(24..40));
        let t = &d[40..48];
        let sport = u16::from_be_bytes([t[0], t[1]]);
        let dport = u16::from_be_bytes([t[2], t[3]]);
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let Some(kind) = icmpv6_error(icmp.msg_type, icmp.code, icmp.rest) else {
            self.stats.rx_ignored += 1;
            return;
        };
        let local = SocketAddr::from((qsrc, sport));
        let Some(idx) = self.find_socket(local, SocketAddr::from((qdst, dport))) else {
            self.stats.rx_ignored += 1;
            return;
        };
        self.sk(idx).tcb.icmpv6_error(seq, kind);
        self.after_event(idx);
    }

    /// `ndisc_error_report` for packets whose next hop never answered: each gets an
    /// ICMPv6 address-unreachable (`icmpv6_send(skb, ICMPV6_DEST_UNREACH,
    /// ICMPV6_ADDR_UNREACH)`), delivered locally, so a connect fails with EHOSTUNREACH.
    pub(super) fn ndisc_error_report(&mut self, pending: Vec<Pending>) {
        for p in pending {
            let quoted = &p.packet[..p.packet.len().min(48)];
            let icmp = Icmpv6Repr::dest_unreachable(unreach::ADDR_UNREACH, quoted);
            self.icmpv6_err_input(&icmp);
        }
    }
}
