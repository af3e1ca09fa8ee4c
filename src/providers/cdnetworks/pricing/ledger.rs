//! What an account's traffic and storage jobs publish for its pricing job: per month, the
//! figures a bill is made of. At most two months are kept (this one and the last).

use std::sync::Mutex;

use tokio::sync::Notify;

use super::StorageBasis;
use crate::providers::cdnetworks::wire::Point;
use crate::timeutil;

/// One month of the account's traffic, as the traffic job last computed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficMonth {
    /// Local day number of the month's first day.
    pub first_day: i64,
    /// Bytes of the month so far, all domains (settled and provisional).
    pub bytes: f64,
    /// The 95th percentile of the account's summed 5-minute slices, bytes per second.
    pub p95: f64,
    /// The mean of each day's highest summed slice, bytes per second.
    pub average_daily_peak: f64,
    /// When the figures were computed (Unix seconds).
    pub at: i64,
    /// Whether every day of the month is settled: the figures are final.
    pub settled: bool,
}

/// One month of one domain's storage: each local day's highest complete point.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageMonth {
    /// Local day number of the month's first day.
    pub first_day: i64,
    /// Bytes per day of the month (index 0 is the first day); `None` before a point is complete.
    pub days: Vec<Option<f64>>,
    /// The newest complete point before the month: what is stored until its first point ends.
    pub carry: Option<(i64, f64)>,
    /// When the points were fetched (Unix seconds).
    pub at: i64,
    /// Whether the point that ends the month's last day is in: the month is whole.
    pub complete: bool,
}

impl StorageMonth {
    /// The month starting on local day `first_day` from `points` (a zone `offset` seconds east of
    /// UTC), as fetched at `now`: points still filling are left out.
    pub fn from_points(first_day: i64, points: &[Point], offset: i64, now: i64) -> Self {
        let (y, m, _) = timeutil::civil_from_days(first_day);
        let len = timeutil::days_in_month(y, m) as usize;
        let mut month = StorageMonth { first_day, days: vec![None; len], carry: None, at: now, complete: false };
        month.add(points, offset, now);
        month
    }

    /// Adds the complete points of `points` that fall in the month (or just before it).
    pub fn add(&mut self, points: &[Point], offset: i64, now: i64) {
        let end_of_month = (self.first_day + self.days.len() as i64) * 86_400 - offset;
        for p in points.iter().filter(|p| p.end <= now) {
            // A point labels the end of its interval: `24:00` belongs to the day that ends there.
            let day = (p.end - 1 + offset).div_euclid(86_400) - self.first_day;
            if day < 0 {
                if self.carry.is_none_or(|(end, _)| p.end >= end) {
                    self.carry = Some((p.end, p.bytes));
                }
                continue;
            }
            let Some(slot) = self.days.get_mut(day as usize) else { continue };
            *slot = Some(slot.map_or(p.bytes, |b| b.max(p.bytes)));
            if p.end >= end_of_month {
                self.complete = true;
            }
        }
        self.at = self.at.max(now);
    }

    /// The billed bytes of an account's domains together: each day's value is the sum of the
    /// domains' highest points that day (days every domain has a point for), and the month's is
    /// the peak or the mean of those days; before the month's first complete day, what was
    /// stored when it began. `None` with nothing at all.
    pub fn billed_sum(months: &[StorageMonth], basis: StorageBasis) -> Option<f64> {
        let len = months.iter().map(|m| m.days.len()).min()?;
        let days: Vec<f64> = (0..len).filter_map(|d| months.iter().map(|m| m.days[d]).sum::<Option<f64>>()).collect();
        if days.is_empty() {
            return months.iter().map(|m| m.carry.map(|(_, b)| b)).sum();
        }
        Some(match basis {
            StorageBasis::Peak => days.iter().copied().fold(f64::MIN, f64::max),
            StorageBasis::Average => days.iter().sum::<f64>() / days.len() as f64,
        })
    }
}

/// The figures the pricing job of one account reads, published by its other jobs.
#[derive(Debug)]
pub struct Ledger {
    inner: Mutex<Inner>,
    changed: Notify,
}

#[derive(Debug)]
struct Inner {
    traffic: Vec<TrafficMonth>,
    /// Per domain (in the account's order), its months.
    storage: Vec<Vec<StorageMonth>>,
}

/// Months kept per input: this one and the last.
const MONTHS: usize = 2;

fn keep<T>(months: &mut Vec<T>, first_day: impl Fn(&T) -> i64, month: T) {
    let day = first_day(&month);
    months.retain(|m| first_day(m) != day);
    months.push(month);
    months.sort_by_key(|m| std::cmp::Reverse(first_day(m)));
    months.truncate(MONTHS);
}

impl Ledger {
    /// An empty ledger for an account of `domains` domains.
    pub fn new(domains: usize) -> Self {
        Ledger {
            inner: Mutex::new(Inner { traffic: Vec::new(), storage: vec![Vec::new(); domains] }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a month of traffic (replacing the same month).
    pub fn publish_traffic(&self, month: TrafficMonth) {
        keep(&mut self.lock().traffic, |m| m.first_day, month);
        self.changed.notify_waiters();
    }

    /// Publishes a month of one domain's storage (replacing the same month).
    pub fn publish_storage(&self, domain: usize, month: StorageMonth) {
        if let Some(months) = self.lock().storage.get_mut(domain) {
            keep(months, |m| m.first_day, month);
        }
        self.changed.notify_waiters();
    }

    /// The traffic of the month starting on `first_day`, if published.
    pub fn traffic(&self, first_day: i64) -> Option<TrafficMonth> {
        self.lock().traffic.iter().find(|m| m.first_day == first_day).copied()
    }

    /// Per domain, its storage of the month starting on `first_day`, if published.
    pub fn storage(&self, first_day: i64) -> Vec<Option<StorageMonth>> {
        self.lock().storage.iter().map(|months| months.iter().find(|m| m.first_day == first_day).cloned()).collect()
    }

    /// One domain's storage of the month starting on `first_day`, if published.
    pub fn storage_of(&self, domain: usize, first_day: i64) -> Option<StorageMonth> {
        self.lock().storage.get(domain)?.iter().find(|m| m.first_day == first_day).cloned()
    }

    /// Resolves at the next publication.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}
