//! The live jobs of one bunny.net account: `billing` (every `billing_interval`),
//! `billing/summary` (every `billing_interval`), `statistics` (every `stats_interval`, one
//! request per pull zone) and `storagezone` (every `storage_interval`).

use std::sync::Arc;

use crate::families::FamilyId;
use crate::job::{BoxFuture, JobKey, JobSpec, PollContext, PollError, Poller, Sample};
use crate::timeutil;

use super::{BunnyAccount, Client, PROVIDER, normalize, pages, selected_zones, statistics, wire};

/// Builds the four jobs of one account, sharing `client`.
pub fn jobs(account: &BunnyAccount, client: Arc<Client>) -> Vec<JobSpec> {
    let name: Arc<str> = account.name.as_str().into();
    let job = |endpoint, interval, poller: Arc<dyn Poller>| {
        JobSpec::periodic(
            JobKey::account(PROVIDER, name.clone(), endpoint),
            interval,
            account.timeout,
            account.max_age,
            poller,
        )
    };
    let poller = |kind| Arc::new(Job { client: client.clone(), account: account.clone(), kind }) as Arc<dyn Poller>;
    vec![
        job("billing", account.billing_interval, poller(Kind::Billing)),
        job("billing/summary", account.billing_interval, poller(Kind::Summary)),
        job("statistics", account.stats_interval, poller(Kind::Statistics)),
        job("storagezone", account.storage_interval, poller(Kind::Storage)),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Billing,
    Summary,
    Statistics,
    Storage,
}

struct Job {
    client: Arc<Client>,
    account: BunnyAccount,
    kind: Kind,
}

impl Poller for Job {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let now = timeutil::now_unix();
            match self.kind {
                Kind::Billing => billing(&self.client, ctx, &self.account, now).await,
                Kind::Summary => summary(&self.client, ctx, &self.account).await,
                Kind::Statistics => requests(&self.client, ctx, &self.account, now).await,
                Kind::Storage => storage(&self.client, ctx, &self.account, now).await,
            }
        })
    }
}

async fn billing(
    client: &Client,
    ctx: &PollContext,
    account: &BunnyAccount,
    now: i64,
) -> Result<Vec<Sample>, PollError> {
    let body = client.get(ctx, "/billing", &[]).await?;
    let parsed: wire::Billing<'_> = wire::parse(&body, account.list_entries, "/billing answer")?;
    normalize::billing(&parsed, now)
}

async fn summary(client: &Client, ctx: &PollContext, account: &BunnyAccount) -> Result<Vec<Sample>, PollError> {
    let zones = selected_zones(client, ctx, account).await?;
    let body = client.get(ctx, "/billing/summary", &[]).await?;
    let items: wire::List<wire::SummaryItem> = wire::parse(&body, account.list_entries, "/billing/summary answer")?;
    normalize::summary(&items.0, &zones, account.pull_zones.is_empty(), account.max_pull_zones)
}

/// Requests this month per zone: the daily buckets from the month's first day to today, the
/// newest one provisional (it grows until the day ends). A zone whose chart comes back null has
/// no requests figure; the other zones still do.
async fn requests(
    client: &Client,
    ctx: &PollContext,
    account: &BunnyAccount,
    now: i64,
) -> Result<Vec<Sample>, PollError> {
    let zones = selected_zones(client, ctx, account).await?;
    let start = normalize::month_start(now);
    let (first, today) = (start.div_euclid(86_400), now.div_euclid(86_400));
    let mut out = Vec::with_capacity(zones.len());
    for zone in &zones {
        let (Some(requests), _) = statistics(client, ctx, account, zone, first, today).await? else { continue };
        let served = normalize::sum(&requests, start, (today + 1) * 86_400);
        out.push(zone.labels(Sample::new(FamilyId::MonthToDateRequests, served)));
    }
    Ok(out)
}

async fn storage(
    client: &Client,
    ctx: &PollContext,
    account: &BunnyAccount,
    now: i64,
) -> Result<Vec<Sample>, PollError> {
    let mut out = Vec::new();
    let mut zones = 0usize;
    pages(client, ctx, account, "/storagezone", ("includeDeleted", "false"), |body| {
        let page: wire::Page<wire::StorageZone<'_>> = wire::parse(body, account.list_entries, "/storagezone answer")?;
        let samples = normalize::storage(&page.items, account.max_storage_zones, now)?;
        zones += samples.len() / 3;
        if zones > account.max_storage_zones {
            return Err(PollError::parse(format!(
                "the account has more than max_storage_zones ({}) storage zones: refused. Raise max_storage_zones",
                account.max_storage_zones
            )));
        }
        out.extend(samples);
        Ok(page.has_more)
    })
    .await?;
    let mut ids: Vec<&str> = out
        .iter()
        .filter(|s| s.family == FamilyId::StorageBytes)
        .filter_map(|s| s.labels.get(1).map(|l| l.1.as_str()))
        .collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(PollError::parse("/storagezone lists a zone on two pages: not data".to_owned()));
    }
    Ok(out)
}
