//! CDNetworks history for `backfill`: each domain's local storage from `domain-usage` (two
//! years back, 31 days per request), and the account's traffic from `traffic-request` (183 days
//! back, a request per day per 1,000 domains, month-to-date figures at each day's end). The same
//! client, rate limiter, parsing and figures as live polling.

use std::sync::Arc;

use crate::job::{BoxFuture, PollContext};
use crate::providers::{History, SampleSink, Window, WindowError};
use crate::timeutil::{chunks, format_ymd, months};

use super::config::CdnetworksAccount;
use super::traffic::{self, MAX_DOMAINS_PER_REQUEST, Month};
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
    if account.traffic {
        units.push(Box::new(Traffic { client, account: account.clone() }));
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
}

impl History for Traffic {
    fn name(&self) -> String {
        format!("{PROVIDER}/{}/{}", self.account.name, traffic::ENDPOINT)
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
            let mut month = Month::new(w.first, domains.len());
            for day in w.first..=w.last {
                for (chunk, asked) in domains.chunks(MAX_DOMAINS_PER_REQUEST).enumerate() {
                    let (from, to) = (traffic::local_midnight(day, offset), traffic::local_midnight(day + 1, offset));
                    let answer = self
                        .client
                        .traffic_day(&CTX, asked, &from, &to, &self.account.path)
                        .await
                        .map_err(|error| WindowError::Fetch { error, from: day })?;
                    month.keep((day - w.first) as usize, chunk, &answer, offset, w.now);
                }
                if day >= w.emit_from {
                    // Past days are final (settle 0: fetched after they ended).
                    let figures = month.figures(offset, 0);
                    let at = (day + 1) * 86_400 - offset;
                    sink.write(&traffic::samples(&domains, figures, None), at)?;
                }
            }
            Ok(())
        })
    }
}
