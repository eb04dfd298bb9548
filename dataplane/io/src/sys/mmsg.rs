//! Preallocated `mmsghdr` arrays for `recvmmsg(2)` and `sendmmsg(2)`.
//!
//! The arrays (headers, `iovec`s, socket addresses) are allocated once per socket. The raw
//! pointers inside them (to the caller's buffers and to the address and `iovec` entries) are
//! written immediately before the system call, only from borrows that outlive the call, and
//! are reset to NULL afterwards: between calls the arrays hold no pointer at all. That is what
//! makes the owner safe to move between threads and rules out use of a stale pointer.
//!
//! - Receive: [`MmsgArrays::recv`] takes the destination buffers as `&mut [u8]` for the call and
//!   leaves per-datagram results in [`MmsgArrays::recv_meta`].
//! - Send: [`MmsgArrays::send_chunk`] returns a [`SendChunk`] that borrows the payloads for
//!   `'a`; it cannot outlive them, and its `Drop` clears the pointers.

use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::cvt;
use super::socket::{sockaddr_from, sockaddr_storage_zeroed, sockaddr_to};

/// Most messages per `recvmmsg`/`sendmmsg` call.
pub(crate) const MMSG_MAX: usize = 64;

/// What `recvmmsg` reported for one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecvMeta {
    /// Bytes written into the buffer.
    pub(crate) len: usize,
    /// The datagram was larger than the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
    /// The sender; `None` if the kernel returned no IPv4/IPv6 address.
    pub(crate) peer: Option<SocketAddr>,
}

/// The per-socket message arrays. See the module docs for the pointer discipline.
pub(crate) struct MmsgArrays {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    addrs: Box<[libc::sockaddr_storage]>,
    namelens: Box<[libc::socklen_t]>,
    meta: Box<[RecvMeta]>,
}

// SAFETY: the arrays are owned heap memory. The raw pointers inside them are NULL between
// calls (see the module docs); during a call they are used only by the kernel, inside a method
// that holds `&mut self`. Moving the owner to another thread therefore moves no live pointer.
unsafe impl Send for MmsgArrays {}

impl std::fmt::Debug for MmsgArrays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmsgArrays")
            .field("capacity", &self.hdrs.len())
            .finish()
    }
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data (integers and raw pointers); all-zero, i.e. NULL
    // pointers and zero lengths, is a valid value.
    unsafe { std::mem::zeroed() }
}

fn null_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

impl MmsgArrays {
    /// Arrays for [`MMSG_MAX`] messages, holding no pointers.
    pub(crate) fn new() -> MmsgArrays {
        MmsgArrays {
            hdrs: (0..MMSG_MAX).map(|_| zeroed_mmsghdr()).collect(),
            iovs: (0..MMSG_MAX).map(|_| null_iovec()).collect(),
            addrs: (0..MMSG_MAX).map(|_| sockaddr_storage_zeroed()).collect(),
            namelens: vec![0; MMSG_MAX].into_boxed_slice(),
            meta: vec![RecvMeta::default(); MMSG_MAX].into_boxed_slice(),
        }
    }

    /// Points headers `from..to` at their address entry and `iovec` (raw pointers only, derived
    /// once, so no reference to the arrays is created while the pointers are in use).
    fn link(&mut self, from: usize, to: usize) {
        let to = to.min(MMSG_MAX);
        let hdrs = self.hdrs.as_mut_ptr();
        let iovs = self.iovs.as_mut_ptr();
        let addrs = self.addrs.as_mut_ptr();
        for i in from..to {
            // SAFETY: i < MMSG_MAX, the length of all four arrays, so every pointer is in
            // bounds of its live allocation; the writes go through raw pointers only.
            unsafe {
                let h = &raw mut (*hdrs.add(i)).msg_hdr;
                (*h).msg_name = addrs.add(i).cast();
                (*h).msg_namelen = self.namelens[i];
                (*h).msg_iov = iovs.add(i);
                (*h).msg_iovlen = 1;
                (*h).msg_control = std::ptr::null_mut();
                (*h).msg_controllen = 0;
                (*h).msg_flags = 0;
                (*hdrs.add(i)).msg_len = 0;
            }
        }
    }

    /// Resets every pointer in entries `0..n` to NULL.
    fn clear(&mut self, n: usize) {
        for i in 0..n.min(MMSG_MAX) {
            self.hdrs[i] = zeroed_mmsghdr();
            self.iovs[i] = null_iovec();
        }
    }

    /// `recvmmsg(fd, .., MSG_DONTWAIT)` into `bufs` (at most [`MMSG_MAX`]), one datagram per
    /// buffer. Returns how many datagrams arrived; their lengths, truncation and senders are
    /// in [`MmsgArrays::recv_meta`]. `WouldBlock` when nothing is queued.
    pub(crate) fn recv<'b>(
        &mut self,
        fd: BorrowedFd<'_>,
        bufs: impl Iterator<Item = &'b mut [u8]>,
    ) -> io::Result<usize> {
        let mut n = 0;
        for buf in bufs.take(MMSG_MAX) {
            self.iovs[n] = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            self.namelens[n] = libc::socklen_t::try_from(size_of::<libc::sockaddr_storage>())
                .unwrap_or(libc::socklen_t::MAX);
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        self.link(0, n);
        let vlen = libc::c_uint::try_from(n).unwrap_or(0);
        // SAFETY: headers 0..n point at their own sockaddr_storage (with its full size as
        // msg_namelen) and at one iovec each, which points at a caller buffer exclusively
        // borrowed for 'b, i.e. for the whole call. The kernel writes at most iov_len bytes
        // into each buffer and at most msg_namelen bytes into each address. A NULL timeout is
        // allowed.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let res = cvt(r).map(|k| usize::try_from(k).unwrap_or(0).min(n));
        if let Ok(k) = res {
            for i in 0..k {
                let h = &self.hdrs[i];
                self.meta[i] = RecvMeta {
                    len: usize::try_from(h.msg_len)
                        .unwrap_or(0)
                        .min(self.iovs[i].iov_len),
                    truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                    peer: sockaddr_to(&self.addrs[i], h.msg_hdr.msg_namelen),
                };
            }
        }
        self.clear(n);
        res
    }

    /// Result `i` of the last [`MmsgArrays::recv`] (meaningful for `i` below its return value).
    pub(crate) fn recv_meta(&self, i: usize) -> RecvMeta {
        self.meta.get(i).copied().unwrap_or_default()
    }

    /// Starts filling a batch of datagrams to send; the payloads must outlive the chunk.
    pub(crate) fn send_chunk<'a>(&mut self) -> SendChunk<'_, 'a> {
        SendChunk {
            arr: self,
            len: 0,
            _payloads: PhantomData,
        }
    }
}

/// Up to [`MMSG_MAX`] datagrams being sent with `sendmmsg`. Holds raw pointers to payloads
/// borrowed for `'a`; dropping it clears them.
pub(crate) struct SendChunk<'s, 'a> {
    arr: &'s mut MmsgArrays,
    len: usize,
    _payloads: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for SendChunk<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendChunk").field("len", &self.len).finish()
    }
}

impl<'a> SendChunk<'_, 'a> {
    /// Messages in the chunk.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk holds [`MMSG_MAX`] messages.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= MMSG_MAX
    }

    /// Adds a datagram for `dst`. `false` if the chunk is full.
    pub(crate) fn push(&mut self, dst: &SocketAddr, payload: &'a [u8]) -> bool {
        let i = self.len;
        if i >= MMSG_MAX {
            return false;
        }
        self.arr.namelens[i] = sockaddr_from(dst, &mut self.arr.addrs[i]);
        // The kernel only reads through iov_base for a send; the pointer is *mut in the C type.
        self.arr.iovs[i] = libc::iovec {
            iov_base: payload.as_ptr().cast_mut().cast(),
            iov_len: payload.len(),
        };
        self.len += 1;
        true
    }

    /// `sendmmsg(fd, messages[start..], MSG_DONTWAIT)`: returns how many of those messages
    /// the kernel accepted (a prefix). An error is the error of message `start`.
    pub(crate) fn send(&mut self, fd: BorrowedFd<'_>, start: usize) -> io::Result<usize> {
        if start >= self.len {
            return Ok(0);
        }
        self.arr.link(start, self.len);
        let vlen = libc::c_uint::try_from(self.len - start).unwrap_or(0);
        // SAFETY: headers start..len point at their own address entry (with the length
        // sockaddr_from wrote) and iovec, and each iovec at a payload borrowed for 'a, which
        // outlives `self` and so this call. The kernel only reads all of them (it writes
        // msg_len in the headers, which we own). `start < len <= MMSG_MAX`, in bounds.
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                self.arr.hdrs.as_mut_ptr().add(start),
                vlen,
                libc::MSG_DONTWAIT,
            )
        };
        cvt(r).map(|k| usize::try_from(k).unwrap_or(0))
    }
}

impl Drop for SendChunk<'_, '_> {
    fn drop(&mut self) {
        self.arr.clear(self.len);
    }
}
