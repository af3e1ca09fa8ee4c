//! The kept month of one account: per domain and day the compact slices, per day and chunk of
//! domains when they were fetched, and from that which days are still due.

use crate::timeutil;

use super::super::pricing::TrafficMonth;
use super::{DayAnswer, Figures, MAX_DOMAINS_PER_REQUEST, NO_SLICE, SLICE_SECS, SLICES_PER_DAY, Slice};

/// One domain's day as kept: about 1.2 KB. Its fields are open to the traffic module because
/// the figures are computed in their own file.
#[derive(Debug, Clone)]
pub(super) struct KeptDay {
    /// Traffic of the day in hundredths of an MB.
    pub(super) traffic_centi_mb: u64,
    /// Requests of the day.
    pub(super) requests: u64,
    /// kbit/s per slot (slot `k` ends at `day_start + 300 (k + 1)`), [`NO_SLICE`] where none.
    pub(super) kbps: Box<[u32; SLICES_PER_DAY]>,
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

    /// The slot of the day's newest slice, if it has one.
    pub(super) fn newest_slot(&self) -> Option<usize> {
        self.kbps.iter().rposition(|k| *k != NO_SLICE)
    }
}

/// The month so far of one account: per day, per chunk of domains, when it was fetched; per
/// domain, its days. The fields are open to the traffic module (not beyond) for the figures
/// and the tests, which live in their own files.
#[derive(Debug, Clone)]
pub struct Month {
    /// Local day number of the month's first day.
    pub(super) first_day: i64,
    /// `[day][chunk]`: when the chunk's answer for that day was fetched (Unix seconds).
    pub(super) fetched_at: Vec<Vec<Option<i64>>>,
    /// `[domain][day]`.
    pub(super) days: Vec<Vec<Option<KeptDay>>>,
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
    pub(super) fn settled_day(&self, day: usize, chunk: usize, offset: i64, settle: i64) -> bool {
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
