//! A conference spread over several cores: each core mixes its own talkers and, every tick,
//! hands that partial mix to the other cores through bounded lock-free queues (one per
//! sender and receiver), and adds theirs to what its members hear. Each core's listeners
//! hear every talker of the conference; remote talkers arrive one tick later.

use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::runtime::CoreId;

/// Partial mixes queued per (receiver, sender) before the oldest is dropped: the cores' tick
/// grids are not aligned and a busy core ticks late, so a few frames may wait.
const DEPTH: usize = 4;
/// Frames a receiver lets gather before it starts taking one per tick (and again after it
/// ran dry): a tick of slack against the other core's timing, instead of a gap every time
/// the two grids cross.
const PRIME: usize = 2;

/// The partial-mix queues of one conference across `cores` cores.
#[derive(Debug)]
pub struct MixBus {
    /// `inbox[to][from]`.
    inbox: Vec<Vec<ArrayQueue<Box<[i16]>>>>,
    /// `primed[to][from]`: the receiver is taking frames (touched by the receiver only).
    primed: Vec<Vec<AtomicBool>>,
}

impl MixBus {
    /// Queues for a conference that may span `cores` cores.
    pub fn new(cores: usize) -> Self {
        MixBus {
            inbox: (0..cores)
                .map(|_| (0..cores).map(|_| ArrayQueue::new(DEPTH)).collect())
                .collect(),
            primed: (0..cores)
                .map(|_| (0..cores).map(|_| AtomicBool::new(false)).collect())
                .collect(),
        }
    }

    /// Core `from` publishes this tick's partial mix (its local talkers) to every other core;
    /// a receiver that fell behind loses its oldest frame.
    pub fn publish(&self, from: CoreId, frame: &[i16]) {
        let from = usize::from(from.0);
        for (to, row) in self.inbox.iter().enumerate() {
            if to != from
                && let Some(q) = row.get(from)
            {
                q.force_push(frame.into());
            }
        }
    }

    /// Core `to` adds one frame from each other core to `acc` (nothing from a core whose
    /// frames are still gathering); returns how many it added.
    pub fn collect(&self, to: CoreId, acc: &mut [i32]) -> usize {
        let to = usize::from(to.0);
        let (Some(queues), Some(primed)) = (self.inbox.get(to), self.primed.get(to)) else {
            return 0;
        };
        let mut got = 0;
        for (q, primed) in queues.iter().zip(primed) {
            // Keep the latency bounded: at most PRIME frames wait after this tick.
            while q.len() > PRIME + 1 {
                q.pop();
            }
            if !primed.load(Ordering::Relaxed) {
                if q.len() < PRIME {
                    continue;
                }
                primed.store(true, Ordering::Relaxed);
            }
            match q.pop() {
                Some(frame) => {
                    for (a, &s) in acc.iter_mut().zip(frame.iter()) {
                        *a += i32::from(s);
                    }
                    got += 1;
                }
                // Ran dry: gather again.
                None => primed.store(false, Ordering::Relaxed),
            }
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_core_gets_the_others_partials_and_not_its_own() {
        let bus = MixBus::new(3);
        let publish_all = |v: i16| {
            bus.publish(CoreId(0), &[v; 4]);
            bus.publish(CoreId(1), &[10 * v; 4]);
            bus.publish(CoreId(2), &[100 * v; 4]);
        };
        publish_all(1);
        let mut acc = [0i32; 4];
        assert_eq!(bus.collect(CoreId(0), &mut acc), 0, "still gathering");
        publish_all(2);
        let mut acc = [0i32; 4];
        assert_eq!(bus.collect(CoreId(0), &mut acc), 2);
        assert_eq!(acc, [110; 4], "the oldest frame first");
        let mut acc = [0i32; 4];
        assert_eq!(bus.collect(CoreId(0), &mut acc), 2);
        assert_eq!(acc, [220; 4]);
        // Dry: it gathers again instead of playing every other frame.
        let mut acc = [0i32; 4];
        assert_eq!(bus.collect(CoreId(0), &mut acc), 0);
        // A slow receiver keeps only the newest frames.
        for v in 0..10 {
            bus.publish(CoreId(1), &[v; 4]);
        }
        let mut acc = [0i32; 4];
        bus.collect(CoreId(2), &mut acc);
        // From core 0 the first of its two frames (1); from core 1 the oldest of the newest
        // three (7): 6 and older were dropped.
        assert_eq!(acc[0], 1 + 7);
    }
}
