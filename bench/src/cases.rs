//! The pipeline cases every bench tool runs (criterion, TSC cycles, callgrind instructions).

use weft_dataplane::pipeline::{Action, Output, Pipeline};
use weft_dataplane::{Batch, BufPool, Timestamp};

use crate::tsc;

use crate::fixtures::{
    decap_batch, encap_batch, l2_tables, l3_tables, restore_decap, restore_encap, restore_routed,
    route_batches,
};

/// Which way a case goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// VXLAN from the underlay to a local port.
    Decap,
    /// A local port's frame to the underlay.
    Encap,
    /// VXLAN to a router here, routed, VXLAN out (IPv4).
    Route4,
    /// The same over IPv6.
    Route6,
}

/// One pipeline case: a pipeline and the batches it processes in turn, again and again.
#[derive(Debug)]
pub struct Case {
    /// `l2/<what>/<len>B/<macs>macs` or `l3/<route4|route6>/64B/<n>routes[/warmbufs]`.
    pub name: String,
    dir: Dir,
    pipeline: Pipeline,
    batches: Vec<Batch>,
    next: usize,
    /// For the `/warmbufs` cases: the packets, copied in turn into the one batch of `batches`
    /// (untimed) before each run, so that its buffers stay in the cache while the destinations
    /// still rotate over all of these.
    sources: Vec<Batch>,
    next_source: usize,
    out: Output,
    pool: BufPool,
}

impl Case {
    fn new(name: String, dir: Dir, pipeline: Pipeline, batches: Vec<Batch>) -> Case {
        Case {
            name,
            dir,
            pipeline,
            batches,
            next: 0,
            sources: Vec::new(),
            next_source: 0,
            out: Output::new(),
            pool: BufPool::new(64, 2048),
        }
    }
}

/// Every L2 case: decap → port and port → encap, for 64 B and 1500 B frames, with 1 remote MAC
/// and with 4096 (lookups spread over the FDB); only those whose name `keep` accepts are built.
pub fn l2_cases(keep: &dyn Fn(&str) -> bool) -> Vec<Case> {
    let mut v = Vec::new();
    for (macs, flows) in [(1usize, 1usize), (4096, 4096)] {
        for len in [64usize, 1500] {
            for dir in [Dir::Decap, Dir::Encap] {
                let what = match dir {
                    Dir::Decap => "decap_to_port",
                    _ => "port_to_encap",
                };
                let name = format!("l2/{what}/{len}B/{macs}macs");
                if !keep(&name) {
                    continue;
                }
                let t = l2_tables(macs);
                let batch = match dir {
                    Dir::Decap => decap_batch(&t, len, flows),
                    _ => encap_batch(len, flows),
                };
                v.push(Case::new(name, dir, Pipeline::new(t), vec![batch]));
            }
        }
    }
    v
}

/// Every L3 case: decap → route → encap between two subnets of a tenant, 64 B, IPv4 and IPv6,
/// with 1, 1000 and 100 000 routes. Destinations rotate over 256 batches (16 384 packets) so
/// that big tables are not served from a warm cache. The 1-route cases run one batch again and
/// again, so their packet buffers stay in the cache; the others rotate over 16 384 buffers,
/// which then come from L3 or memory, as they do from a NIC's receive ring. The `/warmbufs`
/// cases separate the two: the same rotating destinations, copied (untimed) into one batch of
/// buffers before each run, as the 1-route cases have them. Only the cases whose name `keep`
/// accepts are built.
pub fn l3_cases(keep: &dyn Fn(&str) -> bool) -> Vec<Case> {
    let mut v = Vec::new();
    for routes in [1usize, 1000, 100_000] {
        for (dir, what, v6) in [
            (Dir::Route4, "route4", false),
            (Dir::Route6, "route6", true),
        ] {
            let batches = if routes == 1 { 1 } else { 256 };
            let name = format!("l3/{what}/64B/{routes}routes");
            if !keep(&name) {
                continue;
            }
            v.push(Case::new(
                name,
                dir,
                Pipeline::new(l3_tables(routes)),
                route_batches(v6, routes, batches),
            ));
        }
    }
    for routes in [1000usize, 100_000] {
        for (dir, what, v6) in [
            (Dir::Route4, "route4", false),
            (Dir::Route6, "route6", true),
        ] {
            let name = format!("l3/{what}/64B/{routes}routes/warmbufs");
            if !keep(&name) {
                continue;
            }
            let mut c = Case::new(
                name,
                dir,
                Pipeline::new(l3_tables(routes)),
                route_batches(v6, routes, 1),
            );
            c.sources = route_batches(v6, routes, 256);
            v.push(c);
        }
    }
    v
}

/// Every case.
pub fn all_cases() -> Vec<Case> {
    cases_where(&|_| true)
}

/// The cases whose name `keep` accepts, the others not built (the big routing tables take a
/// while, and far longer under valgrind).
pub fn cases_where(keep: &dyn Fn(&str) -> bool) -> Vec<Case> {
    let mut v = l2_cases(keep);
    v.extend(l3_cases(keep));
    v
}

impl Case {
    /// Processes the next batch once and puts it back as it was (the restore moves each
    /// packet's start by 8 bytes, or rewrites the few bytes routing changed).
    #[inline]
    pub fn run_once(&mut self) {
        self.run_once_timed();
    }

    /// [`Case::run_once`], returning the TSC ticks spent in `Pipeline::process` alone: the
    /// restore is the bench's bookkeeping, not the pipeline's work, and is not counted.
    #[inline]
    pub fn run_once_timed(&mut self) -> u64 {
        let n = self.batches.len();
        let batch = &mut self.batches[self.next];
        self.next = (self.next + 1) % n;
        let warm = !self.sources.is_empty();
        if warm {
            let from = &self.sources[self.next_source];
            self.next_source = (self.next_source + 1) % self.sources.len();
            for (p, s) in batch.packets_mut().iter_mut().zip(from.packets()) {
                assert!(
                    p.fill(s.data()),
                    "{}: source packet does not fit",
                    self.name
                );
            }
        }
        let t0 = tsc::rdtsc();
        self.pipeline.process(
            Timestamp(1_000_000_000),
            batch,
            &mut self.pool,
            &mut self.out,
        );
        let ticks = tsc::rdtsc().wrapping_sub(t0);
        std::hint::black_box(&self.out.actions);
        if warm {
            // The next run copies its packets in whole.
            return ticks;
        }
        match self.dir {
            Dir::Decap => restore_decap(batch),
            Dir::Encap => restore_encap(batch),
            Dir::Route4 => restore_routed(batch, false),
            Dir::Route6 => restore_routed(batch, true),
        }
        ticks
    }

    /// How many distinct batches the case rotates over ([`Case::check`] runs each once).
    pub fn batch_count(&self) -> usize {
        self.batches.len().max(self.sources.len())
    }

    /// Runs every batch once and panics unless every packet went where it should, with no drop.
    pub fn check(&mut self) {
        for _ in 0..self.batch_count() {
            self.run_once();
            let ok = self.out.actions.iter().all(|a| match self.dir {
                Dir::Decap => matches!(a, Action::Port(_)),
                _ => matches!(a, Action::Vtep(_)),
            });
            let odd: Vec<_> = self
                .out
                .actions
                .iter()
                .filter(|a| !matches!(a, Action::Vtep(_) | Action::Port(_)))
                .collect();
            assert!(ok, "{}: unexpected actions {odd:?}", self.name);
            assert!(
                self.out.generated.is_empty(),
                "{}: generated packets",
                self.name
            );
        }
        assert_eq!(
            self.pipeline.counters().total_drops(),
            0,
            "{}: drops {:?}",
            self.name,
            self.pipeline.counters()
        );
    }
}
