//! The live jobs of one CloudFront account:
//! - `cost` (every `cost_interval`): `GetCostAndUsage` for the month so far, grouped by usage
//!   type, and for last month until Cost Explorer calls it final (then kept);
//! - `forecast` (every `cost_interval`, unless `forecast = false`): what was spent before today
//!   and `GetCostForecast` for the rest of the month, with its 80 % interval;
//! - `usage` (every `usage_interval`): the distributions (`distributions`, or
//!   `ListDistributions`), and CloudWatch `GetMetricData` for their bytes and requests since
//!   the month began.
//!
//! The forecast is a job of its own so that an account Cost Explorer cannot forecast yet (a new
//! account: `DataUnavailableException`) still has its spend, and shows the forecast's failure
//! on its own line of the status page.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::families::FamilyId;
use crate::job::{BoxFuture, JobKey, JobSpec, PollContext, PollError, Poller, Sample};
use crate::timeutil;

use super::PROVIDER;
use super::client::{Api, Call, Client};
use super::config::CloudFrontAccount;
use super::normalize::{self, Costs};
use super::wire::{self, CostAndUsage, CostForecast, Distribution, MetricData};

/// The prediction interval asked of `GetCostForecast`, in percent.
pub const INTERVAL_LEVEL: u32 = 80;
/// Distributions per `GetMetricData` request: three metrics each, under the 500 queries a
/// request may carry.
pub const DISTRIBUTIONS_PER_REQUEST: usize = 150;
/// The longest page token accepted (Cost Explorer's model allows 8192 characters).
pub const MAX_TOKEN: usize = 8192;

/// The CloudWatch metrics read per distribution: (query id suffix, metric name, family).
pub const METRICS: [(&str, &str, FamilyId); 3] = [
    ("d", "BytesDownloaded", FamilyId::MonthToDateBandwidthBytes),
    ("u", "BytesUploaded", FamilyId::MonthToDateUploadBytes),
    ("r", "Requests", FamilyId::MonthToDateRequests),
];

/// Builds the jobs of one account, sharing `client`.
pub fn jobs(account: &CloudFrontAccount, client: Arc<Client>) -> Vec<JobSpec> {
    let name: Arc<str> = account.name.as_str().into();
    let job = |endpoint, interval, kind| {
        let poller =
            Arc::new(Job { client: client.clone(), account: account.clone(), kind, last_month: Mutex::default() });
        JobSpec::periodic(
            JobKey::account(PROVIDER, name.clone(), endpoint),
            interval,
            account.timeout,
            account.max_age,
            poller,
        )
    };
    let mut out = vec![job("cost", account.cost_interval, Kind::Cost)];
    if account.forecast {
        out.push(job("forecast", account.cost_interval, Kind::Forecast));
    }
    out.push(job("usage", account.usage_interval, Kind::Usage));
    out
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Cost,
    Forecast,
    Usage,
}

struct Job {
    client: Arc<Client>,
    account: CloudFrontAccount,
    kind: Kind,
    /// Last month's samples once Cost Explorer calls them final, and the month they are of.
    last_month: Mutex<Option<(i64, Vec<Sample>)>>,
}

impl Poller for Job {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let today = timeutil::now_unix().div_euclid(86_400);
            match self.kind {
                Kind::Cost => self.cost(ctx, today).await,
                Kind::Forecast => forecast(&self.client, ctx, &self.account, today).await,
                Kind::Usage => usage(&self.client, ctx, &self.account, timeutil::now_unix()).await,
            }
        })
    }
}

impl Job {
    async fn cost(&self, ctx: &PollContext, today: i64) -> Result<Vec<Sample>, PollError> {
        let (account, client) = (&self.account, &self.client);
        let month = timeutil::month_start(today);
        let month_to_date = cost_and_usage(client, ctx, account, month, today + 1, true).await?;
        let mut out = normalize::month_to_date(&month_to_date, account.max_items);
        let kept = self.last_month.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match kept {
            Some((m, samples)) if m == month => {
                out.extend(samples.into_iter().filter(|s| s.family != FamilyId::BillingCurrencyInfo))
            }
            _ => {
                let last = cost_and_usage(client, ctx, account, timeutil::month_start(month - 1), month, true).await?;
                let samples = normalize::last_month(&last, account.max_items);
                if last.currency.is_some()
                    && last.currency != month_to_date.currency
                    && month_to_date.currency.is_some()
                {
                    return Err(PollError::parse(
                        "last month's bill and this month's spend are in different currencies: refused",
                    ));
                }
                if !last.estimated {
                    *self.last_month.lock().unwrap_or_else(|e| e.into_inner()) = Some((month, samples.clone()));
                }
                out.extend(samples.into_iter().filter(|s| s.family != FamilyId::BillingCurrencyInfo));
            }
        }
        Ok(out)
    }
}

/// The Cost Explorer filter: the account's `service`.
fn filter(account: &CloudFrontAccount) -> Value {
    json!({"Dimensions": {"Key": "SERVICE", "Values": [account.service]}})
}

/// The request body of `GetCostAndUsage` over the days `[from, to)`, `MONTHLY` or `DAILY`,
/// grouped by usage type or not.
pub fn cost_and_usage_body(account: &CloudFrontAccount, from: i64, to: i64, granularity: &str, grouped: bool) -> Value {
    let metric = account.cost_metric.name();
    let mut body = json!({
        "TimePeriod": {"Start": timeutil::format_ymd(from), "End": timeutil::format_ymd(to)},
        "Granularity": granularity,
        "Metrics": if grouped { json!([metric, "UsageQuantity"]) } else { json!([metric]) },
        "Filter": filter(account),
    });
    if grouped {
        body["GroupBy"] = json!([{"Type": "DIMENSION", "Key": "USAGE_TYPE"}]);
    }
    body
}

/// `GetCostAndUsage` over `[from, to)`, monthly, summed over every page.
pub async fn cost_and_usage(
    client: &Client,
    ctx: &PollContext,
    account: &CloudFrontAccount,
    from: i64,
    to: i64,
    grouped: bool,
) -> Result<Costs, PollError> {
    let mut costs = Costs::default();
    let body = cost_and_usage_body(account, from, to, "MONTHLY", grouped);
    let metric = account.cost_metric.name();
    cost_pages(client, ctx, &body, account.max_pages, &mut |r| costs.add_result(r, metric)).await?;
    Ok(costs)
}

/// Every result of the `GetCostAndUsage` request `body`, page by page (at most `max_pages`,
/// each a billed request: the account's `max_pages` for a monthly answer, that many per day of
/// a daily one).
pub async fn cost_pages(
    client: &Client,
    ctx: &PollContext,
    body: &Value,
    max_pages: usize,
    each: &mut (dyn FnMut(&wire::ResultByTime) -> Result<(), PollError> + Send),
) -> Result<(), PollError> {
    let mut token: Option<String> = None;
    for _ in 0..max_pages {
        let mut request = body.clone();
        if let Some(t) = &token {
            request["NextPageToken"] = json!(t);
        }
        let answer = client.call(ctx, &Call::json(Api::CostExplorer, "GetCostAndUsage", &request)).await?;
        let page: CostAndUsage = wire::parse(&answer, "GetCostAndUsage answer")?;
        page.results.0.iter().try_for_each(&mut *each)?;
        match page.next_page_token.filter(|t| !t.is_empty()) {
            None => return Ok(()),
            Some(t) if t.len() > MAX_TOKEN => {
                return Err(PollError::parse(format!(
                    "GetCostAndUsage NextPageToken is longer than {MAX_TOKEN} characters: refused"
                )));
            }
            Some(t) if token.as_ref() == Some(&t) => {
                return Err(PollError::parse("GetCostAndUsage gave the same NextPageToken twice: refused"));
            }
            Some(t) => token = Some(t),
        }
    }
    Err(PollError::parse(format!(
        "GetCostAndUsage kept paging: {} pages read (each a billed request) and NextPageToken is still there: \
         refused. If the account really has that many usage types, raise max_pages",
        max_pages
    )))
}

/// The request body of `GetCostForecast` for the days `[from, to)`.
pub fn forecast_body(account: &CloudFrontAccount, from: i64, to: i64) -> Value {
    json!({
        "TimePeriod": {"Start": timeutil::format_ymd(from), "End": timeutil::format_ymd(to)},
        "Metric": account.cost_metric.forecast_name(),
        "Granularity": "MONTHLY",
        "Filter": filter(account),
        "PredictionIntervalLevel": INTERVAL_LEVEL,
    })
}

/// What was spent before today, plus the forecast of today to the month's end.
async fn forecast(
    client: &Client,
    ctx: &PollContext,
    account: &CloudFrontAccount,
    today: i64,
) -> Result<Vec<Sample>, PollError> {
    let month = timeutil::month_start(today);
    let next = timeutil::month_start(month + 31);
    let before =
        if today > month { cost_and_usage(client, ctx, account, month, today, false).await? } else { Costs::default() };
    let answer = client
        .call(ctx, &Call::json(Api::CostExplorer, "GetCostForecast", &forecast_body(account, today, next)))
        .await?;
    let forecast: CostForecast = wire::parse(&answer, "GetCostForecast answer")?;
    normalize::estimate(&before, &forecast)
}

/// The distributions broken down: `distributions` (no domain known), or every distribution
/// `ListDistributions` returns that is not a staging copy, at most `max_distributions`.
pub async fn distributions(
    client: &Client,
    ctx: &PollContext,
    account: &CloudFrontAccount,
) -> Result<Vec<Distribution>, PollError> {
    if !account.distributions.is_empty() {
        return Ok(account
            .distributions
            .iter()
            .map(|id| Distribution { id: id.clone(), ..Distribution::default() })
            .collect());
    }
    let mut out: Vec<Distribution> = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..account.max_pages {
        let mut path = "/2020-05-31/distribution?MaxItems=100".to_owned();
        if let Some(m) = &marker {
            path.push_str("&Marker=");
            // RFC 3986 unreserved characters as they are, everything else percent-encoded (a
            // marker may be base64: `+`, `/`, `=`).
            for b in m.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => path.push(b as char),
                    _ => path.push_str(&format!("%{b:02X}")),
                }
            }
        }
        let call = Call {
            api: Api::CloudFront,
            operation: "ListDistributions",
            method: reqwest::Method::GET,
            path,
            headers: Vec::new(),
            body: Vec::new(),
            units: 1,
            anonymous: false,
        };
        let answer = client.call(ctx, &call).await?;
        let page = wire::distribution_page(&answer, 100)?;
        out.extend(page.items.into_iter().filter(|d| !d.staging));
        if out.len() > account.max_distributions {
            return Err(PollError::parse(format!(
                "the account has more than max_distributions ({}) distributions: refused. List the ones to break \
                 down in `distributions`, or raise max_distributions",
                account.max_distributions
            )));
        }
        match page.next_marker.filter(|m| page.truncated && !m.is_empty()) {
            None => return Ok(out),
            Some(m) if marker.as_ref() == Some(&m) => {
                return Err(PollError::parse("ListDistributions gave the same NextMarker twice: refused"));
            }
            Some(m) => marker = Some(m),
        }
    }
    Err(PollError::parse(format!(
        "ListDistributions kept paging past {} pages: refused. List the distributions in `distributions`, or raise max_pages",
        account.max_pages
    )))
}

/// The `GetMetricData` request for `batch` (query ids `q<i>_<d|u|r>`) over `[start, end)`.
pub fn metric_data_body(batch: &[Distribution], start: i64, end: i64, token: Option<&str>) -> Value {
    let mut queries = Vec::with_capacity(batch.len() * METRICS.len());
    for (i, d) in batch.iter().enumerate() {
        for (suffix, metric, _) in METRICS {
            queries.push(json!({
                "Id": format!("q{i}_{suffix}"),
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/CloudFront",
                        "MetricName": metric,
                        "Dimensions": [{"Name": "DistributionId", "Value": d.id}, {"Name": "Region", "Value": "Global"}],
                    },
                    "Period": 86_400,
                    "Stat": "Sum",
                },
                "ReturnData": true,
            }));
        }
    }
    let mut body =
        json!({"StartTime": start, "EndTime": end, "MetricDataQueries": queries, "ScanBy": "TimestampAscending"});
    if let Some(t) = token {
        body["NextToken"] = json!(t);
    }
    body
}

/// Bytes down, bytes up and requests per distribution since the month began (UTC), in daily
/// buckets from CloudWatch (billed per metric, not per point: asking the settled days again
/// costs nothing more).
async fn usage(
    client: &Client,
    ctx: &PollContext,
    account: &CloudFrontAccount,
    now: i64,
) -> Result<Vec<Sample>, PollError> {
    let dists = distributions(client, ctx, account).await?;
    let start = timeutil::month_start(now.div_euclid(86_400)) * 86_400;
    let end = now - now.rem_euclid(60);
    let mut out = Vec::with_capacity(dists.len() * METRICS.len());
    for batch in dists.chunks(DISTRIBUTIONS_PER_REQUEST) {
        let mut sums = vec![[0.0f64; 3]; batch.len()];
        if end > start {
            metric_points(client, ctx, account, batch, start, end, &mut |i, m, _, v| sums[i][m] += v).await?;
        }
        for (d, sums) in batch.iter().zip(sums) {
            let domain = crate::text::label(d.alias.as_deref().unwrap_or(&d.domain_name));
            for ((_, _, family), value) in METRICS.iter().zip(sums) {
                out.push(
                    Sample::new(*family, value).label("distribution_id", d.id.clone()).label("domain", domain.clone()),
                );
            }
        }
    }
    Ok(out)
}

/// Every point of the three metrics of `batch` over `[start, end)` (daily buckets), handed to
/// `each` as (distribution index, metric index, bucket start, value), every page read.
pub async fn metric_points(
    client: &Client,
    ctx: &PollContext,
    account: &CloudFrontAccount,
    batch: &[Distribution],
    start: i64,
    end: i64,
    each: &mut (dyn FnMut(usize, usize, f64, f64) + Send),
) -> Result<(), PollError> {
    let mut token: Option<String> = None;
    for _ in 0..account.max_pages {
        let body = metric_data_body(batch, start, end, token.as_deref());
        let mut call = Call::json(Api::CloudWatch, "GetMetricData", &body);
        call.units = batch.len() * METRICS.len();
        let answer = client.call(ctx, &call).await?;
        let page: MetricData = wire::parse(&answer, "GetMetricData answer")?;
        for r in &page.results.0 {
            let Some((i, m)) = parse_id(&r.id).filter(|(i, _)| *i < batch.len()) else {
                return Err(PollError::parse(format!(
                    "GetMetricData answer has a result for a query not asked: {}",
                    crate::text::label(&r.id)
                )));
            };
            if matches!(r.status.as_deref(), Some("Forbidden" | "InternalError")) {
                return Err(PollError::new(
                    crate::job::Reason::Provider,
                    format!(
                        "GetMetricData: {} of {} is {}",
                        METRICS[m].1,
                        batch[i].id,
                        r.status.as_deref().unwrap_or_default()
                    ),
                ));
            }
            if r.values.0.len() != r.timestamps.0.len() {
                return Err(PollError::parse("GetMetricData answer has values and timestamps of different lengths"));
            }
            for (t, v) in r.timestamps.0.iter().zip(&r.values.0) {
                if !v.is_finite() || *v < 0.0 {
                    return Err(PollError::parse(format!(
                        "GetMetricData answer has a value that is not a finite count: {v}"
                    )));
                }
                if (start as f64..end as f64).contains(t) {
                    each(i, m, *t, *v);
                }
            }
        }
        match page.next_token.filter(|t| !t.is_empty()) {
            None => return Ok(()),
            Some(t) if t.len() > MAX_TOKEN || token.as_ref() == Some(&t) => {
                return Err(PollError::parse("GetMetricData NextToken is too long or repeated: refused"));
            }
            Some(t) => token = Some(t),
        }
    }
    Err(PollError::parse(format!(
        "GetMetricData kept paging past {} pages: refused. Raise max_pages",
        account.max_pages
    )))
}

/// `q<i>_<d|u|r>` as (distribution index, metric index).
fn parse_id(id: &str) -> Option<(usize, usize)> {
    let (i, m) = id.strip_prefix('q')?.split_once('_')?;
    let m = METRICS.iter().position(|(s, _, _)| *s == m)?;
    Some((i.parse().ok()?, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_start_lower_case_and_read_back() {
        let batch = vec![Distribution { id: "E1ABC".into(), ..Distribution::default() }; 2];
        let body = metric_data_body(&batch, 0, 86_400, None);
        let queries = body["MetricDataQueries"].as_array().unwrap();
        assert_eq!(queries.len(), 6);
        for q in queries {
            let id = q["Id"].as_str().unwrap();
            assert!(
                id.starts_with(|c: char| c.is_ascii_lowercase())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{id}"
            );
            assert!(parse_id(id).is_some());
        }
        assert_eq!(parse_id("q1_r"), Some((1, 2)));
        assert_eq!(parse_id("x1_r"), None);
        assert_eq!(queries[0]["MetricStat"]["Metric"]["Dimensions"][1], json!({"Name": "Region", "Value": "Global"}));
        assert!(DISTRIBUTIONS_PER_REQUEST * METRICS.len() <= 500);
    }
}
