//! Session timers (RFC 4028) for calls Chorus answers: negotiating the interval and the
//! refresher from an INVITE or UPDATE, and a sans-IO timer that says when we must refresh and
//! when an unrefreshed session has expired (the call then ends with BYE).

use std::fmt;
use std::time::{Duration, Instant};

/// RFC 4028's floor for Min-SE, in seconds.
pub const MIN_SE_FLOOR_SECS: u32 = 90;

/// Who sends the refreshes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    /// The caller (UAC of the dialog-creating INVITE).
    Uac,
    /// Chorus (the UAS).
    Uas,
}

impl Refresher {
    fn name(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A parsed Session-Expires value: `delta-seconds [;refresher=uac|uas]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires {
    /// Interval in seconds.
    pub secs: u32,
    /// Refresher, if the header named one.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses a header value; None when malformed (treated as absent, then 400 by the caller
    /// if it insists).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let secs = parts.next()?.trim().parse().ok()?;
        let mut refresher = None;
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            if k.trim().eq_ignore_ascii_case("refresher") {
                refresher = match v.trim().to_ascii_lowercase().as_str() {
                    "uac" => Some(Refresher::Uac),
                    "uas" => Some(Refresher::Uas),
                    _ => return None,
                };
            }
        }
        Some(SessionExpires { secs, refresher })
    }
}

impl fmt::Display for SessionExpires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.secs)?;
        if let Some(r) = self.refresher {
            write!(f, ";refresher={}", r.name())?;
        }
        Ok(())
    }
}

/// Our session timer policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerPolicy {
    /// Interval we ask for when the caller names none, seconds.
    pub session_expires_secs: u32,
    /// Smallest interval we accept, seconds (>= 90).
    pub min_se_secs: u32,
}

impl Default for TimerPolicy {
    fn default() -> Self {
        TimerPolicy {
            session_expires_secs: 1800,
            min_se_secs: MIN_SE_FLOOR_SECS,
        }
    }
}

/// What to answer a session-refresh request (INVITE/UPDATE) with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiation {
    /// Run timers: put this Session-Expires (and `Require: timer` when the caller supports
    /// timers) in the 2xx.
    Accept(SessionExpires),
    /// Answer `422 Session Interval Too Small` with `Min-SE: secs`.
    TooSmall {
        /// Our Min-SE.
        min_se_secs: u32,
    },
}

/// Decides the session interval and refresher for a request carrying `session_expires`
/// (None: no header), `min_se` (the Min-SE header, if any) and whether the caller listed
/// `timer` in Supported.
pub fn negotiate(
    policy: TimerPolicy,
    session_expires: Option<SessionExpires>,
    min_se: Option<u32>,
    caller_supports_timer: bool,
) -> Negotiation {
    let our_min = policy.min_se_secs.max(MIN_SE_FLOOR_SECS);
    let floor = our_min.max(min_se.unwrap_or(0));
    match session_expires {
        Some(se) if se.secs < our_min => Negotiation::TooSmall {
            min_se_secs: our_min,
        },
        Some(se) => Negotiation::Accept(SessionExpires {
            secs: se.secs,
            // RFC 4028 9: a refresher the caller chose stands; otherwise one that supports
            // timers refreshes itself, sparing the server a re-INVITE per call.
            refresher: Some(se.refresher.unwrap_or(if caller_supports_timer {
                Refresher::Uac
            } else {
                Refresher::Uas
            })),
        }),
        None => Negotiation::Accept(SessionExpires {
            secs: policy.session_expires_secs.max(floor),
            refresher: Some(if caller_supports_timer {
                Refresher::Uac
            } else {
                Refresher::Uas
            }),
        }),
    }
}

/// Why the timer fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerReason {
    /// We are the refresher: send a re-INVITE or UPDATE now (half the interval passed).
    RefreshDue,
    /// The caller was the refresher and did not refresh: end the call with BYE.
    Expired,
}

/// The running session timer of one call.
#[derive(Clone, Debug)]
pub struct SessionTimer {
    interval: Duration,
    refresher: Refresher,
    deadline: Instant,
    fired: bool,
}

impl SessionTimer {
    /// Starts at `now` (the 2xx was sent or received) with the negotiated values.
    pub fn start(now: Instant, negotiated: SessionExpires) -> Self {
        let mut t = SessionTimer {
            interval: Duration::from_secs(u64::from(negotiated.secs.max(1))),
            refresher: negotiated.refresher.unwrap_or(Refresher::Uac),
            deadline: now,
            fired: false,
        };
        t.rearm(now);
        t
    }

    fn rearm(&mut self, now: Instant) {
        self.fired = false;
        self.deadline = match self.refresher {
            Refresher::Uas => now + self.interval / 2,
            // RFC 4028 10: the side that does not refresh sends BYE at the interval minus
            // the smaller of 32 s and a third of it.
            Refresher::Uac => {
                now + self.interval - (self.interval / 3).min(Duration::from_secs(32))
            }
        };
    }

    /// A refresh succeeded at `now` (a 2xx to a refreshing re-INVITE/UPDATE, either way),
    /// possibly with new values.
    pub fn refreshed(&mut self, now: Instant, negotiated: SessionExpires) {
        self.interval = Duration::from_secs(u64::from(negotiated.secs.max(1)));
        if let Some(r) = negotiated.refresher {
            self.refresher = r;
        }
        self.rearm(now);
    }

    /// When the timer fires next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, TimerReason)> {
        if self.fired {
            return None;
        }
        let reason = match self.refresher {
            Refresher::Uas => TimerReason::RefreshDue,
            Refresher::Uac => TimerReason::Expired,
        };
        Some((self.deadline, reason))
    }

    /// Advances to `now`; returns what fired, once.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerReason> {
        let (at, reason) = self.poll_timeout()?;
        if now < at {
            return None;
        }
        self.fired = true;
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=uac"),
            Some(SessionExpires {
                secs: 1800,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 90 ; REFRESHER = UAS "),
            Some(SessionExpires {
                secs: 90,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(SessionExpires::parse("600").unwrap().refresher, None);
        for bad in ["", "abc", "-5", "600;refresher=proxy", "99999999999"] {
            assert_eq!(SessionExpires::parse(bad), None, "{bad:?}");
        }
        let se = SessionExpires {
            secs: 1800,
            refresher: Some(Refresher::Uas),
        };
        assert_eq!(SessionExpires::parse(&se.to_string()), Some(se));
    }

    #[test]
    fn negotiation_follows_rfc4028() {
        let p = TimerPolicy::default();
        let se = |secs, refresher| Some(SessionExpires { secs, refresher });
        // Too small: 422 with our Min-SE.
        assert_eq!(
            negotiate(p, se(60, None), None, true),
            Negotiation::TooSmall { min_se_secs: 90 }
        );
        // The caller's refresher stands.
        assert_eq!(
            negotiate(p, se(600, Some(Refresher::Uas)), None, true),
            Negotiation::Accept(SessionExpires {
                secs: 600,
                refresher: Some(Refresher::Uas)
            })
        );
        // Unnamed: a timer-capable caller refreshes; otherwise we do.
        assert_eq!(
            negotiate(p, se(600, None), None, true),
            Negotiation::Accept(SessionExpires {
                secs: 600,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(
            negotiate(p, None, None, false),
            Negotiation::Accept(SessionExpires {
                secs: 1800,
                refresher: Some(Refresher::Uas)
            })
        );
        // No Session-Expires but a large Min-SE from a proxy on the way: respect it.
        assert_eq!(
            negotiate(p, None, Some(3600), true),
            Negotiation::Accept(SessionExpires {
                secs: 3600,
                refresher: Some(Refresher::Uac)
            })
        );
    }

    #[test]
    fn we_refresh_at_half_the_interval() {
        let t0 = Instant::now();
        let mut t = SessionTimer::start(
            t0,
            SessionExpires {
                secs: 600,
                refresher: Some(Refresher::Uas),
            },
        );
        assert_eq!(
            t.poll_timeout(),
            Some((t0 + Duration::from_secs(300), TimerReason::RefreshDue))
        );
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(299)), None);
        let t1 = t0 + Duration::from_secs(300);
        assert_eq!(t.handle_timeout(t1), Some(TimerReason::RefreshDue));
        assert_eq!(t.handle_timeout(t1), None, "fires once");
        t.refreshed(
            t1,
            SessionExpires {
                secs: 600,
                refresher: None,
            },
        );
        assert_eq!(t.poll_timeout().unwrap().0, t1 + Duration::from_secs(300));
    }

    #[test]
    fn unrefreshed_caller_session_expires() {
        let t0 = Instant::now();
        let mut t = SessionTimer::start(
            t0,
            SessionExpires {
                secs: 1800,
                refresher: Some(Refresher::Uac),
            },
        );
        // 1800 - min(32, 600) = 1768 s.
        assert_eq!(
            t.poll_timeout(),
            Some((t0 + Duration::from_secs(1768), TimerReason::Expired))
        );
        // A refresh from the caller pushes it out.
        let t1 = t0 + Duration::from_secs(900);
        t.refreshed(
            t1,
            SessionExpires {
                secs: 90,
                refresher: Some(Refresher::Uac),
            },
        );
        // 90 - min(32, 30) = 60 s.
        assert_eq!(t.poll_timeout().unwrap().0, t1 + Duration::from_secs(60));
        assert_eq!(
            t.handle_timeout(t1 + Duration::from_secs(60)),
            Some(TimerReason::Expired)
        );
    }
}
