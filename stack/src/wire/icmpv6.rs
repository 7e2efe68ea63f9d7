//! ICMPv6 (RFC 4443): the error messages TCP reacts to, checksummed over the
//! IPv6 pseudo-header. Neighbour discovery messages are ICMPv6 too; their bodies
//! are in [`super::ndisc`].

use super::checksum;
use super::{get_u16, get_u32, put_u16, Error, Result};
use std::net::Ipv6Addr;

/// ICMPv6 type numbers (include/uapi/linux/icmpv6.h).
pub mod types {
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big.
    pub const PKT_TOOBIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEED: u8 = 3;
    /// Parameter problem.
    pub const PARAMPROB: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Neighbour solicitation (`NDISC_NEIGHBOUR_SOLICITATION`).
    pub const NEIGHBOUR_SOLICITATION: u8 = 135;
    /// Neighbour advertisement (`NDISC_NEIGHBOUR_ADVERTISEMENT`).
    pub const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
    /// Redirect (`NDISC_REDIRECT`).
    pub const REDIRECT: u8 = 137;
}

/// Destination-unreachable codes.
pub mod unreach {
    /// `ICMPV6_NOROUTE`
    pub const NOROUTE: u8 = 0;
    /// `ICMPV6_ADM_PROHIBITED`
    pub const ADM_PROHIBITED: u8 = 1;
    /// `ICMPV6_NOT_NEIGHBOUR` (beyond scope)
    pub const NOT_NEIGHBOUR: u8 = 2;
    /// `ICMPV6_ADDR_UNREACH`
    pub const ADDR_UNREACH: u8 = 3;
    /// `ICMPV6_PORT_UNREACH`
    pub const PORT_UNREACH: u8 = 4;
    /// `ICMPV6_POLICY_FAIL`
    pub const POLICY_FAIL: u8 = 5;
    /// `ICMPV6_REJECT_ROUTE`
    pub const REJECT_ROUTE: u8 = 6;
}

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of "rest").
pub const HEADER_LEN: usize = 8;

/// A zero-copy view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wrap without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
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
    /// The 4 type-specific bytes (the MTU of a packet-too-big, the pointer of a
    /// parameter problem, the flags of a neighbour advertisement).
    pub fn rest(&self) -> u32 {
        get_u32(self.buffer.as_ref(), 4)
    }
    /// The body after the header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Whether the checksum verifies over the pseudo-header of `src`/`dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::transport(src, dst, 58, self.buffer.as_ref()) == 0
    }
}

/// An ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Repr {
    /// Type.
    pub msg_type: u8,
    /// Code.
    pub code: u8,
    /// The 4 type-specific bytes, as a big-endian word.
    pub rest: u32,
    /// The body.
    pub data: Vec<u8>,
}

impl Icmpv6Repr {
    /// Parse, verifying the checksum over the pseudo-header (as `icmpv6_rcv` does).
    pub fn parse<T: AsRef<[u8]>>(
        p: &Icmpv6Packet<T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error);
        }
        Ok(Icmpv6Repr {
            msg_type: p.msg_type(),
            code: p.code(),
            rest: p.rest(),
            data: p.data().to_vec(),
        })
    }
    /// Destination unreachable quoting `quoted` (the offending IPv6 packet's start).
    pub fn dest_unreachable(code: u8, quoted: &[u8]) -> Self {
        Self::error(types::DEST_UNREACH, code, 0, quoted)
    }
    /// Packet too big, with the next hop's `mtu`.
    pub fn packet_too_big(mtu: u32, quoted: &[u8]) -> Self {
        Self::error(types::PKT_TOOBIG, 0, mtu, quoted)
    }
    /// Time exceeded (code 0: hop limit, 1: reassembly).
    pub fn time_exceeded(code: u8, quoted: &[u8]) -> Self {
        Self::error(types::TIME_EXCEED, code, 0, quoted)
    }
    /// Parameter problem with the offending byte's `pointer`.
    pub fn parameter_problem(code: u8, pointer: u32, quoted: &[u8]) -> Self {
        Self::error(types::PARAMPROB, code, pointer, quoted)
    }
    fn error(msg_type: u8, code: u8, rest: u32, quoted: &[u8]) -> Self {
        Icmpv6Repr {
            msg_type,
            code,
            rest,
            data: quoted.to_vec(),
        }
    }
    /// Length on the wire.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }
    /// Write into `buf[..buffer_len()]` with the checksum for `src`/`dst`.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        buf[0] = self.msg_type;
        buf[1] = self.code;
        put_u16(buf, 2, 0);
        buf[4..8].copy_from_slice(&self.rest.to_be_bytes());
        buf[HEADER_LEN..self.buffer_len()].copy_from_slice(&self.data);
        let c = checksum::transport(src, dst, 58, &buf[..self.buffer_len()]);
        put_u16(buf, 2, c);
    }
    /// The message as bytes.
    pub fn to_bytes(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut b = vec![0; self.buffer_len()];
        self.emit(&mut b, src, dst);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        ("2001:2::2".parse().unwrap(), "2001:2::1".parse().unwrap())
    }

    // Port unreachable quoting 4 bytes, 2001:2::2 → 2001:2::1.
    static PORT_UNREACH: [u8; 12] = [0x01, 0x04, 0x21, 0x0f, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];

    #[test]
    fn construct() {
        let (s, d) = addrs();
        let b = Icmpv6Repr::dest_unreachable(4, &[0xde, 0xad, 0xbe, 0xef]).to_bytes(s, d);
        assert_eq!(b, PORT_UNREACH);
    }

    #[test]
    fn deconstruct() {
        let (s, d) = addrs();
        let p = Icmpv6Packet::new_checked(&PORT_UNREACH[..]).unwrap();
        let r = Icmpv6Repr::parse(&p, s, d).unwrap();
        assert_eq!(
            (r.msg_type, r.code),
            (types::DEST_UNREACH, unreach::PORT_UNREACH)
        );
        assert_eq!(r.data, [0xde, 0xad, 0xbe, 0xef]);
        // The pseudo-header covers the addresses: from another source, the checksum fails.
        assert!(Icmpv6Repr::parse(&p, "2001:2::3".parse().unwrap(), d).is_err());
        assert!(Icmpv6Packet::new_checked(&PORT_UNREACH[..7]).is_err());
    }

    #[test]
    fn errors_carry_their_word() {
        let (s, d) = addrs();
        let b = Icmpv6Repr::packet_too_big(1400, &[1, 2]).to_bytes(s, d);
        assert_eq!(&b[..2], &[2, 0]);
        assert_eq!(&b[4..8], &1400u32.to_be_bytes());
        let b = Icmpv6Repr::parameter_problem(0, 6, &[]).to_bytes(s, d);
        assert_eq!((b[0], &b[4..8]), (4, &[0u8, 0, 0, 6][..]));
        let b = Icmpv6Repr::time_exceeded(0, &[]).to_bytes(s, d);
        assert_eq!(b[0], 3);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(s, d));
    }
}
