//! Big-endian field access shared by the wire views.
//!
//! These index `data[field]` directly: callers use them only on ranges their `check_len` has
//! already validated, so the indexing cannot fail on a checked view. A field of the wrong width
//! is a bug in this crate (the `copy_from_slice` length check catches it in tests).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Field, MacAddr};

#[inline]
pub(super) fn read_u16(data: &[u8], f: Field) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&data[f]);
    u16::from_be_bytes(b)
}

#[inline]
pub(super) fn read_u32(data: &[u8], f: Field) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[f]);
    u32::from_be_bytes(b)
}

#[inline]
pub(super) fn read_mac(data: &[u8], f: Field) -> MacAddr {
    let mut b = [0u8; 6];
    b.copy_from_slice(&data[f]);
    MacAddr(b)
}

#[inline]
pub(super) fn read_ipv4(data: &[u8], f: Field) -> Ipv4Addr {
    Ipv4Addr::from(read_u32(data, f))
}

#[inline]
pub(super) fn read_ipv6(data: &[u8], f: Field) -> Ipv6Addr {
    let mut b = [0u8; 16];
    b.copy_from_slice(&data[f]);
    Ipv6Addr::from(b)
}

#[inline]
pub(super) fn write_u16(data: &mut [u8], f: Field, v: u16) {
    data[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(super) fn write_u32(data: &mut [u8], f: Field, v: u32) {
    data[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(super) fn write_mac(data: &mut [u8], f: Field, v: MacAddr) {
    data[f].copy_from_slice(&v.0);
}

#[inline]
pub(super) fn write_ipv4(data: &mut [u8], f: Field, v: Ipv4Addr) {
    data[f].copy_from_slice(&v.octets());
}

#[inline]
pub(super) fn write_ipv6(data: &mut [u8], f: Field, v: Ipv6Addr) {
    data[f].copy_from_slice(&v.octets());
}
