//! What a consumer sent, by its own sequence number, so a NACK can be answered.

use std::time::Instant;

use crate::rtp::SeqNo;

/// One packet a consumer sent: where its bytes are (the producer encoding and that stream's
/// sequence number, in the encoding's [`PacketStore`](crate::sfu::PacketStore)) and the
/// rewrite that made it (outgoing sequence number, timestamp, VP8 picture ID and
/// TL0PICIDX), so the same packet can be rebuilt for a retransmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// The consumer's extended outgoing sequence number.
    pub out_seq: SeqNo,
    /// The producer the packet came from (its slot in the router).
    pub producer: u32,
    /// The producer encoding the packet came from (index in its producer).
    pub encoding: u8,
    /// The packet's extended sequence number in that encoding's stream.
    pub src_seq: SeqNo,
    /// The outgoing RTP timestamp.
    pub timestamp: u32,
    /// The outgoing VP8 picture ID, if rewritten.
    pub picture_id: Option<u16>,
    /// The outgoing VP8 TL0PICIDX, if rewritten.
    pub tl0_pic_idx: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    sent: SentPacket,
    last_resent: Option<Instant>,
    resends: u8,
}

/// A ring of a consumer's last `capacity` sent packets, indexed by outgoing sequence number
/// modulo the capacity (a power of two), allocated once.
#[derive(Debug)]
pub struct SendHistory {
    mask: u64,
    entries: Box<[Option<Entry>]>,
    highest: Option<SeqNo>,
}

/// A history entry handed to the NACK responder.
#[derive(Debug)]
pub struct HistoryEntry<'a> {
    entry: &'a mut Entry,
}

impl HistoryEntry<'_> {
    /// The packet as sent.
    pub fn sent(&self) -> &SentPacket {
        &self.entry.sent
    }

    /// When it was last resent.
    pub fn last_resent(&self) -> Option<Instant> {
        self.entry.last_resent
    }

    /// How often it was resent.
    pub fn resends(&self) -> u8 {
        self.entry.resends
    }

    /// Notes a resend at `now`.
    pub fn mark_resent(&mut self, now: Instant) {
        self.entry.last_resent = Some(now);
        self.entry.resends = self.entry.resends.saturating_add(1);
    }
}

impl SendHistory {
    /// A history of `capacity` packets (rounded up to a power of two, at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        Self {
            mask: capacity as u64 - 1,
            entries: vec![None; capacity].into_boxed_slice(),
            highest: None,
        }
    }

    fn index(&self, seq: SeqNo) -> usize {
        // The mask keeps the value below capacity, which fits usize.
        (seq.0 & self.mask) as usize
    }

    /// Remembers a sent packet.
    pub fn record(&mut self, sent: SentPacket) {
        let i = self.index(sent.out_seq);
        if let Some(e) = self.entries.get_mut(i) {
            *e = Some(Entry {
                sent,
                last_resent: None,
                resends: 0,
            });
        }
        if self.highest.is_none_or(|h| sent.out_seq > h) {
            self.highest = Some(sent.out_seq);
        }
    }

    /// Forgets every packet that came from `producer` (it left the router, whose slot may be
    /// reused: a later NACK must not rebuild another publisher's packet in its place).
    pub fn forget_producer(&mut self, producer: u32) {
        for e in self.entries.iter_mut() {
            if e.is_some_and(|e| e.sent.producer == producer) {
                *e = None;
            }
        }
    }

    /// The entry for a 16-bit outgoing sequence number from a NACK (taken as the nearest
    /// extended value at or below the highest sent), if still held.
    pub fn lookup(&mut self, wire: u16) -> Option<HistoryEntry<'_>> {
        let highest = self.highest?;
        let back = highest.wire().wrapping_sub(wire);
        let seq = SeqNo(highest.0.checked_sub(u64::from(back))?);
        let i = self.index(seq);
        let entry = self.entries.get_mut(i)?.as_mut()?;
        (entry.sent.out_seq == seq).then_some(HistoryEntry { entry })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(seq: u64) -> SentPacket {
        SentPacket {
            out_seq: SeqNo(seq),
            producer: 0,
            encoding: 1,
            src_seq: SeqNo(seq + 1_000),
            timestamp: seq as u32 * 3_000,
            picture_id: None,
            tl0_pic_idx: None,
        }
    }

    #[test]
    fn finds_recent_packets_by_wire_number_across_the_wrap() {
        let mut h = SendHistory::new(64);
        assert!(h.lookup(0).is_none());
        for seq in 65_500..65_600u64 {
            h.record(sent(seq));
        }
        for seq in 65_500..65_600u64 {
            let wire = seq as u16;
            let found = h.lookup(wire).map(|e| e.sent().src_seq);
            if seq >= 65_600 - 64 {
                assert_eq!(found, Some(SeqNo(seq + 1_000)));
            } else {
                assert_eq!(found, None);
            }
        }
        let mut e = h.lookup(65_599u64 as u16).unwrap();
        let now = Instant::now();
        e.mark_resent(now);
        assert_eq!(e.resends(), 1);
        assert_eq!(h.lookup(65_599u64 as u16).unwrap().last_resent(), Some(now));
    }
}
