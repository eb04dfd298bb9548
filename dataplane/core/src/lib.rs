//! weft-dataplane: Weft's packet-processing core.
//!
//! Sans-IO: this crate reads no clock, opens no socket, starts no thread and has no `unsafe`.
//! Callers hand it packets, the current time and configuration; it hands back verdicts. See the
//! crate README for the invariants and `docs/architecture.md` for where it sits.
#![forbid(unsafe_code)]

pub(crate) mod addr_filter;
pub mod config;
pub mod config_delta;
pub mod conntrack;
pub mod counters;
pub mod fdb;
pub mod firewall;
pub mod flow;
pub(crate) mod hashindex;
pub mod ids;
#[cfg(test)]
mod l3_tests;
pub mod lpm;
pub mod nat;
pub mod neighbor;
pub mod offload;
pub mod packet;
pub mod pipeline;
pub mod port_security;
pub mod ratelimit;
pub mod responder;
pub mod router;
pub mod services;
pub mod stateful;
#[cfg(test)]
mod stateful_tests;
pub mod tables;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod wire;

pub use counters::{Counters, DropReason, Event};
pub use ids::{PortIdx, RifIdx, RouterIdx, SegIdx, VtepIdx};
pub use packet::{BATCH_SIZE, Batch, BufPool, HEADROOM, PacketBuf, PacketMeta, Source};
pub use time::Timestamp;
