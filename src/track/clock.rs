//! Wall-clock times as the store keeps them: milliseconds since the Unix
//! epoch, shown in UTC so that ids and reports read the same on every machine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch for `t` (0 for times before it).
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch (the epoch itself for negative values).
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A UTC calendar time, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    /// The calendar time of `t`, truncated to the second.
    pub(crate) fn of(t: SystemTime) -> Utc {
        let secs = to_ms(t).div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // `rem` is below 86 400, so every part fits in u32.
        let rem = rem as u32;
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }

    /// `YYYYMMDD-HHMMSS`, the time part of a run id.
    pub(crate) fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DD HH:MM:SS`, for reports.
    pub(crate) fn readable(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that no date crate is needed for two formats.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small positive numbers by construction.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let at = |ms: i64| Utc::of(from_ms(ms));
        assert_eq!(at(0).readable(), "1970-01-01 00:00:00");
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        assert_eq!(at(951_827_696_000).readable(), "2000-02-29 12:34:56");
        // 2024-12-31 23:59:59.999 UTC.
        assert_eq!(at(1_735_689_599_999).compact(), "20241231-235959");
        assert_eq!(at(1_735_689_600_000).compact(), "20250101-000000");
    }

    #[test]
    fn ms_round_trip() {
        let t = from_ms(1_700_000_000_123);
        assert_eq!(to_ms(t), 1_700_000_000_123);
    }
}
