//! Socket creation, options, binding and socket address conversion.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, cvt_size};

/// Plain-old-data values exchanged with `setsockopt`/`getsockopt`.
///
/// # Safety
///
/// Implementors must be `repr(C)` (or primitive) types for which every bit pattern, including
/// all zeroes, is a valid value: the kernel writes arbitrary bytes into them.
pub(crate) unsafe trait Pod: Copy {}

// SAFETY: a primitive integer; every bit pattern is valid.
unsafe impl Pod for libc::c_int {}
// SAFETY: repr(C) struct of c_uint fields; every bit pattern is valid.
unsafe impl Pod for libc::tpacket_req3 {}
// SAFETY: repr(C) struct of c_uint fields; every bit pattern is valid.
unsafe impl Pod for libc::tpacket_stats_v3 {}
// SAFETY: repr(C) struct of integers and a byte array; every bit pattern is valid.
unsafe impl Pod for libc::packet_mreq {}

/// `socket(2)`, returning an owned descriptor.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory-safety preconditions.
    let fd = cvt(unsafe { libc::socket(domain, ty, protocol) })?;
    // SAFETY: `fd` was just returned by socket, is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn socklen_of<T>() -> libc::socklen_t {
    // Option values and socket addresses are a few dozen bytes; the conversion cannot fail.
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// `setsockopt(2)` with a plain-data value.
pub(crate) fn setsockopt<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of exactly the length passed; the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            socklen_of::<T>(),
        )
    })?;
    Ok(())
}

/// `getsockopt(2)` into a plain-data value. Fails if the kernel returns fewer bytes than `T`.
pub(crate) fn getsockopt<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    // SAFETY: `T: Pod`, so all-zero is a valid value.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = socklen_of::<T>();
    // SAFETY: `value` is a live, writable `T` and `len` holds its size; the kernel writes at
    // most `len` bytes and any bytes are a valid `T` (`Pod`).
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    })?;
    if len != socklen_of::<T>() {
        return Err(io::Error::other("getsockopt returned an unexpected length"));
    }
    Ok(value)
}

/// Binds an AF_PACKET socket to interface `ifindex` for `protocol` (host byte order, e.g.
/// `ETH_P_ALL`).
pub(crate) fn bind_packet(fd: BorrowedFd<'_>, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::sa_family_t::try_from(libc::AF_PACKET).unwrap_or_default();
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    // SAFETY: `sll` is a live sockaddr_ll of the length passed; the kernel only reads it.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            socklen_of::<libc::sockaddr_ll>(),
        )
    })?;
    Ok(())
}

/// Writes `addr` into `storage` as a `sockaddr_in` or `sockaddr_in6` and returns its length.
pub(crate) fn sockaddr_from(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> u32 {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and at least as aligned as sockaddr_in
            // (that is its purpose), and `storage` is a live, exclusive reference.
            unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin) };
            socklen_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or_default(),
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin6) };
            socklen_of::<libc::sockaddr_in6>()
        }
    }
}

/// Reads a socket address the kernel wrote into `storage` (`len` bytes valid). `None` for
/// families other than IPv4/IPv6 or a too-short length.
pub(crate) fn sockaddr_to(storage: &libc::sockaddr_storage, len: u32) -> Option<SocketAddr> {
    let len = usize::try_from(len).ok()?;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in and is no
            // more aligned than sockaddr_storage; every bit pattern of it is valid.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// An all-zero `sockaddr_storage`.
pub(crate) fn sockaddr_storage_zeroed() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Binds an IP socket to `addr`.
pub(crate) fn bind_inet(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<()> {
    let mut storage = sockaddr_storage_zeroed();
    let len = sockaddr_from(addr, &mut storage);
    // SAFETY: `storage` holds a valid address of `len` bytes; the kernel only reads it.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), len) })?;
    Ok(())
}

/// The address a socket is bound to (`getsockname(2)`).
pub(crate) fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    let mut storage = sockaddr_storage_zeroed();
    let mut len = socklen_of::<libc::sockaddr_storage>();
    // SAFETY: `storage` is live and writable for `len` bytes; the kernel writes at most that.
    cvt(unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut storage).cast(), &raw mut len) })?;
    sockaddr_to(&storage, len).ok_or_else(|| io::Error::other("not an IP socket address"))
}

/// `send(fd, NULL, 0, MSG_DONTWAIT)`: asks an AF_PACKET socket to transmit what its TX ring
/// holds. Returns the kernel's result (the bytes queued) or the error.
pub(crate) fn send_kick(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: a NULL buffer of length 0 is never dereferenced; for a socket with a TX ring the
    // kernel reads the ring, which it mapped itself.
    cvt_size(unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in [
            "10.1.2.3:4789".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:4789".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 9, 0x12345, 7)),
        ] {
            let mut s = sockaddr_storage_zeroed();
            let len = sockaddr_from(&a, &mut s);
            assert_eq!(sockaddr_to(&s, len), Some(a));
            assert_eq!(sockaddr_to(&s, len - 1), None);
        }
        assert_eq!(sockaddr_to(&sockaddr_storage_zeroed(), 128), None);
    }
}
