//! Synthesized signalling tones the conference plays to its callers: the join tone (rising),
//! the leave tone (falling) and a beep (e.g. to confirm a key).
//!
//! Every tone is generated at the rate asked for (8, 16 or 48 kHz for the mixer), at
//! [`TONE_LEVEL`], and each of its segments starts and ends with a 5 ms raised-cosine fade so
//! that neither the start, the change of pitch nor the end clicks.
//!
//! ```
//! let join = chorus_codecs::tones::join_tone(16_000);
//! assert_eq!(join.len(), 16_000 * 300 / 1000);
//! ```

use std::f64::consts::PI;

/// Peak amplitude of the tones: -12 dBFS, comfortably below speech prompts (normalized to
/// -3 dBFS) so a tone over a conversation is heard without startling anyone.
pub const TONE_LEVEL: i16 = 8_192;

/// Length of the fade at each end of every tone segment.
pub const FADE_MS: u32 = 5;

/// Low note of the join and leave tones.
pub const LOW_HZ: f64 = 440.0;
/// High note of the join and leave tones (a fifth above the low one).
pub const HIGH_HZ: f64 = 660.0;
/// Length of each note of the join and leave tones.
pub const NOTE_MS: u32 = 150;
/// Pitch of the beep.
pub const BEEP_HZ: f64 = 1_000.0;
/// Length of the beep.
pub const BEEP_MS: u32 = 200;

/// Number of samples in `ms` milliseconds at `rate` Hz (rounded down).
fn samples_for(ms: u32, rate: u32) -> usize {
    (u64::from(ms) * u64::from(rate) / 1000) as usize
}

/// Appends a sine of `freq_hz` lasting `duration_ms` at `rate` Hz, at [`TONE_LEVEL`], faded in
/// and out over [`FADE_MS`] (or a third of the tone, if that is shorter).
pub fn tone(freq_hz: f64, duration_ms: u32, rate: u32, out: &mut Vec<i16>) {
    let len = samples_for(duration_ms, rate);
    let fade = samples_for(FADE_MS, rate).min(len / 3).max(1);
    let step = 2.0 * PI * freq_hz / f64::from(rate.max(1));
    out.reserve(len);
    for n in 0..len {
        // Distance from the nearer end, in samples; the fade is a raised cosine over `fade`.
        let edge = n.min(len - 1 - n);
        let gain = if edge < fade {
            0.5 * (1.0 - (PI * edge as f64 / fade as f64).cos())
        } else {
            1.0
        };
        let s = f64::from(TONE_LEVEL) * gain * (step * n as f64).sin();
        // A float-to-int `as` saturates; |s| <= TONE_LEVEL anyway.
        out.push(s.round() as i16);
    }
}

/// The join tone: 440 Hz then 660 Hz, 150 ms each, at `rate` Hz.
pub fn join_tone(rate: u32) -> Vec<i16> {
    let mut out = Vec::new();
    tone(LOW_HZ, NOTE_MS, rate, &mut out);
    tone(HIGH_HZ, NOTE_MS, rate, &mut out);
    out
}

/// The leave tone: 660 Hz then 440 Hz, 150 ms each, at `rate` Hz.
pub fn leave_tone(rate: u32) -> Vec<i16> {
    let mut out = Vec::new();
    tone(HIGH_HZ, NOTE_MS, rate, &mut out);
    tone(LOW_HZ, NOTE_MS, rate, &mut out);
    out
}

/// A beep: 1 kHz for 200 ms at `rate` Hz.
pub fn beep(rate: u32) -> Vec<i16> {
    let mut out = Vec::new();
    tone(BEEP_HZ, BEEP_MS, rate, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u32; 3] = [8_000, 16_000, 48_000];

    /// Power of `freq_hz` in `x` by the Goertzel recurrence, normalized by the length so that
    /// windows of different lengths compare.
    fn goertzel(x: &[i16], freq_hz: f64, rate: u32) -> f64 {
        let coeff = 2.0 * (2.0 * PI * freq_hz / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        power / (x.len() as f64 * x.len() as f64)
    }

    /// The middle of a note, away from its fades: from 20 ms in to 20 ms before its end.
    fn middle(x: &[i16], rate: u32) -> &[i16] {
        let margin = samples_for(20, rate);
        &x[margin..x.len() - margin]
    }

    /// Asserts that `x` holds `want_hz` and not `other_hz`.
    fn assert_pitch(x: &[i16], rate: u32, want_hz: f64, other_hz: f64) {
        let want = goertzel(x, want_hz, rate);
        let other = goertzel(x, other_hz, rate);
        assert!(
            want > 1_000.0 * other,
            "{rate} Hz: {want_hz} {want} vs {other_hz} {other}"
        );
        // A full-scale sine of amplitude A has Goertzel power (A/2)^2 per sample squared.
        let expected = (f64::from(TONE_LEVEL) / 2.0).powi(2);
        assert!((want / expected - 1.0).abs() < 0.1, "{want} vs {expected}");
    }

    #[test]
    fn join_rises_and_leave_falls() {
        for rate in RATES {
            let note = samples_for(NOTE_MS, rate);
            let join = join_tone(rate);
            assert_eq!(join.len(), 2 * note);
            assert_pitch(middle(&join[..note], rate), rate, LOW_HZ, HIGH_HZ);
            assert_pitch(middle(&join[note..], rate), rate, HIGH_HZ, LOW_HZ);
            let leave = leave_tone(rate);
            assert_eq!(leave.len(), 2 * note);
            assert_pitch(middle(&leave[..note], rate), rate, HIGH_HZ, LOW_HZ);
            assert_pitch(middle(&leave[note..], rate), rate, LOW_HZ, HIGH_HZ);
        }
    }

    #[test]
    fn beep_is_one_kilohertz() {
        for rate in RATES {
            let beep = beep(rate);
            assert_eq!(beep.len(), samples_for(BEEP_MS, rate));
            assert_pitch(middle(&beep, rate), rate, BEEP_HZ, LOW_HZ);
        }
    }

    #[test]
    fn tones_fade_at_every_edge_and_stay_below_the_level() {
        for rate in RATES {
            let note = samples_for(NOTE_MS, rate);
            let ms1 = samples_for(1, rate);
            for x in [join_tone(rate), leave_tone(rate), beep(rate)] {
                let peak = |s: &[i16]| s.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
                assert!(peak(&x) <= TONE_LEVEL as u16);
                assert!(peak(&x) > TONE_LEVEL as u16 / 10 * 9);
                // The first and last millisecond are still low in the fade.
                assert!(peak(&x[..ms1]) < TONE_LEVEL as u16 / 8, "start at {rate}");
                assert!(
                    peak(&x[x.len() - ms1..]) < TONE_LEVEL as u16 / 8,
                    "end at {rate}"
                );
                assert_eq!(x[0], 0);
                if x.len() == 2 * note {
                    // Around the change of pitch both notes are faded.
                    let joint = &x[note - ms1..note + ms1];
                    assert!(peak(joint) < TONE_LEVEL as u16 / 8, "joint at {rate}");
                }
            }
        }
    }

    #[test]
    fn degenerate_lengths_and_rates_do_not_panic() {
        let mut out = Vec::new();
        tone(440.0, 0, 16_000, &mut out);
        assert!(out.is_empty());
        tone(440.0, 1, 1_000, &mut out);
        assert_eq!(out.len(), 1);
        assert!(join_tone(0).is_empty());
        assert!(beep(0).is_empty());
    }
}
