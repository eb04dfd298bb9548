//! Classic pcap files (the libpcap format, as described in draft-ietf-opsawg-pcap): a writer
//! with nanosecond timestamps, and a reader for both timestamp resolutions and byte orders.
//!
//! ```text
//!  global header (24 bytes)                         record header (16 bytes) + data
//!  +-------+-----+-----+--------+-------+-------+---------+  +------+-------+--------+--------+------
//!  | magic | 2   | 4   | zone 0 | sigfig| snap  | linktype|  | sec  | frac  | incl   | orig   | data
//!  | u32   | u16 | u16 | i32    | u32 0 | len   | u32     |  | u32  | u32   | len u32| len u32| ...
//!  +-------+-----+-----+--------+-------+-------+---------+  +------+-------+--------+--------+------
//! ```
//!
//! The magic number gives resolution and byte order: `0xa1b2c3d4` microseconds,
//! `0xa1b23c4d` nanoseconds, read in the writer's byte order (so the swapped values mean the
//! other order). The writer always writes little-endian with nanoseconds.

use std::io::{self, Read, Write};

/// Microsecond-resolution magic.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Nanosecond-resolution magic.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Default snapshot length (libpcap's maximum).
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// Largest record the reader accepts regardless of the file's snapshot length (16 MiB), so a
/// corrupt length cannot make it allocate without bound.
pub const MAX_RECORD: u32 = 1 << 24;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// Reading or writing failed.
    #[error("pcap I/O: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with a pcap magic number.
    #[error("not a pcap file (magic {0:#010x})")]
    BadMagic(u32),
    /// A record claims more bytes than the reader accepts.
    #[error("pcap record of {len} bytes exceeds the limit of {limit}")]
    RecordTooLarge {
        /// The record's captured length.
        len: u32,
        /// The limit.
        limit: u32,
    },
    /// A timestamp does not fit the format (after the year 2106).
    #[error("timestamp {0} ns does not fit a pcap record")]
    TimestampOutOfRange(u64),
    /// The snapshot length is zero.
    #[error("snapshot length must be non-zero")]
    ZeroSnaplen,
}

/// Writes a pcap stream: the global header on creation, then one record per packet.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Starts an Ethernet capture with the default snapshot length.
    pub fn new(w: W) -> Result<Self, PcapError> {
        Self::with_options(w, DEFAULT_SNAPLEN, LINKTYPE_ETHERNET)
    }

    /// Starts a capture with `snaplen` (packets are cut to it) and `linktype`.
    pub fn with_options(mut w: W, snaplen: u32, linktype: u32) -> Result<Self, PcapError> {
        if snaplen == 0 {
            return Err(PcapError::ZeroSnaplen);
        }
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone = 0, sigfigs = 0
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&linktype.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w, snaplen })
    }

    /// Appends a record: `data` cut to the snapshot length, timestamp `ts_nanos` since the
    /// Unix epoch, original length `orig_len` (raised to the captured length if smaller).
    pub fn write_packet(
        &mut self,
        ts_nanos: u64,
        data: &[u8],
        orig_len: u32,
    ) -> Result<(), PcapError> {
        let sec = u32::try_from(ts_nanos / NANOS_PER_SEC)
            .map_err(|_| PcapError::TimestampOutOfRange(ts_nanos))?;
        let nsec = u32::try_from(ts_nanos % NANOS_PER_SEC).unwrap_or(0);
        let incl = u32::try_from(data.len())
            .unwrap_or(u32::MAX)
            .min(self.snaplen);
        let captured = data
            .get(..usize::try_from(incl).unwrap_or(usize::MAX))
            .unwrap_or(data);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&nsec.to_le_bytes());
        h[8..12].copy_from_slice(&incl.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(incl).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(captured)?;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        Ok(self.w.flush()?)
    }

    /// Returns the underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.w
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Timestamp in nanoseconds since the Unix epoch (microsecond files are scaled).
    pub ts_nanos: u64,
    /// The captured bytes.
    pub data: Vec<u8>,
    /// The packet's original length.
    pub orig_len: u32,
}

/// Reads a pcap stream: iterate to get the records.
#[derive(Debug)]
pub struct PcapReader<R: Read> {
    r: R,
    big_endian: bool,
    nanos: bool,
    snaplen: u32,
    linktype: u32,
    done: bool,
}

impl<R: Read> PcapReader<R> {
    /// Reads the global header.
    pub fn new(mut r: R) -> Result<Self, PcapError> {
        let mut h = [0u8; 24];
        r.read_exact(&mut h)?;
        let magic = [h[0], h[1], h[2], h[3]];
        let (big_endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (MAGIC_MICROS, _) => (false, false),
            (MAGIC_NANOS, _) => (false, true),
            (_, MAGIC_MICROS) => (true, false),
            (_, MAGIC_NANOS) => (true, true),
            (m, _) => return Err(PcapError::BadMagic(m)),
        };
        let mut rd = PcapReader {
            r,
            big_endian,
            nanos,
            snaplen: 0,
            linktype: 0,
            done: false,
        };
        rd.snaplen = rd.u32_at(&h, 16);
        rd.linktype = rd.u32_at(&h, 20);
        Ok(rd)
    }

    fn u32_at(&self, b: &[u8], off: usize) -> u32 {
        let mut a = [0u8; 4];
        if let Some(s) = b.get(off..off + 4) {
            a.copy_from_slice(s);
        }
        if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    /// The snapshot length from the header.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The link type from the header.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Whether timestamps have nanosecond resolution.
    pub fn is_nanosecond(&self) -> bool {
        self.nanos
    }

    /// The next record; `None` at a clean end of the stream.
    pub fn next_record(&mut self) -> Result<Option<PcapRecord>, PcapError> {
        let mut h = [0u8; 16];
        let mut got = 0;
        while got < h.len() {
            match self.r.read(&mut h[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let sec = u64::from(self.u32_at(&h, 0));
        let frac = u64::from(self.u32_at(&h, 4));
        let incl = self.u32_at(&h, 8);
        let orig_len = self.u32_at(&h, 12);
        let limit = self.snaplen.clamp(DEFAULT_SNAPLEN, MAX_RECORD);
        if incl > limit {
            return Err(PcapError::RecordTooLarge { len: incl, limit });
        }
        let mut data = vec![0u8; usize::try_from(incl).unwrap_or(0)];
        self.r.read_exact(&mut data)?;
        let frac_nanos = if self.nanos { frac } else { frac * 1000 };
        Ok(Some(PcapRecord {
            ts_nanos: sec * NANOS_PER_SEC + frac_nanos,
            data,
            orig_len,
        }))
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<PcapRecord, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_record().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_known_bytes() {
        let mut w = PcapWriter::with_options(Vec::new(), 65535, LINKTYPE_ETHERNET).unwrap();
        w.write_packet(1_700_000_000_123_456_789, &[0xde, 0xad, 0xbe, 0xef], 60)
            .unwrap();
        w.flush().unwrap();
        let bytes = w.into_inner();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x4d, 0x3c, 0xb2, 0xa1, // magic, nanoseconds, little-endian
            0x02, 0x00, 0x04, 0x00, // version 2.4
            0x00, 0x00, 0x00, 0x00, // thiszone
            0x00, 0x00, 0x00, 0x00, // sigfigs
            0xff, 0xff, 0x00, 0x00, // snaplen 65535
            0x01, 0x00, 0x00, 0x00, // LINKTYPE_ETHERNET
            0x00, 0xf1, 0x53, 0x65, // ts_sec 1700000000
            0x15, 0xcd, 0x5b, 0x07, // ts_nsec 123456789
            0x04, 0x00, 0x00, 0x00, // incl_len
            0x3c, 0x00, 0x00, 0x00, // orig_len 60
            0xde, 0xad, 0xbe, 0xef,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trip_and_snaplen() {
        let mut w = PcapWriter::with_options(Vec::new(), 100, LINKTYPE_ETHERNET).unwrap();
        let frames: Vec<Vec<u8>> = (0..10u8)
            .map(|i| vec![i; 40 + usize::from(i) * 20])
            .collect();
        for (i, f) in frames.iter().enumerate() {
            w.write_packet(i as u64 * 1_000_000_007, f, u32::try_from(f.len()).unwrap())
                .unwrap();
        }
        let bytes = w.into_inner();
        let mut r = PcapReader::new(bytes.as_slice()).unwrap();
        assert!(r.is_nanosecond());
        assert_eq!((r.snaplen(), r.linktype()), (100, 1));
        let recs: Vec<PcapRecord> = r.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 10);
        for (i, (rec, f)) in recs.iter().zip(&frames).enumerate() {
            assert_eq!(rec.ts_nanos, i as u64 * 1_000_000_007);
            assert_eq!(rec.orig_len as usize, f.len());
            assert_eq!(rec.data, f[..f.len().min(100)]);
        }
        assert!(r.next().is_none());
    }

    #[test]
    fn reads_big_endian_microseconds() {
        #[rustfmt::skip]
        let file: &[u8] = &[
            0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x02, 0x00, 0x04,
            0, 0, 0, 0, 0, 0, 0, 0,
            0x00, 0x00, 0x05, 0xdc, // snaplen 1500
            0x00, 0x00, 0x00, 0x01,
            0x00, 0x00, 0x00, 0x02, // 2 s
            0x00, 0x00, 0x00, 0x03, // 3 us
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40,
            0xaa, 0xbb,
        ];
        let mut r = PcapReader::new(file).unwrap();
        assert!(!r.is_nanosecond());
        assert_eq!(r.snaplen(), 1500);
        let rec = r.next().unwrap().unwrap();
        assert_eq!(
            rec,
            PcapRecord {
                ts_nanos: 2_000_003_000,
                data: vec![0xaa, 0xbb],
                orig_len: 64
            }
        );
        assert!(r.next().is_none());
        // Little-endian microseconds and big-endian nanoseconds are recognised too.
        let mut le = file.to_vec();
        le[..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
        assert!(!PcapReader::new(le.as_slice()).unwrap().is_nanosecond());
        let mut be_ns = file.to_vec();
        be_ns[..4].copy_from_slice(&MAGIC_NANOS.to_be_bytes());
        let mut r = PcapReader::new(be_ns.as_slice()).unwrap();
        assert!(r.is_nanosecond());
        assert_eq!(r.next().unwrap().unwrap().ts_nanos, 2_000_000_003);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert!(matches!(
            PcapReader::new(&[0u8; 24][..]),
            Err(PcapError::BadMagic(0))
        ));
        assert!(matches!(
            PcapReader::new(&[0u8; 3][..]),
            Err(PcapError::Io(_))
        ));
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(0, &[1, 2, 3, 4], 4).unwrap();
        let bytes = w.into_inner();
        // Cut inside the record data, and inside the record header.
        for cut in [bytes.len() - 1, 24 + 7] {
            let mut r = PcapReader::new(&bytes[..cut]).unwrap();
            assert!(matches!(r.next(), Some(Err(PcapError::Io(_)))));
            assert!(r.next().is_none());
        }
        // A huge captured length.
        let mut huge = bytes.clone();
        huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = PcapReader::new(huge.as_slice()).unwrap();
        assert!(matches!(
            r.next(),
            Some(Err(PcapError::RecordTooLarge { .. }))
        ));
        // Writer limits.
        assert!(matches!(
            PcapWriter::with_options(Vec::new(), 0, 1),
            Err(PcapError::ZeroSnaplen)
        ));
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        assert!(matches!(
            w.write_packet(u64::MAX, &[], 0),
            Err(PcapError::TimestampOutOfRange(_))
        ));
    }
}
