//! The ScaleEngine wire format, parsed tolerantly and without I/O: numbers as numbers or
//! strings, Google-table cells as `{"v","f"}` or bare values, unknown fields ignored, optional
//! fields missing.

use serde_json::Value;

use crate::job::PollError;

/// Reads a number that may arrive as a JSON number, a numeric string (`"5106077"`, `" 1,234 "`),
/// or a Google-table cell `{"v": ..., "f": ...}` (the `v` is used; `f` is display text).
pub fn num(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let cleaned: String = s.chars().filter(|c| !matches!(c, ',' | ' ' | '$')).collect();
            cleaned.parse::<f64>().ok().filter(|f| f.is_finite())
        }
        Value::Object(map) => map.get("v").and_then(num),
        _ => None,
    }
}

/// Reads a string field that may also arrive as a number or a `{"v"}` cell.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(map) => map.get("v").and_then(text),
        _ => None,
    }
}

/// A Google-table from `data: {cols, vals}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column labels (the second element of each `cols` entry).
    pub cols: Vec<String>,
    /// Rows: the row name and the numeric cells after it (`None` where a cell has no number).
    pub rows: Vec<Row>,
}

/// One row of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The first cell, e.g. `"Edge Bandwidth:"`.
    pub name: String,
    /// The remaining cells' values.
    pub cells: Vec<Option<f64>>,
}

/// Parses the `data` of a `usage.summary` or `usage.billing.live` answer.
pub fn parse_table(response: &Value) -> Result<Table, PollError> {
    let data = response.get("data").ok_or_else(|| PollError::parse("answer has no \"data\" table"))?;
    let vals = data
        .get("vals")
        .and_then(Value::as_array)
        .ok_or_else(|| PollError::parse("answer's \"data\" has no \"vals\" array"))?;
    let cols = data
        .get("cols")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| match c {
                    Value::Array(parts) => parts.get(1).and_then(text).unwrap_or_default(),
                    other => text(other).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::with_capacity(vals.len());
    for (i, row) in vals.iter().enumerate() {
        let cells = row.as_array().ok_or_else(|| PollError::parse(format!("row {i} of \"vals\" is not an array")))?;
        let Some(name) = cells.first().and_then(text) else {
            return Err(PollError::parse(format!("row {i} of \"vals\" has no name")));
        };
        rows.push(Row { name, cells: cells[1..].iter().map(num).collect() });
    }
    Ok(Table { cols, rows })
}

/// One day of one user from `disk.usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskDay {
    /// Day number (days since 1970-01-01) of `summary_date`.
    pub day: i64,
    /// `cpu_user`; empty when the answer is for the whole account.
    pub user: String,
    /// `bytes_total`.
    pub bytes: f64,
}

/// Parses a `disk.usage` answer. Entries with an unparseable date or value are skipped.
pub fn parse_disk(response: &Value) -> Result<Vec<DiskDay>, PollError> {
    let usage = response
        .get("usage")
        .and_then(Value::as_array)
        .ok_or_else(|| PollError::parse("disk.usage answer has no \"usage\" array"))?;
    Ok(usage
        .iter()
        .filter_map(|entry| {
            let day = entry.get("summary_date").and_then(text).and_then(|d| crate::timeutil::parse_ymd(&d))?;
            let bytes = entry.get("bytes_total").and_then(num)?;
            let user = entry.get("cpu_user").and_then(text).unwrap_or_default();
            Some(DiskDay { day, user, bytes })
        })
        .collect())
}

/// One page of `video.usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPage {
    /// The entries of this page.
    pub entries: Vec<VideoEntry>,
    /// `count`: results available in total, if the answer says.
    pub count: Option<u64>,
}

/// One URL or stream from `video.usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoEntry {
    /// `video_url`.
    pub url: String,
    /// `bytes_total`.
    pub bytes: f64,
    /// `requests_total`.
    pub requests: f64,
}

/// Parses a page of a `video.usage` answer.
pub fn parse_video(response: &Value) -> Result<VideoPage, PollError> {
    let entries = match response.get("usage") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|e| {
                Some(VideoEntry {
                    url: e.get("video_url").and_then(text)?,
                    bytes: e.get("bytes_total").and_then(num).unwrap_or(0.0),
                    requests: e.get("requests_total").and_then(num).unwrap_or(0.0),
                })
            })
            .collect(),
        // An empty result has been seen as `[]`, `{}`, null or no field at all.
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) if m.is_empty() => Vec::new(),
        Some(_) => {
            return Err(PollError::parse("video.usage answer's \"usage\" is not an array"));
        }
    };
    let count = response.get("count").and_then(num).filter(|c| *c >= 0.0).map(|c| c as u64);
    Ok(VideoPage { entries, count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_in_every_shape() {
        assert_eq!(num(&json!(5)), Some(5.0));
        assert_eq!(num(&json!("5106077")), Some(5_106_077.0));
        assert_eq!(num(&json!(" 28,103 ")), Some(28_103.0));
        assert_eq!(num(&json!({"v": "0.5", "f": "x"})), Some(0.5));
        assert_eq!(num(&json!({"v": 0, "f": "Coming Soon"})), Some(0.0));
        assert_eq!(num(&json!("Coming Soon")), None);
        assert_eq!(num(&json!(null)), None);
        assert_eq!(num(&json!("NaN")), None);
    }
}
