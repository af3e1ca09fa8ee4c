//! Cost Explorer's `GetCostAndUsage` and `GetCostForecast` over the account's line items
//! ([`data::line_items`]): the time period and granularity rules, the metrics, the `Filter`
//! expression (a query without the `SERVICE` filter gets the other services' costs too),
//! `GroupBy`, `Estimated`, and paging by `NextPageToken` at `page_groups` groups a page.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::timeutil;

use super::SimAccount;
use super::data::{self, DAY, LineItem};
use super::wire::{self, AwsError};

/// The oldest data the API reaches: 13 months back plus the current month.
pub const HISTORY_MONTHS: i64 = 13;

/// Days of history a forecast needs.
pub const FORECAST_MIN_HISTORY_DAYS: i64 = 30;

/// What `NetUnblendedCost` and `NetAmortizedCost` are of the gross cost (an EDP discount).
pub const NET_FACTOR: f64 = 0.93;

const COST_METRICS: [(&str, f64); 5] = [
    ("UnblendedCost", 1.0),
    ("NetUnblendedCost", NET_FACTOR),
    ("AmortizedCost", 1.0),
    ("NetAmortizedCost", NET_FACTOR),
    ("BlendedCost", 1.0),
];

/// Dimensions a `Filter` may name (GetCostAndUsage's; `RESOURCE_ID` is refused apart).
const FILTER_DIMENSIONS: &[&str] = &[
    "AZ",
    "INSTANCE_TYPE",
    "LINKED_ACCOUNT",
    "OPERATION",
    "PURCHASE_TYPE",
    "REGION",
    "SERVICE",
    "USAGE_TYPE",
    "USAGE_TYPE_GROUP",
    "RECORD_TYPE",
    "OPERATING_SYSTEM",
    "TENANCY",
    "SCOPE",
    "PLATFORM",
    "SUBSCRIPTION_ID",
    "LEGAL_ENTITY_NAME",
    "DEPLOYMENT_OPTION",
    "DATABASE_ENGINE",
    "CACHE_ENGINE",
    "INSTANCE_TYPE_FAMILY",
    "BILLING_ENTITY",
    "RESERVATION_ID",
    "SAVINGS_PLANS_TYPE",
    "SAVINGS_PLAN_ARN",
    "PAYMENT_OPTION",
    "INVOICING_ENTITY",
];

/// Dimensions `GroupBy` may name: the model's list, and `REGION`, which works in practice.
const GROUP_DIMENSIONS: &[&str] = &[
    "AZ",
    "INSTANCE_TYPE",
    "LEGAL_ENTITY_NAME",
    "INVOICING_ENTITY",
    "LINKED_ACCOUNT",
    "OPERATION",
    "PLATFORM",
    "PURCHASE_TYPE",
    "SERVICE",
    "TENANCY",
    "RECORD_TYPE",
    "USAGE_TYPE",
    "REGION",
];

/// A line item's value of a dimension (`""` for the ones the simulator does not model).
fn dimension<'a>(item: &'a LineItem, account: &'a SimAccount, key: &str) -> &'a str {
    match key {
        "SERVICE" => &item.service,
        "USAGE_TYPE" => &item.usage_type,
        "RECORD_TYPE" => "Usage",
        "LINKED_ACCOUNT" => &account.account_id,
        "REGION" if item.service == data::CLOUDFRONT => "global",
        "REGION" => "us-east-1",
        "PURCHASE_TYPE" => "On Demand",
        "LEGAL_ENTITY_NAME" | "INVOICING_ENTITY" => "Amazon Web Services, Inc.",
        _ => "",
    }
}

/// A `Filter` expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Dimension(String, Vec<String>),
    /// `Tags` / `CostCategories`: nothing is tagged, so only an "absent" match holds.
    Untagged(bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

fn parse_expr(v: &Value, under_not: bool) -> Result<Expr, AwsError> {
    let obj = v.as_object().ok_or_else(|| AwsError::validation("Expression must be an object"))?;
    let set: Vec<(&String, &Value)> = obj.iter().filter(|(_, v)| !v.is_null()).collect();
    let [(key, value)] = set.as_slice() else {
        return Err(AwsError::validation(
            "Expression has more than one root-level filter or no filter; exactly one of And, Or, Not, Dimensions, Tags, CostCategories is required",
        ));
    };
    let list = |value: &Value| -> Result<Vec<Expr>, AwsError> {
        let items = value
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| AwsError::validation(format!("{key} must be a non-empty list of expressions")))?;
        items.iter().map(|e| parse_expr(e, under_not)).collect()
    };
    match key.as_str() {
        "And" => Ok(Expr::And(list(value)?)),
        "Or" => Ok(Expr::Or(list(value)?)),
        "Not" => Ok(Expr::Not(Box::new(parse_expr(value, true)?))),
        "Dimensions" => {
            let k = value
                .get("Key")
                .and_then(Value::as_str)
                .ok_or_else(|| AwsError::validation("Dimensions.Key is required"))?;
            if k == "RESOURCE_ID" {
                return Err(AwsError::validation(
                    "Dimension RESOURCE_ID is not allowed. Use GetCostAndUsageWithResources.",
                ));
            }
            if !FILTER_DIMENSIONS.contains(&k) {
                return Err(AwsError::validation(format!(
                    "Value '{k}' at 'filter.dimensions.key' failed to satisfy constraint: Member must satisfy enum value set"
                )));
            }
            if k == "SERVICE" && under_not {
                return Err(AwsError::validation("SERVICE dimension is not supported under a Not expression"));
            }
            if let Some(options) = value.get("MatchOptions").and_then(Value::as_array) {
                if options.iter().any(|o| !matches!(o.as_str(), Some("EQUALS" | "CASE_SENSITIVE"))) {
                    return Err(AwsError::validation("Dimensions only support EQUALS and CASE_SENSITIVE MatchOptions"));
                }
            }
            let values = value
                .get("Values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            Ok(Expr::Dimension(k.to_owned(), values))
        }
        "Tags" | "CostCategories" => {
            let absent =
                value.get("MatchOptions").and_then(Value::as_array).is_some_and(|o| o.iter().any(|o| o == "ABSENT"));
            Ok(Expr::Untagged(absent))
        }
        other => Err(AwsError::validation(format!("Unsupported filter expression: {other}"))),
    }
}

fn eval(e: &Expr, item: &LineItem, account: &SimAccount) -> bool {
    match e {
        Expr::Dimension(k, values) => values.iter().any(|v| v == dimension(item, account, k)),
        Expr::Untagged(absent) => *absent,
        Expr::And(es) => es.iter().all(|e| eval(e, item, account)),
        Expr::Or(es) => es.iter().any(|e| eval(e, item, account)),
        Expr::Not(e) => !eval(e, item, account),
    }
}

/// The line items a request's `Filter` keeps (all without one).
fn filtered(account: &SimAccount, body: &Value) -> Result<Vec<LineItem>, AwsError> {
    let filter = match body.get("Filter") {
        None | Some(Value::Null) => None,
        Some(f) => Some(parse_expr(f, false)?),
    };
    Ok(data::line_items(account).into_iter().filter(|i| filter.as_ref().is_none_or(|f| eval(f, i, account))).collect())
}

/// `TimePeriod.Start`/`End` as days `[start, end)`.
fn period(body: &Value) -> Result<(i64, i64), AwsError> {
    let field = |name: &str| -> Result<i64, AwsError> {
        let s = body
            .get("TimePeriod")
            .and_then(|t| t.get(name))
            .and_then(Value::as_str)
            .ok_or_else(|| AwsError::validation(format!("1 validation error detected: Value null at 'timePeriod.{}' failed to satisfy constraint: Member must not be null", name.to_lowercase())))?;
        let shaped = s.len() == 10 || (s.len() == 20 && s.as_bytes()[10] == b'T' && s.ends_with('Z'));
        timeutil::parse_ymd(s).filter(|_| shaped).ok_or_else(|| {
            AwsError::validation(format!("Invalid date format: {s}. The date must be in the format YYYY-MM-DD."))
        })
    };
    let (start, end) = (field("Start")?, field("End")?);
    if start >= end {
        return Err(AwsError::validation(format!(
            "Start date (and hour) should be before end date (and hour): requested Start {} must be before requested End {}",
            timeutil::format_ymd(start),
            timeutil::format_ymd(end)
        )));
    }
    Ok((start, end))
}

/// Whether Cost Explorer calls figures of a period starting on `day` estimated: the current
/// month (and anything later), and the previous month through the 4th of the current one.
pub fn estimated(day: i64, now: i64) -> bool {
    let today = now.div_euclid(DAY);
    let this_month = timeutil::month_start(today);
    let month = timeutil::month_start(day);
    month >= this_month || (month == timeutil::month_start(this_month - 1) && today - this_month < 4)
}

/// The periods of `[start, end)` at a granularity: days, or calendar months clipped to it.
fn periods(start: i64, end: i64, monthly: bool) -> Vec<(i64, i64)> {
    if monthly {
        timeutil::months(start, end - 1).into_iter().map(|(a, b)| (a.max(start), (b + 1).min(end))).collect()
    } else {
        (start..end).map(|d| (d, d + 1)).collect()
    }
}

/// The first day the API still has data for at `now`.
pub fn oldest_day(now: i64) -> i64 {
    let mut first = timeutil::month_start(now.div_euclid(DAY));
    for _ in 0..HISTORY_MONTHS {
        first = timeutil::month_start(first - 1);
    }
    first
}

/// A metric's sums over a set of line items.
#[derive(Debug, Clone, Default)]
struct Sums {
    usd: f64,
    units: f64,
    unit: Option<String>,
    mixed: bool,
}

impl Sums {
    fn add(&mut self, item: &LineItem, usd: f64, units: f64) {
        self.usd += usd;
        self.units += units;
        match &self.unit {
            None => self.unit = Some(item.unit.clone()),
            Some(u) if *u != item.unit => self.mixed = true,
            _ => {}
        }
    }

    fn metrics(&self, names: &[String]) -> Value {
        let mut m = Map::new();
        for name in names {
            let v = match name.as_str() {
                "UsageQuantity" => {
                    let unit = if self.mixed { "N/A" } else { self.unit.as_deref().unwrap_or("N/A") };
                    json!({"Amount": data::amount(self.units), "Unit": unit})
                }
                "NormalizedUsageAmount" => json!({"Amount": "0", "Unit": "N/A"}),
                cost => {
                    let f = COST_METRICS.iter().find(|(n, _)| *n == cost).map_or(1.0, |(_, f)| *f);
                    json!({"Amount": data::amount(self.usd * f), "Unit": "USD"})
                }
            };
            m.insert(name.clone(), v);
        }
        Value::Object(m)
    }
}

/// A `GroupBy` entry: a dimension, or a tag/cost category (all untagged: `"key$"`).
#[derive(Debug, Clone, PartialEq)]
enum Group {
    Dimension(String),
    Untagged(String),
}

fn group_by(body: &Value) -> Result<Vec<Group>, AwsError> {
    let Some(list) = body.get("GroupBy").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| AwsError::validation("GroupBy must be a list"))?;
    if list.len() > 2 {
        return Err(AwsError::validation(
            "You can only group by up to two different dimensions, tags or cost categories.",
        ));
    }
    list.iter()
        .map(|g| {
            let kind = g.get("Type").and_then(Value::as_str).unwrap_or_default();
            let key = g.get("Key").and_then(Value::as_str).unwrap_or_default();
            match kind {
                "DIMENSION" if GROUP_DIMENSIONS.contains(&key) => Ok(Group::Dimension(key.to_owned())),
                "DIMENSION" => Err(AwsError::validation(format!("Group Definition dimension is invalid. Valid values are {}", GROUP_DIMENSIONS.join(", ")))),
                "TAG" | "COST_CATEGORY" if !key.is_empty() => Ok(Group::Untagged(key.to_owned())),
                _ => Err(AwsError::validation(format!("Value '{kind}' at 'groupBy.type' failed to satisfy constraint: Member must satisfy enum value set: [DIMENSION, TAG, COST_CATEGORY]"))),
            }
        })
        .collect()
}

/// `Metrics`: the names, checked.
fn metric_names(body: &Value) -> Result<Vec<String>, AwsError> {
    let list = body
        .get("Metrics")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| AwsError::validation("1 validation error detected: Value null at 'metrics' failed to satisfy constraint: Member must not be null"))?;
    let mut names = Vec::new();
    for m in list {
        let name = m.as_str().unwrap_or_default();
        let known =
            COST_METRICS.iter().any(|(n, _)| *n == name) || name == "UsageQuantity" || name == "NormalizedUsageAmount";
        if !known {
            return Err(AwsError::validation(format!(
                "Metrics [{name}] are invalid. Valid values are AmortizedCost, BlendedCost, NetAmortizedCost, NetUnblendedCost, NormalizedUsageAmount, UnblendedCost, UsageQuantity."
            )));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The offset a page token carries, for a request with this fingerprint.
fn read_token(token: &str, fingerprint: &str) -> Result<usize, AwsError> {
    let invalid = || AwsError::new(StatusCode::BAD_REQUEST, "InvalidNextTokenException", "Invalid NextPageToken");
    let fields = wire::open(token).ok_or_else(invalid)?;
    let [fp, offset] = fields.as_slice() else { return Err(invalid()) };
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    if fp != fingerprint {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "RequestChangedException",
            "The request parameters changed between pages: send the same request with the NextPageToken.",
        ));
    }
    Ok(offset)
}

/// `GetCostAndUsage` for `account` at `now`.
pub fn get_cost_and_usage(account: &SimAccount, body: &Value, now: i64) -> Result<Value, AwsError> {
    let (start, end) = period(body)?;
    let monthly = match body.get("Granularity").and_then(Value::as_str) {
        Some("DAILY") => false,
        Some("MONTHLY") => true,
        Some("HOURLY") => {
            return Err(AwsError::validation(
                "Hourly granularity is not enabled for this account. Enable hourly granularity in the Cost Explorer preferences.",
            ));
        }
        other => {
            return Err(AwsError::validation(format!(
                "Value '{}' at 'granularity' failed to satisfy constraint: Member must satisfy enum value set: [HOURLY, DAILY, MONTHLY]",
                other.unwrap_or("null")
            )));
        }
    };
    let today = now.div_euclid(DAY);
    if start > today {
        return Err(AwsError::validation(format!(
            "Start date {} is after the current date",
            timeutil::format_ymd(start)
        )));
    }
    if start < oldest_day(now) {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "BillExpirationException",
            format!(
                "You haven't enabled historical data beyond 14 months. The earliest start date is {}.",
                timeutil::format_ymd(oldest_day(now))
            ),
        ));
    }
    let names = metric_names(body)?;
    let groups = group_by(body)?;
    let items = filtered(account, body)?;
    let fp = wire::fingerprint(body, "NextPageToken");
    let offset = match body.get("NextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => read_token(t, &fp)?,
    };

    // Every period's groups (or total), in order: the entries pages are cut from.
    struct Entry {
        period: usize,
        keys: Option<Vec<String>>,
        sums: Sums,
    }
    let periods = periods(start, end, monthly);
    let mut entries: Vec<Entry> = Vec::new();
    for (p, &(from, to)) in periods.iter().enumerate() {
        let mut total = Sums::default();
        let mut grouped: Vec<(Vec<String>, Sums)> = Vec::new();
        for item in &items {
            let (mut usd, mut units) = (0.0, 0.0);
            for day in from..to {
                let (u, n) = item.day(day, now, account.history_from);
                usd += u;
                units += n;
            }
            if usd == 0.0 && units == 0.0 {
                continue;
            }
            total.add(item, usd, units);
            let keys: Vec<String> = groups
                .iter()
                .map(|g| match g {
                    Group::Dimension(k) => dimension(item, account, k).to_owned(),
                    Group::Untagged(k) => format!("{k}$"),
                })
                .collect();
            match grouped.iter_mut().find(|(k, _)| *k == keys) {
                Some((_, s)) => s.add(item, usd, units),
                None => {
                    let mut s = Sums::default();
                    s.add(item, usd, units);
                    grouped.push((keys, s));
                }
            }
        }
        if groups.is_empty() {
            entries.push(Entry { period: p, keys: None, sums: total });
        } else if grouped.is_empty() {
            entries.push(Entry { period: p, keys: None, sums: Sums::default() });
        } else {
            entries.extend(grouped.into_iter().map(|(keys, sums)| Entry { period: p, keys: Some(keys), sums }));
        }
    }
    if offset > entries.len() || (offset == entries.len() && offset > 0) {
        return Err(AwsError::new(StatusCode::BAD_REQUEST, "InvalidNextTokenException", "Invalid NextPageToken"));
    }
    let page_size = if groups.is_empty() { usize::MAX } else { account.page_groups.max(1) };
    let page_end = offset.saturating_add(page_size).min(entries.len());

    let mut results: Vec<Value> = Vec::new();
    let mut current: Option<(usize, Vec<Value>, Option<Value>)> = None;
    let flush = |current: Option<(usize, Vec<Value>, Option<Value>)>, results: &mut Vec<Value>| {
        if let Some((p, grouped, total)) = current {
            let (from, to) = periods[p];
            results.push(json!({
                "TimePeriod": {"Start": timeutil::format_ymd(from), "End": timeutil::format_ymd(to)},
                "Total": total.unwrap_or_else(|| json!({})),
                "Groups": grouped,
                "Estimated": estimated(from, now),
            }));
        }
    };
    for e in &entries[offset..page_end] {
        if current.as_ref().is_none_or(|(p, _, _)| *p != e.period) {
            flush(current.take(), &mut results);
            current = Some((e.period, Vec::new(), None));
        }
        let Some((_, grouped, total)) = current.as_mut() else { continue };
        match &e.keys {
            Some(keys) => grouped.push(json!({"Keys": keys, "Metrics": e.sums.metrics(&names)})),
            None if groups.is_empty() => *total = Some(e.sums.metrics(&names)),
            None => {}
        }
    }
    flush(current, &mut results);

    let mut out = Map::new();
    if !groups.is_empty() {
        let defs: Vec<Value> = body["GroupBy"].as_array().cloned().unwrap_or_default();
        out.insert("GroupDefinitions".into(), Value::Array(defs));
    }
    out.insert("ResultsByTime".into(), Value::Array(results));
    out.insert("DimensionValueAttributes".into(), json!([]));
    if page_end < entries.len() {
        out.insert("NextPageToken".into(), json!(wire::seal(&[fp, page_end.to_string()])));
    }
    Ok(Value::Object(out))
}

/// The forecast metrics and what they are of the gross cost.
const FORECAST_METRICS: [(&str, f64); 5] = [
    ("UNBLENDED_COST", 1.0),
    ("NET_UNBLENDED_COST", NET_FACTOR),
    ("AMORTIZED_COST", 1.0),
    ("NET_AMORTIZED_COST", NET_FACTOR),
    ("BLENDED_COST", 1.0),
];

/// Days a forecast averages over (the last full days before today).
pub const FORECAST_BASE_DAYS: i64 = 14;

/// The half-width of the prediction interval at `level` (51–99), as a share of the mean:
/// 4% at 80, 5.5% at 95.
pub fn interval(level: i64) -> f64 {
    0.01 + (level - 50) as f64 * 0.001
}

/// `GetCostForecast` for `account` at `now`: the mean of the last [`FORECAST_BASE_DAYS`] full
/// days, for the rest of today and every day after, per period of the granularity.
pub fn get_cost_forecast(account: &SimAccount, body: &Value, now: i64) -> Result<Value, AwsError> {
    let (start, end) = period(body)?;
    let today = now.div_euclid(DAY);
    if start < today {
        return Err(AwsError::validation(format!(
            "Start date {} must be the current date or later (current date: {})",
            timeutil::format_ymd(start),
            timeutil::format_ymd(today)
        )));
    }
    let metric = body.get("Metric").and_then(Value::as_str).unwrap_or("null");
    let Some(&(_, metric_factor)) = FORECAST_METRICS.iter().find(|(m, _)| *m == metric) else {
        return Err(AwsError::validation(format!(
            "Value '{metric}' at 'metric' failed to satisfy constraint: Member must satisfy enum value set: [UNBLENDED_COST, NET_UNBLENDED_COST, AMORTIZED_COST, NET_AMORTIZED_COST, BLENDED_COST]"
        )));
    };
    let monthly = match body.get("Granularity").and_then(Value::as_str) {
        Some("DAILY") => false,
        Some("MONTHLY") => true,
        other => {
            return Err(AwsError::validation(format!(
                "Value '{}' at 'granularity' failed to satisfy constraint: Member must satisfy enum value set: [DAILY, MONTHLY]",
                other.unwrap_or("null")
            )));
        }
    };
    if !monthly && end > today + 93 {
        return Err(AwsError::validation("A DAILY forecast can reach at most 3 months ahead"));
    }
    if monthly {
        let mut limit = timeutil::month_start(today);
        for _ in 0..19 {
            limit = timeutil::month_start(limit + 31);
        }
        if end > limit {
            return Err(AwsError::validation("A MONTHLY forecast can reach at most 18 months ahead"));
        }
    }
    let level = match body.get("PredictionIntervalLevel").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => match v.as_i64() {
            Some(l) if (51..=99).contains(&l) => Some(l),
            _ => {
                return Err(AwsError::validation(format!(
                    "Value '{v}' at 'predictionIntervalLevel' failed to satisfy constraint: Member must have value between 51 and 99"
                )));
            }
        },
    };
    let items = filtered(account, body)?;
    let from = (today - FORECAST_BASE_DAYS).max(account.history_from);
    let base_days = today - from;
    let mean_daily = if base_days > 0 {
        items.iter().map(|i| i.full_days_usd(from, today, account.history_from)).sum::<f64>() / base_days as f64
            * metric_factor
    } else {
        0.0
    };
    if today - account.history_from < FORECAST_MIN_HISTORY_DAYS || mean_daily <= 0.0 {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "DataUnavailableException",
            "Insufficient amount of historical data.",
        ));
    }
    let mut total = 0.0;
    let mut results = Vec::new();
    for (a, b) in periods(start, end, monthly) {
        let days: f64 = (a..b).map(|d| if d == today { 1.0 - data::share(d, now) } else { 1.0 }).sum();
        let mean = mean_daily * days;
        total += mean;
        let mut r = json!({
            "TimePeriod": {"Start": timeutil::format_ymd(a), "End": timeutil::format_ymd(b)},
            "MeanValue": data::amount(mean),
        });
        if let Some(level) = level {
            let w = interval(level);
            r["PredictionIntervalLowerBound"] = json!(data::amount(mean * (1.0 - w)));
            r["PredictionIntervalUpperBound"] = json!(data::amount(mean * (1.0 + w)));
        }
        results.push(r);
    }
    Ok(json!({"Total": {"Amount": data::amount(total), "Unit": "USD"}, "ForecastResultsByTime": results}))
}
