//! [`Encoder`]: OpenH264 turning [`Picture`]s into [`AccessUnit`]s.

use openh264::encoder::{
    BitRate, Complexity, Encoder as OpenH264Encoder, EncoderConfig as OpenH264Config, FrameRate,
    FrameType, IntraFramePeriod, Profile, RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use super::picture::check_size;
use super::{AccessUnit, H264Error, Picture};

/// What an [`Encoder`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Picture width in pixels (even, 16..=3840).
    pub width: u32,
    /// Picture height in pixels (even, 16..=2160).
    pub height: u32,
    /// Frames per second (1..=60, dividing 90,000 so frames fall on whole RTP ticks).
    pub fps: u32,
    /// Target bitrate in bits per second (10 kbit/s to 50 Mbit/s).
    pub bitrate_bps: u32,
}

impl EncoderConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), H264Error> {
        check_size(self.width, self.height)?;
        if self.fps == 0 || self.fps > 60 || !super::RTP_CLOCK_RATE.is_multiple_of(self.fps) {
            return Err(H264Error::FrameRate(self.fps));
        }
        if !(10_000..=50_000_000).contains(&self.bitrate_bps) {
            return Err(H264Error::Bitrate(self.bitrate_bps));
        }
        Ok(())
    }
}

/// An OpenH264 encoder: constrained baseline profile (what WebRTC peers and SIP phones
/// decode), one slice per picture, bitrate-controlled rate control that never skips a frame,
/// one thread, and key frames only when asked for (no periodic intra, no scene-cut
/// detection), so a simulcast sender's layers put their key frames on the same frames.
///
/// The first picture is always a key frame. Each key frame's access unit carries SPS, PPS
/// and the IDR slice.
pub struct Encoder {
    inner: OpenH264Encoder,
    config: EncoderConfig,
    frames: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

/// The Annex B start code in front of `nal` removed (`00 00 01` or `00 00 00 01`).
fn strip_start_code(nal: &[u8]) -> &[u8] {
    let zeros = nal.iter().take_while(|&&b| b == 0).count();
    if zeros >= 2 && nal.get(zeros) == Some(&1) {
        &nal[zeros + 1..]
    } else {
        nal
    }
}

impl Encoder {
    /// An encoder for `config`.
    pub fn new(config: EncoderConfig) -> Result<Self, H264Error> {
        config.validate()?;
        let settings = OpenH264Config::new()
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .complexity(Complexity::Medium)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1);
        let inner = OpenH264Encoder::with_api_config(OpenH264API::from_source(), settings)
            .map_err(|e| H264Error::Library(e.to_string()))?;
        Ok(Encoder {
            inner,
            config,
            frames: 0,
        })
    }

    /// Its settings.
    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// How many pictures it has encoded.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Encodes `picture` (the encoder's size) into `out` (cleared first); with `force_key`
    /// the picture becomes a key frame. `out.timestamp` is set to the picture's 90 kHz time
    /// since the first one. Returns whether the access unit is a key frame.
    pub fn encode(
        &mut self,
        picture: &Picture,
        force_key: bool,
        out: &mut AccessUnit,
    ) -> Result<bool, H264Error> {
        let (w, h) = (self.config.width, self.config.height);
        if picture.width() != w as usize || picture.height() != h as usize {
            return Err(H264Error::PictureSize {
                width: w,
                height: h,
                got_width: picture.width() as u32,
                got_height: picture.height() as u32,
            });
        }
        // The encoder is initialised by its first encode, which is a key frame anyway.
        if force_key && self.frames > 0 {
            self.inner.force_intra_frame();
        }
        let (cw, _) = picture.chroma_size();
        let source = YUVSlices::new(
            (picture.y(), picture.u(), picture.v()),
            (w as usize, h as usize),
            (w as usize, cw, cw),
        );
        let ms = self.frames * 1_000 / u64::from(self.config.fps);
        let bits = self
            .inner
            .encode_at(&source, Timestamp::from_millis(ms))
            .map_err(|e| H264Error::Library(e.to_string()))?;
        out.clear();
        out.timestamp = (self.frames * u64::from(super::RTP_CLOCK_RATE / self.config.fps)) as u32;
        for l in 0..bits.num_layers() {
            let Some(layer) = bits.layer(l) else { continue };
            for n in 0..layer.nal_count() {
                if let Some(nal) = layer.nal_unit(n) {
                    out.push_nal(strip_start_code(nal));
                }
            }
        }
        let index = self.frames;
        self.frames += 1;
        if out.nal_count() == 0 || bits.frame_type() == FrameType::Skip {
            return Err(H264Error::Skipped(index));
        }
        Ok(bits.frame_type() == FrameType::IDR)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS, Scene, nal_type};
    use super::*;

    #[test]
    fn settings_are_checked() {
        let ok = EncoderConfig {
            width: 320,
            height: 180,
            fps: 30,
            bitrate_bps: 150_000,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            EncoderConfig { width: 321, ..ok },
            EncoderConfig { height: 8, ..ok },
            EncoderConfig { fps: 0, ..ok },
            EncoderConfig { fps: 7, ..ok },
            EncoderConfig { fps: 120, ..ok },
            EncoderConfig {
                bitrate_bps: 1_000,
                ..ok
            },
        ] {
            assert!(Encoder::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(strip_start_code(&[0, 0, 0, 1, 0x67]), &[0x67]);
        assert_eq!(strip_start_code(&[0, 0, 1, 0x68]), &[0x68]);
        assert_eq!(strip_start_code(&[0x41, 0]), &[0x41, 0]);
    }

    #[test]
    fn key_frames_come_when_asked_and_carry_parameter_sets() {
        let config = EncoderConfig {
            width: 320,
            height: 180,
            fps: 15,
            bitrate_bps: 150_000,
        };
        let mut enc = Encoder::new(config).unwrap();
        let mut picture = Picture::new(320, 180).unwrap();
        let mut au = AccessUnit::default();
        let mut bytes = 0;
        for i in 0..30u64 {
            Scene.render(i, 15, &mut picture);
            let key = enc.encode(&picture, i == 20, &mut au).unwrap();
            assert_eq!(key, i == 0 || i == 20, "frame {i}");
            assert_eq!(au.is_key(), key);
            assert_eq!(au.timestamp, i as u32 * 6_000);
            let types: Vec<u8> = au.nals().map(|n| nal_type(n[0])).collect();
            if key {
                assert_eq!(types, [NAL_SPS, NAL_PPS, NAL_IDR], "frame {i}");
            } else {
                assert_eq!(types, [NAL_SLICE], "frame {i}");
            }
            bytes += au.byte_len();
        }
        // Two seconds at 150 kbit/s: within a factor of two of the target.
        let bps = bytes * 8 / 2;
        assert!((75_000..300_000).contains(&bps), "{bps} bit/s");
        let wrong = Picture::new(640, 360).unwrap();
        assert!(matches!(
            enc.encode(&wrong, false, &mut au),
            Err(H264Error::PictureSize { .. })
        ));
    }
}
