//! Outbound stream continuity for a leg that receives forwarded RTP.
//!
//! Whatever source the engine forwards to a leg, the leg sees one stream: the leg's own SSRC,
//! sequence numbers that continue by one, and timestamps that continue by a packet's worth when
//! the source changes. Receivers never see an SSRC they did not expect (a caller hearing its
//! own SSRC echoed back would take it for a collision), and a switch never looks like loss.

/// Maps (source SSRC, sequence, timestamp) to the leg's outbound numbering.
#[derive(Debug, Clone)]
pub(crate) struct SeqRewriter {
    source: Option<u32>,
    seq_delta: u16,
    ts_delta: u32,
    /// Highest sequence number sent, and the timestamp sent with it.
    last_seq: u16,
    last_ts: u32,
    started: bool,
    /// Timestamp advance assumed across a source switch (one 20 ms packet).
    switch_ts_step: u32,
}

/// `a` is after `b` in 16-bit sequence space.
fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl SeqRewriter {
    /// A rewriter whose first packet keeps the source's numbering; `clock_rate` sets the
    /// timestamp step used across a source switch.
    pub fn new(clock_rate: u32) -> Self {
        SeqRewriter {
            source: None,
            seq_delta: 0,
            ts_delta: 0,
            last_seq: 0,
            last_ts: 0,
            started: false,
            switch_ts_step: (clock_rate / 50).max(1),
        }
    }

    /// The outbound (sequence, timestamp) for a packet from `source`.
    pub fn map(&mut self, source: u32, seq: u16, ts: u32) -> (u16, u32) {
        if self.source != Some(source) {
            if self.started {
                self.seq_delta = self.last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_delta = self
                    .last_ts
                    .wrapping_add(self.switch_ts_step)
                    .wrapping_sub(ts);
            }
            self.source = Some(source);
        }
        let out = (
            seq.wrapping_add(self.seq_delta),
            ts.wrapping_add(self.ts_delta),
        );
        if !self.started || seq_after(out.0, self.last_seq) {
            self.last_seq = out.0;
            self.last_ts = out.1;
            self.started = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_passes_through() {
        let mut r = SeqRewriter::new(8000);
        for i in 0..100u16 {
            let seq = 65_500u16.wrapping_add(i);
            let ts = 1_000u32.wrapping_add(u32::from(i) * 160);
            assert_eq!(r.map(7, seq, ts), (seq, ts));
        }
    }

    #[test]
    fn source_switch_continues_numbering() {
        let mut r = SeqRewriter::new(8000);
        for i in 0..10u16 {
            r.map(1, 100 + i, 16_000 + u32::from(i) * 160);
        }
        // A new source with unrelated numbering continues right after the last packet.
        assert_eq!(r.map(2, 40_000, 999_999), (110, 16_000 + 9 * 160 + 160));
        assert_eq!(r.map(2, 40_001, 999_999 + 160), (111, 16_000 + 11 * 160));
        // Switching back continues too, even across the 16-bit wrap of the source.
        assert_eq!(r.map(1, 65_535, 5).0, 112);
        assert_eq!(r.map(1, 0, 165).0, 113);
    }

    #[test]
    fn reordered_packets_keep_their_place() {
        let mut r = SeqRewriter::new(8000);
        r.map(1, 10, 0);
        r.map(1, 12, 320);
        // A late packet maps into the gap and does not move the high-water mark.
        assert_eq!(r.map(1, 11, 160), (11, 160));
        assert_eq!(r.map(2, 500, 0).0, 13);
    }
}
