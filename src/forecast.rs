//! Our month-end spend forecast and its 80 % interval: the method of the recording rules
//! `cdn:billing_spend_usd:forecast`, `…_low` and `…_high` (mixin/lib/forecast.libsonnet; the
//! method, its evidence and its limits in docs/alerts.md, "The forecast"), computed here from the
//! spend the exporter has seen since it started, for the status page. Prometheus holds the whole
//! history, so the rules are the authority; right after a start this falls back the way the rules
//! do for an account with no history.

use std::collections::VecDeque;

use crate::timeutil::{civil_from_days, days_in_month};

/// The relative spread of the spend still to come when the forecast leans on last month, when
/// last month's shape is flat (1)...
pub const SPREAD_SHAPE: f64 = 0.2;
/// ...widened by this much per unit the shape is away from 1: the more the forecast rests on last
/// month having been unlike its own pace, the less sure it is.
pub const SPREAD_SHAPE_PER_DEVIATION: f64 = 0.35;
/// The relative spread when it follows the recent pace alone.
pub const SPREAD_PACE: f64 = 0.3;
/// The relative spread with not one whole day seen: the low end is the spend to date.
pub const SPREAD_LINEAR: f64 = 1.0;
/// The bounds of last month's shape: what its days still to come averaged against its pace at
/// the same point. Tiers and the week keep it near 1; a month whose pace changed (or data a day
/// late near its end) must not carry a tenfold change into this one.
pub const SHAPE_MIN: f64 = 0.67;
/// See [`SHAPE_MIN`].
pub const SHAPE_MAX: f64 = 1.5;
/// Hours of spend kept per account (71 days: the same day of the month before last and the 7
/// days before it, for that month's shape; 16 bytes an hour, about 27 KiB per account).
pub const KEEP_HOURS: usize = 71 * 24;

const DAY: i64 = 86_400;

/// How a forecast was made, the first of these that the history allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The recent pace for the days left, shaped as last month's days still to come from the
    /// same day and hour were against its pace then (or the month before's, when flatter).
    Shape,
    /// The median day's spend of the last 7 whole days, for the days left.
    Pace,
    /// Spend to date over the elapsed share of the month.
    Linear,
}

impl Method {
    /// The word the status page shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Shape => "last month's shape",
            Method::Pace => "recent pace",
            Method::Linear => "share of the month",
        }
    }
}

/// A month-end forecast with its 80 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The expected month-end spend.
    pub expected: f64,
    /// The interval's low end (never below the spend to date).
    pub low: f64,
    /// The interval's high end.
    pub high: f64,
    /// How it was made.
    pub method: Method,
}

/// One account's spend to date as seen over time: at most one point per hour (the newest value
/// seen in it), the last [`KEEP_HOURS`] hours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    points: VecDeque<(i64, f64)>,
}

impl History {
    /// Records the spend to date `value` seen at `unix`.
    pub fn record(&mut self, unix: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        match self.points.back_mut() {
            Some((t, _)) if *t > unix => return,
            Some((t, v)) if t.div_euclid(3600) == unix.div_euclid(3600) => (*t, *v) = (unix, value),
            _ => self.points.push_back((unix, value)),
        }
        while self.points.len() > KEEP_HOURS {
            self.points.pop_front();
        }
    }

    /// The points recorded, oldest first.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.points.iter().copied()
    }

    /// The newest value in `(t - 1h, t]`, as `last_over_time(…[1h])` reads it.
    fn at(&self, t: i64) -> Option<f64> {
        self.points.iter().rev().find(|(p, _)| *p <= t && *p > t - 3600).map(|(_, v)| *v)
    }

    /// What was spent in `(from, to]`, a drop read as the month's reset (the value after it
    /// counts whole), as `increase()` reads a counter; `None` unless points bracket the window.
    fn increase(&self, from: i64, to: i64) -> Option<f64> {
        self.at(from)?;
        self.at(to)?;
        let mut prev: Option<f64> = None;
        let mut sum = 0.0;
        for &(t, v) in self.points.iter().filter(|(t, _)| *t > from - 3600 && *t <= to) {
            if let Some(p) = prev.filter(|_| t > from) {
                sum += if v >= p { v - p } else { v };
            }
            prev = Some(v);
        }
        Some(sum)
    }

    /// The median day's spend over the whole UTC days that end in `[t - 7d, t]`, as
    /// `quantile_over_time(0.5, increase(…[1d])[7d:1d])` reads it.
    fn pace(&self, t: i64) -> Option<f64> {
        let first = (t - 7 * DAY).div_euclid(DAY) * DAY;
        let first = if first < t - 7 * DAY { first + DAY } else { first };
        let days: Vec<f64> = (0..)
            .map(|k| first + k * DAY)
            .take_while(|end| *end <= t)
            .filter_map(|end| self.increase(end - DAY, end))
            .collect();
        median(days)
    }
}

/// The median as `quantile_over_time(0.5, …)` computes it (the mean of the middle two of an even
/// count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = 0.5 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

/// The whole days and the share of today gone in the month holding `now`, as the rules'
/// `day_of_month() - 1 + hour() / 24 + minute() / 1440`.
fn elapsed_days(now: i64) -> f64 {
    let (_, _, d) = civil_from_days(now.div_euclid(DAY));
    let of_day = now.rem_euclid(DAY);
    f64::from(d - 1) + (of_day / 3600) as f64 / 24.0 + (of_day % 3600 / 60) as f64 / 1440.0
}

/// The days of the month before the one holding `now`.
fn previous_month_days(now: i64) -> i64 {
    let today = now.div_euclid(DAY);
    let (_, _, d) = civil_from_days(today);
    let (py, pm, _) = civil_from_days(today - i64::from(d));
    i64::from(days_in_month(py, pm))
}

/// Last month's shape at `now`, as the `cdn:billing_spend_usd:shape_last_month` rule computes
/// it: what the previous month still had to come from the same day and hour (its end, `last`,
/// less its spend then), against its pace then times its days left, bounded. `last` is given
/// the day of the month.
fn shape_at(history: &History, now: i64, last: impl FnOnce(u32) -> Option<f64>) -> Option<f64> {
    let (_, _, d) = civil_from_days(now.div_euclid(DAY));
    let prev_days = previous_month_days(now);
    if i64::from(d) > prev_days {
        return None;
    }
    let left_then = prev_days as f64 - elapsed_days(now);
    let then = now - prev_days * DAY;
    let last = last(d)?;
    let same_point = history.at(then)?;
    let pace_then = history.pace(then).filter(|p| *p > 0.0)?;
    (left_then > 0.0).then(|| ((last - same_point).max(0.0) / pace_then / left_then).clamp(SHAPE_MIN, SHAPE_MAX))
}

/// The forecast at `now` of an account whose spend to date is `spend`, last month's bill
/// `last_month` (if posted), from `history`; `None` in the month's first minute with nothing
/// seen, and while the account's billing month, begun at `month_start` (Unix seconds; `None`
/// for the UTC month), is not the UTC month the forecast counts days in: more than a day apart,
/// as in the hours between a time zone's month turn and UTC's, when the spend to date belongs
/// to another month than the days left (the rules' `cdn:billing_month_start:offset_seconds`).
pub fn forecast(
    history: &History,
    spend: f64,
    last_month: Option<f64>,
    month_start: Option<i64>,
    now: i64,
) -> Option<Forecast> {
    let today = now.div_euclid(DAY);
    let utc_month_start = crate::timeutil::month_start(today) * DAY;
    if month_start.is_some_and(|m| (m - utc_month_start).abs() > DAY) {
        return None;
    }
    let (y, m, _) = civil_from_days(today);
    let days = f64::from(days_in_month(y, m));
    let elapsed_days = elapsed_days(now);
    let left = days - elapsed_days;
    let pace = history.pace(now);
    // Last month's shape: its end is the bill, or, in the first days before it is posted, the
    // highest spend to date seen in the last 3 days.
    let last_shape = shape_at(history, now, |d| {
        last_month.or_else(|| {
            (d <= 3).then(|| history.points().filter(|(t, _)| *t > now - 3 * DAY).map(|(_, v)| v).fold(spend, f64::max))
        })
    });
    // The month before's, as it was at this point of last month; its end is the highest spend
    // seen in its last 3 days (the rules read the bill Prometheus kept).
    let then = now - previous_month_days(now) * DAY;
    let month_began = (then.div_euclid(DAY) - i64::from(civil_from_days(then.div_euclid(DAY)).2) + 1) * DAY;
    let before_shape = last_shape.and_then(|_| {
        shape_at(history, then, |_| {
            history
                .points()
                .filter(|(t, _)| *t < month_began && *t >= month_began - 3 * DAY)
                .map(|(_, v)| v)
                .reduce(f64::max)
        })
    });
    // Of the two, the flatter.
    let shape = match (last_shape, before_shape) {
        (Some(a), Some(b)) if (b - 1.0).abs() < (a - 1.0).abs() => Some(b),
        (a, _) => a,
    };
    let (expected, method, spread) = if let (Some(shape), Some(p)) = (shape, pace) {
        (spend + p * left * shape, Method::Shape, SPREAD_SHAPE + SPREAD_SHAPE_PER_DEVIATION * (shape - 1.0).abs())
    } else if let Some(p) = pace {
        (spend + p * left, Method::Pace, SPREAD_PACE)
    } else {
        let elapsed = elapsed_days / days;
        if elapsed <= 0.0 {
            return None;
        }
        (spend / elapsed, Method::Linear, SPREAD_LINEAR)
    };
    let to_come = expected - spend;
    Some(Forecast { expected, low: spend + to_come * (1.0 - spread), high: spend + to_come * (1.0 + spread), method })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeutil::days_from_civil;

    fn at(y: i64, m: u32, d: u32, h: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + h * 3600
    }

    /// $1 an hour from `from` to `to`, the month's reset included.
    fn steady(from: i64, to: i64) -> History {
        let mut h = History::default();
        for t in (from..=to).step_by(3600) {
            let month = crate::timeutil::month_start(t.div_euclid(DAY)) * DAY;
            h.record(t, ((t - month) / 3600) as f64);
        }
        h
    }

    #[test]
    fn no_forecast_while_the_accounts_month_is_not_the_utc_month() {
        let h = steady(at(2027, 1, 1, 0), at(2027, 2, 10, 12));
        let now = at(2027, 2, 10, 12);
        let utc = forecast(&h, 228.0, Some(744.0), None, now).unwrap();
        // Hours apart (a GMT-05:00 month began at 05:00 UTC, a GMT+09:00 one at 15:00 the day
        // before): the same forecast.
        for start in [at(2027, 2, 1, 5), at(2027, 1, 31, 15)] {
            assert_eq!(forecast(&h, 228.0, Some(744.0), Some(start), now), Some(utc));
        }
        // Feb 1 02:00 UTC, still January at GMT-05:00 (begun Jan 1 05:00): no forecast, rather
        // than January's spend as if February had just begun.
        let early = at(2027, 2, 1, 2);
        assert!(forecast(&h, 741.0, Some(744.0), None, early).is_some_and(|f| f.low > 1_000.0));
        assert_eq!(forecast(&h, 741.0, Some(744.0), Some(at(2027, 1, 1, 5)), early), None);
        // Feb 28 20:00 UTC, already March at GMT+09:00 (begun Feb 28 15:00).
        let h = steady(at(2027, 1, 1, 0), at(2027, 2, 28, 20));
        assert_eq!(forecast(&h, 5.0, Some(744.0), Some(at(2027, 2, 28, 15)), at(2027, 2, 28, 20)), None);
    }

    #[test]
    fn a_steady_spend_is_forecast_for_the_month_it_is_in() {
        // January 31 days, February 28: the shape of January, for February's days.
        let h = steady(at(2027, 1, 1, 0), at(2027, 2, 10, 12));
        let f = forecast(&h, 9.0 * 24.0 + 12.0, Some(744.0), None, at(2027, 2, 10, 12)).unwrap();
        assert_eq!(f.method, Method::Shape);
        assert!((f.expected - 672.0).abs() < 1e-9, "{f:?}");
        let (low, high) = (228.0 + 444.0 * (1.0 - SPREAD_SHAPE), 228.0 + 444.0 * (1.0 + SPREAD_SHAPE));
        assert!((f.low - low).abs() < 1e-9 && (f.high - high).abs() < 1e-9, "{f:?}");
        // After February's 28 days, March's 29th has no same day last month: the recent pace.
        let h = steady(at(2027, 2, 1, 0), at(2027, 3, 29, 12));
        let f = forecast(&h, 28.0 * 24.0 + 12.0, Some(672.0), None, at(2027, 3, 29, 12)).unwrap();
        assert_eq!(f.method, Method::Pace);
        assert!((f.expected - 744.0).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn a_fee_billed_at_once_and_dearer_first_days_follow_last_months_shape() {
        // A $300 fee on the 1st, then $2 an hour for the first 5 days and $1 after (tiers).
        let spend = |t: i64| {
            let month = crate::timeutil::month_start(t.div_euclid(DAY)) * DAY;
            let hours = ((t - month) / 3600) as f64;
            300.0 + 2.0 * hours.min(120.0) + (hours - 120.0).max(0.0)
        };
        let mut h = History::default();
        for t in (at(2027, 3, 1, 0)..=at(2027, 5, 3, 12)).step_by(3600) {
            h.record(t, spend(t));
        }
        let now = at(2027, 5, 3, 12);
        let april = spend(at(2027, 4, 30, 23)) + 1.0;
        let f = forecast(&h, spend(now), Some(april), None, now).unwrap();
        assert_eq!(f.method, Method::Shape);
        // May has one day more than April: one more day at $24 (the days left are scaled whole,
        // so within 0.5 %).
        assert!((f.expected - (april + 24.0)).abs() < 0.005 * april, "{f:?} against {}", april + 24.0);
        let naive = spend(now) / ((2.0 * 24.0 + 12.0) / (31.0 * 24.0));
        assert!(naive > 2.0 * f.expected, "the straight line carries the fee and the dear days on: {naive}");
    }

    #[test]
    fn without_history_the_pace_then_the_share_of_the_month() {
        let mut h = History::default();
        let now = at(2027, 6, 1, 6);
        assert_eq!(forecast(&h, 0.0, None, None, at(2027, 6, 1, 0)), None, "the month's first minute");
        let f = forecast(&h, 6.0, None, None, now).unwrap();
        assert_eq!(f.method, Method::Linear);
        assert!((f.expected - 6.0 / (0.25 / 30.0)).abs() < 1e-9);
        assert_eq!(f.low, 6.0, "no claim about the rest of the month");
        for t in (at(2027, 6, 1, 0)..=at(2027, 6, 3, 6)).step_by(3600) {
            h.record(t, ((t - at(2027, 6, 1, 0)) / 3600) as f64);
        }
        let f = forecast(&h, 54.0, None, None, at(2027, 6, 3, 6)).unwrap();
        assert_eq!(f.method, Method::Pace);
        assert!((f.expected - (54.0 + 24.0 * 27.75)).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn history_is_hourly_bounded_and_reads_the_reset_as_spend() {
        let mut h = History::default();
        h.record(100, 1.0);
        h.record(200, 2.0);
        assert_eq!(h.points().count(), 1, "one point an hour, the newest");
        h.record(50, 9.0);
        assert_eq!(h.points().collect::<Vec<_>>(), [(200, 2.0)], "older than the newest: ignored");
        h.record(3700, f64::NAN);
        assert_eq!(h.points().count(), 1);
        for k in 0..(KEEP_HOURS as i64 + 50) {
            h.record(7200 + k * 3600, k as f64);
        }
        assert_eq!(h.points().count(), KEEP_HOURS);
        let mut h = History::default();
        for (t, v) in [(0, 5.0), (3600, 8.0), (7200, 1.0), (10_800, 3.0)] {
            h.record(t, v);
        }
        assert_eq!(h.increase(0, 10_800), Some(3.0 + 1.0 + 2.0));
        assert_eq!(h.increase(0, 20_000), None, "no point at the window's end");
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }

    /// The month after a change of pace, as rules_test_forecast.yml's `changed` account:
    /// February halves its pace from the 11th and March keeps it; on Mar 5 February's shape
    /// (0.625, bounded to 0.67) is further from flat than January's (about 1), so January's
    /// shapes March: $12 a day for 27 days on the $48 spent, its real end.
    #[test]
    fn the_month_after_a_change_of_pace_takes_the_flatter_shape_of_the_two() {
        let mut h = History::default();
        let (jan, feb, mar) = (at(2027, 1, 1, 0), at(2027, 2, 1, 0), at(2027, 3, 1, 0));
        for k in 0..744 {
            h.record(jan + k * 3600, k as f64);
        }
        for k in 0..672 {
            h.record(feb + k * 3600, if k <= 240 { k as f64 } else { 240.0 + 0.5 * (k - 240) as f64 });
        }
        for k in 0..=96 {
            h.record(mar + k * 3600, 0.5 * k as f64);
        }
        let now = at(2027, 3, 5, 0);
        let f = forecast(&h, 48.0, Some(456.0), None, now).unwrap();
        assert_eq!(f.method, Method::Shape);
        // January's end is the highest spend seen in its last 3 days here ($743, its last hour
        // unseen; the rules read its $744 bill): a shape of 647 / 648 rather than 1.
        let shape = 647.0 / 648.0;
        assert!((f.expected - (48.0 + 324.0 * shape)).abs() < 1e-9, "{f:?}");
        let spread = SPREAD_SHAPE + SPREAD_SHAPE_PER_DEVIATION * (1.0 - shape);
        assert!((f.low - (48.0 + 324.0 * shape * (1.0 - spread))).abs() < 1e-9, "{f:?}");
        // With February's shape alone (no January kept), the forecast would be 48 + 324 × 0.67.
        let mut short = History::default();
        for (t, v) in h.points().filter(|(t, _)| *t >= feb - 8 * DAY + 3600) {
            short.record(t, v);
        }
        let f = forecast(&short, 48.0, Some(456.0), None, now).unwrap();
        assert!((f.expected - (48.0 + 324.0 * SHAPE_MIN)).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn the_spreads_are_the_mixins() {
        let mixin = include_str!("../mixin/lib/forecast.libsonnet");
        let line = mixin.lines().find(|l| l.trim_start().starts_with("spread::")).unwrap();
        let want = format!(
            "spread:: {{ shape: {}, shapePerDeviation: {}, pace: {}, linear: {} }},",
            SPREAD_SHAPE, SPREAD_SHAPE_PER_DEVIATION, SPREAD_PACE, SPREAD_LINEAR
        );
        assert_eq!(line.trim(), want, "src/forecast.rs and mixin/lib/forecast.libsonnet use one method");
    }
}
