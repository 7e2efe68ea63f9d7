//! The sans-IO stack: one interface, its routes and neighbours, the port
//! table and the sockets. Frames in through [`Stack::handle_frame`], frames out
//! through [`Stack::poll_transmit`], timers through [`Stack::poll_timeout`] and
//! [`Stack::handle_timeout`]; the socket calls take `now` as well.
//!
//! This file holds the IPv4 side and what both families share; the IPv6 side is in
//! `stack/ipv6.rs` (`tcp_v6_connect`, IPv6 input and output, `tcp_v6_err`) and
//! `stack/ndisc.rs` (neighbour discovery on the wire).

use crate::config::Config;
use crate::errno::Errno;
use crate::neigh::{NeighCache, Pending};
use crate::ports::Ports;
use crate::rand::{siphash, Rng, SipKey};
use crate::route::{Interface, Route, RouteTable};
use crate::route6::Route6;
use crate::socket::{
    Domain, SockAddr, SockOpt, SockOptName, SockOptValue, SockState, Socket, AF_INET, AF_UNSPEC,
    SOCKADDR_IN_LEN, SOCKADDR_STORAGE_LEN,
};
use crate::tcp::{self, ConnectInit, Output, State, Tcb, RCV_SHUTDOWN, SEND_SHUTDOWN};
use crate::time::Instant;
use crate::wire::ethernet::build_frame;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IcmpPacket, IcmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

mod ipv6;
mod ndisc;

/// A socket of the stack (an index; stale handles give EBADF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle(pub usize);

/// What `connect()` does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// The call returns this result now.
    Done(Result<(), Errno>),
    /// A blocking connect sleeps in `inet_wait_for_connect`: drive the stack
    /// and call [`Stack::connect_wait`] after each event until it returns a
    /// result, or return `on_timeout` once `deadline` (`SO_SNDTIMEO`) passes.
    Wait {
        /// `now + SO_SNDTIMEO`, or None to wait forever.
        deadline: Option<Instant>,
        /// The preset error: EINPROGRESS (first call) or EALREADY.
        on_timeout: Errno,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames given to `handle_frame`.
    pub rx_frames: u64,
    /// Frames dropped as malformed (truncated, bad checksum, bad lengths).
    pub rx_malformed: u64,
    /// Frames ignored (not for us, unknown protocol).
    pub rx_ignored: u64,
    /// Frames handed out by `poll_transmit`.
    pub tx_frames: u64,
    /// Packets dropped because neighbour resolution (ARP or ND) had no probes to send.
    pub tx_dropped: u64,
}

/// The stack.
#[derive(Debug)]
pub struct Stack {
    cfg: Config,
    routes: RouteTable,
    neigh: NeighCache,
    ports: Ports,
    rng: Rng,
    isn_key: SipKey,
    ts_key: SipKey,
    /// The key of the flow hash of packets no socket sends (`skb_get_hash_flowi6`'s
    /// `hashrnd`), from which their automatic IPv6 flow label comes.
    flow_key: SipKey,
    sockets: Vec<Option<Socket>>,
    /// Lookup structures over `sockets`, so that neither a frame nor a timer
    /// query walks every socket (a connect loop leaves thousands in TIME-WAIT).
    index: SocketIndex,
    tx: VecDeque<Vec<u8>>,
    loopback: VecDeque<Vec<u8>>,
    stats: Stats,
}

impl Stack {
    /// A stack for one Ethernet interface (`mac`, `addr/prefix_len`, `mtu`)
    /// with static `routes` (the connected route is implied), sysctls `config`,
    /// and all randomness (secrets, ISN keys, IP IDs, port offsets) derived
    /// from `seed`.
    pub fn new(config: Config, iface: Interface, routes: Vec<Route>, seed: u64) -> Self {
        let mut table = RouteTable::new(iface, routes);
        table.set_eui64_link_local(config.ipv6_addr_gen_mode == 0);
        let mut rng = Rng::new(seed);
        let isn_key = rng.key();
        let ts_key = rng.key();
        let ports = Ports::new(&mut rng);
        let flow_key = rng.key();
        Stack {
            cfg: config,
            routes: table,
            neigh: NeighCache::new(),
            ports,
            rng,
            isn_key,
            ts_key,
            flow_key,
            sockets: Vec::new(),
            index: SocketIndex::default(),
            tx: VecDeque::new(),
            loopback: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The sysctls.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Change the sysctls (like writing `/proc/sys`; affects later connects).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.cfg
    }
    /// The interface.
    pub fn interface(&self) -> &Interface {
        self.routes.interface()
    }
    /// The same stack with the IPv6 address `addr/prefix_len` on its interface (`ip -6
    /// addr add … nodad`); the interface then also has its EUI-64 link-local address (unless
    /// `addr_gen_mode` is none), and the routes of its prefixes. Without it the stack has no IPv6 but `::1`.
    pub fn with_ipv6(mut self, addr: std::net::Ipv6Addr, prefix_len: u8) -> Self {
        self.routes
            .set_ipv6(Some(crate::route::Ipv6Cidr { addr, prefix_len }));
        self
    }
    /// The same stack with its interface known by `ifindex` (by default
    /// [`crate::route::DEFAULT_IFINDEX`]), as a `sin6_scope_id` names it.
    pub fn with_ifindex(mut self, ifindex: u32) -> Self {
        self.routes.set_ifindex(ifindex);
        self
    }
    /// The interface's IPv6 address and prefix, if it has one.
    pub fn ipv6(&self) -> Option<crate::route::Ipv6Cidr> {
        self.routes.ipv6()
    }
    /// Add an IPv6 route (`ip -6 route add`); the interface's own prefixes need none.
    pub fn add_route6(&mut self, route: Route6) {
        self.routes.add_route6(route);
    }
    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// The neighbour cache.
    pub fn neighbours(&self) -> &NeighCache {
        &self.neigh
    }

    fn sock(&self, h: SocketHandle) -> Result<&Socket, Errno> {
        match self.sockets.get(h.0) {
            Some(Some(s)) if !s.orphan => Ok(s),
            _ => Err(Errno::EBADF),
        }
    }
    fn sock_mut(&mut self, h: SocketHandle) -> Result<&mut Socket, Errno> {
        self.touch(h.0);
        match self.sockets.get_mut(h.0) {
            Some(Some(s)) if !s.orphan => Ok(s),
            _ => Err(Errno::EBADF),
        }
    }
    fn sk(&mut self, idx: usize) -> &mut Socket {
        self.touch(idx);
        self.sockets[idx].as_mut().expect("live socket")
    }

    /// Slot `idx` is about to change (its timers, 4-tuple or state): bring
    /// the index up to date with every earlier change, then mark `idx`, whose
    /// entries are stale until the next call.
    fn touch(&mut self, idx: usize) {
        self.index.sync(&self.sockets);
        self.index.dirty = Some(idx);
    }

    /// The TCP state of a socket (diagnostics).
    pub fn tcp_state(&self, h: SocketHandle) -> Result<State, Errno> {
        Ok(self.sock(h)?.tcb.state())
    }
    /// The connection of a socket (diagnostics, tests).
    pub fn tcb(&self, h: SocketHandle) -> Result<&Tcb, Errno> {
        Ok(&self.sock(h)?.tcb)
    }

    /// `socket(AF_INET, SOCK_STREAM, 0)`.
    pub fn socket(&mut self) -> SocketHandle {
        self.socket_in(Domain::Inet)
    }

    /// `socket(domain, SOCK_STREAM, 0)`: [`Domain::Inet6`] makes an AF_INET6 socket,
    /// whose `bind`/`connect` take a `sockaddr_in6` ([`SockAddr::inet6`]) and whose
    /// addresses [`Stack::getsockname_addr`]/[`Stack::getpeername_addr`] report as IPv6
    /// (`::ffff:a.b.c.d` for an IPv4 connection).
    pub fn socket_in(&mut self, domain: Domain) -> SocketHandle {
        let s = Socket::new_in(&self.cfg, domain);
        // The lowest free slot, as before: handles are small and reused.
        let i = match self.index.free.pop_first() {
            Some(i) => {
                self.touch(i);
                self.sockets[i] = Some(s);
                i
            }
            None => {
                self.sockets.push(Some(s));
                self.touch(self.sockets.len() - 1);
                self.sockets.len() - 1
            }
        };
        SocketHandle(i)
    }

    /// `setsockopt` (and `fcntl(O_NONBLOCK)` via [`SockOpt::NonBlocking`]) at `now`:
    /// `TCP_QUICKACK` may send an owed ACK.
    pub fn setsockopt(&mut self, now: Instant, h: SocketHandle, opt: SockOpt) -> Result<(), Errno> {
        let cfg = self.cfg.clone();
        let s = self.sock_mut(h)?;
        s.setsockopt(&cfg, opt.clone())?;
        let mut out = Vec::new();
        match opt {
            SockOpt::TcpQuickAck(val) => s.tcb.quickack_owed_ack(now, val, &mut out),
            // __tcp_sock_set_nodelay(on): tcp_push_pending_frames.
            SockOpt::TcpNoDelay(v) if v != 0 => s.tcb.push(now, &mut out),
            _ => {}
        }
        self.emit(now, h.0, out);
        Ok(())
    }

    /// `getsockopt`.
    pub fn getsockopt(
        &mut self,
        h: SocketHandle,
        name: SockOptName,
    ) -> Result<SockOptValue, Errno> {
        let default_hops = self.cfg.ipv6_hop_limit;
        let s = self.sock_mut(h)?;
        // ip6_dst_hoplimit: the route's metric, else the device's hop_limit.
        let hops = s.route_ttl.unwrap_or(default_hops);
        s.getsockopt(name, hops)
    }

    /// `poll`: the `tcp_poll` mask (see [`crate::socket::poll`]).
    pub fn poll(&self, h: SocketHandle) -> Result<u32, Errno> {
        Ok(self.sock(h)?.poll())
    }

    /// Mirrors `inet_bind`/`__inet_bind` (net/ipv4/af_inet.c), or `inet6_bind`/`__inet6_bind`
    /// (net/ipv6/af_inet6.c) for an AF_INET6 socket.
    pub fn bind(&mut self, h: SocketHandle, addr: &SockAddr) -> Result<(), Errno> {
        let idx = h.0;
        let s = self.sock(h)?;
        if s.domain == Domain::Inet6 {
            return self.inet6_bind(idx, addr);
        }
        if addr.len() > SOCKADDR_STORAGE_LEN || addr.len() < SOCKADDR_IN_LEN {
            return Err(Errno::EINVAL);
        }
        let a = addr.inet_addr().ok_or(Errno::EINVAL)?;
        if addr.family() != Some(AF_INET)
            && (addr.family() != Some(AF_UNSPEC) || !a.ip().is_unspecified())
        {
            return Err(Errno::EAFNOSUPPORT);
        }
        if !a.ip().is_unspecified() && !self.routes.is_local(*a.ip()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if s.tcb.state() != State::Closed || s.local_port.is_some() || s.bound_addr.is_some() {
            return Err(Errno::EINVAL);
        }
        let no_port = s.bind_address_no_port;
        let ip = IpAddr::V4(*a.ip());
        let port = self
            .ports
            .bind(&self.cfg, &mut self.rng, idx, ip, a.port(), no_port)?;
        let s = self.sk(idx);
        s.bound_addr = (!a.ip().is_unspecified()).then_some(ip);
        s.local_addr = s.bound_addr;
        s.bound_port = port;
        s.local_port = port;
        s.bindport_lock = a.port() != 0;
        Ok(())
    }

    /// `getsockname` of an AF_INET socket. For an AF_INET6 socket this gives the IPv4
    /// address of an IPv4 (v4-mapped) binding or connection and EAFNOSUPPORT otherwise;
    /// [`Stack::getsockname_addr`] reports either family.
    pub fn getsockname(&self, h: SocketHandle) -> Result<SocketAddrV4, Errno> {
        v4_only(self.getsockname_addr(h)?)
    }

    /// `getpeername` of an AF_INET socket (ENOTCONN in CLOSE and SYN_SENT, as
    /// `inet_getname`); see [`Stack::getsockname`] for AF_INET6 sockets.
    pub fn getpeername(&self, h: SocketHandle) -> Result<SocketAddrV4, Errno> {
        v4_only(self.getpeername_addr(h)?)
    }

    /// `getsockname` as the socket's family writes it (`inet_getname`, `inet6_getname`):
    /// a `SocketAddr::V4` for an AF_INET socket, a `SocketAddr::V6` for an AF_INET6 one
    /// (an IPv4 address as `::ffff:a.b.c.d`; scope id = the bound interface for a
    /// link-local address).
    pub fn getsockname_addr(&self, h: SocketHandle) -> Result<SocketAddr, Errno> {
        let s = self.sock(h)?;
        let ip = s.local_addr.unwrap_or(match s.domain {
            Domain::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Domain::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
        Ok(ipv6::in_domain(s, ip, s.local_port.unwrap_or(0)))
    }

    /// `getpeername` as the socket's family writes it (ENOTCONN in CLOSE and SYN_SENT);
    /// see [`Stack::getsockname_addr`].
    pub fn getpeername_addr(&self, h: SocketHandle) -> Result<SocketAddr, Errno> {
        let s = self.sock(h)?;
        if matches!(s.tcb.state(), State::Closed | State::SynSent) || s.tcb.remote.port() == 0 {
            return Err(Errno::ENOTCONN);
        }
        Ok(ipv6::in_domain(s, s.tcb.remote.ip(), s.tcb.remote.port()))
    }

    /// `connect()`: mirrors `__inet_stream_connect` (net/ipv4/af_inet.c) and
    /// `tcp_v4_connect` (net/ipv4/tcp_ipv4.c). A nonblocking socket gets its
    /// answer at once (EINPROGRESS, EALREADY, 0, or the stored error); a
    /// blocking one may get [`Connect::Wait`].
    pub fn connect(&mut self, now: Instant, h: SocketHandle, addr: &SockAddr) -> Connect {
        let r = self.connect_inner(now, h, addr);
        self.process_loopback(now);
        r
    }

    fn connect_inner(&mut self, now: Instant, h: SocketHandle, addr: &SockAddr) -> Connect {
        let idx = h.0;
        let s = match self.sock(h) {
            Ok(s) => s,
            Err(e) => return Connect::Done(Err(e)),
        };
        // move_addr_to_kernel, then __inet_stream_connect's checks.
        if addr.len() > SOCKADDR_STORAGE_LEN || addr.len() < 2 {
            return Connect::Done(Err(Errno::EINVAL));
        }
        if addr.family() == Some(AF_UNSPEC) {
            self.disconnect(now, idx);
            let s = self.sk(idx);
            s.disconnects += 1;
            s.set_state(SockState::Unconnected);
            return Connect::Done(Ok(()));
        }
        let preset = match s.state() {
            SockState::Disconnecting => return Connect::Done(Err(Errno::EINVAL)),
            SockState::Connected => return Connect::Done(Err(Errno::EISCONN)),
            SockState::Connecting => Errno::EALREADY,
            SockState::Unconnected => {
                if s.tcb.state() != State::Closed {
                    return Connect::Done(Err(Errno::EISCONN));
                }
                let r = match s.domain {
                    Domain::Inet => self.tcp_v4_connect(now, idx, addr),
                    Domain::Inet6 => self.tcp_v6_connect(now, idx, addr),
                };
                if let Err(e) = r {
                    return Connect::Done(Err(e));
                }
                self.sk(idx).set_state(SockState::Connecting);
                Errno::EINPROGRESS
            }
        };
        let s = self.sk(idx);
        if s.tcb.state().is_connecting() {
            if s.nonblocking {
                return Connect::Done(Err(preset));
            }
            return Connect::Wait {
                deadline: s.sndtimeo.map(|d| now + d),
                on_timeout: preset,
            };
        }
        Connect::Done(self.connect_finish(now, idx))
    }

    /// Continue a blocking connect after [`Connect::Wait`]: `None` while the
    /// socket is still in SYN_SENT/SYN_RECV, then the call's result.
    pub fn connect_wait(&mut self, now: Instant, h: SocketHandle) -> Option<Result<(), Errno>> {
        self.process_loopback(now);
        match self.sock(h) {
            Err(e) => Some(Err(e)),
            Ok(s) if s.tcb.state().is_connecting() => None,
            Ok(_) => Some(self.connect_finish(now, h.0)),
        }
    }

    /// Steps 6–7 of `__inet_stream_connect`: a closed socket reports
    /// `sock_error` (or ECONNABORTED) and is disconnected; otherwise SS_CONNECTED.
    fn connect_finish(&mut self, now: Instant, idx: usize) -> Result<(), Errno> {
        let s = self.sk(idx);
        if s.tcb.state() == State::Closed {
            let err = s.tcb.sk_err.take().unwrap_or(Errno::ECONNABORTED);
            s.set_state(SockState::Unconnected);
            s.disconnects += 1;
            self.disconnect(now, idx);
            Err(err)
        } else {
            s.set_state(SockState::Connected);
            Ok(())
        }
    }

    /// `tcp_disconnect` plus the port/address release of `tcp_set_state(CLOSE)`.
    fn disconnect(&mut self, now: Instant, idx: usize) {
        let mut out = Vec::new();
        self.sk(idx).tcb.disconnect(now, &mut out);
        self.emit(now, idx, out);
        self.release_port(idx);
        let s = self.sk(idx);
        if s.bound_addr.is_none() {
            s.local_addr = None;
        }
    }

    fn release_port(&mut self, idx: usize) {
        let s = self.sk(idx);
        if s.bindport_lock {
            return;
        }
        s.local_port = None;
        s.bound_port = None;
        self.ports.release(idx);
    }

    /// `secure_tcp_seq` / `secure_tcpv6_seq` (net/core/secure_seq.c): keyed hash of the
    /// 4-tuple plus the 64 ns clock.
    fn secure_tcp_seq(
        &self,
        now: Instant,
        saddr: IpAddr,
        daddr: IpAddr,
        sport: u16,
        dport: u16,
    ) -> u32 {
        let d = four_tuple_bytes(saddr, daddr, sport, dport);
        (siphash(self.isn_key, &d) as u32).wrapping_add((now.as_nanos() >> 6) as u32)
    }

    /// `secure_tcp_ts_off`: keyed by the addresses and the ports when
    /// `tcp_timestamps == 1`, else 0. Linux 6.18 keys it by the ports too: a socket that
    /// connects again from a new port starts from a new TSval base (measured by
    /// `reconnect-forgets-window-clamp`).
    fn secure_tcp_ts_off(&self, saddr: IpAddr, daddr: IpAddr, sport: u16, dport: u16) -> u32 {
        if self.cfg.tcp_timestamps != 1 {
            return 0;
        }
        siphash(self.ts_key, &four_tuple_bytes(saddr, daddr, sport, dport)) as u32
    }

    /// Mirrors `tcp_v4_connect` (net/ipv4/tcp_ipv4.c), KERNEL-CONNECT.md §2.
    fn tcp_v4_connect(&mut self, now: Instant, idx: usize, addr: &SockAddr) -> Result<(), Errno> {
        if addr.len() < SOCKADDR_IN_LEN {
            return Err(Errno::EINVAL);
        }
        if addr.family() != Some(AF_INET) {
            return Err(Errno::EAFNOSUPPORT);
        }
        let dst = addr.inet_addr().ok_or(Errno::EINVAL)?;
        let s = self.sk(idx);
        let mut nexthop = *dst.ip();
        let srr = s.ip_options.faddr;
        if let Some(f) = srr {
            if dst.ip().is_unspecified() {
                return Err(Errno::EINVAL);
            }
            nexthop = f;
        }
        // An AF_INET6 socket bound to an IPv6 address is v6-only, so never gets here.
        let bound = match s.bound_addr {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        let ext_hdr_len = s.ip_options.bytes.len() as u32;
        let rt = self.routes.lookup(nexthop, bound)?;
        let daddr = IpAddr::V4(if srr.is_some() { *dst.ip() } else { rt.dst });
        let saddr = IpAddr::V4(rt.src);
        let dport = dst.port();
        self.finish_connect_setup(
            now,
            idx,
            ConnectRoute {
                saddr,
                daddr,
                dport,
                mtu: rt.mtu,
                advmss: rt.advmss,
                next_hop: rt.next_hop.map(IpAddr::V4),
                hoplimit: rt.hoplimit,
                window: rt.window,
                initrwnd: rt.initrwnd,
                ecn: rt.ecn,
                ext_hdr_len,
                net_header_len: 20,
                mss_clamp: tcp::TCP_MSS_DEFAULT,
            },
        )
    }

    /// What `tcp_v4_connect` and `tcp_v6_connect` share once the route is known: the
    /// port (`inet_hash_connect`/`inet6_hash_connect`), the ISN and timestamp offset,
    /// `sk_set_txhash`, and `tcp_connect`.
    fn finish_connect_setup(
        &mut self,
        now: Instant,
        idx: usize,
        rt: ConnectRoute,
    ) -> Result<(), Errno> {
        let ConnectRoute {
            saddr,
            daddr,
            dport,
            ..
        } = rt;
        let lport = match self.sk(idx).bound_port {
            Some(p) => {
                self.ports
                    .check_established(idx, saddr, p, (daddr, dport))?;
                p
            }
            None => self.ports.hash_connect(
                &self.cfg,
                &mut self.rng,
                now,
                idx,
                saddr,
                (daddr, dport),
            )?,
        };
        self.ports.set_remote(idx, Some((daddr, dport)), saddr);
        let isn = self.secure_tcp_seq(now, saddr, daddr, lport, dport);
        let ts_offset = self.secure_tcp_ts_off(saddr, daddr, lport, dport);
        let ip_id = self.rng.next_u16();
        let txhash_seed = self.rng.next_u64();
        let init = ConnectInit {
            local: SocketAddr::new(saddr, lport),
            remote: SocketAddr::new(daddr, dport),
            isn,
            ts_offset,
            mtu: rt.mtu,
            route_advmss: rt.advmss,
            route_window: rt.window,
            route_initrwnd: rt.initrwnd,
            route_ecn: rt.ecn,
            ext_hdr_len: rt.ext_hdr_len,
            net_header_len: rt.net_header_len,
            mss_clamp: rt.mss_clamp,
        };
        let cfg = self.cfg.clone();
        let s = self.sk(idx);
        s.local_addr = Some(saddr);
        s.local_port = Some(lport);
        s.next_hop = rt.next_hop;
        s.route_ttl = rt.hoplimit;
        s.tcb.ip_id = ip_id;
        s.tcb.set_txhash(txhash_seed);
        let mut out = Vec::new();
        s.tcb.connect(now, &cfg, &init, &mut out);
        tracing::trace!(local = %init.local, remote = %init.remote, isn = s.tcb.iss, "connect: SYN");
        self.emit(now, idx, out);
        Ok(())
    }

    /// `send()`/`write()` (`tcp_sendmsg`): EAGAIN while connecting (a blocking
    /// caller waits for POLLOUT and retries), EPIPE once shut down.
    pub fn send(&mut self, now: Instant, h: SocketHandle, data: &[u8]) -> Result<usize, Errno> {
        let idx = h.0;
        let s = self.sock_mut(h)?;
        if let Some(e) = s.tcb.sk_err.take() {
            return Err(e);
        }
        if s.tcb.shutdown & SEND_SHUTDOWN != 0 {
            return Err(Errno::EPIPE);
        }
        let mut out = Vec::new();
        let n = match s.tcb.state() {
            State::Established | State::CloseWait => {
                let n = s.tcb.send(now, data, &mut out);
                // sk_stream_wait_memory: nothing copied, nonblocking → EAGAIN.
                if n == 0 && !data.is_empty() {
                    return Err(Errno::EAGAIN);
                }
                n
            }
            State::SynSent | State::SynRecv => return Err(Errno::EAGAIN),
            _ => return Err(Errno::EPIPE),
        };
        self.emit(now, idx, out);
        Ok(n)
    }

    /// `recv()`/`read()`: data, 0 at EOF, the pending error, EAGAIN, or ENOTCONN.
    /// Reading may send an ACK or a window update (`tcp_cleanup_rbuf`).
    pub fn recv(&mut self, now: Instant, h: SocketHandle, buf: &mut [u8]) -> Result<usize, Errno> {
        let idx = h.0;
        let s = self.sock_mut(h)?;
        let mut out = Vec::new();
        let n = s.tcb.recv(now, buf, &mut out);
        self.emit(now, idx, out);
        let s = self.sock_mut(h)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        if s.tcb.shutdown & RCV_SHUTDOWN != 0 {
            return Ok(0);
        }
        if let Some(e) = s.tcb.sk_err.take() {
            return Err(e);
        }
        if s.tcb.state() == State::Closed {
            return Err(Errno::ENOTCONN);
        }
        Err(Errno::EAGAIN)
    }

    /// `close()` (`tcp_close`): nothing on the wire from CLOSE/SYN_SENT, a FIN
    /// from ESTABLISHED/CLOSE_WAIT (the connection lingers until it is done),
    /// a RST if unread data is pending. The handle is invalid afterwards.
    pub fn close(&mut self, now: Instant, h: SocketHandle) -> Result<(), Errno> {
        let idx = h.0;
        let s = self.sock_mut(h)?;
        let mut out = Vec::new();
        s.tcb.close(now, &mut out);
        s.orphan = true;
        self.emit(now, idx, out);
        self.after_event(idx);
        Ok(())
    }

    /// Abortive close (`SO_LINGER` 0 then `close`): RST from synchronized states.
    pub fn abort(&mut self, now: Instant, h: SocketHandle) -> Result<(), Errno> {
        let idx = h.0;
        let s = self.sock_mut(h)?;
        let mut out = Vec::new();
        s.tcb.abort(now, &mut out);
        s.orphan = true;
        self.emit(now, idx, out);
        self.after_event(idx);
        Ok(())
    }

    /// After anything that may have closed a connection: `tcp_set_state(CLOSE)`
    /// releases an unlocked port; an orphan that is done is freed.
    fn after_event(&mut self, idx: usize) {
        let Some(Some(s)) = self.sockets.get(idx) else {
            return;
        };
        if s.tcb.state() != State::Closed {
            return;
        }
        if s.local_port.is_some() && !s.bindport_lock {
            self.release_port(idx);
        }
        if self.sk(idx).orphan {
            self.ports.release(idx);
            self.neigh.disown(idx);
            self.touch(idx);
            self.sockets[idx] = None;
            self.index.free.insert(idx);
        }
    }

    // ---- output -------------------------------------------------------------------

    fn emit(&mut self, now: Instant, idx: usize, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Segment { repr, ect } => self.emit_segment(now, idx, &repr, ect),
                Output::ControlReset { repr, tos } => {
                    let t = &self.sk(idx).tcb;
                    let (src, dst, hash) = (t.local.ip(), t.remote.ip(), t.txhash);
                    self.emit_control(now, src, dst, &repr, tos, None, Some(hash));
                }
                Output::ControlAck { repr, oow } => {
                    let s = self.sk(idx);
                    let (src, dst) = (s.tcb.local.ip(), s.tcb.remote.ip());
                    let hash = s.tcb.txhash;
                    // tw_tos (inet->tos with the ECT bit of the last segment
                    // sent); ip_select_ttl with the control socket's uc_ttl
                    // of -1: the route's hoplimit or ip_default_ttl.
                    // (tw_tclass for IPv6.)
                    let base = if dst.is_ipv6() { s.tclass } else { s.tos };
                    let tw_tos = base | if s.tos_ect { 0b10 } else { 0 };
                    let tos = if oow { tw_tos & !3 } else { tw_tos };
                    let hops = s.route_ttl;
                    self.emit_control(now, src, dst, &repr, tos, hops, Some(hash));
                }
            }
        }
    }

    /// `__ip_queue_xmit` for a connection's segment: TOS from `IP_TOS`, TTL
    /// from `IP_TTL`/route/`ip_default_ttl`, DF, `inet_id++`, IP options.
    fn emit_segment(&mut self, now: Instant, idx: usize, repr: &TcpRepr, ect: bool) {
        let (IpAddr::V4(src), IpAddr::V4(final_dst)) =
            (self.sk(idx).tcb.local.ip(), self.sk(idx).tcb.remote.ip())
        else {
            return self.emit_segment_v6(now, idx, repr, ect);
        };
        let default_ttl = self.cfg.ip_default_ttl;
        let s = self.sk(idx);
        s.tos_ect = ect;
        let hdr_dst = s.ip_options.faddr.unwrap_or(final_dst);
        let tcp = repr.to_bytes(src, final_dst);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: hdr_dst,
            protocol: IpProtocol::Tcp,
            tos: s.tos | if ect { 0b10 } else { 0 },
            ident: s.tcb.next_ip_id(),
            // ip_dont_fragment: IP_PMTUDISC_WANT sets DF unless the path MTU is locked.
            dont_frag: !s.tcb.pmtu_locked,
            ttl: s.ttl.or(s.route_ttl).unwrap_or(default_ttl),
            options: if s.ip_options.bytes.is_empty() {
                vec![]
            } else {
                s.ip_options.build(src, final_dst)
            },
            payload_len: tcp.len(),
        };
        let next_hop = s.next_hop;
        let packet = ip.build(&tcp);
        self.ip_output(now, next_hop, packet, Some(idx));
    }

    /// A segment from the per-netns control socket (`tcp_v4_send_reset`,
    /// `tcp_v4_send_ack`; `tcp_v6_send_response` for IPv6), routed afresh. `hops`: the
    /// route's hop limit, None for the default (`ip_default_ttl`, `hop_limit`); `txhash`:
    /// the flow hash of the socket it answers for, None for none (IPv6 flow label).
    #[allow(clippy::too_many_arguments)]
    fn emit_control(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        repr: &TcpRepr,
        tos: u8,
        hops: Option<u8>,
        txhash: Option<u32>,
    ) {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ttl = hops.unwrap_or(self.cfg.ip_default_ttl);
                self.emit_control_v4(now, s, d, repr, tos, ttl);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.emit_control_v6(now, s, d, repr, tos, hops, txhash);
            }
            _ => {}
        }
    }

    /// `ip_send_unicast_reply` from the per-netns control socket: IP ID 0
    /// (no `inet_daddr`, DF), no IP options, routed afresh.
    fn emit_control_v4(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        repr: &TcpRepr,
        tos: u8,
        ttl: u8,
    ) {
        let next_hop = match self.routes.lookup(dst, Some(src)) {
            Ok(r) => r.next_hop,
            Err(_) => return,
        };
        let tcp = repr.to_bytes(src, dst);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::Tcp,
            tos,
            ident: 0,
            dont_frag: true,
            ttl,
            options: vec![],
            payload_len: tcp.len(),
        };
        let packet = ip.build(&tcp);
        self.ip_output(now, next_hop.map(IpAddr::V4), packet, None);
    }

    /// `ip_finish_output2` / `ip6_finish_output2` → `neigh_output`: to `lo`, straight
    /// out with a resolved MAC, or into the neighbour queue (sending the first ARP
    /// request or neighbour solicitation).
    fn ip_output(
        &mut self,
        now: Instant,
        next_hop: Option<IpAddr>,
        packet: Vec<u8>,
        owner: Option<usize>,
    ) {
        let Some(nh) = next_hop else {
            self.loopback.push_back(packet);
            return;
        };
        if let Some(mac) = self.neigh.lookup(nh) {
            self.send_ip_frame(mac, nh, &packet);
            return;
        }
        let source = packet.clone();
        match self
            .neigh
            .enqueue(now, &self.cfg, nh, Pending { packet, owner })
        {
            Ok(true) => self.solicit(nh, Some(&source)),
            Ok(false) => {}
            Err(_) => self.stats.tx_dropped += 1,
        }
    }

    /// A probe for `target`: `arp_solicit` or `ndisc_solicit`, given the packet waiting
    /// for it (whose source address a solicitation takes).
    fn solicit(&mut self, target: IpAddr, waiting: Option<&[u8]>) {
        match target {
            IpAddr::V4(a) => self.send_arp_request(a),
            IpAddr::V6(a) => self.send_neighbour_solicitation(a, waiting),
        }
    }

    /// An IP packet to `mac`, with the EtherType of `next_hop`'s family.
    fn send_ip_frame(&mut self, mac: EthernetAddress, next_hop: IpAddr, packet: &[u8]) {
        let ethertype = match next_hop {
            IpAddr::V4(_) => EtherType::Ipv4,
            IpAddr::V6(_) => EtherType::Ipv6,
        };
        let eth = EthernetRepr {
            src_addr: self.interface().mac,
            dst_addr: mac,
            ethertype,
        };
        self.tx.push_back(build_frame(&eth, packet));
    }

    /// `arp_solicit` for a new entry: a broadcast request, target MAC zero.
    fn send_arp_request(&mut self, target: Ipv4Addr) {
        let iface = *self.interface();
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: iface.mac,
            // `arp_solicit` with no address to give (`inet_select_addr` finds none): 0.0.0.0.
            source_protocol_addr: iface.addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth = EthernetRepr {
            src_addr: iface.mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        };
        self.tx.push_back(build_frame(&eth, &arp.to_bytes()));
    }

    // ---- input --------------------------------------------------------------------

    /// Take one received Ethernet frame. Malformed frames are dropped and
    /// counted; this never panics.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.stats.rx_frames += 1;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let me = self.interface().mac;
        let to_us = eth.dst_addr() == me
            || eth.dst_addr() == EthernetAddress::BROADCAST
            || self.joined_multicast_mac(eth.dst_addr());
        if !to_us {
            self.stats.rx_ignored += 1;
            return;
        }
        match eth.ethertype() {
            EtherType::Arp => self.arp_input(now, eth.payload()),
            EtherType::Ipv4 => self.ipv4_input(now, eth.payload(), false),
            EtherType::Ipv6 => self.ipv6_input(now, eth.src_addr(), eth.payload(), false),
            EtherType::Unknown(_) => self.stats.rx_ignored += 1,
        }
        self.process_loopback(now);
    }

    /// `arp_process` (net/ipv4/arp.c): answer requests for our address and
    /// learn the sender; replies update only existing entries.
    fn arp_input(&mut self, _now: Instant, payload: &[u8]) {
        let Ok(arp) = ArpPacket::new_checked(payload).and_then(|p| ArpRepr::parse(&p)) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let iface = *self.interface();
        let sip = arp.source_protocol_addr;
        if sip.is_unspecified() || sip.is_multicast() || sip.is_broadcast() {
            self.stats.rx_ignored += 1;
            return;
        }
        let for_us = Some(arp.target_protocol_addr) == iface.addr;
        let create = for_us && arp.operation == ArpOperation::Request;
        let flushed = self
            .neigh
            .update(IpAddr::V4(sip), arp.source_hardware_addr, create);
        for p in flushed {
            self.send_ip_frame(arp.source_hardware_addr, IpAddr::V4(sip), &p.packet);
        }
        if let (true, Some(addr)) = (create, iface.addr) {
            let reply = ArpRepr {
                operation: ArpOperation::Reply,
                source_hardware_addr: iface.mac,
                source_protocol_addr: addr,
                target_hardware_addr: arp.source_hardware_addr,
                target_protocol_addr: sip,
            };
            let eth = EthernetRepr {
                src_addr: iface.mac,
                dst_addr: arp.source_hardware_addr,
                ethertype: EtherType::Arp,
            };
            self.tx.push_back(build_frame(&eth, &reply.to_bytes()));
        }
    }

    fn ipv4_input(&mut self, now: Instant, payload: &[u8], from_lo: bool) {
        let Ok(p) = Ipv4Packet::new_checked(payload) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let Ok(ip) = Ipv4Repr::parse(&p) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let ours = Some(ip.dst_addr) == self.interface().addr
            || (from_lo && self.routes.is_local(ip.dst_addr));
        if !ours {
            self.stats.rx_ignored += 1;
            return;
        }
        match ip.protocol {
            IpProtocol::Tcp => {
                let (src, dst) = (IpAddr::V4(ip.src_addr), IpAddr::V4(ip.dst_addr));
                self.tcp_segment_input(now, src, dst, ip.tos, p.payload());
            }
            IpProtocol::Icmp => {
                let Ok(icmp) =
                    IcmpPacket::new_checked(p.payload()).and_then(|i| IcmpRepr::parse(&i))
                else {
                    self.stats.rx_malformed += 1;
                    return;
                };
                self.icmp_input(now, &icmp);
            }
            _ => self.stats.rx_ignored += 1,
        }
    }

    /// Parse a TCP segment (checksum over the pseudo-header of `src`/`dst`'s family)
    /// and hand it to [`Stack::tcp_input`]; malformed ones are counted and dropped.
    fn tcp_segment_input(&mut self, now: Instant, src: IpAddr, dst: IpAddr, tos: u8, bytes: &[u8]) {
        let Ok((seg, auth_bad)) = TcpPacket::new_checked(bytes).and_then(|t| {
            let seg = TcpRepr::parse(&t, src, dst)?;
            Ok((seg, crate::tcp::auth_options_invalid(t.options())))
        }) else {
            self.stats.rx_malformed += 1;
            return;
        };
        self.tcp_input(now, src, dst, tos, &seg, auth_bad);
    }

    /// The lowest-numbered socket not in CLOSE with this 4-tuple.
    fn find_socket(&self, local: SocketAddr, remote: SocketAddr) -> Option<usize> {
        self.index.find(&self.sockets, local, remote)
    }

    /// `tcp_v4_rcv`: to the socket owning the 4-tuple, or a RST from the
    /// control socket (`tcp_v4_send_reset`) when there is none. A segment
    /// whose options fail `tcp_do_parse_auth_options` (`auth_bad`) is
    /// dropped by a full socket (`tcp_inbound_hash`) and never answered
    /// with a RST (`tcp_v4_send_reset` returns early); a timewait socket
    /// still processes it.
    fn tcp_input(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        tos: u8,
        seg: &TcpRepr,
        auth_bad: bool,
    ) {
        let local = SocketAddr::new(dst, seg.dst_port);
        let remote = SocketAddr::new(src, seg.src_port);
        match self.find_socket(local, remote) {
            Some(idx) => {
                let timewait = self.sk(idx).tcb.state() == State::TimeWait;
                if auth_bad && !timewait {
                    self.stats.rx_ignored += 1;
                    return;
                }
                let cfg = self.cfg.clone();
                let mut out = Vec::new();
                self.sk(idx).tcb.input(now, &cfg, seg, tos, &mut out);
                if auth_bad {
                    out.retain(|o| !matches!(o, Output::ControlReset { .. }));
                }
                self.emit(now, idx, out);
                self.after_event(idx);
            }
            None if auth_bad => {}
            None => {
                if let Some(Output::ControlReset { repr, tos }) = Tcb::reset_for(seg, tos) {
                    self.emit_control(now, dst, src, &repr, tos, None, None);
                }
            }
        }
    }

    /// `icmp_unreach` → `tcp_v4_err`: the quoted IP header (IHL ≥ 5) and 8
    /// bytes of TCP select the socket and the sequence number to check.
    fn icmp_input(&mut self, _now: Instant, icmp: &IcmpRepr) {
        let d = &icmp.data;
        if d.len() < 20 {
            self.stats.rx_ignored += 1;
            return;
        }
        let ihl = (d[0] & 0x0f) as usize * 4;
        if ihl < 20 || d.len() < ihl + 8 || d[9] != 6 {
            self.stats.rx_ignored += 1;
            return;
        }
        let qsrc = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
        let qdst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
        let t = &d[ihl..];
        let sport = u16::from_be_bytes([t[0], t[1]]);
        let dport = u16::from_be_bytes([t[2], t[3]]);
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let Some(kind) = tcp::icmp_error(icmp.msg_type, icmp.code, icmp.next_hop_mtu()) else {
            self.stats.rx_ignored += 1;
            return;
        };
        let local = SocketAddr::from((qsrc, sport));
        // __inet_lookup_established by the quoted addresses. A source-routed SYN's header
        // names the first hop, not the destination the socket is hashed under, so an
        // error quoting it finds no socket and is dropped.
        let Some(idx) = self.find_socket(local, SocketAddr::from((qdst, dport))) else {
            self.stats.rx_ignored += 1;
            return;
        };
        let cfg = self.cfg.clone();
        self.sk(idx).tcb.icmp_error(&cfg, seq, kind);
        self.after_event(idx);
    }

    fn process_loopback(&mut self, now: Instant) {
        let mut budget = 64;
        while let Some(p) = self.loopback.pop_front() {
            match p.first().map(|b| b >> 4) {
                Some(6) => self.ipv6_input(now, EthernetAddress::default(), &p, true),
                _ => self.ipv4_input(now, &p, true),
            }
            budget -= 1;
            if budget == 0 {
                self.loopback.clear();
            }
        }
    }

    // ---- output and timers --------------------------------------------------------

    /// The next frame to put on the wire.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.process_loopback(now);
        let f = self.tx.pop_front()?;
        self.stats.tx_frames += 1;
        Some(f)
    }

    /// When [`Stack::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let socks = self.index.earliest(&self.sockets);
        socks.into_iter().chain(self.neigh.poll_timeout()).min()
    }

    /// Run every timer due at `now`: neighbour probes and failures (each
    /// queued packet gets a local ICMP host-unreachable, as `arp_error_report`
    /// → `ipv4_send_dest_unreach` does), then TCP timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ev = self.neigh.handle_timeout(now, &self.cfg);
        for (a, waiting) in ev.probes {
            self.solicit(a, waiting.as_deref());
        }
        for (addr, pending) in ev.failed {
            if addr.is_ipv6() {
                self.ndisc_error_report(pending);
                continue;
            }
            for p in pending {
                let Ok(ip) = Ipv4Packet::new_checked(&p.packet[..]) else {
                    continue;
                };
                let quoted_len = (ip.header_len() as usize + 8).min(p.packet.len());
                let icmp = IcmpRepr::dest_unreachable(1, 0, &p.packet[..quoted_len]);
                self.icmp_input(now, &icmp);
            }
        }
        let cfg = self.cfg.clone();
        // The sockets whose timers are due, in slot order (as a walk over
        // every slot would visit them); a socket's timer work touches no
        // other socket, so the set cannot change along the way.
        self.index.sync(&self.sockets);
        let mut due: Vec<usize> = self.index.due(now).collect();
        due.sort_unstable();
        for idx in due {
            let Some(Some(s)) = self.sockets.get(idx) else {
                continue;
            };
            if s.tcb.poll_timeout().is_none_or(|t| t > now) {
                continue;
            }
            let queued = self.neigh.has_queued(idx);
            let mut out = Vec::new();
            self.sk(idx).tcb.handle_timeout(now, &cfg, queued, &mut out);
            self.emit(now, idx, out);
            self.after_event(idx);
        }
        self.process_loopback(now);
    }
}

/// What the route lookup of `tcp_v4_connect` or `tcp_v6_connect` gave for the connect.
#[derive(Debug, Clone, Copy)]
struct ConnectRoute {
    saddr: IpAddr,
    daddr: IpAddr,
    dport: u16,
    mtu: u32,
    advmss: u32,
    next_hop: Option<IpAddr>,
    hoplimit: Option<u8>,
    window: Option<u32>,
    initrwnd: Option<u32>,
    ecn: bool,
    ext_hdr_len: u32,
    net_header_len: u32,
    mss_clamp: u32,
}

/// The bytes the kernel's keyed hashes of a connection take: both addresses
/// (4 or 16 bytes each), then the ports.
fn four_tuple_bytes(saddr: IpAddr, daddr: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let mut d = crate::rand::addr_bytes(saddr);
    d.extend(crate::rand::addr_bytes(daddr));
    d.extend((((sport as u32) << 16) | dport as u32).to_be_bytes());
    d
}

/// The IPv4 form of an address an AF_INET caller asked for: an IPv6 one (or
/// `::ffff:a.b.c.d`, given back as IPv4) has none.
fn v4_only(a: SocketAddr) -> Result<SocketAddrV4, Errno> {
    match a {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(ip) => Ok(SocketAddrV4::new(ip, a.port())),
            None => Err(Errno::EAFNOSUPPORT),
        },
    }
}

/// What [`SocketIndex`] recorded for one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Indexed {
    /// `Tcb::poll_timeout`.
    deadline: Option<Instant>,
    /// (local, remote) unless the socket is in CLOSE.
    tuple: Option<(SocketAddr, SocketAddr)>,
}

impl Indexed {
    fn of(s: Option<&Socket>) -> Self {
        let Some(s) = s else {
            return Indexed::default();
        };
        Indexed {
            deadline: s.tcb.poll_timeout(),
            tuple: (s.tcb.state() != State::Closed).then_some((s.tcb.local, s.tcb.remote)),
        }
    }
}

/// The socket table's lookup structures: the established hash (what
/// `inet_ehash` is to `__inet_lookup_established`), the timer deadlines in
/// order, and the free slots. At most one slot (`dirty`) may have changed
/// since it was indexed; lookups consult that slot's socket directly.
#[derive(Debug, Default)]
struct SocketIndex {
    recorded: Vec<Indexed>,
    timers: BTreeSet<(Instant, usize)>,
    tuples: HashMap<(SocketAddr, SocketAddr), Vec<usize>>,
    free: BTreeSet<usize>,
    dirty: Option<usize>,
}

impl SocketIndex {
    /// Re-index the dirty slot.
    fn sync(&mut self, sockets: &[Option<Socket>]) {
        let Some(idx) = self.dirty.take() else {
            return;
        };
        let new = Indexed::of(sockets.get(idx).and_then(Option::as_ref));
        if self.recorded.len() <= idx {
            self.recorded.resize(idx + 1, Indexed::default());
        }
        let old = std::mem::replace(&mut self.recorded[idx], new);
        if old.deadline != new.deadline {
            if let Some(t) = old.deadline {
                self.timers.remove(&(t, idx));
            }
            if let Some(t) = new.deadline {
                self.timers.insert((t, idx));
            }
        }
        if old.tuple != new.tuple {
            if let Some(k) = old.tuple {
                if let Some(v) = self.tuples.get_mut(&k) {
                    v.retain(|&i| i != idx);
                    if v.is_empty() {
                        self.tuples.remove(&k);
                    }
                }
            }
            if let Some(k) = new.tuple {
                self.tuples.entry(k).or_default().push(idx);
            }
        }
    }

    /// The dirty slot's socket as it is now.
    fn dirty_now(&self, sockets: &[Option<Socket>]) -> Option<(usize, Indexed)> {
        let idx = self.dirty?;
        Some((idx, Indexed::of(sockets.get(idx).and_then(Option::as_ref))))
    }

    /// The lowest slot not in CLOSE with this 4-tuple.
    fn find(
        &self,
        sockets: &[Option<Socket>],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<usize> {
        let dirty = self.dirty_now(sockets);
        let indexed = self
            .tuples
            .get(&(local, remote))
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| Some(i) != self.dirty);
        let fresh = dirty
            .filter(|(_, x)| x.tuple == Some((local, remote)))
            .map(|(i, _)| i);
        indexed.chain(fresh).min()
    }

    /// The earliest socket timer.
    fn earliest(&self, sockets: &[Option<Socket>]) -> Option<Instant> {
        let indexed = self
            .timers
            .iter()
            .find(|&&(_, i)| Some(i) != self.dirty)
            .map(|&(t, _)| t);
        let fresh = self.dirty_now(sockets).and_then(|(_, x)| x.deadline);
        indexed.into_iter().chain(fresh).min()
    }

    /// Slots whose recorded deadline is at or before `now` (call [`Self::sync`] first).
    fn due(&self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        self.timers.range(..=(now, usize::MAX)).map(|&(_, i)| i)
    }
}
