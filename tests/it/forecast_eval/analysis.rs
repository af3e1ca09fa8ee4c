//! From forecasts read out of Prometheus and the generator's truth to a summary: error by
//! day-of-month bucket and by kind, interval coverage, and when the alert would have fired.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::history::{Account, MonthTruth};

/// Day-of-month buckets: (label, first day, last day).
pub const BUCKETS: [(&str, u32, u32); 4] = [("1–3", 1, 3), ("4–10", 4, 10), ("11–20", 11, 20), ("21–end", 21, 31)];

/// Series by account, values by Unix second, as read from Prometheus.
pub type Series = BTreeMap<String, BTreeMap<i64, f64>>;

/// What was read from Prometheus.
#[derive(Debug, Default)]
pub struct Readings {
    /// Daily at 12:00 UTC.
    pub forecast: Series,
    pub low: Series,
    pub high: Series,
    pub linear: Series,
    /// Hourly; a value means the alert's expr held.
    pub alert: Series,
}

/// One forecast reading (a kind, a month, a day at noon).
#[derive(Debug, Clone)]
struct Point {
    kind: usize,
    day: u32,
    final_spend: f64,
    old: Option<f64>,
    new: Option<f64>,
    low: Option<f64>,
    high: Option<f64>,
}

/// Absolute percentage errors of one rule over some readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApeStats {
    /// Readings with a value (infinite values count, as infinite errors).
    pub n: usize,
    /// Readings without a series, or NaN.
    pub missing: usize,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// One line of a table: the old and the new rule over the same readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub label: String,
    pub old: ApeStats,
    pub new: ApeStats,
    /// Share of readings with both ends of the interval whose final lies in [low, high].
    pub coverage: Option<f64>,
    /// Readings with both ends of the interval.
    pub interval_n: usize,
}

/// When the alert would have fired, over months that end under or over budget.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertStats {
    /// Months ending ≥ 15 % under budget.
    pub under_months: usize,
    /// Of those, months in which it fired (should be 0).
    pub under_fired: usize,
    /// Of those, months that would have ended over budget had nothing unusual (a fall of pace)
    /// happened after the day it fired: it was right on all there was to know then.
    pub under_fired_before_a_fall: usize,
    /// Months ending ≥ 25 % over budget.
    pub over_months: usize,
    pub over_fired_by_day_10: usize,
    pub over_fired_later: usize,
    pub over_never: usize,
    /// Of the months fired later or never, those that would have ended less than 25 % over
    /// budget had nothing unusual (a rise of pace, a spike) happened after day 10: no forecast
    /// made by day 10 could know they would.
    pub over_late_unforeseeable: usize,
    /// The latest day of the month on which it first fired, in over-budget months.
    pub latest_first_day: Option<u32>,
    /// Over-budget months in which it fired after day 10 or never, and why they may have.
    pub late: Vec<String>,
    /// Under-budget months in which it fired, and why they may have.
    pub false_alarms: Vec<String>,
}

/// Everything the evaluation measured, for tables and for assertions.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// By bucket, kinds used for tuning.
    pub tuning: Vec<Row>,
    /// By bucket, held-out kinds.
    pub held_out: Vec<Row>,
    /// By kind, all days: (row, held out).
    pub kinds: Vec<(Row, bool)>,
    /// `None` when the rules have no such alert.
    pub alerts: Option<AlertStats>,
    pub held_out_alerts: Option<AlertStats>,
    /// The alert's `for`, in seconds.
    pub alert_for: Option<i64>,
    /// Forecast series no rule records, or with no data at all.
    pub missing_series: Vec<String>,
}

impl Summary {
    /// The tuning row of a bucket (`"4–10"`), if any.
    pub fn bucket(&self, label: &str) -> Option<&Row> {
        self.tuning.iter().find(|r| r.label == label)
    }
}

fn at(series: &Series, account: &str, t: i64) -> Option<f64> {
    series.get(account).and_then(|s| s.get(&t)).copied().filter(|v| !v.is_nan())
}

fn points(accounts: &[Account], r: &Readings) -> Vec<Point> {
    let mut out = Vec::new();
    for (kind, account) in accounts.iter().enumerate() {
        let name = account.kind.name;
        // The first month has no last month: the rules need it, so it is not judged.
        for month in account.months.iter().filter(|m| m.index >= 1) {
            for day in 1..=month.days {
                let t = month.start + i64::from(day - 1) * 86_400 + 43_200;
                if t < month.first_sample {
                    continue;
                }
                out.push(Point {
                    kind,
                    day,
                    final_spend: month.final_spend,
                    old: at(&r.linear, name, t),
                    new: at(&r.forecast, name, t),
                    low: at(&r.low, name, t),
                    high: at(&r.high, name, t),
                });
            }
        }
    }
    out
}

/// Linear-interpolated percentile of sorted values; an infinite neighbour wins.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = p * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b) = (sorted[lo], sorted[hi]);
    Some(if lo == hi || !b.is_finite() { b } else { a + (b - a) * (pos - lo as f64) })
}

fn ape_stats(values: impl Iterator<Item = (Option<f64>, f64)>) -> ApeStats {
    let mut apes = Vec::new();
    let mut missing = 0;
    for (forecast, truth) in values {
        match forecast {
            Some(f) => apes.push((f - truth).abs() / truth),
            None => missing += 1,
        }
    }
    apes.sort_by(f64::total_cmp);
    ApeStats { n: apes.len(), missing, median: percentile(&apes, 0.5), p90: percentile(&apes, 0.9) }
}

fn row(label: &str, points: &[&Point]) -> Row {
    let with_interval: Vec<_> = points.iter().filter_map(|p| Some((p.low?, p.high?, p.final_spend))).collect();
    let inside = with_interval.iter().filter(|(low, high, f)| low <= f && f <= high).count();
    Row {
        label: label.to_owned(),
        old: ape_stats(points.iter().map(|p| (p.old, p.final_spend))),
        new: ape_stats(points.iter().map(|p| (p.new, p.final_spend))),
        coverage: (!with_interval.is_empty()).then(|| inside as f64 / with_interval.len() as f64),
        interval_n: with_interval.len(),
    }
}

fn by_bucket(points: &[&Point]) -> Vec<Row> {
    BUCKETS
        .iter()
        .map(|(label, first, last)| {
            let here: Vec<&Point> = points.iter().copied().filter(|p| (*first..=*last).contains(&p.day)).collect();
            row(label, &here)
        })
        .collect()
}

/// A month "ends over budget" at this multiple of it or more (the generator's are 1.30).
const OVER: f64 = 1.25;

/// "kind YYYY-MM: first fired on day N; what was unusual about the month; where it would have
/// ended without what happened after the day that mattered (day 10, or the day it fired)".
fn explain(account: &Account, month: &MonthTruth, first: Option<u32>) -> String {
    let previous = account.months.iter().find(|p| p.index + 1 == month.index);
    let mut what = Vec::new();
    if let Some(d) = month.pace_change_day {
        what.push(format!("its pace changed on day {d}"));
    }
    if let Some(d) = month.spike_day {
        what.push(format!("a one-day spike on day {d}"));
    }
    if month.first_sample > month.start {
        what.push(format!("its data begins on day {}", (month.first_sample - month.start) / 86_400 + 1));
    }
    if let Some(d) = previous.and_then(|p| p.pace_change_day) {
        what.push(format!("last month's pace changed on day {d}"));
    }
    if what.is_empty() {
        what.push("nothing unusual".to_owned());
    }
    let (y, m, _) = cdn_usage_exporter::timeutil::civil_from_days(month.start.div_euclid(86_400));
    let when = first.map_or("never fired".to_owned(), |d| format!("first fired on day {d}"));
    // The day whose knowledge mattered: day 10 for a late alert, the firing day for a false one.
    let day = if month.over_budget { 10 } else { first.unwrap_or(month.days) };
    format!(
        "{} {y}-{m:02}: {when}; {}; it ended {}, and would have ended {} had nothing unusual happened after day {day}",
        account.kind.name,
        what.join(", "),
        versus_budget(month.final_spend, month.budget),
        versus_budget(calm_after(month, day), month.budget)
    )
}

/// The month's bill had nothing unusual happened after `day`.
fn calm_after(month: &MonthTruth, day: u32) -> f64 {
    month.final_if_calm_after.get(day as usize).copied().unwrap_or(month.final_spend)
}

/// First firing hour: the condition held at this evaluation and the ones before, back to
/// `for` ago. Evaluations are hourly, so an alert with `for: 2h` fires at the third hour in a
/// row, and one with `for: 30m` at the second (Prometheus, evaluating every minute, would fire
/// up to an hour earlier).
fn alerts(accounts: &[&Account], alert: &Series, for_secs: i64) -> AlertStats {
    let needed = (for_secs + 3_599) / 3_600 + 1;
    let mut stats = AlertStats::default();
    for account in accounts {
        let held = alert.get(account.kind.name);
        let holds = |t: i64| held.is_some_and(|h| h.contains_key(&t));
        for month in account.months.iter().filter(|m| m.index >= 1) {
            let end = month.start + i64::from(month.days) * 86_400;
            let first = (month.first_sample..end)
                .step_by(3_600)
                .find(|&t| (0..needed).all(|k| holds(t - k * 3_600)))
                .map(|t| ((t - month.start) / 86_400 + 1) as u32);
            if month.over_budget {
                stats.over_months += 1;
                match first {
                    Some(day) if day <= 10 => stats.over_fired_by_day_10 += 1,
                    Some(_) => stats.over_fired_later += 1,
                    None => stats.over_never += 1,
                }
                if first.is_none_or(|d| d > 10) {
                    stats.late.push(explain(account, month, first));
                    stats.over_late_unforeseeable += usize::from(calm_after(month, 10) < OVER * month.budget);
                }
                stats.latest_first_day = stats.latest_first_day.max(first);
            } else {
                stats.under_months += 1;
                stats.under_fired += usize::from(first.is_some());
                if let Some(day) = first {
                    stats.false_alarms.push(explain(account, month, first));
                    stats.under_fired_before_a_fall += usize::from(calm_after(month, day) > month.budget);
                }
            }
        }
    }
    stats
}

/// "12.3 % under its budget" or "4.0 % over its budget".
fn versus_budget(spend: f64, budget: f64) -> String {
    let ratio = spend / budget - 1.0;
    format!("{:.1} % {} its budget", ratio.abs() * 100.0, if ratio < 0.0 { "under" } else { "over" })
}

/// Measures the readings against the generator's truth.
pub fn summarize(accounts: &[Account], r: &Readings, alert_for: Option<i64>, missing: &[&str]) -> Summary {
    let all = points(accounts, r);
    let held = |p: &&Point| accounts[p.kind].kind.held_out;
    let tuning: Vec<&Point> = all.iter().filter(|p| !held(p)).collect();
    let held_out: Vec<&Point> = all.iter().filter(|p| held(p)).collect();
    let kinds = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (row(a.kind.name, &all.iter().filter(|p| p.kind == i).collect::<Vec<_>>()), a.kind.held_out))
        .collect();
    let mut missing_series: Vec<String> = missing.iter().map(|m| format!("{m} (no rule records it)")).collect();
    for (name, series) in [("forecast", &r.forecast), ("forecast_low", &r.low), ("forecast_high", &r.high)] {
        let full = format!("cdn:billing_spend_usd:{name}");
        if series.is_empty() && !missing.contains(&full.as_str()) {
            missing_series.push(format!("{full} (no data)"));
        }
    }
    let split = |held_out: bool| accounts.iter().filter(|a| a.kind.held_out == held_out).collect::<Vec<_>>();
    Summary {
        tuning: by_bucket(&tuning),
        held_out: by_bucket(&held_out),
        kinds,
        alerts: alert_for.map(|f| alerts(&split(false), &r.alert, f)),
        held_out_alerts: alert_for.map(|f| alerts(&split(true), &r.alert, f)),
        alert_for,
        missing_series,
    }
}

fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.1} %", v * 100.0),
        Some(_) => "∞".into(),
        None => "missing".into(),
    }
}

fn table(out: &mut String, title: &str, first: &str, rows: &[Row]) {
    let _ = writeln!(out, "\n**{title}**\n");
    let _ = writeln!(
        out,
        "| {first} | readings | old median | old p90 | new median | new p90 | new missing | final in [low, high] |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let coverage = r.coverage.map_or("missing".into(), |c| format!("{:.0} % of {}", c * 100.0, r.interval_n));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.old.n + r.old.missing,
            pct(r.old.median),
            pct(r.old.p90),
            pct(r.new.median),
            pct(r.new.p90),
            r.new.missing,
            coverage
        );
    }
}

fn late_lines(out: &mut String, a: &AlertStats) {
    for line in &a.late {
        let _ = writeln!(out, "- over budget, not fired by day 10: {line}");
    }
    for line in &a.false_alarms {
        let _ = writeln!(out, "- under budget, fired: {line}");
    }
}

fn alert_line(out: &mut String, label: &str, a: &AlertStats) {
    let latest = a.latest_first_day.map_or("–".into(), |d| d.to_string());
    let _ = writeln!(
        out,
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {latest} |",
        a.under_months,
        a.under_fired,
        a.under_fired_before_a_fall,
        a.over_months,
        a.over_fired_by_day_10,
        a.over_fired_later,
        a.over_never,
        a.over_late_unforeseeable
    );
}

/// The summary as Markdown.
pub fn report(s: &Summary, held_out_names: &[&str]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "APE = |forecast − final| / final, read at 12:00 UTC each day; old = eval:forecast_linear \
         (month-to-date / elapsed share), new = cdn:billing_spend_usd:forecast of the rules file."
    );
    if !s.missing_series.is_empty() {
        let _ = writeln!(out, "\nMissing: {}.", s.missing_series.join(", "));
    }
    table(&mut out, "By day of month, tuning kinds", "days", &s.tuning);
    table(&mut out, &format!("By day of month, held-out kinds ({})", held_out_names.join(", ")), "days", &s.held_out);
    let kinds: Vec<Row> = s
        .kinds
        .iter()
        .map(|(r, held)| Row { label: format!("{}{}", r.label, if *held { " (held out)" } else { "" }), ..r.clone() })
        .collect();
    table(&mut out, "By kind, all days", "kind", &kinds);
    match (&s.alerts, &s.held_out_alerts, s.alert_for) {
        (Some(tuning), Some(held), Some(for_secs)) => {
            let _ = writeln!(
                out,
                "\n**Alert CdnForecastSpendOverBudget** (its expr evaluated hourly; `for` {} s applied as \
                 {} consecutive hourly evaluations)\n",
                for_secs,
                (for_secs + 3_599) / 3_600 + 1
            );
            let _ = writeln!(
                out,
                "| kinds | months ≥15 % under | fired (must be 0) | of which on course over budget when it fired | months ≥25 % over | fired by day 10 | fired later | never | of which < 25 % over had days 11–end been calm | latest first-firing day |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            alert_line(&mut out, "tuning", tuning);
            alert_line(&mut out, "held out", held);
            let _ = writeln!(out);
            late_lines(&mut out, tuning);
            late_lines(&mut out, held);
        }
        _ => {
            let _ = writeln!(out, "\n**Alert CdnForecastSpendOverBudget**: not in the rules file.");
        }
    }
    out
}

/// One line per seed of what the targets of issue 24 look at, tuning and held-out kinds
/// together, and a line of them all; the late and false-alarm months are listed below it.
pub fn seeds_report(runs: &[(u64, Summary)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Median APE of the new rule (old rule in brackets) per bucket, the share of days whose final spend lies in \
         the 80 % interval, and the alert, over every kind (tuning and held out).\n"
    );
    let _ = writeln!(
        out,
        "| seed | days 1–3 | days 4–10 | days 11–20 | days 21–end | final in [low, high] | under-budget months fired | \
         of which on course over budget when it fired | over-budget months fired after day 10 or never | of which < 25 % over had days 11–end been calm |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1} %", v * 100.0));
    let mut total = AlertStats::default();
    let (mut inside, mut days) = (0.0, 0.0);
    let mut lines = Vec::new();
    for (seed, s) in runs {
        let mut cells = Vec::new();
        for (bucket, _, _) in BUCKETS {
            let rows: Vec<&Row> = s.tuning.iter().chain(&s.held_out).filter(|r| r.label == bucket).collect();
            // The tuning kinds' median, as the targets read it; the held-out one beside it.
            let tuning =
                rows.first().map_or("–".to_owned(), |r| format!("{} ({})", pct(r.new.median), pct(r.old.median)));
            let held = rows.get(1).map_or(String::new(), |r| format!("; held out {}", pct(r.new.median)));
            cells.push(format!("{tuning}{held}"));
        }
        let (i, d) = s.tuning.iter().chain(&s.held_out).fold((0.0, 0.0), |(i, d), r| {
            (i + r.coverage.unwrap_or(0.0) * r.interval_n as f64, d + r.interval_n as f64)
        });
        inside += i;
        days += d;
        let mut a = AlertStats::default();
        for stats in [&s.alerts, &s.held_out_alerts].into_iter().flatten() {
            a.under_months += stats.under_months;
            a.under_fired += stats.under_fired;
            a.under_fired_before_a_fall += stats.under_fired_before_a_fall;
            a.over_months += stats.over_months;
            a.over_fired_later += stats.over_fired_later + stats.over_never;
            a.over_late_unforeseeable += stats.over_late_unforeseeable;
            lines.extend(stats.late.iter().map(|l| format!("- seed {seed}, over budget, not fired by day 10: {l}")));
            lines.extend(stats.false_alarms.iter().map(|l| format!("- seed {seed}, under budget, fired: {l}")));
        }
        let _ = writeln!(
            out,
            "| {seed} | {} | {:.0} % | {} of {} | {} | {} of {} | {} |",
            cells.join(" | "),
            if d > 0.0 { 100.0 * i / d } else { f64::NAN },
            a.under_fired,
            a.under_months,
            a.under_fired_before_a_fall,
            a.over_fired_later,
            a.over_months,
            a.over_late_unforeseeable
        );
        total.under_months += a.under_months;
        total.under_fired += a.under_fired;
        total.under_fired_before_a_fall += a.under_fired_before_a_fall;
        total.over_months += a.over_months;
        total.over_fired_later += a.over_fired_later;
        total.over_late_unforeseeable += a.over_late_unforeseeable;
    }
    let _ = writeln!(
        out,
        "| all | | | | | {:.0} % | {} of {} | {} | {} of {} | {} |\n",
        if days > 0.0 { 100.0 * inside / days } else { f64::NAN },
        total.under_fired,
        total.under_months,
        total.under_fired_before_a_fall,
        total.over_fired_later,
        total.over_months,
        total.over_late_unforeseeable
    );
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    out
}
