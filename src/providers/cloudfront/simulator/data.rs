//! The simulated AWS figures: deterministic functions of an account, a day and the clock, so
//! that a test can compute independently what the simulator must have served. Cost Explorer
//! and CloudWatch draw on different inputs (billed usage types, per-distribution traffic) with
//! different day-to-day wobbles, as AWS's own billed and measured figures differ.

use super::{SimAccount, SimDistribution};

/// Seconds per day.
pub const DAY: i64 = 86_400;

/// What other AWS services cost, as a share of [`SimAccount::other_services_usd_per_day`]:
/// (service, usage type, share, USD per unit, unit). A Cost Explorer query without the
/// `SERVICE` filter sums these in.
pub const OTHER_SERVICES: [(&str, &str, f64, f64, &str); 3] = [
    ("Amazon Simple Storage Service", "TimedStorage-ByteHrs", 0.5, 0.023 / 30.0, "GB-Mo"),
    ("Amazon Simple Storage Service", "Requests-Tier1", 0.2, 0.000_005, "Requests"),
    ("Amazon Elastic Compute Cloud - Compute", "BoxUsage:t3.medium", 0.3, 0.0416, "Hrs"),
];

/// The `SERVICE` value of CloudFront's costs.
pub const CLOUDFRONT: &str = "Amazon CloudFront";

/// A stable number for a name (FNV-1a), to vary the wobble between series.
pub fn salt(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The day's factor on a series' nominal daily figure: weekdays busier than weekends, and a
/// wobble of up to 8% that depends on the day and the series (0.85 to 1.13).
pub fn factor(day: i64, salt: u64) -> f64 {
    // Day 0 (1970-01-01) was a Thursday: weekday 0 is Monday.
    let weekday = (day + 3).rem_euclid(7);
    let base = if weekday >= 5 { 0.85 } else { 1.05 };
    let wobble = (day.rem_euclid(1_000_003) as u64).wrapping_mul(7).wrapping_add(salt) % 5;
    base + wobble as f64 * 0.02
}

/// How much of `day` has passed at `now`: 0 for a day to come, 1 for a past day, the elapsed
/// share for today (so that today's figures grow through the day).
pub fn share(day: i64, now: i64) -> f64 {
    ((now - day * DAY) as f64 / DAY as f64).clamp(0.0, 1.0)
}

/// One billed line of Cost Explorer: a usage type of a service, at its nominal daily figures.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    /// The `SERVICE` dimension.
    pub service: String,
    /// The `USAGE_TYPE` dimension.
    pub usage_type: String,
    /// USD on a nominal day.
    pub usd_per_day: f64,
    /// Units on a nominal day.
    pub units_per_day: f64,
    /// The unit of `UsageQuantity` (`GB`, `Requests`).
    pub unit: String,
}

impl LineItem {
    /// (USD, units) of the line on `day`, as the clock stands at `now`: nothing before the
    /// account's first day of costs.
    pub fn day(&self, day: i64, now: i64, history_from: i64) -> (f64, f64) {
        if day < history_from {
            return (0.0, 0.0);
        }
        let f = factor(day, salt(&self.usage_type) ^ salt(&self.service)) * share(day, now);
        (self.usd_per_day * f, self.units_per_day * f)
    }

    /// Full days' USD of the line over `[from, to)` (days), ignoring the clock: what a
    /// forecast extrapolates from.
    pub fn full_days_usd(&self, from: i64, to: i64, history_from: i64) -> f64 {
        (from.max(history_from)..to)
            .map(|d| self.usd_per_day * factor(d, salt(&self.usage_type) ^ salt(&self.service)))
            .sum()
    }
}

/// Every billed line of the account: its CloudFront usage types, then the other services'.
pub fn line_items(account: &SimAccount) -> Vec<LineItem> {
    let mut items: Vec<LineItem> = account
        .usage_types
        .iter()
        .map(|u| LineItem {
            service: CLOUDFRONT.into(),
            usage_type: u.name.clone(),
            usd_per_day: u.usd_per_day,
            units_per_day: u.units_per_day,
            unit: u.unit.clone(),
        })
        .collect();
    if account.other_services_usd_per_day > 0.0 {
        for (service, usage_type, share, usd_per_unit, unit) in OTHER_SERVICES {
            let usd = account.other_services_usd_per_day * share;
            items.push(LineItem {
                service: service.into(),
                usage_type: usage_type.into(),
                usd_per_day: usd,
                units_per_day: usd / usd_per_unit,
                unit: unit.into(),
            });
        }
    }
    items
}

/// A CloudFront metric with data in the simulator (`AWS/CloudFront`, statistic `Sum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `Requests`.
    Requests,
    /// `BytesDownloaded`.
    BytesDownloaded,
    /// `BytesUploaded`.
    BytesUploaded,
}

impl Metric {
    /// The metric of a `MetricName`, if it is one the simulator has data for.
    pub fn from_name(name: &str) -> Option<Metric> {
        match name {
            "Requests" => Some(Metric::Requests),
            "BytesDownloaded" => Some(Metric::BytesDownloaded),
            "BytesUploaded" => Some(Metric::BytesUploaded),
            _ => None,
        }
    }

    fn nominal(self, d: &SimDistribution) -> u64 {
        match self {
            Metric::Requests => d.daily_requests,
            Metric::BytesDownloaded => d.daily_bytes_downloaded,
            Metric::BytesUploaded => d.daily_bytes_uploaded,
        }
    }
}

/// The metric's total for the whole of `day`: a whole number, the nominal daily figure times
/// the day's factor (a wobble of its own, not Cost Explorer's); nothing for a disabled
/// distribution or before the account's first day.
pub fn cw_day_total(d: &SimDistribution, metric: Metric, day: i64, history_from: i64) -> f64 {
    if !d.enabled || day < history_from {
        return 0.0;
    }
    let salt = salt(&d.id).wrapping_add(metric as u64 * 31).wrapping_add(17);
    (metric.nominal(d) as f64 * factor(day, salt)).round()
}

/// The share of a day's traffic before `secs` into it: busiest around 18:00 UTC, quietest
/// around 06:00 (the density is `1 - 0.6 sin(2πx)`), 0 at midnight, 1 at the next.
pub fn diurnal(secs: i64) -> f64 {
    let x = secs as f64 / DAY as f64;
    let a = 0.6;
    x - a * (1.0 - (2.0 * std::f64::consts::PI * x).cos()) / (2.0 * std::f64::consts::PI)
}

/// What the metric accrued on `day` before `secs` into it (0 to 86,400), a whole number, so
/// that consecutive buckets telescope to the day's total exactly.
fn cw_accrued(total: f64, secs: i64) -> f64 {
    if secs >= DAY { total } else { (total * diurnal(secs.max(0))).round() }
}

/// The metric's sum over `[from, to)` (Unix seconds), with nothing after `now`.
pub fn cw_sum(d: &SimDistribution, metric: Metric, from: i64, to: i64, now: i64, history_from: i64) -> f64 {
    let to = to.min(now);
    if to <= from {
        return 0.0;
    }
    let mut sum = 0.0;
    for day in from.div_euclid(DAY)..=(to - 1).div_euclid(DAY) {
        let start = day * DAY;
        let total = cw_day_total(d, metric, day, history_from);
        if total == 0.0 {
            continue;
        }
        let lo = from.max(start) - start;
        let hi = to.min(start + DAY) - start;
        sum += cw_accrued(total, hi) - cw_accrued(total, lo);
    }
    sum
}

/// How many one-minute datapoints with traffic fall in `[from, to)`, with nothing after `now`
/// (the `SampleCount` statistic).
pub fn cw_samples(d: &SimDistribution, metric: Metric, from: i64, to: i64, now: i64, history_from: i64) -> f64 {
    let to = to.min(now);
    if to <= from {
        return 0.0;
    }
    let mut count = 0;
    for day in from.div_euclid(DAY)..=(to - 1).div_euclid(DAY) {
        if cw_day_total(d, metric, day, history_from) > 0.0 {
            let lo = from.max(day * DAY);
            let hi = to.min(day * DAY + DAY);
            count += (hi - lo + 59) / 60;
        }
    }
    count as f64
}

/// An amount as Cost Explorer writes it: a decimal string with at most 10 fraction digits and
/// no trailing zeros (`"40.3543773134"`, `"0"`).
pub fn amount(v: f64) -> String {
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() { "0".into() } else { s.into() }
}

/// Formats Unix seconds as ISO 8601 UTC (`2026-12-04T17:35:15Z`).
pub fn iso(unix: i64) -> String {
    let secs = unix.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        crate::timeutil::format_ymd(unix.div_euclid(DAY)),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
