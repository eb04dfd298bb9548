//! The dataplane worker: one thread that owns a [`Pipeline`], a buffer pool, the underlay
//! socket and every local port's socket, and moves packets between them.
//!
//! ```text
//!            ┌──────────── poll(waker, underlay, ports…) ────────────┐
//!            ▼                                                        │
//!  commands (reload, attach, snapshot, capture)                       │
//!  underlay  recvmmsg ─► batch ─► pipeline ─► execute ─┬─► port TX rings
//!  port i    RX ring ─► offload fix-ups ─► batch ─► pipeline ─► execute ─┴─► sendmmsg to VTEPs
//!  timers    FDB aging                                                │
//!            └────────────────────────────────────────────────────────┘
//! ```
//!
//! The worker never blocks except in `poll`, never allocates per packet (buffers come from the
//! pool and go back to it after transmit), and never logs per packet: every drop is a counter.
//! Control threads talk to it through [`Command`]s and wake it with the [`Waker`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weft_dataplane::firewall;
use weft_dataplane::offload;
use weft_dataplane::pipeline::{Action, Output, Pipeline, VXLAN_HEADER_LEN};
use weft_dataplane::tables::{FdbDest, Tables};
use weft_dataplane::{
    BATCH_SIZE, Batch, BufPool, Counters, DropReason, Event, HEADROOM, PacketBuf, PortIdx, Source,
    Timestamp,
};
use weft_dataplane_io::sys::{EventFd, PollEntry, poll};
use weft_dataplane_io::{DatagramIo, FrameIo, RxFrame, SendOutcome};

use crate::capture::Capture;
use crate::stats::{LearnedEntry, PortStats, Snapshot, UnderlayStats};

/// Wakes the worker out of `poll` (an eventfd shared with control threads).
pub type Waker = Arc<EventFd>;

/// What the control threads ask of the worker.
#[derive(Debug)]
pub enum Command {
    /// Switch to new tables. `attach` holds newly opened sockets by interface name; ports whose
    /// interface is already attached keep their socket. `underlay` replaces the underlay socket
    /// when the local VTEP changed.
    Reload {
        /// The new tables.
        tables: Arc<Tables>,
        /// Newly opened port sockets, by interface name.
        attach: Vec<(String, Box<dyn FrameIo>)>,
        /// A new underlay socket, if the VTEP address changed.
        underlay: Option<Box<dyn DatagramIo>>,
        /// Answered once the swap is done.
        done: Sender<()>,
    },
    /// Attach a socket for an interface that was missing.
    Attach {
        /// The interface.
        interface: String,
        /// Its socket.
        io: Box<dyn FrameIo>,
    },
    /// Send back a snapshot of the counters.
    Snapshot(Sender<Snapshot>),
    /// Start capturing on a port (by port name) or on the underlay (`"underlay"`).
    StartCapture {
        /// Port name or `"underlay"`.
        target: String,
        /// The capture.
        capture: Capture,
        /// `Err` if there is no such target.
        done: Sender<Result<(), String>>,
    },
    /// Stop a capture; answers the number of packets written.
    StopCapture {
        /// Port name or `"underlay"`.
        target: String,
        /// Packets written, or `Err` if no capture ran there.
        done: Sender<Result<u64, String>>,
    },
    /// Exit the loop.
    Stop,
}

/// Which interfaces are attached right now, shared with the supervisor that re-opens missing
/// ones.
pub type AttachState = Arc<Mutex<HashMap<String, bool>>>;

struct PortSlot {
    io: Option<Box<dyn FrameIo>>,
    stats: PortStats,
    capture: Option<Capture>,
    dirty: bool,
}

/// The worker's state.
pub struct Worker {
    pipeline: Pipeline,
    pool: BufPool,
    ports: Vec<PortSlot>,
    underlay: Box<dyn DatagramIo>,
    underlay_stats: UnderlayStats,
    underlay_capture: Option<Capture>,
    commands: Receiver<Command>,
    waker: Waker,
    attach_state: AttachState,
    epoch: Instant,
    loads: u64,
    batch: Batch,
    staged: Vec<PacketBuf>,
    out: Output,
    sends: Vec<(usize, SocketAddr)>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("ports", &self.ports.len())
            .finish_non_exhaustive()
    }
}

/// Packet buffers per worker: enough for a full batch in flight on every source plus GSO
/// super-frames being split, with room to spare.
const POOL_BUFFERS: usize = 4096;
/// Frames read from one port per wake-up before serving the others.
const PORT_RX_PER_WAKE: usize = 4 * BATCH_SIZE;
/// Underlay batches read per wake-up before serving the ports.
const UNDERLAY_BATCHES_PER_WAKE: usize = 4;
/// Longest sleep in `poll` (so timers run even when idle).
const MAX_SLEEP: Duration = Duration::from_millis(500);

impl Worker {
    /// A worker running `tables` over `underlay` and the given port sockets (by interface).
    pub fn new(
        tables: Arc<Tables>,
        underlay: Box<dyn DatagramIo>,
        mut attach: HashMap<String, Box<dyn FrameIo>>,
        commands: Receiver<Command>,
        waker: Waker,
        attach_state: AttachState,
    ) -> Worker {
        // Buffers hold the largest frame of any segment, or a full GSO segment of the largest
        // MTU, after the headroom.
        let buf_size = HEADROOM + tables.max_frame_len().max(1518) + 64;
        let ports = tables
            .ports
            .iter()
            .map(|p| PortSlot {
                io: attach.remove(&p.interface),
                stats: PortStats {
                    name: p.name.clone(),
                    interface: p.interface.clone(),
                    ..Default::default()
                },
                capture: None,
                dirty: false,
            })
            .collect();
        let local = tables.local_vtep.to_string();
        let w = Worker {
            // A random seed for the flow tables' hashes (std's per-process random keys).
            pipeline: Pipeline::with_seed(
                tables,
                std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    0u8,
                ),
            ),
            pool: BufPool::new(POOL_BUFFERS, buf_size),
            ports,
            underlay,
            underlay_stats: UnderlayStats {
                local,
                ..Default::default()
            },
            underlay_capture: None,
            commands,
            waker,
            attach_state,
            epoch: Instant::now(),
            loads: 1,
            batch: Batch::new(),
            staged: Vec::with_capacity(2 * PORT_RX_PER_WAKE),
            out: Output::new(),
            sends: Vec::with_capacity(BATCH_SIZE * 4),
        };
        w.publish_attach_state();
        w
    }

    fn now(&self) -> Timestamp {
        Timestamp(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Runs until [`Command::Stop`] (or until every command sender is gone).
    pub fn run(mut self) {
        let mut fds: Vec<PollEntry> = Vec::with_capacity(self.ports.len() + 2);
        let mut fd_ports: Vec<usize> = Vec::with_capacity(self.ports.len());
        loop {
            fds.clear();
            fd_ports.clear();
            fds.push(PollEntry::readable(self.waker.fd()));
            if let Some(fd) = self.underlay.raw_fd() {
                fds.push(PollEntry::readable(fd));
            }
            let first_port = fds.len();
            for (i, slot) in self.ports.iter().enumerate() {
                if let Some(fd) = slot.io.as_ref().and_then(|io| io.raw_fd()) {
                    fds.push(PollEntry::readable(fd));
                    fd_ports.push(i);
                }
            }
            let now = self.now();
            let sleep = self.pipeline.poll_timeout().since(now).min(MAX_SLEEP);
            if let Err(e) = poll(&mut fds, Some(sleep)) {
                tracing::error!(error = %e, "poll failed; the worker stops");
                return;
            }
            if fds[0].is_readable() {
                self.waker.drain();
                if !self.handle_commands() {
                    return;
                }
            }
            if first_port == 2 && fds[1].is_readable() {
                self.rx_underlay();
            }
            for (k, &port) in fd_ports.iter().enumerate() {
                let e = &fds[first_port + k];
                if e.is_error() {
                    self.detach(port, "the interface reported an error or went away");
                } else if e.is_readable() {
                    self.rx_port(port);
                }
            }
            self.flush_ports();
            self.run_timers();
        }
    }

    /// One pass without waiting: pending commands, then everything every source has, then
    /// transmit flushes and timers. `false` once the worker must stop. For backends without file
    /// descriptors (in-memory tests and simulations); [`Worker::run`] is the same loop driven by
    /// `poll`.
    pub fn step(&mut self) -> bool {
        if !self.handle_commands() {
            return false;
        }
        self.rx_underlay();
        for i in 0..self.ports.len() {
            if self.ports[i].io.is_some() {
                self.rx_port(i);
            }
        }
        self.flush_ports();
        self.run_timers();
        true
    }

    /// Handles every pending command. `false` when the worker must stop.
    fn handle_commands(&mut self) -> bool {
        loop {
            let cmd = match self.commands.try_recv() {
                Ok(c) => c,
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Command::Stop => return false,
                Command::Reload {
                    tables,
                    attach,
                    underlay,
                    done,
                } => {
                    self.reload(tables, attach, underlay);
                    let _ = done.send(());
                }
                Command::Attach { interface, io } => {
                    if let Some(slot) = self
                        .ports
                        .iter_mut()
                        .find(|s| s.stats.interface == interface && s.io.is_none())
                    {
                        tracing::info!(port = %slot.stats.name, %interface, "port attached");
                        slot.io = Some(io);
                        slot.stats.attached = true;
                    }
                    self.publish_attach_state();
                }
                Command::Snapshot(reply) => {
                    let _ = reply.send(self.snapshot());
                }
                Command::StartCapture {
                    target,
                    capture,
                    done,
                } => {
                    let r = match self.capture_slot(&target) {
                        Some(slot) => {
                            *slot = Some(capture);
                            Ok(())
                        }
                        None => Err(format!("no port named {target:?} (nor \"underlay\")")),
                    };
                    let _ = done.send(r);
                }
                Command::StopCapture { target, done } => {
                    let r = match self.capture_slot(&target).map(Option::take) {
                        Some(Some(c)) => Ok(c.finish()),
                        Some(None) => Err(format!("no capture runs on {target:?}")),
                        None => Err(format!("no port named {target:?} (nor \"underlay\")")),
                    };
                    let _ = done.send(r);
                }
            }
        }
    }

    fn capture_slot(&mut self, target: &str) -> Option<&mut Option<Capture>> {
        if target == "underlay" {
            return Some(&mut self.underlay_capture);
        }
        self.ports
            .iter_mut()
            .find(|s| s.stats.name == target)
            .map(|s| &mut s.capture)
    }

    /// Swaps tables: ports are matched by interface, so a port whose interface stays keeps its
    /// socket (and its counters, and its capture) and never stops forwarding.
    fn reload(
        &mut self,
        tables: Arc<Tables>,
        attach: Vec<(String, Box<dyn FrameIo>)>,
        underlay: Option<Box<dyn DatagramIo>>,
    ) {
        let mut old: HashMap<String, PortSlot> = self
            .ports
            .drain(..)
            .map(|s| (s.stats.interface.clone(), s))
            .collect();
        let mut fresh: HashMap<String, Box<dyn FrameIo>> = attach.into_iter().collect();
        self.ports = tables
            .ports
            .iter()
            .map(|p| {
                let mut slot = old.remove(&p.interface).unwrap_or_else(|| PortSlot {
                    io: None,
                    stats: PortStats::default(),
                    capture: None,
                    dirty: false,
                });
                if slot.io.is_none() {
                    slot.io = fresh.remove(&p.interface);
                }
                slot.stats.name = p.name.clone();
                slot.stats.interface = p.interface.clone();
                slot.stats.attached = slot.io.is_some();
                slot
            })
            .collect();
        // Sockets of removed ports close here, when `old` drops.
        for (iface, mut slot) in old {
            if let Some(io) = slot.io.as_mut() {
                let _ = io.flush();
            }
            tracing::info!(interface = %iface, "port removed");
        }
        if let Some(u) = underlay {
            self.underlay = u;
        }
        // A reload that raised an MTU beyond what a port's ring slots hold: re-open that port
        // (the supervisor attaches it again within a second, with bigger slots).
        let need = tables.max_frame_len();
        for slot in &mut self.ports {
            if slot.io.as_ref().is_some_and(|io| io.max_tx_frame() < need) {
                tracing::info!(port = %slot.stats.name, "re-opening the port for a larger MTU");
                slot.io = None;
                slot.stats.attached = false;
            }
        }
        self.underlay_stats.local = tables.local_vtep.to_string();
        self.pipeline.swap_tables(tables, &mut self.pool);
        self.loads += 1;
        self.publish_attach_state();
    }

    fn detach(&mut self, port: usize, why: &str) {
        if let Some(slot) = self.ports.get_mut(port)
            && slot.io.take().is_some()
        {
            slot.stats.attached = false;
            tracing::warn!(port = %slot.stats.name, interface = %slot.stats.interface, "port detached: {why}");
        }
        self.publish_attach_state();
    }

    fn publish_attach_state(&self) {
        if let Ok(mut m) = self.attach_state.lock() {
            m.clear();
            for s in &self.ports {
                m.insert(s.stats.interface.clone(), s.io.is_some());
            }
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let t = self.pipeline.tables().clone();
        let mut s = Snapshot {
            node: t.node.clone(),
            revision: t.revision,
            loads: self.loads,
            ports: Vec::with_capacity(self.ports.len()),
            underlay: self.underlay_stats.clone(),
            ..Default::default()
        };
        s.set_counters(self.pipeline.counters());
        for slot in &mut self.ports {
            if let Some(io) = slot.io.as_mut()
                && let Ok(drops) = io.kernel_drops()
            {
                slot.stats.kernel_drops = drops;
            }
            slot.stats.attached = slot.io.is_some();
            s.ports.push(slot.stats.clone());
        }
        let now = self.now().secs();
        s.learned = self
            .pipeline
            .fdb()
            .learned()
            .map(|(seg, mac, e)| LearnedEntry {
                vni: t.segments.get(seg.get()).map_or(0, |s| s.vni.get()),
                mac: mac.to_string(),
                at: match e.dest {
                    FdbDest::Port(p) => format!(
                        "port:{}",
                        t.ports.get(p.get()).map_or("?", |p| p.name.as_str())
                    ),
                    FdbDest::Vtep(v) => format!(
                        "vtep:{}",
                        t.vteps
                            .get(v.get())
                            .map_or(String::from("?"), |v| v.addr.ip().to_string())
                    ),
                    FdbDest::Router(r) => format!(
                        "router:{}",
                        t.router_ifs
                            .get(r.get())
                            .and_then(|i| t.routers.get(i.router.get()))
                            .map_or("?", |r| r.name.as_str())
                    ),
                },
                age_secs: now.saturating_sub(e.seen),
            })
            .collect();
        s
    }

    // ---- receive ---------------------------------------------------------------------------

    fn rx_underlay(&mut self) {
        for _ in 0..UNDERLAY_BATCHES_PER_WAKE {
            let got = match self.underlay.recv_batch(&mut self.pool, &mut self.batch) {
                Ok(s) => {
                    self.pipeline
                        .counters_mut()
                        .drop_n(DropReason::TooBig, s.truncated);
                    s.received
                }
                Err(e) => {
                    tracing::warn!(error = %e, "underlay receive failed");
                    0
                }
            };
            if self.batch.is_empty() {
                if self.pool.available() == 0 {
                    self.pipeline.counters_mut().drop(DropReason::NoBuffer);
                }
                return;
            }
            let wall = wall_nanos();
            for p in self.batch.packets() {
                self.underlay_stats.rx_packets += 1;
                self.underlay_stats.rx_bytes += len64(p.data());
                if let (Some(c), Source::Underlay(src)) =
                    (self.underlay_capture.as_mut(), p.meta.source)
                {
                    c.write_vxlan(wall, src, self.pipeline.tables().local_vtep, p.data());
                }
            }
            self.run_batch();
            if got < BATCH_SIZE as u64 {
                return;
            }
        }
    }

    fn rx_port(&mut self, port: usize) {
        let Some(idx) = u16::try_from(port).ok().map(PortIdx) else {
            return;
        };
        let Worker {
            ports,
            pool,
            staged,
            pipeline,
            ..
        } = self;
        let Some(slot) = ports.get_mut(port) else {
            return;
        };
        let Some(io) = slot.io.as_mut() else { return };
        let counters = pipeline.counters_mut();
        let stats = &mut slot.stats;
        let capture = &mut slot.capture;
        let wall = wall_nanos();
        let r = io.recv(PORT_RX_PER_WAKE, &mut |f: RxFrame<'_>| {
            stats.rx_packets += 1;
            stats.rx_bytes += len64(f.data);
            if let Some(c) = capture.as_mut() {
                c.write(wall, f.data);
            }
            ingest(f, idx, pool, staged, counters);
        });
        if let Err(e) = r {
            self.detach(port, &format!("receive failed: {e}"));
        }
        while !self.staged.is_empty() {
            let n = self.staged.len().min(BATCH_SIZE);
            for b in self.staged.drain(..n) {
                // Cannot fail: the batch is empty and n <= BATCH_SIZE.
                let _ = self.batch.push(b);
            }
            self.run_batch();
        }
    }

    // ---- process and transmit --------------------------------------------------------------

    fn run_batch(&mut self) {
        let now = self.now();
        self.pipeline
            .process(now, &mut self.batch, &mut self.pool, &mut self.out);
        self.execute();
    }

    /// Runs the pipeline's timers and sends what they made.
    fn run_timers(&mut self) {
        let now = self.now();
        self.pipeline
            .handle_timeout(now, &mut self.pool, &mut self.out);
        self.out.actions.clear();
        if !self.out.generated.is_empty() {
            self.execute();
        }
    }

    /// Carries out the actions of the batch and of the generated packets, then returns every
    /// buffer to the pool.
    fn execute(&mut self) {
        let Worker {
            pipeline,
            ports,
            batch,
            out,
            sends,
            underlay,
            pool,
            underlay_stats,
            underlay_capture,
            ..
        } = self;
        let tables = pipeline.tables().clone();
        let mut tx = Tx {
            tables: &tables,
            ports,
            counters: pipeline.counters_mut(),
            sends,
            underlay,
            underlay_stats,
            underlay_capture,
            wall: wall_nanos(),
        };
        for (i, (pkt, action)) in batch.packets().iter().zip(out.actions.iter()).enumerate() {
            tx.deliver(i, pkt, *action);
        }
        let pkts = batch.packets();
        tx.send_underlay(|i| pkts.get(i));
        for (i, (pkt, action)) in out.generated.iter().enumerate() {
            tx.deliver(i, pkt, *action);
        }
        let generated = &out.generated;
        tx.send_underlay(|i| generated.get(i).map(|(b, _)| b));
        batch.drain(|b| pool.free(b));
        for (b, _) in out.generated.drain(..) {
            pool.free(b);
        }
        self.flush_ports();
    }

    fn flush_ports(&mut self) {
        let mut failed = Vec::new();
        for (i, slot) in self.ports.iter_mut().enumerate() {
            if !slot.dirty {
                continue;
            }
            slot.dirty = false;
            if let Some(io) = slot.io.as_mut()
                && let Err(e) = io.flush()
            {
                failed.push((i, e));
            }
        }
        for (i, e) in failed {
            self.detach(i, &format!("transmit failed: {e}"));
        }
    }
}

/// What transmitting needs of the worker, borrowed for one batch.
struct Tx<'a> {
    tables: &'a Tables,
    ports: &'a mut [PortSlot],
    counters: &'a mut Counters,
    sends: &'a mut Vec<(usize, SocketAddr)>,
    underlay: &'a mut Box<dyn DatagramIo>,
    underlay_stats: &'a mut UnderlayStats,
    underlay_capture: &'a mut Option<Capture>,
    wall: u64,
}

impl Tx<'_> {
    /// Carries out one packet's action: local ports now, VTEPs queued for one sendmmsg.
    fn deliver(&mut self, i: usize, pkt: &PacketBuf, action: Action) {
        match action {
            Action::Drop(_) | Action::Consumed => {}
            Action::Port(p) => tx_port(self.ports, p, pkt.data(), self.counters, self.wall),
            Action::Vtep(v) => {
                if let Some(vt) = self.tables.vteps.get(v.get()) {
                    self.sends.push((i, vt.addr));
                }
            }
            Action::Flood {
                seg,
                exclude,
                to_vteps,
            } => {
                let Some(s) = self.tables.segments.get(seg.get()) else {
                    return;
                };
                let data = pkt.data();
                let frame = if to_vteps {
                    data.get(VXLAN_HEADER_LEN..).unwrap_or(&[])
                } else {
                    data
                };
                for &p in &s.ports {
                    if Some(p) == exclude {
                        continue;
                    }
                    let allowed = self
                        .tables
                        .ports
                        .get(p.get())
                        .is_some_and(|port| firewall::flood_allowed(port, frame));
                    if allowed {
                        tx_port(self.ports, p, frame, self.counters, self.wall);
                    } else {
                        self.counters.drop(DropReason::SecurityGroup);
                    }
                }
                if to_vteps {
                    for v in &s.flood_vteps {
                        if let Some(vt) = self.tables.vteps.get(v.get()) {
                            self.sends.push((i, vt.addr));
                        }
                    }
                }
            }
        }
    }

    /// Sends the queued VXLAN datagrams (`packet(i)` gives the packet of queue entry `i`).
    fn send_underlay<'p>(&mut self, packet: impl Fn(usize) -> Option<&'p PacketBuf>) {
        if self.sends.is_empty() {
            return;
        }
        let mut items = self
            .sends
            .iter()
            .filter_map(|&(i, a)| packet(i).map(|p| (a, p.data())));
        match self.underlay.send_batch(&mut items) {
            Ok(st) => {
                self.counters.drop_n(DropReason::TooBig, st.too_big);
                self.counters
                    .drop_n(DropReason::UnderlayBusy, st.would_block);
                self.counters.drop_n(DropReason::TxError, st.errors);
                self.underlay_stats.tx_packets += st.sent;
            }
            Err(e) => {
                self.counters.drop_n(DropReason::TxError, len64(self.sends));
                tracing::warn!(error = %e, "underlay send failed");
            }
        }
        for &(i, a) in self.sends.iter() {
            if let Some(p) = packet(i) {
                self.underlay_stats.tx_bytes += len64(p.data());
                if let Some(c) = self.underlay_capture.as_mut() {
                    c.write_vxlan(self.wall, self.tables.local_vtep, a, p.data());
                }
            }
        }
        self.sends.clear();
    }
}

/// Copies one received frame into pool buffers on the staging list, fixing what the kernel left
/// undone: a GSO super-frame is split into segments, a partial checksum is completed. Drops are
/// counted here.
fn ingest(
    f: RxFrame<'_>,
    port: PortIdx,
    pool: &mut BufPool,
    staged: &mut Vec<PacketBuf>,
    c: &mut Counters,
) {
    if f.truncated {
        c.drop(DropReason::TooBig);
        return;
    }
    if f.vlan_tci.is_some() {
        // The kernel stripped an 802.1Q tag: the VM sent a tagged frame on an access port.
        c.drop(DropReason::VlanTagged);
        return;
    }
    if let Some(h) = f.vnet.filter(|h| h.needs_work()) {
        let before = staged.len();
        match offload::prepare(f.data, &h, pool, &mut |mut b: PacketBuf| {
            b.meta.source = Source::Port(port);
            staged.push(b);
        }) {
            Ok(fix) => {
                if fix.segments > 1 {
                    c.event(Event::GsoSegmented);
                }
                if fix.checksummed {
                    c.event(Event::ChecksumCompleted);
                }
            }
            Err(reason) => {
                // Return what was staged for this frame before the failure.
                for b in staged.drain(before..) {
                    pool.free(b);
                }
                c.drop(reason);
            }
        }
        return;
    }
    let Some(mut b) = pool.alloc() else {
        c.drop(DropReason::NoBuffer);
        return;
    };
    if !b.fill(f.data) {
        pool.free(b);
        c.drop(DropReason::TooBig);
        return;
    }
    b.meta.source = Source::Port(port);
    staged.push(b);
}

fn tx_port(ports: &mut [PortSlot], p: PortIdx, frame: &[u8], c: &mut Counters, wall: u64) {
    let Some(slot) = ports.get_mut(p.get()) else {
        c.drop(DropReason::NoSuchPort);
        return;
    };
    let Some(io) = slot.io.as_mut() else {
        c.drop(DropReason::PortDetached);
        return;
    };
    let mut outcome = io.send(frame);
    if let Ok(SendOutcome::RingFull) = outcome {
        // Kick the kernel to transmit what is queued, then try once more.
        let _ = io.flush();
        outcome = io.send(frame);
    }
    match outcome {
        Ok(SendOutcome::Queued) => {
            slot.dirty = true;
            slot.stats.tx_packets += 1;
            slot.stats.tx_bytes += len64(frame);
            if let Some(cap) = slot.capture.as_mut() {
                cap.write(wall, frame);
            }
        }
        Ok(SendOutcome::RingFull) => c.drop(DropReason::TxRingFull),
        Ok(SendOutcome::TooBig) => c.drop(DropReason::TooBig),
        Err(_) => c.drop(DropReason::TxError),
    }
}

fn len64<T>(s: &[T]) -> u64 {
    u64::try_from(s.len()).unwrap_or(u64::MAX)
}

fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! The worker driven in memory: shared in-memory ports and underlay stand in for AF_PACKET
    //! and UDP, so what the worker does between the pipeline and the sockets (flood replication,
    //! offload fix-ups, reloads, captures, counters) is checked without namespaces.

    use std::fs::File;
    use std::net::Ipv4Addr;
    use std::sync::mpsc;

    use weft_dataplane::config::NodeConfig;
    use weft_dataplane::offload::{GsoType, VNET_F_NEEDS_CSUM, VnetHdr};
    use weft_dataplane::testing::{eth, ipv4_udp, vxlan};
    use weft_dataplane::wire::MacAddr;
    use weft_dataplane_io::{MemoryPort, MemoryUnderlay, SharedPort, SharedUnderlay};

    use super::*;

    const A1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
    const A2: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 2]);
    const C1: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 3]);

    fn config(revision: u64, with_c1: bool) -> NodeConfig {
        let c1 = if with_c1 {
            "[[ports]]\nname = \"vm-c1\"\ninterface = \"tapc1\"\nvni = 100\nmac = \"fa:16:3e:00:00:03\"\nips = [\"10.0.0.3\"]\n"
        } else {
            ""
        };
        NodeConfig::from_toml(&format!(
            r#"
node = "hv1"
revision = {revision}
[underlay]
local_ip = "192.168.100.1"
[[segments]]
vni = 100
[[ports]]
name = "vm-a1"
interface = "tapa1"
vni = 100
mac = "fa:16:3e:00:00:01"
ips = ["10.0.0.1"]
{c1}
[[remote_vteps]]
ip = "192.168.100.2"
vnis = [100]
[[remote_vteps]]
ip = "192.168.100.3"
vnis = [100]
[[remote_bindings]]
vni = 100
mac = "fa:16:3e:00:00:02"
ips = ["10.0.0.2"]
vtep = "192.168.100.2"
"#
        ))
        .unwrap()
    }

    struct Rig {
        worker: Worker,
        tx: Sender<Command>,
        a1: SharedPort,
        c1: SharedPort,
        underlay: SharedUnderlay,
    }

    fn rig(with_c1: bool) -> Rig {
        let tables = Arc::new(config(1, with_c1).validate().unwrap());
        let a1 = SharedPort::new(MemoryPort::new());
        let c1 = SharedPort::new(MemoryPort::new());
        let underlay =
            SharedUnderlay::new(MemoryUnderlay::new("192.168.100.1:4789".parse().unwrap()));
        let mut attach: HashMap<String, Box<dyn FrameIo>> = HashMap::new();
        attach.insert("tapa1".into(), Box::new(a1.clone()));
        attach.insert("tapc1".into(), Box::new(c1.clone()));
        let (tx, rx) = mpsc::channel();
        let worker = Worker::new(
            tables,
            Box::new(underlay.clone()),
            attach,
            rx,
            Arc::new(EventFd::new().unwrap()),
            Arc::new(Mutex::new(HashMap::new())),
        );
        Rig {
            worker,
            tx,
            a1,
            c1,
            underlay,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn sent_by_underlay(u: &SharedUnderlay) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut v = Vec::new();
        u.with(|u| u.drain_sent(|a, d| v.push((a, d.to_vec()))));
        v
    }

    fn sent_to(p: &SharedPort) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        p.with(|p| p.drain_sent(|f| v.push(f.to_vec())));
        v
    }

    fn snapshot(r: &mut Rig) -> Snapshot {
        let (tx, rx) = mpsc::channel();
        r.tx.send(Command::Snapshot(tx)).unwrap();
        assert!(r.worker.step());
        rx.recv().unwrap()
    }

    #[test]
    fn unicast_goes_to_its_vtep_and_back_to_its_port() {
        let mut r = rig(false);
        let out = eth(
            A2,
            A1,
            0x0800,
            &ipv4_udp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2, 20),
        );
        r.a1.with(|p| p.inject(&out));
        assert!(r.worker.step());
        let sent = sent_by_underlay(&r.underlay);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "192.168.100.2:4789".parse().unwrap());
        assert_eq!(&sent[0].1[..8], &[8, 0, 0, 0, 0, 0, 100, 0]);
        assert_eq!(&sent[0].1[8..], &out[..]);

        let back = eth(
            A1,
            A2,
            0x0800,
            &ipv4_udp(ip("10.0.0.2"), ip("10.0.0.1"), 2, 1, 20),
        );
        r.underlay
            .with(|u| u.inject("192.168.100.2:33333".parse().unwrap(), &vxlan(100, &back)));
        assert!(r.worker.step());
        assert_eq!(sent_to(&r.a1), vec![back]);
        let s = snapshot(&mut r);
        assert_eq!(
            s.port("vm-a1").map(|p| (p.rx_packets, p.tx_packets)),
            Some((1, 1))
        );
        assert_eq!((s.underlay.rx_packets, s.underlay.tx_packets), (1, 1));
        assert_eq!(s.drops.values().sum::<u64>(), 0);
        assert_eq!(
            r.worker.pool.available(),
            r.worker.pool.total(),
            "every buffer went back to the pool"
        );
    }

    #[test]
    fn broadcast_reaches_every_other_port_and_every_vtep_once() {
        let mut r = rig(true);
        let b = eth(
            MacAddr::BROADCAST,
            A1,
            0x0800,
            &ipv4_udp(ip("10.0.0.1"), ip("10.0.0.255"), 1, 2, 4),
        );
        r.a1.with(|p| p.inject(&b));
        assert!(r.worker.step());
        assert_eq!(sent_to(&r.c1), vec![b.clone()], "the other local port");
        assert!(sent_to(&r.a1).is_empty(), "never back to the sender");
        let mut dsts: Vec<SocketAddr> = sent_by_underlay(&r.underlay)
            .into_iter()
            .map(|(a, d)| {
                assert_eq!(&d[8..], &b[..]);
                a
            })
            .collect();
        dsts.sort();
        assert_eq!(
            dsts,
            vec![
                "192.168.100.2:4789".parse().unwrap(),
                "192.168.100.3:4789".parse().unwrap()
            ]
        );
        // From the underlay: local ports only.
        let b2 = eth(
            MacAddr::BROADCAST,
            A2,
            0x0800,
            &ipv4_udp(ip("10.0.0.2"), ip("10.0.0.255"), 1, 2, 4),
        );
        r.underlay
            .with(|u| u.inject("192.168.100.2:4789".parse().unwrap(), &vxlan(100, &b2)));
        assert!(r.worker.step());
        assert_eq!(sent_to(&r.a1), vec![b2.clone()]);
        assert_eq!(sent_to(&r.c1), vec![b2]);
        assert!(sent_by_underlay(&r.underlay).is_empty());
    }

    #[test]
    fn gso_super_frames_from_a_vm_leave_as_segments() {
        let mut r = rig(false);
        // A TCP/IPv4 super-frame with 3000 bytes of payload, gso_size 1000.
        let mut tcp = vec![
            0x30, 0x39, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 1, 0, 0, 0, 0, 0,
        ];
        tcp.extend(std::iter::repeat_n(7u8, 3000));
        let total = u16::try_from(20 + tcp.len()).unwrap();
        let mut ip4 = vec![
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip4[2..4].copy_from_slice(&total.to_be_bytes());
        ip4.extend(tcp);
        let f = eth(A2, A1, 0x0800, &ip4);
        let h = VnetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: GsoType::TcpV4,
            gso_ecn: false,
            hdr_len: 54,
            gso_size: 1000,
            csum_start: 34,
            csum_offset: 16,
        };
        r.a1.with(|p| p.inject_with_vnet(&f, h));
        assert!(r.worker.step());
        let sent = sent_by_underlay(&r.underlay);
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|(_, d)| d.len() == 8 + 14 + 20 + 20 + 1000));
        let s = snapshot(&mut r);
        assert_eq!(s.event_count(Event::GsoSegmented), 1);
    }

    #[test]
    fn reload_keeps_ports_that_stay_and_attaches_new_ones() {
        let mut r = rig(false);
        assert!(r.worker.step());
        // A new port (vm-c1) whose socket is handed over with the reload.
        let (done, wait) = mpsc::channel();
        let new = Arc::new(config(2, true).validate().unwrap());
        let c1 = r.c1.clone();
        r.tx.send(Command::Reload {
            tables: new,
            attach: vec![("tapc1".into(), Box::new(c1))],
            underlay: None,
            done,
        })
        .unwrap();
        assert!(r.worker.step());
        wait.recv().unwrap();
        // vm-a1 kept its socket: traffic to it still arrives there; vm-c1 is reachable locally.
        let to_c1 = eth(
            C1,
            A1,
            0x0800,
            &ipv4_udp(ip("10.0.0.1"), ip("10.0.0.3"), 1, 2, 4),
        );
        r.a1.with(|p| p.inject(&to_c1));
        assert!(r.worker.step());
        assert_eq!(sent_to(&r.c1), vec![to_c1]);
        let s = snapshot(&mut r);
        assert_eq!((s.revision, s.loads), (2, 2));
        assert!(s.port("vm-c1").is_some_and(|p| p.attached));
        assert_eq!(
            s.port("vm-a1").map(|p| p.rx_packets),
            Some(1),
            "counters kept across the reload"
        );
    }

    #[test]
    fn captures_record_both_directions_and_stop_on_request() {
        let mut r = rig(false);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a1.pcap");
        let w = weft_dataplane_io::PcapWriter::new(std::io::BufWriter::new(
            File::create(&file).unwrap(),
        ))
        .unwrap();
        let (done, wait) = mpsc::channel();
        r.tx.send(Command::StartCapture {
            target: "vm-a1".into(),
            capture: Capture::new(w, None),
            done,
        })
        .unwrap();
        assert!(r.worker.step());
        wait.recv().unwrap().unwrap();
        let out = eth(
            A2,
            A1,
            0x0800,
            &ipv4_udp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2, 4),
        );
        let back = eth(
            A1,
            A2,
            0x0800,
            &ipv4_udp(ip("10.0.0.2"), ip("10.0.0.1"), 2, 1, 4),
        );
        r.a1.with(|p| p.inject(&out));
        r.underlay
            .with(|u| u.inject("192.168.100.2:4789".parse().unwrap(), &vxlan(100, &back)));
        assert!(r.worker.step());
        let (done, wait) = mpsc::channel();
        r.tx.send(Command::StopCapture {
            target: "vm-a1".into(),
            done,
        })
        .unwrap();
        assert!(r.worker.step());
        assert_eq!(wait.recv().unwrap(), Ok(2));
        let mut recs: Vec<Vec<u8>> = weft_dataplane_io::PcapReader::new(File::open(&file).unwrap())
            .unwrap()
            .map(|r| r.unwrap().data)
            .collect();
        let mut want = vec![out, back];
        recs.sort();
        want.sort();
        assert_eq!(recs, want, "the frame out of the VM and the frame into it");

        // Unknown targets are refused.
        let (done, wait) = mpsc::channel();
        r.tx.send(Command::StopCapture {
            target: "nope".into(),
            done,
        })
        .unwrap();
        assert!(r.worker.step());
        assert!(wait.recv().unwrap().is_err());
    }

    #[test]
    fn a_full_port_ring_and_a_missing_port_are_counted_drops() {
        let mut r = rig(false);
        r.a1.with(|p| *p = std::mem::take(p).with_tx_capacity(1));
        for i in 0..3u8 {
            let back = eth(
                A1,
                A2,
                0x0800,
                &ipv4_udp(ip("10.0.0.2"), ip("10.0.0.1"), 2, u16::from(i), 4),
            );
            r.underlay
                .with(|u| u.inject("192.168.100.2:4789".parse().unwrap(), &vxlan(100, &back)));
        }
        assert!(r.worker.step());
        let s = snapshot(&mut r);
        assert_eq!(s.drop_count(DropReason::TxRingFull), 2, "{}", s.render());
        assert_eq!(s.port("vm-a1").map(|p| p.tx_packets), Some(1));
        // vm-c1 is configured but its interface is not attached.
        let mut r = rig(false);
        let (done, wait) = mpsc::channel();
        r.tx.send(Command::Reload {
            tables: Arc::new(config(2, true).validate().unwrap()),
            attach: vec![],
            underlay: None,
            done,
        })
        .unwrap();
        assert!(r.worker.step());
        wait.recv().unwrap();
        r.a1.with(|p| {
            p.inject(&eth(
                C1,
                A1,
                0x0800,
                &ipv4_udp(ip("10.0.0.1"), ip("10.0.0.3"), 1, 2, 4),
            ))
        });
        assert!(r.worker.step());
        assert_eq!(snapshot(&mut r).drop_count(DropReason::PortDetached), 1);
    }

    #[test]
    fn stop_ends_the_worker() {
        let mut r = rig(false);
        r.tx.send(Command::Stop).unwrap();
        assert!(!r.worker.step());
    }
}
