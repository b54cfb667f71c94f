//! Overload control for new calls: a limit on concurrent calls, on call attempts per second
//! overall and per source address. Over a limit the caller gets `503 Service Unavailable` with
//! `Retry-After`, decided before anything is allocated for the call, so overload never leaves
//! a half-set-up call.
//!
//! Sans-IO: the caller passes `now`. The per-source table is bounded: when it is full, sources
//! whose budget has refilled are forgotten first; if none has, the newcomer shares one overflow
//! budget, so a flood from spoofed addresses cannot grow memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits for new calls.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// Concurrent calls at most.
    pub max_calls: usize,
    /// New call attempts per second, all sources together.
    pub attempts_per_sec: f64,
    /// Attempts allowed back to back above the rate, all sources.
    pub burst: f64,
    /// New call attempts per second from one source address.
    pub attempts_per_sec_per_source: f64,
    /// Attempts allowed back to back from one source.
    pub burst_per_source: f64,
    /// Source addresses tracked at most.
    pub max_sources: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_calls: 10_000,
            attempts_per_sec: 500.0,
            burst: 1000.0,
            attempts_per_sec_per_source: 100.0,
            burst_per_source: 200.0,
            max_sources: 65_536,
        }
    }
}

/// Why a call attempt was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server carries its maximum number of calls.
    #[error("maximum number of calls reached")]
    TooManyCalls,
    /// Call attempts over the server's rate.
    #[error("call attempt rate exceeded")]
    RateLimited,
    /// Call attempts from this source over its rate.
    #[error("call attempt rate from this source exceeded")]
    SourceRateLimited,
}

impl Refusal {
    /// The SIP status to answer with.
    pub fn status(self) -> u16 {
        503
    }

    /// Seconds for the Retry-After header.
    pub fn retry_after_secs(self) -> u32 {
        match self {
            Refusal::TooManyCalls => 30,
            Refusal::RateLimited | Refusal::SourceRateLimited => 5,
        }
    }
}

/// A token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(now: Instant, burst: f64) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Admission state of a server.
#[derive(Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    global: Bucket,
    sources: HashMap<IpAddr, Bucket>,
    /// Shared by sources that found the table full.
    overflow: Bucket,
    active: usize,
    refused: [u64; 3],
    /// When idle sources were last forgotten (a sweep costs a pass over the table, so it
    /// runs at most once per SWEEP_INTERVAL, however hard a flood knocks).
    last_sweep: Instant,
}

/// Least time between two sweeps of the source table.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Admission {
    /// Fresh state: every budget full.
    pub fn new(cfg: AdmissionConfig, now: Instant) -> Self {
        Admission {
            global: Bucket::full(now, cfg.burst),
            overflow: Bucket::full(now, cfg.burst_per_source),
            sources: HashMap::new(),
            cfg,
            active: 0,
            refused: [0; 3],
            last_sweep: now,
        }
    }

    /// Decides on a new call from `source`. On `Ok` the call counts as active until
    /// [`Admission::call_ended`].
    pub fn admit(&mut self, now: Instant, source: IpAddr) -> Result<(), Refusal> {
        let refusal = self.check(now, source);
        match refusal {
            Ok(()) => self.active += 1,
            Err(r) => self.refused[r as usize] += 1,
        }
        refusal
    }

    fn check(&mut self, now: Instant, source: IpAddr) -> Result<(), Refusal> {
        let cfg = &self.cfg;
        if self.active >= cfg.max_calls {
            return Err(Refusal::TooManyCalls);
        }
        // The source's budget first: a single noisy source must not use up everyone's.
        let (rate, burst) = (cfg.attempts_per_sec_per_source, cfg.burst_per_source);
        if !self.sources.contains_key(&source)
            && self.sources.len() >= cfg.max_sources
            && now.saturating_duration_since(self.last_sweep) >= SWEEP_INTERVAL
        {
            self.last_sweep = now;
            self.forget_idle(now);
        }
        let tracked = self.sources.contains_key(&source);
        let bucket = if tracked || self.sources.len() < self.cfg.max_sources {
            self.sources
                .entry(source)
                .or_insert_with(|| Bucket::full(now, burst))
        } else {
            &mut self.overflow
        };
        if !bucket.take(now, rate, burst) {
            return Err(Refusal::SourceRateLimited);
        }
        if !self
            .global
            .take(now, self.cfg.attempts_per_sec, self.cfg.burst)
        {
            return Err(Refusal::RateLimited);
        }
        Ok(())
    }

    /// Drops sources whose budget has refilled (they would start full anyway).
    fn forget_idle(&mut self, now: Instant) {
        let (rate, burst) = (
            self.cfg.attempts_per_sec_per_source,
            self.cfg.burst_per_source,
        );
        self.sources.retain(|_, b| {
            b.refill(now, rate, burst);
            b.tokens < burst
        });
    }

    /// A call admitted earlier has ended.
    pub fn call_ended(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    /// Calls now active.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Source addresses tracked now.
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Refusals so far, per reason.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize]
    }

    /// The time after which a refused source has a token again (for logs and tests).
    pub fn per_source_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.cfg.attempts_per_sec_per_source.max(1e-9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    fn cfg() -> AdmissionConfig {
        AdmissionConfig {
            max_calls: 1000,
            attempts_per_sec: 50.0,
            burst: 50.0,
            attempts_per_sec_per_source: 10.0,
            burst_per_source: 10.0,
            max_sources: 100,
        }
    }

    #[test]
    fn per_source_rate_then_refill() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(), t0);
        let src = ip(0x0a00_0001);
        for _ in 0..10 {
            assert_eq!(a.admit(t0, src), Ok(()));
        }
        assert_eq!(a.admit(t0, src), Err(Refusal::SourceRateLimited));
        assert_eq!(Refusal::SourceRateLimited.status(), 503);
        // Another source is not affected by the first one's burst.
        assert_eq!(a.admit(t0, ip(2)), Ok(()));
        // 100 ms later the source has one attempt again.
        let t1 = t0 + a.per_source_interval();
        assert_eq!(a.admit(t1, src), Ok(()));
        assert_eq!(a.admit(t1, src), Err(Refusal::SourceRateLimited));
        assert_eq!(a.refused(Refusal::SourceRateLimited), 2);
    }

    #[test]
    fn global_rate_over_many_sources() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(), t0);
        let admitted = (0..80).filter(|&i| a.admit(t0, ip(i)).is_ok()).count();
        assert_eq!(admitted, 50);
        assert_eq!(a.refused(Refusal::RateLimited), 30);
        // Sustained: over 10 s at 100 attempts/s from distinct sources, about 50/s pass.
        let mut ok = 0;
        for k in 0..1000u32 {
            let now = t0 + Duration::from_millis(10 * u64::from(k + 1));
            if a.admit(now, ip(1000 + k % 90)).is_ok() {
                ok += 1;
            }
        }
        assert!((490..=510).contains(&ok), "{ok}");
    }

    #[test]
    fn concurrent_call_limit_and_release() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_calls = 3;
        let mut a = Admission::new(c, t0);
        for i in 0..3 {
            a.admit(t0, ip(i)).unwrap();
        }
        assert_eq!(a.admit(t0, ip(9)), Err(Refusal::TooManyCalls));
        assert_eq!(Refusal::TooManyCalls.retry_after_secs(), 30);
        a.call_ended();
        assert_eq!(a.active(), 2);
        assert_eq!(a.admit(t0, ip(9)), Ok(()));
    }

    #[test]
    fn spoofed_source_flood_stays_bounded() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.attempts_per_sec = 1e9;
        c.burst = 1e9;
        let mut a = Admission::new(c, t0);
        // 100,000 distinct sources within one second: the table never passes its bound, and
        // once it is full the newcomers share one source's budget (10 burst + 10/s).
        let mut ok = 0;
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 10);
            if a.admit(now, ip(i)).is_ok() {
                ok += 1;
                a.call_ended();
            }
            assert!(a.tracked_sources() <= 100);
        }
        assert!(ok <= 100 + 10 + 10, "{ok} admitted");
        // Once the flood stops, idle sources are forgotten and new ones tracked again.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(a.admit(later, ip(0xffff_0000)), Ok(()));
    }
}
