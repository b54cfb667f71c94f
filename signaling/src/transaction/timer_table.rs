//! A fixed table of deadlines indexed by a timer enum (the idea of quinn's `TimerTable`).

use std::time::Instant;

/// A timer enum usable as an index into a [`TimerTable`].
pub trait TimerSlot: Copy {
    /// Position of this timer in the table; less than the table's `N`.
    fn index(self) -> usize;
}

/// One optional deadline per timer, plus a mark on those changed since the owner last
/// collected them (so the owner can push only fresh deadlines into its heap).
#[derive(Clone, Debug)]
pub struct TimerTable<T, const N: usize> {
    deadlines: [Option<Instant>; N],
    changed: [bool; N],
    _slot: std::marker::PhantomData<T>,
}

impl<T: TimerSlot, const N: usize> Default for TimerTable<T, N> {
    fn default() -> Self {
        Self {
            deadlines: [None; N],
            changed: [false; N],
            _slot: std::marker::PhantomData,
        }
    }
}

impl<T: TimerSlot, const N: usize> TimerTable<T, N> {
    /// Arms `timer` to fire at `at`, replacing any earlier deadline.
    pub fn set(&mut self, timer: T, at: Instant) {
        // INVARIANT: TimerSlot::index is below N for every timer of a table of size N.
        self.deadlines[timer.index()] = Some(at);
        self.changed[timer.index()] = true;
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: T) {
        // INVARIANT: as in `set`.
        self.deadlines[timer.index()] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines = [None; N];
    }

    /// The deadline of `timer`, if armed.
    pub fn deadline(&self, timer: T) -> Option<Instant> {
        // INVARIANT: as in `set`.
        self.deadlines[timer.index()]
    }

    /// Whether `timer` is armed for exactly `at` (a heap entry for it is still current).
    pub fn is_armed_for(&self, timer: T, at: Instant) -> bool {
        self.deadline(timer) == Some(at)
    }

    /// Disarms `timer` if it is armed for `at`; true if it was (the timer fires now).
    pub fn fire(&mut self, timer: T, at: Instant) -> bool {
        if self.is_armed_for(timer, at) {
            self.stop(timer);
            true
        } else {
            false
        }
    }

    /// Hands out the armed deadlines changed since the last call, by slot index.
    pub fn take_changed(&mut self, mut f: impl FnMut(usize, Instant)) {
        for index in 0..N {
            // INVARIANT: index < N, the length of both arrays.
            if std::mem::take(&mut self.changed[index])
                && let Some(at) = self.deadlines[index]
            {
                f(index, at);
            }
        }
    }

    /// The earliest armed deadline.
    pub fn earliest(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Clone, Copy)]
    enum T {
        X,
        Y,
    }
    impl TimerSlot for T {
        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn set_fire_and_changed() {
        let t0 = Instant::now();
        let mut table = TimerTable::<T, 2>::default();
        table.set(T::X, t0 + Duration::from_millis(5));
        table.set(T::Y, t0 + Duration::from_millis(1));
        assert_eq!(table.earliest(), Some(t0 + Duration::from_millis(1)));
        let mut seen = Vec::new();
        table.take_changed(|i, at| seen.push((i, at)));
        assert_eq!(seen.len(), 2);
        seen.clear();
        table.take_changed(|i, at| seen.push((i, at)));
        assert!(seen.is_empty());
        assert!(!table.fire(T::X, t0));
        assert!(table.fire(T::X, t0 + Duration::from_millis(5)));
        assert_eq!(table.deadline(T::X), None);
        table.stop_all();
        assert_eq!(table.earliest(), None);
    }
}
