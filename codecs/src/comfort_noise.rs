//! Comfort noise (RFC 3389): the payload a sender puts on the wire instead of silence, and the
//! noise a receiver plays for it, so a leg that stops sending in silence does not sound dead.
//!
//! A payload is one level byte, the noise level in −dBov (0..=127; the top bit is unused),
//! optionally followed by one byte per reflection coefficient of an all-pole model of the
//! noise's spectrum (RFC 3389 sections 3.1, 3.2). The model order is the number of bytes
//! after the first.
//!
//! Conventions used here:
//!
//! - **dBov** for 16-bit linear PCM: 0 dBov is the RMS level of a full-scale square wave
//!   (32,767), so level `L` is an RMS of `32,767 * 10^(-L/20)`.
//! - **Coefficients**: byte `q` stands for `k = (q - 127) / 128`; `k` is quantised back as
//!   `round(128 k) + 127`. The model is `1/A(z)` with `A(z) = 1 + sum a_j z^-j` built from
//!   the `k_i` by the step-up recursion `a_i = k_i`, `a_j += k_i a_(i-j)`; [`CnPayload::from_pcm`]
//!   derives `k_i` by Levinson-Durbin in the same convention, so our own payloads round-trip.
//!   At most [`MAX_ORDER`] coefficients are used; further ones are ignored (RFC 3389 lets a
//!   decoder lower the order), and `|k|` is held below 0.995 so the filter stays stable.
//!
//! [`NoiseGenerator`] shapes seeded white noise with that filter and scales it so the output
//! RMS is the payload's level whatever the shape (the all-pole filter's power gain is
//! `1 / prod(1 - k_i^2)`).
//!
//! ```
//! use chorus_codecs::comfort_noise::{CnPayload, NoiseGenerator};
//! let cn = CnPayload::parse(&[50]).unwrap();
//! let mut noise = NoiseGenerator::new(1);
//! noise.set_payload(&cn);
//! let mut pcm = Vec::with_capacity(160);
//! noise.generate(160, &mut pcm);
//! assert_eq!(pcm.len(), 160);
//! ```

/// Why a comfort noise payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComfortNoiseError {
    /// The payload has no level byte.
    #[error("empty comfort noise payload")]
    Empty,
}

/// The most reflection coefficients used.
pub const MAX_ORDER: usize = 16;

/// The RMS of 0 dBov: a full-scale square wave.
const ZERO_DBOV_RMS: f64 = 32_767.0;

/// Largest reflection coefficient magnitude the filter uses.
const MAX_REFLECTION: f32 = 0.995;

/// A noise level in −dBov, 0 (loudest) to 127 (quietest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NoiseLevel(u8);

impl NoiseLevel {
    /// The level `minus_dbov` −dBov, saturated to 127.
    pub fn new(minus_dbov: u8) -> Self {
        NoiseLevel(minus_dbov.min(127))
    }

    /// The level of PCM with root-mean-square `rms` (rounded to whole dB).
    pub fn from_rms(rms: f64) -> Self {
        if rms <= 0.0 {
            return NoiseLevel(127);
        }
        let minus_dbov = (-20.0 * (rms / ZERO_DBOV_RMS).log10()).round();
        NoiseLevel(minus_dbov.clamp(0.0, 127.0) as u8)
    }

    /// The level as a positive number of dB below overload.
    pub fn minus_dbov(self) -> u8 {
        self.0
    }

    /// The RMS sample value of noise at this level.
    pub fn rms(self) -> f64 {
        ZERO_DBOV_RMS * 10f64.powf(-f64::from(self.0) / 20.0)
    }
}

/// A parsed (or built) comfort noise payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CnPayload {
    level: NoiseLevel,
    /// Quantised reflection coefficients (the wire bytes), `order` of them.
    coefficients: [u8; MAX_ORDER],
    order: u8,
}

impl CnPayload {
    /// A payload of white noise at `level`.
    pub fn white(level: NoiseLevel) -> Self {
        CnPayload {
            level,
            coefficients: [0; MAX_ORDER],
            order: 0,
        }
    }

    /// Parses a CN payload: a level byte, then any number of coefficient bytes (beyond
    /// [`MAX_ORDER`] ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, ComfortNoiseError> {
        let (&first, rest) = payload.split_first().ok_or(ComfortNoiseError::Empty)?;
        let order = rest.len().min(MAX_ORDER);
        let mut coefficients = [0u8; MAX_ORDER];
        coefficients[..order].copy_from_slice(&rest[..order]);
        Ok(CnPayload {
            // The top bit is unused (RFC 3389 section 3.1); ignore whatever a sender put there.
            level: NoiseLevel(first & 0x7F),
            coefficients,
            order: order as u8,
        })
    }

    /// Describes a frame of PCM (a leg's background between talk spurts): its level and,
    /// with `order > 0`, its spectral envelope as `order` reflection coefficients (at most
    /// [`MAX_ORDER`] and fewer than the frame's length).
    pub fn from_pcm(pcm: &[i16], order: usize) -> Self {
        let order = order.min(MAX_ORDER).min(pcm.len().saturating_sub(1));
        let energy: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let rms = if pcm.is_empty() {
            0.0
        } else {
            (energy / pcm.len() as f64).sqrt()
        };
        let mut out = CnPayload::white(NoiseLevel::from_rms(rms));
        if order == 0 || energy == 0.0 {
            return out;
        }
        // Autocorrelation, then Levinson-Durbin for the reflection coefficients.
        let mut r = [0.0f64; MAX_ORDER + 1];
        for (lag, slot) in r.iter_mut().enumerate().take(order + 1) {
            *slot = pcm
                .iter()
                .zip(&pcm[lag..])
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
        }
        let mut a = [0.0f64; MAX_ORDER + 1];
        let mut error = r[0];
        for i in 1..=order {
            let mut acc = r[i];
            for j in 1..i {
                acc += a[j] * r[i - j];
            }
            let k = if error > 0.0 { -acc / error } else { 0.0 };
            let k = k.clamp(-1.0, 1.0);
            let previous = a;
            a[i] = k;
            for j in 1..i {
                a[j] = previous[j] + k * previous[i - j];
            }
            error *= 1.0 - k * k;
            out.coefficients[i - 1] = quantize(k as f32);
        }
        out.order = order as u8;
        out
    }

    /// The noise level.
    pub fn level(&self) -> NoiseLevel {
        self.level
    }

    /// The number of reflection coefficients.
    pub fn order(&self) -> usize {
        usize::from(self.order)
    }

    /// The `i`-th reflection coefficient (from 0), as sent; `None` past the order.
    pub fn reflection(&self, i: usize) -> Option<f32> {
        self.coefficients[..self.order()]
            .get(i)
            .map(|&q| dequantize(q))
    }

    /// Appends the payload's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.level.0);
        out.extend_from_slice(&self.coefficients[..self.order()]);
    }
}

/// Spreads a seed over all 64 bits (SplitMix64's finaliser), so nearby seeds give unrelated
/// sequences.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn dequantize(q: u8) -> f32 {
    (f32::from(q) - 127.0) / 128.0
}

fn quantize(k: f32) -> u8 {
    (k * 128.0 + 127.0).round().clamp(0.0, 255.0) as u8
}

/// Plays comfort noise: seeded, so a test (or a replay) hears the same noise twice.
#[derive(Debug, Clone)]
pub struct NoiseGenerator {
    /// xorshift64* state; never zero.
    state: u64,
    /// Direct-form coefficients a_1..a_order of A(z).
    a: [f32; MAX_ORDER],
    order: usize,
    /// Past outputs, newest first.
    past: [f32; MAX_ORDER],
    /// Half-width of the uniform excitation, in sample units.
    excitation: f32,
}

impl NoiseGenerator {
    /// A silent generator whose noise sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        NoiseGenerator {
            state: splitmix64(seed).max(1),
            a: [0.0; MAX_ORDER],
            order: 0,
            past: [0.0; MAX_ORDER],
            excitation: 0.0,
        }
    }

    /// Takes the level and shape of a new CN payload (keeping the filter's memory, so the
    /// noise changes without a click).
    pub fn set_payload(&mut self, cn: &CnPayload) {
        let order = cn.order();
        let mut a = [0.0f32; MAX_ORDER];
        let mut power_gain = 1.0f64;
        for i in 0..order {
            // INVARIANT: i < order <= MAX_ORDER.
            let k = dequantize(cn.coefficients[i]).clamp(-MAX_REFLECTION, MAX_REFLECTION);
            let previous = a;
            a[i] = k;
            for j in 0..i {
                a[j] = previous[j] + k * previous[i - 1 - j];
            }
            power_gain /= 1.0 - f64::from(k) * f64::from(k);
        }
        self.a = a;
        self.order = order;
        // Uniform noise on [-w, w] has variance w^2 / 3.
        let excitation_rms = cn.level.rms() / power_gain.sqrt();
        self.excitation = (excitation_rms * 3f64.sqrt()) as f32;
    }

    /// Appends `samples` samples of noise to `pcm`.
    pub fn generate(&mut self, samples: usize, pcm: &mut Vec<i16>) {
        pcm.reserve(samples);
        for _ in 0..samples {
            let e = self.uniform() * self.excitation;
            let mut y = e;
            for j in 0..self.order {
                y -= self.a[j] * self.past[j];
            }
            if self.order > 0 {
                self.past.copy_within(0..self.order - 1, 1);
                self.past[0] = y;
            }
            // `as` saturates.
            pcm.push(y.round() as i16);
        }
    }

    /// Uniform on [-1, 1).
    fn uniform(&mut self) -> f32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let bits = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(pcm: &[i16]) -> f64 {
        (pcm.iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / pcm.len() as f64)
            .sqrt()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    fn noise(cn: &CnPayload, samples: usize, seed: u64) -> Vec<i16> {
        let mut g = NoiseGenerator::new(seed);
        g.set_payload(cn);
        let mut pcm = Vec::new();
        g.generate(samples, &mut pcm);
        pcm
    }

    #[test]
    fn white_noise_has_the_payload_level() {
        for level in [30u8, 50, 70] {
            let cn = CnPayload::parse(&[level]).unwrap();
            let pcm = noise(&cn, 16_000, 3);
            let err = db(rms(&pcm) / NoiseLevel::new(level).rms());
            assert!(err.abs() < 1.0, "{level} -dBov: {err:.2} dB off");
        }
    }

    #[test]
    fn shaped_noise_has_the_payload_level() {
        // A strongly low-pass shape (k1 near -0.9) and a resonant one.
        for coefs in [&[12u8, 180, 100][..], &[127, 20, 230, 127, 60]] {
            for level in [30u8, 50, 70] {
                let mut payload = vec![level];
                payload.extend_from_slice(coefs);
                let cn = CnPayload::parse(&payload).unwrap();
                let pcm = noise(&cn, 48_000, 5);
                let err = db(rms(&pcm) / NoiseLevel::new(level).rms());
                assert!(err.abs() < 1.0, "{level} -dBov {coefs:?}: {err:.2} dB off");
            }
        }
    }

    #[test]
    fn parsing() {
        assert_eq!(CnPayload::parse(&[]), Err(ComfortNoiseError::Empty));
        let cn = CnPayload::parse(&[0x80 | 40]).unwrap();
        assert_eq!((cn.level().minus_dbov(), cn.order()), (40, 0));
        let cn = CnPayload::parse(&[40, 127, 255, 0]).unwrap();
        assert_eq!(cn.order(), 3);
        assert_eq!(cn.reflection(0), Some(0.0));
        assert_eq!(cn.reflection(1), Some(1.0));
        assert_eq!(cn.reflection(2), Some(-127.0 / 128.0));
        assert_eq!(cn.reflection(3), None);
        // More coefficients than used: accepted, the extra ignored.
        let long: Vec<u8> = (0..40).map(|i| 100 + i).collect();
        let cn = CnPayload::parse(&long).unwrap();
        assert_eq!((cn.level().minus_dbov(), cn.order()), (100, MAX_ORDER));
        let mut out = Vec::new();
        cn.write(&mut out);
        assert_eq!(out, long[..=MAX_ORDER]);
    }

    #[test]
    fn a_frame_round_trips_through_a_payload() {
        for level in [20u8, 45, 66] {
            let frame = noise(&CnPayload::white(NoiseLevel::new(level)), 160, 11);
            let cn = CnPayload::from_pcm(&frame, 0);
            let mut wire = Vec::new();
            cn.write(&mut wire);
            assert_eq!(wire.len(), 1);
            let back = CnPayload::parse(&wire).unwrap();
            let measured = NoiseLevel::from_rms(rms(&frame)).minus_dbov();
            assert_eq!(back.level().minus_dbov(), measured);
            assert!(measured.abs_diff(level) <= 1, "{level} -> {measured}");
            // And what a receiver plays for it is as loud as the frame.
            let played = noise(&back, 8_000, 2);
            let err = db(rms(&played) / rms(&frame));
            assert!(err.abs() < 1.0, "{level}: {err:.2} dB");
        }
        assert_eq!(CnPayload::from_pcm(&[0; 160], 4).level().minus_dbov(), 127);
        assert_eq!(
            CnPayload::from_pcm(&[i16::MAX; 160], 0)
                .level()
                .minus_dbov(),
            0
        );
    }

    #[test]
    fn a_spectral_shape_round_trips() {
        let sent = CnPayload::parse(&[40, 20, 200, 90, 150]).unwrap();
        let pcm = noise(&sent, 32_000, 9);
        let got = CnPayload::from_pcm(&pcm, 4);
        for i in 0..4 {
            let (a, b) = (sent.reflection(i).unwrap(), got.reflection(i).unwrap());
            assert!((a - b).abs() < 0.05, "k{i}: sent {a}, measured {b}");
        }
        assert!(got.level().minus_dbov().abs_diff(40) <= 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_noise() {
        let cn = CnPayload::parse(&[30, 100]).unwrap();
        assert_eq!(noise(&cn, 500, 42), noise(&cn, 500, 42));
        assert_ne!(noise(&cn, 500, 42), noise(&cn, 500, 43));
    }
}
