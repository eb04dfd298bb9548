//! Cycles from the time-stamp counter.
//!
//! On CPUs with an invariant TSC (`constant_tsc nonstop_tsc` in /proc/cpuinfo) the TSC ticks at a
//! fixed rate, the nominal frequency, whatever the core's actual clock. "Cycles per packet" here
//! are TSC ticks per packet: exact for a core running at nominal frequency, an over-estimate when
//! it runs faster (turbo) and an under-estimate when slower. The figures in docs/benchmarks.md
//! say so. On other architectures the TSC functions fall back to nanoseconds.

use std::time::{Duration, Instant};

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no memory effects and is available on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<Instant> = OnceLock::new();
        u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// TSC ticks per second, measured against the monotonic clock over `over`.
pub fn ticks_per_sec(over: Duration) -> f64 {
    let (t0, c0) = (Instant::now(), rdtsc());
    std::thread::sleep(over);
    let (t1, c1) = (Instant::now(), rdtsc());
    #[allow(clippy::cast_precision_loss)]
    let ticks = (c1 - c0) as f64;
    ticks / (t1 - t0).as_secs_f64()
}

/// Runs `f` (which processes `packets_per_call` packets) `calls` times per sample, `samples`
/// times, and returns the median TSC ticks per packet.
pub fn median_ticks_per_packet(
    samples: usize,
    calls: usize,
    packets_per_call: usize,
    mut f: impl FnMut(),
) -> f64 {
    let mut v: Vec<f64> = (0..samples.max(1))
        .map(|_| {
            let c0 = rdtsc();
            for _ in 0..calls {
                f();
            }
            let c1 = rdtsc();
            #[allow(clippy::cast_precision_loss)]
            let per = (c1 - c0) as f64 / (calls * packets_per_call) as f64;
            per
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Like [`median_ticks_per_packet`], for an `f` that measures itself: it returns the ticks of
/// the part that counts (e.g. the pipeline without the bench's restoring of its input).
pub fn median_measured_ticks_per_packet(
    samples: usize,
    calls: usize,
    packets_per_call: usize,
    mut f: impl FnMut() -> u64,
) -> f64 {
    let mut v: Vec<f64> = (0..samples.max(1))
        .map(|_| {
            let ticks: u64 = (0..calls).map(|_| f()).sum();
            #[allow(clippy::cast_precision_loss)]
            let per = ticks as f64 / (calls * packets_per_call) as f64;
            per
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
