//! Token buckets: per-port limits on packets punted to local services (ARP/ND answers, DHCP,
//! DHCPv6, router solicitations), so one VM cannot starve the others, and per-router limits on
//! the ICMP errors a router sends (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)).
//!
//! Time is the caller's [`Timestamp`]; nothing here reads a clock.

use crate::time::Timestamp;

const NANOS: u64 = 1_000_000_000;

/// A token bucket: up to `burst` events at once, `rate` per second sustained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens, in units of 1/1e9 token (so refills are exact in integer arithmetic).
    nano_tokens: u64,
    last: Timestamp,
    rate: u64,
    burst: u64,
}

impl TokenBucket {
    /// A full bucket allowing `rate` events per second and bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        let burst = u64::from(burst.max(1));
        TokenBucket {
            nano_tokens: burst * NANOS,
            last: Timestamp::ZERO,
            rate: u64::from(rate),
            burst,
        }
    }

    /// Takes a token at `now` if there is one.
    #[inline]
    pub fn allow(&mut self, now: Timestamp) -> bool {
        if now > self.last {
            let elapsed = now.0 - self.last.0;
            let refill = elapsed.saturating_mul(self.rate);
            self.nano_tokens = self
                .nano_tokens
                .saturating_add(refill)
                .min(self.burst * NANOS);
            self.last = now;
        }
        if self.nano_tokens >= NANOS {
            self.nano_tokens -= NANOS;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(10, 5);
        let t0 = Timestamp(1_000_000_000);
        assert_eq!((0..10).filter(|_| b.allow(t0)).count(), 5, "the burst");
        // 10/s: one token every 100 ms.
        assert!(!b.allow(Timestamp(t0.0 + 99_000_000)));
        assert!(b.allow(Timestamp(t0.0 + 101_000_000)));
        assert!(!b.allow(Timestamp(t0.0 + 101_000_000)));
        // A long pause refills to the burst, not beyond.
        let later = Timestamp(t0.0 + 3_600 * NANOS);
        assert_eq!((0..10).filter(|_| b.allow(later)).count(), 5);
        // Time going backwards does not refill.
        assert!(!b.allow(t0));
    }
}
