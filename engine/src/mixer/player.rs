//! Audio the engine originates for a leg: prompts played to one caller (the IVR, "you are
//! muted") and the leg's own encoder for audio that is not a shared mix.

use std::sync::Arc;

use chorus_codecs::resample::Resampler;
use chorus_codecs::{AudioCodec, AudioEncoder};

use super::conference::CLIP_RATE;

/// Clips the control side handed over ([`CLIP_RATE`]), resampled once per core to the mix
/// rate and kept by the clip they came from, so that a prompt playing to thousands of legs
/// is not resampled for each of them on every tick. Bounded: the oldest entry goes first.
#[derive(Debug, Default)]
pub struct ClipCache {
    /// Holding the original keeps its address from being reused by another clip while it is
    /// a key.
    entries: Vec<Resampled>,
}

/// A clip as handed over, and the same at the mix rate.
type Resampled = (Arc<[i16]>, Arc<[i16]>);

/// Clips a core keeps resampled (prompts, tones, a load generator's talker signals).
const CLIP_CACHE_ENTRIES: usize = 64;

impl ClipCache {
    /// `clip` ([`CLIP_RATE`]) at `rate`: itself when the rates agree, else its resampled copy
    /// (made on first use: the whole clip at once, the filter's delay taken out).
    pub fn at_rate(&mut self, clip: &Arc<[i16]>, rate: u32) -> Arc<[i16]> {
        if rate == CLIP_RATE {
            return clip.clone();
        }
        if let Some((_, done)) = self.entries.iter().find(|(c, _)| Arc::ptr_eq(c, clip)) {
            return done.clone();
        }
        let Ok(mut r) = Resampler::new(CLIP_RATE, rate) else {
            return clip.clone();
        };
        let want = (clip.len() as u64 * u64::from(rate) / u64::from(CLIP_RATE)) as usize;
        let delay = r.delay_samples();
        let mut out = Vec::with_capacity(want + delay);
        r.process(clip, &mut out);
        // Flush the filter so the clip's end comes out, then drop its delay at the start.
        let tail = vec![0i16; (delay + 1) * (CLIP_RATE / rate).max(1) as usize];
        r.process(&tail, &mut out);
        let start = delay.min(out.len());
        let done: Arc<[i16]> = out[start..].iter().take(want).copied().collect();
        if self.entries.len() >= CLIP_CACHE_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push((clip.clone(), done.clone()));
        done
    }
}

/// A clip playing to one leg or a conference, at the mix rate, and how far it got.
#[derive(Debug)]
pub struct Player {
    clip: Arc<[i16]>,
    pos: usize,
    /// The id the control side gave the playback (reported in `PlayDone`).
    pub id: u32,
}

impl Player {
    /// Plays `clip` (mono, at the rate of the frames it will fill: the mix rate, see
    /// [`ClipCache`]) from its start.
    pub fn new(clip: Arc<[i16]>, id: u32) -> Self {
        Player { clip, pos: 0, id }
    }

    /// Nothing of the clip is out yet (the next frame is its first).
    pub fn at_start(&self) -> bool {
        self.pos == 0
    }

    /// Adds the next `out.len()` samples of the clip to `out` (saturating); true while
    /// samples remain after this frame.
    pub fn mix_into(&mut self, out: &mut [i16]) -> bool {
        let end = (self.pos + out.len()).min(self.clip.len());
        let chunk = self.clip.get(self.pos..end).unwrap_or_default();
        for (o, &c) in out.iter_mut().zip(chunk) {
            *o = o.saturating_add(c);
        }
        self.pos = end;
        self.pos < self.clip.len()
    }

    /// Samples not played yet.
    pub fn remaining(&self) -> usize {
        self.clip.len() - self.pos
    }
}

/// A leg's own encoder, for audio only it hears (a prompt alone, or over the mix).
pub struct PrivateEncoder {
    codec: AudioCodec,
    encoder: Box<dyn AudioEncoder>,
    resampler: Option<Resampler>,
    pcm: Vec<i16>,
    /// The last frame encoded.
    pub payload: Vec<u8>,
}

impl PrivateEncoder {
    /// An encoder for `codec` taking frames at `in_rate` (the engine's mix rate); None if
    /// this build cannot encode it.
    pub fn new(codec: AudioCodec, in_rate: u32) -> Option<Self> {
        Self::with_dtx(codec, in_rate, false)
    }

    /// The same, with discontinuous transmission where the codec has it (Opus DTX).
    pub fn with_dtx(codec: AudioCodec, in_rate: u32, dtx: bool) -> Option<Self> {
        let rate = codec.sample_rate();
        Some(PrivateEncoder {
            codec,
            encoder: if dtx {
                codec.encoder_with_dtx()?
            } else {
                codec.encoder()?
            },
            resampler: if rate == in_rate {
                None
            } else {
                Some(Resampler::new(in_rate, rate).ok()?)
            },
            pcm: Vec::new(),
            payload: Vec::new(),
        })
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Encodes one frame at the input rate into `payload`; false if the encoder refused it.
    pub fn encode(&mut self, frame: &[i16]) -> bool {
        self.payload.clear();
        let input = match &mut self.resampler {
            Some(r) => {
                self.pcm.clear();
                r.process(frame, &mut self.pcm);
                &self.pcm[..]
            }
            None => frame,
        };
        self.encoder.encode(input, &mut self.payload).is_ok()
    }
}

impl std::fmt::Debug for PrivateEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateEncoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_plays_frame_by_frame_over_what_is_there() {
        let mut p = Player::new(Arc::from(vec![100i16; 500]), 3);
        let mut frame = [1i16; 320];
        assert!(p.mix_into(&mut frame));
        assert_eq!(frame, [101; 320]);
        let mut frame = [0i16; 320];
        assert!(!p.mix_into(&mut frame), "180 samples were left");
        assert_eq!(&frame[..180], &[100; 180]);
        assert_eq!(&frame[180..], &[0; 140]);
        assert_eq!(p.remaining(), 0);
        let mut loud = [i16::MAX; 4];
        let mut q = Player::new(Arc::from(vec![i16::MAX; 4]), 4);
        q.mix_into(&mut loud);
        assert_eq!(loud, [i16::MAX; 4]);
    }

    #[test]
    fn a_clip_for_an_8_khz_mix_is_resampled_once_and_plays_whole() {
        // 1 kHz at 16 kHz, 0.5 s: 4,000 samples at 8 kHz, 25 frames of 160.
        let clip: Arc<[i16]> = (0..8_000)
            .map(|n| (8_000.0 * (2.0 * std::f64::consts::PI * n as f64 / 16.0).sin()) as i16)
            .collect();
        let mut cache = ClipCache::default();
        let at8k = cache.at_rate(&clip, 8_000);
        assert_eq!(at8k.len(), 4_000);
        // Once per clip: the same copy the next time, the clip itself at its own rate.
        assert!(Arc::ptr_eq(&at8k, &cache.at_rate(&clip, 8_000)));
        assert!(Arc::ptr_eq(&clip, &cache.at_rate(&clip, CLIP_RATE)));
        let mut p = Player::new(at8k, 1);
        let mut out = Vec::new();
        let mut frames = 0;
        loop {
            let mut frame = [0i16; 160];
            let more = p.mix_into(&mut frame);
            out.extend_from_slice(&frame);
            frames += 1;
            if !more {
                break;
            }
        }
        assert_eq!(frames, 25);
        // The tone is there at full level, from start to end (the filter's delay taken out).
        let rms = |s: &[i16]| {
            (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        for part in [&out[40..800], &out[800..3_200], &out[3_200..3_960]] {
            let level = rms(part);
            assert!((5_300.0..6_000.0).contains(&level), "{level}");
        }
    }

    #[test]
    fn private_encoder_encodes_a_tick_for_the_leg_codec() {
        let mut e = PrivateEncoder::new(AudioCodec::Pcmu, CLIP_RATE).unwrap();
        assert!(e.encode(&[0; 320]));
        assert_eq!(e.payload.len(), 160, "16 kHz in, 8 kHz G.711 out");
        let mut g = PrivateEncoder::new(AudioCodec::G722, CLIP_RATE).unwrap();
        assert!(g.encode(&[0; 320]));
        assert_eq!(g.payload.len(), 160);
        let mut n = PrivateEncoder::new(AudioCodec::Pcmu, 8_000).unwrap();
        assert!(n.encode(&[0; 160]));
        assert_eq!(n.payload.len(), 160, "8 kHz in, no resampling");
    }
}
