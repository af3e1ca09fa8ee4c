//! The simulated bunny.net data: deterministic functions of a zone, a day and the clock, so
//! that a test can compute independently what the simulator must have served.

use crate::timeutil;

use super::{SimAccount, SimPullZone};

/// Seconds per step of the provisional day: today's bucket grows every 10 minutes.
pub const STEP_SECS: i64 = 600;

/// USD per GB (10⁹ bytes) of storage per month, prorated by the elapsed share of the month.
pub const STORAGE_USD_PER_GB_MONTH: f64 = 0.01;

/// The share of a zone's traffic cost each region's `MonthlyCharges*Traffic` field carries.
pub const REGIONS: [(&str, f64); 5] = [
    ("MonthlyChargesEUTraffic", 0.5),
    ("MonthlyChargesUSTraffic", 0.3),
    ("MonthlyChargesASIATraffic", 0.15),
    ("MonthlyChargesSATraffic", 0.05),
    ("MonthlyChargesAFTraffic", 0.0),
];

/// How far into day `day` the clock `now` is, in whole steps (0 to 144); 144 for a past day,
/// 0 for a future one.
fn steps(day: i64, now: i64) -> i64 {
    let per_day = 86_400 / STEP_SECS;
    ((now - day * 86_400) / STEP_SECS).clamp(0, per_day)
}

fn scaled(full: u64, day: i64, now: i64) -> u64 {
    let per_day = 86_400 / STEP_SECS;
    // Past days are final; today's bucket is the elapsed share, growing step by step.
    (u128::from(full) * steps(day, now) as u128 / per_day as u128) as u64
}

/// Bytes the zone served on `day` (UTC day number), as the clock stands at `now`.
pub fn day_bytes(zone: &SimPullZone, day: i64, now: i64) -> u64 {
    let factor = 10 + (day * 7 + zone.id).rem_euclid(5) as u64;
    scaled(zone.daily_bytes / 10 * factor, day, now)
}

/// Requests the zone served on `day`, as the clock stands at `now`.
pub fn day_requests(zone: &SimPullZone, day: i64, now: i64) -> u64 {
    let factor = 10 + (day * 3 + zone.id).rem_euclid(7) as u64;
    scaled(zone.daily_requests / 10 * factor, day, now)
}

/// The first day of the UTC month of `now`.
pub fn month_first_day(now: i64) -> i64 {
    timeutil::month_start(now.div_euclid(86_400))
}

/// Bytes of the zone this month so far (what `/billing/summary` says).
pub fn month_bytes(zone: &SimPullZone, now: i64) -> u64 {
    (month_first_day(now)..=now.div_euclid(86_400)).map(|d| day_bytes(zone, d, now)).sum()
}

/// The zone's charges this month so far: its bytes priced per GB.
pub fn month_cost(zone: &SimPullZone, now: i64) -> f64 {
    month_bytes(zone, now) as f64 / 1e9 * zone.usd_per_gb
}

/// The elapsed share of the UTC month at `now` (0 to 1).
pub fn month_elapsed(now: i64) -> f64 {
    let first = month_first_day(now);
    let (y, m, _) = timeutil::civil_from_days(first);
    let len = i64::from(timeutil::days_in_month(y, m)) * 86_400;
    ((now - first * 86_400) as f64 / len as f64).clamp(0.0, 1.0)
}

/// The `MonthlyCharges*` fields of `/billing` at `now`, in answer order.
pub fn charges(account: &SimAccount, now: i64) -> Vec<(String, f64)> {
    let traffic: f64 = account.pull_zones.iter().map(|z| month_cost(z, now)).sum();
    let mut out: Vec<(String, f64)> = REGIONS.iter().map(|(k, share)| ((*k).to_owned(), traffic * share)).collect();
    // Prorated charges accrue step by step too, so that an answer holds for a step.
    let elapsed = month_elapsed(now - now.rem_euclid(STEP_SECS));
    let stored: u64 = account.storage_zones.iter().filter(|z| !z.deleted).map(|z| z.bytes).sum();
    out.push(("MonthlyChargesStorage".into(), stored as f64 / 1e9 * STORAGE_USD_PER_GB_MONTH * elapsed));
    for (k, monthly) in &account.fixed_charges {
        out.push((k.clone(), monthly * elapsed));
    }
    out
}

/// `ThisMonthCharges` at `now`: the sum of the `MonthlyCharges*` fields.
pub fn this_month(account: &SimAccount, now: i64) -> f64 {
    charges(account, now).iter().map(|(_, v)| v).sum()
}

/// The bill of the month that starts on day `first` (a deterministic amount).
pub fn monthly_bill(first: i64) -> f64 {
    100.0 + (first * 37).rem_euclid(5000) as f64 / 100.0
}

/// When the bill of the month before the one starting on day `first` is booked: 00:05:12 on it.
pub fn booked_at(first: i64) -> i64 {
    first * 86_400 + 312
}

/// The first days of the months before the one of `now`, newest first, `n` of them.
pub fn past_months(now: i64, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    let mut first = month_first_day(now);
    for _ in 0..n {
        first = timeutil::month_start(first - 1);
        out.push(first);
    }
    out
}
