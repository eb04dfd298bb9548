//! An `eventfd(2)` waker: one thread calls [`EventFd::wake`], a worker polling the descriptor
//! wakes up and calls [`EventFd::drain`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{cvt, cvt_size};

/// A non-blocking, close-on-exec eventfd counter.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new eventfd with counter 0.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by eventfd, is open, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Adds one to the counter, making the descriptor readable. Cannot fail in practice: a
    /// counter at its maximum (`EAGAIN`) is readable already, and other errors would mean the
    /// descriptor is not this eventfd, which ownership rules out.
    pub fn wake(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: the buffer is a live 8-byte u64, as eventfd requires for write(2).
            let r = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
            match cvt_size(r) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => return,
            }
        }
    }

    /// Reads and resets the counter: the number of wakes since the last drain (0 if none).
    pub fn drain(&self) -> u64 {
        let mut v: u64 = 0;
        loop {
            // SAFETY: the buffer is a live, writable 8-byte u64, as eventfd requires for read(2).
            let r = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut v).cast(), 8) };
            match cvt_size(r) {
                Ok(_) => return v,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EAGAIN: nothing to read.
                Err(_) => return 0,
            }
        }
    }

    /// The descriptor, to put in a [`super::PollEntry`].
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
