#![no_main]
//! Node configurations: TOML (hand-written) and JSON (from the controller), parsed and
//! validated; and the controller's deltas (`config_delta`), applied to a valid configuration
//! and validated. Validation must report problems, never panic; for two valid configurations
//! of one node, applying the delta between them must give the second exactly.

use libfuzzer_sys::fuzz_target;
use weft_dataplane::config::NodeConfig;
use weft_dataplane::config_delta::{self, ConfigDelta};

fn base() -> NodeConfig {
    let mut c = NodeConfig::from_toml(include_str!("../../examples/hv1.toml")).expect("example");
    c.sort_by_key();
    c
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = NodeConfig::from_toml(s) {
        let _ = c.validate();
    }
    if let Ok(mut c) = serde_json::from_str::<NodeConfig>(s) {
        if c.validate().is_ok() {
            c.sort_by_key();
            let b = base();
            if let Some(d) = config_delta::diff(&b, &c) {
                let mut applied = b.clone();
                d.apply(&mut applied)
                    .expect("a delta between two configurations applies to its base");
                applied.revision = c.revision;
                assert_eq!(applied, c, "delta base -> config does not give the config");
            }
        }
    }
    if let Ok(d) = serde_json::from_str::<ConfigDelta>(s) {
        let mut c = base();
        // A delta made against another configuration is refused, possibly after changing
        // part of `c`; either way validation must not panic.
        let _ = d.apply(&mut c);
        let _ = c.validate();
    }
});
