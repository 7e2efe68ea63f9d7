//! IPv6 fixed headers (RFC 8200 §3). Extension headers are not walked: a packet
//! whose next header is not one the stack handles is ignored by the caller.

use super::ipv4::IpProtocol;
use super::{get_u16, get_u32, put_u16, put_u32, Error, Result};
use std::net::Ipv6Addr;

mod field {
    use core::ops::Range;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the IPv6 fixed header.
pub const HEADER_LEN: usize = 40;
/// `IPV6_MIN_MTU` (include/linux/ipv6.h).
pub const MIN_MTU: u32 = 1280;
/// `IPV6_FLOWLABEL_MASK`: the 20 bits of a flow label.
pub const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    /// Wrap and check lengths.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Ensure the fixed header and the payload length it claims are present
    /// (`ipv6_rcv`: a payload length beyond the buffer drops the packet);
    /// afterwards no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || HEADER_LEN + self.payload_len() as usize > len {
            return Err(Error);
        }
        Ok(())
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Version (6).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_TC_FLOW] >> 4
    }
    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.b(), field::VER_TC_FLOW) >> 4) as u8
    }
    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        get_u32(self.b(), field::VER_TC_FLOW) & FLOW_LABEL_MASK
    }
    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        get_u16(self.b(), field::PAYLOAD_LEN)
    }
    /// Next header.
    pub fn next_header(&self) -> IpProtocol {
        self.b()[field::NEXT_HEADER].into()
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.b()[field::SRC])
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.b()[field::DST])
    }
    /// The payload, up to the payload length (after `check_len`).
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    <[u8; 16]>::try_from(b)
        .map(Ipv6Addr::from)
        .unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// An IPv6 fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (no extension headers are emitted).
    pub next_header: IpProtocol,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (the low 20 bits are used).
    pub flow_label: u32,
    /// Hop limit.
    pub hop_limit: u8,
    /// Payload length.
    pub payload_len: usize,
}

impl Ipv6Repr {
    /// Parse the fixed header; rejects a version other than 6.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error);
        }
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
            hop_limit: p.hop_limit(),
            payload_len: p.payload_len() as usize,
        })
    }
    /// Header length in bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write the header into `buf[..HEADER_LEN]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let word = (6u32 << 28)
            | (u32::from(self.traffic_class) << 20)
            | (self.flow_label & FLOW_LABEL_MASK);
        put_u32(buf, field::VER_TC_FLOW, word);
        put_u16(buf, field::PAYLOAD_LEN, self.payload_len as u16);
        buf[field::NEXT_HEADER] = self.next_header.into();
        buf[field::HOP_LIMIT] = self.hop_limit;
        buf[field::SRC].copy_from_slice(&self.src_addr.octets());
        buf[field::DST].copy_from_slice(&self.dst_addr.octets());
    }
    /// Header followed by `payload` (sets `payload_len`).
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut r = self.clone();
        r.payload_len = payload.len();
        let mut buf = vec![0u8; HEADER_LEN + payload.len()];
        r.emit(&mut buf);
        buf[HEADER_LEN..].copy_from_slice(payload);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // tclass 0xb8, flow label 0x12345, 4 bytes of TCP, hop limit 64, 2001:2::1 → 2001:2::2.
    static PACKET: [u8; 44] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x06, 0x40, // ver/tc/flow, len, nh, hops
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // dst
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: "2001:2::1".parse().unwrap(),
            dst_addr: "2001:2::2".parse().unwrap(),
            next_header: IpProtocol::Tcp,
            traffic_class: 0xb8,
            flow_label: 0x12345,
            hop_limit: 64,
            payload_len: 4,
        }
    }

    #[test]
    fn construct() {
        assert_eq!(repr().build(&[0xaa, 0xbb, 0xcc, 0xdd]), PACKET);
    }

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn malformed() {
        assert!(Ipv6Packet::new_checked(&PACKET[..39]).is_err());
        let mut b = PACKET;
        b[5] = 5; // payload length beyond the buffer
        assert!(Ipv6Packet::new_checked(&b[..]).is_err());
        let mut b = PACKET;
        b[0] = 0x4b; // version 4
        assert!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()).is_err());
    }
}
