//! Per-SSRC state of one SRTP context, in a small fixed-capacity table.

use super::error::SrtpError;
use super::replay_window::ReplayWindow;

/// Most SSRCs one context tracks. A conference leg carries audio, maybe
/// video with RTX and simulcast layers; 16 leaves room and bounds memory
/// against a peer inventing SSRCs.
pub const MAX_SSRCS: usize = 16;

/// The state of one SSRC in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stream {
    /// The synchronization source this state belongs to.
    pub(crate) ssrc: u32,
    /// SRTP indices accepted (received, or sent when protecting). Its highest
    /// index carries `s_l` and the ROC (RFC 3711 §3.3.1).
    pub(crate) rtp: ReplayWindow,
    /// SRTCP indices accepted (receive side).
    pub(crate) rtcp: ReplayWindow,
    /// SRTCP index for the next protected packet (send side).
    pub(crate) next_srtcp_index: u32,
}

impl Stream {
    /// Fresh state for `ssrc`.
    pub(crate) fn new(ssrc: u32) -> Self {
        Stream {
            ssrc,
            ..Stream::default()
        }
    }
}

/// At most [`MAX_SSRCS`] streams, found by linear scan (16 compares of a
/// `u32` beat any hashing at this size, and nothing is allocated).
#[derive(Debug, Clone)]
pub(crate) struct StreamTable {
    streams: [Stream; MAX_SSRCS],
    len: usize,
}

impl Default for StreamTable {
    fn default() -> Self {
        StreamTable {
            streams: [Stream::default(); MAX_SSRCS],
            len: 0,
        }
    }
}

impl StreamTable {
    /// The slot of `ssrc`, if tracked.
    pub(crate) fn find(&self, ssrc: u32) -> Option<usize> {
        self.active().iter().position(|s| s.ssrc == ssrc)
    }

    /// The stream in `slot`, as returned by [`Self::find`] or
    /// [`Self::insert`].
    pub(crate) fn get(&self, slot: usize) -> Option<&Stream> {
        self.active().get(slot)
    }

    /// Mutable access to the stream in `slot`.
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut Stream> {
        // INVARIANT: len <= MAX_SSRCS, kept by insert and remove.
        self.streams[..self.len].get_mut(slot)
    }

    /// Adds `stream` (whose SSRC must not be tracked yet) and returns its
    /// slot, or `TooManySsrcs` when full.
    pub(crate) fn insert(&mut self, stream: Stream) -> Result<usize, SrtpError> {
        let slot = self.len;
        let free = self.streams.get_mut(slot).ok_or(SrtpError::TooManySsrcs)?;
        *free = stream;
        self.len += 1;
        Ok(slot)
    }

    /// Forgets `ssrc`; returns whether it was tracked.
    pub(crate) fn remove(&mut self, ssrc: u32) -> bool {
        match self.find(ssrc) {
            Some(slot) => {
                // INVARIANT: find returned a slot < len <= MAX_SSRCS, so
                // len >= 1 and both indices are in bounds.
                self.streams.swap(slot, self.len - 1);
                self.len -= 1;
                true
            }
            None => false,
        }
    }

    /// Number of tracked SSRCs.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn active(&self) -> &[Stream] {
        // INVARIANT: len <= MAX_SSRCS, kept by insert and remove.
        &self.streams[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_up_and_refuses_then_frees() {
        let mut t = StreamTable::default();
        for ssrc in 0..MAX_SSRCS as u32 {
            assert_eq!(t.find(ssrc), None);
            let slot = t.insert(Stream::new(ssrc)).unwrap();
            assert_eq!(t.find(ssrc), Some(slot));
        }
        assert_eq!(t.len(), MAX_SSRCS);
        assert_eq!(t.insert(Stream::new(999)), Err(SrtpError::TooManySsrcs));
        assert!(t.remove(3));
        assert!(!t.remove(3));
        assert_eq!(t.find(3), None);
        let slot = t.insert(Stream::new(999)).unwrap();
        assert_eq!(t.get(slot).map(|s| s.ssrc), Some(999));
        for ssrc in (0..MAX_SSRCS as u32).filter(|&s| s != 3) {
            let slot = t.find(ssrc).unwrap();
            assert_eq!(t.get_mut(slot).map(|s| s.ssrc), Some(ssrc));
        }
    }
}
