//! Packet captures on a running agent: any local port, or the underlay, into a pcap file.
//!
//! Port captures record frames as they cross the port in either direction. The underlay carries
//! VXLAN over a UDP socket, so its captures get made-up outer Ethernet, IP and UDP headers
//! around each VXLAN payload (addresses and ports are the real ones) for tcpdump and Wireshark to
//! decode the VXLAN inside.

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};

use weft_dataplane_io::pcap::PcapWriter;

/// A pcap capture running on one port.
#[derive(Debug)]
pub struct Capture {
    writer: PcapWriter<BufWriter<File>>,
    written: u64,
    limit: Option<u64>,
    scratch: Vec<u8>,
}

impl Capture {
    /// A capture into `writer`, stopping by itself after `limit` packets when given.
    pub fn new(writer: PcapWriter<BufWriter<File>>, limit: Option<u64>) -> Capture {
        Capture {
            writer,
            written: 0,
            limit,
            scratch: Vec::new(),
        }
    }

    /// Packets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the number of packets written.
    pub fn finish(mut self) -> u64 {
        let _ = self.writer.flush();
        self.written
    }

    /// Records one Ethernet frame taken at `wall` (nanoseconds since the Unix epoch).
    pub fn write(&mut self, wall: u64, frame: &[u8]) {
        if self.limit.is_some_and(|l| self.written >= l) {
            return;
        }
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        if self.writer.write_packet(wall, frame, len).is_ok() {
            self.written += 1;
        }
    }

    /// Records a VXLAN payload sent from `src` to `dst` as a full frame.
    pub fn write_vxlan(&mut self, wall: u64, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        if self.limit.is_some_and(|l| self.written >= l) {
            return;
        }
        let mut frame = std::mem::take(&mut self.scratch);
        frame.clear();
        outer_headers(&mut frame, src, dst, payload.len());
        frame.extend_from_slice(payload);
        self.write(wall, &frame);
        self.scratch = frame;
    }
}

/// Appends Ethernet + IPv4/IPv6 + UDP headers for a UDP payload of `len` bytes from `src` to
/// `dst` (checksums: IPv4 header computed, UDP zero over IPv4, which RFC 7348 allows; over IPv6
/// the UDP checksum is left zero too, which decoders flag but still decode).
pub fn outer_headers(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr, len: usize) {
    let udp_len = u16::try_from(len + 8).unwrap_or(u16::MAX);
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x08, 0x00]);
            let total = udp_len.saturating_add(20);
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[6] = 0x40;
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let sum = weft_dataplane::wire::checksum::sum(&ip, 0);
            ip[10..12].copy_from_slice(&weft_dataplane::wire::checksum::finish(sum).to_be_bytes());
            out.extend_from_slice(&ip);
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            out.extend_from_slice(&[0x86, 0xdd]);
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[17, 64]);
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
}
