//! Unwrappers that extend 16-bit sequence numbers and 32-bit timestamps to 64 bits.
//!
//! Both follow one rule: among the extended values whose low bits equal the wire value, pick
//! the one nearest to the highest extended value seen so far. A packet reordered across a
//! wrap (wire 65535 arriving after wire 2 of the next cycle) therefore maps to the previous
//! cycle. A value exactly half the wire space away is taken as forward (newer).

use crate::rtp::SeqNo;

/// The candidate nearest to `highest` whose low `bits` bits equal `wire`, and whether it lies
/// at or ahead of `highest`.
///
/// A backward candidate below zero cannot be represented (the stream started less than half a
/// wire space ago and this packet is older than its first one); the forward candidate is
/// returned for it, flagged as not ahead, so callers do not advance on it.
fn nearest(highest: u64, wire: u64, bits: u32) -> (u64, bool) {
    let modulus = 1u64 << bits;
    let mask = modulus - 1;
    let half = modulus >> 1;
    let forward = wire.wrapping_sub(highest) & mask;
    if forward <= half {
        // Wrapping: after 2^64 / 2^bits cycles (centuries of packets) the count starts over.
        return (highest.wrapping_add(forward), true);
    }
    let backward = modulus - forward;
    match highest.checked_sub(backward) {
        Some(v) => (v, false),
        None => (highest.wrapping_add(forward), false),
    }
}

/// Extends 16-bit RTP (or transport-wide) sequence numbers to [`SeqNo`].
///
/// The first value is taken as cycle 0. Wire values more than half the space ahead of the
/// highest one are taken as late packets from the previous cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqNoUnwrapper {
    highest: Option<u64>,
}

impl SeqNoUnwrapper {
    /// An unwrapper that has seen nothing.
    pub const fn new() -> Self {
        Self { highest: None }
    }

    /// An unwrapper that continues from a known highest extended value.
    pub const fn starting_at(highest: SeqNo) -> Self {
        Self {
            highest: Some(highest.0),
        }
    }

    /// The highest extended value seen, if any.
    pub fn highest(&self) -> Option<SeqNo> {
        self.highest.map(SeqNo)
    }

    /// Extends `wire` without remembering it.
    pub fn peek(&self, wire: u16) -> SeqNo {
        match self.highest {
            None => SeqNo(u64::from(wire)),
            Some(h) => SeqNo(nearest(h, u64::from(wire), 16).0),
        }
    }

    /// Extends `wire` and, if it is the newest so far, remembers it as the highest.
    pub fn extend(&mut self, wire: u16) -> SeqNo {
        let (v, ahead) = match self.highest {
            None => (u64::from(wire), true),
            Some(h) => nearest(h, u64::from(wire), 16),
        };
        if ahead {
            self.highest = Some(v);
        }
        SeqNo(v)
    }
}

/// Extends 32-bit RTP timestamps to 64 bits.
///
/// The first value is taken as cycle 0. Timestamps more than 2^31 ticks behind the highest
/// one map to the previous cycle only when that cycle exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimestampUnwrapper {
    highest: Option<u64>,
}

impl TimestampUnwrapper {
    /// An unwrapper that has seen nothing.
    pub const fn new() -> Self {
        Self { highest: None }
    }

    /// An unwrapper that continues from a known highest extended timestamp.
    pub const fn starting_at(highest: u64) -> Self {
        Self {
            highest: Some(highest),
        }
    }

    /// The highest extended timestamp seen, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Extends `wire` without remembering it.
    pub fn peek(&self, wire: u32) -> u64 {
        match self.highest {
            None => u64::from(wire),
            Some(h) => nearest(h, u64::from(wire), 32).0,
        }
    }

    /// Extends `wire` and, if it is the newest so far, remembers it as the highest.
    pub fn extend(&mut self, wire: u32) -> u64 {
        let (v, ahead) = match self.highest {
            None => (u64::from(wire), true),
            Some(h) => nearest(h, u64::from(wire), 32),
        };
        if ahead {
            self.highest = Some(v);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOD16: u64 = 1 << 16;

    /// Steps checked from every 16-bit start value: the dense ends of the range, where
    /// off-by-one errors live, plus a stride through the middle.
    fn steps() -> impl Iterator<Item = u64> {
        (1..=300)
            .chain((300..32_468).step_by(97))
            .chain(32_468..=32_767)
    }

    #[test]
    fn every_16bit_start_forward_and_backward() {
        // Start in cycle 5 so backward steps never go below zero.
        for start in 0..MOD16 {
            let h = 5 * MOD16 + start;
            let u = SeqNoUnwrapper::starting_at(SeqNo(h));
            assert_eq!(u.peek(start as u16), SeqNo(h), "start {start} same");
            for d in steps() {
                let fwd = (start + d) as u16;
                assert_eq!(u.peek(fwd), SeqNo(h + d), "start {start} +{d}");
                let back = start.wrapping_sub(d) as u16;
                assert_eq!(u.peek(back), SeqNo(h - d), "start {start} -{d}");
            }
            // Exactly half the space away is taken as forward.
            assert_eq!(u.peek((start + 32_768) as u16), SeqNo(h + 32_768));
        }
    }

    #[test]
    fn every_16bit_step_from_wrap_edges() {
        // Every step, forward and backward, from the values around the wrap and the middle.
        for start in [0, 1, 2, 32_767, 32_768, 32_769, 65_533, 65_534, 65_535] {
            let h = 7 * MOD16 + start;
            let u = SeqNoUnwrapper::starting_at(SeqNo(h));
            for d in 0..=32_768u64 {
                assert_eq!(u.peek((start + d) as u16), SeqNo(h + d), "{start} +{d}");
            }
            for d in 1..=32_767u64 {
                assert_eq!(u.peek(start.wrapping_sub(d) as u16), SeqNo(h - d));
            }
        }
    }

    #[test]
    #[ignore = "2^33 unwraps: run on purpose with --ignored --release"]
    fn stress_every_16bit_start_and_every_step() {
        for start in 0..MOD16 {
            let h = 3 * MOD16 + start;
            let u = SeqNoUnwrapper::starting_at(SeqNo(h));
            for d in 0..=32_768u64 {
                assert_eq!(u.peek((start + d) as u16), SeqNo(h + d));
            }
            for d in 1..=32_767u64 {
                assert_eq!(u.peek(start.wrapping_sub(d) as u16), SeqNo(h - d));
            }
        }
    }

    #[test]
    fn walks_through_many_wraps_in_steps() {
        // Walk forward in every step size that divides nothing evenly, through 4 wraps.
        for step in [1u64, 2, 3, 7, 100, 1_000, 32_767] {
            let mut u = SeqNoUnwrapper::new();
            let mut ext = 65_000u64;
            assert_eq!(u.extend(ext as u16), SeqNo(ext));
            while ext < 5 * MOD16 {
                ext += step;
                assert_eq!(u.extend(ext as u16), SeqNo(ext), "step {step}");
            }
            assert_eq!(u.highest(), Some(SeqNo(ext)));
        }
    }

    #[test]
    fn reordered_before_wrap_maps_to_previous_cycle() {
        let mut u = SeqNoUnwrapper::new();
        assert_eq!(u.extend(65_534), SeqNo(65_534));
        assert_eq!(u.extend(1), SeqNo(65_537));
        assert_eq!(u.extend(65_535), SeqNo(65_535)); // late, previous cycle
        assert_eq!(u.highest(), Some(SeqNo(65_537)));
        assert_eq!(u.extend(0), SeqNo(65_536)); // late, this cycle
        assert_eq!(u.extend(2), SeqNo(65_538));
        assert_eq!(u.highest(), Some(SeqNo(65_538)));
    }

    #[test]
    fn packet_older_than_the_first_does_not_move_the_stream() {
        let mut u = SeqNoUnwrapper::new();
        assert_eq!(u.extend(2), SeqNo(2));
        // 65535 would be -3: not representable, given the forward value but not remembered.
        assert_eq!(u.extend(65_535), SeqNo(65_535));
        assert_eq!(u.highest(), Some(SeqNo(2)));
        assert_eq!(u.extend(3), SeqNo(3));
    }

    #[test]
    fn peek_does_not_update() {
        let mut u = SeqNoUnwrapper::new();
        assert_eq!(u.peek(10), SeqNo(10));
        assert_eq!(u.highest(), None);
        u.extend(10);
        assert_eq!(u.peek(20), SeqNo(20));
        assert_eq!(u.highest(), Some(SeqNo(10)));
    }

    #[test]
    fn timestamps_wrap_forward_and_back() {
        let mut u = TimestampUnwrapper::new();
        let start = u32::MAX - 959; // 960 ticks before the wrap
        assert_eq!(u.extend(start), u64::from(start));
        let next = start.wrapping_add(960);
        assert_eq!(next, 0);
        assert_eq!(u.extend(next), 1 << 32);
        assert_eq!(u.extend(960), (1 << 32) + 960);
        // A late packet from before the wrap goes to cycle 0.
        assert_eq!(u.extend(start.wrapping_add(480)), u64::from(start) + 480);
        assert_eq!(u.highest(), Some((1 << 32) + 960));
        // Half the space ahead counts as forward, one more tick as backward.
        let h = (1u64 << 32) + 960;
        let u2 = TimestampUnwrapper::starting_at(h);
        assert_eq!(u2.peek((h as u32).wrapping_add(1 << 31)), h + (1 << 31));
        assert_eq!(
            u2.peek((h as u32).wrapping_add((1 << 31) + 1)),
            h - (1 << 31) + 1
        );
    }

    #[test]
    fn timestamps_through_many_32bit_wraps() {
        for step in [1u64 << 31, (1 << 31) - 1, 2_000_000_011, 160] {
            let mut u = TimestampUnwrapper::starting_at(u64::from(u32::MAX) - 5);
            let mut ext = u64::from(u32::MAX) - 5;
            for _ in 0..64 {
                ext += step;
                assert_eq!(u.extend(ext as u32), ext, "step {step}");
            }
        }
    }

    #[test]
    fn timestamp_edges_around_every_wrap_position() {
        // Forward and backward by small and near-half steps from starts spread over 2^32.
        let starts = (0..=u32::MAX).step_by(65_537).chain([u32::MAX, 1 << 31]);
        for start in starts {
            let h = (9u64 << 32) + u64::from(start);
            let u = TimestampUnwrapper::starting_at(h);
            for d in [1u64, 2, 960, 90_000, (1 << 31) - 1, 1 << 31] {
                assert_eq!(u.peek(start.wrapping_add(d as u32)), h + d);
                if d < 1 << 31 {
                    assert_eq!(u.peek(start.wrapping_sub(d as u32)), h - d);
                }
            }
        }
    }
}
