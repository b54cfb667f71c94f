//! Audio the engine originates for a leg: prompts played to one caller (the IVR, "you are
//! muted") and the leg's own encoder for audio that is not a shared mix.

use std::sync::Arc;

use chorus_codecs::resample::Resampler;
use chorus_codecs::{AudioCodec, AudioEncoder};

use super::conference::MIX_RATE;

/// A clip playing to one leg: 16 kHz mono samples and how far it got.
#[derive(Debug)]
pub struct Player {
    clip: Arc<[i16]>,
    pos: usize,
    /// The id the control side gave the playback (reported in `PlayDone`).
    pub id: u32,
}

impl Player {
    /// Plays `clip` (16 kHz mono) from its start.
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
    /// An encoder for `codec` taking 16 kHz frames; None if this build cannot encode it.
    pub fn new(codec: AudioCodec) -> Option<Self> {
        Self::with_dtx(codec, false)
    }

    /// The same, with discontinuous transmission where the codec has it (Opus DTX).
    pub fn with_dtx(codec: AudioCodec, dtx: bool) -> Option<Self> {
        let rate = codec.sample_rate();
        Some(PrivateEncoder {
            codec,
            encoder: if dtx {
                codec.encoder_with_dtx()?
            } else {
                codec.encoder()?
            },
            resampler: if rate == MIX_RATE {
                None
            } else {
                Some(Resampler::new(MIX_RATE, rate).ok()?)
            },
            pcm: Vec::new(),
            payload: Vec::new(),
        })
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Encodes one frame at 16 kHz into `payload`; false if the encoder refused it.
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
    fn private_encoder_encodes_a_tick_for_the_leg_codec() {
        let mut e = PrivateEncoder::new(AudioCodec::Pcmu).unwrap();
        assert!(e.encode(&[0; 320]));
        assert_eq!(e.payload.len(), 160, "16 kHz in, 8 kHz G.711 out");
        let mut g = PrivateEncoder::new(AudioCodec::G722).unwrap();
        assert!(g.encode(&[0; 320]));
        assert_eq!(g.payload.len(), 160);
    }
}
