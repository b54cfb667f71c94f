//! Which core and socket pair a new call's media leg goes to: the core with the fewest legs,
//! its pairs in turn.

use std::net::SocketAddr;

use chorus_engine::runtime::CoreId;

#[derive(Debug, Clone)]
struct CoreSlot {
    /// RTP address of each socket pair.
    addrs: Vec<SocketAddr>,
    legs: usize,
    next_pair: usize,
}

/// The control side's view of the cores' load.
#[derive(Debug, Clone)]
pub struct Placement {
    cores: Vec<CoreSlot>,
}

impl Placement {
    /// Cores with the RTP addresses of their socket pairs (`Engine::media_addrs`).
    pub fn new(cores: Vec<Vec<SocketAddr>>) -> Self {
        Placement {
            cores: cores
                .into_iter()
                .map(|addrs| CoreSlot {
                    addrs,
                    legs: 0,
                    next_pair: 0,
                })
                .collect(),
        }
    }

    /// Picks the least-loaded core and its next pair, and counts the leg there.
    pub fn place(&mut self) -> Option<(CoreId, u16, SocketAddr)> {
        let (i, core) = self
            .cores
            .iter_mut()
            .enumerate()
            .filter(|(_, c)| !c.addrs.is_empty())
            .min_by_key(|(_, c)| c.legs)?;
        let pair = core.next_pair % core.addrs.len();
        core.next_pair = core.next_pair.wrapping_add(1);
        core.legs += 1;
        // INVARIANT: pair < addrs.len(), which is non-empty (filtered above).
        Some((CoreId(i as u16), pair as u16, core.addrs[pair]))
    }

    /// Picks `core`'s next socket pair and counts a leg there (a leg moving to it).
    pub fn place_on(&mut self, core: CoreId) -> Option<(u16, SocketAddr)> {
        let c = self.cores.get_mut(usize::from(core.0))?;
        let pair = c.next_pair.checked_rem(c.addrs.len())?;
        c.next_pair = c.next_pair.wrapping_add(1);
        c.legs += 1;
        // INVARIANT: pair < addrs.len() (checked_rem is None for an empty list).
        Some((pair as u16, c.addrs[pair]))
    }

    /// The socket pair for the video of a leg whose audio is on `core`'s `audio_pair`: the
    /// next pair, so audio and video have different local ports (the pair itself on a core
    /// with one). Not counted as a leg.
    pub fn video_pair(&self, core: CoreId, audio_pair: u16) -> Option<(u16, SocketAddr)> {
        let c = self.cores.get(usize::from(core.0))?;
        let pair = (usize::from(audio_pair) + 1).checked_rem(c.addrs.len())?;
        // INVARIANT: pair < addrs.len() (checked_rem is None for an empty list).
        Some((pair as u16, c.addrs[pair]))
    }

    /// A leg on `core` is gone.
    pub fn release(&mut self, core: CoreId) {
        if let Some(c) = self.cores.get_mut(usize::from(core.0)) {
            c.legs = c.legs.saturating_sub(1);
        }
    }

    /// Legs placed on `core` and not released.
    pub fn legs(&self, core: CoreId) -> usize {
        self.cores.get(usize::from(core.0)).map_or(0, |c| c.legs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_over_cores_and_pairs() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mut p = Placement::new(vec![vec![a(20000), a(20002)], vec![a(20004)]]);
        let picks: Vec<_> = (0..4).map(|_| p.place().unwrap()).collect();
        assert_eq!(picks[0], (CoreId(0), 0, a(20000)));
        assert_eq!(picks[1], (CoreId(1), 0, a(20004)));
        assert_eq!(picks[2], (CoreId(0), 1, a(20002)));
        assert_eq!(picks[3], (CoreId(1), 0, a(20004)));
        p.release(CoreId(0));
        p.release(CoreId(0));
        assert_eq!(p.place().unwrap().0, CoreId(0));
        assert!(Placement::new(vec![]).place().is_none());
        assert_eq!(p.video_pair(CoreId(0), 0), Some((1, a(20002))));
        assert_eq!(p.video_pair(CoreId(0), 1), Some((0, a(20000))));
        assert_eq!(p.video_pair(CoreId(1), 0), Some((0, a(20004))));
        assert_eq!(p.video_pair(CoreId(2), 0), None);
    }
}
