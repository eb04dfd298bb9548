//! IPv4 headers (RFC 791; DSCP/ECN per RFC 2474 and RFC 3168).
//!
//! ```text
//!  0               1               2               3
//! +-------+-------+-----------+---+-------------------------------+
//! |version|  IHL  |   DSCP    |ECN|         total length          |
//! +-------+-------+-----------+---+-----+-------------------------+
//! |        identification         |flags|    fragment offset      |
//! +---------------+---------------+-----+-------------------------+
//! |      TTL      |   protocol    |        header checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        source address                         |
//! |                      destination address                      |
//! |                     options (IHL > 5) ...                     |
//! ```
//!
//! [`Ipv4Packet::new_checked`] validates the version, the IHL and the total length against the
//! buffer; the buffer may be longer than the datagram (Ethernet padding), and
//! [`Ipv4Packet::payload`] stops at the total length. Checksums are not verified while parsing:
//! call [`Ipv4Packet::verify_checksum`] where it matters.

use std::net::Ipv4Addr;

use super::bytes::{read_ipv4, read_u16, write_ipv4, write_u16};
use super::{Error, IpProtocol, Result, checksum};

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use crate::wire::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 datagram.
///
/// After [`new_checked`](Self::new_checked) no accessor panics. Setters that change the IHL or
/// total length can break that guarantee; re-check after using them on untrusted lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// The fixed header of the IPv4 datagram at the start of `b` when it is the common case: no
/// options (first byte 0x45) and a total length of at least 20 that `b` holds. These are the
/// checks [`Ipv4Packet::check_len`] makes for such a header, from its 20 bytes; `None` for
/// any other header, which the full check then classifies.
#[inline(always)]
pub fn plain_header(b: &[u8]) -> Option<&[u8; HEADER_LEN]> {
    let h = b.first_chunk::<HEADER_LEN>()?;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    (h[0] == 0x45 && (HEADER_LEN..=b.len()).contains(&total)).then_some(h)
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short or inconsistent one.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer`, checking its header (see [`check_len`](Self::check_len)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the whole header and the whole datagram:
    /// `Truncated` if it is shorter than 20 bytes, than the IHL or than the total length;
    /// `Malformed` if the version is not 4, the IHL is below 5 or the total length is shorter than
    /// the header.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if data.len() < header_len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if data.len() < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The fixed part of the header (the first 20 bytes, options excluded); all zeros if the
    /// buffer is shorter (never, on a checked view).
    #[inline]
    pub fn fixed_header(&self) -> &[u8; HEADER_LEN] {
        self.buffer
            .as_ref()
            .first_chunk()
            .unwrap_or(&[0; HEADER_LEN])
    }

    /// Version (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4: 20..=60 on a checked view).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte (formerly type of service).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated services code point (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Explicit congestion notification (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Total length of the datagram (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (more fragments set, or a nonzero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The options (bytes 20..header length; empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to the total length (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }

    /// Whether the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..self.header_len()];
        checksum::finish(checksum::sum(header, 0)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes: a multiple of 4 in 20..=60 (only the low 4 bits of
    /// `len / 4` are stored).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(
            len.is_multiple_of(4) && (20..=60).contains(&len),
            "bad IPv4 header length {len}"
        );
        let ihl = u8::try_from(len / 4).unwrap_or(0x0f) & 0x0f;
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ihl;
    }

    /// Sets the DSCP and ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the DSCP (low 6 bits of `v`).
    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (v << 2);
    }

    /// Sets the ECN codepoint (low 2 bits of `v`).
    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (v & 0x03);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    fn update_flg_off(&mut self, mask: u16, bits: u16) {
        let old = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        write_u16(
            self.buffer.as_mut(),
            field::FLG_OFF,
            (old & !mask) | (bits & mask),
        );
    }

    /// Sets the don't fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, v: bool) {
        self.update_flg_off(FLAG_DF, if v { FLAG_DF } else { 0 });
    }

    /// Sets the more fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, v: bool) {
        self.update_flg_off(FLAG_MF, if v { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes (a multiple of 8; only `bytes / 8` is stored).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        debug_assert!(
            bytes.is_multiple_of(8),
            "fragment offset {bytes} is not a multiple of 8"
        );
        self.update_flg_off(OFFSET_MASK, bytes >> 3);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.into();
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the source address. The checksum is not updated: call
    /// [`fill_checksum`](Self::fill_checksum) or use [`checksum::update_addr_v4`].
    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SRC_ADDR, v);
    }

    /// Sets the destination address. The checksum is not updated.
    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::DST_ADDR, v);
    }

    /// Computes the header checksum and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header = &self.buffer.as_ref()[..self.header_len()];
        let c = checksum::finish(checksum::sum(header, 0));
        self.set_checksum(c);
    }

    /// The options, mutably.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload (header end to total length), mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// The parts of an IPv4 header a dataplane reads and writes, as a value.
///
/// Parsing ignores options, identification and fragmentation fields (a fragment's
/// `payload_len` is that of the fragment); emitting writes a 20-byte header with DF set,
/// identification 0 (fine for atomic datagrams, RFC 6864) and a correct checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub next_header: IpProtocol,
    /// Payload length in bytes (total length minus header length); at most 65515 to emit.
    pub payload_len: usize,
    /// Time to live.
    pub hop_limit: u8,
    /// The DSCP and ECN byte.
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Reads `packet`'s header. Does not verify the checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            hop_limit: packet.hop_limit(),
            dscp_ecn: packet.dscp_ecn(),
        })
    }

    /// Length of the header this emits ([`HEADER_LEN`]).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header (DF set, identification 0) with its checksum into `packet`.
    /// The payload is not touched.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`]. In debug builds, if `payload_len`
    /// exceeds 65515 (release builds write a total length of 65535).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let total = HEADER_LEN.saturating_add(self.payload_len);
        debug_assert!(
            total <= usize::from(u16::MAX),
            "IPv4 payload of {} bytes",
            self.payload_len
        );
        let data = packet.buffer.as_mut();
        data[field::VER_IHL] = 0x45;
        data[field::DSCP_ECN] = self.dscp_ecn;
        write_u16(
            data,
            field::LENGTH,
            u16::try_from(total).unwrap_or(u16::MAX),
        );
        write_u16(data, field::IDENT, 0);
        write_u16(data, field::FLG_OFF, FLAG_DF);
        data[field::TTL] = self.hop_limit;
        data[field::PROTOCOL] = self.next_header.into();
        write_ipv4(data, field::SRC_ADDR, self.src_addr);
        write_ipv4(data, field::DST_ADDR, self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ping 192.168.1.1 from 192.168.1.10: ident 0x1c46, DF, TTL 64, ICMP echo request (24 bytes).
    const PING: [u8; 44] = [
        0x45, 0x00, 0x00, 0x2c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x9b, 0x2f, 0xc0, 0xa8, 0x01,
        0x0a, 0xc0, 0xa8, 0x01, 0x01, 0x08, 0x00, 0xb3, 0x90, 0x01, 0x23, 0x00, 0x01, 0x61, 0x62,
        0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70,
    ];

    // The header Ipv4Repr emits for PING (identification 0).
    const PING_EMITTED: [u8; 20] = [
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0xb7, 0x75, 0xc0, 0xa8, 0x01,
        0x0a, 0xc0, 0xa8, 0x01, 0x01,
    ];

    // IGMPv2 membership report for 239.1.2.3 with a Router Alert option (IHL 6), DSCP CS6, TTL 1.
    const IGMP_RA: [u8; 32] = [
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0xe9, 0x0c, 0x0a, 0x00, 0x00,
        0x07, 0xef, 0x01, 0x02, 0x03, 0x94, 0x04, 0x00, 0x00, 0x16, 0x00, 0xf8, 0xfa, 0xef, 0x01,
        0x02, 0x03,
    ];

    fn ping_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 1, 10),
            dst_addr: Ipv4Addr::new(192, 168, 1, 1),
            next_header: IpProtocol::Icmp,
            payload_len: 24,
            hop_limit: 64,
            dscp_ecn: 0,
        }
    }

    /// `plain_header` takes exactly the headers without options that `check_len` accepts.
    #[test]
    fn plain_header_agrees_with_check_len() {
        let mut seen = 0;
        for first in [0x45u8, 0x46, 0x44, 0x55, 0x4f] {
            for total in [0u16, 19, 20, 21, 24, 40, 41, 60] {
                for len in [0usize, 19, 20, 21, 24, 40, 60] {
                    let mut b = vec![0u8; len];
                    if let Some(h) = b.get_mut(..4) {
                        h[0] = first;
                        h[2..4].copy_from_slice(&total.to_be_bytes());
                    }
                    let plain = plain_header(&b).is_some();
                    let full = Ipv4Packet::new_unchecked(&b[..]).check_len().is_ok();
                    assert_eq!(plain, full && first == 0x45, "{first:#x} {total} {len}");
                    seen += usize::from(plain);
                }
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn parse_ping() {
        let p = Ipv4Packet::new_checked(&PING[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn(), p.dscp_ecn()), (0, 0, 0));
        assert_eq!(p.total_len(), 44);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), IpProtocol::Icmp);
        assert_eq!(p.checksum(), 0x9b2f);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 1, 1));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &PING[20..]);
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), Ok(ping_repr()));
    }

    #[test]
    fn parse_options_and_dscp() {
        let p = Ipv4Packet::new_checked(&IGMP_RA[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!((p.dscp(), p.ecn()), (48, 0));
        assert_eq!(p.hop_limit(), 1);
        assert_eq!(p.next_header(), IpProtocol::Igmp);
        assert_eq!(p.payload(), &IGMP_RA[24..]);
        assert!(p.verify_checksum());
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 8);
        assert_eq!(r.dscp_ecn, 0xc0);
    }

    #[test]
    fn padding_is_excluded() {
        let mut padded = [0u8; 60];
        padded[..44].copy_from_slice(&PING);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 24);
        assert_eq!(Ipv4Repr::parse(&p).unwrap().payload_len, 24);
    }

    #[test]
    fn emit() {
        let r = ping_repr();
        assert_eq!(r.buffer_len(), 20);
        let mut buf = [0xffu8; 20];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, PING_EMITTED);

        // Emitting into a whole datagram, then setting the identification, reproduces PING.
        let mut buf = PING;
        buf[..20].fill(0);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.set_ident(0x1c46);
        p.fill_checksum();
        assert_eq!(buf, PING);
    }

    #[test]
    fn checksum_detects_corruption() {
        let mut buf = PING;
        buf[8] = 63;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(!p.verify_checksum());
        // Parsing does not verify.
        assert!(Ipv4Repr::parse(&p).is_ok());
    }

    #[test]
    fn setters_and_incremental_update() {
        let mut buf = PING;
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        let old = p.src_addr();
        let new = Ipv4Addr::new(100, 64, 0, 1);
        p.set_src_addr(new);
        let c = checksum::update_addr_v4(p.checksum(), old, new);
        p.set_checksum(c);
        assert!(p.verify_checksum());

        p.set_hop_limit(63);
        p.set_dscp(46);
        p.set_ecn(2);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.set_ident(7);
        p.set_next_header(IpProtocol::Udp);
        p.set_dst_addr(Ipv4Addr::new(8, 8, 8, 8));
        p.fill_checksum();
        assert_eq!((p.hop_limit(), p.dscp(), p.ecn()), (63, 46, 2));
        assert_eq!(
            (p.dont_frag(), p.more_frags(), p.frag_offset()),
            (false, true, 1480)
        );
        assert!(p.is_fragment());
        assert_eq!((p.ident(), p.next_header()), (7, IpProtocol::Udp));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(8, 8, 8, 8));
        assert!(p.verify_checksum());
        p.set_dscp_ecn(0xb8);
        assert_eq!((p.dscp(), p.ecn()), (46, 0));
        p.payload_mut()[0] = 0;
        assert!(p.options_mut().is_empty());

        p.set_version(4);
        p.set_header_len(24);
        p.set_total_len(44);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn malformed_and_truncated() {
        let check = |f: &dyn Fn(&mut [u8; 44]), want: Error| {
            let mut buf = PING;
            f(&mut buf);
            assert_eq!(Ipv4Packet::new_checked(&buf[..]).err(), Some(want));
            assert_eq!(
                Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&buf[..])).err(),
                Some(want)
            );
        };
        check(&|b| b[0] = 0x65, Error::Malformed); // version 6
        check(&|b| b[0] = 0x44, Error::Malformed); // IHL 4
        check(&|b| b[0] = 0x4f, Error::Truncated); // IHL 15: 60 > 44
        check(&|b| b[3] = 19, Error::Malformed); // total length below header
        check(&|b| b[3] = 45, Error::Truncated); // total length past buffer
    }

    #[test]
    fn every_prefix_is_safe() {
        for sample in [&PING[..], &IGMP_RA[..]] {
            for len in 0..=sample.len() {
                match Ipv4Packet::new_checked(&sample[..len]) {
                    Ok(p) => {
                        assert_eq!(len, sample.len());
                        let _ = (p.version(), p.header_len(), p.dscp(), p.ecn(), p.dscp_ecn());
                        let _ = (p.total_len(), p.ident(), p.dont_frag(), p.more_frags());
                        let _ = (
                            p.frag_offset(),
                            p.is_fragment(),
                            p.hop_limit(),
                            p.next_header(),
                        );
                        let _ = (p.checksum(), p.src_addr(), p.dst_addr(), p.options());
                        let _ = (p.payload(), p.verify_checksum());
                        assert!(Ipv4Repr::parse(&p).is_ok());
                    }
                    Err(e) => assert_eq!(e, Error::Truncated, "len {len}"),
                }
            }
        }
    }
}
