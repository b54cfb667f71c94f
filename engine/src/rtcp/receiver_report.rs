//! The receiver report (RR, PT 201, RFC 3550 section 6.4.2).
//!
//! ```text
//! |V=2|P|    RC   |   PT=RR=201   |             length            |
//! |                     SSRC of packet sender                     |
//! |                 report blocks (RC x 24 bytes)                 |
//! |                  profile-specific extensions                  |
//! ```

use crate::rtcp::header::{Frame, begin_packet, finish_packet, frame_exact};
use crate::rtcp::sender_report::MAX_REPORT_BLOCKS;
use crate::rtcp::{PT_RR, ReportBlock, ReportBlocks, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// A validated view of a receiver report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    ssrc: Ssrc,
    blocks: &'a [u8],
    profile_extension: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    /// Parses `buf` as exactly one RR.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_RR, None)?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let blocks_len = usize::from(f.header.count) * ReportBlock::LEN;
        let too_short = RtcpError::BodyTruncated {
            pt: f.header.pt,
            need: 4 + blocks_len,
            have: f.body.len(),
        };
        let mut r = Reader::new(f.body);
        let ssrc = r.u32().ok_or(too_short)?;
        let blocks = r.take(blocks_len).ok_or(too_short)?;
        Ok(Self {
            ssrc: Ssrc(ssrc),
            blocks,
            profile_extension: r.rest(),
        })
    }

    /// The SSRC of the packet sender.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The reception report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        ReportBlocks::new(self.blocks)
    }

    /// Profile-specific extension bytes after the report blocks.
    pub fn profile_extension(&self) -> &'a [u8] {
        self.profile_extension
    }

    /// Writes an RR at the start of `buf` and returns its length. An RR with no blocks is
    /// the required first packet of a compound from a participant that neither sends nor
    /// receives yet.
    pub fn write(buf: &mut [u8], ssrc: Ssrc, blocks: &[ReportBlock]) -> Result<usize, RtcpError> {
        if blocks.len() > MAX_REPORT_BLOCKS {
            return Err(RtcpError::TooManyItems {
                max: MAX_REPORT_BLOCKS,
                got: blocks.len(),
            });
        }
        let mut w = Writer::new(buf);
        w.reserve(8 + blocks.len() * ReportBlock::LEN)?;
        // blocks.len() <= 31 was checked above.
        let start = begin_packet(&mut w, blocks.len() as u8, PT_RR)?;
        w.put_u32(ssrc.0)?;
        for b in blocks {
            w.put_slice(&b.to_bytes())?;
        }
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_empty_and_full() {
        let mut buf = [0u8; 1024];
        let n = ReceiverReport::write(&mut buf, Ssrc(7), &[]).unwrap();
        assert_eq!(&buf[..n], &[0x80, 201, 0, 1, 0, 0, 0, 7]);
        let rr = ReceiverReport::parse(&buf[..n]).unwrap();
        assert_eq!(rr.ssrc(), Ssrc(7));
        assert_eq!(rr.report_blocks().len(), 0);

        let blocks: Vec<_> = (0..31)
            .map(|i| ReportBlock {
                ssrc: Ssrc(i),
                cumulative_lost: i as i32 - 15,
                ..Default::default()
            })
            .collect();
        let n = ReceiverReport::write(&mut buf, Ssrc(7), &blocks).unwrap();
        assert_eq!(n, 8 + 31 * 24);
        let rr = ReceiverReport::parse(&buf[..n]).unwrap();
        assert_eq!(rr.report_blocks().collect::<Vec<_>>(), blocks);
        assert_eq!(rr.profile_extension(), b"");
    }

    #[test]
    fn rejects_missing_blocks_and_wrong_type() {
        let buf = [0x81, 201, 0, 1, 0, 0, 0, 7];
        assert_eq!(
            ReceiverReport::parse(&buf),
            Err(RtcpError::BodyTruncated {
                pt: 201,
                need: 28,
                have: 4
            })
        );
        let sr = [0x80, 200, 0, 1, 0, 0, 0, 7];
        assert_eq!(
            ReceiverReport::parse(&sr),
            Err(RtcpError::WrongPacketType { pt: 200, fmt: 0 })
        );
        let empty = [0x80, 201, 0, 0];
        assert_eq!(
            ReceiverReport::parse(&empty),
            Err(RtcpError::BodyTruncated {
                pt: 201,
                need: 4,
                have: 0
            })
        );
    }
}
