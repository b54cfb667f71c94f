//! The goodbye packet (BYE, PT 203, RFC 3550 section 6.6).
//!
//! ```text
//! |V=2|P|    SC   |   PT=BYE=203  |             length            |
//! |                           SSRC/CSRC (SC x 32)                 |
//! |     length    |               reason for leaving (opt) ...    |
//! ```

use crate::rtcp::header::{Frame, begin_packet, finish_packet, frame_exact};
use crate::rtcp::{PT_BYE, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// The most sources the 5-bit source count allows.
pub const MAX_BYE_SOURCES: usize = 31;

/// A validated view of a BYE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goodbye<'a> {
    ssrcs: &'a [u8],
    reason: Option<&'a [u8]>,
}

impl<'a> Goodbye<'a> {
    /// Parses `buf` as exactly one BYE.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_BYE, None)?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let need = 4 * usize::from(f.header.count);
        let mut r = Reader::new(f.body);
        let ssrcs = r.take(need).ok_or(RtcpError::BodyTruncated {
            pt: f.header.pt,
            need,
            have: f.body.len(),
        })?;
        let reason = match r.u8() {
            None => None,
            Some(len) => {
                let len = usize::from(len);
                let available = r.remaining();
                Some(
                    r.take(len)
                        .ok_or(RtcpError::ByeReasonOverrun { len, available })?,
                )
            }
        };
        Ok(Self { ssrcs, reason })
    }

    /// The sources leaving.
    pub fn ssrcs(&self) -> impl ExactSizeIterator<Item = Ssrc> + 'a {
        // INVARIANT: chunks_exact(4) yields 4-byte chunks, so c[0..=3] are in bounds.
        self.ssrcs
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// The reason for leaving, if the packet carries one.
    pub fn reason(&self) -> Option<&'a [u8]> {
        self.reason
    }

    /// Writes a BYE for `ssrcs` with an optional reason and returns its length.
    pub fn write(
        buf: &mut [u8],
        ssrcs: &[Ssrc],
        reason: Option<&[u8]>,
    ) -> Result<usize, RtcpError> {
        if ssrcs.len() > MAX_BYE_SOURCES {
            return Err(RtcpError::TooManyItems {
                max: MAX_BYE_SOURCES,
                got: ssrcs.len(),
            });
        }
        let reason_len = match reason {
            Some(r) => {
                u8::try_from(r.len()).map_err(|_| RtcpError::TextTooLong { len: r.len() })?
            }
            None => 0,
        };
        let mut w = Writer::new(buf);
        // ssrcs.len() <= 31 was checked above.
        let start = begin_packet(&mut w, ssrcs.len() as u8, PT_BYE)?;
        for s in ssrcs {
            w.put_u32(s.0)?;
        }
        if let Some(r) = reason {
            w.put_u8(reason_len)?;
            w.put_slice(r)?;
        }
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_reason() {
        let mut buf = [0u8; 64];
        let n = Goodbye::write(&mut buf, &[Ssrc(1), Ssrc(2)], Some(b"bye now")).unwrap();
        assert_eq!(n, 4 + 8 + 8);
        let bye = Goodbye::parse(&buf[..n]).unwrap();
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![Ssrc(1), Ssrc(2)]);
        assert_eq!(bye.reason(), Some(&b"bye now"[..]));
        let n = Goodbye::write(&mut buf, &[Ssrc(3)], None).unwrap();
        assert_eq!(&buf[..n], &[0x81, 203, 0, 1, 0, 0, 0, 3]);
        let bye = Goodbye::parse(&buf[..n]).unwrap();
        assert_eq!(bye.reason(), None);
        let n = Goodbye::write(&mut buf, &[], Some(b"")).unwrap();
        assert_eq!(Goodbye::parse(&buf[..n]).unwrap().reason(), Some(&b""[..]));
    }

    #[test]
    fn rejects_overruns_and_misuse() {
        let buf = [0x82, 203, 0, 1, 0, 0, 0, 3];
        assert_eq!(
            Goodbye::parse(&buf),
            Err(RtcpError::BodyTruncated {
                pt: 203,
                need: 8,
                have: 4
            })
        );
        let buf = [0x81, 203, 0, 2, 0, 0, 0, 3, 4, b'a', b'b', b'c'];
        assert_eq!(
            Goodbye::parse(&buf),
            Err(RtcpError::ByeReasonOverrun {
                len: 4,
                available: 3
            })
        );
        let mut out = [0u8; 600];
        assert_eq!(
            Goodbye::write(&mut out, &[], Some(&[b'x'; 256])),
            Err(RtcpError::TextTooLong { len: 256 })
        );
        assert_eq!(
            Goodbye::write(&mut out, &[Ssrc(0); 32], None),
            Err(RtcpError::TooManyItems { max: 31, got: 32 })
        );
    }
}
