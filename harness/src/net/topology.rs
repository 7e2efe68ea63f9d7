//! One run's network: a `dut` and a `peer` namespace joined by a veth pair.
//!
//! Built over netlink (no `ip` process), with IPv6 and every offload off on both ends, so the
//! capture on the peer's end shows wire-sized frames with real checksums and nothing but what
//! the DUT and the scripted peer send. The peer's kernel holds no address, so it stays silent.
//! Dropping the [`Topology`] closes both namespace descriptors and the kernel frees the rest.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use crate::case::Case;
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

/// A route as a case gives it, resolved against the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub via: Option<Ipv4Addr>,
    pub kind: RouteKind,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub initrwnd: Option<u32>,
    pub src: Option<Ipv4Addr>,
}

/// Everything needed to build one run's network.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologySpec {
    pub mtu: u32,
    /// The DUT interface's address; `None` leaves the interface with none (`dut: none`).
    pub dut_ip: Option<Ipv4Addr>,
    pub prefix: u8,
    pub peer_ip: Ipv4Addr,
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
        TopologySpec {
            mtu: topo.mtu.0,
            dut_ip: topo.dut.0.map(|cidr| cidr.addr),
            prefix: topo
                .dut
                .0
                .map_or(crate::case::default_prefix(), |cidr| cidr.prefix),
            peer_ip: topo.peer,
            routes: topo
                .routes
                .iter()
                .map(|r| RouteSpec {
                    dst: r.to.addr,
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
    if let (true, Some(ip)) = (spec.dut_kernel_address, spec.dut_ip) {
        netlink.add_address(eth, ip, spec.prefix)?;
    }
    if spec.dut_kernel_address {
        netlink.set_up(eth)?;
    } else {
        netlink.set_up_with_mac(eth, KERNEL_SIDE_MAC)?;
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
