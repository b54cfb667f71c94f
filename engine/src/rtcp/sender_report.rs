//! The sender report (SR, PT 200, RFC 3550 section 6.4.1).
//!
//! ```text
//! |V=2|P|    RC   |   PT=SR=200   |             length            |
//! |                         SSRC of sender                        |
//! |              NTP timestamp, most significant word             |
//! |             NTP timestamp, least significant word             |
//! |                         RTP timestamp                         |
//! |                     sender's packet count                     |
//! |                      sender's octet count                     |
//! |                 report blocks (RC x 24 bytes)                 |
//! |                  profile-specific extensions                  |
//! ```

use crate::rtcp::header::{Frame, begin_packet, finish_packet, frame_exact};
use crate::rtcp::{NtpTime, PT_SR, ReportBlock, ReportBlocks, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// The most report blocks the 5-bit count field allows.
pub const MAX_REPORT_BLOCKS: usize = 31;

/// The sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// The sender's SSRC.
    pub ssrc: Ssrc,
    /// The wall-clock time the report was sent.
    pub ntp: NtpTime,
    /// The same instant in the RTP clock of the sender's media.
    pub rtp_timestamp: u32,
    /// RTP packets sent since the start of transmission.
    pub packet_count: u32,
    /// RTP payload octets sent since the start of transmission.
    pub octet_count: u32,
}

/// A validated view of a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    info: SenderInfo,
    blocks: &'a [u8],
    profile_extension: &'a [u8],
}

impl<'a> SenderReport<'a> {
    /// Parses `buf` as exactly one SR.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_SR, None)?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let blocks_len = usize::from(f.header.count) * ReportBlock::LEN;
        let need = 24 + blocks_len;
        let mut r = Reader::new(f.body);
        let too_short = RtcpError::BodyTruncated {
            pt: f.header.pt,
            need,
            have: f.body.len(),
        };
        let (Some(ssrc), Some(ntp), Some(rtp_timestamp), Some(packet_count), Some(octet_count)) =
            (r.u32(), r.u64(), r.u32(), r.u32(), r.u32())
        else {
            return Err(too_short);
        };
        let blocks = r.take(blocks_len).ok_or(too_short)?;
        Ok(Self {
            info: SenderInfo {
                ssrc: Ssrc(ssrc),
                ntp: NtpTime(ntp),
                rtp_timestamp,
                packet_count,
                octet_count,
            },
            blocks,
            profile_extension: r.rest(),
        })
    }

    /// The sender information.
    pub fn info(&self) -> &SenderInfo {
        &self.info
    }

    /// The sender's SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.info.ssrc
    }

    /// The reception report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        ReportBlocks::new(self.blocks)
    }

    /// Profile-specific extension bytes after the report blocks.
    pub fn profile_extension(&self) -> &'a [u8] {
        self.profile_extension
    }

    /// Writes an SR at the start of `buf` and returns its length.
    pub fn write(
        buf: &mut [u8],
        info: &SenderInfo,
        blocks: &[ReportBlock],
    ) -> Result<usize, RtcpError> {
        if blocks.len() > MAX_REPORT_BLOCKS {
            return Err(RtcpError::TooManyItems {
                max: MAX_REPORT_BLOCKS,
                got: blocks.len(),
            });
        }
        let mut w = Writer::new(buf);
        w.reserve(28 + blocks.len() * ReportBlock::LEN)?;
        // blocks.len() <= 31 was checked above.
        let start = begin_packet(&mut w, blocks.len() as u8, PT_SR)?;
        w.put_u32(info.ssrc.0)?;
        w.put_u64(info.ntp.0)?;
        w.put_u32(info.rtp_timestamp)?;
        w.put_u32(info.packet_count)?;
        w.put_u32(info.octet_count)?;
        for b in blocks {
            w.put_slice(&b.to_bytes())?;
        }
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> SenderInfo {
        SenderInfo {
            ssrc: Ssrc(0x1111_2222),
            ntp: NtpTime(0xe000_0000_8000_0000),
            rtp_timestamp: 48_000,
            packet_count: 50,
            octet_count: 8_000,
        }
    }

    #[test]
    fn round_trips_with_blocks() {
        let blocks = [
            ReportBlock {
                ssrc: Ssrc(5),
                fraction_lost: 3,
                cumulative_lost: -1,
                highest_seq: 0x1_0005,
                jitter_ticks: 12,
                lsr: 9,
                dlsr: 10,
            },
            ReportBlock {
                ssrc: Ssrc(6),
                ..Default::default()
            },
        ];
        let mut buf = [0u8; 128];
        let n = SenderReport::write(&mut buf, &info(), &blocks).unwrap();
        assert_eq!(n, 28 + 48);
        assert_eq!(&buf[..4], &[0x82, 200, 0, 18]);
        let sr = SenderReport::parse(&buf[..n]).unwrap();
        assert_eq!(*sr.info(), info());
        assert_eq!(sr.ssrc(), Ssrc(0x1111_2222));
        assert_eq!(sr.report_blocks().collect::<Vec<_>>(), blocks);
        assert_eq!(sr.profile_extension(), b"");
    }

    #[test]
    fn keeps_profile_extension_and_rejects_short_bodies() {
        let mut buf = [0u8; 64];
        let n = SenderReport::write(&mut buf, &info(), &[]).unwrap();
        assert_eq!(n, 28);
        // Append one word of profile extension and fix the length.
        buf[n..n + 4].copy_from_slice(b"ext!");
        buf[3] = 7;
        let sr = SenderReport::parse(&buf[..32]).unwrap();
        assert_eq!(sr.profile_extension(), b"ext!");
        assert_eq!(sr.report_blocks().len(), 0);
        // Claim one report block that is not there.
        buf[0] = 0x81;
        assert_eq!(
            SenderReport::parse(&buf[..32]),
            Err(RtcpError::BodyTruncated {
                pt: 200,
                need: 48,
                have: 28
            })
        );
        // Body too short for sender info.
        let short = [0x80, 200, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            SenderReport::parse(&short),
            Err(RtcpError::BodyTruncated {
                pt: 200,
                need: 24,
                have: 4
            })
        );
    }

    #[test]
    fn refuses_too_many_blocks_and_small_buffers() {
        let blocks = [ReportBlock::default(); 32];
        let mut buf = [0u8; 2048];
        assert_eq!(
            SenderReport::write(&mut buf, &info(), &blocks),
            Err(RtcpError::TooManyItems { max: 31, got: 32 })
        );
        assert_eq!(
            SenderReport::write(&mut buf[..27], &info(), &[]),
            Err(RtcpError::BufferTooSmall { need: 28, have: 27 })
        );
    }
}
