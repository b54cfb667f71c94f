//! A token bucket: a rate limit that allows bursts.

use std::time::Instant;

/// Allows `rate_per_s` events a second on average and bursts of up to `burst`, counted in
/// thousandths of a token so slow rates refill smoothly. Starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_s: u64,
    burst_milli: u64,
    tokens_milli: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket refilling `rate_per_s` tokens a second up to `burst` (at least 1).
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        let burst_milli = u64::from(burst.max(1)) * 1_000;
        Self {
            rate_per_s: u64::from(rate_per_s),
            burst_milli,
            tokens_milli: burst_milli,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let us = now.saturating_duration_since(last).as_micros();
            let us = u64::try_from(us).unwrap_or(u64::MAX);
            // rate tokens/s = rate * 1000 milli-tokens per 1e6 us.
            let add = us.saturating_mul(self.rate_per_s) / 1_000;
            self.tokens_milli = self.tokens_milli.saturating_add(add).min(self.burst_milli);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens_milli >= 1_000 {
            self.tokens_milli -= 1_000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_holds_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 10);
        assert_eq!((0..50).filter(|_| b.try_take(t0)).count(), 10);
        // One second later: 100 more at most, however often asked.
        let mut granted = 0;
        for ms in 1..=1_000u64 {
            let now = t0 + Duration::from_millis(ms);
            granted += (0..5).filter(|_| b.try_take(now)).count();
        }
        assert!((99..=101).contains(&granted), "{granted}");
        // A clock going backwards grants nothing extra.
        assert!(!b.try_take(t0));
    }
}
