//! The Internet checksum: computation (RFC 1071), incremental update (RFC 1624) and the
//! transport pseudo-headers of IPv4 (RFC 768, RFC 9293 §3.1) and IPv6 (RFC 8200 §8.1).
//!
//! The checksum is the ones'-complement of the ones'-complement sum of the data taken as
//! big-endian 16-bit words (an odd trailing byte is padded with a zero on the right).
//!
//! Sums travel as `u32` *partial sums*: any `u32` is a valid partial sum, [`sum`] adds bytes to
//! one, plain `+` of a few partial sums is another (as long as it does not overflow; values
//! returned here are at most `0xffff`, pseudo-header sums at most `0x12_0000`), [`fold`]
//! reduces one to 16 bits and [`finish`] gives the checksum field value. Chaining
//! `sum(b, sum(a, 0))` equals `sum(a ++ b, 0)` only when `a` has an even length.
//!
//! ```text
//! checksum = finish(sum(l4_bytes, pseudo_header_v4(src, dst, proto, len)))
//! valid    <=> finish(sum(l4_bytes_including_checksum, pseudo)) == 0
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// `acc + v` with the carry out of bit 63 added back in (end-around carry). Because
/// 2^64 - 1 is a multiple of 2^16 - 1, this preserves the 16-bit ones'-complement sum.
#[inline]
fn add_carry(acc: u64, v: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(v);
    // On overflow `s <= 2^64 - 2`, so adding the carry cannot overflow again.
    s + u64::from(carry)
}

#[inline]
fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// The low 16 bits of `x`.
#[inline]
fn low16(x: u64) -> u16 {
    let b = x.to_be_bytes();
    u16::from_be_bytes([b[6], b[7]])
}

/// Reduces a 64-bit end-around-carry sum to 16 bits.
#[inline]
pub(crate) fn fold64(acc: u64) -> u16 {
    let s = (acc & 0xffff_ffff) + (acc >> 32); // <= 2^33 - 2
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff + 0x1_ffff
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff + 2
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    low16(s)
}

/// Adds `data` (as big-endian 16-bit words) to the partial sum `initial`, returning a partial
/// sum of at most `0xffff`.
///
/// Processes 16 bytes per step into two 64-bit accumulators with end-around carry; the tail is
/// zero-padded, which also pads an odd final byte on the right as RFC 1071 requires.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut a0 = u64::from(initial);
    let mut a1 = 0u64;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        a0 = add_carry(a0, be64(&c[..8]));
        a1 = add_carry(a1, be64(&c[8..]));
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut tail = [0u8; 16];
        tail[..rem.len()].copy_from_slice(rem);
        a0 = add_carry(a0, be64(&tail[..8]));
        a1 = add_carry(a1, be64(&tail[8..]));
    }
    u32::from(fold64(add_carry(a0, a1)))
}

/// Folds a partial sum to 16 bits (end-around carry), without complementing. Two steps are
/// enough for any `u32`: the first leaves at most `0xffff + 0xffff`, the second at most
/// `0xfffe + 1`.
#[inline]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16); // <= 0x1_fffe
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    // At most 0xffff.
    #[allow(clippy::cast_possible_truncation)]
    let s = s as u16;
    s
}

/// Whether an IPv4 header without options (20 bytes, checksum field included) is valid:
/// `finish(sum(h, 0)) == 0`, summed as five 32-bit words. The words are read in the host's
/// byte order: the ones'-complement sum does not depend on it (RFC 1071 §2(B)), and the valid
/// sum, `0xffff`, reads the same both ways; no byte swaps.
///
/// Folding a sum to 16 bits keeps it modulo `0xffff` (`0x1_0000` is 1 modulo `0xffff`), and a
/// non-zero sum folds to a value in `1..=0xffff`: it folds to `0xffff` exactly when it is a
/// non-zero multiple of `0xffff`. One multiply-based remainder replaces the four folds.
#[inline(always)]
pub fn ipv4_header_ok(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    acc != 0 && acc % 0xffff == 0
}

/// The checksum field value for a partial sum: `!fold(sum)`.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

#[inline]
fn words_v4(a: Ipv4Addr) -> u32 {
    let o = a.octets();
    u32::from(u16::from_be_bytes([o[0], o[1]])) + u32::from(u16::from_be_bytes([o[2], o[3]]))
}

#[inline]
fn words_v6(a: &Ipv6Addr) -> u32 {
    a.segments().iter().map(|&w| u32::from(w)).sum()
}

/// The partial sum of the IPv4 pseudo-header (RFC 9293 §3.1): source, destination, zero,
/// protocol, and the upper-layer length `len` (header plus data).
#[inline]
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, proto: IpProtocol, len: u16) -> u32 {
    words_v4(*src) + words_v4(*dst) + u32::from(u8::from(proto)) + u32::from(len)
}

/// The partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination, the 32-bit
/// upper-layer length `len`, three zero bytes and the next header value.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: IpProtocol, len: u32) -> u32 {
    words_v6(src) + words_v6(dst) + (len >> 16) + (len & 0xffff) + u32::from(u8::from(next_header))
}

/// The pseudo-header partial sum for either family. `None` if the families differ, or for IPv4
/// if `len` exceeds 65535.
#[inline]
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, proto: IpProtocol, len: u32) -> Option<u32> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Some(pseudo_header_v4(s, d, proto, u16::try_from(len).ok()?))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, proto, len)),
        _ => None,
    }
}

/// Updates checksum `csum` for a 16-bit word changing from `old` to `new` (RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`).
///
/// For UDP, a checksum of 0 means "none" and must stay 0, and a computed 0 is sent as `0xffff`:
/// both are the caller's business.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!csum) + u32::from(!old) + u32::from(new))
}

/// Updates checksum `csum` for an IPv4 header whose TTL (the high byte of its word) goes down
/// by one: [`update16`] with `new = old - 0x0100`, for which `!old + new` is the constant
/// `0xfeff` whatever `old` is. `!csum + 0xfeff` is at most `0x1_fefe`, so one fold suffices.
#[inline(always)]
pub fn ttl_decremented(csum: u16) -> u16 {
    let x = u32::from(!csum) + 0xfeff;
    let x = (x & 0xffff) + (x >> 16);
    // At most 0xfeff after the fold.
    #[allow(clippy::cast_possible_truncation)]
    let x = x as u16;
    !x
}

/// Updates checksum `csum` for a 32-bit field (two aligned words) changing from `old` to `new`
/// (RFC 1624 eqn. 3).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let [o0, o1, o2, o3] = old.to_be_bytes();
    let neg_old =
        u32::from(!u16::from_be_bytes([o0, o1])) + u32::from(!u16::from_be_bytes([o2, o3]));
    let new_sum = (new >> 16) + (new & 0xffff);
    !fold(u32::from(!csum) + neg_old + new_sum)
}

/// Updates checksum `csum` for an IPv4 address changing from `old` to `new` (for NAT-style
/// rewrites of the IPv4 header and of TCP/UDP checksums covering the pseudo-header).
#[inline]
pub fn update_addr_v4(csum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(csum, u32::from(old), u32::from(new))
}

/// Updates checksum `csum` for an IPv6 address changing from `old` to `new`.
#[inline]
pub fn update_addr_v6(csum: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
    let neg_old: u32 = old.segments().iter().map(|&w| u32::from(!w)).sum();
    !fold(u32::from(!csum) + neg_old + words_v6(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64* for test data.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, out: &mut [u8]) {
            for b in out {
                *b = self.next().to_be_bytes()[0];
            }
        }
    }

    /// The obvious RFC 1071 loop, as a reference.
    fn naive(data: &[u8], initial: u32) -> u16 {
        let mut s = u64::from(initial);
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            s += hi | lo;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        u16::try_from(s).unwrap()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(finish(sum(&data, 0)), 0x220d);
        // Verification over data + checksum gives zero.
        let mut with = [0u8; 10];
        with[..8].copy_from_slice(&data);
        with[8..].copy_from_slice(&0x220du16.to_be_bytes());
        assert_eq!(finish(sum(&with, 0)), 0);
    }

    #[test]
    fn ipv4_header_check_agrees_with_the_general_sum() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut h = [0u8; 20];
        for _ in 0..2000 {
            rng.bytes(&mut h);
            // Half of them with a correct checksum field, half as they come.
            if rng.next() & 1 == 0 {
                h[10..12].fill(0);
                let c = finish(sum(&h, 0));
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            assert_eq!(ipv4_header_ok(&h), finish(sum(&h, 0)) == 0, "{h:02x?}");
        }
        // A zero field that makes the sum 0xffff, and an all-zero header (sum 0: invalid).
        let mut h = [0u8; 20];
        assert!(!ipv4_header_ok(&h));
        h[10..12].copy_from_slice(&[0xff, 0xff]);
        assert!(ipv4_header_ok(&h));
    }

    #[test]
    fn ttl_decrement_matches_the_general_update() {
        let mut rng = Rng(0x7711_2233);
        for csum in 0..=u16::MAX {
            // The TTL (at least 1) and the protocol byte beside it.
            let r = rng.next().to_be_bytes();
            let old = u16::from_be_bytes([r[0].max(1), r[1]]);
            let new = old - 0x0100;
            assert_eq!(
                ttl_decremented(csum),
                update16(csum, old, new),
                "{csum:#x} {old:#x}"
            );
        }
        // Through a whole header: the result verifies.
        for _ in 0..2000 {
            let mut h = [0u8; 20];
            rng.bytes(&mut h);
            h[8] = h[8].max(1);
            h[10..12].fill(0);
            let c = finish(sum(&h, 0));
            h[8] -= 1;
            h[10..12].copy_from_slice(&ttl_decremented(c).to_be_bytes());
            assert!(ipv4_header_ok(&h), "{h:02x?}");
        }
    }

    #[test]
    fn the_two_step_fold_agrees_with_the_full_one() {
        let mut rng = Rng(0x5eed_f01d);
        let edges = [
            0,
            1,
            0xfffe,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x1_ffff,
            0xffff_0000,
            u32::MAX - 1,
            u32::MAX,
        ];
        let random = (0..1_000_000).map(|_| u32::try_from(rng.next() >> 32).unwrap());
        for x in edges.into_iter().chain(random) {
            assert_eq!(fold(x), fold64(u64::from(x)), "{x:#x}");
        }
    }

    #[test]
    fn empty_and_fold() {
        assert_eq!(sum(&[], 0), 0);
        assert_eq!(finish(0), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(fold(0x1234_0000), 0x1234);
    }

    #[test]
    fn odd_lengths_and_initial_match_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 300];
        rng.bytes(&mut buf);
        for len in 0..buf.len() {
            for initial in [0, 1, 0xffff, 0x1_0000, 0xffff_ffff, 0x8000_1234] {
                let got = fold(sum(&buf[..len], initial));
                let want = naive(&buf[..len], initial);
                // Both are ones'-complement values; 0 and 0xffff are the same number, but
                // neither implementation yields 0 for a nonzero sum.
                assert_eq!(got, want, "len {len} initial {initial:#x}");
            }
        }
        // All-ones data exercises the carries.
        let ones = [0xffu8; 257];
        for len in 0..ones.len() {
            assert_eq!(
                fold(sum(&ones[..len], 0)),
                naive(&ones[..len], 0),
                "len {len}"
            );
        }
    }

    #[test]
    fn chaining_at_even_boundaries() {
        let mut rng = Rng(42);
        let mut buf = [0u8; 123];
        rng.bytes(&mut buf);
        for split in (0..buf.len()).step_by(2) {
            let (a, b) = buf.split_at(split);
            assert_eq!(fold(sum(b, sum(a, 0))), fold(sum(&buf, 0)));
        }
    }

    #[test]
    fn incremental_matches_recompute() {
        let mut rng = Rng(0xdead_beef);
        for _ in 0..2000 {
            let mut buf = [0u8; 40];
            rng.bytes(&mut buf);
            let csum = finish(sum(&buf, 0));
            let r = rng.next().to_be_bytes();

            // A 16-bit word at an even offset.
            let at = usize::from(r[0] % 20) * 2;
            let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
            let new = u16::from_be_bytes([r[1], r[2]]);
            let mut b16 = buf;
            b16[at..at + 2].copy_from_slice(&new.to_be_bytes());
            assert_eq!(update16(csum, old, new), finish(sum(&b16, 0)));

            // A 32-bit field.
            let at = usize::from(r[3] % 10) * 4;
            let old = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            let new = u32::from_be_bytes([r[4], r[5], r[6], r[7]]);
            let mut b32 = buf;
            b32[at..at + 4].copy_from_slice(&new.to_be_bytes());
            assert_eq!(update32(csum, old, new), finish(sum(&b32, 0)));
            let (o4, n4) = (Ipv4Addr::from(old), Ipv4Addr::from(new));
            assert_eq!(update_addr_v4(csum, o4, n4), finish(sum(&b32, 0)));

            // An IPv6 address at offset 8.
            let mut new6 = [0u8; 16];
            rng.bytes(&mut new6);
            let mut old6 = [0u8; 16];
            old6.copy_from_slice(&buf[8..24]);
            let mut b6 = buf;
            b6[8..24].copy_from_slice(&new6);
            let (o6, n6) = (Ipv6Addr::from(old6), Ipv6Addr::from(new6));
            assert_eq!(update_addr_v6(csum, &o6, &n6), finish(sum(&b6, 0)));
        }
    }

    #[test]
    fn pseudo_headers() {
        let s4 = Ipv4Addr::new(10, 0, 0, 1);
        let d4 = Ipv4Addr::new(10, 0, 0, 53);
        let mut ph = [0u8; 12];
        ph[..4].copy_from_slice(&s4.octets());
        ph[4..8].copy_from_slice(&d4.octets());
        ph[9] = 17;
        ph[10..].copy_from_slice(&37u16.to_be_bytes());
        let want = fold(sum(&ph, 0));
        assert_eq!(fold(pseudo_header_v4(&s4, &d4, IpProtocol::Udp, 37)), want);
        let any = pseudo_header(&s4.into(), &d4.into(), IpProtocol::Udp, 37).unwrap();
        assert_eq!(fold(any), want);
        assert_eq!(
            pseudo_header(&s4.into(), &d4.into(), IpProtocol::Udp, 70_000),
            None
        );

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::1:2:3:4".parse().unwrap();
        let mut ph = [0u8; 40];
        ph[..16].copy_from_slice(&s6.octets());
        ph[16..32].copy_from_slice(&d6.octets());
        ph[32..36].copy_from_slice(&0x0001_0203u32.to_be_bytes());
        ph[39] = 58;
        let want = fold(sum(&ph, 0));
        assert_eq!(
            fold(pseudo_header_v6(&s6, &d6, IpProtocol::Icmpv6, 0x0001_0203)),
            want
        );
        assert_eq!(
            pseudo_header(&s6.into(), &d4.into(), IpProtocol::Udp, 8),
            None
        );
    }
}
