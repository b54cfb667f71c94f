//! The generic NACK (RTPFB PT 205, FMT 1, RFC 4585 section 6.2.1).
//!
//! ```text
//! |V=2|P| FMT=1   |   PT=205      |          length               |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source                         |
//! |            PID                |             BLP               |  (one or more)
//! ```
//! PID is a lost packet's sequence number; bit i of BLP (least significant first) reports
//! PID + i + 1 lost as well.

use crate::rtcp::header::{
    Frame, begin_packet, finish_packet, frame_exact, split_feedback_entries,
};
use crate::rtcp::{FMT_NACK, PT_RTPFB, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::Writer;

/// One FCI entry: a lost packet and a bitmask of the 16 after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackEntry {
    /// The packet ID: a lost sequence number.
    pub pid: u16,
    /// Bitmask of following lost packets: bit i set means PID + i + 1 is lost.
    pub blp: u16,
}

impl NackEntry {
    /// The lost sequence numbers this entry reports, PID first.
    pub fn lost(self) -> impl Iterator<Item = u16> {
        std::iter::once(self.pid).chain(
            (0..16u16)
                .filter(move |i| self.blp & (1 << i) != 0)
                .map(move |i| self.pid.wrapping_add(i + 1)),
        )
    }
}

/// A validated view of a generic NACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack<'a> {
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    fci: &'a [u8],
}

impl<'a> Nack<'a> {
    /// Parses `buf` as exactly one generic NACK with at least one entry.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_RTPFB, Some(FMT_NACK))?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, fci) = split_feedback_entries(f, 4)?;
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

    /// The SSRC of the media source the lost packets belong to.
    pub fn media_ssrc(&self) -> Ssrc {
        self.media_ssrc
    }

    /// The FCI entries.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = NackEntry> + 'a {
        // INVARIANT: chunks_exact(4) yields 4-byte chunks, so c[0..=3] are in bounds.
        self.fci.chunks_exact(4).map(|c| NackEntry {
            pid: u16::from_be_bytes([c[0], c[1]]),
            blp: u16::from_be_bytes([c[2], c[3]]),
        })
    }

    /// Every lost sequence number reported, in entry order.
    pub fn lost(&self) -> impl Iterator<Item = u16> + 'a {
        self.entries().flat_map(NackEntry::lost)
    }

    /// Writes a generic NACK for the sequence numbers in `lost` and returns its length.
    ///
    /// Packs each run of up to 17 numbers into one entry; given in increasing (wrap-aware)
    /// order this is the fewest entries. Repeats of an entry's PID are dropped.
    pub fn write(
        buf: &mut [u8],
        sender_ssrc: Ssrc,
        media_ssrc: Ssrc,
        lost: impl IntoIterator<Item = u16>,
    ) -> Result<usize, RtcpError> {
        let mut w = Writer::new(buf);
        let start = begin_packet(&mut w, FMT_NACK, PT_RTPFB)?;
        w.put_u32(sender_ssrc.0)?;
        w.put_u32(media_ssrc.0)?;
        let mut current: Option<NackEntry> = None;
        for seq in lost {
            if let Some(e) = current.as_mut() {
                let d = seq.wrapping_sub(e.pid);
                if d == 0 {
                    continue;
                }
                if d <= 16 {
                    e.blp |= 1 << (d - 1);
                    continue;
                }
                w.put_u16(e.pid)?;
                w.put_u16(e.blp)?;
            }
            current = Some(NackEntry { pid: seq, blp: 0 });
        }
        let Some(last) = current else {
            return Err(RtcpError::EmptyFeedback);
        };
        w.put_u16(last.pid)?;
        w.put_u16(last.blp)?;
        finish_packet(&mut w, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_expands_pid_and_bitmask() {
        let e = NackEntry {
            pid: 65_534,
            blp: 0b1000_0000_0000_0101,
        };
        assert_eq!(e.lost().collect::<Vec<_>>(), vec![65_534, 65_535, 1, 14]);
    }

    #[test]
    fn builds_compactly_and_parses_back() {
        let lost = [100u16, 101, 105, 116, 117, 200, 65_535, 0, 3];
        let mut buf = [0u8; 64];
        let n = Nack::write(&mut buf, Ssrc(1), Ssrc(2), lost).unwrap();
        let nack = Nack::parse(&buf[..n]).unwrap();
        assert_eq!(nack.sender_ssrc(), Ssrc(1));
        assert_eq!(nack.media_ssrc(), Ssrc(2));
        let entries: Vec<_> = nack.entries().collect();
        assert_eq!(
            entries,
            vec![
                NackEntry {
                    pid: 100,
                    blp: 0b1000_0000_0001_0001
                },
                NackEntry { pid: 117, blp: 0 },
                NackEntry { pid: 200, blp: 0 },
                NackEntry {
                    pid: 65_535,
                    blp: 0b1001
                },
            ]
        );
        assert_eq!(nack.lost().collect::<Vec<_>>(), lost);
        assert_eq!(n, 12 + 4 * 4);
    }

    #[test]
    fn every_gap_pattern_of_17_round_trips_in_one_entry() {
        let mut buf = [0u8; 16];
        for mask in 0..=u16::MAX {
            let lost: Vec<u16> = std::iter::once(40_000)
                .chain((0..16).filter(|i| mask & (1 << i) != 0).map(|i| 40_001 + i))
                .collect();
            let n = Nack::write(&mut buf, Ssrc(1), Ssrc(2), lost.iter().copied()).unwrap();
            assert_eq!(n, 16);
            let nack = Nack::parse(&buf[..n]).unwrap();
            assert_eq!(nack.lost().collect::<Vec<_>>(), lost);
        }
    }

    #[test]
    fn rejects_bad_fci_and_empty_input() {
        let buf = [0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(
            Nack::parse(&buf),
            Err(RtcpError::FciLength {
                pt: 205,
                fmt: 1,
                len: 0
            })
        );
        let buf = [0x81, 205, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            Nack::parse(&buf),
            Err(RtcpError::BodyTruncated {
                pt: 205,
                need: 8,
                have: 4
            })
        );
        let buf = [0x8f, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(
            Nack::parse(&buf),
            Err(RtcpError::WrongPacketType { pt: 205, fmt: 15 })
        );
        let mut out = [0u8; 32];
        assert_eq!(
            Nack::write(&mut out, Ssrc(1), Ssrc(2), []),
            Err(RtcpError::EmptyFeedback)
        );
        assert!(matches!(
            Nack::write(&mut out[..15], Ssrc(1), Ssrc(2), [1]),
            Err(RtcpError::BufferTooSmall { .. })
        ));
    }
}
