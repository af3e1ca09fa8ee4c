//! Local days in the account's zone: which month the figures are for, and the
//! `dateFrom`/`dateTo` strings one request's window is made of.

use crate::timeutil;

/// Today and the first day of its month (local day numbers) at `now` in a zone `offset` seconds
/// east of UTC: the month the figures are for.
pub fn local_month(now: i64, offset: i64) -> (i64, i64) {
    let today = (now + offset).div_euclid(86_400);
    let (y, m, _) = timeutil::civil_from_days(today);
    (today, timeutil::days_from_civil(y, m, 1))
}

/// `yyyy-MM-ddTHH:mm:ss±HH:mm` of the local midnight starting day `day` in a zone `offset`
/// seconds east of UTC.
pub fn local_midnight(day: i64, offset: i64) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.abs();
    format!("{}T00:00:00{sign}{:02}:{:02}", timeutil::format_ymd(day), o / 3600, o % 3600 / 60)
}
