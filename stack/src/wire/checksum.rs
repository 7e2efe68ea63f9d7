//! The Internet checksum (RFC 1071), as `csum_partial`/`csum_fold` compute it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` folded to 16 bits (not inverted).
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add((*b as u32) << 8);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Fold and invert: the value to store in a checksum field.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone (IPv4 header, ICMP).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The IPv4 pseudo-header sum for a transport checksum.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc = sum(acc, &[0, protocol]);
    sum(acc, &(len as u16).to_be_bytes())
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1, `csum_ipv6_magic`): both
/// addresses, the 32-bit upper-layer length, and the next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc = sum(acc, &len.to_be_bytes());
    sum(acc, &[0, 0, 0, next_header])
}

/// The pseudo-header sum of either family. Two IPv4 addresses take the IPv4
/// pseudo-header; anything else the IPv6 one (an IPv4 address as `::ffff:a.b.c.d`).
pub fn pseudo_header_ip(src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header(s, d, protocol, len),
        (s, d) => pseudo_header_v6(v6(s), v6(d), protocol, len),
    }
}

fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The checksum of a transport segment (`data` with its checksum field zeroed,
/// or intact when verifying: a valid segment then yields 0), over the pseudo-header
/// of the addresses' family.
pub fn transport(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, protocol: u8, data: &[u8]) -> u16 {
    finish(sum(
        pseudo_header_ip(src.into(), dst.into(), protocol, data.len() as u32),
        data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &d)), !0xddf2);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn ipv6_pseudo_header() {
        // fe80::1 → fe80::2, next header 58, length 8: the words sum to
        // fe80+1 + fe80+2 + 8 + 58 (end-around carry folded).
        let s: Ipv6Addr = "fe80::1".parse().unwrap();
        let d: Ipv6Addr = "fe80::2".parse().unwrap();
        let acc = pseudo_header_v6(s, d, 58, 8);
        let expect = finish(sum(0, &[0xfe, 0x80, 0, 1, 0xfe, 0x80, 0, 2, 0, 8, 0, 58]));
        assert_eq!(finish(acc), expect);
    }
}
