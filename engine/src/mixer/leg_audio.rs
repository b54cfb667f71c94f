//! One leg's audio in a conference: its jitter buffer and decoder on the way in (packets
//! pushed on the packet path, one frame pulled per tick), and its outbound RTP numbering on
//! the way out.
//!
//! A tick is two steps, so that legs nobody hears cost little:
//!
//! 1. [`LegAudio::pull_skipping`] (every member, every tick) runs the jitter buffer and
//!    measures the tick's level at the codec rate. When a frame's level is known before
//!    decoding (the RFC 6464 level the sender put in the packet, the level of a G.711 payload
//!    from a table of squared magnitudes per code, or an Opus DTX frame, which is silence) and
//!    it is quieter than the caller's threshold, the frame is not decoded: the leg is neither
//!    a talker nor can it become one this tick, so its signal is never mixed.
//! 2. [`LegAudio::frame_for_mix`] (talkers only) resamples the tick to the conference rate.
//!
//! Skipping keeps the streams' states sound. The payload of the last skipped frame is kept
//! and decoded (output thrown away) just before the next frame that is decoded, so the
//! decoder (Opus's predictors, the G.711 concealer's 3.75 ms delay line) has the frame just
//! before it, as if nothing had been skipped; a G.711 leg's onset is then sample-exact and an
//! Opus leg's differs only by what the decoder carries over longer than one frame (after a
//! quiet stretch, the quiet itself). The resampler is fed only for talkers; when a leg was not
//! resampled in the previous tick it is reset and primed with the previous tick's codec-rate
//! samples (its filter spans 79 input samples at 8 kHz, less than a tick), so its output is
//! exactly what it would have been had it run all along, for one extra resampler run at a
//! talker's onset.
//!
//! [`LegAudio::pull`] is the previous, eager path (decode, resample and measure every leg
//! every tick), kept as the baseline of the mixer benchmark.

use std::sync::OnceLock;
use std::time::Instant;

use chorus_codecs::resample::Resampler;
use chorus_codecs::{AudioCodec, AudioDecoder, g711, opus};

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
    /// The RFC 8285 extension id of the client-to-mixer audio level (RFC 6464,
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level`) the remote sends, if negotiated. The SDP
    /// side (`a=extmap`) does not fill it yet: every leg built from an answer has None.
    pub audio_level_ext_id: Option<u8>,
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

/// RFC 6464 levels of the last packets pushed, by RTP timestamp, for the frames the jitter
/// buffer releases (it reorders; a level is looked up when its frame plays).
const EXT_LEVELS: usize = 16;
/// An empty entry of that ring: outside RFC 6464's 0-127.
const NO_LEVEL: u8 = 0xff;
/// At or below this level (-55 dBov) a tick is quiet, for the jitter buffer's shrinking.
const QUIET_LEVEL: Level = Level(55);
/// Quiet ticks in a row before the jitter buffer may drop a frame (60 ms at 20 ms).
const QUIET_TICKS: u32 = 3;

/// A leg's inbound audio path and outbound numbering.
pub struct LegAudio {
    format: AudioFormat,
    jitter: JitterBuffer,
    decoder: Box<dyn AudioDecoder>,
    /// Codec rate to conference rate; None when they are equal.
    to_mix: Option<Resampler>,
    /// Decoded samples at the codec rate, not yet taken for a tick.
    decoded: Vec<i16>,
    /// This tick's samples at the codec rate, and the previous tick's.
    tick_pcm: Vec<i16>,
    prev_pcm: Vec<i16>,
    /// This tick's frame at the conference rate (valid once `frame_for_mix` ran this tick).
    frame: Vec<i16>,
    /// Scratch for output thrown away (decoder and resampler warm-ups).
    scratch: Vec<i16>,
    /// Samples per tick at the codec rate and at the conference rate.
    codec_frame: usize,
    mix_frame: usize,
    /// Decoder output rate and RTP clock rate (G.722: 16,000 on 8,000; Opus here: 16,000 on
    /// 48,000), to turn the jitter buffer's clock units into samples.
    rates: (u32, u32),
    level: Level,
    /// The frame holds speech or concealment (not silence from an idle or silent sender).
    live: bool,
    /// Ticks pulled; the tick `frame` was made in; the tick the resampler last ran in.
    ticks: u64,
    /// Quiet ticks in a row.
    quiet_ticks: u32,
    frame_tick: u64,
    resampled_tick: u64,
    /// G.711: the squared magnitude of every code, for a level without decoding.
    g711_energy: Option<&'static [u32; 256]>,
    /// RFC 6464 levels pushed: (RTP timestamp, level), a ring.
    ext_levels: [(u32, u8); EXT_LEVELS],
    ext_next: usize,
    /// The last frame skipped since the last decode, decoded before the next one.
    skipped: Vec<u8>,
    skipped_pending: bool,
    /// Frames skipped without decoding so far.
    skipped_frames: u64,
    /// Gain applied to what this leg says, in 1/256 (256 = unity).
    talk_gain_q8: i32,
    /// Automatic gain control: the gain now applied to this leg's voice (1.0 = unchanged).
    agc_gain: f32,
}

/// The squared magnitude of every G.711 code of `law`.
fn g711_energy(law: g711::Law) -> &'static [u32; 256] {
    static MU: OnceLock<[u32; 256]> = OnceLock::new();
    static A: OnceLock<[u32; 256]> = OnceLock::new();
    let cell = match law {
        g711::Law::Mu => &MU,
        g711::Law::A => &A,
    };
    cell.get_or_init(|| {
        let mut t = [0u32; 256];
        for (code, e) in t.iter_mut().enumerate() {
            let s = match law {
                g711::Law::Mu => g711::ulaw_decode(code as u8),
                g711::Law::A => g711::alaw_decode(code as u8),
            };
            // |s| <= 32,768, so s^2 fits in u32.
            *e = u32::from(s.unsigned_abs()) * u32::from(s.unsigned_abs());
        }
        t
    })
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
        let g711_energy = match codec {
            AudioCodec::Pcmu => Some(g711_energy(g711::Law::Mu)),
            AudioCodec::Pcma => Some(g711_energy(g711::Law::A)),
            AudioCodec::G722 | AudioCodec::Opus => None,
        };
        Ok(LegAudio {
            agc_gain: 1.0,
            talk_gain_q8: 256,
            format,
            jitter,
            decoder,
            to_mix,
            decoded: Vec::with_capacity(codec_frame * 4),
            tick_pcm: vec![0; codec_frame],
            prev_pcm: vec![0; codec_frame],
            frame: Vec::with_capacity(mix_frame * 2),
            scratch: Vec::with_capacity(mix_frame * 2),
            codec_frame,
            mix_frame,
            rates: (rate, codec.rtp_clock_rate().max(1)),
            level: Level::SILENCE,
            live: false,
            ticks: 0,
            quiet_ticks: 0,
            frame_tick: 0,
            resampled_tick: 0,
            g711_energy,
            ext_levels: [(0, NO_LEVEL); EXT_LEVELS],
            ext_next: 0,
            skipped: Vec::new(),
            skipped_pending: false,
            skipped_frames: 0,
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
        self.push_with_level(now, pt, seq, timestamp, marker, payload, None)
    }

    /// Like [`LegAudio::push`], with the packet's RFC 6464 level (-dBov, 0-127) when it
    /// carried one (the caller reads the extension id of [`AudioFormat::audio_level_ext_id`]).
    #[allow(clippy::too_many_arguments)]
    pub fn push_with_level(
        &mut self,
        now: Instant,
        pt: Pt,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        audio_level: Option<u8>,
    ) -> Option<PushOutcome> {
        if pt == self.format.pt {
            if let Some(level) = audio_level {
                self.ext_levels[self.ext_next] = (timestamp, level.min(Level::SILENCE.0));
                self.ext_next = (self.ext_next + 1) % EXT_LEVELS;
            }
            Some(self.jitter.push(now, seq, timestamp, marker, payload))
        } else if Some(pt) == self.format.cn_pt {
            Some(self.jitter.push_comfort_noise(now, seq, timestamp, payload))
        } else {
            None
        }
    }

    /// The eager path (the mixer's before it skipped silent legs, kept as the benchmark's
    /// baseline): decodes every frame, resamples the tick to the conference rate and measures
    /// the level there. [`LegAudio::frame`] is then valid.
    pub fn pull(&mut self, now: Instant) {
        self.pull_skipping(now, None);
        self.frame_for_mix();
        self.level = if self.live {
            Level::of(&self.frame)
        } else {
            Level::SILENCE
        };
    }

    /// Produces this tick at the codec rate and its level: decodes (or conceals) what the
    /// jitter buffer releases and takes exactly one tick of it. A frame whose level is known
    /// before decoding (RFC 6464, a G.711 payload, an Opus DTX frame) and quieter than
    /// `skip_quieter_than` is not decoded (silence stands for it); None decodes everything
    /// (a talker, whose signal is mixed even while it is quiet).
    pub fn pull_skipping(&mut self, now: Instant, skip_quieter_than: Option<Level>) {
        self.ticks += 1;
        self.jitter.tick(now);
        let mut live = false;
        let mut decoded_any = false;
        // The loudest level of the frames skipped this tick.
        let mut skipped_level: Option<Level> = None;
        while let Some(piece) = self.jitter.pop() {
            match piece {
                Playout::Frame {
                    payload,
                    timestamp,
                    samples,
                } => {
                    live = true;
                    // RFC 6464 levels are looked up only where the extension is negotiated.
                    let ext_levels = self.format.audio_level_ext_id.map(|_| &self.ext_levels);
                    let known = skip_quieter_than.and_then(|_| {
                        known_level(
                            ext_levels,
                            self.format.codec,
                            self.g711_energy,
                            payload,
                            timestamp,
                        )
                    });
                    if let (Some(quiet), Some(level)) = (skip_quieter_than, known)
                        && level > quiet
                    {
                        let n = match self.g711_energy {
                            Some(_) => payload.len(),
                            None => clock_to_samples(self.rates, samples),
                        };
                        self.decoded.extend(std::iter::repeat_n(0, n));
                        self.skipped.clear();
                        self.skipped.extend_from_slice(payload);
                        self.skipped_pending = true;
                        self.skipped_frames += 1;
                        skipped_level = Some(skipped_level.map_or(level, |l| l.min(level)));
                        continue;
                    }
                    if self.skipped_pending {
                        self.skipped_pending = false;
                        self.scratch.clear();
                        // Brings the decoder's state up to the frame before this one.
                        let _ = self.decoder.decode(&self.skipped, &mut self.scratch);
                    }
                    // A payload the decoder refuses is concealed like a lost one.
                    if self.decoder.decode(payload, &mut self.decoded).is_err() {
                        self.decoder.conceal(self.codec_frame, &mut self.decoded);
                    }
                    decoded_any = true;
                }
                Playout::Lost { samples } => {
                    if self.skipped_pending {
                        self.skipped_pending = false;
                        self.scratch.clear();
                        let _ = self.decoder.decode(&self.skipped, &mut self.scratch);
                    }
                    let n = clock_to_samples(self.rates, samples);
                    self.decoder.conceal(n, &mut self.decoded);
                    live = true;
                    decoded_any = true;
                }
                Playout::Silence { samples, .. } | Playout::Empty { samples } => {
                    let n = clock_to_samples(self.rates, samples);
                    self.decoded.extend(std::iter::repeat_n(0, n));
                }
            }
        }
        // Exactly one tick's worth leaves the FIFO; a short FIFO is topped up with silence,
        // a long one (a decoder that returned more than the clock said) is cut back.
        if self.decoded.len() < self.codec_frame {
            self.decoded.resize(self.codec_frame, 0);
        }
        std::mem::swap(&mut self.tick_pcm, &mut self.prev_pcm);
        self.tick_pcm.clear();
        self.tick_pcm
            .extend_from_slice(&self.decoded[..self.codec_frame]);
        self.decoded.drain(..self.codec_frame);
        if self.decoded.len() > 3 * self.codec_frame {
            let excess = self.decoded.len() - self.codec_frame;
            self.decoded.drain(..excess);
        }
        self.live = live;
        let measured = if decoded_any {
            Level::of(&self.tick_pcm)
        } else {
            Level::SILENCE
        };
        self.level = match skipped_level {
            Some(l) => l.min(measured),
            None => measured,
        };
        // Quiet for QUIET_TICKS in a row: the jitter buffer may drop a frame to reach target.
        self.quiet_ticks = if self.level.0 >= QUIET_LEVEL.0 {
            self.quiet_ticks.saturating_add(1)
        } else {
            0
        };
        self.jitter.set_quiet(self.quiet_ticks >= QUIET_TICKS);
    }

    /// Makes this tick's frame at the conference rate (after [`LegAudio::pull_skipping`],
    /// for the legs that are mixed) and returns it. Runs the resampler once per tick at most.
    pub fn frame_for_mix(&mut self) -> &[i16] {
        if self.frame_tick != self.ticks {
            self.frame_tick = self.ticks;
            self.frame.clear();
            match &mut self.to_mix {
                Some(r) => {
                    if self.resampled_tick + 1 != self.ticks {
                        // The resampler missed ticks: prime it with the previous one, so its
                        // history is what it would have been (see the module documentation).
                        r.reset();
                        self.scratch.clear();
                        r.process(&self.prev_pcm, &mut self.scratch);
                    }
                    r.process(&self.tick_pcm, &mut self.frame);
                    self.resampled_tick = self.ticks;
                }
                None => self.frame.extend_from_slice(&self.tick_pcm),
            }
            self.frame.resize(self.mix_frame, 0);
            self.agc_gain = agc_step(&self.frame, self.live, self.agc_gain);
            if (self.agc_gain - 1.0).abs() > 0.01 {
                let g = self.agc_gain;
                for s in &mut self.frame {
                    *s = (f32::from(*s) * g).clamp(-32_768.0, 32_767.0) as i16;
                }
            }
            if self.talk_gain_q8 != 256 {
                apply_gain(&mut self.frame, self.talk_gain_q8);
            }
        }
        &self.frame
    }

    /// Sets the gain on what this leg says, in dB (-12..=12).
    pub fn set_talk_gain_db(&mut self, db: i8) {
        self.talk_gain_q8 = gain_q8(db);
    }

    /// This tick's frame at the conference rate, once [`LegAudio::frame_for_mix`] (or
    /// [`LegAudio::pull`]) made it this tick; empty otherwise.
    pub fn frame(&self) -> &[i16] {
        if self.frame_tick == self.ticks {
            &self.frame
        } else {
            &[]
        }
    }

    /// This tick's level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether this tick's frame came from the sender (speech or concealment).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Frames skipped without decoding so far.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped_frames
    }

    /// The jitter buffer's counters.
    pub fn jitter_stats(&self) -> super::jitter_buffer::JitterStats {
        self.jitter.stats()
    }
}

/// A frame's level known without decoding it: the RFC 6464 level pushed with it, else a
/// G.711 payload's from the table, else an Opus DTX frame's (silence); None otherwise.
fn known_level(
    ext_levels: Option<&[(u32, u8); EXT_LEVELS]>,
    codec: AudioCodec,
    g711_energy: Option<&[u32; 256]>,
    payload: &[u8],
    timestamp: u32,
) -> Option<Level> {
    if let Some(&(_, l)) =
        (ext_levels.into_iter().flatten()).find(|&&(ts, l)| ts == timestamp && l != NO_LEVEL)
    {
        return Some(Level(l));
    }
    if let Some(table) = g711_energy {
        if payload.is_empty() {
            return Some(Level::SILENCE);
        }
        // u64: 160 codes of at most 2^30 each.
        let energy: u64 = payload.iter().map(|&c| u64::from(table[c as usize])).sum();
        return Some(Level::from_mean_square(
            energy as f64 / payload.len() as f64,
        ));
    }
    if codec == AudioCodec::Opus && opus::is_dtx(payload) {
        return Some(Level::SILENCE);
    }
    None
}

/// AGC's target level for speech: -18 dBov (RMS of 16-bit samples).
const AGC_TARGET_RMS: f32 = 4_125.0;
/// Frames quieter than -50 dBov (silence, noise) do not move the gain.
const AGC_SPEECH_RMS: f32 = 104.0;

/// One tick of automatic gain control: the gain moves 10% of the way to what would bring this
/// frame to the target (a quarter of the way when it must come down, so loud starts do not
/// clip long), between -6 dB and +12 dB; frames that are not speech leave it where it is.
fn agc_step(frame: &[i16], live: bool, gain: f32) -> f32 {
    if !live || frame.is_empty() {
        return gain;
    }
    let ms = frame
        .iter()
        .map(|&s| f32::from(s) * f32::from(s))
        .sum::<f32>()
        / frame.len() as f32;
    let rms = ms.sqrt();
    if rms < AGC_SPEECH_RMS {
        return gain;
    }
    let wanted = (AGC_TARGET_RMS / rms).clamp(0.5, 4.0);
    let rate = if wanted < gain { 0.25 } else { 0.1 };
    gain + (wanted - gain) * rate
}

/// A gain in dB (clamped to -12..=12) as a factor in 1/256.
pub fn gain_q8(db: i8) -> i32 {
    let db = f64::from(db.clamp(-12, 12));
    (256.0 * 10f64.powf(db / 20.0)).round() as i32
}

/// Multiplies samples by `q8`/256, saturating.
pub fn apply_gain(pcm: &mut [i16], q8: i32) {
    for s in pcm {
        *s = ((i32::from(*s) * q8) >> 8).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
}

/// Decoder samples in `clock` units of the RTP clock, for `rates` (decoder, clock).
fn clock_to_samples(rates: (u32, u32), clock: u32) -> usize {
    (u64::from(clock) * u64::from(rates.0) / u64::from(rates.1)) as usize
}

impl std::fmt::Debug for LegAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegAudio")
            .field("format", &self.format)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn format(codec: AudioCodec, pt: u8, ext: Option<u8>) -> AudioFormat {
        AudioFormat {
            codec,
            pt: Pt(pt),
            cn_pt: None,
            audio_level_ext_id: ext,
        }
    }

    fn tone(n: usize, start: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| {
                (8_000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8_000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn a_skipped_g711_leg_that_starts_talking_gives_the_eager_paths_samples() {
        let fmt = format(AudioCodec::Pcmu, 0, None);
        let (mut eager, mut lazy) = (
            LegAudio::new(fmt, 16_000, 20).unwrap(),
            LegAudio::new(fmt, 16_000, 20).unwrap(),
        );
        let t0 = Instant::now();
        let speech_level = Level(50);
        let mut onset = None;
        for tick in 0..60u32 {
            let now = t0 + Duration::from_millis(u64::from(tick) * 20);
            // 30 ticks of digital silence (as codes), then a tone.
            let payload: Vec<u8> = if tick < 30 {
                vec![g711::silence_code(g711::Law::Mu); 160]
            } else {
                let mut p = Vec::new();
                g711::encode_into(g711::Law::Mu, &tone(160, tick as usize * 160), &mut p);
                p
            };
            for leg in [&mut eager, &mut lazy] {
                leg.push(now, Pt(0), tick as u16, tick * 160, tick == 0, &payload);
            }
            eager.pull(now);
            let talking = onset.is_some();
            lazy.pull_skipping(now, (!talking).then_some(speech_level));
            if lazy.level() <= speech_level {
                onset.get_or_insert(tick);
            }
            if onset.is_some() {
                assert_eq!(lazy.frame_for_mix(), eager.frame(), "tick {tick}");
            }
        }
        assert!(lazy.skipped_frames() >= 25, "{}", lazy.skipped_frames());
        assert!(onset.is_some_and(|t| t >= 30));
    }

    #[test]
    fn rfc_6464_levels_and_opus_dtx_frames_skip_the_decoder() {
        let fmt = format(AudioCodec::Opus, 111, Some(1));
        let mut leg = LegAudio::new(fmt, 16_000, 20).unwrap();
        let mut enc = AudioCodec::Opus.encoder().unwrap();
        let t0 = Instant::now();
        let pcm: Vec<i16> = (0..320)
            .map(|i| (6_000.0 * (i as f64 * 0.17).sin()) as i16)
            .collect();
        let mut payload = Vec::new();
        let mut levels = Vec::new();
        for tick in 0..40u32 {
            let now = t0 + Duration::from_millis(u64::from(tick) * 20);
            payload.clear();
            enc.encode(&pcm, &mut payload).unwrap();
            let (body, level): (&[u8], Option<u8>) = match tick {
                // The sender says: quiet (60 -dBov), then loud (10), then a DTX frame.
                0..10 => (&payload, Some(60)),
                10..20 => (&payload, Some(10)),
                _ => (&[0x08][..], None),
            };
            leg.push_with_level(
                now,
                Pt(111),
                tick as u16,
                tick * 960,
                tick == 0,
                body,
                level,
            );
            leg.pull_skipping(now, Some(Level(50)));
            levels.push(leg.level());
        }
        // Ticks 2..=9 play the quiet frames (2 ticks of initial delay): RFC 6464 level, no
        // decode; the loud ones are decoded and measured; DTX frames are silence.
        assert!(levels[3..10].iter().all(|&l| l == Level(60)), "{levels:?}");
        assert!(levels[13..20].iter().all(|&l| l.0 < 50), "{levels:?}");
        assert!(
            levels[25..].iter().all(|&l| l == Level::SILENCE),
            "{levels:?}"
        );
        assert!(leg.skipped_frames() >= 8 + 15, "{}", leg.skipped_frames());
        // A talker (no threshold) decodes everything, even frames the sender calls quiet:
        // its level is the decoded one, not the 60 -dBov in the packets.
        let skipped = leg.skipped_frames();
        let mut talker_levels = Vec::new();
        for tick in 40..50u32 {
            let now = t0 + Duration::from_millis(u64::from(tick) * 20);
            payload.clear();
            enc.encode(&pcm, &mut payload).unwrap();
            let (seq, ts) = (tick as u16, tick * 960);
            leg.push_with_level(now, Pt(111), seq, ts, tick == 40, &payload, Some(60));
            leg.pull_skipping(now, None);
            talker_levels.push(leg.level());
        }
        assert_eq!(leg.skipped_frames(), skipped);
        assert!(
            talker_levels[5..].iter().all(|&l| l.0 < 50),
            "{talker_levels:?}"
        );
    }

    #[test]
    fn agc_brings_quiet_and_loud_speech_toward_the_target_and_ignores_silence() {
        let tone = |amp: f32| -> Vec<i16> {
            (0..320)
                .map(|n| (amp * (n as f32 * 0.2).sin()) as i16)
                .collect()
        };
        let rms = |pcm: &[i16]| {
            (pcm.iter().map(|&s| f32::from(s).powi(2)).sum::<f32>() / pcm.len() as f32).sqrt()
        };
        // Quiet speech (-30 dBov) is raised, capped at +12 dB.
        let mut g = 1.0;
        for _ in 0..100 {
            g = agc_step(&tone(1_465.0), true, g);
        }
        assert!((3.9..=4.0).contains(&g), "{g}");
        // Loud speech (-13 dBov) comes down to about the target.
        let loud = tone(10_000.0);
        let mut g = 1.0;
        for _ in 0..50 {
            g = agc_step(&loud, true, g);
        }
        assert!(
            (rms(&loud) * g - AGC_TARGET_RMS).abs() < 0.05 * AGC_TARGET_RMS,
            "{g}"
        );
        // Silence and concealed or absent frames do not move it.
        assert_eq!(agc_step(&tone(50.0), true, 2.0), 2.0);
        assert_eq!(agc_step(&loud, false, 2.0), 2.0);
    }
}
