//! The full intra request (PSFB PT 206, FMT 4, RFC 5104 section 4.3.1).
//!
//! ```text
//! |V=2|P| FMT=4   |   PT=206      |          length               |
//! |                  SSRC of packet sender                        |
//! |             SSRC of media source (unused, 0)                  |
//! |                              SSRC                             |  (one or more)
//! | Seq nr.       |    Reserved                                   |
//! ```

use crate::rtcp::header::{
    Frame, begin_packet, finish_packet, frame_exact, split_feedback_entries,
};
use crate::rtcp::{FMT_FIR, PT_PSFB, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::Writer;

/// One FIR entry: the media sender asked for a decoder refresh, and the request's command
/// sequence number (incremented per new request, repeated on retransmission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntry {
    /// The media sender that should send a decoder refresh point.
    pub ssrc: Ssrc,
    /// The command sequence number.
    pub seq_nr: u8,
}

/// A validated view of a FIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fir<'a> {
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    fci: &'a [u8],
}

impl<'a> Fir<'a> {
    /// Parses `buf` as exactly one FIR with at least one entry.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_PSFB, Some(FMT_FIR))?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, fci) = split_feedback_entries(f, 8)?;
        Ok(Self {
            sender_ssrc,
            media_ssrc,
            fci,
        })
    }

    /// The SSRC of the packet sender.
    pub fn sender_ssrc(&self) -> Ssrc {
        self.sender_ssrc
    }

    /// The media source field (RFC 5104 says it is unused and set to 0).
    pub fn media_ssrc(&self) -> Ssrc {
        self.media_ssrc
    }

    /// The FCI entries.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = FirEntry> + 'a {
        // INVARIANT: chunks_exact(8) yields 8-byte chunks, so c[0..=4] are in bounds.
        self.fci.chunks_exact(8).map(|c| FirEntry {
            ssrc: Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            seq_nr: c[4],
        })
    }

    /// Writes a FIR with `entries` (media source field 0) and returns its length.
    pub fn write(
        buf: &mut [u8],
        sender_ssrc: Ssrc,
        entries: &[FirEntry],
    ) -> Result<usize, RtcpError> {
        if entries.is_empty() {
            return Err(RtcpError::EmptyFeedback);
        }
        let mut w = Writer::new(buf);
        w.reserve(12 + 8 * entries.len())?;
        let start = begin_packet(&mut w, FMT_FIR, PT_PSFB)?;
        w.put_u32(sender_ssrc.0)?;
        w.put_u32(0)?;
        for e in entries {
            w.put_u32(e.ssrc.0)?;
            w.put_u8(e.seq_nr)?;
            w.put_zeros(3)?;
        }
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let entries = [
            FirEntry {
                ssrc: Ssrc(10),
                seq_nr: 1,
            },
            FirEntry {
                ssrc: Ssrc(11),
                seq_nr: 255,
            },
        ];
        let mut buf = [0u8; 64];
        let n = Fir::write(&mut buf, Ssrc(3), &entries).unwrap();
        assert_eq!(n, 28);
        assert_eq!(&buf[..4], &[0x84, 206, 0, 6]);
        let fir = Fir::parse(&buf[..n]).unwrap();
        assert_eq!(fir.sender_ssrc(), Ssrc(3));
        assert_eq!(fir.media_ssrc(), Ssrc(0));
        assert_eq!(fir.entries().collect::<Vec<_>>(), entries);
    }

    #[test]
    fn rejects_partial_entries_and_empty_input() {
        let buf = [0x84, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(
            Fir::parse(&buf),
            Err(RtcpError::FciLength {
                pt: 206,
                fmt: 4,
                len: 4
            })
        );
        assert_eq!(
            Fir::write(&mut [0u8; 32], Ssrc(1), &[]),
            Err(RtcpError::EmptyFeedback)
        );
    }
}
