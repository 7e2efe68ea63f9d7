//! IPv6 routing: the FIB lookup, source address selection and path MTU/advmss that
//! `tcp_v6_connect` gets from `ip6_dst_lookup_flow`.
//!
//! The interface's IPv6 address is kept here, beside [`crate::Interface`] (whose fields
//! IPv4 callers fill in): with one, the interface also has the link-local address
//! [`RouteTable::ipv6_link_local`] unless `addr_gen_mode` is none. Its routes are implied
//! by its addresses, as `addrconf` adds them: the global prefix on-link, fe80::/64 on-link
//! with the link-local address (`addrconf_add_linklocal`; `addrconf_addr_gen` adds neither
//! in mode none), and the addresses themselves local (via `lo`). Without an address there
//! is no IPv6 route but `lo`'s.

use crate::errno::Errno;
use crate::route::{Ipv6Cidr, RouteKind, RouteTable, LOOPBACK_IFINDEX, LOOPBACK_MTU};
use crate::wire::ipv6::MIN_MTU;
use std::net::Ipv6Addr;

/// `IPV6_MAXPLEN` (include/linux/ipv6.h).
const IPV6_MAXPLEN: u32 = 65535;

/// An IPv6 static route (`ip -6 route add …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route6 {
    /// Destination prefix.
    pub dst: Ipv6Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Route type.
    pub kind: RouteKind,
    /// `via`: next hop, on-link (the global prefix or link-local).
    pub gateway: Option<Ipv6Addr>,
    /// `src` (prefsrc).
    pub src: Option<Ipv6Addr>,
    /// `mtu` metric.
    pub mtu: Option<u32>,
    /// `advmss` metric.
    pub advmss: Option<u32>,
    /// `hoplimit` metric.
    pub hoplimit: Option<u8>,
}

impl Route6 {
    /// A unicast route to `dst/prefix_len` via `gateway` (None: on-link).
    pub fn new(dst: Ipv6Addr, prefix_len: u8, gateway: Option<Ipv6Addr>) -> Self {
        Route6 {
            dst,
            prefix_len,
            kind: RouteKind::Unicast,
            gateway,
            src: None,
            mtu: None,
            advmss: None,
            hoplimit: None,
        }
    }
    /// The default route via `gateway`.
    pub fn default_via(gateway: Ipv6Addr) -> Self {
        Route6::new(Ipv6Addr::UNSPECIFIED, 0, Some(gateway))
    }
    fn matches(&self, a: Ipv6Addr) -> bool {
        in_prefix(a, self.dst, self.prefix_len)
    }
}

fn in_prefix(a: Ipv6Addr, net: Ipv6Addr, prefix_len: u8) -> bool {
    let m = match prefix_len.min(128) {
        0 => 0,
        n => u128::MAX << (128 - n as u32),
    };
    u128::from(a) & m == u128::from(net) & m
}

/// Whether `a` is link-local unicast (fe80::/10, `IPV6_ADDR_LINKLOCAL`).
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// `ip6_rt_type_to_error` (net/ipv6/route.c, the `fib6_prop` table): the `dst.error` of
/// a route of this type, `None` for one that forwards.
pub fn ip6_rt_type_to_error(kind: RouteKind) -> Option<Errno> {
    match kind {
        RouteKind::Unicast => None,
        RouteKind::Blackhole => Some(Errno::EINVAL),
        RouteKind::Unreachable => Some(Errno::EHOSTUNREACH),
        RouteKind::Prohibit => Some(Errno::EACCES),
        RouteKind::Throw => Some(Errno::EAGAIN),
    }
}

/// What a successful lookup gives `tcp_v6_connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route6Result {
    /// The chosen source address.
    pub src: Ipv6Addr,
    /// Where frames go: the gateway, or the destination itself; `None` for `lo`.
    pub next_hop: Option<Ipv6Addr>,
    /// Path MTU (`dst_mtu`).
    pub mtu: u32,
    /// `dst_metric_advmss`.
    pub advmss: u32,
    /// `hoplimit` metric.
    pub hoplimit: Option<u8>,
}

/// `ip6_default_advmss` (net/ipv6/route.c): `mtu − 60`, at least `ip6_rt_min_advmss`
/// (1220), and `IPV6_MAXPLEN` ("any MSS") above `65535 − 20`.
pub fn default_advmss6(mtu: u32) -> u32 {
    let min_advmss = MIN_MTU - 20 - 40;
    let mss = mtu.saturating_sub(60).max(min_advmss);
    if mss > IPV6_MAXPLEN - 20 {
        IPV6_MAXPLEN
    } else {
        mss
    }
}

impl RouteTable {
    /// Give the interface its IPv6 address and on-link prefix (or take it away).
    pub fn set_ipv6(&mut self, cidr: Option<Ipv6Cidr>) {
        self.ipv6 = cidr;
    }
    /// The interface's IPv6 address and prefix.
    pub fn ipv6(&self) -> Option<Ipv6Cidr> {
        self.ipv6
    }
    /// Whether the interface gets a link-local address (`addr_gen_mode` eui64) or none.
    pub fn set_eui64_link_local(&mut self, on: bool) {
        self.eui64_link_local = on;
    }
    /// The interface's link-local address: with IPv6 on it, in `addr_gen_mode` eui64.
    pub fn ipv6_link_local(&self) -> Option<Ipv6Addr> {
        (self.ipv6.is_some() && self.eui64_link_local).then(|| self.interface().eui64_link_local())
    }
    /// Set the interface's `ifindex`.
    pub fn set_ifindex(&mut self, ifindex: u32) {
        self.ifindex = ifindex;
    }
    /// The interface's `ifindex`.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// Whether `a` is one of the interface's IPv6 addresses (global or link-local).
    pub fn is_own6(&self, a: Ipv6Addr) -> bool {
        self.ipv6.is_some_and(|c| c.addr == a) || self.ipv6_link_local() == Some(a)
    }
    /// Add an IPv6 route.
    pub fn add_route6(&mut self, r: Route6) {
        self.routes6.push(r);
    }
    /// The IPv6 routes added.
    pub fn routes6(&self) -> &[Route6] {
        &self.routes6
    }
    /// Whether `a` is one of ours (`ipv6_chk_addr`, or `::1`).
    pub fn is_local6(&self, a: Ipv6Addr) -> bool {
        a.is_loopback() || self.is_own6(a)
    }

    /// The longest-prefix match among the connected routes (the global prefix and
    /// fe80::/64) and the static ones; a static route with the connected prefix wins.
    fn fib6_lookup(&self, dst: Ipv6Addr) -> Option<Route6> {
        let cidr = self.ipv6?;
        let global = Route6 {
            src: Some(cidr.addr),
            ..Route6::new(cidr.addr, cidr.prefix_len, None)
        };
        let link_local = self.ipv6_link_local().map(|ll| Route6 {
            src: Some(ll),
            ..Route6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 64, None)
        });
        let mut best: Option<Route6> = None;
        for r in [global].iter().chain(&link_local).chain(&self.routes6) {
            if r.matches(dst) && best.is_none_or(|b| r.prefix_len >= b.prefix_len) {
                best = Some(*r);
            }
        }
        best
    }

    /// Mirrors `ip6_dst_lookup_flow` → `ip6_route_output` and `ip6_route_get_saddr`
    /// (net/ipv6/route.c, net/ipv6/ip6_output.c) for a connect:
    ///
    /// * `oif` (the socket's `sk_bound_dev_if`, 0 for none) makes the lookup strict
    ///   (`RT6_LOOKUP_F_IFACE`): a route through another device does not match, and
    ///   `rt6_device_match` ends at `fib6_null_entry` → ENETUNREACH. The source is
    ///   picked first (`ip6_dst_lookup_tail`), but `::1` on `lo` is always a candidate,
    ///   so that never fails here;
    /// * our own addresses and `::1` → `lo` (MTU 65536; the local route of `::1` is
    ///   `lo`'s, that of our addresses the interface's);
    /// * no matching route → ENETUNREACH (`ip6_null_entry`); a reject route's error
    ///   per [`ip6_rt_type_to_error`];
    /// * the source: the bound one, else the route's `src`, else the interface's
    ///   address of the destination's scope (`ipv6_dev_get_saddr`: link-local for
    ///   link-local destinations, the global address otherwise).
    pub fn lookup6(
        &self,
        dst: Ipv6Addr,
        bound_src: Option<Ipv6Addr>,
        oif: u32,
    ) -> Result<Route6Result, Errno> {
        let dev = if dst.is_loopback() {
            LOOPBACK_IFINDEX
        } else {
            self.ifindex
        };
        if oif != 0 && oif != dev {
            return Err(Errno::ENETUNREACH);
        }
        if self.is_local6(dst) {
            let src = bound_src.unwrap_or(dst);
            return Ok(Route6Result {
                src,
                next_hop: None,
                mtu: LOOPBACK_MTU,
                advmss: default_advmss6(LOOPBACK_MTU),
                hoplimit: None,
            });
        }
        let r = self.fib6_lookup(dst).ok_or(Errno::ENETUNREACH)?;
        match ip6_rt_type_to_error(r.kind) {
            None => {}
            // `fib6_rule_action` (net/ipv6/fib6_rules.c): -EAGAIN from a throw route
            // goes on to the next rule; after the main table only the default one is
            // left, empty, so `fib6_rule_lookup` ends at `ip6_null_entry`.
            Some(Errno::EAGAIN) => return Err(Errno::ENETUNREACH),
            Some(e) => return Err(e),
        }
        let cidr = self.ipv6.ok_or(Errno::ENETUNREACH)?;
        let next_hop = r.gateway.unwrap_or(dst);
        let on_link = is_link_local(next_hop) || in_prefix(next_hop, cidr.addr, cidr.prefix_len);
        if r.gateway.is_some() && !on_link {
            return Err(Errno::ENETUNREACH);
        }
        // ipv6_dev_get_saddr: the address of the destination's scope, if there is
        // one, else any (rule 2 ranks, never excludes).
        let scoped = match self.ipv6_link_local() {
            Some(ll) if is_link_local(dst) => ll,
            _ => cidr.addr,
        };
        let mtu = r.mtu.unwrap_or(self.interface().mtu).min(IPV6_MAXPLEN);
        Ok(Route6Result {
            src: bound_src.or(r.src).unwrap_or(scoped),
            next_hop: Some(next_hop),
            mtu,
            advmss: r.advmss.unwrap_or_else(|| default_advmss6(mtu)),
            hoplimit: r.hoplimit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Interface;
    use crate::wire::EthernetAddress;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn iface() -> Interface {
        Interface {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            addr: None,
            prefix_len: 0,
            mtu: 1500,
        }
    }

    fn table() -> RouteTable {
        let mut t = RouteTable::new(iface(), vec![]);
        t.set_ipv6(Some(Ipv6Cidr {
            addr: a("2001:2::1"),
            prefix_len: 64,
        }));
        let mut via = Route6::new(a("2001:db8::"), 32, Some(a("2001:2::fe")));
        via.mtu = Some(1400);
        t.add_route6(via);
        let mut adv = Route6::new(a("2001:db9::"), 32, Some(a("fe80::fe")));
        adv.advmss = Some(1000);
        t.add_route6(adv);
        t.add_route6(Route6 {
            kind: RouteKind::Unreachable,
            ..Route6::new(a("2001:dba::"), 32, None)
        });
        t.add_route6(Route6 {
            kind: RouteKind::Prohibit,
            ..Route6::new(a("2001:dbb::"), 32, None)
        });
        t.add_route6(Route6 {
            kind: RouteKind::Blackhole,
            ..Route6::new(a("2001:dbc::"), 32, None)
        });
        t.add_route6(Route6 {
            kind: RouteKind::Throw,
            ..Route6::new(a("2001:dbd::"), 32, None)
        });
        t
    }

    #[test]
    fn connected_and_static() {
        let t = table();
        let r = t.lookup6(a("2001:2::2"), None, 0).unwrap();
        assert_eq!(
            (r.src, r.next_hop, r.mtu, r.advmss),
            (a("2001:2::1"), Some(a("2001:2::2")), 1500, 1440)
        );
        let r = t.lookup6(a("2001:db8::9"), None, 0).unwrap();
        assert_eq!(
            (r.next_hop, r.mtu, r.advmss),
            (Some(a("2001:2::fe")), 1400, 1340)
        );
        let r = t.lookup6(a("2001:db9::9"), None, 0).unwrap();
        assert_eq!((r.next_hop, r.advmss), (Some(a("fe80::fe")), 1000));
        // A link-local destination takes the link-local source (EUI-64 of the MAC).
        let r = t.lookup6(a("fe80::2"), None, 0).unwrap();
        assert_eq!(r.src, a("fe80::ff:fe00:1"));
    }

    #[test]
    fn errors_and_loopback() {
        let t = table();
        assert_eq!(t.lookup6(a("2001:1::1"), None, 0), Err(Errno::ENETUNREACH));
        assert_eq!(
            t.lookup6(a("2001:dba::1"), None, 0),
            Err(Errno::EHOSTUNREACH)
        );
        assert_eq!(t.lookup6(a("2001:dbb::1"), None, 0), Err(Errno::EACCES));
        assert_eq!(t.lookup6(a("2001:dbc::1"), None, 0), Err(Errno::EINVAL));
        assert_eq!(
            t.lookup6(a("2001:dbd::1"), None, 0),
            Err(Errno::ENETUNREACH)
        );
        let r = t.lookup6(Ipv6Addr::LOCALHOST, None, 0).unwrap();
        assert_eq!(
            (r.src, r.next_hop, r.advmss),
            (Ipv6Addr::LOCALHOST, None, 65476)
        );
        // Without IPv6 on the interface, nothing but lo routes.
        let v4 = RouteTable::new(iface(), vec![]);
        assert_eq!(v4.lookup6(a("fe80::2"), None, 0), Err(Errno::ENETUNREACH));
    }

    #[test]
    fn a_bound_device_makes_the_lookup_strict() {
        // Measured on 6.18 with a socket bound (by a link-local connect's scope id) to
        // eth0, lo or device 99: ::1 is reachable only on lo, our address only on eth0.
        let mut t = table();
        t.set_ifindex(2);
        let own = a("2001:2::1");
        let lo = Ipv6Addr::LOCALHOST;
        let peer = a("2001:2::2");
        assert!(t.lookup6(own, None, 2).is_ok());
        assert!(t.lookup6(peer, None, 2).is_ok());
        assert_eq!(t.lookup6(lo, None, 2), Err(Errno::ENETUNREACH));
        assert!(t.lookup6(lo, None, 1).is_ok());
        assert_eq!(t.lookup6(own, None, 1), Err(Errno::ENETUNREACH));
        for dst in [own, lo, peer, a("fe80::2")] {
            assert_eq!(t.lookup6(dst, None, 99), Err(Errno::ENETUNREACH), "{dst}");
        }
    }

    #[test]
    fn addr_gen_mode_none_has_no_link_local() {
        let mut t = table();
        assert!(t.is_own6(a("fe80::ff:fe00:1")));
        t.set_eui64_link_local(false);
        assert_eq!(t.ipv6_link_local(), None);
        assert!(!t.is_own6(a("fe80::ff:fe00:1")));
        // No fe80::/64 route either (addrconf_addr_gen adds none in mode none).
        assert_eq!(t.lookup6(a("fe80::2"), None, 2), Err(Errno::ENETUNREACH));
        assert!(t.lookup6(a("2001:2::2"), None, 2).is_ok());
    }

    #[test]
    fn route_type_errors() {
        // Measured on 6.18: unreachable EHOSTUNREACH (unlike the null entry's
        // ENETUNREACH), blackhole EINVAL, prohibit EACCES, throw ENETUNREACH.
        assert_eq!(ip6_rt_type_to_error(RouteKind::Unicast), None);
        assert_eq!(
            ip6_rt_type_to_error(RouteKind::Unreachable),
            Some(Errno::EHOSTUNREACH)
        );
        assert_eq!(
            ip6_rt_type_to_error(RouteKind::Blackhole),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            ip6_rt_type_to_error(RouteKind::Prohibit),
            Some(Errno::EACCES)
        );
        assert_eq!(ip6_rt_type_to_error(RouteKind::Throw), Some(Errno::EAGAIN));
    }

    #[test]
    fn advmss_bounds() {
        assert_eq!(default_advmss6(1500), 1440);
        assert_eq!(default_advmss6(1280), 1220);
        assert_eq!(default_advmss6(600), 1220);
        assert_eq!(default_advmss6(65535), 65475);
        assert_eq!(default_advmss6(70000), 65535, "IPV6_MAXPLEN: any MSS");
    }
}
