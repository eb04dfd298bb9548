#![no_main]
//! ARP.

use libfuzzer_sys::fuzz_target;
use weft_dataplane::wire::arp::{ArpPacket, ArpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = ArpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        p.hardware_type(),
        p.protocol_type(),
        p.operation(),
        p.source_hardware_addr(),
    );
    let _ = (
        p.source_protocol_addr(),
        p.target_hardware_addr(),
        p.target_protocol_addr(),
    );
    if let Ok(r) = ArpRepr::parse(&p) {
        let mut buf = data.to_vec();
        r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(),
            r
        );
    }
});
