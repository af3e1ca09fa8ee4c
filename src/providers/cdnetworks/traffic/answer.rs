//! Reading a `traffic-request` answer for one local day into compact 5-minute slices, refusing
//! anything that is not data.

use std::collections::HashMap;

use serde::Deserialize;

use crate::job::PollError;
use crate::providers::common::wire::{Capped, ListLimit, Num, Text, parse_capped};
use crate::text;
use crate::timeutil;

use super::{MAX_SLICES_PER_ANSWER, NO_SLICE, SLICE_SECS};

/// One 5-minute slice of one domain, as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Unix time at which the slice ends (its label).
    pub end: i64,
    /// Traffic in hundredths of an MB.
    pub traffic_centi_mb: u64,
    /// Bandwidth in kbit/s (saturating below `u32::MAX`).
    pub kbps: u32,
    /// Requests.
    pub requests: u64,
}

/// One domain's answer for one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDay {
    /// Index of the domain in the list asked for.
    pub index: usize,
    /// Its slices inside the day, by end.
    pub slices: Vec<Slice>,
}

/// A parsed answer: the domains asked for that it holds, and how many others it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayAnswer {
    /// Domains asked for, with their slices.
    pub domains: Vec<DomainDay>,
    /// Results for domains not asked for: ignored, never labels.
    pub ignored: usize,
}

#[derive(Debug, Deserialize)]
struct WireSlice<'a> {
    #[serde(default, borrow)]
    timestamp: Text<'a>,
    #[serde(default)]
    traffic: Num,
    #[serde(default)]
    bandwidth: Num,
    #[serde(default)]
    requests: Num,
}

#[derive(Debug, Deserialize)]
struct WireResult<'a> {
    #[serde(default, borrow)]
    domain: Text<'a>,
    #[serde(default, borrow, rename = "dataSeries")]
    data_series: Option<Capped<WireSlice<'a>>>,
}

/// A `traffic-request` answer: the error envelope or the results.
#[derive(Debug, Deserialize)]
pub struct Answer<'a> {
    #[serde(default, borrow)]
    code: Text<'a>,
    #[serde(default, borrow)]
    message: Text<'a>,
    #[serde(default, borrow)]
    result: Option<Capped<WireResult<'a>>>,
}

impl Answer<'_> {
    /// The provider's `message`, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.get()
    }

    /// The provider's error code, if it carries one other than success.
    pub fn error_code(&self) -> Option<(String, String)> {
        super::super::wire::envelope_error(&self.code, &self.message)
    }
}

/// Parses an answer: no list longer than the domains asked for or a day's slices.
pub fn parse_answer(body: &[u8], asked: usize) -> Result<Answer<'_>, PollError> {
    let limit = ListLimit {
        max: asked.max(MAX_SLICES_PER_ANSWER),
        items: "entries (results or slices)",
        key: "answer_limits.traffic_bytes",
    };
    parse_capped(body, limit, "traffic-request answer")
}

fn value(v: Num, what: &str, stamp: &str, domain: &str) -> Result<f64, PollError> {
    match v {
        Num::Value(v) if v >= 0.0 => Ok(v),
        Num::Value(v) => Err(PollError::parse(format!(
            "traffic-request slice {:?} of {domain} has negative {what} {v}: not data",
            text::label(stamp)
        ))),
        Num::NonFinite => Err(PollError::parse(format!(
            "traffic-request slice {:?} of {domain} has {what} that is not a finite number: not data",
            text::label(stamp)
        ))),
        Num::Missing => Err(PollError::parse(format!(
            "traffic-request slice {:?} of {domain} has no {what}: not data",
            text::label(stamp)
        ))),
    }
}

/// The slices of a successful answer for the local day starting at `day_start` (Unix seconds),
/// in a zone `offset` seconds east of UTC. Slices outside the day (the one ending at its
/// start) are left out. A domain not asked for is ignored and counted; a domain twice, more
/// results than domains asked, more than [`MAX_SLICES_PER_ANSWER`] slices, an unreadable time,
/// a time off the 5-minute grid, two slices for one time, or a value that is missing, negative
/// or not finite are errors.
pub fn day_slices(answer: Answer<'_>, asked: &[String], day_start: i64, offset: i64) -> Result<DayAnswer, PollError> {
    let Some(Capped(results)) = answer.result else {
        return Err(PollError::parse("traffic-request answer has no \"result\" array"));
    };
    if results.len() > asked.len() {
        return Err(PollError::parse(format!(
            "traffic-request answer has {} results for the {} domains asked: not data",
            results.len(),
            asked.len()
        )));
    }
    let index: HashMap<&str, usize> = asked.iter().enumerate().map(|(i, d)| (d.as_str(), i)).collect();
    let mut seen = vec![false; asked.len()];
    let mut out = DayAnswer { domains: Vec::with_capacity(results.len()), ignored: 0 };
    for r in results {
        let Some(&i) = r.domain.get().and_then(|d| index.get(d.trim())) else {
            out.ignored += 1;
            continue;
        };
        let domain = asked[i].as_str();
        if std::mem::replace(&mut seen[i], true) {
            return Err(PollError::parse(format!("traffic-request answer has {domain} twice: not data")));
        }
        let series = r.data_series.map(|Capped(s)| s).unwrap_or_default();
        if series.len() > MAX_SLICES_PER_ANSWER {
            return Err(PollError::parse(format!(
                "traffic-request answer has {} slices for {domain} in one day; at most {MAX_SLICES_PER_ANSWER}: not data",
                series.len()
            )));
        }
        let mut slices = Vec::with_capacity(series.len());
        for s in &series {
            let stamp = s.timestamp.get().unwrap_or_default();
            let end = (stamp.trim().len() > 10).then(|| timeutil::parse_local_minute(stamp, offset)).flatten();
            let Some(end) = end.filter(|e| (e - day_start).rem_euclid(SLICE_SECS) == 0) else {
                return Err(PollError::parse(format!(
                    "traffic-request slice {:?} of {domain} is not a 5-minute slice time (yyyy-MM-dd HH:mm): not data",
                    text::label(stamp)
                )));
            };
            let traffic = value(s.traffic, "traffic", stamp, domain)?;
            let bandwidth = value(s.bandwidth, "bandwidth", stamp, domain)?;
            let requests = value(s.requests, "requests", stamp, domain)?;
            if end <= day_start || end > day_start + 86_400 {
                continue;
            }
            slices.push(Slice {
                end,
                traffic_centi_mb: (traffic * 100.0).round() as u64,
                kbps: ((bandwidth * 1000.0).round() as u64).min(u64::from(NO_SLICE - 1)) as u32,
                requests: requests.round() as u64,
            });
        }
        slices.sort_by_key(|s| s.end);
        if let Some(w) = slices.windows(2).find(|w| w[0].end == w[1].end) {
            return Err(PollError::parse(format!(
                "traffic-request answer has two slices of {domain} ending at {}: not data",
                timeutil::format_http_date(w[0].end)
            )));
        }
        out.domains.push(DomainDay { index: i, slices });
    }
    Ok(out)
}
