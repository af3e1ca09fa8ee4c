//! Where the `focus` command and `GET /focus` get their figures.
//!
//! - A month that is over: each account's history units that write amounts
//!   ([`crate::providers::History::bills`]), through the same clients, limits, retries and
//!   timeouts as `backfill`, over the month's days; their samples are kept in memory
//!   (unconverted), a few per item and day.
//! - The month under way: one poll of every job of every account, through the scheduler's own
//!   path into a store of its own, then [`from_store`], as `GET /focus` reads the exporter's.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Bill, BillError, Point, Profile, bill};
use crate::backfill::{BackfillError, history_units};
use crate::config::Config;
use crate::families::FamilyId;
use crate::job::Sample;
use crate::providers::{SampleSink, SinkError, Window, WindowError};
use crate::store::Store;
use crate::timeutil::{self, format_ymd};

/// What the export gathered.
#[derive(Debug, Default)]
pub struct Report {
    /// One bill per account that has figures for the month.
    pub bills: Vec<Bill>,
    /// What could not be fetched (a unit's window, a job's poll, an account with no figure),
    /// each with why.
    pub failed: Vec<String>,
}

/// The first day of the month under way in a zone `offset` seconds east of UTC, at `now`.
pub fn current_month(now: i64, offset: i64) -> i64 {
    timeutil::month_start((now + offset).div_euclid(86_400))
}

/// The bills of every configured account for the month that starts on day `month`, at `now`:
/// from history when the month is over for every account, from one poll of every job when it
/// is under way.
pub async fn run(config: &Config, month: i64, now: i64) -> Result<Report, BackfillError> {
    let under_way = config.accounts.iter().any(|a| current_month(now, a.focus_profile().utc_offset) <= month);
    if under_way { live(config, month, now).await } else { history(config, month, now).await }
}

/// An account: its `provider` and `account` labels.
type AccountKey = (&'static str, Arc<str>);

/// A sink that keeps every sample with its time.
#[derive(Default)]
struct Keep(Vec<(i64, Sample)>);

impl SampleSink for Keep {
    fn write(&mut self, samples: &[Sample], timestamp: i64) -> Result<(), SinkError> {
        self.0.extend(samples.iter().map(|s| (timestamp, s.clone())));
        Ok(())
    }
}

async fn history(config: &Config, month: i64, now: i64) -> Result<Report, BackfillError> {
    let (y, m, _) = timeutil::civil_from_days(month);
    let last = month + i64::from(timeutil::days_in_month(y, m)) - 1;
    let mut tasks = tokio::task::JoinSet::new();
    for (provider, account, unit) in history_units(config)?.into_iter().filter(|(_, _, u)| u.bills()) {
        tasks.spawn(async move {
            let mut keep = Keep::default();
            let mut failed = Vec::new();
            for (first, last) in unit.windows(month, last, now) {
                let window = Window { first, last, emit_from: month, now };
                match unit.fetch(window, &mut keep).await {
                    Ok(()) => {}
                    Err(WindowError::Fetch { error, from }) => failed.push(format!(
                        "{}: {} to {}: {}",
                        unit.name(),
                        format_ymd(from.max(first)),
                        format_ymd(last),
                        error.message
                    )),
                    Err(WindowError::Sink(e)) => failed.push(format!("{}: {e}", unit.name())),
                }
            }
            (provider, account, keep.0, failed)
        });
    }
    let mut seen: BTreeMap<AccountKey, Vec<(i64, Sample)>> = BTreeMap::new();
    let mut report = Report::default();
    while let Some(joined) = tasks.join_next().await {
        let (provider, account, samples, failed) = joined?;
        seen.entry((provider, account)).or_default().extend(samples);
        report.failed.extend(failed);
    }
    for a in &config.accounts {
        let samples = seen.remove(&(a.provider(), Arc::from(a.name()))).unwrap_or_default();
        let points: Vec<Point<'_>> = samples.iter().map(|(at, sample)| Point { at: *at, sample }).collect();
        let outcome = bill(a.provider(), a.name(), &a.focus_profile(), month, now, &points);
        push(&mut report, (a.provider(), a.name()), month, outcome);
    }
    report.failed.sort();
    Ok(report)
}

/// Adds the outcome of one account's [`bill`] to `report`.
fn push(report: &mut Report, (provider, account): (&str, &str), month: i64, outcome: Result<Bill, BillError>) {
    match outcome {
        Ok(b) => report.bills.push(b),
        Err(BillError::Empty) => report.failed.push(format!(
            "{provider}/{account}: no billing figure for {} (the provider keeps none that far back, or its jobs failed)",
            &format_ymd(month)[..7]
        )),
        Err(e) => report.failed.push(format!("{provider}/{account}: {e}")),
    }
}

async fn live(config: &Config, month: i64, now: i64) -> Result<Report, BackfillError> {
    let client = crate::providers::common::http::client()?;
    let store = Store::new(env!("CARGO_PKG_VERSION"), "focus");
    store.set_rates(config.rates.clone());
    let (_, upstreams) = crate::providers::common::http::upstreams(
        crate::providers::registry::NAMES.iter().copied(),
        &config.limits.requests(),
        Arc::new(crate::job::NoSink),
    );
    let mut jobs = Vec::new();
    for account in &config.accounts {
        let ctx = crate::providers::Context { http: &client, upstream: &upstreams[account.provider()] };
        jobs.extend(account.jobs(&ctx)?);
    }
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for job in jobs {
        store.register_job(&job.key, job.max_age);
        let store = store.clone();
        tasks.spawn(async move {
            let outcome = crate::scheduler::poll_once(&job, &store).await;
            outcome.err().map(|e| format!("{}: {}", job.key, e.message))
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        failed.extend(joined?);
    }
    store.set_focus_accounts(accounts(config));
    let mut report = from_store(&store, month, now);
    report.failed.extend(failed);
    report.failed.sort();
    Ok(report)
}

/// The accounts of `config` this process polls, with their FOCUS profiles.
pub fn accounts(config: &Config) -> Vec<(&'static str, Arc<str>, Profile)> {
    config.sharded_accounts().map(|a| (a.provider(), Arc::from(a.name()), a.focus_profile())).collect()
}

/// The bills of `month` from the billing samples a store holds: the month-to-date figures for
/// an account's month under way, last month's bill for the month before it; any other month
/// has none.
pub fn from_store(store: &Store, month: i64, now: i64) -> Report {
    type Held = Vec<(i64, Arc<Vec<Sample>>)>;
    let mut by_account: BTreeMap<AccountKey, Held> = BTreeMap::new();
    for (key, at, samples) in store.bills() {
        by_account.entry((key.provider, key.account.clone())).or_default().push((at, samples));
    }
    let mut report = Report::default();
    for (provider, account, profile) in store.focus_accounts() {
        let current = current_month(now, profile.utc_offset);
        let last = timeutil::month_start(current - 1);
        let (_, end) = super::period(month, profile.utc_offset);
        let held = by_account.get(&(provider, account.clone())).map(Vec::as_slice).unwrap_or_default();
        let mut owned: Vec<(i64, Sample)> = Vec::new();
        for (at, samples) in held {
            for s in samples.iter() {
                let mapped = if month == current {
                    match s.family {
                        FamilyId::BillingLastMonthCostUsd | FamilyId::BillingLastMonthSpendUsd => None,
                        _ => Some((*at, s.clone())),
                    }
                } else if month == last {
                    // Last month's final bill, as of the month's end.
                    let family = match s.family {
                        FamilyId::BillingLastMonthCostUsd => Some(FamilyId::BillingMonthToDateCostUsd),
                        FamilyId::BillingLastMonthSpendUsd => Some(FamilyId::BillingMonthToDateSpendUsd),
                        FamilyId::BillingCurrencyInfo => Some(FamilyId::BillingCurrencyInfo),
                        _ => None,
                    };
                    family.map(|family| (end - 1, Sample { family, ..s.clone() }))
                } else {
                    None
                };
                owned.extend(mapped);
            }
        }
        let points: Vec<Point<'_>> = owned.iter().map(|(at, sample)| Point { at: *at, sample }).collect();
        let outcome = bill(provider, &account, &profile, month, now, &points);
        push(&mut report, (provider, &account), month, outcome);
    }
    report
}
