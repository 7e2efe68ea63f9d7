//! ARP for IPv4 over Ethernet (RFC 826).

use super::ethernet::EthernetAddress;
use super::{get_u16, put_u16, Error, Result};
use std::net::Ipv4Addr;

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    /// 1
    Request,
    /// 2
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            x => ArpOperation::Unknown(x),
        }
    }
}
impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> u16 {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(x) => x,
        }
    }
}

/// A zero-copy view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Wrap and check the length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Ensure an Ethernet/IPv4 ARP body is present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Hardware type.
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.b(), field::HTYPE)
    }
    /// Protocol type.
    pub fn protocol_type(&self) -> u16 {
        get_u16(self.b(), field::PTYPE)
    }
    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.b()[field::HLEN]
    }
    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.b()[field::PLEN]
    }
    /// Opcode.
    pub fn operation(&self) -> ArpOperation {
        get_u16(self.b(), field::OPER).into()
    }
    /// Sender hardware address.
    pub fn sha(&self) -> EthernetAddress {
        EthernetAddress(self.b()[field::SHA].try_into().unwrap_or([0; 6]))
    }
    /// Sender protocol address.
    pub fn spa(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.b()[field::SPA])
            .map(Ipv4Addr::from)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
    /// Target hardware address.
    pub fn tha(&self) -> EthernetAddress {
        EthernetAddress(self.b()[field::THA].try_into().unwrap_or([0; 6]))
    }
    /// Target protocol address.
    pub fn tpa(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.b()[field::TPA])
            .map(Ipv4Addr::from)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Opcode.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request, as `arp_create` leaves it).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parse; only Ethernet (1) / IPv4 (0x0800) with lengths 6/4 are accepted.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        p.check_len()?;
        if p.hardware_type() != 1
            || p.protocol_type() != 0x0800
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(Error);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.sha(),
            source_protocol_addr: p.spa(),
            target_hardware_addr: p.tha(),
            target_protocol_addr: p.tpa(),
        })
    }
    /// Length on the wire (no padding: veth does not pad, and neither does Linux).
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }
    /// Write into `buf` (at least [`PACKET_LEN`] bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        put_u16(buf, field::HTYPE, 1);
        put_u16(buf, field::PTYPE, 0x0800);
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
        put_u16(buf, field::OPER, self.operation.into());
        buf[field::SHA].copy_from_slice(&self.source_hardware_addr.0);
        buf[field::SPA].copy_from_slice(&self.source_protocol_addr.octets());
        buf[field::THA].copy_from_slice(&self.target_hardware_addr.0);
        buf[field::TPA].copy_from_slice(&self.target_protocol_addr.octets());
    }
    /// The packet as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0; PACKET_LEN];
        self.emit(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10,
        199, 0, 1, 0, 0, 0, 0, 0, 0, 10, 199, 0, 2,
    ];

    fn repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 199, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 199, 0, 2),
        }
    }

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn construct() {
        assert_eq!(repr().to_bytes(), REQUEST);
    }

    #[test]
    fn rejects_other_hardware() {
        let mut b = REQUEST;
        b[1] = 6;
        assert!(ArpRepr::parse(&ArpPacket::new_unchecked(&b[..])).is_err());
        assert!(ArpPacket::new_checked(&REQUEST[..27]).is_err());
    }
}
