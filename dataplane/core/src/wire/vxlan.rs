//! VXLAN (RFC 7348).

use std::fmt;

/// A 24-bit VXLAN network identifier. Construction checks the range, so a `Vni` always fits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI, 2^24 - 1.
    pub const MAX: u32 = 0x00ff_ffff;

    /// `None` if `v` does not fit in 24 bits.
    #[inline]
    pub const fn new(v: u32) -> Option<Vni> {
        if v <= Vni::MAX { Some(Vni(v)) } else { None }
    }

    /// The VNI's value.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vni({})", self.0)
    }
}

impl serde::Serialize for Vni {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Vni {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        Vni::new(v).ok_or_else(|| {
            serde::de::Error::custom(format_args!("VNI {v} is out of range [0, 16777215]"))
        })
    }
}
