//! One leg's audio in a conference: its jitter buffer and decoder on the way in (packets
//! pushed on the packet path, one frame at the conference rate pulled per tick), and its
//! outbound RTP numbering on the way out.

use std::time::Instant;

use chorus_codecs::resample::Resampler;
use chorus_codecs::{AudioCodec, AudioDecoder};

use super::jitter_buffer::{JitterBuffer, JitterConfig, Playout, PushOutcome};
use super::level::Level;
use crate::rtp::Pt;

/// The audio format negotiated for a leg (from its SDP answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioFormat {
    /// The codec.
    pub codec: AudioCodec,
    /// Its payload type on this leg, both ways (the answer's mapping).
    pub pt: Pt,
    /// The RFC 3389 comfort-noise payload type the remote may send, if negotiated.
    pub cn_pt: Option<Pt>,
}

/// Why a leg cannot take part in the mix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegAudioError {
    /// This build has no decoder or encoder for the codec.
    #[error("no {0:?} codec in this build")]
    NoCodec(AudioCodec),
    /// A rate the resampler or jitter buffer does not take.
    #[error("unsupported rate: {0}")]
    Rate(String),
}

/// A leg's inbound audio path and outbound numbering.
pub struct LegAudio {
    format: AudioFormat,
    jitter: JitterBuffer,
    decoder: Box<dyn AudioDecoder>,
    /// Codec rate to conference rate; None when they are equal.
    to_mix: Option<Resampler>,
    /// Decoded samples at the codec rate, not yet taken for a tick.
    decoded: Vec<i16>,
    /// This tick's frame at the conference rate.
    frame: Vec<i16>,
    /// Samples per tick at the codec rate and at the conference rate.
    codec_frame: usize,
    mix_frame: usize,
    /// Decoder output rate and RTP clock rate (G.722: 16,000 on 8,000; Opus here: 16,000 on
    /// 48,000), to turn the jitter buffer's clock units into samples.
    rates: (u32, u32),
    level: Level,
    /// The frame holds speech or concealment (not silence from an idle or silent sender).
    live: bool,
}

impl LegAudio {
    /// The audio path of a leg in a conference mixing at `mix_rate` with ticks of `tick_ms`.
    pub fn new(format: AudioFormat, mix_rate: u32, tick_ms: u32) -> Result<Self, LegAudioError> {
        let codec = format.codec;
        let decoder = codec.decoder().ok_or(LegAudioError::NoCodec(codec))?;
        let rate = codec.sample_rate();
        let to_mix = if rate == mix_rate {
            None
        } else {
            Some(Resampler::new(rate, mix_rate).map_err(|e| LegAudioError::Rate(e.to_string()))?)
        };
        let jitter = JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate(), tick_ms))
            .map_err(|e| LegAudioError::Rate(e.to_string()))?;
        let codec_frame = (rate * tick_ms / 1000) as usize;
        let mix_frame = (mix_rate * tick_ms / 1000) as usize;
        Ok(LegAudio {
            format,
            jitter,
            decoder,
            to_mix,
            decoded: Vec::with_capacity(codec_frame * 4),
            frame: Vec::with_capacity(mix_frame * 2),
            codec_frame,
            mix_frame,
            rates: (rate, codec.rtp_clock_rate().max(1)),
            level: Level::SILENCE,
            live: false,
        })
    }

    /// The negotiated format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// An RTP packet of the leg (after SRTP and validation). Payload types other than the
    /// audio and CN ones are not audio (telephone-event is handled elsewhere).
    pub fn push(
        &mut self,
        now: Instant,
        pt: Pt,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<PushOutcome> {
        if pt == self.format.pt {
            Some(self.jitter.push(now, seq, timestamp, marker, payload))
        } else if Some(pt) == self.format.cn_pt {
            Some(self.jitter.push_comfort_noise(now, seq, timestamp, payload))
        } else {
            None
        }
    }

    /// Produces this tick's frame: decodes (or conceals) what the jitter buffer releases,
    /// takes one tick of it, resamples to the conference rate and measures its level.
    pub fn pull(&mut self, now: Instant) {
        self.jitter.tick(now);
        let mut live = false;
        while let Some(piece) = self.jitter.pop() {
            match piece {
                Playout::Frame { payload, .. } => {
                    // A payload the decoder refuses is concealed like a lost one.
                    if self.decoder.decode(payload, &mut self.decoded).is_err() {
                        self.decoder.conceal(self.codec_frame, &mut self.decoded);
                    }
                    live = true;
                }
                Playout::Lost { samples } => {
                    let n = self.clock_to_samples(samples);
                    self.decoder.conceal(n, &mut self.decoded);
                    live = true;
                }
                Playout::Silence { samples, .. } | Playout::Empty { samples } => {
                    let n = self.clock_to_samples(samples);
                    self.decoded.extend(std::iter::repeat_n(0, n));
                }
            }
        }
        // Exactly one tick's worth leaves the FIFO; a short FIFO is topped up with silence,
        // a long one (a decoder that returned more than the clock said) is cut back.
        if self.decoded.len() < self.codec_frame {
            self.decoded.resize(self.codec_frame, 0);
        }
        self.frame.clear();
        let take = &self.decoded[..self.codec_frame];
        match &mut self.to_mix {
            Some(r) => r.process(take, &mut self.frame),
            None => self.frame.extend_from_slice(take),
        }
        self.frame.resize(self.mix_frame, 0);
        self.decoded.drain(..self.codec_frame);
        if self.decoded.len() > 3 * self.codec_frame {
            let excess = self.decoded.len() - self.codec_frame;
            self.decoded.drain(..excess);
        }
        self.live = live;
        self.level = if live {
            Level::of(&self.frame)
        } else {
            Level::SILENCE
        };
    }

    /// Decoder samples in `clock` units of the RTP clock.
    fn clock_to_samples(&self, clock: u32) -> usize {
        (u64::from(clock) * u64::from(self.rates.0) / u64::from(self.rates.1)) as usize
    }

    /// This tick's frame at the conference rate.
    pub fn frame(&self) -> &[i16] {
        &self.frame
    }

    /// This tick's level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether this tick's frame came from the sender (speech or concealment).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The jitter buffer's counters.
    pub fn jitter_stats(&self) -> super::jitter_buffer::JitterStats {
        self.jitter.stats()
    }
}

impl std::fmt::Debug for LegAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegAudio")
            .field("format", &self.format)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}
