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
        let Some(b) = b.get_mut(..Self::LEN) else {
            return false;
        };
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

use crate::counters::DropReason;
use crate::packet::{BufPool, PacketBuf};
use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, parse_l2};
use crate::wire::ip::IpProtocol;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::tcp::{TcpFlags, TcpPacket};
use crate::wire::udp::UdpPacket;

/// What [`prepare`] did to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixup {
    /// Frames produced (1 unless a super-frame was split).
    pub segments: usize,
    /// Whether a checksum was completed or computed.
    pub checksummed: bool,
}

/// Turns a received frame with offload metadata into frames the overlay can carry, each in a
/// buffer from `pool` handed to `out`:
/// - a GSO super-frame (TCP over IPv4 or IPv6, or UDP segmentation offload) is split into
///   `gso_size` segments, each with correct lengths, IPv4 identification, TCP sequence number,
///   flags (FIN and PSH on the last segment only, CWR on the first only) and checksums, as
///   Linux's software GSO does;
/// - a frame with `NEEDS_CSUM` gets its L4 checksum completed.
///
/// On error nothing more is handed out; buffers already handed out stay with the caller (who
/// should discard them, the frame being incomplete).
pub fn prepare(
    frame: &[u8],
    h: &VnetHdr,
    pool: &mut BufPool,
    out: &mut dyn FnMut(PacketBuf),
) -> Result<Fixup, DropReason> {
    match h.gso_type {
        GsoType::None => {
            let mut b = pool.alloc().ok_or(DropReason::NoBuffer)?;
            if !b.fill(frame) {
                pool.free(b);
                return Err(DropReason::TooBig);
            }
            let checksummed = h.flags & VNET_F_NEEDS_CSUM != 0;
            if checksummed
                && let Err(e) = complete_checksum(b.data_mut(), h.csum_start, h.csum_offset)
            {
                pool.free(b);
                return Err(e);
            }
            out(b);
            Ok(Fixup {
                segments: 1,
                checksummed,
            })
        }
        GsoType::TcpV4 | GsoType::TcpV6 | GsoType::UdpL4 => segment(frame, h, pool, out),
        GsoType::Udp | GsoType::Unknown(_) => Err(DropReason::GsoUnsupported),
    }
}

/// Completes a partial checksum: the field at `start + offset` holds the pseudo-header sum; the
/// ones' complement sum of everything from `start` to the end goes there, complemented (a
/// result of zero is sent as 0xffff, as Linux does, which every checksum treats as zero).
pub fn complete_checksum(data: &mut [u8], start: u16, offset: u16) -> Result<(), DropReason> {
    let start = usize::from(start);
    let at = start + usize::from(offset);
    if at + 2 > data.len() || start > data.len() {
        return Err(DropReason::GsoMalformed);
    }
    let c = checksum::finish(checksum::sum(&data[start..], 0));
    let c = if c == 0 { 0xffff } else { c };
    data[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Where the headers of a super-frame are.
struct Layout {
    /// Start of the IP header.
    l3: usize,
    /// Start of the L4 header.
    l4: usize,
    /// End of the L4 header.
    hdrs: usize,
    /// End of the IP packet (trailing padding excluded).
    end: usize,
    v4: bool,
    tcp: bool,
}

fn layout(frame: &[u8], h: &VnetHdr) -> Result<Layout, DropReason> {
    let bad = |_| DropReason::GsoMalformed;
    let l2 = parse_l2(frame).map_err(bad)?;
    let l3 = l2.l3_offset;
    let ip_bytes = frame.get(l3..).ok_or(DropReason::GsoMalformed)?;
    let want_tcp = h.gso_type != GsoType::UdpL4;
    let (v4, l4, end, proto) = match (l2.ethertype, h.gso_type) {
        (EtherType::Ipv4, GsoType::TcpV4 | GsoType::UdpL4) => {
            let ip = Ipv4Packet::new_checked(ip_bytes).map_err(bad)?;
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Err(DropReason::GsoMalformed);
            }
            (
                true,
                l3 + ip.header_len(),
                l3 + usize::from(ip.total_len()),
                ip.next_header(),
            )
        }
        (EtherType::Ipv6, GsoType::TcpV6 | GsoType::UdpL4) => {
            let ip = Ipv6Packet::new_checked(ip_bytes).map_err(bad)?;
            let up = ip.upper_layer().map_err(bad)?;
            if up.fragment.is_some() {
                return Err(DropReason::GsoMalformed);
            }
            (
                false,
                l3 + up.offset,
                l3 + 40 + usize::from(ip.payload_len()),
                up.protocol,
            )
        }
        _ => return Err(DropReason::GsoMalformed),
    };
    let l4_bytes = frame.get(l4..end).ok_or(DropReason::GsoMalformed)?;
    let hdrs = if want_tcp {
        if proto != IpProtocol::Tcp {
            return Err(DropReason::GsoMalformed);
        }
        l4 + TcpPacket::new_checked(l4_bytes).map_err(bad)?.header_len()
    } else {
        if proto != IpProtocol::Udp {
            return Err(DropReason::GsoMalformed);
        }
        l4 + 8
    };
    if hdrs > end {
        return Err(DropReason::GsoMalformed);
    }
    Ok(Layout {
        l3,
        l4,
        hdrs,
        end,
        v4,
        tcp: want_tcp,
    })
}

fn segment(
    frame: &[u8],
    h: &VnetHdr,
    pool: &mut BufPool,
    out: &mut dyn FnMut(PacketBuf),
) -> Result<Fixup, DropReason> {
    let lay = layout(frame, h)?;
    let mss = usize::from(h.gso_size);
    if mss == 0 {
        return Err(DropReason::GsoMalformed);
    }
    let hdr = &frame[..lay.hdrs];
    let payload = &frame[lay.hdrs..lay.end];
    let (ident0, seq0, flags0) = {
        let ident = if lay.v4 {
            Ipv4Packet::new_unchecked(&frame[lay.l3..]).ident()
        } else {
            0
        };
        if lay.tcp {
            let t = TcpPacket::new_unchecked(&frame[lay.l4..]);
            (ident, t.seq_number(), t.flags())
        } else {
            (ident, 0, TcpFlags::default())
        }
    };
    let count = payload.len().div_ceil(mss).max(1);
    let mut produced = 0;
    let chunks: &mut dyn Iterator<Item = &[u8]> = if payload.is_empty() {
        &mut std::iter::once(payload)
    } else {
        &mut payload.chunks(mss)
    };
    for (i, chunk) in chunks.enumerate() {
        let mut b = pool.alloc().ok_or(DropReason::NoBuffer)?;
        let total = lay.hdrs + chunk.len();
        if !b.set_len(total) {
            pool.free(b);
            return Err(DropReason::TooBig);
        }
        let d = b.data_mut();
        d[..lay.hdrs].copy_from_slice(hdr);
        d[lay.hdrs..].copy_from_slice(chunk);
        let first = i == 0;
        let last = i + 1 == count;
        // Lengths fit in u16: total <= the buffer size, and buffers are far below 64 KiB.
        let ip_len = u16::try_from(total - lay.l3).map_err(|_| DropReason::TooBig)?;
        let l4_len = u16::try_from(total - lay.l4).map_err(|_| DropReason::TooBig)?;
        let (src, dst) = if lay.v4 {
            let mut ip = Ipv4Packet::new_unchecked(&mut d[lay.l3..]);
            ip.set_total_len(ip_len);
            ip.set_ident(ident0.wrapping_add(u16::try_from(i).unwrap_or(0)));
            ip.fill_checksum();
            (
                std::net::IpAddr::V4(ip.src_addr()),
                std::net::IpAddr::V4(ip.dst_addr()),
            )
        } else {
            let mut ip = Ipv6Packet::new_unchecked(&mut d[lay.l3..]);
            ip.set_payload_len(ip_len - 40);
            (
                std::net::IpAddr::V6(ip.src_addr()),
                std::net::IpAddr::V6(ip.dst_addr()),
            )
        };
        if lay.tcp {
            let mut t = TcpPacket::new_unchecked(&mut d[lay.l4..]);
            let offset = u32::try_from(i * mss).unwrap_or(0);
            t.set_seq_number(seq0.wrapping_add(offset));
            let mut f = flags0;
            if !last {
                f.remove(TcpFlags::FIN | TcpFlags::PSH);
            }
            if !first {
                f.remove(TcpFlags::CWR);
            }
            t.set_flags(f);
            t.fill_checksum(&src, &dst);
        } else {
            let mut u = UdpPacket::new_unchecked(&mut d[lay.l4..]);
            u.set_len(l4_len);
            u.fill_checksum(&src, &dst);
        }
        out(b);
        produced += 1;
    }
    Ok(Fixup {
        segments: produced,
        checksummed: true,
    })
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
        assert_eq!(
            (h.hdr_len, h.gso_size, h.csum_start, h.csum_offset),
            (66, 1448, 34, 16)
        );
        assert!(h.needs_work());
        let mut out = [0u8; 10];
        assert!(h.emit(&mut out));
        assert_eq!(out, bytes);
        assert!(VnetHdr::parse(&bytes[..9]).is_none());
        assert!(!VnetHdr::NONE.needs_work());
        assert_eq!(GsoType::from(9), GsoType::Unknown(9));
    }

    use std::net::IpAddr;

    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::ipv6::Ipv6Packet;
    use crate::wire::tcp::{TcpFlags, TcpPacket};
    use crate::wire::udp::UdpPacket;

    const ETH: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];

    /// A TCP super-frame: Ethernet + IPv4 (or IPv6) + TCP (20 bytes + 12 of options) + payload,
    /// with the TCP checksum field holding only the pseudo-header sum, as the kernel leaves it.
    fn tcp_superframe(v6: bool, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = ETH.to_vec();
        let tcp_len = 32 + payload.len();
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&u16::try_from(tcp_len).unwrap().to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            let (s, d) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
            f.extend_from_slice(&std::net::Ipv6Addr::octets(&s));
            f.extend_from_slice(&std::net::Ipv6Addr::octets(&d));
            (IpAddr::V6(s), IpAddr::V6(d))
        } else {
            let total = u16::try_from(20 + tcp_len).unwrap();
            let mut ip = vec![
                0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
            ];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&ip);
            (
                IpAddr::V4([10, 0, 0, 1].into()),
                IpAddr::V4([10, 0, 0, 2].into()),
            )
        };
        // Ports 12345 → 5201, seq 1, ack 1, data offset 8 words (12 bytes of options).
        let mut tcp = vec![
            0x30, 0x39, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x80, flags, 0x01, 0xf5, 0, 0, 0, 0,
        ];
        tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        let pseudo =
            checksum::pseudo_header(&src, &dst, IpProtocol::Tcp, u32::try_from(tcp_len).unwrap())
                .unwrap();
        tcp[16..18].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    fn gso(t: GsoType, size: u16, csum_start: u16) -> VnetHdr {
        VnetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: t,
            gso_ecn: false,
            hdr_len: 0,
            gso_size: size,
            csum_start,
            csum_offset: 16,
        }
    }

    fn prepare_all(frame: &[u8], h: &VnetHdr) -> Result<Vec<Vec<u8>>, DropReason> {
        let mut pool = BufPool::new(64, 2048);
        let mut out = Vec::new();
        prepare(frame, h, &mut pool, &mut |b: PacketBuf| {
            out.push(b.data().to_vec())
        })?;
        Ok(out)
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[test]
    fn tcp_v4_super_frame_is_split_like_the_kernel_does() {
        let data = payload(2500);
        // PSH|ACK|FIN|CWR on the super-frame.
        let f = tcp_superframe(false, &data, 0x80 | 0x10 | 0x08 | 0x01);
        let segs = prepare_all(&f, &gso(GsoType::TcpV4, 1000, 34)).unwrap();
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&s[14..]).unwrap();
            assert!(ip.verify_checksum(), "segment {i}: IPv4 checksum");
            assert_eq!(ip.ident(), 0x1234 + u16::try_from(i).unwrap());
            let want = if i < 2 { 1000 } else { 500 };
            assert_eq!(usize::from(ip.total_len()), 20 + 32 + want);
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
            assert!(tcp.verify_checksum(&src, &dst), "segment {i}: TCP checksum");
            assert_eq!(tcp.seq_number(), 1 + 1000 * u32::try_from(i).unwrap());
            let fl = tcp.flags();
            assert_eq!(fl.contains(TcpFlags::FIN), i == 2, "FIN on the last only");
            assert_eq!(fl.contains(TcpFlags::PSH), i == 2, "PSH on the last only");
            assert_eq!(fl.contains(TcpFlags::CWR), i == 0, "CWR on the first only");
            assert!(fl.contains(TcpFlags::ACK));
            assert_eq!(tcp.payload().len(), want);
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, data, "the payload survives whole and in order");
    }

    #[test]
    fn tcp_v6_super_frame_is_split() {
        let data = payload(3000);
        let f = tcp_superframe(true, &data, 0x10);
        let segs = prepare_all(&f, &gso(GsoType::TcpV6, 1400, 54)).unwrap();
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for s in &segs {
            let ip = Ipv6Packet::new_checked(&s[14..]).unwrap();
            assert_eq!(usize::from(ip.payload_len()), ip.payload().len());
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.verify_checksum(&IpAddr::V6(ip.src_addr()), &IpAddr::V6(ip.dst_addr())));
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn udp_segmentation_offload_makes_datagrams() {
        let data = payload(2500);
        let mut f = ETH.to_vec();
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let ulen = u16::try_from(8 + data.len()).unwrap();
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&ulen.to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x11, 0x11, 0x22, 0x22]);
        f.extend_from_slice(&ulen.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&data);
        let mut h = gso(GsoType::UdpL4, 1200, 54);
        h.csum_offset = 6;
        let segs = prepare_all(&f, &h).unwrap();
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for s in &segs {
            let ip = Ipv6Packet::new_checked(&s[14..]).unwrap();
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(&IpAddr::V6(ip.src_addr()), &IpAddr::V6(ip.dst_addr())));
            assert_eq!(usize::from(udp.len()), 8 + udp.payload().len());
            joined.extend_from_slice(udp.payload());
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn partial_checksums_are_completed() {
        let f = tcp_superframe(false, &payload(100), 0x18);
        let h = VnetHdr {
            gso_type: GsoType::None,
            gso_size: 0,
            ..gso(GsoType::None, 0, 34)
        };
        let out = prepare_all(&f, &h).unwrap();
        assert_eq!(out.len(), 1);
        let ip = Ipv4Packet::new_checked(&out[0][14..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&IpAddr::V4(ip.src_addr()), &IpAddr::V4(ip.dst_addr())));
        assert_eq!(&out[0][..34], &f[..34], "only the checksum changes");
    }

    #[test]
    fn bad_offload_metadata_is_refused() {
        let f = tcp_superframe(false, &payload(3000), 0x10);
        assert_eq!(
            prepare_all(&f, &gso(GsoType::TcpV4, 0, 34)),
            Err(DropReason::GsoMalformed)
        );
        assert_eq!(
            prepare_all(&f, &gso(GsoType::TcpV6, 1000, 34)),
            Err(DropReason::GsoMalformed)
        );
        assert_eq!(
            prepare_all(&f, &gso(GsoType::Unknown(9), 1000, 34)),
            Err(DropReason::GsoUnsupported)
        );
        assert_eq!(
            prepare_all(&f, &gso(GsoType::Udp, 1000, 34)),
            Err(DropReason::GsoUnsupported)
        );
        assert_eq!(
            prepare_all(&f[..40], &gso(GsoType::TcpV4, 1000, 34)),
            Err(DropReason::GsoMalformed)
        );
        let small_frame = tcp_superframe(false, &payload(100), 0x10);
        let h = VnetHdr {
            gso_type: GsoType::None,
            ..gso(GsoType::None, 0, 60_000)
        };
        assert_eq!(prepare_all(&small_frame, &h), Err(DropReason::GsoMalformed));

        // Not enough buffers for every segment.
        let mut pool = BufPool::new(2, 2048);
        let mut n = 0;
        let r = prepare(
            &f,
            &gso(GsoType::TcpV4, 1000, 34),
            &mut pool,
            &mut |_b: PacketBuf| n += 1,
        );
        assert_eq!(r, Err(DropReason::NoBuffer));
        // Segments that do not fit a buffer.
        let mut small = BufPool::new(8, 600);
        let r = prepare(
            &f,
            &gso(GsoType::TcpV4, 1000, 34),
            &mut small,
            &mut |_b: PacketBuf| {},
        );
        assert_eq!(r, Err(DropReason::TooBig));
    }
}
