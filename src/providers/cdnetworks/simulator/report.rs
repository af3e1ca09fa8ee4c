//! The simulator's `traffic-request` (`POST /api/report/traffic-request`): deterministic
//! 5-minute slices per domain that late-arriving logs revise upwards, answered for one day at a
//! time with the doc's limits and error codes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::providers::common::simulator::{SimState, inject};
use crate::timeutil;

use super::super::traffic;
use super::{CdnRequest, authenticate, chaos_failure, error, header_str, reply};

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
