//! The ScaleEngine wire format, parsed tolerantly and without I/O into typed structs that borrow
//! from the answer: numbers as numbers or strings, Google-table cells as `{"v","f"}` or bare
//! values, unknown fields skipped without being kept, optional fields missing. Lists are read
//! under a bound (rows of a table, entries of a page), so an answer's size alone decides memory.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::job::PollError;

/// The `v` of a Google-table cell `{"v": …, "f": …}`; `missing` when it has none.
fn cell_value<'de, A: MapAccess<'de>, T: Deserialize<'de>>(mut map: A, missing: T) -> Result<T, A::Error> {
    let mut out = missing;
    while let Some(key) = map.next_key::<Cow<'de, str>>()? {
        if key == "v" {
            out = map.next_value()?;
        } else {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(out)
}

/// A number as an answer gives it: JSON number, numeric string (`"5106077"`, `" 1,234 "`,
/// `"$0.00"`) or Google-table cell `{"v": ..., "f": ...}` (the `v` is used; `f` is display text).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Num {
    /// A finite number.
    Value(f64),
    /// A number that is not finite (`"NaN"`, `"Infinity"`, `"1e400"`): never data.
    NonFinite,
    /// No number here (`null`, `"Coming Soon"`, a missing field).
    #[default]
    Missing,
}

impl Num {
    /// The number, if finite.
    pub fn get(self) -> Option<f64> {
        match self {
            Num::Value(v) => Some(v),
            _ => None,
        }
    }

    fn from_f64(v: f64) -> Num {
        if v.is_finite() { Num::Value(v) } else { Num::NonFinite }
    }

    fn from_str(s: &str) -> Num {
        let cleaned: String = s.chars().filter(|c| !matches!(c, ',' | ' ' | '$')).collect();
        match cleaned.parse::<f64>() {
            Ok(v) => Num::from_f64(v),
            Err(_) => Num::Missing,
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a numeric string or a {\"v\"} cell")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num::from_f64(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                Ok(Num::from_str(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_none<E>(self) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Num, D::Error> {
                Num::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Num, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Num::Missing)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Num, A::Error> {
                cell_value(map, Num::Missing)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string field that may also arrive as a number or a `{"v"}` cell; borrowed where the answer
/// has it without escapes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The text, if there was one.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text, or empty.
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0.unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a {\"v\"} cell")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string())))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
                Text::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'de>, A::Error> {
                cell_value(map, Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

thread_local! {
    /// The most elements a [`Capped`] list may hold in the parse running on this thread.
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Set when a [`Capped`] list went past [`CAP`], so the parse error can name the bound.
    static CAPPED: Cell<bool> = const { Cell::new(false) };
}

/// A JSON array read under the bound of the parse running on this thread (see [`parse_capped`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Capped<T>(pub Vec<T>);

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped(Vec::new())
    }
}

struct CappedVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for CappedVisitor<T> {
    type Value = Capped<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Capped<T>, A::Error> {
        let max = CAP.get();
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max).min(1024));
        while let Some(item) = seq.next_element()? {
            if out.len() == max {
                CAPPED.set(true);
                return Err(de::Error::custom("too many elements"));
            }
            out.push(item);
        }
        Ok(Capped(out))
    }
    // An empty list has been seen as `[]`, `{}` and null.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Capped<T>, A::Error> {
        match map.next_key::<IgnoredAny>()? {
            None => Ok(Capped(Vec::new())),
            Some(_) => Err(de::Error::custom("expected an array, found a non-empty object")),
        }
    }
    fn visit_unit<E>(self) -> Result<Capped<T>, E> {
        Ok(Capped(Vec::new()))
    }
    fn visit_none<E>(self) -> Result<Capped<T>, E> {
        Ok(Capped(Vec::new()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Capped<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Capped<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CappedVisitor(std::marker::PhantomData))
    }
}

/// A [`Capped`] list that must be a JSON array: `{}` and null are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T>(pub Capped<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(CappedVisitor(std::marker::PhantomData)).map(Array)
    }
}

/// A bound on the lists of one answer, and how to name it in an error.
#[derive(Debug, Clone, Copy)]
pub struct ListLimit {
    /// The most elements of any one list.
    pub max: usize,
    /// What the elements are (`rows`, `entries`).
    pub items: &'static str,
    /// The config key that sets it.
    pub key: &'static str,
}

/// Parses `body` as `T` with every [`Capped`] list bounded by `limit`; `what` names the answer
/// in errors.
pub fn parse_capped<'a, T: Deserialize<'a>>(body: &'a [u8], limit: ListLimit, what: &str) -> Result<T, PollError> {
    CAP.set(limit.max);
    CAPPED.set(false);
    let parsed = serde_json::from_slice::<T>(body);
    let capped = CAPPED.replace(false);
    CAP.set(usize::MAX);
    parsed.map_err(|e| {
        if capped {
            PollError::parse(format!(
                "{what} has more than {} {}: refused. If that is real, raise `{}`",
                limit.max, limit.items, limit.key
            ))
        } else {
            PollError::parse(format!("{what} is not in the expected form: {e}"))
        }
    })
}

/// Parses an owned value with no list bound (small envelopes).
pub fn parse_owned<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, PollError> {
    serde_json::from_slice(body).map_err(|e| PollError::parse(format!("{what} is not in the expected form: {e}")))
}

/// A Google-table from `data: {cols, vals}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table<'a> {
    /// Column labels (the second element of each `cols` entry).
    pub cols: Vec<String>,
    /// Rows: the row name and the numeric cells after it.
    pub rows: Vec<Row<'a>>,
}

/// The most cells of a row kept: the widest table (billing) has 4; the rest are skipped unread.
pub const MAX_CELLS: usize = 8;

/// One row of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// The first cell, e.g. `"Edge Bandwidth:"`.
    pub name: Cow<'a, str>,
    /// The remaining cells' values (at most [`MAX_CELLS`]).
    pub cells: Vec<Num>,
}

impl Row<'_> {
    /// The finite number of cell `i`, if any.
    pub fn cell(&self, i: usize) -> Option<f64> {
        self.cells.get(i).and_then(|c| c.get())
    }
}

/// A row as it arrives: `[name, cell, cell, …]`.
#[derive(Debug)]
struct WireRow<'a>(Option<Row<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for WireRow<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireRow<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireRow<'de>, A::Error> {
                let Some(name) = seq.next_element::<Text<'de>>()?.and_then(|t| t.0) else {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(WireRow(None));
                };
                let mut cells = Vec::new();
                while cells.len() < MAX_CELLS {
                    match seq.next_element::<Num>()? {
                        Some(c) => cells.push(c),
                        None => return Ok(WireRow(Some(Row { name, cells }))),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(WireRow(Some(Row { name, cells })))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct TableAnswer<'a> {
    #[serde(borrow)]
    data: Option<TableData<'a>>,
}

#[derive(Deserialize)]
struct TableData<'a> {
    #[serde(default)]
    cols: Option<Capped<Column>>,
    #[serde(borrow)]
    vals: Option<Capped<WireRow<'a>>>,
}

/// A `cols` entry: `["number", "Label"]` or a bare label.
struct Column(String);

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Column;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a column")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Column, A::Error> {
                let _type = seq.next_element::<IgnoredAny>()?;
                let label = seq.next_element::<Text<'de>>()?.unwrap_or_default();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Column(crate::providers::text::label(label.get().unwrap_or_default())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Column, A::Error> {
                let t = Text::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Column(crate::providers::text::label(t.get().unwrap_or_default())))
            }
            fn visit_str<E>(self, v: &str) -> Result<Column, E> {
                Ok(Column(crate::providers::text::label(v)))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Column, E> {
                Ok(Column(String::new()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Column, E> {
                Ok(Column(String::new()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Column, E> {
                Ok(Column(String::new()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Column, E> {
                Ok(Column(String::new()))
            }
            fn visit_unit<E>(self) -> Result<Column, E> {
                Ok(Column(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses the `data` of a `usage.summary` or `usage.billing.live` answer, at most `limit.max`
/// rows (and columns).
pub fn parse_table<'a>(body: &'a [u8], limit: ListLimit, what: &str) -> Result<Table<'a>, PollError> {
    let answer: TableAnswer<'a> = parse_capped(body, limit, what)?;
    let data = answer.data.ok_or_else(|| PollError::parse(format!("{what} has no \"data\" table")))?;
    let vals = data.vals.ok_or_else(|| PollError::parse(format!("{what}'s \"data\" has no \"vals\" array")))?;
    let cols = data.cols.map(|c| c.0.into_iter().map(|c| c.0).collect()).unwrap_or_default();
    let mut rows = Vec::with_capacity(vals.0.len());
    for (i, row) in vals.0.into_iter().enumerate() {
        match row.0 {
            Some(row) => rows.push(row),
            None => return Err(PollError::parse(format!("row {i} of {what}'s \"vals\" has no name"))),
        }
    }
    Ok(Table { cols, rows })
}

/// One day of one user from `disk.usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskDay {
    /// Day number (days since 1970-01-01) of `summary_date`.
    pub day: i64,
    /// `cpu_user`, as a bounded, inert label value; empty when the answer is for the whole
    /// account.
    pub user: String,
    /// `bytes_total`.
    pub bytes: Num,
}

#[derive(Deserialize)]
struct DiskAnswer<'a> {
    #[serde(borrow)]
    usage: Option<Array<DiskEntry<'a>>>,
}

#[derive(Deserialize)]
struct DiskEntry<'a> {
    #[serde(default, borrow)]
    summary_date: Text<'a>,
    #[serde(default, borrow)]
    cpu_user: Text<'a>,
    #[serde(default)]
    bytes_total: Num,
}

/// Parses a `disk.usage` answer (at most `limit.max` entries). Entries with an unreadable date
/// or no value are skipped; entries none of which is readable are an error (not data).
pub fn parse_disk(body: &[u8], limit: ListLimit) -> Result<Vec<DiskDay>, PollError> {
    let answer: DiskAnswer<'_> = parse_capped(body, limit, "disk.usage answer")?;
    let Some(Array(Capped(entries))) = answer.usage else {
        return Err(PollError::parse("disk.usage answer has no \"usage\" array"));
    };
    let total = entries.len();
    let days: Vec<DiskDay> = entries
        .into_iter()
        .filter_map(|e| {
            let day = crate::timeutil::parse_ymd(e.summary_date.get()?)?;
            if e.bytes_total == Num::Missing {
                return None;
            }
            let user = crate::providers::text::label(e.cpu_user.get().unwrap_or_default());
            Some(DiskDay { day, user, bytes: e.bytes_total })
        })
        .collect();
    if total > 0 && days.is_empty() {
        return Err(PollError::parse(format!(
            "disk.usage answer has {total} entries but not one with a readable date and number: not data"
        )));
    }
    Ok(days)
}

/// One page of `video.usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPage<'a> {
    /// The entries of this page.
    pub entries: Vec<VideoEntry<'a>>,
    /// `count`: results available in total, if the answer says.
    pub count: Option<u64>,
}

/// One URL or stream from `video.usage`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VideoEntry<'a> {
    /// `video_url`.
    #[serde(rename = "video_url", default, borrow)]
    pub url: Text<'a>,
    /// `bytes_total`.
    #[serde(rename = "bytes_total", default)]
    pub bytes: Num,
    /// `requests_total`.
    #[serde(rename = "requests_total", default)]
    pub requests: Num,
}

#[derive(Deserialize)]
struct VideoAnswer<'a> {
    #[serde(borrow, default)]
    usage: Capped<VideoEntry<'a>>,
    #[serde(default)]
    count: Num,
}

/// Parses a page of a `video.usage` answer, at most `limit.max` entries. An empty result has
/// been seen as `[]`, `{}`, null or no field at all.
pub fn parse_video(body: &[u8], limit: ListLimit) -> Result<VideoPage<'_>, PollError> {
    let answer: VideoAnswer<'_> = parse_capped(body, limit, "video.usage page")?;
    let count = answer.count.get().filter(|c| *c >= 0.0).map(|c| c as u64);
    Ok(VideoPage { entries: answer.usage.0, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: ListLimit = ListLimit { max: 3, items: "rows", key: "answer_limits.table_rows" };

    fn num(json: &str) -> Num {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_in_every_shape() {
        assert_eq!(num("5"), Num::Value(5.0));
        assert_eq!(num(r#""5106077""#), Num::Value(5_106_077.0));
        assert_eq!(num(r#"" 28,103 ""#), Num::Value(28_103.0));
        assert_eq!(num(r#""$-1.50""#), Num::Value(-1.5));
        assert_eq!(num(r#"{"v": "0.5", "f": "x"}"#), Num::Value(0.5));
        assert_eq!(num(r#"{"f": "Coming Soon", "v": 0}"#), Num::Value(0.0));
        assert_eq!(num(r#""Coming Soon""#), Num::Missing);
        assert_eq!(num("null"), Num::Missing);
        assert_eq!(num("[1]"), Num::Missing);
        for bad in [r#""NaN""#, r#""Infinity""#, r#""-inf""#, r#""1e400""#, r#"{"v": "NaN"}"#] {
            assert_eq!(num(bad), Num::NonFinite, "{bad}");
        }
        // A JSON number too large for a float is not JSON data at all.
        assert!(serde_json::from_str::<Num>("1e400").is_err());
    }

    #[test]
    fn tables_borrow_names_and_stop_at_the_row_bound() {
        let body = br#"{"data":{"cols":[["string","Name"],["number","Total"]],"vals":[["Edge Bandwidth:",{"v":1,"f":"1"}],["B\u00e9",2,3,4,5,6,7,8,9,10,11]]}}"#;
        let t = parse_table(body, LIMIT, "usage.summary answer").unwrap();
        assert_eq!(t.cols, ["Name", "Total"]);
        assert!(matches!(t.rows[0].name, Cow::Borrowed("Edge Bandwidth:")));
        assert_eq!(t.rows[1].name, "Bé");
        assert_eq!(t.rows[1].cells.len(), MAX_CELLS);
        let big = br#"{"data":{"vals":[["a",1],["b",1],["c",1],["d",1]]}}"#;
        let e = parse_table(big, LIMIT, "usage.summary answer").unwrap_err();
        assert_eq!(e.reason, crate::job::Reason::Parse);
        assert!(e.message.contains("more than 3 rows") && e.message.contains("answer_limits.table_rows"), "{e}");
        // The bound is per parse: the next one on this thread is not affected.
        assert!(serde_json::from_str::<Capped<u8>>("[1,2,3,4,5]").is_ok());
    }

    #[test]
    fn video_pages_accept_every_empty_shape() {
        let limit = ListLimit { max: 10, items: "entries", key: "answer_limits.page_entries" };
        for body in [r#"{"usage":[]}"#, r#"{"usage":{}}"#, r#"{"usage":null}"#, r#"{"count":0}"#] {
            assert!(parse_video(body.as_bytes(), limit).unwrap().entries.is_empty(), "{body}");
        }
        assert!(parse_video(br#"{"usage":5}"#, limit).is_err());
        assert!(parse_video(br#"{"usage":{"a":1}}"#, limit).is_err());
        let p = parse_video(br#"{"usage":[{"video_url":"a","bytes_total":"5"}],"count":"7"}"#, limit).unwrap();
        assert_eq!(p.count, Some(7));
        assert_eq!(p.entries[0].bytes, Num::Value(5.0));
        assert_eq!(p.entries[0].requests, Num::Missing);
    }

    #[test]
    fn disk_needs_a_usage_array() {
        let limit = ListLimit { max: 10, items: "entries", key: "answer_limits.page_entries" };
        assert!(parse_disk(br#"{"usage":"x"}"#, limit).is_err());
        assert!(parse_disk(br#"{"status":"success"}"#, limit).is_err());
        assert!(parse_disk(br#"{"usage":{}}"#, limit).is_err());
        assert!(parse_disk(br#"{"usage":[]}"#, limit).unwrap().is_empty());
        assert!(parse_disk(br#"{"usage":[{"summary_date":"bogus","bytes_total":1}]}"#, limit).is_err());
        let days = parse_disk(
            br#"{"usage":[{"summary_date":"2014-11-10","cpu_user":"a\nb","bytes_total":"1"},{"summary_date":"0000-00-00 00:00:00","bytes_total":1}]}"#,
            limit,
        )
        .unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].user, "a\\nb");
    }
}
