//! The live jobs of one Fastly account: the month-to-date invoice (spend to date, per item and
//! in total, in a currency that is known), the last end-of-month invoice (last month's bill),
//! and month-to-date bandwidth and requests per service and area from the usage stats (see
//! [`Usage`]).

use std::sync::Arc;

use crate::families::FamilyId;
use crate::job::{BoxFuture, JobKey, JobSpec, PollContext, PollError, Poller, Reason, Sample};
use crate::providers::common::wire::{ListLimit, parse_capped};
use crate::timeutil;

use super::client::Client;
use super::config::FastlyAccount;
use super::normalize::{self, Bill, UsageTable};
use super::wire::{MtdInvoice, parse_usage};
use super::{INVOICES_ENDPOINT, MTD_ENDPOINT, PROVIDER, STATS_ENDPOINT};

/// Builds the account's three jobs, sharing `client`.
pub fn jobs(account: &FastlyAccount, client: Arc<Client>) -> Vec<JobSpec> {
    let name: Arc<str> = account.name.as_str().into();
    let key = |endpoint| JobKey::account(PROVIDER, name.clone(), endpoint);
    vec![
        JobSpec::periodic(
            key(MTD_ENDPOINT),
            account.invoice_interval,
            account.timeout,
            account.max_age,
            Arc::new(MonthToDate { client: client.clone(), currency: account.currency.clone() }),
        ),
        JobSpec::periodic(
            key(INVOICES_ENDPOINT),
            account.invoice_interval,
            account.timeout,
            account.max_age,
            Arc::new(LastMonth { client: client.clone(), currency: account.currency.clone() }),
        ),
        JobSpec::periodic(
            key(STATS_ENDPOINT),
            account.stats_interval,
            account.timeout,
            account.max_age,
            Arc::new(Usage::new(client, account)),
        ),
    ]
}

/// How many months back the month-to-date job looks for an end-of-month invoice to learn the
/// account's currency from (13: a year and the month before).
pub const CURRENCY_LOOKBACK_MONTHS: i64 = 13;

/// The month-to-date invoice: spend to date in total and per line item.
pub struct MonthToDate {
    /// The account's client.
    pub client: Arc<Client>,
    /// The configured `currency`, if any.
    pub currency: Option<String>,
}

impl MonthToDate {
    async fn run(&self, ctx: &PollContext) -> Result<Vec<Sample>, PollError> {
        let body = self.client.month_to_date(ctx).await?;
        let limit = ListLimit {
            max: self.client.limits.max_line_items + 1,
            items: "line items",
            key: "max_line_items (in the account's [[fastly]] table)",
        };
        let mtd: MtdInvoice<'_> = parse_capped(&body, limit, "month-to-date invoice")?;
        let today = self.client.clock().now().div_euclid(86_400);
        let (total, items) = normalize::month_to_date(mtd, self.client.limits.max_line_items, today)?;
        let currency = self.currency(ctx, today).await?;
        Ok(normalize::month_to_date_samples(total, &items, &currency))
    }

    /// The month-to-date invoice names no currency: it is the account's, which its newest
    /// end-of-month invoice says (remembered once seen), else the configured `currency`; if
    /// neither tells it, the poll fails rather than call it US dollars.
    async fn currency(&self, ctx: &PollContext, today: i64) -> Result<String, PollError> {
        if let Some(c) = self.client.currency() {
            return Ok(c);
        }
        let this_month = timeutil::month_start(today);
        let mut first = this_month;
        for _ in 0..CURRENCY_LOOKBACK_MONTHS {
            first = timeutil::month_start(first - 1);
        }
        let bills = bills(&self.client, ctx, first, this_month - 1).await?;
        let newest = normalize::newest(&bills);
        if let Some(c) = newest.and_then(|b| b.currency.clone()) {
            self.client.set_currency(&c);
            return Ok(c);
        }
        let what = match newest {
            Some(b) => format!(
                "the month-to-date invoice, like the newest end-of-month invoice ({}),",
                &timeutil::format_ymd(b.month)[..7]
            ),
            None => format!(
                "the month-to-date invoice names no currency and the account has no end-of-month invoice in the \
                 last {CURRENCY_LOOKBACK_MONTHS} months to tell it; it"
            ),
        };
        normalize::currency_of(None, self.currency.as_deref(), &what, &format!("{}.currency", self.client.path()))
    }
}

impl Poller for MonthToDate {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}

/// Every end-of-month invoice whose billing period starts in the days `[first, last]`.
pub async fn bills(client: &Client, ctx: &PollContext, first: i64, last: i64) -> Result<Vec<Bill>, PollError> {
    let mut bills = Vec::new();
    let max = client.limits.max_line_items;
    client
        .invoices(ctx, first, last, |page| {
            for inv in page.data.map(|d| d.0).unwrap_or_default() {
                bills.push(normalize::bill(inv, max)?);
            }
            Ok(())
        })
        .await?;
    Ok(bills)
}

/// The last end-of-month invoice: last month's bill.
pub struct LastMonth {
    /// The account's client.
    pub client: Arc<Client>,
    /// The configured `currency`, if any: for an invoice that names none.
    pub currency: Option<String>,
}

impl LastMonth {
    async fn run(&self, ctx: &PollContext) -> Result<Vec<Sample>, PollError> {
        let today = self.client.clock().now().div_euclid(86_400);
        let this_month = timeutil::month_start(today);
        let last_month = timeutil::month_start(this_month - 1);
        let bills = bills(&self.client, ctx, last_month, this_month - 1).await?;
        let Some(bill) = normalize::bill_of(&bills, last_month) else {
            return Err(PollError::new(
                Reason::Provider,
                format!(
                    "no end-of-month invoice for {} yet ({} invoices listed): Fastly posts it early in the month",
                    &timeutil::format_ymd(last_month)[..7],
                    bills.len()
                ),
            ));
        };
        if let Some(c) = &bill.currency {
            self.client.set_currency(c);
        }
        let currency =
            normalize::bill_currency(bill, self.currency.as_deref(), &format!("{}.currency", self.client.path()))?;
        Ok(normalize::last_month_samples(bill, &currency))
    }
}

impl Poller for LastMonth {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}

/// Month-to-date bandwidth and requests per service and area: one `/stats/usage_by_service`
/// request per poll for the month so far (every service and region in one small answer), after
/// the service list when no services are configured. Services the answer names that the list
/// lacks (deleted this month, still billed) are counted too, under the same bound.
pub struct Usage {
    client: Arc<Client>,
    services: Vec<String>,
    areas: Vec<String>,
}

impl Usage {
    /// The job for the account behind `client`.
    pub fn new(client: Arc<Client>, account: &FastlyAccount) -> Self {
        Usage { client, services: account.services.clone(), areas: account.areas.clone() }
    }

    async fn run(&self, ctx: &PollContext) -> Result<Vec<Sample>, PollError> {
        let listed = self.services.is_empty();
        let services = if listed { self.client.services(ctx).await? } else { self.services.clone() };
        let now = self.client.clock().now();
        let month = timeutil::month_start(now.div_euclid(86_400)) * 86_400;
        let mut table = UsageTable::new(&services, &self.areas);
        // Fastly refuses an empty window; in the month's first minute there is nothing to ask.
        if now > month {
            let body = self.client.usage(ctx, month, now).await?;
            usage_into(&self.client, &mut table, &body, &self.areas, listed)?;
        }
        Ok(usage_samples(&table, &self.areas))
    }
}

/// Adds one usage answer to `table` under the account's bounds.
pub fn usage_into(
    client: &Client,
    table: &mut UsageTable,
    body: &[u8],
    areas: &[String],
    open: bool,
) -> Result<(), PollError> {
    let max = client.limits.max_services;
    let key = format!("{}.max_services", client.path());
    table.add(parse_usage(body, max, &key)?, areas, open, max, &key)
}

impl Poller for Usage {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}

/// The `kind` label of requests served by delivery (VCL) services.
pub const KIND_DELIVERY: &str = "delivery";
/// The `kind` label of requests served by Compute services (`compute_requests`).
pub const KIND_COMPUTE: &str = "compute";

/// The samples of `table`: bytes per service and area slot (the listed areas and `other`, or
/// `all`), requests per service, slot and `kind` (delivery or Compute).
pub fn usage_samples(table: &UsageTable, areas: &[String]) -> Vec<Sample> {
    let names: Vec<&str> =
        if areas.is_empty() { vec!["all"] } else { areas.iter().map(String::as_str).chain(["other"]).collect() };
    let mut out = Vec::with_capacity(table.services.len() * names.len() * 3);
    for (service, slots) in &table.services {
        for (area, u) in names.iter().zip(slots) {
            let labelled = |s: Sample| s.label("service_id", service.as_str()).label("area", *area);
            out.push(labelled(Sample::new(FamilyId::MonthToDateBandwidthBytes, u.bytes)));
            out.push(labelled(Sample::new(FamilyId::MonthToDateRequests, u.requests)).label("kind", KIND_DELIVERY));
            out.push(labelled(Sample::new(FamilyId::MonthToDateRequests, u.compute)).label("kind", KIND_COMPUTE));
        }
    }
    out
}
