//! Header parsing: Weft's wire views against etherparse and smoltcp on the same frames.
//!
//! The work is what the pipeline's port path does to every frame: read both MACs and the
//! EtherType, then the IPv4 source and destination and protocol, then the UDP ports, with every
//! length checked. Batches of 64 frames of 64 bytes (IPv4/UDP).
//!
//! Run: `cargo bench -p weft-bench --bench wire`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weft_bench::fixtures::{LOCAL_IP, LOCAL_MAC, remote_ip, remote_mac, udp_frame};

fn frames() -> Vec<Vec<u8>> {
    (0..64)
        .map(|i| udp_frame(remote_mac(i), LOCAL_MAC, LOCAL_IP, remote_ip(i), 64))
        .collect()
}

fn weft(frames: &[Vec<u8>]) -> u64 {
    use weft_dataplane::wire::ethernet::parse_l2;
    use weft_dataplane::wire::ipv4::Ipv4Packet;
    use weft_dataplane::wire::udp::UdpPacket;
    let mut acc = 0u64;
    for f in frames {
        let Ok(l2) = parse_l2(f) else { continue };
        let Ok(ip) = Ipv4Packet::new_checked(&f[l2.l3_offset..]) else {
            continue;
        };
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            continue;
        };
        acc += l2.dst.to_u64() ^ l2.src.to_u64() ^ u64::from(u16::from(l2.ethertype));
        acc += u64::from(u32::from(ip.src_addr()) ^ u32::from(ip.dst_addr()))
            + u64::from(u8::from(ip.next_header()));
        acc += u64::from(udp.src_port()) + u64::from(udp.dst_port());
    }
    acc
}

fn etherparse(frames: &[Vec<u8>]) -> u64 {
    use etherparse::{InternetSlice, LinkSlice, SlicedPacket, TransportSlice};
    let mut acc = 0u64;
    for f in frames {
        let Ok(p) = SlicedPacket::from_ethernet(f) else {
            continue;
        };
        if let Some(LinkSlice::Ethernet2(e)) = &p.link {
            let d = e.destination();
            let s = e.source();
            acc += u64::from(d[5]) ^ u64::from(s[5]) ^ u64::from(e.ether_type().0);
        }
        if let Some(InternetSlice::Ipv4(ip)) = &p.net {
            let h = ip.header();
            acc += u64::from(u32::from(h.source_addr()) ^ u32::from(h.destination_addr()))
                + u64::from(h.protocol().0);
        }
        if let Some(TransportSlice::Udp(u)) = &p.transport {
            acc += u64::from(u.source_port()) + u64::from(u.destination_port());
        }
    }
    acc
}

fn smoltcp(frames: &[Vec<u8>]) -> u64 {
    use smoltcp::wire::{EthernetFrame, Ipv4Packet, UdpPacket};
    let mut acc = 0u64;
    for f in frames {
        let Ok(e) = EthernetFrame::new_checked(&f[..]) else {
            continue;
        };
        let Ok(ip) = Ipv4Packet::new_checked(e.payload()) else {
            continue;
        };
        let Ok(u) = UdpPacket::new_checked(ip.payload()) else {
            continue;
        };
        let (d, s) = (e.dst_addr(), e.src_addr());
        acc += u64::from(d.0[5]) ^ u64::from(s.0[5]) ^ u64::from(u16::from(e.ethertype()));
        acc += u64::from(u32::from(ip.src_addr()) ^ u32::from(ip.dst_addr()))
            + u64::from(u8::from(ip.next_header()));
        acc += u64::from(u.src_port()) + u64::from(u.dst_port());
    }
    acc
}

fn bench(c: &mut Criterion) {
    let f = frames();
    assert_eq!(weft(&f).count_ones() > 0, etherparse(&f).count_ones() > 0);
    let mut g = c.benchmark_group("wire/eth_ipv4_udp_parse");
    g.throughput(Throughput::Elements(64));
    g.bench_function("weft", |b| b.iter(|| black_box(weft(black_box(&f)))));
    g.bench_function("etherparse", |b| {
        b.iter(|| black_box(etherparse(black_box(&f))))
    });
    g.bench_function("smoltcp", |b| b.iter(|| black_box(smoltcp(black_box(&f)))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
