//! IPv4 NAT for tenant routers, with Neutron's semantics: source NAT of tenant subnets to the
//! router's external gateway address, floating IPs (1:1), and port forwardings from a floating
//! IP's port to an internal address and port. IPv6 is never translated.
//!
//! This module holds the state and rewrites the packets; the router decides where in its
//! pipeline to call it (after the FIB lookup picks the external interface on the way out,
//! before it on the way in).
//!
//! # Model
//!
//! ```text
//!  inside (tenant subnet)                  NAT                      outside (external network)
//!  10.0.0.5:5000 ──────► outbound(zone, ext, flow) ──► src 203.0.113.1:5000 ──► 198.51.100.7:53
//!                            │ mapping (EIM)     (zone, proto, 10.0.0.5, 5000, ext) → ext port
//!                            │ session (APDF)    one per remote endpoint, holds a mapping ref
//!  10.0.0.5:5000 ◄────── inbound(zone, flow) ◄───── dst 203.0.113.1:5000 ◄── 198.51.100.7:53
//! ```
//!
//! - A **mapping** binds an internal endpoint (protocol, address, port or ICMP identifier) to an
//!   external one, for one external address. It lives while at least one session uses it (a
//!   reference count), and it has no timer of its own.
//! - A **session** is a mapping plus one remote endpoint. It is what filtering checks and what
//!   times out. It is indexed twice: by its inside key `(zone, proto, internal ip, internal port,
//!   remote ip, remote port)` for outbound packets and by its outside key `(zone, proto, external
//!   ip, external port, remote ip, remote port)` for inbound packets and ICMP errors.
//! - A **port pool** per `(external address, protocol)` is a bitmap of the 65536 ports; ports
//!   outside the configured range are marked taken when the pool is made. Pools are shared by
//!   all zones, so two mappings never share an external `(address, port, protocol)` even if
//!   two routers were (wrongly) given the same external address.
//! - A **zone** ([`NatZone`]) is one tenant router. It is part of every key, so no state is
//!   visible across tenants, and it carries the per-router session limit.
//!
//! Static NAT (floating IPs and port forwardings) is stateless: [`StaticNat`] is a pair of
//! lookup tables built from the configuration. The router tries, in this order: **port
//! forwarding, then floating IP, then SNAT session** (inbound: PF on `(proto, dst, dport)`,
//! FIP on `dst`, then [`Nat::inbound`]; outbound: PF on `(proto, src, sport)`, FIP on `src`,
//! then [`Nat::outbound`]). [`StaticNat::new`] refuses configurations where the order would
//! matter between PF and FIP.
//!
//! # Packet rewriting
//!
//! [`rewrite_src`] and [`rewrite_dst`] change an address and a port (the identifier for an ICMP
//! echo) and update the IPv4 header checksum and the TCP, UDP or ICMP checksum incrementally
//! (RFC 1624). A UDP checksum of 0 (none) stays 0, and a computed 0 is sent as `0xffff`. A
//! first fragment's transport checksum covers the whole datagram, so the incremental update is
//! right for it too; a later fragment ([`Transport::Fragment`]) only has its IP header changed.
//! [`rewrite_icmp_error_in`] and [`rewrite_icmp_error_out`] translate an ICMP error and the
//! packet it quotes (RFC 5508 §4.2): the outer destination (inbound) or source (outbound), the
//! quoted packet's source (inbound) or destination (outbound) with its header checksum and, if
//! the quote holds it, its transport checksum; then the ICMP checksum, which covers the quote.
//!
//! # Behaviour (RFC 4787 for UDP, RFC 5382 for TCP, RFC 5508 for ICMP)
//!
//! | Requirement | Here |
//! |---|---|
//! | 4787 REQ-1, 5382 REQ-1, 5508 REQ-1a: endpoint-independent mapping | one mapping per internal endpoint and external address, for every destination |
//! | 4787 REQ-2: paired address pooling | the caller picks one external address per router |
//! | 4787 REQ-3, 5382 REQ-7: no port overloading | a taken port is never handed out again; when the pool is empty the packet is refused ([`NatError::NoFreePort`]) |
//! | 4787 REQ-3a: keep the port range (0-1023 / 1024-65535) | only within [`NatLimits::port_range`] (1024-65535 by default: low ports are mapped high) |
//! | Port preservation (RFC 4787 §4.2.1) | the internal port is kept when it is free on that address; otherwise a pseudo-random start and a scan of the bitmap |
//! | 4787 REQ-4: port parity | not done |
//! | 4787 REQ-5: UDP timer ≥ 2 min, 5 min recommended | [`UDP_TIMEOUT_SECS`] = 300 |
//! | 4787 REQ-6: outbound refresh | yes; inbound packets refresh too (REQ-6a allows it); ICMP errors refresh nothing |
//! | 4787 REQ-8, 5382 REQ-3: filtering | address-and-port-dependent (the strictest kind the RFCs allow) |
//! | 4787 REQ-9, 5382 REQ-8, 5508 REQ-7: hairpinning | the router sends a packet to its own external address through [`Nat::outbound`] then [`Nat::inbound`]; the receiver sees the sender's external address and port (REQ-9a) |
//! | 4787 REQ-10, 5382 REQ-6: no ALGs | none |
//! | 4787 REQ-11: deterministic | translation and filtering depend only on state, never on load |
//! | 4787 REQ-12, 5382 REQ-10, 5508 REQ-6: ICMP does not end or refresh sessions | [`Nat::inbound_error`] and [`Nat::outbound_error`] only read |
//! | 5382 REQ-2: all TCP sequences, simultaneous open | any segment opens a session outbound; inbound SYNs pass once the remote endpoint is known |
//! | 5382 REQ-4: unsolicited SYN | refused ([`Nat::inbound`] gives `None`; the router drops it silently) |
//! | 5382 REQ-5: timeouts | established 2 h 4 min ([`TCP_ESTABLISHED_TIMEOUT_SECS`]), transitory 4 min ([`TCP_TRANSITORY_TIMEOUT_SECS`]): before a SYN was seen each way, after FINs both ways or a RST (RFC 7857 §2.2) |
//! | 5508 REQ-1, REQ-2: echo through NAT, timer ≥ 60 s | identifier as the port, [`ICMP_TIMEOUT_SECS`] = 60 |
//! | 5508 REQ-3: drop errors with bad checksums | the caller's: rewriting checks no checksum, and an incremental update keeps a bad one bad; the quoted transport checksum is not checked (REQ-3c), IP options in the quote are skipped (REQ-3b) |
//! | 5508 REQ-4, REQ-5: errors | the quoted packet restored, type and code kept, the outer address made the quoted one's (the caller passes it: REQ-4c, REQ-5c) |
//! | 5508 REQ-8: "administratively prohibited" when no session can be made | the caller's choice; [`NatError`] says why |
//! | 4787 REQ-14: fragments out of order | not done: see below |
//!
//! TCP state is five bits: SYN seen each way, FIN seen each way, RST. A session opened by a
//! segment without SYN (a connection older than the NAT's state) counts as established once
//! a segment comes back; until then it is transitory, so a scan of ACKs cannot fill the table
//! with two-hour sessions. An outbound SYN on a closed session (FINs or RST) reopens it.
//!
//! # Not done
//!
//! - No ALGs (FTP, SIP...).
//! - Fragments: only a first fragment carries ports, so only it can find or make a session.
//!   Later fragments ([`Transport::Fragment`]) cannot be matched without per-datagram state:
//!   [`Nat::outbound`] refuses them ([`NatError::Unsupported`]) and [`Nat::inbound`] gives
//!   `None`. Floating IPs translate them (address only). Reassembly, or remembering (src, dst,
//!   IP id) → translation from the first fragment, is the router's to add if needed.
//! - Protocols other than TCP, UDP and ICMP echo (GRE, ESP, SCTP...) are not source-NATed.
//! - Port parity, port ranges in port forwardings, several external addresses per router with
//!   pooling.
//!
//! # Costs
//!
//! `inbound` and `outbound` for an existing session hash once and probe one open-addressing
//! index; they do not allocate. Everything is preallocated for [`NatLimits::max_sessions`]:
//! 32 bytes per session slot, 28 per mapping slot and three indexes of 8-byte slots at most
//! half full, so 108 bytes per session when every session has its own mapping (see
//! [`BYTES_PER_SESSION`]). The memory is reserved up front but only touched as it is used. The
//! only allocation after [`Nat::new`] is a port pool (8 KiB) for an external address and
//! protocol that has none, and the per-zone counter of a new zone. Expiry is an incremental
//! sweep of the session slots ([`Nat::expire`]); lookups also treat an expired session as gone.

use std::fmt;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::addr_filter::AddrFilter;
use crate::counters::DropReason;
use crate::flow::{Flow, PROTO_ICMP, PROTO_TCP, PROTO_UDP, Transport, Tuple, tcp_flags};
use crate::hashindex::{Index, fold_mul, ix, lo32, splitmix};
use crate::time::Timestamp;
use crate::wire::Error;
use crate::wire::checksum;

// ---------------------------------------------------------------------------------------------
// Packet rewriting
// ---------------------------------------------------------------------------------------------

/// A ones'-complement sum of changes to 16-bit words (`!old + new` each), to apply to a
/// checksum that covers them (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
///
/// Kept unfolded in 32 bits and folded once, when applied: end-around-carry addition is
/// associative, so folding at the end gives what folding after every word gives. Each word adds
/// less than 2^17 and a packet's rewrite adds at most a few dozen words (nine for the most
/// common), so the sum stays far below 2^32.
#[derive(Debug, Clone, Copy, Default)]
struct Delta(u32);

impl Delta {
    #[inline(always)]
    fn word(&mut self, old: u16, new: u16) {
        self.0 += u32::from(!old) + u32::from(new);
    }

    #[inline(always)]
    fn add(&mut self, other: Delta) {
        self.0 += other.0;
    }

    #[inline(always)]
    fn apply(self, csum: u16) -> u16 {
        !checksum::fold(u32::from(!csum) + self.0)
    }
}

fn rd16(b: &[u8], at: usize) -> Result<u16, Error> {
    b.get(at..at + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]))
        .ok_or(Error::Truncated)
}

/// Writes `v` at `at`, returning the old value.
fn wr16(b: &mut [u8], at: usize, v: u16) -> Result<u16, Error> {
    let x = b.get_mut(at..at + 2).ok_or(Error::Truncated)?;
    let old = u16::from_be_bytes([x[0], x[1]]);
    x.copy_from_slice(&v.to_be_bytes());
    Ok(old)
}

/// The transport header kinds rewriting knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
    /// An ICMP echo request or reply: the identifier is the port; no pseudo-header.
    Echo,
    /// No port to change, no checksum over the addresses.
    Bare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Src => Side::Dst,
            Side::Dst => Side::Src,
        }
    }
}

fn kind_of(t: &Transport) -> L4 {
    match t {
        Transport::Tcp { .. } => L4::Tcp,
        Transport::Udp => L4::Udp,
        Transport::Echo { .. } => L4::Echo,
        _ => L4::Bare,
    }
}

/// The IPv4 packet at the start of `l3`, cut at its total length (no Ethernet padding).
fn ipv4_packet(l3: &mut [u8]) -> Result<&mut [u8], Error> {
    let total = usize::from(rd16(l3, 2)?);
    if l3.first().map(|b| b >> 4) != Some(4) || total < 20 {
        return Err(Error::Malformed);
    }
    l3.get_mut(..total).ok_or(Error::Truncated)
}

/// Sets the `side` address of the IPv4 packet `p` to `ip` and its port (echo identifier) to
/// `port`, updating the header checksum and the transport checksum. `l4` is the transport
/// header's offset. Every 16-bit word changed is added to `d`, for a checksum that covers the
/// whole packet (an ICMP error's over its quote).
///
/// In a quote (`quote`), the packet may end early: a transport checksum beyond its end is
/// left alone. Lengths are checked before anything is written.
///
/// Inlined: each caller's constant side and `quote` fold away (22 instructions a translated
/// packet).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn translate(
    p: &mut [u8],
    l4: usize,
    kind: L4,
    side: Side,
    ip: Ipv4Addr,
    port: u16,
    quote: bool,
    d: &mut Delta,
) -> Result<(), Error> {
    if p.len() < 20 {
        return Err(Error::Truncated);
    }
    if p[0] >> 4 != 4 || l4 < 20 {
        return Err(Error::Malformed);
    }
    let (port_at, csum_at) = match (kind, side) {
        (L4::Tcp, Side::Src) => (Some(l4), Some(l4 + 16)),
        (L4::Tcp, Side::Dst) => (Some(l4 + 2), Some(l4 + 16)),
        (L4::Udp, Side::Src) => (Some(l4), Some(l4 + 6)),
        (L4::Udp, Side::Dst) => (Some(l4 + 2), Some(l4 + 6)),
        (L4::Echo, _) => (Some(l4 + 4), Some(l4 + 2)),
        (L4::Bare, _) => (None, None),
    };
    let fits = |at: usize| p.len() >= at + 2;
    if port_at.is_some_and(|at| !fits(at)) {
        return Err(Error::Truncated);
    }
    let csum_at = match csum_at {
        Some(at) if fits(at) => Some(at),
        Some(_) if quote => None,
        Some(_) => return Err(Error::Truncated),
        None => None,
    };

    // The address, and the header checksum over it.
    let at = if side == Side::Src { 12 } else { 16 };
    let o = ip.octets();
    let mut addr = Delta::default();
    for (i, w) in [[o[0], o[1]], [o[2], o[3]]].into_iter().enumerate() {
        let w = u16::from_be_bytes(w);
        let old = wr16(p, at + 2 * i, w)?;
        addr.word(old, w);
    }
    let c = rd16(p, 10)?;
    let n = addr.apply(c);
    wr16(p, 10, n)?;
    d.add(addr);
    d.word(c, n);

    // The port, and the transport checksum (over the pseudo-header for TCP and UDP).
    let mut l4d = if matches!(kind, L4::Tcp | L4::Udp) {
        addr
    } else {
        Delta::default()
    };
    if let Some(at) = port_at {
        let old = wr16(p, at, port)?;
        l4d.word(old, port);
        d.word(old, port);
    }
    if let Some(at) = csum_at {
        let c = rd16(p, at)?;
        // A zero UDP checksum means "none" and stays so (RFC 768).
        if !(kind == L4::Udp && c == 0) {
            let mut n = l4d.apply(c);
            if kind == L4::Udp && n == 0 {
                n = 0xffff;
            }
            wr16(p, at, n)?;
            d.word(c, n);
        }
    }
    Ok(())
}

/// Sets the source address of the IPv4 packet at `l3` (parsed as `flow`) to `ip`, and its
/// TCP/UDP source port or ICMP echo identifier to `port`, with incremental checksum updates.
///
/// A later fragment, an ICMP error (see [`rewrite_icmp_error_out`]) or a protocol without
/// ports only has its address changed (`port` is ignored). Fails, writing nothing, if `l3` is
/// not IPv4 or is shorter than `flow` says.
pub fn rewrite_src(l3: &mut [u8], flow: &Flow, ip: Ipv4Addr, port: u16) -> Result<(), Error> {
    let p = ipv4_packet(l3)?;
    let d = &mut Delta::default();
    // TCP and UDP, SNAT's common case, each with a copy of `translate` for its own kind.
    match kind_of(&flow.transport) {
        L4::Tcp => translate(p, flow.l4, L4::Tcp, Side::Src, ip, port, false, d),
        L4::Udp => translate(p, flow.l4, L4::Udp, Side::Src, ip, port, false, d),
        kind => translate(p, flow.l4, kind, Side::Src, ip, port, false, d),
    }
}

/// Sets the destination address and port (echo identifier) of the IPv4 packet at `l3`: the
/// mirror of [`rewrite_src`].
pub fn rewrite_dst(l3: &mut [u8], flow: &Flow, ip: Ipv4Addr, port: u16) -> Result<(), Error> {
    let p = ipv4_packet(l3)?;
    let d = &mut Delta::default();
    match kind_of(&flow.transport) {
        L4::Tcp => translate(p, flow.l4, L4::Tcp, Side::Dst, ip, port, false, d),
        L4::Udp => translate(p, flow.l4, L4::Udp, Side::Dst, ip, port, false, d),
        kind => translate(p, flow.l4, kind, Side::Dst, ip, port, false, d),
    }
}

/// Translates an ICMP error arriving from outside about a packet the NAT translated on its way
/// out (RFC 5508 REQ-4): the outer destination becomes `outer_dst` (the internal host:
/// normally `inner_src`), the quoted packet's source becomes `inner_src:inner_sport` (its
/// identifier for a quoted echo), with the quoted header's checksum, the quoted transport
/// checksum if the quote holds it, and the ICMP checksum updated.
pub fn rewrite_icmp_error_in(
    l3: &mut [u8],
    flow: &Flow,
    outer_dst: Ipv4Addr,
    inner_src: Ipv4Addr,
    inner_sport: u16,
) -> Result<(), Error> {
    icmp_error(l3, flow, Side::Dst, outer_dst, inner_src, inner_sport)
}

/// Translates an ICMP error leaving for outside, sent by an internal host about a packet that
/// reached it through the NAT (RFC 5508 REQ-5): the outer source becomes `outer_src` (the
/// host's floating IP, or the router's external address), the quoted packet's destination
/// becomes `inner_dst:inner_dport`.
pub fn rewrite_icmp_error_out(
    l3: &mut [u8],
    flow: &Flow,
    outer_src: Ipv4Addr,
    inner_dst: Ipv4Addr,
    inner_dport: u16,
) -> Result<(), Error> {
    icmp_error(l3, flow, Side::Src, outer_src, inner_dst, inner_dport)
}

fn icmp_error(
    l3: &mut [u8],
    flow: &Flow,
    side: Side,
    outer_ip: Ipv4Addr,
    inner_ip: Ipv4Addr,
    inner_port: u16,
) -> Result<(), Error> {
    let Transport::IcmpError {
        inner,
        inner_l3,
        inner_l4,
        ..
    } = flow.transport
    else {
        return Err(Error::Malformed);
    };
    if flow.l4 < 20 || inner_l3 < flow.l4 + 8 || inner_l4 < inner_l3 + 20 {
        return Err(Error::Malformed);
    }
    let p = ipv4_packet(l3)?;
    let icmp_csum = flow.l4 + 2;
    let kind = match inner.proto {
        PROTO_TCP => L4::Tcp,
        PROTO_UDP => L4::Udp,
        // The parser follows only echo requests and replies inside an error.
        PROTO_ICMP => L4::Echo,
        _ => L4::Bare,
    };
    let mut d = Delta::default();
    {
        let q = p.get_mut(inner_l3..).ok_or(Error::Truncated)?;
        // The quote ends where the quoted packet ends, or earlier (RFC 4884 extensions and
        // padding may follow it).
        let end = q.len().min(usize::from(rd16(q, 2)?));
        let q = q.get_mut(..end).ok_or(Error::Truncated)?;
        let side = side.other();
        translate(
            q,
            inner_l4 - inner_l3,
            kind,
            side,
            inner_ip,
            inner_port,
            true,
            &mut d,
        )?;
    }
    // Cannot fail now: the outer header is shorter than the quote that starts after it.
    translate(
        p,
        flow.l4,
        L4::Bare,
        side,
        outer_ip,
        0,
        false,
        &mut Delta::default(),
    )?;
    let c = rd16(p, icmp_csum)?;
    wr16(p, icmp_csum, d.apply(c))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Dynamic NAT state
// ---------------------------------------------------------------------------------------------

/// UDP session idle timeout (RFC 4787 REQ-5: at least 2 minutes, 5 recommended).
pub const UDP_TIMEOUT_SECS: u32 = 300;
/// Established TCP session idle timeout (RFC 5382 REQ-5: at least 2 hours 4 minutes).
pub const TCP_ESTABLISHED_TIMEOUT_SECS: u32 = 2 * 3600 + 4 * 60;
/// Transitory TCP session idle timeout: before SYNs both ways, after FINs both ways or a RST
/// (RFC 5382 REQ-5: at least 4 minutes; RFC 7857 §2.2 for RST).
pub const TCP_TRANSITORY_TIMEOUT_SECS: u32 = 4 * 60;
/// ICMP query session timeout (RFC 5508 REQ-2: at least 60 seconds).
pub const ICMP_TIMEOUT_SECS: u32 = 60;

/// Heap bytes per session at [`NatLimits::max_sessions`], when every session has its own
/// mapping: the session and mapping slots, and two 8-byte slots (indexes are at most half
/// full) in each of the three indexes.
pub const BYTES_PER_SESSION: usize = size_of::<Session>() + size_of::<Mapping>() + 3 * 2 * 8;

/// The largest [`NatLimits::max_sessions`] honoured.
pub const MAX_SESSIONS: u32 = 1 << 28;

/// One tenant router's NAT context. Stable across configuration swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatZone(pub u32);

/// Sizes of the NAT state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatLimits {
    /// Sessions on this node (all zones); the state is preallocated for this many. At most
    /// [`MAX_SESSIONS`].
    pub max_sessions: u32,
    /// Sessions per zone (router).
    pub max_per_zone: u32,
    /// External ports (and ICMP identifiers) handed out, inclusive. Port 0 is never used.
    pub port_range: (u16, u16),
}

impl Default for NatLimits {
    fn default() -> Self {
        NatLimits {
            max_sessions: 1 << 18,
            max_per_zone: 1 << 15,
            port_range: (1024, 65535),
        }
    }
}

/// An address and port (or ICMP echo identifier) to translate to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Translation {
    /// The new address.
    pub ip: Ipv4Addr,
    /// The new port, or echo identifier.
    pub port: u16,
}

/// Why [`Nat::outbound`] made no session. The router drops the packet with
/// [`NatError::drop_reason`] (and may send "communication administratively prohibited",
/// RFC 5508 REQ-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NatError {
    /// The router has as many NAT sessions as it may.
    #[error("the router's NAT session limit is reached")]
    ZoneLimit,
    /// The node has as many NAT sessions as it may.
    #[error("the node's NAT session limit is reached")]
    NodeLimit,
    /// Every port of the external address is mapped, for this protocol.
    #[error("no free port on the external address")]
    NoFreePort,
    /// Not IPv4, a later fragment, an echo reply, or a protocol without ports.
    #[error("the packet cannot be source-NATed")]
    Unsupported,
}

impl NatError {
    /// The counter for a packet dropped for this reason.
    pub fn drop_reason(self) -> DropReason {
        match self {
            NatError::ZoneLimit => DropReason::NatZoneLimit,
            NatError::NodeLimit => DropReason::NatNodeLimit,
            NatError::NoFreePort => DropReason::NatNoFreePort,
            NatError::Unsupported => DropReason::NatUnsupported,
        }
    }
}

/// No slot (end of a free list).
const NONE: u32 = u32::MAX;

// TCP state bits of a session.
const SYN_OUT: u8 = 1;
const SYN_IN: u8 = 2;
const FIN_OUT: u8 = 4;
const FIN_IN: u8 = 8;
const RST: u8 = 16;
/// Opened by a segment without SYN: established as soon as a segment comes back.
const PICKUP: u8 = 32;

fn tcp_closed(s: u8) -> bool {
    s & RST != 0 || s & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN
}

fn tcp_timeout(s: u8) -> u32 {
    if tcp_closed(s) || s & (SYN_OUT | SYN_IN) != SYN_OUT | SYN_IN {
        TCP_TRANSITORY_TIMEOUT_SECS
    } else {
        TCP_ESTABLISHED_TIMEOUT_SECS
    }
}

/// A session: 32 bytes, aligned so that it never straddles two cache lines. Addresses are
/// `u32`s (`Ipv4Addr::to_bits`).
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Session {
    zone: u32,
    int_ip: u32,
    ext_ip: u32,
    remote_ip: u32,
    /// The mapping used; the next free slot while this one is free.
    mapping: u32,
    /// When it expires, in [`Timestamp::secs`].
    expires: u32,
    int_port: u16,
    ext_port: u16,
    /// 0 for ICMP.
    remote_port: u16,
    /// 0 while the slot is free.
    proto: u8,
    /// TCP state bits.
    tcp: u8,
}

/// A mapping: 28 bytes.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    zone: u32,
    int_ip: u32,
    ext_ip: u32,
    /// Sessions using it; the next free slot while this one is free.
    refs: u32,
    /// Its port pool.
    pool: u32,
    int_port: u16,
    ext_port: u16,
    /// 0 while the slot is free.
    proto: u8,
}

/// Words of a port bitmap (65536 bits).
const POOL_WORDS: usize = 1024;

/// The ports of one external address and protocol.
#[derive(Debug)]
struct PortPool {
    /// Bit `p` set: port `p` is mapped or outside the range.
    bits: Vec<u64>,
    /// Ports mapped.
    used: u32,
    key: u64,
}

fn pool_key(ext_ip: u32, proto: u8) -> u64 {
    (u64::from(ext_ip) << 8) | u64::from(proto)
}

/// Hashes a key of the three indexes: a protocol, two addresses and two ports. The key's zone
/// is compared but not hashed, so a packet's hashes are known before the router picks the
/// zone ([`Nat::warm`]).
fn key_hash(seeds: &[u64; 2], proto: u8, a: u32, ap: u16, b: u32, bp: u16) -> u32 {
    let x = (u64::from(u32::from(proto) << 24) << 32) | u64::from(a);
    let y = (u64::from(b) << 32) | (u64::from(ap) << 16) | u64::from(bp);
    let h = fold_mul(x ^ seeds[0], y ^ seeds[1]);
    lo32(h ^ (h >> 32))
}

/// The transport fields of a flow that NAT keys on.
#[derive(Debug, Clone, Copy)]
struct Ends {
    proto: u8,
    /// The NATed side (internal endpoint outbound, external inbound).
    ip: u32,
    port: u16,
    remote_ip: u32,
    remote_port: u16,
}

/// A flow's endpoints; the NATed one is the source (`outbound`) or the destination.
fn ends(flow: &Flow, outbound: bool) -> Option<Ends> {
    match flow.transport {
        Transport::Tcp { .. } | Transport::Udp => tuple_ends(&flow.tuple, outbound),
        // Echo requests go out, replies come in; the identifier is the port.
        Transport::Echo { request } if request == outbound => tuple_ends(&flow.tuple, outbound)
            .map(|e| Ends {
                proto: PROTO_ICMP,
                remote_port: 0,
                ..e
            }),
        _ => None,
    }
}

/// The endpoints of an IPv4 flow's tuple, its ports taken as they are (what [`ends`] gives a
/// TCP or UDP flow; an echo's only after its protocol and remote port are set).
fn tuple_ends(t: &Tuple, outbound: bool) -> Option<Ends> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (t.src, t.dst) else {
        return None;
    };
    let (ip, port, remote_ip, remote_port) = if outbound {
        (src, t.sport, dst, t.dport)
    } else {
        (dst, t.dport, src, t.sport)
    };
    Some(Ends {
        proto: t.proto,
        ip: ip.to_bits(),
        port,
        remote_ip: remote_ip.to_bits(),
        remote_port,
    })
}

/// The endpoints of the packet an ICMP error quotes. `sent_out`: the quoted packet left through
/// the NAT (its source is the external endpoint); otherwise it came in (its destination is the
/// internal endpoint).
fn quoted_ends(inner: &Tuple, sent_out: bool) -> Option<Ends> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (inner.src, inner.dst) else {
        return None;
    };
    if !matches!(inner.proto, PROTO_TCP | PROTO_UDP | PROTO_ICMP) {
        return None;
    }
    let icmp = inner.proto == PROTO_ICMP;
    let (ip, port, remote_ip, remote_port) = if sent_out {
        (src, inner.sport, dst, inner.dport)
    } else {
        (dst, inner.dport, src, inner.sport)
    };
    Some(Ends {
        proto: inner.proto,
        ip: ip.to_bits(),
        port,
        remote_ip: remote_ip.to_bits(),
        remote_port: if icmp { 0 } else { remote_port },
    })
}

/// One node's (or worker's) dynamic NAT state: SNAT mappings and sessions of every zone.
pub struct Nat {
    limits: NatLimits,
    range_len: u32,
    sessions: Vec<Session>,
    free_session: u32,
    live_sessions: u32,
    mappings: Vec<Mapping>,
    free_mapping: u32,
    live_mappings: u32,
    /// (zone, proto, internal ip, internal port, remote ip, remote port) → session.
    by_inside: Index,
    /// (zone, proto, external ip, external port, remote ip, remote port) → session.
    by_outside: Index,
    /// (zone, proto, internal ip, internal port, external ip) → mapping.
    by_endpoint: Index,
    pools: Vec<PortPool>,
    pool_index: FxHashMap<u64, u32>,
    free_pools: Vec<u32>,
    /// A new pool's bitmap: the ports outside the range set.
    pool_template: Vec<u64>,
    zones: FxHashMap<u32, u32>,
    seeds: [u64; 2],
    rng: u64,
    cursor: usize,
}

impl fmt::Debug for Nat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nat")
            .field("limits", &self.limits)
            .field("sessions", &self.live_sessions)
            .field("mappings", &self.live_mappings)
            .field("pools", &self.pool_index.len())
            .field("zones", &self.zones.len())
            .finish_non_exhaustive()
    }
}

impl Nat {
    /// Empty state for `limits`, preallocated for `limits.max_sessions`. `seed` drives the
    /// hash functions and the choice of ports when the internal one is taken.
    pub fn new(limits: NatLimits, seed: u64) -> Nat {
        let (a, b) = limits.port_range;
        let (lo, hi) = (a.min(b).max(1), a.max(b).max(1));
        let limits = NatLimits {
            max_sessions: limits.max_sessions.min(MAX_SESSIONS),
            port_range: (lo, hi),
            ..limits
        };
        let n = ix(limits.max_sessions);
        let mut template = vec![0u64; POOL_WORDS];
        for p in (0..usize::from(lo)).chain(usize::from(hi) + 1..1 << 16) {
            template[p >> 6] |= 1 << (p & 63);
        }
        let mut s = seed;
        let seeds = [splitmix(&mut s), splitmix(&mut s)];
        let (mut sessions, mut mappings) = (Vec::with_capacity(n), Vec::with_capacity(n));
        // Before any entry is written (see `weft_prefetch::huge_pages`).
        weft_prefetch::huge_pages(sessions.spare_capacity_mut());
        weft_prefetch::huge_pages(mappings.spare_capacity_mut());
        Nat {
            limits,
            range_len: u32::from(hi) - u32::from(lo) + 1,
            sessions,
            free_session: NONE,
            live_sessions: 0,
            mappings,
            free_mapping: NONE,
            live_mappings: 0,
            by_inside: Index::new(n),
            by_outside: Index::new(n),
            by_endpoint: Index::new(n),
            pools: Vec::new(),
            pool_index: FxHashMap::default(),
            free_pools: Vec::new(),
            pool_template: template,
            zones: FxHashMap::default(),
            seeds,
            rng: splitmix(&mut s) | 1,
            cursor: 0,
        }
    }

    /// The limits in force (the port range normalized).
    pub fn limits(&self) -> NatLimits {
        self.limits
    }

    /// An outbound packet from an internal endpoint (`flow`'s source) of `zone`, leaving
    /// through the external address `ext`: finds its session or makes one (and a mapping if
    /// the endpoint has none on `ext`), refreshes it, and returns the source to write
    /// ([`rewrite_src`]).
    ///
    /// TCP, UDP and ICMP echo requests only (see [`NatError::Unsupported`]).
    pub fn outbound(
        &mut self,
        zone: NatZone,
        ext: Ipv4Addr,
        flow: &Flow,
        now: Timestamp,
    ) -> Result<Translation, NatError> {
        self.outbound_secs(zone, ext, flow, now.secs())
    }

    /// [`Nat::outbound`] at `now` ([`Timestamp::secs`]), for a caller that converted the time
    /// once for a whole batch.
    pub fn outbound_secs(
        &mut self,
        zone: NatZone,
        ext: Ipv4Addr,
        flow: &Flow,
        now: u32,
    ) -> Result<Translation, NatError> {
        let e = ends(flow, true).ok_or(NatError::Unsupported)?;
        let z = zone.0;
        if let Some(i) = self.find_inside(z, &e) {
            let s = &mut self.sessions[i];
            if s.expires > now && s.ext_ip == ext.to_bits() {
                touch(s, flow, true, now);
                return Ok(Translation {
                    ip: ext,
                    port: s.ext_port,
                });
            }
            // Expired and not swept yet, or the router's external address changed.
            self.free_session(i);
        }
        self.create(z, ext.to_bits(), &e, flow, now)
    }

    /// An inbound packet to an external endpoint (`flow`'s destination) of `zone`: the internal
    /// endpoint to write as its destination ([`rewrite_dst`]), if a session of that mapping has
    /// sent to exactly `flow`'s source address and port (address-and-port-dependent
    /// filtering). Refreshes the session and follows TCP state.
    ///
    /// For hairpinning, call it with the flow as [`Nat::outbound`] translated it.
    pub fn inbound(&mut self, zone: NatZone, flow: &Flow, now: Timestamp) -> Option<Translation> {
        self.inbound_secs(zone, flow, now.secs())
    }

    /// [`Nat::inbound`] at `now` ([`Timestamp::secs`]), for a caller that converted the time
    /// once for a whole batch.
    pub fn inbound_secs(&mut self, zone: NatZone, flow: &Flow, now: u32) -> Option<Translation> {
        let e = ends(flow, false)?;
        let i = self.find_outside(zone.0, &e, now)?;
        let s = &mut self.sessions[i];
        touch(s, flow, false, now);
        Some(Translation {
            ip: Ipv4Addr::from_bits(s.int_ip),
            port: s.int_port,
        })
    }

    /// For an ICMP error coming in about a packet the NAT translated on its way out (`inner`,
    /// the quoted tuple: its source is the external endpoint): the internal endpoint to restore
    /// ([`rewrite_icmp_error_in`]). Neither refreshes nor ends the session.
    pub fn inbound_error(
        &mut self,
        zone: NatZone,
        inner: &Tuple,
        now: Timestamp,
    ) -> Option<Translation> {
        let e = quoted_ends(inner, true)?;
        let i = self.find_outside(zone.0, &e, now.secs())?;
        let s = &self.sessions[i];
        Some(Translation {
            ip: Ipv4Addr::from_bits(s.int_ip),
            port: s.int_port,
        })
    }

    /// For an ICMP error an internal host sends about a packet that reached it through a
    /// session (`inner`: its destination is the internal endpoint): the external endpoint to
    /// write back into the quote, and the address to send from ([`rewrite_icmp_error_out`]).
    /// Neither refreshes nor ends the session.
    pub fn outbound_error(
        &mut self,
        zone: NatZone,
        inner: &Tuple,
        now: Timestamp,
    ) -> Option<Translation> {
        let e = quoted_ends(inner, false)?;
        let i = self.find_inside(zone.0, &e)?;
        let s = &self.sessions[i];
        if s.expires <= now.secs() {
            return None;
        }
        Some(Translation {
            ip: Ipv4Addr::from_bits(s.ext_ip),
            port: s.ext_port,
        })
    }

    /// The hashes [`Nat::outbound`] (`flow` leaving: `out`) and [`Nat::inbound`] (`flow`
    /// arriving: `inb`) would look `flow` up with, in any zone, for [`Nat::warm`]; `None` for a
    /// direction not asked for or in which NAT would not look it up at all.
    pub fn hashes_of(&self, flow: &Flow, out: bool, inb: bool) -> [Option<u32>; 2] {
        self.hashes_by(out, inb, |leaving| ends(flow, leaving))
    }

    /// [`Nat::hashes_of`] for a TCP or UDP flow known by its tuple alone
    /// ([`flow::peek_tcp_udp`](crate::flow::peek_tcp_udp)).
    pub fn hashes_of_tcp_udp(&self, t: &Tuple, out: bool, inb: bool) -> [Option<u32>; 2] {
        self.hashes_by(out, inb, |leaving| tuple_ends(t, leaving))
    }

    /// The hashes of the directions asked for, `ends_of(leaving)` giving a direction's key.
    #[inline(always)]
    fn hashes_by(
        &self,
        out: bool,
        inb: bool,
        ends_of: impl Fn(bool) -> Option<Ends>,
    ) -> [Option<u32>; 2] {
        let hash = |asked: bool, leaving: bool| {
            asked
                .then(|| ends_of(leaving))
                .flatten()
                .map(|e| self.ends_hash(&e))
        };
        [hash(out, true), hash(inb, false)]
    }

    /// Prefetches what lookups with these [`Nat::hashes_of`] will read first (`out`: leaving,
    /// `inb`: arriving): the index slots, then the sessions they point to, back to back so
    /// that the misses overlap.
    pub fn warm(&self, out: &[u32], inb: &[u32]) {
        for &h in out {
            self.by_inside.prefetch(h);
        }
        for &h in inb {
            self.by_outside.prefetch(h);
        }
        let sessions = out
            .iter()
            .filter_map(|&h| self.by_inside.first_candidate(h))
            .chain(
                inb.iter()
                    .filter_map(|&h| self.by_outside.first_candidate(h)),
            );
        for s in sessions.filter_map(|i| self.sessions.get(i)) {
            weft_prefetch::read(s);
        }
    }

    /// Frees the sessions that expired by `now` among the next `budget` session slots (a
    /// sweep that wraps around), and the mappings and ports no session uses any more.
    /// Returns the number of sessions freed.
    pub fn expire(&mut self, now: Timestamp, budget: usize) -> usize {
        let now = now.secs();
        let n = self.sessions.len();
        let mut freed = 0;
        for _ in 0..budget.min(n) {
            if self.cursor >= n {
                self.cursor = 0;
            }
            let i = self.cursor;
            self.cursor += 1;
            let s = &self.sessions[i];
            if s.proto != 0 && s.expires <= now {
                self.free_session(i);
                freed += 1;
            }
        }
        freed
    }

    /// Frees every session (and mapping) of `zone`: its router is gone. Walks all session
    /// slots; for configuration swaps, not for the packet path. Returns the number freed.
    pub fn remove_zone(&mut self, zone: NatZone) -> usize {
        if !self.zones.contains_key(&zone.0) {
            return 0;
        }
        let mut freed = 0;
        for i in 0..self.sessions.len() {
            let s = &self.sessions[i];
            if s.proto != 0 && s.zone == zone.0 {
                self.free_session(i);
                freed += 1;
            }
        }
        freed
    }

    /// Live sessions (expired ones count until swept).
    pub fn sessions(&self) -> usize {
        ix(self.live_sessions)
    }

    /// Live mappings.
    pub fn mappings(&self) -> usize {
        ix(self.live_mappings)
    }

    /// Live sessions of `zone`.
    pub fn zone_sessions(&self, zone: NatZone) -> usize {
        self.zones.get(&zone.0).map_or(0, |&n| ix(n))
    }

    /// Bytes held on the heap (reserved: slots not yet used are not touched).
    pub fn heap_bytes(&self) -> usize {
        self.sessions.capacity() * size_of::<Session>()
            + self.mappings.capacity() * size_of::<Mapping>()
            + self.by_inside.bytes()
            + self.by_outside.bytes()
            + self.by_endpoint.bytes()
            + self.pools.capacity() * size_of::<PortPool>()
            + self
                .pools
                .iter()
                .map(|p| p.bits.capacity() * 8)
                .sum::<usize>()
            + self.pool_index.capacity() * (size_of::<(u64, u32)>() + 1)
            + self.free_pools.capacity() * 4
            + self.pool_template.capacity() * 8
            + self.zones.capacity() * (size_of::<(u32, u32)>() + 1)
    }

    /// The hash of a lookup by `e`: in the inside index (`e` from [`ends`] leaving: the
    /// internal endpoint and the remote one) or the outside index (arriving: the external
    /// endpoint and the remote one).
    fn ends_hash(&self, e: &Ends) -> u32 {
        key_hash(
            &self.seeds,
            e.proto,
            e.ip,
            e.port,
            e.remote_ip,
            e.remote_port,
        )
    }

    /// The session for an outbound key. Inlined, as [`Nat::find_outside`] is: called out of
    /// line, it read the caller's `Ends` from the stack wider than it had been written (the two
    /// ports as one 4-byte load over two 2-byte stores, the protocol 4 bytes wide over a 1-byte
    /// store): two failed store forwards on every translated packet.
    #[inline(always)]
    fn find_inside(&self, zone: u32, e: &Ends) -> Option<usize> {
        let h = self.ends_hash(e);
        let sessions = &self.sessions;
        self.by_inside.find(h, |i| {
            let s = &sessions[i];
            s.int_ip == e.ip
                && s.remote_ip == e.remote_ip
                && s.int_port == e.port
                && s.remote_port == e.remote_port
                && s.zone == zone
                && s.proto == e.proto
        })
    }

    /// The live session for an inbound key; an expired one is freed.
    #[inline(always)]
    fn find_outside(&mut self, zone: u32, e: &Ends, now: u32) -> Option<usize> {
        let h = self.ends_hash(e);
        let sessions = &self.sessions;
        let i = self.by_outside.find(h, |i| {
            let s = &sessions[i];
            s.ext_ip == e.ip
                && s.remote_ip == e.remote_ip
                && s.ext_port == e.port
                && s.remote_port == e.remote_port
                && s.zone == zone
                && s.proto == e.proto
        })?;
        if self.sessions[i].expires <= now {
            self.free_session(i);
            return None;
        }
        Some(i)
    }

    fn mapping_hash(&self, proto: u8, int_ip: u32, int_port: u16, ext_ip: u32) -> u32 {
        key_hash(&self.seeds, proto, int_ip, int_port, ext_ip, 0)
    }

    fn create(
        &mut self,
        zone: u32,
        ext_ip: u32,
        e: &Ends,
        flow: &Flow,
        now: u32,
    ) -> Result<Translation, NatError> {
        if self.live_sessions >= self.limits.max_sessions {
            return Err(NatError::NodeLimit);
        }
        if self.zones.get(&zone).copied().unwrap_or(0) >= self.limits.max_per_zone {
            return Err(NatError::ZoneLimit);
        }
        // The mapping: the endpoint's own on this address (EIM), or a new one.
        let mh = self.mapping_hash(e.proto, e.ip, e.port, ext_ip);
        let mappings = &self.mappings;
        let found = self.by_endpoint.find(mh, |i| {
            let m = &mappings[i];
            m.int_ip == e.ip
                && m.int_port == e.port
                && m.ext_ip == ext_ip
                && m.zone == zone
                && m.proto == e.proto
        });
        let m = match found {
            Some(m) => m,
            None => {
                let pool = self.pool(ext_ip, e.proto);
                let Some(port) = self.alloc_port(pool, e.port) else {
                    self.release_pool_if_empty(pool);
                    return Err(NatError::NoFreePort);
                };
                let m = Mapping {
                    zone,
                    int_ip: e.ip,
                    ext_ip,
                    refs: 0,
                    pool: u32::try_from(pool).unwrap_or(NONE),
                    int_port: e.port,
                    ext_port: port,
                    proto: e.proto,
                };
                let i = if self.free_mapping != NONE {
                    let i = ix(self.free_mapping);
                    self.free_mapping = self.mappings[i].refs;
                    self.mappings[i] = m;
                    i
                } else {
                    self.mappings.push(m);
                    self.mappings.len() - 1
                };
                self.by_endpoint.insert(mh, i);
                self.live_mappings += 1;
                i
            }
        };
        self.mappings[m].refs += 1;
        let ext_port = self.mappings[m].ext_port;

        let mut s = Session {
            zone,
            int_ip: e.ip,
            ext_ip,
            remote_ip: e.remote_ip,
            mapping: u32::try_from(m).unwrap_or(NONE),
            expires: 0,
            int_port: e.port,
            ext_port,
            remote_port: e.remote_port,
            proto: e.proto,
            tcp: 0,
        };
        if let Transport::Tcp { flags, .. } = flow.transport
            && flags & (tcp_flags::SYN | tcp_flags::RST) == 0
        {
            s.tcp = SYN_OUT | PICKUP;
        }
        touch(&mut s, flow, true, now);
        let i = if self.free_session != NONE {
            let i = ix(self.free_session);
            self.free_session = self.sessions[i].mapping;
            self.sessions[i] = s;
            i
        } else {
            self.sessions.push(s);
            self.sessions.len() - 1
        };
        let hi = self.ends_hash(e);
        self.by_inside.insert(hi, i);
        let ho = self.ends_hash(&Ends {
            ip: ext_ip,
            port: ext_port,
            ..*e
        });
        self.by_outside.insert(ho, i);
        self.live_sessions += 1;
        *self.zones.entry(zone).or_insert(0) += 1;
        Ok(Translation {
            ip: Ipv4Addr::from_bits(ext_ip),
            port: ext_port,
        })
    }

    fn free_session(&mut self, i: usize) {
        let s = self.sessions[i];
        let inside = Ends {
            proto: s.proto,
            ip: s.int_ip,
            port: s.int_port,
            remote_ip: s.remote_ip,
            remote_port: s.remote_port,
        };
        let hi = self.ends_hash(&inside);
        self.by_inside.remove(hi, i);
        let ho = self.ends_hash(&Ends {
            ip: s.ext_ip,
            port: s.ext_port,
            ..inside
        });
        self.by_outside.remove(ho, i);

        let m = ix(s.mapping);
        self.mappings[m].refs -= 1;
        if self.mappings[m].refs == 0 {
            self.free_mapping(m);
        }
        if let Some(n) = self.zones.get_mut(&s.zone) {
            *n -= 1;
            if *n == 0 {
                self.zones.remove(&s.zone);
            }
        }
        self.sessions[i].proto = 0;
        self.sessions[i].mapping = self.free_session;
        self.free_session = u32::try_from(i).unwrap_or(NONE);
        self.live_sessions -= 1;
    }

    fn free_mapping(&mut self, i: usize) {
        let m = self.mappings[i];
        let h = self.mapping_hash(m.proto, m.int_ip, m.int_port, m.ext_ip);
        self.by_endpoint.remove(h, i);
        let pool = ix(m.pool);
        let p = &mut self.pools[pool];
        let port = usize::from(m.ext_port);
        p.bits[port >> 6] &= !(1 << (port & 63));
        p.used -= 1;
        self.release_pool_if_empty(pool);
        self.mappings[i].proto = 0;
        self.mappings[i].refs = self.free_mapping;
        self.free_mapping = u32::try_from(i).unwrap_or(NONE);
        self.live_mappings -= 1;
    }

    /// The pool of `(ext_ip, proto)`, made if needed (a recycled one if any).
    fn pool(&mut self, ext_ip: u32, proto: u8) -> usize {
        let key = pool_key(ext_ip, proto);
        if let Some(&p) = self.pool_index.get(&key) {
            return ix(p);
        }
        let p = match self.free_pools.pop() {
            Some(p) => {
                let p = ix(p);
                self.pools[p].key = key;
                p
            }
            None => {
                self.pools.push(PortPool {
                    bits: self.pool_template.clone(),
                    used: 0,
                    key,
                });
                self.pools.len() - 1
            }
        };
        self.pool_index
            .insert(key, u32::try_from(p).unwrap_or(NONE));
        p
    }

    /// An empty pool's bitmap is back to the template: keep it for the next address.
    fn release_pool_if_empty(&mut self, p: usize) {
        if self.pools[p].used == 0 {
            self.pool_index.remove(&self.pools[p].key);
            self.free_pools.push(u32::try_from(p).unwrap_or(NONE));
        }
    }

    /// Takes `want` if it is free (port preservation), else the first free port at or after a
    /// pseudo-random one in the range (wrapping around).
    fn alloc_port(&mut self, pool: usize, want: u16) -> Option<u16> {
        if self.pools[pool].used >= self.range_len {
            return None;
        }
        let (lo, _) = self.limits.port_range;
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let offset = u32::try_from(self.rng % u64::from(self.range_len)).unwrap_or(0);
        let p = &mut self.pools[pool];
        let want = usize::from(want);
        let port = if p.bits[want >> 6] & (1 << (want & 63)) == 0 {
            want
        } else {
            let start = ix(u32::from(lo) + offset);
            let (sw, sb) = (start >> 6, start & 63);
            let mut found = None;
            for k in 0..=POOL_WORDS {
                let w = (sw + k) % POOL_WORDS;
                let mut free = !p.bits[w];
                if k == 0 {
                    free &= u64::MAX << sb;
                } else if k == POOL_WORDS {
                    free &= !(u64::MAX << sb);
                }
                if free != 0 {
                    found = Some(w * 64 + ix(free.trailing_zeros()));
                    break;
                }
            }
            found?
        };
        p.bits[port >> 6] |= 1 << (port & 63);
        p.used += 1;
        u16::try_from(port).ok()
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        use std::collections::{HashMap, HashSet};
        let mut refs: HashMap<usize, u32> = HashMap::new();
        let mut zones: HashMap<u32, u32> = HashMap::new();
        let mut live = 0;
        for (i, s) in self.sessions.iter().enumerate() {
            if s.proto == 0 {
                continue;
            }
            live += 1;
            *refs.entry(ix(s.mapping)).or_default() += 1;
            *zones.entry(s.zone).or_default() += 1;
            let m = &self.mappings[ix(s.mapping)];
            assert_eq!(
                (m.int_ip, m.int_port, m.ext_ip, m.ext_port),
                (s.int_ip, s.int_port, s.ext_ip, s.ext_port)
            );
            let e = Ends {
                proto: s.proto,
                ip: s.int_ip,
                port: s.int_port,
                remote_ip: s.remote_ip,
                remote_port: s.remote_port,
            };
            assert_eq!(self.find_inside(s.zone, &e), Some(i));
        }
        assert_eq!(live, self.live_sessions);
        let mut wire = HashSet::new();
        let mut used: HashMap<usize, u32> = HashMap::new();
        let mut mlive = 0;
        for (i, m) in self.mappings.iter().enumerate() {
            if m.proto == 0 {
                continue;
            }
            mlive += 1;
            assert_eq!(refs.get(&i).copied(), Some(m.refs), "mapping {i} refs");
            assert!(
                wire.insert((m.ext_ip, m.ext_port, m.proto)),
                "two mappings on one port"
            );
            let p = &self.pools[ix(m.pool)];
            assert_eq!(p.key, pool_key(m.ext_ip, m.proto));
            assert_ne!(
                p.bits[usize::from(m.ext_port) >> 6] & (1 << (m.ext_port & 63)),
                0
            );
            *used.entry(ix(m.pool)).or_default() += 1;
        }
        assert_eq!(mlive, self.live_mappings);
        assert_eq!(refs.len(), ix(mlive));
        for (&k, &p) in &self.pool_index {
            let pool = &self.pools[ix(p)];
            assert_eq!(pool.key, k);
            assert_eq!(used.get(&ix(p)).copied().unwrap_or(0), pool.used);
            assert!(pool.used > 0);
        }
        let zones_now: HashMap<u32, u32> = self.zones.iter().map(|(&k, &v)| (k, v)).collect();
        assert_eq!(zones, zones_now);
    }
}

/// Follows TCP state and sets the session's timer for a packet in one direction.
fn touch(s: &mut Session, flow: &Flow, outbound: bool, now: u32) {
    let timeout = match flow.transport {
        Transport::Tcp { flags, .. } => {
            let (syn, fin) = if outbound {
                (SYN_OUT, FIN_OUT)
            } else {
                (SYN_IN, FIN_IN)
            };
            let (f_syn, f_ack) = (flags & tcp_flags::SYN != 0, flags & tcp_flags::ACK != 0);
            if outbound && f_syn && !f_ack && tcp_closed(s.tcp) {
                // A new connection on the same 5-tuple.
                s.tcp = 0;
            }
            if flags & tcp_flags::RST != 0 {
                s.tcp |= RST;
            } else if !outbound && s.tcp & PICKUP != 0 {
                s.tcp |= SYN_IN;
            }
            if f_syn {
                s.tcp |= syn;
            }
            if flags & tcp_flags::FIN != 0 {
                s.tcp |= fin;
            }
            tcp_timeout(s.tcp)
        }
        Transport::Udp => UDP_TIMEOUT_SECS,
        _ => ICMP_TIMEOUT_SECS,
    };
    s.expires = now.saturating_add(timeout);
}

// ---------------------------------------------------------------------------------------------
// Static NAT: floating IPs and port forwardings
// ---------------------------------------------------------------------------------------------

/// A floating IP: `external` is translated 1:1 to `internal` (a port's fixed IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloatingIp {
    /// The floating (external) address.
    pub external: Ipv4Addr,
    /// The fixed (internal) address.
    pub internal: Ipv4Addr,
}

/// A port forwarding: `(proto, external, external_port)` to `(internal, internal_port)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    /// TCP or UDP.
    pub proto: u8,
    /// The floating IP the forwarding is on (one not associated with a port).
    pub external: Ipv4Addr,
    /// The external port.
    pub external_port: u16,
    /// The internal address.
    pub internal: Ipv4Addr,
    /// The internal port.
    pub internal_port: u16,
}

/// Why a static NAT configuration is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StaticNatError {
    /// An external address is given twice as a floating IP.
    #[error("floating IP {0} is given twice")]
    DuplicateFloatingIp(Ipv4Addr),
    /// An internal address has two floating IPs.
    #[error("internal address {0} has two floating IPs")]
    InternalHasTwoFloatingIps(Ipv4Addr),
    /// An address is both a floating IP (1:1) and the address of port forwardings.
    #[error("{0} is both a floating IP and a port forwarding address")]
    FloatingIpForwarded(Ipv4Addr),
    /// An internal address with a floating IP is also a port forwarding target.
    #[error("{0} has a floating IP and is also a port forwarding target")]
    ForwardTargetHasFloatingIp(Ipv4Addr),
    /// Two port forwardings on one external (protocol, address, port).
    #[error("port forwarding on {1}:{2} (protocol {0}) is given twice")]
    DuplicateForward(u8, Ipv4Addr, u16),
    /// Two port forwardings to one internal (protocol, address, port).
    #[error("two port forwardings to {1}:{2} (protocol {0})")]
    DuplicateForwardTarget(u8, Ipv4Addr, u16),
    /// A port forwarding's protocol is not TCP or UDP.
    #[error("port forwarding protocol {0} is not TCP or UDP")]
    BadProtocol(u8),
    /// A port forwarding with port 0.
    #[error("port forwarding with port 0")]
    ZeroPort,
}

/// Floating IPs and port forwardings of one router, both directions. Precedence: port
/// forwarding, then floating IP, then (not here) SNAT sessions.
#[derive(Debug, Clone, Default)]
pub struct StaticNat {
    fip_in: FxHashMap<Ipv4Addr, Ipv4Addr>,
    fip_out: FxHashMap<Ipv4Addr, Ipv4Addr>,
    pf_in: FxHashMap<(u8, Ipv4Addr, u16), (Ipv4Addr, u16)>,
    pf_out: FxHashMap<(u8, Ipv4Addr, u16), (Ipv4Addr, u16)>,
    /// The external addresses: floating IPs and forwarded addresses.
    externals: FxHashSet<Ipv4Addr>,
    /// Filters of the external addresses and of the internal ones they translate to. Every
    /// packet a router forwards is checked against the maps; these rule out most addresses
    /// before any of them is hashed into.
    outside: AddrFilter,
    inside: AddrFilter,
}

impl StaticNat {
    /// Builds the tables, refusing duplicates either way and addresses used both ways
    /// (Neutron refuses them too: a floating IP is either associated with a port or carries
    /// port forwardings, and a port with a floating IP has no port forwardings).
    pub fn new(fips: &[FloatingIp], forwards: &[PortForward]) -> Result<StaticNat, StaticNatError> {
        let mut t = StaticNat::default();
        for f in fips {
            if t.fip_in.insert(f.external, f.internal).is_some() {
                return Err(StaticNatError::DuplicateFloatingIp(f.external));
            }
            if t.fip_out.insert(f.internal, f.external).is_some() {
                return Err(StaticNatError::InternalHasTwoFloatingIps(f.internal));
            }
        }
        for f in forwards {
            if !matches!(f.proto, PROTO_TCP | PROTO_UDP) {
                return Err(StaticNatError::BadProtocol(f.proto));
            }
            if f.external_port == 0 || f.internal_port == 0 {
                return Err(StaticNatError::ZeroPort);
            }
            if t.fip_in.contains_key(&f.external) {
                return Err(StaticNatError::FloatingIpForwarded(f.external));
            }
            if t.fip_out.contains_key(&f.internal) {
                return Err(StaticNatError::ForwardTargetHasFloatingIp(f.internal));
            }
            let ext = (f.proto, f.external, f.external_port);
            let int = (f.proto, f.internal, f.internal_port);
            if t.pf_in.insert(ext, (f.internal, f.internal_port)).is_some() {
                return Err(StaticNatError::DuplicateForward(ext.0, ext.1, ext.2));
            }
            if t.pf_out
                .insert(int, (f.external, f.external_port))
                .is_some()
            {
                return Err(StaticNatError::DuplicateForwardTarget(int.0, int.1, int.2));
            }
        }
        let fip_pairs = fips.iter().map(|f| (f.external, f.internal));
        let pf_pairs = forwards.iter().map(|f| (f.external, f.internal));
        for (o, i) in fip_pairs.chain(pf_pairs) {
            t.externals.insert(o);
            t.outside.add_v4(o);
            t.inside.add_v4(i);
        }
        Ok(t)
    }

    /// Whether `ip` is an external address here (a floating IP or a forwarded address). Every
    /// IPv4 packet a NAT router forwards asks (hairpinning): the filter answers most of them
    /// without hashing (inlined where asked: only the set is looked up out of line).
    #[inline(always)]
    pub fn is_external(&self, ip: Ipv4Addr) -> bool {
        self.outside.may_contain_v4(ip) && self.in_externals(ip)
    }

    #[inline(never)]
    fn in_externals(&self, ip: Ipv4Addr) -> bool {
        self.externals.contains(&ip)
    }

    /// The external addresses, in no particular order.
    pub fn external_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.externals.iter().copied()
    }

    /// Whether there is nothing to translate.
    pub fn is_empty(&self) -> bool {
        self.fip_in.is_empty() && self.pf_in.is_empty()
    }

    /// The internal endpoint for external `(proto, ip, port)`: a port forwarding's, else the
    /// floating IP's internal address with the port unchanged. The filter is asked inline,
    /// the maps out of line.
    #[inline(always)]
    pub fn to_internal(&self, proto: u8, ip: Ipv4Addr, port: u16) -> Option<Translation> {
        if !self.outside.may_contain_v4(ip) {
            return None;
        }
        self.to_internal_maps(proto, ip, port)
    }

    #[inline(never)]
    fn to_internal_maps(&self, proto: u8, ip: Ipv4Addr, port: u16) -> Option<Translation> {
        // An empty map is skipped: `get` would still hash the key and probe (~20 instructions),
        // and most routers have floating IPs or port forwardings, not both.
        if !self.pf_in.is_empty()
            && let Some(&(ip, port)) = self.pf_in.get(&(proto, ip, port))
        {
            return Some(Translation { ip, port });
        }
        if self.fip_in.is_empty() {
            return None;
        }
        self.fip_in.get(&ip).map(|&ip| Translation { ip, port })
    }

    /// The external endpoint for internal `(proto, ip, port)`: the mirror of
    /// [`StaticNat::to_internal`].
    #[inline(always)]
    pub fn to_external(&self, proto: u8, ip: Ipv4Addr, port: u16) -> Option<Translation> {
        if !self.inside.may_contain_v4(ip) {
            return None;
        }
        self.to_external_maps(proto, ip, port)
    }

    #[inline(never)]
    fn to_external_maps(&self, proto: u8, ip: Ipv4Addr, port: u16) -> Option<Translation> {
        if !self.pf_out.is_empty()
            && let Some(&(ip, port)) = self.pf_out.get(&(proto, ip, port))
        {
            return Some(Translation { ip, port });
        }
        if self.fip_out.is_empty() {
            return None;
        }
        self.fip_out.get(&ip).map(|&ip| Translation { ip, port })
    }

    /// The destination to write into an inbound packet ([`rewrite_dst`]).
    #[inline]
    pub fn inbound(&self, flow: &Flow) -> Option<Translation> {
        let IpAddr::V4(dst) = flow.tuple.dst else {
            return None;
        };
        self.to_internal(flow.tuple.proto, dst, flow.tuple.dport)
    }

    /// The source to write into an outbound packet ([`rewrite_src`]).
    #[inline]
    pub fn outbound(&self, flow: &Flow) -> Option<Translation> {
        let IpAddr::V4(src) = flow.tuple.src else {
            return None;
        };
        self.to_external(flow.tuple.proto, src, flow.tuple.sport)
    }

    /// For an inbound ICMP error quoting `inner` (sent from an external endpoint of ours): the
    /// internal endpoint to restore ([`rewrite_icmp_error_in`]).
    pub fn inbound_error(&self, inner: &Tuple) -> Option<Translation> {
        let IpAddr::V4(src) = inner.src else {
            return None;
        };
        self.to_internal(inner.proto, src, inner.sport)
    }

    /// For an outbound ICMP error quoting `inner` (received by an internal endpoint): the
    /// external endpoint to write back ([`rewrite_icmp_error_out`]).
    pub fn outbound_error(&self, inner: &Tuple) -> Option<Translation> {
        let IpAddr::V4(dst) = inner.dst else {
            return None;
        };
        self.to_external(inner.proto, dst, inner.dport)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::flow::parse;
    use crate::wire::ip::IpProtocol;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    // ----- Packet builders: every checksum computed in full -----

    /// An IPv4 header without options (checksum set) followed by `l4`.
    fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, frag: u16, l4: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + l4.len()).unwrap();
        let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, proto, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let c = checksum::finish(checksum::sum(&p, 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    fn l4_checksum(proto: IpProtocol, src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> u16 {
        let len = u16::try_from(seg.len()).unwrap();
        checksum::finish(checksum::sum(
            seg,
            checksum::pseudo_header_v4(&src, &dst, proto, len),
        ))
    }

    fn tcp_seg(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        flags: u8,
        data: &[u8],
    ) -> Vec<u8> {
        crate::testing::tcp4(src, dst, sport, dport, flags, 1000, 2000, data)
    }

    fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
        let (s, d) = (a(src), a(dst));
        ipv4(
            PROTO_TCP,
            s,
            d,
            0x4000,
            &tcp_seg(s, d, sport, dport, flags, data),
        )
    }

    fn udp_dgram(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        data: &[u8],
        csum: bool,
    ) -> Vec<u8> {
        let len = u16::try_from(8 + data.len()).unwrap();
        let mut s = Vec::new();
        s.extend_from_slice(&sport.to_be_bytes());
        s.extend_from_slice(&dport.to_be_bytes());
        s.extend_from_slice(&len.to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(data);
        if csum {
            let c = match l4_checksum(IpProtocol::Udp, src, dst, &s) {
                0 => 0xffff,
                c => c,
            };
            s[6..8].copy_from_slice(&c.to_be_bytes());
        }
        s
    }

    fn udp(src: &str, sport: u16, dst: &str, dport: u16, data: &[u8], csum: bool) -> Vec<u8> {
        let (s, d) = (a(src), a(dst));
        ipv4(
            PROTO_UDP,
            s,
            d,
            0,
            &udp_dgram(s, d, sport, dport, data, csum),
        )
    }

    fn icmp(src: &str, dst: &str, head: [u8; 8], body: &[u8]) -> Vec<u8> {
        let mut m = head.to_vec();
        m[2..4].fill(0);
        m.extend_from_slice(body);
        let c = checksum::finish(checksum::sum(&m, 0));
        m[2..4].copy_from_slice(&c.to_be_bytes());
        ipv4(PROTO_ICMP, a(src), a(dst), 0, &m)
    }

    fn echo(src: &str, dst: &str, request: bool, id: u16) -> Vec<u8> {
        let [i0, i1] = id.to_be_bytes();
        let ty = if request { 8 } else { 0 };
        icmp(src, dst, [ty, 0, 0, 0, i0, i1, 0, 7], b"ping data")
    }

    /// Port unreachable from `src` to `dst` quoting `quote`.
    fn unreachable(src: &str, dst: &str, quote: &[u8]) -> Vec<u8> {
        icmp(src, dst, [3, 3, 0, 0, 0, 0, 0, 0], quote)
    }

    /// Checks every checksum of an unfragmented packet by recomputing it.
    fn assert_valid(p: &[u8]) {
        let hl = usize::from(p[0] & 15) * 4;
        assert_eq!(
            checksum::finish(checksum::sum(&p[..hl], 0)),
            0,
            "IP header checksum"
        );
        let (src, dst) = (
            a(&Ipv4Addr::from(<[u8; 4]>::try_from(&p[12..16]).unwrap()).to_string()),
            Ipv4Addr::from(<[u8; 4]>::try_from(&p[16..20]).unwrap()),
        );
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        let seg = &p[hl..total];
        match p[9] {
            PROTO_TCP => assert_eq!(
                checksum::finish(checksum::sum(
                    seg,
                    checksum::pseudo_header_v4(
                        &src,
                        &dst,
                        IpProtocol::Tcp,
                        u16::try_from(seg.len()).unwrap()
                    )
                )),
                0,
                "TCP checksum"
            ),
            PROTO_UDP if seg[6..8] != [0, 0] => assert_eq!(
                checksum::finish(checksum::sum(
                    seg,
                    checksum::pseudo_header_v4(
                        &src,
                        &dst,
                        IpProtocol::Udp,
                        u16::try_from(seg.len()).unwrap()
                    )
                )),
                0,
                "UDP checksum"
            ),
            PROTO_ICMP => {
                assert_eq!(checksum::finish(checksum::sum(seg, 0)), 0, "ICMP checksum");
                if matches!(seg[0], 3 | 11 | 12) {
                    let q = &seg[8..];
                    let qhl = usize::from(q[0] & 15) * 4;
                    assert_eq!(
                        checksum::finish(checksum::sum(&q[..qhl], 0)),
                        0,
                        "quoted IP header checksum"
                    );
                }
            }
            _ => {}
        }
    }

    // ----- Rewriting -----

    #[test]
    fn tcp_source_and_destination() {
        let mut p = tcp(
            "10.0.0.5",
            40000,
            "198.51.100.7",
            443,
            0x18,
            b"hello, world",
        );
        assert_valid(&p);
        let f = parse(&p).unwrap();
        rewrite_src(&mut p, &f, a("203.0.113.1"), 61000).unwrap();
        assert_eq!(
            p,
            tcp(
                "203.0.113.1",
                61000,
                "198.51.100.7",
                443,
                0x18,
                b"hello, world"
            )
        );
        assert_valid(&p);

        let mut r = tcp("198.51.100.7", 443, "203.0.113.1", 61000, 0x10, b"odd");
        let f = parse(&r).unwrap();
        rewrite_dst(&mut r, &f, a("10.0.0.5"), 40000).unwrap();
        assert_eq!(r, tcp("198.51.100.7", 443, "10.0.0.5", 40000, 0x10, b"odd"));
        assert_valid(&r);
    }

    #[test]
    fn udp_with_and_without_checksum() {
        for csum in [true, false] {
            let mut p = udp("10.0.0.5", 5000, "198.51.100.7", 53, b"query", csum);
            // Ethernet padding after the packet is not touched.
            p.extend_from_slice(&[0xee; 6]);
            let f = parse(&p).unwrap();
            rewrite_src(&mut p, &f, a("203.0.113.1"), 1025).unwrap();
            let mut want = udp("203.0.113.1", 1025, "198.51.100.7", 53, b"query", csum);
            want.extend_from_slice(&[0xee; 6]);
            assert_eq!(p, want, "checksum {csum}");
            assert_valid(&p);
        }
    }

    #[test]
    fn udp_computed_zero_is_sent_as_ffff() {
        let orig = udp("10.0.0.5", 5000, "198.51.100.7", 53, b"abc", true);
        let (src, dst) = (a("203.0.113.1"), a("198.51.100.7"));
        let port = (1..=u16::MAX)
            .find(|&port| {
                let seg = udp_dgram(src, dst, port, 53, b"abc", false);
                l4_checksum(IpProtocol::Udp, src, dst, &seg) == 0
            })
            .unwrap();
        let mut p = orig.clone();
        let f = parse(&p).unwrap();
        rewrite_src(&mut p, &f, src, port).unwrap();
        assert_eq!(&p[26..28], &[0xff, 0xff]);
        assert_valid(&p);
        // And back: 0xffff is a valid input.
        let f = parse(&p).unwrap();
        rewrite_src(&mut p, &f, a("10.0.0.5"), 5000).unwrap();
        assert_eq!(p, orig);
    }

    /// Incremental rewrites give, byte for byte, the packet built from scratch with the new
    /// address and port (checksums included, so the same representation of zero too), over
    /// many pseudo-random packets, both directions, TCP and UDP.
    #[test]
    fn rewrites_match_packets_built_from_scratch() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..2000 {
            let r = next();
            let ip = |v: u64| Ipv4Addr::from(lo32(v)).to_string();
            let (src, dst, new) = (ip(r), ip(r >> 32), ip(next()));
            let port = |v: u64| u16::try_from(v & 0xffff).unwrap();
            let (sport, dport, np) = (port(r), port(r >> 16), port(r >> 48));
            let data = r.to_be_bytes();
            let data = &data[..usize::from(port(r >> 8) % 9)];
            let build = |s: &str, sp: u16, d: &str, dp: u16| {
                if i % 2 == 0 {
                    tcp(s, sp, d, dp, 0x18, data)
                } else {
                    udp(s, sp, d, dp, data, true)
                }
            };
            let mut p = build(&src, sport, &dst, dport);
            let f = parse(&p).unwrap();
            rewrite_src(&mut p, &f, a(&new), np).unwrap();
            assert_eq!(p, build(&new, np, &dst, dport), "source, packet {i}");
            let f = parse(&p).unwrap();
            rewrite_dst(&mut p, &f, a(&src), sport).unwrap();
            assert_eq!(p, build(&new, np, &src, sport), "destination, packet {i}");
        }
    }

    #[test]
    fn echo_identifier() {
        let mut p = echo("10.0.0.5", "198.51.100.7", true, 0x1234);
        let f = parse(&p).unwrap();
        rewrite_src(&mut p, &f, a("203.0.113.1"), 0x9000).unwrap();
        assert_eq!(p, echo("203.0.113.1", "198.51.100.7", true, 0x9000));
        assert_valid(&p);
        let mut r = echo("198.51.100.7", "203.0.113.1", false, 0x9000);
        let f = parse(&r).unwrap();
        rewrite_dst(&mut r, &f, a("10.0.0.5"), 0x1234).unwrap();
        assert_eq!(r, echo("198.51.100.7", "10.0.0.5", false, 0x1234));
    }

    /// Splits an unfragmented IPv4 packet after `first` bytes of payload (a multiple of 8).
    fn fragment(p: &[u8], first: usize) -> (Vec<u8>, Vec<u8>) {
        let (src, dst) = (
            Ipv4Addr::from(<[u8; 4]>::try_from(&p[12..16]).unwrap()),
            Ipv4Addr::from(<[u8; 4]>::try_from(&p[16..20]).unwrap()),
        );
        let data = &p[20..];
        let f1 = ipv4(p[9], src, dst, 0x2000, &data[..first]);
        let f2 = ipv4(
            p[9],
            src,
            dst,
            u16::try_from(first / 8).unwrap(),
            &data[first..],
        );
        (f1, f2)
    }

    #[test]
    fn fragments() {
        let payload: Vec<u8> = (0..100u8).collect();
        for proto in [PROTO_UDP, PROTO_TCP] {
            let build = |src: &str, sport| match proto {
                PROTO_UDP => udp(src, sport, "198.51.100.7", 53, &payload, true),
                _ => tcp(src, sport, "198.51.100.7", 80, 0x18, &payload),
            };
            let (mut f1, mut f2) = fragment(&build("10.0.0.5", 5000), 48);
            let (w1, w2) = fragment(&build("203.0.113.1", 7000), 48);
            let g1 = parse(&f1).unwrap();
            let g2 = parse(&f2).unwrap();
            assert!(g1.fragmented && g2.fragmented);
            assert_eq!(g2.transport, Transport::Fragment);
            rewrite_src(&mut f1, &g1, a("203.0.113.1"), 7000).unwrap();
            rewrite_src(&mut f2, &g2, a("203.0.113.1"), 7000).unwrap();
            // The first fragment's transport checksum is the whole datagram's.
            assert_eq!((f1, f2), (w1, w2), "proto {proto}");
        }
    }

    #[test]
    fn icmp_error_from_outside_about_udp() {
        // 10.0.0.5:5000 sent a datagram to 198.51.100.7:53, translated to 203.0.113.1:61000;
        // 198.51.100.7 answers port unreachable, quoting all of it.
        let sent = udp(
            "203.0.113.1",
            61000,
            "198.51.100.7",
            53,
            b"query data",
            true,
        );
        let orig = udp("10.0.0.5", 5000, "198.51.100.7", 53, b"query data", true);
        let mut e = unreachable("198.51.100.7", "203.0.113.1", &sent);
        assert_valid(&e);
        let f = parse(&e).unwrap();
        rewrite_icmp_error_in(&mut e, &f, a("10.0.0.5"), a("10.0.0.5"), 5000).unwrap();
        assert_eq!(e, unreachable("198.51.100.7", "10.0.0.5", &orig));
        assert_valid(&e);
        let Transport::IcmpError { inner, .. } = parse(&e).unwrap().transport else {
            panic!()
        };
        assert_eq!((inner.src, inner.sport), (IpAddr::V4(a("10.0.0.5")), 5000));
    }

    #[test]
    fn icmp_error_quotes_of_every_length() {
        // TCP (checksum quoted or not), UDP without checksum, echo request; quotes from the
        // 8 bytes RFC 792 requires to the whole packet. A quote that ends inside the TCP
        // checksum keeps its half checksum as it is (it cannot be updated), so it is skipped.
        let cases: [(Vec<u8>, Vec<u8>); 3] = [
            (
                tcp("203.0.113.1", 61000, "198.51.100.7", 80, 0x02, b""),
                tcp("10.0.0.5", 40000, "198.51.100.7", 80, 0x02, b""),
            ),
            (
                udp("203.0.113.1", 61000, "198.51.100.7", 53, b"q", false),
                udp("10.0.0.5", 40000, "198.51.100.7", 53, b"q", false),
            ),
            (
                echo("203.0.113.1", "198.51.100.7", true, 61000),
                echo("10.0.0.5", "198.51.100.7", true, 40000),
            ),
        ];
        for (sent, orig) in cases {
            for n in 28..=sent.len() {
                if sent[9] == PROTO_TCP && n == 20 + 17 {
                    continue;
                }
                let mut e = unreachable("192.0.2.1", "203.0.113.1", &sent[..n]);
                let f = parse(&e).unwrap();
                rewrite_icmp_error_in(&mut e, &f, a("10.0.0.5"), a("10.0.0.5"), 40000).unwrap();
                assert_eq!(
                    e,
                    unreachable("192.0.2.1", "10.0.0.5", &orig[..n]),
                    "quote {n}"
                );
                assert_valid(&e);
            }
        }
    }

    #[test]
    fn icmp_error_from_inside() {
        // 198.51.100.7:40000 sent to floating IP 203.0.113.9:53, forwarded to 10.0.0.5:53,
        // which answers port unreachable.
        let received = udp("198.51.100.7", 40000, "10.0.0.5", 53, b"query", true);
        let sent = udp("198.51.100.7", 40000, "203.0.113.9", 53, b"query", true);
        let mut e = unreachable("10.0.0.5", "198.51.100.7", &received);
        let f = parse(&e).unwrap();
        rewrite_icmp_error_out(&mut e, &f, a("203.0.113.9"), a("203.0.113.9"), 53).unwrap();
        assert_eq!(e, unreachable("203.0.113.9", "198.51.100.7", &sent));
        assert_valid(&e);
    }

    #[test]
    fn icmp_error_quote_followed_by_extensions_is_cut_at_its_length() {
        // A quote of an 8-byte TCP header followed by bytes that must not be taken for the
        // TCP checksum (RFC 4884 padding or extensions).
        let sent = tcp("203.0.113.1", 61000, "198.51.100.7", 80, 0x02, b"");
        let orig = tcp("10.0.0.5", 40000, "198.51.100.7", 80, 0x02, b"");
        let mut q = sent[..28].to_vec();
        q[2..4].copy_from_slice(&28u16.to_be_bytes());
        q[10..12].fill(0);
        let c = checksum::finish(checksum::sum(&q[..20], 0));
        q[10..12].copy_from_slice(&c.to_be_bytes());
        let mut qo = orig[..28].to_vec();
        qo[2..4].copy_from_slice(&28u16.to_be_bytes());
        qo[10..12].fill(0);
        let c = checksum::finish(checksum::sum(&qo[..20], 0));
        qo[10..12].copy_from_slice(&c.to_be_bytes());
        q.extend_from_slice(&[0xab; 12]);
        qo.extend_from_slice(&[0xab; 12]);
        let mut e = unreachable("192.0.2.1", "203.0.113.1", &q);
        let f = parse(&e).unwrap();
        rewrite_icmp_error_in(&mut e, &f, a("10.0.0.5"), a("10.0.0.5"), 40000).unwrap();
        assert_eq!(e, unreachable("192.0.2.1", "10.0.0.5", &qo));
    }

    #[test]
    fn short_or_foreign_packets_fail_without_writing() {
        let p = tcp("10.0.0.5", 40000, "198.51.100.7", 443, 0x18, b"hello");
        let f = parse(&p).unwrap();
        for n in 0..p.len() {
            let mut q = p[..n].to_vec();
            assert!(rewrite_src(&mut q, &f, a("203.0.113.1"), 1).is_err());
            assert!(rewrite_dst(&mut q, &f, a("203.0.113.1"), 1).is_err());
            assert_eq!(q, p[..n]);
        }
        let e = unreachable("192.0.2.1", "203.0.113.1", &p);
        let g = parse(&e).unwrap();
        for n in 0..e.len() {
            let mut q = e[..n].to_vec();
            assert!(rewrite_icmp_error_in(&mut q, &g, a("10.0.0.5"), a("10.0.0.5"), 1).is_err());
            assert_eq!(q, e[..n]);
        }
        // Not an ICMP error.
        let mut q = p.clone();
        assert_eq!(
            rewrite_icmp_error_in(&mut q, &f, a("10.0.0.5"), a("10.0.0.5"), 1),
            Err(Error::Malformed)
        );
        // IPv6 is never translated.
        let mut v6 = crate::testing::ipv6_icmp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            64,
            &[128, 0, 0, 0, 0, 7, 0, 1],
        );
        let f6 = parse(&v6).unwrap();
        assert!(rewrite_src(&mut v6, &f6, a("203.0.113.1"), 1).is_err());
    }

    // ----- State -----

    const EXT: &str = "203.0.113.1";
    const Z: NatZone = NatZone(1);

    fn flow(src: &str, sport: u16, dst: &str, dport: u16, proto: u8, transport: Transport) -> Flow {
        Flow {
            tuple: Tuple {
                src: IpAddr::V4(a(src)),
                dst: IpAddr::V4(a(dst)),
                proto,
                sport,
                dport,
            },
            transport,
            l4: 20,
            fragmented: false,
        }
    }

    fn uf(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        flow(src, sport, dst, dport, PROTO_UDP, Transport::Udp)
    }

    fn tf(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Flow {
        let t = Transport::Tcp {
            flags,
            seq: 0,
            ack: 0,
            window: 0,
            wscale: None,
            payload: 0,
        };
        flow(src, sport, dst, dport, PROTO_TCP, t)
    }

    fn ef(src: &str, dst: &str, id: u16, request: bool) -> Flow {
        flow(src, id, dst, id, PROTO_ICMP, Transport::Echo { request })
    }

    fn t(secs: u64) -> Timestamp {
        Timestamp(secs * 1_000_000_000)
    }

    fn tr(ip: &str, port: u16) -> Translation {
        Translation { ip: a(ip), port }
    }

    fn nat() -> Nat {
        Nat::new(
            NatLimits {
                max_sessions: 1000,
                max_per_zone: 1000,
                port_range: (1024, 65535),
            },
            7,
        )
    }

    #[test]
    fn sizes() {
        assert_eq!(size_of::<Session>(), 32);
        assert_eq!(size_of::<Mapping>(), 28);
        assert_eq!(BYTES_PER_SESSION, 108);
        let n = Nat::new(
            NatLimits {
                max_sessions: 1 << 20,
                ..NatLimits::default()
            },
            1,
        );
        // Preallocated: about BYTES_PER_SESSION per session, plus the port pool template.
        let per = n.heap_bytes() / (1 << 20);
        assert!(
            (BYTES_PER_SESSION..BYTES_PER_SESSION + 4).contains(&per),
            "{per}"
        );
    }

    #[test]
    fn warming_hashes_point_at_the_session() {
        let mut n = nat();
        let out = uf("10.0.0.5", 5000, "198.51.100.7", 53);
        let x = n.outbound(Z, a(EXT), &out, t(1)).unwrap();
        let (i, _) = n
            .sessions
            .iter()
            .enumerate()
            .find(|(_, s)| s.proto != 0)
            .unwrap();
        // Leaving: the inside index; the reply arriving at the external address: the outside.
        let [h_out, none] = n.hashes_of(&out, true, false);
        assert_eq!(none, None);
        assert_eq!(n.by_inside.first_candidate(h_out.unwrap()), Some(i));
        let back = uf("198.51.100.7", 53, EXT, x.port);
        let [none, h_in] = n.hashes_of(&back, false, true);
        assert_eq!(none, None);
        assert_eq!(n.by_outside.first_candidate(h_in.unwrap()), Some(i));
        // The tuple alone gives the same hashes.
        assert_eq!(
            n.hashes_of_tcp_udp(&out.tuple, true, true)[0],
            h_out,
            "leaving"
        );
        assert_eq!(n.hashes_of_tcp_udp(&back.tuple, true, true)[1], h_in);
        n.warm(&[h_out.unwrap(), 0], &[h_in.unwrap()]);
        assert_eq!(n.inbound(Z, &back, t(2)), Some(tr("10.0.0.5", 5000)));
    }

    #[test]
    fn endpoint_independent_mapping_with_port_preservation() {
        let mut n = nat();
        let x = n
            .outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 53), t(0))
            .unwrap();
        let y = n
            .outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "192.0.2.9", 4000), t(0))
            .unwrap();
        assert_eq!(x, tr(EXT, 5000));
        assert_eq!(y, x);
        assert_eq!((n.sessions(), n.mappings()), (2, 1));
        // The same packet again: the same session.
        n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "192.0.2.9", 4000), t(1))
            .unwrap();
        assert_eq!(n.sessions(), 2);
        n.check();
    }

    #[test]
    fn address_and_port_dependent_filtering() {
        let mut n = nat();
        n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 53), t(0))
            .unwrap();
        let ok = n.inbound(Z, &uf("198.51.100.7", 53, EXT, 5000), t(1));
        assert_eq!(ok, Some(tr("10.0.0.5", 5000)));
        // Another port of the same host, another host, another external port, another zone.
        assert_eq!(n.inbound(Z, &uf("198.51.100.7", 54, EXT, 5000), t(1)), None);
        assert_eq!(n.inbound(Z, &uf("198.51.100.8", 53, EXT, 5000), t(1)), None);
        assert_eq!(n.inbound(Z, &uf("198.51.100.7", 53, EXT, 5001), t(1)), None);
        assert_eq!(
            n.inbound(NatZone(2), &uf("198.51.100.7", 53, EXT, 5000), t(1)),
            None
        );
        // Another protocol.
        assert_eq!(
            n.inbound(Z, &tf("198.51.100.7", 53, EXT, 5000, tcp_flags::SYN), t(1)),
            None
        );
        // Once the host has sent there, it is let in.
        n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 54), t(2))
            .unwrap();
        assert!(
            n.inbound(Z, &uf("198.51.100.7", 54, EXT, 5000), t(3))
                .is_some()
        );
    }

    #[test]
    fn colliding_internal_ports_get_different_external_ports() {
        let mut n = nat();
        let x = n
            .outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 53), t(0))
            .unwrap();
        let y = n
            .outbound(Z, a(EXT), &uf("10.0.0.6", 5000, "198.51.100.7", 53), t(0))
            .unwrap();
        assert_eq!(x.port, 5000);
        assert_ne!(y.port, 5000);
        assert!(y.port >= 1024);
        assert_eq!(
            n.inbound(Z, &uf("198.51.100.7", 53, EXT, y.port), t(1)),
            Some(tr("10.0.0.6", 5000))
        );
        // Another protocol has its own ports; a port below the range is not preserved.
        let z = n
            .outbound(
                Z,
                a(EXT),
                &tf("10.0.0.6", 5000, "198.51.100.7", 53, tcp_flags::SYN),
                t(0),
            )
            .unwrap();
        assert_eq!(z.port, 5000);
        let w = n
            .outbound(Z, a(EXT), &uf("10.0.0.7", 53, "198.51.100.7", 53), t(0))
            .unwrap();
        assert!(w.port >= 1024);
        n.check();
    }

    #[test]
    fn exhausting_the_ports_of_an_address() {
        let mut n = Nat::new(
            NatLimits {
                max_sessions: 70_000,
                max_per_zone: 70_000,
                port_range: (1024, 65535),
            },
            3,
        );
        let mut ports = HashSet::new();
        let total = 65535 - 1024 + 1;
        for i in 0..total {
            // Every host uses source port 40000: only the first one keeps it.
            let host = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let x = n
                .outbound(Z, a(EXT), &uf(&host, 40000, "198.51.100.7", 53), t(0))
                .unwrap();
            assert!(ports.insert(x.port), "port {} twice", x.port);
            assert!(x.port >= 1024);
        }
        assert_eq!(ports.len(), total);
        let e = n.outbound(Z, a(EXT), &uf("10.9.9.9", 40000, "198.51.100.7", 53), t(0));
        assert_eq!(e, Err(NatError::NoFreePort));
        assert_eq!(e.unwrap_err().drop_reason(), DropReason::NatNoFreePort);
        // An existing mapping still makes sessions; another address has its own ports.
        n.outbound(Z, a(EXT), &uf("10.0.0.0", 40000, "198.51.100.8", 53), t(0))
            .unwrap();
        let y = n
            .outbound(
                Z,
                a("203.0.113.2"),
                &uf("10.9.9.9", 40000, "198.51.100.7", 53),
                t(0),
            )
            .unwrap();
        assert_eq!(y, tr("203.0.113.2", 40000));
        n.check();
        // Everything expires; the ports come back.
        assert_eq!(n.expire(t(301), 100_000), total + 2);
        assert_eq!((n.sessions(), n.mappings()), (0, 0));
        n.check();
        let z = n
            .outbound(
                Z,
                a(EXT),
                &uf("10.9.9.9", 40000, "198.51.100.7", 53),
                t(302),
            )
            .unwrap();
        assert_eq!(z.port, 40000);
    }

    #[test]
    fn a_small_range_and_churn_keep_mappings_unique() {
        let mut n = Nat::new(
            NatLimits {
                max_sessions: 500,
                max_per_zone: 500,
                port_range: (2000, 2099),
            },
            11,
        );
        let mut rng = 0x1234_5678_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..20_000u64 {
            let r = next();
            let host = format!("10.0.{}.{}", r & 3, (r >> 8) & 31);
            let sport = u16::try_from(2000 + ((r >> 16) % 120)).unwrap();
            let remote = format!("198.51.100.{}", (r >> 24) & 7);
            let proto = (r >> 32) % 3;
            let f = match proto {
                0 => uf(&host, sport, &remote, 53),
                1 => tf(&host, sport, &remote, 80, tcp_flags::SYN),
                _ => ef(&host, &remote, sport, true),
            };
            let zone = NatZone(u32::try_from((r >> 40) & 1).unwrap());
            let ext = if zone.0 == 0 { EXT } else { "203.0.113.2" };
            match n.outbound(zone, a(ext), &f, t(step / 10)) {
                Ok(x) => assert!((2000..2100).contains(&x.port)),
                Err(e) => assert!(matches!(e, NatError::NoFreePort | NatError::NodeLimit)),
            }
            if step % 7 == 0 {
                n.expire(t(step / 10), 50);
            }
            if step % 1000 == 0 {
                n.check();
            }
        }
        n.check();
        n.expire(t(1_000_000), usize::MAX);
        assert_eq!((n.sessions(), n.mappings(), n.pool_index.len()), (0, 0, 0));
        n.check();
    }

    #[test]
    fn a_mapping_lives_while_any_session_does() {
        let mut n = nat();
        n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 53), t(0))
            .unwrap();
        n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "192.0.2.9", 53), t(200))
            .unwrap();
        assert_eq!(n.expire(t(300), 10), 1);
        assert_eq!((n.sessions(), n.mappings()), (1, 1));
        // The port is still taken.
        let y = n
            .outbound(Z, a(EXT), &uf("10.0.0.6", 5000, "192.0.2.9", 53), t(300))
            .unwrap();
        assert_ne!(y.port, 5000);
        assert_eq!(n.expire(t(500), 10), 1);
        assert_eq!((n.sessions(), n.mappings()), (1, 1));
        n.check();
        // Now free: preserved for the next one.
        let z = n
            .outbound(Z, a(EXT), &uf("10.0.0.7", 5000, "192.0.2.9", 53), t(500))
            .unwrap();
        assert_eq!(z.port, 5000);
        n.check();
    }

    #[test]
    fn expired_sessions_are_gone_before_the_sweep() {
        let mut n = nat();
        n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 53), t(0))
            .unwrap();
        assert!(
            n.inbound(Z, &uf("198.51.100.7", 53, EXT, 5000), t(299))
                .is_some()
        );
        // Inbound refreshes (RFC 4787 REQ-6a).
        assert!(
            n.inbound(Z, &uf("198.51.100.7", 53, EXT, 5000), t(598))
                .is_some()
        );
        assert_eq!(
            n.inbound(Z, &uf("198.51.100.7", 53, EXT, 5000), t(898)),
            None
        );
        assert_eq!(n.sessions(), 0);
        n.check();
    }

    #[test]
    fn the_sweep_is_bounded_and_wraps() {
        let mut n = nat();
        for p in 0..10 {
            n.outbound(
                Z,
                a(EXT),
                &uf("10.0.0.5", 5000 + p, "198.51.100.7", 53),
                t(0),
            )
            .unwrap();
        }
        assert_eq!(n.expire(t(300), 4), 4);
        assert_eq!(n.expire(t(300), 4), 4);
        assert_eq!(n.expire(t(300), 4), 2);
        assert_eq!(n.sessions(), 0);
        assert_eq!(n.expire(t(300), 4), 0);
        n.check();
    }

    #[test]
    fn zone_and_node_limits() {
        let mut n = Nat::new(
            NatLimits {
                max_sessions: 3,
                max_per_zone: 2,
                port_range: (1024, 65535),
            },
            5,
        );
        for p in 0..2 {
            n.outbound(
                Z,
                a(EXT),
                &uf("10.0.0.5", 5000 + p, "198.51.100.7", 53),
                t(0),
            )
            .unwrap();
        }
        let e = n.outbound(Z, a(EXT), &uf("10.0.0.5", 6000, "198.51.100.7", 53), t(0));
        assert_eq!(e, Err(NatError::ZoneLimit));
        let z2 = NatZone(2);
        n.outbound(
            z2,
            a("203.0.113.2"),
            &uf("10.0.0.5", 5000, "198.51.100.7", 53),
            t(0),
        )
        .unwrap();
        let e = n.outbound(
            z2,
            a("203.0.113.2"),
            &uf("10.0.0.5", 5001, "198.51.100.7", 53),
            t(0),
        );
        assert_eq!(e, Err(NatError::NodeLimit));
        assert_eq!(
            (n.zone_sessions(Z), n.zone_sessions(z2), n.sessions()),
            (2, 1, 3)
        );
        // Existing sessions still pass at the limit.
        assert!(
            n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 53), t(1))
                .is_ok()
        );
        n.check();
    }

    #[test]
    fn icmp_echo_identifiers() {
        let mut n = nat();
        let x = n
            .outbound(Z, a(EXT), &ef("10.0.0.5", "198.51.100.7", 7000, true), t(0))
            .unwrap();
        let y = n
            .outbound(Z, a(EXT), &ef("10.0.0.6", "198.51.100.7", 7000, true), t(0))
            .unwrap();
        assert_eq!(x, tr(EXT, 7000));
        assert_ne!(y.port, 7000);
        // The same identifier to another host: the same mapping (RFC 5508 REQ-1a).
        let z = n
            .outbound(Z, a(EXT), &ef("10.0.0.6", "192.0.2.9", 7000, true), t(0))
            .unwrap();
        assert_eq!(z, y);
        let r = n.inbound(Z, &ef("198.51.100.7", EXT, y.port, false), t(1));
        assert_eq!(r, Some(tr("10.0.0.6", 7000)));
        // A request in, or a reply out, is not for source NAT.
        assert_eq!(
            n.inbound(Z, &ef("198.51.100.7", EXT, y.port, true), t(1)),
            None
        );
        let e = n.outbound(
            Z,
            a(EXT),
            &ef("10.0.0.5", "198.51.100.7", 7000, false),
            t(1),
        );
        assert_eq!(e, Err(NatError::Unsupported));
        // 60 s.
        assert!(
            n.inbound(Z, &ef("198.51.100.7", EXT, 7000, false), t(59))
                .is_some()
        );
        assert_eq!(
            n.inbound(Z, &ef("198.51.100.7", EXT, 7000, false), t(119)),
            None
        );
        n.check();
    }

    #[test]
    fn icmp_errors_find_the_session_and_do_not_refresh_it() {
        let mut n = nat();
        let f = uf("10.0.0.5", 5000, "198.51.100.7", 53);
        let x = n.outbound(Z, a(EXT), &f, t(0)).unwrap();
        // The quoted packet as it left.
        let sent = Tuple {
            src: IpAddr::V4(x.ip),
            sport: x.port,
            ..f.tuple
        };
        assert_eq!(n.inbound_error(Z, &sent, t(1)), Some(tr("10.0.0.5", 5000)));
        // From any router on the path: only the quote matters; a quote of another flow does not match.
        let other = Tuple { dport: 54, ..sent };
        assert_eq!(n.inbound_error(Z, &other, t(1)), None);
        assert_eq!(n.inbound_error(NatZone(9), &sent, t(1)), None);
        // An error the internal host sends about a reply it received.
        let received = Tuple {
            src: f.tuple.dst,
            dst: f.tuple.src,
            sport: 53,
            dport: 5000,
            proto: PROTO_UDP,
        };
        assert_eq!(n.outbound_error(Z, &received, t(1)), Some(tr(EXT, 5000)));
        // Errors do not refresh.
        assert!(n.inbound_error(Z, &sent, t(299)).is_some());
        assert_eq!(n.inbound_error(Z, &sent, t(300)), None);
        assert_eq!(n.outbound_error(Z, &received, t(300)), None);
        // Echo: the quoted identifier is the external one.
        let x = n
            .outbound(Z, a(EXT), &ef("10.0.0.5", "198.51.100.7", 9, true), t(400))
            .unwrap();
        let q = Tuple {
            src: IpAddr::V4(x.ip),
            dst: IpAddr::V4(a("198.51.100.7")),
            proto: PROTO_ICMP,
            sport: x.port,
            dport: x.port,
        };
        assert_eq!(n.inbound_error(Z, &q, t(401)), Some(tr("10.0.0.5", 9)));
    }

    #[test]
    fn hairpinning() {
        let mut n = nat();
        // A and B behind the same router learn their external endpoints from a server.
        let pa = n
            .outbound(Z, a(EXT), &uf("10.0.0.5", 4000, "198.51.100.7", 3478), t(0))
            .unwrap();
        let pb = n
            .outbound(Z, a(EXT), &uf("10.0.0.6", 4000, "198.51.100.7", 3478), t(0))
            .unwrap();
        assert_ne!(pa.port, pb.port);
        // B sends to A's external endpoint: source translated, then the router turns it back
        // in; A has not sent to B, so it is filtered.
        let from_b = uf("10.0.0.6", 4000, EXT, pa.port);
        let src = n.outbound(Z, a(EXT), &from_b, t(1)).unwrap();
        assert_eq!(src, pb);
        let turned = uf(EXT, src.port, EXT, pa.port);
        assert_eq!(n.inbound(Z, &turned, t(1)), None);
        // A sends to B's external endpoint: B has sent to A's, so it passes, and A is seen
        // as its external endpoint (REQ-9a).
        let from_a = uf("10.0.0.5", 4000, EXT, pb.port);
        let src = n.outbound(Z, a(EXT), &from_a, t(2)).unwrap();
        assert_eq!(src, pa);
        let turned = uf(EXT, src.port, EXT, pb.port);
        assert_eq!(n.inbound(Z, &turned, t(2)), Some(tr("10.0.0.6", 4000)));
        // And B's answers now reach A.
        assert_eq!(
            n.inbound(Z, &uf(EXT, pb.port, EXT, pa.port), t(3)),
            Some(tr("10.0.0.5", 4000))
        );
        n.check();
    }

    #[test]
    fn tcp_timeouts_follow_the_connection() {
        use tcp_flags::{ACK, FIN, RST, SYN};
        let (int, rem) = ("10.0.0.5", "198.51.100.7");
        let out = |flags| tf(int, 40000, rem, 443, flags);
        let inn = |flags| tf(rem, 443, EXT, 40000, flags);

        // A SYN without answer: transitory.
        let mut n = nat();
        n.outbound(Z, a(EXT), &out(SYN), t(0)).unwrap();
        assert_eq!(n.expire(t(239), 10), 0);
        assert_eq!(n.expire(t(240), 10), 1);

        // Handshake: established, 2 h 4 min idle.
        let mut n = nat();
        n.outbound(Z, a(EXT), &out(SYN), t(0)).unwrap();
        assert!(n.inbound(Z, &inn(SYN | ACK), t(1)).is_some());
        n.outbound(Z, a(EXT), &out(ACK), t(2)).unwrap();
        assert_eq!(n.expire(t(2 + 7439), 10), 0);
        assert!(n.inbound(Z, &inn(ACK), t(2 + 7439)).is_some());
        // FIN both ways: transitory again.
        n.outbound(Z, a(EXT), &out(FIN | ACK), t(8000)).unwrap();
        assert_eq!(
            n.expire(t(8000 + 300), 10),
            0,
            "half closed is still established"
        );
        n.inbound(Z, &inn(FIN | ACK), t(8000 + 300)).unwrap();
        assert_eq!(n.expire(t(8000 + 539), 10), 0);
        assert_eq!(n.expire(t(8000 + 540), 10), 1);

        // RST: transitory.
        let mut n = nat();
        n.outbound(Z, a(EXT), &out(SYN), t(0)).unwrap();
        n.inbound(Z, &inn(SYN | ACK), t(1)).unwrap();
        n.inbound(Z, &inn(RST), t(10)).unwrap();
        assert_eq!(n.expire(t(249), 10), 0);
        assert_eq!(n.expire(t(250), 10), 1);

        // Reopened after RST by a new SYN.
        let mut n = nat();
        n.outbound(Z, a(EXT), &out(SYN), t(0)).unwrap();
        n.inbound(Z, &inn(RST | ACK), t(1)).unwrap();
        n.outbound(Z, a(EXT), &out(SYN), t(2)).unwrap();
        n.inbound(Z, &inn(SYN | ACK), t(3)).unwrap();
        assert_eq!(n.expire(t(3 + 7000), 10), 0);

        // Picked up mid-stream: transitory until a segment comes back.
        let mut n = nat();
        n.outbound(Z, a(EXT), &out(ACK), t(0)).unwrap();
        assert_eq!(n.expire(t(240), 10), 1);
        n.outbound(Z, a(EXT), &out(ACK), t(300)).unwrap();
        n.inbound(Z, &inn(ACK), t(301)).unwrap();
        assert_eq!(n.expire(t(301 + 7000), 10), 0);

        // Simultaneous open (RFC 5382 REQ-2a).
        let mut n = nat();
        n.outbound(Z, a(EXT), &out(SYN), t(0)).unwrap();
        assert!(n.inbound(Z, &inn(SYN), t(1)).is_some());
        assert_eq!(n.expire(t(1000), 10), 0);
        n.check();
    }

    #[test]
    fn udp_timeout_is_five_minutes() {
        let mut n = nat();
        n.outbound(Z, a(EXT), &uf("10.0.0.5", 5000, "198.51.100.7", 53), t(10))
            .unwrap();
        assert_eq!(n.expire(t(309), 10), 0);
        assert_eq!(n.expire(t(310), 10), 1);
    }

    #[test]
    fn remove_zone_frees_everything_of_the_zone() {
        let mut n = nat();
        for p in 0..5 {
            n.outbound(
                Z,
                a(EXT),
                &uf("10.0.0.5", 5000 + p, "198.51.100.7", 53),
                t(0),
            )
            .unwrap();
            n.outbound(
                Z,
                a(EXT),
                &tf("10.0.0.5", 5000 + p, "198.51.100.7", 80, tcp_flags::SYN),
                t(0),
            )
            .unwrap();
        }
        let z2 = NatZone(2);
        n.outbound(
            z2,
            a("203.0.113.2"),
            &uf("10.0.0.5", 5000, "198.51.100.7", 53),
            t(0),
        )
        .unwrap();
        assert_eq!(n.remove_zone(Z), 10);
        assert_eq!(
            (
                n.sessions(),
                n.mappings(),
                n.zone_sessions(Z),
                n.zone_sessions(z2)
            ),
            (1, 1, 0, 1)
        );
        assert_eq!(n.pool_index.len(), 1);
        assert_eq!(n.remove_zone(Z), 0);
        assert!(
            n.inbound(z2, &uf("198.51.100.7", 53, "203.0.113.2", 5000), t(1))
                .is_some()
        );
        n.check();
    }

    #[test]
    fn a_new_external_address_moves_the_session() {
        let mut n = nat();
        let f = uf("10.0.0.5", 5000, "198.51.100.7", 53);
        n.outbound(Z, a(EXT), &f, t(0)).unwrap();
        let x = n.outbound(Z, a("203.0.113.2"), &f, t(1)).unwrap();
        assert_eq!(x, tr("203.0.113.2", 5000));
        assert_eq!((n.sessions(), n.mappings()), (1, 1));
        assert_eq!(n.inbound(Z, &uf("198.51.100.7", 53, EXT, 5000), t(1)), None);
        n.check();
    }

    #[test]
    fn what_source_nat_does_not_translate() {
        let mut n = nat();
        let mut later = uf("10.0.0.5", 0, "198.51.100.7", 0);
        later.transport = Transport::Fragment;
        assert_eq!(
            n.outbound(Z, a(EXT), &later, t(0)),
            Err(NatError::Unsupported)
        );
        let gre = flow("10.0.0.5", 0, "198.51.100.7", 0, 47, Transport::Other);
        assert_eq!(
            n.outbound(Z, a(EXT), &gre, t(0)),
            Err(NatError::Unsupported)
        );
        let mut v6 = uf("10.0.0.5", 1, "198.51.100.7", 2);
        v6.tuple.src = "2001:db8::1".parse().unwrap();
        v6.tuple.dst = "2001:db8::2".parse().unwrap();
        assert_eq!(n.outbound(Z, a(EXT), &v6, t(0)), Err(NatError::Unsupported));
        assert_eq!(n.inbound(Z, &v6, t(0)), None);
        assert_eq!(n.sessions(), 0);
    }

    #[test]
    fn translating_real_packets_end_to_end() {
        // outbound() + rewrite_src, the reply through inbound() + rewrite_dst, and an ICMP error
        // through inbound_error() + rewrite_icmp_error_in.
        let mut n = nat();
        let mut p = udp("10.0.0.5", 5000, "198.51.100.7", 53, b"query", true);
        let f = parse(&p).unwrap();
        let x = n.outbound(Z, a(EXT), &f, t(0)).unwrap();
        rewrite_src(&mut p, &f, x.ip, x.port).unwrap();
        assert_valid(&p);
        let mut r = udp("198.51.100.7", 53, EXT, x.port, b"answer", true);
        let g = parse(&r).unwrap();
        let y = n.inbound(Z, &g, t(1)).unwrap();
        rewrite_dst(&mut r, &g, y.ip, y.port).unwrap();
        assert_eq!(
            r,
            udp("198.51.100.7", 53, "10.0.0.5", 5000, b"answer", true)
        );
        let mut e = unreachable("192.0.2.1", EXT, &p);
        let h = parse(&e).unwrap();
        let Transport::IcmpError { inner, .. } = h.transport else {
            panic!()
        };
        let z = n.inbound_error(Z, &inner, t(2)).unwrap();
        rewrite_icmp_error_in(&mut e, &h, z.ip, z.ip, z.port).unwrap();
        assert_eq!(
            e,
            unreachable(
                "192.0.2.1",
                "10.0.0.5",
                &udp("10.0.0.5", 5000, "198.51.100.7", 53, b"query", true)
            )
        );
    }

    // ----- Static NAT -----

    fn fip(e: &str, i: &str) -> FloatingIp {
        FloatingIp {
            external: a(e),
            internal: a(i),
        }
    }

    fn pf(proto: u8, e: &str, ep: u16, i: &str, ip: u16) -> PortForward {
        PortForward {
            proto,
            external: a(e),
            external_port: ep,
            internal: a(i),
            internal_port: ip,
        }
    }

    #[test]
    fn static_nat_lookups() {
        let s = StaticNat::new(
            &[fip("203.0.113.9", "10.0.0.5")],
            &[
                pf(PROTO_TCP, "203.0.113.10", 2222, "10.0.0.6", 22),
                pf(PROTO_UDP, "203.0.113.10", 2222, "10.0.0.7", 53),
            ],
        )
        .unwrap();
        assert!(!s.is_empty());
        // Floating IP: any protocol, port unchanged, both ways.
        assert_eq!(
            s.inbound(&uf("198.51.100.7", 1, "203.0.113.9", 80)),
            Some(tr("10.0.0.5", 80))
        );
        assert_eq!(
            s.outbound(&tf("10.0.0.5", 80, "198.51.100.7", 1, 0)),
            Some(tr("203.0.113.9", 80))
        );
        assert_eq!(
            s.inbound(&ef("198.51.100.7", "203.0.113.9", 5, true)),
            Some(tr("10.0.0.5", 5))
        );
        // Port forwarding: by protocol and port.
        assert_eq!(
            s.inbound(&tf("198.51.100.7", 1, "203.0.113.10", 2222, 2)),
            Some(tr("10.0.0.6", 22))
        );
        assert_eq!(
            s.inbound(&uf("198.51.100.7", 1, "203.0.113.10", 2222)),
            Some(tr("10.0.0.7", 53))
        );
        assert_eq!(
            s.inbound(&tf("198.51.100.7", 1, "203.0.113.10", 2223, 2)),
            None
        );
        assert_eq!(
            s.outbound(&tf("10.0.0.6", 22, "198.51.100.7", 1, 0)),
            Some(tr("203.0.113.10", 2222))
        );
        assert_eq!(
            s.outbound(&tf("10.0.0.6", 23, "198.51.100.7", 1, 0)),
            None,
            "then SNAT"
        );
        // ICMP errors.
        let sent = tf("203.0.113.10", 2222, "198.51.100.7", 1, 0).tuple;
        assert_eq!(s.inbound_error(&sent), Some(tr("10.0.0.6", 22)));
        let received = tf("198.51.100.7", 1, "10.0.0.6", 22, 0).tuple;
        assert_eq!(s.outbound_error(&received), Some(tr("203.0.113.10", 2222)));
        assert!(StaticNat::new(&[], &[]).unwrap().is_empty());
    }

    /// The address filters never hide a translation: 300 floating IPs and 300 port
    /// forwardings (more than the 256 bits hold, so the filters are nearly full) are all found
    /// both ways; and with a few floating IPs most other addresses are ruled out by the filter.
    #[test]
    fn address_filters_hide_no_translation() {
        let host = |base: [u8; 4], i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + i);
        let fips: Vec<FloatingIp> = (0..300)
            .map(|i| FloatingIp {
                external: host([198, 51, 0, 0], i * 7),
                internal: host([10, 0, 0, 0], i),
            })
            .collect();
        let pfs: Vec<PortForward> = (0..300u16)
            .map(|i| PortForward {
                proto: PROTO_TCP,
                external: host([203, 0, 0, 0], u32::from(i % 50)),
                external_port: 1000 + i,
                internal: host([10, 1, 0, 0], u32::from(i)),
                internal_port: 22,
            })
            .collect();
        let s = StaticNat::new(&fips, &pfs).unwrap();
        for f in &fips {
            assert!(s.is_external(f.external));
            assert_eq!(
                s.to_internal(PROTO_UDP, f.external, 9).unwrap().ip,
                f.internal
            );
            assert_eq!(
                s.to_external(PROTO_UDP, f.internal, 9).unwrap().ip,
                f.external
            );
        }
        for p in &pfs {
            assert!(s.is_external(p.external));
            let t = s
                .to_internal(PROTO_TCP, p.external, p.external_port)
                .unwrap();
            assert_eq!((t.ip, t.port), (p.internal, p.internal_port));
            let t = s
                .to_external(PROTO_TCP, p.internal, p.internal_port)
                .unwrap();
            assert_eq!((t.ip, t.port), (p.external, p.external_port));
        }
        // A router with 8 floating IPs: of 10 000 tenant addresses, at most 8 bits' worth pass.
        let few = StaticNat::new(&fips[..8], &[]).unwrap();
        let passed = (0..10_000)
            .filter(|i| few.outside.may_contain_v4(host([10, 2, 0, 0], *i)))
            .count();
        assert!(passed <= 400, "{passed} of 10 000 passed the filter");
    }

    #[test]
    fn static_nat_conflicts() {
        use StaticNatError as E;
        let f = fip("203.0.113.9", "10.0.0.5");
        let p = pf(PROTO_TCP, "203.0.113.10", 2222, "10.0.0.6", 22);
        let cases: [(&[FloatingIp], &[PortForward], E); 7] = [
            (
                &[f, fip("203.0.113.9", "10.0.0.8")],
                &[],
                E::DuplicateFloatingIp(a("203.0.113.9")),
            ),
            (
                &[f, fip("203.0.113.8", "10.0.0.5")],
                &[],
                E::InternalHasTwoFloatingIps(a("10.0.0.5")),
            ),
            (
                &[f],
                &[pf(PROTO_TCP, "203.0.113.9", 1, "10.0.0.6", 22)],
                E::FloatingIpForwarded(a("203.0.113.9")),
            ),
            (
                &[f],
                &[pf(PROTO_TCP, "203.0.113.10", 1, "10.0.0.5", 22)],
                E::ForwardTargetHasFloatingIp(a("10.0.0.5")),
            ),
            (
                &[],
                &[p, pf(PROTO_TCP, "203.0.113.10", 2222, "10.0.0.7", 22)],
                E::DuplicateForward(PROTO_TCP, a("203.0.113.10"), 2222),
            ),
            (
                &[],
                &[p, pf(PROTO_TCP, "203.0.113.10", 2223, "10.0.0.6", 22)],
                E::DuplicateForwardTarget(PROTO_TCP, a("10.0.0.6"), 22),
            ),
            (
                &[],
                &[pf(PROTO_ICMP, "203.0.113.10", 1, "10.0.0.6", 1)],
                E::BadProtocol(PROTO_ICMP),
            ),
        ];
        for (fips, pfs, want) in cases {
            assert_eq!(StaticNat::new(fips, pfs).unwrap_err(), want);
        }
        assert_eq!(
            StaticNat::new(&[], &[pf(PROTO_UDP, "203.0.113.10", 0, "10.0.0.6", 1)]).unwrap_err(),
            E::ZeroPort
        );
    }
}
