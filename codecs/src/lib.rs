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

pub mod g711;
pub mod opus;

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
