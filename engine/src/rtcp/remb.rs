//! Receiver estimated maximum bitrate (PSFB PT 206, FMT 15, draft-alvestrand-rmcat-remb-03).
//!
//! ```text
//! |V=2|P| FMT=15  |   PT=206      |             length            |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source (0)                     |
//! |  Unique identifier 'R' 'E' 'M' 'B'                            |
//! |  Num SSRC     | BR Exp    |  BR Mantissa (18 bits)            |
//! |   SSRC feedback (Num SSRC x 32)                               |
//! ```
//! The bitrate is mantissa * 2^exp bits per second.

use crate::rtcp::header::{
    Frame, begin_packet, fci_error, finish_packet, frame_exact, split_feedback,
};
use crate::rtcp::{FMT_AFB, PT_PSFB, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// The unique identifier that marks application layer feedback as REMB.
pub const REMB_IDENTIFIER: [u8; 4] = *b"REMB";
/// The most SSRCs the 8-bit Num SSRC field allows.
pub const MAX_REMB_SSRCS: usize = 255;

const MANTISSA_BITS: u32 = 18;

/// A validated view of a REMB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remb<'a> {
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    exp: u8,
    mantissa: u32,
    ssrcs: &'a [u8],
}

/// Whether an application layer feedback FCI carries the REMB identifier.
pub(crate) fn is_remb(fci: &[u8]) -> bool {
    fci.first_chunk::<4>() == Some(&REMB_IDENTIFIER)
}

impl<'a> Remb<'a> {
    /// Parses `buf` as exactly one REMB.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_PSFB, Some(FMT_AFB))?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, fci) = split_feedback(f)?;
        if !is_remb(fci) {
            return Err(RtcpError::NotRemb);
        }
        let mut r = Reader::new(fci);
        let (Some(_), Some(num), Some(packed)) = (r.u32(), r.u8(), r.array::<3>()) else {
            return Err(fci_error(f, fci.len()));
        };
        let available = r.remaining() / 4;
        let ssrcs = r
            .take(4 * usize::from(num))
            .ok_or(RtcpError::RembSsrcOverrun {
                declared: num,
                available,
            })?;
        Ok(Self {
            sender_ssrc,
            media_ssrc,
            exp: packed[0] >> 2,
            mantissa: u32::from_be_bytes([0, packed[0] & 0x03, packed[1], packed[2]]),
            ssrcs,
        })
    }

    /// The SSRC of the packet sender.
    pub fn sender_ssrc(&self) -> Ssrc {
        self.sender_ssrc
    }

    /// The media source field (0 for REMB).
    pub fn media_ssrc(&self) -> Ssrc {
        self.media_ssrc
    }

    /// The 6-bit exponent.
    pub fn exp(&self) -> u8 {
        self.exp
    }

    /// The 18-bit mantissa.
    pub fn mantissa(&self) -> u32 {
        self.mantissa
    }

    /// The estimated maximum bitrate in bits per second, saturating at `u64::MAX`.
    pub fn bitrate_bps(&self) -> u64 {
        let m = u64::from(self.mantissa);
        if m == 0 {
            0
        } else if u32::from(self.exp) > m.leading_zeros() {
            u64::MAX
        } else {
            m << self.exp
        }
    }

    /// The media sources the estimate applies to.
    pub fn ssrcs(&self) -> impl ExactSizeIterator<Item = Ssrc> + 'a {
        // INVARIANT: chunks_exact(4) yields 4-byte chunks, so c[0..=3] are in bounds.
        self.ssrcs
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// Writes a REMB of `bitrate_bps` (rounded down to 18 significant bits) for `ssrcs` and
    /// returns its length.
    pub fn write(
        buf: &mut [u8],
        sender_ssrc: Ssrc,
        bitrate_bps: u64,
        ssrcs: &[Ssrc],
    ) -> Result<usize, RtcpError> {
        if ssrcs.len() > MAX_REMB_SSRCS {
            return Err(RtcpError::TooManyItems {
                max: MAX_REMB_SSRCS,
                got: ssrcs.len(),
            });
        }
        let significant = u64::BITS - bitrate_bps.leading_zeros();
        let exp = significant.saturating_sub(MANTISSA_BITS);
        // exp <= 46 and the mantissa < 2^18 by construction.
        let mantissa = (bitrate_bps >> exp) as u32;
        let mut w = Writer::new(buf);
        w.reserve(20 + 4 * ssrcs.len())?;
        let start = begin_packet(&mut w, FMT_AFB, PT_PSFB)?;
        w.put_u32(sender_ssrc.0)?;
        w.put_u32(0)?;
        w.put_slice(&REMB_IDENTIFIER)?;
        // ssrcs.len() <= 255 was checked above.
        w.put_u8(ssrcs.len() as u8)?;
        w.put_u8(((exp as u8) << 2) | (mantissa >> 16) as u8)?;
        w.put_u16(mantissa as u16)?;
        for s in ssrcs {
            w.put_u32(s.0)?;
        }
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exact_and_rounded_bitrates() {
        let mut buf = [0u8; 64];
        for (given, got) in [
            (0u64, 0u64),
            (1, 1),
            (262_143, 262_143),
            (262_144, 262_144),
            (1_000_001, 1_000_000),
            (2_500_000_000, 2_499_985_408),
            (u64::MAX, ((1 << 18) - 1) << 46),
        ] {
            let n = Remb::write(&mut buf, Ssrc(1), given, &[Ssrc(5), Ssrc(6)]).unwrap();
            assert_eq!(n, 28);
            let remb = Remb::parse(&buf[..n]).unwrap();
            assert_eq!(remb.bitrate_bps(), got, "{given}");
            assert!(remb.mantissa() < 1 << 18);
            assert_eq!(remb.ssrcs().collect::<Vec<_>>(), vec![Ssrc(5), Ssrc(6)]);
            assert_eq!(remb.sender_ssrc(), Ssrc(1));
            assert_eq!(remb.media_ssrc(), Ssrc(0));
        }
    }

    #[test]
    fn decodes_a_hand_made_packet() {
        // exp 3, mantissa 0x2_0001: 131_073 * 8 = 1_048_584 bps, one SSRC.
        let buf = [
            0x8f, 206, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 1, 0x0e, 0x00, 0x01,
            0, 0, 0, 9,
        ];
        let remb = Remb::parse(&buf).unwrap();
        assert_eq!(remb.exp(), 3);
        assert_eq!(remb.mantissa(), 0x2_0001);
        assert_eq!(remb.bitrate_bps(), 1_048_584);
        assert_eq!(remb.ssrcs().collect::<Vec<_>>(), vec![Ssrc(9)]);
        // A 63 exponent with a wide mantissa saturates.
        let mut big = buf;
        big[17] = 0xff;
        assert_eq!(Remb::parse(&big).unwrap().bitrate_bps(), u64::MAX);
    }

    #[test]
    fn rejects_other_afb_and_overruns() {
        let not = [
            0x8f, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, b'G', b'O', b'O', b'G',
        ];
        assert_eq!(Remb::parse(&not), Err(RtcpError::NotRemb));
        let short = [
            0x8f, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B',
        ];
        assert_eq!(
            Remb::parse(&short),
            Err(RtcpError::FciLength {
                pt: 206,
                fmt: 15,
                len: 4
            })
        );
        let over = [
            0x8f, 206, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 2, 0, 0, 1, 0, 0, 0, 9,
        ];
        assert_eq!(
            Remb::parse(&over),
            Err(RtcpError::RembSsrcOverrun {
                declared: 2,
                available: 1
            })
        );
        assert_eq!(
            Remb::write(&mut [0u8; 2048], Ssrc(1), 1, &[Ssrc(0); 256]),
            Err(RtcpError::TooManyItems { max: 255, got: 256 })
        );
    }
}
