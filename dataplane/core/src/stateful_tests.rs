//! Security-group and NAT scenarios on in-memory packets: what `stateful.rs` does at VM ports
//! and at a router's gateway, checked on the bytes that leave.
//!
//! The node hosts VMs a1 (10.0.0.10, group "web", floating IP 203.0.113.11) and a2 (10.0.0.11,
//! group "out", SNAT) of tenant A, c1 (10.0.0.10, tenant B, on its own segment and router), and
//! routers r1 / r2 whose gateways sit on the external segment behind the uplink `upl0`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::NodeConfig;
use crate::counters::{DropReason, Event};
use crate::ids::PortIdx;
use crate::l3_tests::{Run, run_at};
use crate::packet::{Batch, BufPool, PacketBuf, Source};
use crate::pipeline::{Action, Output, Pipeline};
use crate::testing::{arp, eth, icmp4_echo, ipv4, tcp4, udp};
use crate::time::Timestamp;
use crate::wire::MacAddr;
use crate::wire::checksum;

const A1: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
const A2: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 2]);
const C1: MacAddr = MacAddr([0x02, 0xcc, 0, 0, 0, 1]);
const R1: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 1]);
const R1X: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 1, 1]);
const R2: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 2]);
const INET: MacAddr = MacAddr([0x02, 0x99, 0, 0, 0, 1]);

fn config(web_port: u16, per_tenant: u32) -> String {
    format!(
        r#"
node = "gw"
[underlay]
local_ip = "192.168.100.1"
[limits]
conntrack_max = 1024
conntrack_per_tenant = {per_tenant}
nat_max = 1024
[[segments]]
vni = 100
[[segments]]
vni = 200
[[segments]]
vni = 999
uplink = "upl0"
[[ports]]
name = "a1"
interface = "tapa1"
vni = 100
mac = "02:aa:00:00:00:01"
ips = ["10.0.0.10"]
security_groups = ["web"]
project = "A"
[[ports]]
name = "a2"
interface = "tapa2"
vni = 100
mac = "02:aa:00:00:00:02"
ips = ["10.0.0.11"]
security_groups = ["out"]
project = "A"
[[ports]]
name = "c1"
interface = "tapc1"
vni = 200
mac = "02:cc:00:00:00:01"
ips = ["10.0.0.10"]
security_groups = ["out"]
project = "B"
[[security_groups]]
name = "web"
rules = [
  {{ direction = "egress", ethertype = "IPv4" }},
  {{ direction = "ingress", ethertype = "IPv4", protocol = 6, port_range_min = {web_port}, port_range_max = {web_port} }},
]
[[security_groups]]
name = "out"
rules = [{{ direction = "egress", ethertype = "IPv4" }}]
[[routers]]
name = "r1"
project = "A"
routes = [{{ destination = "0.0.0.0/0", nexthop = "203.0.113.1" }}]
gateway = {{ vni = 999 }}
floating_ips = [{{ external = "203.0.113.11", internal = "10.0.0.10" }}]
[[routers.interfaces]]
vni = 100
mac = "02:fe:00:00:00:01"
addresses = ["10.0.0.1/24"]
[[routers.interfaces]]
vni = 999
mac = "02:fe:00:00:01:01"
addresses = ["203.0.113.10/24"]
[[routers]]
name = "r2"
project = "B"
routes = [{{ destination = "0.0.0.0/0", nexthop = "203.0.113.1" }}]
gateway = {{ vni = 999 }}
[[routers.interfaces]]
vni = 200
mac = "02:fe:00:00:00:02"
addresses = ["10.0.0.1/24"]
[[routers.interfaces]]
vni = 999
mac = "02:fe:00:00:01:02"
addresses = ["203.0.113.20/24"]
"#
    )
}

fn tables(web_port: u16, per_tenant: u32) -> Arc<crate::tables::Tables> {
    Arc::new(
        NodeConfig::from_toml(&config(web_port, per_tenant))
            .unwrap()
            .validate()
            .unwrap(),
    )
}

const A1P: Source = Source::Port(PortIdx(0));
const A2P: Source = Source::Port(PortIdx(1));
const C1P: Source = Source::Port(PortIdx(2));
const UPLINK: Source = Source::Port(PortIdx(3));

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

const T0: Timestamp = Timestamp(10_000_000_000);

fn run(p: &mut Pipeline, source: Source, frame: &[u8]) -> Run {
    run_at(p, T0, source, frame)
}

/// An IPv4 TCP packet with correct checksums.
fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    ipv4(
        src,
        dst,
        6,
        64,
        true,
        &tcp4(src, dst, sport, dport, flags, seq, ack, &[]),
    )
}

/// A TCP segment from the internet host 198.51.100.7:5555 to `dst`, arriving by the uplink.
fn from_inet(dst: &str, dport: u16, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    frame(
        R1X,
        INET,
        &tcp(ip("198.51.100.7"), ip(dst), 5555, dport, flags, seq, ack),
    )
}

/// a1's TCP segment from 10.0.0.10:8080 back to 198.51.100.7:5555.
fn a1_to_inet(flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    frame(
        R1,
        A1,
        &tcp(
            ip("10.0.0.10"),
            ip("198.51.100.7"),
            8080,
            5555,
            flags,
            seq,
            ack,
        ),
    )
}

/// a2's IPv4 packet to 198.51.100.7 with protocol `proto` and transport bytes `l4`.
fn a2_to_inet(proto: u8, df: bool, l4: &[u8]) -> Vec<u8> {
    frame(
        R1,
        A2,
        &ipv4(ip("10.0.0.11"), ip("198.51.100.7"), proto, 64, df, l4),
    )
}

fn frame(dst: MacAddr, src: MacAddr, l3: &[u8]) -> Vec<u8> {
    eth(dst, src, 0x0800, l3)
}

/// Checks the IPv4 header checksum and the TCP checksum of a frame; returns (src, sport, dst,
/// dport).
fn check_tcp(f: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let l3 = &f[14..];
    assert_eq!(
        checksum::fold(checksum::sum(&l3[..20], 0)),
        0xffff,
        "IPv4 header checksum"
    );
    let src = Ipv4Addr::new(l3[12], l3[13], l3[14], l3[15]);
    let dst = Ipv4Addr::new(l3[16], l3[17], l3[18], l3[19]);
    let seg = &l3[20..];
    let ph = checksum::pseudo_header_v4(&src, &dst, crate::wire::ip::IpProtocol::Tcp, 20);
    assert_eq!(
        checksum::fold(checksum::sum(seg, ph)),
        0xffff,
        "TCP checksum"
    );
    (
        src,
        u16::from_be_bytes([seg[0], seg[1]]),
        dst,
        u16::from_be_bytes([seg[2], seg[3]]),
    )
}

/// A pipeline whose router r1 knows the internet gateway's MAC: the first packet out is held
/// while the router asks for it, the answer releases it.
fn with_gateway_resolved(p: &mut Pipeline) {
    let syn = frame(
        R1,
        A2,
        &tcp(ip("10.0.0.11"), ip("198.51.100.7"), 999, 80, 0x02, 1, 0),
    );
    let r = run(p, A2P, &syn);
    assert!(
        matches!(r.action, Action::Flood { .. }),
        "held, and an ARP probe out in its place: {:?}",
        r.action
    );
    assert_eq!(&r.bytes[12..14], &[8, 6]);
    let reply = eth(
        R1X,
        INET,
        0x0806,
        &arp(2, INET, ip("203.0.113.1"), R1X, ip("203.0.113.10")),
    );
    let r = run(p, UPLINK, &reply);
    assert_eq!(r.generated.len(), 1, "the held packet goes out");
    assert_eq!(r.generated[0].1, Action::Port(PortIdx(3)));
}

#[test]
fn snat_translates_out_and_back_and_filters_the_unsolicited() {
    let mut p = Pipeline::new(tables(8080, 1000));
    with_gateway_resolved(&mut p);
    let syn = frame(
        R1,
        A2,
        &tcp(ip("10.0.0.11"), ip("198.51.100.7"), 40000, 443, 0x02, 7, 0),
    );
    let r = run(&mut p, A2P, &syn);
    assert_eq!(r.action, Action::Port(PortIdx(3)), "out of the uplink");
    assert_eq!(&r.bytes[0..6], &INET.octets());
    let (src, sport, dst, dport) = check_tcp(&r.bytes);
    assert_eq!(
        (src, sport, dst, dport),
        (ip("203.0.113.10"), 40000, ip("198.51.100.7"), 443)
    );
    // The answer comes back to a2.
    let synack = frame(
        R1X,
        INET,
        &tcp(
            ip("198.51.100.7"),
            ip("203.0.113.10"),
            443,
            40000,
            0x12,
            100,
            8,
        ),
    );
    let r = run(&mut p, UPLINK, &synack);
    assert_eq!(r.action, Action::Port(PortIdx(1)));
    assert_eq!(&r.bytes[0..6], &A2.octets());
    let (src, sport, dst, dport) = check_tcp(&r.bytes);
    assert_eq!(
        (src, sport, dst, dport),
        (ip("198.51.100.7"), 443, ip("10.0.0.11"), 40000)
    );
    // The same host from another port, or another host: refused (address-and-port-dependent
    // filtering).
    for (h, port) in [("198.51.100.7", 444), ("198.51.100.8", 443)] {
        let x = frame(
            R1X,
            INET,
            &tcp(ip(h), ip("203.0.113.10"), port, 40000, 0x02, 1, 0),
        );
        assert_eq!(
            run(&mut p, UPLINK, &x).action,
            Action::Drop(DropReason::NatNoSession)
        );
    }
    // The router's gateway address still answers pings.
    let ping = frame(
        R1X,
        INET,
        &ipv4(
            ip("198.51.100.7"),
            ip("203.0.113.10"),
            1,
            64,
            false,
            &icmp4_echo(5, 1, b"hi"),
        ),
    );
    let r = run(&mut p, UPLINK, &ping);
    assert_eq!(r.action, Action::Port(PortIdx(3)), "echo reply");
}

#[test]
fn an_icmp_error_about_a_translated_flow_is_translated_back() {
    let mut p = Pipeline::new(tables(8080, 1000));
    with_gateway_resolved(&mut p);
    let dgram = a2_to_inet(17, false, &udp(5000, 9, b"x"));
    let r = run(&mut p, A2P, &dgram);
    assert_eq!(r.action, Action::Port(PortIdx(3)));
    let quote = r.bytes[14..].to_vec();
    assert_eq!(&quote[12..16], &[203, 0, 113, 10]);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quote);
    let c = checksum::finish(checksum::sum(&icmp, 0));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let err = frame(
        R1X,
        INET,
        &ipv4(ip("198.51.100.7"), ip("203.0.113.10"), 1, 64, false, &icmp),
    );
    let r = run(&mut p, UPLINK, &err);
    assert_eq!(
        r.action,
        Action::Port(PortIdx(1)),
        "to a2, related to its flow"
    );
    let l3 = &r.bytes[14..];
    assert_eq!(&l3[16..20], &[10, 0, 0, 11], "outer destination");
    assert_eq!(&l3[28 + 12..28 + 16], &[10, 0, 0, 11], "quoted source");
    assert_eq!(
        checksum::fold(checksum::sum(&l3[20..], 0)),
        0xffff,
        "ICMP checksum"
    );
    assert_eq!(
        checksum::fold(checksum::sum(&l3[28..48], 0)),
        0xffff,
        "quoted header checksum"
    );
}

#[test]
fn floating_ips_translate_both_ways_within_the_security_groups() {
    let mut p = Pipeline::new(tables(8080, 1000));
    with_gateway_resolved(&mut p);
    let syn = from_inet("203.0.113.11", 8080, 0x02, 1, 0);
    let r = run(&mut p, UPLINK, &syn);
    assert_eq!(r.action, Action::Port(PortIdx(0)), "to a1");
    let (_, _, dst, dport) = check_tcp(&r.bytes);
    assert_eq!((dst, dport), (ip("10.0.0.10"), 8080));
    let before = p.counters().drops(DropReason::SecurityGroup);
    let syn = from_inet("203.0.113.11", 8081, 0x02, 1, 0);
    assert_eq!(
        run(&mut p, UPLINK, &syn).action,
        Action::Drop(DropReason::SecurityGroup)
    );
    assert_eq!(p.counters().drops(DropReason::SecurityGroup), before + 1);
    // a1's answer leaves as the floating IP.
    let synack = a1_to_inet(0x12, 50, 2);
    let r = run(&mut p, A1P, &synack);
    assert_eq!(r.action, Action::Port(PortIdx(3)));
    let (src, sport, _, _) = check_tcp(&r.bytes);
    assert_eq!((src, sport), (ip("203.0.113.11"), 8080));
    // The uplink's ARP for the floating IP is answered by the gateway.
    let who = eth(
        MacAddr::BROADCAST,
        INET,
        0x0806,
        &arp(
            1,
            INET,
            ip("203.0.113.1"),
            MacAddr::ZERO,
            ip("203.0.113.11"),
        ),
    );
    let r = run(&mut p, UPLINK, &who);
    assert_eq!(r.action, Action::Port(PortIdx(3)));
    assert_eq!(
        &r.bytes[22..28],
        &R1X.octets(),
        "answered with the gateway's MAC"
    );
}

#[test]
fn changed_rules_cut_established_flows_they_no_longer_allow() {
    let mut p = Pipeline::new(tables(8080, 1000));
    with_gateway_resolved(&mut p);
    let syn = from_inet("203.0.113.11", 8080, 0x02, 1, 0);
    assert_eq!(run(&mut p, UPLINK, &syn).action, Action::Port(PortIdx(0)));
    let synack = a1_to_inet(0x12, 50, 2);
    assert_eq!(run(&mut p, A1P, &synack).action, Action::Port(PortIdx(3)));
    let ack = from_inet("203.0.113.11", 8080, 0x10, 2, 51);
    assert_eq!(run(&mut p, UPLINK, &ack).action, Action::Port(PortIdx(0)));
    // The same rules again: the flow stays.
    let mut pool = BufPool::new(8, 2048);
    p.swap_tables(tables(8080, 1000), &mut pool);
    assert_eq!(run(&mut p, UPLINK, &ack).action, Action::Port(PortIdx(0)));
    // Port 8080 no longer allowed: the next packet is dropped and the flow forgotten.
    p.swap_tables(tables(9090, 1000), &mut pool);
    assert_eq!(
        run(&mut p, UPLINK, &ack).action,
        Action::Drop(DropReason::SecurityGroup)
    );
    assert_eq!(p.counters().events(Event::FlowCut), 1);
}

#[test]
fn one_tenant_filling_its_share_does_not_stop_another() {
    let mut p = Pipeline::new(tables(8080, 3));
    let udp_from = |mac: MacAddr, src: &str, sport: u16| {
        frame(
            R1,
            mac,
            &ipv4(ip(src), ip("10.0.0.1"), 17, 64, false, &udp(sport, 7, b"x")),
        )
    };
    // Tenant A's ports a1 and a2 send new flows (to the router's inside address, which
    // answers with port unreachable: what matters is the conntrack entry at the port).
    let mut drops = 0;
    for i in 0..6 {
        let r = run(&mut p, A2P, &udp_from(A2, "10.0.0.11", 1000 + i));
        if r.action == Action::Drop(DropReason::ConntrackTenantFull) {
            drops += 1;
        }
    }
    assert_eq!(drops, 3, "tenant A holds at most 3 flows");
    let r = run(
        &mut p,
        C1P,
        &frame(
            R2,
            C1,
            &ipv4(
                ip("10.0.0.10"),
                ip("10.0.0.1"),
                17,
                64,
                false,
                &udp(1000, 7, b"x"),
            ),
        ),
    );
    assert_ne!(
        r.action,
        Action::Drop(DropReason::ConntrackTenantFull),
        "tenant B"
    );
    // Expiry frees the share: UDP without an answer lasts 30 s.
    let later = T0.plus(Duration::from_secs(31));
    let mut pool = BufPool::new(8, 2048);
    let mut out = Output::new();
    for i in 0..200u64 {
        p.handle_timeout(
            later.plus(Duration::from_millis(50 * i)),
            &mut pool,
            &mut out,
        );
    }
    let r = run_at(
        &mut p,
        later.plus(Duration::from_secs(11)),
        A2P,
        &udp_from(A2, "10.0.0.11", 2000),
    );
    assert_ne!(r.action, Action::Drop(DropReason::ConntrackTenantFull));
}

#[test]
fn vms_cannot_act_as_dhcp_servers() {
    let mut p = Pipeline::new(tables(8080, 1000));
    let offer = eth(
        MacAddr::BROADCAST,
        A1,
        0x0800,
        &ipv4(
            ip("10.0.0.10"),
            ip("255.255.255.255"),
            17,
            64,
            false,
            &udp(67, 68, &[0; 240]),
        ),
    );
    assert_eq!(
        run(&mut p, A1P, &offer).action,
        Action::Drop(DropReason::DhcpServerGuard)
    );
}

#[test]
fn floods_reach_filtered_ports_only_for_address_configuration() {
    let t = tables(8080, 1000);
    let (a1, uplink) = (&t.ports[0], &t.ports[3]);
    let bcast = eth(
        MacAddr::BROADCAST,
        A2,
        0x0800,
        &ipv4(
            ip("10.0.0.11"),
            ip("10.0.0.255"),
            17,
            64,
            false,
            &udp(9, 9, b"x"),
        ),
    );
    assert!(!crate::firewall::flood_allowed(a1, &bcast), "IP broadcast");
    assert!(crate::firewall::flood_allowed(uplink, &bcast), "no groups");
    let offer = eth(
        MacAddr::BROADCAST,
        A2,
        0x0800,
        &ipv4(
            ip("10.0.0.1"),
            ip("255.255.255.255"),
            17,
            64,
            false,
            &udp(67, 68, &[0; 8]),
        ),
    );
    assert!(crate::firewall::flood_allowed(a1, &offer), "DHCP reply");
    let who = eth(
        MacAddr::BROADCAST,
        A2,
        0x0806,
        &arp(1, A2, ip("10.0.0.11"), MacAddr::ZERO, ip("10.0.0.10")),
    );
    assert!(crate::firewall::flood_allowed(a1, &who), "ARP");
    assert!(!crate::firewall::flood_allowed(a1, &[0u8; 10]), "garbage");
}

/// Routing a batch's packets together after the rest of the batch gives every packet the same
/// fate through the security groups and NAT of two routers: requests in one batch, the
/// answers in the next.
#[test]
fn batched_route_lookups_change_no_stateful_outcome() {
    let build = || {
        NodeConfig::from_toml(&config(8080, 1000))
            .unwrap()
            .validate()
            .unwrap()
    };
    let out = |sport: u16, src: &str, from: MacAddr, to: MacAddr, dport: u16| {
        frame(
            to,
            from,
            &tcp(ip(src), ip("198.51.100.7"), sport, dport, 0x02, 1, 0),
        )
    };
    let mut requests = Vec::new();
    let mut answers = Vec::new();
    for i in 0..40u16 {
        requests.push((A2P, out(40_000 + i, "10.0.0.11", A2, R1, 443)));
        requests.push((C1P, out(41_000 + i, "10.0.0.10", C1, R2, 443)));
        requests.push((UPLINK, from_inet("203.0.113.11", 8080 + i % 2, 0x02, 5, 0)));
        requests.push((UPLINK, from_inet("203.0.113.10", 40_000 + i, 0x12, 9, 2)));
        answers.push((
            UPLINK,
            frame(
                R1X,
                INET,
                &tcp(
                    ip("198.51.100.7"),
                    ip("203.0.113.10"),
                    443,
                    40_000 + i,
                    0x12,
                    100,
                    2,
                ),
            ),
        ));
        answers.push((A1P, a1_to_inet(0x12, 50, 6)));
    }
    // r2's gateway answers while r2 holds packets for it.
    let r2x = MacAddr([0x02, 0xfe, 0, 0, 1, 2]);
    let resolve = eth(
        r2x,
        INET,
        0x0806,
        &arp(2, INET, ip("203.0.113.1"), r2x, ip("203.0.113.20")),
    );
    let mut plain = Pipeline::new(Arc::new(build()));
    let mut batched = Pipeline::new(Arc::new(crate::l3_tests::with_batched_routing(build())));
    for p in [&mut plain, &mut batched] {
        with_gateway_resolved(p);
    }
    let mut set_aside = 0;
    for frames in [&requests, &vec![(UPLINK, resolve)], &answers] {
        let (a, none) = crate::l3_tests::run_batches(&mut plain, T0, frames);
        let (b, n) = crate::l3_tests::run_batches(&mut batched, T0, frames);
        assert_eq!(a, b);
        assert_eq!(none, 0);
        set_aside += n;
    }
    assert!(
        set_aside >= 160,
        "{set_aside} packets routed after their batch"
    );
    assert!(plain.counters().events(Event::Routed) >= 120);
    assert!(plain.nat_sessions() >= 40);
    assert!(plain.conntrack_flows() >= 40);
}

/// The warming pass reads every packet of a batch before anything has checked it: whatever
/// the bytes and wherever they come from, it must not panic. `process` warms only large
/// tables (`WARM_FROM`), which the fuzz targets never build, so the pass is driven directly
/// here, over frames of every kind cut short and with bytes flipped.
#[test]
fn warming_reads_any_bytes_without_failing() {
    let mut p = Pipeline::new(tables(8080, 1000));
    with_gateway_resolved(&mut p);
    assert!(p.nat_sessions() > 0, "a session to find");
    let seeds = [
        a1_to_inet(0x10, 1, 1),
        from_inet("203.0.113.11", 8080, 0x02, 1, 0),
        from_inet("203.0.113.10", 999, 0x12, 1, 2),
        a2_to_inet(17, true, &udp(53, 53, b"q")),
        a2_to_inet(1, true, &icmp4_echo(7, 1, b"")),
        eth(R1, A2, 0x86dd, &[0x60; 60]),
    ];
    let sources = [
        A1P,
        A2P,
        C1P,
        UPLINK,
        Source::Underlay("192.168.100.2:4789".parse().unwrap()),
        Source::None,
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        usize::try_from(x % u64::try_from(n).unwrap()).unwrap()
    };
    for _ in 0..300 {
        let mut batch = Batch::new();
        for _ in 0..crate::BATCH_SIZE {
            let source = sources[next(sources.len())];
            let mut f = seeds[next(seeds.len())].clone();
            if matches!(source, Source::Underlay(_)) {
                f.splice(0..0, [0x08, 0, 0, 0, 0, 0, 100, 0]);
            }
            for _ in 0..next(4) {
                let i = next(f.len());
                f[i] ^= u8::try_from(next(255) + 1).unwrap();
            }
            f.truncate(next(f.len() + 1));
            let mut b = PacketBuf::new(2048);
            assert!(b.fill(&f));
            b.meta.source = source;
            batch.push(b).unwrap();
        }
        p.warm_only(&batch);
    }
}
