//! CDNetworks history for `backfill`: each domain's local storage from `domain-usage` (two
//! years back, 31 days per request), and the account's traffic from `traffic-request` (183 days
//! back, a request per day per 1,000 domains, month-to-date figures at each day's end). The same
//! client, rate limiter, parsing and figures as live polling.

use std::sync::{Arc, Mutex};

use crate::job::{BoxFuture, PollContext};
use crate::providers::{History, SampleSink, Window, WindowError};
use crate::timeutil::{chunks, civil_from_days, days_in_month, format_ymd, month_start, months};

use super::config::CdnetworksAccount;
use super::pricing::{self, StorageMonth};
use super::traffic::{self, Figures, MAX_DOMAINS_PER_REQUEST, Month};
use super::wire::Point;
use super::{Client, PROVIDER};

/// CDNetworks keeps two years of local-storage history.
pub const HISTORY_DAYS: i64 = 731;
/// Days per `domain-usage` window: `dateFrom` and `dateTo` at most 31 days apart.
pub const WINDOW_DAYS: i64 = 31;
/// How far back `traffic-request` serves (183 days).
pub const TRAFFIC_HISTORY_DAYS: i64 = 183;

const CTX: PollContext = PollContext::UNBOUNDED;

/// The history units of one account: one per domain, and its traffic when the traffic job is on.
pub fn units(account: &CdnetworksAccount, client: Arc<Client>) -> Vec<Box<dyn History>> {
    let mut units: Vec<Box<dyn History>> = (0..account.domains.len())
        .map(|domain| Box::new(Domain { client: client.clone(), account: account.clone(), domain }) as Box<dyn History>)
        .collect();
    // With a pricing table the month walk also writes the account's spend, whatever it prices.
    if account.traffic || account.pricing.is_some() {
        units.push(Box::new(Traffic { client, account: account.clone(), last: Mutex::new(None) }));
    }
    units
}

struct Domain {
    client: Arc<Client>,
    account: CdnetworksAccount,
    domain: usize,
}

impl History for Domain {
    fn name(&self) -> String {
        format!("{PROVIDER}/{}/{}", self.account.name, self.account.domains[self.domain].domain)
    }

    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        let today = (now + self.account.utc_offset).div_euclid(86_400);
        let first = from.max(today - HISTORY_DAYS + 1);
        chunks(first, to.min(today), WINDOW_DAYS)
    }

    fn fetch<'a>(&'a self, w: Window, sink: &'a mut dyn SampleSink) -> BoxFuture<'a, Result<(), WindowError>> {
        Box::pin(async move {
            let d = &self.account.domains[self.domain];
            // dateFrom must be before dateTo: a one-day window asks for the next day too.
            let date_to = if w.last > w.first { w.last } else { w.last + 1 };
            let path = format!("{}.domains[{}]", self.account.path, self.domain);
            let points = self
                .client
                .domain_usage_between(&CTX, d, &path, &format_ymd(w.first), &format_ymd(date_to))
                .await
                .map_err(|error| WindowError::Fetch { error, from: w.first })?;
            let offset = self.client.utc_offset();
            let (start, end) = (w.first * 86_400 - offset, (w.last + 1) * 86_400 - offset);
            for p in points.iter().filter(|p| p.end > start && p.end <= end && p.end <= w.now) {
                sink.write(&p.samples(&d.domain), p.end)?;
            }
            Ok(())
        })
    }
}

struct Traffic {
    client: Arc<Client>,
    account: CdnetworksAccount,
    /// The previous month's bill once a window has walked it whole: (its first day, its items).
    last: Mutex<Option<(i64, Vec<pricing::Item>)>>,
}

impl Traffic {
    /// Each domain's storage points of the month `w` is in, up to its last day (for pricing).
    async fn storage(&self, w: &Window) -> Result<Vec<Vec<Point>>, WindowError> {
        let mut out = Vec::with_capacity(self.account.domains.len());
        // dateFrom must be before dateTo: a one-day window asks for the next day too.
        let to = if w.last > w.first { w.last } else { w.last + 1 };
        for (i, d) in self.account.domains.iter().enumerate() {
            let path = format!("{}.domains[{i}]", self.account.path);
            let points = self
                .client
                .domain_usage_between(&CTX, d, &path, &format_ymd(w.first), &format_ymd(to))
                .await
                .map_err(|error| WindowError::Fetch { error, from: w.first })?;
            out.push(points);
        }
        Ok(out)
    }
}

impl History for Traffic {
    fn name(&self) -> String {
        format!("{PROVIDER}/{}/{}", self.account.name, traffic::ENDPOINT)
    }

    /// The contract's prices are written with the traffic.
    fn bills(&self) -> bool {
        self.account.pricing.is_some()
    }

    /// Month by month in the account's zone, from each month's first day (month-to-date figures
    /// start there); months older than the API's history cannot be summed whole and are left out.
    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        let today = (now + self.account.utc_offset).div_euclid(86_400);
        let oldest = today - TRAFFIC_HISTORY_DAYS + 1;
        // Days before today: today belongs to live polling.
        months(from, to.min(today - 1))
            .into_iter()
            .filter(|(first, _)| *first >= oldest)
            .map(|(first, last)| (first, last.min(to).min(today - 1)))
            .collect()
    }

    /// Days `first..=last` of one month (in the account's zone): the month-to-date figures at
    /// each day's end, as live polling computes them. Days before `emit_from` only feed the month.
    fn fetch<'a>(&'a self, w: Window, sink: &'a mut dyn SampleSink) -> BoxFuture<'a, Result<(), WindowError>> {
        Box::pin(async move {
            let offset = self.client.utc_offset();
            let domains: Vec<String> = self.account.domains.iter().map(|d| d.domain.clone()).collect();
            let pricing = self.account.pricing.as_ref();
            let storage = match pricing.filter(|p| p.storage.is_some()) {
                Some(_) => self.storage(&w).await?,
                None => Vec::new(),
            };
            let (y, m, _) = civil_from_days(w.first);
            let whole = w.last == w.first + i64::from(days_in_month(y, m)) - 1;
            let last_bill = self.lock().take().filter(|(first, _)| *first == month_start(w.first - 1));
            let mut month = Month::new(w.first, domains.len());
            for day in w.first..=w.last {
                if self.account.traffic {
                    for (chunk, asked) in domains.chunks(MAX_DOMAINS_PER_REQUEST).enumerate() {
                        let (from, to) =
                            (traffic::local_midnight(day, offset), traffic::local_midnight(day + 1, offset));
                        let answer = self
                            .client
                            .traffic_day(&CTX, asked, &from, &to, &self.account.path)
                            .await
                            .map_err(|error| WindowError::Fetch { error, from: day })?;
                        month.keep((day - w.first) as usize, chunk, &answer, offset, w.now);
                    }
                }
                if day < w.emit_from && !(whole && day == w.last) {
                    continue;
                }
                // Past days are final (settle 0: fetched after they ended).
                let figures = month.figures(offset, 0);
                let at = (day + 1) * 86_400 - offset;
                let mut samples = Vec::new();
                if let Some(p) = pricing {
                    let items = self.priced(p, &month, &figures, &storage, at, offset);
                    let billed = p.bandwidth.map(|b| match b.billing {
                        pricing::BandwidthBilling::P95 => figures.account_p95,
                        pricing::BandwidthBilling::AverageDailyPeak => figures.account_average_daily_peak,
                    });
                    samples.extend(pricing::month_samples(&items, billed, &p.currency));
                    samples.push(pricing::month_start_sample(month_start(w.first), offset));
                    if let Some((_, bill)) = &last_bill {
                        samples.extend(pricing::last_month_samples(bill, &p.currency));
                    }
                    if whole && day == w.last {
                        *self.lock() = Some((w.first, items));
                    }
                }
                if self.account.traffic {
                    samples.extend(traffic::samples(&domains, figures, None));
                }
                if day >= w.emit_from {
                    sink.write(&samples, at)?;
                }
            }
            Ok(())
        })
    }
}

impl Traffic {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(i64, Vec<pricing::Item>)>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The month's items at `at` (a day's end), as the live pricing job computes them.
    fn priced(
        &self,
        p: &pricing::Pricing,
        month: &Month,
        figures: &Figures,
        storage: &[Vec<Point>],
        at: i64,
        offset: i64,
    ) -> Vec<pricing::Item> {
        let first = month.first_day();
        let traffic = month.for_pricing(figures, offset, 0, at);
        let bandwidth = match p.bandwidth.map(|b| b.billing) {
            Some(pricing::BandwidthBilling::AverageDailyPeak) => traffic.average_daily_peak,
            _ => traffic.p95,
        };
        let storage_gb = p.storage.map_or(0.0, |s| {
            let months: Vec<StorageMonth> =
                storage.iter().map(|points| StorageMonth::from_points(first, points, offset, at)).collect();
            StorageMonth::billed_sum(&months, s.basis).unwrap_or(0.0) / pricing::BYTES_PER_GB
        });
        let usage = pricing::Usage { bytes: traffic.bytes, bandwidth, storage_gb };
        pricing::quote(p, self.account.bandwidth_commit_mbps, &usage, pricing::elapsed_share(at, first, offset))
    }
}
