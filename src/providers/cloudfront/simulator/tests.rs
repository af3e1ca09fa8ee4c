//! The AWS simulator driven through its router, with requests signed by our own SigV4 signer,
//! as the provider's client will sign them.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::data::{self, DAY};
use super::*;
use crate::providers::common::sigv4::{self, Credentials, Scope};
use crate::secret::Secret;
use crate::timeutil::{Clock, days_from_civil, format_ymd};

const HOST: &str = "127.0.0.1:4566";
const CF: &str = "Amazon CloudFront";

/// 2026-12-04T12:00:00Z, a Friday.
fn noon() -> i64 {
    days_from_civil(2026, 12, 4) * DAY + 43_200
}

fn account() -> SimAccount {
    SimAccount { page_groups: 100, list_page: 100, ..demo_accounts().remove(0) }
}

fn state_with(accounts: Vec<SimAccount>, now: i64) -> Arc<SimState> {
    SimState::builder().with(part(accounts)).clock(Clock::manual(now)).build()
}

fn demo_creds() -> Credentials {
    creds(DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY, None)
}

fn creds(key: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: Secret::new(key),
        secret_access_key: Secret::new(secret),
        session_token: token.map(Secret::new),
    }
}

/// What a test sends: method, path with query, headers to sign, body.
struct Call<'a> {
    method: &'a str,
    path: String,
    headers: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
}

impl Call<'_> {
    fn ce(op: &str, body: &Value) -> Call<'static> {
        let target: &'static str = Box::leak(format!("AWSInsightsIndexService.{op}").into_boxed_str());
        Call {
            method: "POST",
            path: "/aws/".into(),
            headers: vec![("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)],
            body: body.to_string().into_bytes(),
        }
    }

    fn cw(body: &Value) -> Call<'static> {
        Call {
            method: "POST",
            path: "/aws/".into(),
            headers: vec![
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "GraniteServiceVersion20100801.GetMetricData"),
                ("x-amzn-query-mode", "true"),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    fn list(query: &str) -> Call<'static> {
        Call {
            method: "GET",
            path: format!("/aws/2020-05-31/distribution?{query}"),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Call<'static> {
        Call {
            method: "POST",
            path: "/aws/".into(),
            headers: vec![("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: serde_urlencoded::to_string(pairs).unwrap().into_bytes(),
        }
    }

    /// The request signed with `c` for `service` at `at`.
    fn signed(&self, c: &Credentials, service: &str, at: i64) -> Request<Body> {
        self.signed_in(c, "us-east-1", service, at)
    }

    fn signed_in(&self, c: &Credentials, region: &str, service: &str, at: i64) -> Request<Body> {
        let url = format!("http://{HOST}{}", self.path);
        let time = UNIX_EPOCH + Duration::from_secs(at as u64);
        let extra =
            sigv4::headers(self.method, &url, &self.headers, &self.body, c, Scope { region, service }, time).unwrap();
        let mut r = self.unsigned();
        for (k, v) in extra {
            r.headers_mut().insert(axum::http::HeaderName::try_from(k).unwrap(), v.parse().unwrap());
        }
        r
    }

    fn unsigned(&self) -> Request<Body> {
        let mut b = Request::builder().method(self.method).uri(&self.path).header("host", HOST);
        for (k, v) in &self.headers {
            b = b.header(*k, *v);
        }
        b.body(Body::from(self.body.clone())).unwrap()
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn error_type(&self) -> String {
        self.json()["__type"].as_str().unwrap_or_default().to_owned()
    }

    /// The text of the first `<name>` element.
    fn xml(&self, name: &str) -> Option<String> {
        let open = format!("<{name}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{name}>"))? + start;
        Some(self.body[start..end].to_owned())
    }
}

async fn send(state: &Arc<SimState>, request: Request<Body>) -> Answer {
    let response = routes(axum::Router::new()).with_state(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

/// What the account billed for a usage type over days `[from, to)` at `now`, computed from
/// the account's own figures.
fn expected_usd(
    a: &SimAccount,
    service: &str,
    usage_type: &str,
    usd_per_day: f64,
    from: i64,
    to: i64,
    now: i64,
) -> f64 {
    (from..to)
        .filter(|d| *d >= a.history_from)
        .map(|d| usd_per_day * data::factor(d, data::salt(usage_type) ^ data::salt(service)) * data::share(d, now))
        .sum()
}

fn mtd_body() -> Value {
    json!({"TimePeriod": {"Start": "2026-12-01", "End": "2026-12-05"}, "Granularity": "MONTHLY",
           "Metrics": ["UnblendedCost", "NetUnblendedCost", "UsageQuantity"],
           "Filter": {"Dimensions": {"Key": "SERVICE", "Values": [CF]}},
           "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}]})
}

fn amount(v: &Value) -> f64 {
    v["Amount"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_signed_cost_query_answers_the_accounts_figures() {
    let a = account();
    let state = state_with(vec![a.clone()], noon());
    let r = send(&state, Call::ce("GetCostAndUsage", &mtd_body()).signed(&demo_creds(), "ce", noon())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/x-amz-json-1.1");
    let v = r.json();
    assert_eq!(v["GroupDefinitions"], json!([{"Type": "DIMENSION", "Key": "USAGE_TYPE"}]));
    let results = v["ResultsByTime"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let month = &results[0];
    assert_eq!(month["TimePeriod"], json!({"Start": "2026-12-01", "End": "2026-12-05"}));
    assert_eq!(month["Total"], json!({}), "grouped: Total is empty");
    assert_eq!(month["Estimated"], json!(true));
    assert!(v.get("NextPageToken").is_none());
    let groups = month["Groups"].as_array().unwrap();
    assert_eq!(groups.len(), a.usage_types.len());
    let (from, to) = (days_from_civil(2026, 12, 1), days_from_civil(2026, 12, 5));
    for u in &a.usage_types {
        let g = groups.iter().find(|g| g["Keys"] == json!([u.name])).unwrap_or_else(|| panic!("{} missing", u.name));
        let want = expected_usd(&a, CF, &u.name, u.usd_per_day, from, to, noon());
        let got = amount(&g["Metrics"]["UnblendedCost"]);
        assert!((got - want).abs() < 1e-6, "{}: {got} vs {want}", u.name);
        assert!((amount(&g["Metrics"]["NetUnblendedCost"]) - want * ce::NET_FACTOR).abs() < 1e-6);
        assert_eq!(g["Metrics"]["UnblendedCost"]["Unit"], "USD");
        assert_eq!(g["Metrics"]["UsageQuantity"]["Unit"], u.unit.as_str());
        // 3.5 days into the month: roughly 3.5 nominal days.
        assert!(got > u.usd_per_day * 2.8 && got < u.usd_per_day * 4.0, "{}: {got}", u.name);
    }
    let log = state.cloudfront_requests();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].service.as_str(), log[0].operation.as_str()), ("ce", "GetCostAndUsage"));
    assert_eq!(log[0].access_key_id.as_deref(), Some(DEMO_ACCESS_KEY_ID));
    assert!(log[0].authorized);

    // The month to date grows during the day.
    state.clock.set(noon() + 3600);
    let later = send(&state, Call::ce("GetCostAndUsage", &mtd_body()).signed(&demo_creds(), "ce", noon() + 3600)).await;
    let sum = |v: &Value| -> f64 {
        v["ResultsByTime"][0]["Groups"].as_array().unwrap().iter().map(|g| amount(&g["Metrics"]["UnblendedCost"])).sum()
    };
    assert!(sum(&later.json()) > sum(&v));
}

#[tokio::test]
async fn without_the_service_filter_the_other_services_count_too() {
    let a = account();
    let state = state_with(vec![a.clone()], noon());
    let mut body = json!({"TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"}, "Granularity": "MONTHLY",
                          "Metrics": ["UnblendedCost", "UsageQuantity"]});
    let r = send(&state, Call::ce("GetCostAndUsage", &body).signed(&demo_creds(), "ce", noon())).await;
    let v = r.json();
    let month = &v["ResultsByTime"][0];
    assert_eq!(month["Estimated"], json!(true), "November is estimated until December's 5th");
    assert_eq!(month["Groups"], json!([]));
    assert_eq!(month["Total"]["UsageQuantity"]["Unit"], "N/A", "mixed units");
    let all = amount(&month["Total"]["UnblendedCost"]);
    let (from, to) = (days_from_civil(2026, 11, 1), days_from_civil(2026, 12, 1));
    let cloudfront: f64 =
        a.usage_types.iter().map(|u| expected_usd(&a, CF, &u.name, u.usd_per_day, from, to, noon())).sum();
    assert!(all > cloudfront + 30.0 * a.other_services_usd_per_day * 0.8, "{all} vs {cloudfront}");
    body["Filter"] = json!({"Dimensions": {"Key": "SERVICE", "Values": [CF]}});
    let filtered = send(&state, Call::ce("GetCostAndUsage", &body).signed(&demo_creds(), "ce", noon())).await.json();
    let only = amount(&filtered["ResultsByTime"][0]["Total"]["UnblendedCost"]);
    assert!((only - cloudfront).abs() < 1e-6, "{only} vs {cloudfront}");
    assert!((1000.0..1300.0).contains(&only), "the demo spends about $1,000-1,300 a month: {only}");
}

#[tokio::test]
async fn a_request_signed_wrongly_is_refused_with_the_right_code() {
    let state = state_with(vec![account()], noon());
    let call = Call::ce("GetCostAndUsage", &mtd_body());
    let check = |r: Answer, status: StatusCode, code: &str, says: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.error_type(), code, "{}", r.body);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(says), "{message}");
    };
    let wrong = creds(DEMO_ACCESS_KEY_ID, "wrongSecretKey/0000000000000000000000000", None);
    check(
        send(&state, call.signed(&wrong, "ce", noon())).await,
        StatusCode::FORBIDDEN,
        "InvalidSignatureException",
        "does not match",
    );

    let mut changed = call.signed(&demo_creds(), "ce", noon());
    *changed.body_mut() = Body::from(mtd_body().to_string().replace("2026-12-01", "2026-11-01"));
    check(send(&state, changed).await, StatusCode::FORBIDDEN, "InvalidSignatureException", "does not match");

    let r = send(&state, call.signed(&demo_creds(), "monitoring", noon())).await;
    check(r, StatusCode::FORBIDDEN, "InvalidSignatureException", "'ce'");
    let r = send(&state, call.signed_in(&demo_creds(), "eu-west-1", "ce", noon())).await;
    check(r, StatusCode::FORBIDDEN, "InvalidSignatureException", "us-east-1/ce/aws4_request");
    check(
        send(&state, call.signed(&demo_creds(), "ce", noon() - 400)).await,
        StatusCode::FORBIDDEN,
        "InvalidSignatureException",
        "Signature expired",
    );
    assert_eq!(
        send(&state, call.signed(&demo_creds(), "ce", noon() - 240)).await.status,
        StatusCode::OK,
        "within 5 minutes"
    );

    let unknown = creds("AKIAUNKNOWN000000000", DEMO_SECRET_ACCESS_KEY, None);
    check(
        send(&state, call.signed(&unknown, "ce", noon())).await,
        StatusCode::FORBIDDEN,
        "UnrecognizedClientException",
        "invalid",
    );
    check(
        send(&state, call.unsigned()).await,
        StatusCode::BAD_REQUEST,
        "MissingAuthenticationTokenException",
        "missing",
    );

    let log = state.cloudfront_requests();
    assert_eq!(log.iter().filter(|r| r.authorized).count(), 1, "only the request within the window passed");
}

#[tokio::test]
async fn cost_pages_return_every_group_once_and_refuse_a_changed_request() {
    let a = SimAccount { page_groups: 3, ..account() };
    let types = a.usage_types.len();
    let state = state_with(vec![a], noon());
    let body = json!({"TimePeriod": {"Start": "2026-11-28", "End": "2026-12-01"}, "Granularity": "DAILY",
                      "Metrics": ["UnblendedCost"], "Filter": {"Dimensions": {"Key": "SERVICE", "Values": [CF]}},
                      "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}]});
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut b = body.clone();
        if let Some(t) = &token {
            b["NextPageToken"] = json!(t);
        }
        let r = send(&state, Call::ce("GetCostAndUsage", &b).signed(&demo_creds(), "ce", noon())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        pages += 1;
        let on_page: usize =
            v["ResultsByTime"].as_array().unwrap().iter().map(|p| p["Groups"].as_array().unwrap().len()).sum();
        assert!(on_page <= 3);
        for p in v["ResultsByTime"].as_array().unwrap() {
            assert_eq!(p["Estimated"], json!(true));
            for g in p["Groups"].as_array().unwrap() {
                seen.push((
                    p["TimePeriod"]["Start"].as_str().unwrap().to_owned(),
                    g["Keys"][0].as_str().unwrap().to_owned(),
                ));
            }
        }
        match v["NextPageToken"].as_str() {
            Some(t) => {
                assert!(!t.contains("2026"), "the token is opaque: {t}");
                token = Some(t.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 3 * types);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no group twice");
    assert_eq!(pages, (3 * types).div_ceil(3));

    // The first page's token with another request.
    let first = send(&state, Call::ce("GetCostAndUsage", &body).signed(&demo_creds(), "ce", noon())).await.json();
    let mut changed = body.clone();
    changed["Metrics"] = json!(["AmortizedCost"]);
    changed["NextPageToken"] = first["NextPageToken"].clone();
    let r = send(&state, Call::ce("GetCostAndUsage", &changed).signed(&demo_creds(), "ce", noon())).await;
    assert_eq!((r.status, r.error_type().as_str()), (StatusCode::BAD_REQUEST, "RequestChangedException"));
    // The same request with its keys in another order is the same request.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{"NextPageToken":{},"GroupBy":{},"Metrics":{},"Granularity":"DAILY","Filter":{},"TimePeriod":{}}}"#,
        first["NextPageToken"], body["GroupBy"], body["Metrics"], body["Filter"], body["TimePeriod"]
    ))
    .unwrap();
    let r = send(&state, Call::ce("GetCostAndUsage", &reordered).signed(&demo_creds(), "ce", noon())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut bad = body.clone();
    bad["NextPageToken"] = json!("bm90LWEtdG9rZW4=");
    let r = send(&state, Call::ce("GetCostAndUsage", &bad).signed(&demo_creds(), "ce", noon())).await;
    assert_eq!((r.status, r.error_type().as_str()), (StatusCode::BAD_REQUEST, "InvalidNextTokenException"));
}

#[tokio::test]
async fn cost_queries_are_validated_as_aws_does() {
    let state = state_with(vec![account()], noon());
    let ask = |body: Value| {
        let state = state.clone();
        async move { send(&state, Call::ce("GetCostAndUsage", &body).signed(&demo_creds(), "ce", noon())).await }
    };
    let base = mtd_body();
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, code, says) in [
        (with("Granularity", json!("HOURLY")), "ValidationException", "not enabled"),
        (with("TimePeriod", json!({"Start": "2026-12-04", "End": "2026-12-04"})), "ValidationException", "before"),
        (with("Metrics", json!(["UNBLENDED_COST"])), "ValidationException", "invalid"),
        (
            with("TimePeriod", json!({"Start": "2025-09-30", "End": "2025-10-02"})),
            "BillExpirationException",
            "14 months",
        ),
        (
            with("Filter", json!({"Not": {"Dimensions": {"Key": "SERVICE", "Values": [CF]}}})),
            "ValidationException",
            "Not",
        ),
        (with("GroupBy", json!([{"Type": "DIMENSION", "Key": "RESOURCE"}])), "ValidationException", "dimension"),
    ] {
        let r = ask(body).await;
        assert_eq!((r.status, r.error_type().as_str()), (StatusCode::BAD_REQUEST, code), "{}", r.body);
        assert!(r.json()["message"].as_str().unwrap().contains(says), "{}", r.body);
    }
    // The oldest month still there: 13 months back.
    let r = ask(with("TimePeriod", json!({"Start": "2025-12-01", "End": "2026-01-01"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["ResultsByTime"][0]["Estimated"], json!(false));
    let r = send(&state, {
        let mut c = Call::ce("GetCostAndUsage", &base);
        c.headers[0].1 = "application/json";
        c.signed(&demo_creds(), "ce", noon())
    })
    .await;
    assert_eq!((r.status, r.error_type().as_str()), (StatusCode::BAD_REQUEST, "UnknownOperationException"));
}

#[test]
fn the_previous_month_is_estimated_until_the_fifth() {
    let november = days_from_civil(2026, 11, 10);
    assert!(ce::estimated(november, days_from_civil(2026, 12, 4) * DAY + 3600));
    assert!(!ce::estimated(november, days_from_civil(2026, 12, 5) * DAY + 3600));
    assert!(!ce::estimated(days_from_civil(2026, 10, 10), days_from_civil(2026, 12, 1) * DAY));
    assert!(ce::estimated(days_from_civil(2026, 12, 1), days_from_civil(2026, 12, 20) * DAY));
}

#[tokio::test]
async fn the_forecast_projects_the_rest_of_the_month_with_bounds_when_asked() {
    let a = account();
    let state = state_with(vec![a.clone()], noon());
    let body = json!({"TimePeriod": {"Start": "2026-12-04", "End": "2027-01-01"}, "Metric": "UNBLENDED_COST",
                      "Granularity": "MONTHLY", "PredictionIntervalLevel": 80,
                      "Filter": {"Dimensions": {"Key": "SERVICE", "Values": [CF]}}});
    let r = send(&state, Call::ce("GetCostForecast", &body).signed(&demo_creds(), "ce", noon())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    let f = &v["ForecastResultsByTime"][0];
    assert_eq!(f["TimePeriod"], json!({"Start": "2026-12-04", "End": "2027-01-01"}));
    let num = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    let (mean, lower, upper) =
        (num(&f["MeanValue"]), num(&f["PredictionIntervalLowerBound"]), num(&f["PredictionIntervalUpperBound"]));
    assert!(lower < mean && mean < upper);
    assert!((upper - lower) / mean > 0.02 && (upper - lower) / mean < 0.2, "a few percent wide");
    assert_eq!(num(&v["Total"]["Amount"]), mean);
    assert_eq!(v["Total"]["Unit"], "USD");
    // 27.5 days left at about the nominal daily spend.
    let nominal: f64 = a.usage_types.iter().map(|u| u.usd_per_day).sum();
    assert!(mean > nominal * 27.5 * 0.85 && mean < nominal * 27.5 * 1.15, "{mean} vs {nominal}/day");

    let mut plain = body.clone();
    plain.as_object_mut().unwrap().remove("PredictionIntervalLevel");
    let v = send(&state, Call::ce("GetCostForecast", &plain).signed(&demo_creds(), "ce", noon())).await.json();
    assert!(v["ForecastResultsByTime"][0].get("PredictionIntervalLowerBound").is_none());

    for (k, val) in [
        ("PredictionIntervalLevel", json!(50)),
        ("Metric", json!("UnblendedCost")),
        ("TimePeriod", json!({"Start": "2026-12-03", "End": "2027-01-01"})),
    ] {
        let mut b = body.clone();
        b[k] = val;
        let r = send(&state, Call::ce("GetCostForecast", &b).signed(&demo_creds(), "ce", noon())).await;
        assert_eq!(
            (r.status, r.error_type().as_str()),
            (StatusCode::BAD_REQUEST, "ValidationException"),
            "{k}: {}",
            r.body
        );
    }

    let young = SimAccount { history_from: noon() / DAY - 10, ..account() };
    let state = state_with(vec![young], noon());
    let r = send(&state, Call::ce("GetCostForecast", &body).signed(&demo_creds(), "ce", noon())).await;
    assert_eq!((r.status, r.error_type().as_str()), (StatusCode::BAD_REQUEST, "DataUnavailableException"));
    assert_eq!(r.json()["message"], "Insufficient amount of historical data.");
}

fn metric_query(id: &str, name: &str, dims: Value, period: i64) -> Value {
    json!({"Id": id, "MetricStat": {"Metric": {"Namespace": "AWS/CloudFront", "MetricName": name, "Dimensions": dims},
           "Period": period, "Stat": "Sum"}, "ReturnData": true})
}

fn dims(id: &str) -> Value {
    json!([{"Name": "DistributionId", "Value": id}, {"Name": "Region", "Value": "Global"}])
}

#[tokio::test]
async fn metric_buckets_sum_to_the_days_traffic_and_stop_at_now() {
    let a = account();
    let d = a.distributions[0].clone();
    let state = state_with(vec![a.clone()], noon());
    let yesterday = noon() / DAY - 1;
    let reversed = json!([{"Name": "Region", "Value": "Global"}, {"Name": "DistributionId", "Value": d.id}]);
    let body = json!({"StartTime": yesterday * DAY, "EndTime": noon() + 7200, "ScanBy": "TimestampAscending",
        "MetricDataQueries": [metric_query("req", "Requests", dims(&d.id), 3600), metric_query("down", "BytesDownloaded", reversed, 3600)]});
    let r = send(&state, Call::cw(&body).signed(&demo_creds(), "monitoring", noon())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/x-amz-json-1.0");
    let v = r.json();
    assert_eq!(v["Messages"], json!([]));
    for (i, metric, daily) in
        [(0, data::Metric::Requests, d.daily_requests), (1, data::Metric::BytesDownloaded, d.daily_bytes_downloaded)]
    {
        let res = &v["MetricDataResults"][i];
        assert_eq!(res["StatusCode"], "Complete");
        let ts: Vec<i64> = res["Timestamps"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
        let vals: Vec<f64> = res["Values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(ts.len(), 36, "24 hours of yesterday and 12 of today, none after now");
        assert_eq!(ts[0], yesterday * DAY);
        assert!(ts.windows(2).all(|w| w[1] - w[0] == 3600));
        let day_total: f64 = vals[..24].iter().sum();
        assert_eq!(day_total, data::cw_day_total(&d, metric, yesterday, a.history_from));
        let nominal = daily as f64;
        assert!(day_total > nominal * 0.8 && day_total < nominal * 1.2, "{day_total} vs {nominal}");
        assert!(vals.iter().all(|v| *v > 0.0));
    }
    // The current bucket holds what accrued so far, and grows.
    let body = json!({"StartTime": noon() - 1800, "EndTime": noon() + 1800,
        "MetricDataQueries": [metric_query("req", "Requests", dims(&d.id), 3600)]});
    let first = send(&state, Call::cw(&body).signed(&demo_creds(), "monitoring", noon())).await.json();
    state.clock.set(noon() + 600);
    let later = send(&state, Call::cw(&body).signed(&demo_creds(), "monitoring", noon() + 600)).await.json();
    let value = |v: &Value| v["MetricDataResults"][0]["Values"][0].as_f64().unwrap();
    assert!(value(&later) > value(&first), "{} then {}", value(&first), value(&later));
}

#[tokio::test]
async fn metric_queries_follow_cloudwatchs_rules() {
    let a = account();
    let id = a.distributions[0].id.clone();
    let state = state_with(vec![a], noon());
    let window = |queries: Value| json!({"StartTime": noon() - 3600, "EndTime": noon(), "MetricDataQueries": queries});
    let ask = |body: Value| {
        let state = state.clone();
        async move { send(&state, Call::cw(&body).signed(&demo_creds(), "monitoring", noon())).await }
    };
    // Any other dimension set, another metric or namespace, or a period not a multiple of 60:
    // no data, not an error.
    let only_id = json!([{"Name": "DistributionId", "Value": id}]);
    let extra = json!([{"Name": "DistributionId", "Value": id}, {"Name": "Region", "Value": "Global"}, {"Name": "X", "Value": "y"}]);
    let v = ask(window(json!([
        metric_query("a", "Requests", only_id, 300),
        metric_query("b", "Requests", extra, 300),
        metric_query("c", "4xxErrorRate", dims(&id), 300),
        metric_query("d", "Requests", dims("E0NOSUCHDIST"), 300),
        metric_query("e", "Requests", dims(&id), 90),
        metric_query("f", "Requests", dims(&id), 300),
    ])))
    .await
    .json();
    let results = v["MetricDataResults"].as_array().unwrap();
    for r in &results[..5] {
        assert_eq!(r["Values"], json!([]), "{r}");
        assert_eq!(r["StatusCode"], "Complete");
    }
    assert_eq!(results[5]["Values"].as_array().unwrap().len(), 12);
    let ts = results[5]["Timestamps"].as_array().unwrap();
    assert!(ts[0].as_i64() > ts[1].as_i64(), "descending by default");

    let r = ask(window(json!([metric_query("Req", "Requests", dims(&id), 300)]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["x-amzn-query-error"], "InvalidParameterValue;Sender");
    assert_eq!(r.error_type(), "GraniteServiceVersion20100801#InvalidParameterValueException");
    let many: Vec<Value> = (0..501).map(|i| metric_query(&format!("q{i}"), "Requests", dims(&id), 300)).collect();
    let r = ask(window(Value::Array(many.clone()))).await;
    assert_eq!(
        (r.status, r.headers["x-amzn-query-error"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "InvalidParameterValue;Sender")
    );
    assert_eq!(ask(window(Value::Array(many[..500].to_vec()))).await.status, StatusCode::OK);

    // Signed as `cloudwatch` (the endpoint name, not the signing name).
    let body = window(json!([metric_query("req", "Requests", dims(&id), 300)]));
    let r = send(&state, Call::cw(&body).signed(&demo_creds(), "cloudwatch", noon())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.headers["x-amzn-query-error"], "SignatureDoesNotMatch;Sender");
    assert!(r.json()["message"].as_str().unwrap().contains("'monitoring'"), "{}", r.body);
}

#[tokio::test]
async fn metric_data_pages_by_max_datapoints() {
    let a = account();
    let (one, two) = (a.distributions[0].id.clone(), a.distributions[1].id.clone());
    let state = state_with(vec![a], noon());
    let body = json!({"StartTime": noon() - 3600, "EndTime": noon(), "MaxDatapoints": 5,
        "MetricDataQueries": [metric_query("a", "Requests", dims(&one), 300), metric_query("b", "Requests", dims(&two), 300)]});
    let mut got: Vec<(String, i64)> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut b = body.clone();
        if let Some(t) = &token {
            b["NextToken"] = json!(t);
        }
        let v = send(&state, Call::cw(&b).signed(&demo_creds(), "monitoring", noon())).await.json();
        pages += 1;
        for r in v["MetricDataResults"].as_array().unwrap() {
            for t in r["Timestamps"].as_array().unwrap() {
                got.push((r["Id"].as_str().unwrap().into(), t.as_i64().unwrap()));
            }
        }
        match v["NextToken"].as_str() {
            Some(t) => token = Some(t.into()),
            None => break,
        }
    }
    assert_eq!((got.len(), pages), (24, 5));
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 24, "every point once");
    let mut b = body.clone();
    b["NextToken"] = json!("garbage");
    let r = send(&state, Call::cw(&b).signed(&demo_creds(), "monitoring", noon())).await;
    assert_eq!(
        (r.status, r.headers["x-amzn-query-error"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "InvalidNextToken;Sender")
    );
}

fn distributions(n: usize) -> Vec<SimDistribution> {
    let base = account().distributions;
    (0..n)
        .map(|i| SimDistribution {
            id: format!("E{i:02}SIMLIST0000"),
            aliases: if i % 2 == 0 { vec![format!("cdn{i}.example")] } else { Vec::new() },
            ..base[i % 2].clone()
        })
        .collect()
}

#[tokio::test]
async fn distributions_are_listed_in_pages_with_an_opaque_marker() {
    let a = SimAccount { distributions: distributions(5), list_page: 2, ..account() };
    let state = state_with(vec![a], noon());
    let mut ids = Vec::new();
    let mut marker = String::new();
    let mut pages = 0;
    loop {
        let query = format!("MaxItems=100&Marker={}", urlencode(&marker));
        let r = send(&state, Call::list(&query).signed(&demo_creds(), "cloudfront", noon())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("<DistributionList xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">"));
        pages += 1;
        let quantity: usize = r.xml("Quantity").unwrap().parse().unwrap();
        let on_page = r.body.matches("<DistributionSummary>").count();
        // The first Quantity is the list's (the page's count), before any Aliases.
        assert_eq!(quantity, on_page);
        assert_eq!(r.xml("MaxItems").as_deref(), Some("100"));
        assert_eq!(r.xml("Marker").unwrap(), marker);
        assert!(r.body.contains("<ConnectionMode>direct</ConnectionMode>"));
        assert!(r.body.contains("<Aliases><Quantity>0</Quantity></Aliases>") || on_page == 1);
        for part in r.body.split("<DistributionSummary><Id>").skip(1) {
            ids.push(part[..part.find('<').unwrap()].to_owned());
        }
        if r.xml("IsTruncated").as_deref() == Some("true") {
            let next = r.xml("NextMarker").unwrap();
            assert!(!next.starts_with('E') && !ids.contains(&next), "opaque: {next}");
            marker = next;
        } else {
            assert!(r.xml("NextMarker").is_none());
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, (0..5).map(|i| format!("E{i:02}SIMLIST0000")).collect::<Vec<_>>());

    for query in ["MaxItems=101", "MaxItems=abc", "Marker=E01SIMLIST0000"] {
        let r = send(&state, Call::list(query).signed(&demo_creds(), "cloudfront", noon())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(r.xml("Code").as_deref(), Some("InvalidArgument"), "{query}");
        assert!(r.body.starts_with("<?xml") && r.body.contains("<ErrorResponse"));
    }
    let r = send(&state, Call::list("MaxItems=1").signed(&demo_creds(), "sts", noon())).await;
    assert_eq!((r.status, r.xml("Code").as_deref()), (StatusCode::FORBIDDEN, Some("SignatureDoesNotMatch")));
    let r = send(&state, Call::list("MaxItems=1").unsigned()).await;
    assert_eq!((r.status, r.xml("Code").as_deref()), (StatusCode::FORBIDDEN, Some("MissingAuthenticationToken")));
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
}

const ROLE: &str = "arn:aws:iam::123456789012:role/cdn-exporter";
const WEB_ROLE: &str = "arn:aws:iam::123456789012:role/cdn-exporter-web";

fn assume(external_id: &str, duration: &str) -> Call<'static> {
    Call::form(&[
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", ROLE),
        ("RoleSessionName", "cdn-exporter"),
        ("ExternalId", external_id),
        ("DurationSeconds", duration),
    ])
}

fn issued(r: &Answer) -> Credentials {
    creds(&r.xml("AccessKeyId").unwrap(), &r.xml("SecretAccessKey").unwrap(), Some(&r.xml("SessionToken").unwrap()))
}

#[tokio::test]
async fn assumed_role_credentials_work_until_they_expire() {
    let state = state_with(vec![account()], noon());
    let r = send(&state, assume(DEMO_EXTERNAL_ID, "900").signed(&demo_creds(), "sts", noon())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials>"
    ));
    assert!(r.body.contains("<Arn>arn:aws:sts::123456789012:assumed-role/cdn-exporter/cdn-exporter</Arn>"));
    assert_eq!(r.xml("Expiration").unwrap(), data::iso(noon() + 900));
    let temporary = issued(&r);
    assert!(temporary.access_key_id.expose().starts_with("ASIA"));
    assert!(temporary.secret_access_key.expose().starts_with(sts::SECRET_PREFIX));

    let call = Call::ce("GetCostAndUsage", &mtd_body());
    assert_eq!(send(&state, call.signed(&temporary, "ce", noon())).await.status, StatusCode::OK);
    // Without its token, the key is not known.
    let bare = creds(temporary.access_key_id.expose(), temporary.secret_access_key.expose(), None);
    let r = send(&state, call.signed(&bare, "ce", noon())).await;
    assert_eq!((r.status, r.error_type().as_str()), (StatusCode::FORBIDDEN, "UnrecognizedClientException"));

    state.clock.set(noon() + 900);
    let r = send(&state, call.signed(&temporary, "ce", noon() + 900)).await;
    assert_eq!((r.status, r.error_type().as_str()), (StatusCode::FORBIDDEN, "ExpiredTokenException"));
    let r = send(&state, Call::list("").signed(&temporary, "cloudfront", noon() + 900)).await;
    assert_eq!(r.xml("Code").as_deref(), Some("ExpiredToken"));

    for (call, code, status) in [
        (assume("wrong-external-id", "3600"), "AccessDenied", StatusCode::FORBIDDEN),
        (assume(DEMO_EXTERNAL_ID, "600"), "ValidationError", StatusCode::BAD_REQUEST),
    ] {
        let r = send(&state, call.signed(&demo_creds(), "sts", noon() + 900)).await;
        assert_eq!((r.status, r.xml("Code")), (status, Some(code.to_owned())), "{}", r.body);
        assert!(r.body.contains("<ErrorResponse") && r.body.contains("<Type>Sender</Type>"));
    }
    // A key the role does not trust.
    let other = SimAccount {
        account_id: "210987654321".into(),
        keys: vec![SimKey { access_key_id: "AKIASIMOTHER00000001".into(), secret_access_key: "otherSecret".into() }],
        ..SimAccount::default()
    };
    let state = state_with(vec![account(), other], noon());
    let r = send(
        &state,
        assume(DEMO_EXTERNAL_ID, "3600").signed(&creds("AKIASIMOTHER00000001", "otherSecret", None), "sts", noon()),
    )
    .await;
    assert_eq!((r.status, r.xml("Code").as_deref()), (StatusCode::FORBIDDEN, Some("AccessDenied")));
}

#[tokio::test]
async fn a_web_identity_token_is_checked_and_never_logged() {
    let state = state_with(vec![account()], noon());
    let web = |token: &str| {
        Call::form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", WEB_ROLE),
            ("RoleSessionName", "cdn-exporter"),
            ("WebIdentityToken", token),
        ])
    };
    let r = send(&state, web(DEMO_WEB_IDENTITY_TOKEN).unsigned()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials>"));
    let temporary = issued(&r);
    let listed = send(&state, Call::list("MaxItems=10").signed(&temporary, "cloudfront", noon())).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);

    let r = send(&state, web("not-the-token").unsigned()).await;
    assert_eq!((r.status, r.xml("Code").as_deref()), (StatusCode::BAD_REQUEST, Some("InvalidIdentityToken")));
    let log = state.cloudfront_requests();
    assert_eq!(log.iter().filter(|r| r.operation == "AssumeRoleWithWebIdentity").count(), 2);
    let printed = format!("{log:?}");
    assert!(!printed.contains(DEMO_WEB_IDENTITY_TOKEN) && !printed.contains("not-the-token"), "{printed}");
    for secret in [temporary.secret_access_key.expose(), temporary.session_token.as_ref().unwrap().expose()] {
        assert!(!printed.contains(secret));
    }
}

#[tokio::test]
async fn the_throttle_faults_answer_in_each_apis_shape() {
    let a = account();
    let id = a.distributions[0].id.clone();
    let state = state_with(vec![a], noon());
    state.set_faults(Faults { aws_throttle: true, ..Faults::default() });
    let r = send(&state, Call::ce("GetCostAndUsage", &mtd_body()).signed(&demo_creds(), "ce", noon())).await;
    assert_eq!((r.status, r.error_type().as_str()), (StatusCode::BAD_REQUEST, "LimitExceededException"));
    assert_eq!(r.json()["message"], "Rate limit exceeded");
    let body = json!({"StartTime": noon() - 3600, "EndTime": noon(), "MetricDataQueries": [metric_query("a", "Requests", dims(&id), 300)]});
    let r = send(&state, Call::cw(&body).signed(&demo_creds(), "monitoring", noon())).await;
    assert_eq!(
        (r.status, r.headers["x-amzn-query-error"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "Throttling;Sender")
    );
    let r = send(&state, Call::list("").signed(&demo_creds(), "cloudfront", noon())).await;
    assert_eq!(
        (r.status, r.xml("Code").as_deref(), r.xml("Message").as_deref()),
        (StatusCode::BAD_REQUEST, Some("Throttling"), Some("Rate exceeded"))
    );
    let r = send(&state, assume(DEMO_EXTERNAL_ID, "3600").signed(&demo_creds(), "sts", noon())).await;
    assert_eq!((r.status, r.xml("Code").as_deref()), (StatusCode::BAD_REQUEST, Some("Throttling")));

    state.set_faults(Faults { aws_throttle_next: 2, ..Faults::default() });
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(send(&state, Call::list("").signed(&demo_creds(), "cloudfront", noon())).await.status);
    }
    assert_eq!(statuses, [StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, StatusCode::OK]);

    state.set_faults(Faults { http_500: true, only_command: Some("GetMetricData".into()), ..Faults::default() });
    let r = send(&state, Call::cw(&body).signed(&demo_creds(), "monitoring", noon())).await;
    assert_eq!(
        (r.status, r.headers["x-amzn-query-error"].to_str().unwrap()),
        (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure;Receiver")
    );
    assert_eq!(send(&state, Call::list("").signed(&demo_creds(), "cloudfront", noon())).await.status, StatusCode::OK);
}

#[test]
fn the_demo_is_described_without_a_secret_and_configured_against_the_simulator() {
    let state = SimState::builder().with(part(demo_accounts())).build();
    let text = describe(&state, "127.0.0.1:9");
    assert!(
        text.contains("http://127.0.0.1:9/aws")
            && text.contains(DEMO_ACCESS_KEY_ID)
            && text.contains("cdn.demo.example")
    );
    for s in SENSITIVE {
        assert!(!text.contains(s), "{s} in {text}");
    }
    let toml = demo_toml("127.0.0.1:9");
    assert_eq!(
        toml,
        format!(
            "\n[[cloudfront]]\nname = \"demo-aws\"\naccess_key_id = \"AKIASIMDEMO000000001\"\nsecret_access_key = \"{DEMO_SECRET_ACCESS_KEY}\"\nendpoint_url = \"http://127.0.0.1:9/aws\"\nbudget_usd = 900\n"
        )
    );
    let a = &demo_accounts()[0];
    assert_eq!(a.usage_types.len(), 8);
    assert_eq!(a.roles.len(), 2);
    // History reaches the 14 months Cost Explorer shows, at the time of writing.
    assert!(ce::oldest_day(noon()) >= a.history_from);
    assert_eq!(format_ymd(a.history_from), "2025-10-01");
}

#[test]
fn the_day_shape_telescopes_to_the_days_total() {
    let d = &account().distributions[0];
    let day = noon() / DAY - 3;
    let total = data::cw_day_total(d, data::Metric::Requests, day, 0);
    let by_minute: f64 = (0..1440)
        .map(|m| data::cw_sum(d, data::Metric::Requests, day * DAY + m * 60, day * DAY + m * 60 + 60, noon(), 0))
        .sum();
    assert_eq!(by_minute, total);
    assert!((data::diurnal(DAY) - 1.0).abs() < 1e-12 && data::diurnal(0) == 0.0);
    assert_eq!(data::cw_sum(d, data::Metric::Requests, noon(), noon() + 3600, noon(), 0), 0.0, "nothing after now");
}

#[tokio::test]
async fn signatures_can_be_timed_by_the_system_clock_while_the_figures_follow_a_manual_one() {
    let state = SimState::builder()
        .with(part_with(vec![account()], SigningClock::System))
        .clock(Clock::manual(noon() - 40 * DAY))
        .build();
    let body = json!({"TimePeriod": {"Start": "2026-10-01", "End": "2026-10-20"}, "Granularity": "MONTHLY", "Metrics": ["UnblendedCost"]});
    let wall = crate::timeutil::now_unix();
    let r = send(&state, Call::ce("GetCostAndUsage", &body).signed(&demo_creds(), "ce", wall)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["ResultsByTime"][0]["TimePeriod"]["End"], "2026-10-20");
    let r = send(&state, Call::ce("GetCostAndUsage", &body).signed(&demo_creds(), "ce", wall - 600)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[test]
fn a_printed_account_shows_no_secret() {
    let printed = format!("{:?}", demo_accounts());
    assert!(printed.contains(DEMO_ACCESS_KEY_ID));
    assert!(!printed.contains(DEMO_SECRET_ACCESS_KEY), "{printed}");
    let session = sts::issue(ROLE, "s", noon(), 1, 900, 0);
    let printed = format!("{session:?}");
    assert!(!printed.contains(&session.secret) && !printed.contains(&session.token), "{printed}");
}
