//! [`SequenceParameterSet`]: the fields of an SPS (H.264 section 7.3.2.1.1) a receiver needs
//! to tell which simulcast layer it is getting: the picture size and the profile and level.

use super::{NAL_SPS, nal_type};

/// The parts of a sequence parameter set a subscriber checks: picture size after cropping,
/// and the profile and level (the three bytes of SDP's `profile-level-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceParameterSet {
    /// `profile_idc` (66 baseline, 77 main, 100 high...).
    pub profile_idc: u8,
    /// The `constraint_set0_flag`..`constraint_set5_flag` byte.
    pub constraint_flags: u8,
    /// `level_idc` (ten times the level: 31 for 3.1).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub id: u32,
    /// Picture width in pixels, after the frame cropping.
    pub width: u32,
    /// Picture height in pixels, after the frame cropping.
    pub height: u32,
}

/// Reads bits of an RBSP (emulation prevention bytes already removed), most significant first.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.at / 8)?;
        let b = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some(acc << 1 | self.bit()?))
    }

    /// Unsigned Exp-Golomb (section 9.1); codes longer than 32 bits are refused.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        ((1u64 << zeros) - 1 + u64::from(rest)).try_into().ok()
    }

    /// Signed Exp-Golomb (section 9.1.1).
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices.
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

impl SequenceParameterSet {
    /// Parses an SPS NAL unit (header byte first, as in an [`super::AccessUnit`]); None when it
    /// is not an SPS or is truncated or out of range.
    pub fn parse(nal: &[u8]) -> Option<Self> {
        let (&header, body) = nal.split_first()?;
        if nal_type(header) != NAL_SPS {
            return None;
        }
        // The RBSP: every 00 00 03 loses its 03 (section 7.4.1).
        let mut rbsp = Vec::with_capacity(body.len());
        let mut zeros = 0;
        for &b in body {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            rbsp.push(b);
        }
        let r = &mut Bits { data: &rbsp, at: 0 };
        let profile_idc = r.bits(8)? as u8;
        let constraint_flags = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        let id = r.ue()?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_planes = false;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                separate_colour_planes = r.bit()? == 1;
            }
            let _bit_depth_luma_minus8 = r.ue()?;
            let _bit_depth_chroma_minus8 = r.ue()?;
            let _transform_bypass = r.bit()?;
            if r.bit()? == 1 {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? == 1 {
                        skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num_minus4 = r.ue()?;
        match r.ue()? {
            0 => {
                let _log2_max_poc_lsb_minus4 = r.ue()?;
            }
            1 => {
                let _delta_pic_order_always_zero = r.bit()?;
                let _offset_for_non_ref_pic = r.se()?;
                let _offset_for_top_to_bottom_field = r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return None;
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            _ => return None,
        }
        let _max_num_ref_frames = r.ue()?;
        let _gaps_allowed = r.bit()?;
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.bit()? == 1;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.bit()?;
        }
        let _direct_8x8_inference = r.bit()?;
        let mut crop = [0u64; 4];
        if r.bit()? == 1 {
            for c in &mut crop {
                *c = u64::from(r.ue()?);
            }
        }
        // Section 7.4.2.1.1: crop units by chroma format.
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_x, crop_y) = match (chroma_format_idc, separate_colour_planes) {
            (0, _) | (3, true) => (1, field_factor),
            (1, _) => (2, 2 * field_factor),
            (2, _) => (2, field_factor),
            (3, false) => (1, field_factor),
            _ => return None,
        };
        let full_width = width_mbs * 16;
        let full_height = height_map_units * 16 * field_factor;
        let width = full_width.checked_sub(crop_x * (crop[0] + crop[1]))?;
        let height = full_height.checked_sub(crop_y * (crop[2] + crop[3]))?;
        Some(SequenceParameterSet {
            profile_idc,
            constraint_flags,
            level_idc,
            id,
            width: u32::try_from(width).ok()?,
            height: u32::try_from(height).ok()?,
        })
    }

    /// The SDP `profile-level-id` (RFC 6184 section 8.1): profile, constraint flags and
    /// level as one 24-bit number (`42e01f` for constrained baseline 3.1).
    pub fn profile_level_id(&self) -> u32 {
        u32::from(self.profile_idc) << 16
            | u32::from(self.constraint_flags) << 8
            | u32::from(self.level_idc)
    }
}

/// Skips a `scaling_list()` of `size` coefficients (section 7.3.2.1.1.1).
fn skip_scaling_list(r: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::{AccessUnit, Encoder, EncoderConfig, Picture, Scene};
    use super::*;

    /// Writes fields as an SPS encoder would, to build test vectors.
    #[derive(Default)]
    struct Writer {
        bits: Vec<u8>,
    }

    impl Writer {
        fn bits(&mut self, v: u32, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i & 1) as u8);
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let code = u64::from(v) + 1;
            let len = 64 - code.leading_zeros();
            self.bits(0, len - 1);
            for i in (0..len).rev() {
                self.bits.push((code >> i & 1) as u8);
            }
            self
        }
        fn se(&mut self, v: i32) -> &mut Self {
            let k = if v > 0 { 2 * v - 1 } else { -2 * v };
            self.ue(k as u32)
        }
        /// The NAL unit: header, the bits with a stop bit, emulation prevention added.
        fn nal(&mut self) -> Vec<u8> {
            self.bits.push(1);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(0);
            }
            let mut out = vec![0x67];
            let mut zeros = 0;
            for byte in self.bits.chunks(8) {
                let b = byte.iter().fold(0u8, |acc, &bit| acc << 1 | bit);
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    #[test]
    fn the_encoders_sps_gives_each_layers_size() {
        for (w, h) in [(320, 180), (640, 360), (1_280, 720)] {
            let mut enc = Encoder::new(EncoderConfig {
                width: w,
                height: h,
                fps: 30,
                bitrate_bps: 500_000,
            })
            .unwrap();
            let mut picture = Picture::new(w, h).unwrap();
            Scene.render(0, 30, &mut picture);
            let mut au = AccessUnit::default();
            enc.encode(&picture, true, &mut au).unwrap();
            let sps = au.sequence_parameter_set().unwrap();
            assert_eq!((sps.width, sps.height), (w, h));
            // Baseline profile with constraint_set1 (constrained baseline).
            assert_eq!(sps.profile_idc, 66);
            assert_ne!(sps.constraint_flags & 0x40, 0);
            // Every prefix is refused or parsed, never a panic.
            let nal = au.nal(0).unwrap();
            for end in 0..nal.len() {
                let _ = SequenceParameterSet::parse(&nal[..end]);
            }
        }
    }

    #[test]
    fn high_profile_with_scaling_lists_cropping_and_poc_type_1() {
        let mut w = Writer::default();
        w.bits(100, 8).bits(0, 8).bits(40, 8).ue(2); // high, level 4.0, id 2
        w.ue(1).ue(0).ue(0).bits(0, 1); // 4:2:0, 8-bit, no bypass
        w.bits(1, 1); // scaling matrix present
        for i in 0..8 {
            if i == 1 {
                // One list: deltas 5, -3 then 0 to end it with nextScale 0.
                w.bits(1, 1).se(5).se(-3).se(-10);
            } else {
                w.bits(0, 1);
            }
        }
        w.ue(0).ue(1); // log2_max_frame_num_minus4, poc type 1
        w.bits(0, 1).se(-2).se(1).ue(2).se(3).se(-4);
        w.ue(4).bits(0, 1); // ref frames, gaps
        w.ue(119).ue(67); // 120 x 68 macroblocks: 1920 x 1088
        w.bits(1, 1).bits(1, 1); // frame_mbs_only, direct_8x8
        w.bits(1, 1).ue(0).ue(0).ue(0).ue(4); // crop bottom 4 units of 2 rows: 1080
        let nal = w.nal();
        let sps = SequenceParameterSet::parse(&nal).unwrap();
        assert_eq!(
            sps,
            SequenceParameterSet {
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 40,
                id: 2,
                width: 1_920,
                height: 1_080
            }
        );
        assert_eq!(sps.profile_level_id(), 0x64_00_28);
    }

    #[test]
    fn emulation_prevention_is_removed_and_bad_units_refused() {
        // Constraint flags 0 and level 0 are 00 00; id 63 begins 0000 0010: 03 goes between.
        let mut w = Writer::default();
        w.bits(66, 8).bits(0, 8).bits(0, 8).ue(63);
        w.ue(0)
            .ue(2)
            .ue(1)
            .bits(0, 1)
            .ue(0)
            .ue(0)
            .bits(1, 1)
            .bits(1, 1)
            .bits(0, 1);
        let nal = w.nal();
        assert!(nal.windows(3).any(|x| x == [0, 0, 3]), "{nal:02x?}");
        let sps = SequenceParameterSet::parse(&nal).unwrap();
        assert_eq!((sps.width, sps.height, sps.id), (16, 16, 63));
        assert_eq!(sps.profile_level_id(), 0x42_00_00);
        assert_eq!(SequenceParameterSet::parse(&[]), None);
        assert_eq!(SequenceParameterSet::parse(&[0x68, 0x42, 0, 0]), None);
        // An Exp-Golomb code of 40 zeros.
        assert_eq!(
            SequenceParameterSet::parse(&[0x67, 66, 0, 31, 0, 0, 0, 0, 0, 0x80]),
            None
        );
        // Cropping more than the picture.
        let mut w = Writer::default();
        w.bits(66, 8).bits(0, 8).bits(31, 8).ue(0);
        w.ue(0)
            .ue(2)
            .ue(1)
            .bits(0, 1)
            .ue(0)
            .ue(0)
            .bits(1, 1)
            .bits(1, 1);
        w.bits(1, 1).ue(9).ue(0).ue(0).ue(0);
        assert_eq!(SequenceParameterSet::parse(&w.nal()), None);
    }
}
