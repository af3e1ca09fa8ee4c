//! bunny.net answers parsed under bounds, keeping only the fields the exporter exports. Every
//! other field (saved payment methods, payer and payment ids, document URLs, zone keys,
//! storage passwords, certificates) is skipped as it is read: it never becomes a string the
//! exporter holds, and no parse error quotes an answer's content.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::job::PollError;
use crate::providers::common::wire::{Num, Text};

/// The longest `MonthlyCharges*` field name taken as an item (64 bytes); longer ones are skipped.
pub const MAX_ITEM_KEY_BYTES: usize = 64;
/// The most `MonthlyCharges*` items one `/billing` answer may hold (200).
pub const MAX_ITEMS: usize = 200;

thread_local! {
    /// The most entries a list or chart may hold in the parse running on this thread.
    static MAX: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Set when a list or chart went past [`MAX`], so the error can name the bound.
    static OVER: Cell<bool> = const { Cell::new(false) };
}

/// Parses `body` as `T` with every [`List`] and [`Chart`] bounded by `max` entries. `what` names
/// the answer. The error never quotes the answer: a quoted part of serde's message is cut out.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], max: usize, what: &str) -> Result<T, PollError> {
    MAX.set(max);
    OVER.set(false);
    let parsed = serde_json::from_slice::<T>(body);
    let over = OVER.replace(false);
    MAX.set(usize::MAX);
    parsed.map_err(|e| {
        if over {
            PollError::parse(format!(
                "{what} has a list or chart of more than {max} entries: refused. If that is real, raise `list_entries`"
            ))
        } else {
            PollError::parse(format!("{what} is not in the expected form: {}", unquoted(&e.to_string())))
        }
    })
}

/// `message` with every quoted part replaced by `"…"`: serde quotes the value it did not expect,
/// and in these answers a value may be a payment detail.
pub fn unquoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        match (c, inside) {
            ('"', false) => {
                inside = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                inside = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// A JSON array read under the bound of the running [`parse`]; null is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

fn read_seq<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(mut seq: A) -> Result<Vec<T>, A::Error> {
    let max = MAX.get();
    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max).min(1024));
    while let Some(item) = seq.next_element()? {
        if out.len() == max {
            OVER.set(true);
            return Err(de::Error::custom("too many entries"));
        }
        out.push(item);
    }
    Ok(out)
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<List<T>, A::Error> {
                read_seq(seq).map(List)
            }
            fn visit_unit<E>(self) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_none<E>(self) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<List<T>, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A boolean that is `None` when the answer has anything else there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Flag(v.as_bool()))
    }
}

/// A chart: bucket start (Unix seconds) to value, as `{"2026-06-01T00:00:00Z": 25000000000}`.
/// Keys are read with or without `Z` (and date-only), as UTC; values must be finite and not
/// negative. The map's order is not trusted: buckets are sorted by time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart(pub Vec<(i64, f64)>);

impl<'de> Deserialize<'de> for Chart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Chart;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of timestamps to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Chart, A::Error> {
                let max = MAX.get();
                let mut out: Vec<(i64, f64)> = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if out.len() == max {
                        OVER.set(true);
                        return Err(de::Error::custom("too many buckets"));
                    }
                    let at = parse_time(&key).ok_or_else(|| de::Error::custom("a chart key is not a date-time"))?;
                    let value = match map.next_value::<Num>()? {
                        Num::Value(v) if v >= 0.0 => v,
                        Num::Value(_) => return Err(de::Error::custom("a chart value is negative")),
                        Num::NonFinite => return Err(de::Error::custom("a chart value is not finite")),
                        Num::Missing => return Err(de::Error::custom("a chart value is not a number")),
                    };
                    out.push((at, value));
                }
                out.sort_by_key(|(t, _)| *t);
                if out.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(de::Error::custom("a chart has two buckets at one time"));
                }
                Ok(Chart(out))
            }
            fn visit_unit<E>(self) -> Result<Chart, E> {
                Ok(Chart::default())
            }
            fn visit_none<E>(self) -> Result<Chart, E> {
                Ok(Chart::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Chart, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(V)
    }
}

/// Chart keys and record times, as UTC Unix seconds. The Core API states no zone; Stream
/// documents UTC (a guess, see the docs).
pub use crate::timeutil::parse_utc as parse_time;

/// Whether a record's `Type` is MonthlyUsage: `3` as the spec's integer enum, or its name
/// `"MonthlyUsage"` (the spec also lists the names; both readings are accepted).
pub fn is_monthly_usage(kind: &Text<'_>) -> bool {
    matches!(kind.get().map(str::trim), Some("3" | "3.0"))
        || kind.get().is_some_and(|k| k.trim().eq_ignore_ascii_case("MonthlyUsage"))
}

/// One entry of `BillingRecords`: only amount, time and type. `PaymentId`, `Payer` and the
/// document URLs are skipped unread.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Record<'a> {
    /// USD.
    #[serde(rename = "Amount", default)]
    pub amount: Num,
    /// When it was booked.
    #[serde(rename = "Timestamp", default, borrow)]
    pub timestamp: Text<'a>,
    /// 3 (or `"MonthlyUsage"`) is MonthlyUsage.
    #[serde(rename = "Type", default, borrow)]
    pub kind: Text<'a>,
}

/// `GET /billing`, reduced to what is exported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Billing<'a> {
    /// `Balance`.
    pub balance: Num,
    /// `ThisMonthCharges`.
    pub this_month: Num,
    /// Every `MonthlyCharges*` field, as (the rest of its name, value), in answer order.
    pub items: Vec<(Cow<'a, str>, Num)>,
    /// `BillingRecords`.
    pub records: Vec<Record<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Billing<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Billing<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a billing object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Billing<'de>, A::Error> {
                let mut out = Billing::default();
                let (mut balance, mut this_month, mut records) = (false, false, false);
                let once = |seen: &mut bool| {
                    if std::mem::replace(seen, true) {
                        Err(de::Error::custom("a field is given twice"))
                    } else {
                        Ok(())
                    }
                };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "Balance" => {
                            once(&mut balance)?;
                            out.balance = map.next_value()?;
                        }
                        "ThisMonthCharges" => {
                            once(&mut this_month)?;
                            out.this_month = map.next_value()?;
                        }
                        "BillingRecords" => {
                            once(&mut records)?;
                            out.records = map.next_value::<List<Record<'de>>>()?.0;
                        }
                        k if k.starts_with("MonthlyCharges")
                            && k.len() > "MonthlyCharges".len()
                            && k.len() <= MAX_ITEM_KEY_BYTES =>
                        {
                            let value: Num = map.next_value()?;
                            if out.items.len() == MAX_ITEMS {
                                return Err(de::Error::custom("more than 200 MonthlyCharges fields"));
                            }
                            if out.items.iter().any(|(name, _)| **name == k["MonthlyCharges".len()..]) {
                                return Err(de::Error::custom("a field is given twice"));
                            }
                            let name = match key {
                                Cow::Borrowed(b) => Cow::Borrowed(&b["MonthlyCharges".len()..]),
                                Cow::Owned(o) => Cow::Owned(o["MonthlyCharges".len()..].to_owned()),
                            };
                            out.items.push((name, value));
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// One entry of `GET /billing/summary`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct SummaryItem {
    /// `PullZoneId`.
    #[serde(rename = "PullZoneId", default)]
    pub pull_zone_id: Num,
    /// `MonthlyUsage`: USD this month.
    #[serde(rename = "MonthlyUsage", default)]
    pub monthly_usage: Num,
    /// `MonthlyBandwidthUsed`: bytes this month.
    #[serde(rename = "MonthlyBandwidthUsed", default)]
    pub monthly_bandwidth: Num,
}

/// One pull zone of `GET /pullzone`: its id and name; its keys and certificates are skipped.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PullZone<'a> {
    /// `Id`.
    #[serde(rename = "Id", default)]
    pub id: Num,
    /// `Name`.
    #[serde(rename = "Name", default, borrow)]
    pub name: Text<'a>,
}

/// One storage zone of `GET /storagezone`; its passwords and nested pull zones are skipped.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StorageZone<'a> {
    /// `Id`.
    #[serde(rename = "Id", default)]
    pub id: Num,
    /// `Name`.
    #[serde(rename = "Name", default, borrow)]
    pub name: Text<'a>,
    /// `Deleted`.
    #[serde(rename = "Deleted", default)]
    pub deleted: Flag,
    /// `StorageUsed`: bytes.
    #[serde(rename = "StorageUsed", default)]
    pub storage_used: Num,
    /// `FilesStored`.
    #[serde(rename = "FilesStored", default)]
    pub files_stored: Num,
}

/// A page of a listing: the `Items` envelope, or a bare array (then there is no next page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The entries.
    pub items: Vec<T>,
    /// `HasMoreItems`; `None` for a bare array or an envelope without it.
    pub has_more: Option<bool>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Page<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Page<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an {Items, HasMoreItems} envelope or an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Page<T>, A::Error> {
                Ok(Page { items: read_seq(seq)?, has_more: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<T>, A::Error> {
                let (mut items, mut has_more, mut seen) = (None, None, false);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "Items" if items.is_none() => items = Some(map.next_value::<List<T>>()?.0),
                        "HasMoreItems" if !seen => {
                            seen = true;
                            has_more = map.next_value::<Flag>()?.0;
                        }
                        "Items" | "HasMoreItems" => return Err(de::Error::custom("a field is given twice")),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let items = items.ok_or_else(|| de::Error::custom("an envelope without Items"))?;
                Ok(Page { items, has_more })
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `GET /statistics`, reduced to the two charts exported.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Statistics {
    /// `RequestsServedChart`.
    #[serde(rename = "RequestsServedChart", default)]
    pub requests: Option<Chart>,
    /// `BandwidthUsedChart`.
    #[serde(rename = "BandwidthUsedChart", default)]
    pub bandwidth: Option<Chart>,
}

/// The error body of a 400: `ErrorKey` and `Message` (the only answer with a JSON error body).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ApiError<'a> {
    /// `ErrorKey`, e.g. `pullZone.not_found`.
    #[serde(rename = "ErrorKey", default, borrow)]
    pub key: Text<'a>,
    /// `Message`.
    #[serde(rename = "Message", default, borrow)]
    pub message: Text<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_and_without_z() {
        let t = 20_605 * 86_400; // 2026-06-01
        assert_eq!(parse_time("2026-06-01T00:00:00Z"), Some(t));
        assert_eq!(parse_time("2026-06-01T00:00:00"), Some(t));
        assert_eq!(parse_time("2026-06-01"), Some(t));
        assert_eq!(parse_time("2026-06-01T00:37:25.123+00:00"), Some(t + 37 * 60 + 25));
        for bad in ["", "2026-13-01", "2026-06-01T25:00:00", "yesterday", "2026-06-01T00:00:00.x"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn billing_keeps_only_what_is_exported_and_never_quotes_the_answer() {
        let body = br#"{"Balance":84.52,"ThisMonthCharges":15.48,"MonthlyChargesEUTraffic":6.1,
            "MonthlyChargesStorage":"1.98","MonthlyDBWrites":null,"AutomaticPaymentIdentifier":"SECRET-pay",
            "SavedPaymentMethods":[{"Token":"SECRET-token","LastFour":"4242"}],
            "BillingRecords":[{"Id":1,"PaymentId":"SECRET-pid","Amount":14.02,"Payer":"SECRET-payer",
              "Timestamp":"2026-06-01T00:05:12Z","Type":3,"DocumentDownloadUrl":"https://SECRET-doc"}]}"#;
        let b: Billing<'_> = parse(body, 100, "billing").unwrap();
        assert_eq!((b.balance, b.this_month), (Num::Value(84.52), Num::Value(15.48)));
        let items: Vec<(&str, Num)> = b.items.iter().map(|(k, v)| (&**k, *v)).collect();
        assert_eq!(items, [("EUTraffic", Num::Value(6.1)), ("Storage", Num::Value(1.98))]);
        assert_eq!(b.records.len(), 1);
        assert!(!format!("{b:?}").contains("SECRET"), "nothing sensitive is kept: {b:?}");
        // A payment detail where a list should be is refused without being quoted.
        let bad = br#"{"Balance":1,"ThisMonthCharges":1,"BillingRecords":"SECRET-card-4242"}"#;
        let err = parse::<Billing<'_>>(bad, 100, "billing").unwrap_err();
        assert!(!err.message.contains("SECRET"), "{}", err.message);
        assert_eq!(err.reason, crate::job::Reason::Parse);
        let twice = br#"{"Balance":1,"Balance":2}"#;
        assert!(parse::<Billing<'_>>(twice, 100, "billing").is_err());
    }

    #[test]
    fn lists_and_charts_are_bounded() {
        let page: Page<PullZone<'_>> = parse(br#"[{"Id":1,"Name":"a","ZoneSecurityKey":"k"}]"#, 5, "p").unwrap();
        assert_eq!((page.items.len(), page.has_more), (1, None));
        let page: Page<PullZone<'_>> =
            parse(br#"{"Items":[{"Id":1},{"Id":2}],"CurrentPage":1,"TotalItems":2,"HasMoreItems":true}"#, 5, "p")
                .unwrap();
        assert_eq!((page.items.len(), page.has_more), (2, Some(true)));
        let err = parse::<Page<PullZone<'_>>>(br#"[{"Id":1},{"Id":2},{"Id":3}]"#, 2, "p").unwrap_err();
        assert!(err.message.contains("more than 2 entries") && err.message.contains("list_entries"), "{}", err.message);
        let s: Statistics =
            parse(br#"{"RequestsServedChart":{"2026-06-02T00:00:00":2,"2026-06-01T00:00:00Z":1}}"#, 5, "s").unwrap();
        assert_eq!(s.requests, Some(Chart(vec![(20_605 * 86_400, 1.0), (20_606 * 86_400, 2.0)])), "sorted by time");
        for bad in [
            r#"{"RequestsServedChart":{"2026-06-01":1,"2026-06-02":2,"2026-06-03":3}}"#,
            r#"{"RequestsServedChart":{"2026-06-01":-1}}"#,
            r#"{"RequestsServedChart":{"2026-06-01":"NaN"}}"#,
            r#"{"RequestsServedChart":{"soon":1}}"#,
            r#"{"RequestsServedChart":{"2026-06-01":1,"2026-06-01T00:00:00Z":2}}"#,
        ] {
            assert!(parse::<Statistics>(bad.as_bytes(), 2, "s").is_err(), "{bad}");
        }
    }

    #[test]
    fn billing_items_and_records_are_bounded() {
        let many: Vec<String> = (0..=MAX_ITEMS).map(|i| format!("\"MonthlyChargesX{i}\":1")).collect();
        let body = format!("{{\"Balance\":1,\"ThisMonthCharges\":1,{}}}", many.join(","));
        let err = parse::<Billing<'_>>(body.as_bytes(), 10_000, "billing").unwrap_err();
        assert!(err.message.contains("more than 200 MonthlyCharges fields"), "{}", err.message);
        let long = format!("{{\"Balance\":1,\"ThisMonthCharges\":1,\"MonthlyCharges{}\":1}}", "A".repeat(60));
        assert!(
            parse::<Billing<'_>>(long.as_bytes(), 10, "billing").unwrap().items.is_empty(),
            "a long name is skipped"
        );
        let records = format!("{{\"Balance\":1,\"ThisMonthCharges\":1,\"BillingRecords\":[{}]}}", ["{}"; 4].join(","));
        let err = parse::<Billing<'_>>(records.as_bytes(), 3, "billing").unwrap_err();
        assert!(err.message.contains("more than 3 entries"), "{}", err.message);
    }

    #[test]
    fn quoted_parts_are_cut() {
        assert_eq!(unquoted(r#"invalid type: string "SECRET", expected x"#), r#"invalid type: string "…", expected x"#);
    }
}
