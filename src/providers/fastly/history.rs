//! Fastly history for `backfill`: month-to-date bandwidth and requests per service and area at
//! each UTC day's end, from one `/stats/usage_by_service` request per day (a month per window,
//! at most [`STATS_HISTORY_DAYS`] back); and spend from the end-of-month invoices (last month's
//! bill on every day of the month after, each month's final spend to date at its end). The same
//! client, bounds, parsing and samples as live polling.

use std::sync::Arc;

use crate::job::{BoxFuture, PollContext, PollError};
use crate::providers::{History, SampleSink, Window, WindowError};
use crate::timeutil::{month_start, months};

use super::client::Client;
use super::config::FastlyAccount;
use super::jobs::{bills, usage_into, usage_samples};
use super::normalize::{self, UsageTable, bill_currency};
use super::{INVOICES_ENDPOINT, PROVIDER, STATS_ENDPOINT};

/// How far back the backfill asks for day buckets (375 days): Fastly keeps hourly data that
/// long and documents no longer retention for daily data.
pub const STATS_HISTORY_DAYS: i64 = 375;

const CTX: PollContext = PollContext::UNBOUNDED;

/// The history units of one account: its usage and its invoices.
pub fn units(account: &FastlyAccount, client: Arc<Client>) -> Vec<Box<dyn History>> {
    vec![
        Box::new(Usage { client: client.clone(), account: account.clone() }),
        Box::new(Invoices { client, account: account.clone() }),
    ]
}

/// Days before today: today belongs to live polling.
fn month_windows(from: i64, to: i64, now: i64, oldest: Option<i64>) -> Vec<(i64, i64)> {
    let today = now.div_euclid(86_400);
    months(from, to.min(today - 1))
        .into_iter()
        .filter(|(first, _)| oldest.is_none_or(|o| *first >= o))
        .map(|(first, last)| (first, last.min(to).min(today - 1)))
        .collect()
}

struct Usage {
    client: Arc<Client>,
    account: FastlyAccount,
}

impl History for Usage {
    fn name(&self) -> String {
        format!("{PROVIDER}/{}/{STATS_ENDPOINT}", self.account.name)
    }

    /// Month by month, from each month's first day (month-to-date figures start there); months
    /// older than the history kept cannot be summed whole and are left out.
    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        let today = now.div_euclid(86_400);
        month_windows(from, to, now, Some(today - STATS_HISTORY_DAYS + 1))
    }

    fn fetch<'a>(&'a self, w: Window, sink: &'a mut dyn SampleSink) -> BoxFuture<'a, Result<(), WindowError>> {
        Box::pin(async move {
            let fail = |error: PollError| WindowError::Fetch { error, from: w.first };
            let listed = self.account.services.is_empty();
            let services = match listed {
                true => self.client.services(&CTX).await.map_err(fail)?,
                false => self.account.services.clone(),
            };
            let areas = &self.account.areas;
            // The month to date grows by each day's usage; a service first seen on a later day
            // (deleted since, still billed) joins from that day.
            let mut month = UsageTable::new(&services, areas);
            for day in w.first..=w.last {
                let body = self.client.usage(&CTX, day * 86_400, (day + 1) * 86_400).await.map_err(fail)?;
                usage_into(&self.client, &mut month, &body, areas, listed).map_err(fail)?;
                let at = (day + 1) * 86_400;
                if day >= w.emit_from && at <= w.now {
                    sink.write(&usage_samples(&month, areas), at)?;
                }
            }
            Ok(())
        })
    }
}

struct Invoices {
    client: Arc<Client>,
    account: FastlyAccount,
}

impl History for Invoices {
    fn name(&self) -> String {
        format!("{PROVIDER}/{}/{INVOICES_ENDPOINT}", self.account.name)
    }

    fn bills(&self) -> bool {
        true
    }

    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        month_windows(from, to, now, None)
    }

    /// One month: the bill of the month before on each of its days, and the month's own bill
    /// (its final spend to date) at its end, once posted.
    fn fetch<'a>(&'a self, w: Window, sink: &'a mut dyn SampleSink) -> BoxFuture<'a, Result<(), WindowError>> {
        Box::pin(async move {
            let fail = |error: PollError| WindowError::Fetch { error, from: w.first };
            let month = month_start(w.first);
            let previous = month_start(month - 1);
            let bills = bills(&self.client, &CTX, previous, w.last).await.map_err(fail)?;
            let currency = self.account.currency.as_deref();
            let key = format!("{}.currency", self.account.path);
            if let Some(bill) = normalize::bill_of(&bills, previous) {
                let code = bill_currency(bill, currency, &key).map_err(fail)?;
                let samples = normalize::last_month_samples(bill, &code);
                for day in w.first.max(w.emit_from)..=w.last {
                    let at = (day + 1) * 86_400;
                    if at <= w.now {
                        sink.write(&samples, at)?;
                    }
                }
            }
            let (y, m, _) = crate::timeutil::civil_from_days(month);
            let month_end = month + i64::from(crate::timeutil::days_in_month(y, m));
            if let Some(bill) = normalize::bill_of(&bills, month).filter(|_| w.last + 1 == month_end) {
                let code = bill_currency(bill, currency, &key).map_err(fail)?;
                if w.last >= w.emit_from && month_end * 86_400 <= w.now {
                    sink.write(&normalize::month_to_date_samples(bill.total, &bill.items, &code), month_end * 86_400)?;
                }
            }
            Ok(())
        })
    }
}
