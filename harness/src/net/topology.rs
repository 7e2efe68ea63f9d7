//! One run's network: a `dut` and a `peer` namespace joined by a veth pair.
//!
//! Built over netlink (no `ip` process), with every offload off on both ends, and IPv6 off
//! except on the DUT's kernel in an IPv6 case (then without DAD, link-local address or
//! router solicitation), so the capture on the peer's end shows wire-sized frames with real
//! checksums and nothing but what the DUT and the scripted peer send. The peer's kernel holds no address, so it stays silent.
//! Dropping the [`Topology`] closes both namespace descriptors and the kernel frees the rest.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use crate::case::{Case, IpFamily};
use crate::net::ethtool;
use crate::net::netlink::{Netlink, NetlinkError, Route, RouteKind};
use crate::net::netns::{Netns, NetnsError};
use crate::net::spare_receiver::SpareReceiver;
use crate::net::sysctl::{self, SysctlError};

/// The DUT's interface name inside its namespace.
pub const DUT_IF: &str = "eth0";
/// The peer's interface name inside its namespace (where the capture runs).
pub const PEER_IF: &str = "eth0";
/// Fixed, locally administered MACs, so two runs of a case compare frame by frame.
pub const DUT_MAC: [u8; 6] = [0x02, 0x74, 0x77, 0x00, 0x00, 0x01];
pub const PEER_MAC: [u8; 6] = [0x02, 0x74, 0x77, 0x00, 0x00, 0x02];
/// The DUT veth's own MAC when a userspace stack owns the veth: not [`DUT_MAC`], which
/// the stack puts on its frames and the peer learns by ARP. So the namespace's kernel
/// classes every frame sent to the stack `PACKET_OTHERHOST` (`eth_type_trans`) and drops
/// it first thing in `ip_rcv_core` and `arp_rcv`, where it used to route each one to
/// `ip_error` (the address is not its own) inside the peer's send: about 3% more
/// connects per second in `tcptwin bench --only connect-rate`. `AF_PACKET` sockets
/// still get every frame.
pub const KERNEL_SIDE_MAC: [u8; 6] = [0x02, 0x74, 0x77, 0x00, 0x00, 0x03];

/// How long a fresh veth may take to become able to transmit.
const LINK_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the DUT's kernel may take to send its MLD reports once it has an IPv6 address.
const MLD_REPORTS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The MLDv2 reports a kernel sends when its IPv6 address joins the solicited-node group:
/// one now and one more (`mc_qrv`, the robustness variable, is 2), `mldv2_unsolicited_report_interval`
/// apart (`mld_ifc_work`, net/ipv6/mcast.c).
const MLD_REPORTS: u64 = 2;

/// How the DUT's kernel is set up for an IPv6 network, written on eth0 while IPv6 is still
/// off there: no duplicate address detection, no link-local address (so no router
/// solicitation or MLD report for it), no router advertisement taken, and the MLD reports
/// of the one address all at once, so they are over before anything is captured.
///
/// The stack's adapters give tcptwin-stack the same list (`dut::stack::stack_on`), so the
/// two model one host: it takes the settings it models (`addr_gen_mode`); the others turn
/// off what it never does (DAD, router solicitation, RAs, MLD).
pub const IPV6_ON: [(&str, &str); 6] = [
    ("net.ipv6.conf.eth0.accept_dad", "0"),
    ("net.ipv6.conf.eth0.addr_gen_mode", "1"),
    ("net.ipv6.conf.eth0.router_solicitations", "0"),
    ("net.ipv6.conf.eth0.accept_ra", "0"),
    ("net.ipv6.conf.eth0.mldv2_unsolicited_report_interval", "0"),
    ("net.ipv6.conf.eth0.disable_ipv6", "0"),
];

/// A route as a case gives it, resolved against the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpAddr,
    pub prefix: u8,
    pub via: Option<IpAddr>,
    pub kind: RouteKind,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub initrwnd: Option<u32>,
    pub src: Option<IpAddr>,
}

/// Everything needed to build one run's network.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologySpec {
    /// The case's family: an IPv6 network turns IPv6 on for the DUT's kernel.
    pub family: IpFamily,
    pub mtu: u32,
    /// The DUT interface's address; `None` leaves the interface with none (`dut: none`).
    pub dut_ip: Option<IpAddr>,
    pub prefix: u8,
    pub peer_ip: IpAddr,
    pub routes: Vec<RouteSpec>,
    /// Sysctls for the dut namespace, by Linux name, written in this order.
    pub sysctls: Vec<(String, String)>,
    /// Whether the dut kernel gets the address (false when a userspace stack owns the veth).
    pub dut_kernel_address: bool,
}

impl TopologySpec {
    /// The topology `case` asks for, resolved into a build spec.
    pub fn for_case(case: &Case, dut_kernel_address: bool) -> TopologySpec {
        let topo = &case.topology;
        let family = case.family;
        let dut = topo.dut_for(family);
        TopologySpec {
            family,
            mtu: topo.mtu.0,
            dut_ip: dut.map(|cidr| cidr.addr),
            prefix: dut.map_or(family.default_dut().prefix, |cidr| cidr.prefix),
            peer_ip: topo.peer_for(family),
            routes: topo
                .routes
                .iter()
                .map(|r| RouteSpec {
                    dst: r.to.in_family(family).addr,
                    prefix: r.to.prefix,
                    via: r.via,
                    kind: r.kind,
                    mtu: r.mtu.map(|m| m.0),
                    advmss: r.advmss,
                    initrwnd: r.initrwnd.map(|w| w.0),
                    src: r.src,
                })
                .collect(),
            sysctls: case
                .sysctls
                .iter()
                .map(|(k, v)| (k.0.clone(), v.to_string()))
                .collect(),
            dut_kernel_address,
        }
    }
}

/// Why a topology could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error("disabling offloads: {0}")]
    Offloads(std::io::Error),
    #[error("the DUT's kernel sent {sent} of its {MLD_REPORTS} MLD reports within {MLD_REPORTS_TIMEOUT:?} of getting its IPv6 address")]
    MldReports { sent: u64 },
}

/// A built topology; both namespaces live as long as this value.
#[derive(Debug)]
pub struct Topology {
    pub dut: Netns,
    pub peer: Netns,
    pub spec: TopologySpec,
    /// For a userspace stack DUT to take ([`SpareReceiver`]).
    pub dut_receiver: SpareReceiver,
}

/// Two namespaces joined by a veth of a given MTU, nothing else of any case in them yet:
/// IPv6 and offloads off on both ends, the peer's end up, the DUT's end down (so nothing is
/// sent). What [`crate::run::prewarm`] builds ahead of the case that will use it.
#[derive(Debug)]
pub struct Blank {
    pub dut: Netns,
    pub peer: Netns,
    pub mtu: u32,
    pub dut_receiver: SpareReceiver,
}

impl Blank {
    /// Builds the namespaces and the veth.
    pub fn build(mtu: u32) -> Result<Blank, TopologyError> {
        let dut = Netns::new()?;
        let peer = Netns::new()?;
        // First, so its grace period passes while the rest is built.
        let dut_receiver = SpareReceiver::start(&dut, mtu);
        peer.run(sysctl::disable_ipv6)??;
        let peer_fd = peer.fd().as_raw_fd();
        dut.run(|| -> Result<(), TopologyError> {
            sysctl::disable_ipv6()?;
            let netlink = Netlink::open()?;
            netlink.add_veth(DUT_IF, DUT_MAC, PEER_IF, PEER_MAC, peer_fd, mtu)?;
            ethtool::disable_offloads(DUT_IF).map_err(TopologyError::Offloads)?;
            Ok(())
        })??;
        peer.run(configure_peer)??;
        Ok(Blank {
            dut,
            peer,
            mtu,
            dut_receiver,
        })
    }
}

impl Topology {
    /// Builds the two namespaces, the veth between them, addresses, routes and sysctls.
    pub fn build(spec: &TopologySpec) -> Result<Topology, TopologyError> {
        Topology::from_blank(Blank::build(spec.mtu)?, spec)
    }

    /// Gives a blank of the spec's MTU the case's sysctls, address and routes, and brings
    /// the DUT's end up. The sysctls are written once the veth exists, so per-interface
    /// ones (`net.ipv4.conf.eth0.*`) can be set; `conf.default` no longer reaches eth0.
    pub fn from_blank(blank: Blank, spec: &TopologySpec) -> Result<Topology, TopologyError> {
        debug_assert_eq!(blank.mtu, spec.mtu, "a blank is only used for its own MTU");
        let Blank {
            dut,
            peer,
            dut_receiver,
            ..
        } = blank;
        dut.run(|| configure_dut(spec))??;
        // Both ends must be able to transmit before anything runs (see wait_tx_ready).
        for (ns, ifname) in [(&dut, DUT_IF), (&peer, PEER_IF)] {
            ns.run(|| -> Result<(), TopologyError> {
                let netlink = Netlink::open()?;
                let index = netlink.link_index(ifname)?;
                netlink.wait_tx_ready(index, LINK_READY_TIMEOUT)?;
                Ok(())
            })??;
        }
        Ok(Topology {
            dut,
            peer,
            spec: spec.clone(),
            dut_receiver,
        })
    }
}

impl Topology {
    /// Gives the peer namespace's kernel the peer address, for runs where a real Linux
    /// listener plays the peer (the connect-rate benchmark) instead of the scripted one.
    pub fn add_peer_address(&self) -> Result<(), TopologyError> {
        let (ip, prefix) = (self.spec.peer_ip, self.spec.prefix);
        self.peer.run(|| -> Result<(), TopologyError> {
            let netlink = Netlink::open()?;
            let lo = netlink.link_index("lo")?;
            netlink.set_up(lo)?;
            let eth = netlink.link_index(PEER_IF)?;
            netlink.add_address(eth, ip, prefix)?;
            Ok(())
        })?
    }
}

/// Offloads off, then up: the peer end holds no address, so its kernel stays silent.
fn configure_peer() -> Result<(), TopologyError> {
    ethtool::disable_offloads(PEER_IF).map_err(TopologyError::Offloads)?;
    let netlink = Netlink::open()?;
    let eth = netlink.link_index(PEER_IF)?;
    netlink.set_up(eth)?;
    Ok(())
}

fn configure_dut(spec: &TopologySpec) -> Result<(), TopologyError> {
    let netlink = Netlink::open()?;
    let lo = netlink.link_index("lo")?;
    netlink.set_up(lo)?;
    let eth = netlink.link_index(DUT_IF)?;
    for (name, value) in &spec.sysctls {
        sysctl::write(name, value)?;
    }
    let ipv6 = spec.dut_kernel_address && spec.family.network_is_inet6();
    if let (Some(ip @ IpAddr::V4(_)), true) = (spec.dut_ip, spec.dut_kernel_address) {
        netlink.add_address(eth, ip, spec.prefix)?;
    }
    if spec.dut_kernel_address {
        netlink.set_up(eth)?;
    } else {
        netlink.set_up_with_mac(eth, KERNEL_SIDE_MAC)?;
    }
    if ipv6 {
        turn_ipv6_on(&netlink, eth, spec.dut_ip.map(|ip| (ip, spec.prefix)))?;
    }
    if spec.dut_kernel_address {
        for route in &spec.routes {
            netlink.add_route(&Route {
                dst: route.dst,
                prefix: route.prefix,
                gateway: route.via,
                ifindex: (route.kind == RouteKind::Unicast).then_some(eth),
                kind: route.kind,
                mtu: route.mtu,
                advmss: route.advmss,
                initrwnd: route.initrwnd,
                src: route.src,
            })?;
        }
    }
    Ok(())
}

/// Turns IPv6 on for the DUT's kernel (eth0 and loopback) once its link is up, able to
/// transmit and ready for IPv6; gives eth0 its IPv6 address, if it has one, and waits for the MLD reports that joining the address's solicited-node group
/// sends (`ipv6_dev_mc_inc` → `mld_ifc_event`): they are over before the case starts, and
/// the run leaves what was captured until then out of its record.
fn turn_ipv6_on(
    netlink: &Netlink,
    eth: u32,
    address: Option<(IpAddr, u8)>,
) -> Result<(), TopologyError> {
    netlink.wait_tx_ready(eth, LINK_READY_TIMEOUT)?;
    netlink.wait_oper_up(eth, LINK_READY_TIMEOUT)?;
    for (name, value) in IPV6_ON {
        sysctl::write(name, value)?;
    }
    // Loopback gets ::1, as on any host with IPv6.
    sysctl::write("net.ipv6.conf.lo.disable_ipv6", "0")?;
    let Some((ip, prefix)) = address else {
        return Ok(());
    };
    let before = netlink.tx_packets(eth)?;
    netlink.add_address(eth, ip, prefix)?;
    let started = std::time::Instant::now();
    loop {
        let sent = netlink.tx_packets(eth)? - before;
        if sent >= MLD_REPORTS {
            return Ok(());
        }
        if started.elapsed() > MLD_REPORTS_TIMEOUT {
            return Err(TopologyError::MldReports { sent });
        }
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
}
