//! In-band DTMF detection: key presses sent as tones in the audio (by trunks and phones that
//! do not send RFC 4733 events), recognised as ITU-T Q.23 signals by the rules of Q.24.
//!
//! # How
//!
//! Eight Goertzel filters, one per DTMF frequency (697, 770, 852, 941 Hz in the low group,
//! 1209, 1336, 1477, 1633 Hz in the high group), run over sub-blocks of 3.25 ms (26 samples
//! at 8 kHz, 52 at 16 kHz). Every sub-block the last four are joined into a 13 ms analysis
//! window (104 samples at 8 kHz, 208 at 16 kHz), so windows overlap by three quarters and a
//! decision is made every 3.25 ms. A window holds a key when all of these hold:
//!
//! - **level**: each of the strongest low and high tones is at least −29 dBm0
//!   ([`MIN_TONE_DBM0`]);
//! - **twist**: the high tone is at most 8 dB weaker (normal twist: lines lose the high
//!   group) and at most 4 dB stronger (reverse twist) than the low tone;
//! - **one tone per group**: every other filter of each group is at least 6 dB below the
//!   group's strongest;
//! - **purity**: the two tones carry at least half the window's total energy, which speech
//!   and noise, spread over many frequencies, do not;
//! - **frequency**: each tone's frequency, measured from the phase advance between the
//!   window's two halves, is within ±2.5% of nominal (Q.24 asks for acceptance within ±1.5%
//!   and rejection beyond ±3.5%; the Goertzel magnitude alone cannot tell those apart in 13
//!   ms);
//! - **second harmonic**: the energy at twice each tone's frequency is at least 10 dB below
//!   the tone (a voice's harmonics are not), except for a low tone whose harmonic falls
//!   within two frequency bins of the key's own high tone (keys 2, 6, B and C), where the
//!   high tone itself would be measured.
//!
//! A key press starts after nine consecutive windows hold the same key, and ends after eight
//! consecutive windows do not. Since a window holds a key only when the tone fills at least
//! about half of it, that means a tone of 40 ms or more is always reported and one shorter
//! than 26 ms never is (Q.24: accept from 40 ms, reject below 23 ms), and a pause of 40 ms
//! always separates two presses while a break of 10 ms does not.
//!
//! What it cannot tell apart: a voice that holds two harmonics within tolerance of a key's
//! pair, with little else and a clean second harmonic, for 30 ms or more, is a key press; the
//! tests' gliding synthetic vowels (and white noise) raise none in ten seconds.
//!
//! # Levels
//!
//! 0 dBm0 is a sine of RMS 3.14 dB below that of a full-scale 16-bit sine, i.e. a full-scale
//! sine (peak 32,768) is +3.14 dBm0, the A-law figure of ITU-T G.711 (mu-law's is +3.17).
//!
//! # Use
//!
//! Sans-IO: hand in audio with [`DtmfDetector::process`], then drain
//! [`DtmfDetector::poll_event`]. Positions are sample counts since the detector was made.
//!
//! ```
//! use chorus_codecs::dtmf_detect::DtmfDetector;
//! let mut det = DtmfDetector::new(8_000).unwrap();
//! det.process(&[0i16; 160]);
//! assert_eq!(det.poll_event(), None);
//! ```

use std::collections::VecDeque;
use std::f32::consts::PI;

/// Why a detector cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfDetectError {
    /// A sample rate other than 8,000 or 16,000 Hz.
    #[error("unsupported sample rate {0} Hz (8000 and 16000 are)")]
    UnsupportedRate(u32),
}

/// What the detector saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A key press began (reported once, as soon as it is certain).
    KeyDown {
        /// `'0'..='9'`, `'*'`, `'#'` or `'A'..='D'`.
        digit: char,
        /// Where the tone began, in samples since the detector was made (within ~3 ms).
        start_sample: u64,
    },
    /// The key press reported by the last `KeyDown` ended.
    KeyUp {
        /// The same digit as the `KeyDown`.
        digit: char,
        /// How long the tone lasted, within a few milliseconds.
        duration_ms: u32,
    },
}

/// The low-group (row) frequencies, Hz.
pub const LOW_GROUP_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// The high-group (column) frequencies, Hz.
pub const HIGH_GROUP_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: row by low frequency, column by high frequency.
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The weakest tone (each of the two) accepted, dBm0.
pub const MIN_TONE_DBM0: f32 = -29.0;
/// A full-scale 16-bit sine in dBm0 (G.711 A-law).
#[allow(clippy::approx_constant, reason = "a level in dB, not pi")]
pub const FULL_SCALE_SINE_DBM0: f32 = 3.14;

/// Largest normal twist (high tone weaker than low), dB.
const NORMAL_TWIST_DB: f32 = 8.0;
/// Largest reverse twist (high tone stronger than low), dB.
const REVERSE_TWIST_DB: f32 = 4.0;
/// How far the strongest filter of a group must stand above the others, dB.
const GROUP_MARGIN_DB: f32 = 6.0;
/// The share of the window's energy the two tones must carry.
const MIN_PURITY: f32 = 0.5;
/// Largest accepted frequency deviation, as a fraction of nominal.
const MAX_DEVIATION: f32 = 0.025;
/// How far a second harmonic must stay below its fundamental, dB.
const HARMONIC_MARGIN_DB: f32 = 10.0;
/// Consecutive windows holding a key before it is reported.
const WINDOWS_ON: u32 = 9;
/// Consecutive windows without the key before it is over.
const WINDOWS_OFF: u32 = 8;
/// Sub-blocks per analysis window.
const SUB_BLOCKS: usize = 4;
/// The largest window (at 16 kHz).
const MAX_WINDOW: usize = 208;

/// A complex number, just enough of one for the filters' outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Complex {
    re: f32,
    im: f32,
}

impl Complex {
    fn from_angle(theta: f32) -> Self {
        Complex {
            re: theta.cos(),
            im: theta.sin(),
        }
    }
    fn mul(self, o: Complex) -> Complex {
        Complex {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    fn add(self, o: Complex) -> Complex {
        Complex {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    fn conj(self) -> Complex {
        Complex {
            re: self.re,
            im: -self.im,
        }
    }
    fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
    fn arg(self) -> f32 {
        self.im.atan2(self.re)
    }
}

/// The detector's fixed per-frequency constants.
#[derive(Debug, Clone, Copy)]
struct Filter {
    /// Nominal frequency, Hz.
    hz: f32,
    /// Goertzel feedback coefficient 2 cos(w).
    coef: f32,
    /// e^{-iw(S-1)} and e^{-iwS}: turn the Goertzel state into the sub-block's DFT value.
    last: Complex,
    /// e^{-iwS}: moves a sub-block's DFT value one sub-block later.
    shift1: Complex,
    /// e^{-i2wS}: moves a half window's DFT value one half later.
    shift2: Complex,
}

/// A key press in progress.
#[derive(Debug, Clone, Copy)]
struct Press {
    key: (usize, usize),
    /// Start of the first window that held the key, in samples.
    first_window: u64,
    /// Start of the last window that held the key.
    last_window: u64,
    /// Windows since the last that held the key.
    misses: u32,
}

/// An in-band DTMF detector for one stream of 8 or 16 kHz audio.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    sample_rate: u32,
    /// Samples per sub-block.
    sub_block: usize,
    filters: [Filter; 8],
    /// Goertzel state s[n-1], s[n-2] per filter.
    s1: [f32; 8],
    s2: [f32; 8],
    /// Sum of squares of the current sub-block.
    energy: f32,
    /// Samples so far in the current sub-block.
    filled: usize,
    /// The last four sub-blocks' DFT values and energies, oldest at `ring_head`.
    dft: [[Complex; 8]; SUB_BLOCKS],
    energies: [f32; SUB_BLOCKS],
    ring_head: usize,
    /// Sub-blocks completed since the start, up to SUB_BLOCKS.
    sub_blocks_seen: usize,
    /// The last window's samples, oldest at `samples_head` (for the harmonic check).
    samples: [f32; MAX_WINDOW],
    samples_head: usize,
    /// Samples processed since the start.
    position: u64,
    /// The key the latest windows held, since which window start, for how many windows.
    candidate: Option<((usize, usize), u64, u32)>,
    press: Option<Press>,
    events: VecDeque<DtmfEvent>,
    /// Mean power of a 0 dBm0 sine in squared sample units.
    zero_dbm0: f32,
}

impl DtmfDetector {
    /// A detector for audio at `sample_rate` (8,000 or 16,000 Hz).
    pub fn new(sample_rate: u32) -> Result<Self, DtmfDetectError> {
        let sub_block = match sample_rate {
            8_000 => 26,
            16_000 => 52,
            other => return Err(DtmfDetectError::UnsupportedRate(other)),
        };
        let fs = sample_rate as f32;
        let s = sub_block as f32;
        let mut filters = [Filter {
            hz: 0.0,
            coef: 0.0,
            last: Complex::default(),
            shift1: Complex::default(),
            shift2: Complex::default(),
        }; 8];
        for (f, &hz) in filters
            .iter_mut()
            .zip(LOW_GROUP_HZ.iter().chain(&HIGH_GROUP_HZ))
        {
            let w = 2.0 * PI * hz / fs;
            *f = Filter {
                hz,
                coef: 2.0 * w.cos(),
                last: Complex::from_angle(-w * (s - 1.0)),
                shift1: Complex::from_angle(-w * s),
                shift2: Complex::from_angle(-2.0 * w * s),
            };
        }
        let full_scale_sine_power = 32_768.0f32 * 32_768.0 / 2.0;
        Ok(DtmfDetector {
            sample_rate,
            sub_block,
            filters,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            filled: 0,
            dft: [[Complex::default(); 8]; SUB_BLOCKS],
            energies: [0.0; SUB_BLOCKS],
            ring_head: 0,
            sub_blocks_seen: 0,
            samples: [0.0; MAX_WINDOW],
            samples_head: 0,
            position: 0,
            candidate: None,
            press: None,
            events: VecDeque::with_capacity(16),
            zero_dbm0: full_scale_sine_power / db_to_power(FULL_SCALE_SINE_DBM0),
        })
    }

    /// The sample rate this detector takes, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Takes the next stretch of audio; any size, cut anywhere.
    pub fn process(&mut self, pcm: &[i16]) {
        let window = self.sub_block * SUB_BLOCKS;
        for &sample in pcm {
            let x = f32::from(sample);
            self.energy += x * x;
            for k in 0..8 {
                let s0 = x + self.filters[k].coef * self.s1[k] - self.s2[k];
                self.s2[k] = self.s1[k];
                self.s1[k] = s0;
            }
            self.samples[self.samples_head] = x;
            self.samples_head = (self.samples_head + 1) % window;
            self.filled += 1;
            self.position += 1;
            if self.filled == self.sub_block {
                self.end_sub_block();
            }
        }
    }

    /// The next thing seen, oldest first; drain after every `process`.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }

    fn end_sub_block(&mut self) {
        let slot = self.ring_head;
        for k in 0..8 {
            let f = &self.filters[k];
            // Goertzel: s1 - e^{-iw} s2 is the DFT value times e^{iw(S-1)}.
            let s1 = Complex {
                re: self.s1[k],
                im: 0.0,
            };
            let s2 = Complex {
                re: -self.s2[k],
                im: 0.0,
            };
            self.dft[slot][k] = s1.mul(f.last).add(s2.mul(f.shift1));
            self.s1[k] = 0.0;
            self.s2[k] = 0.0;
        }
        self.energies[slot] = self.energy;
        self.energy = 0.0;
        self.filled = 0;
        self.ring_head = (self.ring_head + 1) % SUB_BLOCKS;
        if self.sub_blocks_seen < SUB_BLOCKS {
            self.sub_blocks_seen += 1;
        }
        if self.sub_blocks_seen == SUB_BLOCKS {
            let key = self.classify();
            self.track(key);
        }
    }

    /// Which key, if any, the last window holds.
    fn classify(&self) -> Option<(usize, usize)> {
        let n = (self.sub_block * SUB_BLOCKS) as f32;
        let total: f32 = self.energies.iter().sum::<f32>() / n;
        let min_power = self.zero_dbm0 * db_to_power(MIN_TONE_DBM0);
        if total < min_power {
            return None;
        }
        let mut power = [0.0f32; 8];
        let mut halves = [(Complex::default(), Complex::default()); 8];
        for k in 0..8 {
            // INVARIANT: indices are taken modulo SUB_BLOCKS.
            let y = |q: usize| self.dft[(self.ring_head + q) % SUB_BLOCKS][k];
            let f = &self.filters[k];
            let first = y(0).add(y(1).mul(f.shift1));
            let second = y(2).add(y(3).mul(f.shift1));
            let whole = first.add(second.mul(f.shift2));
            power[k] = 2.0 * whole.norm_sqr() / (n * n);
            halves[k] = (first, second);
        }
        let (row, low) = strongest(&power[..4]);
        let (col, high) = strongest(&power[4..]);
        if low < min_power || high < min_power {
            return None;
        }
        if high > low * db_to_power(REVERSE_TWIST_DB) || high * db_to_power(NORMAL_TWIST_DB) < low {
            return None;
        }
        let margin = db_to_power(GROUP_MARGIN_DB);
        for (group, best) in [(&power[..4], row), (&power[4..], col)] {
            if group
                .iter()
                .enumerate()
                .any(|(i, &p)| i != best && p * margin > group[best])
            {
                return None;
            }
        }
        if low + high < MIN_PURITY * total {
            return None;
        }
        let fs = self.sample_rate as f32;
        for k in [row, 4 + col] {
            let f = &self.filters[k];
            let (first, second) = halves[k];
            // A tone at w + d advances by e^{i(w+d)2S} from one half to the next.
            let turn = second.mul(first.conj()).mul(f.shift2).arg();
            let deviation_hz = turn / (2.0 * self.sub_block as f32) * fs / (2.0 * PI);
            if deviation_hz.abs() > MAX_DEVIATION * f.hz {
                return None;
            }
        }
        let bin_hz = fs / n;
        let harmonic_limit = db_to_power(-HARMONIC_MARGIN_DB);
        let low_hz = LOW_GROUP_HZ[row];
        let high_hz = HIGH_GROUP_HZ[col];
        if (2.0 * low_hz - high_hz).abs() >= 2.0 * bin_hz
            && self.power_at(2.0 * low_hz) > low * harmonic_limit
        {
            return None;
        }
        if self.power_at(2.0 * high_hz) > high * harmonic_limit {
            return None;
        }
        Some((row, col))
    }

    /// The power of the last window at `hz`, by a Goertzel pass over its samples.
    fn power_at(&self, hz: f32) -> f32 {
        let n = self.sub_block * SUB_BLOCKS;
        let w = 2.0 * PI * hz / self.sample_rate as f32;
        let coef = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        // The window is full here (a window ends on a sub-block boundary), so its oldest
        // sample is at the head.
        // INVARIANT: samples_head < n <= MAX_WINDOW.
        for &x in self.samples[self.samples_head..n]
            .iter()
            .chain(&self.samples[..self.samples_head])
        {
            let s0 = x + coef * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let magnitude_sqr = s1 * s1 + s2 * s2 - coef * s1 * s2;
        2.0 * magnitude_sqr / (n as f32 * n as f32)
    }

    /// Runs the press state machine on one window's verdict.
    fn track(&mut self, key: Option<(usize, usize)>) {
        let window_start = self.position - (self.sub_block * SUB_BLOCKS) as u64;
        self.candidate = match (self.candidate, key) {
            (Some((held, since, count)), Some(k)) if held == k => Some((k, since, count + 1)),
            (_, Some(k)) => Some((k, window_start, 1)),
            (_, None) => None,
        };
        if let Some(press) = &mut self.press {
            if key == Some(press.key) {
                press.last_window = window_start;
                press.misses = 0;
            } else {
                press.misses += 1;
                if press.misses >= WINDOWS_OFF {
                    let samples = press.last_window - press.first_window;
                    let (row, col) = press.key;
                    self.events.push_back(DtmfEvent::KeyUp {
                        digit: KEYS[row][col],
                        duration_ms: (samples * 1_000 / u64::from(self.sample_rate)) as u32,
                    });
                    self.press = None;
                }
            }
        }
        if self.press.is_none()
            && let Some((k, since, count)) = self.candidate
            && count >= WINDOWS_ON
        {
            let half_window = (self.sub_block * SUB_BLOCKS / 2) as u64;
            self.press = Some(Press {
                key: k,
                first_window: since,
                last_window: window_start,
                misses: 0,
            });
            self.events.push_back(DtmfEvent::KeyDown {
                digit: KEYS[k.0][k.1],
                start_sample: since + half_window,
            });
        }
    }
}

/// The strongest of `powers`: its index and power.
fn strongest(powers: &[f32]) -> (usize, f32) {
    powers.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

fn db_to_power(db: f32) -> f32 {
    10.0f32.powf(db / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS: &str = "123A456B789C*0#D";

    /// Peak amplitude of a sine at `dbm0`.
    fn amplitude(dbm0: f64) -> f64 {
        32_768.0 * 10f64.powf((dbm0 - FULL_SCALE_SINE_DBM0 as f64) / 20.0)
    }

    fn frequencies(digit: char) -> (f64, f64) {
        for (r, row) in KEYS.iter().enumerate() {
            for (c, &d) in row.iter().enumerate() {
                if d == digit {
                    return (LOW_GROUP_HZ[r] as f64, HIGH_GROUP_HZ[c] as f64);
                }
            }
        }
        panic!("not a key: {digit}");
    }

    /// Appends a key's tone pair: low tone at `dbm0`, high tone `twist_db` louder (negative:
    /// weaker), both frequencies scaled by `1 + deviation`.
    #[allow(clippy::too_many_arguments)]
    fn push_key(
        out: &mut Vec<i16>,
        rate: u32,
        digit: char,
        dbm0: f64,
        twist_db: f64,
        deviation: f64,
        ms: u32,
    ) {
        let (low, high) = frequencies(digit);
        let (a, b) = (amplitude(dbm0), amplitude(dbm0 + twist_db));
        let n = (rate / 1_000 * ms) as usize;
        let tau = 2.0 * std::f64::consts::PI / rate as f64;
        for i in 0..n {
            let t = i as f64 * tau;
            let v = a * (low * (1.0 + deviation) * t).sin()
                + b * (high * (1.0 + deviation) * t + 0.7).sin();
            out.push(v.round().clamp(-32_768.0, 32_767.0) as i16);
        }
    }

    fn push_silence(out: &mut Vec<i16>, rate: u32, ms: u32) {
        out.extend(std::iter::repeat_n(0i16, (rate / 1_000 * ms) as usize));
    }

    fn detect_chunked(rate: u32, pcm: &[i16], chunks: &[usize]) -> Vec<DtmfEvent> {
        let mut det = DtmfDetector::new(rate).unwrap();
        let mut events = Vec::new();
        let mut rest = pcm;
        let mut i = 0;
        while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(rest.len());
            det.process(&rest[..n]);
            while let Some(e) = det.poll_event() {
                events.push(e);
            }
            rest = &rest[n..];
            i += 1;
        }
        events
    }

    fn detect(rate: u32, pcm: &[i16]) -> Vec<DtmfEvent> {
        detect_chunked(rate, pcm, &[160])
    }

    fn digits(events: &[DtmfEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                DtmfEvent::KeyDown { digit, .. } => Some(*digit),
                DtmfEvent::KeyUp { .. } => None,
            })
            .collect()
    }

    /// One key at a time: what the detector makes of it, with silence around.
    fn single(digit: char, dbm0: f64, twist_db: f64, deviation: f64, ms: u32) -> String {
        let mut pcm = Vec::new();
        push_silence(&mut pcm, 8_000, 30);
        push_key(&mut pcm, 8_000, digit, dbm0, twist_db, deviation, ms);
        push_silence(&mut pcm, 8_000, 100);
        digits(&detect(8_000, &pcm))
    }

    #[test]
    fn all_sixteen_keys_once_each_in_order() {
        for rate in [8_000, 16_000] {
            for dbm0 in [-10.0, -25.0] {
                let mut pcm = Vec::new();
                for d in DIGITS.chars() {
                    push_key(&mut pcm, rate, d, dbm0, 0.0, 0.0, 50);
                    push_silence(&mut pcm, rate, 50);
                }
                let events = detect(rate, &pcm);
                assert_eq!(digits(&events), DIGITS, "{rate} Hz, {dbm0} dBm0");
                // Every press also ends, with about its length.
                for e in &events {
                    if let DtmfEvent::KeyUp { duration_ms, .. } = e {
                        assert!(
                            (35..=60).contains(duration_ms),
                            "{rate} Hz, {dbm0} dBm0: {e:?}"
                        );
                    }
                }
                assert_eq!(events.len(), 32, "{events:?}");
            }
        }
    }

    #[test]
    fn keys_start_where_the_tone_starts() {
        let mut pcm = Vec::new();
        push_silence(&mut pcm, 8_000, 123);
        push_key(&mut pcm, 8_000, '5', -10.0, 0.0, 0.0, 60);
        push_silence(&mut pcm, 8_000, 60);
        let events = detect(8_000, &pcm);
        let DtmfEvent::KeyDown { start_sample, .. } = events[0] else {
            panic!("{events:?}")
        };
        assert!(start_sample.abs_diff(984) <= 60, "{start_sample}");
    }

    #[test]
    fn short_tones_are_not_keys_and_long_ones_are() {
        for d in DIGITS.chars() {
            assert_eq!(single(d, -10.0, 0.0, 0.0, 20), "", "{d}, 20 ms");
            assert_eq!(single(d, -10.0, 0.0, 0.0, 22), "", "{d}, 22 ms");
            assert_eq!(single(d, -10.0, 0.0, 0.0, 40), d.to_string(), "{d}, 40 ms");
        }
        // And at every alignment with the sub-blocks.
        for offset in 0..26 {
            let mut pcm = vec![0i16; 200 + offset];
            push_key(&mut pcm, 8_000, '9', -20.0, 0.0, 0.0, 40);
            push_silence(&mut pcm, 8_000, 80);
            push_key(&mut pcm, 8_000, '1', -20.0, 0.0, 0.0, 22);
            push_silence(&mut pcm, 8_000, 80);
            assert_eq!(digits(&detect(8_000, &pcm)), "9", "offset {offset}");
        }
    }

    #[test]
    fn frequency_tolerance() {
        for d in DIGITS.chars() {
            for dev in [-0.015, 0.015] {
                assert_eq!(single(d, -10.0, 0.0, dev, 50), d.to_string(), "{d} {dev}");
            }
            for dev in [-0.04, 0.04, -0.035, 0.035] {
                assert_eq!(single(d, -10.0, 0.0, dev, 50), "", "{d} {dev}");
            }
        }
    }

    #[test]
    fn twist_limits() {
        for d in DIGITS.chars() {
            // Normal twist (high group weaker) to 8 dB, reverse to 4 dB.
            assert_eq!(single(d, -8.0, -6.0, 0.0, 50), d.to_string(), "{d} -6 dB");
            assert_eq!(single(d, -10.0, 3.0, 0.0, 50), d.to_string(), "{d} +3 dB");
            assert_eq!(single(d, -6.0, -10.0, 0.0, 50), "", "{d} -10 dB");
            assert_eq!(single(d, -16.0, 10.0, 0.0, 50), "", "{d} +10 dB");
            assert_eq!(single(d, -14.0, 6.0, 0.0, 50), "", "{d} +6 dB");
        }
    }

    #[test]
    fn too_quiet_is_not_a_key() {
        assert_eq!(single('5', -33.0, 0.0, 0.0, 100), "");
        assert_eq!(single('5', -25.0, 0.0, 0.0, 100), "5");
    }

    /// A small deterministic generator for the noise tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn white_noise_is_not_a_key() {
        let mut rng = Lcg(7);
        for rms_dbm0 in [-30.0, -15.0, 0.0] {
            // Uniform noise of RMS a / sqrt(3).
            let a = amplitude(rms_dbm0) / std::f64::consts::SQRT_2 * 3f64.sqrt();
            let pcm: Vec<i16> = (0..80_000)
                .map(|_| ((rng.next() * 2.0 - 1.0) * a) as i16)
                .collect();
            assert_eq!(digits(&detect(8_000, &pcm)), "", "{rms_dbm0} dBm0");
        }
    }

    /// Ten seconds of a voiced "vowel": the harmonics of a gliding 95-150 Hz fundamental under
    /// three moving formant peaks, with a syllable-rate envelope.
    fn speech_like(rate: u32, seed: u64) -> Vec<i16> {
        let mut rng = Lcg(seed);
        let n = rate as usize * 10;
        let fs = rate as f64;
        let mut phases = [0.0f64; 40];
        let mut out = Vec::with_capacity(n);
        let formant = |f: f64, center: f64, width: f64| {
            1.0 / (1.0 + ((f - center) / width) * ((f - center) / width))
        };
        let (mut f1, mut f2, mut f0_target) = (700.0, 1_200.0, 120.0);
        let mut f0 = 120.0;
        for i in 0..n {
            let t = i as f64 / fs;
            if i % (rate as usize / 5) == 0 {
                // A new syllable every 200 ms: formants and pitch wander.
                f1 = 450.0 + 450.0 * rng.next();
                f2 = 1_000.0 + 1_000.0 * rng.next();
                f0_target = 95.0 + 55.0 * rng.next();
            }
            f0 += (f0_target - f0) * 0.001;
            let envelope = 0.55 - 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).cos();
            let mut v = 0.0;
            for (h, phase) in phases.iter_mut().enumerate() {
                let f = f0 * (h + 1) as f64;
                if f > fs / 2.0 - 200.0 {
                    break;
                }
                *phase += 2.0 * std::f64::consts::PI * f / fs;
                let gain = formant(f, f1, 90.0)
                    + 0.7 * formant(f, f2, 120.0)
                    + 0.3 * formant(f, 2_600.0, 200.0);
                v += gain * phase.sin();
            }
            out.push((v * envelope * 4_000.0).clamp(-32_768.0, 32_767.0) as i16);
        }
        out
    }

    #[test]
    fn speech_is_not_a_key() {
        for seed in 1..=3 {
            let pcm = speech_like(8_000, seed);
            assert_eq!(digits(&detect(8_000, &pcm)), "", "seed {seed}");
        }
        assert_eq!(digits(&detect(16_000, &speech_like(16_000, 9))), "");
    }

    #[test]
    fn a_held_key_is_one_press() {
        let mut pcm = Vec::new();
        push_key(&mut pcm, 8_000, '#', -12.0, -2.0, 0.0, 2_000);
        push_silence(&mut pcm, 8_000, 100);
        let events = detect(8_000, &pcm);
        assert_eq!(digits(&events), "#");
        let Some(DtmfEvent::KeyUp { duration_ms, .. }) = events.last() else {
            panic!("{events:?}")
        };
        assert!(duration_ms.abs_diff(2_000) <= 10, "{duration_ms}");
    }

    #[test]
    fn a_pause_separates_presses_of_one_key() {
        for gap_ms in [40, 50] {
            let mut pcm = Vec::new();
            push_key(&mut pcm, 8_000, '7', -10.0, 0.0, 0.0, 60);
            push_silence(&mut pcm, 8_000, gap_ms);
            push_key(&mut pcm, 8_000, '7', -10.0, 0.0, 0.0, 60);
            push_silence(&mut pcm, 8_000, 100);
            assert_eq!(digits(&detect(8_000, &pcm)), "77", "{gap_ms} ms");
        }
        // A 10 ms break is not a pause.
        let mut pcm = Vec::new();
        push_key(&mut pcm, 8_000, '7', -10.0, 0.0, 0.0, 60);
        push_silence(&mut pcm, 8_000, 10);
        push_key(&mut pcm, 8_000, '7', -10.0, 0.0, 0.0, 60);
        push_silence(&mut pcm, 8_000, 100);
        assert_eq!(digits(&detect(8_000, &pcm)), "7");
    }

    #[test]
    fn chunking_does_not_matter() {
        let mut pcm = Vec::new();
        for d in "159D*#".chars() {
            push_key(&mut pcm, 8_000, d, -15.0, -3.0, 0.0, 45);
            push_silence(&mut pcm, 8_000, 45);
        }
        let whole = detect_chunked(8_000, &pcm, &[pcm.len()]);
        assert_eq!(digits(&whole), "159D*#");
        for chunks in [&[160][..], &[37], &[1], &[500], &[160, 37, 1, 500]] {
            assert_eq!(detect_chunked(8_000, &pcm, chunks), whole, "{chunks:?}");
        }
    }

    #[test]
    fn other_rates_are_refused() {
        assert_eq!(
            DtmfDetector::new(48_000).unwrap_err(),
            DtmfDetectError::UnsupportedRate(48_000)
        );
    }
}
