#![no_main]
//! Node configurations: TOML (hand-written) and JSON (from the controller), parsed and
//! validated. Validation must report problems, never panic.

use libfuzzer_sys::fuzz_target;
use weft_dataplane::config::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = NodeConfig::from_toml(s) {
        let _ = c.validate();
    }
    if let Ok(c) = serde_json::from_str::<NodeConfig>(s) {
        let _ = c.validate();
    }
});
