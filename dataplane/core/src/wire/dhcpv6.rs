//! DHCPv6 client/server messages (RFC 8415) with the options a server for directly attached
//! clients needs: identifiers, IA_NA address leases, status, rapid commit, and the DNS server
//! and domain search list options of RFC 3646.
//!
//! ```text
//! message:        | msg-type (1) | transaction-id (3) | options ...
//! option:         | option-code (2) | option-len (2) | option-data (option-len bytes) |
//!
//! IA_NA (3):      | IAID (4) | T1 (4) | T2 (4) | IA_NA-options ...
//! IA Address (5): | IPv6 address (16) | preferred lifetime (4) | valid lifetime (4) | options ...
//! Status (13):    | status-code (2) | status-message (UTF-8, not terminated) |
//! ```
//!
//! Options nest: an IA_NA carries IA Address and Status Code options, an IA Address may carry a
//! Status Code. [`Dhcpv6Options`] walks any level without allocating; a nested level is walked
//! by calling it again on the `options` bytes of [`Dhcpv6Option::IaNa`] or
//! [`Dhcpv6Option::IaAddr`].
//!
//! [`Dhcpv6RequestRepr`] is what a server reads from a client's message, validated as RFC 8415
//! §16 requires (a message the RFC says to discard is `Malformed`); [`Dhcpv6ReplyRepr`] is the
//! Advertise or Reply it writes back.
//!
//! Not supported, by design (Weft answers the VMs on its own links):
//! - Relay messages (Relay-forward and Relay-reply, RFC 8415 §9): [`Dhcpv6Packet::new_checked`]
//!   returns `Malformed`.
//! - IA_TA and IA_PD: walked as [`Dhcpv6Option::Unknown`] and ignored by
//!   [`Dhcpv6RequestRepr`], except that they make an Information-request invalid.
//! - Authentication, Reconfigure and the Information Refresh Time option are not modelled.

use std::net::Ipv6Addr;
use std::slice::ChunksExact;

use super::bytes::{read_ipv6, read_u16, read_u32};
use super::{Error, MacAddr, Result};

/// UDP port clients listen on.
pub const CLIENT_PORT: u16 = 546;
/// UDP port servers and relay agents listen on.
pub const SERVER_PORT: u16 = 547;
/// The link-scoped multicast address clients send to (ff02::1:2).
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// Length of the fixed part of a client/server message: options start here.
pub const HEADER_LEN: usize = 4;
/// Shortest DUID: a 2-byte type and at least one byte (RFC 8415 §11.1).
pub const MIN_DUID_LEN: usize = 3;
/// Longest DUID: a 2-byte type and at most 128 bytes (RFC 8415 §11.1).
pub const MAX_DUID_LEN: usize = 130;
/// How many IA_NA options [`Dhcpv6RequestRepr`] keeps (see [`IaNaRequests`]).
pub const MAX_IA_NA: usize = 4;
/// A lifetime or T1/T2 of this value means infinity (RFC 8415 §7.7).
pub const INFINITY: u32 = u32::MAX;

/// Offsets in the message.
mod field {
    use crate::wire::Field;

    pub const MSG_TYPE: usize = 0;
    pub const XID: Field = 1..4;
}

/// Offsets in option data.
mod opt_field {
    use crate::wire::Field;

    pub const IAID: Field = 0..4;
    pub const T1: Field = 4..8;
    pub const T2: Field = 8..12;
    pub const IA_NA_OPTIONS: usize = 12;
    pub const IAADDR_ADDR: Field = 0..16;
    pub const IAADDR_PREFERRED: Field = 16..20;
    pub const IAADDR_VALID: Field = 20..24;
    pub const IAADDR_OPTIONS: usize = 24;
    pub const STATUS_CODE: Field = 0..2;
    pub const STATUS_MESSAGE: usize = 2;
}

/// Length of an option header (code and length).
const OPT_HEADER_LEN: usize = 4;

/// Option codes (RFC 8415 §21 and RFC 3646).
pub mod code {
    /// Client Identifier (a DUID).
    pub const CLIENT_ID: u16 = 1;
    /// Server Identifier (a DUID).
    pub const SERVER_ID: u16 = 2;
    /// Identity Association for Non-temporary Addresses.
    pub const IA_NA: u16 = 3;
    /// Identity Association for Temporary Addresses (obsoleted, not served).
    pub const IA_TA: u16 = 4;
    /// IA Address.
    pub const IA_ADDR: u16 = 5;
    /// Option Request.
    pub const ORO: u16 = 6;
    /// Preference.
    pub const PREFERENCE: u16 = 7;
    /// Elapsed Time.
    pub const ELAPSED_TIME: u16 = 8;
    /// Status Code.
    pub const STATUS_CODE: u16 = 13;
    /// Rapid Commit.
    pub const RAPID_COMMIT: u16 = 14;
    /// DNS Recursive Name Server (RFC 3646).
    pub const DNS_SERVERS: u16 = 23;
    /// Domain Search List (RFC 3646).
    pub const DOMAIN_LIST: u16 = 24;
    /// Identity Association for Prefix Delegation (not served).
    pub const IA_PD: u16 = 25;
    /// Information Refresh Time.
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
}

/// Status codes (RFC 8415 §21.13).
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0;
    /// Failure, reason unspecified.
    pub const UNSPEC_FAIL: u16 = 1;
    /// The server has no addresses available to assign to the IA.
    pub const NO_ADDRS_AVAIL: u16 = 2;
    /// Client record (binding) unavailable.
    pub const NO_BINDING: u16 = 3;
    /// The prefix for the address is not appropriate for the link.
    pub const NOT_ON_LINK: u16 = 4;
    /// The client must use multicast to reach the server.
    pub const USE_MULTICAST: u16 = 5;
    /// The server has no prefixes available for the IA_PD.
    pub const NO_PREFIX_AVAIL: u16 = 6;
}

/// The message type (RFC 8415 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dhcpv6MessageType {
    /// Solicit (1): a client looks for servers.
    Solicit,
    /// Advertise (2): a server offers service.
    Advertise,
    /// Request (3): a client asks a chosen server for addresses.
    Request,
    /// Confirm (4): a client asks whether its addresses are still on-link.
    Confirm,
    /// Renew (5): a client extends its leases with the server that gave them.
    Renew,
    /// Rebind (6): a client extends its leases with any server.
    Rebind,
    /// Reply (7): a server answers.
    Reply,
    /// Release (8): a client gives addresses up.
    Release,
    /// Decline (9): a client found addresses in use.
    Decline,
    /// Reconfigure (10): a server tells a client to renew.
    Reconfigure,
    /// Information-request (11): a client asks for configuration only.
    InformationRequest,
    /// Relay-forward (12), not supported.
    RelayForw,
    /// Relay-reply (13), not supported.
    RelayRepl,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Dhcpv6MessageType {
    fn from(v: u8) -> Self {
        use Dhcpv6MessageType as T;
        match v {
            1 => T::Solicit,
            2 => T::Advertise,
            3 => T::Request,
            4 => T::Confirm,
            5 => T::Renew,
            6 => T::Rebind,
            7 => T::Reply,
            8 => T::Release,
            9 => T::Decline,
            10 => T::Reconfigure,
            11 => T::InformationRequest,
            12 => T::RelayForw,
            13 => T::RelayRepl,
            v => T::Unknown(v),
        }
    }
}

impl From<Dhcpv6MessageType> for u8 {
    fn from(v: Dhcpv6MessageType) -> u8 {
        use Dhcpv6MessageType as T;
        match v {
            T::Solicit => 1,
            T::Advertise => 2,
            T::Request => 3,
            T::Confirm => 4,
            T::Renew => 5,
            T::Rebind => 6,
            T::Reply => 7,
            T::Release => 8,
            T::Decline => 9,
            T::Reconfigure => 10,
            T::InformationRequest => 11,
            T::RelayForw => 12,
            T::RelayRepl => 13,
            T::Unknown(v) => v,
        }
    }
}

/// A view of a DHCPv6 client/server message (the UDP payload).
///
/// After [`new_checked`](Self::new_checked) no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Dhcpv6Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on one shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Dhcpv6Packet { buffer }
    }

    /// Wraps `buffer`, checking it (see [`check_len`](Self::check_len)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than [`HEADER_LEN`]; `Malformed` for a relay
    /// message (Relay-forward or Relay-reply), whose header this view does not model. The
    /// options are checked only as they are read.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        match self.msg_type() {
            Dhcpv6MessageType::RelayForw | Dhcpv6MessageType::RelayRepl => Err(Error::Malformed),
            _ => Ok(()),
        }
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Dhcpv6MessageType {
        Dhcpv6MessageType::from(self.buffer.as_ref()[field::MSG_TYPE])
    }

    /// Transaction id (24 bits).
    #[inline]
    pub fn xid(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::XID];
        b.iter().fold(0u32, |x, &byte| (x << 8) | u32::from(byte))
    }

    /// The options in wire form.
    #[inline]
    pub fn options_raw(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Iterates over the top-level options (see [`Dhcpv6Options`]).
    #[inline]
    pub fn options(&self) -> Dhcpv6Options<'_> {
        Dhcpv6Options::new(self.options_raw())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Dhcpv6Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: Dhcpv6MessageType) {
        self.buffer.as_mut()[field::MSG_TYPE] = u8::from(v);
    }

    /// Sets the transaction id from the low 24 bits of `v`.
    #[inline]
    pub fn set_xid(&mut self, v: u32) {
        let [_, b @ ..] = v.to_be_bytes();
        self.buffer.as_mut()[field::XID].copy_from_slice(&b);
    }

    /// The options, mutably.
    #[inline]
    pub fn options_raw_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// One DHCPv6 option.
///
/// Every variant's contents are validated when decoded (lengths, and the encoding of a domain
/// search list), so the walkers ([`oro_codes`], [`ipv6_addrs`], [`domain_names`]) cannot fail.
/// Nested options are not decoded: walk them with [`Dhcpv6Options::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhcpv6Option<'a> {
    /// Client Identifier (1): a DUID of [`MIN_DUID_LEN`] to [`MAX_DUID_LEN`] bytes.
    ClientId(&'a [u8]),
    /// Server Identifier (2): a DUID of [`MIN_DUID_LEN`] to [`MAX_DUID_LEN`] bytes.
    ServerId(&'a [u8]),
    /// Identity Association for Non-temporary Addresses (3).
    IaNa {
        /// Identity association id, chosen by the client.
        iaid: u32,
        /// Seconds until the client renews (0: server's choice).
        t1: u32,
        /// Seconds until the client rebinds (0: server's choice).
        t2: u32,
        /// The nested options (IA Address, Status Code), in wire form.
        options: &'a [u8],
    },
    /// IA Address (5), normally nested in an IA_NA.
    IaAddr {
        /// The address.
        addr: Ipv6Addr,
        /// Preferred lifetime in seconds.
        preferred: u32,
        /// Valid lifetime in seconds.
        valid: u32,
        /// The nested options (Status Code), in wire form.
        options: &'a [u8],
    },
    /// Option Request (6): option codes, two bytes each; walk with [`oro_codes`].
    Oro(&'a [u8]),
    /// Preference (7): 255 makes the client pick this server at once.
    Preference(u8),
    /// Elapsed Time (8) in hundredths of a second.
    ElapsedTime(u16),
    /// Rapid Commit (14): the client accepts a two-message exchange.
    RapidCommit,
    /// Status Code (13).
    StatusCode {
        /// The code (see [`status`]).
        code: u16,
        /// The message (UTF-8 by the RFC; not checked).
        message: &'a [u8],
    },
    /// DNS Recursive Name Servers (23): addresses, 16 bytes each; walk with [`ipv6_addrs`].
    DnsServers(&'a [u8]),
    /// Domain Search List (24): uncompressed DNS names; walk with [`domain_names`].
    DomainList(&'a [u8]),
    /// Any other option, with its data.
    Unknown {
        /// Option code.
        code: u16,
        /// Option data.
        data: &'a [u8],
    },
}

/// `data` if it is a DUID of valid length, or `Malformed`.
#[inline]
fn duid(data: &[u8]) -> Result<&[u8]> {
    if (MIN_DUID_LEN..=MAX_DUID_LEN).contains(&data.len()) {
        Ok(data)
    } else {
        Err(Error::Malformed)
    }
}

impl<'a> Dhcpv6Option<'a> {
    /// Decodes the data of an option of type `code`.
    fn decode(code: u16, data: &'a [u8]) -> Result<Dhcpv6Option<'a>> {
        Ok(match code {
            code::CLIENT_ID => Dhcpv6Option::ClientId(duid(data)?),
            code::SERVER_ID => Dhcpv6Option::ServerId(duid(data)?),
            code::IA_NA => {
                let options = data
                    .get(opt_field::IA_NA_OPTIONS..)
                    .ok_or(Error::Malformed)?;
                Dhcpv6Option::IaNa {
                    iaid: read_u32(data, opt_field::IAID),
                    t1: read_u32(data, opt_field::T1),
                    t2: read_u32(data, opt_field::T2),
                    options,
                }
            }
            code::IA_ADDR => {
                let options = data
                    .get(opt_field::IAADDR_OPTIONS..)
                    .ok_or(Error::Malformed)?;
                Dhcpv6Option::IaAddr {
                    addr: read_ipv6(data, opt_field::IAADDR_ADDR),
                    preferred: read_u32(data, opt_field::IAADDR_PREFERRED),
                    valid: read_u32(data, opt_field::IAADDR_VALID),
                    options,
                }
            }
            code::ORO if data.len().is_multiple_of(2) => Dhcpv6Option::Oro(data),
            code::PREFERENCE => match *data {
                [p] => Dhcpv6Option::Preference(p),
                _ => return Err(Error::Malformed),
            },
            code::ELAPSED_TIME => match *data {
                [hi, lo] => Dhcpv6Option::ElapsedTime(u16::from_be_bytes([hi, lo])),
                _ => return Err(Error::Malformed),
            },
            code::RAPID_COMMIT if data.is_empty() => Dhcpv6Option::RapidCommit,
            code::STATUS_CODE => {
                let message = data
                    .get(opt_field::STATUS_MESSAGE..)
                    .ok_or(Error::Malformed)?;
                Dhcpv6Option::StatusCode {
                    code: read_u16(data, opt_field::STATUS_CODE),
                    message,
                }
            }
            code::DNS_SERVERS if data.len().is_multiple_of(16) => Dhcpv6Option::DnsServers(data),
            code::DOMAIN_LIST if DomainNames::valid(data) => Dhcpv6Option::DomainList(data),
            code::ORO | code::RAPID_COMMIT | code::DNS_SERVERS | code::DOMAIN_LIST => {
                return Err(Error::Malformed);
            }
            code => Dhcpv6Option::Unknown { code, data },
        })
    }
}

/// The option framing walk: yields each option's code and data. `Truncated` for an option
/// whose header or data runs past the buffer, after which it stops.
#[derive(Debug, Clone)]
struct RawOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawOptions<'a> {
    type Item = Result<(u16, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let framed = self
            .rest
            .split_at_checked(OPT_HEADER_LEN)
            .and_then(|(h, after)| {
                let code = read_u16(h, 0..2);
                let len = usize::from(read_u16(h, 2..4));
                let (data, rest) = after.split_at_checked(len)?;
                Some((code, data, rest))
            });
        Some(match framed {
            Some((code, data, rest)) => {
                self.rest = rest;
                Ok((code, data))
            }
            None => {
                self.rest = &[];
                Err(Error::Truncated)
            }
        })
    }
}

/// An iterator over DHCPv6 options at one level of nesting, allocation-free.
///
/// An option whose header or data runs past the buffer yields `Truncated`, and the walk
/// stops. A well-framed option with an invalid body (a DUID of the wrong length, an IA_NA
/// shorter than 12 bytes, DNS servers not a multiple of 16 bytes, a badly encoded domain
/// list...) yields `Malformed`, and the walk goes on.
#[derive(Debug, Clone)]
pub struct Dhcpv6Options<'a> {
    raw: RawOptions<'a>,
}

impl<'a> Dhcpv6Options<'a> {
    /// Iterates over the options in `options`: a message's options, or the nested options of
    /// an IA_NA or IA Address.
    #[inline]
    pub fn new(options: &'a [u8]) -> Dhcpv6Options<'a> {
        Dhcpv6Options {
            raw: RawOptions { rest: options },
        }
    }
}

impl<'a> Iterator for Dhcpv6Options<'a> {
    type Item = Result<Dhcpv6Option<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.raw
                .next()?
                .and_then(|(code, data)| Dhcpv6Option::decode(code, data)),
        )
    }
}

/// An iterator over the option codes of an [`Dhcpv6Option::Oro`] slice.
#[derive(Debug, Clone)]
pub struct OroCodes<'a> {
    chunks: ChunksExact<'a, u8>,
}

impl Iterator for OroCodes<'_> {
    type Item = u16;

    #[inline]
    fn next(&mut self) -> Option<u16> {
        match *self.chunks.next()? {
            [hi, lo] => Some(u16::from_be_bytes([hi, lo])),
            _ => None,
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

/// The option codes in an [`Dhcpv6Option::Oro`] slice (a trailing odd byte is ignored).
#[inline]
pub fn oro_codes(data: &[u8]) -> OroCodes<'_> {
    OroCodes {
        chunks: data.chunks_exact(2),
    }
}

/// An iterator over IPv6 addresses packed 16 bytes each.
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

/// The addresses in a [`Dhcpv6Option::DnsServers`] slice (a trailing partial address is
/// ignored).
#[inline]
pub fn ipv6_addrs(data: &[u8]) -> Ipv6Addrs<'_> {
    Ipv6Addrs {
        chunks: data.chunks_exact(16),
    }
}

/// Longest label of a DNS name (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
/// Longest DNS name in wire form, length bytes and root label included (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 255;

/// An iterator over the names of a [`Dhcpv6Option::DomainList`] slice, each in DNS wire form
/// (length-prefixed labels, then the zero-length root label). Stops at the first invalid name
/// (there is none in a decoded option).
#[derive(Debug, Clone)]
pub struct DomainNames<'a> {
    rest: &'a [u8],
}

impl<'a> DomainNames<'a> {
    /// Splits the first name off `data`: labels of 1 to 63 bytes (no compression pointers)
    /// ending with the root label, at most 255 bytes in all.
    fn split_name(data: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        let mut at = 0usize;
        loop {
            let len = usize::from(*data.get(at)?);
            if len == 0 {
                let end = at + 1;
                return if end <= MAX_NAME_LEN {
                    data.split_at_checked(end)
                } else {
                    None
                };
            }
            if len > MAX_LABEL_LEN {
                return None;
            }
            at += 1 + len;
        }
    }

    /// Whether `data` is a sequence of valid names and nothing else.
    fn valid(data: &[u8]) -> bool {
        let mut rest = data;
        while !rest.is_empty() {
            match DomainNames::split_name(rest) {
                Some((_, r)) => rest = r,
                None => return false,
            }
        }
        true
    }
}

impl<'a> Iterator for DomainNames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match DomainNames::split_name(self.rest) {
            Some((name, rest)) => {
                self.rest = rest;
                Some(name)
            }
            None => {
                self.rest = &[];
                None
            }
        }
    }
}

/// The names in a [`Dhcpv6Option::DomainList`] slice.
#[inline]
pub fn domain_names(data: &[u8]) -> DomainNames<'_> {
    DomainNames { rest: data }
}

/// An iterator over the labels of one name in DNS wire form, root label excluded.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, after) = self.rest.split_first()?;
        match after.split_at_checked(usize::from(len)) {
            Some((label, rest)) if len != 0 => {
                self.rest = rest;
                Some(label)
            }
            _ => {
                self.rest = &[];
                None
            }
        }
    }
}

/// The labels of `name`, a name in DNS wire form (as [`domain_names`] yields).
#[inline]
pub fn name_labels(name: &[u8]) -> Labels<'_> {
    Labels { rest: name }
}

/// The DUID-LL (type 3, hardware type 1: Ethernet) of `mac` (RFC 8415 §11.4): a stable
/// server identifier derived from a link-layer address.
pub fn duid_ll(mac: MacAddr) -> [u8; 10] {
    let [a, b, c, d, e, f] = mac.octets();
    [0, 3, 0, 1, a, b, c, d, e, f]
}

/// One IA_NA of a client's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IaNaRequest<'a> {
    /// Identity association id.
    pub iaid: u32,
    /// T1 the client would like (a hint; 0: none).
    pub t1: u32,
    /// T2 the client would like (a hint; 0: none).
    pub t2: u32,
    /// The nested options in wire form (already validated); see
    /// [`addresses`](Self::addresses).
    pub options: &'a [u8],
}

impl<'a> IaNaRequest<'a> {
    /// The IA Addresses in this IA_NA: (address, preferred lifetime, valid lifetime). In a
    /// Solicit or Request they are hints; in a Renew, Rebind, Release, Decline or Confirm the
    /// addresses the client holds.
    pub fn addresses(&self) -> impl Iterator<Item = (Ipv6Addr, u32, u32)> + 'a {
        Dhcpv6Options::new(self.options).filter_map(|o| match o {
            Ok(Dhcpv6Option::IaAddr {
                addr,
                preferred,
                valid,
                ..
            }) => Some((addr, preferred, valid)),
            _ => None,
        })
    }
}

/// The IA_NAs of a client's message, kept without allocation: the first [`MAX_IA_NA`]; any
/// further ones are ignored (counted in [`ignored`](Self::ignored)), as if the client had not
/// sent them. A server's reply then lacks those IAs, and the client asks again for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IaNaRequests<'a> {
    items: [IaNaRequest<'a>; MAX_IA_NA],
    len: usize,
    ignored: usize,
}

impl<'a> IaNaRequests<'a> {
    /// Adds `ia`, or counts it as ignored when full.
    fn push(&mut self, ia: IaNaRequest<'a>) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = ia;
                self.len += 1;
            }
            None => self.ignored += 1,
        }
    }

    /// The IA_NAs kept, in message order.
    #[inline]
    pub fn as_slice(&self) -> &[IaNaRequest<'a>] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    /// Number of IA_NAs kept.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message had no IA_NA.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of IA_NAs past the first [`MAX_IA_NA`], ignored.
    #[inline]
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// Iterates over the IA_NAs kept.
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, IaNaRequest<'a>> {
        self.as_slice().iter()
    }
}

impl<'s, 'a> IntoIterator for &'s IaNaRequests<'a> {
    type Item = &'s IaNaRequest<'a>;
    type IntoIter = std::slice::Iter<'s, IaNaRequest<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What a server reads from a client's message.
///
/// Only the first Client Identifier, Server Identifier and Option Request options count. An
/// invalid option among those read here (identifiers, IA_NA and everything nested in it, ORO,
/// Rapid Commit) makes the whole message invalid; invalid options of other codes are ignored.
///
/// Checks left to the server: that a Server Identifier, when present, is its own DUID (RFC 8415
/// §16: otherwise discard), and that the message came to the right address (a Solicit,
/// Confirm, Rebind or Information-request should be multicast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcpv6RequestRepr<'a> {
    /// Message type: a client message (Solicit, Request, Confirm, Renew, Rebind, Release,
    /// Decline, Information-request).
    pub msg_type: Dhcpv6MessageType,
    /// Transaction id (24 bits), echoed in the reply.
    pub xid: u32,
    /// Client Identifier (DUID), echoed in the reply.
    pub client_id: Option<&'a [u8]>,
    /// Server Identifier (DUID): the server the client addresses.
    pub server_id: Option<&'a [u8]>,
    /// The IA_NA options.
    pub ia_na: IaNaRequests<'a>,
    /// Option Request: option codes, two bytes each; see [`requests`](Self::requests).
    pub oro: Option<&'a [u8]>,
    /// Rapid Commit: the client accepts a Reply straight to its Solicit.
    pub rapid_commit: bool,
}

impl<'a> Dhcpv6RequestRepr<'a> {
    /// Reads a client's message. `Truncated` if an option runs past the end of its buffer (or
    /// of the IA_NA it is nested in); `Malformed` if an option read here has an invalid body,
    /// if the message is not a client message, or if RFC 8415 §16 says to discard it:
    ///
    /// | message             | Client Identifier | Server Identifier | IA options |
    /// |---------------------|-------------------|-------------------|------------|
    /// | Solicit             | required          | forbidden         |            |
    /// | Request, Renew      | required          | required          |            |
    /// | Release, Decline    | required          | required          |            |
    /// | Confirm, Rebind     | required          | forbidden         |            |
    /// | Information-request |                   |                   | forbidden  |
    pub fn parse(packet: &Dhcpv6Packet<&'a [u8]>) -> Result<Dhcpv6RequestRepr<'a>> {
        use Dhcpv6MessageType as T;
        packet.check_len()?;
        let msg_type = packet.msg_type();
        let options = packet.buffer.get(HEADER_LEN..).unwrap_or(&[]);

        let mut client_id = None;
        let mut server_id = None;
        let mut ia_na = IaNaRequests::default();
        let mut any_ia = false;
        let mut oro = None;
        let mut rapid_commit = false;
        for opt in (RawOptions { rest: options }) {
            let (code, data) = opt?;
            match code {
                code::IA_TA | code::IA_PD => any_ia = true,
                code::CLIENT_ID
                | code::SERVER_ID
                | code::IA_NA
                | code::ORO
                | code::RAPID_COMMIT => match Dhcpv6Option::decode(code, data)? {
                    Dhcpv6Option::ClientId(id) => _ = client_id.get_or_insert(id),
                    Dhcpv6Option::ServerId(id) => _ = server_id.get_or_insert(id),
                    Dhcpv6Option::IaNa {
                        iaid,
                        t1,
                        t2,
                        options,
                    } => {
                        check_nested(options, 0)?;
                        any_ia = true;
                        ia_na.push(IaNaRequest {
                            iaid,
                            t1,
                            t2,
                            options,
                        });
                    }
                    Dhcpv6Option::Oro(codes) => _ = oro.get_or_insert(codes),
                    Dhcpv6Option::RapidCommit => rapid_commit = true,
                    _ => {}
                },
                _ => {}
            }
        }

        let (client, server) = (client_id.is_some(), server_id.is_some());
        let ok = match msg_type {
            T::Solicit | T::Confirm | T::Rebind => client && !server,
            T::Request | T::Renew | T::Release | T::Decline => client && server,
            T::InformationRequest => !any_ia,
            _ => false,
        };
        if !ok {
            return Err(Error::Malformed);
        }
        Ok(Dhcpv6RequestRepr {
            msg_type,
            xid: packet.xid(),
            client_id,
            server_id,
            ia_na,
            oro,
            rapid_commit,
        })
    }

    /// Whether the Option Request asks for option `code`.
    pub fn requests(&self, code: u16) -> bool {
        self.oro.is_some_and(|o| oro_codes(o).any(|c| c == code))
    }
}

/// Checks the options nested in an IA_NA (`depth` 0) or an IA Address (`depth` 1): framing,
/// bodies, and one more level under each IA Address.
fn check_nested(options: &[u8], depth: u8) -> Result<()> {
    for opt in Dhcpv6Options::new(options) {
        if let Dhcpv6Option::IaAddr { options, .. } = opt? {
            if depth > 0 {
                return Err(Error::Malformed);
            }
            check_nested(options, depth + 1)?;
        }
    }
    Ok(())
}

/// One IA_NA of a server's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaNaReply<'a> {
    /// The client's IAID.
    pub iaid: u32,
    /// Seconds until the client renews (0: client's choice). At most `t2` unless either is 0.
    pub t1: u32,
    /// Seconds until the client rebinds (0: client's choice).
    pub t2: u32,
    /// The leased addresses: (address, preferred lifetime, valid lifetime), the preferred
    /// lifetime at most the valid one. A lifetime of 0 withdraws an address.
    pub addresses: &'a [(Ipv6Addr, u32, u32)],
    /// A Status Code for this IA (code, message), such as ([`status::NO_ADDRS_AVAIL`], "...").
    pub status: Option<(u16, &'a str)>,
}

/// A server's Advertise or Reply as a value, to emit.
///
/// Options are written in this order: Client Identifier, Server Identifier, each IA_NA (its
/// IA Addresses, then its Status Code), Status Code, Preference, Rapid Commit, Domain Search
/// List, DNS Servers. Empty lists write no option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcpv6ReplyRepr<'a> {
    /// Advertise or Reply.
    pub msg_type: Dhcpv6MessageType,
    /// The client's transaction id (24 bits).
    pub xid: u32,
    /// The server's DUID (for example [`duid_ll`] of its MAC).
    pub server_id: &'a [u8],
    /// The client's DUID, echoed.
    pub client_id: &'a [u8],
    /// One entry per IA_NA of the client's message.
    pub ia_na: &'a [IaNaReply<'a>],
    /// A top-level Status Code (code, message).
    pub status: Option<(u16, &'a str)>,
    /// DNS recursive name servers (23).
    pub dns_servers: &'a [Ipv6Addr],
    /// Domain search list (24): names such as `"example.com"` (a final dot is allowed). Each
    /// label must be 1 to 63 bytes and each name at most 255 bytes in wire form.
    pub domain_search: &'a [&'a str],
    /// Rapid Commit: set in a Reply to a Solicit that asked for it.
    pub rapid_commit: bool,
    /// Preference (7), for an Advertise.
    pub preference: Option<u8>,
}

/// A bounds-checked cursor over an output buffer.
#[derive(Debug)]
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    /// Appends `bytes`; `Truncated` if they do not fit.
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.at.checked_add(bytes.len()).ok_or(Error::Truncated)?;
        let dst = self.buf.get_mut(self.at..end).ok_or(Error::Truncated)?;
        dst.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    /// Appends an option header; `Malformed` if `len` does not fit 16 bits.
    fn header(&mut self, code: u16, len: usize) -> Result<()> {
        let len = u16::try_from(len).map_err(|_| Error::Malformed)?;
        self.put(&code.to_be_bytes())?;
        self.put(&len.to_be_bytes())
    }

    /// Appends a Status Code option.
    fn status(&mut self, (code, message): (u16, &str)) -> Result<()> {
        self.header(code::STATUS_CODE, status_body_len(message))?;
        self.put(&code.to_be_bytes())?;
        self.put(message.as_bytes())
    }
}

/// Length of a Status Code option's data.
#[inline]
fn status_body_len(message: &str) -> usize {
    2usize.saturating_add(message.len())
}

/// Length of an optional Status Code option, header included.
#[inline]
fn status_len(status: Option<(u16, &str)>) -> usize {
    status.map_or(0, |(_, m)| {
        OPT_HEADER_LEN.saturating_add(status_body_len(m))
    })
}

/// Length of an IA Address option (with no nested options), header included.
const IAADDR_LEN: usize = OPT_HEADER_LEN + opt_field::IAADDR_OPTIONS;

impl IaNaReply<'_> {
    /// Length of the IA_NA option's data.
    fn body_len(&self) -> usize {
        opt_field::IA_NA_OPTIONS
            .saturating_add(self.addresses.len().saturating_mul(IAADDR_LEN))
            .saturating_add(status_len(self.status))
    }

    /// Writes the IA_NA option.
    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.header(code::IA_NA, self.body_len())?;
        w.put(&self.iaid.to_be_bytes())?;
        w.put(&self.t1.to_be_bytes())?;
        w.put(&self.t2.to_be_bytes())?;
        for &(addr, preferred, valid) in self.addresses {
            w.header(code::IA_ADDR, opt_field::IAADDR_OPTIONS)?;
            w.put(&addr.octets())?;
            w.put(&preferred.to_be_bytes())?;
            w.put(&valid.to_be_bytes())?;
        }
        if let Some(status) = self.status {
            w.status(status)?;
        }
        Ok(())
    }
}

/// `name` without one final dot.
#[inline]
fn trim_root(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Length of `name` in DNS wire form: each label with its length byte, and the root label.
/// Meaningful only for a name [`check_name`] accepts.
#[inline]
fn name_wire_len(name: &str) -> usize {
    trim_root(name).len().saturating_add(2)
}

/// `Malformed` unless `name` is non-empty, has labels of 1 to 63 bytes, and is at most 255
/// bytes in wire form.
fn check_name(name: &str) -> Result<()> {
    let trimmed = trim_root(name);
    let labels_ok = trimmed
        .split('.')
        .all(|l| (1..=MAX_LABEL_LEN).contains(&l.len()));
    if labels_ok && !trimmed.is_empty() && name_wire_len(name) <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(Error::Malformed)
    }
}

/// Writes `name` (checked by [`check_name`]) in DNS wire form.
fn write_name(w: &mut Writer<'_>, name: &str) -> Result<()> {
    for label in trim_root(name).split('.') {
        let len = u8::try_from(label.len()).map_err(|_| Error::Malformed)?;
        w.put(&[len])?;
        w.put(label.as_bytes())?;
    }
    w.put(&[0])
}

impl<'a> Dhcpv6ReplyRepr<'a> {
    /// A reply with the given identity and no other content. Fill in the rest with struct
    /// update syntax (`Dhcpv6ReplyRepr { ia_na: &ias, ..Dhcpv6ReplyRepr::new(..) }`).
    pub fn new(
        msg_type: Dhcpv6MessageType,
        xid: u32,
        server_id: &'a [u8],
        client_id: &'a [u8],
    ) -> Dhcpv6ReplyRepr<'a> {
        Dhcpv6ReplyRepr {
            msg_type,
            xid,
            server_id,
            client_id,
            ia_na: &[],
            status: None,
            dns_servers: &[],
            domain_search: &[],
            rapid_commit: false,
            preference: None,
        }
    }

    /// Length of the DNS Servers option's data.
    fn dns_body_len(&self) -> usize {
        self.dns_servers.len().saturating_mul(16)
    }

    /// Length of the Domain Search List option's data.
    fn domains_body_len(&self) -> usize {
        self.domain_search
            .iter()
            .fold(0usize, |n, name| n.saturating_add(name_wire_len(name)))
    }

    /// Number of bytes [`emit`](Self::emit) writes when it succeeds.
    pub fn buffer_len(&self) -> usize {
        let opt = |present: bool, body: usize| {
            if present {
                OPT_HEADER_LEN.saturating_add(body)
            } else {
                0
            }
        };
        let ias = self
            .ia_na
            .iter()
            .fold(0usize, |n, ia| n.saturating_add(opt(true, ia.body_len())));
        [
            HEADER_LEN,
            opt(true, self.client_id.len()),
            opt(true, self.server_id.len()),
            ias,
            status_len(self.status),
            opt(self.preference.is_some(), 1),
            opt(self.rapid_commit, 0),
            opt(!self.domain_search.is_empty(), self.domains_body_len()),
            opt(!self.dns_servers.is_empty(), self.dns_body_len()),
        ]
        .into_iter()
        .fold(0usize, usize::saturating_add)
    }

    /// Checks that the reply can be emitted: `Malformed` if the message type is not Advertise
    /// or Reply; a DUID is not 3 to 130 bytes; an IA_NA has T1 over T2 (both non-zero) or an
    /// address whose preferred lifetime exceeds its valid lifetime (RFC 8415 §21.4, §21.6:
    /// clients discard those); a domain name is invalid (see
    /// [`domain_search`](Self::domain_search)); or an option would exceed 65535 bytes.
    pub fn check(&self) -> Result<()> {
        let fits = |len: usize| len <= usize::from(u16::MAX);
        let ok = matches!(
            self.msg_type,
            Dhcpv6MessageType::Advertise | Dhcpv6MessageType::Reply
        ) && duid(self.server_id).is_ok()
            && duid(self.client_id).is_ok()
            && self.status.is_none_or(|(_, m)| fits(status_body_len(m)))
            && fits(self.dns_body_len())
            && fits(self.domains_body_len())
            && self.ia_na.iter().all(|ia| {
                (ia.t1 <= ia.t2 || ia.t1 == 0 || ia.t2 == 0)
                    && ia.addresses.iter().all(|&(_, p, v)| p <= v)
                    && fits(ia.body_len())
            });
        if !ok {
            return Err(Error::Malformed);
        }
        self.domain_search.iter().try_for_each(|n| check_name(n))
    }

    /// Writes the message into `packet`'s buffer, returning its length
    /// ([`buffer_len`](Self::buffer_len)). Bytes of the buffer past that length are left alone.
    ///
    /// Never panics: `Malformed` if [`check`](Self::check) fails (nothing is written);
    /// `Truncated` if the buffer is shorter than [`buffer_len`](Self::buffer_len) (it may then
    /// be partly written).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Dhcpv6Packet<T>,
    ) -> Result<usize> {
        self.check()?;
        let len = self.buffer_len();
        let buf = packet
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::Truncated)?;
        let mut w = Writer { buf, at: 0 };
        let [_, xid @ ..] = self.xid.to_be_bytes();
        w.put(&[u8::from(self.msg_type)])?;
        w.put(&xid)?;
        w.header(code::CLIENT_ID, self.client_id.len())?;
        w.put(self.client_id)?;
        w.header(code::SERVER_ID, self.server_id.len())?;
        w.put(self.server_id)?;
        for ia in self.ia_na {
            ia.write(&mut w)?;
        }
        if let Some(status) = self.status {
            w.status(status)?;
        }
        if let Some(p) = self.preference {
            w.header(code::PREFERENCE, 1)?;
            w.put(&[p])?;
        }
        if self.rapid_commit {
            w.header(code::RAPID_COMMIT, 0)?;
        }
        if !self.domain_search.is_empty() {
            w.header(code::DOMAIN_LIST, self.domains_body_len())?;
            for name in self.domain_search {
                write_name(&mut w, name)?;
            }
        }
        if !self.dns_servers.is_empty() {
            w.header(code::DNS_SERVERS, self.dns_body_len())?;
            for a in self.dns_servers {
                w.put(&a.octets())?;
            }
        }
        debug_assert_eq!(w.at, len, "DHCPv6 buffer_len and emit disagree");
        Ok(w.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from ISC dhclient 4.4.3 (`dhclient -6`, Debian's default request list) talking
    // to dnsmasq 2.90 on a veth pair between two network namespaces: UDP payloads. The client's
    // MAC is 52:54:00:12:34:56, its DUID a DUID-LLT; the server's DUID is the DUID-LL of
    // 02:00:00:00:00:01.
    //
    // Solicit: client id, ORO [23 24 39 31], elapsed time 0, IA_NA 0x123456 (T1 3600, T2 5400).
    const SOLICIT: [u8; 56] = [
        0x01, 0x8d, 0xe2, 0x05, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x32, 0x95, 0x36,
        0x07, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x06, 0x00, 0x08, 0x00, 0x17, 0x00, 0x18,
        0x00, 0x27, 0x00, 0x1f, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x0c, 0x00,
        0x12, 0x34, 0x56, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x15, 0x18,
    ];
    // Advertise: client id, server id, IA_NA (T1 1800, T2 3150, IA Address 2001:db8::1f9,
    // lifetimes 3600), status Success "success", preference 0, domain list example.com, DNS
    // server 2001:db8::53.
    const ADVERTISE: [u8; 135] = [
        0x02, 0x8d, 0xe2, 0x05, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x32, 0x95, 0x36,
        0x07, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 0x28, 0x00, 0x12, 0x34, 0x56, 0x00,
        0x00, 0x07, 0x08, 0x00, 0x00, 0x0c, 0x4e, 0x00, 0x05, 0x00, 0x18, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf9, 0x00, 0x00, 0x0e,
        0x10, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x0d, 0x00, 0x09, 0x00, 0x00, 0x73, 0x75, 0x63, 0x63,
        0x65, 0x73, 0x73, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, 0x18, 0x00, 0x0d, 0x07, 0x65, 0x78,
        0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x17, 0x00, 0x10, 0x20,
        0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53,
    ];
    // Request: client id, server id, ORO, elapsed time, IA_NA with the hint 2001:db8::1f9
    // (lifetimes 7200, 7500).
    const REQUEST: [u8; 98] = [
        0x03, 0x4a, 0xa3, 0x32, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x32, 0x95, 0x36,
        0x07, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x08, 0x00, 0x17, 0x00, 0x18, 0x00,
        0x27, 0x00, 0x1f, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x28, 0x00, 0x12,
        0x34, 0x56, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x15, 0x18, 0x00, 0x05, 0x00, 0x18, 0x20,
        0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf9,
        0x00, 0x00, 0x1c, 0x20, 0x00, 0x00, 0x1d, 0x4c,
    ];
    // Reply to the Request: the Advertise without the preference.
    const REPLY: [u8; 130] = [
        0x07, 0x4a, 0xa3, 0x32, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x32, 0x95, 0x36,
        0x07, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 0x28, 0x00, 0x12, 0x34, 0x56, 0x00,
        0x00, 0x07, 0x08, 0x00, 0x00, 0x0c, 0x4e, 0x00, 0x05, 0x00, 0x18, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf9, 0x00, 0x00, 0x0e,
        0x10, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x0d, 0x00, 0x09, 0x00, 0x00, 0x73, 0x75, 0x63, 0x63,
        0x65, 0x73, 0x73, 0x00, 0x18, 0x00, 0x0d, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
        0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x17, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53,
    ];
    // Release (`dhclient -6 -r`): the IA_NA with its address, all lifetimes 0.
    const RELEASE: [u8; 98] = [
        0x08, 0x9a, 0x62, 0x2f, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x32, 0x95, 0x36,
        0x07, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x08, 0x00, 0x17, 0x00, 0x18, 0x00,
        0x27, 0x00, 0x1f, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x28, 0x00, 0x12,
        0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x18, 0x20,
        0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf9,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // Reply to the Release: status Success "release received".
    const RELEASE_REPLY: [u8; 58] = [
        0x07, 0x9a, 0x62, 0x2f, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x32, 0x95, 0x36,
        0x07, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0d, 0x00, 0x12, 0x00, 0x00, 0x72, 0x65, 0x6c,
        0x65, 0x61, 0x73, 0x65, 0x20, 0x72, 0x65, 0x63, 0x65, 0x69, 0x76, 0x65, 0x64,
    ];
    // Information-request (`dhclient -6 -S`): client id (a DUID-LL), ORO, elapsed time.
    const INFO_REQUEST: [u8; 36] = [
        0x0b, 0x7b, 0x23, 0xc6, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x52, 0x54, 0x00,
        0x12, 0x34, 0x56, 0x00, 0x06, 0x00, 0x08, 0x00, 0x17, 0x00, 0x18, 0x00, 0x27, 0x00, 0x1f,
        0x00, 0x08, 0x00, 0x02, 0x00, 0x00,
    ];
    // Reply to it: domain list, DNS server, information refresh time 3600 (option 32).
    const INFO_REPLY: [u8; 77] = [
        0x07, 0x7b, 0x23, 0xc6, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x52, 0x54, 0x00,
        0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x18, 0x00, 0x0d, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03,
        0x63, 0x6f, 0x6d, 0x00, 0x00, 0x17, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53, 0x00, 0x20, 0x00, 0x04, 0x00, 0x00,
        0x0e, 0x10,
    ];

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const CLIENT_DUID: [u8; 14] = [
        0x00, 0x01, 0x00, 0x01, 0x32, 0x95, 0x36, 0x07, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
    ];
    const IAID: u32 = 0x0012_3456;
    const ORO: [u8; 8] = [0, 23, 0, 24, 0, 39, 0, 31];

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn request(bytes: &[u8]) -> Result<Dhcpv6RequestRepr<'_>> {
        Dhcpv6RequestRepr::parse(&Dhcpv6Packet::new_checked(bytes)?)
    }

    /// Up to 16 options of `bytes`, as an array (no allocation).
    fn walk(bytes: &[u8]) -> ([Option<Result<Dhcpv6Option<'_>>>; 16], usize) {
        let mut out = [None; 16];
        let mut n = 0;
        for (slot, o) in out.iter_mut().zip(Dhcpv6Options::new(bytes)) {
            *slot = Some(o);
            n += 1;
        }
        (out, n)
    }

    /// Copies `parts` one after another into `buf`, returning the length.
    fn concat(buf: &mut [u8], parts: &[&[u8]]) -> usize {
        let mut at = 0;
        for p in parts {
            buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        at
    }

    #[test]
    fn parse_solicit() {
        let p = Dhcpv6Packet::new_checked(&SOLICIT[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.xid()),
            (Dhcpv6MessageType::Solicit, 0x8d_e205)
        );
        assert_eq!(p.options_raw(), &SOLICIT[4..]);
        let (opts, n) = walk(p.options_raw());
        assert_eq!(n, 4);
        assert_eq!(
            opts[..4],
            [
                Some(Ok(Dhcpv6Option::ClientId(&CLIENT_DUID))),
                Some(Ok(Dhcpv6Option::Oro(&ORO))),
                Some(Ok(Dhcpv6Option::ElapsedTime(0))),
                Some(Ok(Dhcpv6Option::IaNa {
                    iaid: IAID,
                    t1: 3600,
                    t2: 5400,
                    options: &[]
                })),
            ]
        );
        assert!(oro_codes(&ORO).eq([23, 24, 39, 31]));

        let r = Dhcpv6RequestRepr::parse(&p).unwrap();
        assert_eq!(r.msg_type, Dhcpv6MessageType::Solicit);
        assert_eq!(r.xid, 0x8d_e205);
        assert_eq!((r.client_id, r.server_id), (Some(&CLIENT_DUID[..]), None));
        assert_eq!((r.oro, r.rapid_commit), (Some(&ORO[..]), false));
        assert!(r.requests(code::DNS_SERVERS) && r.requests(code::DOMAIN_LIST));
        assert!(!r.requests(code::PREFERENCE));
        assert_eq!((r.ia_na.len(), r.ia_na.ignored()), (1, 0));
        let ia = r.ia_na.as_slice()[0];
        assert_eq!((ia.iaid, ia.t1, ia.t2), (IAID, 3600, 5400));
        assert_eq!(ia.addresses().count(), 0);
    }

    #[test]
    fn parse_request_release_info_request() {
        let server_duid = duid_ll(SERVER_MAC);
        let r = request(&REQUEST).unwrap();
        assert_eq!((r.msg_type, r.xid), (Dhcpv6MessageType::Request, 0x4a_a332));
        assert_eq!(r.client_id, Some(&CLIENT_DUID[..]));
        assert_eq!(r.server_id, Some(&server_duid[..]));
        assert_eq!(r.oro, Some(&ORO[..]));
        let ias = r.ia_na;
        assert_eq!(ias.len(), 1);
        for ia in &ias {
            assert_eq!((ia.iaid, ia.t1, ia.t2), (IAID, 3600, 5400));
            assert!(ia.addresses().eq([(a("2001:db8::1f9"), 7200, 7500)]));
        }

        let r = request(&RELEASE).unwrap();
        assert_eq!((r.msg_type, r.xid), (Dhcpv6MessageType::Release, 0x9a_622f));
        assert_eq!(r.server_id, Some(&server_duid[..]));
        let ia = r.ia_na.iter().next().unwrap();
        assert_eq!((ia.t1, ia.t2), (0, 0));
        assert!(ia.addresses().eq([(a("2001:db8::1f9"), 0, 0)]));

        let r = request(&INFO_REQUEST).unwrap();
        assert_eq!(r.msg_type, Dhcpv6MessageType::InformationRequest);
        assert_eq!((r.client_id, r.server_id), (Some(&duid_ll(MAC)[..]), None));
        assert!(r.ia_na.is_empty());
        assert!(r.requests(code::DOMAIN_LIST));
    }

    #[test]
    fn parse_server_messages() {
        let server_duid = duid_ll(SERVER_MAC);
        for (bytes, t) in [
            (&ADVERTISE[..], Dhcpv6MessageType::Advertise),
            (&REPLY[..], Dhcpv6MessageType::Reply),
        ] {
            let p = Dhcpv6Packet::new_checked(bytes).unwrap();
            assert_eq!(p.msg_type(), t);
            let mut it = p.options();
            assert_eq!(it.next(), Some(Ok(Dhcpv6Option::ClientId(&CLIENT_DUID))));
            assert_eq!(it.next(), Some(Ok(Dhcpv6Option::ServerId(&server_duid))));
            let Some(Ok(Dhcpv6Option::IaNa {
                iaid,
                t1,
                t2,
                options,
            })) = it.next()
            else {
                panic!()
            };
            assert_eq!((iaid, t1, t2, options.len()), (IAID, 1800, 3150, 28));
            let mut nested = Dhcpv6Options::new(options);
            assert_eq!(
                nested.next(),
                Some(Ok(Dhcpv6Option::IaAddr {
                    addr: a("2001:db8::1f9"),
                    preferred: 3600,
                    valid: 3600,
                    options: &[]
                }))
            );
            assert_eq!(nested.next(), None);
            let success = Dhcpv6Option::StatusCode {
                code: status::SUCCESS,
                message: b"success",
            };
            assert_eq!(it.next(), Some(Ok(success)));
            if t == Dhcpv6MessageType::Advertise {
                assert_eq!(it.next(), Some(Ok(Dhcpv6Option::Preference(0))));
            }
            let Some(Ok(Dhcpv6Option::DomainList(list))) = it.next() else {
                panic!()
            };
            let mut names = domain_names(list);
            let name = names.next().unwrap();
            assert_eq!(name, b"\x07example\x03com\x00");
            assert!(name_labels(name).eq([&b"example"[..], b"com"]));
            assert_eq!(names.next(), None);
            let Some(Ok(Dhcpv6Option::DnsServers(dns))) = it.next() else {
                panic!()
            };
            assert_eq!(ipv6_addrs(dns).len(), 1);
            assert!(ipv6_addrs(dns).eq([a("2001:db8::53")]));
            assert_eq!(it.next(), None);
            // A server's message is not a client's.
            assert_eq!(Dhcpv6RequestRepr::parse(&p), Err(Error::Malformed));
        }
        let (opts, n) = walk(&INFO_REPLY[4..]);
        assert_eq!(n, 5);
        assert_eq!(
            opts[4],
            Some(Ok(Dhcpv6Option::Unknown {
                code: code::INFORMATION_REFRESH_TIME,
                data: &[0, 0, 0x0e, 0x10]
            }))
        );
    }

    const ADDR_LEASE: [(Ipv6Addr, u32, u32); 1] = [(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x1f9),
        3600,
        3600,
    )];
    const DNS: [Ipv6Addr; 1] = [Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)];

    #[test]
    fn emit_reproduces_dnsmasq() {
        let server_duid = duid_ll(SERVER_MAC);
        let ias = [IaNaReply {
            iaid: IAID,
            t1: 1800,
            t2: 3150,
            addresses: &ADDR_LEASE,
            status: None,
        }];
        let advertise = Dhcpv6ReplyRepr {
            ia_na: &ias,
            status: Some((status::SUCCESS, "success")),
            preference: Some(0),
            dns_servers: &DNS,
            domain_search: &["example.com"],
            ..Dhcpv6ReplyRepr::new(
                Dhcpv6MessageType::Advertise,
                0x8d_e205,
                &server_duid,
                &CLIENT_DUID,
            )
        };
        let reply = Dhcpv6ReplyRepr {
            msg_type: Dhcpv6MessageType::Reply,
            xid: 0x4a_a332,
            preference: None,
            domain_search: &["example.com."],
            ..advertise
        };
        let release_reply = Dhcpv6ReplyRepr {
            status: Some((status::SUCCESS, "release received")),
            ..Dhcpv6ReplyRepr::new(
                Dhcpv6MessageType::Reply,
                0x9a_622f,
                &server_duid,
                &CLIENT_DUID,
            )
        };
        for (r, bytes) in [
            (advertise, &ADVERTISE[..]),
            (reply, &REPLY),
            (release_reply, &RELEASE_REPLY),
        ] {
            assert_eq!(r.buffer_len(), bytes.len());
            let mut buf = [0xaau8; 160];
            let n = r
                .emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..]))
                .unwrap();
            assert_eq!(&buf[..n], bytes);
            assert_eq!(buf[n..], [0xaa; 160][n..]);
        }
    }

    const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
    const LEASES: [(Ipv6Addr, u32, u32); 2] = [
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10),
            1800,
            INFINITY,
        ),
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11), 0, 0),
    ];
    const DNS2: [Ipv6Addr; 2] = [
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
    ];
    const DOMAINS: [&str; 2] = ["weft.internal", "a.example."];

    fn full_reply<'a>(ias: &'a [IaNaReply<'a>]) -> Dhcpv6ReplyRepr<'a> {
        Dhcpv6ReplyRepr {
            ia_na: ias,
            status: Some((status::SUCCESS, "")),
            dns_servers: &DNS2,
            domain_search: &DOMAINS,
            rapid_commit: true,
            preference: Some(255),
            ..Dhcpv6ReplyRepr::new(
                Dhcpv6MessageType::Reply,
                0x00ab_cdef,
                &SERVER_DUID,
                &[0, 3, 7],
            )
        }
    }

    fn full_ias() -> [IaNaReply<'static>; 2] {
        [
            IaNaReply {
                iaid: 1,
                t1: 900,
                t2: 1440,
                addresses: &LEASES,
                status: Some((status::SUCCESS, "ok")),
            },
            IaNaReply {
                iaid: 2,
                t1: 0,
                t2: 0,
                addresses: &[],
                status: Some((status::NO_ADDRS_AVAIL, "none")),
            },
        ]
    }

    #[test]
    fn emit_every_option() {
        let ias = full_ias();
        let r = full_reply(&ias);
        #[rustfmt::skip]
        let expected: [u8; 212] = [
            7, 0xab, 0xcd, 0xef,
            0, 1, 0, 3, 0, 3, 7,                                   // client id
            0, 2, 0, 10, 0, 3, 0, 1, 2, 0, 0, 0, 0, 1,             // server id
            0, 3, 0, 76, 0, 0, 0, 1, 0, 0, 0x03, 0x84, 0, 0, 0x05, 0xa0, // IA_NA 1
            0, 5, 0, 24, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            0, 0, 0x07, 0x08, 0xff, 0xff, 0xff, 0xff,
            0, 5, 0, 24, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11,
            0, 0, 0, 0, 0, 0, 0, 0,
            0, 13, 0, 4, 0, 0, b'o', b'k',
            0, 3, 0, 22, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,       // IA_NA 2
            0, 13, 0, 6, 0, 2, b'n', b'o', b'n', b'e',
            0, 13, 0, 2, 0, 0,                                     // status
            0, 7, 0, 1, 255,                                       // preference
            0, 14, 0, 0,                                           // rapid commit
            0, 24, 0, 26,                                          // domain search list
            4, b'w', b'e', b'f', b't', 8, b'i', b'n', b't', b'e', b'r', b'n', b'a', b'l', 0,
            1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
            0, 23, 0, 32,                                          // DNS servers
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
            0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(r.buffer_len(), expected.len());
        let mut buf = [0u8; 256];
        let n = r
            .emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(buf[..n], expected);
    }

    #[test]
    fn round_trip() {
        let ias = full_ias();
        let r = full_reply(&ias);
        let mut buf = [0u8; 256];
        let n = r
            .emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let p = Dhcpv6Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!((p.msg_type(), p.xid()), (r.msg_type, r.xid));
        let (opts, count) = walk(p.options_raw());
        assert_eq!(count, 9);
        let mut ia_seen = 0;
        for o in opts.into_iter().flatten() {
            match o.unwrap() {
                Dhcpv6Option::ClientId(id) => assert_eq!(id, r.client_id),
                Dhcpv6Option::ServerId(id) => assert_eq!(id, r.server_id),
                Dhcpv6Option::IaNa {
                    iaid,
                    t1,
                    t2,
                    options,
                } => {
                    let want = ias[ia_seen];
                    ia_seen += 1;
                    assert_eq!((iaid, t1, t2), (want.iaid, want.t1, want.t2));
                    let mut addrs = want.addresses.iter();
                    for n in Dhcpv6Options::new(options) {
                        match n.unwrap() {
                            Dhcpv6Option::IaAddr {
                                addr,
                                preferred,
                                valid,
                                options,
                            } => {
                                assert_eq!(Some(&(addr, preferred, valid)), addrs.next());
                                assert!(options.is_empty());
                            }
                            Dhcpv6Option::StatusCode { code, message } => {
                                let (c, m) = want.status.unwrap();
                                assert_eq!((code, message), (c, m.as_bytes()));
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                    assert_eq!(addrs.next(), None);
                }
                Dhcpv6Option::StatusCode { code, message } => {
                    assert_eq!((code, message), (status::SUCCESS, &b""[..]));
                }
                Dhcpv6Option::Preference(p) => assert_eq!(Some(p), r.preference),
                Dhcpv6Option::RapidCommit => assert!(r.rapid_commit),
                Dhcpv6Option::DomainList(list) => {
                    let mut names = domain_names(list);
                    let first = names.next().unwrap();
                    assert!(name_labels(first).eq([&b"weft"[..], b"internal"]));
                    let second = names.next().unwrap();
                    assert!(name_labels(second).eq([&b"a"[..], b"example"]));
                    assert_eq!(names.next(), None);
                }
                Dhcpv6Option::DnsServers(d) => assert!(ipv6_addrs(d).eq(DNS2)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ia_seen, 2);
        // As a client's Renew the same options parse, nested statuses included.
        buf[0] = 5;
        let q = request(&buf[..n]).unwrap();
        assert_eq!((q.msg_type, q.xid), (Dhcpv6MessageType::Renew, 0x00ab_cdef));
        assert_eq!(
            (q.client_id, q.server_id),
            (Some(r.client_id), Some(r.server_id))
        );
        assert_eq!((q.ia_na.len(), q.rapid_commit, q.oro), (2, true, None));
        let [first, second] = q.ia_na.as_slice() else {
            panic!()
        };
        assert!(first.addresses().eq(LEASES));
        assert_eq!((second.iaid, second.addresses().count()), (2, 0));
    }

    /// An IA_NA option with `iaid` and `nested` options.
    fn ia_na<'b>(buf: &'b mut [u8; 64], iaid: u8, nested: &[u8]) -> &'b [u8] {
        let len = 12 + nested.len();
        let header = [0, 3, 0, u8::try_from(len).unwrap(), 0, 0, 0, iaid];
        let n = concat(&mut buf[..], &[&header, &[0; 8], nested]);
        &buf[..n]
    }

    #[test]
    fn nested_ia_na() {
        // An IA Address with a nested status, and a status, in an IA_NA.
        #[rustfmt::skip]
        let nested: [u8; 42] = [
            0, 5, 0, 30, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            0, 0, 0, 1, 0, 0, 0, 2,
            0, 13, 0, 2, 0, 4,
            0, 13, 0, 4, 0, 1, b'n', b'o',
        ];
        let mut ia = [0u8; 64];
        let ia = ia_na(&mut ia, 9, &nested);
        let (opts, _) = walk(ia);
        let Some(Ok(Dhcpv6Option::IaNa { iaid, options, .. })) = opts[0] else {
            panic!()
        };
        assert_eq!((iaid, options), (9, &nested[..]));
        let (inner, n) = walk(options);
        assert_eq!(n, 2);
        let Some(Ok(Dhcpv6Option::IaAddr { addr, options, .. })) = inner[0] else {
            panic!()
        };
        assert_eq!(addr, a("fe80::1"));
        let status = Dhcpv6Option::StatusCode {
            code: status::NOT_ON_LINK,
            message: b"",
        };
        assert_eq!(walk(options).0[0], Some(Ok(status)));
        let status = Dhcpv6Option::StatusCode {
            code: status::UNSPEC_FAIL,
            message: b"no",
        };
        assert_eq!(inner[1], Some(Ok(status)));

        let mut msg = [0u8; 128];
        let n = concat(&mut msg, &[&SOLICIT[..40], ia]);
        let r = request(&msg[..n]).unwrap();
        assert!(r.ia_na.as_slice()[0].addresses().eq([(a("fe80::1"), 1, 2)]));

        // Errors inside an IA_NA: a nested option past its end, a short IA Address, an IA
        // Address inside an IA Address, a bad status.
        let mut bad = nested;
        bad[3] = 31;
        let mut ia_buf = [0u8; 64];
        let n = concat(&mut msg, &[&SOLICIT[..40], ia_na(&mut ia_buf, 9, &bad)]);
        assert_eq!(request(&msg[..n]), Err(Error::Truncated));
        let n = concat(
            &mut msg,
            &[&SOLICIT[..40], ia_na(&mut ia_buf, 9, &nested[..20])],
        );
        assert_eq!(request(&msg[..n]), Err(Error::Truncated));
        let mut bad = nested;
        bad[3] = 20;
        bad[24..28].copy_from_slice(&[0, 0, 0, 6]);
        let n = concat(&mut msg, &[&SOLICIT[..40], ia_na(&mut ia_buf, 9, &bad)]);
        assert_eq!(request(&msg[..n]), Err(Error::Malformed));
        let mut bad = nested;
        bad[28..32].copy_from_slice(&[0, 5, 0, 2]);
        let n = concat(&mut msg, &[&SOLICIT[..40], ia_na(&mut ia_buf, 9, &bad)]);
        assert_eq!(request(&msg[..n]), Err(Error::Malformed));
        let mut bad = nested;
        bad[37] = 1;
        bad[38..40].copy_from_slice(&[0, 0]);
        let n = concat(
            &mut msg,
            &[&SOLICIT[..40], ia_na(&mut ia_buf, 9, &bad[..39])],
        );
        assert_eq!(request(&msg[..n]), Err(Error::Malformed));
        // An IA_NA shorter than 12 bytes.
        let n = concat(&mut msg, &[&SOLICIT[..40], &[0, 3, 0, 11], &[0; 11]]);
        assert_eq!(request(&msg[..n]), Err(Error::Malformed));
    }

    #[test]
    fn at_most_four_ia_na() {
        let mut msg = [0u8; 256];
        let mut at = concat(&mut msg, &[&SOLICIT[..40]]);
        for iaid in 1..=6 {
            let mut ia = [0u8; 64];
            let ia = ia_na(&mut ia, iaid, &[]);
            msg[at..at + ia.len()].copy_from_slice(ia);
            at += ia.len();
        }
        let r = request(&msg[..at]).unwrap();
        assert_eq!((r.ia_na.len(), r.ia_na.ignored()), (MAX_IA_NA, 2));
        assert!(r.ia_na.iter().map(|ia| ia.iaid).eq([1, 2, 3, 4]));
    }

    #[test]
    fn rfc8415_section16_rules() {
        use Dhcpv6MessageType as T;
        let with_type = |bytes: &[u8], t: T| {
            let mut b = [0u8; 128];
            b[..bytes.len()].copy_from_slice(bytes);
            b[0] = u8::from(t);
            request(&b[..bytes.len()]).map(|r| r.msg_type)
        };
        // REQUEST has both identifiers, SOLICIT only the client's.
        for t in [T::Request, T::Renew, T::Release, T::Decline] {
            assert_eq!(with_type(&REQUEST, t), Ok(t));
            assert_eq!(with_type(&SOLICIT, t), Err(Error::Malformed), "{t:?}");
        }
        for t in [T::Solicit, T::Confirm, T::Rebind] {
            assert_eq!(with_type(&SOLICIT, t), Ok(t));
            assert_eq!(with_type(&REQUEST, t), Err(Error::Malformed), "{t:?}");
        }
        // Information-request: identifiers optional, no IA.
        assert_eq!(
            with_type(&REQUEST[..54], T::InformationRequest),
            Ok(T::InformationRequest)
        );
        assert_eq!(
            with_type(&REQUEST, T::InformationRequest),
            Err(Error::Malformed)
        );
        for ia_code in [code::IA_TA, code::IA_PD] {
            let mut b = [0u8; 64];
            let [hi, lo] = ia_code.to_be_bytes();
            let n = concat(&mut b, &[&INFO_REQUEST, &[hi, lo, 0, 4, 0, 0, 0, 1]]);
            assert_eq!(request(&b[..n]), Err(Error::Malformed));
        }
        assert!(request(&INFO_REQUEST[..4]).is_ok());
        // Without a client identifier (its code changed to an unknown one).
        let mut b = SOLICIT;
        b[5] = 0x99;
        assert_eq!(request(&b), Err(Error::Malformed));
        // Server messages, unknown types, relay messages.
        for t in [T::Advertise, T::Reply, T::Reconfigure, T::Unknown(200)] {
            assert_eq!(with_type(&REQUEST, t), Err(Error::Malformed), "{t:?}");
        }
        for t in [T::RelayForw, T::RelayRepl] {
            let mut b = REQUEST;
            b[0] = u8::from(t);
            assert_eq!(Dhcpv6Packet::new_checked(&b[..]), Err(Error::Malformed));
        }
        // Rapid commit, and a malformed one.
        let mut b = [0u8; 96];
        let n = concat(&mut b, &[&SOLICIT, &[0, 14, 0, 0]]);
        assert!(request(&b[..n]).unwrap().rapid_commit);
        b[n - 1] = 1;
        let n = concat(&mut b[n..], &[&[9]]) + n;
        assert_eq!(request(&b[..n]), Err(Error::Malformed));
        // The first identifier counts; a bad option that is not read is ignored.
        let n = concat(
            &mut b,
            &[&SOLICIT, &[0, 1, 0, 3, 0, 9, 9], &[0, 23, 0, 1, 0]],
        );
        assert_eq!(request(&b[..n]).unwrap().client_id, Some(&CLIENT_DUID[..]));
        // Short messages.
        assert_eq!(request(&SOLICIT[..3]), Err(Error::Truncated));
        assert_eq!(request(&SOLICIT[..30]), Err(Error::Truncated));
    }

    #[test]
    fn option_walk_errors() {
        let name64 = {
            let mut n = [b'a'; 66];
            n[0] = 64;
            n[65] = 0;
            n
        };
        let mut long_name = [0u8; 257];
        for chunk in long_name[..256].chunks_mut(64) {
            chunk[0] = 63;
            chunk[1..].fill(b'x');
        }
        // Four labels of 63 and the root: 257 bytes. Shortening the last label to 61 makes the
        // longest valid name, 255 bytes.
        let name255 = {
            let mut n = long_name;
            n[192] = 61;
            n[254] = 0;
            n
        };
        let name255 = &name255[..255];
        let cases: [(u16, &[u8], bool); 24] = [
            (code::CLIENT_ID, &[0, 1], false),
            (code::CLIENT_ID, &[0, 1, 2], true),
            (code::SERVER_ID, &[7; 130], true),
            (code::SERVER_ID, &[7; 131], false),
            (code::IA_NA, &[0; 11], false),
            (code::IA_ADDR, &[0; 23], false),
            (code::IA_ADDR, &[0; 24], true),
            (code::ORO, &[0, 23, 0], false),
            (code::ORO, &[], true),
            (code::PREFERENCE, &[], false),
            (code::PREFERENCE, &[1, 2], false),
            (code::ELAPSED_TIME, &[1], false),
            (code::RAPID_COMMIT, &[0], false),
            (code::STATUS_CODE, &[0], false),
            (code::DNS_SERVERS, &[0; 15], false),
            (code::DNS_SERVERS, &[0; 32], true),
            (code::DOMAIN_LIST, b"\x03com\x00\x01a\x00", true),
            (code::DOMAIN_LIST, b"\x03com", false),
            (code::DOMAIN_LIST, b"\x03com\x00\x01", false),
            (code::DOMAIN_LIST, b"\xc0\x0c", false),
            (code::DOMAIN_LIST, &name64, false),
            (code::DOMAIN_LIST, &long_name, false),
            (code::DOMAIN_LIST, name255, true),
            (999, &[1, 2, 3], true),
        ];
        for (c, data, ok) in cases {
            let mut buf = [0u8; 300];
            let [hi, lo] = c.to_be_bytes();
            let [lh, ll] = u16::try_from(data.len()).unwrap().to_be_bytes();
            // The option, then a valid one: the walk goes on after a bad body.
            let n = concat(&mut buf, &[&[hi, lo, lh, ll], data, &[0, 8, 0, 2, 0, 1]]);
            let (opts, count) = walk(&buf[..n]);
            assert_eq!(count, 2);
            assert_eq!(opts[0].unwrap().is_ok(), ok, "{c} {data:?}");
            assert_eq!(opts[1], Some(Ok(Dhcpv6Option::ElapsedTime(1))));
        }
        // A name cut short: the iterator stops; a valid list yields each name.
        assert_eq!(domain_names(b"\x03com").count(), 0);
        assert_eq!(domain_names(b"\x03com\x00\x01a\x00").count(), 2);
        assert!(name_labels(b"\x03com\x00").eq([&b"com"[..]]));
        assert_eq!(name_labels(b"\x05com").count(), 0);
        // Framing: a header or data past the end is Truncated, and the walk stops.
        for bytes in [&[0, 8, 0][..], &[0, 8, 0, 3, 0, 1], &[0, 8, 0, 2, 0, 1, 0]] {
            let (opts, n) = walk(bytes);
            assert_eq!(opts[n - 1], Some(Err(Error::Truncated)), "{bytes:?}");
        }
        assert_eq!(walk(&[]).1, 0);
    }

    #[test]
    fn domain_search_encoding() {
        let encode = |names: &[&str]| {
            let r = Dhcpv6ReplyRepr {
                domain_search: names,
                ..Dhcpv6ReplyRepr::new(Dhcpv6MessageType::Reply, 1, &SERVER_DUID, &SERVER_DUID)
            };
            let mut buf = [0u8; 600];
            let n = r.emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..]))?;
            assert_eq!(n, r.buffer_len());
            let mut out = [0u8; 300];
            let body = &buf[36..n];
            out[..body.len()].copy_from_slice(body);
            Ok::<_, Error>((out, body.len()))
        };
        let (out, n) = encode(&["example.com"]).unwrap();
        assert_eq!(&out[..n], b"\x07example\x03com\x00");
        assert_eq!(encode(&["example.com."]).unwrap().1, n);
        let label63 = "x".repeat(63);
        let longest = format!("{label63}.{label63}.{label63}.{}", "y".repeat(61));
        assert_eq!(longest.len(), 253);
        let (out, n) = encode(&[&longest]).unwrap();
        assert_eq!(n, 255);
        assert_eq!(domain_names(&out[..n]).count(), 1);
        let too_long = format!("{longest}y");
        let label64 = "z".repeat(64);
        for bad in ["", ".", "a..b", ".a", "a.b..", &label64, &too_long] {
            assert_eq!(encode(&[bad]).err(), Some(Error::Malformed), "{bad:?}");
            assert_eq!(
                encode(&["ok", bad]).err(),
                Some(Error::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn emit_refuses_invalid_replies() {
        let ias = full_ias();
        let ok = full_reply(&ias);
        let t1_over_t2 = [IaNaReply {
            t1: 2000,
            t2: 1000,
            ..ias[0]
        }];
        let t2_zero = [IaNaReply {
            t1: 2000,
            t2: 0,
            ..ias[0]
        }];
        let backwards = [(a("2001:db8::1"), 20, 10)];
        let bad_lifetimes = [IaNaReply {
            addresses: &backwards,
            ..ias[0]
        }];
        let long = "x".repeat(65534);
        let many_addrs = vec![(a("2001:db8::1"), 1, 1); 2341];
        let huge_ia = [IaNaReply {
            addresses: &many_addrs,
            status: None,
            ..ias[0]
        }];
        let many_dns = vec![a("2001:db8::1"); 4096];
        let long_names = vec!["x"; 21846];
        let bad = [
            Dhcpv6ReplyRepr {
                msg_type: Dhcpv6MessageType::Solicit,
                ..ok
            },
            Dhcpv6ReplyRepr {
                msg_type: Dhcpv6MessageType::RelayRepl,
                ..ok
            },
            Dhcpv6ReplyRepr {
                server_id: &[0, 1],
                ..ok
            },
            Dhcpv6ReplyRepr {
                client_id: &[0; 131],
                ..ok
            },
            Dhcpv6ReplyRepr {
                ia_na: &t1_over_t2,
                ..ok
            },
            Dhcpv6ReplyRepr {
                ia_na: &bad_lifetimes,
                ..ok
            },
            Dhcpv6ReplyRepr {
                status: Some((0, &long)),
                ..ok
            },
            Dhcpv6ReplyRepr {
                ia_na: &huge_ia,
                ..ok
            },
            Dhcpv6ReplyRepr {
                dns_servers: &many_dns,
                ..ok
            },
            Dhcpv6ReplyRepr {
                domain_search: &long_names,
                ..ok
            },
            Dhcpv6ReplyRepr {
                domain_search: &["a..b"],
                ..ok
            },
        ];
        for r in bad {
            let mut buf = [0xaau8; 256];
            assert_eq!(r.check(), Err(Error::Malformed));
            assert_eq!(
                r.emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..])),
                Err(Error::Malformed)
            );
            assert_eq!(buf, [0xaa; 256], "nothing written");
        }
        // Right at the limits.
        let fits_ia = [IaNaReply {
            addresses: &many_addrs[..2340],
            status: None,
            ..ias[0]
        }];
        let good = [
            Dhcpv6ReplyRepr {
                ia_na: &t2_zero,
                ..ok
            },
            Dhcpv6ReplyRepr {
                status: Some((0, &long[..65533])),
                ..ok
            },
            Dhcpv6ReplyRepr {
                ia_na: &fits_ia,
                ..ok
            },
            Dhcpv6ReplyRepr {
                dns_servers: &many_dns[..4095],
                ..ok
            },
            Dhcpv6ReplyRepr {
                domain_search: &long_names[..21845],
                ..ok
            },
            Dhcpv6ReplyRepr {
                client_id: &[0; 130],
                msg_type: Dhcpv6MessageType::Advertise,
                ..ok
            },
        ];
        let mut buf = vec![0u8; 70_000];
        for r in good {
            let n = r
                .emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..]))
                .unwrap();
            assert_eq!(n, r.buffer_len());
            assert!(
                Dhcpv6Packet::new_checked(&buf[..n])
                    .unwrap()
                    .options()
                    .all(|o| o.is_ok())
            );
        }
    }

    #[test]
    fn emit_into_short_buffers() {
        let ias = full_ias();
        let full = full_reply(&ias);
        let bare = Dhcpv6ReplyRepr::new(Dhcpv6MessageType::Reply, 1, &SERVER_DUID, &SERVER_DUID);
        for r in [full, bare] {
            let need = r.buffer_len();
            let mut buf = [0u8; 256];
            for len in 0..need {
                assert_eq!(
                    r.emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..len])),
                    Err(Error::Truncated),
                    "len {len}"
                );
            }
            assert_eq!(
                r.emit(&mut Dhcpv6Packet::new_unchecked(&mut buf[..need])),
                Ok(need)
            );
        }
    }

    #[test]
    fn duid_ll_and_numbers() {
        assert_eq!(
            duid_ll(MAC),
            [0, 3, 0, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        );
        assert_eq!(duid_ll(SERVER_MAC), SERVER_DUID);
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(Dhcpv6MessageType::from(v)), v);
        }
        assert_eq!(
            Dhcpv6MessageType::from(11),
            Dhcpv6MessageType::InformationRequest
        );
        assert_eq!(Dhcpv6MessageType::from(14), Dhcpv6MessageType::Unknown(14));
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 8];
        let mut p = Dhcpv6Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Dhcpv6MessageType::Reply);
        p.set_xid(0xff12_3456);
        p.options_raw_mut().copy_from_slice(&[0, 14, 0, 0]);
        assert_eq!(buf, [7, 0x12, 0x34, 0x56, 0, 14, 0, 0]);
        let p = Dhcpv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.xid()),
            (Dhcpv6MessageType::Reply, 0x12_3456)
        );
        assert_eq!(p.options().next(), Some(Ok(Dhcpv6Option::RapidCommit)));
        assert_eq!(p.into_inner().len(), 8);
    }

    /// Runs every reader over `bytes`; none may panic.
    fn read_everything(bytes: &[u8]) {
        fn walk_all(options: &[u8], depth: u8) {
            assert!(Dhcpv6Options::new(options).count() <= options.len());
            for o in Dhcpv6Options::new(options).flatten() {
                match o {
                    Dhcpv6Option::IaNa { options, .. } | Dhcpv6Option::IaAddr { options, .. }
                        if depth < 3 =>
                    {
                        walk_all(options, depth + 1);
                    }
                    Dhcpv6Option::Oro(d) => assert_eq!(oro_codes(d).count(), d.len() / 2),
                    Dhcpv6Option::DnsServers(d) => assert_eq!(ipv6_addrs(d).len(), d.len() / 16),
                    Dhcpv6Option::DomainList(d) => {
                        let total: usize = domain_names(d).map(<[u8]>::len).sum();
                        assert_eq!(total, d.len());
                        for name in domain_names(d) {
                            assert!(name_labels(name).count() < name.len());
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Ok(p) = Dhcpv6Packet::new_checked(bytes) {
            let _ = (p.msg_type(), p.xid());
            walk_all(p.options_raw(), 0);
            if let Ok(r) = Dhcpv6RequestRepr::parse(&p) {
                let _ = r.requests(23);
                for ia in &r.ia_na {
                    assert!(ia.addresses().count() <= ia.options.len() / 28);
                }
            }
        }
        let _ = (domain_names(bytes).count(), name_labels(bytes).count());
    }

    const SAMPLES: [&[u8]; 8] = [
        &SOLICIT,
        &ADVERTISE,
        &REQUEST,
        &REPLY,
        &RELEASE,
        &RELEASE_REPLY,
        &INFO_REQUEST,
        &INFO_REPLY,
    ];

    #[test]
    fn every_prefix_is_safe() {
        for sample in SAMPLES {
            for len in 0..=sample.len() {
                read_everything(&sample[..len]);
                assert_eq!(Dhcpv6Packet::new_checked(&sample[..len]).is_ok(), len >= 4);
            }
        }
    }

    #[test]
    fn every_byte_change_is_safe() {
        let mut buf = [0u8; 160];
        for sample in SAMPLES {
            let b = &mut buf[..sample.len()];
            for i in 0..sample.len() {
                for v in [0, 1, 2, 3, 5, 13, 24, 0x3f, 0x40, 0x80, 0xc0, 0xff] {
                    b.copy_from_slice(sample);
                    b[i] = v;
                    read_everything(b);
                }
            }
        }
    }
}
