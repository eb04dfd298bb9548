//! DHCPv4 messages (RFC 2131) with the options a DHCP server needs (RFC 2132), classless static
//! routes (RFC 3442) and the echoed client identifier (RFC 6842).
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+---------------+---------------+
//! |  op (1 or 2)  |  htype (1)    |  hlen (6)     |  hops         |
//! +---------------+---------------+---------------+---------------+
//! |                     xid (transaction id)                      |
//! +-------------------------------+-------------------------------+
//! |            secs               |B|        flags (zero)         |
//! +-------------------------------+-------------------------------+
//! |   ciaddr: client's address (only when it already has one)     |
//! |   yiaddr: "your" address (the one offered or acknowledged)    |
//! |   siaddr: next server          giaddr: relay agent            |
//! +---------------------------------------------------------------+
//! |   chaddr (16 bytes: the client's MAC, then zeroes)            |
//! |   sname (64 bytes)             file (128 bytes)               |
//! +---------------------------------------------------------------+
//! |   magic cookie 99.130.83.99    |  options ...  | 255 (end)    |
//! +---------------------------------------------------------------+
//!
//! option: | code | len | data (len bytes) |      pad (0) and end (255) are one byte
//! ```
//!
//! Roles: [`DhcpPacket`] is a view of any message; [`DhcpOptions`] walks its options without
//! allocating; [`DhcpRequestRepr`] is what a server reads from a client's message and
//! [`DhcpReplyRepr`] what it writes back (OFFER, ACK, NAK).
//!
//! Not supported, by design (Weft answers Ethernet VMs on their own link):
//! - Option overload (option 52, RFC 2132 §9.3): `sname` and `file` are never read as options;
//!   option 52 is reported as [`DhcpOption::Unknown`].
//! - Long options split over several occurrences (RFC 3396): each occurrence is a separate
//!   option; [`DhcpRequestRepr`] keeps the first of each code. Emission refuses any option
//!   longer than 255 bytes instead of splitting it.
//! - Plain BOOTP (no magic cookie) is `Malformed`; so are clients whose hardware is not
//!   Ethernet (htype 1, hlen 6).

use std::net::Ipv4Addr;
use std::slice::ChunksExact;

use super::bytes::{read_ipv4, read_u16, read_u32, write_ipv4, write_u16, write_u32};
use super::{Error, MacAddr, Result};

/// UDP port servers listen on.
pub const SERVER_PORT: u16 = 67;
/// UDP port clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// The four bytes that open the options field (RFC 2131 §3, 99.130.83.99).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Length of the fixed part, magic cookie included: options start here.
pub const HEADER_LEN: usize = 240;
/// The shortest message to send: BOOTP relay agents and some clients drop shorter ones
/// (RFC 1542 §2.1), so replies are padded to this length.
pub const MIN_MESSAGE_LEN: usize = 300;
/// The longest DHCP message every client accepts unless it sends a larger Maximum DHCP Message
/// Size option: 576-byte IP datagrams less the IP and UDP headers (RFC 2131 §2).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 548;
/// The broadcast bit of the flags field: the client cannot receive unicast before it has its
/// address, so the reply must be broadcast (RFC 2131 §4.1).
pub const FLAG_BROADCAST: u16 = 0x8000;
/// Hardware type of Ethernet (the `htype` field, RFC 1700).
pub const HTYPE_ETHERNET: u8 = 1;
/// Hardware address length of Ethernet (the `hlen` field).
const HLEN_ETHERNET: u8 = 6;

/// Offsets in the message.
mod field {
    use crate::wire::Field;

    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Field = 4..8;
    pub const SECS: Field = 8..10;
    pub const FLAGS: Field = 10..12;
    pub const CIADDR: Field = 12..16;
    pub const YIADDR: Field = 16..20;
    pub const SIADDR: Field = 20..24;
    pub const GIADDR: Field = 24..28;
    pub const CHADDR: Field = 28..44;
    pub const SNAME: Field = 44..108;
    pub const FILE: Field = 108..236;
    pub const MAGIC: Field = 236..240;
}

/// Option codes (RFC 2132 and the RFCs named on each).
pub mod code {
    /// Pad: one byte, no length.
    pub const PAD: u8 = 0;
    /// Subnet mask (RFC 2132 §3.3).
    pub const SUBNET_MASK: u8 = 1;
    /// Routers (RFC 2132 §3.5).
    pub const ROUTER: u8 = 3;
    /// Domain name servers (RFC 2132 §3.8).
    pub const DNS_SERVER: u8 = 6;
    /// Host name (RFC 2132 §3.14).
    pub const HOSTNAME: u8 = 12;
    /// Domain name (RFC 2132 §3.17).
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU (RFC 2132 §5.1).
    pub const INTERFACE_MTU: u8 = 26;
    /// Broadcast address (RFC 2132 §5.3).
    pub const BROADCAST_ADDRESS: u8 = 28;
    /// Requested IP address (RFC 2132 §9.1).
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time (RFC 2132 §9.2).
    pub const LEASE_TIME: u8 = 51;
    /// Option overload (RFC 2132 §9.3); not supported.
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type (RFC 2132 §9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier (RFC 2132 §9.7).
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list (RFC 2132 §9.8).
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Message (RFC 2132 §9.9).
    pub const MESSAGE: u8 = 56;
    /// Maximum DHCP message size (RFC 2132 §9.10).
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Renewal (T1) time (RFC 2132 §9.11).
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) time (RFC 2132 §9.12).
    pub const REBINDING_TIME: u8 = 59;
    /// Client identifier (RFC 2132 §9.14).
    pub const CLIENT_ID: u8 = 61;
    /// Classless static routes (RFC 3442).
    pub const CLASSLESS_STATIC_ROUTE: u8 = 121;
    /// End: one byte, closes the options.
    pub const END: u8 = 255;
}

/// The `op` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhcpOp {
    /// BOOTREQUEST (1): client to server.
    Request,
    /// BOOTREPLY (2): server to client.
    Reply,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for DhcpOp {
    fn from(v: u8) -> Self {
        match v {
            1 => DhcpOp::Request,
            2 => DhcpOp::Reply,
            v => DhcpOp::Unknown(v),
        }
    }
}

impl From<DhcpOp> for u8 {
    fn from(v: DhcpOp) -> u8 {
        match v {
            DhcpOp::Request => 1,
            DhcpOp::Reply => 2,
            DhcpOp::Unknown(v) => v,
        }
    }
}

/// The DHCP message type (option 53, RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhcpMessageType {
    /// DHCPDISCOVER (1): a client looks for servers.
    Discover,
    /// DHCPOFFER (2): a server offers an address.
    Offer,
    /// DHCPREQUEST (3): a client asks for (or renews) an address.
    Request,
    /// DHCPDECLINE (4): a client found the address in use.
    Decline,
    /// DHCPACK (5): a server commits the address.
    Ack,
    /// DHCPNAK (6): a server refuses the client's notion of its address.
    Nak,
    /// DHCPRELEASE (7): a client gives the address up.
    Release,
    /// DHCPINFORM (8): a client with an address asks for configuration only.
    Inform,
    /// Any other type (for example those of RFC 3203 and RFC 4388).
    Unknown(u8),
}

impl From<u8> for DhcpMessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => DhcpMessageType::Discover,
            2 => DhcpMessageType::Offer,
            3 => DhcpMessageType::Request,
            4 => DhcpMessageType::Decline,
            5 => DhcpMessageType::Ack,
            6 => DhcpMessageType::Nak,
            7 => DhcpMessageType::Release,
            8 => DhcpMessageType::Inform,
            v => DhcpMessageType::Unknown(v),
        }
    }
}

impl From<DhcpMessageType> for u8 {
    fn from(v: DhcpMessageType) -> u8 {
        match v {
            DhcpMessageType::Discover => 1,
            DhcpMessageType::Offer => 2,
            DhcpMessageType::Request => 3,
            DhcpMessageType::Decline => 4,
            DhcpMessageType::Ack => 5,
            DhcpMessageType::Nak => 6,
            DhcpMessageType::Release => 7,
            DhcpMessageType::Inform => 8,
            DhcpMessageType::Unknown(v) => v,
        }
    }
}

/// A view of a DHCP message (the UDP payload).
///
/// After [`new_checked`](Self::new_checked) no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    /// Wraps `buffer` without checking it; accessors may panic on one shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        DhcpPacket { buffer }
    }

    /// Wraps `buffer`, checking it (see [`check_len`](Self::check_len)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than [`HEADER_LEN`]; `Malformed` if the magic
    /// cookie is wrong (plain BOOTP, or not DHCP at all). The options are checked only as
    /// they are read.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        match data.get(field::MAGIC) {
            None => Err(Error::Truncated),
            Some(cookie) if cookie != MAGIC_COOKIE => Err(Error::Malformed),
            Some(_) => Ok(()),
        }
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message op code: request (client to server) or reply.
    #[inline]
    pub fn op(&self) -> DhcpOp {
        DhcpOp::from(self.buffer.as_ref()[field::OP])
    }

    /// Hardware address type ([`HTYPE_ETHERNET`] for Ethernet).
    #[inline]
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[field::HTYPE]
    }

    /// Hardware address length (6 for Ethernet).
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Relay agent hops.
    #[inline]
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }

    /// Transaction id, chosen by the client and echoed in replies.
    #[inline]
    pub fn xid(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::XID)
    }

    /// Seconds since the client began acquiring or renewing.
    #[inline]
    pub fn secs(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SECS)
    }

    /// The flags field (only [`FLAG_BROADCAST`] is defined).
    #[inline]
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS)
    }

    /// Whether the broadcast flag is set.
    #[inline]
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }

    /// Client's current address (only set in BOUND, RENEWING or REBINDING state).
    #[inline]
    pub fn ciaddr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::CIADDR)
    }

    /// "Your" address: the one the server offers or acknowledges.
    #[inline]
    pub fn yiaddr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::YIADDR)
    }

    /// Address of the next server to use in bootstrap.
    #[inline]
    pub fn siaddr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SIADDR)
    }

    /// Relay agent address (0.0.0.0 when not relayed).
    #[inline]
    pub fn giaddr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::GIADDR)
    }

    /// The raw 16-byte client hardware address field.
    #[inline]
    pub fn chaddr(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.buffer.as_ref()[field::CHADDR]);
        b
    }

    /// The client's MAC address, if the hardware is Ethernet (htype 1, hlen 6).
    pub fn client_mac(&self) -> Option<MacAddr> {
        if self.htype() == HTYPE_ETHERNET && self.hlen() == HLEN_ETHERNET {
            MacAddr::from_bytes(&self.buffer.as_ref()[field::CHADDR])
        } else {
            None
        }
    }

    /// The raw 64-byte server host name field (never read as options).
    #[inline]
    pub fn sname(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SNAME]
    }

    /// The raw 128-byte boot file name field (never read as options).
    #[inline]
    pub fn file(&self) -> &[u8] {
        &self.buffer.as_ref()[field::FILE]
    }

    /// The options field in wire form: everything after the magic cookie, including the end
    /// option and any padding after it.
    #[inline]
    pub fn options_raw(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Iterates over the options (see [`DhcpOptions`]).
    #[inline]
    pub fn options(&self) -> DhcpOptions<'_> {
        DhcpOptions::new(self.options_raw())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DhcpPacket<T> {
    /// Sets the op code.
    #[inline]
    pub fn set_op(&mut self, v: DhcpOp) {
        self.buffer.as_mut()[field::OP] = u8::from(v);
    }

    /// Sets the hardware address type.
    #[inline]
    pub fn set_htype(&mut self, v: u8) {
        self.buffer.as_mut()[field::HTYPE] = v;
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hlen(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the relay hops.
    #[inline]
    pub fn set_hops(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOPS] = v;
    }

    /// Sets the transaction id.
    #[inline]
    pub fn set_xid(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::XID, v);
    }

    /// Sets the seconds field.
    #[inline]
    pub fn set_secs(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SECS, v);
    }

    /// Sets the flags field.
    #[inline]
    pub fn set_flags(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::FLAGS, v);
    }

    /// Sets the client's current address.
    #[inline]
    pub fn set_ciaddr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::CIADDR, v);
    }

    /// Sets "your" address.
    #[inline]
    pub fn set_yiaddr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::YIADDR, v);
    }

    /// Sets the next server address.
    #[inline]
    pub fn set_siaddr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SIADDR, v);
    }

    /// Sets the relay agent address.
    #[inline]
    pub fn set_giaddr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::GIADDR, v);
    }

    /// Sets the raw 16-byte client hardware address field.
    #[inline]
    pub fn set_chaddr(&mut self, v: &[u8; 16]) {
        self.buffer.as_mut()[field::CHADDR].copy_from_slice(v);
    }

    /// Sets an Ethernet client address: htype 1, hlen 6, and `mac` followed by ten zero bytes
    /// in `chaddr`.
    pub fn set_client_mac(&mut self, mac: MacAddr) {
        self.set_htype(HTYPE_ETHERNET);
        self.set_hlen(HLEN_ETHERNET);
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac.octets());
        self.set_chaddr(&chaddr);
    }

    /// Writes the magic cookie.
    #[inline]
    pub fn set_magic_cookie(&mut self) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
    }

    /// The options field, mutably.
    #[inline]
    pub fn options_raw_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// One DHCP option.
///
/// Variants holding `&[u8]` keep the option's bytes; lists are validated when decoded, so
/// their walkers ([`ipv4_addrs`], [`classless_routes`]) cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpOption<'a> {
    /// Subnet mask (1).
    SubnetMask(Ipv4Addr),
    /// Routers (3): a non-empty multiple of 4 bytes; walk with [`ipv4_addrs`].
    Routers(&'a [u8]),
    /// Domain name servers (6): a non-empty multiple of 4 bytes; walk with [`ipv4_addrs`].
    DnsServers(&'a [u8]),
    /// Host name (12): at least one byte, not necessarily UTF-8.
    Hostname(&'a [u8]),
    /// Domain name (15): at least one byte.
    DomainName(&'a [u8]),
    /// Interface MTU (26): at least 68.
    InterfaceMtu(u16),
    /// Broadcast address (28).
    BroadcastAddress(Ipv4Addr),
    /// Requested IP address (50).
    RequestedIp(Ipv4Addr),
    /// Lease time in seconds (51; `u32::MAX`: infinite).
    LeaseTime(u32),
    /// DHCP message type (53).
    MessageType(DhcpMessageType),
    /// Server identifier (54).
    ServerId(Ipv4Addr),
    /// Parameter request list (55): the option codes the client asks for, at least one.
    ParameterRequestList(&'a [u8]),
    /// Message (56): human-readable text, at least one byte.
    Message(&'a [u8]),
    /// Maximum DHCP message size (57): at least 576.
    MaxMessageSize(u16),
    /// Renewal (T1) time in seconds (58).
    RenewalTime(u32),
    /// Rebinding (T2) time in seconds (59).
    RebindingTime(u32),
    /// Client identifier (61): at least two bytes (usually a type byte, then an identifier).
    ClientId(&'a [u8]),
    /// Classless static routes (121, RFC 3442): validated descriptors; walk with
    /// [`classless_routes`].
    ClasslessRoutes(&'a [u8]),
    /// Any other option (option overload, 52, included), with its data.
    Unknown {
        /// Option code.
        code: u8,
        /// Option data.
        data: &'a [u8],
    },
}

/// `data` as exactly `N` bytes, or `Malformed`.
#[inline]
fn exact<const N: usize>(data: &[u8]) -> Result<[u8; N]> {
    <[u8; N]>::try_from(data).map_err(|_| Error::Malformed)
}

/// `data` if it holds at least `min` bytes, or `Malformed`.
#[inline]
fn at_least(data: &[u8], min: usize) -> Result<&[u8]> {
    if data.len() >= min {
        Ok(data)
    } else {
        Err(Error::Malformed)
    }
}

/// `data` if it is a non-empty list of IPv4 addresses, or `Malformed`.
#[inline]
fn addr_list(data: &[u8]) -> Result<&[u8]> {
    if !data.is_empty() && data.len().is_multiple_of(4) {
        Ok(data)
    } else {
        Err(Error::Malformed)
    }
}

impl<'a> DhcpOption<'a> {
    /// Decodes the data of an option of type `code` (neither pad nor end).
    fn decode(code: u8, data: &'a [u8]) -> Result<DhcpOption<'a>> {
        let addr = |d: &[u8]| exact::<4>(d).map(Ipv4Addr::from);
        let u32_of = |d: &[u8]| exact::<4>(d).map(u32::from_be_bytes);
        Ok(match code {
            code::SUBNET_MASK => DhcpOption::SubnetMask(addr(data)?),
            code::ROUTER => DhcpOption::Routers(addr_list(data)?),
            code::DNS_SERVER => DhcpOption::DnsServers(addr_list(data)?),
            code::HOSTNAME => DhcpOption::Hostname(at_least(data, 1)?),
            code::DOMAIN_NAME => DhcpOption::DomainName(at_least(data, 1)?),
            code::INTERFACE_MTU => {
                let mtu = u16::from_be_bytes(exact(data)?);
                if mtu < 68 {
                    return Err(Error::Malformed);
                }
                DhcpOption::InterfaceMtu(mtu)
            }
            code::BROADCAST_ADDRESS => DhcpOption::BroadcastAddress(addr(data)?),
            code::REQUESTED_IP => DhcpOption::RequestedIp(addr(data)?),
            code::LEASE_TIME => DhcpOption::LeaseTime(u32_of(data)?),
            code::MESSAGE_TYPE => {
                let [t] = exact::<1>(data)?;
                DhcpOption::MessageType(DhcpMessageType::from(t))
            }
            code::SERVER_ID => DhcpOption::ServerId(addr(data)?),
            code::PARAMETER_REQUEST_LIST => DhcpOption::ParameterRequestList(at_least(data, 1)?),
            code::MESSAGE => DhcpOption::Message(at_least(data, 1)?),
            code::MAX_MESSAGE_SIZE => {
                let size = u16::from_be_bytes(exact(data)?);
                if size < 576 {
                    return Err(Error::Malformed);
                }
                DhcpOption::MaxMessageSize(size)
            }
            code::RENEWAL_TIME => DhcpOption::RenewalTime(u32_of(data)?),
            code::REBINDING_TIME => DhcpOption::RebindingTime(u32_of(data)?),
            code::CLIENT_ID => DhcpOption::ClientId(at_least(data, 2)?),
            code::CLASSLESS_STATIC_ROUTE => {
                // At least one descriptor (5 bytes: width 0 and a router), and whole ones.
                let mut walk = RouteDescriptors { rest: data };
                if data.len() < 5 || !walk.all(|d| d.is_ok()) {
                    return Err(Error::Malformed);
                }
                DhcpOption::ClasslessRoutes(data)
            }
            code => DhcpOption::Unknown { code, data },
        })
    }
}

/// The option framing walk: yields each option's code and data, skipping pad and stopping at
/// end. `Truncated` for an option whose length byte or data runs past the buffer, after which
/// it stops.
#[derive(Debug, Clone)]
struct RawOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawOptions<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, after) = self.rest.split_first()?;
            match code {
                code::PAD => self.rest = after,
                code::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let framed = after
                        .split_first()
                        .and_then(|(&len, body)| body.split_at_checked(usize::from(len)));
                    return Some(match framed {
                        Some((data, rest)) => {
                            self.rest = rest;
                            Ok((code, data))
                        }
                        None => {
                            self.rest = &[];
                            Err(Error::Truncated)
                        }
                    });
                }
            }
        }
    }
}

/// An iterator over DHCP options, allocation-free.
///
/// Pad options are skipped and the end option stops the walk (bytes after it are padding). A
/// length running past the buffer yields `Truncated`, and the walk stops. A well-framed option
/// with an invalid body (a known option of the wrong length, an MTU under 68, a bad classless
/// route) yields `Malformed`, and the walk goes on. A buffer that ends without an end option
/// simply ends the walk.
#[derive(Debug, Clone)]
pub struct DhcpOptions<'a> {
    raw: RawOptions<'a>,
}

impl<'a> DhcpOptions<'a> {
    /// Iterates over the options in `options` (the bytes after the magic cookie).
    #[inline]
    pub fn new(options: &'a [u8]) -> DhcpOptions<'a> {
        DhcpOptions {
            raw: RawOptions { rest: options },
        }
    }
}

impl<'a> Iterator for DhcpOptions<'a> {
    type Item = Result<DhcpOption<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.raw
                .next()?
                .and_then(|(code, data)| DhcpOption::decode(code, data)),
        )
    }
}

/// An iterator over IPv4 addresses packed 4 bytes each (a router or DNS server option). A
/// trailing partial address is ignored.
#[derive(Debug, Clone)]
pub struct Ipv4Addrs<'a> {
    chunks: ChunksExact<'a, u8>,
}

impl Iterator for Ipv4Addrs<'_> {
    type Item = Ipv4Addr;

    #[inline]
    fn next(&mut self) -> Option<Ipv4Addr> {
        let c = self.chunks.next()?;
        let mut a = [0u8; 4];
        a.copy_from_slice(c);
        Some(Ipv4Addr::from(a))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Ipv4Addrs<'_> {}

/// The addresses in a [`DhcpOption::Routers`] or [`DhcpOption::DnsServers`] slice.
#[inline]
pub fn ipv4_addrs(data: &[u8]) -> Ipv4Addrs<'_> {
    Ipv4Addrs {
        chunks: data.chunks_exact(4),
    }
}

/// A classless static route: destination network, prefix length, router.
pub type ClasslessRoute = (Ipv4Addr, u8, Ipv4Addr);

/// The netmask of a prefix length (at most 32).
#[inline]
fn prefix_mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix_len)))
        .unwrap_or(0)
}

/// Number of significant destination octets for a prefix length (RFC 3442 §5).
#[inline]
fn significant_octets(prefix_len: u8) -> usize {
    usize::from(prefix_len).div_ceil(8)
}

/// The RFC 3442 descriptor walk: `Malformed` on a width over 32 or a descriptor cut short,
/// after which it stops.
#[derive(Debug, Clone)]
struct RouteDescriptors<'a> {
    rest: &'a [u8],
}

impl Iterator for RouteDescriptors<'_> {
    type Item = Result<ClasslessRoute>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&width, after) = self.rest.split_first()?;
        let n = significant_octets(width);
        let parsed = if width > 32 {
            None
        } else {
            after.split_at_checked(n).and_then(|(dest, after)| {
                let (router, rest) = after.split_at_checked(4)?;
                let mut net = [0u8; 4];
                net.get_mut(..n)?.copy_from_slice(dest);
                let router = <[u8; 4]>::try_from(router).ok()?;
                Some(((Ipv4Addr::from(net), width, Ipv4Addr::from(router)), rest))
            })
        };
        Some(match parsed {
            Some((route, rest)) => {
                self.rest = rest;
                Ok(route)
            }
            None => {
                self.rest = &[];
                Err(Error::Malformed)
            }
        })
    }
}

/// An iterator over the routes of a [`DhcpOption::ClasslessRoutes`] slice: (network, prefix
/// length, router). Stops at the first invalid descriptor (there is none in a decoded option).
#[derive(Debug, Clone)]
pub struct ClasslessRoutes<'a> {
    walk: RouteDescriptors<'a>,
}

impl Iterator for ClasslessRoutes<'_> {
    type Item = ClasslessRoute;

    #[inline]
    fn next(&mut self) -> Option<ClasslessRoute> {
        self.walk.next()?.ok()
    }
}

/// The routes in a [`DhcpOption::ClasslessRoutes`] slice.
#[inline]
pub fn classless_routes(data: &[u8]) -> ClasslessRoutes<'_> {
    ClasslessRoutes {
        walk: RouteDescriptors { rest: data },
    }
}

/// What a server reads from a client's message (a BOOTREQUEST from an Ethernet client).
///
/// Only the first occurrence of each option counts. An invalid option among those read here
/// makes the whole message invalid (its error is returned); invalid options of other codes are
/// ignored. Whether the fields make sense for the message type (RFC 2131 §4.3: a REQUEST in
/// SELECTING state carries a server id and requested address, in RENEWING state neither, ...)
/// is the server's to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpRequestRepr<'a> {
    /// The DHCP message type (any value, including server-side and unknown types).
    pub message_type: DhcpMessageType,
    /// Transaction id.
    pub xid: u32,
    /// Flags field (see [`FLAG_BROADCAST`]).
    pub flags: u16,
    /// Client's current address (0.0.0.0 unless bound, renewing or rebinding).
    pub ciaddr: Ipv4Addr,
    /// Relay agent address (0.0.0.0 for a directly attached client).
    pub giaddr: Ipv4Addr,
    /// Client hardware address.
    pub client_mac: MacAddr,
    /// Requested IP address (50).
    pub requested_ip: Option<Ipv4Addr>,
    /// Server identifier (54): which server the client chose or addresses.
    pub server_id: Option<Ipv4Addr>,
    /// Client identifier (61), to be echoed in replies (RFC 6842).
    pub client_id: Option<&'a [u8]>,
    /// Host name (12).
    pub hostname: Option<&'a [u8]>,
    /// Parameter request list (55): option codes the client asks for.
    pub parameter_request_list: Option<&'a [u8]>,
    /// Maximum DHCP message size (57) the client accepts; [`DEFAULT_MAX_MESSAGE_LEN`] if
    /// absent.
    pub max_message_size: Option<u16>,
}

impl<'a> DhcpRequestRepr<'a> {
    /// Reads a client's message. `Malformed` if it is not a BOOTREQUEST (op 1), the hardware
    /// is not Ethernet (htype 1, hlen 6), the message type option is missing, or an option read
    /// here has an invalid body; `Truncated` if the buffer is short or an option runs past its
    /// end (before the end option).
    pub fn parse(packet: &DhcpPacket<&'a [u8]>) -> Result<DhcpRequestRepr<'a>> {
        packet.check_len()?;
        if packet.op() != DhcpOp::Request {
            return Err(Error::Malformed);
        }
        let client_mac = packet.client_mac().ok_or(Error::Malformed)?;
        let options = packet.buffer.get(HEADER_LEN..).unwrap_or(&[]);

        let mut message_type = None;
        let mut requested_ip = None;
        let mut server_id = None;
        let mut client_id = None;
        let mut hostname = None;
        let mut parameter_request_list = None;
        let mut max_message_size = None;
        for opt in (RawOptions { rest: options }) {
            let (code, data) = opt?;
            if !matches!(
                code,
                code::MESSAGE_TYPE
                    | code::REQUESTED_IP
                    | code::SERVER_ID
                    | code::CLIENT_ID
                    | code::HOSTNAME
                    | code::PARAMETER_REQUEST_LIST
                    | code::MAX_MESSAGE_SIZE
            ) {
                continue;
            }
            match DhcpOption::decode(code, data)? {
                DhcpOption::MessageType(t) => _ = message_type.get_or_insert(t),
                DhcpOption::RequestedIp(a) => _ = requested_ip.get_or_insert(a),
                DhcpOption::ServerId(a) => _ = server_id.get_or_insert(a),
                DhcpOption::ClientId(id) => _ = client_id.get_or_insert(id),
                DhcpOption::Hostname(h) => _ = hostname.get_or_insert(h),
                DhcpOption::ParameterRequestList(l) => _ = parameter_request_list.get_or_insert(l),
                DhcpOption::MaxMessageSize(s) => _ = max_message_size.get_or_insert(s),
                _ => {}
            }
        }
        Ok(DhcpRequestRepr {
            message_type: message_type.ok_or(Error::Malformed)?,
            xid: packet.xid(),
            flags: packet.flags(),
            ciaddr: packet.ciaddr(),
            giaddr: packet.giaddr(),
            client_mac,
            requested_ip,
            server_id,
            client_id,
            hostname,
            parameter_request_list,
            max_message_size,
        })
    }

    /// Whether the broadcast flag is set: the reply must then be broadcast.
    #[inline]
    pub fn broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    /// Whether the parameter request list asks for option `code`.
    #[inline]
    pub fn requests(&self, code: u8) -> bool {
        self.parameter_request_list
            .is_some_and(|l| l.contains(&code))
    }

    /// The longest reply the client accepts: its maximum message size less the IP and UDP
    /// headers, or [`DEFAULT_MAX_MESSAGE_LEN`] (RFC 2131 §2, RFC 2132 §9.10).
    #[inline]
    pub fn max_reply_len(&self) -> usize {
        self.max_message_size
            .map_or(DEFAULT_MAX_MESSAGE_LEN, |s| {
                usize::from(s).saturating_sub(28)
            })
            .max(DEFAULT_MAX_MESSAGE_LEN)
    }
}

/// A server's reply (OFFER, ACK or NAK) as a value, to emit.
///
/// Options are written in this order, each only when set (non-empty lists and strings, `Some`
/// values): message type (53), server identifier (54), lease time (51), T1 (58), T2 (59), subnet
/// mask (1), broadcast address (28), host name (12), domain name (15), DNS servers (6), routers
/// (3), interface MTU (26), classless static routes (121), client identifier (61), message
/// (56); then the end option, and zero padding up to [`MIN_MESSAGE_LEN`].
///
/// A client that receives classless static routes ignores the routers option (RFC 3442 §3):
/// include the default route (0.0.0.0/0) in `classless_routes` when sending both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpReplyRepr<'a> {
    /// Offer, Ack or Nak.
    pub message_type: DhcpMessageType,
    /// The request's transaction id.
    pub xid: u32,
    /// The request's flags (RFC 2131 §4.3.1: copied from the client).
    pub flags: u16,
    /// The request's `ciaddr` in an ACK to a REQUEST from a bound client or an INFORM; else
    /// 0.0.0.0.
    pub ciaddr: Ipv4Addr,
    /// The address offered or acknowledged (0.0.0.0 in a NAK and an ACK to an INFORM).
    pub yiaddr: Ipv4Addr,
    /// Next server to use in bootstrap (0.0.0.0: none).
    pub siaddr: Ipv4Addr,
    /// The request's `giaddr`.
    pub giaddr: Ipv4Addr,
    /// The client's MAC address (`chaddr`).
    pub client_mac: MacAddr,
    /// Server identifier (54): the server's address on the client's link.
    pub server_id: Ipv4Addr,
    /// Lease time in seconds (51; required in an OFFER).
    pub lease_time: Option<u32>,
    /// Renewal (T1) time in seconds (58).
    pub renewal_time: Option<u32>,
    /// Rebinding (T2) time in seconds (59).
    pub rebinding_time: Option<u32>,
    /// Subnet mask (1).
    pub subnet_mask: Option<Ipv4Addr>,
    /// Routers (3), at most 63.
    pub routers: &'a [Ipv4Addr],
    /// DNS servers (6), at most 63.
    pub dns_servers: &'a [Ipv4Addr],
    /// Domain name (15), 1 to 255 bytes.
    pub domain_name: Option<&'a str>,
    /// Host name (12), 1 to 255 bytes.
    pub hostname: Option<&'a str>,
    /// Interface MTU (26), at least 68.
    pub interface_mtu: Option<u16>,
    /// Broadcast address (28).
    pub broadcast_address: Option<Ipv4Addr>,
    /// Classless static routes (121): (network, prefix length, router). The network must have
    /// no bits set past the prefix; the encoded list must fit 255 bytes.
    pub classless_routes: &'a [ClasslessRoute],
    /// Client identifier (61) to echo: the request's, when it had one (RFC 6842). 2 to 255
    /// bytes.
    pub client_id: Option<&'a [u8]>,
    /// Message (56), 1 to 255 bytes: why a NAK was sent.
    pub message: Option<&'a str>,
}

/// The data of one option to emit.
#[derive(Debug, Clone, Copy)]
enum Body<'b> {
    Byte(u8),
    U16(u16),
    U32(u32),
    Addr(Ipv4Addr),
    Addrs(&'b [Ipv4Addr]),
    Bytes(&'b [u8]),
    Routes(&'b [ClasslessRoute]),
}

impl Body<'_> {
    fn len(&self) -> usize {
        match *self {
            Body::Byte(_) => 1,
            Body::U16(_) => 2,
            Body::U32(_) | Body::Addr(_) => 4,
            Body::Addrs(a) => a.len().saturating_mul(4),
            Body::Bytes(b) => b.len(),
            Body::Routes(r) => r.iter().fold(0usize, |n, &(_, p, _)| {
                n.saturating_add(5 + significant_octets(p))
            }),
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        match *self {
            Body::Byte(b) => w.put(&[b]),
            Body::U16(v) => w.put(&v.to_be_bytes()),
            Body::U32(v) => w.put(&v.to_be_bytes()),
            Body::Addr(a) => w.put(&a.octets()),
            Body::Addrs(addrs) => addrs.iter().try_for_each(|a| w.put(&a.octets())),
            Body::Bytes(b) => w.put(b),
            Body::Routes(routes) => routes.iter().try_for_each(|&(net, prefix, router)| {
                let octets = net.octets();
                let dest = octets
                    .get(..significant_octets(prefix))
                    .ok_or(Error::Malformed)?;
                w.put(&[prefix])?;
                w.put(dest)?;
                w.put(&router.octets())
            }),
        }
    }
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
}

impl<'a> DhcpReplyRepr<'a> {
    /// A reply with the given identity and no other content: all addresses 0.0.0.0, no
    /// options but the message type and server identifier. Fill in the rest with struct update
    /// syntax (`DhcpReplyRepr { yiaddr, lease_time: Some(3600), ..DhcpReplyRepr::new(..) }`).
    pub fn new(
        message_type: DhcpMessageType,
        xid: u32,
        flags: u16,
        client_mac: MacAddr,
        server_id: Ipv4Addr,
    ) -> DhcpReplyRepr<'a> {
        DhcpReplyRepr {
            message_type,
            xid,
            flags,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            client_mac,
            server_id,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            subnet_mask: None,
            routers: &[],
            dns_servers: &[],
            domain_name: None,
            hostname: None,
            interface_mtu: None,
            broadcast_address: None,
            classless_routes: &[],
            client_id: None,
            message: None,
        }
    }

    /// Calls `f` with each option to write, in wire order.
    fn for_each_option(&self, mut f: impl FnMut(u8, Body<'a>) -> Result<()>) -> Result<()> {
        let str_opt = |s: Option<&'a str>| s.map(|s| Body::Bytes(s.as_bytes()));
        let opts = [
            (
                code::MESSAGE_TYPE,
                Some(Body::Byte(u8::from(self.message_type))),
            ),
            (code::SERVER_ID, Some(Body::Addr(self.server_id))),
            (code::LEASE_TIME, self.lease_time.map(Body::U32)),
            (code::RENEWAL_TIME, self.renewal_time.map(Body::U32)),
            (code::REBINDING_TIME, self.rebinding_time.map(Body::U32)),
            (code::SUBNET_MASK, self.subnet_mask.map(Body::Addr)),
            (
                code::BROADCAST_ADDRESS,
                self.broadcast_address.map(Body::Addr),
            ),
            (code::HOSTNAME, str_opt(self.hostname)),
            (code::DOMAIN_NAME, str_opt(self.domain_name)),
            (
                code::DNS_SERVER,
                (!self.dns_servers.is_empty()).then_some(Body::Addrs(self.dns_servers)),
            ),
            (
                code::ROUTER,
                (!self.routers.is_empty()).then_some(Body::Addrs(self.routers)),
            ),
            (code::INTERFACE_MTU, self.interface_mtu.map(Body::U16)),
            (
                code::CLASSLESS_STATIC_ROUTE,
                (!self.classless_routes.is_empty()).then_some(Body::Routes(self.classless_routes)),
            ),
            (code::CLIENT_ID, self.client_id.map(Body::Bytes)),
            (code::MESSAGE, str_opt(self.message)),
        ];
        for (code, body) in opts {
            if let Some(body) = body {
                f(code, body)?;
            }
        }
        Ok(())
    }

    /// Number of bytes [`emit`](Self::emit) writes when it succeeds: the header, the options,
    /// the end option, and padding up to [`MIN_MESSAGE_LEN`]. Compare it with the client's
    /// [`DhcpRequestRepr::max_reply_len`].
    pub fn buffer_len(&self) -> usize {
        let mut len = HEADER_LEN + 1;
        let _ = self.for_each_option(|_, body| {
            len = len.saturating_add(2).saturating_add(body.len());
            Ok(())
        });
        len.max(MIN_MESSAGE_LEN)
    }

    /// Checks that the reply can be emitted: `Malformed` if the message type is not Offer, Ack
    /// or Nak; an OFFER has no lease time; a NAK carries an address (`ciaddr`, `yiaddr`,
    /// `siaddr`) or any option but server identifier, client identifier and message (RFC 2131
    /// table 3); an option would be empty or longer than 255 bytes (a host name, domain name or
    /// message of 0 or over 255 bytes, over 63 routers or DNS servers, a client identifier
    /// under 2 bytes); the MTU is under 68; or a classless route has a prefix length over 32 or
    /// bits set in its network past the prefix.
    pub fn check(&self) -> Result<()> {
        let ok = match self.message_type {
            DhcpMessageType::Offer => self.lease_time.is_some(),
            DhcpMessageType::Ack => true,
            DhcpMessageType::Nak => {
                let zero = Ipv4Addr::UNSPECIFIED;
                self.ciaddr == zero
                    && self.yiaddr == zero
                    && self.siaddr == zero
                    && self.lease_time.is_none()
                    && self.renewal_time.is_none()
                    && self.rebinding_time.is_none()
                    && self.subnet_mask.is_none()
                    && self.routers.is_empty()
                    && self.dns_servers.is_empty()
                    && self.domain_name.is_none()
                    && self.hostname.is_none()
                    && self.interface_mtu.is_none()
                    && self.broadcast_address.is_none()
                    && self.classless_routes.is_empty()
            }
            _ => false,
        };
        let mtu_ok = self.interface_mtu.is_none_or(|m| m >= 68);
        let routes_ok = self
            .classless_routes
            .iter()
            .all(|&(net, prefix, _)| prefix <= 32 && u32::from(net) & !prefix_mask(prefix) == 0);
        if !(ok && mtu_ok && routes_ok) {
            return Err(Error::Malformed);
        }
        self.for_each_option(|code, body| {
            let min = if code == code::CLIENT_ID { 2 } else { 1 };
            if (min..=usize::from(u8::MAX)).contains(&body.len()) {
                Ok(())
            } else {
                Err(Error::Malformed)
            }
        })
    }

    /// Writes the reply as a BOOTREPLY (op 2, Ethernet, hops 0, secs 0, zeroed `sname` and
    /// `file`) into `packet`'s buffer, returning its length ([`buffer_len`](Self::buffer_len)).
    /// Bytes of the buffer past that length are left alone.
    ///
    /// Never panics: `Malformed` if [`check`](Self::check) fails (nothing is written);
    /// `Truncated` if the buffer is shorter than [`buffer_len`](Self::buffer_len) (it may then
    /// be partly written).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut DhcpPacket<T>) -> Result<usize> {
        self.check()?;
        let len = self.buffer_len();
        let buf = packet
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::Truncated)?;
        buf.fill(0);
        // `len` is at least MIN_MESSAGE_LEN, so the header setters and the split are in bounds.
        let (header, options) = buf.split_at_mut(HEADER_LEN);
        let mut p = DhcpPacket::new_unchecked(header);
        p.set_op(DhcpOp::Reply);
        p.set_client_mac(self.client_mac);
        p.set_xid(self.xid);
        p.set_flags(self.flags);
        p.set_ciaddr(self.ciaddr);
        p.set_yiaddr(self.yiaddr);
        p.set_siaddr(self.siaddr);
        p.set_giaddr(self.giaddr);
        p.set_magic_cookie();

        let mut w = Writer {
            buf: options,
            at: 0,
        };
        self.for_each_option(|code, body| {
            let n = u8::try_from(body.len()).map_err(|_| Error::Malformed)?;
            w.put(&[code, n])?;
            body.write(&mut w)
        })?;
        w.put(&[code::END])?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from ISC dhclient 4.4.3 (`send host-name "vm1"`, Debian's default request list)
    // talking to dnsmasq 2.90 on a veth pair between two network namespaces: UDP payloads.
    // The client's MAC is 52:54:00:12:34:56; the server is 10.0.0.1.
    //
    // DHCPDISCOVER: 53 = 1, 12 = "vm1", 55 = [1 28 2 3 15 6 119 12 44 47 26 121 42], end,
    // zero padding to 300 bytes.
    const DISCOVER: [u8; 300] = [
        0x01, 0x01, 0x06, 0x00, 0xcb, 0xac, 0x09, 0x2b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54,
        0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63,
        0x35, 0x01, 0x01, 0x0c, 0x03, 0x76, 0x6d, 0x31, 0x37, 0x0d, 0x01, 0x1c, 0x02, 0x03, 0x0f,
        0x06, 0x77, 0x0c, 0x2c, 0x2f, 0x1a, 0x79, 0x2a, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // DHCPOFFER from dnsmasq: yiaddr 10.0.0.157, siaddr 10.0.0.1; options in OFFER_OPTIONS.
    const OFFER: [u8; 305] = [
        0x02, 0x01, 0x06, 0x00, 0xcb, 0xac, 0x09, 0x2b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x0a, 0x00, 0x00, 0x9d, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54,
        0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63,
        0x35, 0x01, 0x02, 0x36, 0x04, 0x0a, 0x00, 0x00, 0x01, 0x33, 0x04, 0x00, 0x00, 0x0e, 0x10,
        0x3a, 0x04, 0x00, 0x00, 0x07, 0x08, 0x3b, 0x04, 0x00, 0x00, 0x0c, 0x4e, 0x01, 0x04, 0xff,
        0xff, 0xff, 0x00, 0x1c, 0x04, 0x0a, 0x00, 0x00, 0xff, 0x0f, 0x0b, 0x65, 0x78, 0x61, 0x6d,
        0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x06, 0x04, 0x0a, 0x00, 0x00, 0x35, 0x03, 0x04,
        0x0a, 0x00, 0x00, 0x01, 0xff,
    ];
    // DHCPREQUEST (SELECTING): 53 = 3, 54 = 10.0.0.1, 50 = 10.0.0.157, 12, 55 as above.
    const REQUEST: [u8; 300] = [
        0x01, 0x01, 0x06, 0x00, 0xcb, 0xac, 0x09, 0x2b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54,
        0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63,
        0x35, 0x01, 0x03, 0x36, 0x04, 0x0a, 0x00, 0x00, 0x01, 0x32, 0x04, 0x0a, 0x00, 0x00, 0x9d,
        0x0c, 0x03, 0x76, 0x6d, 0x31, 0x37, 0x0d, 0x01, 0x1c, 0x02, 0x03, 0x0f, 0x06, 0x77, 0x0c,
        0x2c, 0x2f, 0x1a, 0x79, 0x2a, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // DHCPACK from dnsmasq: the OFFER's options with 12 = "vm1" after 28.
    const ACK: [u8; 310] = [
        0x02, 0x01, 0x06, 0x00, 0xcb, 0xac, 0x09, 0x2b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x0a, 0x00, 0x00, 0x9d, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54,
        0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63,
        0x35, 0x01, 0x05, 0x36, 0x04, 0x0a, 0x00, 0x00, 0x01, 0x33, 0x04, 0x00, 0x00, 0x0e, 0x10,
        0x3a, 0x04, 0x00, 0x00, 0x07, 0x08, 0x3b, 0x04, 0x00, 0x00, 0x0c, 0x4e, 0x01, 0x04, 0xff,
        0xff, 0xff, 0x00, 0x1c, 0x04, 0x0a, 0x00, 0x00, 0xff, 0x0c, 0x03, 0x76, 0x6d, 0x31, 0x0f,
        0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x06, 0x04, 0x0a,
        0x00, 0x00, 0x35, 0x03, 0x04, 0x0a, 0x00, 0x00, 0x01, 0xff,
    ];
    // DHCPRELEASE (dhclient -r) from 10.0.0.157: 53 = 7, 54 = 10.0.0.1, 12 = "vm1".
    const RELEASE: [u8; 300] = [
        0x01, 0x01, 0x06, 0x00, 0x41, 0x6e, 0xa6, 0x27, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
        0x9d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54,
        0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63,
        0x35, 0x01, 0x07, 0x36, 0x04, 0x0a, 0x00, 0x00, 0x01, 0x0c, 0x03, 0x76, 0x6d, 0x31, 0xff,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // Options of the OFFER and ACK above, after the magic cookie.
    const OFFER_OPTIONS: [u8; 65] = [
        0x35, 0x01, 0x02, 0x36, 0x04, 0x0a, 0x00, 0x00, 0x01, 0x33, 0x04, 0x00, 0x00, 0x0e, 0x10,
        0x3a, 0x04, 0x00, 0x00, 0x07, 0x08, 0x3b, 0x04, 0x00, 0x00, 0x0c, 0x4e, 0x01, 0x04, 0xff,
        0xff, 0xff, 0x00, 0x1c, 0x04, 0x0a, 0x00, 0x00, 0xff, 0x0f, 0x0b, b'e', b'x', b'a', b'm',
        b'p', b'l', b'e', b'.', b'c', b'o', b'm', 0x06, 0x04, 0x0a, 0x00, 0x00, 0x35, 0x03, 0x04,
        0x0a, 0x00, 0x00, 0x01, 0xff,
    ];

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const PRL: [u8; 13] = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42];

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(a, b, c, d)
    }

    fn request(bytes: &[u8]) -> Result<DhcpRequestRepr<'_>> {
        DhcpRequestRepr::parse(&DhcpPacket::new_checked(bytes)?)
    }

    /// Up to 16 options of `bytes`, as an array (no allocation).
    fn walk(bytes: &[u8]) -> ([Option<Result<DhcpOption<'_>>>; 16], usize) {
        let mut out = [None; 16];
        let mut n = 0;
        for (slot, o) in out.iter_mut().zip(DhcpOptions::new(bytes)) {
            *slot = Some(o);
            n += 1;
        }
        (out, n)
    }

    /// The reply dnsmasq sent in `OFFER` (or, with `Ack` and the host name, in `ACK`).
    fn dnsmasq_reply(message_type: DhcpMessageType) -> DhcpReplyRepr<'static> {
        const ROUTERS: [Ipv4Addr; 1] = [Ipv4Addr::new(10, 0, 0, 1)];
        const DNS: [Ipv4Addr; 1] = [Ipv4Addr::new(10, 0, 0, 53)];
        DhcpReplyRepr {
            yiaddr: ip(10, 0, 0, 157),
            siaddr: ip(10, 0, 0, 1),
            lease_time: Some(3600),
            renewal_time: Some(1800),
            rebinding_time: Some(3150),
            subnet_mask: Some(ip(255, 255, 255, 0)),
            broadcast_address: Some(ip(10, 0, 0, 255)),
            hostname: (message_type == DhcpMessageType::Ack).then_some("vm1"),
            domain_name: Some("example.com"),
            dns_servers: &DNS,
            routers: &ROUTERS,
            ..DhcpReplyRepr::new(message_type, 0xcbac_092b, 0, MAC, ip(10, 0, 0, 1))
        }
    }

    #[test]
    fn parse_discover() {
        let p = DhcpPacket::new_checked(&DISCOVER[..]).unwrap();
        assert_eq!(p.op(), DhcpOp::Request);
        assert_eq!((p.htype(), p.hlen(), p.hops()), (1, 6, 0));
        assert_eq!((p.xid(), p.secs(), p.flags()), (0xcbac_092b, 0, 0));
        assert!(!p.broadcast());
        for a in [p.ciaddr(), p.yiaddr(), p.siaddr(), p.giaddr()] {
            assert_eq!(a, Ipv4Addr::UNSPECIFIED);
        }
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&MAC.0);
        assert_eq!(p.chaddr(), chaddr);
        assert_eq!(p.client_mac(), Some(MAC));
        assert_eq!((p.sname(), p.file()), (&[0u8; 64][..], &[0u8; 128][..]));
        assert_eq!(p.options_raw(), &DISCOVER[240..]);

        let (opts, n) = walk(p.options_raw());
        assert_eq!(n, 3);
        assert_eq!(
            opts[..3],
            [
                Some(Ok(DhcpOption::MessageType(DhcpMessageType::Discover))),
                Some(Ok(DhcpOption::Hostname(b"vm1"))),
                Some(Ok(DhcpOption::ParameterRequestList(&PRL))),
            ]
        );

        let r = DhcpRequestRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            DhcpRequestRepr {
                message_type: DhcpMessageType::Discover,
                xid: 0xcbac_092b,
                flags: 0,
                ciaddr: Ipv4Addr::UNSPECIFIED,
                giaddr: Ipv4Addr::UNSPECIFIED,
                client_mac: MAC,
                requested_ip: None,
                server_id: None,
                client_id: None,
                hostname: Some(b"vm1"),
                parameter_request_list: Some(&PRL),
                max_message_size: None,
            }
        );
        assert!(!r.broadcast());
        assert!(r.requests(code::CLASSLESS_STATIC_ROUTE) && r.requests(code::INTERFACE_MTU));
        assert!(!r.requests(code::LEASE_TIME));
        assert_eq!(r.max_reply_len(), DEFAULT_MAX_MESSAGE_LEN);
    }

    #[test]
    fn parse_request_and_release() {
        let r = request(&REQUEST).unwrap();
        assert_eq!(r.message_type, DhcpMessageType::Request);
        assert_eq!(r.xid, 0xcbac_092b);
        assert_eq!(r.requested_ip, Some(ip(10, 0, 0, 157)));
        assert_eq!(r.server_id, Some(ip(10, 0, 0, 1)));
        assert_eq!(
            (r.hostname, r.parameter_request_list),
            (Some(&b"vm1"[..]), Some(&PRL[..]))
        );
        assert_eq!((r.client_mac, r.ciaddr), (MAC, Ipv4Addr::UNSPECIFIED));

        let r = request(&RELEASE).unwrap();
        assert_eq!(r.message_type, DhcpMessageType::Release);
        assert_eq!((r.xid, r.ciaddr), (0x416e_a627, ip(10, 0, 0, 157)));
        assert_eq!((r.server_id, r.requested_ip), (Some(ip(10, 0, 0, 1)), None));
        assert_eq!(r.parameter_request_list, None);
    }

    #[test]
    fn parse_server_replies() {
        for (bytes, t) in [
            (&OFFER[..], DhcpMessageType::Offer),
            (&ACK[..], DhcpMessageType::Ack),
        ] {
            let p = DhcpPacket::new_checked(bytes).unwrap();
            assert_eq!(p.op(), DhcpOp::Reply);
            assert_eq!(
                (p.yiaddr(), p.siaddr()),
                (ip(10, 0, 0, 157), ip(10, 0, 0, 1))
            );
            assert_eq!(p.client_mac(), Some(MAC));
            let mut it = p.options();
            assert_eq!(it.next(), Some(Ok(DhcpOption::MessageType(t))));
            assert_eq!(it.next(), Some(Ok(DhcpOption::ServerId(ip(10, 0, 0, 1)))));
            assert_eq!(it.next(), Some(Ok(DhcpOption::LeaseTime(3600))));
            assert_eq!(it.next(), Some(Ok(DhcpOption::RenewalTime(1800))));
            assert_eq!(it.next(), Some(Ok(DhcpOption::RebindingTime(3150))));
            let mask = ip(255, 255, 255, 0);
            assert_eq!(it.next(), Some(Ok(DhcpOption::SubnetMask(mask))));
            let bcast = ip(10, 0, 0, 255);
            assert_eq!(it.next(), Some(Ok(DhcpOption::BroadcastAddress(bcast))));
            if t == DhcpMessageType::Ack {
                assert_eq!(it.next(), Some(Ok(DhcpOption::Hostname(b"vm1"))));
            }
            assert_eq!(it.next(), Some(Ok(DhcpOption::DomainName(b"example.com"))));
            let Some(Ok(DhcpOption::DnsServers(dns))) = it.next() else {
                panic!()
            };
            assert!(ipv4_addrs(dns).eq([ip(10, 0, 0, 53)]));
            let Some(Ok(DhcpOption::Routers(routers))) = it.next() else {
                panic!()
            };
            assert_eq!(ipv4_addrs(routers).len(), 1);
            assert!(ipv4_addrs(routers).eq([ip(10, 0, 0, 1)]));
            assert_eq!(it.next(), None);
            // A reply is not a request.
            assert_eq!(DhcpRequestRepr::parse(&p), Err(Error::Malformed));
        }
    }

    #[test]
    fn emit_reproduces_dnsmasq() {
        for (bytes, t) in [
            (&OFFER[..], DhcpMessageType::Offer),
            (&ACK[..], DhcpMessageType::Ack),
        ] {
            let r = dnsmasq_reply(t);
            assert_eq!(r.buffer_len(), bytes.len());
            let mut buf = [0xaau8; 320];
            let n = r
                .emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
                .unwrap();
            assert_eq!(&buf[..n], bytes);
            assert_eq!(buf[n..], [0xaa; 320][n..]);
        }
        assert_eq!(OFFER[240..], OFFER_OPTIONS);
    }

    /// An ACK with every option but the message.
    fn full_ack<'a>(
        routes: &'a [ClasslessRoute],
        dns: &'a [Ipv4Addr],
        routers: &'a [Ipv4Addr],
        client_id: &'a [u8],
    ) -> DhcpReplyRepr<'a> {
        DhcpReplyRepr {
            ciaddr: ip(10, 0, 0, 5),
            yiaddr: ip(10, 0, 0, 5),
            giaddr: ip(10, 9, 9, 9),
            lease_time: Some(86400),
            renewal_time: Some(43200),
            rebinding_time: Some(75600),
            subnet_mask: Some(ip(255, 255, 255, 0)),
            broadcast_address: Some(ip(10, 0, 0, 255)),
            hostname: Some("vm5"),
            domain_name: Some("weft.internal"),
            dns_servers: dns,
            routers,
            interface_mtu: Some(1450),
            classless_routes: routes,
            client_id: Some(client_id),
            ..DhcpReplyRepr::new(
                DhcpMessageType::Ack,
                0x0102_0304,
                FLAG_BROADCAST,
                MAC,
                ip(10, 0, 0, 1),
            )
        }
    }

    const ROUTES: [ClasslessRoute; 2] = [
        (Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::new(10, 0, 0, 1)),
        (Ipv4Addr::new(10, 1, 0, 0), 16, Ipv4Addr::new(10, 0, 0, 254)),
    ];
    const DNS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(1, 1, 1, 1)];
    const ROUTERS: [Ipv4Addr; 1] = [Ipv4Addr::new(10, 0, 0, 1)];
    const CLIENT_ID: [u8; 7] = [1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn emit_every_option() {
        let r = full_ack(&ROUTES, &DNS, &ROUTERS, &CLIENT_ID);
        assert_eq!(r.buffer_len(), 343);
        let mut buf = [0xaau8; 343];
        assert_eq!(
            r.emit(&mut DhcpPacket::new_unchecked(&mut buf[..])),
            Ok(343)
        );
        #[rustfmt::skip]
        let header: [u8; 44] = [
            0x02, 0x01, 0x06, 0x00, // op, htype, hlen, hops
            0x01, 0x02, 0x03, 0x04, // xid
            0x00, 0x00, 0x80, 0x00, // secs, flags
            10, 0, 0, 5, 10, 0, 0, 5, 0, 0, 0, 0, 10, 9, 9, 9, // ciaddr yiaddr siaddr giaddr
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // chaddr
        ];
        assert_eq!(buf[..44], header);
        assert_eq!(buf[44..236], [0u8; 192]);
        assert_eq!(buf[236..240], MAGIC_COOKIE);
        #[rustfmt::skip]
        let options: [u8; 103] = [
            53, 1, 5,
            54, 4, 10, 0, 0, 1,
            51, 4, 0x00, 0x01, 0x51, 0x80,
            58, 4, 0x00, 0x00, 0xa8, 0xc0,
            59, 4, 0x00, 0x01, 0x27, 0x50,
            1, 4, 255, 255, 255, 0,
            28, 4, 10, 0, 0, 255,
            12, 3, b'v', b'm', b'5',
            15, 13, b'w', b'e', b'f', b't', b'.', b'i', b'n', b't', b'e', b'r', b'n', b'a', b'l',
            6, 8, 10, 0, 0, 1, 1, 1, 1, 1,
            3, 4, 10, 0, 0, 1,
            26, 2, 0x05, 0xaa,
            121, 12, 0, 10, 0, 0, 1, 16, 10, 1, 10, 0, 0, 254,
            61, 7, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
            255,
        ];
        assert_eq!(buf[240..], options);
    }

    #[test]
    fn emit_nak_pads_to_300() {
        let r = DhcpReplyRepr {
            client_id: Some(&CLIENT_ID),
            message: Some("wrong network"),
            ..DhcpReplyRepr::new(DhcpMessageType::Nak, 7, 0, MAC, ip(10, 0, 0, 1))
        };
        assert_eq!(r.buffer_len(), MIN_MESSAGE_LEN);
        let mut buf = [0xaau8; 400];
        assert_eq!(
            r.emit(&mut DhcpPacket::new_unchecked(&mut buf[..])),
            Ok(MIN_MESSAGE_LEN)
        );
        #[rustfmt::skip]
        let options: [u8; 34] = [
            53, 1, 6,
            54, 4, 10, 0, 0, 1,
            61, 7, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
            56, 13, b'w', b'r', b'o', b'n', b'g', b' ', b'n', b'e', b't', b'w', b'o', b'r', b'k',
            255,
        ];
        assert_eq!(buf[240..274], options);
        assert_eq!(buf[274..300], [0u8; 26]);
        assert_eq!(buf[300..], [0xaa; 100]);
        let p = DhcpPacket::new_checked(&buf[..300]).unwrap();
        let (opts, n) = walk(p.options_raw());
        assert_eq!(n, 4);
        assert_eq!(opts[3], Some(Ok(DhcpOption::Message(b"wrong network"))));
    }

    #[test]
    fn rfc3442_examples() {
        // RFC 3442 §3's table, each through router 10.0.0.1.
        let gw = ip(10, 0, 0, 1);
        let routes = [
            (ip(0, 0, 0, 0), 0, gw),
            (ip(10, 0, 0, 0), 8, gw),
            (ip(10, 17, 0, 0), 16, gw),
            (ip(10, 27, 129, 0), 24, gw),
            (ip(10, 229, 0, 128), 25, gw),
            (ip(10, 198, 122, 47), 32, gw),
        ];
        #[rustfmt::skip]
        let expected: [&[u8]; 6] = [
            &[0, 10, 0, 0, 1],
            &[8, 10, 10, 0, 0, 1],
            &[16, 10, 17, 10, 0, 0, 1],
            &[24, 10, 27, 129, 10, 0, 0, 1],
            &[25, 10, 229, 0, 128, 10, 0, 0, 1],
            &[32, 10, 198, 122, 47, 10, 0, 0, 1],
        ];
        let mut all = [0u8; 44];
        let mut at = 0;
        for (route, bytes) in routes.iter().zip(expected) {
            let one = [*route];
            let r = DhcpReplyRepr {
                classless_routes: &one,
                ..DhcpReplyRepr::new(DhcpMessageType::Ack, 1, 0, MAC, gw)
            };
            let mut buf = [0u8; 300];
            r.emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
                .unwrap();
            let opt = &buf[249..249 + 2 + bytes.len()];
            assert_eq!(opt[..2], [121, u8::try_from(bytes.len()).unwrap()]);
            assert_eq!(&opt[2..], bytes);
            assert!(classless_routes(bytes).eq([*route]));
            all[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        }
        assert_eq!(at, all.len());
        // All six in one option.
        let r = DhcpReplyRepr {
            classless_routes: &routes,
            ..DhcpReplyRepr::new(DhcpMessageType::Ack, 1, 0, MAC, gw)
        };
        let mut buf = [0u8; 300];
        r.emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(buf[249..251], [121, 44]);
        assert_eq!(buf[251..295], all);
        let p = DhcpPacket::new_checked(&buf[..]).unwrap();
        let Some(Ok(DhcpOption::ClasslessRoutes(data))) = p.options().nth(2) else {
            panic!()
        };
        assert!(classless_routes(data).eq(routes));
    }

    #[test]
    fn round_trip() {
        let r = full_ack(&ROUTES, &DNS, &ROUTERS, &CLIENT_ID);
        let mut buf = [0u8; 400];
        let n = r
            .emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
            .unwrap();
        let p = DhcpPacket::new_checked(&buf[..n]).unwrap();
        assert_eq!(
            (p.op(), p.xid(), p.flags()),
            (DhcpOp::Reply, 0x0102_0304, FLAG_BROADCAST)
        );
        assert!(p.broadcast());
        assert_eq!((p.ciaddr(), p.yiaddr()), (r.ciaddr, r.yiaddr));
        assert_eq!((p.siaddr(), p.giaddr()), (r.siaddr, r.giaddr));
        assert_eq!(p.client_mac(), Some(MAC));
        let (opts, count) = walk(p.options_raw());
        assert_eq!(count, 14);
        let mut seen = 0;
        for o in opts.into_iter().flatten() {
            seen += 1;
            match o.unwrap() {
                DhcpOption::MessageType(t) => assert_eq!(t, r.message_type),
                DhcpOption::ServerId(a) => assert_eq!(a, r.server_id),
                DhcpOption::LeaseTime(t) => assert_eq!(Some(t), r.lease_time),
                DhcpOption::RenewalTime(t) => assert_eq!(Some(t), r.renewal_time),
                DhcpOption::RebindingTime(t) => assert_eq!(Some(t), r.rebinding_time),
                DhcpOption::SubnetMask(m) => assert_eq!(Some(m), r.subnet_mask),
                DhcpOption::BroadcastAddress(a) => assert_eq!(Some(a), r.broadcast_address),
                DhcpOption::Hostname(h) => assert_eq!(Some(h), r.hostname.map(str::as_bytes)),
                DhcpOption::DomainName(d) => {
                    assert_eq!(Some(d), r.domain_name.map(str::as_bytes));
                }
                DhcpOption::DnsServers(d) => assert!(ipv4_addrs(d).eq(DNS)),
                DhcpOption::Routers(d) => assert!(ipv4_addrs(d).eq(ROUTERS)),
                DhcpOption::InterfaceMtu(m) => assert_eq!(Some(m), r.interface_mtu),
                DhcpOption::ClasslessRoutes(d) => assert!(classless_routes(d).eq(ROUTES)),
                DhcpOption::ClientId(id) => assert_eq!(id, CLIENT_ID),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, 14);
        // The client's side: an Ethernet BOOTREQUEST carrying the same options parses too.
        buf[0] = 1;
        let q = request(&buf[..n]).unwrap();
        assert_eq!(q.message_type, DhcpMessageType::Ack);
        assert_eq!(
            (q.server_id, q.client_id),
            (Some(r.server_id), Some(&CLIENT_ID[..]))
        );
        assert_eq!(
            (q.ciaddr, q.giaddr, q.flags),
            (r.ciaddr, r.giaddr, FLAG_BROADCAST)
        );
        assert!(q.broadcast());
    }

    #[test]
    fn emit_refuses_invalid_replies() {
        let ok = dnsmasq_reply(DhcpMessageType::Offer);
        let many = [ip(10, 0, 0, 1); 64];
        let long = [b'a'; 256];
        let long = core::str::from_utf8(&long).unwrap();
        let host_routes = [(ip(10, 0, 0, 9), 32, ip(10, 0, 0, 1)); 29];
        let bad: [DhcpReplyRepr<'_>; 16] = [
            DhcpReplyRepr {
                lease_time: None,
                ..ok
            },
            DhcpReplyRepr {
                message_type: DhcpMessageType::Discover,
                ..ok
            },
            DhcpReplyRepr {
                message_type: DhcpMessageType::Unknown(9),
                ..ok
            },
            DhcpReplyRepr {
                message_type: DhcpMessageType::Nak,
                ..ok
            },
            DhcpReplyRepr {
                yiaddr: ip(10, 0, 0, 5),
                ..DhcpReplyRepr::new(DhcpMessageType::Nak, 1, 0, MAC, ip(10, 0, 0, 1))
            },
            DhcpReplyRepr {
                routers: &many,
                ..DhcpReplyRepr::new(DhcpMessageType::Nak, 1, 0, MAC, ip(10, 0, 0, 1))
            },
            DhcpReplyRepr {
                routers: &many,
                ..ok
            },
            DhcpReplyRepr {
                dns_servers: &many,
                ..ok
            },
            DhcpReplyRepr {
                hostname: Some(""),
                ..ok
            },
            DhcpReplyRepr {
                domain_name: Some(long),
                ..ok
            },
            DhcpReplyRepr {
                message: Some(long),
                ..ok
            },
            DhcpReplyRepr {
                client_id: Some(&[1]),
                ..ok
            },
            DhcpReplyRepr {
                interface_mtu: Some(67),
                ..ok
            },
            DhcpReplyRepr {
                classless_routes: &[(ip(10, 0, 0, 0), 33, ip(10, 0, 0, 1))],
                ..ok
            },
            DhcpReplyRepr {
                classless_routes: &[(ip(10, 0, 0, 1), 24, ip(10, 0, 0, 1))],
                ..ok
            },
            DhcpReplyRepr {
                classless_routes: &host_routes,
                ..ok
            },
        ];
        for r in bad {
            let mut buf = [0xaau8; 1024];
            assert_eq!(r.check(), Err(Error::Malformed), "{r:?}");
            assert_eq!(
                r.emit(&mut DhcpPacket::new_unchecked(&mut buf[..])),
                Err(Error::Malformed)
            );
            assert_eq!(buf, [0xaa; 1024], "nothing written");
        }
        // The limits themselves are fine.
        let at_limit = [
            DhcpReplyRepr {
                routers: &many[..63],
                ..ok
            },
            DhcpReplyRepr {
                hostname: Some(&long[..255]),
                ..ok
            },
            DhcpReplyRepr {
                client_id: Some(&[1, 2]),
                ..ok
            },
            DhcpReplyRepr {
                interface_mtu: Some(68),
                ..ok
            },
            DhcpReplyRepr {
                classless_routes: &host_routes[..28],
                ..ok
            },
            DhcpReplyRepr {
                message: Some("x"),
                ..ok
            },
            DhcpReplyRepr {
                message_type: DhcpMessageType::Ack,
                lease_time: None,
                ..ok
            },
        ];
        for r in at_limit {
            let mut buf = [0u8; 1024];
            let n = r
                .emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
                .unwrap();
            assert_eq!(n, r.buffer_len());
            let p = DhcpPacket::new_checked(&buf[..n]).unwrap();
            assert!(p.options().all(|o| o.is_ok()));
        }
    }

    #[test]
    fn emit_into_short_buffers() {
        let r = full_ack(&ROUTES, &DNS, &ROUTERS, &CLIENT_ID);
        let nak = DhcpReplyRepr::new(DhcpMessageType::Nak, 1, 0, MAC, ip(10, 0, 0, 1));
        for r in [r, nak] {
            let need = r.buffer_len();
            let mut buf = [0u8; 400];
            for len in 0..need {
                assert_eq!(
                    r.emit(&mut DhcpPacket::new_unchecked(&mut buf[..len])),
                    Err(Error::Truncated),
                    "len {len}"
                );
            }
            assert_eq!(
                r.emit(&mut DhcpPacket::new_unchecked(&mut buf[..need])),
                Ok(need)
            );
        }
    }

    #[test]
    fn option_walk() {
        use DhcpOption as O;
        // Pads are skipped, bad bodies are Malformed and the walk goes on, end stops it.
        let bytes = [
            0, 53, 1, 1, 0, 0, 50, 3, 1, 2, 3, 12, 0, 26, 2, 0, 67, 57, 2, 0x02, 0x3f, 52, 1, 3,
            200, 0, 255, 53, 1, 2,
        ];
        let (opts, n) = walk(&bytes);
        assert_eq!(n, 7);
        assert_eq!(
            opts[..7],
            [
                Some(Ok(O::MessageType(DhcpMessageType::Discover))),
                Some(Err(Error::Malformed)),
                Some(Err(Error::Malformed)),
                Some(Err(Error::Malformed)),
                Some(Err(Error::Malformed)),
                Some(Ok(O::Unknown {
                    code: 52,
                    data: &[3]
                })),
                Some(Ok(O::Unknown {
                    code: 200,
                    data: &[]
                })),
            ]
        );
        // A missing length byte or a length past the end: Truncated, then nothing.
        for bytes in [&[53][..], &[53, 1, 1, 12, 4, b'a', b'b'], &[0, 0, 12]] {
            let (opts, n) = walk(bytes);
            assert_eq!(opts[n - 1], Some(Err(Error::Truncated)), "{bytes:?}");
        }
        // No end option: the walk ends with the buffer.
        assert_eq!(walk(&[53, 1, 3]).1, 1);
        assert_eq!(walk(&[0, 0, 0]).1, 0);
        assert_eq!(walk(&[255, 53, 1, 3]).1, 0);
        // Lists, minimum lengths and classless routes.
        for (bytes, ok) in [
            (&[3, 0][..], false),
            (&[3, 6, 1, 2, 3, 4, 5, 6], false),
            (&[6, 8, 1, 2, 3, 4, 5, 6, 7, 8], true),
            (&[61, 1, 1], false),
            (&[61, 2, 0, 1], true),
            (&[55, 0], false),
            (&[57, 2, 0x02, 0x40], true),
            (&[51, 3, 0, 0, 1], false),
            (&[53, 2, 1, 1], false),
            (&[121, 4, 0, 10, 0, 0], false),
            (&[121, 5, 33, 10, 0, 0, 1], false),
            (&[121, 7, 24, 10, 0, 0, 1, 2, 3], false),
            (&[121, 10, 0, 10, 0, 0, 1, 8, 10, 1, 2, 3], false),
            (&[121, 11, 0, 10, 0, 0, 1, 8, 10, 1, 2, 3, 4], true),
        ] {
            let (opts, n) = walk(bytes);
            assert_eq!(n, 1);
            assert_eq!(opts[0].unwrap().is_ok(), ok, "{bytes:?}");
        }
    }

    #[test]
    fn request_errors() {
        // Not a request, not Ethernet, not DHCP.
        let mut b = DISCOVER;
        b[0] = 2;
        assert_eq!(request(&b), Err(Error::Malformed));
        b[0] = 3;
        assert_eq!(request(&b), Err(Error::Malformed));
        let mut b = DISCOVER;
        b[1] = 6;
        assert_eq!(request(&b), Err(Error::Malformed));
        let mut b = DISCOVER;
        b[2] = 16;
        assert_eq!(request(&b), Err(Error::Malformed));
        let p = DhcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.client_mac(), None);
        let mut b = DISCOVER;
        b[239] = 0x64;
        assert_eq!(DhcpPacket::new_checked(&b[..]), Err(Error::Malformed));
        assert_eq!(
            DhcpPacket::new_checked(&DISCOVER[..239]),
            Err(Error::Truncated)
        );
        // No message type (replaced by pads).
        let mut b = DISCOVER;
        b[240..243].fill(0);
        assert_eq!(request(&b), Err(Error::Malformed));
        // A bad option that is read; a bad option that is not.
        let mut b = REQUEST;
        b[250] = 3; // requested IP of 3 bytes
        assert_eq!(request(&b), Err(Error::Malformed));
        let mut b = DISCOVER;
        b[263..268].copy_from_slice(&[26, 2, 0, 0, 255]); // an MTU of 0 before the end
        assert_eq!(
            request(&b).map(|r| r.message_type),
            Ok(DhcpMessageType::Discover)
        );
        // An option running past the end of the buffer.
        assert_eq!(request(&DISCOVER[..250]), Err(Error::Truncated));
        // The first occurrence counts; the end option ends the walk.
        let mut b = DISCOVER;
        b[264..270].copy_from_slice(&[53, 1, 3, 12, 1, b'x']);
        let r = request(&b).unwrap();
        assert_eq!(
            (r.message_type, r.hostname),
            (DhcpMessageType::Discover, Some(&b"vm1"[..]))
        );
        b[263] = 0;
        assert_eq!(request(&b).unwrap().hostname, Some(&b"vm1"[..]));
        // The client's maximum message size.
        let mut b = DISCOVER;
        b[263..268].copy_from_slice(&[57, 2, 0x05, 0xdc, 255]);
        let r = request(&b).unwrap();
        assert_eq!((r.max_message_size, r.max_reply_len()), (Some(1500), 1472));
    }

    #[test]
    fn numbers_round_trip() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(DhcpMessageType::from(v)), v);
            assert_eq!(u8::from(DhcpOp::from(v)), v);
        }
        assert_eq!(DhcpMessageType::from(8), DhcpMessageType::Inform);
        assert_eq!(DhcpMessageType::from(9), DhcpMessageType::Unknown(9));
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; HEADER_LEN + 1];
        let mut p = DhcpPacket::new_unchecked(&mut buf[..]);
        p.set_op(DhcpOp::Request);
        p.set_client_mac(MAC);
        p.set_hops(2);
        p.set_xid(0xdead_beef);
        p.set_secs(3);
        p.set_flags(FLAG_BROADCAST);
        p.set_ciaddr(ip(1, 1, 1, 1));
        p.set_yiaddr(ip(2, 2, 2, 2));
        p.set_siaddr(ip(3, 3, 3, 3));
        p.set_giaddr(ip(4, 4, 4, 4));
        p.set_magic_cookie();
        p.options_raw_mut().copy_from_slice(&[255]);
        let p = DhcpPacket::new_checked(p.into_inner()).unwrap();
        assert_eq!(
            (p.op(), p.hops(), p.xid(), p.secs()),
            (DhcpOp::Request, 2, 0xdead_beef, 3)
        );
        assert_eq!((p.ciaddr(), p.yiaddr()), (ip(1, 1, 1, 1), ip(2, 2, 2, 2)));
        assert_eq!((p.siaddr(), p.giaddr()), (ip(3, 3, 3, 3), ip(4, 4, 4, 4)));
        assert_eq!((p.client_mac(), p.broadcast()), (Some(MAC), true));
        assert_eq!(p.options().count(), 0);
        let mut chaddr = [7u8; 16];
        let mut buf2 = buf;
        let mut p = DhcpPacket::new_unchecked(&mut buf2[..]);
        p.set_htype(6);
        p.set_hlen(16);
        p.set_chaddr(&chaddr);
        assert_eq!((p.htype(), p.hlen(), p.chaddr()), (6, 16, chaddr));
        chaddr[0] = 0;
        assert_ne!(p.chaddr(), chaddr);
    }

    /// Runs every reader over `bytes`; none may panic.
    fn read_everything(bytes: &[u8]) {
        if let Ok(p) = DhcpPacket::new_checked(bytes) {
            let _ = (
                p.op(),
                p.htype(),
                p.hlen(),
                p.hops(),
                p.xid(),
                p.secs(),
                p.flags(),
            );
            let _ = (p.ciaddr(), p.yiaddr(), p.siaddr(), p.giaddr(), p.chaddr());
            let _ = (p.client_mac(), p.sname(), p.file(), p.broadcast());
            for o in p.options().flatten() {
                match o {
                    DhcpOption::Routers(d) | DhcpOption::DnsServers(d) => {
                        assert_ne!(ipv4_addrs(d).len(), 0);
                    }
                    DhcpOption::ClasslessRoutes(d) => assert!(classless_routes(d).count() > 0),
                    _ => {}
                }
            }
            if let Ok(r) = DhcpRequestRepr::parse(&p) {
                let _ = (r.max_reply_len(), r.requests(1), r.broadcast());
            }
        }
        assert!(DhcpOptions::new(bytes).count() <= bytes.len());
        let _ = classless_routes(bytes).count();
    }

    #[test]
    fn every_prefix_is_safe() {
        for sample in [&DISCOVER[..], &OFFER, &REQUEST, &ACK, &RELEASE] {
            for len in 0..=sample.len() {
                read_everything(&sample[..len]);
                let ok = DhcpPacket::new_checked(&sample[..len]).is_ok();
                assert_eq!(ok, len >= HEADER_LEN);
            }
        }
    }

    #[test]
    fn every_byte_change_is_safe() {
        let mut buf = [0u8; 310];
        for sample in [&DISCOVER[..], &OFFER, &REQUEST, &ACK, &RELEASE] {
            let b = &mut buf[..sample.len()];
            for i in HEADER_LEN - 4..sample.len() {
                for v in [0, 1, 4, 5, 33, 0x7f, 0xfe, 0xff] {
                    b.copy_from_slice(sample);
                    b[i] = v;
                    read_everything(b);
                }
            }
        }
    }
}
