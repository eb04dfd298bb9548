//! Packet builders for tests (this crate's, the agent's, the end-to-end tests' and the fuzz
//! and bench fixtures'). Written byte by byte, independently of the wire views' `emit`, so tests
//! built on them check the views against the formats rather than against themselves.
//!
//! Compiled for this crate's tests and with the `testing` feature; never in production builds.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::MacAddr;
use crate::wire::checksum;

/// An Ethernet frame.
pub fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header (checksum set) + UDP header (checksum zero) + `len` bytes of 0x5a.
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let total = u16::try_from(28 + len).unwrap();
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum::finish(checksum::sum(&p, 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&u16::try_from(8 + len).unwrap().to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend(std::iter::repeat_n(0x5a, len));
    p
}

/// An Ethernet/IPv4 ARP payload.
pub fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha.octets());
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha.octets());
    p.extend_from_slice(&tpa.octets());
    p
}

/// IPv6 + ICMPv6 with a correct checksum (`icmp` with its checksum field zero).
pub fn ipv6_icmp(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, icmp: &[u8]) -> Vec<u8> {
    let len = u16::try_from(icmp.len()).unwrap();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[58, hop]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let mut m = icmp.to_vec();
    let s = checksum::pseudo_header_v6(
        &src,
        &dst,
        crate::wire::ip::IpProtocol::Icmpv6,
        u32::from(len),
    );
    let c = checksum::finish(checksum::sum(&m, s));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&m);
    p
}

/// A neighbour solicitation message, with a source link-layer address option if given.
pub fn ns(target: Ipv6Addr, sllao: Option<MacAddr>) -> Vec<u8> {
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    if let Some(mac) = sllao {
        m.extend_from_slice(&[1, 1]);
        m.extend_from_slice(&mac.octets());
    }
    m
}

/// A neighbour advertisement message (solicited, override) without options.
pub fn na(target: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m
}

/// A VXLAN header for `vni` followed by `inner`.
pub fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut p = vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0];
    p.extend_from_slice(inner);
    p
}

/// An IPv4 packet (header without options, checksum set) carrying `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut p = vec![
        0x45,
        0,
        0,
        0,
        0x12,
        0x34,
        if df { 0x40 } else { 0 },
        0,
        ttl,
        proto,
        0,
        0,
    ];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum::finish(checksum::sum(&p, 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An ICMPv4 echo request with `data`, checksum set.
pub fn icmp4_echo(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum::finish(checksum::sum(&m, 0));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A TCP segment (20-byte header, window 64240) with its checksum over the IPv4 pseudo-header.
#[allow(clippy::too_many_arguments)]
pub fn tcp4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let len = u16::try_from(t.len()).unwrap();
    let ph = checksum::pseudo_header_v4(&src, &dst, crate::wire::ip::IpProtocol::Tcp, len);
    let c = checksum::finish(checksum::sum(&t, ph));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP header (checksum zero, which IPv4 allows) and `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An IPv6 packet carrying `payload` after a header with next header `next`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    p.extend_from_slice(&[next, hop]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// A UDP datagram over IPv6 with its checksum set.
pub fn ipv6_udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = udp(sport, dport, payload);
    let len = u32::try_from(u.len()).unwrap();
    let s = checksum::pseudo_header_v6(&src, &dst, crate::wire::ip::IpProtocol::Udp, len);
    let c = checksum::finish(checksum::sum(&u, s));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    ipv6(src, dst, 17, 64, &u)
}

/// A DHCPv4 client message from `mac` (BOOTREQUEST, Ethernet, cookie) with `options` (each
/// `(code, body)`), ended.
pub fn dhcp4(xid: u32, mac: MacAddr, ciaddr: Ipv4Addr, options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 1;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[12..16].copy_from_slice(&ciaddr.octets());
    m[28..34].copy_from_slice(&mac.octets());
    m.extend_from_slice(&[99, 130, 83, 99]);
    for (code, body) in options {
        m.push(*code);
        m.push(u8::try_from(body.len()).unwrap());
        m.extend_from_slice(body);
    }
    m.push(255);
    m
}

/// A DHCPv6 client message: type, transaction id, then options `(code, body)`.
pub fn dhcp6(msg_type: u8, xid: u32, options: &[(u16, &[u8])]) -> Vec<u8> {
    let x = xid.to_be_bytes();
    let mut m = vec![msg_type, x[1], x[2], x[3]];
    for (code, body) in options {
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        m.extend_from_slice(body);
    }
    m
}

/// A router solicitation (ICMPv6 133) with a source link-layer address option.
pub fn rs(mac: MacAddr) -> Vec<u8> {
    let mut m = vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    m.extend_from_slice(&mac.octets());
    m
}
