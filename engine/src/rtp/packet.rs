//! Zero-copy views of an RTP packet (RFC 3550 section 5.1).
//!
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers  (CC x 32)  |
//! |      defined by profile       |           length              |  (if X)
//! |                        header extension (length x 32)         |  (if X)
//! |                            payload ...  | padding | pad count |  (if P)
//! ```

use std::ops::Range;

use crate::rtp::{ExtensionForm, ExtensionIter, Pt, RtpError, Ssrc};

/// Bytes of the fixed header.
pub const FIXED_HEADER_LEN: usize = 12;
/// The only RTP version this parser accepts.
pub const RTP_VERSION: u8 = 2;

/// Where the parts of a validated packet start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Fixed header, CSRCs and extension block.
    header_len: usize,
    /// Start of the extension data (after the 4-byte profile/length word), if X is set.
    ext_data_start: Option<usize>,
    /// End of the payload: the packet length minus the padding.
    payload_end: usize,
}

/// Validates `buf` as one RTP packet. On success, 12 <= header_len <= payload_end <= buf.len()
/// and ext_data_start, if any, is <= header_len.
fn layout(buf: &[u8]) -> Result<Layout, RtpError> {
    let len = buf.len();
    let Some(fixed) = buf.first_chunk::<FIXED_HEADER_LEN>() else {
        return Err(RtpError::HeaderTruncated { len });
    };
    let version = fixed[0] >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    let csrc_count = fixed[0] & 0x0f;
    let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
    if header_len > len {
        return Err(RtpError::CsrcTruncated { csrc_count, len });
    }
    let mut ext_data_start = None;
    if fixed[0] & 0x10 != 0 {
        let Some(word) = buf.get(header_len..header_len + 4) else {
            return Err(RtpError::ExtensionHeaderTruncated { len });
        };
        // INVARIANT: get() returned 4 bytes, so word[2..=3] exist and start <= len.
        let declared = 4 * usize::from(u16::from_be_bytes([word[2], word[3]]));
        let start = header_len + 4;
        let available = len - start;
        if declared > available {
            return Err(RtpError::ExtensionTruncated {
                declared,
                available,
            });
        }
        ext_data_start = Some(start);
        header_len = start + declared;
    }
    let mut payload_end = len;
    if fixed[0] & 0x20 != 0 {
        // INVARIANT: header_len <= len, checked for the CSRCs and the extension above.
        let available = len - header_len;
        let pad = match buf.last() {
            Some(&p) if available > 0 => p,
            _ => return Err(RtpError::PaddingOverrun { pad: 0, available }),
        };
        if pad == 0 {
            return Err(RtpError::ZeroPadding);
        }
        if usize::from(pad) > available {
            return Err(RtpError::PaddingOverrun { pad, available });
        }
        // INVARIANT: pad <= available <= len.
        payload_end = len - usize::from(pad);
    }
    Ok(Layout {
        header_len,
        ext_data_start,
        payload_end,
    })
}

/// A validated, read-only view of one RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    fixed: &'a [u8; FIXED_HEADER_LEN],
    buf: &'a [u8],
    layout: Layout,
}

impl<'a> RtpPacket<'a> {
    /// Validates `buf` as exactly one RTP packet: version 2, the CSRC list, extension block and
    /// padding all inside the buffer, a nonzero padding count that fits. Does not allocate.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let layout = layout(buf)?;
        let Some(fixed) = buf.first_chunk::<FIXED_HEADER_LEN>() else {
            return Err(RtpError::HeaderTruncated { len: buf.len() });
        };
        Ok(Self { fixed, buf, layout })
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The P bit.
    pub fn has_padding(&self) -> bool {
        self.fixed[0] & 0x20 != 0
    }

    /// The X bit.
    pub fn has_extension(&self) -> bool {
        self.fixed[0] & 0x10 != 0
    }

    /// The CC field: how many CSRCs follow the fixed header.
    pub fn csrc_count(&self) -> u8 {
        self.fixed[0] & 0x0f
    }

    /// The M bit.
    pub fn marker(&self) -> bool {
        self.fixed[1] & 0x80 != 0
    }

    /// The payload type.
    pub fn pt(&self) -> Pt {
        Pt(self.fixed[1] & 0x7f)
    }

    /// The 16-bit wire sequence number.
    pub fn seq(&self) -> u16 {
        u16::from_be_bytes([self.fixed[2], self.fixed[3]])
    }

    /// The 32-bit RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.fixed[4], self.fixed[5], self.fixed[6], self.fixed[7]])
    }

    /// The synchronization source.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(u32::from_be_bytes([
            self.fixed[8],
            self.fixed[9],
            self.fixed[10],
            self.fixed[11],
        ]))
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = Ssrc> + 'a {
        let end = FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count());
        // layout() checked 12 + 4 * CC <= len; get() keeps this panic-free regardless.
        let list = self.buf.get(FIXED_HEADER_LEN..end).unwrap_or(&[]);
        // INVARIANT: chunks_exact(4) yields 4-byte chunks, so c[0..=3] are in bounds.
        list.chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// The "defined by profile" field of the extension block, if X is set.
    pub fn extension_profile(&self) -> Option<u16> {
        let start = self.layout.ext_data_start?;
        let word = self.buf.get(start - 4..start)?;
        // INVARIANT: get() returned exactly 4 bytes.
        Some(u16::from_be_bytes([word[0], word[1]]))
    }

    /// The extension data (after the profile/length word), if X is set.
    pub fn extension_data(&self) -> Option<&'a [u8]> {
        let start = self.layout.ext_data_start?;
        self.buf.get(start..self.layout.header_len)
    }

    /// The RFC 8285 elements of the extension block: empty without one, `Err` for a profile
    /// that is not RFC 8285.
    pub fn extensions(&self) -> Result<ExtensionIter<'a>, RtpError> {
        match (self.extension_profile(), self.extension_data()) {
            (Some(profile), Some(data)) => ExtensionIter::new(profile, data),
            _ => Ok(ExtensionIter::empty()),
        }
    }

    /// The data of the first extension element with local identifier `id`, ignoring a
    /// malformed tail of the block.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        self.extensions()
            .ok()?
            .map_while(Result::ok)
            .find(|e| e.id == id)
            .map(|e| e.data)
    }

    /// Bytes of header: fixed part, CSRCs and extension block.
    pub fn header_len(&self) -> usize {
        self.layout.header_len
    }

    /// Bytes of padding at the end, count octet included (0 without P).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.layout.payload_end
    }

    /// Where the payload lies in the packet.
    pub fn payload_range(&self) -> Range<usize> {
        self.layout.header_len..self.layout.payload_end
    }

    /// The payload, without header and padding.
    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(self.payload_range()).unwrap_or(&[])
    }
}

/// A validated view of one RTP packet in a mutable buffer, with in-place setters for the
/// fields a forwarder rewrites.
#[derive(Debug, PartialEq, Eq)]
pub struct RtpPacketMut<'a> {
    buf: &'a mut [u8],
    layout: Layout,
}

impl<'a> RtpPacketMut<'a> {
    /// Validates `buf` as [`RtpPacket::parse`] does.
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        let layout = layout(buf)?;
        Ok(Self { buf, layout })
    }

    /// A read-only view of the packet as it is now.
    pub fn as_packet(&self) -> RtpPacket<'_> {
        RtpPacket {
            fixed: self.fixed(),
            buf: self.buf,
            layout: self.layout,
        }
    }

    fn fixed(&self) -> &[u8; FIXED_HEADER_LEN] {
        // INVARIANT: layout() succeeded, so buf.len() >= FIXED_HEADER_LEN.
        self.buf
            .first_chunk::<FIXED_HEADER_LEN>()
            .expect("validated RTP packet has a fixed header")
    }

    fn fixed_mut(&mut self) -> &mut [u8; FIXED_HEADER_LEN] {
        // INVARIANT: layout() succeeded, so buf.len() >= FIXED_HEADER_LEN.
        self.buf
            .first_chunk_mut::<FIXED_HEADER_LEN>()
            .expect("validated RTP packet has a fixed header")
    }

    /// Sets the M bit.
    pub fn set_marker(&mut self, marker: bool) {
        let f = self.fixed_mut();
        f[1] = (f[1] & 0x7f) | if marker { 0x80 } else { 0 };
    }

    /// Sets the payload type; values above 127 are refused (the top bit is the marker).
    pub fn set_pt(&mut self, pt: Pt) -> Result<(), RtpError> {
        if !pt.is_valid() {
            return Err(RtpError::PtOutOfRange(pt.0));
        }
        let f = self.fixed_mut();
        f[1] = (f[1] & 0x80) | pt.0;
        Ok(())
    }

    // The setters below slice the 12-byte fixed header with constant in-bounds ranges.

    /// Sets the wire sequence number.
    pub fn set_seq(&mut self, seq: u16) {
        self.fixed_mut()[2..4].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the RTP timestamp.
    pub fn set_timestamp(&mut self, timestamp: u32) {
        self.fixed_mut()[4..8].copy_from_slice(&timestamp.to_be_bytes());
    }

    /// Sets the synchronization source.
    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        self.fixed_mut()[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
    }

    /// Renumbers the header extension elements in place (RFC 8285 ids belong to one
    /// session, so a forwarder must map them to the receiver's): each element's id becomes
    /// `map(id)`; an element `map` gives no id, or one the block's form cannot carry, becomes
    /// padding (zero bytes), and so does the rest of a malformed block. Lengths never change.
    /// A block that is not RFC 8285 is left as it is.
    pub fn remap_extensions(&mut self, map: impl Fn(u8) -> Option<u8>) {
        let Some(start) = self.layout.ext_data_start else {
            return;
        };
        let profile = match self.buf.get(start - 4..start - 2) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => return,
        };
        let Some(form) = ExtensionForm::from_profile(profile) else {
            return;
        };
        let Some(data) = self.buf.get_mut(start..self.layout.header_len) else {
            return;
        };
        let mut i = 0;
        while let Some(&first) = data.get(i) {
            if first == 0 {
                i += 1;
                continue;
            }
            let (id, len) = match form {
                ExtensionForm::OneByte if first >> 4 == 15 => return,
                ExtensionForm::OneByte => (first >> 4, 2 + usize::from(first & 0x0f)),
                ExtensionForm::TwoByte { .. } => match data.get(i + 1) {
                    Some(&n) => (first, 2 + usize::from(n)),
                    None => (first, data.len() - i + 1),
                },
            };
            let Some(element) = data.get_mut(i..i + len) else {
                if let Some(rest) = data.get_mut(i..) {
                    rest.fill(0);
                }
                return;
            };
            match (map(id), form) {
                (Some(new @ 1..=14), ExtensionForm::OneByte) => {
                    element[0] = (new << 4) | (first & 0x0f)
                }
                (Some(new @ 1..), ExtensionForm::TwoByte { .. }) => element[0] = new,
                _ => element.fill(0),
            }
            i += len;
        }
    }

    /// The payload, writable in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.layout.header_len..self.layout.payload_end;
        self.buf.get_mut(range).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::Extension;

    /// A packet with every optional part: 2 CSRCs, a one-byte extension, 3 bytes of padding.
    fn full_packet() -> Vec<u8> {
        let mut p = vec![
            0xb2, 0xe0, 0x12, 0x34, // V=2 P X CC=2, M, PT=96, seq 0x1234
            0xde, 0xad, 0xbe, 0xef, // timestamp
            0x11, 0x22, 0x33, 0x44, // SSRC
            0, 0, 0, 1, 0, 0, 0, 2, // CSRCs
            0xbe, 0xde, 0x00, 0x01, // extension header, 1 word
            0x10, 0x85, 0x00, 0x00, // audio level id 1, padding
        ];
        p.extend_from_slice(b"payload");
        p.extend_from_slice(&[0, 0, 3]);
        p
    }

    #[test]
    fn parses_every_field() {
        let buf = full_packet();
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.has_padding());
        assert!(p.has_extension());
        assert_eq!(p.csrc_count(), 2);
        assert!(p.marker());
        assert_eq!(p.pt(), Pt(96));
        assert_eq!(p.seq(), 0x1234);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), Ssrc(0x1122_3344));
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![Ssrc(1), Ssrc(2)]);
        assert_eq!(p.extension_profile(), Some(0xbede));
        assert_eq!(p.extension_data(), Some(&[0x10, 0x85, 0, 0][..]));
        assert_eq!(p.extension(1), Some(&[0x85][..]));
        assert_eq!(p.extension(2), None);
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.padding_len(), 3);
        assert_eq!(p.payload(), b"payload");
        assert_eq!(p.payload_range(), 28..35);
        assert_eq!(p.as_bytes().len(), 38);
    }

    /// A packet with the extension elements `exts` in `form`, then a payload.
    fn with_extensions(form: ExtensionForm, exts: &[Extension<'_>]) -> Vec<u8> {
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        let mut block = [0u8; 64];
        let n = form.write(exts, &mut block).unwrap();
        p.extend_from_slice(&block[..n]);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn extensions_are_renumbered_or_turned_into_padding() {
        let ext = |id, data| Extension { id, data };
        let exts = [
            ext(3, &[1, 2, 3][..]),
            ext(4, &[9][..]),
            ext(10, &[7, 7][..]),
        ];
        for form in [
            ExtensionForm::OneByte,
            ExtensionForm::TwoByte { appbits: 0 },
        ] {
            let mut buf = with_extensions(form, &exts);
            let before = buf.len();
            // 3 -> 12 and 10 -> 5 kept; 4 dropped.
            let map = |id| match id {
                3 => Some(12),
                10 => Some(5),
                _ => None,
            };
            RtpPacketMut::parse(&mut buf).unwrap().remap_extensions(map);
            assert_eq!(buf.len(), before);
            let p = RtpPacket::parse(&buf).unwrap();
            let got: Vec<(u8, Vec<u8>)> = (p.extensions().unwrap())
                .map(|e| e.map(|e| (e.id, e.data.to_vec())))
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, [(12, vec![1, 2, 3]), (5, vec![7, 7])], "{form:?}");
            assert_eq!(p.payload(), b"payload");
        }
        // A one-byte block cannot carry id 15 or above: the element goes.
        let mut buf = with_extensions(ExtensionForm::OneByte, &exts[..1]);
        RtpPacketMut::parse(&mut buf)
            .unwrap()
            .remap_extensions(|_| Some(20));
        assert_eq!(
            RtpPacket::parse(&buf)
                .unwrap()
                .extensions()
                .unwrap()
                .count(),
            0
        );
        // An element running past the block is zeroed with the rest of it.
        let mut buf = with_extensions(ExtensionForm::OneByte, &exts[..1]);
        buf[16] = 0x3f; // id 3, 16 bytes: more than the block holds
        RtpPacketMut::parse(&mut buf)
            .unwrap()
            .remap_extensions(Some);
        assert_eq!(&buf[16..20], &[0, 0, 0, 0]);
    }

    #[test]
    fn minimal_packet_has_no_optional_parts() {
        let buf = [0x80, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.csrcs().len(), 0);
        assert_eq!(p.extension_profile(), None);
        assert_eq!(p.extensions().unwrap().count(), 0);
        assert_eq!(p.payload(), b"");
        assert_eq!(p.header_len(), 12);
    }

    #[test]
    fn malformed_inputs_get_precise_errors() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::HeaderTruncated { len: 11 })
        );
        let mut b = [0u8; 12];
        b[0] = 0x40;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadVersion(1)));
        b[0] = 0x81;
        assert_eq!(
            RtpPacket::parse(&b),
            Err(RtpError::CsrcTruncated {
                csrc_count: 1,
                len: 12
            })
        );
        b[0] = 0x90;
        assert_eq!(
            RtpPacket::parse(&b),
            Err(RtpError::ExtensionHeaderTruncated { len: 12 })
        );
        let mut e = vec![
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 2, 0, 0, 0, 0,
        ];
        assert_eq!(
            RtpPacket::parse(&e),
            Err(RtpError::ExtensionTruncated {
                declared: 8,
                available: 4
            })
        );
        e[15] = 1;
        e[12] = 0xab;
        let p = RtpPacket::parse(&e).unwrap();
        assert_eq!(
            p.extensions().err(),
            Some(RtpError::UnknownExtensionProfile(0xabde))
        );
        assert_eq!(p.extension(1), None);
        let mut pad = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0];
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::ZeroPadding));
        *pad.last_mut().unwrap() = 4;
        assert_eq!(
            RtpPacket::parse(&pad),
            Err(RtpError::PaddingOverrun {
                pad: 4,
                available: 3
            })
        );
        *pad.last_mut().unwrap() = 3;
        assert_eq!(RtpPacket::parse(&pad).unwrap().payload(), b"");
        // P set with nothing after the header.
        let mut bare = [0u8; 12];
        bare[0] = 0xa0;
        bare[11] = 1; // last byte is SSRC, not padding
        assert_eq!(
            RtpPacket::parse(&bare),
            Err(RtpError::PaddingOverrun {
                pad: 0,
                available: 0
            })
        );
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut buf = full_packet();
        let mut p = RtpPacketMut::parse(&mut buf).unwrap();
        p.set_ssrc(Ssrc(0xcafe_f00d));
        p.set_seq(0xfffe);
        p.set_timestamp(7);
        p.set_pt(Pt(111)).unwrap();
        assert_eq!(p.set_pt(Pt(128)), Err(RtpError::PtOutOfRange(128)));
        p.set_marker(false);
        p.payload_mut()[0] = b'P';
        let v = p.as_packet();
        assert_eq!(v.ssrc(), Ssrc(0xcafe_f00d));
        assert_eq!(v.seq(), 0xfffe);
        assert_eq!(v.timestamp(), 7);
        assert_eq!(v.pt(), Pt(111));
        assert!(!v.marker());
        assert_eq!(v.payload(), b"Payload");
        p.set_marker(true);
        assert!(p.as_packet().marker());
        assert_eq!(p.as_packet().pt(), Pt(111));
        // Everything else untouched.
        assert_eq!(buf[0], 0xb2);
        assert_eq!(&buf[12..28], &full_packet()[12..28]);
    }

    #[test]
    fn every_truncation_of_a_valid_packet_is_an_error_or_valid() {
        let buf = full_packet();
        for n in 0..buf.len() {
            // Truncation removes the padding count, so each prefix either fails or parses
            // into something whose parts stay inside the prefix.
            if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                assert!(p.payload_range().end <= n);
                let _ = p.extensions().map(|it| it.count());
            }
        }
    }

    /// Reads every part of a parsed packet, so a bad offset anywhere would panic.
    fn walk(p: &RtpPacket<'_>) -> usize {
        let mut n = p.csrcs().count() + p.payload().len() + p.header_len() + p.padding_len();
        n += usize::from(p.marker()) + usize::from(p.pt().0) + usize::from(p.seq());
        n += p.timestamp() as usize + p.ssrc().0 as usize;
        if let Ok(exts) = p.extensions() {
            for e in exts {
                match e {
                    Ok(e) => {
                        n += e.data.len();
                        let _ = crate::rtp::AudioLevel::parse(e.data);
                    }
                    Err(_) => n += 1,
                }
            }
        }
        assert!(p.payload_range().start <= p.payload_range().end);
        assert!(p.payload_range().end <= p.as_bytes().len());
        n
    }

    fn samples() -> Vec<Vec<u8>> {
        let mut two_byte = vec![0x90, 0x6f, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0x10, 0x00, 0, 2];
        two_byte.extend_from_slice(&[1, 2, 0xaa, 0xbb, 0, 0, 0, 0, 1, 2, 3]);
        vec![
            full_packet(),
            two_byte,
            vec![0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 9],
        ]
    }

    #[test]
    fn survives_truncation_mutation_and_noise() {
        use crate::rtp::xorshift::Xorshift;
        let mut rng = Xorshift::new(0x5eed_0001);
        for sample in samples() {
            assert!(RtpPacket::parse(&sample).is_ok());
            for n in 0..=sample.len() {
                if let Ok(p) = RtpPacket::parse(&sample[..n]) {
                    walk(&p);
                }
            }
            for _ in 0..20_000 {
                let mut m = sample.clone();
                rng.mutate(&mut m);
                let cut = rng.below(m.len() as u64 + 1) as usize;
                let m = &mut m[..cut];
                if let Ok(p) = RtpPacket::parse(m) {
                    walk(&p);
                    let mut pm = RtpPacketMut::parse(m).unwrap();
                    pm.set_seq(1);
                    pm.set_marker(true);
                    let _ = pm.set_pt(Pt(5));
                    pm.set_timestamp(2);
                    pm.set_ssrc(Ssrc(3));
                    pm.payload_mut().fill(0);
                    walk(&pm.as_packet());
                }
            }
        }
        let mut buf = [0u8; 80];
        for _ in 0..50_000 {
            let len = rng.below(81) as usize;
            rng.fill(&mut buf[..len]);
            if rng.chance(75) && len > 0 {
                buf[0] = (buf[0] & 0x3f) | 0x80;
            }
            if let Ok(p) = RtpPacket::parse(&buf[..len]) {
                walk(&p);
            }
            let profile = if rng.chance(50) { 0xbede } else { 0x1000 };
            if let Ok(it) = crate::rtp::ExtensionIter::new(profile, &buf[..len]) {
                assert!(it.count() <= len);
            }
        }
    }
}
