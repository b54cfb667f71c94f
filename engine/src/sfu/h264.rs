//! What a forwarder needs to know about an H.264 RTP payload (RFC 6184, non-interleaved mode).
//!
//! ```text
//! NAL unit header:  |F|NRI|  Type   |      F: forbidden zero bit, NRI: importance
//! single NAL unit:  [header][NAL payload]                          Type 1-23
//! STAP-A:           [header Type=24]([size: u16][NAL unit])+       section 5.7.1
//! FU-A:             [indicator Type=28][S|E|R| Type][fragment]      section 5.8
//! ```
//!
//! [`H264Payload::parse`] classifies one payload: its packetization, the NAL types it carries
//! (for FU-A the type of the fragmented unit), whether it starts a NAL unit, and the facts a
//! layer switch depends on: IDR, SPS, PPS. A frame (access unit) ends with the RTP marker bit
//! (section 5.1), which the caller reads from the header. Nothing is decoded, copied or
//! allocated; malformed payloads are classified as [`H264Error`], never a panic.

pub use chorus_codecs::h264_nal::{
    FU_A, FU_B, MTAP16, MTAP24, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SEI, NAL_SLICE, NAL_SPS, STAP_A,
    STAP_B, nal_type,
};

/// Why a payload is not usable H.264 in non-interleaved mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    /// The payload has no bytes.
    #[error("empty H.264 payload")]
    Empty,
    /// The forbidden zero bit of a NAL unit header is set (a syntax violation).
    #[error("forbidden bit set in a NAL unit header")]
    ForbiddenBit,
    /// A type this forwarder does not take: 0 and 30-31 (undefined), or an interleaved-mode
    /// structure (STAP-B, MTAP16, MTAP24, FU-B).
    #[error("NAL or payload structure type {0} not supported")]
    Unsupported(u8),
    /// A STAP-A with no aggregation unit, a zero size, or a size running past the payload.
    #[error("STAP-A aggregation unit truncated at byte {at}")]
    StapTruncated {
        /// Offset of the unit whose size or data does not fit.
        at: usize,
    },
    /// A STAP-A holding a unit that is itself an aggregation or fragment.
    #[error("STAP-A aggregates a unit of type {0}")]
    StapNested(u8),
    /// A FU-A without its FU header or without fragment data.
    #[error("FU-A of {len} bytes, too short")]
    FuTruncated {
        /// Payload length.
        len: usize,
    },
    /// A FU-A with both start and end bits set (RFC 6184 section 5.8 forbids it).
    #[error("FU-A with both start and end bits")]
    FuStartAndEnd,
    /// A FU-A fragmenting a unit of an aggregation or fragment type.
    #[error("FU-A fragments a unit of type {0}")]
    FuNested(u8),
}

/// How the payload is packetized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packetization {
    /// One whole NAL unit (section 5.6).
    Single,
    /// Several NAL units of one picture time (section 5.7.1); `units` is how many.
    StapA {
        /// Aggregation units in the packet.
        units: u8,
    },
    /// One fragment of a NAL unit (section 5.8).
    FuA {
        /// The S bit: the first fragment.
        start: bool,
        /// The E bit: the last fragment.
        end: bool,
    },
}

/// The forwarding facts of one H.264 RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Payload {
    /// How the payload is packetized.
    pub packetization: Packetization,
    /// The type of the first NAL unit carried (for FU-A, the fragmented unit's type).
    pub nal_type: u8,
    /// The payload carries (the start of) an IDR slice.
    pub idr: bool,
    /// The payload carries a sequence parameter set.
    pub sps: bool,
    /// The payload carries a picture parameter set.
    pub pps: bool,
}

/// A NAL type a STAP-A may aggregate or a FU-A may fragment: the NAL unit types 1-23.
fn is_nal_unit_type(t: u8) -> bool {
    (1..=23).contains(&t)
}

impl H264Payload {
    /// Classifies one RTP payload. Never reads past `payload`.
    pub fn parse(payload: &[u8]) -> Result<Self, H264Error> {
        let &first = payload.first().ok_or(H264Error::Empty)?;
        if first & 0x80 != 0 {
            return Err(H264Error::ForbiddenBit);
        }
        let t = nal_type(first);
        match t {
            1..=23 => Ok(Self::single(t)),
            STAP_A => Self::stap_a(payload),
            FU_A => Self::fu_a(payload),
            _ => Err(H264Error::Unsupported(t)),
        }
    }

    fn single(t: u8) -> Self {
        Self {
            packetization: Packetization::Single,
            nal_type: t,
            idr: t == NAL_IDR,
            sps: t == NAL_SPS,
            pps: t == NAL_PPS,
        }
    }

    fn stap_a(payload: &[u8]) -> Result<Self, H264Error> {
        let mut at = 1;
        let mut out = Self {
            packetization: Packetization::StapA { units: 0 },
            nal_type: 0,
            idr: false,
            sps: false,
            pps: false,
        };
        let mut units: u8 = 0;
        while at < payload.len() {
            let Some(&[hi, lo]) = payload.get(at..at + 2) else {
                return Err(H264Error::StapTruncated { at });
            };
            let size = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(unit) = payload.get(at + 2..at + 2 + size).filter(|u| !u.is_empty()) else {
                return Err(H264Error::StapTruncated { at });
            };
            // INVARIANT: filter() above kept only non-empty units.
            let header = unit[0];
            if header & 0x80 != 0 {
                return Err(H264Error::ForbiddenBit);
            }
            let t = nal_type(header);
            if !is_nal_unit_type(t) {
                return Err(H264Error::StapNested(t));
            }
            if units == 0 {
                out.nal_type = t;
            }
            out.idr |= t == NAL_IDR;
            out.sps |= t == NAL_SPS;
            out.pps |= t == NAL_PPS;
            units = units.saturating_add(1);
            at += 2 + size;
        }
        if units == 0 {
            return Err(H264Error::StapTruncated { at });
        }
        out.packetization = Packetization::StapA { units };
        Ok(out)
    }

    fn fu_a(payload: &[u8]) -> Result<Self, H264Error> {
        let (Some(&fu_header), true) = (payload.get(1), payload.len() > 2) else {
            return Err(H264Error::FuTruncated { len: payload.len() });
        };
        let start = fu_header & 0x80 != 0;
        let end = fu_header & 0x40 != 0;
        if start && end {
            return Err(H264Error::FuStartAndEnd);
        }
        let t = nal_type(fu_header);
        if !is_nal_unit_type(t) {
            return Err(H264Error::FuNested(t));
        }
        Ok(Self {
            packetization: Packetization::FuA { start, end },
            nal_type: t,
            // Only the first fragment starts the IDR slice; later ones continue it.
            idr: start && t == NAL_IDR,
            sps: start && t == NAL_SPS,
            pps: start && t == NAL_PPS,
        })
    }

    /// Whether the payload begins a NAL unit (anything but a FU-A continuation or end).
    pub fn starts_nal_unit(&self) -> bool {
        !matches!(self.packetization, Packetization::FuA { start: false, .. })
    }

    /// Whether a receiver can start decoding here: the payload begins a NAL unit and carries
    /// an SPS (encoders send SPS and PPS right before the IDR) or the start of an IDR slice
    /// (parameter sets given out of band, `sprop-parameter-sets`). A layer switch waits for
    /// such a packet.
    pub fn starts_key_frame(&self) -> bool {
        self.starts_nal_unit() && (self.sps || self.idr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(nri: u8, t: u8) -> u8 {
        (nri << 5) | t
    }

    #[test]
    fn single_nal_units_by_type() {
        for t in 1..=23u8 {
            let p = H264Payload::parse(&[hdr(3, t), 0xaa, 0xbb]).unwrap();
            assert_eq!(p.packetization, Packetization::Single);
            assert_eq!(p.nal_type, t);
            assert_eq!(p.idr, t == NAL_IDR);
            assert_eq!(p.sps, t == NAL_SPS);
            assert_eq!(p.pps, t == NAL_PPS);
            assert_eq!(p.starts_key_frame(), t == NAL_IDR || t == NAL_SPS);
            assert!(p.starts_nal_unit());
        }
        // A one-byte NAL unit (header only) is still a NAL unit.
        assert!(H264Payload::parse(&[hdr(0, NAL_AUD)]).is_ok());
    }

    #[test]
    fn stap_a_with_parameter_sets_and_idr() {
        // RFC 6184 figure 7's shape: STAP-A header, then size-prefixed units.
        let payload = [
            hdr(3, STAP_A),
            0,
            3,
            hdr(3, NAL_SPS),
            0x42,
            0x00,
            0,
            2,
            hdr(3, NAL_PPS),
            0xce,
            0,
            2,
            hdr(3, NAL_IDR),
            0x88,
        ];
        let p = H264Payload::parse(&payload).unwrap();
        assert_eq!(p.packetization, Packetization::StapA { units: 3 });
        assert_eq!(p.nal_type, NAL_SPS);
        assert!(p.sps && p.pps && p.idr);
        assert!(p.starts_key_frame());
        // Without the IDR it still starts a key frame (parameter sets come first).
        let p = H264Payload::parse(&payload[..10]).unwrap();
        assert_eq!(p.packetization, Packetization::StapA { units: 2 });
        assert!(p.sps && p.pps && !p.idr && p.starts_key_frame());
        // Non-key units only.
        let p =
            H264Payload::parse(&[hdr(2, STAP_A), 0, 1, hdr(2, NAL_SEI), 0, 1, hdr(2, 1)]).unwrap();
        assert!(!p.starts_key_frame());
    }

    #[test]
    fn stap_a_truncations_are_refused() {
        assert_eq!(
            H264Payload::parse(&[hdr(3, STAP_A)]),
            Err(H264Error::StapTruncated { at: 1 })
        );
        // Size field cut in half.
        assert_eq!(
            H264Payload::parse(&[hdr(3, STAP_A), 0]),
            Err(H264Error::StapTruncated { at: 1 })
        );
        // Size larger than what follows.
        assert_eq!(
            H264Payload::parse(&[hdr(3, STAP_A), 0, 5, hdr(3, NAL_SPS), 1]),
            Err(H264Error::StapTruncated { at: 1 })
        );
        // A zero size.
        assert_eq!(
            H264Payload::parse(&[hdr(3, STAP_A), 0, 1, hdr(3, 1), 0, 0]),
            Err(H264Error::StapTruncated { at: 4 })
        );
        // Second unit's size overruns.
        assert_eq!(
            H264Payload::parse(&[hdr(3, STAP_A), 0, 1, hdr(3, 1), 0xff, 0xff, 1]),
            Err(H264Error::StapTruncated { at: 4 })
        );
        // A nested FU-A and a forbidden bit inside.
        assert_eq!(
            H264Payload::parse(&[hdr(3, STAP_A), 0, 2, hdr(3, FU_A), 0x85]),
            Err(H264Error::StapNested(FU_A))
        );
        assert_eq!(
            H264Payload::parse(&[hdr(3, STAP_A), 0, 1, 0x80 | 1]),
            Err(H264Error::ForbiddenBit)
        );
    }

    #[test]
    fn fu_a_start_middle_end() {
        let start = H264Payload::parse(&[hdr(3, FU_A), 0x80 | NAL_IDR, 1, 2]).unwrap();
        assert_eq!(
            start.packetization,
            Packetization::FuA {
                start: true,
                end: false
            }
        );
        assert!(start.idr && start.starts_key_frame() && start.starts_nal_unit());
        // A middle or end fragment of an IDR (a FU-A without its start) starts nothing.
        let middle = H264Payload::parse(&[hdr(3, FU_A), NAL_IDR, 1]).unwrap();
        assert_eq!(middle.nal_type, NAL_IDR);
        assert!(!middle.idr && !middle.starts_key_frame() && !middle.starts_nal_unit());
        let end = H264Payload::parse(&[hdr(3, FU_A), 0x40 | NAL_IDR, 1]).unwrap();
        assert_eq!(
            end.packetization,
            Packetization::FuA {
                start: false,
                end: true
            }
        );
        assert!(!end.starts_key_frame());
        let slice = H264Payload::parse(&[hdr(2, FU_A), 0x80 | NAL_SLICE, 9]).unwrap();
        assert!(slice.starts_nal_unit() && !slice.starts_key_frame());
    }

    #[test]
    fn fu_a_malformations_are_refused() {
        assert_eq!(
            H264Payload::parse(&[hdr(3, FU_A)]),
            Err(H264Error::FuTruncated { len: 1 })
        );
        assert_eq!(
            H264Payload::parse(&[hdr(3, FU_A), 0x80 | NAL_IDR]),
            Err(H264Error::FuTruncated { len: 2 })
        );
        assert_eq!(
            H264Payload::parse(&[hdr(3, FU_A), 0xc0 | NAL_IDR, 1]),
            Err(H264Error::FuStartAndEnd)
        );
        assert_eq!(
            H264Payload::parse(&[hdr(3, FU_A), 0x80 | STAP_A, 1]),
            Err(H264Error::FuNested(STAP_A))
        );
        assert_eq!(
            H264Payload::parse(&[hdr(3, FU_A), 0x80, 1]),
            Err(H264Error::FuNested(0))
        );
    }

    #[test]
    fn empty_forbidden_and_unsupported() {
        assert_eq!(H264Payload::parse(&[]), Err(H264Error::Empty));
        assert_eq!(
            H264Payload::parse(&[0x80 | NAL_IDR, 1]),
            Err(H264Error::ForbiddenBit)
        );
        for t in [0, STAP_B, MTAP16, MTAP24, FU_B, 30, 31] {
            assert_eq!(
                H264Payload::parse(&[hdr(1, t), 0, 0, 0, 0]),
                Err(H264Error::Unsupported(t))
            );
        }
    }

    #[test]
    fn every_short_payload_is_classified_without_panic() {
        // Exhaustive over all 1- and 2-byte payloads, and 3-byte ones for the structures.
        for a in 0..=255u8 {
            let _ = H264Payload::parse(&[a]);
            for b in 0..=255u8 {
                let _ = H264Payload::parse(&[a, b]);
            }
        }
        for t in [STAP_A, FU_A] {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    let _ = H264Payload::parse(&[t, b, c]);
                    let _ = H264Payload::parse(&[t, b, c, 0x65]);
                }
            }
        }
        let mut rng = crate::rtp::xorshift::Xorshift::new(6184);
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            let n = rng.below(64) as usize;
            rng.fill(&mut buf[..n]);
            buf[0] = (buf[0] & 0x60) | [STAP_A, FU_A, NAL_IDR][rng.below(3) as usize];
            if let Ok(p) = H264Payload::parse(&buf[..n]) {
                assert!(is_nal_unit_type(p.nal_type));
            }
        }
    }
}
