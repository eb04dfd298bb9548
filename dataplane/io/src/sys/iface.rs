//! Network interface queries by name: index, MTU, administrative state. They act in the calling
//! thread's network namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;

use super::cvt;
use super::socket::socket;

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The interface index of `name` (`if_nametoindex(3)`); `NotFound`-like `ENODEV` if there is none.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| invalid("interface name contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string that lives across the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// An `ifreq` with `name` filled in, or `InvalidInput` if the name does not fit `IFNAMSIZ - 1`.
fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(invalid("invalid interface name"));
    }
    // SAFETY: `ifreq` is plain old data (a name array and a union of integers, addresses and a
    // pointer); all-zero is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &b) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([b]);
    }
    Ok(req)
}

/// Runs an interface ioctl (`SIOCGIF*`) on a throwaway datagram socket.
fn ifreq_ioctl(name: &str, request: libc::Ioctl) -> io::Result<libc::ifreq> {
    let mut req = ifreq_for(name)?;
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
    // SAFETY: the SIOCGIF* requests used here read `ifr_name` and write one integer member of
    // the union inside `req`, which is a live, writable `ifreq`.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), request, &raw mut req) })?;
    Ok(req)
}

/// The MTU of interface `name` (`SIOCGIFMTU`).
pub fn interface_mtu(name: &str) -> io::Result<u32> {
    let req = ifreq_ioctl(name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU succeeded, so the kernel wrote the `ifru_mtu` member; every bit
    // pattern is a valid c_int.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
}

/// Whether interface `name` is administratively up (`IFF_UP` from `SIOCGIFFLAGS`).
pub fn interface_is_up(name: &str) -> io::Result<bool> {
    let req = ifreq_ioctl(name, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote the `ifru_flags` member; every bit
    // pattern is a valid c_short.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(libc::c_int::from(flags) & libc::IFF_UP != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_known() {
        assert!(interface_index("lo").unwrap() > 0);
        assert!(interface_mtu("lo").unwrap() >= 1280);
        // Loopback may be down in a fresh namespace; only the call must succeed.
        interface_is_up("lo").unwrap();
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(interface_index("weft-no-such-if").is_err());
        assert_eq!(
            interface_mtu("").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            interface_mtu("a-name-longer-than-ifnamsiz")
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            interface_index("a\0b").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(interface_is_up("weftnosuch0").is_err());
    }
}
