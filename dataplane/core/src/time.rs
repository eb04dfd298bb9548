//! Time as the core sees it: a value passed in by the caller, never read from a clock here.

use std::time::Duration;

/// A monotonic instant in nanoseconds since an epoch the caller chooses (the I/O layer uses
/// the process start). Only differences between two `Timestamp`s are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// `self + d`, saturating.
    #[inline]
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    #[inline]
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Whole seconds since the epoch (the FDB stores this compact form).
    #[inline]
    pub fn secs(self) -> u32 {
        u32::try_from(self.0 / 1_000_000_000).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp(5_000_000_000);
        assert_eq!(t.plus(Duration::from_secs(1)), Timestamp(6_000_000_000));
        assert_eq!(
            Timestamp(u64::MAX).plus(Duration::from_secs(1)),
            Timestamp(u64::MAX)
        );
        assert_eq!(t.since(Timestamp(7)), Duration::from_nanos(4_999_999_993));
        assert_eq!(Timestamp(1).since(t), Duration::ZERO);
        assert_eq!(t.secs(), 5);
    }
}
