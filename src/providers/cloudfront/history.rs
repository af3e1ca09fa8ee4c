//! CloudFront history for `backfill`, month by month up to yesterday (today belongs to live
//! polling), written as the month-to-date figures at each day's last second (the families and
//! labels of live polling):
//! - `cost`: `GetCostAndUsage` `DAILY` by usage type (spend and cost and usage per item), and
//!   the month before's `MONTHLY` total as last month's bill. Cost Explorer keeps 13 months
//!   and the current one; older months are left out, said once. Each page is a billed request
//!   ($0.01): a year of an account with a few dozen usage types is a few dozen requests.
//! - `usage`: CloudWatch `GetMetricData` in daily buckets for the distributions there are now
//!   (a deleted one is not listed). CloudWatch keeps hourly data 455 days.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::job::{BoxFuture, PollContext, PollError, Sample};
use crate::providers::{History, SampleSink, Window, WindowError};
use crate::timeutil;

use super::jobs::{METRICS, cost_and_usage, cost_and_usage_body, cost_pages, distributions, metric_points};
use super::normalize::{self, Costs};
use super::{Client, CloudFrontAccount, PROVIDER};

const CTX: PollContext = PollContext::UNBOUNDED;

/// How far back Cost Explorer answers: the current month and the 13 before it.
pub const COST_HISTORY_MONTHS: i64 = 13;
/// How far back CloudWatch keeps CloudFront's metrics at hourly resolution (455 days).
pub const USAGE_HISTORY_DAYS: i64 = 455;

/// The history units of one account: `cost` and `usage`.
pub fn units(account: &CloudFrontAccount, client: Arc<Client>) -> Vec<Box<dyn History>> {
    vec![
        Box::new(Unit { client: client.clone(), account: account.clone(), kind: Kind::Cost }),
        Box::new(Unit { client, account: account.clone(), kind: Kind::Usage }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cost,
    Usage,
}

struct Unit {
    client: Arc<Client>,
    account: CloudFrontAccount,
    kind: Kind,
}

fn failed(from: i64) -> impl Fn(PollError) -> WindowError {
    move |error| WindowError::Fetch { error, from }
}

/// The first day of the month `n` months before the one holding `day`.
fn months_back(day: i64, n: i64) -> i64 {
    (0..n).fold(timeutil::month_start(day), |m, _| timeutil::month_start(m - 1))
}

impl History for Unit {
    fn name(&self) -> String {
        let part = match self.kind {
            Kind::Cost => "cost",
            Kind::Usage => "usage",
        };
        format!("{PROVIDER}/{}/{part}", self.account.name)
    }

    fn bills(&self) -> bool {
        self.kind == Kind::Cost
    }

    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        let today = now.div_euclid(86_400);
        let oldest = match self.kind {
            Kind::Cost => months_back(today, COST_HISTORY_MONTHS),
            Kind::Usage => today - USAGE_HISTORY_DAYS,
        };
        crate::providers::month_windows(&self.name(), from, to, now, oldest, "AWS keeps no older data for this unit")
    }

    fn fetch<'a>(&'a self, w: Window, sink: &'a mut dyn SampleSink) -> BoxFuture<'a, Result<(), WindowError>> {
        Box::pin(async move {
            match self.kind {
                Kind::Cost => self.cost(w, sink).await,
                Kind::Usage => self.usage(w, sink).await,
            }
        })
    }
}

impl Unit {
    async fn cost(&self, w: Window, sink: &mut dyn SampleSink) -> Result<(), WindowError> {
        let fetch = failed(w.first);
        let (account, client) = (&self.account, &*self.client);
        let metric = account.cost_metric.name();
        let body = cost_and_usage_body(account, w.first, w.last + 1, "DAILY", true);
        let mut days: BTreeMap<i64, Costs> = BTreeMap::new();
        let max_pages = account.max_pages * (w.last - w.first + 1) as usize;
        cost_pages(client, &CTX, &body, max_pages, &mut |r| {
            let day = r
                .period
                .as_ref()
                .and_then(|p| timeutil::parse_ymd(&p.start))
                .filter(|d| (w.first..=w.last).contains(d))
                .ok_or_else(|| PollError::parse("GetCostAndUsage answer has a day outside the window asked"))?;
            days.entry(day).or_default().add_result(r, metric)
        })
        .await
        .map_err(&fetch)?;
        let previous = timeutil::month_start(w.first - 1);
        let last_month = cost_and_usage(client, &CTX, account, previous, w.first, false).await.map_err(&fetch)?;
        let mut month = Costs::default();
        for day in w.first..=w.last {
            if let Some(d) = days.get(&day) {
                if d.currency.is_some() && month.currency.is_some() && d.currency != month.currency {
                    return Err(fetch(PollError::parse(
                        "Cost Explorer's days of one month are in different currencies",
                    )));
                }
                month.currency = month.currency.take().or(d.currency.clone());
                month.total += d.total;
                for (item, (cost, usage)) in &d.items {
                    let e = month.items.entry(item.clone()).or_insert((0.0, None));
                    e.0 += cost;
                    if let Some(u) = usage {
                        e.1 = Some(e.1.unwrap_or(0.0) + u);
                    }
                }
            }
            if day < w.emit_from {
                continue;
            }
            let mut samples: Vec<Sample> = normalize::month_to_date(&month, account.max_items);
            if last_month.currency.is_none() || last_month.currency == month.currency || month.currency.is_none() {
                samples.extend(normalize::last_month(&last_month, account.max_items).into_iter().skip(1).take(1));
            }
            sink.write(&samples, (day + 1) * 86_400 - 1)?;
        }
        Ok(())
    }

    async fn usage(&self, w: Window, sink: &mut dyn SampleSink) -> Result<(), WindowError> {
        let fetch = failed(w.first);
        let (account, client) = (&self.account, &*self.client);
        let dists = distributions(client, &CTX, account).await.map_err(&fetch)?;
        let (start, end) = (w.first * 86_400, (w.last + 1) * 86_400);
        // Per distribution and metric, the value of each day of the window.
        let mut points: Vec<[BTreeMap<i64, f64>; 3]> = vec![Default::default(); dists.len()];
        for (n, batch) in dists.chunks(super::jobs::DISTRIBUTIONS_PER_REQUEST).enumerate() {
            let offset = n * super::jobs::DISTRIBUTIONS_PER_REQUEST;
            metric_points(client, &CTX, account, batch, start, end, &mut |i, m, t, v| {
                *points[offset + i][m].entry((t as i64).div_euclid(86_400)).or_default() += v;
            })
            .await
            .map_err(&fetch)?;
        }
        let mut running = vec![[0.0f64; 3]; dists.len()];
        for day in w.first..=w.last {
            let mut samples = Vec::with_capacity(dists.len() * METRICS.len());
            for (i, d) in dists.iter().enumerate() {
                let domain = crate::text::label(d.alias.as_deref().unwrap_or(&d.domain_name));
                for (m, (_, _, family)) in METRICS.iter().enumerate() {
                    running[i][m] += points[i][m].get(&day).copied().unwrap_or(0.0);
                    samples.push(
                        Sample::new(*family, running[i][m])
                            .label("distribution_id", d.id.clone())
                            .label("domain", domain.clone()),
                    );
                }
            }
            if day >= w.emit_from {
                sink.write(&samples, (day + 1) * 86_400 - 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_back_counts_calendar_months() {
        let d = timeutil::days_from_civil(2026, 12, 4);
        assert_eq!(months_back(d, 0), timeutil::days_from_civil(2026, 12, 1));
        assert_eq!(months_back(d, 13), timeutil::days_from_civil(2025, 11, 1));
    }
}
