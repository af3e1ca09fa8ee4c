//! The bunny.net Core API as the simulator serves it, under [`BASE_PATH`]: the `AccessKey`
//! check (401 with an empty body), listings as the `Items` envelope for `page` ≥ 1 and as a bare
//! array without `page` (or with the `bare_envelope` fault), charts keyed with and without `Z`,
//! a provisional day that grows, 429 and 5xx on demand, and the sensitive fields of the real
//! answers ([`SENSITIVE`]) so that tests can prove they never leak. Deterministic: every figure
//! is a function of the account and the state's clock (see [`data`]).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::providers::common::simulator::{Faults, SimState, inject, keep, lock};
use crate::timeutil;

pub mod data;
pub mod spec;
mod statistics;

/// Where the simulator serves the API, under its address.
pub const BASE_PATH: &str = "/bunny";

/// Values of sensitive fields the simulator puts in its answers (payment methods, payer and
/// payment ids, document URLs, zone keys, certificates, storage passwords): none may reach an
/// output of the exporter. `LAST_FOUR` is kept apart, being a short number.
pub const SENSITIVE: &[&str] = &[
    "tok_SIMx9f3kq2",
    "payer-sim@billing.invalid",
    "https://sim.invalid/card-visa.png",
    "pm_SIMauto77c1",
    "SIMVISA-CARDTYPE",
    "pay_SIM3c9e1a",
    "Sim Payer GmbH",
    "https://sim-docs.invalid/invoice/SIM-INV-0001.pdf",
    "https://sim-docs.invalid/detailed/SIM-INV-0001.pdf",
    "zsk-SIM-51ad",
    "awsk-SIM-0b2e",
    "awss-SIM-8c4d",
    "lft-SIM-6a7b",
    "-----BEGIN CERTIFICATE-----SIMcert",
    "SIM-PRIVATE-KEY-9c",
    "uid-SIM-3f0e",
    "sz-pass-SIM-7e21",
    "sz-ro-SIM-3d4f",
];

/// The last four digits of the simulated saved card (a token of its own in any output).
pub const LAST_FOUR: &str = "4917";

/// A simulated pull zone.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPullZone {
    /// `Id`.
    pub id: i64,
    /// `Name`.
    pub name: String,
    /// Bytes served on a full day, before the day's factor (1.0 to 1.4).
    pub daily_bytes: u64,
    /// Requests served on a full day, before the day's factor (1.0 to 1.6).
    pub daily_requests: u64,
    /// The price of its traffic, USD per GB (10⁹ bytes).
    pub usd_per_gb: f64,
    /// Its `BandwidthUsedChart` and `RequestsServedChart` come back null even when asked for
    /// (the spec makes every chart nullable).
    pub null_charts: bool,
}

/// A simulated storage zone.
#[derive(Debug, Clone, PartialEq)]
pub struct SimStorageZone {
    /// `Id`.
    pub id: i64,
    /// `Name`.
    pub name: String,
    /// `StorageUsed`, bytes.
    pub bytes: u64,
    /// `FilesStored`.
    pub files: u64,
    /// `Deleted` (listed only with `includeDeleted=true`).
    pub deleted: bool,
}

/// A simulated bunny.net account.
#[derive(Debug, Clone, PartialEq)]
pub struct SimAccount {
    /// The account API key (`AccessKey`).
    pub api_key: String,
    /// What was paid in: `Balance` is this less `ThisMonthCharges`.
    pub deposit_usd: f64,
    /// Its pull zones.
    pub pull_zones: Vec<SimPullZone>,
    /// Its storage zones.
    pub storage_zones: Vec<SimStorageZone>,
    /// Other `MonthlyCharges*` fields, as (field, USD for the whole month), accrued by the
    /// month's elapsed share.
    pub fixed_charges: Vec<(String, f64)>,
}

/// One request received, for tests: the path under [`BASE_PATH`], the query, and whether its
/// `AccessKey` was an account's.
#[derive(Debug, Clone, PartialEq)]
pub struct BunnyRequest {
    /// `/billing`, `/pullzone`, …
    pub path: String,
    /// The query parameters.
    pub query: HashMap<String, String>,
    /// Whether the key was known.
    pub authorized: bool,
}

/// The simulator's bunny.net part: its accounts and the requests it received.
#[derive(Debug, Default)]
pub struct Part {
    accounts: Vec<SimAccount>,
    requests: Mutex<Vec<BunnyRequest>>,
}

/// The part of a [`SimState`] that serves these accounts.
pub fn part(accounts: Vec<SimAccount>) -> Box<dyn Any + Send + Sync> {
    Box::new(Part { accounts, requests: Mutex::default() })
}

impl SimState {
    /// The bunny.net accounts the simulator knows.
    pub fn bunny(&self) -> &[SimAccount] {
        self.part::<Part>().map_or(&[], |p| &p.accounts)
    }

    /// The bunny.net requests received so far (the most recent
    /// [`KEEP_REQUESTS`](crate::providers::common::simulator::KEEP_REQUESTS)).
    pub fn bunny_requests(&self) -> Vec<BunnyRequest> {
        self.part::<Part>().map(|p| lock(&p.requests).clone()).unwrap_or_default()
    }

    fn record_bunny(&self, request: BunnyRequest) {
        if let Some(p) = self.part::<Part>() {
            keep(&p.requests, request);
        }
    }
}

/// The routes of the bunny.net API, under [`BASE_PATH`].
pub fn routes(router: Router<Arc<SimState>>) -> Router<Arc<SimState>> {
    router
        .route(&format!("{BASE_PATH}/billing"), get(handle))
        .route(&format!("{BASE_PATH}/billing/summary"), get(handle))
        .route(&format!("{BASE_PATH}/pullzone"), get(handle))
        .route(&format!("{BASE_PATH}/statistics"), get(handle))
        .route(&format!("{BASE_PATH}/storagezone"), get(handle))
}

fn empty(status: StatusCode) -> Response {
    status.into_response()
}

pub(crate) fn reply(body: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// A 400 with the documented `ApiErrorData` body.
pub(crate) fn bad_request(key: &str, field: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"ErrorKey": key, "Field": field, "Message": message}).to_string(),
    )
        .into_response()
}

fn chaos_failure() -> Response {
    [empty(StatusCode::UNAUTHORIZED), empty(StatusCode::TOO_MANY_REQUESTS), empty(StatusCode::INTERNAL_SERVER_ERROR)]
        .into_iter()
        .nth(fastrand::usize(0..3))
        .unwrap_or_else(|| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

/// Every route: faults, the key, then the endpoint.
async fn handle(
    State(state): State<Arc<SimState>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let path = uri.path().strip_prefix(BASE_PATH).unwrap_or_default().to_owned();
    let faults = state.faults();
    if let Some(injected) = inject(&state, &faults, chaos_failure).await {
        return injected;
    }
    let key = headers.get("accesskey").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let account = state.bunny().iter().find(|a| a.api_key == key);
    state.record_bunny(BunnyRequest { path: path.clone(), query: query.clone(), authorized: account.is_some() });
    if let Some(failure) = fault(&faults, &path, &query) {
        return failure;
    }
    // The CLI's middleware: only 400 has a JSON body; 401, 404 and 500 are empty.
    let Some(account) = account else { return empty(StatusCode::UNAUTHORIZED) };
    let now = state.clock.now();
    match path.as_str() {
        "/billing" => reply(billing(account, now)),
        "/billing/summary" => reply(summary(account, now)),
        "/pullzone" => listing(&faults, &query, account.pull_zones.iter().map(pull_zone).collect()),
        "/storagezone" => {
            let deleted = query.get("includeDeleted").is_some_and(|v| v == "true");
            let zones = account.storage_zones.iter().filter(|z| deleted || !z.deleted).map(storage_zone).collect();
            listing(&faults, &query, zones)
        }
        "/statistics" => statistics::statistics(account, &query, now),
        _ => empty(StatusCode::NOT_FOUND),
    }
}

/// `failure_code` as an HTTP status (`"429"`, `"500"`, `"401"`, with an empty body) and
/// `http_500`, limited to one path by `only_command` (`"/billing"`); `fail_window` fails
/// `/statistics` for the window starting on that date.
fn fault(faults: &Faults, path: &str, query: &HashMap<String, String>) -> Option<Response> {
    if faults.only_command.as_deref().is_some_and(|only| only != path) {
        return None;
    }
    if faults.http_500 {
        return Some(empty(StatusCode::INTERNAL_SERVER_ERROR));
    }
    if let Some(code) = faults.failure_code.as_deref().filter(|c| c.len() == 3).and_then(|c| c.parse::<u16>().ok()) {
        return Some(empty(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)));
    }
    if let (Some(window), "/statistics") = (faults.fail_window.as_deref(), path)
        && query.get("dateFrom").is_some_and(|f| f.starts_with(window))
    {
        return Some(empty(StatusCode::INTERNAL_SERVER_ERROR));
    }
    None
}

fn billing(a: &SimAccount, now: i64) -> Value {
    let charges = data::charges(a, now);
    let this_month = data::this_month(a, now);
    let mut b = Map::new();
    b.insert("Balance".into(), json!(a.deposit_usd - this_month));
    b.insert("ThisMonthCharges".into(), json!(this_month));
    b.insert("LastRechargeBalance".into(), json!(a.deposit_usd));
    b.insert("BillingEnabled".into(), json!(true));
    b.insert("MinimumMonthlyCommit".into(), json!(1.0));
    b.insert("VATRate".into(), json!(0));
    for (k, v) in &charges {
        b.insert(k.clone(), json!(v));
    }
    b.insert("MonthlyDBWrites".into(), Value::Null);
    b.insert("MonthlyDBReads".into(), json!({"Usage": 0.0, "TotalUnits": 0}));
    let bytes: u64 = a.pull_zones.iter().map(|z| data::month_bytes(z, now)).sum();
    b.insert("MonthlyBandwidthUsed".into(), json!(bytes));
    b.insert("MonthlyScriptingCpuTime".into(), json!(0));
    // The history chart: snapshot times without Z, whole dollars.
    let chart: Map<String, Value> = data::past_months(now, 3)
        .into_iter()
        .map(|first| (format!("{}T00:00:00", timeutil::format_ymd(first)), json!(data::monthly_bill(first).round())))
        .collect();
    b.insert("BillingHistoryChart".into(), Value::Object(chart));
    let record = |r: Value| spec::filled(spec::BILLING_RECORD, r);
    let mut records = vec![record(json!({
        "Id": 900_001, "PaymentId": "pay_SIM3c9e1a", "Amount": a.deposit_usd, "Payer": "Sim Payer GmbH",
        "Timestamp": format!("{}T09:30:00Z", timeutil::format_ymd(data::month_first_day(now) - 40)), "Type": 2,
        "InvoiceAvailable": true,
        "DocumentDownloadUrl": "https://sim-docs.invalid/invoice/SIM-INV-0001.pdf",
        "DetailedDocumentDownloadUrl": "https://sim-docs.invalid/detailed/SIM-INV-0001.pdf",
    }))];
    let mut next = data::month_first_day(now);
    for (i, first) in data::past_months(now, 12).into_iter().enumerate() {
        let at = data::booked_at(next);
        next = first;
        if at > now {
            continue;
        }
        let stamp = timeutil::format_ymd(at.div_euclid(86_400));
        // Both timestamp forms, as the API's dates are seen with and without Z.
        let timestamp = if i % 2 == 0 { format!("{stamp}T00:05:12Z") } else { format!("{stamp}T00:05:12") };
        records.push(record(json!({
            "Id": 900_100 + i, "PaymentId": null, "Amount": data::monthly_bill(first), "Payer": null,
            "Timestamp": timestamp, "Type": 3, "InvoiceAvailable": true,
            "DocumentDownloadUrl": "https://sim-docs.invalid/invoice/SIM-INV-0001.pdf", "DetailedDocumentDownloadUrl": null,
        })));
    }
    b.insert("BillingRecords".into(), Value::Array(records));
    b.insert(
        "SavedPaymentMethods".into(),
        json!([{"Token": "tok_SIMx9f3kq2", "ImageUrl": "https://sim.invalid/card-visa.png",
                "ExpirationDate": "11/29", "LastFour": LAST_FOUR, "Email": "payer-sim@billing.invalid"}]),
    );
    b.insert("AutomaticPaymentIdentifier".into(), json!("pm_SIMauto77c1"));
    b.insert("AutomaticPaymentCardType".into(), json!("SIMVISA-CARDTYPE"));
    b.insert("AutomaticPaymentImageUrl".into(), json!("https://sim.invalid/card-visa.png"));
    b.insert("AutomaticPaymentAmount".into(), json!(50));
    b.insert("AutomaticRechargeTreshold".into(), json!(10));
    b.insert("AutomaticRechargeEnabled".into(), json!(true));
    b.insert("AutomaticPaymentFailureCount".into(), json!(0));
    spec::filled(spec::BILLING, Value::Object(b))
}

fn summary(a: &SimAccount, now: i64) -> Value {
    Value::Array(
        a.pull_zones
            .iter()
            .map(|z| {
                spec::filled(
                    spec::BILLING_SUMMARY_ITEM,
                    json!({"PullZoneId": z.id, "MonthlyUsage": data::month_cost(z, now),
                           "MonthlyBandwidthUsed": data::month_bytes(z, now)}),
                )
            })
            .collect(),
    )
}

fn pull_zone(z: &SimPullZone) -> Value {
    let set = json!({
        "Id": z.id, "Name": z.name, "Enabled": true, "Suspended": false,
        "MonthlyBandwidthLimit": 0, "Type": 0, "OriginType": 0, "StorageZoneId": 0, "VideoLibraryId": 0,
        "ZoneSecurityKey": "zsk-SIM-51ad", "AWSSigningKey": "awsk-SIM-0b2e", "AWSSigningSecret": "awss-SIM-8c4d",
        "LogForwardingToken": "lft-SIM-6a7b", "UserId": "uid-SIM-3f0e",
        "Hostnames": [{"Id": z.id * 10, "Value": format!("{}.b-cdn.net", z.name), "ForceSSL": true,
            "IsSystemHostname": true, "HasCertificate": true,
            "Certificate": "-----BEGIN CERTIFICATE-----SIMcert", "CertificateKey": "SIM-PRIVATE-KEY-9c"}],
    });
    spec::filled(spec::PULL_ZONE, set)
}

fn storage_zone(z: &SimStorageZone) -> Value {
    let set = json!({
        "Id": z.id, "Name": z.name, "Deleted": z.deleted, "DateModified": "2026-11-20T08:00:00",
        "StorageUsed": z.bytes, "FilesStored": z.files, "Region": "DE", "ReplicationRegions": ["NY"],
        "ZoneTier": 0, "StorageZoneType": 0, "Password": "sz-pass-SIM-7e21", "ReadOnlyPassword": "sz-ro-SIM-3d4f",
        "PullZones": [{"Id": 1, "Name": "nested", "ZoneSecurityKey": "zsk-SIM-51ad"}],
    });
    spec::filled(spec::STORAGE_ZONE, set)
}

/// A listing: the `Items` envelope for `page` ≥ 1, a bare array without `page` (or `page=0`,
/// or the `bare_envelope` fault), `perPage` from 5 to 1000.
fn listing(faults: &Faults, query: &HashMap<String, String>, items: Vec<Value>) -> Response {
    let page = match query.get("page").map(|p| p.parse::<usize>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => return bad_request("validation.page", "page", "The page is not a number."),
    };
    if page == 0 || faults.bare_envelope {
        return reply(Value::Array(items));
    }
    let per_page = match query.get("perPage").map(|p| p.parse::<usize>()) {
        None => 1000,
        Some(Ok(n)) if (5..=1000).contains(&n) => n,
        _ => return bad_request("validation.perPage", "perPage", "perPage must be from 5 to 1000."),
    };
    let total = items.len();
    let shown: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    reply(json!({"Items": shown, "CurrentPage": page, "TotalItems": total, "HasMoreItems": page * per_page < total}))
}

/// The account `demo` and `simulate` serve: two pull zones, a storage zone, a deposit that runs
/// out before the month does at its pace of spend.
pub fn demo_accounts() -> Vec<SimAccount> {
    vec![SimAccount {
        api_key: "demo-bunny-api-key".into(),
        deposit_usd: 350.0,
        pull_zones: vec![
            SimPullZone {
                id: 1001,
                name: "demo-assets".into(),
                daily_bytes: 300_000_000_000,
                daily_requests: 2_500_000,
                usd_per_gb: 0.01,
                null_charts: false,
            },
            SimPullZone {
                id: 1002,
                name: "demo-video".into(),
                daily_bytes: 1_500_000_000_000,
                daily_requests: 400_000,
                usd_per_gb: 0.005,
                null_charts: false,
            },
        ],
        storage_zones: vec![SimStorageZone {
            id: 2001,
            name: "demo-storage".into(),
            bytes: 250_000_000_000,
            files: 48_210,
            deleted: false,
        }],
        fixed_charges: vec![("MonthlyChargesDNS".into(), 2.0), ("MonthlyChargesOptimizer".into(), 9.5)],
    }]
}

/// The demo configuration's `[[bunny]]` table, pointing at a simulator at `addr`. The budget
/// ($300) is below the month's pace of spend (about $405), so the forecast alerts fire.
pub fn demo_toml(addr: &str) -> String {
    format!(
        r#"
[[bunny]]
name = "demo"
base_url = "http://{addr}{BASE_PATH}"
api_key = "demo-bunny-api-key"
billing_interval = "30s"
stats_interval = "30s"
storage_interval = "30s"
timeout = "5s"
# Below the month's pace of spend (about $405), so the forecast alerts fire in the demo.
budget_usd = 300
"#
    )
}

/// What `simulate` prints about this provider: where it listens and its accounts.
pub fn describe(state: &SimState, addr: &str) -> String {
    let mut out = format!("bunny.net simulator at http://{addr}{BASE_PATH}\n");
    for a in state.bunny() {
        out.push_str(&format!("  account: api_key = {:?}\n", a.api_key));
        for z in &a.pull_zones {
            out.push_str(&format!("    pull zone {} = {:?}\n", z.id, z.name));
        }
        for z in &a.storage_zones {
            out.push_str(&format!("    storage zone {} = {:?}\n", z.id, z.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::providers::bunny::BunnyAccount;

    #[test]
    fn the_demo_table_configures_the_demo_account() {
        let config = Config::from_toml_str(&demo_toml("127.0.0.1:1"), "demo").unwrap();
        let account = config.accounts_of::<BunnyAccount>()[0];
        assert_eq!(account.api_key.expose(), demo_accounts()[0].api_key);
        assert_eq!(account.budget_usd, Some(300.0));
    }

    #[test]
    fn the_demo_forecast_is_over_its_budget_and_its_balance_runs_out() {
        let a = &demo_accounts()[0];
        // Any time of a 30-day month: the pace of spend is about $405 a month.
        let start = 20_788 * 86_400; // 2026-12-01
        for day in [3, 10, 20, 29] {
            let now = start + day * 86_400 + 43_200;
            let forecast = data::this_month(a, now) / data::month_elapsed(now);
            assert!((350.0..460.0).contains(&forecast), "day {day}: forecast {forecast}");
            assert!(forecast > 300.0, "over the demo's budget");
        }
        let end = start + 31 * 86_400 - 60;
        assert!(a.deposit_usd - data::this_month(a, end) < 0.0, "the deposit runs out before the month does");
    }

    #[test]
    fn the_provisional_day_grows_and_past_days_are_final() {
        let z = &demo_accounts()[0].pull_zones[0];
        let day = 20_790;
        let morning = day * 86_400 + 6 * 3600;
        let evening = day * 86_400 + 18 * 3600;
        assert!(data::day_requests(z, day, morning) < data::day_requests(z, day, evening));
        assert_eq!(data::day_requests(z, day, morning) * 3, data::day_requests(z, day, evening));
        assert_eq!(data::day_bytes(z, day - 1, morning), data::day_bytes(z, day - 1, evening + 86_400 * 9));
        assert_eq!(data::day_bytes(z, day + 1, evening), 0, "no bucket for a day to come");
    }
}
