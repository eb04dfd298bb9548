//! Safe memory hints: [`read`] asks the CPU to start loading the cache line that holds a
//! value, and returns at once; [`huge_pages`] asks the kernel to back a large table with
//! 2 MiB pages.
//!
//! The dataplane core (`weft-dataplane`) forbids `unsafe`, and the prefetch intrinsics and
//! `madvise` are `unsafe` to call. This crate holds those `unsafe` blocks. A prefetch has no architectural
//! effect: it does not fault, it changes no memory and no register, and the CPU may ignore it.
//! Only timing changes. The argument is a reference, so it points to live memory anyway.
//!
//! Why not a plain load: a load that misses the cache holds its instruction in the reorder
//! buffer until the data arrives, so a loop of plain loads stops issuing new misses once the
//! buffer is full. A prefetch retires at once, so all the misses of a batch can be in flight
//! together.
//!
//! On targets other than x86-64 and AArch64, [`read`] does nothing; off Linux, [`huge_pages`]
//! does nothing.

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

/// The size of a transparent huge page with 4 KiB base pages (x86-64, most AArch64 kernels),
/// the unit [`huge_pages`] rounds to. Where huge pages are larger, the ranges it hands the
/// kernel are smaller than one, and the kernel leaves them as they are.
pub const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages that `memory` covers with transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`), for tables read at random: with 4 KiB pages every lookup
/// in a table of a hundred megabytes also misses the TLB. Pages already touched are merged
/// later by the kernel, so call it before the memory is first written. Once a huge page is
/// asked for, the first write anywhere in it makes all 2 MiB resident. Only a hint, like
/// [`read`]: the contents stay as they are, and nothing happens where the kernel says no (THP
/// `never`, or memory that is not anonymous), on other systems, or where `memory` covers no
/// whole aligned 2 MiB page (possible for anything under 4 MiB).
pub fn huge_pages<T>(memory: &[T]) {
    #[cfg(target_os = "linux")]
    if let Some((offset, len)) = huge_range(memory.as_ptr().addr(), size_of_val(memory)) {
        let p = memory.as_ptr().cast::<u8>().wrapping_add(offset);
        // SAFETY: `huge_range` returns a range inside the `size_of_val(memory)` bytes at
        // `memory`, a live borrowed slice, starting and ending on 2 MiB boundaries, so
        // page-aligned as madvise requires. MADV_HUGEPAGE changes no byte of it: it marks the
        // range so that the kernel may back it with huge pages, now or later (the contents
        // are copied when pages are merged). It is a pure hint: the result is ignored, since
        // refusing it (EINVAL where THP is not built in) leaves the memory as it was.
        unsafe {
            libc::madvise(p.cast_mut().cast(), len, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = memory;
}

/// The whole aligned [`HUGE_PAGE`]s within the `len` bytes at address `start`, as (offset
/// from `start`, length); `None` if there is none.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn huge_range(start: usize, len: usize) -> Option<(usize, usize)> {
    let end = start.checked_add(len)?;
    let first = start.checked_next_multiple_of(HUGE_PAGE)?;
    let last = end & !(HUGE_PAGE - 1);
    (last > first).then(|| (first - start, last - first))
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

    #[test]
    fn huge_ranges_are_the_whole_aligned_pages_inside() {
        use super::{HUGE_PAGE as H, huge_range};
        assert_eq!(huge_range(H, 2 * H), Some((0, 2 * H)));
        assert_eq!(huge_range(H + 1, 2 * H), Some((H - 1, H)));
        // Just short of a whole page, at either end.
        assert_eq!(huge_range(H + 1, H), None);
        assert_eq!(huge_range(H, H - 1), None);
        assert_eq!(huge_range(1, 2 * H - 2), None);
        assert_eq!(huge_range(H, 0), None);
        // Near the top of the address space: no rounding past it.
        assert_eq!(huge_range(usize::MAX - 10, 5), None);
        assert_eq!(huge_range(usize::MAX - H, H), None);
    }

    /// MADV_HUGEPAGE keeps what the memory holds (another advice, such as MADV_DONTNEED,
    /// would zero it).
    #[test]
    fn asking_for_huge_pages_keeps_the_contents() {
        extern crate std;
        use std::vec::Vec;
        let v: Vec<u64> = (0..1u64 << 20).collect();
        super::huge_pages(&v);
        super::huge_pages(&v[..3]);
        super::huge_pages::<u64>(&[]);
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64));
    }
}
