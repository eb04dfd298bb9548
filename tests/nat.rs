//! End-to-end tests of security groups and NAT: two tenants with the same CIDR behind their own
//! routers share one external network, reached through an uplink; an "internet" namespace sits
//! on that network. At the end, a SYN flood at a floating IP fills only its tenant's share of
//! the connection tracker while the other tenant keeps connecting.
//!
//! ```text
//!  a1 10.0.0.10 (sg web, FIP 203.0.113.11)  a2 10.0.0.11 (sg a)   b1 10.0.0.10 (sg b)
//!      │ tapa1                                 │ tapa2               │ tapb1
//!   ───┴──── VNI 100 (tenant A) ───────────────┴──┐        ┌── VNI 200 (tenant B) ──┘
//!                                          router ra       router rb
//!                                   10.0.0.1 │ 203.0.113.10   10.0.0.1 │ 203.0.113.20
//!   [rt: weft agent]                         └──── VNI 999 (external, uplink upl0) ────┘
//!                                                          │
//!                                   inet: 203.0.113.1, 203.0.113.2 (stund, iperf3, servers)
//! ```

mod common;

use std::time::Duration;

use common::{Lab, eventually, stats};
use weft_dataplane::{DropReason, Event};

const A1: &str = "fa:16:3e:00:0a:01";
const A2: &str = "fa:16:3e:00:0a:02";
const B1: &str = "fa:16:3e:00:0b:01";
const RA: &str = "fa:16:3e:ff:00:01";
const RAX: &str = "fa:16:3e:ff:00:02";
const RB: &str = "fa:16:3e:ff:00:03";
const RBX: &str = "fa:16:3e:ff:00:04";

fn config() -> String {
    format!(
        r#"
node = "rt"
[underlay]
local_ip = "192.168.100.3"
[limits]
conntrack_max = 20000
conntrack_per_tenant = 2000
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
mac = "{A1}"
ips = ["10.0.0.10"]
security_groups = ["web"]
project = "tenant-a"
[[ports]]
name = "a2"
interface = "tapa2"
vni = 100
mac = "{A2}"
ips = ["10.0.0.11"]
security_groups = ["a"]
project = "tenant-a"
[[ports]]
name = "b1"
interface = "tapb1"
vni = 200
mac = "{B1}"
ips = ["10.0.0.10"]
security_groups = ["b"]
project = "tenant-b"

[[security_groups]]
name = "web"
rules = [
  {{ direction = "egress", ethertype = "IPv4" }},
  {{ direction = "ingress", ethertype = "IPv4", protocol = 6, port_range_min = 8080, port_range_max = 8080 }},
  {{ direction = "ingress", ethertype = "IPv4", protocol = 1, port_range_min = 8 }},
]
[[security_groups]]
name = "a"
rules = [
  {{ direction = "egress", ethertype = "IPv4" }},
  {{ direction = "ingress", ethertype = "IPv4", protocol = 6, port_range_min = 22, port_range_max = 22 }},
]
[[security_groups]]
name = "b"
rules = [{{ direction = "egress", ethertype = "IPv4" }}]

[[routers]]
name = "ra"
project = "tenant-a"
routes = [{{ destination = "0.0.0.0/0", nexthop = "203.0.113.1" }}]
gateway = {{ vni = 999 }}
floating_ips = [{{ external = "203.0.113.11", internal = "10.0.0.10" }}]
port_forwardings = [
  {{ protocol = "tcp", external = "203.0.113.12", external_port = 2222, internal = "10.0.0.11", internal_port = 22 }},
]
[[routers.interfaces]]
vni = 100
mac = "{RA}"
addresses = ["10.0.0.1/24"]
[[routers.interfaces]]
vni = 999
mac = "{RAX}"
addresses = ["203.0.113.10/24"]

[[routers]]
name = "rb"
project = "tenant-b"
routes = [{{ destination = "0.0.0.0/0", nexthop = "203.0.113.1" }}]
gateway = {{ vni = 999 }}
[[routers.interfaces]]
vni = 200
mac = "{RB}"
addresses = ["10.0.0.1/24"]
[[routers.interfaces]]
vni = 999
mac = "{RBX}"
addresses = ["203.0.113.20/24"]
"#
    )
}

struct Topo {
    rt: weft_testlab::AgentRef,
    inet: String,
    a1: String,
    a2: String,
    b1: String,
}

fn topology(lab: &mut Lab) -> Topo {
    let rt = lab.netns("rt");
    let inet = lab.netns("inet");
    // The node's underlay: nothing else on it here.
    lab.ip(&rt, "link add ul0 type veth peer name ul1");
    lab.ip(&rt, "link set ul1 up");
    lab.ip(&rt, "addr add 192.168.100.3/24 dev ul0");
    lab.ip(&rt, "link set ul0 up");
    // The uplink to the external network.
    lab.ip(
        &rt,
        &format!("link add upl0 type veth peer name eth0 netns {inet}"),
    );
    lab.sysctl(&rt, "net.ipv6.conf.upl0.disable_ipv6=1");
    lab.ip(&rt, "link set upl0 up");
    lab.ip(&inet, "addr add 203.0.113.1/24 dev eth0");
    lab.ip(&inet, "addr add 203.0.113.2/24 dev eth0");
    lab.ip(&inet, "link set eth0 up");
    let a1 = lab.vm(&rt, "a1", "tapa1", A1, &["10.0.0.10/24"]);
    let a2 = lab.vm(&rt, "a2", "tapa2", A2, &["10.0.0.11/24"]);
    let b1 = lab.vm(&rt, "b1", "tapb1", B1, &["10.0.0.10/24"]);
    for vm in [&a1, &a2, &b1] {
        lab.ip(vm, "route add default via 10.0.0.1");
    }
    let agent = lab.agent("agent-rt", &rt, &config());
    Topo {
        rt: agent,
        inet,
        a1,
        a2,
        b1,
    }
}

#[test]
fn snat_floating_ips_port_forwarding_and_security_groups() {
    let mut lab = common::lab();
    let t = topology(&mut lab);
    lab.tell_peer_server(&t.inet, 7000);
    lab.tell_peer_server(&t.a1, 8080);
    lab.tell_peer_server(&t.a1, 8081);
    lab.tell_peer_server(&t.a2, 22);
    std::thread::sleep(Duration::from_millis(300));

    // SNAT: each tenant leaves by its own router's address, same inside addresses or not.
    assert!(lab.ping_until(&t.a2, "203.0.113.1", 5), "a2 -> internet");
    let seen = lab
        .ask_peer_until(&t.a2, "203.0.113.1", 7000)
        .expect("a2 reaches inet");
    assert!(seen.starts_with("203.0.113.10:"), "a2 seen as {seen}");
    let seen = lab
        .ask_peer_until(&t.b1, "203.0.113.1", 7000)
        .expect("b1 reaches inet");
    assert!(seen.starts_with("203.0.113.20:"), "b1 seen as {seen}");
    // A floating IP: a1 leaves as its floating IP...
    let seen = lab
        .ask_peer_until(&t.a1, "203.0.113.1", 7000)
        .expect("a1 reaches inet");
    assert!(seen.starts_with("203.0.113.11:"), "a1 seen as {seen}");
    // ... and is reached by it, on the ports its security group allows only.
    let seen = lab
        .ask_peer_until(&t.inet, "203.0.113.11", 8080)
        .expect("FIP port 8080");
    assert!(
        seen.starts_with("203.0.113.1:"),
        "inet seen by a1 as {seen}"
    );
    assert!(lab.ping(&t.inet, "203.0.113.11", 2), "ping the FIP");
    let before = stats(&t.rt).drop_count(DropReason::SecurityGroup);
    assert_eq!(
        lab.ask_peer(&t.inet, "203.0.113.11", 8081),
        None,
        "8081 is not allowed"
    );
    assert!(stats(&t.rt).drop_count(DropReason::SecurityGroup) > before);
    // Port forwarding: 203.0.113.12:2222 -> a2:22.
    let seen = lab
        .ask_peer_until(&t.inet, "203.0.113.12", 2222)
        .expect("port forwarding");
    assert!(
        seen.starts_with("203.0.113.1:"),
        "inet seen by a2 as {seen}"
    );
    // Nothing unsolicited gets in through SNAT or to b1.
    assert_eq!(lab.ask_peer(&t.inet, "203.0.113.20", 22), None);

    // An ICMP port unreachable comes back through the NAT to the sender.
    let code = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                s.settimeout(3)\ns.connect(('203.0.113.1',9))\n\
                for i in range(3):\n  s.send(b'x')\n  try:\n    s.recv(10)\n  except ConnectionRefusedError:\n    print('refused')\n    break\n  except OSError:\n    pass\n";
    let out = lab.exec(&t.a2, &["python3", "-c", code]);
    assert!(
        out.contains("refused"),
        "no port unreachable through SNAT: {out:?}"
    );

    // Many concurrent TCP and UDP connections through SNAT.
    lab.spawn(
        "iperf3-server",
        &t.inet,
        &["iperf3", "-s", "-B", "203.0.113.1"],
    );
    std::thread::sleep(Duration::from_millis(500));
    for (what, args) in [
        ("tcp", vec!["-P", "64", "-t", "3"]),
        ("udp", vec!["-u", "-P", "64", "-b", "2M", "-t", "3"]),
    ] {
        let mut argv = vec![
            "iperf3",
            "-c",
            "203.0.113.1",
            "-J",
            "--connect-timeout",
            "3000",
        ];
        argv.extend(args);
        let out = lab.try_exec(&t.a2, &argv);
        let json = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "iperf3 {what} failed: {json}");
        let v: serde_json::Value = serde_json::from_str(&json).expect("iperf3 JSON");
        let streams = v["start"]["connected"].as_array().map_or(0, Vec::len);
        assert_eq!(streams, 64, "iperf3 {what} streams");
        let bytes = v["end"]["sum_received"]["bytes"]
            .as_f64()
            .or_else(|| v["end"]["sum"]["bytes"].as_f64())
            .unwrap_or(0.0);
        assert!(bytes > 0.0, "iperf3 {what} moved nothing: {json}");
    }

    // RFC 4787 behaviour as a STUN client classifies it: endpoint-independent mapping,
    // address-and-port-dependent filtering ("port dependent filter"), ports preserved.
    lab.spawn(
        "stund",
        &t.inet,
        &["stund", "-h", "203.0.113.1", "-a", "203.0.113.2"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut verdict = String::new();
    let ok = eventually(Duration::from_secs(30), || {
        let out = lab.try_exec(&t.a2, &["stun", "203.0.113.1"]);
        verdict = String::from_utf8_lossy(&out.stdout).into_owned();
        verdict.contains("Primary:")
    });
    assert!(ok, "stun gave no verdict: {verdict}");
    assert!(
        verdict.contains("Independent Mapping, Port Dependent Filter"),
        "{verdict}"
    );
    assert!(verdict.contains("preserves ports"), "{verdict}");

    let s = stats(&t.rt);
    assert!(s.event_count(Event::FlowCreated) > 0);
    assert_eq!(s.drop_count(DropReason::ConntrackFull), 0);

    // A SYN flood at the floating IP from spoofed sources. To a closed port it creates no
    // state; to an open one it fills tenant a's share of the tracker (2000) and no more, and
    // tenant b keeps making new connections.
    //
    // On a loaded machine the kernel may drop part of a burst before the agent reads it (an
    // AF_PACKET ring overrun, counted as the uplink's kernel drops), so the check is that
    // every SYN the agent did read was dropped by the security group, and that most arrived.
    let flows_before = s.event_count(Event::FlowCreated);
    let sg_before = s.drop_count(DropReason::SecurityGroup);
    let (rx_before, kdrops_before) = uplink_rx(&s);
    syn_flood(&lab, &t.inet, "203.0.113.11", 8081, 3000);
    let mut s = stats(&t.rt);
    let settled = eventually(Duration::from_secs(10), || {
        s = stats(&t.rt);
        let read = uplink_rx(&s).0 - rx_before;
        // A few frames besides the SYNs (ARP) may be read meanwhile.
        read >= 1000 && s.drop_count(DropReason::SecurityGroup) - sg_before + 10 >= read
    });
    let (rx, kdrops) = uplink_rx(&s);
    assert!(
        settled,
        "SYNs to a closed port: {} read, {} lost by the kernel, {} dropped by security \
         group: {:?}",
        rx - rx_before,
        kdrops - kdrops_before,
        s.drop_count(DropReason::SecurityGroup) - sg_before,
        s.drops
    );
    assert!(
        s.event_count(Event::FlowCreated) < flows_before + 100,
        "SYNs to a closed port made state"
    );
    syn_flood(&lab, &t.inet, "203.0.113.11", 8080, 5000);
    let mut s = stats(&t.rt);
    let filled = eventually(Duration::from_secs(10), || {
        s = stats(&t.rt);
        s.drop_count(DropReason::ConntrackTenantFull) > 0
    });
    let (rx_after, kdrops_after) = uplink_rx(&s);
    assert!(
        filled,
        "tenant a's share never filled: {} SYNs read, {} lost by the kernel: {:?}",
        rx_after - rx,
        kdrops_after - kdrops,
        s.drops
    );
    assert_eq!(s.drop_count(DropReason::ConntrackFull), 0);
    let seen = lab
        .ask_peer_until(&t.b1, "203.0.113.1", 7000)
        .expect("tenant b during tenant a's SYN flood");
    assert!(seen.starts_with("203.0.113.20:"), "b1 seen as {seen}");
}

/// Frames the agent read from the uplink (VNI 999's), and those the kernel dropped before it
/// could.
fn uplink_rx(s: &weft_agent::stats::Snapshot) -> (u64, u64) {
    let p = s
        .port("uplink-999")
        .unwrap_or_else(|| panic!("no uplink in {:?}", s.ports));
    (p.rx_packets, p.kernel_drops)
}

/// Sends `count` TCP SYNs from `ns` to `dst:dport` through a raw socket, each from a
/// different spoofed source (198.18.0.0/15) and port, as fast as python sends them.
fn syn_flood(lab: &Lab, ns: &str, dst: &str, dport: u16, count: u32) {
    let code = format!(
        r#"import socket,struct
def csum(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('!%dH'%(len(b)//2),b))
    while s>>16: s=(s&0xffff)+(s>>16)
    return (~s)&0xffff
d=socket.inet_aton('{dst}')
r=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)
for i in range({count}):
    s=bytes([198,18+(i>>16&1),i>>8&255,i&255])
    tcp=struct.pack('!HHIIBBHHH',1024+i%60000,{dport},i*7919,0,5<<4,2,64240,0,0)
    c=csum(s+d+struct.pack('!BBH',0,6,len(tcp))+tcp)
    tcp=tcp[:16]+struct.pack('!H',c)+tcp[18:]
    ip=struct.pack('!BBHHHBBH4s4s',0x45,0,40,i&0xffff,0,64,6,0,s,d)
    ip=ip[:10]+struct.pack('!H',csum(ip))+ip[12:]
    r.sendto(ip+tcp,('{dst}',0))
print('sent')
"#
    );
    let out = lab.exec(ns, &["python3", "-c", &code]);
    assert!(out.contains("sent"), "syn flood: {out}");
    // Let the agent take the burst in.
    std::thread::sleep(Duration::from_millis(500));
}
