//! Network interface queries by name (index, MTU, administrative state) and isolation of a
//! VM-facing interface from the host's stack. They act in the calling thread's network
//! namespace.

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
pub(super) fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
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
pub(super) fn ifreq_ioctl(name: &str, request: libc::Ioctl) -> io::Result<libc::ifreq> {
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

/// Sets interface flags (`SIOCSIFFLAGS`): `set` bits on, `clear` bits off.
pub(super) fn update_flags(name: &str, set: libc::c_int, clear: libc::c_int) -> io::Result<()> {
    let mut req = ifreq_ioctl(name, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote `ifru_flags`; writing it back with
    // bits changed is what SIOCSIFFLAGS reads.
    unsafe {
        let flags = libc::c_int::from(req.ifr_ifru.ifru_flags);
        let new = (flags | set) & !clear;
        req.ifr_ifru.ifru_flags = libc::c_short::try_from(new)
            .map_err(|_| io::Error::other("interface flags overflow"))?;
    }
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
    // SAFETY: SIOCSIFFLAGS reads `ifr_name` and `ifru_flags` of `req`, a live `ifreq`.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &raw const req) })?;
    Ok(())
}

fn write_sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// Cuts interface `name` off from this host's own network stack, so that a VM behind it can
/// reach nothing on the host: only packet sockets (the dataplane) see its frames.
///
/// A VM-facing tap or veth must be up for AF_PACKET to receive, and then the host's kernel
/// receives every frame too. With Linux's defaults it would answer the VM's ARP for any host
/// address and accept the VM's packets to them, including VXLAN to the host's own VTEP socket
/// with a trusted VTEP's source address. This sets:
/// - `IFF_NOARP`: ARP arriving on it is dropped (`arp_rcv`);
/// - `ipv6/conf/NAME/disable_ipv6 = 1`: no IPv6 on it at all;
/// - `ipv4/conf/NAME/rp_filter = 1` (strict): an IPv4 packet is accepted only if the route back
///   to its source leaves through this interface, which has no address and no route, so none is
///   delivered locally or forwarded (packet sockets see them before this check);
/// - `ipv4/conf/NAME/forwarding = 0` and `arp_ignore = 8`, in case either of the above is undone.
///
/// Left: an IPv4 limited broadcast from 0.0.0.0 (a DHCP discover) skips source validation and
/// reaches host sockets bound to 0.0.0.0 on the broadcast's port (a DHCP server on the host).
pub fn isolate_from_host(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(invalid("invalid interface name"));
    }
    update_flags(name, libc::IFF_NOARP, 0)?;
    match write_sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1") {
        // IPv6 disabled on the whole host: nothing to disable.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => r?,
    }
    for (key, value) in [("rp_filter", "1"), ("forwarding", "0"), ("arp_ignore", "8")] {
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/{key}"), value)?;
    }
    Ok(())
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
