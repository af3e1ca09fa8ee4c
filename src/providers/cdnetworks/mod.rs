//! CDNetworks: local storage usage per domain from `POST /api/domain-usage` (one job per
//! configured domain), and traffic, requests and billable bandwidth from
//! `POST /api/report/traffic-request` (one job per account, see [`traffic`]). An account's jobs
//! share a rate limiter (300 requests per 5 minutes) and a small concurrency limit.

pub mod auth;
pub mod client;
pub mod config;
pub mod history;
pub mod jobs;
pub mod pricing;
pub mod simulator;
pub mod traffic;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use crate::job::{JobSpec, Sample};
use crate::providers::{Account, CheckLimits, Context, History, Provider, SetupError};
use crate::validate::{Table, Validator};

pub use client::{Client, interpret, interpret_traffic, window};
pub use config::{CdnetworksAccount, CdnetworksAuth, CdnetworksDomain, Granularity};

/// The `provider` label value.
pub const PROVIDER: &str = "cdnetworks";
/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.cdnetworks.com";
/// The API path.
pub const PATH: &str = "/api/domain-usage";
/// The `endpoint` label value.
pub const ENDPOINT: &str = "domain-usage";
/// The provider's limit: requests per account per [`RATE_WINDOW`].
pub const RATE_LIMIT: usize = 300;
/// The provider's rate-limit window.
pub const RATE_WINDOW: Duration = Duration::from_secs(300);
/// Requests of one account in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Days before today (in the configured zone) that the polling window starts: enough for the
/// newest complete daily point, and for hourly points across midnight.
pub const WINDOW_DAYS: i64 = 2;
/// The request id header, logged with errors.
pub const REQUEST_ID: &str = "x-cnc-request-id";

/// The CDNetworks provider: the `[[cdnetworks]]` section.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cdnetworks;

/// Cdnetworks's entry in the registry.
pub const ENTRY: crate::providers::registry::Entry = crate::providers::registry::Entry {
    name: Cdnetworks::NAME,
    parse: crate::providers::registry::section::<Cdnetworks>,
    check: crate::providers::registry::check::<Cdnetworks>,
    routes: simulator::routes,
    base_path: "",
    describe: simulator::describe,
    demo_toml: simulator::demo_toml,
    demo_part: || simulator::part(simulator::demo_accounts()),
};

impl Provider for Cdnetworks {
    const NAME: &'static str = PROVIDER;
    type Account = CdnetworksAccount;

    fn parse(v: &mut Validator, t: &mut Table<'_>) -> Option<CdnetworksAccount> {
        config::parse_account(v, t)
    }

    /// The traffic jobs keep a month of 5-minute slices per domain in memory (two months, while
    /// last month settles for its bill, where traffic is priced): all accounts together stay
    /// under `max_traffic_domains`.
    fn check(v: &mut Validator, accounts: &[&CdnetworksAccount], limits: &CheckLimits) {
        let months = |a: &CdnetworksAccount| 1 + usize::from(a.pricing.as_ref().is_some_and(|p| p.needs_traffic()));
        let traffic_domains: usize = accounts.iter().filter(|a| a.traffic).map(|a| a.domains.len() * months(a)).sum();
        let max = limits.max_traffic_domains;
        if traffic_domains > max {
            v.problem(
                "max_traffic_domains",
                format!(
                    "the CDNetworks traffic jobs would keep {traffic_domains} domain-months in memory (about 36 KB each; \
                     a priced account keeps last month too until it settles); \
                     the limit is {max}. Raise max_traffic_domains, set `traffic = false` on some \
                     accounts, or shard the accounts over several exporters."
                ),
            );
        }
    }
}

impl Account for CdnetworksAccount {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn jobs(&self, ctx: &Context<'_>) -> Result<Vec<JobSpec>, SetupError> {
        Ok(jobs::jobs(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone())?)))
    }

    /// The budget, and with a pricing table the mark that the spend is priced from the contract.
    fn config_samples(&self) -> Vec<Sample> {
        let source = self.pricing.as_ref().map(|_| crate::providers::SpendSource::Contract);
        crate::providers::spend_samples(source, self.budget_usd)
    }

    fn history(&self, ctx: &Context<'_>) -> Result<Vec<Box<dyn History>>, SetupError> {
        Ok(history::units(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone())?)))
    }

    /// The contract's months are the account's `time_zone`'s; its items' billed quantities
    /// are GB of traffic, Mbps-months of bandwidth, GB-months of storage, months of the fee.
    fn focus_profile(&self) -> crate::bill::Profile {
        crate::bill::Profile {
            name: "CDNetworks",
            utc_offset: self.utc_offset,
            unit: |labels| pricing::item_unit(crate::bill::item_of(labels)),
        }
    }
}
