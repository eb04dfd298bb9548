//! Entering a named network namespace (as created by `ip netns add NAME`, bound at
//! `/run/netns/NAME`) from the calling thread.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling thread only: sockets the thread
//! opens afterwards, and interface lookups it makes, belong to the namespace, while the rest of
//! the process stays where it was. Sockets keep their namespace for life, so they may be handed
//! to other threads afterwards. The usual pattern (tests, the agent's per-namespace workers) is
//! to spawn a thread, enter the namespace there and open the sockets on that thread.

use std::io;
use std::os::fd::AsRawFd;

use super::cvt;

/// Moves the calling thread into the network namespace `/run/netns/<name>`. Fails with
/// `InvalidInput` for names that are not a single path component.
pub fn enter_thread(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid namespace name",
        ));
    }
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `file` is an open namespace file descriptor for the duration of the call; setns
    // has no memory-safety preconditions.
    cvt(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths() {
        for bad in ["", ".", "..", "a/b", "../x", "a\0"] {
            assert_eq!(
                enter_thread(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(
            enter_thread("weft-no-such-namespace").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
