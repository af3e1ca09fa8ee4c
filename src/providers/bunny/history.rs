//! bunny.net history for `backfill`: per pull zone, the daily bandwidth and requests of
//! `/statistics`, month by month from each month's first day, written as the month-to-date
//! figures at each day's last second (the families and labels of live polling); and the monthly
//! bills of `/billing`'s records: each month's final total at its last second, and last month's
//! bill at the end of every day of the month after the one it bills.

use std::sync::Arc;

use crate::families::FamilyId;
use crate::job::{BoxFuture, PollContext, PollError, Sample};
use crate::providers::{History, SampleSink, Window, WindowError};
use crate::timeutil::{self, months};

use super::{BunnyAccount, Client, PROVIDER, normalize, selected_zones, statistics, wire};

const CTX: PollContext = PollContext::UNBOUNDED;

/// How far back bunny.net serves statistics (365 days; older windows are refused).
pub const STATS_HISTORY_DAYS: i64 = 365;

/// The history units of one account: `statistics` and `billing`.
pub fn units(account: &BunnyAccount, client: Arc<Client>) -> Vec<Box<dyn History>> {
    vec![
        Box::new(Unit { client: client.clone(), account: account.clone(), kind: Kind::Statistics }),
        Box::new(Unit { client, account: account.clone(), kind: Kind::Billing }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Statistics,
    Billing,
}

struct Unit {
    client: Arc<Client>,
    account: BunnyAccount,
    kind: Kind,
}

fn failed(from: i64) -> impl Fn(PollError) -> WindowError {
    move |error| WindowError::Fetch { error, from }
}

impl History for Unit {
    fn name(&self) -> String {
        let part = match self.kind {
            Kind::Statistics => "statistics",
            Kind::Billing => "billing",
        };
        format!("{PROVIDER}/{}/{part}", self.account.name)
    }

    fn bills(&self) -> bool {
        self.kind == Kind::Billing
    }

    /// Month by month, each from its first day (month-to-date sums start there), up to
    /// yesterday: today belongs to live polling. bunny.net serves statistics for the last
    /// [`STATS_HISTORY_DAYS`] only: a month that begins earlier cannot be summed whole and is
    /// left out, said once; the months inside are written.
    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        let today = now.div_euclid(86_400);
        let oldest = match self.kind {
            Kind::Statistics => today - STATS_HISTORY_DAYS,
            Kind::Billing => i64::MIN,
        };
        crate::providers::month_windows(
            &self.name(),
            from,
            to,
            now,
            oldest,
            "bunny.net serves statistics for the last year only",
        )
    }

    fn fetch<'a>(&'a self, w: Window, sink: &'a mut dyn SampleSink) -> BoxFuture<'a, Result<(), WindowError>> {
        Box::pin(async move {
            match self.kind {
                Kind::Statistics => self.statistics(w, sink).await,
                Kind::Billing => self.billing(w, sink).await,
            }
        })
    }
}

impl Unit {
    async fn statistics(&self, w: Window, sink: &mut dyn SampleSink) -> Result<(), WindowError> {
        let fetch = failed(w.first);
        let zones = selected_zones(&self.client, &CTX, &self.account).await.map_err(&fetch)?;
        let mut charts = Vec::with_capacity(zones.len());
        for zone in &zones {
            charts.push(statistics(&self.client, &CTX, &self.account, zone, w.first, w.last).await.map_err(&fetch)?);
        }
        let start = w.first * 86_400;
        for day in w.first.max(w.emit_from)..=w.last {
            let end = (day + 1) * 86_400;
            let mut samples = Vec::with_capacity(zones.len() * 2);
            // A chart that came back null is no data for that chart of that zone.
            for (zone, (requests, bandwidth)) in zones.iter().zip(&charts) {
                if let Some(bandwidth) = bandwidth {
                    let bytes = normalize::sum(bandwidth, start, end);
                    samples.push(zone.labels(Sample::new(FamilyId::MonthToDateBandwidthBytes, bytes)));
                }
                if let Some(requests) = requests {
                    let served = normalize::sum(requests, start, end);
                    samples.push(zone.labels(Sample::new(FamilyId::MonthToDateRequests, served)));
                }
            }
            sink.write(&samples, end - 1)?;
        }
        Ok(())
    }

    /// The bill of a month is the MonthlyUsage record that bills it ([`normalize::billed_month`]).
    async fn billing(&self, w: Window, sink: &mut dyn SampleSink) -> Result<(), WindowError> {
        let fetch = failed(w.first);
        let body = self.client.get(&CTX, "/billing", &[]).await.map_err(&fetch)?;
        let parsed: wire::Billing<'_> =
            wire::parse(&body, self.account.list_entries, "/billing answer").map_err(&fetch)?;
        let records = normalize::monthly_records(&parsed.records).map_err(&fetch)?;
        // The bill of the month starting on `first`, and the end of the month.
        let bill = |first: i64| {
            records.iter().rev().find(|(at, _)| normalize::billed_month(*at) == first).map(|(_, usd)| *usd)
        };
        let month_end = months(w.first, w.first).first().map_or(w.last, |m| m.1);
        let previous = bill(timeutil::month_start(w.first - 1));
        for day in w.first.max(w.emit_from)..=w.last {
            if let Some(usd) = previous {
                sink.write(
                    &[
                        Sample::new(FamilyId::BillingLastMonthSpendUsd, usd),
                        crate::currency::marker(normalize::CURRENCY),
                    ],
                    (day + 1) * 86_400 - 1,
                )?;
            }
        }
        // The month's own bill, once the month is over: its final total.
        if w.last == month_end
            && let Some(usd) = bill(w.first)
        {
            sink.write(
                &[Sample::new(FamilyId::BillingMonthToDateSpendUsd, usd), crate::currency::marker(normalize::CURRENCY)],
                (month_end + 1) * 86_400 - 1,
            )?;
        }
        Ok(())
    }
}
