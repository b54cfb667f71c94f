//! A tone probe on what a leg receives: which of a set of tones are in it, and when each burst
//! of one starts.
//!
//! chorus-load gives each talker of a conference a tone of its own, played in bursts; every
//! listener's probe reports the onset of each burst it hears. The generator then knows which
//! talkers each caller hears (and that it never hears itself) and, from the instant the talker
//! started the burst, how long the server took to pass it on (mouth-to-ear through the mixer).
//!
//! Each packet is decoded on arrival (no jitter buffer: the probe measures the network and the
//! server, not a phone's playout) and every tone is measured in it by Goertzel: its share of
//! the frame's energy and its own level. A tone is present in a frame when it carries at least
//! `ON_SHARE` of the energy at `ON_RMS` or more; a burst starts after `ON_FRAMES` frames in a
//! row with the tone present, and its onset is the arrival of the first of them; it ends after
//! `OFF_FRAMES` frames without. A 20 ms frame resolves tones 50 Hz apart; the tones the
//! generator uses are over 100 Hz apart and off the DTMF frequencies.

use std::time::Instant;

use chorus_codecs::AudioDecoder;

use crate::rtp::Pt;

/// The most tones one probe watches.
pub const MAX_TONES: usize = 16;
/// Share of a frame's energy a tone must carry to count as present.
const ON_SHARE: f64 = 0.12;
/// Level (RMS, 16-bit scale) a present tone must reach.
const ON_RMS: f64 = 200.0;
/// Below this share (or half the level) a tone is absent.
const OFF_SHARE: f64 = 0.04;
/// Frames in a row that start a burst.
const ON_FRAMES: u8 = 3;
/// Frames in a row without the tone that end a burst.
const OFF_FRAMES: u8 = 3;

#[derive(Debug, Clone, Copy)]
struct Tone {
    /// 2 cos(2 pi f / rate).
    coeff: f64,
    on: bool,
    /// Frames in a row against the current state.
    run: u8,
    /// Arrival of the first frame of a burst not yet confirmed.
    first: Option<Instant>,
}

/// Watches one leg's incoming audio for a set of tones.
pub struct ToneProbe {
    decoder: Box<dyn AudioDecoder>,
    pt: Pt,
    tones: Vec<Tone>,
    pcm: Vec<i16>,
    /// Packets that did not decode.
    pub undecodable: u64,
}

impl std::fmt::Debug for ToneProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToneProbe")
            .field("pt", &self.pt)
            .field("tones", &self.tones.len())
            .finish()
    }
}

impl ToneProbe {
    /// A probe for `freqs` (Hz, at most `MAX_TONES`) in audio of `codec` at payload type `pt`;
    /// None when the codec has no decoder here or a tone is above the decoder's band.
    pub fn new(codec: chorus_codecs::AudioCodec, pt: Pt, freqs: &[f32]) -> Option<ToneProbe> {
        let decoder = codec.decoder()?;
        let rate = f64::from(decoder.sample_rate());
        if freqs.len() > MAX_TONES
            || freqs
                .iter()
                .any(|&f| f <= 0.0 || f64::from(f) >= rate / 2.0)
        {
            return None;
        }
        let tones = (freqs.iter())
            .map(|&f| Tone {
                coeff: 2.0 * (std::f64::consts::TAU * f64::from(f) / rate).cos(),
                on: false,
                run: 0,
                first: None,
            })
            .collect();
        Some(ToneProbe {
            decoder,
            pt,
            tones,
            pcm: Vec::with_capacity(960),
            undecodable: 0,
        })
    }

    /// Feeds one packet that arrived at `now`; calls `onset(tone index, onset instant)` for
    /// each burst it confirms.
    pub fn handle(
        &mut self,
        pt: Pt,
        payload: &[u8],
        now: Instant,
        mut onset: impl FnMut(u8, Instant),
    ) {
        if pt != self.pt {
            return;
        }
        self.pcm.clear();
        if self.decoder.decode(payload, &mut self.pcm).is_err() || self.pcm.is_empty() {
            self.undecodable += 1;
            return;
        }
        let n = self.pcm.len() as f64;
        let energy: f64 = self.pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        for (i, tone) in self.tones.iter_mut().enumerate() {
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for &x in &self.pcm {
                let s0 = f64::from(x) + tone.coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = s1 * s1 + s2 * s2 - tone.coeff * s1 * s2;
            // A pure tone of energy E over n samples gives power n E / 2.
            let share = if energy > 0.0 {
                2.0 * power / (n * energy)
            } else {
                0.0
            };
            let rms = (share * energy / n).sqrt();
            if tone.on {
                let absent = share < OFF_SHARE || rms < ON_RMS / 2.0;
                tone.run = if absent { tone.run + 1 } else { 0 };
                if tone.run >= OFF_FRAMES {
                    tone.on = false;
                    tone.run = 0;
                }
            } else if share >= ON_SHARE && rms >= ON_RMS {
                let first = *tone.first.get_or_insert(now);
                tone.run += 1;
                if tone.run >= ON_FRAMES {
                    tone.on = true;
                    tone.run = 0;
                    tone.first = None;
                    onset(i as u8, first);
                }
            } else {
                tone.run = 0;
                tone.first = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_codecs::{AudioCodec, g711};
    use std::time::Duration;

    /// 20 ms of PCMU at 8 kHz holding `tones` (frequency, amplitude), from sample `start`.
    fn frame(tones: &[(f64, f64)], start: usize) -> Vec<u8> {
        let pcm: Vec<i16> = (start..start + 160)
            .map(|n| {
                (tones.iter())
                    .map(|&(f, a)| a * (std::f64::consts::TAU * f * n as f64 / 8000.0).sin())
                    .sum::<f64>() as i16
            })
            .collect();
        let mut out = Vec::new();
        g711::encode_into(g711::Law::Mu, &pcm, &mut out);
        out
    }

    #[test]
    fn reports_each_burst_onset_of_the_tones_it_hears_and_no_other() {
        let mut p = ToneProbe::new(AudioCodec::Pcmu, Pt(0), &[310.0, 430.0, 990.0]).unwrap();
        let t0 = Instant::now();
        let mut onsets = Vec::new();
        // 0.2 s silence, 1 s of 310 + 990 Hz, 0.5 s silence, 1 s of 310 Hz alone.
        let schedule: Vec<&[(f64, f64)]> = std::iter::repeat_n(&[][..], 10)
            .chain(std::iter::repeat_n(
                &[(310.0, 6000.0), (990.0, 6000.0)][..],
                50,
            ))
            .chain(std::iter::repeat_n(&[][..], 25))
            .chain(std::iter::repeat_n(&[(310.0, 6000.0)][..], 50))
            .collect();
        for (k, tones) in schedule.iter().enumerate() {
            let at = t0 + Duration::from_millis(20 * k as u64);
            p.handle(Pt(0), &frame(tones, k * 160), at, |i, when| {
                onsets.push((i, when))
            });
        }
        let ms = |i: &(u8, Instant)| (i.0, i.1.duration_since(t0).as_millis());
        let got: Vec<_> = onsets.iter().map(ms).collect();
        // Onsets are the arrival of the first frame holding the tone.
        assert_eq!(got, vec![(0, 200), (2, 200), (0, 1_700)]);
        // Another payload type (CN, events) is not audio.
        p.handle(Pt(13), &[40], t0, |_, _| panic!("not audio"));
        assert_eq!(p.undecodable, 0);
    }

    #[test]
    fn a_faint_tone_or_a_click_is_not_a_burst() {
        let mut p = ToneProbe::new(AudioCodec::Pcmu, Pt(0), &[430.0]).unwrap();
        let t0 = Instant::now();
        let mut onsets = 0;
        for k in 0..50 {
            // Faint: under the level floor.
            let f = frame(&[(430.0, 100.0)], k * 160);
            p.handle(Pt(0), &f, t0, |_, _| onsets += 1);
        }
        assert_eq!(onsets, 0, "faint");
        for k in 0..15 {
            // One loud frame at a time, between silences (the decoder's concealment delay
            // carries each into the next frame: two frames, not three).
            let tones: &[(f64, f64)] = if k % 3 == 0 { &[(430.0, 8000.0)] } else { &[] };
            p.handle(Pt(0), &frame(tones, k * 160), t0, |_, _| onsets += 1);
        }
        assert_eq!(onsets, 0);
    }

    #[test]
    fn tones_out_of_band_or_too_many_are_refused() {
        assert!(ToneProbe::new(AudioCodec::Pcmu, Pt(0), &[4_100.0]).is_none());
        assert!(ToneProbe::new(AudioCodec::Pcmu, Pt(0), &[500.0; MAX_TONES + 1]).is_none());
        assert!(ToneProbe::new(AudioCodec::G722, Pt(9), &[5_000.0]).is_some());
    }
}
