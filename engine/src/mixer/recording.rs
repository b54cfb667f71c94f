//! A conference's mix handed to a recorder off the media core: each tick the core pushes the
//! full mix (every talker and tone) into a bounded lock-free queue; a writer thread on the
//! control side drains it into a file. A full queue drops the frame and counts it, so a slow
//! disk never stalls the mixer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

/// The queue between one conference's core and its recording writer.
#[derive(Debug)]
pub struct RecordingSink {
    frames: ArrayQueue<Box<[i16]>>,
    rate: u32,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl RecordingSink {
    /// A sink for frames at `rate` Hz holding up to `capacity` frames (50 a second at 20 ms).
    pub fn new(rate: u32, capacity: usize) -> Self {
        RecordingSink {
            frames: ArrayQueue::new(capacity.max(1)),
            rate,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The frames' sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Called by the core: one tick of the mix.
    pub fn push(&self, frame: &[i16]) {
        if self.frames.push(frame.into()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Called by the writer: the next frame, if any.
    pub fn pop(&self) -> Option<Box<[i16]>> {
        self.frames.pop()
    }

    /// Frames dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The recording was stopped: the writer finishes once the queue is empty.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pass_in_order_and_overflow_is_counted() {
        let s = RecordingSink::new(16_000, 2);
        s.push(&[1; 4]);
        s.push(&[2; 4]);
        s.push(&[3; 4]);
        assert_eq!(s.dropped(), 1);
        assert_eq!(&*s.pop().unwrap(), &[1; 4]);
        assert_eq!(&*s.pop().unwrap(), &[2; 4]);
        assert!(s.pop().is_none());
        assert!(!s.is_closed());
        s.close();
        assert!(s.is_closed());
    }
}
