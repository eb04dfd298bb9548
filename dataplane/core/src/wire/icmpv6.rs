//! ICMP for IPv6 (RFC 4443), with the checksum over the IPv6 pseudo-header (RFC 8200 §8.1).
//! Neighbor Discovery messages are read and written by [`ndp`](super::ndp).
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+-------------------------------+
//! |     type      |     code      |           checksum            |
//! +---------------+---------------+-------------------------------+
//! | echo: identifier | sequence | too big: MTU | problem: pointer |
//! +---------------------------------------------------------------+
//! |  data: echo payload, or as much of the invoking packet as fits  |
//! ```
//!
//! A view spans exactly one ICMPv6 message (from the upper-layer offset to the end of the IPv6
//! payload): the checksum covers the whole buffer. Every message type defined by RFC 4443 and
//! RFC 4861 has at least 8 bytes, so the view requires 8. Checksums are not verified while
//! parsing; call [`Icmpv6Packet::verify_checksum`].

use std::net::Ipv6Addr;

use super::bytes::{read_u16, read_u32, write_u16, write_u32};
use super::ndp::NdiscRepr;
use super::{Error, IpProtocol, Result, checksum};

/// Length of the ICMPv6 header this view requires (type, code, checksum and 4 more bytes).
pub const HEADER_LEN: usize = 8;
/// The most invoking-packet bytes an error message may carry so that it fits the IPv6 minimum
/// MTU of 1280 (RFC 4443 §2.4 (c)): 1280 - 40 (IPv6) - 8 (ICMPv6).
pub const MAX_ERROR_DATA: usize = 1280 - 40 - HEADER_LEN;

/// An ICMPv6 message type. Values without a variant are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv6Message {
    /// Destination unreachable (1).
    DstUnreachable,
    /// Packet too big (2).
    PacketTooBig,
    /// Time exceeded (3).
    TimeExceeded,
    /// Parameter problem (4).
    ParamProblem,
    /// Echo request (128).
    EchoRequest,
    /// Echo reply (129).
    EchoReply,
    /// Multicast listener query (130, RFC 2710 / RFC 3810).
    MldQuery,
    /// MLDv1 report (131).
    MldReport,
    /// MLDv1 done (132).
    MldDone,
    /// Router solicitation (133, RFC 4861).
    RouterSolicit,
    /// Router advertisement (134).
    RouterAdvert,
    /// Neighbor solicitation (135).
    NeighborSolicit,
    /// Neighbor advertisement (136).
    NeighborAdvert,
    /// Redirect (137).
    Redirect,
    /// MLDv2 report (143, RFC 3810).
    MldV2Report,
    /// Any other value.
    Unknown(u8),
}

impl Icmpv6Message {
    /// Whether this is an error message (types 0..=127, RFC 4443 §2.1).
    #[inline]
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

impl From<u8> for Icmpv6Message {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            1 => Icmpv6Message::DstUnreachable,
            2 => Icmpv6Message::PacketTooBig,
            3 => Icmpv6Message::TimeExceeded,
            4 => Icmpv6Message::ParamProblem,
            128 => Icmpv6Message::EchoRequest,
            129 => Icmpv6Message::EchoReply,
            130 => Icmpv6Message::MldQuery,
            131 => Icmpv6Message::MldReport,
            132 => Icmpv6Message::MldDone,
            133 => Icmpv6Message::RouterSolicit,
            134 => Icmpv6Message::RouterAdvert,
            135 => Icmpv6Message::NeighborSolicit,
            136 => Icmpv6Message::NeighborAdvert,
            137 => Icmpv6Message::Redirect,
            143 => Icmpv6Message::MldV2Report,
            x => Icmpv6Message::Unknown(x),
        }
    }
}

impl From<Icmpv6Message> for u8 {
    #[inline]
    fn from(m: Icmpv6Message) -> u8 {
        match m {
            Icmpv6Message::DstUnreachable => 1,
            Icmpv6Message::PacketTooBig => 2,
            Icmpv6Message::TimeExceeded => 3,
            Icmpv6Message::ParamProblem => 4,
            Icmpv6Message::EchoRequest => 128,
            Icmpv6Message::EchoReply => 129,
            Icmpv6Message::MldQuery => 130,
            Icmpv6Message::MldReport => 131,
            Icmpv6Message::MldDone => 132,
            Icmpv6Message::RouterSolicit => 133,
            Icmpv6Message::RouterAdvert => 134,
            Icmpv6Message::NeighborSolicit => 135,
            Icmpv6Message::NeighborAdvert => 136,
            Icmpv6Message::Redirect => 137,
            Icmpv6Message::MldV2Report => 143,
            Icmpv6Message::Unknown(x) => x,
        }
    }
}

mod field {
    use crate::wire::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const WORD: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const DATA: usize = 8;
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    pub(super) buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps `buffer`, checking it holds the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
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

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv6Message {
        Icmpv6Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (echo request and reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request and reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// MTU of the next-hop link (packet too big).
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::WORD)
    }

    /// Offset of the offending byte in the invoking packet (parameter problem).
    #[inline]
    pub fn pointer(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::WORD)
    }

    /// The bytes after the 8-byte header: the echo payload or the invoking packet. (For
    /// Neighbor Discovery messages this is the message body from byte 8; see
    /// [`ndp`](super::ndp).)
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum is correct for a message from `src` to `dst` (the whole buffer is
    /// the message).
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, len);
        checksum::finish(checksum::sum(data, ph)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: Icmpv6Message) {
        self.buffer.as_mut()[field::TYPE] = v.into();
    }

    /// Sets the message code.
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    /// Sets the MTU (packet too big).
    #[inline]
    pub fn set_mtu(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::WORD, v);
    }

    /// Sets the pointer (parameter problem).
    #[inline]
    pub fn set_pointer(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::WORD, v);
    }

    /// Computes the checksum over the pseudo-header and the whole buffer, and writes it.
    ///
    /// # Panics
    /// In debug builds, if the buffer is 4 GiB or longer (release builds leave the checksum 0).
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len());
        debug_assert!(len.is_ok(), "ICMPv6 message of {} bytes", data.len());
        if let Ok(len) = len {
            let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, len);
            let c = checksum::finish(checksum::sum(data, ph));
            self.set_checksum(c);
        }
    }

    /// The bytes after the 8-byte header, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

/// An ICMPv6 message Weft reads or writes, as a value borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// Echo request (type 128, code 0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Echo reply (type 129, code 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Destination unreachable (type 1).
    DstUnreachable {
        /// Code (0 no route, 1 prohibited, 3 address unreachable, 4 port unreachable, ...).
        code: u8,
        /// The invoking packet, at most [`MAX_ERROR_DATA`] bytes of it.
        data: &'a [u8],
    },
    /// Packet too big (type 2).
    PacketTooBig {
        /// MTU of the next-hop link.
        mtu: u32,
        /// The invoking packet, at most [`MAX_ERROR_DATA`] bytes of it.
        data: &'a [u8],
    },
    /// Time exceeded (type 3).
    TimeExceeded {
        /// Code (0 hop limit exceeded, 1 reassembly time exceeded).
        code: u8,
        /// The invoking packet, at most [`MAX_ERROR_DATA`] bytes of it.
        data: &'a [u8],
    },
    /// Parameter problem (type 4).
    ParamProblem {
        /// Code (0 erroneous header field, 1 unrecognized next header, 2 unrecognized option).
        code: u8,
        /// Offset of the offending byte in the invoking packet.
        pointer: u32,
        /// The invoking packet, at most [`MAX_ERROR_DATA`] bytes of it.
        data: &'a [u8],
    },
    /// A Neighbor Discovery message (RFC 4861).
    Ndisc(NdiscRepr<'a>),
}

impl<'a> Icmpv6Repr<'a> {
    /// Reads `packet`. `Malformed` for echo messages with a nonzero code, for Neighbor
    /// Discovery messages that fail [`ndp::validate`](super::ndp::validate), and for types this
    /// enum does not model (MLD, redirect, unknown). Does not verify the checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv6Packet<&'a T>) -> Result<Icmpv6Repr<'a>> {
        packet.check_len()?;
        let buffer: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let data = &buffer[field::DATA..];
        let code = packet.msg_code();
        match (packet.msg_type(), code) {
            (Icmpv6Message::EchoRequest, 0) => Ok(Icmpv6Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv6Message::EchoReply, 0) => Ok(Icmpv6Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv6Message::DstUnreachable, _) => Ok(Icmpv6Repr::DstUnreachable { code, data }),
            (Icmpv6Message::PacketTooBig, _) => Ok(Icmpv6Repr::PacketTooBig {
                mtu: packet.mtu(),
                data,
            }),
            (Icmpv6Message::TimeExceeded, _) => Ok(Icmpv6Repr::TimeExceeded { code, data }),
            (Icmpv6Message::ParamProblem, _) => Ok(Icmpv6Repr::ParamProblem {
                code,
                pointer: packet.pointer(),
                data,
            }),
            (
                Icmpv6Message::RouterSolicit
                | Icmpv6Message::RouterAdvert
                | Icmpv6Message::NeighborSolicit
                | Icmpv6Message::NeighborAdvert,
                _,
            ) => NdiscRepr::parse(packet).map(Icmpv6Repr::Ndisc),
            _ => Err(Error::Malformed),
        }
    }

    /// Length of the message this emits.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { data, .. }
            | Icmpv6Repr::EchoReply { data, .. }
            | Icmpv6Repr::DstUnreachable { data, .. }
            | Icmpv6Repr::PacketTooBig { data, .. }
            | Icmpv6Repr::TimeExceeded { data, .. }
            | Icmpv6Repr::ParamProblem { data, .. } => HEADER_LEN + data.len(),
            Icmpv6Repr::Ndisc(nd) => nd.buffer_len(),
        }
    }

    /// Writes the message into the first [`buffer_len`](Self::buffer_len) bytes of `packet`,
    /// with its checksum for a message from `src` to `dst` (computed over those bytes only).
    ///
    /// # Panics
    /// If the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        packet: &mut Icmpv6Packet<T>,
    ) {
        let (msg, code, word, data) = match *self {
            Icmpv6Repr::Ndisc(nd) => return nd.emit(src, dst, packet),
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (
                Icmpv6Message::EchoRequest,
                0,
                (u32::from(ident) << 16) | u32::from(seq_no),
                data,
            ),
            Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (
                Icmpv6Message::EchoReply,
                0,
                (u32::from(ident) << 16) | u32::from(seq_no),
                data,
            ),
            Icmpv6Repr::DstUnreachable { code, data } => {
                (Icmpv6Message::DstUnreachable, code, 0, data)
            }
            Icmpv6Repr::PacketTooBig { mtu, data } => (Icmpv6Message::PacketTooBig, 0, mtu, data),
            Icmpv6Repr::TimeExceeded { code, data } => (Icmpv6Message::TimeExceeded, code, 0, data),
            Icmpv6Repr::ParamProblem {
                code,
                pointer,
                data,
            } => (Icmpv6Message::ParamProblem, code, pointer, data),
        };
        let len = HEADER_LEN + data.len();
        let mut p = Icmpv6Packet::new_unchecked(&mut packet.buffer.as_mut()[..len]);
        p.set_msg_type(msg);
        p.set_msg_code(code);
        write_u32(p.buffer, field::WORD, word);
        p.data_mut().copy_from_slice(data);
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request fe80::1 -> fe80::2, ident 0x4242, seq 7, "0123456789".
    const ECHO: [u8; 18] = [
        0x80, 0x00, 0x3b, 0x5b, 0x42, 0x42, 0x00, 0x07, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36,
        0x37, 0x38, 0x39,
    ];
    // Its reply, fe80::2 -> fe80::1.
    const ECHO_REPLY: [u8; 18] = [
        0x81, 0x00, 0x3a, 0x5b, 0x42, 0x42, 0x00, 0x07, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36,
        0x37, 0x38, 0x39,
    ];
    // Packet too big, MTU 1280, from 2001:db8::fe to 2001:db8::1, quoting a 1500-byte VXLAN
    // packet's IPv6 and UDP headers and the VXLAN header.
    const PTB: [u8; 64] = [
        0x02, 0x00, 0x96, 0x35, 0x00, 0x00, 0x05, 0x00, 0x60, 0x00, 0x00, 0x00, 0x05, 0xb4, 0x11,
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x99, 0x9c, 0x40, 0x12, 0xb5, 0x05, 0xb4, 0x12, 0x34, 0x08, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x64, 0x00,
    ];
    // MLDv2 report fe80::5054:ff:fe12:3456 -> ff02::16 (joining ff02::1:ff12:3456).
    const MLD2: [u8; 28] = [
        0x8f, 0x00, 0xb8, 0xe4, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0xff, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x12, 0x34, 0x56,
    ];

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn message_round_trip() {
        for v in 0..=u8::MAX {
            let m = Icmpv6Message::from(v);
            assert_eq!(u8::from(m), v);
            assert_eq!(m.is_error(), v < 128);
        }
    }

    #[test]
    fn echo() {
        let p = Icmpv6Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.msg_code()),
            (Icmpv6Message::EchoRequest, 0)
        );
        assert_eq!(p.checksum(), 0x3b5b);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x4242, 7));
        assert_eq!(p.data(), b"0123456789");
        assert!(p.verify_checksum(&a("fe80::1"), &a("fe80::2")));
        assert!(!p.verify_checksum(&a("fe80::1"), &a("fe80::3")));
        let r = Icmpv6Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::EchoRequest {
                ident: 0x4242,
                seq_no: 7,
                data: b"0123456789"
            }
        );
        assert_eq!(r.buffer_len(), 18);

        let Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = r
        else {
            unreachable!()
        };
        let reply = Icmpv6Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut buf = [0xaau8; 20];
        reply.emit(
            &a("fe80::2"),
            &a("fe80::1"),
            &mut Icmpv6Packet::new_unchecked(&mut buf[..]),
        );
        assert_eq!(buf[..18], ECHO_REPLY);
        assert_eq!(buf[18..], [0xaa; 2]);
        let p = Icmpv6Packet::new_checked(&ECHO_REPLY[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p), Ok(reply));
    }

    #[test]
    fn packet_too_big() {
        let (s, d) = (a("2001:db8::fe"), a("2001:db8::1"));
        let p = Icmpv6Packet::new_checked(&PTB[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Message::PacketTooBig);
        assert!(p.msg_type().is_error());
        assert_eq!(p.mtu(), 1280);
        assert!(p.verify_checksum(&s, &d));
        let r = Icmpv6Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::PacketTooBig {
                mtu: 1280,
                data: &PTB[8..]
            }
        );
        let mut buf = [0u8; 64];
        r.emit(&s, &d, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, PTB);
    }

    #[test]
    fn other_errors_round_trip() {
        let (s, d) = (a("2001:db8::fe"), a("2001:db8::1"));
        let quoted = &PTB[8..];
        for r in [
            Icmpv6Repr::DstUnreachable {
                code: 4,
                data: quoted,
            },
            Icmpv6Repr::TimeExceeded {
                code: 1,
                data: quoted,
            },
            Icmpv6Repr::ParamProblem {
                code: 1,
                pointer: 6,
                data: quoted,
            },
        ] {
            let mut buf = [0xffu8; 64];
            r.emit(&s, &d, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
            let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
            assert!(p.verify_checksum(&s, &d));
            assert_eq!(Icmpv6Repr::parse(&p), Ok(r));
        }
        let mut buf = [0u8; 64];
        let r = Icmpv6Repr::ParamProblem {
            code: 0,
            pointer: 0x0102_0304,
            data: quoted,
        };
        r.emit(&s, &d, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[..8], [4, 0, buf[2], buf[3], 1, 2, 3, 4]);
    }

    #[test]
    fn mld_is_not_modelled() {
        let p = Icmpv6Packet::new_checked(&MLD2[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Message::MldV2Report);
        assert!(p.verify_checksum(&a("fe80::5054:ff:fe12:3456"), &a("ff02::16")));
        assert_eq!(Icmpv6Repr::parse(&p), Err(Error::Malformed));
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 10];
        let mut p = Icmpv6Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Icmpv6Message::EchoRequest);
        p.set_msg_code(0);
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.data_mut().copy_from_slice(b"hi");
        p.fill_checksum(&a("::1"), &a("::1"));
        assert!(p.verify_checksum(&a("::1"), &a("::1")));
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (1, 2));
        p.set_mtu(1500);
        assert_eq!(p.mtu(), 1500);
        p.set_pointer(40);
        assert_eq!(p.pointer(), 40);
        p.set_checksum(0xbeef);
        assert_eq!(p.into_inner()[2..4], [0xbe, 0xef]);
    }

    #[test]
    fn malformed() {
        let mut buf = ECHO;
        buf[1] = 3;
        let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p), Err(Error::Malformed));
        assert_eq!(
            Icmpv6Packet::new_checked(&ECHO[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(&ECHO[..7])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn every_prefix_is_safe() {
        let (s, d) = (a("fe80::1"), a("fe80::2"));
        for sample in [&ECHO[..], &ECHO_REPLY[..], &PTB[..], &MLD2[..]] {
            for len in 0..=sample.len() {
                match Icmpv6Packet::new_checked(&sample[..len]) {
                    Ok(p) => {
                        let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
                        let _ = (p.echo_seq_no(), p.mtu(), p.pointer(), p.data());
                        let _ = (p.verify_checksum(&s, &d), Icmpv6Repr::parse(&p));
                    }
                    Err(e) => {
                        assert_eq!(e, Error::Truncated);
                        assert!(len < HEADER_LEN);
                    }
                }
            }
        }
    }
}
