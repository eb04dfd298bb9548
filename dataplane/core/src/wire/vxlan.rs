//! VXLAN (RFC 7348 §5).
//!
//! ```text
//!  0               1               2               3
//! +-+-+-+-+-+-+-+-+-----------------------------------------------+
//! |R|R|R|R|I|R|R|R|                   reserved                    |
//! +-+-+-+-+-+-+-+-+-------------------------------+---------------+
//! |                VNI (24 bits)                  |   reserved    |
//! +-----------------------------------------------+---------------+
//! |           inner Ethernet frame ...                            |
//! ```
//!
//! Carried in UDP to port [`UDP_PORT`]. The I flag must be set for the VNI to be valid; the
//! reserved bits are written as zero and ignored on receipt.

use std::fmt;

use super::Error;
use super::bytes::read_u32;

/// The IANA-assigned VXLAN UDP port.
pub const UDP_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;

/// A 24-bit VXLAN network identifier. Construction checks the range, so a `Vni` always fits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI, 2^24 - 1.
    pub const MAX: u32 = 0x00ff_ffff;

    /// `None` if `v` does not fit in 24 bits.
    #[inline]
    pub const fn new(v: u32) -> Option<Vni> {
        if v <= Vni::MAX { Some(Vni(v)) } else { None }
    }

    /// The VNI's value.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The VNI from its three wire bytes (big-endian); always in range.
    #[inline]
    pub const fn from_be_bytes(b: [u8; 3]) -> Vni {
        Vni(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    /// The VNI's three wire bytes (big-endian).
    #[inline]
    pub const fn to_be_bytes(self) -> [u8; 3] {
        let b = self.0.to_be_bytes();
        [b[1], b[2], b[3]]
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vni({})", self.0)
    }
}

impl serde::Serialize for Vni {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Vni {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        Vni::new(v).ok_or_else(|| {
            serde::de::Error::custom(format_args!("VNI {v} is out of range [0, 16777215]"))
        })
    }
}

mod field {
    use crate::wire::Field;

    pub const FLAGS: usize = 0;
    pub const RESERVED1: Field = 1..4;
    pub const VNI: Field = 4..7;
    pub const RESERVED2: usize = 7;
    pub const VNI_WORD: Field = 4..8;
    pub const PAYLOAD: usize = 8;
}

/// A view of a VXLAN header and the inner frame after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wraps `buffer`, checking it holds the 8-byte header. Does not check the I flag
    /// ([`VxlanRepr::parse`] does).
    #[inline]
    pub fn new_checked(buffer: T) -> super::Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn check_len(&self) -> super::Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag (VNI valid) is set.
    #[inline]
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The VNI field (meaningful when the I flag is set).
    #[inline]
    pub fn vni(&self) -> Vni {
        Vni(read_u32(self.buffer.as_ref(), field::VNI_WORD) >> 8)
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the VNI (the reserved byte after it is left as is).
    #[inline]
    pub fn set_vni(&mut self, vni: Vni) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&vni.to_be_bytes());
    }

    /// The inner Ethernet frame, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// A VXLAN header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    /// The network identifier.
    pub vni: Vni,
}

impl VxlanRepr {
    /// Reads `packet`'s header: `Malformed` if the I flag is clear. Reserved bits are ignored
    /// (RFC 7348 §5).
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> super::Result<VxlanRepr> {
        packet.check_len()?;
        if !packet.i_flag() {
            return Err(Error::Malformed);
        }
        Ok(VxlanRepr { vni: packet.vni() })
    }

    /// Length of the header this emits ([`HEADER_LEN`]).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (I flag set, reserved bits zero) into `packet`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        let data = packet.buffer.as_mut();
        data[field::FLAGS] = FLAG_I;
        data[field::RESERVED1].fill(0);
        data[field::VNI].copy_from_slice(&self.vni.to_be_bytes());
        data[field::RESERVED2] = 0;
    }
}

/// Writes a VXLAN header for `vni` (I flag set, reserved bits zero): the encapsulation fast
/// path.
#[inline]
pub fn write_header(dst: &mut [u8; HEADER_LEN], vni: Vni) {
    let [v0, v1, v2] = vni.to_be_bytes();
    *dst = [FLAG_I, 0, 0, 0, v0, v1, v2, 0];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::{EtherType, EthernetFrame};
    use crate::wire::{MacAddr, UdpPacket};

    // The UDP datagram of a VXLAN packet: 10.0.0.1:49152 -> 10.0.0.2:4789, checksum 0, VNI
    // 0x123456, carrying an inner Ethernet frame (an ARP request, unpadded).
    const VXLAN_UDP: [u8; 58] = [
        0xc0, 0x00, 0x12, 0xb5, 0x00, 0x3a, 0x00, 0x00, //
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, //
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
        0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02,
    ];

    #[test]
    fn vni_bytes() {
        let v = Vni::new(0x12_3456).unwrap();
        assert_eq!(v.to_be_bytes(), [0x12, 0x34, 0x56]);
        assert_eq!(Vni::from_be_bytes([0xff, 0xff, 0xff]).get(), Vni::MAX);
        assert_eq!(Vni::from_be_bytes(v.to_be_bytes()), v);
        assert_eq!(Vni::new(Vni::MAX + 1), None);
        assert_eq!(format!("{v} {v:?}"), "1193046 Vni(1193046)");
    }

    #[test]
    fn parse_packet() {
        let udp = UdpPacket::new_checked(&VXLAN_UDP[..]).unwrap();
        assert_eq!(udp.dst_port(), UDP_PORT);
        let p = VxlanPacket::new_checked(udp.payload()).unwrap();
        assert_eq!(p.flags(), 0x08);
        assert!(p.i_flag());
        assert_eq!(p.vni().get(), 0x12_3456);
        let r = VxlanRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            VxlanRepr {
                vni: Vni::new(0x12_3456).unwrap()
            }
        );
        assert_eq!(r.buffer_len(), HEADER_LEN);
        let inner = EthernetFrame::new_checked(p.payload()).unwrap();
        assert_eq!(inner.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(inner.ethertype(), EtherType::Arp);
    }

    #[test]
    fn reserved_bits_are_ignored() {
        let mut hdr = [0xf7u8, 0xff, 0xff, 0xff, 0x00, 0x00, 0x2a, 0xff];
        hdr[0] |= FLAG_I;
        let p = VxlanPacket::new_checked(&hdr[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&p).unwrap().vni.get(), 42);
    }

    #[test]
    fn i_flag_clear_is_malformed() {
        let mut hdr = VXLAN_UDP;
        hdr[8] = 0x00;
        let p = VxlanPacket::new_checked(&hdr[8..]).unwrap();
        assert!(!p.i_flag());
        assert_eq!(VxlanRepr::parse(&p), Err(Error::Malformed));
        assert_eq!(
            VxlanRepr::parse(&VxlanPacket::new_unchecked(&hdr[8..15])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn emit_and_fast_path() {
        let vni = Vni::new(0x12_3456).unwrap();
        let mut buf = [0xffu8; 8];
        VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, VXLAN_UDP[8..16]);
        let mut fast = [0xffu8; 8];
        write_header(&mut fast, vni);
        assert_eq!(fast, buf);

        let mut buf = VXLAN_UDP;
        let mut p = VxlanPacket::new_checked(&mut buf[8..]).unwrap();
        p.set_vni(Vni::new(7).unwrap());
        p.set_flags(FLAG_I | 0x80);
        p.payload_mut()[0] = 0x02;
        assert_eq!((p.vni().get(), p.flags()), (7, 0x88));
        assert_eq!(p.into_inner()[..9], [0x88, 0, 0, 0, 0, 0, 7, 0, 0x02]);
    }

    #[test]
    fn every_prefix_is_safe() {
        let sample = &VXLAN_UDP[8..];
        for len in 0..=sample.len() {
            match VxlanPacket::new_checked(&sample[..len]) {
                Ok(p) => {
                    let _ = (p.flags(), p.i_flag(), p.vni(), p.payload());
                    assert!(VxlanRepr::parse(&p).is_ok());
                }
                Err(e) => {
                    assert_eq!(e, Error::Truncated);
                    assert!(len < HEADER_LEN);
                }
            }
        }
    }
}
