//! The AWS APIs the CloudFront provider calls, as the simulator serves them on one endpoint
//! under [`BASE_PATH`] (the exporter's `endpoint_url`): Cost Explorer ([`ce`]), CloudWatch
//! ([`cloudwatch`]), CloudFront's distribution list ([`cloudfront`]) and STS ([`sts`]), each in
//! its own wire protocol ([`wire`]), every signed call checked as AWS checks SigV4 ([`auth`]).
//! Deterministic: every figure is a function of the account and the state's clock ([`data`]).
//! The sensitive values it serves are listed in [`SENSITIVE`], so that tests can prove that
//! none reaches an output of the exporter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::providers::common::simulator::{Faults, KEEP_REQUESTS, SimState, inject, keep, lock};

pub mod auth;
pub mod ce;
pub mod cloudfront;
pub mod cloudwatch;
pub mod data;
pub mod sts;
pub mod wire;

#[cfg(test)]
mod tests;

use wire::{Api, AwsError};

/// Where the simulator serves the AWS APIs, under its address.
pub const BASE_PATH: &str = "/aws";

/// The demo account's access key id.
pub const DEMO_ACCESS_KEY_ID: &str = "AKIASIMDEMO000000001";

/// The demo account's secret access key.
pub const DEMO_SECRET_ACCESS_KEY: &str = "simDemoSecretKey/cdnUsageExporter0000001";

/// The demo role's external id.
pub const DEMO_EXTERNAL_ID: &str = "demo-external-id";

/// The demo web-identity role's token (what a projected service-account token file holds).
pub const DEMO_WEB_IDENTITY_TOKEN: &str = "sim-web-identity-token";

/// The demo distributions' `Comment` (sensitive in CloudFront's model).
pub const DEMO_COMMENT: &str = "SIM-COMMENT marketing site, owner payer-sim@billing.invalid";

/// Values the simulator serves or accepts that no output of the exporter may show: the demo
/// secret key, the prefixes of every issued secret and session token, the web identity token
/// and a distribution's `Comment`.
pub const SENSITIVE: &[&str] =
    &[DEMO_SECRET_ACCESS_KEY, sts::SECRET_PREFIX, sts::TOKEN_PREFIX, DEMO_WEB_IDENTITY_TOKEN, DEMO_COMMENT];

/// An IAM user's access key.
#[derive(Clone, PartialEq)]
pub struct SimKey {
    /// `AKIA…`.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

impl std::fmt::Debug for SimKey {
    /// The key id only: a printed account or state shows no secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimKey").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// An IAM role the account's keys (or a web identity) may assume.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimRole {
    /// `arn:aws:iam::<account>:role/<name>`.
    pub arn: String,
    /// The external id its trust policy requires, if any.
    pub external_id: Option<String>,
    /// The access keys its trust policy lets call `AssumeRole`.
    pub trusted_access_keys: Vec<String>,
    /// The token `AssumeRoleWithWebIdentity` must carry, if the role trusts a web identity.
    pub web_identity_token: Option<String>,
}

/// A billed CloudFront usage type (Cost Explorer's `USAGE_TYPE`).
#[derive(Debug, Clone, PartialEq)]
pub struct SimUsageType {
    /// `US-DataTransfer-Out-Bytes`, …
    pub name: String,
    /// USD on a nominal day, before the day's factor ([`data::factor`]).
    pub usd_per_day: f64,
    /// Units (`UsageQuantity`) on a nominal day, before the day's factor.
    pub units_per_day: f64,
    /// The unit of `UsageQuantity` (`GB`, `Requests`).
    pub unit: String,
}

/// A CloudFront distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDistribution {
    /// `E2SIMDEMO1ABCD`.
    pub id: String,
    /// `d111111abcdef8.cloudfront.net`.
    pub domain_name: String,
    /// Its CNAMEs.
    pub aliases: Vec<String>,
    /// `Comment` (sensitive in the model).
    pub comment: String,
    /// `Enabled`; a disabled distribution serves nothing (no CloudWatch data).
    pub enabled: bool,
    /// `Staging` (a continuous-deployment copy).
    pub staging: bool,
    /// `BytesDownloaded` on a nominal day.
    pub daily_bytes_downloaded: u64,
    /// `BytesUploaded` on a nominal day.
    pub daily_bytes_uploaded: u64,
    /// `Requests` on a nominal day.
    pub daily_requests: u64,
}

/// A simulated AWS account.
#[derive(Debug, Clone, PartialEq)]
pub struct SimAccount {
    /// The 12-digit account id of its ARNs.
    pub account_id: String,
    /// Its IAM users' access keys.
    pub keys: Vec<SimKey>,
    /// Its roles.
    pub roles: Vec<SimRole>,
    /// Its CloudFront usage types.
    pub usage_types: Vec<SimUsageType>,
    /// What the account's other services (S3, EC2) cost on a nominal day: a Cost Explorer
    /// query without the `SERVICE` filter counts it in.
    pub other_services_usd_per_day: f64,
    /// Its distributions, in the order they are listed.
    pub distributions: Vec<SimDistribution>,
    /// The Unix day number of its first cost (and traffic): nothing before.
    pub history_from: i64,
    /// The most Cost Explorer groups a page carries.
    pub page_groups: usize,
    /// The most distributions a `ListDistributions` page carries (whatever `MaxItems` allows).
    pub list_page: usize,
}

impl Default for SimAccount {
    /// An account `123456789012` with nothing in it, history since 1970, 100 groups and 100
    /// distributions a page.
    fn default() -> Self {
        SimAccount {
            account_id: "123456789012".into(),
            keys: Vec::new(),
            roles: Vec::new(),
            usage_types: Vec::new(),
            other_services_usd_per_day: 0.0,
            distributions: Vec::new(),
            history_from: 0,
            page_groups: 100,
            list_page: 100,
        }
    }
}

/// One request received, for tests. Holds no secret: the `WebIdentityToken` of a body is
/// redacted, and keys are named only by their id.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsRequest {
    /// The signing name of the API: `ce`, `monitoring`, `cloudfront`, `sts`.
    pub service: String,
    /// `GetCostAndUsage`, `GetMetricData`, `ListDistributions`, `AssumeRole`, …
    pub operation: String,
    /// The access key named by the signature, if any.
    pub access_key_id: Option<String>,
    /// Whether the request passed authentication (always for the unsigned web identity call).
    pub authorized: bool,
    /// The body (or for a GET, the query string).
    pub body: String,
}

/// The simulator's AWS part: its accounts, the requests it received, the sessions STS issued.
#[derive(Debug, Default)]
pub struct Part {
    accounts: Vec<SimAccount>,
    requests: Mutex<Vec<AwsRequest>>,
    sessions: Mutex<Vec<sts::Session>>,
    /// The faults last seen, and how many throttle answers `aws_throttle_next` has left.
    throttle: Mutex<(Option<Faults>, u32)>,
    serial: AtomicU64,
    signing_clock: SigningClock,
}

/// The clock the 5-minute window of a signature's `X-Amz-Date` is measured against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SigningClock {
    /// The state's clock, as every figure is (a manual clock in tests).
    #[default]
    State,
    /// The system clock: for a client that signs with the wall clock (as the exporter does)
    /// while the figures follow a manual clock.
    System,
}

impl Part {
    /// The session of a temporary access key.
    fn session(&self, key: &str) -> Option<sts::Session> {
        lock(&self.sessions).iter().find(|s| s.access_key_id == key).cloned()
    }

    fn remember(&self, session: sts::Session, now: i64) {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|s| s.expires > now);
        if sessions.len() >= KEEP_REQUESTS {
            sessions.remove(0);
        }
        sessions.push(session);
    }

    /// Whether this request gets the throttle answer (`aws_throttle`, `aws_throttle_next`).
    fn throttled(&self, faults: &Faults) -> bool {
        if faults.aws_throttle {
            return true;
        }
        let mut t = lock(&self.throttle);
        if t.0.as_ref() != Some(faults) {
            *t = (Some(faults.clone()), faults.aws_throttle_next);
        }
        if t.1 > 0 {
            t.1 -= 1;
            true
        } else {
            false
        }
    }
}

/// The part of a [`SimState`] that serves these accounts, measuring signatures' age by the
/// state's clock.
pub fn part(accounts: Vec<SimAccount>) -> crate::providers::registry::SimPart {
    part_with(accounts, SigningClock::State)
}

/// The part of a [`SimState`] that serves these accounts, measuring signatures' age by
/// `signing_clock`.
pub fn part_with(accounts: Vec<SimAccount>, signing_clock: SigningClock) -> crate::providers::registry::SimPart {
    Box::new(Part { accounts, signing_clock, ..Part::default() })
}

impl SimState {
    /// The AWS accounts the simulator knows.
    pub fn cloudfront(&self) -> &[SimAccount] {
        self.part::<Part>().map_or(&[], |p| &p.accounts)
    }

    /// The AWS requests received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn cloudfront_requests(&self) -> Vec<AwsRequest> {
        self.part::<Part>().map(|p| lock(&p.requests).clone()).unwrap_or_default()
    }
}

/// The routes of the AWS APIs, under [`BASE_PATH`]: `POST /aws/` for Cost Explorer,
/// CloudWatch and STS, `GET /aws/2020-05-31/distribution` for CloudFront.
pub fn routes(router: crate::providers::registry::SimRouter) -> crate::providers::registry::SimRouter {
    router
        .route(BASE_PATH, post(handle))
        .route(&format!("{BASE_PATH}/"), post(handle))
        .route(&format!("{BASE_PATH}/2020-05-31/distribution"), get(handle))
}

/// One of AWS's failures, for `chaos`: a Cost Explorer throttle, a CloudFront throttle, or a
/// 503 `ServiceUnavailable`.
fn chaos_failure() -> Response {
    match fastrand::u8(0..3) {
        0 => AwsError::throttle(Api::CostExplorer).render(Api::CostExplorer),
        1 => AwsError::throttle(Api::CloudFront).render(Api::CloudFront),
        _ => AwsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service is unavailable. Try again later.",
        )
        .render(Api::Sts),
    }
}

/// What a request is: its API, its operation, and its form (STS) or query (CloudFront) pairs.
type Call = (Api, String, Vec<(String, String)>);

fn unknown_operation(api: Api, message: String) -> (Api, AwsError) {
    (api, AwsError::new(StatusCode::BAD_REQUEST, "UnknownOperationException", message))
}

/// Tells the API and operation of a request by its path, `X-Amz-Target` or form `Action`.
fn identify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Call, (Api, AwsError)> {
    let pairs = |s: &[u8]| serde_urlencoded::from_bytes::<Vec<(String, String)>>(s).unwrap_or_default();
    if method == Method::GET {
        return Ok((Api::CloudFront, "ListDistributions".into(), pairs(uri.query().unwrap_or_default().as_bytes())));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = header("content-type");
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (api, wanted, op) = if let Some(op) = target.strip_prefix("AWSInsightsIndexService.") {
            (Api::CostExplorer, wire::JSON_1_1, op)
        } else if let Some(op) = target.strip_prefix("GraniteServiceVersion20100801.") {
            (Api::CloudWatch, wire::JSON_1_0, op)
        } else {
            return Err(unknown_operation(Api::CostExplorer, format!("Unknown target: {target}")));
        };
        let known = matches!(
            (api, op),
            (Api::CostExplorer, "GetCostAndUsage" | "GetCostForecast") | (Api::CloudWatch, "GetMetricData")
        );
        if !known {
            return Err(unknown_operation(api, format!("The simulator does not serve {target}")));
        }
        if !content_type.starts_with(wanted) {
            return Err(unknown_operation(api, format!("{target} needs Content-Type: {wanted}, not {content_type:?}")));
        }
        return Ok((api, op.into(), Vec::new()));
    }
    let form = pairs(body);
    let action = form.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
    match action.as_str() {
        "AssumeRole" | "AssumeRoleWithWebIdentity" => Ok((Api::Sts, action, form)),
        _ => Err((
            Api::Sts,
            AwsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("Could not find operation {action:?} for version 2011-06-15"),
            ),
        )),
    }
}

/// The body as the log keeps it: the web identity token redacted.
fn logged_body(api: Api, uri: &Uri, form: &[(String, String)], body: &[u8]) -> String {
    match api {
        Api::CloudFront => uri.query().unwrap_or_default().to_owned(),
        Api::Sts => {
            let shown: Vec<(&str, &str)> = form
                .iter()
                .map(|(k, v)| (k.as_str(), if k == "WebIdentityToken" { "[redacted]" } else { v.as_str() }))
                .collect();
            serde_urlencoded::to_string(shown).unwrap_or_default()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Every route: chaos and latency, the API, SigV4, the log, the faults, the operation.
async fn handle(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = state.in_flight();
    let faults = state.faults();
    if let Some(injected) = inject(&state, &faults, chaos_failure).await {
        return injected;
    }
    let Some(part) = state.part::<Part>() else { return StatusCode::NOT_FOUND.into_response() };
    let (api, operation, form) = match identify(&method, &uri, &headers, &body) {
        Ok(call) => call,
        Err((api, e)) => return e.render(api),
    };
    let now = state.clock.now();
    let accounts = state.cloudfront();
    let unsigned = operation == "AssumeRoleWithWebIdentity";
    let caller = if unsigned {
        Ok(None)
    } else {
        let signed_now = match part.signing_clock {
            SigningClock::State => now,
            SigningClock::System => crate::timeutil::now_unix(),
        };
        let request = auth::Received { method: &method, uri: &uri, headers: &headers, body: &body };
        auth::verify(accounts, part, api.signing_name(), &request, now, signed_now).map(Some)
    };
    keep(
        &part.requests,
        AwsRequest {
            service: api.signing_name().into(),
            operation: operation.clone(),
            access_key_id: if unsigned { None } else { auth::access_key_of(&headers) },
            authorized: caller.is_ok(),
            body: logged_body(api, &uri, &form, &body),
        },
    );
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return e.render(api),
    };
    if faults.http_500 && faults.only_command.as_deref().is_none_or(|only| only == operation) {
        return AwsError::internal().render(api);
    }
    if part.throttled(&faults) {
        return AwsError::throttle(api).render(api);
    }
    match serve(part, accounts, api, &operation, caller, &form, &body, now) {
        Ok(r) => r,
        Err(e) => e.render(api),
    }
}

/// The operation itself, once the caller is known.
#[allow(clippy::too_many_arguments)]
fn serve(
    part: &Part,
    accounts: &[SimAccount],
    api: Api,
    operation: &str,
    caller: Option<auth::Caller>,
    form: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<Response, AwsError> {
    let json = || -> Result<Value, AwsError> {
        serde_json::from_slice(body)
            .map_err(|e| AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", e.to_string()))
    };
    let account = caller.as_ref().and_then(|c| accounts.get(c.account));
    let ok_xml = |xml: String| wire::xml_response(StatusCode::OK, xml);
    match (api, operation, account) {
        (Api::CostExplorer, "GetCostAndUsage", Some(a)) => {
            Ok(wire::json_response(StatusCode::OK, wire::JSON_1_1, &ce::get_cost_and_usage(a, &json()?, now)?))
        }
        (Api::CostExplorer, "GetCostForecast", Some(a)) => {
            Ok(wire::json_response(StatusCode::OK, wire::JSON_1_1, &ce::get_cost_forecast(a, &json()?, now)?))
        }
        (Api::CloudWatch, _, Some(a)) => {
            Ok(wire::json_response(StatusCode::OK, wire::JSON_1_0, &cloudwatch::get_metric_data(a, &json()?, now)?))
        }
        (Api::CloudFront, _, Some(a)) => Ok(ok_xml(cloudfront::list_distributions(a, form)?)),
        (Api::Sts, "AssumeRole", Some(_)) => {
            let key = caller.map(|c| c.access_key_id).unwrap_or_default();
            let (session, xml) =
                sts::assume_role(accounts, &key, form, now, part.serial.fetch_add(1, Ordering::SeqCst))?;
            part.remember(session, now);
            Ok(ok_xml(xml))
        }
        (Api::Sts, "AssumeRoleWithWebIdentity", _) => {
            let (session, xml) =
                sts::assume_role_with_web_identity(accounts, form, now, part.serial.fetch_add(1, Ordering::SeqCst))?;
            part.remember(session, now);
            Ok(ok_xml(xml))
        }
        _ => Err(auth::unknown_key()),
    }
}

/// 1 GB in the units Cost Explorer bills CloudFront's data transfer (10⁹ bytes).
const GB: f64 = 1e9;

fn usage(name: &str, usd_per_day: f64, units_per_day: f64, unit: &str) -> SimUsageType {
    SimUsageType { name: name.into(), usd_per_day, units_per_day, unit: unit.into() }
}

/// The account `demo` and `simulate` serve: two distributions, eight usage types spending
/// about $1,050 a month (under the demo's $1,500 budget), history since 2025-10-01, $6 a day of
/// other services, Cost Explorer pages of 5 groups and distribution pages of 1 (so that both
/// are paged), a role trusting the demo key with an external id, and a web-identity role.
pub fn demo_accounts() -> Vec<SimAccount> {
    let distribution = |id: &str, domain: &str, aliases: &[&str], down: f64, up: f64, requests: u64| SimDistribution {
        id: id.into(),
        domain_name: domain.into(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        comment: DEMO_COMMENT.into(),
        enabled: true,
        staging: false,
        daily_bytes_downloaded: (down * GB) as u64,
        daily_bytes_uploaded: (up * GB) as u64,
        daily_requests: requests,
    };
    vec![SimAccount {
        account_id: "123456789012".into(),
        keys: vec![SimKey {
            access_key_id: DEMO_ACCESS_KEY_ID.into(),
            secret_access_key: DEMO_SECRET_ACCESS_KEY.into(),
        }],
        roles: vec![
            SimRole {
                arn: "arn:aws:iam::123456789012:role/cdn-exporter".into(),
                external_id: Some(DEMO_EXTERNAL_ID.into()),
                trusted_access_keys: vec![DEMO_ACCESS_KEY_ID.into()],
                web_identity_token: None,
            },
            SimRole {
                arn: "arn:aws:iam::123456789012:role/cdn-exporter-web".into(),
                external_id: None,
                trusted_access_keys: Vec::new(),
                web_identity_token: Some(DEMO_WEB_IDENTITY_TOKEN.into()),
            },
        ],
        usage_types: vec![
            usage("US-DataTransfer-Out-Bytes", 12.0, 141.2, "GB"),
            usage("EU-DataTransfer-Out-Bytes", 8.0, 94.1, "GB"),
            usage("AP-DataTransfer-Out-Bytes", 5.5, 45.8, "GB"),
            usage("US-Requests-Tier1", 1.2, 1_600_000.0, "Requests"),
            usage("US-Requests-Tier2-HTTPS", 3.0, 3_000_000.0, "Requests"),
            usage("EU-Requests-Tier2-HTTPS", 2.4, 2_400_000.0, "Requests"),
            usage("Invalidations", 0.5, 100.0, "Paths"),
            usage("Executions-CloudFrontFunctions", 1.2, 12_000_000.0, "Executions"),
        ],
        other_services_usd_per_day: 6.0,
        distributions: vec![
            distribution(
                "E2SIMDEMO1ABCD",
                "d1sim2demo3abc.cloudfront.net",
                &["cdn.demo.example"],
                230.0,
                2.0,
                5_000_000,
            ),
            distribution("E2SIMDEMO2EFGH", "d4sim5demo6efg.cloudfront.net", &[], 60.0, 0.3, 2_000_000),
        ],
        // 2025-10-01: 14 months before the demo was written, and ever longer after.
        history_from: crate::timeutil::days_from_civil(2025, 10, 1),
        page_groups: 5,
        list_page: 1,
    }]
}

/// The demo configuration's `[[cloudfront]]` table, pointing at a simulator at `addr`.
pub fn demo_toml(addr: &str) -> String {
    format!(
        r#"
[[cloudfront]]
name = "demo-aws"
access_key_id = "{DEMO_ACCESS_KEY_ID}"
secret_access_key = "{DEMO_SECRET_ACCESS_KEY}"
endpoint_url = "http://{addr}{BASE_PATH}"
budget_usd = 900
"#
    )
}

/// What `simulate` prints about this provider: where it listens, its accounts' keys (never a
/// secret), roles and distributions.
pub fn describe(state: &SimState, addr: &str) -> String {
    let mut out = format!(
        "Amazon CloudFront (AWS) simulator at http://{addr}{BASE_PATH} (Cost Explorer, CloudWatch, CloudFront, STS; SigV4 for {})\n",
        wire::REGION
    );
    for a in state.cloudfront() {
        out.push_str(&format!("  account {}\n", a.account_id));
        for k in &a.keys {
            out.push_str(&format!("    access key {}\n", k.access_key_id));
        }
        for r in &a.roles {
            let how = match (&r.external_id, &r.web_identity_token) {
                (_, Some(_)) => " (web identity)",
                (Some(_), None) => " (external id required)",
                (None, None) => "",
            };
            out.push_str(&format!("    role {}{how}\n", r.arn));
        }
        for d in &a.distributions {
            let aliases = if d.aliases.is_empty() { String::new() } else { format!(" ({})", d.aliases.join(", ")) };
            out.push_str(&format!("    distribution {} = {}{aliases}\n", d.id, d.domain_name));
        }
    }
    out
}
