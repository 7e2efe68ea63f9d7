//! TCP segments and options (RFC 9293, RFC 7323, RFC 2018, RFC 7413).

use super::checksum;
use super::{get_u16, get_u32, put_u16, put_u32, Error, Result};
use std::net::IpAddr;

/// TCP flag bits as they sit in bytes 12..14 (with the AE/NS bit 0x100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// FIN
    pub const FIN: u16 = 0x001;
    /// SYN
    pub const SYN: u16 = 0x002;
    /// RST
    pub const RST: u16 = 0x004;
    /// PSH
    pub const PSH: u16 = 0x008;
    /// ACK
    pub const ACK: u16 = 0x010;
    /// URG
    pub const URG: u16 = 0x020;
    /// ECE
    pub const ECE: u16 = 0x040;
    /// CWR
    pub const CWR: u16 = 0x080;
    /// AE (AccECN; formerly NS)
    pub const AE: u16 = 0x100;

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }
    /// FIN set.
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    /// SYN set.
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    /// RST set.
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
    /// ACK set.
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
}

/// Option kinds.
pub mod kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No-operation.
    pub const NOP: u8 = 1;
    /// Maximum segment size.
    pub const MSS: u8 = 2;
    /// Window scale.
    pub const WS: u8 = 3;
    /// SACK permitted.
    pub const SACK_PERM: u8 = 4;
    /// SACK blocks.
    pub const SACK: u8 = 5;
    /// Timestamps.
    pub const TS: u8 = 8;
    /// MD5 signature.
    pub const MD5: u8 = 19;
    /// Fast Open (RFC 7413).
    pub const FASTOPEN: u8 = 34;
    /// Experimental (RFC 6994), Fast Open uses magic 0xF989.
    pub const EXP: u8 = 254;
}

/// One TCP option, in wire order. Padding NOPs are explicit so that a list
/// describes the exact bytes (the SYN layouts of `tcp_options_write`).
///
/// The harness walks option bytes with a codec of its own (`harness/src/linux/tcp_options.rs`)
/// on purpose: the judge must not share code with the implementation under test, or a
/// bug in the shared code would be invisible to it (both sides would agree on the wrong
/// thing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOption {
    /// `01`
    Nop,
    /// `02 04 mm mm`
    Mss(u16),
    /// `03 03 ws`
    WindowScale(u8),
    /// `04 02`
    SackPermitted,
    /// `05 len (left right)*`
    Sack(Vec<(u32, u32)>),
    /// `08 0a tsval tsecr`
    Timestamps {
        /// TSval
        tsval: u32,
        /// TSecr
        tsecr: u32,
    },
    /// `22 len cookie` (an empty cookie is the cookie request `22 02`).
    FastOpen(Vec<u8>),
    /// `fe len f9 89 cookie`
    FastOpenExp(Vec<u8>),
    /// Any other kind, or a known kind with a length the kernel ignores.
    Unknown {
        /// Kind byte.
        kind: u8,
        /// Bytes after the length byte.
        data: Vec<u8>,
    },
}

impl TcpOption {
    /// Bytes this option takes.
    pub fn len(&self) -> usize {
        match self {
            TcpOption::Nop => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(b) => 2 + 8 * b.len(),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::FastOpen(c) => 2 + c.len(),
            TcpOption::FastOpenExp(c) => 4 + c.len(),
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }
    /// Never empty; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn emit(&self, b: &mut [u8]) {
        match self {
            TcpOption::Nop => b[0] = kind::NOP,
            TcpOption::Mss(m) => {
                b[..2].copy_from_slice(&[kind::MSS, 4]);
                put_u16(b, 2, *m);
            }
            TcpOption::WindowScale(w) => b[..3].copy_from_slice(&[kind::WS, 3, *w]),
            TcpOption::SackPermitted => b[..2].copy_from_slice(&[kind::SACK_PERM, 2]),
            TcpOption::Sack(blocks) => {
                b[0] = kind::SACK;
                b[1] = self.len() as u8;
                for (i, (l, r)) in blocks.iter().enumerate() {
                    put_u32(b, 2 + 8 * i, *l);
                    put_u32(b, 6 + 8 * i, *r);
                }
            }
            TcpOption::Timestamps { tsval, tsecr } => {
                b[..2].copy_from_slice(&[kind::TS, 10]);
                put_u32(b, 2, *tsval);
                put_u32(b, 6, *tsecr);
            }
            TcpOption::FastOpen(c) => {
                b[0] = kind::FASTOPEN;
                b[1] = self.len() as u8;
                b[2..2 + c.len()].copy_from_slice(c);
            }
            TcpOption::FastOpenExp(c) => {
                b[..4].copy_from_slice(&[kind::EXP, self.len() as u8, 0xf9, 0x89]);
                b[4..4 + c.len()].copy_from_slice(c);
            }
            TcpOption::Unknown { kind, data } => {
                b[0] = *kind;
                b[1] = self.len() as u8;
                b[2..2 + data.len()].copy_from_slice(data);
            }
        }
    }

    /// Walk an option area as `tcp_parse_options` (net/ipv4/tcp_input.c) does:
    /// EOL stops; NOP advances one byte; for other kinds, fewer than 2 bytes
    /// left, a "silly" length below 2, or a length beyond the area stops the
    /// walk (later options are ignored, partial ones not parsed). Known kinds
    /// with a length the kernel does not accept (MSS ≠ 4, WS ≠ 3, SACK_PERM ≠ 2,
    /// TS ≠ 10, malformed SACK) come back as [`TcpOption::Unknown`].
    pub fn parse_all(mut b: &[u8]) -> Vec<TcpOption> {
        let mut out = Vec::new();
        while let Some(&k) = b.first() {
            match k {
                kind::EOL => break,
                kind::NOP => {
                    out.push(TcpOption::Nop);
                    b = &b[1..];
                }
                _ => {
                    if b.len() < 2 {
                        break;
                    }
                    let len = b[1] as usize;
                    if len < 2 || len > b.len() {
                        break;
                    }
                    let d = &b[2..len];
                    let opt = match (k, len) {
                        (kind::MSS, 4) => TcpOption::Mss(get_u16(d, 0)),
                        (kind::WS, 3) => TcpOption::WindowScale(d[0]),
                        (kind::SACK_PERM, 2) => TcpOption::SackPermitted,
                        (kind::SACK, n) if n >= 10 && (n - 2) % 8 == 0 => TcpOption::Sack(
                            d.chunks_exact(8)
                                .map(|c| (get_u32(c, 0), get_u32(c, 4)))
                                .collect(),
                        ),
                        (kind::TS, 10) => TcpOption::Timestamps {
                            tsval: get_u32(d, 0),
                            tsecr: get_u32(d, 4),
                        },
                        (kind::FASTOPEN, _) => TcpOption::FastOpen(d.to_vec()),
                        (kind::EXP, n) if n >= 4 && d[0] == 0xf9 && d[1] == 0x89 => {
                            TcpOption::FastOpenExp(d[2..].to_vec())
                        }
                        _ => TcpOption::Unknown {
                            kind: k,
                            data: d.to_vec(),
                        },
                    };
                    out.push(opt);
                    b = &b[len..];
                }
            }
        }
        out
    }
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Maximum option space.
pub const MAX_OPTIONS_LEN: usize = 40;

/// A zero-copy view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Wrap and check the length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Ensure the fixed header and the header length claimed by the data
    /// offset are present (`tcp_v4_rcv`: `doff < 5` → drop).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN || hl > len {
            return Err(Error);
        }
        Ok(())
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.b(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.b(), field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        get_u32(self.b(), field::SEQ)
    }
    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        get_u32(self.b(), field::ACK)
    }
    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> u8 {
        (self.b()[field::FLAGS] >> 4) * 4
    }
    /// Flags, including AE.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(get_u16(self.b(), field::FLAGS) & 0x1ff)
    }
    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        get_u16(self.b(), field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.b(), field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.b(), field::URGENT)
    }
    /// Option bytes (after `check_len`).
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len() as usize]
    }
    /// Payload (after `check_len`).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len() as usize..]
    }
    /// Whether the checksum verifies against the pseudo-header (IPv4 or IPv6,
    /// by the addresses' family).
    pub fn verify_checksum(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> bool {
        checksum::transport(src, dst, 6, self.b()) == 0
    }
}

/// A TCP segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with ACK; sent as is otherwise).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field (already scaled down).
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options in wire order. Emission pads with EOL to a 4-byte boundary.
    pub options: Vec<TcpOption>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl TcpRepr {
    /// Parse a segment; the checksum is verified against `src`/`dst` (IPv4 or IPv6).
    pub fn parse<T: AsRef<[u8]>>(
        p: &TcpPacket<T>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error);
        }
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window_len(),
            urgent: p.urgent_at(),
            options: TcpOption::parse_all(p.options()),
            payload: p.payload().to_vec(),
        })
    }
    /// Bytes of options (unpadded).
    pub fn options_len(&self) -> usize {
        self.options.iter().map(TcpOption::len).sum()
    }
    /// Header length, options padded to 4.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len().div_ceil(4) * 4
    }
    /// Segment length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }
    /// Sequence space the segment occupies (payload + SYN + FIN).
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
    /// Write into `buf[..buffer_len()]` with the checksum for `src`/`dst`.
    /// The options must fit in 40 bytes.
    pub fn emit(&self, buf: &mut [u8], src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        let hl = self.header_len();
        let total = self.buffer_len();
        buf[..hl].fill(0);
        put_u16(buf, field::SRC_PORT, self.src_port);
        put_u16(buf, field::DST_PORT, self.dst_port);
        put_u32(buf, field::SEQ, self.seq);
        put_u32(buf, field::ACK, self.ack);
        put_u16(
            buf,
            field::FLAGS,
            ((hl as u16 / 4) << 12) | (self.flags.0 & 0x1ff),
        );
        put_u16(buf, field::WINDOW, self.window);
        put_u16(buf, field::URGENT, self.urgent);
        let mut at = HEADER_LEN;
        for o in &self.options {
            o.emit(&mut buf[at..]);
            at += o.len();
        }
        buf[hl..total].copy_from_slice(&self.payload);
        let c = checksum::transport(src, dst, 6, &buf[..total]);
        put_u16(buf, field::CHECKSUM, c);
    }
    /// The segment as bytes.
    pub fn to_bytes(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Vec<u8> {
        let mut b = vec![0; self.buffer_len()];
        self.emit(&mut b, src, dst);
        b
    }
    /// The MSS option value, if present.
    pub fn mss(&self) -> Option<u16> {
        self.options.iter().find_map(|o| {
            if let TcpOption::Mss(m) = o {
                Some(*m)
            } else {
                None
            }
        })
    }
    /// The window-scale option value, if present.
    pub fn window_scale(&self) -> Option<u8> {
        self.options.iter().find_map(|o| {
            if let TcpOption::WindowScale(w) = o {
                Some(*w)
            } else {
                None
            }
        })
    }
    /// The timestamps option, if present.
    pub fn timestamps(&self) -> Option<(u32, u32)> {
        self.options.iter().find_map(|o| {
            if let TcpOption::Timestamps { tsval, tsecr } = o {
                Some((*tsval, *tsecr))
            } else {
                None
            }
        })
    }
    /// Whether SACK-permitted is present.
    pub fn sack_permitted(&self) -> bool {
        self.options.contains(&TcpOption::SackPermitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 2);

    /// The default Linux SYN: mss 1460, sackOK, TS val 0x01020304 ecr 0, nop, wscale 10.
    static SYN: [u8; 40] = [
        0xc0, 0x00, 0x1f, 0x90, // 49152 → 8080
        0x11, 0x22, 0x33, 0x44, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum (patched in the test), urg
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    fn syn_repr() -> TcpRepr {
        TcpRepr {
            src_port: 49152,
            dst_port: 8080,
            seq: 0x11223344,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 64240,
            urgent: 0,
            options: vec![
                TcpOption::Mss(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps {
                    tsval: 0x01020304,
                    tsecr: 0,
                },
                TcpOption::Nop,
                TcpOption::WindowScale(10),
            ],
            payload: vec![],
        }
    }

    fn fixture() -> Vec<u8> {
        let mut b = SYN.to_vec();
        let c = checksum::transport(SRC, DST, 6, &b);
        b[16..18].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn construct() {
        assert_eq!(syn_repr().to_bytes(SRC, DST), fixture());
    }

    #[test]
    fn deconstruct() {
        let b = fixture();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags(TcpFlags::SYN));
        assert_eq!(TcpRepr::parse(&p, SRC, DST).unwrap(), syn_repr());
        assert!(TcpRepr::parse(&p, SRC, Ipv4Addr::new(1, 2, 3, 4)).is_err());
    }

    #[test]
    fn ipv6_pseudo_header_checksum() {
        // The same SYN from 2001:2::1 to 2001:2::2: the checksum field is what
        // the v6 pseudo-header gives, and a v4 pair does not verify it.
        let s: Ipv6Addr = "2001:2::1".parse().unwrap();
        let d: Ipv6Addr = "2001:2::2".parse().unwrap();
        let b = syn_repr().to_bytes(s, d);
        let mut zeroed = b.clone();
        zeroed[16..18].fill(0);
        let sum = checksum::finish(checksum::sum(
            checksum::pseudo_header_v6(s, d, 6, 40),
            &zeroed,
        ));
        assert_eq!(&b[16..18], &sum.to_be_bytes());
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, s, d).unwrap(), syn_repr());
        assert!(TcpRepr::parse(&p, SRC, DST).is_err());
    }

    #[test]
    fn option_walk_matches_tcp_parse_options() {
        // MSS with length 3 is skipped as unknown; then a silly length stops the walk.
        let opts = [2, 3, 5, 1, 3, 1, 4, 2];
        assert_eq!(
            TcpOption::parse_all(&opts),
            vec![
                TcpOption::Unknown {
                    kind: 2,
                    data: vec![5]
                },
                TcpOption::Nop
            ]
        );
        // Length beyond the area stops; EOL stops.
        assert_eq!(TcpOption::parse_all(&[3, 4, 7]), vec![]);
        assert_eq!(
            TcpOption::parse_all(&[1, 0, 2, 4, 5, 0xb4]),
            vec![TcpOption::Nop]
        );
        // TFO cookie request and an experimental cookie.
        assert_eq!(
            TcpOption::parse_all(&[0x22, 2, 1, 1]),
            vec![TcpOption::FastOpen(vec![]), TcpOption::Nop, TcpOption::Nop]
        );
        assert_eq!(
            TcpOption::parse_all(&[0xfe, 6, 0xf9, 0x89, 7, 8]),
            vec![TcpOption::FastOpenExp(vec![7, 8])]
        );
    }

    #[test]
    fn ae_flag_and_bad_doff() {
        let mut r = syn_repr();
        r.flags = TcpFlags(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR | TcpFlags::AE);
        let b = r.to_bytes(SRC, DST);
        assert_eq!(&b[12..14], &[0xa1, 0xc2]);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, SRC, DST).unwrap(), r);
        let mut bad = b.clone();
        bad[12] = 0x40; // doff 4
        assert!(TcpPacket::new_checked(&bad[..]).is_err());
        bad[12] = 0xf0; // doff 15 > buffer
        assert!(TcpPacket::new_checked(&bad[..36]).is_err());
    }
}
