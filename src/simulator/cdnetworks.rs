//! The CDNetworks `domain-usage` API as the simulator serves it: both auth schemes verified
//! (with a 5-minute clock-skew window), JSON only when asked for it, the body validated by the
//! doc's rules and refused with the doc's error codes, deterministic hourly or daily series.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::providers::cdnetworks::auth;
use crate::timeutil;

use super::SimState;

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
        let Some(account) = state.cdnetworks.iter().find(|a| a.username == user) else { return denied("Unknown user") };
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
        let Some(account) = state.cdnetworks.iter().find(|a| a.access_key == ak) else {
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
            path: crate::providers::cdnetworks::PATH,
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
    if let Some(injected) = super::inject(&state, &faults, super::Api::Cdnetworks).await {
        return injected;
    }
    state.record_cdn(CdnRequest {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
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
    let now = timeutil::now_unix();
    let account = match authenticate(&state, &headers, &body, now) {
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
