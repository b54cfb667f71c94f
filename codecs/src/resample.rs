//! Streaming sample-rate conversion between 8, 16 and 48 kHz for the mixer.
//!
//! Every pair of the three rates is an integer ratio `R` (2, 3 or 6), so each direction is
//! either an interpolator by `R` or a decimator by `R` around one windowed-sinc low-pass
//! prototype, designed at construction and run in polyphase form: an output sample costs one
//! dot product over only the taps that meet real input samples.
//!
//! The prototype runs at the higher rate with a cutoff of 0.475 times the lower rate, a
//! passband to 0.45 and a stopband from 0.5 of the lower rate (its Nyquist frequency), and a
//! Kaiser window (beta 6.2) for about 65 dB of stopband attenuation. Its length spans 80
//! samples of the lower rate, which is what that 5% transition band needs:
//!
//! | direction        | prototype taps | taps per output sample | delay (output samples) |
//! |------------------|---------------:|-----------------------:|-----------------------:|
//! | 8 -> 16 kHz      | 159            | 80                     | 79 (4.94 ms)           |
//! | 16 -> 8 kHz      | 161            | 161                    | 40 (5 ms)              |
//! | 16 -> 48 kHz     | 239            | 80                     | 119 (2.48 ms)          |
//! | 48 -> 16 kHz     | 241            | 241                    | 40 (2.5 ms)            |
//! | 8 -> 48 kHz      | 479            | 80                     | 239 (4.98 ms)          |
//! | 48 -> 8 kHz      | 481            | 481                    | 40 (5 ms)              |
//!
//! Per 20 ms frame that is about 26k (8/16), 38k (16/48) and 77k (8/48) multiply-adds in
//! `f32`, in dot products over contiguous slices that the compiler vectorises.
//!
//! The filter is linear-phase, so the group delay is the same at every frequency:
//! [`Resampler::delay_samples`] output samples, an integer in every direction. The resampler
//! keeps the last input samples between calls, so a stream cut into frames of any sizes gives
//! exactly the output of the whole stream in one call, and after `n` input samples it has
//! produced exactly `ceil(n * to / from)` output samples (for 10 and 20 ms frames, exactly one
//! frame at the new rate per frame in).
//!
//! ```
//! use chorus_codecs::resample::Resampler;
//! let mut up = Resampler::new(8_000, 48_000).unwrap();
//! let mut out = Vec::with_capacity(960);
//! up.process(&[0i16; 160], &mut out);
//! assert_eq!(out.len(), 960);
//! ```

/// Why a resampler cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// A rate other than 8,000, 16,000 or 48,000 Hz.
    #[error("unsupported sample rate {0} Hz (8000, 16000 and 48000 are)")]
    UnsupportedRate(u32),
}

/// The rates the mixer runs at.
const RATES: [u32; 3] = [8_000, 16_000, 48_000];

/// Length of the prototype in samples of the lower rate (sets the transition band).
const SPAN_LOW_RATE: usize = 80;

/// Passband edge and stopband edge as fractions of the lower rate.
const PASSBAND_EDGE: f64 = 0.45;
const STOPBAND_EDGE: f64 = 0.5;

/// Kaiser window shape: 0.1102 * (A - 8.7) for a stopband of A = 65 dB.
const KAISER_BETA: f64 = 6.2;

/// A streaming converter from one of the mixer's rates to another (or to itself, a copy).
#[derive(Debug, Clone)]
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    /// Interpolation factor (number of phases).
    up: usize,
    /// Decimation factor.
    down: usize,
    /// Taps per phase: the length of every dot product.
    taps_per_phase: usize,
    /// The prototype's non-zero length, for documentation and tests.
    prototype_taps: usize,
    /// `up` phases of `taps_per_phase` coefficients, each reversed so that it lines up with
    /// the input in time order.
    coefs: Vec<f32>,
    /// Input not yet fully used: `taps_per_phase - 1` samples of history, then new input.
    history: Vec<f32>,
    /// Index in `history` of the newest input sample the next output needs.
    next: usize,
    /// The phase of the next output, `0..up`.
    phase: usize,
    /// Group delay in output samples.
    delay: usize,
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz`, both one of 8,000, 16,000 and 48,000.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        for rate in [from_hz, to_hz] {
            if !RATES.contains(&rate) {
                return Err(ResampleError::UnsupportedRate(rate));
            }
        }
        let low = from_hz.min(to_hz);
        // Every rate is a multiple of every lower one.
        let ratio = (from_hz.max(to_hz) / low) as usize;
        let (up, down) = if to_hz >= from_hz {
            (ratio, 1)
        } else {
            (1, ratio)
        };
        // Odd lengths keep the delay a whole number of samples: (n - 1) / 2 at the high
        // rate, chosen a multiple of `ratio` when decimating so it is whole at the output.
        let (prototype_taps, taps_per_phase) = if ratio == 1 {
            (1, 1)
        } else if up > 1 {
            let n = SPAN_LOW_RATE * ratio - 1;
            (n, n.div_ceil(up))
        } else {
            let n = SPAN_LOW_RATE * ratio + 1;
            (n, n)
        };
        let delay_high = (prototype_taps - 1) / 2;
        let prototype = design_lowpass(
            prototype_taps,
            0.5 * (PASSBAND_EDGE + STOPBAND_EDGE) / ratio as f64,
        );

        let mut coefs = vec![0.0f32; up * taps_per_phase];
        for p in 0..up {
            let phase = &mut coefs[p * taps_per_phase..(p + 1) * taps_per_phase];
            // Tap k of phase p is prototype tap p + k * up; it multiplies the input k samples
            // before the newest, so it goes at position taps_per_phase - 1 - k.
            let mut sum = 0.0f64;
            for k in 0..taps_per_phase {
                if let Some(&h) = prototype.get(p + k * up) {
                    sum += h;
                }
            }
            // Interpolating: every phase on its own has unit gain at DC (the prototype's
            // total gain is `up`), so a constant input gives a constant output. Decimating:
            // the one phase has unit gain.
            for k in 0..taps_per_phase {
                if let Some(&h) = prototype.get(p + k * up) {
                    phase[taps_per_phase - 1 - k] = (h / sum) as f32;
                }
            }
        }

        let mut history = Vec::with_capacity(taps_per_phase + 2_048);
        history.resize(taps_per_phase - 1, 0.0);
        Ok(Resampler {
            from_hz,
            to_hz,
            up,
            down,
            taps_per_phase,
            prototype_taps,
            coefs,
            history,
            next: taps_per_phase - 1,
            phase: 0,
            delay: delay_high / down,
        })
    }

    /// The input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// The output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// The group delay in output samples: output sample `n` stands for the input at output
    /// time `n - delay_samples()`.
    pub fn delay_samples(&self) -> usize {
        self.delay
    }

    /// The length of the low-pass prototype in taps (at the higher rate).
    pub fn taps(&self) -> usize {
        self.prototype_taps
    }

    /// Forgets the stream: the next call starts from silence, as after `new`.
    pub fn reset(&mut self) {
        self.history.clear();
        self.history.resize(self.taps_per_phase - 1, 0.0);
        self.next = self.taps_per_phase - 1;
        self.phase = 0;
    }

    /// Converts `input` and appends every output sample it completes to `out`.
    ///
    /// Allocates nothing once `out` has room and the input is no longer than the largest
    /// seen before (about 2,000 samples are reserved at construction).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let kp = self.taps_per_phase;
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        while self.next < self.history.len() {
            // INVARIANT: `next >= kp - 1` (it starts there and only grows; the trim below
            // keeps it), and `next < history.len()`, so the window is in bounds.
            let window = &self.history[self.next + 1 - kp..=self.next];
            let coefs = &self.coefs[self.phase * kp..(self.phase + 1) * kp];
            out.push(to_i16(dot(coefs, window)));
            self.phase += self.down;
            self.next += self.phase / self.up;
            self.phase %= self.up;
        }
        // Keep the newest kp - 1 samples: the next output's window starts no earlier, since
        // `next >= history.len()` here.
        let consumed = self.history.len() + 1 - kp;
        self.history.drain(..consumed);
        self.next -= consumed;
    }
}

/// Rounds and saturates to 16 bits.
#[inline]
fn to_i16(v: f32) -> i16 {
    // `as` saturates float-to-int conversions.
    v.round() as i16
}

/// A dot product written as eight independent sums so it vectorises.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        // INVARIANT: `chunks_exact(8)` yields slices of exactly eight.
        let x: &[f32; 8] = x.try_into().expect("chunk of 8");
        let y: &[f32; 8] = y.try_into().expect("chunk of 8");
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// A Kaiser-windowed sinc low-pass of `taps` (odd) taps with cutoff `cutoff` in cycles per
/// sample, unnormalised.
fn design_lowpass(taps: usize, cutoff: f64) -> Vec<f64> {
    if taps == 1 {
        return vec![1.0];
    }
    let center = (taps - 1) as f64 / 2.0;
    let i0_beta = bessel_i0(KAISER_BETA);
    (0..taps)
        .map(|i| {
            let t = i as f64 - center;
            let x = 2.0 * cutoff * t;
            let sinc = if t == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = t / center;
            let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            2.0 * cutoff * sinc * window
        })
        .collect()
}

/// The modified Bessel function of the first kind, order zero, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let half = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECTIONS: [(u32, u32); 6] = [
        (8_000, 16_000),
        (16_000, 8_000),
        (16_000, 48_000),
        (48_000, 16_000),
        (8_000, 48_000),
        (48_000, 8_000),
    ];

    fn tone(freq: f64, rate: u32, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let v =
                    amplitude * (2.0 * std::f64::consts::PI * freq * n as f64 / rate as f64).sin();
                v.round() as i16
            })
            .collect()
    }

    /// The amplitude of the component at `freq` in `x`, through a 4-term Blackman-Harris
    /// window (sidelobes below -92 dB, so a strong tone elsewhere does not leak in).
    fn amplitude_at(x: &[i16], freq: f64, rate: u32) -> f64 {
        let n = x.len() as f64;
        let w = |i: usize| {
            let p = 2.0 * std::f64::consts::PI * i as f64 / (n - 1.0);
            0.358_75 - 0.488_29 * p.cos() + 0.141_28 * (2.0 * p).cos() - 0.011_68 * (3.0 * p).cos()
        };
        let (mut re, mut im, mut wsum) = (0.0, 0.0, 0.0);
        for (i, &s) in x.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64;
            let wi = w(i);
            re += wi * s as f64 * ph.cos();
            im -= wi * s as f64 * ph.sin();
            wsum += wi;
        }
        2.0 * (re * re + im * im).sqrt() / wsum
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// Resamples 250 ms of `input` and returns the settled part of the output (the filter's
    /// start-up transient cut off).
    fn run(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        r.process(input, &mut out);
        out[2 * r.delay_samples() + 10..].to_vec()
    }

    #[test]
    fn rejects_other_rates() {
        assert_eq!(
            Resampler::new(44_100, 48_000).unwrap_err(),
            ResampleError::UnsupportedRate(44_100)
        );
        assert_eq!(
            Resampler::new(8_000, 32_000).unwrap_err(),
            ResampleError::UnsupportedRate(32_000)
        );
    }

    #[test]
    fn passband_tones_keep_their_level_in_every_direction() {
        for (from, to) in DIRECTIONS {
            let low = from.min(to) as f64;
            for freq in [300.0, 1_000.0, 0.45 * low] {
                let out = run(from, to, &tone(freq, from, 10_000.0, from as usize / 4));
                let gain = db(amplitude_at(&out, freq, to) / 10_000.0);
                assert!(gain.abs() < 0.5, "{from}->{to} at {freq} Hz: {gain:.3} dB");
            }
        }
    }

    #[test]
    fn tones_above_the_new_nyquist_do_not_alias() {
        let cases = [
            (16_000, 8_000, 5_000.0),
            (16_000, 8_000, 6_000.0),
            (16_000, 8_000, 4_200.0),
            (48_000, 8_000, 10_000.0),
            (48_000, 8_000, 5_000.0),
            (48_000, 16_000, 10_000.0),
            (48_000, 16_000, 20_000.0),
        ];
        for (from, to, freq) in cases {
            let reference = amplitude_at(
                &run(from, to, &tone(1_000.0, from, 10_000.0, from as usize / 4)),
                1_000.0,
                to,
            );
            let out = run(from, to, &tone(freq, from, 10_000.0, from as usize / 4));
            // The alias of `freq` folded into the output band.
            let folded = freq % to as f64;
            let alias = folded.min(to as f64 - folded);
            let level = db(amplitude_at(&out, alias, to) / reference);
            assert!(
                level < -55.0,
                "{from}->{to}: {freq} Hz aliases to {alias} Hz at {level:.1} dB"
            );
        }
    }

    #[test]
    fn upsampling_leaves_no_images_above_the_old_nyquist() {
        for (from, to) in [(8_000, 48_000), (8_000, 16_000), (16_000, 48_000)] {
            let a = tone(1_000.0, from, 10_000.0, from as usize / 4);
            let b = tone(0.4 * from as f64, from, 10_000.0, from as usize / 4);
            let input: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x / 2 + y / 2).collect();
            let out = run(from, to, &input);
            let reference = amplitude_at(&out, 1_000.0, to);
            let nyquist = from as f64 / 2.0;
            let mut worst = f64::MIN;
            let mut f = nyquist + 100.0;
            while f < to as f64 / 2.0 {
                worst = worst.max(db(amplitude_at(&out, f, to) / reference));
                f += 50.0;
            }
            assert!(worst < -55.0, "{from}->{to}: strongest image {worst:.1} dB");
        }
    }

    /// The prototype's own response, from its coefficients: passband ripple and stopband
    /// attenuation against the design targets.
    #[test]
    fn prototype_meets_its_mask() {
        for (from, to) in DIRECTIONS {
            let r = Resampler::new(from, to).unwrap();
            let high = from.max(to) as f64;
            let low = from.min(to) as f64;
            // Rebuild the prototype (at the high rate) from the phases.
            let mut h = vec![0.0f64; r.up * r.taps_per_phase];
            for p in 0..r.up {
                for k in 0..r.taps_per_phase {
                    h[p + k * r.up] =
                        r.coefs[p * r.taps_per_phase + r.taps_per_phase - 1 - k] as f64;
                }
            }
            let response = |f: f64| {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, &c) in h.iter().enumerate() {
                    let ph = 2.0 * std::f64::consts::PI * f * i as f64 / high;
                    re += c * ph.cos();
                    im -= c * ph.sin();
                }
                (re * re + im * im).sqrt() / r.up as f64
            };
            let (mut pmin, mut pmax) = (f64::MAX, f64::MIN);
            let mut f = 0.0;
            while f <= PASSBAND_EDGE * low {
                let g = db(response(f));
                pmin = pmin.min(g);
                pmax = pmax.max(g);
                f += 10.0;
            }
            let mut stop = f64::MIN;
            let mut f = STOPBAND_EDGE * low;
            while f <= high / 2.0 {
                stop = stop.max(db(response(f)));
                f += 5.0;
            }
            assert!(
                pmax - pmin < 0.1,
                "{from}->{to}: passband ripple {:.3} dB",
                pmax - pmin
            );
            assert!(stop < -60.0, "{from}->{to}: stopband {stop:.1} dB");
        }
    }

    #[test]
    fn frames_join_seamlessly() {
        let mut seed = 0x1234_5678u32;
        let input: Vec<i16> = (0..48_000)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 16) as i16 / 2
            })
            .collect();
        for (from, to) in DIRECTIONS {
            let input = &input[..from as usize / 2];
            let mut whole = Vec::new();
            Resampler::new(from, to).unwrap().process(input, &mut whole);
            let mut pieces = Vec::new();
            let mut r = Resampler::new(from, to).unwrap();
            let sizes = [160, 37, 1, 500, 0, 3, 960, 7];
            let mut rest = input;
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                r.process(&rest[..n], &mut pieces);
                rest = &rest[n..];
                i += 1;
            }
            assert_eq!(whole, pieces, "{from}->{to}");
        }
    }

    #[test]
    fn every_frame_in_gives_one_frame_out() {
        for (from, to) in DIRECTIONS {
            for frame_ms in [10, 20] {
                let mut r = Resampler::new(from, to).unwrap();
                let frame = tone(440.0, from, 8_000.0, (from / 1_000 * frame_ms) as usize);
                let want = (to / 1_000 * frame_ms) as usize;
                let mut out = Vec::with_capacity(want);
                let mut total = 0;
                for _ in 0..500 {
                    out.clear();
                    r.process(&frame, &mut out);
                    assert_eq!(out.len(), want, "{from}->{to}, {frame_ms} ms");
                    total += out.len();
                }
                assert_eq!(total, 500 * want);
            }
        }
    }

    #[test]
    fn odd_lengths_give_the_ceiling_of_the_ratio() {
        let mut r = Resampler::new(48_000, 8_000).unwrap();
        let mut out = Vec::new();
        r.process(&[0; 7], &mut out);
        assert_eq!(out.len(), 2); // inputs 0 and 6
        r.process(&[0; 5], &mut out);
        assert_eq!(out.len(), 2); // 12 inputs in, the next output needs input 12
        r.process(&[0; 1], &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn an_impulse_comes_out_after_the_documented_delay() {
        for (from, to) in DIRECTIONS {
            let mut r = Resampler::new(from, to).unwrap();
            let at = 60; // a multiple of every ratio
            let mut input = vec![0i16; 2_000];
            input[at] = 20_000;
            let mut out = Vec::new();
            r.process(&input, &mut out);
            let peak = (0..out.len()).max_by_key(|&i| out[i]).unwrap();
            let at_out = at * to as usize / from as usize;
            assert_eq!(peak, at_out + r.delay_samples(), "{from}->{to}");
        }
    }

    #[test]
    fn same_rate_is_a_copy() {
        let mut r = Resampler::new(16_000, 16_000).unwrap();
        let input = tone(700.0, 16_000, 9_000.0, 320);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        assert_eq!(out, input);
        assert_eq!(r.delay_samples(), 0);
    }

    #[test]
    fn taps_and_delays_match_the_table() {
        let want = [
            (8_000, 16_000, 159, 79),
            (16_000, 8_000, 161, 40),
            (16_000, 48_000, 239, 119),
            (48_000, 16_000, 241, 40),
            (8_000, 48_000, 479, 239),
            (48_000, 8_000, 481, 40),
        ];
        for (from, to, taps, delay) in want {
            let r = Resampler::new(from, to).unwrap();
            assert_eq!((r.taps(), r.delay_samples()), (taps, delay), "{from}->{to}");
        }
    }

    #[test]
    fn full_scale_saturates_instead_of_wrapping() {
        let mut r = Resampler::new(8_000, 48_000).unwrap();
        // A full-scale square wave overshoots (Gibbs); the output must clip, not wrap.
        let input: Vec<i16> = (0..800)
            .map(|n| {
                if (n / 20) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let late = &out[r.delay_samples() + 200..];
        assert!(late.contains(&i16::MAX) && late.contains(&i16::MIN));
        // Two sign changes per period of 240 output samples, none more (wrapping would add
        // some next to every edge).
        let changes = late.windows(2).filter(|w| (w[0] > 0) != (w[1] > 0)).count();
        assert!(changes <= late.len() / 120 + 2, "{changes} sign changes");
    }
}
