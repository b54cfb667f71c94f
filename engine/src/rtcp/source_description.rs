//! The source description (SDES, PT 202, RFC 3550 section 6.5).
//!
//! ```text
//! |V=2|P|    SC   |  PT=SDES=202  |             length            |
//! |                          SSRC/CSRC_1                          |   chunk 1
//! |  type (8)  |  length (8)  |  text (length bytes) ...  | ...   |   items
//! |  0 (end)   |  0 padding to the next 32-bit boundary           |
//! |                          SSRC/CSRC_2                          |   chunk 2 ...
//! ```
//! Each chunk's item list ends with at least one zero octet, and the chunk is padded with
//! zeros to a 32-bit boundary.

use crate::rtcp::header::{Frame, begin_packet, finish_packet, frame_exact};
use crate::rtcp::{PT_SDES, RtcpError};
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// The most chunks the 5-bit source count allows.
pub const MAX_SDES_CHUNKS: usize = 31;

/// The type of an SDES item (RFC 3550 sections 6.5.1-6.5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdesType {
    /// Canonical end-point identifier (1).
    Cname,
    /// User name (2).
    Name,
    /// Electronic mail address (3).
    Email,
    /// Phone number (4).
    Phone,
    /// Geographic user location (5).
    Loc,
    /// Application or tool name (6).
    Tool,
    /// Notice/status (7).
    Note,
    /// Private extension (8): the text starts with a prefix length and prefix.
    Priv,
    /// Any other type (0 only ends a chunk and never appears as an item).
    Other(u8),
}

impl SdesType {
    /// The type octet.
    pub fn code(self) -> u8 {
        match self {
            SdesType::Cname => 1,
            SdesType::Name => 2,
            SdesType::Email => 3,
            SdesType::Phone => 4,
            SdesType::Loc => 5,
            SdesType::Tool => 6,
            SdesType::Note => 7,
            SdesType::Priv => 8,
            SdesType::Other(c) => c,
        }
    }
}

impl From<u8> for SdesType {
    fn from(c: u8) -> Self {
        match c {
            1 => SdesType::Cname,
            2 => SdesType::Name,
            3 => SdesType::Email,
            4 => SdesType::Phone,
            5 => SdesType::Loc,
            6 => SdesType::Tool,
            7 => SdesType::Note,
            8 => SdesType::Priv,
            c => SdesType::Other(c),
        }
    }
}

/// One SDES item: a type and its text (UTF-8 by the RFC, not checked here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// The item type.
    pub kind: SdesType,
    /// The item text, at most 255 bytes.
    pub text: &'a [u8],
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    ssrc: Ssrc,
    /// The items, up to (not including) the terminating zero octet.
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// The source the items describe.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The items of the chunk.
    pub fn items(&self) -> SdesItems<'a> {
        SdesItems {
            r: Reader::new(self.items),
        }
    }

    /// The text of the first item of type `kind`.
    pub fn item(&self, kind: SdesType) -> Option<&'a [u8]> {
        self.items().find(|i| i.kind == kind).map(|i| i.text)
    }
}

/// Cuts the first chunk off `buf` (which starts on a 32-bit boundary); `None` if it runs
/// past the end.
fn split_chunk(buf: &[u8]) -> Option<(SdesChunk<'_>, &[u8])> {
    let mut r = Reader::new(buf);
    let ssrc = Ssrc(r.u32()?);
    let items_start = r.rest();
    loop {
        let kind = r.u8()?;
        if kind == 0 {
            break;
        }
        let len = r.u8()?;
        r.take(usize::from(len))?;
    }
    let used = buf.len() - r.remaining();
    // The items end one byte before the terminating zero octet just read.
    let items = items_start.get(..used - 5)?;
    r.take(used.next_multiple_of(4) - used)?;
    Some((SdesChunk { ssrc, items }, r.rest()))
}

/// A validated view of an SDES packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDescription<'a> {
    count: u8,
    chunks: &'a [u8],
}

impl<'a> SourceDescription<'a> {
    /// Parses `buf` as exactly one SDES packet: every chunk the source count declares must be
    /// complete and nothing may follow the last one.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        Self::from_frame(&frame_exact(buf, PT_SDES, None)?)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let mut rest = f.body;
        for chunk in 0..usize::from(f.header.count) {
            let (_, after) = split_chunk(rest).ok_or(RtcpError::SdesChunkTruncated { chunk })?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err(RtcpError::SdesTrailingBytes {
                chunks: f.header.count,
                trailing: rest.len(),
            });
        }
        Ok(Self {
            count: f.header.count,
            chunks: f.body,
        })
    }

    /// The chunks.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            rest: self.chunks,
            left: self.count,
        }
    }

    /// Writes an SDES packet with one chunk per `(source, items)` and returns its length.
    pub fn write(buf: &mut [u8], chunks: &[(Ssrc, &[SdesItem<'_>])]) -> Result<usize, RtcpError> {
        if chunks.len() > MAX_SDES_CHUNKS {
            return Err(RtcpError::TooManyItems {
                max: MAX_SDES_CHUNKS,
                got: chunks.len(),
            });
        }
        for (_, items) in chunks {
            for item in *items {
                if item.kind.code() == 0 {
                    return Err(RtcpError::SdesEndItem);
                }
                if item.text.len() > 255 {
                    return Err(RtcpError::TextTooLong {
                        len: item.text.len(),
                    });
                }
            }
        }
        let mut w = Writer::new(buf);
        // chunks.len() <= 31 was checked above.
        let start = begin_packet(&mut w, chunks.len() as u8, PT_SDES)?;
        for (ssrc, items) in chunks {
            w.put_u32(ssrc.0)?;
            for item in *items {
                w.put_u8(item.kind.code())?;
                // Checked <= 255 above.
                w.put_u8(item.text.len() as u8)?;
                w.put_slice(item.text)?;
            }
            // The end octet, then zeros to the boundary (chunks start on one).
            w.put_u8(0)?;
            let used = w.pos() - start;
            w.put_zeros(used.next_multiple_of(4) - used)?;
        }
        finish_packet(&mut w, start)
    }

    /// Writes an SDES packet carrying only the CNAME of `ssrc`, the one item every compound
    /// must carry (RFC 3550 section 6.1).
    pub fn write_cname(buf: &mut [u8], ssrc: Ssrc, cname: &[u8]) -> Result<usize, RtcpError> {
        let items = [SdesItem {
            kind: SdesType::Cname,
            text: cname,
        }];
        Self::write(buf, &[(ssrc, &items)])
    }
}

/// An iterator over the chunks of a validated SDES packet.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;

    fn next(&mut self) -> Option<SdesChunk<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (chunk, rest) = split_chunk(self.rest)?;
        self.rest = rest;
        Some(chunk)
    }
}

/// An iterator over the items of one chunk.
#[derive(Debug, Clone)]
pub struct SdesItems<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;

    fn next(&mut self) -> Option<SdesItem<'a>> {
        let kind = self.r.u8()?;
        let len = self.r.u8()?;
        let text = self.r.take(usize::from(len))?;
        Some(SdesItem {
            kind: SdesType::from(kind),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_chunks_and_items() {
        let a = [
            SdesItem {
                kind: SdesType::Cname,
                text: b"user@host",
            },
            SdesItem {
                kind: SdesType::Tool,
                text: b"chorus",
            },
        ];
        let b = [SdesItem {
            kind: SdesType::Other(42),
            text: b"",
        }];
        let mut buf = [0u8; 128];
        let n = SourceDescription::write(&mut buf, &[(Ssrc(1), &a), (Ssrc(2), &b), (Ssrc(3), &[])])
            .unwrap();
        assert_eq!(n % 4, 0);
        let sdes = SourceDescription::parse(&buf[..n]).unwrap();
        let chunks: Vec<_> = sdes.chunks().collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].ssrc(), Ssrc(1));
        assert_eq!(chunks[0].items().collect::<Vec<_>>(), a);
        assert_eq!(chunks[0].item(SdesType::Cname), Some(&b"user@host"[..]));
        assert_eq!(chunks[1].items().collect::<Vec<_>>(), b);
        assert_eq!(chunks[2].items().count(), 0);
        assert_eq!(chunks[2].item(SdesType::Cname), None);
    }

    #[test]
    fn cname_layout_pads_with_at_least_one_zero() {
        let mut buf = [0u8; 64];
        // 4 SSRC + 2 + 2 text = 8 bytes: a whole extra word of zeros is needed for the end.
        let n = SourceDescription::write_cname(&mut buf, Ssrc(0xaabb_ccdd), b"ab").unwrap();
        assert_eq!(
            &buf[..n],
            &[
                0x81, 202, 0, 3, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, b'a', b'b', 0, 0, 0, 0
            ]
        );
        // 4 SSRC + 2 + 3 text + 1 end = 10 bytes: padded with two more zeros.
        let n = SourceDescription::write_cname(&mut buf, Ssrc(1), b"abc").unwrap();
        assert_eq!(n, 16);
        assert_eq!(&buf[8..12], &[1, 3, b'a', b'b']);
        assert_eq!(&buf[12..16], &[b'c', 0, 0, 0]);
    }

    #[test]
    fn rejects_truncated_chunks_and_trailing_bytes() {
        // SC=1 but no terminating zero inside the packet.
        let buf = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b'];
        assert_eq!(
            SourceDescription::parse(&buf),
            Err(RtcpError::SdesChunkTruncated { chunk: 0 })
        );
        // Item length overruns.
        let buf = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', 0];
        assert_eq!(
            SourceDescription::parse(&buf),
            Err(RtcpError::SdesChunkTruncated { chunk: 0 })
        );
        // SC=2 with one chunk.
        let buf = [0x82, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            SourceDescription::parse(&buf),
            Err(RtcpError::SdesChunkTruncated { chunk: 1 })
        );
        // SC=0 with a chunk.
        let buf = [0x80, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            SourceDescription::parse(&buf),
            Err(RtcpError::SdesTrailingBytes {
                chunks: 0,
                trailing: 8
            })
        );
        let empty = [0x80, 202, 0, 0];
        assert_eq!(
            SourceDescription::parse(&empty).unwrap().chunks().count(),
            0
        );
    }

    #[test]
    fn writer_refuses_misuse() {
        let mut buf = [0u8; 600];
        let long = [b'x'; 256];
        let item = [SdesItem {
            kind: SdesType::Note,
            text: &long,
        }];
        assert_eq!(
            SourceDescription::write(&mut buf, &[(Ssrc(1), &item)]),
            Err(RtcpError::TextTooLong { len: 256 })
        );
        let end = [SdesItem {
            kind: SdesType::Other(0),
            text: b"",
        }];
        assert_eq!(
            SourceDescription::write(&mut buf, &[(Ssrc(1), &end)]),
            Err(RtcpError::SdesEndItem)
        );
        let many: Vec<(Ssrc, &[SdesItem<'_>])> = (0..32).map(|i| (Ssrc(i), &[][..])).collect();
        assert_eq!(
            SourceDescription::write(&mut buf, &many),
            Err(RtcpError::TooManyItems { max: 31, got: 32 })
        );
        assert!(matches!(
            SourceDescription::write_cname(&mut buf[..10], Ssrc(1), b"abc"),
            Err(RtcpError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn type_codes_round_trip() {
        for c in 0..=u8::MAX {
            assert_eq!(SdesType::from(c).code(), c);
        }
    }
}
