//! The live jobs of one CDNetworks account: `domain-usage` per configured domain, and
//! `traffic-request` for the whole account (see [`super::traffic`]).

use std::sync::Arc;
use std::time::Duration;

use crate::job::{BoxFuture, JobKey, JobSpec, PollContext, PollError, Poller, Reason, Sample};
use crate::timeutil;

use super::config::{CdnetworksAccount, CdnetworksDomain};
use super::pricing::{Ledger, Pricer, Pricing, StorageMonth};
use super::{Client, ENDPOINT, PROVIDER, WINDOW_DAYS, traffic, wire};

/// How often the pricing job prices what the other jobs hold: the elapsed share of the month
/// moves on, and their figures change at their own intervals.
pub const PRICING_INTERVAL: Duration = Duration::from_secs(60);

/// Builds one job per configured domain of the account, its traffic job, all sharing `client`
/// (and so its rate limiter), and with a pricing table, its `pricing` job.
pub fn jobs(account: &CdnetworksAccount, client: Arc<Client>) -> Vec<JobSpec> {
    let name: Arc<str> = account.name.as_str().into();
    let ledger = account.pricing.as_ref().map(|_| Arc::new(Ledger::new(account.domains.len())));
    let prices = |needs: fn(&Pricing) -> bool| account.pricing.as_ref().filter(|p| needs(p)).and(ledger.clone());
    let traffic_job = account.traffic.then(|| {
        let key = JobKey::account(PROVIDER, name.clone(), traffic::ENDPOINT);
        let mut poller = traffic::Traffic::new(
            client.clone(),
            account.domains.iter().map(|d| d.domain.clone()).collect(),
            account.traffic_settle.as_secs() as i64,
            account.bandwidth_commit_mbps,
            account.path.clone(),
        );
        if let Some(ledger) = prices(Pricing::needs_traffic) {
            poller = poller.with_ledger(ledger);
        }
        // The first poll of a month walks it day by day through the rate limiter: its
        // interval bounds it like any poll.
        JobSpec::periodic(key, account.traffic_interval, account.timeout, account.traffic_max_age, Arc::new(poller))
    });
    let storage_ledger = prices(|p| p.storage.is_some());
    let pricing_job = account.pricing.clone().zip(ledger.clone()).map(|(pricing, ledger)| {
        let poller = Pricer {
            pricing,
            commit_mbps: account.bandwidth_commit_mbps,
            offset: account.utc_offset,
            clock: client.clock().clone(),
            ledger,
            domains: account.domains.iter().map(|d| d.domain.clone()).collect(),
            traffic_max_age: secs(account.traffic_max_age.unwrap_or(account.traffic_interval * 3)),
            storage_max_age: secs(account.max_age.unwrap_or(account.interval * 3)),
        };
        JobSpec::periodic(
            JobKey::account(PROVIDER, name.clone(), PRICING_ENDPOINT),
            PRICING_INTERVAL,
            account.timeout,
            None,
            Arc::new(poller),
        )
    });
    account
        .domains
        .iter()
        .enumerate()
        .map(|(j, d)| {
            let key = JobKey {
                provider: PROVIDER,
                account: name.clone(),
                endpoint: ENDPOINT,
                domain: Some(d.domain.as_str().into()),
            };
            let poller = DomainUsage {
                client: client.clone(),
                domain: d.clone(),
                path: format!("{}.domains[{j}]", account.path),
                ledger: storage_ledger.clone().map(|l| (l, j)),
            };
            // Waiting for the rate limiter is part of a poll; its interval bounds it.
            JobSpec::periodic(key, account.interval, account.timeout, account.max_age, Arc::new(poller))
        })
        .chain(traffic_job)
        .chain(pricing_job)
        .collect()
}

/// The `endpoint` label of the pricing job.
pub const PRICING_ENDPOINT: &str = "pricing";

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

struct DomainUsage {
    client: Arc<Client>,
    domain: CdnetworksDomain,
    path: String,
    /// With storage priced: the ledger and the domain's index in it.
    ledger: Option<(Arc<Ledger>, usize)>,
}

impl DomainUsage {
    /// With storage priced, the window reaches back to the month's first day (the month's daily
    /// storage is billed) and, once after a start, last month is fetched whole for its bill.
    async fn priced(&self, ctx: &PollContext, ledger: &Ledger, index: usize) -> Result<Vec<wire::Point>, PollError> {
        let now = self.client.clock().now();
        let offset = self.client.utc_offset();
        let (today, first_day) = traffic::local_month(now, offset);
        let from = (today - WINDOW_DAYS).min(first_day);
        let (from_s, to_s) = (timeutil::format_ymd(from), timeutil::format_ymd(today));
        let points = self.client.domain_usage_between(ctx, &self.domain, &self.path, &from_s, &to_s).await?;
        let last = timeutil::month_start(first_day - 1);
        let mut previous = match ledger.storage_of(index, last) {
            Some(m) => m,
            None => {
                let (a, b) = (timeutil::format_ymd(last), timeutil::format_ymd(first_day - 1));
                let whole = self.client.domain_usage_between(ctx, &self.domain, &self.path, &a, &b).await?;
                StorageMonth::from_points(last, &whole, offset, now)
            }
        };
        if !previous.complete {
            previous.add(&points, offset, now);
        }
        ledger.publish_storage(index, previous);
        ledger.publish_storage(index, StorageMonth::from_points(first_day, &points, offset, now));
        Ok(points)
    }
}

impl Poller for DomainUsage {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let points = match &self.ledger {
                Some((ledger, index)) => self.priced(ctx, ledger, *index).await?,
                None => self.client.domain_usage(ctx, &self.domain, &self.path).await?,
            };
            let now = self.client.clock().now();
            let Some(point) = wire::newest_complete(&points, now) else {
                return Err(PollError::new(
                    Reason::Provider,
                    format!(
                        "no complete point for domain {} in the last {WINDOW_DAYS} days ({} points, none finished)",
                        self.domain.domain,
                        points.len()
                    ),
                ));
            };
            Ok(point.samples(&self.domain.domain).into())
        })
    }
}
