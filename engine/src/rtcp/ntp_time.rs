//! The 64-bit NTP timestamp RTCP uses (RFC 3550 section 4).

use std::ops::{Add, Sub};
use std::time::Duration;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const UNIX_EPOCH_NTP_S: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, the binary fraction of a
/// second in the low 32 bits. Wraps in 2036 like the wire format; arithmetic wraps too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The NTP time of a wall-clock reading given as time since the Unix epoch (the runtime
    /// reads `SystemTime` once; this module never does).
    pub fn from_unix(since_unix_epoch: Duration) -> Self {
        NtpTime(units(since_unix_epoch).wrapping_add(UNIX_EPOCH_NTP_S << 32))
    }

    /// The whole seconds.
    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The fraction of a second in units of 2^-32 s.
    pub const fn fraction(self) -> u32 {
        // Truncation to the low 32 bits is the point.
        self.0 as u32
    }

    /// The middle 32 bits, the "compact" form used in LSR and for RTT (RFC 3550 section
    /// 6.4.1): 16 bits of seconds, 16 of fraction, in units of 1/65536 s.
    pub const fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

impl Add<Duration> for NtpTime {
    type Output = NtpTime;

    /// This time plus `d`, wrapping like the wire format.
    fn add(self, d: Duration) -> NtpTime {
        NtpTime(self.0.wrapping_add(units(d)))
    }
}

impl Sub<Duration> for NtpTime {
    type Output = NtpTime;

    /// This time minus `d`, wrapping like the wire format.
    fn sub(self, d: Duration) -> NtpTime {
        NtpTime(self.0.wrapping_sub(units(d)))
    }
}

/// `d` in units of 2^-32 s, wrapping past 2^32 s.
fn units(d: Duration) -> u64 {
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (d.as_secs() << 32).wrapping_add(frac)
}

/// `d` in units of 1/65536 s (the DLSR unit), saturating at `u32::MAX` (about 18 hours).
pub fn compact_from_duration(d: Duration) -> u32 {
    let units = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A value in units of 1/65536 s (LSR, DLSR, compact RTT) as a duration.
pub fn compact_to_duration(compact: u32) -> Duration {
    let nanos = (u64::from(compact) * 1_000_000_000) >> 16;
    Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_maps_to_1970_in_ntp() {
        let t = NtpTime::from_unix(Duration::ZERO);
        assert_eq!(t.seconds(), 2_208_988_800);
        assert_eq!(t.fraction(), 0);
        let half = NtpTime::from_unix(Duration::from_millis(1_500));
        assert_eq!(half.seconds(), 2_208_988_801);
        assert_eq!(half.fraction(), 1 << 31);
    }

    #[test]
    fn middle32_takes_low_seconds_and_high_fraction() {
        let t = NtpTime(0x1234_5678_9abc_def0);
        assert_eq!(t.middle32(), 0x5678_9abc);
        assert_eq!((t + Duration::from_secs(1)).middle32(), 0x5679_9abc);
        assert_eq!(t + Duration::from_secs(3) - Duration::from_secs(3), t);
    }

    #[test]
    fn compact_conversions() {
        assert_eq!(compact_from_duration(Duration::from_secs(1)), 65_536);
        assert_eq!(compact_from_duration(Duration::from_millis(500)), 32_768);
        assert_eq!(
            compact_from_duration(Duration::from_secs(1 << 20)),
            u32::MAX
        );
        assert_eq!(compact_to_duration(65_536), Duration::from_secs(1));
        assert_eq!(compact_to_duration(16_384), Duration::from_millis(250));
    }
}
