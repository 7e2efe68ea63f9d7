//! Neighbour resolution and the neighbour cache (`neigh_*` in net/core/neighbour.c),
//! for ARP (`arp_*`, net/ipv4/arp.c) and neighbour discovery (`ndisc_*`,
//! net/ipv6/ndisc.c) alike: one cache keyed by address, each family with its own
//! parameters (`net.ipv4.neigh.*`, `net.ipv6.neigh.*`). What goes on the wire for a
//! probe (an ARP request, a neighbour solicitation) is the stack's business.

use crate::config::Config;
use crate::time::{msecs_to_jiffies, timer_wheel_expiry, Instant};
use crate::wire::EthernetAddress;
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

/// An IP packet waiting for its next hop to resolve (`arp_queue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The whole IP packet (IPv4 or IPv6, as the next hop).
    pub packet: Vec<u8>,
    /// The socket that sent it (for `skb_still_in_host_queue`).
    pub owner: Option<usize>,
}

/// NUD state of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighState {
    /// `NUD_INCOMPLETE`: requests are being sent; `probes` counts them the way
    /// `neigh->probes` does (it starts at `ucast_solicit`).
    Incomplete {
        /// `neigh->probes`.
        probes: u32,
        /// When `neigh_timer_handler` runs next.
        timer: Instant,
    },
    /// `NUD_REACHABLE` (the stack never ages entries: runs are short).
    Reachable(EthernetAddress),
}

#[derive(Debug, Clone)]
struct Entry {
    state: NeighState,
    queue: VecDeque<Pending>,
}

/// `unres_qlen_bytes` default (`SK_WMEM_MAX`-ish, 212992 bytes).
const UNRES_QLEN_BYTES: usize = 212_992;

/// What the neighbour timer asks of the stack.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NeighEvents {
    /// Send a broadcast ARP request (IPv4) or a multicast solicitation (IPv6) for each
    /// address, with the packet last queued for it (`neigh_probe` passes the queue's
    /// tail to `arp_solicit`/`ndisc_solicit`, which take its source address).
    pub probes: Vec<(IpAddr, Option<Vec<u8>>)>,
    /// Resolution failed: each queued packet gets `arp_error_report` / `ndisc_error_report`.
    pub failed: Vec<(IpAddr, Vec<Pending>)>,
}

/// The neighbour table of the stack's one interface.
#[derive(Debug, Clone, Default)]
pub struct NeighCache {
    entries: BTreeMap<IpAddr, Entry>,
}

/// The `neigh_parms` of a table (`arp_tbl` or `nd_tbl`).
#[derive(Debug, Clone, Copy)]
struct Parms {
    ucast_solicit: u32,
    app_solicit: u32,
    mcast_solicit: u32,
    retrans_time_ms: u32,
}

/// The parameters of the table `addr` belongs to.
fn parms(cfg: &Config, addr: IpAddr) -> Parms {
    match addr {
        IpAddr::V4(_) => Parms {
            ucast_solicit: cfg.neigh_ucast_solicit,
            app_solicit: cfg.neigh_app_solicit,
            mcast_solicit: cfg.neigh_mcast_solicit,
            retrans_time_ms: cfg.neigh_retrans_time_ms,
        },
        IpAddr::V6(_) => Parms {
            ucast_solicit: cfg.ndisc_ucast_solicit,
            app_solicit: cfg.ndisc_app_solicit,
            mcast_solicit: cfg.ndisc_mcast_solicit,
            retrans_time_ms: cfg.ndisc_retrans_time_ms,
        },
    }
}

/// `neigh_max_probes` for an INCOMPLETE entry: `ucast + app + mcast`.
fn max_probes(p: Parms) -> u32 {
    p.ucast_solicit + p.app_solicit + p.mcast_solicit
}

/// The neighbour timer period: `max(retrans_time, HZ/100)`, armed with `mod_timer`.
fn next_timer(now: Instant, cfg: &Config, p: Parms) -> Instant {
    timer_wheel_expiry(
        now,
        msecs_to_jiffies(p.retrans_time_ms as u64).max(1),
        cfg.jiffies_offset,
    )
}

impl NeighCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The resolved MAC of `addr`, if any.
    pub fn lookup(&self, addr: impl Into<IpAddr>) -> Option<EthernetAddress> {
        match self.entries.get(&addr.into())?.state {
            NeighState::Reachable(mac) => Some(mac),
            NeighState::Incomplete { .. } => None,
        }
    }

    /// The state of `addr`'s entry.
    pub fn state(&self, addr: impl Into<IpAddr>) -> Option<NeighState> {
        self.entries.get(&addr.into()).map(|e| e.state)
    }

    /// Queue `p` for `addr`, which has no MAC yet. Mirrors `__neigh_event_send`:
    /// a new entry becomes INCOMPLETE with `probes = ucast_solicit`, its timer is
    /// armed, and a request goes out at once (`immediate_probe`). Returns
    /// whether the caller must send a probe (ARP request, neighbour solicitation) now.
    /// With no probes configured at all, the packet is dropped (returned as `Err`).
    pub fn enqueue(
        &mut self,
        now: Instant,
        cfg: &Config,
        addr: IpAddr,
        p: Pending,
    ) -> Result<bool, Pending> {
        if let Some(e) = self.entries.get_mut(&addr) {
            e.queue.push_back(p);
            let mut bytes: usize = e.queue.iter().map(|q| q.packet.len()).sum();
            while bytes > UNRES_QLEN_BYTES {
                if let Some(old) = e.queue.pop_front() {
                    bytes -= old.packet.len();
                }
            }
            return Ok(false);
        }
        let parms = parms(cfg, addr);
        if parms.mcast_solicit + parms.app_solicit == 0 {
            return Err(p);
        }
        let probes = parms.ucast_solicit + 1; // neigh_probe() increments
        self.entries.insert(
            addr,
            Entry {
                state: NeighState::Incomplete {
                    probes,
                    timer: next_timer(now, cfg, parms),
                },
                queue: VecDeque::from([p]),
            },
        );
        Ok(true)
    }

    /// A mapping learned from an ARP packet (`arp_process` → `neigh_update`) or a
    /// neighbour advertisement or solicitation (`ndisc_recv_na`, `ndisc_recv_ns`).
    /// Only entries that exist are updated unless `create` (a request for
    /// us). Returns the packets that were waiting, to transmit in order.
    pub fn update(&mut self, addr: IpAddr, mac: EthernetAddress, create: bool) -> Vec<Pending> {
        match self.entries.get_mut(&addr) {
            Some(e) => {
                e.state = NeighState::Reachable(mac);
                e.queue.drain(..).collect()
            }
            None if create => {
                self.entries.insert(
                    addr,
                    Entry {
                        state: NeighState::Reachable(mac),
                        queue: VecDeque::new(),
                    },
                );
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Whether a packet of socket `owner` still waits in an ARP queue
    /// (`skb_still_in_host_queue`, net/ipv4/tcp_output.c).
    pub fn has_queued(&self, owner: usize) -> bool {
        self.entries
            .values()
            .any(|e| e.queue.iter().any(|p| p.owner == Some(owner)))
    }

    /// Packets of `owner` stay queued when its socket goes away: the skb in `arp_queue`
    /// holds the socket until it is sent or dropped, so a SYN queued before `close()` still
    /// goes out once the neighbour resolves. They belong to no socket from then on, so a new
    /// socket in the same slot does not see them as its own.
    pub fn disown(&mut self, owner: usize) {
        for e in self.entries.values_mut() {
            for p in e.queue.iter_mut().filter(|p| p.owner == Some(owner)) {
                p.owner = None;
            }
        }
    }

    /// The earliest neighbour timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                NeighState::Incomplete { timer, .. } => Some(timer),
                NeighState::Reachable(_) => None,
            })
            .min()
    }

    /// Run due timers. Mirrors `neigh_timer_handler`: an INCOMPLETE entry with
    /// `probes >= neigh_max_probes` becomes FAILED and `neigh_invalidate`
    /// reports each queued packet; otherwise another broadcast request goes
    /// out and the timer is re-armed `retrans_time` later.
    pub fn handle_timeout(&mut self, now: Instant, cfg: &Config) -> NeighEvents {
        let mut ev = NeighEvents::default();
        let mut failed = Vec::new();
        for (addr, e) in self.entries.iter_mut() {
            if let NeighState::Incomplete { probes, timer } = &mut e.state {
                if *timer > now {
                    continue;
                }
                let parms = parms(cfg, *addr);
                if *probes >= max_probes(parms) {
                    failed.push(*addr);
                } else {
                    *probes += 1;
                    *timer = next_timer(now, cfg, parms);
                    let tail = e.queue.back().map(|p| p.packet.clone());
                    ev.probes.push((*addr, tail));
                }
            }
        }
        for addr in failed {
            if let Some(e) = self.entries.remove(&addr) {
                tracing::debug!(%addr, "neighbour resolution failed");
                ev.failed.push((addr, e.queue.into_iter().collect()));
            }
        }
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn p() -> Pending {
        Pending {
            packet: vec![0x45; 40],
            owner: Some(3),
        }
    }

    #[test]
    fn three_requests_then_failure_at_about_3s() {
        let cfg = Config::default();
        let mut n = NeighCache::new();
        let a = IpAddr::V4(Ipv4Addr::new(10, 199, 0, 2));
        assert_eq!(n.enqueue(Instant::ZERO, &cfg, a, p()), Ok(true));
        assert!(n.has_queued(3));
        assert_eq!(n.enqueue(Instant::ZERO, &cfg, a, p()), Ok(false));
        let mut requests = vec![Instant::ZERO];
        let mut failed_at = None;
        while let Some(t) = n.poll_timeout() {
            let ev = n.handle_timeout(t, &cfg);
            requests.extend(ev.probes.iter().map(|_| t));
            if !ev.failed.is_empty() {
                assert_eq!(ev.failed[0].1.len(), 2);
                failed_at = Some(t);
            }
        }
        assert_eq!(
            requests,
            vec![
                Instant::ZERO,
                Instant::from_millis(1024),
                Instant::from_millis(2048)
            ]
        );
        assert_eq!(failed_at, Some(Instant::from_millis(3072)));
        assert!(!n.has_queued(3));
    }

    #[test]
    fn ndisc_follows_the_ipv6_parameters() {
        // net.ipv6.neigh.*.mcast_solicit = 1, retrans_time_ms = 500: one solicitation,
        // failure a retransmission time later; the IPv4 parameters do not apply.
        let cfg = Config::from_pairs([
            ("net.ipv6.neigh.default.mcast_solicit", "1"),
            ("net.ipv6.neigh.default.retrans_time_ms", "500"),
        ])
        .unwrap();
        let mut n = NeighCache::new();
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2));
        assert_eq!(n.enqueue(Instant::ZERO, &cfg, a, p()), Ok(true));
        let t = n.poll_timeout().unwrap();
        assert_eq!(t, Instant::from_millis(512));
        let ev = n.handle_timeout(t, &cfg);
        assert!(ev.probes.is_empty());
        assert_eq!(ev.failed.len(), 1);
    }

    #[test]
    fn reply_flushes_queue() {
        let cfg = Config::default();
        let mut n = NeighCache::new();
        let a = IpAddr::V4(Ipv4Addr::new(10, 199, 0, 2));
        n.enqueue(Instant::ZERO, &cfg, a, p()).unwrap();
        let mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
        assert_eq!(n.update(a, mac, false), vec![p()]);
        assert_eq!(n.lookup(a), Some(mac));
        assert_eq!(n.poll_timeout(), None);
        // Unsolicited replies do not create entries.
        assert!(n
            .update(Ipv4Addr::new(10, 199, 0, 9).into(), mac, false)
            .is_empty());
        assert_eq!(n.lookup(Ipv4Addr::new(10, 199, 0, 9)), None);
    }
}
