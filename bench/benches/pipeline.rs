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
//! docs/benchmarks.md records.
//!
//! Run: `cargo bench -p weft-bench --bench pipeline`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use weft_bench::fixtures::{decap_batch, encap_batch, l2_tables, restore_decap, restore_encap};
use weft_bench::tsc;
use weft_dataplane::pipeline::{Action, Pipeline};
use weft_dataplane::{BATCH_SIZE, Batch, Timestamp};

#[derive(Clone, Copy)]
enum Dir {
    Decap,
    Encap,
}

struct Case {
    name: String,
    dir: Dir,
    pipeline: Pipeline,
    batch: Batch,
    actions: Vec<Action>,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (macs, flows) in [(1usize, 1usize), (4096, 4096)] {
        for len in [64usize, 1500] {
            for dir in [Dir::Decap, Dir::Encap] {
                let t = l2_tables(macs);
                let batch = match dir {
                    Dir::Decap => decap_batch(&t, len, flows),
                    Dir::Encap => encap_batch(len, flows),
                };
                let what = match dir {
                    Dir::Decap => "decap_to_port",
                    Dir::Encap => "port_to_encap",
                };
                v.push(Case {
                    name: format!("l2/{what}/{len}B/{macs}macs"),
                    dir,
                    pipeline: Pipeline::new(t),
                    batch,
                    actions: Vec::with_capacity(BATCH_SIZE),
                });
            }
        }
    }
    v
}

fn run_once(c: &mut Case) {
    c.pipeline
        .process(Timestamp(1_000_000_000), &mut c.batch, &mut c.actions);
    black_box(&c.actions);
    match c.dir {
        Dir::Decap => restore_decap(&mut c.batch),
        Dir::Encap => restore_encap(&mut c.batch),
    }
}

fn check(c: &mut Case) {
    run_once(c);
    let ok = c.actions.iter().all(|a| match c.dir {
        Dir::Decap => matches!(a, Action::Port(_)),
        Dir::Encap => matches!(a, Action::Vtep(_)),
    });
    assert!(ok, "{}: unexpected actions {:?}", c.name, &c.actions[..4]);
    assert_eq!(c.pipeline.counters().total_drops(), 0, "{}: drops", c.name);
}

fn bench(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    for mut c in cases() {
        check(&mut c);
        let name = c.name.clone();
        g.bench_function(&name, |b| b.iter(|| run_once(&mut c)));
    }
    g.finish();
}

fn cycles() {
    let hz = tsc::ticks_per_sec(Duration::from_millis(200));
    println!(
        "\ncycles per packet (TSC at {:.0} MHz, median of 31 samples of 2000 batches of {BATCH_SIZE}):",
        hz / 1e6
    );
    for mut c in cases() {
        check(&mut c);
        let t = tsc::median_ticks_per_packet(31, 2000, BATCH_SIZE, || run_once(&mut c));
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
