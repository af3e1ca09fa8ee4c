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

mod report;

pub use report::{
    REVISED_SECS, SimSlice, TRAFFIC_HISTORY_DAYS, TRAFFIC_MAX_DOMAINS, TRAFFIC_MAX_WINDOW, handle_traffic,
    traffic_slice,
};

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

    pub(super) fn record_traffic(&self, request: CdnRequest) {
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
pub(super) fn chaos_failure() -> Response {
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
# Last month settles an hour after it ends, so that the demo shows its bill soon after a start.
traffic_settle = "1h"
# Below the month-end estimate its contract prices (about €5,000), so the budget alerts fire.
budget_usd = 2500
domains = [
  {{ domain = "static.demo.example", contract = "CT-1001" }},
  {{ domain = "video.demo.example", contract = "CT-1001" }},
]
# A contract in euros: its spend is served in US dollars at [exchange_rates] EUR (the demo's
# rate is in registry::DEMO_RATES), and cdn_billing_currency_info says EUR.
[cdnetworks.pricing]
currency = "EUR"
traffic_per_gb = [{{ up_to_gb = 100000, price = 0.02 }}, {{ price = 0.01 }}]
bandwidth_billing = "p95"
bandwidth_per_mbps = 1.20
overage_per_mbps = 1.50
storage_per_gb_month = 0.02
storage_basis = "peak"
monthly_fee = 100
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
    pub(super) fn new(headers: &HeaderMap, body: &[u8]) -> Self {
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

pub(super) fn reply(status: StatusCode, body: Value) -> Response {
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

pub(super) fn error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    reply(status, json!({"code": code, "message": message}))
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why a request was refused: HTTP status, code, message.
pub(super) type Refusal = (u16, &'static str, &'static str);

/// Checks either auth scheme; returns the account or the refusal.
pub(super) fn authenticate<'a>(
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
        let Some(account) = state.cdnetworks().iter().find(|a| a.username == user) else {
            return denied("Unknown user");
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::providers::cdnetworks::{CdnetworksAccount, CdnetworksAuth};

    #[test]
    fn the_demo_table_configures_the_demo_account() {
        let toml = demo_toml("127.0.0.1:1");
        let config = Config::from_toml_str(&toml, "demo").unwrap();
        let account = config.accounts_of::<CdnetworksAccount>()[0];
        let sim = &demo_accounts()[0];
        let CdnetworksAuth::ApiKey { username, api_key } = &account.auth else { panic!("API-key auth") };
        assert_eq!((username.as_str(), api_key.expose()), (&*sim.username, &*sim.api_key));
        assert_eq!(account.domains.len(), 2);
        let configured: Vec<(&str, &str)> =
            account.domains.iter().map(|d| (d.domain.as_str(), d.contract.as_str())).collect();
        let served: Vec<(&str, &str)> = sim.domains.iter().map(|(d, c, _)| (d.as_str(), c.as_str())).collect();
        assert_eq!(configured, served, "the demo polls the domains the simulator serves");
    }
}
