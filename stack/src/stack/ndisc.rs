//! Neighbour discovery on the wire (net/ipv6/ndisc.c): solicitations for next hops the
//! neighbour cache is resolving, advertisements that resolve them, and the answer to a
//! solicitation for one of our addresses. The cache and its timers are [`crate::neigh`].

use super::Stack;
use crate::route6::is_link_local;
use crate::wire::ethernet::build_frame;
use crate::wire::ndisc::{solicited_node, ALL_NODES};
use crate::wire::{
    EtherType, EthernetAddress, EthernetRepr, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr,
    NdiscRepr,
};
use std::net::{IpAddr, Ipv6Addr};

/// The hop limit of every neighbour discovery message, and the only one accepted
/// (`ndisc_rcv`: "invalid hop-limit").
const NDISC_HOP_LIMIT: u8 = 255;

impl Stack {
    /// `ndisc_solicit` for an INCOMPLETE entry → `ndisc_send_ns`: to the solicited-node
    /// group of `target` (Ethernet 33:33:ff:…), from the source of the packet waiting for
    /// it when that is ours, else from the address `ipv6_dev_get_saddr` picks; with our
    /// link-layer address.
    pub(super) fn send_neighbour_solicitation(&mut self, target: Ipv6Addr, waiting: Option<&[u8]>) {
        let iface = *self.interface();
        let Some(cidr) = self.routes.ipv6() else {
            return;
        };
        let waiting_src = waiting
            .and_then(|p| Ipv6Packet::new_checked(p).ok())
            .map(|p| p.src_addr())
            .filter(|a| self.routes.is_own6(*a));
        let src = waiting_src.unwrap_or(match self.routes.ipv6_link_local() {
            Some(ll) if is_link_local(target) => ll,
            _ => cidr.addr,
        });
        let dst = solicited_node(target);
        let ns = NdiscRepr::Solicit {
            target,
            lladdr: Some(iface.mac),
        };
        self.send_ndisc(src, dst, EthernetAddress::from_ipv6_multicast(dst), &ns);
    }

    /// A neighbour discovery message: hop limit 255, traffic class and flow label 0
    /// (`ip6_nd_hdr`).
    fn send_ndisc(&mut self, src: Ipv6Addr, dst: Ipv6Addr, mac: EthernetAddress, msg: &NdiscRepr) {
        let icmp = msg.to_icmpv6().to_bytes(src, dst);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            traffic_class: 0,
            flow_label: 0,
            hop_limit: NDISC_HOP_LIMIT,
            payload_len: icmp.len(),
        };
        let eth = EthernetRepr {
            src_addr: self.interface().mac,
            dst_addr: mac,
            ethertype: EtherType::Ipv6,
        };
        self.tx.push_back(build_frame(&eth, &ip.build(&icmp)));
    }

    /// `ndisc_rcv` → `ndisc_recv_ns` / `ndisc_recv_na`.
    pub(super) fn ndisc_input(
        &mut self,
        eth_src: EthernetAddress,
        ip: &Ipv6Repr,
        icmp: &Icmpv6Repr,
    ) {
        if ip.hop_limit != NDISC_HOP_LIMIT {
            self.stats.rx_ignored += 1;
            return;
        }
        let Ok(msg) = NdiscRepr::parse(icmp) else {
            self.stats.rx_malformed += 1;
            return;
        };
        match msg {
            NdiscRepr::Solicit { target, lladdr } => {
                self.ndisc_recv_ns(eth_src, ip, target, lladdr)
            }
            NdiscRepr::Advert {
                solicited,
                target,
                lladdr,
                ..
            } => self.ndisc_recv_na(ip, solicited, target, lladdr),
        }
    }

    /// Mirrors `ndisc_recv_ns` for a solicitation of one of our addresses: a duplicate
    /// address probe (source `::`) is answered to all-nodes (not solicited, override,
    /// with our link-layer address); any other learns the sender (`neigh_update`, which
    /// sends what waited for it) and is answered to it, solicited, with override and our
    /// link-layer address when the solicitation was multicast. A multicast solicitation
    /// without the sender's link-layer address creates no entry and gets no answer.
    fn ndisc_recv_ns(
        &mut self,
        eth_src: EthernetAddress,
        ip: &Ipv6Repr,
        target: Ipv6Addr,
        lladdr: Option<EthernetAddress>,
    ) {
        let dad = ip.src_addr.is_unspecified();
        let inc = ip.dst_addr.is_multicast();
        let bad = target.is_multicast()
            || (dad && (ip.dst_addr != solicited_node(target) || lladdr.is_some()));
        if bad || !self.routes.is_own6(target) {
            self.stats.rx_ignored += 1;
            return;
        }
        let me = self.interface().mac;
        if dad {
            let na = NdiscRepr::Advert {
                router: false,
                solicited: false,
                overrides: true,
                target,
                lladdr: Some(me),
            };
            self.send_ndisc(
                target,
                ALL_NODES,
                EthernetAddress::from_ipv6_multicast(ALL_NODES),
                &na,
            );
            return;
        }
        if inc && lladdr.is_none() {
            self.stats.rx_ignored += 1;
            return;
        }
        let mac = lladdr.unwrap_or(eth_src);
        let src = IpAddr::V6(ip.src_addr);
        for p in self.neigh.update(src, mac, true) {
            self.send_ip_frame(mac, src, &p.packet);
        }
        let na = NdiscRepr::Advert {
            router: false,
            solicited: true,
            overrides: inc,
            target,
            lladdr: inc.then_some(me),
        };
        self.send_ndisc(target, ip.src_addr, mac, &na);
    }

    /// Mirrors `ndisc_recv_na`: a multicast target, or a solicited advertisement sent to
    /// a group, is invalid; an advertisement updates only an entry that exists, and
    /// resolves it only with the target's link-layer address; the packets waiting for
    /// it go out.
    fn ndisc_recv_na(
        &mut self,
        ip: &Ipv6Repr,
        solicited: bool,
        target: Ipv6Addr,
        lladdr: Option<EthernetAddress>,
    ) {
        let invalid = target.is_multicast() || (ip.dst_addr.is_multicast() && solicited);
        let (false, Some(mac)) = (invalid || self.routes.is_own6(target), lladdr) else {
            self.stats.rx_ignored += 1;
            return;
        };
        let addr = IpAddr::V6(target);
        for p in self.neigh.update(addr, mac, false) {
            self.send_ip_frame(mac, addr, &p.packet);
        }
    }
}
