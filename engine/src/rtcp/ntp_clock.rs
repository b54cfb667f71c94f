//! Maps monotonic instants to NTP wall-clock time without reading a clock.

use std::time::Instant;

use crate::rtcp::NtpTime;

/// A wall-clock anchor: the NTP time that corresponded to one `Instant`. The runtime builds it
/// once from `Instant::now()` and `SystemTime::now()`; protocol code then converts the `now`
/// it is handed, so sender reports and RTT use monotonic time throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpClock {
    anchor: Instant,
    anchor_ntp: NtpTime,
}

impl NtpClock {
    /// A clock on which `anchor` is at `anchor_ntp`.
    pub const fn new(anchor: Instant, anchor_ntp: NtpTime) -> Self {
        Self { anchor, anchor_ntp }
    }

    /// The NTP time at `now`.
    pub fn ntp(&self, now: Instant) -> NtpTime {
        match now.checked_duration_since(self.anchor) {
            Some(after) => self.anchor_ntp + after,
            None => self.anchor_ntp - self.anchor.saturating_duration_since(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn converts_before_and_after_the_anchor() {
        let base = Instant::now();
        let anchor = base + Duration::from_secs(10);
        let c = NtpClock::new(anchor, NtpTime(100 << 32));
        assert_eq!(c.ntp(anchor), NtpTime(100 << 32));
        assert_eq!(
            c.ntp(anchor + Duration::from_millis(250)),
            NtpTime((100 << 32) + (1 << 30))
        );
        assert_eq!(c.ntp(base), NtpTime(90 << 32));
    }
}
