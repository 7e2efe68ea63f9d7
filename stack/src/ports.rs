//! Local port allocation: the bind table, `__inet_hash_connect`'s ephemeral
//! port search (net/ipv4/inet_hashtables.c) and `inet_csk_get_port` for `bind(0)`.
//! IPv4 and IPv6 share the table, as `inet_hash_connect` and `inet6_hash_connect` do.

use crate::config::Config;
use crate::errno::Errno;
use crate::rand::{siphash, Rng, SipKey};
use crate::time::{Instant, HZ};
use std::collections::HashMap;
use std::net::IpAddr;

/// `INET_TABLE_PERTURB_SIZE` (`CONFIG_INET_TABLE_PERTURB_ORDER=16`).
const TABLE_PERTURB_SIZE: usize = 1 << 16;

/// How a port is held (`inet_bind_bucket` `fastreuse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortUse {
    /// Taken by `bind()` (explicit or `bind(0)`): connect never shares it.
    Bound,
    /// Taken by `connect()`'s search (`fastreuse = -1`): shareable if the 4-tuple differs.
    Connect,
}

/// One port holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortEntry {
    /// The socket.
    pub owner: usize,
    /// The local port.
    pub port: u16,
    /// How it was taken.
    pub usage: PortUse,
    /// The remote end once connected (for the 4-tuple uniqueness check).
    pub remote: Option<(IpAddr, u16)>,
    /// The local address.
    pub local: IpAddr,
}

/// The port table and the secrets of the search.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The holders of each port (the bind hash, `inet_bind_bucket` per port).
    by_port: HashMap<u16, Vec<PortEntry>>,
    /// The ports each socket holds.
    by_owner: HashMap<usize, Vec<u16>>,
    table_perturb: Vec<u32>,
    key: SipKey,
}

impl Ports {
    /// A table with fresh secrets from `rng` (`table_perturb` is "randomly initialised once").
    pub fn new(rng: &mut Rng) -> Self {
        let key = rng.key();
        let table_perturb = (0..TABLE_PERTURB_SIZE).map(|_| rng.next_u32()).collect();
        Ports {
            by_port: HashMap::new(),
            by_owner: HashMap::new(),
            table_perturb,
            key,
        }
    }

    /// Entries (for tests and diagnostics).
    pub fn entries(&self) -> impl Iterator<Item = &PortEntry> {
        self.by_port.values().flatten()
    }

    fn holders(&self, port: u16) -> &[PortEntry] {
        self.by_port.get(&port).map_or(&[], Vec::as_slice)
    }

    fn insert(&mut self, e: PortEntry) {
        self.by_port.entry(e.port).or_default().push(e);
        self.by_owner.entry(e.owner).or_default().push(e.port);
    }

    /// Release every port of `owner`.
    pub fn release(&mut self, owner: usize) {
        for port in self.by_owner.remove(&owner).unwrap_or_default() {
            if let Some(v) = self.by_port.get_mut(&port) {
                v.retain(|e| e.owner != owner);
                if v.is_empty() {
                    self.by_port.remove(&port);
                }
            }
        }
    }

    /// Record the 4-tuple of `owner` once its connect goes ahead.
    pub fn set_remote(&mut self, owner: usize, remote: Option<(IpAddr, u16)>, local: IpAddr) {
        for port in self.by_owner.get(&owner).into_iter().flatten() {
            let holders = self.by_port.get_mut(port).into_iter().flatten();
            for e in holders.filter(|e| e.owner == owner) {
                e.remote = remote;
                e.local = local;
            }
        }
    }

    fn established_clash(
        &self,
        owner: usize,
        local: IpAddr,
        port: u16,
        remote: (IpAddr, u16),
    ) -> bool {
        self.holders(port)
            .iter()
            .any(|e| e.owner != owner && e.remote == Some(remote) && (e.local == local))
    }

    /// `bind(addr, port)` for a socket: an explicit port must be free
    /// (EADDRINUSE; no `SO_REUSEADDR` support), port 0 picks one like
    /// `inet_csk_get_port` (odd parity first) unless `no_port`
    /// (`IP_BIND_ADDRESS_NO_PORT`), in which case nothing is reserved.
    pub fn bind(
        &mut self,
        cfg: &Config,
        rng: &mut Rng,
        owner: usize,
        local: IpAddr,
        port: u16,
        no_port: bool,
    ) -> Result<Option<u16>, Errno> {
        if port != 0 {
            if !self.holders(port).is_empty() {
                return Err(Errno::EADDRINUSE);
            }
            self.insert(PortEntry {
                owner,
                port,
                usage: PortUse::Bound,
                remote: None,
                local,
            });
            return Ok(Some(port));
        }
        if no_port {
            return Ok(None);
        }
        // inet_csk_find_open_port: random start, prefer the parity opposite to low.
        let (low, high) = cfg.ip_local_port_range;
        let remaining = (high as u32 + 1 - low as u32).max(1);
        let mut offset = rng.below(remaining) | 1;
        for _pass in 0..2 {
            let mut i = 0;
            while i < remaining {
                let port = (low as u32 + (offset + i) % remaining) as u16;
                if !cfg.is_reserved_port(port) && self.holders(port).is_empty() {
                    self.insert(PortEntry {
                        owner,
                        port,
                        usage: PortUse::Bound,
                        remote: None,
                        local,
                    });
                    return Ok(Some(port));
                }
                i += 2;
            }
            offset &= !1;
        }
        Err(Errno::EADDRINUSE)
    }

    /// The socket already holds `port`: only `__inet_check_established`
    /// runs; a duplicate 4-tuple → EADDRNOTAVAIL (TIME-WAIT reuse is not modelled).
    pub fn check_established(
        &self,
        owner: usize,
        local: IpAddr,
        port: u16,
        remote: (IpAddr, u16),
    ) -> Result<(), Errno> {
        if self.established_clash(owner, local, port, remote) {
            Err(Errno::EADDRNOTAVAIL)
        } else {
            Ok(())
        }
    }

    /// `secure_ipv4_port_ephemeral` / `secure_ipv6_port_ephemeral`
    /// (net/core/secure_seq.c): a 64-bit keyed hash of (saddr, daddr, dport) and
    /// `jiffies / (10 * HZ)`.
    fn port_offset(&self, now: Instant, saddr: IpAddr, daddr: IpAddr, dport: u16) -> u64 {
        let mut d = crate::rand::addr_bytes(saddr);
        d.extend(crate::rand::addr_bytes(daddr));
        d.extend(dport.to_be_bytes());
        d.extend((now.jiffies() / (10 * HZ)).to_le_bytes());
        siphash(self.key, &d)
    }

    /// Pick an ephemeral port for a connect from `local` to `remote`.
    ///
    /// Mirrors `__inet_hash_connect` (net/ipv4/inet_hashtables.c), RFC 6056
    /// algorithm 4: range `ip_local_port_range` (`high++`, `remaining &= ~1`),
    /// `offset = (table_perturb[index] + (port_offset >> 32)) % remaining`,
    /// first pass over ports of `low`'s parity (`offset &= ~1`, step 2), then the
    /// other parity; reserved ports and ports held by `bind()` are skipped;
    /// ports held by other connects are shared if the 4-tuple differs. On
    /// success `table_perturb[index] += max(i, random(8) * 2) + 2`.
    pub fn hash_connect(
        &mut self,
        cfg: &Config,
        rng: &mut Rng,
        now: Instant,
        owner: usize,
        local: IpAddr,
        remote: (IpAddr, u16),
    ) -> Result<u16, Errno> {
        let (low, high) = (
            cfg.ip_local_port_range.0 as u32,
            cfg.ip_local_port_range.1 as u32 + 1,
        );
        let step = 2u32;
        let mut remaining = high - low;
        if remaining > 1 {
            remaining &= !1;
        }
        let port_offset = self.port_offset(now, local, remote.0, remote.1);
        let index = (port_offset & (TABLE_PERTURB_SIZE as u64 - 1)) as usize;
        let mut offset =
            ((self.table_perturb[index] as u64 + (port_offset >> 32)) % remaining as u64) as u32;
        offset &= !1;
        loop {
            let mut port = low + offset;
            let mut i = 0;
            while i < remaining {
                if port >= high {
                    port -= remaining;
                }
                let p = port as u16;
                let ok = !cfg.is_reserved_port(p)
                    && !self.holders(p).iter().any(|e| e.usage == PortUse::Bound)
                    && !self.established_clash(owner, local, p, remote);
                if ok {
                    self.insert(PortEntry {
                        owner,
                        port: p,
                        usage: PortUse::Connect,
                        remote: Some(remote),
                        local,
                    });
                    let bump = i.max(rng.below(8) * step) + step;
                    self.table_perturb[index] = self.table_perturb[index].wrapping_add(bump);
                    return Ok(p);
                }
                i += step;
                port += step;
            }
            offset += 1;
            if offset & 1 == 1 && remaining > 1 {
                continue;
            }
            return Err(Errno::EADDRNOTAVAIL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, Ipv6Addr};

    const L: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 199, 0, 1));
    const P: (IpAddr, u16) = (IpAddr::V4(Ipv4Addr::new(10, 199, 0, 2)), 8080);

    #[test]
    fn connect_ports_are_even_and_in_range() {
        let cfg = Config::default();
        let mut rng = Rng::new(1);
        let mut ports = Ports::new(&mut rng);
        for owner in 0..200 {
            let p = ports
                .hash_connect(&cfg, &mut rng, Instant::ZERO, owner, L, P)
                .unwrap();
            assert!((32768..=60999).contains(&p), "{p}");
            assert_eq!(p % 2, 0, "{p}");
        }
    }

    #[test]
    fn two_port_range_exhausts() {
        let cfg = Config::from_pairs([("net.ipv4.ip_local_port_range", "40000 40001")]).unwrap();
        let mut rng = Rng::new(2);
        let mut ports = Ports::new(&mut rng);
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 0, L, P),
            Ok(40000)
        );
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 1, L, P),
            Ok(40001)
        );
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 2, L, P),
            Err(Errno::EADDRNOTAVAIL)
        );
        // Another destination can reuse 40000.
        let other = (IpAddr::V4(Ipv4Addr::new(10, 199, 0, 3)), 8080);
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 3, L, other),
            Ok(40000)
        );
    }

    #[test]
    fn odd_sized_range_never_uses_high() {
        let cfg = Config::from_pairs([("net.ipv4.ip_local_port_range", "40000 40002")]).unwrap();
        let mut rng = Rng::new(3);
        let mut ports = Ports::new(&mut rng);
        let a = ports
            .hash_connect(&cfg, &mut rng, Instant::ZERO, 0, L, P)
            .unwrap();
        let b = ports
            .hash_connect(&cfg, &mut rng, Instant::ZERO, 1, L, P)
            .unwrap();
        assert_eq!((a, b), (40000, 40001));
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 2, L, P),
            Err(Errno::EADDRNOTAVAIL)
        );
    }

    #[test]
    fn reserved_and_bound_ports_are_skipped() {
        let cfg = Config::from_pairs([
            ("net.ipv4.ip_local_port_range", "40000 40001"),
            ("net.ipv4.ip_local_reserved_ports", "40000"),
        ])
        .unwrap();
        let mut rng = Rng::new(4);
        let mut ports = Ports::new(&mut rng);
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 0, L, P),
            Ok(40001)
        );
        let cfg = Config::from_pairs([("net.ipv4.ip_local_port_range", "40000 40001")]).unwrap();
        let mut ports = Ports::new(&mut rng);
        ports.bind(&cfg, &mut rng, 9, L, 40000, false).unwrap();
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 0, L, P),
            Ok(40001)
        );
    }

    #[test]
    fn ipv6_connects_share_the_table() {
        // inet6_hash_connect searches the same bind hash: with a two-port range a v6
        // connect takes the port a v4 connect left, and a v6 4-tuple is its own.
        let cfg = Config::from_pairs([("net.ipv4.ip_local_port_range", "40000 40001")]).unwrap();
        let mut rng = Rng::new(6);
        let mut ports = Ports::new(&mut rng);
        let l6 = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1));
        let p6 = (IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)), 8080);
        ports.bind(&cfg, &mut rng, 9, L, 40000, false).unwrap();
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 0, l6, p6),
            Ok(40001)
        );
        assert_eq!(
            ports.hash_connect(&cfg, &mut rng, Instant::ZERO, 1, l6, p6),
            Err(Errno::EADDRNOTAVAIL)
        );
    }

    #[test]
    fn bind_zero_prefers_odd() {
        let cfg = Config::default();
        let mut rng = Rng::new(5);
        let mut ports = Ports::new(&mut rng);
        for owner in 0..50 {
            let p = ports
                .bind(&cfg, &mut rng, owner, L, 0, false)
                .unwrap()
                .unwrap();
            assert_eq!(p % 2, 1);
        }
        assert_eq!(ports.bind(&cfg, &mut rng, 99, L, 0, true), Ok(None));
        let taken = ports.entries().next().unwrap().port;
        assert_eq!(
            ports.bind(&cfg, &mut rng, 100, L, taken, false),
            Err(Errno::EADDRINUSE)
        );
    }
}
