//! A small filter over IP addresses, for sets every forwarded packet is checked against (a
//! router's own addresses, NAT's external and internal addresses): it rules out most addresses
//! with one multiply and one load, before the set itself is scanned or hashed.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A 256-bit filter: [`AddrFilter::may_contain_v4`] (or `_v6`) is true for every address
/// added, and for about `1 - (255/256)^n` of the others once `n` are in.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddrFilter([u64; 4]);

impl AddrFilter {
    /// The word and bit of `key`: the top 8 bits of a multiplicative hash, so that a block of
    /// consecutive addresses spreads over the bits.
    #[inline(always)]
    fn bit(key: u32) -> (usize, u64) {
        let h = key.wrapping_mul(0x9e37_79b1) >> 24;
        (usize::try_from(h >> 6).unwrap_or(0) & 3, 1 << (h & 63))
    }

    /// An IPv6 address folded to 32 bits (every bit of it counts).
    #[inline(always)]
    fn key6(a: Ipv6Addr) -> u32 {
        let x = u128::from(a);
        #[expect(clippy::cast_possible_truncation, reason = "folded halves")]
        let y = (x ^ (x >> 64)) as u64;
        #[expect(clippy::cast_possible_truncation, reason = "folded halves")]
        let z = (y ^ (y >> 32)) as u32;
        z
    }

    fn add(&mut self, key: u32) {
        let (w, b) = AddrFilter::bit(key);
        self.0[w] |= b;
    }

    #[inline(always)]
    fn may_contain(&self, key: u32) -> bool {
        let (w, b) = AddrFilter::bit(key);
        self.0[w] & b != 0
    }

    pub(crate) fn add_v4(&mut self, a: Ipv4Addr) {
        self.add(u32::from(a));
    }

    #[inline(always)]
    pub(crate) fn may_contain_v4(&self, a: Ipv4Addr) -> bool {
        self.may_contain(u32::from(a))
    }

    pub(crate) fn add_v6(&mut self, a: Ipv6Addr) {
        self.add(AddrFilter::key6(a));
    }

    #[inline(always)]
    pub(crate) fn may_contain_v6(&self, a: Ipv6Addr) -> bool {
        self.may_contain(AddrFilter::key6(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_added_and_rules_out_most_of_the_rest() {
        let mut f = AddrFilter::default();
        let v4: Vec<Ipv4Addr> = (0..8u32)
            .map(|i| Ipv4Addr::from(0x0a00_0001 + (i << 8)))
            .collect();
        let v6: Vec<Ipv6Addr> = (0..8u128)
            .map(|i| Ipv6Addr::from(0x2001_0db8_u128 << 96 | i << 64 | 1))
            .collect();
        for a in &v4 {
            f.add_v4(*a);
        }
        for a in &v6 {
            f.add_v6(*a);
        }
        assert!(v4.iter().all(|a| f.may_contain_v4(*a)));
        assert!(v6.iter().all(|a| f.may_contain_v6(*a)));
        // 16 of 256 bits set: about 6% of other addresses pass; a /16's hosts, and as many
        // IPv6 hosts, must mostly be ruled out.
        let passed4 = (0..65_536u32)
            .filter(|i| f.may_contain_v4(Ipv4Addr::from(0x0a01_0000 | i)))
            .count();
        let passed6 = (0..65_536u128)
            .filter(|i| {
                f.may_contain_v6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | 1 << 64 | (i + 2)))
            })
            .count();
        assert!(passed4 < 65_536 / 8, "{passed4}");
        assert!(passed6 < 65_536 / 8, "{passed6}");
        assert!(!AddrFilter::default().may_contain_v4(v4[0]));
    }
}
