//! Spend at a glance for the status page: per account, spend to date, the provider's estimate,
//! our own month-end forecast with its 80 % interval (the method of the
//! `cdn:billing_spend_usd:forecast*` recording rules, [`crate::forecast`]),
//! and the budget, drawn as one inline SVG bar; and, where an account has traffic figures, its
//! billable bandwidth (the month's 95th percentile and peak) against its commitment. No
//! scripts, no external assets.

use std::fmt::Write as _;

use crate::forecast::Forecast;
use crate::html::escape;
use crate::timeutil::{civil_from_days, days_in_month};

/// One account's billing figures, as served on `/metrics`; `None` where a figure is not known
/// (no billing job, no budget configured, a first poll still pending).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountSpend {
    /// `provider` label.
    pub provider: String,
    /// `account` label.
    pub account: String,
    /// `cdn_billing_month_to_date_spend_usd`.
    pub spend: Option<f64>,
    /// `cdn_billing_estimated_month_spend_usd`: the provider's own month-end estimate.
    pub estimate: Option<f64>,
    /// `cdn_billing_estimated_month_spend_low_usd`: the low end of the provider's interval.
    pub estimate_low: Option<f64>,
    /// `cdn_billing_estimated_month_spend_high_usd`: its high end.
    pub estimate_high: Option<f64>,
    /// `cdn_billing_budget_usd`.
    pub budget: Option<f64>,
    /// `cdn_month_to_date_account_p95_bandwidth_bytes_per_second`: the billable bandwidth of a
    /// contract billed by the 95th percentile.
    pub p95: Option<f64>,
    /// `cdn_month_to_date_account_peak_bandwidth_bytes_per_second`.
    pub peak: Option<f64>,
    /// `cdn_bandwidth_commit_bytes_per_second`: the configured commitment.
    pub commit: Option<f64>,
    /// `cdn_billing_last_month_spend_usd`: last month's final bill.
    pub last_month: Option<f64>,
    /// `cdn_billing_month_start_timestamp_seconds`: when the account's billing month began, where
    /// it is not the UTC month.
    pub month_start: Option<f64>,
    /// `cdn_billing_spend_source_info{source="contract"}`: the exporter priced the spend from
    /// the account's contract (the provider reports usage only).
    pub priced: bool,
    /// Our month-end forecast from the spend seen so far ([`crate::forecast::forecast`]).
    pub forecast: Option<Forecast>,
}

/// The share of the current UTC month that has passed at `unix`, from 0 to 1, at minute
/// resolution: the `cdn:month_elapsed:ratio` recording rule,
/// `((day_of_month() - 1) * 86400 + hour() * 3600 + minute() * 60) / (days_in_month() * 86400)`.
pub fn month_elapsed_ratio(unix: i64) -> f64 {
    let days = unix.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let of_day = unix.rem_euclid(86_400);
    let elapsed = (i64::from(d) - 1) * 86_400 + of_day / 60 * 60;
    elapsed as f64 / (f64::from(days_in_month(y, m)) * 86_400.0)
}

/// `$1,234.56`; negative amounts (credits) keep their sign.
pub fn usd(v: f64) -> String {
    let cents = (v.abs() * 100.0).round();
    if !cents.is_finite() || cents > 1e15 {
        return format!("${v:.0}");
    }
    let cents = cents as u64;
    let whole = (cents / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}${grouped}.{:02}", if v < 0.0 { "-" } else { "" }, cents % 100)
}

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 18.0;

/// The bar: spend to date filled (red past the budget), the forecast as a lighter extension,
/// the provider's estimate as a tick, the budget as a dark line. Scaled to the largest figure.
fn bar(a: &AccountSpend, forecast: Option<f64>) -> String {
    let figures = [a.spend, a.estimate, a.budget, forecast];
    let top = figures.iter().flatten().copied().filter(|v| v.is_finite()).fold(0.0_f64, f64::max) * 1.05;
    if top <= 0.0 {
        return String::new();
    }
    let x = |v: f64| (v.max(0.0) / top * WIDTH).min(WIDTH);
    let over = |v: f64| a.budget.is_some_and(|b| v > b);
    let mut svg = format!(
        "<svg class=\"bar\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"spend against budget\"><rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#eee\"/>"
    );
    if let Some(f) = forecast {
        let fill = if over(f) { "#f2b8b5" } else { "#b7d7bf" };
        let _ = write!(svg, "<rect class=\"forecast\" width=\"{:.1}\" height=\"{HEIGHT}\" fill=\"{fill}\"/>", x(f));
    }
    if let Some(s) = a.spend {
        let fill = if over(s) { "#b3261e" } else { "#176f2c" };
        let _ = write!(svg, "<rect class=\"spend\" width=\"{:.1}\" height=\"{HEIGHT}\" fill=\"{fill}\"/>", x(s));
    }
    if let Some(e) = a.estimate {
        let _ = write!(
            svg,
            "<rect class=\"estimate\" x=\"{:.1}\" y=\"2\" width=\"3\" height=\"{}\" fill=\"#1f4e9c\"/>",
            (x(e) - 1.5).max(0.0),
            HEIGHT - 4.0
        );
    }
    if let Some(b) = a.budget {
        let _ = write!(
            svg,
            "<rect class=\"budget\" x=\"{:.1}\" width=\"2\" height=\"{HEIGHT}\" fill=\"#222\"/>",
            (x(b) - 1.0).max(0.0)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `931.6 Mbit/s` from bytes per second.
pub fn mbits(bytes_per_second: f64) -> String {
    format!("{:.1} Mbit/s", bytes_per_second * 8.0 / 1e6)
}

/// The "Billable bandwidth" section: per account with traffic figures, the month's 95th
/// percentile and peak against the commitment; empty when no account has them.
fn bandwidth(accounts: &[AccountSpend]) -> String {
    let accounts: Vec<_> = accounts.iter().filter(|a| a.p95.is_some() || a.peak.is_some()).collect();
    if accounts.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Billable bandwidth this month</h2><table id=\"bandwidth\"><thead><tr><th>Provider</th><th>Account</th>\
         <th>95th percentile</th><th>Peak</th><th>Commitment</th><th>Of commitment</th><th></th></tr></thead><tbody>",
    );
    let rate = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), mbits);
    for a in accounts {
        let share = match (a.p95, a.commit) {
            (Some(p), Some(c)) if c > 0.0 => format!("{:.0} %", p / c * 100.0),
            _ => "—".into(),
        };
        let class = match (a.p95, a.commit) {
            (Some(p), Some(c)) if p > c => " class=\"fail\"",
            _ => "",
        };
        // The same bar as for spend: the percentile filled, the peak as the lighter extension,
        // the commitment as the line.
        let figures = AccountSpend { spend: a.p95, budget: a.commit, ..AccountSpend::default() };
        let _ = write!(
            out,
            "<tr data-account=\"{}/{}\"><td>{}</td><td>{}</td><td{class}>{}</td><td>{}</td><td>{}</td><td>{share}</td>\
             <td>{}</td></tr>",
            escape(&a.provider),
            escape(&a.account),
            escape(&a.provider),
            escape(&a.account),
            rate(a.p95),
            rate(a.peak),
            rate(a.commit),
            bar(&figures, a.peak),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The "Spend this month" and "Billable bandwidth" sections; empty when no account has
/// billing or traffic figures.
pub fn render(accounts: &[AccountSpend], now_unix: i64) -> String {
    let bandwidth = bandwidth(accounts);
    let accounts: Vec<_> =
        accounts.iter().filter(|a| a.spend.is_some() || a.estimate.is_some() || a.budget.is_some()).collect();
    if accounts.is_empty() {
        return bandwidth;
    }
    let elapsed = month_elapsed_ratio(now_unix);
    let mut out = format!(
        "<h2>Spend this month</h2><p class=\"muted\">{:.0} % of the month (UTC) has passed. Our forecast, with its 80 % \
         interval below it, is the method of the <code>cdn:billing_spend_usd:forecast</code> rules (docs/alerts.md) \
         applied to the spend this exporter has seen since it started; Prometheus, which holds the whole history, \
         has the authoritative figure. Bar: \
         <span style=\"color:#176f2c\">■</span> spend, <span style=\"color:#7aa883\">■</span> forecast, \
         <span style=\"color:#1f4e9c\">▮</span> month-end estimate (the provider's, or <em>priced</em> from the \
         account's contract), <span>▮</span> budget.</p>\
         <table id=\"spend\"><thead><tr><th>Provider</th><th>Account</th><th>Spend to date</th>\
         <th>Month-end estimate</th><th>Our forecast</th><th>Budget</th><th>Used</th><th>Last month</th><th></th></tr></thead><tbody>",
        elapsed * 100.0
    );
    let money = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), usd);
    for a in accounts {
        let forecast = a.forecast.map(|f| f.expected);
        let used = match (a.spend, a.budget) {
            (Some(s), Some(b)) if b > 0.0 => format!("{:.0} %", s / b * 100.0),
            _ => "—".into(),
        };
        // Flagged as the alerts flag it: the low end of our forecast's interval, or the
        // provider's (or the contract's) estimate, over the budget.
        let over = |v: Option<f64>| v.zip(a.budget).is_some_and(|(v, b)| v > b);
        let class = if over(a.forecast.map(|f| f.low)) || over(a.estimate) { " class=\"fail\"" } else { "" };
        let _ = write!(
            out,
            "<tr data-account=\"{}/{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td{class}>{}</td><td>{}</td>\
             <td>{used}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.provider),
            escape(&a.account),
            escape(&a.provider),
            escape(&a.account),
            money(a.spend),
            money(a.estimate),
            match (a.estimate_low, a.estimate_high) {
                (Some(l), Some(h)) => format!("<br><span class=\"muted\">{} – {}</span>", usd(l), usd(h)),
                _ => String::new(),
            } + if a.priced {
                " <span class=\"muted\" title=\"priced from the account's contract\">priced</span>"
            } else {
                ""
            },
            a.forecast.map_or_else(
                || "—".to_owned(),
                |f| format!(
                    "<span title=\"{}\">{}</span><br><span class=\"muted\">{} – {}</span>",
                    f.method.as_str(),
                    usd(f.expected),
                    usd(f.low),
                    usd(f.high)
                )
            ),
            money(a.budget),
            money(a.last_month),
            bar(a, forecast),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&bandwidth);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeutil::days_from_civil;

    fn at(y: i64, m: u32, d: u32, h: i64, min: i64, s: i64) -> i64 {
        days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60 + s
    }

    #[test]
    fn elapsed_share_matches_the_recording_rule() {
        assert_eq!(month_elapsed_ratio(at(2026, 11, 1, 0, 0, 0)), 0.0);
        // Seconds are not counted, as in the rule.
        assert_eq!(month_elapsed_ratio(at(2026, 11, 1, 0, 0, 59)), 0.0);
        assert_eq!(month_elapsed_ratio(at(2026, 11, 16, 0, 0, 0)), 0.5);
        let feb = month_elapsed_ratio(at(2028, 2, 15, 12, 30, 0));
        assert!((feb - (14.0 * 86400.0 + 12.0 * 3600.0 + 1800.0) / (29.0 * 86400.0)).abs() < 1e-12, "{feb}");
        assert!(month_elapsed_ratio(at(2026, 12, 31, 23, 59, 0)) < 1.0);
    }

    #[test]
    fn money_is_grouped_and_signed() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(1234.567), "$1,234.57");
        assert_eq!(usd(1_000_000.0), "$1,000,000.00");
        assert_eq!(usd(-12.5), "-$12.50");
        assert_eq!(usd(999.999), "$1,000.00");
    }

    #[test]
    fn a_row_per_account_with_figures_and_an_escaped_name() {
        let accounts = [
            AccountSpend {
                provider: "scaleengine".into(),
                account: "<main>".into(),
                spend: Some(150.0),
                estimate: Some(290.0),
                estimate_low: Some(270.0),
                estimate_high: Some(310.5),
                budget: Some(250.0),
                forecast: Some(Forecast {
                    expected: 300.0,
                    low: 255.0,
                    high: 345.0,
                    method: crate::forecast::Method::Shape,
                }),
                ..Default::default()
            },
            AccountSpend { provider: "cdnetworks".into(), account: "storage-only".into(), ..Default::default() },
        ];
        let html = render(&accounts, at(2026, 11, 16, 0, 0, 0));
        assert_eq!(html.matches("<tr data-account=").count(), 1, "accounts without billing figures are left out");
        assert!(html.contains("&lt;main&gt;") && !html.contains("<main>"), "{html}");
        for figure in [
            "$150.00",
            "$290.00",
            "$270.00 – $310.50",
            "$300.00",
            "$250.00",
            "60 %",
            "$255.00 – $345.00",
            "last month's shape",
        ] {
            assert!(html.contains(figure), "{figure} missing: {html}");
        }
        assert!(html.contains("class=\"fail\""), "a forecast over budget is flagged");
        // As the alert: only when the interval's low end is over the budget.
        let unsure = |low: f64| AccountSpend {
            provider: "fastly".into(),
            account: "f".into(),
            spend: Some(100.0),
            budget: Some(250.0),
            forecast: Some(Forecast { expected: 300.0, low, high: 500.0, method: crate::forecast::Method::Linear }),
            ..Default::default()
        };
        assert!(!render(&[unsure(100.0)], 0).contains("class=\"fail\""), "a wide interval is not flagged");
        assert!(render(&[unsure(260.0)], 0).contains("class=\"fail\""));
        assert!(html.contains("<svg") && !html.contains("<script"), "{html}");
        assert!(render(&accounts[1..], 0).is_empty());
        assert!(!html.contains(">priced</span>"), "the provider's own estimate is not marked");
        let priced = AccountSpend {
            provider: "cdnetworks".into(),
            account: "media".into(),
            spend: Some(10.0),
            estimate: Some(40.0),
            last_month: Some(1234.5),
            priced: true,
            ..Default::default()
        };
        let html = render(&[priced], at(2026, 11, 16, 0, 0, 0));
        assert!(html.contains("$40.00 <span") && html.contains(">priced</span>"), "{html}");
        assert!(html.contains("<td>$1,234.50</td>"), "last month: {html}");
    }

    #[test]
    fn billable_bandwidth_is_shown_against_the_commitment() {
        let a = AccountSpend {
            provider: "cdnetworks".into(),
            account: "cdn".into(),
            p95: Some(25e6),
            peak: Some(50e6),
            commit: Some(20e6),
            ..Default::default()
        };
        let html = render(&[a], 0);
        assert!(!html.contains("Spend this month"), "no billing figures, no spend table: {html}");
        for figure in ["200.0 Mbit/s", "400.0 Mbit/s", "160.0 Mbit/s", "125 %", "class=\"fail\"", "<svg"] {
            assert!(html.contains(figure), "{figure} missing: {html}");
        }
    }

    #[test]
    fn bars_scale_to_the_largest_figure_and_survive_odd_values() {
        let a = AccountSpend { spend: Some(50.0), budget: Some(100.0), ..Default::default() };
        let svg = bar(&a, Some(200.0));
        // 200 is the top (×1.05): spend at 50 is about a quarter of the width.
        assert!(svg.contains("class=\"spend\" width=\"76.2\""), "{svg}");
        let odd =
            AccountSpend { spend: Some(-5.0), estimate: Some(f64::INFINITY), budget: Some(0.0), ..Default::default() };
        let svg = bar(&odd, None);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
