//! [`Link`]: the simulated path in front of a subscriber: seeded random loss and a
//! token-bucket bandwidth limit that drops what is over it.

use std::time::{Duration, Instant};

use super::Rng;

/// A subscriber path's impairments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Fraction of packets dropped at random, 0 to 1.
    pub loss: f64,
    /// The bandwidth limit in bits per second, if any.
    pub bandwidth_bps: Option<u64>,
    /// How much the bucket holds, as time at the limit (a bottleneck's queue).
    pub burst: Duration,
    /// From when the limit applies (before it the path is unlimited).
    pub limit_from: Option<Instant>,
    /// Seeds the loss.
    pub seed: u64,
}

/// What a link did to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed.
    Pass,
    /// Dropped at random (`loss`).
    Lost,
    /// Dropped for being over the bandwidth limit.
    OverLimit,
}

/// A token bucket in bytes plus random loss.
#[derive(Debug, Clone)]
pub struct Link {
    config: LinkConfig,
    rng: Rng,
    tokens: f64,
    last: Option<Instant>,
}

impl Link {
    /// A link with `config`, its bucket full.
    pub fn new(config: LinkConfig) -> Self {
        let mut link = Link {
            rng: Rng::new(config.seed),
            config,
            tokens: 0.0,
            last: None,
        };
        link.tokens = link.capacity();
        link
    }

    fn capacity(&self) -> f64 {
        self.config
            .bandwidth_bps
            .map_or(0.0, |bps| {
                bps as f64 / 8.0 * self.config.burst.as_secs_f64()
            })
            .max(1_500.0)
    }

    /// Whether the limit applies at `now`.
    pub fn limited(&self, now: Instant) -> bool {
        self.config.bandwidth_bps.is_some() && self.config.limit_from.is_none_or(|t| now >= t)
    }

    /// The limit in force at `now`, bits per second.
    pub fn bandwidth_bps(&self, now: Instant) -> Option<u64> {
        self.limited(now)
            .then_some(self.config.bandwidth_bps)
            .flatten()
    }

    /// Passes or drops a packet of `bytes` arriving at `now`.
    pub fn admit(&mut self, now: Instant, bytes: usize) -> Verdict {
        if self.config.loss > 0.0 && self.rng.next_f64() < self.config.loss {
            return Verdict::Lost;
        }
        let Some(bps) = self.bandwidth_bps(now) else {
            return Verdict::Pass;
        };
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * bps as f64 / 8.0).min(self.capacity());
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        let need = bytes as f64;
        if self.tokens >= need {
            self.tokens -= need;
            Verdict::Pass
        } else {
            Verdict::OverLimit
        }
    }
}
