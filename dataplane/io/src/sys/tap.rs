//! Persistent tap devices (`/dev/net/tun`, `TUNSETIFF` + `TUNSETPERSIST`), for VM ports whose
//! interface the agent creates itself, and interface settings the agent applies to a port's
//! interface (MTU, up). They act in the calling thread's network namespace.
//!
//! A persistent tap outlives the file descriptor that created it: a VM (QEMU) opens it later by
//! name with `TUNSETIFF`. It is deleted by attaching to it again and clearing the persist flag;
//! the kernel frees it when that descriptor closes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use super::cvt;
use super::iface::{ifreq_for, ifreq_ioctl, update_flags};
use super::socket::socket;

/// Opens `/dev/net/tun` and attaches it to the tap `name` with `flags` (`TUNSETIFF`).
fn tun_attach(name: &str, flags: libc::c_int) -> io::Result<File> {
    let mut req = ifreq_for(name)?;
    // The flags are a 16-bit mask (IFF_TUN_EXCL is bit 15): reinterpret, do not convert.
    let bits = u16::try_from(flags).map_err(|_| io::Error::other("tun flags exceed 16 bits"))?;
    req.ifr_ifru.ifru_flags = libc::c_short::from_ne_bytes(bits.to_ne_bytes());
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    // SAFETY: TUNSETIFF reads `ifr_name` and `ifru_flags` of `req`, a live `ifreq`, and may
    // write the chosen name back into `ifr_name`; `req` is writable and outlives the call.
    cvt(unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &raw mut req) })?;
    Ok(tun)
}

/// Sets or clears the persist flag of the tap `tun` is attached to (`TUNSETPERSIST`).
fn set_persist(tun: &File, persist: bool) -> io::Result<()> {
    let arg = libc::c_ulong::from(persist);
    // SAFETY: TUNSETPERSIST takes its argument by value (no pointer is dereferenced); `tun` is
    // an open descriptor of /dev/net/tun attached to a device.
    cvt(unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, arg) })?;
    Ok(())
}

/// Creates the persistent tap `name` (`IFF_TAP | IFF_NO_PI`). Fails with `EBUSY`
/// (`ResourceBusy`) if an interface of that name already exists: this never takes over an
/// existing device.
pub fn create_persistent_tap(name: &str) -> io::Result<()> {
    let tun = tun_attach(name, libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL)?;
    set_persist(&tun, true)
    // `tun` closes here; the device stays because it is persistent.
}

/// Deletes the persistent tap `name`. Fails with `EINVAL` if `name` is not a tap (a veth, a
/// bridge: never touched), and with `EBUSY` while a process (a VM) still has it open.
pub fn delete_persistent_tap(name: &str) -> io::Result<()> {
    let tun = tun_attach(name, libc::IFF_TAP | libc::IFF_NO_PI)?;
    set_persist(&tun, false)
    // The device is freed when `tun`, its last descriptor, closes here.
}

/// Sets the MTU of interface `name` (`SIOCSIFMTU`).
pub fn set_interface_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut req = ifreq_for(name)?;
    req.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
    // SAFETY: SIOCSIFMTU reads `ifr_name` and `ifru_mtu` of `req`, a live `ifreq`.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &raw const req) })?;
    Ok(())
}

/// Brings interface `name` administratively up (`IFF_UP`), if it is not already.
pub fn set_interface_up(name: &str) -> io::Result<()> {
    let req = ifreq_ioctl(name, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote `ifru_flags`; every bit pattern is a
    // valid c_short.
    let flags = libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags });
    if flags & libc::IFF_UP != 0 {
        return Ok(());
    }
    update_flags(name, libc::IFF_UP, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_call() {
        for bad in ["", "a-name-longer-than-ifnamsiz", "a\0b"] {
            assert_eq!(
                create_persistent_tap(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            assert_eq!(
                delete_persistent_tap(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            assert_eq!(
                set_interface_mtu(bad, 1500).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(
            set_interface_mtu("lo", u32::MAX).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
