//! Benches of the stateful pipeline (issue 4), cycles per packet from the TSC around
//! `Pipeline::process` alone (the batch is refilled from a pristine copy between runs, untimed),
//! median of 15 samples; 64-byte UDP frames in batches of 64:
//!
//! - `route4_fw/1Mflows`: VXLAN from a remote VM → router → a local VM port whose security
//!   groups are stateful, with 1M established flows in the tracker; the measured packets are
//!   spread over all of them (cold cache lines, as in production).
//! - `snat/1Msessions`: a local VM → router → SNAT → uplink, with 1M SNAT sessions (16 384
//!   source ports × 64 destinations); measured packets spread over them.
//! - `route4_fw_10k`, `snat_10k`: the same with 10 000 flows or sessions.
//! - `fip_dnat`: from the uplink to a floating IP → DNAT → router → a local VM port.
//! - `route4_fw/warmbufs`, `snat/warmbufs`: the 1M cases with their packets copied (untimed)
//!   into one batch of buffers just before each run, as Weft's I/O hands them over (just
//!   written by the kernel). The other cases rotate over 256 batches whose buffers have left
//!   the caches by their turn: `docs/benchmarks.md` says which figure answers which question.
//! - `new_flows`: new connections per second per core: every packet a new flow admitted by the
//!   security groups and committed to the tracker. A fresh pipeline each sample: the first
//!   fill of its tables (which also pays the page faults of their first touch), then
//!   `new_flows_recycled`, the same number of new flows once those have expired (a node that
//!   has run a while, reusing entries and pages).
//!
//! Run: `cargo bench -p weft-bench --bench stateful [-- NAME]` (under `cargo test` every case runs once
//! with a small table and is checked).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use weft_bench::fixtures::{buf, udp_frame, vxlan};
use weft_bench::tsc;
use weft_dataplane::config::NodeConfig;
use weft_dataplane::conntrack::UDP_TIMEOUT;
use weft_dataplane::pipeline::{Action, Output, Pipeline};
use weft_dataplane::tables::Tables;
use weft_dataplane::wire::MacAddr;
use weft_dataplane::{BATCH_SIZE, Batch, BufPool, PortIdx, Source, Timestamp};

const VM_A: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 2]);
const RIF_A: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 1]);
const RIF_X: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 1, 1]);
const INET: MacAddr = MacAddr([0x02, 0x99, 0, 0, 0, 1]);
const NOW: Timestamp = Timestamp(1_000_000_000);

fn config(max_flows: u32) -> String {
    format!(
        r#"
node = "bench"
[underlay]
local_ip = "192.168.100.1"
[limits]
conntrack_max = {max_flows}
conntrack_per_tenant = {max_flows}
nat_max = {max_flows}
nat_per_router = {max_flows}
[[segments]]
vni = 100
mtu = 1450
[[segments]]
vni = 200
mtu = 1450
[[segments]]
vni = 999
uplink = "upl0"
[[ports]]
name = "b"
interface = "tapb"
vni = 200
mac = "02:bb:00:00:00:02"
ips = ["10.1.0.2"]
security_groups = ["sg"]
[[ports]]
name = "a"
interface = "tapa"
vni = 100
mac = "02:aa:00:00:00:03"
ips = ["10.0.0.3"]
[[ports]]
name = "f"
interface = "tapf"
vni = 100
mac = "02:aa:00:00:00:04"
ips = ["10.0.0.4"]
[[security_groups]]
name = "sg"
rules = [
  {{ direction = "egress", ethertype = "IPv4" }},
  {{ direction = "ingress", ethertype = "IPv4", protocol = 17, remote = ["10.0.0.0/24"] }},
]
[[remote_vteps]]
ip = "192.168.100.2"
vnis = [100, 200]
[[remote_bindings]]
vni = 100
mac = "02:aa:00:00:00:02"
ips = ["10.0.0.2"]
vtep = "192.168.100.2"
[[routers]]
name = "r"
routes = [{{ destination = "0.0.0.0/0", nexthop = "203.0.113.1" }}]
gateway = {{ vni = 999 }}
floating_ips = [{{ external = "203.0.113.11", internal = "10.0.0.4" }}]
[[routers.interfaces]]
vni = 100
mac = "02:fe:00:00:00:01"
addresses = ["10.0.0.1/24"]
[[routers.interfaces]]
vni = 200
mac = "02:fe:00:00:00:02"
addresses = ["10.1.0.1/24"]
[[routers.interfaces]]
vni = 999
mac = "02:fe:00:00:01:01"
addresses = ["203.0.113.10/24"]
"#
    )
}

fn tables(max_flows: u32) -> Arc<Tables> {
    Arc::new(
        NodeConfig::from_toml(&config(max_flows))
            .expect("bench config parses")
            .validate()
            .expect("bench config is valid"),
    )
}

const REMOTE: Source = Source::Underlay(SocketAddr::new(
    IpAddr::V4(Ipv4Addr::new(192, 168, 100, 2)),
    4789,
));
const PORT_A: Source = Source::Port(PortIdx(1));
const UPLINK: Source = Source::Port(PortIdx(3));

fn set_ports(f: &mut [u8], sport: u16, dport: u16) {
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
}

/// The frame of flow `i` of a case.
fn frame(case: Case, i: u32) -> (Vec<u8>, Source) {
    let (hi, lo) = (
        u16::try_from(i >> 6).unwrap_or(0),
        u16::try_from(i & 63).unwrap_or(0),
    );
    match case {
        Case::RouteFw => {
            let mut f = udp_frame(
                RIF_A,
                VM_A,
                Ipv4Addr::new(10, 0, 0, 2),
                Ipv4Addr::new(10, 1, 0, 2),
                64,
            );
            set_ports(&mut f, 1024u16.wrapping_add(hi), 1000 + lo);
            (vxlan(100, &f), REMOTE)
        }
        Case::Snat => {
            let dst = Ipv4Addr::new(198, 51, 100, u8::try_from(lo).unwrap_or(0));
            let mut f = udp_frame(
                RIF_A,
                MacAddr([0x02, 0xaa, 0, 0, 0, 3]),
                Ipv4Addr::new(10, 0, 0, 3),
                dst,
                64,
            );
            set_ports(&mut f, 1024u16.wrapping_add(hi), 53);
            (f, PORT_A)
        }
        Case::Fip => {
            let mut f = udp_frame(
                RIF_X,
                INET,
                Ipv4Addr::new(198, 51, 100, 7),
                Ipv4Addr::new(203, 0, 113, 11),
                64,
            );
            set_ports(&mut f, 1024u16.wrapping_add(hi), 53 + lo);
            (f, UPLINK)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    RouteFw,
    Snat,
    Fip,
}

/// Runs `frames` through `p` in batches, untimed (to fill the tables).
fn prefill(p: &mut Pipeline, pool: &mut BufPool, frames: impl Iterator<Item = (Vec<u8>, Source)>) {
    let mut out = Output::new();
    let mut batch = Batch::new();
    for (f, s) in frames {
        batch.push(buf(&f, s)).expect("room");
        if batch.len() == BATCH_SIZE {
            p.process(NOW, &mut batch, pool, &mut out);
            batch = Batch::new();
        }
    }
    if !batch.is_empty() {
        p.process(NOW, &mut batch, pool, &mut out);
    }
}

/// Answers the router's ARP for the internet gateway, as the uplink would.
fn resolve_gateway(p: &mut Pipeline, pool: &mut BufPool) {
    let mut f = vec![];
    f.extend_from_slice(&RIF_X.octets());
    f.extend_from_slice(&INET.octets());
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&INET.octets());
    f.extend_from_slice(&[203, 0, 113, 1]);
    f.extend_from_slice(&RIF_X.octets());
    f.extend_from_slice(&[203, 0, 113, 10]);
    prefill(p, pool, std::iter::once((f, UPLINK)));
}

struct Run {
    p: Pipeline,
    pool: BufPool,
    out: Output,
    pristine: Vec<Vec<(Vec<u8>, Source)>>,
    /// One batch per pristine batch (cold buffers, rotated), or with `warm_bufs` a single
    /// batch that each pristine batch is copied into, untimed, just before its run.
    batches: Vec<Batch>,
    warm_bufs: bool,
    next: usize,
}

impl Run {
    fn new(case: Case, flows: u32, measured_batches: usize, warm_bufs: bool) -> Run {
        let mut p = Pipeline::new(tables(flows.max(1024)));
        let mut pool = BufPool::new(256, 2048);
        if case == Case::Snat {
            // The first packet out is held while the router resolves the next hop.
            prefill(&mut p, &mut pool, std::iter::once(frame(case, 0)));
            resolve_gateway(&mut p, &mut pool);
        }
        if case != Case::Fip {
            prefill(&mut p, &mut pool, (0..flows).map(|i| frame(case, i)));
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let pristine: Vec<Vec<(Vec<u8>, Source)>> = (0..measured_batches)
            .map(|_| {
                (0..BATCH_SIZE)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let i = u32::try_from(x % u64::from(flows.max(1))).unwrap_or(0);
                        frame(case, i)
                    })
                    .collect()
            })
            .collect();
        let batches = pristine
            .iter()
            .take(if warm_bufs { 1 } else { pristine.len() })
            .map(|b| {
                let mut batch = Batch::new();
                for (f, s) in b {
                    batch.push(buf(f, *s)).expect("room");
                }
                batch
            })
            .collect();
        Run {
            p,
            pool,
            out: Output::new(),
            pristine,
            batches,
            warm_bufs,
            next: 0,
        }
    }

    fn once(&mut self) -> u64 {
        let i = self.next;
        self.next = (self.next + 1) % self.pristine.len();
        if self.warm_bufs {
            self.refill(0, i);
            let t = self.timed(0);
            std::hint::black_box(&self.out.actions);
            return t;
        }
        let t = self.timed(i);
        std::hint::black_box(&self.out.actions);
        self.refill(i, i);
        t
    }

    /// Copies pristine batch `from` into batch `into`, untimed.
    fn refill(&mut self, into: usize, from: usize) {
        for (pkt, (f, s)) in self.batches[into]
            .packets_mut()
            .iter_mut()
            .zip(&self.pristine[from])
        {
            assert!(pkt.fill(f));
            pkt.meta.source = *s;
        }
    }

    /// `Pipeline::process` on batch `i`, in TSC ticks. Not inlined, so that callgrind can count
    /// inside it alone (`--toggle-collect='*Run::timed'`), without the set-up's batches.
    #[inline(never)]
    fn timed(&mut self, i: usize) -> u64 {
        let t0 = tsc::rdtsc();
        self.p
            .process(NOW, &mut self.batches[i], &mut self.pool, &mut self.out);
        tsc::rdtsc().wrapping_sub(t0)
    }

    fn check(&mut self, want: Action) {
        for _ in 0..self.pristine.len() {
            self.once();
            assert!(
                self.out.actions.iter().all(|a| *a == want),
                "unexpected actions {:?}",
                self.out.actions
            );
        }
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench stateful -- snat` runs the cases whose name contains `snat`.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let (flows, batches, samples, calls) = if bench {
        (1u32 << 20, 256, 15, 2000)
    } else {
        (4096, 4, 1, 4)
    };
    let hz = tsc::ticks_per_sec(Duration::from_millis(200));
    println!(
        "stateful pipeline, cycles per packet (TSC at {:.0} MHz, median of {samples}):",
        hz / 1e6
    );
    // The 10k cases are VPP's published table size (the caches hold most of it): set against the
    // 1M cases they show how much of the cost is memory.
    let small = flows.min(10_000);
    let (fw, snat) = (Action::Port(PortIdx(0)), Action::Port(PortIdx(3)));
    for (name, case, n, want, warm_bufs) in [
        ("route4_fw", Case::RouteFw, flows, fw, false),
        ("route4_fw_10k", Case::RouteFw, small, fw, false),
        ("snat", Case::Snat, flows, snat, false),
        ("snat_10k", Case::Snat, small, snat, false),
        (
            "fip_dnat",
            Case::Fip,
            flows,
            Action::Port(PortIdx(2)),
            false,
        ),
        ("route4_fw/warmbufs", Case::RouteFw, flows, fw, true),
        ("snat/warmbufs", Case::Snat, flows, snat, true),
    ] {
        if !name.contains(&filter) {
            continue;
        }
        let mut r = Run::new(case, n, batches, warm_bufs);
        r.check(want);
        let t = tsc::median_measured_ticks_per_packet(samples, calls, BATCH_SIZE, || r.once());
        let state = match case {
            Case::RouteFw => format!("{} flows", r.p.conntrack_flows()),
            Case::Snat => format!("{} sessions", r.p.nat_sessions()),
            Case::Fip => "stateless".to_owned(),
        };
        assert_eq!(
            r.p.counters().total_drops(),
            0,
            "{name}: {:?}",
            r.p.counters()
        );
        println!(
            "  {:<24} {:>7.1} cycles/pkt {:>7.2} Mpps/core  ({state})",
            match name.split_once('/') {
                Some((case, variant)) => format!("{case}/64B/{variant}"),
                None => format!("{name}/64B"),
            },
            t,
            hz / t / 1e6
        );
    }
    // New flows per second: every packet a new flow through the security groups.
    if !"new_flows".contains(&filter) && !"new_flows_recycled".contains(&filter) {
        return;
    }
    let (mut first, mut recycled): (Vec<f64>, Vec<f64>) = (0..samples)
        .map(|_| {
            let mut p = Pipeline::new(tables(flows.max(1024)));
            let mut pool = BufPool::new(256, 2048);
            let a = new_flows_per_sec(&mut p, &mut pool, NOW, flows, hz);
            let later = expire_all(&mut p, &mut pool);
            (a, new_flows_per_sec(&mut p, &mut pool, later, flows, hz))
        })
        .unzip();
    for (rates, name, what) in [
        (&mut first, "new_flows/64B", "first fill of fresh tables"),
        (
            &mut recycled,
            "new_flows_recycled/64B",
            "after those flows expired",
        ),
    ] {
        rates.sort_by(f64::total_cmp);
        println!(
            "  {name:<24} {:>7.2} M new flows/s/core (routed, classified, committed; {what}; median of {samples})",
            rates[rates.len() / 2] / 1e6
        );
    }
}

/// Runs `flows` packets through `p` at `now`, each a new flow, and returns the flows committed
/// per second of `Pipeline::process`.
fn new_flows_per_sec(
    p: &mut Pipeline,
    pool: &mut BufPool,
    now: Timestamp,
    flows: u32,
    hz: f64,
) -> f64 {
    let frames: Vec<Batch> = (0..flows / 64)
        .map(|b| {
            let mut batch = Batch::new();
            for j in 0..64 {
                let (f, s) = frame(Case::RouteFw, b * 64 + j);
                batch.push(buf(&f, s)).expect("room");
            }
            batch
        })
        .collect();
    let mut out = Output::new();
    let mut ticks = 0u64;
    for mut b in frames {
        let t0 = tsc::rdtsc();
        p.process(now, &mut b, pool, &mut out);
        ticks += tsc::rdtsc().wrapping_sub(t0);
    }
    assert_eq!(
        p.conntrack_flows(),
        flows as usize,
        "every packet a new flow"
    );
    #[allow(clippy::cast_precision_loss)]
    let rate = f64::from(flows) / (ticks as f64 / hz);
    rate
}

/// Runs the pipeline's timers past the UDP timeout until every tracked flow has expired (the
/// sweeps are bounded per run); returns the time reached. A node that has run a while reuses
/// the entries and pages of flows that ended: what the second fill measures.
fn expire_all(p: &mut Pipeline, pool: &mut BufPool) -> Timestamp {
    let mut now = NOW.plus(Duration::from_secs(u64::from(UDP_TIMEOUT.0) + 1));
    let mut out = Output::new();
    for _ in 0..100_000 {
        if p.conntrack_flows() == 0 {
            return now;
        }
        now = now.max(p.poll_timeout());
        p.handle_timeout(now, pool, &mut out);
    }
    panic!(
        "{} flows left after 100 000 timer runs",
        p.conntrack_flows()
    );
}
