//! IPv6 Neighbor Discovery (RFC 4861) messages and options, and the Recursive DNS Server
//! option (RFC 8106).
//!
//! ```text
//! RS  | 133 | 0 | csum | reserved                                  | options
//! RA  | 134 | 0 | csum | hop limit | M O ... | router lifetime     |
//!     | reachable time (ms) | retrans timer (ms)                    | options
//! NS  | 135 | 0 | csum | reserved | target address (16)             | options
//! NA  | 136 | 0 | csum | R S O ... reserved | target address (16)   | options
//!
//! option: | type | length (units of 8 bytes, > 0) | data ... |
//! ```
//!
//! Parsing never allocates. [`NdiscRepr::parse`] extracts the fixed fields and the link-layer
//! address (and, for a router advertisement, the MTU); the rest of a router advertisement's
//! options stay in wire form ([`RaOptions::Wire`]) for callers to walk with [`NdiscOptions`].
//! To *send* a router advertisement, [`RaOptions::Emit`] takes prefixes and DNS servers as
//! slices of values. So one enum serves both directions, and neither allocates.
//!
//! Validation (RFC 4861 §6.1, §7.1) is split by layer: [`validate`] checks what is inside the
//! ICMPv6 message (code 0, length, option lengths, targets) and is part of parsing;
//! [`validate_ip_header`] checks what needs the IPv6 header (hop limit 255, source and
//! destination rules) and is the caller's. The checksum is verified separately with
//! [`Icmpv6Packet::verify_checksum`].

use std::fmt;
use std::net::Ipv6Addr;
use std::ops::BitOr;
use std::slice::ChunksExact;

use super::bytes::{
    read_ipv6, read_mac, read_u16, read_u32, write_ipv6, write_mac, write_u16, write_u32,
};
use super::icmpv6::{Icmpv6Message, Icmpv6Packet};
use super::{Error, MacAddr, Result};

/// The hop limit every Neighbor Discovery message must arrive with (RFC 4861 §6.1, §7.1): a
/// message with any other value came from off-link and must be dropped.
pub const HOP_LIMIT: u8 = 255;

/// Whether `hop_limit` (of the IPv6 header carrying an ND message) is [`HOP_LIMIT`].
#[inline]
pub const fn hop_limit_valid(hop_limit: u8) -> bool {
    hop_limit == HOP_LIMIT
}

/// Option type numbers.
mod kind {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;
    pub const RDNSS: u8 = 25;
}

/// Offsets in the ICMPv6 message.
mod field {
    use crate::wire::Field;

    pub const RS_OPTIONS: usize = 8;
    pub const RA_HOP_LIMIT: usize = 4;
    pub const RA_FLAGS: usize = 5;
    pub const RA_ROUTER_LIFETIME: Field = 6..8;
    pub const RA_REACHABLE_TIME: Field = 8..12;
    pub const RA_RETRANS_TIME: Field = 12..16;
    pub const RA_OPTIONS: usize = 16;
    pub const NA_FLAGS: usize = 4;
    pub const TARGET: Field = 8..24;
    pub const NS_NA_OPTIONS: usize = 24;
    pub const REDIRECT_DST: Field = 24..40;
    pub const REDIRECT_OPTIONS: usize = 40;
}

/// Offsets in an option.
mod opt_field {
    use crate::wire::Field;

    pub const LLADDR: Field = 2..8;
    pub const PREFIX_LEN: usize = 2;
    pub const PREFIX_FLAGS: usize = 3;
    pub const VALID_LIFETIME: Field = 4..8;
    pub const PREFERRED_LIFETIME: Field = 8..12;
    pub const PREFIX: Field = 16..32;
    pub const MTU: Field = 4..8;
    pub const RDNSS_LIFETIME: Field = 4..8;
    pub const BODY: usize = 8;
}

const LLADDR_OPT_LEN: usize = 8;
const PREFIX_OPT_LEN: usize = 32;
const MTU_OPT_LEN: usize = 8;
const PREFIX_ON_LINK: u8 = 0x80;
const PREFIX_AUTONOMOUS: u8 = 0x40;

macro_rules! flag_set {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$fmeta:meta])* $flag:ident = $bit:expr,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u8);

        impl $name {
            $($(#[$fmeta])* pub const $flag: $name = $name($bit);)*
            const ALL: u8 = 0 $(| $bit)*;

            /// No flags.
            #[inline]
            pub const fn empty() -> Self {
                $name(0)
            }

            /// The flags in wire byte `bits`; the other (reserved) bits are dropped.
            #[inline]
            pub const fn from_bits_truncate(bits: u8) -> Self {
                $name(bits & Self::ALL)
            }

            /// The wire byte.
            #[inline]
            pub const fn bits(self) -> u8 {
                self.0
            }

            /// Whether every flag of `other` is set.
            #[inline]
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Sets the flags of `other`.
            #[inline]
            pub fn insert(&mut self, other: Self) {
                self.0 |= other.0;
            }

            /// Clears the flags of `other`.
            #[inline]
            pub fn remove(&mut self, other: Self) {
                self.0 &= !other.0;
            }
        }

        impl BitOr for $name {
            type Output = $name;
            #[inline]
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut sep = "";
                f.write_str(concat!(stringify!($name), "("))?;
                $(
                    if self.contains($name::$flag) {
                        write!(f, "{sep}{}", stringify!($flag))?;
                        sep = "|";
                    }
                )*
                let _ = sep;
                f.write_str(")")
            }
        }
    };
}

flag_set! {
    /// Router advertisement flags (RFC 4861 §4.2).
    RouterFlags {
        /// Managed address configuration: addresses come from DHCPv6.
        MANAGED = 0x80,
        /// Other configuration: other information comes from DHCPv6.
        OTHER = 0x40,
    }
}

flag_set! {
    /// Neighbor advertisement flags (RFC 4861 §4.4).
    NeighborFlags {
        /// The sender is a router.
        ROUTER = 0x80,
        /// Sent in response to a neighbor solicitation.
        SOLICITED = 0x40,
        /// Override an existing cache entry.
        OVERRIDE = 0x20,
    }
}

/// A Prefix Information option's contents (RFC 4861 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// Prefix length in bits (0..=128).
    pub prefix_len: u8,
    /// On-link flag (L).
    pub on_link: bool,
    /// Autonomous address-configuration flag (A).
    pub autonomous: bool,
    /// Valid lifetime in seconds (`u32::MAX`: infinity).
    pub valid_lifetime: u32,
    /// Preferred lifetime in seconds (`u32::MAX`: infinity).
    pub preferred_lifetime: u32,
    /// The prefix (bits past `prefix_len` should be zero).
    pub prefix: Ipv6Addr,
}

/// One Neighbor Discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdiscOption<'a> {
    /// Source link-layer address (type 1).
    SourceLinkLayerAddr(MacAddr),
    /// Target link-layer address (type 2).
    TargetLinkLayerAddr(MacAddr),
    /// Prefix information (type 3).
    PrefixInformation(PrefixInfo),
    /// Redirected header (type 4): the bytes after the 8-byte option header (as much of the
    /// redirected packet as fits, padded to a multiple of 8).
    RedirectedHeader(&'a [u8]),
    /// Link MTU (type 5).
    Mtu(u32),
    /// Recursive DNS servers (type 25, RFC 8106).
    Rdnss {
        /// Lifetime in seconds (`u32::MAX`: infinity, 0: stop using them).
        lifetime: u32,
        /// The server addresses, 16 bytes each (a non-empty multiple of 16 when parsed); walk
        /// them with [`rdnss_servers`].
        servers: &'a [u8],
    },
    /// Any other option type, with the bytes after its type and length.
    Unknown {
        /// Option type.
        kind: u8,
        /// Option data (including any padding).
        data: &'a [u8],
    },
}

#[inline]
fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Writes an option header (type and length in units of 8) at the start of `buf`.
#[inline]
fn option_header(buf: &mut [u8], kind: u8, len: usize) {
    debug_assert!(
        len.is_multiple_of(8) && len / 8 <= usize::from(u8::MAX),
        "ND option of {len} bytes"
    );
    buf[0] = kind;
    buf[1] = u8::try_from(len / 8).unwrap_or(u8::MAX);
}

impl NdiscOption<'_> {
    /// Number of bytes [`emit`](Self::emit) writes (a multiple of 8).
    pub fn buffer_len(&self) -> usize {
        match self {
            NdiscOption::SourceLinkLayerAddr(_) | NdiscOption::TargetLinkLayerAddr(_) => {
                LLADDR_OPT_LEN
            }
            NdiscOption::PrefixInformation(_) => PREFIX_OPT_LEN,
            NdiscOption::RedirectedHeader(data) => round8(opt_field::BODY + data.len()),
            NdiscOption::Mtu(_) => MTU_OPT_LEN,
            NdiscOption::Rdnss { servers, .. } => round8(opt_field::BODY + servers.len()),
            NdiscOption::Unknown { data, .. } => round8(2 + data.len()),
        }
    }

    /// Writes the option at the start of `buf` (reserved bytes and padding zeroed), returning
    /// its length.
    ///
    /// # Panics
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len). In debug builds, if the
    /// option would be longer than 2040 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        buf.fill(0);
        match *self {
            NdiscOption::SourceLinkLayerAddr(mac) => {
                option_header(buf, kind::SOURCE_LLADDR, len);
                write_mac(buf, opt_field::LLADDR, mac);
            }
            NdiscOption::TargetLinkLayerAddr(mac) => {
                option_header(buf, kind::TARGET_LLADDR, len);
                write_mac(buf, opt_field::LLADDR, mac);
            }
            NdiscOption::PrefixInformation(p) => {
                option_header(buf, kind::PREFIX_INFO, len);
                buf[opt_field::PREFIX_LEN] = p.prefix_len;
                buf[opt_field::PREFIX_FLAGS] = if p.on_link { PREFIX_ON_LINK } else { 0 }
                    | if p.autonomous { PREFIX_AUTONOMOUS } else { 0 };
                write_u32(buf, opt_field::VALID_LIFETIME, p.valid_lifetime);
                write_u32(buf, opt_field::PREFERRED_LIFETIME, p.preferred_lifetime);
                write_ipv6(buf, opt_field::PREFIX, p.prefix);
            }
            NdiscOption::RedirectedHeader(data) => {
                option_header(buf, kind::REDIRECTED_HEADER, len);
                buf[opt_field::BODY..opt_field::BODY + data.len()].copy_from_slice(data);
            }
            NdiscOption::Mtu(mtu) => {
                option_header(buf, kind::MTU, len);
                write_u32(buf, opt_field::MTU, mtu);
            }
            NdiscOption::Rdnss { lifetime, servers } => {
                debug_assert!(
                    servers.len() % 16 == 0,
                    "RDNSS servers of {} bytes",
                    servers.len()
                );
                option_header(buf, kind::RDNSS, len);
                write_u32(buf, opt_field::RDNSS_LIFETIME, lifetime);
                buf[opt_field::BODY..opt_field::BODY + servers.len()].copy_from_slice(servers);
            }
            NdiscOption::Unknown { kind, data } => {
                option_header(buf, kind, len);
                buf[2..2 + data.len()].copy_from_slice(data);
            }
        }
        len
    }

    /// Decodes option `opt` (whole, header included, at least 8 bytes) of type `kind`.
    fn decode(kind: u8, opt: &[u8]) -> Result<NdiscOption<'_>> {
        Ok(match kind {
            kind::SOURCE_LLADDR | kind::TARGET_LLADDR => {
                // Ethernet addresses only (RFC 2464 §6): length 1.
                if opt.len() != LLADDR_OPT_LEN {
                    return Err(Error::Malformed);
                }
                let mac = read_mac(opt, opt_field::LLADDR);
                if kind == kind::SOURCE_LLADDR {
                    NdiscOption::SourceLinkLayerAddr(mac)
                } else {
                    NdiscOption::TargetLinkLayerAddr(mac)
                }
            }
            kind::PREFIX_INFO => {
                if opt.len() != PREFIX_OPT_LEN || opt[opt_field::PREFIX_LEN] > 128 {
                    return Err(Error::Malformed);
                }
                let flags = opt[opt_field::PREFIX_FLAGS];
                NdiscOption::PrefixInformation(PrefixInfo {
                    prefix_len: opt[opt_field::PREFIX_LEN],
                    on_link: flags & PREFIX_ON_LINK != 0,
                    autonomous: flags & PREFIX_AUTONOMOUS != 0,
                    valid_lifetime: read_u32(opt, opt_field::VALID_LIFETIME),
                    preferred_lifetime: read_u32(opt, opt_field::PREFERRED_LIFETIME),
                    prefix: read_ipv6(opt, opt_field::PREFIX),
                })
            }
            kind::REDIRECTED_HEADER => NdiscOption::RedirectedHeader(&opt[opt_field::BODY..]),
            kind::MTU => {
                if opt.len() != MTU_OPT_LEN {
                    return Err(Error::Malformed);
                }
                NdiscOption::Mtu(read_u32(opt, opt_field::MTU))
            }
            kind::RDNSS => {
                // Length 3 + 2n (RFC 8106 §5.1): at least one address, whole addresses only.
                let servers = &opt[opt_field::BODY..];
                if servers.is_empty() || !servers.len().is_multiple_of(16) {
                    return Err(Error::Malformed);
                }
                NdiscOption::Rdnss {
                    lifetime: read_u32(opt, opt_field::RDNSS_LIFETIME),
                    servers,
                }
            }
            kind => NdiscOption::Unknown {
                kind,
                data: &opt[2..],
            },
        })
    }
}

/// An iterator over IPv6 addresses packed 16 bytes each (an RDNSS option's servers). A trailing
/// partial address is ignored.
#[derive(Debug, Clone)]
pub struct Ipv6Addrs<'a> {
    chunks: ChunksExact<'a, u8>,
}

impl Iterator for Ipv6Addrs<'_> {
    type Item = Ipv6Addr;

    #[inline]
    fn next(&mut self) -> Option<Ipv6Addr> {
        let c = self.chunks.next()?;
        let mut a = [0u8; 16];
        a.copy_from_slice(c);
        Some(Ipv6Addr::from(a))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Ipv6Addrs<'_> {}

/// The addresses in an [`NdiscOption::Rdnss`] `servers` slice.
#[inline]
pub fn rdnss_servers(servers: &[u8]) -> Ipv6Addrs<'_> {
    Ipv6Addrs {
        chunks: servers.chunks_exact(16),
    }
}

/// The TLV framing walk: yields each whole option with its type. `Malformed` for a zero length
/// and `Truncated` for an option running past the end, after which it stops.
#[derive(Debug, Clone)]
struct RawOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawOptions<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after) = self.rest.split_first()?;
        let units = after.first().map(|&u| usize::from(u));
        let framed = match units {
            None => Err(Error::Truncated),
            Some(0) => Err(Error::Malformed),
            Some(n) => self.rest.split_at_checked(n * 8).ok_or(Error::Truncated),
        };
        match framed {
            Ok((opt, rest)) => {
                self.rest = rest;
                Some(Ok((kind, opt)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// An iterator over Neighbor Discovery options.
///
/// Framing errors end the walk: a zero length yields `Malformed`, an option running past the
/// end `Truncated`, and nothing follows. An option with a well-framed but invalid body (a
/// link-layer address option that is not 8 bytes, a prefix length over 128, an RDNSS option
/// without whole addresses) yields `Malformed` and the walk goes on.
#[derive(Debug, Clone)]
pub struct NdiscOptions<'a> {
    raw: RawOptions<'a>,
}

impl<'a> NdiscOptions<'a> {
    /// Iterates over the options in `options` (for example [`RaOptions::Wire`]'s bytes).
    #[inline]
    pub fn new(options: &'a [u8]) -> NdiscOptions<'a> {
        NdiscOptions {
            raw: RawOptions { rest: options },
        }
    }
}

impl<'a> Iterator for NdiscOptions<'a> {
    type Item = Result<NdiscOption<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.raw
                .next()?
                .and_then(|(kind, opt)| NdiscOption::decode(kind, opt)),
        )
    }
}

/// The options of a router advertisement beyond its link-layer address and MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaOptions<'a> {
    /// As received: the whole option area in wire form, including the source link-layer
    /// address and MTU options (already surfaced as `lladdr` and `mtu`). Walk it with
    /// [`NdiscOptions::new`]. Emitting this form writes `lladdr` and `mtu` and then copies
    /// every other option verbatim (stopping at the first framing error).
    Wire(&'a [u8]),
    /// To send: Prefix Information options, then an RDNSS option if `rdnss` is `Some` with at
    /// least one server (lifetime in seconds, servers).
    Emit {
        /// One Prefix Information option each.
        prefixes: &'a [PrefixInfo],
        /// Lifetime in seconds and servers for one RDNSS option.
        rdnss: Option<(u32, &'a [Ipv6Addr])>,
    },
}

impl<'a> RaOptions<'a> {
    /// The options of the `Wire` form that emitting copies: all but SLLA and MTU.
    fn wire_extra(raw: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        RawOptions { rest: raw }
            .map_while(Result::ok)
            .filter(|&(k, _)| k != kind::SOURCE_LLADDR && k != kind::MTU)
            .map(|(_, opt)| opt)
    }

    fn buffer_len(&self) -> usize {
        match *self {
            RaOptions::Wire(raw) => RaOptions::wire_extra(raw).map(<[u8]>::len).sum(),
            RaOptions::Emit { prefixes, rdnss } => {
                PREFIX_OPT_LEN * prefixes.len()
                    + match rdnss {
                        Some((_, servers)) if !servers.is_empty() => {
                            opt_field::BODY + 16 * servers.len()
                        }
                        _ => 0,
                    }
            }
        }
    }

    /// Writes the options at the start of `buf`, returning their length.
    fn emit(&self, buf: &mut [u8]) -> usize {
        let mut at = 0;
        match *self {
            RaOptions::Wire(raw) => {
                for opt in RaOptions::wire_extra(raw) {
                    buf[at..at + opt.len()].copy_from_slice(opt);
                    at += opt.len();
                }
            }
            RaOptions::Emit { prefixes, rdnss } => {
                for &p in prefixes {
                    at += NdiscOption::PrefixInformation(p).emit(&mut buf[at..]);
                }
                if let Some((lifetime, servers)) = rdnss.filter(|(_, s)| !s.is_empty()) {
                    let len = opt_field::BODY + 16 * servers.len();
                    let opt = &mut buf[at..at + len];
                    opt.fill(0);
                    option_header(opt, kind::RDNSS, len);
                    write_u32(opt, opt_field::RDNSS_LIFETIME, lifetime);
                    for (chunk, addr) in opt[opt_field::BODY..].chunks_exact_mut(16).zip(servers) {
                        chunk.copy_from_slice(&addr.octets());
                    }
                    at += len;
                }
            }
        }
        at
    }
}

/// A Neighbor Discovery message (RFC 4861) as a value. Redirect is not modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdiscRepr<'a> {
    /// Router solicitation (133).
    RouterSolicit {
        /// Source link-layer address option.
        lladdr: Option<MacAddr>,
    },
    /// Router advertisement (134).
    RouterAdvert {
        /// Current hop limit to use (0: unspecified).
        hop_limit: u8,
        /// M and O flags.
        flags: RouterFlags,
        /// Router lifetime in seconds (0: not a default router).
        router_lifetime: u16,
        /// Reachable time in milliseconds (0: unspecified).
        reachable_time: u32,
        /// Retransmission timer in milliseconds (0: unspecified).
        retrans_time: u32,
        /// Source link-layer address option (the first, when parsed).
        lladdr: Option<MacAddr>,
        /// MTU option (the first, when parsed).
        mtu: Option<u32>,
        /// The other options: raw when parsed, values to emit.
        options: RaOptions<'a>,
    },
    /// Neighbor solicitation (135).
    NeighborSolicit {
        /// The address being resolved.
        target: Ipv6Addr,
        /// Source link-layer address option (absent in duplicate address detection).
        lladdr: Option<MacAddr>,
    },
    /// Neighbor advertisement (136).
    NeighborAdvert {
        /// R, S and O flags.
        flags: NeighborFlags,
        /// The address advertised.
        target: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<MacAddr>,
    },
}

/// Length of the fixed part of each Neighbor Discovery message.
fn fixed_len(msg: Icmpv6Message) -> Option<usize> {
    match msg {
        Icmpv6Message::RouterSolicit => Some(field::RS_OPTIONS),
        Icmpv6Message::RouterAdvert => Some(field::RA_OPTIONS),
        Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert => {
            Some(field::NS_NA_OPTIONS)
        }
        Icmpv6Message::Redirect => Some(field::REDIRECT_OPTIONS),
        _ => None,
    }
}

/// Checks a Neighbor Discovery message's own fields (RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2,
/// §8.1): `Malformed` if it is not an ND message (RS, RA, NS, NA, redirect), its code is not 0,
/// an option has length 0, or a target (or redirect destination) is multicast; `Truncated` if
/// it is shorter than its fixed part or an option runs past the end.
///
/// The checks that need the IPv6 header are in [`validate_ip_header`]; the checksum is
/// [`Icmpv6Packet::verify_checksum`].
pub fn validate<T: AsRef<[u8]>>(packet: &Icmpv6Packet<T>) -> Result<()> {
    packet.check_len()?;
    let msg = packet.msg_type();
    let fixed = fixed_len(msg).ok_or(Error::Malformed)?;
    if packet.msg_code() != 0 {
        return Err(Error::Malformed);
    }
    let data = packet.buffer.as_ref();
    let options = data.get(fixed..).ok_or(Error::Truncated)?;
    for opt in (RawOptions { rest: options }) {
        opt?;
    }
    let multicast_target = match msg {
        Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert => {
            read_ipv6(data, field::TARGET).is_multicast()
        }
        Icmpv6Message::Redirect => read_ipv6(data, field::REDIRECT_DST).is_multicast(),
        _ => false,
    };
    if multicast_target {
        Err(Error::Malformed)
    } else {
        Ok(())
    }
}

/// Whether `addr` is a solicited-node multicast address (ff02::1:ff00:0/104, RFC 4291 §2.7.1).
#[inline]
pub fn is_solicited_node(addr: &Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// Checks the IPv6-header rules for a parsed ND message (RFC 4861 §6.1.1, §6.1.2, §7.1.1,
/// §7.1.2): the hop limit is 255; a router advertisement comes from a link-local address; a
/// solicitation from the unspecified address (duplicate address detection) carries no source
/// link-layer address and, for NS, goes to a solicited-node address; an advertisement to a
/// multicast address is not marked solicited. `Malformed` otherwise.
pub fn validate_ip_header(
    hop_limit: u8,
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    repr: &NdiscRepr<'_>,
) -> Result<()> {
    let ok = hop_limit_valid(hop_limit)
        && match *repr {
            NdiscRepr::RouterSolicit { lladdr } => !(src.is_unspecified() && lladdr.is_some()),
            NdiscRepr::RouterAdvert { .. } => src.is_unicast_link_local(),
            NdiscRepr::NeighborSolicit { lladdr, .. } => {
                !src.is_unspecified() || (lladdr.is_none() && is_solicited_node(dst))
            }
            NdiscRepr::NeighborAdvert { flags, .. } => {
                !(dst.is_multicast() && flags.contains(NeighborFlags::SOLICITED))
            }
        };
    if ok { Ok(()) } else { Err(Error::Malformed) }
}

/// The first option of type `want` in `options`, decoded. Errors in it are returned; other
/// options are not decoded (framing was checked by [`validate`]).
fn find_option(options: &[u8], want: u8) -> Result<Option<NdiscOption<'_>>> {
    for opt in (RawOptions { rest: options }) {
        let (k, bytes) = opt?;
        if k == want {
            return NdiscOption::decode(k, bytes).map(Some);
        }
    }
    Ok(None)
}

fn find_lladdr(options: &[u8], want: u8) -> Result<Option<MacAddr>> {
    Ok(match find_option(options, want)? {
        Some(NdiscOption::SourceLinkLayerAddr(m) | NdiscOption::TargetLinkLayerAddr(m)) => Some(m),
        _ => None,
    })
}

/// Writes `opt`, if any, at `at` in `buf`; returns the offset after it.
fn put_option(buf: &mut [u8], at: usize, opt: Option<NdiscOption<'_>>) -> usize {
    match opt {
        Some(o) => at + o.emit(&mut buf[at..]),
        None => at,
    }
}

impl<'a> NdiscRepr<'a> {
    /// Reads `packet` after [`validate`]. `Malformed` also for a redirect (not modelled) and for
    /// an invalid link-layer address or MTU option. Does not verify the checksum or the IPv6
    /// header rules ([`validate_ip_header`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv6Packet<&'a T>) -> Result<NdiscRepr<'a>> {
        validate(packet)?;
        let data: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        match packet.msg_type() {
            Icmpv6Message::RouterSolicit => Ok(NdiscRepr::RouterSolicit {
                lladdr: find_lladdr(&data[field::RS_OPTIONS..], kind::SOURCE_LLADDR)?,
            }),
            Icmpv6Message::RouterAdvert => {
                let options = &data[field::RA_OPTIONS..];
                let mtu = match find_option(options, kind::MTU)? {
                    Some(NdiscOption::Mtu(mtu)) => Some(mtu),
                    _ => None,
                };
                Ok(NdiscRepr::RouterAdvert {
                    hop_limit: data[field::RA_HOP_LIMIT],
                    flags: RouterFlags::from_bits_truncate(data[field::RA_FLAGS]),
                    router_lifetime: read_u16(data, field::RA_ROUTER_LIFETIME),
                    reachable_time: read_u32(data, field::RA_REACHABLE_TIME),
                    retrans_time: read_u32(data, field::RA_RETRANS_TIME),
                    lladdr: find_lladdr(options, kind::SOURCE_LLADDR)?,
                    mtu,
                    options: RaOptions::Wire(options),
                })
            }
            Icmpv6Message::NeighborSolicit => Ok(NdiscRepr::NeighborSolicit {
                target: read_ipv6(data, field::TARGET),
                lladdr: find_lladdr(&data[field::NS_NA_OPTIONS..], kind::SOURCE_LLADDR)?,
            }),
            Icmpv6Message::NeighborAdvert => Ok(NdiscRepr::NeighborAdvert {
                flags: NeighborFlags::from_bits_truncate(data[field::NA_FLAGS]),
                target: read_ipv6(data, field::TARGET),
                lladdr: find_lladdr(&data[field::NS_NA_OPTIONS..], kind::TARGET_LLADDR)?,
            }),
            _ => Err(Error::Malformed),
        }
    }

    fn lladdr_len(lladdr: Option<MacAddr>) -> usize {
        if lladdr.is_some() { LLADDR_OPT_LEN } else { 0 }
    }

    /// Length of the message this emits, options included.
    pub fn buffer_len(&self) -> usize {
        match *self {
            NdiscRepr::RouterSolicit { lladdr } => field::RS_OPTIONS + Self::lladdr_len(lladdr),
            NdiscRepr::RouterAdvert {
                lladdr,
                mtu,
                options,
                ..
            } => {
                field::RA_OPTIONS
                    + Self::lladdr_len(lladdr)
                    + if mtu.is_some() { MTU_OPT_LEN } else { 0 }
                    + options.buffer_len()
            }
            NdiscRepr::NeighborSolicit { lladdr, .. }
            | NdiscRepr::NeighborAdvert { lladdr, .. } => {
                field::NS_NA_OPTIONS + Self::lladdr_len(lladdr)
            }
        }
    }

    /// Writes the message into the first [`buffer_len`](Self::buffer_len) bytes of `packet`
    /// (reserved fields zeroed), with its checksum for a message from `src` to `dst`.
    ///
    /// # Panics
    /// If the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        packet: &mut Icmpv6Packet<T>,
    ) {
        let len = self.buffer_len();
        let buf = &mut packet.buffer.as_mut()[..len];
        buf.fill(0);
        let (msg, end) = match *self {
            NdiscRepr::RouterSolicit { lladdr } => {
                let opt = lladdr.map(NdiscOption::SourceLinkLayerAddr);
                (
                    Icmpv6Message::RouterSolicit,
                    put_option(buf, field::RS_OPTIONS, opt),
                )
            }
            NdiscRepr::RouterAdvert {
                hop_limit,
                flags,
                router_lifetime,
                reachable_time,
                retrans_time,
                lladdr,
                mtu,
                options,
            } => {
                buf[field::RA_HOP_LIMIT] = hop_limit;
                buf[field::RA_FLAGS] = flags.bits();
                write_u16(buf, field::RA_ROUTER_LIFETIME, router_lifetime);
                write_u32(buf, field::RA_REACHABLE_TIME, reachable_time);
                write_u32(buf, field::RA_RETRANS_TIME, retrans_time);
                let opt = lladdr.map(NdiscOption::SourceLinkLayerAddr);
                let mut at = put_option(buf, field::RA_OPTIONS, opt);
                at = put_option(buf, at, mtu.map(NdiscOption::Mtu));
                at += options.emit(&mut buf[at..]);
                (Icmpv6Message::RouterAdvert, at)
            }
            NdiscRepr::NeighborSolicit { target, lladdr } => {
                write_ipv6(buf, field::TARGET, target);
                let opt = lladdr.map(NdiscOption::SourceLinkLayerAddr);
                (
                    Icmpv6Message::NeighborSolicit,
                    put_option(buf, field::NS_NA_OPTIONS, opt),
                )
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target,
                lladdr,
            } => {
                buf[field::NA_FLAGS] = flags.bits();
                write_ipv6(buf, field::TARGET, target);
                let opt = lladdr.map(NdiscOption::TargetLinkLayerAddr);
                (
                    Icmpv6Message::NeighborAdvert,
                    put_option(buf, field::NS_NA_OPTIONS, opt),
                )
            }
        };
        debug_assert_eq!(end, len);
        let mut p = Icmpv6Packet::new_unchecked(buf);
        p.set_msg_type(msg);
        p.set_msg_code(0);
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // NS fe80::5054:ff:fe12:3456 -> ff02::1:ff00:2: who has fe80::2? SLLA 52:54:00:12:34:56.
    const NS: [u8; 32] = [
        0x87, 0x00, 0x72, 0x20, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x52, 0x54, 0x00, 0x12,
        0x34, 0x56,
    ];
    // NA fe80::2 -> fe80::5054:ff:fe12:3456: solicited, override, TLLA 02:00:00:00:00:02.
    const NA: [u8; 32] = [
        0x88, 0x00, 0x94, 0x5e, 0x60, 0x00, 0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x02,
    ];
    // RS fe80::5054:ff:fe12:3456 -> ff02::2 with SLLA.
    const RS: [u8; 16] = [
        0x85, 0x00, 0x71, 0xb5, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34,
        0x56,
    ];
    // RA fe80::1 -> ff02::1: hop limit 64, O flag, lifetime 1800 s, reachable 30000 ms,
    // retrans 1000 ms; SLLA 02:00:00:00:00:01, MTU 1450, prefix 2001:db8:1::/64 (L, A, valid
    // 86400, preferred 14400), RDNSS 2001:db8::53 for 600 s.
    const RA: [u8; 88] = [
        0x86, 0x00, 0x69, 0x32, 0x40, 0x40, 0x07, 0x08, 0x00, 0x00, 0x75, 0x30, 0x00, 0x00, 0x03,
        0xe8, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x05, 0xaa, 0x03, 0x04, 0x40, 0xc0, 0x00, 0x01, 0x51, 0x80, 0x00, 0x00, 0x38, 0x40, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x19, 0x03, 0x00, 0x00, 0x00, 0x00, 0x02, 0x58, 0x20, 0x01, 0x0d,
        0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53,
    ];

    const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn vm_ll() -> Ipv6Addr {
        a("fe80::5054:ff:fe12:3456")
    }

    fn prefix() -> PrefixInfo {
        PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            prefix: a("2001:db8:1::"),
        }
    }

    fn parse(bytes: &[u8]) -> Result<NdiscRepr<'_>> {
        NdiscRepr::parse(&Icmpv6Packet::new_checked(bytes)?)
    }

    /// Emits `repr` into a fresh buffer and checks it equals `want`.
    fn assert_emits(repr: &NdiscRepr<'_>, src: &Ipv6Addr, dst: &Ipv6Addr, want: &[u8]) {
        let mut buf = [0xa5u8; 128];
        assert_eq!(repr.buffer_len(), want.len());
        repr.emit(src, dst, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..want.len()], want);
        assert!(buf[want.len()..].iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn neighbor_solicit() {
        let (src, dst) = (vm_ll(), a("ff02::1:ff00:2"));
        let p = Icmpv6Packet::new_checked(&NS[..]).unwrap();
        assert!(p.verify_checksum(&src, &dst));
        assert_eq!(validate(&p), Ok(()));
        let r = NdiscRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            NdiscRepr::NeighborSolicit {
                target: a("fe80::2"),
                lladdr: Some(VM_MAC)
            }
        );
        assert_eq!(validate_ip_header(255, &src, &dst, &r), Ok(()));
        assert_eq!(
            validate_ip_header(254, &src, &dst, &r),
            Err(Error::Malformed)
        );
        assert_emits(&r, &src, &dst, &NS);
        // Through Icmpv6Repr too.
        let i = crate::wire::icmpv6::Icmpv6Repr::parse(&p).unwrap();
        assert_eq!(i, crate::wire::icmpv6::Icmpv6Repr::Ndisc(r));
        let mut buf = [0u8; 32];
        i.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, NS);
    }

    #[test]
    fn duplicate_address_detection_rules() {
        let dad = NdiscRepr::NeighborSolicit {
            target: a("fe80::2"),
            lladdr: None,
        };
        let sn = a("ff02::1:ff00:2");
        assert!(is_solicited_node(&sn));
        assert!(!is_solicited_node(&a("ff02::1")));
        assert_eq!(
            validate_ip_header(255, &Ipv6Addr::UNSPECIFIED, &sn, &dad),
            Ok(())
        );
        // From :: it must go to a solicited-node address and carry no SLLA.
        let to_all = a("ff02::1");
        assert_eq!(
            validate_ip_header(255, &Ipv6Addr::UNSPECIFIED, &to_all, &dad),
            Err(Error::Malformed)
        );
        let with_slla = NdiscRepr::NeighborSolicit {
            target: a("fe80::2"),
            lladdr: Some(VM_MAC),
        };
        assert_eq!(
            validate_ip_header(255, &Ipv6Addr::UNSPECIFIED, &sn, &with_slla),
            Err(Error::Malformed)
        );
        let rs = NdiscRepr::RouterSolicit {
            lladdr: Some(VM_MAC),
        };
        let routers = a("ff02::2");
        assert_eq!(
            validate_ip_header(255, &Ipv6Addr::UNSPECIFIED, &routers, &rs),
            Err(Error::Malformed)
        );
        assert_eq!(validate_ip_header(255, &vm_ll(), &routers, &rs), Ok(()));
    }

    #[test]
    fn neighbor_advert() {
        let (src, dst) = (a("fe80::2"), vm_ll());
        let p = Icmpv6Packet::new_checked(&NA[..]).unwrap();
        assert!(p.verify_checksum(&src, &dst));
        let r = NdiscRepr::parse(&p).unwrap();
        let flags = NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE;
        let gw2 = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
        assert_eq!(
            r,
            NdiscRepr::NeighborAdvert {
                flags,
                target: a("fe80::2"),
                lladdr: Some(gw2)
            }
        );
        assert!(!flags.contains(NeighborFlags::ROUTER));
        assert_eq!(format!("{flags:?}"), "NeighborFlags(SOLICITED|OVERRIDE)");
        assert_eq!(validate_ip_header(255, &src, &dst, &r), Ok(()));
        // A solicited advertisement to a multicast address is invalid.
        assert_eq!(
            validate_ip_header(255, &src, &a("ff02::1"), &r),
            Err(Error::Malformed)
        );
        let mut unsolicited = flags;
        unsolicited.remove(NeighborFlags::SOLICITED);
        let r2 = NdiscRepr::NeighborAdvert {
            flags: unsolicited,
            target: a("fe80::2"),
            lladdr: None,
        };
        assert_eq!(validate_ip_header(255, &src, &a("ff02::1"), &r2), Ok(()));
        assert_emits(&r, &src, &dst, &NA);
        // Reserved flag bits are dropped when parsing.
        let mut buf = NA;
        buf[4] |= 0x1f;
        let Ok(NdiscRepr::NeighborAdvert { flags: f, .. }) = parse(&buf) else {
            panic!()
        };
        assert_eq!(f.bits(), 0x60);
    }

    #[test]
    fn router_solicit() {
        let (src, dst) = (vm_ll(), a("ff02::2"));
        assert!(
            Icmpv6Packet::new_checked(&RS[..])
                .unwrap()
                .verify_checksum(&src, &dst)
        );
        let r = parse(&RS).unwrap();
        assert_eq!(
            r,
            NdiscRepr::RouterSolicit {
                lladdr: Some(VM_MAC)
            }
        );
        assert_emits(&r, &src, &dst, &RS);
        // Without options.
        let bare = parse(&RS[..8]).unwrap();
        assert_eq!(bare, NdiscRepr::RouterSolicit { lladdr: None });
        assert_eq!(bare.buffer_len(), 8);
    }

    #[test]
    fn router_advert_parse() {
        let (src, dst) = (a("fe80::1"), a("ff02::1"));
        let p = Icmpv6Packet::new_checked(&RA[..]).unwrap();
        assert!(p.verify_checksum(&src, &dst));
        let r = NdiscRepr::parse(&p).unwrap();
        let NdiscRepr::RouterAdvert {
            hop_limit,
            flags,
            router_lifetime,
            reachable_time,
            retrans_time,
            lladdr,
            mtu,
            options: RaOptions::Wire(options),
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(
            (hop_limit, flags, router_lifetime),
            (64, RouterFlags::OTHER, 1800)
        );
        assert_eq!((reachable_time, retrans_time), (30000, 1000));
        assert_eq!((lladdr, mtu), (Some(GW_MAC), Some(1450)));
        assert_eq!(options, &RA[16..]);
        assert_eq!(validate_ip_header(255, &src, &dst, &r), Ok(()));
        assert_eq!(
            validate_ip_header(255, &a("2001:db8::1"), &dst, &r),
            Err(Error::Malformed)
        );

        let mut it = NdiscOptions::new(options);
        assert_eq!(
            it.next(),
            Some(Ok(NdiscOption::SourceLinkLayerAddr(GW_MAC)))
        );
        assert_eq!(it.next(), Some(Ok(NdiscOption::Mtu(1450))));
        assert_eq!(
            it.next(),
            Some(Ok(NdiscOption::PrefixInformation(prefix())))
        );
        let Some(Ok(NdiscOption::Rdnss { lifetime, servers })) = it.next() else {
            panic!()
        };
        assert_eq!(lifetime, 600);
        let mut addrs = rdnss_servers(servers);
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs.next(), Some(a("2001:db8::53")));
        assert_eq!(addrs.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn router_advert_emit() {
        let (src, dst) = (a("fe80::1"), a("ff02::1"));
        let prefixes = [prefix()];
        let dns = [a("2001:db8::53")];
        let r = NdiscRepr::RouterAdvert {
            hop_limit: 64,
            flags: RouterFlags::OTHER,
            router_lifetime: 1800,
            reachable_time: 30000,
            retrans_time: 1000,
            lladdr: Some(GW_MAC),
            mtu: Some(1450),
            options: RaOptions::Emit {
                prefixes: &prefixes,
                rdnss: Some((600, &dns)),
            },
        };
        assert_emits(&r, &src, &dst, &RA);
        // Re-emitting a parsed advertisement reproduces it.
        assert_emits(&parse(&RA).unwrap(), &src, &dst, &RA);
        // Changing the parsed lladdr/MTU changes them, without duplicating the options.
        let Ok(NdiscRepr::RouterAdvert { options, .. }) = parse(&RA) else {
            panic!()
        };
        let changed = NdiscRepr::RouterAdvert {
            hop_limit: 64,
            flags: RouterFlags::OTHER,
            router_lifetime: 1800,
            reachable_time: 30000,
            retrans_time: 1000,
            lladdr: None,
            mtu: None,
            options,
        };
        assert_eq!(changed.buffer_len(), 88 - 16);
        let mut buf = [0u8; 72];
        changed.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[16..], RA[32..]);
        assert!(
            Icmpv6Packet::new_checked(&buf[..])
                .unwrap()
                .verify_checksum(&src, &dst)
        );
        // An empty RDNSS server list writes no option.
        let bare = NdiscRepr::RouterAdvert {
            hop_limit: 0,
            flags: RouterFlags::MANAGED | RouterFlags::OTHER,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_time: 0,
            lladdr: None,
            mtu: None,
            options: RaOptions::Emit {
                prefixes: &[],
                rdnss: Some((600, &[])),
            },
        };
        assert_eq!(bare.buffer_len(), 16);
        let mut buf = [0u8; 16];
        bare.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[5], 0xc0);
        let Ok(NdiscRepr::RouterAdvert { flags, options, .. }) = parse(&buf) else {
            panic!()
        };
        assert_eq!(flags, RouterFlags::MANAGED | RouterFlags::OTHER);
        assert_eq!(options, RaOptions::Wire(&[]));
    }

    #[test]
    fn options_round_trip() {
        let servers = [0x11u8; 32];
        let redirected = [0x60u8; 16];
        for o in [
            NdiscOption::SourceLinkLayerAddr(VM_MAC),
            NdiscOption::TargetLinkLayerAddr(GW_MAC),
            NdiscOption::PrefixInformation(prefix()),
            NdiscOption::RedirectedHeader(&redirected),
            NdiscOption::Mtu(9000),
            NdiscOption::Rdnss {
                lifetime: u32::MAX,
                servers: &servers,
            },
            NdiscOption::Unknown {
                kind: 31,
                data: &[1, 2, 3, 4, 5, 6],
            },
        ] {
            let mut buf = [0xffu8; 48];
            let n = o.emit(&mut buf);
            assert_eq!(n, o.buffer_len());
            assert_eq!(n % 8, 0);
            let mut it = NdiscOptions::new(&buf[..n]);
            assert_eq!(it.next(), Some(Ok(o)));
            assert_eq!(it.next(), None);
        }
        // An unknown option's data is padded out to 8 bytes, and comes back padded.
        let mut buf = [0xffu8; 8];
        assert_eq!(
            NdiscOption::Unknown {
                kind: 200,
                data: &[7]
            }
            .emit(&mut buf),
            8
        );
        assert_eq!(buf, [200, 1, 7, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn option_errors() {
        let collect = |b: &[u8]| {
            let mut out = [None; 4];
            for (i, o) in NdiscOptions::new(b).take(4).enumerate() {
                out[i] = Some(o.map(|_| ()));
            }
            out
        };
        // Zero length: Malformed, then stop.
        assert_eq!(
            collect(&[1, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 0, 5, 0]),
            [Some(Err(Error::Malformed)), None, None, None]
        );
        // Past the end, or the length byte missing: Truncated, then stop.
        assert_eq!(
            collect(&[5, 2, 0, 0, 0, 0, 5, 0])[..2],
            [Some(Err(Error::Truncated)), None]
        );
        assert_eq!(collect(&[5])[..2], [Some(Err(Error::Truncated)), None]);
        // Well framed but invalid bodies: Malformed, and the walk goes on.
        let mut bad = [0u8; 56];
        bad[..16].copy_from_slice(&[1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // SLLA, 16 B
        bad[16..48].copy_from_slice(&{
            let mut p = [0u8; 32];
            NdiscOption::PrefixInformation(prefix()).emit(&mut p);
            p[2] = 129; // prefix length over 128
            p
        });
        bad[48..].copy_from_slice(&[25, 1, 0, 0, 0, 0, 0, 0]); // RDNSS without addresses
        assert_eq!(
            collect(&bad)[..4],
            [
                Some(Err(Error::Malformed)),
                Some(Err(Error::Malformed)),
                Some(Err(Error::Malformed)),
                None
            ]
        );
        // RDNSS with an even length (half an address).
        let mut rd = [0u8; 16];
        rd[..2].copy_from_slice(&[25, 2]);
        assert_eq!(collect(&rd)[0], Some(Err(Error::Malformed)));
        // An MTU option of 16 bytes.
        let mut mtu = [0u8; 16];
        mtu[..2].copy_from_slice(&[5, 2]);
        assert_eq!(collect(&mtu)[0], Some(Err(Error::Malformed)));
    }

    #[test]
    fn validation_failures() {
        // Code not 0.
        let mut buf = NS;
        buf[1] = 1;
        assert_eq!(parse(&buf), Err(Error::Malformed));
        // Shorter than the fixed part.
        assert_eq!(parse(&NS[..23]), Err(Error::Truncated));
        assert_eq!(parse(&RA[..15]), Err(Error::Truncated));
        // Zero-length option; option past the end.
        let mut buf = NS;
        buf[25] = 0;
        assert_eq!(parse(&buf), Err(Error::Malformed));
        assert_eq!(parse(&NS[..30]), Err(Error::Truncated));
        // Multicast target.
        let mut buf = NA;
        buf[8] = 0xff;
        assert_eq!(parse(&buf), Err(Error::Malformed));
        // A bad link-layer option where one is read; a bad option elsewhere is ignored.
        let mut buf = RS;
        buf[9] = 2;
        assert_eq!(parse(&buf), Err(Error::Truncated));
        let mut ra = RA;
        ra[34] = 200; // prefix length 200
        assert!(parse(&ra).is_ok());
        // Not an ND message, or one not modelled.
        let echo = [128u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&echo), Err(Error::Malformed));
        let redirect = [137u8; 40];
        let mut redirect = redirect;
        redirect[1] = 0;
        redirect[8] = 0xfe;
        redirect[24] = 0x20;
        let p = Icmpv6Packet::new_checked(&redirect[..]).unwrap();
        assert_eq!(validate(&p), Ok(()));
        assert_eq!(NdiscRepr::parse(&p), Err(Error::Malformed));
        redirect[24] = 0xff;
        let p = Icmpv6Packet::new_checked(&redirect[..]).unwrap();
        assert_eq!(validate(&p), Err(Error::Malformed));
        assert!(hop_limit_valid(255) && !hop_limit_valid(64));
    }

    #[test]
    fn every_prefix_is_safe() {
        for sample in [&NS[..], &NA[..], &RS[..], &RA[..]] {
            for len in 0..=sample.len() {
                let b = &sample[..len];
                if let Ok(p) = Icmpv6Packet::new_checked(b) {
                    let _ = validate(&p);
                    if let Ok(r) = NdiscRepr::parse(&p) {
                        let _ = r.buffer_len();
                        let _ = validate_ip_header(255, &vm_ll(), &vm_ll(), &r);
                        if let NdiscRepr::RouterAdvert {
                            options: RaOptions::Wire(o),
                            ..
                        } = r
                        {
                            for opt in NdiscOptions::new(o).flatten() {
                                if let NdiscOption::Rdnss { servers, .. } = opt {
                                    assert!(rdnss_servers(servers).count() > 0);
                                }
                            }
                        }
                    }
                }
                // The option walk on every prefix of the bytes after the fixed part.
                let opts = b.get(8..).unwrap_or(&[]);
                assert!(NdiscOptions::new(opts).count() <= opts.len());
            }
        }
    }
}
