//! The samples of every job and the exposition body rendered from them. A poll replaces its
//! job's fragments (its samples encoded by prometheus-client, one per family, on the poll
//! path); a render re-encodes only the health of jobs that polled since, concatenates every
//! fragment under its family's header, once per change; a scrape only clones the cached body.
//!
//! This file holds the jobs and their samples; `health` what each job's polls did,
//! `cardinality` the `max_series` guard, `headline` the per-account figures of the status
//! page, `render` the body built from all of it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::exposition::{Exposition, Fragments};
use crate::families::FamilyId;
use crate::job::{JobKey, PollError, Sample};
use crate::shard::Shard;

mod cardinality;
mod headline;
mod health;
mod render;

pub use cardinality::DEFAULT_MAX_SERIES;
pub use health::{Failure, Health, PollLog, RECENT_POLLS};

use cardinality::{prerender, replace_fragments};

#[derive(Debug, Default)]
struct JobEntry {
    /// The samples of the last poll, encoded, per family.
    fragments: Fragments,
    /// The health samples, encoded, per family; empty for entries that are not polled.
    health_fragments: Fragments,
    /// What `health_fragments` were encoded from: (polls, max_age). Health changes only with
    /// a poll or a new `max_age`, so a render re-encodes only the jobs where this moved.
    health_encoded: Option<(u64, Option<Duration>)>,
    /// Hashes of the series in `fragments`, for the cardinality guard.
    ids: HashSet<u64>,
    /// When `fragments` were produced (for `max_age`).
    fresh_at: Option<Instant>,
    /// Samples older than this leave `/metrics`; `None` for configured samples.
    max_age: Option<Duration>,
    /// `None` for entries that are not polled (configured values such as the budget).
    health: Option<Health>,
    /// Whether the cardinality guard has logged for this job.
    drop_logged: bool,
    /// The job's values of the [`headline::HEADLINE`] families, for the status page.
    headline: Vec<(FamilyId, f64)>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: BTreeMap<JobKey, JobEntry>,
    upstream: BTreeMap<(&'static str, Arc<str>, String), u64>,
    /// What requests to pay-per-request APIs may have cost, by provider, account and api, in
    /// millionths of a dollar (exact: the prices are whole millionths, so sums do not drift).
    upstream_cost: BTreeMap<(&'static str, Arc<str>, &'static str), u64>,
    /// Series exported, all jobs together.
    series: usize,
    dropped_total: u64,
    /// This process's shard, and the accounts it keeps of those configured.
    shard: (Shard, usize, usize),
    /// Each account's spend to date as seen over time, for the status page's forecast.
    spend_history: BTreeMap<(&'static str, Arc<str>), crate::forecast::History>,
    /// Each job's last billing samples as the provider or contract gave them, in the account's
    /// currency (before conversion), with when they were taken: what `GET /focus` is built from.
    bills: BTreeMap<JobKey, (i64, Arc<Vec<Sample>>)>,
    /// The account-level samples last set per key (an account's currency), to set them again
    /// only when they change.
    account_statics: BTreeMap<JobKey, Vec<Sample>>,
    /// The accounts polled, with what the FOCUS export needs of their provider.
    focus_accounts: Vec<(&'static str, Arc<str>, crate::bill::Profile)>,
}

/// Shared state between the scheduler, the renderer and the HTTP server.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    body: ArcSwap<Exposition>,
    dirty: Notify,
    max_series: AtomicUsize,
    ready: AtomicBool,
    /// `[exchange_rates]`: what polls convert their amounts with ([`crate::currency`]).
    rates: ArcSwap<crate::currency::Rates>,
    version: String,
    revision: String,
}

/// Samples handed to the store: moved when passed by value (the poll path), cloned when
/// borrowed.
pub trait IntoSamples {
    /// The samples, owned.
    fn into_samples(self) -> Vec<Sample>;
}

impl IntoSamples for Vec<Sample> {
    fn into_samples(self) -> Vec<Sample> {
        self
    }
}

impl IntoSamples for &Vec<Sample> {
    fn into_samples(self) -> Vec<Sample> {
        self.clone()
    }
}

impl IntoSamples for &[Sample] {
    fn into_samples(self) -> Vec<Sample> {
        self.to_vec()
    }
}

impl<const N: usize> IntoSamples for &[Sample; N] {
    fn into_samples(self) -> Vec<Sample> {
        self.to_vec()
    }
}

impl Store {
    /// An empty store; `version` and `revision` go into `cdn_exporter_build_info`.
    pub fn new(version: impl Into<String>, revision: impl Into<String>) -> Arc<Self> {
        let store = Arc::new(Store {
            inner: Mutex::new(Inner::default()),
            body: ArcSwap::from_pointee(Exposition::default()),
            dirty: Notify::new(),
            max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
            ready: AtomicBool::new(false),
            rates: ArcSwap::from_pointee(crate::currency::Rates::default()),
            version: version.into(),
            revision: revision.into(),
        });
        store.render_now();
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exporter's version, for the status page.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The source revision, for the status page.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Sets the global cardinality limit (applies from the next poll on).
    pub fn set_max_series(&self, max: usize) {
        self.max_series.store(max, Ordering::Relaxed);
    }

    /// Sets the exchange rates (a start or a reload); each job's next poll converts with them.
    pub fn set_rates(&self, rates: crate::currency::Rates) {
        self.rates.store(Arc::new(rates));
    }

    /// The exchange rates in force.
    pub fn rates(&self) -> Arc<crate::currency::Rates> {
        self.rates.load_full()
    }

    /// Declares a polled job, so that `poll_up 0` shows before its first poll finishes.
    pub fn register_job(&self, key: &JobKey, max_age: Duration) {
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        entry.health.get_or_insert_with(Health::default);
        entry.max_age = Some(max_age);
        drop(inner);
        self.mark_dirty();
    }

    /// Forgets a job and its samples.
    pub fn remove_job(&self, key: &JobKey) {
        let mut inner = self.lock();
        inner.bills.remove(key);
        inner.account_statics.remove(key);
        if let Some(entry) = inner.jobs.remove(key) {
            inner.series -= entry.ids.len();
        }
        drop(inner);
        self.mark_dirty();
    }

    /// Forgets an account's upstream request counters (when the account is removed).
    pub fn forget_account(&self, provider: &str, account: &str) {
        let mut inner = self.lock();
        inner.upstream.retain(|(p, a, _), _| !(*p == provider && &**a == account));
        inner.upstream_cost.retain(|(p, a, _), _| !(*p == provider && &**a == account));
        inner.spend_history.retain(|(p, a), _| !(*p == provider && &**a == account));
        inner.bills.retain(|k, _| !(k.provider == provider && &*k.account == account));
        drop(inner);
        self.mark_dirty();
    }

    /// Sets an account's own samples (its currency and rate) when they differ from the last ones
    /// set: each poll of each billing job reports them, and a series the limit refused is
    /// counted once, not once per poll.
    pub fn set_account_static(&self, key: &JobKey, samples: &[Sample]) {
        if self.lock().account_statics.get(key).is_some_and(|s| s.as_slice() == samples) {
            return;
        }
        self.set_static(key, samples);
        self.lock().account_statics.insert(key.clone(), samples.to_vec());
    }

    /// Sets samples that come from configuration rather than a poll (e.g. the budget), or that
    /// belong to an account rather than a job (its currency).
    pub fn set_static(&self, key: &JobKey, samples: &[Sample]) {
        let mut inner = self.lock();
        let budget = self.max_series.load(Ordering::Relaxed);
        let (fragments, ids, dropped, headline) =
            prerender(key, samples.to_vec(), inner.jobs.get(key).map(|e| &e.ids), inner.series, budget);
        replace_fragments(&mut inner, key, fragments, ids, headline);
        // Counted as a poll's are: whichever comes first when the limit is reached, every
        // series refused is in cdn_exporter_series_dropped_total.
        inner.dropped_total += dropped as u64;
        drop(inner);
        self.mark_dirty();
    }

    /// Notes this process's shard and how many of the configured accounts it keeps.
    pub fn set_shard(&self, shard: Shard, kept: usize, configured: usize) {
        self.lock().shard = (shard, kept, configured);
        self.mark_dirty();
    }

    /// This process's shard, the accounts it keeps, and the accounts configured.
    pub fn shard(&self) -> (Shard, usize, usize) {
        self.lock().shard
    }

    /// Notes when a job's next poll is due (for the status page).
    pub fn set_next_poll(&self, key: &JobKey, at: SystemTime) {
        if let Some(h) = self.lock().jobs.get_mut(key).and_then(|e| e.health.as_mut()) {
            h.next_poll = Some(at);
        }
    }

    /// Records a successful poll: its samples replace the job's previous ones, less any new
    /// series past the cardinality limit. Samples passed by value are encoded without a copy.
    pub fn record_success(&self, key: &JobKey, samples: impl IntoSamples, duration: Duration) {
        self.record(key, samples, duration, None);
    }

    /// Records a poll that got an answer but could not export all of it (amounts in a
    /// currency with no exchange rate): its samples replace the job's previous ones as for a
    /// success, and the job is down with `error`, as for a failure.
    pub fn record_partial(&self, key: &JobKey, samples: impl IntoSamples, error: &PollError, duration: Duration) {
        self.record(key, samples, duration, Some(error));
    }

    fn record(&self, key: &JobKey, samples: impl IntoSamples, duration: Duration, error: Option<&PollError>) {
        let mut inner = self.lock();
        let budget = self.max_series.load(Ordering::Relaxed);
        let (fragments, ids, dropped, headline) =
            prerender(key, samples.into_samples(), inner.jobs.get(key).map(|e| &e.ids), inner.series, budget);
        let exported = ids.len();
        if let Some(&(_, spend)) = headline.iter().find(|(f, _)| *f == FamilyId::BillingMonthToDateSpendUsd) {
            let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            inner.spend_history.entry((key.provider, key.account.clone())).or_default().record(unix, spend);
        }
        replace_fragments(&mut inner, key, fragments, ids, headline);
        inner.dropped_total += dropped as u64;
        let entry = inner.jobs.entry(key.clone()).or_default();
        entry.fresh_at = Some(Instant::now());
        if dropped > 0 && !entry.drop_logged {
            entry.drop_logged = true;
            tracing::warn!(job = %key, dropped, max_series = budget, "Series limit reached; new series of this job are dropped (logged once per job)");
        }
        let health = entry.health.get_or_insert_with(Health::default);
        let now = SystemTime::now();
        health.polls += 1;
        health.last_poll = Some(now);
        health.last_duration = duration;
        health.dropped = dropped;
        health.stale = false;
        match error {
            None => {
                health.up = true;
                health.last_success = Some(now);
                health.last_error = None;
                health.log(PollLog { at: now, duration, outcome: Ok(exported) });
            }
            Some(error) => {
                health.up = false;
                *health.errors.entry(error.reason).or_default() += 1;
                let failure = health.failure(error);
                health.last_error = Some(failure.clone());
                health.log(PollLog { at: now, duration, outcome: Err(failure) });
            }
        }
        drop(inner);
        self.mark_dirty();
    }

    /// Records a failed poll. The job's last good samples stay (until its `max_age`).
    pub fn record_failure(&self, key: &JobKey, error: &PollError, duration: Duration) {
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        let health = entry.health.get_or_insert_with(Health::default);
        let now = SystemTime::now();
        health.polls += 1;
        health.up = false;
        health.last_poll = Some(now);
        health.last_duration = duration;
        *health.errors.entry(error.reason).or_default() += 1;
        let failure = health.failure(error);
        health.last_error = Some(failure.clone());
        health.log(PollLog { at: now, duration, outcome: Err(failure) });
        drop(inner);
        self.mark_dirty();
    }

    /// Removes the samples of jobs whose last success is older than their `max_age`. Returns
    /// whether anything was removed.
    pub fn expire_stale(&self) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        let stale: Vec<JobKey> = inner
            .jobs
            .iter()
            .filter(|(_, e)| {
                !e.ids.is_empty()
                    && matches!((e.fresh_at, e.max_age), (Some(at), Some(max)) if now.duration_since(at) > max)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            replace_fragments(&mut inner, key, Vec::new(), HashSet::new(), Vec::new());
            if let Some(entry) = inner.jobs.get_mut(key) {
                if let Some(h) = entry.health.as_mut() {
                    h.stale = true;
                }
                tracing::warn!(job = %key, max_age = ?entry.max_age, "Samples older than max_age removed from /metrics");
            }
        }
        drop(inner);
        if !stale.is_empty() {
            self.mark_dirty();
        }
        !stale.is_empty()
    }

    /// Keeps the billing samples of a poll, unconverted (amounts in the account's currency, its
    /// marker among them), taken at `at` (Unix seconds), for `GET /focus`. Samples of other
    /// families are left out; a poll with none leaves the job's previous ones.
    pub fn set_bill(&self, key: &JobKey, samples: &[Sample], at: i64) {
        let kept: Vec<Sample> = samples.iter().filter(|s| crate::bill::is_bill_family(s.family)).cloned().collect();
        if kept.is_empty() {
            return;
        }
        self.lock().bills.insert(key.clone(), (at, Arc::new(kept)));
    }

    /// Sets the accounts polled (a start or a reload), for `GET /focus`.
    pub fn set_focus_accounts(&self, accounts: Vec<(&'static str, Arc<str>, crate::bill::Profile)>) {
        self.lock().focus_accounts = accounts;
    }

    /// The accounts polled, with their FOCUS profiles.
    pub fn focus_accounts(&self) -> Vec<(&'static str, Arc<str>, crate::bill::Profile)> {
        self.lock().focus_accounts.clone()
    }

    /// Every job's last billing samples, with when they were taken.
    pub fn bills(&self) -> Vec<(JobKey, i64, Arc<Vec<Sample>>)> {
        self.lock().bills.iter().map(|(k, (at, s))| (k.clone(), *at, s.clone())).collect()
    }

    /// Counts one upstream HTTP request by status code (`"error"` if no response arrived).
    pub fn count_upstream(&self, provider: &'static str, account: &Arc<str>, code: &str) {
        let mut inner = self.lock();
        *inner.upstream.entry((provider, account.clone(), code.to_owned())).or_default() += 1;
    }

    /// Adds what one upstream request of `account` to `api` may cost, in US dollars.
    pub fn cost_upstream(&self, provider: &'static str, account: &Arc<str>, api: &'static str, usd: f64) {
        if usd > 0.0 && usd.is_finite() {
            let micros = (usd * 1e6).round() as u64;
            *self.lock().upstream_cost.entry((provider, account.clone(), api)).or_default() += micros;
        }
    }

    /// Every polled job with its health, in key order.
    pub fn jobs(&self) -> Vec<(JobKey, Health)> {
        self.lock().jobs.iter().filter_map(|(k, e)| e.health.clone().map(|h| (k.clone(), h))).collect()
    }

    /// Whether every polled job has finished a poll. Once true it stays true (a reload that
    /// adds jobs does not take a running exporter out of service).
    pub fn ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let ready = self.lock().jobs.values().filter_map(|e| e.health.as_ref()).all(|h| h.polls > 0);
        if ready {
            self.ready.store(true, Ordering::Relaxed);
        }
        ready
    }

    /// A job's health, if it is a polled job.
    pub fn health(&self, key: &JobKey) -> Option<Health> {
        self.lock().jobs.get(key).and_then(|e| e.health.clone())
    }

    /// Number of series currently exported by provider jobs and configured entries.
    pub fn series(&self) -> usize {
        self.lock().series
    }

    /// Asks the renderer for a new body.
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }
}

/// Providers count their upstream requests into the store through their upstream.
impl crate::job::RequestSink for Store {
    fn count(&self, provider: &'static str, account: &Arc<str>, status: &str) {
        self.count_upstream(provider, account, status);
    }

    fn cost(&self, provider: &'static str, account: &Arc<str>, api: &'static str, usd: f64) {
        self.cost_upstream(provider, account, api, usd);
    }
}
