#![no_main]
//! IPv6 with extension headers, and what it carries: ICMPv6 (with NDP and its options), UDP, TCP.

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use weft_dataplane::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use weft_dataplane::wire::ip::IpProtocol;
use weft_dataplane::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use weft_dataplane::wire::ndp::{self, NdiscOptions, NdiscRepr, RaOptions};
use weft_dataplane::wire::tcp::{TcpOptions, TcpPacket};
use weft_dataplane::wire::udp::UdpPacket;

fuzz_target!(|data: &[u8]| {
    let Ok(ip) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let _ = (
        ip.traffic_class(),
        ip.flow_label(),
        ip.payload_len(),
        ip.hop_limit(),
    );
    let _ = Ipv6Repr::parse(&ip);
    let Ok(up) = ip.upper_layer() else { return };
    assert!(up.offset <= data.len());
    if up.fragment.is_some_and(|f| f.offset != 0) {
        return;
    }
    let Some(l4) = data.get(up.offset..40 + usize::from(ip.payload_len())) else {
        return;
    };
    let (s6, d6) = (ip.src_addr(), ip.dst_addr());
    let (src, dst) = (IpAddr::V6(s6), IpAddr::V6(d6));
    match up.protocol {
        IpProtocol::Icmpv6 => {
            let Ok(p) = Icmpv6Packet::new_checked(l4) else {
                return;
            };
            let _ = (
                p.msg_type(),
                p.msg_code(),
                p.mtu(),
                p.pointer(),
                p.data().len(),
            );
            let _ = p.verify_checksum(&s6, &d6);
            let _ = Icmpv6Repr::parse(&p);
            let _ = ndp::validate(&p);
            if let Ok(NdiscRepr::RouterAdvert {
                options: RaOptions::Wire(opts),
                ..
            }) = NdiscRepr::parse(&p)
            {
                for o in NdiscOptions::new(opts).take(256) {
                    let _ = o;
                }
            }
        }
        IpProtocol::Udp => {
            if let Ok(p) = UdpPacket::new_checked(l4) {
                let _ = p.verify_checksum(&src, &dst);
            }
        }
        IpProtocol::Tcp => {
            if let Ok(p) = TcpPacket::new_checked(l4) {
                let _ = p.verify_checksum(&src, &dst);
                for o in TcpOptions::new(p.options()).take(64) {
                    let _ = o;
                }
            }
        }
        _ => {}
    }
});
