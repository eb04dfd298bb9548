//! The hash index shared by the connection tracker and NAT: open addressing over `u64` slots,
//! each holding 32 bits of the key's hash and the number of the entry it points to, so probes
//! compare hashes without reading entries; and the hash functions both use (seeded, so that
//! nobody outside can choose keys that collide).

pub(crate) fn ix(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

pub(crate) fn lo32(x: u64) -> u32 {
    u32::try_from(x & 0xffff_ffff).unwrap_or(0)
}

/// The folded 128-bit product (as in foldhash and wyhash).
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    u64::try_from(p & u128::from(u64::MAX)).unwrap_or(0) ^ u64::try_from(p >> 64).unwrap_or(0)
}

pub(crate) fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An open-addressing index from a key's hash to a slot number; the keys live in the slots, so
/// a lookup compares them through a closure. Linear probing, deletion by backward shift (no
/// tombstones). A table slot is `hash << 32 | (slot + 1)`, 0 when empty. Never more than half
/// full (the callers' limits guarantee it), so probes are short and always end.
#[derive(Debug)]
pub(crate) struct Index {
    slots: Vec<u64>,
    mask: usize,
}

impl Index {
    pub(crate) fn new(entries: usize) -> Index {
        let n = entries.saturating_mul(2).max(16).next_power_of_two();
        let slots = vec![0; n];
        // Probed at random: with 4 KiB pages a large index misses the TLB on every lookup.
        weft_prefetch::huge_pages(&slots);
        Index { slots, mask: n - 1 }
    }

    pub(crate) fn home(&self, h: u32) -> usize {
        usize::try_from(h).unwrap_or(0) & self.mask
    }

    #[inline(always)]
    pub(crate) fn find(&self, h: u32, mut eq: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if lo32(s >> 32) == h {
                let slot = ix(lo32(s) - 1);
                if eq(slot) {
                    return Some(slot);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    pub(crate) fn entry(h: u32, slot: usize) -> u64 {
        let slot = u32::try_from(slot).unwrap_or(u32::MAX - 1);
        (u64::from(h) << 32) | u64::from(slot + 1)
    }

    pub(crate) fn insert(&mut self, h: u32, slot: usize) {
        let mut i = self.home(h);
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = Index::entry(h, slot);
    }

    pub(crate) fn remove(&mut self, h: u32, slot: usize) {
        let e = Index::entry(h, slot);
        let mut i = self.home(h);
        loop {
            match self.slots[i] {
                0 => return, // not there (cannot happen)
                s if s == e => break,
                _ => i = (i + 1) & self.mask,
            }
        }
        // Knuth's algorithm R: move back every later entry of the run whose home is not
        // (cyclically) between the hole and it.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let k = self.home(lo32(s >> 32));
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
    }

    /// Starts loading the home slot of `h` into the caches (a prefetch: returns at once).
    pub(crate) fn prefetch(&self, h: u32) {
        weft_prefetch::read(&self.slots[self.home(h)]);
    }

    /// The slot number the home slot of `h` holds, if any: the first probe's candidate, for
    /// warming the caches ahead of a batch.
    pub(crate) fn first_candidate(&self, h: u32) -> Option<usize> {
        let s = self.slots[self.home(h)];
        (s != 0).then(|| ix(lo32(s).wrapping_sub(1)))
    }

    pub(crate) fn bytes(&self) -> usize {
        self.slots.capacity() * size_of::<u64>()
    }
}
