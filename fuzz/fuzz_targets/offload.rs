#![no_main]
//! Offload fix-ups: an arbitrary virtio-net header and frame (what a VM hands the agent).
//! Segmentation must never panic, never produce more payload than it was given, and every
//! segment must fit its buffer.

use libfuzzer_sys::fuzz_target;
use weft_dataplane::offload::{VnetHdr, prepare};
use weft_dataplane::{BufPool, PacketBuf};

fuzz_target!(|data: &[u8]| {
    let Some(h) = VnetHdr::parse(data) else {
        return;
    };
    let frame = &data[VnetHdr::LEN..];
    let mut pool = BufPool::new(128, 2048);
    let mut total = 0usize;
    let mut n = 0usize;
    let r = prepare(frame, &h, &mut pool, &mut |b: PacketBuf| {
        total += b.len();
        n += 1;
        assert!(b.len() <= 2048);
    });
    if let Ok(fix) = r {
        assert_eq!(fix.segments, n);
        // Each segment repeats the headers; without them, no more bytes than the input.
        assert!(n == 0 || total <= frame.len() + (n - 1) * 128 + 64 * n);
    }
});
