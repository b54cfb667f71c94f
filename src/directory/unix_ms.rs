//! Wall-clock instants as stored in the database: milliseconds since the Unix epoch, UTC.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z. Stored as an SQLite INTEGER; printed as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMs(pub i64);

impl UnixMs {
    /// The wall clock now. Only binaries call this; the directory takes times as arguments.
    pub fn now() -> UnixMs {
        UnixMs::from_system(SystemTime::now())
    }

    /// A `SystemTime` in milliseconds (before the epoch: negative; beyond i64: saturated).
    pub fn from_system(t: SystemTime) -> UnixMs {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixMs(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => UnixMs(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-12-02T07:34:09.123Z`.
impl fmt::Display for UnixMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
        let (min, rest) = (rest / 60_000, rest % 60_000);
        let (s, ms) = (rest / 1000, rest % 1000);
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
    }
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01, by splitting
/// the count into 400-year eras of 146,097 days whose years start on 1 March (so the leap
/// day is the last day of a year and months have a closed-form length).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month from March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(UnixMs(0).to_string(), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century year divisible by 400) 12:34:56.789.
        assert_eq!(
            UnixMs(951_827_696_789).to_string(),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(UnixMs(-1).to_string(), "1969-12-31T23:59:59.999Z");
        // 2100 is not a leap year: 28 February is followed by 1 March.
        assert_eq!(
            UnixMs(4_107_456_000_000).to_string(),
            "2100-02-28T00:00:00.000Z"
        );
        assert_eq!(
            UnixMs(4_107_456_000_000 + 86_400_000).to_string(),
            "2100-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn every_day_for_600_years_follows_the_last() {
        // Walk day by day across three 400-year era boundaries' worth of calendar and check
        // that each date is the successor of the previous one.
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut prev = civil_from_days(-135_000);
        for days in -134_999..85_000 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = prev;
            let expected = if pd < len(py, pm) {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {days}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn system_time_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(UnixMs::from_system(t), UnixMs(1_700_000_000_123));
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(UnixMs::from_system(before), UnixMs(-1500));
    }
}
