//! Longest-prefix-match lookups (`weft_dataplane::lpm`): the router's per-packet FIB lookup.
//!
//! Tables, built from a fixed-seed generator:
//! - `random`: prefixes of uniformly random length (IPv4 /8../32, IPv6 /16../128) at uniformly
//!   random places; 1, 1 000 and 100 000 of them.
//! - `mix`: 100 000 prefixes shaped like a provider's table. IPv4: 94 % /24, 5 % /16, 1 % /8.
//!   IPv6: 64 provider /32s, 10 % /48s inside them and 90 % /64s inside those /48s.
//!
//! Addresses, 65 536 per iteration (more than the caches hold paths for):
//! - `any`: uniformly random (most miss the long prefixes and stop early);
//! - `hit`: inside a uniformly chosen prefix of the table (every lookup walks to that prefix's
//!   depth or deeper).
//!
//! Each case runs one lookup at a time (`lookup`); IPv6 cases also in batches of the
//! pipeline's 64 (`Lpm6::lookup_batch`, suffix `/batch`). Criterion reports lookups per second
//! (throughput in elements). After it, the bench prints each table's memory, the median TSC
//! cycles (and the ns they take) per lookup over 31 samples, and the build time of the 100k
//! tables.
//!
//! Run: `cargo bench -p weft-bench --bench lpm`.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use weft_bench::tsc;
use weft_dataplane::lpm::{Lpm4, Lpm6};

/// Addresses looked up per iteration.
const LOOKUPS: usize = 1 << 16;

/// Addresses per `lookup_batch` call: the pipeline's batch size.
const BATCH: usize = weft_dataplane::BATCH_SIZE;

/// SplitMix64, so every run builds the same tables.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn u128(&mut self) -> u128 {
        u128::from(self.next()) << 64 | u128::from(self.next())
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u8, hi: u8) -> u8 {
        let n = u64::from(hi - lo) + 1;
        lo + u8::try_from(self.next() % n).unwrap_or(0)
    }

    /// In `0..n`.
    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }
}

/// Left-aligned mask of `len` bits of a 128-bit key.
fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// An address inside `key/len` (a left-aligned 128-bit key), the host bits random.
fn inside(rng: &mut Rng, key: u128, len: u8) -> u128 {
    (key & mask(len)) | (rng.u128() & !mask(len))
}

/// Prefixes as left-aligned 128-bit keys with lengths.
type Prefixes = Vec<(u128, u8)>;

fn random_prefixes(rng: &mut Rng, n: usize, lo: u8, hi: u8) -> Prefixes {
    (0..n).map(|_| (rng.u128(), rng.range(lo, hi))).collect()
}

fn mix_v4(rng: &mut Rng, n: usize) -> Prefixes {
    (0..n)
        .map(|_| {
            let len = match rng.next() % 100 {
                0 => 8,
                1..=5 => 16,
                _ => 24,
            };
            (rng.u128(), len)
        })
        .collect()
}

fn mix_v6(rng: &mut Rng, n: usize) -> Prefixes {
    let providers: Vec<u128> = (0..64).map(|_| rng.u128() & mask(32)).collect();
    let sites: Vec<u128> = (0..n / 10)
        .map(|_| {
            let p = providers[rng.index(providers.len())];
            inside(rng, p, 32) & mask(48)
        })
        .collect();
    let mut v: Prefixes = sites.iter().map(|&k| (k, 48)).collect();
    while v.len() < n {
        let site = sites[rng.index(sites.len())];
        v.push((inside(rng, site, 48), 64));
    }
    v
}

/// Addresses: uniformly random (`any`) or inside the table's prefixes (`hit`).
fn addresses(rng: &mut Rng, prefixes: &Prefixes, hit: bool) -> Vec<u128> {
    (0..LOOKUPS)
        .map(|_| {
            if hit {
                let (k, len) = prefixes[rng.index(prefixes.len())];
                inside(rng, k, len)
            } else {
                rng.u128()
            }
        })
        .collect()
}

fn route_id(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(0)
}

/// One table and one set of addresses, either family.
enum Case {
    V4(Lpm4, Vec<Ipv4Addr>),
    V6(Lpm6, Vec<Ipv6Addr>),
}

impl Case {
    fn v4(prefixes: &Prefixes, addrs: &[u128]) -> Case {
        let top = |k: u128| Ipv4Addr::from(u32::try_from(k >> 96).unwrap_or(0));
        let routes: Vec<_> = prefixes
            .iter()
            .enumerate()
            .map(|(i, &(k, len))| (top(k), len, route_id(i)))
            .collect();
        let t = Lpm4::build(&routes).expect("valid routes");
        Case::V4(t, addrs.iter().map(|&a| top(a)).collect())
    }

    fn v6(prefixes: &Prefixes, addrs: &[u128]) -> Case {
        let routes: Vec<_> = prefixes
            .iter()
            .enumerate()
            .map(|(i, &(k, len))| (Ipv6Addr::from(k), len, route_id(i)))
            .collect();
        let t = Lpm6::build(&routes).expect("valid routes");
        Case::V6(t, addrs.iter().map(|&a| Ipv6Addr::from(a)).collect())
    }

    /// Looks every address up, one at a time or (IPv6) in batches of [`BATCH`]; returns a
    /// checksum of the results.
    fn run(&self, batch: bool) -> u64 {
        let sum = |acc: u64, r: Option<u32>| acc.wrapping_add(u64::from(r.unwrap_or(0)));
        match (self, batch) {
            (Case::V4(t, addrs), _) => addrs
                .iter()
                .fold(0, |acc, &a| sum(acc, t.lookup(black_box(a)))),
            (Case::V6(t, addrs), false) => addrs
                .iter()
                .fold(0, |acc, &a| sum(acc, t.lookup(black_box(a)))),
            (Case::V6(t, addrs), true) => {
                let mut out = [None; BATCH];
                addrs.chunks(BATCH).fold(0, |acc, c| {
                    t.lookup_batch(black_box(c), &mut out);
                    out.iter().fold(acc, |acc, &r| sum(acc, r))
                })
            }
        }
    }

    /// Whether the family has a batch lookup.
    fn has_batch(&self) -> bool {
        matches!(self, Case::V6(..))
    }

    /// (prefixes, memory bytes).
    fn size(&self) -> (usize, usize) {
        match self {
            Case::V4(t, _) => (t.len(), t.memory_bytes()),
            Case::V6(t, _) => (t.len(), t.memory_bytes()),
        }
    }
}

fn cases() -> Vec<(String, Case)> {
    let mut rng = Rng(0x5eed);
    let mut out = Vec::new();
    let tables: [(&str, bool, Prefixes); 8] = [
        ("v4/random/1", true, random_prefixes(&mut rng, 1, 8, 32)),
        ("v4/random/1k", true, random_prefixes(&mut rng, 1000, 8, 32)),
        (
            "v4/random/100k",
            true,
            random_prefixes(&mut rng, 100_000, 8, 32),
        ),
        ("v4/mix/100k", true, mix_v4(&mut rng, 100_000)),
        ("v6/random/1", false, random_prefixes(&mut rng, 1, 16, 128)),
        (
            "v6/random/1k",
            false,
            random_prefixes(&mut rng, 1000, 16, 128),
        ),
        (
            "v6/random/100k",
            false,
            random_prefixes(&mut rng, 100_000, 16, 128),
        ),
        ("v6/mix/100k", false, mix_v6(&mut rng, 100_000)),
    ];
    for (name, is_v4, prefixes) in &tables {
        for hit in [false, true] {
            let addrs = addresses(&mut rng, prefixes, hit);
            let case = if *is_v4 {
                Case::v4(prefixes, &addrs)
            } else {
                Case::v6(prefixes, &addrs)
            };
            let which = if hit { "hit" } else { "any" };
            out.push((format!("{name}/{which}"), case));
        }
    }
    out
}

fn bench(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("lpm");
    g.throughput(Throughput::Elements(LOOKUPS as u64));
    for (name, case) in cases() {
        g.bench_function(&name, |b| b.iter(|| case.run(false)));
        if case.has_batch() {
            g.bench_function(format!("{name}/batch"), |b| b.iter(|| case.run(true)));
        }
    }
    g.finish();
}

/// Build times and the per-lookup summary that docs/benchmarks.md records.
fn summary() {
    let hz = tsc::ticks_per_sec(Duration::from_millis(200));
    println!(
        "\nper lookup (median of 31 samples of {LOOKUPS} lookups; TSC at {:.0} MHz):",
        hz / 1e6
    );
    let per = |ticks: f64| format!("{:>6.1} ns {:>6.1} cycles", ticks / hz * 1e9, ticks);
    for (name, case) in cases() {
        let (n, bytes) = case.size();
        let median = |batch: bool| {
            tsc::median_ticks_per_packet(31, 1, LOOKUPS, || {
                black_box(case.run(batch));
            })
        };
        let batch = match case.has_batch() {
            true => format!("   batch {}", per(median(true))),
            false => String::new(),
        };
        println!(
            "  {name:<20} {n:>6} prefixes {:>7.1} KiB   one at a time {}{batch}",
            bytes as f64 / 1024.0,
            per(median(false)),
        );
    }
    let mut rng = Rng(7);
    for (name, prefixes) in [
        ("v4/mix/100k", mix_v4(&mut rng, 100_000)),
        ("v6/mix/100k", mix_v6(&mut rng, 100_000)),
    ] {
        let t0 = Instant::now();
        let case = if name.starts_with("v4") {
            Case::v4(&prefixes, &[])
        } else {
            Case::v6(&prefixes, &[])
        };
        println!(
            "  build {name}: {:.1} ms ({} prefixes)",
            t0.elapsed().as_secs_f64() * 1e3,
            case.size().0
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test` runs this binary without `--bench` (criterion's test mode: every case once).
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
