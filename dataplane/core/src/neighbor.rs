//! The routers' dynamic neighbour cache (ARP for IPv4, NDP for IPv6).
//!
//! Configured bindings come first: the pipeline looks a next hop up in the tables' neighbour
//! bindings before it comes here, so VMs the controller knows about never need resolution. This
//! cache holds the rest (addresses behind a kernel VTEP, VMs with port security off, other routers):
//!
//! ```text
//!   miss ──► Incomplete { probes, next_probe } ──reply──► Reachable { mac, expires }
//!              │  holds up to HOLD_PER_NEIGHBOR packets       │ expires after REACHABLE_TIME
//!              └─ MAX_PROBES unanswered ──► removed; held packets fail (host unreachable)
//! ```
//!
//! Limits: at most [`MAX_PER_ROUTER`] entries per router (one tenant scanning its subnets cannot
//! fill the table for the others) and [`MAX_HELD`] held packets in all. Everything past a limit
//! is refused and counted by the caller.

use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::ids::{RifIdx, RouterIdx};
use crate::packet::PacketBuf;
use crate::time::Timestamp;
use crate::wire::MacAddr;

/// Packets held per unresolved neighbour (Linux's default `unres_qlen_bytes` holds a few).
pub const HOLD_PER_NEIGHBOR: usize = 4;
/// Packets held in all.
pub const MAX_HELD: usize = 512;
/// Entries per router.
pub const MAX_PER_ROUTER: usize = 1024;
/// Time between probes of an unresolved neighbour.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Probes before giving up.
pub const MAX_PROBES: u8 = 3;
/// How long a learned neighbour is used before it is resolved again.
pub const REACHABLE_TIME: Duration = Duration::from_secs(300);

/// A neighbour: an address on a router interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighKey {
    /// The interface.
    pub rif: RifIdx,
    /// The address.
    pub addr: IpAddr,
}

/// A packet waiting for its next hop's MAC.
#[derive(Debug)]
pub struct Held {
    /// The packet, routed (TTL decremented) but with its Ethernet header as received.
    pub buf: PacketBuf,
    /// The interface it came in on (for the error if resolution fails).
    pub ingress: RifIdx,
}

#[derive(Debug)]
enum State {
    Incomplete { probes: u8, next_probe: Timestamp },
    Reachable { mac: MacAddr, expires: Timestamp },
}

#[derive(Debug)]
struct Entry {
    router: RouterIdx,
    state: State,
    held: Vec<Held>,
}

/// What to do about a next hop that is not resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// A new resolution: send a probe now.
    Probe,
    /// Resolution already under way: just wait.
    Pending,
    /// The router's share of the table is used up.
    Full,
}

/// What [`NeighborCache::handle_timeout`] asks of the caller.
#[derive(Debug)]
pub enum Timer {
    /// Probe this neighbour again.
    Probe(NeighKey),
    /// This neighbour did not answer: these held packets fail.
    Failed(NeighKey, Vec<Held>),
}

/// The cache of one worker.
#[derive(Debug, Default)]
pub struct NeighborCache {
    map: FxHashMap<NeighKey, Entry>,
    per_router: FxHashMap<RouterIdx, usize>,
    held: usize,
    next_deadline: Option<Timestamp>,
}

impl NeighborCache {
    /// An empty cache.
    pub fn new() -> NeighborCache {
        NeighborCache::default()
    }

    /// The MAC of a reachable neighbour.
    #[inline]
    pub fn lookup(&self, key: NeighKey, now: Timestamp) -> Option<MacAddr> {
        match self.map.get(&key)?.state {
            State::Reachable { mac, expires } if now < expires => Some(mac),
            _ => None,
        }
    }

    /// Notes that `key` is needed and unresolved at `now`.
    pub fn miss(&mut self, key: NeighKey, router: RouterIdx, now: Timestamp) -> Miss {
        if let Some(e) = self.map.get_mut(&key) {
            return match e.state {
                State::Incomplete { .. } => Miss::Pending,
                State::Reachable { .. } => {
                    // Expired: resolve again, keeping the entry.
                    let next_probe = now.plus(PROBE_INTERVAL);
                    e.state = State::Incomplete {
                        probes: 1,
                        next_probe,
                    };
                    self.note_deadline(next_probe);
                    Miss::Probe
                }
            };
        }
        let n = self.per_router.entry(router).or_insert(0);
        if *n >= MAX_PER_ROUTER {
            return Miss::Full;
        }
        *n += 1;
        let next_probe = now.plus(PROBE_INTERVAL);
        self.map.insert(
            key,
            Entry {
                router,
                state: State::Incomplete {
                    probes: 1,
                    next_probe,
                },
                held: Vec::new(),
            },
        );
        self.note_deadline(next_probe);
        Miss::Probe
    }

    /// Holds a packet until `key` resolves. Gives it back when the neighbour's queue or the
    /// cache's budget is full, or `key` is not being resolved.
    pub fn hold(&mut self, key: NeighKey, pkt: Held) -> Result<(), Held> {
        if self.held >= MAX_HELD {
            return Err(pkt);
        }
        match self.map.get_mut(&key) {
            Some(e)
                if matches!(e.state, State::Incomplete { .. })
                    && e.held.len() < HOLD_PER_NEIGHBOR =>
            {
                e.held.push(pkt);
                self.held += 1;
                Ok(())
            }
            _ => Err(pkt),
        }
    }

    /// Records that `key` is at `mac` (an ARP reply or neighbour advertisement for an address
    /// the router asked about or already knows). Held packets are moved to `release`. Unsolicited
    /// news about a neighbour nobody asked for is ignored, so a VM cannot fill the cache.
    pub fn confirm(
        &mut self,
        key: NeighKey,
        mac: MacAddr,
        now: Timestamp,
        release: &mut Vec<Held>,
    ) -> bool {
        let Some(e) = self.map.get_mut(&key) else {
            return false;
        };
        e.state = State::Reachable {
            mac,
            expires: now.plus(REACHABLE_TIME),
        };
        self.held -= e.held.len();
        release.append(&mut e.held);
        true
    }

    /// When [`NeighborCache::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_deadline
    }

    fn note_deadline(&mut self, t: Timestamp) {
        self.next_deadline = Some(self.next_deadline.map_or(t, |d| d.min(t)));
    }

    /// Runs due probes and failures, and forgets long-expired entries. Reports what the caller
    /// must do in `out`.
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut Vec<Timer>) {
        match self.next_deadline {
            Some(d) if d <= now => {}
            _ => return,
        }
        let mut next: Option<Timestamp> = None;
        let mut gone: Vec<NeighKey> = Vec::new();
        for (key, e) in &mut self.map {
            match &mut e.state {
                State::Incomplete { probes, next_probe } => {
                    if *next_probe <= now {
                        if *probes >= MAX_PROBES {
                            gone.push(*key);
                            continue;
                        }
                        *probes += 1;
                        *next_probe = now.plus(PROBE_INTERVAL);
                        out.push(Timer::Probe(*key));
                    }
                    next = Some(next.map_or(*next_probe, |n| n.min(*next_probe)));
                }
                State::Reachable { expires, .. } => {
                    // Keep expired entries a while (they are re-resolved on use), then forget.
                    let forget = expires.plus(REACHABLE_TIME);
                    if forget <= now {
                        gone.push(*key);
                    } else {
                        next = Some(next.map_or(forget, |n| n.min(forget)));
                    }
                }
            }
        }
        for key in gone {
            if let Some(e) = self.map.remove(&key) {
                if let Some(n) = self.per_router.get_mut(&e.router) {
                    *n = n.saturating_sub(1);
                }
                self.held -= e.held.len();
                if matches!(e.state, State::Incomplete { .. }) {
                    out.push(Timer::Failed(key, e.held));
                }
            }
        }
        self.next_deadline = next;
    }

    /// Forgets everything (router interfaces are renumbered by a configuration swap); held
    /// packets are handed to `drop`.
    pub fn clear(&mut self, mut drop: impl FnMut(Held)) {
        for (_, e) in self.map.drain() {
            e.held.into_iter().for_each(&mut drop);
        }
        self.per_router.clear();
        self.held = 0;
        self.next_deadline = None;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn key(i: u8) -> NeighKey {
        NeighKey {
            rif: RifIdx(0),
            addr: IpAddr::from([10, 0, 0, i]),
        }
    }

    fn held() -> Held {
        Held {
            buf: PacketBuf::new(256),
            ingress: RifIdx(1),
        }
    }

    fn secs(s: u64) -> Timestamp {
        Timestamp(s * 1_000_000_000)
    }

    #[test]
    fn resolve_and_release() {
        let mut c = NeighborCache::new();
        let r = RouterIdx(0);
        assert_eq!(c.lookup(key(5), secs(1)), None);
        assert_eq!(c.miss(key(5), r, secs(1)), Miss::Probe);
        assert_eq!(c.miss(key(5), r, secs(1)), Miss::Pending);
        for _ in 0..HOLD_PER_NEIGHBOR {
            c.hold(key(5), held()).unwrap();
        }
        assert!(c.hold(key(5), held()).is_err(), "per-neighbour queue");
        assert!(c.hold(key(6), held()).is_err(), "not being resolved");
        let mut rel = Vec::new();
        assert!(c.confirm(key(5), MAC, secs(2), &mut rel));
        assert_eq!(rel.len(), HOLD_PER_NEIGHBOR);
        assert_eq!(c.held(), 0);
        assert_eq!(c.lookup(key(5), secs(3)), Some(MAC));
        // Expired: used no more, resolved again.
        assert_eq!(c.lookup(key(5), secs(2 + 300)), None);
        assert_eq!(c.miss(key(5), r, secs(2 + 300)), Miss::Probe);
        // Nobody asked about key(7): not cached.
        assert!(!c.confirm(key(7), MAC, secs(3), &mut rel));
        assert_eq!(c.lookup(key(7), secs(3)), None);
    }

    #[test]
    fn probes_then_failure() {
        let mut c = NeighborCache::new();
        c.miss(key(5), RouterIdx(0), secs(10));
        c.hold(key(5), held()).unwrap();
        let mut out = Vec::new();
        c.handle_timeout(secs(10), &mut out);
        assert!(out.is_empty(), "nothing due yet");
        assert_eq!(c.poll_timeout(), Some(secs(11)));
        c.handle_timeout(secs(11), &mut out);
        c.handle_timeout(secs(12), &mut out);
        assert_eq!(
            out.iter().filter(|t| matches!(t, Timer::Probe(_))).count(),
            2
        );
        out.clear();
        c.handle_timeout(secs(13), &mut out);
        match out.as_slice() {
            [Timer::Failed(k, h)] => {
                assert_eq!(*k, key(5));
                assert_eq!(h.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(c.is_empty());
        assert_eq!(c.held(), 0);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn per_router_limit_protects_other_tenants() {
        let mut c = NeighborCache::new();
        for i in 0..MAX_PER_ROUTER {
            let [_, _, hi, lo] = u32::try_from(i).unwrap().to_be_bytes();
            let k = NeighKey {
                rif: RifIdx(0),
                addr: IpAddr::from([10, 1, hi, lo]),
            };
            assert_eq!(c.miss(k, RouterIdx(0), secs(1)), Miss::Probe);
        }
        assert_eq!(c.miss(key(1), RouterIdx(0), secs(1)), Miss::Full);
        assert_eq!(
            c.miss(
                NeighKey {
                    rif: RifIdx(9),
                    addr: IpAddr::from([10, 9, 9, 9])
                },
                RouterIdx(1),
                secs(1)
            ),
            Miss::Probe
        );
        let mut n = 0;
        c.clear(|_| n += 1);
        assert!(c.is_empty());
    }
}
