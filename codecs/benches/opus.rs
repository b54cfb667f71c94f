//! Opus encode cost per 20 ms frame (48 kHz mono, 32 kbit/s, VoIP) at complexities 0, 3, 5, 8
//! and 10, in frames per second; decoding the same frames is the baseline in the same run.
//! Before measuring, each complexity's speech round-trip quality (waveform SNR and log-spectral
//! distance) is printed, so cost can be read against quality when choosing
//! `opus::DEFAULT_COMPLEXITY`.
//!
//! Times are the benchmark thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`, through `cpu-time`), not
//! wall time: the development machine is shared, and CPU time is what a media core spends.
//!
//! Run: `cargo bench -p chorus-codecs --bench opus -- --warm-up-time 1 --measurement-time 3`

use std::f64::consts::PI;
use std::hint::black_box;
use std::time::Duration;

use chorus_codecs::opus::{Decoder, Encoder, EncoderConfig, SampleRate};
use chorus_codecs::{AudioDecoder, AudioEncoder};
use cpu_time::ThreadTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const COMPLEXITIES: [u8; 5] = [0, 3, 5, 8, 10];
/// 20 ms at 48 kHz.
const FRAME: usize = 960;
/// One second of signal, cycled through frame by frame.
const FRAMES: usize = 50;

/// Speech-like: a voiced source (harmonics of a pitch gliding 100-180 Hz, falling 6 dB per
/// octave, up to 4 kHz) under a syllable envelope of 4 per second, plus breath noise.
fn speech(samples: usize) -> Vec<i16> {
    let rate = 48_000.0;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut phase = 0.0f64;
    (0..samples)
        .map(|i| {
            let t = i as f64 / rate;
            let f0 = 140.0 + 40.0 * (2.0 * PI * 0.7 * t).sin();
            phase += 2.0 * PI * f0 / rate;
            let voiced: f64 = (1..=(4_000.0 / f0) as usize)
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

/// Runs `f` `iters` times and returns the CPU time it took.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = ThreadTime::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

fn encoder(complexity: u8) -> Encoder {
    Encoder::new(EncoderConfig {
        complexity,
        ..EncoderConfig::default()
    })
    .expect("valid settings")
}

/// Power at `freq` Hz in `x` (Goertzel, Hann window).
fn power_at(x: &[i16], freq: f64) -> f64 {
    let w = 2.0 * PI * freq / 48_000.0;
    let n = x.len() as f64;
    let (mut s1, mut s2) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * PI * i as f64 / n).cos();
        let s = f64::from(v) * hann + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}

/// Quality of a round trip, cost aside: waveform SNR (aligned by the lookahead) and log-spectral
/// distance (RMS dB difference of 40 log-spaced bins 100 Hz-8 kHz per 20 ms frame, over frames
/// within 30 dB of the loudest), plus the mean payload size.
fn quality(complexity: u8, signal: &[i16]) -> (f64, f64, f64) {
    let mut enc = encoder(complexity);
    let mut dec = Decoder::new(SampleRate::Hz48000).expect("valid rate");
    let (mut bytes, mut out, mut payload) = (0, Vec::new(), Vec::new());
    for frame in signal.chunks_exact(FRAME) {
        payload.clear();
        enc.encode(frame, &mut payload).expect("whole frame");
        bytes += payload.len();
        dec.decode(&payload, &mut out).expect("own packet");
    }
    let delay = enc.lookahead().expect("lookahead") as usize;
    // Skip the first 100 ms while the encoder settles.
    let frames: Vec<(&[i16], &[i16])> = (5..signal.len() / FRAME - 1)
        .map(|f| {
            let at = f * FRAME;
            (
                &signal[at..at + FRAME],
                &out[at + delay..at + delay + FRAME],
            )
        })
        .collect();
    let (mut s, mut n) = (0.0, 0.0);
    for (a, b) in &frames {
        for (&a, &b) in a.iter().zip(b.iter()) {
            let (a, b) = (f64::from(a), f64::from(b));
            s += a * a;
            n += (a - b) * (a - b);
        }
    }
    let energy = |x: &[i16]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
    let loudest = frames.iter().map(|(a, _)| energy(a)).fold(0.0, f64::max);
    let bins: Vec<f64> = (0..40)
        .map(|k| 100.0 * 80f64.powf(f64::from(k) / 39.0))
        .collect();
    let (mut lsd, mut counted) = (0.0, 0);
    for (a, b) in frames.iter().filter(|(a, _)| energy(a) > loudest / 1_000.0) {
        let d2: f64 = bins
            .iter()
            .map(|&f| {
                let pa = 10.0 * (power_at(a, f) + 1.0).log10();
                let pb = 10.0 * (power_at(b, f) + 1.0).log10();
                (pa - pb).powi(2)
            })
            .sum::<f64>()
            / bins.len() as f64;
        lsd += d2.sqrt();
        counted += 1;
    }
    (
        10.0 * (s / n).log10(),
        lsd / f64::from(counted.max(1)),
        bytes as f64 / (signal.len() / FRAME) as f64,
    )
}

fn bench(c: &mut Criterion) {
    let signal = speech(FRAMES * FRAME);
    for complexity in COMPLEXITIES {
        let (snr, lsd, bytes) = quality(complexity, &signal);
        eprintln!(
            "complexity {complexity:>2}: speech SNR {snr:5.1} dB, log-spectral distance \
             {lsd:4.2} dB, {bytes:.0} bytes/frame"
        );
    }

    let mut group = c.benchmark_group("opus_encode_20ms_48k_mono");
    group.throughput(Throughput::Elements(1));
    let mut packets = Vec::new();
    for complexity in COMPLEXITIES {
        let mut enc = encoder(complexity);
        let mut out = Vec::with_capacity(1_500);
        let mut frames = signal.chunks_exact(FRAME).cycle();
        group.bench_function(BenchmarkId::new("complexity", complexity), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    out.clear();
                    // INVARIANT: `cycle` over a non-empty signal never ends.
                    let frame = frames.next().expect("endless");
                    enc.encode(black_box(frame), &mut out).expect("whole frame");
                    black_box(&out);
                })
            })
        });
        if complexity == COMPLEXITIES[COMPLEXITIES.len() - 1] {
            let mut enc = encoder(complexity);
            for frame in signal.chunks_exact(FRAME) {
                let mut p = Vec::new();
                enc.encode(frame, &mut p).expect("whole frame");
                packets.push(p);
            }
        }
    }
    group.finish();

    let mut group = c.benchmark_group("opus_decode_20ms_48k_mono");
    group.throughput(Throughput::Elements(1));
    let mut dec = Decoder::new(SampleRate::Hz48000).expect("valid rate");
    let mut pcm = Vec::with_capacity(5_760);
    let mut next = packets.iter().cycle();
    group.bench_function("baseline", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                pcm.clear();
                // INVARIANT: `cycle` over a non-empty list never ends.
                let p = next.next().expect("endless");
                dec.decode(black_box(p), &mut pcm).expect("own packet");
                black_box(&pcm);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
