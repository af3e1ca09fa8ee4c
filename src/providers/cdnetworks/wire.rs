//! The `domain-usage` wire format, parsed tolerantly and without I/O: both envelopes
//! (`{code,message,data:[...]}` and a bare `{domain,usage:[...]}`), usage as strings or numbers,
//! timestamps `yyyy-MM-dd` or `yyyy-MM-dd HH:mm` (with `24:00`) in the request's time zone.

use serde_json::Value;

use crate::job::{PollError, Reason};
use crate::providers::scaleengine::wire::{num, text};
use crate::timeutil;

/// One point of a storage series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix time at which the interval the point covers ends.
    pub end: i64,
    /// Bytes stored.
    pub bytes: f64,
}

/// Parses the points of a successful answer. `offset` is the zone of `X-Time-Zone`, in seconds
/// east of UTC. A point with an unreadable time or value is skipped rather than failing the
/// whole series.
pub fn parse_points(answer: &Value, offset: i64) -> Result<Vec<Point>, PollError> {
    let list = match (answer.get("data"), answer.get("usage")) {
        (Some(Value::Array(points)), _) => points,
        (Some(Value::Object(data)), _) => match data.get("usage") {
            Some(Value::Array(points)) => points,
            _ => return Err(PollError::parse("answer's \"data\" has no \"usage\" array")),
        },
        (_, Some(Value::Array(points))) => points,
        (Some(Value::Null), _) => return Ok(Vec::new()),
        _ => return Err(PollError::parse("answer has neither \"data\" nor \"usage\" points")),
    };
    let mut points: Vec<Point> = list
        .iter()
        .filter_map(|p| {
            let stamp = p.get("timestamp").and_then(text)?;
            let bytes = p.get("usage").and_then(num)?;
            let at = timeutil::parse_local_minute(&stamp, offset)?;
            // A bare date names a day; a time names the end of an interval.
            let end = if stamp.trim().len() <= 10 { at + 86_400 } else { at };
            Some(Point { end, bytes })
        })
        .collect();
    points.sort_by_key(|p| p.end);
    Ok(points)
}

/// The newest point whose interval has ended by `now`: the newest one may still be filling.
pub fn newest_complete(points: &[Point], now: i64) -> Option<Point> {
    points.iter().rev().find(|p| p.end <= now).copied()
}

/// The provider's error code of an answer, if it carries one other than success (`0`).
pub fn error_code(answer: &Value) -> Option<(String, String)> {
    let code = answer.get("code").and_then(text)?;
    let code = code.trim().to_owned();
    if code == "0" || code.is_empty() {
        return None;
    }
    let message = answer.get("message").and_then(text).unwrap_or_default();
    Some((code, message))
}

/// What a request was about, for error messages that say what to fix.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The domain.
    pub domain: &'a str,
    /// Its contract.
    pub contract: &'a str,
    /// Where it is configured: `cdnetworks[0].domains[2]`.
    pub path: &'a str,
    /// The window asked for.
    pub date_from: &'a str,
    /// The window asked for.
    pub date_to: &'a str,
}

/// Classifies an error answer by the codes of the domain-usage doc and the HTTP status.
pub fn classify(status: u16, code: Option<&str>, message: &str, ctx: &Context<'_>) -> PollError {
    let message = message.trim();
    let (reason, text) = match code {
        Some("24102008") if message.to_lowercase().contains("not found") => (
            Reason::Provider,
            format!("domain {} not found under contract {}: check `{}`", ctx.domain, ctx.contract, ctx.path),
        ),
        Some("24102008") => (
            Reason::Provider,
            format!("domain {:?} refused as null or invalid: check `{}.domain`", ctx.domain, ctx.path),
        ),
        Some("24102023") => (
            Reason::Provider,
            format!("domain {} or contract {} refused ({message}): check `{}`", ctx.domain, ctx.contract, ctx.path),
        ),
        Some("34102022") => (
            Reason::Auth,
            format!(
                "no permission for contract {} of domain {}: check `{}.contract` and the account's rights",
                ctx.contract, ctx.domain, ctx.path
            ),
        ),
        Some(c @ ("24102006" | "24102021")) => {
            (Reason::Provider, format!("date window {}..{} refused (code {c}: {message})", ctx.date_from, ctx.date_to))
        }
        Some("24102500") => (Reason::Http, format!("internal error at CDNetworks: {message}")),
        Some(c) if c.contains("TooFrequence") => (Reason::Throttled, format!("too many requests ({c}): {message}")),
        Some(c) if c.contains("Skew") || c.contains("Expired") => {
            (Reason::ClockSkew, format!("request time refused ({c}): {message}. Check this host's clock (NTP)"))
        }
        _ => match status {
            401 | 403 => (Reason::Auth, format!("credentials refused (HTTP {status}): {message}")),
            429 | 446 => (Reason::Throttled, format!("too many requests (HTTP {status}): {message}")),
            s if s >= 500 => (Reason::Http, format!("HTTP {status}: {message}")),
            _ => (Reason::Provider, format!("HTTP {status}: {message}")),
        },
    };
    let text = match code {
        Some(c) if !text.contains(c) => format!("{text} [code {c}]"),
        _ => text,
    };
    PollError::new(reason, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NINE: i64 = 9 * 3600;

    fn ctx() -> Context<'static> {
        Context {
            domain: "edu.example.net",
            contract: "C-1",
            path: "cdnetworks[0].domains[2]",
            date_from: "2022-08-01",
            date_to: "2022-08-03",
        }
    }

    #[test]
    fn both_envelopes_and_both_value_types() {
        let wrapped =
            json!({"code": "0", "message": "success", "data": [{"timestamp": "2022-08-01", "usage": "2135"}]});
        let bare = json!({"domain": "edu.example.net", "usage": [{"timestamp": "2022-08-01", "usage": 2135}]});
        let nested =
            json!({"code": 0, "data": {"domain": "x", "usage": [{"timestamp": "2022-08-01", "usage": "2135"}]}});
        for answer in [wrapped, bare, nested] {
            let points = parse_points(&answer, NINE).unwrap();
            assert_eq!(points.len(), 1, "{answer}");
            assert_eq!(points[0].bytes, 2135.0);
            // The day 2022-08-01 in GMT+9 ends at 2022-08-02 00:00 GMT+9 = 2022-08-01 15:00 UTC.
            assert_eq!(points[0].end, timeutil::days_from_civil(2022, 8, 1) * 86_400 + 15 * 3600);
        }
    }

    #[test]
    fn hourly_points_end_at_their_label_and_24_00_is_midnight() {
        let answer = json!({"data": [
            {"timestamp": "2022-08-01 24:00", "usage": "30"},
            {"timestamp": "2022-08-01 23:00", "usage": "20"},
            {"timestamp": "bogus", "usage": "1"},
            {"timestamp": "2022-08-01 22:00", "usage": null},
        ]});
        let points = parse_points(&answer, NINE).unwrap();
        assert_eq!(points.len(), 2);
        let midnight = timeutil::days_from_civil(2022, 8, 2) * 86_400 - NINE;
        assert_eq!(points[1], Point { end: midnight, bytes: 30.0 });
        assert_eq!(newest_complete(&points, midnight - 1), Some(points[0]), "the 24:00 point is still filling");
        assert_eq!(newest_complete(&points, midnight), Some(points[1]));
    }

    #[test]
    fn error_codes_become_messages_that_say_what_to_fix() {
        let e = classify(400, Some("24102008"), "Domain not found", &ctx());
        assert_eq!(e.reason, Reason::Provider);
        assert_eq!(
            e.message,
            "domain edu.example.net not found under contract C-1: check `cdnetworks[0].domains[2]` [code 24102008]"
        );
        let cases = [
            (400, "24102006", "The date specified is invalid.", Reason::Provider, "2022-08-01..2022-08-03"),
            (400, "24102021", "Date format error.", Reason::Provider, "date window"),
            (400, "24102008", "param: domain is null or invalid.", Reason::Provider, "null or invalid"),
            (500, "24102500", "We encountered an internal error. Please try again.", Reason::Http, "internal error"),
            (400, "24102023", "Failed to get ids. Please check the domain.", Reason::Provider, "Failed to get ids"),
            (
                400,
                "24102023",
                "Invalid parameters. Please check the 'contract' or 'dateFrom' or 'dateTo'.",
                Reason::Provider,
                "contract C-1",
            ),
            (400, "34102022", "No contract permission", Reason::Auth, "no permission for contract C-1"),
            (446, "WPLUS_AccountApiTooFrequence", "too frequent", Reason::Throttled, "too many requests"),
        ];
        for (status, code, message, reason, needle) in cases {
            let e = classify(status, Some(code), message, &ctx());
            assert_eq!(e.reason, reason, "{code}");
            assert!(e.message.contains(needle) && e.message.contains(code), "{code}: {}", e.message);
        }
        assert_eq!(classify(403, Some("RequestTimeTooSkewed"), "", &ctx()).reason, Reason::ClockSkew);
        assert_eq!(classify(401, None, "", &ctx()).reason, Reason::Auth);
        assert_eq!(classify(403, None, "", &ctx()).reason, Reason::Auth);
        assert_eq!(classify(429, None, "", &ctx()).reason, Reason::Throttled);
        assert_eq!(classify(446, None, "", &ctx()).reason, Reason::Throttled);
        assert_eq!(classify(502, None, "", &ctx()).reason, Reason::Http);
    }
}
