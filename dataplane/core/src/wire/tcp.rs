//! TCP segments (RFC 9293) and their options (MSS RFC 9293 §3.7.1, window scale and timestamps
//! RFC 7323, SACK RFC 2018).
//!
//! ```text
//!  0               1               2               3
//! +-------------------------------+-------------------------------+
//! |          source port          |       destination port        |
//! +-------------------------------+-------------------------------+
//! |                        sequence number                        |
//! |                     acknowledgment number                     |
//! +-------+-------+---------------+-------------------------------+
//! | offset| rsvd  |C E U A P R S F|            window             |
//! +-------+-------+---------------+-------------------------------+
//! |           checksum            |        urgent pointer         |
//! +-------------------------------+-------------------------------+
//! |                 options (offset > 5) ...                      |
//! ```
//!
//! TCP has no length field: a view spans exactly one segment (for example
//! [`Ipv4Packet::payload`](super::Ipv4Packet::payload)), and the checksum covers the whole
//! buffer.

use std::fmt;
use std::net::IpAddr;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use super::bytes::{read_u16, read_u32, write_u16, write_u32};
use super::{Error, IpProtocol, Result, checksum};

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Length of the longest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// The eight TCP control bits (byte 13 of the header), as a small bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);

    const NAMES: [(TcpFlags, &'static str); 8] = [
        (TcpFlags::FIN, "FIN"),
        (TcpFlags::SYN, "SYN"),
        (TcpFlags::RST, "RST"),
        (TcpFlags::PSH, "PSH"),
        (TcpFlags::ACK, "ACK"),
        (TcpFlags::URG, "URG"),
        (TcpFlags::ECE, "ECE"),
        (TcpFlags::CWR, "CWR"),
    ];

    /// No flags.
    #[inline]
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// The flags of wire byte `bits`.
    #[inline]
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }

    /// The wire byte.
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether no flag is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    #[inline]
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets the flags of `other`.
    #[inline]
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    #[inline]
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    /// `SYN|ACK`, or `(none)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let mut sep = "";
        for (flag, name) in TcpFlags::NAMES {
            if self.contains(flag) {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        Ok(())
    }
}

/// A view of a TCP segment.
///
/// After [`new_checked`](Self::new_checked) no accessor panics. Setting the header length can
/// break that guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short or inconsistent one.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer`, checking its header (see [`check_len`](Self::check_len)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 20 bytes or than the data offset says;
    /// `Malformed` if the data offset is below 5.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if data.len() < header_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4: 20..=60 on a checked view).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The control bits.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window size (unscaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The raw options (bytes 20..header length); iterate them with [`TcpOptions`].
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum is correct for a segment from `src` to `dst` (the whole buffer is
    /// the segment). `false` if the families differ.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        match checksum::pseudo_header(src, dst, IpProtocol::Tcp, len) {
            Some(ph) => checksum::finish(checksum::sum(data, ph)) == 0,
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, v);
    }

    /// Sets the header length in bytes: a multiple of 4 in 20..=60 (only the low 4 bits of
    /// `len / 4` are stored). The reserved bits are preserved.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(
            len.is_multiple_of(4) && (20..=60).contains(&len),
            "bad TCP header length {len}"
        );
        let off = u8::try_from(len / 4).unwrap_or(0x0f) & 0x0f;
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (off << 4);
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, v: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = v.0;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Computes the checksum over the pseudo-header and the whole buffer, and writes it.
    ///
    /// # Panics
    /// In debug builds, if `src` and `dst` are of different families or an IPv4 segment is
    /// longer than 65535 bytes (release builds leave the checksum 0).
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let ph = u32::try_from(data.len())
            .ok()
            .and_then(|len| checksum::pseudo_header(src, dst, IpProtocol::Tcp, len));
        debug_assert!(
            ph.is_some(),
            "TCP checksum over {src} -> {dst}, {} bytes",
            data.len()
        );
        if let Some(ph) = ph {
            let c = checksum::finish(checksum::sum(data, ph));
            self.set_checksum(c);
        }
    }

    /// The raw options, mutably (write them with [`TcpOption::emit`]).
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The data after the header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0); what follows is padding.
    EndOfList,
    /// No-operation (kind 1), used for alignment.
    NoOperation,
    /// Maximum segment size (kind 2).
    MaxSegmentSize(u16),
    /// Window scale shift count (kind 3; RFC 7323 caps its use at 14).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// SACK blocks (kind 5): 1 to 4 pairs of big-endian `u32` left and right edges, raw.
    SackRange(&'a [u8]),
    /// Timestamps (kind 8).
    Timestamp {
        /// Timestamp value.
        tsval: u32,
        /// Timestamp echo reply.
        tsecr: u32,
    },
    /// Any other kind, with the bytes after its kind and length.
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option data.
        data: &'a [u8],
    },
}

mod opt {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SACK_PERM: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TS: u8 = 8;
}

impl TcpOption<'_> {
    /// Number of bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange(d) | TcpOption::Unknown { data: d, .. } => 2 + d.len(),
            TcpOption::Timestamp { .. } => 10,
        }
    }

    /// Writes the option at the start of `buf`, returning its length.
    ///
    /// # Panics
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len). In debug builds, if a
    /// `SackRange` or `Unknown` option is longer than 255 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let len_byte = u8::try_from(len).unwrap_or(u8::MAX);
        debug_assert!(len <= usize::from(u8::MAX), "TCP option of {len} bytes");
        match *self {
            TcpOption::EndOfList => buf[0] = opt::EOL,
            TcpOption::NoOperation => buf[0] = opt::NOP,
            TcpOption::MaxSegmentSize(mss) => {
                buf[..2].copy_from_slice(&[opt::MSS, len_byte]);
                buf[2..].copy_from_slice(&mss.to_be_bytes());
            }
            TcpOption::WindowScale(shift) => buf.copy_from_slice(&[opt::WS, len_byte, shift]),
            TcpOption::SackPermitted => buf.copy_from_slice(&[opt::SACK_PERM, len_byte]),
            TcpOption::SackRange(blocks) => {
                buf[..2].copy_from_slice(&[opt::SACK, len_byte]);
                buf[2..].copy_from_slice(blocks);
            }
            TcpOption::Timestamp { tsval, tsecr } => {
                buf[..2].copy_from_slice(&[opt::TS, len_byte]);
                buf[2..6].copy_from_slice(&tsval.to_be_bytes());
                buf[6..].copy_from_slice(&tsecr.to_be_bytes());
            }
            TcpOption::Unknown { kind, data } => {
                buf[..2].copy_from_slice(&[kind, len_byte]);
                buf[2..].copy_from_slice(data);
            }
        }
        len
    }
}

/// An iterator over the options of a TCP header ([`TcpPacket::options`]).
///
/// Yields `Err(Malformed)` for an option whose length byte is missing, below 2 or past the end
/// of the options (and then stops), or whose length is wrong for its kind (and then goes on).
/// Stops after `EndOfList`.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Iterates over the options in `options`.
    #[inline]
    pub fn new(options: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions { rest: options }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            opt::EOL => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            opt::NOP => {
                self.rest = after_kind;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let len = after_kind.first().map_or(0, |&l| usize::from(l));
        let Some((option, rest)) = self.rest.split_at_checked(len).filter(|_| len >= 2) else {
            self.rest = &[];
            return Some(Err(Error::Malformed));
        };
        self.rest = rest;
        let body = &option[2..];
        Some(match (kind, body.len()) {
            (opt::MSS, 2) => Ok(TcpOption::MaxSegmentSize(u16::from_be_bytes([
                body[0], body[1],
            ]))),
            (opt::WS, 1) => Ok(TcpOption::WindowScale(body[0])),
            (opt::SACK_PERM, 0) => Ok(TcpOption::SackPermitted),
            (opt::SACK, n) if n > 0 && n % 8 == 0 => Ok(TcpOption::SackRange(body)),
            (opt::TS, 8) => Ok(TcpOption::Timestamp {
                tsval: read_u32(body, 0..4),
                tsecr: read_u32(body, 4..8),
            }),
            (opt::MSS | opt::WS | opt::SACK_PERM | opt::SACK | opt::TS, _) => Err(Error::Malformed),
            (kind, _) => Ok(TcpOption::Unknown { kind, data: body }),
        })
    }
}

/// The fixed TCP header as a value (options and payload are the caller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Window size (unscaled).
    pub window_len: u16,
    /// Header length in bytes, options included (a multiple of 4 in 20..=60).
    pub header_len: usize,
}

impl TcpRepr {
    /// Reads `packet`'s fixed header. Does not verify the checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &TcpPacket<T>) -> Result<TcpRepr> {
        packet.check_len()?;
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            header_len: packet.header_len(),
        })
    }

    /// Length of the header this describes (`header_len`, options included).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        self.header_len
    }

    /// Writes the first 20 bytes of the header (checksum and urgent pointer 0). The options
    /// area (20..`header_len`) is left as it is: write it through
    /// [`TcpPacket::options_mut`]. Then call [`TcpPacket::fill_checksum`].
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`]. In debug builds, if `header_len` is not a
    /// multiple of 4 in 20..=60.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::DATA_OFF] = 0;
        packet.set_header_len(self.header_len);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(0);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    // A Linux SYN from 10.1.2.3:51000 to 93.184.216.34:443: MSS 1460, SACK permitted,
    // timestamps, NOP, window scale 7.
    const SYN: [u8; 40] = [
        0xc7, 0x38, 0x01, 0xbb, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0xa3, 0x38, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x1b,
        0x2c, 0x3d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    // The SYN-ACK from [2001:db8::80]:443 to [2001:db8::1]:51000.
    const SYNACK6: [u8; 40] = [
        0x01, 0xbb, 0xc7, 0x38, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x79, 0xa0, 0x12, 0xfe,
        0x88, 0xc5, 0xcd, 0x00, 0x00, 0x02, 0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0x11, 0x11,
        0x11, 0x11, 0x0a, 0x1b, 0x2c, 0x3d, 0x01, 0x03, 0x03, 0x09,
    ];

    fn v4() -> (IpAddr, IpAddr) {
        (
            Ipv4Addr::new(10, 1, 2, 3).into(),
            Ipv4Addr::new(93, 184, 216, 34).into(),
        )
    }

    fn v6() -> (IpAddr, IpAddr) {
        let s: Ipv6Addr = "2001:db8::80".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::1".parse().unwrap();
        (s.into(), d.into())
    }

    fn syn_options() -> [TcpOption<'static>; 5] {
        [
            TcpOption::MaxSegmentSize(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamp {
                tsval: 0x0a1b_2c3d,
                tsecr: 0,
            },
            TcpOption::NoOperation,
            TcpOption::WindowScale(7),
        ]
    }

    #[test]
    fn parse_syn() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (51000, 443));
        assert_eq!((p.seq_number(), p.ack_number()), (0x1234_5678, 0));
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert!(p.flags().contains(TcpFlags::SYN) && !p.flags().contains(TcpFlags::ACK));
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0xa338);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &SYN[20..]);
        assert!(p.payload().is_empty());
        let (s, d) = v4();
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&s, &v6().1));

        let mut got = [TcpOption::EndOfList; 5];
        let mut n = 0;
        for o in TcpOptions::new(p.options()) {
            got[n] = o.unwrap();
            n += 1;
        }
        assert_eq!((n, got), (5, syn_options()));

        let r = TcpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            TcpRepr {
                src_port: 51000,
                dst_port: 443,
                seq_number: 0x1234_5678,
                ack_number: 0,
                flags: TcpFlags::SYN,
                window_len: 64240,
                header_len: 40,
            }
        );
        assert_eq!(r.buffer_len(), 40);
    }

    #[test]
    fn emit_syn() {
        let r = TcpRepr::parse(&TcpPacket::new_checked(&SYN[..]).unwrap()).unwrap();
        let mut buf = [0xeeu8; 40];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        let mut at = 0;
        for o in syn_options() {
            at += o.emit(&mut p.options_mut()[at..]);
        }
        assert_eq!(at, 20);
        let (s, d) = v4();
        p.fill_checksum(&s, &d);
        assert_eq!(buf, SYN);
    }

    #[test]
    fn ipv6_synack() {
        let p = TcpPacket::new_checked(&SYNACK6[..]).unwrap();
        assert_eq!(p.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(p.ack_number(), 0x1234_5679);
        let (s, d) = v6();
        assert!(p.verify_checksum(&s, &d));
        let mut buf = SYNACK6;
        let mut p = TcpPacket::new_checked(&mut buf[..]).unwrap();
        p.set_checksum(0);
        p.fill_checksum(&s, &d);
        assert_eq!(buf, SYNACK6);
    }

    #[test]
    fn setters_and_payload() {
        let mut buf = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_header_len(20);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(TcpFlags::PSH | TcpFlags::ACK);
        p.set_window_len(5);
        p.set_urgent_at(6);
        p.payload_mut().copy_from_slice(b"data");
        assert_eq!(
            (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()),
            (1, 2, 3, 4)
        );
        assert_eq!((p.window_len(), p.urgent_at(), p.header_len()), (5, 6, 20));
        assert_eq!(p.flags().bits(), 0x18);
        assert_eq!(p.payload(), b"data");
        assert!(p.options_mut().is_empty());
        let (s, d) = v4();
        p.fill_checksum(&s, &d);
        assert!(p.verify_checksum(&s, &d));
        assert_eq!(p.into_inner().len(), 24);
    }

    #[test]
    fn flags() {
        let mut f = TcpFlags::SYN | TcpFlags::ACK | TcpFlags::FIN;
        f.remove(TcpFlags::FIN | TcpFlags::PSH);
        assert_eq!(f, TcpFlags::from_bits(0x12));
        assert!(f.intersects(TcpFlags::ACK | TcpFlags::RST));
        assert!(!f.intersects(TcpFlags::RST));
        f.insert(TcpFlags::CWR);
        f |= TcpFlags::ECE;
        assert_eq!(f & TcpFlags::ECE, TcpFlags::ECE);
        assert_eq!(format!("{f:?}"), "SYN|ACK|ECE|CWR");
        assert_eq!(format!("{:?}", TcpFlags::default()), "(none)");
        assert!(TcpFlags::empty().is_empty());
        assert_eq!(
            TcpFlags::URG | TcpFlags::RST | TcpFlags::PSH,
            TcpFlags::from_bits(0x2c)
        );
    }

    #[test]
    fn options_edge_cases() {
        fn collect(b: &[u8]) -> [Option<Result<TcpOption<'_>>>; 8] {
            let mut out = [None; 8];
            for (i, o) in TcpOptions::new(b).enumerate() {
                out[i] = Some(o);
            }
            out
        }
        // SACK with two blocks, an unknown option (MPTCP, kind 30), EOL, then padding ignored.
        let opts = [
            5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 30, 4, 0x10, 0x01, 0, 0xff,
        ];
        let got = collect(&opts);
        assert_eq!(got[0], Some(Ok(TcpOption::SackRange(&opts[2..18]))));
        assert_eq!(
            got[1],
            Some(Ok(TcpOption::Unknown {
                kind: 30,
                data: &[0x10, 0x01]
            }))
        );
        assert_eq!(got[2], Some(Ok(TcpOption::EndOfList)));
        assert_eq!(got[3], None);

        // Length below 2, length byte missing, length past the end: Malformed, then stop.
        for bad in [&[2u8, 1, 5, 0xb4][..], &[3], &[8, 10, 0, 0]] {
            let got = collect(bad);
            assert_eq!(
                (got[0], got[1]),
                (Some(Err(Error::Malformed)), None),
                "{bad:?}"
            );
        }
        // A known kind with the wrong length is Malformed, but iteration goes on.
        let got = collect(&[2, 3, 5, 4, 2]);
        assert_eq!(got[0], Some(Err(Error::Malformed)));
        assert_eq!(got[1], Some(Ok(TcpOption::SackPermitted)));
        let got = collect(&[5, 2, 3, 3, 0]);
        assert_eq!(got[0], Some(Err(Error::Malformed)));
        assert_eq!(got[1], Some(Ok(TcpOption::WindowScale(0))));

        // Emitting SACK and unknown options reproduces their bytes.
        let mut buf = [0u8; 22];
        let n = TcpOption::SackRange(&opts[2..18]).emit(&mut buf);
        let m = TcpOption::Unknown {
            kind: 30,
            data: &[0x10, 0x01],
        }
        .emit(&mut buf[n..]);
        assert_eq!((n, m), (18, 4));
        assert_eq!(buf, opts[..22]);
        assert_eq!(TcpOption::EndOfList.emit(&mut buf), 1);
        assert_eq!(buf[0], 0);
    }

    #[test]
    fn malformed_and_truncated() {
        let mut buf = SYN;
        buf[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).err(),
            Some(Error::Malformed)
        );
        assert_eq!(
            TcpRepr::parse(&TcpPacket::new_unchecked(&buf[..])),
            Err(Error::Malformed)
        );
        buf[12] = 0xb0;
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn every_prefix_is_safe() {
        let (s4, d4) = v4();
        let (s6, d6) = v6();
        for sample in [&SYN[..], &SYNACK6[..]] {
            for len in 0..=sample.len() {
                match TcpPacket::new_checked(&sample[..len]) {
                    Ok(p) => {
                        assert_eq!(len, sample.len());
                        let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
                        let _ = (p.header_len(), p.flags(), p.window_len(), p.checksum());
                        let _ = (p.urgent_at(), p.options(), p.payload());
                        let _ = (p.verify_checksum(&s4, &d4), p.verify_checksum(&s6, &d6));
                        assert!(TcpRepr::parse(&p).is_ok());
                    }
                    Err(e) => assert_eq!(e, Error::Truncated, "len {len}"),
                }
                // The option walk on every prefix of the options.
                let opts = &sample[20..len.max(20)];
                assert!(TcpOptions::new(opts).count() <= opts.len());
            }
        }
    }
}
