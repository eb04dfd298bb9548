//! The forwarding database of one worker: configured (static) entries and learned ones in one
//! hash table, so a destination lookup is a single probe.
//!
//! - Static entries come from the [`Tables`] (local ports and remote bindings). They never age
//!   and learning never overrides them.
//! - Learned entries come from frames the pipeline sees: from remote VTEPs (a MAC the controller
//!   did not tell us about, e.g. behind a kernel VTEP) and from local ports without port
//!   security. Each segment may hold at most `max_per_segment` of them, so one tenant cannot
//!   fill the table; they are forgotten `aging_secs` after they were last seen.
//! - On a table swap, [`Fdb::rebuild`] starts from the new static entries and carries over every
//!   learned entry whose segment (by VNI), port (by name) or VTEP (by address) still exists.
//!
//! Timestamps are whole seconds ([`Timestamp::secs`]): entries stay 16 bytes and the refresh on
//! every packet is a compare, not a write, within the same second.

use rustc_hash::FxHashMap;

use crate::ids::{PortIdx, SegIdx, VtepIdx};
use crate::tables::{FdbDest, Tables, fdb_key};
use crate::time::Timestamp;
use crate::wire::MacAddr;

/// One FDB entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// Where the MAC lives.
    pub dest: FdbDest,
    /// Learned (ages) rather than configured.
    pub learned: bool,
    /// When it was last seen, in [`Timestamp::secs`]; 0 for static entries.
    pub seen: u32,
}

/// What [`Fdb::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// The MAC was already known at this place (the entry is refreshed).
    Known,
    /// A new entry.
    Learned,
    /// A learned entry moved to a new place.
    Moved,
    /// Not learned: the segment has reached its limit.
    Limited,
    /// Not learned: learning is off.
    Disabled,
    /// The configuration places this MAC elsewhere; the entry is not changed.
    Conflict(FdbDest),
}

/// One worker's FDB.
#[derive(Debug)]
pub struct Fdb {
    map: FxHashMap<u64, FdbEntry>,
    learned_per_seg: Vec<u32>,
    enabled: bool,
    aging_secs: u32,
    max_per_segment: u32,
}

impl Fdb {
    /// An FDB holding the static entries of `t`.
    pub fn new(t: &Tables) -> Fdb {
        let mut map = FxHashMap::default();
        map.reserve(t.static_fdb_entries().count() + 1024);
        for (k, dest) in t.static_fdb_entries() {
            map.insert(
                k,
                FdbEntry {
                    dest,
                    learned: false,
                    seen: 0,
                },
            );
        }
        Fdb {
            map,
            learned_per_seg: vec![0; t.segments.len()],
            enabled: t.learning.enabled,
            aging_secs: t.learning.aging_secs,
            max_per_segment: t.learning.max_per_segment,
        }
    }

    /// Where `mac` lives in `seg`.
    #[inline]
    pub fn lookup(&self, seg: SegIdx, mac: MacAddr) -> Option<FdbEntry> {
        self.map.get(&fdb_key(seg, mac)).copied()
    }

    /// Records that `mac` was seen at `dest` in `seg` at `now` (seconds).
    #[inline]
    pub fn learn(&mut self, seg: SegIdx, mac: MacAddr, dest: FdbDest, now: u32) -> LearnOutcome {
        let key = fdb_key(seg, mac);
        if let Some(e) = self.map.get_mut(&key) {
            if !e.learned {
                return if e.dest == dest {
                    LearnOutcome::Known
                } else {
                    LearnOutcome::Conflict(e.dest)
                };
            }
            if e.seen != now {
                e.seen = now;
            }
            if e.dest == dest {
                return LearnOutcome::Known;
            }
            e.dest = dest;
            return LearnOutcome::Moved;
        }
        if !self.enabled {
            return LearnOutcome::Disabled;
        }
        let Some(count) = self.learned_per_seg.get_mut(seg.get()) else {
            return LearnOutcome::Limited;
        };
        if *count >= self.max_per_segment {
            return LearnOutcome::Limited;
        }
        *count += 1;
        self.map.insert(
            key,
            FdbEntry {
                dest,
                learned: true,
                seen: now,
            },
        );
        LearnOutcome::Learned
    }

    /// Forgets learned entries not seen for the aging time. Returns how many were removed.
    pub fn age(&mut self, now: Timestamp) -> u64 {
        let now = now.secs();
        let aging = self.aging_secs;
        let mut removed = 0u64;
        let per_seg = &mut self.learned_per_seg;
        self.map.retain(|k, e| {
            let keep = !e.learned || now.saturating_sub(e.seen) < aging;
            if !keep {
                removed += 1;
                if let Some(c) = per_seg.get_mut(seg_of_key(*k).get()) {
                    *c = c.saturating_sub(1);
                }
            }
            keep
        });
        removed
    }

    /// How often [`Fdb::age`] should run: a quarter of the aging time, between 1 and 30 seconds.
    pub fn aging_interval_secs(&self) -> u32 {
        (self.aging_secs / 4).clamp(1, 30)
    }

    /// Number of learned entries.
    pub fn learned_len(&self) -> usize {
        self.learned_per_seg
            .iter()
            .map(|&c| usize::try_from(c).unwrap_or(usize::MAX))
            .sum()
    }

    /// Every learned entry: (segment, MAC, entry).
    pub fn learned(&self) -> impl Iterator<Item = (SegIdx, MacAddr, FdbEntry)> + '_ {
        self.map
            .iter()
            .filter(|(_, e)| e.learned)
            .map(|(k, e)| (seg_of_key(*k), mac_of_key(*k), *e))
    }

    /// The FDB for new tables: their static entries, plus the learned entries of `self` (built
    /// on `old`) that still make sense in `new`.
    pub fn rebuild(&self, old: &Tables, new: &Tables) -> Fdb {
        let mut fdb = Fdb::new(new);
        for (seg, mac, e) in self.learned() {
            let Some(vni) = old.segments.get(seg.get()).map(|s| s.vni) else {
                continue;
            };
            let Some(nseg) = new.segment_by_vni(vni.get()) else {
                continue;
            };
            let dest = match e.dest {
                // Router interfaces are configured, never learned.
                FdbDest::Router(_) => continue,
                FdbDest::Port(p) => {
                    let Some(name) = old.ports.get(p.get()).map(|p| p.name.as_str()) else {
                        continue;
                    };
                    match new.port_by_name(name) {
                        Some(np) if new.ports[np.get()].seg == nseg => FdbDest::Port(np),
                        _ => continue,
                    }
                }
                FdbDest::Vtep(v) => {
                    let Some(ip) = old.vteps.get(v.get()).map(|v| v.addr.ip()) else {
                        continue;
                    };
                    match new.vtep_by_ip(ip) {
                        Some(nv) if new.vtep_serves(nv, nseg) => FdbDest::Vtep(nv),
                        _ => continue,
                    }
                }
            };
            // Static entries win; limits of the new configuration apply.
            let _ = fdb.learn(nseg, mac, dest, e.seen);
        }
        fdb
    }
}

#[inline]
fn seg_of_key(k: u64) -> SegIdx {
    SegIdx(u16::try_from(k >> 48).unwrap_or(u16::MAX))
}

fn mac_of_key(k: u64) -> MacAddr {
    let b = k.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Convenience for callers matching on a destination.
impl FdbDest {
    /// The port, if the destination is local.
    pub fn port(self) -> Option<PortIdx> {
        match self {
            FdbDest::Port(p) => Some(p),
            FdbDest::Vtep(_) | FdbDest::Router(_) => None,
        }
    }

    /// The VTEP, if the destination is remote.
    pub fn vtep(self) -> Option<VtepIdx> {
        match self {
            FdbDest::Vtep(v) => Some(v),
            FdbDest::Port(_) | FdbDest::Router(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::config::tests_support::EXAMPLE;

    fn cfg() -> NodeConfig {
        NodeConfig::from_toml(EXAMPLE).unwrap()
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn learn_refresh_move_age() {
        let t = cfg().validate().unwrap();
        let mut f = Fdb::new(&t);
        let seg = t.segment_by_vni(100).unwrap();
        let v = FdbDest::Vtep(VtepIdx(0));
        let m = mac("fa:16:3e:aa:00:01");
        assert_eq!(f.lookup(seg, m), None);
        assert_eq!(f.learn(seg, m, v, 10), LearnOutcome::Learned);
        assert_eq!(f.learn(seg, m, v, 11), LearnOutcome::Known);
        assert_eq!(f.lookup(seg, m).unwrap().seen, 11);
        assert_eq!(
            f.learn(seg, m, FdbDest::Port(PortIdx(0)), 12),
            LearnOutcome::Moved
        );
        assert_eq!(f.learned_len(), 1);
        // Aging at 300 s: seen at 12, still there at 311, gone at 312.
        assert_eq!(f.age(Timestamp(311 * 1_000_000_000)), 0);
        assert_eq!(f.age(Timestamp(312 * 1_000_000_000)), 1);
        assert_eq!(f.lookup(seg, m), None);
        assert_eq!(f.learned_len(), 0);
    }

    #[test]
    fn static_entries_win_and_never_age() {
        let t = cfg().validate().unwrap();
        let mut f = Fdb::new(&t);
        let seg = t.segment_by_vni(100).unwrap();
        let local = mac("fa:16:3e:00:00:01");
        assert_eq!(
            f.learn(seg, local, FdbDest::Vtep(VtepIdx(0)), 1),
            LearnOutcome::Conflict(FdbDest::Port(PortIdx(0)))
        );
        assert_eq!(
            f.learn(seg, local, FdbDest::Port(PortIdx(0)), 1),
            LearnOutcome::Known
        );
        f.age(Timestamp(u64::MAX));
        assert_eq!(
            f.lookup(seg, local).unwrap().dest,
            FdbDest::Port(PortIdx(0))
        );
    }

    #[test]
    fn per_segment_limit() {
        let mut c = cfg();
        c.learning.max_per_segment = 2;
        let t = c.validate().unwrap();
        let mut f = Fdb::new(&t);
        let a = t.segment_by_vni(100).unwrap();
        let b = t.segment_by_vni(200).unwrap();
        let v = FdbDest::Vtep(VtepIdx(0));
        assert_eq!(
            f.learn(a, mac("02:00:00:00:00:01"), v, 0),
            LearnOutcome::Learned
        );
        assert_eq!(
            f.learn(a, mac("02:00:00:00:00:02"), v, 0),
            LearnOutcome::Learned
        );
        assert_eq!(
            f.learn(a, mac("02:00:00:00:00:03"), v, 0),
            LearnOutcome::Limited
        );
        // Another tenant's segment is not affected.
        assert_eq!(
            f.learn(b, mac("02:00:00:00:00:03"), v, 0),
            LearnOutcome::Learned
        );
    }

    #[test]
    fn disabled_learning_learns_nothing() {
        let mut c = cfg();
        c.learning.enabled = false;
        let t = c.validate().unwrap();
        let mut f = Fdb::new(&t);
        let a = t.segment_by_vni(100).unwrap();
        assert_eq!(
            f.learn(a, mac("02:00:00:00:00:01"), FdbDest::Vtep(VtepIdx(0)), 0),
            LearnOutcome::Disabled
        );
    }

    #[test]
    fn rebuild_keeps_what_still_exists() {
        let c = cfg();
        let old = c.validate().unwrap();
        let mut f = Fdb::new(&old);
        let a = old.segment_by_vni(100).unwrap();
        let b = old.segment_by_vni(200).unwrap();
        let v = FdbDest::Vtep(VtepIdx(0));
        f.learn(a, mac("02:00:00:00:00:01"), v, 5);
        f.learn(b, mac("02:00:00:00:00:02"), v, 5);
        f.learn(b, mac("02:00:00:00:00:03"), FdbDest::Port(PortIdx(1)), 5);

        // New config: segment 200 goes (with its port); segments reorder; VTEP stays.
        let mut n = c.clone();
        n.segments.retain(|s| s.vni.get() == 100);
        n.segments.insert(
            0,
            crate::config::SegmentConfig::new(crate::wire::Vni::new(300).unwrap()),
        );
        n.ports.retain(|p| p.vni.get() == 100);
        n.remote_vteps[0].vnis.retain(|v| v.get() == 100);
        let new = n.validate().unwrap();
        let g = f.rebuild(&old, &new);
        let na = new.segment_by_vni(100).unwrap();
        assert_ne!(na, a, "the segment moved to another index");
        assert_eq!(g.lookup(na, mac("02:00:00:00:00:01")).unwrap().dest, v);
        assert_eq!(g.learned_len(), 1);
        // Static entries of the new tables are present.
        assert!(g.lookup(na, mac("fa:16:3e:00:00:02")).is_some());
    }
}
