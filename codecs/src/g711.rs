//! G.711 (ITU-T G.711): mu-law (PCMU, payload type 0) and A-law (PCMA, payload type 8), one
//! byte per sample at 8 kHz.
//!
//! The codes are the Recommendation's segmented (companded) quantizer on 16-bit linear PCM:
//! eight segments of sixteen steps each side of zero, each segment's step twice the previous
//! one's, and every code decoding to the middle of its decision interval. Decoding is a table
//! lookup; encoding finds the segment from the magnitude's leading zeros.

use crate::plc::Concealer;
use crate::{AudioDecoder, AudioEncoder, CodecError};

/// Which companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law (North America, Japan): PCMU.
    Mu,
    /// A-law (Europe, most of the rest): PCMA.
    A,
}

/// The RTP clock and sample rate of both laws.
pub const SAMPLE_RATE: u32 = 8_000;

/// Bias added to mu-law magnitudes so every segment starts at a power of two.
const MU_BIAS: i32 = 0x84;
/// Largest magnitude mu-law encodes without clipping (32,767 minus the bias, rounded).
const MU_CLIP: i32 = 32_635;

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let t = ((mantissa << 3) + MU_BIAS) << exponent;
    if u & 0x80 != 0 {
        (MU_BIAS - t) as i16
    } else {
        (t - MU_BIAS) as i16
    }
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let segment = (a >> 4) & 0x07;
    let mut t = ((a & 0x0F) as i32) << 4;
    if segment == 0 {
        t += 8;
    } else {
        t = (t + 0x108) << (segment - 1);
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn table(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::Mu => ulaw_to_linear(i as u8),
            Law::A => alaw_to_linear(i as u8),
        };
        i += 1;
    }
    t
}

static ULAW_TABLE: [i16; 256] = table(Law::Mu);
static ALAW_TABLE: [i16; 256] = table(Law::A);

/// Decodes one mu-law code.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Decodes one A-law code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

/// Encodes one sample in mu-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let x = sample as i32;
    let sign: u8 = if x < 0 { 0x80 } else { 0x00 };
    let magnitude = x.abs().min(MU_CLIP) + MU_BIAS;
    // magnitude is in 0x84..=0x7FFF: its top bit is bit 7..=14, which is the segment + 7.
    let exponent = (31 - magnitude.leading_zeros() as i32 - 7) as u8;
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | (exponent << 4) | mantissa)
}

/// Encodes one sample in A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    let x = sample as i32;
    // A-law's sign bit is set for positive samples.
    let sign: u8 = if x >= 0 { 0x80 } else { 0x00 };
    let magnitude = x.abs().min(0x7FFF);
    let code = if magnitude < 0x100 {
        (magnitude >> 4) as u8
    } else {
        // The top bit is bit 8..=14: segment 1..=7.
        let segment = (31 - magnitude.leading_zeros() as i32 - 7) as u8;
        let mantissa = ((magnitude >> (segment + 3)) & 0x0F) as u8;
        (segment << 4) | mantissa
    };
    (sign | code) ^ 0x55
}

/// Decodes a payload of either law, appending one sample per byte.
pub fn decode_into(law: Law, payload: &[u8], pcm: &mut Vec<i16>) {
    let table = match law {
        Law::Mu => &ULAW_TABLE,
        Law::A => &ALAW_TABLE,
    };
    pcm.extend(payload.iter().map(|&c| table[c as usize]));
}

/// Encodes samples in either law, appending one byte per sample.
pub fn encode_into(law: Law, pcm: &[i16], out: &mut Vec<u8>) {
    match law {
        Law::Mu => out.extend(pcm.iter().map(|&s| ulaw_encode(s))),
        Law::A => out.extend(pcm.iter().map(|&s| alaw_encode(s))),
    }
}

/// The code of digital silence (what an idle line carries).
pub fn silence_code(law: Law) -> u8 {
    match law {
        Law::Mu => 0xFF,
        Law::A => 0xD5,
    }
}

/// A G.711 decoder; loss is concealed by pitch-period repetition ([`Concealer`], G.711
/// Appendix I), which delays the decoded audio by a fixed 3.75 ms (30 samples).
#[derive(Debug, Clone)]
pub struct Decoder {
    law: Law,
    concealer: Concealer,
}

impl Decoder {
    /// A decoder for `law`.
    pub fn new(law: Law) -> Self {
        Decoder {
            law,
            concealer: Concealer::narrowband(),
        }
    }

    /// The law this decoder decodes.
    pub fn law(&self) -> Law {
        self.law
    }

    /// The fixed delay the concealer adds to the decoded audio, in samples.
    pub fn plc_delay_samples(&self) -> usize {
        self.concealer.delay_samples()
    }
}

impl AudioDecoder for Decoder {
    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = pcm.len();
        decode_into(self.law, payload, pcm);
        self.concealer.good_frame(&mut pcm[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, pcm: &mut Vec<i16>) {
        self.concealer.conceal(samples, pcm);
    }
}

/// A G.711 encoder.
#[derive(Debug, Clone)]
pub struct Encoder {
    law: Law,
}

impl Encoder {
    /// An encoder for `law`.
    pub fn new(law: Law) -> Self {
        Encoder { law }
    }
}

impl AudioEncoder for Encoder {
    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_into(self.law, pcm, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G.711 Table 2a (mu-law), read as sign, segment (exponent) and step: the reconstruction
    /// value of step `m` in segment `e` is the middle of the interval
    /// [(16 + m) * 2^(e+3) - 132, (17 + m) * 2^(e+3) - 132) of the 16-bit scale.
    fn ulaw_reference(code: u8) -> i16 {
        let u = !code;
        let e = ((u >> 4) & 7) as i32;
        let m = (u & 0xF) as i32;
        let low = (16 + m) * (1 << (e + 3)) - 132;
        let high = (17 + m) * (1 << (e + 3)) - 132;
        let mid = (low + high) / 2;
        if u & 0x80 != 0 {
            -mid as i16
        } else {
            mid as i16
        }
    }

    /// G.711 Table 1a (A-law): segment 0 and 1 have steps of 16 from 0; segment s > 1 has
    /// steps of 2^(s+3) from 2^(s+7); each code decodes to the middle of its step.
    fn alaw_reference(code: u8) -> i16 {
        let a = code ^ 0x55;
        let s = ((a >> 4) & 7) as i32;
        let m = (a & 0xF) as i32;
        let (base, step) = if s == 0 {
            (0, 16)
        } else {
            (1 << (s + 7), 1 << (s + 3))
        };
        let mid = base + m * step + step / 2;
        if a & 0x80 != 0 {
            mid as i16
        } else {
            -mid as i16
        }
    }

    #[test]
    fn every_ulaw_code_decodes_to_its_interval_middle() {
        for code in 0..=255u8 {
            assert_eq!(ulaw_decode(code), ulaw_reference(code), "code {code:#04x}");
        }
        // Anchors from the Recommendation's tables.
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0xEF), 132);
    }

    #[test]
    fn every_alaw_code_decodes_to_its_interval_middle() {
        for code in 0..=255u8 {
            assert_eq!(alaw_decode(code), alaw_reference(code), "code {code:#04x}");
        }
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32_256);
        assert_eq!(alaw_decode(0x2A), -32_256);
    }

    /// The magnitude interval [low, high) a mu-law code stands for (G.711 Table 2a).
    fn ulaw_interval(code: u8) -> (i32, i32) {
        let u = !code;
        let e = ((u >> 4) & 7) as i32;
        let m = (u & 0xF) as i32;
        (
            (16 + m) * (1 << (e + 3)) - 132,
            (17 + m) * (1 << (e + 3)) - 132,
        )
    }

    /// The magnitude interval [low, high) an A-law code stands for (G.711 Table 1a).
    fn alaw_interval(code: u8) -> (i32, i32) {
        let a = code ^ 0x55;
        let s = ((a >> 4) & 7) as i32;
        let m = (a & 0xF) as i32;
        let (base, step) = if s == 0 {
            (0, 16)
        } else {
            (1 << (s + 7), 1 << (s + 3))
        };
        (base + m * step, base + (m + 1) * step)
    }

    /// Exhaustive over all 65,536 inputs: the encoder picks the code whose decision interval
    /// holds the sample's magnitude (clipped at the top of the last segment), with its sign.
    fn check_decision(
        encode: fn(i16) -> u8,
        decode: fn(u8) -> i16,
        interval: fn(u8) -> (i32, i32),
    ) {
        for x in i16::MIN..=i16::MAX {
            let code = encode(x);
            let (low, high) = interval(code);
            let magnitude = (x as i32).abs().min(high - 1);
            assert!(
                low <= magnitude && magnitude < high,
                "input {x}: code {code:#04x} stands for [{low}, {high})"
            );
            let level = decode(code);
            assert!(
                level == 0 || (level > 0) == (x > 0) || x == 0,
                "input {x}: level {level}"
            );
        }
    }

    #[test]
    fn ulaw_encode_follows_the_decision_levels() {
        check_decision(ulaw_encode, ulaw_decode, ulaw_interval);
    }

    #[test]
    fn alaw_encode_follows_the_decision_levels() {
        check_decision(alaw_encode, alaw_decode, alaw_interval);
    }

    #[test]
    fn codes_survive_a_decode_encode_round() {
        for code in 0..=255u8 {
            // mu-law has two zeros (0xFF and 0x7F); the encoder emits the positive one.
            let want = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), want, "mu {code:#04x}");
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A {code:#04x}");
        }
    }

    #[test]
    fn encoder_reference_points() {
        // Silence and full scale.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(silence_code(Law::Mu), ulaw_encode(0));
        assert_eq!(silence_code(Law::A), alaw_encode(0));
    }

    #[test]
    fn concealment_fades_the_last_frame_to_silence() {
        let mut dec = Decoder::new(Law::Mu);
        let payload = vec![ulaw_encode(8_000); 160];
        let mut pcm = Vec::new();
        dec.decode(&payload, &mut pcm).unwrap();
        pcm.clear();
        dec.conceal(160, &mut pcm);
        assert!(pcm[0] > 7_000 && pcm[159] < pcm[0]);
        pcm.clear();
        dec.conceal(480, &mut pcm);
        assert_eq!(pcm[400..], [0i16; 80][..]);
    }

    #[test]
    fn decoded_audio_lags_by_the_concealers_3_75_ms() {
        let mut dec = Decoder::new(Law::A);
        assert_eq!(dec.plc_delay_samples(), 30);
        let payload: Vec<u8> = (0..=255u8).collect();
        let mut pcm = Vec::new();
        dec.decode(&payload, &mut pcm).unwrap();
        dec.decode(&[silence_code(Law::A); 30], &mut pcm).unwrap();
        assert_eq!(pcm.len(), 286);
        assert_eq!(pcm[..30], [0i16; 30]);
        let want: Vec<i16> = payload.iter().map(|&c| alaw_decode(c)).collect();
        assert_eq!(pcm[30..], want[..]);
    }
}
