//! End-to-end tests of the L2 overlay: two hypervisor namespaces joined by an underlay veth,
//! VM namespaces attached to them by veth, `weft agent` running the dataplane on each (or the
//! kernel's vxlan + bridge on one, for interoperability).
//!
//! ```text
//!   vm-a1 (10.0.0.1, fd00::1)      vm-a2 (10.0.0.2, fd00::2)     tenant A, VNI 100
//!   vm-b1 (10.0.0.1, fd00::1)      vm-b2 (10.0.0.2, fd00::2)     tenant B, VNI 200
//!      │ tapa1 / tapb1                 │ tapa2 / tapb2           (same MACs as tenant A too)
//!   [hv1: weft agent] ──── ul ──── [hv2: weft agent | kernel vxlan + bridge]
//!    192.168.100.1                  192.168.100.2
//! ```

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{Lab, contains_run, eventually, pcap_packets, stats};
use weft_dataplane::DropReason;
use weft_dataplane::testing;
use weft_dataplane::wire::MacAddr;

const MAC1: &str = "fa:16:3e:00:00:01";
const MAC2: &str = "fa:16:3e:00:00:02";

/// The node configuration of hypervisor `n` (1 or 2) of the two-hypervisor topology: both
/// tenants' VMs, with identical MACs and IPs, and the other hypervisor's VMs as remote bindings.
/// hv1 also has VNI 300, which no remote VTEP serves.
fn config(n: u8) -> String {
    let (me, other) = if n == 1 { (1, 2) } else { (2, 1) };
    let (mac_me, mac_other) = if n == 1 { (MAC1, MAC2) } else { (MAC2, MAC1) };
    let extra = if n == 1 {
        "[[segments]]\nvni = 300\n"
    } else {
        ""
    };
    format!(
        r#"
node = "hv{me}"
revision = 1

[underlay]
local_ip = "192.168.100.{me}"

[[segments]]
vni = 100

[[segments]]
vni = 200

{extra}
[[ports]]
name = "vm-a{me}"
interface = "tapa{me}"
vni = 100
mac = "{mac_me}"
ips = ["10.0.0.{me}", "fd00::{me}"]

[[ports]]
name = "vm-b{me}"
interface = "tapb{me}"
vni = 200
mac = "{mac_me}"
ips = ["10.0.0.{me}", "fd00::{me}"]

[[remote_vteps]]
ip = "192.168.100.{other}"
vnis = [100, 200]

[[remote_bindings]]
vni = 100
mac = "{mac_other}"
ips = ["10.0.0.{other}", "fd00::{other}"]
vtep = "192.168.100.{other}"

[[remote_bindings]]
vni = 200
mac = "{mac_other}"
ips = ["10.0.0.{other}", "fd00::{other}"]
vtep = "192.168.100.{other}"
"#
    )
}

struct Topo {
    hv1: String,
    hv2: String,
    a1: String,
    a2: String,
    b1: String,
    b2: String,
}

fn topology(lab: &mut Lab) -> Topo {
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    lab.underlay(&hv1, "192.168.100.1/24", &hv2, "192.168.100.2/24");
    let a1 = lab.vm(&hv1, "a1", "tapa1", MAC1, &["10.0.0.1/24", "fd00::1/64"]);
    let b1 = lab.vm(&hv1, "b1", "tapb1", MAC1, &["10.0.0.1/24", "fd00::1/64"]);
    let a2 = lab.vm(&hv2, "a2", "tapa2", MAC2, &["10.0.0.2/24", "fd00::2/64"]);
    let b2 = lab.vm(&hv2, "b2", "tapb2", MAC2, &["10.0.0.2/24", "fd00::2/64"]);
    Topo {
        hv1,
        hv2,
        a1,
        a2,
        b1,
        b2,
    }
}

/// Runs iperf3 for `bytes` from `client` to `server_addr` (server in `server`); panics if the
/// transfer does not complete.
fn tcp_transfer(lab: &mut Lab, server: &str, client: &str, server_addr: &str, bytes: &str) {
    let srv = lab.spawn(
        &format!("iperf3-{server}-{server_addr}"),
        server,
        &["iperf3", "-s", "-1", "-B", server_addr],
    );
    assert!(
        eventually(Duration::from_secs(15), || {
            let o = lab.try_exec(server, &["ss", "-ltn"]);
            String::from_utf8_lossy(&o.stdout).contains(":5201")
        }),
        "iperf3 server did not start"
    );
    let o = lab.try_exec(
        client,
        &[
            "timeout",
            "60",
            "iperf3",
            "-c",
            server_addr,
            "-n",
            bytes,
            "-J",
        ],
    );
    assert!(
        o.status.success(),
        "iperf3 to {server_addr} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    lab.wait(srv, Duration::from_secs(10));
}

/// 7a: tenant A's VMs reach each other across hypervisors over IPv4 and IPv6, and TCP works
/// (the VMs' veths use TSO, so this crosses the GSO segmentation path).
#[test]
fn vms_on_two_hypervisors_talk_over_ipv4_and_ipv6() {
    let mut lab = common::lab();
    let t = topology(&mut lab);
    let ag1 = lab.agent("agent-hv1", &t.hv1, &config(1));
    let ag2 = lab.agent("agent-hv2", &t.hv2, &config(2));

    assert!(lab.ping_until(&t.a1, "10.0.0.2", 5), "IPv4 ping a1 -> a2");
    assert!(lab.ping(&t.a1, "10.0.0.2", 5), "IPv4 ping a1 -> a2, all 5");
    assert!(lab.ping(&t.a2, "10.0.0.1", 5), "IPv4 ping a2 -> a1");
    assert!(lab.ping_until(&t.a1, "fd00::2", 5), "IPv6 ping a1 -> a2");
    assert!(lab.ping(&t.a2, "fd00::1", 5), "IPv6 ping a2 -> a1");
    tcp_transfer(&mut lab, &t.a2, &t.a1, "10.0.0.2", "20M");
    tcp_transfer(&mut lab, &t.a1, &t.a2, "fd00::1", "20M");

    let s1 = stats(&ag1);
    let s2 = stats(&ag2);
    // Address resolution was answered locally from the bindings, not flooded.
    assert!(
        s1.event_count(weft_dataplane::Event::ArpReplied) >= 1,
        "{}",
        s1.render()
    );
    assert!(
        s1.event_count(weft_dataplane::Event::NdReplied) >= 1,
        "{}",
        s1.render()
    );
    for s in [&s1, &s2] {
        assert!(
            s.underlay.rx_packets > 1000 && s.underlay.tx_packets > 1000,
            "{}",
            s.render()
        );
        for r in [
            DropReason::SpoofedMac,
            DropReason::SpoofedIp,
            DropReason::UnknownVtep,
            DropReason::MtuExceeded,
        ] {
            assert_eq!(s.drop_count(r), 0, "{r}\n{}", s.render());
        }
    }
}

/// 7b: tenant B uses the same addresses and MACs on another VNI at the same time; both work and
/// no frame of one tenant reaches the other, as captures inside every VM and on the agent show.
#[test]
fn tenants_with_identical_addresses_are_isolated() {
    let mut lab = common::lab();
    let t = topology(&mut lab);
    let ag1 = lab.agent("agent-hv1", &t.hv1, &config(1));
    let _ag2 = lab.agent("agent-hv2", &t.hv2, &config(2));

    let mut dumps = Vec::new();
    for vm in [&t.a1, &t.a2, &t.b1, &t.b2] {
        let file = lab.path(&format!("{vm}.pcap"));
        let label = format!("tcpdump-{vm}");
        let pid = lab.spawn(
            &label,
            vm,
            &[
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-U",
                "--immediate-mode",
                "-w",
                &file.to_string_lossy(),
            ],
        );
        let log = lab.path(&format!("{label}.log"));
        assert!(
            eventually(Duration::from_secs(10), || common::read(&log)
                .contains("listening on")),
            "tcpdump in {vm} did not start: {}",
            common::read(&log)
        );
        dumps.push((vm.clone(), pid, file));
    }
    let agent_cap = lab.path("agent-hv1-vm-b1.pcap");
    weft_agent::control::request(
        &ag1.control,
        &weft_agent::control::Request::CaptureStart {
            target: "vm-b1".into(),
            file: agent_cap.clone(),
            max_packets: None,
        },
    )
    .expect("capture start");

    // Both tenants at the same time, each with its own payload pattern.
    let (la, lb) = (&lab, &lab);
    std::thread::scope(|s| {
        let ha = s.spawn(|| {
            la.ping_until(&t.a1, "10.0.0.2", 5)
                && la.ping_pattern(&t.a1, "10.0.0.2", 10, "aa")
                && la.ping_pattern(&t.a1, "fd00::2", 10, "aa")
        });
        let hb = s.spawn(|| {
            lb.ping_until(&t.b1, "10.0.0.2", 5)
                && lb.ping_pattern(&t.b1, "10.0.0.2", 10, "bb")
                && lb.ping_pattern(&t.b1, "fd00::2", 10, "bb")
        });
        assert!(ha.join().unwrap(), "tenant A pings");
        assert!(hb.join().unwrap(), "tenant B pings");
    });

    let r = weft_agent::control::request(
        &ag1.control,
        &weft_agent::control::Request::CaptureStop {
            target: "vm-b1".into(),
        },
    )
    .expect("capture stop");
    assert!(
        r.packets.unwrap_or(0) >= 40,
        "agent capture too small: {r:?}"
    );
    let count = |pkts: &[Vec<u8>], b: u8| pkts.iter().filter(|p| contains_run(p, b, 24)).count();
    // A VM's own payload byte, and the other tenant's.
    let patterns = |vm: &String| {
        if vm == &t.a1 || vm == &t.a2 {
            (0xaa, 0xbb)
        } else {
            (0xbb, 0xaa)
        }
    };
    // The pings have their replies, but a tcpdump may not have written the last frames yet:
    // give it time before stopping it (the checks below say what was missing).
    eventually(Duration::from_secs(10), || {
        dumps
            .iter()
            .all(|(vm, _, file)| count(&common::pcap_packets_so_far(file), patterns(vm).0) >= 40)
    });
    for (_, pid, _) in &dumps {
        lab.stop(*pid);
    }

    for (vm, _, file) in &dumps {
        let pkts = pcap_packets(file);
        let (mine, theirs) = patterns(vm);
        // 20 requests each way in every VM: echo requests and replies, IPv4 and IPv6.
        assert!(
            count(&pkts, mine) >= 40,
            "{vm}: only {} own frames captured of {}:\n{}",
            count(&pkts, mine),
            pkts.len(),
            common::describe(&pkts)
        );

        assert_eq!(
            count(&pkts, theirs),
            0,
            "{vm}: saw the other tenant's frames"
        );
    }
    let pkts = pcap_packets(&agent_cap);
    assert!(
        count(&pkts, 0xbb) >= 40,
        "agent capture of vm-b1 lacks tenant B's frames"
    );
    assert_eq!(
        count(&pkts, 0xaa),
        0,
        "agent capture of vm-b1 holds tenant A's frames"
    );
}

/// 7c: one hypervisor runs Weft, the other the kernel's vxlan + bridge; VMs on the two talk,
/// and Weft learns the kernel side's MAC from the underlay.
#[test]
fn interoperates_with_kernel_vxlan() {
    let mut lab = common::lab();
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    lab.underlay(&hv1, "192.168.100.1/24", &hv2, "192.168.100.2/24");
    let a1 = lab.vm(&hv1, "a1", "tapa1", MAC1, &["10.0.0.1/24", "fd00::1/64"]);
    let a2 = lab.vm(&hv2, "a2", "tapa2", MAC2, &["10.0.0.2/24", "fd00::2/64"]);
    // hv2: kernel VXLAN (VNI 100, port 4789) bridged with the VM's veth, flooding to hv1.
    lab.ip(
        &hv2,
        "link add vx100 type vxlan id 100 local 192.168.100.2 dstport 4789 dev ul",
    );
    lab.ip(&hv2, "link add br100 type bridge");
    lab.ip(&hv2, "link set vx100 master br100");
    lab.ip(&hv2, "link set tapa2 master br100");
    lab.ip(&hv2, "link set vx100 up");
    lab.ip(&hv2, "link set br100 up");
    common::must(
        "bridge",
        &[
            "-n",
            &hv2,
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "vx100",
            "dst",
            "192.168.100.1",
        ],
    );
    // Between namespaces, a veth "offloads" checksums by never computing them: the kernel VTEP
    // would send inner TCP segments with only the pseudo-header checksum in place. A real NIC
    // completes them on the wire; make hv2's kernel complete them in software instead, so the
    // underlay carries what a real one would.
    lab.exec(&hv2, &["ethtool", "-K", "ul", "tx", "off"]);

    // hv1: Weft, with no binding for the kernel side's VM: it is learned.
    let cfg = format!(
        r#"
node = "hv1"
[underlay]
local_ip = "192.168.100.1"
[[segments]]
vni = 100
[[ports]]
name = "vm-a1"
interface = "tapa1"
vni = 100
mac = "{MAC1}"
ips = ["10.0.0.1", "fd00::1"]
[[remote_vteps]]
ip = "192.168.100.2"
vnis = [100]
"#
    );
    let ag1 = lab.agent("agent-hv1", &hv1, &cfg);
    assert!(lab.ping_until(&a1, "10.0.0.2", 5), "IPv4 weft -> kernel");
    assert!(lab.ping(&a2, "10.0.0.1", 5), "IPv4 kernel -> weft");
    assert!(lab.ping_until(&a1, "fd00::2", 5), "IPv6 weft -> kernel");
    assert!(lab.ping(&a2, "fd00::1", 5), "IPv6 kernel -> weft");
    tcp_transfer(&mut lab, &a2, &a1, "10.0.0.2", "20M");
    tcp_transfer(&mut lab, &a1, &a2, "10.0.0.1", "20M");

    let s = stats(&ag1);
    assert!(
        s.learned
            .iter()
            .any(|l| l.vni == 100 && l.mac == MAC2 && l.at == "vtep:192.168.100.2"),
        "the kernel side's MAC was not learned:\n{}",
        s.render()
    );
    assert_eq!(s.drop_count(DropReason::UnknownVtep), 0, "{}", s.render());
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("MAC")
}

/// An Ethernet frame from and to MACs written as strings.
fn frame(dst: &str, src: &str, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    testing::eth(mac(dst), mac(src), ethertype, payload)
}

/// IPv4 + an empty UDP datagram from `src` to `dst`.
fn ipv4_udp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    testing::ipv4_udp(src.into(), dst.into(), 12345, 12345, 0)
}

/// An ARP request from (`sha`, `spa`) for `tpa`.
fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    testing::arp(1, MacAddr(sha), spa.into(), MacAddr::ZERO, tpa.into())
}

/// 7d: a VM spoofing another MAC or IP, VXLAN from an unknown VTEP, and truncated or garbage
/// frames and datagrams are dropped and counted by reason; everyone else keeps talking.
#[test]
fn spoofed_and_garbage_traffic_is_dropped_and_counted() {
    let mut lab = common::lab();
    let t = topology(&mut lab);
    let ag1 = lab.agent("agent-hv1", &t.hv1, &config(1));
    let _ag2 = lab.agent("agent-hv2", &t.hv2, &config(2));
    assert!(lab.ping_until(&t.a1, "10.0.0.2", 5), "baseline ping");
    let before = stats(&ag1);

    // From VM a1's own NIC.
    let mac1: [u8; 6] = mac(MAC1).octets();

    let bad_frames: Vec<(DropReason, Vec<u8>)> = vec![
        (
            DropReason::SpoofedMac,
            frame(
                MAC2,
                "fa:16:3e:99:99:99",
                0x0800,
                &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2]),
            ),
        ),
        (
            DropReason::SpoofedIp,
            frame(MAC2, MAC1, 0x0800, &ipv4_udp([10, 0, 0, 77], [10, 0, 0, 2])),
        ),
        (
            DropReason::SpoofedArp,
            frame(
                "ff:ff:ff:ff:ff:ff",
                MAC1,
                0x0806,
                &arp_request(mac1, [10, 0, 0, 2], [10, 0, 0, 9]),
            ),
        ),
        (
            DropReason::SpoofedArp,
            frame(
                "ff:ff:ff:ff:ff:ff",
                MAC1,
                0x0806,
                &arp_request([2, 0, 0, 0, 0, 9], [10, 0, 0, 1], [10, 0, 0, 2]),
            ),
        ),
        (
            DropReason::EtherTypeNotAllowed,
            frame("01:80:c2:00:00:0e", MAC1, 0x88cc, &[0u8; 46]),
        ),
        (
            DropReason::VlanTagged,
            frame(MAC2, MAC1, 0x8100, &[0, 5, 8, 0, 0x45, 0, 0, 20]),
        ),
        // An IPv4 header cut after 3 bytes (AF_PACKET will not send less than an Ethernet
        // header, so that is as short as a VM can make it).
        (
            DropReason::Truncated,
            frame(MAC2, MAC1, 0x0800, &[0x45, 0, 0]),
        ),
        // IPv4 with a header length of 3 words.
        (
            DropReason::Malformed,
            frame(MAC2, MAC1, 0x0800, &[0x43; 30]),
        ),
        (
            DropReason::MulticastSource,
            frame(
                MAC2,
                "01:00:5e:00:00:01",
                0x0800,
                &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2]),
            ),
        ),
    ];
    let to_send: Vec<Vec<u8>> = bad_frames.iter().map(|(_, f)| f.clone()).collect();
    lab.in_netns(&t.a1, move || {
        let mut s = weft_dataplane_io::afpacket::AfPacket::open(
            "eth0",
            &weft_dataplane_io::afpacket::AfPacketConfig {
                vnet_hdr: false,
                ..Default::default()
            },
        )
        .expect("raw socket in the VM");
        for f in &to_send {
            assert_eq!(s.send(f).unwrap(), weft_dataplane_io::SendOutcome::Queued);
        }
        s.flush().unwrap();
    });

    // From the underlay: garbage from the known VTEP, and VXLAN from an address hv1 does not
    // know.
    lab.ip(&t.hv2, "addr add 192.168.100.66/24 dev ul");
    let vxlan = |vni: u32, inner: &[u8]| {
        let v = vni.to_be_bytes();
        let mut p = vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0];
        p.extend_from_slice(inner);
        p
    };
    let valid_inner = frame(MAC1, MAC2, 0x0800, &ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1]));
    let from_vtep: Vec<(DropReason, Vec<u8>)> = vec![
        (DropReason::BadVxlan, vec![0x08, 0, 0]),
        (DropReason::BadVxlan, {
            let mut p = vxlan(100, &valid_inner);
            p[0] = 0;
            p
        }),
        (DropReason::UnknownVni, vxlan(999, &valid_inner)),
        (DropReason::VtepNotInSegment, vxlan(300, &valid_inner)),
        (DropReason::Truncated, vxlan(100, &[1, 2, 3, 4, 5])),
        (
            DropReason::RemoteMacConflict,
            vxlan(
                100,
                &frame(MAC2, MAC1, 0x0800, &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2])),
            ),
        ),
    ];
    let dgrams: Vec<Vec<u8>> = from_vtep.iter().map(|(_, d)| d.clone()).collect();
    let rogue = vxlan(100, &valid_inner);
    lab.in_netns(&t.hv2, move || {
        let dst: SocketAddr = "192.168.100.1:4789".parse().unwrap();
        let s = UdpSocket::bind("192.168.100.2:0").unwrap();
        for d in &dgrams {
            s.send_to(d, dst).unwrap();
        }
        let r = UdpSocket::bind("192.168.100.66:0").unwrap();
        for _ in 0..3 {
            r.send_to(&rogue, dst).unwrap();
        }
    });

    let mut want = std::collections::BTreeMap::new();
    for (r, _) in bad_frames.iter().chain(from_vtep.iter()) {
        *want.entry(*r).or_insert(0u64) += 1;
    }
    *want.entry(DropReason::UnknownVtep).or_insert(0) += 3;
    let delta =
        |s: &weft_agent::stats::Snapshot, r: DropReason| s.drop_count(r) - before.drop_count(r);
    let ok = eventually(Duration::from_secs(15), || {
        let s = stats(&ag1);
        want.iter().all(|(r, n)| delta(&s, *r) >= *n)
    });
    let s = stats(&ag1);
    assert!(
        ok,
        "not every bad packet was counted:\nwant {want:?}\n{}",
        s.render()
    );
    for (r, n) in &want {
        assert_eq!(
            delta(&s, *r),
            *n,
            "{r}: exactly the injected packets\n{}",
            s.render()
        );
    }
    // Everyone else keeps talking, the spoofer included through its legitimate address.
    assert!(lab.ping(&t.a1, "10.0.0.2", 3), "tenant A still works");
    assert!(lab.ping(&t.b1, "fd00::2", 3), "tenant B still works");
    assert!(lab.exited(ag1.pid).is_none(), "the agent survived");
}

/// A VM cannot reach its hypervisor's own network stack through its interface: the host does not
/// answer its ARP, and VXLAN it sends to the host's VTEP address with a trusted VTEP's source
/// address (a cross-tenant injection attempt) never reaches the agent's underlay socket. The
/// dataplane still sees, drops and counts those frames.
#[test]
fn vms_cannot_reach_the_hypervisor_stack() {
    let mut lab = common::lab();
    let t = topology(&mut lab);
    let ag1 = lab.agent("agent-hv1", &t.hv1, &config(1));
    let _ag2 = lab.agent("agent-hv2", &t.hv2, &config(2));
    assert!(lab.ping_until(&t.a1, "10.0.0.2", 5), "baseline ping");

    // ARP for the hypervisor's underlay address, through the VM's own link.
    lab.ip(&t.a1, "route add 192.168.100.1/32 dev eth0");
    assert!(
        !lab.ping(&t.a1, "192.168.100.1", 1),
        "the hypervisor answered the VM"
    );
    let neigh = lab.exec(&t.a1, &["ip", "neigh", "show", "192.168.100.1"]);
    assert!(
        !neigh.contains("lladdr"),
        "the hypervisor answered the VM's ARP: {neigh}"
    );

    // Even knowing the host side's MAC, spoofed VXLAN from the VM does not reach the agent.
    let link = lab.exec(&t.hv1, &["ip", "-o", "link", "show", "tapa1"]);
    let tap_mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("tap MAC")
        .to_owned();
    assert!(
        link.contains("NOARP"),
        "the agent did not isolate tapa1: {link}"
    );
    lab.ip(
        &t.a1,
        &format!("neigh replace 192.168.100.1 lladdr {tap_mac} dev eth0"),
    );
    lab.ip(&t.a1, "addr add 192.168.100.2/32 dev eth0");
    let before = stats(&ag1);
    let cap = lab.path("hv1-underlay.pcap");
    weft_agent::control::request(
        &ag1.control,
        &weft_agent::control::Request::CaptureStart {
            target: "underlay".into(),
            file: cap.clone(),
            max_packets: None,
        },
    )
    .expect("capture start");
    let marker = "fa:16:3e:00:00:ee";
    let inner = frame(
        MAC1,
        marker,
        0x0800,
        &ipv4_udp([10, 0, 0, 9], [10, 0, 0, 1]),
    );
    lab.in_netns(&t.a1, move || {
        let s = UdpSocket::bind("192.168.100.2:4789").unwrap();
        let mut d = vec![0x08, 0, 0, 0, 0, 0, 200, 0];
        d.extend_from_slice(&inner);
        for _ in 0..5 {
            s.send_to(&d, "192.168.100.1:4789").unwrap();
        }
    });
    assert!(
        eventually(Duration::from_secs(10), || stats(&ag1)
            .drop_count(DropReason::SpoofedIp)
            >= before.drop_count(DropReason::SpoofedIp) + 5),
        "the dataplane did not see the spoofed frames"
    );
    std::thread::sleep(Duration::from_millis(300));
    weft_agent::control::request(
        &ag1.control,
        &weft_agent::control::Request::CaptureStop {
            target: "underlay".into(),
        },
    )
    .expect("capture stop");
    // Background traffic (neighbour discovery from hv2's VMs) may cross the underlay meanwhile;
    // what must not is a datagram carrying the spoofed frame.
    let m = mac(marker).octets();
    let leaked = pcap_packets(&cap)
        .iter()
        .filter(|p| p.windows(6).any(|w| w == m))
        .count();
    assert_eq!(leaked, 0, "spoofed VXLAN reached the underlay socket");
    let after = stats(&ag1);
    assert!(
        after.learned.is_empty(),
        "a MAC was learned from the spoofed VXLAN: {:?}",
        after.learned
    );
}

/// The underlay can be IPv6: VTEPs on fd00:100::/64, tenant traffic over it (IPv4 and IPv6),
/// segment MTU 1500 - 70 = 1430 by default, which TCP respects once the VMs know it.
#[test]
fn ipv6_underlay() {
    let mut lab = common::lab();
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    lab.underlay(&hv1, "fd00:100::1/64", &hv2, "fd00:100::2/64");
    let a1 = lab.vm(&hv1, "a1", "tapa1", MAC1, &["10.0.0.1/24", "fd00::1/64"]);
    let a2 = lab.vm(&hv2, "a2", "tapa2", MAC2, &["10.0.0.2/24", "fd00::2/64"]);
    for vm in [&a1, &a2] {
        lab.ip(vm, "link set eth0 mtu 1430");
    }
    let cfg = |me: u8, other: u8, mac_me: &str, mac_other: &str| {
        format!(
            r#"
node = "hv{me}"
[underlay]
local_ip = "fd00:100::{me}"
[[segments]]
vni = 100
[[ports]]
name = "vm-a{me}"
interface = "tapa{me}"
vni = 100
mac = "{mac_me}"
ips = ["10.0.0.{me}", "fd00::{me}"]
[[remote_vteps]]
ip = "fd00:100::{other}"
vnis = [100]
[[remote_bindings]]
vni = 100
mac = "{mac_other}"
ips = ["10.0.0.{other}", "fd00::{other}"]
vtep = "fd00:100::{other}"
"#
        )
    };
    let ag1 = lab.agent("agent-hv1", &hv1, &cfg(1, 2, MAC1, MAC2));
    let _ag2 = lab.agent("agent-hv2", &hv2, &cfg(2, 1, MAC2, MAC1));
    assert!(
        lab.ping_until(&a1, "10.0.0.2", 5),
        "IPv4 over an IPv6 underlay"
    );
    assert!(
        lab.ping_until(&a1, "fd00::2", 5),
        "IPv6 over an IPv6 underlay"
    );
    tcp_transfer(&mut lab, &a2, &a1, "10.0.0.2", "5M");
    let s = stats(&ag1);
    assert_eq!(s.underlay.local, "[fd00:100::1]:4789");
    assert!(s.underlay.rx_packets > 100, "{}", s.render());
    // No drops, except those a loaded machine can cause (a full ring or pool for a moment).
    for &r in DropReason::ALL {
        if !matches!(
            r,
            DropReason::NoBuffer | DropReason::TxRingFull | DropReason::UnderlayBusy
        ) {
            assert_eq!(s.drop_count(r), 0, "{r}\n{}", s.render());
        }
    }
}
