//! The mixes of one conference tick: every talker hears all the other talkers (mix-minus),
//! everyone else hears all talkers (the full mix). With T talkers that is at most T + 1
//! distinct signals, whatever the conference size; listeners sharing a mix and a codec share
//! one encoded payload.
//!
//! Sums are taken in an i32 accumulator and saturated to i16 once per output; the loops run
//! over plain slices so the compiler vectorises them.

use crate::runtime::LegId;

/// Which of a tick's mixes a listener hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MixId {
    /// Every talker.
    Full,
    /// Every talker but the one in this talker slot.
    Minus(u8),
}

/// One conference tick's mixes, at the conference's sample rate; buffers are kept between
/// ticks.
#[derive(Debug)]
pub struct Mixes {
    frame: usize,
    acc: Vec<i32>,
    full: Vec<i16>,
    minus: Vec<Vec<i16>>,
    talkers: Vec<LegId>,
    /// This core's talkers alone (spanning conferences).
    local: Vec<i16>,
}

#[inline]
fn saturate(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

impl Mixes {
    /// Mixes of `frame` samples (one tick at the conference rate).
    pub fn new(frame: usize) -> Self {
        Mixes {
            frame,
            acc: vec![0; frame],
            full: vec![0; frame],
            minus: Vec::new(),
            talkers: Vec::new(),
            local: Vec::new(),
        }
    }

    /// Samples per mix.
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// Mixes the talkers' frames (each `frame` samples; a shorter one is padded with
    /// silence, a longer one cut).
    pub fn mix<'a>(&mut self, talkers: impl IntoIterator<Item = (LegId, &'a [i16])>) {
        self.mix_with(talkers, None);
    }

    /// Mixes the talkers plus `extra` (a tone every member hears, in every mix).
    pub fn mix_with<'a>(
        &mut self,
        talkers: impl IntoIterator<Item = (LegId, &'a [i16])>,
        extra: Option<&[i16]>,
    ) {
        self.mix_spanning(talkers, extra, None);
    }

    /// `mix_with`, plus `remote` (other cores' partial mixes, already summed) in every mix;
    /// `local()` then holds this core's talkers alone, to publish to the other cores.
    pub fn mix_spanning<'a>(
        &mut self,
        talkers: impl IntoIterator<Item = (LegId, &'a [i16])>,
        extra: Option<&[i16]>,
        remote: Option<&[i32]>,
    ) {
        self.acc.iter_mut().for_each(|a| *a = 0);
        self.talkers.clear();
        let mut slot = 0;
        for (id, pcm) in talkers {
            let pcm = &pcm[..pcm.len().min(self.frame)];
            for (a, &s) in self.acc.iter_mut().zip(pcm) {
                *a += i32::from(s);
            }
            if self.minus.len() <= slot {
                self.minus.push(vec![0; self.frame]);
            }
            // Stash the talker's own signal; its mix-minus is computed below.
            let own = &mut self.minus[slot];
            own[..pcm.len()].copy_from_slice(pcm);
            own[pcm.len()..].iter_mut().for_each(|s| *s = 0);
            self.talkers.push(id);
            slot += 1;
        }
        if remote.is_some() {
            self.local.resize(self.frame, 0);
            for (l, &a) in self.local.iter_mut().zip(&self.acc) {
                *l = saturate(a);
            }
        }
        for (a, &s) in self.acc.iter_mut().zip(extra.unwrap_or_default()) {
            *a += i32::from(s);
        }
        for (a, &r) in self.acc.iter_mut().zip(remote.unwrap_or_default()) {
            *a += r;
        }
        for (f, &a) in self.full.iter_mut().zip(&self.acc) {
            *f = saturate(a);
        }
        for own in &mut self.minus[..slot] {
            for (o, &a) in own.iter_mut().zip(&self.acc) {
                *o = saturate(a - i32::from(*o));
            }
        }
    }

    /// This core's talkers alone in the last `mix_spanning` with a remote part.
    pub fn local(&self) -> &[i16] {
        &self.local
    }

    /// The mix `listener` hears.
    pub fn for_listener(&self, listener: LegId) -> MixId {
        match self.talkers.iter().position(|&t| t == listener) {
            Some(i) => MixId::Minus(i as u8),
            None => MixId::Full,
        }
    }

    /// The samples of a mix.
    pub fn pcm(&self, id: MixId) -> &[i16] {
        match id {
            MixId::Full => &self.full,
            MixId::Minus(i) => self
                .minus
                .get(usize::from(i))
                .filter(|_| usize::from(i) < self.talkers.len())
                .map_or(&self.full[..0], |m| &m[..]),
        }
    }

    /// The talkers mixed in the last tick, in slot order.
    pub fn talkers(&self) -> &[LegId] {
        &self.talkers
    }

    /// Whether the last tick mixed nobody (the full mix is silence, unless a tone played).
    pub fn is_silent(&self) -> bool {
        self.talkers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_talker_hears_the_others_and_listeners_hear_all() {
        let mut m = Mixes::new(4);
        let (a, b, c) = ([100i16; 4], [20i16; 4], [3i16; 4]);
        m.mix([(LegId(1), &a[..]), (LegId(2), &b[..]), (LegId(3), &c[..])]);
        assert_eq!(m.pcm(MixId::Full), &[123; 4]);
        assert_eq!(m.for_listener(LegId(1)), MixId::Minus(0));
        assert_eq!(m.pcm(m.for_listener(LegId(1))), &[23; 4]);
        assert_eq!(m.pcm(m.for_listener(LegId(2))), &[103; 4]);
        assert_eq!(m.pcm(m.for_listener(LegId(3))), &[120; 4]);
        assert_eq!(m.for_listener(LegId(9)), MixId::Full);
        // The next tick with one talker: stale slots are not reachable.
        m.mix([(LegId(2), &b[..])]);
        assert_eq!(m.pcm(MixId::Full), &[20; 4]);
        assert_eq!(m.pcm(m.for_listener(LegId(2))), &[0; 4]);
        assert!(m.pcm(MixId::Minus(2)).is_empty());
        m.mix(std::iter::empty());
        assert!(m.is_silent());
        assert_eq!(m.pcm(MixId::Full), &[0; 4]);
    }

    #[test]
    fn a_tone_is_in_every_mix() {
        let mut m = Mixes::new(2);
        let (a, tone) = ([100i16; 2], [7i16; 2]);
        m.mix_with([(LegId(1), &a[..])], Some(&tone[..]));
        assert_eq!(m.pcm(MixId::Full), &[107; 2]);
        assert_eq!(m.pcm(MixId::Minus(0)), &[7; 2]);
    }

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let mut m = Mixes::new(2);
        let loud = [30_000i16, -30_000];
        m.mix([(LegId(1), &loud[..]), (LegId(2), &loud[..])]);
        assert_eq!(m.pcm(MixId::Full), &[i16::MAX, i16::MIN]);
        // The mix-minus comes from the unsaturated sum: each hears the other exactly.
        assert_eq!(m.pcm(MixId::Minus(0)), &loud);
    }

    #[test]
    fn short_frames_are_padded_and_long_ones_cut() {
        let mut m = Mixes::new(4);
        m.mix([(LegId(1), &[5i16, 5][..]), (LegId(2), &[1i16; 6][..])]);
        assert_eq!(m.pcm(MixId::Full), &[6, 6, 1, 1]);
        assert_eq!(m.pcm(MixId::Minus(1)), &[5, 5, 0, 0]);
    }
}
