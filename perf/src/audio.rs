//! What callers hear: each talker of a conference plays bursts of a tone of its own, every
//! checked caller's leg watches for all the tones (the engine's tone probe), and each burst
//! heard is matched to the burst the talker sent. Conferences take their tones in turn from
//! [`TONES_HZ`] ([`tone_of`]), so neighbouring conferences never share one.
//!
//! From that: whether each listener hears every talker it should, never itself and never
//! another conference's talkers, and the mouth-to-ear delay through the server (burst onset
//! heard minus the tick that sent the burst's first frame, both on the generator's clock).

use std::sync::Arc;
use std::time::{Duration, Instant};

/// The talkers' tones, Hz: at least 100 Hz apart, no one twice another, none within 4% of a
/// DTMF frequency (so a mix of them is never a key), at least 100 Hz from the server's join,
/// leave and recording tones (440, 660, 1000 Hz), all under G.711's 3.4 kHz.
pub const TONES_HZ: [f32; 12] = [
    310.0, 540.0, 1_130.0, 1_750.0, 1_900.0, 2_050.0, 2_230.0, 2_350.0, 2_500.0, 2_650.0, 2_800.0,
    2_950.0,
];

/// A burst lasts this long, then as long of silence.
pub const BURST: Duration = Duration::from_secs(1);

/// An onset later than this after its burst was sent is not that burst's.
const MATCH_WINDOW: Duration = Duration::from_millis(900);

/// The index in [`TONES_HZ`] of the tone of talker `slot` in conference number `conference`
/// (counted from 0) of a run with `talkers` talkers per conference: conference `n` starts
/// where conference `n - 1` stopped, so a mix leaking into the next conferences carries
/// tones their callers do not expect (with 3 talkers, four conferences in a row use
/// different tones).
pub fn tone_of(conference: u64, talkers: usize, slot: usize) -> usize {
    let n = TONES_HZ.len() as u64;
    ((conference * talkers as u64 % n) as usize + slot) % TONES_HZ.len()
}

/// The talker slot whose tone is `tone` in that conference, if one of its talkers has it.
pub fn slot_of(conference: u64, talkers: usize, tone: usize) -> Option<usize> {
    let n = TONES_HZ.len();
    let first = tone_of(conference, talkers, 0);
    let slot = (tone + n - first) % n;
    (slot < talkers).then_some(slot)
}

/// The signal of tone `k` of [`TONES_HZ`]: `BURST` of it, then as long of silence, 16 kHz.
pub fn talker_signal(k: usize) -> Arc<[i16]> {
    let freq = f64::from(TONES_HZ[k % TONES_HZ.len()]);
    let burst = (16.0 * BURST.as_millis() as f64) as usize;
    (0..2 * burst)
        .map(|n| {
            if n < burst {
                (8_000.0 * (std::f64::consts::TAU * freq * n as f64 / 16_000.0).sin()) as i16
            } else {
                0
            }
        })
        .collect()
}

/// What one checked caller heard of its conference's talkers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hearing {
    /// Per talker slot: bursts heard that the talker sent once both were settled.
    pub heard: Vec<u32>,
    /// Per talker slot: bursts the talker sent while both were settled (the last second of
    /// the shorter call left out). Zero for the caller's own slot.
    pub expected: Vec<u32>,
    /// Bursts of its own it heard back once settled (the server must never send a caller
    /// itself).
    pub self_heard: u32,
    /// Onsets that match no burst the talker sent in the window before.
    pub unmatched: u32,
    /// Onsets, once settled, of tones no talker of its conference plays: another
    /// conference's audio reaching it.
    pub foreign: u32,
    /// Mouth-to-ear delay of each matched burst, ms.
    pub delays_ms: Vec<f32>,
}

impl Hearing {
    /// A record for a caller in a conference with `talkers` talkers.
    pub fn new(talkers: usize) -> Self {
        Hearing {
            heard: vec![0; talkers],
            expected: vec![0; talkers],
            ..Hearing::default()
        }
    }

    /// Talker slots this caller missed: fewer bursts heard than expected, beyond one or a
    /// tenth (a burst lost at a join or a leg move).
    pub fn missing(&self) -> Vec<usize> {
        (self.expected.iter().zip(&self.heard).enumerate())
            .filter(|&(_, (&want, &got))| {
                let slack = (want / 10).max(1);
                want >= 2 && got + slack < want
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// It heard itself: its own bursts came back more than once (one could be a prompt's
    /// vowel taken for its tone; a server that echoes does it on every burst).
    pub fn hears_itself(&self) -> bool {
        self.self_heard >= 2
    }

    /// It heard another conference: its talkers' tones came through more than twice (one or
    /// two could be speech in a prompt taken for a tone).
    pub fn hears_other_conferences(&self) -> bool {
        self.foreign >= 3
    }

    /// The median delay, ms.
    pub fn median_delay_ms(&self) -> Option<f64> {
        let mut v = self.delays_ms.clone();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).map(|&d| f64::from(d))
    }
}

/// One burst onset heard: matches it to the talker's burst and books it. `bursts` are the
/// talker's burst starts (in order); `settled` is when both callers were in the conference.
pub fn book_onset(
    hearing: &mut Hearing,
    own_slot: Option<usize>,
    slot: usize,
    at: Instant,
    bursts: &[Instant],
    settled: Instant,
) -> Option<Duration> {
    // Before both were settled the listener may still be in the IVR: its prompts are speech,
    // not bursts (a vowel can hold a tone for a few frames), and the talker may not be mixed.
    if at < settled {
        return None;
    }
    let sent = bursts.partition_point(|&b| b <= at);
    let Some(&start) = sent.checked_sub(1).and_then(|i| bursts.get(i)) else {
        hearing.unmatched += 1;
        return None;
    };
    let delay = at - start;
    if delay > MATCH_WINDOW {
        hearing.unmatched += 1;
        return None;
    }
    // Its own tone, in step with its own bursts: the server sent it back its own voice.
    if own_slot == Some(slot) {
        hearing.self_heard += 1;
        return None;
    }
    // A burst sent before then may have reached the conference only in part.
    if start < settled {
        return None;
    }
    hearing.delays_ms.push(delay.as_secs_f32() * 1000.0);
    if let Some(n) = hearing.heard.get_mut(slot) {
        *n += 1;
    }
    Some(delay)
}

/// Bursts in `bursts` a listener should have heard between `from` and `to` (the last second
/// before `to` left out: a burst sent then may arrive after the hang-up).
pub fn expected_bursts(bursts: &[Instant], from: Instant, to: Instant) -> u32 {
    let Some(to) = to.checked_sub(Duration::from_secs(1)) else {
        return 0;
    };
    bursts.iter().filter(|&&b| b >= from && b <= to).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_match_the_burst_before_them_and_count_once_settled() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let bursts = [s(0), s(2_000), s(4_000), s(6_000)];
        let mut h = Hearing::new(3);
        // Before the listener settled (at 1.5 s): not booked.
        assert_eq!(
            book_onset(&mut h, Some(0), 1, s(60), &bursts, s(1_500)),
            None
        );
        assert_eq!(h.heard, vec![0, 0, 0]);
        for at in [2_045, 4_050, 6_040] {
            book_onset(&mut h, Some(0), 1, s(at), &bursts, s(1_500));
        }
        assert_eq!(h.heard, vec![0, 3, 0]);
        assert_eq!(h.delays_ms.len(), 3);
        assert_eq!(h.median_delay_ms().map(|d| d.round()), Some(45.0));
        // Its own tone before it settled is not booked (IVR prompts are speech).
        book_onset(&mut h, Some(0), 0, s(1_000), &bursts, s(1_500));
        assert_eq!(h.self_heard, 0);
        // Its own tone in step with its bursts, and a tone long after any burst.
        book_onset(&mut h, Some(0), 0, s(2_100), &bursts, s(1_500));
        book_onset(&mut h, Some(0), 2, s(7_500), &bursts, s(1_500));
        assert_eq!((h.self_heard, h.unmatched), (1, 1));
        assert!(!h.hears_itself());
        book_onset(&mut h, Some(0), 0, s(4_080), &bursts, s(1_500));
        assert!(h.hears_itself());
        // Expected: the bursts from 1.5 s to a second before the end at 7 s.
        h.expected = vec![0, expected_bursts(&bursts, s(1_500), s(7_000)), 3];
        assert_eq!(h.expected[1], 3);
        // Talker 2 was expected three times and never heard.
        assert_eq!(h.missing(), vec![2]);
    }

    #[test]
    fn conferences_take_their_tones_in_turn() {
        // Three talkers: conferences 0-3 use tones 0-2, 3-5, 6-8, 9-11; 4 starts over.
        assert_eq!(
            (0..3).map(|k| tone_of(1, 3, k)).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(tone_of(4, 3, 0), 0);
        assert_eq!(slot_of(1, 3, 5), Some(2));
        assert_eq!(slot_of(1, 3, 2), None, "conference 0's talker 2");
        // Five talkers wrap around the twelve tones.
        assert_eq!(tone_of(2, 5, 3), 1);
        assert_eq!(slot_of(2, 5, 1), Some(3));
        for c in 0..20 {
            for k in 0..3 {
                assert_eq!(slot_of(c, 3, tone_of(c, 3, k)), Some(k));
            }
        }
    }

    #[test]
    fn the_tones_are_apart_and_off_the_dtmf_frequencies() {
        let dtmf = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
        let server_tones = [440.0, 660.0, 1_000.0];
        for (i, &f) in TONES_HZ.iter().enumerate() {
            assert!(dtmf.iter().all(|&d: &f32| (f - d).abs() > 0.04 * d), "{f}");
            assert!(
                server_tones.iter().all(|&t: &f32| (f - t).abs() >= 100.0),
                "{f}"
            );
            for &g in &TONES_HZ[i + 1..] {
                assert!(
                    (g - f).abs() >= 100.0 && (g - 2.0 * f).abs() >= 25.0,
                    "{f} {g}"
                );
            }
        }
        let s = talker_signal(1);
        assert_eq!(s.len(), 32_000);
        assert!(s[16_000..].iter().all(|&x| x == 0));
    }
}
