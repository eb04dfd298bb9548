//! Safe wrappers over the Linux system calls this crate uses. All of the crate's `unsafe` lives
//! here (the crate root is `#![deny(unsafe_code)]` and only this module opts back in).
//!
//! Each wrapper states why its `unsafe` holds. Two wrappers carry a protocol rather than a single
//! call, and document it in their own module:
//!
//! - `ring`: the TPACKET_V3 RX/TX rings shared with the kernel (who owns which block or slot,
//!   and when a reference into the mapping may exist);
//! - `mmsg`: the `mmsghdr`/`iovec` arrays of `recvmmsg`/`sendmmsg`, whose raw pointers are only
//!   set for the duration of one call.
//!
//! The public part ([`poll`], [`EventFd`], the interface queries and settings, [`tap`] devices
//! and [`netns`]) is what workers, the agent and tests need around the I/O backends.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

pub mod eventfd;
pub mod iface;
pub(crate) mod mmap;
pub(crate) mod mmsg;
pub mod netns;
pub(crate) mod ring;
pub(crate) mod socket;
pub mod tap;

pub use eventfd::EventFd;
pub use iface::{interface_index, interface_is_up, interface_mtu, isolate_from_host};
pub use tap::{create_persistent_tap, delete_persistent_tap, set_interface_mtu, set_interface_up};

/// Turns a `-1`-on-error return value into an [`io::Result`], reading `errno`.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Like [`cvt`] for calls that return `ssize_t`.
fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    // A negative value other than -1 is not a return value Linux uses; treat it as an error
    // rather than casting it.
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// Readable data is available.
pub const POLLIN: i16 = libc::POLLIN;
/// Writing will not block.
pub const POLLOUT: i16 = libc::POLLOUT;
/// An error condition (reported in `revents` only).
pub const POLLERR: i16 = libc::POLLERR;
/// The peer hung up (reported in `revents` only).
pub const POLLHUP: i16 = libc::POLLHUP;
/// The file descriptor is not open (reported in `revents` only).
pub const POLLNVAL: i16 = libc::POLLNVAL;

/// One entry of a [`poll`] set: a file descriptor, the events asked for and the events that
/// happened. Layout-identical to `struct pollfd`, so a slice of entries is passed to the kernel
/// as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct PollEntry {
    /// The file descriptor; a negative value makes the kernel skip the entry.
    pub fd: RawFd,
    /// Events to wait for ([`POLLIN`], [`POLLOUT`]).
    pub events: i16,
    /// Events that happened, set by [`poll`].
    pub revents: i16,
}

// `PollEntry` is passed to the kernel as `struct pollfd`: prove the layouts agree.
const _: () = {
    assert!(size_of::<PollEntry>() == size_of::<libc::pollfd>());
    assert!(align_of::<PollEntry>() == align_of::<libc::pollfd>());
    assert!(std::mem::offset_of!(PollEntry, fd) == std::mem::offset_of!(libc::pollfd, fd));
    assert!(std::mem::offset_of!(PollEntry, events) == std::mem::offset_of!(libc::pollfd, events));
    assert!(
        std::mem::offset_of!(PollEntry, revents) == std::mem::offset_of!(libc::pollfd, revents)
    );
};

impl PollEntry {
    /// An entry waiting for `events` on `fd`.
    pub fn new(fd: RawFd, events: i16) -> Self {
        PollEntry {
            fd,
            events,
            revents: 0,
        }
    }

    /// An entry waiting for `fd` to become readable (`POLLIN`).
    pub fn readable(fd: RawFd) -> Self {
        PollEntry::new(fd, POLLIN)
    }

    /// Whether [`poll`] reported `POLLIN`.
    pub fn is_readable(&self) -> bool {
        self.revents & POLLIN != 0
    }

    /// Whether [`poll`] reported `POLLOUT`.
    pub fn is_writable(&self) -> bool {
        self.revents & POLLOUT != 0
    }

    /// Whether [`poll`] reported an error, a hang-up or a closed descriptor (`POLLERR`,
    /// `POLLHUP`, `POLLNVAL`).
    pub fn is_error(&self) -> bool {
        self.revents & (POLLERR | POLLHUP | POLLNVAL) != 0
    }
}

/// Waits until one of `fds` is ready or `timeout` passes (`None`: wait forever), and returns the
/// number of entries with non-zero `revents`. Interrupted waits (`EINTR`) are resumed with the
/// time that is left. A non-zero timeout below one millisecond is rounded up so it does not
/// degenerate into a busy poll.
pub fn poll(fds: &mut [PollEntry], timeout: Option<Duration>) -> io::Result<usize> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let nfds = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many poll entries"))?;
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                let ms = left.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        for e in fds.iter_mut() {
            e.revents = 0;
        }
        // SAFETY: `PollEntry` is layout-identical to `struct pollfd` (checked at compile time
        // above), the pointer and length come from a live mutable slice, and poll(2) writes only
        // the `revents` fields of those `nfds` entries.
        let r = unsafe { libc::poll(fds.as_mut_ptr().cast::<libc::pollfd>(), nfds, ms) };
        match cvt(r) {
            Ok(n) => return Ok(usize::try_from(n).unwrap_or(0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The system's page size (the granularity of ring blocks).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let r = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(r).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Whether the process runs with effective user id 0 (tests use it to skip what needs root).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_times_out_and_reports_readiness() {
        let ev = EventFd::new().unwrap();
        let mut fds = [PollEntry::readable(ev.fd())];
        assert_eq!(poll(&mut fds, Some(Duration::from_millis(1))).unwrap(), 0);
        assert!(!fds[0].is_readable());
        ev.wake();
        ev.wake();
        assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(fds[0].is_readable() && !fds[0].is_error() && !fds[0].is_writable());
        assert_eq!(ev.drain(), 2);
        assert_eq!(ev.drain(), 0);
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0);
    }

    #[test]
    fn poll_reports_closed_descriptor() {
        let mut fds = [PollEntry::new(i32::MAX, POLLIN)];
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 1);
        assert_ne!(fds[0].revents & POLLNVAL, 0);
        assert!(fds[0].is_error());
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
    }
}
