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
