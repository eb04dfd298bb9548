//! Router and local-service scenarios on in-memory packets: what `router.rs` and `services.rs`
//! do, checked on the bytes they send.
//!
//! The node hosts router r1 (interfaces on VNI 100 and VNI 200) and two VMs (a1 on VNI 100, c1
//! on VNI 200); VM b2 (VNI 200) and the host 10.1.0.99 live behind the remote VTEP 192.168.100.2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::NodeConfig;
use crate::counters::{DropReason, Event};
use crate::ids::{PortIdx, VtepIdx};
use crate::packet::{Batch, BufPool, PacketBuf, Source};
use crate::pipeline::{Action, Output, Pipeline, VXLAN_HEADER_LEN};
use crate::testing::{
    arp, dhcp4, dhcp6, eth, icmp4_echo, ipv4, ipv6_icmp, ipv6_udp, rs, udp, vxlan,
};
use crate::time::Timestamp;
use crate::wire::MacAddr;
use crate::wire::checksum;
use crate::wire::dhcpv4::{DhcpMessageType, DhcpOption, DhcpPacket};
use crate::wire::dhcpv6::{Dhcpv6MessageType, Dhcpv6Option, Dhcpv6Packet, duid_ll};
use crate::wire::icmpv6::Icmpv6Packet;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::ndp::{NdiscOption, NdiscOptions, NdiscRepr, RaOptions, RouterFlags};
use crate::wire::udp::UdpPacket;

const RA: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 1]);
const RB: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 2]);
const A1: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
const C1: MacAddr = MacAddr([0x02, 0xcc, 0, 0, 0, 1]);
const B2: MacAddr = MacAddr([0x02, 0xbb, 0, 0, 0, 2]);
const X: MacAddr = MacAddr([0x02, 0x99, 0, 0, 0, 99]);
const VTEP: &str = "192.168.100.2:4789";

const CONFIG: &str = r#"
node = "hv1"
[underlay]
local_ip = "192.168.100.1"

[[segments]]
vni = 100
gateway_mac = "02:fe:00:00:00:01"
dns_domain = "tenant.example"
[[segments.subnets]]
cidr = "10.0.0.0/24"
gateway_ip = "10.0.0.1"
dns_nameservers = ["10.0.0.53"]
host_routes = [{ destination = "172.16.0.0/16", nexthop = "10.0.0.254" }]
lease_secs = 3600
[[segments.subnets]]
cidr = "fd00:a::/64"
gateway_ip = "fd00:a::1"
ipv6_ra_mode = "slaac"
ipv6_address_mode = "slaac"
dns_nameservers = ["fd00:a::53"]

[[segments]]
vni = 200
gateway_mac = "02:fe:00:00:00:02"
[[segments.subnets]]
cidr = "10.1.0.0/24"
gateway_ip = "10.1.0.1"
[[segments.subnets]]
cidr = "fd00:b::/64"
gateway_ip = "fd00:b::1"
ipv6_ra_mode = "dhcpv6-stateful"
ipv6_address_mode = "dhcpv6-stateful"
dns_nameservers = ["fd00:b::53"]

[[ports]]
name = "a1"
interface = "tapa1"
vni = 100
mac = "02:aa:00:00:00:01"
ips = ["10.0.0.10", "fd00:a::10"]

[[ports]]
name = "c1"
interface = "tapc1"
vni = 200
mac = "02:cc:00:00:00:01"
ips = ["10.1.0.30", "fd00:b::30"]
hostname = "c1.tenant"

[[remote_vteps]]
ip = "192.168.100.2"
vnis = [100, 200]

[[remote_bindings]]
vni = 200
mac = "02:bb:00:00:00:02"
ips = ["10.1.0.20", "fd00:b::20"]
vtep = "192.168.100.2"

[[routers]]
name = "r1"
routes = [{ destination = "192.168.0.0/16", nexthop = "10.1.0.99" }]
[[routers.interfaces]]
vni = 100
mac = "02:fe:00:00:00:01"
addresses = ["10.0.0.1/24", "fd00:a::1/64"]
[[routers.interfaces]]
vni = 200
mac = "02:fe:00:00:00:02"
addresses = ["10.1.0.1/24", "fd00:b::1/64"]
mtu = 1400
"#;

fn pipeline() -> Pipeline {
    Pipeline::new(Arc::new(
        NodeConfig::from_toml(CONFIG).unwrap().validate().unwrap(),
    ))
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const T0: Timestamp = Timestamp(10_000_000_000);

/// What one packet through the pipeline gave (shared with `stateful_tests`).
pub(crate) struct Run {
    pub(crate) action: Action,
    pub(crate) bytes: Vec<u8>,
    pub(crate) generated: Vec<(Vec<u8>, Action)>,
}

pub(crate) fn run_at(p: &mut Pipeline, now: Timestamp, source: Source, frame: &[u8]) -> Run {
    let mut b = PacketBuf::new(2048);
    assert!(b.fill(frame));
    b.meta.source = source;
    let mut batch = Batch::new();
    batch.push(b).unwrap();
    let mut pool = BufPool::new(64, 2048);
    let mut out = Output::new();
    p.process(now, &mut batch, &mut pool, &mut out);
    Run {
        action: out.actions[0],
        bytes: batch.packets()[0].data().to_vec(),
        generated: out
            .generated
            .iter()
            .map(|(b, a)| (b.data().to_vec(), *a))
            .collect(),
    }
}

fn run(p: &mut Pipeline, source: Source, frame: &[u8]) -> Run {
    run_at(p, T0, source, frame)
}

fn a1() -> Source {
    Source::Port(PortIdx(0))
}

fn c1() -> Source {
    Source::Port(PortIdx(1))
}

fn vtep() -> Source {
    Source::Underlay(VTEP.parse::<SocketAddr>().unwrap())
}

/// The IPv4 packet of a VXLAN-encapsulated frame, or of a plain frame.
fn l3(bytes: &[u8], encapsulated: bool) -> &[u8] {
    &bytes[if encapsulated {
        VXLAN_HEADER_LEN + 14
    } else {
        14
    }..]
}

fn udp4_from_a1(dst: &str, ttl: u8, df: bool, len: usize) -> Vec<u8> {
    eth(
        RA,
        A1,
        0x0800,
        &ipv4(
            ip4("10.0.0.10"),
            ip4(dst),
            17,
            ttl,
            df,
            &udp(1000, 2000, &vec![0x5a; len]),
        ),
    )
}

#[test]
fn routes_ipv4_from_a_local_vm_to_a_remote_one() {
    let mut p = pipeline();
    let r = run(&mut p, a1(), &udp4_from_a1("10.1.0.20", 64, true, 20));
    assert_eq!(r.action, Action::Vtep(VtepIdx(0)));
    assert_eq!(&r.bytes[..8], &[8, 0, 0, 0, 0, 0, 200, 0], "out on VNI 200");
    assert_eq!(
        &r.bytes[8..14],
        &B2.octets(),
        "to b2's MAC, from its binding"
    );
    assert_eq!(
        &r.bytes[14..20],
        &RB.octets(),
        "from the router's VNI 200 interface"
    );
    let ip = Ipv4Packet::new_checked(l3(&r.bytes, true)).unwrap();
    assert_eq!(ip.hop_limit(), 63);
    assert!(ip.verify_checksum(), "incremental checksum update");
    assert_eq!(p.counters().events(Event::Routed), 1);
}

#[test]
fn routes_both_families_from_the_underlay_to_a_local_vm() {
    let mut p = pipeline();
    let f = eth(
        RB,
        B2,
        0x0800,
        &ipv4(
            ip4("10.1.0.20"),
            ip4("10.0.0.10"),
            17,
            64,
            true,
            &udp(1, 2, b"hi"),
        ),
    );
    let r = run(&mut p, vtep(), &vxlan(200, &f));
    assert_eq!(r.action, Action::Port(PortIdx(0)));
    assert_eq!(&r.bytes[..6], &A1.octets());
    assert_eq!(&r.bytes[6..12], &RA.octets());
    let f6 = eth(
        RB,
        B2,
        0x86dd,
        &ipv6_udp(ip6("fd00:b::20"), ip6("fd00:a::10"), 1, 2, b"hi"),
    );
    let r = run(&mut p, vtep(), &vxlan(200, &f6));
    assert_eq!(r.action, Action::Port(PortIdx(0)));
    let ip = Ipv6Packet::new_checked(&r.bytes[14..]).unwrap();
    assert_eq!(ip.hop_limit(), 63);
    assert_eq!(&r.bytes[6..12], &RA.octets());
}

#[test]
fn the_router_answers_pings_to_its_addresses() {
    let mut p = pipeline();
    for target in ["10.0.0.1", "10.1.0.1"] {
        let f = eth(
            RA,
            A1,
            0x0800,
            &ipv4(
                ip4("10.0.0.10"),
                ip4(target),
                1,
                64,
                false,
                &icmp4_echo(7, 1, b"abcd"),
            ),
        );
        let r = run(&mut p, a1(), &f);
        assert_eq!(r.action, Action::Port(PortIdx(0)), "{target}");
        let ip = Ipv4Packet::new_checked(&r.bytes[14..]).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (ip4(target), ip4("10.0.0.10"))
        );
        assert!(ip.verify_checksum());
        let icmp = ip.payload();
        assert_eq!(icmp[0], 0, "echo reply");
        assert_eq!(checksum::finish(checksum::sum(icmp, 0)), 0, "ICMP checksum");
        assert_eq!(&icmp[8..], b"abcd");
    }
    let lla = RA.link_local();
    for target in [ip6("fd00:a::1"), lla] {
        let src = if target == lla {
            A1.link_local()
        } else {
            ip6("fd00:a::10")
        };
        let f = eth(
            RA,
            A1,
            0x86dd,
            &ipv6_icmp(src, target, 64, &[128, 0, 0, 0, 0, 7, 0, 1, 9, 9]),
        );
        let r = run(&mut p, a1(), &f);
        assert_eq!(r.action, Action::Port(PortIdx(0)), "{target}");
        let ip = Ipv6Packet::new_checked(&r.bytes[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (target, src));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(ip.payload()[0], 129);
        assert!(icmp.verify_checksum(&target, &src));
    }
    assert_eq!(p.counters().events(Event::EchoReplied), 4);
}

/// The ICMPv4 error in `bytes` (a frame to a1): type, code, the 4-byte word, the quote.
fn icmp4_error(bytes: &[u8]) -> (Ipv4Addr, u8, u8, u32, Vec<u8>) {
    assert_eq!(&bytes[..6], &A1.octets(), "back to the sender");
    let ip = Ipv4Packet::new_checked(&bytes[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dst_addr(), ip4("10.0.0.10"));
    let m = ip.payload();
    assert_eq!(checksum::finish(checksum::sum(m, 0)), 0, "ICMP checksum");
    (
        ip.src_addr(),
        m[0],
        m[1],
        u32::from_be_bytes([m[4], m[5], m[6], m[7]]),
        m[8..].to_vec(),
    )
}

#[test]
fn icmpv4_errors_go_back_to_the_sender() {
    let mut p = pipeline();
    // TTL 1: time exceeded from the ingress interface, quoting the packet.
    let f = udp4_from_a1("10.1.0.20", 1, true, 20);
    let r = run(&mut p, a1(), &f);
    assert_eq!(r.action, Action::Port(PortIdx(0)));
    let (src, ty, code, _, quote) = icmp4_error(&r.bytes);
    assert_eq!((src, ty, code), (ip4("10.0.0.1"), 11, 0));
    assert_eq!(
        quote,
        f[14..].to_vec(),
        "the whole (small) packet is quoted"
    );
    assert_eq!(p.counters().drops(DropReason::TtlExceeded), 1);
    // No route.
    let r = run(&mut p, a1(), &udp4_from_a1("8.8.8.8", 64, true, 20));
    let (_, ty, code, _, _) = icmp4_error(&r.bytes);
    assert_eq!((ty, code), (3, 0));
    // Too big for VNI 200's 1400-byte interface, DF set: fragmentation needed, MTU 1400.
    let r = run(
        &mut p,
        a1(),
        &udp4_from_a1("10.1.0.20", 64, true, 1401 - 28),
    );
    let (_, ty, code, word, quote) = icmp4_error(&r.bytes);
    assert_eq!((ty, code, word), (3, 4, 1400));
    assert_eq!(quote.len(), 576 - 28, "quotes stop at 576 bytes in all");
    // UDP to the router itself: port unreachable, from the address probed.
    let f = eth(
        RA,
        A1,
        0x0800,
        &ipv4(
            ip4("10.0.0.10"),
            ip4("10.1.0.1"),
            17,
            64,
            false,
            &udp(1, 33434, b""),
        ),
    );
    let r = run(&mut p, a1(), &f);
    let (src, ty, code, _, _) = icmp4_error(&r.bytes);
    assert_eq!((src, ty, code), (ip4("10.1.0.1"), 3, 3));
    assert_eq!(p.counters().events(Event::IcmpErrorSent), 4);
}

#[test]
fn icmpv6_errors_go_back_to_the_sender() {
    let mut p = pipeline();
    let big = vec![0u8; 1400];
    for (hop, dst, payload, want) in [
        (1u8, "fd00:b::20", &b"x"[..], (3u8, 0u8, 0u32)),
        (64, "2001:db8::1", &b"x"[..], (1, 0, 0)),
        (64, "fd00:b::20", &big[..], (2, 0, 1400)),
        (64, "fd00:b::1", &b"x"[..], (1, 4, 0)),
    ] {
        let mut pkt = ipv6_udp(ip6("fd00:a::10"), ip6(dst), 1, 33434, payload);
        pkt[7] = hop;
        let r = run(&mut p, a1(), &eth(RA, A1, 0x86dd, &pkt));
        assert_eq!(r.action, Action::Port(PortIdx(0)), "{dst} {hop}");
        let ip = Ipv6Packet::new_checked(&r.bytes[14..]).unwrap();
        assert_eq!(ip.dst_addr(), ip6("fd00:a::10"));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        let m = ip.payload();
        assert_eq!(
            (m[0], m[1], u32::from_be_bytes([m[4], m[5], m[6], m[7]])),
            want,
            "{dst} {hop}"
        );
        assert!(r.bytes.len() <= 14 + 1280, "errors fit the minimum MTU");
    }
}

#[test]
fn ipv4_without_df_is_fragmented_to_the_egress_mtu() {
    let mut p = pipeline();
    // 1450 bytes (VNI 100's MTU) towards VNI 200's 1400-byte interface, DF clear.
    let payload: Vec<u8> = (0..1422u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let f = eth(
        RA,
        A1,
        0x0800,
        &ipv4(
            ip4("10.0.0.10"),
            ip4("10.1.0.20"),
            17,
            64,
            false,
            &udp(1, 2, &payload),
        ),
    );
    let r = run(&mut p, a1(), &f);
    let mut frags: Vec<Vec<u8>> = vec![r.bytes.clone()];
    assert_eq!(r.action, Action::Vtep(VtepIdx(0)));
    for (b, a) in &r.generated {
        assert_eq!(*a, Action::Vtep(VtepIdx(0)));
        frags.push(b.clone());
    }
    assert_eq!(
        frags.len(),
        2,
        "1430 bytes of UDP in pieces of at most 1376"
    );
    let mut data = vec![0u8; 1430];
    let mut seen = 0;
    for fr in &frags {
        let ip = Ipv4Packet::new_checked(l3(fr, true)).unwrap();
        assert!(ip.verify_checksum());
        assert!(usize::from(ip.total_len()) <= 1400);
        let off = usize::from(ip.frag_offset());
        data[off..off + ip.payload().len()].copy_from_slice(ip.payload());
        seen += ip.payload().len();
        assert_eq!(ip.more_frags(), off + ip.payload().len() < 1430);
    }
    assert_eq!(seen, 1430);
    assert_eq!(&data[8..], &payload[..], "reassembles to the original");
    assert_eq!(p.counters().events(Event::Fragmented), 1);
}

#[test]
fn an_unresolved_next_hop_is_probed_and_its_packets_held_until_it_answers() {
    let mut p = pipeline();
    // 192.168.0.0/16 via 10.1.0.99, which no binding knows: the packet waits, an ARP request
    // goes out in its place (flooded on VNI 200 from the router).
    let r = run(&mut p, a1(), &udp4_from_a1("192.168.3.4", 64, true, 20));
    assert!(
        matches!(
            r.action,
            Action::Flood {
                to_vteps: true,
                exclude: None,
                ..
            }
        ),
        "{:?}",
        r.action
    );
    let arp_bytes = &r.bytes[VXLAN_HEADER_LEN..];
    assert_eq!(&arp_bytes[..6], &[0xff; 6]);
    assert_eq!(&arp_bytes[6..12], &RB.octets());
    assert_eq!(&arp_bytes[14..22], &[0, 1, 8, 0, 6, 4, 0, 1], "ARP request");
    assert_eq!(
        &arp_bytes[28..32],
        &ip4("10.1.0.1").octets(),
        "asked from the interface address"
    );
    assert_eq!(&arp_bytes[38..42], &ip4("10.1.0.99").octets());
    // A second packet joins the first without another probe.
    let r = run(&mut p, a1(), &udp4_from_a1("192.168.3.5", 64, true, 20));
    assert_eq!(r.action, Action::Consumed);
    assert_eq!(p.neighbors(), 1);
    // The answer comes back over VXLAN: both packets go out to it.
    let reply = eth(
        RB,
        X,
        0x0806,
        &arp(2, X, ip4("10.1.0.99"), RB, ip4("10.1.0.1")),
    );
    let r = run(&mut p, vtep(), &vxlan(200, &reply));
    assert_eq!(r.action, Action::Consumed);
    assert_eq!(r.generated.len(), 2);
    for (b, a) in &r.generated {
        assert_eq!(*a, Action::Vtep(VtepIdx(0)));
        assert_eq!(&b[8..14], &X.octets());
        assert_eq!(
            Ipv4Packet::new_checked(l3(b, true)).unwrap().hop_limit(),
            63
        );
    }
    // Now known: forwarded at once.
    let r = run(&mut p, a1(), &udp4_from_a1("192.168.9.9", 64, true, 20));
    assert_eq!(r.action, Action::Vtep(VtepIdx(0)));
    assert_eq!(p.counters().events(Event::NeighborResolved), 1);
}

/// A neighbour whose MAC changes in the middle of a batch: the packets after the news go to
/// the new MAC (the pipeline remembers the last next hop it found, and must forget it). Next
/// hops with a configured binding, in between, keep theirs.
#[test]
fn a_neighbour_that_moves_within_a_batch_is_followed() {
    let mut p = pipeline();
    let r = run(&mut p, a1(), &udp4_from_a1("192.168.3.4", 64, true, 20));
    assert!(matches!(r.action, Action::Flood { .. }));
    let reply = |mac: MacAddr| {
        vxlan(
            200,
            &eth(
                RB,
                mac,
                0x0806,
                &arp(2, mac, ip4("10.1.0.99"), RB, ip4("10.1.0.1")),
            ),
        )
    };
    let r = run(&mut p, vtep(), &reply(X));
    assert_eq!(r.generated.len(), 1, "the held packet goes out");
    let moved = MacAddr([0x02, 0x99, 0, 0, 0, 100]);
    let mut batch = Batch::new();
    for (source, frame) in [
        (a1(), udp4_from_a1("192.168.9.9", 64, true, 20)),
        (a1(), udp4_from_a1("10.1.0.20", 64, true, 20)),
        (a1(), udp4_from_a1("192.168.9.10", 64, true, 20)),
        (vtep(), reply(moved)),
        (a1(), udp4_from_a1("192.168.9.11", 64, true, 20)),
        (a1(), udp4_from_a1("10.1.0.20", 64, true, 20)),
        (a1(), udp4_from_a1("192.168.9.12", 64, true, 20)),
    ] {
        let mut b = PacketBuf::new(2048);
        assert!(b.fill(&frame));
        b.meta.source = source;
        batch.push(b).unwrap();
    }
    let mut pool = BufPool::new(64, 2048);
    let mut out = Output::new();
    p.process(T0, &mut batch, &mut pool, &mut out);
    let dst_mac = |i: usize| batch.packets()[i].data()[8..14].to_vec();
    for i in [0, 1, 2, 4, 5, 6] {
        assert_eq!(out.actions[i], Action::Vtep(VtepIdx(0)), "packet {i}");
    }
    assert_eq!(dst_mac(0), X.octets());
    assert_eq!(dst_mac(1), B2.octets(), "the bound next hop");
    assert_eq!(dst_mac(2), X.octets());
    assert_eq!(out.actions[3], Action::Consumed);
    assert_eq!(dst_mac(4), moved.octets(), "after the news, the new MAC");
    assert_eq!(dst_mac(5), B2.octets(), "the bound next hop");
    assert_eq!(dst_mac(6), moved.octets());
}

#[test]
fn a_next_hop_that_never_answers_fails_with_host_unreachable() {
    let mut p = pipeline();
    let r = run(&mut p, a1(), &udp4_from_a1("192.168.3.4", 64, true, 20));
    assert!(matches!(r.action, Action::Flood { .. }));
    let mut pool = BufPool::new(16, 2048);
    let mut probes = 0;
    let mut errors = Vec::new();
    for s in 1..=4u64 {
        let mut out = Output::new();
        p.handle_timeout(T0.plus(Duration::from_secs(s)), &mut pool, &mut out);
        for (b, a) in out.generated.drain(..) {
            match a {
                Action::Flood { .. }
                    if b.data().get(VXLAN_HEADER_LEN + 12..VXLAN_HEADER_LEN + 14)
                        == Some(&[8, 6][..]) =>
                {
                    probes += 1
                }
                Action::Port(PortIdx(0)) => errors.push(b.data().to_vec()),
                _ => {}
            }
            pool.free(b);
        }
    }
    assert_eq!(probes, 2, "two more probes after the first");
    assert_eq!(errors.len(), 1);
    let (_, ty, code, _, _) = icmp4_error(&errors[0]);
    assert_eq!((ty, code), (3, 1), "host unreachable");
    assert_eq!(p.counters().drops(DropReason::NeighborUnresolved), 1);
    assert_eq!(p.neighbors(), 0);
}

#[test]
fn routers_refuse_what_they_must_not_forward() {
    let mut p = pipeline();
    let martian = eth(
        RA,
        A1,
        0x0800,
        &ipv4(
            ip4("127.0.0.1"),
            ip4("10.1.0.20"),
            17,
            64,
            true,
            &udp(1, 2, b""),
        ),
    );
    // Port security stops a spoofed source before the router; a port without it reaches the
    // router, which still refuses a martian.
    assert_eq!(
        run(&mut p, a1(), &martian).action,
        Action::Drop(DropReason::SpoofedIp)
    );
    let r = run(
        &mut p,
        vtep(),
        &vxlan(100, &eth(RA, B2, 0x0800, &martian[14..])),
    );
    assert_eq!(r.action, Action::Drop(DropReason::Martian));
    // Bad header checksum.
    let mut bad = udp4_from_a1("10.1.0.20", 64, true, 4);
    bad[24] ^= 0xff;
    assert_eq!(
        run(&mut p, a1(), &bad).action,
        Action::Drop(DropReason::BadChecksum)
    );
    // Loose source route option.
    let mut opt = ipv4(
        ip4("10.0.0.10"),
        ip4("10.1.0.20"),
        17,
        64,
        true,
        &udp(1, 2, b""),
    );
    opt[0] = 0x46;
    opt.splice(20..20, [131u8, 3, 4, 0]);
    let total = u16::try_from(opt.len()).unwrap();
    opt[2..4].copy_from_slice(&total.to_be_bytes());
    opt[10..12].fill(0);
    let c = checksum::finish(checksum::sum(&opt[..24], 0));
    opt[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        run(&mut p, a1(), &eth(RA, A1, 0x0800, &opt)).action,
        Action::Drop(DropReason::SourceRouted)
    );
    // Directed broadcast and multicast destinations.
    assert_eq!(
        run(&mut p, a1(), &udp4_from_a1("10.1.0.255", 64, true, 4)).action,
        Action::Drop(DropReason::NotRoutable)
    );
    assert_eq!(
        run(&mut p, a1(), &udp4_from_a1("239.1.1.1", 64, true, 4)).action,
        Action::Drop(DropReason::NotRoutable)
    );
    // Link-local IPv6 is never forwarded.
    let ll = eth(
        RA,
        A1,
        0x86dd,
        &ipv6_udp(A1.link_local(), ip6("fe80::99"), 1, 2, b""),
    );
    assert_eq!(
        run(&mut p, a1(), &ll).action,
        Action::Drop(DropReason::NotRoutable)
    );
}

#[test]
fn the_router_checks_ipv4_headers_with_and_without_options() {
    let mut p = pipeline();
    // From B2, a remote VM on 10.1.0.0/24, to a1 on 10.0.0.0/24.
    let base = ipv4(
        ip4("10.1.0.20"),
        ip4("10.0.0.10"),
        17,
        64,
        true,
        &udp(1, 2, b"payload"),
    );
    // `base` with its first byte, options and total length changed, the checksum made right.
    let header = |first: u8, opts: &[u8], total: Option<u16>| {
        let mut b = base.clone();
        b[0] = first;
        b.splice(20..20, opts.iter().copied());
        let total = total.unwrap_or(u16::try_from(b.len()).unwrap());
        b[2..4].copy_from_slice(&total.to_be_bytes());
        let hl = usize::from(first & 0x0f) * 4;
        b[10..12].fill(0);
        let c = checksum::finish(checksum::sum(&b[..hl.clamp(20, b.len())], 0));
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    };
    let mut send = |ip: &[u8]| run(&mut p, vtep(), &vxlan(200, &eth(RB, B2, 0x0800, ip))).action;
    let to_a1 = Action::Port(PortIdx(0));
    let len = u16::try_from(base.len()).unwrap();
    assert_eq!(send(&header(0x45, &[], None)), to_a1);
    // Options other than a source route are forwarded, and checked like the fixed header.
    assert_eq!(send(&header(0x46, &[1, 1, 1, 0], None)), to_a1);
    let mut bad = header(0x46, &[1, 1, 1, 0], None);
    bad[21] ^= 0x10;
    assert_eq!(send(&bad), Action::Drop(DropReason::BadChecksum));
    // Total lengths below the header, or beyond the frame.
    assert_eq!(
        send(&header(0x45, &[], Some(19))),
        Action::Drop(DropReason::Malformed)
    );
    assert_eq!(
        send(&header(0x46, &[1, 1, 1, 0], Some(20))),
        Action::Drop(DropReason::Malformed)
    );
    assert_eq!(
        send(&header(0x45, &[], Some(len + 1))),
        Action::Drop(DropReason::Truncated)
    );
    assert_eq!(
        send(&header(0x46, &[1, 1, 1, 0], Some(len + 5))),
        Action::Drop(DropReason::Truncated)
    );
    // A version other than 4, an IHL below 5, a header cut short (IHL 15: 60 bytes of the 39).
    assert_eq!(
        send(&header(0x65, &[], None)),
        Action::Drop(DropReason::Malformed)
    );
    assert_eq!(
        send(&header(0x44, &[], None)),
        Action::Drop(DropReason::Malformed)
    );
    assert_eq!(send(&base[..19]), Action::Drop(DropReason::Truncated));
    assert_eq!(
        send(&header(0x4f, &[1, 1, 1, 0], None)),
        Action::Drop(DropReason::Truncated)
    );
}

#[test]
fn the_router_answers_address_resolution_from_other_nodes() {
    let mut p = pipeline();
    let req = eth(
        MacAddr::BROADCAST,
        B2,
        0x0806,
        &arp(1, B2, ip4("10.1.0.20"), MacAddr::ZERO, ip4("10.1.0.1")),
    );
    let r = run(&mut p, vtep(), &vxlan(200, &req));
    assert_eq!(r.action, Action::Vtep(VtepIdx(0)), "back over VXLAN");
    let inner = &r.bytes[VXLAN_HEADER_LEN..];
    assert_eq!(&inner[..6], &B2.octets());
    assert_eq!(&inner[6..12], &RB.octets());
    assert_eq!(&inner[20..22], &[0, 2], "ARP reply");
    assert_eq!(&inner[22..28], &RB.octets());
}

fn dhcp_reply(bytes: &[u8]) -> (DhcpMessageType, Ipv4Addr, Vec<(u8, Vec<u8>)>) {
    let ip = Ipv4Packet::new_checked(&bytes[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), ip4("10.0.0.1"), "from the server identifier");
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (67, 68));
    assert!(u.verify_checksum(&IpAddr::V4(ip.src_addr()), &IpAddr::V4(ip.dst_addr())));
    let d = DhcpPacket::new_checked(u.payload()).unwrap();
    let mut kind = None;
    let mut opts = Vec::new();
    for o in d.options() {
        let o = o.unwrap();
        if let DhcpOption::MessageType(t) = o {
            kind = Some(t);
        }
        opts.push(o);
    }
    let raw: Vec<(u8, Vec<u8>)> = {
        let mut v = Vec::new();
        let b = d.options_raw();
        let mut i = 0;
        while i < b.len() && b[i] != 255 {
            if b[i] == 0 {
                i += 1;
                continue;
            }
            let l = usize::from(b[i + 1]);
            v.push((b[i], b[i + 2..i + 2 + l].to_vec()));
            i += 2 + l;
        }
        v
    };
    (kind.unwrap(), d.yiaddr(), raw)
}

fn opt(opts: &[(u8, Vec<u8>)], code: u8) -> Option<&[u8]> {
    opts.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v.as_slice())
}

fn dhcp_from_a1(msg: u8, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let mut opts: Vec<(u8, &[u8])> = vec![(53, std::slice::from_ref(&msg))];
    opts.extend_from_slice(extra);
    let m = dhcp4(0x1234_5678, A1, Ipv4Addr::UNSPECIFIED, &opts);
    eth(
        MacAddr::BROADCAST,
        A1,
        0x0800,
        &ipv4(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            17,
            64,
            false,
            &udp(68, 67, &m),
        ),
    )
}

#[test]
fn dhcpv4_hands_out_exactly_the_configured_lease() {
    let mut p = pipeline();
    let r = run(&mut p, a1(), &dhcp_from_a1(1, &[]));
    assert_eq!(r.action, Action::Port(PortIdx(0)));
    assert_eq!(&r.bytes[..6], &A1.octets(), "unicast to the client's MAC");
    assert_eq!(&r.bytes[6..12], &RA.octets(), "from the gateway MAC");
    let (kind, yiaddr, o) = dhcp_reply(&r.bytes);
    assert_eq!((kind, yiaddr), (DhcpMessageType::Offer, ip4("10.0.0.10")));
    assert_eq!(opt(&o, 1), Some(&[255, 255, 255, 0][..]), "mask");
    assert_eq!(opt(&o, 3), Some(&[10, 0, 0, 1][..]), "router");
    assert_eq!(opt(&o, 6), Some(&[10, 0, 0, 53][..]), "DNS");
    assert_eq!(opt(&o, 15), Some(&b"tenant.example"[..]), "domain");
    assert_eq!(opt(&o, 12), Some(&b"host-10-0-0-10"[..]), "host name");
    assert_eq!(opt(&o, 26), Some(&1450u16.to_be_bytes()[..]), "MTU");
    assert_eq!(opt(&o, 51), Some(&3600u32.to_be_bytes()[..]), "lease");
    assert_eq!(opt(&o, 58), Some(&1800u32.to_be_bytes()[..]), "T1");
    assert_eq!(
        opt(&o, 121),
        Some(&[16, 172, 16, 10, 0, 0, 254, 0, 10, 0, 0, 1][..]),
        "routes, default included"
    );
    // REQUEST for its address: ACK. For another: NAK (broadcast). Chose another server:
    // silence. RELEASE: noted.
    let r = run(
        &mut p,
        a1(),
        &dhcp_from_a1(3, &[(50, &[10, 0, 0, 10]), (54, &[10, 0, 0, 1])]),
    );
    assert_eq!(dhcp_reply(&r.bytes).0, DhcpMessageType::Ack);
    let r = run(&mut p, a1(), &dhcp_from_a1(3, &[(50, &[10, 0, 0, 99])]));
    assert_eq!(dhcp_reply(&r.bytes).0, DhcpMessageType::Nak);
    assert_eq!(&r.bytes[..6], &[0xff; 6]);
    assert_eq!(
        run(&mut p, a1(), &dhcp_from_a1(3, &[(54, &[10, 9, 9, 9])])).action,
        Action::Consumed
    );
    assert_eq!(
        run(&mut p, a1(), &dhcp_from_a1(7, &[])).action,
        Action::Consumed
    );
    for e in [
        Event::DhcpOffered,
        Event::DhcpAcked,
        Event::DhcpNaked,
        Event::DhcpReleased,
    ] {
        assert_eq!(p.counters().events(e), 1, "{e}");
    }
}

#[test]
fn dhcpv4_refuses_strangers_and_garbage() {
    let mut p = pipeline();
    // A client MAC that is not the port's.
    let m = dhcp4(1, B2, Ipv4Addr::UNSPECIFIED, &[(53, &[1])]);
    let f = eth(
        MacAddr::BROADCAST,
        A1,
        0x0800,
        &ipv4(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            17,
            64,
            false,
            &udp(68, 67, &m),
        ),
    );
    assert_eq!(
        run(&mut p, a1(), &f).action,
        Action::Drop(DropReason::DhcpNoBinding)
    );
    // Truncated, and no message type.
    let mut t = dhcp_from_a1(1, &[]);
    t.truncate(14 + 28 + 100);
    let total = u16::try_from(t.len() - 14).unwrap();
    t[16..18].copy_from_slice(&total.to_be_bytes());
    t[24..26].fill(0);
    let c = checksum::finish(checksum::sum(&t[14..34], 0));
    t[24..26].copy_from_slice(&c.to_be_bytes());
    t[38..40].copy_from_slice(&(total - 20).to_be_bytes());
    assert_eq!(
        run(&mut p, a1(), &t).action,
        Action::Drop(DropReason::DhcpMalformed)
    );
    let none = dhcp4(1, A1, Ipv4Addr::UNSPECIFIED, &[]);
    let f = eth(
        MacAddr::BROADCAST,
        A1,
        0x0800,
        &ipv4(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            17,
            64,
            false,
            &udp(68, 67, &none),
        ),
    );
    assert_eq!(
        run(&mut p, a1(), &f).action,
        Action::Drop(DropReason::DhcpMalformed)
    );
}

/// What a router advertisement said: source, flags, prefixes (prefix, length,
/// autonomous), MTU, and RDNSS servers.
type RaSummary = (
    Ipv6Addr,
    RouterFlags,
    Vec<(Ipv6Addr, u8, bool)>,
    Option<u32>,
    Vec<Ipv6Addr>,
);

fn ra_of(bytes: &[u8]) -> RaSummary {
    assert_eq!(&bytes[6..12], &bytes_of_gateway(bytes));
    let ip = Ipv6Packet::new_checked(&bytes[14..]).unwrap();
    assert_eq!(ip.hop_limit(), 255);
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
    let NdiscRepr::RouterAdvert {
        flags,
        mtu,
        options: RaOptions::Wire(opts),
        router_lifetime,
        ..
    } = NdiscRepr::parse(&icmp).unwrap()
    else {
        panic!("not an RA")
    };
    assert!(router_lifetime > 0);
    let mut prefixes = Vec::new();
    let mut dns = Vec::new();
    for o in NdiscOptions::new(opts) {
        match o.unwrap() {
            NdiscOption::PrefixInformation(pi) => {
                prefixes.push((pi.prefix, pi.prefix_len, pi.autonomous))
            }
            NdiscOption::Rdnss { servers, .. } => {
                dns.extend(crate::wire::ndp::rdnss_servers(servers))
            }
            _ => {}
        }
    }
    (ip.src_addr(), flags, prefixes, mtu, dns)
}

fn bytes_of_gateway(bytes: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&bytes[6..12]);
    m
}

#[test]
fn router_solicitations_get_the_segments_advertisement() {
    let mut p = pipeline();
    let all_routers = ip6("ff02::2");
    let f = eth(
        MacAddr::ipv6_multicast(all_routers),
        A1,
        0x86dd,
        &ipv6_icmp(A1.link_local(), all_routers, 255, &rs(A1)),
    );
    let r = run(&mut p, a1(), &f);
    assert_eq!(r.action, Action::Port(PortIdx(0)));
    assert_eq!(&r.bytes[6..12], &RA.octets());
    let (src, flags, prefixes, mtu, dns) = ra_of(&r.bytes);
    assert_eq!(
        src,
        RA.link_local(),
        "from the gateway's link-local address"
    );
    assert_eq!(flags.bits(), 0, "SLAAC: neither M nor O");
    assert_eq!(prefixes, vec![(ip6("fd00:a::"), 64, true)]);
    assert_eq!(mtu, Some(1450));
    assert_eq!(dns, vec![ip6("fd00:a::53")]);
    // Stateful DHCPv6 on VNI 200: M and O set, prefix not autonomous.
    let f = eth(
        MacAddr::ipv6_multicast(all_routers),
        C1,
        0x86dd,
        &ipv6_icmp(C1.link_local(), all_routers, 255, &rs(C1)),
    );
    let r = run(&mut p, c1(), &f);
    let (_, flags, prefixes, _, _) = ra_of(&r.bytes);
    assert!(flags.contains(RouterFlags::MANAGED) && flags.contains(RouterFlags::OTHER));
    assert_eq!(prefixes, vec![(ip6("fd00:b::"), 64, false)]);
    // A solicitation with hop limit 64 is invalid (RFC 4861 §6.1.1).
    let bad = eth(
        MacAddr::ipv6_multicast(all_routers),
        A1,
        0x86dd,
        &ipv6_icmp(A1.link_local(), all_routers, 64, &rs(A1)),
    );
    assert_eq!(
        run(&mut p, a1(), &bad).action,
        Action::Drop(DropReason::NdMalformed)
    );
}

#[test]
fn unsolicited_advertisements_go_to_local_ports() {
    let mut p = pipeline();
    let mut pool = BufPool::new(8, 2048);
    let mut out = Output::new();
    p.handle_timeout(T0, &mut pool, &mut out);
    let floods: Vec<_> = out
        .generated
        .iter()
        .filter(|(_, a)| {
            matches!(
                a,
                Action::Flood {
                    to_vteps: false,
                    exclude: None,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        floods.len(),
        2,
        "one per segment with local ports and an RA mode"
    );
    let (src, ..) = ra_of(floods[0].0.data());
    assert!(src.is_unicast_link_local());
    let count_ras = |p: &mut Pipeline, at: Timestamp| {
        let mut pool = BufPool::new(8, 2048);
        let mut out = Output::new();
        p.handle_timeout(at, &mut pool, &mut out);
        out.generated.len()
    };
    assert_eq!(
        count_ras(&mut p, T0.plus(Duration::from_secs(199))),
        0,
        "not again before 200 s"
    );
    assert_eq!(
        count_ras(&mut p, T0.plus(Duration::from_secs(601))),
        2,
        "again within 600 s"
    );
}

#[test]
fn dhcpv6_serves_stateful_addresses_and_stateless_information() {
    let mut p = pipeline();
    let client_duid = duid_ll(C1);
    let ia = [0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
    let server = ip6("ff02::1:2");
    let send = |p: &mut Pipeline, m: Vec<u8>| {
        let f = eth(
            MacAddr::ipv6_multicast(server),
            C1,
            0x86dd,
            &ipv6_udp(C1.link_local(), server, 546, 547, &m),
        );
        run(p, c1(), &f)
    };
    let r = send(
        &mut p,
        dhcp6(1, 0xabcdef, &[(1, &client_duid), (3, &ia), (8, &[0, 0])]),
    );
    assert_eq!(r.action, Action::Port(PortIdx(1)));
    let ip = Ipv6Packet::new_checked(&r.bytes[14..]).unwrap();
    assert_eq!(ip.dst_addr(), C1.link_local());
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(u.verify_checksum(&IpAddr::V6(ip.src_addr()), &IpAddr::V6(ip.dst_addr())));
    let m = Dhcpv6Packet::new_checked(u.payload()).unwrap();
    assert_eq!(m.msg_type(), Dhcpv6MessageType::Advertise);
    assert_eq!(m.xid(), 0xabcdef);
    let mut addr = None;
    let mut dns = Vec::new();
    for o in m.options() {
        match o.unwrap() {
            Dhcpv6Option::IaNa { options, .. } => {
                for i in crate::wire::dhcpv6::Dhcpv6Options::new(options) {
                    if let Ok(Dhcpv6Option::IaAddr { addr: a, .. }) = i {
                        addr = Some(a);
                    }
                }
            }
            Dhcpv6Option::DnsServers(s) => dns.extend(crate::wire::dhcpv6::ipv6_addrs(s)),
            _ => {}
        }
    }
    assert_eq!(addr, Some(ip6("fd00:b::30")));
    assert_eq!(dns, vec![ip6("fd00:b::53")]);
    // Information-request: a Reply with DNS and no address.
    let r = send(&mut p, dhcp6(11, 0x111111, &[(1, &client_duid)]));
    let ip = Ipv6Packet::new_checked(&r.bytes[14..]).unwrap();
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    let m = Dhcpv6Packet::new_checked(u.payload()).unwrap();
    assert_eq!(m.msg_type(), Dhcpv6MessageType::Reply);
    assert!(
        m.options()
            .all(|o| !matches!(o, Ok(Dhcpv6Option::IaNa { .. })))
    );
    // Garbage.
    let r = send(&mut p, vec![1, 2]);
    assert_eq!(r.action, Action::Drop(DropReason::DhcpMalformed));
    assert_eq!(p.counters().events(Event::Dhcp6Replied), 2);
}

#[test]
fn a_chatty_vm_is_limited_and_the_router_rate_limits_its_errors() {
    let mut p = pipeline();
    let req = eth(
        MacAddr::BROADCAST,
        A1,
        0x0806,
        &arp(1, A1, ip4("10.0.0.10"), MacAddr::ZERO, ip4("10.0.0.1")),
    );
    let answered = (0..80)
        .filter(|_| run(&mut p, a1(), &req).action == Action::Port(PortIdx(0)))
        .count();
    assert_eq!(answered, 50, "the burst, all at the same instant");
    assert_eq!(p.counters().drops(DropReason::PuntRateLimited), 30);
    // c1 is not affected by a1's flood.
    let req = eth(
        MacAddr::BROADCAST,
        C1,
        0x0806,
        &arp(1, C1, ip4("10.1.0.30"), MacAddr::ZERO, ip4("10.1.0.1")),
    );
    assert_eq!(run(&mut p, c1(), &req).action, Action::Port(PortIdx(1)));
    // 150 TTL=1 packets: 100 errors at most in a burst, every packet counted.
    let ttl1 = udp4_from_a1("10.1.0.20", 1, true, 4);
    let sent = (0..150)
        .filter(|_| run(&mut p, a1(), &ttl1).action == Action::Port(PortIdx(0)))
        .count();
    assert_eq!(sent, 100);
    assert_eq!(p.counters().drops(DropReason::TtlExceeded), 150);
    assert_eq!(p.counters().events(Event::IcmpRateLimited), 50);
    // A second later, errors flow again.
    let r = run_at(&mut p, T0.plus(Duration::from_secs(1)), a1(), &ttl1);
    assert_eq!(r.action, Action::Port(PortIdx(0)));
}

#[test]
fn router_configuration_is_validated() {
    let bad = CONFIG.replace(
        r#"routes = [{ destination = "192.168.0.0/16", nexthop = "10.1.0.99" }]"#,
        r#"routes = [{ destination = "192.168.0.0/16", nexthop = "10.9.0.99" }]"#,
    );
    let e = NodeConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert!(
        e.to_string().contains(
            "routers[0].routes[0].nexthop: 10.9.0.99 is on none of the router's networks"
        ),
        "{e}"
    );
    let bad = CONFIG.replace(
        "addresses = [\"10.1.0.1/24\", \"fd00:b::1/64\"]",
        "addresses = [\"10.0.0.5/24\"]",
    );
    let e = NodeConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert!(e.to_string().contains("overlaps interfaces[0]"), "{e}");
    let bad = CONFIG.replace(
        "gateway_mac = \"02:fe:00:00:00:02\"",
        "gateway_mac = \"02:fe:00:00:00:09\"",
    );
    let e = NodeConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert!(
        e.to_string()
            .contains("segments[1].gateway_mac: 02:fe:00:00:00:09 is neither a router interface"),
        "{e}"
    );
    let bad = CONFIG.replace(
        "ips = [\"10.1.0.30\", \"fd00:b::30\"]",
        "ips = [\"10.7.0.30\"]",
    );
    let e = NodeConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert!(
        e.to_string()
            .contains("ports[1].ips[0]: 10.7.0.30 is in none of VNI 200's subnets"),
        "{e}"
    );
    let bad = CONFIG.replace(
        "ipv6_address_mode = \"slaac\"",
        "ipv6_address_mode = \"dhcpv6-stateless\"",
    );
    let e = NodeConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert!(e.to_string().contains("must equal ipv6_ra_mode"), "{e}");
}

/// What one batch through the pipeline gave, in a form two runs can be compared by: the
/// actions, the packets' bytes, the generated packets (sorted: their order may differ), the
/// counters and the sizes of the tables.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BatchOutcome {
    actions: Vec<Action>,
    packets: Vec<Vec<u8>>,
    generated: Vec<(Vec<u8>, String)>,
    counters: crate::counters::Counters,
    tables: [usize; 3],
}

/// Runs `frames` as consecutive batches of at most 64 at `now` through `p`; also returns how
/// many packets were set aside for batched routing.
pub(crate) fn run_batches(
    p: &mut Pipeline,
    now: Timestamp,
    frames: &[(Source, Vec<u8>)],
) -> (BatchOutcome, usize) {
    let mut set_aside = 0;
    let mut pool = BufPool::new(256, 2048);
    let mut o = BatchOutcome {
        actions: Vec::new(),
        packets: Vec::new(),
        generated: Vec::new(),
        counters: crate::counters::Counters::default(),
        tables: [0; 3],
    };
    for chunk in frames.chunks(crate::BATCH_SIZE) {
        let mut batch = Batch::new();
        for (source, f) in chunk {
            let mut b = PacketBuf::new(2048);
            assert!(b.fill(f));
            b.meta.source = *source;
            batch.push(b).unwrap();
        }
        let mut out = Output::new();
        p.process(now, &mut batch, &mut pool, &mut out);
        set_aside += p.set_aside_last_batch();
        o.actions.extend(&out.actions);
        o.packets
            .extend(batch.packets().iter().map(|b| b.data().to_vec()));
        o.generated.extend(
            out.generated
                .iter()
                .map(|(b, a)| (b.data().to_vec(), format!("{a:?}"))),
        );
    }
    o.generated.sort();
    o.counters = p.counters().clone();
    o.tables = [p.conntrack_flows(), p.nat_sessions(), p.neighbors()];
    (o, set_aside)
}

/// `tables` with every router taking the batched route lookups, whatever its FIB's size.
pub(crate) fn with_batched_routing(mut t: crate::tables::Tables) -> crate::tables::Tables {
    for i in &mut t.router_ifs {
        i.batch_fib = true;
    }
    t
}

/// A mix of everything a router does with packets from VMs and from the underlay.
fn router_mix() -> Vec<(Source, Vec<u8>)> {
    let v6_from_a1 = |dst: &str, hop: u8| {
        let mut f = eth(
            RA,
            A1,
            0x86dd,
            &ipv6_udp(ip6("fd00:a::10"), ip6(dst), 7, 9, b"six"),
        );
        f[14 + 7] = hop;
        f
    };
    let from_b2 = |dst: &str| {
        vxlan(
            200,
            &eth(
                RB,
                B2,
                0x0800,
                &ipv4(ip4("10.1.0.20"), ip4(dst), 17, 64, true, &udp(1, 2, b"hi")),
            ),
        )
    };
    let ping_router = eth(
        RA,
        A1,
        0x0800,
        &ipv4(
            ip4("10.0.0.10"),
            ip4("10.0.0.1"),
            1,
            64,
            false,
            &icmp4_echo(7, 1, b"ping"),
        ),
    );
    let mut truncated = udp4_from_a1("10.1.0.20", 64, true, 4);
    truncated.truncate(14 + 12);
    let mut bad_sum = udp4_from_a1("10.1.0.20", 64, true, 4);
    bad_sum[14 + 10] ^= 0xff;
    let arp_to_router = eth(
        RA,
        A1,
        0x0806,
        &arp(2, A1, ip4("10.0.0.10"), RA, ip4("10.0.0.1")),
    );
    let kinds: Vec<(Source, Vec<u8>)> = vec![
        (a1(), udp4_from_a1("10.1.0.20", 64, true, 20)),
        (a1(), udp4_from_a1("10.1.0.30", 64, true, 20)),
        (a1(), udp4_from_a1("192.168.7.7", 64, true, 20)),
        (a1(), udp4_from_a1("8.8.8.8", 64, true, 20)),
        (a1(), udp4_from_a1("10.1.0.20", 1, true, 20)),
        (a1(), udp4_from_a1("10.1.0.20", 64, true, 1380)),
        (a1(), udp4_from_a1("10.1.0.20", 64, false, 1380)),
        (a1(), ping_router),
        (a1(), truncated),
        (a1(), bad_sum),
        (a1(), arp_to_router),
        (a1(), v6_from_a1("fd00:b::20", 64)),
        (a1(), v6_from_a1("fd00:b::30", 64)),
        (a1(), v6_from_a1("2001:db8::1", 64)),
        (a1(), v6_from_a1("fd00:b::20", 1)),
        (vtep(), from_b2("10.0.0.10")),
        (vtep(), from_b2("10.1.0.1")),
        (
            c1(),
            eth(B2, C1, 0x0800, &ipv4_udp_between("10.1.0.30", "10.1.0.20")),
        ),
    ];
    // Interleaved and repeated past one batch, with varying sizes.
    (0..150)
        .map(|i| {
            let (s, f) = &kinds[(i * 7) % kinds.len()];
            let mut f = f.clone();
            if f.len() > 60 && i % 3 == 0 {
                f.push(0);
            }
            (*s, f)
        })
        .collect()
}

fn ipv4_udp_between(src: &str, dst: &str) -> Vec<u8> {
    ipv4(ip4(src), ip4(dst), 17, 64, true, &udp(3, 4, b"l2"))
}

/// Routing a batch's packets together after the rest of the batch changes nothing a packet
/// gets: same actions, same bytes, same generated packets, same counters.
#[test]
fn batched_route_lookups_change_no_outcome() {
    let tables = || NodeConfig::from_toml(CONFIG).unwrap().validate().unwrap();
    assert!(
        tables().router_ifs.iter().all(|i| !i.batch_fib),
        "a small FIB is looked up a packet at a time"
    );
    let frames = router_mix();
    let mut plain = Pipeline::new(Arc::new(tables()));
    let mut batched = Pipeline::new(Arc::new(with_batched_routing(tables())));
    for now in [T0, T0.plus(Duration::from_millis(1500))] {
        let (a, none) = run_batches(&mut plain, now, &frames);
        let (b, set_aside) = run_batches(&mut batched, now, &frames);
        assert_eq!(a, b);
        assert_eq!(none, 0);
        assert!(
            set_aside > 60,
            "{set_aside} packets routed after their batch"
        );
        let routed = a
            .actions
            .iter()
            .filter(|x| matches!(x, Action::Vtep(_)))
            .count();
        assert!(routed > 20, "{:?}", a.actions);
        assert!(a.counters.events(Event::Routed) > 20);
        assert!(a.counters.drops(DropReason::TtlExceeded) > 0);
        assert!(a.counters.drops(DropReason::NoRoute) > 0);
        assert!(!a.generated.is_empty(), "{:?} {:?}", a.counters, a.actions);
    }
}

/// A router whose FIB outgrows the caches takes the batched lookups, and routes the same.
#[test]
fn a_large_fib_is_looked_up_a_batch_at_a_time() {
    let mut config = NodeConfig::from_toml(CONFIG).unwrap();
    let extra: Vec<_> = (0..20_000u32)
        .map(|i| crate::config::RouteConfig {
            destination: format!("100.{}.{}.0/24", i / 256, i % 256).parse().unwrap(),
            nexthop: "10.1.0.99".parse().unwrap(),
        })
        .collect();
    config.routers[0].routes.extend(extra);
    let t = config.validate().unwrap();
    assert!(t.router_ifs.iter().all(|i| i.batch_fib));
    let mut p = Pipeline::new(Arc::new(t));
    let (o, set_aside) = run_batches(&mut p, T0, &router_mix());
    assert!(
        set_aside > 60,
        "{set_aside} packets routed after their batch"
    );
    let mut q = pipeline();
    assert_eq!(o, run_batches(&mut q, T0, &router_mix()).0);
}
