//! Audio the engine originates for a leg: prompts played to one caller (the IVR, "you are
//! muted") and the leg's own encoder for audio that is not a shared mix.

use std::sync::Arc;

use chorus_codecs::resample::Resampler;
use chorus_codecs::{AudioCodec, AudioEncoder};

use super::conference::CLIP_RATE;

/// A clip playing to one leg or a conference: [`CLIP_RATE`] mono samples, how far it got,
/// and, when the engine mixes at a lower rate, the resampler taking it there.
#[derive(Debug)]
pub struct Player {
    clip: Arc<[i16]>,
    pos: usize,
    /// The id the control side gave the playback (reported in `PlayDone`).
    pub id: u32,
    /// Clip rate to the engine's rate (8 kHz mixing), with its output not yet played.
    resampler: Option<(Resampler, Vec<i16>)>,
}

impl Player {
    /// Plays `clip` ([`CLIP_RATE`] mono) from its start, as frames at `rate` (the engine's
    /// mix rate: 16 or 8 kHz).
    pub fn new(clip: Arc<[i16]>, id: u32, rate: u32) -> Self {
        let resampler = (rate != CLIP_RATE)
            .then(|| Resampler::new(CLIP_RATE, rate).ok())
            .flatten()
            .map(|r| (r, Vec::new()));
        Player {
            clip,
            pos: 0,
            id,
            resampler,
        }
    }

    /// Nothing of the clip is out yet (the next frame is its first).
    pub fn at_start(&self) -> bool {
        self.pos == 0
    }

    /// Adds the next `out.len()` samples of the clip to `out` (saturating); true while
    /// samples remain after this frame.
    pub fn mix_into(&mut self, out: &mut [i16]) -> bool {
        let Some((resampler, ready)) = &mut self.resampler else {
            let end = (self.pos + out.len()).min(self.clip.len());
            let chunk = self.clip.get(self.pos..end).unwrap_or_default();
            for (o, &c) in out.iter_mut().zip(chunk) {
                *o = o.saturating_add(c);
            }
            self.pos = end;
            return self.pos < self.clip.len();
        };
        // Feed the clip until a frame's worth is out (a ratio of 2: twice the samples in).
        let ratio = (CLIP_RATE / resampler.to_hz().max(1)).max(1) as usize;
        while ready.len() < out.len() && self.pos < self.clip.len() {
            let end = (self.pos + (out.len() - ready.len()) * ratio).min(self.clip.len());
            let chunk = self.clip.get(self.pos..end).unwrap_or_default();
            resampler.process(chunk, ready);
            self.pos = end;
        }
        let n = ready.len().min(out.len());
        for (o, &c) in out.iter_mut().zip(&ready[..n]) {
            *o = o.saturating_add(c);
        }
        ready.drain(..n);
        self.pos < self.clip.len() || !ready.is_empty()
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
        let mut p = Player::new(Arc::from(vec![100i16; 500]), 3, CLIP_RATE);
        let mut frame = [1i16; 320];
        assert!(p.mix_into(&mut frame));
        assert_eq!(frame, [101; 320]);
        let mut frame = [0i16; 320];
        assert!(!p.mix_into(&mut frame), "180 samples were left");
        assert_eq!(&frame[..180], &[100; 180]);
        assert_eq!(&frame[180..], &[0; 140]);
        assert_eq!(p.remaining(), 0);
        let mut loud = [i16::MAX; 4];
        let mut q = Player::new(Arc::from(vec![i16::MAX; 4]), 4, CLIP_RATE);
        q.mix_into(&mut loud);
        assert_eq!(loud, [i16::MAX; 4]);
    }

    #[test]
    fn a_clip_played_into_an_8_khz_mix_comes_out_at_8_khz_and_whole() {
        // 1 kHz at 16 kHz, 0.5 s: 4,000 samples at 8 kHz, 25 frames of 160.
        let clip: Arc<[i16]> = (0..8_000)
            .map(|n| (8_000.0 * (2.0 * std::f64::consts::PI * n as f64 / 16.0).sin()) as i16)
            .collect();
        let mut p = Player::new(clip, 1, 8_000);
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
        // The tone is there at full level past the filter's start-up.
        let rms = |s: &[i16]| {
            (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        let level = rms(&out[800..3_200]);
        assert!((5_300.0..6_000.0).contains(&level), "{level}");
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
