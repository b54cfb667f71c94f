//! The RTCP common header (RFC 3550 section 6.4.1) and the framing every packet shares.
//!
//! ```text
//! |V=2|P|  count  |      PT       |             length            |
//! ```
//! `length` is the packet's size in 32-bit words minus one, header and padding included.
//! `count` is the report/source count, the feedback message type (FMT) or the APP subtype.

use crate::rtcp::RtcpError;
use crate::rtp::Ssrc;
use crate::rtp::cursor::{Reader, Writer};

/// Sender report (RFC 3550 section 6.4.1).
pub const PT_SR: u8 = 200;
/// Receiver report (RFC 3550 section 6.4.2).
pub const PT_RR: u8 = 201;
/// Source description (RFC 3550 section 6.5).
pub const PT_SDES: u8 = 202;
/// Goodbye (RFC 3550 section 6.6).
pub const PT_BYE: u8 = 203;
/// Application-defined (RFC 3550 section 6.7).
pub const PT_APP: u8 = 204;
/// Transport layer feedback (RFC 4585 section 6.2).
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585 section 6.3).
pub const PT_PSFB: u8 = 206;

/// RTPFB FMT: generic NACK (RFC 4585 section 6.2.1).
pub const FMT_NACK: u8 = 1;
/// RTPFB FMT: transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01).
pub const FMT_TWCC: u8 = 15;
/// PSFB FMT: picture loss indication (RFC 4585 section 6.3.1).
pub const FMT_PLI: u8 = 1;
/// PSFB FMT: full intra request (RFC 5104 section 4.3.1).
pub const FMT_FIR: u8 = 4;
/// PSFB FMT: application layer feedback, which carries REMB (RFC 4585 section 6.4).
pub const FMT_AFB: u8 = 15;

/// The RTCP version this parser accepts.
const RTCP_VERSION: u8 = 2;

/// A decoded RTCP common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpHeader {
    /// The P bit.
    pub padding: bool,
    /// The 5-bit count field: RC, SC, FMT or APP subtype depending on the packet type.
    pub count: u8,
    /// The packet type.
    pub pt: u8,
    /// The length field: packet size in 32-bit words minus one.
    pub length_words: u16,
}

impl RtcpHeader {
    /// Bytes of the common header.
    pub const LEN: usize = 4;

    /// Decodes the common header at the start of `buf` (version 2 required).
    pub fn parse(buf: &[u8]) -> Result<Self, RtcpError> {
        let Some(h) = buf.first_chunk::<4>() else {
            return Err(RtcpError::HeaderTruncated { len: buf.len() });
        };
        let version = h[0] >> 6;
        if version != RTCP_VERSION {
            return Err(RtcpError::BadVersion(version));
        }
        Ok(Self {
            padding: h[0] & 0x20 != 0,
            count: h[0] & 0x1f,
            pt: h[1],
            length_words: u16::from_be_bytes([h[2], h[3]]),
        })
    }

    /// Bytes of the whole packet, header and padding included.
    pub fn packet_len(&self) -> usize {
        (usize::from(self.length_words) + 1) * 4
    }
}

/// One packet cut out of a buffer by its length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) header: RtcpHeader,
    /// The whole packet.
    pub(crate) packet: &'a [u8],
    /// After the common header, padding removed.
    pub(crate) body: &'a [u8],
}

/// Cuts the first packet out of `buf`, which may hold more after it.
pub(crate) fn frame(buf: &[u8]) -> Result<Frame<'_>, RtcpError> {
    let header = RtcpHeader::parse(buf)?;
    let declared = header.packet_len();
    let Some(packet) = buf.get(..declared) else {
        return Err(RtcpError::LengthOverrun {
            declared,
            available: buf.len(),
        });
    };
    // packet_len() >= 4, so the body slice exists.
    let mut body = packet.get(RtcpHeader::LEN..).unwrap_or(&[]);
    if header.padding {
        let pad = body.last().copied().unwrap_or(0);
        if pad == 0 {
            return Err(RtcpError::ZeroPadding);
        }
        let Some(unpadded) = body.len().checked_sub(usize::from(pad)) else {
            return Err(RtcpError::PaddingOverrun {
                pad,
                available: body.len(),
            });
        };
        body = body.get(..unpadded).unwrap_or(&[]);
    }
    Ok(Frame {
        header,
        packet,
        body,
    })
}

/// Cuts `buf` as exactly one packet of type `pt` (and format `fmt`, if given).
pub(crate) fn frame_exact(buf: &[u8], pt: u8, fmt: Option<u8>) -> Result<Frame<'_>, RtcpError> {
    let f = frame(buf)?;
    if f.packet.len() != buf.len() {
        return Err(RtcpError::LengthMismatch {
            declared: f.packet.len(),
            actual: buf.len(),
        });
    }
    if f.header.pt != pt || fmt.is_some_and(|fmt| fmt != f.header.count) {
        return Err(RtcpError::WrongPacketType {
            pt: f.header.pt,
            fmt: f.header.count,
        });
    }
    Ok(f)
}

/// Reads the packet sender and media source SSRCs that start every feedback message
/// (RFC 4585 section 6.1) and returns them with the FCI.
pub(crate) fn split_feedback<'a>(f: &Frame<'a>) -> Result<(Ssrc, Ssrc, &'a [u8]), RtcpError> {
    let mut r = Reader::new(f.body);
    match (r.u32(), r.u32()) {
        (Some(sender), Some(media)) => Ok((Ssrc(sender), Ssrc(media), r.rest())),
        _ => Err(RtcpError::BodyTruncated {
            pt: f.header.pt,
            need: 8,
            have: f.body.len(),
        }),
    }
}

/// The error for a feedback packet whose FCI has the wrong length.
pub(crate) fn fci_error(f: &Frame<'_>, len: usize) -> RtcpError {
    RtcpError::FciLength {
        pt: f.header.pt,
        fmt: f.header.count,
        len,
    }
}

/// Splits a feedback packet whose FCI is one or more entries of `entry_len` bytes.
pub(crate) fn split_feedback_entries<'a>(
    f: &Frame<'a>,
    entry_len: usize,
) -> Result<(Ssrc, Ssrc, &'a [u8]), RtcpError> {
    let (sender, media, fci) = split_feedback(f)?;
    if fci.is_empty() || !fci.len().is_multiple_of(entry_len) {
        return Err(fci_error(f, fci.len()));
    }
    Ok((sender, media, fci))
}

/// Writes a common header with a placeholder length; [`finish_packet`] fills it in.
/// Returns where the packet starts.
pub(crate) fn begin_packet(w: &mut Writer<'_>, count: u8, pt: u8) -> Result<usize, RtcpError> {
    let start = w.pos();
    w.put_u8((RTCP_VERSION << 6) | (count & 0x1f))?;
    w.put_u8(pt)?;
    w.put_u16(0)?;
    Ok(start)
}

/// Pads the packet begun at `start` with zeros to a 32-bit boundary, fills in its length
/// field, and returns its size.
pub(crate) fn finish_packet(w: &mut Writer<'_>, start: usize) -> Result<usize, RtcpError> {
    let unpadded = w.pos() - start;
    let len = unpadded.next_multiple_of(4);
    w.put_zeros(len - unpadded)?;
    let words = u16::try_from(len / 4 - 1).map_err(|_| RtcpError::PacketTooLong { len })?;
    w.patch_u16(start + 2, words)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_header_fields() {
        let h = RtcpHeader::parse(&[0xa5, 201, 0x00, 0x07]).unwrap();
        assert_eq!(
            h,
            RtcpHeader {
                padding: true,
                count: 5,
                pt: 201,
                length_words: 7
            }
        );
        assert_eq!(h.packet_len(), 32);
        assert_eq!(
            RtcpHeader::parse(&[0x80, 200, 0]),
            Err(RtcpError::HeaderTruncated { len: 3 })
        );
        assert_eq!(
            RtcpHeader::parse(&[0x40, 200, 0, 0]),
            Err(RtcpError::BadVersion(1))
        );
    }

    #[test]
    fn frames_with_and_without_padding() {
        let buf = [0x80, 203, 0, 1, 1, 2, 3, 4, 0xff];
        let f = frame(&buf).unwrap();
        assert_eq!(f.packet.len(), 8);
        assert_eq!(f.body, &[1, 2, 3, 4]);
        assert_eq!(
            frame_exact(&buf, 203, None),
            Err(RtcpError::LengthMismatch {
                declared: 8,
                actual: 9
            })
        );
        assert_eq!(
            frame_exact(&buf[..8], 200, None),
            Err(RtcpError::WrongPacketType { pt: 203, fmt: 0 })
        );
        let padded = [0xa0, 203, 0, 1, 1, 0, 0, 3];
        assert_eq!(frame(&padded).unwrap().body, &[1]);
        let zero = [0xa0, 203, 0, 1, 1, 0, 0, 0];
        assert_eq!(frame(&zero), Err(RtcpError::ZeroPadding));
        let over = [0xa0, 203, 0, 1, 1, 0, 0, 5];
        assert_eq!(
            frame(&over),
            Err(RtcpError::PaddingOverrun {
                pad: 5,
                available: 4
            })
        );
        let header_only_padded = [0xa0, 203, 0, 0];
        assert_eq!(frame(&header_only_padded), Err(RtcpError::ZeroPadding));
        assert_eq!(
            frame(&[0x80, 203, 0, 2, 0, 0, 0, 0]),
            Err(RtcpError::LengthOverrun {
                declared: 12,
                available: 8
            })
        );
    }

    #[test]
    fn writer_pads_and_fills_length() {
        let mut buf = [0xffu8; 12];
        let mut w = Writer::new(&mut buf);
        let start = begin_packet(&mut w, 3, PT_APP).unwrap();
        w.put_u8(9).unwrap();
        assert_eq!(finish_packet(&mut w, start), Ok(8));
        assert_eq!(&buf[..8], &[0x83, 204, 0, 1, 9, 0, 0, 0]);
    }
}
