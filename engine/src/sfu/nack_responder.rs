//! Answering a receiver's NACKs (RFC 4585 section 6.2.1) from a consumer's send history,
//! within limits.

use std::time::{Duration, Instant};

use crate::rtcp::Nack;
use crate::sfu::{HistoryEntry, SendHistory, SentPacket, TokenBucket};

/// How much retransmission one consumer's NACKs may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackLimits {
    /// Sequence numbers taken from one NACK packet; the rest are counted and ignored.
    pub max_seqs_per_nack: usize,
    /// Retransmissions a second on average.
    pub rate_per_s: u32,
    /// Retransmissions allowed in a burst.
    pub burst: u32,
    /// A packet is not resent again sooner than this (a repeated NACK while the first
    /// retransmission is in flight).
    pub min_interval: Duration,
    /// A packet is resent at most this often.
    pub max_resends: u8,
}

impl Default for NackLimits {
    fn default() -> Self {
        Self {
            max_seqs_per_nack: 64,
            rate_per_s: 400,
            burst: 100,
            min_interval: Duration::from_millis(40),
            max_resends: 8,
        }
    }
}

/// What a consumer's NACKs asked for and what came of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackCounters {
    /// NACK packets received.
    pub nacks: u64,
    /// Sequence numbers asked for.
    pub requested: u64,
    /// Sequence numbers beyond `max_seqs_per_nack`, ignored.
    pub capped: u64,
    /// Refused by the rate limit.
    pub rate_limited: u64,
    /// Asked again within `min_interval`, or past `max_resends`.
    pub too_soon: u64,
    /// No longer in the send history or the packet store.
    pub missing: u64,
    /// Packets resent.
    pub retransmitted: u64,
}

/// Answers one consumer's NACKs: looks each sequence number up in its [`SendHistory`] and
/// hands the entries that pass the limits to a resend function.
#[derive(Debug)]
pub struct NackResponder {
    history: SendHistory,
    limits: NackLimits,
    bucket: TokenBucket,
    counters: NackCounters,
}

impl NackResponder {
    /// A responder over a history of `capacity` packets.
    pub fn new(capacity: usize, limits: NackLimits) -> Self {
        Self {
            history: SendHistory::new(capacity),
            bucket: TokenBucket::new(limits.rate_per_s, limits.burst),
            limits,
            counters: NackCounters::default(),
        }
    }

    /// Remembers a packet the consumer sent.
    pub fn record(&mut self, sent: SentPacket) {
        self.history.record(sent);
    }

    /// Forgets what was sent from `producer` (see [`SendHistory::forget_producer`]).
    pub fn forget_producer(&mut self, producer: u32) {
        self.history.forget_producer(producer);
    }

    /// The counters so far.
    pub fn counters(&self) -> &NackCounters {
        &self.counters
    }

    /// Handles one NACK: for each sequence number (up to `max_seqs_per_nack`) still held,
    /// not resent too recently or too often, and within the rate, calls `resend`, which
    /// returns whether it could send it (false: the source bytes are gone).
    pub fn handle_nack(
        &mut self,
        now: Instant,
        nack: &Nack<'_>,
        mut resend: impl FnMut(&SentPacket) -> bool,
    ) {
        self.counters.nacks += 1;
        let mut taken = 0usize;
        for entry in nack.entries() {
            let asked = 1 + u64::from(entry.blp.count_ones());
            self.counters.requested += asked;
            for seq in entry.lost() {
                if taken >= self.limits.max_seqs_per_nack {
                    self.counters.capped += 1;
                    continue;
                }
                taken += 1;
                let Some(mut e) = self.history.lookup(seq) else {
                    self.counters.missing += 1;
                    continue;
                };
                if !Self::due(&self.limits, &e, now) {
                    self.counters.too_soon += 1;
                    continue;
                }
                if !self.bucket.try_take(now) {
                    self.counters.rate_limited += 1;
                    continue;
                }
                if resend(e.sent()) {
                    e.mark_resent(now);
                    self.counters.retransmitted += 1;
                } else {
                    self.counters.missing += 1;
                }
            }
        }
    }

    fn due(limits: &NackLimits, e: &HistoryEntry<'_>, now: Instant) -> bool {
        e.resends() < limits.max_resends
            && e.last_resent()
                .is_none_or(|t| now.saturating_duration_since(t) >= limits.min_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{SeqNo, Ssrc};

    fn responder(limits: NackLimits) -> NackResponder {
        let mut r = NackResponder::new(1_024, limits);
        for seq in 0..2_000u64 {
            r.record(SentPacket {
                out_seq: SeqNo(seq),
                producer: 0,
                encoding: 0,
                src_seq: SeqNo(seq),
                timestamp: 0,
                picture_id: None,
                tl0_pic_idx: None,
            });
        }
        r
    }

    fn nack(buf: &mut [u8], lost: impl IntoIterator<Item = u16>) -> Nack<'_> {
        let n = Nack::write(buf, Ssrc(1), Ssrc(2), lost).unwrap();
        Nack::parse(&buf[..n]).unwrap()
    }

    #[test]
    fn resends_what_is_held_once_per_interval() {
        let mut r = responder(NackLimits::default());
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        r.handle_nack(t0, &nack(&mut buf, [1_990, 1_991, 500]), |s| {
            got.push(s.src_seq.0);
            true
        });
        assert_eq!(got, [1_990, 1_991]);
        assert_eq!(r.counters().missing, 1);
        // Asked again at once: too soon; after the interval: resent.
        r.handle_nack(t0, &nack(&mut buf, [1_990]), |_| true);
        assert_eq!(r.counters().too_soon, 1);
        r.handle_nack(
            t0 + Duration::from_millis(50),
            &nack(&mut buf, [1_990]),
            |_| true,
        );
        assert_eq!(r.counters().retransmitted, 3);
        // The store lost the bytes.
        r.handle_nack(t0, &nack(&mut buf, [1_995]), |_| false);
        assert_eq!(r.counters().missing, 2);
    }

    #[test]
    fn a_nack_for_thousands_of_packets_is_capped_and_counted() {
        let mut r = responder(NackLimits::default());
        let t0 = Instant::now();
        // Every sequence number the history holds and more: 5,000 in one NACK.
        let mut buf = vec![0u8; 8_192];
        let n = Nack::write(&mut buf, Ssrc(1), Ssrc(2), 1_000..6_000u16).unwrap();
        let big = Nack::parse(&buf[..n]).unwrap();
        let mut resent = 0;
        r.handle_nack(t0, &big, |_| {
            resent += 1;
            true
        });
        let c = *r.counters();
        assert_eq!(c.requested, 5_000);
        assert_eq!(c.capped, 5_000 - 64);
        assert_eq!(resent, 64);
        // A storm of such NACKs is held to the rate: one second of them, every 10 ms.
        for ms in 0..100u64 {
            let at = t0 + Duration::from_millis(ms * 10);
            r.handle_nack(at, &big, |_| {
                resent += 1;
                true
            });
        }
        assert!(resent <= 100 + 400 + 1, "{resent}");
        assert!(r.counters().rate_limited + r.counters().too_soon > 0);
    }
}
