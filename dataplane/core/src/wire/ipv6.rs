//! IPv6 headers (RFC 8200) and the walk over extension headers to the upper layer.
//!
//! ```text
//!  0               1               2               3
//! +-------+---------------+---------------------------------------+
//! |version| traffic class |              flow label               |
//! +-------+---------------+---------------+-----------------------+
//! |        payload length         |  next header  |   hop limit   |
//! +-------------------------------+---------------+---------------+
//! |                   source address (16 bytes)                   |
//! |                destination address (16 bytes)                |
//! +---------------------------------------------------------------+
//! ```
//!
//! [`Ipv6Packet::new_checked`] validates the version and that the payload length fits the
//! buffer (which may be longer: Ethernet padding). Jumbograms (RFC 2675, payload length 0 with a
//! Jumbo Payload option) are not supported: they read as an empty payload.
//!
//! [`Ipv6Packet::upper_layer`] skips extension headers (RFC 8200 §4) to find the transport
//! header, bounded by the payload length and by [`MAX_EXT_HEADERS`], without allocating.

use std::net::Ipv6Addr;

use super::bytes::{read_ipv6, read_u16, read_u32, write_ipv6, write_u16, write_u32};
use super::{Error, IpProtocol, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The most extension headers [`Ipv6Packet::upper_layer`] walks before giving up.
pub const MAX_EXT_HEADERS: usize = 8;
/// Length of a fragment header.
pub const FRAG_HEADER_LEN: usize = 8;

mod field {
    use crate::wire::Field;

    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

const FLOW_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet.
///
/// After [`new_checked`](Self::new_checked) no accessor panics. Setting the payload length can
/// break that guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Fragment header fields met on the way to the upper layer (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6FragInfo {
    /// Offset of this fragment's data in the original packet, in bytes (a multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the upper-layer header of an IPv6 packet is, from [`Ipv6Packet::upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Upper {
    /// The protocol after the last extension header walked (may be `Esp`, `Ipv6NoNxt` or an
    /// unknown value: the walk stops at anything it cannot skip).
    pub protocol: IpProtocol,
    /// Offset of that protocol's header from the start of the IPv6 header.
    pub offset: usize,
    /// The fragment header, if one was met. For a non-first fragment (`offset != 0`) the walk
    /// stops right after it: `protocol` and `offset` then describe fragment data, not a header.
    pub fragment: Option<Ipv6FragInfo>,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short or inconsistent one.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer`, checking its header (see [`check_len`](Self::check_len)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 40 bytes or than 40 + payload length;
    /// `Malformed` if the version is not 6.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if data.len() < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let d = self.buffer.as_ref();
        (d[0] << 4) | (d[1] >> 4)
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & FLOW_MASK
    }

    /// Payload length (everything after the fixed header, extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Fixed header plus payload length, in bytes.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The next header field (the first extension header, or the upper layer).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The payload: the `payload_len` bytes after the fixed header (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// Walks the extension headers to the upper-layer header.
    ///
    /// Skips Hop-by-Hop Options (only as the first header), Routing and Destination Options
    /// (`(len + 1) * 8` bytes), Fragment (8 bytes) and AH (`(len + 2) * 4` bytes, RFC 4302),
    /// and stops at anything else, including ESP and No Next Header. A non-first fragment stops
    /// the walk after its fragment header.
    ///
    /// `Truncated` if a header runs past the payload; `Malformed` for more than
    /// [`MAX_EXT_HEADERS`] extension headers or a Hop-by-Hop header that is not first.
    ///
    /// Inlined for the common packet, with no extension header: the walk is a call, made only
    /// when the first next header is one (a routed IPv6 packet paid 37 instructions a packet
    /// for the call and the empty walk).
    #[inline]
    pub fn upper_layer(&self) -> Result<Ipv6Upper> {
        match self.next_header() {
            IpProtocol::HopByHop
            | IpProtocol::Ipv6Route
            | IpProtocol::Ipv6Opts
            | IpProtocol::Ah
            | IpProtocol::Ipv6Frag => self.walk_extensions(),
            protocol => Ok(Ipv6Upper {
                protocol,
                offset: HEADER_LEN,
                fragment: None,
            }),
        }
    }

    /// [`upper_layer`](Self::upper_layer) for a packet whose first next header is an
    /// extension header.
    #[inline(never)]
    fn walk_extensions(&self) -> Result<Ipv6Upper> {
        let payload = self.payload();
        let mut protocol = self.next_header();
        let mut at = 0usize; // offset in `payload`
        let mut fragment = None;
        let mut count = 0usize;
        loop {
            let kind = protocol;
            let len = match kind {
                IpProtocol::HopByHop if count > 0 => return Err(Error::Malformed),
                IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                    let &len = payload.get(at + 1).ok_or(Error::Truncated)?;
                    (usize::from(len) + 1) * 8
                }
                IpProtocol::Ah => {
                    let &len = payload.get(at + 1).ok_or(Error::Truncated)?;
                    (usize::from(len) + 2) * 4
                }
                IpProtocol::Ipv6Frag => FRAG_HEADER_LEN,
                _ => break,
            };
            if count == MAX_EXT_HEADERS {
                return Err(Error::Malformed);
            }
            // Every extension header is at least 8 bytes long, so `header[0]` and the fragment
            // fields below are in bounds.
            let header = payload.get(at..at + len).ok_or(Error::Truncated)?;
            count += 1;
            at += len;
            protocol = IpProtocol::from(header[0]);
            if kind == IpProtocol::Ipv6Frag {
                let off_flags = read_u16(header, frag_field::OFF_FLAGS);
                let info = Ipv6FragInfo {
                    offset: off_flags & 0xfff8,
                    more: off_flags & 0x0001 != 0,
                    ident: read_u32(header, frag_field::IDENT),
                };
                fragment = Some(info);
                if info.offset != 0 {
                    break;
                }
            }
        }
        Ok(Ipv6Upper {
            protocol,
            offset: HEADER_LEN + at,
            fragment,
        })
    }
}

mod frag_field {
    use crate::wire::Field;

    pub const OFF_FLAGS: Field = 2..4;
    pub const IDENT: Field = 4..8;
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn update_first_word(&mut self, mask: u32, bits: u32) {
        let old = read_u32(self.buffer.as_ref(), field::VER_TC_FLOW);
        write_u32(
            self.buffer.as_mut(),
            field::VER_TC_FLOW,
            (old & !mask) | (bits & mask),
        );
    }

    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        self.update_first_word(0xf000_0000, u32::from(v) << 28);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, v: u8) {
        self.update_first_word(0x0ff0_0000, u32::from(v) << 20);
    }

    /// Sets the flow label (only the low 20 bits of `v` are used).
    #[inline]
    pub fn set_flow_label(&mut self, v: u32) {
        debug_assert!(v <= FLOW_MASK, "flow label {v:#x} does not fit in 20 bits");
        self.update_first_word(FLOW_MASK, v);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the next header field.
    #[inline]
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = v.into();
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address (transport checksums covering it are not updated).
    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv6Addr) {
        write_ipv6(self.buffer.as_mut(), field::SRC_ADDR, v);
    }

    /// Sets the destination address (transport checksums covering it are not updated).
    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv6Addr) {
        write_ipv6(self.buffer.as_mut(), field::DST_ADDR, v);
    }

    /// The payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fixed IPv6 header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (first extension header or upper layer).
    pub next_header: IpProtocol,
    /// Payload length in bytes (extension headers included); at most 65535 to emit.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits; RFC 6437, RFC 6438 for tunnels).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads `packet`'s fixed header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Length of the header this emits ([`HEADER_LEN`]).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header into `packet`. The payload is not touched.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`]. In debug builds, if `payload_len` exceeds
    /// 65535 (release builds write 65535) or `flow_label` exceeds 20 bits (release builds mask).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        debug_assert!(
            self.payload_len <= usize::from(u16::MAX),
            "IPv6 payload too long"
        );
        debug_assert!(
            self.flow_label <= FLOW_MASK,
            "flow label does not fit in 20 bits"
        );
        let first =
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & FLOW_MASK);
        let data = packet.buffer.as_mut();
        write_u32(data, field::VER_TC_FLOW, first);
        write_u16(
            data,
            field::LENGTH,
            u16::try_from(self.payload_len).unwrap_or(u16::MAX),
        );
        data[field::NXT_HDR] = self.next_header.into();
        data[field::HOP_LIMIT] = self.hop_limit;
        write_ipv6(data, field::SRC_ADDR, self.src_addr);
        write_ipv6(data, field::DST_ADDR, self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // UDP 5353 -> 5353 from 2001:db8::1 to 2001:db8::2, traffic class 0xb8 (EF), flow 0x12345.
    const UDP6: [u8; 60] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x14, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x14, 0xe9, 0x14, 0xe9, 0x00,
        0x14, 0x3c, 0x82, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x77, 0x65, 0x66, 0x74, 0x21,
    ];

    // MLDv2 report to ff02::16 behind a Hop-by-Hop header with a Router Alert option.
    const MLD2_HBH: [u8; 76] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16, 0x3a, 0x00, 0x05, 0x02, 0x00,
        0x00, 0x01, 0x00, 0x8f, 0x00, 0xb8, 0xe4, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00,
        0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x12, 0x34,
        0x56,
    ];

    // A second fragment of a UDP datagram: offset 1448, ident 0xdeadbeef, 16 bytes of data.
    const FRAG2: [u8; 64] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x00, 0x05, 0xa8, 0xde,
        0xad, 0xbe, 0xef, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78,
    ];

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn udp6_repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: a("2001:db8::1"),
            dst_addr: a("2001:db8::2"),
            next_header: IpProtocol::Udp,
            payload_len: 20,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    /// A packet of `N` bytes from the 40-byte header of UDP6 (next header and payload length
    /// replaced) and `ext` as payload.
    fn with_payload<const N: usize>(next: u8, ext: &[u8]) -> [u8; N] {
        let mut buf = [0u8; N];
        buf[..40].copy_from_slice(&UDP6[..40]);
        buf[6] = next;
        buf[4..6].copy_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
        buf[40..40 + ext.len()].copy_from_slice(ext);
        buf
    }

    #[test]
    fn parse_udp6() {
        let p = Ipv6Packet::new_checked(&UDP6[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), a("2001:db8::1"));
        assert_eq!(p.dst_addr(), a("2001:db8::2"));
        assert_eq!(p.payload(), &UDP6[40..]);
        assert_eq!(Ipv6Repr::parse(&p), Ok(udp6_repr()));
        assert_eq!(
            p.upper_layer(),
            Ok(Ipv6Upper {
                protocol: IpProtocol::Udp,
                offset: 40,
                fragment: None
            })
        );
    }

    #[test]
    fn emit_and_setters() {
        let r = udp6_repr();
        assert_eq!(r.buffer_len(), 40);
        let mut buf = UDP6;
        buf[..40].fill(0xee);
        r.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, UDP6);

        let mut p = Ipv6Packet::new_checked(&mut buf[..]).unwrap();
        p.set_traffic_class(0x01);
        p.set_flow_label(0xfffff);
        p.set_hop_limit(1);
        p.set_next_header(IpProtocol::Tcp);
        p.set_payload_len(4);
        p.set_src_addr(a("::1"));
        p.set_dst_addr(a("ff02::1"));
        p.payload_mut()[0] = 9;
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0x01, 0xfffff)
        );
        assert_eq!(
            (p.hop_limit(), p.next_header(), p.payload_len()),
            (1, IpProtocol::Tcp, 4)
        );
        assert_eq!((p.src_addr(), p.dst_addr()), (a("::1"), a("ff02::1")));
        assert_eq!(p.payload(), &[9, 0xe9, 0x14, 0xe9]);
        p.set_version(4);
        assert_eq!((p.version(), p.traffic_class()), (4, 0x01));
        assert_eq!(
            Ipv6Packet::new_checked(p.into_inner()).err(),
            Some(Error::Malformed)
        );
    }

    /// `upper_layer` answers a packet whose first next header is not an extension header
    /// without the walk: for every next header value, its answer is the walk's.
    #[test]
    fn upper_layer_fast_path_agrees_with_the_walk() {
        // An 8-byte extension header (next header UDP, length 0) and 8 bytes after it: a whole
        // header for every kind the walk skips (AH's `(0 + 2) * 4` bytes included).
        let ext = [17, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9];
        let mut skipped = 0;
        for next in 0..=u8::MAX {
            let buf = with_payload::<56>(next, &ext);
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            let walked = p.walk_extensions();
            assert_eq!(p.upper_layer(), walked, "next header {next}");
            if walked.is_ok_and(|u| u.offset > HEADER_LEN) {
                skipped += 1;
            }
        }
        // Hop-by-Hop, Routing, Fragment, AH and Destination Options.
        assert_eq!(skipped, 5);
    }

    #[test]
    fn hop_by_hop_then_icmpv6() {
        let p = Ipv6Packet::new_checked(&MLD2_HBH[..]).unwrap();
        assert_eq!(p.next_header(), IpProtocol::HopByHop);
        let u = p.upper_layer().unwrap();
        assert_eq!(
            u,
            Ipv6Upper {
                protocol: IpProtocol::Icmpv6,
                offset: 48,
                fragment: None
            }
        );
        assert_eq!(MLD2_HBH[u.offset], 143);
    }

    #[test]
    fn fragments() {
        let p = Ipv6Packet::new_checked(&FRAG2[..]).unwrap();
        let frag = Ipv6FragInfo {
            offset: 1448,
            more: false,
            ident: 0xdead_beef,
        };
        assert_eq!(
            p.upper_layer(),
            Ok(Ipv6Upper {
                protocol: IpProtocol::Udp,
                offset: 48,
                fragment: Some(frag)
            })
        );

        // A first fragment (offset 0, M set) walks on to the UDP header.
        let mut first = FRAG2;
        first[42..44].copy_from_slice(&[0x00, 0x01]);
        let p = Ipv6Packet::new_checked(&first[..]).unwrap();
        let frag = Ipv6FragInfo {
            offset: 0,
            more: true,
            ident: 0xdead_beef,
        };
        assert_eq!(
            p.upper_layer(),
            Ok(Ipv6Upper {
                protocol: IpProtocol::Udp,
                offset: 48,
                fragment: Some(frag)
            })
        );

        // A non-first fragment stops even when the next header is another extension header.
        let mut odd = FRAG2;
        odd[40] = 60;
        let u = Ipv6Packet::new_checked(&odd[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!((u.protocol, u.offset), (IpProtocol::Ipv6Opts, 48));
    }

    #[test]
    fn long_chain() {
        // HBH(8) -> DestOpts(16) -> Routing(8) -> Fragment(8) -> AH(12 + 4 ICV = 16) -> TCP.
        let mut ext = [0u8; 56 + 4];
        ext[0] = 60; // HBH: next DestOpts, len 0
        ext[8] = 43; // DestOpts: next Routing, len 1 -> 16 bytes
        ext[9] = 1;
        ext[24] = 44; // Routing: next Fragment, len 0
        ext[32] = 51; // Fragment: next AH, offset 0, M=0
        ext[36..40].copy_from_slice(&7u32.to_be_bytes());
        ext[40] = 6; // AH: next TCP, payload len 2 -> (2 + 2) * 4 = 16 bytes
        ext[41] = 2;
        let buf: [u8; 100] = with_payload(0, &ext);
        let u = Ipv6Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        let frag = Ipv6FragInfo {
            offset: 0,
            more: false,
            ident: 7,
        };
        assert_eq!(
            u,
            Ipv6Upper {
                protocol: IpProtocol::Tcp,
                offset: 96,
                fragment: Some(frag)
            }
        );
    }

    #[test]
    fn stops_at_esp_no_next_and_unknown() {
        for (next, want) in [
            (50, IpProtocol::Esp),
            (59, IpProtocol::Ipv6NoNxt),
            (135, IpProtocol::Unknown(135)),
        ] {
            let mut ext = [0u8; 16];
            ext[0] = next; // DestOpts
            let buf: [u8; 56] = with_payload(60, &ext);
            let u = Ipv6Packet::new_checked(&buf[..])
                .unwrap()
                .upper_layer()
                .unwrap();
            assert_eq!((u.protocol, u.offset, u.fragment), (want, 48, None));
        }
    }

    #[test]
    fn extension_header_limits() {
        // Eight Destination Options headers are fine; a ninth is Malformed.
        let mut ext = [0u8; 72];
        for i in 0..9 {
            ext[i * 8] = 60;
        }
        ext[7 * 8] = 17; // the eighth's next header: UDP
        let buf: [u8; 112] = with_payload(60, &ext);
        let u = Ipv6Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!((u.protocol, u.offset), (IpProtocol::Udp, 40 + 64));
        ext[7 * 8] = 60;
        let buf: [u8; 112] = with_payload(60, &ext);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Malformed));

        // Hop-by-Hop anywhere but first.
        let ext = [0u8; 16]; // DestOpts with next header 0
        let buf: [u8; 56] = with_payload(60, &ext);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Malformed));
    }

    #[test]
    fn extension_header_past_payload() {
        // A Routing header claiming 16 bytes in an 8-byte payload; the buffer has padding after
        // it, which must not count.
        let mut ext = [0u8; 8];
        ext[0] = 17;
        ext[1] = 1;
        let mut buf: [u8; 64] = with_payload(43, &ext);
        buf[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
        // A header whose length byte is missing; a fragment header cut short.
        for next in [0u8, 43, 44, 51, 60] {
            let buf: [u8; 41] = with_payload(next, &[17]);
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(p.upper_layer(), Err(Error::Truncated), "next header {next}");
        }
    }

    #[test]
    fn malformed_and_truncated() {
        let mut bad = UDP6;
        bad[0] = 0x4b;
        assert_eq!(
            Ipv6Packet::new_checked(&bad[..]).err(),
            Some(Error::Malformed)
        );
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bad[..])),
            Err(Error::Malformed)
        );
        let mut long = UDP6;
        long[5] = 21;
        assert_eq!(
            Ipv6Packet::new_checked(&long[..]).err(),
            Some(Error::Truncated)
        );
        // Padding past the payload is allowed and excluded.
        let mut padded = [0u8; 80];
        padded[..60].copy_from_slice(&UDP6);
        assert_eq!(
            Ipv6Packet::new_checked(&padded[..]).unwrap().payload(),
            &UDP6[40..]
        );
    }

    #[test]
    fn every_prefix_is_safe() {
        for sample in [&UDP6[..], &MLD2_HBH[..], &FRAG2[..]] {
            for len in 0..=sample.len() {
                match Ipv6Packet::new_checked(&sample[..len]) {
                    Ok(p) => {
                        assert_eq!(len, sample.len());
                        let _ = (
                            p.version(),
                            p.traffic_class(),
                            p.flow_label(),
                            p.payload_len(),
                        );
                        let _ = (p.total_len(), p.next_header(), p.hop_limit(), p.src_addr());
                        let _ = (p.dst_addr(), p.payload());
                        assert!(p.upper_layer().is_ok());
                        assert!(Ipv6Repr::parse(&p).is_ok());
                    }
                    Err(e) => assert_eq!(e, Error::Truncated, "len {len}"),
                }
            }
            // Shrinking the payload length over a full buffer exercises the walk on every
            // truncation of the extension headers.
            for plen in 0..=sample.len() - 40 {
                let mut buf = [0u8; 76];
                buf[..sample.len()].copy_from_slice(sample);
                buf[4..6].copy_from_slice(&u16::try_from(plen).unwrap().to_be_bytes());
                let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
                let _ = p.upper_layer();
            }
        }
    }
}
