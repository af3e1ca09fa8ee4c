//! The figures of a kept month: month-to-date bytes and requests, per-domain and account peaks,
//! the 95th percentile and the average daily peak, all from the 5-minute slices.

use super::{BYTES_PER_CENTI_MB, BYTES_PER_SEC_PER_KBPS, Month, NO_SLICE, SLICES_PER_DAY};

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

impl Month {
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
}
