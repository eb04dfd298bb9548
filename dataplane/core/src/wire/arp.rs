//! ARP, the Address Resolution Protocol (RFC 826), for Ethernet and IPv4.
//!
//! ```text
//!  0      2      4    5    6      8            14      18           24      28
//! +------+------+----+----+------+------------+-------+------------+-------+
//! | htype| ptype|hlen|plen| oper | sender MAC | sndIP | target MAC | tgtIP |
//! +------+------+----+----+------+------------+-------+------------+-------+
//! ```
//!
//! ARP allows other hardware and protocol address sizes; the view reads the fixed layout of
//! Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6, plen 4), the only kind Weft handles. Its
//! address accessors mean something only when [`ArpPacket::is_ethernet_ipv4`] holds, which
//! [`ArpRepr::parse`] checks. Frames carrying ARP are usually padded: bytes past [`LEN`] are
//! ignored.

use std::net::Ipv4Addr;

use super::bytes::{read_ipv4, read_mac, read_u16, write_ipv4, write_mac, write_u16};
use super::{Error, EtherType, MacAddr, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = 28;
/// The hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// An ARP operation code. Values without a variant are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Request (1).
    Request,
    /// Reply (2).
    Reply,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            x => ArpOperation::Unknown(x),
        }
    }
}

impl From<ArpOperation> for u16 {
    #[inline]
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(x) => x,
        }
    }
}

mod field {
    use crate::wire::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than [`LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer`, checking it holds [`LEN`] bytes. Does not check the address types.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer is shorter than [`LEN`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < LEN {
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

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (an EtherType; IPv4 for us).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Hardware address length in bytes.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length in bytes.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Whether the packet is Ethernet/IPv4 ARP, so the address accessors are meaningful.
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::Ipv4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::SHA)
    }

    /// Sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::THA)
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, v);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, v.into());
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, v: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, v.into());
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, v: MacAddr) {
        write_mac(self.buffer.as_mut(), field::SHA, v);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SPA, v);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, v: MacAddr) {
        write_mac(self.buffer.as_mut(), field::THA, v);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::TPA, v);
    }
}

/// An Ethernet/IPv4 ARP packet as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hardware_addr: MacAddr,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hardware_addr: MacAddr,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads `packet`. `Malformed` unless it is Ethernet/IPv4 ARP; any operation is accepted.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if !packet.is_ethernet_ipv4() {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Length of the packet this emits ([`LEN`]).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes all [`LEN`] bytes of the packet into `packet`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 10.0.0.2? Tell 10.0.0.1 (52:54:00:12:34:56), followed by Ethernet padding.
    const REQUEST: [u8; 46] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x00, 0x01, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    // 10.0.0.2 is at 02:00:00:00:00:02.
    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x02, //
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x00, 0x01,
    ];

    const VM: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const GW: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);

    #[test]
    fn parse_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.source_hardware_addr(), VM);
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_hardware_addr(), MacAddr::ZERO);
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: VM,
                source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
                target_hardware_addr: MacAddr::ZERO,
                target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            }
        );
        assert_eq!(r.buffer_len(), LEN);
    }

    #[test]
    fn emit_reply() {
        let r = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: GW,
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            target_hardware_addr: VM,
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        };
        let mut buf = [0xaau8; LEN];
        r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REPLY);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()),
            Ok(r)
        );
    }

    #[test]
    fn rewrite_request_into_reply_in_place() {
        let mut buf = REQUEST;
        let mut p = ArpPacket::new_checked(&mut buf[..]).unwrap();
        let (sha, spa, tpa) = (
            p.source_hardware_addr(),
            p.source_protocol_addr(),
            p.target_protocol_addr(),
        );
        p.set_operation(ArpOperation::Reply);
        p.set_target_hardware_addr(sha);
        p.set_target_protocol_addr(spa);
        p.set_source_hardware_addr(GW);
        p.set_source_protocol_addr(tpa);
        assert_eq!(buf[..LEN], REPLY);
        assert_eq!(buf[LEN..], [0; 18]);
    }

    #[test]
    fn other_setters_and_operations() {
        let mut buf = REPLY;
        let mut p = ArpPacket::new_checked(&mut buf[..]).unwrap();
        p.set_operation(ArpOperation::Unknown(9));
        assert_eq!(p.operation(), ArpOperation::Unknown(9));
        p.set_hardware_type(6);
        p.set_protocol_type(EtherType::Ipv6);
        p.set_hardware_len(8);
        p.set_protocol_len(16);
        assert_eq!((p.hardware_type(), p.protocol_type()), (6, EtherType::Ipv6));
        assert_eq!((p.hardware_len(), p.protocol_len()), (8, 16));
        assert_eq!(u16::from(ArpOperation::from(2)), 2);
    }

    #[test]
    fn malformed() {
        // hlen, plen, htype, ptype each wrong.
        for (at, v) in [(4usize, 8u8), (5, 16), (1, 6), (2, 0x86)] {
            let mut buf = REQUEST;
            buf[at] = v;
            let p = ArpPacket::new_checked(&buf[..]).unwrap();
            assert!(!p.is_ethernet_ipv4());
            assert_eq!(ArpRepr::parse(&p), Err(Error::Malformed), "byte {at}");
        }
        // A short buffer through new_unchecked is caught by parse.
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&REQUEST[..27])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn every_prefix_is_safe() {
        for sample in [&REQUEST[..], &REPLY[..]] {
            for len in 0..=sample.len() {
                match ArpPacket::new_checked(&sample[..len]) {
                    Ok(p) => {
                        let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len());
                        let _ = (p.protocol_len(), p.is_ethernet_ipv4(), p.operation());
                        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
                        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
                        assert!(ArpRepr::parse(&p).is_ok());
                    }
                    Err(e) => {
                        assert_eq!(e, Error::Truncated);
                        assert!(len < LEN);
                    }
                }
            }
        }
    }
}
