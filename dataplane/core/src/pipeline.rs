//! The L2 overlay pipeline: one worker's state and the nodes a batch goes through.
//!
//! ```text
//!  from a local port                                  from the underlay (UDP payload)
//!  ─────────────────                                  ───────────────────────────────
//!  l2_input        parse Ethernet, access port rules   vxlan_input   known VTEP? VXLAN header?
//!  port_security   MAC/IP/ARP/ND anti-spoofing                       VNI served by that VTEP?
//!  learn           (ports without port security)       decap         strip the VXLAN header
//!  responder       ARP/NS for known bindings ─► reply  l2_input      parse inner Ethernet
//!                  back out of the ingress port        learn         source MAC → VTEP
//!  l2_lookup       dst MAC → port | VTEP | flood       l2_lookup     dst MAC → port | flood
//!  vxlan_encap     prepend the VXLAN header            (never back to the underlay)
//! ```
//!
//! Each packet ends in one [`Action`]; the I/O layer carries it out. Every drop has a
//! [`DropReason`] counted in [`Pipeline::counters`]. The pipeline never allocates, reads no
//! clock (`now` is an argument) and does no I/O.
//!
//! Encapsulation writes the 8-byte VXLAN header into the buffer's headroom: the frame is never
//! copied. The outer UDP/IP/Ethernet headers are the underlay socket's business.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::counters::{Counters, DropReason, Event};
use crate::fdb::{Fdb, LearnOutcome};
use crate::ids::{PortIdx, SegIdx, VtepIdx};
use crate::packet::{Batch, PacketBuf, Source};
use crate::port_security;
use crate::responder::{arp_reply, nd_reply};
use crate::tables::{FdbDest, Tables};
use crate::time::Timestamp;
use crate::wire::ethernet::{EtherType, L2Info, parse_l2};
use crate::wire::{Error as WireError, MacAddr};

/// Length of the VXLAN header the encapsulation prepends.
pub const VXLAN_HEADER_LEN: usize = 8;

/// What to do with a packet after the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Drop it (already counted).
    Drop(DropReason),
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

/// One worker's dataplane: the shared tables, its own FDB and counters.
#[derive(Debug)]
pub struct Pipeline {
    tables: Arc<Tables>,
    fdb: Fdb,
    counters: Counters,
    next_aging: Timestamp,
}

impl Pipeline {
    /// A pipeline running on `tables`.
    pub fn new(tables: Arc<Tables>) -> Pipeline {
        let fdb = Fdb::new(&tables);
        Pipeline {
            tables,
            fdb,
            counters: Counters::default(),
            next_aging: Timestamp::ZERO,
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

    /// Switches to new tables between two batches. Learned entries that still make sense are
    /// kept; counters are kept.
    pub fn swap_tables(&mut self, tables: Arc<Tables>) {
        self.fdb = self.fdb.rebuild(&self.tables, &tables);
        self.tables = tables;
    }

    /// When [`Pipeline::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Timestamp {
        self.next_aging
    }

    /// Runs timers that are due: FDB aging.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if now < self.next_aging {
            return;
        }
        let aged = self.fdb.age(now);
        self.counters.event_n(Event::Aged, aged);
        let every = Duration::from_secs(u64::from(self.fdb.aging_interval_secs()));
        self.next_aging = now.plus(every);
    }

    /// Runs every packet of `batch` through the pipeline. On return `actions[i]` says what to do
    /// with `batch.packets()[i]`; drops are already counted.
    pub fn process(&mut self, now: Timestamp, batch: &mut Batch, actions: &mut Vec<Action>) {
        actions.clear();
        let now_s = now.secs();
        let mut ctx = Ctx {
            t: &self.tables,
            fdb: &mut self.fdb,
            c: &mut self.counters,
            now: now_s,
            last_vtep: None,
            last_vni: None,
        };
        for pkt in batch.packets_mut() {
            let r = match pkt.meta.source {
                Source::Port(p) => ctx.port_input(p, pkt),
                Source::Underlay(src) => ctx.underlay_input(src, pkt),
                Source::None => Err(DropReason::Malformed),
            };
            let a = match r {
                Ok(a) => a,
                Err(reason) => {
                    ctx.c.drop(reason);
                    Action::Drop(reason)
                }
            };
            actions.push(a);
        }
    }
}

/// Split borrows of the pipeline for one batch, plus per-batch lookup caches (consecutive
/// packets usually come from the same VTEP and VNI).
struct Ctx<'a> {
    t: &'a Tables,
    fdb: &'a mut Fdb,
    c: &'a mut Counters,
    now: u32,
    last_vtep: Option<(IpAddr, VtepIdx)>,
    last_vni: Option<(u32, SegIdx)>,
}

type NodeResult = Result<Action, DropReason>;

pub(crate) fn wire_drop(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::Malformed => DropReason::Malformed,
    }
}

impl Ctx<'_> {
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
        } else if let LearnOutcome::Learned | LearnOutcome::Moved =
            self.learn(seg, l2.src, FdbDest::Port(idx))
        {
            // counted in learn()
        }
        // responder
        if let Some(a) = self.respond(idx, seg, &l2, pkt) {
            return Ok(a);
        }
        // l2_lookup
        if l2.dst.is_multicast() {
            return self.flood_from_port(idx, seg, pkt);
        }
        match self.fdb.lookup(seg, l2.dst).map(|e| e.dest) {
            Some(FdbDest::Port(p)) if p == idx => Err(DropReason::SamePort),
            Some(FdbDest::Port(p)) => Ok(Action::Port(p)),
            Some(FdbDest::Vtep(v)) => {
                encap(t, seg, pkt)?;
                self.c.event(Event::Encapsulated);
                Ok(Action::Vtep(v))
            }
            None => {
                self.c.event(Event::UnknownUnicast);
                self.flood_from_port(idx, seg, pkt)
            }
        }
    }

    fn flood_from_port(&mut self, idx: PortIdx, seg: SegIdx, pkt: &mut PacketBuf) -> NodeResult {
        self.c.event(Event::Flooded);
        let to_vteps = !self.t.segments[seg.get()].flood_vteps.is_empty();
        if to_vteps {
            encap(self.t, seg, pkt)?;
        }
        Ok(Action::Flood {
            seg,
            exclude: Some(idx),
            to_vteps,
        })
    }

    fn learn(&mut self, seg: SegIdx, mac: MacAddr, dest: FdbDest) -> LearnOutcome {
        let o = self.fdb.learn(seg, mac, dest, self.now);
        match o {
            LearnOutcome::Learned => self.c.event(Event::Learned),
            LearnOutcome::Moved => self.c.event(Event::LearnMoved),
            LearnOutcome::Limited => self.c.event(Event::LearnLimited),
            LearnOutcome::Known | LearnOutcome::Disabled | LearnOutcome::Conflict(_) => {}
        }
        o
    }

    /// ARP requests and IPv6 neighbour solicitations for an address the configuration binds in
    /// this segment are answered here, out of the ingress port, instead of being flooded.
    fn respond(
        &mut self,
        idx: PortIdx,
        seg: SegIdx,
        l2: &L2Info,
        pkt: &mut PacketBuf,
    ) -> Option<Action> {
        let event = match l2.ethertype {
            EtherType::Arp if arp_reply(self.t, idx, seg, l2, pkt) => Event::ArpReplied,
            EtherType::Ipv6 if nd_reply(self.t, idx, seg, l2, pkt) => Event::NdReplied,
            _ => return None,
        };
        self.c.event(event);
        Some(Action::Port(idx))
    }

    // ---- from the underlay -------------------------------------------------------------------

    fn underlay_input(&mut self, src: SocketAddr, pkt: &mut PacketBuf) -> NodeResult {
        let t = self.t;
        // vxlan_input
        let vtep = match self.last_vtep {
            Some((ip, v)) if ip == src.ip() => v,
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
            Some((n, s)) if n == vni => s,
            _ => {
                let s = t.segment_by_vni(vni).ok_or(DropReason::UnknownVni)?;
                self.last_vni = Some((vni, s));
                s
            }
        };
        if !t.vtep_serves(vtep, seg) {
            return Err(DropReason::VtepNotInSegment);
        }
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
        // l2_lookup: deliver locally only, never back into the underlay.
        if l2.dst.is_multicast() {
            self.c.event(Event::Flooded);
            return Ok(Action::Flood {
                seg,
                exclude: None,
                to_vteps: false,
            });
        }
        match self.fdb.lookup(seg, l2.dst).map(|e| e.dest) {
            Some(FdbDest::Port(p)) => Ok(Action::Port(p)),
            Some(FdbDest::Vtep(_)) => Err(DropReason::NotLocal),
            None => {
                self.c.event(Event::UnknownUnicast);
                self.c.event(Event::Flooded);
                Ok(Action::Flood {
                    seg,
                    exclude: None,
                    to_vteps: false,
                })
            }
        }
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
#[inline]
fn encap(t: &Tables, seg: SegIdx, pkt: &mut PacketBuf) -> Result<(), DropReason> {
    let hdr = pkt.prepend(VXLAN_HEADER_LEN).ok_or(DropReason::NoBuffer)?;
    hdr.copy_from_slice(&t.segments[seg.get()].vxlan_header);
    Ok(())
}
