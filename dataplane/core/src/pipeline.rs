//! The dataplane pipeline: one worker's state and the nodes a batch goes through.
//!
//! ```text
//!  from a local port                               from the underlay (UDP payload)
//!  ─────────────────                               ───────────────────────────────
//!  l2_input        parse Ethernet, access rules     vxlan_input  known VTEP? I flag? VNI served?
//!  port_security   MAC/IP/ARP/ND anti-spoofing      decap        strip the VXLAN header
//!  learn           (ports without port security)    l2_input     parse inner Ethernet, MTU
//!  punt            ARP/NS answered from bindings,   learn        source MAC → VTEP
//!                  DHCPv4, DHCPv6, RS → services    punt         ARP/NS for local routers
//!                  (rate-limited per port)
//!            └──────────────────────┬───────────────────────┘
//!                                   ▼
//!  l2_deliver      dst MAC → local port | remote VTEP (VXLAN encap) | flood | local router ─┐
//!                                   ▲                                                    │
//!  router (router.rs)               └── routed packets, ICMP errors, ARP/NS probes ◄─────┘
//!                  own address? TTL, FIB (LPM), MTU, neighbour (bindings, cache, hold), rewrite
//! ```
//!
//! Each packet of the batch ends in one [`Action`]; packets the pipeline makes (released held
//! packets, IPv4 fragments, periodic router advertisements) come out in [`Output::generated`]
//! with theirs. The I/O layer carries them out. Every drop has a [`DropReason`] counted in
//! [`Pipeline::counters`]. The pipeline reads no clock (`now` is an argument) and does no I/O;
//! it allocates only on slow paths (a new neighbour entry).
//!
//! Encapsulation writes the 8-byte VXLAN header into the buffer's headroom; replies and ICMP
//! errors are built in place in the packet that caused them: frames are not copied.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::RuleDirection;
use crate::conntrack::Conntrack;
use crate::counters::{Counters, DropReason, Event};
use crate::fdb::{Fdb, LearnOutcome};
use crate::firewall::PortFilter;
use crate::ids::{PortIdx, RifIdx, SegIdx, VtepIdx};
use crate::lpm::RouteId;
use crate::nat::Nat;
use crate::neighbor::{Held, NeighborCache, Timer};
use crate::packet::{Batch, BufPool, PacketBuf, Source};
use crate::port_security;
use crate::ratelimit::TokenBucket;
use crate::responder::{arp_reply, nd_reply};
use crate::stateful::Stateful;
use crate::tables::{FdbDest, Route, Tables, fdb_key};
use crate::time::Timestamp;
use crate::wire::ethernet::{EtherType, L2Info, parse_l2};
use crate::wire::{Error as WireError, MacAddr};

/// Length of the VXLAN header the encapsulation prepends.
pub const VXLAN_HEADER_LEN: usize = 8;

/// Control packets a port may have answered by local services, per second (ARP and neighbour
/// solicitations, DHCP, DHCPv6, router solicitations together), and in a burst.
pub const PUNT_RATE: u32 = 100;
/// See [`PUNT_RATE`].
pub const PUNT_BURST: u32 = 50;
/// ICMP errors a router sends per second, and in a burst.
pub const ICMP_RATE: u32 = 100;
/// See [`ICMP_RATE`].
pub const ICMP_BURST: u32 = 100;

/// What to do with a packet after the pipeline.
///
/// Aligned to 8 bytes, so that it and a node's result (`Result<Action, DropReason>`) are one
/// 8-byte value, which the compiler builds and returns in a register. Aligned to 2 as its
/// fields are, the result was returned as a tag and the payload's bytes 1 to 5, read back from
/// a stack slot just written 2 bytes wide: a load that has to wait for the store to complete
/// (a failed store forward), once a packet on every path measured (12 cycles of L2 decap's
/// 38; `docs/benchmarks.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(8))]
pub enum Action {
    /// Drop it (already counted).
    Drop(DropReason),
    /// Nothing to send: a local service used it (a DHCP release, an ARP reply to a router), or
    /// the router kept it (waiting for address resolution). Not a drop.
    Consumed,
    /// Send `data()` (an Ethernet frame) out of a local port.
    Port(PortIdx),
    /// Send `data()` (VXLAN header + frame) to a remote VTEP.
    Vtep(VtepIdx),
    /// Send a copy to every local port of the segment except `exclude`. When `to_vteps`,
    /// `data()` starts with the VXLAN header: local ports get `data()[VXLAN_HEADER_LEN..]` and
    /// every VTEP of the segment's flood list gets `data()`.
    Flood {
        /// The segment.
        seg: SegIdx,
        /// The ingress port (never sent back its own frame).
        exclude: Option<PortIdx>,
        /// Replicate to the segment's remote VTEPs too (head-end replication).
        to_vteps: bool,
    },
}

/// What [`Pipeline::process`] and [`Pipeline::handle_timeout`] hand back.
#[derive(Debug, Default)]
pub struct Output {
    /// One action per packet of the batch, in order.
    pub actions: Vec<Action>,
    /// Packets the pipeline made, with their actions. The caller transmits them and returns
    /// their buffers to the pool.
    pub generated: Vec<(PacketBuf, Action)>,
}

impl Output {
    /// An empty output with room for a batch.
    pub fn new() -> Output {
        Output {
            actions: Vec::with_capacity(crate::BATCH_SIZE),
            generated: Vec::with_capacity(crate::BATCH_SIZE),
        }
    }
}

/// Where a frame entered the L2 delivery step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum From {
    /// A local port.
    Port(PortIdx),
    /// A remote VTEP.
    Underlay,
    /// A router interface on this node (routed packets, replies, errors, probes).
    Router(RifIdx),
}

/// A packet for a router whose FIB is large ([`RouterIf::batch_fib`](crate::tables::RouterIf)),
/// set aside by the L2 step until the rest of its batch is through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferred {
    /// Its place in the batch.
    index: usize,
    /// The router interface it is addressed to.
    rif: RifIdx,
    /// Its Ethernet header.
    l2: L2Info,
    /// Its destination address (an IPv4 one in the low 32 bits), read while the packet was at
    /// hand; meaningful when `family` says so.
    dst: u128,
    /// What `dst` is.
    family: Family,
}

/// What a [`Deferred`] packet's destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Not an IP packet, or too short to have a destination.
    None,
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// A FIB answer looked up ahead, with the batch, for the packet being routed: used when the
/// packet is still at the interface it was looked up for and its destination is still `dst`
/// (the router may have translated it). IPv4 addresses are in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FibHint {
    /// The interface the packet arrived at.
    pub(crate) rif: RifIdx,
    /// Its destination.
    pub(crate) dst: u128,
    /// Whether `dst` is IPv6.
    pub(crate) v6: bool,
    /// The route the FIB gave.
    pub(crate) route: Option<RouteId>,
}

/// Router and service state of one worker.
#[derive(Debug)]
pub(crate) struct L3State {
    pub(crate) neighbors: NeighborCache,
    /// ICMP error budget, per router.
    pub(crate) icmp_limit: Vec<TokenBucket>,
    /// Control-packet budget, per local port.
    pub(crate) punt_limit: Vec<TokenBucket>,
    /// When each segment's next unsolicited router advertisement is due.
    pub(crate) next_ra: Vec<Timestamp>,
    /// Scratch: packets released by a neighbour reply.
    pub(crate) release: Vec<Held>,
    /// Scratch: neighbour timers that fired.
    pub(crate) timers: Vec<Timer>,
}

impl L3State {
    fn new(t: &Tables) -> L3State {
        L3State {
            neighbors: NeighborCache::new(),
            icmp_limit: vec![TokenBucket::new(ICMP_RATE, ICMP_BURST); t.routers.len()],
            punt_limit: vec![TokenBucket::new(PUNT_RATE, PUNT_BURST); t.ports.len()],
            next_ra: vec![Timestamp::ZERO; t.segments.len()],
            release: Vec::new(),
            timers: Vec::new(),
        }
    }
}

/// One worker's dataplane: the shared tables, its own FDB, neighbour cache and counters.
#[derive(Debug)]
pub struct Pipeline {
    tables: Arc<Tables>,
    fdb: Fdb,
    counters: Counters,
    next_aging: Timestamp,
    l3: L3State,
    st: Stateful,
    /// Scratch: the batch's packets set aside for batched route lookups.
    deferred: Vec<Deferred>,
    /// Whether a router here takes batched route lookups
    /// ([`RouterIf::batch_fib`](crate::tables::RouterIf)).
    batch_routing: bool,
}

/// Whether some router of `t` takes batched route lookups.
fn batch_routing(t: &Tables) -> bool {
    t.router_ifs.iter().any(|i| i.batch_fib)
}

impl Pipeline {
    /// A pipeline running on `tables`, with a fixed hash seed (reproducible: tests, benches).
    pub fn new(tables: Arc<Tables>) -> Pipeline {
        Pipeline::with_seed(tables, 0x005e_ed0f_4e47)
    }

    /// A pipeline running on `tables` whose connection-tracking and NAT tables hash with
    /// `seed`. A node facing untrusted traffic passes a random seed, so that nobody can pick
    /// flows that collide in its tables.
    pub fn with_seed(tables: Arc<Tables>, seed: u64) -> Pipeline {
        let fdb = Fdb::new(&tables);
        let l3 = L3State::new(&tables);
        let st = Stateful::new(&tables, seed);
        Pipeline {
            batch_routing: batch_routing(&tables),
            tables,
            fdb,
            counters: Counters::default(),
            next_aging: Timestamp::ZERO,
            l3,
            st,
            deferred: Vec::with_capacity(crate::BATCH_SIZE),
        }
    }

    /// The tables in use.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// This worker's counters, for the I/O layer to count its own drops (ring full, no buffer).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// The FDB (read-only; for `weft stats` and tests).
    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    /// Flows in the connection tracker.
    pub fn conntrack_flows(&self) -> usize {
        self.st.ct.as_ref().map_or(0, |c| c.len())
    }

    /// SNAT sessions.
    pub fn nat_sessions(&self) -> usize {
        self.st.nat.as_ref().map_or(0, |n| n.sessions())
    }

    /// Runs the warming pass alone over `batch`, whatever the size of the tables (tests:
    /// `process` warms only tables of [`WARM_FROM`] entries or more).
    #[cfg(test)]
    pub(crate) fn warm_only(&self, batch: &Batch) {
        warm_flow_state(
            &self.tables,
            self.st.ct.as_ref(),
            self.st.nat.as_ref(),
            batch,
        );
    }

    /// How many packets of the last batch were set aside for batched routing (tests).
    #[cfg(test)]
    pub(crate) fn set_aside_last_batch(&self) -> usize {
        self.deferred.len()
    }

    /// Entries in the routers' neighbour cache.
    pub fn neighbors(&self) -> usize {
        self.l3.neighbors.len()
    }

    /// Switches to new tables between two batches. Learned MACs that still make sense are kept;
    /// counters are kept; the routers' dynamic neighbours are forgotten (interfaces may have been
    /// renumbered) and packets held for them return to `pool`.
    pub fn swap_tables(&mut self, tables: Arc<Tables>, pool: &mut BufPool) {
        self.fdb = self.fdb.rebuild(&self.tables, &tables);
        let mut old = std::mem::replace(&mut self.l3, L3State::new(&tables));
        let mut n = 0u64;
        old.neighbors.clear(|h| {
            n += 1;
            pool.free(h.buf);
        });
        self.counters.drop_n(DropReason::NeighborUnresolved, n);
        let removed = self.st.swap(&tables);
        self.counters.event_n(
            Event::FlowExpired,
            u64::try_from(removed).unwrap_or(u64::MAX),
        );
        self.batch_routing = batch_routing(&tables);
        self.tables = tables;
    }

    /// When [`Pipeline::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Timestamp {
        let mut t = self.next_aging;
        if let Some(n) = self.l3.neighbors.poll_timeout() {
            t = t.min(n);
        }
        for (i, s) in self.tables.segments.iter().enumerate() {
            if s.services.sends_ra && !s.ports.is_empty() {
                t = t.min(self.l3.next_ra[i]);
            }
        }
        if self.st.has_state() {
            t = t.min(self.st.next_expiry);
        }
        t
    }

    /// Runs timers that are due: FDB aging, neighbour probes and failures, unsolicited router
    /// advertisements. Packets they make go to `out.generated`.
    pub fn handle_timeout(&mut self, now: Timestamp, pool: &mut BufPool, out: &mut Output) {
        if now >= self.next_aging {
            let aged = self.fdb.age(now);
            self.counters.event_n(Event::Aged, aged);
            let every = Duration::from_secs(u64::from(self.fdb.aging_interval_secs()));
            self.next_aging = now.plus(every);
        }
        if now >= self.st.next_expiry {
            let n = self.st.expire(now);
            self.counters
                .event_n(Event::FlowExpired, u64::try_from(n).unwrap_or(u64::MAX));
        }
        let mut ctx = Ctx::new(
            &self.tables,
            &mut self.fdb,
            &mut self.counters,
            &mut self.l3,
            &mut self.st,
            &mut self.deferred,
            pool,
            &mut out.generated,
            now,
        );
        ctx.neighbor_timers();
        ctx.periodic_ra();
    }

    /// Runs every packet of `batch` through the pipeline. On return `out.actions[i]` says what to
    /// do with `batch.packets()[i]` (drops are already counted), and `out.generated` holds any
    /// packets the pipeline made. `pool` supplies buffers for those.
    ///
    /// Packets for a router with a large FIB are routed after the rest of the batch, all
    /// together: their route lookups walk the FIB side by side, so that their cache misses
    /// overlap. Each packet's own steps keep their order, and so do the packets such a router
    /// receives from ports and the underlay. What may differ from a packet-by-packet run: the
    /// order of the packets the pipeline makes on the way (ICMP errors, probes) in
    /// `out.generated`; frames another router on this node hands to such a router (and held
    /// packets a neighbour reply releases) reach it during the batch, before the set-aside
    /// packets, so they may be the ones held or answered with the last ICMP token; and, within
    /// the batch, whether a routed or an unrouted packet meets state they share first (the
    /// tracker of a port both are sent to). All are orders two packets arriving together could
    /// have had anyway.
    pub fn process(
        &mut self,
        now: Timestamp,
        batch: &mut Batch,
        pool: &mut BufPool,
        out: &mut Output,
    ) {
        out.actions.clear();
        let ct = self.st.ct.as_ref().filter(|ct| ct.len() >= WARM_FROM);
        let nat = self.st.nat.as_ref().filter(|n| n.sessions() >= WARM_FROM);
        if ct.is_some() || nat.is_some() {
            warm_flow_state(&self.tables, ct, nat, batch);
        }
        let mut ctx = Ctx::new(
            &self.tables,
            &mut self.fdb,
            &mut self.counters,
            &mut self.l3,
            &mut self.st,
            &mut self.deferred,
            pool,
            &mut out.generated,
            now,
        );
        ctx.deferring = self.batch_routing;
        for (i, pkt) in batch.packets_mut().iter_mut().enumerate() {
            ctx.index = i;
            let r = match pkt.meta.source {
                Source::Port(p) => ctx.port_input(p, pkt),
                Source::Underlay(src) => ctx.underlay_input(src, pkt),
                Source::None => Err(DropReason::Malformed),
            };
            let a = ctx.finish(r);
            out.actions.push(a);
        }
        ctx.deferring = false;
        if !ctx.deferred.is_empty() {
            ctx.route_deferred(batch.packets_mut(), &mut out.actions);
        }
    }
}

/// The flows (or NAT sessions) from which a table is warmed before a batch
/// ([`warm_flow_state`]): at about 128 bytes an entry with its index, 16 384 take 2 MiB, a
/// core's L2 cache on the Intel host it was measured on (the AMD host's is 1 MiB; on both,
/// L3 holds far more). A smaller table stays in the caches, where the pass costs as much as
/// the misses it hides or more (measured on the Intel host at 10 000: route + firewall took
/// the same cycles without it, SNAT 8% fewer). The 1M tables of the goals are warmed either
/// way.
const WARM_FROM: usize = 16_384;

// `warm_flow_state` marks a batch's TCP flows in the bits of one `u64`.
const _: () = assert!(crate::BATCH_SIZE <= 64);

/// Loads, for every IP packet of `batch`, the index slots of its flow in the connection
/// tracker and NAT, then the entries those slots point to, before the batch is processed: the
/// cache misses of large tables overlap across the batch instead of being paid one packet at
/// a time. Only a hint: what the packets turn out to be (and which zones they meet) is decided
/// later as usual.
fn warm_flow_state(t: &Tables, ct: Option<&Conntrack>, nat: Option<&Nat>, batch: &Batch) {
    let mut ct_hashes = [0u32; crate::BATCH_SIZE];
    // NAT lookups of packets leaving (by inside endpoints) and arriving (by outside ones).
    let mut nat_out = [0u32; crate::BATCH_SIZE];
    let mut nat_in = [0u32; crate::BATCH_SIZE];
    let (mut n_ct, mut n_out, mut n_in) = (0, 0, 0);
    // Bit i: the flow of `ct_hashes[i]` is TCP.
    let mut ct_tcp = 0u64;
    for pkt in batch.packets() {
        let data = pkt.data();
        let l2 = match pkt.meta.source {
            Source::Port(_) => data,
            // Past the VXLAN header.
            Source::Underlay(_) => data.get(8..).unwrap_or_default(),
            Source::None => continue,
        };
        let (Some(ethertype), Some(l3)) = (l2.get(12..14), l2.get(14..)) else {
            continue;
        };
        if ethertype != [0x08, 0x00] && ethertype != [0x86, 0xdd] {
            continue;
        }
        // TCP and UDP, most of the traffic, by their ports alone; the rest by the full parse.
        // (This shape, the parse kept as an `Option` beside the peek, compiled to the fewest
        // instructions of those measured: returning both from one `match` cost 34 to 51 more.)
        let peeked = crate::flow::peek_tcp_udp(l3);
        let parsed = match peeked {
            Some(_) => None,
            None => match crate::flow::parse(l3) {
                Ok(f) => Some(f),
                Err(_) => continue,
            },
        };
        let Some(tuple) = peeked.or(parsed.as_ref().map(|f| f.tuple)) else {
            continue;
        };
        if let Some(ct) = ct
            && let Some(h) = ct_hashes.get_mut(n_ct)
        {
            *h = ct.hash_of(&tuple);
            if tuple.proto == crate::flow::PROTO_TCP {
                ct_tcp |= 1 << n_ct;
            }
            n_ct += 1;
        }
        if let Some(nat) = nat {
            // NAT looks a packet up as arriving if it enters a router by its gateway, so on
            // an external segment: from the uplink, or from a VM port on that segment (which
            // may also be leaving, by another router's gateway). Other packets only leave;
            // so do those from the underlay, since no VNI with an uplink is reached by VXLAN.
            let (out, inb) = match pkt.meta.source {
                Source::Port(p) => t.ports.get(p.get()).map_or((true, true), |port| {
                    let external = t
                        .segments
                        .get(port.seg.get())
                        .is_some_and(|s| s.uplink.is_some());
                    (!port.uplink, external)
                }),
                _ => (true, false),
            };
            let [h_out, h_in] = match &parsed {
                Some(f) => nat.hashes_of(f, out, inb),
                None => nat.hashes_of_tcp_udp(&tuple, out, inb),
            };
            if let Some(h) = h_out
                && let Some(slot) = nat_out.get_mut(n_out)
            {
                *slot = h;
                n_out += 1;
            }
            if let Some(h) = h_in
                && let Some(slot) = nat_in.get_mut(n_in)
            {
                *slot = h;
                n_in += 1;
            }
        }
    }
    if let Some(ct) = ct {
        ct.warm(&ct_hashes[..n_ct], ct_tcp);
    }
    if let Some(nat) = nat {
        nat.warm(&nat_out[..n_out], &nat_in[..n_in]);
    }
}

/// Split borrows of the pipeline for one batch or timer run, plus per-batch lookup caches
/// (consecutive packets usually come from the same VTEP, VNI and flow).
pub(crate) struct Ctx<'a> {
    pub(crate) t: &'a Tables,
    pub(crate) fdb: &'a mut Fdb,
    pub(crate) c: &'a mut Counters,
    pub(crate) l3: &'a mut L3State,
    pub(crate) st: &'a mut Stateful,
    pub(crate) pool: &'a mut BufPool,
    pub(crate) generated: &'a mut Vec<(PacketBuf, Action)>,
    pub(crate) now: Timestamp,
    /// `now` in whole seconds ([`Timestamp::secs`]), converted once for the batch.
    pub(crate) now_s: u32,
    last_vtep: Option<(IpAddr, VtepIdx)>,
    /// The last VNI accepted: its segment, for the VTEP it came from (checked to serve it).
    last_vni: Option<(u32, VtepIdx, SegIdx)>,
    /// The last (FDB key, place) found already known by `learn`: the same source again needs no
    /// FDB access (its entry was refreshed this batch, and `now` is the same).
    last_learned: Option<(u64, FdbDest)>,
    /// The last two destinations looked up (FDB key, result): a routed packet looks up the
    /// router's MAC on one segment and the next hop's on another.
    last_dst: [Option<(u64, Option<FdbDest>)>; 2],
    /// The last next hop resolved: its MAC and, if it came from a configured binding, where
    /// that MAC lives. The bindings do not change during a batch; an answer of the neighbour
    /// cache is reachable until an expiry later than `now`, which does not change either.
    /// Forgotten whenever the cache changes (a neighbour learned, a miss, the timers).
    pub(crate) last_hop: Option<crate::router::LastHop>,
    /// Whether packets for routers with a large FIB are set aside (while the batch's packets
    /// go through the input steps, not when routing them or running timers).
    deferring: bool,
    /// The place in the batch of the packet being processed.
    index: usize,
    /// The packets set aside (see [`Pipeline::process`]).
    deferred: &'a mut Vec<Deferred>,
}

pub(crate) type NodeResult = Result<Action, DropReason>;

// One register's worth (see [`Action`]).
const _: () = assert!(size_of::<Action>() == 8 && size_of::<NodeResult>() == 8);

pub(crate) fn wire_drop(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::Malformed => DropReason::Malformed,
    }
}

/// What kind of control packet a frame from a VM is, if any (cheap checks on fixed offsets;
/// the services validate fully).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Arp,
    NeighborSolicit,
    RouterSolicit,
    Dhcp4,
    Dhcp6,
}

fn control_kind(l2: &L2Info, frame: &[u8]) -> Option<Control> {
    let l3 = frame.get(l2.l3_offset..)?;
    match l2.ethertype {
        EtherType::Arp => Some(Control::Arp),
        EtherType::Ipv4 => {
            let ihl = usize::from(*l3.first()? & 0x0f) * 4;
            // UDP, not a later fragment, to port 67.
            let frag = u16::from_be_bytes([*l3.get(6)?, *l3.get(7)?]) & 0x1fff;
            (*l3.get(9)? == 17 && frag == 0 && l3.get(ihl + 2..ihl + 4)? == [0, 67])
                .then_some(Control::Dhcp4)
        }
        EtherType::Ipv6 => match *l3.get(6)? {
            58 => match *l3.get(40)? {
                133 => Some(Control::RouterSolicit),
                135 => Some(Control::NeighborSolicit),
                _ => None,
            },
            17 => (l3.get(42..44)? == [0x02, 0x23]).then_some(Control::Dhcp6),
            _ => None,
        },
        _ => None,
    }
}

impl<'a> Ctx<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        t: &'a Tables,
        fdb: &'a mut Fdb,
        c: &'a mut Counters,
        l3: &'a mut L3State,
        st: &'a mut Stateful,
        deferred: &'a mut Vec<Deferred>,
        pool: &'a mut BufPool,
        generated: &'a mut Vec<(PacketBuf, Action)>,
        now: Timestamp,
    ) -> Ctx<'a> {
        deferred.clear();
        Ctx {
            t,
            fdb,
            c,
            l3,
            st,
            pool,
            generated,
            now,
            now_s: now.secs(),
            last_vtep: None,
            last_vni: None,
            last_learned: None,
            last_dst: [None; 2],
            last_hop: None,
            deferring: false,
            index: 0,
            deferred,
        }
    }

    /// Counts a drop and turns a node result into an action.
    pub(crate) fn finish(&mut self, r: NodeResult) -> Action {
        match r {
            Ok(a) => a,
            Err(reason) => {
                self.c.drop(reason);
                Action::Drop(reason)
            }
        }
    }

    /// Queues a packet the pipeline made, with the outcome of its processing.
    pub(crate) fn emit(&mut self, buf: PacketBuf, r: NodeResult) {
        let a = self.finish(r);
        match a {
            Action::Drop(_) | Action::Consumed => self.pool.free(buf),
            _ => self.generated.push((buf, a)),
        }
    }

    // ---- from a local port -------------------------------------------------------------------

    fn port_input(&mut self, idx: PortIdx, pkt: &mut PacketBuf) -> NodeResult {
        let t = self.t;
        let port = t.ports.get(idx.get()).ok_or(DropReason::NoSuchPort)?;
        let seg = port.seg;
        // l2_input
        let l2 = parse_l2(pkt.data()).map_err(wire_drop)?;
        if l2.tags != 0 {
            return Err(DropReason::VlanTagged);
        }
        if l2.src.is_multicast() {
            return Err(DropReason::MulticastSource);
        }
        check_mtu(t, seg, pkt.len(), &l2)?;
        // port_security / learn
        if port.security.is_some() {
            port_security::check(port, &l2, pkt.data())?;
        } else {
            self.learn(seg, l2.src, FdbDest::Port(idx));
        }
        // punt: control packets go to the local services, within the port's budget. An uplink
        // has only address resolution answered (for router gateways and floating IPs); DHCP
        // and router discovery outside are someone else's.
        if let Some(kind) = control_kind(&l2, pkt.data())
            && (!port.uplink || matches!(kind, Control::Arp | Control::NeighborSolicit))
        {
            if !self
                .l3
                .punt_limit
                .get_mut(idx.get())
                .is_some_and(|b| b.allow(self.now))
            {
                return Err(DropReason::PuntRateLimited);
            }
            if let Some(r) = self.punt(kind, idx, seg, &l2, pkt) {
                return r;
            }
        }
        // firewall: the port's security groups, stateful.
        if let Some(f) = &port.filter
            && matches!(l2.ethertype, EtherType::Ipv4 | EtherType::Ipv6)
        {
            self.filter_from_port(idx, f, pkt, l2.l3_offset)?;
        }
        self.l2_forward(seg, pkt, &l2, From::Port(idx))
    }

    /// Hands a control packet from port `idx` to the service that answers it. `None` when no
    /// service here does (the frame then takes its normal L2 way).
    fn punt(
        &mut self,
        kind: Control,
        idx: PortIdx,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> Option<NodeResult> {
        let t = self.t;
        match kind {
            // A VM probing its own address (RFC 5227, DAD) must not hear itself answered.
            Control::Arp => {
                arp_reply(t, seg, l2, pkt, |owner| owner != FdbDest::Port(idx)).map(|_| {
                    self.c.event(Event::ArpReplied);
                    Ok(Action::Port(idx))
                })
            }
            Control::NeighborSolicit => {
                nd_reply(t, seg, l2, pkt, |owner| owner != FdbDest::Port(idx)).map(|_| {
                    self.c.event(Event::NdReplied);
                    Ok(Action::Port(idx))
                })
            }
            Control::RouterSolicit => self.router_solicit(idx, seg, l2, pkt),
            Control::Dhcp4 => self.dhcp4(idx, seg, l2, pkt),
            Control::Dhcp6 => self.dhcp6(idx, seg, l2, pkt),
        }
    }

    pub(crate) fn learn(&mut self, seg: SegIdx, mac: MacAddr, dest: FdbDest) -> LearnOutcome {
        let key = fdb_key(seg, mac);
        if self.last_learned == Some((key, dest)) {
            return LearnOutcome::Known;
        }
        let o = self.fdb.learn(seg, mac, dest, self.now_s);
        match o {
            LearnOutcome::Learned => self.c.event(Event::Learned),
            LearnOutcome::Moved => self.c.event(Event::LearnMoved),
            LearnOutcome::Limited => self.c.event(Event::LearnLimited),
            LearnOutcome::Known | LearnOutcome::Disabled | LearnOutcome::Conflict(_) => {}
        }
        match o {
            LearnOutcome::Known => self.last_learned = Some((key, dest)),
            LearnOutcome::Learned | LearnOutcome::Moved => {
                // The FDB changed: cached lookups may be stale.
                self.last_learned = Some((key, dest));
                self.last_dst = [None; 2];
            }
            _ => {}
        }
        o
    }

    /// Where `mac` lives in `seg`, through a one-entry cache.
    #[inline(always)]
    fn lookup(&mut self, seg: SegIdx, mac: MacAddr) -> Option<FdbDest> {
        let key = fdb_key(seg, mac);
        for (k, d) in self.last_dst.iter().flatten() {
            if *k == key {
                return *d;
            }
        }
        let d = self.fdb.lookup(seg, mac).map(|e| e.dest);
        self.last_dst = [Some((key, d)), self.last_dst[0]];
        d
    }

    // ---- from the underlay -------------------------------------------------------------------

    fn underlay_input(&mut self, src: SocketAddr, pkt: &mut PacketBuf) -> NodeResult {
        let t = self.t;
        // vxlan_input
        let vtep = match self.last_vtep {
            Some((ip, v)) if same_ip(&src, &ip) => v,
            _ => {
                let v = t.vtep_by_ip(src.ip()).ok_or(DropReason::UnknownVtep)?;
                self.last_vtep = Some((src.ip(), v));
                v
            }
        };
        let hdr = pkt
            .data()
            .get(..VXLAN_HEADER_LEN)
            .ok_or(DropReason::BadVxlan)?;
        if hdr[0] & 0x08 == 0 {
            return Err(DropReason::BadVxlan);
        }
        let vni = u32::from_be_bytes([0, hdr[4], hdr[5], hdr[6]]);
        let seg = match self.last_vni {
            Some((n, v, s)) if n == vni && v == vtep => s,
            _ => {
                let s = t.segment_by_vni(vni).ok_or(DropReason::UnknownVni)?;
                if !t.vtep_serves(vtep, s) {
                    return Err(DropReason::VtepNotInSegment);
                }
                self.last_vni = Some((vni, vtep, s));
                s
            }
        };
        // decap
        pkt.advance(VXLAN_HEADER_LEN);
        self.c.event(Event::Decapsulated);
        // l2_input
        let l2 = parse_l2(pkt.data()).map_err(wire_drop)?;
        if l2.src.is_multicast() {
            return Err(DropReason::MulticastSource);
        }
        check_mtu(t, seg, pkt.len(), &l2)?;
        // learn
        if let LearnOutcome::Conflict(_) = self.learn(seg, l2.src, FdbDest::Vtep(vtep)) {
            return Err(DropReason::RemoteMacConflict);
        }
        // punt: address resolution for a router hosted here, asked from another node (ARP, or
        // ICMPv6 that may be a neighbour solicitation).
        let resolution = match l2.ethertype {
            EtherType::Arp => true,
            EtherType::Ipv6 => pkt.data().get(l2.l3_offset + 6) == Some(&58),
            _ => false,
        };
        if resolution
            && !t.router_ifs.is_empty()
            && let Some(r) = self.answer_for_local_router(seg, &l2, pkt)
        {
            return r;
        }
        self.l2_forward(seg, pkt, &l2, From::Underlay)
    }

    /// ARP requests and neighbour solicitations from the underlay for an address of a router
    /// hosted on this node (other nodes normally answer their VMs themselves, from bindings;
    /// this covers nodes that do not know the router, and kernel VTEPs).
    fn answer_for_local_router(
        &mut self,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> Option<NodeResult> {
        let local = |o: FdbDest| matches!(o, FdbDest::Router(_));
        let kind = control_kind(l2, pkt.data())?;
        let b = match kind {
            Control::Arp => arp_reply(self.t, seg, l2, pkt, local)?,
            Control::NeighborSolicit => nd_reply(self.t, seg, l2, pkt, local)?,
            _ => return None,
        };
        self.c.event(if kind == Control::Arp {
            Event::ArpReplied
        } else {
            Event::NdReplied
        });
        let FdbDest::Router(rif) = b.owner else {
            return None;
        };
        // The reply goes from the router to the asker (learned behind its VTEP by now).
        let dst = MacAddr::from_bytes(pkt.data()).unwrap_or(MacAddr::BROADCAST);
        Some(self.l2_deliver(seg, pkt, dst, From::Router(rif), 0))
    }

    // ---- L2 delivery ---------------------------------------------------------------------------

    /// Sends a frame addressed to `dst` on segment `seg`: to a local port, to a remote VTEP
    /// (encapsulated), to a router interface hosted here, or flooded. Frames from the underlay
    /// never go back into it; `depth` bounds router-to-router hand-offs on this node.
    pub(crate) fn l2_deliver(
        &mut self,
        seg: SegIdx,
        pkt: &mut PacketBuf,
        dst: MacAddr,
        from: From,
        depth: u8,
    ) -> NodeResult {
        if dst.is_multicast() {
            return self.flood(seg, pkt, from);
        }
        let dest = self.lookup(seg, dst);
        self.deliver_to(seg, pkt, dest, None, from, depth)
    }

    /// [`Ctx::l2_deliver`] for a frame that came in from a port or the underlay, whose Ethernet
    /// header `l2` the input step has parsed: a router it is addressed to does not parse it again.
    #[inline(always)]
    fn l2_forward(
        &mut self,
        seg: SegIdx,
        pkt: &mut PacketBuf,
        l2: &L2Info,
        from: From,
    ) -> NodeResult {
        if l2.dst.is_multicast() {
            return self.flood(seg, pkt, from);
        }
        let dest = self.lookup(seg, l2.dst);
        self.deliver_to(seg, pkt, dest, Some(l2), from, 0)
    }

    /// The second half of [`Ctx::l2_deliver`]: sends a unicast frame to `dest`, where its
    /// destination MAC lives in `seg` (`None`: unknown, flooded). Callers that know `dest`
    /// without the FDB (a next hop's configured binding: configured FDB entries are never
    /// overridden) come here directly. `parsed` is the frame's Ethernet header, if already read.
    #[inline(always)]
    pub(crate) fn deliver_to(
        &mut self,
        seg: SegIdx,
        pkt: &mut PacketBuf,
        dest: Option<FdbDest>,
        parsed: Option<&L2Info>,
        from: From,
        depth: u8,
    ) -> NodeResult {
        match dest {
            Some(FdbDest::Port(p)) if from == From::Port(p) => Err(DropReason::SamePort),
            Some(FdbDest::Port(p)) => {
                if let Some(f) = self.t.ports.get(p.get()).and_then(|x| x.filter.as_ref()) {
                    self.filter_into_port(p, f, pkt, parsed)?;
                }
                Ok(Action::Port(p))
            }
            Some(FdbDest::Vtep(_)) if from == From::Underlay => Err(DropReason::NotLocal),
            Some(FdbDest::Vtep(v)) => {
                encap(self.t, seg, pkt)?;
                self.c.event(Event::Encapsulated);
                Ok(Action::Vtep(v))
            }
            Some(FdbDest::Router(r)) if from == From::Router(r) || depth >= 2 => {
                Err(DropReason::RoutingLoop)
            }
            Some(FdbDest::Router(r)) => {
                // Only frames that arrived from a port or the underlay (depth 0, header
                // parsed): `route_deferred` routes them at depth 1.
                if self.deferring
                    && depth == 0
                    && let Some(l2) = parsed
                    && self.t.router_ifs.get(r.get()).is_some_and(|i| i.batch_fib)
                    && self.deferred.len() < crate::BATCH_SIZE
                {
                    // Routed after the rest of the batch (see `Pipeline::process`); its action
                    // is set then.
                    self.defer(r, l2, pkt);
                    return Ok(Action::Consumed);
                }
                self.l3_input(r, pkt, parsed, depth + 1)
            }
            None => {
                self.c.event(Event::UnknownUnicast);
                self.flood(seg, pkt, from)
            }
        }
    }

    /// Sets aside the packet being processed, addressed to router interface `rif`, for
    /// [`Ctx::route_deferred`]. Inlined: as a call it cost six register saves and restores for
    /// every packet set aside.
    #[inline(always)]
    fn defer(&mut self, rif: RifIdx, l2: &L2Info, pkt: &PacketBuf) {
        let (l3, data) = (l2.l3_offset, pkt.data());
        let (dst, family) = match l2.ethertype {
            EtherType::Ipv4 => match data.get(l3 + 16..l3 + 20) {
                Some(&[a, b, c, d]) => (u128::from(u32::from_be_bytes([a, b, c, d])), Family::V4),
                _ => (0, Family::None),
            },
            EtherType::Ipv6 => match data.get(l3 + 24..l3 + 40).map(<[u8; 16]>::try_from) {
                Some(Ok(b)) => (u128::from_be_bytes(b), Family::V6),
                _ => (0, Family::None),
            },
            _ => (0, Family::None),
        };
        self.deferred.push(Deferred {
            index: self.index,
            rif,
            l2: *l2,
            dst,
            family,
        });
    }

    /// Routes the packets set aside by [`Ctx::deliver_to`]: looks up their destinations with
    /// the batched FIB lookups, one run of consecutive packets for the same router at a time,
    /// then runs each packet through its router in batch order and sets its action.
    #[inline(never)]
    fn route_deferred(&mut self, pkts: &mut [PacketBuf], actions: &mut [Action]) {
        let t = self.t;
        let list = std::mem::take(self.deferred);
        let mut found = [None; crate::BATCH_SIZE];
        let mut start = 0;
        while let Some(first) = list.get(start) {
            let router = t.router_ifs[first.rif.get()].router;
            let (mut end, mut v4, mut v6) = (start, false, false);
            while let Some(d) = list.get(end)
                && t.router_ifs[d.rif.get()].router == router
            {
                v4 |= d.family == Family::V4;
                v6 |= d.family == Family::V6;
                end += 1;
            }
            let r = &t.routers[router.get()];
            let (run, out) = (&list[start..end], &mut found[start..end]);
            let mut answer = |i: usize, id: Option<RouteId>| {
                if let Some(o) = out.get_mut(i) {
                    *o = id;
                }
                if let Some(route) = r.route_entry(id) {
                    weft_prefetch::read::<Route>(route);
                }
            };
            let dst = |i: usize, family| run.get(i).filter(|d| d.family == family).map(|d| d.dst);
            if v4 {
                // The low 32 bits hold the address.
                #[allow(clippy::cast_possible_truncation)]
                let dst4 = |i| dst(i, Family::V4).map(|a| Ipv4Addr::from(a as u32));
                r.fib4.lookup_each(run.len(), dst4, &mut answer);
            }
            if v6 {
                let dst6 = |i| dst(i, Family::V6).map(Ipv6Addr::from);
                r.fib6.lookup_each(run.len(), dst6, &mut answer);
            }
            start = end;
        }
        for (i, d) in list.iter().enumerate() {
            let route = found.get(i).copied().flatten();
            let Some(pkt) = pkts.get_mut(d.index) else {
                continue;
            };
            let hint = (d.family != Family::None).then_some(FibHint {
                rif: d.rif,
                dst: d.dst,
                v6: d.family == Family::V6,
                route,
            });
            let r = self.l3_input_hinted(d.rif, pkt, &d.l2, hint);
            let a = self.finish(r);
            if let Some(slot) = actions.get_mut(d.index) {
                *slot = a;
            }
        }
        *self.deferred = list;
    }

    /// The egress firewall of port `p` for an IP packet (at `l3`) it sent.
    #[inline(never)]
    fn filter_from_port(
        &mut self,
        p: PortIdx,
        f: &PortFilter,
        pkt: &PacketBuf,
        l3: usize,
    ) -> Result<(), DropReason> {
        self.firewall(p, f, RuleDirection::Egress, pkt, l3)
    }

    /// The ingress firewall of port `p` for a unicast frame about to be sent to it.
    #[inline(never)]
    fn filter_into_port(
        &mut self,
        p: PortIdx,
        f: &PortFilter,
        pkt: &PacketBuf,
        parsed: Option<&L2Info>,
    ) -> Result<(), DropReason> {
        let l2 = match parsed {
            Some(l2) => *l2,
            None => parse_l2(pkt.data()).map_err(wire_drop)?,
        };
        if matches!(l2.ethertype, EtherType::Ipv4 | EtherType::Ipv6) {
            self.firewall(p, f, RuleDirection::Ingress, pkt, l2.l3_offset)
        } else {
            Ok(())
        }
    }

    fn flood(&mut self, seg: SegIdx, pkt: &mut PacketBuf, from: From) -> NodeResult {
        self.c.event(Event::Flooded);
        let to_vteps = from != From::Underlay && !self.t.segments[seg.get()].flood_vteps.is_empty();
        if to_vteps {
            encap(self.t, seg, pkt)?;
        }
        let exclude = match from {
            From::Port(p) => Some(p),
            From::Underlay | From::Router(_) => None,
        };
        Ok(Action::Flood {
            seg,
            exclude,
            to_vteps,
        })
    }
}

/// Whether `a`'s address is `ip`, compared in place (`a.ip() == *ip` builds an `IpAddr` from
/// `a` first: 7 instructions more a packet from the underlay).
#[inline(always)]
fn same_ip(a: &SocketAddr, ip: &IpAddr) -> bool {
    match (a, ip) {
        (SocketAddr::V4(a), IpAddr::V4(ip)) => a.ip() == ip,
        (SocketAddr::V6(a), IpAddr::V6(ip)) => a.ip() == ip,
        _ => false,
    }
}

/// Drops frames whose Ethernet payload exceeds the segment's MTU.
#[inline]
fn check_mtu(t: &Tables, seg: SegIdx, frame_len: usize, l2: &L2Info) -> Result<(), DropReason> {
    let payload = frame_len.saturating_sub(l2.l3_offset);
    let mtu = usize::try_from(t.segments[seg.get()].mtu).unwrap_or(usize::MAX);
    if payload > mtu {
        Err(DropReason::MtuExceeded)
    } else {
        Ok(())
    }
}

/// Writes the segment's VXLAN header into the headroom.
#[inline(always)]
fn encap(t: &Tables, seg: SegIdx, pkt: &mut PacketBuf) -> Result<(), DropReason> {
    let hdr = pkt.prepend(VXLAN_HEADER_LEN).ok_or(DropReason::NoBuffer)?;
    hdr.copy_from_slice(&t.segments[seg.get()].vxlan_header);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::config::NodeConfig;
    use crate::config::tests_support::EXAMPLE;
    use crate::testing::{arp, eth, ipv4_udp, ipv6_icmp, na, ns, vxlan};
    use crate::wire::icmpv6::{Icmpv6Message, Icmpv6Packet};
    use crate::wire::ipv6::Ipv6Packet;

    const A1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
    const A2: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]);
    const PAIR_MAC: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 1, 0]);
    const STRANGER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x99]);
    const VTEP: &str = "192.168.100.2:4789";

    fn pipeline_with(cfg: &NodeConfig) -> Pipeline {
        Pipeline::new(Arc::new(cfg.validate().unwrap()))
    }

    fn pipeline() -> Pipeline {
        pipeline_with(&NodeConfig::from_toml(EXAMPLE).unwrap())
    }

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Runs one packet through the pipeline; returns its action and its bytes afterwards.
    fn run(p: &mut Pipeline, source: Source, bytes: &[u8]) -> (Action, Vec<u8>) {
        run_at(p, Timestamp(10_000_000_000), source, bytes)
    }

    fn run_at(p: &mut Pipeline, now: Timestamp, source: Source, bytes: &[u8]) -> (Action, Vec<u8>) {
        let mut b = PacketBuf::new(2048);
        assert!(b.fill(bytes));
        b.meta.source = source;
        let mut batch = Batch::new();
        batch.push(b).unwrap();
        let mut out = Output::new();
        let mut pool = BufPool::new(8, 2048);
        p.process(now, &mut batch, &mut pool, &mut out);
        let actions = out.actions;
        (actions[0], batch.packets()[0].data().to_vec())
    }

    fn port(i: u16) -> Source {
        Source::Port(PortIdx(i))
    }

    fn underlay() -> Source {
        Source::Underlay(VTEP.parse().unwrap())
    }

    fn seg(p: &Pipeline, vni: u32) -> SegIdx {
        p.tables().segment_by_vni(vni).unwrap()
    }

    fn from_a1_to(dst: MacAddr, dip: &str) -> Vec<u8> {
        eth(
            dst,
            A1,
            0x0800,
            &ipv4_udp(ip4("10.0.0.1"), ip4(dip), 1000, 2000, 20),
        )
    }

    #[test]
    fn unicast_to_a_remote_vm_is_encapsulated_for_its_vtep() {
        let mut p = pipeline();
        let f = from_a1_to(A2, "10.0.0.2");
        let (a, out) = run(&mut p, port(0), &f);
        assert_eq!(a, Action::Vtep(VtepIdx(0)));
        assert_eq!(
            &out[..8],
            &[0x08, 0, 0, 0, 0, 0, 100, 0],
            "VXLAN header for VNI 100"
        );
        assert_eq!(&out[8..], &f[..], "the frame follows unchanged");
        assert_eq!(p.counters().events(Event::Encapsulated), 1);
    }

    #[test]
    fn vxlan_is_delivered_by_vni_to_the_right_tenant() {
        let mut p = pipeline();
        // Both tenants have a VM with MAC A1: the VNI decides.
        let inner = eth(
            A1,
            A2,
            0x0800,
            &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.1"), 1, 2, 10),
        );
        let (a, out) = run(&mut p, underlay(), &vxlan(100, &inner));
        assert_eq!(a, Action::Port(PortIdx(0)));
        assert_eq!(out, inner, "decapsulated");
        let (a, _) = run(&mut p, underlay(), &vxlan(200, &inner));
        assert_eq!(a, Action::Port(PortIdx(1)));
    }

    #[test]
    fn broadcast_floods_to_ports_and_vteps_but_never_back_into_the_underlay() {
        let mut p = pipeline();
        let s = seg(&p, 100);
        let f = eth(
            MacAddr::BROADCAST,
            A1,
            0x0800,
            &ipv4_udp(ip4("10.0.0.1"), ip4("10.0.0.255"), 1, 2, 4),
        );
        let (a, out) = run(&mut p, port(0), &f);
        assert_eq!(
            a,
            Action::Flood {
                seg: s,
                exclude: Some(PortIdx(0)),
                to_vteps: true
            }
        );
        assert_eq!(&out[8..], &f[..], "encapsulated once for every VTEP");
        let f2 = eth(
            MacAddr::BROADCAST,
            A2,
            0x0800,
            &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.255"), 1, 2, 4),
        );
        let (a, out) = run(&mut p, underlay(), &vxlan(100, &f2));

        assert_eq!(
            a,
            Action::Flood {
                seg: s,
                exclude: None,
                to_vteps: false
            }
        );
        assert_eq!(out, f2);
    }

    #[test]
    fn unknown_unicast_floods_and_is_counted() {
        let mut p = pipeline();
        let s = seg(&p, 100);
        let (a, _) = run(&mut p, port(0), &from_a1_to(STRANGER, "10.0.0.9"));
        assert_eq!(
            a,
            Action::Flood {
                seg: s,
                exclude: Some(PortIdx(0)),
                to_vteps: true
            }
        );
        let inner = eth(
            STRANGER,
            A2,
            0x0800,
            &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.9"), 1, 2, 4),
        );
        let (a, _) = run(&mut p, underlay(), &vxlan(100, &inner));
        assert_eq!(
            a,
            Action::Flood {
                seg: s,
                exclude: None,
                to_vteps: false
            }
        );
        assert_eq!(p.counters().events(Event::UnknownUnicast), 2);
    }

    #[test]
    fn arp_for_a_bound_address_is_answered_locally() {
        let mut p = pipeline();
        let req = eth(
            MacAddr::BROADCAST,
            A1,
            0x0806,
            &arp(1, A1, ip4("10.0.0.1"), MacAddr::ZERO, ip4("10.0.0.2")),
        );
        let (a, out) = run(&mut p, port(0), &req);
        assert_eq!(a, Action::Port(PortIdx(0)));
        let want = eth(
            A1,
            A2,
            0x0806,
            &arp(2, A2, ip4("10.0.0.2"), A1, ip4("10.0.0.1")),
        );
        assert_eq!(out, want);
        assert_eq!(p.counters().events(Event::ArpReplied), 1);
    }

    #[test]
    fn arp_probes_of_own_address_and_unknown_targets_are_not_answered() {
        let mut p = pipeline();
        let s = seg(&p, 100);
        let flood = Action::Flood {
            seg: s,
            exclude: Some(PortIdx(0)),
            to_vteps: true,
        };
        // RFC 5227 probe for the VM's own address: must not be answered.
        let probe = eth(
            MacAddr::BROADCAST,
            A1,
            0x0806,
            &arp(1, A1, Ipv4Addr::UNSPECIFIED, MacAddr::ZERO, ip4("10.0.0.1")),
        );
        assert_eq!(run(&mut p, port(0), &probe).0, flood);
        // Gratuitous ARP.
        let garp = eth(
            MacAddr::BROADCAST,
            A1,
            0x0806,
            &arp(1, A1, ip4("10.0.0.1"), MacAddr::ZERO, ip4("10.0.0.1")),
        );
        assert_eq!(run(&mut p, port(0), &garp).0, flood);
        // Nobody has this address in the configuration.
        let unknown = eth(
            MacAddr::BROADCAST,
            A1,
            0x0806,
            &arp(1, A1, ip4("10.0.0.1"), MacAddr::ZERO, ip4("10.0.0.77")),
        );
        assert_eq!(run(&mut p, port(0), &unknown).0, flood);
        assert_eq!(p.counters().events(Event::ArpReplied), 0);
    }

    #[test]
    fn neighbour_solicitation_for_a_bound_address_gets_an_advertisement() {
        let mut p = pipeline();
        let src = A1.link_local();
        let target = ip6("fd00::2");
        let sn = ip6("ff02::1:ff00:2");
        let req = eth(
            MacAddr::ipv6_multicast(sn),
            A1,
            0x86dd,
            &ipv6_icmp(src, sn, 255, &ns(target, Some(A1))),
        );
        let (a, out) = run(&mut p, port(0), &req);
        assert_eq!(a, Action::Port(PortIdx(0)));
        assert_eq!(&out[..6], &A1.octets(), "to the asker");
        assert_eq!(&out[6..12], &A2.octets(), "from the owner");
        let ip = Ipv6Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.hop_limit()),
            (target, src, 255)
        );
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Message::NeighborAdvert);
        assert!(icmp.verify_checksum(&target, &src));
        let m = ip.payload();
        assert_eq!(m[4], 0x60, "solicited and override");
        assert_eq!(&m[8..24], &target.octets());
        assert_eq!(
            &m[24..32],
            &[2, 1, 0xfa, 0x16, 0x3e, 0, 0, 2],
            "target link-layer address"
        );

        // Duplicate address detection: to all nodes, not solicited.
        let dad = eth(
            MacAddr::ipv6_multicast(sn),
            A1,
            0x86dd,
            &ipv6_icmp(Ipv6Addr::UNSPECIFIED, sn, 255, &ns(target, None)),
        );
        let (a, out) = run(&mut p, port(0), &dad);
        assert_eq!(a, Action::Port(PortIdx(0)));
        assert_eq!(&out[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let ip = Ipv6Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(ip.dst_addr(), ip6("ff02::1"));
        assert_eq!(ip.payload()[4], 0x20, "override only");
        assert_eq!(p.counters().events(Event::NdReplied), 2);

        // Hop limit not 255, or a bad checksum: not a valid solicitation, not answered.
        let bad_hop = eth(
            MacAddr::ipv6_multicast(sn),
            A1,
            0x86dd,
            &ipv6_icmp(src, sn, 64, &ns(target, Some(A1))),
        );
        assert!(matches!(
            run(&mut p, port(0), &bad_hop).0,
            Action::Flood { .. }
        ));
        let mut bad_sum = req.clone();
        bad_sum[14 + 40 + 2] ^= 0xff;
        assert!(matches!(
            run(&mut p, port(0), &bad_sum).0,
            Action::Flood { .. }
        ));
        assert_eq!(p.counters().events(Event::NdReplied), 2);
    }

    fn assert_dropped(p: &mut Pipeline, source: Source, bytes: &[u8], reason: DropReason) {
        let before = p.counters().drops(reason);
        let (a, _) = run(p, source, bytes);
        assert_eq!(a, Action::Drop(reason), "{}", reason.description());
        assert_eq!(p.counters().drops(reason), before + 1);
    }

    #[test]
    fn port_security_drops_spoofing_by_rule() {
        let mut p = pipeline();
        let udp = |src: &str| ipv4_udp(ip4(src), ip4("10.0.0.2"), 1, 2, 4);
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, STRANGER, 0x0800, &udp("10.0.0.1")),
            DropReason::SpoofedMac,
        );
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, A1, 0x0800, &udp("10.0.0.7")),
            DropReason::SpoofedIp,
        );
        // An address allowed only with another MAC is spoofing with the port's own MAC.
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, A1, 0x0800, &udp("10.1.0.5")),
            DropReason::SpoofedIp,
        );
        // From an allowed address but with a bad header: dropped for the header.
        let mut long = eth(A2, A1, 0x0800, &udp("10.0.0.1"));
        let total = u16::from_be_bytes([long[16], long[17]]);
        long[16..18].copy_from_slice(&(total + 1).to_be_bytes());
        assert_dropped(&mut p, port(0), &long, DropReason::Truncated);
        let mut short = eth(A2, A1, 0x0800, &udp("10.0.0.1"));
        short[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_dropped(&mut p, port(0), &short, DropReason::Malformed);
        let mut v5 = eth(A2, A1, 0x0800, &udp("10.0.0.1"));
        v5[14] = 0x55;
        assert_dropped(&mut p, port(0), &v5, DropReason::Malformed);
        let bad_arp = arp(1, A1, ip4("10.0.0.2"), MacAddr::ZERO, ip4("10.0.0.9"));
        assert_dropped(
            &mut p,
            port(0),
            &eth(MacAddr::BROADCAST, A1, 0x0806, &bad_arp),
            DropReason::SpoofedArp,
        );
        let bad_sha = arp(1, STRANGER, ip4("10.0.0.1"), MacAddr::ZERO, ip4("10.0.0.9"));
        assert_dropped(
            &mut p,
            port(0),
            &eth(MacAddr::BROADCAST, A1, 0x0806, &bad_sha),
            DropReason::SpoofedArp,
        );
        let v6 = |src: Ipv6Addr, icmp: &[u8]| {
            eth(A2, A1, 0x86dd, &ipv6_icmp(src, ip6("fd00::2"), 255, icmp))
        };
        assert_dropped(
            &mut p,
            port(0),
            &v6(ip6("fd00::66"), &[128, 0, 0, 0, 0, 1, 0, 1]),
            DropReason::SpoofedIp,
        );
        assert_dropped(
            &mut p,
            port(0),
            &v6(ip6("fd00::1"), &na(ip6("fd00::2"))),
            DropReason::SpoofedNd,
        );
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, A1, 0x88cc, &[0; 46]),
            DropReason::EtherTypeNotAllowed,
        );
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, A1, 0x8100, &[0, 5, 8, 0, 0x45, 0, 0, 20]),
            DropReason::VlanTagged,
        );
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, MacAddr::BROADCAST, 0x0800, &udp("10.0.0.1")),
            DropReason::MulticastSource,
        );
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, A1, 0x0800, &[0x45, 0, 0]),
            DropReason::Truncated,
        );
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, A1, 0x0800, &[0x43; 30]),
            DropReason::Malformed,
        );
        assert_dropped(
            &mut p,
            port(0),
            &[0xfa, 0x16, 0x3e, 0, 0, 2, 0xfa],
            DropReason::Truncated,
        );
    }

    #[test]
    fn port_security_allows_what_neutron_allows() {
        let mut p = pipeline();
        let ok = |a: Action| !matches!(a, Action::Drop(_));
        let udp = |src: Ipv4Addr, sport, dport| ipv4_udp(src, ip4("10.0.0.2"), sport, dport, 4);
        // Its address, an allowed pair, and a network allowed with another MAC.
        assert!(ok(run(
            &mut p,
            port(0),
            &eth(A2, A1, 0x0800, &udp(ip4("10.0.0.1"), 1, 2))
        )
        .0));
        assert!(ok(run(
            &mut p,
            port(0),
            &eth(A2, A1, 0x0800, &udp(ip4("10.0.0.100"), 1, 2))
        )
        .0));
        assert!(ok(run(
            &mut p,
            port(0),
            &eth(A2, PAIR_MAC, 0x0800, &udp(ip4("10.1.0.5"), 1, 2))
        )
        .0));
        // DHCP from 0.0.0.0, but nothing else from there.
        assert!(ok(run(
            &mut p,
            port(0),
            &eth(
                MacAddr::BROADCAST,
                A1,
                0x0800,
                &udp(Ipv4Addr::UNSPECIFIED, 68, 67)
            )
        )
        .0));
        assert_dropped(
            &mut p,
            port(0),
            &eth(A2, A1, 0x0800, &udp(Ipv4Addr::UNSPECIFIED, 68, 68)),
            DropReason::SpoofedIp,
        );
        // IPv6 from its link-local address (EUI-64 of its MAC) and DAD from ::.
        let echo = [128, 0, 0, 0, 0, 1, 0, 1];
        assert!(ok(run(
            &mut p,
            port(0),
            &eth(
                A2,
                A1,
                0x86dd,
                &ipv6_icmp(A1.link_local(), ip6("fe80::1"), 64, &echo)
            )
        )
        .0));
        let sn = ip6("ff02::1:ff00:1");
        let dad = ipv6_icmp(Ipv6Addr::UNSPECIFIED, sn, 255, &ns(ip6("fd00::1"), None));
        assert!(ok(run(
            &mut p,
            port(0),
            &eth(MacAddr::ipv6_multicast(sn), A1, 0x86dd, &dad)
        )
        .0));
        // Its own neighbour advertisements.
        let own_na = ipv6_icmp(ip6("fd00::1"), ip6("fd00::2"), 255, &na(ip6("fd00::1")));
        assert!(ok(run(&mut p, port(0), &eth(A2, A1, 0x86dd, &own_na)).0));
        assert_eq!(p.counters().drops(DropReason::SpoofedIp), 1);
        assert_eq!(p.counters().total_drops(), 1);
    }

    #[test]
    fn a_port_without_port_security_sends_anything_and_its_macs_are_learned() {
        let mut p = pipeline();
        let s = seg(&p, 200);
        // Any MAC, any EtherType (A2 is not bound in VNI 200: flooded).
        let f = eth(A2, STRANGER, 0x88cc, &[0; 46]);
        let (a, _) = run(&mut p, port(1), &f);
        assert_eq!(
            a,
            Action::Flood {
                seg: s,
                exclude: Some(PortIdx(1)),
                to_vteps: true
            }
        );
        assert_eq!(
            p.fdb().lookup(s, STRANGER).unwrap().dest,
            FdbDest::Port(PortIdx(1))
        );
        let inner = eth(
            STRANGER,
            A2,
            0x0800,
            &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.50"), 1, 2, 4),
        );
        assert_eq!(
            run(&mut p, underlay(), &vxlan(200, &inner)).0,
            Action::Port(PortIdx(1))
        );
    }

    #[test]
    fn bad_vxlan_is_dropped_by_reason() {
        let mut p = pipeline();
        let inner = eth(
            A1,
            A2,
            0x0800,
            &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.1"), 1, 2, 4),
        );
        let stranger: SocketAddr = "192.168.100.66:4789".parse().unwrap();
        assert_dropped(
            &mut p,
            Source::Underlay(stranger),
            &vxlan(100, &inner),
            DropReason::UnknownVtep,
        );
        assert_dropped(&mut p, underlay(), &[8, 0, 0], DropReason::BadVxlan);
        let mut no_i = vxlan(100, &inner);
        no_i[0] = 0;
        assert_dropped(&mut p, underlay(), &no_i, DropReason::BadVxlan);
        assert_dropped(
            &mut p,
            underlay(),
            &vxlan(999, &inner),
            DropReason::UnknownVni,
        );
        assert_dropped(
            &mut p,
            underlay(),
            &vxlan(100, &inner[..9]),
            DropReason::Truncated,
        );
        // The configuration puts A1 on a local port of VNI 100: a remote claim is refused.
        let claim = eth(
            A2,
            A1,
            0x0800,
            &ipv4_udp(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 4),
        );
        assert_dropped(
            &mut p,
            underlay(),
            &vxlan(100, &claim),
            DropReason::RemoteMacConflict,
        );
        // Unicast for a MAC behind the same (or another) VTEP: no transit through us.
        let transit = eth(
            A2,
            STRANGER,
            0x0800,
            &ipv4_udp(ip4("10.0.0.9"), ip4("10.0.0.2"), 1, 2, 4),
        );
        assert_dropped(
            &mut p,
            underlay(),
            &vxlan(100, &transit),
            DropReason::NotLocal,
        );
        assert_dropped(
            &mut p,
            underlay(),
            &vxlan(100, &eth(A1, MacAddr::BROADCAST, 0x0800, &[0; 30])),
            DropReason::MulticastSource,
        );
    }

    #[test]
    fn vteps_are_accepted_only_for_the_vnis_they_serve() {
        let mut cfg = NodeConfig::from_toml(EXAMPLE).unwrap();
        cfg.remote_vteps[0].vnis.retain(|v| v.get() == 100);
        cfg.remote_bindings.retain(|b| b.vni.get() == 100);
        let mut p = pipeline_with(&cfg);
        let inner = eth(
            A1,
            A2,
            0x0800,
            &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.1"), 1, 2, 4),
        );
        assert_eq!(
            run(&mut p, underlay(), &vxlan(100, &inner)).0,
            Action::Port(PortIdx(0))
        );
        assert_dropped(
            &mut p,
            underlay(),
            &vxlan(200, &inner),
            DropReason::VtepNotInSegment,
        );
    }

    #[test]
    fn frames_over_the_segment_mtu_are_dropped_both_ways() {
        let mut p = pipeline();
        // VNI 100 has MTU 1450: an IPv4 packet of 1450 bytes passes, 1451 does not.
        let fits = eth(
            A2,
            A1,
            0x0800,
            &ipv4_udp(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 1450 - 28),
        );
        assert_eq!(run(&mut p, port(0), &fits).0, Action::Vtep(VtepIdx(0)));
        let big = eth(
            A2,
            A1,
            0x0800,
            &ipv4_udp(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 1451 - 28),
        );
        assert_dropped(&mut p, port(0), &big, DropReason::MtuExceeded);
        let big_in = eth(
            A1,
            A2,
            0x0800,
            &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.1"), 1, 2, 1451 - 28),
        );
        assert_dropped(
            &mut p,
            underlay(),
            &vxlan(100, &big_in),
            DropReason::MtuExceeded,
        );
    }

    #[test]
    fn remote_macs_are_learned_aged_and_kept_across_swaps() {
        let mut p = pipeline();
        let s = seg(&p, 100);
        let t0 = Timestamp(10_000_000_000);
        let inner = eth(
            A1,
            STRANGER,
            0x0800,
            &ipv4_udp(ip4("10.0.0.9"), ip4("10.0.0.1"), 1, 2, 4),
        );
        assert_eq!(
            run_at(&mut p, t0, underlay(), &vxlan(100, &inner)).0,
            Action::Port(PortIdx(0))
        );
        assert_eq!(p.counters().events(Event::Learned), 1);
        // Traffic to it now goes to its VTEP instead of flooding.
        assert_eq!(
            run(&mut p, port(0), &from_a1_to(STRANGER, "10.0.0.9")).0,
            Action::Vtep(VtepIdx(0))
        );

        // A reload that keeps segment and VTEP keeps the entry.
        let mut cfg = NodeConfig::from_toml(EXAMPLE).unwrap();
        cfg.revision = 2;
        p.swap_tables(Arc::new(cfg.validate().unwrap()), &mut BufPool::new(1, 64));
        assert!(p.fdb().lookup(s, STRANGER).is_some());

        // Aging (300 s): still there at +299 s, gone at +300 s.
        p.handle_timeout(
            t0.plus(Duration::from_secs(299)),
            &mut BufPool::new(1, 64),
            &mut Output::new(),
        );
        assert!(p.fdb().lookup(s, STRANGER).is_some());
        p.handle_timeout(
            t0.plus(Duration::from_secs(400)),
            &mut BufPool::new(1, 64),
            &mut Output::new(),
        );
        assert!(p.fdb().lookup(s, STRANGER).is_none());
        assert_eq!(p.counters().events(Event::Aged), 1);
        assert!(matches!(
            run(&mut p, port(0), &from_a1_to(STRANGER, "10.0.0.9")).0,
            Action::Flood { .. }
        ));
    }

    #[test]
    fn learning_stops_at_the_segment_limit() {
        let mut cfg = NodeConfig::from_toml(EXAMPLE).unwrap();
        cfg.learning.max_per_segment = 3;
        let mut p = pipeline_with(&cfg);
        for i in 0..5u8 {
            let src = MacAddr([0x02, 0, 0, 0, 1, i]);
            let inner = eth(
                A1,
                src,
                0x0800,
                &ipv4_udp(ip4("10.0.0.9"), ip4("10.0.0.1"), 1, 2, 4),
            );
            // Frames are still delivered; only learning stops.
            assert_eq!(
                run(&mut p, underlay(), &vxlan(100, &inner)).0,
                Action::Port(PortIdx(0))
            );
        }
        assert_eq!(p.counters().events(Event::Learned), 3);
        assert_eq!(p.counters().events(Event::LearnLimited), 2);
    }

    #[test]
    fn a_batch_mixes_sources_and_outcomes() {
        let mut p = pipeline();
        let mut batch = Batch::new();
        let frames: Vec<(Source, Vec<u8>)> = vec![
            (port(0), from_a1_to(A2, "10.0.0.2")),
            (
                underlay(),
                vxlan(
                    100,
                    &eth(
                        A1,
                        A2,
                        0x0800,
                        &ipv4_udp(ip4("10.0.0.2"), ip4("10.0.0.1"), 1, 2, 4),
                    ),
                ),
            ),
            (port(0), eth(A2, STRANGER, 0x0800, &[0; 30])),
            (Source::Port(PortIdx(99)), from_a1_to(A2, "10.0.0.2")),
            (Source::None, vec![0; 60]),
        ];
        for (s, f) in &frames {
            let mut b = PacketBuf::new(2048);
            b.fill(f);
            b.meta.source = *s;
            batch.push(b).unwrap();
        }
        let mut out = Output::new();
        p.process(
            Timestamp(1),
            &mut batch,
            &mut BufPool::new(8, 2048),
            &mut out,
        );
        assert_eq!(
            out.actions,
            vec![
                Action::Vtep(VtepIdx(0)),
                Action::Port(PortIdx(0)),
                Action::Drop(DropReason::SpoofedMac),
                Action::Drop(DropReason::NoSuchPort),
                Action::Drop(DropReason::Malformed),
            ]
        );
    }
}
