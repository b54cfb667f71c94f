//! The reception report block carried by SR and RR packets (RFC 3550 section 6.4.1).
//!
//! ```text
//! |                 SSRC_n (source identifier)                    |
//! | fraction lost |       cumulative number of packets lost       |
//! |           extended highest sequence number received           |
//! |                      interarrival jitter                      |
//! |                         last SR (LSR)                         |
//! |                   delay since last SR (DLSR)                  |
//! ```

use std::time::Duration;

use crate::rtcp::NtpTime;
use crate::rtcp::ntp_time::compact_to_duration;
use crate::rtp::Ssrc;

/// The largest cumulative loss the signed 24-bit field holds.
pub const CUMULATIVE_LOST_MAX: i32 = 0x7f_ffff;
/// The smallest (most duplicated) cumulative loss the signed 24-bit field holds.
pub const CUMULATIVE_LOST_MIN: i32 = -0x80_0000;

/// One reception report block, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Packets lost since the previous report, as a fixed-point fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost since reception began (signed 24 bits; negative with duplicates).
    pub cumulative_lost: i32,
    /// The extended highest sequence number received (cycles in the high 16 bits).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter_ticks: u32,
    /// The middle 32 bits of the NTP timestamp of the last SR received, 0 if none.
    pub lsr: u32,
    /// The delay since that SR was received, in units of 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    /// Bytes of a report block.
    pub const LEN: usize = 24;

    /// Decodes a block.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        // Sign-extend the 24-bit field by placing it in the top of an i32 and shifting back.
        let lost = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
        Self {
            ssrc: Ssrc(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            fraction_lost: b[4],
            cumulative_lost: lost,
            highest_seq: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            jitter_ticks: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            lsr: u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
            dlsr: u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
        }
    }

    /// Encodes the block; the cumulative loss is clamped to the signed 24-bit range.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        // Constant ranges inside the 24-byte array and the 4-byte `lost`: cannot panic.
        let mut b = [0u8; Self::LEN];
        let lost = self
            .cumulative_lost
            .clamp(CUMULATIVE_LOST_MIN, CUMULATIVE_LOST_MAX)
            .to_be_bytes();
        b[..4].copy_from_slice(&self.ssrc.0.to_be_bytes());
        b[4] = self.fraction_lost;
        b[5..8].copy_from_slice(&lost[1..]);
        b[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter_ticks.to_be_bytes());
        b[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        b[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
        b
    }

    /// The delay since last SR as a duration.
    pub fn dlsr_duration(&self) -> Duration {
        compact_to_duration(self.dlsr)
    }

    /// The round-trip time this block implies when it arrives at `now` (RFC 3550 section
    /// 6.4.1: arrival time - LSR - DLSR, all in the middle 32 bits of NTP time).
    ///
    /// `None` when the block carries no LSR (the peer has not received an SR from us). A
    /// negative result (clock error, or a DLSR larger than the elapsed time) counts as zero.
    pub fn rtt(&self, now: NtpTime) -> Option<Duration> {
        if self.lsr == 0 {
            return None;
        }
        let compact = now
            .middle32()
            .wrapping_sub(self.lsr)
            .wrapping_sub(self.dlsr);
        // Reinterpreting as i32 tells a small negative difference from a large positive one.
        if (compact as i32) < 0 {
            return Some(Duration::ZERO);
        }
        Some(compact_to_duration(compact))
    }
}

/// An iterator over the report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    rest: &'a [u8],
}

impl<'a> ReportBlocks<'a> {
    /// Iterates the whole 24-byte blocks of `bytes`.
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let (b, rest) = self.rest.split_first_chunk::<{ ReportBlock::LEN }>()?;
        self.rest = rest;
        Some(ReportBlock::from_bytes(b))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() / ReportBlock::LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sign_extends() {
        let rb = ReportBlock {
            ssrc: Ssrc(0x0102_0304),
            fraction_lost: 0x40,
            cumulative_lost: -3,
            highest_seq: 0x0001_fffe,
            jitter_ticks: 77,
            lsr: 0xaabb_ccdd,
            dlsr: 0x0001_8000,
        };
        let b = rb.to_bytes();
        assert_eq!(&b[4..8], &[0x40, 0xff, 0xff, 0xfd]);
        assert_eq!(ReportBlock::from_bytes(&b), rb);
        assert_eq!(rb.dlsr_duration(), Duration::from_millis(1_500));
    }

    #[test]
    fn cumulative_loss_clamps_to_24_bits() {
        for (given, wire) in [
            (10_000_000, CUMULATIVE_LOST_MAX),
            (-10_000_000, CUMULATIVE_LOST_MIN),
            (CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MAX),
            (CUMULATIVE_LOST_MIN, CUMULATIVE_LOST_MIN),
            (0, 0),
        ] {
            let rb = ReportBlock {
                cumulative_lost: given,
                ..Default::default()
            };
            assert_eq!(
                ReportBlock::from_bytes(&rb.to_bytes()).cumulative_lost,
                wire
            );
        }
    }

    #[test]
    fn rtt_per_rfc3550_6_4_1() {
        // The RFC's worked example: an SR sent at 0xb705:2000 (compact) arrives, the report
        // block comes back with DLSR 5.25 s (0x0005:4000), received at 0xb710:8000 (compact).
        let rb = ReportBlock {
            lsr: 0xb705_2000,
            dlsr: 0x0005_4000,
            ..Default::default()
        };
        let now = NtpTime(0xb710_8000u64 << 16);
        // 0xb710:8000 - 0xb705:2000 - 0x0005:4000 = 0x0006:2000 = 6.125 s.
        assert_eq!(rb.rtt(now), Some(Duration::from_millis(6_125)));
        let early = NtpTime(0xb705_2000u64 << 16);
        assert_eq!(rb.rtt(early), Some(Duration::ZERO));
        let none = ReportBlock::default();
        assert_eq!(none.rtt(now), None);
    }

    #[test]
    fn iterates_whole_blocks_only() {
        let mut bytes = [0u8; 50];
        bytes[0] = 1;
        bytes[24] = 2;
        let it = ReportBlocks::new(&bytes[..48]);
        assert_eq!(it.len(), 2);
        let ssrcs: Vec<_> = it.map(|b| b.ssrc.0 >> 24).collect();
        assert_eq!(ssrcs, vec![1, 2]);
        assert_eq!(ReportBlocks::new(&bytes[..23]).count(), 0);
    }
}
