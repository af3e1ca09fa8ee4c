//! Calendar arithmetic on Unix days, UTC, without a date-time crate: the exporter only needs
//! "which day/month is it" and "parse yyyy-mm-dd".

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Where "now" comes from: the system clock, or a manual one that tests set and advance (the
/// traffic job and the simulator read it, so a test can walk a month in a moment).
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<std::sync::Arc<std::sync::atomic::AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that stands at `unix` until set or advanced.
    pub fn manual(unix: i64) -> Self {
        Clock(Some(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(unix))))
    }

    /// Seconds since the Unix epoch, by this clock.
    pub fn now(&self) -> i64 {
        match &self.0 {
            None => now_unix(),
            Some(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Sets a manual clock (a no-op on the system clock).
    pub fn set(&self, unix: i64) {
        if let Some(t) = &self.0 {
            t.store(unix, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Number of days in a month.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as u32
}

/// Parses `yyyy-mm-dd` (anything after the date, such as a time, is ignored) into a day number.
pub fn parse_ymd(s: &str) -> Option<i64> {
    let s = s.trim();
    let date = s.get(..10)?;
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Formats a day number as `yyyy-mm-dd`.
pub fn format_ymd(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Formats Unix seconds as an RFC 1123 HTTP date: `Sun, 22 Nov 2026 10:00:00 GMT`.
pub fn format_http_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses an RFC 1123 HTTP date back into Unix seconds.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let rest = s.trim().split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let d: u32 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let m = MONTHS.iter().position(|n| *n == month)? as u32 + 1;
    let y: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || d == 0 || d > days_in_month(y, m) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Parses a zone written `GMT+09:00` / `GMT-05:30` into its offset from UTC in seconds.
pub fn parse_gmt_offset(s: &str) -> Option<i64> {
    let rest = s.strip_prefix("GMT")?;
    let sign = match rest.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let (h, m) = rest[1..].split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// Parses `yyyy-MM-dd` or `yyyy-MM-dd HH:mm` (where `24:00` is the end of the day) as a time in
/// a zone `offset` seconds east of UTC, into Unix seconds.
pub fn parse_local_minute(s: &str, offset: i64) -> Option<i64> {
    let s = s.trim();
    let day = parse_ymd(s.get(..10)?)?;
    let rest = s[10..].trim();
    let secs = if rest.is_empty() {
        0
    } else {
        let (h, m) = rest.split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.get(..2)?.parse().ok()?);
        if !(h < 24 && m < 60 || h == 24 && m == 0) {
            return None;
        }
        h * 3600 + m * 60
    };
    Some(day * 86_400 + secs - offset)
}

/// The days `[from, to]` in chunks of at most `len` days, as (first day, last day), in order.
pub fn chunks(from: i64, to: i64, len: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = (start + len - 1).min(to);
        out.push((start, end));
        start = end + 1;
    }
    out
}

/// The first day of the month of `day`.
pub fn month_start(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    days_from_civil(y, m, 1)
}

/// The calendar months meeting the days `[from, to]`, each as (first day, last day) of the
/// month, in order.
pub fn months(from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = month_start(from);
    while start <= to {
        let (y, m, _) = civil_from_days(start);
        let end = start + i64::from(days_in_month(y, m)) - 1;
        out.push((start, end));
        start = end + 1;
    }
    out
}

/// `yyyy-mm-dd`, `yyyy-mm-ddTHH:MM:SS` with optional fraction and optional `Z` or `+00:00`,
/// as UTC Unix seconds
/// (bunny.net's chart keys, STS's `Expiration`, CloudFront's `LastModifiedTime`).
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let day = parse_ymd(s.get(..10)?)?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(day * 86_400);
    }
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let rest = rest.strip_suffix('Z').or_else(|| rest.strip_suffix("+00:00")).unwrap_or(rest);
    let hms = rest.split('.').next()?;
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if parts.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&sec) {
        return None;
    }
    if let Some(frac) = rest.split('.').nth(1)
        && !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    Some(day * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates() {
        for days in [-1000, 0, 59, 60, 10_957, 20_414, 20_779, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_ymd(0), "1970-01-01");
        assert_eq!(parse_ymd("2026-11-22"), Some(20_779));
        assert_eq!(parse_ymd("2024-02-29 13:00"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(parse_ymd("2023-02-29"), None);
        assert_eq!(parse_ymd("0000-00-00 00:00:00"), None);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2026, 12), 31);
    }

    #[test]
    fn http_dates() {
        // date -u -d @1795341600 "+%a, %d %b %Y %H:%M:%S GMT"
        assert_eq!(format_http_date(1_795_341_600), "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 10:00:00 GMT"), Some(1_795_341_600));
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 10:00:00 CET"), None);
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn zones_and_local_times() {
        assert_eq!(parse_gmt_offset("GMT+09:00"), Some(9 * 3600));
        assert_eq!(parse_gmt_offset("GMT-05:30"), Some(-(5 * 3600 + 1800)));
        for bad in ["GMT+9", "UTC+09:00", "GMT+09:60", "GMT+15:00", "GMT09:00", "GMT+0a:00"] {
            assert_eq!(parse_gmt_offset(bad), None, "{bad}");
        }
        let nine = 9 * 3600;
        let day = days_from_civil(2022, 8, 1) * 86_400;
        assert_eq!(parse_local_minute("2022-08-01", nine), Some(day - nine));
        assert_eq!(parse_local_minute("2022-08-01 01:00", nine), Some(day + 3600 - nine));
        assert_eq!(parse_local_minute("2022-08-01 24:00", nine), parse_local_minute("2022-08-02 00:00", nine));
        assert_eq!(parse_local_minute("2022-08-01 24:01", nine), None);
        assert_eq!(parse_local_minute("2022-08-01 25:00", nine), None);
    }

    #[test]
    fn windows_cover_the_range_without_overlap() {
        assert_eq!(chunks(0, 61, 31), vec![(0, 30), (31, 61)]);
        assert_eq!(chunks(5, 5, 31), vec![(5, 5)]);
        assert!(chunks(6, 5, 31).is_empty());
        let jan = days_from_civil(2026, 1, 15);
        let mar = days_from_civil(2026, 3, 2);
        let m = months(jan, mar);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], (days_from_civil(2026, 1, 1), days_from_civil(2026, 1, 31)));
        assert_eq!(m[1].1 - m[1].0 + 1, 28);
        let total: i64 = chunks(0, 730, 31).iter().map(|(a, b)| b - a + 1).sum();
        assert_eq!(total, 731);
    }
}
