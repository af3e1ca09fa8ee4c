//! The CDNetworks `domain-usage` API as the simulator serves it: both auth schemes verified
//! (with a 5-minute clock-skew window), JSON only when asked for it, the body validated by the
//! doc's rules and refused with the doc's error codes, deterministic hourly or daily series.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::providers::common::simulator::{KEEP_REQUESTS, SimState, inject, keep, lock};
use crate::timeutil;

use super::{PATH, auth, traffic};

/// The simulator's CDNetworks part: its accounts and the requests it received.
#[derive(Debug, Default)]
pub struct Part {
    accounts: Vec<CdnAccount>,
    requests: Mutex<Vec<CdnRequest>>,
    traffic_requests: Mutex<Vec<CdnRequest>>,
    /// When each account's authenticated requests arrived (real time), by username.
    arrivals: Mutex<HashMap<String, Vec<Instant>>>,
    /// When traffic slices were revised (by the state's clock).
    revisions: Mutex<Vec<i64>>,
}

/// The part of a [`SimState`] that serves these accounts.
pub fn part(accounts: Vec<CdnAccount>) -> Box<dyn Any + Send + Sync> {
    Box::new(Part { accounts, ..Part::default() })
}

impl SimState {
    /// The CDNetworks accounts the simulator knows.
    pub fn cdnetworks(&self) -> &[CdnAccount] {
        self.part::<Part>().map_or(&[], |p| &p.accounts)
    }

    /// The CDNetworks requests received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn cdn_requests(&self) -> Vec<CdnRequest> {
        self.part::<Part>().map(|p| lock(&p.requests).clone()).unwrap_or_default()
    }

    /// The CDNetworks traffic-request requests received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn traffic_requests(&self) -> Vec<CdnRequest> {
        self.part::<Part>().map(|p| lock(&p.traffic_requests).clone()).unwrap_or_default()
    }

    /// Authenticated CDNetworks requests (both endpoints) of the account with this username.
    pub fn cdn_requests_of(&self, username: &str) -> usize {
        self.part::<Part>().map_or(0, |p| lock(&p.arrivals).get(username).map_or(0, Vec::len))
    }

    /// The most authenticated CDNetworks requests of one account that arrived within any `window`
    /// (real time): what the provider's rate limit counts.
    pub fn cdn_max_in_window(&self, username: &str, window: Duration) -> usize {
        let Some(p) = self.part::<Part>() else { return 0 };
        let arrivals = lock(&p.arrivals);
        let Some(times) = arrivals.get(username) else { return 0 };
        (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + window).count()).max().unwrap_or(0)
    }

    fn count_cdn(&self, username: &str) {
        let Some(p) = self.part::<Part>() else { return };
        let mut arrivals = lock(&p.arrivals);
        let times = arrivals.entry(username.to_owned()).or_default();
        if times.len() < KEEP_REQUESTS {
            times.push(Instant::now());
        }
    }

    /// Revises the traffic slices of the last [`REVISED_SECS`] (by the state's clock): later
    /// answers carry higher values for them, as CDN logs arriving late do.
    pub fn revise_traffic(&self) {
        if let Some(p) = self.part::<Part>() {
            lock(&p.revisions).push(self.clock.now());
        }
    }

    /// When slices were revised.
    pub fn traffic_revisions(&self) -> Vec<i64> {
        self.part::<Part>().map(|p| lock(&p.revisions).clone()).unwrap_or_default()
    }

    fn record_traffic(&self, request: CdnRequest) {
        if let Some(p) = self.part::<Part>() {
            keep(&p.traffic_requests, request);
        }
    }

    fn record_cdn(&self, request: CdnRequest) {
        if let Some(p) = self.part::<Part>() {
            keep(&p.requests, request);
        }
    }
}

/// The routes of the CDNetworks API (served at the simulator's root).
pub fn routes(router: Router<Arc<SimState>>) -> Router<Arc<SimState>> {
    router.route(PATH, post(handle)).route(traffic::PATH, post(handle_traffic))
}

/// A CDNetworks error answer with a random code, for chaos.
fn chaos_failure() -> Response {
    let (status, code) =
        [(500, "24102500"), (400, "24102023"), (446, "WPLUS_AccountApiTooFrequence")][fastrand::usize(0..3)];
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"code": code, "message": "Simulated failure"})),
    )
        .into_response()
}

/// The accounts `demo` and `simulate` serve.
pub fn demo_accounts() -> Vec<CdnAccount> {
    vec![CdnAccount {
        username: "demo-user".into(),
        api_key: "demo-cdn-api-key".into(),
        access_key: "DEMOACCESSKEY".into(),
        secret_key: "demo-cdn-secret-key".into(),
        domains: vec![
            ("static.demo.example".into(), "CT-1001".into(), 3.2e12),
            ("video.demo.example".into(), "CT-1001".into(), 18.5e12),
        ],
    }]
}

/// The demo configuration's `[[cdnetworks]]` table, pointing at a simulator at `addr`.
pub fn demo_toml(addr: &str) -> String {
    format!(
        r#"
[[cdnetworks]]
name = "demo"
base_url = "http://{addr}"
username = "demo-user"
api_key = "demo-cdn-api-key"
time_zone = "GMT+09:00"
granularity = "h"
interval = "30s"
timeout = "5s"
traffic_interval = "30s"
# Below the simulator's 95th percentile (about 1.5 Gbit/s over both domains), so the commitment
# alert fires in the demo.
bandwidth_commit_mbps = 500
domains = [
  {{ domain = "static.demo.example", contract = "CT-1001" }},
  {{ domain = "video.demo.example", contract = "CT-1001" }},
]
"#
    )
}

/// What `simulate` prints about this provider: where it listens and its accounts.
pub fn describe(state: &SimState, addr: &str) -> String {
    let mut out = format!("CDNetworks simulator at http://{addr}{PATH} and http://{addr}{}\n", traffic::PATH);
    for a in state.cdnetworks() {
        out.push_str(&format!(
            "  account: username = {:?}, api_key = {:?}, access_key = {:?}, secret_key = {:?}\n",
            a.username, a.api_key, a.access_key, a.secret_key
        ));
        for (domain, contract, _) in &a.domains {
            out.push_str(&format!("    domain = {domain:?}, contract = {contract:?}\n"));
        }
    }
    out
}

/// Clock skew the simulator accepts on `Date` and `x-cnc-timestamp`.
pub const MAX_SKEW_SECS: i64 = 300;

/// A simulated CDNetworks account.
#[derive(Debug, Clone)]
pub struct CdnAccount {
    /// API-key auth user.
    pub username: String,
    /// API-key auth key.
    pub api_key: String,
    /// AK/SK access key.
    pub access_key: String,
    /// AK/SK secret key.
    pub secret_key: String,
    /// Domains served: (domain, contract, bytes at the start of the series).
    pub domains: Vec<(String, String, f64)>,
}

/// A received request, for tests.
#[derive(Debug, Clone)]
pub struct CdnRequest {
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl CdnRequest {
    fn new(headers: &HeaderMap, body: &[u8]) -> Self {
        CdnRequest {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

fn reply(status: StatusCode, body: Value) -> Response {
    let id = format!("sim-{:08}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed));
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-cnc-request-id"), id.as_str()),
        ],
        body.to_string(),
    )
        .into_response()
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    reply(status, json!({"code": code, "message": message}))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why a request was refused: HTTP status, code, message.
type Refusal = (u16, &'static str, &'static str);

/// Checks either auth scheme; returns the account or the refusal.
fn authenticate<'a>(
    state: &'a SimState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<&'a CdnAccount, Refusal> {
    let account = authenticate_inner(state, path, headers, body, now)?;
    state.count_cdn(&account.username);
    Ok(account)
}

fn authenticate_inner<'a>(
    state: &'a SimState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<&'a CdnAccount, Refusal> {
    let authorization = header_str(headers, "authorization").unwrap_or_default();
    let denied = |m: &'static str| Err((401, "AuthFailure", m));
    if let Some(encoded) = authorization.strip_prefix("Basic ") {
        let Some(decoded) = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return denied("Malformed Basic credentials");
        };
        let Some((user, password)) = decoded.split_once(':') else { return denied("Malformed Basic credentials") };
        let Some(account) = state.cdnetworks().iter().find(|a| a.username == user) else { return denied("Unknown user") };
        let Some(date) = header_str(headers, "date") else { return denied("Missing Date header") };
        match timeutil::parse_http_date(date) {
            Some(t) if (t - now).abs() <= MAX_SKEW_SECS => {}
            Some(_) => {
                return Err((403, "RequestTimeTooSkewed", "The Date header is too far from the server's time"));
            }
            None => return denied("Date header is not an RFC 1123 date"),
        }
        if auth::api_key_password(&account.api_key, date) != password {
            return denied("Signature does not match");
        }
        return Ok(account);
    }
    if let Some(fields) = authorization.strip_prefix("CNC-HMAC-SHA256 ") {
        if header_str(headers, "x-cnc-auth-method") != Some("AKSK") {
            return denied("x-cnc-auth-method must be AKSK");
        }
        let Some(ak) = header_str(headers, "x-cnc-accesskey") else { return denied("Missing x-cnc-accessKey") };
        let Some(account) = state.cdnetworks().iter().find(|a| a.access_key == ak) else {
            return denied("Unknown access key");
        };
        let Some(ts) = header_str(headers, "x-cnc-timestamp").and_then(|t| t.parse::<i64>().ok()) else {
            return denied("Missing x-cnc-timestamp");
        };
        if (ts - now).abs() > MAX_SKEW_SECS {
            return Err((403, "RequestTimeTooSkewed", "x-cnc-timestamp is too far from the server's time"));
        }
        let fields: Vec<(&str, &str)> = fields.split(',').filter_map(|f| f.trim().split_once('=')).collect();
        let field = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        if field("Credential") != Some(ak) || field("SignedHeaders") != Some("content-type;host") {
            return denied("Credential or SignedHeaders do not match");
        }
        let req = auth::SignedRequest {
            method: "POST",
            path,
            query: "",
            content_type: header_str(headers, "content-type").unwrap_or_default(),
            host: header_str(headers, "host").unwrap_or_default(),
            body,
            timestamp: ts,
        };
        if field("Signature") != Some(auth::aksk_signature(&account.secret_key, &req).as_str()) {
            return denied("Signature does not match");
        }
        return Ok(account);
    }
    denied("Missing or unknown Authorization scheme")
}

/// `POST /api/domain-usage`.
pub async fn handle(State(state): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let _in_flight = state.in_flight();
    let faults = state.faults();
    if let Some(injected) = inject(&state, &faults, chaos_failure).await {
        return injected;
    }
    state.record_cdn(CdnRequest::new(&headers, &body));
    if faults.http_500 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>500 Internal Server Error</h1></body></html>",
        )
            .into_response();
    }
    if faults.http_446 {
        return error(446, "WPLUS_AccountApiTooFrequence", "Account API access too frequent");
    }
    // A failure code of the doc's table (eight digits) applies here; ScaleEngine's do not.
    if let Some(code) = faults.failure_code.as_deref().filter(|c| c.len() == 8) {
        let (status, message) = match code {
            "24102500" => (500, "We encountered an internal error. Please try again."),
            "24102006" => (400, "The date specified is invalid."),
            "24102021" => (400, "Date format error."),
            "24102008" => (400, "Domain not found"),
            "24102023" => (400, "Failed to get ids. Please check the domain."),
            "34102022" => (400, "No contract permission"),
            _ => (400, "Simulated failure"),
        };
        return error(status, code, message);
    }
    let now = state.clock.now();
    let account = match authenticate(&state, PATH, &headers, &body, now) {
        Ok(a) => a,
        Err((status, code, message)) => return error(status, code, message),
    };
    // Without Accept: application/json this API family answers XML.
    if !header_str(&headers, "accept").is_some_and(|a| a.contains("application/json")) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/xml")],
            "<?xml version=\"1.0\"?><domain-usage><code>0</code></domain-usage>",
        )
            .into_response();
    }
    let offset = match header_str(&headers, "x-time-zone") {
        None => 9 * 3600,
        Some(z) => match timeutil::parse_gmt_offset(z) {
            Some(o) => o,
            None => return error(400, "24102023", "Invalid parameters. Please check the 'X-Time-Zone'."),
        },
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "24102023", "Invalid parameters. Please check the 'contract' or 'dateFrom' or 'dateTo'.");
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (from_s, to_s, domain, contract) = (text("dateFrom"), text("dateTo"), text("domain"), text("contract"));
    if faults.fail_window.as_deref() == Some(from_s.as_str()) {
        return error(500, "24102500", "We encountered an internal error. Please try again.");
    }
    let strict_date = |s: &str| (s.len() == 10).then(|| timeutil::parse_ymd(s)).flatten();
    let (Some(from), Some(to)) = (strict_date(&from_s), strict_date(&to_s)) else {
        return error(400, "24102021", "Date format error.");
    };
    let today = (now + offset).div_euclid(86_400);
    if from >= to || from > today || from < today - 731 {
        return error(400, "24102006", "The date specified is invalid.");
    }
    if to - from > 31 {
        return error(400, "24102023", "Invalid parameters. Please check the 'contract' or 'dateFrom' or 'dateTo'.");
    }
    let hourly = match req.get("type").and_then(Value::as_str) {
        None | Some("d") => false,
        Some("h") => true,
        Some(_) => return error(400, "24102023", "Invalid parameters. Please check the 'type'."),
    };
    if domain.trim().is_empty() || domain.contains(',') {
        return error(400, "24102008", "param: domain is null or invalid.");
    }
    let Some((_, expected_contract, base)) = account.domains.iter().find(|(d, _, _)| *d == domain) else {
        return error(400, "24102008", "Domain not found");
    };
    if *expected_contract != contract {
        return error(400, "34102022", "No contract permission");
    }
    let points = series(*base, from, to.min(today), hourly, offset, now);
    let body = if faults.bare_envelope {
        json!({"domain": domain, "usage": points})
    } else {
        json!({"code": "0", "message": "success", "data": points})
    };
    reply(StatusCode::OK, body)
}

/// Bytes stored at the end of the hour ending at `end` (Unix seconds): grows 1 MB an hour.
pub fn hourly_value(base: f64, end: i64) -> f64 {
    base + 1e6 * (end.div_euclid(3600) % 10_000) as f64
}

/// Bytes stored on the local day `day` (day number in the zone).
pub fn daily_value(base: f64, day: i64) -> f64 {
    base + 2.4e7 * (day % 10_000) as f64
}

/// The points of days `from..=to`, up to the one still filling at `now`, whose value is halved
/// so that a client presenting it as final is caught.
fn series(base: f64, from: i64, to: i64, hourly: bool, offset: i64, now: i64) -> Vec<Value> {
    let mut points = Vec::new();
    for day in from..=to {
        if hourly {
            for hour in 1..=24 {
                let local_end = day * 86_400 + hour * 3600;
                let end = local_end - offset;
                let partial = end > now;
                if partial && end - 3600 > now {
                    break;
                }
                let stamp = format!("{} {hour:02}:00", timeutil::format_ymd(day));
                let v = hourly_value(base, end);
                points.push(
                    json!({"timestamp": stamp, "usage": format!("{}", if partial { (v / 2.0).round() } else { v })}),
                );
            }
        } else {
            let partial = (day + 1) * 86_400 - offset > now;
            let v = daily_value(base, day);
            points.push(json!({"timestamp": timeutil::format_ymd(day), "usage": format!("{}", if partial { (v / 2.0).round() } else { v })}));
        }
    }
    points
}

/// How far back a revision reaches: slices that ended within this many seconds before
/// [`SimState::revise_traffic`] was called get higher values from then on.
pub const REVISED_SECS: i64 = 2 * 3600;
/// How far back `traffic-request` serves (183 days).
pub const TRAFFIC_HISTORY_DAYS: i64 = 183;
/// The most domains per `traffic-request`.
pub const TRAFFIC_MAX_DOMAINS: usize = 1000;
/// The longest `traffic-request` window (1 day).
pub const TRAFFIC_MAX_WINDOW: i64 = 86_400;

/// One simulated 5-minute slice, in the API's units as integers: hundredths of an MB, hundredths
/// of a Mbps, requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSlice {
    /// Traffic, hundredths of an MB.
    pub traffic_centi_mb: u64,
    /// Bandwidth, hundredths of a Mbps.
    pub bandwidth_centi_mbps: u64,
    /// Requests.
    pub requests: u64,
}

fn domain_scale(domain: &str) -> u64 {
    domain.bytes().fold(0u64, |h, b| (h * 31 + u64::from(b)) % 7) + 1
}

/// The slice of `domain` ending at `end` as an answer at `now` shows it, after the revisions made
/// at `revisions`: `None` for a slice not ended yet. Slices end on the 5-minute grid; the newest
/// ended one is still filling and shows half its value; each revision adds 0.50 Mbps to the
/// slices of the [`REVISED_SECS`] before it.
pub fn traffic_slice(domain: &str, end: i64, now: i64, revisions: &[i64]) -> Option<SimSlice> {
    if end > now || end.rem_euclid(300) != 0 {
        return None;
    }
    let k = end.div_euclid(300) as u64;
    let revised = revisions.iter().filter(|r| end <= **r && end > **r - REVISED_SECS).count() as u64;
    let mut centi = domain_scale(domain) * 10_000 + (k * 7919) % 9973 + 50 * revised;
    if end + 300 > now {
        centi /= 2;
    }
    Some(SimSlice { traffic_centi_mb: centi * 75 / 2, bandwidth_centi_mbps: centi, requests: centi / 10 + k % 13 })
}

fn centi(v: u64) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// Parses `yyyy-MM-ddTHH:mm:ss±HH:mm` into (Unix seconds, offset seconds).
fn parse_zoned(s: &str) -> Option<(i64, i64)> {
    if s.len() != 25 || s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let day = timeutil::parse_ymd(&s[..10])?;
    let field = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (h, m, sec) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let offset = timeutil::parse_gmt_offset(&format!("GMT{}", &s[19..]))?;
    if h > 23 || m > 59 || sec > 59 || &s[13..14] != ":" || &s[16..17] != ":" {
        return None;
    }
    Some((day * 86_400 + h * 3600 + m * 60 + sec - offset, offset))
}

fn local_stamp(t: i64, offset: i64) -> String {
    let local = t + offset;
    let secs = local.rem_euclid(86_400);
    format!("{} {:02}:{:02}", timeutil::format_ymd(local.div_euclid(86_400)), secs / 3600, secs % 3600 / 60)
}

/// `POST /api/report/traffic-request`: both auths, the doc's window rules (at most 1 day, not in
/// the future, 183 days back; both dates or neither), at most 1,000 domains, `groupBy` only
/// `domain`, numbers as strings, slices labelled by their end and filtered to `[dateFrom,
/// dateTo]`, the newest one filling. Domains the account does not have get no result.
pub async fn handle_traffic(State(state): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let _in_flight = state.in_flight();
    let faults = state.faults();
    if let Some(injected) = inject(&state, &faults, chaos_failure).await {
        return injected;
    }
    state.record_traffic(CdnRequest::new(&headers, &body));
    if faults.http_500 {
        return (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/html")], "<html>500</html>")
            .into_response();
    }
    if faults.http_446 {
        return error(446, "WPLUS_AccountApiTooFrequence", "Account API access too frequent");
    }
    let now = state.clock.now();
    let account = match authenticate(&state, traffic::PATH, &headers, &body, now) {
        Ok(a) => a,
        Err((status, code, message)) => return error(status, code, message),
    };
    if !header_str(&headers, "accept").is_some_and(|a| a.contains("application/json")) {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/xml")], "<?xml version=\"1.0\"?><result/>")
            .into_response();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "24102023", "Invalid parameters. The body is not JSON.");
    };
    if let Some(code) = faults.failure_code.as_deref().filter(|c| c.len() == 8) {
        return error(if code == "24102500" { 500 } else { 400 }, code, "Simulated failure");
    }
    let date = |k: &str| req.get(k).map(|v| v.as_str().and_then(parse_zoned));
    let ((from, offset), to) = match (date("dateFrom"), date("dateTo")) {
        (None, None) => ((now - 86_400, 8 * 3600), now),
        (Some(Some(f)), Some(Some((t, _)))) => (f, t),
        (Some(_), Some(_)) => return error(400, "24102021", "Date format error."),
        _ => return error(400, "24102006", "dateFrom and dateTo must be given together."),
    };
    if faults.fail_window.as_deref().is_some_and(|w| req["dateFrom"].as_str().is_some_and(|f| f.starts_with(w))) {
        return error(500, "24102500", "We encountered an internal error. Please try again.");
    }
    if from > now || from < now - TRAFFIC_HISTORY_DAYS * 86_400 {
        return error(400, "24102006", "The date specified is invalid: dateFrom is in the future or too old.");
    }
    if to <= from || to - from > TRAFFIC_MAX_WINDOW {
        return error(400, "24102006", "The date specified is invalid: dateTo - dateFrom must be within 1 day.");
    }
    let to = to.min(now);
    let domains: Vec<String> = match req.get("domain") {
        None if account.domains.len() > TRAFFIC_MAX_DOMAINS => {
            return error(400, "24102008", "The account has more domains than one request may ask for.");
        }
        None => account.domains.iter().map(|d| d.0.clone()).collect(),
        Some(Value::Array(list)) if list.len() > TRAFFIC_MAX_DOMAINS => {
            return error(400, "24102008", "param: domain has more than 1000 domains.");
        }
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        Some(_) => return error(400, "24102008", "param: domain is null or invalid."),
    };
    let grouped = match req.get("groupBy") {
        None => false,
        Some(Value::Array(g)) if g.len() == 1 && g[0] == "domain" => true,
        Some(_) => return error(400, "24102023", "Invalid parameters. groupBy allows only \"domain\"."),
    };
    let revisions = state.traffic_revisions();
    let known: Vec<&str> =
        domains.iter().map(String::as_str).filter(|d| account.domains.iter().any(|a| a.0 == *d)).collect();
    let first = from.div_euclid(300) * 300 + if from.rem_euclid(300) == 0 { 0 } else { 300 };
    let ends: Vec<i64> = (0..).map(|i| first + 300 * i).take_while(|e| *e <= to).collect();
    let result = |name: Option<&str>, members: &[&str]| {
        let series: Vec<(i64, SimSlice)> = ends
            .iter()
            .filter_map(|&e| {
                let parts: Vec<SimSlice> =
                    members.iter().filter_map(|d| traffic_slice(d, e, now, &revisions)).collect();
                (!parts.is_empty()).then(|| {
                    (
                        e,
                        SimSlice {
                            traffic_centi_mb: parts.iter().map(|p| p.traffic_centi_mb).sum(),
                            bandwidth_centi_mbps: parts.iter().map(|p| p.bandwidth_centi_mbps).sum(),
                            requests: parts.iter().map(|p| p.requests).sum(),
                        },
                    )
                })
            })
            .collect();
        let peak_bw = series.iter().max_by_key(|(_, s)| s.bandwidth_centi_mbps);
        let peak_rq = series.iter().max_by_key(|(_, s)| s.requests);
        let mut r = json!({
            "totalTraffic": centi(series.iter().map(|(_, s)| s.traffic_centi_mb).sum()),
            "totalRequests": series.iter().map(|(_, s)| s.requests).sum::<u64>().to_string(),
            "peakBandwidth": centi(peak_bw.map_or(0, |(_, s)| s.bandwidth_centi_mbps)),
            "peakBandwidthTimestamp": peak_bw.map(|(e, _)| local_stamp(*e, offset)),
            "peakRequests": peak_rq.map_or(0, |(_, s)| s.requests).to_string(),
            "peakRequestsTimestamp": peak_rq.map(|(e, _)| local_stamp(*e, offset)),
            "dataSeries": series.iter().map(|(e, s)| json!({
                "timestamp": local_stamp(*e, offset),
                "traffic": centi(s.traffic_centi_mb),
                "bandwidth": centi(s.bandwidth_centi_mbps),
                "requests": s.requests.to_string(),
            })).collect::<Vec<_>>(),
        });
        if let Some(name) = name {
            r["domain"] = json!(name);
        }
        r
    };
    let mut results: Vec<Value> =
        if grouped { known.iter().map(|d| result(Some(d), &[d])).collect() } else { vec![result(None, &known)] };
    if faults.traffic_extra_domain {
        if let Some(first) = results.first_mut() {
            first["domain"] = json!("not-asked.example");
        }
    }
    reply(StatusCode::OK, json!({ "result": results }))
}
