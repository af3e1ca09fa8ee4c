//! Provider modules. Each knows its API, its wire format and its configuration section, and
//! yields samples; none knows Prometheus, the store, the scheduler or the server.
//!
//! A provider is a folder `providers/<name>/` that implements [`Provider`] (its configuration
//! section) and [`Account`] (what one configured account runs: its jobs, its history for
//! backfill). [`registry`] is the one place that lists the providers; everything else loops over
//! it. What providers share lives in [`common`]. docs/architecture.md walks through adding one.

pub mod bunny;
pub mod cdnetworks;
pub mod cloudfront;
pub mod common;
pub mod fastly;
pub mod registry;
pub mod scaleengine;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::families::FamilyId;
use crate::job::{JobSpec, PollError, Sample};
use crate::validate::{Table, Validator};
use common::http::Upstream;

/// What an account needs to build its clients: the shared HTTP client and its provider's
/// [`Upstream`] (caps on requests in flight, retries, answer bounds, request counting).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The HTTP client every provider shares.
    pub http: &'a reqwest::Client,
    /// This provider's upstream.
    pub upstream: &'a Upstream,
}

/// Why an account's clients could not be set up (a value validation let through).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SetupError {
    /// The account's place in the file (`cdnetworks[0].base_url`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A provider's configuration section: the `[[name]]` tables of the file.
pub trait Provider: Send + Sync + 'static {
    /// The table's name and the `provider` label (`scaleengine`).
    const NAME: &'static str;
    /// One validated account.
    type Account: Account + Clone + PartialEq;

    /// Validates one `[[NAME]]` table (its path is `t.path`, e.g. `scaleengine[0]`), reporting
    /// every problem into `v`; `None` when there was one. Keys left in `t` are reported as
    /// unknown by the caller.
    fn parse(v: &mut Validator, t: &mut Table<'_>) -> Option<Self::Account>;

    /// Checks what involves all of this provider's accounts together (memory budgets).
    fn check(_v: &mut Validator, _accounts: &[&Self::Account], _limits: &CheckLimits) {}
}

/// The global limits a provider's [`Provider::check`] may hold its accounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// `max_traffic_domains`: domains whose month of traffic slices is kept in memory, all
    /// accounts of the file together.
    pub max_traffic_domains: usize,
}

/// One configured account of some provider: what it runs.
pub trait Account: fmt::Debug + Send + Sync + AccountEq + 'static {
    /// The `provider` label.
    fn provider(&self) -> &'static str;
    /// The configured name: the `account` label.
    fn name(&self) -> &str;
    /// The jobs that poll the account.
    fn jobs(&self, ctx: &Context<'_>) -> Result<Vec<JobSpec>, SetupError>;
    /// Samples that come from the configuration alone (a budget), served under the job
    /// `provider/account/config`.
    fn config_samples(&self) -> Vec<Sample> {
        Vec::new()
    }
    /// The account's history, unit by unit, for `backfill`.
    fn history(&self, ctx: &Context<'_>) -> Result<Vec<Box<dyn History>>, SetupError>;
    /// What the FOCUS export needs to know of the provider (its name, the zone of its months,
    /// the units of its billing usage).
    fn focus_profile(&self) -> crate::bill::Profile {
        crate::bill::Profile::plain(self.provider())
    }
}

/// Equality and downcasting for `dyn Account`, implemented for every `PartialEq` type.
pub trait AccountEq {
    /// Whether `other` is the same account with the same settings (a reload keeps it running).
    fn same(&self, other: &dyn Account) -> bool;
    /// The account as `Any`, to get its concrete type back.
    fn as_any(&self) -> &dyn Any;
}

impl<T: PartialEq + Send + Sync + 'static> AccountEq for T {
    fn same(&self, other: &dyn Account) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// How an account's spend is known: the `source` label of `cdn_billing_spend_source_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendSource {
    /// The provider reports it.
    Provider,
    /// The exporter prices the provider's usage with the account's contract.
    Contract,
}

/// The configuration samples of an account's spend: how it is known and, when configured, the
/// monthly budget. Every provider's `Account::config_samples` starts from these.
pub fn spend_samples(source: Option<SpendSource>, budget_usd: Option<f64>) -> Vec<Sample> {
    let source = source.map(|s| match s {
        SpendSource::Provider => "provider",
        SpendSource::Contract => "contract",
    });
    let info = source.map(|s| Sample::new(FamilyId::BillingSpendSourceInfo, 1.0).label("source", s));
    budget_usd.map(|b| Sample::new(FamilyId::BillingBudgetUsd, b)).into_iter().chain(info).collect()
}

/// An account as the configuration holds it.
pub type AccountRef = Arc<dyn Account>;

/// One unit of an account's history (a domain, an endpoint, one video app): the windows the API
/// serves it in, and how to fetch one.
pub trait History: Send + Sync {
    /// `provider/account/part`: what `--only` matches and failed windows name.
    fn name(&self) -> String;
    /// Whether the unit writes amounts (what the FOCUS export fetches; the rest is usage).
    fn bills(&self) -> bool {
        false
    }
    /// The windows over the days `[from, to]`, as (first day, last day), in time order.
    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)>;
    /// Fetches the window `[first, last]` and writes its samples, each with its timestamp, into
    /// `sink`. Days before `emit_from` only feed running sums (month-to-date figures).
    fn fetch<'a>(
        &'a self,
        window: Window,
        sink: &'a mut dyn SampleSink,
    ) -> crate::job::BoxFuture<'a, Result<(), WindowError>>;
}

/// A history unit's windows: month by month from each month's first day (month-to-date sums
/// start there) over the days `[from, to]`, up to yesterday (today belongs to live polling),
/// leaving out the months that begin before `oldest` (what the provider still serves), said once
/// in a warning naming `unit` and `why`.
pub fn month_windows(unit: &str, from: i64, to: i64, now: i64, oldest: i64, why: &str) -> Vec<(i64, i64)> {
    let today = now.div_euclid(86_400);
    let all: Vec<(i64, i64)> = crate::timeutil::months(from, to.min(today - 1))
        .into_iter()
        .map(|(first, last)| (first, last.min(to).min(today - 1)))
        .collect();
    let (kept, dropped): (Vec<_>, Vec<_>) = all.into_iter().partition(|(first, _)| *first >= oldest);
    if let (Some(first), Some(last)) = (dropped.first(), dropped.last()) {
        tracing::warn!(
            unit,
            from = %crate::timeutil::format_ymd(first.0),
            to = %crate::timeutil::format_ymd(last.1),
            oldest = %crate::timeutil::format_ymd(oldest),
            "{why}; these days are left out (their months begin before it)"
        );
    }
    kept
}

/// One window of a backfill: its days and the context they are fetched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First day (day number).
    pub first: i64,
    /// Last day, inclusive.
    pub last: i64,
    /// The first day the backfill writes; earlier days only feed running sums.
    pub emit_from: i64,
    /// Now, in Unix seconds.
    pub now: i64,
}

/// Where history goes: samples at a timestamp (Unix seconds).
pub trait SampleSink: Send {
    /// Writes `samples`, all at `timestamp`.
    fn write(&mut self, samples: &[Sample], timestamp: i64) -> Result<(), SinkError>;
}

/// Writing history failed: the backfill stops.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SinkError(pub Box<dyn std::error::Error + Send + Sync>);

/// Why a window of history was not written.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The window could not be fetched from day `from` on: the rest of the backfill goes on.
    #[error("{error}")]
    Fetch {
        /// Why.
        error: PollError,
        /// The first day not fetched.
        from: i64,
    },
    /// Writing failed: the backfill stops.
    #[error(transparent)]
    Sink(#[from] SinkError),
}
