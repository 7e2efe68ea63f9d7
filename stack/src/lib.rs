//! tcptwin-stack: a sans-IO TCP/IP stack whose active open mirrors Linux 6.18.
//!
//! The core ([`Stack`]) makes no system call and reads no clock: time comes in
//! as an [`Instant`] argument, received Ethernet frames come in through
//! [`Stack::handle_frame`], and frames to send and timer deadlines come out of
//! [`Stack::poll_transmit`] and [`Stack::poll_timeout`]. The `driver` module
//! (not part of the core, and built only with the cargo feature `driver`) attaches a
//! stack to an AF_PACKET socket with tokio timers; without the feature the crate has no
//! tokio, nix or libc dependency.
//!
//! Modules, each mirroring a part of Linux:
//!
//! | module | mirrors |
//! | --- | --- |
//! | [`wire`] | packet formats (IPv4 and IPv6) |
//! | [`neigh`] | `neigh_*`, `arp_*`, `ndisc_*` |
//! | [`route`] | `ip_route_connect`, `fib_lookup`, `ipv4_default_advmss` |
//! | [`route6`] | `ip6_dst_lookup_flow`, `ip6_route_output`, `ip6_default_advmss` |
//! | [`flowlabel`] | `ip6_make_flowlabel` |
//! | [`ports`] | `__inet_hash_connect`, `inet6_hash_connect`, `inet_csk_get_port` |
//! | [`tcp`] | `tcp_connect`, `tcp_retransmit_timer`, `tcp_rcv_synsent_state_process`, `tcp_v4_err`, `tcp_v6_err` |
//! | [`stack`] | `tcp_v4_connect`, `tcp_v6_connect`, `inet6_bind`, `ip6_xmit`, `ndisc_recv_ns`/`ndisc_recv_na` |
//! | [`socket`] | `__inet_stream_connect`, `sock_setsockopt`, `do_tcp_setsockopt`, `do_ipv6_setsockopt`, `tcp_poll` |
//! | [`config`] | the sysctls |
//!
//! IPv4 and IPv6 share everything past the connect: the connection's 4-tuple is a
//! `SocketAddr` of either family, and only routing, neighbour resolution, the IP header
//! and ICMP differ. An AF_INET6 socket ([`Stack::socket_in`]) connected to a v4-mapped
//! address runs over IPv4.
//!
//! The kernel source (Linux 6.18) is the specification; `KERNEL-CONNECT.md`
//! summarises it, and doc comments cite the function each piece mirrors.

pub mod config;
pub mod errno;
pub mod flowlabel;
pub mod rand;
pub mod time;
pub mod wire;

pub use config::{Config, Mutation};
pub use errno::Errno;
pub use time::Instant;
pub mod neigh;
pub mod ports;
pub mod route;
pub mod route6;
pub mod socket;
pub mod stack;
pub mod tcp;

pub use route::{Interface, Ipv6Cidr, Route, RouteKind};
pub use route6::Route6;
pub use socket::{Domain, SockAddr, SockOpt, SockOptName, SockOptValue};
pub use stack::{Connect, SocketHandle, Stack, Stats};
pub use tcp::State;
pub use wire::EthernetAddress;

// The I/O driver: AF_PACKET socket, packet ring and tokio timers (system calls).
#[cfg(feature = "driver")]
pub mod driver;
#[cfg(feature = "driver")]
pub mod packet_socket;
#[cfg(feature = "driver")]
pub mod rx_ring;
