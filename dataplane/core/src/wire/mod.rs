//! Wire formats: zero-copy typed views over packet bytes, and small `Repr` values.
//!
//! Each format follows one pattern (after smoltcp's `wire`):
//! - `Foo<T: AsRef<[u8]>>` is a view. `Foo::new_checked(buf)` validates the lengths once, so no
//!   accessor can panic afterwards; `new_unchecked` is for buffers already checked. Setters exist
//!   when `T: AsMut<[u8]>`.
//! - `FooRepr` is the parsed value: `FooRepr::parse(&view)`, `repr.emit(&mut view)`,
//!   `repr.buffer_len()`.
//! - Field offsets live in a private `mod field`.
//! - Protocol numbers keep what they do not know (`EtherType::Unknown(u16)`).
//!
//! Errors are the tiny `Copy` [`Error`]. Every file cites its RFC and carries byte-literal tests.

pub mod arp;
mod bytes;
pub mod checksum;
pub mod dhcpv4;
pub mod dhcpv6;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod ndp;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, L2Info, VlanRepr, VlanTag, parse_l2};
pub use icmpv4::{Icmpv4Message, Icmpv4Packet, Icmpv4Repr};
pub use icmpv6::{Icmpv6Message, Icmpv6Packet, Icmpv6Repr};
pub use ip::IpProtocol;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6FragInfo, Ipv6Packet, Ipv6Repr, Ipv6Upper};
pub use mac::MacAddr;
pub use ndp::{
    NdiscOption, NdiscOptions, NdiscRepr, NeighborFlags, PrefixInfo, RaOptions, RouterFlags,
};
pub use tcp::{TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};
pub use vxlan::{Vni, VxlanPacket, VxlanRepr};

/// Why bytes could not be read as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header (or than the length the header announces).
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated header"),
            Error::Malformed => f.write_str("malformed header"),
        }
    }
}

impl std::error::Error for Error {}

/// Result of parsing a header.
pub type Result<T> = core::result::Result<T, Error>;

/// A byte range of a header field.
pub(crate) type Field = core::ops::Range<usize>;
