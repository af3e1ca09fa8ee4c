//! The ScaleEngine wire format, parsed tolerantly and without I/O into typed structs that borrow
//! from the answer: numbers as numbers or strings, Google-table cells as `{"v","f"}` or bare
//! values, unknown fields skipped without being kept, optional fields missing. Lists are read
//! under a bound (rows of a table, entries of a page), so an answer's size alone decides memory.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::job::PollError;
pub use crate::providers::common::wire::{Array, Capped, ListLimit, Num, Text, parse_capped};

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
                Ok(Column(crate::text::label(label.get().unwrap_or_default())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Column, A::Error> {
                let t = Text::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Column(crate::text::label(t.get().unwrap_or_default())))
            }
            fn visit_str<E>(self, v: &str) -> Result<Column, E> {
                Ok(Column(crate::text::label(v)))
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
            let user = crate::text::label(e.cpu_user.get().unwrap_or_default());
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
