//! Node configurations and packet batches for the pipeline benches.
//!
//! - L2: one tenant segment (VNI 100) with one local VM port and `remote_macs` VMs behind one
//!   remote VTEP. Batches carry frames between the local VM and `flows` of the remote VMs
//!   (round robin), so FDB lookups spread over that many entries.
//! - L3: the Akanda layout seen from the router's node: a router with interfaces on VNI 100
//!   (10.0.0.0/24, fd00:a::/64) and VNI 200 (10.1.0.0/24, fd00:b::/64), both VMs behind a remote
//!   VTEP, and `routes` routes in all (extra routes are random prefixes via VM B). Packets come in
//!   over VXLAN from VM A and leave over VXLAN towards VM B: decap → route → encap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnetwork::IpNetwork;
use weft_dataplane::config::{
    LearningConfig, NodeConfig, PortConfig, RemoteBindingConfig, RemoteVtepConfig, RouteConfig,
    RouterConfig, RouterInterfaceConfig, SegmentConfig, UnderlayConfig,
};
use weft_dataplane::tables::Tables;
use weft_dataplane::wire::checksum;
use weft_dataplane::wire::{MacAddr, Vni};
use weft_dataplane::{Batch, HEADROOM, PacketBuf, PortIdx, Source};

/// The local VM's MAC.
pub const LOCAL_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
/// The local VM's IPv4 address.
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The remote VTEP.
pub const REMOTE_VTEP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 2);

/// MAC of remote VM `i`.
pub fn remote_mac(i: usize) -> MacAddr {
    let b = u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes();
    MacAddr([0x02, 0x01, b[0], b[1], b[2], b[3]])
}

/// IPv4 address of remote VM `i` (in 10.0.0.0/8, skipping the local VM's).
pub fn remote_ip(i: usize) -> Ipv4Addr {
    let n = u32::try_from(i).unwrap_or(0) + 2;
    Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff))
}

fn underlay() -> UnderlayConfig {
    UnderlayConfig {
        local_ip: "192.168.100.1".parse().expect("ip"),
        port: 4789,
        mtu: 9050,
    }
}

/// One segment, one local port, `remote_macs` remote bindings behind one VTEP.
pub fn l2_config(remote_macs: usize) -> NodeConfig {
    let vni = Vni::new(100).expect("VNI");
    NodeConfig {
        node: "bench".into(),
        revision: 1,
        underlay: underlay(),
        learning: LearningConfig::default(),
        segments: vec![SegmentConfig {
            mtu: Some(1500),
            ..SegmentConfig::new(vni)
        }],
        ports: vec![PortConfig {
            name: "vm1".into(),
            interface: "tap1".into(),
            vni,
            mac: LOCAL_MAC,
            ips: vec![IpAddr::V4(LOCAL_IP)],
            port_security: true,
            allowed_address_pairs: vec![],
            hostname: None,
            security_groups: None,
            project: String::new(),
        }],
        remote_vteps: vec![RemoteVtepConfig {
            ip: IpAddr::V4(REMOTE_VTEP),
            vnis: vec![vni],
        }],
        remote_bindings: (0..remote_macs)
            .map(|i| RemoteBindingConfig {
                vni,
                mac: remote_mac(i),
                ips: vec![IpAddr::V4(remote_ip(i))],
                vtep: IpAddr::V4(REMOTE_VTEP),
            })
            .collect(),
        routers: vec![],
        security_groups: vec![],
        address_sets: vec![],
        limits: Default::default(),
    }
}

/// Validated tables of [`l2_config`].
pub fn l2_tables(remote_macs: usize) -> Arc<Tables> {
    Arc::new(
        l2_config(remote_macs)
            .validate()
            .expect("bench configuration is valid"),
    )
}

/// An Ethernet + IPv4 + UDP frame of `len` bytes (at least 42).
pub fn udp_frame(dst: MacAddr, src: MacAddr, sip: Ipv4Addr, dip: Ipv4Addr, len: usize) -> Vec<u8> {
    let len = len.max(42);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst.octets());
    f[6..12].copy_from_slice(&src.octets());
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = u16::try_from(len - 14).unwrap_or(u16::MAX);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&sip.octets());
    f[30..34].copy_from_slice(&dip.octets());
    let c = checksum::finish(checksum::sum(&f[14..34], 0));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&5000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// An Ethernet + IPv6 + UDP frame of `len` bytes (at least 62).
pub fn udp6_frame(dst: MacAddr, src: MacAddr, sip: Ipv6Addr, dip: Ipv6Addr, len: usize) -> Vec<u8> {
    let len = len.max(62);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst.octets());
    f[6..12].copy_from_slice(&src.octets());
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let payload = u16::try_from(len - 54).unwrap_or(u16::MAX);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&payload.to_be_bytes());
    f[20] = 17;
    f[21] = 64;
    f[22..38].copy_from_slice(&sip.octets());
    f[38..54].copy_from_slice(&dip.octets());
    f[54..56].copy_from_slice(&5000u16.to_be_bytes());
    f[56..58].copy_from_slice(&5001u16.to_be_bytes());
    f[58..60].copy_from_slice(&payload.to_be_bytes());
    f
}

/// A pool-less packet buffer holding `frame`, from `source`.
pub fn buf(frame: &[u8], source: Source) -> PacketBuf {
    let mut b = PacketBuf::new(HEADROOM + frame.len().max(2048));
    assert!(b.fill(frame));
    b.meta.source = source;
    b
}

/// `inner` behind a VXLAN header (I flag, `vni`).
pub fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut p = vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0];
    p.extend_from_slice(inner);
    p
}

fn from_vtep() -> Source {
    Source::Underlay(SocketAddr::new(IpAddr::V4(REMOTE_VTEP), 4789))
}

/// 64 VXLAN packets from the remote VTEP, each carrying a `frame_len`-byte frame from one of
/// `flows` remote VMs to the local VM.
pub fn decap_batch(t: &Tables, frame_len: usize, flows: usize) -> Batch {
    let mut batch = Batch::new();
    for i in 0..weft_dataplane::BATCH_SIZE {
        let k = i % flows.max(1);
        let f = udp_frame(LOCAL_MAC, remote_mac(k), remote_ip(k), LOCAL_IP, frame_len);
        batch
            .push(buf(&vxlan(t.segments[0].vni.get(), &f), from_vtep()))
            .expect("batch room");
    }
    batch
}

/// 64 frames of `frame_len` bytes from the local VM to `flows` remote VMs.
pub fn encap_batch(frame_len: usize, flows: usize) -> Batch {
    let mut batch = Batch::new();
    for i in 0..weft_dataplane::BATCH_SIZE {
        let k = i % flows.max(1);
        let f = udp_frame(remote_mac(k), LOCAL_MAC, LOCAL_IP, remote_ip(k), frame_len);
        batch
            .push(buf(&f, Source::Port(PortIdx(0))))
            .expect("batch room");
    }
    batch
}

/// Puts decapsulated packets back as they arrived: the VXLAN header is still in the headroom,
/// in front of the frame, so this only moves the start back.
pub fn restore_decap(batch: &mut Batch) {
    for p in batch.packets_mut() {
        let _ = p.prepend(8);
    }
}

/// Takes the VXLAN header off encapsulated packets.
pub fn restore_encap(batch: &mut Batch) {
    for p in batch.packets_mut() {
        let _ = p.advance(8);
    }
}

/// Router interface MACs.
pub const RIF_A: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 1]);
/// See [`RIF_A`].
pub const RIF_B: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 2]);
/// VM A (VNI 100) and VM B (VNI 200), both behind the remote VTEP.
pub const VM_A: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
/// See [`VM_A`].
pub const VM_B: MacAddr = MacAddr([0x02, 0xbb, 0, 0, 0, 1]);

/// A deterministic pseudo-random sequence (xorshift64*), for route tables and destinations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Extra routes of the L3 fixture: random IPv4 prefixes (/16 to /24, in 20.0.0.0 to
/// 223.255.255.255) and IPv6 prefixes (/32 to /64 in 2000::/3), `n` of each.
/// Prefixes of one family: (network, length).
pub type Prefixes<A> = Vec<(A, u8)>;

/// See [`l3_config`].
pub fn extra_routes(n: usize) -> (Prefixes<Ipv4Addr>, Prefixes<Ipv6Addr>) {
    let mut rng = Rng::new(0x5eed);
    let mut v4 = Vec::with_capacity(n);
    let mut v6 = Vec::with_capacity(n);
    for _ in 0..n {
        let len = 16 + u8::try_from(rng.next_u64() % 9).unwrap_or(0);
        let raw = u32::try_from(rng.next_u64() >> 32).unwrap_or(0);
        let mut a = (raw % (0xe000_0000 - 0x1400_0000)) + 0x1400_0000;
        if a >> 24 == 127 {
            // Loopback is never routed.
            a ^= 0x4000_0000;
        }
        let mask = u32::MAX << (32 - u32::from(len));
        v4.push((Ipv4Addr::from(a & mask), len));
        let len6 = 32 + u8::try_from(rng.next_u64() % 33).unwrap_or(0);
        let raw6 = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        let a6 = (raw6 >> 3) | (0b001u128 << 125);
        let mask6 = u128::MAX << (128 - u32::from(len6));
        v6.push((Ipv6Addr::from(a6 & mask6), len6));
    }
    (v4, v6)
}

/// The router node of the L3 fixture with `routes` routes per family in all (the connected
/// one included; 1 means only the connected networks).
pub fn l3_config(routes: usize) -> NodeConfig {
    let a = Vni::new(100).expect("VNI");
    let b = Vni::new(200).expect("VNI");
    let (x4, x6) = extra_routes(routes.saturating_sub(1));
    let net = |s: &str| s.parse::<IpNetwork>().expect("network");
    let mut route_cfgs: Vec<RouteConfig> = x4
        .iter()
        .map(|(p, l)| RouteConfig {
            destination: IpNetwork::new(IpAddr::V4(*p), *l).expect("prefix"),
            nexthop: "10.1.0.2".parse().expect("ip"),
        })
        .collect();
    route_cfgs.extend(x6.iter().map(|(p, l)| RouteConfig {
        destination: IpNetwork::new(IpAddr::V6(*p), *l).expect("prefix"),
        nexthop: "fd00:b::2".parse().expect("ip"),
    }));
    let binding = |vni, mac, ips: &[&str]| RemoteBindingConfig {
        vni,
        mac,
        ips: ips.iter().map(|s| s.parse().expect("ip")).collect(),
        vtep: IpAddr::V4(REMOTE_VTEP),
    };
    NodeConfig {
        node: "router-node".into(),
        revision: 1,
        underlay: underlay(),
        learning: LearningConfig::default(),
        segments: vec![
            SegmentConfig {
                mtu: Some(1500),
                ..SegmentConfig::new(a)
            },
            SegmentConfig {
                mtu: Some(1500),
                ..SegmentConfig::new(b)
            },
        ],
        ports: vec![],
        remote_vteps: vec![RemoteVtepConfig {
            ip: IpAddr::V4(REMOTE_VTEP),
            vnis: vec![a, b],
        }],
        remote_bindings: vec![
            binding(a, VM_A, &["10.0.0.2", "fd00:a::2"]),
            binding(b, VM_B, &["10.1.0.2", "fd00:b::2"]),
        ],
        routers: vec![RouterConfig {
            name: "r1".into(),
            interfaces: vec![
                RouterInterfaceConfig {
                    vni: a,
                    mac: RIF_A,
                    addresses: vec![net("10.0.0.1/24"), net("fd00:a::1/64")],
                    mtu: None,
                },
                RouterInterfaceConfig {
                    vni: b,
                    mac: RIF_B,
                    addresses: vec![net("10.1.0.1/24"), net("fd00:b::1/64")],
                    mtu: None,
                },
            ],
            routes: route_cfgs,
            project: String::new(),
            gateway: None,
            floating_ips: vec![],
            port_forwardings: vec![],
        }],
        security_groups: vec![],
        address_sets: vec![],
        limits: Default::default(),
    }
}

/// Validated tables of [`l3_config`].
pub fn l3_tables(routes: usize) -> Arc<Tables> {
    Arc::new(
        l3_config(routes)
            .validate()
            .expect("bench configuration is valid"),
    )
}

/// `batches` batches of 64 VXLAN packets (VNI 100) from VM A to the router, 64-byte frames,
/// IPv4 or IPv6, to destinations spread over the extra routes (or VM B itself with `routes` 1).
pub fn route_batches(v6: bool, routes: usize, batches: usize) -> Vec<Batch> {
    let (x4, x6) = extra_routes(routes.saturating_sub(1));
    let mut rng = Rng::new(0xdead_beef);
    (0..batches)
        .map(|_| {
            let mut batch = Batch::new();
            for _ in 0..weft_dataplane::BATCH_SIZE {
                let f = if v6 {
                    let dst = if x6.is_empty() {
                        "fd00:b::2".parse().expect("ip")
                    } else {
                        let (p, l) =
                            x6[usize::try_from(rng.next_u64() % x6.len() as u64).unwrap_or(0)];
                        let host = ((u128::from(rng.next_u64()) << 64)
                            | u128::from(rng.next_u64()))
                            & (u128::MAX >> l);
                        Ipv6Addr::from(u128::from(p) | host)
                    };
                    udp6_frame(RIF_A, VM_A, "fd00:a::2".parse().expect("ip"), dst, 64)
                } else {
                    let dst = if x4.is_empty() {
                        Ipv4Addr::new(10, 1, 0, 2)
                    } else {
                        let (p, l) =
                            x4[usize::try_from(rng.next_u64() % x4.len() as u64).unwrap_or(0)];
                        let host =
                            u32::try_from(rng.next_u64() >> 32).unwrap_or(0) & (u32::MAX >> l);
                        Ipv4Addr::from(u32::from(p) | host)
                    };
                    udp_frame(RIF_A, VM_A, Ipv4Addr::new(10, 0, 0, 2), dst, 64)
                };
                batch
                    .push(buf(&vxlan(100, &f), from_vtep()))
                    .expect("batch room");
            }
            batch
        })
        .collect()
}

/// Undoes what routing did to a packet (VXLAN header, MACs, TTL or hop limit, IPv4 checksum),
/// given the packet as it arrived: 4 small copies a packet, included in the L3 figures.
pub fn restore_routed(batch: &mut Batch, v6: bool) {
    let vx = [0x08, 0, 0, 0, 0, 0, 100, 0];
    for p in batch.packets_mut() {
        let d = p.data_mut();
        if d.len() < 8 + 14 + 40 {
            continue;
        }
        d[..8].copy_from_slice(&vx);
        d[8..14].copy_from_slice(&RIF_A.octets());
        d[14..20].copy_from_slice(&VM_A.octets());
        if v6 {
            d[8 + 14 + 7] = 64;
        } else {
            // TTL 63 -> 64: the checksum goes back by the same amount.
            let ip = &mut d[8 + 14..8 + 14 + 20];
            let old = u16::from_be_bytes([ip[8], ip[9]]);
            ip[8] = 64;
            let c = checksum::update16(
                u16::from_be_bytes([ip[10], ip[11]]),
                old,
                u16::from_be_bytes([ip[8], ip[9]]),
            );
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
    }
}
