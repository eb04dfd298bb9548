//! Offload metadata from the kernel: the virtio-net header (virtio spec 1.x §5.1.6,
//! `struct virtio_net_hdr`), as AF_PACKET with `PACKET_VNET_HDR` and tap devices deliver it.
//!
//! A VM (or a veth peer) may hand us a GSO super-frame (one TCP segment of up to 64 KiB with a
//! `gso_size`) and frames whose L4 checksum is only partially computed (`NEEDS_CSUM`). The
//! overlay cannot carry either as-is, so the receive path either completes the checksum or splits
//! the super-frame into MTU-sized segments before the pipeline sees it.

/// `virtio_net_hdr` flags: the L4 checksum must be completed from `csum_start`.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `virtio_net_hdr` flags: the checksum has been validated.
pub const VNET_F_DATA_VALID: u8 = 2;

/// GSO type of a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoType {
    /// Not a GSO frame.
    None,
    /// TCP over IPv4.
    TcpV4,
    /// UDP fragmentation offload (legacy UFO).
    Udp,
    /// TCP over IPv6.
    TcpV6,
    /// UDP segmentation offload (USO).
    UdpL4,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for GsoType {
    fn from(v: u8) -> Self {
        match v & !0x80 {
            0 => GsoType::None,
            1 => GsoType::TcpV4,
            3 => GsoType::Udp,
            4 => GsoType::TcpV6,
            5 => GsoType::UdpL4,
            x => GsoType::Unknown(x),
        }
    }
}

impl From<GsoType> for u8 {
    fn from(t: GsoType) -> u8 {
        match t {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::Udp => 3,
            GsoType::TcpV6 => 4,
            GsoType::UdpL4 => 5,
            GsoType::Unknown(x) => x,
        }
    }
}

/// A parsed virtio-net header (the 10-byte form without `num_buffers`). Multi-byte fields are in
/// the host's byte order as the kernel writes them for AF_PACKET on little-endian hosts
/// (little-endian, the only hosts Weft supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VNET_F_*` flags.
    pub flags: u8,
    /// GSO type (the ECN bit is in [`VnetHdr::gso_ecn`]).
    pub gso_type: GsoType,
    /// The ECN bit of the raw GSO type: the sender set CWR on the first segment.
    pub gso_ecn: bool,
    /// Length of the headers to copy into every segment (a hint; may be zero).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts, from the start of the frame.
    pub csum_start: u16,
    /// Where to store the checksum, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire.
    pub const LEN: usize = 10;

    /// A header that asks for nothing (what we send with every transmitted frame).
    pub const NONE: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: GsoType::None,
        gso_ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads a header from the first [`VnetHdr::LEN`] bytes. `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; 10] = b.get(..Self::LEN)?.try_into().ok()?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: GsoType::from(b[1]),
            gso_ecn: b[1] & 0x80 != 0,
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Writes the header into the first [`VnetHdr::LEN`] bytes. `false` if `b` is shorter.
    pub fn emit(&self, b: &mut [u8]) -> bool {
        let Some(b) = b.get_mut(..Self::LEN) else { return false };
        b[0] = self.flags;
        b[1] = u8::from(self.gso_type) | if self.gso_ecn { 0x80 } else { 0 };
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        true
    }

    /// Whether the frame needs work (segmentation or checksum completion) before forwarding.
    #[inline]
    pub fn needs_work(&self) -> bool {
        self.gso_type != GsoType::None || self.flags & VNET_F_NEEDS_CSUM != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_emit_round_trip() {
        // NEEDS_CSUM, TCPv4|ECN, hdr_len 66, gso_size 1448, csum_start 34, csum_offset 16
        let bytes = [0x01, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0];
        let h = VnetHdr::parse(&bytes).unwrap();
        assert_eq!(h.flags, VNET_F_NEEDS_CSUM);
        assert_eq!(h.gso_type, GsoType::TcpV4);
        assert!(h.gso_ecn);
        assert_eq!((h.hdr_len, h.gso_size, h.csum_start, h.csum_offset), (66, 1448, 34, 16));
        assert!(h.needs_work());
        let mut out = [0u8; 10];
        assert!(h.emit(&mut out));
        assert_eq!(out, bytes);
        assert!(VnetHdr::parse(&bytes[..9]).is_none());
        assert!(!VnetHdr::NONE.needs_work());
        assert_eq!(GsoType::from(9), GsoType::Unknown(9));
    }
}
