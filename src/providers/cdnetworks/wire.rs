//! The `domain-usage` wire format, parsed tolerantly, typed and bounded, without I/O: both envelopes
//! (`{code,message,data:[...]}` and a bare `{domain,usage:[...]}`), usage as strings or numbers,
//! timestamps `yyyy-MM-dd` or `yyyy-MM-dd HH:mm` (with `24:00`) in the request's time zone.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::families::FamilyId;
use crate::job::{PollError, Reason, Sample};
use crate::providers::common::wire::{Array, Capped, ListLimit, Num, Text, parse_capped};
use crate::text;
use crate::timeutil;

/// One point of a storage series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix time at which the interval the point covers ends.
    pub end: i64,
    /// Bytes stored.
    pub bytes: f64,
}

impl Point {
    /// The point's samples for `domain`: the bytes stored, and when (the end of its interval).
    /// Live polling and backfill both export a point through it.
    pub fn samples(&self, domain: &str) -> [Sample; 2] {
        [
            Sample::new(FamilyId::StorageBytes, self.bytes).label("domain", domain),
            Sample::new(FamilyId::StorageSampleTimestampSeconds, self.end as f64).label("domain", domain),
        ]
    }
}

/// A point as it arrives.
#[derive(Debug, Deserialize)]
pub struct WirePoint<'a> {
    /// `yyyy-MM-dd` or `yyyy-MM-dd HH:mm`.
    #[serde(default, borrow)]
    pub timestamp: Text<'a>,
    /// Bytes, as a string or a number.
    #[serde(default)]
    pub usage: Num,
}

/// `data` in its shapes: the points, an object holding them under `usage`, or null.
#[derive(Debug, Default)]
enum Data<'a> {
    #[default]
    Absent,
    Null,
    Points(Vec<WirePoint<'a>>),
    /// An object without a `usage` array.
    NoUsage,
    /// Anything else (a string, a number).
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Data<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("points")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Data<'de>, A::Error> {
                let Capped(points) = Capped::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Data::Points(points))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data<'de>, A::Error> {
                let mut out = Data::NoUsage;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "usage" {
                        out = match map.next_value::<Option<Data<'de>>>()? {
                            Some(Data::Points(p)) => Data::Points(p),
                            _ => Data::NoUsage,
                        };
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
            fn visit_unit<E>(self) -> Result<Data<'de>, E> {
                Ok(Data::Null)
            }
            fn visit_none<E>(self) -> Result<Data<'de>, E> {
                Ok(Data::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Data<'de>, D::Error> {
                Data::deserialize(d)
            }
            fn visit_str<E>(self, _: &str) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A `domain-usage` answer: the error envelope and the points in either envelope.
#[derive(Debug, Deserialize)]
pub struct Answer<'a> {
    #[serde(default, borrow)]
    code: Text<'a>,
    #[serde(default, borrow)]
    message: Text<'a>,
    #[serde(default, borrow)]
    data: Data<'a>,
    #[serde(default, borrow)]
    usage: Option<Array<WirePoint<'a>>>,
}

impl Answer<'_> {
    /// The provider's `message`, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.get()
    }

    /// The provider's error code, if it carries one other than success (`0`), with its message.
    pub fn error_code(&self) -> Option<(String, String)> {
        envelope_error(&self.code, &self.message)
    }
}

/// The error of a `{code, message}` envelope: `None` for success (`0`) or no code.
pub fn envelope_error(code: &Text<'_>, message: &Text<'_>) -> Option<(String, String)> {
    let code = code.get()?.trim();
    if code == "0" || code.is_empty() {
        return None;
    }
    Some((code.to_owned(), message.get().unwrap_or_default().to_owned()))
}

/// Parses a `domain-usage` answer with at most `limit.max` points.
pub fn parse_answer(body: &[u8], limit: ListLimit) -> Result<Answer<'_>, PollError> {
    parse_capped(body, limit, "domain-usage answer")
}

/// The points of a successful answer. `offset` is the zone of `X-Time-Zone`, in seconds east
/// of UTC. A point with an unreadable time or value is skipped rather than failing the whole
/// series; points none of which is readable, a non-finite or negative value, or two points for
/// one time are errors.
pub fn points(answer: Answer<'_>, offset: i64) -> Result<Vec<Point>, PollError> {
    let list = match (answer.data, answer.usage) {
        (Data::Points(points), _) => points,
        (Data::NoUsage, _) => return Err(PollError::parse("answer's \"data\" has no \"usage\" array")),
        (_, Some(Array(Capped(points)))) => points,
        (Data::Null, _) => return Ok(Vec::new()),
        _ => return Err(PollError::parse("answer has neither \"data\" nor \"usage\" points")),
    };
    let mut points = Vec::with_capacity(list.len());
    for p in &list {
        let Some(stamp) = p.timestamp.get() else { continue };
        let bytes = match p.usage {
            Num::Value(v) if v < 0.0 => {
                return Err(PollError::parse(format!(
                    "domain-usage point {:?} has negative usage {v}: not data",
                    text::label(stamp)
                )));
            }
            Num::Value(v) => v,
            Num::NonFinite => {
                return Err(PollError::parse(format!(
                    "domain-usage point {:?} has usage that is not a finite number: not data",
                    text::label(stamp)
                )));
            }
            Num::Missing => continue,
        };
        let Some(at) = timeutil::parse_local_minute(stamp, offset) else { continue };
        // A bare date names a day; a time names the end of an interval.
        let end = if stamp.trim().len() <= 10 { at + 86_400 } else { at };
        points.push(Point { end, bytes });
    }
    if !list.is_empty() && points.is_empty() {
        return Err(PollError::parse(format!(
            "domain-usage answer has {} points but not one with a readable time and number: not data",
            list.len()
        )));
    }
    points.sort_by_key(|p| p.end);
    if let Some(w) = points.windows(2).find(|w| w[0].end == w[1].end) {
        return Err(PollError::parse(format!(
            "domain-usage answer has two points ending at {}: not data",
            timeutil::format_http_date(w[0].end)
        )));
    }
    Ok(points)
}

/// [`parse_answer`] then [`points`].
pub fn parse_points(body: &[u8], offset: i64, limit: ListLimit) -> Result<Vec<Point>, PollError> {
    points(parse_answer(body, limit)?, offset)
}

/// The newest point whose interval has ended by `now`: the newest one may still be filling.
pub fn newest_complete(points: &[Point], now: i64) -> Option<Point> {
    points.iter().rev().find(|p| p.end <= now).copied()
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
    // Provider text: bounded and inert before it is quoted anywhere.
    let message = &text::message(message);
    let code = code.map(text::label);
    let code = code.as_deref();
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
    const LIMIT: ListLimit = ListLimit { max: 100, items: "points", key: "answer_limits.page_entries" };

    fn parse_points(answer: &serde_json::Value, offset: i64) -> Result<Vec<Point>, PollError> {
        super::parse_points(answer.to_string().as_bytes(), offset, LIMIT)
    }

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
    fn points_that_are_not_data_are_errors() {
        for (answer, needle) in [
            (json!({"data": [{"timestamp": "2022-08-01", "usage": "-5"}]}), "negative"),
            (json!({"data": [{"timestamp": "2022-08-01", "usage": "NaN"}]}), "finite"),
            (json!({"data": [{"timestamp": "2022-08-01", "usage": "1e400"}]}), "finite"),
            (
                json!({"data": [{"timestamp": "2022-08-01", "usage": "1"}, {"timestamp": "2022-08-01", "usage": "2"}]}),
                "two points",
            ),
            (json!({"data": [{"timestamp": "bogus", "usage": "1"}]}), "not one"),
            (json!({"data": {"usage": 5}}), "no \"usage\""),
            (json!({"data": "x"}), "neither"),
        ] {
            let e = parse_points(&answer, NINE).unwrap_err();
            assert!(e.message.contains(needle), "{answer}: {}", e.message);
        }
        assert!(parse_points(&json!({"data": null}), NINE).unwrap().is_empty());
        let many: Vec<_> = (0..101).map(|i| json!({"timestamp": "2022-08-01", "usage": i})).collect();
        let e = parse_points(&json!({ "data": many }), NINE).unwrap_err();
        assert!(e.message.contains("more than 100 points") && e.message.contains("answer_limits.page_entries"), "{e}");
    }

    #[test]
    fn provider_text_is_bounded_and_inert_in_errors() {
        let message = format!("line one\nlevel=error msg=forged\u{1b}[2J{}", "x".repeat(5_000_000));
        let e = classify(500, Some("24102500"), &message, &ctx());
        assert!(e.message.len() < 2 * crate::text::ERROR_BYTES, "{}", e.message.len());
        assert!(!e.message.contains('\n') && !e.message.contains('\u{1b}'), "{}", &e.message[..200]);
        assert!(e.message.contains("line one\\nlevel=error"), "{}", &e.message[..200]);
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
