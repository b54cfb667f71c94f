//! RTP retransmission payload format (RFC 4588 section 4): wrapping a packet for resending
//! on its RTX stream and unwrapping one received.
//!
//! ```text
//! RTX packet: [RTP header: RTX SSRC, RTX PT, RTX stream's own seq][OSN: u16][original payload]
//! ```
//! The original header's timestamp, marker, CSRCs and extensions are kept.

use crate::rtp::{Pt, RtpPacket, RtpPacketMut, Ssrc};

/// The RTX stream of an outgoing or incoming stream: its SSRC and payload type
/// (`a=rtpmap:<pt> rtx/<rate>`, `a=fmtp:<pt> apt=<original pt>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtxConfig {
    /// The RTX stream's SSRC (SSRC multiplexing, RFC 4588 section 8.3).
    pub ssrc: Ssrc,
    /// The RTX payload type.
    pub pt: Pt,
}

/// Turns the RTP packet in `buf[..len]` into its RTX form in place: the original sequence
/// number goes in front of the payload, padding is dropped, and the header gets the RTX
/// SSRC, payload type and `rtx_seq`. Returns the new length, or None if `len` is not a valid
/// packet or `buf` has no room for the two extra bytes.
pub fn wrap_in_place(buf: &mut [u8], len: usize, rtx: RtxConfig, rtx_seq: u16) -> Option<usize> {
    let p = RtpPacket::parse(buf.get(..len)?).ok()?;
    let osn = p.seq();
    let range = p.payload_range();
    let new_len = range.end + 2;
    if new_len > buf.len() {
        return None;
    }
    buf.copy_within(range.clone(), range.start + 2);
    buf.get_mut(range.start..range.start + 2)?
        .copy_from_slice(&osn.to_be_bytes());
    // INVARIANT: a parsed packet has at least the 12-byte fixed header, so buf[0] exists.
    buf[0] &= !0x20;
    let mut m = RtpPacketMut::parse(buf.get_mut(..new_len)?).ok()?;
    m.set_ssrc(rtx.ssrc);
    m.set_pt(rtx.pt).ok()?;
    m.set_seq(rtx_seq);
    Some(new_len)
}

/// Rebuilds the original packet from the RTX packet in `buf[..len]` in place: sequence number
/// from the OSN, the given SSRC and payload type, payload moved back (padding dropped).
/// Returns (new length, original sequence number), or None for a packet too short to carry
/// an OSN (an RTX padding-only packet, or malformed).
pub fn unwrap_in_place(buf: &mut [u8], len: usize, ssrc: Ssrc, pt: Pt) -> Option<(usize, u16)> {
    let p = RtpPacket::parse(buf.get(..len)?).ok()?;
    let range = p.payload_range();
    if range.len() < 2 {
        return None;
    }
    let osn_bytes = buf.get(range.start..range.start + 2)?;
    let osn = u16::from_be_bytes([osn_bytes[0], osn_bytes[1]]);
    buf.copy_within(range.start + 2..range.end, range.start);
    let new_len = range.end - 2;
    // INVARIANT: as above, buf[0] is the first header byte.
    buf[0] &= !0x20;
    let mut m = RtpPacketMut::parse(buf.get_mut(..new_len)?).ok()?;
    m.set_ssrc(ssrc);
    m.set_pt(pt).ok()?;
    m.set_seq(osn);
    Some((new_len, osn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{Extension, ExtensionForm, RtpHeader, write_padding};

    #[test]
    fn wraps_and_unwraps_with_extensions_and_padding() {
        let mut buf = [0u8; 64];
        let ext = [Extension {
            id: 3,
            data: &[9, 9],
        }];
        let h = RtpHeader {
            marker: true,
            pt: Pt(96),
            seq: 0xfffe,
            timestamp: 90_000,
            ssrc: Ssrc(0x1111),
            extensions: &ext,
            extension_form: ExtensionForm::OneByte,
            ..Default::default()
        };
        let hl = h.write(&mut buf).unwrap();
        buf[hl..hl + 4].copy_from_slice(b"vp8!");
        let len = write_padding(&mut buf, hl + 4, 4).unwrap();
        let rtx = RtxConfig {
            ssrc: Ssrc(0x2222),
            pt: Pt(97),
        };
        let n = wrap_in_place(&mut buf, len, rtx, 7).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!((p.ssrc(), p.pt(), p.seq()), (Ssrc(0x2222), Pt(97), 7));
        assert_eq!((p.timestamp(), p.marker()), (90_000, true));
        assert_eq!(p.payload(), &[0xff, 0xfe, b'v', b'p', b'8', b'!']);
        assert_eq!(p.extension(3), Some(&[9, 9][..]));
        assert!(!p.has_padding());

        let (n, osn) = unwrap_in_place(&mut buf, n, Ssrc(0x1111), Pt(96)).unwrap();
        assert_eq!(osn, 0xfffe);
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!((p.ssrc(), p.pt(), p.seq()), (Ssrc(0x1111), Pt(96), 0xfffe));
        assert_eq!(p.payload(), b"vp8!");
    }

    #[test]
    fn refuses_what_does_not_fit_or_parse() {
        let mut buf = [0u8; 14];
        let n = RtpHeader::default().write(&mut buf).unwrap();
        buf[12..14].copy_from_slice(b"ab");
        let rtx = RtxConfig {
            ssrc: Ssrc(2),
            pt: Pt(97),
        };
        assert_eq!(wrap_in_place(&mut buf, n + 2, rtx, 1), None);
        assert_eq!(wrap_in_place(&mut buf, 5, rtx, 1), None);
        assert_eq!(wrap_in_place(&mut buf, 99, rtx, 1), None);
        // An RTX packet with no OSN (padding-only probe) unwraps to nothing.
        assert_eq!(unwrap_in_place(&mut buf, 12, Ssrc(1), Pt(96)), None);
        assert_eq!(unwrap_in_place(&mut buf, 13, Ssrc(1), Pt(96)), None);
    }
}
