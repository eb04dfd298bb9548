//! The VXLAN underlay UDP socket, batched: `recvmmsg` straight into pool buffers, `sendmmsg`
//! from borrowed payloads.
//!
//! Receive path, zero copies: each datagram lands at [`weft_dataplane::HEADROOM`] of a buffer
//! taken from the worker's [`BufPool`] (`PacketBuf::spare_from_head`), so decapsulation moves the
//! packet start and re-encapsulation writes into the headroom.
//!
//! ```text
//!   recvmmsg ──► [ headroom | outer UDP payload: VXLAN hdr | inner frame ... | tailroom ]
//!                           ^ HEADROOM          meta.source = Source::Underlay(peer)
//! ```
//!
//! The message arrays are allocated once per socket; the raw pointers in them are valid only
//! during one `recv_batch`/`send_batch` call and are cleared before it returns (see
//! `sys::mmsg`).
//!
//! Send path: every item is counted exactly once in [`SendStats`]. The kernel accepts a prefix
//! of each chunk of up to 64 messages; the message after the prefix is retried alone to learn
//! its error: `EMSGSIZE` counts as `too_big` (with `pmtu_discover`, datagrams never fragment),
//! other per-message errors as `errors`, and `EAGAIN`/`ENOBUFS` drop the rest of the chunk as
//! `would_block` (no spinning on a full socket).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use weft_dataplane::{BATCH_SIZE, Batch, BufPool, PacketBuf, Source};

use crate::sys::mmsg::{MMSG_MAX, MmsgArrays};
use crate::sys::socket::{bind_inet, local_addr, setsockopt, socket};
use crate::{DatagramIo, RecvStats, SendStats};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// The configuration is not usable.
    #[error("UDP underlay {addr}: invalid configuration: {reason}")]
    Config {
        /// The address being bound.
        addr: SocketAddr,
        /// What is wrong.
        reason: &'static str,
    },
    /// A setup step failed.
    #[error("UDP underlay {addr}: {step} failed: {source}")]
    Setup {
        /// The address being bound.
        addr: SocketAddr,
        /// The failing step.
        step: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// An operation on the bound socket failed in a way that is not a per-datagram problem.
    #[error("UDP underlay {addr}: {op} failed: {source}")]
    Io {
        /// The socket's local address.
        addr: SocketAddr,
        /// The operation.
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

impl From<UdpError> for io::Error {
    fn from(e: UdpError) -> io::Error {
        let kind = match &e {
            UdpError::Config { .. } => io::ErrorKind::InvalidInput,
            UdpError::Setup { source, .. } | UdpError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

/// Socket options for [`UdpUnderlay::bind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// Receive buffer bytes (`SO_RCVBUFFORCE`, falling back to `SO_RCVBUF`, which the
    /// `net.core.rmem_max` sysctl caps); 0 keeps the kernel default. Default 4 MiB.
    pub rcvbuf: usize,
    /// Send buffer bytes, likewise. Default 4 MiB.
    pub sndbuf: usize,
    /// `SO_REUSEPORT`: several sockets (one per worker) share the port. Default false.
    pub reuse_port: bool,
    /// Path MTU discovery with the DF bit (`IP_PMTUDISC_DO` / `IPV6_PMTUDISC_DO`): a datagram
    /// larger than the path MTU fails with `EMSGSIZE` instead of being fragmented. Default true.
    pub pmtu_discover: bool,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            rcvbuf: 4 << 20,
            sndbuf: 4 << 20,
            reuse_port: false,
            pmtu_discover: true,
        }
    }
}

/// A non-blocking UDP socket for VXLAN, IPv4 or IPv6 (v6-only), with preallocated
/// `recvmmsg`/`sendmmsg` arrays.
#[derive(Debug)]
pub struct UdpUnderlay {
    fd: OwnedFd,
    local: SocketAddr,
    mmsg: MmsgArrays,
    /// Buffers lent to one `recvmmsg` call; always empty between calls.
    staging: Vec<PacketBuf>,
}

fn set_buf(
    fd: &OwnedFd,
    force: libc::c_int,
    plain: libc::c_int,
    size: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd.as_fd(), libc::SOL_SOCKET, force, &size)
        .or_else(|_| setsockopt(fd.as_fd(), libc::SOL_SOCKET, plain, &size))
}

impl UdpUnderlay {
    /// Opens a socket bound to `addr` (port 0 picks one; see [`UdpUnderlay::local_addr`]).
    pub fn bind(addr: SocketAddr, cfg: &UdpConfig) -> Result<UdpUnderlay, UdpError> {
        let step =
            |step: &'static str| move |source: io::Error| UdpError::Setup { addr, step, source };
        let cfg_err = |reason| UdpError::Config { addr, reason };
        let rcvbuf = libc::c_int::try_from(cfg.rcvbuf).map_err(|_| cfg_err("rcvbuf too large"))?;
        let sndbuf = libc::c_int::try_from(cfg.sndbuf).map_err(|_| cfg_err("sndbuf too large"))?;
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
        .map_err(step("socket(SOCK_DGRAM)"))?;
        let one: libc::c_int = 1;
        if addr.is_ipv6() {
            setsockopt(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &one)
                .map_err(step("setsockopt(IPV6_V6ONLY)"))?;
        }
        if cfg.reuse_port {
            setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, &one)
                .map_err(step("setsockopt(SO_REUSEPORT)"))?;
        }
        if rcvbuf > 0 {
            set_buf(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcvbuf)
                .map_err(step("setsockopt(SO_RCVBUF)"))?;
        }
        if sndbuf > 0 {
            set_buf(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, sndbuf)
                .map_err(step("setsockopt(SO_SNDBUF)"))?;
        }
        if cfg.pmtu_discover {
            if addr.is_ipv4() {
                setsockopt(
                    fd.as_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    &libc::IP_PMTUDISC_DO,
                )
                .map_err(step("setsockopt(IP_MTU_DISCOVER)"))?;
            } else {
                setsockopt(
                    fd.as_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MTU_DISCOVER,
                    &libc::IPV6_PMTUDISC_DO,
                )
                .map_err(step("setsockopt(IPV6_MTU_DISCOVER)"))?;
            }
        }
        bind_inet(fd.as_fd(), &addr).map_err(step("bind"))?;
        let local = local_addr(fd.as_fd()).map_err(step("getsockname"))?;
        Ok(UdpUnderlay {
            fd,
            local,
            mmsg: MmsgArrays::new(),
            staging: Vec::with_capacity(MMSG_MAX),
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The socket's descriptor, to poll for `POLLIN`.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives up to as many datagrams as `out` has free slots and `pool` has buffers (and at
    /// most 64), each directly into a pool buffer at `HEADROOM`, appended to `out` with
    /// `meta.source = Source::Underlay(sender)`. Datagrams larger than a buffer are dropped and
    /// counted as truncated; unused buffers go back to the pool. Never blocks.
    pub fn recv_batch(
        &mut self,
        pool: &mut BufPool,
        out: &mut Batch,
    ) -> Result<RecvStats, UdpError> {
        let mut stats = RecvStats::default();
        let want = BATCH_SIZE
            .saturating_sub(out.len())
            .min(pool.available())
            .min(MMSG_MAX);
        self.staging.extend((0..want).map_while(|_| pool.alloc()));
        if self.staging.is_empty() {
            return Ok(stats);
        }
        let res = loop {
            let bufs = self.staging.iter_mut().map(PacketBuf::spare_from_head);
            match self.mmsg.recv(self.fd.as_fd(), bufs) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(0),
                r => break r,
            }
        };
        let n = match res {
            Ok(n) => n,
            Err(source) => {
                self.staging.drain(..).for_each(|b| pool.free(b));
                return Err(UdpError::Io {
                    addr: self.local,
                    op: "recvmmsg",
                    source,
                });
            }
        };
        for (i, mut buf) in self.staging.drain(..).enumerate() {
            if i >= n {
                pool.free(buf);
                continue;
            }
            let m = self.mmsg.recv_meta(i);
            if m.truncated || !buf.set_len(m.len) {
                stats.truncated += 1;
                pool.free(buf);
                continue;
            }
            let Some(peer) = m.peer else {
                stats.bad_peer += 1;
                pool.free(buf);
                continue;
            };
            buf.meta.source = Source::Underlay(peer);
            match out.push(buf) {
                Ok(()) => stats.received += 1,
                Err(buf) => pool.free(buf),
            }
        }
        Ok(stats)
    }

    /// Sends every `(destination, payload)` of `items` in `sendmmsg` chunks of up to 64, each
    /// item counted once in the result (see the module docs). Destinations of the other address
    /// family count as errors. Never blocks. Fails only if the socket itself is unusable.
    pub fn send_batch(
        &mut self,
        items: &mut dyn Iterator<Item = (SocketAddr, &[u8])>,
    ) -> Result<SendStats, UdpError> {
        let mut stats = SendStats::default();
        let v4 = self.local.is_ipv4();
        loop {
            let mut chunk = self.mmsg.send_chunk();
            let mut exhausted = false;
            while !chunk.is_full() {
                let Some((dst, payload)) = items.next() else {
                    exhausted = true;
                    break;
                };
                if dst.is_ipv4() != v4 {
                    stats.errors += 1;
                    continue;
                }
                chunk.push(&dst, payload);
            }
            let n = chunk.len();
            let mut start = 0;
            while start < n {
                match chunk.send(self.fd.as_fd(), start) {
                    Ok(0) => {
                        stats.would_block += (n - start) as u64;
                        break;
                    }
                    Ok(k) => {
                        stats.sent += k as u64;
                        start += k;
                    }
                    Err(e) => match e.raw_os_error() {
                        Some(libc::EINTR) => {}
                        Some(libc::EAGAIN | libc::ENOBUFS) => {
                            stats.would_block += (n - start) as u64;
                            break;
                        }
                        Some(libc::EMSGSIZE) => {
                            stats.too_big += 1;
                            start += 1;
                        }
                        Some(libc::EBADF | libc::ENOTSOCK | libc::EFAULT) => {
                            return Err(UdpError::Io {
                                addr: self.local,
                                op: "sendmmsg",
                                source: e,
                            });
                        }
                        _ => {
                            stats.errors += 1;
                            start += 1;
                        }
                    },
                }
            }
            drop(chunk);
            if exhausted {
                return Ok(stats);
            }
        }
    }
}

impl DatagramIo for UdpUnderlay {
    fn recv_batch(&mut self, pool: &mut BufPool, out: &mut Batch) -> io::Result<RecvStats> {
        Ok(UdpUnderlay::recv_batch(self, pool, out)?)
    }

    fn send_batch(
        &mut self,
        items: &mut dyn Iterator<Item = (SocketAddr, &[u8])>,
    ) -> io::Result<SendStats> {
        Ok(UdpUnderlay::send_batch(self, items)?)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{PollEntry, poll};
    use std::time::Duration;
    use weft_dataplane::HEADROOM;

    // Loopback in the test's own namespace; the namespace tests in tests/ cover the rest.
    #[test]
    fn loopback_round_trip_v4_and_v6() {
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let any: SocketAddr = any.parse().unwrap();
            let (Ok(mut a), Ok(mut b)) = (
                UdpUnderlay::bind(any, &UdpConfig::default()),
                UdpUnderlay::bind(any, &UdpConfig::default()),
            ) else {
                eprintln!("skipping {any}: cannot bind (no loopback for this family?)");
                continue;
            };
            let payloads: Vec<Vec<u8>> = (0..100u8)
                .map(|i| vec![i; 10 + usize::from(i) * 7])
                .collect();
            let dst = b.local_addr();
            let mut it = payloads.iter().map(|p| (dst, p.as_slice()));
            let st = a.send_batch(&mut it).unwrap();
            assert_eq!(
                st,
                SendStats {
                    sent: 100,
                    ..Default::default()
                }
            );
            let mut pool = BufPool::new(256, 2048);
            let mut got = Vec::new();
            for _ in 0..100 {
                if got.len() == payloads.len() {
                    break;
                }
                let mut pe = [PollEntry::readable(b.fd())];
                poll(&mut pe, Some(Duration::from_millis(100))).unwrap();
                let mut batch = Batch::new();
                b.recv_batch(&mut pool, &mut batch).unwrap();
                batch.drain(|p| {
                    assert_eq!(p.headroom(), HEADROOM);
                    assert_eq!(p.meta.source, Source::Underlay(a.local_addr()));
                    got.push(p.data().to_vec());
                    pool.free(p);
                });
            }
            assert_eq!(got, payloads);
            assert_eq!(pool.available(), 256);
            // Wrong family and an empty iterator.
            let other: SocketAddr = if any.is_ipv4() {
                "[::1]:9".parse().unwrap()
            } else {
                "127.0.0.1:9".parse().unwrap()
            };
            let st = a
                .send_batch(&mut [(other, &[1u8][..])].into_iter())
                .unwrap();
            assert_eq!(st.errors, 1);
            assert_eq!(
                a.send_batch(&mut std::iter::empty()).unwrap(),
                SendStats::default()
            );
        }
    }

    #[test]
    fn recv_without_room_or_buffers_is_a_no_op() {
        let mut s =
            UdpUnderlay::bind("127.0.0.1:0".parse().unwrap(), &UdpConfig::default()).unwrap();
        let mut empty_pool = BufPool::new(0, 2048);
        let mut batch = Batch::new();
        assert_eq!(
            s.recv_batch(&mut empty_pool, &mut batch).unwrap(),
            RecvStats::default()
        );
        let mut pool = BufPool::new(4, 2048);
        assert_eq!(
            s.recv_batch(&mut pool, &mut batch).unwrap(),
            RecvStats::default()
        );
        assert_eq!(pool.available(), 4);
        let e = UdpUnderlay::bind(
            "127.0.0.1:0".parse().unwrap(),
            &UdpConfig {
                rcvbuf: usize::MAX,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, UdpError::Config { .. }));
    }
}
