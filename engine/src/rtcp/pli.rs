//! The picture loss indication (PSFB PT 206, FMT 1, RFC 4585 section 6.3.1).
//!
//! Only the feedback header: packet sender and media source SSRCs, no FCI (length 2).

use crate::rtcp::header::{
    Frame, begin_packet, fci_error, finish_packet, frame_exact, split_feedback,
};
use crate::rtcp::{FMT_PLI, PT_PSFB, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::Writer;

/// A picture loss indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pli {
    /// The SSRC of the packet sender.
    pub sender_ssrc: Ssrc,
    /// The SSRC of the media source that should send a key frame.
    pub media_ssrc: Ssrc,
}

impl Pli {
    /// Parses `buf` as exactly one PLI, which carries no FCI.
    pub fn parse(buf: &[u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_PSFB, Some(FMT_PLI))?)
    }

    pub(crate) fn from_frame(f: &Frame<'_>) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, fci) = split_feedback(f)?;
        if !fci.is_empty() {
            return Err(fci_error(f, fci.len()));
        }
        Ok(Self {
            sender_ssrc,
            media_ssrc,
        })
    }

    /// Writes the PLI and returns its length (12).
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, RtcpError> {
        let mut w = Writer::new(buf);
        w.reserve(12)?;
        let start = begin_packet(&mut w, FMT_PLI, PT_PSFB)?;
        w.put_u32(self.sender_ssrc.0)?;
        w.put_u32(self.media_ssrc.0)?;
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let pli = Pli {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(0xdead_beef),
        };
        let mut buf = [0u8; 12];
        assert_eq!(pli.write(&mut buf), Ok(12));
        assert_eq!(buf, [0x81, 206, 0, 2, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Pli::parse(&buf), Ok(pli));
    }

    #[test]
    fn rejects_fci() {
        let buf = [0x81, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0];
        assert_eq!(
            Pli::parse(&buf),
            Err(RtcpError::FciLength {
                pt: 206,
                fmt: 1,
                len: 4
            })
        );
        assert!(matches!(
            Pli {
                sender_ssrc: Ssrc(1),
                media_ssrc: Ssrc(2)
            }
            .write(&mut [0u8; 11]),
            Err(RtcpError::BufferTooSmall { need: 12, have: 11 })
        ));
    }
}
