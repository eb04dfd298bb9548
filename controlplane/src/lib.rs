//! Weft's control plane: a Neutron v2.0-compatible API with IPAM, a durable store (SQLite or
//! PostgreSQL) and authentication. See `README.md` beside this crate and
//! `docs/controlplane.md`.
//!
//! ```text
//!  openstack CLI / SDK / Terraform
//!        │ HTTP (Neutron v2.0)
//!  ┌─────▼──────────────────────────────────────────────┐
//!  │ request_id ─► api (routes, filters, errors) ─► auth │
//!  │                 │ model (types, validation), ipam   │
//!  │                 ▼                                   │
//!  │               store: one transaction per request,   │
//!  │               revisions log, watch(latest revision) │──► issue 6: compiler, agents' streams
//!  └────────────────────────────────────────────────────┘
//! ```
//!
//! Modules: [`model`] (resources and request validation), [`store`], [`ipam`], [`auth`],
//! [`api`], [`request_id`], [`openapi`], [`server`], [`client`] (for the `weft ipam` CLI).
//! Tokio is used here and nowhere in the dataplane.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod client;
pub mod compile;
pub mod ipam;
pub mod model;
pub mod nodeapi;
pub mod openapi;
pub mod pki;
pub mod request_id;
pub mod server;
pub mod store;

pub use server::{ControllerConfig, NodeApiConfig, Server, ServerError};
pub use store::{Snapshot, Store};
