//! The router node: IPv4 and IPv6 forwarding between a tenant's segments, for routers hosted on
//! this node.
//!
//! ```text
//!  frame to a router MAC ─► l3_input
//!     ARP              replies confirm neighbours (held packets go out)
//!     IPv4 / IPv6      checks ─► own address? ─► local: echo reply, port unreachable, NA
//!                             └► forward: TTL/hop limit (time exceeded) ─► FIB (unreachable)
//!                                 ─► MTU (frag needed / packet too big; IPv4 without DF is
//!                                    fragmented) ─► TTL-1 ─► next hop MAC: bindings, cache, or
//!                                    hold + probe ─► rewrite Ethernet ─► l2_deliver (egress)
//! ```
//!
//! Refused without an error message: martian sources (RFC 1812 §5.3.7: multicast, broadcast,
//! unspecified, loopback; IPv6 link-local or unspecified), non-unicast destinations, IPv4
//! source-routed packets (LSRR/SSRR, as Linux does by default), bad IPv4 header checksums.
//! Other IPv4 options are forwarded as they are. Fragments are forwarded (no reassembly); the
//! router answers nothing sent to it in fragments.
//!
//! ICMP errors (RFC 792, RFC 1812 §4.3.2, RFC 4443) are built in the offending packet's own
//! buffer (its headers move into the headroom), sent back towards the previous hop, limited per
//! router ([`crate::pipeline::ICMP_RATE`]), and never sent about an ICMP error, a non-first
//! fragment, or a packet from a non-unicast source.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::counters::{DropReason, Event};
use crate::ids::RifIdx;
use crate::neighbor::{Held, Miss, NeighKey, Timer};
use crate::packet::PacketBuf;
use crate::pipeline::{Action, Ctx, FibHint, From, NodeResult, wire_drop};
use crate::responder::write_neighbor_advert;
use crate::tables::{FdbDest, Local4, RouterIf};
use crate::wire::MacAddr;
use crate::wire::arp::{ArpPacket, ArpRepr};
use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, L2Info, parse_l2};
use crate::wire::ip::IpProtocol;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::Ipv6Packet;

const ETH: usize = 14;
/// Largest ICMPv4 error quote: the error stays within 576 bytes (RFC 1812 §4.3.2.3).
const ICMP4_QUOTE: usize = 576 - 20 - 8;
/// Largest ICMPv6 error quote: the error stays within the minimum MTU (RFC 4443 §2.4(c)).
const ICMP6_QUOTE: usize = 1280 - 40 - 8;

/// A next hop's address as the one-entry cache of [`LastHop`] compares it: the bits in a
/// `u128` (an IPv4 address in the low 32) and the family. Built in registers from the route or
/// the packet's destination: comparing `IpAddr`s went through a copy on the stack written a
/// byte at a time, whose wider reload waited for the stores (a store-forwarding stall, ~18
/// cycles a packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hop {
    bits: u128,
    v6: bool,
}

impl Hop {
    #[inline(always)]
    fn v4(a: Ipv4Addr) -> Hop {
        Hop {
            bits: u128::from(a.to_bits()),
            v6: false,
        }
    }

    #[inline(always)]
    fn v6(a: Ipv6Addr) -> Hop {
        Hop {
            bits: a.to_bits(),
            v6: true,
        }
    }

    #[inline(always)]
    fn of(a: IpAddr) -> Hop {
        match a {
            IpAddr::V4(a) => Hop::v4(a),
            IpAddr::V6(a) => Hop::v6(a),
        }
    }

    /// The address again.
    fn addr(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from_bits(self.bits))
        } else {
            // An IPv4 address was put in the low 32 bits.
            #[allow(clippy::cast_possible_truncation)]
            IpAddr::V4(Ipv4Addr::from_bits(self.bits as u32))
        }
    }
}

/// The last next hop resolved ([`Ctx::last_hop`]): on interface `rif`, at `hop`, MAC `mac`,
/// and where that MAC lives if a configured binding said so.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastHop {
    rif: RifIdx,
    hop: Hop,
    mac: MacAddr,
    owner: Option<FdbDest>,
}

/// Why a routed packet is not forwarded, with the error the sender gets.
#[derive(Debug, Clone, Copy)]
enum Icmp4 {
    TimeExceeded,
    NetUnreachable,
    HostUnreachable,
    PortUnreachable,
    FragNeeded(u16),
}

#[derive(Debug, Clone, Copy)]
enum Icmp6 {
    TimeExceeded,
    NoRoute,
    AddressUnreachable,
    PortUnreachable,
    TooBig(u32),
}

/// Checks the IPv4 header at the start of `b` (its length, version, checksum, and that it asks
/// for no source route) and returns its fixed part and its length. For the headers
/// `ip4_input` does not check in line: those with options, and malformed ones.
#[inline(never)]
fn ip4_header(b: &[u8]) -> Result<([u8; 20], usize), DropReason> {
    let ip = Ipv4Packet::new_checked(b).map_err(wire_drop)?;
    let hl = ip.header_len();
    // The whole header sums to zero (RFC 1071); `new_checked` made sure `b` holds it.
    let sum_ok = b
        .get(..hl)
        .is_some_and(|h| checksum::finish(checksum::sum(h, 0)) == 0);
    if !sum_ok {
        return Err(DropReason::BadChecksum);
    }
    if hl > 20 && source_routed(ip.options())? {
        return Err(DropReason::SourceRouted);
    }
    Ok((*ip.fixed_header(), hl))
}

/// Not unspecified, loopback (127/8), multicast (224/4), reserved (240/4) or broadcast.
#[inline]
fn unicast_v4(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    !a.is_unspecified() && first != 127 && first < 224
}

fn write_eth(b: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    b[0..6].copy_from_slice(&dst.octets());
    b[6..12].copy_from_slice(&src.octets());
    b[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// An IPv4 header without options, checksum included.
fn write_ipv4(b: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, proto: u8, total: u16, tos: u8) {
    b[..20].fill(0);
    b[0] = 0x45;
    b[1] = tos;
    b[2..4].copy_from_slice(&total.to_be_bytes());
    b[8] = 64;
    b[9] = proto;
    b[12..16].copy_from_slice(&src.octets());
    b[16..20].copy_from_slice(&dst.octets());
    let c = checksum::finish(checksum::sum(&b[..20], 0));
    b[10..12].copy_from_slice(&c.to_be_bytes());
}

fn write_ipv6(b: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: u16, hop: u8) {
    b[..40].fill(0);
    b[0] = 0x60;
    b[4..6].copy_from_slice(&payload.to_be_bytes());
    b[6] = next;
    b[7] = hop;
    b[8..24].copy_from_slice(&src.octets());
    b[24..40].copy_from_slice(&dst.octets());
}

fn icmp6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &mut [u8]) {
    msg[2..4].fill(0);
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let s = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, len);
    let c = checksum::finish(checksum::sum(msg, s));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// The IPv4 address of `rif` on the same network as `peer`, else its first one.
fn v4_towards(rif: &RouterIf, peer: Ipv4Addr) -> Option<Ipv4Addr> {
    rif.v4
        .iter()
        .find(|n| n.contains(peer))
        .or(rif.v4.first())
        .map(|n| n.ip())
}

/// Whether IPv4 options ask for source routing (LSRR 131, SSRR 137). `Err` for a malformed
/// option list.
fn source_routed(opts: &[u8]) -> Result<bool, DropReason> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return Ok(false),
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1).ok_or(DropReason::Malformed)?);
                if len < 2 || i + len > opts.len() {
                    return Err(DropReason::Malformed);
                }
                if kind == 131 || kind == 137 {
                    return Ok(true);
                }
                i += len;
            }
        }
    }
    Ok(false)
}

impl Ctx<'_> {
    /// A frame addressed to router interface `rif` (from a local port, the underlay, or another
    /// router here). `parsed` is its Ethernet header if the caller has read it. Kept out of
    /// line so that the L2 delivery that calls it stays small enough to inline.
    #[inline(never)]
    pub(crate) fn l3_input(
        &mut self,
        rif: RifIdx,
        pkt: &mut PacketBuf,
        parsed: Option<&L2Info>,
        depth: u8,
    ) -> NodeResult {
        self.l3_input_with(rif, pkt, parsed, depth, None)
    }

    /// [`Ctx::l3_input`] for a packet whose route was looked up ahead (`hint`). A copy of its
    /// own, so that the hint costs the packets routed one at a time nothing.
    #[inline(never)]
    pub(crate) fn l3_input_hinted(
        &mut self,
        rif: RifIdx,
        pkt: &mut PacketBuf,
        l2: &L2Info,
        hint: Option<FibHint>,
    ) -> NodeResult {
        self.l3_input_with(rif, pkt, Some(l2), 1, hint)
    }

    #[inline(always)]
    fn l3_input_with(
        &mut self,
        rif: RifIdx,
        pkt: &mut PacketBuf,
        parsed: Option<&L2Info>,
        depth: u8,
        hint: Option<FibHint>,
    ) -> NodeResult {
        let l2 = match parsed {
            Some(l2) => *l2,
            None => parse_l2(pkt.data()).map_err(wire_drop)?,
        };
        if l2.tags != 0 {
            return Err(DropReason::VlanTagged);
        }
        match l2.ethertype {
            EtherType::Ipv4 => self.ip4_input(rif, pkt, l2.l3_offset, depth, hint),
            EtherType::Ipv6 => self.ip6_input(rif, pkt, l2.l3_offset, depth, hint),
            EtherType::Arp => self.arp_input(rif, pkt, l2.l3_offset),
            _ => Err(DropReason::NotRoutable),
        }
    }

    /// ARP addressed to the router: news about a neighbour it is resolving.
    #[inline(never)]
    fn arp_input(&mut self, rif: RifIdx, pkt: &mut PacketBuf, l3: usize) -> NodeResult {
        let arp = ArpPacket::new_checked(pkt.data().get(l3..).ok_or(DropReason::Truncated)?)
            .map_err(wire_drop)?;
        let a = ArpRepr::parse(&arp).map_err(wire_drop)?;
        let iface = &self.t.router_ifs[rif.get()];
        if !a.source_hardware_addr.is_unicast()
            || !iface.v4.iter().any(|n| n.contains(a.source_protocol_addr))
        {
            return Err(DropReason::NotRoutable);
        }
        self.neighbor_learned(
            rif,
            IpAddr::V4(a.source_protocol_addr),
            a.source_hardware_addr,
        );
        Ok(Action::Consumed)
    }

    /// Records a neighbour's MAC and sends the packets that were waiting for it.
    fn neighbor_learned(&mut self, rif: RifIdx, addr: IpAddr, mac: MacAddr) {
        let key = NeighKey { rif, addr };
        self.last_hop = None;
        let mut release = std::mem::take(&mut self.l3.release);
        if self.l3.neighbors.confirm(key, mac, self.now, &mut release) {
            self.c.event(Event::NeighborResolved);
        }
        for mut h in release.drain(..) {
            let r = self.send_routed(&mut h.buf, rif, mac, None, 0);
            self.emit(h.buf, r);
        }
        self.l3.release = release;
    }

    // ---- IPv4 --------------------------------------------------------------------------------

    #[inline(always)]
    fn ip4_input(
        &mut self,
        rif: RifIdx,
        pkt: &mut PacketBuf,
        l3: usize,
        depth: u8,
        hint: Option<FibHint>,
    ) -> NodeResult {
        let t = self.t;
        let iface = &t.router_ifs[rif.get()];
        let router = &t.routers[iface.router.get()];
        // The fixed header, read once; its fields below come from this copy. A header without
        // options is checked here, in line; others by `ip4_header`.
        let (h, hl) = {
            let bytes = pkt.data().get(l3..).ok_or(DropReason::Truncated)?;
            match ipv4::plain_header(bytes) {
                Some(h) => {
                    if !checksum::ipv4_header_ok(h) {
                        return Err(DropReason::BadChecksum);
                    }
                    (*h, 20)
                }
                _ => ip4_header(bytes)?,
            }
        };
        let ip = Ipv4Packet::new_unchecked(&h[..]);
        let (src, dst, ttl, total) = (
            ip.src_addr(),
            ip.dst_addr(),
            ip.hop_limit(),
            usize::from(ip.total_len()),
        );
        // Ethernet padding is not part of the packet.
        pkt.set_len(l3 + total);
        if !unicast_v4(src) {
            return Err(DropReason::Martian);
        }
        // NAT, inbound: to an external address (from outside, or hairpinning from inside).
        let mut dst = dst;
        if let Some(nat) = &router.nat
            && (rif == nat.gateway || nat.is_external(dst))
            && let Some(d) = self.nat_in(iface.router, nat, rif, pkt, l3, dst)?
        {
            dst = d;
        }
        match router.local_v4(dst) {
            Some(Local4::Own(owner)) => {
                let (proto, frag_off) = (ip.next_header(), ip.frag_offset());
                return self.local4(rif, owner, pkt, l3, proto, frag_off, hl, depth);
            }
            Some(Local4::DirectedBroadcast) => return Err(DropReason::NotRoutable),
            None => {}
        }
        if !unicast_v4(dst) {
            return Err(DropReason::NotRoutable);
        }
        if ttl <= 1 {
            return self.icmp4_error(
                rif,
                pkt,
                l3,
                Icmp4::TimeExceeded,
                DropReason::TtlExceeded,
                depth,
            );
        }
        let route = match hint {
            Some(h) if h.rif == rif && !h.v6 && h.dst == u128::from(u32::from(dst)) => {
                router.route(h.route)
            }
            _ => router.route_v4(dst),
        };
        let Some(route) = route else {
            return self.icmp4_error(
                rif,
                pkt,
                l3,
                Icmp4::NetUnreachable,
                DropReason::NoRoute,
                depth,
            );
        };
        let egress = &t.router_ifs[route.rif.get()];
        let mtu = usize::try_from(egress.mtu).unwrap_or(usize::MAX);
        if total > mtu && ip.dont_frag() {
            let m = u16::try_from(egress.mtu).unwrap_or(u16::MAX);
            return self.icmp4_error(
                rif,
                pkt,
                l3,
                Icmp4::FragNeeded(m),
                DropReason::FragmentationNeeded,
                depth,
            );
        }
        // NAT, outbound: leaving by the gateway.
        if let Some(nat) = &router.nat
            && route.rif == nat.gateway
            && rif != nat.gateway
        {
            self.nat_out(iface.router, nat, pkt, l3)?;
        }
        // TTL - 1, checksum updated incrementally (RFC 1624); the checksum is read again, NAT
        // may have changed it.
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut pkt.data_mut()[l3..]);
            let c = checksum::ttl_decremented(ip.checksum());
            ip.set_hop_limit(ttl - 1);
            ip.set_checksum(c);
        }
        self.c.event(Event::Routed);
        let nexthop = route.nexthop.map_or(Hop::v4(dst), Hop::of);
        self.resolve_and_send(pkt, rif, route.rif, nexthop, depth)
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn local4(
        &mut self,
        rif: RifIdx,
        owner: RifIdx,
        pkt: &mut PacketBuf,
        l3: usize,
        proto: IpProtocol,
        frag_off: u16,
        hl: usize,
        depth: u8,
    ) -> NodeResult {
        let more = pkt.data().get(l3 + 6).is_some_and(|b| b & 0x20 != 0);
        if frag_off != 0 || more {
            return Err(DropReason::ToRouter);
        }
        match proto {
            IpProtocol::Icmp => {
                let d = pkt.data();
                let icmp = d.get(l3 + hl..).ok_or(DropReason::Truncated)?;
                if icmp.len() < 8 || icmp[0] != 8 || icmp[1] != 0 {
                    // Only echo requests are answered; replies and errors are not for us.
                    return Err(DropReason::ToRouter);
                }
                if checksum::finish(checksum::sum(icmp, 0)) != 0 {
                    return Err(DropReason::BadChecksum);
                }
                let prev = MacAddr::from_bytes(&d[6..]).unwrap_or(MacAddr::ZERO);
                let iface_mac = self.t.router_ifs[rif.get()].mac;
                let d = pkt.data_mut();
                write_eth(d, prev, iface_mac, 0x0800);
                // Swap addresses (the reply comes from the address pinged), TTL 64.
                let (s, t) = d[l3 + 12..l3 + 20].split_at_mut(4);
                s.swap_with_slice(t);
                d[l3 + 8] = 64;
                d[l3 + 10..l3 + 12].fill(0);
                let c = checksum::finish(checksum::sum(&d[l3..l3 + hl], 0));
                d[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
                // Echo request (8) -> reply (0): incremental checksum.
                let ic = u16::from_be_bytes([d[l3 + hl + 2], d[l3 + hl + 3]]);
                d[l3 + hl] = 0;
                let ic = checksum::update16(ic, 0x0800, 0x0000);
                d[l3 + hl + 2..l3 + hl + 4].copy_from_slice(&ic.to_be_bytes());
                self.c.event(Event::EchoReplied);
                let seg = self.t.router_ifs[rif.get()].seg;
                self.l2_deliver(seg, pkt, prev, From::Router(rif), depth)
            }
            IpProtocol::Udp => {
                let _ = owner;
                self.icmp4_error(
                    rif,
                    pkt,
                    l3,
                    Icmp4::PortUnreachable,
                    DropReason::ToRouter,
                    depth,
                )
            }
            _ => Err(DropReason::ToRouter),
        }
    }

    /// Turns the packet into the ICMPv4 error for it, sent back to the previous hop through
    /// `rif`. `reason` is counted as the original packet's drop either way.
    #[cold]
    #[inline(never)]
    fn icmp4_error(
        &mut self,
        rif: RifIdx,
        pkt: &mut PacketBuf,
        l3: usize,
        kind: Icmp4,
        reason: DropReason,
        depth: u8,
    ) -> NodeResult {
        self.c.drop(reason);
        let t = self.t;
        let iface = &t.router_ifs[rif.get()];
        let d = pkt.data();
        let Some(prev) = MacAddr::from_bytes(&d[6..]) else {
            return Ok(Action::Consumed);
        };
        let ip = Ipv4Packet::new_unchecked(&d[l3..]);
        let orig_src = ip.src_addr();
        let orig_dst = ip.dst_addr();
        let hl = ip.header_len();
        let is_error = ip.next_header() == IpProtocol::Icmp
            && d.get(l3 + hl)
                .is_some_and(|ty| matches!(ty, 3 | 4 | 5 | 11 | 12));
        if !unicast_v4(orig_src) || ip.frag_offset() != 0 || is_error {
            return Ok(Action::Consumed);
        }
        // Port unreachable comes from the address probed; the others from the interface.
        let src = match kind {
            Icmp4::PortUnreachable => Some(orig_dst),
            _ => v4_towards(iface, orig_src),
        };
        let Some(src) = src else {
            return Ok(Action::Consumed);
        };
        if !self
            .l3
            .icmp_limit
            .get_mut(iface.router.get())
            .is_some_and(|b| b.allow(self.now))
        {
            self.c.event(Event::IcmpRateLimited);
            return Ok(Action::Consumed);
        }
        let (ty, code, word) = match kind {
            Icmp4::TimeExceeded => (11, 0, 0u32),
            Icmp4::NetUnreachable => (3, 0, 0),
            Icmp4::HostUnreachable => (3, 1, 0),
            Icmp4::PortUnreachable => (3, 3, 0),
            Icmp4::FragNeeded(mtu) => (3, 4, u32::from(mtu)),
        };
        let quote = (pkt.len() - l3).min(ICMP4_QUOTE);
        pkt.advance(l3);
        pkt.set_len(quote);
        let Some(h) = pkt.prepend(ETH + 28) else {
            return Err(DropReason::NoBuffer);
        };
        let total = u16::try_from(28 + quote).unwrap_or(u16::MAX);
        write_eth(h, prev, iface.mac, 0x0800);
        write_ipv4(&mut h[ETH..], src, orig_src, 1, total, 0xc0);
        let m = &mut h[ETH + 20..ETH + 28];
        m[0] = ty;
        m[1] = code;
        m[2..4].fill(0);
        m[4..8].copy_from_slice(&word.to_be_bytes());
        let d = pkt.data_mut();
        let c = checksum::finish(checksum::sum(&d[ETH + 20..], 0));
        d[ETH + 22..ETH + 24].copy_from_slice(&c.to_be_bytes());
        self.c.event(Event::IcmpErrorSent);
        self.l2_deliver(iface.seg, pkt, prev, From::Router(rif), depth)
    }

    // ---- IPv6 --------------------------------------------------------------------------------

    #[inline(always)]
    fn ip6_input(
        &mut self,
        rif: RifIdx,
        pkt: &mut PacketBuf,
        l3: usize,
        depth: u8,
        hint: Option<FibHint>,
    ) -> NodeResult {
        let t = self.t;
        let iface = &t.router_ifs[rif.get()];
        let router = &t.routers[iface.router.get()];
        let (src, dst, hop, len, upper) = {
            let ip = Ipv6Packet::new_checked(pkt.data().get(l3..).ok_or(DropReason::Truncated)?)
                .map_err(wire_drop)?;
            (
                ip.src_addr(),
                ip.dst_addr(),
                ip.hop_limit(),
                ip.total_len(),
                ip.upper_layer().map_err(wire_drop)?,
            )
        };
        pkt.set_len(l3 + len);
        if src.is_multicast() || src.is_unspecified() {
            return Err(DropReason::Martian);
        }
        if let Some(owner) = router.owns_v6(dst) {
            return self.local6(
                rif,
                owner,
                pkt,
                l3,
                upper.protocol,
                upper.offset,
                upper.fragment.is_some(),
                depth,
            );
        }
        if dst.is_multicast() || dst.is_unspecified() || dst.is_loopback() {
            return Err(DropReason::NotRoutable);
        }
        if src.is_unicast_link_local() || dst.is_unicast_link_local() {
            // Link-local addresses are never forwarded (RFC 4291 §2.5.6).
            return Err(DropReason::NotRoutable);
        }
        if hop <= 1 {
            return self.icmp6_error(
                rif,
                pkt,
                l3,
                Icmp6::TimeExceeded,
                DropReason::TtlExceeded,
                depth,
            );
        }
        let route = match hint {
            Some(h) if h.rif == rif && h.v6 && h.dst == u128::from(dst) => router.route(h.route),
            _ => router.route_v6(dst),
        };
        let Some(route) = route else {
            return self.icmp6_error(rif, pkt, l3, Icmp6::NoRoute, DropReason::NoRoute, depth);
        };
        let egress = &t.router_ifs[route.rif.get()];
        if len > usize::try_from(egress.mtu).unwrap_or(usize::MAX) {
            return self.icmp6_error(
                rif,
                pkt,
                l3,
                Icmp6::TooBig(egress.mtu),
                DropReason::FragmentationNeeded,
                depth,
            );
        }
        pkt.data_mut()[l3 + 7] = hop - 1;
        self.c.event(Event::Routed);
        let nexthop = route.nexthop.map_or(Hop::v6(dst), Hop::of);
        self.resolve_and_send(pkt, rif, route.rif, nexthop, depth)
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn local6(
        &mut self,
        rif: RifIdx,
        owner: RifIdx,
        pkt: &mut PacketBuf,
        l3: usize,
        proto: IpProtocol,
        off: usize,
        fragment: bool,
        depth: u8,
    ) -> NodeResult {
        if fragment {
            return Err(DropReason::ToRouter);
        }
        let t = self.t;
        let iface = &t.router_ifs[rif.get()];
        match proto {
            IpProtocol::Icmpv6 => {
                let d = pkt.data();
                let (src, dst) = {
                    let ip = Ipv6Packet::new_unchecked(&d[l3..]);
                    (ip.src_addr(), ip.dst_addr())
                };
                let m = d.get(l3 + off..).ok_or(DropReason::Truncated)?;
                if m.len() < 8 {
                    return Err(DropReason::Truncated);
                }
                let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
                let s = checksum::pseudo_header_v6(&src, &dst, IpProtocol::Icmpv6, len);
                if checksum::finish(checksum::sum(m, s)) != 0 {
                    return Err(DropReason::BadChecksum);
                }
                let prev = MacAddr::from_bytes(&d[6..]).unwrap_or(MacAddr::ZERO);
                match m[0] {
                    128 if m[1] == 0 => {
                        let d = pkt.data_mut();
                        write_eth(d, prev, iface.mac, 0x86dd);
                        let (a, b) = d[l3 + 8..l3 + 40].split_at_mut(16);
                        a.swap_with_slice(b);
                        d[l3 + 7] = 64;
                        // Echo request (128) -> reply (129); swapping addresses keeps the
                        // pseudo-header sum.
                        let c = u16::from_be_bytes([d[l3 + off + 2], d[l3 + off + 3]]);
                        d[l3 + off] = 129;
                        let c = checksum::update16(c, 0x8000, 0x8100);
                        d[l3 + off + 2..l3 + off + 4].copy_from_slice(&c.to_be_bytes());
                        self.c.event(Event::EchoReplied);
                        self.l2_deliver(iface.seg, pkt, prev, From::Router(rif), depth)
                    }
                    // A unicast neighbour solicitation (reachability probe) for our address.
                    135 if m.len() >= 24 && m[1] == 0 => {
                        let target =
                            Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).unwrap_or([0; 16]));
                        if t.routers[iface.router.get()].owns_v6(target).is_none() {
                            return Err(DropReason::ToRouter);
                        }
                        let owner_mac = t.router_ifs[owner.get()].mac;
                        if !write_neighbor_advert(pkt, prev, owner_mac, target, src, true, true) {
                            return Err(DropReason::NoBuffer);
                        }
                        self.c.event(Event::NdReplied);
                        self.l2_deliver(iface.seg, pkt, prev, From::Router(rif), depth)
                    }
                    // A neighbour advertisement: news about a neighbour being resolved.
                    136 if m.len() >= 24 && m[1] == 0 => {
                        let target =
                            Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).unwrap_or([0; 16]));
                        let mut opts = &m[24..];
                        let mut tlla = None;
                        while opts.len() >= 8 {
                            let olen = usize::from(opts[1]) * 8;
                            if olen == 0 || olen > opts.len() {
                                break;
                            }
                            if opts[0] == 2 && olen == 8 {
                                tlla = MacAddr::from_bytes(&opts[2..8]);
                            }
                            opts = &opts[olen..];
                        }
                        let on_link = target.is_unicast_link_local()
                            || iface.v6.iter().any(|n| n.contains(target));
                        match tlla {
                            Some(mac) if mac.is_unicast() && on_link => {
                                self.neighbor_learned(rif, IpAddr::V6(target), mac);
                                Ok(Action::Consumed)
                            }
                            _ => Err(DropReason::ToRouter),
                        }
                    }
                    _ => Err(DropReason::ToRouter),
                }
            }
            IpProtocol::Udp => self.icmp6_error(
                rif,
                pkt,
                l3,
                Icmp6::PortUnreachable,
                DropReason::ToRouter,
                depth,
            ),
            _ => Err(DropReason::ToRouter),
        }
    }

    /// Turns the packet into the ICMPv6 error for it, sent back to the previous hop.
    #[cold]
    #[inline(never)]
    fn icmp6_error(
        &mut self,
        rif: RifIdx,
        pkt: &mut PacketBuf,
        l3: usize,
        kind: Icmp6,
        reason: DropReason,
        depth: u8,
    ) -> NodeResult {
        self.c.drop(reason);
        let t = self.t;
        let iface = &t.router_ifs[rif.get()];
        let d = pkt.data();
        let Some(prev) = MacAddr::from_bytes(&d[6..]) else {
            return Ok(Action::Consumed);
        };
        let ip = Ipv6Packet::new_unchecked(&d[l3..]);
        let (orig_src, orig_dst) = (ip.src_addr(), ip.dst_addr());
        let is_error = match ip.upper_layer() {
            Ok(u) => {
                u.protocol == IpProtocol::Icmpv6
                    && u.fragment.is_none_or(|f| f.offset == 0)
                    && d.get(l3 + u.offset).is_some_and(|ty| *ty < 128)
            }
            Err(_) => false,
        };
        let multicast_ok = matches!(kind, Icmp6::TooBig(_));
        if orig_src.is_multicast()
            || orig_src.is_unspecified()
            || is_error
            || (orig_dst.is_multicast() && !multicast_ok)
        {
            return Ok(Action::Consumed);
        }
        let src = match kind {
            Icmp6::PortUnreachable => orig_dst,
            _ if orig_src.is_unicast_link_local() => iface.link_local,
            _ => iface.primary_v6(),
        };
        if !self
            .l3
            .icmp_limit
            .get_mut(iface.router.get())
            .is_some_and(|b| b.allow(self.now))
        {
            self.c.event(Event::IcmpRateLimited);
            return Ok(Action::Consumed);
        }
        let (ty, code, word) = match kind {
            Icmp6::TimeExceeded => (3, 0, 0u32),
            Icmp6::NoRoute => (1, 0, 0),
            Icmp6::AddressUnreachable => (1, 3, 0),
            Icmp6::PortUnreachable => (1, 4, 0),
            Icmp6::TooBig(mtu) => (2, 0, mtu),
        };
        let quote = (pkt.len() - l3).min(ICMP6_QUOTE);
        pkt.advance(l3);
        pkt.set_len(quote);
        let Some(h) = pkt.prepend(ETH + 48) else {
            return Err(DropReason::NoBuffer);
        };
        let payload = u16::try_from(8 + quote).unwrap_or(u16::MAX);
        write_eth(h, prev, iface.mac, 0x86dd);
        write_ipv6(&mut h[ETH..], src, orig_src, 58, payload, 64);
        let m = &mut h[ETH + 40..ETH + 48];
        m[0] = ty;
        m[1] = code;
        m[4..8].copy_from_slice(&word.to_be_bytes());
        icmp6_checksum(&src, &orig_src, &mut pkt.data_mut()[ETH + 40..]);
        self.c.event(Event::IcmpErrorSent);
        self.l2_deliver(iface.seg, pkt, prev, From::Router(rif), depth)
    }

    // ---- next hops ---------------------------------------------------------------------------

    /// Finds the next hop's MAC (the last one found, configured bindings, then the cache) and
    /// sends the packet; or holds it and probes for the MAC (the probe goes out in the packet's
    /// place).
    #[inline(always)]
    fn resolve_and_send(
        &mut self,
        pkt: &mut PacketBuf,
        ingress: RifIdx,
        egress: RifIdx,
        nexthop: Hop,
        depth: u8,
    ) -> NodeResult {
        if let Some(last) = &self.last_hop
            && last.rif == egress
            && last.hop == nexthop
        {
            let (mac, owner) = (last.mac, last.owner);
            return self.send_routed(pkt, egress, mac, owner, depth);
        }
        let seg = self.t.router_ifs[egress.get()].seg;
        let binding = match nexthop.addr() {
            IpAddr::V4(a) => self.t.neighbour_v4(seg, a),
            IpAddr::V6(a) => self.t.neighbour_v6(seg, a),
        };
        match binding {
            // A configured binding says where its MAC lives, as the FDB would.
            Some(b) if b.owner != FdbDest::Router(egress) => {
                self.last_hop = Some(LastHop {
                    rif: egress,
                    hop: nexthop,
                    mac: b.mac,
                    owner: Some(b.owner),
                });
                self.send_routed(pkt, egress, b.mac, Some(b.owner), depth)
            }
            Some(_) => Err(DropReason::RoutingLoop),
            None => self.resolve_dynamic(pkt, ingress, egress, nexthop, depth),
        }
    }

    /// [`Ctx::resolve_and_send`] for a next hop without a configured binding: the neighbour
    /// cache, else hold and probe.
    #[inline(never)]
    fn resolve_dynamic(
        &mut self,
        pkt: &mut PacketBuf,
        ingress: RifIdx,
        egress: RifIdx,
        nexthop: Hop,
        depth: u8,
    ) -> NodeResult {
        let iface = &self.t.router_ifs[egress.get()];
        let key = NeighKey {
            rif: egress,
            addr: nexthop.addr(),
        };
        if let Some(mac) = self.l3.neighbors.lookup(key, self.now) {
            self.last_hop = Some(LastHop {
                rif: egress,
                hop: nexthop,
                mac,
                owner: None,
            });
            return self.send_routed(pkt, egress, mac, None, depth);
        }
        self.last_hop = None;
        match self.l3.neighbors.miss(key, iface.router, self.now) {
            Miss::Full => Err(DropReason::NeighborTableFull),
            miss => {
                let Some(spare) = self.pool.alloc() else {
                    return Err(DropReason::NoBuffer);
                };
                let held = std::mem::replace(pkt, spare);
                if let Err(h) = self.l3.neighbors.hold(key, Held { buf: held, ingress }) {
                    let spare = std::mem::replace(pkt, h.buf);
                    self.pool.free(spare);
                    return Err(DropReason::NeighborQueueFull);
                }
                if miss == Miss::Probe {
                    self.probe(key, pkt, depth)
                } else {
                    Ok(Action::Consumed)
                }
            }
        }
    }

    /// Writes the routed packet's Ethernet header for `mac` and delivers it on `egress`'s
    /// segment, fragmenting an IPv4 packet larger than the interface's MTU (the forwarding checks
    /// only let those without DF through). `owner`, if known, is where `mac` lives in that
    /// segment (from a configured binding: no FDB lookup).
    #[inline(always)]
    pub(crate) fn send_routed(
        &mut self,
        pkt: &mut PacketBuf,
        egress: RifIdx,
        mac: MacAddr,
        owner: Option<FdbDest>,
        depth: u8,
    ) -> NodeResult {
        let iface = &self.t.router_ifs[egress.get()];
        let (seg, src_mac, mtu) = (
            iface.seg,
            iface.mac,
            usize::try_from(iface.mtu).unwrap_or(usize::MAX),
        );
        {
            let d = pkt.data_mut();
            if d.len() < ETH {
                return Err(DropReason::Truncated);
            }
            d[0..6].copy_from_slice(&mac.octets());
            d[6..12].copy_from_slice(&src_mac.octets());
        }
        let is_v4 = pkt.data()[12..14] == [0x08, 0x00];
        if is_v4 && pkt.len() - ETH > mtu {
            return self.fragment4(pkt, egress, mac, mtu, depth);
        }
        match owner {
            Some(dest) if !mac.is_multicast() => {
                self.deliver_to(seg, pkt, Some(dest), None, From::Router(egress), depth)
            }
            _ => self.l2_deliver(seg, pkt, mac, From::Router(egress), depth),
        }
    }

    /// Splits an IPv4 packet into fragments of at most `mtu` bytes (RFC 791): the first stays in
    /// `pkt`, the others are made from the pool and go out through `generated`. Options marked
    /// "copied" are repeated in every fragment.
    #[cold]
    #[inline(never)]
    fn fragment4(
        &mut self,
        pkt: &mut PacketBuf,
        egress: RifIdx,
        mac: MacAddr,
        mtu: usize,
        depth: u8,
    ) -> NodeResult {
        let seg = self.t.router_ifs[egress.get()].seg;
        let (hl, total, off0, mf0) = {
            let ip = Ipv4Packet::new_checked(&pkt.data()[ETH..]).map_err(wire_drop)?;
            (
                ip.header_len(),
                usize::from(ip.total_len()),
                ip.frag_offset(),
                ip.more_frags(),
            )
        };
        // The header of later fragments: the fixed part and the copied options, padded.
        let mut later = [0u8; 60];
        later[..20].copy_from_slice(&pkt.data()[ETH..ETH + 20]);
        let mut lhl = 20;
        {
            let opts = &pkt.data()[ETH + 20..ETH + hl];
            let mut i = 0;
            while i < opts.len() {
                match opts[i] {
                    0 => break,
                    1 => i += 1,
                    kind => {
                        let len = usize::from(opts.get(i + 1).copied().unwrap_or(0)).max(2);
                        let end = (i + len).min(opts.len());
                        if kind & 0x80 != 0 {
                            later[lhl..lhl + (end - i)].copy_from_slice(&opts[i..end]);
                            lhl += end - i;
                        }
                        i = end;
                    }
                }
            }
            lhl = lhl.div_ceil(4) * 4;
        }
        later[0] = 0x40 | u8::try_from(lhl / 4).unwrap_or(5);
        let data_len = total - hl;
        let first_chunk = ((mtu - hl) / 8) * 8;
        let later_chunk = ((mtu - lhl) / 8) * 8;
        if first_chunk == 0 || later_chunk == 0 {
            return Err(DropReason::FragmentationNeeded);
        }
        let payload_at = ETH + hl;
        // Later fragments first (they read the payload still in `pkt`).
        let mut at = first_chunk;
        while at < data_len {
            let n = later_chunk.min(data_len - at);
            let last = at + n == data_len;
            let Some(mut b) = self.pool.alloc() else {
                self.c.drop(DropReason::NoBuffer);
                return Err(DropReason::NoBuffer);
            };
            if !b.set_len(ETH + lhl + n) {
                self.pool.free(b);
                return Err(DropReason::TooBig);
            }
            let src = pkt.data();
            let dst = b.data_mut();
            dst[..ETH].copy_from_slice(&src[..ETH]);
            dst[ETH..ETH + lhl].copy_from_slice(&later[..lhl]);
            dst[ETH + lhl..].copy_from_slice(&src[payload_at + at..payload_at + at + n]);
            let mut ip = Ipv4Packet::new_unchecked(&mut dst[ETH..]);
            ip.set_total_len(u16::try_from(lhl + n).unwrap_or(u16::MAX));
            let off = off0 + u16::try_from(at).unwrap_or(u16::MAX);
            ip.set_frag_offset(off);
            ip.set_more_frags(!last || mf0);
            ip.fill_checksum();
            self.c.event(Event::Fragmented);
            let r = self.l2_deliver(seg, &mut b, mac, From::Router(egress), depth);
            self.emit(b, r);
            at += n;
        }
        pkt.set_len(ETH + hl + first_chunk);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut pkt.data_mut()[ETH..]);
            ip.set_total_len(u16::try_from(hl + first_chunk).unwrap_or(u16::MAX));
            ip.set_more_frags(true);
            ip.fill_checksum();
        }
        self.l2_deliver(seg, pkt, mac, From::Router(egress), depth)
    }

    /// Writes an ARP request or neighbour solicitation for `key` into `buf` and delivers it.
    fn probe(&mut self, key: NeighKey, buf: &mut PacketBuf, depth: u8) -> NodeResult {
        let iface = &self.t.router_ifs[key.rif.get()];
        buf.reset();
        match key.addr {
            IpAddr::V4(target) => {
                let Some(spa) = v4_towards(iface, target) else {
                    return Err(DropReason::NotRoutable);
                };
                if !buf.set_len(ETH + 28) {
                    return Err(DropReason::NoBuffer);
                }
                let d = buf.data_mut();
                write_eth(d, MacAddr::BROADCAST, iface.mac, 0x0806);
                let a = &mut d[ETH..];
                a[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                a[8..14].copy_from_slice(&iface.mac.octets());
                a[14..18].copy_from_slice(&spa.octets());
                a[18..24].fill(0);
                a[24..28].copy_from_slice(&target.octets());
                self.c.event(Event::ArpRequested);
                self.l2_deliver(
                    iface.seg,
                    buf,
                    MacAddr::BROADCAST,
                    From::Router(key.rif),
                    depth,
                )
            }
            IpAddr::V6(target) => {
                let o = target.octets();
                let sn = Ipv6Addr::from([
                    0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
                ]);
                let dst_mac = MacAddr::ipv6_multicast(sn);
                if !buf.set_len(ETH + 40 + 32) {
                    return Err(DropReason::NoBuffer);
                }
                let d = buf.data_mut();
                write_eth(d, dst_mac, iface.mac, 0x86dd);
                write_ipv6(&mut d[ETH..], iface.link_local, sn, 58, 32, 255);
                let m = &mut d[ETH + 40..];
                m[..8].copy_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
                m[8..24].copy_from_slice(&o);
                m[24] = 1;
                m[25] = 1;
                m[26..32].copy_from_slice(&iface.mac.octets());
                icmp6_checksum(&iface.link_local, &sn, m);
                self.c.event(Event::NdRequested);
                self.l2_deliver(iface.seg, buf, dst_mac, From::Router(key.rif), depth)
            }
        }
    }

    /// Neighbour timers: probes again, or gives up (the held packets' senders get a host /
    /// address unreachable error, as many as the ICMP budget allows).
    pub(crate) fn neighbor_timers(&mut self) {
        let mut timers = std::mem::take(&mut self.l3.timers);
        self.last_hop = None;
        self.l3.neighbors.handle_timeout(self.now, &mut timers);
        for t in timers.drain(..) {
            match t {
                Timer::Probe(key) => {
                    let Some(mut b) = self.pool.alloc() else {
                        self.c.drop(DropReason::NoBuffer);
                        continue;
                    };
                    let r = self.probe(key, &mut b, 0);
                    self.emit(b, r);
                }
                Timer::Failed(_, held) => {
                    for mut h in held {
                        let l3 = parse_l2(h.buf.data()).map(|l| l.l3_offset).unwrap_or(ETH);
                        let r = if h.buf.data().get(12..14) == Some(&[0x86, 0xdd][..]) {
                            self.icmp6_error(
                                h.ingress,
                                &mut h.buf,
                                l3,
                                Icmp6::AddressUnreachable,
                                DropReason::NeighborUnresolved,
                                0,
                            )
                        } else {
                            self.icmp4_error(
                                h.ingress,
                                &mut h.buf,
                                l3,
                                Icmp4::HostUnreachable,
                                DropReason::NeighborUnresolved,
                                0,
                            )
                        };
                        self.emit(h.buf, r);
                    }
                }
            }
        }
        self.l3.timers = timers;
    }
}
