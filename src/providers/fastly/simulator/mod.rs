//! The Fastly API as the simulator serves it, in the shapes Fastly sends: the `Fastly-Key`
//! check, the month-to-date invoice (its total a string), end-of-month invoices paged by cursor
//! ([`billing`]), the service list paged by `Link` header with every version of every service
//! unless `filter[include_versions]=false` ([`services`]), historical stats whose buckets carry
//! every field of Fastly's `Results` model and the usage sums per region and service
//! ([`stats`]), rate-limit headers on every answer, and 401/404/422/429 on demand. The data is
//! a function of the clock, so tests know the answers.

pub mod billing;
pub mod results;
pub mod services;
pub mod stats;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::providers::common::simulator::{SimState, inject, keep, lock};

use super::{INVOICES_PATH, MTD_PATH, RATELIMIT_REMAINING, RATELIMIT_RESET, SERVICES_PATH, STATS_PATH, USAGE_PATH};

pub use billing::{ITEMS, bill_cents, item_cents, mtd_cents};
pub use stats::{DAY_READY_SECS, KNOWN_REGIONS, RECORDED_REGIONS, SIM_REGIONS, bucket, full_bucket, hour_traffic};

/// A simulated Fastly account.
#[derive(Debug, Clone)]
pub struct FastlySim {
    /// The API token (`Fastly-Key`).
    pub token: String,
    /// The customer id.
    pub customer_id: String,
    /// Its service ids.
    pub services: Vec<String>,
    /// The ids among `services` of Compute services (`type` `wasm`): their requests are counted
    /// in `compute_requests`, with `requests` 0, as Fastly counts them.
    pub compute: Vec<String>,
    /// Versions per service, listed by `/service` unless `filter[include_versions]=false`.
    pub versions: usize,
    /// The most entries per page of `/service` and `/billing/v3/invoices`, whatever is asked.
    pub page_size: usize,
    /// The whole current month's spend: the month-to-date invoice is its share of the month
    /// elapsed.
    pub monthly_usd: f64,
    /// End-of-month invoices exist for this many months before the current one.
    pub past_months: i64,
    /// The invoices' `currency_code`; empty: the field is left out.
    pub currency: String,
    /// A month's end-of-month invoice is listed this long after the month ends (Fastly posts
    /// early in the month after; 0 lists it at once).
    pub post_delay_secs: i64,
}

impl FastlySim {
    /// Whether service `id` is a Compute service.
    pub fn is_compute(&self, id: &str) -> bool {
        self.compute.iter().any(|c| c == id)
    }
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
    /// A stats bucket and a usage entry with a negative bandwidth.
    pub negative_bucket: bool,
    /// Every usage answer names this many more services (unknown ids, in `usa`).
    pub extra_services: usize,
    /// Every usage answer names this many more regions (with no traffic).
    pub extra_regions: usize,
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
    /// Body bytes of every answer sent.
    answer_bytes: AtomicU64,
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

    /// The body bytes of every Fastly answer sent so far.
    pub fn fastly_answer_bytes(&self) -> u64 {
        self.part::<Part>().map_or(0, |p| p.answer_bytes.load(Ordering::Relaxed))
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
        .route(MTD_PATH, get(billing::handle_mtd))
        .route(INVOICES_PATH, get(billing::handle_invoices))
        .route(STATS_PATH, get(stats::handle_stats))
        .route(USAGE_PATH, get(stats::handle_usage_by_service))
        .route(SERVICES_PATH, get(services::handle_services))
}

/// The accounts `demo` and `simulate` serve: a delivery service and a Compute one.
pub fn demo_accounts() -> Vec<FastlySim> {
    vec![FastlySim {
        token: "demo-fastly-token".into(),
        customer_id: "7i6HN3TK9wS159v2gPAZ8A".into(),
        services: vec!["SU1Z0isxPaozGVKXdv0eY".into(), "AP2Y1jtyQbpaHWLYew1fZ".into()],
        compute: vec!["AP2Y1jtyQbpaHWLYew1fZ".into()],
        versions: 12,
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
    let mut out = format!(
        "Fastly simulator at http://{addr} ({MTD_PATH}, {INVOICES_PATH}, {STATS_PATH}, {USAGE_PATH}, {SERVICES_PATH})\n"
    );
    for a in state.fastly() {
        out.push_str(&format!(
            "  account: api_token = {:?}, services = {:?} (Compute: {:?})\n",
            a.token, a.services, a.compute
        ));
    }
    out
}

/// The answer to send, with the rate-limit headers Fastly sends.
pub(crate) fn reply(
    state: &SimState,
    status: StatusCode,
    body: Value,
    extra: Vec<(header::HeaderName, String)>,
) -> Response {
    let now = state.clock.now();
    let remaining = if status == StatusCode::TOO_MANY_REQUESTS { "0" } else { "999" };
    let reset = ((now.div_euclid(3600) + 1) * 3600).to_string();
    let mut text = body.to_string();
    let pad = state.fastly_faults().pad_bytes;
    if pad > 0 && text.ends_with('}') {
        text.pop();
        text.push_str(&format!(",\"padding\":\"{}\"}}", "x".repeat(pad)));
    }
    if let Some(p) = state.part::<Part>() {
        p.answer_bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
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
pub(crate) async fn admit<'a>(
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
}
