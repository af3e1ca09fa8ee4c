//! The month so far of one account as kept in memory: per domain and day, the day's traffic,
//! requests and 5-minute bandwidth slots; and the figures made from them (month-to-date bytes and
//! requests, the peak and the 95th percentile per domain and for the account).

use crate::timeutil;

use super::{BYTES_PER_CENTI_MB, BYTES_PER_SEC_PER_KBPS, NO_SLICE, SLICE_SECS, SLICES_PER_DAY};

use super::MAX_DOMAINS_PER_REQUEST;
use super::wire::{DayAnswer, Slice};
use crate::providers::cdnetworks::pricing::TrafficMonth;

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
    pub(super) fetched_at: Vec<Vec<Option<i64>>>,
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
