//! Routing: the FIB lookup, source address selection and path MTU/advmss
//! that `tcp_v4_connect` gets from `ip_route_connect`.

use crate::errno::Errno;
use crate::wire::EthernetAddress;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv6 address with its prefix length (`ip -6 addr add 2001:2::1/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Cidr {
    /// The address.
    pub addr: Ipv6Addr,
    /// The prefix length of its on-link subnet (0..=128).
    pub prefix_len: u8,
}

/// The one Ethernet interface the stack owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// Its MAC address.
    pub mac: EthernetAddress,
    /// Its IPv4 address; `None` for an interface that has none (then there is no
    /// connected route, and nothing on the link is ours).
    pub addr: Option<Ipv4Addr>,
    /// Prefix length of the connected subnet (unused without an address).
    pub prefix_len: u8,
    /// Device MTU.
    pub mtu: u32,
}

impl Interface {
    /// The link-local address `addrconf_addr_gen` gives an Ethernet device in
    /// `addr_gen_mode` eui64 (0): fe80::/64 with the MAC's modified EUI-64. Whether the
    /// interface has it is [`RouteTable::ipv6_link_local`]'s business.
    pub fn eui64_link_local(&self) -> Ipv6Addr {
        let m = self.mac.0;
        Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 2,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }

    /// The connected subnet's broadcast address, when there is a subnet.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        let m = mask(self.prefix_len);
        self.addr.map(|addr| Ipv4Addr::from(u32::from(addr) | !m))
    }
    /// Whether `a` is in the connected subnet (never, without an address).
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let m = mask(self.prefix_len);
        self.addr
            .is_some_and(|addr| u32::from(a) & m == u32::from(addr) & m)
    }
}

fn mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - prefix_len.min(32) as u32)
    }
}

/// Route types (`RTN_*`) and the errno `fib_props[]` gives each when it matches.
///
/// The harness names route kinds in a model of its own (`RouteType` in
/// `harness/src/case/mod.rs`, `RouteKind` in `harness/src/net/netlink.rs`) on purpose: the judge
/// must not share code with the implementation under test, or a bug in the shared code
/// would be invisible to it (both sides would agree on the wrong thing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    /// `RTN_UNICAST`: forward.
    #[default]
    Unicast,
    /// `RTN_UNREACHABLE` → EHOSTUNREACH.
    Unreachable,
    /// `RTN_PROHIBIT` → EACCES.
    Prohibit,
    /// `RTN_BLACKHOLE` → EINVAL.
    Blackhole,
    /// `RTN_THROW` → ENETUNREACH (there is no later table).
    Throw,
}

/// A static route (`ip route add …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub dst: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Route type.
    pub kind: RouteKind,
    /// `via`: next hop, which must be on the connected subnet.
    pub gateway: Option<Ipv4Addr>,
    /// `src` (prefsrc).
    pub src: Option<Ipv4Addr>,
    /// `mtu` metric.
    pub mtu: Option<u32>,
    /// `advmss` metric.
    pub advmss: Option<u32>,
    /// `hoplimit` metric (TTL).
    pub hoplimit: Option<u8>,
    /// `window` metric (`RTAX_WINDOW`, an initial window clamp).
    pub window: Option<u32>,
    /// `initrwnd` metric (segments).
    pub initrwnd: Option<u32>,
    /// `features ecn`.
    pub ecn: bool,
}

impl Route {
    /// A unicast route to `dst/prefix_len` via `gateway` (None: on-link).
    pub fn new(dst: Ipv4Addr, prefix_len: u8, gateway: Option<Ipv4Addr>) -> Self {
        Route {
            dst,
            prefix_len,
            kind: RouteKind::Unicast,
            gateway,
            src: None,
            mtu: None,
            advmss: None,
            hoplimit: None,
            window: None,
            initrwnd: None,
            ecn: false,
        }
    }
    /// The default route via `gateway`.
    pub fn default_via(gateway: Ipv4Addr) -> Self {
        Route::new(Ipv4Addr::UNSPECIFIED, 0, Some(gateway))
    }
    fn matches(&self, a: Ipv4Addr) -> bool {
        let m = mask(self.prefix_len);
        u32::from(a) & m == u32::from(self.dst) & m
    }
}

/// What a successful lookup gives `tcp_v4_connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteResult {
    /// The destination after `0.0.0.0` rewriting.
    pub dst: Ipv4Addr,
    /// The chosen source address.
    pub src: Ipv4Addr,
    /// Where frames go: the gateway, or the destination itself; `None` for `lo`.
    pub next_hop: Option<Ipv4Addr>,
    /// Path MTU (`dst_mtu`).
    pub mtu: u32,
    /// `dst_metric_advmss`.
    pub advmss: u32,
    /// `hoplimit` metric.
    pub hoplimit: Option<u8>,
    /// `window` metric.
    pub window: Option<u32>,
    /// `initrwnd` metric.
    pub initrwnd: Option<u32>,
    /// `features ecn`.
    pub ecn: bool,
}

/// MTU of `lo`.
pub const LOOPBACK_MTU: u32 = 65536;

/// `IP_MAX_MTU` (include/net/ip.h).
pub const IP_MAX_MTU: u32 = 0xFFFF;

/// `ipv4_default_advmss` (net/ipv4/route.c): `min(max(mtu − 40, ip_rt_min_advmss = 256), 65535 − 40)`.
pub fn default_advmss(mtu: u32) -> u32 {
    mtu.saturating_sub(40).clamp(256, 65535 - 40)
}

/// The routing table: the interface's connected route, its local/broadcast
/// entries, `lo`, and static routes.
#[derive(Debug, Clone)]
pub struct RouteTable {
    iface: Interface,
    routes: Vec<Route>,
    /// The interface's global IPv6 address and prefix ([`crate::route6`]); `None`: no IPv6.
    pub(crate) ipv6: Option<Ipv6Cidr>,
    /// IPv6 routes besides the connected ones ([`crate::route6`]).
    pub(crate) routes6: Vec<crate::route6::Route6>,
    /// Whether IPv6 gives the interface its EUI-64 link-local address
    /// (`net.ipv6.conf.<dev>.addr_gen_mode` 0) or none (1).
    pub(crate) eui64_link_local: bool,
    /// The interface's `ifindex`, what a `sin6_scope_id` or `sk_bound_dev_if` names it by.
    pub(crate) ifindex: u32,
}

/// The `ifindex` of `lo`, the first device of every namespace (`LOOPBACK_IFINDEX`).
pub const LOOPBACK_IFINDEX: u32 = 1;
/// The `ifindex` an interface made next in a fresh namespace gets (after `lo`): the
/// interface's, unless told otherwise ([`RouteTable::set_ifindex`]).
pub const DEFAULT_IFINDEX: u32 = 2;

impl RouteTable {
    /// A table for `iface` plus `routes`.
    pub fn new(iface: Interface, routes: Vec<Route>) -> Self {
        RouteTable {
            iface,
            routes,
            ipv6: None,
            routes6: Vec::new(),
            eui64_link_local: true,
            ifindex: DEFAULT_IFINDEX,
        }
    }
    /// The interface.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }
    /// The static routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
    /// Whether `a` is one of ours (`inet_addr_type == RTN_LOCAL`).
    pub fn is_local(&self, a: Ipv4Addr) -> bool {
        Some(a) == self.iface.addr || a.is_loopback()
    }
    /// Longest-prefix lookup; a static route with the same prefix as the
    /// connected route replaces it (as `ip route change … advmss N` would).
    /// An interface without an address has no connected route (`fib_add_ifaddr` adds it
    /// with the address).
    fn fib_lookup(&self, dst: Ipv4Addr) -> Option<Route> {
        let connected = self.iface.addr.map(|addr| Route {
            src: Some(addr),
            ..Route::new(addr, self.iface.prefix_len, None)
        });
        let mut best: Option<Route> = connected.filter(|c| c.matches(dst));
        for r in &self.routes {
            if r.matches(dst) && best.is_none_or(|b| r.prefix_len >= b.prefix_len) {
                best = Some(*r);
            }
        }
        best
    }

    /// Mirrors `ip_route_connect` → `ip_route_output_key_hash_rcu` /
    /// `__mkroute_output` (net/ipv4/route.c) for the cases a connect hits:
    ///
    /// * `0.0.0.0` → the bound source, or 127.0.0.1 via `lo`;
    /// * local and 127/8 destinations → `lo` (MTU 65536);
    /// * a bound source that is multicast/broadcast → EINVAL, not local → ENETUNREACH;
    /// * a bound 127/8 source towards a route out of the interface → EINVAL (`lo` is the
    ///   only device a loopback source leaves by, `__mkroute_output`);
    /// * multicast, limited and subnet broadcast destinations → `RTCF_MULTICAST`/
    ///   `RTCF_BROADCAST`, which `tcp_v4_connect` turns into ENETUNREACH;
    /// * no matching route → ENETUNREACH; route types per `fib_props[]`.
    pub fn lookup(&self, dst: Ipv4Addr, bound_src: Option<Ipv4Addr>) -> Result<RouteResult, Errno> {
        if let Some(s) = bound_src {
            if s.is_multicast() || s.is_broadcast() {
                return Err(Errno::EINVAL);
            }
            if !self.is_local(s) {
                return Err(Errno::ENETUNREACH);
            }
        }
        let mut dst = dst;
        if dst.is_unspecified() {
            dst = bound_src.unwrap_or(Ipv4Addr::LOCALHOST);
        }
        if self.is_local(dst) {
            let src = bound_src.unwrap_or(if dst.is_loopback() {
                Ipv4Addr::LOCALHOST
            } else {
                dst
            });
            return Ok(RouteResult {
                dst,
                src,
                next_hop: None,
                mtu: LOOPBACK_MTU,
                advmss: default_advmss(LOOPBACK_MTU),
                hoplimit: None,
                window: None,
                initrwnd: None,
                ecn: false,
            });
        }
        if dst.is_multicast() || dst.is_broadcast() || Some(dst) == self.iface.broadcast() {
            return Err(Errno::ENETUNREACH);
        }
        let r = self.fib_lookup(dst).ok_or(Errno::ENETUNREACH)?;
        match r.kind {
            RouteKind::Unicast => {}
            RouteKind::Unreachable => return Err(Errno::EHOSTUNREACH),
            RouteKind::Prohibit => return Err(Errno::EACCES),
            RouteKind::Blackhole => return Err(Errno::EINVAL),
            RouteKind::Throw => return Err(Errno::ENETUNREACH),
        }
        if bound_src.is_some_and(|s| s.is_loopback()) {
            return Err(Errno::EINVAL);
        }
        // A gateway or on-link destination must be reachable through the interface.
        let next_hop = r.gateway.unwrap_or(dst);
        if r.gateway.is_some() && !self.iface.contains(next_hop) {
            return Err(Errno::ENETUNREACH);
        }
        // `ip_dst_mtu_maybe_forward` (include/net/ip.h): the route's `mtu`
        // metric wins over the device MTU even when it is larger (only
        // IP_MAX_MTU caps it), so `ipv4_default_advmss` advertises metric − 40.
        let mtu = r.mtu.unwrap_or(self.iface.mtu).min(IP_MAX_MTU);
        Ok(RouteResult {
            dst,
            // `inet_select_addr` finds no address on an interface without one: 0.0.0.0.
            src: bound_src
                .or(r.src)
                .or(self.iface.addr)
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            next_hop: Some(next_hop),
            mtu,
            advmss: r.advmss.unwrap_or_else(|| default_advmss(mtu)),
            hoplimit: r.hoplimit,
            window: r.window,
            initrwnd: r.initrwnd,
            ecn: r.ecn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let iface = Interface {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            addr: Some(Ipv4Addr::new(10, 199, 0, 1)),
            prefix_len: 24,
            mtu: 1500,
        };
        let mut jumbo = Route::new(
            Ipv4Addr::new(192, 0, 2, 0),
            24,
            Some(Ipv4Addr::new(10, 199, 0, 254)),
        );
        jumbo.mtu = Some(1280);
        let mut adv = Route::new(
            Ipv4Addr::new(198, 51, 100, 0),
            24,
            Some(Ipv4Addr::new(10, 199, 0, 254)),
        );
        adv.advmss = Some(1000);
        let un = Route {
            kind: RouteKind::Unreachable,
            ..Route::new(Ipv4Addr::new(203, 0, 113, 1), 32, None)
        };
        let pr = Route {
            kind: RouteKind::Prohibit,
            ..Route::new(Ipv4Addr::new(203, 0, 113, 2), 32, None)
        };
        let bh = Route {
            kind: RouteKind::Blackhole,
            ..Route::new(Ipv4Addr::new(203, 0, 113, 3), 32, None)
        };
        RouteTable::new(iface, vec![jumbo, adv, un, pr, bh])
    }

    #[test]
    fn route_mtu_metric_above_the_device_mtu_is_used() {
        // ip_dst_mtu_maybe_forward: RTAX_MTU is taken as is (kernel: route
        // mtu 1501 on a 1500 link → SYN mss 1461, window 64284).
        let iface = table().iface;
        let mut big = Route::new(
            Ipv4Addr::new(203, 0, 113, 0),
            24,
            Some(Ipv4Addr::new(10, 199, 0, 254)),
        );
        big.mtu = Some(1501);
        let t = RouteTable::new(iface, vec![big]);
        let r = t.lookup(Ipv4Addr::new(203, 0, 113, 7), None).unwrap();
        assert_eq!((r.mtu, r.advmss), (1501, 1461));
    }

    #[test]
    fn connected_and_static() {
        let t = table();
        let r = t.lookup(Ipv4Addr::new(10, 199, 0, 2), None).unwrap();
        assert_eq!(
            (r.src, r.next_hop, r.mtu, r.advmss),
            (
                Ipv4Addr::new(10, 199, 0, 1),
                Some(Ipv4Addr::new(10, 199, 0, 2)),
                1500,
                1460
            )
        );
        let r = t.lookup(Ipv4Addr::new(192, 0, 2, 7), None).unwrap();
        assert_eq!(
            (r.next_hop, r.advmss),
            (Some(Ipv4Addr::new(10, 199, 0, 254)), 1240)
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(198, 51, 100, 1), None)
                .unwrap()
                .advmss,
            1000
        );
    }

    #[test]
    fn errors() {
        let t = table();
        assert_eq!(
            t.lookup(Ipv4Addr::new(8, 8, 8, 8), None),
            Err(Errno::ENETUNREACH)
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(224, 0, 0, 1), None),
            Err(Errno::ENETUNREACH)
        );
        assert_eq!(t.lookup(Ipv4Addr::BROADCAST, None), Err(Errno::ENETUNREACH));
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 199, 0, 255), None),
            Err(Errno::ENETUNREACH)
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(203, 0, 113, 1), None),
            Err(Errno::EHOSTUNREACH)
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(203, 0, 113, 2), None),
            Err(Errno::EACCES)
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(203, 0, 113, 3), None),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            t.lookup(
                Ipv4Addr::new(10, 199, 0, 2),
                Some(Ipv4Addr::new(10, 1, 1, 1))
            ),
            Err(Errno::ENETUNREACH)
        );
    }

    #[test]
    fn an_interface_without_an_address_has_no_connected_route() {
        let mut iface = table().iface;
        iface.addr = None;
        let un = Route {
            kind: RouteKind::Unreachable,
            ..Route::new(Ipv4Addr::new(203, 0, 113, 1), 32, None)
        };
        let t = RouteTable::new(iface, vec![un]);
        // What the connected route would have covered, and its broadcast address.
        for dst in [Ipv4Addr::new(10, 199, 0, 2), Ipv4Addr::new(10, 199, 0, 255)] {
            assert_eq!(t.lookup(dst, None), Err(Errno::ENETUNREACH), "{dst}");
        }
        assert!(!t.is_local(Ipv4Addr::new(10, 199, 0, 1)));
        assert!(!iface.contains(Ipv4Addr::new(10, 199, 0, 2)));
        // Typed routes and lo need no address.
        assert_eq!(
            t.lookup(Ipv4Addr::new(203, 0, 113, 1), None),
            Err(Errno::EHOSTUNREACH)
        );
        let r = t.lookup(Ipv4Addr::LOCALHOST, None).unwrap();
        assert_eq!((r.src, r.next_hop), (Ipv4Addr::LOCALHOST, None));
        // A bound address that is not ours: ENETUNREACH, as with one.
        assert_eq!(
            t.lookup(Ipv4Addr::LOCALHOST, Some(Ipv4Addr::new(10, 199, 0, 1))),
            Err(Errno::ENETUNREACH)
        );
        // An on-link route finds no source to take: `inet_select_addr` gives 0.0.0.0.
        let onlink = Route::new(Ipv4Addr::new(10, 199, 0, 0), 24, None);
        let t = RouteTable::new(iface, vec![onlink]);
        let r = t.lookup(Ipv4Addr::new(10, 199, 0, 2), None).unwrap();
        assert_eq!(
            (r.src, r.next_hop),
            (Ipv4Addr::UNSPECIFIED, Some(Ipv4Addr::new(10, 199, 0, 2)))
        );
    }

    #[test]
    fn zero_and_loopback() {
        let t = table();
        let r = t.lookup(Ipv4Addr::UNSPECIFIED, None).unwrap();
        assert_eq!(
            (r.dst, r.src, r.next_hop, r.advmss),
            (Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, None, 65495)
        );
        let r = t
            .lookup(Ipv4Addr::UNSPECIFIED, Some(Ipv4Addr::new(10, 199, 0, 1)))
            .unwrap();
        assert_eq!(r.dst, Ipv4Addr::new(10, 199, 0, 1));
    }
}
