//! Packet loss concealment for waveform codecs (G.711, G.722), after the method of ITU-T G.711
//! Appendix I: repeat the last pitch periods of the signal.
//!
//! A [`Concealer`] sits behind a decoder at the decoder's rate (8 or 16 kHz). Every decoded
//! frame goes through [`Concealer::good_frame`]; every lost one is replaced by
//! [`Concealer::conceal`]. Lengths below are given at 8 kHz and double at 16 kHz.
//!
//! - **History.** The concealer keeps the last 48.75 ms (390 samples) of the signal: three
//!   periods of the longest pitch it looks for plus a quarter period.
//! - **Delay.** Output is delayed by 3.75 ms (30 samples, a quarter of the longest pitch
//!   period), as in Appendix I: when a loss starts, the last quarter period before it has not
//!   been played yet and can be blended. Every frame a decoder outputs is therefore the audio
//!   of 3.75 ms earlier; the length of the output is unchanged.
//! - **Loss start.** The pitch period is the lag of 5..15 ms (40..=120 samples) that maximizes
//!   the cross-correlation of the last 20 ms with the signal one lag earlier, normalized by the
//!   energy of the earlier segment. The last quarter period before the loss is cross-faded
//!   into the quarter period one pitch period earlier, so that looping the last period has no
//!   seam, neither where it starts nor where it wraps.
//! - **During the loss.** The first 10 ms repeat the last period; from 10 ms on the loop covers
//!   the last two periods, from 20 ms on the last three (less buzzy over long losses), each
//!   change cross-faded over a quarter period. From 10 ms on the signal is attenuated linearly
//!   by 20 % per 10 ms, so it is silent from 60 ms after the first lost sample on.
//! - **Loss end.** The first good samples are cross-faded from the continued concealment into
//!   the real signal over 4 ms for each started 10 ms of loss, at most 10 ms (Appendix I
//!   starts from a quarter period; this uses 4 ms).
//!
//! The concealed signal also goes into the history, so a second loss shortly after the first
//! starts from what the listener heard.

/// Why a concealer cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlcError {
    /// Concealment runs at 8 or 16 kHz only.
    #[error("no concealment at {0} Hz (8,000 or 16,000 only)")]
    SampleRate(u32),
}

/// History length at 8 kHz: 48.75 ms.
const HISTORY_8K: usize = 390;
/// Output delay at 8 kHz: 3.75 ms, a quarter of the longest pitch period.
const DELAY_8K: usize = 30;
/// Shortest pitch period searched at 8 kHz: 5 ms (a 200 Hz fundamental).
const PITCH_MIN_8K: usize = 40;
/// Longest pitch period searched at 8 kHz: 15 ms (66.7 Hz).
const PITCH_MAX_8K: usize = 120;
/// Length of the correlation window of the pitch search at 8 kHz: 20 ms.
const CORR_LEN_8K: usize = 160;
/// 10 ms at 8 kHz: the unit of the loss schedule.
const MS10_8K: usize = 80;
/// 4 ms at 8 kHz: the end-of-loss cross-fade per 10 ms of loss.
const MS4_8K: usize = 32;
/// The largest overlap (a quarter of the longest period) at the highest rate.
const MAX_OVERLAP: usize = 2 * PITCH_MAX_8K / 4;

/// Where the concealer is in a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Good frames, no loss to recover from.
    Clear,
    /// Frames are being concealed.
    Lost,
    /// Good frames again; the concealment is being cross-faded out (`pos` of `len` samples).
    Recovering { pos: usize, len: usize },
}

/// Cross-fades sample `i` of `len` from `from` to `to` (triangular windows that never reach
/// 0 or 1, as in Appendix I's overlap-add).
#[inline]
fn overlap_add(from: i16, to: i16, i: usize, len: usize) -> i16 {
    let len = len as i64 + 1;
    let w = i as i64 + 1;
    ((from as i64 * (len - w) + to as i64 * w) / len) as i16
}

/// The periodic synthesis of one loss.
#[derive(Debug, Clone)]
struct Synth {
    /// The pitch buffer: the last `3 * period + overlap` samples before the loss (first
    /// `len`), its last `overlap` samples blended for the current loop length.
    buf: Vec<i16>,
    /// Used length of `buf`.
    len: usize,
    /// The real samples the blend at the end of `buf` replaced.
    tail: [i16; MAX_OVERLAP],
    /// The old loop's continuation while switching loop length.
    fade: [i16; MAX_OVERLAP],
    /// Samples of `fade` still to cross-fade.
    fade_left: usize,
    /// The pitch period, in samples.
    period: usize,
    /// A quarter period: the overlap-add length.
    overlap: usize,
    /// Periods in the loop: 1, 2 or 3.
    periods: usize,
    /// Position in the loop.
    phase: usize,
    /// Samples synthesized since the loss started.
    elapsed: usize,
}

impl Synth {
    fn new(history_len: usize) -> Self {
        Synth {
            buf: vec![0; history_len],
            len: 0,
            tail: [0; MAX_OVERLAP],
            fade: [0; MAX_OVERLAP],
            fade_left: 0,
            period: PITCH_MAX_8K,
            overlap: 0,
            periods: 1,
            phase: 0,
            elapsed: 0,
        }
    }

    /// Starts a loss after `history`; blends the end of `history` in place (those samples
    /// have not been output yet).
    fn start(&mut self, history: &mut [i16], scale: usize) {
        let period = pitch_period(history, scale);
        let overlap = period / 4;
        let len = 3 * period + overlap;
        let h = history.len();
        // INVARIANT: period <= PITCH_MAX, so len <= 3 * PITCH_MAX + PITCH_MAX / 4 = the history
        // length = buf.len(); overlap <= MAX_OVERLAP.
        self.buf[..len].copy_from_slice(&history[h - len..]);
        self.tail[..overlap].copy_from_slice(&history[h - overlap..]);
        self.len = len;
        self.period = period;
        self.overlap = overlap;
        self.periods = 1;
        self.phase = 0;
        self.elapsed = 0;
        self.fade_left = 0;
        self.blend_tail();
        // The blended tail is what will be played before the first synthetic sample.
        history[h - overlap..].copy_from_slice(&self.buf[len - overlap..len]);
    }

    /// Cross-fades the real tail of the pitch buffer into the samples just before the start
    /// of the loop, so that the loop's wrap (and the loss start) is seamless.
    fn blend_tail(&mut self) {
        let (len, q) = (self.len, self.overlap);
        let before = len - self.periods * self.period - q;
        for i in 0..q {
            // INVARIANT: before + q <= len - periods * period <= len - q since period >= q.
            self.buf[len - q + i] = overlap_add(self.tail[i], self.buf[before + i], i, q);
        }
    }

    fn loop_start(&self) -> usize {
        self.len - self.periods * self.period
    }

    /// Lengthens the loop to `periods` periods, keeping the read position in the buffer.
    fn extend(&mut self, periods: usize) {
        let span = self.periods * self.period;
        let start = self.loop_start();
        for i in 0..self.overlap {
            // INVARIANT: the index is below start + span = len; i < overlap <= fade.len().
            self.fade[i] = self.buf[start + (self.phase + i) % span];
        }
        self.phase += (periods - self.periods) * self.period;
        self.periods = periods;
        self.blend_tail();
        self.fade_left = self.overlap;
    }

    /// The next concealment sample.
    fn next(&mut self, scale: usize) -> i16 {
        let ms10 = MS10_8K * scale;
        if self.elapsed == ms10 && self.periods < 2 {
            self.extend(2);
        } else if self.elapsed == 2 * ms10 && self.periods < 3 {
            self.extend(3);
        }
        let span = self.periods * self.period;
        // INVARIANT: phase < span, so the index is below len.
        let mut v = self.buf[self.loop_start() + self.phase];
        self.phase += 1;
        if self.phase == span {
            self.phase = 0;
        }
        if self.fade_left > 0 {
            // INVARIANT: fade_left <= overlap <= MAX_OVERLAP = fade.len().
            let i = self.overlap - self.fade_left;
            v = overlap_add(self.fade[i], v, i, self.overlap);
            self.fade_left -= 1;
        }
        let e = self.elapsed;
        self.elapsed = self.elapsed.saturating_add(1);
        if e < ms10 {
            v
        } else if e >= 6 * ms10 {
            0
        } else {
            // Linear from 1 at 10 ms to 0 at 60 ms.
            ((v as i64 * (6 * ms10 - e) as i64) / (5 * ms10) as i64) as i16
        }
    }
}

/// The pitch period (in samples) at the end of `history`: the lag in 5..=15 ms maximizing the
/// normalized cross-correlation of the last 20 ms with the 20 ms one lag earlier. Silence
/// gives the longest lag.
fn pitch_period(history: &[i16], scale: usize) -> usize {
    let (min, max, corr) = (
        PITCH_MIN_8K * scale,
        PITCH_MAX_8K * scale,
        CORR_LEN_8K * scale,
    );
    let n = history.len();
    // INVARIANT: history holds HISTORY = 390 * scale >= corr + max = 280 * scale samples.
    let recent = &history[n - corr..];
    let mut best = max;
    let mut best_score = 0.0f64;
    for lag in min..=max {
        let earlier = &history[n - corr - lag..n - lag];
        let (mut xy, mut yy) = (0i64, 0i64);
        for (&x, &y) in recent.iter().zip(earlier) {
            xy += x as i64 * y as i64;
            yy += y as i64 * y as i64;
        }
        if yy == 0 {
            continue;
        }
        let score = xy as f64 / (yy as f64).sqrt();
        if score > best_score {
            best_score = score;
            best = lag;
        }
    }
    best
}

/// Packet loss concealment by pitch-period repetition (G.711 Appendix I) at 8 or 16 kHz. See
/// the module documentation; output is delayed by [`Concealer::delay_samples`].
#[derive(Debug, Clone)]
pub struct Concealer {
    /// 1 at 8 kHz, 2 at 16 kHz.
    scale: usize,
    /// The last samples of the signal, oldest first; the last `delay` have not been output.
    history: Vec<i16>,
    state: State,
    synth: Synth,
}

impl Concealer {
    /// A concealer for `sample_rate_hz` (8,000 or 16,000).
    pub fn new(sample_rate_hz: u32) -> Result<Self, PlcError> {
        match sample_rate_hz {
            8_000 => Ok(Self::with_scale(1)),
            16_000 => Ok(Self::with_scale(2)),
            other => Err(PlcError::SampleRate(other)),
        }
    }

    /// A concealer at 8 kHz (G.711).
    pub fn narrowband() -> Self {
        Self::with_scale(1)
    }

    /// A concealer at 16 kHz (G.722).
    pub fn wideband() -> Self {
        Self::with_scale(2)
    }

    fn with_scale(scale: usize) -> Self {
        Concealer {
            scale,
            history: vec![0; HISTORY_8K * scale],
            state: State::Clear,
            synth: Synth::new(HISTORY_8K * scale),
        }
    }

    /// The sample rate, in Hz.
    pub fn sample_rate(&self) -> u32 {
        8_000 * self.scale as u32
    }

    /// The fixed delay from input to output, in samples (3.75 ms).
    pub fn delay_samples(&self) -> usize {
        DELAY_8K * self.scale
    }

    /// Whether the last call was [`Concealer::conceal`] (a loss is in progress).
    pub fn is_concealing(&self) -> bool {
        self.state == State::Lost
    }

    /// The signal history, oldest first, ending with the newest sample taken in (not yet
    /// output).
    pub fn recent(&self) -> &[i16] {
        &self.history
    }

    /// The most samples one pass through the delay line takes.
    fn chunk_len(&self) -> usize {
        self.history.len() - self.delay_samples()
    }

    /// Takes a decoded frame and replaces it, in place, by the output: the signal delayed by
    /// [`Concealer::delay_samples`], cross-faded out of a concealment that just ended.
    pub fn good_frame(&mut self, pcm: &mut [i16]) {
        let chunk_len = self.chunk_len();
        // INVARIANT: chunk_len = 360 or 720, never 0.
        for chunk in pcm.chunks_mut(chunk_len) {
            self.good_chunk(chunk);
        }
    }

    fn good_chunk(&mut self, chunk: &mut [i16]) {
        if self.state == State::Lost {
            let ms10 = MS10_8K * self.scale;
            let tens = self.synth.elapsed.div_ceil(ms10).max(1);
            let len = (tens * MS4_8K * self.scale).min(ms10);
            self.state = State::Recovering { pos: 0, len };
        }
        if let State::Recovering { pos, len } = &mut self.state {
            for s in chunk.iter_mut() {
                if *pos >= *len {
                    break;
                }
                *s = overlap_add(self.synth.next(self.scale), *s, *pos, *len);
                *pos += 1;
            }
            if *pos >= *len {
                self.state = State::Clear;
            }
        }
        self.delay(chunk);
    }

    /// Appends `samples` samples of concealment to `out` (delayed like every output).
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.conceal_with(samples, out, |_| {});
    }

    /// Like [`Concealer::conceal`], and hands each run of synthesized samples (undelayed, in
    /// order) to `synthesized`, e.g. to keep a decoder's state following the concealment.
    pub fn conceal_with(
        &mut self,
        samples: usize,
        out: &mut Vec<i16>,
        mut synthesized: impl FnMut(&[i16]),
    ) {
        if samples == 0 {
            return;
        }
        if self.state != State::Lost {
            self.synth.start(&mut self.history, self.scale);
            self.state = State::Lost;
        }
        out.reserve(samples);
        let chunk_len = self.chunk_len();
        let mut left = samples;
        while left > 0 {
            let n = left.min(chunk_len);
            let start = out.len();
            for _ in 0..n {
                out.push(self.synth.next(self.scale));
            }
            synthesized(&out[start..]);
            self.delay(&mut out[start..]);
            left -= n;
        }
    }

    /// Pushes `chunk` into the history and replaces it by the samples `delay` earlier.
    fn delay(&mut self, chunk: &mut [i16]) {
        let n = chunk.len();
        let h = self.history.len();
        let d = self.delay_samples();
        // INVARIANT: callers pass at most chunk_len() = h - d samples.
        self.history.copy_within(n.., 0);
        self.history[h - n..].copy_from_slice(chunk);
        chunk.copy_from_slice(&self.history[h - d - n..h - d]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voiced-like signal at `rate`: a fundamental (drifting linearly from `f0` to `f1`
    /// over one second) with harmonics up to 3.5 kHz at 1/k amplitude.
    fn voiced(rate: usize, f0: f64, f1: f64, len: usize) -> Vec<i16> {
        voiced_up_to(3_500.0, rate, f0, f1, len)
    }

    /// Like [`voiced`], with harmonics up to `top_hz`.
    fn voiced_up_to(top_hz: f64, rate: usize, f0: f64, f1: f64, len: usize) -> Vec<i16> {
        let mut phase = 0.0f64;
        (0..len)
            .map(|n| {
                let t = n as f64 / rate as f64;
                let f = f0 + (f1 - f0) * t;
                phase += 2.0 * std::f64::consts::PI * f / rate as f64;
                let harmonics = (top_hz / f) as usize;
                let v: f64 = (1..=harmonics)
                    .map(|k| (k as f64 * phase + k as f64).sin() / k as f64)
                    .sum();
                (5_000.0 * v).round() as i16
            })
            .collect()
    }

    /// Runs `pcm` through a concealer in 20 ms frames, losing the frames in `lost`.
    fn run(concealer: &mut Concealer, pcm: &[i16], lost: &[usize]) -> Vec<i16> {
        let frame = concealer.sample_rate() as usize / 50;
        let mut out = Vec::with_capacity(pcm.len());
        for (i, chunk) in pcm.chunks(frame).enumerate() {
            if lost.contains(&i) {
                concealer.conceal(chunk.len(), &mut out);
            } else {
                let start = out.len();
                out.extend_from_slice(chunk);
                concealer.good_frame(&mut out[start..]);
            }
        }
        out
    }

    /// Normalized correlation of `a` with `b`, best over shifts of `b` by -`max`..=`max`.
    fn best_correlation(a: &[i16], b: &[i16], start: usize, len: usize, max: usize) -> f64 {
        (start - max..=start + max)
            .map(|s| {
                let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
                for i in 0..len {
                    let (x, y) = (a[start + i] as f64, b[s + i] as f64);
                    ab += x * y;
                    aa += x * x;
                    bb += y * y;
                }
                ab / (aa * bb).sqrt().max(1.0)
            })
            .fold(f64::MIN, f64::max)
    }

    fn max_jump(s: &[i16]) -> i32 {
        s.windows(2)
            .map(|w| (w[1] as i32 - w[0] as i32).abs())
            .max()
            .unwrap_or(0)
    }

    /// The largest second difference: a step or kink shows here first.
    fn max_jump2(s: &[i16]) -> i32 {
        s.windows(3)
            .map(|w| (w[2] as i32 - 2 * w[1] as i32 + w[0] as i32).abs())
            .max()
            .unwrap_or(0)
    }

    /// One lost 20 ms frame of a voiced signal: the concealment correlates with the truth and
    /// adds no click at either boundary.
    fn check_one_lost_frame(rate: usize, f0: f64, f1: f64) {
        check_one_lost_frame_of(&voiced(rate, f0, f1, rate), rate, 0.8);
    }

    /// One lost 20 ms frame of `pcm`: the concealment correlates with the truth better than
    /// `min_correlation` and adds no click at either boundary.
    fn check_one_lost_frame_of(pcm: &[i16], rate: usize, min_correlation: f64) {
        let mut concealer = Concealer::new(rate as u32).unwrap();
        let frame = rate / 50;
        let lost = 10;
        let out = run(&mut concealer, pcm, &[lost]);
        assert_eq!(out.len(), pcm.len());
        let d = concealer.delay_samples();
        // The truth, delayed like the output.
        let truth: Vec<i16> = std::iter::repeat_n(0, d)
            .chain(pcm.iter().copied())
            .collect();
        let start = lost * frame + d;
        let c = best_correlation(&out, &truth, start, frame, rate / 1_000);
        let own = max_jump(&truth[frame..]);
        let around = max_jump(&out[start - frame / 2..start + 2 * frame]);
        eprintln!("{rate} Hz: correlation {c:.3}, max jump {around} (signal's own {own})");
        assert!(c > min_correlation, "correlation {c:.3}");
        assert!(around as f64 <= 1.2 * own as f64, "{around} vs {own}");
        let own2 = max_jump2(&truth[frame..]);
        let around2 = max_jump2(&out[start - frame / 2..start + 2 * frame]);
        assert!(around2 as f64 <= 1.2 * own2 as f64, "{around2} vs {own2}");
        // Away from the loss, the output is the input, delayed.
        let after = start + 2 * frame;
        assert_eq!(out[after..], truth[after..pcm.len()]);
        assert_eq!(out[..start - d], truth[..start - d]);
    }

    #[test]
    fn one_lost_frame_of_a_steady_200hz_voice_at_8khz() {
        check_one_lost_frame(8_000, 200.0, 200.0);
    }

    #[test]
    fn one_lost_frame_of_a_steady_200hz_voice_at_16khz() {
        check_one_lost_frame(16_000, 200.0, 200.0);
    }

    #[test]
    fn one_lost_frame_of_a_drifting_low_voice() {
        check_one_lost_frame(8_000, 110.0, 140.0);
        check_one_lost_frame(16_000, 110.0, 140.0);
    }

    /// A smooth voice with an inharmonic partial, which repeating pitch periods cannot
    /// continue in phase: without the overlap-adds, the loop's wraps and the loss's end would
    /// step.
    #[test]
    fn one_lost_frame_of_a_smooth_voice_has_no_seam() {
        for (rate, f0, f1) in [
            (8_000, 200.0, 200.0),
            (8_000, 120.0, 135.0),
            (16_000, 150.0, 170.0),
        ] {
            let mut pcm = voiced_up_to(1_000.0, rate, f0, f1, rate);
            for (n, s) in pcm.iter_mut().enumerate() {
                let t = n as f64 / rate as f64;
                *s += (3_000.0 * (2.0 * std::f64::consts::PI * 1_130.0 * t).sin()) as i16;
            }
            // Not voiced: the partial cannot be predicted from the pitch, so a lower bound.
            check_one_lost_frame_of(&pcm, rate, 0.6);
        }
    }

    #[test]
    fn the_pitch_search_finds_the_period() {
        for (rate, f, want) in [(8_000, 100.0, 80), (8_000, 160.0, 50), (16_000, 125.0, 128)] {
            let pcm = voiced(rate, f, f, HISTORY_8K * 2 * rate / 8_000);
            let h = &pcm[pcm.len() - HISTORY_8K * rate / 8_000..];
            assert_eq!(pitch_period(h, rate / 8_000), want, "{f} Hz at {rate}");
        }
    }

    #[test]
    fn a_long_loss_fades_to_silence_by_60ms() {
        for rate in [8_000usize, 16_000] {
            let mut concealer = Concealer::new(rate as u32).unwrap();
            let ms = rate / 1_000;
            let pcm = voiced(rate, 200.0, 200.0, rate / 5);
            run(&mut concealer, &pcm, &[]);
            let mut out = Vec::new();
            concealer.conceal(100 * ms, &mut out);
            let d = concealer.delay_samples();
            // Concealed sample k is output at d + k.
            let energy = |from_ms: usize, to_ms: usize| -> f64 {
                out[d + from_ms * ms..d + to_ms * ms]
                    .iter()
                    .map(|&s| (s as f64).powi(2))
                    .sum::<f64>()
            };
            let tens: Vec<f64> = (0..6).map(|i| energy(10 * i, 10 * i + 10)).collect();
            assert!(tens[0] > 0.0);
            for w in tens[1..].windows(2) {
                assert!(w[1] < w[0], "{tens:?}");
            }
            assert!(out[d + 60 * ms..].iter().all(|&s| s == 0));
            // The end of a loss that had gone silent fades in without a click.
            let mut next = pcm[..20 * ms].to_vec();
            concealer.good_frame(&mut next);
            let jump = max_jump(&next);
            assert!(jump <= max_jump(&pcm), "{jump}");
            assert!(next[d].unsigned_abs() < 3_000, "{}", next[d]);
        }
    }

    #[test]
    fn recovery_crossfade_grows_with_the_loss() {
        let mut concealer = Concealer::narrowband();
        let cases = [(80, 32), (160, 64), (240, 80), (800, 80), (40, 32)];
        for (lost, want) in cases {
            let mut out = Vec::new();
            concealer.conceal(lost, &mut out);
            concealer.good_frame(&mut [0i16; 8]);
            assert_eq!(concealer.state, State::Recovering { pos: 8, len: want });
            concealer.good_frame(&mut [0i16; 160]);
            assert_eq!(concealer.state, State::Clear);
        }
    }

    #[test]
    fn good_frames_pass_through_delayed() {
        for rate in [8_000u32, 16_000] {
            let mut concealer = Concealer::new(rate).unwrap();
            let d = concealer.delay_samples();
            assert_eq!(d as u32 * 1_000_000 / rate, 3_750);
            let pcm: Vec<i16> = (0..5_000).map(|n| (n * 7 % 2_000) as i16).collect();
            let mut out = Vec::new();
            // Frame sizes from 1 sample to longer than the history.
            for chunk in pcm.chunks(997).flat_map(|c| c.chunks(333)) {
                let start = out.len();
                out.extend_from_slice(chunk);
                concealer.good_frame(&mut out[start..]);
            }
            assert!(out[..d].iter().all(|&s| s == 0));
            assert_eq!(out[d..], pcm[..pcm.len() - d]);
        }
    }

    #[test]
    fn concealment_without_history_is_silence() {
        for mut concealer in [Concealer::narrowband(), Concealer::wideband()] {
            let mut out = Vec::new();
            concealer.conceal(0, &mut out);
            assert!(out.is_empty() && !concealer.is_concealing());
            concealer.conceal(1, &mut out);
            concealer.conceal(2_000, &mut out);
            assert_eq!(out.len(), 2_001);
            assert!(out.iter().all(|&s| s == 0));
            concealer.good_frame(&mut []);
            concealer.good_frame(&mut [100i16; 7]);
        }
    }

    #[test]
    fn only_8_and_16_khz() {
        assert_eq!(
            Concealer::new(48_000).unwrap_err(),
            PlcError::SampleRate(48_000)
        );
        assert_eq!(Concealer::new(8_000).unwrap().sample_rate(), 8_000);
    }

    #[test]
    fn random_schedules_never_panic() {
        let mut seed = 0x8BAD_F00Du32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for mut concealer in [Concealer::narrowband(), Concealer::wideband()] {
            let mut out = Vec::new();
            let mut total = 0;
            for _ in 0..2_000 {
                let n = (next() % 1_200) as usize;
                if next() % 3 == 0 {
                    concealer.conceal(n, &mut out);
                } else {
                    let start = out.len();
                    out.extend((0..n).map(|_| next() as i16));
                    concealer.good_frame(&mut out[start..]);
                }
                total += n;
                assert_eq!(out.len(), total);
                out.clear();
                total = 0;
            }
        }
    }
}
