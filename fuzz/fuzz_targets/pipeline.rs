#![no_main]
//! The whole pipeline (switching, the tenant router, DHCPv4, DHCPv6, router advertisements)
//! fed arbitrary packets from every source, with timers and a table swap; with the first input
//! byte odd, the stateful configuration: security groups on the ports, the router's gateway on
//! an uplink segment with SNAT, a floating IP and a port forwarding, and swaps that alternate
//! between two rule sets (established flows are classified again). With the mode byte's bit 1
//! set, every router takes the batched route lookups of large FIBs (packets for it are set aside
//! and routed after the rest of their batch).
//!
//! Input: a mode byte, then a sequence of records `[source: u8][time step: u8][len: u16 le][bytes...]`. Source
//! picks a local port (with or without port security, on a routed segment with DHCP and RA, or
//! one that does not exist), a known or an unknown VTEP, or swaps the tables. Invariants
//! checked: the pipeline never panics, returns one action per packet, every packet sent to a
//! VTEP (forwarded or generated) starts with a VXLAN header of a VNI that VTEP serves, and every
//! buffer comes back (none leaks from the pool, even with packets held for neighbour resolution).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weft_dataplane::config::NodeConfig;
use weft_dataplane::pipeline::{Action, Output, Pipeline};
use weft_dataplane::tables::Tables;
use weft_dataplane::{BATCH_SIZE, Batch, BufPool, PortIdx, Source, Timestamp, VtepIdx};

const CONFIG: &str = r#"
node = "fuzz"
[underlay]
local_ip = "192.168.0.1"
[learning]
max_per_segment = 16
aging_secs = 2
[[segments]]
vni = 100
[[segments]]
vni = 200
mtu = 600
[[segments]]
vni = 300
gateway_mac = "02:00:00:00:03:01"
mtu = 1400
[[segments.subnets]]
cidr = "10.3.0.0/24"
gateway_ip = "10.3.0.1"
dns_nameservers = ["10.3.0.53"]
host_routes = [{ destination = "192.168.50.0/24", nexthop = "10.3.0.9" }]
[[segments.subnets]]
cidr = "fd03::/64"
gateway_ip = "fd03::1"
ipv6_ra_mode = "dhcpv6-stateful"
dns_nameservers = ["fd03::53"]
[[segments]]
vni = 400
gateway_mac = "02:00:00:00:04:01"
[[segments.subnets]]
cidr = "10.4.0.0/24"
gateway_ip = "10.4.0.1"
[[segments.subnets]]
cidr = "fd04::/64"
gateway_ip = "fd04::1"
ipv6_ra_mode = "slaac"
[[routers]]
name = "r1"
routes = [{ destination = "192.168.50.0/24", nexthop = "10.3.0.9" }]
[[routers.interfaces]]
vni = 300
mac = "02:00:00:00:03:01"
addresses = ["10.3.0.1/24", "fd03::1/64"]
[[routers.interfaces]]
vni = 400
mac = "02:00:00:00:04:01"
addresses = ["10.4.0.1/24", "fd04::1/64"]
mtu = 1280
[[ports]]
name = "a"
interface = "tapa"
vni = 100
mac = "02:00:00:00:00:01"
ips = ["10.0.0.1", "fd00::1"]
allowed_address_pairs = [{ ip = "10.1.0.0/16", mac = "02:00:00:00:01:00" }]
[[ports]]
name = "b"
interface = "tapb"
vni = 200
mac = "02:00:00:00:00:01"
port_security = false
[[ports]]
name = "c"
interface = "tapc"
vni = 300
mac = "02:00:00:00:03:10"
ips = ["10.3.0.10", "fd03::10"]
[[ports]]
name = "d"
interface = "tapd"
vni = 400
mac = "02:00:00:00:04:10"
ips = ["10.4.0.10", "fd04::ff:fe00:410"]
[[remote_vteps]]
ip = "192.168.0.2"
vnis = [100, 200, 300, 400]
[[remote_vteps]]
ip = "192.168.0.3"
vnis = [200]
[[remote_bindings]]
vni = 100
mac = "02:00:00:00:00:02"
ips = ["10.0.0.2", "fd00::2"]
vtep = "192.168.0.2"
[[remote_bindings]]
vni = 400
mac = "02:00:00:00:04:20"
ips = ["10.4.0.20"]
vtep = "192.168.0.2"
"#;

/// [`CONFIG`] with security groups, an uplink and NAT, and `PORT` in one rule (swaps alternate
/// it between two values).
fn stateful_config(port: u16) -> String {
    let base = CONFIG
        .replace(
            "ips = [\"10.3.0.10\", \"fd03::10\"]",
            "ips = [\"10.3.0.10\", \"fd03::10\"]\nsecurity_groups = [\"web\"]\nproject = \"p1\"",
        )
        .replace(
            "ips = [\"10.0.0.1\", \"fd00::1\"]",
            "ips = [\"10.0.0.1\", \"fd00::1\"]\nsecurity_groups = []\nproject = \"p2\"",
        )
        .replace(
            "routes = [{ destination = \"192.168.50.0/24\", nexthop = \"10.3.0.9\" }]\n[[routers.interfaces]]",
            "routes = [{ destination = \"192.168.50.0/24\", nexthop = \"10.3.0.9\" }, { destination = \"0.0.0.0/0\", nexthop = \"203.0.113.1\" }]\ngateway = { vni = 999 }\nfloating_ips = [{ external = \"203.0.113.11\", internal = \"10.3.0.10\" }]\nport_forwardings = [{ protocol = \"udp\", external = \"203.0.113.12\", external_port = 53, internal = \"10.4.0.10\", internal_port = 5353 }]\n[[routers.interfaces]]\nvni = 999\nmac = \"02:00:00:00:09:01\"\naddresses = [\"203.0.113.10/24\"]\n[[routers.interfaces]]",
        );
    format!(
        r#"{base}
[limits]
conntrack_max = 64
conntrack_per_tenant = 32
nat_max = 64
nat_per_router = 32
[[segments]]
vni = 999
uplink = "upl0"
[[security_groups]]
name = "web"
rules = [
  {{ direction = "egress", ethertype = "IPv4" }},
  {{ direction = "egress", ethertype = "IPv6", protocol = 58 }},
  {{ direction = "ingress", ethertype = "IPv4", protocol = 6, port_range_min = {port}, port_range_max = {port} }},
  {{ direction = "ingress", ethertype = "IPv4", protocol = 17, remote = ["10.0.0.0/8"] }},
  {{ direction = "ingress", ethertype = "IPv6", protocol = 58, port_range_min = 128 }},
]
"#
    )
}

/// Buffers in the pool: few enough that running out (and counting it) happens too.
const POOL: usize = 256;

/// Checks that a frame sent to VTEP `v` (or flooded to VTEPs when `v` is `None`) carries a VXLAN
/// header of a VNI that VTEP serves.
fn check_vxlan(tables: &Tables, d: &[u8], v: Option<VtepIdx>) {
    assert!(d.len() >= 8 + 14 && d[0] == 0x08, "VXLAN header in front");
    let vni = u32::from_be_bytes([0, d[4], d[5], d[6]]);
    let seg = tables.segment_by_vni(vni).expect("a VNI of ours");
    if let Some(v) = v {
        assert!(
            tables.vtep_serves(v, seg),
            "sent to a VTEP that does not serve the VNI"
        );
    }
}

/// Checks the VXLAN invariant on every generated packet and returns its buffer to the pool.
fn drain_generated(tables: &Tables, out: &mut Output, pool: &mut BufPool) {
    for (pkt, a) in out.generated.drain(..) {
        match a {
            Action::Vtep(v) => check_vxlan(tables, pkt.data(), Some(v)),
            Action::Flood { to_vteps: true, .. } => check_vxlan(tables, pkt.data(), None),
            _ => {}
        }
        pool.free(pkt);
    }
}

/// Runs a batch, checks its actions, and returns every buffer to the pool.
fn run_batch(
    p: &mut Pipeline,
    now: Timestamp,
    batch: &mut Batch,
    pool: &mut BufPool,
    out: &mut Output,
) {
    if batch.is_empty() {
        return;
    }
    p.process(now, batch, pool, out);
    assert_eq!(out.actions.len(), batch.len());
    let tables = p.tables().clone();
    for (pkt, a) in batch.packets().iter().zip(&out.actions) {
        match *a {
            Action::Vtep(v) => check_vxlan(&tables, pkt.data(), Some(v)),
            Action::Flood { to_vteps: true, .. } => check_vxlan(&tables, pkt.data(), None),
            _ => {}
        }
    }
    batch.drain(|b| pool.free(b));
    drain_generated(&tables, out, pool);
}

fuzz_target!(|data: &[u8]| {
    // Each configuration twice: as built, and with every router taking the batched route
    // lookups that only large FIBs get otherwise.
    static TABLES: OnceLock<[Arc<Tables>; 6]> = OnceLock::new();
    let all = TABLES.get_or_init(|| {
        let t = |s: &str, batched: bool| {
            let mut t = NodeConfig::from_toml(s).unwrap().validate().unwrap();
            for i in &mut t.router_ifs {
                i.batch_fib |= batched;
            }
            Arc::new(t)
        };
        let s80 = stateful_config(80);
        let s8080 = stateful_config(8080);
        [
            t(CONFIG, false),
            t(&s80, false),
            t(&s8080, false),
            t(CONFIG, true),
            t(&s80, true),
            t(&s8080, true),
        ]
    });
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let stateful = mode & 1 == 1;
    let batched = if mode & 2 == 2 { 3 } else { 0 };
    let mut swaps = 0usize;
    let pick = |swaps: usize| {
        if stateful {
            all[batched + 1 + swaps % 2].clone()
        } else {
            all[batched].clone()
        }
    };
    let tables = pick(0);
    let mut p = Pipeline::new(tables.clone());
    let mut pool = BufPool::new(POOL, 2048);
    let mut out = Output::new();
    let mut now = Timestamp(1_000_000_000);
    let mut rest = data;
    let mut batch = Batch::new();
    while rest.len() >= 4 {
        let (src, step) = (rest[0], rest[1]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]))
            .min(rest.len() - 4)
            .min(1800);
        let bytes = &rest[4..4 + len];
        rest = &rest[4 + len..];
        now = now.plus(Duration::from_millis(u64::from(step) * 20));
        let source = match src % 11 {
            0 => Source::Port(PortIdx(0)),
            1 => Source::Port(PortIdx(1)),
            2 | 3 => Source::Port(PortIdx(2)),
            4 => Source::Port(PortIdx(3)),
            // The uplink in the stateful configuration; no port otherwise.
            5 => Source::Port(PortIdx(if stateful { 4 } else { 7 })),
            6 | 7 => Source::Underlay(SocketAddr::from(([192, 168, 0, 2], 4789))),
            8 => Source::Underlay(SocketAddr::from(([192, 168, 0, 3], 1234))),
            9 => Source::Underlay(SocketAddr::from(([192, 168, 0, 9], 4789))),
            _ => {
                swaps += 1;
                p.swap_tables(pick(swaps), &mut pool);
                continue;
            }
        };
        let Some(mut b) = pool.alloc() else {
            break;
        };
        b.fill(bytes);
        b.meta.source = source;
        if let Err(b) = batch.push(b) {
            pool.free(b);
        }
        if batch.len() == BATCH_SIZE {
            run_batch(&mut p, now, &mut batch, &mut pool, &mut out);
        }
        p.handle_timeout(now, &mut pool, &mut out);
        drain_generated(&tables, &mut out, &mut pool);
    }
    run_batch(&mut p, now, &mut batch, &mut pool, &mut out);
    // Held packets go back to the pool when the tables are swapped: then every buffer is home.
    p.swap_tables(tables.clone(), &mut pool);
    assert_eq!(pool.available(), POOL, "a buffer leaked");
});
