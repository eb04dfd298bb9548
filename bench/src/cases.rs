//! The pipeline cases every bench tool runs (criterion, TSC cycles, callgrind instructions).

use weft_dataplane::pipeline::{Action, Pipeline};
use weft_dataplane::{BATCH_SIZE, Batch, Timestamp};

use crate::fixtures::{decap_batch, encap_batch, l2_tables, restore_decap, restore_encap};

/// Which way a case goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// VXLAN from the underlay to a local port.
    Decap,
    /// A local port's frame to the underlay.
    Encap,
}

/// One pipeline case: a pipeline and the batch it processes again and again.
#[derive(Debug)]
pub struct Case {
    /// `l2/<what>/<len>B/<macs>macs`.
    pub name: String,
    dir: Dir,
    pipeline: Pipeline,
    batch: Batch,
    actions: Vec<Action>,
}

/// Every L2 case: decap → port and port → encap, for 64 B and 1500 B frames, with 1 remote MAC
/// and with 4096 (lookups spread over the FDB).
pub fn l2_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (macs, flows) in [(1usize, 1usize), (4096, 4096)] {
        for len in [64usize, 1500] {
            for dir in [Dir::Decap, Dir::Encap] {
                let t = l2_tables(macs);
                let (batch, what) = match dir {
                    Dir::Decap => (decap_batch(&t, len, flows), "decap_to_port"),
                    Dir::Encap => (encap_batch(len, flows), "port_to_encap"),
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

impl Case {
    /// Processes the batch once and puts it back as it was (the restore moves each packet's
    /// start by 8 bytes: a few instructions a packet, included in every figure).
    #[inline]
    pub fn run_once(&mut self) {
        self.pipeline
            .process(Timestamp(1_000_000_000), &mut self.batch, &mut self.actions);
        std::hint::black_box(&self.actions);
        match self.dir {
            Dir::Decap => restore_decap(&mut self.batch),
            Dir::Encap => restore_encap(&mut self.batch),
        }
    }

    /// Runs once and panics unless every packet went where it should, with no drop.
    pub fn check(&mut self) {
        self.run_once();
        let ok = self.actions.iter().all(|a| match self.dir {
            Dir::Decap => matches!(a, Action::Port(_)),
            Dir::Encap => matches!(a, Action::Vtep(_)),
        });
        assert!(
            ok,
            "{}: unexpected actions {:?}",
            self.name,
            &self.actions[..4]
        );
        assert_eq!(
            self.pipeline.counters().total_drops(),
            0,
            "{}: drops",
            self.name
        );
    }
}
