//! Connection tracking for the security groups: which flows a port has let through, so their
//! later packets and replies pass without classification.
//!
//! ```text
//!  slots: [u64; 2^k]  open addressing, linear probing ──► entries: Vec<Entry> (free: linked)
//!         seeded hash(proto, endpoints in canonical order)       key (with zone), state,
//!                                                                expiry; TCP windows apart
//! ```
//!
//! - **Key.** A flow is (zone, protocol, two endpoints), the endpoints in a canonical order
//!   (the lower address and port first), so one lookup finds a flow from either direction; the
//!   entry remembers which endpoint opened it ([`Dir`]). IPv4 addresses are stored as
//!   IPv4-mapped IPv6 addresses. A zone is a VM port: the same 5-tuple in two zones is two
//!   flows (a flow between two VMs is tracked at both ports).
//! - **Table.** Entries live in a vector reserved up front for the node limit (memory is only
//!   touched as it fills); free entries are a list linked through the entries themselves. An
//!   index of `u64` slots (32 bits of hash and an entry number, the crate's `hashindex`
//!   module), at most half full, points into it, so probes compare hashes without reading
//!   entries. An entry is one cache line of 64 bytes (key, state, expiry: all a UDP, ICMP or
//!   other packet reads), and a TCP flow's sequence windows 32 bytes in a table beside it
//!   (zeroed memory only TCP flows write). With its share of the index (16 to 32 bytes), at
//!   most 128 bytes per flow ([`Conntrack::heap_bytes`]), however many flows come and go.
//!   Lookups hash once (seeded, zone left out) and allocate nothing; removal shifts the probe
//!   chain back (no tombstones).
//! - **Warming.** The pipeline hashes a whole batch's flows first and loads their index slots,
//!   then their entries ([`Conntrack::warm`]), so with a table far larger than the caches the
//!   misses of 64 packets overlap rather than add up.
//! - **Limits.** Per node and per tenant; a new flow over a limit is refused and nothing is
//!   evicted, so a SYN flood cannot push established flows out.
//! - **TCP** follows Linux's `nf_conntrack_proto_tcp`: states SYN_SENT, SYN_RECV, ESTABLISHED,
//!   FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE with Linux's default timeouts, and the
//!   sequence-window checks of `tcp_in_window` per direction (data must lie in what the other
//!   side has advertised, acknowledgments in what was sent; window scaling when both SYNs carry
//!   the option). A flow seen first in the middle (after a restart) is picked up as ESTABLISHED
//!   with windows learned from its first packets (Linux's `nf_conntrack_tcp_loose`). A RST
//!   outside the window is refused; in the window it closes the flow. A SYN reopens a flow in
//!   TIME_WAIT or CLOSE.
//! - **UDP** 30 s until an answer, then 120 s. **ICMP echo** 30 s; replies only match a request.
//!   Other protocols: addresses only, 600 s. **ICMP errors** are *related* to the flow their
//!   quote belongs to, untracked ones refused. Later fragments carry no ports: refused.
//! - **Expiry** is lazy (a lookup that finds an expired entry treats it as absent) and swept
//!   in bounded steps ([`Conntrack::expire`]).

use std::net::{IpAddr, Ipv4Addr};

use rustc_hash::FxHashMap;

use crate::counters::DropReason;
use crate::flow::{Flow, Transport, Tuple, tcp_flags};
use crate::hashindex::{Index, fold_mul, ix, lo32, splitmix};
use crate::time::Timestamp;

/// A conntrack zone: one VM port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Zone(pub u32);

/// A tenant, for the per-tenant limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantId(pub u32);

/// A tracked flow, valid until it is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowId(u32);

/// A packet's direction in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the endpoint that opened the flow.
    Original,
    /// From the other endpoint.
    Reply,
}

/// Table limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtLimits {
    /// Flows on the node.
    pub max_flows: u32,
    /// Flows of one tenant.
    pub max_per_tenant: u32,
}

/// What a packet is to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A tracked flow; its state now includes this packet. `generation` is the rule generation it
    /// was classified under.
    Established {
        /// The flow.
        id: FlowId,
        /// The packet's direction.
        dir: Dir,
        /// The rule generation stored with it.
        generation: u64,
    },
    /// An ICMP error about a tracked flow.
    Related {
        /// The flow.
        id: FlowId,
    },
    /// Not tracked: classify it, and [`Conntrack::commit`] it if allowed.
    New,
    /// Tracked, but not acceptable (or not trackable): drop it.
    Invalid(DropReason),
}

/// Why [`Conntrack::commit`] refused a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitError {
    /// The node's table is full.
    NodeFull,
    /// The tenant's share is full.
    TenantFull,
    /// The packet cannot start a flow (a TCP RST, an echo reply...).
    Invalid(DropReason),
}

/// TCP states (Linux's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Tcp {
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
}

impl Tcp {
    fn timeout(self) -> u32 {
        match self {
            Tcp::SynSent => 120,
            Tcp::SynRecv => 60,
            Tcp::Established => 5 * 24 * 3600,
            Tcp::FinWait => 120,
            Tcp::CloseWait => 60,
            Tcp::LastAck => 30,
            Tcp::TimeWait => 120,
            Tcp::Close => 10,
        }
    }
}

/// Seconds a UDP flow lives without an answer, and after one.
pub const UDP_TIMEOUT: (u32, u32) = (30, 120);
/// Seconds an echo flow lives.
pub const ICMP_TIMEOUT: u32 = 30;
/// Seconds a flow of another protocol lives.
pub const GENERIC_TIMEOUT: u32 = 600;
/// Seconds a TCP flow picked up mid-stream lives until the other side is seen.
pub const TCP_UNACKNOWLEDGED_TIMEOUT: u32 = 300;

/// One direction's sequence space (Linux's `ip_ct_tcp_state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    /// Highest sequence number sent + 1.
    end: u32,
    /// Highest sequence number the other side allowed (ack + window).
    maxend: u32,
    /// Largest window advertised (scaled); 0: nothing seen yet.
    maxwin: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Key {
    /// Lower endpoint's address (IPv4-mapped for IPv4), then the higher one's.
    a: [u64; 2],
    b: [u64; 2],
    pa: u16,
    pb: u16,
    proto: u8,
    zone: u32,
}

/// What every packet of a flow reads and updates: its key's fields, state and expiry, in one
/// cache line (64 bytes, aligned). A TCP flow's sequence spaces, which only TCP packets read,
/// are apart in a [`WindowTable`], so a UDP, ICMP or other lookup touches one line of entries.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    /// [`Key::a`], [`Key::b`].
    a: [u64; 2],
    b: [u64; 2],
    generation: u64,
    zone: u32,
    /// Expiry, whole seconds of [`Timestamp`].
    expires: u32,
    tenant: u32,
    pa: u16,
    pb: u16,
    proto: u8,
    /// TCP state ([`Tcp`] as u8).
    tcp: u8,
    /// [`ORIG_IS_A`], [`REPLIED`], [`LIVE`], [`WSCALE_OK`].
    flags: u8,
    /// Window scale shift per direction (original, reply).
    scale: [u8; 2],
}

impl Entry {
    fn key(&self) -> Key {
        Key {
            a: self.a,
            b: self.b,
            pa: self.pa,
            pb: self.pb,
            proto: self.proto,
            zone: self.zone,
        }
    }

    fn has_key(&self, k: &Key) -> bool {
        self.a == k.a
            && self.b == k.b
            && self.pa == k.pa
            && self.pb == k.pb
            && self.proto == k.proto
            && self.zone == k.zone
    }
}

/// A TCP flow's sequence spaces (original, reply), kept in a [`WindowTable`] by entry number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Windows([Seen; 2]);

/// The TCP flows' [`Windows`] by entry number, 32 bytes each, in memory the allocator hands
/// out zeroed and the OS fills on first touch: only TCP flows write here, so a UDP or ICMP
/// flow costs no store (nor page) in it. Stored as 16-byte units, one [`Seen`] each, from a
/// 32-byte boundary (`skew` units in), so a flow's windows never straddle two cache lines.
#[derive(Debug)]
struct WindowTable {
    units: Vec<[u32; 4]>,
    skew: usize,
}

impl WindowTable {
    fn new(max: usize) -> WindowTable {
        // `vec!` of zeros allocates zeroed memory (calloc), which for a large table is fresh
        // pages, not written until used.
        let units = vec![[0u32; 4]; max.saturating_mul(2).saturating_add(1)];
        // Before any unit is written (see `weft_prefetch::huge_pages`).
        weft_prefetch::huge_pages(&units);
        // The allocator aligns to 16 bytes (calloc does on the targets we run on): one unit
        // in, if need be, is a 32-byte boundary. Only speed depends on it.
        let skew = usize::from(!units.as_ptr().addr().is_multiple_of(32));
        WindowTable { units, skew }
    }

    fn bytes(&self) -> usize {
        self.units.capacity() * size_of::<[u32; 4]>()
    }

    /// The windows of entry `i` (zero if never set).
    fn get(&self, i: usize) -> Windows {
        let at = |u: usize| {
            let [end, maxend, maxwin, _] = self.units.get(u).copied().unwrap_or_default();
            Seen {
                end,
                maxend,
                maxwin,
            }
        };
        let u = self.skew + 2 * i;
        Windows([at(u), at(u + 1)])
    }

    fn set(&mut self, i: usize, w: Windows) {
        let u = self.skew + 2 * i;
        for (k, s) in w.0.iter().enumerate() {
            if let Some(unit) = self.units.get_mut(u + k) {
                *unit = [s.end, s.maxend, s.maxwin, 0];
            }
        }
    }

    fn prefetch(&self, i: usize) {
        if let Some(u) = self.units.get(self.skew + 2 * i) {
            weft_prefetch::read(u);
        }
    }
}

/// The original direction is from endpoint `a`.
const ORIG_IS_A: u8 = 1;
/// A reply was seen.
const REPLIED: u8 = 2;
/// The entry holds a flow (not on the free list).
const LIVE: u8 = 4;
/// The end of the free list.
const NO_FREE: u32 = u32::MAX;
/// The original direction's SYN carried the window-scale option.
const WSCALE_OK: u8 = 8;

/// The addresses of `t` ([`addr`]). An IPv4 tuple's are read 4 bytes wide: with the IPv6
/// case in the same function, LLVM read an IPv4 address with the load of an IPv6 one's first
/// 8 bytes, wider than the parse had just written it, and the load waited for the store to
/// reach the cache (a failed store forward, for each address of every tracked packet).
#[inline(always)]
fn addrs(t: &Tuple) -> ([u64; 2], [u64; 2]) {
    match (&t.src, &t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (addr_v4(*s), addr_v4(*d)),
        _ => addrs_any(t.src, t.dst),
    }
}

#[inline(never)]
fn addrs_any(src: IpAddr, dst: IpAddr) -> ([u64; 2], [u64; 2]) {
    (addr(src), addr(dst))
}

/// [`addr`] of an IPv4 address: its IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
#[inline(always)]
fn addr_v4(a: Ipv4Addr) -> [u64; 2] {
    [0, 0xffff_0000_0000 | u64::from(a.to_bits())]
}

/// An address as the tracker keys it: IPv6, in two `u64`s, an IPv4 address mapped into it.
fn addr(a: IpAddr) -> [u64; 2] {
    match a {
        IpAddr::V4(a) => addr_v4(a),
        IpAddr::V6(a) => {
            let v = a.to_bits();
            let hi = u64::try_from(v >> 64).unwrap_or(0);
            let lo = u64::try_from(v & u128::from(u64::MAX)).unwrap_or(0);
            [hi, lo]
        }
    }
}

fn unaddr(a: [u64; 2]) -> IpAddr {
    let v = (u128::from(a[0]) << 64) | u128::from(a[1]);
    let v6 = std::net::Ipv6Addr::from_bits(v);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The canonical key of `t` in `zone`, and whether `t`'s source is endpoint `a`.
fn key_of(zone: Zone, t: &Tuple) -> (Key, bool) {
    let (a_src, a_dst) = addrs(t);
    let (s, d) = ((a_src, t.sport), (a_dst, t.dport));
    let src_first = s <= d;
    let (x, y) = if src_first { (s, d) } else { (d, s) };
    (
        Key {
            a: x.0,
            b: y.0,
            pa: x.1,
            pb: y.1,
            proto: t.proto,
            zone: zone.0,
        },
        src_first,
    )
}

/// The hash of a key's protocol and endpoints, seeded. The zone is left out, so the hash of a
/// packet's flow is known before the pipeline knows which port it goes to (see
/// [`Conntrack::warm`]); a 5-tuple in two zones shares a probe run.
fn key_hash(seeds: &[u64; 2], k: &Key) -> u32 {
    flow_hash(seeds, (k.a, k.pa), (k.b, k.pb), k.proto)
}

/// The hash of a flow's protocol and its two endpoints, in either order: the endpoints'
/// hashes are added, so a packet's tuple is hashed without being put in key order first.
#[inline(always)]
fn flow_hash(seeds: &[u64; 2], x: ([u64; 2], u16), y: ([u64; 2], u16), proto: u8) -> u32 {
    let end =
        |(a, p): ([u64; 2], u16)| fold_mul(a[0] ^ seeds[0], a[1] ^ (u64::from(p) << 48) ^ seeds[1]);
    let h = fold_mul(
        end(x).wrapping_add(end(y)) ^ seeds[1],
        u64::from(proto) ^ seeds[0],
    );
    lo32(h ^ (h >> 32))
}

/// `a` before `b` in sequence space.
fn before(a: u32, b: u32) -> bool {
    a.wrapping_sub(b).cast_signed() < 0
}

fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// The connection tracker of one worker.
#[derive(Debug)]
pub struct Conntrack {
    index: Index,
    seeds: [u64; 2],
    entries: Vec<Entry>,
    /// Entry `i`'s TCP windows (unused for other protocols).
    windows: WindowTable,
    /// The first free entry, [`NO_FREE`] if none: free entries form a list linked through
    /// their `tenant` field, so the list takes no memory of its own.
    free: u32,
    live: usize,
    tenants: FxHashMap<u32, u32>,
    limits: CtLimits,
    cursor: usize,
}

impl Conntrack {
    /// An empty tracker for at most `limits.max_flows` flows. `seed` seeds the hash: give
    /// each tracker a random one.
    pub fn new(limits: CtLimits, seed: u64) -> Conntrack {
        let max = usize::try_from(limits.max_flows.max(1)).unwrap_or(usize::MAX);
        let mut s = seed;
        let mut entries = Vec::with_capacity(max);
        // Before any entry is written (see `weft_prefetch::huge_pages`).
        weft_prefetch::huge_pages(entries.spare_capacity_mut());
        Conntrack {
            index: Index::new(max),
            seeds: [splitmix(&mut s), splitmix(&mut s)],
            entries,
            windows: WindowTable::new(max),
            free: NO_FREE,
            live: 0,
            tenants: FxHashMap::default(),
            limits,
            cursor: 0,
        }
    }

    /// Flows tracked.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Flows of tenant `t`.
    pub fn tenant_len(&self, t: TenantId) -> usize {
        self.tenants
            .get(&t.0)
            .map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX))
    }

    /// Heap bytes the table holds (reserved entries included).
    pub fn heap_bytes(&self) -> usize {
        self.index.bytes() + self.entries.capacity() * size_of::<Entry>() + self.windows.bytes()
    }

    /// The entry holding `k`. Inlined: called out of line, the key went through memory and
    /// a lookup cost 35 instructions more.
    #[inline(always)]
    fn find(&self, k: &Key) -> Option<u32> {
        let entries = &self.entries;
        let i = self
            .index
            .find(key_hash(&self.seeds, k), |i| entries[i].has_key(k))?;
        u32::try_from(i).ok()
    }

    /// The hash a lookup of `t`'s flow starts from, in any zone (the hash leaves zones out),
    /// for [`Conntrack::warm`].
    pub fn hash_of(&self, t: &Tuple) -> u32 {
        // Not `addrs`: the warming pass hands a tuple peeked into registers, which `addrs`
        // had stored to memory again (about 20 instructions a packet).
        flow_hash(
            &self.seeds,
            (addr(t.src), t.sport),
            (addr(t.dst), t.dport),
            t.proto,
        )
    }

    /// Prefetches what lookups of the flows with these hashes will read first: all their
    /// index slots, then the entries those point to (one cache line each), and the windows of
    /// the TCP ones (bit `i` of `tcp` set: flow `i` is TCP). Issued back to back, the misses of
    /// a large table overlap instead of being paid one lookup at a time.
    #[inline]
    pub fn warm(&self, hashes: &[u32], tcp: u64) {
        for &h in hashes {
            self.index.prefetch(h);
        }
        let mut tcp = tcp;
        for &h in hashes {
            if let Some(e) = self.index.first_candidate(h) {
                if let Some(entry) = self.entries.get(e) {
                    weft_prefetch::read(entry);
                }
                if tcp & 1 != 0 {
                    self.windows.prefetch(e);
                }
            }
            tcp >>= 1;
        }
    }

    /// Looks the packet's flow up in `zone` and, if tracked, advances its state.
    #[inline]
    pub fn lookup(&mut self, zone: Zone, flow: &Flow, now: Timestamp) -> Lookup {
        self.lookup_secs(zone, flow, now.secs())
    }

    /// [`Conntrack::lookup`] at `now_s` ([`Timestamp::secs`]), for a caller that converted
    /// the time once for a whole batch.
    pub fn lookup_secs(&mut self, zone: Zone, flow: &Flow, now_s: u32) -> Lookup {
        match flow.transport {
            Transport::Fragment => return Lookup::Invalid(DropReason::FragmentNotTracked),
            Transport::IcmpError { inner, .. } => {
                let (k, _) = key_of(zone, &inner);
                return match self.find(&k) {
                    Some(e) if self.entries[e as usize].expires > now_s => {
                        Lookup::Related { id: FlowId(e) }
                    }
                    _ => Lookup::Invalid(DropReason::IcmpErrorUntracked),
                };
            }
            Transport::IcmpOther { .. } => return Lookup::New,
            _ => {}
        }
        let (k, src_is_a) = key_of(zone, &flow.tuple);
        let Some(e) = self.find(&k) else {
            return Lookup::New;
        };
        let ent = &mut self.entries[e as usize];
        if ent.expires <= now_s {
            self.remove_entry(e);
            return Lookup::New;
        }
        let dir = if src_is_a == (ent.flags & ORIG_IS_A != 0) {
            Dir::Original
        } else {
            Dir::Reply
        };
        let generation = ent.generation;
        let ok = match flow.transport {
            Transport::Tcp { .. } => {
                let mut win = self.windows.get(e as usize);
                let verdict = match tcp_update(ent, &mut win, dir, &flow.transport, now_s) {
                    TcpVerdict::Ok => Ok(()),
                    TcpVerdict::Invalid => Err(DropReason::ConntrackInvalid),
                    TcpVerdict::Reopen => {
                        // A new connection on the old tuple: start over.
                        let k = ent.key();
                        if let Ok((n, w)) =
                            new_entry(k, ent.tenant, src_is_a, generation, flow, now_s)
                        {
                            (*ent, win) = (n, w);
                        }
                        Ok(())
                    }
                };
                self.windows.set(e as usize, win);
                verdict
            }
            Transport::Udp => {
                if dir == Dir::Reply {
                    ent.flags |= REPLIED;
                }
                ent.expires = now_s.saturating_add(if ent.flags & REPLIED != 0 {
                    UDP_TIMEOUT.1
                } else {
                    UDP_TIMEOUT.0
                });
                Ok(())
            }
            Transport::Echo { request } => {
                if request != (dir == Dir::Original) {
                    Err(DropReason::ConntrackInvalid)
                } else {
                    if dir == Dir::Reply {
                        ent.flags |= REPLIED;
                    }
                    ent.expires = now_s.saturating_add(ICMP_TIMEOUT);
                    Ok(())
                }
            }
            _ => {
                if dir == Dir::Reply {
                    ent.flags |= REPLIED;
                }
                ent.expires = now_s.saturating_add(GENERIC_TIMEOUT);
                Ok(())
            }
        };
        match ok {
            Ok(()) => Lookup::Established {
                id: FlowId(e),
                dir,
                generation,
            },
            Err(r) => Lookup::Invalid(r),
        }
    }

    /// Starts tracking the flow of a packet that [`Conntrack::lookup`] called new and the rules
    /// allow; this packet's direction is the original one.
    pub fn commit(
        &mut self,
        zone: Zone,
        tenant: TenantId,
        flow: &Flow,
        generation: u64,
        now: Timestamp,
    ) -> Result<FlowId, CommitError> {
        let (k, src_is_a) = key_of(zone, &flow.tuple);
        let (ent, win) = new_entry(k, tenant.0, src_is_a, generation, flow, now.secs())?;
        if self.find(&k).is_some() {
            return Err(CommitError::Invalid(DropReason::ConntrackInvalid));
        }
        if self.live >= usize::try_from(self.limits.max_flows).unwrap_or(usize::MAX) {
            return Err(CommitError::NodeFull);
        }
        let n = self.tenants.entry(tenant.0).or_insert(0);
        if *n >= self.limits.max_per_tenant {
            return Err(CommitError::TenantFull);
        }
        *n += 1;
        let idx = match self.entries.get_mut(self.free as usize) {
            Some(e) => {
                let i = self.free;
                self.free = e.tenant;
                *e = ent;
                i
            }
            None => {
                self.entries.push(ent);
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        if ent.proto == crate::flow::PROTO_TCP {
            self.windows.set(ix(idx), win);
        }
        self.index.insert(key_hash(&self.seeds, &k), ix(idx));
        self.live += 1;
        Ok(FlowId(idx))
    }

    /// The tuple of the packet that opened flow `id`.
    pub fn original(&self, id: FlowId) -> Option<Tuple> {
        let e = self.entries.get(id.0 as usize)?;
        if e.flags & LIVE == 0 {
            return None;
        }
        let (s, d) = if e.flags & ORIG_IS_A != 0 {
            ((e.a, e.pa), (e.b, e.pb))
        } else {
            ((e.b, e.pb), (e.a, e.pa))
        };
        Some(Tuple {
            src: unaddr(s.0),
            dst: unaddr(d.0),
            proto: e.proto,
            sport: s.1,
            dport: d.1,
        })
    }

    /// Records that flow `id` is allowed under rule generation `generation`.
    pub fn set_generation(&mut self, id: FlowId, generation: u64) {
        if let Some(e) = self.entries.get_mut(id.0 as usize) {
            e.generation = generation;
        }
    }

    /// Stops tracking flow `id`.
    pub fn remove(&mut self, id: FlowId) {
        let Some(e) = self.entries.get(id.0 as usize) else {
            return;
        };
        if e.flags & LIVE == 0 {
            return;
        }
        self.remove_entry(id.0);
    }

    /// Frees live entry `idx` and its index slot.
    fn remove_entry(&mut self, idx: u32) {
        let e = &mut self.entries[idx as usize];
        e.flags = 0;
        if let Some(n) = self.tenants.get_mut(&e.tenant) {
            *n = n.saturating_sub(1);
        }
        let h = key_hash(&self.seeds, &e.key());
        e.tenant = self.free;
        self.free = idx;
        self.index.remove(h, ix(idx));
        self.live -= 1;
    }

    /// Removes every flow of `zone` (its port is gone); returns how many.
    pub fn remove_zone(&mut self, zone: Zone) -> usize {
        let ids: Vec<FlowId> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.flags & LIVE != 0 && e.zone == zone.0)
            .filter_map(|(i, _)| u32::try_from(i).ok().map(FlowId))
            .collect();
        for id in &ids {
            self.remove(*id);
        }
        ids.len()
    }

    /// Looks at up to `budget` entries from where the last sweep stopped and removes the
    /// expired ones; returns how many. At 4096 entries every 50 ms a full table of 1M flows is
    /// swept every 13 s.
    pub fn expire(&mut self, now: Timestamp, budget: usize) -> usize {
        let now_s = now.secs();
        let n = self.entries.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.cursor = (self.cursor + 1) % n;
            let e = &self.entries[self.cursor];
            if e.flags & LIVE != 0 && e.expires <= now_s {
                let id = FlowId(u32::try_from(self.cursor).unwrap_or(u32::MAX));
                self.remove(id);
                removed += 1;
            }
        }
        removed
    }
}

/// A new entry for `flow`, or why it cannot start a flow.
fn new_entry(
    key: Key,
    tenant: u32,
    src_is_a: bool,
    generation: u64,
    flow: &Flow,
    now_s: u32,
) -> Result<(Entry, Windows), CommitError> {
    let mut e = Entry {
        a: key.a,
        b: key.b,
        generation,
        zone: key.zone,
        expires: 0,
        tenant,
        pa: key.pa,
        pb: key.pb,
        proto: key.proto,
        tcp: Tcp::Close as u8,
        flags: LIVE | if src_is_a { ORIG_IS_A } else { 0 },
        scale: [0; 2],
    };
    let mut w = Windows::default();
    let timeout = match flow.transport {
        Transport::Tcp {
            flags,
            seq,
            window,
            wscale,
            payload,
            ..
        } => {
            if flags & tcp_flags::RST != 0 {
                return Err(CommitError::Invalid(DropReason::ConntrackInvalid));
            }
            let syn = flags & tcp_flags::SYN != 0;
            let fin = flags & tcp_flags::FIN != 0;
            let end = seq
                .wrapping_add(payload)
                .wrapping_add(u32::from(syn))
                .wrapping_add(u32::from(fin));
            if let Some(w) = wscale {
                e.flags |= WSCALE_OK;
                e.scale[0] = w;
            }
            let s = &mut w.0[0];
            s.end = end;
            s.maxend = end;
            if syn && flags & tcp_flags::ACK == 0 {
                s.maxwin = u32::from(window).max(1);
                e.tcp = Tcp::SynSent as u8;
                Tcp::SynSent.timeout()
            } else {
                // Picked up mid-stream: the window is not known to be scaled yet, so do not
                // judge the first packets by it.
                s.maxwin = (u32::from(window) << 14).max(1);
                s.maxend = end.wrapping_add(s.maxwin);
                e.tcp = Tcp::Established as u8;
                TCP_UNACKNOWLEDGED_TIMEOUT
            }
        }
        Transport::Udp => UDP_TIMEOUT.0,
        Transport::Echo { request: true } => ICMP_TIMEOUT,
        Transport::Echo { request: false } => {
            return Err(CommitError::Invalid(DropReason::ConntrackInvalid));
        }
        Transport::Other => GENERIC_TIMEOUT,
        Transport::Fragment => return Err(CommitError::Invalid(DropReason::FragmentNotTracked)),
        Transport::IcmpError { .. } | Transport::IcmpOther { .. } => {
            return Err(CommitError::Invalid(DropReason::IcmpErrorUntracked));
        }
    };
    e.expires = now_s.saturating_add(timeout);
    Ok((e, w))
}

enum TcpVerdict {
    Ok,
    Invalid,
    Reopen,
}

/// Advances a TCP flow by one segment (state machine and window checks).
fn tcp_update(e: &mut Entry, w: &mut Windows, dir: Dir, t: &Transport, now_s: u32) -> TcpVerdict {
    let Transport::Tcp {
        flags,
        seq,
        ack,
        window,
        wscale,
        payload,
    } = *t
    else {
        return TcpVerdict::Invalid;
    };
    let (syn, fin, rst, has_ack) = (
        flags & tcp_flags::SYN != 0,
        flags & tcp_flags::FIN != 0,
        flags & tcp_flags::RST != 0,
        flags & tcp_flags::ACK != 0,
    );
    if syn && (fin || rst) {
        return TcpVerdict::Invalid;
    }
    let mut state = match e.tcp {
        0 => Tcp::SynSent,
        1 => Tcp::SynRecv,
        2 => Tcp::Established,
        3 => Tcp::FinWait,
        4 => Tcp::CloseWait,
        5 => Tcp::LastAck,
        6 => Tcp::TimeWait,
        _ => Tcp::Close,
    };
    if syn && !has_ack && dir == Dir::Original && matches!(state, Tcp::TimeWait | Tcp::Close) {
        return TcpVerdict::Reopen;
    }
    let (si, ri) = if dir == Dir::Original { (0, 1) } else { (1, 0) };
    // The SYN/ACK (or a simultaneous-open SYN) initialises the reply direction.
    if syn && dir == Dir::Reply && matches!(state, Tcp::SynSent | Tcp::SynRecv) {
        let both = wscale.is_some() && e.flags & WSCALE_OK != 0;
        let r = &mut w.0[1];
        r.end = seq.wrapping_add(payload).wrapping_add(1);
        r.maxend = r.end;
        r.maxwin = u32::from(window).max(1);
        e.scale[1] = if both { wscale.unwrap_or(0) } else { 0 };
        if !both {
            e.scale[0] = 0;
        }
        state = Tcp::SynRecv;
    } else if syn {
        // A retransmitted SYN, or a SYN in the middle of a connection.
        if !(dir == Dir::Original && state == Tcp::SynSent) {
            return TcpVerdict::Invalid;
        }
    } else {
        let end = seq.wrapping_add(payload).wrapping_add(u32::from(fin));
        let win = u32::from(window) << e.scale[si];
        if w.0[si].maxwin == 0 {
            // First segment from this side (picked-up flow): learn it.
            let s = &mut w.0[si];
            s.end = end;
            s.maxend = end;
            s.maxwin = win.max(1);
        }
        let (sender, receiver) = (w.0[si], w.0[ri]);
        let ack_v = if has_ack { ack } else { receiver.end };
        let max_ack_window = sender.maxwin.max(66_000);
        let in_window = before(seq, sender.maxend.wrapping_add(1))
            && after(
                end,
                sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
            )
            && (!has_ack
                || receiver.maxwin == 0
                || (before(ack_v, receiver.end.wrapping_add(1))
                    && after(
                        ack_v,
                        receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1),
                    )));
        if !in_window {
            return TcpVerdict::Invalid;
        }
        let s = &mut w.0[si];
        s.maxwin = s.maxwin.max(win);
        if after(end, s.end) {
            s.end = end;
        }
        if has_ack {
            let r = &mut w.0[ri];
            let top = ack_v.wrapping_add(win.max(1));
            if after(top, r.maxend) || r.maxend == 0 {
                r.maxend = top;
            }
        }
        if rst {
            state = Tcp::Close;
        } else {
            state = match (state, dir, fin) {
                (Tcp::SynRecv, Dir::Original, _) if has_ack => {
                    if fin {
                        Tcp::FinWait
                    } else {
                        Tcp::Established
                    }
                }
                (Tcp::Established, _, true) => Tcp::FinWait,
                (Tcp::FinWait, _, true) => Tcp::LastAck,
                (Tcp::FinWait, _, false) if has_ack => Tcp::CloseWait,
                (Tcp::CloseWait, _, true) => Tcp::LastAck,
                (Tcp::LastAck, _, false) if has_ack => Tcp::TimeWait,
                (s, _, _) => s,
            };
        }
    }
    if dir == Dir::Reply {
        e.flags |= REPLIED;
    }
    e.tcp = state as u8;
    let timeout = if state == Tcp::Established && e.flags & REPLIED == 0 {
        TCP_UNACKNOWLEDGED_TIMEOUT
    } else {
        state.timeout()
    };
    e.expires = now_s.saturating_add(timeout);
    TcpVerdict::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::PROTO_UDP;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const Z: Zone = Zone(1);
    const T: TenantId = TenantId(1);
    const T0: Timestamp = Timestamp(1_000_000_000_000);

    fn ct() -> Conntrack {
        Conntrack::new(
            CtLimits {
                max_flows: 1000,
                max_per_tenant: 100,
            },
            7,
        )
    }

    fn tcp(from_client: bool, flags: u8, seq: u32, ack: u32, payload: u32) -> Flow {
        let (c, s) = ("10.0.0.5".parse().unwrap(), "198.51.100.1".parse().unwrap());
        let t = Tuple {
            src: c,
            dst: s,
            proto: 6,
            sport: 40000,
            dport: 80,
        };
        Flow {
            tuple: if from_client { t } else { t.reversed() },
            transport: Transport::Tcp {
                flags,
                seq,
                ack,
                window: 65535,
                wscale: (flags & SYN != 0).then_some(7),
                payload,
            },
            l4: 20,
            fragmented: false,
        }
    }

    use tcp_flags::{ACK, FIN, RST, SYN};

    fn established(c: &mut Conntrack) {
        assert_eq!(c.lookup(Z, &tcp(true, SYN, 1000, 0, 0), T0), Lookup::New);
        c.commit(Z, T, &tcp(true, SYN, 1000, 0, 0), 7, T0).unwrap();
        let r = c.lookup(Z, &tcp(false, SYN | ACK, 5000, 1001, 0), T0);
        assert!(
            matches!(
                r,
                Lookup::Established {
                    dir: Dir::Reply,
                    generation: 7,
                    ..
                }
            ),
            "{r:?}"
        );
        let r = c.lookup(Z, &tcp(true, ACK, 1001, 5001, 0), T0);
        assert!(
            matches!(
                r,
                Lookup::Established {
                    dir: Dir::Original,
                    ..
                }
            ),
            "{r:?}"
        );
    }

    #[test]
    fn addresses_read_by_family_are_the_general_ones() {
        let v4 = |a: &str| IpAddr::V4(a.parse().unwrap());
        let v6 = |a: &str| IpAddr::V6(a.parse().unwrap());
        let tuple = |src, dst| Tuple {
            src,
            dst,
            proto: PROTO_UDP,
            sport: 1,
            dport: 2,
        };
        // Written out independently: IPv6 bits, IPv4 through `to_ipv6_mapped`.
        let want = |a: IpAddr| {
            let v = match a {
                IpAddr::V4(a) => a.to_ipv6_mapped().to_bits(),
                IpAddr::V6(a) => a.to_bits(),
            };
            let half = |x: u128| u64::try_from(x & u128::from(u64::MAX)).unwrap();
            [half(v >> 64), half(v)]
        };
        for (src, dst) in [
            (v4("10.1.2.3"), v4("255.254.0.1")),
            (v4("0.0.0.0"), v4("10.0.0.1")),
            (v6("2001:db8::1"), v6("::ffff:10.1.2.3")),
            (v4("10.1.2.3"), v6("::ffff:10.1.2.3")),
        ] {
            let t = tuple(src, dst);
            assert_eq!(addrs(&t), (want(src), want(dst)), "{t:?}");
            assert_eq!((addr(src), addr(dst)), (want(src), want(dst)), "{t:?}");
        }
    }

    #[test]
    fn handshake_data_and_windows() {
        let mut c = ct();
        established(&mut c);
        let r = c.lookup(Z, &tcp(true, ACK, 1001, 5001, 1000), T0);
        assert!(matches!(r, Lookup::Established { .. }));
        let r = c.lookup(Z, &tcp(false, ACK, 5001, 2001, 1000), T0);
        assert!(matches!(r, Lookup::Established { .. }));
        // Far outside the window.
        let r = c.lookup(Z, &tcp(true, ACK, 1001 + 2_000_000_000, 6001, 10), T0);
        assert_eq!(r, Lookup::Invalid(DropReason::ConntrackInvalid));
        // An acknowledgment of data never sent.
        let r = c.lookup(Z, &tcp(true, ACK, 2001, 900_000, 10), T0);
        assert_eq!(r, Lookup::Invalid(DropReason::ConntrackInvalid));
        // A SYN in the middle of it.
        let r = c.lookup(Z, &tcp(true, SYN, 77, 0, 0), T0);
        assert_eq!(r, Lookup::Invalid(DropReason::ConntrackInvalid));
    }

    #[test]
    fn rst_in_window_closes_out_of_window_is_refused() {
        let mut c = ct();
        established(&mut c);
        let r = c.lookup(Z, &tcp(false, RST, 5001 + 3_000_000_000, 0, 0), T0);
        assert_eq!(r, Lookup::Invalid(DropReason::ConntrackInvalid));
        let r = c.lookup(Z, &tcp(false, RST, 5001, 0, 0), T0);
        assert!(matches!(r, Lookup::Established { .. }));
        // CLOSE lasts 10 s; then the flow is gone.
        let later = T0.plus(Duration::from_secs(11));
        assert_eq!(
            c.lookup(Z, &tcp(true, ACK, 1001, 5001, 0), later),
            Lookup::New
        );
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn fin_exchange_ends_in_time_wait_and_expires() {
        let mut c = ct();
        established(&mut c);
        for (client, flags, seq, ack) in [
            (true, FIN | ACK, 1001, 5001),
            (false, ACK, 5001, 1002),
            (false, FIN | ACK, 5001, 1002),
            (true, ACK, 1002, 5002),
        ] {
            let r = c.lookup(Z, &tcp(client, flags, seq, ack, 0), T0);
            assert!(matches!(r, Lookup::Established { .. }), "{flags:x}: {r:?}");
        }
        let e = c.entries[0];
        assert_eq!(e.tcp, Tcp::TimeWait as u8);
        assert_eq!(c.expire(T0.plus(Duration::from_secs(119)), 100), 0);
        assert_eq!(c.expire(T0.plus(Duration::from_secs(121)), 100), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn time_wait_reopens_on_syn() {
        let mut c = ct();
        established(&mut c);
        c.entries[0].tcp = Tcp::TimeWait as u8;
        let r = c.lookup(Z, &tcp(true, SYN, 9000, 0, 0), T0);
        assert!(matches!(r, Lookup::Established { .. }));
        assert_eq!(c.entries[0].tcp, Tcp::SynSent as u8);
    }

    #[test]
    fn mid_stream_flows_are_picked_up() {
        let mut c = ct();
        let f = tcp(true, ACK | tcp_flags::PSH, 123_456, 777_000, 100);
        assert_eq!(c.lookup(Z, &f, T0), Lookup::New);
        c.commit(Z, T, &f, 1, T0).unwrap();
        let r = c.lookup(Z, &tcp(false, ACK, 777_000, 123_556, 50), T0);
        assert!(
            matches!(
                r,
                Lookup::Established {
                    dir: Dir::Reply,
                    ..
                }
            ),
            "{r:?}"
        );
        let r = c.lookup(Z, &tcp(true, ACK, 123_556, 777_050, 100), T0);
        assert!(matches!(r, Lookup::Established { .. }), "{r:?}");
        // A RST cannot start a flow.
        assert!(matches!(
            c.commit(Zone(2), T, &tcp(true, RST, 1, 0, 0), 1, T0),
            Err(CommitError::Invalid(_))
        ));
    }

    fn udp(sport: u16, reply: bool) -> Flow {
        let t = Tuple {
            src: "10.0.0.5".parse().unwrap(),
            dst: "10.0.0.6".parse().unwrap(),
            proto: 17,
            sport,
            dport: 53,
        };
        Flow {
            tuple: if reply { t.reversed() } else { t },
            transport: Transport::Udp,
            l4: 20,
            fragmented: false,
        }
    }

    #[test]
    fn flow_hashes_spread_flows_that_differ_in_one_field() {
        let c = ct();
        let a: IpAddr = "10.0.0.5".parse().unwrap();
        let b: IpAddr = "203.0.113.9".parse().unwrap();
        let tuple = |src, sport, dst, dport| Tuple {
            src,
            dst,
            sport,
            dport,
            proto: PROTO_UDP,
        };
        // One client's ports to one server; one server port from many clients; both ends'
        // ports moving together (which an additive hash could cancel if it were linear).
        let families: [Vec<Tuple>; 3] = [
            (0..=u16::MAX).map(|p| tuple(a, p, b, 443)).collect(),
            (0..65_536u32)
                .map(|i| tuple(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 40_000, b, 53))
                .collect(),
            (0..=u16::MAX).map(|p| tuple(a, p, b, p)).collect(),
        ];
        for flows in families {
            let hashes: Vec<u32> = flows.iter().map(|t| c.hash_of(t)).collect();
            let distinct: HashSet<u32> = hashes.iter().copied().collect();
            assert!(
                distinct.len() >= flows.len() - 8,
                "{} distinct",
                distinct.len()
            );
            // Into 2^17 home slots (an index sized for 65 536 flows): no slot gets many.
            let mut load = vec![0u8; 1 << 17];
            for h in &hashes {
                let slot = &mut load[usize::try_from(h & 0x1_ffff).unwrap()];
                *slot = slot.saturating_add(1);
            }
            assert!(load.iter().all(|&n| n <= 10), "max {:?}", load.iter().max());
        }
    }

    #[test]
    fn warming_hashes_point_at_the_entry() {
        let mut c = ct();
        let f = udp(1000, false);
        let id = c.commit(Z, T, &f, 1, T0).unwrap();
        let h = c.hash_of(&f.tuple);
        assert_eq!(c.index.first_candidate(h), Some(ix(id.0)));
        // Either direction, any zone: one hash.
        assert_eq!(c.hash_of(&udp(1000, true).tuple), h);
        c.warm(&[h, 0, u32::MAX], 0b101);
        assert!(matches!(
            c.lookup(Z, &udp(1000, true), T0),
            Lookup::Established { .. }
        ));
    }

    #[test]
    fn limits_refuse_without_evicting() {
        let mut c = Conntrack::new(
            CtLimits {
                max_flows: 5,
                max_per_tenant: 3,
            },
            7,
        );
        for p in 0..3 {
            c.commit(Z, T, &udp(p, false), 1, T0).unwrap();
        }
        assert_eq!(
            c.commit(Z, T, &udp(9, false), 1, T0),
            Err(CommitError::TenantFull)
        );
        assert_eq!(c.tenant_len(T), 3);
        c.commit(Z, TenantId(2), &udp(10, false), 1, T0).unwrap();
        c.commit(Z, TenantId(2), &udp(11, false), 1, T0).unwrap();
        assert_eq!(
            c.commit(Z, TenantId(3), &udp(12, false), 1, T0),
            Err(CommitError::NodeFull)
        );
        // Everything already tracked is still there.
        for p in 0..3 {
            assert!(matches!(
                c.lookup(Z, &udp(p, true), T0),
                Lookup::Established { .. }
            ));
        }
    }

    #[test]
    fn udp_timeouts_depend_on_answers() {
        let mut c = ct();
        c.commit(Z, T, &udp(1, false), 1, T0).unwrap();
        c.commit(Z, T, &udp(2, false), 1, T0).unwrap();
        assert!(matches!(
            c.lookup(Z, &udp(2, true), T0),
            Lookup::Established {
                dir: Dir::Reply,
                ..
            }
        ));
        let t = T0.plus(Duration::from_secs(31));
        assert_eq!(
            c.lookup(Z, &udp(1, true), t),
            Lookup::New,
            "unanswered: 30 s"
        );
        assert!(matches!(
            c.lookup(Z, &udp(2, false), t),
            Lookup::Established { .. }
        ));
        assert_eq!(c.expire(T0.plus(Duration::from_secs(200)), 10), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn echo_and_icmp_errors() {
        let mut c = ct();
        let echo = |request: bool| {
            let t = Tuple {
                src: "2001:db8::5".parse().unwrap(),
                dst: "2001:db8::6".parse().unwrap(),
                proto: 58,
                sport: 9,
                dport: 9,
            };
            Flow {
                tuple: if request { t } else { t.reversed() },
                transport: Transport::Echo { request },
                l4: 40,
                fragmented: false,
            }
        };
        assert!(matches!(
            c.commit(Z, T, &echo(false), 1, T0),
            Err(CommitError::Invalid(_))
        ));
        c.commit(Z, T, &echo(true), 1, T0).unwrap();
        assert!(matches!(
            c.lookup(Z, &echo(false), T0),
            Lookup::Established {
                dir: Dir::Reply,
                ..
            }
        ));
        // An error about the UDP flow, from the server back to the client.
        c.commit(Z, T, &udp(5, false), 1, T0).unwrap();
        let err = |inner: Tuple| Flow {
            tuple: Tuple {
                src: "10.0.0.6".parse().unwrap(),
                dst: "10.0.0.5".parse().unwrap(),
                proto: 1,
                sport: 0,
                dport: 0,
            },
            transport: Transport::IcmpError {
                ty: 3,
                code: 3,
                inner,
                inner_l3: 28,
                inner_l4: 48,
            },
            l4: 20,
            fragmented: false,
        };
        assert!(matches!(
            c.lookup(Z, &err(udp(5, false).tuple), T0),
            Lookup::Related { .. }
        ));
        // And one travelling the other way (about the reply).
        assert!(matches!(
            c.lookup(Z, &err(udp(5, true).tuple), T0),
            Lookup::Related { .. }
        ));
        assert_eq!(
            c.lookup(Z, &err(udp(6, false).tuple), T0),
            Lookup::Invalid(DropReason::IcmpErrorUntracked)
        );
    }

    #[test]
    fn zones_generations_and_removal() {
        let mut c = ct();
        let a = c.commit(Zone(1), T, &udp(1, false), 1, T0).unwrap();
        assert_eq!(
            c.lookup(Zone(2), &udp(1, true), T0),
            Lookup::New,
            "another zone"
        );
        c.commit(Zone(2), T, &udp(1, false), 1, T0).unwrap();
        c.set_generation(a, 42);
        assert!(matches!(
            c.lookup(Zone(1), &udp(1, true), T0),
            Lookup::Established { generation: 42, .. }
        ));
        assert_eq!(c.original(a), Some(udp(1, false).tuple));
        assert_eq!(c.remove_zone(Zone(2)), 1);
        assert_eq!(c.len(), 1);
        c.remove(a);
        assert!(c.is_empty());
        assert_eq!(c.tenant_len(T), 0);
    }

    #[test]
    fn churn_keeps_the_index_consistent() {
        let mut c = Conntrack::new(
            CtLimits {
                max_flows: 64,
                max_per_tenant: 64,
            },
            7,
        );
        let mut live: Vec<u16> = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let p = u16::try_from(x % 200).unwrap();
            if let Some(i) = live.iter().position(|q| *q == p) {
                if let Lookup::Established { id, .. } = c.lookup(Z, &udp(p, false), T0) {
                    c.remove(id);
                }
                live.swap_remove(i);
            } else if c.commit(Z, T, &udp(p, false), 1, T0).is_ok() {
                live.push(p);
            }
            assert_eq!(c.len(), live.len());
        }
        for p in 0..200 {
            let tracked = matches!(c.lookup(Z, &udp(p, true), T0), Lookup::Established { .. });
            assert_eq!(tracked, live.contains(&p), "{p}");
        }
    }

    #[test]
    fn window_table_keeps_each_flow_in_one_line() {
        for max in [1usize, 2, 3, 1000, 70_000] {
            let mut t = WindowTable::new(max);
            let base = t.units.as_ptr().addr() + 16 * t.skew;
            assert_eq!(base % 32, 0, "{max}");
            let w = |i: usize| {
                let n = u32::try_from(i).unwrap();
                Windows([
                    Seen {
                        end: n,
                        maxend: n + 1,
                        maxwin: n + 2,
                    },
                    Seen {
                        end: !n,
                        maxend: n ^ 0x5555,
                        maxwin: 7,
                    },
                ])
            };
            assert_eq!(t.get(max - 1), Windows::default());
            for i in (0..max).rev() {
                t.set(i, w(i));
            }
            for i in 0..max {
                assert_eq!(t.get(i), w(i), "{max} {i}");
            }
        }
    }

    #[test]
    fn an_entry_reused_by_tcp_after_udp_and_by_udp_after_tcp_starts_afresh() {
        let mut c = ct();
        // A TCP flow with windows, removed; a UDP flow takes its entry, then goes; a new TCP
        // flow in the same entry starts from its own SYN, not the old windows.
        let syn = tcp(true, SYN, 1000, 0, 0);
        let id = c.commit(Z, T, &syn, 1, T0).unwrap();
        assert!(matches!(
            c.lookup(Z, &tcp(false, SYN | ACK, 5000, 1001, 0), T0),
            Lookup::Established { .. }
        ));
        c.remove(id);
        let u = c.commit(Z, T, &udp(9, false), 1, T0).unwrap();
        assert_eq!(u, id, "the freed entry is reused");
        assert!(matches!(
            c.lookup(Z, &udp(9, true), T0),
            Lookup::Established { .. }
        ));
        c.remove(u);
        let again = c
            .commit(Z, T, &tcp(true, SYN, 70_000, 0, 0), 1, T0)
            .unwrap();
        assert_eq!(again, id);
        assert!(matches!(
            c.lookup(Z, &tcp(false, SYN | ACK, 9000, 70_001, 0), T0),
            Lookup::Established { .. }
        ));
        // The old connection's sequence numbers are outside the new one's windows.
        assert_eq!(
            c.lookup(Z, &tcp(true, ACK, 1001, 5001, 0), T0),
            Lookup::Invalid(DropReason::ConntrackInvalid)
        );
        assert!(matches!(
            c.lookup(Z, &tcp(true, ACK, 70_001, 9001, 0), T0),
            Lookup::Established { .. }
        ));
    }

    #[test]
    fn at_most_128_bytes_per_flow() {
        assert_eq!(size_of::<Entry>(), 64);
        assert_eq!(size_of::<Windows>(), 24);
        // Just over a power of two: the index is at its largest per flow (4 slots of 8 bytes).
        let max = (1 << 16) + 1;
        let mut c = Conntrack::new(
            CtLimits {
                max_flows: max,
                max_per_tenant: max,
            },
            7,
        );
        let tcp_from = |i: u32| Flow {
            tuple: Tuple {
                src: IpAddr::V6(std::net::Ipv6Addr::from_bits(u128::from(i))),
                dst: "2001:db8::1".parse().unwrap(),
                proto: 6,
                sport: 1,
                dport: 2,
            },
            transport: Transport::Tcp {
                flags: SYN,
                seq: 1,
                ack: 0,
                window: 1,
                wscale: None,
                payload: 0,
            },
            l4: 40,
            fragmented: false,
        };
        for i in 0..max {
            c.commit(Z, T, &tcp_from(i), 1, T0).unwrap();
        }
        assert_eq!(c.len(), max as usize);
        let per_flow = c.heap_bytes() / c.len();
        assert!(per_flow <= 128, "{per_flow} bytes per flow");
        // Churn: every flow removed and tracked again (the free list holds them all at once).
        let full = c.heap_bytes();
        for i in 0..max {
            c.remove(FlowId(i));
        }
        assert!(c.is_empty());
        for i in 0..max {
            c.commit(Z, T, &tcp_from(i), 1, T0).unwrap();
        }
        assert_eq!(c.len(), max as usize);
        assert_eq!(c.heap_bytes(), full, "no memory grows with churn");
    }
}
