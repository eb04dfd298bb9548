//! MAC addresses (IEEE 802).

use std::fmt;
use std::str::FromStr;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address from the first six bytes of `b`. `None` if `b` is shorter.
    #[inline]
    pub fn from_bytes(b: &[u8]) -> Option<MacAddr> {
        b.get(..6)
            .and_then(|s| <[u8; 6]>::try_from(s).ok())
            .map(MacAddr)
    }

    /// The six bytes.
    #[inline]
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Group (I/G) bit set: broadcast or multicast.
    #[inline]
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }

    /// ff:ff:ff:ff:ff:ff.
    #[inline]
    pub fn is_broadcast(self) -> bool {
        self == MacAddr::BROADCAST
    }

    /// A unicast address other than all-zeroes: one a port may own.
    #[inline]
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != MacAddr::ZERO
    }

    /// The address packed into the low 48 bits of a `u64` (for hashing and keys).
    #[inline]
    pub const fn to_u64(self) -> u64 {
        // In memory order first, then one byte swap: written as `from_be_bytes([0, 0, b[0],
        // ...])`, the compiler assembled the value a byte at a time (~20 instructions).
        let b = self.0;
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0]).swap_bytes() >> 16
    }

    /// The modified EUI-64 interface identifier (RFC 4291 appendix A): the 8 low bytes of the
    /// link-local address a host derives from this MAC.
    pub const fn eui64(self) -> [u8; 8] {
        let b = self.0;
        [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]]
    }

    /// fe80::/64 with the modified EUI-64 identifier of this MAC.
    pub fn link_local(self) -> std::net::Ipv6Addr {
        let id = self.eui64();
        let mut o = [0u8; 16];
        o[0] = 0xfe;
        o[1] = 0x80;
        o[8..].copy_from_slice(&id);
        std::net::Ipv6Addr::from(o)
    }

    /// The IPv6 solicited-node multicast MAC for `addr` (33:33:ff:xx:xx:xx, RFC 2464 §7).
    pub fn ipv6_multicast(addr: std::net::Ipv6Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six hex octets separated by `:` or `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a MAC address of six hex octets, like fa:16:3e:00:00:01")
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for o in out.iter_mut() {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.len() != 2 {
                return Err(ParseMacError);
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let m: MacAddr = "fa:16:3E:00:0a:ff".parse().unwrap();
        assert_eq!(m.0, [0xfa, 0x16, 0x3e, 0x00, 0x0a, 0xff]);
        assert_eq!(m.to_string(), "fa:16:3e:00:0a:ff");
        assert_eq!("fa-16-3e-00-0a-ff".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "fa:16:3e:00:0a",
            "fa:16:3e:00:0a:ff:00",
            "fa:16:3e:00:0a:f",
            "zz:16:3e:00:0a:ff",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacError), "{bad}");
        }
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert_eq!(MacAddr([1, 2, 3, 4, 5, 6]).to_u64(), 0x0102_0304_0506);
    }

    #[test]
    fn eui64_link_local() {
        // RFC 4291 appendix A example style: 52:54:00:12:34:56 -> fe80::5054:ff:fe12:3456
        let m: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(
            m.link_local(),
            "fe80::5054:ff:fe12:3456"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
        );
        let sn: std::net::Ipv6Addr = "ff02::1:ff12:3456".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(sn),
            MacAddr([0x33, 0x33, 0xff, 0x12, 0x34, 0x56])
        );
    }
}
