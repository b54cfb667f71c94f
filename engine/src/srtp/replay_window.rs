//! The sliding replay window of RFC 3711 §3.3.2.

use super::error::SrtpError;

/// Width of the replay window in packets (RFC 3711 asks for at least 64).
pub const REPLAY_WINDOW_PACKETS: u64 = 128;

/// Which of the last [`REPLAY_WINDOW_PACKETS`] indices were seen.
///
/// Works on any monotone packet index: the 48-bit SRTP index or the 31-bit
/// SRTCP index. Checking and accepting are separate so that a packet is only
/// accepted after it authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    /// Highest index accepted so far (meaningless while `seen == 0`).
    highest: u64,
    /// Bit `d` set: index `highest - d` was accepted. Bit 0 is set as soon as
    /// anything was accepted, so `seen == 0` means an empty window.
    seen: u128,
}

impl ReplayWindow {
    /// The highest accepted index, if any.
    pub(crate) fn highest(&self) -> Option<u64> {
        (self.seen != 0).then_some(self.highest)
    }

    /// Whether `index` may be accepted: new, or inside the window and unseen.
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if self.seen == 0 || index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= REPLAY_WINDOW_PACKETS {
            return Err(SrtpError::TooOld);
        }
        if self.seen & (1u128 << behind) != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Records `index` as received. Call only after [`Self::check`] passed
    /// and the packet authenticated.
    pub(crate) fn accept(&mut self, index: u64) {
        if self.seen == 0 {
            self.highest = index;
            self.seen = 1;
        } else if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= REPLAY_WINDOW_PACKETS {
                1
            } else {
                (self.seen << ahead) | 1
            };
            self.highest = index;
        } else {
            let behind = self.highest - index;
            if behind < REPLAY_WINDOW_PACKETS {
                self.seen |= 1u128 << behind;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_then_duplicates() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.highest(), None);
        for i in 1000..1300 {
            assert_eq!(w.check(i), Ok(()));
            w.accept(i);
            assert_eq!(w.check(i), Err(SrtpError::Replayed));
        }
        assert_eq!(w.highest(), Some(1299));
        assert_eq!(w.check(1299 - 127), Err(SrtpError::Replayed));
        assert_eq!(w.check(1299 - 128), Err(SrtpError::TooOld));
        assert_eq!(w.check(0), Err(SrtpError::TooOld));
    }

    #[test]
    fn reordering_inside_the_window() {
        let mut w = ReplayWindow::default();
        w.accept(500);
        // Every older index still in the window is accepted once, in any order.
        for i in (500 - 127..500).rev().step_by(3) {
            assert_eq!(w.check(i), Ok(()), "{i}");
            w.accept(i);
            assert_eq!(w.check(i), Err(SrtpError::Replayed));
        }
        assert_eq!(w.check(500 - 128), Err(SrtpError::TooOld));
        // A jump further than the window forgets everything behind it.
        w.accept(500 + 1000);
        assert_eq!(w.check(500 + 999), Ok(()));
        assert_eq!(w.check(500 + 1000 - 128), Err(SrtpError::TooOld));
    }

    #[test]
    fn index_zero_is_a_real_index() {
        let mut w = ReplayWindow::default();
        w.accept(0);
        assert_eq!(w.highest(), Some(0));
        assert_eq!(w.check(0), Err(SrtpError::Replayed));
        assert_eq!(w.check(1), Ok(()));
    }

    #[test]
    fn shift_by_exactly_the_width_edge() {
        let mut w = ReplayWindow::default();
        w.accept(10);
        w.accept(10 + 127);
        assert_eq!(w.check(10), Err(SrtpError::Replayed));
        w.accept(10 + 128);
        assert_eq!(w.check(10), Err(SrtpError::TooOld));
        assert_eq!(w.check(11), Ok(()));
    }
}
