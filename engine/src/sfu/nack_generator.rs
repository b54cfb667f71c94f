//! Asking a publisher to resend what the SFU lost (RFC 4585 generic NACK, upstream side).

use std::time::{Duration, Instant};

use crate::rtp::SeqNo;

/// When and how long the SFU asks for a missing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackGeneratorConfig {
    /// Missing packets tracked at once; the oldest is given up when a new gap needs room.
    pub capacity: usize,
    /// A jump forward larger than this is not a loss to repair: the list is cleared and a
    /// key frame should be requested instead.
    pub max_gap: u64,
    /// Wait before the first NACK for a gap (reordering).
    pub first_delay: Duration,
    /// Wait between NACKs for the same packet (about one round trip).
    pub retry_interval: Duration,
    /// NACKs per packet before giving up.
    pub max_retries: u8,
    /// Give up on a packet this long after it was found missing.
    pub give_up_after: Duration,
}

impl Default for NackGeneratorConfig {
    fn default() -> Self {
        Self {
            capacity: 256,
            max_gap: 500,
            first_delay: Duration::from_millis(5),
            retry_interval: Duration::from_millis(60),
            max_retries: 10,
            give_up_after: Duration::from_millis(1_000),
        }
    }
}

/// What a received sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next one, or ahead with a gap now tracked.
    InOrder,
    /// A packet that was missing (a retransmission or a late one).
    Recovered,
    /// Older than the highest and not missing: a duplicate, or missing but given up.
    Old,
    /// Jumped forward by more than `max_gap`: nothing tracked, ask for a key frame.
    GapTooBig,
}

/// What the generator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackGeneratorCounters {
    /// Packets found missing.
    pub missing: u64,
    /// Missing packets that arrived.
    pub recovered: u64,
    /// Sequence numbers put in NACKs (retries included).
    pub requested: u64,
    /// Missing packets given up (retries, deadline, or no room).
    pub gave_up: u64,
    /// Forward jumps beyond `max_gap`.
    pub gaps_too_big: u64,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: SeqNo,
    found: Instant,
    next: Instant,
    retries: u8,
}

/// Tracks the gaps of one incoming stream and says which sequence numbers to NACK when.
/// The list is allocated once at `capacity` and kept in sequence order.
#[derive(Debug)]
pub struct NackGenerator {
    config: NackGeneratorConfig,
    highest: Option<SeqNo>,
    /// The lowest sequence number seen: a packet below it (reordered at the start) opens
    /// a gap backwards.
    lowest: SeqNo,
    missing: Vec<Missing>,
    counters: NackGeneratorCounters,
}

impl NackGenerator {
    /// A generator with `config`.
    pub fn new(config: NackGeneratorConfig) -> Self {
        Self {
            missing: Vec::with_capacity(config.capacity.max(1)),
            config,
            highest: None,
            lowest: SeqNo(0),
            counters: NackGeneratorCounters::default(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> &NackGeneratorCounters {
        &self.counters
    }

    /// Missing packets tracked now.
    pub fn pending(&self) -> usize {
        self.missing.len()
    }

    /// Takes a received (extended) sequence number.
    pub fn handle_packet(&mut self, now: Instant, seq: SeqNo) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.lowest = seq;
            return Arrival::InOrder;
        };
        if seq < self.lowest {
            // Reordered before the first packet seen: what lies between is missing too.
            let gap = self.lowest.0 - seq.0 - 1;
            let room = (self.config.capacity.max(1) - self.missing.len()) as u64;
            if gap <= self.config.max_gap && gap <= room {
                self.missing.splice(
                    0..0,
                    (seq.0 + 1..self.lowest.0).map(|s| Missing {
                        seq: SeqNo(s),
                        found: now,
                        next: now + self.config.first_delay,
                        retries: 0,
                    }),
                );
                self.counters.missing += gap;
            }
            self.lowest = seq;
            return Arrival::Old;
        }
        if seq <= highest {
            return match self.missing.binary_search_by_key(&seq, |m| m.seq) {
                Ok(i) => {
                    self.missing.remove(i);
                    self.counters.recovered += 1;
                    Arrival::Recovered
                }
                Err(_) => Arrival::Old,
            };
        }
        self.highest = Some(seq);
        let gap = seq.0 - highest.0 - 1;
        if gap == 0 {
            return Arrival::InOrder;
        }
        if gap > self.config.max_gap {
            self.counters.gaps_too_big += 1;
            self.counters.gave_up += self.missing.len() as u64;
            self.missing.clear();
            return Arrival::GapTooBig;
        }
        let capacity = self.config.capacity.max(1);
        // Only the newest `capacity` of a large gap can be tracked.
        let first = seq.0 - gap.min(capacity as u64);
        self.counters.missing += gap;
        self.counters.gave_up += gap - (seq.0 - first);
        // Make room once (oldest first), so a hostile jump costs one shift, not one per
        // packet.
        let new = (seq.0 - first) as usize;
        let overflow = (self.missing.len() + new).saturating_sub(capacity);
        let dropped = overflow.min(self.missing.len());
        self.missing.drain(..dropped);
        self.counters.gave_up += dropped as u64;
        for s in first..seq.0 {
            self.missing.push(Missing {
                seq: SeqNo(s),
                found: now,
                next: now + self.config.first_delay,
                retries: 0,
            });
        }
        Arrival::InOrder
    }

    /// Writes into `out` the sequence numbers to NACK now (oldest first, at most
    /// `out.len()`), drops the ones past their retries or deadline, and returns how many were
    /// written.
    pub fn poll_nacks(&mut self, now: Instant, out: &mut [u16]) -> usize {
        let cfg = self.config;
        let before = self.missing.len();
        self.missing.retain(|m| {
            m.retries < cfg.max_retries
                && now.saturating_duration_since(m.found) < cfg.give_up_after
        });
        self.counters.gave_up += (before - self.missing.len()) as u64;
        let mut n = 0;
        for m in &mut self.missing {
            if n == out.len() {
                break;
            }
            if m.next > now {
                continue;
            }
            if let Some(slot) = out.get_mut(n) {
                *slot = m.seq.wire();
                n += 1;
            }
            m.retries += 1;
            m.next = now + cfg.retry_interval;
        }
        self.counters.requested += n as u64;
        n
    }

    /// When the next NACK is due, if any packet is missing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.missing.iter().map(|m| m.next).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn nacks_gaps_after_the_delay_and_forgets_recovered_packets() {
        let t0 = Instant::now();
        let mut g = NackGenerator::new(NackGeneratorConfig::default());
        assert_eq!(g.handle_packet(t0, SeqNo(65_534)), Arrival::InOrder);
        assert_eq!(g.handle_packet(t0, SeqNo(65_535)), Arrival::InOrder);
        // 65_536 and 65_537 lost, across the 16-bit wrap.
        assert_eq!(g.handle_packet(t0, SeqNo(65_538)), Arrival::InOrder);
        let mut out = [0u16; 16];
        assert_eq!(g.poll_nacks(t0, &mut out), 0);
        assert_eq!(g.poll_timeout(), Some(ms(t0, 5)));
        assert_eq!(g.poll_nacks(ms(t0, 5), &mut out), 2);
        assert_eq!(out[..2], [0, 1]);
        // Not again before the retry interval.
        assert_eq!(g.poll_nacks(ms(t0, 20), &mut out), 0);
        assert_eq!(
            g.handle_packet(ms(t0, 30), SeqNo(65_536)),
            Arrival::Recovered
        );
        assert_eq!(g.handle_packet(ms(t0, 30), SeqNo(65_536)), Arrival::Old);
        assert_eq!(g.poll_nacks(ms(t0, 65), &mut out), 1);
        assert_eq!(out[0], 1);
        assert_eq!(g.counters().recovered, 1);
    }

    #[test]
    fn a_packet_older_than_the_first_opens_a_gap_backwards() {
        let t0 = Instant::now();
        let mut g = NackGenerator::new(NackGeneratorConfig::default());
        g.handle_packet(t0, SeqNo(106));
        g.handle_packet(t0, SeqNo(107));
        // 100 arrives late; 101-105 are still on their way or lost.
        assert_eq!(g.handle_packet(t0, SeqNo(100)), Arrival::Old);
        assert_eq!(g.pending(), 5);
        assert_eq!(g.handle_packet(t0, SeqNo(103)), Arrival::Recovered);
        let mut out = [0u16; 8];
        assert_eq!(g.poll_nacks(ms(t0, 5), &mut out), 4);
        assert_eq!(out[..4], [101, 102, 104, 105]);
    }

    #[test]
    fn gives_up_after_retries_or_the_deadline_and_stays_bounded() {
        let t0 = Instant::now();
        let cfg = NackGeneratorConfig {
            capacity: 8,
            ..Default::default()
        };
        let mut g = NackGenerator::new(cfg);
        g.handle_packet(t0, SeqNo(0));
        g.handle_packet(t0, SeqNo(2));
        let mut out = [0u16; 4];
        let mut sent = 0;
        for n in 0..2_000u64 {
            sent += g.poll_nacks(ms(t0, n), &mut out);
        }
        assert_eq!(sent, 10);
        assert_eq!(g.pending(), 0);
        assert_eq!(g.counters().gave_up, 1);
        // A 100-packet gap keeps only the newest 8.
        g.handle_packet(ms(t0, 3_000), SeqNo(103));
        assert_eq!(g.pending(), 8);
        assert_eq!(g.counters().gave_up, 1 + 92);
        // Nothing is asked after the deadline.
        let t = ms(t0, 3_000 + 1_001);
        assert_eq!(g.poll_nacks(t, &mut out), 0);
        assert_eq!(g.pending(), 0);
        // A huge jump clears and asks for a key frame.
        g.handle_packet(t, SeqNo(110));
        assert_eq!(g.handle_packet(t, SeqNo(10_000)), Arrival::GapTooBig);
        assert_eq!(g.pending(), 0);
        assert_eq!(g.counters().gaps_too_big, 1);
    }
}
