//! chorus-codecs: the audio codecs, resampling, loss concealment and tone detection the mixer
//! needs.
//!
//! Every codec works on 16-bit linear PCM, mono, at its own sample rate
//! ([`AudioDecoder::sample_rate`]); the mixer resamples between 8, 16 and 48 kHz. Decoders and
//! encoders append to caller-owned `Vec`s: a caller that keeps its buffers between ticks
//! (reserving one frame ahead) allocates nothing per packet.
//!
//! ```
//! use chorus_codecs::{AudioDecoder, AudioEncoder, g711};
//! let mut enc = g711::Encoder::new(g711::Law::Mu);
//! let mut dec = g711::Decoder::new(g711::Law::Mu);
//! let pcm = vec![1000i16; 160];
//! let mut payload = Vec::new();
//! enc.encode(&pcm, &mut payload).unwrap();
//! let mut back = Vec::new();
//! dec.decode(&payload, &mut back).unwrap();
//! assert_eq!(back.len(), 160);
//! ```

pub mod comfort_noise;
pub mod dtmf_detect;
pub mod g711;
pub mod g722;
#[cfg(feature = "h264")]
pub mod h264;
pub mod h264_nal;
pub mod opus;
pub mod plc;
pub mod prompts;
pub mod resample;
pub mod tones;
pub mod wav;

/// The audio codecs a leg may use, with their rates and a codec pair for a new leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AudioCodec {
    /// G.711 mu-law (PCMU).
    Pcmu,
    /// G.711 A-law (PCMA).
    Pcma,
    /// G.722 at 64 kbit/s (16 kHz audio on an 8 kHz RTP clock).
    G722,
    /// Opus (48 kHz RTP clock, RFC 7587).
    Opus,
}

impl AudioCodec {
    /// The PCM sample rate of its decoder and encoder, in Hz.
    pub fn sample_rate(self) -> u32 {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8_000,
            // Opus is decoded and encoded at 16 kHz, the mixer's rate: wideband speech
            // without resampling (its RTP clock stays 48 kHz).
            AudioCodec::G722 | AudioCodec::Opus => 16_000,
        }
    }

    /// Its RTP timestamp clock, in Hz (G.722's is 8,000 though it samples at 16 kHz).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma | AudioCodec::G722 => 8_000,
            AudioCodec::Opus => 48_000,
        }
    }

    /// A decoder for a new stream, or None when this build has no implementation.
    pub fn decoder(self) -> Option<Box<dyn AudioDecoder>> {
        match self {
            AudioCodec::Pcmu => Some(Box::new(g711::Decoder::new(g711::Law::Mu))),
            AudioCodec::Pcma => Some(Box::new(g711::Decoder::new(g711::Law::A))),
            AudioCodec::G722 => Some(Box::new(g722::Decoder::new())),
            AudioCodec::Opus => opus::Decoder::new(opus::SampleRate::Hz16000)
                .ok()
                .map(|d| Box::new(d) as Box<dyn AudioDecoder>),
        }
    }

    /// An encoder that marks silence for discontinuous transmission where the codec has it
    /// (Opus DTX: frames of at most `opus::DTX_MAX_BYTES` the sender may skip, `opus::is_dtx`);
    /// for the others the same as `encoder`.
    pub fn encoder_with_dtx(self) -> Option<Box<dyn AudioEncoder>> {
        match self {
            AudioCodec::Opus => {
                let config = opus::EncoderConfig {
                    sample_rate: opus::SampleRate::Hz16000,
                    dtx: true,
                    ..opus::EncoderConfig::default()
                };
                opus::Encoder::new(config)
                    .ok()
                    .map(|e| Box::new(e) as Box<dyn AudioEncoder>)
            }
            _ => self.encoder(),
        }
    }

    /// An encoder for a new stream, or None when this build has no implementation.
    pub fn encoder(self) -> Option<Box<dyn AudioEncoder>> {
        match self {
            AudioCodec::Pcmu => Some(Box::new(g711::Encoder::new(g711::Law::Mu))),
            AudioCodec::Pcma => Some(Box::new(g711::Encoder::new(g711::Law::A))),
            AudioCodec::G722 => Some(Box::new(g722::Encoder::new())),
            AudioCodec::Opus => {
                let config = opus::EncoderConfig {
                    sample_rate: opus::SampleRate::Hz16000,
                    inband_fec: true,
                    expected_loss_pct: 5,
                    ..opus::EncoderConfig::default()
                };
                opus::Encoder::new(config)
                    .ok()
                    .map(|e| Box::new(e) as Box<dyn AudioEncoder>)
            }
        }
    }
}

/// Why a codec refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The payload cannot be decoded (wrong length, corrupt, or rejected by the codec library).
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// The PCM frame handed to an encoder is not a size the codec can encode.
    #[error("frame of {0} samples is not a size this codec encodes")]
    FrameSize(usize),
    /// The codec library reported an error.
    #[error("codec library: {0}")]
    Library(String),
}

/// Decodes one RTP payload at a time into linear PCM.
pub trait AudioDecoder: Send {
    /// The PCM sample rate this decoder produces, in Hz.
    fn sample_rate(&self) -> u32;
    /// Decodes `payload` and appends its samples to `pcm`.
    fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Appends `samples` samples standing in for a lost packet (packet loss concealment).
    fn conceal(&mut self, samples: usize, pcm: &mut Vec<i16>);
}

/// Encodes frames of linear PCM into RTP payloads.
pub trait AudioEncoder: Send {
    /// The PCM sample rate this encoder takes, in Hz.
    fn sample_rate(&self) -> u32;
    /// Encodes one frame (`pcm`, a whole packetization interval) and appends the payload to
    /// `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
}
