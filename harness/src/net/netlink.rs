//! Links, addresses, routes and neighbours over rtnetlink: the one module that owns it.
//!
//! A [`Netlink`] talks to the namespace of the thread that opened it (the netlink socket is
//! bound there at creation), so open it on a thread inside the namespace to configure. The
//! calls are synchronous: each drives a small single-threaded tokio runtime to completion.

use std::net::IpAddr;
use std::os::fd::RawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::route::{RouteAttribute, RouteMetric, RouteScope, RouteType};
use netlink_packet_route::tc::TcAttribute;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A failed netlink request, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("netlink: {what}: {detail}")]
pub struct NetlinkError {
    pub what: String,
    pub detail: String,
}

fn fail(what: impl Into<String>, detail: impl std::fmt::Display) -> NetlinkError {
    NetlinkError {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// The kind of a route: the case's own type, which the harness keeps apart from
/// tcptwin-stack's `RouteKind` on purpose (the judge shares no code with what it judges).
pub use crate::case::RouteType as RouteKind;

/// A route to add: destination prefix, optional gateway, device, and the TCP-relevant metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub ifindex: Option<u32>,
    pub kind: RouteKind,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub initrwnd: Option<u32>,
    pub src: Option<IpAddr>,
}

/// A netlink connection in the namespace of the thread that opened it.
pub struct Netlink {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netlink")
    }
}

impl Netlink {
    /// Opens a rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetlinkError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| fail("starting a runtime", e))?;
        let handle = runtime.block_on(async {
            let (connection, handle, _) =
                rtnetlink::new_connection().map_err(|e| fail("opening a netlink socket", e))?;
            tokio::spawn(connection);
            Ok::<_, NetlinkError>(handle)
        })?;
        Ok(Netlink { runtime, handle })
    }

    /// Creates a veth pair: `name` here, `peer_name` created directly inside the namespace
    /// `peer_ns` (bring it up from inside that namespace: an `IFF_UP` in the peer's
    /// message makes the kernel refuse the request with ENOTCONN), both with fixed MACs and MTU.
    #[allow(clippy::too_many_arguments)]
    pub fn add_veth(
        &self,
        name: &str,
        mac: [u8; 6],
        peer_name: &str,
        peer_mac: [u8; 6],
        peer_ns: RawFd,
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer_name.to_string())
            .address(peer_mac.to_vec())
            .mtu(mtu)
            .setns_by_fd(peer_ns)
            .build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .address(mac.to_vec())
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.runtime
            .block_on(self.handle.link().add(message).execute())
            .map_err(|e| fail(format!("creating veth {name} <-> {peer_name}"), e))
    }

    /// The index of the interface called `name`.
    pub fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        self.runtime.block_on(async {
            let mut links = self
                .handle
                .link()
                .get()
                .match_name(name.to_string())
                .execute();
            match links.try_next().await {
                Ok(Some(link)) => Ok(link.header.index),
                Ok(None) => Err(fail(format!("looking up {name}"), "no such interface")),
                Err(e) => Err(fail(format!("looking up {name}"), e)),
            }
        })
    }

    /// The names of every interface in this namespace.
    pub fn link_names(&self) -> Result<Vec<String>, NetlinkError> {
        self.runtime.block_on(async {
            let links: Vec<_> = self
                .handle
                .link()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| fail("listing links", e))?;
            Ok(links
                .iter()
                .filter_map(|link| {
                    link.attributes.iter().find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })
                })
                .collect())
        })
    }

    /// Waits until interface `index` can transmit. Bringing a link up only schedules
    /// linkwatch, which later runs `dev_activate` (net/core/link_watch.c) to replace the
    /// `noop` qdisc, which drops everything, with the real one; a frame sent before that is
    /// lost (a first ARP request vanishes and the kernel retries a second later). So poll the
    /// root qdisc until it is no longer `noop`.
    pub fn wait_tx_ready(
        &self,
        index: u32,
        timeout: std::time::Duration,
    ) -> Result<(), NetlinkError> {
        let started = std::time::Instant::now();
        loop {
            let kinds: Vec<String> = self.runtime.block_on(async {
                let messages: Vec<_> = self
                    .handle
                    .clone()
                    .qdisc()
                    .get()
                    .execute()
                    .try_collect()
                    .await
                    .map_err(|e| fail("listing qdiscs", e))?;
                Ok::<_, NetlinkError>(
                    messages
                        .iter()
                        .filter(|m| m.header.index == index as i32)
                        .flat_map(|m| {
                            m.attributes.iter().filter_map(|a| match a {
                                TcAttribute::Kind(kind) => Some(kind.clone()),
                                _ => None,
                            })
                        })
                        .collect(),
                )
            })?;
            if !kinds.is_empty() && kinds.iter().all(|k| k != "noop") {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(fail(
                    format!("waiting for link {index} to transmit"),
                    format!("qdisc still {kinds:?} after {timeout:?}"),
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
    }

    /// Brings an interface up.
    pub fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.runtime
            .block_on(self.handle.link().set(message).execute())
            .map_err(|e| fail(format!("bringing link {index} up"), e))
    }

    /// Brings an interface up with `mac` as its own address, in one request.
    pub fn set_up_with_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .up()
            .build();
        self.runtime
            .block_on(self.handle.link().set(message).execute())
            .map_err(|e| fail(format!("bringing link {index} up with its MAC"), e))
    }

    /// Adds an address with its prefix length (this also installs the connected route). An
    /// IPv6 address is added `nodad`: usable at once, with no duplicate address detection
    /// on the wire.
    pub fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        use netlink_packet_route::address::{AddressAttribute, AddressFlags};
        let mut request = self.handle.address().add(index, addr, prefix);
        if addr.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.runtime
            .block_on(request.execute())
            .map_err(|e| fail(format!("adding address {addr}/{prefix}"), e))
    }

    /// Waits until interface `index`'s operational state is up. Linkwatch sets it some time
    /// after the link came up (`linkwatch_do_dev` → `rfc2863_policy`, net/core/link_watch.c),
    /// and IPv6 counts a link ready only then (`addrconf_link_ready`): an IPv6 address
    /// added earlier has its MLD reports sent when that happens, not when it is added.
    pub fn wait_oper_up(
        &self,
        index: u32,
        timeout: std::time::Duration,
    ) -> Result<(), NetlinkError> {
        use netlink_packet_route::link::State;
        let started = std::time::Instant::now();
        loop {
            let state = self.runtime.block_on(async {
                let mut links = self.handle.link().get().match_index(index).execute();
                let link = links
                    .try_next()
                    .await
                    .map_err(|e| fail(format!("reading link {index}'s state"), e))?
                    .ok_or_else(|| fail(format!("reading link {index}'s state"), "no such link"))?;
                Ok::<_, NetlinkError>(link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::OperState(state) => Some(*state),
                    _ => None,
                }))
            })?;
            if state == Some(State::Up) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(fail(
                    format!("waiting for link {index} to be operationally up"),
                    format!("still {state:?} after {timeout:?}"),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// How many packets interface `index` has sent (`IFLA_STATS64`).
    pub fn tx_packets(&self, index: u32) -> Result<u64, NetlinkError> {
        self.runtime.block_on(async {
            let mut links = self.handle.link().get().match_index(index).execute();
            let link = links
                .try_next()
                .await
                .map_err(|e| fail(format!("reading link {index}'s counters"), e))?
                .ok_or_else(|| fail(format!("reading link {index}'s counters"), "no such link"))?;
            link.attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Stats64(stats) => Some(stats.tx_packets),
                    _ => None,
                })
                .ok_or_else(|| {
                    fail(
                        format!("reading link {index}'s counters"),
                        "no IFLA_STATS64",
                    )
                })
        })
    }

    /// Adds (or replaces, for the connected route) a route in the main table.
    pub fn add_route(&self, route: &Route) -> Result<(), NetlinkError> {
        let what = || format!("adding route {}/{}", route.dst, route.prefix);
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.dst, route.prefix)
            .map_err(|e| fail(what(), e))?
            .kind(match route.kind {
                RouteKind::Unicast => RouteType::Unicast,
                RouteKind::Unreachable => RouteType::Unreachable,
                RouteKind::Prohibit => RouteType::Prohibit,
                RouteKind::Blackhole => RouteType::BlackHole,
            });
        if let Some(gateway) = route.gateway {
            builder = builder.gateway(gateway).map_err(|e| fail(what(), e))?;
        } else if route.kind == RouteKind::Unicast {
            builder = builder.scope(RouteScope::Link);
        }
        if let Some(index) = route.ifindex {
            builder = builder.output_interface(index);
        }
        if let Some(src) = route.src {
            builder = builder.pref_source(src).map_err(|e| fail(what(), e))?;
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = route.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = route.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if let Some(initrwnd) = route.initrwnd {
            metrics.push(RouteMetric::InitRwnd(initrwnd));
        }
        if !metrics.is_empty() {
            builder
                .get_mut()
                .attributes
                .push(RouteAttribute::Metrics(metrics));
        }
        self.runtime
            .block_on(self.handle.route().add(builder.build()).replace().execute())
            .map_err(|e| fail(what(), e))
    }

    /// Adds a permanent neighbour (ARP) entry.
    pub fn add_neighbour(&self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<(), NetlinkError> {
        self.runtime
            .block_on(
                self.handle
                    .neighbours()
                    .add(index, ip)
                    .link_layer_address(&mac)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute(),
            )
            .map_err(|e| fail(format!("adding neighbour {ip}"), e))
    }
}
