//! The Fastly API as the simulator serves it: the `Fastly-Key` check, the month-to-date invoice
//! (its total a string), end-of-month invoices paged by cursor, the service list paged by
//! `Link` header, historical stats with buckets labelled by their UTC start (the newest hourly
//! one still filling), rate-limit headers on every answer, and 401/404/422/429 on demand. The
//! data is a function of the clock, so tests know the answers.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::providers::common::simulator::{SimState, inject, keep, lock};
use crate::timeutil;

use super::{INVOICES_PATH, MTD_PATH, RATELIMIT_REMAINING, RATELIMIT_RESET, SERVICES_PATH, STATS_PATH};

/// The areas the simulated traffic is in: `latam` is not in the exporter's default `areas`, so
/// it shows as `area="other"`.
pub const SIM_REGIONS: [&str; 4] = ["usa", "europe", "asia", "latam"];
/// Every `region` the simulator accepts (the others have no traffic).
pub const KNOWN_REGIONS: [&str; 11] = [
    "usa",
    "europe",
    "anzac",
    "asia",
    "asia_india",
    "asia_southkorea",
    "africa_std",
    "southamerica_std",
    "mexico",
    "latam",
    "south_africa",
];
/// Day buckets appear this long after their UTC day ends (Fastly: about 02:00).
pub const DAY_READY_SECS: i64 = 2 * 3600;
/// The line items of every simulated invoice: description, usage type, area, share of the total
/// in percent (the last takes the remainder, so the items add up to the cent).
pub const ITEMS: [(&str, &str, &str, u64); 3] = [
    ("North America Bandwidth", "bandwidth", "North America", 55),
    ("Europe Bandwidth", "bandwidth", "Europe", 30),
    ("All Regions Requests", "requests", "Global", 15),
];

/// A simulated Fastly account.
#[derive(Debug, Clone)]
pub struct FastlySim {
    /// The API token (`Fastly-Key`).
    pub token: String,
    /// The customer id.
    pub customer_id: String,
    /// Its service ids.
    pub services: Vec<String>,
    /// The most entries per page of `/service` and `/billing/v3/invoices`, whatever is asked.
    pub page_size: usize,
    /// The whole current month's spend, US dollars: the month-to-date invoice is its share of
    /// the month elapsed.
    pub monthly_usd: f64,
    /// End-of-month invoices exist for this many months before the current one.
    pub past_months: i64,
    /// The invoices' currency.
    pub currency: String,
    /// A month's end-of-month invoice is listed this long after the month ends (Fastly posts
    /// early in the month after; 0 lists it at once).
    pub post_delay_secs: i64,
}

/// Fastly fault switches (besides the shared ones: latency, flaky, chaos, `http_500`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FastlyFaults {
    /// Answer with this HTTP status (401, 404, 422, 429, 202, 500, …) and Fastly's error body.
    pub status: Option<u16>,
    /// Limit `status` to one endpoint: `month-to-date`, `invoices`, `stats` or `service`.
    pub only: Option<&'static str>,
    /// The month-to-date total as a JSON number rather than a string.
    pub numeric_mtd_amount: bool,
    /// Invoice pages never end: every page names a new cursor.
    pub endless_cursor: bool,
    /// The service list's `Link` next points to another host.
    pub link_elsewhere: bool,
    /// Answers padded past this many bytes.
    pub pad_bytes: usize,
    /// A stats bucket with a negative bandwidth.
    pub negative_bucket: bool,
    /// The day bucket starting at this Unix time is never served (its hours are).
    pub missing_day: Option<i64>,
    /// Every service's stats come with this many extra (zero, hour-aligned) buckets.
    pub extra_buckets: usize,
    /// Every invoice page names the same next cursor.
    pub repeat_cursor: bool,
}

/// A received request, for tests.
#[derive(Debug, Clone)]
pub struct FastlyRequest {
    /// The path.
    pub path: String,
    /// The query parameters.
    pub query: HashMap<String, String>,
    /// Whether the `Fastly-Key` header named an account.
    pub authenticated: bool,
}

/// The simulator's Fastly part.
#[derive(Debug, Default)]
pub struct Part {
    accounts: Vec<FastlySim>,
    requests: Mutex<Vec<FastlyRequest>>,
    faults: Mutex<FastlyFaults>,
}

/// The part of a [`SimState`] that serves these accounts.
pub fn part(accounts: Vec<FastlySim>) -> Box<dyn Any + Send + Sync> {
    Box::new(Part { accounts, ..Part::default() })
}

impl SimState {
    /// The Fastly accounts the simulator knows.
    pub fn fastly(&self) -> &[FastlySim] {
        self.part::<Part>().map_or(&[], |p| &p.accounts)
    }

    /// The Fastly requests received so far (the most recent
    /// [`crate::providers::common::simulator::KEEP_REQUESTS`]).
    pub fn fastly_requests(&self) -> Vec<FastlyRequest> {
        self.part::<Part>().map(|p| lock(&p.requests).clone()).unwrap_or_default()
    }

    /// Replaces the Fastly faults.
    pub fn set_fastly_faults(&self, faults: FastlyFaults) {
        if let Some(p) = self.part::<Part>() {
            *lock(&p.faults) = faults;
        }
    }

    fn fastly_faults(&self) -> FastlyFaults {
        self.part::<Part>().map(|p| lock(&p.faults).clone()).unwrap_or_default()
    }
}

/// The routes of the Fastly API (served at the simulator's root).
pub fn routes(router: Router<Arc<SimState>>) -> Router<Arc<SimState>> {
    router
        .route(MTD_PATH, get(handle_mtd))
        .route(INVOICES_PATH, get(handle_invoices))
        .route(STATS_PATH, get(handle_stats))
        .route(SERVICES_PATH, get(handle_services))
}

/// The accounts `demo` and `simulate` serve.
pub fn demo_accounts() -> Vec<FastlySim> {
    vec![FastlySim {
        token: "demo-fastly-token".into(),
        customer_id: "7i6HN3TK9wS159v2gPAZ8A".into(),
        services: vec!["SU1Z0isxPaozGVKXdv0eY".into(), "AP2Y1jtyQbpaHWLYew1fZ".into()],
        page_size: 1,
        monthly_usd: 1800.0,
        past_months: 13,
        currency: "USD".into(),
        post_delay_secs: 0,
    }]
}

/// The demo configuration's `[[fastly]]` table, pointing at a simulator at `addr`.
pub fn demo_toml(addr: &str) -> String {
    format!(
        r#"
[[fastly]]
name = "demo"
base_url = "http://{addr}"
api_token = "demo-fastly-token"
invoice_interval = "30s"
stats_interval = "30s"
timeout = "5s"
# The simulator's month comes to $1,800 (spend to date grows with the month), so the forecast
# of the spend to date over the month's elapsed share is $1,800 and the budget alerts fire.
budget_usd = 1200
"#
    )
}

/// What `simulate` prints about this provider: where it listens and its accounts.
pub fn describe(state: &SimState, addr: &str) -> String {
    let mut out =
        format!("Fastly simulator at http://{addr} ({MTD_PATH}, {INVOICES_PATH}, {STATS_PATH}, {SERVICES_PATH})\n");
    for a in state.fastly() {
        out.push_str(&format!("  account: api_token = {:?}, services = {:?}\n", a.token, a.services));
    }
    out
}

/// Bytes and requests of service `s` in area `r` in the full hour starting at `hour`.
pub fn hour_traffic(s: usize, r: usize, hour: i64) -> (u64, u64) {
    let bytes = (s as u64 + 1) * (r as u64 + 1) * 1_000_000_000 * (1 + (hour.div_euclid(3600) % 5) as u64);
    (bytes, bytes / 25_000)
}

/// The bucket of service `s` in area `r` (`None`: every area) of `step` seconds (3600 or 86400)
/// starting at `start`, as the API answers at `now`: `None` if it is not served yet. The hour
/// that holds `now` is served filling: its share of the hour so far.
pub fn bucket(s: usize, r: Option<usize>, start: i64, step: i64, now: i64) -> Option<(u64, u64)> {
    let areas: Vec<usize> = match r {
        Some(r) if r < SIM_REGIONS.len() => vec![r],
        Some(_) => vec![],
        None => (0..SIM_REGIONS.len()).collect(),
    };
    let sum = |hours: &mut dyn Iterator<Item = i64>, share: &dyn Fn(u64) -> u64| {
        hours.fold((0, 0), |(b, q), h| {
            areas.iter().fold((b, q), |(b, q), &a| {
                let (hb, hq) = hour_traffic(s, a, h);
                (b + share(hb), q + share(hq))
            })
        })
    };
    if step == 86_400 {
        if now < start + 86_400 + DAY_READY_SECS {
            return None;
        }
        return Some(sum(&mut (0..24).map(|h| start + h * 3600), &|v| v));
    }
    if start > now {
        return None;
    }
    let elapsed = (now - start).min(3600) as u64;
    Some(sum(&mut std::iter::once(start), &|v| v * elapsed / 3600))
}

/// The whole spend of the month starting on `month` (a day number) for an end-of-month invoice,
/// in cents: 80 % to 100 % of the account's monthly figure, varying by month.
pub fn bill_cents(account: &FastlySim, month: i64) -> u64 {
    let (y, m, _) = timeutil::civil_from_days(month);
    let share = 80 + (y as u64 * 12 + u64::from(m)) % 5 * 5;
    (account.monthly_usd * share as f64).round() as u64
}

/// The month-to-date spend at `now`, in cents: the month's elapsed share of `monthly_usd`.
pub fn mtd_cents(account: &FastlySim, now: i64) -> u64 {
    let today = now.div_euclid(86_400);
    let month = timeutil::month_start(today);
    let (y, m, _) = timeutil::civil_from_days(month);
    let len = i64::from(timeutil::days_in_month(y, m)) * 86_400;
    let elapsed = (now - month * 86_400).clamp(0, len);
    (account.monthly_usd * 100.0 * elapsed as f64 / len as f64).round() as u64
}

/// The line items of a total, in cents each, adding up to it.
pub fn item_cents(total: u64) -> Vec<u64> {
    let mut out: Vec<u64> = ITEMS[..ITEMS.len() - 1].iter().map(|(_, _, _, share)| total * share / 100).collect();
    out.push(total - out.iter().sum::<u64>());
    out
}

fn items_json(total: u64, eom: bool) -> Vec<Value> {
    ITEMS
        .iter()
        .zip(item_cents(total))
        .map(|((description, usage, region, _), cents)| {
            let mut item = json!({
                "description": description,
                "amount": cents as f64 / 100.0,
                "rate": 0.12,
                "units": cents as f64 / 12.0,
                "product_name": "Full-Site Delivery",
                "product_group": "Full-Site Delivery",
                "product_line": "Network Services",
                "region": region,
                "usage_type": usage,
            });
            if eom {
                item["credit_coupon_code"] = json!("");
            }
            item
        })
        .collect()
}

fn iso(day: i64, time: &str) -> String {
    format!("{}T{time}Z", timeutil::format_ymd(day))
}

fn iso_at(unix: i64) -> String {
    let s = unix.rem_euclid(86_400);
    iso(unix.div_euclid(86_400), &format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60))
}

/// The answer to send, with the rate-limit headers Fastly sends.
fn reply(state: &SimState, status: StatusCode, body: Value, extra: Vec<(header::HeaderName, String)>) -> Response {
    let now = state.clock.now();
    let remaining = if status == StatusCode::TOO_MANY_REQUESTS { "0" } else { "999" };
    let reset = ((now.div_euclid(3600) + 1) * 3600).to_string();
    let mut text = body.to_string();
    let pad = state.fastly_faults().pad_bytes;
    if pad > 0 && text.ends_with('}') {
        text.pop();
        text.push_str(&format!(",\"padding\":\"{}\"}}", "x".repeat(pad)));
    }
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], text).into_response();
    let headers = response.headers_mut();
    headers.insert(RATELIMIT_REMAINING, remaining.parse().unwrap_or(header::HeaderValue::from_static("0")));
    if let Ok(v) = reset.parse() {
        headers.insert(RATELIMIT_RESET, v);
    }
    for (k, v) in extra {
        if let Ok(v) = v.parse() {
            headers.append(k, v);
        }
    }
    response
}

fn failure() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"type": "about:blank", "title": "Simulated failure", "code": "internal", "status": "500"}).to_string(),
    )
        .into_response()
}

/// The checks every request passes: faults, the token. Returns the account or the answer.
async fn admit<'a>(
    state: &'a SimState,
    endpoint: &'static str,
    path: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<&'a FastlySim, Response> {
    let faults = state.faults();
    if let Some(injected) = inject(state, &faults, failure).await {
        return Err(injected);
    }
    let account = headers
        .get("fastly-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|k| state.fastly().iter().find(|a| a.token == k));
    if let Some(p) = state.part::<Part>() {
        keep(
            &p.requests,
            FastlyRequest { path: path.to_owned(), query: query.clone(), authenticated: account.is_some() },
        );
    }
    if faults.http_500 {
        return Err(failure());
    }
    let mine = state.fastly_faults();
    if let Some(status) = mine.status.filter(|_| mine.only.is_none_or(|o| o == endpoint)) {
        let title = match status {
            401 => "Unauthorized",
            404 => "Not Found",
            422 => "Unprocessable Entity",
            429 => "Too Many Requests",
            202 => "Accepted",
            _ => "Simulated status",
        };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"type": "about:blank", "title": title, "code": "simulated", "status": status.to_string()});
        return Err(reply(state, code, body, Vec::new()));
    }
    account.ok_or_else(|| {
        reply(
            state,
            StatusCode::UNAUTHORIZED,
            json!({"msg": "Provided credentials are missing or invalid"}),
            Vec::new(),
        )
    })
}

/// `GET /billing/v3/invoices/month-to-date`.
pub async fn handle_mtd(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let account = match admit(&state, "month-to-date", MTD_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = state.clock.now();
    let month = timeutil::month_start(now.div_euclid(86_400));
    let (y, m, _) = timeutil::civil_from_days(month);
    let last = month + i64::from(timeutil::days_in_month(y, m)) - 1;
    let total = mtd_cents(account, now);
    let amount = if state.fastly_faults().numeric_mtd_amount {
        json!(total as f64 / 100.0)
    } else {
        json!(format!("{}.{:02}", total / 100, total % 100))
    };
    let body = json!({
        "customer_id": account.customer_id,
        "invoice_id": format!("MTD{y:04}{m:02}"),
        "billing_start_date": iso(month, "00:00:00"),
        "billing_end_date": iso(last, "23:59:59"),
        "monthly_transaction_amount": amount,
        "transaction_line_items": items_json(total, false),
    });
    reply(&state, StatusCode::OK, body, Vec::new())
}

/// `GET /billing/v3/invoices`: newest first, filtered by the billing start date, paged by cursor.
pub async fn handle_invoices(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let account = match admit(&state, "invoices", INVOICES_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let bad =
        |msg: &str| reply(&state, StatusCode::BAD_REQUEST, json!({"title": "Bad Request", "detail": msg}), vec![]);
    let date = |k: &str| match query.get(k) {
        None => Ok(None),
        Some(s) => timeutil::parse_ymd(s).filter(|_| s.len() == 10).map(Some).ok_or(()),
    };
    let (Ok(from), Ok(to)) = (date("billing_start_date"), date("billing_end_date")) else {
        return bad("billing_start_date and billing_end_date are YYYY-MM-DD");
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=200).contains(&l) => l,
        Some(_) => return bad("limit is 1 to 200"),
    };
    let offset = match query.get("cursor").map(String::as_str) {
        None | Some("") => 0,
        Some(c) => match c.strip_prefix("c").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return bad("unknown cursor"),
        },
    };
    let now = state.clock.now();
    let this_month = timeutil::month_start(now.div_euclid(86_400));
    let mut invoices = Vec::new();
    let mut month = this_month;
    for _ in 0..account.past_months {
        month = timeutil::month_start(month - 1);
        if from.is_some_and(|f| month < f) || to.is_some_and(|t| month > t) {
            continue;
        }
        let (y, m, _) = timeutil::civil_from_days(month);
        let next = month + i64::from(timeutil::days_in_month(y, m));
        if now < next * 86_400 + account.post_delay_secs {
            continue;
        }
        let total = bill_cents(account, month);
        invoices.push(json!({
            "customer_id": account.customer_id,
            "invoice_id": (4_000_000 + y * 12 + i64::from(m)).to_string(),
            "invoice_posted_on": iso_at(next * 86_400 + account.post_delay_secs),
            "billing_start_date": iso(month, "00:00:00"),
            "billing_end_date": iso(next - 1, "23:59:59"),
            "statement_number": format!("ST-{y:04}{m:02}"),
            "currency_code": account.currency,
            "monthly_transaction_amount": total as f64 / 100.0,
            "transaction_line_items": items_json(total, true),
        }));
    }
    let size = limit.min(account.page_size.max(1));
    let page: Vec<Value> = invoices.iter().skip(offset).take(size).cloned().collect();
    let end = offset + page.len();
    let FastlyFaults { endless_cursor, repeat_cursor, .. } = state.fastly_faults();
    let next = if repeat_cursor {
        "c1".to_owned()
    } else if end < invoices.len() || endless_cursor {
        format!("c{}", end.max(offset + 1))
    } else {
        String::new()
    };
    let body = json!({
        "data": page,
        "meta": {"next_cursor": next, "limit": size, "sort": "billing_start_date", "total": invoices.len()},
    });
    reply(&state, StatusCode::OK, body, Vec::new())
}

/// `GET /service`: a bare array, paged by the `Link` header.
pub async fn handle_services(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let account = match admit(&state, "service", SERVICES_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let per_page = query.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(20).clamp(1, 1000);
    let size = per_page.min(account.page_size.max(1));
    let entries: Vec<Value> = account
        .services
        .iter()
        .enumerate()
        .skip((page - 1) * size)
        .take(size)
        .map(|(i, id)| {
            json!({
                "id": id, "name": format!("service-{i}"), "version": 3, "type": "vcl",
                "customer_id": account.customer_id, "comment": "", "created_at": "2024-01-10T12:00:00Z",
                "updated_at": "2025-09-01T09:30:00Z", "deleted_at": null, "paused": false,
            })
        })
        .collect();
    let pages = account.services.len().div_ceil(size).max(1);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let host = if state.fastly_faults().link_elsewhere { "elsewhere.example" } else { host };
    let link = |p: usize, rel: &str| format!("<http://{host}{SERVICES_PATH}?page={p}&per_page={size}>; rel=\"{rel}\"");
    let mut links = vec![link(1, "first")];
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    links.push(link(pages, "last"));
    reply(&state, StatusCode::OK, Value::Array(entries), vec![(header::LINK, links.join(", "))])
}

/// `GET /stats`: buckets per service, `from` inclusive, `to` exclusive, labelled by their UTC start.
pub async fn handle_stats(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let account = match admit(&state, "stats", STATS_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let bad = |msg: &str| {
        reply(&state, StatusCode::BAD_REQUEST, json!({"status": "error", "msg": msg, "data": null}), vec![])
    };
    let epoch = |k: &str| query.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to)) = (epoch("from"), epoch("to")) else {
        return bad("from and to must be given (the simulator takes Unix seconds)");
    };
    let step = match query.get("by").map(String::as_str) {
        None | Some("day") => 86_400,
        Some("hour") => 3600,
        Some(_) => return bad("by must be hour or day"),
    };
    if from >= to || (step == 3600 && to - from > 32 * 86_400) {
        return bad("the query is too large or empty");
    }
    let region = match query.get("region").map(String::as_str) {
        None | Some("all") => None,
        Some(r) if KNOWN_REGIONS.contains(&r) => Some(SIM_REGIONS.iter().position(|x| *x == r).unwrap_or(usize::MAX)),
        Some(_) => return bad("unknown region"),
    };
    let wanted: Vec<&str> =
        query.get("services").map(|s| s.split(',').filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    let now = state.clock.now();
    let FastlyFaults { negative_bucket: negative, missing_day, extra_buckets, .. } = state.fastly_faults();
    let mut data = serde_json::Map::new();
    for (s, id) in account.services.iter().enumerate() {
        if !wanted.is_empty() && !wanted.contains(&id.as_str()) {
            continue;
        }
        let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
        let buckets: Vec<Value> = (0..)
            .map(|k| first + k * step)
            .take_while(|start| *start < to)
            .filter(|start| step != 86_400 || missing_day != Some(*start))
            .filter_map(|start| {
                let (bytes, requests) = bucket(s, region, start, step, now)?;
                let bandwidth = if negative { -1 } else { bytes as i64 };
                Some(json!({
                    "service_id": id, "start_time": start, "requests": requests, "edge_requests": requests,
                    "compute_requests": 0, "bandwidth": bandwidth, "resp_body_bytes": bytes * 9 / 10,
                    "resp_header_bytes": bytes / 10, "hit_ratio": 0.93,
                }))
            })
            .collect();
        let mut buckets = buckets;
        buckets.extend(
            (0..extra_buckets as i64)
                .map(|k| json!({"service_id": id, "start_time": 3600 * k, "requests": 0, "bandwidth": 0})),
        );
        data.insert(id.clone(), Value::Array(buckets));
    }
    let stamp = |t: i64| {
        let d = t.div_euclid(86_400);
        let s = t.rem_euclid(86_400);
        format!("{} {:02}:{:02}:{:02} UTC", timeutil::format_ymd(d), s / 3600, s % 3600 / 60, s % 60)
    };
    let body = json!({
        "status": "success",
        "msg": null,
        "meta": {"from": stamp(from), "to": stamp(to), "by": if step == 3600 { "hour" } else { "day" },
                 "region": query.get("region").cloned().unwrap_or_else(|| "all".into())},
        "data": data,
    });
    reply(&state, StatusCode::OK, body, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::providers::fastly::FastlyAccount;

    #[test]
    fn the_demo_table_configures_the_demo_account() {
        let config = Config::from_toml_str(&demo_toml("127.0.0.1:1"), "demo").unwrap();
        let account = config.accounts_of::<FastlyAccount>()[0];
        let sim = &demo_accounts()[0];
        assert_eq!(account.api_token.expose(), sim.token);
        assert!(account.services.is_empty(), "the demo finds its services through /service");
        assert_eq!(sim.services.len(), 2);
        // The forecast (spend to date over the month's elapsed share) is the month's figure,
        // above the budget: the budget alerts fire in the demo.
        assert!(account.budget_usd.unwrap() < sim.monthly_usd);
    }

    #[test]
    fn days_are_their_hours_and_the_newest_hour_fills() {
        let day = 20_000 * 86_400;
        let now = day + 86_400 + DAY_READY_SECS;
        for r in [None, Some(0), Some(3), Some(99)] {
            let hours = (0..24)
                .map(|h| bucket(1, r, day + h * 3600, 3600, now).unwrap())
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            assert_eq!(bucket(1, r, day, 86_400, now), Some(hours));
        }
        assert_eq!(bucket(0, None, day, 86_400, now - 1), None, "not built yet");
        let half = bucket(0, Some(0), now, 3600, now + 1800).unwrap();
        let full = bucket(0, Some(0), now, 3600, now + 3600).unwrap();
        assert_eq!(half.0 * 2, full.0);
        assert_eq!(bucket(0, Some(0), now + 3600, 3600, now), None);
        assert_eq!(item_cents(10_001).iter().sum::<u64>(), 10_001);
    }
}
