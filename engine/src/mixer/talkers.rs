//! Which participants of a conference are mixed: the top N talkers, chosen per tick from the
//! participants' audio levels, with hysteresis so the set does not flap.
//!
//! - A participant is speaking in a tick when its level is at or above `speech_level`.
//! - A talker keeps its place while it speaks and for `hangover_ticks` after (the pauses
//!   between words and syllables), unless replaced.
//! - A speaking participant takes a free place at once (loudest first). When all places are
//!   taken it replaces the weakest talker that has held its place `min_hold_ticks`, and only
//!   if it is `switch_margin_db` louder: a cough does not push out the person talking.

use crate::runtime::LegId;

use super::level::Level;

/// Talker selection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TalkerConfig {
    /// Talkers mixed at most (the default is 3).
    pub max_talkers: usize,
    /// A level at least this loud is speech (default -50 dBov: `Level(50)`).
    pub speech_level: Level,
    /// Ticks a talker keeps its place after it stops speaking (default 20: 400 ms at 20 ms).
    pub hangover_ticks: u32,
    /// Ticks a talker holds its place before a louder participant may replace it (default 10).
    pub min_hold_ticks: u32,
    /// How much louder a newcomer must be to replace a talker, in dB (default 6).
    pub switch_margin_db: u8,
}

impl Default for TalkerConfig {
    fn default() -> Self {
        TalkerConfig {
            max_talkers: 3,
            speech_level: Level(50),
            hangover_ticks: 20,
            min_hold_ticks: 10,
            switch_margin_db: 6,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Talker {
    id: LegId,
    level: Level,
    quiet_ticks: u32,
    held_ticks: u32,
}

/// The talker set of one conference.
#[derive(Debug)]
pub struct TalkerSelector {
    cfg: TalkerConfig,
    talkers: Vec<Talker>,
    /// Scratch: this tick's speaking participants that are not talkers.
    candidates: Vec<(Level, LegId)>,
    /// Scratch: the current talkers' ids, returned by `select`.
    ids: Vec<LegId>,
    /// Talker changes so far (for the "who is talking" events and the flap test).
    changes: u64,
}

impl TalkerSelector {
    /// A selector with these settings.
    pub fn new(cfg: TalkerConfig) -> Self {
        TalkerSelector {
            cfg,
            talkers: Vec::with_capacity(cfg.max_talkers),
            candidates: Vec::new(),
            ids: Vec::with_capacity(cfg.max_talkers),
            changes: 0,
        }
    }

    /// One tick: `levels` holds every participant that may talk (muted ones left out) with
    /// its level this tick. Returns the talkers, in the order they got their places.
    pub fn select(&mut self, levels: &[(LegId, Level)]) -> &[LegId] {
        let cfg = self.cfg;
        let before = self.talkers.len();
        self.talkers.retain_mut(|t| {
            let now = levels.iter().find(|(id, _)| *id == t.id).map(|&(_, l)| l);
            let Some(level) = now else {
                return false; // left, or muted
            };
            t.level = level;
            t.held_ticks = t.held_ticks.saturating_add(1);
            if level <= cfg.speech_level {
                t.quiet_ticks = 0;
            } else {
                t.quiet_ticks += 1;
            }
            t.quiet_ticks <= cfg.hangover_ticks
        });
        let mut changed = self.talkers.len() != before;

        self.candidates.clear();
        for &(id, level) in levels {
            if level <= cfg.speech_level && !self.talkers.iter().any(|t| t.id == id) {
                self.candidates.push((level, id));
            }
        }
        // Loudest (smallest -dBov) first; ties by id so the choice is deterministic.
        self.candidates.sort_unstable();
        for &(level, id) in &self.candidates {
            let newcomer = Talker {
                id,
                level,
                quiet_ticks: 0,
                held_ticks: 0,
            };
            if self.talkers.len() < cfg.max_talkers {
                self.talkers.push(newcomer);
                changed = true;
                continue;
            }
            // The weakest talker that has held its place long enough.
            let weakest = (self.talkers.iter().enumerate())
                .filter(|(_, t)| t.held_ticks >= cfg.min_hold_ticks)
                .max_by_key(|(_, t)| (t.quiet_ticks, t.level))
                .map(|(i, t)| (i, t.level));
            match weakest {
                Some((i, incumbent)) if level.louder_by(incumbent, cfg.switch_margin_db) => {
                    self.talkers[i] = newcomer;
                    changed = true;
                }
                // Candidates come loudest first: no quieter one can do better.
                _ => break,
            }
        }
        if changed {
            self.changes += 1;
        }
        self.ids.clear();
        self.ids.extend(self.talkers.iter().map(|t| t.id));
        &self.ids
    }

    /// The current talkers.
    pub fn talkers(&self) -> &[LegId] {
        &self.ids
    }

    /// Ticks in which the talker set changed, since the start.
    pub fn changes(&self) -> u64 {
        self.changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::xorshift::Xorshift;

    fn run(sel: &mut TalkerSelector, levels: &[(u32, u8)]) -> Vec<u32> {
        let levels: Vec<(LegId, Level)> = levels
            .iter()
            .map(|&(id, l)| (LegId(id), Level(l)))
            .collect();
        sel.select(&levels).iter().map(|l| l.0).collect()
    }

    #[test]
    fn the_loudest_speakers_take_the_free_places() {
        let mut s = TalkerSelector::new(TalkerConfig::default());
        let got = run(
            &mut s,
            &[(1, 30), (2, 127), (3, 20), (4, 45), (5, 25), (6, 60)],
        );
        assert_eq!(
            got,
            vec![3, 5, 1],
            "three loudest, silent and quiet ones out"
        );
    }

    #[test]
    fn pauses_within_the_hangover_keep_a_place() {
        let mut s = TalkerSelector::new(TalkerConfig::default());
        run(&mut s, &[(1, 30), (2, 127)]);
        for _ in 0..20 {
            assert_eq!(run(&mut s, &[(1, 127), (2, 127)]), vec![1]);
        }
        assert!(
            run(&mut s, &[(1, 127), (2, 127)]).is_empty(),
            "gone after 400 ms"
        );
    }

    #[test]
    fn a_louder_newcomer_needs_the_margin_and_the_hold_time() {
        let cfg = TalkerConfig {
            max_talkers: 1,
            ..TalkerConfig::default()
        };
        let mut s = TalkerSelector::new(cfg);
        assert_eq!(run(&mut s, &[(1, 30), (2, 127)]), vec![1]);
        // Louder by 10 dB, but 1 has not held its place for 10 ticks yet.
        for _ in 0..9 {
            assert_eq!(run(&mut s, &[(1, 30), (2, 20)]), vec![1]);
        }
        // Louder by only 4 dB: no switch even after the hold time.
        for _ in 0..5 {
            assert_eq!(run(&mut s, &[(1, 30), (2, 26)]), vec![1]);
        }
        assert_eq!(run(&mut s, &[(1, 30), (2, 20)]), vec![2]);
    }

    #[test]
    fn muted_or_departed_talkers_leave_at_once() {
        let mut s = TalkerSelector::new(TalkerConfig::default());
        run(&mut s, &[(1, 30), (2, 30)]);
        assert_eq!(run(&mut s, &[(2, 30)]), vec![2]);
    }

    #[test]
    fn noisy_levels_around_the_threshold_do_not_flap() {
        // Ten participants whose levels wander around the speech threshold and two real
        // talkers: the set changes rarely (hangover and margin), never every tick.
        let mut s = TalkerSelector::new(TalkerConfig::default());
        let mut rng = Xorshift::new(7);
        let ticks = 3_000;
        for _ in 0..ticks {
            let mut levels = vec![(1, 25), (2, 28)];
            for id in 3..13u32 {
                levels.push((id, 45 + rng.below(12) as u8));
            }
            let got = run(&mut s, &levels);
            assert!(got.contains(&1) && got.contains(&2), "{got:?}");
            assert!(got.len() <= 3);
        }
        assert!(
            s.changes() < ticks / 10,
            "{} changes in {ticks} ticks",
            s.changes()
        );
    }
}
