//! Packet buffers, batches and the buffer pool.
//!
//! ```text
//!  0            head                    tail            capacity
//!  |  headroom   |  packet data (frame)  |   tailroom    |
//!  +-------------+-----------------------+---------------+
//!                 ^ data()                ^
//! ```
//!
//! A [`PacketBuf`] owns a fixed-size byte buffer and a window `head..tail` holding the packet.
//! Receive paths write the frame at [`HEADROOM`]; encapsulation moves `head` left and writes the
//! outer header into the headroom ([`PacketBuf::prepend`]), so the frame is never copied.
//! Decapsulation moves `head` right ([`PacketBuf::advance`]).
//!
//! Invariant: `head <= tail <= buf.len()`. Every method keeps it, so `data()` never panics.
//!
//! Buffers are recycled through a [`BufPool`]; the fast path never allocates. A [`Batch`] carries
//! up to [`BATCH_SIZE`] buffers through the pipeline together.

use std::net::SocketAddr;

use crate::ids::PortIdx;

/// Bytes reserved in front of every received frame. Enough for the largest encapsulation we
/// write (outer Ethernet 14 + 802.1Q 4 + IPv6 40 + UDP 8 + VXLAN 8 = 74) rounded up to a cache line
/// multiple, and for a virtio-net header in front of that.
pub const HEADROOM: usize = 128;

/// The most packets the pipeline processes in one call.
pub const BATCH_SIZE: usize = 64;

/// Where a packet entered this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// Not set (a freshly allocated buffer).
    #[default]
    None,
    /// A local (VM-facing) port.
    Port(PortIdx),
    /// The underlay UDP socket; the address is the sender's (the remote VTEP).
    Underlay(SocketAddr),
}

/// Per-packet metadata that travels with the buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Where the packet came from.
    pub source: Source,
}

/// One packet: a fixed-capacity byte buffer with headroom and a data window.
pub struct PacketBuf {
    buf: Box<[u8]>,
    head: usize,
    tail: usize,
    /// Metadata set by the receive path and read by the pipeline.
    pub meta: PacketMeta,
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("capacity", &self.buf.len())
            .field("head", &self.head)
            .field("len", &self.len())
            .field("meta", &self.meta)
            .finish()
    }
}

impl PacketBuf {
    /// A buffer of `capacity` bytes in total (headroom included), empty, with `head` at
    /// [`HEADROOM`] (or at the end of the buffer when `capacity` is smaller than that).
    pub fn new(capacity: usize) -> Self {
        let head = HEADROOM.min(capacity);
        PacketBuf {
            buf: vec![0; capacity].into_boxed_slice(),
            head,
            tail: head,
            meta: PacketMeta::default(),
        }
    }

    /// A buffer holding a copy of `frame` at [`HEADROOM`], with room for `frame.len()` more.
    /// Meant for tests and tools, not for the fast path.
    pub fn from_slice(frame: &[u8]) -> Self {
        let mut p = PacketBuf::new(HEADROOM + frame.len() * 2 + 64);
        p.fill(frame);
        p
    }

    /// Empties the buffer, puts `head` back at [`HEADROOM`] and clears the metadata.
    #[inline]
    pub fn reset(&mut self) {
        self.head = HEADROOM.min(self.buf.len());
        self.tail = self.head;
        self.meta = PacketMeta::default();
    }

    /// The packet's bytes.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    /// The packet's bytes, writable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.tail]
    }

    /// Length of the packet.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    /// Whether the packet is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    /// Total capacity of the buffer, headroom included.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Free bytes in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Free bytes after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.tail
    }

    /// Grows the packet at the front by `n` bytes and returns them for the caller to write
    /// (an outer header). `None`, and no change, if the headroom is too small.
    #[inline(always)]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.head {
            return None;
        }
        self.head -= n;
        Some(&mut self.buf[self.head..self.head + n])
    }

    /// Drops `n` bytes from the front (an outer header). `false`, and no change, if the packet is
    /// shorter than `n`.
    #[inline(always)]
    pub fn advance(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.head += n;
        true
    }

    /// Sets the packet's length, keeping its start. Growing exposes whatever bytes the buffer
    /// held there. `false`, and no change, if `len` does not fit in the tailroom.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        match self.head.checked_add(len) {
            Some(t) if t <= self.buf.len() => {
                self.tail = t;
                true
            }
            _ => false,
        }
    }

    /// Replaces the packet with a copy of `frame`, starting at [`HEADROOM`]. `false`, and an
    /// empty packet, if it does not fit.
    #[inline]
    pub fn fill(&mut self, frame: &[u8]) -> bool {
        let meta = self.meta;
        self.reset();
        self.meta = meta;
        let start = self.head;
        match self.buf.get_mut(start..start + frame.len()) {
            Some(dst) => {
                dst.copy_from_slice(frame);
                self.tail = start + frame.len();
                true
            }
            None => false,
        }
    }

    /// The writable space from the packet's start to the end of the buffer: a receive path writes
    /// the frame here and then calls [`PacketBuf::set_len`].
    #[inline]
    pub fn spare_from_head(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..]
    }

    /// Moves the packet start to `offset` from the beginning of the buffer and empties it (used by
    /// receive paths that need a different headroom, e.g. to leave room for a virtio-net header).
    /// `false`, and no change, if `offset` is beyond the buffer.
    #[inline]
    pub fn reset_at(&mut self, offset: usize) -> bool {
        if offset > self.buf.len() {
            return false;
        }
        self.head = offset;
        self.tail = offset;
        true
    }
}

/// A set of recycled buffers of one size. The fast path takes and returns buffers here and never
/// allocates; when the pool is empty, [`BufPool::alloc`] returns `None` and the caller drops
/// the packet with [`crate::DropReason::NoBuffer`].
#[derive(Debug)]
pub struct BufPool {
    free: Vec<PacketBuf>,
    buf_size: usize,
    total: usize,
}

impl BufPool {
    /// A pool of `count` buffers of `buf_size` bytes each (headroom included).
    pub fn new(count: usize, buf_size: usize) -> Self {
        let free = (0..count).map(|_| PacketBuf::new(buf_size)).collect();
        BufPool {
            free,
            buf_size,
            total: count,
        }
    }

    /// Takes an empty buffer (reset: `head` at [`HEADROOM`], metadata cleared).
    #[inline]
    pub fn alloc(&mut self) -> Option<PacketBuf> {
        let mut b = self.free.pop()?;
        b.reset();
        Some(b)
    }

    /// Returns a buffer. A buffer of another size is discarded, so a pool only ever holds its own
    /// size.
    #[inline]
    pub fn free(&mut self, buf: PacketBuf) {
        if buf.capacity() == self.buf_size {
            self.free.push(buf);
        }
    }

    /// Buffers available now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers this pool was created with.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The size of each buffer, headroom included.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }
}

/// Up to [`BATCH_SIZE`] packets processed together.
#[derive(Debug, Default)]
pub struct Batch {
    bufs: Vec<PacketBuf>,
}

impl Batch {
    /// An empty batch with room for [`BATCH_SIZE`] packets.
    pub fn new() -> Self {
        Batch {
            bufs: Vec::with_capacity(BATCH_SIZE),
        }
    }

    /// Adds a packet. Returns it back if the batch is full.
    #[inline]
    pub fn push(&mut self, buf: PacketBuf) -> Result<(), PacketBuf> {
        if self.bufs.len() >= BATCH_SIZE {
            return Err(buf);
        }
        self.bufs.push(buf);
        Ok(())
    }

    /// Number of packets.
    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Whether the batch holds no packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Whether the batch holds [`BATCH_SIZE`] packets.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= BATCH_SIZE
    }

    /// The packets.
    #[inline]
    pub fn packets(&self) -> &[PacketBuf] {
        &self.bufs
    }

    /// The packets, writable.
    #[inline]
    pub fn packets_mut(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs
    }

    /// Removes every packet, handing each to `f` (usually to return it to a pool).
    #[inline]
    pub fn drain(&mut self, f: impl FnMut(PacketBuf)) {
        self.bufs.drain(..).for_each(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_uses_headroom_without_moving_data() {
        let mut p = PacketBuf::new(2048);
        assert!(p.fill(&[1, 2, 3, 4]));
        let ptr = p.data().as_ptr();
        p.prepend(8).unwrap().copy_from_slice(&[9; 8]);
        assert_eq!(p.len(), 12);
        assert_eq!(&p.data()[..8], &[9; 8]);
        assert_eq!(&p.data()[8..], &[1, 2, 3, 4]);
        // SAFETY-free pointer check: the frame bytes did not move.
        assert_eq!(p.data()[8..].as_ptr(), ptr);
        assert!(p.advance(8));
        assert_eq!(p.data(), &[1, 2, 3, 4]);
    }

    #[test]
    fn bounds_are_refused_not_panicking() {
        let mut p = PacketBuf::new(HEADROOM + 16);
        assert!(p.prepend(HEADROOM + 1).is_none());
        assert!(p.prepend(HEADROOM).is_some());
        p.reset();
        assert!(!p.advance(1));
        assert!(!p.set_len(17));
        assert!(p.set_len(16));
        assert!(!p.fill(&[0; 17]));
        assert!(p.is_empty());
        assert!(!p.reset_at(HEADROOM + 17));
        let mut tiny = PacketBuf::new(10);
        assert_eq!(tiny.headroom(), 10);
        assert!(!tiny.fill(&[1]));
    }

    #[test]
    fn pool_recycles_and_refuses_foreign_sizes() {
        let mut pool = BufPool::new(2, 256);
        let a = pool.alloc().unwrap();
        let mut b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        b.fill(&[1, 2, 3]);
        b.meta.source = Source::Port(PortIdx(3));
        pool.free(b);
        let b = pool.alloc().unwrap();
        assert!(b.is_empty());
        assert_eq!(b.meta, PacketMeta::default());
        pool.free(a);
        pool.free(b);
        pool.free(PacketBuf::new(100));
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn batch_holds_at_most_batch_size() {
        let mut batch = Batch::new();
        for _ in 0..BATCH_SIZE {
            batch.push(PacketBuf::new(64)).unwrap();
        }
        assert!(batch.is_full());
        assert!(batch.push(PacketBuf::new(64)).is_err());
        let mut n = 0;
        batch.drain(|_| n += 1);
        assert_eq!(n, BATCH_SIZE);
        assert!(batch.is_empty());
    }
}
