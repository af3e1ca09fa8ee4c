//! bunny.net: the Core API at `https://api.bunny.net`, authenticated by the `AccessKey` header.
//! Four jobs per account: `/billing` (spend, items, prepaid balance, last month's bill),
//! `/billing/summary` (cost and bandwidth per pull zone, named through `/pullzone`),
//! `/statistics` (requests per pull zone) and `/storagezone` (bytes and files per storage zone).

pub mod client;
pub mod config;
pub mod history;
pub mod jobs;
pub mod normalize;
pub mod simulator;
pub mod wire;

use std::sync::Arc;

use crate::job::{JobSpec, PollContext, PollError, Sample};
use crate::providers::{Account, Context, History, Provider, SetupError};
use crate::timeutil;
use crate::validate::{Table, Validator};

pub use client::Client;
pub use config::BunnyAccount;
use normalize::Zone;

/// The `provider` label value.
pub const PROVIDER: &str = "bunny";
/// The public endpoint (the legacy `https://bunnycdn.com/api` is not used).
pub const DEFAULT_BASE_URL: &str = "https://api.bunny.net";

/// Reads every page of a listing (`/pullzone`, `/storagezone`) with `page=1,2,…` and the
/// account's `perPage`, handing each body to `each`, which returns its entry count and
/// `HasMoreItems`. A bare array is the whole list; past `max_pages` the read fails.
pub async fn pages(
    client: &Client,
    ctx: &PollContext,
    account: &BunnyAccount,
    path: &'static str,
    extra: (&'static str, &'static str),
    mut each: impl FnMut(&[u8]) -> Result<Option<bool>, PollError>,
) -> Result<(), PollError> {
    for page in 1..=account.max_pages {
        let query =
            [("page", page.to_string()), ("perPage", account.page_size.to_string()), (extra.0, extra.1.to_owned())];
        let body = client.get(ctx, path, &query).await?;
        if each(&body)? != Some(true) {
            return Ok(());
        }
    }
    Err(PollError::parse(format!(
        "{path} kept paging: {} pages of {} read and HasMoreItems is still true: refused. If the account really \
         has that many, raise max_pages",
        account.max_pages, account.page_size
    )))
}

/// Every pull zone of the account, as labelled.
pub async fn list_pull_zones(
    client: &Client,
    ctx: &PollContext,
    account: &BunnyAccount,
) -> Result<Vec<Zone>, PollError> {
    let mut zones = Vec::new();
    pages(client, ctx, account, "/pullzone", ("includeCertificate", "false"), |body| {
        let page: wire::Page<wire::PullZone<'_>> = wire::parse(body, account.list_entries, "/pullzone answer")?;
        for z in &page.items {
            zones.push(normalize::zone(z)?);
        }
        Ok(page.has_more)
    })
    .await?;
    Ok(zones)
}

/// The pull zones broken down: `pull_zones`, or every zone (at most `max_pull_zones`).
pub async fn selected_zones(
    client: &Client,
    ctx: &PollContext,
    account: &BunnyAccount,
) -> Result<Vec<Zone>, PollError> {
    let listed = list_pull_zones(client, ctx, account).await?;
    normalize::select(listed, &account.pull_zones, account.max_pull_zones)
}

/// `yyyy-mm-ddTHH:MM:SSZ` of Unix seconds.
pub fn format_time(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        timeutil::format_ymd(unix.div_euclid(86_400)),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `/statistics` of one pull zone over the days `first..=last` (UTC), daily buckets, with the
/// request and bandwidth charts asked for explicitly (each is only sent when its flag is set):
/// (requests, bandwidth). The spec makes every chart nullable: a chart that comes back null or
/// missing is `None`, no data for that chart of that zone, and fails nothing else.
pub async fn statistics(
    client: &Client,
    ctx: &PollContext,
    account: &BunnyAccount,
    zone: &Zone,
    first: i64,
    last: i64,
) -> Result<(Option<wire::Chart>, Option<wire::Chart>), PollError> {
    let query = [
        ("pullZone", zone.id.to_string()),
        ("dateFrom", format_time(first * 86_400)),
        ("dateTo", format_time((last + 1) * 86_400 - 1)),
        ("hourly", "false".to_owned()),
        ("loadRequestsServed", "true".to_owned()),
        ("loadBandwidthUsed", "true".to_owned()),
    ];
    let body = client.get(ctx, "/statistics", &query).await?;
    let stats: wire::Statistics = wire::parse(&body, account.list_entries, "/statistics answer")?;
    for (chart, name) in [(&stats.requests, "RequestsServedChart"), (&stats.bandwidth, "BandwidthUsedChart")] {
        if chart.is_none() {
            tracing::debug!(account = %account.name, pull_zone = zone.id, chart = name, "No chart in the /statistics answer; that figure of the zone is left out");
        }
    }
    Ok((stats.requests, stats.bandwidth))
}

/// The bunny.net provider: the `[[bunny]]` section.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bunny;

/// Bunny's entry in the registry.
pub const ENTRY: crate::providers::registry::Entry = crate::providers::registry::Entry {
    name: Bunny::NAME,
    parse: crate::providers::registry::section::<Bunny>,
    check: crate::providers::registry::check::<Bunny>,
    routes: simulator::routes,
    base_path: simulator::BASE_PATH,
    describe: simulator::describe,
    demo_toml: simulator::demo_toml,
    demo_part: || simulator::part(simulator::demo_accounts()),
};

impl Provider for Bunny {
    const NAME: &'static str = PROVIDER;
    type Account = BunnyAccount;

    fn parse(v: &mut Validator, t: &mut Table<'_>) -> Option<BunnyAccount> {
        config::parse_account(v, t)
    }
}

impl Account for BunnyAccount {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn jobs(&self, ctx: &Context<'_>) -> Result<Vec<JobSpec>, SetupError> {
        Ok(jobs::jobs(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone()))))
    }

    fn config_samples(&self) -> Vec<Sample> {
        crate::providers::spend_samples(Some(crate::providers::SpendSource::Provider), self.budget_usd)
    }

    fn history(&self, ctx: &Context<'_>) -> Result<Vec<Box<dyn History>>, SetupError> {
        Ok(history::units(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone()))))
    }

    fn focus_profile(&self) -> crate::bill::Profile {
        crate::bill::Profile::plain("bunny.net")
    }
}
