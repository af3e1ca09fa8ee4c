//! Fastly: spend to date from the month-to-date invoice (`/billing/v3/invoices/month-to-date`),
//! last month's bill from the end-of-month invoices (`/billing/v3/invoices`), and month-to-date
//! bandwidth and requests per service and area from the historical stats (`/stats`), the
//! services listed by `/service` when none are configured. docs/providers/fastly.md has the
//! API's quirks and what is guessed.

pub mod client;
pub mod config;
pub mod history;
pub mod jobs;
pub mod normalize;
pub mod simulator;
pub mod wire;

use std::sync::Arc;

use crate::job::{JobSpec, Sample};
use crate::providers::{Account, Context, History, Provider, SetupError};
use crate::validate::{Table, Validator};

pub use client::Client;
pub use config::FastlyAccount;

/// The `provider` label value.
pub const PROVIDER: &str = "fastly";
/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.fastly.com";
/// The month-to-date invoice.
pub const MTD_PATH: &str = "/billing/v3/invoices/month-to-date";
/// The end-of-month invoices.
pub const INVOICES_PATH: &str = "/billing/v3/invoices";
/// The historical stats of every service.
pub const STATS_PATH: &str = "/stats";
/// Usage (bytes, requests, Compute requests) per region and service over a window.
pub const USAGE_PATH: &str = "/stats/usage_by_service";
/// The service list.
pub const SERVICES_PATH: &str = "/service";
/// The `endpoint` label of the month-to-date job.
pub const MTD_ENDPOINT: &str = "month-to-date";
/// The `endpoint` label of the last-month job.
pub const INVOICES_ENDPOINT: &str = "invoices";
/// The `endpoint` label of the usage job.
pub const STATS_ENDPOINT: &str = "stats";
/// The service list, as error messages name it.
pub const SERVICES_ENDPOINT: &str = "service";
/// Services asked for per page of `/service`.
pub const SERVICES_PER_PAGE: usize = 100;
/// The header with the rate-limit window's reset (Unix seconds).
pub const RATELIMIT_RESET: &str = "fastly-ratelimit-reset";
/// The header with the requests left in the rate-limit window.
pub const RATELIMIT_REMAINING: &str = "fastly-ratelimit-remaining";

/// The Fastly provider: the `[[fastly]]` section.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fastly;

/// Fastly's entry in the registry.
pub const ENTRY: crate::providers::registry::Entry = crate::providers::registry::Entry {
    name: Fastly::NAME,
    parse: crate::providers::registry::section::<Fastly>,
    check: crate::providers::registry::check::<Fastly>,
    routes: simulator::routes,
    base_path: "",
    describe: simulator::describe,
    demo_toml: simulator::demo_toml,
    demo_part: || simulator::part(simulator::demo_accounts()),
};

impl Provider for Fastly {
    const NAME: &'static str = PROVIDER;
    type Account = FastlyAccount;

    fn parse(v: &mut Validator, t: &mut Table<'_>) -> Option<FastlyAccount> {
        config::parse_account(v, t)
    }
}

impl Account for FastlyAccount {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn jobs(&self, ctx: &Context<'_>) -> Result<Vec<JobSpec>, SetupError> {
        Ok(jobs::jobs(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone())?)))
    }

    /// Fastly reports the spend itself; the budget, when configured.
    fn config_samples(&self) -> Vec<Sample> {
        crate::providers::spend_samples(Some(crate::providers::SpendSource::Provider), self.budget_usd)
    }

    fn history(&self, ctx: &Context<'_>) -> Result<Vec<Box<dyn History>>, SetupError> {
        Ok(history::units(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone())?)))
    }

    fn focus_profile(&self) -> crate::bill::Profile {
        crate::bill::Profile { unit: normalize::usage_unit, ..crate::bill::Profile::plain("Fastly") }
    }
}
