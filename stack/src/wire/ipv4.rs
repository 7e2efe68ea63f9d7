//! IPv4 headers with options (RFC 791).

use super::checksum;
use super::{get_u16, put_u16, Error, Result};
use std::net::Ipv4Addr;

/// IP protocol numbers the stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProtocol {
    /// 1
    Icmp,
    /// 6
    Tcp,
    /// 17
    Udp,
    /// 58
    Icmpv6,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            x => IpProtocol::Unknown(x),
        }
    }
}
impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> u8 {
        match v {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(x) => x,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Maximum IPv4 options length.
pub const MAX_OPTIONS_LEN: usize = 40;

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Wrap and check lengths.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Ensure the buffer holds the fixed header, the header length claimed by
    /// IHL and the total length; afterwards no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let hl = self.header_len() as usize;
        let tl = self.total_len() as usize;
        if hl < HEADER_LEN || hl > tl || tl > len {
            return Err(Error);
        }
        Ok(())
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Version (4).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> u8 {
        (self.b()[field::VER_IHL] & 0x0f) * 4
    }
    /// TOS / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }
    /// Total length.
    pub fn total_len(&self) -> u16 {
        get_u16(self.b(), field::LENGTH)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.b(), field::IDENT)
    }
    /// DF flag.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.b(), field::FLG_OFF) & 0x4000 != 0
    }
    /// MF flag.
    pub fn more_frags(&self) -> bool {
        get_u16(self.b(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.b(), field::FLG_OFF) & 0x1fff) * 8
    }
    /// TTL.
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }
    /// Protocol.
    pub fn protocol(&self) -> IpProtocol {
        self.b()[field::PROTOCOL].into()
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.b(), field::CHECKSUM)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.b()[field::SRC])
            .map(Ipv4Addr::from)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.b()[field::DST])
            .map(Ipv4Addr::from)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
    /// Options bytes (after `check_len`).
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len() as usize]
    }
    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len() as usize]) == 0
    }
    /// The payload, up to the total length (after `check_len`).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len() as usize..self.total_len() as usize]
    }
}

/// An IPv4 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// TOS byte (DSCP and ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// DF.
    pub dont_frag: bool,
    /// TTL.
    pub ttl: u8,
    /// Options, already padded to a multiple of 4 (at most 40 bytes).
    pub options: Vec<u8>,
    /// Payload length.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Parse a header; rejects bad versions, bad checksums and fragments
    /// (the stack does not reassemble).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 4 || !p.verify_checksum() || p.more_frags() || p.frag_offset() != 0 {
            return Err(Error);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            ttl: p.ttl(),
            options: p.options().to_vec(),
            payload_len: p.payload().len(),
        })
    }
    /// Header length in bytes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len().div_ceil(4) * 4
    }
    /// Write the header (with checksum) into `buf[..buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let hl = self.buffer_len();
        buf[..hl].fill(0);
        buf[field::VER_IHL] = 0x40 | (hl / 4) as u8;
        buf[field::TOS] = self.tos;
        put_u16(buf, field::LENGTH, (hl + self.payload_len) as u16);
        put_u16(buf, field::IDENT, self.ident);
        put_u16(buf, field::FLG_OFF, if self.dont_frag { 0x4000 } else { 0 });
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol.into();
        buf[field::SRC].copy_from_slice(&self.src_addr.octets());
        buf[field::DST].copy_from_slice(&self.dst_addr.octets());
        buf[HEADER_LEN..HEADER_LEN + self.options.len()].copy_from_slice(&self.options);
        let c = checksum::checksum(&buf[..hl]);
        put_u16(buf, field::CHECKSUM, c);
    }
    /// Header followed by `payload` (sets `payload_len`).
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut r = self.clone();
        r.payload_len = payload.len();
        let hl = r.buffer_len();
        let mut buf = vec![0u8; hl + payload.len()];
        r.emit(&mut buf);
        buf[hl..].copy_from_slice(payload);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 20-byte header + 4-byte payload: tos 0x10, id 0x1234, DF, ttl 64, TCP.
    static PACKET: [u8; 24] = [
        0x45, 0x10, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x13, 0x0c, 10, 199, 0, 1, 10,
        199, 0, 2, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 199, 0, 1),
            dst_addr: Ipv4Addr::new(10, 199, 0, 2),
            protocol: IpProtocol::Tcp,
            tos: 0x10,
            ident: 0x1234,
            dont_frag: true,
            ttl: 64,
            options: vec![],
            payload_len: 4,
        }
    }

    #[test]
    fn construct() {
        assert_eq!(repr().build(&[0xaa, 0xbb, 0xcc, 0xdd]), PACKET);
    }

    #[test]
    fn deconstruct() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn options_roundtrip() {
        let mut r = repr();
        r.options = vec![7, 7, 4, 0, 0, 0, 0, 0]; // record route, one slot, padded
        let b = r.build(&[1, 2, 3, 4]);
        assert_eq!(b[0], 0x47);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn malformed() {
        let mut b = PACKET;
        b[0] = 0x44; // IHL 16 < 20
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        let mut b = PACKET;
        b[3] = 0x40; // total length beyond buffer
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        let mut b = PACKET;
        b[11] ^= 1; // checksum
        assert!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()).is_err());
    }
}
