//! Opus (RFC 6716) through libopus, for the conference mixer: RTP payload format RFC 7587.
//!
//! - **RTP**: the payload type is dynamic and its rtpmap is always `opus/48000/2` ([`RTPMAP`]),
//!   whatever the sample rate or channels actually used (RFC 7587 section 7); the RTP clock is
//!   48 kHz ([`RTP_CLOCK_RATE`]), so a 20 ms packet advances the timestamp by 960 even when the
//!   codec runs at 8 or 16 kHz ([`Encoder::rtp_timestamp_step`]).
//! - **Rates**: the PCM side runs at 48, 16 or 8 kHz ([`SampleRate`]), chosen per encoder and
//!   decoder; any decoder decodes any encoder's packets.
//! - **Channels**: an [`Encoder`] takes mono or interleaved stereo ([`Channels`]); a [`Decoder`]
//!   always decodes to mono, downmixing stereo streams, because the mixer mixes mono.
//! - **Frames**: 10, 20 (default), 40 or 60 ms per packet ([`EncoderConfig::frame_ms`]);
//!   [`AudioEncoder::encode`] takes exactly one such frame, anything else is
//!   [`CodecError::FrameSize`].
//! - **Loss**: [`AudioDecoder::conceal`] runs libopus's concealment (decode with no data); when
//!   a packet was lost but the next one has arrived, [`Decoder::decode_fec`] rebuilds the lost
//!   one from the next packet's in-band FEC (LBRR, sent when the encoder has
//!   [`EncoderConfig::inband_fec`] on) and then the caller decodes the next packet as usual.
//! - **DTX**: with [`EncoderConfig::dtx`] on, during silence the encoder appends frames of at
//!   most [`DTX_MAX_BYTES`] bytes ([`is_dtx`]); the RTP sender may skip sending them (RFC 7587
//!   section 3.1.3), and the receiver conceals or plays comfort noise over the gap. Every
//!   400 ms of silence libopus emits one ordinary frame (comfort-noise update), which is sent.
//!   The RTP timestamp still advances by every frame, sent or not.
//!
//! Allocation: each [`Encoder`] and [`Decoder`] owns a boxed scratch buffer made once at
//! construction (a maximum packet, or 120 ms of PCM); libopus writes into it and the result is
//! appended to the caller's `Vec`, so a caller that keeps capacity allocates nothing per call.
//!
//! ```
//! use chorus_codecs::{AudioDecoder, AudioEncoder, opus};
//! let mut enc = opus::Encoder::new(opus::EncoderConfig::default()).unwrap();
//! let mut dec = opus::Decoder::new(opus::SampleRate::Hz48000).unwrap();
//! let pcm = vec![0i16; 960]; // 20 ms at 48 kHz, mono
//! let mut payload = Vec::with_capacity(1_500);
//! enc.encode(&pcm, &mut payload).unwrap();
//! let mut back = Vec::with_capacity(5_760);
//! dec.decode(&payload, &mut back).unwrap();
//! assert_eq!(back.len(), 960);
//! ```

use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::{Application, Bitrate, ErrorCode, ffi};

use crate::{AudioDecoder, AudioEncoder, CodecError};

/// The SDP rtpmap encoding name, clock rate and channels of every Opus stream (RFC 7587
/// section 7): always two channels and 48 kHz, whatever is actually sent.
pub const RTPMAP: &str = "opus/48000/2";
/// The RTP timestamp clock of Opus, in Hz, independent of the codec's sample rate.
pub const RTP_CLOCK_RATE: u32 = 48_000;
/// Frame durations an [`Encoder`] sends, in ms.
pub const FRAME_MS: [u32; 4] = [10, 20, 40, 60];
/// The largest payload a DTX encoder appends for a silent frame; the RTP sender may skip such
/// frames.
pub const DTX_MAX_BYTES: usize = 2;
/// Encoder complexity unless configured. Measured by `cargo bench -p chorus-codecs --bench opus`
/// (the README's table): 8 and up cost about twice as much CPU per frame as 5 for little
/// measurable gain on speech; 0 and 3 save a third to a half and lose a little.
pub const DEFAULT_COMPLEXITY: u8 = 5;
/// Encoder bitrate unless configured, in bits per second: wideband-to-fullband speech, mono.
pub const DEFAULT_BITRATE_BPS: u32 = 32_000;

/// Largest Opus packet libopus produces for up to 120 ms (its own recommended buffer size).
const MAX_PACKET_BYTES: usize = 4_000;
/// 120 ms at 48 kHz, mono: the longest a single Opus packet decodes to.
const MAX_FRAME_SAMPLES: usize = 5_760;

/// Why an [`Encoder`] or [`Decoder`] could not be built as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The frame duration is not one of 10, 20, 40 or 60 ms.
    #[error("frame of {0} ms: Opus packets here are 10, 20, 40 or 60 ms")]
    FrameMs(u32),
    /// The bitrate is outside 6 to 510 kbit/s, what Opus codes.
    #[error("bitrate {0} bit/s is outside 6,000..=510,000")]
    Bitrate(u32),
    /// The complexity is above 10.
    #[error("complexity {0} is above 10")]
    Complexity(u8),
    /// The expected packet loss is above 100 %.
    #[error("expected packet loss {0} % is above 100")]
    ExpectedLoss(u8),
    /// libopus refused the settings.
    #[error("libopus: {0}")]
    Library(String),
}

/// The PCM sample rate an encoder takes or a decoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SampleRate {
    /// 8 kHz: narrowband, for a leg bridged to G.711 without resampling.
    Hz8000,
    /// 16 kHz: wideband, for a leg bridged to G.722.
    Hz16000,
    /// 48 kHz: fullband, the mixer's native rate.
    #[default]
    Hz48000,
}

impl SampleRate {
    /// The rate in Hz.
    pub fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8_000,
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz48000 => 48_000,
        }
    }

    /// Samples per channel in `ms` milliseconds.
    pub fn samples_in_ms(self, ms: u32) -> usize {
        (self.hz() / 1_000 * ms) as usize
    }

    fn libopus(self) -> audiopus::SampleRate {
        match self {
            SampleRate::Hz8000 => audiopus::SampleRate::Hz8000,
            SampleRate::Hz16000 => audiopus::SampleRate::Hz16000,
            SampleRate::Hz48000 => audiopus::SampleRate::Hz48000,
        }
    }

    /// Samples per channel in 2.5 ms, the granularity libopus conceals and recovers in.
    fn quantum(self) -> usize {
        (self.hz() / 400) as usize
    }
}

/// How many channels an [`Encoder`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Channels {
    /// One channel.
    #[default]
    Mono,
    /// Two channels, interleaved left then right.
    Stereo,
}

impl Channels {
    /// Samples per sampling instant.
    pub fn count(self) -> usize {
        match self {
            Channels::Mono => 1,
            Channels::Stereo => 2,
        }
    }

    fn libopus(self) -> audiopus::Channels {
        match self {
            Channels::Mono => audiopus::Channels::Mono,
            Channels::Stereo => audiopus::Channels::Stereo,
        }
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// The PCM sample rate the encoder takes.
    pub sample_rate: SampleRate,
    /// Mono, or interleaved stereo.
    pub channels: Channels,
    /// Packetization interval: 10, 20, 40 or 60 ms.
    pub frame_ms: u32,
    /// Target bitrate in bits per second (variable bitrate), 6,000 to 510,000.
    pub bitrate_bps: u32,
    /// 0 (cheapest) to 10 (best quality per bit).
    pub complexity: u8,
    /// Send in-band FEC (LBRR): each packet also carries a coarse copy of the previous frame,
    /// which [`Decoder::decode_fec`] recovers after a loss. Effective in the SILK and hybrid
    /// modes Opus uses for speech at these bitrates; libopus sends it only when
    /// `expected_loss_pct` is above zero.
    pub inband_fec: bool,
    /// Packet loss the encoder plans for, 0 to 100 %: more loss, more FEC bits.
    pub expected_loss_pct: u8,
    /// Discontinuous transmission: during silence the encoder appends frames of at most
    /// [`DTX_MAX_BYTES`] that the RTP sender may skip ([`is_dtx`]).
    pub dtx: bool,
}

impl Default for EncoderConfig {
    /// 48 kHz mono, 20 ms, 32 kbit/s, [`DEFAULT_COMPLEXITY`], no FEC, no DTX.
    fn default() -> Self {
        EncoderConfig {
            sample_rate: SampleRate::Hz48000,
            channels: Channels::Mono,
            frame_ms: 20,
            bitrate_bps: DEFAULT_BITRATE_BPS,
            complexity: DEFAULT_COMPLEXITY,
            inband_fec: false,
            expected_loss_pct: 0,
            dtx: false,
        }
    }
}

/// Whether an encoded payload is a DTX frame (silence the RTP sender may skip).
pub fn is_dtx(payload: &[u8]) -> bool {
    payload.len() <= DTX_MAX_BYTES
}

fn library(e: audiopus::Error) -> ConfigError {
    ConfigError::Library(e.to_string())
}

/// Maps a libopus decode error: what the packet's fault is, as `Malformed`.
fn decode_error(e: audiopus::Error) -> CodecError {
    match e {
        audiopus::Error::EmptyPacket => CodecError::Malformed("empty Opus payload"),
        audiopus::Error::PacketTooLarge => CodecError::Malformed("Opus payload too large"),
        audiopus::Error::Opus(ErrorCode::InvalidPacket) => {
            CodecError::Malformed("invalid Opus packet")
        }
        audiopus::Error::Opus(ErrorCode::BufferTooSmall) => {
            CodecError::Malformed("Opus packet longer than 120 ms")
        }
        e => CodecError::Library(e.to_string()),
    }
}

/// An Opus encoder (application VoIP).
pub struct Encoder {
    inner: OpusEncoder,
    config: EncoderConfig,
    /// Interleaved samples in one frame: what `encode` takes.
    frame_samples: usize,
    /// libopus writes the packet here; it is then appended to the caller's buffer.
    scratch: Box<[u8; MAX_PACKET_BYTES]>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("opus::Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder with `config`'s settings.
    pub fn new(config: EncoderConfig) -> Result<Self, ConfigError> {
        if !FRAME_MS.contains(&config.frame_ms) {
            return Err(ConfigError::FrameMs(config.frame_ms));
        }
        if !(6_000..=510_000).contains(&config.bitrate_bps) {
            return Err(ConfigError::Bitrate(config.bitrate_bps));
        }
        if config.complexity > 10 {
            return Err(ConfigError::Complexity(config.complexity));
        }
        if config.expected_loss_pct > 100 {
            return Err(ConfigError::ExpectedLoss(config.expected_loss_pct));
        }
        let mut inner = OpusEncoder::new(
            config.sample_rate.libopus(),
            config.channels.libopus(),
            Application::Voip,
        )
        .map_err(library)?;
        // The bitrate was range-checked above, so it fits an i32.
        inner
            .set_bitrate(Bitrate::BitsPerSecond(config.bitrate_bps as i32))
            .map_err(library)?;
        inner.set_complexity(config.complexity).map_err(library)?;
        inner.set_inband_fec(config.inband_fec).map_err(library)?;
        inner
            .set_packet_loss_perc(config.expected_loss_pct)
            .map_err(library)?;
        inner
            .set_encoder_ctl_request(ffi::OPUS_SET_DTX_REQUEST, i32::from(config.dtx))
            .map_err(library)?;
        Ok(Encoder {
            inner,
            config,
            frame_samples: config.sample_rate.samples_in_ms(config.frame_ms)
                * config.channels.count(),
            scratch: Box::new([0; MAX_PACKET_BYTES]),
        })
    }

    /// The settings this encoder was built with.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Interleaved samples `encode` takes per call (one frame, all channels).
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// How far the RTP timestamp advances per frame, at [`RTP_CLOCK_RATE`].
    pub fn rtp_timestamp_step(&self) -> u32 {
        RTP_CLOCK_RATE / 1_000 * self.config.frame_ms
    }

    /// The encoder's lookahead in samples per channel at its sample rate: how much later a
    /// sound comes out of the decoder than it went in.
    pub fn lookahead(&self) -> Result<u32, CodecError> {
        self.inner
            .lookahead()
            .map_err(|e| CodecError::Library(e.to_string()))
    }
}

impl AudioEncoder for Encoder {
    fn sample_rate(&self) -> u32 {
        self.config.sample_rate.hz()
    }

    /// Encodes one frame of [`Encoder::frame_samples`] samples (interleaved for stereo) and
    /// appends the packet. With DTX on, a silent frame appends at most [`DTX_MAX_BYTES`] bytes
    /// ([`is_dtx`]): the caller may skip sending it but still advances the RTP timestamp.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if pcm.len() != self.frame_samples {
            return Err(CodecError::FrameSize(pcm.len()));
        }
        let n = self
            .inner
            .encode(pcm, &mut self.scratch[..])
            .map_err(|e| CodecError::Library(e.to_string()))?;
        // INVARIANT: libopus returns at most the buffer's length it was given.
        out.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }
}

/// An Opus decoder producing mono PCM (stereo streams are downmixed).
pub struct Decoder {
    inner: OpusDecoder,
    sample_rate: SampleRate,
    /// libopus decodes here; the samples are then appended to the caller's buffer.
    scratch: Box<[i16; MAX_FRAME_SAMPLES]>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("opus::Decoder")
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A mono decoder producing PCM at `sample_rate`.
    pub fn new(sample_rate: SampleRate) -> Result<Self, ConfigError> {
        let inner =
            OpusDecoder::new(sample_rate.libopus(), audiopus::Channels::Mono).map_err(library)?;
        Ok(Decoder {
            inner,
            sample_rate,
            scratch: Box::new([0; MAX_FRAME_SAMPLES]),
        })
    }

    /// The longest frame, in samples, a packet decodes to at this rate (120 ms).
    fn max_samples(&self) -> usize {
        self.sample_rate.samples_in_ms(120)
    }

    /// Rebuilds a lost packet of `samples` samples from the in-band FEC of the packet after it,
    /// `next_payload`, and appends them. Call it when a packet is lost and its successor has
    /// arrived, then decode `next_payload` itself with [`AudioDecoder::decode`].
    ///
    /// `samples` is the lost packet's duration at this decoder's rate (960 for 20 ms at
    /// 48 kHz), a multiple of 2.5 ms up to 120 ms, else [`CodecError::FrameSize`]. When
    /// `next_payload` carries no FEC (the sender had it off, or coded that frame in CELT-only
    /// mode) libopus conceals instead, so the caller gets `samples` samples either way.
    pub fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        pcm: &mut Vec<i16>,
    ) -> Result<(), CodecError> {
        if samples == 0
            || !samples.is_multiple_of(self.sample_rate.quantum())
            || samples > self.max_samples()
        {
            return Err(CodecError::FrameSize(samples));
        }
        // INVARIANT: samples <= max_samples() (checked above) <= the scratch's length.
        let n = self
            .inner
            .decode(Some(next_payload), &mut self.scratch[..samples], true)
            .map_err(decode_error)?;
        // INVARIANT: libopus writes at most the frame size it was given (`samples`).
        pcm.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }
}

impl AudioDecoder for Decoder {
    fn sample_rate(&self) -> u32 {
        self.sample_rate.hz()
    }

    /// Decodes one packet (any mode, rate, channels or duration up to 120 ms) to mono and
    /// appends it. A packet libopus cannot parse is [`CodecError::Malformed`] and appends
    /// nothing.
    fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) -> Result<(), CodecError> {
        // INVARIANT: max_samples() is at most 120 ms at 48 kHz, the scratch's length.
        let max = self.max_samples();
        let n = self
            .inner
            .decode(Some(payload), &mut self.scratch[..max], false)
            .map_err(decode_error)?;
        // INVARIANT: libopus writes at most the frame size it was given (`max`).
        pcm.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }

    /// Appends exactly `samples` samples of libopus's concealment (decode with no data). libopus
    /// conceals in steps of 2.5 ms; a count that is not a multiple is concealed to the next
    /// multiple and the excess dropped.
    fn conceal(&mut self, samples: usize, pcm: &mut Vec<i16>) {
        let quantum = self.sample_rate.quantum();
        let max = self.max_samples();
        let mut left = samples;
        while left > 0 {
            let want = left.min(max);
            // Round up to whole 2.5 ms steps; `max` is itself a multiple, so this stays <= max.
            // INVARIANT: chunk <= max <= the scratch's length.
            let chunk = want.div_ceil(quantum) * quantum;
            let n = match self
                .inner
                .decode(None::<&[u8]>, &mut self.scratch[..chunk], false)
            {
                Ok(n) => n.min(want),
                Err(_) => 0,
            };
            // INVARIANT: n <= want <= chunk <= the scratch's length.
            pcm.extend_from_slice(&self.scratch[..n]);
            // libopus concealing fewer samples than asked (it does not) would leave a gap:
            // fill it with silence so the caller always gets `samples`.
            pcm.resize(pcm.len() + (want - n), 0);
            left -= want;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// 20 ms at 48 kHz.
    const FRAME: usize = 960;

    /// 440 Hz and 1 kHz, each at -12 dBFS, sampled at `rate`.
    fn tones(samples: usize, rate: u32) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (8_000.0 * (2.0 * PI * 440.0 * t).sin() + 8_000.0 * (2.0 * PI * 1_000.0 * t).sin())
                    as i16
            })
            .collect()
    }

    /// Speech-like: a voiced source (harmonics of a pitch gliding 100-180 Hz, falling 6 dB
    /// per octave, up to 4 kHz) under a syllable envelope of 4 per second, plus breath noise.
    fn speech(samples: usize, rate: u32) -> Vec<i16> {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut phase = 0.0f64;
        (0..samples)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let f0 = 140.0 + 40.0 * (2.0 * PI * 0.7 * t).sin();
                phase += 2.0 * PI * f0 / f64::from(rate);
                let voiced: f64 = (1..=((4_000.0 / f0) as usize)
                    .min(rate as usize / 2 / f0 as usize))
                    .map(|k| (k as f64 * phase).sin() / k as f64)
                    .sum();
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let noise = (seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
                let envelope = (2.0 * PI * 2.0 * t).sin().abs();
                (envelope * (6_000.0 * voiced + 1_000.0 * noise)) as i16
            })
            .collect()
    }

    fn encode_frames(enc: &mut Encoder, pcm: &[i16]) -> Vec<Vec<u8>> {
        pcm.chunks_exact(enc.frame_samples())
            .map(|frame| {
                let mut out = Vec::new();
                enc.encode(frame, &mut out).unwrap();
                out
            })
            .collect()
    }

    fn decode_all(dec: &mut Decoder, packets: &[Vec<u8>]) -> Vec<i16> {
        let mut pcm = Vec::new();
        for p in packets {
            dec.decode(p, &mut pcm).unwrap();
        }
        pcm
    }

    /// The delay (in samples, up to `max`) at which `decoded` best matches `reference`, by
    /// normalized cross-correlation over `reference[skip..skip + len]`.
    fn codec_delay(
        reference: &[i16],
        decoded: &[i16],
        skip: usize,
        len: usize,
        max: usize,
    ) -> usize {
        let r = &reference[skip..skip + len];
        (0..=max)
            .map(|d| {
                let x = &decoded[skip + d..skip + d + len];
                let dot: f64 = r
                    .iter()
                    .zip(x)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let energy: f64 = x.iter().map(|&b| f64::from(b).powi(2)).sum();
                (d, dot / energy.sqrt().max(1.0))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(d, _)| d)
            .unwrap_or(0)
    }

    fn snr_db(reference: &[i16], decoded: &[i16]) -> f64 {
        let signal: f64 = reference.iter().map(|&a| f64::from(a).powi(2)).sum();
        let noise: f64 = reference
            .iter()
            .zip(decoded)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        10.0 * (signal / noise.max(1.0)).log10()
    }

    /// Power at `freq` (Goertzel).
    fn power_at(x: &[i16], freq: f64, rate: u32) -> f64 {
        let w = 2.0 * PI * freq / f64::from(rate);
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = f64::from(v) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    /// Both tones stand at least 20 dB above every other probed frequency.
    fn assert_tones_dominate(x: &[i16], rate: u32) {
        let tone = power_at(x, 440.0, rate).min(power_at(x, 1_000.0, rate));
        for other in [300.0, 700.0, 1_500.0, 2_000.0, 3_000.0] {
            let p = power_at(x, other, rate);
            assert!(
                tone > 100.0 * p,
                "tones {tone:.3e} vs {other} Hz {p:.3e} at {rate} Hz"
            );
        }
    }

    #[test]
    fn tones_survive_a_round_trip_at_48_khz() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let input = tones(50 * FRAME, 48_000);
        let packets = encode_frames(&mut enc, &input);
        let output = decode_all(&mut dec, &packets);
        assert_eq!(output.len(), input.len());

        // Skip the first 100 ms while the encoder settles, compare 0.5 s. The tone mix nearly
        // repeats every 429 samples (4 cycles of 440 Hz, 9 of 1 kHz) and SILK's long-term
        // predictor may lock onto such a shift, so the best alignment can sit a near-period
        // away from the lookahead (`codec_delay_is_the_lookahead` measures the delay itself).
        let (skip, len) = (4_800, 24_000);
        let delay = codec_delay(&input, &output, skip, len, 1_000);
        let snr = snr_db(
            &input[skip..skip + len],
            &output[skip + delay..skip + delay + len],
        );
        eprintln!("48 kHz round trip of the tones: aligned at {delay} samples, SNR {snr:.1} dB");
        assert!(snr > 10.0, "SNR {snr:.1} dB at delay {delay}");
        assert_tones_dominate(&output[skip + delay..skip + delay + len], 48_000);
    }

    /// Noise has no near-periods: cross-correlation finds the true delay, which is the
    /// encoder's lookahead (6.5 ms, 312 samples at 48 kHz): what the mixer adds per leg.
    #[test]
    fn codec_delay_is_the_lookahead() {
        let mut enc = Encoder::new(EncoderConfig {
            bitrate_bps: 64_000,
            ..EncoderConfig::default()
        })
        .unwrap();
        let mut seed = 1u64;
        let noise: Vec<i16> = (0..50 * FRAME)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((seed >> 48) as i16) / 4
            })
            .collect();
        let output = decode_all(
            &mut Decoder::new(SampleRate::Hz48000).unwrap(),
            &encode_frames(&mut enc, &noise),
        );
        let delay = codec_delay(&noise, &output, 4_800, 24_000, 1_200);
        assert_eq!(delay, enc.lookahead().unwrap() as usize);
        assert_eq!(delay, 312);
    }

    #[test]
    fn narrowband_and_wideband_round_trips_keep_the_tones() {
        for rate in [SampleRate::Hz8000, SampleRate::Hz16000] {
            let mut enc = Encoder::new(EncoderConfig {
                sample_rate: rate,
                ..EncoderConfig::default()
            })
            .unwrap();
            assert_eq!(enc.frame_samples(), rate.samples_in_ms(20));
            assert_eq!(enc.rtp_timestamp_step(), 960);
            let mut dec = Decoder::new(rate).unwrap();
            let input = tones(rate.samples_in_ms(1_000), rate.hz());
            let output = decode_all(&mut dec, &encode_frames(&mut enc, &input));
            assert_eq!(output.len(), input.len());
            assert_tones_dominate(&output[output.len() / 2..], rate.hz());
        }
    }

    #[test]
    fn a_stereo_stream_decodes_to_mono_at_any_rate() {
        let mut enc = Encoder::new(EncoderConfig {
            channels: Channels::Stereo,
            bitrate_bps: 64_000,
            ..EncoderConfig::default()
        })
        .unwrap();
        assert_eq!(enc.frame_samples(), 2 * FRAME);
        let mono = tones(50 * FRAME, 48_000);
        let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
        let packets = encode_frames(&mut enc, &stereo);
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let output = decode_all(&mut dec, &packets);
        assert_eq!(output.len(), mono.len());
        assert_tones_dominate(&output[output.len() / 2..], 48_000);
        // A decoder at another rate takes the same packets.
        let mut dec8 = Decoder::new(SampleRate::Hz8000).unwrap();
        assert_eq!(decode_all(&mut dec8, &packets).len(), 50 * 160);
    }

    #[test]
    fn dtx_sends_tiny_frames_in_silence() {
        let silence = vec![0i16; 50 * FRAME];
        let mut dtx = Encoder::new(EncoderConfig {
            dtx: true,
            ..EncoderConfig::default()
        })
        .unwrap();
        let packets = encode_frames(&mut dtx, &silence);
        // libopus enters DTX after 200 ms of silence; it still sends a real frame every
        // 400 ms to refresh comfort noise.
        let tiny = packets[10..].iter().filter(|p| is_dtx(p)).count();
        eprintln!(
            "DTX on silence: {tiny} of 40 frames tiny, sizes {:?}",
            packets.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert!(tiny >= 35, "{tiny} of 40 frames were DTX frames");
        // Without DTX silence is still sent as frames a receiver must get.
        let mut plain = Encoder::new(EncoderConfig::default()).unwrap();
        assert!(
            encode_frames(&mut plain, &silence)[10..]
                .iter()
                .all(|p| !is_dtx(p))
        );
        // A DTX frame decodes to a whole frame of (near) silence.
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let output = decode_all(&mut dec, &packets);
        assert_eq!(output.len(), silence.len());
        assert!(rms(&output) < 50.0);
    }

    #[test]
    fn concealment_appends_exactly_the_samples_asked_for() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let mut pcm = Vec::new();
        // Before any packet, and after some.
        dec.conceal(FRAME, &mut pcm);
        assert_eq!(pcm.len(), FRAME);
        for p in encode_frames(&mut enc, &tones(10 * FRAME, 48_000)) {
            dec.decode(&p, &mut pcm).unwrap();
        }
        for n in [FRAME, 0, 100, 121, 2_880, 10_000] {
            let before = pcm.len();
            dec.conceal(n, &mut pcm);
            assert_eq!(pcm.len() - before, n, "conceal({n})");
        }
        // Concealment right after the tones continues them rather than falling silent.
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let mut tail = decode_all(
            &mut dec,
            &encode_frames(&mut enc, &tones(10 * FRAME, 48_000)),
        );
        let last = rms(&tail[tail.len() - FRAME..]);
        tail.clear();
        dec.conceal(FRAME, &mut tail);
        assert!(
            rms(&tail) > 0.3 * last,
            "concealed {} vs {last}",
            rms(&tail)
        );
    }

    /// FEC is SILK's low-bitrate redundancy (LBRR), which its VAD sends for speech; a pure
    /// tone mix gets little of it, so this test talks.
    #[test]
    fn fec_recovers_a_lost_frame_from_the_next_packet() {
        let config = EncoderConfig {
            inband_fec: true,
            expected_loss_pct: 10,
            ..EncoderConfig::default()
        };
        let mut enc = Encoder::new(config).unwrap();
        let input = speech(50 * FRAME, 48_000);
        let packets = encode_frames(&mut enc, &input);
        let reference = decode_all(&mut Decoder::new(SampleRate::Hz48000).unwrap(), &packets);

        // Frames 13 and 26 start syllables, which concealment (extrapolating the quiet frame
        // before) cannot know; 20 and 40 are mid-syllable.
        for (lost, onset) in [(13, true), (20, false), (26, true), (40, false)] {
            let mut recovered = Vec::new();
            let mut concealed = Vec::new();
            let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
            let mut plc = Decoder::new(SampleRate::Hz48000).unwrap();
            for (i, p) in packets.iter().enumerate() {
                if i == lost {
                    dec.decode_fec(&packets[lost + 1], FRAME, &mut recovered)
                        .unwrap();
                    plc.conceal(FRAME, &mut concealed);
                } else {
                    dec.decode(p, &mut recovered).unwrap();
                    plc.decode(p, &mut concealed).unwrap();
                }
            }
            assert_eq!(recovered.len(), reference.len());
            let span = lost * FRAME..(lost + 1) * FRAME;
            let want = rms(&reference[span.clone()]);
            let got = rms(&recovered[span.clone()]);
            let fec_snr = snr_db(&reference[span.clone()], &recovered[span.clone()]);
            let plc_snr = snr_db(&reference[span.clone()], &concealed[span]);
            eprintln!(
                "FEC, frame {lost} lost: rms {got:.0} vs {want:.0} without loss; SNR against \
                 the lossless decode: FEC {fec_snr:.1} dB, concealment {plc_snr:.1} dB"
            );
            assert!(
                (0.6..1.4).contains(&(got / want)),
                "frame {lost}: rms {got:.0} vs {want:.0}"
            );
            let margin = if onset { 10.0 } else { 0.0 };
            assert!(
                fec_snr > 8.0 && fec_snr > plc_snr + margin,
                "frame {lost}: FEC {fec_snr:.1} dB, concealment {plc_snr:.1} dB"
            );
        }
    }

    #[test]
    fn fec_needs_a_whole_number_of_2_5_ms_steps() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let packets = encode_frames(&mut enc, &tones(2 * FRAME, 48_000));
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let mut pcm = Vec::new();
        for n in [0, 100, 961, 5_880] {
            assert_eq!(
                dec.decode_fec(&packets[1], n, &mut pcm),
                Err(CodecError::FrameSize(n))
            );
        }
        assert!(pcm.is_empty());
        // Without FEC in the packet libopus conceals: still the asked-for samples.
        dec.decode_fec(&packets[1], FRAME, &mut pcm).unwrap();
        assert_eq!(pcm.len(), FRAME);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let mut pcm = Vec::new();
        // Packets RFC 6716 section 3.4 makes invalid: [R1] empty; [R5] code 1 with an odd
        // data length; [R4] code 2 whose first frame runs past the end; [R5] code 3 with no
        // frames; code 3 with 49 frames of 2.5 ms (over 120 ms).
        for bad in [
            &[][..],
            &[0x01, 0x00],
            &[0x02, 0xFF, 0x00],
            &[0x03, 0x00],
            &[0x83, 0x31],
        ] {
            assert!(
                matches!(dec.decode(bad, &mut pcm), Err(CodecError::Malformed(_))),
                "{bad:02x?}"
            );
        }
        assert!(pcm.is_empty());
        // Random bytes: many parse as valid Opus (its decoders take any bit pattern), so
        // each is either refused with nothing appended, or decodes to a legal duration.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut refused, mut decoded) = (0, 0);
        for _ in 0..5_000 {
            let len = (next() % 300) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let before = pcm.len();
            match dec.decode(&payload, &mut pcm) {
                Err(_) => {
                    assert_eq!(pcm.len(), before);
                    refused += 1;
                }
                Ok(()) => {
                    let n = pcm.len() - before;
                    assert!(n % 120 == 0 && n <= MAX_FRAME_SAMPLES, "{n} samples");
                    decoded += 1;
                }
            }
            pcm.clear();
        }
        eprintln!("random payloads: {refused} refused, {decoded} decoded");
        assert!(refused > 0);
    }

    #[test]
    fn frames_of_the_wrong_size_are_refused() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let mut out = Vec::new();
        for n in [0, 1, 480, 959, 961, 1_920] {
            assert_eq!(
                enc.encode(&vec![0; n], &mut out),
                Err(CodecError::FrameSize(n))
            );
        }
        let mut stereo = Encoder::new(EncoderConfig {
            channels: Channels::Stereo,
            ..EncoderConfig::default()
        })
        .unwrap();
        assert_eq!(
            stereo.encode(&[0; FRAME], &mut out),
            Err(CodecError::FrameSize(FRAME))
        );
        assert!(out.is_empty());
        for ms in FRAME_MS {
            let mut enc = Encoder::new(EncoderConfig {
                frame_ms: ms,
                ..EncoderConfig::default()
            })
            .unwrap();
            assert_eq!(enc.rtp_timestamp_step(), 48 * ms);
            enc.encode(&vec![0; 48 * ms as usize], &mut out).unwrap();
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let d = EncoderConfig::default();
        let cases = [
            (
                EncoderConfig { frame_ms: 30, ..d },
                ConfigError::FrameMs(30),
            ),
            (
                EncoderConfig { frame_ms: 120, ..d },
                ConfigError::FrameMs(120),
            ),
            (
                EncoderConfig {
                    bitrate_bps: 5_999,
                    ..d
                },
                ConfigError::Bitrate(5_999),
            ),
            (
                EncoderConfig {
                    complexity: 11,
                    ..d
                },
                ConfigError::Complexity(11),
            ),
            (
                EncoderConfig {
                    expected_loss_pct: 101,
                    ..d
                },
                ConfigError::ExpectedLoss(101),
            ),
        ];
        for (config, want) in cases {
            assert_eq!(Encoder::new(config).unwrap_err(), want);
        }
        for complexity in 0..=10 {
            Encoder::new(EncoderConfig { complexity, ..d }).unwrap();
        }
        assert_eq!(RTPMAP, "opus/48000/2");
    }

    #[test]
    fn nothing_is_allocated_once_the_buffers_have_room() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let mut dec = Decoder::new(SampleRate::Hz48000).unwrap();
        let input = tones(10 * FRAME, 48_000);
        let mut payload = Vec::with_capacity(MAX_PACKET_BYTES);
        let mut pcm = Vec::with_capacity(MAX_FRAME_SAMPLES);
        let (payload_at, pcm_at) = (payload.as_ptr(), pcm.as_ptr());
        for frame in input.chunks_exact(FRAME) {
            payload.clear();
            pcm.clear();
            enc.encode(frame, &mut payload).unwrap();
            dec.decode(&payload, &mut pcm).unwrap();
            dec.decode_fec(&payload, FRAME, &mut pcm).unwrap();
            dec.conceal(FRAME, &mut pcm);
        }
        assert_eq!((payload.as_ptr(), pcm.as_ptr()), (payload_at, pcm_at));
    }
}
