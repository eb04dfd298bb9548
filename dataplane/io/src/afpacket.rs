//! AF_PACKET sockets with TPACKET_V3 memory-mapped rings, for VM-facing interfaces (tap, veth).
//!
//! One socket per interface, bound to it by index, with two rings in one shared mapping:
//!
//! ```text
//!   kernel ──fills──► RX ring: block_count blocks of block_size bytes, each holding many
//!                     variable-size frames; a block is handed to user space when full or
//!                     after block_timeout_ms, and handed back by recv() once all its
//!                     frames were delivered
//!   send() ──copies─► TX ring: tx_frame_count fixed slots of tx_frame_size bytes;
//!                     flush() asks the kernel to transmit every queued slot
//! ```
//!
//! The ownership protocol for blocks and slots (status words, memory ordering, when a
//! reference into the mapping may exist) is in `sys::ring`; this module only parses the
//! blocks it is handed as ordinary byte slices, so every offset the kernel wrote is checked
//! against the block's bounds and a bad one drops the rest of the block
//! ([`AfPacketStats::rx_malformed_blocks`]) instead of reading outside it.
//!
//! Choices made at [`AfPacket::open`]:
//!
//! - The socket is created with protocol 0 (receives nothing) and starts receiving only when
//!   bound to the interface with `ETH_P_ALL`: a socket created with `ETH_P_ALL` would capture
//!   frames of *every* interface until bound, and could leak another port's traffic into this
//!   port's ring.
//! - `PACKET_VNET_HDR` (on by default): every received frame is preceded by a virtio-net header
//!   (GSO super-frames and partial checksums become visible as [`RxFrame::vnet`]), and every
//!   transmitted frame is written with one (zeroed by [`AfPacket::send`]: a plain frame).
//! - `PACKET_IGNORE_OUTGOING`: frames transmitted on the interface (ours, or the host
//!   stack's) are not received back.
//! - `PACKET_QDISC_BYPASS`: transmission skips the qdisc layer (the device's queue still
//!   applies).
//! - `PACKET_LOSS`: a TX slot the kernel rejects as malformed is skipped and released.
//!   Without it the kernel marks the slot `TP_STATUS_WRONG_FORMAT` and stops at it, leaving
//!   every later slot unsent until user space intervenes. [`AfPacket::send`] rejects what it
//!   can predict (runt frames, oversize for a slot); slots are still checked for
//!   `WRONG_FORMAT` when reused and counted in [`AfPacketStats::tx_wrong_format`].
//! - `SO_SNDBUF` covers the TX ring: frames in flight are charged to the socket's send
//!   buffer, and a too-small buffer would stall the ring with `EAGAIN`.
//!
//! Without virtio-net headers the kernel refuses (and, with `PACKET_LOSS`, silently skips)
//! frames larger than the interface MTU plus the Ethernet and one VLAN header; with them,
//! oversized non-GSO frames are dropped by the device instead.

use std::io;
use std::mem::offset_of;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use weft_dataplane::offload::VnetHdr;

use crate::sys::ring::{PacketRings, TX_DATA_OFFSET, TxSubmit};
use crate::sys::socket::{bind_packet, getsockopt, send_kick, setsockopt, socket};
use crate::{FrameIo, RxFrame, SendOutcome, sys};

/// Length of an Ethernet header; shorter frames are refused by the kernel.
const ETH_HLEN: usize = 14;
/// `frame_size` given to the kernel for the RX ring. TPACKET_V3 packs variable-size frames into
/// blocks and ignores it except for consistency checks (it must divide into the block).
const RX_REQ_FRAME_SIZE: usize = 2048;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum AfPacketError {
    /// The configuration cannot be turned into rings.
    #[error("{ifname}: invalid AF_PACKET configuration: {reason}")]
    Config {
        /// The interface.
        ifname: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A setup step failed.
    #[error("{ifname}: {step} failed: {source}")]
    Setup {
        /// The interface.
        ifname: String,
        /// The failing step, e.g. `setsockopt(PACKET_RX_RING)`.
        step: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A frame handed to `send` that the kernel would reject; nothing was queued.
    #[error("{ifname}: invalid frame: {reason}")]
    InvalidFrame {
        /// The interface.
        ifname: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An operation on the open socket failed.
    #[error("{ifname}: {op} failed: {source}")]
    Io {
        /// The interface.
        ifname: String,
        /// The operation.
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

impl From<AfPacketError> for io::Error {
    fn from(e: AfPacketError) -> io::Error {
        let kind = match &e {
            AfPacketError::Config { .. } | AfPacketError::InvalidFrame { .. } => {
                io::ErrorKind::InvalidInput
            }
            AfPacketError::Setup { source, .. } | AfPacketError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

/// Ring sizes and socket options for [`AfPacket::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Bytes per RX block: a multiple of the page size. Also the largest frame the ring
    /// holds whole (minus ~100 bytes of headers), so keep it above 64 KiB to receive GSO
    /// super-frames untruncated. Default 256 KiB.
    pub block_size: usize,
    /// Number of RX blocks. Default 8 (2 MiB of RX ring with the default block size).
    pub block_count: usize,
    /// Milliseconds after which the kernel hands a partly filled block to user space: the
    /// worst-case added latency at low packet rates. 0 lets the kernel choose. Default 2.
    pub block_timeout_ms: u32,
    /// Bytes per TX slot, a multiple of 16. A slot holds a 48-byte `tpacket3_hdr`, the 10-byte
    /// virtio-net header and the frame. Default 16 KiB: the frames we transmit carry a zeroed
    /// virtio-net header (no GSO), so the device drops anything longer than its MTU plus L2
    /// headers anyway, and 16 KiB holds a 9000-byte-MTU jumbo frame with room to spare; 64 KiB
    /// slots would only be needed to hand GSO super-frames to a VM, at 4x the memory.
    pub tx_frame_size: usize,
    /// Number of TX slots (rounded up to fill whole blocks). Default 128: two full
    /// [`weft_dataplane::BATCH_SIZE`] batches in flight, 2 MiB with the default slot size.
    pub tx_frame_count: usize,
    /// Exchange virtio-net headers with the kernel (`PACKET_VNET_HDR`). Default true.
    pub vnet_hdr: bool,
    /// Join the `PACKET_FANOUT_HASH` group with this id (several sockets on one interface
    /// share its traffic by flow hash). Default none.
    pub fanout: Option<u16>,
    /// Put the interface in promiscuous mode for the socket's lifetime (a VM port carries
    /// frames for any MAC behind it). Default true.
    pub promiscuous: bool,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            block_size: 1 << 18,
            block_count: 8,
            block_timeout_ms: 2,
            tx_frame_size: 1 << 14,
            tx_frame_count: 128,
            vnet_hdr: true,
            fanout: None,
            promiscuous: true,
        }
    }
}

/// Ring requests derived from a configuration.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    rx: libc::tpacket_req3,
    tx: libc::tpacket_req3,
    tx_bytes: usize,
}

impl AfPacketConfig {
    /// The ring requests for the kernel, for pages of `page` bytes.
    fn geometry(&self, page: usize) -> Result<Geometry, &'static str> {
        let u32_of = |v: usize, what| u32::try_from(v).map_err(|_| what);
        if self.block_size < page || !self.block_size.is_multiple_of(page) {
            return Err("block_size must be a non-zero multiple of the page size");
        }
        if self.block_count == 0 {
            return Err("block_count must be at least 1");
        }
        let rx_bytes = self
            .block_size
            .checked_mul(self.block_count)
            .ok_or("RX ring too large")?;
        u32_of(rx_bytes, "RX ring too large (more than 4 GiB)")?;
        let rx_frames = (self.block_size / RX_REQ_FRAME_SIZE) * self.block_count;
        if !self.tx_frame_size.is_multiple_of(16)
            || self.tx_frame_size < TX_DATA_OFFSET + VnetHdr::LEN + 64
        {
            return Err("tx_frame_size must be a multiple of 16 and hold a 64-byte frame");
        }
        if self.tx_frame_count == 0 {
            return Err("tx_frame_count must be at least 1");
        }
        let tx_block = self
            .tx_frame_size
            .div_ceil(page)
            .checked_mul(page)
            .ok_or("TX slot too large")?;
        let per_block = tx_block / self.tx_frame_size;
        let tx_blocks = self.tx_frame_count.div_ceil(per_block);
        let tx_frames = per_block
            .checked_mul(tx_blocks)
            .ok_or("TX ring too large")?;
        let tx_bytes = tx_block.checked_mul(tx_blocks).ok_or("TX ring too large")?;
        u32_of(tx_bytes, "TX ring too large (more than 4 GiB)")?;
        rx_bytes.checked_add(tx_bytes).ok_or("rings too large")?;
        Ok(Geometry {
            rx: libc::tpacket_req3 {
                tp_block_size: u32_of(self.block_size, "block_size")?,
                tp_block_nr: u32_of(self.block_count, "block_count")?,
                tp_frame_size: u32_of(RX_REQ_FRAME_SIZE, "frame size")?,
                tp_frame_nr: u32_of(rx_frames, "RX ring too large")?,
                tp_retire_blk_tov: self.block_timeout_ms,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            },
            tx: libc::tpacket_req3 {
                tp_block_size: u32_of(tx_block, "TX block")?,
                tp_block_nr: u32_of(tx_blocks, "TX block count")?,
                tp_frame_size: u32_of(self.tx_frame_size, "tx_frame_size")?,
                tp_frame_nr: u32_of(tx_frames, "tx_frame_count")?,
                tp_retire_blk_tov: 0,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            },
            tx_bytes,
        })
    }
}

/// Counters kept by an [`AfPacket`] (monotonic; never reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfPacketStats {
    /// Frames handed to `recv` callbacks.
    pub rx_frames: u64,
    /// RX blocks returned to the kernel.
    pub rx_blocks: u64,
    /// RX blocks abandoned because an offset or length in them was out of bounds (a kernel
    /// bug or a ring mix-up; never expected).
    pub rx_malformed_blocks: u64,
    /// Frames queued in the TX ring.
    pub tx_queued: u64,
    /// `send` calls refused because the next slot was still owned by the kernel.
    pub tx_ring_full: u64,
    /// `send` calls refused because the frame did not fit a slot.
    pub tx_too_big: u64,
    /// `send` calls refused with [`AfPacketError::InvalidFrame`] (runt frame, offload header
    /// without `vnet_hdr`).
    pub tx_invalid: u64,
    /// Reused slots the kernel had marked `TP_STATUS_WRONG_FORMAT`.
    pub tx_wrong_format: u64,
    /// Transmit kicks (`send(fd, NULL, 0)`) made by `flush`.
    pub tx_kicks: u64,
    /// Kicks that returned `EAGAIN`/`ENOBUFS` (the frames stay queued for the next flush).
    pub tx_kicks_would_block: u64,
}

/// The kernel's counters for the socket (`PACKET_STATISTICS`), accumulated across reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames that reached the socket, including the dropped ones.
    pub packets: u64,
    /// Frames dropped because no RX block was free (the consumer is too slow).
    pub drops: u64,
    /// Times the RX queue froze because the next block was still owned by user space.
    pub queue_freezes: u64,
}

/// Where `recv` stopped inside a block when it hit its `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    /// Index of the next frame in the block.
    next: u32,
    /// Offset of that frame's `tpacket3_hdr` in the block.
    offset: usize,
}

/// An AF_PACKET socket with TPACKET_V3 RX and TX rings bound to one interface. See the module
/// docs for the model; [`FrameIo`] is its worker-facing interface.
#[derive(Debug)]
pub struct AfPacket {
    // Declared before `fd`: unmapped before the descriptor is closed.
    rings: PacketRings,
    fd: OwnedFd,
    name: String,
    ifindex: u32,
    vnet_hdr: bool,
    rx_block: usize,
    rx_resume: Option<Resume>,
    tx_head: usize,
    tx_unflushed: bool,
    stats: AfPacketStats,
    kernel: KernelStats,
}

impl AfPacket {
    /// Opens a socket on interface `ifname` (in the calling thread's network namespace) with
    /// the rings and options of `cfg`. Errors name the interface and the failing step.
    pub fn open(ifname: &str, cfg: &AfPacketConfig) -> Result<AfPacket, AfPacketError> {
        let geo = cfg
            .geometry(sys::page_size())
            .map_err(|reason| AfPacketError::Config {
                ifname: ifname.to_owned(),
                reason,
            })?;
        let step = |step: &'static str| {
            move |source: io::Error| AfPacketError::Setup {
                ifname: ifname.to_owned(),
                step,
                source,
            }
        };
        let one: libc::c_int = 1;
        let ifindex = sys::interface_index(ifname).map_err(step("if_nametoindex"))?;
        let fd = socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
        .map_err(step("socket(AF_PACKET, SOCK_RAW)"))?;
        let b = fd.as_fd();
        if cfg.vnet_hdr {
            setsockopt(b, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one)
                .map_err(step("setsockopt(PACKET_VNET_HDR)"))?;
        }
        let v3 = libc::c_int::try_from(libc::tpacket_versions::TPACKET_V3 as u32)
            .map_err(|_| io::Error::other("TPACKET_V3"))
            .map_err(step("setsockopt(PACKET_VERSION)"))?;
        setsockopt(b, libc::SOL_PACKET, libc::PACKET_VERSION, &v3)
            .map_err(step("setsockopt(PACKET_VERSION)"))?;
        setsockopt(b, libc::SOL_PACKET, libc::PACKET_LOSS, &one)
            .map_err(step("setsockopt(PACKET_LOSS)"))?;
        let rings = PacketRings::setup(b, &geo.rx, &geo.tx).map_err(|(s, e)| step(s)(e))?;
        setsockopt(b, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)
            .map_err(step("setsockopt(PACKET_IGNORE_OUTGOING)"))?;
        setsockopt(b, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one)
            .map_err(step("setsockopt(PACKET_QDISC_BYPASS)"))?;
        // The kernel doubles the value; ask for the TX ring's size so in-flight frames fit.
        let sndbuf = libc::c_int::try_from(geo.tx_bytes).unwrap_or(libc::c_int::MAX);
        setsockopt(b, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf)
            .or_else(|_| setsockopt(b, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf))
            .map_err(step("setsockopt(SO_SNDBUF)"))?;
        if cfg.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: libc::c_int::try_from(ifindex)
                    .map_err(|_| io::Error::other("ifindex out of range"))
                    .map_err(step("setsockopt(PACKET_ADD_MEMBERSHIP)"))?,
                mr_type: libc::c_ushort::try_from(libc::PACKET_MR_PROMISC).unwrap_or_default(),
                mr_alen: 0,
                mr_address: [0; 8],
            };
            setsockopt(b, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(step("setsockopt(PACKET_ADD_MEMBERSHIP, PROMISC)"))?;
        }
        let eth_p_all = u16::try_from(libc::ETH_P_ALL).unwrap_or(3);
        bind_packet(b, ifindex, eth_p_all).map_err(step("bind"))?;
        if let Some(group) = cfg.fanout {
            let arg = libc::c_int::from(group)
                | libc::c_int::try_from(libc::PACKET_FANOUT_HASH << 16).unwrap_or(0);
            setsockopt(b, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
                .map_err(step("setsockopt(PACKET_FANOUT)"))?;
        }
        Ok(AfPacket {
            rings,
            fd,
            name: ifname.to_owned(),
            ifindex,
            vnet_hdr: cfg.vnet_hdr,
            rx_block: 0,
            rx_resume: None,
            tx_head: 0,
            tx_unflushed: false,
            stats: AfPacketStats::default(),
            kernel: KernelStats::default(),
        })
    }

    /// Hands up to `max` received frames to `f` and returns how many. Blocks are returned to
    /// the kernel as soon as all their frames were handed out; when `max` is reached inside a
    /// block, the next call continues there. Never blocks: poll [`AfPacket::fd`] for `POLLIN`
    /// to wait. A frame only becomes visible once its block is retired (full, or
    /// `block_timeout_ms` after its first frame).
    ///
    /// Reading the ring involves no system call; the `Result` leaves room for backends that
    /// can fail here, and is currently always `Ok`.
    pub fn recv(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RxFrame<'_>),
    ) -> Result<usize, AfPacketError> {
        let mut delivered = 0;
        while delivered < max {
            let idx = self.rx_block;
            let walk = {
                let Some(block) = self.rings.rx_user_block(idx) else {
                    break;
                };
                walk_block(
                    block,
                    self.rx_resume.take(),
                    max - delivered,
                    self.vnet_hdr,
                    f,
                )
            };
            delivered += walk.delivered;
            match walk.end {
                WalkEnd::Paused(r) => {
                    self.rx_resume = Some(r);
                    break;
                }
                WalkEnd::Done => {}
                WalkEnd::Malformed => self.stats.rx_malformed_blocks += 1,
            }
            self.rings.rx_release(idx);
            self.stats.rx_blocks += 1;
            self.rx_block = (idx + 1) % self.rings.rx_blocks();
        }
        self.stats.rx_frames += delivered as u64;
        Ok(delivered)
    }

    /// Copies `frame` (from its MAC header) into the next TX slot, behind a zeroed virtio-net
    /// header when the socket has them. It is transmitted by the next [`AfPacket::flush`].
    /// A full ring or a frame too big for a slot are outcomes; a frame shorter than an Ethernet
    /// header, which the kernel would reject, is [`AfPacketError::InvalidFrame`].
    pub fn send(&mut self, frame: &[u8]) -> Result<SendOutcome, AfPacketError> {
        self.submit(None, frame)
    }

    /// Like [`AfPacket::send`], with an explicit virtio-net header (e.g. a GSO super-frame for a
    /// VM that accepts them). [`AfPacketError::InvalidFrame`] if the socket has no virtio-net
    /// headers and `vnet` asks for offload work.
    pub fn send_with_vnet(
        &mut self,
        vnet: &VnetHdr,
        frame: &[u8],
    ) -> Result<SendOutcome, AfPacketError> {
        self.submit(Some(vnet), frame)
    }

    fn invalid(&mut self, reason: &'static str) -> AfPacketError {
        self.stats.tx_invalid += 1;
        AfPacketError::InvalidFrame {
            ifname: self.name.clone(),
            reason,
        }
    }

    fn submit(
        &mut self,
        vnet: Option<&VnetHdr>,
        frame: &[u8],
    ) -> Result<SendOutcome, AfPacketError> {
        if frame.len() < ETH_HLEN {
            return Err(self.invalid("frame shorter than an Ethernet header"));
        }
        let mut hdr = [0u8; VnetHdr::LEN];
        let prefix: &[u8] = if self.vnet_hdr {
            vnet.unwrap_or(&VnetHdr::NONE).emit(&mut hdr);
            &hdr
        } else if vnet.is_some_and(VnetHdr::needs_work) {
            return Err(self.invalid("offload header on a socket without virtio-net headers"));
        } else {
            &[]
        };
        Ok(match self.rings.tx_submit(self.tx_head, prefix, frame) {
            TxSubmit::Queued { wrong_format } => {
                self.stats.tx_wrong_format += u64::from(wrong_format);
                self.stats.tx_queued += 1;
                self.tx_head = (self.tx_head + 1) % self.rings.tx_slots();
                self.tx_unflushed = true;
                SendOutcome::Queued
            }
            TxSubmit::Busy => {
                self.stats.tx_ring_full += 1;
                SendOutcome::RingFull
            }
            TxSubmit::TooBig => {
                self.stats.tx_too_big += 1;
                SendOutcome::TooBig
            }
        })
    }

    /// Asks the kernel to transmit the queued frames (`send(fd, NULL, 0, MSG_DONTWAIT)`), if
    /// any were queued since the last complete flush. `EAGAIN`/`ENOBUFS` (send buffer or device
    /// queue full) are not errors: the frames stay queued and the next flush retries. Errors
    /// are for a socket that cannot transmit at all (interface down or gone).
    pub fn flush(&mut self) -> Result<(), AfPacketError> {
        if !self.tx_unflushed {
            return Ok(());
        }
        loop {
            match send_kick(self.fd.as_fd()) {
                Ok(_) => {
                    self.stats.tx_kicks += 1;
                    // The kernel transmits slots in order and stops early when it runs out of
                    // send buffer; if the newest slot is still merely requested, stay unflushed.
                    let newest = self
                        .tx_head
                        .checked_sub(1)
                        .unwrap_or(self.rings.tx_slots() - 1);
                    self.tx_unflushed = self.rings.tx_requested(newest);
                    return Ok(());
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN | libc::ENOBUFS) => {
                        self.stats.tx_kicks += 1;
                        self.stats.tx_kicks_would_block += 1;
                        return Ok(());
                    }
                    _ => {
                        return Err(AfPacketError::Io {
                            ifname: self.name.clone(),
                            op: "send (TX ring kick)",
                            source: e,
                        });
                    }
                },
            }
        }
    }

    /// Whether frames are queued that the kernel has not been asked (successfully) to send.
    pub fn needs_flush(&self) -> bool {
        self.tx_unflushed
    }

    /// Reads the kernel's counters (`PACKET_STATISTICS`, which resets them on every read) and
    /// returns the totals since the socket was opened.
    pub fn kernel_stats(&mut self) -> Result<KernelStats, AfPacketError> {
        let st: libc::tpacket_stats_v3 =
            getsockopt(self.fd.as_fd(), libc::SOL_PACKET, libc::PACKET_STATISTICS).map_err(
                |source| AfPacketError::Io {
                    ifname: self.name.clone(),
                    op: "getsockopt(PACKET_STATISTICS)",
                    source,
                },
            )?;
        self.kernel.packets += u64::from(st.tp_packets);
        self.kernel.drops += u64::from(st.tp_drops);
        self.kernel.queue_freezes += u64::from(st.tp_freeze_q_cnt);
        Ok(self.kernel)
    }

    /// This socket's counters.
    pub fn stats(&self) -> AfPacketStats {
        self.stats
    }

    /// The socket's descriptor, to poll for `POLLIN` (a retired RX block is ready).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface name given to [`AfPacket::open`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether frames carry virtio-net headers.
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// The longest frame [`AfPacket::send`] accepts.
    pub fn max_tx_frame(&self) -> usize {
        let hdr = if self.vnet_hdr { VnetHdr::LEN } else { 0 };
        self.rings.tx_capacity() - hdr
    }

    /// Number of TX slots.
    pub fn tx_slots(&self) -> usize {
        self.rings.tx_slots()
    }
}

impl FrameIo for AfPacket {
    fn recv(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        Ok(AfPacket::recv(self, max, f)?)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<SendOutcome> {
        Ok(AfPacket::send(self, frame)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(AfPacket::flush(self)?)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd())
    }

    fn kernel_drops(&mut self) -> io::Result<u64> {
        Ok(self.kernel_stats()?.drops)
    }

    fn max_tx_frame(&self) -> usize {
        AfPacket::max_tx_frame(self)
    }
}

// Field offsets in a TPACKET_V3 RX block (native byte order, as the kernel writes them).
const BLK_NUM_PKTS: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BLK_FIRST_PKT: usize = offset_of!(libc::tpacket_block_desc, hdr)
    + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
const BLK_HDR_LEN: usize = size_of::<libc::tpacket_block_desc>();
const PKT_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const PKT_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const PKT_LEN: usize = offset_of!(libc::tpacket3_hdr, tp_len);
const PKT_STATUS: usize = offset_of!(libc::tpacket3_hdr, tp_status);
const PKT_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);
const PKT_VLAN_TCI: usize =
    offset_of!(libc::tpacket3_hdr, hv1) + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci);
const PKT_VLAN_TPID: usize =
    offset_of!(libc::tpacket3_hdr, hv1) + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid);
const PKT_HDR_LEN: usize = size_of::<libc::tpacket3_hdr>();

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    let bytes = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

/// How a block walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkEnd {
    /// Every frame was delivered: return the block.
    Done,
    /// The budget ran out with frames left: keep the block, continue here.
    Paused(Resume),
    /// A header pointed outside the block: return it, dropping the rest.
    Malformed,
}

#[derive(Debug)]
struct Walk {
    delivered: usize,
    end: WalkEnd,
}

/// Delivers the frames of one user-owned block to `f`, starting at `resume` (or the first
/// frame), at most `budget` of them. Every offset is checked against `block`.
fn walk_block(
    block: &[u8],
    resume: Option<Resume>,
    budget: usize,
    vnet_hdr: bool,
    f: &mut dyn FnMut(RxFrame<'_>),
) -> Walk {
    let mut delivered = 0;
    let end = (|| {
        let num = read_u32(block, BLK_NUM_PKTS)?;
        let (mut i, mut off) = match resume {
            Some(r) => (r.next, r.offset),
            None => (0, usize::try_from(read_u32(block, BLK_FIRST_PKT)?).ok()?),
        };
        if num == 0 {
            return Some(WalkEnd::Done);
        }
        if off < BLK_HDR_LEN {
            return None;
        }
        while i < num {
            if delivered == budget {
                return Some(WalkEnd::Paused(Resume {
                    next: i,
                    offset: off,
                }));
            }
            let (frame, next) = parse_frame(block, off, vnet_hdr)?;
            f(frame);
            delivered += 1;
            i += 1;
            if i < num {
                if next == 0 {
                    return None;
                }
                off = off.checked_add(usize::try_from(next).ok()?)?;
            }
        }
        Some(WalkEnd::Done)
    })()
    .unwrap_or(WalkEnd::Malformed);
    Walk { delivered, end }
}

/// Parses the frame whose `tpacket3_hdr` is at `off`; returns it and its `tp_next_offset`.
fn parse_frame(block: &[u8], off: usize, vnet_hdr: bool) -> Option<(RxFrame<'_>, u32)> {
    let hdr_end = off.checked_add(PKT_HDR_LEN)?;
    let h = block.get(off..hdr_end)?;
    let next = read_u32(h, PKT_NEXT)?;
    let snaplen = usize::try_from(read_u32(h, PKT_SNAPLEN)?).ok()?;
    let wire_len = read_u32(h, PKT_LEN)?;
    let status = read_u32(h, PKT_STATUS)?;
    let mac = off.checked_add(usize::from(read_u16(h, PKT_MAC)?))?;
    let vlan_tci = read_u32(h, PKT_VLAN_TCI)?;
    let vlan_tpid = read_u16(h, PKT_VLAN_TPID)?;
    let data = block.get(mac..mac.checked_add(snaplen)?)?;
    let vnet = if vnet_hdr {
        let start = mac.checked_sub(VnetHdr::LEN)?;
        if start < hdr_end {
            return None;
        }
        Some(VnetHdr::parse(block.get(start..mac)?)?)
    } else {
        if mac < hdr_end {
            return None;
        }
        None
    };
    let vlan_valid = status & libc::TP_STATUS_VLAN_VALID != 0;
    let frame = RxFrame {
        data,
        vnet,
        wire_len,
        truncated: u64::try_from(snaplen).unwrap_or(u64::MAX) < u64::from(wire_len),
        csum_not_ready: status & libc::TP_STATUS_CSUMNOTREADY != 0,
        csum_valid: status & libc::TP_STATUS_CSUM_VALID != 0,
        vlan_tci: vlan_valid.then(|| u16::try_from(vlan_tci & 0xffff).unwrap_or_default()),
        vlan_tpid: (vlan_valid && status & libc::TP_STATUS_VLAN_TPID_VALID != 0)
            .then_some(vlan_tpid),
    };
    Some((frame, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: usize = 4096;

    fn u32_of(v: usize) -> u32 {
        u32::try_from(v).unwrap()
    }

    /// Builds a V3 block the way the kernel lays it out: frames at 16-aligned offsets, each
    /// `tpacket3_hdr` followed by room for `sockaddr_ll`, the virtio-net header just before the
    /// MAC header.
    fn block_with(frames: &[(&[u8], u32)], vnet: bool) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK];
        b[BLK_NUM_PKTS..BLK_NUM_PKTS + 4].copy_from_slice(&u32_of(frames.len()).to_ne_bytes());
        let first = 48usize;
        b[BLK_FIRST_PKT..BLK_FIRST_PKT + 4].copy_from_slice(&u32_of(first).to_ne_bytes());
        let mut off = first;
        for (i, (data, status)) in frames.iter().enumerate() {
            let mac = 96 + if vnet { VnetHdr::LEN } else { 0 };
            let total = (mac + data.len()).next_multiple_of(16);
            let next = if i + 1 == frames.len() {
                0
            } else {
                u32_of(total)
            };
            let h = &mut b[off..];
            h[PKT_NEXT..PKT_NEXT + 4].copy_from_slice(&next.to_ne_bytes());
            h[PKT_SNAPLEN..PKT_SNAPLEN + 4].copy_from_slice(&u32_of(data.len()).to_ne_bytes());
            h[PKT_LEN..PKT_LEN + 4].copy_from_slice(&(u32_of(data.len()) + 7).to_ne_bytes());
            h[PKT_STATUS..PKT_STATUS + 4].copy_from_slice(&status.to_ne_bytes());
            h[PKT_MAC..PKT_MAC + 2].copy_from_slice(&u16::try_from(mac).unwrap().to_ne_bytes());
            h[PKT_VLAN_TCI..PKT_VLAN_TCI + 4].copy_from_slice(&0x0123u32.to_ne_bytes());
            h[PKT_VLAN_TPID..PKT_VLAN_TPID + 2].copy_from_slice(&0x88a8u16.to_ne_bytes());
            if vnet {
                h[mac - VnetHdr::LEN] = 1; // NEEDS_CSUM
            }
            h[mac..mac + data.len()].copy_from_slice(data);
            off += total;
        }
        b
    }

    fn collect(
        block: &[u8],
        resume: Option<Resume>,
        budget: usize,
        vnet: bool,
    ) -> (Vec<Vec<u8>>, Walk) {
        let mut got = Vec::new();
        let w = walk_block(block, resume, budget, vnet, &mut |f| {
            got.push(f.data.to_vec())
        });
        (got, w)
    }

    #[test]
    fn walks_frames_and_resumes_mid_block() {
        let frames: [(&[u8], u32); 3] = [(&[1; 60], 0), (&[2; 100], 0), (&[3; 64], 0)];
        let b = block_with(&frames, false);
        let (got, w) = collect(&b, None, 2, false);
        assert_eq!(got, vec![vec![1; 60], vec![2; 100]]);
        let WalkEnd::Paused(r) = w.end else {
            panic!("expected pause, got {w:?}")
        };
        assert_eq!(r.next, 2);
        let (got, w) = collect(&b, Some(r), 10, false);
        assert_eq!(got, vec![vec![3; 64]]);
        assert_eq!((w.delivered, w.end), (1, WalkEnd::Done));
        // Exactly the budget: done, not paused.
        let (_, w) = collect(&b, None, 3, false);
        assert_eq!(w.end, WalkEnd::Done);
    }

    #[test]
    fn parses_status_bits_vlan_and_vnet() {
        let st = libc::TP_STATUS_USER
            | libc::TP_STATUS_CSUMNOTREADY
            | libc::TP_STATUS_VLAN_VALID
            | libc::TP_STATUS_VLAN_TPID_VALID;
        let b = block_with(&[(&[9; 70], st)], true);
        let mut seen = None;
        walk_block(&b, None, 8, true, &mut |f| {
            seen = Some((
                f.vnet,
                f.vlan_tci,
                f.vlan_tpid,
                f.csum_not_ready,
                f.csum_valid,
                f.truncated,
                f.wire_len,
            ))
        });
        let (vnet, tci, tpid, nr, valid, trunc, len) = seen.unwrap();
        assert_eq!(vnet.unwrap().flags, 1);
        assert_eq!((tci, tpid), (Some(0x0123), Some(0x88a8)));
        assert!(nr && !valid && trunc);
        assert_eq!(len, 77);
        let b = block_with(&[(&[9; 70], libc::TP_STATUS_CSUM_VALID)], false);
        walk_block(&b, None, 8, false, &mut |f| {
            assert!(f.csum_valid && f.vnet.is_none() && f.vlan_tci.is_none());
        });
    }

    #[test]
    fn empty_block_is_done() {
        let b = block_with(&[], false);
        assert_eq!(collect(&b, None, 8, false).1.end, WalkEnd::Done);
    }

    #[test]
    fn corrupt_offsets_never_read_outside_the_block() {
        let frames: [(&[u8], u32); 2] = [(&[1; 60], 0), (&[2; 60], 0)];
        let good = block_with(&frames, true);
        // Every 16/32-bit field of both headers and of the block descriptor set to extreme
        // values: the walk must end (Done or Malformed) without panicking.
        let fields = [
            BLK_NUM_PKTS,
            BLK_FIRST_PKT,
            48 + PKT_NEXT,
            48 + PKT_SNAPLEN,
            48 + PKT_MAC,
        ];
        for &field in &fields {
            for v in [0u32, 1, 9, 47, 0xffff, 4095, 4096, 0x7fff_ffff, u32::MAX] {
                let mut b = good.clone();
                if field == 48 + PKT_MAC {
                    b[field..field + 2].copy_from_slice(&v.to_ne_bytes()[..2]);
                } else {
                    b[field..field + 4].copy_from_slice(&v.to_ne_bytes());
                }
                for vnet in [false, true] {
                    let (got, w) = collect(&b, None, 64, vnet);
                    assert!(got.len() <= 2 && w.delivered == got.len());
                    assert!(matches!(w.end, WalkEnd::Done | WalkEnd::Malformed));
                }
            }
        }
        // A snaplen reaching past the block is malformed.
        let mut b = good.clone();
        b[48 + PKT_SNAPLEN..48 + PKT_SNAPLEN + 4].copy_from_slice(&5000u32.to_ne_bytes());
        assert_eq!(collect(&b, None, 8, true).1.end, WalkEnd::Malformed);
        // A resume offset past the end is malformed, not a panic.
        let r = Resume {
            next: 1,
            offset: usize::MAX - 3,
        };
        assert_eq!(collect(&good, Some(r), 8, true).1.end, WalkEnd::Malformed);
        // Truncated block.
        assert_eq!(
            collect(&good[..20], None, 8, true).1.end,
            WalkEnd::Malformed
        );
    }

    #[test]
    fn geometry_is_validated() {
        let page = 4096;
        let g = AfPacketConfig::default().geometry(page).unwrap();
        assert_eq!((g.rx.tp_block_size, g.rx.tp_block_nr), (1 << 18, 8));
        assert_eq!(g.rx.tp_frame_nr, (1 << 18) / 2048 * 8);
        assert_eq!(
            (g.tx.tp_block_size, g.tx.tp_frame_size, g.tx.tp_frame_nr),
            (1 << 14, 1 << 14, 128)
        );
        let small = AfPacketConfig {
            tx_frame_size: 2048,
            tx_frame_count: 5,
            ..Default::default()
        };
        let g = small.geometry(page).unwrap();
        // Two slots per page-sized block, rounded up to whole blocks.
        assert_eq!(
            (g.tx.tp_block_size, g.tx.tp_block_nr, g.tx.tp_frame_nr),
            (4096, 3, 6)
        );
        for bad in [
            AfPacketConfig {
                block_size: 1000,
                ..Default::default()
            },
            AfPacketConfig {
                block_size: 0,
                ..Default::default()
            },
            AfPacketConfig {
                block_count: 0,
                ..Default::default()
            },
            AfPacketConfig {
                block_count: 1 << 20,
                ..Default::default()
            },
            AfPacketConfig {
                tx_frame_size: 2000 + 4,
                ..Default::default()
            },
            AfPacketConfig {
                tx_frame_size: 64,
                ..Default::default()
            },
            AfPacketConfig {
                tx_frame_count: 0,
                ..Default::default()
            },
            AfPacketConfig {
                tx_frame_count: usize::MAX,
                ..Default::default()
            },
        ] {
            assert!(bad.geometry(page).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn open_reports_interface_and_step() {
        let e = AfPacket::open("weftnosuch0", &AfPacketConfig::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("weftnosuch0") && msg.contains("if_nametoindex"),
            "{msg}"
        );
        let e = AfPacket::open(
            "lo",
            &AfPacketConfig {
                block_count: 0,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, AfPacketError::Config { .. }));
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidInput);
    }
}
