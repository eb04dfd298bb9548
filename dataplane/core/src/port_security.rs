//! Port security (anti-spoofing), with Neutron's semantics.
//!
//! A port with port security enabled may send:
//! - from its own MAC, or a MAC of one of its allowed address pairs;
//! - IPv4 and IPv6 from an address (or CIDR) allowed with that MAC: its fixed IPs and allowed
//!   pairs, plus the EUI-64 link-local address of the MAC;
//! - from the unspecified address only where address configuration needs it: DHCPv4 (UDP
//!   68 → 67) and ICMPv6 (duplicate address detection, MLD);
//! - ARP whose sender hardware address is the frame's source and whose sender protocol address
//!   is allowed (or 0.0.0.0, an ARP probe);
//! - neighbour advertisements only for targets it may use;
//! - nothing but IPv4, IPv6 and ARP.
//!
//! Everything else is dropped with a [`DropReason`] saying which rule it broke.

use crate::counters::DropReason;
use crate::pipeline::wire_drop;
use crate::responder::nd_target;
use crate::tables::Port;
use crate::wire::arp::{ArpPacket, ArpRepr};
use crate::wire::ethernet::{EtherType, L2Info};
use crate::wire::icmpv6::{Icmpv6Message, Icmpv6Packet};
use crate::wire::ip::IpProtocol;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::udp::UdpPacket;
use std::net::Ipv4Addr;

/// Port security (anti-spoofing), as Neutron defines it: a port sends only from its own MAC and
/// IPs and its allowed address pairs; ARP and neighbour advertisements may only claim those
/// addresses; only IPv4, IPv6 and ARP are allowed. The unspecified source is allowed where
/// address configuration needs it: DHCPv4 (UDP 68 → 67) and ICMPv6 (DAD, MLD).
pub(crate) fn check(port: &Port, l2: &L2Info, frame: &[u8]) -> Result<(), DropReason> {
    let Some(sec) = &port.security else {
        return Ok(());
    };
    let allowed = sec.for_mac(l2.src).ok_or(DropReason::SpoofedMac)?;
    let l3 = frame.get(l2.l3_offset..).ok_or(DropReason::Truncated)?;
    match l2.ethertype {
        EtherType::Ipv4 => {
            // Most packets: a header without options from an allowed address. Everything
            // else takes the full way below.
            if let Some(h) = ipv4::plain_header(l3)
                && allowed.allows_v4(Ipv4Addr::new(h[12], h[13], h[14], h[15]))
            {
                return Ok(());
            }
            let ip = Ipv4Packet::new_checked(l3).map_err(wire_drop)?;
            let src = ip.src_addr();
            if allowed.allows_v4(src) {
                return Ok(());
            }
            if src.is_unspecified() && ip.next_header() == IpProtocol::Udp && ip.frag_offset() == 0
            {
                let udp = UdpPacket::new_checked(ip.payload()).map_err(wire_drop)?;
                if udp.src_port() == 68 && udp.dst_port() == 67 {
                    return Ok(());
                }
            }
            Err(DropReason::SpoofedIp)
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).map_err(wire_drop)?;
            let src = ip.src_addr();
            let src_ok = allowed.allows_v6(src);
            if !src_ok && !src.is_unspecified() {
                return Err(DropReason::SpoofedIp);
            }
            let upper = ip.upper_layer().map_err(wire_drop)?;
            if upper.protocol != IpProtocol::Icmpv6 || upper.fragment.is_some_and(|f| f.offset != 0)
            {
                return if src_ok {
                    Ok(())
                } else {
                    Err(DropReason::SpoofedIp)
                };
            }
            let icmp_bytes = l3.get(upper.offset..).ok_or(DropReason::Truncated)?;
            let icmp = Icmpv6Packet::new_checked(icmp_bytes).map_err(wire_drop)?;
            // A neighbour advertisement claims its target address: only for the port's own.
            if icmp.msg_type() == Icmpv6Message::NeighborAdvert {
                let target = nd_target(icmp_bytes).ok_or(DropReason::Truncated)?;
                if !allowed.allows_v6(target) {
                    return Err(DropReason::SpoofedNd);
                }
            }
            Ok(())
        }
        EtherType::Arp => {
            let arp = ArpPacket::new_checked(l3).map_err(wire_drop)?;
            let repr = ArpRepr::parse(&arp).map_err(wire_drop)?;
            if repr.source_hardware_addr != l2.src {
                return Err(DropReason::SpoofedArp);
            }
            let spa = repr.source_protocol_addr;
            if allowed.allows_v4(spa) || spa.is_unspecified() {
                Ok(())
            } else {
                Err(DropReason::SpoofedArp)
            }
        }
        _ => Err(DropReason::EtherTypeNotAllowed),
    }
}
