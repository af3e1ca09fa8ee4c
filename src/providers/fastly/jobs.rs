//! The live jobs of one Fastly account: the month-to-date invoice (spend to date, per item and
//! in total), the last end-of-month invoice (last month's bill), and month-to-date bandwidth and
//! requests per service and area from the historical stats (see [`Usage`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::families::FamilyId;
use crate::job::{BoxFuture, JobKey, JobSpec, PollContext, PollError, Poller, Reason, Sample};
use crate::providers::common::wire::{ListLimit, parse_capped};
use crate::timeutil;

use super::client::Client;
use super::config::FastlyAccount;
use super::normalize::{self, Bill, USD};
use super::wire::MtdInvoice;
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
            Arc::new(MonthToDate { client: client.clone() }),
        ),
        JobSpec::periodic(
            key(INVOICES_ENDPOINT),
            account.invoice_interval,
            account.timeout,
            account.max_age,
            Arc::new(LastMonth { client: client.clone() }),
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

/// The month-to-date invoice: spend to date in total and per line item.
pub struct MonthToDate {
    /// The account's client.
    pub client: Arc<Client>,
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
        // The month-to-date invoice names no currency: it is the account's, which the last
        // end-of-month invoice says.
        if let Some(currency) = self.client.currency().filter(|c| c != USD) {
            return Err(PollError::new(
                Reason::Provider,
                format!(
                    "the account's last invoice is in {currency}, not US dollars: the billing families are in USD, \
                     so the month-to-date spend is not exported"
                ),
            ));
        }
        Ok(normalize::month_to_date_samples(total, &items))
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
        self.client.set_currency(&bill.currency);
        normalize::check_usd(bill)?;
        Ok(normalize::last_month_samples(bill))
    }
}

impl Poller for LastMonth {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}

/// What the usage job keeps of the month: the settled UTC days, per area, per service.
#[derive(Debug, Default)]
struct Kept {
    /// The first day of the month (day number).
    month: i64,
    /// The services the days were fetched for.
    services: Vec<String>,
    /// `[area]` (0: all areas): settled day → (bytes, requests) per service.
    settled: Vec<BTreeMap<i64, Vec<(f64, f64)>>>,
}

/// Month-to-date bandwidth and requests per service and area. Settled UTC days come once from
/// day buckets (`by=day`) and are kept; the rest of the month (days that ended less than
/// `stats_settle` ago, and today) is summed from hourly buckets (`by=hour`) on every poll, the
/// newest of which is still filling. Each area costs at most two requests per poll, for all
/// services at once; the account's total (no `region`) gives `area="other"`, what the listed
/// areas leave out.
pub struct Usage {
    client: Arc<Client>,
    services: Vec<String>,
    areas: Vec<String>,
    settle: i64,
    kept: Mutex<Kept>,
}

impl Usage {
    /// The job for the account behind `client`.
    pub fn new(client: Arc<Client>, account: &FastlyAccount) -> Self {
        Usage {
            client,
            services: account.services.clone(),
            areas: account.areas.clone(),
            settle: account.stats_settle.as_secs() as i64,
            kept: Mutex::new(Kept::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(&self, ctx: &PollContext) -> Result<Vec<Sample>, PollError> {
        let services = if self.services.is_empty() { self.client.services(ctx).await? } else { self.services.clone() };
        let now = self.client.clock().now();
        let today = now.div_euclid(86_400);
        let month = timeutil::month_start(today);
        let regions: Vec<Option<&str>> =
            std::iter::once(None).chain(self.areas.iter().map(|a| Some(a.as_str()))).collect();
        {
            let mut kept = self.lock();
            if kept.month != month || kept.services != services || kept.settled.len() != regions.len() {
                *kept = Kept { month, services: services.clone(), settled: vec![BTreeMap::new(); regions.len()] };
            }
        }
        if services.is_empty() {
            return Ok(Vec::new());
        }
        // totals[area][service] = (bytes, requests)
        let mut totals = vec![vec![(0.0, 0.0); services.len()]; regions.len()];
        for (a, region) in regions.iter().enumerate() {
            let due: Vec<i64> = {
                let kept = self.lock();
                (month..today)
                    .filter(|d| !kept.settled[a].contains_key(d) && now >= (d + 1) * 86_400 + self.settle)
                    .collect()
            };
            if let (Some(&first), Some(&last)) = (due.first(), due.last()) {
                let points =
                    self.client.stats(ctx, first * 86_400, (last + 1) * 86_400, 86_400, *region, &services).await?;
                let mut kept = self.lock();
                for d in due {
                    let has = points.iter().any(|(_, p)| p.iter().any(|p| p.start == d * 86_400));
                    // No day bucket for any service: Fastly may not have built it yet. A day
                    // later still, nothing means no traffic.
                    if !has && now < (d + 2) * 86_400 + self.settle {
                        continue;
                    }
                    let day: Vec<(f64, f64)> = points
                        .iter()
                        .map(|(_, p)| {
                            p.iter().find(|p| p.start == d * 86_400).map_or((0.0, 0.0), |p| (p.bytes, p.requests))
                        })
                        .collect();
                    kept.settled[a].insert(d, day);
                }
            }
            let (hour_from, settled) = {
                let kept = self.lock();
                let first_open = (month..=today).find(|d| !kept.settled[a].contains_key(d)).unwrap_or(today);
                (first_open, kept.settled[a].clone())
            };
            let to = (now.div_euclid(3600) + 1) * 3600;
            let points = self.client.stats(ctx, hour_from * 86_400, to, 3600, *region, &services).await?;
            for (s, (_, list)) in points.iter().enumerate() {
                for p in list.iter().filter(|p| p.start <= now && !settled.contains_key(&p.start.div_euclid(86_400))) {
                    totals[a][s].0 += p.bytes;
                    totals[a][s].1 += p.requests;
                }
            }
            for day in settled.values() {
                for (s, (bytes, requests)) in day.iter().enumerate() {
                    totals[a][s].0 += bytes;
                    totals[a][s].1 += requests;
                }
            }
        }
        Ok(usage_samples(&services, &self.areas, &totals))
    }
}

impl Poller for Usage {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(self.run(ctx))
    }
}

/// The samples of `totals` (`[area][service]`, area 0 the account's total): per listed area,
/// and `other` for what they leave out; with no areas listed, `all`.
pub fn usage_samples(services: &[String], areas: &[String], totals: &[Vec<(f64, f64)>]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(services.len() * (areas.len() + 1) * 2);
    let mut push = |service: &str, area: &str, (bytes, requests): (f64, f64)| {
        out.push(
            Sample::new(FamilyId::MonthToDateBandwidthBytes, bytes).label("service_id", service).label("area", area),
        );
        out.push(Sample::new(FamilyId::MonthToDateRequests, requests).label("service_id", service).label("area", area));
    };
    for (s, service) in services.iter().enumerate() {
        if areas.is_empty() {
            push(service, "all", totals[0][s]);
            continue;
        }
        let (mut bytes, mut requests) = totals[0][s];
        for (a, area) in areas.iter().enumerate() {
            let v = totals[a + 1][s];
            bytes -= v.0;
            requests -= v.1;
            push(service, area, v);
        }
        push(service, "other", (bytes.max(0.0), requests.max(0.0)));
    }
    out
}
