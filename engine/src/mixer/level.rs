//! Audio levels of PCM frames, on the RFC 6464 scale: 0 to 127, in -dBov (0 is the loudest,
//! 127 digital silence), where 0 dBov is the level of a full-scale square wave (RMS 32,767).
//! A full-scale sine is 3 dBov below it. Phone-network callers send no RFC 6464 extension, so
//! the mixer computes every leg's level from the decoded signal.

/// An audio level in -dBov, 0 (loudest) to 127 (silence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(pub u8);

impl Level {
    /// Digital silence.
    pub const SILENCE: Level = Level(127);

    /// The level of a frame of 16-bit PCM.
    pub fn of(pcm: &[i16]) -> Level {
        if pcm.is_empty() {
            return Level::SILENCE;
        }
        // i64: 32,768^2 * 2,880 samples (60 ms at 48 kHz) fits many times over.
        let energy: i64 = pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
        Level::from_mean_square(energy as f64 / pcm.len() as f64)
    }

    /// The level of a mean square value (of 16-bit samples).
    pub fn from_mean_square(ms: f64) -> Level {
        const FULL_SCALE_SQ: f64 = 32_767.0 * 32_767.0;
        if ms <= 0.0 {
            return Level::SILENCE;
        }
        let dbov = 10.0 * (ms / FULL_SCALE_SQ).log10();
        Level((-dbov).round().clamp(0.0, 127.0) as u8)
    }

    /// The level in dBov (0 or negative).
    pub fn dbov(self) -> i32 {
        -i32::from(self.0)
    }

    /// Louder than `other` by at least `db` decibels.
    pub fn louder_by(self, other: Level, db: u8) -> bool {
        u16::from(self.0) + u16::from(db) <= u16::from(other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn levels_on_the_rfc_6464_scale() {
        assert_eq!(Level::of(&[]), Level::SILENCE);
        assert_eq!(Level::of(&[0; 160]), Level::SILENCE);
        assert_eq!(Level::of(&[32_767; 160]), Level(0));
        assert_eq!(Level::of(&[-32_767; 160]), Level(0));
        assert_eq!(Level::of(&sine(32_767.0, 800)), Level(3));
        // Each halving of amplitude is 6 dB.
        assert_eq!(Level::of(&sine(16_384.0, 800)), Level(9));
        assert_eq!(Level::of(&sine(1_036.0, 800)), Level(33));
        // A single LSB of noise is still above the floor of the scale.
        assert!(Level::of(&[1, -1, 1, -1]).0 <= 91);
        assert!(Level(10).louder_by(Level(20), 6));
        assert!(!Level(16).louder_by(Level(20), 6));
        assert_eq!(Level(20).dbov(), -20);
    }
}
