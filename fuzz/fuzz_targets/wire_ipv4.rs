#![no_main]
//! IPv4 and what it carries: ICMPv4, UDP, TCP (with options).

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use weft_dataplane::wire::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use weft_dataplane::wire::ip::IpProtocol;
use weft_dataplane::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use weft_dataplane::wire::tcp::{TcpOptions, TcpPacket, TcpRepr};
use weft_dataplane::wire::udp::{UdpPacket, UdpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(ip) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        ip.version(),
        ip.header_len(),
        ip.dscp(),
        ip.ecn(),
        ip.total_len(),
        ip.ident(),
    );
    let _ = (
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
        ip.hop_limit(),
        ip.options().len(),
    );
    let _ = ip.verify_checksum();
    let _ = Ipv4Repr::parse(&ip);
    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    l4(ip.next_header(), ip.payload(), &src, &dst);
});

fn l4(proto: IpProtocol, payload: &[u8], src: &IpAddr, dst: &IpAddr) {
    match proto {
        IpProtocol::Icmp => {
            if let Ok(p) = Icmpv4Packet::new_checked(payload) {
                let _ = (
                    p.msg_type(),
                    p.msg_code(),
                    p.echo_ident(),
                    p.echo_seq_no(),
                    p.next_hop_mtu(),
                );
                let _ = p.verify_checksum();
                if let Ok(r) = Icmpv4Repr::parse(&p) {
                    let mut buf = vec![0u8; r.buffer_len()];
                    r.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
                    let back = Icmpv4Packet::new_checked(&buf[..]).unwrap();
                    assert!(back.verify_checksum());
                }
            }
        }
        IpProtocol::Udp => {
            if let Ok(p) = UdpPacket::new_checked(payload) {
                let _ = (p.src_port(), p.dst_port(), p.len(), p.payload().len());
                let _ = p.verify_checksum(src, dst);
                let _ = UdpRepr::parse(&p);
            }
        }
        IpProtocol::Tcp => {
            if let Ok(p) = TcpPacket::new_checked(payload) {
                let _ = (
                    p.seq_number(),
                    p.ack_number(),
                    p.flags(),
                    p.window_len(),
                    p.payload().len(),
                );
                let _ = p.verify_checksum(src, dst);
                let _ = TcpRepr::parse(&p);
                for o in TcpOptions::new(p.options()).take(64) {
                    let _ = o;
                }
            }
        }
        _ => {}
    }
}
