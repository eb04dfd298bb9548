//! Fixtures and measurement helpers for Weft's benches.
//!
//! - [`fixtures`]: node configurations and packet batches for the pipeline benches.
//! - [`tsc`]: cycles per packet from the time-stamp counter (this machine's `perf` has no
//!   hardware counters), as medians over repeated runs.
//! - [`controller`]: the controller in process, Neutron requests and percentiles for the
//!   control-plane benches (`weft-bench-api`, `weft-bench-nodes`).

pub mod cases;
pub mod controller;
pub mod fixtures;

pub mod tsc;
