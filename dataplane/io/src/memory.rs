//! In-memory stand-ins for [`crate::AfPacket`] and [`crate::UdpUnderlay`]: queues of frames and
//! datagrams, for tests and benches. Deterministic (no clock, no threads) and cheap: byte
//! vectors are recycled through a free list, so a steady inject/receive or send/drain loop does
//! not allocate.
//!
//! Limits can be set to exercise the callers' error paths: a TX queue capacity (then
//! [`SendOutcome::RingFull`] / `would_block`), a maximum frame size ([`SendOutcome::TooBig`]) and
//! an MTU for datagrams (`too_big`). Frames shorter than an Ethernet header are refused with
//! `InvalidInput`, as by [`crate::AfPacket`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use weft_dataplane::offload::VnetHdr;
use weft_dataplane::{BATCH_SIZE, Batch, BufPool, Source};

use crate::{DatagramIo, FrameIo, RecvStats, RxFrame, SendOutcome, SendStats};

/// Shortest frame [`MemoryPort::send`] accepts (an Ethernet header), like the kernel.
const MIN_FRAME: usize = 14;

/// A recycling store of byte vectors.
#[derive(Debug, Default)]
struct Spares(Vec<Vec<u8>>);

impl Spares {
    fn copy_of(&mut self, data: &[u8]) -> Vec<u8> {
        let mut v = self.0.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        v
    }

    fn give(&mut self, v: Vec<u8>) {
        self.0.push(v);
    }
}

/// A local port backed by two queues: frames injected by the test are received, frames sent
/// are kept until drained.
#[derive(Debug)]
pub struct MemoryPort {
    rx: VecDeque<(Vec<u8>, Option<VnetHdr>)>,
    tx: VecDeque<Vec<u8>>,
    spares: Spares,
    tx_capacity: usize,
    max_frame: usize,
    queued_since_flush: usize,
    flushes: u64,
}

impl Default for MemoryPort {
    fn default() -> Self {
        MemoryPort::new()
    }
}

impl MemoryPort {
    /// An empty port with an unbounded TX queue and frames up to 64 KiB.
    pub fn new() -> Self {
        MemoryPort {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            spares: Spares::default(),
            tx_capacity: usize::MAX,
            max_frame: 65535,
            queued_since_flush: 0,
            flushes: 0,
        }
    }

    /// Limits the TX queue to `n` frames not yet drained (further sends get `RingFull`).
    pub fn with_tx_capacity(mut self, n: usize) -> Self {
        self.tx_capacity = n;
        self
    }

    /// Limits transmitted frames to `n` bytes (longer ones get `TooBig`).
    pub fn with_max_frame(mut self, n: usize) -> Self {
        self.max_frame = n;
        self
    }

    /// Queues a frame to be received (a copy of `frame`).
    pub fn inject(&mut self, frame: &[u8]) {
        let v = self.spares.copy_of(frame);
        self.rx.push_back((v, None));
    }

    /// Queues a frame to be received with a virtio-net header (as from a GSO-capable VM).
    pub fn inject_with_vnet(&mut self, frame: &[u8], vnet: VnetHdr) {
        let v = self.spares.copy_of(frame);
        self.rx.push_back((v, Some(vnet)));
    }

    /// Frames waiting to be received.
    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }

    /// Frames sent and not drained yet.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Removes the oldest sent frame.
    pub fn pop_sent(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// Hands every sent frame to `f`, oldest first, and recycles their storage.
    pub fn drain_sent(&mut self, mut f: impl FnMut(&[u8])) {
        while let Some(v) = self.tx.pop_front() {
            f(&v);
            self.spares.give(v);
        }
    }

    /// Number of flushes that had something to send.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }
}

impl FrameIo for MemoryPort {
    fn recv(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        let mut n = 0;
        while n < max {
            let Some((v, vnet)) = self.rx.pop_front() else {
                break;
            };
            f(RxFrame {
                vnet,
                ..RxFrame::plain(&v)
            });
            self.spares.give(v);
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<SendOutcome> {
        if frame.len() < MIN_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame shorter than an Ethernet header",
            ));
        }
        if frame.len() > self.max_frame {
            return Ok(SendOutcome::TooBig);
        }
        if self.tx.len() >= self.tx_capacity {
            return Ok(SendOutcome::RingFull);
        }
        let v = self.spares.copy_of(frame);
        self.tx.push_back(v);
        self.queued_since_flush += 1;
        Ok(SendOutcome::Queued)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.queued_since_flush > 0 {
            self.flushes += 1;
            self.queued_since_flush = 0;
        }
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

/// An underlay socket backed by two queues of `(peer, datagram)`.
#[derive(Debug)]
pub struct MemoryUnderlay {
    local: SocketAddr,
    rx: VecDeque<(SocketAddr, Vec<u8>)>,
    tx: VecDeque<(SocketAddr, Vec<u8>)>,
    spares: Spares,
    tx_capacity: usize,
    mtu: usize,
}

impl MemoryUnderlay {
    /// An empty underlay "bound" to `local`, with an unbounded TX queue and a 65507-byte limit
    /// (the largest UDP payload over IPv4).
    pub fn new(local: SocketAddr) -> Self {
        MemoryUnderlay {
            local,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            spares: Spares::default(),
            tx_capacity: usize::MAX,
            mtu: 65507,
        }
    }

    /// Limits the TX queue to `n` datagrams not yet drained (more count as `would_block`).
    pub fn with_tx_capacity(mut self, n: usize) -> Self {
        self.tx_capacity = n;
        self
    }

    /// Limits sent payloads to `n` bytes (longer ones count as `too_big`).
    pub fn with_max_payload(mut self, n: usize) -> Self {
        self.mtu = n;
        self
    }

    /// The address given to [`MemoryUnderlay::new`].
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queues a datagram from `peer` to be received.
    pub fn inject(&mut self, peer: SocketAddr, payload: &[u8]) {
        let v = self.spares.copy_of(payload);
        self.rx.push_back((peer, v));
    }

    /// Datagrams waiting to be received.
    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }

    /// Datagrams sent and not drained yet.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Removes the oldest sent datagram.
    pub fn pop_sent(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.tx.pop_front()
    }

    /// Hands every sent datagram to `f`, oldest first, and recycles their storage.
    pub fn drain_sent(&mut self, mut f: impl FnMut(SocketAddr, &[u8])) {
        while let Some((a, v)) = self.tx.pop_front() {
            f(a, &v);
            self.spares.give(v);
        }
    }
}

impl DatagramIo for MemoryUnderlay {
    fn recv_batch(&mut self, pool: &mut BufPool, out: &mut Batch) -> io::Result<RecvStats> {
        let mut stats = RecvStats::default();
        while out.len() < BATCH_SIZE {
            if self.rx.is_empty() {
                break;
            }
            let Some(mut buf) = pool.alloc() else { break };
            let Some((peer, v)) = self.rx.pop_front() else {
                pool.free(buf);
                break;
            };
            let len = v.len();
            let copied = buf
                .spare_from_head()
                .get_mut(..len)
                .map(|d| d.copy_from_slice(&v));
            self.spares.give(v);
            if copied.is_none() || !buf.set_len(len) {
                stats.truncated += 1;
                pool.free(buf);
                continue;
            }
            buf.meta.source = Source::Underlay(peer);
            match out.push(buf) {
                Ok(()) => stats.received += 1,
                Err(b) => pool.free(b),
            }
        }
        Ok(stats)
    }

    fn send_batch(
        &mut self,
        items: &mut dyn Iterator<Item = (SocketAddr, &[u8])>,
    ) -> io::Result<SendStats> {
        let mut stats = SendStats::default();
        for (dst, payload) in items {
            if dst.is_ipv4() != self.local.is_ipv4() {
                stats.errors += 1;
            } else if payload.len() > self.mtu {
                stats.too_big += 1;
            } else if self.tx.len() >= self.tx_capacity {
                stats.would_block += 1;
            } else {
                let v = self.spares.copy_of(payload);
                self.tx.push_back((dst, v));
                stats.sent += 1;
            }
        }
        Ok(stats)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

/// A [`MemoryPort`] shared between the code that owns it as its [`FrameIo`] (a worker) and the
/// test or simulator that injects and drains through another clone of the handle.
#[derive(Debug, Clone, Default)]
pub struct SharedPort(pub Arc<Mutex<MemoryPort>>);

impl SharedPort {
    /// A new shared port.
    pub fn new(port: MemoryPort) -> Self {
        SharedPort(Arc::new(Mutex::new(port)))
    }

    /// Runs `f` on the port. A poisoned lock (a panic while it was held) is taken over: the
    /// queues themselves are always consistent.
    pub fn with<R>(&self, f: impl FnOnce(&mut MemoryPort) -> R) -> R {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

impl FrameIo for SharedPort {
    fn recv(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        self.with(|p| p.recv(max, f))
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<SendOutcome> {
        self.with(|p| p.send(frame))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with(FrameIo::flush)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

/// A [`MemoryUnderlay`] shared like [`SharedPort`].
#[derive(Debug, Clone)]
pub struct SharedUnderlay(pub Arc<Mutex<MemoryUnderlay>>);

impl SharedUnderlay {
    /// A new shared underlay.
    pub fn new(u: MemoryUnderlay) -> Self {
        SharedUnderlay(Arc::new(Mutex::new(u)))
    }

    /// Runs `f` on the underlay (taking over a poisoned lock, as [`SharedPort::with`]).
    pub fn with<R>(&self, f: impl FnOnce(&mut MemoryUnderlay) -> R) -> R {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

impl DatagramIo for SharedUnderlay {
    fn recv_batch(&mut self, pool: &mut BufPool, out: &mut Batch) -> io::Result<RecvStats> {
        self.with(|u| u.recv_batch(pool, out))
    }

    fn send_batch(
        &mut self,
        items: &mut dyn Iterator<Item = (SocketAddr, &[u8])>,
    ) -> io::Result<SendStats> {
        self.with(|u| u.send_batch(items))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_dataplane::HEADROOM;
    use weft_dataplane::offload::GsoType;

    fn frame(n: usize, tag: u8) -> Vec<u8> {
        vec![tag; n]
    }

    #[test]
    fn port_receives_in_order_up_to_max() {
        let mut p = MemoryPort::new();
        for i in 0..5u8 {
            p.inject(&frame(60 + usize::from(i), i));
        }
        let vnet = VnetHdr {
            gso_type: GsoType::TcpV4,
            gso_size: 1448,
            ..VnetHdr::NONE
        };
        p.inject_with_vnet(&frame(3000, 9), vnet);
        let mut got = Vec::new();
        assert_eq!(
            p.recv(3, &mut |f| got.push((f.data.to_vec(), f.vnet)))
                .unwrap(),
            3
        );
        assert_eq!(
            p.recv(10, &mut |f| got.push((f.data.to_vec(), f.vnet)))
                .unwrap(),
            3
        );
        assert_eq!(p.recv(10, &mut |_| unreachable!()).unwrap(), 0);
        let tags: Vec<u8> = got.iter().map(|(d, _)| d[0]).collect();
        assert_eq!(tags, [0, 1, 2, 3, 4, 9]);
        assert_eq!(got[1].0.len(), 61);
        assert_eq!(got[5].1, Some(vnet));
        assert!(got[..5].iter().all(|(_, v)| v.is_none()));
    }

    #[test]
    fn port_send_limits_and_drain() {
        let mut p = MemoryPort::new().with_tx_capacity(2).with_max_frame(100);
        assert_eq!(
            p.send(&frame(10, 0)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(p.send(&frame(101, 0)).unwrap(), SendOutcome::TooBig);
        assert_eq!(p.send(&frame(60, 1)).unwrap(), SendOutcome::Queued);
        assert_eq!(p.send(&frame(64, 2)).unwrap(), SendOutcome::Queued);
        assert_eq!(p.send(&frame(64, 3)).unwrap(), SendOutcome::RingFull);
        p.flush().unwrap();
        p.flush().unwrap();
        assert_eq!(p.flushes(), 1);
        assert_eq!(p.pop_sent(), Some(frame(60, 1)));
        let mut seen = Vec::new();
        p.drain_sent(|f| seen.push(f.to_vec()));
        assert_eq!(seen, [frame(64, 2)]);
        assert_eq!(p.tx_len(), 0);
        assert_eq!(p.raw_fd(), None);
    }

    #[test]
    fn underlay_round_trip_with_truncation_and_limits() {
        let me: SocketAddr = "192.0.2.1:4789".parse().unwrap();
        let peer: SocketAddr = "192.0.2.2:4789".parse().unwrap();
        let mut u = MemoryUnderlay::new(me)
            .with_tx_capacity(3)
            .with_max_payload(1000);
        u.inject(peer, &[1; 100]);
        u.inject(peer, &[2; 5000]); // larger than a 2048-byte buffer minus headroom
        u.inject(peer, &[3; 200]);
        let mut pool = BufPool::new(8, 2048);
        let mut batch = Batch::new();
        let st = u.recv_batch(&mut pool, &mut batch).unwrap();
        assert_eq!(
            st,
            RecvStats {
                received: 2,
                truncated: 1,
                bad_peer: 0
            }
        );
        let lens: Vec<usize> = batch.packets().iter().map(|p| p.len()).collect();
        assert_eq!(lens, [100, 200]);
        assert!(
            batch
                .packets()
                .iter()
                .all(|p| p.headroom() == HEADROOM && p.meta.source == Source::Underlay(peer))
        );
        batch.drain(|p| pool.free(p));
        assert_eq!(pool.available(), 8);

        let v6: SocketAddr = "[2001:db8::1]:4789".parse().unwrap();
        let big = [0u8; 1001];
        let items = [
            (peer, &[1u8; 10][..]),
            (v6, &[1u8; 10][..]),
            (peer, &big[..]),
            (peer, &[2u8; 20][..]),
            (peer, &[3u8; 30][..]),
            (peer, &[4u8; 40][..]),
        ];
        let st = u.send_batch(&mut items.into_iter()).unwrap();
        assert_eq!(
            st,
            SendStats {
                sent: 3,
                too_big: 1,
                would_block: 1,
                errors: 1
            }
        );
        assert_eq!(u.pop_sent(), Some((peer, vec![1; 10])));
        let mut seen = Vec::new();
        u.drain_sent(|a, d| seen.push((a, d.len())));
        assert_eq!(seen, [(peer, 20), (peer, 30)]);
    }

    #[test]
    fn underlay_respects_pool_and_batch_room() {
        let me: SocketAddr = "[2001:db8::1]:4789".parse().unwrap();
        let mut u = MemoryUnderlay::new(me);
        for i in 0..(BATCH_SIZE + 10) {
            u.inject(me, &[u8::try_from(i % 256).unwrap(); 64]);
        }
        let mut pool = BufPool::new(BATCH_SIZE + 10, 512);
        let mut batch = Batch::new();
        assert_eq!(
            u.recv_batch(&mut pool, &mut batch).unwrap().received,
            BATCH_SIZE as u64
        );
        assert!(batch.is_full());
        assert_eq!(u.recv_batch(&mut pool, &mut batch).unwrap().received, 0);
        assert_eq!(u.rx_pending(), 10);
        let mut empty = BufPool::new(0, 512);
        let mut b2 = Batch::new();
        assert_eq!(u.recv_batch(&mut empty, &mut b2).unwrap().received, 0);
        assert_eq!(u.rx_pending(), 10);
    }
}
