//! The simulator's `GET /statistics`: daily charts of one pull zone or the whole account over a
//! window, every field of the spec's `StatisticsModel` (charts not asked for, and those of a zone
//! with `null_charts`, null), a window that begins more than a year back refused.

use std::collections::HashMap;

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{SimAccount, SimPullZone, bad_request, data, reply, spec};
use crate::providers::bunny::wire::parse_time;
use crate::timeutil;

/// How far back statistics are served (365 days: bunny.net refuses older statistics).
pub const HISTORY_DAYS: i64 = 365;

/// Daily charts of one zone (or, for `pullZone=-1` or none, the whole account) over
/// `[dateFrom, dateTo]` (default the last 30 days), charts only when their flag is set.
/// Bandwidth charts are keyed with `Z`, request charts without it.
pub fn statistics(a: &SimAccount, query: &HashMap<String, String>, now: i64) -> Response {
    let zones: Vec<&SimPullZone> = match query.get("pullZone").map(|z| z.parse::<i64>()) {
        None | Some(Ok(-1)) => a.pull_zones.iter().collect(),
        Some(Ok(id)) => match a.pull_zones.iter().find(|z| z.id == id) {
            Some(z) => vec![z],
            None => return bad_request("pullZone.not_found", "pullZone", "The requested pull zone was not found."),
        },
        Some(Err(_)) => return bad_request("validation.pullZone", "pullZone", "The pull zone id is not a number."),
    };
    if query.get("hourly").is_some_and(|h| h == "true") {
        return bad_request("statistics.hourly", "hourly", "Hourly statistics are not simulated.");
    }
    let today = now.div_euclid(86_400);
    let date = |k: &str, default: i64| match query.get(k) {
        None => Some(default),
        Some(v) => parse_time(v).map(|t| t.div_euclid(86_400)),
    };
    let (Some(from), Some(to)) = (date("dateFrom", today - 29), date("dateTo", today)) else {
        return bad_request("validation.date", "dateFrom", "The date is not a date-time.");
    };
    if from > to {
        return bad_request("validation.date", "dateFrom", "dateFrom is after dateTo.");
    }
    if from < today - HISTORY_DAYS {
        return bad_request("statistics.date_range", "dateFrom", "Statistics are available for the last year only.");
    }
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true");
    let days: Vec<i64> = (from..=to.min(today)).collect();
    let chart = |f: &dyn Fn(&SimPullZone, i64) -> u64, z: bool| -> (Value, u64) {
        let mut total = 0;
        let mut m = Map::new();
        for &d in &days {
            let v: u64 = zones.iter().map(|zone| f(zone, d)).sum();
            total += v;
            let key = format!("{}T00:00:00{}", timeutil::format_ymd(d), if z { "Z" } else { "" });
            m.insert(key, json!(v));
        }
        (Value::Object(m), total)
    };
    let (bandwidth, total_bytes) = chart(&|z, d| data::day_bytes(z, d, now), true);
    let (requests, total_requests) = chart(&|z, d| data::day_requests(z, d, now), false);
    let mut body = Map::new();
    body.insert("TotalBandwidthUsed".into(), json!(total_bytes));
    body.insert("TotalOriginTraffic".into(), json!(0));
    body.insert("AverageOriginResponseTime".into(), json!(12));
    body.insert("TotalRequestsServed".into(), json!(total_requests));
    body.insert("CacheHitRate".into(), json!(97.5));
    let nulled = zones.iter().any(|z| z.null_charts);
    if flag("loadBandwidthUsed") && !nulled {
        let (cached, _) = chart(&|z, d| data::day_bytes(z, d, now) / 100 * 97, true);
        body.insert("BandwidthUsedChart".into(), bandwidth);
        body.insert("BandwidthCachedChart".into(), cached);
    }
    if flag("loadRequestsServed") && !nulled {
        let (pulled, _) = chart(&|z, d| data::day_requests(z, d, now) / 40, false);
        body.insert("RequestsServedChart".into(), requests);
        body.insert("PullRequestsPulledChart".into(), pulled);
    }
    reply(spec::filled(spec::STATISTICS, Value::Object(body)))
}
