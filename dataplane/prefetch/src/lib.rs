//! A safe prefetch hint: [`read`] asks the CPU to start loading the cache line that holds a
//! value, and returns at once.
//!
//! The dataplane core (`weft-dataplane`) forbids `unsafe`, and the prefetch intrinsics are
//! `unsafe` to call. This crate holds that one `unsafe` block. A prefetch has no architectural
//! effect: it does not fault, it changes no memory and no register, and the CPU may ignore it.
//! Only timing changes. The argument is a reference, so it points to live memory anyway.
//!
//! Why not a plain load: a load that misses the cache holds its instruction in the reorder
//! buffer until the data arrives, so a loop of plain loads stops issuing new misses once the
//! buffer is full. A prefetch retires at once, so all the misses of a batch can be in flight
//! together.
//!
//! On targets other than x86-64 and AArch64, [`read`] does nothing.

#![no_std]

/// Hints that the cache line holding the start of `value` will soon be read, into all cache
/// levels. Does nothing visible; only timing changes.
#[inline(always)]
pub fn read<T: ?Sized>(value: &T) {
    let p: *const u8 = core::ptr::from_ref(value).cast();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint with no architectural effect. It does not fault, even on an
    // invalid address, and it writes no memory or register. `p` comes from a reference, so it
    // points to live memory anyway. SSE is part of the x86-64 baseline, so the instruction
    // exists on every x86-64 CPU.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PRFM is a hint with no architectural effect. It does not fault and it writes no
    // memory or register (`nostack`, `readonly`, `preserves_flags`). `p` comes from a
    // reference, so it points to live memory anyway.
    unsafe {
        core::arch::asm!(
            "prfm pldl1keep, [{p}]",
            p = in(reg) p,
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetching_changes_nothing() {
        let v = [1u64, 2, 3];
        super::read(&v[2]);
        super::read(&v[..]);
        super::read("text");
        assert_eq!(v, [1, 2, 3]);
    }
}
