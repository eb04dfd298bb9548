//! Node configurations and packet batches for the pipeline benches.
//!
//! The L2 fixture is one tenant segment (VNI 100) with one local VM port and `remote_macs` VMs
//! behind one remote VTEP. Batches carry frames between the local VM and `flows` of the remote
//! VMs (round robin), so FDB lookups spread over that many entries.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use weft_dataplane::config::{
    LearningConfig, NodeConfig, PortConfig, RemoteBindingConfig, RemoteVtepConfig, SegmentConfig,
    UnderlayConfig,
};
use weft_dataplane::pipeline::VXLAN_HEADER_LEN;
use weft_dataplane::tables::Tables;
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

/// One segment, one local port, `remote_macs` remote bindings behind one VTEP.
pub fn l2_config(remote_macs: usize) -> NodeConfig {
    let vni = Vni::new(100).expect("VNI");
    NodeConfig {
        node: "bench".into(),
        revision: 1,
        underlay: UnderlayConfig {
            local_ip: "192.168.100.1".parse().expect("ip"),
            port: 4789,
            mtu: 9050,
        },
        learning: LearningConfig::default(),
        segments: vec![SegmentConfig {
            vni,
            name: "bench".into(),
            mtu: Some(1500),
        }],
        ports: vec![PortConfig {
            name: "vm1".into(),
            interface: "tap1".into(),
            vni,
            mac: LOCAL_MAC,
            ips: vec![IpAddr::V4(LOCAL_IP)],
            port_security: true,
            allowed_address_pairs: vec![],
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
    let sum = weft_dataplane::wire::checksum::sum(&f[14..34], 0);
    let c = weft_dataplane::wire::checksum::finish(sum);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&5000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

fn buf(frame: &[u8], source: Source) -> PacketBuf {
    let mut b = PacketBuf::new(HEADROOM + frame.len().max(2048));
    assert!(b.fill(frame));
    b.meta.source = source;
    b
}

/// 64 VXLAN packets from the remote VTEP, each carrying a `frame_len`-byte frame from one of
/// `flows` remote VMs to the local VM.
pub fn decap_batch(t: &Tables, frame_len: usize, flows: usize) -> Batch {
    let hdr = t.segments[0].vxlan_header;
    let src = Source::Underlay(SocketAddr::new(IpAddr::V4(REMOTE_VTEP), 4789));
    let mut batch = Batch::new();
    for i in 0..weft_dataplane::BATCH_SIZE {
        let k = i % flows.max(1);
        let mut p = hdr.to_vec();
        p.extend(udp_frame(
            LOCAL_MAC,
            remote_mac(k),
            remote_ip(k),
            LOCAL_IP,
            frame_len,
        ));
        batch.push(buf(&p, src)).expect("batch room");
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
        let _ = p.prepend(VXLAN_HEADER_LEN);
    }
}

/// Takes the VXLAN header off encapsulated packets.
pub fn restore_encap(batch: &mut Batch) {
    for p in batch.packets_mut() {
        let _ = p.advance(VXLAN_HEADER_LEN);
    }
}
