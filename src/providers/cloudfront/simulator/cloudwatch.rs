//! CloudWatch's `GetMetricData` (awsJson 1.0) over the account's distributions: the query
//! rules (at most 500, `Id` pattern, unique ids), data only for `AWS/CloudFront` `Requests`,
//! `BytesDownloaded` and `BytesUploaded` with exactly the dimensions `DistributionId` and
//! `Region=Global`, buckets from `StartTime` by `Period` (no points for a period that is not a
//! multiple the data's age allows), the partial current bucket, `ScanBy`, and `MaxDatapoints`
//! paging by `NextToken` (bound to the request and to the time of its first page).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::data::{self, DAY, Metric};
use super::wire::{self, AwsError};
use super::{SimAccount, SimDistribution};

/// The most queries one call may carry.
pub const MAX_QUERIES: usize = 500;

/// `MaxDatapoints`' default (and the most points one call returns).
pub const DEFAULT_MAX_DATAPOINTS: usize = 100_800;

/// How long CloudWatch keeps hourly data: 455 days.
pub const RETENTION_SECS: i64 = 455 * DAY;

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::coded(StatusCode::BAD_REQUEST, "InvalidParameterValueException", "InvalidParameterValue", message)
}

fn missing(name: &str) -> AwsError {
    AwsError::coded(
        StatusCode::BAD_REQUEST,
        "MissingRequiredParameterException",
        "MissingParameter",
        format!("The parameter {name} is required."),
    )
}

/// Whether an `Id` is valid: a lowercase letter, then letters, digits and `_`.
pub fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a query asks for, checked: the distribution and metric when it names one with data.
struct Query<'a> {
    id: String,
    label: String,
    return_data: bool,
    series: Option<(&'a SimDistribution, Metric)>,
    period: i64,
    stat: String,
}

/// The distribution a dimension set names, when it is exactly `{DistributionId, Region=Global}`.
fn distribution<'a>(account: &'a SimAccount, dims: &[Value]) -> Option<&'a SimDistribution> {
    if dims.len() != 2 {
        return None;
    }
    let get = |name: &str| {
        let mut found = dims.iter().filter(|d| d.get("Name").and_then(Value::as_str) == Some(name));
        let first = found.next()?.get("Value")?.as_str();
        if found.next().is_some() { None } else { first }
    };
    if get("Region")? != "Global" {
        return None;
    }
    let id = get("DistributionId")?;
    account.distributions.iter().find(|d| d.id == id)
}

fn parse_query<'a>(account: &'a SimAccount, i: usize, q: &Value) -> Result<Query<'a>, AwsError> {
    let n = i + 1;
    let id = q.get("Id").and_then(Value::as_str).ok_or_else(|| missing(&format!("MetricDataQueries.member.{n}.Id")))?;
    if !valid_id(id) {
        return Err(invalid(format!(
            "The value {id} for parameter MetricDataQueries.member.{n}.Id is invalid. It must start with a lowercase letter and contain only letters, numbers and underscores."
        )));
    }
    let stat = q.get("MetricStat").filter(|v| !v.is_null());
    let expression = q.get("Expression").filter(|v| !v.is_null());
    if stat.is_some() == expression.is_some() {
        return Err(AwsError::coded(
            StatusCode::BAD_REQUEST,
            "InvalidParameterCombinationException",
            "InvalidParameterCombination",
            format!("Exactly one of MetricStat and Expression must be given in MetricDataQueries.member.{n}."),
        ));
    }
    let return_data = q.get("ReturnData").and_then(Value::as_bool).unwrap_or(true);
    let label = q.get("Label").and_then(Value::as_str);
    let Some(stat) = stat else {
        // Metric math is not simulated: the expression yields no data.
        return Ok(Query {
            id: id.into(),
            label: label.unwrap_or(id).into(),
            return_data,
            series: None,
            period: 60,
            stat: String::new(),
        });
    };
    let metric =
        stat.get("Metric").ok_or_else(|| missing(&format!("MetricDataQueries.member.{n}.MetricStat.Metric")))?;
    let name = metric.get("MetricName").and_then(Value::as_str).unwrap_or_default();
    let period = stat
        .get("Period")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing(&format!("MetricDataQueries.member.{n}.MetricStat.Period")))?;
    if period < 1 {
        return Err(invalid(format!(
            "The parameter MetricDataQueries.member.{n}.MetricStat.Period must be greater than 0."
        )));
    }
    let statistic = stat
        .get("Stat")
        .and_then(Value::as_str)
        .ok_or_else(|| missing(&format!("MetricDataQueries.member.{n}.MetricStat.Stat")))?;
    let unit_ok = stat.get("Unit").and_then(Value::as_str).is_none_or(|u| u == "None");
    let dims = metric.get("Dimensions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let series = (metric.get("Namespace").and_then(Value::as_str) == Some("AWS/CloudFront") && unit_ok)
        .then(|| Some((distribution(account, dims)?, Metric::from_name(name)?)))
        .flatten();
    Ok(Query {
        id: id.into(),
        label: label.unwrap_or(name).into(),
        return_data,
        series,
        period,
        stat: statistic.into(),
    })
}

/// The period a query's data allows at its age: 60 s up to 15 days back, 300 s up to 63 days,
/// 3600 s beyond.
pub fn resolution(start: i64, now: i64) -> i64 {
    let age = now - start;
    if age <= 15 * DAY {
        60
    } else if age <= 63 * DAY {
        300
    } else {
        3600
    }
}

/// A query's datapoints, ascending: buckets from `start` by the period, those with data.
fn points(account: &SimAccount, q: &Query<'_>, start: i64, end: i64, now: i64) -> Vec<(i64, f64)> {
    let Some((d, metric)) = q.series else { return Vec::new() };
    let step = resolution(start, now);
    if q.period % step != 0 {
        return Vec::new();
    }
    let start = start - start.rem_euclid(step);
    let oldest = now - RETENTION_SECS;
    let mut out = Vec::new();
    let mut t = start;
    while t < end && t < now {
        let (from, to) = (t.max(oldest), (t + q.period).min(end));
        if to > from {
            let sum = || data::cw_sum(d, metric, from, to, now, account.history_from);
            let count = || data::cw_samples(d, metric, from, to, now, account.history_from);
            let value = match q.stat.as_str() {
                "Sum" => Some(sum()),
                "SampleCount" => Some(count()),
                "Average" => Some(if count() > 0.0 { sum() / count() } else { 0.0 }),
                _ => None,
            };
            if let Some(v) = value.filter(|_| count() > 0.0) {
                out.push((t, v));
            }
        }
        t += q.period;
    }
    out
}

/// A number of epoch seconds (JSON number, maybe fractional).
fn epoch(body: &Value, name: &str) -> Result<i64, AwsError> {
    let v = body.get(name).filter(|v| !v.is_null()).ok_or_else(|| missing(name))?;
    v.as_f64().map(|f| f.floor() as i64).ok_or_else(|| invalid(format!("The parameter {name} must be a timestamp.")))
}

/// `GetMetricData` for `account` at `now`.
pub fn get_metric_data(account: &SimAccount, body: &Value, now: i64) -> Result<Value, AwsError> {
    let start = epoch(body, "StartTime")?;
    let end = epoch(body, "EndTime")?;
    if start >= end {
        return Err(invalid("The parameter StartTime must be less than the parameter EndTime."));
    }
    let queries = body
        .get("MetricDataQueries")
        .and_then(Value::as_array)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| missing("MetricDataQueries"))?;
    if queries.len() > MAX_QUERIES {
        return Err(invalid(format!(
            "The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
        )));
    }
    let queries = queries.iter().enumerate().map(|(i, q)| parse_query(account, i, q)).collect::<Result<Vec<_>, _>>()?;
    for (i, q) in queries.iter().enumerate() {
        if queries[..i].iter().any(|p| p.id == q.id) {
            return Err(invalid(format!("The values for parameter id in MetricDataQueries are not unique: {}", q.id)));
        }
    }
    let descending = match body.get("ScanBy").and_then(Value::as_str) {
        None | Some("TimestampDescending") => true,
        Some("TimestampAscending") => false,
        Some(other) => return Err(invalid(format!("The parameter ScanBy has an invalid value: {other}"))),
    };
    let max = match body.get("MaxDatapoints").filter(|v| !v.is_null()) {
        None => DEFAULT_MAX_DATAPOINTS,
        Some(v) => match v.as_u64() {
            Some(m) if m >= 1 => (m as usize).min(DEFAULT_MAX_DATAPOINTS),
            _ => return Err(invalid("The parameter MaxDatapoints must be greater than 0.")),
        },
    };
    let fp = wire::fingerprint(body, "NextToken");
    // A later page answers as of the first page's time, so that its offsets still hold.
    let (offset, now) = match body.get("NextToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        None => (0, now),
        Some(token) => {
            let bad =
                || AwsError::new(StatusCode::BAD_REQUEST, "InvalidNextToken", "The service returned an invalid token.");
            let fields = wire::open(token).ok_or_else(bad)?;
            let [f, offset, at] = fields.as_slice() else { return Err(bad()) };
            if *f != fp {
                return Err(bad());
            }
            (offset.parse::<usize>().map_err(|_| bad())?, at.parse::<i64>().map_err(|_| bad())?)
        }
    };
    let series: Vec<(&Query<'_>, Vec<(i64, f64)>)> = queries
        .iter()
        .filter(|q| q.return_data)
        .map(|q| {
            let mut p = points(account, q, start, end, now);
            if descending {
                p.reverse();
            }
            (q, p)
        })
        .collect();
    let total: usize = series.iter().map(|(_, p)| p.len()).sum();
    if offset > total {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidNextToken",
            "The service returned an invalid token.",
        ));
    }
    let page_end = offset.saturating_add(max).min(total);
    let mut seen = 0;
    let mut results = Vec::new();
    for (q, p) in &series {
        let (lo, hi) = (offset.saturating_sub(seen).min(p.len()), page_end.saturating_sub(seen).min(p.len()));
        seen += p.len();
        let page = &p[lo..hi];
        results.push(json!({
            "Id": q.id,
            "Label": q.label,
            "Timestamps": page.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            "Values": page.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": if hi < p.len() { "PartialData" } else { "Complete" },
        }));
    }
    let mut out = json!({"MetricDataResults": results, "Messages": []});
    if page_end < total {
        out["NextToken"] = json!(wire::seal(&[fp, page_end.to_string(), now.to_string()]));
    }
    Ok(out)
}
