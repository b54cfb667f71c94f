//! The media tick: a fixed grid of instants (start + n * period) that does not drift.
//!
//! When the core is late by less than a period, the tick fires late and the next one is still
//! on the grid. When it is late by a period or more (the thread was descheduled), the missed
//! ticks are not replayed back to back, which would send a burst of audio: one tick fires, the
//! missed ones are reported as `skipped`, and media clocks advance by the skipped time so
//! receivers see a gap, not a burst.

use std::time::{Duration, Instant};

/// One tick to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Index on the grid (0 at start), counting skipped ticks.
    pub index: u64,
    /// The grid instant this tick belongs to.
    pub at: Instant,
    /// How late the tick is handled.
    pub late: Duration,
    /// Ticks skipped just before this one.
    pub skipped: u64,
}

/// The tick grid of one core.
#[derive(Clone, Debug)]
pub struct TickClock {
    start: Instant,
    period: Duration,
    next_index: u64,
}

impl TickClock {
    /// A grid starting at `start` (the first tick) with the given period (> 0).
    pub fn new(start: Instant, period: Duration) -> Self {
        TickClock {
            start,
            period: period.max(Duration::from_micros(100)),
            next_index: 0,
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    fn instant_of(&self, index: u64) -> Instant {
        // INVARIANT: period >= 100 us and u32 index range covers > 4e5 seconds per wrap of
        // u32; indices beyond u32 saturate the multiplication instead of panicking.
        let n = u32::try_from(index).unwrap_or(u32::MAX);
        self.start + self.period * n
    }

    /// When the next tick is due.
    pub fn next_deadline(&self) -> Instant {
        self.instant_of(self.next_index)
    }

    /// The tick to run at `now`, if one is due.
    pub fn poll(&mut self, now: Instant) -> Option<Tick> {
        let due = self.instant_of(self.next_index);
        if now < due {
            return None;
        }
        let behind = now - due;
        let skipped = (behind.as_nanos() / self.period.as_nanos()) as u64;
        let index = self.next_index + skipped;
        let at = self.instant_of(index);
        self.next_index = index + 1;
        Some(Tick {
            index,
            at,
            late: now - at,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(20);

    #[test]
    fn on_time_ticks_follow_the_grid() {
        let t0 = Instant::now();
        let mut c = TickClock::new(t0, P);
        assert_eq!(c.next_deadline(), t0);
        assert_eq!(c.poll(t0 - Duration::from_millis(1)), None);
        for i in 0..1000u64 {
            let now = t0 + P * i as u32;
            let t = c.poll(now).expect("due");
            assert_eq!((t.index, t.skipped, t.late), (i, 0, Duration::ZERO));
            assert_eq!(c.poll(now), None, "one tick per grid point");
        }
    }

    #[test]
    fn slightly_late_ticks_do_not_drift() {
        let t0 = Instant::now();
        let mut c = TickClock::new(t0, P);
        // Every tick handled 7 ms late: after 10,000 ticks the grid is still exact.
        for i in 0..10_000u64 {
            let now = t0 + P * i as u32 + Duration::from_millis(7);
            let t = c.poll(now).unwrap();
            assert_eq!(t.index, i);
            assert_eq!(t.late, Duration::from_millis(7));
        }
        assert_eq!(c.next_deadline(), t0 + P * 10_000);
    }

    #[test]
    fn a_stall_skips_ticks_instead_of_bursting() {
        let t0 = Instant::now();
        let mut c = TickClock::new(t0, P);
        c.poll(t0).unwrap();
        // Stalled for 105 ms: ticks 1..=4 are due at once; only one fires.
        let now = t0 + Duration::from_millis(105);
        let t = c.poll(now).unwrap();
        assert_eq!((t.index, t.skipped), (5, 4));
        assert_eq!(t.late, Duration::from_millis(5));
        assert_eq!(c.poll(now), None, "no burst");
        assert_eq!(c.next_deadline(), t0 + P * 6);
    }

    #[test]
    fn ten_ms_ticks() {
        let t0 = Instant::now();
        let mut c = TickClock::new(t0, Duration::from_millis(10));
        let mut fired = 0;
        let mut now = t0;
        while now < t0 + Duration::from_secs(1) {
            if c.poll(now).is_some() {
                fired += 1;
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(fired, 100);
    }
}
