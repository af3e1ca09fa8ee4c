//! The traffic job of one account: keeps this month (and last month, for its bill, while it
//! settles), fetches the days still due each poll and turns the kept month into samples.

use std::sync::{Arc, Mutex};

use crate::job::{BoxFuture, PollContext, PollError, Poller, Sample};
use crate::timeutil;

use super::super::Client;
use super::super::pricing::Ledger;
use super::{BYTES_PER_SEC_PER_MBPS, MAX_DOMAINS_PER_REQUEST, Month, local_midnight, local_month, samples};

/// The traffic job of one account.
pub struct Traffic {
    client: Arc<Client>,
    domains: Vec<String>,
    settle: i64,
    commit_bytes: Option<f64>,
    path: String,
    month: Mutex<Option<Month>>,
    /// Where the account's pricing reads the figures; with it, last month is kept (or walked
    /// once after a start) until it settles, for its bill.
    ledger: Option<Arc<Ledger>>,
    previous: Mutex<Option<Month>>,
}

impl Traffic {
    /// The job for `domains` of the account behind `client`; `settle` seconds after a day ends,
    /// a fetch of it is final.
    pub fn new(client: Arc<Client>, domains: Vec<String>, settle: i64, commit_mbps: Option<f64>, path: String) -> Self {
        Traffic {
            client,
            domains,
            settle,
            commit_bytes: commit_mbps.map(|m| m * BYTES_PER_SEC_PER_MBPS),
            path,
            month: Mutex::new(None),
            ledger: None,
            previous: Mutex::new(None),
        }
    }

    /// The same job, publishing its figures into `ledger` for the account's pricing.
    pub fn with_ledger(self, ledger: Arc<Ledger>) -> Self {
        Traffic { ledger: Some(ledger), ..self }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Month>> {
        self.month.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_previous(&self) -> std::sync::MutexGuard<'_, Option<Month>> {
        self.previous.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches the days of `month` in `due`, keeping each answer at once: a poll that fails
    /// later keeps what it fetched for the next one.
    async fn fetch(
        &self,
        ctx: &PollContext,
        month: &Mutex<Option<Month>>,
        first_day: i64,
        due: Vec<(usize, usize)>,
        now: i64,
    ) -> Result<(), PollError> {
        let offset = self.client.utc_offset();
        let chunks: Vec<&[String]> = self.domains.chunks(MAX_DOMAINS_PER_REQUEST).collect();
        for (day, chunk) in due {
            let local_day = first_day + day as i64;
            let (from, to) = (local_midnight(local_day, offset), local_midnight(local_day + 1, offset));
            let asked = chunks[chunk];
            let answer = self.client.traffic_day(ctx, asked, &from, &to, &self.path).await?;
            if answer.ignored > 0 {
                tracing::warn!(
                    account = %self.client.account(),
                    ignored = answer.ignored,
                    date_from = %from,
                    "Traffic answer held domains that were not asked for; they were ignored"
                );
            }
            let mut month = month.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(mo) = month.as_mut().filter(|mo| mo.first_day() == first_day) {
                mo.keep(day, chunk, &answer, offset, now);
            }
        }
        Ok(())
    }

    /// Last month, for its bill: kept from the month's turn (or walked once after a start)
    /// until every day has settled, then published as final and dropped.
    async fn previous_month(
        &self,
        ctx: &PollContext,
        ledger: &Ledger,
        first_day: i64,
        today: i64,
        now: i64,
    ) -> Result<(), PollError> {
        let offset = self.client.utc_offset();
        let first = timeutil::month_start(first_day - 1);
        if ledger.traffic(first).is_some_and(|t| t.settled) {
            return Ok(());
        }
        let due = {
            let mut previous = self.lock_previous();
            if previous.as_ref().is_none_or(|p| p.first_day() != first) {
                *previous = Some(Month::new(first, self.domains.len()));
            }
            previous.as_ref().map(|p| p.due(today, offset, self.settle)).unwrap_or_default()
        };
        self.fetch(ctx, &self.previous, first, due, now).await?;
        let mut previous = self.lock_previous();
        if let Some(p) = previous.as_ref() {
            let figures = p.figures(offset, self.settle);
            let month = p.for_pricing(&figures, offset, self.settle, now);
            ledger.publish_traffic(month);
            if month.settled {
                *previous = None;
            }
        }
        Ok(())
    }

    async fn run(&self, ctx: &PollContext) -> Result<Vec<Sample>, PollError> {
        let now = self.client.clock().now();
        let offset = self.client.utc_offset();
        let (today, first_day) = local_month(now, offset);
        let due = {
            let mut month = self.lock();
            // At the month's turn the month-to-date figures start again; the closing month is
            // kept for its bill while it settles.
            if month.as_ref().is_none_or(|mo| mo.first_day() != first_day) {
                let closing = month.replace(Month::new(first_day, self.domains.len()));
                if let Some(closing) = closing.filter(|_| self.ledger.is_some()) {
                    *self.lock_previous() = Some(closing);
                }
            }
            month.as_ref().map(|mo| mo.due(today, offset, self.settle)).unwrap_or_default()
        };
        self.fetch(ctx, &self.month, first_day, due, now).await?;
        if let Some(ledger) = &self.ledger {
            self.previous_month(ctx, ledger, first_day, today, now).await?;
        }
        let (figures, month) = match self.lock().as_ref() {
            Some(mo) => {
                let figures = mo.figures(offset, self.settle);
                let month = mo.for_pricing(&figures, offset, self.settle, now);
                (figures, month)
            }
            None => return Err(PollError::parse("traffic state vanished")),
        };
        if let Some(ledger) = &self.ledger {
            ledger.publish_traffic(month);
        }
        Ok(samples(&self.domains, figures, self.commit_bytes))
    }
}

impl Poller for Traffic {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}
