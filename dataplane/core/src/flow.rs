//! The flow an IP packet belongs to, and the transport fields connection tracking and NAT read.
//!
//! [`parse`] reads an IPv4 or IPv6 packet (from its IP header on) once and returns its 5-tuple
//! ([`Tuple`]) with what the transport header says ([`Transport`]): TCP flags, sequence numbers,
//! window and window scale; ICMP echo identifiers (carried in both ports of the tuple, so an
//! echo reply's tuple is the request's reversed); for ICMP errors, the tuple of the packet the
//! error is about, as that packet was sent (RFC 792, RFC 4443 §2.4: the quote starts with the
//! offending IP header and at least 8 bytes of its transport header).
//!
//! IPv6 extension headers (hop-by-hop, routing, destination options, fragment, AH) are walked,
//! at most [`MAX_EXT_HEADERS`] of them. A later fragment (offset ≠ 0) has no transport header:
//! its transport is [`Transport::Fragment`] and its ports are zero. Nothing here verifies
//! checksums; lengths are checked, so no accessor can panic on a short or lying packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::Error;

/// ICMP.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;
/// ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// Extension headers walked before giving up (the packet is then [`Error::Malformed`]).
pub const MAX_EXT_HEADERS: usize = 8;

/// TCP control bits as they appear in byte 13 of the header.
pub mod tcp_flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent.
    pub const URG: u8 = 0x20;
}

/// A flow's 5-tuple, in the direction the packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// TCP/UDP source port; the identifier for ICMP echo; 0 otherwise.
    pub sport: u16,
    /// TCP/UDP destination port; the identifier for ICMP echo; 0 otherwise.
    pub dport: u16,
}

impl Tuple {
    /// The tuple of the other direction.
    #[inline]
    pub fn reversed(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            proto: self.proto,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// What the transport header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP segment.
    Tcp {
        /// Control bits ([`tcp_flags`]).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Window field (not scaled).
        window: u16,
        /// The window scale option (RFC 7323), read on SYN segments only.
        wscale: Option<u8>,
        /// Bytes of data after the TCP header.
        payload: u32,
    },
    /// A UDP datagram.
    Udp,
    /// An ICMP or ICMPv6 echo request or reply; the identifier is in both ports of the tuple.
    Echo {
        /// A request (not a reply).
        request: bool,
    },
    /// An ICMP or ICMPv6 error (destination unreachable, time exceeded, parameter problem,
    /// packet too big) about the packet whose tuple is `inner`.
    IcmpError {
        /// ICMP type.
        ty: u8,
        /// ICMP code.
        code: u8,
        /// The quoted packet's tuple, as it was sent.
        inner: Tuple,
        /// Offset of the quoted IP header from the start of the outer IP header.
        inner_l3: usize,
        /// Offset of the quoted transport header from the start of the outer IP header.
        inner_l4: usize,
    },
    /// Another ICMP or ICMPv6 message (neighbour discovery, router advertisements...).
    IcmpOther {
        /// ICMP type.
        ty: u8,
        /// ICMP code.
        code: u8,
    },
    /// A later fragment: no transport header to read.
    Fragment,
    /// A protocol without ports.
    Other,
}

/// A parsed packet's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The 5-tuple.
    pub tuple: Tuple,
    /// The transport header's fields.
    pub transport: Transport,
    /// Offset of the transport header from the start of the IP header.
    pub l4: usize,
    /// Part of a fragmented packet (first or later fragment).
    pub fragmented: bool,
}

/// Parses the packet starting at `l3` (an IPv4 or IPv6 header; the version nibble decides).
/// Bytes after the IP total/payload length are ignored (Ethernet padding).
#[inline]
pub fn parse(l3: &[u8]) -> Result<Flow, Error> {
    match parse_v4_tcp_udp(l3) {
        Some(f) => Ok(f),
        None => parse_any(l3),
    }
}

/// [`parse`] for the common case, inlined where it is called: an unfragmented IPv4 packet
/// without options carrying a TCP segment (not a SYN, whose options are read) or a UDP
/// datagram, whose headers fit in its length. `None` for anything else, which the full walk
/// settles (the answer is the same either way: `flow::tests` compares them).
#[inline(always)]
fn parse_v4_tcp_udp(b: &[u8]) -> Option<Flow> {
    let h = b.get(..20)?;
    if h[0] != 0x45 || u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let t = b.get(20..total)?;
    let mut tuple = v4_tuple(h);
    let transport = match (tuple.proto, t) {
        (PROTO_UDP, [s0, s1, d0, d1, _, _, _, _, ..]) => {
            (tuple.sport, tuple.dport) = (
                u16::from_be_bytes([*s0, *s1]),
                u16::from_be_bytes([*d0, *d1]),
            );
            Transport::Udp
        }
        (
            PROTO_TCP,
            [
                s0,
                s1,
                d0,
                d1,
                q0,
                q1,
                q2,
                q3,
                a0,
                a1,
                a2,
                a3,
                off,
                flags,
                w0,
                w1,
                ..,
            ],
        ) => {
            let hl = usize::from(off >> 4) * 4;
            if hl < 20 || hl > t.len() || flags & tcp_flags::SYN != 0 {
                return None;
            }
            (tuple.sport, tuple.dport) = (
                u16::from_be_bytes([*s0, *s1]),
                u16::from_be_bytes([*d0, *d1]),
            );
            Transport::Tcp {
                flags: *flags,
                seq: u32::from_be_bytes([*q0, *q1, *q2, *q3]),
                ack: u32::from_be_bytes([*a0, *a1, *a2, *a3]),
                window: u16::from_be_bytes([*w0, *w1]),
                wscale: None,
                payload: u32::try_from(t.len() - hl).unwrap_or(u32::MAX),
            }
        }
        _ => return None,
    };
    Some(Flow {
        tuple,
        transport,
        l4: 20,
        fragmented: false,
    })
}

/// [`parse`]'s full walk: every IP version, option, fragment and protocol.
#[inline(never)]
fn parse_any(l3: &[u8]) -> Result<Flow, Error> {
    match l3.first().map(|b| b >> 4) {
        Some(4) => parse_v4(l3, true),
        Some(6) => parse_v6(l3, true),
        Some(_) => Err(Error::Malformed),
        None => Err(Error::Truncated),
    }
}

/// The 5-tuple of a TCP or UDP packet starting at `l3`, read straight from its headers: what
/// [`parse`] would put in [`Flow::tuple`] for it, without the transport fields and without
/// the length checks (the IP total or payload length is not read: padding after a short
/// packet may be taken for its ports). A hint for warming the flow tables ahead of the batch,
/// which [`parse`] settles later. `None` when the packet needs [`parse`]'s full walk (IPv6
/// extension headers, a later fragment, any other protocol) or is too short to hold its ports.
#[inline]
pub fn peek_tcp_udp(l3: &[u8]) -> Option<Tuple> {
    let tcp_udp = |proto| matches!(proto, PROTO_TCP | PROTO_UDP);
    let (tuple, l4) = match l3.first()? >> 4 {
        4 => {
            let h = l3.get(..20)?;
            // A later fragment (offset != 0) has no ports.
            if !tcp_udp(h[9]) || h[6] & 0x1f != 0 || h[7] != 0 {
                return None;
            }
            (v4_tuple(h), usize::from(h[0] & 0x0f) * 4)
        }
        6 => {
            let h = l3.get(..40)?;
            if !tcp_udp(h[6]) {
                return None;
            }
            (v6_tuple(h, h[6]), 40)
        }
        _ => return None,
    };
    let ports = l3.get(l4..l4 + 4).filter(|_| l4 >= 20)?;
    Some(Tuple {
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        ..tuple
    })
}

/// The addresses and protocol of an IPv4 header (`h` holds at least its 20 fixed bytes);
/// ports zero.
fn v4_tuple(h: &[u8]) -> Tuple {
    Tuple {
        src: IpAddr::V4(ip4(&h[12..16])),
        dst: IpAddr::V4(ip4(&h[16..20])),
        proto: h[9],
        sport: 0,
        dport: 0,
    }
}

/// The addresses of an IPv6 header (`h` holds at least its 40 bytes) with the upper-layer
/// protocol `proto`; ports zero.
fn v6_tuple(h: &[u8], proto: u8) -> Tuple {
    Tuple {
        src: IpAddr::V6(ip6(&h[8..24])),
        dst: IpAddr::V6(ip6(&h[24..40])),
        proto,
        sport: 0,
        dport: 0,
    }
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

fn be16(b: &[u8], at: usize) -> Result<u16, Error> {
    b.get(at..at + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]))
        .ok_or(Error::Truncated)
}

fn be32(b: &[u8], at: usize) -> Result<u32, Error> {
    b.get(at..at + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        .ok_or(Error::Truncated)
}

/// `outer`: a packet as received (an ICMP error in it is followed); otherwise a quote inside an
/// ICMP error (the quote may be cut short after 8 bytes of transport header, and an error about
/// an error is not followed).
fn parse_v4(b: &[u8], outer: bool) -> Result<Flow, Error> {
    if b.len() < 20 {
        return Err(Error::Truncated);
    }
    let hl = usize::from(b[0] & 0x0f) * 4;
    if hl < 20 {
        return Err(Error::Malformed);
    }
    if b.len() < hl {
        return Err(Error::Truncated);
    }
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if total < hl {
        return Err(Error::Malformed);
    }
    // A quote may be shorter than the total length it states; a packet may not.
    let end = if outer {
        if b.len() < total {
            return Err(Error::Truncated);
        }
        total
    } else {
        total.min(b.len())
    };
    let frag = u16::from_be_bytes([b[6], b[7]]);
    let (offset, more) = (frag & 0x1fff, frag & 0x2000 != 0);
    let tuple = v4_tuple(b);
    transport(b, hl, end, tuple, offset != 0, more || offset != 0, outer)
}

fn parse_v6(b: &[u8], outer: bool) -> Result<Flow, Error> {
    if b.len() < 40 {
        return Err(Error::Truncated);
    }
    let payload = usize::from(u16::from_be_bytes([b[4], b[5]]));
    let end = if outer {
        if b.len() < 40 + payload {
            return Err(Error::Truncated);
        }
        40 + payload
    } else {
        (40 + payload).min(b.len())
    };
    let mut next = b[6];
    let mut at = 40;
    let (mut later, mut fragmented) = (false, false);
    for _ in 0..=MAX_EXT_HEADERS {
        let len = match next {
            // Hop-by-hop, routing, destination options.
            0 | 43 | 60 => (usize::from(*b.get(at + 1).ok_or(Error::Truncated)?) + 1) * 8,
            // Fragment.
            44 => {
                let f = be16(b, at + 2)?;
                later = f >> 3 != 0;
                fragmented = true;
                8
            }
            // Authentication header.
            51 => (usize::from(*b.get(at + 1).ok_or(Error::Truncated)?) + 2) * 4,
            _ => {
                return transport(b, at, end, v6_tuple(b, next), later, fragmented, outer);
            }
        };
        next = *b.get(at).ok_or(Error::Truncated)?;
        at += len;
        if at > end {
            return Err(Error::Truncated);
        }
    }
    Err(Error::Malformed)
}

/// Reads the transport header at `l4` of a packet that ends at `end`.
#[inline(always)]
fn transport(
    b: &[u8],
    l4: usize,
    end: usize,
    mut tuple: Tuple,
    later_fragment: bool,
    fragmented: bool,
    outer: bool,
) -> Result<Flow, Error> {
    let flow = |tuple, transport| Flow {
        tuple,
        transport,
        l4,
        fragmented,
    };
    if later_fragment {
        return Ok(flow(tuple, Transport::Fragment));
    }
    let t = b.get(l4..end).ok_or(Error::Truncated)?;
    let v6 = tuple.src.is_ipv6();
    match (tuple.proto, v6) {
        (PROTO_TCP, _) => {
            tuple.sport = be16(t, 0)?;
            tuple.dport = be16(t, 2)?;
            if !outer {
                // A quote needs only the ports.
                let tr = Transport::Tcp {
                    flags: 0,
                    seq: be32(t, 4).unwrap_or(0),
                    ack: 0,
                    window: 0,
                    wscale: None,
                    payload: 0,
                };
                return Ok(flow(tuple, tr));
            }
            if t.len() < 20 {
                return Err(Error::Truncated);
            }
            let hl = usize::from(t[12] >> 4) * 4;
            if hl < 20 {
                return Err(Error::Malformed);
            }
            let opts = t.get(20..hl).ok_or(Error::Truncated)?;
            let flags = t[13];
            let wscale = if flags & tcp_flags::SYN != 0 {
                window_scale(opts)
            } else {
                None
            };
            let tr = Transport::Tcp {
                flags,
                seq: be32(t, 4)?,
                ack: be32(t, 8)?,
                window: be16(t, 14)?,
                wscale,
                payload: u32::try_from(t.len() - hl).unwrap_or(u32::MAX),
            };
            Ok(flow(tuple, tr))
        }
        (PROTO_UDP, _) => {
            tuple.sport = be16(t, 0)?;
            tuple.dport = be16(t, 2)?;
            if outer && t.len() < 8 {
                return Err(Error::Truncated);
            }
            Ok(flow(tuple, Transport::Udp))
        }
        (PROTO_ICMP, false) | (PROTO_ICMPV6, true) => {
            let (ty, code) = (
                *t.first().ok_or(Error::Truncated)?,
                *t.get(1).ok_or(Error::Truncated)?,
            );
            let echo = if v6 {
                match ty {
                    128 => Some(true),
                    129 => Some(false),
                    _ => None,
                }
            } else {
                match ty {
                    8 => Some(true),
                    0 => Some(false),
                    _ => None,
                }
            };
            if let Some(request) = echo {
                let id = be16(t, 4)?;
                tuple.sport = id;
                tuple.dport = id;
                return Ok(flow(tuple, Transport::Echo { request }));
            }
            let error = if v6 {
                (1..=4).contains(&ty)
            } else {
                matches!(ty, 3 | 11 | 12)
            };
            if !error {
                return Ok(flow(tuple, Transport::IcmpOther { ty, code }));
            }
            if !outer {
                // An error quoting an error: nothing to follow.
                return Err(Error::Malformed);
            }
            let inner_l3 = l4 + 8;
            let quote = b.get(inner_l3..end).ok_or(Error::Truncated)?;
            let inner = if v6 {
                parse_v6(quote, false)?
            } else {
                parse_v4(quote, false)?
            };
            if inner.tuple.src.is_ipv6() != v6 || inner.transport == Transport::Fragment {
                return Err(Error::Malformed);
            }
            if let Transport::IcmpError { .. } | Transport::IcmpOther { .. } = inner.transport {
                return Err(Error::Malformed);
            }
            Ok(flow(
                tuple,
                Transport::IcmpError {
                    ty,
                    code,
                    inner: inner.tuple,
                    inner_l3,
                    inner_l4: inner_l3 + inner.l4,
                },
            ))
        }
        _ => Ok(flow(tuple, Transport::Other)),
    }
}

/// The window scale option's shift count, capped at 14 (RFC 7323 §2.3).
fn window_scale(mut o: &[u8]) -> Option<u8> {
    while let Some(&kind) = o.first() {
        match kind {
            0 => return None,
            1 => o = &o[1..],
            _ => {
                let len = usize::from(*o.get(1)?);
                if len < 2 || len > o.len() {
                    return None;
                }
                if kind == 3 && len == 3 {
                    return Some(o[2].min(14));
                }
                o = &o[len..];
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ipv4_udp, ipv6_icmp};

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn v4_header(proto: u8, src: [u8; 4], dst: [u8; 4], payload: usize, frag: u16) -> Vec<u8> {
        let total = u16::try_from(20 + payload).unwrap();
        let mut h = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    fn tcp_syn() -> Vec<u8> {
        // 10.0.0.1:40000 -> 10.0.1.5:80, SYN, seq 1000, window 64240, MSS + NOP + wscale 7.
        let mut p = v4_header(6, [10, 0, 0, 1], [10, 0, 1, 5], 28, 0x4000);
        p.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x70, 0x02]);
        p.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5, 0xb4, 1, 3, 3, 7]);
        p
    }

    #[test]
    fn tcp_syn_gives_tuple_flags_and_window_scale() {
        let f = parse(&tcp_syn()).unwrap();
        assert_eq!(
            f.tuple,
            Tuple {
                src: v4("10.0.0.1"),
                dst: v4("10.0.1.5"),
                proto: 6,
                sport: 40000,
                dport: 80
            }
        );
        assert_eq!(
            f.transport,
            Transport::Tcp {
                flags: tcp_flags::SYN,
                seq: 1000,
                ack: 0,
                window: 64240,
                wscale: Some(7),
                payload: 0
            }
        );
        assert_eq!(f.l4, 20);
        assert!(!f.fragmented);
        assert_eq!(f.tuple.reversed().reversed(), f.tuple);
    }

    #[test]
    fn udp_and_padding() {
        let mut l3 = ipv4_udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1234,
            53,
            5,
        );
        l3.extend_from_slice(&[0; 10]);
        let f = parse(&l3).unwrap();
        assert_eq!(
            (f.tuple.sport, f.tuple.dport, f.tuple.proto),
            (1234, 53, 17)
        );
        assert_eq!(f.transport, Transport::Udp);
    }

    #[test]
    fn later_fragments_have_no_ports() {
        let mut p = v4_header(17, [10, 0, 0, 1], [10, 0, 0, 2], 8, 185);
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let f = parse(&p).unwrap();
        assert_eq!(f.transport, Transport::Fragment);
        assert_eq!((f.tuple.sport, f.tuple.dport), (0, 0));
        assert!(f.fragmented);
    }

    #[test]
    fn icmp_error_quotes_the_offending_flow() {
        // Port unreachable from 10.0.1.5 about a UDP datagram 10.0.0.1:5000 -> 10.0.1.5:33434,
        // quoted with its header and 8 bytes.
        let mut quote = v4_header(17, [10, 0, 0, 1], [10, 0, 1, 5], 40, 0);
        quote.extend_from_slice(&[0x13, 0x88, 0x82, 0x9a, 0, 48, 0, 0]);
        let mut p = v4_header(1, [10, 0, 1, 5], [10, 0, 0, 1], 8 + quote.len(), 0);
        p.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&quote);
        let f = parse(&p).unwrap();
        let Transport::IcmpError {
            ty,
            code,
            inner,
            inner_l3,
            inner_l4,
        } = f.transport
        else {
            panic!("{:?}", f.transport);
        };
        assert_eq!((ty, code, inner_l3, inner_l4), (3, 3, 28, 48));
        assert_eq!(inner.src, v4("10.0.0.1"));
        assert_eq!((inner.proto, inner.sport, inner.dport), (17, 5000, 33434));
    }

    #[test]
    fn echo_identifiers_fill_both_ports() {
        let mut p = v4_header(1, [10, 0, 0, 1], [10, 0, 0, 2], 8, 0);
        p.extend_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        let f = parse(&p).unwrap();
        assert_eq!(f.transport, Transport::Echo { request: true });
        assert_eq!((f.tuple.sport, f.tuple.dport), (0x1234, 0x1234));
    }

    #[test]
    fn ipv6_walks_extension_headers() {
        let l3 = ipv6_icmp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            64,
            &[128, 0, 0, 0, 0, 7, 0, 1],
        );
        let f = parse(&l3).unwrap();
        assert_eq!(f.transport, Transport::Echo { request: true });
        assert_eq!(f.tuple.sport, 7);
        // The same behind a destination-options header.
        let mut x = l3[..40].to_vec();
        x[6] = 60;
        x[5] += 8;
        x.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
        x.extend_from_slice(&l3[40..]);
        let g = parse(&x).unwrap();
        assert_eq!(g.transport, Transport::Echo { request: true });
        assert_eq!(g.l4, 48);
        // A chain longer than the limit is refused.
        let mut y = l3[..40].to_vec();
        y[6] = 60;
        for _ in 0..=MAX_EXT_HEADERS {
            y.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        let plen = u16::try_from(y.len() - 40).unwrap();
        y[4..6].copy_from_slice(&plen.to_be_bytes());
        assert_eq!(parse(&y), Err(Error::Malformed));
    }

    #[test]
    fn peek_gives_the_tuple_parse_gives() {
        use crate::testing::{ipv6_udp, udp};
        let (a6, b6) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let mut v4_opts = v4_header(17, [10, 0, 0, 1], [10, 0, 0, 2], 12, 0);
        v4_opts[0] = 0x46;
        v4_opts.extend_from_slice(&[1, 1, 1, 0]);
        v4_opts.extend_from_slice(&udp(7, 9, &[]));
        let mut first_fragment = v4_header(6, [10, 0, 0, 1], [10, 0, 0, 2], 28, 0x2000);
        first_fragment.extend_from_slice(&tcp_syn()[20..]);
        let mut udp6 = ipv6_udp(a6, b6, 5353, 53, b"q");
        let mut tcp6 = udp6.clone();
        tcp6[6] = 6;
        tcp6[4..6].copy_from_slice(&20u16.to_be_bytes());
        tcp6.truncate(40);
        tcp6.extend_from_slice(&tcp_syn()[20..40]);
        tcp6[52] = 0x50; // no options
        // Read fully: TCP and UDP over IPv4 (with options, a first fragment) and IPv6.
        let full = [
            tcp_syn(),
            ipv4_udp(
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                1,
                2,
                0,
            ),
            v4_opts,
            first_fragment,
            udp6.clone(),
            tcp6,
        ];
        for p in &full {
            let f = parse(p).unwrap();
            assert_eq!(peek_tcp_udp(p), Some(f.tuple), "{p:?}");
        }
        // Left to parse: a later fragment, ICMP, IPv6 extension headers.
        let mut later = v4_header(17, [10, 0, 0, 1], [10, 0, 0, 2], 8, 185);
        later.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let echo = ipv6_icmp(a6, b6, 64, &[128, 0, 0, 0, 0, 7, 0, 1]);
        udp6[6] = 60;
        for p in [later, echo, udp6] {
            assert_eq!(peek_tcp_udp(&p), None, "{p:?}");
        }
        // Whatever the bytes, a tuple peeked is the one parse gives, when parse gives one.
        for p in &full {
            for n in 0..=p.len() {
                if let (Some(t), Ok(f)) = (peek_tcp_udp(&p[..n]), parse(&p[..n])) {
                    assert_eq!(t, f.tuple);
                }
            }
            for at in 0..p.len().min(64) {
                for x in [0u8, 1, 0x0f, 0x20, 0x43, 0x45, 0x60, 0xff] {
                    let mut q = p.clone();
                    q[at] = x;
                    if let (Some(t), Ok(f)) = (peek_tcp_udp(&q), parse(&q)) {
                        assert_eq!(t, f.tuple, "byte {at} = {x}: {q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_inlined_common_case_answers_as_the_full_walk() {
        // A TCP segment with data (ACK|PSH, a timestamp option), a bare ACK, UDP with padding,
        // a SYN (left to the full walk for its options) and a first fragment.
        let mut data = v4_header(6, [10, 0, 0, 1], [10, 0, 1, 5], 32 + 5, 0x4000);
        data.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0x03, 0xe9, 0, 1, 0, 1, 0x80, 0x18]);
        data.extend_from_slice(&[0x01, 0xf5, 0, 0, 0, 0, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        data.extend_from_slice(b"hello");
        let mut ack = v4_header(6, [10, 0, 0, 1], [10, 0, 1, 5], 20, 0);
        ack.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0x03, 0xe9, 0, 1, 0, 1, 0x50, 0x10]);
        ack.extend_from_slice(&[0x01, 0xf5, 0, 0, 0, 0]);
        let mut padded = ipv4_udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            5353,
            53,
            3,
        );
        padded.extend_from_slice(&[0; 6]);
        let mut first_fragment = v4_header(6, [10, 0, 0, 1], [10, 0, 0, 2], 20, 0x2000);
        first_fragment.extend_from_slice(&ack[20..]);
        let base = [data, ack, padded, tcp_syn(), first_fragment];
        // The common case is taken for the first three, not for the SYN or the fragment.
        let taken: Vec<bool> = base.iter().map(|p| parse_v4_tcp_udp(p).is_some()).collect();
        assert_eq!(taken, [true, true, true, false, false]);
        // Whatever the bytes and length, both give the same answer.
        let mut seen = 0;
        for p in &base {
            for n in 0..=p.len() {
                assert_eq!(parse(&p[..n]), parse_any(&p[..n]), "{:?}", &p[..n]);
            }
            for at in 0..p.len() {
                for x in [
                    0u8, 1, 0x02, 0x0f, 0x10, 0x11, 0x20, 0x3f, 0x40, 0x45, 0x50, 0xf0, 0xff,
                ] {
                    let mut q = p.clone();
                    q[at] = x;
                    seen += usize::from(parse_v4_tcp_udp(&q).is_some());
                    assert_eq!(parse(&q), parse_any(&q), "byte {at} = {x}: {q:?}");
                }
            }
        }
        assert!(seen > 1000, "{seen}");
    }

    #[test]
    fn short_and_lying_packets_are_errors_not_panics() {
        let p = tcp_syn();
        for n in 0..p.len() {
            let _ = parse(&p[..n]);
        }
        let mut q = p.clone();
        q[0] = 0x4f; // header longer than the packet
        assert!(parse(&q).is_err());
        let mut r = p;
        r[2..4].copy_from_slice(&10u16.to_be_bytes()); // total < header
        assert_eq!(parse(&r), Err(Error::Malformed));
    }
}
