#![no_main]
//! VXLAN.

use libfuzzer_sys::fuzz_target;
use weft_dataplane::wire::vxlan::{VxlanPacket, VxlanRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = VxlanPacket::new_checked(data) else {
        return;
    };
    let _ = (p.flags(), p.i_flag(), p.vni(), p.payload().len());
    if let Ok(r) = VxlanRepr::parse(&p) {
        let mut buf = data.to_vec();
        r.emit(&mut VxlanPacket::new_unchecked(&mut buf[..]));
        assert_eq!(
            VxlanRepr::parse(&VxlanPacket::new_checked(&buf[..]).unwrap()).unwrap(),
            r
        );
    }
});
