//! Local answers to address resolution: ARP requests (RFC 826) and IPv6 neighbour
//! solicitations (RFC 4861) for addresses the configuration binds in the segment are answered by
//! the node itself, out of the port they came from, instead of being flooded across the overlay
//! (what Neutron calls the ARP responder and OVN `ls_in_arp_rsp`).
//!
//! Replies are built in place in the request's buffer: no allocation, no copy.
//!
//! Not answered (they take their normal way): replies, gratuitous ARP, requests for an address
//! of the asking port itself (a VM probing its own address must not hear an answer), anything
//! that is not a well-formed request.

use std::net::Ipv6Addr;

use crate::ids::SegIdx;
use crate::packet::PacketBuf;
use crate::tables::{Binding, FdbDest, Tables};
use crate::wire::MacAddr;
use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{EtherType, EthernetFrame, L2Info};
use crate::wire::icmpv6::{Icmpv6Message, Icmpv6Packet};
use crate::wire::ip::IpProtocol;
use crate::wire::ipv6::Ipv6Packet;

/// The target address of a neighbour solicitation or advertisement (RFC 4861 §4.3, §4.4):
/// bytes 8..24 of the ICMPv6 message.
pub(crate) fn nd_target(icmp: &[u8]) -> Option<Ipv6Addr> {
    let b: [u8; 16] = icmp.get(8..24)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

/// Rewrites an ARP request for a bound address into the reply, in place. `false` (and the
/// packet untouched) when the request is not one to answer here.
pub(crate) fn arp_reply(
    t: &Tables,
    seg: SegIdx,
    l2: &L2Info,
    pkt: &mut PacketBuf,
    answer_for: impl Fn(FdbDest) -> bool,
) -> Option<Binding> {
    let l3 = l2.l3_offset;
    let bytes = pkt.data().get(l3..)?;
    let arp = ArpPacket::new_checked(bytes).ok()?;
    let req = ArpRepr::parse(&arp).ok()?;
    if req.operation != ArpOperation::Request
        || req.target_protocol_addr == req.source_protocol_addr
    {
        // Replies and gratuitous ARP go their normal way.
        return None;
    }
    let b = t.neighbour_v4(seg, req.target_protocol_addr)?;
    if !answer_for(b.owner) {
        // E.g. a VM probing its own address (RFC 5227) must not hear itself answered.
        return None;
    }
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: b.mac,
        source_protocol_addr: req.target_protocol_addr,
        target_hardware_addr: req.source_hardware_addr,
        target_protocol_addr: req.source_protocol_addr,
    };
    let data = pkt.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut data[..]);
    eth.set_dst_addr(l2.src);
    eth.set_src_addr(b.mac);
    let arp_bytes = data.get_mut(l3..)?;
    reply.emit(&mut ArpPacket::new_unchecked(arp_bytes));
    Some(b)
}

/// Answers a neighbour solicitation for a bound address with a neighbour advertisement built in
/// place (RFC 4861 §7.2.4). `false` (and the packet untouched) when it is not one to answer.
pub(crate) fn nd_reply(
    t: &Tables,
    seg: SegIdx,
    l2: &L2Info,
    pkt: &mut PacketBuf,
    answer_for: impl Fn(FdbDest) -> bool,
) -> Option<Binding> {
    let (src, target) = solicitation(l2, pkt.data())?;
    let b = t.neighbour_v6(seg, target)?;
    if !answer_for(b.owner) {
        return None;
    }
    // A solicitation from the unspecified address (duplicate address detection) is answered to
    // all nodes, unsolicited (RFC 4861 §7.2.4).
    let (dst_ip, dst_mac, solicited) = if src.is_unspecified() {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        (all_nodes, MacAddr::ipv6_multicast(all_nodes), false)
    } else {
        (src, l2.src, true)
    };
    let router = matches!(b.owner, FdbDest::Router(_));
    write_neighbor_advert(pkt, dst_mac, b.mac, target, dst_ip, solicited, router).then_some(b)
}

/// `(source address, target)` of a valid neighbour solicitation (RFC 4861 §7.1.1): plain IPv6
/// carrying ICMPv6 (no extension headers), hop limit 255, code 0, a correct checksum, a unicast
/// target.
fn solicitation(l2: &L2Info, frame: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let ip = Ipv6Packet::new_checked(frame.get(l2.l3_offset..)?).ok()?;
    if ip.next_header() != IpProtocol::Icmpv6 || ip.hop_limit() != 255 {
        return None;
    }
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    if icmp.msg_type() != Icmpv6Message::NeighborSolicit || icmp.msg_code() != 0 {
        return None;
    }
    if !icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()) {
        return None;
    }
    let target = nd_target(ip.payload())?;
    if target.is_multicast() {
        return None;
    }
    Some((ip.src_addr(), target))
}

/// Length of the neighbour advertisement we send: Ethernet 14 + IPv6 40 + NA 24 + target
/// link-layer address option 8.
const NA_FRAME_LEN: usize = 14 + 40 + 24 + 8;

/// Replaces the packet with a neighbour advertisement for `target` owned by `owner_mac`, with
/// the target link-layer address option and the Override flag (we answer with authority, from
/// the configuration). `false` if the buffer cannot hold it.
pub(crate) fn write_neighbor_advert(
    pkt: &mut PacketBuf,
    dst_mac: MacAddr,
    owner_mac: MacAddr,
    target: Ipv6Addr,
    dst_ip: Ipv6Addr,
    solicited: bool,
    router: bool,
) -> bool {
    if !pkt.set_len(NA_FRAME_LEN) {
        return false;
    }
    let data = pkt.data_mut();
    let (eth_bytes, rest) = data.split_at_mut(14);
    let mut eth = EthernetFrame::new_unchecked(eth_bytes);
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(owner_mac);
    eth.set_ethertype(EtherType::Ipv6);
    let (ip_bytes, icmp_bytes) = rest.split_at_mut(40);
    let mut ip = Ipv6Packet::new_unchecked(ip_bytes);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len(32);
    ip.set_next_header(IpProtocol::Icmpv6);
    ip.set_hop_limit(255);
    ip.set_src_addr(target);
    ip.set_dst_addr(dst_ip);
    // RFC 4861 §4.4: type 136, code 0, R|S|O flags, reserved, target, options.
    icmp_bytes[0] = u8::from(Icmpv6Message::NeighborAdvert);
    icmp_bytes[1] = 0;
    icmp_bytes[2..4].fill(0);
    // Router | Solicited | Override.
    icmp_bytes[4] = if router { 0x80 } else { 0 } | if solicited { 0x60 } else { 0x20 };
    icmp_bytes[5..8].fill(0);
    icmp_bytes[8..24].copy_from_slice(&target.octets());
    icmp_bytes[24] = 2; // target link-layer address
    icmp_bytes[25] = 1; // length in units of 8 octets
    icmp_bytes[26..32].copy_from_slice(&owner_mac.octets());
    let mut icmp = Icmpv6Packet::new_unchecked(icmp_bytes);
    icmp.fill_checksum(&target, &dst_ip);
    true
}
