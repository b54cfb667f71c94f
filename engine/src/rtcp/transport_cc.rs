//! Transport-wide congestion control feedback (RTPFB PT 205, FMT 15,
//! draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1).
//!
//! ```text
//! |V=2|P|  FMT=15 |    PT=205     |           length              |
//! |                     SSRC of packet sender                     |
//! |                      SSRC of media source                     |
//! |      base sequence number     |      packet status count      |
//! |                 reference time                | fb pkt. count |
//! |          packet chunk         |         packet chunk          |  ...
//! |         recv delta            |  recv delta   | zero padding  |  ...
//! ```
//! Chunks give one status per sequence number from the base: a run-length chunk
//! (`0 | symbol (2) | run length (13)`) or a status vector chunk (`1 | 0 | 14 one-bit
//! symbols` or `1 | 1 | 7 two-bit symbols`). Symbols: 0 not received, 1 received with a
//! small delta (1 byte, 0..=255), 2 received with a large or negative delta (2 bytes,
//! signed), 3 reserved. Deltas are in 250 us ticks; the first is relative to the reference
//! time (24-bit signed, in 64 ms units), each next one to the previous received packet.

use crate::rtcp::header::{Frame, begin_packet, finish_packet, frame_exact, split_feedback};
use crate::rtcp::{FMT_TWCC, PT_RTPFB, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// Microseconds per receive delta tick.
pub const DELTA_TICK_US: i64 = 250;
/// Microseconds per reference time unit.
pub const REFERENCE_TIME_UNIT_US: i64 = 64_000;

const SYMBOL_NOT_RECEIVED: u8 = 0;
const SYMBOL_SMALL_DELTA: u8 = 1;
const SYMBOL_LARGE_DELTA: u8 = 2;
const SYMBOL_RESERVED: u8 = 3;
/// The longest run a run-length chunk holds (13 bits).
const MAX_RUN: usize = 0x1fff;
/// Reference time units per delta ticks: 64 ms / 250 us.
const TICKS_PER_REFERENCE_UNIT: i64 = REFERENCE_TIME_UNIT_US / DELTA_TICK_US;

/// One packet status: its transport-wide sequence number and, if it was received, its
/// receive delta in microseconds (a multiple of 250, possibly negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccStatus {
    /// The transport-wide sequence number.
    pub seq: u16,
    /// The receive delta from the previous received packet (or the reference time).
    pub delta_us: Option<i32>,
}

/// A decoded packet chunk: where its symbols come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// `len` copies of `symbol`.
    Run { symbol: u8, len: u16 },
    /// 14 one-bit or 7 two-bit symbols packed in the low 14 bits.
    Vector { bits: u16, two_bit: bool },
}

impl Chunk {
    fn decode(word: u16) -> Self {
        if word & 0x8000 == 0 {
            Chunk::Run {
                symbol: ((word >> 13) & 0x03) as u8,
                len: word & 0x1fff,
            }
        } else {
            Chunk::Vector {
                bits: word & 0x3fff,
                two_bit: word & 0x4000 != 0,
            }
        }
    }

    /// How many statuses the chunk holds.
    fn len(self) -> usize {
        match self {
            Chunk::Run { len, .. } => usize::from(len),
            Chunk::Vector { two_bit: false, .. } => 14,
            Chunk::Vector { two_bit: true, .. } => 7,
        }
    }

    /// The `i`th symbol (i < len()).
    fn symbol(self, i: usize) -> u8 {
        match self {
            Chunk::Run { symbol, .. } => symbol,
            Chunk::Vector {
                bits,
                two_bit: false,
            } => ((bits >> (13 - i.min(13))) & 0x01) as u8,
            Chunk::Vector {
                bits,
                two_bit: true,
            } => ((bits >> (12 - 2 * i.min(6))) & 0x03) as u8,
        }
    }
}

/// Bytes of receive delta a symbol takes.
fn delta_size(symbol: u8) -> usize {
    match symbol {
        SYMBOL_SMALL_DELTA => 1,
        SYMBOL_LARGE_DELTA => 2,
        _ => 0,
    }
}

/// A validated view of a transport-wide CC feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportCc<'a> {
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    base_seq: u16,
    status_count: u16,
    reference_time: i32,
    fb_pkt_count: u8,
    chunks: &'a [u8],
    deltas: &'a [u8],
}

impl<'a> TransportCc<'a> {
    /// Parses `buf` as exactly one transport-wide CC feedback, checking that the chunks cover
    /// the status count, use no reserved symbol, and that every delta they call for is there.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_RTPFB, Some(FMT_TWCC))?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, fci) = split_feedback(f)?;
        let mut r = Reader::new(fci);
        let (Some(base_seq), Some(status_count), Some(word)) = (r.u16(), r.u16(), r.array::<4>())
        else {
            return Err(RtcpError::FciLength {
                pt: f.header.pt,
                fmt: f.header.count,
                len: fci.len(),
            });
        };
        // Sign-extend the 24-bit reference time.
        let reference_time = i32::from_be_bytes([word[0], word[1], word[2], 0]) >> 8;
        let chunks_start = r.rest();
        let wanted = usize::from(status_count);
        let mut covered = 0usize;
        let mut delta_bytes = 0usize;
        while covered < wanted {
            let word = r.u16().ok_or(RtcpError::TwccChunksTruncated {
                status_count,
                covered,
            })?;
            let chunk = Chunk::decode(word);
            let used = chunk.len().min(wanted - covered);
            match chunk {
                Chunk::Run { symbol, .. } => {
                    if symbol == SYMBOL_RESERVED && used > 0 {
                        return Err(RtcpError::TwccReservedSymbol);
                    }
                    delta_bytes += used * delta_size(symbol);
                }
                Chunk::Vector { .. } => {
                    for i in 0..used {
                        let symbol = chunk.symbol(i);
                        if symbol == SYMBOL_RESERVED {
                            return Err(RtcpError::TwccReservedSymbol);
                        }
                        delta_bytes += delta_size(symbol);
                    }
                }
            }
            covered += used;
        }
        let chunks_len = chunks_start.len() - r.remaining();
        let chunks = chunks_start.get(..chunks_len).unwrap_or(&[]);
        let have = r.remaining();
        let deltas = r.take(delta_bytes).ok_or(RtcpError::TwccDeltasTruncated {
            need: delta_bytes,
            have,
        })?;
        Ok(Self {
            sender_ssrc,
            media_ssrc,
            base_seq,
            status_count,
            reference_time,
            fb_pkt_count: word[3],
            chunks,
            deltas,
        })
    }

    /// The SSRC of the packet sender.
    pub fn sender_ssrc(&self) -> Ssrc {
        self.sender_ssrc
    }

    /// The media source field.
    pub fn media_ssrc(&self) -> Ssrc {
        self.media_ssrc
    }

    /// The transport-wide sequence number of the first status.
    pub fn base_seq(&self) -> u16 {
        self.base_seq
    }

    /// How many statuses the feedback carries.
    pub fn status_count(&self) -> u16 {
        self.status_count
    }

    /// The reference time in 64 ms units (signed 24 bits).
    pub fn reference_time(&self) -> i32 {
        self.reference_time
    }

    /// The reference time in microseconds; adding the deltas in order gives each received
    /// packet's arrival time on the feedback sender's clock.
    pub fn reference_time_us(&self) -> i64 {
        i64::from(self.reference_time) * REFERENCE_TIME_UNIT_US
    }

    /// The feedback packet count, to detect lost feedback.
    pub fn fb_pkt_count(&self) -> u8 {
        self.fb_pkt_count
    }

    /// One status per sequence number from the base, in order.
    pub fn statuses(&self) -> TwccStatuses<'a> {
        TwccStatuses {
            chunks: Reader::new(self.chunks),
            deltas: Reader::new(self.deltas),
            seq: self.base_seq,
            left: self.status_count,
            chunk: None,
            index: 0,
        }
    }

    /// Writes a transport-wide CC feedback and returns its length.
    ///
    /// `arrivals` lists the received packets as `(seq, arrival_us)` in increasing
    /// (wrap-aware) sequence order starting at or after `base_seq`; the statuses run from
    /// `base_seq` to the last one, the ones in between not listed being "not received". The
    /// reference time is the first arrival rounded down to 64 ms. Arrival times are on any
    /// microsecond clock; deltas are rounded to 250 us ticks without accumulating error.
    pub fn write(
        buf: &mut [u8],
        sender_ssrc: Ssrc,
        media_ssrc: Ssrc,
        base_seq: u16,
        fb_pkt_count: u8,
        arrivals: &[(u16, u64)],
    ) -> Result<usize, RtcpError> {
        let Some(&(_, first_us)) = arrivals.first() else {
            return Err(RtcpError::EmptyFeedback);
        };
        let reference = i64::try_from(first_us).unwrap_or(i64::MAX) / REFERENCE_TIME_UNIT_US;
        let base_ticks = reference * TICKS_PER_REFERENCE_UNIT;
        // Check order and delta ranges before writing anything. Each sequence number must be
        // after the previous one (less than half the space ahead) and, counted from the base,
        // further than it; the first must not be before the base.
        let mut prev: Option<(u16, u16)> = None;
        let mut prev_ticks = base_ticks;
        for (index, &(seq, arrival_us)) in arrivals.iter().enumerate() {
            let offset = seq.wrapping_sub(base_seq);
            let ordered = match prev {
                None => offset < 0x8000,
                Some((prev_seq, prev_offset)) => {
                    offset > prev_offset && seq.wrapping_sub(prev_seq) < 0x8000
                }
            };
            if !ordered {
                return Err(RtcpError::TwccUnordered { index });
            }
            prev = Some((seq, offset));
            let ticks = ticks_of(arrival_us);
            let delta_ticks = ticks - prev_ticks;
            if i16::try_from(delta_ticks).is_err() {
                return Err(RtcpError::TwccDeltaOutOfRange { seq, delta_ticks });
            }
            prev_ticks = ticks;
        }
        let last_offset = prev.map_or(0, |(_, offset)| offset);
        let status_count = last_offset.checked_add(1).ok_or(RtcpError::TooManyItems {
            max: usize::from(u16::MAX),
            got: usize::from(u16::MAX) + 1,
        })?;

        let mut w = Writer::new(buf);
        let start = begin_packet(&mut w, FMT_TWCC, PT_RTPFB)?;
        w.put_u32(sender_ssrc.0)?;
        w.put_u32(media_ssrc.0)?;
        w.put_u16(base_seq)?;
        w.put_u16(status_count)?;
        // The low 24 bits of the reference time, then the feedback count.
        let reference_bits = (reference as u32) & 0x00ff_ffff;
        w.put_u32((reference_bits << 8) | u32::from(fb_pkt_count))?;

        let mut symbols = Symbols {
            arrivals,
            base_seq,
            next: 0,
            offset: 0,
            prev_ticks: base_ticks,
        };
        let mut left = usize::from(status_count);
        while left > 0 {
            let first = symbols.clone().next().unwrap_or(SYMBOL_NOT_RECEIVED);
            // At least 1, so the loop always progresses (Symbols yields `left` more items).
            let run = symbols
                .clone()
                .take(left.min(MAX_RUN))
                .take_while(|&s| s == first)
                .count()
                .max(1);
            let worth_run = if first == SYMBOL_LARGE_DELTA { 7 } else { 14 };
            let used = if run >= worth_run || run == left {
                // run <= MAX_RUN fits 13 bits; first <= 2 fits 2.
                w.put_u16((u16::from(first) << 13) | run as u16)?;
                run
            } else {
                let n = left.min(14);
                if symbols.clone().take(n).all(|s| s <= SYMBOL_SMALL_DELTA) {
                    let mut word = 0x8000u16;
                    for (i, s) in symbols.clone().take(n).enumerate() {
                        word |= u16::from(s) << (13 - i);
                    }
                    w.put_u16(word)?;
                    n
                } else {
                    let n = left.min(7);
                    let mut word = 0xc000u16;
                    for (i, s) in symbols.clone().take(n).enumerate() {
                        word |= u16::from(s) << (12 - 2 * i);
                    }
                    w.put_u16(word)?;
                    n
                }
            };
            for _ in 0..used {
                symbols.next();
            }
            left -= used;
        }

        let mut prev_ticks = base_ticks;
        for &(_, arrival_us) in arrivals {
            let ticks = ticks_of(arrival_us);
            let delta = ticks - prev_ticks;
            prev_ticks = ticks;
            match u8::try_from(delta) {
                Ok(small) => w.put_u8(small)?,
                // Range-checked to i16 above.
                Err(_) => w.put_u16((delta as i16) as u16)?,
            }
        }
        finish_packet(&mut w, start)
    }
}

/// An arrival time in 250 us ticks.
fn ticks_of(arrival_us: u64) -> i64 {
    i64::try_from(arrival_us / 250).unwrap_or(i64::MAX)
}

/// The status symbol of every sequence number from the base, for the chunk encoder.
/// Cheap to clone for look-ahead; assumes the arrivals were validated.
#[derive(Debug, Clone)]
struct Symbols<'a> {
    arrivals: &'a [(u16, u64)],
    base_seq: u16,
    /// Index of the next arrival not yet passed.
    next: usize,
    /// Offset from the base of the next status.
    offset: u16,
    prev_ticks: i64,
}

impl Iterator for Symbols<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let &(seq, arrival_us) = self.arrivals.get(self.next)?;
        let here = self.offset;
        self.offset = self.offset.wrapping_add(1);
        if seq.wrapping_sub(self.base_seq) != here {
            return Some(SYMBOL_NOT_RECEIVED);
        }
        self.next += 1;
        let ticks = ticks_of(arrival_us);
        let delta = ticks - self.prev_ticks;
        self.prev_ticks = ticks;
        Some(if (0..=255).contains(&delta) {
            SYMBOL_SMALL_DELTA
        } else {
            SYMBOL_LARGE_DELTA
        })
    }
}

/// An iterator over the statuses of a validated transport-wide CC feedback.
#[derive(Debug, Clone)]
pub struct TwccStatuses<'a> {
    chunks: Reader<'a>,
    deltas: Reader<'a>,
    seq: u16,
    left: u16,
    chunk: Option<Chunk>,
    /// Symbols of the current chunk used so far.
    index: usize,
}

impl Iterator for TwccStatuses<'_> {
    type Item = TwccStatus;

    fn next(&mut self) -> Option<TwccStatus> {
        if self.left == 0 {
            return None;
        }
        let chunk = loop {
            match self.chunk {
                Some(c) if self.index < c.len() => break c,
                _ => {
                    self.chunk = Some(Chunk::decode(self.chunks.u16()?));
                    self.index = 0;
                }
            }
        };
        let symbol = chunk.symbol(self.index);
        self.index += 1;
        let delta_ticks = match symbol {
            SYMBOL_SMALL_DELTA => Some(i32::from(self.deltas.u8()?)),
            SYMBOL_LARGE_DELTA => Some(i32::from(self.deltas.u16()? as i16)),
            _ => None,
        };
        let status = TwccStatus {
            seq: self.seq,
            // At most 32_767 * 250, well inside i32.
            delta_us: delta_ticks.map(|t| t * DELTA_TICK_US as i32),
        };
        self.seq = self.seq.wrapping_add(1);
        self.left -= 1;
        Some(status)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(base: u16, arrivals: &[(u16, u64)]) -> (usize, Vec<TwccStatus>) {
        let mut buf = vec![0u8; 65_536];
        let n = TransportCc::write(&mut buf, Ssrc(1), Ssrc(2), base, 7, arrivals).unwrap();
        assert_eq!(n % 4, 0);
        let fb = TransportCc::parse(&buf[..n]).unwrap();
        assert_eq!(fb.base_seq(), base);
        assert_eq!(fb.fb_pkt_count(), 7);
        assert_eq!(fb.sender_ssrc(), Ssrc(1));
        assert_eq!(fb.media_ssrc(), Ssrc(2));
        let statuses: Vec<_> = fb.statuses().collect();
        assert_eq!(statuses.len(), usize::from(fb.status_count()));
        // Rebuild the arrival times from the reference time and the deltas.
        let mut t = fb.reference_time_us();
        let mut got = Vec::new();
        for s in &statuses {
            if let Some(d) = s.delta_us {
                t += i64::from(d);
                got.push((s.seq, t));
            }
        }
        assert_eq!(got.len(), arrivals.len());
        for ((seq, us), (gseq, gus)) in arrivals.iter().zip(&got) {
            assert_eq!(seq, gseq);
            assert_eq!(*us as i64 / 250 * 250, *gus, "seq {seq}");
        }
        (n, statuses)
    }

    #[test]
    fn decodes_a_hand_made_feedback() {
        // Base 10, 4 statuses: a 2-bit vector chunk [small, not, large, small] then deltas
        // 4 ticks, -8 ticks, 255 ticks. Reference time -1 (0xffffff).
        let fci_chunk: u16 = 0xc000 | (1 << 12) | (2 << 8) | (1 << 6);
        let mut buf = vec![
            0x8f, 205, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 10, 0, 4, 0xff, 0xff, 0xff, 3,
        ];
        buf.extend_from_slice(&fci_chunk.to_be_bytes());
        buf.extend_from_slice(&[4, 0xff, 0xf8, 255, 0, 0]);
        buf[3] = (buf.len() / 4 - 1) as u8;
        let fb = TransportCc::parse(&buf).unwrap();
        assert_eq!(fb.reference_time(), -1);
        assert_eq!(fb.reference_time_us(), -64_000);
        assert_eq!(fb.fb_pkt_count(), 3);
        let s: Vec<_> = fb.statuses().map(|s| (s.seq, s.delta_us)).collect();
        assert_eq!(
            s,
            vec![
                (10, Some(1_000)),
                (11, None),
                (12, Some(-2_000)),
                (13, Some(63_750))
            ]
        );
    }

    #[test]
    fn run_length_and_one_bit_chunks() {
        // 20 received in a row then 3 lost then 5 received: run chunk, then mixed.
        let mut arrivals = Vec::new();
        for i in 0..20u16 {
            arrivals.push((100 + i, 1_000_000 + u64::from(i) * 1_000));
        }
        for i in 23..28u16 {
            arrivals.push((100 + i, 1_000_000 + u64::from(i) * 1_000));
        }
        let (n, statuses) = round_trip(100, &arrivals);
        assert_eq!(statuses.len(), 28);
        assert_eq!(statuses[20].delta_us, None);
        assert_eq!(statuses[23].delta_us, Some(4_000));
        // Header 20 + 2 chunks (run of 20, then 1-bit vector of 8) + 25 deltas -> 48.
        assert_eq!(n, 20 + 4 + 25 + 3);
    }

    #[test]
    fn large_and_negative_deltas_use_two_bit_chunks() {
        let arrivals = [
            (65_534u16, 5_000_000u64),
            (65_535, 5_000_000 + 100_000), // 400 ticks: large
            (1, 5_000_000 + 50_000),       // negative: large
            (2, 5_000_000 + 50_250),       // small
        ];
        let (_, statuses) = round_trip(65_533, &arrivals);
        let seqs: Vec<_> = statuses.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![65_533, 65_534, 65_535, 0, 1, 2]);
        assert_eq!(statuses[0].delta_us, None);
        assert_eq!(statuses[2].delta_us, Some(100_000));
        assert_eq!(statuses[4].delta_us, Some(-50_000));
        assert_eq!(statuses[5].delta_us, Some(250));
    }

    #[test]
    fn long_gaps_and_long_runs() {
        // A lost run longer than one run-length chunk holds, and a long received run.
        let mut arrivals = vec![(0u16, 64_000u64)];
        for i in 0..9_000u16 {
            arrivals.push((10_000 + i, 64_000 + u64::from(i) * 500));
        }
        let (n, statuses) = round_trip(0, &arrivals);
        assert_eq!(statuses.len(), 19_000);
        assert!(n < 20 + 2 * 10 + 9_001 + 4, "compact: {n}");
    }

    #[test]
    fn every_short_pattern_round_trips() {
        // All 3^8 patterns of (lost, small, large) over 8 packets after a received base.
        for pattern in 0..3u32.pow(8) {
            let mut arrivals = vec![(500u16, 1_000_000u64)];
            let mut t = 1_000_000u64;
            let mut p = pattern;
            for i in 1..=8u16 {
                match p % 3 {
                    0 => {}
                    1 => {
                        t += 1_000;
                        arrivals.push((500 + i, t));
                    }
                    _ => {
                        t += 100_000;
                        arrivals.push((500 + i, t));
                    }
                }
                p /= 3;
            }
            round_trip(500, &arrivals);
            // Starting the feedback before the first arrival reports leading losses.
            let (_, statuses) = round_trip(495, &arrivals);
            assert_eq!(statuses[0].delta_us, None);
        }
    }

    #[test]
    fn writer_refuses_misuse() {
        let mut buf = [0u8; 64];
        assert_eq!(
            TransportCc::write(&mut buf, Ssrc(1), Ssrc(2), 0, 0, &[]),
            Err(RtcpError::EmptyFeedback)
        );
        assert_eq!(
            TransportCc::write(&mut buf, Ssrc(1), Ssrc(2), 0, 0, &[(5, 0), (5, 1)]),
            Err(RtcpError::TwccUnordered { index: 1 })
        );
        assert_eq!(
            TransportCc::write(&mut buf, Ssrc(1), Ssrc(2), 10, 0, &[(11, 0), (9, 1)]),
            Err(RtcpError::TwccUnordered { index: 1 })
        );
        assert_eq!(
            TransportCc::write(&mut buf, Ssrc(1), Ssrc(2), 10, 0, &[(9, 0)]),
            Err(RtcpError::TwccUnordered { index: 0 })
        );
        // Steps under half the space each, but spanning all 65536 statuses.
        assert_eq!(
            TransportCc::write(
                &mut buf,
                Ssrc(1),
                Ssrc(2),
                0,
                0,
                &[(0, 0), (30_000, 0), (60_000, 0), (65_535, 0)]
            ),
            Err(RtcpError::TooManyItems {
                max: 65_535,
                got: 65_536
            })
        );
        assert_eq!(
            TransportCc::write(
                &mut buf,
                Ssrc(1),
                Ssrc(2),
                0,
                0,
                &[(1, 0), (2, 250 * 40_000)]
            ),
            Err(RtcpError::TwccDeltaOutOfRange {
                seq: 2,
                delta_ticks: 40_000
            })
        );
        assert!(matches!(
            TransportCc::write(&mut buf[..20], Ssrc(1), Ssrc(2), 0, 0, &[(0, 0)]),
            Err(RtcpError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn rejects_malformed_fci() {
        let head = |count: u16| {
            let mut b = vec![0x8f, 205, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0];
            b.extend_from_slice(&count.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 0]);
            b
        };
        let fix_len = |mut b: Vec<u8>| {
            b.resize(b.len().next_multiple_of(4), 0);
            b[3] = (b.len() / 4 - 1) as u8;
            b
        };
        // Status count 20 but one run chunk of 10 then padding zeros (a run of 0 lost).
        let mut b = head(20);
        b.extend_from_slice(&(10u16).to_be_bytes());
        let b = fix_len(b);
        assert_eq!(
            TransportCc::parse(&b),
            Err(RtcpError::TwccChunksTruncated {
                status_count: 20,
                covered: 10
            })
        );
        // Reserved symbol in a run.
        let mut b = head(1);
        b.extend_from_slice(&(0x6001u16).to_be_bytes());
        assert_eq!(
            TransportCc::parse(&fix_len(b)),
            Err(RtcpError::TwccReservedSymbol)
        );
        // Reserved symbol in a 2-bit vector.
        let mut b = head(1);
        b.extend_from_slice(&(0xf000u16).to_be_bytes());
        assert_eq!(
            TransportCc::parse(&fix_len(b)),
            Err(RtcpError::TwccReservedSymbol)
        );
        // Reserved symbol past the status count is ignored.
        let mut b = head(1);
        b.extend_from_slice(&(0xc000u16 | 0x0003).to_be_bytes());
        assert!(TransportCc::parse(&fix_len(b)).is_ok());
        // Three large deltas need 6 bytes; 2 present.
        let mut b = head(3);
        b.extend_from_slice(&(0x4003u16).to_be_bytes());
        b.extend_from_slice(&[0, 1]);
        assert_eq!(
            TransportCc::parse(&fix_len(b)),
            Err(RtcpError::TwccDeltasTruncated { need: 6, have: 2 })
        );
        let b = fix_len(vec![0x8f, 205, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]);
        assert_eq!(
            TransportCc::parse(&b),
            Err(RtcpError::FciLength {
                pt: 205,
                fmt: 15,
                len: 4
            })
        );
    }
}
