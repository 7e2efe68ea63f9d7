//! ARP neighbour resolution and the neighbour cache (`neigh_*` in
//! net/core/neighbour.c, `arp_*` in net/ipv4/arp.c).

use crate::config::Config;
use crate::time::{msecs_to_jiffies, timer_wheel_expiry, Instant};
use crate::wire::EthernetAddress;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

/// An IPv4 packet waiting for its next hop to resolve (`arp_queue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The whole IPv4 packet.
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
    /// Send a broadcast ARP request for each address.
    pub probes: Vec<Ipv4Addr>,
    /// Resolution failed: each queued packet gets `arp_error_report`.
    pub failed: Vec<(Ipv4Addr, Vec<Pending>)>,
}

/// The neighbour table of the stack's one interface.
#[derive(Debug, Clone, Default)]
pub struct NeighCache {
    entries: BTreeMap<Ipv4Addr, Entry>,
}

/// `neigh_max_probes` for an INCOMPLETE entry: `ucast + app + mcast`.
fn max_probes(cfg: &Config) -> u32 {
    cfg.neigh_ucast_solicit + cfg.neigh_app_solicit + cfg.neigh_mcast_solicit
}

/// The neighbour timer period: `max(retrans_time, HZ/100)`, armed with `mod_timer`.
fn next_timer(now: Instant, cfg: &Config) -> Instant {
    timer_wheel_expiry(
        now,
        msecs_to_jiffies(cfg.neigh_retrans_time_ms as u64).max(1),
        cfg.jiffies_offset,
    )
}

impl NeighCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The resolved MAC of `addr`, if any.
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<EthernetAddress> {
        match self.entries.get(&addr)?.state {
            NeighState::Reachable(mac) => Some(mac),
            NeighState::Incomplete { .. } => None,
        }
    }

    /// The state of `addr`'s entry.
    pub fn state(&self, addr: Ipv4Addr) -> Option<NeighState> {
        self.entries.get(&addr).map(|e| e.state)
    }

    /// Queue `p` for `addr`, which has no MAC yet. Mirrors `__neigh_event_send`:
    /// a new entry becomes INCOMPLETE with `probes = ucast_solicit`, its timer is
    /// armed, and a request goes out at once (`immediate_probe`). Returns
    /// whether the caller must send an ARP request now. With no probes
    /// configured at all, the packet is dropped (returned as `Err`).
    pub fn enqueue(
        &mut self,
        now: Instant,
        cfg: &Config,
        addr: Ipv4Addr,
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
        if cfg.neigh_mcast_solicit + cfg.neigh_app_solicit == 0 {
            return Err(p);
        }
        let probes = cfg.neigh_ucast_solicit + 1; // neigh_probe() increments
        self.entries.insert(
            addr,
            Entry {
                state: NeighState::Incomplete {
                    probes,
                    timer: next_timer(now, cfg),
                },
                queue: VecDeque::from([p]),
            },
        );
        Ok(true)
    }

    /// A mapping learned from an ARP packet (`arp_process` → `neigh_update`).
    /// Only entries that exist are updated unless `create` (a request for
    /// us). Returns the packets that were waiting, to transmit in order.
    pub fn update(&mut self, addr: Ipv4Addr, mac: EthernetAddress, create: bool) -> Vec<Pending> {
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
                if *probes >= max_probes(cfg) {
                    failed.push(*addr);
                } else {
                    *probes += 1;
                    *timer = next_timer(now, cfg);
                    ev.probes.push(*addr);
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
        let a = Ipv4Addr::new(10, 199, 0, 2);
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
    fn reply_flushes_queue() {
        let cfg = Config::default();
        let mut n = NeighCache::new();
        let a = Ipv4Addr::new(10, 199, 0, 2);
        n.enqueue(Instant::ZERO, &cfg, a, p()).unwrap();
        let mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
        assert_eq!(n.update(a, mac, false), vec![p()]);
        assert_eq!(n.lookup(a), Some(mac));
        assert_eq!(n.poll_timeout(), None);
        // Unsolicited replies do not create entries.
        assert!(n
            .update(Ipv4Addr::new(10, 199, 0, 9), mac, false)
            .is_empty());
        assert_eq!(n.lookup(Ipv4Addr::new(10, 199, 0, 9)), None);
    }
}
