//! Shared helpers of the end-to-end tests: the namespace lab (crate `weft-testlab`) bound to the
//! `weft` binary under test.
#![allow(dead_code, unused_imports)]

pub use weft_testlab::*;

/// The `weft` binary under test.
pub fn weft_bin() -> &'static str {
    env!("CARGO_BIN_EXE_weft")
}

/// A lab running the `weft` binary under test.
pub fn lab() -> Lab {
    Lab::new(weft_bin())
}
