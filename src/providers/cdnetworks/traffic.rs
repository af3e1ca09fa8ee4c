//! CDNetworks traffic, requests and billable bandwidth per domain from
//! `POST /api/report/traffic-request`: one job per account asks for all of its domains at once
//! (`groupBy: ["domain"]`, at most [`MAX_DOMAINS_PER_REQUEST`] per request), one local day per
//! request. The month so far is kept in memory as compact 5-minute slices; a day fetched after
//! it had settled is final, the rest (today and the settle window) is fetched again every poll.
//! From the slices come month-to-date bytes and requests, the peak and the 95th percentile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::families::FamilyId;
use crate::job::{BoxFuture, PollContext, PollError, Poller, Sample};
use crate::providers::common::wire::{Capped, ListLimit, Num, Text, parse_capped};
use crate::text;
use crate::timeutil;

use super::Client;
use super::pricing::{Ledger, TrafficMonth};

/// The API path.
pub const PATH: &str = "/api/report/traffic-request";
/// The `endpoint` label value.
pub const ENDPOINT: &str = "traffic-request";
/// A slice's length, in seconds.
pub const SLICE_SECS: i64 = 300;
/// Slices in a day.
pub const SLICES_PER_DAY: usize = 288;
/// The most slices one domain may have in a one-day answer: the window `[00:00, 24:00]` holds
/// the slice that ends at its start too.
pub const MAX_SLICES_PER_ANSWER: usize = SLICES_PER_DAY + 1;
/// The documented limit of domains per request.
pub const MAX_DOMAINS_PER_REQUEST: usize = 1000;
/// Bytes in the API's "MB". The docs do not say; traffic and bandwidth figures of CDN bills are
/// decimal (1 Mbps = 10^6 bit/s), so MB is taken as 10^6 bytes. The one place this is set.
pub const BYTES_PER_MB: f64 = 1e6;
/// Bytes per second in the API's "Mbps" (10^6 bit/s; Prometheus' base unit is bytes).
pub const BYTES_PER_SEC_PER_MBPS: f64 = 1e6 / 8.0;
/// Bytes per hundredth of an MB: traffic is kept in hundredths (the API's two decimals), exactly.
const BYTES_PER_CENTI_MB: f64 = BYTES_PER_MB / 100.0;
/// Bytes per second per kept bandwidth unit (kbit/s: the API's Mbps with up to three decimals).
const BYTES_PER_SEC_PER_KBPS: f64 = BYTES_PER_SEC_PER_MBPS / 1000.0;
/// A slot with no slice.
const NO_SLICE: u32 = u32::MAX;

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
        super::wire::envelope_error(&self.code, &self.message)
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

/// The 95th percentile as CDN bills compute it: sort the values ascending, drop the top 5 %, take
/// the highest remaining, i.e. the value at rank `ceil(0.95 n)` (1-based) of the `n` values.
/// `None` for no values. Reorders `values`.
pub fn p95<T: Ord + Copy>(values: &mut [T]) -> Option<T> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let rank = (95 * n).div_ceil(100);
    let (_, v, _) = values.select_nth_unstable(rank - 1);
    Some(*v)
}

/// One domain's day as kept: about 1.2 KB.
#[derive(Debug, Clone)]
struct KeptDay {
    traffic_centi_mb: u64,
    requests: u64,
    /// kbit/s per slot (slot `k` ends at `day_start + 300 (k + 1)`), [`NO_SLICE`] where none.
    kbps: Box<[u32; SLICES_PER_DAY]>,
}

impl KeptDay {
    fn new(slices: &[Slice], day_start: i64) -> Self {
        let mut kept = KeptDay { traffic_centi_mb: 0, requests: 0, kbps: Box::new([NO_SLICE; SLICES_PER_DAY]) };
        for s in slices {
            kept.traffic_centi_mb = kept.traffic_centi_mb.saturating_add(s.traffic_centi_mb);
            kept.requests = kept.requests.saturating_add(s.requests);
            let slot = ((s.end - day_start) / SLICE_SECS - 1) as usize;
            if let Some(k) = kept.kbps.get_mut(slot) {
                *k = s.kbps;
            }
        }
        kept
    }

    fn newest_slot(&self) -> Option<usize> {
        self.kbps.iter().rposition(|k| *k != NO_SLICE)
    }
}

/// The month so far of one account: per day, per chunk of domains, when it was fetched; per
/// domain, its days.
#[derive(Debug, Clone)]
pub struct Month {
    /// Local day number of the month's first day.
    first_day: i64,
    /// `[day][chunk]`: when the chunk's answer for that day was fetched (Unix seconds).
    fetched_at: Vec<Vec<Option<i64>>>,
    /// `[domain][day]`.
    days: Vec<Vec<Option<KeptDay>>>,
}

/// What the figures of one poll are.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Per domain: (bytes, requests, peak bytes/s, p95 bytes/s).
    pub domains: Vec<(f64, f64, f64, f64)>,
    /// The account's peak and p95 over the per-slice sum of its domains, bytes/s.
    pub account_peak: f64,
    /// See `account_peak`.
    pub account_p95: f64,
    /// The mean over the month's days with slices of each day's highest per-slice sum of the
    /// account's domains, bytes/s (`average_daily_peak` billing).
    pub account_average_daily_peak: f64,
    /// The end of the newest settled day, if a day of the month has settled.
    pub settled_until: Option<i64>,
}

impl Month {
    /// An empty month starting on local day `first_day`, for `domains` domains.
    pub fn new(first_day: i64, domains: usize) -> Self {
        let (y, m, _) = timeutil::civil_from_days(first_day);
        let days = timeutil::days_in_month(y, m) as usize;
        let chunks = domains.div_ceil(MAX_DOMAINS_PER_REQUEST);
        Month { first_day, fetched_at: vec![vec![None; chunks]; days], days: vec![vec![None; days]; domains] }
    }

    /// The local day number of the month's first day.
    pub fn first_day(&self) -> i64 {
        self.first_day
    }

    /// Whether a chunk's day is final: fetched at least `settle` seconds after the day ended.
    fn settled_day(&self, day: usize, chunk: usize, offset: i64, settle: i64) -> bool {
        let end = (self.first_day + day as i64 + 1) * 86_400 - offset;
        self.fetched_at[day][chunk].is_some_and(|t| t >= end + settle)
    }

    /// The (day index, chunk) pairs to fetch at `now`: every day of the month up to today that
    /// is not final.
    pub fn due(&self, today: i64, offset: i64, settle: i64) -> Vec<(usize, usize)> {
        let last = (today - self.first_day).min(self.fetched_at.len() as i64 - 1);
        (0..=last)
            .flat_map(|d| (0..self.fetched_at[0].len()).map(move |c| (d as usize, c)))
            .filter(|&(d, c)| !self.settled_day(d, c, offset, settle))
            .collect()
    }

    /// Keeps a chunk's answer for a day, fetched at `at`; domains of the chunk absent from the
    /// answer had no traffic that day.
    pub fn keep(&mut self, day: usize, chunk: usize, answer: &DayAnswer, offset: i64, at: i64) {
        let day_start = (self.first_day + day as i64) * 86_400 - offset;
        let base = chunk * MAX_DOMAINS_PER_REQUEST;
        let end = (base + MAX_DOMAINS_PER_REQUEST).min(self.days.len());
        for d in &mut self.days[base..end] {
            d[day] = None;
        }
        for dd in &answer.domains {
            if let Some(days) = self.days.get_mut(base + dd.index) {
                days[day] = Some(KeptDay::new(&dd.slices, day_start));
            }
        }
        self.fetched_at[day][chunk] = Some(at);
    }

    /// The figures from what is kept. The newest slice of the newest day not yet final (the
    /// still-filling one) counts in bytes and requests but not in peak and percentile.
    pub fn figures(&self, offset: i64, settle: i64) -> Figures {
        let days = self.fetched_at.len();
        let chunks = self.fetched_at[0].len();
        let day_final = |d: usize| (0..chunks).all(|c| self.settled_day(d, c, offset, settle));
        // The filling slice: the newest slot any domain has, if its day is not final.
        let newest = (0..days)
            .rev()
            .find_map(|d| self.days.iter().filter_map(|dd| dd[d].as_ref()?.newest_slot()).max().map(|s| (d, s)));
        let cut = newest.filter(|(d, _)| !day_final(*d)).map(|(d, s)| d * SLICES_PER_DAY + s);
        let mut sums: Vec<Option<u64>> = vec![None; days * SLICES_PER_DAY];
        let mut values: Vec<u32> = Vec::with_capacity(days * SLICES_PER_DAY);
        let mut domains = Vec::with_capacity(self.days.len());
        for dd in &self.days {
            let (mut centi, mut requests) = (0u64, 0u64);
            values.clear();
            for (d, kept) in dd.iter().enumerate() {
                let Some(kept) = kept else { continue };
                centi = centi.saturating_add(kept.traffic_centi_mb);
                requests = requests.saturating_add(kept.requests);
                for (s, k) in kept.kbps.iter().enumerate() {
                    let at = d * SLICES_PER_DAY + s;
                    if *k == NO_SLICE || cut.is_some_and(|c| at >= c) {
                        continue;
                    }
                    values.push(*k);
                    let sum = &mut sums[at];
                    *sum = Some(sum.unwrap_or(0) + u64::from(*k));
                }
            }
            let peak = values.iter().max().copied().unwrap_or(0);
            let p = p95(&mut values).unwrap_or(0);
            domains.push((
                centi as f64 * BYTES_PER_CENTI_MB,
                requests as f64,
                f64::from(peak) * BYTES_PER_SEC_PER_KBPS,
                f64::from(p) * BYTES_PER_SEC_PER_KBPS,
            ));
        }
        let daily_peaks: Vec<u64> =
            sums.chunks(SLICES_PER_DAY).filter_map(|day| day.iter().flatten().max().copied()).collect();
        let account_average_daily_peak = if daily_peaks.is_empty() {
            0.0
        } else {
            daily_peaks.iter().sum::<u64>() as f64 / daily_peaks.len() as f64 * BYTES_PER_SEC_PER_KBPS
        };
        let mut totals: Vec<u64> = sums.into_iter().flatten().collect();
        let account_peak = totals.iter().max().copied().unwrap_or(0) as f64 * BYTES_PER_SEC_PER_KBPS;
        let account_p95 = p95(&mut totals).unwrap_or(0) as f64 * BYTES_PER_SEC_PER_KBPS;
        let settled_until =
            (0..days).rev().find(|d| day_final(*d)).map(|d| (self.first_day + d as i64 + 1) * 86_400 - offset);
        Figures { domains, account_peak, account_p95, account_average_daily_peak, settled_until }
    }

    /// Whether every day of the month is final (fetched after it settled).
    pub fn settled(&self, offset: i64, settle: i64) -> bool {
        (0..self.fetched_at.len())
            .all(|d| (0..self.fetched_at[d].len()).all(|c| self.settled_day(d, c, offset, settle)))
    }

    /// The figures a bill is made of, as computed at `at`.
    pub fn for_pricing(&self, figures: &Figures, offset: i64, settle: i64, at: i64) -> TrafficMonth {
        TrafficMonth {
            first_day: self.first_day,
            bytes: figures.domains.iter().map(|d| d.0).sum(),
            p95: figures.account_p95,
            average_daily_peak: figures.account_average_daily_peak,
            at,
            settled: self.settled(offset, settle),
        }
    }

    /// Bytes of memory the kept days of one domain take at most (a full month).
    pub fn max_bytes_per_domain() -> usize {
        31 * (std::mem::size_of::<Option<KeptDay>>() + std::mem::size_of::<[u32; SLICES_PER_DAY]>())
    }
}

/// Today and the first day of its month (local day numbers) at `now` in a zone `offset` seconds
/// east of UTC: the month the figures are for.
pub fn local_month(now: i64, offset: i64) -> (i64, i64) {
    let today = (now + offset).div_euclid(86_400);
    let (y, m, _) = timeutil::civil_from_days(today);
    (today, timeutil::days_from_civil(y, m, 1))
}

/// `yyyy-MM-ddTHH:mm:ss±HH:mm` of the local midnight starting day `day` in a zone `offset`
/// seconds east of UTC.
pub fn local_midnight(day: i64, offset: i64) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.abs();
    format!("{}T00:00:00{sign}{:02}:{:02}", timeutil::format_ymd(day), o / 3600, o % 3600 / 60)
}

/// The samples of `figures` for `domains` (in the order the figures have them), and the
/// commitment (bytes per second) if configured. Live polling and backfill write the same.
pub fn samples(domains: &[String], figures: Figures, commit_bytes: Option<f64>) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(domains.len() * 4 + 4);
    for (domain, (bytes, requests, peak, p)) in domains.iter().zip(figures.domains) {
        samples.push(Sample::new(FamilyId::MonthToDateBandwidthBytes, bytes).label("domain", domain.clone()));
        samples.push(Sample::new(FamilyId::MonthToDateRequests, requests).label("domain", domain.clone()));
        samples
            .push(Sample::new(FamilyId::MonthToDatePeakBandwidthBytesPerSecond, peak).label("domain", domain.clone()));
        samples.push(Sample::new(FamilyId::MonthToDateP95BandwidthBytesPerSecond, p).label("domain", domain.clone()));
    }
    samples.push(Sample::new(FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond, figures.account_peak));
    samples.push(Sample::new(FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond, figures.account_p95));
    if let Some(t) = figures.settled_until {
        samples.push(Sample::new(FamilyId::TrafficSettledTimestampSeconds, t as f64));
    }
    if let Some(c) = commit_bytes {
        samples.push(Sample::new(FamilyId::BandwidthCommitBytesPerSecond, c));
    }
    samples
}

/// The traffic job of one account.
pub struct Traffic {
    client: Arc<Client>,
    domains: Vec<String>,
    settle: i64,
    commit_bytes: Option<f64>,
    path: String,
    month: Mutex<Option<Month>>,
    /// Where the account's pricing reads the figures; with it, last month is kept (or walked
    /// once after a start) until it settles, for its bill.
    ledger: Option<Arc<Ledger>>,
    previous: Mutex<Option<Month>>,
}

impl Traffic {
    /// The job for `domains` of the account behind `client`; `settle` seconds after a day ends,
    /// a fetch of it is final.
    pub fn new(client: Arc<Client>, domains: Vec<String>, settle: i64, commit_mbps: Option<f64>, path: String) -> Self {
        Traffic {
            client,
            domains,
            settle,
            commit_bytes: commit_mbps.map(|m| m * BYTES_PER_SEC_PER_MBPS),
            path,
            month: Mutex::new(None),
            ledger: None,
            previous: Mutex::new(None),
        }
    }

    /// The same job, publishing its figures into `ledger` for the account's pricing.
    pub fn with_ledger(self, ledger: Arc<Ledger>) -> Self {
        Traffic { ledger: Some(ledger), ..self }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Month>> {
        self.month.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_previous(&self) -> std::sync::MutexGuard<'_, Option<Month>> {
        self.previous.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches the days of `month` in `due`, keeping each answer at once: a poll that fails
    /// later keeps what it fetched for the next one.
    async fn fetch(
        &self,
        ctx: &PollContext,
        month: &Mutex<Option<Month>>,
        first_day: i64,
        due: Vec<(usize, usize)>,
        now: i64,
    ) -> Result<(), PollError> {
        let offset = self.client.utc_offset();
        let chunks: Vec<&[String]> = self.domains.chunks(MAX_DOMAINS_PER_REQUEST).collect();
        for (day, chunk) in due {
            let local_day = first_day + day as i64;
            let (from, to) = (local_midnight(local_day, offset), local_midnight(local_day + 1, offset));
            let asked = chunks[chunk];
            let answer = self.client.traffic_day(ctx, asked, &from, &to, &self.path).await?;
            if answer.ignored > 0 {
                tracing::warn!(
                    account = %self.client.account(),
                    ignored = answer.ignored,
                    date_from = %from,
                    "Traffic answer held domains that were not asked for; they were ignored"
                );
            }
            let mut month = month.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(mo) = month.as_mut().filter(|mo| mo.first_day() == first_day) {
                mo.keep(day, chunk, &answer, offset, now);
            }
        }
        Ok(())
    }

    /// Last month, for its bill: kept from the month's turn (or walked once after a start)
    /// until every day has settled, then published as final and dropped.
    async fn previous_month(
        &self,
        ctx: &PollContext,
        ledger: &Ledger,
        first_day: i64,
        today: i64,
        now: i64,
    ) -> Result<(), PollError> {
        let offset = self.client.utc_offset();
        let first = timeutil::month_start(first_day - 1);
        if ledger.traffic(first).is_some_and(|t| t.settled) {
            return Ok(());
        }
        let due = {
            let mut previous = self.lock_previous();
            if previous.as_ref().is_none_or(|p| p.first_day() != first) {
                *previous = Some(Month::new(first, self.domains.len()));
            }
            previous.as_ref().map(|p| p.due(today, offset, self.settle)).unwrap_or_default()
        };
        self.fetch(ctx, &self.previous, first, due, now).await?;
        let mut previous = self.lock_previous();
        if let Some(p) = previous.as_ref() {
            let figures = p.figures(offset, self.settle);
            let month = p.for_pricing(&figures, offset, self.settle, now);
            ledger.publish_traffic(month);
            if month.settled {
                *previous = None;
            }
        }
        Ok(())
    }

    async fn run(&self, ctx: &PollContext) -> Result<Vec<Sample>, PollError> {
        let now = self.client.clock().now();
        let offset = self.client.utc_offset();
        let (today, first_day) = local_month(now, offset);
        let due = {
            let mut month = self.lock();
            // At the month's turn the month-to-date figures start again; the closing month is
            // kept for its bill while it settles.
            if month.as_ref().is_none_or(|mo| mo.first_day() != first_day) {
                let closing = month.replace(Month::new(first_day, self.domains.len()));
                if let Some(closing) = closing.filter(|_| self.ledger.is_some()) {
                    *self.lock_previous() = Some(closing);
                }
            }
            month.as_ref().map(|mo| mo.due(today, offset, self.settle)).unwrap_or_default()
        };
        self.fetch(ctx, &self.month, first_day, due, now).await?;
        if let Some(ledger) = &self.ledger {
            self.previous_month(ctx, ledger, first_day, today, now).await?;
        }
        let (figures, month) = match self.lock().as_ref() {
            Some(mo) => {
                let figures = mo.figures(offset, self.settle);
                let month = mo.for_pricing(&figures, offset, self.settle, now);
                (figures, month)
            }
            None => return Err(PollError::parse("traffic state vanished")),
        };
        if let Some(ledger) = &self.ledger {
            ledger.publish_traffic(month);
        }
        Ok(samples(&self.domains, figures, self.commit_bytes))
    }
}

impl Poller for Traffic {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NINE: i64 = 9 * 3600;

    #[test]
    fn p95_is_the_value_at_rank_ceil_095_n() {
        assert_eq!(p95::<u32>(&mut []), None);
        assert_eq!(p95(&mut [7u32]), Some(7));
        // n = 20: rank 19, the top one dropped.
        let mut v: Vec<u32> = (1..=20).rev().collect();
        assert_eq!(p95(&mut v), Some(19));
        // n = 100: rank 95; n = 101: rank ceil(95.95) = 96.
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(p95(&mut v), Some(95));
        let mut v: Vec<u32> = (1..=101).collect();
        assert_eq!(p95(&mut v), Some(96));
        // A 31-day month: 8,928 slices, rank 8,482, the top 446 dropped.
        let mut v: Vec<u32> = (0..8928).map(|i| (i * 7919) % 8928).collect();
        assert_eq!(p95(&mut v), Some(8481));
        // Against a sort, on uneven data with ties.
        for n in 1..300u32 {
            let mut v: Vec<u32> = (0..n).map(|i| (i * 37 + 11) % 50).collect();
            let mut sorted = v.clone();
            sorted.sort_unstable();
            let rank = (f64::from(n) * 0.95).ceil() as usize;
            assert_eq!(p95(&mut v), Some(sorted[rank - 1]), "n = {n}");
        }
    }

    #[test]
    fn day_windows_carry_the_zone_offset() {
        let day = timeutil::days_from_civil(2026, 11, 1);
        assert_eq!(local_midnight(day, NINE), "2026-11-01T00:00:00+09:00");
        assert_eq!(local_midnight(day, -(5 * 3600 + 1800)), "2026-11-01T00:00:00-05:30");
        assert_eq!(local_midnight(day, 0), "2026-11-01T00:00:00+00:00");
    }

    #[test]
    fn the_month_turns_at_local_midnight() {
        let dec1 = timeutil::days_from_civil(2026, 12, 1);
        let nov1 = timeutil::days_from_civil(2026, 11, 1);
        // 1 December 03:00 UTC is still 30 November 22:00 in GMT-05:00, already 12:00 in GMT+09:00.
        let t = dec1 * 86_400 + 3 * 3600;
        assert_eq!(local_month(t, -5 * 3600), (dec1 - 1, nov1));
        assert_eq!(local_month(t, NINE), (dec1, dec1));
        // GMT+09:00 turns at 15:00 UTC the day before.
        assert_eq!(local_month(dec1 * 86_400 - NINE - 1, NINE), (dec1 - 1, nov1));
        assert_eq!(local_month(dec1 * 86_400 - NINE, NINE), (dec1, dec1));
        // In a negative zone, the day windows and what is due follow the local days.
        let m = Month::new(nov1, 1);
        let (today, _) = local_month(t, -5 * 3600);
        assert_eq!(m.due(today, -5 * 3600, 86_400).len(), 30, "all of November");
        assert_eq!(local_midnight(today, -5 * 3600), "2026-11-30T00:00:00-05:00");
    }

    fn slice(stamp: &str, traffic: &str, bw: &str, req: &str) -> serde_json::Value {
        json!({"timestamp": stamp, "traffic": traffic, "bandwidth": bw, "requests": req})
    }

    fn parse(body: &serde_json::Value, asked: &[&str], day: i64, offset: i64) -> Result<DayAnswer, PollError> {
        let asked: Vec<String> = asked.iter().map(|s| s.to_string()).collect();
        let bytes = body.to_string();
        day_slices(parse_answer(bytes.as_bytes(), asked.len())?, &asked, day * 86_400 - offset, offset)
    }

    #[test]
    fn slices_are_placed_by_their_end_in_the_zone_and_the_leading_one_is_left_out() {
        let day = timeutil::days_from_civil(2026, 11, 1);
        let body = json!({"result": [{"domain": "a.example", "dataSeries": [
            slice("2026-11-01 00:00", "9", "9", "9"),
            slice("2026-11-01 00:05", "1.25", "0.91", "512"),
            slice("2026-11-02 00:00", "2", "1.5", "1"),
        ]}, {"domain": "other.example", "dataSeries": []}]});
        let a = parse(&body, &["a.example", "b.example"], day, NINE).unwrap();
        assert_eq!(a.ignored, 1);
        assert_eq!(a.domains.len(), 1);
        let s = &a.domains[0].slices;
        assert_eq!(s.len(), 2, "the slice ending at the day's start belongs to the day before");
        assert_eq!(s[0], Slice { end: day * 86_400 - NINE + 300, traffic_centi_mb: 125, kbps: 910, requests: 512 });
        assert_eq!(s[1].end, (day + 1) * 86_400 - NINE);
    }

    #[test]
    fn answers_that_are_not_data_are_errors() {
        let day = timeutil::days_from_civil(2026, 11, 1);
        let one = |s: serde_json::Value| json!({"result": [{"domain": "a.example", "dataSeries": [s]}]});
        for (body, needle) in [
            (one(slice("2026-11-01 00:05", "-1", "1", "1")), "negative traffic"),
            (one(slice("2026-11-01 00:05", "1", "NaN", "1")), "finite"),
            (one(slice("2026-11-01 00:05", "1", "1", "1e400")), "finite"),
            (one(json!({"timestamp": "2026-11-01 00:05", "traffic": "1", "bandwidth": "1"})), "no requests"),
            (one(slice("2026-11-01 00:07", "1", "1", "1")), "5-minute"),
            (one(slice("2026-11-01", "1", "1", "1")), "5-minute"),
            (one(slice("bogus", "1", "1", "1")), "5-minute"),
            (
                json!({"result": [{"domain": "a.example", "dataSeries": [
                    slice("2026-11-01 00:05", "1", "1", "1"), slice("2026-11-01 00:05", "1", "1", "1")]}]}),
                "two slices",
            ),
            (json!({"result": [{"domain": "a.example"}, {"domain": "a.example"}]}), "twice"),
            (json!({"result": [{"domain": "a.example"}, {"domain": "x"}, {"domain": "y"}]}), "3 results"),
            (json!({"code": "0"}), "no \"result\""),
        ] {
            let e = parse(&body, &["a.example", "b.example"], day, NINE).unwrap_err();
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        let many: Vec<_> =
            (0..290).map(|i| slice(&format!("2026-11-01 {:02}:{:02}", i / 12, i % 12 * 5), "1", "1", "1")).collect();
        let e = parse(&json!({"result": [{"domain": "a.example", "dataSeries": many}]}), &["a.example"], day, NINE)
            .unwrap_err();
        assert!(e.message.contains("289") && e.message.contains("answer_limits.traffic_bytes"), "{e}");
    }

    /// A day answer with one slice per slot for domain 0: kbps = f(slot), traffic 1.00 MB, 1 request.
    fn full_day(slots: usize, kbps: impl Fn(usize) -> u32, day_start: i64) -> DayAnswer {
        let slices = (0..slots)
            .map(|k| Slice { end: day_start + 300 * (k as i64 + 1), traffic_centi_mb: 100, kbps: kbps(k), requests: 1 })
            .collect();
        DayAnswer { domains: vec![DomainDay { index: 0, slices }], ignored: 0 }
    }

    #[test]
    fn settle_logic_fetches_today_and_the_settle_window_only() {
        let first = timeutil::days_from_civil(2026, 11, 1);
        let settle = 86_400;
        let mut m = Month::new(first, 1);
        // The 10th, 12:00 local: the first poll walks days 1..=10.
        let today = first + 9;
        let now = today * 86_400 - NINE + 12 * 3600;
        let due = m.due(today, NINE, settle);
        assert_eq!(due, (0..10).map(|d| (d, 0)).collect::<Vec<_>>());
        for (d, c) in due {
            m.keep(d, c, &full_day(288, |_| 1, (first + d as i64) * 86_400 - NINE), NINE, now);
        }
        // Days that ended a day or more before the fetch are final; the 9th (ended 12 h ago)
        // and today are not.
        assert_eq!(m.due(today, NINE, settle), vec![(8, 0), (9, 0)]);
        // Next day 13:00: the 9th is due once more (fetched before it settled), then final.
        let now2 = now + 86_400 + 3600;
        assert_eq!(m.due(today + 1, NINE, settle), vec![(8, 0), (9, 0), (10, 0)]);
        for (d, c) in m.due(today + 1, NINE, settle) {
            m.keep(d, c, &full_day(288, |_| 1, (first + d as i64) * 86_400 - NINE), NINE, now2);
        }
        assert_eq!(m.due(today + 1, NINE, settle), vec![(9, 0), (10, 0)]);
        let f = m.figures(NINE, settle);
        assert_eq!(f.settled_until, Some((first + 9) * 86_400 - NINE), "the 9th is the newest final day");
    }

    #[test]
    fn figures_leave_the_filling_slice_out_of_peak_and_p95_only() {
        let first = timeutil::days_from_civil(2026, 11, 1);
        let mut m = Month::new(first, 2);
        let start = first * 86_400 - NINE;
        // Domain 0: 100 slices of 1..=100 kbit/s, then a filling slice of 10,000.
        let mut a = full_day(101, |k| if k == 100 { 10_000 } else { k as u32 + 1 }, start);
        // Domain 1: the same slots, 1000 kbit/s each.
        let mut b = full_day(101, |_| 1000, start);
        b.domains[0].index = 1;
        a.domains.append(&mut b.domains);
        m.keep(0, 0, &a, NINE, start + 101 * 300 + 60);
        let f = m.figures(NINE, 86_400);
        let (bytes, requests, peak, p) = f.domains[0];
        assert_eq!(bytes, 101.0 * 1e6, "bytes and requests count the filling slice");
        assert_eq!(requests, 101.0);
        assert_eq!(peak, 100.0 * 125.0, "the filling slice is not the peak");
        assert_eq!(p, 95.0 * 125.0);
        assert_eq!(f.domains[1].3, 1000.0 * 125.0);
        // The account: per-slot sums 1001..=1100 kbit/s, rank 95 → 1095.
        assert_eq!(f.account_p95, 1095.0 * 125.0);
        assert_eq!(f.account_peak, 1100.0 * 125.0);
        assert_eq!(f.settled_until, None);
    }

    #[test]
    fn a_new_month_starts_empty_and_february_has_28_days() {
        let m = Month::new(timeutil::days_from_civil(2027, 2, 1), 3);
        assert_eq!(m.fetched_at.len(), 28);
        let f = m.figures(0, 86_400);
        assert_eq!(f.domains, vec![(0.0, 0.0, 0.0, 0.0); 3]);
        assert_eq!((f.account_peak, f.account_p95, f.settled_until), (0.0, 0.0, None));
        // 2,500 domains: three chunks per day.
        let m = Month::new(timeutil::days_from_civil(2027, 2, 1), 2500);
        assert_eq!(m.due(m.first_day(), 0, 86_400).len(), 3);
    }

    #[test]
    fn a_domain_keeps_at_most_about_36_kb() {
        let bytes = Month::max_bytes_per_domain();
        assert!(bytes <= 37 * 1024, "{bytes}");
        assert!(bytes >= 31 * 288 * 4, "{bytes}");
    }
}
