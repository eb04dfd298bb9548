#![no_main]
//! The whole L2 pipeline fed arbitrary packets from every source, with timers and a table swap.
//!
//! Input: a sequence of records `[source: u8][time step: u8][len: u16 le][bytes...]`. Source
//! picks a local port (with or without port security, or one that does not exist), a known or
//! an unknown VTEP, or (0xff) swaps the tables. Invariants checked: the pipeline never panics,
//! returns one action per packet, and every packet sent to a VTEP starts with a VXLAN header of a
//! VNI that VTEP serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weft_dataplane::config::NodeConfig;
use weft_dataplane::pipeline::{Action, Pipeline};
use weft_dataplane::{BATCH_SIZE, Batch, PacketBuf, PortIdx, Source, Timestamp};

const CONFIG: &str = r#"
node = "fuzz"
[underlay]
local_ip = "192.168.0.1"
[learning]
max_per_segment = 16
aging_secs = 2
[[segments]]
vni = 100
[[segments]]
vni = 200
mtu = 600
[[ports]]
name = "a"
interface = "tapa"
vni = 100
mac = "02:00:00:00:00:01"
ips = ["10.0.0.1", "fd00::1"]
allowed_address_pairs = [{ ip = "10.1.0.0/16", mac = "02:00:00:00:01:00" }]
[[ports]]
name = "b"
interface = "tapb"
vni = 200
mac = "02:00:00:00:00:01"
port_security = false
[[remote_vteps]]
ip = "192.168.0.2"
vnis = [100, 200]
[[remote_vteps]]
ip = "192.168.0.3"
vnis = [200]
[[remote_bindings]]
vni = 100
mac = "02:00:00:00:00:02"
ips = ["10.0.0.2", "fd00::2"]
vtep = "192.168.0.2"
"#;

fuzz_target!(|data: &[u8]| {
    let cfg = NodeConfig::from_toml(CONFIG).unwrap();
    let tables = Arc::new(cfg.validate().unwrap());
    let mut p = Pipeline::new(tables.clone());
    let mut now = Timestamp(1_000_000_000);
    let mut rest = data;
    let mut batch = Batch::new();
    let mut actions = Vec::new();
    while rest.len() >= 4 {
        let (src, step) = (rest[0], rest[1]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]))
            .min(rest.len() - 4)
            .min(1800);
        let bytes = &rest[4..4 + len];
        rest = &rest[4 + len..];
        now = now.plus(Duration::from_millis(u64::from(step) * 20));
        let source = match src % 8 {
            0 => Source::Port(PortIdx(0)),
            1 => Source::Port(PortIdx(1)),
            2 => Source::Port(PortIdx(7)),
            3 | 4 => Source::Underlay(SocketAddr::from(([192, 168, 0, 2], 4789))),
            5 => Source::Underlay(SocketAddr::from(([192, 168, 0, 3], 1234))),
            6 => Source::Underlay(SocketAddr::from(([192, 168, 0, 9], 4789))),
            _ => {
                p.swap_tables(tables.clone());
                continue;
            }
        };
        let mut b = PacketBuf::new(2048);
        b.fill(bytes);
        b.meta.source = source;
        let _ = batch.push(b);
        if batch.len() == BATCH_SIZE || rest.len() < 4 {
            p.process(now, &mut batch, &mut actions);
            assert_eq!(actions.len(), batch.len());
            for (pkt, a) in batch.packets().iter().zip(&actions) {
                let vtep = match *a {
                    Action::Vtep(v) => Some(v),
                    Action::Flood { to_vteps: true, .. } => None,
                    _ => continue,
                };
                let d = pkt.data();
                assert!(d.len() >= 8 + 14 && d[0] == 0x08, "VXLAN header in front");
                let vni = u32::from_be_bytes([0, d[4], d[5], d[6]]);
                let seg = tables.segment_by_vni(vni).expect("a VNI of ours");
                if let Some(v) = vtep {
                    assert!(
                        tables.vtep_serves(v, seg),
                        "sent to a VTEP that does not serve the VNI"
                    );
                }
            }
            batch.drain(drop);
        }
        p.handle_timeout(now);
    }
});
