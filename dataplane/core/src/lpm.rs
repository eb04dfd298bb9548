//! Longest-prefix-match routing tables for IPv4 ([`Lpm4`]) and IPv6 ([`Lpm6`]): the router's
//! per-packet FIB lookup.
//!
//! A table maps prefixes to [`RouteId`]s (indices into the caller's route array) and answers,
//! for an address, the id of the longest prefix that contains it. Tables are immutable: a
//! configuration change builds a new one and swaps it in (as with
//! [`Tables`](crate::tables::Tables)), so there is no incremental insert or delete, and the
//! layout is chosen for lookups alone.
//!
//! # Structure
//!
//! A Poptrie (Asai & Ohara, "Poptrie: A Compressed Trie with Population Count for Fast and
//! Scalable Software IP Routing Table Lookup", SIGCOMM 2015): a multibit trie with a stride of
//! 6 bits whose nodes hold 64-bit bitmaps instead of 64 pointers, under a direct-pointing array
//! indexed by the first `s` bits of the address. Two additions keep IPv6 paths short:
//! path compression (a node may first skip up to 54 bits that every route below it shares) and
//! inline leaves (a node with at most two leaf values holds them itself).
//!
//! ```text
//!  address bits: |<--- s --->|<- path ->|<- 6 ->|<- path ->|<- 6 ->| ...  (zero-padded)
//!                      |                    |                  |
//!  direct[2^s]: u32    v                    |                  |
//!   +--------+--------+--------+--------+   |                  |
//!   | LEAF|7 | LEAF|7 |   41   |  none  |   |     LEAF|id: the answer; none: no route;
//!   +--------+--------+---|----+--------+   |     otherwise the index of a node
//!                         v                 v
//!  nodes[41]: 32 bytes  +------------------------------------------------------------+
//!                       | path    bits to match first (0 to 54, a multiple of 6);    |
//!                       |         an address that differs gets the path's fallback   |
//!                       | vector  bit v: slot v leads to a child                     |
//!                       | leafvec bit v: a run of equal leaf values starts at slot v |
//!                       | base1 -----> nodes[base1 ..]   the children, in slot order |
//!                       | base0 -----> leaves[base0 ..]  one value per run           |
//!                       +------------------------------------------------------------+
//!  v = the 6 address bits after the path:
//!    vector bit v set:  node   = nodes[base1 + popcount(vector & below(v))], go on
//!    otherwise:         answer = leaves[base0 + popcount(leafvec & upto(v)) - 1]
//!                       (inline: answer = leafvec bit v ? base1 : base0)
//! ```
//!
//! A table of at most 8 prefixes (most tenant routers: their subnets and a default route)
//! also keeps them as a list, longest first, and [`Lpm4::lookup`]/[`Lpm6::lookup`] scan it: a
//! few instructions a prefix, where its /24 or /64 is three or four trie levels of about
//! fifteen each. The batched lookups walk the trie, which big tables have.
//!
//! A slot is a leaf when no route longer than the slot's depth starts inside it; its value is
//! the longest route that covers the whole slot (prefixes are expanded when the trie is built,
//! so a lookup never backtracks). Consecutive leaf slots with the same value share one entry
//! in `leaves` (a run may span child slots in between). A node whose leaf slots hold at most
//! two values (one if it has children) keeps them in `base0`/`base1` instead and marks the
//! slots of the second in `leafvec`, which saves the last, usually cache-missing, read.
//!
//! `s` grows with the table, as the largest of 0, 6, 12, 16 and 18 with `2^s <= 8 * prefixes`
//! (a direct array of at most 32 bytes, one node's size, per prefix): 0 (one direct entry,
//! pointing at the root node) below 8 prefixes, 12 from 512, 18 (1 MiB) from 32 768 on. An
//! IPv4 table of 65 536 prefixes or more takes 20 (4 MiB, a direct array of at most 64 bytes a
//! prefix; with its nodes, about 68 bytes a prefix in the bench's tables): the 12 bits below
//! are two whole levels, where 18 leaves three (6, 6 and 2), so its longest prefixes are one
//! read closer. A table of a few routes takes a few hundred bytes ([`Lpm4::memory_bytes`]).
//!
//! # Invariants (established by the build, relied on by the lookup)
//!
//! - Prefixes are stored with their host bits cleared; duplicates are resolved (last wins)
//!   before the trie is built, so every stored prefix is distinct.
//! - A node exists only where some route is longer than the node's depth (the bits consumed
//!   before its 6 bits), so those 6 bits start inside the address; bits past the end of the
//!   address read as zero, in the build and the lookup alike.
//! - A node's path is the bits that every route below it has in common, taken only across
//!   levels where no route ends (one may end exactly where the path does); an address that
//!   differs from the path is covered by nothing below, so its answer is the value covering the
//!   whole region, kept just before the node's runs in `leaves`, or in `base0` if inline.
//! - The children of a node are contiguous in `nodes`, in slot order; its runs are contiguous
//!   in `leaves`. The lowest leaf slot of a node always starts a run, so the popcount is >= 1.
//! - A subtree that gives every address the same answer is replaced by that leaf; this also
//!   drops routes that repeat the value of the route covering them.
//! - Direct entries: `LEAF | id` for ids below `LEAF - 1`, `u32::MAX` for no route, any value
//!   below `LEAF` a node index. A larger id (rare) is answered by a node holding it inline,
//!   one per such id.
//! - Node indices stay below `LEAF` and leaf indices fit a `u32`, or the build fails with
//!   [`LpmError::TooLarge`].
//!
//! Lookups index with `get`, so no input can make them panic; the build needs memory
//! proportional to the routes and reports bad input as an error.
//!
//! # Cost
//!
//! A lookup reads one direct entry, then one node per level below `s` (a path is a compare,
//! not a read), and a leaf only if the last node is not inline: an IPv4 /24 under `s = 18` is two or
//! three reads, an IPv6 /64 under a /48 typically five. Each level counts bits with
//! `u64::count_ones`, which is one `POPCNT` instruction only when the crate is compiled for a
//! CPU that has it (`-C target-cpu=x86-64-v2` or later) and a dozen instructions on the
//! x86-64 baseline.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use rustc_hash::FxHashMap;

/// A route's value: an index into the caller's route array. `u32::MAX` is reserved.
pub type RouteId = u32;

/// The leaf value meaning "no route covers this slot".
const NO_ROUTE: u32 = u32::MAX;

/// Bits consumed by each node below the direct array.
const STRIDE: u32 = 6;

/// Tag of a direct entry that holds a route id rather than a node index.
const LEAF: u32 = 1 << 31;

/// The most levels a node's `path` skips: 54 bits, so the low 6 bits of `path` hold the length.
const MAX_SKIP_LEVELS: u32 = 9;

/// The bits of `Node::path` holding the skipped length.
const SKIP_LEN: u64 = 0x3f;

/// Flag in `Node::path`: the node's leaves are inline (see [`Node`]).
const INLINE: u64 = 1 << 6;

/// Lookups [`Lpm6::lookup_batch`] interleaves: one bit each in a `u16` mask, and a power of
/// two so that a lane number can be masked into range.
const BATCH_LANES: usize = 16;
const _: () = assert!(BATCH_LANES <= 16 && BATCH_LANES.is_power_of_two());

/// The sizes (in address bits) the direct array may have; see [`direct_bits_for`].
const DIRECT_BITS: [u32; 5] = [0, 6, 12, 16, 18];

/// The direct array of an IPv4 table of at least this many prefixes has [`V4_WIDE_DIRECT`]
/// bits: 4 MiB, so the array takes at most 64 bytes a prefix.
const V4_WIDE_FROM: usize = 1 << 16;

/// The direct bits of a large IPv4 table: the 12 bits below are two whole node levels, where
/// 18 leaves three (6, 6 and 2), so an address under a /25 to /32 takes one node fewer, and
/// /19 and /20 none.
const V4_WIDE_DIRECT: u32 = 20;

/// Errors of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LpmError {
    /// A prefix length exceeds the address width (32 for IPv4, 128 for IPv6).
    #[error("prefix length {0} is longer than the address")]
    BadPrefixLen(u8),
    /// A route uses the reserved id `u32::MAX`.
    #[error("route id {} is reserved", u32::MAX)]
    ReservedRouteId,
    /// The table would need more than 2^31 nodes or 2^32 leaves.
    #[error("the routing table is too large")]
    TooLarge,
}

/// One node of the trie: a path of skipped bits, then 64 slots, each a child node or a leaf.
/// 32 bytes, aligned so that a node never straddles two cache lines.
///
/// Leaves are stored one of two ways:
/// - in `leaves`: `leafvec` marks where runs start, `base0` indexes the first run;
/// - inline (`path & INLINE`), when the node's leaf slots hold at most two values, or one if it
///   has children: slot `v` answers `base1` if `leafvec` bit `v` is set, else `base0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(32))]
struct Node {
    /// Bit `v` set: slot `v` leads to a child node.
    vector: u64,
    /// Bit `v` set: slot `v` is a leaf whose value differs from the previous leaf slot's; if
    /// inline, slot `v` answers `base1`.
    leafvec: u64,
    /// Index in `leaves` of the node's first leaf run; if inline, the answer of leaf slots not
    /// in `leafvec`, and of addresses that leave the path. If not inline and there is a path,
    /// the leaf before the first run answers addresses that leave the path.
    base0: u32,
    /// Index in `nodes` of the node's first child; if inline and there are no children, the
    /// answer of leaf slots in `leafvec`.
    base1: u32,
    /// The address bits every lookup must match before the node's 6 bits, left-aligned, their
    /// number (a multiple of 6, at most 54) in the low 6 bits ([`SKIP_LEN`]), and [`INLINE`].
    path: u64,
}

/// An address as the lookup reads it: a big-endian integer, most significant bit first.
trait Key: Copy + Default {
    /// The first `s` bits (`s <= 20`), as an index into the direct array.
    fn top(self, s: u32) -> usize;
    /// The 6 bits starting at bit `o` (`o < width`), zero-padded past the end.
    fn chunk(self, o: u32) -> u32;
    /// The 64 bits starting at bit `o` (`o < width`), zero-padded past the end.
    fn bits64(self, o: u32) -> u64;
    /// Whether the key, left-aligned in 128 bits (as [`Route::key`]), is in the prefix
    /// `prefix` whose mask is `mask`: `key & mask == prefix`.
    fn in_prefix(self, prefix: u128, mask: u128) -> bool;
}

impl Key for u32 {
    #[inline(always)]
    fn top(self, s: u32) -> usize {
        // `s == 0` shifts by 32: `checked_shr` makes that 0 (one direct entry).
        idx(self.checked_shr(32u32.wrapping_sub(s)).unwrap_or(0))
    }

    #[inline(always)]
    fn chunk(self, o: u32) -> u32 {
        self.wrapping_shl(o) >> (32 - STRIDE)
    }

    #[inline(always)]
    fn bits64(self, o: u32) -> u64 {
        u64::from(self.wrapping_shl(o)) << 32
    }

    /// An IPv4 prefix and its mask are all in the high 64 bits (the low ones are zero in
    /// both, as in the key): only those are compared.
    #[inline(always)]
    fn in_prefix(self, prefix: u128, mask: u128) -> bool {
        let hi = |x: u128| u64::try_from(x >> 64).unwrap_or(0);
        (u64::from(self) << 32) & hi(mask) == hi(prefix)
    }
}

impl Key for u128 {
    #[inline(always)]
    fn top(self, s: u32) -> usize {
        let hi = u64::try_from(self >> 64).unwrap_or(0);
        usize::try_from(hi.checked_shr(64u32.wrapping_sub(s)).unwrap_or(0)).unwrap_or(0)
    }

    #[inline(always)]
    fn chunk(self, o: u32) -> u32 {
        u32::try_from(self.wrapping_shl(o) >> (128 - STRIDE)).unwrap_or(0)
    }

    #[inline(always)]
    fn bits64(self, o: u32) -> u64 {
        u64::try_from(self.wrapping_shl(o) >> 64).unwrap_or(0)
    }

    #[inline(always)]
    fn in_prefix(self, prefix: u128, mask: u128) -> bool {
        self & mask == prefix
    }
}

/// A `u32` index as a `usize` (lossless on the 32- and 64-bit targets Weft runs on).
#[inline(always)]
fn idx(x: u32) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// The family-independent table: direct array, nodes and leaves.
#[derive(Clone)]
struct Trie {
    /// `2^direct_bits` entries: `LEAF | id`, `u32::MAX` (no route) or a node index.
    direct: Box<[u32]>,
    /// All nodes; each node's children contiguous.
    nodes: Box<[Node]>,
    /// Leaf values (`NO_ROUTE` for none); each node's runs contiguous.
    leaves: Box<[u32]>,
    /// Bits indexing `direct`; one of [`DIRECT_BITS`], or [`V4_WIDE_DIRECT`].
    direct_bits: u32,
    /// Distinct prefixes.
    len: usize,
    /// For a table of at most [`SMALL_MAX`] prefixes (most tenant routers), the prefixes
    /// again, longest first: [`Trie::lookup`] scans them instead of walking the trie.
    small: Box<[SmallRoute]>,
}

/// The most prefixes a table keeps as a list for [`Trie::lookup`]: a scan costs a few
/// instructions a prefix, a trie level about fifteen, and a small table's /24 or /64 is three
/// or four levels down.
const SMALL_MAX: usize = 8;

/// A prefix of a small table: `key & mask == prefix` for the addresses it covers.
#[derive(Debug, Clone, Copy)]
struct SmallRoute {
    prefix: u128,
    mask: u128,
    id: RouteId,
}

impl fmt::Debug for Trie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trie")
            .field("prefixes", &self.len)
            .field("direct_bits", &self.direct_bits)
            .field("nodes", &self.nodes.len())
            .field("leaves", &self.leaves.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl Trie {
    /// The longest match for `key`, a `u32` for IPv4 tables and a `u128` for IPv6 ones.
    #[inline(always)]
    fn lookup<K: Key>(&self, key: K) -> Option<RouteId> {
        if !self.small.is_empty() {
            return self
                .small
                .iter()
                .find(|r| key.in_prefix(r.prefix, r.mask))
                .map(|r| r.id);
        }
        let e = *self.direct.get(key.top(self.direct_bits))?;
        if e >= LEAF {
            return (e != NO_ROUTE).then_some(e & !LEAF);
        }
        let (mut n, mut o) = (e, self.direct_bits);
        loop {
            match self.step(self.nodes.get(idx(n))?, key, o) {
                Ok(next) => (n, o) = next,
                Err(answer) => return answer,
            }
        }
    }

    /// Looks up the keys `key(0)`, ..., `key(n - 1)` and hands each answer to `found(i, _)`,
    /// [`BATCH_LANES`] at a time, one trie level per pass over the lanes: the loads of
    /// different lanes do not depend on each other, so their cache misses overlap instead of
    /// following one another. A `None` key is skipped (no answer is handed over for it).
    #[inline]
    fn lookup_each<K: Key>(
        &self,
        n: usize,
        key: impl Fn(usize) -> Option<K>,
        mut found: impl FnMut(usize, Option<RouteId>),
    ) {
        let mut base = 0;
        while base < n {
            let lanes = (n - base).min(BATCH_LANES);
            let mut keys = [K::default(); BATCH_LANES];
            // Per lane: the node to visit next and its depth; `active` has bit `l` set while
            // lane `l` walks the trie (a bit mask, so that a pass visits only those lanes).
            let mut next = [0u32; BATCH_LANES];
            let mut depth = [self.direct_bits; BATCH_LANES];
            let mut active: u16 = 0;
            for l in 0..lanes {
                let Some(kk) = key(base + l) else { continue };
                // `l < lanes <= BATCH_LANES`: the mask changes nothing but lets the compiler
                // drop the bounds checks below.
                let l = l & (BATCH_LANES - 1);
                keys[l] = kk;
                match self.direct.get(kk.top(self.direct_bits)) {
                    Some(&e) if e < LEAF => {
                        next[l] = e;
                        active |= 1 << l;
                    }
                    Some(&e) => found(base + l, (e != NO_ROUTE).then_some(e & !LEAF)),
                    None => found(base + l, None),
                }
            }
            while active != 0 {
                let mut pass = active;
                while pass != 0 {
                    // Below BATCH_LANES (16): `pass` is a non-zero u16.
                    let l = pass.trailing_zeros() as usize & (BATCH_LANES - 1);
                    pass &= pass - 1;
                    let (k, o) = (keys[l], depth[l]);
                    let answer = match self.nodes.get(idx(next[l])) {
                        None => Err(None),
                        Some(node) => self.step(node, k, o),
                    };
                    match answer {
                        Ok((node, o)) => (next[l], depth[l]) = (node, o),
                        Err(answer) => {
                            active &= !(1 << l);
                            found(base + l, answer);
                        }
                    }
                }
            }
            base += lanes;
        }
    }

    /// One level of a lookup of `key` at `node`, reached at depth `o`: the next node and its
    /// depth, or the answer.
    #[inline(always)]
    fn step<K: Key>(&self, node: &Node, key: K, o: u32) -> Result<(u32, u32), Option<RouteId>> {
        let mut o = o;
        if node.path & SKIP_LEN != 0 {
            o = self.skip(node, key, o)?;
        }
        let v = key.chunk(o);
        if node.vector & (1u64 << v) == 0 {
            return Err(self.leaf(node, v));
        }
        let below = node.vector & !(u64::MAX << v);
        Ok((node.base1.wrapping_add(below.count_ones()), o + STRIDE))
    }

    /// [`Trie::lookup_each`] over `addrs`, into `out`, for every `i` both slices have.
    #[inline]
    fn lookup_batch<A: Copy, K: Key>(
        &self,
        addrs: &[A],
        out: &mut [Option<RouteId>],
        key: impl Fn(A) -> K,
    ) {
        let n = addrs.len().min(out.len());
        self.lookup_each(
            n,
            |i| addrs.get(i).map(|&a| key(a)),
            |i, r| {
                if let Some(o) = out.get_mut(i) {
                    *o = r;
                }
            },
        );
    }

    /// Checks the address against the path of `node`, reached at depth `o`: the depth of the
    /// node's own 6 bits, or, for an address that leaves the path, the answer.
    #[inline(always)]
    fn skip<K: Key>(&self, node: &Node, key: K, o: u32) -> Result<u32, Option<RouteId>> {
        let len = u32::try_from(node.path & SKIP_LEN).unwrap_or(0);
        if (key.bits64(o) ^ node.path) & !(u64::MAX >> len) != 0 {
            let leaf = if node.path & INLINE != 0 {
                node.base0
            } else {
                *self
                    .leaves
                    .get(idx(node.base0).wrapping_sub(1))
                    .ok_or(None)?
            };
            return Err((leaf != NO_ROUTE).then_some(leaf));
        }
        Ok(o + len)
    }

    /// The answer of leaf slot `v` of `node`.
    #[inline(always)]
    fn leaf(&self, node: &Node, v: u32) -> Option<RouteId> {
        let leaf = if node.path & INLINE != 0 {
            if node.leafvec & (1u64 << v) != 0 {
                node.base1
            } else {
                node.base0
            }
        } else {
            let upto = node.leafvec & (u64::MAX >> (63 - v));
            *self
                .leaves
                .get((idx(node.base0) + idx(upto.count_ones())).wrapping_sub(1))?
        };
        (leaf != NO_ROUTE).then_some(leaf)
    }

    /// Heap and inline bytes.
    fn memory_bytes(&self) -> usize {
        size_of::<Trie>()
            + size_of_val::<[u32]>(&self.direct)
            + size_of_val::<[Node]>(&self.nodes)
            + size_of_val::<[u32]>(&self.leaves)
            + size_of_val::<[SmallRoute]>(&self.small)
    }
}

/// A route on its way into the trie: the prefix left-aligned in a `u128` with host bits
/// cleared.
#[derive(Debug, Clone, Copy)]
struct Route {
    /// The prefix, left-aligned (IPv4 in the top 32 bits).
    key: u128,
    /// The prefix length.
    len: u8,
    /// The value.
    id: u32,
}

/// The mask of a left-aligned prefix of `len` bits (`len <= 128`).
fn prefix_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The prefixes of `routes` (left-aligned keys), checked against `width`, host bits cleared,
/// sorted by (key, length), duplicates resolved in favour of the last one given.
fn normalize(
    routes: impl ExactSizeIterator<Item = (u128, u8, RouteId)>,
    width: u8,
) -> Result<Vec<Route>, LpmError> {
    let mut v = Vec::with_capacity(routes.len());
    for (key, len, id) in routes {
        if len > width {
            return Err(LpmError::BadPrefixLen(len));
        }
        if id == NO_ROUTE {
            return Err(LpmError::ReservedRouteId);
        }
        v.push(Route {
            key: key & prefix_mask(len),
            len,
            id,
        });
    }
    // Reversed, then a stable sort: of equal prefixes the last given comes first and is kept.
    v.reverse();
    v.sort_by_key(|r| (r.key, r.len));
    v.dedup_by_key(|r| (r.key, r.len));
    Ok(v)
}

/// The direct array size for `n` distinct prefixes of `width` bits: the largest of
/// [`DIRECT_BITS`] with `2^s <= 8n`, so the array never outweighs the nodes by much (at most
/// 32 bytes a prefix, the size of one node); [`V4_WIDE_DIRECT`] for an IPv4 table of
/// [`V4_WIDE_FROM`] prefixes or more.
fn direct_bits_for(n: usize, width: u8) -> u32 {
    if width == 32 && n >= V4_WIDE_FROM {
        return V4_WIDE_DIRECT;
    }
    DIRECT_BITS
        .iter()
        .copied()
        .filter(|&s| (1usize << s) <= n.saturating_mul(8))
        .max()
        .unwrap_or(0)
}

/// `w` bits of a left-aligned key starting at bit `o` (zero-padded past bit 127), `w <= 20`.
fn bits(key: u128, o: u32, w: u32) -> usize {
    if w == 0 {
        return 0;
    }
    let x = key.checked_shl(o).unwrap_or(0) >> (128 - w);
    usize::try_from(x).unwrap_or(0)
}

/// What building a subtree produced.
enum Built {
    /// Every address in it has the same answer.
    Leaf(u32),
    /// A node (not yet placed in `nodes`).
    Node(Node),
}

/// The build's growing arrays.
struct Builder {
    /// [`Trie::nodes`] so far.
    nodes: Vec<Node>,
    /// [`Trie::leaves`] so far.
    leaves: Vec<u32>,
    /// Nodes holding one leaf, for ids that do not fit a direct entry, by id.
    big_ids: FxHashMap<u32, u32>,
}

impl Builder {
    /// Fills `vals` (`2^w` slots of the region at depth `o`) with the value of the longest
    /// route of length in `(o, o + w]` covering each slot, or `inherited`, and builds the
    /// subtrees of slots that longer routes start in. `routes` are those inside the region,
    /// sorted; routes of length `<= o` among them are ignored (the parent accounted for them).
    /// Returns the child nodes with their slots, in slot order; slots whose subtree collapsed
    /// to a leaf get that leaf's value in `vals`.
    fn level(
        &mut self,
        o: u32,
        w: u32,
        routes: &[Route],
        inherited: u32,
        vals: &mut [u32],
    ) -> Result<Vec<(usize, Node)>, LpmError> {
        let end = o + w;
        vals.fill(inherited);
        let mut short: Vec<&Route> = routes
            .iter()
            .filter(|r| (o + 1..=end).contains(&u32::from(r.len)))
            .collect();
        // Longer routes paint over shorter ones; equal lengths never overlap.
        short.sort_by_key(|r| r.len);
        for r in short {
            let start = bits(r.key, o, w);
            let n = 1usize << (end - u32::from(r.len));
            if let Some(run) = vals.get_mut(start..start + n) {
                run.fill(r.id);
            }
        }
        let mut kids = Vec::new();
        let mut rest = routes;
        while let Some(first) = rest.iter().position(|r| u32::from(r.len) > end) {
            rest = &rest[first..];
            let slot = bits(rest[0].key, o, w);
            let n = rest
                .iter()
                .take_while(|r| bits(r.key, o, w) == slot)
                .count();
            let inherited = vals.get(slot).copied().unwrap_or(NO_ROUTE);
            match self.subtree(end, &rest[..n], inherited)? {
                Built::Leaf(v) => {
                    if let Some(s) = vals.get_mut(slot) {
                        *s = v;
                    }
                }
                Built::Node(node) => kids.push((slot, node)),
            }
            rest = &rest[n..];
        }
        Ok(kids)
    }

    /// Builds the subtree of the region at depth `d` (`routes` as for [`Builder::level`]).
    /// Levels that would each hold one child and nothing else (every route passes through them,
    /// none ends or branches before their end) become the `path` of the node below them.
    fn subtree(&mut self, d: u32, routes: &[Route], inherited: u32) -> Result<Built, LpmError> {
        let mut long = routes.iter().filter(|r| u32::from(r.len) > d);
        let Some(first) = long.next() else {
            return Ok(Built::Leaf(inherited));
        };
        let len = u32::from(first.len);
        let (mut common, mut shortest, mut longest) = (128, len, len);
        for r in long.clone() {
            common = common.min((r.key ^ first.key).leading_zeros());
            shortest = shortest.min(u32::from(r.len));
            longest = longest.max(u32::from(r.len));
        }
        // The path stops where the first route ends or two differ, and before the longest
        // ends, so that the node's own 6 bits start inside the address.
        let stop = common.min(shortest).min(longest.saturating_sub(1));
        let levels = (stop.saturating_sub(d) / STRIDE).min(MAX_SKIP_LEVELS);
        if levels == 0 {
            return self.node(d, 0, routes, inherited, inherited);
        }
        let bits = levels * STRIDE;
        let key = u64::try_from(first.key.checked_shl(d).unwrap_or(0) >> 64).unwrap_or(0);
        let path = key & !(u64::MAX >> bits) | u64::from(bits);
        // A route may end exactly where the path does: it covers all of the node below.
        let covering = routes
            .iter()
            .rev()
            .find(|r| u32::from(r.len) == d + bits)
            .map_or(inherited, |r| r.id);
        self.node(d + bits, path, routes, covering, inherited)
    }

    /// Builds the node whose 6 bits start at depth `o`, behind `path` (see [`Node::path`]),
    /// holding `routes`. Addresses not covered by a route longer than `o` answer `inherited`;
    /// addresses that leave the path answer `fallback`.
    fn node(
        &mut self,
        o: u32,
        path: u64,
        routes: &[Route],
        inherited: u32,
        fallback: u32,
    ) -> Result<Built, LpmError> {
        let mut vals = [NO_ROUTE; 64];
        let kids = self.level(o, STRIDE, routes, inherited, &mut vals)?;
        let vector = kids.iter().fold(0u64, |acc, &(s, _)| acc | 1 << s);
        let fallback = (path != 0).then_some(fallback);
        let is_leaf = |s: usize| vector & 1 << s == 0;
        // Every answer the node can give: the fallback, then the leaf slots' values in order.
        let answers = || {
            let leaves = vals.iter().enumerate().filter(|&(s, _)| is_leaf(s));
            fallback.into_iter().chain(leaves.map(|(_, &v)| v))
        };
        let a = answers().next().unwrap_or(NO_ROUTE);
        let b = answers().find(|&v| v != a);
        if vector == 0 && b.is_none() {
            return Ok(Built::Leaf(a));
        }
        let mut node = Node {
            vector,
            path,
            ..Node::default()
        };
        match b {
            None => (node.path, node.base0) = (path | INLINE, a),
            Some(b) if vector == 0 && answers().all(|v| v == a || v == b) => {
                let bs = vals.iter().enumerate().filter(|&(_, &v)| v == b);
                node.leafvec = bs.fold(0, |acc, (s, _)| acc | 1 << s);
                (node.path, node.base0, node.base1) = (path | INLINE, a, b);
            }
            Some(_) => {
                // The fallback goes just before the runs.
                let mut runs: Vec<u32> = fallback.into_iter().collect();
                let before = runs.len();
                for (s, &v) in vals.iter().enumerate().filter(|&(s, _)| is_leaf(s)) {
                    if runs.len() == before || runs.last() != Some(&v) {
                        node.leafvec |= 1 << s;
                        runs.push(v);
                    }
                }
                node.base0 = self.push_leaves(&runs)? + u32::from(fallback.is_some());
            }
        }
        if vector != 0 {
            node.base1 = self.push_nodes(kids.into_iter().map(|(_, n)| n))?;
        }
        Ok(Built::Node(node))
    }

    /// Appends `leaves` contiguously; returns the index of the first.
    fn push_leaves(&mut self, leaves: &[u32]) -> Result<u32, LpmError> {
        let base = self.leaves.len();
        self.leaves.extend_from_slice(leaves);
        u32::try_from(self.leaves.len()).map_err(|_| LpmError::TooLarge)?;
        u32::try_from(base).map_err(|_| LpmError::TooLarge)
    }

    /// Appends `nodes` contiguously; returns the index of the first.
    fn push_nodes(&mut self, nodes: impl IntoIterator<Item = Node>) -> Result<u32, LpmError> {
        let base = self.nodes.len();
        self.nodes.extend(nodes);
        if self.nodes.len() > idx(LEAF) {
            return Err(LpmError::TooLarge);
        }
        u32::try_from(base).map_err(|_| LpmError::TooLarge)
    }

    /// The direct entry answering `id` (or nothing, for `NO_ROUTE`).
    fn leaf_entry(&mut self, id: u32) -> Result<u32, LpmError> {
        if id == NO_ROUTE || id < LEAF - 1 {
            return Ok(id | LEAF);
        }
        if let Some(&n) = self.big_ids.get(&id) {
            return Ok(n);
        }
        let n = self.push_nodes([Node {
            base0: id,
            path: INLINE,
            ..Node::default()
        }])?;
        self.big_ids.insert(id, n);
        Ok(n)
    }
}

/// Builds a trie from normalized `routes` with a direct array of `s` bits.
fn build_trie(routes: &[Route], s: u32) -> Result<Trie, LpmError> {
    let default = routes
        .iter()
        .rev()
        .find(|r| r.len == 0)
        .map_or(NO_ROUTE, |r| r.id);
    let mut b = Builder {
        nodes: Vec::new(),
        leaves: Vec::new(),
        big_ids: FxHashMap::default(),
    };
    let mut vals = vec![NO_ROUTE; 1 << s];
    let kids = b.level(0, s, routes, default, &mut vals)?;
    let mut direct = Vec::with_capacity(vals.len());
    let mut kids = kids.into_iter().peekable();
    for (slot, &v) in vals.iter().enumerate() {
        let e = match kids.next_if(|&(k, _)| k == slot) {
            Some((_, node)) => b.push_nodes([node])?,
            None => b.leaf_entry(v)?,
        };
        direct.push(e);
    }
    Ok(Trie {
        direct: direct.into_boxed_slice(),
        nodes: b.nodes.into_boxed_slice(),
        leaves: b.leaves.into_boxed_slice(),
        direct_bits: s,
        len: routes.len(),
        small: Box::default(),
    })
}

/// Normalizes and builds, choosing the direct array size from the number of prefixes.
fn build(
    routes: impl ExactSizeIterator<Item = (u128, u8, RouteId)>,
    width: u8,
) -> Result<Trie, LpmError> {
    let routes = normalize(routes, width)?;
    let mut trie = build_trie(&routes, direct_bits_for(routes.len(), width))?;
    trie.small = small_list(&routes);
    Ok(trie)
}

/// The prefixes of a table of at most [`SMALL_MAX`], longest first (so the first that
/// matches is the longest); none for a larger table.
fn small_list(routes: &[Route]) -> Box<[SmallRoute]> {
    if routes.len() > SMALL_MAX {
        return Box::default();
    }
    let mut v = routes.to_vec();
    v.sort_by_key(|r| std::cmp::Reverse(r.len));
    v.iter()
        .map(|r| SmallRoute {
            prefix: r.key,
            mask: prefix_mask(r.len),
            id: r.id,
        })
        .collect()
}

/// An IPv4 longest-prefix-match table. Immutable; build a new one to change it.
#[derive(Debug, Clone)]
pub struct Lpm4 {
    trie: Trie,
}

impl Lpm4 {
    /// Builds from (prefix, prefix length, value); host bits beyond the length are ignored; the
    /// last of duplicate prefixes wins. Lengths over 32 are refused with
    /// [`LpmError::BadPrefixLen`], the id `u32::MAX` with [`LpmError::ReservedRouteId`].
    pub fn build(routes: &[(Ipv4Addr, u8, RouteId)]) -> Result<Lpm4, LpmError> {
        let keys = routes
            .iter()
            .map(|&(a, len, id)| (u128::from(u32::from(a)) << 96, len, id));
        Ok(Lpm4 {
            trie: build(keys, 32)?,
        })
    }

    /// The value of the longest prefix containing `addr`, if any.
    #[inline]
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<RouteId> {
        self.trie.lookup(u32::from(addr))
    }

    /// Looks up `addrs[i]` into `out[i]` for every `i` both slices have, with the same answers
    /// as [`lookup`](Self::lookup): the lookups walk the trie side by side so that their cache
    /// misses overlap. Alone, IPv4 paths are too short for this to beat one lookup at a time;
    /// in the pipeline ([`lookup_each`](Self::lookup_each)), for tables bigger than the caches,
    /// each lookup would otherwise wait for memory in turn between the rest of a packet's work.
    #[inline]
    pub fn lookup_batch(&self, addrs: &[Ipv4Addr], out: &mut [Option<RouteId>]) {
        self.trie.lookup_batch(addrs, out, u32::from);
    }

    /// [`lookup_batch`](Self::lookup_batch) without the slices: looks up `addr(i)` for every
    /// `i < n` and hands the answer to `found(i, _)`, in no particular order. A `None` address
    /// is skipped.
    #[inline]
    pub fn lookup_each(
        &self,
        n: usize,
        addr: impl Fn(usize) -> Option<Ipv4Addr>,
        found: impl FnMut(usize, Option<RouteId>),
    ) {
        self.trie.lookup_each(n, |i| addr(i).map(u32::from), found);
    }

    /// The number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.trie.len
    }

    /// Whether the table has no route at all.
    pub fn is_empty(&self) -> bool {
        self.trie.len == 0
    }

    /// The memory the table occupies, its own size included.
    pub fn memory_bytes(&self) -> usize {
        self.trie.memory_bytes()
    }
}

/// An IPv6 longest-prefix-match table. Immutable; build a new one to change it.
#[derive(Debug, Clone)]
pub struct Lpm6 {
    trie: Trie,
}

impl Lpm6 {
    /// Builds from (prefix, prefix length, value); host bits beyond the length are ignored; the
    /// last of duplicate prefixes wins. Lengths over 128 are refused with
    /// [`LpmError::BadPrefixLen`], the id `u32::MAX` with [`LpmError::ReservedRouteId`].
    pub fn build(routes: &[(Ipv6Addr, u8, RouteId)]) -> Result<Lpm6, LpmError> {
        let keys = routes.iter().map(|&(a, len, id)| (u128::from(a), len, id));
        Ok(Lpm6 {
            trie: build(keys, 128)?,
        })
    }

    /// The value of the longest prefix containing `addr`, if any.
    #[inline]
    pub fn lookup(&self, addr: Ipv6Addr) -> Option<RouteId> {
        self.trie.lookup(u128::from(addr))
    }

    /// Looks up `addrs[i]` into `out[i]` for every `i` both slices have (the rest of the longer
    /// one is left alone), with the same answers as [`lookup`](Self::lookup). The lookups of a
    /// batch walk the trie side by side, so their cache misses overlap: faster than one at a
    /// time when most addresses match long prefixes in a table bigger than the cache, slower
    /// (by a few ns a lookup) when they end in the first levels.
    #[inline]
    pub fn lookup_batch(&self, addrs: &[Ipv6Addr], out: &mut [Option<RouteId>]) {
        self.trie.lookup_batch(addrs, out, u128::from);
    }

    /// [`lookup_batch`](Self::lookup_batch) without the slices: looks up `addr(i)` for every
    /// `i < n` and hands the answer to `found(i, _)`, in no particular order. A `None` address
    /// is skipped.
    #[inline]
    pub fn lookup_each(
        &self,
        n: usize,
        addr: impl Fn(usize) -> Option<Ipv6Addr>,
        found: impl FnMut(usize, Option<RouteId>),
    ) {
        self.trie.lookup_each(n, |i| addr(i).map(u128::from), found);
    }

    /// The number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.trie.len
    }

    /// Whether the table has no route at all.
    pub fn is_empty(&self) -> bool {
        self.trie.len == 0
    }

    /// The memory the table occupies, its own size included.
    pub fn memory_bytes(&self) -> usize {
        self.trie.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a small deterministic generator for the randomized tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn u128(&mut self) -> u128 {
            u128::from(self.next()) << 64 | u128::from(self.next())
        }

        /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Left-aligned mask of `len` bits within a `width`-bit address.
    fn mask(len: u8, width: u8) -> u128 {
        let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        m >> (128 - u32::from(width))
    }

    /// The reference: the routes de-duplicated (last wins), longest first, scanned linearly
    /// for the first that contains the address.
    struct Naive {
        /// (prefix, mask, id), longest prefixes first.
        routes: Vec<(u128, u128, u32)>,
    }

    impl Naive {
        fn new(routes: &[(u128, u8, u32)], width: u8) -> Naive {
            let mut m = std::collections::HashMap::new();
            for &(k, len, id) in routes {
                m.insert((k & mask(len, width), len), id);
            }
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by_key(|&((_, len), _)| std::cmp::Reverse(len));
            Naive {
                routes: v
                    .into_iter()
                    .map(|((k, len), id)| (k, mask(len, width), id))
                    .collect(),
            }
        }

        fn lookup(&self, a: u128) -> Option<u32> {
            self.routes
                .iter()
                .find(|&&(k, m, _)| a & m == k)
                .map(|&(_, _, id)| id)
        }
    }

    /// Builds a table of either family over `width`-bit integers, with a forced direct size.
    fn build_raw(routes: &[(u128, u8, u32)], width: u8, s: Option<u32>) -> Trie {
        let keys = routes
            .iter()
            .map(|&(k, len, id)| (k << (128 - u32::from(width)), len, id));
        let norm = normalize(keys, width).unwrap();
        let s = s.unwrap_or_else(|| direct_bits_for(norm.len(), width));
        build_trie(&norm, s).unwrap()
    }

    fn lookup_raw(t: &Trie, a: u128, width: u8) -> Option<u32> {
        if width == 32 {
            t.lookup(u32::try_from(a).unwrap())
        } else {
            t.lookup(a)
        }
    }

    /// `lookup_batch` over `addrs`, in batches of 64 like the pipeline's.
    fn lookup_batch_raw(t: &Trie, addrs: &[u128], width: u8) -> Vec<Option<u32>> {
        let mut out = vec![Some(12345); addrs.len()];
        for (a, o) in addrs.chunks(64).zip(out.chunks_mut(64)) {
            if width == 32 {
                t.lookup_batch(a, o, |a| u32::try_from(a).unwrap());
            } else {
                t.lookup_batch(a, o, |a| a);
            }
        }
        out
    }

    /// Checks the invariants of the module documentation on every node: each is reached (and,
    /// but for the nodes of large ids, exactly once), its 6 bits start inside the address, its
    /// children and leaves are in range.
    fn check_structure(t: &Trie, width: u32) {
        let mut seen = vec![false; t.nodes.len()];
        let mut stack: Vec<(u32, u32)> = t
            .direct
            .iter()
            .filter(|&&e| e < LEAF)
            .map(|&e| (e, t.direct_bits))
            .collect();
        while let Some((n, depth)) = stack.pop() {
            let i = idx(n);
            // Only the one-leaf nodes of large ids are shared (by direct entries).
            let shared = t.nodes[i]
                == Node {
                    base0: t.nodes[i].base0,
                    path: INLINE,
                    ..Node::default()
                };
            assert!(!seen[i] || shared, "node {n} reached twice");
            seen[i] = true;
            let node = &t.nodes[i];
            let len = u32::try_from(node.path & SKIP_LEN).unwrap();
            assert!(
                len % STRIDE == 0 && len <= MAX_SKIP_LEVELS * STRIDE,
                "{node:?}"
            );
            let o = depth + len;
            assert!(o < width, "node {n} at depth {o}: {node:?}");
            let children = node.vector.count_ones();
            if children > 0 {
                assert!(idx(node.base1) + idx(children) <= t.nodes.len(), "{node:?}");
            }
            if node.path & INLINE == 0 {
                // The runs, and the fallback before them if there is a path.
                assert!(len == 0 || node.base0 >= 1, "{node:?}");
                let runs = idx(node.leafvec.count_ones());
                assert!(
                    runs > 0 && idx(node.base0) + runs <= t.leaves.len(),
                    "{node:?}"
                );
            }
            stack.extend((0..children).map(|c| (node.base1 + c, o + STRIDE)));
        }
        assert!(seen.iter().all(|&s| s), "unreachable nodes");
    }

    /// The first and last address of the prefix and the neighbours just outside it.
    fn boundaries(k: u128, len: u8, width: u8) -> [u128; 4] {
        let top = mask(width, width);
        let first = k & mask(len, width);
        let last = first | (!mask(len, width) & top);
        [
            first,
            last,
            first.wrapping_sub(1) & top,
            last.wrapping_add(1) & top,
        ]
    }

    /// Random routes: half nested under earlier ones (so prefixes overlap at every depth),
    /// lengths spread over the whole range, ids from a small set (so leaves repeat) with
    /// a few ids too large for a direct entry, and some duplicates.
    fn random_routes(rng: &mut Rng, n: usize, width: u8) -> Vec<(u128, u8, u32)> {
        let top = mask(width, width);
        let mut v: Vec<(u128, u8, u32)> = Vec::with_capacity(n);
        for _ in 0..n {
            let len = u8::try_from(rng.below(u64::from(width) + 1)).unwrap();
            let id = match rng.below(50) {
                0 => u32::MAX - 1 - u32::try_from(rng.below(3)).unwrap(),
                1 => LEAF - 1,
                _ => u32::try_from(rng.below(40)).unwrap(),
            };
            let key = match (v.len(), rng.below(4)) {
                (0, _) | (_, 0) => rng.u128() & top,
                (_, 1) => v[usize::try_from(rng.below(v.len() as u64)).unwrap()].0,
                _ => {
                    let (k, l, _) = v[usize::try_from(rng.below(v.len() as u64)).unwrap()];
                    (k & mask(l, width)) | (rng.u128() & !mask(l, width) & top)
                }
            };
            v.push((key, len, id));
        }
        v
    }

    fn check_random(width: u8, seeds: std::ops::Range<u64>, routes: usize, lookups: usize) {
        let top = mask(width, width);
        for seed in seeds {
            let mut rng = Rng(seed);
            let rs = random_routes(&mut rng, routes, width);
            let naive = Naive::new(&rs, width);
            let t = build_raw(&rs, width, None);
            check_structure(&t, u32::from(width));
            assert_eq!(t.len, naive.routes.len());
            // Every kind of node is exercised.
            let count = |f: fn(&Node) -> bool| t.nodes.iter().filter(|n| f(n)).count();
            assert!(count(|n| n.path & SKIP_LEN != 0) > 0, "paths: {t:?}");
            assert!(count(|n| n.path & INLINE != 0) > 0, "inline: {t:?}");
            assert!(count(|n| n.path & INLINE == 0) > 0, "runs: {t:?}");
            let mut addrs: Vec<u128> = rs
                .iter()
                .flat_map(|&(k, l, _)| boundaries(k, l, width))
                .collect();
            for i in 0..lookups {
                addrs.push(if i % 2 == 0 {
                    rng.u128() & top
                } else {
                    // Inside a random route, so long prefixes are exercised too.
                    let (k, l, _) = rs[usize::try_from(rng.below(rs.len() as u64)).unwrap()];
                    (k & mask(l, width)) | (rng.u128() & !mask(l, width) & top)
                });
            }
            let batch = lookup_batch_raw(&t, &addrs, width);
            for (&a, b) in addrs.iter().zip(batch) {
                let want = naive.lookup(a);
                assert_eq!(
                    lookup_raw(&t, a, width),
                    want,
                    "seed {seed}, address {a:#x}"
                );
                assert_eq!(b, want, "batch: seed {seed}, address {a:#x}");
            }
        }
    }

    #[test]
    fn random_v4_against_naive() {
        check_random(32, 1..6, 2000, 100_000);
    }

    #[test]
    fn random_v6_against_naive() {
        check_random(128, 1..6, 2000, 100_000);
    }

    /// Tables of up to [`SMALL_MAX`] prefixes are scanned as a list by `lookup` (and walked as
    /// a trie by `lookup_batch`): both agree with the reference, at every boundary of every
    /// route and at random addresses; one prefix more and the list is gone.
    #[test]
    fn small_tables_scan_a_list_with_the_same_answers() {
        let mut rng = Rng(99);
        for width in [32u8, 128] {
            let top = mask(width, width);
            for seed in 0..400usize {
                let n = seed % (SMALL_MAX + 2);
                let rs = random_routes(&mut rng, n, width);
                let keys = rs
                    .iter()
                    .map(|&(k, len, id)| (k << (128 - u32::from(width)), len, id));
                let t = build(keys, width).unwrap();
                assert_eq!(t.small.is_empty(), t.len == 0 || t.len > SMALL_MAX, "{t:?}");
                let naive = Naive::new(&rs, width);
                let mut addrs: Vec<u128> = rs
                    .iter()
                    .flat_map(|&(k, l, _)| boundaries(k, l, width))
                    .collect();
                addrs.extend((0..64).map(|_| rng.u128() & top));
                let batch = lookup_batch_raw(&t, &addrs, width);
                for (&a, b) in addrs.iter().zip(batch) {
                    let want = naive.lookup(a);
                    assert_eq!(lookup_raw(&t, a, width), want, "seed {seed}, {a:#x}");
                    assert_eq!(b, want, "batch: seed {seed}, {a:#x}");
                }
            }
        }
    }

    /// Every direct array size gives the same answers.
    #[test]
    fn every_direct_size() {
        for width in [32u8, 128] {
            let top = mask(width, width);
            let mut rng = Rng(99);
            let rs = random_routes(&mut rng, 500, width);
            let naive = Naive::new(&rs, width);
            let wide = (width == 32).then_some(V4_WIDE_DIRECT);
            for s in DIRECT_BITS.into_iter().chain(wide) {
                let t = build_raw(&rs, width, Some(s));
                check_structure(&t, u32::from(width));
                for &(k, l, _) in &rs {
                    for a in boundaries(k, l, width) {
                        assert_eq!(lookup_raw(&t, a, width), naive.lookup(a), "s {s}");
                    }
                }
                for _ in 0..5000 {
                    let a = rng.u128() & top;
                    assert_eq!(lookup_raw(&t, a, width), naive.lookup(a), "s {s}");
                }
            }
        }
    }

    /// Routes nested with nothing else around them are reached through node paths; an
    /// address that leaves the innermost route at any bit gets the route it is still in.
    #[test]
    fn paths() {
        let host = v6("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
        let t = Lpm6::build(&[
            (v6("::"), 0, 1),
            (host, 36, 2),
            (host, 64, 3),
            (host, 128, 4),
        ])
        .unwrap();
        assert!(t.trie.nodes.iter().any(|n| n.path & SKIP_LEN != 0), "{t:?}");
        assert!(t.trie.nodes.len() <= 4, "{:?}", t.trie.nodes);
        assert_eq!(t.lookup(host), Some(4));
        for bit in 0..128 {
            let a = Ipv6Addr::from(u128::from(host) ^ 1 << (127 - bit));
            let want = match bit {
                0..36 => 1,
                36..64 => 2,
                _ => 3,
            };
            assert_eq!(t.lookup(a), Some(want), "bit {bit}");
            let mut out = [None; 2];
            t.lookup_batch(&[a, host], &mut out);
            assert_eq!(out, [Some(want), Some(4)], "bit {bit}");
        }
        let host = v4("10.20.30.40");
        let t = Lpm4::build(&[(host, 12, 2), (host, 32, 3)]).unwrap();
        assert!(t.trie.nodes.iter().any(|n| n.path & SKIP_LEN != 0), "{t:?}");
        assert_eq!(t.lookup(host), Some(3));
        for bit in 0..32 {
            let a = Ipv4Addr::from(u32::from(host) ^ 1 << (31 - bit));
            assert_eq!(t.lookup(a), (bit >= 12).then_some(2), "bit {bit}");
            let mut out = [None; 2];
            t.lookup_batch(&[a, host], &mut out);
            assert_eq!(out, [(bit >= 12).then_some(2), Some(3)], "bit {bit}");
        }
    }

    /// `lookup_each` answers every present key exactly once, as `lookup` does, and skips the
    /// absent ones, for any count (none, under one pass of lanes, over several).
    #[test]
    fn lookup_each_answers_present_keys_once() {
        let mut routes = vec![(v4("10.0.0.0"), 8, 1), (v4("10.20.30.40"), 32, 2)];
        routes.extend((0..600u32).map(|i| (Ipv4Addr::from(0x6400_0000 + (i << 8)), 24, 3 + i)));
        let t = Lpm4::build(&routes).unwrap();
        let addrs: Vec<Ipv4Addr> = (0..100u32)
            .map(|i| match i % 4 {
                0 => v4("10.20.30.40"),
                1 => Ipv4Addr::from(0x0a00_0000 + i),
                2 => Ipv4Addr::from(0x6400_0000 + (i << 8) + 7),
                _ => Ipv4Addr::from(0xc000_0000 + i),
            })
            .collect();
        for n in [0, 1, 15, 16, 17, 37, 100] {
            let mut seen = vec![0u32; n];
            let mut got = vec![None; n];
            let key = |i: usize| (i % 3 != 2).then(|| addrs[i]);
            t.lookup_each(n, key, |i, r| {
                seen[i] += 1;
                got[i] = r;
            });
            for i in 0..n {
                match key(i) {
                    Some(a) => {
                        assert_eq!(seen[i], 1, "n {n} key {i}");
                        assert_eq!(got[i], t.lookup(a), "n {n} key {i}");
                    }
                    None => assert_eq!(seen[i], 0, "n {n} key {i}"),
                }
            }
        }
    }

    /// The batch lookup answers as many addresses as both slices have.
    #[test]
    fn batch_lengths() {
        let t = Lpm6::build(&[(v6("a00::"), 8, 1)]).unwrap();
        let addrs: Vec<Ipv6Addr> = (0..100u128).map(|i| Ipv6Addr::from(i << 120)).collect();
        let mut out = vec![Some(7); 40];
        t.lookup_batch(&addrs, &mut out);
        assert_eq!(out[10], Some(1));
        assert_eq!(out.iter().filter(|o| o.is_none()).count(), 39);
        let mut out = vec![Some(7); 200];
        t.lookup_batch(&addrs[..20], &mut out);
        assert_eq!(out[10], Some(1));
        assert_eq!(out[19], None);
        assert_eq!(out[20], Some(7));
        t.lookup_batch(&[], &mut out);
        t.lookup_batch(&addrs, &mut []);
    }

    #[test]
    fn empty_table() {
        let t = Lpm4::build(&[]).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert_eq!(t.lookup(v4("0.0.0.0")), None);
        assert_eq!(t.lookup(v4("255.255.255.255")), None);
        let t = Lpm6::build(&[]).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup(v6("::")), None);
        assert_eq!(
            t.lookup(v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            None
        );
    }

    #[test]
    fn default_route() {
        let t = Lpm4::build(&[(v4("0.0.0.0"), 0, 7)]).unwrap();
        assert_eq!(t.len(), 1);
        for a in ["0.0.0.0", "10.1.2.3", "255.255.255.255"] {
            assert_eq!(t.lookup(v4(a)), Some(7));
        }
        let t = Lpm6::build(&[(v6("::"), 0, 7)]).unwrap();
        for a in [
            "::",
            "2001:db8::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert_eq!(t.lookup(v6(a)), Some(7));
        }
    }

    #[test]
    fn host_routes() {
        let t = Lpm4::build(&[(v4("10.0.0.1"), 32, 1), (v4("255.255.255.255"), 32, 2)]).unwrap();
        assert_eq!(t.lookup(v4("10.0.0.1")), Some(1));
        assert_eq!(t.lookup(v4("10.0.0.0")), None);
        assert_eq!(t.lookup(v4("10.0.0.2")), None);
        assert_eq!(t.lookup(v4("255.255.255.255")), Some(2));
        assert_eq!(t.lookup(v4("255.255.255.254")), None);
        let t = Lpm6::build(&[(v6("2001:db8::1"), 128, 1), (v6("::"), 128, 2)]).unwrap();
        assert_eq!(t.lookup(v6("2001:db8::1")), Some(1));
        assert_eq!(t.lookup(v6("2001:db8::")), None);
        assert_eq!(t.lookup(v6("2001:db8::2")), None);
        assert_eq!(t.lookup(v6("::")), Some(2));
        assert_eq!(t.lookup(v6("::1")), None);
    }

    #[test]
    fn longest_wins_at_every_boundary() {
        let routes = [
            (v4("0.0.0.0"), 0, 0),
            (v4("10.0.0.0"), 8, 8),
            (v4("10.1.0.0"), 16, 16),
            (v4("10.1.2.0"), 24, 24),
            (v4("10.1.2.128"), 25, 25),
            (v4("10.1.2.200"), 32, 32),
        ];
        let t = Lpm4::build(&routes).unwrap();
        let cases = [
            ("9.255.255.255", 0),
            ("10.0.0.0", 8),
            ("10.0.255.255", 8),
            ("10.1.0.0", 16),
            ("10.1.1.255", 16),
            ("10.1.2.0", 24),
            ("10.1.2.127", 24),
            ("10.1.2.128", 25),
            ("10.1.2.199", 25),
            ("10.1.2.200", 32),
            ("10.1.2.201", 25),
            ("10.1.2.255", 25),
            ("10.1.3.0", 16),
            ("10.1.255.255", 16),
            ("10.2.0.0", 8),
            ("10.255.255.255", 8),
            ("11.0.0.0", 0),
        ];
        for (a, want) in cases {
            assert_eq!(t.lookup(v4(a)), Some(want), "{a}");
        }

        let routes = [
            (v6("2001:db8::"), 32, 32),
            (v6("2001:db8:1::"), 48, 48),
            (v6("2001:db8:1:2::"), 64, 64),
            (v6("2001:db8:1:2:8000::"), 65, 65),
            (v6("2001:db8:1:2::9"), 128, 128),
        ];
        let t = Lpm6::build(&routes).unwrap();
        let cases = [
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("2001:db8::", Some(32)),
            ("2001:db8:0:ffff:ffff:ffff:ffff:ffff", Some(32)),
            ("2001:db8:1::", Some(48)),
            ("2001:db8:1:1:ffff:ffff:ffff:ffff", Some(48)),
            ("2001:db8:1:2::", Some(64)),
            ("2001:db8:1:2::8", Some(64)),
            ("2001:db8:1:2::9", Some(128)),
            ("2001:db8:1:2::a", Some(64)),
            ("2001:db8:1:2:7fff:ffff:ffff:ffff", Some(64)),
            ("2001:db8:1:2:8000::", Some(65)),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", Some(65)),
            ("2001:db8:1:3::", Some(48)),
            ("2001:db8:2::", Some(32)),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some(32)),
            ("2001:db9::", None),
        ];
        for (a, want) in cases {
            assert_eq!(t.lookup(v6(a)), want, "{a}");
        }
    }

    #[test]
    fn duplicates_last_wins_and_host_bits_ignored() {
        let t = Lpm4::build(&[
            (v4("10.1.2.3"), 24, 1),
            (v4("10.1.2.0"), 24, 2),
            (v4("10.1.2.255"), 24, 3),
            (v4("10.1.2.77"), 32, 4),
            (v4("10.1.2.77"), 32, 5),
        ])
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(v4("10.1.2.0")), Some(3));
        assert_eq!(t.lookup(v4("10.1.2.77")), Some(5));
        assert_eq!(t.lookup(v4("10.1.3.0")), None);
        let t = Lpm6::build(&[
            (v6("2001:db8::ffff"), 64, 1),
            (v6("2001:db8::"), 64, 2),
            (v6("2001:db8::1"), 0, 3),
        ])
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(v6("2001:db8::5")), Some(2));
        assert_eq!(t.lookup(v6("2001:db9::")), Some(3));
    }

    #[test]
    fn bad_input_refused() {
        assert_eq!(
            Lpm4::build(&[(v4("10.0.0.0"), 8, 1), (v4("10.0.0.0"), 33, 1)]).unwrap_err(),
            LpmError::BadPrefixLen(33)
        );
        assert_eq!(
            Lpm4::build(&[(v4("10.0.0.0"), 255, 1)]).unwrap_err(),
            LpmError::BadPrefixLen(255)
        );
        assert_eq!(
            Lpm6::build(&[(v6("::"), 129, 1)]).unwrap_err(),
            LpmError::BadPrefixLen(129)
        );
        assert_eq!(
            Lpm4::build(&[(v4("10.0.0.0"), 8, u32::MAX)]).unwrap_err(),
            LpmError::ReservedRouteId
        );
        assert_eq!(
            LpmError::BadPrefixLen(33).to_string(),
            "prefix length 33 is longer than the address"
        );
    }

    /// Ids that do not fit a direct entry take the one-leaf-node path.
    #[test]
    fn large_ids() {
        for id in [LEAF - 2, LEAF - 1, LEAF, u32::MAX - 1] {
            let t = Lpm4::build(&[(v4("0.0.0.0"), 0, id), (v4("10.0.0.0"), 8, 1)]).unwrap();
            assert_eq!(t.lookup(v4("11.0.0.0")), Some(id));
            assert_eq!(t.lookup(v4("10.0.0.0")), Some(1));
        }
    }

    /// Thousands of per-tenant tables fit in a node's memory: a few routes take a few cache
    /// lines (the trie, and the list `lookup` scans: 48 bytes a prefix), not a direct array.
    #[test]
    fn small_tables_are_small() {
        let t = Lpm4::build(&[
            (v4("10.0.0.0"), 24, 1),
            (v4("10.0.1.0"), 24, 2),
            (v4("0.0.0.0"), 0, 3),
        ])
        .unwrap();
        assert!(t.memory_bytes() <= 400, "{t:?}");
        let t = Lpm6::build(&[
            (v6("2001:db8:0:1::"), 64, 1),
            (v6("2001:db8:0:2::"), 64, 2),
            (v6("::"), 0, 3),
        ])
        .unwrap();
        assert!(t.memory_bytes() <= 400, "{t:?}");
        assert!(Lpm4::build(&[]).unwrap().memory_bytes() <= 128);
    }

    #[test]
    fn direct_size_grows_with_the_table() {
        for width in [32, 128] {
            assert_eq!(direct_bits_for(0, width), 0);
            assert_eq!(direct_bits_for(3, width), 0);
            assert_eq!(direct_bits_for(7, width), 0);
            assert_eq!(direct_bits_for(8, width), 6);
            assert_eq!(direct_bits_for(511, width), 6);
            assert_eq!(direct_bits_for(512, width), 12);
            assert_eq!(direct_bits_for(1002, width), 12);
            assert_eq!(direct_bits_for(8192, width), 16);
            assert_eq!(direct_bits_for(32_767, width), 16);
            assert_eq!(direct_bits_for(32_768, width), 18);
            assert_eq!(direct_bits_for(65_535, width), 18);
        }
        assert_eq!(direct_bits_for(65_536, 32), 20);
        assert_eq!(direct_bits_for(1 << 20, 32), 20);
        assert_eq!(direct_bits_for(65_536, 128), 18);
        assert_eq!(direct_bits_for(1 << 20, 128), 18);
    }
}
