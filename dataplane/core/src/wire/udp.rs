//! UDP datagrams (RFC 768; IPv6 checksum rules per RFC 8200 §8.1).
//!
//! ```text
//!  0               1               2               3
//! +-------------------------------+-------------------------------+
//! |          source port          |       destination port        |
//! +-------------------------------+-------------------------------+
//! |            length             |           checksum            |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! The length field covers header and data; [`UdpPacket::payload`] stops there even if the
//! buffer is longer. A checksum of zero means "not computed": allowed over IPv4, invalid over
//! IPv6 (RFC 6935/6936 zero-checksum tunnels are not accepted by `verify_checksum`).

use std::net::IpAddr;

use super::bytes::{read_u16, write_u16};
use super::{Error, IpProtocol, Result, checksum};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// A view of a UDP datagram.
///
/// After [`new_checked`](Self::new_checked) no accessor panics. Setting the length can break
/// that guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short or inconsistent one.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer`, checking its header (see [`check_len`](Self::check_len)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 8 bytes or than the length field;
    /// `Malformed` if the length field is below 8 (this includes the jumbogram length 0 of
    /// RFC 2675, which is not supported).
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if data.len() < len {
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

    /// Length field: header plus data, in bytes.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a header field, never empty on a checked view
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The data: bytes 8..length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is correct for a datagram from `src` to `dst`. A zero checksum is
    /// valid over IPv4 (none computed) and invalid over IPv6. `false` if the families differ.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4() && dst.is_ipv4();
        }
        let datagram = &self.buffer.as_ref()[..usize::from(self.len())];
        let len = u32::from(self.len());
        match checksum::pseudo_header(src, dst, IpProtocol::Udp, len) {
            Some(ph) => checksum::finish(checksum::sum(datagram, ph)) == 0,
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
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

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Computes the checksum over the pseudo-header, header and data (up to the length field)
    /// and writes it; a computed 0 is sent as `0xffff`.
    ///
    /// # Panics
    /// In debug builds, if `src` and `dst` are of different families (release builds write 0,
    /// "no checksum").
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let len = self.len();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(len));
        debug_assert!(ph.is_some(), "UDP checksum over {src} -> {dst}");
        if let Some(ph) = ph {
            let c = checksum::finish(checksum::sum(&self.buffer.as_ref()[..usize::from(len)], ph));
            self.set_checksum(if c == 0 { 0xffff } else { c });
        }
    }

    /// The data, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A UDP header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length of the data in bytes (length field minus 8); at most 65527 to emit.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads `packet`'s header. Does not verify the checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<UdpRepr> {
        packet.check_len()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Length of the header this emits ([`HEADER_LEN`]).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with a zero checksum into `packet`. Once the data is in place, call
    /// [`UdpPacket::fill_checksum`] (or leave 0 over IPv4, as VXLAN senders commonly do).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`]. In debug builds, if `payload_len` exceeds
    /// 65527 (release builds write a length of 65535).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>) {
        let len = HEADER_LEN.saturating_add(self.payload_len);
        debug_assert!(
            len <= usize::from(u16::MAX),
            "UDP payload of {} bytes",
            self.payload_len
        );
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(len).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    // A DNS query for example.com A from 10.0.0.1:54321 to 10.0.0.53:53 (UDP part of the IPv4
    // datagram, 37 bytes).
    const DNS_QUERY: [u8; 37] = [
        0xd4, 0x31, 0x00, 0x35, 0x00, 0x25, 0x9b, 0xcc, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63,
        0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];
    // "hello, weft!" from [2001:db8::1]:5353 to [2001:db8::2]:5353.
    const UDP6: [u8; 20] = [
        0x14, 0xe9, 0x14, 0xe9, 0x00, 0x14, 0x3c, 0x82, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20,
        0x77, 0x65, 0x66, 0x74, 0x21,
    ];

    fn v4() -> (IpAddr, IpAddr) {
        (
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 53).into(),
        )
    }

    fn v6() -> (IpAddr, IpAddr) {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        (s.into(), d.into())
    }

    #[test]
    fn parse_dns_query() {
        let p = UdpPacket::new_checked(&DNS_QUERY[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.len(), p.checksum()),
            (54321, 53, 37, 0x9bcc)
        );
        assert_eq!(p.payload(), &DNS_QUERY[8..]);
        let (s, d) = v4();
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&d, &Ipv4Addr::new(10, 0, 0, 2).into()));
        assert!(!p.verify_checksum(&s, &v6().1));
        let r = UdpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            UdpRepr {
                src_port: 54321,
                dst_port: 53,
                payload_len: 29
            }
        );
    }

    #[test]
    fn parse_ipv6() {
        let p = UdpPacket::new_checked(&UDP6[..]).unwrap();
        assert_eq!(p.payload(), b"hello, weft!");
        let (s, d) = v6();
        assert!(p.verify_checksum(&s, &d));
    }

    #[test]
    fn zero_checksum() {
        let mut buf = DNS_QUERY;
        buf[6..8].fill(0);
        let (s, d) = v4();
        assert!(
            UdpPacket::new_checked(&buf[..])
                .unwrap()
                .verify_checksum(&s, &d)
        );
        let mut buf = UDP6;
        buf[6..8].fill(0);
        let (s, d) = v6();
        assert!(
            !UdpPacket::new_checked(&buf[..])
                .unwrap()
                .verify_checksum(&s, &d)
        );
    }

    #[test]
    fn emit_and_fill() {
        let r = UdpRepr {
            src_port: 54321,
            dst_port: 53,
            payload_len: 29,
        };
        assert_eq!(r.buffer_len(), 8);
        let mut buf = DNS_QUERY;
        buf[..8].fill(0xff);
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        assert_eq!(p.checksum(), 0);
        let (s, d) = v4();
        p.fill_checksum(&s, &d);
        assert_eq!(buf, DNS_QUERY);

        let mut buf = UDP6;
        let mut p = UdpPacket::new_checked(&mut buf[..]).unwrap();
        let (s, d) = v6();
        p.set_checksum(0x1234);
        p.fill_checksum(&s, &d);
        assert_eq!(buf, UDP6);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // With the source port at 0 the checksum is C = !S for the rest's sum S; a source port
        // of C makes the sum S + !S = 0xffff, so the computed checksum is 0.
        let mut buf = DNS_QUERY;
        let (s, d) = v4();
        let mut p = UdpPacket::new_checked(&mut buf[..]).unwrap();
        p.set_src_port(0);
        p.fill_checksum(&s, &d);
        let c = p.checksum();
        p.set_src_port(c);
        p.fill_checksum(&s, &d);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&s, &d));
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 12];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(4789);
        p.set_dst_port(4789);
        p.set_len(12);
        p.payload_mut().copy_from_slice(b"weft");
        assert_eq!(
            p.into_inner()[..],
            [0x12, 0xb5, 0x12, 0xb5, 0, 12, 0, 0, b'w', b'e', b'f', b't']
        );
    }

    #[test]
    fn malformed_and_truncated() {
        let mut buf = DNS_QUERY;
        buf[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).err(),
            Some(Error::Malformed)
        );
        assert_eq!(
            UdpRepr::parse(&UdpPacket::new_unchecked(&buf[..])),
            Err(Error::Malformed)
        );
        buf[5] = 38;
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).err(),
            Some(Error::Truncated)
        );
        // A longer buffer (IP padding) is fine; the payload ends at the length field.
        let mut long = [0u8; 40];
        long[..37].copy_from_slice(&DNS_QUERY);
        assert_eq!(
            UdpPacket::new_checked(&long[..]).unwrap().payload().len(),
            29
        );
    }

    #[test]
    fn every_prefix_is_safe() {
        let (s4, d4) = v4();
        let (s6, d6) = v6();
        for sample in [&DNS_QUERY[..], &UDP6[..]] {
            for len in 0..=sample.len() {
                match UdpPacket::new_checked(&sample[..len]) {
                    Ok(p) => {
                        assert_eq!(len, sample.len());
                        let _ = (
                            p.src_port(),
                            p.dst_port(),
                            p.len(),
                            p.checksum(),
                            p.payload(),
                        );
                        let _ = (p.verify_checksum(&s4, &d4), p.verify_checksum(&s6, &d6));
                        assert!(UdpRepr::parse(&p).is_ok());
                    }
                    Err(e) => assert_eq!(e, Error::Truncated, "len {len}"),
                }
            }
        }
    }
}
