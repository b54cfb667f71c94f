//! One conference tick of the mixer for 10, 100 and 1,000 participants, 3 of them talking.
//!
//! What one iteration is (one 20 ms tick of one conference, through the pub API of
//! `mixer::{LegAudio, Conference}`, as `runtime/core.rs::mix_conferences` drives it):
//!
//! 1. every participant's packet of the tick is pushed into its jitter buffer (the packet
//!    path's share of the mixer; arrival exactly on the tick, no loss);
//! 2. every participant is pulled (jitter buffer tick and pop, decode or skip, level), the
//!    talkers are selected, resampled to 16 kHz and mixed (full mix and mix-minus per talker);
//! 3. per listener: its mix, the shared encoded payload (each (mix, codec) is encoded once
//!    per tick) and a 12-byte RTP header written with the payload into an output buffer.
//!
//! Not included: SRTP protection and the send queue (per listener, the same in both paths;
//! see the `srtp` bench of the top-level crate for that cost), and the core's leg lookups.
//!
//! The participants: 3 talkers send a speech-like signal (a voiced tone whose pitch glides
//! between 100 and 220 Hz, harmonics to 3.4 kHz, with a 4 Hz syllable envelope, about
//! -20 dBov); everyone else is silent as phones send it: low-level noise (about -70 dBov)
//! in continuous packets, except in the DTX configuration, where silent Opus legs send no
//! packets at all. Payloads are encoded before the measurement and replayed (2 s per talker,
//! 1 s of noise), so the sender's encoding is not measured.
//!
//! Configurations (one group each): `pcmu` (G.711 mu-law everywhere), `opus` (Opus 16 kHz
//! 20 ms, continuous frames, no RFC 6464), `opus_dtx` (silent legs send nothing),
//! `opus_rfc6464` (continuous frames carrying the sender's RFC 6464 level). In each group,
//! `eager` is the previous path (every leg decoded, resampled to 16 kHz and measured every
//! tick: `LegAudio::pull`) and `skip` the current one (`LegAudio::pull_skipping` with the
//! conference's threshold, talkers alone resampled: `LegAudio::frame_for_mix`), in the same
//! run. Throughput is participants per second, so per-participant time is 1 / throughput.
//!
//! A last group, `jitter_only`, is step 1 plus the jitter buffer's tick and pop for every
//! participant, with nothing decoded: the floor of the per-participant cost.
//!
//! Run: `cargo bench -p chorus-engine --bench mixer -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus_engine::codecs::opus::{self, EncoderConfig, SampleRate};
use chorus_engine::codecs::{AudioCodec, AudioEncoder};
use chorus_engine::mixer::jitter_buffer::{JitterBuffer, JitterConfig};
use chorus_engine::mixer::{AudioFormat, Conference, LegAudio, Level, MIX_RATE, TalkerConfig};
use chorus_engine::rtp::{Pt, RtpHeader, Ssrc};
use chorus_engine::runtime::LegId;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const TICK_MS: u32 = 20;
const TALKERS: usize = 3;
const SIZES: [usize; 3] = [10, 100, 1_000];

/// How silent participants send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Silence {
    /// A packet of low-level noise every tick.
    Continuous,
    /// No packets (Opus DTX with the RTP sender skipping DTX frames).
    Dtx,
}

#[derive(Clone, Copy)]
struct Config {
    name: &'static str,
    codec: AudioCodec,
    pt: Pt,
    silence: Silence,
    rfc6464: bool,
}

const CONFIGS: [Config; 4] = [
    Config {
        name: "pcmu",
        codec: AudioCodec::Pcmu,
        pt: Pt(0),
        silence: Silence::Continuous,
        rfc6464: false,
    },
    Config {
        name: "opus",
        codec: AudioCodec::Opus,
        pt: Pt(111),
        silence: Silence::Continuous,
        rfc6464: false,
    },
    Config {
        name: "opus_dtx",
        codec: AudioCodec::Opus,
        pt: Pt(111),
        silence: Silence::Dtx,
        rfc6464: false,
    },
    Config {
        name: "opus_rfc6464",
        codec: AudioCodec::Opus,
        pt: Pt(111),
        silence: Silence::Continuous,
        rfc6464: true,
    },
];

/// Speech-like PCM at `rate`: a voiced tone gliding between 100 and 220 Hz (starting at
/// `f0`), harmonics up to 3.4 kHz at 1/k, a 4 Hz syllable envelope between 0.3 and 1.
fn speech(rate: u32, f0: f64, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let f = f0 + 60.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f / f64::from(rate);
            let harmonics = (3_400.0 / f) as usize;
            let v: f64 = (1..=harmonics)
                .map(|k| (k as f64 * phase).sin() / k as f64)
                .sum();
            let env = 0.65 + 0.35 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            (2_500.0 * env * v).round().clamp(-32_767.0, 32_767.0) as i16
        })
        .collect()
}

/// Low-level white noise (uniform in -14..=14: about -70 dBov), as a quiet room on a phone.
fn noise(rate: u32, seconds: f64, seed: u64) -> Vec<i16> {
    let mut x = seed | 1;
    (0..(f64::from(rate) * seconds) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 29) as i16 - 14
        })
        .collect()
}

/// One source's packets (payload, RFC 6464 level of its frame), one per tick, replayed.
struct Source {
    frames: Vec<(Vec<u8>, u8)>,
}

fn encode(codec: AudioCodec, pcm: &[i16]) -> Source {
    let frame = (codec.sample_rate() * TICK_MS / 1000) as usize;
    let mut enc: Box<dyn AudioEncoder> = match codec {
        AudioCodec::Opus => Box::new(
            opus::Encoder::new(EncoderConfig {
                sample_rate: SampleRate::Hz16000,
                ..EncoderConfig::default()
            })
            .expect("opus encoder"),
        ),
        _ => codec.encoder().expect("encoder"),
    };
    let frames = pcm
        .chunks_exact(frame)
        .map(|f| {
            let mut out = Vec::new();
            enc.encode(f, &mut out).expect("encode");
            (out, Level::of(f).0)
        })
        .collect();
    Source { frames }
}

/// A participant: its inbound path, what it sends, its outbound numbering.
struct Member {
    id: LegId,
    audio: LegAudio,
    source: usize,
    out_seq: u16,
    out_ts: u32,
}

/// One conference and its participants' senders.
struct Rig {
    cfg: Config,
    conf: Conference,
    members: Vec<Member>,
    sources: Vec<Source>,
    t0: Instant,
    tick: u32,
    out: Vec<u8>,
}

impl Rig {
    fn new(cfg: Config, n: usize) -> Self {
        let rate = cfg.codec.sample_rate();
        let mut sources: Vec<Source> = (0..TALKERS)
            .map(|i| encode(cfg.codec, &speech(rate, 110.0 + 40.0 * i as f64, 2.0)))
            .collect();
        sources.push(encode(cfg.codec, &noise(rate, 1.0, 0x5eed)));
        let format = AudioFormat {
            codec: cfg.codec,
            pt: cfg.pt,
            cn_pt: None,
            audio_level_ext_id: cfg.rfc6464.then_some(1),
        };
        let mut conf = Conference::new(TalkerConfig::default(), TICK_MS, MIX_RATE);
        let members = (0..n)
            .map(|i| {
                let id = LegId(i as u32 + 1);
                conf.members.push(id);
                Member {
                    id,
                    audio: LegAudio::new(format, MIX_RATE, TICK_MS).expect("leg audio"),
                    source: i.min(TALKERS),
                    out_seq: 0,
                    out_ts: 0,
                }
            })
            .collect();
        Rig {
            cfg,
            conf,
            members,
            sources,
            t0: Instant::now(),
            tick: 0,
            out: vec![0u8; 1_500],
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(u64::from(self.tick) * u64::from(TICK_MS))
    }

    /// Step 1: every participant's packet of this tick into its jitter buffer.
    fn push(&mut self) {
        let now = self.now();
        let clock = self.cfg.codec.rtp_clock_rate() * TICK_MS / 1000;
        let (seq, ts) = (self.tick as u16, self.tick.wrapping_mul(clock));
        for m in &mut self.members {
            let silent = m.source == TALKERS;
            if silent && self.cfg.silence == Silence::Dtx {
                continue;
            }
            let src = &self.sources[m.source];
            let (payload, level) = &src.frames[self.tick as usize % src.frames.len()];
            let level = self.cfg.rfc6464.then_some(*level);
            m.audio
                .push_with_level(now, self.cfg.pt, seq, ts, self.tick == 0, payload, level);
        }
    }

    /// One whole tick, `eager` or skipping.
    fn tick(&mut self, eager: bool) {
        self.push();
        let now = self.now();
        self.tick += 1;
        self.conf.levels.clear();
        for m in &mut self.members {
            if eager {
                m.audio.pull(now);
            } else {
                m.audio
                    .pull_skipping(now, self.conf.skip_quieter_than(m.id));
            }
            self.conf.levels.push((m.id, m.audio.level()));
        }
        // The members are ids 1..=n, in order.
        let (conf, members) = (&mut self.conf, &mut self.members);
        let talkers = conf.select();
        if !eager {
            for t in talkers {
                members[t.0 as usize - 1].audio.frame_for_mix();
            }
        }
        let members = &self.members;
        self.conf
            .mix_selected(|id| members.get(id.0 as usize - 1).map(|m| m.audio.frame()));
        let clock = self.cfg.codec.rtp_clock_rate() * TICK_MS / 1000;
        for m in &mut self.members {
            let mix = self.conf.mix_for(m.id);
            let Some(payload) = self.conf.encoded(mix, self.cfg.codec) else {
                continue;
            };
            let head = RtpHeader {
                pt: self.cfg.pt,
                seq: m.out_seq,
                timestamp: m.out_ts,
                ssrc: Ssrc(m.id.0),
                ..RtpHeader::default()
            };
            let at = head.write(&mut self.out).expect("a 12-byte header fits");
            let n = at + payload.len();
            self.out[at..n].copy_from_slice(payload);
            black_box(&self.out[..n]);
            m.out_seq = m.out_seq.wrapping_add(1);
            m.out_ts = m.out_ts.wrapping_add(clock);
        }
    }
}

fn mixer_tick(c: &mut Criterion) {
    for cfg in CONFIGS {
        let mut group = c.benchmark_group(format!("mixer_tick/{}", cfg.name));
        group.sample_size(10);
        for n in SIZES {
            group.throughput(Throughput::Elements(n as u64));
            for (path, eager) in [("eager", true), ("skip", false)] {
                let mut rig = Rig::new(cfg, n);
                // Steady state: jitter buffers started, talkers selected.
                for _ in 0..100 {
                    rig.tick(eager);
                }
                let talkers = rig.conf.talkers().len();
                assert_eq!(
                    talkers, TALKERS,
                    "{} {n}: the 3 talkers are mixed",
                    cfg.name
                );
                group.bench_with_input(BenchmarkId::new(path, n), &n, |b, _| {
                    b.iter(|| rig.tick(eager))
                });
                let skipped: u64 = rig.members.iter().map(|m| m.audio.skipped_frames()).sum();
                eprintln!(
                    "{} {path} n={n}: {} ticks, {skipped} frames skipped undecoded",
                    cfg.name, rig.tick
                );
            }
        }
        group.finish();
    }
}

/// Push, then the jitter buffer's tick and pop, for every participant (G.711 packets).
fn jitter_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("jitter_only/pcmu");
    group.sample_size(10);
    let payload = [0xffu8; 160];
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        let mut jbs: Vec<JitterBuffer> = (0..n)
            .map(|_| JitterBuffer::new(JitterConfig::new(8_000, TICK_MS)).expect("jitter"))
            .collect();
        let t0 = Instant::now();
        let mut tick = 0u32;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let now = t0 + Duration::from_millis(u64::from(tick) * 20);
                for jb in &mut jbs {
                    jb.push(now, tick as u16, tick * 160, tick == 0, &payload);
                    jb.tick(now);
                    while let Some(p) = jb.pop() {
                        black_box(p);
                    }
                }
                tick += 1;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, mixer_tick, jitter_only);
criterion_main!(benches);
