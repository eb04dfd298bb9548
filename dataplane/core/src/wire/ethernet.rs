//! Ethernet II frames (IEEE 802.3 clause 3, "DIX" type field) and VLAN tags (IEEE 802.1Q
//! C-tags, IEEE 802.1ad S-tags).
//!
//! ```text
//!  0                 6                 12     14
//! +-----------------+-----------------+------+----------------
//! | destination MAC | source MAC      | type | payload ...
//! +-----------------+-----------------+------+----------------
//!
//! tagged: | dst | src | TPID 0x8100/0x88a8 | TCI | type | payload ...
//!                      \______ VLAN tag: TCI + inner type (4 bytes) ______/
//! TCI: | PCP (3 bits) | DEI (1) | VID (12) |
//! ```
//!
//! Buffers hold the frame without preamble or FCS (NICs and the kernel strip both). A frame may
//! carry padding past its payload (60-byte minimum); the L3 length fields say where data ends.

use super::bytes::{read_mac, read_u16, write_mac, write_u16};
use super::{Error, MacAddr, Result};

/// Length of the Ethernet header without tags.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag (TCI plus the inner type; the TPID is the outer type field).
pub const VLAN_TAG_LEN: usize = 4;

/// An EtherType. Values without a variant are kept in `Unknown`; `From<u16>` never produces
/// `Unknown` for a value that has a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4 (0x0800).
    Ipv4,
    /// ARP (0x0806).
    Arp,
    /// IPv6 (0x86DD).
    Ipv6,
    /// IEEE 802.1Q customer VLAN tag (0x8100).
    Vlan,
    /// IEEE 802.1ad service VLAN tag, "QinQ" (0x88A8).
    QinQ,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for EtherType {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            x => EtherType::Unknown(x),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(x) => x,
        }
    }
}

mod field {
    use crate::wire::Field;

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer`, checking it holds a whole header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
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

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::DESTINATION)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::SOURCE)
    }

    /// The type field (for a tagged frame, the outer TPID).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the 14-byte header (for a tagged frame, starting with the VLAN tag).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        write_mac(self.buffer.as_mut(), field::DESTINATION, addr);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        write_mac(self.buffer.as_mut(), field::SOURCE, addr);
    }

    /// Sets the type field.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, t.into());
    }

    /// Everything after the 14-byte header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The Ethernet header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: MacAddr,
    /// Destination address.
    pub dst_addr: MacAddr,
    /// Type field.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of `frame`.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Length of the header this emits ([`HEADER_LEN`]).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `frame`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

mod vlan_field {
    use crate::wire::Field;

    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// A view of one 4-byte VLAN tag: the TCI and the type that follows it. The tag's TPID is the
/// type field before it (the frame's, or the previous tag's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than
    /// [`VLAN_TAG_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps `buffer`, checking it holds a whole tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// `Err(Truncated)` if the buffer is shorter than [`VLAN_TAG_LEN`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
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

    /// The whole tag control information field.
    #[inline]
    pub fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), vlan_field::TCI)
    }

    /// Priority code point (0..=7).
    #[inline]
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[0] >> 5
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[0] & 0x10 != 0
    }

    /// VLAN identifier (0..=4095; 0 means priority-tagged, 4095 is reserved).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The type of what follows the tag (another tag's TPID, or the L3 protocol).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), vlan_field::ETHERTYPE))
    }

    /// Everything after the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[vlan_field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the whole tag control information field.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), vlan_field::TCI, tci);
    }

    /// Sets the priority code point; only the low 3 bits of `pcp` are used.
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        debug_assert!(pcp <= 7, "PCP {pcp} does not fit in 3 bits");
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x1f) | ((pcp & 0x07) << 5);
    }

    /// Sets the drop eligible indicator.
    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & !0x10) | if dei { 0x10 } else { 0 };
    }

    /// Sets the VLAN identifier; only the low 12 bits of `vid` are used.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        debug_assert!(vid <= 0x0fff, "VID {vid} does not fit in 12 bits");
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    /// Sets the type of what follows the tag.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        write_u16(self.buffer.as_mut(), vlan_field::ETHERTYPE, t.into());
    }

    /// Everything after the tag, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[vlan_field::PAYLOAD..]
    }
}

/// A VLAN tag as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanRepr {
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (0..=4095).
    pub vid: u16,
    /// Type of what follows the tag.
    pub ethertype: EtherType,
}

impl VlanRepr {
    /// Reads `tag`.
    pub fn parse<T: AsRef<[u8]>>(tag: &VlanTag<T>) -> Result<VlanRepr> {
        tag.check_len()?;
        Ok(VlanRepr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    /// Length of the tag this emits ([`VLAN_TAG_LEN`]).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        VLAN_TAG_LEN
    }

    /// Writes the tag into `tag`. `pcp` and `vid` are masked to 3 and 12 bits.
    ///
    /// # Panics
    /// If the buffer is shorter than [`VLAN_TAG_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanTag<T>) {
        debug_assert!(self.pcp <= 7 && self.vid <= 0x0fff, "{self:?} out of range");
        let tci = (u16::from(self.pcp & 0x07) << 13)
            | if self.dei { 0x1000 } else { 0 }
            | (self.vid & 0x0fff);
        tag.set_tci(tci);
        tag.set_ethertype(self.ethertype);
    }
}

/// The layer-2 facts the fast path needs, from [`parse_l2`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Info {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// VID of the outermost tag, if tagged (`Some(0)` for a priority-tagged frame).
    pub vlan: Option<u16>,
    /// Number of VLAN tags (0..=2).
    pub tags: u8,
    /// The innermost type: the L3 protocol.
    pub ethertype: EtherType,
    /// Offset of the L3 header from the start of the frame.
    pub l3_offset: usize,
}

const TPID_CTAG: u16 = 0x8100;
const TPID_STAG: u16 = 0x88a8;

/// Reads the Ethernet header and up to two VLAN tags in one pass.
///
/// Accepted stacks: untagged; one tag (TPID 0x8100 or 0x88A8); two tags (outer 0x8100 or 0x88A8,
/// inner 0x8100). A third tag, or an S-tag inside another tag, is `Malformed`; a frame ending
/// inside its header or tags is `Truncated`.
pub fn parse_l2(frame: &[u8]) -> Result<L2Info> {
    if frame.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    let dst = read_mac(frame, field::DESTINATION);
    let src = read_mac(frame, field::SOURCE);
    let mut ethertype = read_u16(frame, field::ETHERTYPE);
    let mut offset = HEADER_LEN;
    let mut tags = 0u8;
    let mut vlan = None;
    while ethertype == TPID_CTAG || ethertype == TPID_STAG {
        if tags == 2 || (tags == 1 && ethertype == TPID_STAG) {
            return Err(Error::Malformed);
        }
        let tag = frame
            .get(offset..offset + VLAN_TAG_LEN)
            .ok_or(Error::Truncated)?;
        if tags == 0 {
            vlan = Some(read_u16(tag, vlan_field::TCI) & 0x0fff);
        }
        ethertype = read_u16(tag, vlan_field::ETHERTYPE);
        offset += VLAN_TAG_LEN;
        tags += 1;
    }
    Ok(L2Info {
        dst,
        src,
        vlan,
        tags,
        ethertype: EtherType::from(ethertype),
        l3_offset: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ARP request from 52:54:00:12:34:56, broadcast, padded to the 60-byte minimum.
    const ARP_FRAME: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
        0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    // A QinQ frame: S-tag VID 10 PCP 3, C-tag VID 20 PCP 5 DEI, then IPv4 (header bytes only).
    const QINQ_FRAME: [u8; 26] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, //
        0x88, 0xa8, 0x60, 0x0a, //
        0x81, 0x00, 0xb0, 0x14, //
        0x08, 0x00, 0x45, 0x00, 0x00, 0x14,
    ];

    const MAC1: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn ethertype_round_trip() {
        for v in [
            0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x0000, 0xffff,
        ] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x86dd), EtherType::Ipv6);
        assert_eq!(EtherType::from(0x9100), EtherType::Unknown(0x9100));
    }

    #[test]
    fn parse_frame() {
        let f = EthernetFrame::new_checked(&ARP_FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(f.src_addr(), MAC1);
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.payload().len(), 46);
        assert_eq!(&f.payload()[..4], &[0x00, 0x01, 0x08, 0x00]);
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(
            r,
            EthernetRepr {
                src_addr: MAC1,
                dst_addr: MacAddr::BROADCAST,
                ethertype: EtherType::Arp
            }
        );
        assert_eq!(r.buffer_len(), HEADER_LEN);
    }

    #[test]
    fn emit_frame() {
        let r = EthernetRepr {
            src_addr: MAC1,
            dst_addr: MacAddr::BROADCAST,
            ethertype: EtherType::Arp,
        };
        let mut buf = [0u8; 14];
        r.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ARP_FRAME[..14]);
    }

    #[test]
    fn setters() {
        let mut buf = ARP_FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(MAC1);
        f.set_src_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(EtherType::Ipv6);
        f.payload_mut()[0] = 0x60;
        assert_eq!(f.dst_addr(), MAC1);
        assert_eq!(f.src_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EtherType::Ipv6);
        assert_eq!(f.into_inner()[12..15], [0x86, 0xdd, 0x60]);
    }

    #[test]
    fn vlan_tag() {
        let f = EthernetFrame::new_checked(&QINQ_FRAME[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::QinQ);
        let outer = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!((outer.pcp(), outer.dei(), outer.vid()), (3, false, 10));
        assert_eq!(outer.ethertype(), EtherType::Vlan);
        let inner = VlanTag::new_checked(outer.payload()).unwrap();
        assert_eq!((inner.pcp(), inner.dei(), inner.vid()), (5, true, 20));
        assert_eq!(inner.ethertype(), EtherType::Ipv4);
        assert_eq!(inner.payload(), &[0x45, 0x00, 0x00, 0x14]);
        let r = VlanRepr::parse(&inner).unwrap();
        assert_eq!(
            r,
            VlanRepr {
                pcp: 5,
                dei: true,
                vid: 20,
                ethertype: EtherType::Ipv4
            }
        );

        let mut buf = [0u8; 4];
        r.emit(&mut VlanTag::new_unchecked(&mut buf[..]));
        assert_eq!(buf, QINQ_FRAME[18..22]);

        let mut t = VlanTag::new_checked(&mut buf[..]).unwrap();
        t.set_vid(4094);
        t.set_pcp(7);
        t.set_dei(false);
        t.set_ethertype(EtherType::Ipv6);
        assert_eq!(
            (t.pcp(), t.dei(), t.vid(), t.ethertype()),
            (7, false, 4094, EtherType::Ipv6)
        );
        t.set_pcp(0);
        t.set_dei(true);
        assert_eq!(
            (t.pcp(), t.dei(), t.vid(), t.tci()),
            (0, true, 4094, 0x1ffe)
        );
    }

    #[test]
    fn l2_untagged_single_double() {
        let i = parse_l2(&ARP_FRAME).unwrap();
        assert_eq!(
            i,
            L2Info {
                dst: MacAddr::BROADCAST,
                src: MAC1,
                vlan: None,
                tags: 0,
                ethertype: EtherType::Arp,
                l3_offset: 14,
            }
        );

        let i = parse_l2(&QINQ_FRAME).unwrap();
        assert_eq!(
            (i.vlan, i.tags, i.ethertype, i.l3_offset),
            (Some(10), 2, EtherType::Ipv4, 22)
        );

        // Single C-tag.
        let mut one = [0u8; 18];
        one[..12].copy_from_slice(&QINQ_FRAME[..12]);
        one[12..].copy_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x86, 0xdd]);
        let i = parse_l2(&one).unwrap();
        assert_eq!(
            (i.vlan, i.tags, i.ethertype, i.l3_offset),
            (Some(100), 1, EtherType::Ipv6, 18)
        );

        // Double C-tag (older QinQ practice) is accepted.
        let mut cc = QINQ_FRAME;
        cc[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(parse_l2(&cc).unwrap().tags, 2);
    }

    #[test]
    fn l2_malformed_and_truncated() {
        // Three tags.
        let mut three = [0u8; 26];
        three[..12].copy_from_slice(&QINQ_FRAME[..12]);
        three[12..].copy_from_slice(&[
            0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3, 0x08, 0x00,
        ]);
        assert_eq!(parse_l2(&three), Err(Error::Malformed));
        // An S-tag inside a C-tag.
        let mut cs = QINQ_FRAME;
        cs[12..14].copy_from_slice(&[0x81, 0x00]);
        cs[16..18].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(parse_l2(&cs), Err(Error::Malformed));
        // Ends inside the tags.
        for len in 0..22 {
            assert_eq!(
                parse_l2(&QINQ_FRAME[..len]),
                Err(Error::Truncated),
                "len {len}"
            );
        }
        assert!(parse_l2(&QINQ_FRAME[..22]).is_ok());
    }

    #[test]
    fn every_prefix_is_safe() {
        for sample in [&ARP_FRAME[..], &QINQ_FRAME[..]] {
            for len in 0..=sample.len() {
                let b = &sample[..len];
                let _ = parse_l2(b);
                if let Ok(f) = EthernetFrame::new_checked(b) {
                    let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
                    let _ = EthernetRepr::parse(&f).unwrap();
                } else {
                    assert!(len < HEADER_LEN);
                }
                if let Ok(t) = VlanTag::new_checked(b) {
                    let _ = (
                        t.tci(),
                        t.pcp(),
                        t.dei(),
                        t.vid(),
                        t.ethertype(),
                        t.payload(),
                    );
                    let _ = VlanRepr::parse(&t).unwrap();
                } else {
                    assert!(len < VLAN_TAG_LEN);
                }
            }
        }
    }
}
