//! The ScaleEngine command API as the simulator serves it: form field `json`
//! (urlencoded or multipart), signature recomputed the PHP way, api key, cdn and timestamp
//! checked, the four commands answered with deterministic month-to-date data.

use std::any::Any;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::providers::common::simulator::{SimState, inject, keep, lock};
use crate::timeutil;

use super::{client, phpjson};

mod data;

use data::Gen;
pub use data::month_factor;

/// The path the simulator serves the command API on, under its address.
pub const BASE_PATH: &str = "/stable/";

/// The simulator's ScaleEngine part: its accounts and the requests it received.
#[derive(Debug, Default)]
pub struct Part {
    accounts: Vec<SeAccount>,
    requests: Mutex<Vec<String>>,
}

/// The part of a [`SimState`] that serves these accounts.
pub fn part(accounts: Vec<SeAccount>) -> Box<dyn Any + Send + Sync> {
    Box::new(Part { accounts, requests: Mutex::default() })
}

impl SimState {
    /// The ScaleEngine accounts the simulator knows.
    pub fn scaleengine(&self) -> &[SeAccount] {
        self.part::<Part>().map_or(&[], |p| &p.accounts)
    }

    /// The `json` form fields received so far (the most recent
    /// [`KEEP_REQUESTS`](crate::providers::common::simulator::KEEP_REQUESTS)).
    pub fn requests(&self) -> Vec<String> {
        self.part::<Part>().map(|p| lock(&p.requests).clone()).unwrap_or_default()
    }

    fn record(&self, json: &str) {
        if let Some(p) = self.part::<Part>() {
            keep(&p.requests, json.to_owned());
        }
    }
}

/// The routes of the ScaleEngine API.
pub fn routes(router: Router<Arc<SimState>>) -> Router<Arc<SimState>> {
    router.route(BASE_PATH, post(handle)).route(BASE_PATH.trim_end_matches('/'), post(handle))
}

/// A ScaleEngine failure envelope with a random code, for chaos.
fn chaos_failure() -> Response {
    let code = ["0001", "0002", "0003", "0004", "1000"][fastrand::usize(0..5)];
    axum::Json(json!({"status": "failure", "code": code, "message": "Simulated failure"})).into_response()
}

/// The accounts `demo` and `simulate` serve.
pub fn demo_accounts() -> Vec<SeAccount> {
    vec![SeAccount {
        cdn: 158,
        api_key: "DEMOKEY0RKQLSP2FBO1ROPKSSW47DZE".into(),
        api_secret: "demo-secret-8fc8c48da81e6a2a06a9556379bf798a".into(),
        monthly_edge_gb: 9_000.0,
        users: vec![],
        video_apps: vec![
            VideoAppSpec { name: "live".into(), urls: 12 },
            VideoAppSpec { name: "vod/archive".into(), urls: 2_500 },
        ],
    }]
}

/// The demo configuration's `[[scaleengine]]` table, pointing at a simulator at `addr`.
pub fn demo_toml(addr: &str) -> String {
    format!(
        r#"
[[scaleengine]]
name = "demo"
cdn = 158
api_key = "DEMOKEY0RKQLSP2FBO1ROPKSSW47DZE"
api_secret = "demo-secret-8fc8c48da81e6a2a06a9556379bf798a"
base_url = "http://{addr}{BASE_PATH}"
summary_interval = "15s"
billing_interval = "15s"
disk_interval = "30s"
video_interval = "30s"
timeout = "5s"
video_apps = ["live", "vod/archive"]
video_top_n = 10
# Below the simulator's estimated month-end spend, so the budget alert fires in the demo.
budget_usd = 400
"#
    )
}

/// What `simulate` prints about this provider: where it listens and its accounts.
pub fn describe(state: &SimState, addr: &str) -> String {
    let mut out = format!("ScaleEngine simulator at http://{addr}{BASE_PATH}\n");
    for a in state.scaleengine() {
        out.push_str(&format!(
            "  account: cdn = {}, api_key = {:?}, api_secret = {:?}\n",
            a.cdn, a.api_key, a.api_secret
        ));
    }
    out
}

/// How far a request timestamp may be from the simulator's clock.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

/// A simulated ScaleEngine account.
#[derive(Debug, Clone)]
pub struct SeAccount {
    /// CDN id.
    pub cdn: i64,
    /// API key.
    pub api_key: String,
    /// API secret.
    pub api_secret: String,
    /// Edge bandwidth of a whole month, in GB; every other figure scales from it.
    pub monthly_edge_gb: f64,
    /// Disk users; empty means `disk.usage` answers for the whole account (`cpu_user` "").
    pub users: Vec<String>,
    /// Video apps.
    pub video_apps: Vec<VideoAppSpec>,
}

/// A simulated video app.
#[derive(Debug, Clone)]
pub struct VideoAppSpec {
    /// App name (its id is its position + 1).
    pub name: String,
    /// Distinct URLs it serves.
    pub urls: usize,
}

fn failure(code: &str, message: &str) -> Response {
    axum::Json(json!({"status": "failure", "message": message, "code": code})).into_response()
}

fn html_500() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>",
    )
        .into_response()
}

/// Extracts the `json` form field from an urlencoded or multipart body.
async fn json_field(state: &Arc<SimState>, request: Request) -> Option<String> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state).await.ok()?;
        while let Ok(Some(field)) = multipart.next_field().await {
            if field.name() == Some("json") {
                return field.text().await.ok();
            }
        }
        None
    } else {
        let body = Bytes::from_request(request, state).await.ok()?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).ok()?;
        fields.into_iter().find(|(k, _)| k == "json").map(|(_, v)| v)
    }
}

/// `POST /stable/`.
pub async fn handle(State(state): State<Arc<SimState>>, request: Request) -> Response {
    let _in_flight = state.in_flight();
    let faults = state.faults();
    if let Some(injected) = inject(&state, &faults, chaos_failure).await {
        return injected;
    }
    let Some(raw) = json_field(&state, request).await else {
        return failure("0006", "Required fields missing: json");
    };
    state.record(&raw);
    let Ok(Value::Object(mut req)) = serde_json::from_str::<Value>(&raw) else {
        return failure("0004", "Unexpected error: request is not a JSON object");
    };
    let command = req.get("command").and_then(Value::as_str).unwrap_or_default().to_owned();
    let fault_applies = faults.only_command.as_deref().is_none_or(|c| c == command);
    if faults.http_500 && fault_applies {
        return html_500();
    }
    let missing: Vec<&str> =
        ["command", "api_key", "timestamp", "cdn", "signature"].into_iter().filter(|k| !req.contains_key(*k)).collect();
    if !missing.is_empty() {
        return failure("0006", &format!("Required fields missing: {}", missing.join(", ")));
    }
    let Some(account) =
        state.scaleengine().iter().find(|a| req.get("api_key").and_then(Value::as_str) == Some(&a.api_key))
    else {
        return failure("0005", "Unauthorized");
    };
    if req.get("cdn").and_then(Value::as_i64) != Some(account.cdn) || !req["cdn"].is_i64() {
        return failure("0001", "CDN authorization failed");
    }
    // The server's way: drop the signature, re-encode what was decoded, HMAC it.
    let signature = req.remove("signature").and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_default();
    let expected = client::sign(&account.api_secret, &phpjson::encode(&Value::Object(req.clone())));
    if !constant_time_eq(signature.as_bytes(), expected.as_bytes()) {
        return failure("0003", "Bad HMAC signature");
    }
    let now = timeutil::now_unix();
    match req.get("timestamp").and_then(Value::as_i64) {
        Some(ts) if (ts - now).abs() <= TIMESTAMP_WINDOW_SECS => {}
        _ => return failure("0002", "Timestamp outside valid range, use UTC"),
    }
    if let Some(window) = &faults.fail_window {
        let start = match req.get("starttime") {
            Some(Value::Number(n)) => n.as_i64().map(|t| timeutil::format_ymd(t.div_euclid(86_400))),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        if start.as_deref() == Some(window.as_str()) {
            return html_500();
        }
    }
    if let Some(code) = faults.failure_code.as_deref().filter(|_| fault_applies) {
        let message = match code {
            "1000" => "Servers busy, try again in a few minutes",
            "0002" => "Timestamp outside valid range, use UTC",
            "0003" => "Bad HMAC signature",
            _ => "Simulated failure",
        };
        return failure(code, message);
    }
    let data = Gen { strings: faults.numbers_as_strings, now };
    let started = std::time::Instant::now();
    let mut answer = match command.as_str() {
        "usage.summary" => data.summary(account, &req),
        "usage.billing.live" => data.billing(account, &Map::new()),
        // The past months' bills (not in our docs; PROVIDERS.md: `usage.billing` for a past month).
        "usage.billing" if req.contains_key("starttime") => data.billing(account, &req),
        "usage.billing" => return failure("0006", "Required fields missing: starttime"),
        "disk.usage" => match data.disk(account, &req) {
            Ok(a) => a,
            Err(missing) => return failure("0006", &format!("Required fields missing: {missing}")),
        },
        "video.usage" => match data.video(account, &req) {
            Ok(a) => a,
            Err(missing) => return failure("0006", &format!("Required fields missing: {missing}")),
        },
        _ => return failure("0000", "Unrecognized command"),
    };
    answer.insert("status".into(), "success".into());
    answer.insert("handle_time".into(), format!("{:.4} seconds", started.elapsed().as_secs_f64()).into());
    axum::Json(Value::Object(answer)).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_demo_table_configures_the_demo_account() {
        let toml = demo_toml("127.0.0.1:1");
        let config = Config::from_toml_str(&toml, "demo").unwrap();
        let account = config.accounts_of::<crate::providers::scaleengine::ScaleEngineAccount>()[0];
        let sim = &demo_accounts()[0];
        assert_eq!(
            (account.cdn, account.api_key.expose(), account.api_secret.expose()),
            (sim.cdn, &*sim.api_key, &*sim.api_secret)
        );
        assert_eq!(account.base_url, "http://127.0.0.1:1/stable/");
        let apps: Vec<String> = account.video_apps.iter().map(ToString::to_string).collect();
        let served: Vec<&str> = sim.video_apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(apps, served, "the demo polls the apps the simulator serves");
    }
}
