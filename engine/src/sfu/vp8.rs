//! The VP8 payload descriptor (RFC 7741 section 4.2), parsed and rewritten in place.
//!
//! ```text
//!       0 1 2 3 4 5 6 7
//!      +-+-+-+-+-+-+-+-+
//!      |X|R|N|S|R| PID | (REQUIRED)
//!      +-+-+-+-+-+-+-+-+
//! X:   |I|L|T|K| RSV   | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! I:   |M| PictureID   | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//!      |   PictureID   | (present when M = 1: a 15-bit picture ID)
//!      +-+-+-+-+-+-+-+-+
//! L:   |   TL0PICIDX   | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! T/K: |TID|Y| KEYIDX  | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! ```
//!
//! The VP8 payload header follows; when S = 1 and PID = 0 it starts a frame, and its first
//! byte's least significant bit is the inverse key frame flag P (0: key frame; section 4.3).
//!
//! A forwarder switching between simulcast encodings rewrites the picture ID and TL0PICIDX so
//! the receiver sees one continuous sequence ([`Vp8Descriptor::rewrite`], in place, same
//! width, so the packet length never changes).

/// Why a payload is not a usable VP8 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    /// The descriptor's flags announce more bytes than the payload holds.
    #[error("VP8 payload descriptor needs {need} bytes, payload has {have}")]
    Truncated {
        /// Bytes the descriptor (and, at a frame start, the payload header byte) needs.
        need: usize,
        /// Bytes in the payload.
        have: usize,
    },
}

/// A 7- or 15-bit picture ID as carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureId {
    /// The value (0-127 or 0-32767).
    pub value: u16,
    /// Whether it is carried in 15 bits (M = 1).
    pub long: bool,
}

impl PictureId {
    /// The value space: 128 or 32,768.
    pub fn modulus(self) -> u32 {
        if self.long { 1 << 15 } else { 1 << 7 }
    }
}

/// A parsed VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// N: the frame can be discarded without affecting others.
    pub non_reference: bool,
    /// S: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index.
    pub partition_id: u8,
    /// I: the picture ID, if present.
    pub picture_id: Option<PictureId>,
    /// L: the temporal level zero index, if present.
    pub tl0_pic_idx: Option<u8>,
    /// T: the temporal layer index, if present.
    pub temporal_id: Option<u8>,
    /// Y: layer sync (T present).
    pub layer_sync: bool,
    /// K: the temporal key frame index, if present.
    pub key_idx: Option<u8>,
    /// Bytes of the descriptor: where the VP8 payload starts.
    pub len: usize,
    /// S = 1, PID = 0 and the payload header's P bit is 0.
    pub key_frame: bool,
}

impl Vp8Descriptor {
    /// Parses the descriptor at the start of an RTP payload. A packet that starts a frame
    /// (S = 1, PID = 0) must also hold the payload header's first byte.
    pub fn parse(payload: &[u8]) -> Result<Self, Vp8Error> {
        let have = payload.len();
        let byte = |i: usize| {
            payload
                .get(i)
                .copied()
                .ok_or(Vp8Error::Truncated { need: i + 1, have })
        };
        let b0 = byte(0)?;
        let mut d = Self {
            non_reference: b0 & 0x20 != 0,
            start_of_partition: b0 & 0x10 != 0,
            partition_id: b0 & 0x0f,
            picture_id: None,
            tl0_pic_idx: None,
            temporal_id: None,
            layer_sync: false,
            key_idx: None,
            len: 1,
            key_frame: false,
        };
        if b0 & 0x80 != 0 {
            let x = byte(1)?;
            let mut at = 2;
            if x & 0x80 != 0 {
                let p0 = byte(at)?;
                if p0 & 0x80 != 0 {
                    let p1 = byte(at + 1)?;
                    d.picture_id = Some(PictureId {
                        value: u16::from_be_bytes([p0 & 0x7f, p1]),
                        long: true,
                    });
                    at += 2;
                } else {
                    d.picture_id = Some(PictureId {
                        value: u16::from(p0),
                        long: false,
                    });
                    at += 1;
                }
            }
            if x & 0x40 != 0 {
                d.tl0_pic_idx = Some(byte(at)?);
                at += 1;
            }
            if x & 0x30 != 0 {
                let tk = byte(at)?;
                if x & 0x20 != 0 {
                    d.temporal_id = Some(tk >> 6);
                    d.layer_sync = tk & 0x20 != 0;
                }
                if x & 0x10 != 0 {
                    d.key_idx = Some(tk & 0x1f);
                }
                at += 1;
            }
            d.len = at;
        }
        if d.starts_frame() {
            d.key_frame = byte(d.len)? & 0x01 == 0;
        }
        Ok(d)
    }

    /// Whether the packet starts a frame: S = 1 and PID = 0.
    pub fn starts_frame(&self) -> bool {
        self.start_of_partition && self.partition_id == 0
    }

    /// Where TL0PICIDX lies in the payload, if present.
    fn tl0_at(&self) -> usize {
        2 + self.picture_id.map_or(0, |p| if p.long { 2 } else { 1 })
    }

    /// Rewrites the picture ID and TL0PICIDX of `payload` (which this descriptor was parsed
    /// from) in place. A field the packet does not carry is left alone; a picture ID is
    /// written in the packet's own width (the value modulo 128 or 32,768).
    pub fn rewrite(&self, payload: &mut [u8], picture_id: Option<u16>, tl0_pic_idx: Option<u8>) {
        if let (Some(p), Some(v)) = (self.picture_id, picture_id) {
            // The picture ID follows the required and extension bytes.
            let at = 2;
            if p.long {
                let [hi, lo] = (v & 0x7fff).to_be_bytes();
                if let Some(dst) = payload.get_mut(at..at + 2) {
                    dst.copy_from_slice(&[0x80 | hi, lo]);
                }
            } else if let Some(dst) = payload.get_mut(at) {
                *dst = (v & 0x7f) as u8;
            }
        }
        if let (Some(_), Some(v)) = (self.tl0_pic_idx, tl0_pic_idx)
            && let Some(dst) = payload.get_mut(self.tl0_at())
        {
            *dst = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_descriptor_key_and_delta_frames() {
        // X=0, N=0, S=1, PID=0, then the payload header: P=0 is a key frame.
        let key = Vp8Descriptor::parse(&[0x10, 0x00, 0x9d, 0x01, 0x2a]).unwrap();
        assert!(key.starts_frame() && key.key_frame);
        assert_eq!(key.len, 1);
        assert_eq!(key.picture_id, None);
        let delta = Vp8Descriptor::parse(&[0x10, 0x01]).unwrap();
        assert!(delta.starts_frame() && !delta.key_frame);
        // S=1 with PID=1 does not start the frame; neither does S=0.
        let part = Vp8Descriptor::parse(&[0x11, 0x00]).unwrap();
        assert!(!part.starts_frame() && !part.key_frame);
        assert_eq!(part.partition_id, 1);
        let cont = Vp8Descriptor::parse(&[0x20, 0x00]).unwrap();
        assert!(cont.non_reference && !cont.start_of_partition && !cont.key_frame);
    }

    #[test]
    fn all_extensions_with_a_15_bit_picture_id() {
        // X=1 S=1; I L T K; M=1 PictureID=0x1234; TL0PICIDX=0xab; TID=2 Y=1 KEYIDX=5.
        let payload = [
            0x90,
            0xf0,
            0x80 | 0x12,
            0x34,
            0xab,
            (2 << 6) | 0x20 | 5,
            0x00,
        ];
        let d = Vp8Descriptor::parse(&payload).unwrap();
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x1234,
                long: true
            })
        );
        assert_eq!(d.tl0_pic_idx, Some(0xab));
        assert_eq!(d.temporal_id, Some(2));
        assert!(d.layer_sync);
        assert_eq!(d.key_idx, Some(5));
        assert_eq!(d.len, 6);
        assert!(d.key_frame);
    }

    #[test]
    fn seven_bit_picture_id_and_k_without_t() {
        // I with M=0 (PictureID 0x55), K only (KEYIDX 3), not a frame start.
        let d = Vp8Descriptor::parse(&[0x80, 0x90, 0x55, 0x03, 0xff]).unwrap();
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x55,
                long: false
            })
        );
        assert_eq!(d.temporal_id, None);
        assert_eq!(d.key_idx, Some(3));
        assert_eq!(d.tl0_pic_idx, None);
        assert_eq!(d.len, 4);
        assert!(!d.key_frame);
    }

    #[test]
    fn truncations_are_refused() {
        assert_eq!(
            Vp8Descriptor::parse(&[]),
            Err(Vp8Error::Truncated { need: 1, have: 0 })
        );
        assert_eq!(
            Vp8Descriptor::parse(&[0x80]),
            Err(Vp8Error::Truncated { need: 2, have: 1 })
        );
        assert_eq!(
            Vp8Descriptor::parse(&[0x80, 0x80, 0x80]),
            Err(Vp8Error::Truncated { need: 4, have: 3 })
        );
        assert_eq!(
            Vp8Descriptor::parse(&[0x80, 0xc0, 0x05]),
            Err(Vp8Error::Truncated { need: 4, have: 3 })
        );
        // A frame start without its payload header byte.
        assert_eq!(
            Vp8Descriptor::parse(&[0x90, 0x80, 0x05]),
            Err(Vp8Error::Truncated { need: 4, have: 3 })
        );
        let mut rng = crate::rtp::xorshift::Xorshift::new(7741);
        let mut buf = [0u8; 8];
        for _ in 0..50_000 {
            let n = rng.below(9) as usize;
            rng.fill(&mut buf[..n]);
            if let Ok(d) = Vp8Descriptor::parse(&buf[..n]) {
                assert!(d.len <= n);
                let before = buf;
                d.rewrite(&mut buf[..n], Some(0xffff), Some(7));
                assert_eq!(buf[d.len..n], before[d.len..n]);
            }
        }
    }

    #[test]
    fn rewrite_in_place_keeps_width_and_other_fields() {
        let mut long = [0x90, 0xe0, 0x80 | 0x12, 0x34, 0xab, 0x40, 0x00];
        let d = Vp8Descriptor::parse(&long).unwrap();
        d.rewrite(&mut long, Some(0x7fff), Some(0x01));
        let r = Vp8Descriptor::parse(&long).unwrap();
        assert_eq!(r.picture_id.unwrap().value, 0x7fff);
        assert!(r.picture_id.unwrap().long);
        assert_eq!(r.tl0_pic_idx, Some(0x01));
        assert_eq!(r.temporal_id, d.temporal_id);
        // Wraps within 15 bits.
        d.rewrite(&mut long, Some(0x8003), None);
        assert_eq!(
            Vp8Descriptor::parse(&long)
                .unwrap()
                .picture_id
                .unwrap()
                .value,
            3
        );
        assert_eq!(Vp8Descriptor::parse(&long).unwrap().tl0_pic_idx, Some(0x01));

        let mut short = [0x90, 0xc0, 0x05, 0x09, 0x00];
        let d = Vp8Descriptor::parse(&short).unwrap();
        d.rewrite(&mut short, Some(200), Some(0xfe));
        let r = Vp8Descriptor::parse(&short).unwrap();
        assert_eq!(
            r.picture_id,
            Some(PictureId {
                value: 200 % 128,
                long: false
            })
        );
        assert_eq!(r.tl0_pic_idx, Some(0xfe));
        // Absent fields stay absent.
        let mut plain = [0x10, 0x00];
        Vp8Descriptor::parse(&plain)
            .unwrap()
            .rewrite(&mut plain, Some(1), Some(1));
        assert_eq!(plain, [0x10, 0x00]);
    }
}
