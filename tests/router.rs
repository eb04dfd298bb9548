//! End-to-end tests of the tenant router and the VM services, in the Akanda layout: the router
//! lives on its own node and the VMs reach it over VXLAN; every VM gets its configuration from
//! Weft with the real clients a guest would run.
//!
//! ```text
//!   a1 (VNI 100: 10.0.0.0/24 DHCPv4, fd00:a::/64 SLAAC)      b1 (VNI 200: 10.1.0.0/24 DHCPv4,
//!      │ tapa1                                                  │ tapb1  fd00:b::/64 DHCPv6)
//!   [hv1: weft agent] ─────────── underlay switch ─────────── [hv2: weft agent]
//!    192.168.100.1                      │                       192.168.100.2
//!                             [rt: weft agent, router r1]
//!                              192.168.100.3  10.0.0.1 / fd00:a::1 on VNI 100
//!                                             10.1.0.1 / fd00:b::1 on VNI 200 (MTU 1400)
//! ```

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{Lab, eventually, stats};
use weft_dataplane::testing;
use weft_dataplane::wire::MacAddr;
use weft_dataplane::{DropReason, Event};

const A1: &str = "fa:16:3e:00:0a:01";
const B1: &str = "fa:16:3e:00:0b:01";
const RA: &str = "fa:16:3e:ff:00:01";
const RB: &str = "fa:16:3e:ff:00:02";
/// a1's SLAAC address: fd00:a:: with the EUI-64 identifier of its MAC.
const A1_V6: &str = "fd00:a::f816:3eff:fe00:a01";

fn router_node() -> String {
    format!(
        r#"
node = "rt"
[underlay]
local_ip = "192.168.100.3"
[[segments]]
vni = 100
[[segments]]
vni = 200
[[remote_vteps]]
ip = "192.168.100.1"
vnis = [100]
[[remote_vteps]]
ip = "192.168.100.2"
vnis = [200]
[[remote_bindings]]
vni = 100
mac = "{A1}"
ips = ["10.0.0.10", "{A1_V6}"]
vtep = "192.168.100.1"
[[remote_bindings]]
vni = 200
mac = "{B1}"
ips = ["10.1.0.20", "fd00:b::20"]
vtep = "192.168.100.2"
[[routers]]
name = "r1"
[[routers.interfaces]]
vni = 100
mac = "{RA}"
addresses = ["10.0.0.1/24", "fd00:a::1/64"]
[[routers.interfaces]]
vni = 200
mac = "{RB}"
addresses = ["10.1.0.1/24", "fd00:b::1/64"]
mtu = 1400
"#
    )
}

fn hv1() -> String {
    format!(
        r#"
node = "hv1"
[underlay]
local_ip = "192.168.100.1"
[[segments]]
vni = 100
gateway_mac = "{RA}"
dns_domain = "tenant.example"
[[segments.subnets]]
cidr = "10.0.0.0/24"
gateway_ip = "10.0.0.1"
dns_nameservers = ["10.0.0.53"]
host_routes = [{{ destination = "172.16.0.0/16", nexthop = "10.0.0.254" }}]
lease_secs = 600
[[segments.subnets]]
cidr = "fd00:a::/64"
gateway_ip = "fd00:a::1"
ipv6_ra_mode = "slaac"
ipv6_address_mode = "slaac"
dns_nameservers = ["fd00:a::53"]
[[ports]]
name = "a1"
interface = "tapa1"
vni = 100
mac = "{A1}"
ips = ["10.0.0.10", "{A1_V6}"]
[[ports]]
name = "d1"
interface = "tapd1"
vni = 100
mac = "fa:16:3e:00:0d:01"
[[remote_vteps]]
ip = "192.168.100.3"
vnis = [100]
[[remote_bindings]]
vni = 100
mac = "{RA}"
ips = ["10.0.0.1", "fd00:a::1"]
vtep = "192.168.100.3"
"#
    )
}

fn hv2() -> String {
    format!(
        r#"
node = "hv2"
[underlay]
local_ip = "192.168.100.2"
[[segments]]
vni = 200
gateway_mac = "{RB}"
[[segments.subnets]]
cidr = "10.1.0.0/24"
gateway_ip = "10.1.0.1"
dns_nameservers = ["10.1.0.53"]
[[segments.subnets]]
cidr = "fd00:b::/64"
gateway_ip = "fd00:b::1"
ipv6_ra_mode = "dhcpv6-stateful"
ipv6_address_mode = "dhcpv6-stateful"
dns_nameservers = ["fd00:b::53"]
[[ports]]
name = "b1"
interface = "tapb1"
vni = 200
mac = "{B1}"
ips = ["10.1.0.20", "fd00:b::20"]
hostname = "b1"
[[remote_vteps]]
ip = "192.168.100.3"
vnis = [200]
[[remote_bindings]]
vni = 200
mac = "{RB}"
ips = ["10.1.0.1", "fd00:b::1"]
vtep = "192.168.100.3"
"#
    )
}

struct Topo {
    rt: weft_testlab::AgentRef,
    hv1: weft_testlab::AgentRef,
    a1: String,
    b1: String,
    d1: String,
}

fn topology(lab: &mut Lab) -> Topo {
    let n1 = lab.netns("hv1");
    let n2 = lab.netns("hv2");
    let nr = lab.netns("rt");
    lab.underlay_switch(&[
        (&n1, "192.168.100.1/24"),
        (&n2, "192.168.100.2/24"),
        (&nr, "192.168.100.3/24"),
    ]);
    let a1 = lab.bare_vm(&n1, "a1", "tapa1", A1);
    let d1 = lab.bare_vm(&n1, "d1", "tapd1", "fa:16:3e:00:0d:01");
    let b1 = lab.bare_vm(&n2, "b1", "tapb1", B1);
    let rt = lab.agent("agent-rt", &nr, &router_node());
    let hv1 = lab.agent("agent-hv1", &n1, &hv1());
    let _hv2 = lab.agent("agent-hv2", &n2, &hv2());
    Topo {
        rt,
        hv1,
        a1,
        b1,
        d1,
    }
}

/// Applies what dhclient -4 was given, as a guest's own script would.
fn apply_v4(lab: &Lab, vm: &str, env: &std::collections::BTreeMap<String, String>) {
    let mask: Ipv4Addr = env["new_subnet_mask"].parse().unwrap();
    let prefix = u32::from(mask).count_ones();
    lab.ip(
        vm,
        &format!("link set eth0 mtu {}", env["new_interface_mtu"]),
    );
    lab.ip(
        vm,
        &format!("addr add {}/{prefix} dev eth0", env["new_ip_address"]),
    );
    lab.ip(
        vm,
        &format!("route add default via {} dev eth0", env["new_routers"]),
    );
}

#[test]
fn vms_get_their_configuration_and_reach_each_other_through_the_router() {
    let mut lab = common::lab();
    let t = topology(&mut lab);

    // DHCPv4 on VNI 100: exactly the configured lease and options.
    let env = lab.dhclient(&t.a1, "-4");
    let want = [
        ("new_ip_address", "10.0.0.10"),
        ("new_subnet_mask", "255.255.255.0"),
        ("new_routers", "10.0.0.1"),
        ("new_domain_name_servers", "10.0.0.53"),
        ("new_domain_name", "tenant.example"),
        ("new_host_name", "host-10-0-0-10"),
        ("new_interface_mtu", "1450"),
        ("new_dhcp_lease_time", "600"),
        (
            "new_rfc3442_classless_static_routes",
            "16 172 16 10 0 0 254 0 10 0 0 1",
        ),
        ("new_dhcp_server_identifier", "10.0.0.1"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    apply_v4(&lab, &t.a1, &env);
    let env = lab.dhclient(&t.b1, "-4");
    assert_eq!(
        env.get("new_ip_address").map(String::as_str),
        Some("10.1.0.20")
    );
    assert_eq!(env.get("new_host_name").map(String::as_str), Some("b1"));
    apply_v4(&lab, &t.b1, &env);

    // DHCPv6 (stateful) on VNI 200.
    let env6 = lab.dhclient(&t.b1, "-6");
    assert_eq!(
        env6.get("new_ip6_address").map(String::as_str),
        Some("fd00:b::20"),
        "{env6:?}"
    );
    assert_eq!(
        env6.get("new_dhcp6_name_servers").map(String::as_str),
        Some("fd00:b::53"),
        "{env6:?}"
    );
    lab.ip(
        &t.b1,
        &format!(
            "-6 addr add fd00:b::20/{} dev eth0 nodad",
            env6.get("new_ip6_prefixlen").map_or("128", String::as_str)
        ),
    );

    // The router advertisement on VNI 100, as rdisc6 sees it.
    let ra = lab.exec(&t.a1, &["rdisc6", "-1", "-w", "2000", "-r", "3", "eth0"]);
    for line in [
        "Stateful address conf.    :           No",
        "Stateful other conf.      :           No",
        "Prefix                   : fd00:a::/64",
        "MTU                      :         1450",
        "Recursive DNS server     : fd00:a::53",
        "Router lifetime          :         1800",
    ] {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            norm(&ra).contains(&norm(line)),
            "rdisc6 lacks {line:?}:\n{ra}"
        );
    }
    assert!(
        ra.contains("from fe80::f816:3eff:feff:1"),
        "RA not from the gateway's link-local address:\n{ra}"
    );
    // SLAAC: a1's address appears (and the stateful segment's RA tells b1 to use DHCPv6).
    assert!(
        eventually(Duration::from_secs(10), || lab
            .exec(&t.a1, &["ip", "-6", "addr", "show", "dev", "eth0"])
            .contains(A1_V6)),
        "no SLAAC address on a1"
    );
    let rb = lab.exec(&t.b1, &["rdisc6", "-1", "-w", "2000", "-r", "3", "eth0"]);
    assert!(
        rb.contains("Stateful address conf.    :          Yes"),
        "{rb}"
    );

    // Routing between the two subnets, both families, through the router on rt.
    assert!(lab.ping_until(&t.a1, "10.1.0.20", 5), "IPv4 a1 -> b1");
    assert!(lab.ping(&t.b1, "10.0.0.10", 3), "IPv4 b1 -> a1");
    assert!(lab.ping_until(&t.a1, "fd00:b::20", 5), "IPv6 a1 -> b1");
    assert!(lab.ping(&t.b1, A1_V6, 3), "IPv6 b1 -> a1");
    assert!(lab.ping(&t.a1, "10.0.0.1", 2), "the router answers pings");

    // traceroute shows the router hop; tracepath finds VNI 200's 1400-byte MTU. One probe a
    // hop, so a probe lost on a loaded host shows as `*`: up to three tries, 2 s apart (the
    // VM's kernel rate-limits its port-unreachable answers, about one a second).
    let trace = |family: &str, dst: &str, want: &[&str]| {
        let mut out = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(2));
            }
            out = lab.exec(
                &t.a1,
                &[
                    "traceroute",
                    family,
                    "-n",
                    "-q",
                    "1",
                    "-w",
                    "2",
                    "-m",
                    "4",
                    dst,
                ],
            );
            let hops: Vec<&str> = out
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(1))
                .collect();
            if hops == want {
                return;
            }
        }
        panic!("traceroute to {dst}: want hops {want:?}\n{out}");
    };
    trace("-4", "10.1.0.20", &["10.0.0.1", "10.1.0.20"]);
    trace("-6", "fd00:b::20", &["fd00:a::1", "fd00:b::20"]);
    let tp = lab.exec(&t.a1, &["tracepath", "-n", "10.1.0.20"]);
    assert!(
        tp.contains("pmtu 1400"),
        "tracepath did not find the path MTU:\n{tp}"
    );
    let tp6 = lab.exec(&t.a1, &["tracepath", "-n", "fd00:b::20"]);
    assert!(
        tp6.contains("pmtu 1400"),
        "tracepath -6 did not find the path MTU:\n{tp6}"
    );

    let s = stats(&t.rt);
    assert!(s.event_count(Event::Routed) > 10, "{}", s.render());
    assert!(s.event_count(Event::IcmpErrorSent) >= 2, "{}", s.render());
    let h = stats(&t.hv1);
    for e in [Event::DhcpOffered, Event::DhcpAcked, Event::RaSent] {
        assert!(h.event_count(e) >= 1, "{e}\n{}", h.render());
    }
}

fn inject(lab: &Lab, vm: &str, frames: Vec<Vec<u8>>) {
    lab.in_netns(vm, move || {
        let mut s = weft_dataplane_io::afpacket::AfPacket::open(
            "eth0",
            &weft_dataplane_io::afpacket::AfPacketConfig {
                vnet_hdr: false,
                ..Default::default()
            },
        )
        .expect("raw socket in the VM");
        for f in &frames {
            // A full ring is fine: what matters is that nothing breaks.
            let _ = s.send(f);
            if s.needs_flush() {
                s.flush().unwrap();
            }
        }
        s.flush().unwrap();
    });
}

#[test]
fn bad_input_is_counted_and_the_router_keeps_working() {
    let mut lab = common::lab();
    let t = topology(&mut lab);
    let env = lab.dhclient(&t.a1, "-4");
    apply_v4(&lab, &t.a1, &env);
    let env = lab.dhclient(&t.b1, "-4");
    apply_v4(&lab, &t.b1, &env);
    assert!(lab.ping_until(&t.a1, "10.1.0.20", 5), "baseline");
    let hv1_before = stats(&t.hv1);
    let rt_before = stats(&t.rt);

    let mac = |s: &str| s.parse::<MacAddr>().unwrap();
    let (a1, ra) = (mac(A1), mac(RA));
    let zero = Ipv4Addr::UNSPECIFIED;
    let bcast = Ipv4Addr::BROADCAST;
    let dhcp_frame = |src: MacAddr, payload: &[u8]| {
        testing::eth(
            MacAddr::BROADCAST,
            src,
            0x0800,
            &testing::ipv4(zero, bcast, 17, 64, false, &testing::udp(68, 67, payload)),
        )
    };
    let mut frames = vec![
        // DHCP: garbage after the UDP header, a truncated message, and one with no type.
        dhcp_frame(a1, &[1, 2, 3]),
        dhcp_frame(a1, &testing::dhcp4(7, a1, zero, &[(53, &[1])])[..200]),
        dhcp_frame(a1, &testing::dhcp4(7, a1, zero, &[])),
        // A router solicitation with a wrong hop limit, and an RA-shaped garbage message.
        testing::eth(
            mac("33:33:00:00:00:02"),
            a1,
            0x86dd,
            &testing::ipv6_icmp(
                a1.link_local(),
                "ff02::2".parse().unwrap(),
                64,
                &testing::rs(a1),
            ),
        ),
        testing::eth(
            mac("33:33:00:00:00:02"),
            a1,
            0x86dd,
            &testing::ipv6_icmp(
                a1.link_local(),
                "ff02::2".parse().unwrap(),
                255,
                &[133, 1, 0, 0, 0, 0, 0, 0],
            ),
        ),
    ];
    // A flood of TTL=1 packets to route (counted; errors rate-limited).
    let ttl1 = testing::eth(
        ra,
        a1,
        0x0800,
        &testing::ipv4(
            "10.0.0.10".parse().unwrap(),
            "10.1.0.20".parse().unwrap(),
            17,
            1,
            true,
            &testing::udp(1, 2, b"x"),
        ),
    );
    frames.extend(std::iter::repeat_n(ttl1, 1000));
    // A packet for a subnet nobody has: no route (an ICMP unreachable goes back).
    frames.push(testing::eth(
        ra,
        a1,
        0x0800,
        &testing::ipv4(
            "10.0.0.10".parse().unwrap(),
            "203.0.113.9".parse().unwrap(),
            17,
            64,
            true,
            &testing::udp(1, 2, b"x"),
        ),
    ));
    let flood_started = std::time::Instant::now();
    inject(&lab, &t.a1, frames);
    // DHCP from a port without an IPv4 binding (d1 has no address).
    let d1_mac = mac("fa:16:3e:00:0d:01");
    inject(
        &lab,
        &t.d1,
        vec![dhcp_frame(
            d1_mac,
            &testing::dhcp4(9, d1_mac, zero, &[(53, &[1])]),
        )],
    );

    let delta = |a: &weft_agent::stats::Snapshot,
                 b: &weft_agent::stats::Snapshot,
                 r: DropReason| a.drop_count(r) - b.drop_count(r);
    assert!(
        eventually(Duration::from_secs(15), || {
            let h = stats(&t.hv1);
            let r = stats(&t.rt);
            delta(&h, &hv1_before, DropReason::DhcpMalformed) >= 3
                && delta(&h, &hv1_before, DropReason::NdMalformed) >= 2
                && delta(&h, &hv1_before, DropReason::DhcpNoBinding) >= 1
                && delta(&r, &rt_before, DropReason::NoRoute) >= 1
                && delta(&r, &rt_before, DropReason::TtlExceeded)
                    + delta(&h, &hv1_before, DropReason::PuntRateLimited)
                    > 0
        }),
        "not every bad packet was counted:\nhv1 {}\nrt {}",
        stats(&t.hv1).render(),
        stats(&t.rt).render()
    );
    // Every TTL=1 packet hv1 read reaches the router and is counted there. On a loaded
    // machine hv1 may not read all 1000 (its ring overruns, counted as kernel drops), and the
    // count may still be growing when the other checks hold: wait for it, up to a bound.
    let lost = |h: &weft_agent::stats::Snapshot| {
        let drops = |s: &weft_agent::stats::Snapshot| s.port("a1").map_or(0, |p| p.kernel_drops);
        drops(h) - drops(&hv1_before)
    };
    let mut r = stats(&t.rt);
    let mut h = stats(&t.hv1);
    let counted = eventually(Duration::from_secs(10), || {
        r = stats(&t.rt);
        h = stats(&t.hv1);
        delta(&r, &rt_before, DropReason::TtlExceeded) + lost(&h) >= 990
    });
    let ttl = delta(&r, &rt_before, DropReason::TtlExceeded);
    assert!(
        counted && ttl >= 500,
        "TTL=1 packets counted at the router: {ttl}, lost before hv1 read them: {}\nhv1 {}\nrt {}",
        lost(&h),
        h.render(),
        r.render()
    );
    // The router's ICMP errors: a burst of 100, then 100 a second.
    let errors = r.event_count(Event::IcmpErrorSent) - rt_before.event_count(Event::IcmpErrorSent);
    let allowed = 110 + 100 * flood_started.elapsed().as_secs();
    assert!(
        errors <= allowed,
        "ICMP errors are rate-limited: {errors} sent for {ttl} (at most {allowed})"
    );
    // Everything still works, for the VM that misbehaved too.
    assert!(lab.ping(&t.a1, "10.1.0.20", 3), "routing still works");
    assert!(lab.ping(&t.b1, "10.1.0.1", 2), "the router still answers");
    let env = lab.dhclient(&t.b1, "-6");
    assert_eq!(
        env.get("new_ip6_address").map(String::as_str),
        Some("fd00:b::20")
    );
}
