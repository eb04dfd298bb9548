//! Local services for the VMs on this node's ports: DHCPv4 (RFC 2131), DHCPv6 (RFC 8415) and
//! router advertisements (RFC 4861), answered from the configuration.
//!
//! Every node answers its own ports (as OVN does), so a VM's address configuration never
//! depends on the node hosting its router. Requests reach these functions through the punt step
//! of the pipeline, already within the port's rate limit; replies are built in the request's
//! buffer and sent back out of the port it came from.
//!
//! - DHCPv4: DISCOVER → OFFER, REQUEST → ACK (NAK when the client asks for another address),
//!   INFORM → ACK, RELEASE and DECLINE are noted. Options: subnet mask, router, DNS servers,
//!   domain, host name, MTU (26), classless static routes (121, with the default route, since
//!   clients that take 121 ignore option 3), lease, T1, T2, broadcast address.
//! - Router advertisements answer router solicitations, and go out unsolicited every 200 to
//!   600 s: prefix information (A flag unless addresses come from stateful DHCPv6), M and O
//!   flags from the subnets' `ipv6_address_mode`, MTU, source link-layer address and RDNSS.
//!
//! A port without a DHCP binding gets nothing (counted); malformed requests are counted drops.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::config::Ipv6Mode;
use crate::counters::{DropReason, Event};
use crate::ids::{PortIdx, SegIdx};
use crate::packet::PacketBuf;
use crate::pipeline::{Action, Ctx, NodeResult, wire_drop};
use crate::tables::Services;
use crate::wire::MacAddr;
use crate::wire::checksum;
use crate::wire::dhcpv4::{
    ClasslessRoute, DhcpMessageType, DhcpPacket, DhcpReplyRepr, DhcpRequestRepr,
};
use crate::wire::ethernet::L2Info;
use crate::wire::icmpv6::Icmpv6Packet;
use crate::wire::ip::IpProtocol;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::ndp::{self, NdiscRepr, PrefixInfo, RaOptions, RouterFlags};
use crate::wire::udp::UdpPacket;

const ETH: usize = 14;
/// Prefixes and DNS servers one router advertisement carries at most.
const RA_MAX_ITEMS: usize = 8;
/// Router lifetime advertised, seconds.
const ROUTER_LIFETIME: u16 = 1800;
/// RDNSS lifetime (RFC 8106 §5.1: at least three times the maximum advertisement interval).
const RDNSS_LIFETIME: u32 = 1800;
/// Prefix lifetimes.
const PREFIX_VALID: u32 = 86400;
const PREFIX_PREFERRED: u32 = 14400;
/// Unsolicited advertisement interval bounds (RFC 4861 §6.2.1 defaults).
const RA_MIN_INTERVAL: u64 = 200;
const RA_MAX_INTERVAL: u64 = 600;

/// One end of a UDP exchange: MAC, address, port.
type UdpEnd = (MacAddr, Ipv4Addr, u16);

/// Writes Ethernet, IPv4 and UDP headers (checksums included) in front of a UDP payload of
/// `payload_len` bytes already at `d[42..]`.
fn write_udp_frame_v4(d: &mut [u8], from: UdpEnd, to: UdpEnd, payload_len: usize) {
    let ((src_mac, src, sport), (dst_mac, dst, dport)) = (from, to);
    d[0..6].copy_from_slice(&dst_mac.octets());
    d[6..12].copy_from_slice(&src_mac.octets());
    d[12..14].copy_from_slice(&[0x08, 0x00]);
    let udp_len = u16::try_from(8 + payload_len).unwrap_or(u16::MAX);
    let ip = &mut d[ETH..ETH + 20];
    ip.fill(0);
    ip[0] = 0x45;
    ip[1] = 0x10;
    ip[2..4].copy_from_slice(&udp_len.saturating_add(20).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = checksum::finish(checksum::sum(ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let u = &mut d[ETH + 20..ETH + 28];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&udp_len.to_be_bytes());
    u[6..8].fill(0);
    let s = checksum::pseudo_header_v4(&src, &dst, IpProtocol::Udp, udp_len);
    let c = checksum::finish(checksum::sum(&d[ETH + 20..ETH + 28 + payload_len], s));
    let c = if c == 0 { 0xffff } else { c };
    d[ETH + 26..ETH + 28].copy_from_slice(&c.to_be_bytes());
}

/// Up to `N` items kept on the stack.
struct Small<T: Copy, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + PartialEq, const N: usize> Small<T, N> {
    fn new(fill: T) -> Self {
        Small {
            items: [fill; N],
            len: 0,
        }
    }

    fn push_unique(&mut self, v: T) {
        if self.len < N && !self.items[..self.len].contains(&v) {
            self.items[self.len] = v;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// The flags of an advertisement for these subnets: M when addresses come from DHCPv6, O when
/// other configuration does.
fn ra_flags(sv: &Services) -> RouterFlags {
    let mut bits = 0;
    for s in sv.subnets6.iter().filter(|s| s.ra_mode.is_some()) {
        match s.address_mode {
            Some(Ipv6Mode::Dhcpv6Stateful) => {
                bits |= RouterFlags::MANAGED.bits() | RouterFlags::OTHER.bits()
            }
            Some(Ipv6Mode::Dhcpv6Stateless) => bits |= RouterFlags::OTHER.bits(),
            _ => {}
        }
    }
    RouterFlags::from_bits_truncate(bits)
}

/// Replaces the packet with a router advertisement for the segment's subnets, from the gateway,
/// to `dst_ip` / `dst_mac`. `false` if the buffer cannot hold it.
pub(crate) fn write_ra(
    sv: &Services,
    dst_mac: MacAddr,
    dst_ip: Ipv6Addr,
    pkt: &mut PacketBuf,
) -> bool {
    let Some(gw) = sv.gateway_mac else {
        return false;
    };
    let blank = PrefixInfo {
        prefix_len: 0,
        on_link: false,
        autonomous: false,
        valid_lifetime: 0,
        preferred_lifetime: 0,
        prefix: Ipv6Addr::UNSPECIFIED,
    };
    let mut prefixes: Small<PrefixInfo, RA_MAX_ITEMS> = Small::new(blank);
    let mut dns: Small<Ipv6Addr, RA_MAX_ITEMS> = Small::new(Ipv6Addr::UNSPECIFIED);
    for s in sv.subnets6.iter().filter(|s| s.ra_mode.is_some()) {
        prefixes.push_unique(PrefixInfo {
            prefix_len: s.net.prefix(),
            on_link: true,
            autonomous: s.address_mode != Some(Ipv6Mode::Dhcpv6Stateful),
            valid_lifetime: PREFIX_VALID,
            preferred_lifetime: PREFIX_PREFERRED,
            prefix: s.net.network(),
        });
        for d in &s.dns {
            dns.push_unique(*d);
        }
    }
    let ra = NdiscRepr::RouterAdvert {
        hop_limit: 64,
        flags: ra_flags(sv),
        router_lifetime: ROUTER_LIFETIME,
        reachable_time: 0,
        retrans_time: 0,
        lladdr: Some(gw),
        mtu: Some(sv.mtu),
        options: RaOptions::Emit {
            prefixes: prefixes.as_slice(),
            rdnss: (dns.len > 0).then(|| (RDNSS_LIFETIME, dns.as_slice())),
        },
    };
    let icmp_len = ra.buffer_len();
    pkt.reset();
    if !pkt.set_len(ETH + 40 + icmp_len) {
        return false;
    }
    let src = sv.server_link_local;
    let d = pkt.data_mut();
    d[0..6].copy_from_slice(&dst_mac.octets());
    d[6..12].copy_from_slice(&gw.octets());
    d[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut ip = Ipv6Packet::new_unchecked(&mut d[ETH..]);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len(u16::try_from(icmp_len).unwrap_or(u16::MAX));
    ip.set_next_header(IpProtocol::Icmpv6);
    ip.set_hop_limit(255);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst_ip);
    ra.emit(
        &src,
        &dst_ip,
        &mut Icmpv6Packet::new_unchecked(&mut d[ETH + 40..]),
    );
    true
}

impl Ctx<'_> {
    /// DHCPv4 from port `idx`. `None` when no subnet of the segment serves DHCPv4 (the frame
    /// then takes its normal way, e.g. to a DHCP server the tenant runs).
    pub(crate) fn dhcp4(
        &mut self,
        idx: PortIdx,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> Option<NodeResult> {
        let sv = &self.t.segments[seg.get()].services;
        if !sv.subnets4.iter().any(|s| s.dhcp) {
            return None;
        }
        Some(self.dhcp4_reply(idx, seg, l2, pkt))
    }

    fn dhcp4_reply(
        &mut self,
        idx: PortIdx,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> NodeResult {
        let t = self.t;
        let sv = &t.segments[seg.get()].services;
        let port = &t.ports[idx.get()];
        // Parse, and copy out what the reply needs (it is written over the request).
        let mut client_id = [0u8; 255];
        let (req, client_id_len) = {
            let l3 = pkt
                .data()
                .get(l2.l3_offset..)
                .ok_or(DropReason::Truncated)?;
            let ip = Ipv4Packet::new_checked(l3).map_err(wire_drop)?;
            let udp = UdpPacket::new_checked(ip.payload()).map_err(wire_drop)?;
            let dhcp =
                DhcpPacket::new_checked(udp.payload()).map_err(|_| DropReason::DhcpMalformed)?;
            let r = DhcpRequestRepr::parse(&dhcp).map_err(|_| DropReason::DhcpMalformed)?;
            let n = r.client_id.map_or(0, |c| {
                let n = c.len().min(255);
                client_id[..n].copy_from_slice(&c[..n]);
                n
            });
            (
                (
                    r.message_type,
                    r.xid,
                    r.flags,
                    r.ciaddr,
                    r.giaddr,
                    r.client_mac,
                    r.requested_ip,
                    r.server_id,
                ),
                n,
            )
        };
        let (kind, xid, flags, ciaddr, giaddr, chaddr, requested, chosen_server) = req;
        if giaddr != Ipv4Addr::UNSPECIFIED || chaddr != port.mac {
            // Relayed, or on behalf of another MAC: not one of our directly attached clients.
            return Err(DropReason::DhcpNoBinding);
        }
        let Some((addr, si)) = port.dhcp.v4 else {
            return Err(DropReason::DhcpNoBinding);
        };
        let sub = &sv.subnets4[usize::from(si)];
        let Some(server_id) = sub.server_id else {
            return Err(DropReason::DhcpNoBinding);
        };
        let zero = Ipv4Addr::UNSPECIFIED;
        let client_id = (client_id_len >= 2).then(|| &client_id[..client_id_len]);
        let mask = Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(sub.net.prefix()))
                .unwrap_or(0),
        );
        let routers: &[Ipv4Addr] = match &sub.gateway {
            Some(g) => std::slice::from_ref(g),
            None => &[],
        };
        let routes: &[ClasslessRoute] = &sub.routes;
        let mtu = u16::try_from(sv.mtu).ok();
        let full = |kind, ciaddr| DhcpReplyRepr {
            ciaddr,
            yiaddr: addr,
            lease_time: Some(sub.lease_secs),
            renewal_time: Some(sub.lease_secs / 2),
            rebinding_time: Some(sub.lease_secs / 8 * 7),
            subnet_mask: Some(mask),
            routers,
            dns_servers: &sub.dns,
            domain_name: sv.domain.as_deref(),
            hostname: Some(port.dhcp.hostname.as_str()),
            interface_mtu: mtu,
            broadcast_address: Some(sub.net.broadcast()),
            classless_routes: routes,
            client_id,
            ..DhcpReplyRepr::new(kind, xid, flags, chaddr, server_id)
        };
        let reply = match kind {
            DhcpMessageType::Discover => {
                self.c.event(Event::DhcpOffered);
                full(DhcpMessageType::Offer, zero)
            }
            DhcpMessageType::Request => {
                if chosen_server.is_some_and(|s| s != server_id) {
                    // The client took another server's offer.
                    return Ok(Action::Consumed);
                }
                let want = requested.or((ciaddr != zero).then_some(ciaddr));
                if want == Some(addr) {
                    self.c.event(Event::DhcpAcked);
                    full(DhcpMessageType::Ack, ciaddr)
                } else {
                    self.c.event(Event::DhcpNaked);
                    DhcpReplyRepr {
                        client_id,
                        message: Some("requested address is not this client's"),
                        ..DhcpReplyRepr::new(DhcpMessageType::Nak, xid, flags, chaddr, server_id)
                    }
                }
            }
            DhcpMessageType::Inform => {
                self.c.event(Event::DhcpAcked);
                DhcpReplyRepr {
                    yiaddr: zero,
                    lease_time: None,
                    renewal_time: None,
                    rebinding_time: None,
                    ..full(DhcpMessageType::Ack, ciaddr)
                }
            }
            DhcpMessageType::Release | DhcpMessageType::Decline => {
                self.c.event(Event::DhcpReleased);
                return Ok(Action::Consumed);
            }
            _ => return Err(DropReason::DhcpMalformed),
        };
        // Addressing (RFC 2131 §4.1): a NAK, or a client that asked for broadcast, gets a
        // broadcast; a bound client its address; others a unicast to their MAC and new address.
        let bcast = Ipv4Addr::BROADCAST;
        let (dst_ip, dst_mac) =
            if reply.message_type == DhcpMessageType::Nak || reply.flags & 0x8000 != 0 {
                (bcast, MacAddr::BROADCAST)
            } else if ciaddr != zero {
                (ciaddr, chaddr)
            } else {
                (reply.yiaddr, chaddr)
            };
        let n = reply.buffer_len();
        pkt.reset();
        if !pkt.set_len(ETH + 28 + n) {
            return Err(DropReason::NoBuffer);
        }
        let d = pkt.data_mut();
        let written = reply
            .emit(&mut DhcpPacket::new_unchecked(&mut d[ETH + 28..]))
            .map_err(|_| DropReason::DhcpMalformed)?;
        pkt.set_len(ETH + 28 + written);
        write_udp_frame_v4(
            pkt.data_mut(),
            (sv.server_mac, server_id, 67),
            (dst_mac, dst_ip, 68),
            written,
        );
        Ok(Action::Port(idx))
    }

    /// A router solicitation from port `idx`: answered with an advertisement when this node
    /// advertises for the segment. `None` otherwise.
    pub(crate) fn router_solicit(
        &mut self,
        idx: PortIdx,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> Option<NodeResult> {
        let sv = &self.t.segments[seg.get()].services;
        if !sv.sends_ra {
            return None;
        }
        let src = {
            let l3 = pkt.data().get(l2.l3_offset..)?;
            let valid = Ipv6Packet::new_checked(l3).ok().and_then(|ip| {
                let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                let repr = NdiscRepr::parse(&icmp).ok()?;
                let ok = ndp::validate(&icmp).is_ok()
                    && ndp::validate_ip_header(ip.hop_limit(), &src, &dst, &repr).is_ok()
                    && icmp.verify_checksum(&src, &dst);
                ok.then_some(src)
            });
            match valid {
                Some(s) => s,
                None => return Some(Err(DropReason::NdMalformed)),
            }
        };
        let (dst_ip, dst_mac) = if src.is_unspecified() {
            let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
            (all, MacAddr::ipv6_multicast(all))
        } else {
            (src, l2.src)
        };
        if !write_ra(sv, dst_mac, dst_ip, pkt) {
            return Some(Err(DropReason::NoBuffer));
        }
        self.c.event(Event::RaSent);
        Some(Ok(Action::Port(idx)))
    }

    /// Unsolicited router advertisements to the local ports of every segment that has them.
    pub(crate) fn periodic_ra(&mut self) {
        let t = self.t;
        for (i, s) in t.segments.iter().enumerate() {
            if !s.services.sends_ra || s.ports.is_empty() || self.now < self.l3.next_ra[i] {
                continue;
            }
            // Spread over [200, 600] s, deterministically per segment and round.
            let spread = (u64::from(s.vni.get()).wrapping_mul(2654435761)
                ^ (self.now.0 / 1_000_000_000))
                % (RA_MAX_INTERVAL - RA_MIN_INTERVAL);
            self.l3.next_ra[i] = self.now.plus(Duration::from_secs(RA_MIN_INTERVAL + spread));
            let Some(mut b) = self.pool.alloc() else {
                self.c.drop(DropReason::NoBuffer);
                continue;
            };
            let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
            if write_ra(&s.services, MacAddr::ipv6_multicast(all), all, &mut b) {
                self.c.event(Event::RaSent);
                let seg = SegIdx(u16::try_from(i).unwrap_or(u16::MAX));
                self.generated.push((
                    b,
                    Action::Flood {
                        seg,
                        exclude: None,
                        to_vteps: false,
                    },
                ));
            } else {
                self.pool.free(b);
            }
        }
    }
}

/// Writes Ethernet, IPv6 and UDP headers (checksum included) in front of a UDP payload of
/// `payload_len` bytes already at `d[62..]`.
fn write_udp_frame_v6(
    d: &mut [u8],
    from: (MacAddr, Ipv6Addr, u16),
    to: (MacAddr, Ipv6Addr, u16),
    payload_len: usize,
) {
    let ((src_mac, src, sport), (dst_mac, dst, dport)) = (from, to);
    d[0..6].copy_from_slice(&dst_mac.octets());
    d[6..12].copy_from_slice(&src_mac.octets());
    d[12..14].copy_from_slice(&[0x86, 0xdd]);
    let udp_len = u16::try_from(8 + payload_len).unwrap_or(u16::MAX);
    let ip = &mut d[ETH..ETH + 40];
    ip.fill(0);
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
    ip[6] = 17;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let u = &mut d[ETH + 40..ETH + 48];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&udp_len.to_be_bytes());
    u[6..8].fill(0);
    let sum = checksum::pseudo_header_v6(&src, &dst, IpProtocol::Udp, u32::from(udp_len));
    let c = checksum::finish(checksum::sum(&d[ETH + 40..ETH + 48 + payload_len], sum));
    let c = if c == 0 { 0xffff } else { c };
    d[ETH + 46..ETH + 48].copy_from_slice(&c.to_be_bytes());
}

impl Ctx<'_> {
    /// DHCPv6 from port `idx`. `None` when no IPv6 subnet of the segment is served by DHCPv6
    /// (stateful or stateless).
    pub(crate) fn dhcp6(
        &mut self,
        idx: PortIdx,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> Option<NodeResult> {
        let sv = &self.t.segments[seg.get()].services;
        let served = sv.subnets6.iter().any(|s| {
            matches!(
                s.address_mode,
                Some(Ipv6Mode::Dhcpv6Stateful | Ipv6Mode::Dhcpv6Stateless)
            )
        });
        served.then(|| self.dhcp6_reply(idx, seg, l2, pkt))
    }

    fn dhcp6_reply(
        &mut self,
        idx: PortIdx,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> NodeResult {
        use crate::wire::dhcpv6::{
            Dhcpv6MessageType as T, Dhcpv6Packet, Dhcpv6ReplyRepr, Dhcpv6RequestRepr, IaNaReply,
            MAX_IA_NA, duid_ll, status,
        };
        let t = self.t;
        let sv = &t.segments[seg.get()].services;
        let port = &t.ports[idx.get()];
        let server_duid = duid_ll(sv.server_mac);
        // Parse, copying out what the reply needs (it is written over the request).
        let mut client_duid = [0u8; 130];
        let mut iaids = [0u32; MAX_IA_NA];
        let (kind, xid, client_len, n_ia, rapid, for_us, on_link, client_ip) = {
            let l3 = pkt
                .data()
                .get(l2.l3_offset..)
                .ok_or(DropReason::Truncated)?;
            let ip = Ipv6Packet::new_checked(l3).map_err(wire_drop)?;
            if ip.next_header() != IpProtocol::Udp {
                return Err(DropReason::DhcpMalformed);
            }
            let udp = UdpPacket::new_checked(ip.payload()).map_err(wire_drop)?;
            let msg =
                Dhcpv6Packet::new_checked(udp.payload()).map_err(|_| DropReason::DhcpMalformed)?;
            let r = Dhcpv6RequestRepr::parse(&msg).map_err(|_| DropReason::DhcpMalformed)?;
            let cid = r.client_id.unwrap_or(&[]);
            let cl = cid.len().min(client_duid.len());
            client_duid[..cl].copy_from_slice(&cid[..cl]);
            let mut n = 0;
            let mut on_link = true;
            for ia in &r.ia_na {
                if n < MAX_IA_NA {
                    iaids[n] = ia.iaid;
                    n += 1;
                }
                on_link &= ia
                    .addresses()
                    .all(|(a, _, _)| sv.subnets6.iter().any(|s| s.net.contains(a)));
            }
            let for_us = r.server_id.is_none_or(|s| s == server_duid);
            (
                r.msg_type,
                r.xid,
                cl,
                n,
                r.rapid_commit,
                for_us,
                on_link,
                ip.src_addr(),
            )
        };
        if !for_us {
            // Addressed to another server.
            return Ok(Action::Consumed);
        }
        let binding = port
            .dhcp
            .v6
            .map(|(a, si)| (a, &sv.subnets6[usize::from(si)]));
        let mut dns: Small<Ipv6Addr, RA_MAX_ITEMS> = Small::new(Ipv6Addr::UNSPECIFIED);
        for s in sv.subnets6.iter().filter(|s| s.address_mode.is_some()) {
            for d in &s.dns {
                dns.push_unique(*d);
            }
        }
        let domain_list: [&str; 1] = [sv.domain.as_deref().unwrap_or("")];
        let domains: &[&str] = if sv.domain.is_some() {
            &domain_list
        } else {
            &[]
        };
        let leases: [(Ipv6Addr, u32, u32); 1] = match binding {
            Some((a, s)) => [(a, s.lease_secs, s.lease_secs)],
            None => [(Ipv6Addr::UNSPECIFIED, 0, 0)],
        };
        let lease = binding.map_or(0, |(_, s)| s.lease_secs);
        let mut ias = [IaNaReply {
            iaid: 0,
            t1: 0,
            t2: 0,
            addresses: &[],
            status: None,
        }; MAX_IA_NA];
        for (slot, iaid) in ias.iter_mut().zip(iaids.iter()).take(n_ia) {
            *slot = match binding {
                Some(_) => IaNaReply {
                    iaid: *iaid,
                    t1: lease / 2,
                    t2: lease / 5 * 4,
                    addresses: &leases,
                    status: None,
                },
                None => IaNaReply {
                    iaid: *iaid,
                    t1: 0,
                    t2: 0,
                    addresses: &[],
                    status: Some((status::NO_ADDRS_AVAIL, "no address for this client")),
                },
            };
        }
        let client = &client_duid[..client_len];
        let base = |ty| Dhcpv6ReplyRepr {
            dns_servers: dns.as_slice(),
            domain_search: domains,
            ..Dhcpv6ReplyRepr::new(ty, xid, &server_duid, client)
        };
        let reply = match kind {
            T::Solicit => {
                if binding.is_none() {
                    return Err(DropReason::DhcpNoBinding);
                }
                let ty = if rapid { T::Reply } else { T::Advertise };
                Dhcpv6ReplyRepr {
                    ia_na: &ias[..n_ia],
                    rapid_commit: rapid,
                    preference: (!rapid).then_some(255),
                    ..base(ty)
                }
            }
            T::Request | T::Renew | T::Rebind => Dhcpv6ReplyRepr {
                ia_na: &ias[..n_ia],
                ..base(T::Reply)
            },
            T::Confirm => {
                let st = if on_link {
                    (status::SUCCESS, "on link")
                } else {
                    (status::NOT_ON_LINK, "not on this link")
                };
                Dhcpv6ReplyRepr {
                    status: Some(st),
                    ..base(T::Reply)
                }
            }
            T::Release | T::Decline => {
                self.c.event(Event::DhcpReleased);
                Dhcpv6ReplyRepr {
                    status: Some((status::SUCCESS, "released")),
                    ..base(T::Reply)
                }
            }
            T::InformationRequest => base(T::Reply),
            _ => return Err(DropReason::DhcpMalformed),
        };
        let n = reply.buffer_len();
        pkt.reset();
        if !pkt.set_len(ETH + 48 + n) {
            return Err(DropReason::NoBuffer);
        }
        let written = reply
            .emit(&mut Dhcpv6Packet::new_unchecked(
                &mut pkt.data_mut()[ETH + 48..],
            ))
            .map_err(|_| DropReason::DhcpMalformed)?;
        pkt.set_len(ETH + 48 + written);
        write_udp_frame_v6(
            pkt.data_mut(),
            (sv.server_mac, sv.server_link_local, 547),
            (l2.src, client_ip, 546),
            written,
        );
        self.c.event(Event::Dhcp6Replied);
        Ok(Action::Port(idx))
    }
}
