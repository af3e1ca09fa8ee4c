//! Amazon CloudFront: spend from Cost Explorer (`GetCostAndUsage` by usage type,
//! `GetCostForecast` with its 80 % interval), bytes and requests per distribution from
//! CloudWatch (`GetMetricData` on `AWS/CloudFront`, `Region=Global`), the distributions from
//! CloudFront's `ListDistributions`, and temporary credentials from STS; every request signed
//! with SigV4 (`aws-sigv4`) inside the project's common HTTP path. Three jobs per account
//! (`cost`, `forecast`, `usage`, see [`jobs`]).

pub mod client;
pub mod config;
pub mod credentials;
pub mod history;
pub mod jobs;
pub mod normalize;
pub mod simulator;
pub mod wire;
pub mod xml;

use std::sync::Arc;

use crate::job::{JobSpec, Sample};
use crate::providers::{Account, Context, History, Provider, SetupError};
use crate::validate::{Table, Validator};

pub use client::Client;
pub use config::CloudFrontAccount;

/// The `provider` label value.
pub const PROVIDER: &str = "cloudfront";

/// The CloudFront provider: the `[[cloudfront]]` section.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloudFront;

/// CloudFront's entry in the registry.
pub const ENTRY: crate::providers::registry::Entry = crate::providers::registry::Entry {
    name: CloudFront::NAME,
    parse: crate::providers::registry::section::<CloudFront>,
    check: crate::providers::registry::check::<CloudFront>,
    routes: simulator::routes,
    base_path: simulator::BASE_PATH,
    describe: simulator::describe,
    demo_toml: simulator::demo_toml,
    demo_part: || simulator::part(simulator::demo_accounts()),
};

impl Provider for CloudFront {
    const NAME: &'static str = PROVIDER;
    type Account = CloudFrontAccount;

    fn parse(v: &mut Validator, t: &mut Table<'_>) -> Option<CloudFrontAccount> {
        config::parse_account(v, t)
    }
}

/// The unit of a usage type's `UsageQuantity`, in FOCUS's unit format, as Cost Explorer gives
/// it for CloudFront: data transfer in GB, requests as a count.
fn unit(labels: &[(&'static str, String)]) -> Option<&'static str> {
    let item = crate::bill::item_of(labels);
    if item.ends_with("-Bytes") || item.ends_with("-OBytes") {
        Some("GB")
    } else if item.contains("Requests") || item.contains("Executions") || item == "Invalidations" {
        Some("Requests")
    } else {
        None
    }
}

impl Account for CloudFrontAccount {
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
        crate::bill::Profile { name: "Amazon Web Services", utc_offset: 0, unit }
    }
}
