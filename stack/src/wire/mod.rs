//! Packet parsing and emission: Ethernet, ARP, IPv4 (+options), ICMP, IPv6, ICMPv6 and
//! neighbour discovery, TCP (+options).
//!
//! Two views of every packet, as in smoltcp: a zero-copy `Packet<T: AsRef<[u8]>>`
//! whose accessors cannot panic once `check_len()` has passed, and a typed
//! `Repr` with `parse` / `buffer_len` / `emit`. Byte offsets live in a `field`
//! module per protocol. This layer knows bytes only; the errors are a unit type.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod tcp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmp::{IcmpPacket, IcmpRepr};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use ndisc::NdiscRepr;
pub use tcp::{TcpFlags, TcpOption, TcpPacket, TcpRepr};

/// The wire layer's error: the bytes are truncated or malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("truncated or malformed packet")
    }
}

impl std::error::Error for Error {}

/// Result of the wire layer.
pub type Result<T> = core::result::Result<T, Error>;

pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
