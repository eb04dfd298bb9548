//! weft-dataplane-io: Weft's packet I/O backends.
//!
//! - [`afpacket`]: AF_PACKET sockets with TPACKET_V3 mmap rings, for VM-facing interfaces (tap,
//!   veth), with virtio-net headers so offloaded frames (GSO, partial checksums) are visible.
//! - [`udp`]: the VXLAN underlay UDP socket, batched with `recvmmsg`/`sendmmsg`, receiving
//!   straight into pool buffers at [`weft_dataplane::HEADROOM`].
//! - [`memory`]: deterministic in-memory stand-ins for both, for tests and benches.
//! - [`pcap`]: classic pcap writer and reader.
//! - [`sys`]: the thin system-call layer; the only place with `unsafe` code.
//!
//! Workers are written against two traits, [`FrameIo`] (Ethernet frames in and out of a local
//! port) and [`DatagramIo`] (UDP datagrams to and from remote VTEPs), so the same loop runs over
//! real sockets or memory queues. No method blocks: every socket is non-blocking, and readiness
//! comes from [`sys::poll`] on [`FrameIo::raw_fd`] / [`DatagramIo::raw_fd`]. The socket backends
//! never allocate per packet (the memory backends recycle their byte vectors, so they do not in
//! a steady state either).
#![deny(unsafe_code)]

use std::fmt::Debug;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use weft_dataplane::offload::VnetHdr;
use weft_dataplane::{Batch, BufPool};

pub mod afpacket;
pub mod memory;
pub mod pcap;
#[allow(unsafe_code)]
pub mod sys;
pub mod udp;

pub use afpacket::{AfPacket, AfPacketConfig, AfPacketError, AfPacketStats, KernelStats};
pub use memory::{MemoryPort, MemoryUnderlay, SharedPort, SharedUnderlay};
pub use pcap::{PcapError, PcapReader, PcapRecord, PcapWriter};
pub use udp::{UdpConfig, UdpError, UdpUnderlay};

/// One received Ethernet frame, borrowed from the backend for the duration of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFrame<'a> {
    /// The frame from its MAC header on (at most `wire_len` bytes; fewer if `truncated`).
    /// An 802.1Q tag the kernel stripped is *not* in here: see `vlan_tci`.
    pub data: &'a [u8],
    /// The virtio-net header the kernel wrote in front of the frame, when the backend was
    /// opened with virtio-net headers. A GSO super-frame or a frame with `NEEDS_CSUM` shows up
    /// here ([`VnetHdr::needs_work`]).
    pub vnet: Option<VnetHdr>,
    /// The frame's length on the wire (`tp_len`).
    pub wire_len: u32,
    /// `data` holds fewer bytes than `wire_len` (the ring block was too small for the frame).
    pub truncated: bool,
    /// The L4 checksum is not computed yet (`TP_STATUS_CSUMNOTREADY`: a locally generated
    /// frame with a partial checksum; the virtio-net header says where to complete it).
    pub csum_not_ready: bool,
    /// The kernel or the device already validated the L4 checksum (`TP_STATUS_CSUM_VALID`).
    pub csum_valid: bool,
    /// The 802.1Q/802.1ad tag control information the kernel removed from the frame, if any.
    /// Linux strips the outermost VLAN tag of every received frame into packet metadata
    /// (software or hardware "VLAN offload") before AF_PACKET sees it, so `data` starts with
    /// the MACs followed directly by the inner EtherType. Callers that forward frames
    /// unchanged must re-insert the tag (TPID `vlan_tpid`, TCI this value) themselves, or drop
    /// tagged frames on ports that must not carry them.
    pub vlan_tci: Option<u16>,
    /// The TPID of the stripped tag when the kernel reported it (`TP_STATUS_VLAN_TPID_VALID`),
    /// e.g. `0x8100` or `0x88a8`. `None` with `vlan_tci` set means 802.1Q (`0x8100`).
    pub vlan_tpid: Option<u16>,
}

impl<'a> RxFrame<'a> {
    /// A plain frame: complete, no offload header, no VLAN tag, checksum status unknown.
    pub fn plain(data: &'a [u8]) -> Self {
        RxFrame {
            data,
            vnet: None,
            wire_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            truncated: false,
            csum_not_ready: false,
            csum_valid: false,
            vlan_tci: None,
            vlan_tpid: None,
        }
    }
}

/// What happened to a frame handed to [`FrameIo::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a frame that was not queued is dropped unless the caller handles it"]
pub enum SendOutcome {
    /// Copied into the TX ring (or queue); it leaves on the next flush.
    Queued,
    /// No free slot: the kernel still owns the next one. Flush, then retry or drop.
    RingFull,
    /// The frame (plus its virtio-net header) is larger than a TX slot.
    TooBig,
}

/// Counts from one [`DatagramIo::recv_batch`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvStats {
    /// Datagrams appended to the batch.
    pub received: u64,
    /// Datagrams dropped because they did not fit a buffer (`MSG_TRUNC`).
    pub truncated: u64,
    /// Datagrams dropped because the kernel reported no usable sender address.
    pub bad_peer: u64,
}

/// Counts from one [`DatagramIo::send_batch`] call. Every item is counted exactly once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams refused with `EMSGSIZE` (larger than the path MTU with PMTU discovery on, or
    /// than the largest UDP datagram).
    pub too_big: u64,
    /// Datagrams dropped because the socket buffer or the device queue was full
    /// (`EAGAIN`/`ENOBUFS`).
    pub would_block: u64,
    /// Datagrams refused with another error (no route, wrong address family, ...).
    pub errors: u64,
}

impl SendStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &SendStats) {
        self.sent += other.sent;
        self.too_big += other.too_big;
        self.would_block += other.would_block;
        self.errors += other.errors;
    }
}

impl RecvStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &RecvStats) {
        self.received += other.received;
        self.truncated += other.truncated;
        self.bad_peer += other.bad_peer;
    }
}

/// Ethernet frames in and out of one local port (AF_PACKET ring or memory queue).
pub trait FrameIo: Send + Debug {
    /// Hands up to `max` received frames to `f`, returns how many. Never blocks; 0 when
    /// nothing is ready.
    fn recv(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize>;
    /// Queues one frame for transmission (sent on [`FrameIo::flush`]). A frame the kernel would
    /// reject outright (shorter than an Ethernet header) is an `InvalidInput` error.
    fn send(&mut self, frame: &[u8]) -> io::Result<SendOutcome>;
    /// Transmits what [`FrameIo::send`] queued.
    fn flush(&mut self) -> io::Result<()>;
    /// The descriptor to poll for readability, if the backend has one.
    fn raw_fd(&self) -> Option<RawFd>;

    /// Frames the kernel dropped before they could be read (ring overruns), since the socket
    /// was opened. Backends without such a counter report 0.
    fn kernel_drops(&mut self) -> io::Result<u64> {
        Ok(0)
    }

    /// The longest frame [`FrameIo::send`] accepts.
    fn max_tx_frame(&self) -> usize {
        usize::MAX
    }
}

/// UDP datagrams to and from remote VTEPs (underlay socket or memory queue).
pub trait DatagramIo: Send + Debug {
    /// Receives datagrams into buffers from `pool`, appended to `out` (each at
    /// [`weft_dataplane::HEADROOM`], `meta.source = Source::Underlay(sender)`), as many as
    /// `out`'s free slots and the pool allow. Never blocks.
    fn recv_batch(&mut self, pool: &mut BufPool, out: &mut Batch) -> io::Result<RecvStats>;
    /// Sends every item of `items`, each counted once in the returned stats. Never blocks:
    /// what the socket cannot take now is dropped and counted.
    fn send_batch(
        &mut self,
        items: &mut dyn Iterator<Item = (SocketAddr, &[u8])>,
    ) -> io::Result<SendStats>;
    /// The descriptor to poll for readability, if the backend has one.
    fn raw_fd(&self) -> Option<RawFd>;
}
