//! Criterion benches of the L2 overlay pipeline on in-memory batches of 64 packets.
//!
//! - `l2/decap_to_port`: VXLAN from a remote VTEP → decapsulation → learn check → FDB → local
//!   port (what a hypervisor does for traffic arriving from the overlay).
//! - `l2/port_to_encap`: a local VM's frame → port security → FDB → VXLAN encapsulation towards
//!   the remote VTEP (traffic leaving a VM).
//!
//! For 64 B and 1500 B frames, with 1 flow and with 4096 remote VMs (lookups spread over the
//! FDB). Criterion reports packets per second (throughput in elements); after it, the bench
//! prints cycles per packet (TSC ticks, median of 31 samples) for the same cases, which
//! docs/benchmarks.md records. Both time `Pipeline::process` alone: restoring the batch for the
//! next run is left out (read around each call with the TSC).
//!
//! Run: `cargo bench -p weft-bench --bench pipeline`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use weft_bench::cases::all_cases;
use weft_bench::tsc;
use weft_dataplane::BATCH_SIZE;

fn bench(cr: &mut Criterion) {
    let hz = tsc::ticks_per_sec(Duration::from_millis(200));
    let mut g = cr.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    for mut c in all_cases() {
        c.check();
        let name = c.name.clone();
        // Only `Pipeline::process` is timed, not the restoring of the batch between runs.
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let ticks: u64 = (0..iters).map(|_| c.run_once_timed()).sum();
                #[allow(clippy::cast_precision_loss)]
                Duration::from_secs_f64(ticks as f64 / hz)
            });
        });
    }
    g.finish();
}

fn cycles() {
    let hz = tsc::ticks_per_sec(Duration::from_millis(200));
    println!(
        "\ncycles per packet (TSC at {:.0} MHz, median of 31 samples of 2000 batches of {BATCH_SIZE}):",
        hz / 1e6
    );
    for mut c in all_cases() {
        c.check();
        let t = tsc::median_measured_ticks_per_packet(31, 2000, BATCH_SIZE, || c.run_once_timed());
        println!(
            "  {:<40} {:>7.1} cycles/pkt {:>7.2} Mpps/core",
            c.name,
            t,
            hz / t / 1e6
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test` runs this binary without `--bench` (criterion's test mode: every case once);
    // the cycle counts are for real bench runs only.
    if std::env::args().any(|a| a == "--bench") {
        cycles();
    }
}
