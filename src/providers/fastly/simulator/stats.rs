//! The simulator's Fastly historical stats: the traffic of each service, area and hour (a
//! function of the three), `GET /stats` with buckets that carry every field of Fastly's
//! `Results` model (values consistent with each other: `bandwidth` is the sum of the sixteen
//! byte fields the spec names, Compute services count `compute_requests` with `requests` 0),
//! and `GET /stats/usage_by_service`, the sums of those buckets per region and service in the
//! shape of Fastly's recorded answer (every region named, `{}` where no service had traffic).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::providers::common::simulator::SimState;
use crate::providers::fastly::{STATS_PATH, USAGE_PATH};
use crate::timeutil;

use super::results::RESULTS_FIELDS;
use super::{FastlyFaults, FastlySim, admit, reply};

/// The areas the simulated traffic is in: `latam` is not in the exporter's default `areas`, so
/// it shows as `area="other"`.
pub const SIM_REGIONS: [&str; 4] = ["usa", "europe", "asia", "latam"];
/// The regions a usage answer names, as Fastly's recorded answers do (go-fastly
/// `fixtures/stats/regions.yaml`, `services_usage.yaml`).
pub const RECORDED_REGIONS: [&str; 9] =
    ["africa_std", "anzac", "asia", "asia_india", "asia_southkorea", "europe", "latam", "southamerica_std", "usa"];
/// Every `region` the simulator accepts on `/stats` (the others have no traffic).
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
/// Hourly data older than this is refused (Fastly keeps it 375 days).
pub const HOUR_HISTORY_SECS: i64 = 375 * 86_400;

/// Bytes and requests of service `s` in area `r` in the full hour starting at `hour`.
pub fn hour_traffic(s: usize, r: usize, hour: i64) -> (u64, u64) {
    let bytes = (s as u64 + 1) * (r as u64 + 1) * 1_000_000_000 * (1 + (hour.div_euclid(3600) % 5) as u64);
    (bytes, bytes / 25_000)
}

/// The bytes and requests of service `s` in area `r` (`None`: every area) in the bucket of
/// `step` seconds (3600 or 86400) starting at `start`, as the API answers at `now`: `None` if it
/// is not served yet. The hour that holds `now` is served filling: its share of the hour so far.
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

/// The whole `Results` bucket of service `s` of `account` in area `r` as `/stats` sends it (see
/// [`bucket`]), every field present. Delivery services' bytes are in `resp_*` and `bereq_*`,
/// Compute services' in `compute_resp_*` and `compute_bereq_*`; `bandwidth` is their sum, and
/// the request counts split the same way.
pub fn full_bucket(account: &FastlySim, s: usize, r: Option<usize>, start: i64, step: i64, now: i64) -> Option<Value> {
    let (bytes, q) = bucket(s, r, start, step, now)?;
    let id = account.services.get(s).map_or("", String::as_str);
    let compute = account.is_compute(id);
    let (rh, bh, bb) = (bytes / 25, bytes / 100, bytes / 50);
    let rb = bytes - rh - bh - bb;
    let (hits, s5) = (q * 9 / 10, q / 1000);
    let (s2, s3) = (q * 96 / 100, q * 2 / 100);
    let s4 = q - s2 - s3 - s5;
    let mut f: Map<String, Value> = RESULTS_FIELDS
        .iter()
        .map(|(name, float)| (name.to_string(), if *float { json!(0.0) } else { json!(0) }))
        .collect();
    let mut set = |k: &str, v: Value| {
        f.insert(k.to_owned(), v);
    };
    set("service_id", json!(id));
    set("start_time", json!(start));
    set("bandwidth", json!(bytes));
    let prefix = if compute { "compute_" } else { "" };
    set(&format!("{prefix}resp_header_bytes"), json!(rh));
    set(&format!("{prefix}resp_body_bytes"), json!(rb));
    set(&format!("{prefix}bereq_header_bytes"), json!(bh));
    set(&format!("{prefix}bereq_body_bytes"), json!(bb));
    if compute {
        set("compute_requests", json!(q));
        set("compute_resp_status_2xx", json!(s2));
        set("compute_resp_status_3xx", json!(s3));
        set("compute_resp_status_4xx", json!(s4));
        set("compute_resp_status_5xx", json!(s5));
        set("compute_bereqs", json!(q / 10));
        set("compute_request_time_ms", json!(q as f64 * 1.5));
        set("compute_request_time_billed_ms", json!(q as f64 * 50.0));
        set("compute_execution_time_ms", json!(q as f64 * 1.2));
        set("compute_ram_used", json!(q * 1_048_576));
    } else {
        set("requests", json!(q));
        set("edge_requests", json!(q));
        set("header_size", json!(rh));
        set("body_size", json!(rb));
        set("edge_resp_header_bytes", json!(rh));
        set("edge_resp_body_bytes", json!(rb));
        set("hits", json!(hits));
        set("miss", json!(q - hits));
        set("edge_hit_requests", json!(hits));
        set("edge_miss_requests", json!(q - hits));
        set("hits_time", json!(hits as f64 * 0.0001));
        set("miss_time", json!((q - hits) as f64 * 0.05));
        set("hit_ratio", if q == 0 { Value::Null } else { json!(hits as f64 / q as f64) });
        set("origin_fetches", json!(q - hits));
        set("origin_fetch_header_bytes", json!(bh));
        set("origin_fetch_body_bytes", json!(bb));
        set("status_200", json!(s2));
        set("status_2xx", json!(s2));
        set("status_304", json!(s3));
        set("status_3xx", json!(s3));
        set("status_404", json!(s4));
        set("status_4xx", json!(s4));
        set("status_503", json!(s5));
        set("status_5xx", json!(s5));
    }
    set("tls", json!(q));
    set("tls_v13", json!(q));
    set("all_status_2xx", json!(s2));
    set("all_status_3xx", json!(s3));
    set("all_status_4xx", json!(s4));
    set("all_status_5xx", json!(s5));
    Some(Value::Object(f))
}

/// The `meta` of a stats answer.
fn meta(query: &HashMap<String, String>, from: i64, to: i64, by: &str) -> Value {
    let stamp = |t: i64| {
        let d = t.div_euclid(86_400);
        let s = t.rem_euclid(86_400);
        format!("{} {:02}:{:02}:{:02} UTC", timeutil::format_ymd(d), s / 3600, s % 3600 / 60, s % 60)
    };
    json!({"from": stamp(from), "to": stamp(to), "by": by,
           "region": query.get("region").cloned().unwrap_or_else(|| "all".into())})
}

/// The window and step of a stats query, or why it is refused: `from` and `to` in Unix seconds,
/// `by` `hour` or `day` (default), an hourly window of at most 32 days and within the hourly
/// history Fastly keeps.
fn window(query: &HashMap<String, String>, now: i64) -> Result<(i64, i64, i64, &'static str), &'static str> {
    let epoch = |k: &str| query.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to)) = (epoch("from"), epoch("to")) else {
        return Err("from and to must be given (the simulator takes Unix seconds)");
    };
    let (step, by) = match query.get("by").map(String::as_str) {
        None | Some("day") => (86_400, "day"),
        Some("hour") => (3600, "hour"),
        Some(_) => return Err("by must be hour or day"),
    };
    if from >= to || (step == 3600 && to - from > 32 * 86_400) {
        return Err("the query is too large or empty");
    }
    if step == 3600 && from < now - HOUR_HISTORY_SECS {
        return Err("hourly data older than 375 days cannot be retrieved");
    }
    Ok((from, to, step, by))
}

/// A stats query's window, its step and `by`, and the time it is answered at.
struct Window {
    from: i64,
    to: i64,
    step: i64,
    by: &'static str,
    now: i64,
}

/// The checks of a stats request (faults, the token) and its window: the account and the
/// window, or the answer to send.
async fn admitted<'a>(
    state: &'a SimState,
    path: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(&'a FastlySim, Window), Response> {
    let account = admit(state, "stats", path, headers, query).await?;
    let now = state.clock.now();
    let (from, to, step, by) = window(query, now).map_err(|msg| bad(state, msg))?;
    Ok((account, Window { from, to, step, by, now }))
}

/// The starts of the buckets of `step` that begin in `[from, to)`.
fn starts(from: i64, to: i64, step: i64) -> impl Iterator<Item = i64> {
    let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
    (0..).map(move |k| first + k * step).take_while(move |start| *start < to)
}

fn bad(state: &SimState, msg: &str) -> Response {
    reply(state, StatusCode::BAD_REQUEST, json!({"status": "error", "msg": msg, "data": null}), vec![])
}

/// `GET /stats`: full buckets per service, `from` inclusive, `to` exclusive, labelled by their
/// UTC start.
pub async fn handle_stats(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let (account, Window { from, to, step, by, now }) = match admitted(&state, STATS_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let region = match query.get("region").map(String::as_str) {
        None | Some("all") => None,
        Some(r) if KNOWN_REGIONS.contains(&r) => Some(SIM_REGIONS.iter().position(|x| *x == r).unwrap_or(usize::MAX)),
        Some(_) => return bad(&state, "unknown region"),
    };
    let wanted: Vec<&str> =
        query.get("services").map(|s| s.split(',').filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    let negative = state.fastly_faults().negative_bucket;
    let mut data = Map::new();
    for (s, id) in account.services.iter().enumerate() {
        if !wanted.is_empty() && !wanted.contains(&id.as_str()) {
            continue;
        }
        let buckets: Vec<Value> = starts(from, to, step)
            .filter_map(|start| full_bucket(account, s, region, start, step, now))
            .map(|mut b| {
                if negative {
                    b["bandwidth"] = json!(-1);
                }
                b
            })
            .collect();
        data.insert(id.clone(), Value::Array(buckets));
    }
    let body = json!({"status": "success", "msg": null, "meta": meta(&query, from, to, by), "data": data});
    reply(&state, StatusCode::OK, body, Vec::new())
}

/// `(bandwidth, requests, compute_requests)` of service `s` of `account` in area `r` over the
/// buckets of `step` starting in `[from, to)` as `/stats` serves them at `now`: the sums a usage
/// answer gives.
pub fn usage(account: &FastlySim, s: usize, r: usize, from: i64, to: i64, step: i64, now: i64) -> (u64, u64, u64) {
    let (bytes, q) = starts(from, to, step)
        .filter_map(|start| bucket(s, Some(r), start, step, now))
        .fold((0, 0), |(b, q), (hb, hq)| (b + hb, q + hq));
    let compute = account.services.get(s).is_some_and(|id| account.is_compute(id));
    if compute { (bytes, 0, q) } else { (bytes, q, 0) }
}

/// `GET /stats/usage_by_service`: region → service → `{bandwidth, requests, compute_requests}`
/// summed over the window, every recorded region named (`{}` where no service had traffic),
/// services with no traffic in a region left out, as in Fastly's recorded answer. `region` is
/// echoed in `meta` and filters nothing, as recorded.
pub async fn handle_usage_by_service(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let (account, Window { from, to, step, by, now }) = match admitted(&state, USAGE_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let FastlyFaults { negative_bucket, extra_services, extra_regions, .. } = state.fastly_faults();
    let mut data = Map::new();
    for region in RECORDED_REGIONS {
        let mut services = Map::new();
        if let Some(r) = SIM_REGIONS.iter().position(|x| *x == region) {
            for (s, id) in account.services.iter().enumerate() {
                let (bandwidth, requests, compute) = usage(account, s, r, from, to, step, now);
                if bandwidth + requests + compute > 0 {
                    let bandwidth = if negative_bucket { -1 } else { bandwidth as i64 };
                    services.insert(
                        id.clone(),
                        json!({"bandwidth": bandwidth, "requests": requests, "compute_requests": compute}),
                    );
                }
            }
        }
        if region == "usa" {
            for k in 0..extra_services {
                services.insert(format!("extra{k:05}"), json!({"bandwidth": 1, "requests": 1, "compute_requests": 0}));
            }
        }
        data.insert(region.to_owned(), Value::Object(services));
    }
    for k in 0..extra_regions {
        data.insert(format!("region{k:05}"), json!({}));
    }
    let body = json!({"data": data, "meta": meta(&query, from, to, by), "status": "success", "msg": null});
    reply(&state, StatusCode::OK, body, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::fastly::simulator::demo_accounts;

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
    }

    /// The spec's definition of `bandwidth` (fastly-go `model_results.go`), written out here.
    const BANDWIDTH_PARTS: [&str; 16] = [
        "resp_header_bytes",
        "resp_body_bytes",
        "bereq_header_bytes",
        "bereq_body_bytes",
        "compute_resp_header_bytes",
        "compute_resp_body_bytes",
        "compute_bereq_header_bytes",
        "compute_bereq_body_bytes",
        "websocket_resp_header_bytes",
        "websocket_resp_body_bytes",
        "websocket_bereq_header_bytes",
        "websocket_bereq_body_bytes",
        "fanout_resp_header_bytes",
        "fanout_resp_body_bytes",
        "fanout_bereq_header_bytes",
        "fanout_bereq_body_bytes",
    ];

    #[test]
    fn full_buckets_carry_every_field_and_agree_with_themselves() {
        let account = &demo_accounts()[0];
        let start = 20_000 * 86_400 + 5 * 3600;
        for s in 0..account.services.len() {
            let b = full_bucket(account, s, Some(0), start, 3600, start + 7200).unwrap();
            let fields = b.as_object().unwrap();
            assert_eq!(fields.len(), RESULTS_FIELDS.len() + 2, "every Results field, service_id and start_time");
            let parts: u64 = BANDWIDTH_PARTS.iter().map(|k| fields[*k].as_u64().unwrap()).sum();
            assert_eq!(fields["bandwidth"].as_u64(), Some(parts));
            let (bytes, q) = bucket(s, Some(0), start, 3600, start + 7200).unwrap();
            assert_eq!(parts, bytes);
            let compute = account.is_compute(&account.services[s]);
            assert_eq!(fields["requests"].as_u64(), Some(if compute { 0 } else { q }));
            assert_eq!(fields["compute_requests"].as_u64(), Some(if compute { q } else { 0 }));
            assert!(serde_json::to_string(&b).unwrap().len() > 5000, "as large as a real bucket");
        }
        assert!(account.compute.iter().all(|c| account.services.contains(c)) && !account.compute.is_empty());
    }
}
