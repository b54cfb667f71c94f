//! A conference spread over several cores: each core mixes its own talkers and, every tick,
//! hands that partial mix to the other cores through bounded lock-free queues (one per
//! sender and receiver), and adds theirs to what its members hear. Each core's listeners
//! hear every talker of the conference; remote talkers arrive one tick later.

use crossbeam_queue::ArrayQueue;

use crate::runtime::CoreId;

/// Partial mixes queued per (receiver, sender) before the oldest is dropped: the cores' tick
/// grids are not aligned, so one or two frames may wait.
const DEPTH: usize = 3;

/// The partial-mix queues of one conference across `cores` cores.
#[derive(Debug)]
pub struct MixBus {
    /// `inbox[to][from]`.
    inbox: Vec<Vec<ArrayQueue<Box<[i16]>>>>,
}

impl MixBus {
    /// Queues for a conference that may span `cores` cores.
    pub fn new(cores: usize) -> Self {
        MixBus {
            inbox: (0..cores)
                .map(|_| (0..cores).map(|_| ArrayQueue::new(DEPTH)).collect())
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

    /// Core `to` adds one frame from each other core to `acc` (none yet: nothing added).
    pub fn collect(&self, to: CoreId, acc: &mut [i32]) -> usize {
        let mut got = 0;
        for q in self.inbox.get(usize::from(to.0)).into_iter().flatten() {
            // Keep the latency bounded: never more than one frame waiting after this tick.
            while q.len() > 2 {
                q.pop();
            }
            if let Some(frame) = q.pop() {
                for (a, &s) in acc.iter_mut().zip(frame.iter()) {
                    *a += i32::from(s);
                }
                got += 1;
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
        bus.publish(CoreId(0), &[1; 4]);
        bus.publish(CoreId(1), &[10; 4]);
        bus.publish(CoreId(2), &[100; 4]);
        let mut acc = [0i32; 4];
        assert_eq!(bus.collect(CoreId(0), &mut acc), 2);
        assert_eq!(acc, [110; 4]);
        let mut acc = [0i32; 4];
        bus.collect(CoreId(2), &mut acc);
        assert_eq!(acc, [11; 4]);
        // A slow receiver keeps at most the newest frames.
        for v in 0..10 {
            bus.publish(CoreId(1), &[v; 4]);
        }
        let mut acc = [0i32; 4];
        bus.collect(CoreId(0), &mut acc);
        assert_eq!(acc, [8; 4], "older frames dropped, latency bounded");
    }
}
