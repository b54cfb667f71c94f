//! The RTP header writer.

use crate::rtp::cursor::Writer;
use crate::rtp::packet::{FIXED_HEADER_LEN, RTP_VERSION};
use crate::rtp::{Extension, ExtensionForm, Pt, RtpError, Ssrc};

/// The fields of an RTP header to write: fixed part, CSRCs and RFC 8285 extensions.
///
/// `write` puts the header at the start of a caller-owned buffer; the caller writes the payload
/// after it and may then call [`write_padding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader<'a> {
    /// The M bit.
    pub marker: bool,
    /// The payload type (0-127).
    pub pt: Pt,
    /// The 16-bit wire sequence number.
    pub seq: u16,
    /// The RTP timestamp.
    pub timestamp: u32,
    /// The synchronization source.
    pub ssrc: Ssrc,
    /// Contributing sources, at most 15.
    pub csrcs: &'a [Ssrc],
    /// Header extension elements; none means no extension block and X = 0.
    pub extensions: &'a [Extension<'a>],
    /// The form the extension elements are written in.
    pub extension_form: ExtensionForm,
}

impl RtpHeader<'_> {
    /// Bytes the header takes when written.
    pub fn encoded_len(&self) -> Result<usize, RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::TooManyCsrcs(self.csrcs.len()));
        }
        let ext = self.extension_form.encoded_len(self.extensions)?;
        Ok(FIXED_HEADER_LEN + 4 * self.csrcs.len() + ext)
    }

    /// Writes the header at the start of `buf` and returns its length (where the payload
    /// starts). Writes nothing when it refuses.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, RtpError> {
        if !self.pt.is_valid() {
            return Err(RtpError::PtOutOfRange(self.pt.0));
        }
        let total = self.encoded_len()?;
        let mut w = Writer::new(buf);
        w.reserve(total)?;
        let x = if self.extensions.is_empty() { 0 } else { 0x10 };
        // encoded_len() checked csrcs.len() <= 15.
        w.put_u8((RTP_VERSION << 6) | x | self.csrcs.len() as u8)?;
        w.put_u8(if self.marker { 0x80 } else { 0 } | self.pt.0)?;
        w.put_u16(self.seq)?;
        w.put_u32(self.timestamp)?;
        w.put_u32(self.ssrc.0)?;
        for c in self.csrcs {
            w.put_u32(c.0)?;
        }
        let at = w.pos();
        let ext_len = self
            .extension_form
            .write(self.extensions, buf.get_mut(at..).unwrap_or(&mut []))?;
        Ok(at + ext_len)
    }
}

/// Appends `pad` bytes of RTP padding (zeros, the last one the count) after the `packet_len`
/// bytes of packet at the start of `buf`, sets the P bit, and returns the new packet length.
pub fn write_padding(buf: &mut [u8], packet_len: usize, pad: u8) -> Result<usize, RtpError> {
    if pad == 0 || packet_len < FIXED_HEADER_LEN {
        return Err(RtpError::PaddingRequest {
            pad,
            len: packet_len,
        });
    }
    let total = packet_len + usize::from(pad);
    let have = buf.len();
    let Some(tail) = buf.get_mut(packet_len..total) else {
        return Err(RtpError::BufferTooSmall { need: total, have });
    };
    tail.fill(0);
    if let Some(last) = tail.last_mut() {
        *last = pad;
    }
    if let Some(first) = buf.first_mut() {
        *first |= 0x20;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{AudioLevel, RtpPacket};

    #[test]
    fn writes_minimal_header() {
        let h = RtpHeader {
            marker: true,
            pt: Pt(0),
            seq: 0xabcd,
            timestamp: 160,
            ssrc: Ssrc(0x0102_0304),
            ..Default::default()
        };
        let mut buf = [0u8; 12];
        assert_eq!(h.write(&mut buf), Ok(12));
        assert_eq!(buf, [0x80, 0x80, 0xab, 0xcd, 0, 0, 0, 160, 1, 2, 3, 4]);
    }

    #[test]
    fn round_trips_csrcs_extensions_payload_and_padding() {
        let level = AudioLevel::new(true, 30).unwrap().to_byte();
        let exts = [
            Extension {
                id: 1,
                data: &[level],
            },
            Extension {
                id: 3,
                data: &[0, 1, 2],
            },
        ];
        let csrcs = [Ssrc(9), Ssrc(10), Ssrc(11)];
        let h = RtpHeader {
            marker: false,
            pt: Pt(111),
            seq: 65_535,
            timestamp: u32::MAX,
            ssrc: Ssrc(42),
            csrcs: &csrcs,
            extensions: &exts,
            extension_form: ExtensionForm::OneByte,
        };
        let mut buf = [0u8; 128];
        let hl = h.write(&mut buf).unwrap();
        assert_eq!(hl, h.encoded_len().unwrap());
        assert_eq!(hl, 12 + 12 + 4 + 8);
        buf[hl..hl + 5].copy_from_slice(b"opus!");
        let n = write_padding(&mut buf, hl + 5, 3).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.pt(), Pt(111));
        assert_eq!(p.seq(), 65_535);
        assert_eq!(p.timestamp(), u32::MAX);
        assert_eq!(p.ssrc(), Ssrc(42));
        assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs);
        let got: Vec<_> = p.extensions().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(got, exts);
        assert_eq!(
            AudioLevel::parse(p.extension(1).unwrap()).unwrap().level(),
            30
        );
        assert_eq!(p.payload(), b"opus!");
        assert_eq!(p.padding_len(), 3);
    }

    #[test]
    fn refuses_misuse() {
        let mut buf = [0u8; 64];
        let bad_pt = RtpHeader {
            pt: Pt(200),
            ..Default::default()
        };
        assert_eq!(bad_pt.write(&mut buf), Err(RtpError::PtOutOfRange(200)));
        let many = [Ssrc(0); 16];
        let h = RtpHeader {
            csrcs: &many,
            ..Default::default()
        };
        assert_eq!(h.write(&mut buf), Err(RtpError::TooManyCsrcs(16)));
        let mut small = [0u8; 11];
        assert_eq!(
            RtpHeader::default().write(&mut small),
            Err(RtpError::BufferTooSmall { need: 12, have: 11 })
        );
        assert_eq!(
            write_padding(&mut buf, 12, 0),
            Err(RtpError::PaddingRequest { pad: 0, len: 12 })
        );
        assert_eq!(
            write_padding(&mut buf, 60, 8),
            Err(RtpError::BufferTooSmall { need: 68, have: 64 })
        );
    }
}
