//! The application-defined packet (APP, PT 204, RFC 3550 section 6.7).
//!
//! ```text
//! |V=2|P| subtype |   PT=APP=204  |             length            |
//! |                           SSRC/CSRC                           |
//! |                          name (ASCII)                         |
//! |                   application-dependent data ...              |
//! ```

use crate::rtcp::header::{Frame, begin_packet, finish_packet, frame_exact};
use crate::rtcp::{PT_APP, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// A validated view of an APP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App<'a> {
    subtype: u8,
    ssrc: Ssrc,
    name: [u8; 4],
    data: &'a [u8],
}

impl<'a> App<'a> {
    /// Parses `buf` as exactly one APP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_APP, None)?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let mut r = Reader::new(f.body);
        let (Some(ssrc), Some(name)) = (r.u32(), r.array::<4>()) else {
            return Err(RtcpError::BodyTruncated {
                pt: f.header.pt,
                need: 8,
                have: f.body.len(),
            });
        };
        Ok(Self {
            subtype: f.header.count,
            ssrc: Ssrc(ssrc),
            name: *name,
            data: r.rest(),
        })
    }

    /// The 5-bit subtype.
    pub fn subtype(&self) -> u8 {
        self.subtype
    }

    /// The source sending the packet.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The four ASCII characters naming the application.
    pub fn name(&self) -> [u8; 4] {
        self.name
    }

    /// The application-dependent data.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Writes an APP packet and returns its length; `data` must be a multiple of 4 bytes.
    pub fn write(
        buf: &mut [u8],
        subtype: u8,
        ssrc: Ssrc,
        name: [u8; 4],
        data: &[u8],
    ) -> Result<usize, RtcpError> {
        if subtype > 0x1f {
            return Err(RtcpError::AppSubtype(subtype));
        }
        if !data.len().is_multiple_of(4) {
            return Err(RtcpError::AppDataUnaligned(data.len()));
        }
        let mut w = Writer::new(buf);
        w.reserve(12 + data.len())?;
        let start = begin_packet(&mut w, subtype, PT_APP)?;
        w.put_u32(ssrc.0)?;
        w.put_slice(&name)?;
        w.put_slice(data)?;
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = [0u8; 32];
        let n = App::write(&mut buf, 17, Ssrc(9), *b"CHRS", &[1, 2, 3, 4]).unwrap();
        assert_eq!(n, 16);
        assert_eq!(&buf[..4], &[0x91, 204, 0, 3]);
        let app = App::parse(&buf[..n]).unwrap();
        assert_eq!(app.subtype(), 17);
        assert_eq!(app.ssrc(), Ssrc(9));
        assert_eq!(&app.name(), b"CHRS");
        assert_eq!(app.data(), &[1, 2, 3, 4]);
    }

    #[test]
    fn rejects_short_body_and_misuse() {
        let buf = [0x80, 204, 0, 1, 0, 0, 0, 9];
        assert_eq!(
            App::parse(&buf),
            Err(RtcpError::BodyTruncated {
                pt: 204,
                need: 8,
                have: 4
            })
        );
        let mut out = [0u8; 32];
        assert_eq!(
            App::write(&mut out, 32, Ssrc(1), *b"abcd", &[]),
            Err(RtcpError::AppSubtype(32))
        );
        assert_eq!(
            App::write(&mut out, 0, Ssrc(1), *b"abcd", &[1]),
            Err(RtcpError::AppDataUnaligned(1))
        );
    }
}
