//! ICMP for IPv4 (RFC 792; "fragmentation needed" next-hop MTU per RFC 1191).
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+-------------------------------+
//! |     type      |     code      |           checksum            |
//! +---------------+---------------+-------------------------------+
//! | echo: identifier | sequence   | unreachable: unused | next-hop MTU |
//! +---------------------------------------------------------------+
//! |  data: echo payload, or the offending datagram's header + data  |
//! ```
//!
//! A view spans exactly one ICMP message (the IPv4 payload): the checksum covers the whole
//! buffer. Checksums are not verified while parsing; call [`Icmpv4Packet::verify_checksum`].

use super::bytes::{read_u16, write_u16};
use super::{Error, Result, checksum};

/// Length of the ICMP header (type, code, checksum and the 4-byte "rest of header").
pub const HEADER_LEN: usize = 8;

/// An ICMPv4 message type. Values without a variant are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    /// Echo reply (0).
    EchoReply,
    /// Destination unreachable (3).
    DstUnreachable,
    /// Redirect (5).
    Redirect,
    /// Echo request (8).
    EchoRequest,
    /// Time exceeded (11).
    TimeExceeded,
    /// Parameter problem (12).
    ParamProblem,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for Icmpv4Message {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            0 => Icmpv4Message::EchoReply,
            3 => Icmpv4Message::DstUnreachable,
            5 => Icmpv4Message::Redirect,
            8 => Icmpv4Message::EchoRequest,
            11 => Icmpv4Message::TimeExceeded,
            12 => Icmpv4Message::ParamProblem,
            x => Icmpv4Message::Unknown(x),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    #[inline]
    fn from(m: Icmpv4Message) -> u8 {
        match m {
            Icmpv4Message::EchoReply => 0,
            Icmpv4Message::DstUnreachable => 3,
            Icmpv4Message::Redirect => 5,
            Icmpv4Message::EchoRequest => 8,
            Icmpv4Message::TimeExceeded => 11,
            Icmpv4Message::ParamProblem => 12,
            Icmpv4Message::Unknown(x) => x,
        }
    }
}

/// Destination unreachable code 4: fragmentation needed and DF set (RFC 1191).
pub const CODE_FRAG_NEEDED: u8 = 4;

mod field {
    use crate::wire::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const UNUSED: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 6..8;
    pub const DATA: usize = 8;
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
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
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[field::TYPE])
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

    /// Next-hop MTU (destination unreachable, code 4; zero from pre-RFC 1191 routers).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MTU)
    }

    /// The data after the 8-byte header.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum over the whole buffer is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::sum(self.buffer.as_ref(), 0)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: Icmpv4Message) {
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

    /// Sets the next-hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::MTU, v);
    }

    /// Computes the checksum over the whole buffer and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), 0));
        self.set_checksum(c);
    }

    /// The data after the header, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

/// An ICMPv4 message Weft reads or writes, as a value borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Echo request (type 8, code 0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Echo reply (type 0, code 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// Code (4: fragmentation needed).
        code: u8,
        /// Next-hop MTU (meaningful for code 4; written as given for others, normally 0).
        next_hop_mtu: u16,
        /// The offending datagram: its IPv4 header and at least 8 bytes of its payload.
        data: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// Code (0: TTL exceeded in transit, 1: reassembly time exceeded).
        code: u8,
        /// The offending datagram: its IPv4 header and at least 8 bytes of its payload.
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Reads `packet`. `Malformed` for echo messages with a nonzero code and for types this
    /// enum does not model (redirect, parameter problem, unknown). Does not verify the
    /// checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv4Packet<&'a T>) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        let buffer: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let data = &buffer[field::DATA..];
        let code = packet.msg_code();
        match (packet.msg_type(), code) {
            (Icmpv4Message::EchoRequest, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::EchoReply, 0) => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::DstUnreachable, _) => Ok(Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu: packet.next_hop_mtu(),
                data,
            }),
            (Icmpv4Message::TimeExceeded, _) => Ok(Icmpv4Repr::TimeExceeded { code, data }),
            _ => Err(Error::Malformed),
        }
    }

    /// Length of the message this emits: the header plus the data.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Icmpv4Repr::EchoRequest { data, .. }
            | Icmpv4Repr::EchoReply { data, .. }
            | Icmpv4Repr::DstUnreachable { data, .. }
            | Icmpv4Repr::TimeExceeded { data, .. } => data,
        }
    }

    /// Writes the message into the first [`buffer_len`](Self::buffer_len) bytes of `packet`,
    /// checksum included (computed over those bytes only).
    ///
    /// # Panics
    /// If the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let len = self.buffer_len();
        let mut p = Icmpv4Packet::new_unchecked(&mut packet.buffer.as_mut()[..len]);
        p.buffer[field::UNUSED].fill(0);
        match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. } => {
                p.set_msg_type(Icmpv4Message::EchoRequest);
                p.set_msg_code(0);
                p.set_echo_ident(ident);
                p.set_echo_seq_no(seq_no);
            }
            Icmpv4Repr::EchoReply { ident, seq_no, .. } => {
                p.set_msg_type(Icmpv4Message::EchoReply);
                p.set_msg_code(0);
                p.set_echo_ident(ident);
                p.set_echo_seq_no(seq_no);
            }
            Icmpv4Repr::DstUnreachable {
                code, next_hop_mtu, ..
            } => {
                p.set_msg_type(Icmpv4Message::DstUnreachable);
                p.set_msg_code(code);
                p.set_next_hop_mtu(next_hop_mtu);
            }
            Icmpv4Repr::TimeExceeded { code, .. } => {
                p.set_msg_type(Icmpv4Message::TimeExceeded);
                p.set_msg_code(code);
            }
        }
        p.data_mut().copy_from_slice(self.data());
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request, ident 0x0123, seq 1, 16 bytes "a".."p" (the ICMP part of a ping).
    const PING: [u8; 24] = [
        0x08, 0x00, 0xb3, 0x90, 0x01, 0x23, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70,
    ];
    // Its reply.
    const PONG: [u8; 24] = [
        0x00, 0x00, 0xbb, 0x90, 0x01, 0x23, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70,
    ];
    // Fragmentation needed, next-hop MTU 1450, quoting the IPv4 header and UDP header of a
    // 1492-byte VXLAN datagram from 192.168.1.10 to 203.0.113.5.
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x42, 0x9c, 0x00, 0x00, 0x05, 0xaa, 0x45, 0x00, 0x05, 0xd4, 0x1c, 0x46, 0x40,
        0x00, 0x40, 0x11, 0x1b, 0x1b, 0xc0, 0xa8, 0x01, 0x0a, 0xcb, 0x00, 0x71, 0x05, 0x9c, 0x40,
        0x12, 0xb5, 0x05, 0xc0, 0x00, 0x00,
    ];
    // TTL exceeded in transit for the same datagram.
    const TIME_EXCEEDED: [u8; 36] = [
        0x0b, 0x00, 0x40, 0x4a, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x05, 0xd4, 0x1c, 0x46, 0x40,
        0x00, 0x40, 0x11, 0x1b, 0x1b, 0xc0, 0xa8, 0x01, 0x0a, 0xcb, 0x00, 0x71, 0x05, 0x9c, 0x40,
        0x12, 0xb5, 0x05, 0xc0, 0x00, 0x00,
    ];

    #[test]
    fn message_round_trip() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(Icmpv4Message::from(v)), v);
        }
    }

    #[test]
    fn parse_echo_request() {
        let p = Icmpv4Packet::new_checked(&PING[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0xb390);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x0123, 1));
        assert_eq!(p.data(), b"abcdefghijklmnop");
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::EchoRequest {
                ident: 0x0123,
                seq_no: 1,
                data: b"abcdefghijklmnop"
            }
        );
        assert_eq!(r.buffer_len(), 24);
    }

    #[test]
    fn echo_reply_emit() {
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&PING[..]).unwrap()).unwrap()
        else {
            panic!("not an echo request")
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        // A longer buffer: emit writes and checksums only buffer_len() bytes.
        let mut buf = [0xffu8; 30];
        reply.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[..24], PONG);
        assert_eq!(buf[24..], [0xff; 6]);
        let p = Icmpv4Packet::new_checked(&PONG[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p), Ok(reply));

        // In place: flip the type and patch the checksum incrementally (RFC 1624).
        let mut buf = PING;
        let mut p = Icmpv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_msg_type(Icmpv4Message::EchoReply);
        let c = checksum::update16(p.checksum(), 0x0800, 0x0000);
        p.set_checksum(c);
        assert_eq!(buf, PONG);
    }

    #[test]
    fn frag_needed() {
        let p = Icmpv4Packet::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.msg_code()),
            (Icmpv4Message::DstUnreachable, CODE_FRAG_NEEDED)
        );
        assert_eq!(p.next_hop_mtu(), 1450);
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::DstUnreachable {
                code: 4,
                next_hop_mtu: 1450,
                data: &FRAG_NEEDED[8..]
            }
        );
        let mut buf = [0u8; 36];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FRAG_NEEDED);
    }

    #[test]
    fn time_exceeded() {
        let p = Icmpv4Packet::new_checked(&TIME_EXCEEDED[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::TimeExceeded {
                code: 0,
                data: &TIME_EXCEEDED[8..]
            }
        );
        let mut buf = [0x55u8; 36];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, TIME_EXCEEDED);
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 12];
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Icmpv4Message::Unknown(42));
        p.set_msg_code(7);
        p.set_echo_ident(0xabcd);
        p.set_echo_seq_no(9);
        p.data_mut().copy_from_slice(b"weft");
        p.fill_checksum();
        assert_eq!(
            (p.msg_type(), p.msg_code()),
            (Icmpv4Message::Unknown(42), 7)
        );
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0xabcd, 9));
        assert!(p.verify_checksum());
        p.set_next_hop_mtu(1280);
        assert_eq!(p.next_hop_mtu(), 1280);
        assert!(!p.verify_checksum());
        assert_eq!(p.into_inner().len(), 12);
    }

    #[test]
    fn malformed() {
        let mut buf = PING;
        buf[1] = 1; // echo with code 1
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&buf[..]).unwrap()),
            Err(Error::Malformed)
        );
        for t in [5u8, 12, 13, 42] {
            let mut buf = TIME_EXCEEDED;
            buf[0] = t;
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(Icmpv4Repr::parse(&p), Err(Error::Malformed), "type {t}");
        }
        let mut buf = PING;
        buf[10] ^= 1;
        assert!(
            !Icmpv4Packet::new_checked(&buf[..])
                .unwrap()
                .verify_checksum()
        );
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&PING[..7])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn every_prefix_is_safe() {
        for sample in [&PING[..], &PONG[..], &FRAG_NEEDED[..], &TIME_EXCEEDED[..]] {
            for len in 0..=sample.len() {
                match Icmpv4Packet::new_checked(&sample[..len]) {
                    Ok(p) => {
                        let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
                        let _ = (
                            p.echo_seq_no(),
                            p.next_hop_mtu(),
                            p.data(),
                            p.verify_checksum(),
                        );
                        assert!(Icmpv4Repr::parse(&p).is_ok());
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
