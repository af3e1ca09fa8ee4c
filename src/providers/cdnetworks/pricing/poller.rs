//! The `pricing` job of an account: this month's spend and last month's bill from the
//! [`Ledger`], on the poll path, with no request of its own.

use std::sync::Arc;

use super::{
    BandwidthBilling, Ledger, Pricing, StorageMonth, Usage, elapsed_share, last_month_samples, month_samples,
    month_start_sample, quote,
};
use crate::job::{BoxFuture, PollContext, PollError, Poller, Reason, Sample};
use crate::providers::cdnetworks::traffic::local_month;
use crate::timeutil::{self, Clock};

/// The pricing job of one account.
#[derive(Debug)]
pub struct Pricer {
    /// The contract.
    pub pricing: Pricing,
    /// `bandwidth_commit_mbps`.
    pub commit_mbps: Option<f64>,
    /// The account's zone, seconds east of UTC: its months and days.
    pub offset: i64,
    /// What "now" is.
    pub clock: Clock,
    /// Where the account's traffic and storage jobs publish.
    pub ledger: Arc<Ledger>,
    /// The configured domains, in order: named when their storage is missing.
    pub domains: Vec<String>,
    /// Traffic figures older than this (the traffic job's `max_age`) are not priced.
    pub traffic_max_age: i64,
    /// Storage figures older than this (the storage jobs' `max_age`) are not priced.
    pub storage_max_age: i64,
}

impl Pricer {
    /// The usage of the month starting on `first_day` as the ledger holds it at `now`, or why it
    /// cannot be priced yet. `whole` asks for final figures (last month's bill).
    fn usage(&self, first_day: i64, now: i64, whole: bool) -> Result<Usage, String> {
        let month = timeutil::format_ymd(first_day);
        let mut usage = Usage::default();
        if self.pricing.needs_traffic() {
            let t = self
                .ledger
                .traffic(first_day)
                .ok_or_else(|| format!("traffic-request has not fetched the month of {month} yet"))?;
            if whole && !t.settled {
                return Err(format!("the month of {month} has not settled yet"));
            }
            if !whole && now - t.at > self.traffic_max_age {
                return Err(format!(
                    "the traffic figures are {}s old, past the traffic job's max_age; see its poll errors",
                    now - t.at
                ));
            }
            usage.bytes = t.bytes;
            usage.bandwidth = match self.pricing.bandwidth.map(|b| b.billing) {
                Some(BandwidthBilling::AverageDailyPeak) => t.average_daily_peak,
                _ => t.p95,
            };
        }
        if let Some(storage) = self.pricing.storage {
            let mut months = Vec::with_capacity(self.domains.len());
            for (domain, m) in self.domains.iter().zip(self.ledger.storage(first_day)) {
                let Some(m) = m.filter(|m| !whole || m.complete) else {
                    return Err(format!("domain-usage has not fetched the storage of {domain} for {month} yet"));
                };
                if !whole && now - m.at > self.storage_max_age {
                    return Err(format!("the storage figures of {domain} are {}s old, past its max_age", now - m.at));
                }
                months.push(m);
            }
            let bytes = StorageMonth::billed_sum(&months, storage.basis)
                .ok_or_else(|| format!("no storage point of the account's domains for {month} yet"))?;
            usage.storage_gb = bytes / super::BYTES_PER_GB;
        }
        Ok(usage)
    }

    /// This month's samples at `now` and, once the last month's figures are final, its bill.
    pub fn price(&self, now: i64) -> Result<Vec<Sample>, String> {
        let (_, first_day) = local_month(now, self.offset);
        let s = elapsed_share(now, first_day, self.offset);
        let usage = self.usage(first_day, now, false)?;
        let items = quote(&self.pricing, self.commit_mbps, &usage, s);
        let mut samples =
            month_samples(&items, self.pricing.bandwidth.map(|_| usage.bandwidth), &self.pricing.currency);
        samples.push(month_start_sample(first_day, self.offset));
        let last = timeutil::month_start(first_day - 1);
        if let Ok(usage) = self.usage(last, now, true) {
            samples.extend(last_month_samples(
                &quote(&self.pricing, self.commit_mbps, &usage, 1.0),
                &self.pricing.currency,
            ));
        }
        Ok(samples)
    }

    async fn run(&self, ctx: &PollContext) -> Result<Vec<Sample>, PollError> {
        loop {
            // Registered before the look, so that a publication in between is not missed.
            let changed = self.ledger.changed();
            let waiting = match self.price(self.clock.now()) {
                Ok(samples) => return Ok(samples),
                Err(why) => why,
            };
            // At start the account's other jobs are still fetching: wait for them within the
            // poll's deadline rather than fail at once.
            let Some(deadline) = ctx.deadline else {
                return Err(PollError::new(Reason::Provider, format!("cannot price the account yet: {waiting}")));
            };
            // A little before the scheduler's own cut, so that the message says what is missing.
            let deadline = deadline.checked_sub(std::time::Duration::from_secs(1)).unwrap_or(deadline);
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(PollError::new(Reason::Timeout, format!("cannot price the account yet: {waiting}")));
            }
        }
    }
}

impl Poller for Pricer {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}
