//! Key-frame requests toward a publisher, aggregated over consumers and rate-limited.

use std::time::{Duration, Instant};

/// How a publisher is asked for a key frame, as negotiated (`a=rtcp-fb:* nack pli`,
/// `a=rtcp-fb:* ccm fir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyFrameMethod {
    /// Picture loss indication (RFC 4585 section 6.3.1).
    #[default]
    Pli,
    /// Full intra request (RFC 5104 section 4.3.1) with its command sequence number.
    Fir,
}

/// One request to send upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFrameRequest {
    /// Send a PLI.
    Pli,
    /// Send a FIR with this command sequence number.
    Fir {
        /// Incremented per new request, repeated when the same request is resent.
        seq_nr: u8,
    },
}

/// What the requester did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyFrameCounters {
    /// Requests from consumers (and from the SFU itself).
    pub requested: u64,
    /// Requests folded into one already waiting or sent.
    pub aggregated: u64,
    /// Requests sent upstream, repeats included.
    pub sent: u64,
    /// Requests sent again because no key frame came within the interval.
    pub repeated: u64,
    /// Key frames that arrived.
    pub key_frames: u64,
}

/// Aggregates the key-frame requests of one producer encoding: however many consumers ask,
/// at most one request goes upstream per `min_interval`, and it is repeated at that interval
/// until a key frame arrives.
#[derive(Debug, Clone)]
pub struct KeyFrameRequester {
    method: KeyFrameMethod,
    min_interval: Duration,
    fir_seq: u8,
    pending: bool,
    /// When the current round's first request came.
    pending_since: Instant,
    /// A request of the current round was sent (the next send is a repeat).
    sent_this_round: bool,
    last_sent: Option<Instant>,
    counters: KeyFrameCounters,
}

impl KeyFrameRequester {
    /// A requester using `method`, sending at most one request per `min_interval`; `now`
    /// is the creation time.
    pub fn new(now: Instant, method: KeyFrameMethod, min_interval: Duration) -> Self {
        Self {
            pending_since: now,
            method,
            min_interval,
            fir_seq: 0,
            pending: false,
            sent_this_round: false,
            last_sent: None,
            counters: KeyFrameCounters::default(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> &KeyFrameCounters {
        &self.counters
    }

    /// Whether a key frame is wanted and has not arrived.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// A consumer (or the SFU) wants a key frame.
    pub fn handle_request(&mut self, now: Instant) {
        self.counters.requested += 1;
        if self.pending {
            self.counters.aggregated += 1;
            return;
        }
        self.pending = true;
        self.pending_since = now;
        self.sent_this_round = false;
        if self.method == KeyFrameMethod::Fir {
            self.fir_seq = self.fir_seq.wrapping_add(1);
        }
    }

    /// A key frame arrived from the publisher: the round is over.
    pub fn handle_key_frame(&mut self) {
        self.counters.key_frames += 1;
        self.pending = false;
        self.sent_this_round = false;
    }

    fn next_allowed(&self) -> Option<Instant> {
        self.last_sent.map(|t| t + self.min_interval)
    }

    /// The request to send now, if one is wanted and the interval allows it.
    pub fn poll_request(&mut self, now: Instant) -> Option<KeyFrameRequest> {
        if !self.pending || self.next_allowed().is_some_and(|t| now < t) {
            return None;
        }
        self.last_sent = Some(now);
        self.counters.sent += 1;
        if self.sent_this_round {
            self.counters.repeated += 1;
        }
        self.sent_this_round = true;
        Some(match self.method {
            KeyFrameMethod::Pli => KeyFrameRequest::Pli,
            KeyFrameMethod::Fir => KeyFrameRequest::Fir {
                seq_nr: self.fir_seq,
            },
        })
    }

    /// When a request may be sent next, if one is wanted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        Some(match self.next_allowed() {
            Some(t) => t.max(self.pending_since),
            None => self.pending_since,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn many_requests_make_one_pli_per_interval_until_a_key_frame() {
        let t0 = Instant::now();
        let mut k = KeyFrameRequester::new(t0, KeyFrameMethod::Pli, Duration::from_millis(300));
        assert_eq!(k.poll_request(t0), None);
        assert_eq!(k.poll_timeout(), None);
        // A PLI flood: 1,000 consumers' requests over one second.
        let mut sent = Vec::new();
        for n in 0..1_000u64 {
            let now = ms(t0, n);
            k.handle_request(now);
            if let Some(r) = k.poll_request(now) {
                sent.push((n, r));
            }
            if n == 500 {
                k.handle_key_frame();
            }
        }
        // Sent at 0 and repeated at 300 (no key frame yet); the key frame at 500 ends the
        // round; the next request at 501 waits for the interval (600).
        assert_eq!(
            sent.iter().map(|s| s.0).collect::<Vec<_>>(),
            [0, 300, 600, 900]
        );
        let c = *k.counters();
        assert_eq!(c.requested, 1_000);
        assert_eq!(c.sent, 4);
        assert_eq!(c.repeated, 2);
        assert_eq!(c.aggregated, 1_000 - 2);
        assert_eq!(c.key_frames, 1);
        assert!(k.is_pending());
        assert_eq!(k.poll_timeout(), Some(ms(t0, 1_200)));
    }

    #[test]
    fn fir_sequence_numbers_advance_per_new_request_only() {
        let t0 = Instant::now();
        let mut k = KeyFrameRequester::new(t0, KeyFrameMethod::Fir, Duration::from_millis(100));
        k.handle_request(t0);
        assert_eq!(k.poll_timeout(), Some(t0));
        assert_eq!(k.poll_request(t0), Some(KeyFrameRequest::Fir { seq_nr: 1 }));
        // The repeat of an unanswered request keeps its number.
        assert_eq!(
            k.poll_request(ms(t0, 100)),
            Some(KeyFrameRequest::Fir { seq_nr: 1 })
        );
        k.handle_key_frame();
        k.handle_request(ms(t0, 150));
        assert_eq!(k.poll_timeout(), Some(ms(t0, 200)));
        assert_eq!(k.poll_request(ms(t0, 150)), None);
        assert_eq!(
            k.poll_request(ms(t0, 200)),
            Some(KeyFrameRequest::Fir { seq_nr: 2 })
        );
        for n in 0..300u64 {
            k.handle_key_frame();
            k.handle_request(ms(t0, 1_000 + n * 100));
            k.poll_request(ms(t0, 1_000 + n * 100));
        }
        // Wrapped modulo 256.
        assert_eq!(k.fir_seq, (302 % 256) as u8);
    }
}
