//! The TPACKET_V3 RX and TX rings of an AF_PACKET socket: one shared mapping, and the ownership
//! protocol that decides who may touch which part of it.
//!
//! ```text
//!  mapping:  | RX block 0 | RX block 1 | ... | RX block n-1 | TX block 0 | ... | TX block m-1 |
//!
//!  RX block (TPACKET_V3, variable-size frames packed by the kernel):
//!  +-------------------------+---------+-------+---------+-------+---- ... ---+
//!  | tpacket_block_desc      | tpacket3| frame | tpacket3| frame |            |
//!  | block_status, num_pkts, | _hdr    |       | _hdr    |       |            |
//!  | offset_to_first_pkt ... |         |       |         |       |            |
//!  +-------------------------+---------+-------+---------+-------+---- ... ---+
//!                            ^ offset_to_first_pkt; each tp_next_offset leads to the next
//!
//!  TX slot (fixed size, frames_per_block slots per block, never crossing a block):
//!  +------------------------------+--------------------------------------+
//!  | tpacket3_hdr (tp_status,     | [virtio_net_hdr] frame ...           |
//!  | tp_len, tp_next_offset = 0)  |                                      |
//!  +------------------------------+--------------------------------------+
//!  0                              TX_DATA_OFFSET (48)                     frame_size
//! ```
//!
//! Ownership is carried by one status word per RX block and per TX slot:
//!
//! | word | value | owner | transition |
//! |---|---|---|---|
//! | RX `block_status` | `TP_STATUS_KERNEL` (0) | kernel fills it | kernel sets `TP_STATUS_USER` when the block is retired (full, or after the retire timeout) |
//! | RX `block_status` | has `TP_STATUS_USER` | user space reads it | we store `TP_STATUS_KERNEL` (Release) when done |
//! | TX `tp_status` | no `SEND_REQUEST`/`SENDING` bit | user space writes it | we store `TP_STATUS_SEND_REQUEST` (Release) after filling |
//! | TX `tp_status` | `SEND_REQUEST` or `SENDING` | kernel transmits it | kernel stores `TP_STATUS_AVAILABLE` (maybe with `WRONG_FORMAT` or timestamp bits) when done |
//!
//! Status words are read with Acquire loads and written with Release stores through
//! `AtomicU32`, pairing with the kernel's barriers. Rust references into the mapping exist only
//! for memory user space owns: [`PacketRings::rx_user_block`] hands out `&[u8]` for a block in
//! `TP_STATUS_USER`, borrowed from `&self`, and [`PacketRings::rx_release`] needs `&mut self`,
//! so the borrow checker proves no slice of a block outlives its return to the kernel. TX slots
//! are written with raw pointer copies (no reference to them is ever created).
//!
//! The layout used here is the one the kernel accepted in `setsockopt(PACKET_RX_RING /
//! PACKET_TX_RING)`, done by [`PacketRings::setup`] itself so the two cannot disagree. Offsets
//! *inside* an RX block come from the kernel and are validated by the caller against the
//! slice's bounds, so a kernel bug can at worst yield garbage frames, never an access outside
//! the mapping.

use std::io;
use std::mem::offset_of;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::mmap::Mmap;
use super::socket::setsockopt;

/// Where frame data starts in a TX slot when `PACKET_TX_HAS_OFF` is off:
/// `TPACKET3_HDRLEN - sizeof(struct sockaddr_ll)`, i.e. the 16-aligned `tpacket3_hdr`.
pub(crate) const TX_DATA_OFFSET: usize = libc::TPACKET3_HDRLEN - size_of::<libc::sockaddr_ll>();
const TX_STATUS_OFFSET: usize = offset_of!(libc::tpacket3_hdr, tp_status);
const TX_LEN_OFFSET: usize = offset_of!(libc::tpacket3_hdr, tp_len);
const TX_SNAPLEN_OFFSET: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const BLOCK_STATUS_OFFSET: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, block_status);

const _: () = assert!(TX_DATA_OFFSET == 48 && TX_STATUS_OFFSET == 20 && TX_LEN_OFFSET == 16);
const _: () = assert!(BLOCK_STATUS_OFFSET == 8);

/// Result of [`PacketRings::tx_submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxSubmit {
    /// Written and handed to the kernel. `wrong_format`: the slot's previous frame had been
    /// rejected by the kernel (`TP_STATUS_WRONG_FORMAT`).
    Queued {
        /// The slot came back from the kernel marked `TP_STATUS_WRONG_FORMAT`.
        wrong_format: bool,
    },
    /// The slot is still owned by the kernel.
    Busy,
    /// The data does not fit a slot.
    TooBig,
}

/// Both rings of one AF_PACKET socket, mapped. See the module docs for the protocol.
#[derive(Debug)]
pub(crate) struct PacketRings {
    map: Mmap,
    rx_block_size: usize,
    rx_block_nr: usize,
    tx_offset: usize,
    tx_block_size: usize,
    tx_frame_size: usize,
    tx_frames_per_block: usize,
    tx_frame_nr: usize,
}

fn to_usize(v: u32) -> usize {
    // u32 always fits usize on the 64-bit Linux targets this crate supports.
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl PacketRings {
    /// Requests the RX ring (`rx`, TPACKET_V3 block parameters) and the TX ring (`tx`, fixed
    /// slots; `tp_retire_blk_tov`, `tp_sizeof_priv` and `tp_feature_req_word` must be 0) on
    /// `fd`, an AF_PACKET socket with `PACKET_VERSION = TPACKET_V3` and no rings yet, then maps
    /// both. Errors name the failing step.
    pub(crate) fn setup(
        fd: BorrowedFd<'_>,
        rx: &libc::tpacket_req3,
        tx: &libc::tpacket_req3,
    ) -> Result<PacketRings, (&'static str, io::Error)> {
        let bad = |m: &'static str| {
            (
                "ring geometry",
                io::Error::new(io::ErrorKind::InvalidInput, m),
            )
        };
        let rx_len = to_usize(rx.tp_block_size)
            .checked_mul(to_usize(rx.tp_block_nr))
            .ok_or_else(|| bad("RX ring too large"))?;
        let tx_len = to_usize(tx.tp_block_size)
            .checked_mul(to_usize(tx.tp_block_nr))
            .ok_or_else(|| bad("TX ring too large"))?;
        let total = rx_len
            .checked_add(tx_len)
            .ok_or_else(|| bad("rings too large"))?;
        let tx_frame_size = to_usize(tx.tp_frame_size);
        if tx_frame_size < TX_DATA_OFFSET || !tx_frame_size.is_multiple_of(16) {
            return Err(bad("TX frame size"));
        }
        let tx_frames_per_block = to_usize(tx.tp_block_size) / tx_frame_size;
        if tx_frames_per_block == 0
            || tx_frames_per_block.checked_mul(to_usize(tx.tp_block_nr))
                != Some(to_usize(tx.tp_frame_nr))
        {
            return Err(bad("TX frame count"));
        }
        if rx.tp_block_size == 0 || rx.tp_block_nr == 0 {
            return Err(bad("RX ring empty"));
        }
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, rx)
            .map_err(|e| ("setsockopt(PACKET_RX_RING)", e))?;
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_TX_RING, tx)
            .map_err(|e| ("setsockopt(PACKET_TX_RING)", e))?;
        let map = Mmap::shared(fd, total).map_err(|e| ("mmap", e))?;
        Ok(PacketRings {
            map,
            rx_block_size: to_usize(rx.tp_block_size),
            rx_block_nr: to_usize(rx.tp_block_nr),
            tx_offset: rx_len,
            tx_block_size: to_usize(tx.tp_block_size),
            tx_frame_size,
            tx_frames_per_block,
            tx_frame_nr: to_usize(tx.tp_frame_nr),
        })
    }

    /// Number of RX blocks.
    pub(crate) fn rx_blocks(&self) -> usize {
        self.rx_block_nr
    }

    /// Number of TX slots.
    pub(crate) fn tx_slots(&self) -> usize {
        self.tx_frame_nr
    }

    /// The most bytes (virtio-net header included) one TX slot carries.
    pub(crate) fn tx_capacity(&self) -> usize {
        self.tx_frame_size - TX_DATA_OFFSET
    }

    /// The status word at `off` in the mapping, if `off` is in bounds and 4-aligned.
    fn status_word(&self, off: usize) -> Option<&AtomicU32> {
        if !off.is_multiple_of(align_of::<AtomicU32>()) || off.checked_add(4)? > self.map.len() {
            return None;
        }
        // SAFETY: `off..off + 4` lies inside the mapping (checked above) and is 4-aligned
        // (the mapping is page-aligned and `off` is a multiple of 4); the mapping outlives the
        // returned borrow of `self`. Every access to status words, ours and the kernel's, is a
        // single aligned 32-bit access, as `AtomicU32::from_ptr` requires.
        Some(unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(off).cast::<u32>()) })
    }

    /// The bytes of RX block `idx` if user space owns it (`TP_STATUS_USER`), else `None`.
    pub(crate) fn rx_user_block(&self, idx: usize) -> Option<&[u8]> {
        if idx >= self.rx_block_nr {
            return None;
        }
        let off = idx.checked_mul(self.rx_block_size)?;
        let status = self
            .status_word(off.checked_add(BLOCK_STATUS_OFFSET)?)?
            .load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        if off.checked_add(self.rx_block_size)? > self.map.len() {
            return None;
        }
        // SAFETY: the range lies inside the mapping (checked above). The Acquire load saw
        // TP_STATUS_USER, so the kernel finished writing this block and will not write it again
        // until we store TP_STATUS_KERNEL, which `rx_release` does and which needs `&mut self`:
        // no write to these bytes can happen while the returned shared borrow lives.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off), self.rx_block_size) })
    }

    /// Returns RX block `idx` to the kernel (Release store of `TP_STATUS_KERNEL`).
    pub(crate) fn rx_release(&mut self, idx: usize) {
        if idx >= self.rx_block_nr {
            return;
        }
        let Some(off) = idx.checked_mul(self.rx_block_size) else {
            return;
        };
        if let Some(w) = off
            .checked_add(BLOCK_STATUS_OFFSET)
            .and_then(|o| self.status_word(o))
        {
            w.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
    }

    fn tx_slot_offset(&self, idx: usize) -> Option<usize> {
        if idx >= self.tx_frame_nr {
            return None;
        }
        let block = idx / self.tx_frames_per_block;
        let within = idx % self.tx_frames_per_block;
        let off = self
            .tx_offset
            .checked_add(block.checked_mul(self.tx_block_size)?)?
            .checked_add(within.checked_mul(self.tx_frame_size)?)?;
        (off.checked_add(self.tx_frame_size)? <= self.map.len()).then_some(off)
    }

    /// Whether TX slot `idx` is queued but not yet picked up by the kernel
    /// (`TP_STATUS_SEND_REQUEST`).
    pub(crate) fn tx_requested(&self, idx: usize) -> bool {
        self.tx_slot_offset(idx)
            .and_then(|off| self.status_word(off + TX_STATUS_OFFSET))
            .is_some_and(|w| w.load(Ordering::Acquire) & libc::TP_STATUS_SEND_REQUEST != 0)
    }

    /// Writes `prefix` then `frame` into TX slot `idx`, sets `tp_len`, and hands the slot to the
    /// kernel (Release store of `TP_STATUS_SEND_REQUEST`). Nothing is written unless the slot is
    /// user-owned and the data fits. The kernel transmits it on the next `send()` kick.
    pub(crate) fn tx_submit(&mut self, idx: usize, prefix: &[u8], frame: &[u8]) -> TxSubmit {
        let Some(total) = prefix.len().checked_add(frame.len()) else {
            return TxSubmit::TooBig;
        };
        let Ok(tp_len) = u32::try_from(total) else {
            return TxSubmit::TooBig;
        };
        if total > self.tx_capacity() {
            return TxSubmit::TooBig;
        }
        let Some(off) = self.tx_slot_offset(idx) else {
            return TxSubmit::Busy;
        };
        let Some(status) = self.status_word(off + TX_STATUS_OFFSET) else {
            return TxSubmit::Busy;
        };
        let s = status.load(Ordering::Acquire);
        if s & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0 {
            return TxSubmit::Busy;
        }
        // SAFETY: `off..off + tx_frame_size` lies inside the mapping (`tx_slot_offset` checks
        // it) and TX_DATA_OFFSET + total <= tx_frame_size (checked above), so every write below
        // stays inside this slot. The Acquire load saw no SEND_REQUEST/SENDING bit, so the
        // kernel has finished with the slot and reads it again only after our Release store of
        // SEND_REQUEST below. The status word itself is skipped (it is only accessed
        // atomically). `prefix` and `frame` are Rust slices, which cannot alias this slot: no
        // reference into the TX ring is ever created.
        unsafe {
            let base = self.map.as_ptr().add(off);
            std::ptr::write_bytes(base, 0, TX_STATUS_OFFSET);
            let after_status = TX_STATUS_OFFSET + 4;
            std::ptr::write_bytes(base.add(after_status), 0, TX_DATA_OFFSET - after_status);
            base.add(TX_LEN_OFFSET)
                .cast::<u32>()
                .write_unaligned(tp_len);
            base.add(TX_SNAPLEN_OFFSET)
                .cast::<u32>()
                .write_unaligned(tp_len);
            let data = base.add(TX_DATA_OFFSET);
            std::ptr::copy_nonoverlapping(prefix.as_ptr(), data, prefix.len());
            std::ptr::copy_nonoverlapping(frame.as_ptr(), data.add(prefix.len()), frame.len());
        }
        status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        TxSubmit::Queued {
            wrong_format: s & libc::TP_STATUS_WRONG_FORMAT != 0,
        }
    }
}
