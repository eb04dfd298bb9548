#![no_main]
//! Ethernet and 802.1Q: the fast-path parser, the views and the reprs.

use libfuzzer_sys::fuzz_target;
use weft_dataplane::wire::ethernet::{EthernetFrame, EthernetRepr, VlanRepr, VlanTag, parse_l2};

fuzz_target!(|data: &[u8]| {
    if let Ok(l2) = parse_l2(data) {
        assert!(l2.l3_offset <= data.len());
        assert!(l2.tags <= 2);
    }
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload().len());
        if let Ok(r) = EthernetRepr::parse(&f) {
            let mut buf = data.to_vec();
            r.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
            let again =
                EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()).unwrap();
            assert_eq!(r, again);
        }
        if let Ok(tag) = VlanTag::new_checked(f.payload()) {
            let _ = (
                tag.pcp(),
                tag.dei(),
                tag.vid(),
                tag.ethertype(),
                tag.payload().len(),
            );
            let _ = VlanRepr::parse(&tag);
        }
    }
});
