//! ICMPv4 (RFC 792): the error messages TCP reacts to, and echo.

use super::checksum;
use super::{get_u16, put_u16, Error, Result};

/// ICMP type numbers.
pub mod types {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench.
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAMETER_PROB: u8 = 12;
}

/// Length of the ICMP header (type, code, checksum, 4 bytes of "rest").
pub const HEADER_LEN: usize = 8;

/// A zero-copy view of an ICMP message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wrap without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }
    /// Wrap and check the length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Ensure the 8-byte header is present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }
    /// Type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }
    /// The 4 type-specific bytes (e.g. next-hop MTU in bytes 2..4 for FRAG_NEEDED).
    pub fn rest(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[4], b[5], b[6], b[7]]
    }
    /// The data (for errors: the quoted IP header and at least 8 bytes).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Whether the checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

/// An ICMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpRepr {
    /// Type.
    pub msg_type: u8,
    /// Code.
    pub code: u8,
    /// The 4 type-specific bytes.
    pub rest: [u8; 4],
    /// The data.
    pub data: Vec<u8>,
}

impl IcmpRepr {
    /// Parse (checksum verified, as `icmp_rcv` does).
    pub fn parse<T: AsRef<[u8]>>(p: &IcmpPacket<T>) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error);
        }
        Ok(IcmpRepr {
            msg_type: p.msg_type(),
            code: p.code(),
            rest: p.rest(),
            data: p.data().to_vec(),
        })
    }
    /// A destination-unreachable message quoting `quoted` (IP header + ≥ 8 bytes).
    pub fn dest_unreachable(code: u8, next_hop_mtu: u16, quoted: &[u8]) -> Self {
        let m = next_hop_mtu.to_be_bytes();
        IcmpRepr {
            msg_type: types::DEST_UNREACH,
            code,
            rest: [0, 0, m[0], m[1]],
            data: quoted.to_vec(),
        }
    }
    /// The next-hop MTU of a FRAG_NEEDED message.
    pub fn next_hop_mtu(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }
    /// Length on the wire.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }
    /// Write into `buf[..buffer_len()]`, with checksum.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = self.msg_type;
        buf[1] = self.code;
        put_u16(buf, 2, 0);
        buf[4..8].copy_from_slice(&self.rest);
        buf[HEADER_LEN..HEADER_LEN + self.data.len()].copy_from_slice(&self.data);
        let c = checksum::checksum(&buf[..self.buffer_len()]);
        put_u16(buf, 2, c);
    }
    /// The message as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0; self.buffer_len()];
        self.emit(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PORT_UNREACH: [u8; 12] = [0x03, 0x03, 0x5f, 0x5f, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];

    #[test]
    fn construct() {
        assert_eq!(
            IcmpRepr::dest_unreachable(3, 0, &[0xde, 0xad, 0xbe, 0xef]).to_bytes(),
            PORT_UNREACH
        );
    }

    #[test]
    fn deconstruct() {
        let p = IcmpPacket::new_checked(&PORT_UNREACH[..]).unwrap();
        let r = IcmpRepr::parse(&p).unwrap();
        assert_eq!((r.msg_type, r.code), (types::DEST_UNREACH, 3));
        assert_eq!(r.data, [0xde, 0xad, 0xbe, 0xef]);
        let mut bad = PORT_UNREACH;
        bad[9] = 0;
        assert!(IcmpRepr::parse(&IcmpPacket::new_checked(&bad[..]).unwrap()).is_err());
    }

    #[test]
    fn frag_needed_mtu() {
        let r = IcmpRepr::dest_unreachable(4, 1000, &[]);
        assert_eq!(r.next_hop_mtu(), 1000);
    }
}
