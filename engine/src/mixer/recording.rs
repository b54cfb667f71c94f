//! A conference's mix handed to a recorder off the media core: each tick the core pushes the
//! full mix (every talker and tone) into a bounded lock-free queue; a writer thread on the
//! control side drains it into a file and hands each frame's buffer back (`recycle`), so once
//! the pool of buffers has grown to the queue's size a tick allocates nothing. A full queue
//! drops the frame and counts it, so a slow disk never stalls the mixer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

/// The queue between one conference's core and its recording writer.
#[derive(Debug)]
pub struct RecordingSink {
    frames: ArrayQueue<Box<[i16]>>,
    /// Buffers the writer is done with, for the next frames.
    free: ArrayQueue<Box<[i16]>>,
    rate: u32,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl RecordingSink {
    /// A sink for frames at `rate` Hz holding up to `capacity` frames (50 a second at 20 ms).
    pub fn new(rate: u32, capacity: usize) -> Self {
        RecordingSink {
            frames: ArrayQueue::new(capacity.max(1)),
            free: ArrayQueue::new(capacity.max(1)),
            rate,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The frames' sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Called by the core: one tick of the mix, copied into a recycled buffer (a new one only
    /// while the pool is still growing).
    pub fn push(&self, frame: &[i16]) {
        if self.frames.is_full() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let buffer = match self.free.pop() {
            Some(mut b) if b.len() == frame.len() => {
                b.copy_from_slice(frame);
                b
            }
            _ => frame.into(),
        };
        if self.frames.push(buffer).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Called by the writer: the next frame, if any.
    pub fn pop(&self) -> Option<Box<[i16]>> {
        self.frames.pop()
    }

    /// Called by the writer: a popped frame's buffer, written, back for reuse.
    pub fn recycle(&self, frame: Box<[i16]>) {
        let _ = self.free.push(frame);
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
        let first = s.pop().unwrap();
        assert_eq!(&*first, &[1; 4]);
        // A recycled buffer carries the next frame: the same memory, new samples.
        let at = first.as_ptr();
        s.recycle(first);
        s.push(&[4; 4]);
        assert_eq!(&*s.pop().unwrap(), &[2; 4]);
        let fourth = s.pop().unwrap();
        assert_eq!((&*fourth, fourth.as_ptr()), (&[4i16; 4][..], at));
        assert!(s.pop().is_none());
        assert!(!s.is_closed());
        s.close();
        assert!(s.is_closed());
    }
}
