//! Neighbour discovery messages (RFC 4861 §4.3, §4.4): solicitations and
//! advertisements with their link-layer address options, and the
//! solicited-node multicast address they go to.

use super::icmpv6::{types, Icmpv6Repr};
use super::{Error, EthernetAddress, Result};
use std::net::Ipv6Addr;

/// Option types (`ND_OPT_*`, include/net/ndisc.h).
pub mod opt {
    /// `ND_OPT_SOURCE_LL_ADDR`
    pub const SOURCE_LL_ADDR: u8 = 1;
    /// `ND_OPT_TARGET_LL_ADDR`
    pub const TARGET_LL_ADDR: u8 = 2;
}

/// Advertisement flags in the first byte of the ICMPv6 "rest" word.
pub mod flags {
    /// Router.
    pub const ROUTER: u32 = 0x8000_0000;
    /// Solicited.
    pub const SOLICITED: u32 = 0x4000_0000;
    /// Override.
    pub const OVERRIDE: u32 = 0x2000_0000;
}

/// The solicited-node multicast address of `target` (`addrconf_addr_solict_mult`):
/// ff02::1:ff00:0/104 with the target's low 24 bits.
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The all-nodes multicast address ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A neighbour discovery message the stack sends or reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdiscRepr {
    /// Neighbour solicitation for `target`, with the sender's link-layer address.
    Solicit {
        /// The address being resolved.
        target: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbour advertisement for `target`.
    Advert {
        /// Router flag.
        router: bool,
        /// Solicited flag.
        solicited: bool,
        /// Override flag.
        overrides: bool,
        /// The advertised address.
        target: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

/// Walk the options as `ndisc_parse_options` does: each option's length is in
/// 8-byte units and must be non-zero and fit; the last link-layer option of
/// `kind` wins. Options of other kinds are skipped.
fn lladdr_option(mut b: &[u8], kind: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while !b.is_empty() {
        if b.len() < 2 {
            return Err(Error);
        }
        let len = b[1] as usize * 8;
        if len == 0 || len > b.len() {
            return Err(Error);
        }
        if b[0] == kind {
            // An Ethernet address option is 8 bytes: type, length, 6 bytes of MAC.
            let mac: [u8; 6] = b.get(2..8).and_then(|m| m.try_into().ok()).ok_or(Error)?;
            found = Some(EthernetAddress(mac));
        }
        b = &b[len..];
    }
    Ok(found)
}

impl NdiscRepr {
    /// The message an ICMPv6 solicitation or advertisement carries (code 0, a
    /// 16-byte target, well-formed options); anything else is an error.
    pub fn parse(icmp: &Icmpv6Repr) -> Result<Self> {
        if icmp.code != 0 || icmp.data.len() < 16 {
            return Err(Error);
        }
        let target = <[u8; 16]>::try_from(&icmp.data[..16])
            .map(Ipv6Addr::from)
            .map_err(|_| Error)?;
        let opts = &icmp.data[16..];
        match icmp.msg_type {
            types::NEIGHBOUR_SOLICITATION => Ok(NdiscRepr::Solicit {
                target,
                lladdr: lladdr_option(opts, opt::SOURCE_LL_ADDR)?,
            }),
            types::NEIGHBOUR_ADVERTISEMENT => Ok(NdiscRepr::Advert {
                router: icmp.rest & flags::ROUTER != 0,
                solicited: icmp.rest & flags::SOLICITED != 0,
                overrides: icmp.rest & flags::OVERRIDE != 0,
                target,
                lladdr: lladdr_option(opts, opt::TARGET_LL_ADDR)?,
            }),
            _ => Err(Error),
        }
    }

    /// The ICMPv6 message (`ndisc_send_ns`, `ndisc_send_na` → `ndisc_fill_addr_option`).
    pub fn to_icmpv6(&self) -> Icmpv6Repr {
        let (msg_type, rest, target, option) = match *self {
            NdiscRepr::Solicit { target, lladdr } => (
                types::NEIGHBOUR_SOLICITATION,
                0,
                target,
                lladdr.map(|m| (opt::SOURCE_LL_ADDR, m)),
            ),
            NdiscRepr::Advert {
                router,
                solicited,
                overrides,
                target,
                lladdr,
            } => {
                let mut rest = 0;
                if router {
                    rest |= flags::ROUTER;
                }
                if solicited {
                    rest |= flags::SOLICITED;
                }
                if overrides {
                    rest |= flags::OVERRIDE;
                }
                (
                    types::NEIGHBOUR_ADVERTISEMENT,
                    rest,
                    target,
                    lladdr.map(|m| (opt::TARGET_LL_ADDR, m)),
                )
            }
        };
        let mut data = target.octets().to_vec();
        if let Some((kind, mac)) = option {
            data.extend([kind, 1]);
            data.extend(mac.0);
        }
        Icmpv6Repr {
            msg_type,
            code: 0,
            rest,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);

    // NS for 2001:2::2 from 2001:2::1 (02:00:00:00:00:01) to ff02::1:ff00:2.
    static NS: [u8; 32] = [
        0x87, 0x00, 0x00, 0x00, 0, 0, 0, 0, // type 135, checksum patched in the test
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // target
        0x01, 0x01, 0x02, 0, 0, 0, 0, 0x01, // SLLA
    ];

    fn addrs() -> (Ipv6Addr, Ipv6Addr, Ipv6Addr) {
        let target: Ipv6Addr = "2001:2::2".parse().unwrap();
        ("2001:2::1".parse().unwrap(), solicited_node(target), target)
    }

    #[test]
    fn solicited_node_address_and_mac() {
        let t: Ipv6Addr = "2001:2::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(t),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            EthernetAddress::from_ipv6_multicast(solicited_node(t)),
            EthernetAddress([0x33, 0x33, 0xff, 0x12, 0x34, 0x56])
        );
    }

    #[test]
    fn construct_solicitation() {
        let (src, dst, target) = addrs();
        let b = NdiscRepr::Solicit {
            target,
            lladdr: Some(MAC),
        }
        .to_icmpv6()
        .to_bytes(src, dst);
        assert_eq!(&b[..2], &NS[..2]);
        assert_eq!(&b[4..], &NS[4..]);
    }

    #[test]
    fn deconstruct_advertisement() {
        let (src, dst, target) = addrs();
        let na = NdiscRepr::Advert {
            router: false,
            solicited: true,
            overrides: true,
            target,
            lladdr: Some(MAC),
        };
        let b = na.to_icmpv6().to_bytes(dst, src);
        assert_eq!(&b[4..8], &[0x60, 0, 0, 0]);
        assert_eq!(&b[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
        let p = super::super::Icmpv6Packet::new_checked(&b[..]).unwrap();
        let icmp = Icmpv6Repr::parse(&p, dst, src).unwrap();
        assert_eq!(NdiscRepr::parse(&icmp).unwrap(), na);
    }

    #[test]
    fn malformed_options_are_refused() {
        let (_, _, target) = addrs();
        let mut icmp = NdiscRepr::Solicit {
            target,
            lladdr: Some(MAC),
        }
        .to_icmpv6();
        icmp.data[17] = 0; // option length 0
        assert!(NdiscRepr::parse(&icmp).is_err());
        icmp.data[17] = 2; // 16 bytes, only 8 there
        assert!(NdiscRepr::parse(&icmp).is_err());
        icmp.data.truncate(10); // short target
        assert!(NdiscRepr::parse(&icmp).is_err());
    }
}
